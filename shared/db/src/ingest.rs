//! `PgMatchStore`: match ingestion in PostgreSQL. A batch is written with one multi-row statement per table
//! (UNNEST arrays), so 1,000 matches cost about a dozen round trips, not thousands.
//!
//! Concurrency: every key is written with INSERT ... ON CONFLICT, never check-then-insert, and each statement's
//! rows are sorted by key so two overlapping batches lock rows in the same order. `DO UPDATE ... WHERE ... IS
//! DISTINCT FROM` touches a row only when its data changed, which is what makes re-delivery a no-op and tells
//! "created" (xmax = 0) from "updated".

use std::collections::{BTreeMap, HashMap};

use crmsync_domain::DomainError;
use crmsync_domain::ingest::{
    COMPANY_LIFECYCLE_STAGE, Contractor, DEAL_PIPELINE, FIRST_STAGE, MatchSpec, Opportunity, Rejection,
};
use crmsync_domain::ports::{BatchWriteOutcome, MatchStore};
use deadpool_postgres::{GenericClient, Pool};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::DbError;

/// How often a batch is retried after a deadlock or serialization failure before giving up.
const CONFLICT_RETRIES: usize = 3;

/// The Postgres implementation of [`MatchStore`].
#[derive(Clone, Debug)]
pub struct PgMatchStore {
    pool: Pool,
}

impl PgMatchStore {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

impl MatchStore for PgMatchStore {
    async fn load_matches(&self, match_ids: &[Uuid]) -> Result<Vec<(Uuid, MatchSpec)>, DomainError> {
        let client = self.pool.get().await.map_err(DbError::from)?;
        Ok(load_matches(&client, match_ids).await?)
    }

    async fn write_matches(&self, batch: &[MatchSpec]) -> Result<BatchWriteOutcome, DomainError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.write_matches_once(batch).await {
                Err(error) if error.is_transaction_conflict() && attempt < CONFLICT_RETRIES => {
                    tracing::warn!(attempt, "ingest batch hit a transaction conflict; retrying");
                }
                result => return Ok(result?),
            }
        }
    }

    async fn record_delivery(
        &self,
        source: &str,
        summary: &Value,
        rejections: &[(Rejection, Value)],
    ) -> Result<(), DomainError> {
        let client = self.pool.get().await.map_err(DbError::from)?;
        Ok(record_delivery(&client, source, summary, rejections).await?)
    }
}

impl PgMatchStore {
    async fn write_matches_once(&self, batch: &[MatchSpec]) -> Result<BatchWriteOutcome, DbError> {
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let mut outcome = write_match_batch(&transaction, batch).await?;
        transaction.commit().await?;
        outcome.round_trips += 2; // BEGIN and COMMIT
        Ok(outcome)
    }
}

/// Loads matches by id with their opportunity and contractor.
pub async fn load_matches(client: &impl GenericClient, match_ids: &[Uuid]) -> Result<Vec<(Uuid, MatchSpec)>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT m.id, m.match_score, m.match_reasons,
                    o.notice_id, o.title, o.solicitation_number, o.description, o.agency, o.sub_agency, o.office,
                    o.naics_code, o.psc_code, o.set_aside, o.notice_type, o.estimated_value, o.posted_date,
                    o.deadline, o.priority_flag, o.place_of_performance_state, o.url,
                    c.uei, c.name, c.source, c.cage_code, c.website, c.phone, c.email, c.address, c.city, c.state,
                    c.zip, c.primary_naics, c.sam_registered, c.readiness_score
             FROM matches m
             JOIN opportunities o ON o.id = m.opportunity_id
             JOIN contractors c ON c.id = m.contractor_id
             WHERE m.id = ANY($1)",
        )
        .await?;
    let rows = client.query(&statement, &[&match_ids]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let spec = MatchSpec {
                match_score: row.get(1),
                match_reasons: row.get(2),
                opportunity: Opportunity {
                    notice_id: row.get(3),
                    title: row.get(4),
                    solicitation_number: row.get(5),
                    description: row.get(6),
                    agency: row.get(7),
                    sub_agency: row.get(8),
                    office: row.get(9),
                    naics_code: row.get(10),
                    psc_code: row.get(11),
                    set_aside: row.get(12),
                    notice_type: row.get(13),
                    estimated_value: row.get(14),
                    posted_date: row.get(15),
                    deadline: row.get(16),
                    priority_flag: row.get(17),
                    place_of_performance_state: row.get(18),
                    url: row.get(19),
                },
                contractor: Contractor {
                    uei: row.get(20),
                    name: row.get(21),
                    source: row.get(22),
                    cage_code: row.get(23),
                    website: row.get(24),
                    phone: row.get(25),
                    email: row.get(26),
                    address: row.get(27),
                    city: row.get(28),
                    state: row.get(29),
                    zip: row.get(30),
                    primary_naics: row.get(31),
                    sam_registered: row.get(32),
                    readiness_score: row.get(33),
                },
            };
            (row.get(0), spec)
        })
        .collect())
}

