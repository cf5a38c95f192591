//! Writes `report.md` and `latency.png` from `pdp-loadtest` JSON reports (see
//! `pdp_loadtest::results`), in the order given.
//!
//! `loadtest-report --out DIR [--preamble FILE] REPORT.json...`

use std::path::PathBuf;
use std::process::ExitCode;

use pdp_loadtest::ghz::Report;

fn main() -> ExitCode {
    let mut out = None;
    let mut preamble = String::new();
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().map(PathBuf::from),
            "--preamble" => match args.next().map(std::fs::read_to_string) {
                Some(Ok(text)) => preamble = text,
                Some(Err(e)) => {
                    eprintln!("loadtest-report: cannot read the preamble: {e}");
                    return ExitCode::from(2);
                }
                None => {}
            },
            _ => files.push(PathBuf::from(a)),
        }
    }
    let Some(out) = out.filter(|_| !files.is_empty()) else {
        eprintln!("usage: loadtest-report --out DIR [--preamble FILE] REPORT.json...");
        return ExitCode::from(2);
    };
    let mut reports = Vec::new();
    for f in &files {
        let parsed = std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Report>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!("loadtest-report: `{}`: {e}", f.display());
                return ExitCode::from(1);
            }
        }
    }
    let md = pdp_loadtest::results::markdown(&reports, &preamble);
    if let Err(e) = std::fs::write(out.join("report.md"), md) {
        eprintln!("loadtest-report: cannot write report.md: {e}");
        return ExitCode::from(1);
    }
    if let Err(e) = pdp_loadtest::results::plot(&reports, &out.join("latency.png")) {
        eprintln!("loadtest-report: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
