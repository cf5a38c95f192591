//! `pdp serve` end to end: the real binary on 127.0.0.1:0, called with the generated tonic
//! client over the example policies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use pb::authorization_service_client::AuthorizationServiceClient;
use pdp_proto::v1 as pb;
use prost_types::value::Kind;
use tonic::transport::Channel;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Server {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(repo)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pdp serve");
    let stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).unwrap();
    let addr = line
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_owned();
    Server { child, addr }
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

/// The README's example request.
fn readme_request(mfa: bool) -> pb::CheckRequest {
    let mut ctx = vec![
        ("aws:SourceIp", s("10.1.2.3")),
        ("aws:RequestTag/Environment", s("production")),
    ];
    if mfa {
        ctx.push(("aws:MultiFactorAuthPresent", b(true)));
    }
    pb::CheckRequest {
        subject: Some(pb::Subject {
            id: "alice".into(),
            roles: vec!["ApplicationRole".into()],
            ..Default::default()
        }),
        action: "s3:GetObject".into(),
        resource: Some(pb::Resource {
            id: "arn:aws:s3:::my-bucket/data/report.csv".into(),
            ..Default::default()
        }),
        context: context(&ctx),
        request_id: String::new(),
    }
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
async fn a_token_is_denied_as_invalid_identity_until_tokens_are_verified() {
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
        .args(["serve", "--listen", "127.0.0.1:0", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid JSON"));
}
