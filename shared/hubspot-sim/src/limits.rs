//! HubSpot's request limits as the simulator enforces them: a rolling burst window per token, a
//! daily allowance, and the search API's own per-second limit, with the 429 bodies and
//! `X-HubSpot-RateLimit-*` headers HubSpot sends.
//!
//! Source: <https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>.
//! A rolling window is counted exactly (timestamps of admitted requests), not with a token bucket
//! such as governor's GCRA: the point is to reproduce HubSpot's `TEN_SECONDLY_ROLLING` policy and
//! its exact `-Remaining` header, which a bucket that refills continuously would not.
//!
//! Rejected requests (429) consume no budget: HubSpot does not document whether they count, and
//! counting them would let a client that retries too eagerly lock itself out forever, which
//! would hide rather than show a limiter bug. Search requests count against the daily allowance
//! but not the burst window (the spec marks search exempt from "ten-secondly"). Association batch
//! endpoints do count against the burst window: HubSpot gives them a separate 100–150 per 10 s
//! limit, and one shared window is the stricter of the two models, so a client that stays under
//! it here stays under both there.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use chrono::{NaiveDate, Utc};
use serde_json::json;
use tokio::time::Instant;

use crate::config::SimConfig;
use crate::error::SimErrorResponse;

/// Counts admitted requests over the last `window`.
#[derive(Debug, Clone)]
pub struct RollingWindow {
    window: Duration,
    max: u32,
    admitted: VecDeque<Instant>,
}

impl RollingWindow {
    pub fn new(window: Duration, max: u32) -> Self {
        Self {
            window,
            max,
            admitted: VecDeque::new(),
        }
    }

    /// Admits a request at `now` and returns how many remain in the window, or `None` when the
    /// window is full (the request is not counted).
    pub fn try_admit(&mut self, now: Instant) -> Option<u32> {
        while self
            .admitted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            self.admitted.pop_front();
        }
        if self.admitted.len() as u32 >= self.max {
            return None;
        }
        self.admitted.push_back(now);
        Some(self.max - self.admitted.len() as u32)
    }
}

/// Requests per UTC day. HubSpot resets at midnight in the account's time zone; the simulator's
/// account lives in UTC.
#[derive(Debug, Clone)]
pub struct DailyAllowance {
    limit: u64,
    used: u64,
    day: NaiveDate,
}

impl DailyAllowance {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: 0,
            day: Utc::now().date_naive(),
        }
    }

    /// Counts a request on `today`; `None` when the allowance is spent.
    pub fn try_admit(&mut self, today: NaiveDate) -> Option<u64> {
        if today != self.day {
            self.day = today;
            self.used = 0;
        }
        if self.used >= self.limit {
            return None;
        }
        self.used += 1;
        Some(self.limit - self.used)
    }
}

