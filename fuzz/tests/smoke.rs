//! The fuzz targets on stable Rust: for `FUZZ_SMOKE_SECONDS` (default 5) per target, feed them generated inputs
//! (the seeds, mutations of the seeds: bit flips, truncations, splices, inserted JSON tokens, and random bytes),
//! then every file under `corpus/<target>/` and `artifacts/<target>/` a cargo-fuzz run left behind. This is a
//! smoke run, not coverage-guided fuzzing: `scripts/fuzz-smoke` runs cargo fuzz when a nightly toolchain exists.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOKENS: [&[u8]; 14] = [
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"-1",
    b"1e999",
    b"\"0-3\"",
    b"\"deal.merge\"",
    b"\\u0000",
    b"99999999999999999999",
];

fn files(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect()
}

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..6) {
        match rng.random_range(0..6) {
            0 if !input.is_empty() => {
                let at = rng.random_range(0..input.len());
                input[at] ^= 1 << rng.random_range(0..8);
            }
            1 if !input.is_empty() => input.truncate(rng.random_range(0..input.len())),
            2 => {
                let token = TOKENS[rng.random_range(0..TOKENS.len())];
                let at = rng.random_range(0..=input.len());
                input.splice(at..at, token.iter().copied());
            }
            3 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() && !input.is_empty() {
                    let from = rng.random_range(0..other.len());
                    let at = rng.random_range(0..input.len());
                    input.splice(at..at, other[from..].iter().copied());
                }
            }
            4 if !input.is_empty() => {
                let at = rng.random_range(0..input.len());
                input[at] = rng.random();
            }
            _ => {
                let random: Vec<u8> = (0..rng.random_range(0..64)).map(|_| rng.random()).collect();
                input.extend(random);
            }
        }
    }
    input
}

fn smoke(target: &str, run: fn(&[u8])) -> u64 {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = files(&root.join("seeds").join(target));
    assert!(!seeds.is_empty(), "seeds/{target} has inputs");
    seeds.extend(files(&root.join("corpus").join(target)));
    for input in seeds.iter().chain(files(&root.join("artifacts").join(target)).iter()) {
        run(input);
    }
    let seconds: u64 = std::env::var("FUZZ_SMOKE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = StdRng::seed_from_u64(
        std::env::var("FUZZ_SMOKE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1),
    );
    let mut runs = 0;
    while Instant::now() < deadline {
        let input = if rng.random_range(0..10) == 0 {
            (0..rng.random_range(0..256)).map(|_| rng.random()).collect()
        } else {
            mutate(&mut rng, &seeds)
        };
        run(&input);
        runs += 1;
    }
    eprintln!("{target}: {runs} generated inputs in {seconds} s");
    runs
}

#[test]
fn the_webhook_parser_survives_generated_inputs() {
    assert!(smoke("webhook_parse", crmsync_fuzz::webhook_parse) > 0);
}

#[test]
fn the_signature_verifier_survives_generated_inputs() {
    assert!(smoke("signature_verify", crmsync_fuzz::signature_verify) > 0);
}