/// Steps A and B for a whole batch inside the caller's transaction. Within a batch the last occurrence of an
/// opportunity, contractor or match wins, as if the items had been delivered one after another.
pub async fn write_match_batch(client: &impl GenericClient, batch: &[MatchSpec]) -> Result<BatchWriteOutcome, DbError> {
    let mut outcome = BatchWriteOutcome::default();
    if batch.is_empty() {
        return Ok(outcome);
    }
    let opportunities: BTreeMap<&str, &Opportunity> = batch
        .iter()
        .map(|spec| (spec.opportunity.notice_id.as_str(), &spec.opportunity))
        .collect();
    let contractors: BTreeMap<&str, &Contractor> = batch
        .iter()
        .map(|spec| (spec.contractor.uei.as_str(), &spec.contractor))
        .collect();
    let matches: BTreeMap<(&str, &str), &MatchSpec> = batch
        .iter()
        .map(|spec| {
            (
                (spec.opportunity.notice_id.as_str(), spec.contractor.uei.as_str()),
                spec,
            )
        })
        .collect();

    let opportunity_ids = upsert_opportunities(client, &opportunities, &mut outcome).await?;
    let contractor_ids = upsert_contractors(client, &contractors, &mut outcome).await?;
    let match_ids = upsert_matches(client, &matches, &opportunity_ids, &contractor_ids, &mut outcome).await?;
    let companies = upsert_companies(client, &contractors, &contractor_ids, &mut outcome).await?;
    let deals = upsert_deals(client, &matches, &opportunity_ids, &match_ids, &companies, &mut outcome).await?;

    let mut queue = QueueRows::default();
    for (uei, change) in &companies.changes {
        let company_id = companies.ids[uei];
        let payload = json!({ "company_id": company_id, "contractor_id": contractor_ids[uei], "uei": uei });
        queue.push("company", company_id, *change, payload);
    }
    for (key, (deal_id, company_id, change)) in &deals {
        let payload = json!({ "deal_id": deal_id, "company_id": company_id, "opportunity_id": key.0 });
        queue.push("deal", *deal_id, *change, payload);
    }
    outcome.queued = queue.insert(client, &mut outcome).await?;

    outcome.companies_created = companies.changes.values().filter(|c| **c == Change::Created).count() as u64;
    outcome.companies_updated = companies.changes.values().filter(|c| **c == Change::Updated).count() as u64;
    outcome.deals_created = deals.values().filter(|d| d.2 == Change::Created).count() as u64;
    outcome.deals_updated = deals.values().filter(|d| d.2 == Change::Updated).count() as u64;
    outcome.unchanged = batch
        .iter()
        .filter(|spec| {
            !companies.changes.contains_key(spec.contractor.uei.as_str())
                && !deals.contains_key(&(spec.opportunity.notice_id.as_str(), spec.contractor.uei.as_str()))
        })
        .count() as u64;
    Ok(outcome)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Created,
    Updated,
}

impl Change {
    fn from_created(created: bool) -> Self {
        if created { Self::Created } else { Self::Updated }
    }

    fn operation(self) -> &'static str {
        match self {
            Self::Created => "create",
            Self::Updated => "update",
        }
    }
}

