//! What `pdp serve` shows about itself: Prometheus metrics on the HTTP port, health and
//! readiness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use pdp_proto::v1 as pb;
use tonic::transport::Channel;

mod common;

use common::{metric, readme_request, start_pdp, Server};

async fn channel(server: &Server) -> Channel {
    let url = format!("http://{}", server.addr);
    for _ in 0..50 {
        if let Ok(c) = Channel::from_shared(url.clone()).unwrap().connect().await {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("cannot connect to {url}");
}

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn metrics_count_decisions_caches_tokens_signals_and_watchers() {
    let server = start_pdp(["--jwks", &fixture("jwks.json")], &[]);
    let c = channel(&server).await;
    let mut authz = pb::authorization_service_client::AuthorizationServiceClient::new(c.clone());
    for _ in 0..2 {
        let r = authz.check(readme_request(Some(true))).await.unwrap();
        assert_eq!(r.into_inner().decision(), pb::Decision::Allow);
    }
    authz.check(readme_request(Some(false))).await.unwrap();
    let mut bad_token = readme_request(Some(true));
    bad_token.subject.as_mut().unwrap().token = "not.a.jwt".into();
    let r = authz.check(bad_token).await.unwrap().into_inner();
    assert_eq!(r.reason(), pb::Reason::InvalidIdentity);

    let mut signals = pb::signal_service_client::SignalServiceClient::new(c.clone());
    signals
        .publish(pb::PublishRequest {
            signals: vec![pb::Signal {
                r#type: pb::SignalType::CredentialChange as i32,
                subject: "carol".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    let _watch = signals
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();

    let m = |prefix: &str| metric(&server, prefix);
    assert_eq!(
        m(r#"pdp_decisions_total{decision="allow",reason="allowed",api="check"}"#),
        2.0
    );
    assert_eq!(
        m(r#"pdp_decisions_total{decision="deny",reason="explicit_deny",api="check"}"#),
        1.0
    );
    assert_eq!(
        m(r#"pdp_decisions_total{decision="deny",reason="invalid_identity",api="check"}"#),
        1.0
    );
    assert_eq!(m("pdp_check_duration_seconds_count"), 4.0);
    assert_eq!(
        m(r#"pdp_cache_lookups_total{cache="decision",result="hit"}"#),
        1.0
    );
    assert_eq!(
        m(r#"pdp_cache_lookups_total{cache="decision",result="miss"}"#),
        2.0
    );
    assert!(m(r#"pdp_token_verification_failures_total{kind="#) >= 1.0);
    assert_eq!(
        m(r#"pdp_signals_received_total{type="credential-change",source="publish"}"#),
        1.0
    );
    assert_eq!(m("pdp_watch_subscribers"), 1.0);
    assert!(m("pdp_policy_statements") > 10.0);
    assert_eq!(m("pdp_policy_revision_info{revision="), 1.0);
    assert_eq!(m("pdp_signals_stale"), 0.0);

    for path in ["/healthz", "/readyz"] {
        let (code, body) = common::http(&server.http, "GET", path, &[], "");
        assert_eq!(code, 200, "{path}: {body}");
    }
}
