//! The load generator (`pdp-loadtest`, crate `pdp-loadtest`) against the real `pdp serve`,
//! in-process through its library API, with the ghz configs in `loadtest/ghz/`: a short run
//! has no errors, sees both allows and denies, and writes ghz's JSON report and summary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use pdp_loadtest::ghz;
use serde_json::Value;

mod common;

/// The open-loop test checks that requests leave on schedule, which holds only when the
/// generator gets a CPU: it runs alone (write), the closed-loop tests, which keep both of a
/// small machine's CPUs busy, beside one another (read).
static CPUS: RwLock<()> = RwLock::new(());

fn ghz_config(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../loadtest/ghz")
        .join(name)
}

/// Options from a config, pointed at `host`, run for `secs` on one generator thread.
fn options(config: &str, host: &str, secs: u64) -> ghz::Options {
    let mut o = ghz::Options::from_config_file(&ghz_config(config)).unwrap();
    o.host = host.to_owned();
    o.duration = Some(Duration::from_secs(secs));
    o.total = u64::MAX;
    o.cpus = 1;
    o.concurrency = 8;
    o.connections = 2;
    o
}

#[test]
fn open_loop_keeps_its_schedule_and_reports_the_send_lag() {
    let _alone = CPUS.write().unwrap_or_else(PoisonError::into_inner);
    let server = common::start_pdp(Vec::<&str>::new(), &[]);
    let mut o = options("check-mix.json", &server.addr, 2);
    o.rps = Some(1_000);
    // A shared machine can stall a whole run (page writeback, a noisy neighbour): the
    // schedule must hold in one of three runs. A pacer that sends late does so every time.
    let mut lags = Vec::new();
    let mut on_time = None;
    for _ in 0..3 {
        let report = ghz::run_blocking(&o).unwrap();
        assert_eq!(report.errors(), 0, "{}", report.summary());
        // The pacer releases exactly `rps` requests per second of the run (2 s), no more,
        // and this light load is answered in full.
        assert!((1_900..=2_000).contains(&report.count), "{}", report.count);
        let lag = report
            .open_loop_lag
            .expect("an open loop reports its send lag");
        assert!(lag.p50 <= lag.p99 && lag.p99 <= lag.max, "{lag:?}");
        lags.push(lag);
        // Requests go out on time: a release is late by the pacer's sleep (tens of
        // microseconds) plus scheduling. On a quiet machine the median is well under the
        // 1 ms between two requests; right after a build has filled the page cache it
        // reaches 1.5 ms. A pacer that falls behind its schedule is late by a growing
        // amount, hundreds of milliseconds by the end of a 2 s run: the median stays under
        // 5 requests' spacing.
        if lag.p50 < 5_000_000 {
            on_time = Some(report);
            break;
        }
    }
    let report = on_time.unwrap_or_else(|| panic!("late in every run: {lags:?}"));
    assert_eq!(report.sent_latency_distribution.len(), 7);
}

