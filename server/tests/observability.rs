//! What `pdp serve` shows about itself: Prometheus metrics on the HTTP port, health and
//! readiness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use pdp_proto::v1 as pb;

mod common;

use common::{channel, fixture, metric, readme_request, rs256_token, start_pdp, stop_gracefully};

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

fn pdp(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn every_decision_is_logged_in_a_chain_that_verifies_and_shows_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let server = start_pdp(
        [
            "--jwks",
            &fixture("jwks.json"),
            "--decision-log",
            log.to_str().unwrap(),
            "--decision-log-key",
            &fixture("ed25519.pem"),
        ],
        &[],
    );
    let c = channel(&server).await;
    let mut authz = pb::authorization_service_client::AuthorizationServiceClient::new(c.clone());
    let allowed = authz
        .check(readme_request(Some(true)))
        .await
        .unwrap()
        .into_inner();
    let token = rs256_token(
        serde_json::json!({ "sub": "tina", "roles": ["ApplicationRole"], "amr": ["mfa"] }),
    );
    let mut with_token = readme_request(None);
    with_token.subject = Some(pb::Subject {
        token: token.clone(),
        ..Default::default()
    });
    let verified = authz.check(with_token).await.unwrap().into_inner();
    let batch = authz
        .check_batch(pb::CheckBatchRequest {
            subject: readme_request(Some(true)).subject,
            action: "s3:GetObject".into(),
            items: vec![pb::CheckBatchItem::default(); 3],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.responses.len(), 3);
    // A graceful stop waits for connections to close.
    drop((authz, c));
    stop_gracefully(server).await;

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&token), "the token is never logged");
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5, "{text}");
    assert_eq!(records[0]["decision_id"], allowed.decision_id.as_str());
    assert_eq!(records[0]["subject"], "alice");
    assert_eq!(records[0]["decision"], "allow");
    assert_eq!(records[0]["api"], "check");
    assert!(records[0]["caller"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(records[1]["decision_id"], verified.decision_id.as_str());
    assert_eq!(records[1]["subject"], "tina", "the verified subject");
    assert_eq!(records[4]["api"], "check_batch");
    assert!(text
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with("{\"checkpoint\""));

    let public = dir.path().join("pub.pem");
    let out = pdp(&["audit", "public-key", &fixture("ed25519.pem")]);
    assert!(out.status.success());
    std::fs::write(&public, &out.stdout).unwrap();
    let verify = |file: &std::path::Path| {
        pdp(&[
            "audit",
            "verify",
            "--key",
            public.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
    };
    let ok = verify(&log);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{said}");
    assert!(said.contains("intact: 5 records"), "{said}");

    let edited = dir.path().join("edited.jsonl");
    std::fs::write(&edited, text.replacen("\"tina\"", "\"tino\"", 1)).unwrap();
    let bad = verify(&edited);
    let said = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{said}");
    assert!(said.contains("edited.jsonl:2:"), "{said}");
}

#[tokio::test]
async fn a_log_that_cannot_keep_up_denies_when_told_to_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pdp.toml");
    std::fs::write(
        &config,
        format!(
            "max_batch_items = 5000\n[decision_cache]\nenabled = false\n[decision_log]\npath = \"{}\"\nqueue = 1\noverflow = \"deny\"\n",
            dir.path().join("d.jsonl").display()
        ),
    )
    .unwrap();
    let server = start_pdp(["--config", config.to_str().unwrap()], &[]);
    let c = channel(&server).await;
    let mut authz = pb::authorization_service_client::AuthorizationServiceClient::new(c);
    let base = readme_request(Some(true));
    let mut refused = 0;
    for _ in 0..10 {
        let batch = authz
            .check_batch(pb::CheckBatchRequest {
                subject: base.subject.clone(),
                action: "s3:GetObject".into(),
                context: base.context.clone(),
                items: (0..5000)
                    .map(|i| pb::CheckBatchItem {
                        resource: Some(pb::Resource {
                            id: format!("arn:aws:s3:::my-bucket/data/{i}.csv"),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        refused = batch
            .responses
            .iter()
            .filter(|r| r.reason() == pb::Reason::AuditUnavailable)
            .inspect(|r| assert_eq!(r.decision(), pb::Decision::Deny))
            .count();
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "a queue of one never overflowed");
    assert!(metric(&server, "pdp_decision_log_refused_total") >= refused as f64);
}
