//! `POST /webhooks/hubspot`: verify the signature over the public URI HubSpot called, store the batch in the inbox
//! (one statement), answer 2xx, then apply. The same router runs under `crmsync serve` and the hubspot-webhook
//! Lambda.
//!
//! Rejections carry no detail: 401 (unsigned, forged, stale, tampered), 413 (over 1 MiB), 400 (not an array of
//! events); nothing is stored for any of them. HubSpot retries any 4xx/5xx and times out after 5 s
//! (<https://developers.hubspot.com/docs/api/webhooks>), so the answer comes right after the insert (serve), or
//! after an apply bounded by the apply deadline (Lambda).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use crmsync_app::metrics::{
    MetricSet, REASON_DIMENSION, WEBHOOK_EVENTS_ACCEPTED, WEBHOOK_EVENTS_DUPLICATE, WEBHOOK_REQUESTS,
    WEBHOOK_REQUESTS_REJECTED,
};
use crmsync_db::inbox::NewInboxEvent;
use crmsync_domain::webhook::WebhookEvent;
use crmsync_hubspot::signature::{
    HEADER_REQUEST_TIMESTAMP, HEADER_SIGNATURE, HEADER_SIGNATURE_V3, HEADER_SIGNATURE_VERSION, SignedRequest,
};
use serde_json::json;

use super::{ApplyMode, WebhookState};
use crate::error::HttpError;

/// How long after the apply deadline an inline apply is dropped even if PostgreSQL has not answered: the deadline
/// plus this stays inside HubSpot's 5 s.
const HARD_STOP_AFTER_DEADLINE: std::time::Duration = std::time::Duration::from_millis(1_000);

/// The route HubSpot calls.
pub const WEBHOOK_PATH: &str = "/webhooks/hubspot";

/// HubSpot sends at most 100 events per request, a few hundred bytes each: 1 MiB is far above any real batch.
pub const MAX_WEBHOOK_BODY_BYTES: usize = 1024 * 1024;

/// The public URI of the request, when the host environment knows it better than the headers (the Lambda sets
/// it from the API Gateway request context). `WEBHOOK_PUBLIC_URL` still takes precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUri(pub String);

/// The webhook route, with its state. Merge it into the serve router; the Lambda serves it alone.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(WEBHOOK_PATH, post(receive))
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BODY_BYTES))
        .with_state(state)
}

/// The URI HubSpot signed: `WEBHOOK_PUBLIC_URL` + path + query when configured, else the host environment's
/// [`PublicUri`], else `X-Forwarded-Proto` (or `default_scheme`, the listener's) + `://` + `Host` + path + query.
/// The path and query are used exactly as received (still percent-encoded); the verifier decodes HubSpot's list.
pub fn public_uri(
    public_url: Option<&str>,
    from_environment: Option<&PublicUri>,
    headers: &HeaderMap,
    uri: &Uri,
    default_scheme: &str,
) -> Option<String> {
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    if let Some(base) = public_url {
        return Some(format!("{}{path_and_query}", base.trim_end_matches('/')));
    }
    if let Some(PublicUri(uri)) = from_environment {
        return Some(uri.clone());
    }
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(',').next().unwrap_or("").trim())
            .filter(|v| !v.is_empty())
    };
    let scheme = header_text("x-forwarded-proto").unwrap_or(default_scheme);
    let host = header_text(header::HOST.as_str()).or_else(|| uri.authority().map(|a| a.as_str()))?;
    Some(format!("{scheme}://{host}{path_and_query}"))
}

fn unauthorized() -> Response {
    StatusCode::UNAUTHORIZED.into_response()
}

