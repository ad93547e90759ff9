//! TLS to PostgreSQL with libpq's `sslmode` meanings:
//!
//! | mode          | TLS                              | certificate checked                          |
//! |---------------|----------------------------------|----------------------------------------------|
//! | `disable`     | never                            | -                                            |
//! | `prefer`      | when the server offers it        | no                                           |
//! | `require`     | always (never plaintext)         | no; like `verify-ca` when a CA file is given |
//! | `verify-ca`   | always                           | chain, against the trusted roots             |
//! | `verify-full` | always                           | chain and host name                          |
//!
//! A URL without `sslmode` gets `verify-full` unless every host is loopback (or a Unix socket), which gets
//! `prefer`: a remote database (Supabase, RDS) is never reached in plaintext or without checking who answers.
//! The trusted roots are the system's (the Mozilla bundle when the system has none) plus the PEM bundle in
//! `DATABASE_CA_CERT_FILE` (Supabase and RDS publish theirs), as libpq's `sslrootcert`.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::{Host, SslMode as WireSslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::DbError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(value: &str) -> Result<Self, DbError> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" | "allow" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(DbError::Config(format!(
                "sslmode: {other:?} is not one of disable, prefer, require, verify-ca, verify-full"
            ))),
        }
    }

    /// The mode for a URL that names none: `prefer` when every host is on this machine, else `verify-full`.
    pub fn default_for(hosts: &[Host]) -> Self {
        let local = |host: &Host| match host {
            Host::Tcp(name) => name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
            #[cfg(unix)]
            Host::Unix(_) => true,
        };
        if !hosts.is_empty() && hosts.iter().all(local) {
            Self::Prefer
        } else {
            Self::VerifyFull
        }
    }

    /// What tokio-postgres puts on the wire: whether TLS is tried, and whether plaintext is acceptable.
    pub(crate) fn wire(self) -> WireSslMode {
        match self {
            Self::Disable => WireSslMode::Disable,
            Self::Prefer => WireSslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => WireSslMode::Require,
        }
    }
}

/// How a connection checks the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// CA certificates trusted beside the system roots: a PEM file (`DATABASE_CA_CERT_FILE`), or PEM text
/// (`DATABASE_CA_CERT`, which a Lambda gets from Secrets Manager, having no file of its own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtraCa {
    File(String),
    Pem(String),
}

/// The TLS connector for `mode`, trusting the system roots plus `extra`. `None` for `disable`.
pub(crate) fn connector(mode: SslMode, extra: Option<&ExtraCa>) -> Result<Option<MakeRustlsConnect>, DbError> {
    let check = match (mode, extra) {
        (SslMode::Disable, _) => return Ok(None),
        (SslMode::Prefer, _) | (SslMode::Require, None) => Check::Nothing,
        (SslMode::Require, Some(_)) | (SslMode::VerifyCa, _) => Check::Chain,
        (SslMode::VerifyFull, _) => Check::ChainAndName,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DbError::Config(e.to_string()))?;
    let config = match check {
        Check::ChainAndName => builder.with_root_certificates(trusted_roots(extra)?),
        Check::Chain => builder.dangerous().with_custom_certificate_verifier(Arc::new(Relaxed {
            roots: Some(trusted_roots(extra)?),
            provider,
        })),
        Check::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Relaxed { roots: None, provider })),
    }
    .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}

/// The system's roots (or Mozilla's when the system has none), plus the PEM certificates in `extra`.
fn trusted_roots(extra: Option<&ExtraCa>) -> Result<RootCertStore, DbError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(extra) = extra {
        let (name, certificates): (String, Vec<_>) = match extra {
            ExtraCa::File(path) => (
                format!("DATABASE_CA_CERT_FILE {path}"),
                CertificateDer::pem_file_iter(path)
                    .map_err(|e| DbError::Config(format!("DATABASE_CA_CERT_FILE {path}: {e}")))?
                    .collect(),
            ),
            ExtraCa::Pem(text) => (
                "DATABASE_CA_CERT".to_owned(),
                CertificateDer::pem_slice_iter(text.as_bytes()).collect(),
            ),
        };
        let invalid = |e: &dyn std::fmt::Display| DbError::Config(format!("{name}: {e}"));
        if certificates.is_empty() {
            return Err(invalid(&"holds no PEM certificate"));
        }
        for certificate in certificates {
            roots
                .add(certificate.map_err(|e| invalid(&e))?)
                .map_err(|e| invalid(&e))?;
        }
    }
    Ok(roots)
}

/// The verifier for every mode short of `verify-full`, which rustls's own verifier serves. With `roots`
/// (`verify-ca`, or `require` with a CA) the chain must lead to one of them and the name on the certificate is not
/// compared with the host; without (`prefer`, `require`) whoever answers is accepted, libpq's meaning. Either way the
/// handshake's signatures are checked, so the session key belongs to the certificate presented.
#[derive(Debug)]
struct Relaxed {
    roots: Option<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let certificate = rustls::server::ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &certificate,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_with_libpq_names_and_refuse_others() {
        assert_eq!(SslMode::parse("verify-full").unwrap(), SslMode::VerifyFull);
        assert_eq!(SslMode::parse("verify-ca").unwrap(), SslMode::VerifyCa);
        assert_eq!(SslMode::parse("require").unwrap(), SslMode::Require);
        assert_eq!(SslMode::parse("disable").unwrap(), SslMode::Disable);
        let error = SslMode::parse("verify_full").unwrap_err().to_string();
        assert!(error.contains("sslmode") && error.contains("verify_full"), "{error}");
    }

    #[test]
    fn without_a_mode_only_loopback_hosts_may_skip_verification() {
        let tcp = |name: &str| Host::Tcp(name.to_owned());
        assert_eq!(SslMode::default_for(&[tcp("127.0.0.1")]), SslMode::Prefer);
        assert_eq!(SslMode::default_for(&[tcp("localhost")]), SslMode::Prefer);
        assert_eq!(SslMode::default_for(&[tcp("::1")]), SslMode::Prefer);
        assert_eq!(
            SslMode::default_for(&[tcp("aws-0-us-east-1.pooler.supabase.com")]),
            SslMode::VerifyFull
        );
        assert_eq!(SslMode::default_for(&[tcp("10.0.0.5")]), SslMode::VerifyFull);
        assert_eq!(
            SslMode::default_for(&[tcp("127.0.0.1"), tcp("db.example.com")]),
            SslMode::VerifyFull
        );
        #[cfg(unix)]
        assert_eq!(
            SslMode::default_for(&[Host::Unix("/var/run/postgresql".into())]),
            SslMode::Prefer
        );
    }
}
