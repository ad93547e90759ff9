//! `PgMatchStore`: match ingestion in PostgreSQL. A batch is written with one multi-row statement per table
//! (UNNEST arrays), so 1,000 matches cost about a dozen round trips, not thousands.
//!
//! Concurrency: every key is written with INSERT ... ON CONFLICT, never check-then-insert, and each statement's
//! rows are sorted by key so two overlapping batches lock rows in the same order. A source row (opportunity,
//! contractor, match) is read `FOR UPDATE` before its upsert, so the batch knows what it changed; `DO UPDATE ...
//! WHERE ... IS DISTINCT FROM` touches a row only when its data changed, and xmax = 0 tells "created" from
//! "updated". Companies and deals are then written only where their sources changed, in the fields derived from
//! what changed: an unchanged re-delivery leaves them, and any HubSpot edits in them, alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use crate::{Db, Pool};
use crmsync_domain::DomainError;
use crmsync_domain::hubspot_status::HubSpotSyncStatus;
use crmsync_domain::ingest::{
    COMPANY_LIFECYCLE_STAGE, Contractor, DEAL_PIPELINE, DealFields, FIRST_STAGE, MatchSpec, Opportunity, Rejection,
    StoredMatch,
};
use crmsync_domain::ports::{BatchWriteOutcome, LoadedMatch, MatchStore};
use crmsync_domain::sync::EntityType;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::DbError;
use crate::outbox::{self, Dedupe, QueuedChange};

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
    async fn load_matches(&self, match_ids: &[Uuid]) -> Result<Vec<LoadedMatch>, DomainError> {
        let client = self.pool.get().await?;
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
        let client = self.pool.get().await?;
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

/// Loads matches by id with their opportunity and contractor, for ingestion by reference.
///
/// These rows belong to the upstream workflow, whose tables crmsync adopts as they are (see `adopt`), so only the
/// columns the guide's own Steps A and B read are read, each cast to the type the spec holds (an adopted table may
/// keep a value as `real`, a deadline as `timestamptz`, a key as `varchar`). The spec is marked stored: ingestion
/// writes its company and deal, never these rows. A row that cannot make a deal (a required column is null, the
/// opportunity or contractor is gone) is that match's own error, naming the column.
pub async fn load_matches(client: &impl Db, match_ids: &[Uuid]) -> Result<Vec<LoadedMatch>, DbError> {
    let statement: &str = "SELECT m.id, m.opportunity_id, m.contractor_id, m.match_score::numeric,
                    o.id, o.notice_id::text, o.title::text, o.estimated_value::numeric, o.deadline::date,
                    o.priority_flag::text,
                    c.id, c.uei::text, c.name::text, c.source::text, c.cage_code::text, c.website::text,
                    c.phone::text, c.address::text, c.city::text, c.state::text, c.zip::text,
                    c.primary_naics::text, c.sam_registered, c.readiness_score::numeric
             FROM matches m
             LEFT JOIN opportunities o ON o.id = m.opportunity_id
             LEFT JOIN contractors c ON c.id = m.contractor_id
             WHERE m.id = ANY($1)";
    let rows = client.query(statement, &[&match_ids]).await?;
    Ok(rows.iter().map(|row| (row.get(0), stored_spec(row))).collect())
}

/// A stored match's spec from [`load_matches`]' row.
fn stored_spec(row: &tokio_postgres::Row) -> Result<MatchSpec, DomainError> {
    let match_id: Uuid = row.get(0);
    let opportunity_id: Option<Uuid> = row.get(4);
    let contractor_id: Option<Uuid> = row.get(10);
    let opportunity_id = opportunity_id.ok_or_else(|| match row.get::<_, Option<Uuid>>(1) {
        Some(id) => DomainError::invalid(
            "opportunity_id",
            format!("no opportunity with id {id} (match {match_id})"),
        ),
        None => DomainError::invalid("opportunity_id", format!("is null in match {match_id}")),
    })?;
    let contractor_id = contractor_id.ok_or_else(|| match row.get::<_, Option<Uuid>>(2) {
        Some(id) => DomainError::invalid(
            "contractor_id",
            format!("no contractor with id {id} (match {match_id})"),
        ),
        None => DomainError::invalid("contractor_id", format!("is null in match {match_id}")),
    })?;
    let required = |index: usize, field: &str, row_id: Uuid| {
        row.get::<_, Option<String>>(index)
            .filter(|text| !text.trim().is_empty())
            .ok_or_else(|| DomainError::invalid(field, format!("is null or empty in the stored row {row_id}")))
    };
    let match_score: Option<Decimal> = row.get(3);
    Ok(MatchSpec {
        match_score: match_score
            .ok_or_else(|| DomainError::invalid("match_score", format!("is null in match {match_id}")))?,
        match_reasons: None,
        opportunity: Opportunity {
            notice_id: required(5, "opportunity.notice_id", opportunity_id)?,
            title: required(6, "opportunity.title", opportunity_id)?,
            estimated_value: row.get(7),
            deadline: row.get(8),
            priority_flag: row.get(9),
            ..Opportunity::default()
        },
        contractor: Contractor {
            uei: required(11, "contractor.uei", contractor_id)?,
            name: required(12, "contractor.name", contractor_id)?,
            // Step A copies it into companies.source, which is never null; the guide's pipeline is SAM.gov's.
            source: row.get::<_, Option<String>>(13).unwrap_or_else(|| "sam_gov".to_owned()),
            cage_code: row.get(14),
            website: row.get(15),
            phone: row.get(16),
            email: None,
            address: row.get(17),
            city: row.get(18),
            state: row.get(19),
            zip: row.get(20),
            primary_naics: row.get(21),
            sam_registered: row.get(22),
            readiness_score: row.get(23),
        },
        stored: Some(StoredMatch {
            match_id,
            opportunity_id,
            contractor_id,
        }),
    })
}

/// Steps A and B for a whole batch inside the caller's transaction. Within a batch the last occurrence of an
/// opportunity, contractor or match wins, as if the items had been delivered one after another, and every deal is
/// built from those stored copies. An embedded record wins over a stored row the batch also references: the record
/// is what gets written.
///
/// Only embedded records are upserted. A stored match ([`MatchSpec::stored`], ingestion by reference) keeps its
/// opportunity, contractor and match rows as they are: they are the upstream workflow's, and the spec holds only
/// the columns Steps A and B read, so writing it back would blank the rest.
///
/// Companies and deals are derived rows: one is written only when its sources (contractor; opportunity,
/// contractor name and match) changed, and then only in the fields derived from what changed. Its other fields
/// may hold a newer HubSpot edit (website, phone and priority are "newer change wins", see ARCHITECTURE.md's
/// ownership section) that an unchanged re-delivery must not undo. So each source table's rows are read, locked,
/// before their upsert, and the difference says which derived fields to write.
pub async fn write_match_batch(client: &impl Db, batch: &[MatchSpec]) -> Result<BatchWriteOutcome, DbError> {
    let mut outcome = BatchWriteOutcome::default();
    if batch.is_empty() {
        return Ok(outcome);
    }
    let stored = batch.iter().filter_map(|spec| Some((spec, spec.stored?)));
    let embedded = batch.iter().filter(|spec| spec.stored.is_none());
    let copies = BatchCopies::of(stored.clone().map(|(spec, _)| spec).chain(embedded.clone()));
    let upserts = BatchCopies::of(embedded);
    let (opportunities, contractors, matches) = (&copies.opportunities, &copies.contractors, &copies.matches);

    let mut opportunity_rows = upsert_opportunities(client, &upserts.opportunities, &mut outcome).await?;
    let mut contractor_rows = upsert_contractors(client, &upserts.contractors, &mut outcome).await?;
    for (spec, ids) in stored.clone() {
        opportunity_rows
            .entry(spec.opportunity.notice_id.as_str())
            .or_insert_with(|| SourceRow::unchanged(ids.opportunity_id));
        contractor_rows
            .entry(spec.contractor.uei.as_str())
            .or_insert_with(|| SourceRow::unchanged(ids.contractor_id));
    }
    let mut match_rows = upsert_matches(
        client,
        &upserts.matches,
        &opportunity_rows,
        &contractor_rows,
        &mut outcome,
    )
    .await?;
    for (spec, ids) in stored {
        match_rows
            .entry((spec.opportunity.notice_id.as_str(), spec.contractor.uei.as_str()))
            .or_insert_with(|| SourceRow::unchanged(ids.match_id));
    }
    let companies = write_companies(client, contractors, &contractor_rows, &mut outcome).await?;
    let sources = DealSources {
        opportunities,
        contractors,
        opportunity_rows: &opportunity_rows,
        contractor_rows: &contractor_rows,
        match_rows: &match_rows,
    };
    let deals = write_deals(client, matches, &sources, &companies, &mut outcome).await?;

    let mut queue = QueueRows::default();
    for (uei, change) in &companies.changes {
        let company_id = companies.ids[uei];
        let payload = json!({ "company_id": company_id, "contractor_id": contractor_rows[uei].id, "uei": uei });
        queue.push(EntityType::Company, company_id, *change, payload);
    }
    for (key, (deal_id, company_id, change)) in &deals {
        let payload = json!({ "deal_id": deal_id, "company_id": company_id, "opportunity_id": key.0 });
        queue.push(EntityType::Deal, *deal_id, *change, payload);
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

/// A batch's opportunities, contractors and matches by key; a later occurrence of a key replaces an earlier one.
struct BatchCopies<'a> {
    opportunities: BTreeMap<&'a str, &'a Opportunity>,
    contractors: BTreeMap<&'a str, &'a Contractor>,
    matches: BTreeMap<MatchKey<'a>, &'a MatchSpec>,
}

impl<'a> BatchCopies<'a> {
    fn of(specs: impl Iterator<Item = &'a MatchSpec> + Clone) -> Self {
        Self {
            opportunities: specs
                .clone()
                .map(|spec| (spec.opportunity.notice_id.as_str(), &spec.opportunity))
                .collect(),
            contractors: specs
                .clone()
                .map(|spec| (spec.contractor.uei.as_str(), &spec.contractor))
                .collect(),
            matches: specs
                .map(|spec| {
                    (
                        (spec.opportunity.notice_id.as_str(), spec.contractor.uei.as_str()),
                        spec,
                    )
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Created,
    Updated,
}

impl Change {
    fn operation(self) -> &'static str {
        match self {
            Self::Created => "create",
            Self::Updated => "update",
        }
    }
}

/// A set of derived columns: bit `b` stands for every entry of [`COMPANY_COLUMNS`] or [`DEAL_COLUMNS`] with
/// that bit.
type Columns = i32;
/// Every derived column: a source row whose previous state is unknown.
const ALL_COLUMNS: Columns = -1;

/// The company columns Step A copies from its contractor; `qualification_status` follows `readiness_score`.
/// `uei` is the contractor's key and never changes.
const COMPANY_COLUMNS: &[(&str, Columns)] = &[
    ("source", 1),
    ("name", 1 << 1),
    ("cage_code", 1 << 2),
    ("website", 1 << 3),
    ("phone", 1 << 4),
    ("address", 1 << 5),
    ("city", 1 << 6),
    ("state", 1 << 7),
    ("zip", 1 << 8),
    ("primary_naics", 1 << 9),
    ("sam_registered", 1 << 10),
    ("readiness_score", 1 << 11),
    ("qualification_status", 1 << 11),
];

/// The company columns a contractor's change touches, in [`COMPANY_COLUMNS`]' bit order.
fn company_columns(before: &Contractor, after: &Contractor) -> Columns {
    flags([
        before.source != after.source,
        before.name != after.name,
        before.cage_code != after.cage_code,
        before.website != after.website,
        before.phone != after.phone,
        before.address != after.address,
        before.city != after.city,
        before.state != after.state,
        before.zip != after.zip,
        before.primary_naics != after.primary_naics,
        before.sam_registered != after.sam_registered,
        before.readiness_score != after.readiness_score,
    ])
}

const DEAL_NAME: Columns = 1;
const DEAL_VALUE: Columns = 1 << 1;
const DEAL_CLOSE_DATE: Columns = 1 << 2;
const DEAL_SCORE: Columns = 1 << 3;
const DEAL_PRIORITY: Columns = 1 << 4;

/// The deal columns Step B derives, by what they come from: the title and the contractor's name (deal_name),
/// the opportunity's value, deadline and priority flag, the match's score (match_score and win_probability).
const DEAL_COLUMNS: &[(&str, Columns)] = &[
    ("deal_name", DEAL_NAME),
    ("deal_value", DEAL_VALUE),
    ("expected_close_date", DEAL_CLOSE_DATE),
    ("match_score", DEAL_SCORE),
    ("win_probability", DEAL_SCORE),
    ("priority", DEAL_PRIORITY),
];

fn flags<const N: usize>(changed: [bool; N]) -> Columns {
    changed
        .iter()
        .enumerate()
        .filter(|(_, changed)| **changed)
        .fold(0, |columns, (bit, _)| columns | 1 << bit)
}

/// The SET list and WHERE test of an UPDATE of table alias `t` from input `k` that writes only the columns whose
/// bit is in `k.changed`, and only when one of them actually differs.
fn masked_update(columns: &[(&str, Columns)]) -> (String, String) {
    let set = columns
        .iter()
        .map(|(column, bit)| format!("{column} = CASE WHEN k.changed & {bit} <> 0 THEN k.{column} ELSE t.{column} END"))
        .collect::<Vec<_>>()
        .join(", ");
    let differs = columns
        .iter()
        .map(|(column, bit)| format!("(k.changed & {bit} <> 0 AND t.{column} IS DISTINCT FROM k.{column})"))
        .collect::<Vec<_>>()
        .join(" OR ");
    (set, differs)
}

/// A source row (opportunity, contractor or match) after its upsert.
#[derive(Debug, Clone, Copy)]
struct SourceRow {
    id: Uuid,
    /// The company columns its change touches (contractors only).
    company_columns: Columns,
    /// The deal columns its change touches.
    deal_columns: Columns,
}

impl SourceRow {
    /// A row this batch did not change: nothing derived from it is rewritten.
    fn unchanged(id: Uuid) -> Self {
        Self {
            id,
            company_columns: 0,
            deal_columns: 0,
        }
    }
}

/// Combines what a source table held before its upsert (read under lock: id and the derived columns the change
/// touches) with what the upsert wrote (id, and whether it created the row). A key in neither was created by a
/// concurrent delivery with the same data after the read; it is returned in the second list for an id lookup.
fn resolve<K: Copy + Eq + std::hash::Hash>(
    keys: impl Iterator<Item = K>,
    mut before: HashMap<K, SourceRow>,
    mut written: HashMap<K, (Uuid, bool)>,
) -> (HashMap<K, SourceRow>, Vec<K>) {
    let mut rows = HashMap::new();
    let mut missing = Vec::new();
    for key in keys {
        let row = match (before.remove(&key), written.remove(&key)) {
            (Some(row), _) => row,
            // New: its derived rows do not exist yet and are created whole.
            (None, Some((id, true))) => SourceRow {
                id,
                company_columns: 0,
                deal_columns: 0,
            },
            // Created by a concurrent delivery after the read, then changed by this one: rewrite everything.
            (None, Some((id, false))) => SourceRow {
                id,
                company_columns: ALL_COLUMNS,
                deal_columns: ALL_COLUMNS,
            },
            (None, None) => {
                missing.push(key);
                continue;
            }
        };
        rows.insert(key, row);
    }
    (rows, missing)
}

/// Fills in the rows [`resolve`] could not place: unchanged, so nothing derived from them is rewritten.
fn unchanged_rows<'a>(rows: &mut HashMap<&'a str, SourceRow>, missing: &[&'a str], ids: &HashMap<String, Uuid>) {
    for key in missing {
        if let Some(id) = ids.get(*key) {
            rows.insert(
                key,
                SourceRow {
                    id: *id,
                    company_columns: 0,
                    deal_columns: 0,
                },
            );
        }
    }
}

async fn upsert_opportunities<'a>(
    client: &impl Db,
    opportunities: &BTreeMap<&'a str, &Opportunity>,
    outcome: &mut BatchWriteOutcome,
) -> Result<HashMap<&'a str, SourceRow>, DbError> {
    if opportunities.is_empty() {
        return Ok(HashMap::new());
    }
    let notice_ids: Vec<&str> = opportunities.keys().copied().collect();
    let before = lock_opportunities(client, opportunities, &notice_ids).await?;
    outcome.round_trips += 1;
    let written = insert_opportunities(client, opportunities, &notice_ids).await?;
    outcome.round_trips += 1;
    const UNCHANGED: &str = "SELECT notice_id::text, id FROM opportunities WHERE notice_id = ANY($1)";
    rows_by_key(client, opportunities, before, &written, UNCHANGED, outcome).await
}

/// Every row of a batch keyed by a text key (opportunities, contractors) after its upsert: from the upsert's
/// `RETURNING` when it wrote the row, else as locked before it, else (a row another transaction created meanwhile)
/// read with `unchanged_sql` in one more round trip.
async fn rows_by_key<'a, V>(
    client: &impl Db,
    keyed: &BTreeMap<&'a str, V>,
    before: HashMap<&'a str, SourceRow>,
    written: &[tokio_postgres::Row],
    unchanged_sql: &str,
    outcome: &mut BatchWriteOutcome,
) -> Result<HashMap<&'a str, SourceRow>, DbError> {
    let written = written_by_key(keyed, written);
    let (mut rows, missing) = resolve(keyed.keys().copied(), before, written);
    if !missing.is_empty() {
        let ids = select_ids(client, unchanged_sql, &missing).await?;
        outcome.round_trips += 1;
        unchanged_rows(&mut rows, &missing, &ids);
    }
    Ok(rows)
}

/// Locks the batch's stored opportunities and says which deal columns each one's new version changes. Reads only
/// the columns Step B derives from, cast to what the record holds (an adopted table's types may differ), and
/// null-safe (an adopted table may leave them nullable).
async fn lock_opportunities<'a>(
    client: &impl Db,
    opportunities: &BTreeMap<&'a str, &Opportunity>,
    notice_ids: &[&str],
) -> Result<HashMap<&'a str, SourceRow>, DbError> {
    let statement: &str =
        "SELECT notice_id::text, id, title::text, estimated_value::numeric, deadline::date, priority_flag::text
             FROM opportunities WHERE notice_id = ANY($1) ORDER BY notice_id FOR UPDATE";
    Ok(client
        .query(statement, &[&notice_ids])
        .await?
        .iter()
        .filter_map(|row| {
            let (key, new) = opportunities.get_key_value(row.get::<_, &str>(0))?;
            let title: Option<String> = row.get(2);
            let value: Option<Decimal> = row.get(3);
            let deadline: Option<chrono::NaiveDate> = row.get(4);
            let flag: Option<String> = row.get(5);
            let deal_columns = [
                (title.as_deref() != Some(new.title.as_str()), DEAL_NAME),
                (value != new.estimated_value, DEAL_VALUE),
                (deadline != new.deadline, DEAL_CLOSE_DATE),
                (flag != new.priority_flag, DEAL_PRIORITY),
            ]
            .iter()
            .filter(|(changed, _)| *changed)
            .fold(0, |columns, (_, column)| columns | column);
            Some((
                *key,
                SourceRow {
                    id: row.get(1),
                    company_columns: 0,
                    deal_columns,
                },
            ))
        })
        .collect())
}

