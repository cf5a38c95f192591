//! The AuthZEN searches end to end: the real `pdp serve` on a policy directory with an
//! inventory (`resources.jsonl`, `actions.txt`), each search checked against one
//! evaluation per item, paging across reloads, broken inventories, caller authentication.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use pdp_proto::v1 as pb;
use serde_json::{json, Value};

use common::{start_pdp, Server};

const DOCS: &str = r#"
Version: "2012-10-17"
Statement:
  - Sid: OwnDocs
    Effect: Allow
    Action: ["doc:read", "doc:write", "doc:Archive"]
    Resource: "doc:${aws:username}/*"
  - Sid: Public
    Effect: Allow
    Action: "doc:read"
    Resource: "doc:*"
    Condition:
      StringEquals: { "aws:ResourceTag/visibility": "public" }
  - Sid: Owner
    Effect: Allow
    Action: "doc:share"
    Resource: "doc:*"
    Condition:
      StringEquals: { "aws:ResourceTag/owner": "${aws:username}" }
  - Sid: NoSecrets
    Effect: Deny
    Action: "doc:*"
    Resource: "doc:*/secret*"
"#;

const ADMIN: &str = r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "doc:*"
    Resource: "*"
"#;

const BINDINGS: &str = r#"
roles:
  reader: { policies: [docs] }
  admin: { policies: [admin] }
subjects:
  alice: { roles: [reader] }
  bob: { roles: [reader] }
  carol: { roles: [admin] }
  dave: { roles: [reader] }
"#;

const ACTIONS: &str = "# the document actions\ndoc:read\ndoc:write\ndoc:share\ndoc:delete\n";

const OWNERS: [&str; 3] = ["alice", "bob", "dave"];

/// `n` documents per owner, some public, some secret, tagged with their owner.
fn resources(n: usize) -> String {
    let mut out = String::new();
    for owner in OWNERS {
        for i in 0..n {
            let name = if i % 7 == 3 {
                format!("secret-{i}")
            } else {
                format!("{i:03}")
            };
            let visibility = if i % 3 == 0 { "public" } else { "private" };
            // Not every document belongs under its owner's prefix.
            let prefix = if i % 5 == 4 { "shared" } else { owner };
            out.push_str(
                &json!({
                    "id": format!("{prefix}/{name}-{owner}"),
                    "type": "doc",
                    "tags": {"owner": owner, "visibility": visibility},
                })
                .to_string(),
            );
            out.push('\n');
        }
    }
    out.push_str(&json!({"id": "x", "type": "folder"}).to_string());
    out.push('\n');
    out
}

fn directory(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("docs.yaml"), DOCS).unwrap();
    std::fs::write(p.join("admin.yaml"), ADMIN).unwrap();
    std::fs::write(p.join("bindings.yaml"), BINDINGS).unwrap();
    std::fs::write(p.join("actions.txt"), ACTIONS).unwrap();
    std::fs::write(p.join("resources.jsonl"), resources(n)).unwrap();
    dir
}

fn serve(dir: &Path) -> Server {
    start_pdp(
        [
            "--policies",
            dir.to_str().unwrap(),
            "--watch",
            "false",
            "--authzen-base-url",
            "https://pdp.example.test",
        ],
        &[],
    )
}

fn post(server: &Server, path: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let (code, text) = common::http(&server.http, "POST", path, &all, &body.to_string());
    let value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {code} {text}"));
    (code, value)
}

fn allowed(server: &Server, subject: &str, action: &str, id: &str) -> bool {
    let (code, body) = post(
        server,
        "/access/v1/evaluation",
        &[],
        &json!({
            "subject": {"type": "user", "id": subject},
            "action": {"name": action},
            "resource": {"type": "doc", "id": id},
        }),
    );
    assert_eq!(code, 200, "{body}");
    body["decision"].as_bool().unwrap()
}

