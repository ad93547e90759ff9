//! The one HTTP error: a status and a JSON body, `{"error": {"code", "message", "field"}}`. Input errors name the
//! field and the reason; anything that is not the caller's doing is a 503 whose cause is logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crmsync_app::AppError;
use serde_json::json;

/// A JSON error answer.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: Option<&str>) -> Self {
        self.field = field.map(str::to_owned);
        self
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "field": self.field } });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<AppError> for HttpError {
    fn from(error: AppError) -> Self {
        match &error {
            AppError::InvalidEvent(domain) => {
                HttpError::new(StatusCode::BAD_REQUEST, "invalid_event", domain.to_string()).with_field(domain.field())
            }
            _ => {
                tracing::error!(error = %error, source = ?std::error::Error::source(&error), "request failed");
                HttpError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service is unavailable; retry later",
                )
            }
        }
    }
}
