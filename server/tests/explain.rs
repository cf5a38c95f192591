//! Why denied, through the real `pdp serve` and the real CLI: `Check` with `explain`,
//! AuthZEN's `options.explain` and `pdp eval --explain` explain a deny with the Allows that
//! nearly applied, never change the decision, are refused to untrusted callers, and leave
//! only the fact that one was asked in the decision log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use pb::authorization_service_client::AuthorizationServiceClient;
use pdp_proto::v1 as pb;
use serde_json::{json, Value};

mod common;

use common::{channel, start_pdp};

const DOCS: &str = r#"
Version: "2012-10-17"
Statement:
  - Sid: ReadOwnDocs
    Effect: Allow
    Action: "docs:Read"
    Resource: "doc:*"
    Condition:
      StringEquals: { "aws:ResourceTag/owner": "${aws:username}" }
  - Sid: ReadPublic
    Effect: Allow
    Action: "docs:Read"
    Resource: "public:*"
  - Sid: NoDrafts
    Effect: Deny
    Action: "docs:*"
    Resource: "doc:drafts/*"
"#;

fn policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("docs.yaml"), DOCS).unwrap();
    std::fs::write(
        dir.path().join("bindings.yaml"),
        "roles: { Reader: { policies: [docs] } }",
    )
    .unwrap();
    dir
}

fn check(resource: &str, owner: &str, explain: bool) -> pb::CheckRequest {
    pb::CheckRequest {
        subject: Some(pb::Subject {
            id: "alice".into(),
            roles: vec!["Reader".into(), "Ghost".into()],
            ..Default::default()
        }),
        action: "docs:Read".into(),
        resource: Some(pb::Resource {
            id: resource.into(),
            tags: [("owner".to_owned(), owner.to_owned())].into(),
            ..Default::default()
        }),
        explain,
        ..Default::default()
    }
}

