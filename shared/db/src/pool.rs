//! The connection pool, built once at start-up and lent to handlers.

use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

use crate::DbError;

/// A deadpool over `database_url` with at most `max_size` connections. Connections are made lazily, so this
/// succeeds without a reachable server; the first query reports that.
pub fn connect_pool(database_url: &str, max_size: usize) -> Result<Pool, DbError> {
    let config = tokio_postgres::Config::from_str(database_url).map_err(|e| DbError::Config(e.to_string()))?;
    pool_from_config(config, max_size)
}

/// A deadpool over an already parsed configuration. `sslmode=require` makes every connection TLS, verified
/// (hostname included) against the Mozilla roots plus the PEM bundle in `DATABASE_CA_CERT_FILE` when set (RDS and
/// Supabase publish theirs); any other mode connects without TLS.
pub fn pool_from_config(config: tokio_postgres::Config, max_size: usize) -> Result<Pool, DbError> {
    let recycling = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match config.get_ssl_mode() {
        SslMode::Require => Manager::from_config(config, tls_connector()?, recycling),
        _ => Manager::from_config(config, NoTls, recycling),
    };
    Pool::builder(manager)
        .max_size(max_size)
        .build()
        .map_err(|e| DbError::Config(e.to_string()))
}

/// Opens one dedicated connection (for migrations and advisory locks), driving it on a background task.
pub async fn connect_one(database_url: &str) -> Result<tokio_postgres::Client, DbError> {
    let config = tokio_postgres::Config::from_str(database_url).map_err(|e| DbError::Config(e.to_string()))?;
    let client = match config.get_ssl_mode() {
        SslMode::Require => {
            let (client, connection) = config.connect(tls_connector()?).await?;
            tokio::spawn(drive(connection));
            client
        }
        _ => {
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(drive(connection));
            client
        }
    };
    Ok(client)
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(connection: F) {
    if let Err(error) = connection.await {
        tracing::debug!(%error, "database connection closed with an error");
    }
}

/// The TLS connector for `sslmode=require`: certificates are verified (hostname included) against the Mozilla
/// roots and, when set, the CA bundle in `DATABASE_CA_CERT_FILE`.
fn tls_connector() -> Result<tokio_postgres_rustls::MakeRustlsConnect, DbError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Ok(path) = std::env::var("DATABASE_CA_CERT_FILE") {
        for certificate in CertificateDer::pem_file_iter(&path)
            .map_err(|e| DbError::Config(format!("DATABASE_CA_CERT_FILE {path}: {e}")))?
        {
            let certificate = certificate.map_err(|e| DbError::Config(format!("DATABASE_CA_CERT_FILE {path}: {e}")))?;
            roots
                .add(certificate)
                .map_err(|e| DbError::Config(format!("DATABASE_CA_CERT_FILE {path}: {e}")))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}
