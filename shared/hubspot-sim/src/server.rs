//! Serving the simulator: the route table (v3/v4 and date-versioned paths), the gate every API
//! request passes (bearer token, limits, faults, request counting), and an accept loop that
//! serves each connection in its own task so a "drop after write" fault can close the socket
//! without sending a single response byte.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::Service;

use crate::config::{FaultConfig, FaultKind, SimConfig, WebhookTarget};
use crate::error::SimErrorResponse;
use crate::limits::{Admission, apply_headers};
use crate::state::{Sim, lock};
use crate::{SimError, admin, associations, faults, objects, owners, pipelines, properties, search};

/// Put on each request by the accept loop; notifying it closes the request's connection.
#[derive(Clone)]
struct DropConnection(Arc<Notify>);

/// Entry points: start a simulator on a socket, or build its router.
pub struct HubSpotSim;

impl HubSpotSim {
    /// Binds `bind` (use port 0 for an ephemeral port) and serves until the returned
    /// [`RunningSim`] is stopped or dropped. Must be called inside a Tokio runtime.
    pub async fn start(config: SimConfig, bind: SocketAddr) -> Result<RunningSim, SimError> {
        let listener = TcpListener::bind(bind)
            .await
            .map_err(|source| SimError::Bind { addr: bind, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr: bind, source })?;
        let sim = Sim::new(config)?;
        let app = router(sim.clone());
        let (shutdown, watch_shutdown) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, app, watch_shutdown));
        Ok(RunningSim {
            addr,
            sim,
            shutdown,
            task: Some(task),
        })
    }

    /// The simulator as an axum router with fresh state, for serving it some other way. Call
    /// inside a Tokio runtime (the webhook worker is spawned here). Drop-after-write faults need
    /// [`HubSpotSim::start`]'s accept loop; under another server they answer 500 instead.
    pub fn router(config: SimConfig) -> Result<Router, SimError> {
        Ok(router(Sim::new(config)?))
    }
}

/// Runs a simulator on `bind` until ctrl-c (the `crmsync hubspot-sim` command).
pub async fn serve(config: SimConfig, bind: SocketAddr) -> Result<(), SimError> {
    let running = HubSpotSim::start(config, bind).await?;
    tracing::info!(base_url = %running.base_url(), "HubSpot simulator listening");
    tokio::signal::ctrl_c().await.map_err(SimError::Signal)?;
    tracing::info!("HubSpot simulator stopping");
    running.stop().await;
    Ok(())
}

