//! Envoy ext_authz v3 end to end: the real `pdp serve` on the example policies and
//! `policies/routes.yaml`, asked by an independent client (`ext_authz_client.py`, built on the
//! PyPI package envoy-data-plane; `.ci/run` installs it): allow, deny, step-up, unmapped
//! routes, a bad token, a trusted sidecar's jwt_authn payload; headers and metadata checked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

mod common;

use common::{fixture, rs256_token, start_pdp};

/// A CheckRequest (proto3 JSON) for `method host path` from `source`, with `headers`.
fn request(method: &str, host: &str, path: &str, source: &str, headers: Value) -> Value {
    json!({ "attributes": {
        "source": { "address": { "socketAddress": { "address": source, "portValue": 41000 } } },
        "request": { "http": { "method": method, "host": host, "path": path, "scheme": "https", "headers": headers } }
    }})
}

/// Runs the independent client over `cases`.
fn ask(addr: &str, cases: &[Value]) -> Vec<Value> {
    let script = format!("{}/tests/ext_authz_client.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new("python3")
        .args([&script, addr])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the envoy-data-plane client failed (pip install envoy-data-plane grpcio grpclib pydantic): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn header<'a>(list: &'a Value, name: &str) -> Option<&'a str> {
    list.as_array()?
        .iter()
        .find(|h| h["header"]["key"].as_str() == Some(name))
        .and_then(|h| h["header"]["value"].as_str())
}

#[test]
fn envoy_sidecars_get_allow_deny_step_up_and_unmapped_answers() {
    let server = start_pdp(["--jwks", &fixture("jwks.json")], &[]);
    let now = chrono::Utc::now().timestamp();
    let alice =
        rs256_token(json!({ "roles": ["ApplicationRole"], "amr": ["mfa"], "auth_time": now }));
    let stale_mfa = rs256_token(json!({ "amr": ["mfa"], "auth_time": now - 3600 }));
    let bearer = |t: &str| json!({ "authorization": format!("Bearer {t}"), "x-tenant": "acme" });
    let mut jwt_authn = request(
        "GET",
        "api.example.com",
        "/data/report.csv",
        "10.1.2.3",
        json!({}),
    );
    jwt_authn["attributes"]["metadataContext"] = json!({ "filterMetadata": {
        "envoy.filters.http.jwt_authn": { "jwt_payload": { "sub": "alice", "roles": ["ApplicationRole"], "amr": ["mfa"] } }
    }});
    let cases = vec![
        // 0: allowed: alice reads data from the corporate network.
        request(
            "GET",
            "api.example.com",
            "/data/report.csv?v=2",
            "10.1.2.3",
            bearer(&alice),
        ),
        // 1: denied: the same from outside.
        request(
            "GET",
            "api.example.com",
            "/data/report.csv",
            "203.0.113.9",
            bearer(&alice),
        ),
        // 2: step-up: deleting a bucket with an MFA an hour old.
        request(
            "DELETE",
            "api.example.com",
            "/buckets/my-bucket",
            "10.1.2.3",
            bearer(&stale_mfa),
        ),
        // 3: unmapped route.
        request(
            "GET",
            "api.example.com",
            "/nothing/here",
            "10.1.2.3",
            bearer(&alice),
        ),
        // 4: unmapped, on a host configured to let such requests through.
        request(
            "GET",
            "status.example.com",
            "/health",
            "10.1.2.3",
            json!({}),
        ),
        // 5: a token that is not a JWT.
        request(
            "GET",
            "api.example.com",
            "/data/report.csv",
            "10.1.2.3",
            bearer("garbage"),
        ),
        // 6: a trusted sidecar passing the jwt_authn filter's verified payload.
        jwt_authn,
    ];
    let r = ask(&server.addr, &cases);
    assert_eq!(r.len(), 7);

    let ok = &r[0]["response"];
    assert_eq!(r[0]["code"], 0);
    assert_eq!(ok["status"]["code"].as_i64().unwrap_or(0), 0, "{ok}");
    let headers = &ok["okResponse"]["headers"];
    let id = header(headers, "x-pdp-decision-id").expect("decision id upstream");
    assert_eq!(id.len(), 36);
    assert_eq!(
        ok["okResponse"]["headersToRemove"],
        json!(["authorization"])
    );
    assert_eq!(ok["dynamicMetadata"]["decision"], "allow");
    assert_eq!(ok["dynamicMetadata"]["decision_id"], id);

    let denied = &r[1]["response"];
    assert_eq!(denied["status"]["code"], 7, "PERMISSION_DENIED: {denied}");
    assert_eq!(denied["deniedResponse"]["status"]["code"], "Forbidden");
    let body: Value =
        serde_json::from_str(denied["deniedResponse"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["reason"], "implicit_deny");
    assert!(
        body.get("determining").is_none(),
        "no policy internals: {body}"
    );

    let step_up = &r[2]["response"];
    assert_eq!(
        step_up["deniedResponse"]["status"]["code"], "Unauthorized",
        "{step_up}"
    );
    let challenge = header(&step_up["deniedResponse"]["headers"], "www-authenticate").unwrap();
    assert!(
        challenge.contains("insufficient_user_authentication")
            && challenge.contains("acr_values=\"urn:pdp:acr:phishing-resistant\""),
        "{challenge}"
    );
    assert_eq!(
        step_up["dynamicMetadata"]["obligations"][0]["type"],
        "step-up"
    );

    let unmapped = &r[3]["response"];
    assert_eq!(unmapped["deniedResponse"]["status"]["code"], "Forbidden");
    assert!(unmapped["deniedResponse"]["body"]
        .as_str()
        .unwrap()
        .contains("unmapped_route"));
    assert_eq!(
        r[4]["response"]["status"]["code"].as_i64().unwrap_or(0),
        0,
        "{}",
        r[4]
    );
    assert!(r[4]["response"].get("deniedResponse").is_none());

    let bad = &r[5]["response"];
    assert_eq!(bad["deniedResponse"]["status"]["code"], "Unauthorized");
    let challenge = header(&bad["deniedResponse"]["headers"], "www-authenticate").unwrap();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(
        !bad.to_string().contains("garbage"),
        "the token is not echoed"
    );

    assert_eq!(
        r[6]["response"]["dynamicMetadata"]["decision"], "allow",
        "{}",
        r[6]
    );
}

#[test]
fn an_untrusted_sidecar_cannot_assert_the_subject() {
    let server = start_pdp(["--trust-loopback", "false"], &[]);
    let mut jwt_authn = request(
        "GET",
        "api.example.com",
        "/data/report.csv",
        "10.1.2.3",
        json!({}),
    );
    jwt_authn["attributes"]["metadataContext"] = json!({ "filterMetadata": {
        "envoy.filters.http.jwt_authn": { "jwt_payload": { "sub": "alice", "roles": ["ApplicationRole"], "amr": ["mfa"] } }
    }});
    let r = ask(&server.addr, &[jwt_authn]);
    assert_eq!(
        r[0]["response"]["deniedResponse"]["status"]["code"], "Forbidden",
        "{}",
        r[0]
    );
}
