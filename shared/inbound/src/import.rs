//! The first import (`crmsync import-hubspot`): brings a portal's existing deals of our pipeline into the local
//! CRM with their companies and contacts, page by page in deal-id order (a keyset search, so no page ever reaches
//! the search's result cap).
//!
//! Each record is matched to a local row by HubSpot id, then by our `crmsync_id`, then companies by UEI and by
//! their website's domain and contacts by email (`crmsync_db::import`); anything unmatched is created like a record
//! created in HubSpot (the same inserts as the creation webhook, so the same origin). Deals are linked to their
//! (primary) company and contacts to theirs. A page is one transaction; then our ids are written back to the HubSpot
//! records that lack them (so later syncs update them instead of creating duplicates), and only then the checkpoint
//! (the page's last deal id) is saved. A run killed anywhere resumes after the last checkpoint, and a page done
//! again matches everything by HubSpot id: nothing is created twice. A finished import clears its checkpoint, so
//! running it again re-reads the pipeline and creates nothing new.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use crmsync_app::AppError;
use crmsync_db::PgSyncStore;
use crmsync_db::hubspot_records as records;
use crmsync_db::import::{self as db, CHECKPOINT_SETTING, ImportCheckpoint, MatchKeys, MatchedBy};
use crmsync_db::reconcile::{delete_setting, local_ids, save_setting, setting};
use crmsync_db::{Db, DbError};
use crmsync_domain::engagement::EngagementKind;
use crmsync_domain::reconcile::website_host;
use crmsync_domain::sync::{PipelineMap, value_hash};
use crmsync_domain::webhook::ObjectKind;
use crmsync_hubspot::associations::{AssociatedRecord, type_ids};
use crmsync_hubspot::search::{Direction, Filter, FilterGroup, Operator, SearchRequest, Sort};
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use crmsync_hubspot::{HubSpotObject, ObjectType, UpdateInput};
use serde::Serialize;
use uuid::Uuid;

use crate::applier::Applier;
use crate::creation::{creation_properties, hubspot_type, new_company, new_contact, new_deal};
use crate::event::Outcome;

/// Deals per page (one transaction, one checkpoint).
pub const DEFAULT_IMPORT_PAGE: u32 = 100;

/// What one run asks for.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// Deals per page, 1..=100 (a batch read takes 100).
    pub page_size: u32,
    /// Ignore a checkpoint and start from the first deal.
    pub restart: bool,
    /// `cli`: recorded in the run's counts.
    pub started_by: String,
}

impl Default for ImportRequest {
    fn default() -> Self {
        Self {
            page_size: DEFAULT_IMPORT_PAGE,
            restart: false,
            started_by: "cli".into(),
        }
    }
}

/// How the records of one type were matched or created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub created: u64,
    /// Matched local rows, by how (`hubspot_id`, `crmsync_id`, `uei`, `domain`, `email`).
    pub matched: BTreeMap<String, u64>,
}

/// A record the import could not bring in, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportFailure {
    pub object: String,
    pub hubspot_id: String,
    pub reason: String,
}

/// What a run did: printed by the CLI and kept in the run's counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub started_by: String,
    pub pipeline_id: String,
    /// The last deal id of the checkpoint this run resumed after.
    pub resumed_after: Option<u64>,
    /// Deals of the pipeline in HubSpot, and those imported so far (earlier runs of the same import included).
    pub total_deals: u64,
    pub deals_done: u64,
    pub pages: u64,
    pub deals: Tally,
    pub companies: Tally,
    pub contacts: Tally,
    /// Deals and contacts linked to their company by this run.
    pub deals_linked: u64,
    pub contacts_linked: u64,
    /// HubSpot records given our `crmsync_id`.
    pub written_back: u64,
    /// Engagements logged on the deals (notes, calls, emails, meetings, tasks) brought home as activities, updated
    /// (known already), and skipped (ours, or about no local record).
    pub engagements_created: u64,
    pub engagements_updated: u64,
    pub engagements_skipped: u64,
    pub failures: Vec<ImportFailure>,
    pub hubspot_requests: u64,
    pub elapsed_ms: u64,
}

/// How long an import run may stay `running` in crmsync.sync_runs before a later run calls it abandoned.
const ABANDON_AFTER: Duration = Duration::from_secs(6 * 60 * 60);

