//! What the server's benchmarks share: how they were asked to run, and a median timer for
//! their own reports (criterion's groups run beside it).

use std::time::Instant;

/// How a benchmark binary was run.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// `PDP_BENCH_QUICK` set: skip criterion, print the report only.
    pub quick: bool,
    /// Run with `--bench` (not as a test of the benches).
    pub bench: bool,
}

impl Mode {
    /// The mode of this run.
    pub fn current() -> Mode {
        Mode {
            quick: std::env::var("PDP_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"),
            bench: std::env::args().any(|a| a == "--bench"),
        }
    }

    /// Whether the report is printed: with `--bench` or in quick mode.
    pub fn report(self) -> bool {
        self.quick || self.bench
    }
}

/// Median nanoseconds per call of `f`, over 31 batches of `batch` calls.
pub fn median_ns(batch: u32, mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..31)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}
