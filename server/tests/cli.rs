//! The `pdp` binary end to end: real processes over real policy directories.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn pdp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run pdp")
}

fn pdp_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pdp");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[test]
fn eval_allows_the_example_request_and_prints_one_json_object() {
    let o = pdp(&["eval", "examples/request.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["reason"], "allowed");
    assert!(v["determining"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["policy"] == "app-data" && s["effect"] == "Allow"));
    assert!(v["obligations"].as_array().unwrap().is_empty());
}

#[test]
fn eval_explicitly_denies_without_mfa() {
    let o = pdp(&[
        "eval",
        "--policies",
        "policies",
        "examples/request-denied.json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reason"], "explicit_deny");
    assert_eq!(v["determining"][0]["policy"], "require-mfa");
}

#[test]
fn eval_reads_stdin_and_reports_obligations() {
    let req = r#"{"subject":{"id":"oncall","roles":["EmergencyRole"]},"action":"ec2:DescribeInstances",
        "resource":{"id":"arn:aws:ec2:us-east-1:123456789012:instance/i-1"},
        "context":{"aws:MultiFactorAuthPresent":true,"aws:MultiFactorAuthAge":120,"aws:SourceIp":"10.0.0.5"}}"#;
    let o = pdp_stdin(&["eval", "-"], req);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["decision"], "allow");
    let mut ids: Vec<&str> = v["obligations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["audit-break-glass", "notify-security"]);
    assert_eq!(
        v["obligations"][0]["type"]
            .as_str()
            .map(|t| t == "notification" || t == "audit"),
        Some(true)
    );
}

#[test]
fn eval_now_flag_fixes_the_clock() {
    let dir = write_dir(&[
        (
            "p.json",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
            "Condition":{"DateLessThan":{"aws:CurrentTime":"2026-06-01T00:00:00Z"}}}}"#,
        ),
        ("bindings.yaml", "roles: { R: { policies: [p] } }"),
        (
            "req/req.json",
            r#"{"subject":{"id":"a","roles":["R"]},"action":"s3:GetObject","resource":{"id":"x"}}"#,
        ),
    ]);
    let d = dir.path().to_str().unwrap();
    let req = dir.path().join("req/req.json");
    let before = pdp(&[
        "eval",
        "--policies",
        d,
        "--now",
        "2026-05-31T23:59:59Z",
        req.to_str().unwrap(),
    ]);
    let after = pdp(&[
        "eval",
        "--policies",
        d,
        "--now",
        "2026-06-01T00:00:00Z",
        req.to_str().unwrap(),
    ]);
    assert!(
        stdout(&before).contains(r#""decision":"allow""#),
        "{}",
        stdout(&before)
    );
    assert!(
        stdout(&after).contains(r#""decision":"deny""#),
        "{}",
        stdout(&after)
    );
}

#[test]
fn eval_bad_request_exits_4_with_a_message() {
    let o = pdp_stdin(&["eval", "-"], r#"{"action": 5}"#);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("invalid"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let o = pdp(&["eval", "no/such/request.json"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("no/such/request.json"));
}

#[test]
fn eval_names_the_context_key_of_a_bad_value() {
    let req = r#"{"subject":{"id":"alice"},"action":"s3:GetObject",
        "resource":{"id":"arn:aws:s3:::b/k"},"context":{"aws:SourceIp":"10.0.0.1","a:b":{"x":1}}}"#;
    let o = pdp_stdin(&["eval", "-"], req);
    assert_eq!(o.status.code(), Some(4));
    let e = stderr(&o);
    assert!(e.contains("context key `a:b`: invalid type: map"), "{e}");
    assert_eq!(e.matches(" at line ").count(), 1, "{e}");
}

#[test]
fn serve_refuses_an_authzen_base_url_that_is_not_absolute() {
    for bad in ["/access", "ftp://pdp.test", "https://pdp.test/?a=1"] {
        let o = pdp(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--authzen-base-url",
            bad,
        ]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("`authzen_base_url`"), "{}", stderr(&o));
    }
}

