//! A local Lambda Runtime API and a function's real binary polling it, so a test runs `main` (its cold-start wiring
//! included) the way Lambda does; and the events AWS sends: a direct invoke, EventBridge Scheduler's default event,
//! an SQS batch as the event source mapping delivers it, and API Gateway HTTP API (payload 2.0) requests.
//!
//! The emulator follows <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>: `GET
//! /2018-06-01/runtime/invocation/next` long-polls until an event is queued and hands it out with the
//! `Lambda-Runtime-*` headers; `POST .../invocation/{id}/response` and `.../invocation/{id}/error` complete it;
//! `POST /2018-06-01/runtime/init/error` records an initialisation failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// How long an invocation, or a start-up failure, may take before the test fails. Generous on purpose: tests must
/// not depend on the machine's speed.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The deadline each invocation gets (`Lambda-Runtime-Deadline-Ms` is now plus this), like a function timeout.
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(120);

/// The account every fixture names.
pub const ACCOUNT_ID: &str = "123456789012";

/// The region every fixture names.
pub const REGION: &str = "us-east-1";

/// The body of `POST .../invocation/{id}/error` and `POST .../init/error`: lambda_runtime's `Diagnostic`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LambdaError {
    pub error_type: String,
    pub error_message: String,
}

type Outcome = Result<Value, LambdaError>;

struct Invocation {
    request_id: String,
    payload: Value,
    outcome: oneshot::Sender<Outcome>,
}

struct Shared {
    function_arn: String,
    queued: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: watch::Sender<Option<LambdaError>>,
}

/// The Runtime API on `127.0.0.1:<port>`; the server stops when this is dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Invocation>,
    next_id: AtomicU64,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Starts the API on a free port, for a function named `function_name`.
    pub async fn start(function_name: &str) -> Self {
        let (queue, queued) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"),
            queued: tokio::sync::Mutex::new(queued),
            in_flight: Mutex::new(HashMap::new()),
            init_error: watch::Sender::new(None),
        });
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Runtime API");
        let addr = listener.local_addr().expect("the Runtime API's address");
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("the Runtime API server");
        });
        Self {
            addr,
            shared,
            queue,
            next_id: AtomicU64::new(1),
            server,
        }
    }

    /// `127.0.0.1:<port>`: the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an event; the receiver gets the function's response or error.
    fn enqueue(&self, payload: Value) -> oneshot::Receiver<Outcome> {
        let (outcome, receiver) = oneshot::channel();
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let invocation = Invocation {
            request_id: format!("8e0f3c52-0000-4000-8000-{n:012x}"),
            payload,
            outcome,
        };
        self.queue.send(invocation).expect("the Runtime API is running");
        receiver
    }

    /// The init failure the function reported, if any.
    pub fn init_error(&self) -> Option<LambdaError> {
        self.shared.init_error.borrow().clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn epoch_ms(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

/// Long-polls until an event is queued, then hands it out with the headers Lambda sends.
async fn next_invocation(State(shared): State<Arc<Shared>>) -> Response {
    let invocation = shared.queued.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return StatusCode::GONE.into_response();
    };
    lock(&shared.in_flight).insert(invocation.request_id.clone(), invocation.outcome);
    let deadline = epoch_ms(SystemTime::now() + FUNCTION_TIMEOUT);
    let headers = [
        ("lambda-runtime-aws-request-id", invocation.request_id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        ("lambda-runtime-invoked-function-arn", shared.function_arn.clone()),
        (
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".to_owned(),
        ),
        ("content-type", "application/json".to_owned()),
    ];
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(name, value.parse().expect("header value"));
    }
    (map, invocation.payload.to_string()).into_response()
}

fn complete(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    match lock(&shared.in_flight).remove(id) {
        Some(sender) => {
            let _ = sender.send(outcome);
            (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "errorType": "InvalidRequestID", "errorMessage": format!("unknown request {id}") })),
        )
            .into_response(),
    }
}

fn diagnostic(headers: &HeaderMap, body: &[u8]) -> LambdaError {
    serde_json::from_slice(body).unwrap_or_else(|_| LambdaError {
        error_type: headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("Unknown")
            .to_owned(),
        error_message: String::from_utf8_lossy(body).into_owned(),
    })
}

