//! The crate's error enum (`SimError`) and HubSpot-shaped HTTP error answers (`SimErrorResponse`).
//!
//! Error body shape: <https://developers.hubspot.com/docs/api-reference/error-handling>
//! `{"status":"error","message":…,"correlationId":…,"category":…,"errors":[…],"context":{…}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Failures of the simulator itself (not of the requests it answers).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("configuration {name}: {reason}")]
    Config { name: String, reason: String },
    #[error("binding the simulator to {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for ctrl-c: {0}")]
    Signal(#[source] std::io::Error),
    #[error("building the webhook HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// One invalid property, rendered the way HubSpot lists them inside
/// "Property values were not valid: [...]".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyError {
    pub name: String,
    /// HubSpot's error code, e.g. `PROPERTY_DOESNT_EXIST`, `INVALID_DATE`.
    pub code: &'static str,
    pub message: String,
}

impl PropertyError {
    pub fn new(name: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            code,
            message: message.into(),
        }
    }

    /// HubSpot's field order (`isValid`, `message`, `error`, `name`), which a `json!` map would sort.
    fn listed(&self) -> String {
        format!(
            r#"{{"isValid":false,"message":{},"error":{},"name":{}}}"#,
            Value::from(self.message.as_str()),
            Value::from(self.code),
            Value::from(self.name.as_str())
        )
    }
}

/// An HTTP error answer with HubSpot's body.
#[derive(Debug, Clone)]
pub struct SimErrorResponse {
    pub status: StatusCode,
    pub body: Value,
}

impl SimErrorResponse {
    /// `{"status":"error","message","correlationId","category"}`.
    pub fn new(status: StatusCode, category: &str, message: impl Into<String>) -> Self {
        let body = json!({
            "status": "error",
            "message": message.into(),
            "correlationId": uuid::Uuid::new_v4().to_string(),
            "category": category,
        });
        Self { status, body }
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "OBJECT_NOT_FOUND", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// HubSpot's answer to invalid property values: the list is JSON inside the message (as
    /// HubSpot sends it), and also structured in `errors` for clients that prefer it.
    pub fn invalid_properties(errors: &[PropertyError]) -> Self {
        let listed: Vec<String> = errors.iter().map(PropertyError::listed).collect();
        let message = format!("Property values were not valid: [{}]", listed.join(","));
        let details: Vec<Value> = errors
            .iter()
            .map(|e| json!({"message": e.message, "code": e.code, "context": {"propertyName": [e.name]}}))
            .collect();
        Self::validation(message).with("errors", Value::Array(details))
    }

    /// HubSpot's 401 for a missing or wrong bearer token.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more \
             details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }

    /// Adds or replaces a top-level body field.
    pub fn with(mut self, key: &str, value: Value) -> Self {
        if let Some(map) = self.body.as_object_mut() {
            map.insert(key.to_string(), value);
        }
        self
    }

    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }

    pub fn category(&self) -> &str {
        self.body["category"].as_str().unwrap_or_default()
    }
}

impl IntoResponse for SimErrorResponse {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_properties_embed_hubspots_list_in_the_message() {
        let err = SimErrorResponse::invalid_properties(&[PropertyError::new(
            "closedate",
            "INVALID_DATE",
            "1635535135865 is at 19:18:55.865 UTC, not midnight!",
        )]);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.category(), "VALIDATION_ERROR");
        assert_eq!(
            err.message(),
            r#"Property values were not valid: [{"isValid":false,"message":"1635535135865 is at 19:18:55.865 UTC, not midnight!","error":"INVALID_DATE","name":"closedate"}]"#
        );
        assert_eq!(err.body["errors"][0]["context"]["propertyName"][0], "closedate");
        assert!(err.body["correlationId"].as_str().is_some_and(|id| id.len() == 36));
    }
}