/// Upserts the batch's opportunities in one statement, writing only those that changed.
async fn insert_opportunities(
    client: &impl Db,
    opportunities: &BTreeMap<&str, &Opportunity>,
    notice_ids: &[&str],
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    let rows: Vec<&Opportunity> = opportunities.values().copied().collect();
    let text = |f: fn(&Opportunity) -> &Option<String>| rows.iter().map(|o| f(o).clone()).collect::<Vec<_>>();
    let titles: Vec<&str> = rows.iter().map(|o| o.title.as_str()).collect();
    let values: Vec<Option<Decimal>> = rows.iter().map(|o| o.estimated_value).collect();
    let posted: Vec<_> = rows.iter().map(|o| o.posted_date).collect();
    let deadlines: Vec<_> = rows.iter().map(|o| o.deadline).collect();
    let statement: &str =
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
                    EXCLUDED.posted_date, EXCLUDED.deadline)
             RETURNING o.notice_id::text, o.id, (o.xmax = 0) AS created";
    client
        .query(
            statement,
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
        .await
}

/// An upsert's `RETURNING key, id, created` rows by the batch's own key strings.
fn written_by_key<'a, V>(keys: &BTreeMap<&'a str, V>, rows: &[tokio_postgres::Row]) -> HashMap<&'a str, (Uuid, bool)> {
    rows.iter()
        .filter_map(|row| {
            let (key, _) = keys.get_key_value(row.get::<_, &str>(0))?;
            Some((*key, (row.get(1), row.get(2))))
        })
        .collect()
}

