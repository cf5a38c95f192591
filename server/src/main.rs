//! The `pdp` binary: see `pdp --help`.

use std::process::ExitCode;

/// mimalloc: compiling a policy set is allocation-heavy, and it lays out the compiled set
/// more compactly than the system allocator, which decisions feel as fewer cache misses.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    pdp_server::cli::main()
}