/// Every page of a search from `token` on: the results' `key` member, in order.
fn pages(server: &Server, path: &str, request: &Value, key: &str, token: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = token.to_owned();
    for _ in 0..10_000 {
        let mut r = request.clone();
        r["page"]["token"] = json!(token);
        let (code, body) = post(server, path, &[], &r);
        assert_eq!(code, 200, "{body}");
        let results = body["results"].as_array().unwrap();
        assert_eq!(body["page"]["count"], json!(results.len()), "{body}");
        out.extend(results.iter().map(|r| r[key].as_str().unwrap().to_owned()));
        token = body["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            return out;
        }
    }
    panic!("the pages never ended");
}

fn all_ids(n: usize) -> Vec<String> {
    resources(n)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["type"] == "doc")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted_unique(items: &[String]) -> bool {
    items.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test]
async fn resource_search_agrees_with_evaluation_and_check_on_every_resource() {
    let dir = directory(40);
    let server = serve(dir.path());
    let mut grpc = pb::authorization_service_client::AuthorizationServiceClient::new(
        common::channel(&server).await,
    );
    for (subject, action) in [
        ("alice", "read"),
        ("bob", "share"),
        ("carol", "delete"),
        ("dave", "write"),
        ("nobody", "read"),
    ] {
        let request = json!({
            "subject": {"type": "user", "id": subject},
            "action": {"name": action},
            "resource": {"type": "doc"},
            "page": {"limit": 7},
        });
        let found = pages(&server, "/access/v1/search/resource", &request, "id", "");
        assert!(sorted_unique(&found), "{subject} {action}: {found:?}");
        let expected: Vec<String> = all_ids(40)
            .into_iter()
            .filter(|id| allowed(&server, subject, action, id))
            .collect();
        let found_set: BTreeSet<&String> = found.iter().collect();
        let expected_set: BTreeSet<&String> = expected.iter().collect();
        assert_eq!(found_set, expected_set, "{subject} {action}");
        if subject != "nobody" {
            assert!(!found.is_empty(), "{subject} {action}");
        }
        // Check, with the inventory's tags sent by the caller, agrees too.
        for line in resources(40).lines().take(60) {
            let r: Value = serde_json::from_str(line).unwrap();
            if r["type"] != "doc" {
                continue;
            }
            let id = r["id"].as_str().unwrap();
            let tags = r["tags"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let answer = grpc
                .check(pb::CheckRequest {
                    subject: Some(pb::Subject {
                        id: subject.into(),
                        ..Default::default()
                    }),
                    action: format!("doc:{action}"),
                    resource: Some(pb::Resource {
                        id: format!("doc:{id}"),
                        tags,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                answer.decision() == pb::Decision::Allow,
                found_set.contains(&id.to_owned()),
                "{subject} {action} {id}"
            );
        }
    }
    // Another type: only its own resources.
    let (code, body) = post(
        &server,
        "/access/v1/search/resource",
        &[],
        &json!({"subject": {"type": "user", "id": "carol"}, "action": {"name": "doc:read"}, "resource": {"type": "folder"}}),
    );
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({"results": [{"type": "folder", "id": "x"}], "page": {"next_token": "", "count": 1}})
    );
}

#[test]
fn subject_search_agrees_with_evaluation_for_every_directory_subject() {
    let dir = directory(10);
    let server = serve(dir.path());
    let subjects = ["alice", "bob", "carol", "dave"];
    for id in [
        "alice/000-alice",
        "alice/001-alice",
        "shared/004-bob",
        "dave/secret-3-dave",
    ] {
        for action in ["read", "write", "share", "delete", "archive"] {
            let request = json!({
                "subject": {"type": "user"},
                "action": {"name": action},
                "resource": {"type": "doc", "id": id},
                "page": {"limit": 1},
            });
            let found = pages(&server, "/access/v1/search/subject", &request, "id", "");
            assert!(sorted_unique(&found), "{found:?}");
            let expected: Vec<String> = subjects
                .iter()
                .filter(|s| allowed(&server, s, action, id))
                .map(|s| (*s).to_owned())
                .collect();
            assert_eq!(found, expected, "{action} {id}");
        }
    }
    let (_, body) = post(
        &server,
        "/access/v1/search/subject",
        &[],
        &json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "doc", "id": "alice/000-alice"}}),
    );
    assert_eq!(body["results"][0], json!({"type": "user", "id": "alice"}));
}

