//! Request extractors that answer malformed input the way HubSpot does (a JSON error body), not
//! with axum's plain-text rejections: path parameters (with API version check), query lists and
//! JSON bodies.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::error::SimErrorResponse;
use crate::model::{ObjectType, SimObjectType as _, iso, now};

/// Path parameters by name. Routes use `version` for the date-versioned paths
/// (`/crm/objects/{version}/…`), which must look like `2026-03` (optionally `-beta`).
#[derive(Debug, Clone)]
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = SimErrorResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, SimErrorResponse> {
        let Path(map) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| SimErrorResponse::validation(format!("bad path: {e}")))?;
        if let Some(version) = map.get("version")
            && !is_date_version(version)
        {
            return Err(SimErrorResponse::new(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                format!("Unknown API version {version:?}; date versions look like 2026-03"),
            ));
        }
        Ok(Self(map))
    }
}

fn is_date_version(text: &str) -> bool {
    let base = text.strip_suffix("-beta").unwrap_or(text);
    let bytes = base.as_bytes();
    bytes.len() == 7 && bytes[4] == b'-' && bytes.iter().enumerate().all(|(i, b)| i == 4 || b.is_ascii_digit())
}

impl Params {
    pub fn text(&self, key: &str) -> Result<String, SimErrorResponse> {
        self.0
            .get(key)
            .cloned()
            .ok_or_else(|| SimErrorResponse::validation(format!("missing path parameter {key}")))
    }

    pub fn object_type(&self, key: &str) -> Result<ObjectType, SimErrorResponse> {
        let text = self.text(key)?;
        ObjectType::parse(&text)
            .ok_or_else(|| SimErrorResponse::validation(format!("Unable to infer object type from: {text}")))
    }

    /// The `{from_object_type}` and `{to_object_type}` of an association path.
    pub fn association_types(&self) -> Result<(ObjectType, ObjectType), SimErrorResponse> {
        Ok((
            self.object_type("from_object_type")?,
            self.object_type("to_object_type")?,
        ))
    }

    /// Whether the request used a date-versioned path rather than v3/v4.
    pub fn is_dated(&self) -> bool {
        self.0.contains_key("version")
    }
}

/// Query parameters in order, repeated names kept (`properties=a&properties=b`).
#[derive(Debug, Clone, Default)]
pub struct QueryList(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryList {
    type Rejection = SimErrorResponse;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, SimErrorResponse> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| SimErrorResponse::validation(format!("bad query string: {e}")))?;
        Ok(Self(pairs))
    }
}

impl QueryList {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, comma lists split.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    pub fn flag(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// A JSON body; malformed JSON is a 400 VALIDATION_ERROR like HubSpot's "Invalid input JSON".
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = SimErrorResponse;

    async fn from_request(req: Request, state: &S) -> Result<Self, SimErrorResponse> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| SimErrorResponse::validation(format!("could not read the request body: {e}")))?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text).map(JsonBody).map_err(|e| {
            SimErrorResponse::validation(format!(
                "Invalid input JSON on line {}, column {}: {e}",
                e.line(),
                e.column()
            ))
        })
    }
}

/// A batch answer: `success` when every input worked, 207 Multi-Status with `numErrors` and
/// `errors` otherwise (<https://developers.hubspot.com/docs/api-reference/error-handling>).
pub fn batch_answer(success: StatusCode, results: Vec<Value>, errors: Vec<Value>, started_at: String) -> Response {
    let status = if errors.is_empty() {
        success
    } else {
        StatusCode::MULTI_STATUS
    };
    let mut body = json!({"status": "COMPLETE", "completedAt": iso(now())});
    body["results"] = Value::Array(results);
    body["startedAt"] = Value::String(started_at);
    if !errors.is_empty() {
        body["numErrors"] = json!(errors.len());
        body["errors"] = Value::Array(errors);
    }
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_versions_are_recognised() {
        assert!(is_date_version("2026-03"));
        assert!(is_date_version("2026-09-beta"));
        assert!(!is_date_version("v3"));
        assert!(!is_date_version("2026-3"));
    }
}
