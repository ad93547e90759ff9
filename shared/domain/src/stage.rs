//! The deal stages of the guide's "B2G Opportunities" pipeline, in pipeline order.

use std::fmt;
use std::str::FromStr;

use crate::DomainError;

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
}
