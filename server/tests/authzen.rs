//! The OpenID AuthZEN Authorization API end to end: the real `pdp serve` on the example
//! policies, called over HTTP/1.1 on its HTTP port.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{Read, Write};

use serde_json::{json, Value};

mod common;

use common::{start_pdp, Server};

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// POSTs `body` (JSON) to `path` with `headers` besides the content type.
fn post(server: &Server, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut all = vec![JSON];
    all.extend_from_slice(headers);
    let (code, text) = common::http(&server.http, "POST", path, &all, &body.to_string());
    (code, parse(&text))
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Sends one raw request and returns the status line's code, the head and the body.
fn raw(server: &Server, request: &[u8]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(&server.http).unwrap();
    // The server may answer (and stop reading) before the whole body is sent.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out).into_owned();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (code, head.to_owned(), body.to_owned())
}

/// The README's request in AuthZEN form: alice in ApplicationRole reading her report.
fn readme(mfa: Option<bool>) -> Value {
    let mut context = json!({
        "aws:SourceIp": "10.1.2.3",
        "aws:RequestTag/Environment": "production",
    });
    if let Some(m) = mfa {
        context["aws:MultiFactorAuthPresent"] = json!(m);
    }
    json!({
        "subject": {"type": "user", "id": "alice", "properties": {"roles": ["ApplicationRole"]}},
        "action": {"name": "s3:GetObject"},
        "resource": {"type": "s3", "id": "arn:aws:s3:::my-bucket/data/report.csv"},
        "context": context,
    })
}

/// Deleting a bucket with an MFA but no `aws:MultiFactorAuthAge`: an explicit deny from
/// `deny-destructive` carrying the `step-up-destructive` obligation.
fn delete_bucket(context: Value) -> Value {
    let mut c = json!({"aws:SourceIp": "10.1.2.3", "aws:MultiFactorAuthPresent": true});
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), context) {
        c.extend(extra);
    }
    json!({
        "subject": {"type": "service", "id": "orders-api", "properties": {"roles": ["ApplicationRole"]}},
        "action": {"name": "s3:DeleteBucket"},
        "resource": {"type": "s3", "id": "arn:aws:s3:::my-bucket"},
        "context": c,
    })
}

/// A break-glass describe: allowed, with the `notify-security` (notification) and
/// `audit-break-glass` (audit) obligations.
fn break_glass(context: Value) -> Value {
    let mut c = json!({
        "aws:SourceIp": "10.12.0.8",
        "aws:MultiFactorAuthPresent": true,
        "aws:MultiFactorAuthAge": 120,
    });
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), context) {
        c.extend(extra);
    }
    json!({
        "subject": {"type": "user", "id": "oncall-bob", "properties": {"roles": ["EmergencyRole"]}},
        "action": {"name": "ec2:DescribeInstances"},
        "resource": {"type": "ec2", "id": "*"},
        "context": c,
    })
}

fn opted_in(types: &[&str]) -> Value {
    json!({"supported_mandatory_extensions": ["obligations"], "supported_obligations": types})
}

#[test]
fn the_readme_request_is_allowed_and_denied_without_mfa() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let (code, body) = post(&server, "/access/v1/evaluation", &[], &readme(Some(true)));
    assert_eq!((code, body), (200, json!({"decision": true})));
    let (code, body) = post(&server, "/access/v1/evaluation", &[], &readme(None));
    assert_eq!((code, body), (200, json!({"decision": false})));
    // The answer is exactly `{"decision": bool}`, nothing else.
    let (_, text) = common::http(
        &server.http,
        "POST",
        "/access/v1/evaluation",
        &[JSON],
        &readme(Some(true)).to_string(),
    );
    assert_eq!(text, r#"{"decision":true}"#);
}

#[test]
fn a_step_up_deny_carries_its_obligation_to_callers_that_opted_in() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let request = delete_bucket(opted_in(&["step-up", "notification"]));
    let (code, body) = post(&server, "/access/v1/evaluation", &[], &request);
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"decision": false, "context": {"obligations": [{
            "id": "step-up-destructive",
            "type": "step-up",
            "properties": {"acr": "urn:pdp:acr:phishing-resistant"},
        }]}})
    );
    // Without the opt-in, a plain deny.
    let (code, body) = post(
        &server,
        "/access/v1/evaluation",
        &[],
        &delete_bucket(json!({})),
    );
    assert_eq!((code, body), (200, json!({"decision": false})));
}

