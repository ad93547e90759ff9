//! Client-side request pacing: a governor (GCRA) limiter for the rolling 10-s window, a separate one for search,
//! and the adjustments HubSpot's `X-HubSpot-RateLimit-*` headers ask for.
//!
//! Sizing: GCRA with burst `b` and one cell per period `p` admits at most `b + floor(T / p)` requests in any
//! closed interval of length `T`. HubSpot counts a rolling window `W`; requests admitted here reach it after a
//! network delay that varies by up to the latency allowance `J`, so a server-side window of `W` sees the
//! requests of a client-side interval of `W + J`. Choosing `b = 1` and `p = (W + J) / (L - 1)` gives
//! `b + (W + J) / p = L`: no server window ever sees more than `L` (`b = 1` also maximises the sustained rate).

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::config::RateLimitConfig;

/// Which budget a request spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Everything counted in the rolling window.
    Standard,
    /// CRM search: 5/s, exempt from the rolling window (spec `x-hubspot-rate-limit-exemptions: ["ten-secondly"]`).
    Search,
}

/// The GCRA quota that never admits more than `limit` requests in any `window + allowance`.
pub(crate) fn window_quota(limit: u32, window: Duration, allowance: Duration) -> Quota {
    let burst = 1u32;
    let span = window + allowance;
    let cells = limit.saturating_sub(burst).max(1);
    // Round the period up so that floor(span / period) ≤ limit - burst holds exactly.
    let nanos = span.as_nanos().div_ceil(u128::from(cells));
    let period = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("period is positive")
        .allow_burst(NonZeroU32::new(burst).expect("burst is 1"))
}

/// HubSpot's burst-window headers, when present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WindowHeaders {
    pub max: Option<u32>,
    pub remaining: Option<u32>,
    pub interval: Option<Duration>,
}

impl WindowHeaders {
    /// Reads `X-HubSpot-RateLimit-Max`, `-Remaining` and `-Interval-Milliseconds`.
    pub(crate) fn read(headers: &HeaderMap) -> Self {
        let num = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        WindowHeaders {
            max: num("x-hubspot-ratelimit-max").and_then(|v| u32::try_from(v).ok()),
            remaining: num("x-hubspot-ratelimit-remaining").and_then(|v| u32::try_from(v).ok()),
            interval: num("x-hubspot-ratelimit-interval-milliseconds").map(Duration::from_millis),
        }
    }
}

/// Both limiters plus the pause that header feedback and 429s impose on the standard lane.
pub(crate) struct Limiters {
    config: RateLimitConfig,
    standard: RwLock<Arc<DefaultDirectRateLimiter>>,
    /// (limit, window) the standard limiter is currently sized for.
    standard_sizing: Mutex<(u32, Duration)>,
    search: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
}

impl Limiters {
    pub(crate) fn new(config: &RateLimitConfig) -> Self {
        let standard = RateLimiter::direct(window_quota(
            config.requests_per_window,
            config.window,
            config.latency_allowance,
        ));
        let search_window = Duration::from_secs(1);
        let search = RateLimiter::direct(window_quota(
            config.search_per_second,
            search_window,
            search_window.mul_f64(config.latency_allowance.as_secs_f64() / config.window.as_secs_f64()),
        ));
        Limiters {
            config: config.clone(),
            standard: RwLock::new(Arc::new(standard)),
            standard_sizing: Mutex::new((config.requests_per_window, config.window)),
            search,
            paused_until: Mutex::new(None),
        }
    }

    /// Waits until a request on `lane` may be sent.
    pub(crate) async fn acquire(&self, lane: Lane) {
        match lane {
            Lane::Search => self.search.until_ready().await,
            Lane::Standard => {
                loop {
                    let until = *self.paused_until.lock().expect("pause lock");
                    match until {
                        Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                        _ => break,
                    }
                }
                let limiter = Arc::clone(&self.standard.read().expect("limiter lock"));
                limiter.until_ready().await;
            }
        }
    }

    /// Holds every standard-lane request back for `wait` (after a 429, or when the budget is nearly spent).
    pub(crate) fn pause_for(&self, wait: Duration) -> bool {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().expect("pause lock");
        if paused.is_none_or(|current| current < until) {
            *paused = Some(until);
            true
        } else {
            false
        }
    }

    /// The window the standard lane is sized for (header `Interval-Milliseconds` once seen, else the config's).
    pub(crate) fn window(&self) -> Duration {
        self.standard_sizing.lock().expect("sizing lock").1
    }

