//! Client-side request pacing: a governor (GCRA) limiter for the rolling 10-s window, a separate one for search,
//! the adjustments HubSpot's `X-HubSpot-RateLimit-*` headers ask for (a tighter limit, a `Remaining` at the
//! floor that other processes of the same app leave), and the daily limit: once spent, requests fail locally
//! until the reset.
//!
//! Sizing: GCRA with burst `b` and one cell per period `p` admits at most `b + floor(T / p)` requests in any
//! closed interval of length `T`. HubSpot counts a rolling window `W`; requests admitted here reach it after a
//! network delay that varies by up to the latency allowance `J`, so a server-side window of `W` sees the
//! requests of a client-side interval of `W + J`. Choosing `b = 1` and `p = (W + J) / (L - 1)` gives
//! `b + (W + J) / p = L`: no server window ever sees more than `L` (`b = 1` also maximises the sustained rate).

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
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

/// HubSpot's burst-window and daily headers, when present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WindowHeaders {
    pub max: Option<u32>,
    pub remaining: Option<u32>,
    pub interval: Option<Duration>,
    /// `X-HubSpot-RateLimit-Daily-Remaining` (not sent to OAuth apps).
    pub daily_remaining: Option<u64>,
}

impl WindowHeaders {
    /// Reads `X-HubSpot-RateLimit-Max`, `-Remaining`, `-Interval-Milliseconds` and `-Daily-Remaining`.
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
            daily_remaining: num("x-hubspot-ratelimit-daily-remaining"),
        }
    }
}

/// The first midnight after `now` at the UTC offset `offset` (the portal's time zone, as configured).
pub(crate) fn next_daily_reset(now: DateTime<Utc>, offset: FixedOffset) -> DateTime<Utc> {
    let today = now.with_timezone(&offset).date_naive();
    today
        .succ_opt()
        .and_then(|tomorrow| tomorrow.and_hms_opt(0, 0, 0))
        .and_then(|midnight| midnight.and_local_timezone(offset).single())
        .map_or(now + chrono::Duration::days(1), |reset| reset.with_timezone(&Utc))
}

/// Most send times kept for the floor computation (far above any window's limit).
const MAX_SENT_KEPT: usize = 10_000;

