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
pub mod serve;
pub mod shed;
pub mod signals;
pub mod start;
pub mod state;
pub mod telemetry;
pub mod trust;
