//! The connection pool, built once at start-up and lent to handlers.
//!
//! Production reaches Supabase through its transaction pooler, over TLS, from Lambdas that freeze between
//! invocations. So every connection here:
//! - sends each statement unnamed with its parameter types (see [`crate::params`]): no prepared statement outlives
//!   it, and nothing depends on landing on the same server connection twice;
//! - keeps no session state: the server-side time limits go into the startup packet on a direct connection, and
//!   into each transaction (`SET LOCAL`) behind a transaction pooler, which refuses the startup option;
//! - waits a bounded time for everything: the TCP connect and log-in, a free pool slot, each statement (also on the
//!   client, as a backstop for a server that stops answering), a row lock, and an idle transaction.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::{CancelToken, NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::DbError;
use crate::params::{SqlParam, typed};
use crate::tls::{self, ExtraCa, SslMode};

/// What sits between crmsync and PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// A direct connection, or a session-mode pooler (a server connection per client connection).
    None,
    /// A transaction-mode pooler (Supabase on port 6543, PgBouncer `pool_mode = transaction`): a server connection
    /// only for the length of a transaction.
    Transaction,
}

impl Pooler {
    /// `DATABASE_POOLER`: `transaction`, or `none`/`session`; unset means `transaction` when a port is 6543
    /// (Supabase's transaction pooler), else `none`.
    pub fn from_setting(setting: Option<&str>, ports: &[u16]) -> Result<Self, DbError> {
        match setting.map(str::trim) {
            None | Some("") if ports.contains(&SUPABASE_TRANSACTION_POOLER_PORT) => Ok(Self::Transaction),
            None | Some("") => Ok(Self::None),
            Some("transaction") => Ok(Self::Transaction),
            Some("none" | "session") => Ok(Self::None),
            Some(other) => Err(DbError::Config(format!(
                "DATABASE_POOLER: {other:?} is not one of transaction, session, none"
            ))),
        }
    }
}

const SUPABASE_TRANSACTION_POOLER_PORT: u16 = 6543;

/// Every wait a connection can make, bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus TLS and log-in.
    pub connect: Duration,
    /// Waiting for a free connection in the pool.
    pub pool_wait: Duration,
    /// One statement (`statement_timeout`).
    pub statement: Duration,
    /// Waiting for a row or table lock (`lock_timeout`).
    pub lock: Duration,
    /// A transaction left open without a statement (`idle_in_transaction_session_timeout`): the server ends the
    /// session and releases its locks when a process froze or was stopped mid-transaction.
    pub idle_in_transaction: Duration,
}

impl Timeouts {
    /// The webhook answers HubSpot within 5 s, or HubSpot counts a failure: a database that cannot serve it in
    /// well under that gets a 503 at about 3 s, and HubSpot retries.
    pub const WEBHOOK: Self = Self {
        connect: Duration::from_millis(1_500),
        pool_wait: Duration::from_millis(1_000),
        statement: Duration::from_millis(2_000),
        lock: Duration::from_millis(1_000),
        idle_in_transaction: Duration::from_secs(5),
    };

    /// The API answers 503 within 5 s rather than hang the dashboard.
    pub const API: Self = Self {
        connect: Duration::from_millis(2_000),
        pool_wait: Duration::from_millis(1_500),
        statement: Duration::from_millis(3_000),
        lock: Duration::from_millis(1_500),
        idle_in_transaction: Duration::from_secs(10),
    };

    /// The sync and ingestion run in the background with larger batches: they can wait longer.
    pub const BACKGROUND: Self = Self {
        connect: Duration::from_secs(5),
        pool_wait: Duration::from_secs(10),
        statement: Duration::from_secs(30),
        lock: Duration::from_secs(5),
        idle_in_transaction: Duration::from_secs(60),
    };

    /// `crmsync serve`, every part on one pool: the webhook's quick answer when the database is away (503 in about
    /// 3 s), the background parts' patience once connected.
    pub const SERVE: Self = Self {
        connect: Duration::from_millis(1_500),
        pool_wait: Duration::from_millis(1_500),
        statement: Duration::from_secs(30),
        lock: Duration::from_secs(5),
        idle_in_transaction: Duration::from_secs(60),
    };

