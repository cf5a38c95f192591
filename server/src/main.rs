//! The `pdp` binary: see `pdp --help`.

use std::process::ExitCode;

fn main() -> ExitCode {
    pdp_server::cli::main()
}
