//! The API section: the dashboard REST API's credentials and the browser origins allowed to call it.

use secrecy::SecretString;

use crate::AppError;

/// The API's settings, read once from the environment at start-up.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `API_TOKEN`: a shared bearer token (at least 16 characters).
    pub api_token: Option<SecretString>,
    /// `API_JWT_SECRET`: the HS256 secret JWTs are signed with (Supabase's JWT secret; at least 32 characters).
    pub jwt_secret: Option<SecretString>,
    /// `API_CORS_ORIGINS`: comma-separated origins (`https://crm.example.com`) allowed to call the API from a
    /// browser. Empty: no CORS headers, so only the dashboard served by the API itself (same origin) can call it.
    pub cors_origins: Vec<String>,
}

impl ApiConfig {
    /// Reads the section through `lookup`; a secret that is set must be long enough. Whether any is set is checked
    /// by [`ApiConfig::require_credentials`] where the API is served, so entry points without it still start.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, AppError> {
        let secret = |variable: &'static str, min_chars: usize| -> Result<Option<SecretString>, AppError> {
            match lookup(variable).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(value) if value.chars().count() < min_chars => Err(AppError::Config {
                    variable,
                    reason: format!("must be at least {min_chars} characters long"),
                }),
                Some(value) => Ok(Some(SecretString::from(value))),
            }
        };
        let api_token = secret("API_TOKEN", 16)?;
        let jwt_secret = secret("API_JWT_SECRET", 32)?;
        let cors_origins = lookup("API_CORS_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(parse_origin)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            api_token,
            jwt_secret,
            cors_origins,
        })
    }

    /// The API has no anonymous access: at least one of API_TOKEN and API_JWT_SECRET must be set where it is served.
    pub fn require_credentials(&self) -> Result<(), AppError> {
        if self.api_token.is_none() && self.jwt_secret.is_none() {
            return Err(AppError::Config {
                variable: "API_TOKEN",
                reason: "is not set, and neither is API_JWT_SECRET: the API needs at least one".into(),
            });
        }
        Ok(())
    }

    /// Settings with just an API token (tests, the local server).
    pub fn with_token(token: impl Into<String>) -> Self {
        Self {
            api_token: Some(SecretString::from(token.into())),
            jwt_secret: None,
            cors_origins: Vec::new(),
        }
    }
}

fn parse_origin(origin: &str) -> Result<String, AppError> {
    let invalid = |reason: &str| AppError::Config {
        variable: "API_CORS_ORIGINS",
        reason: format!("{origin:?} {reason}"),
    };
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| invalid("must start with https:// or http://"))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(invalid("must be an origin: a scheme and a host (and port), no path"));
    }
    if origin.bytes().all(|b| b == b'\t' || (b >= 32 && b != 127)) {
        Ok(origin.to_owned())
    } else {
        Err(invalid("is not a valid header value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<ApiConfig, AppError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ApiConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_api_refuses_to_start_without_any_credential() {
        let error = config(&[]).unwrap().require_credentials().unwrap_err().to_string();
        assert!(
            error.contains("API_TOKEN") && error.contains("API_JWT_SECRET"),
            "{error}"
        );
    }

    #[test]
    fn short_secrets_are_refused_with_the_variable_name() {
        let error = config(&[("API_TOKEN", "short")]).unwrap_err().to_string();
        assert!(error.contains("API_TOKEN must be at least 16"), "{error}");
        let error = config(&[("API_JWT_SECRET", "0123456789")]).unwrap_err().to_string();
        assert!(error.contains("API_JWT_SECRET must be at least 32"), "{error}");
    }

    #[test]
    fn cors_origins_are_a_comma_separated_list_of_origins() {
        let ok = config(&[
            ("API_TOKEN", "0123456789abcdef"),
            ("API_CORS_ORIGINS", "https://crm.example.com, http://localhost:5173"),
        ])
        .unwrap();
        assert_eq!(ok.cors_origins, ["https://crm.example.com", "http://localhost:5173"]);
        ok.require_credentials().expect("a token is enough");
        for bad in ["crm.example.com", "https://crm.example.com/app", "*"] {
            let error = config(&[("API_TOKEN", "0123456789abcdef"), ("API_CORS_ORIGINS", bad)]).unwrap_err();
            assert!(error.to_string().contains("API_CORS_ORIGINS"), "{bad}: {error}");
        }
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let config = config(&[
            ("API_TOKEN", "token-abcdefghijkl"),
            ("API_JWT_SECRET", "jwt-secret-0123456789abcdefghijklmnop"),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("token-abc") && !debug.contains("jwt-secret"), "{debug}");
    }
}