async fn upsert_contractors<'a>(
    client: &impl Db,
    contractors: &BTreeMap<&'a str, &Contractor>,
    outcome: &mut BatchWriteOutcome,
) -> Result<HashMap<&'a str, SourceRow>, DbError> {
    if contractors.is_empty() {
        return Ok(HashMap::new());
    }
    let ueis: Vec<&str> = contractors.keys().copied().collect();
    let before = lock_contractors(client, contractors, &ueis).await?;
    outcome.round_trips += 1;
    let written = insert_contractors(client, contractors, &ueis).await?;
    outcome.round_trips += 1;
    const UNCHANGED: &str = "SELECT uei::text, id FROM contractors WHERE uei = ANY($1)";
    rows_by_key(client, contractors, before, &written, UNCHANGED, outcome).await
}

/// Locks the batch's stored contractors and says which company and deal columns each one's new version changes.
/// Reads only the columns Step A copies, cast and null-safe like [`lock_opportunities`].
async fn lock_contractors<'a>(
    client: &impl Db,
    contractors: &BTreeMap<&'a str, &Contractor>,
    ueis: &[&str],
) -> Result<HashMap<&'a str, SourceRow>, DbError> {
    let statement: &str = "SELECT uei::text, id, name::text, source::text, cage_code::text, website::text, phone::text,
                    address::text, city::text, state::text, zip::text, primary_naics::text, sam_registered,
                    readiness_score::numeric
             FROM contractors WHERE uei = ANY($1) ORDER BY uei FOR UPDATE";
    Ok(client
        .query(statement, &[&ueis])
        .await?
        .iter()
        .filter_map(|row| {
            let (key, new) = contractors.get_key_value(row.get::<_, &str>(0))?;
            let stored = Contractor {
                uei: row.get(0),
                // A null reads as empty: a record's name and source never are, so it counts as changed.
                name: row.get::<_, Option<String>>(2).unwrap_or_default(),
                source: row.get::<_, Option<String>>(3).unwrap_or_default(),
                cage_code: row.get(4),
                website: row.get(5),
                phone: row.get(6),
                email: None,
                address: row.get(7),
                city: row.get(8),
                state: row.get(9),
                zip: row.get(10),
                primary_naics: row.get(11),
                sam_registered: row.get(12),
                readiness_score: row.get(13),
            };
            let deal_columns = if stored.name != new.name { DEAL_NAME } else { 0 };
            Some((
                *key,
                SourceRow {
                    id: row.get(1),
                    company_columns: company_columns(&stored, new),
                    deal_columns,
                },
            ))
        })
        .collect())
}

