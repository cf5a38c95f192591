//! Results and ghz's report formats. Each worker records into its own [`Stats`]; the merged
//! stats make a [`Report`] whose JSON has ghz's keys and units (durations in nanoseconds,
//! histogram marks in seconds), so tools that read ghz's `-O json` read it, plus
//! pdp-loadtest's own keys (`decisionDistribution`, `latencyPercentiles`, `serverCpu`,
//! `serverRss`). [`Report::summary`] prints ghz's summary text.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tonic::Code;

/// ghz's latency distribution percentages.
pub const PERCENTAGES: [u32; 7] = [10, 25, 50, 75, 90, 95, 99];

/// Percentiles kept for plotting (`latencyPercentiles`).
pub const PLOT_PERCENTILES: [f64; 14] = [
    1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// Go's names of the gRPC status codes, as ghz writes them.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// What one call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The gRPC status.
    pub code: Code,
    /// ghz's error text (`rpc error: code = X desc = Y`), for failed calls.
    pub error: Option<String>,
    /// Allow decisions in the response.
    pub allow: u32,
    /// Deny decisions in the response.
    pub deny: u32,
}

impl Outcome {
    /// A failed call, described as ghz (grpc-go) describes it.
    pub fn failed(code: Code, message: &str) -> Outcome {
        Outcome {
            code,
            error: Some(format!(
                "rpc error: code = {} desc = {message}",
                code_name(code)
            )),
            allow: 0,
            deny: 0,
        }
    }
}

/// One worker's results.
#[derive(Debug)]
pub struct Stats {
    ok: Histogram<u64>,
    count: u64,
    latency_sum_ns: u128,
    codes: [u64; 17],
    errors: HashMap<String, u64>,
    allow: u64,
    deny: u64,
    lag: Option<Histogram<u64>>,
    from_send: Option<Histogram<u64>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Stats {
        Stats {
            ok: Stats::histogram(),
            count: 0,
            latency_sum_ns: 0,
            codes: [0; 17],
            errors: HashMap::new(),
            allow: 0,
            deny: 0,
            lag: None,
            from_send: None,
        }
    }

    /// Open loop: records how late a request was sent after its scheduled time, and (for a
    /// successful call) its latency from the actual send.
    pub fn record_open_loop(&mut self, lag: Duration, from_send: Duration, ok: bool) {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        let _ = self
            .lag
            .get_or_insert_with(Stats::histogram)
            .record(ns(lag));
        if ok {
            let _ = self
                .from_send
                .get_or_insert_with(Stats::histogram)
                .record(ns(from_send));
        }
    }

    fn histogram() -> Histogram<u64> {
        // INVARIANT: 3 significant figures is within hdrhistogram's 0..=5.
        Histogram::new(3).unwrap_or_else(|_| unreachable_histogram())
    }

    /// Records one call.
    pub fn record(&mut self, latency: Duration, outcome: Outcome) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.count += 1;
        self.latency_sum_ns += u128::from(ns);
        if let Some(c) = self.codes.get_mut(outcome.code as usize) {
            *c += 1;
        }
        match outcome.error {
            None => {
                let _ = self.ok.record(ns);
            }
            Some(e) => *self.errors.entry(e).or_insert(0) += 1,
        }
        self.allow += u64::from(outcome.allow);
        self.deny += u64::from(outcome.deny);
    }

    /// Adds `other` into these stats.
    pub fn merge(&mut self, other: &Stats) {
        let _ = self.ok.add(&other.ok);
        self.count += other.count;
        self.latency_sum_ns += other.latency_sum_ns;
        for (a, b) in self.codes.iter_mut().zip(other.codes.iter()) {
            *a += b;
        }
        for (e, n) in &other.errors {
            *self.errors.entry(e.clone()).or_insert(0) += n;
        }
        self.allow += other.allow;
        self.deny += other.deny;
        if let Some(l) = &other.lag {
            let _ = self.lag.get_or_insert_with(Stats::histogram).add(l);
        }
        if let Some(l) = &other.from_send {
            let _ = self.from_send.get_or_insert_with(Stats::histogram).add(l);
        }
    }

    /// Calls recorded.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// Only reached if hdrhistogram refused 3 significant figures, which it accepts.
