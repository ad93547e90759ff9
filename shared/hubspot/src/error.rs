//! `HubSpotError`, the one error type of this crate, HubSpot's error bodies, and their classification into
//! retryable, permanent and daily-limit errors.
//!
//! Sources: error body and statuses <https://developers.hubspot.com/docs/api-reference/error-handling>;
//! 429 policies <https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// How long to wait after a 423 Locked: HubSpot's locks last 2 s.
pub const LOCKED_WAIT: Duration = Duration::from_secs(2);
/// Wait after the search API's per-second limit.
pub const SEARCH_LIMIT_WAIT: Duration = Duration::from_secs(1);
/// Wait after a 477 Migration in Progress that carries no `Retry-After`.
pub const MIGRATION_DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// What a caller should do about an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later; `suggested_wait` is HubSpot's hint (window length, lock time, `Retry-After`), if any,
    /// otherwise use exponential backoff.
    Retryable { suggested_wait: Option<Duration> },
    /// Retrying the same request cannot succeed.
    Permanent(PermanentKind),
    /// The account's daily limit is spent: stop calling HubSpot until it resets (midnight, account time zone).
    Daily,
}

impl ErrorClass {
    /// True for [`ErrorClass::Retryable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, ErrorClass::Retryable { .. })
    }
}

/// Why a permanent error is permanent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PermanentKind {
    /// 400 and other validation failures (bad property value, unknown property, duplicate input ...).
    Validation,
    /// 401: missing or invalid token.
    Unauthorized,
    /// 403: the token lacks a scope.
    Forbidden,
    /// 404 or a batch read that found nothing for the input.
    NotFound,
    /// 409: the record already exists; `existing_id` is parsed from "Existing ID: N" when HubSpot says it.
    Conflict { existing_id: Option<String> },
    /// Anything else that retrying cannot fix (other 4xx, undecodable answers, unmapped batch inputs).
    Other,
}

/// One entry of an error body's `errors` array.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    #[serde(default)]
    pub message: String,
    pub code: Option<String>,
    #[serde(rename = "in")]
    pub in_field: Option<String>,
    pub sub_category: Option<Value>,
    /// An object of arrays in practice; the published examples also show it as a string, so it stays raw JSON.
    pub context: Option<Value>,
}

/// An error answer from HubSpot, for a whole call or, inside a 207 multi-status answer, for one input.
#[derive(Clone, Debug, PartialEq)]
pub struct HubSpotErrorResponse {
    /// HTTP method and path (without query) of the call.
    pub method: String,
    pub path: String,
    /// HTTP status; for a per-input error of a 207 answer, the item's own status when it is numeric, else 207.
    pub status: u16,
    pub category: Option<String>,
    pub sub_category: Option<Value>,
    pub message: String,
    pub correlation_id: Option<String>,
    pub errors: Vec<ErrorDetail>,
    pub context: Option<Value>,
    /// `policyName` of a 429 (`TEN_SECONDLY_ROLLING`, `DAILY`, ...).
    pub policy_name: Option<String>,
    /// The existing record id of a 409 CONFLICT, parsed from "Existing ID: N".
    pub existing_id: Option<String>,
    /// Wait HubSpot suggested (`Retry-After`, rate-limit interval, lock time), if any.
    pub suggested_wait: Option<Duration>,
    /// For a per-input error: the index of the input in the caller's slice.
    pub input_index: Option<usize>,
    /// For a per-input error: the `objectWriteTraceId` HubSpot returned with it.
    pub object_write_trace_id: Option<String>,
}

