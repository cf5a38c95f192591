//! The decision log's record formatting: the writer's hand-written JSON against the same
//! line written by `serde_json` (a derived `Serialize` over borrowed fields), each appending
//! to one reused buffer, in the same run. Both write the same bytes (checked before timing,
//! and by `audit::tests::serde_json_writes_the_same_line_as_the_writer`).
//!
//! Two records: a typical decision (all fields; every value plain), and one whose values
//! need escapes. `PDP_BENCH_QUICK=1` skips criterion and prints only the report (median of
//! timed batches, per record).

#[path = "util/mod.rs"]
mod util;

use std::hint::black_box;

use criterion::Criterion;
use pdp_server::audit::{AuditConfig, BenchFormat, Record, Text, GENESIS};

fn typical() -> Record {
    let time = chrono::DateTime::parse_from_rfc3339("2026-11-28T19:02:11.000042Z")
        .map(|t| t.to_utc())
        .unwrap_or_default();
    let mut r = Record::new(time, "check");
    r.peer = Some(([10, 1, 2, 3], 52_114).into());
    r.allowed = true;
    r.reason = "allowed";
    r.latency_us = 37;
    r.set(Text::DecisionId, "0f8fad5b-d9cb-469f-a165-70867728950e")
        .set(Text::TraceId, "0af7651916cd43dd8448eb211c80319c")
        .set(Text::Caller, " spiffe://example.org/ns/orders/sa/api")
        .set(Text::Subject, "alice@example.org")
        .set(Text::Action, "s3:GetObject")
        .set(
            Text::Resource,
            "arn:aws:s3:::my-bucket/data/report-2026-11.csv",
        )
        .set(Text::Revision, "6261f2bbd36934cf")
        .push_determining("app-data", "ReadData", 0)
        .push_obligation("audit");
    r
}

fn escaped() -> Record {
    let mut r = typical();
    r.set(Text::Subject, "ali\"ce\n")
        .set(Text::Resource, "arn:app:files:::C:\\data\\report\t2026.csv");
    r
}

fn main() {
    let mode = util::Mode::current();
    let config = AuditConfig::new("decisions.jsonl".into());
    let prev = GENESIS.as_bytes();
    let records = [("typical", typical()), ("escaped", escaped())];
    for (name, r) in &records {
        let mut format = BenchFormat::new(&config);
        let (mut hand, mut serde) = (Vec::new(), Vec::new());
        format.hand(1, prev, r, &mut hand);
        format.serde(1, prev, r, &mut serde);
        if hand != serde {
            eprintln!(
                "{name}: the two writers differ:\n{}\n{}",
                String::from_utf8_lossy(&hand),
                String::from_utf8_lossy(&serde)
            );
            std::process::exit(1);
        }
    }
    if !mode.quick {
        let mut c = Criterion::default().configure_from_args();
        for (name, r) in &records {
            let mut format = BenchFormat::new(&config);
            let mut buf = Vec::with_capacity(4096);
            c.bench_function(&format!("audit/format/{name}/hand"), |b| {
                b.iter(|| {
                    buf.clear();
                    format.hand(1, prev, black_box(r), &mut buf);
                    black_box(buf.len())
                })
            });
            c.bench_function(&format!("audit/format/{name}/serde_json"), |b| {
                b.iter(|| {
                    buf.clear();
                    format.serde(1, prev, black_box(r), &mut buf);
                    black_box(buf.len())
                })
            });
        }
        c.final_summary();
    }
    if !mode.report() {
        return;
    }
    println!("decision log record formatting (median per record, one reused buffer)");
    println!(
        "{:<10} {:>8} {:>12} {:>8} {:>6}",
        "record", "hand ns", "serde_json ns", "serde/hand", "bytes"
    );
    for (name, r) in &records {
        let mut format = BenchFormat::new(&config);
        let mut buf = Vec::with_capacity(4096);
        let hand = util::median_ns(20_000, || {
            buf.clear();
            format.hand(1, prev, black_box(r), &mut buf);
            black_box(buf.len());
        });
        let serde = util::median_ns(20_000, || {
            buf.clear();
            format.serde(1, prev, black_box(r), &mut buf);
            black_box(buf.len());
        });
        println!(
            "{name:<10} {hand:>8.1} {serde:>12.1} {:>10.2} {:>6}",
            serde / hand,
            buf.len()
        );
    }
}
