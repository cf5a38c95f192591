//! The bodies of the fuzz targets, as plain functions so that `engine/tests/fuzz_seeds.rs`
//! can run them over the seed corpus in a normal `cargo test`.

#![forbid(unsafe_code)]

pub mod body;
