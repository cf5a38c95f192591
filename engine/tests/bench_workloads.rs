//! Every request of the benchmark workloads gets the decision and reason it is labelled with,
//! and the unindexed `decide_scan` agrees with `decide`. S = 10 and S = 100 are kept in the
//! repository (`benches/workloads/`); S = 1,000 and S = 10,000 are larger than belongs in it
//! and run with `cargo test -p pdp-engine --test bench_workloads -- --ignored` once
//! `$PDP_BENCH_DIR` names a directory holding them. A missing workload file fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../benches/workload/mod.rs"]
mod workload;

fn run(s: usize) {
    let (w, set) = workload::load_built(s).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        set.statement_count(),
        w.statements,
        "{}: the compiled set's statement count differs from the file's",
        w.origin
    );
    let check = w.check(&set, 10);
    assert_eq!(check.checked, w.requests.len());
    assert!(check.ok(), "{}", check.summary(&w.origin));
}

#[test]
fn workload_s10() {
    run(10);
}

#[test]
fn workload_s100() {
    run(100);
}

#[test]
#[ignore = "needs iam-S1000.json in $PDP_BENCH_DIR"]
fn workload_s1000() {
    run(1_000);
}

#[test]
#[ignore = "needs iam-S10000.json in $PDP_BENCH_DIR"]
fn workload_s10000() {
    run(10_000);
}
