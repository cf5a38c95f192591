//! The decision log: every decision as one JSON line, written off the decision path by a
//! dedicated thread, in a tamper-evident file. Each record carries `prev`, the hash of the
//! record before it, and `hash`, the SHA-256 of its own line up to that field; at intervals
//! (and at shutdown and rotation) a checkpoint line signs the head of the chain with Ed25519.
//! [`verify`] checks a log and locates the first record that was edited, removed, reordered
//! or cut off.

pub mod verify;

#[cfg(test)]
mod tests;

use std::io::{BufRead, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The writer's buffer: records reach the file when it fills, and at least every
/// [`FLUSH_EVERY`].
const BUFFER_BYTES: usize = 256 * 1024;
/// How often the writer drains its queue.
const TICK: Duration = Duration::from_millis(5);
/// The longest a written record waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The `prev` of the first record of a log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Record fields that can be left out or masked (the others always appear).
pub const FIELDS: &[&str] = &[
    "trace_id",
    "api",
    "caller",
    "subject",
    "action",
    "resource",
    "determining",
    "obligations",
    "revision",
    "latency_us",
    "cached",
];

/// What to do when the writer cannot keep up (its queue is full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overflow {
    /// Drop the record and count it (`pdp_decision_log_dropped_total`).
    Drop,
    /// Deny the decision (`REASON_AUDIT_UNAVAILABLE`): nothing is allowed unlogged.
    Deny,
}

/// How the log is written.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// The log file (appended to; a log already there is continued).
    pub path: PathBuf,
    /// Records queued for the writer at most.
    pub queue: usize,
    /// When the queue is full.
    pub overflow: Overflow,
    /// A checkpoint after this many records…
    pub checkpoint_every: u64,
    /// …or this long after the first record it does not cover.
    pub checkpoint_interval: Duration,
    /// Rotate the file past this size (bytes).
    pub max_bytes: u64,
    /// Fields written (of [`FIELDS`]); `None`: all.
    pub fields: Option<Vec<String>>,
    /// Fields whose values are replaced by `sha256:` and the first 16 hex digits of their
    /// SHA-256 (pseudonymised: equal values stay equal).
    pub mask: Vec<String>,
    /// Signs checkpoints (PKCS#8 PEM Ed25519 private key); `None`: unsigned checkpoints.
    pub signing_key: Option<PathBuf>,
}

impl AuditConfig {
    /// Defaults for a log at `path`.
    pub fn new(path: PathBuf) -> Self {
        AuditConfig {
            path,
            queue: 8192,
            overflow: Overflow::Drop,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            max_bytes: 100 << 20,
            fields: None,
            mask: Vec::new(),
            signing_key: None,
        }
    }
}

/// One decision, as handed to the writer.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// When it was decided.
    pub time: chrono::DateTime<chrono::Utc>,
    /// The response's decision id.
    pub decision_id: String,
    /// The trace it belongs to (hex), if traced.
    pub trace_id: String,
    /// `check`, `check_batch`, ….
    pub api: &'static str,
    /// Who asked (peer address, and client certificate SAN when there is one).
    pub caller: String,
    /// Subject id.
    pub subject: String,
    /// Action.
    pub action: String,
    /// Resource id.
    pub resource: String,
    /// Allowed or not.
    pub allowed: bool,
    /// The reason (`allowed`, `explicit_deny`, …).
    pub reason: &'static str,
    /// Determining statements, `policy#sid` (or `policy[index]` without a Sid).
    pub determining: Vec<String>,
    /// Obligation ids.
    pub obligations: Vec<String>,
    /// Policy revision.
    pub revision: String,
    /// Time to decide, microseconds.
    pub latency_us: u64,
    /// Served from the decision cache.
    pub cached: bool,
}

/// A checkpoint: the chain's head at `seq`, signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The hash of record `seq`.
    pub head: String,
    /// The last record covered.
    pub seq: u64,
    /// When it was written (RFC 3339).
    pub time: String,
}

impl Checkpoint {
    /// The bytes that are signed (the checkpoint object as written, keys in order).
    pub fn signed_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The checkpoint line as written.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckpointLine {
    /// What is attested.
    pub checkpoint: Checkpoint,
    /// Ed25519 signature of [`Checkpoint::signed_bytes`], base64; absent when unsigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// The hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        for nibble in [b >> 4, b & 0xf] {
            out.push(char::from(
                *DIGITS.get(usize::from(nibble)).unwrap_or(&b'0'),
            ));
        }
    }
    out
}

// Records travel inline: boxing them would cost an allocation per decision.
#[allow(clippy::large_enum_variant)]
enum Message {
    Record(Record),
    Close(std::sync::mpsc::Sender<()>),
}

