//! Runs the body of the `parse_compile_decide` fuzz target (shared with `engine/fuzz/` as a
//! source file) over its seed corpus in `engine/fuzz/seeds/`, and over every truncation and
//! a few byte flips of each seed, so its logic is exercised by a plain `cargo test`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../fuzz/src/body.rs"]
mod body;

use std::path::PathBuf;

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 3, "expected seed files in {}", dir.display());
    out
}

#[test]
fn every_valid_seed_compiles_and_decides_and_invalid_ones_are_rejected() {
    let mut allowed = 0;
    for (name, data) in seeds() {
        let outcome = body::parse_compile_decide(&data);
        if name.starts_with("invalid-") {
            assert_eq!(
                outcome.compiled, 0,
                "{name} should not compile: {outcome:?}"
            );
        } else {
            assert!(
                outcome.compiled > 0 && outcome.decided > 0,
                "{name} should compile and decide: {outcome:?}"
            );
        }
        allowed += outcome.allowed;
    }
    assert!(
        allowed > 0,
        "no seed request is allowed; the seeds exercise too little"
    );
}

#[test]
fn truncated_and_mutated_seeds_never_panic() {
    for (_, data) in seeds() {
        for end in (0..data.len()).step_by(5) {
            let _ = body::parse_compile_decide(&data[..end]);
        }
        for (i, flip) in [(7usize, 0x20u8), (31, 0x01), (97, 0x80), (211, 0x0f)] {
            let mut m = data.clone();
            if let Some(b) = m.get_mut(i % data.len().max(1)) {
                *b ^= flip;
            }
            let _ = body::parse_compile_decide(&m);
        }
    }
}