/// One page read from HubSpot: the deals and what they link to.
struct PageRead {
    deals: Vec<HubSpotObject>,
    companies: Vec<HubSpotObject>,
    contacts: Vec<HubSpotObject>,
    /// Deal id → its company (the primary one when labelled).
    deal_company: HashMap<String, String>,
    /// Contact id → its company.
    contact_company: HashMap<String, String>,
}

/// A HubSpot record that needs our id.
struct WriteBack {
    kind: ObjectKind,
    hubspot_id: String,
    local_id: Uuid,
}

/// Runs the first import with a process's applier (its pool and HubSpot client).
#[derive(Debug, Clone)]
pub struct Importer {
    applier: Applier,
}

impl Importer {
    pub fn new(applier: Applier) -> Self {
        Self { applier }
    }

    /// Imports every deal of our pipeline not imported yet, recorded in crmsync.sync_runs (trigger `import`).
    /// `on_page` sees the running totals after each committed page (the progress bar).
    pub async fn run(
        &self,
        request: &ImportRequest,
        on_page: impl Fn(&ImportReport),
    ) -> Result<ImportReport, AppError> {
        if !(1..=100).contains(&request.page_size) {
            return Err(AppError::Config {
                variable: "--page-size",
                reason: format!("must be from 1 to 100, got {}", request.page_size),
            });
        }
        let store = PgSyncStore::new(self.applier.pool.clone());
        let pipeline = store.pipeline_map().await?.ok_or(AppError::Config {
            variable: "hubspot_pipeline",
            reason: "is not in crmsync.settings: run `crmsync hubspot-setup` first".into(),
        })?;
        let started = Instant::now();
        let hubspot_before = self.applier.hubspot.stats();
        let run_id = store.start_run("import", ABANDON_AFTER).await?;
        let mut report = ImportReport {
            started_by: request.started_by.clone(),
            pipeline_id: pipeline.pipeline_id.clone(),
            ..ImportReport::default()
        };
        let result = self.import(request, &pipeline, &mut report, &on_page).await;
        report.hubspot_requests = self
            .applier
            .hubspot
            .stats()
            .requests_sent
            .saturating_sub(hubspot_before.requests_sent);
        report.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let status = match (&result, report.failures.is_empty()) {
            (Err(_), _) => "failed",
            (Ok(()), true) => "succeeded",
            (Ok(()), false) => "partial",
        };
        let counts = serde_json::to_value(&report).unwrap_or_default();
        let error = result.as_ref().err().map(|e| crmsync_db::error_chain(e));
        if let Err(finish_error) = store.finish_run(run_id, status, &counts, error.as_deref()).await {
            tracing::warn!(error = %finish_error, "could not record the end of the import run");
        }
        result.map(|()| report)
    }

    async fn import(
        &self,
        request: &ImportRequest,
        pipeline: &PipelineMap,
        report: &mut ImportReport,
        on_page: &impl Fn(&ImportReport),
    ) -> Result<(), AppError> {
        let checkpoint: Option<ImportCheckpoint> = if request.restart {
            None
        } else {
            setting(&self.applier.pool.get().await?, CHECKPOINT_SETTING)
                .await?
                .filter(|c: &ImportCheckpoint| c.pipeline_id == pipeline.pipeline_id)
        };
        let mut after = checkpoint.as_ref().map_or(0, |c| c.after_deal_id);
        report.resumed_after = checkpoint.as_ref().map(|c| c.after_deal_id);
        report.deals_done = checkpoint.as_ref().map_or(0, |c| c.deals_done);
        loop {
            let page = self
                .applier
                .hubspot
                .search_page(
                    ObjectType::Deals,
                    &deal_search(pipeline, after, request.page_size),
                    None,
                )
                .await?;
            if report.pages == 0 {
                report.total_deals = report.deals_done + page.total;
                on_page(report);
            }
            let Some(last) = page.results.last() else {
                break;
            };
            let last_id = last.id.parse::<u64>().map_err(|_| {
                AppError::HubSpot(Box::new(crmsync_hubspot::HubSpotError::InvalidInput {
                    field: "hs_object_id".into(),
                    reason: format!("deal id {:?} is not numeric", last.id),
                }))
            })?;
            let read = self.read_page(page.results).await?;
            let write_backs = self.commit_page(&read, pipeline, report).await?;
            self.write_back(&write_backs, report).await?;
            self.import_engagements(&read.deals, report).await?;
            after = last_id;
            report.pages += 1;
            report.deals_done += read.deals.len() as u64;
            let checkpoint = ImportCheckpoint {
                pipeline_id: pipeline.pipeline_id.clone(),
                after_deal_id: after,
                deals_done: report.deals_done,
            };
            save_setting(&self.applier.pool.get().await?, CHECKPOINT_SETTING, &checkpoint).await?;
            on_page(report);
        }
        delete_setting(&self.applier.pool.get().await?, CHECKPOINT_SETTING).await?;
        Ok(())
    }

