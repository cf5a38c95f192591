//! The real [ghz](https://ghz.sh) against the real `pdp serve`, with every config in
//! `loadtest/ghz/` used as `loadtest/README.md` tells users to (server reflection, no
//! `--proto`; host given last): each runs about two seconds with no error and every call
//! `OK` (ghz's own counts agree: calls, status codes, per-call details), and the report `pdp-loadtest` writes for the same config has every field ghz's has,
//! with the same JSON types, so tools that read ghz's `-O json` read ours.
//!
//! ghz is found as `$PDP_GHZ`, then `ghz` on `PATH`, then `$HOME/go/bin/ghz` (where
//! `go install github.com/bojand/ghz/cmd/ghz@v0.121.0` puts it; `.ci/run` does that).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pdp_loadtest::ghz;
use serde_json::Value;

mod common;

/// Every config, and the flags that keep each run short and light on a small machine.
const CONFIGS: [&str; 4] = [
    "check-mix.json",
    "check-batch.json",
    "check-jwt.json",
    "ext-authz.json",
];
const RPS: u64 = 500;
const SECONDS: u64 = 2;

fn ghz_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PDP_GHZ").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("ghz"))
        .find(|p| p.is_file());
    let in_go_bin = std::env::var_os("HOME").map(|h| Path::new(&h).join("go/bin/ghz"));
    on_path
        .or(in_go_bin.filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "ghz not found (PDP_GHZ, PATH, ~/go/bin): install it with \
                 `go install github.com/bojand/ghz/cmd/ghz@v0.121.0`; .ci/run does"
            )
        })
}

fn config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../loadtest/ghz")
        .join(name)
}

/// The server the JWT and ext_authz configs need (loadtest/README.md): the test key's JWKS,
/// the token's issuer and audience.
fn start() -> common::Server {
    common::start_pdp(
        [
            "--jwks",
            &common::fixture("jwks.json"),
            "--issuer",
            "https://idp.example.test",
            "--audience",
            "pdp",
        ],
        &[],
    )
}

/// `ghz --config FILE -z 2s --rps 500 -c 4 --connections 1 -O json HOST`, parsed.
fn run_ghz(name: &str, host: &str) -> Value {
    let out = Command::new(ghz_binary())
        .arg("--config")
        .arg(config(name))
        .args(["-z", &format!("{SECONDS}s"), "--rps", &RPS.to_string()])
        .args(["-c", "4", "--connections", "1", "-O", "json", host])
        .output()
        .expect("run ghz");
    assert!(
        out.status.success(),
        "ghz on {name} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ghz on {name} wrote no JSON report: {e}"))
}

/// The same run with `pdp-loadtest` (its library, as the binary runs it), as JSON.
fn run_ours(name: &str, host: &str) -> Value {
    let mut o = ghz::Options::from_config_file(&config(name)).unwrap();
    o.host = host.to_owned();
    o.duration = Some(Duration::from_secs(SECONDS));
    o.rps = Some(RPS);
    o.concurrency = 4;
    o.connections = 1;
    let report = ghz::run_blocking(&o).unwrap();
    serde_json::to_value(&report).unwrap()
}

/// What a JSON value is, for comparing two reports' shapes.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every path in `theirs` that `ours` lacks or holds with another type. Arrays are compared
/// by their first items when both have one.
fn shape_differences(theirs: &Value, ours: &Value, path: &str, out: &mut Vec<String>) {
    match (theirs, ours) {
        (Value::Object(t), Value::Object(o)) => {
            for (k, tv) in t {
                let here = format!("{path}.{k}");
                match o.get(k) {
                    None => out.push(format!("{here}: missing ({})", kind(tv))),
                    Some(ov) => shape_differences(tv, ov, &here, out),
                }
            }
        }
        (Value::Array(t), Value::Array(o)) => {
            if let (Some(tv), Some(ov)) = (t.first(), o.first()) {
                shape_differences(tv, ov, &format!("{path}[]"), out);
            }
        }
        (t, o) if kind(t) != kind(o) => {
            out.push(format!("{path}: {} in ghz's, {} in ours", kind(t), kind(o)))
        }
        _ => {}
    }
}

/// The two tests load both CPUs of a small machine: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn every_config_runs_under_the_real_ghz_with_no_error() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let server = start();
    for name in CONFIGS {
        let report = run_ghz(name, &server.addr);
        let count = report["count"].as_u64().unwrap();
        // An open loop at 500 calls/s for 2 s: about 1,000 calls, fewer where a busy
        // machine's debug build falls behind, never none.
        assert!(
            (100..=1_050).contains(&count),
            "{name}: ghz counted {count} calls"
        );
        let errors = report["errorDistribution"].as_object();
        assert!(
            errors.is_none_or(serde_json::Map::is_empty),
            "{name}: {errors:?}"
        );
        let status = report["statusCodeDistribution"].as_object().unwrap();
        assert_eq!(
            status.get("OK").and_then(Value::as_u64),
            Some(count),
            "{name}: {status:?}"
        );
        assert_eq!(status.len(), 1, "{name}: {status:?}");
        assert_eq!(
            report["details"].as_array().map(Vec::len),
            Some(count as usize)
        );
    }
}

#[test]
fn pdp_loadtest_reports_carry_every_field_of_ghz_reports() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let server = start();
    for name in CONFIGS {
        let theirs = run_ghz(name, &server.addr);
        let ours = run_ours(name, &server.addr);
        let mut differences = Vec::new();
        shape_differences(&theirs, &ours, "", &mut differences);
        assert!(
            differences.is_empty(),
            "{name}: pdp-loadtest's report differs from ghz's:\n{}",
            differences.join("\n")
        );
        // The same load: both answered, every call OK. An open loop at 500 calls/s for 2 s
        // is about 1,000 calls, fewer where a busy machine's debug build falls behind (as in
        // the test above), never none.
        for (who, r) in [("ghz", &theirs), ("pdp-loadtest", &ours)] {
            let count = r["count"].as_u64().unwrap();
            assert!(
                (100..=1_100).contains(&count),
                "{name}: {who} counted {count}"
            );
            assert_eq!(
                r["statusCodeDistribution"],
                serde_json::json!({ "OK": count }),
                "{name}: {who}"
            );
        }
    }
}