async fn upsert_opportunities<'a>(
    client: &impl GenericClient,
    opportunities: &BTreeMap<&'a str, &Opportunity>,
    outcome: &mut BatchWriteOutcome,
) -> Result<HashMap<&'a str, Uuid>, DbError> {
    let rows: Vec<&Opportunity> = opportunities.values().copied().collect();
    let text = |f: fn(&Opportunity) -> &Option<String>| rows.iter().map(|o| f(o).clone()).collect::<Vec<_>>();
    let notice_ids: Vec<&str> = opportunities.keys().copied().collect();
    let titles: Vec<&str> = rows.iter().map(|o| o.title.as_str()).collect();
    let values: Vec<Option<Decimal>> = rows.iter().map(|o| o.estimated_value).collect();
    let posted: Vec<_> = rows.iter().map(|o| o.posted_date).collect();
    let deadlines: Vec<_> = rows.iter().map(|o| o.deadline).collect();
    let statement = client
        .prepare_cached(
            "INSERT INTO opportunities AS o (notice_id, title, solicitation_number, description, agency, sub_agency,
               office, naics_code, psc_code, set_aside, notice_type, priority_flag, place_of_performance_state, url,
               estimated_value, posted_date, deadline)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
               $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
               $15::numeric[], $16::date[], $17::date[])
             ON CONFLICT (notice_id) DO UPDATE SET
               title = EXCLUDED.title, solicitation_number = EXCLUDED.solicitation_number,
               description = EXCLUDED.description, agency = EXCLUDED.agency, sub_agency = EXCLUDED.sub_agency,
               office = EXCLUDED.office, naics_code = EXCLUDED.naics_code, psc_code = EXCLUDED.psc_code,
               set_aside = EXCLUDED.set_aside, notice_type = EXCLUDED.notice_type,
               priority_flag = EXCLUDED.priority_flag,
               place_of_performance_state = EXCLUDED.place_of_performance_state, url = EXCLUDED.url,
               estimated_value = EXCLUDED.estimated_value, posted_date = EXCLUDED.posted_date,
               deadline = EXCLUDED.deadline
             WHERE (o.title, o.solicitation_number, o.description, o.agency, o.sub_agency, o.office, o.naics_code,
                    o.psc_code, o.set_aside, o.notice_type, o.priority_flag, o.place_of_performance_state, o.url,
                    o.estimated_value, o.posted_date, o.deadline)
               IS DISTINCT FROM
                   (EXCLUDED.title, EXCLUDED.solicitation_number, EXCLUDED.description, EXCLUDED.agency,
                    EXCLUDED.sub_agency, EXCLUDED.office, EXCLUDED.naics_code, EXCLUDED.psc_code,
                    EXCLUDED.set_aside, EXCLUDED.notice_type, EXCLUDED.priority_flag,
                    EXCLUDED.place_of_performance_state, EXCLUDED.url, EXCLUDED.estimated_value,
                    EXCLUDED.posted_date, EXCLUDED.deadline)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &notice_ids,
                &titles,
                &text(|o| &o.solicitation_number),
                &text(|o| &o.description),
                &text(|o| &o.agency),
                &text(|o| &o.sub_agency),
                &text(|o| &o.office),
                &text(|o| &o.naics_code),
                &text(|o| &o.psc_code),
                &text(|o| &o.set_aside),
                &text(|o| &o.notice_type),
                &text(|o| &o.priority_flag),
                &text(|o| &o.place_of_performance_state),
                &text(|o| &o.url),
                &values,
                &posted,
                &deadlines,
            ],
        )
        .await?;
    outcome.round_trips += 1;
    let ids = select_ids(
        client,
        "SELECT notice_id, id FROM opportunities WHERE notice_id = ANY($1)",
        &notice_ids,
    )
    .await?;
    outcome.round_trips += 1;
    Ok(key_ids(&notice_ids, ids))
}