    /// Brings home the engagements (notes, calls, emails, meetings, tasks) logged on a page's deals, after the page's
    /// records are local: each upserted by its HubSpot id (so a page done again changes nothing), ours (carrying our
    /// `crmsync_id`) left alone. One transaction.
    async fn import_engagements(&self, deals: &[HubSpotObject], report: &mut ImportReport) -> Result<(), AppError> {
        let hubspot = &self.applier.hubspot;
        let deal_ids: Vec<&str> = deals.iter().map(|d| d.id.as_str()).collect();
        let mut wanted: Vec<(EngagementKind, String)> = Vec::new();
        for kind in EngagementKind::ALL {
            let linked = hubspot
                .batch_read_associations(ObjectType::Deals, crate::engagement::object_type(kind), &deal_ids)
                .await?;
            if let Some((_, error)) = linked.failed.first() {
                return Err(AppError::HubSpot(Box::new(error.clone())));
            }
            let ids: HashSet<String> = linked
                .succeeded
                .into_iter()
                .flat_map(|(_, records)| records.into_iter().map(|r| r.to_id))
                .collect();
            wanted.extend(ids.into_iter().map(|id| (kind, id)));
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let fetched = crate::engagement::fetch(hubspot, wanted.into_iter()).await;
        let mut client = self.applier.pool.get().await?;
        let transaction = client.transaction().await?;
        for ((kind, id), result) in &fetched {
            let snapshot = match result {
                Ok(Some(snapshot)) => snapshot,
                Ok(None) => continue,
                Err(error) => {
                    report.failures.push(ImportFailure {
                        object: kind.activity_type().to_owned(),
                        hubspot_id: id.clone(),
                        reason: error.clone(),
                    });
                    continue;
                }
            };
            match crate::engagement::apply_snapshot(&transaction, *kind, id, snapshot).await? {
                Outcome::Applied("engagement_created") => report.engagements_created += 1,
                Outcome::Applied(_) => report.engagements_updated += 1,
                _ => report.engagements_skipped += 1,
            }
        }
        transaction.commit().await?;
        Ok(())
    }

    /// Reads a page's companies and contacts and the deals' and contacts' associations.
    async fn read_page(&self, deals: Vec<HubSpotObject>) -> Result<PageRead, AppError> {
        let hubspot = &self.applier.hubspot;
        let deal_ids: Vec<&str> = deals.iter().map(|d| d.id.as_str()).collect();
        let to_companies = hubspot
            .batch_read_associations(ObjectType::Deals, ObjectType::Companies, &deal_ids)
            .await?;
        let deal_company = chosen_links(&deal_ids, to_companies.succeeded, type_ids::DEAL_TO_COMPANY_PRIMARY);
        let to_contacts = hubspot
            .batch_read_associations(ObjectType::Deals, ObjectType::Contacts, &deal_ids)
            .await?;
        let contact_ids: Vec<String> = to_contacts
            .succeeded
            .into_iter()
            .flat_map(|(_, linked)| linked.into_iter().map(|r| r.to_id))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let contact_refs: Vec<&str> = contact_ids.iter().map(String::as_str).collect();
        let contact_company = if contact_refs.is_empty() {
            HashMap::new()
        } else {
            let links = hubspot
                .batch_read_associations(ObjectType::Contacts, ObjectType::Companies, &contact_refs)
                .await?;
            chosen_links(&contact_refs, links.succeeded, type_ids::CONTACT_TO_COMPANY_PRIMARY)
        };
        let company_ids: Vec<&str> = deal_company
            .values()
            .map(String::as_str)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let companies = self.read_all(ObjectKind::Company, &company_ids).await?;
        let contacts = self.read_all(ObjectKind::Contact, &contact_refs).await?;
        Ok(PageRead {
            deals,
            companies,
            contacts,
            deal_company,
            contact_company,
        })
    }

    /// Reads records with what creating and matching them needs; records gone since are left out.
    async fn read_all(&self, kind: ObjectKind, ids: &[&str]) -> Result<Vec<HubSpotObject>, AppError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut properties = creation_properties(kind).to_vec();
        if kind == ObjectKind::Company {
            properties.push("b2g_uei");
        }
        let outcome = self
            .applier
            .hubspot
            .batch_read(hubspot_type(kind), ids, None, &properties)
            .await?;
        if let Some((_, error)) = outcome.failed.iter().find(|(_, e)| !e.is_not_found()) {
            return Err(AppError::HubSpot(Box::new(error.clone())));
        }
        Ok(outcome.succeeded.into_iter().map(|(_, o)| o).collect())
    }

