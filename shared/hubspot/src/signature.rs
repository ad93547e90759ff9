//! HubSpot webhook request signatures: signing (used by the simulator) and verification (used by
//! the webhook handler). Pure functions: no clock, no I/O; the caller passes `now`.
//!
//! Source: <https://developers.hubspot.com/docs/api/webhooks/validating-requests>
//! - v1: hex(sha256(client_secret + body)), header `X-HubSpot-Signature`.
//! - v2: hex(sha256(client_secret + method + uri + body)), same header (workflow webhooks, CRM cards).
//! - v3: base64(hmac_sha256(client_secret, method + uri + body + timestamp)), header
//!   `X-HubSpot-Signature-v3`, with `X-HubSpot-Request-Timestamp` in milliseconds.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Header carrying the v3 signature.
pub const HEADER_SIGNATURE_V3: &str = "x-hubspot-signature-v3";
/// Header carrying the v3 timestamp, in milliseconds since the epoch.
pub const HEADER_REQUEST_TIMESTAMP: &str = "x-hubspot-request-timestamp";
/// Header carrying the v1/v2 signature.
pub const HEADER_SIGNATURE: &str = "x-hubspot-signature";
/// Header naming the v1/v2 signature version.
pub const HEADER_SIGNATURE_VERSION: &str = "x-hubspot-signature-version";

/// HubSpot rejects (and asks receivers to reject) v3 requests older than 5 minutes.
pub const MAX_TIMESTAMP_SKEW_MS: i64 = 5 * 60 * 1000;

/// The escapes HubSpot's v3 docs list as "decode these before signing". Everything else
/// (`%20`, `%26`, `%3D`, ...) stays encoded.
const DECODED_ESCAPES: [(&str, char); 12] = [
    ("%3A", ':'),
    ("%2F", '/'),
    ("%3F", '?'),
    ("%40", '@'),
    ("%21", '!'),
    ("%24", '$'),
    ("%27", '\''),
    ("%28", '('),
    ("%29", ')'),
    ("%2A", '*'),
    ("%2C", ','),
    ("%3B", ';'),
];