/// The decision log: a queue to the writer thread.
#[derive(Debug)]
pub struct DecisionLog {
    tx: SyncSender<Message>,
    overflow: Overflow,
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file or key cannot be read or written.
    #[error("`{path}`: {message}")]
    File {
        /// Which file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A configured field is not a record field.
    #[error("`{0}` is not a decision log field (one of {fields})", fields = FIELDS.join(", "))]
    UnknownField(String),
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> AuditError {
    AuditError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl DecisionLog {
    /// Opens (or continues) the log and starts its writer thread.
    pub fn open(config: AuditConfig) -> Result<DecisionLog, AuditError> {
        for f in config.fields.iter().flatten().chain(&config.mask) {
            if !FIELDS.contains(&f.as_str()) {
                return Err(AuditError::UnknownField(f.clone()));
            }
        }
        let key = match &config.signing_key {
            Some(path) => {
                let pem = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
                Some(
                    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                        file_error(
                            path,
                            format!("not an Ed25519 private key (PKCS#8 PEM): {e}"),
                        )
                    })?,
                )
            }
            None => None,
        };
        let (seq, head) = resume(&config.path)?;
        let file = open_append(&config.path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(config.queue.max(1));
        let overflow = config.overflow;
        let writer = Writer {
            size: file.metadata().map(|m| m.len()).unwrap_or(0),
            out: std::io::BufWriter::with_capacity(BUFFER_BYTES, file),
            seq,
            head,
            covered: seq,
            key,
            first_uncovered: None,
            checkpointed: false,
            scratch: Vec::with_capacity(1024),
            second: (0, String::new()),
            flushed: Instant::now(),
            config,
        };
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer.run(&rx))
            .map_err(|e| AuditError::File {
                path: String::new(),
                message: format!("cannot start the writer: {e}"),
            })?;
        Ok(DecisionLog { tx, overflow })
    }

    /// What happens when the queue is full.
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// Queues a record without waiting; false when the queue is full (the record is not
    /// written) or the writer has stopped.
    pub fn submit(&self, record: Record) -> bool {
        match self.tx.try_send(Message::Record(record)) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Writes what is queued, a final checkpoint, and waits for the file to be flushed (up
    /// to `timeout`).
    pub fn close(&self, timeout: Duration) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.tx.send(Message::Close(done)).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }
}

fn open_append(path: &Path) -> Result<std::fs::File, AuditError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| file_error(path, e))
}

/// The sequence number and hash of the last record of an existing log (0 and the genesis
/// hash for a new one).
fn resume(path: &Path) -> Result<(u64, String), AuditError> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, GENESIS.into())),
        Err(e) => return Err(file_error(path, e)),
    };
    let mut last = (0, GENESIS.to_owned());
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| file_error(path, e))?;
        if let Some((seq, hash)) = verify::record_seq_and_hash(&line) {
            last = (seq, hash);
        }
    }
    Ok(last)
}

struct Writer {
    out: std::io::BufWriter<std::fs::File>,
    size: u64,
    seq: u64,
    head: String,
    /// The last record a checkpoint covers.
    covered: u64,
    key: Option<ed25519_dalek::SigningKey>,
    first_uncovered: Option<Instant>,
    /// Whether this file already ends the chain so far with a checkpoint.
    checkpointed: bool,
    /// The line being built (reused).
    scratch: Vec<u8>,
    /// The current second, formatted.
    second: (i64, String),
    /// When the buffer was last flushed.
    flushed: Instant,
    config: AuditConfig,
}

impl Writer {
    /// Drains the queue every [`TICK`] rather than waking for each record: a writer woken
    /// per record would cost the decision path a thread wake-up (and, on a busy core, a
    /// context switch) per decision.
    fn run(mut self, rx: &Receiver<Message>) {
        loop {
            std::thread::sleep(TICK);
            loop {
                match rx.try_recv() {
                    Ok(Message::Record(r)) => self.record(&r),
                    Ok(Message::Close(done)) => {
                        self.checkpoint();
                        self.flush();
                        let _ = done.send(());
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.checkpoint();
                        self.flush();
                        return;
                    }
                }
            }
            if self
                .first_uncovered
                .is_some_and(|t| t.elapsed() >= self.config.checkpoint_interval)
            {
                self.checkpoint();
            }
            if !self.out.buffer().is_empty() && self.flushed.elapsed() >= FLUSH_EVERY {
                self.flush();
            }
        }
    }

    fn record(&mut self, r: &Record) {
        self.write(r);
        if self.seq - self.covered >= self.config.checkpoint_every {
            self.checkpoint();
        }
    }

    fn flush(&mut self) {
        self.flushed = Instant::now();
        if let Err(e) = self.out.flush() {
            tracing::error!("the decision log cannot be written: {e}");
        }
    }

    fn line(&mut self, line: &str) {
        if let Err(e) = self.out.write_all(line.as_bytes()) {
            tracing::error!("the decision log cannot be written: {e}");
        }
        self.size += line.len() as u64;
    }