async fn upsert_contractors<'a>(
    client: &impl GenericClient,
    contractors: &BTreeMap<&'a str, &Contractor>,
    outcome: &mut BatchWriteOutcome,
) -> Result<HashMap<&'a str, Uuid>, DbError> {
    let rows: Vec<&Contractor> = contractors.values().copied().collect();
    let text = |f: fn(&Contractor) -> &Option<String>| rows.iter().map(|c| f(c).clone()).collect::<Vec<_>>();
    let ueis: Vec<&str> = contractors.keys().copied().collect();
    let names: Vec<&str> = rows.iter().map(|c| c.name.as_str()).collect();
    let sources: Vec<&str> = rows.iter().map(|c| c.source.as_str()).collect();
    let registered: Vec<Option<bool>> = rows.iter().map(|c| c.sam_registered).collect();
    let readiness: Vec<Option<Decimal>> = rows.iter().map(|c| c.readiness_score).collect();
    let statement = client
        .prepare_cached(
            "INSERT INTO contractors AS c (uei, name, source, cage_code, website, phone, email, address, city, state,
               zip, primary_naics, sam_registered, readiness_score)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
               $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::numeric[])
             ON CONFLICT (uei) DO UPDATE SET
               name = EXCLUDED.name, source = EXCLUDED.source, cage_code = EXCLUDED.cage_code,
               website = EXCLUDED.website, phone = EXCLUDED.phone, email = EXCLUDED.email,
               address = EXCLUDED.address, city = EXCLUDED.city, state = EXCLUDED.state, zip = EXCLUDED.zip,
               primary_naics = EXCLUDED.primary_naics, sam_registered = EXCLUDED.sam_registered,
               readiness_score = EXCLUDED.readiness_score
             WHERE (c.name, c.source, c.cage_code, c.website, c.phone, c.email, c.address, c.city, c.state, c.zip,
                    c.primary_naics, c.sam_registered, c.readiness_score)
               IS DISTINCT FROM
                   (EXCLUDED.name, EXCLUDED.source, EXCLUDED.cage_code, EXCLUDED.website, EXCLUDED.phone,
                    EXCLUDED.email, EXCLUDED.address, EXCLUDED.city, EXCLUDED.state, EXCLUDED.zip,
                    EXCLUDED.primary_naics, EXCLUDED.sam_registered, EXCLUDED.readiness_score)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &ueis,
                &names,
                &sources,
                &text(|c| &c.cage_code),
                &text(|c| &c.website),
                &text(|c| &c.phone),
                &text(|c| &c.email),
                &text(|c| &c.address),
                &text(|c| &c.city),
                &text(|c| &c.state),
                &text(|c| &c.zip),
                &text(|c| &c.primary_naics),
                &registered,
                &readiness,
            ],
        )
        .await?;
    outcome.round_trips += 1;
    let ids = select_ids(client, "SELECT uei, id FROM contractors WHERE uei = ANY($1)", &ueis).await?;
    outcome.round_trips += 1;
    Ok(key_ids(&ueis, ids))
}

type MatchKey<'a> = (&'a str, &'a str);

async fn upsert_matches<'a>(
    client: &impl GenericClient,
    matches: &BTreeMap<MatchKey<'a>, &MatchSpec>,
    opportunity_ids: &HashMap<&str, Uuid>,
    contractor_ids: &HashMap<&str, Uuid>,
    outcome: &mut BatchWriteOutcome,
) -> Result<HashMap<MatchKey<'a>, Uuid>, DbError> {
    let opportunity_column: Vec<Uuid> = matches.keys().map(|(notice, _)| opportunity_ids[notice]).collect();
    let contractor_column: Vec<Uuid> = matches.keys().map(|(_, uei)| contractor_ids[uei]).collect();
    let scores: Vec<Decimal> = matches.values().map(|spec| spec.match_score).collect();
    let reasons: Vec<Option<Value>> = matches.values().map(|spec| spec.match_reasons.clone()).collect();
    let statement = client
        .prepare_cached(
            "INSERT INTO matches AS m (opportunity_id, contractor_id, match_score, match_reasons)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::numeric[], $4::jsonb[])
             ON CONFLICT (opportunity_id, contractor_id) DO UPDATE SET
               match_score = EXCLUDED.match_score, match_reasons = EXCLUDED.match_reasons
             WHERE (m.match_score, m.match_reasons) IS DISTINCT FROM (EXCLUDED.match_score, EXCLUDED.match_reasons)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[&opportunity_column, &contractor_column, &scores, &reasons],
        )
        .await?;
    outcome.round_trips += 1;
    let statement = client
        .prepare_cached(
            "SELECT m.opportunity_id, m.contractor_id, m.id
             FROM matches m JOIN UNNEST($1::uuid[], $2::uuid[]) AS k (opportunity_id, contractor_id)
               ON m.opportunity_id = k.opportunity_id AND m.contractor_id = k.contractor_id",
        )
        .await?;
    let rows = client
        .query(&statement, &[&opportunity_column, &contractor_column])
        .await?;
    outcome.round_trips += 1;
    let by_pair: HashMap<(Uuid, Uuid), Uuid> = rows.iter().map(|row| ((row.get(0), row.get(1)), row.get(2))).collect();
    Ok(matches
        .keys()
        .map(|key @ (notice, uei)| (*key, by_pair[&(opportunity_ids[notice], contractor_ids[uei])]))
        .collect())
}

