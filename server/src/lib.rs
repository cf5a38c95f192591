//! `pdp-server`: the PDP service and the `pdp` command line.

pub mod audit;
pub mod authzen;
pub mod cache;
pub mod caller;
pub mod cli;
pub mod config;
pub mod conn;
pub mod decider;
pub mod decode_errors;
pub mod extauthz;
pub mod grpc;
pub mod http;
pub mod identity;
pub mod jwks;
pub mod metrics;
pub mod reload;
pub mod search;
pub mod serve;
pub mod shed;
pub mod signals;
pub mod start;
pub mod state;
pub mod telemetry;
pub mod trust;

/// At most `max` bytes of `s`, cut at a character boundary (for caller text kept in logs
/// and messages).
pub fn truncated(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or_default()
}
