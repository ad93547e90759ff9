//! The one bearer check, for every authenticated route (the API's and ingestion's): a bearer token that is either
//! API_TOKEN (compared in constant time) or an HS256 JWT signed with API_JWT_SECRET, as Supabase issues them.
//!
//! A JWT is checked in two steps. Is it genuine (401 otherwise)? An HS256 signature with the secret (whatever the
//! token's header says, so neither `alg: none` nor an algorithm swap gets through; the crate compares in constant
//! time), an `exp` in the future and any `nbf` in the past (30 s of leeway for clock skew), and an issuer of this
//! project: either its Auth server (`iss` = API_JWT_ISSUER, and then `aud` must name API_JWT_AUDIENCE) or its
//! legacy API keys (`iss` `supabase` with `ref` = the project ref; they carry no `aud`). May it use the API (403
//! otherwise)? Only an allow-list: `role` `service_role`, or a signed-in user (`authenticated`) whose email is in
//! API_JWT_ALLOWED_EMAILS or who carries API_JWT_REQUIRED_CLAIM (see [`JwtRules`]). The public `anon` key and any
//! user who merely signed up are refused. Tokens are never logged.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crmsync_app::JwtRules;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use std::sync::Arc;

use crate::error::HttpError;

/// The role that may always use the API: Supabase's service key (and tokens minted for servers).
pub const SERVICE_ROLE: &str = "service_role";

/// The role of a user signed in through Supabase Auth; let in only by the allow-list settings.
pub const USER_ROLE: &str = "authenticated";

/// The `iss` of Supabase's legacy API keys (the `anon` and `service_role` keys).
const API_KEY_ISSUER: &str = "supabase";

/// Who made a request; handlers record it as an activity's `created_by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The shared API_TOKEN.
    ApiToken,
    /// A JWT's subject (a Supabase user id) and role.
    User { subject: Option<String>, role: String },
}

impl Principal {
    /// How the principal is recorded: `api_token`, or `user:<sub>` (`role:<role>` for a token without a subject).
    pub fn label(&self) -> String {
        match self {
            Self::ApiToken => "api_token".to_owned(),
            Self::User {
                subject: Some(subject), ..
            } => format!("user:{subject}"),
            Self::User { subject: None, role } => format!("role:{role}"),
        }
    }
}

/// Why a request was refused. The first ones are a 401 (no valid credential), the last ones a 403 (a genuine
/// token of someone the allow-list does not let in); each message says what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("an Authorization: Bearer <token> header is required")]
    Missing,
    #[error("the bearer token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (its nbf is in the future)")]
    NotYetValid,
    #[error("the token's issuer (iss) is not this project's (API_JWT_ISSUER)")]
    WrongIssuer,
    #[error("the token's audience (aud) is not this API's (API_JWT_AUDIENCE)")]
    WrongAudience,
    #[error("the token's role may not use this API: it accepts service_role, and signed-in users on its allow-list")]
    RoleNotAllowed,
    #[error("signed-in users may not use this API: allow them with API_JWT_ALLOWED_EMAILS or API_JWT_REQUIRED_CLAIM")]
    UsersNotAllowed,
    #[error("this user is not on the API's allow-list (API_JWT_ALLOWED_EMAILS, API_JWT_REQUIRED_CLAIM)")]
    UserNotAllowed,
}

impl AuthFailure {
    /// 401 when the credential is missing or not genuine, 403 when a genuine token's holder is not allowed.
    pub fn status(self) -> StatusCode {
        match self {
            Self::RoleNotAllowed | Self::UsersNotAllowed | Self::UserNotAllowed => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

/// The claims the checks read; `claims` keeps the whole payload for API_JWT_REQUIRED_CLAIM.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    role: Option<String>,
    iss: Option<String>,
    aud: Option<Audience>,
    email: Option<String>,
    #[serde(rename = "ref")]
    project_ref: Option<String>,
}

/// `aud` is a string or a list of strings (RFC 7519 §4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(many) => many.iter().any(|one| one == audience),
        }
    }
}

/// Checks bearer tokens against the configured credentials.
pub struct Authenticator {
    api_token: Option<SecretString>,
    jwt: Option<(DecodingKey, Validation, JwtRules)>,
}

