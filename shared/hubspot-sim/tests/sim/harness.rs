//! Test harness: a simulator on 127.0.0.1:0, an HTTP client with its token, typed helpers, and a
//! webhook receiver on port 0 that records every request (and can fail the first few).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use crmsync_hubspot_sim::{HubSpotSim, RunningSim, SimConfig, WebhookDelivery, WebhookTarget};
use serde_json::{Value, json};

pub struct TestSim {
    pub sim: RunningSim,
    pub http: reqwest::Client,
}

/// One HTTP answer: status, headers and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestSim {
    pub async fn start() -> Self {
        Self::with(SimConfig::default()).await
    }

    pub async fn with(config: SimConfig) -> Self {
        let sim = HubSpotSim::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .expect("simulator starts");
        Self {
            sim,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.sim.access_token());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request answered");
        answer(response).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    /// Admin calls carry no token.
    pub async fn admin_get(&self, path: &str) -> Answer {
        answer(self.http.get(self.url(path)).send().await.expect("admin answers")).await
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Answer {
        answer(
            self.http
                .post(self.url(path))
                .json(&body)
                .send()
                .await
                .expect("admin answers"),
        )
        .await
    }

    /// The contract's setup: group "b2g" and the unique `crmsync_id` on companies, deals, contacts.
    pub async fn setup_b2g(&self) {
        for object_type in ["companies", "deals", "contacts"] {
            let group = self
                .post(
                    &format!("/crm/properties/2026-03/{object_type}/groups"),
                    json!({"name": "b2g", "label": "B2G"}),
                )
                .await;
            assert_eq!(group.status, 201, "{:?}", group.body);
            let property = self
                .post(
                    &format!("/crm/properties/2026-03/{object_type}"),
                    json!({"name": "crmsync_id", "label": "crmsync id", "type": "string", "fieldType": "text",
                           "groupName": "b2g", "hasUniqueValue": true}),
                )
                .await;
            assert_eq!(property.status, 201, "{:?}", property.body);
        }
        let score = self
            .post(
                "/crm/properties/2026-03/deals",
                json!({"name": "b2g_match_score", "label": "Match score", "type": "number", "fieldType": "number", "groupName": "b2g"}),
            )
            .await;
        assert_eq!(score.status, 201, "{:?}", score.body);
    }

    /// Creates a company through the API and returns its id.
    pub async fn company(&self, name: &str) -> String {
        let created = self
            .post("/crm/v3/objects/companies", json!({"properties": {"name": name}}))
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        created.body["id"].as_str().unwrap().to_string()
    }

    /// Creates a deal in the default pipeline and returns its id.
    pub async fn deal(&self, name: &str) -> String {
        let created = self
            .post(
                "/crm/v3/objects/deals",
                json!({"properties": {"dealname": name, "pipeline": "default", "dealstage": "appointmentscheduled"}}),
            )
            .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        created.body["id"].as_str().unwrap().to_string()
    }

    /// The admin state's record of `object_type` with `id`.
    pub async fn stored(&self, object_type: &str, id: &str) -> Option<Value> {
        let state = self.admin_get(&format!("/__sim/state?type={object_type}")).await;
        state.body["objects"][object_type]
            .as_array()?
            .iter()
            .find(|o| o["id"] == id)
            .cloned()
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.expect("body read");
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// One webhook request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub answered: u16,
}

impl Received {
    pub fn events(&self) -> Vec<Value> {
        serde_json::from_slice::<Vec<Value>>(&self.body).expect("webhook body is a JSON array")
    }
}

#[derive(Clone, Default)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Received>>>,
    fail_first: Arc<AtomicUsize>,
}

/// A webhook endpoint on 127.0.0.1:0 that answers 500 to its first `fail_first` requests.
pub struct Receiver {
    pub url: String,
    state: ReceiverState,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Self {
        let state = ReceiverState {
            received: Arc::default(),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
        };
        let app = axum::Router::new()
            .route("/hooks/hubspot", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{addr}/hooks/hubspot"),
            state,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Events of every accepted (2xx) request, in arrival order.
    pub fn accepted_events(&self) -> Vec<Value> {
        self.received()
            .iter()
            .filter(|r| r.answered == 200)
            .flat_map(Received::events)
            .collect()
    }

    pub fn target(&self, secret: &str, send_v1: bool) -> WebhookTarget {
        WebhookTarget {
            url: self.url.clone(),
            client_secret: secret.into(),
            send_v1,
        }
    }
}

async fn receive(State(state): State<ReceiverState>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let fail = state
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    state.received.lock().unwrap().push(Received {
        headers,
        body,
        answered: status.as_u16(),
    });
    status
}

/// A config delivering webhooks to `receiver` with fast retries.
pub fn webhook_config(receiver: &Receiver, secret: &str, send_v1: bool) -> SimConfig {
    SimConfig {
        webhook: Some(receiver.target(secret, send_v1)),
        webhook_delivery: WebhookDelivery {
            initial_retry_delay: Duration::from_millis(20),
            max_retry_delay: Duration::from_millis(100),
            ..WebhookDelivery::default()
        },
        ..SimConfig::default()
    }
}

/// Waits for the outbox to drain; generous, since a timeout only means the test failed.
pub async fn drain(sim: &TestSim) {
    assert!(
        sim.sim.wait_webhooks_idle(Duration::from_secs(30)).await,
        "webhook outbox did not drain"
    );
}
