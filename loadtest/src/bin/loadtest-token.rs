//! Prints the load tests' demo subject token (see `pdp_loadtest::token`).
//!
//! `loadtest-token [RSA_PEM_KEY]` (default `server/tests/fixtures/rsa.pem`)

use std::process::ExitCode;

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "server/tests/fixtures/rsa.pem".to_owned());
    let pem = match std::fs::read(&path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("loadtest-token: cannot read `{path}`: {e}");
            return ExitCode::from(2);
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match pdp_loadtest::token::demo_token(&pem, now) {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadtest-token: `{path}`: {e}");
            ExitCode::from(1)
        }
    }
}
