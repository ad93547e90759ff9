//! Writing our id back to the records created from HubSpot after the pass's commit, and closing (or postponing)
//! the creation events held until it is written.

use std::collections::HashMap;

use crmsync_app::AppError;
use crmsync_db::inbox;
use crmsync_domain::webhook::{InboxStatus, ObjectKind};
use crmsync_hubspot::UpdateInput;
use crmsync_hubspot::setup::LOCAL_ID_PROPERTY;
use uuid::Uuid;

use crate::applier::Applier;
use crate::creation::hubspot_type;
use crate::retries::Retries;

/// A record created locally from HubSpot whose HubSpot copy still needs our id.
#[derive(Debug, Clone)]
pub(crate) struct Created {
    pub(crate) inbox_id: Uuid,
    /// The event's outcome once the write-back succeeded: `created`, or `written_back` (a record created by an
    /// earlier pass that did not get to write our id).
    pub(crate) label: &'static str,
    pub(crate) attempts_before: i32,
    pub(crate) kind: ObjectKind,
    pub(crate) hubspot_id: String,
    pub(crate) local_id: Uuid,
}

impl Applier {
    /// Writes our id into `crmsync_id` of records created in HubSpot, so the outbound sync's upsert on it finds
    /// them instead of creating duplicates. Returns the indexes (into `created`) that failed, with the reason.
    /// Idempotent: writing the same local id again changes nothing, so a write-back cut off or lost (the pass's
    /// rows stay held) is simply made again by the re-apply pass.
    pub(crate) async fn write_back(&self, created: &[Created]) -> Vec<(usize, String)> {
        let mut failures = Vec::new();
        for kind in ObjectKind::ALL {
            let indexes: Vec<usize> = (0..created.len()).filter(|i| created[*i].kind == kind).collect();
            if indexes.is_empty() {
                continue;
            }
            let inputs: Vec<UpdateInput> = indexes
                .iter()
                .map(|i| UpdateInput {
                    id: created[*i].hubspot_id.clone(),
                    properties: [(LOCAL_ID_PROPERTY.to_owned(), created[*i].local_id.to_string())].into(),
                })
                .collect();
            match self.hubspot.batch_update(hubspot_type(kind), None, &inputs).await {
                Ok(outcome) => {
                    if !outcome.is_complete() {
                        tracing::warn!(
                            failed = outcome.failed.len(),
                            object_type = kind.object_type(),
                            "could not write crmsync_id to some records created in HubSpot"
                        );
                    }
                    failures.extend(
                        outcome
                            .failed
                            .into_iter()
                            .map(|(input, error)| (indexes[input], error.to_string())),
                    );
                }
                Err(error) => {
                    tracing::warn!(%error, object_type = kind.object_type(), "could not write crmsync_id to records created in HubSpot");
                    let text = error.to_string();
                    failures.extend(indexes.iter().map(|i| (*i, text.clone())));
                }
            }
        }
        failures
    }

    /// Closes the held creation events whose write-back succeeded (`applied`, `created`); the failed ones get
    /// another attempt (or die) like any event that could not be applied.
    pub(crate) async fn close_written_back(
        &self,
        created: &[Created],
        failures: &[(usize, String)],
    ) -> Result<Retries, AppError> {
        let failed: HashMap<usize, &str> = failures.iter().map(|(i, e)| (*i, e.as_str())).collect();
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let done: Vec<(Uuid, InboxStatus, &str)> = (0..created.len())
            .filter(|i| !failed.contains_key(i))
            .map(|i| (created[i].inbox_id, InboxStatus::Applied, created[i].label))
            .collect();
        inbox::finish_many(&transaction, &done).await?;
        let mut retries = Retries::default();
        for (index, error) in failed {
            let event = &created[index];
            let reason = format!("created locally; writing crmsync_id to HubSpot failed: {error}");
            retries
                .postpone(
                    &transaction,
                    &self.retry,
                    event.inbox_id,
                    event.attempts_before,
                    &reason,
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(retries)
    }
}
