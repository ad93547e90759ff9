//! The match ingestion use case: validate every item first, write the valid ones in batches (Steps A and B),
//! and report per item. Runs the same behind the Lambda, `crmsync ingest` and `POST /ingest/matches`.

use std::collections::HashMap;

use crmsync_domain::DomainError;
use crmsync_domain::ingest::{IngestReport, MatchInput, MatchSpec, Rejection, event_items, parse_match};
use crmsync_domain::ports::MatchStore;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppError;
use crate::kick::DrainKicker;

/// Matches written per transaction: large enough that a statement carries many rows, small enough that a
/// transaction stays short and a data error isolates quickly.
pub const WRITE_BATCH_SIZE: usize = 1_000;

/// Ingests an event. Invalid matches are rejected with their index and the field at fault, and the valid ones
/// still commit. A batch the database refuses is retried one match per transaction, so one bad row cannot sink
/// its neighbours. Errors are returned only when the event as a whole is unusable or the database is
/// unavailable; the call is then safe to repeat.
pub async fn ingest_matches(store: &impl MatchStore, event: &Value, source: &str) -> Result<IngestReport, AppError> {
    let items = event_items(event).map_err(AppError::InvalidEvent)?;
    let mut rejections: Vec<(Rejection, Value)> = Vec::new();
    let mut report = IngestReport::default();
    let mut specs: Vec<(usize, MatchSpec)> = Vec::with_capacity(items.len());
    let mut references: Vec<(usize, Uuid)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match parse_match(item) {
            Ok(MatchInput::Embedded(spec)) => specs.push((index, *spec)),
            Ok(MatchInput::Reference { match_id }) => references.push((index, match_id)),
            Err(error) => rejections.push((Rejection::new(index, &error), (*item).clone())),
        }
    }

    if !references.is_empty() {
        let ids: Vec<Uuid> = references.iter().map(|(_, id)| *id).collect();
        let loaded: HashMap<Uuid, Result<MatchSpec, DomainError>> = store
            .load_matches(&ids)
            .await
            .map_err(AppError::Unavailable)?
            .into_iter()
            .collect();
        report.round_trips += 1;
        for (index, match_id) in references {
            match loaded.get(&match_id) {
                Some(Ok(spec)) => specs.push((index, spec.clone())),
                Some(Err(error)) => rejections.push((Rejection::new(index, error), items[index].clone())),
                None => {
                    let error = DomainError::invalid("match_id", format!("no match with id {match_id}"));
                    rejections.push((Rejection::new(index, &error), items[index].clone()));
                }
            }
        }
        specs.sort_by_key(|(index, _)| *index);
    }

    for chunk in specs.chunks(WRITE_BATCH_SIZE) {
        let batch: Vec<MatchSpec> = chunk.iter().map(|(_, spec)| spec.clone()).collect();
        match store.write_matches(&batch).await {
            Ok(outcome) => add(&mut report, outcome),
            Err(DomainError::Rejected(reason)) => {
                tracing::warn!(%reason, matches = batch.len(), "the database refused a batch; isolating matches");
                for (index, spec) in chunk {
                    match store.write_matches(std::slice::from_ref(spec)).await {
                        Ok(outcome) => add(&mut report, outcome),
                        Err(error @ DomainError::Rejected(_)) => {
                            rejections.push((Rejection::new(*index, &error), items[*index].clone()));
                        }
                        Err(error) => return Err(AppError::Unavailable(error)),
                    }
                }
            }
            Err(error) => return Err(AppError::Unavailable(error)),
        }
    }

    rejections.sort_by_key(|(rejection, _)| rejection.index);
    report.rejected = rejections.iter().map(|(rejection, _)| rejection.clone()).collect();
    let summary = json!({
        "matches": items.len(),
        "companies_created": report.companies_created,
        "companies_updated": report.companies_updated,
        "deals_created": report.deals_created,
        "deals_updated": report.deals_updated,
        "unchanged": report.unchanged,
        "queued": report.queued,
        "rejected": report.rejected.len(),
    });
    // The caller holds the report either way; a failure here loses only the audit row, so it is logged, not raised.
    if let Err(error) = store.record_delivery(source, &summary, &rejections).await {
        tracing::error!(error = %error, "could not record the delivery in crmsync.ingest_deliveries");
    }
    report.round_trips += 1;
    tracing::info!(source, matches = items.len(), report = %summary, "ingested matches");
    Ok(report)
}

/// [`ingest_matches`], then, when it queued rows, a kick for the fast path ([`crate::kick`]): the rows are committed
/// by then, and a kick that fails is logged and counted, never the ingestion's error.
pub async fn ingest_and_kick(
    store: &impl MatchStore,
    kicker: &DrainKicker,
    event: &Value,
    source: &str,
) -> Result<IngestReport, AppError> {
    let report = ingest_matches(store, event, source).await?;
    if report.queued > 0 {
        kicker.kick("ingest").await;
    }
    Ok(report)
}

fn add(report: &mut IngestReport, outcome: crmsync_domain::ports::BatchWriteOutcome) {
    report.companies_created += outcome.companies_created;
    report.companies_updated += outcome.companies_updated;
    report.deals_created += outcome.deals_created;
    report.deals_updated += outcome.deals_updated;
    report.unchanged += outcome.unchanged;
    report.queued += outcome.queued;
    report.round_trips += outcome.round_trips;
}