    /// An operator at a terminal (migrations excepted: see `crmsync migrate`).
    pub const CLI: Self = Self {
        connect: Duration::from_secs(5),
        pool_wait: Duration::from_secs(10),
        statement: Duration::from_secs(120),
        lock: Duration::from_secs(10),
        idle_in_transaction: Duration::from_secs(120),
    };

    /// The server-side limits as `SET` arguments, in milliseconds.
    fn server_settings(&self) -> [(&'static str, u128); 3] {
        [
            ("statement_timeout", self.statement.as_millis()),
            ("lock_timeout", self.lock.as_millis()),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction.as_millis(),
            ),
        ]
    }

    /// How long the client waits for a statement before it gives the connection up: the server's own limit
    /// ends it first, unless the server (or the network) stopped answering.
    fn client_deadline(&self) -> Duration {
        self.statement + Duration::from_secs(1)
    }
}

/// Where and how to connect: the parsed `DATABASE_URL` with its libpq `sslmode`, and the settings around it.
#[derive(Clone)]
pub struct DatabaseSettings {
    config: tokio_postgres::Config,
    ssl_mode: SslMode,
    extra_ca: Option<ExtraCa>,
    pub pooler: Pooler,
    pub pool_size: usize,
    pub timeouts: Timeouts,
}

impl fmt::Debug for DatabaseSettings {
    // The URL's password stays out of logs: only the host and modes are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("host", &self.host())
            .field("ssl_mode", &self.ssl_mode)
            .field("pooler", &self.pooler)
            .field("pool_size", &self.pool_size)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl DatabaseSettings {
    /// Parses a `postgres://` URL or a `key=value` connection string. `sslmode` takes libpq's five values; without
    /// one, see [`SslMode::default_for`]. The pooler comes from the port (see [`Pooler::from_setting`]).
    pub fn parse(url: &str, timeouts: Timeouts) -> Result<Self, DbError> {
        let (rest, ssl_mode) = take_ssl_mode(url)?;
        let mut config =
            tokio_postgres::Config::from_str(&rest).map_err(|e| DbError::Config(format!("DATABASE_URL: {e}")))?;
        let ssl_mode = match ssl_mode {
            Some(mode) => mode,
            None => SslMode::default_for(config.get_hosts()),
        };
        config.ssl_mode(ssl_mode.wire());
        let pooler = Pooler::from_setting(None, config.get_ports())?;
        Ok(Self {
            config,
            ssl_mode,
            extra_ca: None,
            pooler,
            pool_size: 8,
            timeouts,
        })
    }

    /// The PEM bundle trusted beside the system roots (`DATABASE_CA_CERT_FILE`).
    pub fn with_ca_file(mut self, path: Option<String>) -> Self {
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            self.extra_ca = Some(ExtraCa::File(path));
        }
        self
    }

    /// PEM certificates trusted beside the system roots, as text (`DATABASE_CA_CERT`).
    pub fn with_ca_pem(mut self, pem: Option<String>) -> Self {
        if let Some(pem) = pem.filter(|p| !p.trim().is_empty()) {
            self.extra_ca = Some(ExtraCa::Pem(pem));
        }
        self
    }

    pub fn with_pooler(mut self, pooler: Pooler) -> Self {
        self.pooler = pooler;
        self
    }

    pub fn with_pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// The ports, for telling a transaction pooler apart (Supabase's is 6543).
    pub fn ports(&self) -> &[u16] {
        self.config.get_ports()
    }