/// Decodes exactly the percent-escapes on HubSpot's v3 list (case-insensitive hex), leaving
/// every other byte of `uri` as it is.
pub fn decode_signed_uri(uri: &str) -> String {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let candidate = rest.get(pos..pos + 3).unwrap_or("");
        match DECODED_ESCAPES
            .iter()
            .find(|(escape, _)| escape.eq_ignore_ascii_case(candidate))
        {
            Some((_, decoded)) => {
                out.push(*decoded);
                rest = &rest[pos + 3..];
            }
            None => {
                out.push('%');
                rest = &rest[pos + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// v1: `hex(sha256(client_secret + body))`.
pub fn sign_v1(client_secret: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(client_secret.as_bytes());
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// v2: `hex(sha256(client_secret + method + uri + body))`; the URI is used exactly as called.
pub fn sign_v2(client_secret: &str, method: &str, uri: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(client_secret.as_bytes());
    hasher.update(method.as_bytes());
    hasher.update(uri.as_bytes());
    hasher.update(body);
    hex::encode(hasher.finalize())
}

/// v3: `base64(hmac_sha256(client_secret, method + decoded_uri + body + timestamp_ms))`.
pub fn sign_v3(client_secret: &str, method: &str, uri: &str, body: &[u8], timestamp_ms: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(client_secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(method.as_bytes());
    mac.update(decode_signed_uri(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp_ms.to_string().as_bytes());
    BASE64.encode(mac.finalize().into_bytes())
}

/// Which signature scheme authenticated a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    V1,
    V3,
}

/// Why a request was not authenticated. The webhook handler answers 401 for every variant and
/// puts no detail in the body; the variant is for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no signature header")]
    Unsigned,
    #[error("the request timestamp is missing or not an integer")]
    BadTimestamp,
    #[error("the request timestamp is outside the 5-minute window")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
    #[error("no client secret is configured")]
    NoSecret,
}

/// The parts of an incoming request that a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The public URL HubSpot called: scheme, host, path and query.
    pub uri: &'a str,
    pub body: &'a [u8],
    pub signature_v3: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature_v1: Option<&'a str>,
    pub signature_version: Option<&'a str>,
}

/// Verification policy: up to several secrets (key rotation) and whether legacy v1 is allowed.
#[derive(Clone)]
pub struct Verifier {
    secrets: Vec<String>,
    accept_v1: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &format_args!("[{} redacted]", self.secrets.len()))
            .field("accept_v1", &self.accept_v1)
            .finish()
    }
}

impl Verifier {
    /// `secrets` holds the current client secret and, during a rotation, the previous one.
    /// Empty strings are ignored.
    pub fn new(secrets: impl IntoIterator<Item = String>, accept_v1: bool) -> Self {
        Self {
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
            accept_v1,
        }
    }

    /// Verifies `request` at wall-clock `now_ms`. v3 is tried first; v1 only when enabled and
    /// the request carries no v3 signature, because v1 has no replay protection.
    pub fn verify(&self, request: &SignedRequest<'_>, now_ms: i64) -> Result<SignatureVersion, VerifyError> {
        if self.secrets.is_empty() {
            return Err(VerifyError::NoSecret);
        }
        if let Some(signature) = request.signature_v3 {
            let timestamp_text = request.timestamp.ok_or(VerifyError::BadTimestamp)?;
            let timestamp: i64 = timestamp_text.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
            // `abs_diff` cannot overflow on a hostile timestamp such as i64::MIN (`(a - b).abs()` can, and
            // would panic in debug builds before the request is even authenticated).
            if now_ms.abs_diff(timestamp) > MAX_TIMESTAMP_SKEW_MS.unsigned_abs() {
                return Err(VerifyError::Stale);
            }
            let matched = self.secrets.iter().any(|secret| {
                let expected = sign_v3(secret, request.method, request.uri, request.body, timestamp);
                constant_time_eq(expected.as_bytes(), signature.trim().as_bytes())
            });
            return if matched {
                Ok(SignatureVersion::V3)
            } else {
                Err(VerifyError::Mismatch)
            };
        }
        if let (true, Some(signature)) = (self.accept_v1, request.signature_v1) {
            if request.signature_version.is_some_and(|v| !v.eq_ignore_ascii_case("v1")) {
                return Err(VerifyError::Mismatch);
            }
            let matched = self.secrets.iter().any(|secret| {
                let expected = sign_v1(secret, request.body);
                constant_time_eq(expected.as_bytes(), signature.trim().to_ascii_lowercase().as_bytes())
            });
            return if matched {
                Ok(SignatureVersion::V1)
            } else {
                Err(VerifyError::Mismatch)
            };
        }
        Err(VerifyError::Unsigned)
    }
}

/// Constant-time comparison; the lengths of signatures are public, so an early length check
/// leaks nothing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const DOCS_V1_BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;

    #[test]
    fn v1_matches_hubspots_documented_vector() {
        assert_eq!(
            sign_v1(SECRET, DOCS_V1_BODY.as_bytes()),
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
        );
    }

    #[test]
    fn v2_matches_hubspots_documented_vectors() {
        let uri = "https://www.example.com/webhook_uri";
        assert_eq!(
            sign_v2(SECRET, "GET", uri, b""),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        );
        assert_eq!(
            sign_v2(SECRET, "POST", uri, br#"{"example_field":"example_value"}"#),
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
        );
    }

    #[test]
    fn v3_matches_hubspots_documented_vector() {
        assert_eq!(
            sign_v3(
                SECRET,
                "POST",
                "https://www.example.com/webhook_uri",
                b"{'example_field':'example_value'}",
                1_693_657_560_000
            ),
            "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="
        );
    }

    #[test]
    fn uri_decoding_touches_only_hubspots_listed_escapes() {
        assert_eq!(
            decode_signed_uri("https://h/p%3Aa%2fb?q=%40x%21%24%27%28%29%2A%2C%3B%3F&s=a%20b%26c%3Dd%"),
            "https://h/p:a/b?q=@x!$'()*,;?&s=a%20b%26c%3Dd%"
        );
    }

    fn v3_request<'a>(uri: &'a str, body: &'a [u8], signature: &'a str, timestamp: &'a str) -> SignedRequest<'a> {
        SignedRequest {
            method: "POST",
            uri,
            body,
            signature_v3: Some(signature),
            timestamp: Some(timestamp),
            signature_v1: None,
            signature_version: None,
        }
    }

    #[test]
    fn verifier_accepts_a_fresh_v3_signature_under_either_rotated_secret() {
        let now = 1_700_000_000_000;
        let uri = "https://example.com/webhooks/hubspot?x=%3A1";
        let signature = sign_v3("old-secret", "POST", uri, b"[]", now - 1_000);
        let ts = (now - 1_000).to_string();
        let verifier = Verifier::new(["new-secret".to_string(), "old-secret".to_string()], false);
        assert_eq!(
            verifier.verify(&v3_request(uri, b"[]", &signature, &ts), now),
            Ok(SignatureVersion::V3)
        );
    }

    #[test]
    fn verifier_rejects_tampered_stale_future_and_unsigned_requests() {
        let now = 1_700_000_000_000;
        let uri = "https://example.com/webhooks/hubspot";
        let verifier = Verifier::new(["s".to_string()], false);
        let sig = sign_v3("s", "POST", uri, b"[1]", now);
        let ts = now.to_string();
        assert_eq!(
            verifier.verify(&v3_request(uri, b"[2]", &sig, &ts), now),
            Err(VerifyError::Mismatch)
        );
        let old = now - MAX_TIMESTAMP_SKEW_MS - 1;
        let old_sig = sign_v3("s", "POST", uri, b"[1]", old);
        let old_ts = old.to_string();
        assert_eq!(
            verifier.verify(&v3_request(uri, b"[1]", &old_sig, &old_ts), now),
            Err(VerifyError::Stale)
        );
        let future = now + MAX_TIMESTAMP_SKEW_MS + 1;
        let future_sig = sign_v3("s", "POST", uri, b"[1]", future);
        let future_ts = future.to_string();
        assert_eq!(
            verifier.verify(&v3_request(uri, b"[1]", &future_sig, &future_ts), now),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verifier.verify(&v3_request(uri, b"[1]", &sig, "12.0"), now),
            Err(VerifyError::BadTimestamp)
        );
        let unsigned = SignedRequest {
            signature_v3: None,
            timestamp: None,
            ..v3_request(uri, b"[1]", "", "")
        };
        assert_eq!(verifier.verify(&unsigned, now), Err(VerifyError::Unsigned));
    }

    #[test]
    fn extreme_timestamps_are_stale_rather_than_an_overflow() {
        let uri = "https://example.com/webhooks/hubspot";
        let verifier = Verifier::new(["s".to_string()], false);
        for (now, timestamp) in [
            (1_700_000_000_000, i64::MIN),
            (1_700_000_000_000, i64::MAX),
            (i64::MAX, i64::MIN),
            (i64::MIN, i64::MAX),
            (-1, i64::MAX),
        ] {
            let ts = timestamp.to_string();
            assert_eq!(
                verifier.verify(&v3_request(uri, b"[]", "anything", &ts), now),
                Err(VerifyError::Stale),
                "now {now}, timestamp {timestamp}"
            );
        }
        // The extremes still work when they are fresh.
        let ts = i64::MAX.to_string();
        let sig = sign_v3("s", "POST", uri, b"[]", i64::MAX);
        assert_eq!(
            verifier.verify(&v3_request(uri, b"[]", &sig, &ts), i64::MAX),
            Ok(SignatureVersion::V3)
        );
    }

    #[test]
    fn v1_is_accepted_only_when_enabled() {
        let body = DOCS_V1_BODY.as_bytes();
        let signature = sign_v1(SECRET, body);
        let request = SignedRequest {
            method: "POST",
            uri: "https://example.com/",
            body,
            signature_v3: None,
            timestamp: None,
            signature_v1: Some(&signature),
            signature_version: Some("v1"),
        };
        assert_eq!(
            Verifier::new([SECRET.to_string()], false).verify(&request, 0),
            Err(VerifyError::Unsigned)
        );
        assert_eq!(
            Verifier::new([SECRET.to_string()], true).verify(&request, 0),
            Ok(SignatureVersion::V1)
        );
        let forged = SignedRequest {
            signature_v1: Some("00"),
            ..request
        };
        assert_eq!(
            Verifier::new([SECRET.to_string()], true).verify(&forged, 0),
            Err(VerifyError::Mismatch)
        );
    }
}
