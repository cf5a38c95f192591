//! Verifies decision logs: every record's hash, the chain of `prev` hashes and sequence
//! numbers across the files given (in order), every checkpoint against the chain and, with a
//! key, its Ed25519 signature; that the log starts at its beginning (record 1 after
//! [`GENESIS`], or the signed checkpoint that opens a rotated file); that the last file ends
//! with a checkpoint covering every record; and, given a checkpoint published outside the
//! log (`FILE.head`, or a sequence number), that the log still holds it. Reports the first
//! problem with its file and line, and every loss a crash left (noted by the writer).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::Verifier as _;

use super::{sha256_hex, Checkpoint, CheckpointLine, Recovered, GENESIS};

/// The largest `FILE.head` read.
const MAX_HEAD_BYTES: u64 = 64 * 1024;

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
    /// The file the first file continues (named by its opening checkpoint), if it continues
    /// one: the records before `first_seq` are in that file.
    pub continues: Option<String>,
    /// Records lost to a crash (a partial last line cut off at the next start), each as
    /// `FILE:LINE: what`.
    pub losses: Vec<String>,
    /// The published checkpoints found in the log (see [`Expected`]).
    pub expected: Vec<Expected>,
}

/// A checkpoint published outside the log, which the log must still hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The record it attests.
    pub seq: u64,
    /// That record's hash, when known (from `FILE.head`).
    pub head: Option<String>,
    /// Where it was published (for messages).
    pub source: String,
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
    /// What was asked cannot be checked with the files given.
    #[error("{0}")]
    Incomplete(String),
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
    /// The hash the next record must name as `prev`.
    prev: String,
    next_seq: u64,
    /// The last record seen.
    last_seq: u64,
    /// Where the log starts: record 0 (the genesis) or the checkpoint a rotated file opens
    /// with.
    start: (u64, String),
    /// Whether any line was read.
    started: bool,
    uncovered: u64,
    last_checkpoint_at: Option<(String, usize)>,
    expected: Vec<Expected>,
    report: Report,
}