    /// `host:port` (the first of each), for error messages: never the user or password.
    pub fn host(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            #[cfg(unix)]
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}")
    }

    /// The tokio-postgres configuration a connection uses: TCP keepalives, the connect timeout, and on a direct
    /// connection the server-side limits as startup options.
    fn connection_config(&self) -> tokio_postgres::Config {
        let mut config = self.config.clone();
        config
            .connect_timeout(self.timeouts.connect)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if self.pooler == Pooler::None {
            let limits: Vec<String> = self
                .timeouts
                .server_settings()
                .iter()
                .map(|(name, millis)| format!("-c {name}={millis}"))
                .collect();
            let options = match config.get_options() {
                Some(existing) if !existing.is_empty() => format!("{existing} {}", limits.join(" ")),
                _ => limits.join(" "),
            };
            config.options(options);
        }
        config
    }

    /// One dedicated connection (migrations, admin work), driven on a background task. It speaks plain
    /// tokio-postgres, so it must not go through a transaction pooler.
    pub async fn connect_one(&self) -> Result<tokio_postgres::Client, DbError> {
        let config = self.connection_config();
        let unreachable = |e: tokio_postgres::Error| DbError::Unreachable {
            host: self.host(),
            reason: error_chain(&e),
        };
        let connecting = async {
            match tls::connector(self.ssl_mode, self.extra_ca.as_ref())? {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await.map_err(unreachable)?;
                    tokio::spawn(drive(connection));
                    Ok(client)
                }
                None => {
                    let (client, connection) = config.connect(NoTls).await.map_err(unreachable)?;
                    tokio::spawn(drive(connection));
                    Ok(client)
                }
            }
        };
        tokio::time::timeout(self.timeouts.connect, connecting)
            .await
            .map_err(|_| DbError::Unreachable {
                host: self.host(),
                reason: format!("no answer within {:?}", self.timeouts.connect),
            })?
    }

    /// A pool of at most `pool_size` connections. Connections are made lazily, so this succeeds without a
    /// reachable server; the first [`Pool::get`] reports that.
    pub fn pool(&self) -> Result<Pool, DbError> {
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let config = self.connection_config();
        let tls = tls::connector(self.ssl_mode, self.extra_ca.as_ref())?;
        let manager = match tls.clone() {
            Some(tls) => Manager::from_config(config, tls, recycling),
            None => Manager::from_config(config, NoTls, recycling),
        };
        let inner = deadpool_postgres::Pool::builder(manager)
            .max_size(self.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.timeouts.pool_wait))
            .create_timeout(Some(self.timeouts.connect))
            .recycle_timeout(Some(self.timeouts.connect))
            .build()
            .map_err(|e| DbError::Config(e.to_string()))?;
        Ok(Pool {
            inner,
            session: Arc::new(Session {
                host: self.host(),
                tls,
                pooler: self.pooler,
                transaction_limits: (self.pooler == Pooler::Transaction).then(|| {
                    let limits: Vec<String> = self
                        .timeouts
                        .server_settings()
                        .iter()
                        .map(|(name, millis)| format!("SET LOCAL {name} = {millis}"))
                        .collect();
                    limits.join("; ")
                }),
                timeouts: self.timeouts,
                pool_size: self.pool_size,
            }),
        })
    }
}

/// Removes `sslmode` from a URL's query or a `key=value` string (tokio-postgres knows only three of its values).
fn take_ssl_mode(url: &str) -> Result<(String, Option<SslMode>), DbError> {
    let mut mode = None;
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(SslMode::parse(value)?),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, mode));
    }
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        match word.split_once('=') {
            Some(("sslmode", value)) => mode = Some(SslMode::parse(value.trim_matches('\''))?),
            _ => kept.push(word),
        }
    }
    Ok((kept.join(" "), mode))
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "database connection closed with an error");
    }
}

/// An error and its causes on one line, `outer: inner: innermost` (tokio-postgres puts the useful part, e.g.
/// "connection refused", in the source; `DbError::Postgres`'s own message is only "database error").
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What every connection of a pool shares.
struct Session {
    host: String,
    /// For cancel requests, which open their own connection.
    tls: Option<MakeRustlsConnect>,
    pooler: Pooler,
    /// Behind a transaction pooler, the `SET LOCAL` statements each transaction starts with.
    transaction_limits: Option<String>,
    timeouts: Timeouts,
    pool_size: usize,
}

/// The pool. Clones share it.
#[derive(Clone)]
pub struct Pool {
    inner: deadpool_postgres::Pool,
    session: Arc<Session>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("host", &self.session.host)
            .field("pooler", &self.session.pooler)
            .field("size", &self.session.pool_size)
            .finish()
    }
}

