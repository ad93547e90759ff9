//! Where a local record stands with HubSpot (`hubspot_sync_status`), as the domain names it and SQL stores it.

/// A local record's `hubspot_sync_status` (the schema's `*_hubspot_sync_status_check`): where it stands with HubSpot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HubSpotSyncStatus {
    /// Changed locally; the next sync sends it.
    Pending,
    /// HubSpot holds what we hold.
    Synced,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hubspot_sync_status_round_trips_through_its_stored_name() {
        for status in HubSpotSyncStatus::ALL {
            assert_eq!(HubSpotSyncStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(HubSpotSyncStatus::parse("done"), None);
    }
}