#[test]
fn action_search_agrees_with_evaluation_for_every_known_action() {
    let dir = directory(10);
    let server = serve(dir.path());
    // The catalog's actions, and `doc:archive`, which only a policy names.
    let known = [
        "doc:Archive",
        "doc:delete",
        "doc:read",
        "doc:share",
        "doc:write",
    ];
    for subject in ["alice", "bob", "carol", "nobody"] {
        for id in [
            "alice/000-alice",
            "alice/001-alice",
            "bob/secret-3-bob",
            "shared/004-alice",
        ] {
            let request = json!({
                "subject": {"type": "user", "id": subject},
                "resource": {"type": "doc", "id": id},
                "page": {"limit": 2},
            });
            let found = pages(&server, "/access/v1/search/action", &request, "name", "");
            assert!(sorted_unique(&found), "{found:?}");
            let expected: Vec<String> = known
                .iter()
                .map(|a| {
                    if *a == "doc:Archive" {
                        "doc:archive"
                    } else {
                        a
                    }
                })
                .filter(|a| allowed(&server, subject, a, id))
                .map(str::to_owned)
                .collect();
            let mut expected_sorted = expected.clone();
            expected_sorted.sort();
            assert_eq!(found, expected_sorted, "{subject} {id}");
        }
    }
    let (_, body) = post(
        &server,
        "/access/v1/search/action",
        &[],
        &json!({"subject": {"type": "user", "id": "alice"}, "resource": {"type": "doc", "id": "alice/001-alice"}}),
    );
    assert_eq!(
        body,
        json!({"results": [{"name": "doc:archive"}, {"name": "doc:read"}, {"name": "doc:share"}, {"name": "doc:write"}], "page": {"next_token": "", "count": 4}})
    );
}

async fn reload(server: &Server) -> pb::ReloadOutcome {
    pb::admin_service_client::AdminServiceClient::new(common::channel(server).await)
        .reload(pb::ReloadRequest {})
        .await
        .unwrap()
        .into_inner()
        .outcome
        .unwrap()
}

#[tokio::test]
async fn pages_survive_a_policy_reload_and_die_with_an_inventory_change() {
    let dir = directory(30);
    let server = serve(dir.path());
    let request = json!({
        "subject": {"type": "user", "id": "carol"},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
        "page": {"limit": 10},
    });
    let everything = pages(&server, "/access/v1/search/resource", &request, "id", "");
    let (code, first) = post(&server, "/access/v1/search/resource", &[], &request);
    assert_eq!(code, 200);
    let token = first["page"]["next_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());

    // A reload that changes the policies only: the token stays good, and the pages go on
    // where the first ended, each resource once, in order.
    let extra = ADMIN.replace(
        "Resource: \"*\"",
        "Resource: \"*\"\n  - Effect: Allow\n    Action: \"doc:read\"\n    Resource: \"none:*\"",
    );
    std::fs::write(dir.path().join("admin.yaml"), extra).unwrap();
    let outcome = reload(&server).await;
    assert!(outcome.accepted, "{outcome:?}");
    let mut seen: Vec<String> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    seen.extend(pages(
        &server,
        "/access/v1/search/resource",
        &request,
        "id",
        &token,
    ));
    assert_eq!(seen, everything);

    // The same token with another request is refused.
    let mut other = request.clone();
    other["action"]["name"] = json!("write");
    other["page"]["token"] = json!(token);
    let (code, body) = post(&server, "/access/v1/search/resource", &[], &other);
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("`page.token`"),
        "{body}"
    );

    // A reload that changes the inventory: the token is refused, naming it.
    let mut more = resources(30);
    more.push_str("{\"id\": \"zz/new\", \"type\": \"doc\"}\n");
    std::fs::write(dir.path().join("resources.jsonl"), more).unwrap();
    let outcome = reload(&server).await;
    assert!(outcome.accepted, "{outcome:?}");
    let mut stale = request.clone();
    stale["page"]["token"] = json!(token);
    let (code, body) = post(&server, "/access/v1/search/resource", &[], &stale);
    assert_eq!(code, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("`page.token`") && error.contains("inventory changed"),
        "{error}"
    );
    // Started again, the search sees the new resource.
    let again = pages(&server, "/access/v1/search/resource", &request, "id", "");
    assert!(again.contains(&"zz/new".to_owned()));
    // A garbled token is refused as one.
    stale["page"]["token"] = json!("not-a-token!");
    let (code, body) = post(&server, "/access/v1/search/resource", &[], &stale);
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("`page.token`"),
        "{body}"
    );
}