/// Both limiters plus the pause that header feedback and 429s impose on the standard lane, and the daily stop.
pub(crate) struct Limiters {
    config: RateLimitConfig,
    standard: RwLock<Arc<DefaultDirectRateLimiter>>,
    /// (limit, window) the standard limiter is currently sized for.
    standard_sizing: Mutex<(u32, Duration)>,
    search: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
    /// When this process sent its recent standard-lane requests, oldest first: the ones HubSpot's window may
    /// still count, which leave it one window later.
    sent: Mutex<VecDeque<Instant>>,
    /// Set by a DAILY 429 or `Daily-Remaining: 0`: no request is sent before this wall-clock time.
    daily_spent_until: Mutex<Option<DateTime<Utc>>>,
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
            sent: Mutex::new(VecDeque::new()),
            daily_spent_until: Mutex::new(None),
        }
    }

    /// Waits until a request on `lane` may be sent. Fails at once, without waiting or sending, with the reset time
    /// while the daily limit is spent (checked again after the wait, as another request may have spent it).
    ///
    /// A standard-lane request that queued in the limiter while a pause was set (a 429, or `Remaining` at the
    /// floor) waits out the pause and queues again, so a pause holds back every request, not only new ones.
    pub(crate) async fn acquire(&self, lane: Lane) -> Result<(), DateTime<Utc>> {
        self.daily_check()?;
        match lane {
            Lane::Search => self.search.until_ready().await,
            Lane::Standard => loop {
                self.wait_out_pause().await;
                let limiter = Arc::clone(&self.standard.read().expect("limiter lock"));
                limiter.until_ready().await;
                let now = Instant::now();
                if !self.paused_at(now) {
                    self.record_send(now);
                    break;
                }
            },
        }
        self.daily_check()
    }

    fn paused_at(&self, now: Instant) -> bool {
        self.paused_until
            .lock()
            .expect("pause lock")
            .is_some_and(|until| until > now)
    }

    async fn wait_out_pause(&self) {
        loop {
            let until = *self.paused_until.lock().expect("pause lock");
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }

    fn record_send(&self, now: Instant) {
        let hold = self.hold();
        let mut sent = self.sent.lock().expect("sent lock");
        while sent
            .front()
            .is_some_and(|first| now.saturating_duration_since(*first) >= hold)
            || sent.len() >= MAX_SENT_KEPT
        {
            sent.pop_front();
        }
        sent.push_back(now);
    }

    /// How long after sending a request HubSpot's window surely no longer counts it: the window plus the latency
    /// allowance (the request reached HubSpot up to that much later than it left).
    fn hold(&self) -> Duration {
        let window = self.window();
        window + window.mul_f64(self.config.latency_allowance.as_secs_f64() / self.config.window.as_secs_f64())
    }

    fn daily_check(&self) -> Result<(), DateTime<Utc>> {
        let mut spent = self.daily_spent_until.lock().expect("daily lock");
        match *spent {
            Some(until) if Utc::now() < until => Err(until),
            Some(_) => {
                *spent = None;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records that the daily limit is spent (a DAILY 429, or `Daily-Remaining: 0`): every request fails locally
    /// until the next midnight at `daily_reset_offset`. Returns the reset time.
    pub(crate) fn daily_spent(&self) -> DateTime<Utc> {
        let until = next_daily_reset(Utc::now(), self.config.daily_reset_offset);
        let mut spent = self.daily_spent_until.lock().expect("daily lock");
        if spent.is_none_or(|current| current < until) {
            *spent = Some(until);
            tracing::warn!(until = %until, "hubspot daily limit spent; requests fail locally until the reset");
        }
        until
    }

    /// The reset time while the daily limit is spent.
    pub(crate) fn daily_spent_until(&self) -> Option<DateTime<Utc>> {
        self.daily_check().err()
    }

    /// Holds every standard-lane request back for `wait` (after a 429, or when the budget is nearly spent).
    pub(crate) fn pause_for(&self, wait: Duration) -> bool {
        self.pause_until(Instant::now() + wait)
    }

    fn pause_until(&self, until: Instant) -> bool {
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

    /// Adjusts to HubSpot's headers at `now`: stops for the day on `Daily-Remaining: 0`; shrinks the limiter when
    /// the server's limit is tighter than configured (never loosens beyond the configuration); and pauses when
    /// `Remaining` is at or below the floor, because other processes of the same app are spending the budget.
    /// Returns true when it paused.
    ///
    /// The pause lasts until enough of the window has surely freed: at `Remaining = r` and floor `f`, `f - r + 1`
    /// slots. Only this process's own requests are known to leave the window at a known time (one window after
    /// they were sent), so the pause ends when its `(f - r + 1)`-th oldest counted request leaves, or one whole
    /// window from now when it has fewer. Processes that all do this only reuse slots they freed themselves, so
    /// together they stay under the limit; the floor absorbs what they send before they see it.
    pub(crate) fn observe(&self, headers: &WindowHeaders, now: Instant) -> bool {
        if headers.daily_remaining == Some(0) {
            self.daily_spent();
        }
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
        let floor = self.config.floor_for(max);
        match headers.remaining {
            Some(remaining) if remaining <= floor => {
                let slots = (floor - remaining) as usize + 1;
                let hold = self.hold();
                let until = self
                    .sent
                    .lock()
                    .expect("sent lock")
                    .iter()
                    .filter(|sent| now.saturating_duration_since(**sent) < hold)
                    .nth(slots - 1)
                    .map_or(now + hold, |sent| *sent + hold);
                self.pause_until(until)
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
        let paused = limiters.observe(
            &WindowHeaders {
                max: Some(100),
                remaining: Some(50),
                interval: Some(Duration::from_secs(10)),
                daily_remaining: None,
            },
            Instant::now(),
        );
        assert!(!paused);
        assert_eq!(
            *limiters.standard_sizing.lock().unwrap(),
            (100, Duration::from_secs(10))
        );
        // A looser server limit never loosens the configured one.
        limiters.observe(
            &WindowHeaders {
                max: Some(250),
                remaining: Some(200),
                interval: Some(Duration::from_secs(10)),
                daily_remaining: None,
            },
            Instant::now(),
        );
        assert_eq!(
            *limiters.standard_sizing.lock().unwrap(),
            (100, Duration::from_secs(10))
        );
        let paused = limiters.observe(
            &WindowHeaders {
                max: Some(100),
                remaining: Some(0),
                interval: Some(Duration::from_secs(10)),
                daily_remaining: None,
            },
            Instant::now(),
        );
        assert!(paused);
        assert!(limiters.paused_until.lock().unwrap().is_some());
    }

    fn window_of(max: u32, remaining: u32) -> WindowHeaders {
        WindowHeaders {
            max: Some(max),
            remaining: Some(remaining),
            interval: Some(Duration::from_secs(10)),
            daily_remaining: None,
        }
    }

    #[tokio::test]
    async fn at_the_floor_the_pause_lasts_until_enough_of_this_processs_requests_leave_the_window() {
        // 100 per 1 s, allowance 50 ms: a request leaves HubSpot's window at most 1.05 s after it was sent.
        let limiters = Limiters::new(&RateLimitConfig::new(100, Duration::from_secs(1)));
        for _ in 0..5 {
            limiters.acquire(Lane::Standard).await.unwrap();
        }
        let sent: Vec<Instant> = limiters.sent.lock().unwrap().iter().copied().collect();
        assert_eq!(sent.len(), 5);
        let hold = Duration::from_millis(1_050);
        let now = Instant::now();
        let window_of = |max, remaining| WindowHeaders {
            interval: Some(Duration::from_secs(1)),
            ..window_of(max, remaining)
        };
        // Remaining 11 is above the default floor of 10 % of 100: no pause.
        assert!(!limiters.observe(&window_of(100, 11), now));
        assert_eq!(*limiters.paused_until.lock().unwrap(), None);
        // At 10, one slot must free: the oldest request's.
        assert!(limiters.observe(&window_of(100, 10), now));
        assert_eq!(*limiters.paused_until.lock().unwrap(), Some(sent[0] + hold));
        // At 8, three slots: the third oldest.
        assert!(limiters.observe(&window_of(100, 8), now));
        assert_eq!(*limiters.paused_until.lock().unwrap(), Some(sent[2] + hold));
        // At 0, eleven slots, more than this process holds: a whole window from now.
        assert!(limiters.observe(&window_of(100, 0), now));
        assert_eq!(*limiters.paused_until.lock().unwrap(), Some(now + hold));
    }

    #[tokio::test]
    async fn a_request_queued_in_the_limiter_when_a_pause_begins_waits_the_pause_out() {
        // 2 per 200 ms: after one request, the next waits about 210 ms in the limiter.
        let limiters = Limiters::new(&RateLimitConfig::new(2, Duration::from_millis(200)));
        limiters.acquire(Lane::Standard).await.unwrap();
        let started = Instant::now();
        let mut queued = std::pin::pin!(limiters.acquire(Lane::Standard));
        assert!(futures::poll!(queued.as_mut()).is_pending());
        limiters.pause_for(Duration::from_millis(600));
        queued.await.unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_configured_floor_replaces_the_default_and_zero_pauses_only_at_zero() {
        let mut config = RateLimitConfig::new(190, Duration::from_secs(10));
        assert_eq!(config.floor_for(190), 19);
        assert_eq!(config.floor_for(100), 10);
        config.remaining_floor = Some(0);
        let limiters = Limiters::new(&config);
        assert!(!limiters.observe(&window_of(190, 1), Instant::now()));
        assert!(limiters.observe(&window_of(190, 0), Instant::now()));
    }

    #[tokio::test]
    async fn a_spent_daily_limit_fails_requests_locally_until_the_reset() {
        let limiters = Limiters::new(&RateLimitConfig::default());
        limiters.acquire(Lane::Standard).await.unwrap();
        limiters.observe(
            &WindowHeaders {
                daily_remaining: Some(0),
                ..window_of(100, 99)
            },
            Instant::now(),
        );
        let until = limiters.daily_spent_until().expect("spent");
        assert_eq!(until, next_daily_reset(Utc::now(), FixedOffset::east_opt(0).unwrap()));
        assert_eq!(limiters.acquire(Lane::Standard).await, Err(until));
        assert_eq!(limiters.acquire(Lane::Search).await, Err(until));
        // Once the reset has passed, requests go out again.
        *limiters.daily_spent_until.lock().unwrap() = Some(Utc::now() - chrono::Duration::seconds(1));
        assert_eq!(limiters.acquire(Lane::Standard).await, Ok(()));
        assert_eq!(limiters.daily_spent_until(), None);
    }

    #[test]
    fn the_daily_reset_is_the_next_midnight_at_the_portals_offset() {
        let at = |text: &str| DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc);
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            next_daily_reset(at("2026-03-30T23:59:59Z"), utc),
            at("2026-03-31T00:00:00Z")
        );
        assert_eq!(
            next_daily_reset(at("2026-03-31T00:00:00Z"), utc),
            at("2026-04-01T00:00:00Z")
        );
        // A portal at UTC-5: 03:00 UTC is still 22:00 the day before there; the reset is at 05:00 UTC.
        let eastern = FixedOffset::west_opt(5 * 3600).unwrap();
        assert_eq!(
            next_daily_reset(at("2026-03-31T03:00:00Z"), eastern),
            at("2026-03-31T05:00:00Z")
        );
    }

    #[test]
    fn window_headers_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert("X-HubSpot-RateLimit-Max", "100".parse().unwrap());
        headers.insert("X-HubSpot-RateLimit-Remaining", "97".parse().unwrap());
        headers.insert("X-HubSpot-RateLimit-Interval-Milliseconds", "10000".parse().unwrap());
        headers.insert("X-HubSpot-RateLimit-Daily-Remaining", "249000".parse().unwrap());
        assert_eq!(
            WindowHeaders::read(&headers),
            WindowHeaders {
                max: Some(100),
                remaining: Some(97),
                interval: Some(Duration::from_secs(10)),
                daily_remaining: Some(249_000),
            }
        );
    }
}
