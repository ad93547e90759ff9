//! cargo fuzz target: the signature verifier (v3 and v1) and HubSpot's URI decoding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crmsync_fuzz::signature_verify(data));
