//! The load: `concurrency` workers spread over `connections` HTTP/2 connections, each
//! sending one call at a time.
//!
//! - Closed loop (no `rps`): a worker sends its next request as soon as the last one is
//!   answered; latency is measured from the send.
//! - Open loop (`rps`): a pacer releases request *k* at `start + k / rps` onto a queue that
//!   idle workers take from; latency is measured from the scheduled time, so a slow server
//!   (or a slow generator) cannot hide queueing behind fewer sends (no coordinated omission).
//!   The pacer is a thread of its own that sleeps until each release (see [`pacer`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3 as envoy_auth;
use pdp_proto::v1 as pb;
use tokio::task::JoinSet;
use tonic::metadata::MetadataMap;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Code;

use super::data::{PayloadError, Payloads};
use super::message::{Call, Message};
use super::options::{DurationStop, Options};
use super::report::{Outcome, Report, ReportOptions, RssSample, ServerCpu, Stats};
use super::template::Rng;

/// A run that could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The data or metadata.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// The connection.
    #[error("cannot connect to `{host}`: {message}")]
    Connect {
        /// `HOST:PORT`.
        host: String,
        /// Why.
        message: String,
    },
    /// The open loop's pacer thread.
    #[error("cannot start the pacer thread: {0}")]
    Pacer(std::io::Error),
    /// The pacer thread ended abnormally.
    #[error("the pacer thread failed")]
    PacerPanicked,
    /// The tokio runtime.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// A client of the call's service on one connection.
#[derive(Debug, Clone)]
enum Client {
    Pdp(pb::authorization_service_client::AuthorizationServiceClient<Channel>),
    Envoy(envoy_auth::authorization_client::AuthorizationClient<Channel>),
}

fn request<T>(message: T, metadata: MetadataMap) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    *r.metadata_mut() = metadata;
    r
}

fn decided(decisions: impl IntoIterator<Item = i32>) -> Outcome {
    let mut o = Outcome {
        code: Code::Ok,
        error: None,
        allow: 0,
        deny: 0,
    };
    for d in decisions {
        match pb::Decision::try_from(d) {
            Ok(pb::Decision::Allow) => o.allow += 1,
            Ok(pb::Decision::Deny) => o.deny += 1,
            _ => {}
        }
    }
    o
}

fn failed(status: &tonic::Status) -> Outcome {
    Outcome::failed(status.code(), status.message())
}

impl Client {
    fn new(call: Call, channel: Channel) -> Client {
        match call {
            Call::Check | Call::CheckBatch => Client::Pdp(
                pb::authorization_service_client::AuthorizationServiceClient::new(channel),
            ),
            Call::ExtAuthzCheck => Client::Envoy(
                envoy_auth::authorization_client::AuthorizationClient::new(channel),
            ),
        }
    }

    async fn call(&mut self, message: Message, metadata: MetadataMap) -> Outcome {
        match (self, message) {
            (Client::Pdp(c), Message::Check(m)) => match c.check(request(m, metadata)).await {
                Ok(r) => decided([r.get_ref().decision]),
                Err(s) => failed(&s),
            },
            (Client::Pdp(c), Message::CheckBatch(m)) => {
                match c.check_batch(request(m, metadata)).await {
                    Ok(r) => decided(r.get_ref().responses.iter().map(|r| r.decision)),
                    Err(s) => failed(&s),
                }
            }
            (Client::Envoy(c), Message::ExtAuthz(m)) => {
                match c.check(request(*m, metadata)).await {
                    Ok(r) => {
                        let allowed = r.get_ref().status.as_ref().is_none_or(|s| s.code == 0);
                        Outcome {
                            code: Code::Ok,
                            error: None,
                            allow: u32::from(allowed),
                            deny: u32::from(!allowed),
                        }
                    }
                    Err(s) => failed(&s),
                }
            }
            _ => Outcome::failed(Code::Internal, "the message does not belong to the call"),
        }
    }
}