#[tokio::test]
async fn broken_inventories_are_refused_naming_file_and_line() {
    // At start: `pdp serve` stops, naming the file and the line.
    let dir = directory(3);
    let bad = format!(
        "{}{{\"id\": \"alice/000-alice\", \"type\": \"doc\"}}\n",
        resources(3)
    );
    std::fs::write(dir.path().join("resources.jsonl"), &bad).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(["serve", "--policies", dir.path().to_str().unwrap()])
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let line = bad.lines().count();
    assert!(
        text.contains(&format!(
            "resources.jsonl:{line}: `id`: the resource `doc:alice/000-alice` is also on line 1"
        )),
        "{text}"
    );

    // On reload: refused, the serving inventory stays, and so do its tokens.
    let dir = directory(3);
    let server = serve(dir.path());
    let request = json!({
        "subject": {"type": "user", "id": "carol"},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
        "page": {"limit": 2},
    });
    let (_, first) = post(&server, "/access/v1/search/resource", &[], &request);
    let token = first["page"]["next_token"].as_str().unwrap().to_owned();
    std::fs::write(
        dir.path().join("resources.jsonl"),
        format!(
            "{}{{\"id\": \"q\", \"type\": \"doc\", \"tags\": {{\"k\": 1}}}}\n",
            resources(3)
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("actions.txt"), "doc:read\ndoc:*\n").unwrap();
    let outcome = reload(&server).await;
    assert!(!outcome.accepted);
    let problems = outcome.problems.join("\n");
    let line = resources(3).lines().count() + 1;
    assert!(
        problems.contains(&format!(
            "resources.jsonl:{line}: `tags.k`: must be a string"
        )),
        "{problems}"
    );
    assert!(problems.contains("actions.txt:2: `doc:*`"), "{problems}");
    let rest = pages(
        &server,
        "/access/v1/search/resource",
        &request,
        "id",
        &token,
    );
    assert!(!rest.is_empty());
}

#[test]
fn searches_refuse_unauthenticated_callers_as_evaluation_does() {
    let dir = directory(3);
    let server = start_pdp(
        [
            "--policies",
            dir.path().to_str().unwrap(),
            "--trust-loopback",
            "false",
        ],
        &[("PDP_AUTHZEN_API_KEYS", "k1")],
    );
    let requests = [
        (
            "/access/v1/search/resource",
            json!({"subject": {"type": "user", "id": "carol"}, "action": {"name": "read"}, "resource": {"type": "doc"}}),
        ),
        (
            "/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "doc", "id": "a"}}),
        ),
        (
            "/access/v1/search/action",
            json!({"subject": {"type": "user", "id": "carol"}, "resource": {"type": "doc", "id": "a"}}),
        ),
    ];
    for (path, body) in &requests {
        for auth in [None, Some("Bearer nope")] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("Authorization", a)).into_iter().collect();
            let (code, answer) = post(&server, path, &headers, body);
            assert_eq!(code, 401, "{path} {auth:?}");
            assert!(answer["error"].is_string());
            assert!(answer.get("results").is_none());
        }
        let (code, answer) = post(&server, path, &[("Authorization", "Bearer k1")], body);
        // An API key admits a caller to decisions, not to the directory: subject search
        // is for callers trusted by their transport, as over gRPC.
        if *path == "/access/v1/search/subject" {
            assert_eq!(code, 403, "{path}: {answer}");
            assert!(answer.get("results").is_none(), "{path}: {answer}");
            continue;
        }
        assert_eq!(code, 200, "{path}: {answer}");
        assert!(
            !answer["results"].as_array().unwrap().is_empty(),
            "{path}: {answer}"
        );
    }
}

