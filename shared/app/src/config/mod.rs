//! Typed configuration, read once from the environment at start-up: one [`Config`] with a section per use (the
//! dashboard [`ApiConfig`], the [`WebhookConfig`], the outbound [`SyncConfig`]). A missing or malformed variable
//! fails fast with its name; secrets are `SecretString`s, redacted in `Debug` and never logged. Each variable is
//! read and validated in exactly one place.

mod api;
mod retention;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

pub use api::{ApiConfig, DEFAULT_JWT_AUDIENCE, JwtRules, RequiredClaim};
pub use retention::{MIN_INBOX_DAYS, RetentionConfig};
use secrecy::{ExposeSecret, SecretString};
pub use webhook::{DEFAULT_APPLY_DEADLINE, WebhookConfig};

use crmsync_db::migrate::MIGRATION_TIMEOUTS;
use crmsync_db::{DatabaseSettings, Pooler, Timeouts};
use crmsync_domain::policy::{FieldPolicies, PolicyFormat};

use crate::AppError;

/// Settings every crmsync entry point reads; each entry point uses the sections it serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL` (required): a PostgreSQL URL. Secret because it may hold a password.
    pub database_url: SecretString,
    /// `DATABASE_POOL_SIZE` (default 8): connections per process.
    pub database_pool_size: usize,
    /// `DATABASE_MIGRATION_URL`: a direct (or session-mode) URL for `crmsync migrate` and the deploy-time
    /// migration, when `DATABASE_URL` goes through a transaction pooler. Secret like `DATABASE_URL`.
    pub database_migration_url: Option<SecretString>,
    /// `DATABASE_POOLER`: `transaction`, `session` or `none` (default: `transaction` on port 6543, else `none`).
    pub database_pooler: Option<String>,
    /// `DATABASE_CA_CERT_FILE`: a PEM bundle trusted beside the system roots (Supabase's or RDS's CA).
    pub database_ca_cert_file: Option<String>,
    /// `DATABASE_CA_CERT`: the same as PEM text (the Lambdas get it from Secrets Manager).
    pub database_ca_cert: Option<String>,
    /// `DATABASE_*_TIMEOUT_MS`: overrides of the entry point's own defaults (see [`Timeouts`]).
    pub database_timeouts: TimeoutOverrides,
    /// `HUBSPOT_BASE_URL` (default `https://api.hubapi.com`; the simulator's URL locally).
    pub hubspot_base_url: String,
    /// `HUBSPOT_ACCESS_TOKEN`: the private app or service key token. `crmsync serve` refuses to start without it
    /// unless `--simulator` asks for the built-in HubSpot simulator.
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
    /// `crmsync prune`'s section: days kept per table (`PRUNE_*`).
    pub retention: RetentionConfig,
    /// `CRMSYNC_FIELD_POLICY`: a TOML or JSON file overriding the default field policies (which side wins each
    /// property), validated here; without it, the defaults.
    pub field_policies: Arc<FieldPolicies>,
}

/// Each `DATABASE_*_TIMEOUT_MS` that is set; the rest come from the entry point's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeoutOverrides {
    pub connect: Option<Duration>,
    pub pool_wait: Option<Duration>,
    pub statement: Option<Duration>,
    pub lock: Option<Duration>,
    pub idle_in_transaction: Option<Duration>,
}