async fn connect(o: &Options) -> Result<Channel, RunError> {
    let err = |message: String| RunError::Connect {
        host: o.host.clone(),
        message,
    };
    let scheme = if o.insecure { "http" } else { "https" };
    let mut endpoint = Endpoint::from_shared(format!("{scheme}://{}", o.host))
        .map_err(|e| err(e.to_string()))?
        .connect_timeout(o.connect_timeout);
    if let Some(k) = o.keepalive {
        endpoint = endpoint.http2_keep_alive_interval(k);
    }
    if !o.insecure {
        let mut tls = ClientTlsConfig::new();
        if let Some(path) = &o.cacert {
            let pem = std::fs::read(path)
                .map_err(|e| err(format!("cannot read `{}`: {e}", path.display())))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let Some(name) = &o.cname {
            tls = tls.domain_name(name.clone());
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| err(e.to_string()))?;
    }
    endpoint
        .connect_with_connector(super::connector::Connector)
        .await
        .map_err(|e| {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                message = format!("{message}: {s}");
                source = s.source();
            }
            err(message)
        })
}

/// What the workers share.
#[derive(Debug)]
struct Shared {
    payloads: Arc<Payloads>,
    next: AtomicU64,
    total: u64,
    start: Instant,
    deadline: Option<Instant>,
    stop: AtomicBool,
    timeout: Option<Duration>,
    skip_first: u64,
    completed: AtomicU64,
}

/// One worker's results, and when its call in flight started (ns after the start, plus 1;
/// 0 when idle), for `duration-stop: close`.
#[derive(Debug, Default)]
struct Slot {
    stats: Mutex<Stats>,
    in_flight_since: AtomicU64,
}

/// An open-loop release: request `n`, due at `at`.
#[derive(Debug, Clone, Copy)]
struct Ticket {
    n: u64,
    at: Instant,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

async fn worker(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    mut client: Client,
    worker_id: String,
    tickets: Option<async_channel::Receiver<Ticket>>,
    seed: u64,
) {
    let rng = Rng::new(seed);
    loop {
        let (n, scheduled) = match &tickets {
            Some(rx) => match rx.recv().await {
                Ok(t) => (t.n, Some(t.at)),
                Err(_) => break,
            },
            None => {
                if shared.stop.load(Relaxed) || shared.deadline.is_some_and(|d| Instant::now() >= d)
                {
                    break;
                }
                let n = shared.next.fetch_add(1, Relaxed);
                if n >= shared.total {
                    break;
                }
                (n, None)
            }
        };
        let built = shared.payloads.build(n, &worker_id, &rng);
        let sent = Instant::now();
        let start = scheduled.unwrap_or(sent);
        slot.in_flight_since.store(
            nanos(start.saturating_duration_since(shared.start)) + 1,
            Relaxed,
        );
        let outcome = match built {
            Ok((message, metadata)) => {
                let call = client.call(message, metadata);
                match shared.timeout {
                    Some(t) => tokio::time::timeout(t, call).await.unwrap_or_else(|_| {
                        Outcome::failed(Code::DeadlineExceeded, "context deadline exceeded")
                    }),
                    None => call.await,
                }
            }
            Err(e) => Outcome::failed(Code::Unknown, &e.to_string()),
        };
        let latency = start.elapsed();
        slot.in_flight_since.store(0, Relaxed);
        if shared.skip_first > 0 && shared.completed.fetch_add(1, Relaxed) < shared.skip_first {
            continue;
        }
        if let Ok(mut stats) = slot.stats.lock() {
            if scheduled.is_some() {
                stats.record_open_loop(sent - start, sent.elapsed(), outcome.error.is_none());
            }
            stats.record(latency, outcome);
        }
    }
}

/// Releases request *k* at `start + k / rps`, from a thread of its own: it sleeps until
/// the next release (the kernel's high-resolution timers, tens of microseconds late at
/// most on an idle core) and then releases every request that is due, so it costs the
/// generator's core a wake-up per release at most instead of a task spinning on the
/// runtime (tokio's timer has millisecond resolution, and yielding in a loop polls the
/// I/O driver each time).
/// The pacer's shortest sleep: requests are released up to this much (plus the timer's
/// slack) after their scheduled time, a lag that their latency includes.
const PACER_QUANTUM: Duration = Duration::from_micros(100);

fn pacer(tx: &async_channel::Sender<Ticket>, shared: &Shared, rps: u64) {
    let at = |k: u64| {
        let offset = u128::from(k) * 1_000_000_000 / u128::from(rps);
        shared.start + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
    };
    // Wake up on time: the kernel otherwise lets a sleep run up to 50 µs late, to batch
    // timers (best effort: without it releases are only later).
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1_000));
    let mut k = 0u64;
    while k < shared.total && !shared.stop.load(Relaxed) {
        let due = at(k);
        if shared.deadline.is_some_and(|d| due >= d) {
            break;
        }
        let now = Instant::now();
        if due > now {
            // At least a quantum, so that a fast schedule costs one wake-up per batch of
            // releases rather than one per release (each wake-up is a context switch on
            // the generator's core); in slices, so that a slow schedule notices `stop`.
            std::thread::sleep((due - now).clamp(PACER_QUANTUM, Duration::from_millis(10)));
            continue;
        }
        if tx.try_send(Ticket { n: k, at: due }).is_err() {
            break;
        }
        k += 1;
    }
}

