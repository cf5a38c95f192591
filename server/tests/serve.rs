//! `pdp serve` end to end: the real binary on 127.0.0.1:0, called with the generated tonic
//! client over the example policies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::Command;

use pb::authorization_service_client::AuthorizationServiceClient;
use pdp_proto::v1 as pb;
use prost_types::value::Kind;
use tonic::transport::Channel;

mod common;

use common::{copy_policies, Server};

fn start(extra: &[&str]) -> Server {
    common::start_pdp(extra, &[])
}

/// Polls `check` until it returns true (up to about 5 s).
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

/// `pdp serve` on a copy of the example policies that it does not watch.
fn start_unwatched() -> (tempfile::TempDir, Server) {
    let dir = copy_policies();
    let server = start(&[
        "--policies",
        dir.path().to_str().unwrap(),
        "--watch",
        "false",
    ]);
    (dir, server)
}

async fn admin(server: &Server) -> pb::admin_service_client::AdminServiceClient<Channel> {
    pb::admin_service_client::AdminServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap()
}

async fn client(server: &Server) -> AuthorizationServiceClient<Channel> {
    let url = format!("http://{}", server.addr);
    for _ in 0..50 {
        if let Ok(c) = AuthorizationServiceClient::connect(url.clone()).await {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("cannot connect to {url}");
}

fn s(v: &str) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(v.into())),
    }
}

fn b(v: bool) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::BoolValue(v)),
    }
}

fn n(v: f64) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::NumberValue(v)),
    }
}

fn context(pairs: &[(&str, prost_types::Value)]) -> Option<prost_types::Struct> {
    Some(prost_types::Struct {
        fields: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    })
}

/// The README's example request, with or without MFA in the context.
fn readme_request(mfa: bool) -> pb::CheckRequest {
    common::readme_request(mfa.then_some(true))
}

#[tokio::test]
async fn readme_request_is_allowed_and_denied_without_mfa() {
    let server = start(&[]);
    let mut c = client(&server).await;
    let allow = c.check(readme_request(true)).await.unwrap().into_inner();
    assert_eq!(allow.decision(), pb::Decision::Allow);
    assert_eq!(allow.reason(), pb::Reason::Allowed);
    assert!(allow
        .determining
        .iter()
        .any(|d| d.policy == "app-data" && d.effect == "Allow"));
    assert!(!allow.decision_id.is_empty());
    assert_eq!(allow.policy_revision.len(), 16);

    let deny = c.check(readme_request(false)).await.unwrap().into_inner();
    assert_eq!(deny.decision(), pb::Decision::Deny);
    assert_eq!(deny.reason(), pb::Reason::ExplicitDeny);
    assert_eq!(deny.determining[0].policy, "require-mfa");
    assert_ne!(allow.decision_id, deny.decision_id);
}

#[tokio::test]
async fn implicit_deny_and_obligations_come_back() {
    let server = start(&[]);
    let mut c = client(&server).await;
    let mut unknown = readme_request(true);
    unknown.subject.as_mut().unwrap().roles = vec!["NoSuchRole".into()];
    let r = c.check(unknown).await.unwrap().into_inner();
    assert_eq!(
        (r.decision(), r.reason()),
        (pb::Decision::Deny, pb::Reason::ImplicitDeny)
    );
    assert!(r.determining.is_empty());

    let glass = pb::CheckRequest {
        subject: Some(pb::Subject {
            id: "oncall".into(),
            roles: vec!["EmergencyRole".into()],
            ..Default::default()
        }),
        action: "ec2:DescribeInstances".into(),
        resource: Some(pb::Resource {
            id: "arn:aws:ec2:us-east-1:123456789012:instance/i-1".into(),
            ..Default::default()
        }),
        context: context(&[
            ("aws:MultiFactorAuthPresent", b(true)),
            ("aws:MultiFactorAuthAge", n(60.0)),
            ("aws:SourceIp", s("10.0.0.9")),
        ]),
        request_id: "r-1".into(),
        min_signal_generation: 0,
        explain: false,
    };
    let r = c.check(glass).await.unwrap().into_inner();
    assert_eq!(r.decision(), pb::Decision::Allow);
    let mut ids: Vec<(&str, &str)> = r
        .obligations
        .iter()
        .map(|o| (o.id.as_str(), o.r#type.as_str()))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            ("audit-break-glass", "audit"),
            ("notify-security", "notification")
        ]
    );
    let notify = r
        .obligations
        .iter()
        .find(|o| o.id == "notify-security")
        .unwrap();
    assert_eq!(
        notify.properties.as_ref().unwrap().fields.get("channel"),
        Some(&s("#security"))
    );
}

