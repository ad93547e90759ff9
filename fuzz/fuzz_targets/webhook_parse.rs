//! cargo fuzz target: the webhook batch parser and everything derived from a parsed event.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| crmsync_fuzz::webhook_parse(data));
