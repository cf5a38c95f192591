//! Verifies decision logs: every record's hash, the chain of `prev` hashes and sequence
//! numbers across the files given (in order), every checkpoint against the chain and, with a
//! key, its Ed25519 signature; and that the last file ends with a checkpoint covering every
//! record. Reports the first problem with its file and line.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::Verifier as _;

use super::{sha256_hex, CheckpointLine, GENESIS};

/// A verified log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Records checked.
    pub records: u64,
    /// Checkpoints checked.
    pub checkpoints: u64,
    /// The first and last sequence numbers.
    pub first_seq: u64,
    /// The last sequence number.
    pub last_seq: u64,
    /// The last checkpoint's time.
    pub last_checkpoint: String,
    /// Whether signatures were checked.
    pub signatures_checked: bool,
}

/// Where a log stops being trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct Tampered {
    /// The file.
    pub file: String,
    /// The line (1-based; the line after the last for a truncated log).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Why verification could not run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A file cannot be read.
    #[error("cannot read `{0}`: {1}")]
    Io(String, std::io::Error),
    /// The log is not intact.
    #[error("{0}")]
    Tampered(#[from] Tampered),
}

const HASH_SUFFIX_LEN: usize = ",\"hash\":\"".len() + 64 + "\"}".len();

/// A record line's body (the line up to its hash, closed) and the hash it claims.
fn split_record(line: &str) -> Option<(String, &str)> {
    let cut = line.len().checked_sub(HASH_SUFFIX_LEN)?;
    let (body, suffix) = (line.get(..cut)?, line.get(cut..)?);
    let hash = suffix.strip_prefix(",\"hash\":\"")?.strip_suffix("\"}")?;
    if !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((format!("{body}}}"), hash))
}

/// The sequence number and hash of a record line (not checked).
pub fn record_seq_and_hash(line: &str) -> Option<(u64, String)> {
    let (body, hash) = split_record(line)?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some((v.get("seq")?.as_u64()?, hash.to_owned()))
}

struct Chain {
    /// The hash the next record must name as `prev`; `None` before the first record when the
    /// first file continues an older log.
    prev: Option<String>,
    next_seq: Option<u64>,
    /// The last record seen, and where.
    last_seq: u64,
    uncovered: u64,
    last_checkpoint_at: Option<(String, usize)>,
    report: Report,
}