#[test]
fn the_metadata_advertises_the_search_endpoints() {
    let dir = directory(1);
    let server = serve(dir.path());
    let (code, text) = common::http(
        &server.http,
        "GET",
        "/.well-known/authzen-configuration",
        &[],
        "",
    );
    assert_eq!(code, 200);
    let m: Value = serde_json::from_str(&text).unwrap();
    for (key, path) in [
        ("search_subject_endpoint", "/access/v1/search/subject"),
        ("search_resource_endpoint", "/access/v1/search/resource"),
        ("search_action_endpoint", "/access/v1/search/action"),
    ] {
        assert_eq!(m[key], json!(format!("https://pdp.example.test{path}")));
    }
}

#[test]
fn page_limits_are_bounded_and_checked() {
    let dir = directory(400);
    let server = serve(dir.path());
    let mut request = json!({
        "subject": {"type": "user", "id": "carol"},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
    });
    let (_, body) = post(&server, "/access/v1/search/resource", &[], &request);
    assert_eq!(body["page"]["count"], json!(100), "the default page");
    request["page"] = json!({"limit": 5000});
    let (_, body) = post(&server, "/access/v1/search/resource", &[], &request);
    assert_eq!(body["page"]["count"], json!(1000), "the largest page");
    assert!(!body["page"]["next_token"].as_str().unwrap().is_empty());
    // Two pages answered, of 100 and 1,000 resources (each examined once).
    assert_eq!(
        common::metric(&server, "pdp_searches_total{search=\"resource\"}"),
        2.0
    );
    assert_eq!(
        common::metric(&server, "pdp_search_examined_total{search=\"resource\"}"),
        1100.0
    );
    request["page"] = json!({"limit": -1});
    let (code, body) = post(&server, "/access/v1/search/resource", &[], &request);
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("`page.limit`"));
}

