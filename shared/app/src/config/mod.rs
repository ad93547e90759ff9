//! Typed configuration, read once from the environment at start-up: one [`Config`] with a section per use (the
//! dashboard [`ApiConfig`], the [`WebhookConfig`], the outbound [`SyncConfig`]). A missing or malformed variable
//! fails fast with its name; secrets are `SecretString`s, redacted in `Debug` and never logged. Each variable is
//! read and validated in exactly one place.

mod api;
mod webhook;

use std::time::Duration;

pub use api::ApiConfig;
use secrecy::{ExposeSecret, SecretString};
pub use webhook::{DEFAULT_APPLY_DEADLINE, WebhookConfig};

use crate::AppError;

/// Settings every crmsync entry point reads; each entry point uses the sections it serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL` (required): a PostgreSQL URL. Secret because it may hold a password.
    pub database_url: SecretString,
    /// `DATABASE_POOL_SIZE` (default 8): connections per process.
    pub database_pool_size: usize,
    /// `HUBSPOT_BASE_URL` (default `https://api.hubapi.com`; the simulator's URL locally).
    pub hubspot_base_url: String,
    /// `HUBSPOT_ACCESS_TOKEN`: the private app or service key token. Without it `crmsync serve` starts the
    /// built-in HubSpot simulator.
    pub hubspot_access_token: Option<SecretString>,
    /// `HUBSPOT_API_VERSION` (default `2026-03`).
    pub hubspot_api_version: String,
    /// `HUBSPOT_REQUESTS_PER_10S` (default 100; 190 on Professional and Enterprise).
    pub hubspot_requests_per_10s: u32,
    /// `HUBSPOT_RATE_REMAINING_FLOOR`: pause when HubSpot's `X-HubSpot-RateLimit-Remaining` falls to this, leaving
    /// slack for the other processes sharing the app's budget (default: 10 % of the server's limit).
    pub hubspot_rate_remaining_floor: Option<u32>,
    /// `RETRY_QUEUE_URL`: the SQS retry queue. Unset: retries come back through the schedule only.
    pub retry_queue_url: Option<String>,
    /// `RETRY_DLQ_URL`: its dead-letter queue, for `crmsync status` and `crmsync dlq`.
    pub retry_dlq_url: Option<String>,
    /// The outbound sync's section.
    pub sync: SyncConfig,
    /// The webhook endpoint's section (also read by the sync: `HUBSPOT_APP_ID` recognises our own echoes).
    pub webhook: WebhookConfig,
    /// The dashboard API's section.
    pub api: ApiConfig,
}

/// The outbound sync's settings.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// `SYNC_MAX_ATTEMPTS` (default 8): attempts before a sync item (or a webhook event that must wait) is dead.
    pub max_attempts: i32,
    /// `SYNC_BATCH_SIZE` (default 5,000): queue rows claimed per round. Larger rounds fill more batch calls
    /// (fewer requests); a claim must finish within its lease (5,000 rows ≈ 55 requests ≈ 6 s at 100 per 10 s).
    pub batch_size: i64,
    /// `SYNC_INTERVAL_SECONDS` (default 300): how often `crmsync serve` drains the queue.
    pub interval: Duration,
    /// `SYNC_LEASE_SECONDS` (default 300): how long a claim holds its rows before another run may take them over.
    pub lease: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, AppError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AppError> {
        let webhook = WebhookConfig::from_lookup(&lookup)?;
        let api = ApiConfig::from_lookup(&lookup)?;
        let database_url = lookup("DATABASE_URL")
            .filter(|v| !v.trim().is_empty())
            .ok_or(AppError::Config {
                variable: "DATABASE_URL",
                reason: "is not set".into(),
            })?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(AppError::Config {
                variable: "DATABASE_URL",
                reason: "must be a postgres:// or postgresql:// URL".into(),
            });
        }
        let database_pool_size = match lookup("DATABASE_POOL_SIZE") {
            None => 8,
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or(AppError::Config {
                    variable: "DATABASE_POOL_SIZE",
                    reason: format!("must be a whole number from 1 to 100, got {text:?}"),
                })?,
        };
        let text = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let number = |name: &'static str, default: i64, range: std::ops::RangeInclusive<i64>| match text(name) {
            None => Ok(default),
            Some(value) => value
                .parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or(AppError::Config {
                    variable: name,
                    reason: format!(
                        "must be a whole number from {} to {}, got {value:?}",
                        range.start(),
                        range.end()
                    ),
                }),
        };
        Ok(Self {
            database_url: SecretString::from(database_url),
            database_pool_size,
            hubspot_base_url: text("HUBSPOT_BASE_URL").unwrap_or_else(|| "https://api.hubapi.com".to_owned()),
            hubspot_access_token: text("HUBSPOT_ACCESS_TOKEN").map(SecretString::from),
            hubspot_api_version: text("HUBSPOT_API_VERSION").unwrap_or_else(|| "2026-03".to_owned()),
            hubspot_requests_per_10s: number("HUBSPOT_REQUESTS_PER_10S", 100, 2..=1_000)? as u32,
            hubspot_rate_remaining_floor: match text("HUBSPOT_RATE_REMAINING_FLOOR") {
                Some(_) => Some(number("HUBSPOT_RATE_REMAINING_FLOOR", 0, 0..=999)? as u32),
                None => None,
            },
            retry_queue_url: text("RETRY_QUEUE_URL"),
            retry_dlq_url: text("RETRY_DLQ_URL"),
            sync: SyncConfig {
                max_attempts: number("SYNC_MAX_ATTEMPTS", 8, 1..=100)? as i32,
                batch_size: number("SYNC_BATCH_SIZE", 5_000, 1..=20_000)?,
                interval: Duration::from_secs(number("SYNC_INTERVAL_SECONDS", 300, 1..=86_400)? as u64),
                lease: Duration::from_secs(number("SYNC_LEASE_SECONDS", 300, 1..=86_400)? as u64),
            },
            webhook,
            api,
        })
    }
}