/// Upserts the batch's contractors in one statement, writing only those that changed.
async fn insert_contractors(
    client: &impl Db,
    contractors: &BTreeMap<&str, &Contractor>,
    ueis: &[&str],
) -> Result<Vec<tokio_postgres::Row>, DbError> {
    let rows: Vec<&Contractor> = contractors.values().copied().collect();
    let text = |f: fn(&Contractor) -> &Option<String>| rows.iter().map(|c| f(c).clone()).collect::<Vec<_>>();
    let names: Vec<&str> = rows.iter().map(|c| c.name.as_str()).collect();
    let sources: Vec<&str> = rows.iter().map(|c| c.source.as_str()).collect();
    let registered: Vec<Option<bool>> = rows.iter().map(|c| c.sam_registered).collect();
    let readiness: Vec<Option<Decimal>> = rows.iter().map(|c| c.readiness_score).collect();
    let statement: &str =
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
                    EXCLUDED.primary_naics, EXCLUDED.sam_registered, EXCLUDED.readiness_score)
             RETURNING c.uei::text, c.id, (c.xmax = 0) AS created";
    client
        .query(
            statement,
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
        .await
}

type MatchKey<'a> = (&'a str, &'a str);

async fn upsert_matches<'a>(
    client: &impl Db,
    matches: &BTreeMap<MatchKey<'a>, &MatchSpec>,
    opportunity_rows: &HashMap<&str, SourceRow>,
    contractor_rows: &HashMap<&str, SourceRow>,
    outcome: &mut BatchWriteOutcome,
) -> Result<HashMap<MatchKey<'a>, SourceRow>, DbError> {
    if matches.is_empty() {
        return Ok(HashMap::new());
    }
    let keys: Vec<MatchKey<'a>> = matches.keys().copied().collect();
    let pair = |(notice, uei): &MatchKey<'_>| (opportunity_rows[notice].id, contractor_rows[uei].id);
    let key_by_pair: HashMap<(Uuid, Uuid), MatchKey<'a>> = keys.iter().map(|key| (pair(key), *key)).collect();
    let opportunity_column: Vec<Uuid> = keys.iter().map(|key| pair(key).0).collect();
    let contractor_column: Vec<Uuid> = keys.iter().map(|key| pair(key).1).collect();

    let before = lock_matches(client, matches, &key_by_pair, &opportunity_column, &contractor_column).await?;
    outcome.round_trips += 1;

    let scores: Vec<Decimal> = matches.values().map(|spec| spec.match_score).collect();
    let reasons: Vec<Option<Value>> = matches.values().map(|spec| spec.match_reasons.clone()).collect();
    let statement: &str = "INSERT INTO matches AS m (opportunity_id, contractor_id, match_score, match_reasons)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::numeric[], $4::jsonb[])
             ON CONFLICT (opportunity_id, contractor_id) DO UPDATE SET
               match_score = EXCLUDED.match_score, match_reasons = EXCLUDED.match_reasons
             -- ::jsonb: an adopted table may keep match_reasons as json, which has no equality operator.
             WHERE (m.match_score, m.match_reasons::jsonb)
               IS DISTINCT FROM (EXCLUDED.match_score, EXCLUDED.match_reasons::jsonb)
             RETURNING m.opportunity_id, m.contractor_id, m.id, (m.xmax = 0) AS created";
    let written: HashMap<MatchKey<'a>, (Uuid, bool)> = client
        .query(statement, &[&opportunity_column, &contractor_column, &scores, &reasons])
        .await?
        .iter()
        .filter_map(|row| Some((*key_by_pair.get(&(row.get(0), row.get(1)))?, (row.get(2), row.get(3)))))
        .collect();
    outcome.round_trips += 1;
    let (mut rows, missing) = resolve(keys.iter().copied(), before, written);
    if !missing.is_empty() {
        let pairs: Vec<(Uuid, Uuid)> = missing.iter().map(pair).collect();
        rows.extend(unchanged_matches(client, &pairs, &key_by_pair).await?);
        outcome.round_trips += 1;
    }
    Ok(rows)
}