    /// Matches or creates the page's records and links them, in one transaction. Returns the HubSpot records that
    /// need our id.
    async fn commit_page(
        &self,
        read: &PageRead,
        pipeline: &PipelineMap,
        report: &mut ImportReport,
    ) -> Result<Vec<WriteBack>, AppError> {
        let mut client = self.applier.pool.get().await?;
        let transaction = client.transaction().await?;
        let mut write_backs = Vec::new();
        let mut companies: HashMap<String, Uuid> = HashMap::new();
        for company in &read.companies {
            if let Some(id) = self
                .bring_in(
                    &transaction,
                    ObjectKind::Company,
                    company,
                    pipeline,
                    report,
                    &mut write_backs,
                )
                .await?
            {
                if let Some(uei) = text(company, "b2g_uei") {
                    db::fill_company_uei(&transaction, id, &uei).await?;
                }
                companies.insert(company.id.clone(), id);
            }
        }
        // Contacts' companies outside this page's deals: linked locally already, or not at all.
        let outside: Vec<String> = read
            .contact_company
            .values()
            .filter(|id| !companies.contains_key(*id))
            .cloned()
            .collect();
        let known_outside = local_ids(&transaction, ObjectKind::Company, &outside).await?;
        for contact in &read.contacts {
            let Some(id) = self
                .bring_in(
                    &transaction,
                    ObjectKind::Contact,
                    contact,
                    pipeline,
                    report,
                    &mut write_backs,
                )
                .await?
            else {
                continue;
            };
            let company = read
                .contact_company
                .get(&contact.id)
                .and_then(|c| companies.get(c).or_else(|| known_outside.get(c)));
            if let Some(company) = company
                && db::fill_company(&transaction, ObjectKind::Contact, id, *company).await?
            {
                report.contacts_linked += 1;
            }
        }
        for deal in &read.deals {
            let Some(id) = self
                .bring_in(&transaction, ObjectKind::Deal, deal, pipeline, report, &mut write_backs)
                .await?
            else {
                continue;
            };
            let company = read.deal_company.get(&deal.id).and_then(|c| companies.get(c));
            if let Some(company) = company
                && db::fill_company(&transaction, ObjectKind::Deal, id, *company).await?
            {
                report.deals_linked += 1;
            }
        }
        transaction.commit().await?;
        Ok(write_backs)
    }

    /// Matches one record to a local row (linking it) or creates it; `None` when it cannot be brought in (the
    /// reason is in the report's failures).
    async fn bring_in(
        &self,
        client: &impl Db,
        kind: ObjectKind,
        object: &HubSpotObject,
        pipeline: &PipelineMap,
        report: &mut ImportReport,
        write_backs: &mut Vec<WriteBack>,
    ) -> Result<Option<Uuid>, DbError> {
        let crmsync_id = object
            .property(LOCAL_ID_PROPERTY)
            .and_then(|v| v.trim().parse::<Uuid>().ok());
        let domain = text(object, "domain")
            .or_else(|| text(object, "website"))
            .and_then(|d| website_host(&d));
        let uei = text(object, "b2g_uei");
        let email = text(object, "email");
        let keys = MatchKeys {
            hubspot_id: &object.id,
            crmsync_id,
            uei: uei.as_deref(),
            domain: domain.as_deref(),
            email: email.as_deref(),
        };
        let tally = match kind {
            ObjectKind::Company => &mut report.companies,
            ObjectKind::Contact => &mut report.contacts,
            ObjectKind::Deal => &mut report.deals,
        };
        let local_id = match db::find_match(client, kind, &keys).await? {
            Some((id, matched_by)) => {
                if matched_by != MatchedBy::HubSpotId {
                    db::link(client, kind, id, &object.id).await?;
                }
                *tally.matched.entry(matched_by.as_str().to_owned()).or_default() += 1;
                id
            }
            None => {
                let created = match kind {
                    ObjectKind::Company => records::insert_company(client, &new_company(object, &object.id)).await?,
                    ObjectKind::Contact => records::insert_contact(client, &new_contact(object, &object.id)).await?,
                    ObjectKind::Deal => match new_deal(object, &object.id, Some(pipeline)) {
                        Ok(deal) => records::insert_deal(client, &deal).await?,
                        Err(outcome) => {
                            report.failures.push(ImportFailure {
                                object: kind.singular().to_owned(),
                                hubspot_id: object.id.clone(),
                                reason: outcome_reason(outcome),
                            });
                            return Ok(None);
                        }
                    },
                };
                let Some(id) = created else {
                    // Linked by another process between the match and the insert: that row is the match.
                    return Ok(db::find_match(client, kind, &keys).await?.map(|(id, _)| id));
                };
                // What HubSpot holds is what we hold: nothing for the outbound sync to send back.
                for property in creation_properties(kind) {
                    if let Some(value) = object.property(property) {
                        records::set_property_hash(client, kind, id, property, &value_hash(value)).await?;
                    }
                }
                tally.created += 1;
                id
            }
        };
        if crmsync_id != Some(local_id) {
            write_backs.push(WriteBack {
                kind,
                hubspot_id: object.id.clone(),
                local_id,
            });
        }
        Ok(Some(local_id))
    }