/// Verifies `files`, in order, as one log; `key` checks checkpoint signatures.
pub fn verify(
    files: &[PathBuf],
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<Report, VerifyError> {
    verify_expecting(files, key, &[])
}

/// [`verify`], and checks that the log holds each `expected` checkpoint: a log cut back to
/// an earlier checkpoint is valid on its own, and shows only against a checkpoint published
/// outside it.
pub fn verify_expecting(
    files: &[PathBuf],
    key: Option<&ed25519_dalek::VerifyingKey>,
    expected: &[Expected],
) -> Result<Report, VerifyError> {
    let mut chain = Chain {
        prev: GENESIS.to_owned(),
        next_seq: 1,
        last_seq: 0,
        start: (0, GENESIS.to_owned()),
        started: false,
        uncovered: 0,
        last_checkpoint_at: None,
        expected: expected.to_vec(),
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
    for e in &chain.expected {
        let (start_seq, start_head) = &chain.start;
        if e.seq < *start_seq {
            return Err(VerifyError::Incomplete(format!(
                "{} attests record {}, before the first file given (which continues from record {start_seq}): verify from the file that holds record {}",
                e.source, e.seq, e.seq
            )));
        }
        if e.seq > chain.last_seq {
            return Err(Tampered {
                file: last_file.0,
                line: last_file.1 + 1,
                message: format!(
                    "truncated: the log ends at record {}, but {} attests record {}: records {}..{} (at least) were cut off, back to an earlier checkpoint",
                    chain.last_seq,
                    e.source,
                    e.seq,
                    chain.last_seq + 1,
                    e.seq
                ),
            }
            .into());
        }
        if e.seq == *start_seq && e.head.as_ref().is_some_and(|h| h != start_head) {
            return Err(VerifyError::Incomplete(format!(
                "{} attests record {} with another hash than the checkpoint the first file starts from: not this log, or this log was rewritten",
                e.source, e.seq
            )));
        }
    }
    chain.report.last_seq = chain.last_seq;
    chain.report.expected = chain.expected;
    Ok(chain.report)
}

/// Reads a checkpoint published in `FILE.head` (its signature checked with `key`).
pub fn read_head(
    path: &Path,
    key: Option<&ed25519_dalek::VerifyingKey>,
) -> Result<Expected, VerifyError> {
    use std::io::Read as _;
    let shown = path.display().to_string();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_HEAD_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| VerifyError::Io(shown.clone(), e))?;
    let tampered = |message: String| Tampered {
        file: shown.clone(),
        line: 1,
        message,
    };
    if text.len() as u64 > MAX_HEAD_BYTES {
        return Err(tampered(format!(
            "larger than {MAX_HEAD_BYTES} bytes: not a checkpoint"
        ))
        .into());
    }
    let c: CheckpointLine = serde_json::from_str(text.trim_end())
        .map_err(|e| tampered(format!("not a checkpoint line: {e}")))?;
    if let Some(key) = key {
        check_signature(&c, key).map_err(tampered)?;
    }
    Ok(Expected {
        seq: c.checkpoint.seq,
        head: Some(c.checkpoint.head),
        source: format!("the published head `{shown}`"),
    })
}

/// Checks a checkpoint's signature; the problem otherwise.
fn check_signature(c: &CheckpointLine, key: &ed25519_dalek::VerifyingKey) -> Result<(), String> {
    let sig = c
        .signature
        .as_deref()
        .ok_or_else(|| "the checkpoint is not signed".to_owned())?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .ok()
        .and_then(|b| ed25519_dalek::Signature::from_slice(&b).ok())
        .ok_or_else(|| "the checkpoint's signature is malformed".to_owned())?;
    key.verify(&c.checkpoint.signed_bytes(), &sig).map_err(|_| {
        "the checkpoint's signature does not verify with this key (edited, or signed by another key)".to_owned()
    })
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
        // Whether this is the log's first line (the first of the first file).
        let first = !chain.started;
        chain.started = true;
        let Ok(line) = String::from_utf8(bytes) else {
            return Err(tampered(n, "not UTF-8: the line was edited".into()).into());
        };
        if line.starts_with("{\"checkpoint\":") {
            let c: CheckpointLine = serde_json::from_str(&line)
                .map_err(|e| tampered(n, format!("an unreadable checkpoint (edited?): {e}")))?;
            if let Some(key) = key {
                check_signature(&c, key).map_err(|m| tampered(n, m))?;
            }
            let Checkpoint {
                head,
                seq,
                time,
                continues,
            } = c.checkpoint;
            match continues {
                Some(_) if n != 1 => {
                    return Err(tampered(
                        n,
                        format!("the checkpoint that opens a file continuing another (record {seq}) is not on the file's first line: lines were moved or inserted"),
                    )
                    .into());
                }
                Some(name) if first => {
                    // The log given starts in a file started by rotation.
                    chain.prev.clone_from(&head);
                    chain.last_seq = seq;
                    chain.next_seq = seq + 1;
                    chain.start = (seq, head.clone());
                    chain.report.first_seq = seq + 1;
                    chain.report.continues = Some(name);
                }
                _ => {}
            }
            if seq != chain.last_seq || head != chain.prev {
                let message = if first {
                    format!(
                        "the log starts with a checkpoint of record {seq} that does not open a rotated file: the records before it were removed (a log starts with record 1, or with the signed checkpoint that continues a rotated file)"
                    )
                } else {
                    format!(
                        "the checkpoint attests record {seq} with hash {head}, but the chain's head is record {} with hash {}: records before it were removed, reordered or edited",
                        chain.last_seq, chain.prev
                    )
                };
                return Err(tampered(n, message).into());
            }
            chain.uncovered = 0;
            chain.report.checkpoints += 1;
            chain.report.last_checkpoint = time;
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
        let expected_seq = chain.next_seq;
        if seq != expected_seq {
            let message = if first {
                format!(
                    "the log starts at record {seq}, not at record 1: records 1..{} were removed from its head (a log starts with record 1, whose `prev` is the genesis value, or with the signed checkpoint that continues a rotated file)",
                    seq.saturating_sub(1)
                )
            } else if seq > expected_seq {
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
            };
            return Err(tampered(n, message).into());
        }
        if prev != chain.prev {
            let message = if first {
                format!("record {seq} starts the log but its `prev` is not the genesis value: the records before it were removed or replaced")
            } else {
                format!("record {seq} does not follow the record before it (its `prev` is not that record's hash): records were removed, reordered or replaced")
            };
            return Err(tampered(n, message).into());
        }
        if let Some(e) = chain
            .expected
            .iter()
            .find(|e| e.seq == seq && e.head.as_ref().is_some_and(|h| h != hash))
        {
            return Err(tampered(
                n,
                format!(
                    "record {seq} is not the record {} attests (another hash): the log was rewritten from here",
                    e.source
                ),
            )
            .into());
        }
        if let Some(r) = v
            .get("recovered")
            .and_then(|r| serde_json::from_value::<Recovered>(r.clone()).ok())
        {
            chain.report.losses.push(format!(
                "{shown}:{n}: a partial line of {} bytes (a write cut off by a crash) was cut off here when the PDP restarted; it is kept in `{}` (SHA-256 {})",
                r.bytes, r.partial, r.sha256
            ));
        }
        if chain.report.records == 0 {
            chain.report.first_seq = seq;
        }
        chain.report.records += 1;
        hash.clone_into(&mut chain.prev);
        chain.next_seq = seq + 1;
        chain.last_seq = seq;
        chain.uncovered += 1;
    }
    Ok(n)
}
