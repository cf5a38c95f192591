//! Compile-time benchmark over the IAM workloads (`benches/workloads/iam-S{10,100}.json`, and
//! S = 1,000 and 10,000 from `$PDP_BENCH_DIR` when it holds them): building a set from already
//! parsed documents and bindings.
//!
//! Kept apart from the `decide` benchmark because that one counts heap bytes with a counting
//! global allocator, whose bookkeeping (atomic counters on every allocation) is not part of
//! the product and slows an allocation-heavy build by about a sixth. Here the global
//! allocator is plain mimalloc, the one the `pdp` binary uses.
//!
//! Criterion group `compile/S`, then a report: the median and fastest of [`BUILDS`] builds
//! per size and the target at S = 10,000. `PDP_BENCH_QUICK=1` skips criterion and prints only
//! the report. Run without `--bench` (`cargo test --benches`), criterion runs each benchmark
//! once and the report is skipped.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};

#[path = "workload/mod.rs"]
mod workload;

use workload::{fail, Workload};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Builds timed per size for the report.
const BUILDS: usize = 15;
/// The target for compiling 10,000 statements.
const TARGET_MS: f64 = 20.0;

fn main() {
    let mode = workload::Mode::current();
    let mut loaded = Vec::new();
    for s in workload::available_sizes() {
        let (workload, set) = workload::load_built(s).unwrap_or_else(|e| fail(&e));
        if set.statement_count() != workload.statements {
            fail(&format!(
                "{}: the set has {} statements, the file declares {}",
                workload.origin,
                set.statement_count(),
                workload.statements
            ));
        }
        loaded.push((s, workload));
    }

    if !mode.quick {
        let mut c = Criterion::default().configure_from_args();
        let mut group = c.benchmark_group("compile");
        group.sample_size(20);
        for (s, w) in &loaded {
            group.throughput(Throughput::Elements(w.statements as u64));
            group.bench_function(BenchmarkId::from_parameter(s), |b| {
                b.iter_batched(
                    || w.bindings.clone(),
                    |bindings| workload::compile(&w.policies, bindings).ok(),
                    BatchSize::PerIteration,
                );
            });
        }
        group.finish();
        c.final_summary();
    }
    if mode.report() {
        report(&loaded);
    } else {
        println!("(not run with --bench: report skipped)");
    }
}

/// Sorted build times of `BUILDS` builds (bindings cloned outside the timed region; the set
/// dropped after it).
fn builds(w: &Workload) -> Vec<Duration> {
    let mut times = Vec::with_capacity(BUILDS);
    for _ in 0..BUILDS {
        let bindings = w.bindings.clone();
        let start = Instant::now();
        let built = workload::compile(&w.policies, bindings);
        times.push(start.elapsed());
        match built {
            Ok(set) => drop(black_box(set)),
            Err(e) => fail(&e),
        }
    }
    times.sort_unstable();
    times
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn report(loaded: &[(usize, Workload)]) {
    println!();
    println!(
        "## Compile time ({BUILDS} builds per size from parsed JSON values, single-threaded, \
         plain mimalloc as in the pdp binary)"
    );
    println!();
    println!("| S | statements | median ms | fastest ms | µs/statement (median) |");
    println!("|---:|---:|---:|---:|---:|");
    let mut largest = None;
    for (s, w) in loaded {
        let times = builds(w);
        let median = times.get(times.len() / 2).copied().unwrap_or_default();
        let fastest = times.first().copied().unwrap_or_default();
        println!(
            "| {s} | {} | {:.2} | {:.2} | {:.2} |",
            w.statements,
            ms(median),
            ms(fastest),
            ms(median) * 1e3 / w.statements.max(1) as f64
        );
        largest = Some((*s, median));
    }
    println!();
    match largest {
        Some((s, _)) if s != 10_000 => {
            println!("Target: stated at S = 10,000, which was not measured");
            return;
        }
        _ => {}
    }
    if let Some((s, median)) = largest {
        let ok = ms(median) <= TARGET_MS;
        println!(
            "Target (S = {s}): compile {:.2} ms <= {TARGET_MS} ms: {}",
            ms(median),
            if ok { "PASS" } else { "FAIL" }
        );
    }
}