#[test]
fn an_allow_with_obligations_is_a_deny_unless_the_caller_takes_them_all() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let (code, body) = post(
        &server,
        "/access/v1/evaluation",
        &[],
        &break_glass(json!({})),
    );
    assert_eq!((code, body), (200, json!({"decision": false})));
    let partial = break_glass(opted_in(&["notification"]));
    let (_, body) = post(&server, "/access/v1/evaluation", &[], &partial);
    assert_eq!(body, json!({"decision": false}));
    let all = break_glass(opted_in(&["notification", "audit"]));
    let (code, body) = post(&server, "/access/v1/evaluation", &[], &all);
    assert_eq!(code, 200);
    assert_eq!(body["decision"], json!(true));
    let ids: Vec<&str> = body["context"]["obligations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["notify-security", "audit-break-glass"]);
}

/// Three evaluations sharing alice and the context: allow, deny, allow.
fn batch(semantic: Option<&str>) -> Value {
    let mut request = json!({
        "subject": {"type": "user", "id": "alice", "properties": {"roles": ["ApplicationRole"]}},
        "action": {"name": "s3:GetObject"},
        "context": {
            "aws:SourceIp": "10.1.2.3",
            "aws:MultiFactorAuthPresent": true,
            "aws:RequestTag/Environment": "production",
        },
        "evaluations": [
            {"resource": {"type": "s3", "id": "arn:aws:s3:::my-bucket/data/report.csv"}},
            {"resource": {"type": "s3", "id": "arn:aws:s3:::someone-elses-bucket/x"}},
            {"resource": {"id": "arn:aws:s3:::my-bucket/data/other.csv", "type": "s3"}},
        ],
    });
    if let Some(s) = semantic {
        request["options"] = json!({"evaluations_semantic": s});
    }
    request
}

#[test]
fn batches_answer_in_order_as_each_semantic_says() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let answers = |request: &Value| {
        let (code, text) = common::http(
            &server.http,
            "POST",
            "/access/v1/evaluations",
            &[JSON],
            &request.to_string(),
        );
        assert_eq!(code, 200, "{text}");
        text
    };
    let all = r#"{"evaluations":[{"decision":true},{"decision":false},{"decision":true}]}"#;
    assert_eq!(answers(&batch(None)), all);
    assert_eq!(answers(&batch(Some("execute_all"))), all);
    assert_eq!(
        answers(&batch(Some("deny_on_first_deny"))),
        r#"{"evaluations":[{"decision":true},{"decision":false}]}"#
    );
    assert_eq!(
        answers(&batch(Some("permit_on_first_permit"))),
        r#"{"evaluations":[{"decision":true}]}"#
    );
    let mut deny_first = batch(Some("permit_on_first_permit"));
    deny_first["evaluations"].as_array_mut().unwrap().swap(0, 1);
    assert_eq!(
        answers(&deny_first),
        r#"{"evaluations":[{"decision":false},{"decision":true}]}"#
    );
    let mut unknown = batch(Some("first_wins"));
    unknown["evaluations"].as_array_mut().unwrap().truncate(1);
    let (code, body) = post(&server, "/access/v1/evaluations", &[], &unknown);
    assert_eq!(code, 400);
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("options.evaluations_semantic"));
}

