//! The fuzz targets' bodies, shared by the libFuzzer binaries (`cargo fuzz run`, nightly) and the stable smoke
//! test (`cargo test --no-default-features`). Each one must never panic, whatever the bytes, and checks the
//! properties that must hold for every input it can make sense of.

use crmsync_domain::webhook::{WebhookEvent, apply_order, parse_batch};
use crmsync_hubspot::signature::{SignedRequest, Verifier, decode_signed_uri, sign_v1, sign_v3};

/// The parser: any bytes give events or an error naming a field, never a panic. Parsed events re-parse to the
/// same event from their stored JSON (what the applier does), sort totally, and their derived views are sound.
pub fn webhook_parse(data: &[u8]) {
    let Ok(events) = parse_batch(data) else {
        return;
    };
    let mut parsed: Vec<WebhookEvent> = Vec::with_capacity(events.len());
    for (index, (event, raw)) in events.into_iter().enumerate() {
        let again = WebhookEvent::from_value(&raw, index).expect("a stored event parses again");
        assert_eq!(again, event, "parsing is deterministic");
        if let Some((survivor, replaced)) = event.merge_ids() {
            assert!(!replaced.contains(&survivor), "the survivor never replaces itself");
        }
        if let Some(link) = event.company_link() {
            assert_ne!(link.child, crmsync_domain::webhook::ObjectKind::Company);
        }
        let _ = event.is_own_write(Some("54321"));
        parsed.push(event);
    }
    parsed.sort_by(apply_order);
    for pair in parsed.windows(2) {
        assert_ne!(apply_order(&pair[0], &pair[1]), std::cmp::Ordering::Greater, "sorted");
        assert!(pair[0].occurred_at <= pair[1].occurred_at, "occurredAt order");
    }
}

/// Splits fuzz bytes into the parts of a signed request: a flags byte, then NUL-separated secret, URI, body,
/// signature and timestamp text.
fn parts(data: &[u8]) -> Option<(u8, Vec<&[u8]>)> {
    let (&flags, rest) = data.split_first()?;
    Some((flags, rest.splitn(5, |b| *b == 0).collect()))
}

/// The verifier: arbitrary headers and bodies never panic and never verify unless signed with a configured
/// secret; a request signed with it verifies inside the 5-minute window and fails outside it or when any byte of
/// the body changes.
pub fn signature_verify(data: &[u8]) {
    let Some((flags, parts)) = parts(data) else {
        return;
    };
    let text = |i: usize| {
        parts
            .get(i)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default()
    };
    let (secret, uri, signature, timestamp) = (text(0), text(1), text(3), text(4));
    let body: &[u8] = parts.get(2).copied().unwrap_or_default();
    let _ = decode_signed_uri(&uri);
    let accept_v1 = flags & 1 == 1;
    let verifier = Verifier::new([secret.clone(), "rotated-secret".to_owned()], accept_v1);
    let now: i64 = 1_700_000_000_000;

    // Arbitrary signature text: only an exact match can pass, which the fuzzer cannot forge.
    let request = SignedRequest {
        method: "POST",
        uri: &uri,
        body,
        signature_v3: (flags & 2 == 2).then_some(signature.as_str()),
        timestamp: Some(timestamp.as_str()),
        signature_v1: (flags & 4 == 4).then_some(signature.as_str()),
        signature_version: (flags & 8 == 8).then_some("v1"),
    };
    if let Ok(version) = verifier.verify(&request, now) {
        let expected_v3 = |s: &str| sign_v3(s, "POST", &uri, body, timestamp.trim().parse().unwrap_or(0));
        let matches_v3 = [secret.as_str(), "rotated-secret"]
            .iter()
            .any(|s| !s.is_empty() && expected_v3(s) == signature.trim());
        let matches_v1 = [secret.as_str(), "rotated-secret"]
            .iter()
            .any(|s| !s.is_empty() && sign_v1(s, body) == signature.trim().to_ascii_lowercase());
        assert!(
            matches_v3 || matches_v1,
            "verified {version:?} without a matching signature"
        );
    }

    // A genuine signature with the configured secret.
    if secret.is_empty() {
        return;
    }
    let skew = i64::from(flags >> 4) * 40_000 - 300_000; // -5 min .. +5 min in 40 s steps
    let signed_at = now + skew;
    let genuine = sign_v3(&secret, "POST", &uri, body, signed_at);
    let stamp = signed_at.to_string();
    let request = SignedRequest {
        method: "POST",
        uri: &uri,
        body,
        signature_v3: Some(&genuine),
        timestamp: Some(&stamp),
        signature_v1: None,
        signature_version: None,
    };
    assert!(
        verifier.verify(&request, now).is_ok(),
        "a genuine signature inside the window verifies"
    );
    assert!(
        verifier.verify(&request, now + 300_001 + skew.max(0)).is_err(),
        "a genuine signature is stale after 5 minutes"
    );
    let mut tampered = body.to_vec();
    match tampered.first_mut() {
        Some(first) => *first ^= 1,
        None => tampered.push(b'x'),
    }
    let request = SignedRequest {
        body: &tampered,
        ..request
    };
    assert!(verifier.verify(&request, now).is_err(), "a changed body fails");
}
