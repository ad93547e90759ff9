//! The guide's rules for turning a match into a company and a deal (Module 4, Steps A and B), written once and
//! tested table-driven.

use rust_decimal::{Decimal, RoundingStrategy};

/// How many characters of the opportunity title a deal name keeps.
pub const DEAL_NAME_TITLE_CHARS: usize = 50;

/// The readiness score at which a company counts as qualified (`readiness_score >= 80`).
pub const QUALIFIED_READINESS: Decimal = Decimal::from_parts(80, 0, 0, false, 0);

/// `${title.substring(0, 50)} - ${company.name}`, counting Unicode characters rather than bytes, so a multibyte
/// title is never cut inside a character.
pub fn deal_name(opportunity_title: &str, company_name: &str) -> String {
    let title: String = opportunity_title.chars().take(DEAL_NAME_TITLE_CHARS).collect();
    format!("{title} - {company_name}")
}

/// `Math.round(match_score * 0.8)`: 80% of the match score, rounded half up. Computed in decimal so a score such
/// as 85.625 (×0.8 = 68.5 exactly) rounds to 69 without binary floating-point noise.
pub fn win_probability(match_score: Decimal) -> i32 {
    let scaled = match_score * Decimal::new(8, 1);
    // Scores are validated to 0..=100, so the result fits 0..=80; half-up equals half-away-from-zero here.
    let rounded = scaled.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    i32::try_from(rounded.mantissa() / 10_i128.pow(rounded.scale())).unwrap_or(i32::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualificationStatus {
    Qualified,
    Unqualified,
}

impl QualificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Qualified => "qualified",
            Self::Unqualified => "unqualified",
        }
    }
}

/// `readiness_score >= 80 ? 'qualified' : 'unqualified'`; a company without a score is unqualified.
pub fn qualification_status(readiness_score: Option<Decimal>) -> QualificationStatus {
    match readiness_score {
        Some(score) if score >= QUALIFIED_READINESS => QualificationStatus::Qualified,
        _ => QualificationStatus::Unqualified,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Low,
    Medium,
    High,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// The opportunity flag that makes a deal high priority.
pub const FAST_TRACK: &str = "FAST_TRACK";

/// `priority_flag === 'FAST_TRACK' ? 'high' : 'medium'`: an exact, case-sensitive comparison, as in the guide.
pub fn deal_priority(priority_flag: Option<&str>) -> Priority {
    if priority_flag == Some(FAST_TRACK) {
        Priority::High
    } else {
        Priority::Medium
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).expect("test decimal")
    }

    #[test]
    fn deal_names_keep_the_first_fifty_characters_of_the_title() {
        let fifty = "A".repeat(50);
        let cases = [
            (
                "short ascii title",
                "short ascii title".to_owned(),
                "short ascii title".to_owned(),
            ),
            ("exactly fifty", fifty.clone(), fifty.clone()),
            ("longer ascii title is cut at 50", format!("{fifty}BBBB"), fifty.clone()),
            (
                "multibyte shorter than 50",
                "Réparation des systèmes ⚙️".to_owned(),
                "Réparation des systèmes ⚙️".to_owned(),
            ),
            (
                "multibyte longer than 50 is cut on characters",
                "é".repeat(60),
                "é".repeat(50),
            ),
            ("four-byte characters count once each", "🚀".repeat(51), "🚀".repeat(50)),
        ];
        for (case, title, kept) in cases {
            assert_eq!(deal_name(&title, "Acme"), format!("{kept} - Acme"), "case: {case}");
        }
    }

    #[test]
    fn win_probability_is_eighty_percent_of_the_score_rounded_half_up() {
        let cases = [
            ("0", 0),
            ("100", 80),
            ("87.5", 70),   // 70.0
            ("85.625", 69), // 68.5 exactly: half rounds up
            ("84.375", 68), // 67.5 exactly: half rounds up
            ("0.625", 1),   // 0.5 exactly
            ("85.62", 68),  // 68.496
            ("85.63", 69),  // 68.504
            ("99.99", 80),  // 79.992
            ("1.8", 1),     // 1.44
            ("43.125", 35), // 34.5 exactly
        ];
        for (score, expected) in cases {
            assert_eq!(win_probability(dec(score)), expected, "score {score}");
        }
    }

    #[test]
    fn companies_qualify_at_a_readiness_score_of_eighty() {
        let cases = [
            (Some(dec("79.99")), QualificationStatus::Unqualified),
            (Some(dec("80")), QualificationStatus::Qualified),
            (Some(dec("80.00")), QualificationStatus::Qualified),
            (Some(dec("100")), QualificationStatus::Qualified),
            (Some(dec("0")), QualificationStatus::Unqualified),
            (None, QualificationStatus::Unqualified),
        ];
        for (score, expected) in cases {
            assert_eq!(qualification_status(score), expected, "score {score:?}");
        }
    }

    #[test]
    fn only_an_exact_fast_track_flag_makes_a_deal_high_priority() {
        let cases = [
            (Some("FAST_TRACK"), Priority::High),
            (Some("fast_track"), Priority::Medium),
            (Some("STANDARD"), Priority::Medium),
            (Some(""), Priority::Medium),
            (None, Priority::Medium),
        ];
        for (flag, expected) in cases {
            assert_eq!(deal_priority(flag), expected, "flag {flag:?}");
        }
    }
}