/// A simulator serving on a socket. Dropping it stops the server.
pub struct RunningSim {
    addr: SocketAddr,
    sim: Sim,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RunningSim {
    /// The bound address (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`, with a loopback host when bound to an unspecified address.
    pub fn base_url(&self) -> String {
        let host_addr = match self.addr {
            SocketAddr::V4(a) if a.ip().is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, a.port())),
            SocketAddr::V6(a) if a.ip().is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, a.port())),
            other => other,
        };
        format!("http://{host_addr}")
    }

    /// The accepted bearer token.
    pub fn access_token(&self) -> &str {
        &self.sim.config().access_token
    }

    /// Back to a fresh portal (same as `POST /__sim/reset`).
    pub fn reset(&self) {
        self.sim.reset();
    }

    /// Replaces the fault settings (same as `POST /__sim/faults`).
    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.sim.shared().faults).set(faults);
    }

    /// Sets or clears the webhook target (same as `POST /__sim/webhooks/target`); useful when the
    /// receiver's port is only known after the simulator started.
    pub fn set_webhook_target(&self, target: Option<WebhookTarget>) {
        self.sim.shared().webhooks.set_target(target);
    }

    /// Drops every webhook event from now on (`true`), or delivers them again (same as `POST /__sim/webhooks/drop`).
    pub fn set_drop_webhooks(&self, drop: bool) {
        self.sim.shared().webhooks.set_dropping(drop);
    }

    /// How many API requests to `endpoint` (`"POST /crm/v3/objects/{object_type}/batch/upsert"`)
    /// ended with `outcome` (`"200"`, `"429"`, `"dropped"`, …).
    pub fn request_count(&self, endpoint: &str, outcome: &str) -> u64 {
        lock(&self.sim.shared().requests).count(endpoint, outcome)
    }

    /// How many API requests, to any endpoint, ended with `outcome`.
    pub fn outcome_count(&self, outcome: &str) -> u64 {
        lock(&self.sim.shared().requests).count_outcome(outcome)
    }

    /// API requests received so far (admin requests excluded).
    pub fn total_requests(&self) -> u64 {
        lock(&self.sim.shared().requests).total()
    }

    /// API requests received so far by endpoint (`"POST /crm/objects/{version}/{object_type}/batch/create"`), every
    /// outcome (admin requests excluded).
    pub fn requests_by_endpoint(&self) -> std::collections::BTreeMap<String, u64> {
        lock(&self.sim.shared().requests).by_endpoint()
    }

    /// Webhook events queued or in flight.
    pub fn webhooks_pending(&self) -> usize {
        self.sim.shared().webhooks.pending()
    }

    /// Waits until every webhook event was delivered or abandoned; `false` on timeout.
    pub async fn wait_webhooks_idle(&self, timeout: Duration) -> bool {
        self.sim.shared().webhooks.wait_idle(timeout).await
    }

    /// The webhook outbox with every delivered batch (same as `GET /__sim/webhooks`).
    pub fn webhooks_json(&self) -> Value {
        self.sim.shared().webhooks.to_json(true)
    }

    /// Stops accepting, closes open connections and stops webhook delivery.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    fn signal_stop(&self) {
        let _ = self.shutdown.send(true);
        self.sim.shared().webhooks.close();
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// The whole app: API routes behind the gate, plus the admin routes.
fn router(sim: Sim) -> Router {
    let api = api_routes().layer(middleware::from_fn_with_state(sim.clone(), gate));
    Router::new()
        .merge(api)
        .merge(admin::routes())
        .route(
            crate::tokens::ACCESS_TOKEN_INFO_PATH,
            axum::routing::post(crate::tokens::access_token_info),
        )
        .fallback(|| async { SimErrorResponse::not_found("resource not found") })
        .with_state(sim)
}

fn api_routes() -> Router<Sim> {
    let mut router = Router::new();
    for prefix in ["/crm/v3/objects", "/crm/objects/{version}"] {
        let at = |tail: &str| format!("{prefix}/{{object_type}}{tail}");
        router = router
            .route(&at(""), get(objects::list).post(objects::create))
            .route(&at("/search"), post(search::search))
            .route(&at("/merge"), post(objects::merge))
            .route(&at("/batch/create"), post(objects::batch_create))
            .route(&at("/batch/read"), post(objects::batch_read))
            .route(&at("/batch/update"), post(objects::batch_update))
            .route(&at("/batch/upsert"), post(objects::batch_upsert))
            .route(&at("/batch/archive"), post(objects::batch_archive))
            .route(
                &at("/{object_id}"),
                get(objects::read).patch(objects::update).delete(objects::archive),
            );
    }
    for prefix in ["/crm/v4/associations", "/crm/associations/{version}"] {
        let at = |tail: &str| format!("{prefix}/{{from_object_type}}/{{to_object_type}}/batch/{tail}");
        router = router
            .route(&at("create"), post(associations::batch_create))
            .route(&at("associate/default"), post(associations::batch_associate_default))
            .route(&at("read"), post(associations::batch_read))
            .route(&at("archive"), post(associations::batch_archive));
    }
    for prefix in ["/crm/v3/properties", "/crm/properties/{version}"] {
        let at = |tail: &str| format!("{prefix}/{{object_type}}{tail}");
        router = router
            .route(&at(""), get(properties::list).post(properties::create))
            .route(&at("/batch/create"), post(properties::batch_create))
            .route(
                &at("/groups"),
                get(properties::list_groups).post(properties::create_group),
            )
            .route(&at("/groups/{group_name}"), get(properties::get_group))
            .route(&at("/{property_name}"), get(properties::get));
    }
    for prefix in ["/crm/v3/owners", "/crm/owners/{version}"] {
        router = router
            .route(prefix, get(owners::list))
            .route(&format!("{prefix}/"), get(owners::list))
            .route(&format!("{prefix}/{{owner_id}}"), get(owners::get));
    }
    for prefix in ["/crm/v3/pipelines", "/crm/pipelines/{version}"] {
        let at = |tail: &str| format!("{prefix}/{{object_type}}{tail}");
        router = router
            .route(&at(""), get(pipelines::list).post(pipelines::create))
            .route(&at("/{pipeline_id}"), get(pipelines::get).patch(pipelines::update))
            .route(
                &at("/{pipeline_id}/stages"),
                get(pipelines::stages).post(pipelines::create_stage),
            )
            .route(
                &at("/{pipeline_id}/stages/{stage_id}"),
                patch(pipelines::update_stage).delete(pipelines::delete_stage),
            );
    }
    router
}

