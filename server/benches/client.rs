//! `pdp-client` checks against the real `pdp serve` (started on a free loopback port): a
//! check answered from the client's local cache, and an uncached one (a round trip to the
//! server, whose decision cache is on). The uncached figure is the baseline of the ratio.
//!
//! Prints a report (median of timed batches); `PDP_BENCH_QUICK=1` skips criterion.

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;
use pdp_client::{Check, PdpClient};

const CACHED_TARGET_NS: f64 = 1000.0;

fn request() -> pdp_client::pb::CheckRequest {
    Check::new(
        "alice",
        "s3:GetObject",
        "arn:aws:s3:::my-bucket/data/report.csv",
    )
    .role("ApplicationRole")
    .context("aws:SourceIp", "10.1.2.3")
    .context("aws:MultiFactorAuthPresent", true)
    .context("aws:RequestTag/Environment", "production")
    .build()
}

/// Median nanoseconds per call over `batches` batches of `n` calls.
fn median_ns(runtime: &tokio::runtime::Runtime, pdp: &PdpClient, batches: usize, n: usize) -> f64 {
    let mut samples: Vec<f64> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            runtime.block_on(async {
                for _ in 0..n {
                    black_box(pdp.check(request()).await.ok());
                }
            });
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let quick = std::env::var("PDP_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let Ok(mut child) = Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", "off"])
        .current_dir(repo)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
    else {
        eprintln!("cannot start pdp serve");
        std::process::exit(1);
    };
    let mut banner = String::new();
    if let Some(stderr) = child.stderr.take() {
        let _ = BufReader::new(stderr).read_line(&mut banner);
    }
    let Some(addr) = banner
        .split(" on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_owned)
    else {
        eprintln!("no address in `{banner}`");
        let _ = child.kill();
        std::process::exit(1);
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        let _ = child.kill();
        std::process::exit(1);
    };
    let build = |cache: bool| {
        let b = PdpClient::builder()
            .endpoint(format!("http://{addr}"))
            .watch(false);
        let b = if cache { b } else { b.no_cache() };
        runtime.block_on(async { b.build() })
    };
    let (Ok(cached), Ok(uncached)) = (build(true), build(false)) else {
        let _ = child.kill();
        std::process::exit(1);
    };
    // Warm both (connection, caches) and check the answer.
    let warm = runtime.block_on(async {
        let a = cached.check(request()).await;
        let b = uncached.check(request()).await;
        (a, b)
    });
    if !matches!(&warm, (Ok(a), Ok(b)) if a.is_allowed() && b.is_allowed()) {
        eprintln!("the benchmark request is not allowed: {warm:?}");
        let _ = child.kill();
        std::process::exit(1);
    }
    std::thread::sleep(Duration::from_millis(100));
    if !quick {
        let mut c = Criterion::default().configure_from_args();
        c.bench_function("client/check/cached", |b| {
            b.iter(|| runtime.block_on(async { black_box(cached.check(request()).await.ok()) }))
        });
        c.bench_function("client/check/uncached", |b| {
            b.iter(|| runtime.block_on(async { black_box(uncached.check(request()).await.ok()) }))
        });
        c.final_summary();
    }
    if quick || bench_mode {
        let base = median_ns(&runtime, &uncached, 11, 2000);
        let hit = median_ns(&runtime, &cached, 31, 20_000);
        println!("pdp-client check, median per call (target for a cached check <= {CACHED_TARGET_NS} ns)");
        println!("{:<52} {:>10} {:>8}", "case", "ns", "x base");
        println!(
            "{:<52} {:>10.0} {:>8.2}",
            "baseline: uncached, a round trip to pdp serve", base, 1.0
        );
        println!(
            "{:<52} {:>10.0} {:>8.3} {}",
            "cached in the client",
            hit,
            hit / base,
            if hit <= CACHED_TARGET_NS {
                "ok"
            } else {
                "OVER TARGET"
            }
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