/// Verifies `files`, in order, as one log; `key` checks checkpoint signatures.
pub fn verify(
    files: &[PathBuf],
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<Report, VerifyError> {
    let mut chain = Chain {
        prev: None,
        next_seq: None,
        last_seq: 0,
        uncovered: 0,
        last_checkpoint_at: None,
        report: Report {
            signatures_checked: key.is_some(),
            ..Report::default()
        },
    };
    let mut last_file = (String::new(), 0);
    for path in files {
        let lines = verify_file(path, key, &mut chain)?;
        last_file = (path.display().to_string(), lines);
    }
    if chain.uncovered > 0 || chain.last_checkpoint_at.is_none() {
        let after = chain.last_checkpoint_at.as_ref().map_or_else(
            || "no checkpoint at all".to_owned(),
            |(f, l)| format!("the last checkpoint ({f}:{l})"),
        );
        return Err(Tampered {
            file: last_file.0,
            line: last_file.1 + 1,
            message: format!(
                "truncated: {} record(s) after {after} are not covered by a checkpoint (the log was cut off, or its writer has not checkpointed them yet)",
                chain.uncovered
            ),
        }
        .into());
    }
    chain.report.last_seq = chain.last_seq;
    Ok(chain.report)
}

fn verify_file(
    path: &Path,
    key: Option<&ed25519_dalek::VerifyingKey>,
    chain: &mut Chain,
) -> Result<usize, VerifyError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| VerifyError::Io(shown.clone(), e))?;
    let mut n = 0;
    let tampered = |line: usize, message: String| Tampered {
        file: shown.clone(),
        line,
        message,
    };
    for line in std::io::BufReader::new(file).split(b'\n') {
        n += 1;
        let bytes = line.map_err(|e| VerifyError::Io(shown.clone(), e))?;
        let Ok(line) = String::from_utf8(bytes) else {
            return Err(tampered(n, "not UTF-8: the line was edited".into()).into());
        };
        if line.starts_with("{\"checkpoint\":") {
            let c: CheckpointLine = serde_json::from_str(&line)
                .map_err(|e| tampered(n, format!("an unreadable checkpoint (edited?): {e}")))?;
            if chain.prev.is_none() && chain.report.records == 0 && c.checkpoint.seq > 0 {
                // The first file continues an older log: start from what this checkpoint says.
                chain.prev = Some(c.checkpoint.head.clone());
                chain.last_seq = c.checkpoint.seq;
                chain.next_seq = Some(c.checkpoint.seq + 1);
            }
            let head = chain.prev.clone().unwrap_or_else(|| GENESIS.to_owned());
            if c.checkpoint.seq != chain.last_seq
                || (chain.prev.is_some() && c.checkpoint.head != head)
            {
                return Err(tampered(
                    n,
                    format!(
                        "the checkpoint attests record {} with hash {}, but the chain's head is record {} with hash {head}: records before it were removed, reordered or edited",
                        c.checkpoint.seq, c.checkpoint.head, chain.last_seq
                    ),
                )
                .into());
            }
            if let Some(key) = key {
                let sig = c
                    .signature
                    .as_deref()
                    .ok_or_else(|| tampered(n, "the checkpoint is not signed".into()))?;
                let sig = base64::engine::general_purpose::STANDARD
                    .decode(sig)
                    .ok()
                    .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
                    .ok_or_else(|| tampered(n, "the checkpoint's signature is malformed".into()))?;
                key.verify(&c.checkpoint.signed_bytes(), &sig).map_err(|_| {
                    tampered(
                        n,
                        "the checkpoint's signature does not verify with this key (edited, or signed by another key)".into(),
                    )
                })?;
            }
            chain.uncovered = 0;
            chain.report.checkpoints += 1;
            chain.report.last_checkpoint.clone_from(&c.checkpoint.time);
            chain.last_checkpoint_at = Some((shown.clone(), n));
            continue;
        }
        let Some((body, hash)) = split_record(&line) else {
            return Err(tampered(
                n,
                "neither a record nor a checkpoint: the line was edited".into(),
            )
            .into());
        };
        if sha256_hex(body.as_bytes()) != hash {
            return Err(tampered(
                n,
                "the record was edited: its hash does not match its content".into(),
            )
            .into());
        }
        let v: serde_json::Value = serde_json::from_str(&body)
            .map_err(|e| tampered(n, format!("the record is not JSON: {e}")))?;
        let (Some(seq), Some(prev)) = (
            v.get("seq").and_then(serde_json::Value::as_u64),
            v.get("prev").and_then(serde_json::Value::as_str),
        ) else {
            return Err(tampered(n, "the record has no `seq` or `prev`".into()).into());
        };
        let expected_seq = chain.next_seq.unwrap_or(seq);
        if seq != expected_seq {
            return Err(tampered(
                n,
                if seq > expected_seq {
                    format!(
                        "record {seq} follows record {}: record(s) {expected_seq}..{} were removed",
                        expected_seq - 1,
                        seq - 1
                    )
                } else {
                    format!(
                        "record {seq} appears after record {}: records were reordered or repeated",
                        expected_seq - 1
                    )
                },
            )
            .into());
        }
        let expected_prev = match &chain.prev {
            Some(p) => p.clone(),
            None if seq == 1 => GENESIS.to_owned(),
            None => prev.to_owned(),
        };
        if prev != expected_prev {
            return Err(tampered(
                n,
                format!("record {seq} does not follow the record before it (its `prev` is not that record's hash): records were removed, reordered or replaced"),
            )
            .into());
        }
        if chain.report.records == 0 {
            chain.report.first_seq = seq;
        }
        chain.report.records += 1;
        chain.prev = Some(hash.to_owned());
        chain.next_seq = Some(seq + 1);
        chain.last_seq = seq;
        chain.uncovered += 1;
    }
    Ok(n)
}