/// Every API request: token check (401), limits (429), faults, then the handler; counted by
/// endpoint and outcome, with rate headers on every admitted non-search answer.
async fn gate(State(sim): State<Sim>, matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let path = matched
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    let endpoint = format!("{} {path}", request.method());
    let record = |outcome: &str| lock(&sim.shared().requests).record(&endpoint, outcome);

    let token = bearer_token(&request);
    if token.is_empty() || token != sim.config().access_token {
        record("401");
        return SimErrorResponse::unauthenticated().into_response();
    }

    let is_search = request.method() == Method::POST && path.ends_with("/search");
    let headers = match lock(&sim.shared().limits).admit(&token, is_search, tokio::time::Instant::now()) {
        Admission::Admitted(headers) => headers,
        Admission::Rejected(limited) => {
            record("429");
            let (error, headers) = limited.to_response_parts();
            let mut response = error.into_response();
            apply_headers(response.headers_mut(), &headers);
            return response;
        }
    };

    let is_write = request.method() != Method::GET && !is_search && !path.ends_with("/batch/read");
    let mut response = run_with_fault(&sim, is_write, request, next, &record).await;
    if !is_search {
        apply_headers(response.headers_mut(), &headers);
    }
    record(response.status().as_str());
    response
}

/// The token of the request's `Authorization: Bearer …` header, empty when there is none.
fn bearer_token(request: &Request) -> String {
    request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
        .to_string()
}

/// Runs the handler under the fault the fault plan draws for this request: an error answer instead of the
/// handler, a slow answer, a dropped connection after the write, or none.
async fn run_with_fault(
    sim: &Sim,
    is_write: bool,
    request: Request,
    next: Next,
    record: &(impl Fn(&str) + Sync),
) -> Response {
    let (fault, retry_after_secs) = {
        let mut faults = lock(&sim.shared().faults);
        (faults.decide(is_write), faults.config().migration_retry_after_secs)
    };
    match fault {
        Some(
            kind @ (FaultKind::InternalError
            | FaultKind::BadGateway
            | FaultKind::Unavailable
            | FaultKind::Locked
            | FaultKind::MigrationInProgress
            | FaultKind::GatewayTimeout
            | FaultKind::OriginTimeout
            | FaultKind::TooManyRequests
            | FaultKind::Forbidden),
        ) => match faults::fault_response(kind, retry_after_secs) {
            Some(response) => response,
            None => next.run(request).await,
        },
        Some(FaultKind::Slow) => {
            // Run in a task so the request is processed in full even if the client gives up.
            let delay = Duration::from_millis(lock(&sim.shared().faults).config().slow_delay_ms);
            let handled = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                next.run(request).await
            });
            handled
                .await
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Some(FaultKind::DropAfterWrite) => drop_after_write(request, next, record).await,
        None => next.run(request).await,
    }
}

/// Applies the write, then never answers: the connection task drops the socket on the request's
/// [`DropConnection`] signal. Outside the simulator's accept loop there is no such signal, so it answers 500.
async fn drop_after_write(request: Request, next: Next, record: &(impl Fn(&str) + Sync)) -> Response {
    let control = request.extensions().get::<DropConnection>().cloned();
    let response = next.run(request).await;
    match control {
        Some(DropConnection(signal)) => {
            record("dropped");
            signal.notify_one();
            // Never answer: the connection task drops the socket on the signal.
            std::future::pending().await
        }
        None => {
            tracing::warn!("drop-after-write fault outside the simulator's accept loop; answering 500");
            drop(response);
            SimErrorResponse::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "connection drop unavailable",
            )
            .into_response()
        }
    }
}

/// Accepts connections until shutdown; each connection is served in its own task, which drops
/// the socket (no response bytes) when its request signals [`DropConnection`].
async fn accept_loop(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let signal = Arc::new(Notify::new());
            let control = DropConnection(signal.clone());
            let service = tower::service_fn(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(control.clone());
                app.clone().call(request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                _ = signal.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}
