//! Decision benchmarks over the IAM workloads (`benches/workloads/iam-S{10,100}.json`, and
//! S = 1,000 and 10,000 from `$PDP_BENCH_DIR` when it holds them).
//!
//! Every workload is loaded, compiled and checked against its `expected` decisions before
//! anything is timed (a mismatch prints the first few and exits 1). Then:
//! - criterion groups `decide/S` (indexed, one decision per iteration, cycling through all
//!   requests), `plan/S` (a query plan per request, its resource left out) and
//!   `decide_scan/S` (the unindexed baseline);
//! - a report: per-decision latency of the indexed path (requests where they lie, and "hot":
//!   each request copied just before it is decided, as the server decodes it) and of the scan
//!   (each decision timed on its own with `Instant`, 3 interleaved passes over all requests
//!   after a warm-up pass, nothing subtracted), live bytes per compiled statement and heap
//!   bytes allocated per decision (both counted by the global allocator), and the targets.
//!
//! Compile time is measured by the `compile` benchmark, over the allocator the product uses
//! without this one's counting.
//!
//! `PDP_BENCH_QUICK=1` skips criterion and prints only the report. Run without `--bench`
//! (`cargo test --benches`), criterion runs each benchmark once and the report is skipped.

use std::hint::black_box;
use std::time::Instant;

use cap::Cap;
use criterion::{BenchmarkId, Criterion, Throughput};
use pdp_engine::{Decision, PlanRequest, PolicySet, Request};

#[path = "workload/mod.rs"]
mod workload;

use workload::{fail, Workload};

/// Counts live heap bytes, for the memory-per-statement figure, over mimalloc, the allocator
/// the `pdp` binary uses. Its bookkeeping slows allocation, so compile time is measured by
/// the `compile` benchmark instead.
#[global_allocator]
static ALLOC: Cap<mimalloc::MiMalloc> = Cap::new(mimalloc::MiMalloc, usize::MAX);

/// Timed passes over all requests for the latency distribution.
const PASSES: usize = 3;

struct Loaded {
    s: usize,
    workload: Workload,
    set: PolicySet,
}

fn main() {
    let mode = workload::Mode::current();
    let mut loaded = Vec::new();
    for s in workload::available_sizes() {
        let (workload, set) = workload::load_built(s).unwrap_or_else(|e| fail(&e));
        let check = workload.check(&set, 10);
        if !check.ok() {
            fail(&check.summary(&workload.origin));
        }
        println!(
            "verified {}: {} statements, {} requests, all decisions as expected, decide_scan agrees",
            workload.origin,
            set.statement_count(),
            check.checked
        );
        loaded.push(Loaded { s, workload, set });
    }

    if !mode.quick {
        let mut c = Criterion::default().configure_from_args();
        criterion_groups(&mut c, &loaded);
        c.final_summary();
    }
    if mode.report() {
        report(&loaded);
    } else {
        println!("(not run with --bench: report skipped)");
    }
}