/// Locks the batch's stored matches and says which of them change the deal's score.
async fn lock_matches<'a>(
    client: &impl Db,
    matches: &BTreeMap<MatchKey<'a>, &MatchSpec>,
    key_by_pair: &HashMap<(Uuid, Uuid), MatchKey<'a>>,
    opportunity_column: &[Uuid],
    contractor_column: &[Uuid],
) -> Result<HashMap<MatchKey<'a>, SourceRow>, DbError> {
    let statement: &str = "SELECT m.opportunity_id, m.contractor_id, m.id, m.match_score::numeric
             FROM matches m JOIN UNNEST($1::uuid[], $2::uuid[]) AS k (opportunity_id, contractor_id)
               ON m.opportunity_id = k.opportunity_id AND m.contractor_id = k.contractor_id
             ORDER BY m.opportunity_id, m.contractor_id
             FOR UPDATE OF m";
    Ok(client
        .query(statement, &[&opportunity_column, &contractor_column])
        .await?
        .iter()
        .filter_map(|row| {
            let key = *key_by_pair.get(&(row.get(0), row.get(1)))?;
            let score: Option<Decimal> = row.get(3);
            let deal_columns = if score != Some(matches[&key].match_score) {
                DEAL_SCORE
            } else {
                0
            };
            Some((
                key,
                SourceRow {
                    id: row.get(2),
                    company_columns: 0,
                    deal_columns,
                },
            ))
        })
        .collect())
}