async fn receive(
    State(state): State<WebhookState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    environment_uri: Option<axum::Extension<PublicUri>>,
    body: Bytes,
) -> Response {
    let public = public_uri(
        state.inner.public_url.as_deref(),
        environment_uri.as_ref().map(|e| &e.0),
        &headers,
        &uri,
        state.inner.default_scheme,
    );
    if !public.is_some_and(|public| is_signed(&state, &method, &public, &headers, &body)) {
        emit_rejected("bad_signature");
        return unauthorized();
    }
    let events = match crmsync_domain::webhook::parse_batch(&body) {
        Ok(events) => events,
        Err(error) => {
            emit_rejected("bad_body");
            return HttpError::new(StatusCode::BAD_REQUEST, "invalid_body", error.to_string())
                .with_field(error.field())
                .into_response();
        }
    };
    let stored = match store(&state, &events).await {
        Ok(stored) => stored,
        // HubSpot retries a 5xx; nothing was stored.
        Err(error) => {
            emit_rejected("unavailable");
            return HttpError::from(crmsync_app::AppError::from(error)).into_response();
        }
    };
    tracing::info!(received = events.len(), stored = stored.len(), "webhook batch stored");
    emit_accepted(events.len(), stored.len());
    match state.inner.mode {
        ApplyMode::Inline => apply_inline(&state, &stored).await,
        ApplyMode::Background => state.wake_worker(),
    }
    (
        StatusCode::OK,
        axum::Json(json!({ "received": events.len(), "stored": stored.len() })),
    )
        .into_response()
}

/// The request's metrics: one request refused for `reason` (`bad_signature` is a 401, `bad_body` a 400,
/// `unavailable` a 503).
/// Two documents, since a document's dimensions apply to all its metrics: the request count stays without `Reason`.
fn emit_rejected(reason: &'static str) {
    MetricSet::new().count(WEBHOOK_REQUESTS, 1).emit();
    MetricSet::new()
        .dimension(REASON_DIMENSION, reason)
        .count(WEBHOOK_REQUESTS_REJECTED, 1)
        .emit();
}

/// The request's metrics: its events accepted, and those already stored (re-deliveries).
fn emit_accepted(received: usize, stored: usize) {
    MetricSet::new()
        .count(WEBHOOK_REQUESTS, 1)
        .count(WEBHOOK_EVENTS_ACCEPTED, received as u64)
        .count(WEBHOOK_EVENTS_DUPLICATE, received.saturating_sub(stored) as u64)
        .emit();
}

/// True when the request carries a valid HubSpot signature over `public`, the URI HubSpot called.
fn is_signed(state: &WebhookState, method: &Method, public: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request = SignedRequest {
        method: method.as_str(),
        uri: public,
        body,
        signature_v3: header(HEADER_SIGNATURE_V3),
        timestamp: header(HEADER_REQUEST_TIMESTAMP),
        signature_v1: header(HEADER_SIGNATURE),
        signature_version: header(HEADER_SIGNATURE_VERSION),
    };
    match state
        .inner
        .verifier
        .verify(&request, chrono::Utc::now().timestamp_millis())
    {
        Ok(_) => true,
        Err(error) => {
            // The reason goes to the log for operators, never to the caller.
            tracing::warn!(reason = %error, "webhook request refused");
            false
        }
    }
}

/// Stores a delivery's events in the inbox (one statement; events stored before are skipped) and returns the ids of
/// the rows it stored.
async fn store(
    state: &WebhookState,
    events: &[(WebhookEvent, serde_json::Value)],
) -> Result<Vec<uuid::Uuid>, crmsync_db::DbError> {
    let rows: Vec<NewInboxEvent<'_>> = events
        .iter()
        .map(|(event, raw)| NewInboxEvent {
            portal_id: event.portal_id,
            subscription_id: event.subscription_id,
            event_id: event.event_id,
            occurred_at: event.occurred_at,
            event_type: &event.event_type,
            object_type: event.object.map(|k| k.object_type()),
            object_id: event.object_id.as_deref(),
            payload: raw,
        })
        .collect();
    state.inner.inbox.insert_batch(&rows).await
}