impl Pool {
    /// A connection, within the pool-wait and connect timeouts.
    pub async fn get(&self) -> Result<Connection, DbError> {
        use deadpool_postgres::{PoolError, TimeoutType};
        let session = &self.session;
        let object = self.inner.get().await.map_err(|error| match error {
            PoolError::Timeout(TimeoutType::Wait) => DbError::PoolExhausted {
                waited: session.timeouts.pool_wait,
                size: session.pool_size,
            },
            PoolError::Timeout(_) => DbError::Unreachable {
                host: session.host.clone(),
                reason: format!("no answer within {:?}", session.timeouts.connect),
            },
            PoolError::Backend(error) => DbError::Unreachable {
                host: session.host.clone(),
                reason: error_chain(&error),
            },
            other => DbError::Config(other.to_string()),
        })?;
        Ok(Connection {
            object: Some(object),
            session: session.clone(),
            broken: AtomicBool::new(false),
        })
    }

    /// Closes the pool: connections are dropped as they come back.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// One pooled connection. Statements go unnamed (see the module docs). A statement that outlives its client-side
/// deadline leaves the connection in an unknown state, so the connection is closed rather than returned.
pub struct Connection {
    object: Option<deadpool_postgres::Object>,
    session: Arc<Session>,
    broken: AtomicBool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.broken.load(Ordering::Relaxed)
            && let Some(object) = self.object.take()
        {
            drop(deadpool_postgres::Object::take(object));
        }
    }
}

impl Connection {
    fn client(&self) -> &tokio_postgres::Client {
        self.object
            .as_ref()
            .expect("a connection holds its client until dropped")
    }

    /// Starts a transaction. Behind a transaction pooler its server-side limits are set for it (`SET LOCAL`).
    pub async fn transaction(&mut self) -> Result<Transaction<'_>, DbError> {
        let Self {
            object,
            session,
            broken,
        } = self;
        let object = object.as_mut().expect("a connection holds its client until dropped");
        let inner = deadline(session, broken, object.cancel_token(), object.transaction()).await?;
        let transaction = Transaction { inner, session, broken };
        if let Some(limits) = &transaction.session.transaction_limits {
            transaction.batch_execute(limits).await?;
        }
        Ok(transaction)
    }
}

/// A transaction on a [`Connection`]; dropped without [`Transaction::commit`], it rolls back.
pub struct Transaction<'a> {
    inner: deadpool_postgres::Transaction<'a>,
    session: &'a Arc<Session>,
    broken: &'a AtomicBool,
}

impl<'a> Transaction<'a> {
    pub async fn commit(self) -> Result<(), DbError> {
        deadline(
            self.session,
            self.broken,
            self.inner.cancel_token(),
            self.inner.commit(),
        )
        .await
    }

    pub async fn rollback(self) -> Result<(), DbError> {
        deadline(
            self.session,
            self.broken,
            self.inner.cancel_token(),
            self.inner.rollback(),
        )
        .await
    }

    /// A nested transaction (a savepoint): its rollback undoes only its own statements.
    pub async fn savepoint(&mut self, name: &str) -> Result<Transaction<'_>, DbError> {
        let inner = deadline(
            self.session,
            self.broken,
            self.inner.cancel_token(),
            self.inner.savepoint(name),
        )
        .await?;
        Ok(Transaction {
            inner,
            session: self.session,
            broken: self.broken,
        })
    }
}

/// Runs `work` within the statement's client-side deadline. Past it, or when the caller drops the future mid-way
/// (a request's own deadline), the statement's outcome is unknown and the server may still be running it, so the
/// connection is marked to be closed instead of going back to the pool.
async fn deadline<T>(
    session: &Session,
    broken: &AtomicBool,
    cancel: CancelToken,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, DbError> {
    struct Unfinished<'a>(Option<&'a AtomicBool>);
    impl Drop for Unfinished<'_> {
        fn drop(&mut self) {
            if let Some(broken) = self.0 {
                broken.store(true, Ordering::Relaxed);
            }
        }
    }
    let mut unfinished = Unfinished(Some(broken));
    let limit = session.timeouts.client_deadline();
    let outcome = tokio::time::timeout(limit, work).await;
    if outcome.is_ok() {
        unfinished.0 = None;
    }
    match outcome {
        Ok(result) => result.map_err(DbError::from),
        Err(_) => {
            // Behind a transaction pooler a statement outside a transaction has no server-side limit: ask the
            // server to stop it, so it cannot still change data after the caller was told it failed.
            tokio::spawn(cancel_statement(session.tls.clone(), cancel));
            Err(DbError::Timeout {
                host: session.host.clone(),
                waited: limit,
            })
        }
    }
}

