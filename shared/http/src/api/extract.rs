//! Request decoding that fails the API's way: a JSON 400 naming the field at fault (via serde_path_to_error), never
//! axum's plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::invalid;
use crate::error::HttpError;

/// The query string decoded into `T`. Unknown parameters are ignored; a malformed one is a 400 naming it.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let field = error.path().to_string();
                let message = format!("{field}: {}", error.inner());
                invalid(&field, message)
            })
    }
}

/// A JSON body decoded into `T`: `Content-Type: application/json` is required (415 otherwise), and a body that is
/// not JSON, or not the expected shape, is a 400 naming the field.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = HttpError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(HttpError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                HttpError::new(
                    rejection.status(),
                    "invalid_body",
                    format!("the body could not be read: {}", rejection.body_text()),
                )
            })?;
        let shape_error = |detail: &dyn std::fmt::Display| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("the body is not a JSON object of the expected shape: {detail}"),
            )
        };
        let mut deserializer = serde_json::Deserializer::from_slice(&bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let path = error.path().to_string();
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() || path == "." {
                shape_error(&inner)
            } else {
                invalid(&path, format!("{path}: {inner}"))
            }
        })?;
        deserializer.end().map_err(|error| shape_error(&error))?;
        Ok(ApiJson(value))
    }
}

/// The `{id}` path parameter as a UUID; anything else is a 400 naming `id`.
#[derive(Debug, Clone, Copy)]
pub struct IdPath(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid("id", "id: must be a UUID"))?;
        parse_uuid("id", &text).map(IdPath)
    }
}

/// Parses a UUID in its hyphenated form, naming `field` when it is not one.
pub fn parse_uuid(field: &str, text: &str) -> Result<Uuid, HttpError> {
    Uuid::try_parse(text).map_err(|_| {
        invalid(
            field,
            format!("{field}: must be a UUID such as 00000000-0000-4000-8000-000000000000"),
        )
    })
}
