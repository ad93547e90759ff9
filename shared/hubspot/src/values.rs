//! Property value formats. HubSpot sends and takes every property value as a string; `date` properties are
//! `YYYY-MM-DD` (midnight UTC), `datetime` properties ISO 8601 or epoch milliseconds, and numbers are decimal
//! strings, written here without float noise.
//!
//! Sources: <https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide>,
//! <https://developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis>.

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, TimeZone as _, Utc};
use rust_decimal::Decimal;

use crate::error::HubSpotError;

/// A `date` property value: `2026-03-30`. HubSpot rejects date values that are not midnight UTC
/// ("INVALID_DATE ... not midnight!"), which a plain date cannot be.
pub fn date(value: NaiveDate) -> String {
    value.format("%Y-%m-%d").to_string()
}

/// A `datetime` property value: ISO 8601 in UTC with milliseconds, `2026-03-30T14:05:09.120Z`.
pub fn datetime(value: DateTime<Utc>) -> String {
    value.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A `number` property value without float noise or trailing zeros: `1234.50` → `1234.5`, `-0` → `0`.
pub fn decimal(value: Decimal) -> String {
    value.normalize().to_string()
}

/// A `bool` property value: `true` / `false`.
pub fn boolean(value: bool) -> String {
    value.to_string()
}

/// An integer `number` property value.
pub fn integer(value: i64) -> String {
    value.to_string()
}

fn invalid(field: &str, value: &str, expected: &str) -> HubSpotError {
    HubSpotError::InvalidInput {
        field: field.to_owned(),
        reason: format!("{value:?} is not {expected}"),
    }
}

/// Reads a `date` value as HubSpot returns it: `YYYY-MM-DD`, an ISO 8601 datetime at midnight UTC, or epoch
/// milliseconds at midnight UTC.
pub fn parse_date(field: &str, value: &str) -> Result<NaiveDate, HubSpotError> {
    let value = value.trim();
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(d);
    }
    let at = parse_datetime(field, value).map_err(|_| invalid(field, value, "a date (YYYY-MM-DD)"))?;
    if at.time() != NaiveTime::MIN {
        return Err(invalid(field, value, "a date at midnight UTC"));
    }
    Ok(at.date_naive())
}

/// Reads a `datetime` value: ISO 8601 / RFC 3339 or epoch milliseconds.
pub fn parse_datetime(field: &str, value: &str) -> Result<DateTime<Utc>, HubSpotError> {
    let value = value.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    value
        .parse::<i64>()
        .ok()
        .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .ok_or_else(|| invalid(field, value, "an ISO 8601 datetime or epoch milliseconds"))
}

/// Reads a `number` value exactly (no float rounding).
pub fn parse_decimal(field: &str, value: &str) -> Result<Decimal, HubSpotError> {
    let value = value.trim();
    value
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(value))
        .map_err(|_| invalid(field, value, "a decimal number"))
}

/// Serde helper for HubSpot timestamps in API bodies: RFC 3339 strings, or epoch milliseconds.
pub(crate) mod lenient_datetime {
    use chrono::{DateTime, TimeZone as _, Utc};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(match Option::<Value>::deserialize(de)? {
            Some(Value::String(s)) => super::parse_datetime("timestamp", &s).ok(),
            Some(Value::Number(n)) => n.as_i64().and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr as _;

    #[test]
    fn dates_are_written_as_plain_calendar_dates() {
        assert_eq!(date(NaiveDate::from_ymd_opt(2026, 3, 5).unwrap()), "2026-03-05");
    }

    #[test]
    fn datetimes_are_iso_8601_utc_with_milliseconds() {
        let at = Utc.with_ymd_and_hms(2020, 2, 29, 3, 30, 17).unwrap();
        assert_eq!(datetime(at), "2020-02-29T03:30:17.000Z");
    }

    #[test]
    fn decimals_are_written_without_float_noise_or_trailing_zeros() {
        assert_eq!(decimal(Decimal::from_str("1234.500").unwrap()), "1234.5");
        assert_eq!(
            decimal(Decimal::from_str("0.1").unwrap() + Decimal::from_str("0.2").unwrap()),
            "0.3"
        );
        assert_eq!(decimal(Decimal::from_str("100").unwrap()), "100");
        assert_eq!(decimal(Decimal::from_str("-0.00").unwrap()), "0");
        assert_eq!(decimal(Decimal::from_str("250000.00").unwrap()), "250000");
    }

    #[test]
    fn dates_parse_from_every_form_hubspot_returns() {
        let d = NaiveDate::from_ymd_opt(2019, 10, 31).unwrap();
        assert_eq!(parse_date("closedate", "2019-10-31").unwrap(), d);
        assert_eq!(parse_date("closedate", "2019-10-31T00:00:00Z").unwrap(), d);
        assert_eq!(parse_date("closedate", "1572480000000").unwrap(), d);
    }

    #[test]
    fn a_date_with_a_time_of_day_is_rejected_naming_the_field() {
        let err = parse_date("closedate", "2019-10-31T22:18:55.865Z")
            .unwrap_err()
            .to_string();
        assert!(err.contains("closedate") && err.contains("midnight"), "{err}");
    }

    #[test]
    fn datetimes_parse_from_iso_and_milliseconds() {
        let at = Utc.with_ymd_and_hms(2019, 10, 30, 3, 30, 17).unwrap() + chrono::Duration::milliseconds(883);
        assert_eq!(parse_datetime("t", "2019-10-30T03:30:17.883Z").unwrap(), at);
        assert_eq!(parse_datetime("t", &at.timestamp_millis().to_string()).unwrap(), at);
        assert!(parse_datetime("t", "yesterday").is_err());
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(
            parse_decimal("amount", "0.1").unwrap(),
            Decimal::from_str("0.1").unwrap()
        );
        assert_eq!(parse_decimal("amount", "1e3").unwrap(), Decimal::from(1000));
        assert!(
            parse_decimal("amount", "ten")
                .unwrap_err()
                .to_string()
                .contains("amount")
        );
    }
}