#[tokio::test]
async fn check_explains_a_deny_without_changing_it() {
    let dir = policies();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("decisions.jsonl");
    let server = start_pdp(
        [
            "--policies",
            dir.path().to_str().unwrap(),
            "--decision-log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    let mut c = AuthorizationServiceClient::new(channel(&server).await);

    // Bob's document: ReadOwnDocs failed on its condition, with both values shown;
    // ReadPublic on its resource; the unbound role is named.
    let plain = c
        .check(check("doc:reports/q3", "bob", false))
        .await
        .unwrap()
        .into_inner();
    assert!(plain.explanation.is_none(), "not asked: {plain:?}");
    let r = c
        .check(check("doc:reports/q3", "bob", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.decision(), r.reason()),
        (plain.decision(), plain.reason())
    );
    assert_eq!(r.reason(), pb::Reason::ImplicitDeny);
    let e = r.explanation.expect("an explanation");
    assert_eq!(e.unbound_roles, ["Ghost"]);
    let first = &e.near_misses[0];
    assert_eq!(first.statement.as_ref().unwrap().sid, "ReadOwnDocs");
    assert_eq!(
        (first.attached.as_str(), first.attached_name.as_str()),
        ("role", "Reader")
    );
    assert_eq!(first.part, "condition");
    assert_eq!(first.operator, "StringEquals");
    assert_eq!(first.key, "aws:ResourceTag/owner");
    assert_eq!(first.expected, ["alice"]);
    assert_eq!(first.actual, ["bob"]);
    assert!(first.key_present);
    assert_eq!(
        e.near_misses[1].statement.as_ref().unwrap().sid,
        "ReadPublic"
    );
    assert_eq!(e.near_misses[1].part, "resource");

    // An explicit deny: the denying statement decides (in `determining`), as without.
    let r = c
        .check(check("doc:drafts/x", "alice", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.reason(), pb::Reason::ExplicitDeny);
    assert_eq!(r.determining[0].sid, "NoDrafts");

    // An allow is explained by its statements alone.
    let r = c
        .check(check("doc:reports/q3", "alice", true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.decision(), pb::Decision::Allow);
    let e = r.explanation.unwrap();
    assert!(e.near_misses.is_empty() && e.held_back.is_empty(), "{e:?}");

    // The log says an explanation was asked for, and holds none of it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let records = loop {
        let records = common::decision_records(&log);
        if records.len() >= 4 {
            break records;
        }
        assert!(std::time::Instant::now() < deadline, "{records:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(records[0].get("explained").is_none(), "{}", records[0]);
    assert_eq!(records[1]["explained"], true, "{}", records[1]);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("ReadPublic") && !text.contains("Ghost"),
        "{text}"
    );
}

#[tokio::test]
async fn only_trusted_callers_may_ask_for_an_explanation() {
    let dir = policies();
    let server = start_pdp(
        [
            "--policies",
            dir.path().to_str().unwrap(),
            "--trust-loopback",
            "false",
        ],
        &[("PDP_AUTHZEN_API_KEYS", "k1")],
    );
    let mut c = AuthorizationServiceClient::new(channel(&server).await);
    let err = c
        .check(check("doc:reports/q3", "bob", true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("explanations"), "{err:?}");
    // Without `explain` the same caller is answered.
    let r = c
        .check(check("doc:reports/q3", "bob", false))
        .await
        .unwrap();
    assert_eq!(r.into_inner().decision(), pb::Decision::Deny);

    // AuthZEN: an API key admits the caller but does not let it read policy.
    let body = json!({
        "subject": { "type": "user", "id": "alice", "properties": { "roles": ["Reader"] } },
        "action": { "name": "docs:Read" },
        "resource": { "type": "doc", "id": "doc:reports/q3" },
        "options": { "explain": true }
    });
    let (code, text) = common::http(
        &server.http,
        "POST",
        "/access/v1/evaluation",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer k1"),
        ],
        &body.to_string(),
    );
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("options.explain"), "{text}");
}

#[tokio::test]
async fn authzen_explains_a_single_evaluation() {
    let dir = policies();
    let server = start_pdp(["--policies", dir.path().to_str().unwrap()], &[]);
    let post = |body: &Value| {
        let (code, text) = common::http(
            &server.http,
            "POST",
            "/access/v1/evaluation",
            &[("Content-Type", "application/json")],
            &body.to_string(),
        );
        (
            code,
            serde_json::from_str::<Value>(&text).unwrap_or(json!(text)),
        )
    };
    let mut body = json!({
        "subject": { "type": "user", "id": "alice", "properties": { "roles": ["Reader"] } },
        "action": { "name": "docs:Read" },
        "resource": { "type": "doc", "id": "doc:reports/q3" },
    });
    let (code, plain) = post(&body);
    assert_eq!((code, &plain), (200, &json!({ "decision": false })));
    body["options"] = json!({ "explain": true });
    let (code, r) = post(&body);
    assert_eq!(code, 200, "{r}");
    assert_eq!(r["decision"], false);
    let e = &r["context"]["explanation"];
    assert_eq!(e["reason"], "implicit_deny", "{r}");
    assert_eq!(
        e["near_misses"][0]["statement"]["sid"], "ReadOwnDocs",
        "{r}"
    );
    assert_eq!(e["near_misses"][0]["mismatch"]["part"], "condition", "{r}");
    // No tag on the resource: the key is absent, and says so.
    assert_eq!(
        e["near_misses"][0]["mismatch"]["actual"],
        Value::Null,
        "{r}"
    );

    body["options"] = json!({ "explain": "yes" });
    let (code, r) = post(&body);
    assert_eq!(code, 400, "{r}");
    assert!(r.to_string().contains("options.explain"), "{r}");

    let (code, r) = common::http(
        &server.http,
        "POST",
        "/access/v1/evaluations",
        &[("Content-Type", "application/json")],
        &json!({
            "subject": body["subject"],
            "action": body["action"],
            "evaluations": [{ "resource": body["resource"] }],
            "options": { "explain": true }
        })
        .to_string(),
    );
    assert_eq!(code, 400, "{r}");
    assert!(r.contains("single evaluation"), "{r}");
}

#[test]
fn pdp_eval_explains_with_a_flag() {
    let dir = policies();
    let work = tempfile::tempdir().unwrap();
    let request = work.path().join("request.json");
    std::fs::write(
        &request,
        json!({
            "subject": { "id": "alice", "roles": ["Reader"] },
            "action": "docs:Read",
            "resource": { "id": "doc:reports/q3", "tags": { "owner": "bob" } }
        })
        .to_string(),
    )
    .unwrap();
    let eval = |explain: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pdp"));
        cmd.args(["eval", "--policies", dir.path().to_str().unwrap()]);
        if explain {
            cmd.arg("--explain");
        }
        let out = cmd.arg(&request).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let plain = eval(false);
    assert!(plain.get("explanation").is_none(), "{plain}");
    let out = eval(true);
    assert_eq!(out["decision"], plain["decision"]);
    let miss = &out["explanation"]["near_misses"][0];
    assert_eq!(miss["statement"]["sid"], "ReadOwnDocs", "{out}");
    assert_eq!(miss["mismatch"]["expected"], json!(["alice"]), "{out}");
    assert_eq!(miss["mismatch"]["actual"], json!(["bob"]), "{out}");
}

#[tokio::test]
async fn the_client_asks_for_an_explanation_past_its_cache() {
    let dir = policies();
    let server = start_pdp(
        [
            "--policies",
            dir.path().to_str().unwrap(),
            "--decision-cache-ttl",
            "60",
        ],
        &[],
    );
    // No Watch stream: its first invalidation, whenever it connects, would empty the cache
    // this test looks at.
    let pdp = pdp_client::PdpClient::builder()
        .endpoint(format!("http://{}", server.addr))
        .watch(false)
        .build()
        .unwrap();
    let ask = || {
        pdp_client::Check::new("alice", "docs:Read", "public:readme")
            .role("Reader")
            .role("Ghost")
    };
    let calls = || common::metric(&server, "pdp_check_duration_seconds_count");
    let first = pdp.check(ask().build()).await.unwrap();
    assert!(first.is_allowed() && first.explanation().is_none());
    let cached = pdp.check(ask().build()).await.unwrap();
    assert!(cached.is_cached());
    let before = calls();
    let explained = pdp.check(ask().explain().build()).await.unwrap();
    assert!(!explained.is_cached());
    assert_eq!(
        calls(),
        before + 1.0,
        "an explained check is asked of the PDP"
    );
    let e = explained.explanation().expect("an explanation");
    assert_eq!(e.unbound_roles, ["Ghost"]);
    // And it did not replace the cached answer with one carrying an explanation.
    let again = pdp.check(ask().build()).await.unwrap();
    assert!(again.is_cached() && again.explanation().is_none());
}