fn unreachable_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, u64::MAX / 2, 2).unwrap_or_else(|_| unreachable_histogram())
}

/// ghz's `options` object (the keys ghz writes; durations in nanoseconds).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportOptions {
    /// `HOST:PORT`.
    pub host: String,
    /// The method.
    pub call: String,
    /// Plaintext.
    pub insecure: bool,
    /// Requests in all (with a duration, ghz's stand-in for "no count": `i32::MAX`).
    pub total: u64,
    /// The open-loop rate schedule: always ghz's constant one.
    #[serde(flatten)]
    pub schedules: Schedules,
    /// Workers.
    pub concurrency: u64,
    /// Connections.
    pub connections: u64,
    /// Open-loop rate (0: closed loop).
    #[serde(skip_serializing_if = "is_zero")]
    pub rps: u64,
    /// Run duration, ns.
    #[serde(skip_serializing_if = "is_zero")]
    pub duration: u64,
    /// Call timeout, ns.
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: u64,
    /// Connect timeout, ns.
    #[serde(rename = "dial-timeout", skip_serializing_if = "is_zero")]
    pub dial_timeout: u64,
    /// The data as configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// The metadata as configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Binary data (never).
    pub binary: bool,
    /// Generator threads.
    #[serde(rename = "CPUs")]
    pub cpus: u64,
    /// The run's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Results left out.
    #[serde(rename = "skipFirst", skip_serializing_if = "is_zero")]
    pub skip_first: u64,
}

/// The load and concurrency schedule keys ghz writes into `options`. `pdp-loadtest` runs
/// only ghz's constant schedules (`const`), so these hold ghz's values for them; they are
/// written so that tools reading ghz's reports find every key they expect.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Schedules {
    /// `load-schedule`.
    #[serde(rename = "load-schedule")]
    pub load_schedule: String,
    /// `load-start`.
    #[serde(rename = "load-start")]
    pub load_start: u64,
    /// `load-end`.
    #[serde(rename = "load-end")]
    pub load_end: u64,
    /// `load-step`.
    #[serde(rename = "load-step")]
    pub load_step: i64,
    /// `load-step-duration`, ns.
    #[serde(rename = "load-step-duration")]
    pub load_step_duration: u64,
    /// `load-max-duration`, ns.
    #[serde(rename = "load-max-duration")]
    pub load_max_duration: u64,
    /// `concurrency-schedule`.
    #[serde(rename = "concurrency-schedule")]
    pub concurrency_schedule: String,
    /// `concurrency-start`.
    #[serde(rename = "concurrency-start")]
    pub concurrency_start: u64,
    /// `concurrency-end`.
    #[serde(rename = "concurrency-end")]
    pub concurrency_end: u64,
    /// `concurrency-step`.
    #[serde(rename = "concurrency-step")]
    pub concurrency_step: i64,
    /// `concurrency-step-duration`, ns.
    #[serde(rename = "concurrency-step-duration")]
    pub concurrency_step_duration: u64,
    /// `concurrency-max-duration`, ns.
    #[serde(rename = "concurrency-max-duration")]
    pub concurrency_max_duration: u64,
}

impl Default for Schedules {
    /// ghz's values for its constant schedules.
    fn default() -> Self {
        Schedules {
            load_schedule: "const".to_owned(),
            load_start: 0,
            load_end: 0,
            load_step: 0,
            load_step_duration: 0,
            load_max_duration: 0,
            concurrency_schedule: "const".to_owned(),
            concurrency_start: 1,
            concurrency_end: 0,
            concurrency_step: 0,
            concurrency_step_duration: 0,
            concurrency_max_duration: 0,
        }
    }
}

/// ghz's `total` in a report of a run bounded by duration (`math.MaxInt32`).
pub const TOTAL_WITH_DURATION: u64 = i32::MAX as u64;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A latency percentile (ghz's `latencyDistribution` item).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatencyDistribution {
    /// The percentage.
    pub percentage: u32,
    /// The latency, ns.
    pub latency: u64,
}

