//! The API section: the dashboard REST API's credentials, the rules a JWT must meet (its issuer and audience, and
//! the allow-list of who may use the API), and the browser origins allowed to call it.

use secrecy::SecretString;

use crate::AppError;

/// The API's settings, read once from the environment at start-up.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `API_TOKEN`: a shared bearer token (at least 16 characters).
    pub api_token: Option<SecretString>,
    /// `API_JWT_SECRET`: the HS256 secret JWTs are signed with (Supabase's JWT secret; at least 32 characters).
    pub jwt_secret: Option<SecretString>,
    /// What a JWT must carry besides a valid signature (read only when `API_JWT_SECRET` is set).
    pub jwt_rules: JwtRules,
    /// `API_CORS_ORIGINS`: comma-separated origins (`https://crm.example.com`) allowed to call the API from a
    /// browser. Empty: no CORS headers, so only the dashboard served by the API itself (same origin) can call it.
    pub cors_origins: Vec<String>,
}

/// What a JWT signed with `API_JWT_SECRET` must carry to be let in.
///
/// Supabase signs two kinds of token with the project's secret: its Auth server's session tokens (`iss` the
/// project's auth URL, `aud` `authenticated`, `role` `authenticated`, `email`, `app_metadata`) and its legacy API
/// keys, the public `anon` key and the `service_role` key (`iss` `supabase`, `ref` the project ref, `role`, and no
/// `aud`). A token whose `iss` is neither is refused, and so is a session token for another audience. Then the
/// allow-list: `service_role` always; a signed-in user only when [`JwtRules::allowed_emails`] lists their email or
/// they carry [`JwtRules::required_claim`]. Without either setting no user token gets in: on a project that allows
/// sign-up (Supabase's default) anyone can get one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRules {
    /// `API_JWT_ISSUER` (required with `API_JWT_SECRET`): the project's auth URL, `https://<ref>.supabase.co/auth/v1`.
    pub issuer: String,
    /// `API_JWT_AUDIENCE` (default `authenticated`): the `aud` a session token must name.
    pub audience: String,
    /// `API_JWT_ALLOWED_EMAILS`: comma-separated emails (compared case-insensitively, stored lowercase) of users
    /// let in. Safe only when the project confirms emails before sign-in (Supabase's "Confirm email", on by default).
    pub allowed_emails: Vec<String>,
    /// `API_JWT_REQUIRED_CLAIM`: `path.to.claim=value`: users whose token carries this value (or a list holding
    /// it) are let in. Use `app_metadata.*`: only the service role can set it, unlike `user_metadata`.
    pub required_claim: Option<RequiredClaim>,
}

impl JwtRules {
    /// The Supabase project ref in the issuer (`abcd` in `https://abcd.supabase.co/auth/v1`), which the project's
    /// API keys carry as `ref`; `None` for an issuer elsewhere (self-hosted).
    pub fn project_ref(&self) -> Option<&str> {
        let host = self.issuer.split_once("://")?.1.split('/').next()?;
        host.strip_suffix(".supabase.co")
            .filter(|r| !r.is_empty() && !r.contains('.'))
    }

    /// Rules for an issuer with the defaults otherwise (tests, the local server).
    pub fn for_issuer(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: DEFAULT_JWT_AUDIENCE.to_owned(),
            allowed_emails: Vec::new(),
            required_claim: None,
        }
    }
}

/// The default of `API_JWT_AUDIENCE`: the `aud` Supabase Auth puts in its session tokens.
pub const DEFAULT_JWT_AUDIENCE: &str = "authenticated";

/// A claim a user's token must carry: the path of object keys to it and the value it must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredClaim {
    pub path: Vec<String>,
    pub value: String,
}

impl RequiredClaim {
    /// True when the claims hold `value` at `path`: as a string, or as an element of a list of strings.
    pub fn is_met_by(&self, claims: &serde_json::Value) -> bool {
        let found = self.path.iter().try_fold(claims, |node, key| node.get(key));
        match found {
            Some(serde_json::Value::String(text)) => *text == self.value,
            Some(serde_json::Value::Array(items)) => items.iter().any(|item| item.as_str() == Some(&self.value)),
            _ => false,
        }
    }
}

impl std::fmt::Display for RequiredClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.path.join("."), self.value)
    }
}