impl TimeoutOverrides {
    pub fn apply(&self, defaults: Timeouts) -> Timeouts {
        Timeouts {
            connect: self.connect.unwrap_or(defaults.connect),
            pool_wait: self.pool_wait.unwrap_or(defaults.pool_wait),
            statement: self.statement.unwrap_or(defaults.statement),
            lock: self.lock.unwrap_or(defaults.lock),
            idle_in_transaction: self.idle_in_transaction.unwrap_or(defaults.idle_in_transaction),
        }
    }
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
    /// `RECONCILE_INTERVAL_SECONDS` (default 3600; 0 turns it off): how often `crmsync serve` reconciles with
    /// HubSpot (the deployed stack runs it hourly on EventBridge Scheduler).
    pub reconcile_interval: Option<Duration>,
    /// `OWNERS_REFRESH_INTERVAL_SECONDS` (default 3600; 0 turns it off): how often `crmsync serve` refreshes its
    /// cache of HubSpot's owners (also at start). The deployed stack refreshes them with every reconciliation.
    pub owners_interval: Option<Duration>,
    /// `SYNC_RETRY_WINDOW` (default `24h`; a number of seconds, or with a unit: `90m`, `36h`, `2d`; 1 minute to 30
    /// days): how long an item's retryable failures (429, 5xx, 477, timeouts, resets, unknown outcomes) are
    /// retried, from its first one, before it is dead. They do not count toward `SYNC_MAX_ATTEMPTS`.
    pub retry_window: Duration,
    /// `SYNC_CIRCUIT_FAILURES` (default 5): retryable failures in a row that open the circuit breaker.
    pub circuit_failures: u32,
    /// `SYNC_CIRCUIT_COOLDOWN_SECONDS` (default 60): how long an open circuit keeps the sync from calling HubSpot
    /// before one probe.
    pub circuit_cooldown: Duration,
    /// `SYNC_FAST_PATH` (`on` by default, or `off`): whether a write that queues rows asks for a drain at once (see
    /// [`crate::kick`]); off, the rows wait for the schedule.
    pub fast_path: bool,
    /// `SYNC_KICK_DEBOUNCE_MS` (default 2,000; 0 to 900,000): the fast path's debounce window. Kicks inside it make
    /// one drain; in AWS it is the drain request's SQS delay, rounded up to whole seconds.
    pub kick_debounce: Duration,
}

/// The longest `SYNC_RETRY_WINDOW`.
const MAX_RETRY_WINDOW: Duration = Duration::from_secs(30 * 86_400);

/// Reads a duration of whole seconds, minutes, hours or days (`3600`, `3600s`, `90m`, `24h`, `2d`) between one
/// minute and [`MAX_RETRY_WINDOW`].
fn retry_window(name: &'static str, value: Option<String>) -> Result<Duration, AppError> {
    let Some(value) = value else {
        return Ok(crmsync_domain::sync::DEFAULT_RETRY_WINDOW);
    };
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => value.split_at(at),
        None => (value.as_str(), "s"),
    };
    let scale = match unit.trim() {
        "s" => Some(1),
        "m" => Some(60),
        "h" => Some(3_600),
        "d" => Some(86_400),
        _ => None,
    };
    scale
        .zip(digits.parse::<u64>().ok())
        .and_then(|(scale, n)| n.checked_mul(scale))
        .map(Duration::from_secs)
        .filter(|d| (Duration::from_secs(60)..=MAX_RETRY_WINDOW).contains(d))
        .ok_or(AppError::Config {
            variable: name,
            reason: format!(
                "must be a duration from 1 minute to 30 days, in seconds or with a unit (90m, 24h, 2d), got {value:?}"
            ),
        })
}