    /// Adjusts to HubSpot's headers: shrinks the limiter when the server's limit is tighter than configured
    /// (never loosens beyond the configuration), and pauses when `Remaining` is at or below the floor because
    /// other processes of the same app are spending the budget. Returns true when it paused.
    pub(crate) fn observe(&self, headers: &WindowHeaders) -> bool {
        let (Some(max), Some(interval)) = (headers.max, headers.interval) else {
            return false;
        };
        if max == 0 || interval.is_zero() {
            return false;
        }
        {
            let mut sizing = self.standard_sizing.lock().expect("sizing lock");
            let (limit, window) = *sizing;
            // Compare rates: max / interval tighter than limit / window?
            let tighter = u128::from(max) * window.as_nanos() < u128::from(limit) * interval.as_nanos();
            if tighter && max >= 2 {
                let allowance =
                    interval.mul_f64(self.config.latency_allowance.as_secs_f64() / self.config.window.as_secs_f64());
                let limiter = RateLimiter::direct(window_quota(max, interval, allowance));
                *self.standard.write().expect("limiter lock") = Arc::new(limiter);
                *sizing = (max, interval);
                tracing::info!(
                    max,
                    interval_ms = interval.as_millis() as u64,
                    "hubspot limiter resized from headers"
                );
            }
        }
        match headers.remaining {
            Some(remaining) if remaining <= self.config.remaining_floor => {
                // One slot of the window frees up roughly every interval / max.
                let slots = self.config.remaining_floor - remaining + 1;
                let wait = interval / max * slots;
                self.pause_for(wait)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::{Clock, FakeRelativeClock, Reference};

    /// Drives a limiter on a fake clock as fast as it admits (jumping to each next allowed instant) and returns
    /// the admission times (ns).
    fn admissions(quota: Quota, horizon: Duration) -> Vec<u128> {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone());
        let start = clock.now();
        let mut times = Vec::new();
        loop {
            let now = u128::from(clock.now().duration_since(start).as_u64());
            if now > horizon.as_nanos() {
                return times;
            }
            match limiter.check() {
                Ok(()) => times.push(now),
                Err(not_until) => clock.advance(not_until.wait_time_from(clock.now())),
            }
        }
    }

    fn max_in_any_window(times: &[u128], window: Duration) -> usize {
        let w = window.as_nanos();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            // closed interval [times[hi] - w, times[hi]]
            while times[hi] - times[lo] > w {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    #[test]
    fn no_rolling_window_plus_allowance_ever_exceeds_the_limit() {
        for (limit, window_ms, allowance_ms) in
            [(100, 10_000, 200), (190, 10_000, 200), (100, 1_000, 20), (5, 1_000, 20)]
        {
            let window = Duration::from_millis(window_ms);
            let allowance = Duration::from_millis(allowance_ms);
            let quota = window_quota(limit, window, allowance);
            let times = admissions(quota, window * 5);
            let worst = max_in_any_window(&times, window + allowance);
            assert!(worst <= limit as usize, "limit {limit}/{window_ms} ms admitted {worst}");
            // And it is not needlessly slow: the sustained rate reaches the limit minus the one burst cell.
            assert!(
                worst >= limit as usize - 1,
                "limit {limit}/{window_ms} ms only reached {worst} per window"
            );
        }
    }

    #[test]
    fn headers_with_a_tighter_limit_shrink_the_limiter_and_a_spent_budget_pauses() {
        let limiters = Limiters::new(&RateLimitConfig::new(190, Duration::from_secs(10)));
        let paused = limiters.observe(&WindowHeaders {
            max: Some(100),
            remaining: Some(50),
            interval: Some(Duration::from_secs(10)),
        });
        assert!(!paused);
        assert_eq!(
            *limiters.standard_sizing.lock().unwrap(),
            (100, Duration::from_secs(10))
        );
        // A looser server limit never loosens the configured one.
        limiters.observe(&WindowHeaders {
            max: Some(250),
            remaining: Some(200),
            interval: Some(Duration::from_secs(10)),
        });
        assert_eq!(
            *limiters.standard_sizing.lock().unwrap(),
            (100, Duration::from_secs(10))
        );
        let paused = limiters.observe(&WindowHeaders {
            max: Some(100),
            remaining: Some(0),
            interval: Some(Duration::from_secs(10)),
        });
        assert!(paused);
        assert!(limiters.paused_until.lock().unwrap().is_some());
    }

    #[test]
    fn window_headers_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert("X-HubSpot-RateLimit-Max", "100".parse().unwrap());
        headers.insert("X-HubSpot-RateLimit-Remaining", "97".parse().unwrap());
        headers.insert("X-HubSpot-RateLimit-Interval-Milliseconds", "10000".parse().unwrap());
        assert_eq!(
            WindowHeaders::read(&headers),
            WindowHeaders {
                max: Some(100),
                remaining: Some(97),
                interval: Some(Duration::from_secs(10))
            }
        );
    }
}