/// A fine-grained percentile, for plots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Percentile {
    /// The percentile (e.g. 99.9).
    pub percentile: f64,
    /// The latency, ns.
    pub latency: u64,
}

/// A histogram bucket (ghz's `histogram` item).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// The bucket's upper mark, seconds.
    pub mark: f64,
    /// Calls at or below the mark (and above the previous one).
    pub count: u64,
    /// `count` over all successful calls.
    pub frequency: f64,
}

/// Allow and deny decisions in the responses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decisions {
    /// Allowed (for ext_authz: an OK check status).
    pub allow: u64,
    /// Denied.
    pub deny: u64,
}

/// The server's CPU over the run, from `/proc/PID/stat` (user + system ticks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerCpu {
    /// The process.
    pub pid: u32,
    /// CPU seconds used during the run.
    pub cpu_seconds: f64,
    /// CPU microseconds per call.
    pub cpu_per_call_micros: f64,
    /// CPU seconds over wall seconds (1.0: one core busy throughout).
    pub utilization: f64,
}

/// One memory sample of the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RssSample {
    /// Seconds since the run started.
    pub elapsed_seconds: f64,
    /// `VmRSS`, KiB.
    pub rss_kib: u64,
}

/// Open loop: how late requests were sent after their scheduled times (a late generator
/// adds this to the latencies it reports, so a large lag means the generator, not the
/// server, was the bottleneck).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Lag {
    /// Median, ns.
    pub p50: u64,
    /// 99th percentile, ns.
    pub p99: u64,
    /// Largest, ns.
    pub max: u64,
}

/// ghz's report, with pdp-loadtest's additions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The run's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `normal`, or `timeout` when a duration ended the run.
    pub end_reason: String,
    /// The options.
    pub options: ReportOptions,
    /// When the run ended (RFC 3339).
    pub date: String,
    /// Calls, successful or not.
    pub count: u64,
    /// Run time, ns.
    pub total: u64,
    /// Mean latency of all calls, ns.
    pub average: u64,
    /// Fastest successful call, ns.
    pub fastest: u64,
    /// Slowest successful call, ns.
    pub slowest: u64,
    /// Calls per second.
    pub rps: f64,
    /// Failed calls by error text.
    pub error_distribution: BTreeMap<String, u64>,
    /// Calls by status.
    pub status_code_distribution: BTreeMap<String, u64>,
    /// ghz's percentiles of successful calls.
    pub latency_distribution: Vec<LatencyDistribution>,
    /// ghz's 11-bucket histogram of successful calls.
    pub histogram: Vec<Bucket>,
    /// ghz's per-call details: not recorded, so memory stays bounded on long runs (an empty
    /// list; ghz lists every call).
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
    /// Tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// pdp-loadtest: decisions counted in the responses.
    pub decision_distribution: Decisions,
    /// pdp-loadtest: finer percentiles of successful calls, for plots.
    #[serde(default)]
    pub latency_percentiles: Vec<Percentile>,
    /// pdp-loadtest: open-loop send lag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_loop_lag: Option<Lag>,
    /// pdp-loadtest: open loop, the percentiles of successful calls measured from the actual
    /// send (what ghz reports), beside `latencyDistribution` measured from the schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent_latency_distribution: Vec<LatencyDistribution>,
    /// pdp-loadtest: the server's CPU, with `--server-pid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpu: Option<ServerCpu>,
    /// pdp-loadtest: the server's memory over the run, with `--sample-interval`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_rss: Vec<RssSample>,
}