impl Config {
    pub fn from_env() -> Result<Self, AppError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AppError> {
        let webhook = WebhookConfig::from_lookup(&lookup)?;
        let api = ApiConfig::from_lookup(&lookup)?;
        let retention = RetentionConfig::from_lookup(&lookup)?;
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
        let millis = |name: &'static str| -> Result<Option<Duration>, AppError> {
            match text(name) {
                None => Ok(None),
                Some(_) => Ok(Some(Duration::from_millis(number(name, 0, 100..=3_600_000)? as u64))),
            }
        };
        let database_timeouts = TimeoutOverrides {
            connect: millis("DATABASE_CONNECT_TIMEOUT_MS")?,
            pool_wait: millis("DATABASE_POOL_WAIT_TIMEOUT_MS")?,
            statement: millis("DATABASE_STATEMENT_TIMEOUT_MS")?,
            lock: millis("DATABASE_LOCK_TIMEOUT_MS")?,
            idle_in_transaction: millis("DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS")?,
        };
        let config = Self {
            database_url: SecretString::from(database_url),
            database_pool_size,
            database_migration_url: text("DATABASE_MIGRATION_URL").map(SecretString::from),
            database_pooler: text("DATABASE_POOLER"),
            database_ca_cert_file: text("DATABASE_CA_CERT_FILE"),
            database_ca_cert: text("DATABASE_CA_CERT"),
            database_timeouts,
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
                reconcile_interval: match number("RECONCILE_INTERVAL_SECONDS", 3_600, 0..=604_800)? {
                    0 => None,
                    seconds => Some(Duration::from_secs(seconds as u64)),
                },
                owners_interval: match number("OWNERS_REFRESH_INTERVAL_SECONDS", 3_600, 0..=604_800)? {
                    0 => None,
                    seconds => Some(Duration::from_secs(seconds as u64)),
                },
                retry_window: retry_window("SYNC_RETRY_WINDOW", text("SYNC_RETRY_WINDOW"))?,
                circuit_failures: number("SYNC_CIRCUIT_FAILURES", 5, 1..=1_000)? as u32,
                circuit_cooldown: Duration::from_secs(number("SYNC_CIRCUIT_COOLDOWN_SECONDS", 60, 1..=3_600)? as u64),
                fast_path: match text("SYNC_FAST_PATH").map(|v| v.to_ascii_lowercase()).as_deref() {
                    None | Some("on") => true,
                    Some("off") => false,
                    Some(other) => {
                        return Err(AppError::Config {
                            variable: "SYNC_FAST_PATH",
                            reason: format!("must be on or off, got {other:?}"),
                        });
                    }
                },
                kick_debounce: Duration::from_millis(number(
                    "SYNC_KICK_DEBOUNCE_MS",
                    crmsync_domain::kick::DEFAULT_DEBOUNCE.as_millis() as i64,
                    0..=900_000,
                )? as u64),
            },
            webhook,
            api,
            retention,
            field_policies: Arc::new(field_policies(text("CRMSYNC_FIELD_POLICY"))?),
        };
        config.database(Timeouts::BACKGROUND)?;
        if config.database_migration_url.is_some() {
            config.migration_database()?;
        }
        Ok(config)
    }
}

/// The field policies `CRMSYNC_FIELD_POLICY` names (the defaults without it), for commands that need nothing else.
pub fn field_policies_from_env() -> Result<FieldPolicies, AppError> {
    field_policies(
        std::env::var("CRMSYNC_FIELD_POLICY")
            .ok()
            .filter(|p| !p.trim().is_empty()),
    )
}

/// The field policies: the defaults, overridden by the file at `path` (or the JSON `path` holds) when one is given.
fn field_policies(path: Option<String>) -> Result<FieldPolicies, AppError> {
    let Some(path) = path else {
        return Ok(FieldPolicies::defaults());
    };
    let invalid = |reason: String| AppError::Config {
        variable: "CRMSYNC_FIELD_POLICY",
        reason,
    };
    if path.trim_start().starts_with('{') {
        // The JSON itself (a Lambda has no file of its own to point at: the template passes it inline).
        return FieldPolicies::from_text("inline JSON", &path, PolicyFormat::Json).map_err(|e| invalid(e.to_string()));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| invalid(format!("cannot read {path}: {e}")))?;
    FieldPolicies::from_text(&path, &text, PolicyFormat::of_path(&path)).map_err(|e| invalid(e.to_string()))
}

impl Config {
    /// Where `DATABASE_URL` leads and how: its `sslmode` (libpq's meanings), the pooler, the pool size, and the
    /// entry point's `defaults` with any `DATABASE_*_TIMEOUT_MS` applied.
    pub fn database(&self, defaults: Timeouts) -> Result<DatabaseSettings, AppError> {
        self.settings_for("DATABASE_URL", self.database_url.expose_secret(), defaults)
    }

