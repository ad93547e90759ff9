//! The webhook handler's settings, read once at start-up: the client secrets that sign HubSpot's requests, whether
//! legacy v1 signatures are accepted, our app id (echo recognition) and the public URL HubSpot calls.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::AppError;

/// The default of `WEBHOOK_APPLY_DEADLINE_MS`: half of HubSpot's 5-second timeout
/// (<https://developers.hubspot.com/docs/api/webhooks>), leaving room for the insert, a cold start and the network.
pub const DEFAULT_APPLY_DEADLINE: Duration = Duration::from_millis(2_500);

/// `HUBSPOT_CLIENT_SECRET`, `HUBSPOT_CLIENT_SECRET_PREVIOUS`, `HUBSPOT_WEBHOOK_ACCEPT_V1`, `HUBSPOT_APP_ID`,
/// `HUBSPOT_PORTAL_ID`, `WEBHOOK_PUBLIC_URL`, `WEBHOOK_APPLY_DEADLINE_MS`. Secrets are redacted in `Debug`.
#[derive(Clone)]
pub struct WebhookConfig {
    /// `HUBSPOT_CLIENT_SECRET`: the app's client secret. Without it every request is refused (401).
    pub client_secret: Option<SecretString>,
    /// `HUBSPOT_CLIENT_SECRET_PREVIOUS`: the secret being rotated out, accepted too until it is removed.
    pub previous_client_secret: Option<SecretString>,
    /// `HUBSPOT_WEBHOOK_ACCEPT_V1` (default false): accept legacy v1 signatures (legacy private apps). v1 signs only
    /// the body, with no timestamp, so a captured request can be replayed.
    pub accept_v1: bool,
    /// `HUBSPOT_APP_ID`: events with `changeSource: INTEGRATION` and this `sourceId` are our own writes.
    pub app_id: Option<String>,
    /// `HUBSPOT_PORTAL_ID`: the HubSpot account (portal) this deployment syncs with. Events from any other portal
    /// (a sandbox where the same app is installed) are not applied: HubSpot ids are unique only within a portal.
    /// Unset: every portal's events apply.
    pub portal_id: Option<i64>,
    /// `WEBHOOK_PUBLIC_URL`: scheme and host (and any path prefix a proxy strips) HubSpot calls, e.g.
    /// `https://crm.example.com`. The signed URI is this + the request's path and query. Unset: the URI is rebuilt
    /// from X-Forwarded-Proto (else the listener's scheme) and Host.
    pub public_url: Option<String>,
    /// `WEBHOOK_APPLY_DEADLINE_MS` (default 2500, 100..=4000): how long the handler applies events before it
    /// answers when it applies them inline (the Lambda). HubSpot and SQS calls stop at the deadline; what is left
    /// stays in the inbox for the re-apply pass and the retry queue.
    pub apply_deadline: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            client_secret: None,
            previous_client_secret: None,
            accept_v1: false,
            app_id: None,
            portal_id: None,
            public_url: None,
            apply_deadline: DEFAULT_APPLY_DEADLINE,
        }
    }
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field(
                "previous_client_secret",
                &self.previous_client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("accept_v1", &self.accept_v1)
            .field("app_id", &self.app_id)
            .field("portal_id", &self.portal_id)
            .field("public_url", &self.public_url)
            .field("apply_deadline", &self.apply_deadline)
            .finish()
    }
}

