//! `pdp-client` against the real `pdp serve` on loopback: decisions and obligations, batches,
//! the local cache honouring the ttl, invalidation through the Watch stream, fail-closed when
//! the server is gone, retries across a restart, the circuit breaker, deadlines.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use pdp_client::{
    pb, BreakerPolicy, Check, ClientError, FailurePolicy, PdpClient, Reason, RetryPolicy,
};

mod common;

use common::{metric, start_pdp, start_pdp_on, Server};

fn readme() -> Check {
    Check::new(
        "alice",
        "s3:GetObject",
        "arn:aws:s3:::my-bucket/data/report.csv",
    )
    .role("ApplicationRole")
    .context("aws:SourceIp", "10.1.2.3")
    .context("aws:MultiFactorAuthPresent", true)
    .context("aws:RequestTag/Environment", "production")
}

fn client(server: &Server) -> PdpClient {
    PdpClient::builder()
        .endpoint(format!("http://{}", server.addr))
        .build()
        .unwrap()
}

fn decisions(server: &Server) -> f64 {
    metric(server, "pdp_check_duration_seconds_count")
}

fn free_port() -> String {
    format!("127.0.0.1:{}", common::free_port())
}

#[tokio::test]
async fn decisions_obligations_and_batches() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let pdp = client(&server);
    let allowed = pdp.check(readme().build()).await.unwrap();
    assert!(allowed.is_allowed());
    assert_eq!(allowed.reason(), Reason::Allowed);
    assert_eq!(allowed.decision_id().len(), 36);
    assert!(!allowed.is_fail_open());

    let no_mfa = Check::new(
        "alice",
        "s3:GetObject",
        "arn:aws:s3:::my-bucket/data/report.csv",
    )
    .role("ApplicationRole")
    .context("aws:SourceIp", "10.1.2.3")
    .build();
    let denied = pdp.check(no_mfa).await.unwrap();
    assert!(!denied.is_allowed());
    assert_eq!(denied.reason(), Reason::ExplicitDeny);

    // Deleting a bucket without a fresh MFA: a deny with a step-up obligation.
    let delete = Check::new("alice", "s3:DeleteBucket", "arn:aws:s3:::my-bucket")
        .context("aws:MultiFactorAuthPresent", true)
        .build();
    let step_up = pdp.check(delete).await.unwrap();
    let ob = step_up.step_up().expect("a step-up obligation");
    assert_eq!(ob.property("acr"), Some("urn:pdp:acr:phishing-resistant"));

    let batch = pdp
        .check_batch(pb::CheckBatchRequest {
            subject: readme().build().subject,
            action: "s3:GetObject".into(),
            context: readme().build().context,
            items: vec![
                pb::CheckBatchItem {
                    resource: Some(pb::Resource {
                        id: "arn:aws:s3:::my-bucket/data/a.csv".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                pb::CheckBatchItem {
                    resource: Some(pb::Resource {
                        id: "arn:aws:s3:::other/b.csv".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    let allowed: Vec<bool> = batch.iter().map(|d| d.is_allowed()).collect();
    assert_eq!(allowed, [true, false]);

    // A malformed request is an error, not a decision.
    let e = pdp.check(pb::CheckRequest::default()).await.unwrap_err();
    assert!(matches!(e, ClientError::InvalidRequest(_)), "{e:?}");
}

#[tokio::test]
async fn cached_decisions_make_no_call_within_their_ttl_and_one_after() {
    let server = start_pdp(["--decision-cache-ttl", "1"], &[]);
    let pdp = client(&server);
    let first = pdp.check(readme().build()).await.unwrap();
    assert!(first.ttl() > Duration::ZERO && first.ttl() <= Duration::from_secs(1));
    let calls = decisions(&server);
    let second = pdp.check(readme().build()).await.unwrap();
    assert!(second.is_cached() && second.is_allowed());
    assert_eq!(second.decision_id(), first.decision_id());
    assert_eq!(decisions(&server), calls, "no call within the ttl");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = pdp.check(readme().build()).await.unwrap();
    assert!(!third.is_cached());
    assert_eq!(decisions(&server), calls + 1.0, "one call after the ttl");
}

#[tokio::test]
async fn a_signal_invalidates_the_cached_decision_through_the_watch_stream() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let pdp = client(&server);
    assert!(pdp.check(readme().build()).await.unwrap().is_allowed());
    assert!(pdp.check(readme().build()).await.unwrap().is_cached());
    let mut signals =
        pb::signal_service_client::SignalServiceClient::connect(format!("http://{}", server.addr))
            .await
            .unwrap();
    signals
        .publish(pb::PublishRequest {
            signals: vec![pb::Signal {
                r#type: pb::SignalType::RiskLevelChange as i32,
                subject: "alice".into(),
                risk_level: "high".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    // The cached allow would last its ttl (10 s); the invalidation removes it at once.
    let started = Instant::now();
    let mut denied = false;
    while started.elapsed() < Duration::from_secs(2) {
        let d = pdp.check(readme().build()).await.unwrap();
        if !d.is_allowed() {
            assert!(!d.is_cached());
            denied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(denied, "the cached allow was dropped");
}

#[tokio::test]
async fn a_check_with_a_signal_generation_is_never_answered_from_the_cache() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    // No Watch stream: only the generation can tell the client its cached allow is old.
    let pdp = PdpClient::builder()
        .endpoint(format!("http://{}", server.addr))
        .watch(false)
        .build()
        .unwrap();
    assert!(pdp.check(readme().build()).await.unwrap().is_allowed());
    assert!(pdp.check(readme().build()).await.unwrap().is_cached());
    let mut signals =
        pb::signal_service_client::SignalServiceClient::connect(format!("http://{}", server.addr))
            .await
            .unwrap();
    let published = signals
        .publish(pb::PublishRequest {
            signals: vec![pb::Signal {
                r#type: pb::SignalType::RiskLevelChange as i32,
                subject: "alice".into(),
                risk_level: "high".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(published.generation > 0);
    let stale = pdp.check(readme().build()).await.unwrap();
    assert!(
        stale.is_cached() && stale.is_allowed(),
        "without it: the cache"
    );
    let fresh = pdp
        .check(readme().min_signal_generation(published.generation).build())
        .await
        .unwrap();
    assert!(!fresh.is_cached());
    assert_eq!(
        fresh.reason(),
        Reason::ExplicitDeny,
        "the high risk is in force"
    );
    let ahead = pdp
        .check(
            readme()
                .min_signal_generation(published.generation + 1000)
                .build(),
        )
        .await
        .unwrap();
    assert_eq!(ahead.reason(), Reason::SignalsStale);
}

#[tokio::test]
async fn a_stopped_server_means_deny_unless_the_call_site_fails_open() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let pdp = PdpClient::builder()
        .endpoint(format!("http://{}", server.addr))
        .no_cache()
        .retries(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(10),
            budget: Duration::from_millis(200),
        })
        .build()
        .unwrap();
    assert!(pdp.check(readme().build()).await.unwrap().is_allowed());
    let _ = server.stop();
    let d = pdp.check(readme().build()).await.unwrap();
    assert!(!d.is_allowed());
    assert_eq!(d.reason(), Reason::PdpUnavailable);
    let open = pdp
        .check_with(readme().build(), FailurePolicy::FailOpen)
        .await
        .unwrap();
    assert!(open.is_allowed() && open.is_fail_open());
}

#[tokio::test]
async fn retries_carry_a_call_across_a_restart() {
    let addr = free_port();
    let pdp = PdpClient::builder()
        .endpoint(format!("http://{addr}"))
        .no_cache()
        .connect_timeout(Duration::from_millis(200))
        .retries(RetryPolicy {
            max_attempts: 50,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(100),
            budget: Duration::from_secs(10),
        })
        .circuit_breaker(BreakerPolicy {
            failures: 1000,
            open_for: Duration::from_millis(10),
        })
        .build()
        .unwrap();
    let pending = tokio::spawn({
        let pdp = pdp.clone();
        async move { pdp.try_check(readme().build()).await }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !pending.is_finished(),
        "still retrying while the server is down"
    );
    let _server = start_pdp_on(&addr, Vec::<&str>::new(), &[]);
    let d = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(d.is_allowed());
}

#[tokio::test]
async fn the_circuit_breaker_opens_after_failures_and_closes_after_a_good_probe() {
    let addr = free_port();
    let pdp = PdpClient::builder()
        .endpoint(format!("http://{addr}"))
        .no_cache()
        .connect_timeout(Duration::from_millis(100))
        .retries(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
        .circuit_breaker(BreakerPolicy {
            failures: 2,
            open_for: Duration::from_millis(500),
        })
        .build()
        .unwrap();
    for _ in 0..2 {
        let e = pdp.try_check(readme().build()).await.unwrap_err();
        assert!(matches!(e, ClientError::Unavailable(_)), "{e:?}");
    }
    let e = pdp.try_check(readme().build()).await.unwrap_err();
    assert_eq!(e, ClientError::CircuitOpen, "open: fails at once");
    // Fail closed while open.
    assert_eq!(
        pdp.check(readme().build()).await.unwrap().reason(),
        Reason::PdpUnavailable
    );
    let _server = start_pdp_on(&addr, Vec::<&str>::new(), &[]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let probe = pdp.try_check(readme().build()).await;
    assert!(probe.is_ok_and(|d| d.is_allowed()), "the probe closes it");
    assert!(pdp.try_check(readme().build()).await.is_ok());
}

#[tokio::test]
async fn a_call_past_its_deadline_is_a_deadline_error() {
    let server = start_pdp(
        ["--max-batch-items", "20000", "--decision-cache", "off"],
        &[],
    );
    let pdp = PdpClient::builder()
        .endpoint(format!("http://{}", server.addr))
        .no_cache()
        .call_timeout(Duration::from_millis(2))
        .build()
        .unwrap();
    // Warm the connection.
    let _ = pdp.check(readme().build()).await;
    let base = readme().build();
    let slow = common::data_batch(&base, 20_000);
    let answers = pdp.check_batch(slow).await.unwrap();
    assert!(
        answers
            .iter()
            .all(|d| d.reason() == Reason::PdpUnavailable && !d.is_allowed()),
        "a deadline is a fail-closed answer"
    );
}