    /// Where migrations run: `DATABASE_MIGRATION_URL` when set, else `DATABASE_URL` (which `migrate` refuses when
    /// it is a transaction pooler).
    pub fn migration_database(&self) -> Result<DatabaseSettings, AppError> {
        match &self.database_migration_url {
            Some(url) => Ok(self
                .settings_for("DATABASE_MIGRATION_URL", url.expose_secret(), MIGRATION_TIMEOUTS)?
                .with_pooler(Pooler::None)),
            None => self.settings_for("DATABASE_URL", self.database_url.expose_secret(), MIGRATION_TIMEOUTS),
        }
    }

    fn settings_for(
        &self,
        variable: &'static str,
        url: &str,
        defaults: Timeouts,
    ) -> Result<DatabaseSettings, AppError> {
        let invalid = |reason: String| AppError::Config { variable, reason };
        let settings =
            DatabaseSettings::parse(url, self.database_timeouts.apply(defaults)).map_err(|e| invalid(e.to_string()))?;
        let pooler =
            Pooler::from_setting(self.database_pooler.as_deref(), settings.ports()).map_err(|e| AppError::Config {
                variable: "DATABASE_POOLER",
                reason: e.to_string(),
            })?;
        Ok(settings
            .with_pooler(pooler)
            .with_pool_size(self.database_pool_size)
            .with_ca_file(self.database_ca_cert_file.clone())
            .with_ca_pem(self.database_ca_cert.clone()))
    }

