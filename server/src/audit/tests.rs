//! The decision log end to end at the file level: written by the writer thread, verified,
//! then tampered with in each way an attacker could.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use ed25519_dalek::pkcs8::DecodePrivateKey;

use super::verify::{verify, VerifyError};
use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn public_key() -> ed25519_dalek::VerifyingKey {
    let pem = std::fs::read_to_string(fixture("ed25519.pem")).unwrap();
    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
        .unwrap()
        .verifying_key()
}

fn record(i: usize) -> Record {
    let mut r = Record::new(chrono::Utc::now(), "check");
    r.peer = Some(([127, 0, 0, 1], 1).into());
    r.allowed = i.is_multiple_of(2);
    r.reason = if i.is_multiple_of(2) {
        "allowed"
    } else {
        "implicit_deny"
    };
    r.latency_us = 7;
    r.set(Text::DecisionId, &format!("d-{i}"))
        .set(Text::Subject, &format!("user-{i}"))
        .set(Text::Action, "s3:GetObject")
        .set(Text::Resource, "arn:aws:s3:::b/k")
        .set(Text::Revision, "rev")
        .push_determining("app-data", "ReadData", 0);
    r
}

/// Writes `n` records (checkpoint every 4) and closes the log; returns its path.
fn write_log(dir: &Path, n: usize, configure: impl FnOnce(&mut AuditConfig)) -> PathBuf {
    let path = dir.join("decisions.jsonl");
    let mut config = AuditConfig::new(path.clone());
    config.checkpoint_every = 4;
    config.signing_key = Some(fixture("ed25519.pem"));
    configure(&mut config);
    let log = DecisionLog::open(config).unwrap();
    for i in 0..n {
        assert!(log.submit(record(i)));
    }
    log.close(Duration::from_secs(5));
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn save(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn tampered_at(path: &Path) -> (usize, String) {
    match verify(&[path.to_path_buf()], Some(&public_key())) {
        Err(VerifyError::Tampered(t)) => (t.line, t.message),
        other => panic!("expected tampering to be found, got {other:?}"),
    }
}

#[test]
fn an_intact_log_verifies_and_continues_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 10, |_| {});
    let report = verify(std::slice::from_ref(&path), Some(&public_key())).unwrap();
    assert_eq!(
        (report.records, report.first_seq, report.last_seq),
        (10, 1, 10)
    );
    // 4, 8, and the closing one.
    assert_eq!(report.checkpoints, 3);
    // A restarted PDP continues the same chain.
    write_log(dir.path(), 3, |_| {});
    let report = verify(std::slice::from_ref(&path), Some(&public_key())).unwrap();
    assert_eq!((report.records, report.last_seq), (13, 13));
    let first: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert_eq!(first["prev"], GENESIS);
    assert_eq!(first["subject"], "user-0");
    assert_eq!(first["determining"][0], "app-data#ReadData");
}

#[test]
fn an_edited_byte_is_found_on_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 10, |_| {});
    let mut l = lines(&path);
    l[6] = l[6].replacen("\"deny\"", "\"allow\"", 1);
    assert_ne!(l[6], lines(&path)[6], "the test edits something");
    save(&path, &l);
    let (line, message) = tampered_at(&path);
    assert_eq!(line, 7);
    assert!(message.contains("edited"), "{message}");
}

#[test]
fn a_removed_record_is_found_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 10, |_| {});
    let mut l = lines(&path);
    l.remove(2); // record 3
    save(&path, &l);
    let (line, message) = tampered_at(&path);
    assert_eq!(line, 3);
    assert!(message.contains("removed"), "{message}");
}

#[test]
fn swapped_records_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 10, |_| {});
    let mut l = lines(&path);
    l.swap(1, 2);
    save(&path, &l);
    let (line, _) = tampered_at(&path);
    assert_eq!(line, 2);
}

#[test]
fn truncation_after_a_checkpoint_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 10, |_| {});
    let l = lines(&path);
    // Lines: 4 records, checkpoint, 4 records, checkpoint, 2 records, checkpoint.
    assert!(l[4].starts_with("{\"checkpoint\""));
    save(&path, &l[..7]);
    let (line, message) = tampered_at(&path);
    assert_eq!(line, 8);
    assert!(
        message.contains("truncated") && message.contains(":5"),
        "{message}"
    );
}