#[tokio::test]
async fn grpc_searches_answer_as_the_authzen_ones_with_the_same_paging() {
    let dir = directory(20);
    let server = serve(dir.path());
    let mut c = pb::authorization_service_client::AuthorizationServiceClient::new(
        common::channel(&server).await,
    );
    let subject = |id: &str| {
        Some(pb::Subject {
            id: id.into(),
            ..Default::default()
        })
    };
    let resource = |id: &str| {
        Some(pb::Resource {
            id: format!("doc:{id}"),
            tags: [("owner".to_owned(), "alice".to_owned())].into(),
            ..Default::default()
        })
    };

    // Resources, paged by 6.
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .search_resources(pb::SearchResourcesRequest {
                subject: subject("alice"),
                action: "doc:read".into(),
                resource_type: "doc".into(),
                page: Some(pb::SearchPage {
                    token: token.clone(),
                    limit: 6,
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let page = r.page.unwrap();
        assert_eq!(page.count as usize, r.results.len());
        for f in &r.results {
            assert_eq!(f.resource_id, format!("doc:{}", f.id));
            assert_eq!(f.resource_type, "doc");
        }
        ids.extend(r.results.into_iter().map(|f| f.id));
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    let authzen = pages(
        &server,
        "/access/v1/search/resource",
        &json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "doc"}, "page": {"limit": 1000}}),
        "id",
        "",
    );
    assert_eq!(ids, authzen);

    // Subjects and actions.
    let r = c
        .search_subjects(pb::SearchSubjectsRequest {
            action: "doc:share".into(),
            resource: resource("shared/004-alice"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.subject_ids, ["alice", "carol"]);
    let r = c
        .search_actions(pb::SearchActionsRequest {
            subject: subject("alice"),
            resource: resource("alice/001-alice"),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.actions,
        ["doc:archive", "doc:read", "doc:share", "doc:write"]
    );
    assert!(!r.policy_revision.is_empty());

    // A token of another search is refused, naming the field.
    let first = c
        .search_resources(pb::SearchResourcesRequest {
            subject: subject("alice"),
            action: "doc:read".into(),
            resource_type: "doc".into(),
            page: Some(pb::SearchPage {
                token: String::new(),
                limit: 1,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let e = c
        .search_actions(pb::SearchActionsRequest {
            subject: subject("alice"),
            resource: resource("alice/001-alice"),
            page: Some(pb::SearchPage {
                token: first.page.unwrap().next_token,
                limit: 1,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("`page.token`"), "{e:?}");
}

#[test]
fn the_documented_example_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(
        p.join("docs.yaml"),
        r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "doc:read"
    Resource: "doc:${aws:username}/*"
  - Effect: Allow
    Action: "doc:read"
    Resource: "doc:*"
    Condition:
      StringEquals: { "aws:ResourceTag/visibility": "public" }
"#,
    )
    .unwrap();
    std::fs::write(
        p.join("resources.jsonl"),
        concat!(
            "{\"id\": \"alice/notes\", \"type\": \"doc\", \"tags\": {\"visibility\": \"private\"}}\n",
            "{\"id\": \"alice/plan\", \"type\": \"doc\"}\n",
            "{\"id\": \"bob/faq\", \"type\": \"doc\", \"tags\": {\"visibility\": \"public\"}}\n",
            "{\"id\": \"bob/diary\", \"type\": \"doc\"}\n",
        ),
    )
    .unwrap();
    std::fs::write(
        p.join("bindings.yaml"),
        "subjects: { alice: { roles: [reader] } }\nroles: { reader: { policies: [docs] } }\n",
    )
    .unwrap();
    let server = serve(p);
    let mut request = json!({
        "subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
        "resource": {"type": "doc"}, "page": {"limit": 2},
    });
    let (code, first) = post(&server, "/access/v1/search/resource", &[], &request);
    assert_eq!(code, 200);
    assert_eq!(
        first["results"],
        json!([{"type": "doc", "id": "alice/notes"}, {"type": "doc", "id": "alice/plan"}])
    );
    assert_eq!(first["page"]["count"], json!(2));
    request["page"] = json!({"token": first["page"]["next_token"]});
    let (_, second) = post(&server, "/access/v1/search/resource", &[], &request);
    assert_eq!(
        second,
        json!({"results": [{"type": "doc", "id": "bob/faq"}], "page": {"next_token": "", "count": 1}})
    );
}

#[test]
fn a_change_to_the_inventory_alone_is_reloaded_by_the_watcher() {
    let dir = directory(2);
    let server = start_pdp(["--policies", dir.path().to_str().unwrap()], &[]);
    let request = json!({
        "subject": {"type": "user", "id": "carol"}, "action": {"name": "read"},
        "resource": {"type": "doc"},
    });
    let found = |server: &Server| pages(server, "/access/v1/search/resource", &request, "id", "");
    assert!(!found(&server).contains(&"zz/late".to_owned()));
    // A policy change first, so that the watcher has the digest of what it last read.
    let extra = ADMIN.replace(
        "Resource: \"*\"",
        "Resource: \"*\"\n  - Effect: Allow\n    Action: \"doc:read\"\n    Resource: \"none:*\"",
    );
    let accepted = "pdp_policy_reloads_total{result=\"accepted\"}";
    for _ in 0..300 {
        // Written again until seen: the watch may begin after the first write.
        std::fs::write(dir.path().join("admin.yaml"), &extra).unwrap();
        if common::metric(&server, accepted) >= 1.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(common::metric(&server, accepted) >= 1.0, "no reload");
    // Then the inventory alone.
    let mut more = resources(2);
    more.push_str("{\"id\": \"zz/late\", \"type\": \"doc\"}\n");
    std::fs::write(dir.path().join("resources.jsonl"), more).unwrap();
    for _ in 0..300 {
        if found(&server).contains(&"zz/late".to_owned()) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("the new resource never appeared");
}

#[test]
fn policy_validate_checks_the_inventory() {
    let dir = directory(2);
    let validate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pdp"))
            .args(["policy", "validate", dir.path().to_str().unwrap()])
            .output()
            .unwrap()
    };
    let o = validate();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("7 resources, 4 catalog actions"), "{out}");
    // The inventory's files are not read as policies: docs and admin only.
    assert!(out.starts_with("ok: 2 policies, "), "{out}");
    std::fs::write(dir.path().join("actions.txt"), "doc:read\nread\n").unwrap();
    let o = validate();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("actions.txt:2: `read`: an action is `service:name`"),
        "{out}"
    );
}

#[test]
fn action_search_refuses_sensitive_actions_while_the_signals_are_stale() {
    // A signal store that was never reached is stale from the start: sensitive actions
    // (`*:Delete*` by default) are denied.
    let dir = directory(2);
    let redis = format!("redis://127.0.0.1:{}", common::free_port());
    let server = start_pdp(
        [
            "--policies",
            dir.path().to_str().unwrap(),
            "--signals",
            &redis,
        ],
        &[],
    );
    let id = "alice/000-alice";
    let request = json!({
        "subject": {"type": "user", "id": "carol"},
        "resource": {"type": "doc", "id": id},
    });
    let found = pages(&server, "/access/v1/search/action", &request, "name", "");
    assert_eq!(found, ["doc:archive", "doc:read", "doc:share", "doc:write"]);
    assert!(!allowed(&server, "carol", "doc:delete", id));
    assert!(allowed(&server, "carol", "doc:read", id));
    let subjects = |action: &str| {
        let request = json!({
            "subject": {"type": "user"}, "action": {"name": action},
            "resource": {"type": "doc", "id": id},
        });
        pages(&server, "/access/v1/search/subject", &request, "id", "")
    };
    assert!(subjects("delete").is_empty());
    // A public document: every reader.
    assert_eq!(subjects("read"), ["alice", "bob", "carol", "dave"]);
}

/// `pdp search` with `args`, paging through every result with `--limit 4`.
fn cli_search(dir: &Path, args: &[&str], request: &Value) -> Vec<Value> {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("request.json");
    std::fs::write(&file, request.to_string()).unwrap();
    let mut results = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pdp"))
            .arg("search")
            .args(args)
            .args(["--policies", dir.to_str().unwrap(), "--limit", "4"])
            .args(["--page", &token])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let page: Value = serde_json::from_slice(&out.stdout).unwrap();
        let found = page["results"].as_array().unwrap();
        assert!(found.len() <= 4, "{page}");
        results.extend(found.iter().cloned());
        token = page["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            return results;
        }
    }
    panic!("no last page");
}

#[test]
fn the_cli_searches_as_authzen_does() {
    let dir = directory(6);
    let server = serve(dir.path());
    let authzen = |path: &str, body: Value| {
        let (code, answer) = post(&server, path, &[], &body);
        assert_eq!(code, 200, "{answer}");
        answer["results"].as_array().unwrap().clone()
    };
    for subject in ["alice", "carol"] {
        let ours = cli_search(
            dir.path(),
            &["resources", "--type", "doc"],
            &json!({"subject": {"id": subject}, "action": "doc:read"}),
        );
        let theirs = authzen(
            "/access/v1/search/resource",
            json!({"subject": {"type": "user", "id": subject}, "action": {"name": "read"}, "resource": {"type": "doc"}}),
        );
        assert!(!ours.is_empty());
        assert_eq!(ours, theirs, "{subject}");
    }
    let ours: Vec<Value> = cli_search(
        dir.path(),
        &["subjects"],
        &json!({"action": "doc:share", "resource": {"id": "doc:alice/000-alice"}}),
    );
    let theirs = authzen(
        "/access/v1/search/subject",
        json!({"subject": {"type": "user"}, "action": {"name": "share"}, "resource": {"type": "doc", "id": "alice/000-alice"}}),
    );
    let ids = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&ours), ids(&theirs));
    assert_eq!(ids(&ours), ["alice", "carol"]);
    let ours = cli_search(
        dir.path(),
        &["actions"],
        &json!({"subject": {"id": "bob"}, "resource": {"id": "doc:bob/001-bob"}}),
    );
    let theirs = authzen(
        "/access/v1/search/action",
        json!({"subject": {"type": "user", "id": "bob"}, "resource": {"type": "doc", "id": "bob/001-bob"}}),
    );
    assert_eq!(ours, theirs);

    // A resource search without its type is refused, naming the flag.
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("r.json");
    std::fs::write(
        &file,
        json!({"subject": {"id": "bob"}, "action": "doc:read"}).to_string(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args([
            "search",
            "resources",
            "--policies",
            dir.path().to_str().unwrap(),
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--type"),
        "{out:?}"
    );
}
