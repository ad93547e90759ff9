//! One HTTP exchange with HubSpot: bearer auth, JSON body, timeout, pacing, error decoding, retries with
//! backoff and jitter, and the request counters behind [`crate::HubSpotClient::stats`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use rand::Rng as _;
use reqwest::header::{ACCEPT, HeaderMap, RETRY_AFTER};
use reqwest::{Method, Url};
use secrecy::ExposeSecret as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::config::HubSpotConfig;
use crate::error::{ErrorBody, ErrorClass, HubSpotError, HubSpotErrorResponse};
use crate::limiter::{Lane, Limiters, WindowHeaders};

/// Counters of what the client sent and received, for benchmarks, tests and run logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ClientStats {
    /// HTTP attempts sent (every retry counts), all lanes.
    pub requests_sent: u64,
    /// Of `requests_sent`, the search requests.
    pub search_requests: u64,
    /// 429 answers received (any policy).
    pub responses_429: u64,
    /// 5xx answers received.
    pub responses_5xx: u64,
    /// Retries performed inside the client.
    pub retries: u64,
    /// Attempts that hit the request timeout.
    pub timeouts: u64,
    /// Attempts that failed on the connection (refused, reset, closed).
    pub transport_errors: u64,
    /// Times the standard lane was paused (429 or `Remaining` at the floor).
    pub limiter_pauses: u64,
}

#[derive(Default)]
struct Counters {
    requests_sent: AtomicU64,
    search_requests: AtomicU64,
    responses_429: AtomicU64,
    responses_5xx: AtomicU64,
    retries: AtomicU64,
    timeouts: AtomicU64,
    transport_errors: AtomicU64,
    limiter_pauses: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Which API family a path belongs to (each has its own version segment).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Area {
    Objects,
    Associations,
    Properties,
    Pipelines,
    Owners,
}

/// One request to send: method, path segments (percent-encoded when the URL is built), query, JSON body.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub method: Method,
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub lane: Lane,
    /// False for creates: such calls are retried only when the request surely was not applied.
    pub idempotent: bool,
}

impl Call {
    pub(crate) fn new(method: Method, segments: Vec<String>) -> Self {
        Call {
            method,
            segments,
            query: Vec::new(),
            body: None,
            lane: Lane::Standard,
            idempotent: true,
        }
    }

    pub(crate) fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn query(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    pub(crate) fn lane(mut self, lane: Lane) -> Self {
        self.lane = lane;
        self
    }

    pub(crate) fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }

    /// The path as logged and reported in errors (no query string).
    pub(crate) fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// The answer of a list endpoint: `{"results": [...]}`.
#[derive(Deserialize)]
pub(crate) struct Collection<T> {
    #[serde(default = "Vec::new")]
    pub results: Vec<T>,
}

/// The HTTP side of the client; shared behind an `Arc` by [`crate::HubSpotClient`].
pub(crate) struct Transport {
    http: reqwest::Client,
    base: Url,
    pub(crate) config: HubSpotConfig,
    limiters: Limiters,
    counters: Counters,
}

impl Transport {
    pub(crate) fn new(config: HubSpotConfig) -> Result<Self, HubSpotError> {
        config.validate()?;
        let base = Url::parse(&config.base_url).map_err(|e| HubSpotError::Config {
            field: "base_url".into(),
            reason: e.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .user_agent(concat!("crmsync-hubspot/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| HubSpotError::Config {
                field: "http client".into(),
                reason: e.to_string(),
            })?;
        Ok(Transport {
            http,
            base,
            limiters: Limiters::new(&config.rate_limit),
            config,
            counters: Counters::default(),
        })
    }

    /// When the daily limit resets, while it is spent (requests fail locally until then).
    pub(crate) fn daily_limit_spent_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.limiters.daily_spent_until()
    }

    pub(crate) fn stats(&self) -> ClientStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClientStats {
            requests_sent: get(&c.requests_sent),
            search_requests: get(&c.search_requests),
            responses_429: get(&c.responses_429),
            responses_5xx: get(&c.responses_5xx),
            retries: get(&c.retries),
            timeouts: get(&c.timeouts),
            transport_errors: get(&c.transport_errors),
            limiter_pauses: get(&c.limiter_pauses),
        }
    }

    /// Path segments of `area` followed by `parts` (`crm/objects/2026-03/deals/batch/read`).
    pub(crate) fn segments(&self, area: Area, parts: &[&str]) -> Vec<String> {
        let mut segments = self.area(area);
        segments.extend(parts.iter().map(|s| (*s).to_owned()));
        segments
    }

    /// Path segments of an API family: date-versioned (`crm/objects/2026-03`) or legacy (`crm/v3/objects`,
    /// `crm/v4/associations`) when the configured version is `v3`.
    pub(crate) fn area(&self, area: Area) -> Vec<String> {
        let version = self.config.api_version.as_str();
        let (name, legacy) = match area {
            Area::Objects => ("objects", "v3"),
            Area::Associations => ("associations", "v4"),
            Area::Properties => ("properties", "v3"),
            Area::Pipelines => ("pipelines", "v3"),
            Area::Owners => ("owners", "v3"),
        };
        if version.starts_with('v') {
            vec!["crm".into(), legacy.into(), name.into()]
        } else {
            vec!["crm".into(), name.into(), version.into()]
        }
    }