async fn invocation_response(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    complete(&shared, &id, Ok(value))
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    complete(&shared, &id, Err(diagnostic(&headers, &body)))
}

async fn init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.init_error.send_replace(Some(diagnostic(&headers, &body)));
    (StatusCode::ACCEPTED, axum::Json(json!({ "status": "OK" }))).into_response()
}

/// A function's real binary, started as Lambda starts it, polling its own [`RuntimeApi`]. The process is killed
/// when this is dropped.
pub struct FunctionProcess {
    name: String,
    api: RuntimeApi,
    exit: watch::Receiver<Option<ExitStatus>>,
    logs: Arc<Mutex<String>>,
    supervisor: JoinHandle<()>,
}

impl FunctionProcess {
    /// Starts `binary` (a test's `env!("CARGO_BIN_EXE_<name>")`) with the environment Lambda sets for a function
    /// named `name` (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime>)
    /// and `settings`, the function's own variables. Nothing else is inherited from the test's environment but
    /// `RUST_LOG`; its output is kept for failure messages, and echoed when `TEST_LOG` is set.
    pub async fn start(binary: impl AsRef<Path>, name: &str, settings: &[(&str, &str)]) -> Self {
        let api = RuntimeApi::start(name).await;
        let mut command = tokio::process::Command::new(binary.as_ref());
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/25/[$LATEST]0123456789abcdef")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .envs(settings.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Ok(filter) = std::env::var("RUST_LOG") {
            command.env("RUST_LOG", filter);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", binary.as_ref().display()));
        let logs = Arc::new(Mutex::new(String::new()));
        let echo = std::env::var_os("TEST_LOG").is_some();
        collect_lines(child.stdout.take(), Arc::clone(&logs), echo);
        collect_lines(child.stderr.take(), Arc::clone(&logs), echo);
        let (exited, exit) = watch::channel(None);
        // The child is owned by this task: aborting it (on drop) drops the child, which kills the process.
        let supervisor = tokio::spawn(async move {
            let status = child.wait().await.expect("wait for the function process");
            exited.send_replace(Some(status));
        });
        Self {
            name: name.to_owned(),
            api,
            exit,
            logs,
            supervisor,
        }
    }

    /// Invokes the function with `event` and returns its response, or the error it reported. Panics, with the
    /// process's output, when the process exits or does not answer within [`INVOKE_TIMEOUT`].
    pub async fn invoke(&self, event: Value) -> Result<Value, LambdaError> {
        let outcome = self.api.enqueue(event);
        let mut exit = self.exit.clone();
        tokio::select! {
            outcome = outcome => outcome.expect("the Runtime API dropped the invocation"),
            status = exit.wait_for(Option::is_some) => {
                let status = status.ok().and_then(|s| *s);
                panic!("{} exited ({status:?}) during an invocation; its output:\n{}", self.name, self.logs())
            }
            () = tokio::time::sleep(INVOKE_TIMEOUT) => {
                panic!("{} did not answer within {INVOKE_TIMEOUT:?}; its output:\n{}", self.name, self.logs())
            }
        }
    }

    /// Waits for the process to exit (a failed start-up) and returns its status. Panics if it is still running
    /// after [`INVOKE_TIMEOUT`].
    pub async fn exit_status(&self) -> ExitStatus {
        let mut exit = self.exit.clone();
        match tokio::time::timeout(INVOKE_TIMEOUT, exit.wait_for(Option::is_some)).await {
            Ok(Ok(status)) => status.expect("exited"),
            _ => panic!(
                "{} is still running after {INVOKE_TIMEOUT:?}; its output:\n{}",
                self.name,
                self.logs()
            ),
        }
    }

    /// The init failure the function reported through `POST /runtime/init/error`, if any.
    pub fn init_error(&self) -> Option<LambdaError> {
        self.api.init_error()
    }

    /// Sends an HTTP API request through the function and reads its answer; panics if the function reports an
    /// error instead (an HTTP function answers every request).
    pub async fn request(&self, request: &HttpApiRequest) -> HttpApiResponse {
        match self.invoke(request.event()).await {
            Ok(response) => HttpApiResponse::from_value(&response),
            Err(error) => panic!(
                "{} failed the request: {error:?}; its output:\n{}",
                self.name,
                self.logs()
            ),
        }
    }