impl WebhookConfig {
    /// Reads the settings through `lookup`; errors name the variable. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AppError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let accept_v1 = match get("HUBSPOT_WEBHOOK_ACCEPT_V1").map(|v| v.to_ascii_lowercase()) {
            None => false,
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => true,
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => false,
            Some(v) => {
                return Err(AppError::Config {
                    variable: "HUBSPOT_WEBHOOK_ACCEPT_V1",
                    reason: format!("must be true or false, not {v:?}"),
                });
            }
        };
        let app_id = get("HUBSPOT_APP_ID");
        if let Some(id) = &app_id
            && !id.chars().all(|c| c.is_ascii_digit())
        {
            return Err(AppError::Config {
                variable: "HUBSPOT_APP_ID",
                reason: format!("must be HubSpot's numeric app id, not {id:?}"),
            });
        }
        let portal_id = match get("HUBSPOT_PORTAL_ID") {
            None => None,
            Some(id) => Some(id.parse::<i64>().ok().filter(|id| *id > 0).ok_or(AppError::Config {
                variable: "HUBSPOT_PORTAL_ID",
                reason: format!("must be HubSpot's numeric account (portal) id, not {id:?}"),
            })?),
        };
        let public_url = get("WEBHOOK_PUBLIC_URL");
        if let Some(url) = &public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(AppError::Config {
                variable: "WEBHOOK_PUBLIC_URL",
                reason: format!("must start with https:// or http://, not {url:?}"),
            });
        }
        let apply_deadline = match get("WEBHOOK_APPLY_DEADLINE_MS") {
            None => DEFAULT_APPLY_DEADLINE,
            Some(v) => match v.parse::<u64>() {
                Ok(ms) if (100..=4_000).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(AppError::Config {
                        variable: "WEBHOOK_APPLY_DEADLINE_MS",
                        reason: format!("must be a number of milliseconds from 100 to 4000, not {v:?}"),
                    });
                }
            },
        };
        Ok(Self {
            client_secret: lookup("HUBSPOT_CLIENT_SECRET")
                .filter(|v| !v.is_empty())
                .map(SecretString::from),
            previous_client_secret: lookup("HUBSPOT_CLIENT_SECRET_PREVIOUS")
                .filter(|v| !v.is_empty())
                .map(SecretString::from),
            accept_v1,
            app_id,
            portal_id,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            apply_deadline,
        })
    }

    /// The verifier for these secrets: current first, then the previous one.
    pub fn verifier(&self) -> crmsync_hubspot::signature::Verifier {
        let secrets = [&self.client_secret, &self.previous_client_secret]
            .into_iter()
            .flatten()
            .map(|s| s.expose_secret().to_owned());
        crmsync_hubspot::signature::Verifier::new(secrets, self.accept_v1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<WebhookConfig, AppError> {
        WebhookConfig::from_lookup(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults_refuse_v1_and_have_no_secret() {
        let config = config(&[]).expect("config");
        assert!(!config.accept_v1);
        assert!(config.client_secret.is_none() && config.app_id.is_none() && config.public_url.is_none());
        assert_eq!(config.apply_deadline, DEFAULT_APPLY_DEADLINE);
        assert_eq!(WebhookConfig::default().apply_deadline, DEFAULT_APPLY_DEADLINE);
    }

    #[test]
    fn bad_values_are_named_with_their_variable() {
        for (vars, variable) in [
            (
                &[("HUBSPOT_WEBHOOK_ACCEPT_V1", "maybe")][..],
                "HUBSPOT_WEBHOOK_ACCEPT_V1",
            ),
            (&[("HUBSPOT_APP_ID", "app-1")][..], "HUBSPOT_APP_ID"),
            (&[("HUBSPOT_PORTAL_ID", "sandbox")][..], "HUBSPOT_PORTAL_ID"),
            (&[("HUBSPOT_PORTAL_ID", "-5")][..], "HUBSPOT_PORTAL_ID"),
            (&[("WEBHOOK_PUBLIC_URL", "crm.example.com")][..], "WEBHOOK_PUBLIC_URL"),
            (
                &[("WEBHOOK_APPLY_DEADLINE_MS", "5000")][..],
                "WEBHOOK_APPLY_DEADLINE_MS",
            ),
            (
                &[("WEBHOOK_APPLY_DEADLINE_MS", "soon")][..],
                "WEBHOOK_APPLY_DEADLINE_MS",
            ),
        ] {
            match config(vars) {
                Err(AppError::Config { variable: named, .. }) => assert_eq!(named, variable),
                other => panic!("{vars:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn secrets_are_redacted_and_the_public_url_loses_its_trailing_slash() {
        let config = config(&[
            ("HUBSPOT_CLIENT_SECRET", "current-secret-value"),
            ("HUBSPOT_CLIENT_SECRET_PREVIOUS", "previous-secret-value"),
            ("HUBSPOT_WEBHOOK_ACCEPT_V1", "true"),
            ("HUBSPOT_APP_ID", "54321"),
            ("HUBSPOT_PORTAL_ID", "62515"),
            ("WEBHOOK_PUBLIC_URL", "https://crm.example.com/"),
            ("WEBHOOK_APPLY_DEADLINE_MS", "1500"),
        ])
        .expect("config");
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret-value"), "{debug}");
        assert!(config.accept_v1);
        assert_eq!(config.portal_id, Some(62_515));
        assert_eq!(config.public_url.as_deref(), Some("https://crm.example.com"));
        assert_eq!(config.apply_deadline, Duration::from_millis(1_500));
        assert!(format!("{:?}", config.verifier()).contains("2 redacted"));
    }
}