#[test]
fn mixed_check_load_has_no_errors_and_reports_in_ghz_format() {
    let _shared = CPUS.read().unwrap_or_else(PoisonError::into_inner);
    let server = common::start_pdp(Vec::<&str>::new(), &[]);
    let report = ghz::run_blocking(&options("check-mix.json", &server.addr, 2)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let summary_path = dir.path().join("summary.txt");
    ghz::write(&report, ghz::Format::Json, &json_path).unwrap();
    ghz::write(&report, ghz::Format::Summary, &summary_path).unwrap();

    assert_eq!(report.errors(), 0, "{}", report.summary());
    assert!(report.count > 0);
    let d = report.decision_distribution;
    assert!(d.allow > 0 && d.deny > 0, "{d:?}");
    assert_eq!(d.allow + d.deny, report.count);
    // The config denies one request in four (no MFA).
    let denied = d.deny as f64 / report.count as f64;
    assert!((0.2..0.3).contains(&denied), "{denied}");

    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    for key in [
        "date",
        "options",
        "count",
        "total",
        "average",
        "fastest",
        "slowest",
        "rps",
        "errorDistribution",
        "statusCodeDistribution",
        "latencyDistribution",
        "histogram",
        "details",
        "decisionDistribution",
    ] {
        assert!(v.get(key).is_some(), "no `{key}` in {v}");
    }
    assert_eq!(v["count"], report.count);
    assert_eq!(v["statusCodeDistribution"]["OK"], report.count);
    assert!(v["errorDistribution"].as_object().unwrap().is_empty());
    let percentages: Vec<u64> = v["latencyDistribution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["percentage"].as_u64().unwrap())
        .collect();
    assert_eq!(percentages, [10, 25, 50, 75, 90, 95, 99]);
    // ghz writes durations in nanoseconds: a call on loopback takes microseconds, the run
    // about two seconds.
    let average = v["average"].as_u64().unwrap();
    assert!((1_000..1_000_000_000).contains(&average), "{average}");
    let total = v["total"].as_u64().unwrap();
    assert!((1_900_000_000..10_000_000_000).contains(&total), "{total}");
    assert_eq!(v["histogram"].as_array().unwrap().len(), 11);
    assert_eq!(v["decisionDistribution"]["deny"], d.deny);

    let summary = std::fs::read_to_string(&summary_path).unwrap();
    for line in [
        "Summary:",
        "  Count:\t",
        "  Requests/sec:\t",
        "Response time histogram:",
        "Latency distribution:",
        "  99 % in ",
        "Status code distribution:",
        "  [OK]",
        "Decision distribution:",
    ] {
        assert!(summary.contains(line), "no `{line}` in\n{summary}");
    }
}

#[test]
fn ext_authz_load_with_a_token_is_allowed_and_denied_without_errors() {
    let _shared = CPUS.read().unwrap_or_else(PoisonError::into_inner);
    let jwks = format!("{}/tests/fixtures/jwks.json", env!("CARGO_MANIFEST_DIR"));
    let server = common::start_pdp(
        [
            "--jwks",
            &jwks,
            "--issuer",
            "https://idp.example.test",
            "--audience",
            "pdp",
        ],
        &[],
    );
    let report = ghz::run_blocking(&options("ext-authz.json", &server.addr, 1)).unwrap();
    assert_eq!(report.errors(), 0, "{}", report.summary());
    let d = report.decision_distribution;
    assert!(d.allow > 0 && d.deny > 0, "{}", report.summary());
}

#[test]
fn every_ghz_config_makes_its_requests() {
    let _shared = CPUS.read().unwrap_or_else(PoisonError::into_inner);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../loadtest/ghz");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let o = ghz::Options::from_config_file(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ghz::data::Payloads::compile(o.call, &o.data, &o.metadata)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 4, "{seen} configs in {}", dir.display());
}

#[test]
fn load_with_the_signal_store_out_of_reach_is_served_and_reported() {
    let _shared = CPUS.read().unwrap_or_else(PoisonError::into_inner);
    // Nothing listens on port 1: the server starts without the store and keeps answering.
    let server = common::start_pdp(["--signals", "redis://127.0.0.1:1"], &[]);
    let mut report = ghz::run_blocking(&options("check-mix.json", &server.addr, 1)).unwrap();
    assert_eq!(report.errors(), 0, "{}", report.summary());
    let d = report.decision_distribution;
    assert!(d.allow > 0 && d.deny > 0, "{}", report.summary());

    report.name = Some("Check, Redis unreachable".into());
    report.tags.insert("role".into(), "redis-down".into());
    let md = pdp_loadtest::results::markdown(&[report], "");
    assert!(md.contains("## Unreachable Redis"), "{md}");
    assert!(
        md.contains(
            "- Check, Redis unreachable (`--signals` pointing at a port where nothing listens)"
        ),
        "{md}"
    );
    assert!(md.contains("errors: 0,"), "{md}");
    assert!(md.contains(": served throughout."), "{md}");
}
