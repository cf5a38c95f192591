//! The policy directory as `pdp` reads it, end to end: nesting bounds, links, empty sets,
//! what a reload reacts to, and resource-policy grants to roles with boundaries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{copy_policies, metric, start_pdp, Server};
use pdp_proto::v1 as pb;

fn pdp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("run pdp")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const ALLOW_ALL_READS: &str = r#"{"Version": "2012-10-17", "Statement": {
    "Sid": "Read", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}}"#;

async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..100 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn status(server: &Server) -> pb::StatusResponse {
    let c = common::channel(server).await;
    pb::admin_service_client::AdminServiceClient::new(c)
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Reloads tried (accepted and rejected), from `/metrics`.
fn reloads_tried(server: &Server) -> f64 {
    metric(server, "pdp_policy_reloads_total{result=\"accepted\"}")
        + metric(server, "pdp_policy_reloads_total{result=\"rejected\"}")
}

#[test]
fn deeply_nested_documents_are_refused_quickly_in_both_formats() {
    let n = 40_000;
    for (name, doc) in [
        (
            "deep.yaml",
            format!(
                "Version: \"2012-10-17\"\nStatement: {}{}\n",
                "[".repeat(n),
                "]".repeat(n)
            ),
        ),
        (
            "deep.json",
            format!(
                "{{\"Version\": \"2012-10-17\", \"Statement\": {}{}}}",
                "[".repeat(n),
                "]".repeat(n)
            ),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), doc).unwrap();
        let started = Instant::now();
        let o = pdp(&["policy", "validate", dir.path().to_str().unwrap()]);
        let took = started.elapsed();
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains(name) && out.contains("nested deeper than 64"),
            "{name}: {out}"
        );
        // A correctness guard, not a benchmark: the old YAML path took seconds.
        assert!(took < Duration::from_secs(2), "{name}: took {took:?}");
    }
}

#[cfg(unix)]
#[test]
fn a_link_out_of_the_policy_directory_is_refused_without_echoing_its_target() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("read.json"), ALLOW_ALL_READS).unwrap();
    // A link inside the directory to a file inside it is read.
    std::os::unix::fs::symlink(
        dir.path().join("read.json"),
        dir.path().join("also-read.json"),
    )
    .unwrap();
    let o = pdp(&["policy", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("2 polic"), "{}", text(&o));

    std::os::unix::fs::symlink("/proc/self/status", dir.path().join("status.yaml")).unwrap();
    let o = pdp(&["policy", "validate", dir.path().to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("status.yaml") && out.contains("outside the policy directory"),
        "{out}"
    );
    for secret in ["VmPeak", "Uid", "Name", "/proc"] {
        assert!(!out.contains(secret), "`{secret}` echoed: {out}");
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_reload_through_a_link_out_of_the_directory_keeps_the_set_and_tells_nothing_of_it() {
    let dir = copy_policies();
    let server = start_pdp(["--policies", dir.path().to_str().unwrap()], &[]);
    let before = status(&server).await;
    std::os::unix::fs::symlink("/proc/self/status", dir.path().join("status.yaml")).unwrap();
    let rejected = eventually(async || status(&server).await.rejected_reloads >= 1).await;
    let after = status(&server).await;
    assert!(rejected, "{after:?}");
    assert_eq!(after.revision, before.revision);
    let problems = after.last_reload.unwrap().problems.join("\n");
    assert!(
        problems.contains("outside the policy directory"),
        "{problems}"
    );
    let log = server.stop();
    for secret in ["VmPeak", "Uid:", "/proc/self"] {
        assert!(!problems.contains(secret), "`{secret}` echoed: {problems}");
        assert!(!log.contains(secret), "`{secret}` logged: {log}");
    }
}

#[test]
fn an_empty_policy_directory_is_refused_at_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http-listen",
        "127.0.0.1:0",
        "--policies",
        dir.path().to_str().unwrap(),
    ];
    let o = pdp(&args);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("no policy statements") && text(&o).contains("--allow-empty-policies"),
        "{}",
        text(&o)
    );
    // Allowed: it serves (and denies everything).
    let server = start_pdp(
        [
            "--policies",
            dir.path().to_str().unwrap(),
            "--allow-empty-policies",
        ],
        &[],
    );
    assert!(
        server.banner.starts_with("pdp: serving"),
        "{}",
        server.banner
    );
}