/// Applies the stored events before answering, within the apply deadline. The batch is stored: whatever happens now,
/// the answer is 200 and what did not apply waits in the inbox for the re-apply pass. HubSpot and SQS calls stop at
/// the deadline; the hard stop after it only matters if PostgreSQL itself stalls: the pass's transaction is then
/// dropped, which rolls it back whole.
async fn apply_inline(state: &WebhookState, stored: &[uuid::Uuid]) {
    let deadline = tokio::time::Instant::now() + state.inner.apply_deadline;
    let apply = state.inner.applier.apply_ids_until(stored, deadline);
    match tokio::time::timeout_at(deadline + HARD_STOP_AFTER_DEADLINE, apply).await {
        Ok(Ok(report)) if report.deferred > 0 => {
            tracing::info!(deferred = report.deferred, "webhook events left for the re-apply pass")
        }
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "applying webhook events failed; they stay in the inbox"),
        Err(_) => tracing::warn!("applying webhook events passed the hard stop; they stay in the inbox"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn the_public_url_setting_wins_and_keeps_the_raw_path_and_query() {
        let uri: Uri = "/webhooks/hubspot?portal=62515&name=a%20b%3Ac".parse().unwrap();
        let built = public_uri(
            Some("https://crm.example.com/"),
            Some(&PublicUri("https://ignored".into())),
            &headers(&[("host", "internal:8080")]),
            &uri,
            "http",
        );
        assert_eq!(
            built.as_deref(),
            Some("https://crm.example.com/webhooks/hubspot?portal=62515&name=a%20b%3Ac")
        );
    }

    #[test]
    fn without_the_setting_the_uri_comes_from_forwarded_proto_and_host() {
        let uri: Uri = "/webhooks/hubspot?x=1".parse().unwrap();
        let built = public_uri(
            None,
            None,
            &headers(&[("host", "crm.example.com"), ("x-forwarded-proto", "https, http")]),
            &uri,
            "http",
        );
        assert_eq!(built.as_deref(), Some("https://crm.example.com/webhooks/hubspot?x=1"));
        let built = public_uri(None, None, &headers(&[("host", "127.0.0.1:8080")]), &uri, "http");
        assert_eq!(built.as_deref(), Some("http://127.0.0.1:8080/webhooks/hubspot?x=1"));
        assert_eq!(
            public_uri(None, None, &HeaderMap::new(), &uri, "http"),
            None,
            "no host, no URI"
        );
    }

    #[test]
    fn the_environment_uri_is_used_when_no_setting_is_configured() {
        let uri: Uri = "/webhooks/hubspot".parse().unwrap();
        let environment = PublicUri("https://abc.execute-api.us-east-1.amazonaws.com/webhooks/hubspot?a=%21".into());
        assert_eq!(
            public_uri(None, Some(&environment), &headers(&[("host", "x")]), &uri, "http").as_deref(),
            Some(environment.0.as_str())
        );
    }

    #[test]
    fn a_signature_over_the_encoded_characters_verifies_against_the_rebuilt_uri() {
        use crmsync_hubspot::signature::{Verifier, sign_v3};
        // HubSpot signs the decoded form of its listed escapes; the request arrives percent-encoded.
        let received: Uri =
            "/webhooks/hubspot?redirect=https%3A%2F%2Fx.example%2Fa%40b%21&list=%28a%2Cb%29%3B%2A%24%27&sp=a%20b"
                .parse()
                .unwrap();
        let uri = public_uri(None, None, &headers(&[("host", "crm.example.com")]), &received, "https").unwrap();
        let signed_as =
            "https://crm.example.com/webhooks/hubspot?redirect=https://x.example/a@b!&list=(a,b);*$'&sp=a%20b";
        let signature = sign_v3("secret", "POST", signed_as, b"[]", 1_000);
        let verifier = Verifier::new(["secret".to_owned()], false);
        let request = SignedRequest {
            method: "POST",
            uri: &uri,
            body: b"[]",
            signature_v3: Some(&signature),
            timestamp: Some("1000"),
            signature_v1: None,
            signature_version: None,
        };
        assert!(verifier.verify(&request, 1_000).is_ok());
        // The one escape not on HubSpot's list (%20) must stay encoded: decoding it breaks the signature.
        let wrong = sign_v3("secret", "POST", &signed_as.replace("a%20b", "a b"), b"[]", 1_000);
        let request = SignedRequest {
            signature_v3: Some(&wrong),
            ..request
        };
        assert!(verifier.verify(&request, 1_000).is_err());
    }
}
