//! What `pdp serve` shows about itself: Prometheus metrics on the HTTP port, health and
//! readiness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use pdp_proto::v1 as pb;

mod common;

use common::{channel, fixture, metric, readme_request, rs256_token, start_pdp, stop_gracefully};

#[tokio::test]
async fn metrics_count_decisions_caches_tokens_signals_and_watchers() {
    let server = start_pdp(["--jwks", &fixture("jwks.json")], &[]);
    let c = channel(&server).await;
    let mut authz = pb::authorization_service_client::AuthorizationServiceClient::new(c.clone());
    for _ in 0..2 {
        let r = authz.check(readme_request(Some(true))).await.unwrap();
        assert_eq!(r.into_inner().decision(), pb::Decision::Allow);
    }
    authz.check(readme_request(Some(false))).await.unwrap();
    let mut bad_token = readme_request(Some(true));
    bad_token.subject.as_mut().unwrap().token = "not.a.jwt".into();
    let r = authz.check(bad_token).await.unwrap().into_inner();
    assert_eq!(r.reason(), pb::Reason::InvalidIdentity);

    let mut signals = pb::signal_service_client::SignalServiceClient::new(c.clone());
    signals
        .publish(pb::PublishRequest {
            signals: vec![pb::Signal {
                r#type: pb::SignalType::CredentialChange as i32,
                subject: "carol".into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    let _watch = signals
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();

    let m = |prefix: &str| metric(&server, prefix);
    assert_eq!(
        m(r#"pdp_decisions_total{decision="allow",reason="allowed",api="check"}"#),
        2.0
    );
    assert_eq!(
        m(r#"pdp_decisions_total{decision="deny",reason="explicit_deny",api="check"}"#),
        1.0
    );
    assert_eq!(
        m(r#"pdp_decisions_total{decision="deny",reason="invalid_identity",api="check"}"#),
        1.0
    );
    assert_eq!(m("pdp_check_duration_seconds_count"), 4.0);
    assert_eq!(
        m(r#"pdp_cache_lookups_total{cache="decision",result="hit"}"#),
        1.0
    );
    assert_eq!(
        m(r#"pdp_cache_lookups_total{cache="decision",result="miss"}"#),
        2.0
    );
    assert!(m(r#"pdp_token_verification_failures_total{kind="#) >= 1.0);
    assert_eq!(
        m(r#"pdp_signals_received_total{type="credential-change",source="publish"}"#),
        1.0
    );
    assert_eq!(m("pdp_watch_subscribers"), 1.0);
    assert!(m("pdp_policy_statements") > 10.0);
    assert_eq!(m("pdp_policy_revision_info{revision="), 1.0);
    assert_eq!(m("pdp_signals_stale"), 0.0);

    for path in ["/healthz", "/readyz"] {
        let (code, body) = common::http(&server.http, "GET", path, &[], "");
        assert_eq!(code, 200, "{path}: {body}");
    }
}

fn pdp(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test]
async fn every_decision_is_logged_in_a_chain_that_verifies_and_shows_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let server = start_pdp(
        [
            "--jwks",
            &fixture("jwks.json"),
            "--decision-log",
            log.to_str().unwrap(),
            "--decision-log-key",
            &fixture("ed25519.pem"),
        ],
        &[],
    );
    let c = channel(&server).await;
    let mut authz = pb::authorization_service_client::AuthorizationServiceClient::new(c.clone());
    let mut tagged = readme_request(Some(true));
    tagged.request_id = "req-7".into();
    let allowed = authz.check(tagged).await.unwrap().into_inner();
    let token = rs256_token(
        serde_json::json!({ "sub": "tina", "roles": ["ApplicationRole"], "amr": ["mfa"] }),
    );
    let mut with_token = readme_request(None);
    with_token.subject = Some(pb::Subject {
        token: token.clone(),
        ..Default::default()
    });
    let verified = authz.check(with_token).await.unwrap().into_inner();
    let batch = authz
        .check_batch(pb::CheckBatchRequest {
            subject: readme_request(Some(true)).subject,
            action: "s3:GetObject".into(),
            items: vec![pb::CheckBatchItem::default(); 3],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.responses.len(), 3);
    // A graceful stop waits for connections to close.
    drop((authz, c));
    stop_gracefully(server).await;

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&token), "the token is never logged");
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 5, "{text}");
    assert_eq!(records[0]["decision_id"], allowed.decision_id.as_str());
    assert_eq!(records[0]["subject"], "alice");
    assert_eq!(records[0]["decision"], "allow");
    assert_eq!(records[0]["api"], "check");
    assert_eq!(records[0]["request_id"], "req-7", "the caller's request id");
    assert!(
        records[1].get("request_id").is_none(),
        "no request id, no field: {}",
        records[1]
    );
    assert!(records[0]["caller"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(records[1]["decision_id"], verified.decision_id.as_str());
    assert_eq!(records[1]["subject"], "tina", "the verified subject");
    assert_eq!(records[4]["api"], "check_batch");
    assert!(text
        .trim_end()
        .lines()
        .last()
        .unwrap()
        .starts_with("{\"checkpoint\""));

    let public = dir.path().join("pub.pem");
    let out = pdp(&["audit", "public-key", &fixture("ed25519.pem")]);
    assert!(out.status.success());
    std::fs::write(&public, &out.stdout).unwrap();
    let verify = |file: &std::path::Path| {
        pdp(&[
            "audit",
            "verify",
            "--key",
            public.to_str().unwrap(),
            file.to_str().unwrap(),
        ])
    };
    let ok = verify(&log);
    let said = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{said}");
    assert!(said.contains("intact: 5 records"), "{said}");

    let edited = dir.path().join("edited.jsonl");
    std::fs::write(&edited, text.replacen("\"tina\"", "\"tino\"", 1)).unwrap();
    let bad = verify(&edited);
    let said = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{said}");
    assert!(said.contains("edited.jsonl:2:"), "{said}");
}

#[tokio::test]
async fn a_log_that_cannot_keep_up_denies_when_told_to_fail_closed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pdp.toml");
    std::fs::write(
        &config,
        format!(
            "max_batch_items = 5000\n[decision_cache]\nenabled = false\n[decision_log]\npath = \"{}\"\nqueue = 1\noverflow = \"deny\"\n",
            dir.path().join("d.jsonl").display()
        ),
    )
    .unwrap();
    let server = start_pdp(["--config", config.to_str().unwrap()], &[]);
    let c = channel(&server).await;
    let mut authz = pb::authorization_service_client::AuthorizationServiceClient::new(c);
    let base = readme_request(Some(true));
    let mut refused = 0;
    for _ in 0..10 {
        let batch = authz
            .check_batch(common::data_batch(&base, 5000))
            .await
            .unwrap()
            .into_inner();
        refused = batch
            .responses
            .iter()
            .filter(|r| r.reason() == pb::Reason::AuditUnavailable)
            .inspect(|r| assert_eq!(r.decision(), pb::Decision::Deny))
            .count();
        if refused > 0 {
            break;
        }
    }
    assert!(refused > 0, "a queue of one never overflowed");
    assert!(metric(&server, "pdp_decision_log_refused_total") >= refused as f64);
}

/// `pdp serve --config` with a signed decision log at `DIR/decisions.jsonl` (`extra`: more
/// `[decision_log]` settings).
fn start_logging(dir: &std::path::Path, extra: &str) -> common::Server {
    let config = dir.join("pdp.toml");
    std::fs::write(
        &config,
        format!(
            "max_batch_items = 5000\n[decision_log]\npath = \"{}\"\nsigning_key = \"{}\"\n{extra}\n",
            dir.join("decisions.jsonl").display(),
            fixture("ed25519.pem"),
        ),
    )
    .unwrap();
    start_pdp(["--config", config.to_str().unwrap()], &[])
}

/// Decides a batch of `n` items (`n` records).
async fn decide(server: &common::Server, n: usize) {
    let c = channel(server).await;
    let mut authz = pb::authorization_service_client::AuthorizationServiceClient::new(c);
    let base = readme_request(Some(true));
    let batch = authz
        .check_batch(common::data_batch(&base, n))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.responses.len(), n);
}

/// `pdp audit verify --key PUB [ARGS] FILES`: exit code and stdout and stderr.
fn audit_verify(args: &[&str], files: &[&std::path::Path]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("pub.pem");
    let out = pdp(&["audit", "public-key", &fixture("ed25519.pem")]);
    assert!(out.status.success());
    std::fs::write(&public, &out.stdout).unwrap();
    let mut all = vec!["audit", "verify", "--key", public.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = pdp(&all);
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn log_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn save_lines(path: &std::path::Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn records_removed_at_the_head_or_a_log_cut_back_to_a_checkpoint_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let server = start_logging(dir.path(), "checkpoint_every = 5");
    decide(&server, 15).await;
    // The latest checkpoint is published outside the log as it is written.
    let mut published = 0.0;
    for _ in 0..100 {
        published = metric(&server, "pdp_decision_log_checkpoint_seq");
        if published >= 15.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(published, 15.0);
    stop_gracefully(server).await;
    let head = dir.path().join("decisions.jsonl.head");
    let attested: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&head).unwrap()).unwrap();
    assert_eq!(attested["checkpoint"]["seq"], 15);
    let head_arg = ["--head", head.to_str().unwrap()];

    let (code, said) = audit_verify(&head_arg, &[&log]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("intact: 15 records (seq 1..15), 3 checkpoints"),
        "{said}"
    );
    assert!(
        said.contains("decisions.jsonl.head` holds (record 15)"),
        "{said}"
    );

    // Lines: records 1-5, checkpoint, records 6-10, checkpoint, records 11-15, checkpoint.
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 18);
    assert!(lines[17].starts_with("{\"checkpoint\""));
    let cut = dir.path().join("cut.jsonl");
    let found = |kept: &[String]| {
        save_lines(&cut, kept);
        audit_verify(&[], &[&cut])
    };
    let (code, said) = found(&lines[1..]);
    assert_eq!(code, Some(1), "the first record removed: {said}");
    assert!(
        said.contains("cut.jsonl:1: the log starts at record 2, not at record 1"),
        "{said}"
    );
    let (code, said) = found(&lines[14..]);
    assert_eq!(code, Some(1), "the first 14 lines removed: {said}");
    assert!(
        said.contains("cut.jsonl:1: the log starts at record 13"),
        "{said}"
    );
    let (code, said) = found(&lines[17..]);
    assert_eq!(code, Some(1), "only the last checkpoint left: {said}");
    assert!(
        said.contains("cut.jsonl:1: the log starts with a checkpoint of record 15"),
        "{said}"
    );

    // Cut back to the checkpoint of record 10: a valid log on its own, but not against the
    // checkpoint published outside it.
    let (code, said) = found(&lines[..12]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("intact: 10 records (seq 1..10)"), "{said}");
    let (code, said) = audit_verify(&head_arg, &[&cut]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("cut.jsonl:13: truncated: the log ends at record 10")
            && said.contains("attests record 15"),
        "{said}"
    );
    let (code, said) = audit_verify(&["--expect-seq", "15"], &[&cut]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("--expect-seq 15 attests record 15"), "{said}");
}

#[tokio::test]
async fn a_rotated_file_opens_with_the_signed_checkpoint_of_the_file_it_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let server = start_logging(dir.path(), "max_mib = 1");
    // About 600 bytes a record (1,778 to the MiB): past 1 MiB once.
    decide(&server, 2500).await;
    stop_gracefully(server).await;
    let mut rotated: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("decisions.jsonl.") && name[16..].bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    rotated.sort();
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    let old = &rotated[0];
    let old_name = old.file_name().unwrap().to_str().unwrap();
    let last_old: u64 = old_name[16..].parse().unwrap();

    let (code, said) = audit_verify(&[], &[old, &log]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("intact: 2500 records (seq 1..2500)"),
        "{said}"
    );
    // The current file alone: the range it covers, and the file it continues.
    let (code, said) = audit_verify(&[], &[&log]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "records (seq {}..2500), continuing `{old_name}` from its signed checkpoint of record {last_old}",
            last_old + 1
        )),
        "{said}"
    );
    let (code, said) = audit_verify(&["--head", &format!("{}.head", log.display())], &[&log]);
    assert_eq!(code, Some(0), "{said}");

    let lines = log_lines(&log);
    assert!(
        lines[0].contains(&format!("\"continues\":\"{old_name}\"")),
        "{}",
        lines[0]
    );
    let cut = dir.path().join("cut.jsonl");
    // Its first record removed, the opening checkpoint kept.
    save_lines(&cut, &[&lines[..1], &lines[2..]].concat());
    let (code, said) = audit_verify(&[], &[&cut]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains(&format!(
            "cut.jsonl:2: record {} follows record {last_old}",
            last_old + 2
        )),
        "{said}"
    );
    // The opening checkpoint removed too.
    save_lines(&cut, &lines[2..]);
    let (code, said) = audit_verify(&[], &[&cut]);
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("cut.jsonl:1: the log starts at record"),
        "{said}"
    );
    // Files out of order, or the rotated one with its last record removed.
    let (code, said) = audit_verify(&[], &[&log, old]);
    assert_eq!(code, Some(1), "{said}");
    let old_lines = log_lines(old);
    let n = old_lines.len();
    save_lines(&cut, &[&old_lines[..n - 2], &old_lines[n - 1..]].concat());
    let (code, said) = audit_verify(&[], &[&cut, &log]);
    assert_eq!(code, Some(1), "{said}");
}

#[tokio::test]
async fn a_restart_after_a_crash_cuts_the_partial_line_and_the_log_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let server = start_logging(dir.path(), "");
    decide(&server, 1).await;
    stop_gracefully(server).await;
    let (code, said) = audit_verify(&[], &[&log]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("intact: 1 record (seq 1..1), 1 checkpoint, the last at"),
        "{said}"
    );

    let server = start_logging(dir.path(), "");
    decide(&server, 2).await;
    // Records reach the file within 100 ms; then the process dies mid-write.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    server.stop();
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 4, "{lines:?}");
    let partial = &lines[3][..lines[3].len() / 2];
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(partial);
    std::fs::write(&log, &text).unwrap();

    let server = start_logging(dir.path(), "");
    decide(&server, 1).await;
    stop_gracefully(server).await;
    let kept = std::fs::read_to_string(dir.path().join("decisions.jsonl.partial")).unwrap();
    assert_eq!(kept, format!("{partial}\n"));
    let (code, said) = audit_verify(&[], &[&log]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(said.matches("warning:").count(), 1, "{said}");
    assert!(
        said.contains(&format!(
            "warning: {}:5: a partial line of {} bytes",
            log.display(),
            partial.len()
        )) && said.contains("decisions.jsonl.partial"),
        "{said}"
    );
    // Records 1-3, the note of the cut (4), the new record (5).
    assert!(said.contains("intact: 5 records (seq 1..5)"), "{said}");
    let note: serde_json::Value = serde_json::from_str(&log_lines(&log)[4]).unwrap();
    assert_eq!(note["recovered"]["line"], 5);

    // A later restart on the now clean log reports nothing new.
    let server = start_logging(dir.path(), "");
    decide(&server, 1).await;
    stop_gracefully(server).await;
    let (code, said) = audit_verify(&[], &[&log]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(said.matches("warning:").count(), 1, "{said}");
}