fn criterion_groups(c: &mut Criterion, loaded: &[Loaded]) {
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(1));
    for l in loaded {
        let mut requests = l.workload.requests.iter().cycle();
        group.bench_function(BenchmarkId::from_parameter(l.s), |b| {
            b.iter(|| requests.next().map(|r| l.set.decide(black_box(r))));
        });
    }
    group.finish();

    // Query plans for the workload's requests without their resources: the subject's
    // statements only, so the figure should barely grow with S.
    let mut group = c.benchmark_group("plan");
    group.throughput(Throughput::Elements(1));
    for l in loaded {
        let planned: Vec<PlanRequest> = l
            .workload
            .requests
            .iter()
            .map(|r| PlanRequest {
                subject: r.subject.clone(),
                action: r.action.clone(),
                context: r.context.clone(),
                now: r.now,
            })
            .collect();
        let mut requests = planned.iter().cycle();
        group.bench_function(BenchmarkId::from_parameter(l.s), |b| {
            b.iter(|| requests.next().map(|r| l.set.plan(black_box(r))));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("decide_scan");
    group.throughput(Throughput::Elements(1));
    for l in loaded {
        let mut requests = l.workload.requests.iter().cycle();
        group.bench_function(BenchmarkId::from_parameter(l.s), |b| {
            b.iter(|| requests.next().map(|r| l.set.decide_scan(black_box(r))));
        });
    }
    group.finish();
}

/// Per-size results of the report.
struct Row {
    s: usize,
    statements: usize,
    median_ns: u64,
    p99_ns: u64,
    hot_median_ns: u64,
    hot_p99_ns: u64,
    scan_median_ns: u64,
    alloc_bytes_per_decision: f64,
    bytes_per_statement: f64,
}

type DecideFn = for<'s> fn(&'s PolicySet, &Request) -> Decision<'s>;

/// Times each decision on its own over all requests, appending nanoseconds to `out`.
fn time_pass(set: &PolicySet, requests: &[Request], decide: DecideFn, out: &mut Vec<u64>) {
    for r in requests {
        let start = Instant::now();
        black_box(decide(set, black_box(r)));
        let elapsed = start.elapsed();
        out.push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// Like [`time_pass`], but each request is first copied, untimed, so that the decision finds
/// it in cache: as in the server, where a request is decoded just before it is decided. The
/// plain pass decides the requests in place, so each decision also pays cache misses for a
/// request last touched 10,000 decisions ago.
fn time_pass_hot(set: &PolicySet, requests: &[Request], out: &mut Vec<u64>) {
    for r in requests {
        let hot = black_box(r.clone());
        let start = Instant::now();
        black_box(set.decide(black_box(&hot)));
        let elapsed = start.elapsed();
        out.push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        drop(hot);
    }
}

/// Sorted per-decision latencies.
struct Latencies {
    indexed: Vec<u64>,
    hot: Vec<u64>,
    scan: Vec<u64>,
}

/// Per-decision latencies of the indexed path (requests in place, and hot), and of the scan
/// baseline: a warm-up pass of each, then `PASSES` timed passes of each, interleaved so that
/// all see the same machine conditions.
fn latencies(set: &PolicySet, requests: &[Request]) -> Latencies {
    for r in requests {
        black_box(set.decide(black_box(r)));
        black_box(set.decide_scan(black_box(r)));
    }
    let n = requests.len() * PASSES;
    let mut l = Latencies {
        indexed: Vec::with_capacity(n),
        hot: Vec::with_capacity(n),
        scan: Vec::with_capacity(n),
    };
    for _ in 0..PASSES {
        time_pass(set, requests, PolicySet::decide, &mut l.indexed);
        time_pass_hot(set, requests, &mut l.hot);
        time_pass(set, requests, PolicySet::decide_scan, &mut l.scan);
    }
    l.indexed.sort_unstable();
    l.hot.sort_unstable();
    l.scan.sort_unstable();
    l
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
        .unwrap_or(0)
}

/// The median cost of the timing itself (an `Instant::now` and `elapsed` around nothing), for
/// reading the latencies: it is included in them, not subtracted.
fn timer_overhead_ns() -> u64 {
    let mut out = Vec::with_capacity(30_000);
    for _ in 0..30_000 {
        let start = Instant::now();
        let elapsed = black_box(start).elapsed();
        out.push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }
    out.sort_unstable();
    quantile(&out, 0.5)
}

fn measure(l: &Loaded) -> Row {
    let w = &l.workload;
    let lat = latencies(&l.set, &w.requests);

    // Heap traffic of the indexed path: bytes allocated (even if freed at once) over one pass.
    let total_before = ALLOC.total_allocated();
    for r in &w.requests {
        black_box(l.set.decide(black_box(r)));
    }
    let allocated = ALLOC.total_allocated().saturating_sub(total_before);

    // Memory: live bytes after building minus before (the set keeps none of its inputs: the
    // cloned bindings it is built with count, as they are part of it).
    let before = ALLOC.allocated();
    let set = match w.build() {
        Ok(set) => set,
        Err(e) => fail(&e),
    };
    let after = ALLOC.allocated();
    let statements = set.statement_count();
    let live = after.saturating_sub(before);
    drop(black_box(set));

    Row {
        s: l.s,
        statements,
        median_ns: quantile(&lat.indexed, 0.5),
        p99_ns: quantile(&lat.indexed, 0.99),
        hot_median_ns: quantile(&lat.hot, 0.5),
        hot_p99_ns: quantile(&lat.hot, 0.99),
        scan_median_ns: quantile(&lat.scan, 0.5),
        alloc_bytes_per_decision: allocated as f64 / w.requests.len().max(1) as f64,
        bytes_per_statement: live as f64 / statements.max(1) as f64,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

fn report(loaded: &[Loaded]) {
    let rows: Vec<Row> = loaded.iter().map(measure).collect();
    println!();
    println!(
        "## Decision latency per request ({PASSES} passes over all requests after a warm-up pass, \
         indexed and scan passes interleaved, each decision timed alone with Instant, nothing \
         subtracted)"
    );
    println!();
    println!(
        "Timer overhead (Instant::now + elapsed around nothing), included in every latency: median {} ns.",
        timer_overhead_ns()
    );
    println!("Bytes/statement: live heap bytes the built set holds (counting global allocator) / statements. Compile time: `cargo bench -p pdp-engine --bench compile`.");
    println!();
    println!("\"hot\": each request copied (untimed) just before it is decided, as the server decodes it just before deciding; the other columns decide the 10,000 requests where they lie.");
    println!();
    println!("| S | statements | median ns | p99 ns | median ns, hot | p99 ns, hot | scan median ns | speedup | bytes/statement |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2}x | {:.0} |",
            r.s,
            r.statements,
            r.median_ns,
            r.p99_ns,
            r.hot_median_ns,
            r.hot_p99_ns,
            r.scan_median_ns,
            r.scan_median_ns as f64 / r.median_ns.max(1) as f64,
            r.bytes_per_statement
        );
    }
    println!();
    let allocs: Vec<String> = rows
        .iter()
        .map(|r| format!("S={}: {:.1}", r.s, r.alloc_bytes_per_decision))
        .collect();
    println!(
        "Heap bytes allocated per indexed decision (freed or not; 0 = allocation-free): {}",
        allocs.join(", ")
    );
    println!();

    let smallest = rows.iter().min_by_key(|r| r.s);
    let largest = rows.iter().max_by_key(|r| r.s);
    let (Some(small), Some(large)) = (smallest, largest) else {
        println!("no workloads measured");
        return;
    };
    let growth = large.median_ns as f64 / small.median_ns.max(1) as f64;
    let s = large.s;
    if s != 10_000 {
        println!("Targets: stated at S = 10,000, which was not measured");
        return;
    }
    println!("Targets (S = {s}):");
    println!(
        "- median {} ns <= 300 ns: {}",
        large.median_ns,
        verdict(large.median_ns <= 300)
    );
    println!(
        "- p99 {} ns <= 1000 ns: {}",
        large.p99_ns,
        verdict(large.p99_ns <= 1000)
    );
    println!(
        "- hot request: median {} ns <= 300 ns: {}; p99 {} ns <= 1000 ns: {}",
        large.hot_median_ns,
        verdict(large.hot_median_ns <= 300),
        large.hot_p99_ns,
        verdict(large.hot_p99_ns <= 1000)
    );
    println!(
        "- growth median S={s} / S={}: {growth:.2}x < 2x: {}",
        small.s,
        verdict(growth < 2.0)
    );
    println!(
        "- memory {:.0} bytes/statement <= 1024: {}",
        large.bytes_per_statement,
        verdict(large.bytes_per_statement <= 1024.0)
    );
}