#[test]
fn eval_with_a_broken_policy_set_exits_3() {
    let dir = write_dir(&[
        ("p.json", "{not json"),
        ("req.json", r#"{"action":"s3:GetObject"}"#),
    ]);
    let o = pdp(&[
        "eval",
        "--policies",
        dir.path().to_str().unwrap(),
        dir.path().join("req.json").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("invalid JSON"), "{}", stderr(&o));
}

#[test]
fn bad_command_line_exits_2() {
    assert_eq!(pdp(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn validate_reports_every_problem_with_its_location() {
    let dir = write_dir(&[
        ("a.json", r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Ok","Effect":"Allow","Action":"s3:GetObject","Resource":"*"},
            {"Sid":"BadNum","Effect":"Allow","Action":"s3:GetObject","Resource":"*","Condition":{"NumericLessThan":{"aws:MultiFactorAuthAge":"soon"}}},
            {"Effect":"Permit","Action":"s3GetObject","Resource":"*"}]}"#),
        ("b.yaml", "Version: '2012-10-17'\nStatement:\n  - Effect: Allow\n    Action: s3:GetObject\n    Resource: '*'\n    Condition: { StringEqualz: { a: b } }\n"),
        ("bindings.yaml", "roles:\n  R: { policies: [a, b, missing-policy] }\n"),
    ]);
    let o = pdp(&["policy", "validate", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("a.json: statement 1 (Sid `BadNum`): Condition.NumericLessThan.aws:MultiFactorAuthAge: `soon` is not a number"), "{out}");
    assert!(out.contains("a.json: statement 2: Effect:"), "{out}");
    assert!(
        out.contains("a.json: statement 2: Action: `s3GetObject` is not an action"),
        "{out}"
    );
    assert!(out.contains("b.yaml: statement 0: Condition.StringEqualz: unknown condition operator `StringEqualz`"), "{out}");
    assert!(
        out.contains("bindings.yaml: roles.R.policies: unknown policy `missing-policy`"),
        "{out}"
    );
}

#[test]
fn validate_accepts_the_example_set() {
    let o = pdp(&["policy", "validate", "policies"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).starts_with("ok: "));
}

#[test]
fn policy_test_passes_the_example_set() {
    let o = pdp(&["policy", "test", "policies"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let last = stdout(&o).lines().last().unwrap_or_default().to_owned();
    assert!(last.ends_with(" passed, 0 failed"), "{last}");
    assert!(!last.starts_with("0 passed"), "{last}");
}

#[test]
fn policy_test_reports_failures_and_exits_1() {
    let dir = write_dir(&[
        (
            "p.json",
            r#"{"Version":"2012-10-17","Statement":{"Sid":"Read","Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#,
        ),
        ("bindings.yaml", "roles: { R: { policies: [p] } }"),
        (
            "tests/t.yaml",
            r#"
cases:
  - name: read is allowed
    request: { subject: { id: a, roles: [R] }, action: s3:GetObject, resource: { id: x } }
    expect: { decision: allow, reason: allowed, determining: [{ policy: p, sid: Read }] }
  - name: wrongly expects write to be allowed
    request: { subject: { id: a, roles: [R] }, action: s3:PutObject, resource: { id: x } }
    expect: { decision: allow }
"#,
        ),
    ]);
    let o = pdp(&["policy", "test", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("FAIL"), "{out}");
    assert!(
        out.contains("wrongly expects write to be allowed: decision: expected Allow, got Deny"),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some("1 passed, 1 failed"));
}

#[test]
fn lint_flags_least_privilege_problems_and_passes_the_example_set() {
    let dir = write_dir(&[
        (
            "wide.json",
            r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Everything","Effect":"Allow","Action":"*","Resource":"*"},
            {"Sid":"AllS3","Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#,
        ),
        (
            "unused.json",
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}}"#,
        ),
        ("bindings.yaml", "roles: { R: { policies: [wide] } }"),
    ]);
    let o = pdp(&["policy", "lint", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("security_warning:")
            && out.contains("(Sid `Everything`)")
            && out.contains("[ALLOW_ALL_ACTIONS]"),
        "{out}"
    );
    assert!(
        out.contains("[ALLOW_SERVICE_WILDCARD]") && out.contains("[WRITE_ON_ALL_RESOURCES]"),
        "{out}"
    );
    assert!(
        out.contains("[UNUSED_POLICY]") && out.contains("fix:"),
        "{out}"
    );

    let json = pdp(&[
        "policy",
        "lint",
        "--format",
        "json",
        dir.path().to_str().unwrap(),
    ]);
    let findings: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert!(findings
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "ALLOW_ALL_ACTIONS"
            && f["severity"] == "security_warning"
            && f["statement"] == 0));

    let clean = pdp(&["policy", "lint", "policies"]);
    assert_eq!(clean.status.code(), Some(0), "{}", stdout(&clean));
    assert!(stdout(&clean).contains("0 error(s), 0 security warning(s)"));
}

#[test]
fn lint_reports_compile_errors_as_errors() {
    let dir = write_dir(&[(
        "p.json",
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject"}}"#,
    )]);
    let o = pdp(&["policy", "lint", dir.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("error:")
            && stdout(&o).contains("[INVALID_POLICY]")
            && stdout(&o).contains("missing `Resource`"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn the_readme_describes_the_example_set_as_it_is() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    // The case count README gives is the count `pdp policy test` runs.
    let o = pdp(&["policy", "test", "policies"]);
    let last = stdout(&o).lines().last().unwrap_or_default().to_owned();
    let passed = last.split(' ').next().unwrap_or_default();
    let claim = format!("`policies/tests/` holds {passed} cases");
    assert!(
        readme.contains(&claim),
        "README should say {claim:?} ({last})"
    );
    // Every policy document of the example set has a row in README's table.
    for entry in std::fs::read_dir(repo().join("policies")).unwrap() {
        let path = entry.unwrap().path();
        let (Some(stem), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let stem = stem.to_string_lossy();
        if stem == "bindings"
            || stem == "routes"
            || !["json", "yaml"].contains(&&*ext.to_string_lossy())
        {
            continue;
        }
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with('|') && l.contains(&format!("`{stem}`"))),
            "README's example-set table has no row for `{stem}`"
        );
    }
}

#[test]
fn plan_prints_which_resources_the_subject_may_act_on() {
    let dir = write_dir(&[
        (
            "home.yaml",
            r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "s3:GetObject"
    Resource: "arn:aws:s3:::b/${aws:username}/*"
  - Effect: Deny
    Action: "s3:*"
    Resource: "arn:aws:s3:::b/*/secret*"
"#,
        ),
        ("bindings.yaml", "roles: { R: { policies: [home] } }"),
    ]);
    let dir = dir.path().to_str().unwrap();
    let request = r#"{"subject": {"id": "alice", "roles": ["R"]}, "action": "s3:GetObject"}"#;
    let out = pdp_stdin(&["plan", "--policies", dir, "-"], request);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        plan,
        serde_json::json!({"plan": "conditional", "condition": {"and": [
            {"id_like": "arn:aws:s3:::b/alice/*"},
            {"not": {"id_like": "arn:aws:s3:::b/*/secret*"}},
        ]}})
    );
    let other = r#"{"subject": {"id": "alice", "roles": ["R"]}, "action": "s3:PutObject"}"#;
    let out = pdp_stdin(&["plan", "--policies", dir, "-"], other);
    assert_eq!(stdout(&out).trim(), r#"{"plan":"always_denied"}"#);
    // The resource is what a plan leaves open.
    let with_resource = r#"{"action": "s3:GetObject", "resource": {"id": "x"}}"#;
    let out = pdp_stdin(&["plan", "--policies", dir, "-"], with_resource);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("the resource is what the plan leaves open"),
        "{}",
        stderr(&out)
    );
}
