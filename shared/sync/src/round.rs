//! One round's working state: the claimed items coalesced per entity, the per-item results gathered before they
//! are written back, and the adapter edge that classifies HubSpot's errors for the domain.

use std::collections::BTreeMap;
use std::time::Instant;

use crmsync_db::sync::SyncedEntity;
use crmsync_domain::failure::FailureClass;
use crmsync_domain::sync::{EntityType, SyncItem};
use crmsync_hubspot::{ErrorClass, HubSpotError};
use uuid::Uuid;

/// A round's claimed items, by the entity they are about.
pub(crate) type ByEntity = BTreeMap<(EntityType, Uuid), Vec<SyncItem>>;

/// Items that failed together, why, and how.
pub(crate) struct Failure {
    pub items: Vec<SyncItem>,
    pub error: String,
    pub class: FailureClass,
    /// HubSpot answered this (or its call failed); false for a failure decided here without a call.
    pub from_hubspot: bool,
}

/// Per-item results of one round, gathered before they are written.
#[derive(Default)]
pub(crate) struct RoundOutcome {
    /// The claim's `locked_by`: write-backs only change rows still held under it.
    pub lease: String,
    /// No HubSpot batch starts after this; items not sent by then go back at once.
    pub deadline: Option<Instant>,
    pub synced: Vec<SyncedEntity>,
    pub completed: Vec<Uuid>,
    pub failures: Vec<Failure>,
    pub deferred: Vec<(Vec<Uuid>, String)>,
    /// (item, company) for items that wait for their company to reach HubSpot.
    pub waiting_for_company: Vec<(Uuid, Uuid)>,
    /// Items whose attempts ran out through takeovers: the runs holding them kept dying.
    pub crashed: Vec<SyncItem>,
    /// Items not sent before the deadline, or after the circuit opened.
    pub unsent: Vec<Uuid>,
    /// The circuit breaker opened during the round: no HubSpot batch starts, the rest of the items wait.
    pub circuit_open: bool,
}

impl RoundOutcome {
    /// True once the round's deadline has passed or the circuit opened: no new HubSpot batch may start.
    pub fn out_of_time(&self) -> bool {
        self.circuit_open || self.deadline.is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Puts these items back unsent (the deadline passed before their batch started).
    pub fn postpone<'a>(&mut self, items: impl IntoIterator<Item = &'a SyncItem>) {
        self.unsent.extend(items.into_iter().map(|i| i.id));
    }

    /// These items are done: sent, or nothing to send.
    pub fn complete<'a>(&mut self, items: impl IntoIterator<Item = &'a SyncItem>) {
        self.completed.extend(items.into_iter().map(|i| i.id));
    }

    /// These items failed for a reason found here, without a HubSpot call.
    pub fn fail(&mut self, items: Vec<SyncItem>, error: String, class: FailureClass) {
        self.failures.push(Failure {
            items,
            error,
            class,
            from_hubspot: false,
        });
    }

    /// These items failed with HubSpot's `error`; `context` prefixes its text when not empty.
    pub fn fail_hubspot(&mut self, items: Vec<SyncItem>, context: &str, error: &HubSpotError) {
        self.failures.push(Failure {
            items,
            error: format!("{context}{error}"),
            class: failure_class(error),
            from_hubspot: true,
        });
    }
}

/// The adapter edge: how the domain sees a HubSpot error.
pub(crate) fn failure_class(error: &HubSpotError) -> FailureClass {
    match error.class() {
        ErrorClass::Retryable { suggested_wait } => FailureClass::Retryable {
            suggested_delay: suggested_wait,
        },
        ErrorClass::Daily => FailureClass::DailyLimit,
        ErrorClass::Permanent(_) => FailureClass::Permanent,
    }
}

/// Several rows for one entity become one write of its current state.
pub(crate) fn coalesce(items: &[SyncItem]) -> ByEntity {
    let mut by_entity = ByEntity::new();
    for item in items {
        by_entity
            .entry((item.entity_type, item.entity_id))
            .or_default()
            .push(item.clone());
    }
    by_entity
}

pub(crate) fn ids_of(by_entity: &ByEntity, entity_type: EntityType) -> Vec<Uuid> {
    by_entity
        .keys()
        .filter(|(t, _)| *t == entity_type)
        .map(|(_, id)| *id)
        .collect()
}

pub(crate) fn items_of(by_entity: &ByEntity, entity_type: EntityType, id: Uuid) -> &[SyncItem] {
    by_entity.get(&(entity_type, id)).map(Vec::as_slice).unwrap_or(&[])
}
