//! Fault injection: decides, per API request, whether to answer 500/502/503, 423, slowly, or to
//! drop the connection after applying a write. Draws come from one generator seeded by
//! `SimConfig::seed`, in request order, so a sequential client sees the same faults every run.
//! Scripted faults can also answer 477 (with `Retry-After`), 504, 524, 429 and 403; the random draws
//! never pick those, so seeded runs keep their sequences.
//!
//! 423, 477, 5xx and 524 answers: <https://developers.hubspot.com/docs/api-reference/error-handling>
//! (HUBSPOT-FACTS §3); 403 `MISSING_SCOPES` is HubSpot's answer to a token without a needed scope.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::config::{FaultConfig, FaultKind};
use crate::error::SimErrorResponse;

/// Fault settings plus the generator they are drawn with.
#[derive(Debug)]
pub struct Faults {
    config: FaultConfig,
    rng: StdRng,
}

impl Faults {
    pub fn new(config: FaultConfig, seed: u64) -> Self {
        Self {
            config,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    /// Replaces the settings (admin); the generator carries on.
    pub fn set(&mut self, config: FaultConfig) {
        self.config = config;
    }

    /// True when the association batch-create answer being built should leave out its first input (see
    /// [`FaultConfig::association_results_dropped`]); counts one down.
    pub fn drop_association_result(&mut self) -> bool {
        let left = &mut self.config.association_results_dropped;
        let drop = *left > 0;
        *left = left.saturating_sub(1);
        drop
    }

    /// The fault for the next request, if any. Scripted faults come first. Rates are checked in
    /// order 5xx, 423, slow, drop with a single draw, so they add up; drop applies to writes only.
    pub fn decide(&mut self, is_write: bool) -> Option<FaultKind> {
        if !self.config.next.is_empty() {
            return Some(self.config.next.remove(0));
        }
        let rates = [
            self.config.error_rate,
            self.config.lock_rate,
            self.config.slow_rate,
            if is_write {
                self.config.drop_after_write_rate
            } else {
                0.0
            },
        ];
        if rates.iter().all(|r| *r <= 0.0) {
            return None;
        }
        let draw: f64 = self.rng.random();
        let mut threshold = 0.0;
        for (index, rate) in rates.into_iter().enumerate() {
            threshold += rate;
            if draw < threshold {
                return Some(match index {
                    0 => [FaultKind::InternalError, FaultKind::BadGateway, FaultKind::Unavailable]
                        [self.rng.random_range(0..3)],
                    1 => FaultKind::Locked,
                    2 => FaultKind::Slow,
                    _ => FaultKind::DropAfterWrite,
                });
            }
        }
        None
    }
}

/// The answer for a fault that replaces the response (every kind but slow and drop-after-write).
/// `retry_after_secs` is the 477's `Retry-After`.
pub fn fault_response(kind: FaultKind, retry_after_secs: u64) -> Option<Response> {
    match kind {
        FaultKind::MigrationInProgress => {
            let mut response = SimErrorResponse::new(
                StatusCode::from_u16(477).expect("477 is a valid status"),
                "MIGRATION_IN_PROGRESS",
                "This portal is being migrated; retry after the time given in Retry-After.",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            Some(response)
        }
        FaultKind::OriginTimeout => {
            // Cloudflare answers 524 itself, with an HTML page rather than HubSpot's JSON.
            let status = StatusCode::from_u16(524).expect("524 is a valid status");
            let page = "<!DOCTYPE html><html><head><title>api.hubapi.com | 524: A timeout occurred</title></head>\
                        <body>Error code 524</body></html>";
            Some((status, [(header::CONTENT_TYPE, "text/html; charset=UTF-8")], page).into_response())
        }
        FaultKind::Forbidden => Some(
            SimErrorResponse::new(
                StatusCode::FORBIDDEN,
                "MISSING_SCOPES",
                "This app hasn't been granted all required scopes to make this call. Read more about required \
                 scopes here: https://developers.hubspot.com/scopes.",
            )
            .with(
                "errors",
                json!([{"message": "One or more of the following scopes are required.",
                        "context": {"requiredGranularScopes": ["crm.objects.deals.read"]}}]),
            )
            .with("links", json!({"scopes": "https://developers.hubspot.com/scopes"}))
            .into_response(),
        ),
        FaultKind::TooManyRequests => {
            let (answer, _) = crate::limits::RateLimited::TenSecondly(Vec::new()).to_response_parts();
            Some(answer.into_response())
        }
        other => error_response(other).map(IntoResponse::into_response),
    }
}

/// The HubSpot-shaped JSON answer of a 5xx, 423 or 504 fault.
pub fn error_response(kind: FaultKind) -> Option<SimErrorResponse> {
    let (status, category, message) = match kind {
        FaultKind::InternalError => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "internal error"),
        FaultKind::BadGateway => (StatusCode::BAD_GATEWAY, "BAD_GATEWAY", "Bad gateway"),
        FaultKind::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "The service is temporarily unavailable",
        ),
        FaultKind::Locked => (
            StatusCode::LOCKED,
            "LOCKED",
            "The resource is locked by another request; wait at least 2 seconds and retry.",
        ),
        FaultKind::GatewayTimeout => (StatusCode::GATEWAY_TIMEOUT, "GATEWAY_TIMEOUT", "Gateway timeout"),
        FaultKind::Slow
        | FaultKind::DropAfterWrite
        | FaultKind::MigrationInProgress
        | FaultKind::OriginTimeout
        | FaultKind::TooManyRequests
        | FaultKind::Forbidden => return None,
    };
    Some(SimErrorResponse::new(status, category, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(seed: u64, config: &FaultConfig, n: usize) -> Vec<Option<FaultKind>> {
        let mut faults = Faults::new(config.clone(), seed);
        (0..n).map(|_| faults.decide(true)).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let config = FaultConfig {
            error_rate: 0.3,
            lock_rate: 0.2,
            ..FaultConfig::default()
        };
        assert_eq!(sequence(7, &config, 50), sequence(7, &config, 50));
        assert_ne!(sequence(7, &config, 50), sequence(8, &config, 50));
    }

    #[test]
    fn scripted_faults_come_first_and_in_order() {
        let config = FaultConfig {
            next: vec![FaultKind::Locked, FaultKind::DropAfterWrite],
            ..FaultConfig::default()
        };
        assert_eq!(
            sequence(0, &config, 3),
            [Some(FaultKind::Locked), Some(FaultKind::DropAfterWrite), None]
        );
    }

    #[test]
    fn association_results_are_dropped_as_many_times_as_set() {
        let config = FaultConfig {
            association_results_dropped: 2,
            ..FaultConfig::default()
        };
        let mut faults = Faults::new(config, 0);
        let drops: Vec<bool> = (0..3).map(|_| faults.drop_association_result()).collect();
        assert_eq!(drops, [true, true, false]);
        assert_eq!(faults.config().association_results_dropped, 0);
    }

    #[test]
    fn drops_are_drawn_for_writes_only() {
        let config = FaultConfig {
            drop_after_write_rate: 1.0,
            ..FaultConfig::default()
        };
        let mut faults = Faults::new(config, 1);
        assert_eq!(faults.decide(false), None);
        assert_eq!(faults.decide(true), Some(FaultKind::DropAfterWrite));
    }

    #[test]
    fn scripted_477_504_524_and_403_answers_have_hubspots_shapes() {
        let migration = fault_response(FaultKind::MigrationInProgress, 7).unwrap();
        assert_eq!(migration.status().as_u16(), 477);
        assert_eq!(migration.headers()[header::RETRY_AFTER], "7");
        for (kind, status) in [
            (FaultKind::GatewayTimeout, 504),
            (FaultKind::OriginTimeout, 524),
            (FaultKind::Forbidden, 403),
            (FaultKind::TooManyRequests, 429),
        ] {
            assert_eq!(fault_response(kind, 7).unwrap().status().as_u16(), status);
        }
        assert!(fault_response(FaultKind::Slow, 7).is_none());
        assert!(fault_response(FaultKind::DropAfterWrite, 7).is_none());
    }

    #[test]
    fn an_error_rate_of_one_always_answers_a_5xx() {
        let config = FaultConfig {
            error_rate: 1.0,
            ..FaultConfig::default()
        };
        let drawn = sequence(3, &config, 30);
        assert!(drawn.iter().all(|f| matches!(
            f,
            Some(FaultKind::InternalError | FaultKind::BadGateway | FaultKind::Unavailable)
        )));
        assert!(drawn.contains(&Some(FaultKind::BadGateway)) && drawn.contains(&Some(FaultKind::Unavailable)));
    }
}