    /// What the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        lock(&self.logs).clone()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

fn collect_lines(stream: Option<impl AsyncRead + Unpin + Send + 'static>, logs: Arc<Mutex<String>>, echo: bool) {
    let Some(stream) = stream else { return };
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                eprintln!("{line}");
            }
            let mut logs = lock(&logs);
            logs.push_str(&line);
            logs.push('\n');
        }
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Events as AWS sends them

/// EventBridge Scheduler's default event for a templated Lambda target without `Input` (template.yaml's
/// `ScheduleV2`): "If you do not specify anything for this field, EventBridge Scheduler delivers a default
/// notification to the target" (<https://docs.aws.amazon.com/scheduler/latest/APIReference/API_Target.html>).
/// That notification's shape, with `source: aws.scheduler` and `detail` the *string* `"{}"`, is the one captured
/// from AWS in Powertools for AWS Lambda's fixture `tests/events/eventBridgeSchedulerEvent.json`
/// (aws-powertools/powertools-lambda-python#6134).
pub fn scheduler_event(schedule_name: &str) -> Value {
    let now = chrono::Utc::now();
    json!({
        "version": "0",
        "id": format!("d167b752-343a-4b28-afd6-{:012x}", now.timestamp_millis()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": ACCOUNT_ID,
        "time": now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "region": REGION,
        "resources": [format!("arn:aws:scheduler:{REGION}:{ACCOUNT_ID}:schedule/default/{schedule_name}")],
        "detail": "{}"
    })
}

/// Plays the SQS event source mapping: receives from `queue_url` (with every system and message attribute) until
/// `count` messages arrived or [`INVOKE_TIMEOUT`] passed, and returns them as the Lambda event
/// (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>, "Example standard queue message event"). The
/// messages stay in flight; nothing is deleted.
pub async fn receive_sqs_event(client: &aws_sdk_sqs::Client, queue_url: &str, count: usize) -> Value {
    use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("QueueArn")
        .clone();
    let region = arn.split(':').nth(3).unwrap_or(REGION).to_owned();
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + INVOKE_TIMEOUT;
    while records.len() < count && tokio::time::Instant::now() < deadline {
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        for message in received.messages() {
            records.push(sqs_record(message, &arn, &region));
        }
    }
    assert_eq!(records.len(), count, "messages received from {queue_url}");
    json!({ "Records": records })
}

fn sqs_record(message: &aws_sdk_sqs::types::Message, arn: &str, region: &str) -> Value {
    let attributes: serde_json::Map<String, Value> = message
        .attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| (name.as_str().to_owned(), Value::String(value.clone())))
        .collect();
    let message_attributes: serde_json::Map<String, Value> = message
        .message_attributes()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let binary = value
                .binary_value()
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
            let attribute = json!({
                "stringValue": value.string_value(),
                "binaryValue": binary,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.data_type(),
            });
            (name.clone(), attribute)
        })
        .collect();
    json!({
        "messageId": message.message_id(),
        "receiptHandle": message.receipt_handle(),
        "body": message.body(),
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.md5_of_body(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    })
}

/// An API Gateway HTTP API request in payload format 2.0
/// (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>):
/// header names lowercased, repeated query parameters joined with commas, no `body` when there is none.
#[derive(Debug, Clone)]
pub struct HttpApiRequest {
    method: String,
    raw_path: String,
    raw_query: String,
    route_key: String,
    path_parameters: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// The `requestContext.domainName` of every [`HttpApiRequest`]: the HTTP API's default endpoint.
pub const HTTP_API_DOMAIN: &str = "r4nd0m1d.execute-api.us-east-1.amazonaws.com";

impl HttpApiRequest {
    /// A request for `raw_path` matched by the `$default` route.
    pub fn new(method: &str, raw_path: &str) -> Self {
        Self {
            method: method.to_ascii_uppercase(),
            raw_path: raw_path.to_owned(),
            raw_query: String::new(),
            route_key: "$default".to_owned(),
            path_parameters: Vec::new(),
            headers: vec![
                ("host".into(), HTTP_API_DOMAIN.into()),
                ("user-agent".into(), "crmsync-tests".into()),
                ("x-forwarded-for".into(), "198.51.100.7".into()),
                ("x-forwarded-port".into(), "443".into()),
                ("x-forwarded-proto".into(), "https".into()),
            ],
            body: None,
        }
    }

