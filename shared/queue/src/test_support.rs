//! Test support (feature `test-util`): a local SQS for tests. Uses `AWS_ENDPOINT_URL` when it is set (scripts/test
//! starts moto's server and sets it); otherwise starts `moto_server` (from PATH or the repo's `.venv`) once per
//! test process on a free port.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;

static MOTO: OnceLock<(String, Option<ChildGuard>)> = OnceLock::new();

struct ChildGuard(#[allow(dead_code)] Child);

/// The endpoint of a running local SQS, starting moto's server if needed.
pub fn sqs_endpoint() -> String {
    MOTO.get_or_init(|| {
        if let Ok(url) = std::env::var("AWS_ENDPOINT_URL") {
            return (url, None);
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv/bin/moto_server");
        let program = if std::path::Path::new(venv).exists() { venv.to_owned() } else { "moto_server".to_owned() };
        // A watchdog shell stops the server when this test process exits (statics are never dropped).
        let script = format!(
            "{program} -H 127.0.0.1 -p {port} & server=$!; while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill $server",
            parent = std::process::id()
        );
        let child = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {program} (run scripts/test, which installs moto): {e}"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        (format!("http://127.0.0.1:{port}"), Some(ChildGuard(child)))
    })
    .0
    .clone()
}

/// An SQS client for the local endpoint, with dummy credentials.
pub async fn sqs_client() -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(sqs_endpoint())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "crmsync-tests",
        ))
        .build();
    Client::from_conf(config)
}
