//! Simulator configuration: defaults that match a Free/Starter privately distributed app, fault
//! settings, the webhook target, and reading all of it from `HUBSPOT_SIM_*` variables.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::SimError;

/// Everything the simulator needs at start. `SimConfig::default()` is a quiet, fault-free portal.
#[derive(Clone)]
pub struct SimConfig {
    /// The only bearer token accepted; anything else gets HubSpot's 401 body.
    pub access_token: String,
    pub portal_id: u64,
    /// Written as `sourceId` on webhook events caused by API writes (echo detection).
    pub app_id: u64,
    /// The user that "act as a user" admin endpoints act as (`sourceId` = `userId:<id>`).
    pub user_id: u64,
    /// Length of the rolling burst window (HubSpot: 10 s).
    pub rate_window: Duration,
    /// Requests allowed per window and token (HubSpot Free/Starter private apps: 100).
    pub requests_per_window: u32,
    /// Requests allowed per UTC day (HubSpot Free/Starter: 250,000 per account).
    pub daily_limit: u64,
    /// Search requests allowed per `search_window` (HubSpot: 5 per second).
    pub search_per_second: u32,
    /// Length of the search window; 1 s like HubSpot. Tests lengthen it to avoid timing races.
    pub search_window: Duration,
    pub faults: FaultConfig,
    pub webhook: Option<WebhookTarget>,
    pub webhook_delivery: WebhookDelivery,
    /// Drop every webhook event instead of delivering it (counted as `droppedEvents`): HubSpot losing deliveries,
    /// which reconciliation must repair. Toggled at run time by `POST /__sim/webhooks/drop`.
    pub drop_webhooks: bool,
    /// Results a search query may page through (HubSpot: 10,000; paging past it is a 400). Tests lower it to
    /// exercise the window that moves under the cap.
    pub search_result_cap: usize,
    /// Seeds fault draws and webhook shuffling, so a run is repeatable for a sequential client.
    pub seed: u64,
    /// The scopes the token introspection answers (default: every scope crmsync needs).
    pub scopes: Vec<String>,
}

/// The scopes a fresh simulator's token holds: those crmsync's private app is created with (README).
pub const DEFAULT_SCOPES: [&str; 14] = [
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.deals.read",
    "crm.objects.deals.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.deals.read",
    "crm.schemas.deals.write",
    "sales-email-read",
    "crm.objects.owners.read",
];

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            access_token: "sim-token".to_string(),
            portal_id: 62515,
            app_id: 54321,
            user_id: 74322246,
            // https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
            rate_window: Duration::from_secs(10),
            requests_per_window: 100,
            daily_limit: 250_000,
            // https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm
            search_per_second: 5,
            search_window: Duration::from_secs(1),
            faults: FaultConfig::default(),
            webhook: None,
            webhook_delivery: WebhookDelivery::default(),
            drop_webhooks: false,
            // https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm
            search_result_cap: 10_000,
            seed: 0,
            scopes: DEFAULT_SCOPES.map(str::to_owned).to_vec(),
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("access_token", &"[redacted]")
            .field("portal_id", &self.portal_id)
            .field("app_id", &self.app_id)
            .field("user_id", &self.user_id)
            .field("rate_window", &self.rate_window)
            .field("requests_per_window", &self.requests_per_window)
            .field("daily_limit", &self.daily_limit)
            .field("search_per_second", &self.search_per_second)
            .field("search_window", &self.search_window)
            .field("faults", &self.faults)
            .field("webhook", &self.webhook)
            .field("webhook_delivery", &self.webhook_delivery)
            .field("drop_webhooks", &self.drop_webhooks)
            .field("search_result_cap", &self.search_result_cap)
            .field("seed", &self.seed)
            .finish()
    }
}

/// Injected failures. Rates are probabilities in `0.0..=1.0`, drawn once per API request from the
/// seeded generator, in this order: 5xx, 423, slow, drop-after-write. `next` is a script of faults
/// applied to the next API requests, one each, before any rate is drawn.
/// Admin endpoints (`/__sim/...`) are never faulted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Rate of 500/502/503 answers (the status is drawn uniformly among the three).
    pub error_rate: f64,
    /// Rate of 423 Locked answers.
    pub lock_rate: f64,
    /// Rate of answers delayed by `slow_delay_ms` (the request is still processed in full).
    pub slow_rate: f64,
    pub slow_delay_ms: u64,
    /// Rate of writes that are applied and then answered by closing the connection with no
    /// response bytes. Only write requests (not reads or searches) are drawn for this.
    pub drop_after_write_rate: f64,
    /// Scripted faults for the next requests, in order.
    pub next: Vec<FaultKind>,
    /// `Retry-After` (seconds) sent with a scripted 477 Migration in Progress. HubSpot sends up to about a day;
    /// tests keep it short. 0 by default.
    pub migration_retry_after_secs: u64,
    /// The next this many association batch-create answers leave out their first input: the association is made,
    /// and the answer has neither a result nor an error for it (HubSpot has answered so; the outcome is unknown).
    pub association_results_dropped: u32,
}