async fn cancel_statement(tls: Option<MakeRustlsConnect>, token: CancelToken) {
    let result = match tls {
        Some(tls) => token.cancel_query(tls).await,
        None => token.cancel_query(NoTls).await,
    };
    if let Err(error) = result {
        tracing::warn!(%error, "could not cancel a statement past its deadline");
    }
}

/// The statements crmsync runs, on a pooled connection or inside a transaction. Repository functions take
/// `&impl Db`, so they join the caller's transaction when given one.
pub trait Db: Sync {
    /// The rows of one statement.
    fn query(&self, sql: &str, params: &[&dyn SqlParam]) -> impl Future<Output = Result<Vec<Row>, DbError>> + Send;

    /// The one row a statement returns; an error when it returns none or several.
    fn query_one(&self, sql: &str, params: &[&dyn SqlParam]) -> impl Future<Output = Result<Row, DbError>> + Send;

    /// The row a statement returns, if any; an error when it returns several.
    fn query_opt(
        &self,
        sql: &str,
        params: &[&dyn SqlParam],
    ) -> impl Future<Output = Result<Option<Row>, DbError>> + Send;

    /// Runs a statement and returns the number of rows it changed.
    fn execute(&self, sql: &str, params: &[&dyn SqlParam]) -> impl Future<Output = Result<u64, DbError>> + Send;

    /// Runs statements without parameters (simple query protocol: nothing is prepared).
    fn batch_execute(&self, sql: &str) -> impl Future<Output = Result<(), DbError>> + Send;
}

impl Connection {
    /// The client, the deadline and where to mark the connection broken.
    fn parts(&self) -> (&tokio_postgres::Client, &Session, &AtomicBool) {
        (self.client(), &self.session, &self.broken)
    }
}

impl Transaction<'_> {
    fn parts(&self) -> (&tokio_postgres::Transaction<'_>, &Session, &AtomicBool) {
        (&self.inner, self.session, self.broken)
    }
}

/// The statements of [`Db`], as inherent methods too, so callers need not import the trait.
macro_rules! statements {
    ($($target:ty),*) => {$(
        impl $target {
            /// The rows of one statement.
            pub async fn query(&self, sql: &str, params: &[&dyn SqlParam]) -> Result<Vec<Row>, DbError> {
                let (client, session, broken) = self.parts();
                deadline(session, broken, client.cancel_token(), client.query_typed(sql, &typed(params))).await
            }

            /// The one row a statement returns; an error when it returns none or several.
            pub async fn query_one(&self, sql: &str, params: &[&dyn SqlParam]) -> Result<Row, DbError> {
                let mut rows = self.query(sql, params).await?;
                match rows.len() {
                    1 => Ok(rows.remove(0)),
                    found => Err(DbError::RowCount { expected: "one", found }),
                }
            }

            /// The row a statement returns, if any; an error when it returns several.
            pub async fn query_opt(&self, sql: &str, params: &[&dyn SqlParam]) -> Result<Option<Row>, DbError> {
                let mut rows = self.query(sql, params).await?;
                match rows.len() {
                    0 => Ok(None),
                    1 => Ok(Some(rows.remove(0))),
                    found => Err(DbError::RowCount { expected: "at most one", found }),
                }
            }

            /// Runs a statement and returns the number of rows it changed.
            pub async fn execute(&self, sql: &str, params: &[&dyn SqlParam]) -> Result<u64, DbError> {
                let (client, session, broken) = self.parts();
                deadline(session, broken, client.cancel_token(), client.execute_typed(sql, &typed(params))).await
            }

            /// Runs statements without parameters (simple query protocol: nothing is prepared).
            pub async fn batch_execute(&self, sql: &str) -> Result<(), DbError> {
                let (client, session, broken) = self.parts();
                deadline(session, broken, client.cancel_token(), client.batch_execute(sql)).await
            }
        }

        impl Db for $target {
            async fn query(&self, sql: &str, params: &[&dyn SqlParam]) -> Result<Vec<Row>, DbError> {
                <$target>::query(self, sql, params).await
            }

            async fn query_one(&self, sql: &str, params: &[&dyn SqlParam]) -> Result<Row, DbError> {
                <$target>::query_one(self, sql, params).await
            }

            async fn query_opt(&self, sql: &str, params: &[&dyn SqlParam]) -> Result<Option<Row>, DbError> {
                <$target>::query_opt(self, sql, params).await
            }

            async fn execute(&self, sql: &str, params: &[&dyn SqlParam]) -> Result<u64, DbError> {
                <$target>::execute(self, sql, params).await
            }

            async fn batch_execute(&self, sql: &str) -> Result<(), DbError> {
                <$target>::batch_execute(self, sql).await
            }
        }
    )*};
}