/// The ids of matches the upsert left alone (unchanged), as rows that change nothing derived.
async fn unchanged_matches<'a>(
    client: &impl Db,
    pairs: &[(Uuid, Uuid)],
    key_by_pair: &HashMap<(Uuid, Uuid), MatchKey<'a>>,
) -> Result<Vec<(MatchKey<'a>, SourceRow)>, DbError> {
    let statement: &str = "SELECT m.opportunity_id, m.contractor_id, m.id
             FROM matches m JOIN UNNEST($1::uuid[], $2::uuid[]) AS k (opportunity_id, contractor_id)
               ON m.opportunity_id = k.opportunity_id AND m.contractor_id = k.contractor_id";
    let opportunity_column: Vec<Uuid> = pairs.iter().map(|p| p.0).collect();
    let contractor_column: Vec<Uuid> = pairs.iter().map(|p| p.1).collect();
    let rows = client
        .query(statement, &[&opportunity_column, &contractor_column])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            let key = *key_by_pair.get(&(row.get(0), row.get(1)))?;
            let unchanged = SourceRow {
                id: row.get(2),
                company_columns: 0,
                deal_columns: 0,
            };
            Some((key, unchanged))
        })
        .collect())
}

struct Companies<'a> {
    /// Company id by contractor UEI, for every contractor in the batch.
    ids: HashMap<&'a str, Uuid>,
    /// The companies this batch created or changed, by contractor UEI.
    changes: BTreeMap<&'a str, Change>,
}

/// Step A in one statement: creates the missing companies whole, and updates existing ones only in the columns
/// their contractor's change touched; returns every company's id.
static COMPANIES_SQL: LazyLock<String> = LazyLock::new(|| {
    let (set, differs) = masked_update(COMPANY_COLUMNS);
    format!(
        "WITH k AS (
           SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bool[], $15::numeric[],
             $16::text[])
             AS k (contractor_id, changed, source, name, uei, cage_code, website, phone, address, city, state, zip,
                   primary_naics, sam_registered, readiness_score, qualification_status)
         ),
         created AS (
           INSERT INTO companies (contractor_id, source, name, uei, cage_code, website, phone, address, city, state,
             zip, primary_naics, sam_registered, readiness_score, qualification_status, lifecycle_stage,
             hubspot_sync_status)
           SELECT contractor_id, source, name, uei, cage_code, website, phone, address, city, state, zip,
             primary_naics, sam_registered, readiness_score, qualification_status, $17::text, '{pending}'
           FROM k ORDER BY contractor_id
           ON CONFLICT (contractor_id) DO NOTHING
           RETURNING contractor_id, id
         ),
         updated AS (
           UPDATE companies t SET {set},
             hubspot_sync_status = CASE WHEN t.hubspot_sync_status = '{deleted}' THEN '{deleted}' ELSE '{pending}' END
           FROM k
           WHERE t.contractor_id = k.contractor_id AND k.changed <> 0 AND ({differs})
           RETURNING t.contractor_id, t.id
         )
         SELECT k.contractor_id, coalesce(created.id, updated.id, existing.id),
                created.id IS NOT NULL, updated.id IS NOT NULL
         FROM k
         LEFT JOIN created ON created.contractor_id = k.contractor_id
         LEFT JOIN updated ON updated.contractor_id = k.contractor_id
         LEFT JOIN companies existing ON existing.contractor_id = k.contractor_id",
        pending = HubSpotSyncStatus::Pending.as_str(),
        deleted = HubSpotSyncStatus::Deleted.as_str(),
    )
});