impl Authenticator {
    /// `jwt` is the raw HS256 secret, used as bytes (Supabase's dashboard shows it as text), and the rules a token
    /// must meet.
    pub fn new(api_token: Option<SecretString>, jwt: Option<(&[u8], JwtRules)>) -> Self {
        let jwt = jwt.map(|(secret, rules)| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.algorithms = vec![Algorithm::HS256];
            validation.leeway = 30;
            validation.validate_exp = true;
            validation.validate_nbf = true;
            validation.set_required_spec_claims(&["exp"]);
            // The issuer decides whether an audience is expected (Supabase's API keys carry none): both are
            // checked below, after the signature.
            validation.validate_aud = false;
            (DecodingKey::from_secret(secret), validation, rules)
        });
        Self { api_token, jwt }
    }

    /// Authenticates an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&HeaderValue>) -> Result<Principal, AuthFailure> {
        let token = authorization
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(AuthFailure::Missing)?;
        if let Some(expected) = &self.api_token {
            let expected = expected.expose_secret().as_bytes();
            // The length is compared first: a token's length is not worth protecting, its content is.
            if token.len() == expected.len() && bool::from(token.as_bytes().ct_eq(expected)) {
                return Ok(Principal::ApiToken);
            }
        }
        let Some((key, validation, rules)) = &self.jwt else {
            return Err(AuthFailure::Invalid);
        };
        let payload = jsonwebtoken::decode::<serde_json::Value>(token, key, validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => AuthFailure::Expired,
                ErrorKind::ImmatureSignature => AuthFailure::NotYetValid,
                _ => AuthFailure::Invalid,
            })?
            .claims;
        let claims = Claims::deserialize(&payload).map_err(|_| AuthFailure::Invalid)?;
        check_issuer(&claims, rules)?;
        let role = claims.role.unwrap_or_default();
        let allowed = match role.as_str() {
            SERVICE_ROLE => Ok(()),
            USER_ROLE => check_user(claims.email.as_deref(), &payload, rules),
            _ => Err(AuthFailure::RoleNotAllowed),
        };
        allowed.map(|()| Principal::User {
            subject: claims.sub,
            role,
        })
    }
}

/// The token comes from this project: its Auth server (for this API's audience) or one of its API keys.
fn check_issuer(claims: &Claims, rules: &JwtRules) -> Result<(), AuthFailure> {
    match claims.iss.as_deref().map(|iss| iss.trim_end_matches('/')) {
        Some(iss) if iss == rules.issuer => match &claims.aud {
            Some(aud) if aud.names(&rules.audience) => Ok(()),
            _ => Err(AuthFailure::WrongAudience),
        },
        // A legacy API key names the project by its ref; a self-hosted one (no ref in the issuer) by the secret.
        Some(API_KEY_ISSUER)
            if rules
                .project_ref()
                .is_none_or(|r| claims.project_ref.as_deref() == Some(r)) =>
        {
            Ok(())
        }
        _ => Err(AuthFailure::WrongIssuer),
    }
}

/// A signed-in user gets in by the allow-list: an allowed email, or the required claim.
fn check_user(email: Option<&str>, payload: &serde_json::Value, rules: &JwtRules) -> Result<(), AuthFailure> {
    if rules.allowed_emails.is_empty() && rules.required_claim.is_none() {
        return Err(AuthFailure::UsersNotAllowed);
    }
    let email_allowed = email.is_some_and(|email| rules.allowed_emails.contains(&email.trim().to_lowercase()));
    let claim_met = rules
        .required_claim
        .as_ref()
        .is_some_and(|claim| claim.is_met_by(payload));
    if email_allowed || claim_met {
        Ok(())
    } else {
        Err(AuthFailure::UserNotAllowed)
    }
}