struct Companies<'a> {
    /// Company id by contractor UEI, for every contractor in the batch.
    ids: HashMap<&'a str, Uuid>,
    /// The companies this batch created or changed, by contractor UEI.
    changes: BTreeMap<&'a str, Change>,
}

async fn upsert_companies<'a>(
    client: &impl GenericClient,
    contractors: &BTreeMap<&'a str, &Contractor>,
    contractor_ids: &HashMap<&str, Uuid>,
    outcome: &mut BatchWriteOutcome,
) -> Result<Companies<'a>, DbError> {
    let companies: Vec<_> = contractors.values().map(|c| c.company()).collect();
    let ueis: Vec<&str> = contractors.keys().copied().collect();
    let contractor_column: Vec<Uuid> = ueis.iter().map(|uei| contractor_ids[uei]).collect();
    let text = |f: fn(&crmsync_domain::ingest::CompanyFields) -> &Option<String>| {
        companies.iter().map(|c| f(c).clone()).collect::<Vec<_>>()
    };
    let sources: Vec<&str> = companies.iter().map(|c| c.source.as_str()).collect();
    let names: Vec<&str> = companies.iter().map(|c| c.name.as_str()).collect();
    let registered: Vec<Option<bool>> = companies.iter().map(|c| c.sam_registered).collect();
    let readiness: Vec<Option<Decimal>> = companies.iter().map(|c| c.readiness_score).collect();
    let qualification: Vec<&str> = companies.iter().map(|c| c.qualification_status.as_str()).collect();
    let statement = client
        .prepare_cached(
            "INSERT INTO companies AS c (contractor_id, source, name, uei, cage_code, website, phone, address, city,
               state, zip, primary_naics, sam_registered, readiness_score, qualification_status, lifecycle_stage,
               hubspot_sync_status)
             SELECT k.*, $16::text, 'pending'
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
               $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::numeric[],
               $15::text[]) AS k
             ON CONFLICT (contractor_id) DO UPDATE SET
               source = EXCLUDED.source, name = EXCLUDED.name, uei = EXCLUDED.uei, cage_code = EXCLUDED.cage_code,
               website = EXCLUDED.website, phone = EXCLUDED.phone, address = EXCLUDED.address,
               city = EXCLUDED.city, state = EXCLUDED.state, zip = EXCLUDED.zip,
               primary_naics = EXCLUDED.primary_naics, sam_registered = EXCLUDED.sam_registered,
               readiness_score = EXCLUDED.readiness_score, qualification_status = EXCLUDED.qualification_status,
               hubspot_sync_status = CASE WHEN c.hubspot_sync_status = 'deleted' THEN 'deleted' ELSE 'pending' END
             WHERE (c.source, c.name, c.uei, c.cage_code, c.website, c.phone, c.address, c.city, c.state, c.zip,
                    c.primary_naics, c.sam_registered, c.readiness_score, c.qualification_status)
               IS DISTINCT FROM
                   (EXCLUDED.source, EXCLUDED.name, EXCLUDED.uei, EXCLUDED.cage_code, EXCLUDED.website,
                    EXCLUDED.phone, EXCLUDED.address, EXCLUDED.city, EXCLUDED.state, EXCLUDED.zip,
                    EXCLUDED.primary_naics, EXCLUDED.sam_registered, EXCLUDED.readiness_score,
                    EXCLUDED.qualification_status)
             RETURNING c.contractor_id, (xmax = 0) AS created",
        )
        .await?;
    let changed = client
        .query(
            &statement,
            &[
                &contractor_column,
                &sources,
                &names,
                &ueis,
                &text(|c| &c.cage_code),
                &text(|c| &c.website),
                &text(|c| &c.phone),
                &text(|c| &c.address),
                &text(|c| &c.city),
                &text(|c| &c.state),
                &text(|c| &c.zip),
                &text(|c| &c.primary_naics),
                &registered,
                &readiness,
                &qualification,
                &COMPANY_LIFECYCLE_STAGE,
            ],
        )
        .await?;
    outcome.round_trips += 1;
    let uei_by_contractor: HashMap<Uuid, &str> = ueis.iter().map(|uei| (contractor_ids[uei], *uei)).collect();
    let changes = changed
        .iter()
        .map(|row| {
            (
                uei_by_contractor[&row.get::<_, Uuid>(0)],
                Change::from_created(row.get(1)),
            )
        })
        .collect();
    let statement = client
        .prepare_cached("SELECT contractor_id, id FROM companies WHERE contractor_id = ANY($1)")
        .await?;
    let rows = client.query(&statement, &[&contractor_column]).await?;
    outcome.round_trips += 1;
    let ids = rows
        .iter()
        .map(|row| (uei_by_contractor[&row.get::<_, Uuid>(0)], row.get(1)))
        .collect();
    Ok(Companies { ids, changes })
}