statements!(Connection, Transaction<'_>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_mode_is_taken_out_of_urls_and_key_value_strings() {
        let (rest, mode) = take_ssl_mode("postgres://u:p@db.example.com:6543/postgres?sslmode=verify-full").unwrap();
        assert_eq!(rest, "postgres://u:p@db.example.com:6543/postgres");
        assert_eq!(mode, Some(SslMode::VerifyFull));
        let (rest, mode) =
            take_ssl_mode("postgres://h/db?application_name=x&sslmode=verify-ca&connect_timeout=3").unwrap();
        assert_eq!(rest, "postgres://h/db?application_name=x&connect_timeout=3");
        assert_eq!(mode, Some(SslMode::VerifyCa));
        let (rest, mode) = take_ssl_mode("host=h dbname=d sslmode=require user=u").unwrap();
        assert_eq!(rest, "host=h dbname=d user=u");
        assert_eq!(mode, Some(SslMode::Require));
        assert_eq!(take_ssl_mode("postgres://h/db").unwrap().1, None);
        assert!(take_ssl_mode("postgres://h/db?sslmode=on").is_err());
    }

    #[test]
    fn a_remote_url_without_a_mode_is_verified_and_a_supabase_pooler_port_means_transaction_mode() {
        let settings = DatabaseSettings::parse(
            "postgres://postgres.ref:secret@aws-0-us-east-1.pooler.supabase.com:6543/postgres",
            Timeouts::API,
        )
        .unwrap();
        assert_eq!(settings.ssl_mode(), SslMode::VerifyFull);
        assert_eq!(settings.pooler, Pooler::Transaction);
        assert_eq!(settings.host(), "aws-0-us-east-1.pooler.supabase.com:6543");
        assert!(
            !format!("{settings:?}").contains("secret"),
            "the password stays out of Debug"
        );

        let local = DatabaseSettings::parse("postgres://postgres@127.0.0.1:5432/postgres", Timeouts::API).unwrap();
        assert_eq!(local.ssl_mode(), SslMode::Prefer);
        assert_eq!(local.pooler, Pooler::None);
    }

    #[test]
    fn the_pooler_setting_overrides_the_port_and_refuses_unknown_values() {
        assert_eq!(
            Pooler::from_setting(Some("transaction"), &[6432]).unwrap(),
            Pooler::Transaction
        );
        assert_eq!(Pooler::from_setting(Some("session"), &[6543]).unwrap(), Pooler::None);
        assert_eq!(Pooler::from_setting(None, &[5432]).unwrap(), Pooler::None);
        let error = Pooler::from_setting(Some("statement"), &[5432])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("DATABASE_POOLER") && error.contains("statement"),
            "{error}"
        );
    }

    #[test]
    fn direct_connections_carry_the_server_side_limits_and_pooled_ones_do_not() {
        let direct = DatabaseSettings::parse("postgres://h:5432/db", Timeouts::WEBHOOK).unwrap();
        let options = direct.connection_config().get_options().unwrap_or_default().to_owned();
        assert!(options.contains("-c statement_timeout=2000"), "{options}");
        assert!(options.contains("-c lock_timeout=1000"), "{options}");
        assert!(
            options.contains("-c idle_in_transaction_session_timeout=5000"),
            "{options}"
        );
        let pooled = direct.with_pooler(Pooler::Transaction);
        assert_eq!(pooled.connection_config().get_options(), None);
    }
}