/// Middleware: refuses a request without valid credentials (401, `WWW-Authenticate: Bearer`) or whose token's
/// holder is not allowed (403), and otherwise hands the [`Principal`] to the handler as a request extension.
pub async fn require_auth(State(auth): State<Arc<Authenticator>>, mut request: Request, next: Next) -> Response {
    match auth.authenticate(request.headers().get(header::AUTHORIZATION)) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(failure) => {
            let status = failure.status();
            let code = if status == StatusCode::FORBIDDEN {
                "forbidden"
            } else {
                "unauthorized"
            };
            let mut response = HttpError::new(status, code, failure.to_string()).into_response();
            let challenge = match failure {
                AuthFailure::Missing => "Bearer",
                AuthFailure::Expired => "Bearer error=\"invalid_token\", error_description=\"expired\"",
                _ if status == StatusCode::FORBIDDEN => "Bearer error=\"insufficient_scope\"",
                _ => "Bearer error=\"invalid_token\"",
            };
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_app::config::RequiredClaim;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"super-secret-jwt-token-with-at-least-32-characters";
    const ISSUER: &str = "https://abcdefgh.supabase.co/auth/v1";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn jwt(algorithm: Algorithm, secret: &[u8], claims: &serde_json::Value) -> HeaderValue {
        let token = jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret)).unwrap();
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
    }

    fn rules() -> JwtRules {
        JwtRules {
            allowed_emails: vec!["ada@example.com".into()],
            required_claim: Some(RequiredClaim {
                path: vec!["app_metadata".into(), "crmsync_role".into()],
                value: "sales".into(),
            }),
            ..JwtRules::for_issuer(ISSUER)
        }
    }

    fn authenticator() -> Authenticator {
        Authenticator::new(Some(SecretString::from("the-api-token-0123")), Some((SECRET, rules())))
    }

    /// A session token from the project's Auth server, with `extra` claims merged in (a null removes one).
    fn user_token(extra: serde_json::Value) -> HeaderValue {
        let mut claims = json!({
            "iss": ISSUER, "aud": "authenticated", "sub": "u-1", "role": "authenticated",
            "email": "ada@example.com", "exp": now() + 600,
        });
        let serde_json::Value::Object(extra) = extra else {
            panic!("claims are an object")
        };
        for (key, value) in extra {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(&key);
            } else {
                claims[key] = value;
            }
        }
        jwt(Algorithm::HS256, SECRET, &claims)
    }

    fn authenticate(value: &HeaderValue) -> Result<Principal, AuthFailure> {
        authenticator().authenticate(Some(value))
    }

    #[test]
    fn the_api_token_is_accepted_with_any_case_of_the_bearer_scheme() {
        let auth = authenticator();
        for header in [
            "Bearer the-api-token-0123",
            "bearer the-api-token-0123",
            "BEARER  the-api-token-0123",
        ] {
            let value = HeaderValue::from_static(header);
            assert_eq!(auth.authenticate(Some(&value)), Ok(Principal::ApiToken), "{header}");
        }
    }

    #[test]
    fn missing_and_malformed_headers_are_missing_credentials() {
        let auth = authenticator();
        assert_eq!(auth.authenticate(None), Err(AuthFailure::Missing));
        for header in ["the-api-token-0123", "Basic dXNlcjpwYXNz", "Bearer ", "Bearer"] {
            let value = HeaderValue::from_static(header);
            assert_eq!(auth.authenticate(Some(&value)), Err(AuthFailure::Missing), "{header}");
        }
    }

    #[test]
    fn a_wrong_token_of_the_right_length_is_invalid() {
        let value = HeaderValue::from_static("Bearer the-api-token-0124");
        assert_eq!(authenticate(&value), Err(AuthFailure::Invalid));
    }

    #[test]
    fn an_allowed_user_is_accepted_with_its_subject() {
        let principal = authenticate(&user_token(json!({}))).unwrap();
        assert_eq!(principal.label(), "user:u-1");
        // The email is compared case-insensitively; an audience list naming ours is fine.
        let value = user_token(json!({ "email": "ADA@Example.com", "aud": ["other", "authenticated"] }));
        assert!(authenticate(&value).is_ok());
    }

    #[test]
    fn a_user_carrying_the_required_claim_is_accepted_without_an_allowed_email() {
        let value = user_token(json!({ "email": "bob@example.com", "app_metadata": { "crmsync_role": "sales" } }));
        assert!(authenticate(&value).is_ok());
        let value = user_token(json!({ "email": "bob@example.com", "user_metadata": { "crmsync_role": "sales" } }));
        assert_eq!(authenticate(&value), Err(AuthFailure::UserNotAllowed));
    }

    #[test]
    fn a_user_who_merely_signed_up_is_forbidden() {
        let value = user_token(json!({ "email": "mallory@example.com" }));
        assert_eq!(authenticate(&value), Err(AuthFailure::UserNotAllowed));
        assert_eq!(AuthFailure::UserNotAllowed.status(), StatusCode::FORBIDDEN);
        let no_email = user_token(json!({ "email": null }));
        assert_eq!(authenticate(&no_email), Err(AuthFailure::UserNotAllowed));
        // Without any allow-list setting, no signed-in user gets in, even ada.
        let strict = Authenticator::new(None, Some((SECRET, JwtRules::for_issuer(ISSUER))));
        assert_eq!(
            strict.authenticate(Some(&user_token(json!({})))),
            Err(AuthFailure::UsersNotAllowed)
        );
    }

    #[test]
    fn a_token_from_another_issuer_or_for_another_audience_is_invalid() {
        for iss in [
            json!("https://other.supabase.co/auth/v1"),
            json!(null),
            json!("supabase"),
        ] {
            let value = user_token(json!({ "iss": iss }));
            assert_eq!(authenticate(&value), Err(AuthFailure::WrongIssuer), "{iss}");
        }
        for aud in [json!("anon"), json!(null), json!(["other"])] {
            let value = user_token(json!({ "aud": aud }));
            assert_eq!(authenticate(&value), Err(AuthFailure::WrongAudience), "{aud}");
        }
        assert_eq!(AuthFailure::WrongIssuer.status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn supabases_service_role_key_is_accepted_only_for_this_project() {
        // The legacy service_role key: iss "supabase", the project ref, no aud.
        let key = |project: &str| {
            jwt(
                Algorithm::HS256,
                SECRET,
                &json!({ "iss": "supabase", "ref": project, "role": "service_role", "iat": now(), "exp": now() + 600 }),
            )
        };
        assert_eq!(authenticate(&key("abcdefgh")).unwrap().label(), "role:service_role");
        assert_eq!(authenticate(&key("zzzzzzzz")), Err(AuthFailure::WrongIssuer));
        // A service token from the Auth server itself carries the audience like any other.
        let minted = user_token(json!({ "role": "service_role", "sub": null, "email": null }));
        assert!(authenticate(&minted).is_ok());
        // Self-hosted: no ref in the issuer, so the secret alone binds the key to the project.
        let self_hosted = Authenticator::new(
            None,
            Some((SECRET, JwtRules::for_issuer("https://auth.example.com/auth/v1"))),
        );
        assert!(self_hosted.authenticate(Some(&key("anything"))).is_ok());
    }

    #[test]
    fn the_public_anon_key_and_tokens_without_a_role_are_forbidden() {
        let anon = jwt(
            Algorithm::HS256,
            SECRET,
            &json!({ "iss": "supabase", "ref": "abcdefgh", "role": "anon", "exp": now() + 600 }),
        );
        assert_eq!(authenticate(&anon), Err(AuthFailure::RoleNotAllowed));
        assert_eq!(
            authenticate(&user_token(json!({ "role": null }))),
            Err(AuthFailure::RoleNotAllowed)
        );
        assert_eq!(AuthFailure::RoleNotAllowed.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn an_expired_jwt_is_refused_as_expired() {
        let value = user_token(json!({ "exp": now() - 3600 }));
        assert_eq!(authenticate(&value), Err(AuthFailure::Expired));
    }

    #[test]
    fn a_jwt_not_valid_yet_is_refused_until_its_nbf_with_some_leeway() {
        let value = user_token(json!({ "nbf": now() + 600 }));
        assert_eq!(authenticate(&value), Err(AuthFailure::NotYetValid));
        let value = user_token(json!({ "nbf": now() + 5 }));
        assert!(authenticate(&value).is_ok(), "within the clock-skew leeway");
    }

    #[test]
    fn a_jwt_signed_with_another_secret_is_invalid() {
        let value = jwt(
            Algorithm::HS256,
            b"another-secret-that-is-also-32-characters-long",
            &json!({ "iss": ISSUER, "aud": "authenticated", "role": "service_role", "exp": now() + 600 }),
        );
        assert_eq!(authenticate(&value), Err(AuthFailure::Invalid));
    }

    #[test]
    fn a_jwt_with_another_algorithm_is_invalid_even_with_the_right_secret() {
        let value = jwt(
            Algorithm::HS512,
            SECRET,
            &json!({ "iss": ISSUER, "aud": "authenticated", "role": "service_role", "exp": now() + 600 }),
        );
        assert_eq!(authenticate(&value), Err(AuthFailure::Invalid));
    }

    #[test]
    fn an_unsigned_alg_none_jwt_is_invalid() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = b64.encode(
            json!({ "iss": ISSUER, "aud": "authenticated", "role": "service_role", "exp": now() + 600 }).to_string(),
        );
        let value = HeaderValue::from_str(&format!("Bearer {header}.{claims}.")).unwrap();
        assert_eq!(authenticate(&value), Err(AuthFailure::Invalid));
    }

    #[test]
    fn a_jwt_without_an_expiry_is_invalid() {
        let value = user_token(json!({ "exp": null, "role": "service_role" }));
        assert_eq!(authenticate(&value), Err(AuthFailure::Invalid));
    }

    #[test]
    fn without_a_jwt_secret_only_the_api_token_works() {
        let auth = Authenticator::new(Some(SecretString::from("the-api-token-0123")), None);
        assert_eq!(
            auth.authenticate(Some(&user_token(json!({ "role": "service_role" })))),
            Err(AuthFailure::Invalid)
        );
    }
}