#[tokio::test]
async fn batch_follows_its_semantic_and_answers_in_order() {
    let server = start(&[]);
    let mut c = client(&server).await;
    let base = readme_request(true);
    let item = |action: &str| pb::CheckBatchItem {
        action: action.into(),
        ..Default::default()
    };
    let batch = |semantic: pb::BatchSemantic| pb::CheckBatchRequest {
        subject: base.subject.clone(),
        action: String::new(),
        resource: base.resource.clone(),
        context: base.context.clone(),
        items: vec![
            item("s3:GetObject"),
            item("s3:DeleteObject"),
            item("s3:GetObject"),
        ],
        semantic: semantic as i32,
        min_signal_generation: 0,
        request_id: String::new(),
    };
    let all = c
        .check_batch(batch(pb::BatchSemantic::ExecuteAll))
        .await
        .unwrap()
        .into_inner();
    let decisions: Vec<pb::Decision> = all.responses.iter().map(|r| r.decision()).collect();
    assert_eq!(
        decisions,
        [pb::Decision::Allow, pb::Decision::Deny, pb::Decision::Allow]
    );
    let first_deny = c
        .check_batch(batch(pb::BatchSemantic::DenyOnFirstDeny))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first_deny.responses.len(), 2);
    let first_permit = c
        .check_batch(batch(pb::BatchSemantic::PermitOnFirstPermit))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first_permit.responses.len(), 1);

    // An item's context keys override the defaults'.
    let mut no_mfa = batch(pb::BatchSemantic::ExecuteAll);
    no_mfa.items = vec![pb::CheckBatchItem {
        action: "s3:GetObject".into(),
        context: context(&[("aws:MultiFactorAuthPresent", b(false))]),
        ..Default::default()
    }];
    let r = c.check_batch(no_mfa).await.unwrap().into_inner();
    assert_eq!(r.responses[0].reason(), pb::Reason::ExplicitDeny);
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field() {
    let server = start(&["--max-batch-items", "2"]);
    let mut c = client(&server).await;
    let mut nested = readme_request(true);
    nested.context.as_mut().unwrap().fields.insert(
        "aws:SourceIp".into(),
        prost_types::Value {
            kind: Some(Kind::StructValue(prost_types::Struct::default())),
        },
    );
    let e = c.check(nested).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("context.aws:SourceIp"),
        "{}",
        e.message()
    );

    let mut no_action = readme_request(true);
    no_action.action.clear();
    let e = c.check(no_action).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("`action`"), "{}", e.message());

    let too_many = pb::CheckBatchRequest {
        action: "s3:GetObject".into(),
        items: vec![pb::CheckBatchItem::default(); 3],
        ..Default::default()
    };
    let e = c.check_batch(too_many).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("`items`"), "{}", e.message());
}

#[tokio::test]
async fn a_token_is_denied_as_invalid_identity_when_no_keys_are_configured() {
    let server = start(&[]);
    let mut c = client(&server).await;
    let mut with_token = readme_request(true);
    with_token.subject.as_mut().unwrap().token = "eyJhbGciOiJub25lIn0.e30.".into();
    let r = c.check(with_token).await.unwrap().into_inner();
    assert_eq!(
        (r.decision(), r.reason()),
        (pb::Decision::Deny, pb::Reason::InvalidIdentity)
    );
    assert!(!r.message.is_empty());
}

#[tokio::test]
async fn health_reports_serving() {
    let server = start(&[]);
    let channel = Channel::from_shared(format!("http://{}", server.addr)).unwrap();
    let mut last = None;
    for _ in 0..50 {
        if let Ok(ch) = channel.clone().connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
            let r = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "pdp.v1.AuthorizationService".into(),
                })
                .await
                .unwrap()
                .into_inner();
            last = Some(r.status);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        last,
        Some(tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
    );
}

#[test]
fn serve_refuses_a_broken_policy_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.json"), "{broken").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "off",
            "--policies",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid JSON"));
}