/// One injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FaultKind {
    #[serde(rename = "500")]
    InternalError,
    #[serde(rename = "502")]
    BadGateway,
    #[serde(rename = "503")]
    Unavailable,
    #[serde(rename = "423")]
    Locked,
    /// 477 Migration in Progress, with `Retry-After: migration_retry_after_secs` (scripted only).
    #[serde(rename = "477")]
    MigrationInProgress,
    /// 504 Gateway Timeout (scripted only).
    #[serde(rename = "504")]
    GatewayTimeout,
    /// 524, Cloudflare's "a timeout occurred" (no answer within 100 s), with its HTML body (scripted only).
    #[serde(rename = "524")]
    OriginTimeout,
    /// 429 `TEN_SECONDLY_ROLLING` without rate headers, as from another app sharing the portal's budget (scripted
    /// only; the simulator's own limits answer 429 with their headers).
    #[serde(rename = "429")]
    TooManyRequests,
    /// 403 MISSING_SCOPES: the token lacks a scope (scripted only).
    #[serde(rename = "403")]
    Forbidden,
    /// Answer after `slow_delay_ms`.
    #[serde(rename = "slow")]
    Slow,
    /// Apply the request, then close the connection without answering.
    #[serde(rename = "drop_after_write")]
    DropAfterWrite,
}

/// Where and how webhook batches are sent.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTarget {
    /// The exact URL POSTed to; it is also the URI in the v3 signature.
    pub url: String,
    pub client_secret: String,
    /// Also send the legacy v1 headers (`X-HubSpot-Signature`, `X-HubSpot-Signature-Version: v1`).
    #[serde(default)]
    pub send_v1: bool,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("client_secret", &"[redacted]")
            .field("send_v1", &self.send_v1)
            .finish()
    }
}

/// Delivery policy. Defaults follow HubSpot's webhooks guide
/// (<https://developers.hubspot.com/docs/api/webhooks>): batches of at most 100, 10 retries,
/// a 5 s timeout, at most 10 concurrent requests. HubSpot spreads retries over 24 hours; the
/// simulator backs off exponentially from `initial_retry_delay` so tests finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub max_batch_size: usize,
    /// Attempts per batch including the first; a batch is abandoned after the last one fails.
    pub max_attempts: u32,
    pub initial_retry_delay: Duration,
    pub max_retry_delay: Duration,
    pub request_timeout: Duration,
    pub max_concurrent: usize,
    /// Shuffle queued events before cutting batches, so order is not preserved within or
    /// between batches (HubSpot does not guarantee order).
    pub shuffle: bool,
}

impl Default for WebhookDelivery {
    fn default() -> Self {
        Self {
            max_batch_size: 100,
            max_attempts: 10,
            initial_retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
            max_concurrent: 10,
            shuffle: false,
        }
    }
}

