//! Every request of the shared benchmark workloads (`shared/bench/iam-S*.json`, or
//! `$PDP_BENCH_DIR`) gets the decision and reason it is labelled with, and the unindexed
//! `decide_scan` agrees with `decide`. A missing workload file fails the test.
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
fn workload_s1000() {
    run(1_000);
}

#[test]
fn workload_s10000() {
    run(10_000);
}
