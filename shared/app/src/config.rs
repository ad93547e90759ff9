//! Typed configuration, read once from the environment at start-up. A missing or malformed variable fails fast
//! with its name; secrets are `SecretString`s, redacted in `Debug` and never logged.

use secrecy::SecretString;

use crate::AppError;

/// Settings every crmsync entry point shares.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL` (required): a PostgreSQL URL. Secret because it may hold a password.
    pub database_url: SecretString,
    /// `DATABASE_POOL_SIZE` (default 8): connections per process.
    pub database_pool_size: usize,
    /// `API_TOKEN`: the bearer token the HTTP routes require. `crmsync serve` refuses to start without it.
    pub api_token: Option<SecretString>,
}

impl Config {
    pub fn from_env() -> Result<Self, AppError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AppError> {
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
        let api_token = lookup("API_TOKEN").filter(|v| !v.is_empty()).map(SecretString::from);
        Ok(Self {
            database_url: SecretString::from(database_url),
            database_pool_size,
            api_token,
        })
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
        let config = config(&[("DATABASE_URL", "postgres://u:hunter2@h/db"), ("API_TOKEN", "tok-123")]).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("tok-123"), "{debug}");
    }
}