/// app-data without the statement that allows reading.
fn without_read(dir: &Path) {
    let path = dir.join("app-data.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let statements = doc["Statement"].as_array_mut().unwrap();
    statements.retain(|s| s["Action"] != "s3:GetObject" && s["Sid"] != "ReadData");
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

#[tokio::test]
async fn policy_changes_are_picked_up_and_broken_sets_never_replace_the_serving_one() {
    let dir = copy_policies();
    let server = start(&["--policies", dir.path().to_str().unwrap()]);
    let mut c = client(&server).await;
    let before = c.check(readme_request(true)).await.unwrap().into_inner();
    assert_eq!(before.decision(), pb::Decision::Allow);

    without_read(dir.path());
    let changed = eventually(async || {
        let r = c.check(readme_request(true)).await.unwrap().into_inner();
        r.decision() == pb::Decision::Deny && r.policy_revision != before.policy_revision
    })
    .await;
    assert!(
        changed,
        "the edit was not picked up; log: {:?}",
        server.log.lock().unwrap()
    );
    let revision = c
        .check(readme_request(true))
        .await
        .unwrap()
        .into_inner()
        .policy_revision;

    std::fs::write(dir.path().join("app-data.json"), "{ not json").unwrap();
    let reported = eventually(async || {
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("rejected"))
    })
    .await;
    assert!(
        reported,
        "the broken set was not reported; log: {:?}",
        server.log.lock().unwrap()
    );
    let after = c.check(readme_request(true)).await.unwrap().into_inner();
    assert_eq!(
        after.policy_revision, revision,
        "a broken set replaced the serving one"
    );
    assert_eq!(after.reason(), pb::Reason::ImplicitDeny);
    assert!(server
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.contains("invalid JSON")));

    // The admin service reports the rejection with its problems.
    let mut admin = admin(&server).await;
    let status = admin
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.revision, revision);
    assert!(
        status.reloads >= 1 && status.rejected_reloads >= 1,
        "{status:?}"
    );
    let last = status.last_reload.unwrap();
    assert!(!last.accepted);
    assert!(
        last.problems
            .iter()
            .any(|p| p.contains("app-data.json") && p.contains("invalid JSON")),
        "{last:?}"
    );
}

