//! The engine's YAML case corpus replayed through the real gRPC service: each case file's set
//! served on 127.0.0.1:0 (one server per clock the file's cases pin), every case sent with the
//! generated client, and decision, reason, determining statements and obligations compared.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pb::authorization_service_client::AuthorizationServiceClient;
use pdp_engine::testsuite::{ExpectedDecision, TestCase, TestFile};
use pdp_engine::{Reason, Scalar, Value};
use pdp_proto::v1 as pb;
use prost_types::value::Kind;

fn case_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            case_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

fn scalar(s: &Scalar) -> prost_types::Value {
    let kind = match s {
        Scalar::String(v) => Kind::StringValue(v.to_string()),
        Scalar::Number(v) => Kind::NumberValue(*v),
        Scalar::Bool(v) => Kind::BoolValue(*v),
    };
    prost_types::Value { kind: Some(kind) }
}

fn to_pb(case: &TestCase) -> pb::CheckRequest {
    let r = &case.request;
    pb::CheckRequest {
        subject: Some(pb::Subject {
            id: r.subject.id.to_string(),
            roles: r.subject.roles.iter().map(ToString::to_string).collect(),
            tags: r
                .subject
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }),
        action: r.action.to_string(),
        resource: Some(pb::Resource {
            id: r.resource.id.to_string(),
            tags: r
                .resource
                .tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }),
        context: Some(prost_types::Struct {
            fields: r
                .context
                .iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::One(s) => scalar(s),
                        Value::Many(list) => prost_types::Value {
                            kind: Some(Kind::ListValue(prost_types::ListValue {
                                values: list.iter().map(scalar).collect(),
                            })),
                        },
                    };
                    (k.to_owned(), value)
                })
                .collect(),
        }),
        request_id: case.name.clone(),
        min_signal_generation: 0,
        explain: false,
    }
}

fn mismatches(case: &TestCase, got: &pb::CheckResponse) -> Vec<String> {
    let e = &case.expect;
    let mut out = Vec::new();
    let want = match e.decision {
        ExpectedDecision::Allow => pb::Decision::Allow,
        ExpectedDecision::Deny => pb::Decision::Deny,
    };
    if got.decision() != want {
        out.push(format!(
            "decision: expected {want:?}, got {:?}",
            got.decision()
        ));
    }
    if let Some(reason) = e.reason {
        let want = match reason {
            Reason::Allowed => pb::Reason::Allowed,
            Reason::ExplicitDeny => pb::Reason::ExplicitDeny,
            Reason::ImplicitDeny => pb::Reason::ImplicitDeny,
        };
        if got.reason() != want {
            out.push(format!("reason: expected {want:?}, got {:?}", got.reason()));
        }
    }
    if let Some(det) = &e.determining {
        let mut want: Vec<(String, String)> = det
            .iter()
            .map(|s| (s.policy.clone(), s.sid.clone().unwrap_or_default()))
            .collect();
        let mut have: Vec<(String, String)> = got
            .determining
            .iter()
            .map(|s| (s.policy.clone(), s.sid.clone()))
            .collect();
        want.sort();
        want.dedup();
        have.sort();
        have.dedup();
        if want != have {
            out.push(format!("determining: expected {want:?}, got {have:?}"));
        }
    }
    if let Some(obl) = &e.obligations {
        let mut want = obl.clone();
        want.sort();
        want.dedup();
        let mut have: Vec<String> = got.obligations.iter().map(|o| o.id.clone()).collect();
        have.sort();
        if want != have {
            out.push(format!("obligations: expected {want:?}, got {have:?}"));
        }
    }
    out
}

#[tokio::test]
async fn every_corpus_case_decides_the_same_through_the_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/cases");
    let mut files = Vec::new();
    case_files(&root, &mut files);
    files.sort();
    assert!(
        files.len() >= 40,
        "the corpus is missing: {} files under {}",
        files.len(),
        root.display()
    );
    let (mut ran, mut failures) = (0usize, Vec::new());
    for path in &files {
        let file = TestFile::from_yaml(&std::fs::read_to_string(path).unwrap()).unwrap();
        if file.compile_error.is_some() {
            continue; // rejected sets: nothing to serve (the engine corpus checks the errors)
        }
        let origin = path.display().to_string();
        let set_for = || file.build_set(&origin).unwrap();
        // One server per clock the cases pin.
        let mut by_clock: BTreeMap<Option<DateTime<Utc>>, Vec<&TestCase>> = BTreeMap::new();
        for case in &file.cases {
            by_clock
                .entry(case.now.or(file.now))
                .or_default()
                .push(case);
        }
        for (clock, cases) in by_clock {
            let state = Arc::new(pdp_server::state::State {
                clock,
                ..pdp_server::state::State::new(set_for(), 100)
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let limits = pdp_server::serve::DEFAULT_SERVE_LIMITS;
            let server = tokio::spawn(pdp_server::serve::serve(
                listener,
                state,
                limits,
                None,
                async {
                    let _ = stopped.await;
                },
            ));
            let mut client = AuthorizationServiceClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
            for case in cases {
                let got = client.check(to_pb(case)).await.unwrap().into_inner();
                ran += 1;
                let m = mismatches(case, &got);
                if !m.is_empty() {
                    failures.push(format!("{origin}: {}: {}", case.name, m.join("; ")));
                }
            }
            let _ = stop.send(());
            server.await.unwrap().unwrap();
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(ran >= 300, "only {ran} cases ran");
    eprintln!("{ran} corpus cases decided through the server");
}
