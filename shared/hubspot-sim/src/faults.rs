//! Fault injection: decides, per API request, whether to answer 500/502/503, 423, slowly, or to
//! drop the connection after applying a write. Draws come from one generator seeded by
//! `SimConfig::seed`, in request order, so a sequential client sees the same faults every run.
//!
//! 423 and 5xx answers: <https://developers.hubspot.com/docs/api-reference/error-handling>.

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{FaultConfig, FaultKind};
use crate::error::ApiError;

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

/// The answer for a fault that replaces the response (5xx and 423).
pub fn error_response(kind: FaultKind) -> Option<ApiError> {
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
        FaultKind::Slow | FaultKind::DropAfterWrite => return None,
    };
    Some(ApiError::new(status, category, message))
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