    fn write(&mut self, r: &Record) {
        self.seq += 1;
        let mut line = std::mem::take(&mut self.scratch);
        line.clear();
        self.body(r, &mut line);
        let hash = sha256_hex(&line);
        line.pop();
        line.extend_from_slice(b",\"hash\":\"");
        line.extend_from_slice(hash.as_bytes());
        line.extend_from_slice(b"\"}\n");
        if let Err(e) = self.out.write_all(&line) {
            tracing::error!("the decision log cannot be written: {e}");
        }
        self.size += line.len() as u64;
        self.scratch = line;
        self.head = hash;
        self.first_uncovered.get_or_insert_with(Instant::now);
        crate::metrics::metrics().log_written.inc();
        if self.size >= self.config.max_bytes {
            self.rotate();
        }
    }

    fn shown(&self, name: &str) -> bool {
        self.config
            .fields
            .as_ref()
            .is_none_or(|f| f.iter().any(|x| x == name))
    }

    /// Appends `"name":"value"` (JSON-escaped, masked when configured) and a comma.
    fn string(&self, out: &mut Vec<u8>, name: &str, value: &str) {
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        self.value(out, name, value);
        out.push(b',');
    }

    fn value(&self, out: &mut Vec<u8>, name: &str, value: &str) {
        let written = if self.config.mask.iter().any(|m| m == name) {
            let digest = sha256_hex(value.as_bytes());
            serde_json::to_writer(
                &mut *out,
                &format!("sha256:{}", digest.get(..16).unwrap_or_default()),
            )
        } else {
            serde_json::to_writer(&mut *out, value)
        };
        if written.is_err() {
            out.extend_from_slice(b"\"\"");
        }
    }

    /// The record as one JSON object, fields in a fixed order, ending with `prev` (the hash
    /// is appended after it).
    fn body(&mut self, r: &Record, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // RFC 3339 with microseconds; the part up to the second is formatted once a second.
        let second = r.time.timestamp();
        if self.second.0 != second || self.second.1.is_empty() {
            self.second = (second, r.time.format("%Y-%m-%dT%H:%M:%S").to_string());
        }
        let prefix = &self.second.1;
        let _ = write!(
            out,
            "{{\"seq\":{},\"time\":\"{prefix}.{:06}Z\",",
            self.seq,
            r.time.timestamp_subsec_micros().min(999_999)
        );
        self.string(out, "decision_id", &r.decision_id);
        for (name, value) in [
            ("trace_id", r.trace_id.as_str()),
            ("api", r.api),
            ("caller", &r.caller),
            ("subject", &r.subject),
            ("action", &r.action),
            ("resource", &r.resource),
        ] {
            if self.shown(name) {
                self.string(out, name, value);
            }
        }
        let _ = write!(
            out,
            "\"decision\":\"{}\",\"reason\":\"{}\",",
            if r.allowed { "allow" } else { "deny" },
            r.reason
        );
        for (name, list) in [
            ("determining", &r.determining),
            ("obligations", &r.obligations),
        ] {
            if self.shown(name) {
                let _ = write!(out, "\"{name}\":[");
                for (i, v) in list.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    self.value(out, name, v);
                }
                out.extend_from_slice(b"],");
            }
        }
        if self.shown("revision") {
            self.string(out, "revision", &r.revision);
        }
        if self.shown("latency_us") {
            let _ = write!(out, "\"latency_us\":{},", r.latency_us);
        }
        if self.shown("cached") {
            let _ = write!(out, "\"cached\":{},", r.cached);
        }
        let _ = write!(out, "\"prev\":\"{}\"}}", self.head);
    }

    fn checkpoint(&mut self) {
        self.first_uncovered = None;
        if self.seq == self.covered && self.checkpointed {
            // Nothing new since the last checkpoint in this file.
            return;
        }
        self.checkpointed = true;
        let checkpoint = Checkpoint {
            head: self.head.clone(),
            seq: self.seq,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let signature = self.key.as_ref().map(|k| {
            base64::engine::general_purpose::STANDARD
                .encode(k.sign(&checkpoint.signed_bytes()).to_bytes())
        });
        let line = CheckpointLine {
            checkpoint,
            signature,
        };
        if let Ok(mut text) = serde_json::to_string(&line) {
            text.push('\n');
            self.line(&text);
        }
        self.covered = self.seq;
    }

    /// Closes the current file with a checkpoint, renames it `<name>.<last seq>`, and starts
    /// a new one that continues the chain.
    fn rotate(&mut self) {
        self.checkpoint();
        self.flush();
        let path = self.config.path.clone();
        let mut rotated = path.clone().into_os_string();
        rotated.push(format!(".{:020}", self.seq));
        if let Err(e) = std::fs::rename(&path, &rotated) {
            tracing::error!("the decision log cannot be rotated: {e}");
            return;
        }
        match open_append(&path) {
            Ok(mut file) => {
                let _ = file.seek(std::io::SeekFrom::End(0));
                self.out = std::io::BufWriter::with_capacity(BUFFER_BYTES, file);
                self.size = 0;
                self.checkpointed = false;
            }
            Err(e) => tracing::error!("the decision log cannot be reopened: {e}"),
        }
    }
}
