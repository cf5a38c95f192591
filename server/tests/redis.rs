//! Replicas sharing signals through a real `redis-server`: a signal published to one replica
//! is enforced by the other; a replica that loses Redis keeps serving, denies sensitive
//! actions after the staleness bound, and recovers; a replica that starts loads what the
//! others published; replicas that hold signals write them back to a Redis that lost its
//! data; a Check may require the generation a Publish answered.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pdp_proto::v1 as pb;
use tonic::transport::Channel;

mod common;

use common::{channel, check, free_port, readme_request, signals_status, start_pdp, Server};

/// A `redis-server` on a free loopback port, persisting every write to its append-only
/// file so a restart keeps the state (unless started volatile). Killed on drop.
struct Redis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        Redis::start_on(free_port(), tempfile::tempdir().unwrap())
    }

    fn start_on(port: u16, dir: tempfile::TempDir) -> Redis {
        Redis::spawn(port, dir, true)
    }

    /// A server that persists nothing: restarted, it is empty.
    fn start_volatile_on(port: u16) -> Redis {
        Redis::spawn(port, tempfile::tempdir().unwrap(), false)
    }

    fn spawn(port: u16, dir: tempfile::TempDir, persist: bool) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                if persist { "yes" } else { "no" },
                "--appendfsync",
                "always",
                "--dir",
                dir.path().to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): install it (`apt-get install redis-server`); .ci/run does")
            });
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: nothing is flushed that was not already written).
    fn kill(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (port, dir)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replica(redis: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--signals", redis];
    args.extend_from_slice(extra);
    start_pdp(args, &[])
}

async fn publish(c: &Channel, signal: pb::Signal) -> Result<pb::PublishResponse, tonic::Status> {
    pb::signal_service_client::SignalServiceClient::new(c.clone())
        .publish(pb::PublishRequest {
            signals: vec![signal],
        })
        .await
        .map(tonic::Response::into_inner)
}

fn revoke(session: &str) -> pb::Signal {
    pb::Signal {
        r#type: pb::SignalType::SessionRevoked as i32,
        session_id: session.into(),
        ..Default::default()
    }
}

fn in_session(session: &str) -> pb::CheckRequest {
    let mut r = readme_request(Some(true));
    r.subject.as_mut().unwrap().session_id = session.into();
    r
}

/// alice reading her own IAM user: allowed, and sensitive (`iam:*`).
fn sensitive() -> pb::CheckRequest {
    let mut r = readme_request(Some(true));
    r.subject.as_mut().unwrap().roles.clear();
    r.action = "iam:GetUser".into();
    r.resource.as_mut().unwrap().id = "arn:aws:iam::123456789012:user/alice".into();
    r
}

/// Polls until `decided` holds for the answer to `request`, up to `limit`; the time taken.
async fn until(
    c: &Channel,
    request: &pb::CheckRequest,
    limit: Duration,
    decided: impl Fn(&pb::CheckResponse) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if decided(&check(c, request.clone()).await) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

async fn health(c: &Channel, service: &str) -> i32 {
    tonic_health::pb::health_client::HealthClient::new(c.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test]
async fn a_signal_published_to_one_replica_is_enforced_by_the_other() {
    let redis = Redis::start();
    let a = replica(&redis.url(), &[]);
    let b = replica(&redis.url(), &[]);
    assert!(a.banner.contains("signals redis"), "{}", a.banner);
    let (ca, cb) = (channel(&a).await, channel(&b).await);
    for i in 0..20 {
        let session = format!("s-{i}");
        let allowed = check(&cb, in_session(&session)).await;
        assert_eq!(allowed.decision(), pb::Decision::Allow);
        assert!(allowed.ttl.unwrap().seconds > 0, "the allow is cached on b");
        publish(&ca, revoke(&session)).await.unwrap();
        let took = until(&cb, &in_session(&session), Duration::from_secs(2), |r| {
            r.reason() == pb::Reason::SessionRevoked
        })
        .await;
        let took = took.expect("b enforces a's revocation");
        assert!(took < Duration::from_millis(500), "took {took:?}");
    }
    let s = signals_status(&cb).await;
    assert_eq!(
        (s.store.as_str(), s.connected, s.stale),
        ("redis", true, false)
    );
    assert_eq!(s.sessions, 20);
}

#[tokio::test]
async fn losing_redis_denies_sensitive_actions_after_the_bound_and_recovers() {
    let redis = Redis::start();
    let url = redis.url();
    let a = replica(&url, &["--signals-stale-after-ms", "700"]);
    let ca = channel(&a).await;
    publish(&ca, revoke("before-outage")).await.unwrap();
    assert_eq!(
        check(&ca, sensitive()).await.decision(),
        pb::Decision::Allow
    );
    let signal_service = "pdp.v1.SignalService";
    assert_eq!(health(&ca, signal_service).await, 1, "SERVING");

    let (port, dir) = redis.kill();
    // Within the bound, sensitive actions are still decided on the last known state.
    assert_eq!(
        check(&ca, sensitive()).await.decision(),
        pb::Decision::Allow
    );
    let stale = until(&ca, &sensitive(), Duration::from_secs(5), |r| {
        r.reason() == pb::Reason::SignalsStale
    })
    .await;
    assert!(stale.is_some(), "sensitive actions are denied once stale");
    // Other actions are still served, revocations still enforced.
    assert_eq!(
        check(&ca, in_session("x")).await.decision(),
        pb::Decision::Allow
    );
    assert_eq!(
        check(&ca, in_session("before-outage")).await.reason(),
        pb::Reason::SessionRevoked
    );
    let s = signals_status(&ca).await;
    assert!(!s.connected && s.stale, "{s:?}");
    let mut not_serving = false;
    for _ in 0..50 {
        if health(&ca, signal_service).await == 2 {
            not_serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(not_serving, "health says NOT_SERVING for {signal_service}");
    // Publishing now fails (the signal is in force here only) and says so.
    let e = publish(&ca, revoke("during-outage")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert_eq!(
        check(&ca, in_session("during-outage")).await.reason(),
        pb::Reason::SessionRevoked
    );

    // Redis comes back with what it had persisted: the replica reconnects and recovers.
    let redis = Redis::start_on(port, dir);
    let recovered = until(&ca, &sensitive(), Duration::from_secs(10), |r| {
        r.decision() == pb::Decision::Allow
    })
    .await;
    assert!(recovered.is_some(), "sensitive actions are allowed again");
    assert!(signals_status(&ca).await.connected);

    // A replica starting now loads the state the others published.
    let c = replica(&redis.url(), &[]);
    let cc = channel(&c).await;
    assert_eq!(
        check(&cc, in_session("before-outage")).await.reason(),
        pb::Reason::SessionRevoked
    );
    assert_eq!(
        check(&cc, in_session("fresh")).await.decision(),
        pb::Decision::Allow
    );
}

#[tokio::test]
async fn a_replica_that_cannot_reach_redis_at_start_serves_but_denies_sensitive_actions() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = replica(&format!("redis://127.0.0.1:{port}"), &[]);
    let ca = channel(&a).await;
    assert_eq!(
        check(&ca, in_session("x")).await.decision(),
        pb::Decision::Allow
    );
    assert_eq!(
        check(&ca, sensitive()).await.reason(),
        pb::Reason::SignalsStale
    );
}

fn hlen(redis: &Redis) -> i64 {
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "HLEN", "pdp:signals:state"])
        .output()
        .expect("redis-cli (installed with redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test]
async fn signals_past_retention_leave_the_shared_store() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pdp.toml");
    std::fs::write(
        &config,
        "[signals]\nretention_secs = 60\nprune_interval_secs = 1\n",
    )
    .unwrap();
    let a = replica(&redis.url(), &["--config", config.to_str().unwrap()]);
    let ca = channel(&a).await;
    let now = chrono::Utc::now().timestamp();
    let old = pb::Signal {
        event_time: now - 3600,
        ..revoke("long-ago")
    };
    publish(&ca, old).await.unwrap();
    publish(&ca, revoke("just-now")).await.unwrap();
    assert_eq!(hlen(&redis), 2);
    let mut left = 2;
    for _ in 0..50 {
        left = hlen(&redis);
        if left == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 1, "the old signal is removed, the fresh one kept");
    assert_eq!(
        check(&ca, in_session("just-now")).await.reason(),
        pb::Reason::SessionRevoked
    );
}

async fn check_at(c: &Channel, request: pb::CheckRequest, generation: u64) -> pb::CheckResponse {
    let mut r = request;
    r.min_signal_generation = generation;
    check(c, r).await
}

#[tokio::test]
async fn revocations_are_written_back_when_redis_loses_its_data() {
    let port = free_port();
    let redis = Redis::start_volatile_on(port);
    let url = redis.url();
    let a = replica(&url, &[]);
    let b = replica(&url, &[]);
    let (ca, cb) = (channel(&a).await, channel(&b).await);
    let before = publish(&ca, revoke("s-pre")).await.unwrap();
    assert_eq!(
        check_at(&cb, in_session("s-pre"), before.generation)
            .await
            .reason(),
        pb::Reason::SessionRevoked
    );

    // Redis restarts empty on the same port.
    drop(redis);
    let redis = Redis::start_volatile_on(port);
    // A third replica serves only once it holds what the others hold.
    let c = replica(&url, &[]);
    let cc = channel(&c).await;
    assert_eq!(
        check(&cc, in_session("s-pre")).await.reason(),
        pb::Reason::SessionRevoked,
        "the new replica enforces the revocation made before Redis lost its data"
    );
    assert!(hlen(&redis) >= 1, "the revocation is back in Redis");
    // Generations keep growing across the loss, and the store works as before.
    let after = publish(&cc, revoke("s-post")).await.unwrap();
    assert!(after.generation > before.generation);
    for replica in [&ca, &cb] {
        assert_eq!(
            check_at(replica, in_session("s-post"), after.generation)
                .await
                .reason(),
            pb::Reason::SessionRevoked
        );
        assert_eq!(
            check(replica, in_session("s-fresh")).await.decision(),
            pb::Decision::Allow
        );
    }
}

#[tokio::test]
async fn a_check_that_requires_the_published_generation_sees_the_signal_on_another_replica() {
    let redis = Redis::start();
    let a = replica(&redis.url(), &[]);
    let b = replica(&redis.url(), &[]);
    let (ca, cb) = (channel(&a).await, channel(&b).await);
    let rounds = 300;
    // Without the generation: how often the very next Check on the other replica still
    // allows, and for how long.
    let mut allowed_first = 0;
    let mut windows = Vec::new();
    for i in 0..rounds {
        let session = format!("w-{i}");
        assert_eq!(
            check(&cb, in_session(&session)).await.decision(),
            pb::Decision::Allow
        );
        publish(&ca, revoke(&session)).await.unwrap();
        let published = Instant::now();
        if check(&cb, in_session(&session)).await.reason() == pb::Reason::SessionRevoked {
            continue;
        }
        allowed_first += 1;
        loop {
            let r = check(&cb, in_session(&session)).await;
            if r.reason() == pb::Reason::SessionRevoked {
                break;
            }
            assert!(published.elapsed() < Duration::from_secs(2), "never denied");
        }
        windows.push(published.elapsed());
    }
    eprintln!(
        "without min_signal_generation: {allowed_first} of {rounds} first Checks on the other replica allowed; the longest, from Publish returning to the deny: {:?}",
        windows.iter().max()
    );
    // With it: never.
    for i in 0..rounds {
        let session = format!("g-{i}");
        assert_eq!(
            check(&cb, in_session(&session)).await.decision(),
            pb::Decision::Allow
        );
        let published = publish(&ca, revoke(&session)).await.unwrap();
        let r = check_at(&cb, in_session(&session), published.generation).await;
        assert_eq!(r.reason(), pb::Reason::SessionRevoked, "round {i}");
    }
    // A generation no replica has reached is refused once the bound passes.
    let r = check_at(&cb, in_session("x"), u64::MAX).await;
    assert_eq!(r.reason(), pb::Reason::SignalsStale);
}
