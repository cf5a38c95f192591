//! The cost of the signal lookup on the Check path: `Store::lookup` for a subject with no
//! signal in an empty store (the common case, a fast path), a subject without signals in a
//! store of 100,000 subjects, sessions and devices, and a subject with a risk level, a session
//! and a device that all have signals. The baseline, measured in the same run, is one
//! `HashMap<String, u64>` lookup of the same key.
//!
//! Prints a report (median of many timed batches, per lookup); `PDP_BENCH_QUICK=1` skips
//! criterion and prints only the report.

#[path = "util/mod.rs"]
mod util;

use std::collections::HashMap;
use std::hint::black_box;

use criterion::Criterion;
use pdp_server::signals::store::{Query, Store, StoreConfig};
use pdp_server::signals::{Kind, RiskLevel, Signal};

const ENTRIES: usize = 100_000;
const TARGET_NS: f64 = 2000.0;

fn filled() -> Store {
    let store = Store::new(StoreConfig {
        max_entries: 4 * ENTRIES,
        ..StoreConfig::default()
    });
    for i in 0..ENTRIES / 3 {
        let mut risk = Signal::new(Kind::RiskLevelChange, 1);
        risk.subject = format!("user-{i}");
        risk.risk = Some(RiskLevel::Medium);
        let mut session = Signal::new(Kind::SessionRevoked, 1);
        session.session = format!("session-{i}");
        let mut device = Signal::new(Kind::DeviceComplianceChange, 1);
        device.device = format!("device-{i}");
        device.compliant = Some(true);
        for s in [risk, session, device] {
            if let Err(e) = store.apply(&s) {
                eprintln!("cannot fill the store: {e}");
                std::process::exit(1);
            }
        }
    }
    store
}

fn main() {
    let mode = util::Mode::current();
    let empty = Store::new(StoreConfig::default());
    let store = filled();
    let baseline: HashMap<String, u64> = (0..ENTRIES).map(|i| (format!("user-{i}"), 1)).collect();
    let miss = Query {
        subject: "alice",
        session: "s-alice",
        device: "d-alice",
        issued_at: Some(10),
    };
    let hit = Query {
        subject: "user-777",
        session: "session-778",
        device: "device-779",
        issued_at: Some(10),
    };
    if !mode.quick {
        let mut c = Criterion::default().configure_from_args();
        c.bench_function("signals/lookup/empty", |b| {
            b.iter(|| black_box(empty.lookup(black_box(&miss), 100)))
        });
        c.bench_function("signals/lookup/miss", |b| {
            b.iter(|| black_box(store.lookup(black_box(&miss), 100)))
        });
        c.bench_function("signals/lookup/hit", |b| {
            b.iter(|| black_box(store.lookup(black_box(&hit), 100)))
        });
        c.bench_function("signals/baseline/hashmap", |b| {
            b.iter(|| black_box(baseline.get(black_box("user-777"))))
        });
        c.final_summary();
    }
    if !mode.report() {
        return;
    }
    let base = util::median_ns(10_000, || {
        black_box(baseline.get(black_box("user-777")));
    });
    println!("signal lookup on the Check path (median per lookup; target <= {TARGET_NS} ns)");
    println!("{:<52} {:>9} {:>8}", "case", "ns", "x base");
    println!(
        "{:<52} {:>9.1} {:>8.2}",
        "baseline: one HashMap<String, u64> get", base, 1.0
    );
    for (name, store, q) in [
        ("empty store (fast path)", &empty, &miss),
        ("100k entries, subject without signals", &store, &miss),
        (
            "100k entries, subject+session+device with signals",
            &store,
            &hit,
        ),
    ] {
        let ns = util::median_ns(10_000, || {
            black_box(store.lookup(black_box(q), 100));
        });
        println!(
            "{name:<52} {ns:>9.1} {:>8.2} {}",
            ns / base,
            if ns <= TARGET_NS { "ok" } else { "OVER TARGET" }
        );
    }
}
