//! Retention settings for `crmsync prune`: how many days each kind of operational row is kept, and the batch size
//! of its deletes. README.md, "Retention", lists the defaults.

use crate::AppError;

/// The least `PRUNE_INBOX_DAYS` may be: HubSpot re-delivers a webhook it got no 2xx for over about a day, and a
/// re-delivery is recognised as a duplicate only while its first copy is still in the inbox. A week leaves margin.
pub const MIN_INBOX_DAYS: i32 = 7;

/// Days kept per table, and the rows per delete statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `PRUNE_ECHO_LEDGER_DAYS` (default 7): the values the sync wrote, kept while HubSpot's echoes of them can
    /// still arrive (webhook re-deliveries, events applied late by the re-apply pass).
    pub echo_ledger_days: i32,
    /// `PRUNE_INBOX_DAYS` (default 14, at least [`MIN_INBOX_DAYS`]): applied and skipped webhook events.
    pub inbox_days: i32,
    /// `PRUNE_INBOX_DEAD_DAYS` (default 30, at least `PRUNE_INBOX_DAYS`): dead webhook events, for operators.
    pub inbox_dead_days: i32,
    /// `PRUNE_SYNC_QUEUE_DAYS` (default 14): completed sync_queue rows. Pending, failed and dead rows stay.
    pub sync_queue_days: i32,
    /// `PRUNE_SYNC_RUNS_DAYS` (default 30): finished sync runs.
    pub sync_runs_days: i32,
    /// `PRUNE_CONFLICTS_DAYS` (default 90): recorded sync conflicts (the dashboard's conflict list).
    pub conflicts_days: i32,
    /// `PRUNE_BATCH_SIZE` (default 5,000, 100–50,000): rows per delete statement.
    pub batch_size: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            echo_ledger_days: 7,
            inbox_days: 14,
            inbox_dead_days: 30,
            sync_queue_days: 14,
            sync_runs_days: 30,
            conflicts_days: 90,
            batch_size: 5_000,
        }
    }
}

impl RetentionConfig {
    /// Reads the `PRUNE_*` variables through `lookup`; a bad value is an error naming its variable.
    pub fn from_lookup(lookup: &impl Fn(&str) -> Option<String>) -> Result<Self, AppError> {
        let defaults = Self::default();
        let number = |name: &'static str, default: i64, min: i64, max: i64| -> Result<i64, AppError> {
            let Some(text) = lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
                return Ok(default);
            };
            text.parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or(AppError::Config {
                    variable: name,
                    reason: format!("must be a whole number from {min} to {max}, got {text:?}"),
                })
        };
        let days = |name: &'static str, default: i32, min: i32| -> Result<i32, AppError> {
            Ok(number(name, i64::from(default), i64::from(min), 36_500)? as i32)
        };
        let inbox_days = days("PRUNE_INBOX_DAYS", defaults.inbox_days, 1)?;
        if inbox_days < MIN_INBOX_DAYS {
            return Err(AppError::Config {
                variable: "PRUNE_INBOX_DAYS",
                reason: format!(
                    "must be at least {MIN_INBOX_DAYS}, got {inbox_days}: the inbox must remember an event for as \
                     long as HubSpot may re-deliver it, or the re-delivery is applied twice"
                ),
            });
        }
        let inbox_dead_days = days("PRUNE_INBOX_DEAD_DAYS", defaults.inbox_dead_days.max(inbox_days), 1)?;
        if inbox_dead_days < inbox_days {
            return Err(AppError::Config {
                variable: "PRUNE_INBOX_DEAD_DAYS",
                reason: format!("must be at least PRUNE_INBOX_DAYS ({inbox_days}), got {inbox_dead_days}"),
            });
        }
        Ok(Self {
            echo_ledger_days: days("PRUNE_ECHO_LEDGER_DAYS", defaults.echo_ledger_days, 1)?,
            inbox_days,
            inbox_dead_days,
            sync_queue_days: days("PRUNE_SYNC_QUEUE_DAYS", defaults.sync_queue_days, 1)?,
            sync_runs_days: days("PRUNE_SYNC_RUNS_DAYS", defaults.sync_runs_days, 1)?,
            conflicts_days: days("PRUNE_CONFLICTS_DAYS", defaults.conflicts_days, 1)?,
            batch_size: number("PRUNE_BATCH_SIZE", defaults.batch_size, 100, 50_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<RetentionConfig, AppError> {
        let vars: std::collections::HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        RetentionConfig::from_lookup(&|name: &str| vars.get(name).cloned())
    }

    #[test]
    fn retention_has_documented_defaults_and_takes_overrides() {
        assert_eq!(read(&[]).unwrap(), RetentionConfig::default());
        let config = read(&[
            ("PRUNE_SYNC_QUEUE_DAYS", "3"),
            ("PRUNE_INBOX_DAYS", "7"),
            ("PRUNE_BATCH_SIZE", "1000"),
        ])
        .unwrap();
        assert_eq!(config.sync_queue_days, 3);
        assert_eq!(config.inbox_days, 7);
        assert_eq!(config.batch_size, 1_000);
        assert_eq!(config.conflicts_days, 90);
    }

    #[test]
    fn an_inbox_retention_below_seven_days_is_a_configuration_error_naming_it() {
        let error = read(&[("PRUNE_INBOX_DAYS", "6")]).unwrap_err();
        assert!(
            matches!(
                error,
                AppError::Config {
                    variable: "PRUNE_INBOX_DAYS",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("at least 7"), "{error}");
    }

    #[test]
    fn dead_events_are_kept_at_least_as_long_as_settled_ones_and_bad_numbers_are_named() {
        // A longer inbox retention raises the dead events' default with it.
        assert_eq!(read(&[("PRUNE_INBOX_DAYS", "60")]).unwrap().inbox_dead_days, 60);
        let error = read(&[("PRUNE_INBOX_DAYS", "20"), ("PRUNE_INBOX_DEAD_DAYS", "10")]).unwrap_err();
        assert!(
            matches!(
                error,
                AppError::Config {
                    variable: "PRUNE_INBOX_DEAD_DAYS",
                    ..
                }
            ),
            "{error}"
        );
        let error = read(&[("PRUNE_BATCH_SIZE", "ten")]).unwrap_err();
        assert!(error.to_string().contains("PRUNE_BATCH_SIZE"), "{error}");
    }
}