impl SimConfig {
    /// Reads the configuration from the process environment; see [`SimConfig::from_lookup`].
    pub fn from_env() -> Result<Self, SimError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds a configuration from named settings, starting from the defaults. `lookup` returns
    /// the value of a variable, or `None` when it is unset (a CLI can map its flags onto these
    /// names). Recognised names:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `HUBSPOT_SIM_TOKEN` | accepted bearer token | `sim-token` |
    /// | `HUBSPOT_SIM_PORTAL_ID` | portal id | 62515 |
    /// | `HUBSPOT_SIM_APP_ID`, else `HUBSPOT_APP_ID` | app id (webhook `sourceId`) | 54321 |
    /// | `HUBSPOT_SIM_USER_ID` | user for admin acts | 74322246 |
    /// | `HUBSPOT_SIM_RATE_WINDOW_MS` | burst window | 10000 |
    /// | `HUBSPOT_SIM_RATE_MAX` | requests per window | 100 |
    /// | `HUBSPOT_SIM_DAILY_LIMIT` | requests per day | 250000 |
    /// | `HUBSPOT_SIM_SEARCH_PER_SECOND` | searches per second | 5 |
    /// | `HUBSPOT_SIM_SEED` | fault and shuffle seed | 0 |
    /// | `HUBSPOT_SIM_SCOPES` | comma-separated scopes the token introspection answers | crmsync's |
    /// | `HUBSPOT_SIM_FAULT_ERROR_RATE`, `_LOCK_RATE`, `_SLOW_RATE`, `_DROP_RATE` | fault rates | 0 |
    /// | `HUBSPOT_SIM_FAULT_SLOW_DELAY_MS` | delay of slow answers | 0 |
    /// | `HUBSPOT_SIM_WEBHOOK_URL` | webhook target (unset: no webhooks) | none |
    /// | `HUBSPOT_SIM_WEBHOOK_SECRET`, else `HUBSPOT_CLIENT_SECRET` | signing secret (required with a URL) | none |
    /// | `HUBSPOT_SIM_WEBHOOK_V1` | also send v1 signatures (`true`/`false`) | false |
    /// | `HUBSPOT_SIM_WEBHOOK_SHUFFLE` | shuffle event order | false |
    /// | `HUBSPOT_SIM_WEBHOOK_RETRY_MS` | first retry delay | 1000 |
    /// | `HUBSPOT_SIM_DROP_WEBHOOKS` | drop every webhook event (`true`/`false`) | false |
    /// | `HUBSPOT_SIM_SEARCH_RESULT_CAP` | results one search query may page through | 10000 |
    ///
    /// Errors name the variable and why its value was rejected.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SimError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut config = Self::default();
        if let Some(token) = get("HUBSPOT_SIM_TOKEN") {
            config.access_token = token;
        }
        if let Some(v) = parsed::<u64>(&get, "HUBSPOT_SIM_PORTAL_ID")? {
            config.portal_id = v;
        }
        match parsed::<u64>(&get, "HUBSPOT_SIM_APP_ID")? {
            Some(v) => config.app_id = v,
            None => {
                if let Some(v) = parsed::<u64>(&get, "HUBSPOT_APP_ID")? {
                    config.app_id = v;
                }
            }
        }
        if let Some(scopes) = get("HUBSPOT_SIM_SCOPES") {
            config.scopes = scopes
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = parsed::<u64>(&get, "HUBSPOT_SIM_USER_ID")? {
            config.user_id = v;
        }
        if let Some(v) = parsed::<u64>(&get, "HUBSPOT_SIM_RATE_WINDOW_MS")? {
            config.rate_window = Duration::from_millis(v);
        }
        if let Some(v) = parsed::<u32>(&get, "HUBSPOT_SIM_RATE_MAX")? {
            config.requests_per_window = v;
        }
        if let Some(v) = parsed::<u64>(&get, "HUBSPOT_SIM_DAILY_LIMIT")? {
            config.daily_limit = v;
        }
        if let Some(v) = parsed::<u32>(&get, "HUBSPOT_SIM_SEARCH_PER_SECOND")? {
            config.search_per_second = v;
        }
        if let Some(v) = parsed::<u64>(&get, "HUBSPOT_SIM_SEED")? {
            config.seed = v;
        }
        for (name, slot) in [
            ("HUBSPOT_SIM_FAULT_ERROR_RATE", &mut config.faults.error_rate),
            ("HUBSPOT_SIM_FAULT_LOCK_RATE", &mut config.faults.lock_rate),
            ("HUBSPOT_SIM_FAULT_SLOW_RATE", &mut config.faults.slow_rate),
            ("HUBSPOT_SIM_FAULT_DROP_RATE", &mut config.faults.drop_after_write_rate),
        ] {
            if let Some(v) = parsed::<f64>(&get, name)? {
                if !(0.0..=1.0).contains(&v) {
                    return Err(SimError::Config {
                        name: name.to_string(),
                        reason: "must be between 0 and 1".into(),
                    });
                }
                *slot = v;
            }
        }
        if let Some(v) = parsed::<u64>(&get, "HUBSPOT_SIM_FAULT_SLOW_DELAY_MS")? {
            config.faults.slow_delay_ms = v;
        }
        if let Some(url) = get("HUBSPOT_SIM_WEBHOOK_URL") {
            let client_secret = get("HUBSPOT_SIM_WEBHOOK_SECRET")
                .or_else(|| get("HUBSPOT_CLIENT_SECRET"))
                .ok_or_else(|| SimError::Config {
                    name: "HUBSPOT_SIM_WEBHOOK_SECRET".into(),
                    reason: "a webhook URL is set, so a client secret (or HUBSPOT_CLIENT_SECRET) is required".into(),
                })?;
            let send_v1 = parsed::<bool>(&get, "HUBSPOT_SIM_WEBHOOK_V1")?.unwrap_or(false);
            config.webhook = Some(WebhookTarget {
                url,
                client_secret,
                send_v1,
            });
        }
        if let Some(v) = parsed::<bool>(&get, "HUBSPOT_SIM_WEBHOOK_SHUFFLE")? {
            config.webhook_delivery.shuffle = v;
        }
        if let Some(v) = parsed::<u64>(&get, "HUBSPOT_SIM_WEBHOOK_RETRY_MS")? {
            config.webhook_delivery.initial_retry_delay = Duration::from_millis(v);
        }
        if let Some(v) = parsed::<bool>(&get, "HUBSPOT_SIM_DROP_WEBHOOKS")? {
            config.drop_webhooks = v;
        }
        if let Some(v) = parsed::<usize>(&get, "HUBSPOT_SIM_SEARCH_RESULT_CAP")? {
            if v == 0 {
                return Err(SimError::Config {
                    name: "HUBSPOT_SIM_SEARCH_RESULT_CAP".into(),
                    reason: "must be at least 1".into(),
                });
            }
            config.search_result_cap = v;
        }
        Ok(config)
    }
}

