//! The OpenID AuthZEN interop vectors (Todo `decisions-authorization-api-1_0-02.json`, 40
//! single and 3 batch; API gateway `decisions.json`, 25), sent to the real `pdp serve` on the
//! example sets `policies/examples/authzen-todo` and `…/authzen-gateway` over HTTP the way the
//! published harnesses send them (`Content-Type: application/json`, `Authorization:
//! undefined`, no `X-Request-ID`, the status code ignored) and judged the way they judge:
//! a single answer by `body.decision || false`, a batch by the exact `evaluations` array.
//! The vectors are read from `tests/fixtures/authzen-interop` (copied byte for byte from
//! `openid/authzen`, see its README), or `$PDP_AUTHZEN_INTEROP_DIR`.
//!
//! Run: `cargo test -p pdp-server --test authzen_interop -- --nocapture` (prints the tally).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::PathBuf;

use serde_json::Value;

mod common;

use common::{http, start_pdp};

fn vectors_dir() -> PathBuf {
    match std::env::var("PDP_AUTHZEN_INTEROP_DIR") {
        Ok(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/authzen-interop"),
    }
}

fn vectors(file: &str) -> Value {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the AuthZEN interop vectors `{}`: {e} (they live in server/tests/fixtures/authzen-interop; set PDP_AUTHZEN_INTEROP_DIR to point elsewhere)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// Sends one vector as the harness does; the parsed body (`None`: not JSON, the harness's ERROR).
fn send(addr: &str, path: &str, request: &Value) -> Option<Value> {
    let (_status, body) = http(
        addr,
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "undefined"),
        ],
        &request.to_string(),
    );
    serde_json::from_str(&body).ok()
}

struct Tally {
    name: &'static str,
    passed: usize,
    failed: Vec<String>,
}

fn run_scenario(name: &'static str, policies: &str, file: &str) -> Tally {
    let server = start_pdp(["--policies", policies], &[]);
    let data = vectors(file);
    let mut tally = Tally {
        name,
        passed: 0,
        failed: Vec::new(),
    };
    for (i, v) in data["evaluation"].as_array().unwrap().iter().enumerate() {
        let body = send(&server.http, "/access/v1/evaluation", &v["request"]);
        let decision = body
            .as_ref()
            .and_then(|b| b.get("decision"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if body.is_some() && Value::Bool(decision) == v["expected"] {
            tally.passed += 1;
        } else {
            tally
                .failed
                .push(format!("evaluation[{i}]: {} → {body:?}", v["request"]));
        }
    }
    for (i, v) in data["evaluations"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let body = send(&server.http, "/access/v1/evaluations", &v["request"]);
        let answers = body
            .as_ref()
            .and_then(|b| b.get("evaluations"))
            .cloned()
            .unwrap_or(Value::Array(Vec::new()));
        // The harness compares JSON.stringify of both arrays: the same items with the same
        // keys (an extra key such as `context` fails); JSON equality is as strict here.
        if answers == v["expected"] {
            tally.passed += 1;
        } else {
            tally.failed.push(format!(
                "evaluations[{i}]: expected {} got {answers}",
                v["expected"]
            ));
        }
    }
    tally
}

#[test]
fn every_todo_and_gateway_vector_passes() {
    let tallies = [
        run_scenario(
            "Todo (authorization-api-1_0-02)",
            "policies/examples/authzen-todo",
            "todo/decisions-authorization-api-1_0-02.json",
        ),
        run_scenario(
            "API gateway",
            "policies/examples/authzen-gateway",
            "api-gateway/decisions.json",
        ),
    ];
    let mut failures = Vec::new();
    for t in &tallies {
        println!("{}: {} passed, {} failed", t.name, t.passed, t.failed.len());
        failures.extend(t.failed.iter().map(|f| format!("{}: {f}", t.name)));
    }
    assert!(
        failures.is_empty(),
        "failed vectors:\n{}",
        failures.join("\n")
    );
    assert_eq!(tallies[0].passed, 43, "40 single and 3 batch Todo vectors");
    assert_eq!(tallies[1].passed, 25, "25 gateway vectors");
}