    /// Writes our id into `crmsync_id` of the page's records that lack it. A record refused one by one (another
    /// record holds that id) is a failure in the report; a whole call that fails stops the run before its
    /// checkpoint, so the page is done again.
    async fn write_back(&self, write_backs: &[WriteBack], report: &mut ImportReport) -> Result<(), AppError> {
        for kind in ObjectKind::ALL {
            let ours: Vec<&WriteBack> = write_backs.iter().filter(|w| w.kind == kind).collect();
            if ours.is_empty() {
                continue;
            }
            let inputs: Vec<UpdateInput> = ours
                .iter()
                .map(|w| UpdateInput {
                    id: w.hubspot_id.clone(),
                    properties: [(LOCAL_ID_PROPERTY.to_owned(), w.local_id.to_string())].into(),
                })
                .collect();
            let outcome = self
                .applier
                .hubspot
                .batch_update(hubspot_type(kind), None, &inputs)
                .await?;
            if let Some((_, error)) = outcome.failed.iter().find(|(_, e)| e.class().is_retryable()) {
                return Err(AppError::HubSpot(Box::new(error.clone())));
            }
            report.written_back += outcome.succeeded.len() as u64;
            for (index, error) in outcome.failed {
                report.failures.push(ImportFailure {
                    object: kind.singular().to_owned(),
                    hubspot_id: ours[index].hubspot_id.clone(),
                    reason: format!("could not write crmsync_id {}: {error}", ours[index].local_id),
                });
            }
        }
        Ok(())
    }
}

/// The search for the next page of our pipeline's deals: ids above `after`, in id order.
fn deal_search(pipeline: &PipelineMap, after: u64, page_size: u32) -> SearchRequest {
    let mut properties: Vec<String> = creation_properties(ObjectKind::Deal)
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    properties.push("hs_object_id".into());
    SearchRequest {
        filter_groups: vec![FilterGroup {
            filters: vec![
                Filter::new("pipeline", Operator::Eq, pipeline.pipeline_id.clone()),
                Filter::new("hs_object_id", Operator::Gt, after.to_string()),
            ],
        }],
        sorts: vec![Sort {
            property_name: "hs_object_id".into(),
            direction: Direction::Ascending,
        }],
        properties,
        query: None,
        limit: page_size,
    }
}

/// Each record's chosen link among its associations: the one labelled `primary_type`, else the first.
fn chosen_links(
    ids: &[&str],
    linked: Vec<(usize, Vec<AssociatedRecord>)>,
    primary_type: u32,
) -> HashMap<String, String> {
    linked
        .into_iter()
        .filter_map(|(index, records)| {
            let chosen = records
                .iter()
                .find(|r| r.types.iter().any(|t| t.type_id == primary_type))
                .or(records.first())?;
            Some(((*ids.get(index)?).to_owned(), chosen.to_id.clone()))
        })
        .collect()
}

fn text(object: &HubSpotObject, name: &str) -> Option<String> {
    object
        .property(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn outcome_reason(outcome: Outcome) -> String {
    match outcome {
        Outcome::Error(_, reason) | Outcome::Wait(reason) => reason,
        Outcome::Skipped(label) | Outcome::Applied(label) | Outcome::Created(label) => label.to_owned(),
        Outcome::Leave => "not attempted".to_owned(),
    }
}
