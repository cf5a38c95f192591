//! Envoy ext_authz v3 end to end: the real `pdp serve` on the example policies and
//! `policies/routes.yaml`, asked by an independent client (`ext_authz_client.py`, built on the
//! PyPI package envoy-data-plane; `.ci/run` installs it): allow, deny, step-up, unmapped
//! routes, a bad token, a trusted sidecar's jwt_authn payload; headers and metadata checked;
//! paths matched in normal form, and those that cannot be normalized refused and logged.
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

use common::{copy_policies, fixture, metric, rs256_token, start_pdp, stop_gracefully};

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
    // The payload is ignored, so the request is anonymous: denied, and asked for a token
    // with the bare challenge of RFC 6750 §3.
    let denied = &r[0]["response"]["deniedResponse"];
    assert_eq!(denied["status"]["code"], "Unauthorized", "{}", r[0]);
    assert!(
        denied["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["header"]["key"] == "www-authenticate" && h["header"]["value"] == "Bearer"),
        "{}",
        r[0]
    );
    assert_eq!(body(&r[0])["decision"], "deny", "{}", r[0]);
}

/// The routes of the path tests: `/admin/{rest*}` mapped, unmapped requests allowed except
/// on some hosts.
const PATH_ROUTES: &str = r#"
routes:
  - path: /admin/{rest*}
    action: app:Admin
    resource: "arn:app:admin:::{rest}"
  - methods: [GET]
    path: /data/{key*}
    action: s3:GetObject
    resource: "arn:aws:s3:::my-bucket/data/{key}"
unmapped: allow
unmapped_hosts:
  "*.example.com": allow
  "admin.example.com": deny
  "*.internal.org": deny
  "status.internal.org": allow
"#;

/// The example policies with `PATH_ROUTES` and a Deny on `my-bucket/data/secret*`, and a
/// server on them logging decisions to `<dir>/decisions.jsonl`.
fn path_server() -> (tempfile::TempDir, common::Server) {
    let dir = copy_policies();
    std::fs::write(dir.path().join("routes.yaml"), PATH_ROUTES).unwrap();
    let data = dir.path().join("app-data.json");
    let mut policy: Value = serde_json::from_str(&std::fs::read_to_string(&data).unwrap()).unwrap();
    policy["Statement"].as_array_mut().unwrap().push(json!({
        "Sid": "DenySecret",
        "Effect": "Deny",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::my-bucket/data/secret*"
    }));
    std::fs::write(&data, policy.to_string()).unwrap();
    let log = dir.path().join("decisions.jsonl");
    let server = start_pdp(
        [
            "--jwks",
            &fixture("jwks.json"),
            "--policies",
            dir.path().to_str().unwrap(),
            "--decision-log",
            log.to_str().unwrap(),
        ],
        &[],
    );
    (dir, server)
}

