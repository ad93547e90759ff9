//! The deal stages of the guide's "B2G Opportunities" pipeline, in pipeline order, which of them close a deal, and
//! the `stage_change` activity logged when a deal moves, whoever moved it.

use std::fmt;
use std::str::FromStr;

use crate::DomainError;
use crate::hubspot_status::HubSpotSyncStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealStage {
    NewMatch,
    InitialOutreach,
    ContactMade,
    Qualified,
    ProposalSent,
    Negotiation,
    ClosedWon,
    ClosedLost,
}

impl DealStage {
    pub const ALL: [DealStage; 8] = [
        Self::NewMatch,
        Self::InitialOutreach,
        Self::ContactMade,
        Self::Qualified,
        Self::ProposalSent,
        Self::Negotiation,
        Self::ClosedWon,
        Self::ClosedLost,
    ];

    /// The value stored in `deals.stage`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NewMatch => "new_match",
            Self::InitialOutreach => "initial_outreach",
            Self::ContactMade => "contact_made",
            Self::Qualified => "qualified",
            Self::ProposalSent => "proposal_sent",
            Self::Negotiation => "negotiation",
            Self::ClosedWon => "closed_won",
            Self::ClosedLost => "closed_lost",
        }
    }

    /// closed_won and closed_lost: a deal in them has `closed_at` set.
    pub fn is_closed(self) -> bool {
        matches!(self, Self::ClosedWon | Self::ClosedLost)
    }
}

impl fmt::Display for DealStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DealStage {
    type Err = DomainError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|stage| stage.as_str() == value)
            .ok_or_else(|| {
                DomainError::invalid(
                    "stage",
                    format!(
                        "unknown stage {value:?}; expected one of {}",
                        Self::ALL.map(DealStage::as_str).join(", ")
                    ),
                )
            })
    }
}

/// Who moved a deal's stage, for its `stage_change` activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageMover<'a> {
    /// A salesperson in HubSpot, reported by a webhook event.
    HubSpot,
    /// A caller of the API, by its principal's label.
    Api(&'a str),
}

/// The `stage_change` activity logged (local only: HubSpot keeps its own stage history) when a deal moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageChangeActivity {
    pub activity_type: &'static str,
    pub subject: String,
    pub body: Option<String>,
    pub created_by: String,
    pub hubspot_sync_status: HubSpotSyncStatus,
}

/// The activity for a move from stage `from` to `to`. The subject reads the same whoever moved the deal
/// ("Stage changed from qualified to closed_won"), with " in HubSpot" for a move made there; a HubSpot move also
/// records the stages and its source as JSON in the body.
pub fn stage_change_activity(from: &str, to: &str, mover: StageMover<'_>) -> StageChangeActivity {
    let (place, body, created_by) = match mover {
        StageMover::HubSpot => (
            " in HubSpot",
            Some(format!(
                "{{\"from\":\"{from}\",\"to\":\"{to}\",\"source\":\"hubspot_webhook\"}}"
            )),
            "hubspot".to_owned(),
        ),
        StageMover::Api(principal) => ("", None, principal.to_owned()),
    };
    StageChangeActivity {
        activity_type: "stage_change",
        subject: format!("Stage changed from {from} to {to}{place}"),
        body,
        created_by,
        hubspot_sync_status: HubSpotSyncStatus::LocalOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_round_trips_through_its_stored_name() {
        for stage in DealStage::ALL {
            assert_eq!(stage.as_str().parse::<DealStage>().ok(), Some(stage));
        }
    }

    #[test]
    fn an_unknown_stage_is_rejected_with_the_field_name_and_the_choices() {
        let error = "won".parse::<DealStage>().unwrap_err();
        assert_eq!(error.field(), Some("stage"));
        assert!(error.to_string().contains("closed_won"), "{error}");
    }

    #[test]
    fn only_the_two_closing_stages_are_closed() {
        let closed: Vec<_> = DealStage::ALL.into_iter().filter(|s| s.is_closed()).collect();
        assert_eq!(closed, vec![DealStage::ClosedWon, DealStage::ClosedLost]);
    }

    #[test]
    fn a_stage_change_activity_reads_the_same_whoever_moved_the_deal() {
        let cases = [
            (
                StageMover::HubSpot,
                "Stage changed from qualified to closed_won in HubSpot",
                Some(r#"{"from":"qualified","to":"closed_won","source":"hubspot_webhook"}"#),
                "hubspot",
            ),
            (
                StageMover::Api("api:dashboard"),
                "Stage changed from qualified to closed_won",
                None,
                "api:dashboard",
            ),
        ];
        for (mover, subject, body, created_by) in cases {
            let activity = stage_change_activity("qualified", "closed_won", mover);
            assert_eq!(activity.activity_type, "stage_change");
            assert_eq!(activity.subject, subject);
            assert_eq!(activity.body.as_deref(), body);
            assert_eq!(activity.created_by, created_by);
            assert_eq!(activity.hubspot_sync_status, HubSpotSyncStatus::LocalOnly);
        }
    }
}
