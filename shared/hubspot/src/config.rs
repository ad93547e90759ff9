//! Client configuration: where HubSpot is, how the client authenticates, and the budgets it keeps to.

use std::time::Duration;

use chrono::FixedOffset;
use secrecy::SecretString;

use crate::error::HubSpotError;

/// HubSpot's API host. Source: <https://developers.hubspot.com/docs/api-reference/latest/overview>
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";

/// The date-based API version the client speaks by default (see contract.md).
pub const DEFAULT_API_VERSION: &str = "2026-03";

/// Everything [`crate::HubSpotClient::new`] needs. Build it with [`HubSpotConfig::new`] and adjust the public
/// fields; `Debug` redacts the access token.
#[derive(Clone, Debug)]
pub struct HubSpotConfig {
    /// Base URL without a trailing slash, e.g. `https://api.hubapi.com` or the simulator's `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Private-app / service-key bearer token. Never logged.
    pub access_token: SecretString,
    /// Date-based version such as `2026-03` (paths `/crm/objects/2026-03/...`), or `v3` for the legacy paths
    /// (`/crm/v3/objects/...`, `/crm/v4/associations/...`), which HubSpot stops supporting in 2027.
    pub api_version: String,
    /// Timeout of one HTTP attempt (connect + response body).
    pub request_timeout: Duration,
    /// Client-side request budgets.
    pub rate_limit: RateLimitConfig,
    /// Retries after the first attempt for retryable errors (0 disables retrying inside the client).
    pub max_retries: u32,
    /// First backoff delay; doubles per retry, with jitter.
    pub retry_min_delay: Duration,
    /// Cap of the exponential backoff delay.
    pub retry_max_delay: Duration,
    /// Longest server-suggested wait (e.g. a 477's `Retry-After`) honoured inside the client; longer waits are
    /// returned to the caller as a retryable error instead of blocking the call.
    pub max_retry_wait: Duration,
    /// Chunks of one batch call that may be in flight at once (the limiter still paces them).
    pub max_concurrency: usize,
}

/// The request budgets the client holds itself to.
///
/// HubSpot limits privately distributed apps to 100 (Free/Starter) or 190 (Professional/Enterprise) requests per
/// rolling 10 s, and CRM search to 5 requests/s with no rate headers; search does not count against the 10-s
/// window. Source: <https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests allowed in any rolling `window` (100 or 190 on HubSpot).
    pub requests_per_window: u32,
    /// Length of the rolling window (10 s on HubSpot; shorter in tests).
    pub window: Duration,
    /// Search requests allowed in any rolling second (5 on HubSpot).
    pub search_per_second: u32,
    /// Slack for network-latency variation: requests admitted by the client within `window + latency_allowance`
    /// never exceed the limit, so a server-side window cannot see more even when arrival delays vary.
    pub latency_allowance: Duration,
    /// Slow down when `X-HubSpot-RateLimit-Remaining` is at or below this floor: several processes (Lambdas) of
    /// one app share its window, and each sees only its own requests. At the floor the client pauses until enough
    /// of its own requests have left the window (see the limiter), so together the processes stay under the limit
    /// and keep the floor as slack for requests sent before they noticed. `None` (the default) is 10 % of the
    /// server's `X-HubSpot-RateLimit-Max` (10 of 100, 19 of 190); `Some(0)` pauses only at 0 remaining. A single
    /// process pays for it with about the floor's share of its throughput. The app reads it from
    /// `HUBSPOT_RATE_REMAINING_FLOOR`.
    pub remaining_floor: Option<u32>,
    /// UTC offset of the portal's time zone, whose midnight resets the daily limit
    /// (<https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>). After a DAILY 429 or
    /// `X-HubSpot-RateLimit-Daily-Remaining: 0`, requests fail locally with [`crate::ErrorClass::Daily`] until
    /// the next midnight at this offset. UTC by default; a fixed offset does not follow daylight saving, so the
    /// stop may end an hour off twice a year (a request sent too early just gets another DAILY 429 and stops
    /// again until the following midnight).
    pub daily_reset_offset: FixedOffset,
}