impl Report {
    /// The report of `stats` over a run of `total`.
    pub fn new(stats: &Stats, total: Duration, end_reason: &str, options: ReportOptions) -> Report {
        let total_ns = u64::try_from(total.as_nanos()).unwrap_or(u64::MAX);
        let count = stats.count;
        let ok = &stats.ok;
        let ok_count = ok.len();
        let average = if count > 0 {
            u64::try_from(stats.latency_sum_ns / u128::from(count)).unwrap_or(u64::MAX)
        } else {
            0
        };
        let (fastest, slowest) = if ok_count > 0 {
            (ok.min(), ok.max())
        } else {
            (0, 0)
        };
        let latency_distribution = if ok_count > 0 {
            PERCENTAGES
                .iter()
                .map(|&p| LatencyDistribution {
                    percentage: p,
                    latency: ok.value_at_quantile(f64::from(p) / 100.0),
                })
                .collect()
        } else {
            Vec::new()
        };
        let latency_percentiles = if ok_count > 0 {
            PLOT_PERCENTILES
                .iter()
                .map(|&p| Percentile {
                    percentile: p,
                    latency: ok.value_at_quantile(p / 100.0),
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut status = BTreeMap::new();
        for (i, &n) in stats.codes.iter().enumerate() {
            if n > 0 {
                let code = Code::from_i32(i32::try_from(i).unwrap_or(2));
                status.insert(code_name(code).to_owned(), n);
            }
        }
        Report {
            name: options.name.clone(),
            end_reason: end_reason.to_owned(),
            options,
            date: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            count,
            total: total_ns,
            average,
            fastest,
            slowest,
            rps: if total.is_zero() {
                0.0
            } else {
                count as f64 / total.as_secs_f64()
            },
            error_distribution: stats.errors.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            status_code_distribution: status,
            latency_distribution,
            histogram: histogram(ok, fastest, slowest),
            details: Vec::new(),
            tags: BTreeMap::new(),
            decision_distribution: Decisions {
                allow: stats.allow,
                deny: stats.deny,
            },
            latency_percentiles,
            sent_latency_distribution: stats
                .from_send
                .as_ref()
                .filter(|h| !h.is_empty())
                .map(|h| {
                    PERCENTAGES
                        .iter()
                        .map(|&p| LatencyDistribution {
                            percentage: p,
                            latency: h.value_at_quantile(f64::from(p) / 100.0),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            open_loop_lag: stats.lag.as_ref().filter(|h| !h.is_empty()).map(|h| Lag {
                p50: h.value_at_quantile(0.5),
                p99: h.value_at_quantile(0.99),
                max: h.max(),
            }),
            server_cpu: None,
            server_rss: Vec::new(),
        }
    }

    /// Failed calls.
    pub fn errors(&self) -> u64 {
        self.error_distribution.values().sum()
    }

    /// The latency at ghz percentage `p` (10, 25, 50, 75, 90, 95, 99), ns.
    pub fn percentile(&self, p: u32) -> Option<u64> {
        self.latency_distribution
            .iter()
            .find(|l| l.percentage == p)
            .map(|l| l.latency)
    }

    /// ghz's summary text (and pdp-loadtest's decision and server lines after it).
    pub fn summary(&self) -> String {
        let mut s = String::from("\nSummary:\n");
        if let Some(name) = &self.name {
            let _ = writeln!(s, "  Name:\t\t{name}");
        }
        let _ = writeln!(s, "  Count:\t{}", self.count);
        let _ = writeln!(s, "  Total:\t{}", nano_unit(self.total));
        let _ = writeln!(s, "  Slowest:\t{}", nano_unit(self.slowest));
        let _ = writeln!(s, "  Fastest:\t{}", nano_unit(self.fastest));
        let _ = writeln!(s, "  Average:\t{}", nano_unit(self.average));
        let _ = writeln!(s, "  Requests/sec:\t{:.2}", self.rps);
        s.push_str("\nResponse time histogram:\n");
        s.push_str(&histogram_text(&self.histogram));
        s.push_str("\nLatency distribution:");
        for l in &self.latency_distribution {
            let _ = write!(s, "\n  {} % in {} ", l.percentage, nano_unit(l.latency));
        }
        s.push_str("\n\n");
        if !self.status_code_distribution.is_empty() {
            s.push_str("Status code distribution:\n");
            let rows: Vec<[String; 2]> = self
                .status_code_distribution
                .iter()
                .map(|(code, n)| [format!("  [{code}]"), format!("{n} responses")])
                .collect();
            s.push_str(&tabulate(&rows));
        }
        s.push('\n');
        if !self.error_distribution.is_empty() {
            s.push_str("Error distribution:\n");
            let rows: Vec<[String; 2]> = self
                .error_distribution
                .iter()
                .map(|(e, n)| [format!("  [{n}]"), e.clone()])
                .collect();
            s.push_str(&tabulate(&rows));
            s.push('\n');
        }
        let d = self.decision_distribution;
        s.push_str("Decision distribution:\n");
        s.push_str(&tabulate(&[
            ["  [allow]".to_owned(), format!("{} decisions", d.allow)],
            ["  [deny]".to_owned(), format!("{} decisions", d.deny)],
        ]));
        if let Some(lag) = &self.open_loop_lag {
            let _ = writeln!(
                s,
                "\nOpen-loop send lag (scheduled -> sent):\n  p50 {}, p99 {}, max {}",
                nano_unit(lag.p50),
                nano_unit(lag.p99),
                nano_unit(lag.max)
            );
            let from_send: Vec<String> = self
                .sent_latency_distribution
                .iter()
                .filter(|l| matches!(l.percentage, 50 | 90 | 99))
                .map(|l| format!("p{} {}", l.percentage, nano_unit(l.latency)))
                .collect();
            let _ = writeln!(s, "Latency from the send:\n  {}", from_send.join(", "));
        }
        if let Some(cpu) = &self.server_cpu {
            let _ = write!(
                s,
                "\nServer (pid {}):\n  CPU per call:\t{:.2} us\n  CPU busy:\t{:.0} %\n",
                cpu.pid,
                cpu.cpu_per_call_micros,
                cpu.utilization * 100.0
            );
        }
        if let (Some(first), Some(last)) = (self.server_rss.first(), self.server_rss.last()) {
            let max = self.server_rss.iter().map(|r| r.rss_kib).max().unwrap_or(0);
            let _ = writeln!(
                s,
                "  RSS:\t\t{} KiB at start, {} KiB at end, {} KiB at most ({} samples)",
                first.rss_kib,
                last.rss_kib,
                max,
                self.server_rss.len()
            );
        }
        s
    }
}

/// ghz's `formatNanoUnit`.
fn nano_unit(ns: u64) -> String {
    if ns < 10_000 {
        return format!("{ns} ns");
    }
    let ms = ns as f64 / 1e6;
    if ms < 1000.0 {
        format!("{ms:4.2} ms")
    } else {
        format!("{:4.2} s", ms / 1000.0)
    }
}

/// ghz's histogram: 10 equal steps from the fastest to the slowest successful call, each
/// bucket counting the calls at or below its mark.
fn histogram(ok: &Histogram<u64>, fastest: u64, slowest: u64) -> Vec<Bucket> {
    let n = ok.len();
    if n == 0 {
        return Vec::new();
    }
    const BUCKETS: usize = 10;
    let step = (slowest.saturating_sub(fastest)) as f64 / BUCKETS as f64;
    let marks: Vec<f64> = (0..=BUCKETS)
        .map(|i| {
            if i == BUCKETS {
                slowest as f64
            } else {
                fastest as f64 + step * i as f64
            }
        })
        .collect();
    let mut counts = vec![0u64; marks.len()];
    for v in ok.iter_recorded() {
        let value = ok.lowest_equivalent(v.value_iterated_to()) as f64;
        let i = marks
            .iter()
            .position(|&m| value <= m)
            .unwrap_or(marks.len() - 1);
        if let Some(c) = counts.get_mut(i) {
            *c += v.count_at_value();
        }
    }
    marks
        .iter()
        .zip(counts)
        .map(|(&m, c)| Bucket {
            mark: m / 1e9,
            count: c,
            frequency: c as f64 / n as f64,
        })
        .collect()
}

/// ghz's histogram lines: mark in ms, count, bar of up to 40 `∎`.
fn histogram_text(buckets: &[Bucket]) -> String {
    let max_count = buckets.iter().map(|b| b.count).max().unwrap_or(0);
    let max_mark = buckets.iter().map(|b| b.mark).fold(0.0, f64::max);
    let mark_len = format!("{:.3}", max_mark * 1000.0).len();
    let count_len = max_count.to_string().len();
    let mut s = String::new();
    for b in buckets {
        let bar = (b.count * 40 + max_count / 2)
            .checked_div(max_count)
            .unwrap_or(0);
        let mark = format!("{:.3}", b.mark * 1000.0);
        let count = b.count.to_string();
        let _ = writeln!(
            s,
            "  {mark}{} [{count}]{} |{}",
            " ".repeat(mark_len.saturating_sub(mark.len())),
            " ".repeat(count_len.saturating_sub(count.len())),
            "∎".repeat(usize::try_from(bar).unwrap_or(0))
        );
    }
    s
}

/// Go's `tabwriter` with padding 3, for two tab-terminated cells per line.
fn tabulate(rows: &[[String; 2]]) -> String {
    let w0 = rows
        .iter()
        .map(|[a, _]| a.chars().count())
        .max()
        .unwrap_or(0)
        + 3;
    let w1 = rows
        .iter()
        .map(|[_, b]| b.chars().count())
        .max()
        .unwrap_or(0)
        + 3;
    let mut s = String::new();
    for [a, b] in rows {
        let _ = writeln!(
            s,
            "{a}{}{b}{}",
            " ".repeat(w0 - a.chars().count()),
            " ".repeat(w1 - b.chars().count())
        );
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    fn ok() -> Outcome {
        Outcome {
            code: Code::Ok,
            error: None,
            allow: 1,
            deny: 0,
        }
    }

    #[test]
    fn the_json_report_has_ghz_keys_and_nanoseconds() {
        let mut s = Stats::new();
        for us in 1..=100u64 {
            s.record(Duration::from_micros(us), ok());
        }
        s.record(
            Duration::from_micros(50),
            Outcome::failed(Code::ResourceExhausted, "too many calls"),
        );
        let r = Report::new(
            &s,
            Duration::from_secs(1),
            "normal",
            ReportOptions::default(),
        );
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "count",
            "total",
            "average",
            "fastest",
            "slowest",
            "rps",
            "latencyDistribution",
            "histogram",
            "statusCodeDistribution",
            "errorDistribution",
            "details",
            "date",
            "options",
            "decisionDistribution",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["count"], 101);
        assert_eq!(v["total"], 1_000_000_000u64);
        assert_eq!(v["statusCodeDistribution"]["OK"], 100);
        assert_eq!(v["statusCodeDistribution"]["ResourceExhausted"], 1);
        assert_eq!(
            v["errorDistribution"]["rpc error: code = ResourceExhausted desc = too many calls"],
            1
        );
        let p50 = r.percentile(50).unwrap();
        assert!((49_000..=51_000).contains(&p50), "{p50}");
        assert_eq!(r.histogram.len(), 11);
        assert_eq!(r.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
        assert!((r.histogram[10].mark - 100e-6).abs() < 1e-7);
        assert_eq!(r.decision_distribution.allow, 100);
    }

    #[test]
    fn the_summary_reads_like_ghz() {
        let mut s = Stats::new();
        s.record(Duration::from_micros(80), ok());
        s.record(Duration::from_micros(120), ok());
        let r = Report::new(
            &s,
            Duration::from_millis(2),
            "normal",
            ReportOptions::default(),
        );
        let text = r.summary();
        assert!(text.contains("\nSummary:\n  Count:\t2\n"), "{text}");
        assert!(text.contains("  Requests/sec:\t1000.00\n"), "{text}");
        assert!(text.contains("  50 % in 0.08 ms "), "{text}");
        assert!(
            text.contains("Status code distribution:\n  [OK]   2 responses   \n"),
            "{text}"
        );
        assert_eq!(nano_unit(9_999), "9999 ns");
        assert_eq!(nano_unit(1_500_000_000), "1.50 s");
    }
}