fn parsed<T: std::str::FromStr>(get: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<T>, SimError>
where
    T::Err: std::fmt::Display,
{
    get(name)
        .map(|raw| {
            raw.parse::<T>().map_err(|e| SimError::Config {
                name: name.to_string(),
                reason: format!("{raw:?} is not valid: {e}"),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn an_empty_environment_gives_hubspot_like_defaults() {
        let config = SimConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config.access_token, "sim-token");
        assert_eq!(config.rate_window, Duration::from_secs(10));
        assert_eq!(config.requests_per_window, 100);
        assert_eq!(config.search_per_second, 5);
        assert!(config.webhook.is_none());
    }

    #[test]
    fn variables_override_defaults_and_the_webhook_secret_falls_back_to_the_client_secret() {
        let config = SimConfig::from_lookup(lookup(&[
            ("HUBSPOT_SIM_RATE_MAX", "190"),
            ("HUBSPOT_APP_ID", "777"),
            ("HUBSPOT_SIM_FAULT_DROP_RATE", "0.25"),
            ("HUBSPOT_SIM_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("HUBSPOT_CLIENT_SECRET", "s3cret"),
            ("HUBSPOT_SIM_WEBHOOK_V1", "true"),
            ("HUBSPOT_SIM_DROP_WEBHOOKS", "true"),
            ("HUBSPOT_SIM_SEARCH_RESULT_CAP", "50"),
        ]))
        .unwrap();
        assert!(config.drop_webhooks);
        assert_eq!(config.search_result_cap, 50);
        assert_eq!(config.requests_per_window, 190);
        assert_eq!(config.app_id, 777);
        assert_eq!(config.faults.drop_after_write_rate, 0.25);
        let target = config.webhook.unwrap();
        assert_eq!(target.client_secret, "s3cret");
        assert!(target.send_v1);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let err = SimConfig::from_lookup(lookup(&[("HUBSPOT_SIM_RATE_MAX", "lots")])).unwrap_err();
        assert!(err.to_string().contains("HUBSPOT_SIM_RATE_MAX"), "{err}");
        let err = SimConfig::from_lookup(lookup(&[("HUBSPOT_SIM_FAULT_ERROR_RATE", "2")])).unwrap_err();
        assert!(err.to_string().contains("between 0 and 1"), "{err}");
        let err = SimConfig::from_lookup(lookup(&[("HUBSPOT_SIM_SEARCH_RESULT_CAP", "0")])).unwrap_err();
        assert!(err.to_string().contains("HUBSPOT_SIM_SEARCH_RESULT_CAP"), "{err}");
        let err = SimConfig::from_lookup(lookup(&[("HUBSPOT_SIM_WEBHOOK_URL", "http://x/")])).unwrap_err();
        assert!(err.to_string().contains("HUBSPOT_SIM_WEBHOOK_SECRET"), "{err}");
    }

    #[test]
    fn debug_output_redacts_the_token_and_secret() {
        let config = SimConfig {
            access_token: "tok-123".into(),
            webhook: Some(WebhookTarget {
                url: "http://x/".into(),
                client_secret: "sec-456".into(),
                send_v1: false,
            }),
            ..SimConfig::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("tok-123") && !text.contains("sec-456"), "{text}");
    }
}