/// The server process's CPU ticks (user + system) and resident memory, from `/proc`.
#[derive(Debug, Clone, Copy)]
struct Probe {
    pid: u32,
    ticks: u64,
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// What one phase of load came to.
#[derive(Debug)]
struct Phase {
    stats: Stats,
    total: Duration,
    end_reason: &'static str,
    rss: Vec<RssSample>,
}

/// One phase of load over `clients`: until `total` requests, or for `run_for`.
async fn phase(
    clients: &[Client],
    payloads: &Arc<Payloads>,
    options: &Options,
    run_for: Option<Duration>,
    total: u64,
    sample_rss: bool,
) -> Result<Phase, RunError> {
    let start = Instant::now();
    let deadline = run_for.map(|d| start + d);
    let shared = Arc::new(Shared {
        payloads: payloads.clone(),
        next: AtomicU64::new(0),
        total,
        start,
        deadline,
        stop: AtomicBool::new(false),
        timeout: options.timeout,
        skip_first: options.skip_first,
        completed: AtomicU64::new(0),
    });
    let slots: Vec<Arc<Slot>> = (0..options.concurrency)
        .map(|_| Arc::new(Slot::default()))
        .collect();
    let (tx, rx) = match options.rps {
        Some(_) => {
            let (tx, rx) = async_channel::unbounded();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let mut workers = JoinSet::new();
    for (w, slot) in slots.iter().enumerate() {
        let conn = w % clients.len().max(1);
        let Some(client) = clients.get(conn).cloned() else {
            break;
        };
        workers.spawn(worker(
            shared.clone(),
            slot.clone(),
            client,
            format!("g0c{conn}w{w}"),
            rx.clone(),
            w as u64,
        ));
    }
    drop(rx);
    let pacer = match (tx, options.rps) {
        (Some(tx), Some(rps)) => {
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name("pacer".into())
                .spawn(move || pacer(&tx, &shared, rps))
                .map_err(RunError::Pacer)?;
            Some(thread)
        }
        _ => None,
    };
    let rss = Arc::new(Mutex::new(Vec::new()));
    let sampler = match (sample_rss, options.server_pid, options.sample_interval) {
        (true, Some(pid), Some(every)) => {
            let rss = rss.clone();
            Some(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    if let (Some(kib), Ok(mut v)) = (rss_kib(pid), rss.lock()) {
                        v.push(RssSample {
                            elapsed_seconds: start.elapsed().as_secs_f64(),
                            rss_kib: kib,
                        });
                    }
                }
            }))
        }
        _ => None,
    };

