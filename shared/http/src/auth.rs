//! The one bearer check, for every authenticated route (the API's and ingestion's): a bearer token that is either
//! API_TOKEN (compared in constant time) or an HS256 JWT signed with API_JWT_SECRET, as Supabase issues them.
//!
//! A JWT must carry `exp` (checked with 30 s of leeway for clock skew) and a `role` of `authenticated` (a signed-in
//! user) or `service_role`. Supabase signs its public `anon` key with the same secret, so a valid signature alone
//! proves nothing: the anon role is refused. Only HS256 is accepted, whatever the token's header says, so neither
//! `alg: none` nor an algorithm swap gets through. Tokens are never logged.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use std::sync::Arc;

use crate::error::HttpError;

/// The JWT roles that may use the API.
pub const ALLOWED_ROLES: [&str; 2] = ["authenticated", "service_role"];

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

/// Why a request was refused; each becomes a 401 whose message says what to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    #[error("an Authorization: Bearer <token> header is required")]
    Missing,
    #[error("the bearer token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token's role may not use this API (it needs authenticated or service_role)")]
    RoleNotAllowed,
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    role: Option<String>,
}

/// Checks bearer tokens against the configured credentials.
pub struct Authenticator {
    api_token: Option<SecretString>,
    jwt: Option<(DecodingKey, Validation)>,
}

impl Authenticator {
    /// `jwt_secret` is the raw HS256 secret, used as bytes (Supabase's dashboard shows it as text).
    pub fn new(api_token: Option<SecretString>, jwt_secret: Option<&[u8]>) -> Self {
        let jwt = jwt_secret.map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.algorithms = vec![Algorithm::HS256];
            validation.leeway = 30;
            validation.validate_exp = true;
            validation.set_required_spec_claims(&["exp"]);
            // Supabase's user tokens carry aud "authenticated" but its service key carries none; the role claim is
            // what distinguishes them, so the audience is not checked.
            validation.validate_aud = false;
            (DecodingKey::from_secret(secret), validation)
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
        let Some((key, validation)) = &self.jwt else {
            return Err(AuthFailure::Invalid);
        };
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => AuthFailure::Expired,
                _ => AuthFailure::Invalid,
            })?
            .claims;
        match claims.role {
            Some(role) if ALLOWED_ROLES.contains(&role.as_str()) => Ok(Principal::User {
                subject: claims.sub,
                role,
            }),
            _ => Err(AuthFailure::RoleNotAllowed),
        }
    }
}

/// Middleware: refuses a request without valid credentials (401, `WWW-Authenticate: Bearer`), and otherwise hands
/// the [`Principal`] to the handler as a request extension.
pub async fn require_auth(State(auth): State<Arc<Authenticator>>, mut request: Request, next: Next) -> Response {
    match auth.authenticate(request.headers().get(header::AUTHORIZATION)) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(failure) => {
            let mut response =
                HttpError::new(StatusCode::UNAUTHORIZED, "unauthorized", failure.to_string()).into_response();
            let challenge = match failure {
                AuthFailure::Missing => "Bearer",
                AuthFailure::Invalid | AuthFailure::RoleNotAllowed => "Bearer error=\"invalid_token\"",
                AuthFailure::Expired => "Bearer error=\"invalid_token\", error_description=\"expired\"",
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
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"super-secret-jwt-token-with-at-least-32-characters";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn jwt(algorithm: Algorithm, secret: &[u8], claims: &serde_json::Value) -> HeaderValue {
        let token = jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret)).unwrap();
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
    }

    fn authenticator() -> Authenticator {
        Authenticator::new(Some(SecretString::from("the-api-token-0123")), Some(SECRET))
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
        assert_eq!(authenticator().authenticate(Some(&value)), Err(AuthFailure::Invalid));
    }

    #[test]
    fn a_supabase_user_jwt_is_accepted_with_its_subject() {
        let value = jwt(
            Algorithm::HS256,
            SECRET,
            &json!({ "sub": "u-1", "role": "authenticated", "aud": "authenticated", "exp": now() + 600 }),
        );
        let principal = authenticator().authenticate(Some(&value)).unwrap();
        assert_eq!(principal.label(), "user:u-1");
    }

    #[test]
    fn an_expired_jwt_is_refused_as_expired() {
        let value = jwt(
            Algorithm::HS256,
            SECRET,
            &json!({ "sub": "u-1", "role": "authenticated", "exp": now() - 3600 }),
        );
        assert_eq!(authenticator().authenticate(Some(&value)), Err(AuthFailure::Expired));
    }

    #[test]
    fn a_jwt_signed_with_another_secret_is_invalid() {
        let value = jwt(
            Algorithm::HS256,
            b"another-secret-that-is-also-32-characters-long",
            &json!({ "role": "authenticated", "exp": now() + 600 }),
        );
        assert_eq!(authenticator().authenticate(Some(&value)), Err(AuthFailure::Invalid));
    }

    #[test]
    fn a_jwt_with_another_algorithm_is_invalid_even_with_the_right_secret() {
        let value = jwt(
            Algorithm::HS512,
            SECRET,
            &json!({ "role": "authenticated", "exp": now() + 600 }),
        );
        assert_eq!(authenticator().authenticate(Some(&value)), Err(AuthFailure::Invalid));
    }

    #[test]
    fn an_unsigned_alg_none_jwt_is_invalid() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = b64.encode(json!({ "role": "service_role", "exp": now() + 600 }).to_string());
        let value = HeaderValue::from_str(&format!("Bearer {header}.{claims}.")).unwrap();
        assert_eq!(authenticator().authenticate(Some(&value)), Err(AuthFailure::Invalid));
    }

    #[test]
    fn the_public_anon_role_and_tokens_without_a_role_are_refused() {
        for claims in [
            json!({ "role": "anon", "exp": now() + 600 }),
            json!({ "sub": "u-1", "exp": now() + 600 }),
        ] {
            let value = jwt(Algorithm::HS256, SECRET, &claims);
            assert_eq!(
                authenticator().authenticate(Some(&value)),
                Err(AuthFailure::RoleNotAllowed)
            );
        }
    }

    #[test]
    fn a_jwt_without_an_expiry_is_invalid() {
        let value = jwt(Algorithm::HS256, SECRET, &json!({ "role": "service_role" }));
        assert_eq!(authenticator().authenticate(Some(&value)), Err(AuthFailure::Invalid));
    }

    #[test]
    fn without_a_jwt_secret_only_the_api_token_works() {
        let auth = Authenticator::new(Some(SecretString::from("the-api-token-0123")), None);
        let value = jwt(
            Algorithm::HS256,
            SECRET,
            &json!({ "role": "authenticated", "exp": now() + 600 }),
        );
        assert_eq!(auth.authenticate(Some(&value)), Err(AuthFailure::Invalid));
    }
}