#[tokio::test]
async fn the_admin_service_reloads_on_demand() {
    let (dir, server) = start_unwatched();
    let mut c = client(&server).await;
    let before = c.check(readme_request(true)).await.unwrap().into_inner();
    without_read(dir.path());
    let mut admin = admin(&server).await;
    let outcome = admin
        .reload(pb::ReloadRequest {})
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap();
    assert!(
        outcome.accepted && outcome.problems.is_empty(),
        "{outcome:?}"
    );
    assert_ne!(outcome.revision, before.policy_revision);
    let after = c.check(readme_request(true)).await.unwrap().into_inner();
    assert_eq!(
        (after.policy_revision.clone(), after.decision()),
        (outcome.revision, pb::Decision::Deny)
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_when_watching_is_off() {
    let (dir, server) = start_unwatched();
    let mut c = client(&server).await;
    let before = c.check(readme_request(true)).await.unwrap().into_inner();
    without_read(dir.path());
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let unchanged = c.check(readme_request(true)).await.unwrap().into_inner();
    assert_eq!(
        unchanged.policy_revision, before.policy_revision,
        "reloaded without SIGHUP"
    );
    let status = Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let reloaded = eventually(async || {
        c.check(readme_request(true))
            .await
            .unwrap()
            .into_inner()
            .policy_revision
            != before.policy_revision
    })
    .await;
    assert!(
        reloaded,
        "SIGHUP did not reload; log: {:?}",
        server.log.lock().unwrap()
    );
}

fn ttl_secs(r: &pb::CheckResponse) -> i64 {
    r.ttl.as_ref().map_or(-1, |d| d.seconds)
}

#[tokio::test]
async fn repeated_decisions_are_cached_with_fresh_ids_and_a_ttl() {
    let server = start(&["--decision-cache-ttl", "7"]);
    let mut c = client(&server).await;
    let first = c.check(readme_request(true)).await.unwrap().into_inner();
    let second = c.check(readme_request(true)).await.unwrap().into_inner();
    assert_eq!(first.decision(), pb::Decision::Allow);
    assert_eq!(
        (second.decision(), second.reason()),
        (first.decision(), first.reason())
    );
    assert_eq!(second.determining, first.determining);
    assert_ne!(second.decision_id, first.decision_id);
    // The first caches the entry for the whole TTL; the second is told what is left of it.
    let nanos = |r: &pb::CheckResponse| {
        r.ttl
            .map_or(-1, |d| d.seconds * 1_000_000_000 + i64::from(d.nanos))
    };
    assert_eq!(nanos(&first), 7_000_000_000);
    assert!(
        (6_000_000_000..7_000_000_000).contains(&nanos(&second)),
        "{:?}",
        second.ttl
    );
}

#[tokio::test]
async fn decisions_that_read_the_clock_and_uncached_servers_answer_ttl_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.json"),
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2100-01-01T00:00:00Z"}}},
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bindings.yaml"),
        "roles: { R: { policies: [p] } }",
    )
    .unwrap();
    let ask = |action: &str| pb::CheckRequest {
        subject: Some(pb::Subject {
            id: "u".into(),
            roles: vec!["R".into()],
            ..Default::default()
        }),
        action: action.into(),
        resource: Some(pb::Resource {
            id: "x".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cached = start(&["--policies", dir.path().to_str().unwrap()]);
    let mut c = client(&cached).await;
    let timed = c.check(ask("s3:GetObject")).await.unwrap().into_inner();
    assert_eq!(
        (timed.decision(), ttl_secs(&timed)),
        (pb::Decision::Allow, 0)
    );
    let untimed = c.check(ask("s3:ListBucket")).await.unwrap().into_inner();
    assert_eq!(
        (untimed.decision(), ttl_secs(&untimed)),
        (pb::Decision::Allow, 10)
    );

    let uncached = start(&[
        "--policies",
        dir.path().to_str().unwrap(),
        "--decision-cache",
        "off",
    ]);
    let mut c = client(&uncached).await;
    let r = c.check(ask("s3:ListBucket")).await.unwrap().into_inner();
    assert_eq!((r.decision(), ttl_secs(&r)), (pb::Decision::Allow, 0));
}

#[tokio::test]
async fn calls_over_the_concurrency_limit_are_refused_not_queued() {
    let server = start(&[
        "--max-concurrency",
        "1",
        "--decision-cache",
        "off",
        "--max-batch-items",
        "5000",
    ]);
    let c = client(&server).await;
    // A long call: thousands of distinct decisions in one batch.
    let base = readme_request(true);
    let batch = common::data_batch(&base, 5000);
    // Short calls, one at a time, for as long as the long one runs. Should a short call take
    // the only slot first, the long one is refused itself; should the long one finish before
    // a short call is refused (a busy machine can schedule it so): try again.
    let mut refused = 0;
    for _attempt in 0..10 {
        let mut long = c.clone();
        let request = batch.clone();
        let long_call = tokio::spawn(async move { long.check_batch(request).await });
        let (mut shed, mut answered) = (0, 0);
        while !long_call.is_finished() && shed + answered < 10_000 {
            match c.clone().check(readme_request(true)).await {
                Ok(r) => {
                    assert_eq!(r.into_inner().decision(), pb::Decision::Allow);
                    answered += 1;
                }
                Err(e) => {
                    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
                    shed += 1;
                }
            }
        }
        match long_call.await.unwrap() {
            Ok(long) => {
                assert_eq!(long.into_inner().responses.len(), 5000);
                refused = shed;
                if refused > 0 {
                    break;
                }
            }
            Err(e) => assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}"),
        }
    }
    assert!(refused > 0, "no call was refused while the long one ran");
    let counted = common::metric(&server, "pdp_load_shed_total");
    assert!(
        counted >= f64::from(refused),
        "{counted} shed calls counted, {refused} seen"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let mut server = start(&[]);
    let mut c = client(&server).await;
    assert_eq!(
        c.check(readme_request(true))
            .await
            .unwrap()
            .into_inner()
            .decision(),
        pb::Decision::Allow
    );
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = server.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "did not exit cleanly"
    );
    let stopped = eventually(async || {
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("stopped"))
    })
    .await;
    assert!(stopped, "log: {:?}", server.log.lock().unwrap());
}

#[test]
fn a_bad_configuration_file_is_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pdp.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nmax_batch_itemz = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(["serve", "--http-listen", "off", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("max_batch_itemz") && err.contains("pdp.toml"),
        "{err}"
    );
}

#[tokio::test]
async fn environment_overrides_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pdp.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nmax_batch_items = 1\n[decision_cache]\nenabled = false\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let server = common::start_pdp(["--config", config], &[("PDP_MAX_BATCH_ITEMS", "2")]);
    let mut c = client(&server).await;
    let batch = |n: usize| pb::CheckBatchRequest {
        action: "s3:GetObject".into(),
        items: vec![pb::CheckBatchItem::default(); n],
        ..Default::default()
    };
    let two = c.check_batch(batch(2)).await.unwrap().into_inner();
    assert_eq!(two.responses.len(), 2);
    assert_eq!(
        ttl_secs(&two.responses[0]),
        0,
        "the file turned the cache off"
    );
    assert_eq!(
        c.check_batch(batch(3)).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
}