/// What the gate decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admitted; these headers go on the response (none for search).
    Admitted(Vec<(&'static str, String)>),
    Rejected(RateLimited),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimited {
    TenSecondly(Vec<(&'static str, String)>),
    Daily(Vec<(&'static str, String)>),
    Secondly,
}

impl RateLimited {
    /// HubSpot's 429 body (HUBSPOT-FACTS §5) and, except for search, the rate headers.
    pub fn to_response_parts(&self) -> (SimErrorResponse, Vec<(&'static str, String)>) {
        let (message, policy, headers) = match self {
            Self::TenSecondly(h) => (
                "You have reached your ten_secondly_rolling limit.",
                "TEN_SECONDLY_ROLLING",
                h.clone(),
            ),
            Self::Daily(h) => ("You have reached your daily limit.", "DAILY", h.clone()),
            // The official Node client recognises this message as the search limit.
            Self::Secondly => ("You have reached your secondly limit.", "SECONDLY", Vec::new()),
        };
        let correlation = uuid::Uuid::new_v4().to_string();
        let body = json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": correlation,
            "policyName": policy,
            "requestId": uuid::Uuid::new_v4().to_string(),
        });
        (
            SimErrorResponse {
                status: StatusCode::TOO_MANY_REQUESTS,
                body,
            },
            headers,
        )
    }
}

/// All limit counters of one simulator.
#[derive(Debug)]
pub struct Limits {
    window: Duration,
    per_window: u32,
    daily_limit: u64,
    search_window: Duration,
    search_max: u32,
    burst: HashMap<String, RollingWindow>,
    search: HashMap<String, RollingWindow>,
    daily: DailyAllowance,
}

impl Limits {
    pub fn new(config: &SimConfig) -> Self {
        Self {
            window: config.rate_window,
            per_window: config.requests_per_window,
            daily_limit: config.daily_limit,
            search_window: config.search_window,
            search_max: config.search_per_second,
            burst: HashMap::new(),
            search: HashMap::new(),
            daily: DailyAllowance::new(config.daily_limit),
        }
    }

    /// Changes the limits at run time (admin); counters start over.
    pub fn reconfigure(&mut self, window: Duration, per_window: u32, daily_limit: u64, search_per_second: u32) {
        self.window = window;
        self.per_window = per_window;
        self.daily_limit = daily_limit;
        self.search_max = search_per_second;
        self.burst.clear();
        self.search.clear();
        self.daily = DailyAllowance::new(daily_limit);
    }

    pub fn settings(&self) -> serde_json::Value {
        json!({
            "windowMs": self.window.as_millis() as u64,
            "requestsPerWindow": self.per_window,
            "dailyLimit": self.daily_limit,
            "searchPerSecond": self.search_max,
        })
    }

    /// Decides whether `token` may make one more request now.
    pub fn admit(&mut self, token: &str, is_search: bool, now: Instant) -> Admission {
        let today = Utc::now().date_naive();
        if is_search {
            let search = self
                .search
                .entry(token.to_string())
                .or_insert_with(|| RollingWindow::new(self.search_window, self.search_max));
            if search.try_admit(now).is_none() {
                return Admission::Rejected(RateLimited::Secondly);
            }
            if self.daily.try_admit(today).is_none() {
                return Admission::Rejected(RateLimited::Daily(Vec::new()));
            }
            return Admission::Admitted(Vec::new());
        }
        let (window, per_window) = (self.window, self.per_window);
        let burst = self
            .burst
            .entry(token.to_string())
            .or_insert_with(|| RollingWindow::new(window, per_window));
        // Check the daily allowance first without spending burst budget on a request that fails.
        if self.daily.used >= self.daily.limit && self.daily.day == today {
            let headers = rate_headers(window, per_window, 0, self.daily_limit, 0);
            return Admission::Rejected(RateLimited::Daily(headers));
        }
        let Some(remaining) = burst.try_admit(now) else {
            let daily_remaining = self.daily.limit.saturating_sub(self.daily.used);
            let headers = rate_headers(window, per_window, 0, self.daily_limit, daily_remaining);
            return Admission::Rejected(RateLimited::TenSecondly(headers));
        };
        let daily_remaining = self.daily.try_admit(today).unwrap_or(0);
        Admission::Admitted(rate_headers(
            window,
            per_window,
            remaining,
            self.daily_limit,
            daily_remaining,
        ))
    }
}

fn rate_headers(
    window: Duration,
    max: u32,
    remaining: u32,
    daily: u64,
    daily_remaining: u64,
) -> Vec<(&'static str, String)> {
    vec![
        (
            "x-hubspot-ratelimit-interval-milliseconds",
            window.as_millis().to_string(),
        ),
        ("x-hubspot-ratelimit-max", max.to_string()),
        ("x-hubspot-ratelimit-remaining", remaining.to_string()),
        ("x-hubspot-ratelimit-daily", daily.to_string()),
        ("x-hubspot-ratelimit-daily-remaining", daily_remaining.to_string()),
    ]
}

/// Copies rate headers onto a response.
pub fn apply_headers(headers: &mut HeaderMap, values: &[(&'static str, String)]) {
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rolling_window_admits_max_then_frees_slots_as_they_age_out() {
        let start = Instant::now();
        let mut window = RollingWindow::new(Duration::from_secs(10), 3);
        assert_eq!(window.try_admit(start), Some(2));
        assert_eq!(window.try_admit(start + Duration::from_secs(1)), Some(1));
        assert_eq!(window.try_admit(start + Duration::from_secs(2)), Some(0));
        assert_eq!(window.try_admit(start + Duration::from_secs(9)), None);
        // The first request leaves the window at exactly 10 s; the second at 11 s.
        assert_eq!(window.try_admit(start + Duration::from_secs(10)), Some(0));
        assert_eq!(window.try_admit(start + Duration::from_millis(10_999)), None);
        assert_eq!(window.try_admit(start + Duration::from_secs(11)), Some(0));
    }

    #[test]
    fn rejected_requests_do_not_consume_the_window() {
        let start = Instant::now();
        let mut window = RollingWindow::new(Duration::from_secs(10), 2);
        window.try_admit(start);
        window.try_admit(start);
        for second in 1..10 {
            assert_eq!(window.try_admit(start + Duration::from_secs(second)), None);
        }
        // Had the nine rejections counted, the window would still be full at 10 s.
        assert_eq!(window.try_admit(start + Duration::from_secs(10)), Some(1));
    }

    #[test]
    fn the_daily_allowance_resets_on_a_new_day() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 30).unwrap();
        let mut daily = DailyAllowance { limit: 2, used: 0, day };
        assert_eq!(daily.try_admit(day), Some(1));
        assert_eq!(daily.try_admit(day), Some(0));
        assert_eq!(daily.try_admit(day), None);
        assert_eq!(daily.try_admit(day.succ_opt().unwrap()), Some(1));
    }

    #[test]
    fn search_has_its_own_budget_and_no_headers() {
        let config = SimConfig {
            requests_per_window: 1,
            search_per_second: 2,
            search_window: Duration::from_secs(60),
            ..SimConfig::default()
        };
        let mut limits = Limits::new(&config);
        let now = Instant::now();
        assert!(matches!(limits.admit("t", false, now), Admission::Admitted(h) if h.len() == 5));
        assert_eq!(limits.admit("t", true, now), Admission::Admitted(Vec::new()));
        assert_eq!(limits.admit("t", true, now), Admission::Admitted(Vec::new()));
        assert_eq!(limits.admit("t", true, now), Admission::Rejected(RateLimited::Secondly));
        assert!(matches!(
            limits.admit("t", false, now),
            Admission::Rejected(RateLimited::TenSecondly(_))
        ));
    }
}
