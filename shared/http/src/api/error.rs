//! How the API's failures become [`HttpError`]s, so `?` works on database and pool errors: input errors name the
//! field and the reason, conflicts and missing references say which field, and database trouble is a 503 that shows
//! no internals (it is logged with its cause instead).

use axum::http::StatusCode;
use crmsync_db::DbError;
use crmsync_db::crm::violated_constraint;
use tokio_postgres::error::SqlState;

use crate::error::HttpError;

/// A 400 for a field's value.
pub fn invalid(field: &str, message: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::BAD_REQUEST, "invalid_parameter", message).with_field(Some(field))
}

/// A 404 for a resource (`field` is the path parameter or body field that named it).
pub fn not_found(field: &str, message: impl Into<String>) -> HttpError {
    HttpError::new(StatusCode::NOT_FOUND, "not_found", message).with_field(Some(field))
}

/// The error a database failure becomes. Constraint violations are the caller's doing (a duplicate, a reference to
/// nothing, a value a CHECK refuses) and say so with the field; anything else is a 503 to retry.
pub fn from_db(error: &DbError) -> HttpError {
    let state = error.sqlstate().cloned();
    let constraint = violated_constraint(error).map(str::to_owned);
    match (state, constraint.as_deref()) {
        (Some(state), Some("contacts_email_key")) if state == SqlState::UNIQUE_VIOLATION => HttpError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a contact with this email address already exists",
        )
        .with_field(Some("email")),
        (Some(state), constraint) if state == SqlState::UNIQUE_VIOLATION => {
            HttpError::new(StatusCode::CONFLICT, "conflict", "this record already exists")
                .with_field(constraint.and_then(field_of_constraint).as_deref())
        }
        (Some(state), Some(constraint)) if state == SqlState::FOREIGN_KEY_VIOLATION => {
            let field = field_of_constraint(constraint).unwrap_or_else(|| constraint.to_owned());
            let entity = field.strip_suffix("_id").unwrap_or(&field).to_owned();
            not_found(&field, format!("{field}: no {entity} with this id exists"))
        }
        (Some(state), constraint) if state.code().starts_with("23") || state.code().starts_with("22") => {
            let field = constraint.and_then(field_of_constraint);
            HttpError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                match &field {
                    Some(field) => format!("{field}: the value is not allowed"),
                    None => "a value is not allowed".to_owned(),
                },
            )
            .with_field(field.as_deref())
        }
        _ => unavailable(error),
    }
}

/// A 503 for a failure that is not the caller's fault; the cause is logged, never shown.
pub fn unavailable(error: &(dyn std::error::Error + 'static)) -> HttpError {
    tracing::error!(error = %error, source = ?error.source(), "API request failed");
    HttpError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the service is unavailable; retry later",
    )
}

impl From<DbError> for HttpError {
    fn from(error: DbError) -> Self {
        from_db(&error)
    }
}

/// `activities_deal_id_fkey` → `deal_id`; `contacts_email_key` → `email`; `deals_stage_check` → `stage`.
fn field_of_constraint(constraint: &str) -> Option<String> {
    let rest = ["sync_queue_", "activities_", "companies_", "contacts_", "deals_"]
        .iter()
        .find_map(|table| constraint.strip_prefix(table))?;
    let field = ["_fkey", "_key", "_check"]
        .iter()
        .find_map(|suffix| rest.strip_suffix(suffix))?;
    (!field.is_empty()).then(|| field.to_owned())
}

#[cfg(test)]
mod tests {
    use super::field_of_constraint;

    #[test]
    fn constraint_names_give_their_field() {
        assert_eq!(
            field_of_constraint("activities_deal_id_fkey").as_deref(),
            Some("deal_id")
        );
        assert_eq!(field_of_constraint("contacts_email_key").as_deref(), Some("email"));
        assert_eq!(
            field_of_constraint("deals_closed_at_check").as_deref(),
            Some("closed_at")
        );
        assert_eq!(
            field_of_constraint("sync_queue_entity_type_check").as_deref(),
            Some("entity_type")
        );
        assert_eq!(field_of_constraint("odd"), None);
    }
}
