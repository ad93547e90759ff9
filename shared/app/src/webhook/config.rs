//! The webhook handler's settings, read once at start-up: the client secrets that sign HubSpot's requests, whether
//! legacy v1 signatures are accepted, our app id (echo recognition) and the public URL HubSpot calls.

use secrecy::{ExposeSecret, SecretString};

use crate::AppError;

/// `HUBSPOT_CLIENT_SECRET`, `HUBSPOT_CLIENT_SECRET_PREVIOUS`, `HUBSPOT_WEBHOOK_ACCEPT_V1`, `HUBSPOT_APP_ID`,
/// `WEBHOOK_PUBLIC_URL`. Secrets are redacted in `Debug`.
#[derive(Clone, Default)]
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
    /// `WEBHOOK_PUBLIC_URL`: scheme and host (and any path prefix a proxy strips) HubSpot calls, e.g.
    /// `https://crm.example.com`. The signed URI is this + the request's path and query. Unset: the URI is rebuilt
    /// from X-Forwarded-Proto (else the listener's scheme) and Host.
    pub public_url: Option<String>,
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
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl WebhookConfig {
    pub fn from_env() -> Result<Self, AppError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

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
        let public_url = get("WEBHOOK_PUBLIC_URL");
        if let Some(url) = &public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(AppError::Config {
                variable: "WEBHOOK_PUBLIC_URL",
                reason: format!("must start with https:// or http://, not {url:?}"),
            });
        }
        Ok(Self {
            client_secret: lookup("HUBSPOT_CLIENT_SECRET")
                .filter(|v| !v.is_empty())
                .map(SecretString::from),
            previous_client_secret: lookup("HUBSPOT_CLIENT_SECRET_PREVIOUS")
                .filter(|v| !v.is_empty())
                .map(SecretString::from),
            accept_v1,
            app_id,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
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
    }

    #[test]
    fn bad_values_are_named_with_their_variable() {
        for (vars, variable) in [
            (
                &[("HUBSPOT_WEBHOOK_ACCEPT_V1", "maybe")][..],
                "HUBSPOT_WEBHOOK_ACCEPT_V1",
            ),
            (&[("HUBSPOT_APP_ID", "app-1")][..], "HUBSPOT_APP_ID"),
            (&[("WEBHOOK_PUBLIC_URL", "crm.example.com")][..], "WEBHOOK_PUBLIC_URL"),
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
            ("WEBHOOK_PUBLIC_URL", "https://crm.example.com/"),
        ])
        .expect("config");
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret-value"), "{debug}");
        assert!(config.accept_v1);
        assert_eq!(config.public_url.as_deref(), Some("https://crm.example.com"));
        assert!(format!("{:?}", config.verifier()).contains("2 redacted"));
    }
}
