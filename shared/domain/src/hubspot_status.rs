//! Where a local record stands with HubSpot (`hubspot_sync_status`), as the domain names it and SQL stores it, and
//! how its sync items move it ([`RecordSyncEvent`]):
//!
//! ```text
//!   pending, synced ──item dead──────────────────────────▶ failed
//!   failed ─────────redrive──────────────────────────────▶ pending
//!   pending, failed ──item completed (sent, or nothing to send)──▶ synced
//! ```
//!
//! A local change through ingestion or the API makes a record `pending` whatever it was (except `deleted`). `deleted`
//! and `local_only` records are left alone by every sync item event.

/// A local record's `hubspot_sync_status` (the schema's `*_hubspot_sync_status_check`): where it stands with HubSpot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HubSpotSyncStatus {
    /// Changed locally; the next sync sends it.
    Pending,
    /// HubSpot holds what we hold.
    Synced,
    /// Its latest sync item is dead (attempts spent, or a permanent error): an operator's redrive sends it again.
    Failed,
    /// Deleted (or merged away) in HubSpot: it no longer syncs.
    Deleted,
    /// Activities only: crmsync's own entries that HubSpot never gets.
    LocalOnly,
}

impl HubSpotSyncStatus {
    pub const ALL: [HubSpotSyncStatus; 5] = [
        Self::Pending,
        Self::Synced,
        Self::Failed,
        Self::Deleted,
        Self::LocalOnly,
    ];

    /// The value stored in `hubspot_sync_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Synced => "synced",
            Self::Failed => "failed",
            Self::Deleted => "deleted",
            Self::LocalOnly => "local_only",
        }
    }

    /// The status of a stored value; `None` for a value the schema does not allow.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }
}

/// What happens to a record's sync items that moves its `hubspot_sync_status`. The store's SQL persists these in
/// the same statement as the sync_queue change, so the two never disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordSyncEvent {
    /// Its sync item died and no newer item of it is open.
    ItemDead,
    /// An operator redrove its dead sync item.
    ItemRedriven,
    /// Its sync item completed with nothing left to send, and the record is in HubSpot (its changes since the last
    /// sync were to fields HubSpot does not get, or were undone). A completion that sent something writes `synced`
    /// with the HubSpot id.
    ItemConfirmed,
}

impl RecordSyncEvent {
    pub const ALL: [RecordSyncEvent; 3] = [Self::ItemDead, Self::ItemRedriven, Self::ItemConfirmed];

    /// The status the event moves a record to.
    pub const fn status(self) -> HubSpotSyncStatus {
        match self {
            Self::ItemDead => HubSpotSyncStatus::Failed,
            Self::ItemRedriven => HubSpotSyncStatus::Pending,
            Self::ItemConfirmed => HubSpotSyncStatus::Synced,
        }
    }

    /// The statuses the event moves a record from; a record in any other keeps its status.
    pub const fn moves_from(self) -> &'static [HubSpotSyncStatus] {
        match self {
            Self::ItemDead => &[HubSpotSyncStatus::Pending, HubSpotSyncStatus::Synced],
            Self::ItemRedriven => &[HubSpotSyncStatus::Failed],
            Self::ItemConfirmed => &[HubSpotSyncStatus::Pending, HubSpotSyncStatus::Failed],
        }
    }

    /// [`RecordSyncEvent::moves_from`] as an SQL list of literals (`'pending', 'synced'`), from
    /// [`HubSpotSyncStatus::as_str`], never from input.
    pub fn moves_from_sql(self) -> String {
        self.moves_from()
            .iter()
            .map(|status| format!("'{}'", status.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl HubSpotSyncStatus {
    /// The status after `event`.
    pub fn after(self, event: RecordSyncEvent) -> HubSpotSyncStatus {
        if event.moves_from().contains(&self) {
            event.status()
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HubSpotSyncStatus::*;
    use RecordSyncEvent::*;

    #[test]
    fn sync_item_events_move_records_as_the_state_diagram_says() {
        let table = [
            (Pending, ItemDead, Failed),
            (Synced, ItemDead, Failed),
            (Failed, ItemDead, Failed),
            (Failed, ItemRedriven, Pending),
            (Pending, ItemRedriven, Pending),
            (Synced, ItemRedriven, Synced),
            (Pending, ItemConfirmed, Synced),
            (Failed, ItemConfirmed, Synced),
            (Synced, ItemConfirmed, Synced),
        ];
        for (before, event, after) in table {
            assert_eq!(before.after(event), after, "{before:?} after {event:?}");
        }
    }

    #[test]
    fn no_sync_item_event_moves_a_deleted_or_local_only_record() {
        for event in RecordSyncEvent::ALL {
            assert_eq!(Deleted.after(event), Deleted, "{event:?}");
            assert_eq!(LocalOnly.after(event), LocalOnly, "{event:?}");
        }
    }

    #[test]
    fn the_sql_list_names_the_statuses_an_event_moves_from() {
        assert_eq!(ItemDead.moves_from_sql(), "'pending', 'synced'");
        assert_eq!(ItemRedriven.moves_from_sql(), "'failed'");
    }

    #[test]
    fn every_hubspot_sync_status_round_trips_through_its_stored_name() {
        for status in HubSpotSyncStatus::ALL {
            assert_eq!(HubSpotSyncStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(HubSpotSyncStatus::parse("done"), None);
    }
}