fn parse_required_claim(text: &str) -> Result<RequiredClaim, AppError> {
    let invalid = || AppError::Config {
        variable: "API_JWT_REQUIRED_CLAIM",
        reason: format!("must be path.to.claim=value (e.g. app_metadata.crmsync_role=sales), not {text:?}"),
    };
    let (path, value) = text.split_once('=').ok_or_else(invalid)?;
    let path: Vec<String> = path.trim().split('.').map(str::to_owned).collect();
    if path.iter().any(|key| key.is_empty()) || value.trim().is_empty() {
        return Err(invalid());
    }
    Ok(RequiredClaim {
        path,
        value: value.trim().to_owned(),
    })
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
        let text = |name: &str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let issuer = text("API_JWT_ISSUER").map(|issuer| issuer.trim_end_matches('/').to_owned());
        if let Some(issuer) = &issuer
            && !(issuer.starts_with("https://") || issuer.starts_with("http://"))
        {
            return Err(AppError::Config {
                variable: "API_JWT_ISSUER",
                reason: format!("must be the project's auth URL (https://<ref>.supabase.co/auth/v1), not {issuer:?}"),
            });
        }
        if jwt_secret.is_some() && issuer.is_none() {
            return Err(AppError::Config {
                variable: "API_JWT_ISSUER",
                reason: "must be set with API_JWT_SECRET: the project's auth URL, https://<ref>.supabase.co/auth/v1 \
                         (a token from another issuer is refused)"
                    .into(),
            });
        }
        let allowed_emails = text("API_JWT_ALLOWED_EMAILS")
            .unwrap_or_default()
            .split(',')
            .map(|email| email.trim().to_lowercase())
            .filter(|email| !email.is_empty())
            .map(|email| {
                if email.contains('@') && !email.contains(char::is_whitespace) {
                    Ok(email)
                } else {
                    Err(AppError::Config {
                        variable: "API_JWT_ALLOWED_EMAILS",
                        reason: format!("{email:?} is not an email address"),
                    })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let jwt_rules = JwtRules {
            issuer: issuer.unwrap_or_default(),
            audience: text("API_JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_JWT_AUDIENCE.to_owned()),
            allowed_emails,
            required_claim: text("API_JWT_REQUIRED_CLAIM")
                .map(|claim| parse_required_claim(&claim))
                .transpose()?,
        };
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
            jwt_rules,
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
            jwt_rules: JwtRules::for_issuer(""),
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

    const SECRET: (&str, &str) = ("API_JWT_SECRET", "jwt-secret-0123456789abcdefghijklmnop");
    const ISSUER: (&str, &str) = ("API_JWT_ISSUER", "https://abcdefgh.supabase.co/auth/v1/");

    #[test]
    fn a_jwt_secret_needs_the_issuer() {
        let error = config(&[SECRET]).unwrap_err().to_string();
        assert!(
            error.contains("API_JWT_ISSUER must be set with API_JWT_SECRET"),
            "{error}"
        );
        let error = config(&[SECRET, ("API_JWT_ISSUER", "abcdefgh.supabase.co")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("API_JWT_ISSUER must be the project's auth URL"),
            "{error}"
        );
    }

    #[test]
    fn the_jwt_rules_default_to_service_role_only_with_supabases_audience() {
        let rules = config(&[SECRET, ISSUER]).unwrap().jwt_rules;
        assert_eq!(rules.issuer, "https://abcdefgh.supabase.co/auth/v1");
        assert_eq!(rules.project_ref(), Some("abcdefgh"));
        assert_eq!(rules.audience, "authenticated");
        assert!(rules.allowed_emails.is_empty() && rules.required_claim.is_none());
        let self_hosted = JwtRules::for_issuer("https://auth.example.com/auth/v1");
        assert_eq!(self_hosted.project_ref(), None);
    }

    #[test]
    fn the_allow_list_settings_are_parsed_and_bad_ones_named() {
        let rules = config(&[
            SECRET,
            ISSUER,
            ("API_JWT_AUDIENCE", "crm"),
            ("API_JWT_ALLOWED_EMAILS", " Ada@Example.com, bob@example.com ,"),
            ("API_JWT_REQUIRED_CLAIM", "app_metadata.crmsync_role=sales"),
        ])
        .unwrap()
        .jwt_rules;
        assert_eq!(rules.audience, "crm");
        assert_eq!(rules.allowed_emails, ["ada@example.com", "bob@example.com"]);
        let claim = rules.required_claim.unwrap();
        assert_eq!(claim.to_string(), "app_metadata.crmsync_role=sales");
        assert!(claim.is_met_by(&serde_json::json!({ "app_metadata": { "crmsync_role": "sales" } })));
        assert!(claim.is_met_by(&serde_json::json!({ "app_metadata": { "crmsync_role": ["ops", "sales"] } })));
        assert!(!claim.is_met_by(&serde_json::json!({ "app_metadata": { "crmsync_role": "ops" } })));
        assert!(!claim.is_met_by(&serde_json::json!({ "user_metadata": { "crmsync_role": "sales" } })));
        for (variable, bad) in [
            ("API_JWT_ALLOWED_EMAILS", "ada@example.com, not-an-email"),
            ("API_JWT_REQUIRED_CLAIM", "app_metadata.crmsync_role"),
            ("API_JWT_REQUIRED_CLAIM", "app_metadata..role=sales"),
            ("API_JWT_REQUIRED_CLAIM", "app_metadata.role="),
        ] {
            let error = config(&[SECRET, ISSUER, (variable, bad)]).unwrap_err().to_string();
            assert!(error.contains(&format!("{variable} ")), "{bad}: {error}");
        }
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
            ("API_JWT_ISSUER", "https://abcdefgh.supabase.co/auth/v1"),
        ])
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("token-abc") && !debug.contains("jwt-secret"), "{debug}");
    }
}
