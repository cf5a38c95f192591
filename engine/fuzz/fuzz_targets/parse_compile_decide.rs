//! Fuzz target: policy text, bindings and a request in; build the set and decide; nothing
//! may panic, and the indexed decision must equal a full scan.
//!
//! Input format (documented in full in `src/body.rs`): parts separated by a line `%%%`:
//! policy document (tried as JSON and as YAML), `bindings.yaml`, request JSON, then up to
//! four more policy documents. Seeds in `engine/fuzz/seeds/`; run from `engine/` with
//! `mkdir -p fuzz/corpus/parse_compile_decide` and then
//! `cargo fuzz run parse_compile_decide fuzz/corpus/parse_compile_decide fuzz/seeds`
//! (new inputs go to the first, git-ignored, directory; add `RUSTC_BOOTSTRAP=1` on stable).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = pdp_engine_fuzz::body::parse_compile_decide(data);
});