impl fmt::Display for HubSpotErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HubSpot {} {} answered {}", self.method, self.path, self.status)?;
        if let Some(category) = &self.category {
            write!(f, " {category}")?;
        }
        if let Some(policy) = &self.policy_name {
            write!(f, " ({policy})")?;
        }
        if let Some(index) = self.input_index {
            write!(f, " for input {index}")?;
        }
        write!(f, ": {}", self.message)?;
        for detail in &self.errors {
            if !detail.message.is_empty() && detail.message != self.message {
                write!(f, "; {}", detail.message)?;
            }
        }
        if let Some(id) = &self.correlation_id {
            write!(f, " (correlationId {id})")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong talking to HubSpot. Cheap to clone (sources are shared), so one whole-call error
/// can be reported for every input it affected.
#[derive(Clone, Debug, thiserror::Error)]
pub enum HubSpotError {
    /// HubSpot answered with an error status or reported a per-input error in a batch answer.
    #[error("{0}")]
    Api(Box<HubSpotErrorResponse>),
    /// No complete answer within the configured request timeout. The request may have been applied.
    #[error("HubSpot {method} {path} timed out after {timeout:?}")]
    Timeout {
        method: String,
        path: String,
        timeout: Duration,
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The connection failed. `not_sent` is true when it failed before the request was sent (connect error), so
    /// the request was certainly not applied; otherwise (reset, closed mid-answer) it may have been.
    #[error("HubSpot {method} {path}: connection failed ({}): {source}", if *.not_sent { "request not sent" } else { "request may have been applied" })]
    Transport {
        method: String,
        path: String,
        not_sent: bool,
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// A success answer whose body did not match HubSpot's documented shape.
    #[error("HubSpot {method} {path} answered {status} with a body that could not be decoded: {source}")]
    Decode {
        method: String,
        path: String,
        status: u16,
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// A batch answer had neither a result nor an error for this input, so its outcome is unknown.
    #[error("HubSpot {path}: the answer has no result and no error for input {input_index}; its outcome is unknown")]
    MissingResult { path: String, input_index: usize },
    /// The caller's input was rejected before anything was sent.
    #[error("invalid {field}: {reason}")]
    InvalidInput { field: String, reason: String },
    /// The configuration is unusable.
    #[error("invalid HubSpot configuration: {field} {reason}")]
    Config { field: String, reason: String },
    /// The daily limit is spent (a DAILY 429 or `X-HubSpot-RateLimit-Daily-Remaining: 0` was seen) and resets at
    /// `until` (midnight at [`crate::RateLimitConfig::daily_reset_offset`]); the request was not sent.
    #[error("HubSpot daily request limit is spent until {until}; {method} {path} was not sent")]
    DailyLimitSpent {
        method: String,
        path: String,
        until: DateTime<Utc>,
    },
    /// The portal holds something setup cannot reconcile (e.g. `crmsync_id` exists without unique values).
    #[error("HubSpot setup: {what}: {reason}")]
    SetupConflict { what: String, reason: String },
}

impl HubSpotError {
    /// Classifies the error; see [`ErrorClass`].
    ///
    /// - retryable: 429 `TEN_SECONDLY_ROLLING` and the search per-second limit, 423 (≥ 2 s), 477 (`Retry-After`),
    ///   5xx (502, 503, 504, 521, 523, 524 ...), timeouts, connection failures, per-input `RATE_LIMITS` errors, batch
    ///   inputs whose outcome is unknown ([`HubSpotError::MissingResult`]);
    /// - daily: 429 `DAILY`, and requests refused locally until the daily reset ([`HubSpotError::DailyLimitSpent`]);
    /// - permanent: everything else (400 validation, 401, 403, 404, 409 with its existing id, ...).
    pub fn class(&self) -> ErrorClass {
        match self {
            HubSpotError::Api(api) => api.class(),
            // A batch answer without a result or an error for an input: its outcome is unknown, so it is retried
            // like a timeout (batch writes here are upserts on a unique key, idempotent association creates, or
            // engagement creates that look for an earlier attempt's record first).
            HubSpotError::Timeout { .. } | HubSpotError::Transport { .. } | HubSpotError::MissingResult { .. } => {
                ErrorClass::Retryable { suggested_wait: None }
            }
            HubSpotError::Decode { .. } | HubSpotError::SetupConflict { .. } => {
                ErrorClass::Permanent(PermanentKind::Other)
            }
            HubSpotError::InvalidInput { .. } | HubSpotError::Config { .. } => {
                ErrorClass::Permanent(PermanentKind::Validation)
            }
            HubSpotError::DailyLimitSpent { .. } => ErrorClass::Daily,
        }
    }

    /// The HTTP status HubSpot answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            HubSpotError::Api(api) => Some(api.status),
            HubSpotError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The API error details, if HubSpot answered with an error.
    pub fn api(&self) -> Option<&HubSpotErrorResponse> {
        match self {
            HubSpotError::Api(api) => Some(api),
            _ => None,
        }
    }

    /// True for 404s and batch-read inputs HubSpot did not find.
    pub fn is_not_found(&self) -> bool {
        self.class() == ErrorClass::Permanent(PermanentKind::NotFound)
    }

    /// True when the request certainly was not applied, so even a non-idempotent request (create) may be sent
    /// again: rate-limit and lock answers and failed connects. Timeouts, resets and 5xx are ambiguous.
    pub fn request_not_applied(&self) -> bool {
        match self {
            HubSpotError::Api(api) => matches!(api.status, 423 | 429 | 477),
            HubSpotError::Transport { not_sent, .. } => *not_sent,
            HubSpotError::DailyLimitSpent { .. } => true,
            _ => false,
        }
    }
}

impl HubSpotErrorResponse {
    /// See [`HubSpotError::class`].
    pub fn class(&self) -> ErrorClass {
        let retry = |wait: Option<Duration>| ErrorClass::Retryable { suggested_wait: wait };
        match self.status {
            429 => {
                let policy = self.policy_name.as_deref().unwrap_or("").to_ascii_uppercase();
                if policy == "DAILY" {
                    ErrorClass::Daily
                } else if policy.contains("SECONDLY") && !policy.contains("TEN")
                    || self.message.contains("secondly limit")
                {
                    retry(Some(self.suggested_wait.unwrap_or(SEARCH_LIMIT_WAIT)))
                } else {
                    retry(self.suggested_wait)
                }
            }
            423 => retry(Some(self.suggested_wait.unwrap_or(LOCKED_WAIT).max(LOCKED_WAIT))),
            477 => retry(Some(self.suggested_wait.unwrap_or(MIGRATION_DEFAULT_WAIT))),
            500..=599 => retry(self.suggested_wait),
            400 | 422 => ErrorClass::Permanent(PermanentKind::Validation),
            401 => ErrorClass::Permanent(PermanentKind::Unauthorized),
            403 => ErrorClass::Permanent(PermanentKind::Forbidden),
            404 => ErrorClass::Permanent(PermanentKind::NotFound),
            409 => ErrorClass::Permanent(PermanentKind::Conflict {
                existing_id: self.existing_id.clone(),
            }),
            // A per-input error inside a 200/207 batch answer: classify by category.
            200..=299 => match self.category.as_deref() {
                Some("RATE_LIMITS") => retry(self.suggested_wait),
                Some("CONFLICT") => ErrorClass::Permanent(PermanentKind::Conflict {
                    existing_id: self.existing_id.clone(),
                }),
                Some("OBJECT_NOT_FOUND") => ErrorClass::Permanent(PermanentKind::NotFound),
                Some("VALIDATION_ERROR") => ErrorClass::Permanent(PermanentKind::Validation),
                _ => ErrorClass::Permanent(PermanentKind::Other),
            },
            _ => ErrorClass::Permanent(PermanentKind::Other),
        }
    }
}

/// HubSpot's error body, every field optional ("should all be treated as optional in any error parsing").
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ErrorBody {
    pub status: Option<Value>,
    pub message: Option<String>,
    pub category: Option<String>,
    pub sub_category: Option<Value>,
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
    pub context: Option<Value>,
    pub policy_name: Option<String>,
}

impl ErrorBody {
    /// Parses an error body; a body that is not JSON (an HTML 502 page) becomes the message, shortened.
    pub(crate) fn parse(bytes: &[u8]) -> ErrorBody {
        serde_json::from_slice(bytes).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(bytes);
            let text: String = text.chars().take(300).collect();
            ErrorBody {
                message: Some(text.trim().to_owned()),
                ..ErrorBody::default()
            }
        })
    }

    /// Builds the API error of a call (or, with `input_index`, of one input).
    pub(crate) fn into_error_response(self, method: &str, path: &str, status: u16) -> HubSpotErrorResponse {
        let message = self.message.unwrap_or_default();
        let existing_id = parse_existing_id(&message);
        // A per-input error carries its own status ("error", or a number in some APIs).
        let status = self
            .status
            .as_ref()
            .and_then(|s| match s {
                Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
                Value::String(s) => s.parse().ok(),
                _ => None,
            })
            .filter(|s| (100..600).contains(s))
            .unwrap_or(status);
        HubSpotErrorResponse {
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            category: self.category,
            sub_category: self.sub_category,
            message,
            correlation_id: self.correlation_id,
            errors: self.errors,
            context: self.context,
            policy_name: self.policy_name,
            existing_id,
            suggested_wait: None,
            input_index: None,
            object_write_trace_id: None,
        }
    }
}

/// Values of `context[key]` (HubSpot sends `{"key": ["v", ...]}`), as strings.
pub(crate) fn context_values(context: Option<&Value>, key: &str) -> Vec<String> {
    match context.and_then(|c| c.get(key)) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Number(n)) => vec![n.to_string()],
        _ => Vec::new(),
    }
}