#[tokio::test]
async fn a_reload_to_an_empty_directory_keeps_the_serving_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("read.json"), ALLOW_ALL_READS).unwrap();
    let server = start_pdp(["--policies", dir.path().to_str().unwrap()], &[]);
    let before = status(&server).await;
    assert_eq!(before.statements, 1);
    std::fs::remove_file(dir.path().join("read.json")).unwrap();
    let rejected = eventually(async || status(&server).await.rejected_reloads >= 1).await;
    let after = status(&server).await;
    assert!(rejected, "{after:?}");
    assert_eq!(after.revision, before.revision);
    assert_eq!(after.statements, 1);
    assert!(
        after.last_reload.as_ref().unwrap().problems[0].contains("no policy statements"),
        "{after:?}"
    );

    // With the flag, the empty set is what the directory says.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("read.json"), ALLOW_ALL_READS).unwrap();
    let server = start_pdp(
        [
            "--policies",
            dir.path().to_str().unwrap(),
            "--allow-empty-policies",
            "true",
        ],
        &[],
    );
    // The watch begins once the server answers.
    assert_eq!(status(&server).await.statements, 1);
    std::fs::remove_file(dir.path().join("read.json")).unwrap();
    let emptied = eventually(async || status(&server).await.statements == 0).await;
    assert!(emptied, "{:?}", status(&server).await);
}

#[tokio::test]
async fn reading_or_rewriting_policy_files_unchanged_does_not_reload() {
    let dir = copy_policies();
    let server = start_pdp(["--policies", dir.path().to_str().unwrap()], &[]);
    // The watch begins once the server answers.
    let revision = status(&server).await.revision;
    let start = reloads_tried(&server);
    let path = dir.path().join("app-data.json");
    let same = std::fs::read(&path).unwrap();
    std::fs::read_to_string(dir.path().join("bindings.yaml")).unwrap();
    std::fs::write(&path, &same).unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let tried = reloads_tried(&server) - start;
    assert!(
        tried <= 1.0,
        "{tried} reloads after a read and a no-op rewrite"
    );

    // A real change is still picked up.
    let changed =
        String::from_utf8(same)
            .unwrap()
            .replacen("\"s3:GetObject\"", "\"s3:GetObjectVersion\"", 1);
    std::fs::write(&path, changed).unwrap();
    let picked = eventually(async || status(&server).await.revision != revision).await;
    assert!(
        picked,
        "the change was not picked up: {:?}",
        server.log.lock().unwrap()
    );
}

#[test]
fn a_resource_policy_grant_to_a_role_stays_inside_its_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "bucket.json",
            r#"{"Version": "2012-10-17", "Statement": [
              {"Sid": "ToRole", "Effect": "Allow", "Principal": {"PDP": ["role:Analyst"]},
               "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "arn:aws:s3:::reports/*"},
              {"Sid": "ToUser", "Effect": "Allow", "Principal": {"PDP": ["user:carol"]},
               "Action": "s3:PutObject", "Resource": "arn:aws:s3:::reports/*"}]}"#,
        ),
        ("analyst-boundary.json", ALLOW_ALL_READS),
        (
            "bindings.yaml",
            "roles:\n  Analyst: { boundary: analyst-boundary }\nresources:\n  - match: \"arn:aws:s3:::reports/*\"\n    policies: [bucket]\n",
        ),
    ];
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let requests = tempfile::tempdir().unwrap();
    let eval = |who: &str, action: &str| {
        let request = requests.path().join("request.json");
        std::fs::write(
            &request,
            serde_json::json!({
                "subject": {"id": who, "roles": ["Analyst"]},
                "action": action,
                "resource": {"id": "arn:aws:s3:::reports/q1.csv"},
            })
            .to_string(),
        )
        .unwrap();
        let o = pdp(&[
            "eval",
            "--policies",
            dir.path().to_str().unwrap(),
            request.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    // Inside the boundary: allowed, the boundary's Allow among the determining statements.
    let read = eval("bob", "s3:GetObject");
    assert_eq!(read["decision"], "allow", "{read}");
    assert!(read["determining"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["policy"] == "analyst-boundary"));
    // Outside it: the grant to the role does not count.
    let write = eval("bob", "s3:PutObject");
    assert_eq!(write["decision"], "deny", "{write}");
    assert_eq!(write["reason"], "implicit_deny", "{write}");
    // A grant to the user is not limited by the role's boundary.
    let carol = eval("carol", "s3:PutObject");
    assert_eq!(carol["decision"], "allow", "{carol}");
}
