//! `pdp-proto`: the PDP's gRPC API, `pdp.v1` (see `proto/pdp/v1/authorization.proto`).
//! Generated code only; conversions to and from the engine's types live in the server.

/// The `pdp.v1` package.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("pdp.v1");
}

/// The encoded file descriptor set of `pdp.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pdp_descriptor.bin"));