async fn write_companies<'a>(
    client: &impl Db,
    contractors: &BTreeMap<&'a str, &Contractor>,
    contractor_rows: &HashMap<&str, SourceRow>,
    outcome: &mut BatchWriteOutcome,
) -> Result<Companies<'a>, DbError> {
    let companies: Vec<_> = contractors.values().map(|c| c.company()).collect();
    let ueis: Vec<&'a str> = contractors.keys().copied().collect();
    let contractor_column: Vec<Uuid> = ueis.iter().map(|uei| contractor_rows[uei].id).collect();
    let changed: Vec<Columns> = ueis.iter().map(|uei| contractor_rows[uei].company_columns).collect();
    let text = |f: fn(&crmsync_domain::ingest::CompanyFields) -> &Option<String>| {
        companies.iter().map(|c| f(c).clone()).collect::<Vec<_>>()
    };
    let sources: Vec<&str> = companies.iter().map(|c| c.source.as_str()).collect();
    let names: Vec<&str> = companies.iter().map(|c| c.name.as_str()).collect();
    let registered: Vec<Option<bool>> = companies.iter().map(|c| c.sam_registered).collect();
    let readiness: Vec<Option<Decimal>> = companies.iter().map(|c| c.readiness_score).collect();
    let qualification: Vec<&str> = companies.iter().map(|c| c.qualification_status.as_str()).collect();
    let statement: &str = &COMPANIES_SQL;
    let rows = client
        .query(
            statement,
            &[
                &contractor_column,
                &changed,
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
    let uei_by_contractor: HashMap<Uuid, &'a str> = ueis.iter().map(|uei| (contractor_rows[uei].id, *uei)).collect();
    let mut ids = HashMap::new();
    let mut changes = BTreeMap::new();
    let mut missing = Vec::new();
    for row in &rows {
        let uei = uei_by_contractor[&row.get::<_, Uuid>(0)];
        match row.get::<_, Option<Uuid>>(1) {
            Some(id) => {
                ids.insert(uei, id);
            }
            // Created by a concurrent transaction after this statement's snapshot.
            None => missing.push(row.get::<_, Uuid>(0)),
        }
        if row.get(2) {
            changes.insert(uei, Change::Created);
        } else if row.get(3) {
            changes.insert(uei, Change::Updated);
        }
    }
    if !missing.is_empty() {
        let statement: &str = "SELECT contractor_id, id FROM companies WHERE contractor_id = ANY($1)";
        for row in client.query(statement, &[&missing]).await? {
            ids.insert(uei_by_contractor[&row.get::<_, Uuid>(0)], row.get(1));
        }
        outcome.round_trips += 1;
    }
    Ok(Companies { ids, changes })
}

/// What Step B reads besides the matches: the batch's stored copies and the source rows' changes.
struct DealSources<'b, 'a> {
    opportunities: &'b BTreeMap<&'a str, &'b Opportunity>,
    contractors: &'b BTreeMap<&'a str, &'b Contractor>,
    opportunity_rows: &'b HashMap<&'a str, SourceRow>,
    contractor_rows: &'b HashMap<&'a str, SourceRow>,
    match_rows: &'b HashMap<MatchKey<'a>, SourceRow>,
}

/// The deals this batch created or changed: (deal id, company id, change) by match key.
type DealChanges<'a> = BTreeMap<MatchKey<'a>, (Uuid, Uuid, Change)>;

/// Step B in one statement: creates the missing deals whole, and updates existing ones only in the columns their
/// sources' changes touched. Stage and pipeline are set at creation only.
static DEALS_SQL: LazyLock<String> = LazyLock::new(|| {
    let (set, differs) = masked_update(DEAL_COLUMNS);
    format!(
        "WITH k AS (
           SELECT * FROM UNNEST($1::uuid[], $2::int4[], $3::uuid[], $4::uuid[], $5::text[], $6::numeric[],
             $7::date[], $8::numeric[], $9::int4[], $10::text[])
             AS k (match_id, changed, opportunity_id, company_id, deal_name, deal_value, expected_close_date,
                   match_score, win_probability, priority)
         ),
         created AS (
           INSERT INTO deals (match_id, opportunity_id, company_id, deal_name, deal_value, expected_close_date,
             match_score, win_probability, priority, pipeline, stage, hubspot_sync_status)
           SELECT match_id, opportunity_id, company_id, deal_name, deal_value, expected_close_date, match_score,
             win_probability, priority, $11::text, $12::text, '{pending}'
           FROM k ORDER BY match_id
           ON CONFLICT (match_id) DO NOTHING
           RETURNING match_id, id, company_id
         ),
         updated AS (
           UPDATE deals t SET {set},
             hubspot_sync_status = CASE WHEN t.hubspot_sync_status = '{deleted}' THEN '{deleted}' ELSE '{pending}' END
           FROM k
           WHERE t.match_id = k.match_id AND k.changed <> 0 AND ({differs})
           RETURNING t.match_id, t.id, t.company_id
         )
         SELECT match_id, id, company_id, true FROM created
         UNION ALL
         SELECT match_id, id, company_id, false FROM updated",
        pending = HubSpotSyncStatus::Pending.as_str(),
        deleted = HubSpotSyncStatus::Deleted.as_str(),
    )
});