#[test]
fn checkpoints_signed_by_another_key_or_edited_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 4, |_| {});
    let mut l = lines(&path);
    l[4] = l[4].replacen("\"time\":\"2", "\"time\":\"1", 1);
    save(&path, &l);
    let (line, message) = tampered_at(&path);
    assert_eq!(line, 5);
    assert!(message.contains("signature"), "{message}");
    // Without the key the chain is still checked, not the signatures.
    let report = verify(&[path], None).unwrap();
    assert!(!report.signatures_checked);
}

/// The files rotated out of `dir`'s `decisions.jsonl`, in order.
fn rotated(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.len() > 16 && name[16..].bytes().all(|b| b.is_ascii_digit())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn rotation_keeps_the_chain_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 30, |c| c.max_bytes = 2000);
    let mut files = rotated(dir.path());
    assert!(files.len() >= 2, "{files:?}");
    files.push(path);
    let report = verify(&files, Some(&public_key())).unwrap();
    assert_eq!(report.records, 30);
    // A rotated file missing from the middle breaks the chain.
    let mut gap = files.clone();
    gap.remove(1);
    assert!(verify(&gap, Some(&public_key())).is_err());
    // Each file after the first verifies alone, from the checkpoint it opens with.
    let report = verify(&files[1..], Some(&public_key())).unwrap();
    assert!(
        report.continues.is_some() && report.first_seq > 1,
        "{report:?}"
    );
}

#[test]
fn a_restart_on_a_file_holding_only_its_opening_checkpoint_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    // Every record rotates: the current file holds only the checkpoint that opens it.
    let path = write_log(dir.path(), 3, |c| c.max_bytes = 1);
    assert_eq!(lines(&path).len(), 1);
    write_log(dir.path(), 1, |c| c.max_bytes = 1 << 20);
    let mut files = rotated(dir.path());
    files.push(path.clone());
    let report = verify(&files, Some(&public_key())).unwrap();
    assert_eq!((report.records, report.last_seq), (4, 4));
    let report = verify(&[path], Some(&public_key())).unwrap();
    assert_eq!((report.first_seq, report.last_seq), (4, 4));
}

#[test]
fn fields_can_be_left_out_and_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_log(dir.path(), 2, |c| {
        c.fields = Some(vec!["subject".into(), "action".into()]);
        c.mask = vec!["subject".into()];
    });
    let first: serde_json::Value = serde_json::from_str(&lines(&path)[0]).unwrap();
    assert!(first["subject"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(first["action"], "s3:GetObject");
    assert!(first.get("resource").is_none() && first.get("caller").is_none());
    assert!(verify(&[path], Some(&public_key())).is_ok());
    let bad = AuditConfig {
        mask: vec!["password".into()],
        ..AuditConfig::new(dir.path().join("x"))
    };
    assert!(DecisionLog::open(bad).is_err());
}

#[test]
fn a_full_queue_refuses_records_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AuditConfig::new(dir.path().join("d.jsonl"));
    config.queue = 1;
    let log = DecisionLog::open(config).unwrap();
    let refused = (0..10_000).filter(|i| !log.submit(record(*i))).count();
    assert!(refused > 0, "a queue of one never filled");
    log.close(Duration::from_secs(5));
}

#[test]
fn strings_are_escaped_as_serde_json_escapes_them() {
    let mut samples: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
    samples.extend(
        [
            "",
            "plain",
            "a\"b\\c\u{7f}",
            "tab\there\nnewline\r\u{1}\u{1f}",
            "é ü 日本 🦀",
            "\u{2028}\u{2029}",
        ]
        .map(str::to_owned),
    );
    for s in samples {
        let mut ours = Vec::new();
        push_json_string(&mut ours, s.as_bytes());
        assert_eq!(
            String::from_utf8(ours).unwrap(),
            serde_json::to_string(&s).unwrap(),
            "{s:?}"
        );
    }
}