    /// The raw query string, as the client sent it (still percent-encoded).
    pub fn query(mut self, raw_query: &str) -> Self {
        raw_query.clone_into(&mut self.raw_query);
        self
    }

    /// The route that matched (`GET /`, `ANY /{proxy+}`, `POST /webhooks/hubspot`).
    pub fn route(mut self, route_key: &str) -> Self {
        route_key.clone_into(&mut self.route_key);
        self
    }

    /// A path parameter of the route (`proxy` for `/{proxy+}`).
    pub fn path_parameter(mut self, name: &str, value: &str) -> Self {
        self.path_parameters.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A header; the name is lowercased as API Gateway does.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    /// A text body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// A JSON body with its content type.
    pub fn json(self, body: &Value) -> Self {
        self.header("content-type", "application/json").body(body.to_string())
    }

    /// The public URI the client called: `https://{domainName}{rawPath}[?{rawQueryString}]`.
    pub fn public_uri(&self) -> String {
        match self.raw_query.as_str() {
            "" => format!("https://{HTTP_API_DOMAIN}{}", self.raw_path),
            query => format!("https://{HTTP_API_DOMAIN}{}?{query}", self.raw_path),
        }
    }

    /// The event Lambda receives.
    pub fn event(&self) -> Value {
        let now = chrono::Utc::now();
        let mut headers = serde_json::Map::new();
        for (name, value) in &self.headers {
            headers.insert(name.clone(), Value::String(value.clone()));
        }
        if let Some(body) = &self.body {
            headers.insert("content-length".into(), Value::String(body.len().to_string()));
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": self.raw_path,
            "rawQueryString": self.raw_query,
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": HTTP_API_DOMAIN.split('.').next(),
                "domainName": HTTP_API_DOMAIN,
                "domainPrefix": HTTP_API_DOMAIN.split('.').next(),
                "http": {
                    "method": self.method,
                    "path": self.raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "198.51.100.7",
                    "userAgent": "crmsync-tests"
                },
                "requestId": format!("Jx{:x}=", now.timestamp_micros()),
                "routeKey": self.route_key,
                "stage": "$default",
                "time": now.format("%d/%b/%Y:%H:%M:%S +0000").to_string(),
                "timeEpoch": now.timestamp_millis()
            },
            "isBase64Encoded": false
        });
        if !self.raw_query.is_empty() {
            let mut parameters: Vec<(String, String)> = Vec::new();
            for (name, value) in form_urlencoded::parse(self.raw_query.as_bytes()) {
                match parameters.iter_mut().find(|(n, _)| *n == name) {
                    Some((_, joined)) => {
                        joined.push(',');
                        joined.push_str(&value);
                    }
                    None => parameters.push((name.into_owned(), value.into_owned())),
                }
            }
            event["queryStringParameters"] = parameters.into_iter().map(|(n, v)| (n, Value::String(v))).collect();
        }
        if !self.path_parameters.is_empty() {
            event["pathParameters"] = self
                .path_parameters
                .iter()
                .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                .collect();
        }
        if let Some(body) = &self.body {
            event["body"] = Value::String(body.clone());
        }
        event
    }
}

/// A function's answer to an HTTP API request (payload 2.0 response).
#[derive(Debug, Clone)]
pub struct HttpApiResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl HttpApiResponse {
    /// Reads the function's response; a base64-encoded body is decoded.
    pub fn from_value(response: &Value) -> Self {
        let status = response["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("no statusCode in {response}")) as u16;
        let headers = response["headers"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let raw = response["body"].as_str().unwrap_or_default();
        let body = if response["isBase64Encoded"].as_bool() == Some(true) {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .expect("a base64 body");
            String::from_utf8(bytes).expect("a UTF-8 body")
        } else {
            raw.to_owned()
        };
        Self { status, headers, body }
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}
