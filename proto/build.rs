//! Compiles `proto/pdp/v1/*.proto` with protox (no protoc binary) and generates the tonic
//! service code, plus the file descriptor sets that server reflection serves (ours, and
//! Envoy's ext_authz from `vendor/`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/pdp/v1/authorization.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("pdp_descriptor.bin"),
        protox::prost::Message::encode_to_vec(&fds),
    )?;
    // Envoy's ext_authz service, served through envoy-types' code: only its descriptors
    // are needed here (for reflection), from the vendored copy of its .proto files.
    println!("cargo:rerun-if-changed=vendor");
    let envoy = protox::compile(["envoy/service/auth/v3/external_auth.proto"], ["vendor"])?;
    std::fs::write(
        out.join("envoy_ext_authz_descriptor.bin"),
        protox::prost::Message::encode_to_vec(&envoy),
    )?;
    tonic_prost_build::configure()
        // Rarely present: boxed, so every `CheckResponse` stays small.
        .boxed(".pdp.v1.CheckResponse.explanation")
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