/// The deals this batch created or changed: (deal id, company id, change) by match key.
type DealChanges<'a> = BTreeMap<MatchKey<'a>, (Uuid, Uuid, Change)>;

async fn upsert_deals<'a>(
    client: &impl GenericClient,
    matches: &BTreeMap<MatchKey<'a>, &MatchSpec>,
    opportunity_ids: &HashMap<&str, Uuid>,
    match_ids: &HashMap<MatchKey<'a>, Uuid>,
    companies: &Companies<'_>,
    outcome: &mut BatchWriteOutcome,
) -> Result<DealChanges<'a>, DbError> {
    let keys: Vec<MatchKey<'a>> = matches.keys().copied().collect();
    let deals: Vec<_> = matches.values().map(|spec| spec.deal()).collect();
    let match_column: Vec<Uuid> = keys.iter().map(|key| match_ids[key]).collect();
    let opportunity_column: Vec<Uuid> = keys.iter().map(|(notice, _)| opportunity_ids[notice]).collect();
    let company_column: Vec<Uuid> = keys.iter().map(|(_, uei)| companies.ids[uei]).collect();
    let names: Vec<&str> = deals.iter().map(|d| d.deal_name.as_str()).collect();
    let values: Vec<Option<Decimal>> = deals.iter().map(|d| d.deal_value).collect();
    let close_dates: Vec<_> = deals.iter().map(|d| d.expected_close_date).collect();
    let scores: Vec<Decimal> = deals.iter().map(|d| d.match_score).collect();
    let probabilities: Vec<i32> = deals.iter().map(|d| d.win_probability).collect();
    let priorities: Vec<&str> = deals.iter().map(|d| d.priority.as_str()).collect();
    let statement = client
        .prepare_cached(
            "INSERT INTO deals AS d (match_id, opportunity_id, company_id, deal_name, deal_value, expected_close_date,
               match_score, win_probability, priority, pipeline, stage, hubspot_sync_status)
             SELECT k.*, $10::text, $11::text, 'pending'
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::numeric[], $6::date[], $7::numeric[],
               $8::int4[], $9::text[]) AS k
             ON CONFLICT (match_id) DO UPDATE SET
               deal_name = EXCLUDED.deal_name, deal_value = EXCLUDED.deal_value,
               expected_close_date = EXCLUDED.expected_close_date, match_score = EXCLUDED.match_score,
               win_probability = EXCLUDED.win_probability, priority = EXCLUDED.priority,
               hubspot_sync_status = CASE WHEN d.hubspot_sync_status = 'deleted' THEN 'deleted' ELSE 'pending' END
             WHERE (d.deal_name, d.deal_value, d.expected_close_date, d.match_score, d.win_probability, d.priority)
               IS DISTINCT FROM
                   (EXCLUDED.deal_name, EXCLUDED.deal_value, EXCLUDED.expected_close_date, EXCLUDED.match_score,
                    EXCLUDED.win_probability, EXCLUDED.priority)
             RETURNING d.match_id, d.id, d.company_id, (xmax = 0) AS created",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &match_column,
                &opportunity_column,
                &company_column,
                &names,
                &values,
                &close_dates,
                &scores,
                &probabilities,
                &priorities,
                &DEAL_PIPELINE,
                &FIRST_STAGE.as_str(),
            ],
        )
        .await?;
    outcome.round_trips += 1;
    let key_by_match: HashMap<Uuid, MatchKey<'a>> = keys.iter().map(|key| (match_ids[key], *key)).collect();
    Ok(rows
        .iter()
        .map(|row| {
            let company_id: Option<Uuid> = row.get(2);
            (
                key_by_match[&row.get::<_, Uuid>(0)],
                (
                    row.get(1),
                    company_id.unwrap_or_default(),
                    Change::from_created(row.get(3)),
                ),
            )
        })
        .collect())
}

