//! Property value validation and normalisation by property type, with HubSpot's error codes.
//!
//! Formats: <https://developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis>.
//! `date` values are `YYYY-MM-DD` or epoch milliseconds at midnight UTC, otherwise HubSpot answers
//! `INVALID_DATE … "is at 22:18:55.865 UTC, not midnight!"` (hubspot-api-php#74); `datetime`
//! values are epoch milliseconds or ISO 8601 and come back as ISO 8601 UTC.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};

use crate::error::PropertyError;
use crate::model::iso;
use crate::properties::PropertyDef;

/// HubSpot's limit on `string` values.
const MAX_STRING_CHARS: usize = 65_536;

/// Checks `raw` against the property's type and returns the value as stored. An empty string
/// clears the property and is always valid.
pub fn normalize(def: &PropertyDef, raw: &str) -> Result<String, PropertyError> {
    if raw.is_empty() {
        return Ok(String::new());
    }
    let name = def.name.as_str();
    match def.kind.as_str() {
        "number" => {
            let trimmed = raw.trim();
            match trimmed.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(trimmed.to_string()),
                _ => Err(PropertyError::new(
                    name,
                    "INVALID_FLOAT",
                    format!("{raw} was not a valid number."),
                )),
            }
        }
        "bool" => match raw.trim().to_ascii_lowercase().as_str() {
            value @ ("true" | "false") => Ok(value.to_string()),
            _ => Err(PropertyError::new(
                name,
                "INVALID_BOOLEAN",
                format!("{raw} was not a valid boolean."),
            )),
        },
        "date" => normalize_date(name, raw),
        "datetime" => parse_instant(raw)
            .map(iso)
            .ok_or_else(|| PropertyError::new(name, "INVALID_DATETIME", format!("{raw} was not a valid datetime."))),
        "enumeration" if !def.options.is_empty() => {
            for value in raw.split(';').filter(|v| !v.is_empty()) {
                if !def.options.iter().any(|o| o.value == value) {
                    let allowed: Vec<&str> = def.options.iter().map(|o| o.value.as_str()).collect();
                    return Err(PropertyError::new(
                        name,
                        "INVALID_OPTION",
                        format!("{value} was not one of the allowed options: [{}]", allowed.join(", ")),
                    ));
                }
            }
            Ok(raw.to_string())
        }
        _ if raw.chars().count() > MAX_STRING_CHARS => Err(PropertyError::new(
            name,
            "INVALID_STRING",
            format!("the value is longer than {MAX_STRING_CHARS} characters"),
        )),
        _ => Ok(raw.to_string()),
    }
}

/// A date property: stored as `YYYY-MM-DD`; any input must fall on midnight UTC.
fn normalize_date(name: &str, raw: &str) -> Result<String, PropertyError> {
    let text = raw.trim();
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.format("%Y-%m-%d").to_string());
    }
    let instant = parse_instant(text)
        .ok_or_else(|| PropertyError::new(name, "INVALID_DATE", format!("{raw} was not a valid date.")))?;
    if instant.time() != NaiveTime::MIN {
        let time = instant.time();
        return Err(PropertyError::new(
            name,
            "INVALID_DATE",
            format!(
                "{} is at {:02}:{:02}:{:02}.{:03} UTC, not midnight!",
                instant.timestamp_millis(),
                time.hour(),
                time.minute(),
                time.second(),
                time.nanosecond() / 1_000_000
            ),
        ));
    }
    Ok(instant.date_naive().format("%Y-%m-%d").to_string())
}

/// Epoch milliseconds, RFC 3339, or a bare date (midnight UTC).
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Utc.timestamp_millis_opt(ms).single();
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectType;
    use crate::properties::Schema;

    fn def(object_type: ObjectType, name: &str) -> PropertyDef {
        Schema::new().get(object_type, name).unwrap().clone()
    }

    #[test]
    fn a_date_at_midnight_is_stored_as_a_plain_date() {
        let closedate = def(ObjectType::Deals, "closedate");
        assert_eq!(normalize(&closedate, "2026-03-31").unwrap(), "2026-03-31");
        assert_eq!(normalize(&closedate, "2026-03-31T00:00:00Z").unwrap(), "2026-03-31");
        assert_eq!(normalize(&closedate, "1774915200000").unwrap(), "2026-03-31");
    }

    #[test]
    fn a_date_with_a_time_of_day_gets_hubspots_not_midnight_error() {
        let closedate = def(ObjectType::Deals, "closedate");
        let err = normalize(&closedate, "2021-10-29T19:18:55.865Z").unwrap_err();
        assert_eq!(err.code, "INVALID_DATE");
        assert_eq!(err.message, "1635535135865 is at 19:18:55.865 UTC, not midnight!");
        assert_eq!(normalize(&closedate, "soon").unwrap_err().code, "INVALID_DATE");
    }

    #[test]
    fn datetimes_come_back_as_iso_utc_with_milliseconds() {
        let timestamp = def(ObjectType::Notes, "hs_timestamp");
        assert_eq!(
            normalize(&timestamp, "1582947017000").unwrap(),
            "2020-02-29T03:30:17.000Z"
        );
        assert_eq!(
            normalize(&timestamp, "2020-02-29T04:30:17+01:00").unwrap(),
            "2020-02-29T03:30:17.000Z"
        );
        assert_eq!(normalize(&timestamp, "yesterday").unwrap_err().code, "INVALID_DATETIME");
    }

    #[test]
    fn numbers_are_checked_and_kept_as_written() {
        let amount = def(ObjectType::Deals, "amount");
        assert_eq!(normalize(&amount, "1250000.50").unwrap(), "1250000.50");
        let err = normalize(&amount, "12k").unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            ("INVALID_FLOAT", "12k was not a valid number.")
        );
        assert_eq!(normalize(&amount, "").unwrap(), "");
    }
}