    /// The process's one connection pool, with the entry point's timeout `defaults`: every part of a process
    /// (`crmsync serve` runs them all) shares it.
    pub fn connect_pool(&self, defaults: Timeouts) -> Result<crmsync_db::Pool, AppError> {
        Ok(self.database(defaults)?.pool()?)
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

    /// How the Lambdas and the CLI ask for a drain after they queued rows: a drain request on the retry queue
    /// (`RETRY_QUEUE_URL`), coalesced in crmsync.drain_kicks; off without the queue or with `SYNC_FAST_PATH=off`.
    /// `crmsync serve` kicks its own drainer instead.
    pub async fn drain_kicker(&self, pool: &crmsync_db::Pool) -> crate::kick::DrainKicker {
        if !self.sync.fast_path {
            return crate::kick::DrainKicker::Off;
        }
        match self.retry_queue().await {
            Some(queue) => crate::kick::DrainKicker::Sqs(crate::kick::SqsKicks::new(
                crmsync_db::kick::PgDrainKicks::outbound(pool.clone()),
                queue,
                self.sync.kick_debounce,
            )),
            None => crate::kick::DrainKicker::Off,
        }
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
    fn a_field_policy_file_overrides_the_defaults_and_its_errors_name_the_variable_and_property() {
        let dir = std::env::temp_dir().join(format!("crmsync-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("policy.toml");
        std::fs::write(&good, "[deal]\namount = \"two_way\"\n").unwrap();
        let loaded = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("CRMSYNC_FIELD_POLICY", good.to_str().unwrap()),
        ])
        .unwrap();
        let amount = loaded
            .field_policies
            .policy(crmsync_domain::webhook::ObjectKind::Deal, "amount");
        assert_eq!(amount, Some(crmsync_domain::policy::FieldPolicy::TwoWay));
        let bad = dir.join("policy.json");
        std::fs::write(&bad, r#"{"deal": {"amout": "local"}}"#).unwrap();
        let error = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("CRMSYNC_FIELD_POLICY", bad.to_str().unwrap()),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("CRMSYNC_FIELD_POLICY") && error.contains("deal.amout"),
            "{error}"
        );
        let missing = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("CRMSYNC_FIELD_POLICY", "/nonexistent/policy.toml"),
        ])
        .unwrap_err()
        .to_string();
        assert!(missing.contains("cannot read /nonexistent/policy.toml"), "{missing}");
        let inline = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("CRMSYNC_FIELD_POLICY", r#"{"company": {"website": "hubspot"}}"#),
        ])
        .unwrap();
        let website = inline
            .field_policies
            .policy(crmsync_domain::webhook::ObjectKind::Company, "website");
        assert_eq!(website, Some(crmsync_domain::policy::FieldPolicy::HubSpot));
        std::fs::remove_dir_all(&dir).ok();
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
            ("API_JWT_ISSUER", "https://abcdefgh.supabase.co/auth/v1"),
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
    fn reconciliation_runs_hourly_unless_set_and_zero_turns_it_off() {
        let defaults = config(&[("DATABASE_URL", "postgres://x/y")]).unwrap();
        assert_eq!(defaults.sync.reconcile_interval, Some(Duration::from_secs(3_600)));
        let off = config(&[("DATABASE_URL", "postgres://x/y"), ("RECONCILE_INTERVAL_SECONDS", "0")]).unwrap();
        assert_eq!(off.sync.reconcile_interval, None);
        assert_eq!(defaults.sync.owners_interval, Some(Duration::from_secs(3_600)));
        let owners_off = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("OWNERS_REFRESH_INTERVAL_SECONDS", "0"),
        ])
        .unwrap();
        assert_eq!(owners_off.sync.owners_interval, None);
        let error = config(&[
            ("DATABASE_URL", "postgres://x/y"),
            ("RECONCILE_INTERVAL_SECONDS", "soon"),
        ])
        .unwrap_err();
        assert!(error.to_string().contains("RECONCILE_INTERVAL_SECONDS"), "{error}");
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
    fn the_retry_window_and_the_circuit_have_defaults_units_and_name_bad_values() {
        let base = ("DATABASE_URL", "postgres://x/y");
        let defaults = config(&[base]).unwrap().sync;
        assert_eq!(defaults.retry_window, Duration::from_secs(24 * 3600));
        assert_eq!(
            (defaults.circuit_failures, defaults.circuit_cooldown),
            (5, Duration::from_secs(60))
        );
        for (value, seconds) in [
            ("7200", 7_200),
            ("90m", 5_400),
            ("36h", 129_600),
            ("2d", 172_800),
            ("60s", 60),
        ] {
            let sync = config(&[base, ("SYNC_RETRY_WINDOW", value)]).unwrap().sync;
            assert_eq!(sync.retry_window, Duration::from_secs(seconds), "{value}");
        }
        for value in ["59", "31d", "1w", "h", "-5m"] {
            let error = config(&[base, ("SYNC_RETRY_WINDOW", value)]).unwrap_err().to_string();
            assert!(
                error.contains("SYNC_RETRY_WINDOW must be a duration from 1 minute to 30 days"),
                "{value}: {error}"
            );
        }
        let error = config(&[base, ("SYNC_CIRCUIT_FAILURES", "0")]).unwrap_err().to_string();
        assert!(
            error.contains("SYNC_CIRCUIT_FAILURES must be a whole number from 1"),
            "{error}"
        );
        let sync = config(&[
            base,
            ("SYNC_CIRCUIT_FAILURES", "3"),
            ("SYNC_CIRCUIT_COOLDOWN_SECONDS", "120"),
        ])
        .unwrap()
        .sync;
        assert_eq!(
            (sync.circuit_failures, sync.circuit_cooldown),
            (3, Duration::from_secs(120))
        );
    }

    #[test]
    fn the_fast_path_is_on_with_a_two_second_window_unless_set_and_bad_values_are_named() {
        let base = ("DATABASE_URL", "postgres://x/y");
        let defaults = config(&[base]).unwrap().sync;
        assert!(defaults.fast_path);
        assert_eq!(defaults.kick_debounce, Duration::from_secs(2));
        let set = config(&[base, ("SYNC_FAST_PATH", "OFF"), ("SYNC_KICK_DEBOUNCE_MS", "500")])
            .unwrap()
            .sync;
        assert_eq!((set.fast_path, set.kick_debounce), (false, Duration::from_millis(500)));
        let error = config(&[base, ("SYNC_FAST_PATH", "maybe")]).unwrap_err().to_string();
        assert!(error.contains("SYNC_FAST_PATH must be on or off"), "{error}");
        let error = config(&[base, ("SYNC_KICK_DEBOUNCE_MS", "900001")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("SYNC_KICK_DEBOUNCE_MS must be a whole number from 0 to 900000"),
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