impl RateLimitConfig {
    /// `requests_per_window` per `window`, search at 5/s, a latency allowance of 5 % of the window (500 ms for
    /// 10 s: arrival delays may vary that much before HubSpot could count more than the limit), a remaining
    /// floor of 10 % of the server's limit, and the daily reset at midnight UTC.
    pub fn new(requests_per_window: u32, window: Duration) -> Self {
        Self {
            requests_per_window,
            window,
            search_per_second: 5,
            latency_allowance: window / 20,
            remaining_floor: None,
            daily_reset_offset: FixedOffset::east_opt(0).expect("UTC is a valid offset"),
        }
    }

    /// The floor below which the client slows down, for a server limit of `max` per window.
    pub fn floor_for(&self, max: u32) -> u32 {
        self.remaining_floor.unwrap_or(max / 10)
    }
}

impl Default for RateLimitConfig {
    /// HubSpot Free/Starter: 100 requests per 10 s.
    fn default() -> Self {
        Self::new(100, Duration::from_secs(10))
    }
}

impl HubSpotConfig {
    /// Defaults: api_version 2026-03, 30 s timeout, 100 requests per 10 s, search 5/s, 5 retries from 200 ms up to
    /// 10 s, suggested waits honoured up to 60 s, 4 chunks in flight.
    pub fn new(base_url: impl Into<String>, access_token: SecretString) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            access_token,
            api_version: DEFAULT_API_VERSION.to_owned(),
            request_timeout: Duration::from_secs(30),
            rate_limit: RateLimitConfig::default(),
            max_retries: 5,
            retry_min_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(10),
            max_retry_wait: Duration::from_secs(60),
            max_concurrency: 4,
        }
    }

    /// Checks every field; the error names the field and the reason.
    pub fn validate(&self) -> Result<(), HubSpotError> {
        let bad = |field: &str, reason: &str| {
            Err(HubSpotError::Config {
                field: field.to_owned(),
                reason: reason.to_owned(),
            })
        };
        if reqwest::Url::parse(&self.base_url).is_err() {
            return bad("base_url", "is not an absolute URL");
        }
        if self.api_version.is_empty() || self.api_version.contains('/') {
            return bad("api_version", "must be a version such as 2026-03 or v3");
        }
        if self.request_timeout.is_zero() {
            return bad("request_timeout", "must be greater than zero");
        }
        let rl = &self.rate_limit;
        if rl.requests_per_window < 2 {
            return bad("rate_limit.requests_per_window", "must be at least 2");
        }
        if rl.window.is_zero() {
            return bad("rate_limit.window", "must be greater than zero");
        }
        if rl.remaining_floor.is_some_and(|floor| floor >= rl.requests_per_window) {
            return bad(
                "rate_limit.remaining_floor",
                "must be below rate_limit.requests_per_window",
            );
        }
        if rl.search_per_second < 2 {
            return bad("rate_limit.search_per_second", "must be at least 2");
        }
        if self.retry_min_delay > self.retry_max_delay {
            return bad("retry_min_delay", "must not exceed retry_max_delay");
        }
        if self.max_concurrency == 0 {
            return bad("max_concurrency", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_token() {
        let config = HubSpotConfig::new(DEFAULT_BASE_URL, SecretString::from("pat-na1-very-secret"));
        let printed = format!("{config:?}");
        assert!(!printed.contains("very-secret"), "{printed}");
        assert!(printed.contains("REDACTED"), "{printed}");
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = HubSpotConfig::new("https://api.hubapi.com/", SecretString::from("t"));
        assert_eq!(config.base_url, "https://api.hubapi.com");
        assert_eq!(config.api_version, "2026-03");
        assert_eq!(config.rate_limit.requests_per_window, 100);
        assert_eq!(config.rate_limit.window, Duration::from_secs(10));
        assert_eq!(config.rate_limit.search_per_second, 5);
        assert_eq!(config.rate_limit.remaining_floor, None);
        assert_eq!(config.rate_limit.floor_for(100), 10);
        assert_eq!(config.rate_limit.daily_reset_offset.local_minus_utc(), 0);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn validation_names_the_offending_field() {
        let mut config = HubSpotConfig::new("not a url", SecretString::from("t"));
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("base_url"), "{err}");
        config.base_url = DEFAULT_BASE_URL.to_owned();
        config.rate_limit.requests_per_window = 1;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("rate_limit.requests_per_window"), "{err}");
        config.rate_limit.requests_per_window = 100;
        config.rate_limit.remaining_floor = Some(100);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("rate_limit.remaining_floor"), "{err}");
    }
}
