//! TLS with libpq's `sslmode` meanings, against real PostgreSQL servers this test starts: one with `ssl = on` and
//! a certificate from a CA the test makes (naming `localhost` only), one without TLS.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crmsync_db::{DatabaseSettings, DbError, SslMode, Timeouts};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A throwaway PostgreSQL cluster, stopped and removed on drop.
struct Server {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

/// PEM files of a CA that signed the server's certificate, and of an unrelated one.
struct Certificates {
    ca: PathBuf,
    other_ca: PathBuf,
}

impl Server {
    fn start(tls: bool) -> (Self, Certificates) {
        let dir = std::env::temp_dir().join(format!("crmsync-tls-{}", uuid::Uuid::new_v4().simple()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).expect("temp dir");
        let bin = postgres_bin_dir();
        let as_owner = |program: &str| {
            let path = bin.join(program);
            if is_root() {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(path);
                command
            } else {
                Command::new(path)
            }
        };
        let certificates = make_certificates(&dir);
        if is_root() {
            chown_postgres(&dir);
        }
        run(as_owner("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data));
        let port = free_port();
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl={}",
            dir.display(),
            if tls { "on" } else { "off" }
        );
        if tls {
            options.push_str(&format!(
                " -c ssl_cert_file={} -c ssl_key_file={}",
                dir.join("server.crt").display(),
                dir.join("server.key").display()
            ));
        }
        run(as_owner("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-o", &options, "start"]));
        (Self { dir, bin, port }, certificates)
    }

    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:{}/postgres{query}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = self.dir.join("data");
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_ctl);
            command
        } else {
            Command::new(pg_ctl)
        };
        let _ = command.arg("-D").arg(&data).args(["-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn postgres_bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server binaries in /usr/lib/postgresql (scripts/test installs them)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    dirs.sort_by_key(|dir| {
        dir.parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop().expect("an initdb under /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn chown_postgres(dir: &Path) {
    run(Command::new("chown").args(["-R", "postgres"]).arg(dir));
}

fn run(command: &mut Command) {
    let output = command.output().expect("run a PostgreSQL tool");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A CA, a server certificate it signs for `localhost` only (not 127.0.0.1), and an unrelated CA.
fn make_certificates(dir: &Path) -> Certificates {
    let ca = certificate_authority("crmsync test CA");
    let other = certificate_authority("some other CA");
    let server_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, "localhost");
    let server = params.signed_by(&server_key, &ca).expect("server certificate");
    std::fs::write(dir.join("server.crt"), server.pem()).expect("write");
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).expect("write");
    set_mode(&dir.join("server.key"), 0o600);
    std::fs::write(dir.join("ca.crt"), ca.pem()).expect("write");
    std::fs::write(dir.join("other-ca.crt"), other.pem()).expect("write");
    Certificates {
        ca: dir.join("ca.crt"),
        other_ca: dir.join("other-ca.crt"),
    }
}

fn certificate_authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Connects with `url` trusting `ca`, and says whether the session is encrypted.
async fn connect(url: &str, ca: Option<&Path>) -> Result<bool, DbError> {
    let settings = DatabaseSettings::parse(url, Timeouts::CLI)?.with_ca_file(ca.map(|p| p.display().to_string()));
    let client = settings.connect_one().await?;
    let row = client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await?;
    Ok(row.get(0))
}

fn refusal(result: Result<bool, DbError>) -> String {
    match result {
        Ok(encrypted) => panic!("connected (encrypted: {encrypted}) where it must be refused"),
        Err(error) => {
            assert!(matches!(error, DbError::Unreachable { .. }), "{error:?}");
            error.to_string()
        }
    }
}

#[tokio::test]
async fn verify_full_trusts_the_given_ca_and_checks_the_host_name() {
    let (server, certificates) = Server::start(true);
    let ca = Some(certificates.ca.as_path());

    assert!(
        connect(&server.url("localhost", "?sslmode=verify-full"), ca)
            .await
            .expect("verify-full with the CA"),
        "the session is encrypted"
    );

    // The same CA as PEM text (DATABASE_CA_CERT, as the Lambdas get it from Secrets Manager).
    let pem = std::fs::read_to_string(&certificates.ca).unwrap();
    DatabaseSettings::parse(&server.url("localhost", "?sslmode=verify-full"), Timeouts::CLI)
        .unwrap()
        .with_ca_pem(Some(pem))
        .connect_one()
        .await
        .expect("verify-full with the CA as PEM text");

    let wrong_ca = refusal(
        connect(
            &server.url("localhost", "?sslmode=verify-full"),
            Some(&certificates.other_ca),
        )
        .await,
    );
    assert!(
        wrong_ca.contains("localhost:") && wrong_ca.to_lowercase().contains("certificate"),
        "{wrong_ca}"
    );

    // The certificate names localhost, not 127.0.0.1: verify-full refuses the address, verify-ca accepts it.
    let wrong_name = refusal(connect(&server.url("127.0.0.1", "?sslmode=verify-full"), ca).await);
    assert!(wrong_name.to_lowercase().contains("certificate"), "{wrong_name}");
    assert!(
        connect(&server.url("127.0.0.1", "?sslmode=verify-ca"), ca)
            .await
            .expect("verify-ca")
    );
    let unknown_chain = refusal(
        connect(
            &server.url("127.0.0.1", "?sslmode=verify-ca"),
            Some(&certificates.other_ca),
        )
        .await,
    );
    assert!(unknown_chain.to_lowercase().contains("certificate"), "{unknown_chain}");

    // libpq's require and prefer encrypt without checking who answers; loopback without a mode means prefer.
    assert!(
        connect(&server.url("127.0.0.1", "?sslmode=require"), None)
            .await
            .expect("require")
    );
    assert!(
        connect(&server.url("127.0.0.1", ""), None)
            .await
            .expect("loopback default")
    );
    assert!(
        !connect(&server.url("127.0.0.1", "?sslmode=disable"), None)
            .await
            .expect("disable")
    );

    // A pool refuses the same way, naming the host and not the URL's user.
    let settings = DatabaseSettings::parse(&server.url("localhost", "?sslmode=verify-full"), Timeouts::API)
        .unwrap()
        .with_ca_file(Some(certificates.other_ca.display().to_string()));
    let error = settings
        .pool()
        .unwrap()
        .get()
        .await
        .err()
        .expect("pooled connection refused");
    assert!(matches!(error, DbError::Unreachable { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("cannot reach PostgreSQL at localhost:{}", server.port))
    );
}

#[tokio::test]
async fn a_plaintext_only_server_is_refused_when_tls_is_required_and_says_why() {
    let (server, certificates) = Server::start(false);
    for mode in ["verify-full", "verify-ca", "require"] {
        let reason = refusal(
            connect(
                &server.url("localhost", &format!("?sslmode={mode}")),
                Some(&certificates.ca),
            )
            .await,
        );
        assert!(reason.contains("TLS") || reason.contains("SSL"), "{mode}: {reason}");
    }
    assert!(
        !connect(&server.url("127.0.0.1", "?sslmode=prefer"), None)
            .await
            .expect("prefer falls back")
    );
    let settings = DatabaseSettings::parse(&server.url("127.0.0.1", ""), Timeouts::CLI).unwrap();
    assert_eq!(settings.ssl_mode(), SslMode::Prefer);
}