/// sync_queue rows to insert in one statement.
#[derive(Default)]
struct QueueRows {
    entity_types: Vec<&'static str>,
    entity_ids: Vec<Uuid>,
    operations: Vec<&'static str>,
    payloads: Vec<Value>,
}

impl QueueRows {
    fn push(&mut self, entity_type: &'static str, entity_id: Uuid, change: Change, payload: Value) {
        self.entity_types.push(entity_type);
        self.entity_ids.push(entity_id);
        self.operations.push(change.operation());
        self.payloads.push(payload);
    }

    async fn insert(&self, client: &impl GenericClient, outcome: &mut BatchWriteOutcome) -> Result<u64, DbError> {
        if self.entity_ids.is_empty() {
            return Ok(0);
        }
        let statement = client
            .prepare_cached(
                "INSERT INTO sync_queue (entity_type, entity_id, operation, payload)
                 SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::jsonb[])",
            )
            .await?;
        let inserted = client
            .execute(
                &statement,
                &[&self.entity_types, &self.entity_ids, &self.operations, &self.payloads],
            )
            .await?;
        outcome.round_trips += 1;
        Ok(inserted)
    }
}

async fn select_ids(client: &impl GenericClient, sql: &str, keys: &[&str]) -> Result<HashMap<String, Uuid>, DbError> {
    let statement = client.prepare_cached(sql).await?;
    let rows = client.query(&statement, &[&keys]).await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

fn key_ids<'a>(keys: &[&'a str], mut ids: HashMap<String, Uuid>) -> HashMap<&'a str, Uuid> {
    keys.iter()
        .filter_map(|key| ids.remove(*key).map(|id| (*key, id)))
        .collect()
}

/// Writes the delivery's workflow_logs row and one workflow_errors row per rejection, in one statement.
pub async fn record_delivery(
    client: &impl GenericClient,
    source: &str,
    summary: &Value,
    rejections: &[(Rejection, Value)],
) -> Result<(), DbError> {
    let messages: Vec<&str> = rejections.iter().map(|(r, _)| r.error.as_str()).collect();
    let fields: Vec<Option<&str>> = rejections.iter().map(|(r, _)| r.field.as_deref()).collect();
    let payloads: Vec<Value> = rejections
        .iter()
        .map(|(r, item)| json!({ "index": r.index, "match": item }))
        .collect();
    let level = if rejections.is_empty() { "info" } else { "warn" };
    let statement = client
        .prepare_cached(
            "WITH log AS (
               INSERT INTO workflow_logs (workflow, module, level, message, details)
               VALUES ('crm_ingest', $1, $2, 'match delivery ingested', $3)
             )
             INSERT INTO workflow_errors (workflow, module, error_message, field, payload)
             SELECT 'crm_ingest', $1, k.message, k.field, k.payload
             FROM UNNEST($4::text[], $5::text[], $6::jsonb[]) AS k (message, field, payload)",
        )
        .await?;
    client
        .execute(&statement, &[&source, &level, summary, &messages, &fields, &payloads])
        .await?;
    Ok(())
}