/// The decision log's records (checkpoints left out).
fn records(dir: &tempfile::TempDir) -> Vec<Value> {
    std::fs::read_to_string(dir.path().join("decisions.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The denied answer's JSON body.
fn body(result: &Value) -> Value {
    let text = result["response"]["deniedResponse"]["body"]
        .as_str()
        .unwrap_or_else(|| panic!("not denied: {result}"));
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn dot_segments_are_refused_and_logged_before_any_route_or_unmapped_rule() {
    let (dir, server) = path_server();
    let mut cases = Vec::new();
    // Default `unmapped: allow`, a host under `unmapped_hosts: allow`, and one under deny.
    for host in ["api.other.org", "www.example.com", "db.internal.org"] {
        for path in [
            "/public/../admin/panel",
            "/public/%2e%2e/admin/panel",
            "/public/%2e%2E/admin/panel",
            "/public/.%2e/admin/panel",
            "/./admin/panel",
            "/admin/./panel",
            "/public/..",
        ] {
            cases.push((host, path));
        }
    }
    let requests: Vec<Value> = cases
        .iter()
        .map(|(host, path)| request("GET", host, path, "10.1.2.3", json!({})))
        .collect();
    let r = ask(&server.addr, &requests);
    assert_eq!(r.len(), cases.len());
    let mut ids = Vec::new();
    for ((host, path), result) in cases.iter().zip(&r) {
        let denied = &result["response"]["deniedResponse"];
        assert_eq!(
            denied["status"]["code"], "BadRequest",
            "{host}{path}: {result}"
        );
        assert_eq!(result["response"]["status"]["code"], 3, "INVALID_ARGUMENT");
        let b = body(result);
        assert_eq!(b["reason"], "invalid_path", "{host}{path}: {b}");
        assert!(
            b["message"].as_str().unwrap().contains("`..`"),
            "{host}{path}: {b}"
        );
        let id = b["decision_id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "a decision id: {b}");
        assert_eq!(result["response"]["dynamicMetadata"]["decision_id"], id);
        assert_eq!(result["response"]["dynamicMetadata"]["decision"], "deny");
        ids.push(id);
    }
    assert_eq!(
        metric(
            &server,
            r#"pdp_decisions_total{decision="deny",reason="invalid_path",api="ext_authz"}"#
        ),
        cases.len() as f64
    );
    stop_gracefully(server).await;
    let logged = records(&dir);
    for ((_, path), id) in cases.iter().zip(&ids) {
        let record = logged
            .iter()
            .find(|r| r["decision_id"] == id.as_str())
            .unwrap_or_else(|| panic!("{path} ({id}) is not in the decision log"));
        assert_eq!(record["decision"], "deny");
        assert_eq!(record["reason"], "invalid_path");
        assert_eq!(record["api"], "ext_authz");
        assert_eq!(record["resource"], *path);
    }
}

#[tokio::test]
async fn resources_are_built_from_the_normalized_path() {
    let (dir, server) = path_server();
    let now = chrono::Utc::now().timestamp();
    let alice =
        rs256_token(json!({ "roles": ["ApplicationRole"], "amr": ["mfa"], "auth_time": now }));
    let get = |path: &str| {
        request(
            "GET",
            "api.example.com",
            path,
            "10.1.2.3",
            json!({ "authorization": format!("Bearer {alice}") }),
        )
    };
    // Matched in normal form: the Deny on `data/secret*` applies however the path is spelt.
    let denied = [
        "/data/secret/x",
        "/data//secret/x",
        "//data///secret//x",
        "/data/%73ecret/x",
        "/%64ata/secret/x",
        "/data/%73%65%63%72%65%74/x?a=../..",
    ];
    // Not normalizable unambiguously: refused before any route.
    let refused = [
        ("/data/x/..%2Fsecret", "encoded"),
        ("/data/..%2fsecret", "encoded"),
        ("/data/x%2Fsecret", "encoded"),
        ("/data/x%5Csecret", "encoded"),
        ("/data/x/..;/secret/y", "path parameter"),
        ("/data/x;jsessionid=1", "path parameter"),
        ("/data/x%3B/secret", "path parameter"),
        ("/data/x\\..\\secret", "`\\`"),
        ("/admin%3F", "encoded `?`"),
        ("/admin%23/x", "encoded `?`"),
        ("/admin#/x", "`#`"),
        ("/data/%252e%252e/secret", "encoded twice"),
        ("/data/%zz", "hex"),
        ("/data/%00", "control"),
    ];
    let mut requests: Vec<Value> = denied.iter().map(|p| get(p)).collect();
    requests.extend(refused.iter().map(|(p, _)| get(p)));
    // Allowed, with the normalized resource and `http:Path` (the query kept out of both).
    requests.push(get("/data//report.csv?next=/../secret"));
    let r = ask(&server.addr, &requests);
    for (path, result) in denied.iter().zip(&r) {
        assert_eq!(
            result["response"]["deniedResponse"]["status"]["code"], "Forbidden",
            "{path}: {result}"
        );
        assert_eq!(body(result)["reason"], "explicit_deny", "{path}");
    }
    for ((path, why), result) in refused.iter().zip(&r[denied.len()..]) {
        assert_eq!(
            result["response"]["deniedResponse"]["status"]["code"], "BadRequest",
            "{path}: {result}"
        );
        let b = body(result);
        assert_eq!(b["reason"], "invalid_path", "{path}");
        assert!(b["message"].as_str().unwrap().contains(why), "{path}: {b}");
    }
    let allowed = r.last().unwrap();
    let id = header(
        &allowed["response"]["okResponse"]["headers"],
        "x-pdp-decision-id",
    )
    .unwrap_or_else(|| panic!("allowed: {allowed}"))
    .to_owned();
    stop_gracefully(server).await;
    let logged = records(&dir);
    let record = logged
        .iter()
        .find(|r| r["decision_id"] == id.as_str())
        .unwrap();
    assert_eq!(record["resource"], "arn:aws:s3:::my-bucket/data/report.csv");
    let explicit = logged
        .iter()
        .filter(|r| r["reason"] == "explicit_deny")
        .count();
    assert_eq!(explicit, denied.len());
    for record in logged.iter().filter(|r| r["reason"] == "explicit_deny") {
        assert_eq!(record["resource"], "arn:aws:s3:::my-bucket/data/secret/x");
    }
}

#[test]
fn encoded_slashes_and_path_parameters_can_be_kept() {
    let dir = copy_policies();
    std::fs::write(
        dir.path().join("routes.yaml"),
        format!("{PATH_ROUTES}encoded_slashes: keep\npath_parameters: keep\n"),
    )
    .unwrap();
    let server = start_pdp(
        [
            "--jwks",
            &fixture("jwks.json"),
            "--policies",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    let now = chrono::Utc::now().timestamp();
    let alice =
        rs256_token(json!({ "roles": ["ApplicationRole"], "amr": ["mfa"], "auth_time": now }));
    let get = |path: &str| {
        request(
            "GET",
            "api.example.com",
            path,
            "10.1.2.3",
            json!({ "authorization": format!("Bearer {alice}") }),
        )
    };
    let r = ask(
        &server.addr,
        &[
            get("/data/a%2fb;v=1"),
            get("/data/x/..%2Fsecret"),
            get("/data/x/..;/secret"),
        ],
    );
    assert!(
        header(
            &r[0]["response"]["okResponse"]["headers"],
            "x-pdp-decision-id"
        )
        .is_some(),
        "{}",
        r[0]
    );
    for result in &r[1..] {
        assert_eq!(body(result)["reason"], "invalid_path", "{result}");
        assert!(body(result)["message"].as_str().unwrap().contains("`..`"));
    }
}

#[test]
fn unmapped_hosts_match_lower_case_without_port_or_trailing_dot_most_specific_first() {
    let (_dir, server) = path_server();
    let cases = [
        // (host, path, denied)
        ("admin.example.com", "/nothing", true),
        ("ADMIN.Example.COM:443", "/nothing", true),
        ("admin.example.com.", "/nothing", true),
        ("www.example.com", "/nothing", false),
        ("WWW.example.com:8443", "/nothing", false),
        ("status.internal.org:8080", "/health", false),
        ("db.internal.org", "/health", true),
        ("api.other.org", "/x?/../admin/panel", false),
        ("api.other.org", "/admin/panel?next=../x", true),
    ];
    let requests: Vec<Value> = cases
        .iter()
        .map(|(host, path, _)| request("GET", host, path, "10.1.2.3", json!({})))
        .collect();
    let r = ask(&server.addr, &requests);
    for ((host, path, denied), result) in cases.iter().zip(&r) {
        if *denied {
            let b = body(result);
            // No route: refused for good (a token would not help). A route the policies
            // deny to an anonymous request: asked for a token (RFC 6750 §3).
            let status = if b["reason"] == "unmapped_route" {
                "Forbidden"
            } else {
                "Unauthorized"
            };
            assert_eq!(
                result["response"]["deniedResponse"]["status"]["code"], status,
                "{host}{path}: {result}"
            );
            assert_eq!(
                b["decision_id"].as_str().unwrap_or_default().len(),
                36,
                "{b}"
            );
        } else {
            assert!(
                result["response"].get("deniedResponse").is_none(),
                "{host}{path}: {result}"
            );
        }
    }
}

#[tokio::test]
async fn an_unmapped_request_let_through_is_recorded_like_any_decision() {
    let (dir, server) = path_server();
    let r = ask(
        &server.addr,
        &[request(
            "GET",
            "api.other.org",
            "/public/index.html",
            "10.1.2.3",
            json!({}),
        )],
    );
    let response = &r[0]["response"];
    assert_eq!(
        response["status"]["code"].as_i64().unwrap_or(0),
        0,
        "{response}"
    );
    assert!(response.get("deniedResponse").is_none(), "{response}");
    let id = header(&response["okResponse"]["headers"], "x-pdp-decision-id")
        .unwrap_or_else(|| panic!("no decision id header: {response}"))
        .to_owned();
    assert_eq!(response["dynamicMetadata"]["decision_id"], id.as_str());
    assert_eq!(response["dynamicMetadata"]["reason"], "unmapped_allowed");
    assert_eq!(
        metric(
            &server,
            r#"pdp_decisions_total{decision="allow",reason="unmapped_allowed",api="ext_authz"}"#
        ),
        1.0
    );
    stop_gracefully(server).await;
    let logged = records(&dir);
    let record = logged
        .iter()
        .find(|r| r["decision_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} is not in the decision log"));
    assert_eq!(record["decision"], "allow");
    assert_eq!(record["reason"], "unmapped_allowed");
    assert_eq!(record["resource"], "/public/index.html");
}