/// "Contact already exists. Existing ID: 37765128953" → `37765128953`
/// (<https://github.com/HubSpot/hubspot-api-nodejs/issues/545>).
pub fn parse_existing_id(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("Existing ID:")?;
    let digits: String = rest.trim_start().chars().take_while(|c| c.is_ascii_digit()).collect();
    (!digits.is_empty()).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, body: &str) -> HubSpotErrorResponse {
        ErrorBody::parse(body.as_bytes()).into_error_response("POST", "/crm/objects/2026-03/deals/batch/upsert", status)
    }

    #[test]
    fn existing_id_is_parsed_from_a_conflict_message() {
        assert_eq!(
            parse_existing_id("Contact already exists. Existing ID: 37765128953").as_deref(),
            Some("37765128953")
        );
        assert_eq!(parse_existing_id("Contact already exists."), None);
        assert_eq!(parse_existing_id("Existing ID: none"), None);
    }

    #[test]
    fn a_409_is_permanent_conflict_with_the_existing_id() {
        let err = api(
            409,
            r#"{"status":"error","message":"Contact already exists. Existing ID: 37765128953","correlationId":"c-1","category":"CONFLICT"}"#,
        );
        assert_eq!(
            err.class(),
            ErrorClass::Permanent(PermanentKind::Conflict {
                existing_id: Some("37765128953".into())
            })
        );
        assert_eq!(err.correlation_id.as_deref(), Some("c-1"));
    }

    #[test]
    fn daily_429_is_daily_and_ten_secondly_is_retryable() {
        let daily = api(
            429,
            r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"x","policyName":"DAILY"}"#,
        );
        assert_eq!(daily.class(), ErrorClass::Daily);
        let mut rolling = api(
            429,
            r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING","groupName":"publicapi:hapikey-api-calls-ten-secondly:6748263"}"#,
        );
        rolling.suggested_wait = Some(Duration::from_secs(10));
        assert_eq!(
            rolling.class(),
            ErrorClass::Retryable {
                suggested_wait: Some(Duration::from_secs(10))
            }
        );
    }

    #[test]
    fn search_secondly_limit_suggests_one_second() {
        let err = api(
            429,
            r#"{"status":"error","message":"You have reached your secondly limit."}"#,
        );
        assert_eq!(
            err.class(),
            ErrorClass::Retryable {
                suggested_wait: Some(SEARCH_LIMIT_WAIT)
            }
        );
    }

    #[test]
    fn locked_waits_at_least_two_seconds_and_server_errors_use_backoff() {
        let mut locked = api(423, "{}");
        locked.suggested_wait = Some(Duration::from_millis(500));
        assert_eq!(
            locked.class(),
            ErrorClass::Retryable {
                suggested_wait: Some(LOCKED_WAIT)
            }
        );
        for status in [500, 502, 503, 504, 521, 523, 524] {
            assert_eq!(
                api(status, "<html>bad gateway</html>").class(),
                ErrorClass::Retryable { suggested_wait: None },
                "status {status}"
            );
        }
    }

    #[test]
    fn client_errors_are_permanent_by_kind() {
        assert_eq!(api(400, "{}").class(), ErrorClass::Permanent(PermanentKind::Validation));
        assert_eq!(
            api(401, "{}").class(),
            ErrorClass::Permanent(PermanentKind::Unauthorized)
        );
        assert_eq!(api(403, "{}").class(), ErrorClass::Permanent(PermanentKind::Forbidden));
        assert_eq!(api(404, "{}").class(), ErrorClass::Permanent(PermanentKind::NotFound));
    }

    #[test]
    fn a_non_json_error_body_becomes_the_message() {
        let err = api(502, "<html>Bad Gateway</html>");
        assert_eq!(err.message, "<html>Bad Gateway</html>");
        assert!(err.to_string().contains("502"));
    }

    #[test]
    fn context_values_read_arrays_and_strings() {
        let ctx: Value = serde_json::json!({"objectWriteTraceId": ["3"], "ids": ["1", 2]});
        assert_eq!(context_values(Some(&ctx), "objectWriteTraceId"), vec!["3"]);
        assert_eq!(context_values(Some(&ctx), "ids"), vec!["1", "2"]);
        assert!(context_values(Some(&ctx), "missing").is_empty());
    }
}
