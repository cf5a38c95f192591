//! `pdp-loadtest`: a ghz-compatible load generator for the PDP (see `loadtest/README.md`).
//!
//! `pdp-loadtest --config loadtest/ghz/check-mix.json [ghz flags] [HOST]`

use std::process::ExitCode;

use clap::Parser;
use pdp_loadtest::ghz;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let options = match ghz::Options::from_cli(ghz::Cli::parse()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pdp-loadtest: {e}");
            return ExitCode::from(2);
        }
    };
    let report = match ghz::run_blocking(&options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pdp-loadtest: {e}");
            return ExitCode::from(1);
        }
    };
    let written = match &options.output {
        Some(path) => ghz::write(&report, options.format, path)
            .map_err(|e| format!("cannot write `{}`: {e}", path.display())),
        None => ghz::render(&report, options.format)
            .map(|text| println!("{text}"))
            .map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pdp-loadtest: {e}");
            ExitCode::from(1)
        }
    }
}