#[test]
fn every_field_is_written_in_order_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decisions.jsonl");
    let mut config = AuditConfig::new(path.clone());
    config.mask = vec!["caller".into()];
    let log = DecisionLog::open(config).unwrap();
    let time = chrono::DateTime::parse_from_rfc3339("2026-11-28T19:02:11.000042Z")
        .unwrap()
        .to_utc();
    let mut r = Record::new(time, "check_batch");
    r.peer = Some("[::1]:8443".parse().unwrap());
    r.allowed = false;
    r.reason = "explicit_deny";
    r.latency_us = 12_345;
    r.cached = true;
    let long = "r".repeat(300);
    r.set(Text::Resource, &long)
        .set(Text::DecisionId, "id-\"1\"")
        .set(Text::TraceId, "0af7651916cd43dd8448eb211c80319c")
        .set(Text::RequestId, "req-1")
        .set(Text::Caller, " spiffe://example.org/a")
        .set(Text::Subject, "ali\nce")
        .set(Text::Action, "s3:GetObject")
        .set(Text::Revision, "6261f2bbd36934cf")
        .push_determining("p", "Deny\\All", 3)
        .push_determining("q", "", 7)
        .push_obligation("o-1")
        .push_obligation("o-2");
    assert!(log.submit(r));
    log.close(Duration::from_secs(5));
    let line = lines(&path).into_iter().next().unwrap();
    let keys: Vec<&str> = line
        .split(",\"")
        .filter_map(|part| part.trim_start_matches("{\"").split_once("\":"))
        .map(|(key, _)| key)
        .filter(|key| !key.contains('"'))
        .collect();
    assert_eq!(
        keys,
        [
            "seq",
            "time",
            "decision_id",
            "trace_id",
            "request_id",
            "api",
            "caller",
            "subject",
            "action",
            "resource",
            "decision",
            "reason",
            "determining",
            "obligations",
            "revision",
            "latency_us",
            "cached",
            "prev",
            "hash"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let caller = sha256_hex(b"[::1]:8443 spiffe://example.org/a");
    assert_eq!(
        v,
        serde_json::json!({
            "seq": 1,
            "time": "2026-11-28T19:02:11.000042Z",
            "decision_id": "id-\"1\"",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "request_id": "req-1",
            "api": "check_batch",
            "caller": format!("sha256:{}", &caller[..16]),
            "subject": "ali\nce",
            "action": "s3:GetObject",
            "resource": long,
            "decision": "deny",
            "reason": "explicit_deny",
            "determining": ["p#Deny\\All", "q[7]"],
            "obligations": ["o-1", "o-2"],
            "revision": "6261f2bbd36934cf",
            "latency_us": 12_345,
            "cached": true,
            "prev": GENESIS,
            "hash": v["hash"].clone(),
        })
    );
    let body = line.replacen(
        &format!(",\"hash\":\"{}\"", v["hash"].as_str().unwrap()),
        "",
        1,
    );
    assert_eq!(v["hash"], sha256_hex(body.as_bytes()));
    assert!(verify(&[path], None).is_ok());
}

#[test]
fn serde_json_writes_the_same_line_as_the_writer() {
    let mut full = Record::new(chrono::Utc::now(), "check_batch");
    full.peer = Some("[::1]:8443".parse().unwrap());
    full.cached = true;
    full.reason = "explicit_deny";
    full.set(Text::DecisionId, "id-\"1\"")
        .set(Text::TraceId, "0af7651916cd43dd8448eb211c80319c")
        .set(Text::Caller, " spiffe://example.org/a")
        .set(Text::Subject, "ali\nce\u{1}é")
        .set(Text::Action, "s3:GetObject")
        .set(Text::Resource, &"r\\".repeat(200))
        .set(Text::Revision, "6261f2bbd36934cf")
        .push_determining("app", "", 3)
        .push_determining("app", "Deny\"All", 0)
        .push_obligation("step-up")
        .push_obligation("audit");
    let empty = Record::new(chrono::Utc::now(), "check");
    let configs = [
        AuditConfig::new("x".into()),
        AuditConfig {
            fields: Some(vec![
                "subject".into(),
                "determining".into(),
                "cached".into(),
            ]),
            mask: vec!["subject".into(), "determining".into()],
            ..AuditConfig::new("x".into())
        },
        AuditConfig {
            fields: Some(Vec::new()),
            ..AuditConfig::new("x".into())
        },
        AuditConfig {
            mask: FIELDS.iter().map(|f| (*f).to_owned()).collect(),
            ..AuditConfig::new("x".into())
        },
    ];
    for config in &configs {
        let mut format = BenchFormat::new(config);
        for (seq, r) in [record(1), record(2), full.clone(), empty.clone()]
            .iter()
            .enumerate()
        {
            let (mut hand, mut serde) = (Vec::new(), Vec::new());
            format.hand(seq as u64, GENESIS.as_bytes(), r, &mut hand);
            format.serde(seq as u64, GENESIS.as_bytes(), r, &mut serde);
            assert_eq!(
                String::from_utf8(serde).unwrap(),
                String::from_utf8(hand).unwrap(),
                "{:?}",
                config.fields
            );
        }
    }
}
