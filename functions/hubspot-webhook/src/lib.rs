//! The hubspot-webhook Lambda: `POST /webhooks/hubspot` behind an API Gateway HTTP API. It serves the very router
//! `crmsync serve` mounts; the only Lambda-specific part is where the signed URI comes from.
//!
//! lambda_http rebuilds the request URI through a URL parser, which may re-encode it; HubSpot signed the URI it
//! called. So the URI is rebuilt here from the API Gateway request context's domain name, the raw path and the
//! raw query string (<https://developers.hubspot.com/docs/api/webhooks/validating-requests>).

use axum::Router;
use axum::extract::Request;
use crmsync_http::webhook::{PublicUri, WebhookState, router};
use lambda_http::RequestExt;
use lambda_http::request::RequestContext;

/// The function's router: the shared webhook router, with the public URI taken from the request context.
pub fn app(state: WebhookState) -> Router {
    router(state).layer(axum::middleware::map_request(with_public_uri))
}

async fn with_public_uri(mut request: Request) -> Request {
    if let Some(uri) = lambda_public_uri(&request) {
        request.extensions_mut().insert(uri);
    }
    request
}

/// `https://{requestContext.domainName}{rawPath}[?{rawQueryString}]`, for API Gateway HTTP API (v2) and REST (v1)
/// events; `None` outside Lambda (then the Host header is used).
pub fn lambda_public_uri<B>(request: &lambda_http::http::Request<B>) -> Option<PublicUri> {
    let domain = match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(context) => context.domain_name.clone()?,
        RequestContext::ApiGatewayV1(context) => context.domain_name.clone()?,
        _ => return None,
    };
    let raw_path = request.raw_http_path();
    let path = if raw_path.is_empty() {
        request.uri().path()
    } else {
        raw_path
    };
    let query = request.uri().query().filter(|q| !q.is_empty());
    Some(PublicUri(match query {
        Some(query) => format!("https://{domain}{path}?{query}"),
        None => format!("https://{domain}{path}"),
    }))
}