#[test]
fn batch_items_replace_defaults_and_a_broken_item_is_a_deny() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let mut request = batch(None);
    let items = request["evaluations"].as_array_mut().unwrap();
    // An item's context replaces the default one as a whole: without MFA, denied.
    items[0]["context"] =
        json!({"aws:SourceIp": "10.1.2.3", "aws:RequestTag/Environment": "production"});
    // An item without the required resource, and an item that is not an object.
    items[1] = json!({});
    items.push(json!("resource"));
    let (code, body) = post(&server, "/access/v1/evaluations", &[], &request);
    assert_eq!(code, 200, "{body}");
    let e = body["evaluations"].as_array().unwrap();
    assert_eq!(e.len(), 4);
    assert_eq!(e[0], json!({"decision": false}));
    assert_eq!(e[1]["decision"], json!(false));
    assert_eq!(e[1]["context"]["error"]["status"], json!(400));
    assert!(e[1]["context"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`evaluations[1].resource`"));
    assert_eq!(e[2], json!({"decision": true}));
    assert!(e[3]["context"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`evaluations[3]`"));
    // A failure stops deny_on_first_deny.
    request["options"] = json!({"evaluations_semantic": "deny_on_first_deny"});
    request["evaluations"].as_array_mut().unwrap().remove(0);
    let (_, body) = post(&server, "/access/v1/evaluations", &[], &request);
    assert_eq!(body["evaluations"].as_array().unwrap().len(), 1);
}

#[test]
fn a_batch_without_evaluations_is_one_evaluation() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let (code, body) = post(&server, "/access/v1/evaluations", &[], &readme(Some(true)));
    assert_eq!((code, body), (200, json!({"decision": true})));
    let mut empty = readme(None);
    empty["evaluations"] = json!([]);
    let (code, body) = post(&server, "/access/v1/evaluations", &[], &empty);
    assert_eq!((code, body), (200, json!({"decision": false})));
    let mut missing = readme(None);
    missing.as_object_mut().unwrap().remove("resource");
    let (code, body) = post(&server, "/access/v1/evaluations", &[], &missing);
    assert_eq!(code, 400);
    assert_eq!(body, json!({"error": "`resource`: is required"}));
}

#[test]
fn batches_over_the_item_limit_are_refused() {
    let server = start_pdp(["--max-batch-items", "2"], &[]);
    let (code, body) = post(&server, "/access/v1/evaluations", &[], &batch(None));
    assert_eq!(code, 400);
    assert_eq!(
        body,
        json!({"error": "`evaluations`: 3 evaluations, over the limit of 2"})
    );
}

#[test]
fn interop_payloads_are_accepted_as_sent() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    // Draft 00 (unknown `identity`, top-level `resource.ownerID`), draft 01 (`_note`), the
    // gateway scenario, and the Todo backend's empty context; the harness sends
    // `Authorization: undefined` when it has no key.
    let pid = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
    let singles = [
        json!({"subject": {"type": "user", "id": "morty@the-citadel.com", "identity": pid},
               "action": {"name": "can_update_todo"},
               "resource": {"type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b91",
                            "ownerID": "morty@the-citadel.com"}}),
        json!({"subject": {"type": "user", "id": pid, "_note": "ID for Morty"},
               "action": {"name": "can_read_user"},
               "resource": {"type": "user", "id": "beth@the-smiths.com"}, "context": {}}),
        json!({"subject": {"type": "identity", "id": pid},
               "action": {"name": "PUT"},
               "resource": {"type": "route", "id": "/todos/{todoId}"}}),
    ];
    for request in &singles {
        let (code, body) = post(
            &server,
            "/access/v1/evaluation",
            &[("Authorization", "undefined")],
            request,
        );
        assert_eq!(code, 200, "{request}: {body}");
        assert!(body["decision"].is_boolean(), "{body}");
    }
    let request = json!({
        "subject": {"type": "user", "id": pid},
        "action": {"name": "can_update_todo"},
        "evaluations": [
            {"resource": {"type": "todo", "id": "7240d0db-8ff0-41ec-98b2-34a096273b92",
                          "properties": {"ownerID": "rick@the-citadel.com"}}},
            {"resource": {"id": "7240d0db-8ff0-41ec-98b2-34a096273b91", "type": "todo",
                          "properties": {"ownerID": "morty@the-citadel.com"}}},
        ],
    });
    let (code, text) = common::http(
        &server.http,
        "POST",
        "/access/v1/evaluations",
        &[JSON],
        &request.to_string(),
    );
    assert_eq!(code, 200);
    // The example policies know no todos: both denied, each item exactly `{"decision": …}`.
    assert_eq!(
        text,
        r#"{"evaluations":[{"decision":false},{"decision":false}]}"#
    );
}

#[test]
fn the_request_id_is_echoed_on_every_answer() {
    let server = start_pdp(
        ["--trust-loopback", "false"],
        &[("PDP_AUTHZEN_API_KEYS", "k1")],
    );
    let id = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716";
    let echoed = |head: &str| {
        head.lines()
            .any(|l| l.eq_ignore_ascii_case(&format!("x-request-id: {id}")))
    };
    let body = readme(Some(true)).to_string();
    let request = |auth: &str, content_type: &str, body: &str| {
        format!(
            "POST /access/v1/evaluation HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\nX-Request-ID: {id}\r\nAuthorization: {auth}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let (code, head, _) = raw(
        &server,
        request("Bearer k1", "application/json", &body).as_bytes(),
    );
    assert_eq!(code, 200);
    assert!(echoed(&head), "{head}");
    let (code, head, _) = raw(
        &server,
        request("Bearer k1", "text/plain", &body).as_bytes(),
    );
    assert_eq!(code, 400);
    assert!(echoed(&head), "{head}");
    let (code, head, _) = raw(
        &server,
        request("Bearer nope", "application/json", &body).as_bytes(),
    );
    assert_eq!(code, 401);
    assert!(echoed(&head), "{head}");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(64 * 1024));
    let (code, head, _) = raw(
        &server,
        request("Bearer k1", "application/json", &big).as_bytes(),
    );
    assert_eq!(code, 413);
    assert!(echoed(&head), "{head}");
    let (code, head, _) = raw(
        &server,
        format!("GET /.well-known/authzen-configuration HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\nX-Request-ID: {id}\r\n\r\n").as_bytes(),
    );
    // No public base URL configured: no metadata, and the id echoed all the same.
    assert_eq!(code, 404);
    assert!(echoed(&head), "{head}");
}

#[test]
fn the_metadata_names_the_endpoints_and_obligation_types() {
    let server = start_pdp(["--authzen-base-url", "https://pdp.example.test/"], &[]);
    let (code, text) = common::http(
        &server.http,
        "GET",
        "/.well-known/authzen-configuration",
        &[],
        "",
    );
    assert_eq!(code, 200);
    assert_eq!(
        parse(&text),
        json!({
            "policy_decision_point": "https://pdp.example.test",
            "access_evaluation_endpoint": "https://pdp.example.test/access/v1/evaluation",
            "access_evaluations_endpoint": "https://pdp.example.test/access/v1/evaluations",
            "search_subject_endpoint": "https://pdp.example.test/access/v1/search/subject",
            "search_resource_endpoint": "https://pdp.example.test/access/v1/search/resource",
            "search_action_endpoint": "https://pdp.example.test/access/v1/search/action",
            "capabilities": ["urn:openid:authzen:capability:obligations"],
            "supported_obligations": ["step-up", "notification", "session_termination", "custom", "audit"],
        })
    );
}

#[test]
fn the_metadata_never_reflects_the_host_header() {
    let hostile = b"GET /.well-known/authzen-configuration HTTP/1.1\r\nHost: evil.test\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n";
    let server = start_pdp(["--authzen-base-url", "https://pdp.example.test"], &[]);
    let (code, _, body) = raw(&server, hostile);
    assert_eq!(code, 200);
    assert!(!body.contains("evil"), "{body}");
    assert_eq!(
        parse(&body)["access_evaluation_endpoint"],
        "https://pdp.example.test/access/v1/evaluation"
    );
    // Without a configured base URL nothing is published, whatever the request says.
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let (code, _, body) = raw(&server, hostile);
    assert_eq!(code, 404);
    assert!(!body.contains("evil"), "{body}");
    assert!(
        parse(&body)["error"]
            .as_str()
            .unwrap()
            .contains("--authzen-base-url"),
        "{body}"
    );
}

#[test]
fn malformed_requests_are_refused_naming_the_problem() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let send = |headers: &[(&str, &str)], body: &str| {
        let (code, text) =
            common::http(&server.http, "POST", "/access/v1/evaluation", headers, body);
        (
            code,
            parse(&text)["error"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let valid = readme(Some(true)).to_string();
    let (code, error) = send(&[JSON], "{\"subject\": ");
    assert_eq!(code, 400);
    assert!(error.starts_with("the body is not valid JSON"), "{error}");
    let (code, error) = send(&[JSON], "");
    assert_eq!((code, error.as_str()), (400, "the body is empty"));
    let (code, error) = send(&[JSON], "[]");
    assert_eq!(
        (code, error.as_str()),
        (400, "the body must be a JSON object")
    );
    let (code, error) = send(&[("Content-Type", "text/plain")], &valid);
    assert_eq!(code, 400);
    assert!(error.contains("application/json"), "{error}");
    let (code, error) = send(&[], &valid);
    assert_eq!(code, 400);
    assert!(error.contains("application/json"), "{error}");
    let (code, _) = send(
        &[("Content-Type", "application/json; charset=utf-8")],
        &valid,
    );
    assert_eq!(code, 200);

    let cases = [
        ("/subject", Value::Null, "`subject`: is required"),
        ("/subject/type", Value::Null, "`subject.type`: is required"),
        ("/subject/id", json!(7), "`subject.id`: must be a string"),
        ("/action/name", Value::Null, "`action.name`: is required"),
        ("/resource", json!("arn"), "`resource`: must be an object"),
        ("/resource/id", Value::Null, "`resource.id`: is required"),
        (
            "/resource/properties",
            json!({"items": [{"a": 1}]}),
            "`resource.properties.items[0]`: objects inside arrays are not supported: only arrays of strings, numbers and booleans",
        ),
    ];
    for (pointer, value, expected) in cases {
        let mut request = readme(Some(true));
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = if parent.is_empty() {
            &mut request
        } else {
            request.pointer_mut(parent).unwrap()
        };
        if value.is_null() {
            parent.as_object_mut().unwrap().remove(key);
        } else {
            parent[key] = value;
        }
        let (code, error) = send(&[JSON], &request.to_string());
        assert_eq!((code, error.as_str()), (400, expected), "{pointer}");
    }
    // Over the field limits (4 KiB strings): refused by the shared conversion.
    let mut long = readme(Some(true));
    long["subject"]["id"] = json!("a".repeat(5000));
    let (code, error) = send(&[JSON], &long.to_string());
    assert_eq!(code, 400);
    assert!(error.contains("subject.id"), "{error}");
    let mut long = readme(Some(true));
    long["context"]["note"] = json!("n".repeat(5000));
    let (code, error) = send(&[JSON], &long.to_string());
    assert_eq!(code, 400);
    assert!(
        error.starts_with("`context.note`: is 5000 bytes, over the limit of 4096"),
        "{error}"
    );
}

#[test]
fn bodies_over_the_limit_are_refused_with_413() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let mut request = readme(Some(true));
    request["context"]["pad"] = json!("x".repeat(64 * 1024));
    let body = request.to_string();
    let (code, _, text) = raw(
        &server,
        format!(
            "POST /access/v1/evaluation HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(code, 413);
    assert_eq!(
        parse(&text),
        json!({"error": "the body is over the limit of 65536 bytes"})
    );
}

#[test]
fn untrusted_callers_without_a_configured_key_get_401() {
    let server = start_pdp(
        [
            "--trust-loopback",
            "false",
            "--authzen-base-url",
            "https://pdp.example.test",
        ],
        &[],
    );
    let (code, head, body) = raw(
        &server,
        b"POST /access/v1/evaluation HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\nContent-Type: application/json\r\nAuthorization: Bearer k1\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(code, 401);
    assert!(
        head.lines()
            .any(|l| l.eq_ignore_ascii_case("www-authenticate: Bearer")),
        "{head}"
    );
    assert!(parse(&body)["error"].is_string());
    // The metadata stays public.
    let (code, _) = common::http(
        &server.http,
        "GET",
        "/.well-known/authzen-configuration",
        &[],
        "",
    );
    assert_eq!(code, 200);
}

#[test]
fn untrusted_callers_are_admitted_by_a_configured_api_key() {
    let server = start_pdp(
        ["--trust-loopback", "false"],
        &[("PDP_AUTHZEN_API_KEYS", "k1,k2")],
    );
    let request = readme(Some(true));
    for auth in [None, Some("undefined"), Some("Bearer k3"), Some("Basic k1")] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let (code, body) = post(&server, "/access/v1/evaluation", &headers, &request);
        assert_eq!(code, 401, "{auth:?}");
        assert!(body["error"].is_string());
    }
    // A caller with a key counts as trusted: the roles it asserts count.
    for key in ["Bearer k1", "Bearer k2"] {
        let (code, body) = post(
            &server,
            "/access/v1/evaluation",
            &[("Authorization", key)],
            &request,
        );
        assert_eq!((code, body), (200, json!({"decision": true})));
    }
    let (code, _) = post(
        &server,
        "/access/v1/evaluations",
        &[("Authorization", "Bearer k2")],
        &batch(None),
    );
    assert_eq!(code, 200);
}

#[test]
fn the_readme_curl_call_answers_as_the_readme_says() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/authzen.md"))
            .unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("curl -s http://127.0.0.1:8180/access/v1/evaluation"))
        .expect("docs/authzen.md shows an AuthZEN curl call");
    let body = line
        .split_once("-d '")
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .expect("the call's body");
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let (code, text) = common::http(&server.http, "POST", "/access/v1/evaluation", &[JSON], body);
    assert_eq!((code, text.as_str()), (200, r#"{"decision":true}"#));
}