    let mut end_reason = "normal";
    let timer = until(deadline);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            joined = workers.join_next() => if joined.is_none() { break },
            () = &mut timer => { end_reason = "timeout"; break }
        }
    }
    if end_reason == "timeout" {
        shared.stop.store(true, Relaxed);
        match options.duration_stop {
            DurationStop::Wait => while workers.join_next().await.is_some() {},
            DurationStop::Close | DurationStop::Ignore => {
                workers.abort_all();
                while workers.join_next().await.is_some() {}
                if options.duration_stop == DurationStop::Close {
                    for slot in &slots {
                        let since = slot.in_flight_since.load(Relaxed);
                        if since > 0 {
                            let began = start + Duration::from_nanos(since - 1);
                            if let Ok(mut s) = slot.stats.lock() {
                                s.record(
                                    began.elapsed(),
                                    Outcome::failed(Code::Unavailable, "transport is closing"),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    let elapsed = start.elapsed();
    if let Some(s) = sampler {
        s.abort();
    }
    // The pacer stops at the deadline, at `stop` or after the last request.
    shared.stop.store(true, Relaxed);
    if let Some(p) = pacer {
        if p.join().is_err() {
            return Err(RunError::PacerPanicked);
        }
    }
    let mut stats = Stats::new();
    for slot in &slots {
        if let Ok(s) = slot.stats.lock() {
            stats.merge(&s);
        }
    }
    let mut rss = rss
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    let sampled_lately = rss
        .last()
        .is_some_and(|r| elapsed.as_secs_f64() - r.elapsed_seconds < 1.0);
    if sample_rss && options.sample_interval.is_some() && !sampled_lately {
        if let Some(kib) = options.server_pid.and_then(rss_kib) {
            rss.push(RssSample {
                elapsed_seconds: elapsed.as_secs_f64(),
                rss_kib: kib,
            });
        }
    }
    Ok(Phase {
        stats,
        total: elapsed,
        end_reason,
        rss,
    })
}

/// Runs the load described by `options` and reports it: connects, sends one untimed call
/// per connection, runs the `warmup` phase if asked (not reported), then the measured one.
pub async fn run(options: &Options) -> Result<Report, RunError> {
    let payloads = Arc::new(Payloads::compile(
        options.call,
        &options.data,
        &options.metadata,
    )?);
    let mut clients = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        clients.push(Client::new(options.call, connect(options).await?));
    }
    // The first call on a fresh HTTP/2 connection pays for settings and header-table
    // set-up on both sides; it is not the server's latency.
    let warm_rng = Rng::new(u64::MAX);
    for client in &mut clients {
        if let Ok((message, metadata)) = payloads.build(0, "warmup", &warm_rng) {
            let call = client.call(message, metadata);
            let _ = tokio::time::timeout(options.connect_timeout, call).await;
        }
    }
    if let Some(w) = options.warmup {
        phase(&clients, &payloads, options, Some(w), u64::MAX, false).await?;
    }

    let tick_rate = clock_ticks_per_second();
    let probe = options
        .server_pid
        .and_then(|pid| cpu_ticks(pid).map(|ticks| Probe { pid, ticks }));
    let run_for = match (options.duration, options.max_duration) {
        (Some(d), Some(x)) => Some(d.min(x)),
        (d, x) => d.or(x),
    };
    let measured = phase(&clients, &payloads, options, run_for, options.total, true).await?;
    let cpu_after = probe.and_then(|p| cpu_ticks(p.pid));

    let report_options = ReportOptions {
        host: options.host.clone(),
        call: options.call.to_string(),
        insecure: options.insecure,
        total: if options.duration.is_some() {
            crate::ghz::report::TOTAL_WITH_DURATION
        } else {
            options.total
        },
        schedules: Default::default(),
        concurrency: options.concurrency as u64,
        connections: options.connections as u64,
        rps: options.rps.unwrap_or(0),
        duration: options.duration.map_or(0, nanos),
        timeout: options.timeout.map_or(0, nanos),
        dial_timeout: nanos(options.connect_timeout),
        data: Some(options.data.clone()),
        metadata: Some(options.metadata.clone()).filter(|m| !m.is_empty()),
        binary: false,
        cpus: options.cpus as u64,
        name: options.name.clone(),
        skip_first: options.skip_first,
    };
    let mut report = Report::new(
        &measured.stats,
        measured.total,
        measured.end_reason,
        report_options,
    );
    report.tags = options.tags.clone();
    if let (Some(p), Some(after)) = (probe, cpu_after) {
        let cpu_seconds = after.saturating_sub(p.ticks) as f64 / tick_rate;
        let count = measured.stats.count();
        report.server_cpu = Some(ServerCpu {
            pid: p.pid,
            cpu_seconds,
            cpu_per_call_micros: if count > 0 {
                cpu_seconds * 1e6 / count as f64
            } else {
                0.0
            },
            utilization: cpu_seconds / measured.total.as_secs_f64().max(1e-9),
        });
    }
    report.server_rss = measured.rss;
    Ok(report)
}

/// [`run`] on a runtime of its own: single-threaded when `options.cpus` is 1 (the cheapest
/// way to drive load from one pinned core), else `cpus` worker threads.
pub fn run_blocking(options: &Options) -> Result<Report, RunError> {
    let runtime = if options.cpus <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.cpus)
            .enable_all()
            .build()
    }
    .map_err(RunError::Runtime)?;
    runtime.block_on(run(options))
}
