//! `HubSpotClient`: the handle every HubSpot call goes through (cheap to clone, shares one limiter).

use std::fmt;
use std::sync::Arc;

use crate::config::HubSpotConfig;
use crate::error::HubSpotError;
use crate::transport::{ClientStats, Transport};

/// Typed client for HubSpot's CRM APIs. Clones share the connection pool, the rate limiters and the counters,
/// so build one per process and lend it out. Its operations live in [`crate::objects`], [`crate::search`],
/// [`crate::associations`], [`crate::pipelines`] and [`crate::properties`].
#[derive(Clone)]
pub struct HubSpotClient {
    pub(crate) transport: Arc<Transport>,
}

impl HubSpotClient {
    /// Validates `config` and builds the HTTP client and limiters. Fails with [`HubSpotError::Config`] naming
    /// the bad field.
    pub fn new(config: HubSpotConfig) -> Result<Self, HubSpotError> {
        Ok(HubSpotClient {
            transport: Arc::new(Transport::new(config)?),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &HubSpotConfig {
        &self.transport.config
    }

    /// While the daily limit is spent (a DAILY 429 or `X-HubSpot-RateLimit-Daily-Remaining: 0` was seen), the
    /// reset time: until then every call fails locally with [`HubSpotError::DailyLimitSpent`] without sending.
    pub fn daily_limit_spent_until(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.transport.daily_limit_spent_until()
    }

    /// Counters of requests sent, 429s seen, retries, timeouts ... since the client was built.
    pub fn stats(&self) -> ClientStats {
        self.transport.stats()
    }
}

impl fmt::Debug for HubSpotClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSpotClient")
            .field("base_url", &self.transport.config.base_url)
            .field("api_version", &self.transport.config.api_version)
            .finish_non_exhaustive()
    }
}