impl Config {
    /// The process's one connection pool: every part of a process (`crmsync serve` runs them all) shares it.
    pub fn connect_pool(&self) -> Result<crmsync_db::Pool, AppError> {
        Ok(crmsync_db::connect_pool(
            self.database_url.expose_secret(),
            self.database_pool_size,
        )?)
    }

    /// The SQS retry queue and its DLQ when `RETRY_QUEUE_URL` is set; without it retries come back through the
    /// schedule only.
    pub async fn retry_queue(&self) -> Option<crmsync_queue::SqsRetryQueue> {
        let url = self.retry_queue_url.as_ref()?;
        Some(crmsync_queue::SqsRetryQueue::new(
            crmsync_queue::SqsRetryQueue::client_from_env().await,
            url.clone(),
            self.retry_dlq_url.clone(),
        ))
    }

    /// The HubSpot client configuration; fails naming `HUBSPOT_ACCESS_TOKEN` when no token is set.
    pub fn hubspot(&self) -> Result<crmsync_hubspot::HubSpotConfig, AppError> {
        let token = self.hubspot_access_token.clone().ok_or(AppError::Config {
            variable: "HUBSPOT_ACCESS_TOKEN",
            reason: "is not set (for the simulator use its token, sim-token)".into(),
        })?;
        let mut config = crmsync_hubspot::HubSpotConfig::new(self.hubspot_base_url.clone(), token);
        config.api_version = self.hubspot_api_version.clone();
        config.rate_limit =
            crmsync_hubspot::RateLimitConfig::new(self.hubspot_requests_per_10s, Duration::from_secs(10));
        if let Some(floor) = self.hubspot_rate_remaining_floor {
            if floor >= self.hubspot_requests_per_10s {
                return Err(AppError::Config {
                    variable: "HUBSPOT_RATE_REMAINING_FLOOR",
                    reason: format!(
                        "must be below HUBSPOT_REQUESTS_PER_10S ({}), got {floor}",
                        self.hubspot_requests_per_10s
                    ),
                });
            }
            config.rate_limit.remaining_floor = Some(floor);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, AppError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn a_missing_database_url_is_named() {
        let error = config(&[]).unwrap_err();
        assert!(error.to_string().contains("DATABASE_URL is not set"), "{error}");
    }

    #[test]
    fn a_bad_pool_size_is_named_with_its_value() {
        let error = config(&[("DATABASE_URL", "postgres://x/y"), ("DATABASE_POOL_SIZE", "lots")]).unwrap_err();
        assert!(error.to_string().contains("DATABASE_POOL_SIZE"), "{error}");
        assert!(error.to_string().contains("lots"), "{error}");
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let config = config(&[
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ("API_TOKEN", "tok-123-abcdefghijkl"),
            ("API_JWT_SECRET", "jwt-secret-0123456789abcdefghijklmnop"),
            ("HUBSPOT_ACCESS_TOKEN", "pat-na1-secret"),
            ("HUBSPOT_CLIENT_SECRET", "client-secret-value"),
        ])
        .unwrap();
        let debug = format!("{config:?} {:?}", config.hubspot().unwrap());
        for secret in ["hunter2", "tok-123", "jwt-secret", "pat-na1", "client-secret"] {
            assert!(!debug.contains(secret), "{secret} in {debug}");
        }
    }

    #[test]
    fn sync_settings_have_defaults_and_name_bad_values() {
        let defaults = config(&[("DATABASE_URL", "postgres://x/y")]).unwrap();
        assert_eq!((defaults.sync.max_attempts, defaults.sync.batch_size), (8, 5_000));
        assert_eq!(defaults.sync.interval, Duration::from_secs(300));
        assert!(
            defaults
                .hubspot()
                .unwrap_err()
                .to_string()
                .contains("HUBSPOT_ACCESS_TOKEN")
        );
        let error = config(&[("DATABASE_URL", "postgres://x/y"), ("SYNC_MAX_ATTEMPTS", "0")]).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("SYNC_MAX_ATTEMPTS must be a whole number from 1 to 100"),
            "{error}"
        );
    }

    #[test]
    fn the_rate_floor_reaches_the_client_and_must_stay_below_the_limit() {
        let base = [("DATABASE_URL", "postgres://x/y"), ("HUBSPOT_ACCESS_TOKEN", "pat")];
        let default = config(&base).unwrap().hubspot().unwrap();
        assert_eq!(default.rate_limit.remaining_floor, None, "10 % of the server's limit");
        let set = config(&[base[0], base[1], ("HUBSPOT_RATE_REMAINING_FLOOR", "25")]).unwrap();
        assert_eq!(set.hubspot().unwrap().rate_limit.remaining_floor, Some(25));
        let too_high = config(&[base[0], base[1], ("HUBSPOT_RATE_REMAINING_FLOOR", "100")]).unwrap();
        let error = too_high.hubspot().unwrap_err().to_string();
        assert!(
            error.contains("HUBSPOT_RATE_REMAINING_FLOOR must be below HUBSPOT_REQUESTS_PER_10S"),
            "{error}"
        );
        let error = config(&[base[0], ("HUBSPOT_REQUESTS_PER_10S", "1")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("HUBSPOT_REQUESTS_PER_10S must be a whole number from 2"),
            "{error}"
        );
    }
}
