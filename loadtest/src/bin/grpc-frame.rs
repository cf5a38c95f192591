//! Writes the README's example CheckRequest as a gRPC frame, for `h2load -d FILE`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: grpc-frame OUT_FILE");
        return ExitCode::from(2);
    };
    match std::fs::write(
        &path,
        pdp_loadtest::grpc_frame(&pdp_loadtest::readme_request()),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write `{path}`: {e}");
            ExitCode::from(1)
        }
    }
}