async fn write_deals<'a>(
    client: &impl Db,
    matches: &BTreeMap<MatchKey<'a>, &MatchSpec>,
    sources: &DealSources<'_, 'a>,
    companies: &Companies<'_>,
    outcome: &mut BatchWriteOutcome,
) -> Result<DealChanges<'a>, DbError> {
    let keys: Vec<MatchKey<'a>> = matches.keys().copied().collect();
    // Each deal from the copies the batch stored (the last occurrence of its notice and of its UEI), so a deal
    // never disagrees with its opportunity or company.
    let deals: Vec<DealFields> = matches
        .iter()
        .map(|((notice, uei), spec)| {
            DealFields::derive(
                sources.opportunities[notice],
                sources.contractors[uei],
                spec.match_score,
            )
        })
        .collect();
    let changed: Vec<Columns> = keys
        .iter()
        .map(|key @ (notice, uei)| {
            sources.opportunity_rows[notice].deal_columns
                | sources.contractor_rows[uei].deal_columns
                | sources.match_rows[key].deal_columns
        })
        .collect();
    let match_column: Vec<Uuid> = keys.iter().map(|key| sources.match_rows[key].id).collect();
    let opportunity_column: Vec<Uuid> = keys
        .iter()
        .map(|(notice, _)| sources.opportunity_rows[notice].id)
        .collect();
    let company_column: Vec<Uuid> = keys.iter().map(|(_, uei)| companies.ids[uei]).collect();
    let names: Vec<&str> = deals.iter().map(|d| d.deal_name.as_str()).collect();
    let values: Vec<Option<Decimal>> = deals.iter().map(|d| d.deal_value).collect();
    let close_dates: Vec<_> = deals.iter().map(|d| d.expected_close_date).collect();
    let scores: Vec<Decimal> = deals.iter().map(|d| d.match_score).collect();
    let probabilities: Vec<i32> = deals.iter().map(|d| d.win_probability).collect();
    let priorities: Vec<&str> = deals.iter().map(|d| d.priority.as_str()).collect();
    let statement: &str = &DEALS_SQL;
    let rows = client
        .query(
            statement,
            &[
                &match_column,
                &changed,
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
    let key_by_match: HashMap<Uuid, MatchKey<'a>> = keys.iter().map(|key| (sources.match_rows[key].id, *key)).collect();
    Ok(rows
        .iter()
        .map(|row| {
            let company_id: Option<Uuid> = row.get(2);
            let change = if row.get(3) { Change::Created } else { Change::Updated };
            (
                key_by_match[&row.get::<_, Uuid>(0)],
                (row.get(1), company_id.unwrap_or_default(), change),
            )
        })
        .collect())
}

/// sync_queue rows to insert in one statement ([`outbox::enqueue`], every change queued: [`Dedupe::EveryChange`]).
#[derive(Default)]
struct QueueRows(Vec<QueuedChange>);

impl QueueRows {
    fn push(&mut self, entity_type: EntityType, entity_id: Uuid, change: Change, payload: Value) {
        self.0.push(QueuedChange {
            entity_type,
            entity_id,
            operation: change.operation(),
            payload,
        });
    }

    async fn insert(&self, client: &impl Db, outcome: &mut BatchWriteOutcome) -> Result<u64, DbError> {
        if self.0.is_empty() {
            return Ok(0);
        }
        let inserted = outbox::enqueue(client, &self.0, Dedupe::EveryChange).await?;
        outcome.round_trips += 1;
        Ok(inserted.len() as u64)
    }
}

async fn select_ids(client: &impl Db, sql: &str, keys: &[&str]) -> Result<HashMap<String, Uuid>, DbError> {
    let statement: &str = sql;
    let rows = client.query(statement, &[&keys]).await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Writes the delivery's row in `crmsync.ingest_deliveries` and one `crmsync.ingest_rejections` row per rejection
/// (carrying the match as delivered), in one statement. Not `workflow_logs` and `workflow_errors`: those are the
/// upstream workflow's tables, whose columns crmsync does not know (see migrations/0008_ingest_records.sql).
pub async fn record_delivery(
    client: &impl Db,
    source: &str,
    summary: &Value,
    rejections: &[(Rejection, Value)],
) -> Result<(), DbError> {
    let indexes: Vec<i32> = rejections
        .iter()
        .map(|(r, _)| i32::try_from(r.index).unwrap_or(i32::MAX))
        .collect();
    let fields: Vec<Option<&str>> = rejections.iter().map(|(r, _)| r.field.as_deref()).collect();
    let errors: Vec<&str> = rejections.iter().map(|(r, _)| r.error.as_str()).collect();
    let items: Vec<&Value> = rejections.iter().map(|(_, item)| item).collect();
    let statement: &str = "WITH delivery AS (
               INSERT INTO crmsync.ingest_deliveries (source, rejected, summary)
               VALUES ($1, cardinality($3::int4[]), $2)
               RETURNING id
             )
             INSERT INTO crmsync.ingest_rejections (delivery_id, item_index, field, error, item)
             SELECT delivery.id, k.item_index, k.field, k.error, k.item
             FROM delivery, UNNEST($3::int4[], $4::text[], $5::text[], $6::jsonb[]) AS k (item_index, field, error, item)";
    client
        .execute(statement, &[&source, summary, &indexes, &fields, &errors, &items])
        .await?;
    Ok(())
}
