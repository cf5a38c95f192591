//! Signal-to-enforcement latency across replicas: for each of `-n` sessions, a Check on the
//! enforcing replica (allowed, and cached there), then `SignalService/Publish` of a
//! `session-revoked` on the publishing replica, then Checks on the enforcing replica as fast
//! as they come back until one is denied with `REASON_SESSION_REVOKED`. The latency is the
//! time from Publish returning to that deny. Prints the distribution and the target (p99 at
//! most 100 ms); exits 1 when a revocation is not enforced within 5 s.
//!
//! `signal-latency PUBLISH_ADDR ENFORCE_ADDR [N]`

use std::time::{Duration, Instant};

use pdp_proto::v1 as pb;
use tonic::transport::Channel;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TARGET_P99: Duration = Duration::from_millis(100);

async fn connect(addr: &str) -> Result<Channel, String> {
    Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}

async fn run(publish_addr: &str, enforce_addr: &str, n: usize) -> Result<Vec<Duration>, String> {
    let mut publisher =
        pb::signal_service_client::SignalServiceClient::new(connect(publish_addr).await?);
    let mut enforcer = pb::authorization_service_client::AuthorizationServiceClient::new(
        connect(enforce_addr).await?,
    );
    let run_id = std::process::id();
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let session = format!("latency-{run_id}-{i}");
        let mut request = pdp_loadtest::readme_request();
        if let Some(s) = request.subject.as_mut() {
            s.session_id.clone_from(&session);
        }
        let first = enforcer
            .check(request.clone())
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        if first.decision() != pb::Decision::Allow {
            return Err(format!("session {session}: not allowed before the signal"));
        }
        publisher
            .publish(pb::PublishRequest {
                signals: vec![pb::Signal {
                    r#type: pb::SignalType::SessionRevoked as i32,
                    session_id: session.clone(),
                    ..Default::default()
                }],
            })
            .await
            .map_err(|e| format!("publish: {e}"))?;
        let published = Instant::now();
        loop {
            let r = enforcer
                .check(request.clone())
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            if r.reason() == pb::Reason::SessionRevoked {
                latencies.push(published.elapsed());
                break;
            }
            if published.elapsed() > Duration::from_secs(5) {
                return Err(format!(
                    "session {session}: not revoked on the other replica after 5 s"
                ));
            }
        }
    }
    Ok(latencies)
}

fn at(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(publish), Some(enforce)) = (args.first(), args.get(1)) else {
        eprintln!("usage: signal-latency PUBLISH_ADDR ENFORCE_ADDR [N]");
        return std::process::ExitCode::from(2);
    };
    let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(500);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut latencies = match runtime.block_on(run(publish, enforce, n)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = at(&latencies, 0.99);
    println!(
        "signal-to-enforcement across replicas, {} revocations: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 <= {} ms: {})",
        latencies.len(),
        ms(at(&latencies, 0.5)),
        ms(at(&latencies, 0.9)),
        ms(p99),
        ms(at(&latencies, 1.0)),
        TARGET_P99.as_millis(),
        if p99 <= TARGET_P99 { "met" } else { "NOT MET" }
    );
    std::process::ExitCode::SUCCESS
}