    /// Sends `call`, retrying retryable failures with exponential backoff and jitter (at least HubSpot's suggested
    /// wait), up to `max_retries`. DAILY and permanent errors are never retried; non-idempotent calls are retried
    /// only when the request surely was not applied. Returns the success status and the decoded body.
    pub(crate) async fn send<T: DeserializeOwned>(&self, call: &Call) -> Result<(u16, T), HubSpotError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.config.retry_min_delay)
            .with_max_delay(self.config.retry_max_delay)
            .with_max_times(self.config.max_retries as usize)
            .with_jitter();
        let max_wait = self.config.max_retry_wait;
        (|| self.attempt::<T>(call))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e: &HubSpotError| e.class().is_retryable() && (call.idempotent || e.request_not_applied()))
            .adjust(|e: &HubSpotError, delay| {
                let delay = delay?;
                match e.class() {
                    ErrorClass::Retryable {
                        suggested_wait: Some(wait),
                    } => {
                        // Waits longer than the cap are the caller's to schedule (e.g. a 477 of hours).
                        (wait <= max_wait).then(|| delay.max(wait + jitter(wait / 10)))
                    }
                    _ => Some(delay),
                }
            })
            .notify(|e: &HubSpotError, wait: Duration| {
                bump(&self.counters.retries);
                tracing::warn!(error = %e, wait_ms = wait.as_millis() as u64, "retrying HubSpot call");
            })
            .await
    }

    /// One try of `call`: waits for its lane, sends it, feeds the rate-limit headers to the limiter, and decodes
    /// the answer into the body or a typed error.
    async fn attempt<T: DeserializeOwned>(&self, call: &Call) -> Result<(u16, T), HubSpotError> {
        let path = call.path();
        let method = call.method.as_str();
        if let Err(until) = self.limiters.acquire(call.lane).await {
            return Err(HubSpotError::DailyLimitSpent {
                method: method.to_owned(),
                path,
                until,
            });
        }
        let request = self.request(call)?;
        bump(&self.counters.requests_sent);
        if call.lane == Lane::Search {
            bump(&self.counters.search_requests);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.connection_error(method, &path, e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.connection_error(method, &path, e))?;
        if call.lane == Lane::Standard && self.limiters.observe(&WindowHeaders::read(&headers), Instant::now()) {
            bump(&self.counters.limiter_pauses);
        }
        if (200..300).contains(&status) {
            return decode_success(method, &path, status, &bytes);
        }
        Err(self.error_answer(call, &path, status, &headers, &bytes))
    }

    /// The HTTP request of `call`: URL with its percent-encoded segments and query, bearer token, JSON body.
    fn request(&self, call: &Call) -> Result<reqwest::RequestBuilder, HubSpotError> {
        let mut url = self.base.clone();
        {
            let mut segments = url.path_segments_mut().map_err(|()| HubSpotError::Config {
                field: "base_url".into(),
                reason: "cannot carry a path".into(),
            })?;
            segments.pop_if_empty().extend(&call.segments);
        }
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        let mut request = self
            .http
            .request(call.method.clone(), url)
            .bearer_auth(self.config.access_token.expose_secret())
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        Ok(request)
    }

    /// The typed error of a non-2xx answer, with HubSpot's suggested wait; counts 429s and 5xx answers, marks the
    /// daily limit spent and pauses the standard lane on a rolling-window 429.
    fn error_answer(&self, call: &Call, path: &str, status: u16, headers: &HeaderMap, bytes: &[u8]) -> HubSpotError {
        let mut api = ErrorBody::parse(bytes).into_error_response(call.method.as_str(), path, status);
        api.suggested_wait = self.suggested_wait(status, headers, &api);
        if status == 429 {
            bump(&self.counters.responses_429);
            if api.class() == ErrorClass::Daily {
                self.limiters.daily_spent();
            }
            if let (
                Lane::Standard,
                ErrorClass::Retryable {
                    suggested_wait: Some(wait),
                },
            ) = (call.lane, api.class())
                && self.limiters.pause_for(wait)
            {
                bump(&self.counters.limiter_pauses);
            }
        }
        if status >= 500 {
            bump(&self.counters.responses_5xx);
        }
        tracing::debug!(status, path = %path, category = ?api.category, "HubSpot error answer");
        HubSpotError::Api(Box::new(api))
    }

    /// HubSpot's hint of how long to wait: `Retry-After` (seconds) if sent, else for a rolling-window 429 the
    /// window length (`X-HubSpot-RateLimit-Interval-Milliseconds`, else the configured window).
    fn suggested_wait(&self, status: u16, headers: &HeaderMap, api: &HubSpotErrorResponse) -> Option<Duration> {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        if retry_after.is_some() {
            return retry_after;
        }
        let policy = api.policy_name.as_deref().unwrap_or("");
        if status == 429 && policy != "DAILY" && !api.message.contains("secondly limit") {
            return Some(
                WindowHeaders::read(headers)
                    .interval
                    .unwrap_or_else(|| self.limiters.window()),
            );
        }
        None
    }

    fn connection_error(&self, method: &str, path: &str, error: reqwest::Error) -> HubSpotError {
        if error.is_timeout() {
            bump(&self.counters.timeouts);
            HubSpotError::Timeout {
                method: method.to_owned(),
                path: path.to_owned(),
                timeout: self.config.request_timeout,
                source: error.into(),
            }
        } else {
            bump(&self.counters.transport_errors);
            HubSpotError::Transport {
                method: method.to_owned(),
                path: path.to_owned(),
                not_sent: error.is_connect(),
                source: error.into(),
            }
        }
    }
}

/// Decodes a 2xx answer's body (an empty body reads as JSON `null`).
fn decode_success<T: DeserializeOwned>(
    method: &str,
    path: &str,
    status: u16,
    bytes: &[u8],
) -> Result<(u16, T), HubSpotError> {
    let decode = |source: serde_json::Error| HubSpotError::Decode {
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        source: source.into(),
    };
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(bytes).map_err(decode)?
    };
    let body = T::deserialize(value).map_err(decode)?;
    Ok((status, body))
}

/// A random duration in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}
