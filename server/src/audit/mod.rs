//! The decision log: every decision as one JSON line, written off the decision path by a
//! dedicated thread, in a tamper-evident file. Each record carries `prev`, the hash of the
//! record before it, and `hash`, the SHA-256 of its own line up to that field; at intervals
//! (and at shutdown and rotation) a checkpoint line signs the head of the chain with Ed25519.
//! A log starts at record 1, whose `prev` is [`GENESIS`]; a file started by rotation opens
//! with a signed checkpoint naming the file it continues. The latest checkpoint is also
//! published outside the log (`FILE.head` and a metric), since cutting a log back to an
//! earlier checkpoint leaves a valid file. A partial last line left by a crash is cut off at
//! the next start and noted in the chain. [`verify`] checks a log and locates the first
//! record that was edited, removed, reordered or cut off.

pub mod verify;

#[cfg(test)]
mod tests;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The writer's buffer: records reach the file when it fills, and at least every
/// [`FLUSH_EVERY`]. Small enough to stay in cache between writes.
const BUFFER_BYTES: usize = 64 * 1024;
/// How often the writer drains its queue.
const TICK: Duration = Duration::from_millis(5);
/// The longest a written record waits in the buffer.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The `prev` of the first record of a log (record 1): the head of the empty log, record 0.
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
    "request_id",
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

/// Bytes of text a record holds without allocating (its decision id, subject, action,
/// resource, revision, statement ids, …); a record with more spills to the heap.
const INLINE_TEXT: usize = 192;

/// A record's text fields (besides its lists, `determining` and `obligations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    /// The response's decision id.
    DecisionId,
    /// The trace it belongs to (hex), if traced.
    TraceId,
    /// Who asked, after [`Record::peer`]: client certificate SANs, each after a space.
    Caller,
    /// Subject id.
    Subject,
    /// Action.
    Action,
    /// Resource id.
    Resource,
    /// Policy revision.
    Revision,
    /// The caller's request id (gRPC `request_id`, `x-request-id`); written when not empty.
    RequestId,
}

/// How many [`Text`] fields there are.
const TEXTS: usize = 8;

/// Where a piece of text lies in a record's buffer.
type Span = (u32, u32);

/// One decision, as handed to the writer. Its text is copied into one buffer (inline up to
/// [`INLINE_TEXT`] bytes), so a record is queued without allocating; the writer formats it.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// When it was decided.
    pub time: chrono::DateTime<chrono::Utc>,
    /// `check`, `check_batch`, ….
    pub api: &'static str,
    /// The caller's address: `caller` is this address followed by [`Text::Caller`].
    pub peer: Option<std::net::SocketAddr>,
    /// Allowed or not.
    pub allowed: bool,
    /// The reason (`allowed`, `explicit_deny`, …).
    pub reason: &'static str,
    /// Time to decide, microseconds.
    pub latency_us: u64,
    /// Served from the decision cache.
    pub cached: bool,
    /// The caller asked for an explanation (its text is not recorded); written when true.
    pub explained: bool,
    text: smallvec::SmallVec<[u8; INLINE_TEXT]>,
    texts: [Span; TEXTS],
    determining: smallvec::SmallVec<[Span; 2]>,
    obligations: smallvec::SmallVec<[Span; 2]>,
}

impl Record {
    /// A record of a decision made at `time` by `api`, with no text yet.
    pub fn new(time: chrono::DateTime<chrono::Utc>, api: &'static str) -> Record {
        Record {
            time,
            api,
            ..Record::default()
        }
    }

    /// Sets a text field (a later value replaces an earlier one).
    pub fn set(&mut self, field: Text, value: &str) -> &mut Record {
        let span = self.append(|text| text.extend_from_slice(value.as_bytes()));
        if let Some(slot) = self.texts.get_mut(field as usize) {
            *slot = span;
        }
        self
    }

    /// Adds a determining statement: `policy#sid`, or `policy[index]` without a Sid.
    pub fn push_determining(&mut self, policy: &str, sid: &str, index: u32) -> &mut Record {
        let span = self.append(|text| push_statement_id(text, policy, sid, index));
        self.determining.push(span);
        self
    }

    /// Adds an obligation id.
    pub fn push_obligation(&mut self, id: &str) -> &mut Record {
        let span = self.append(|text| text.extend_from_slice(id.as_bytes()));
        self.obligations.push(span);
        self
    }

    /// A text field's value (empty when unset).
    pub fn text(&self, field: Text) -> &str {
        // INVARIANT: every span covers whole strings appended as UTF-8.
        std::str::from_utf8(self.bytes(field)).unwrap_or_default()
    }

    /// A text field's bytes (UTF-8).
    fn bytes(&self, field: Text) -> &[u8] {
        self.texts
            .get(field as usize)
            .map_or(&[], |span| self.bytes_at(*span))
    }

    fn append(&mut self, push: impl FnOnce(&mut smallvec::SmallVec<[u8; INLINE_TEXT]>)) -> Span {
        let start = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        push(&mut self.text);
        (start, u32::try_from(self.text.len()).unwrap_or(u32::MAX))
    }

    fn bytes_at(&self, (start, end): Span) -> &[u8] {
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }
}

/// A determining statement's id: `policy#sid`, or `policy[index]` without a Sid.
pub fn statement_id(policy: &str, sid: &str, index: u32) -> String {
    let mut id = Vec::with_capacity(policy.len() + 1 + sid.len().max(11));
    push_statement_id(&mut id, policy, sid, index);
    String::from_utf8(id).unwrap_or_default()
}

fn push_statement_id(out: &mut impl Bytes, policy: &str, sid: &str, index: u32) {
    out.put(policy.as_bytes());
    if sid.is_empty() {
        out.put(b"[");
        push_u64(out, u64::from(index));
        out.put(b"]");
    } else {
        out.put(b"#");
        out.put(sid.as_bytes());
    }
}

/// A growable byte buffer (`Vec<u8>`, or the inline buffer of a record).
trait Bytes {
    fn put(&mut self, bytes: &[u8]);
}

impl Bytes for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl<const N: usize> Bytes for smallvec::SmallVec<[u8; N]> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Appends `n` in decimal.
fn push_u64(out: &mut impl Bytes, n: u64) {
    out.put(itoa::Buffer::new().format(n).as_bytes());
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
    /// Set only on the checkpoint that opens a file started by rotation: the name of the
    /// file it continues, whose closing checkpoint attests the same record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<String>,
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
    let mut out = Vec::with_capacity(64);
    push_hex(&mut out, &Sha256::digest(bytes));
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `bytes` in lowercase hex.
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        for nibble in [b >> 4, b & 0xf] {
            out.push(*DIGITS.get(usize::from(nibble)).unwrap_or(&b'0'));
        }
    }
}

/// Records waiting for the writer. The writer takes them all at once, swapping in its own
/// (empty) vector, so the two vectors are reused and stay in cache: a ring the size of the
/// whole queue would be cold memory for every record.
#[derive(Debug)]
struct Queue {
    records: std::sync::Mutex<Vec<Record>>,
    /// Records waiting at most.
    capacity: usize,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Record>> {
        // Nothing panics while holding the lock; a poisoned queue is still a valid queue.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Asks the writer to write what is queued and a checkpoint, and to flush.
#[derive(Debug)]
struct Close(std::sync::mpsc::Sender<()>);

/// The decision log: a queue to the writer thread.
#[derive(Debug)]
pub struct DecisionLog {
    queue: std::sync::Arc<Queue>,
    /// Dropped with the log, which tells the writer to finish.
    close: Sender<Close>,
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
        let Resumed {
            seq,
            head,
            recovered,
        } = resume(&config.path)?;
        let file = open_append(&config.path)?;
        let capacity = config.queue.max(1);
        let queue = std::sync::Arc::new(Queue {
            records: std::sync::Mutex::new(Vec::with_capacity(capacity.min(1024))),
            capacity,
        });
        let (close, closing) = std::sync::mpsc::channel();
        let overflow = config.overflow;
        let mut writer = Writer {
            size: file.metadata().map(|m| m.len()).unwrap_or(0),
            file,
            buf: Vec::with_capacity(BUFFER_BYTES + 4096),
            seq,
            head: head.into_bytes(),
            covered: seq,
            key,
            first_uncovered: None,
            checkpointed: false,
            format: Format::new(&config),
            flushed: Instant::now(),
            config,
        };
        if let Some(recovered) = &recovered {
            // The first record after the cut says what was lost, and where.
            writer.note_recovered(recovered);
            writer.flush();
        }
        let taken = Vec::with_capacity(capacity.min(1024));
        let for_writer = std::sync::Arc::clone(&queue);
        std::thread::Builder::new()
            .name("decision-log".into())
            .spawn(move || writer.run(&for_writer, taken, &closing))
            .map_err(|e| AuditError::File {
                path: String::new(),
                message: format!("cannot start the writer: {e}"),
            })?;
        Ok(DecisionLog {
            queue,
            close,
            overflow,
        })
    }

    /// What happens when the queue is full.
    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// Queues a record without waiting; false when the queue is full (the record is not
    /// written).
    pub fn submit(&self, record: Record) -> bool {
        let mut records = self.queue.lock();
        if records.len() >= self.queue.capacity {
            return false;
        }
        records.push(record);
        true
    }

    /// Writes what is queued, a final checkpoint, and waits for the file to be flushed (up
    /// to `timeout`).
    pub fn close(&self, timeout: Duration) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.close.send(Close(done)).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
    }
}

/// `FILE.<suffix>`, beside the log.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where the latest checkpoint is published: `FILE.head`.
pub fn head_path(log: &Path) -> PathBuf {
    beside(log, ".head")
}

/// Where a partial last line cut off at start is kept: `FILE.partial`.
pub fn partial_path(log: &Path) -> PathBuf {
    beside(log, ".partial")
}

fn open_append(path: &Path) -> Result<std::fs::File, AuditError> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| file_error(path, e))
}

/// A partial last line found at start (a write cut off by a crash), cut off the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovered {
    /// The line it was on (1-based), where the note of its loss now is.
    pub line: u64,
    /// Its length.
    pub bytes: u64,
    /// Its SHA-256 (hex), to find it in the partial file.
    pub sha256: String,
    /// The file it was appended to (`FILE.partial`).
    pub partial: String,
}

/// Where an existing log ends: the last record's sequence number and hash (0 and the
/// genesis hash for a new log), and the partial last line cut off, if any.
struct Resumed {
    seq: u64,
    head: String,
    recovered: Option<Recovered>,
}

/// Reads where an existing log ends. A last line without its newline (a write cut off by a
/// crash) is moved to `FILE.partial` and cut off the log, so that new records start on a
/// line of their own instead of completing it.
fn resume(path: &Path) -> Result<Resumed, AuditError> {
    let mut resumed = Resumed {
        seq: 0,
        head: GENESIS.to_owned(),
        recovered: None,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(resumed),
        Err(e) => return Err(file_error(path, e)),
    };
    let mut reader = std::io::BufReader::new(file);
    let (mut complete, mut lines) = (0u64, 0u64);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| file_error(path, e))?;
        if n == 0 {
            break;
        }
        if line.last() != Some(&b'\n') {
            resumed.recovered = Some(cut_partial(path, complete, lines + 1, &line)?);
            break;
        }
        complete += n as u64;
        lines += 1;
        let text = String::from_utf8_lossy(line.get(..n - 1).unwrap_or_default());
        if let Some((seq, hash)) = verify::record_seq_and_hash(&text) {
            (resumed.seq, resumed.head) = (seq, hash);
        } else if let Ok(c) = serde_json::from_str::<CheckpointLine>(&text) {
            // A file that holds only the checkpoint opening it continues from that checkpoint.
            (resumed.seq, resumed.head) = (c.checkpoint.seq, c.checkpoint.head);
        }
    }
    Ok(resumed)
}

/// Appends `partial` (the last line, `line`, from byte `at`) to `FILE.partial` and cuts it
/// off the log.
fn cut_partial(path: &Path, at: u64, line: u64, partial: &[u8]) -> Result<Recovered, AuditError> {
    let kept = partial_path(path);
    let mut out = open_append(&kept)?;
    out.write_all(partial)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.sync_all())
        .map_err(|e| file_error(&kept, e))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(at))
        .map_err(|e| file_error(path, e))?;
    tracing::warn!(
        file = %path.display(),
        line,
        bytes = partial.len(),
        kept = %kept.display(),
        "the decision log ended with a partial line (a write cut off by a crash): cut off and kept"
    );
    Ok(Recovered {
        line,
        bytes: partial.len() as u64,
        sha256: sha256_hex(partial),
        partial: kept
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    })
}

/// Bit `i` stands for `FIELDS[i]` in the writer's `shown` and `masked`.
const TRACE_ID: u16 = 1;
const API: u16 = 1 << 1;
const CALLER: u16 = 1 << 2;
const SUBJECT: u16 = 1 << 3;
const ACTION: u16 = 1 << 4;
const RESOURCE: u16 = 1 << 5;
const DETERMINING: u16 = 1 << 6;
const OBLIGATIONS: u16 = 1 << 7;
const REVISION: u16 = 1 << 8;
const LATENCY_US: u16 = 1 << 9;
const CACHED: u16 = 1 << 10;
const REQUEST_ID: u16 = 1 << 11;

struct Writer {
    file: std::fs::File,
    /// Lines not yet written to the file; each line is built in place at its end.
    buf: Vec<u8>,
    /// The file's size, counting what is buffered.
    size: u64,
    seq: u64,
    /// The hash of record `seq` (hex).
    head: Vec<u8>,
    /// The last record a checkpoint covers.
    covered: u64,
    key: Option<ed25519_dalek::SigningKey>,
    first_uncovered: Option<Instant>,
    /// Whether this file already ends the chain so far with a checkpoint.
    checkpointed: bool,
    /// Formats records.
    format: Format,
    /// When the buffer was last flushed.
    flushed: Instant,
    config: AuditConfig,
}

impl Writer {
    /// Drains the queue every [`TICK`] rather than waking for each record: a writer woken
    /// per record would cost the decision path a thread wake-up (and, on a busy core, a
    /// context switch) per decision.
    fn run(mut self, queue: &Queue, mut taken: Vec<Record>, closing: &Receiver<Close>) {
        loop {
            std::thread::sleep(TICK);
            // Whether to close comes first: records queued before a close are then taken
            // with this batch.
            let mut closes = Vec::new();
            let mut finished = false;
            loop {
                match closing.try_recv() {
                    Ok(Close(done)) => closes.push(done),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        finished = true;
                        break;
                    }
                }
            }
            std::mem::swap(&mut *queue.lock(), &mut taken);
            let written = taken.len() as u64;
            for r in taken.drain(..) {
                self.record(&r);
            }
            if written > 0 {
                crate::metrics::metrics().log_written.inc_by(written);
            }
            if finished || !closes.is_empty() {
                self.checkpoint();
                self.flush();
                for done in closes {
                    let _ = done.send(());
                }
                if finished {
                    return;
                }
            }
            if self
                .first_uncovered
                .is_some_and(|t| t.elapsed() >= self.config.checkpoint_interval)
            {
                self.checkpoint();
            }
            if !self.buf.is_empty() && self.flushed.elapsed() >= FLUSH_EVERY {
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

    /// Writes the buffer to the file. What cannot be written is dropped (and said): the
    /// chain then shows the gap.
    fn flush(&mut self) {
        self.flushed = Instant::now();
        if self.buf.is_empty() {
            return;
        }
        if let Err(e) = self.file.write_all(&self.buf) {
            tracing::error!("the decision log cannot be written: {e}");
        }
        self.buf.clear();
    }

    /// Ends a line appended to the buffer: counts it, and writes the buffer out once full.
    fn ended(&mut self, line_len: usize) {
        self.size += line_len as u64;
        if self.buf.len() >= BUFFER_BYTES {
            self.flush();
        }
    }

    fn write(&mut self, r: &Record) {
        self.seq += 1;
        let mut buf = std::mem::take(&mut self.buf);
        let start = buf.len();
        self.format.body(self.seq, &self.head, r, &mut buf);
        self.seal(&mut buf, start);
        let line_len = buf.len() - start;
        self.buf = buf;
        self.first_uncovered.get_or_insert_with(Instant::now);
        self.ended(line_len);
        if self.size >= self.config.max_bytes {
            self.rotate();
        }
    }

    /// Ends the body at `buf[start..]` (which ends with `"prev":"…"}`) with its hash and a
    /// newline; the hash becomes the chain's head.
    fn seal(&mut self, buf: &mut Vec<u8>, start: usize) {
        let digest = Sha256::digest(buf.get(start..).unwrap_or_default());
        self.head.clear();
        push_hex(&mut self.head, &digest);
        // The body ends with `}`: the hash goes before it.
        buf.pop();
        buf.extend_from_slice(b",\"hash\":\"");
        buf.extend_from_slice(&self.head);
        buf.extend_from_slice(b"\"}\n");
    }

    /// Writes the record that notes a partial line cut off at start: it takes the next
    /// sequence number and joins the chain like any record, so its removal shows.
    fn note_recovered(&mut self, recovered: &Recovered) {
        self.seq += 1;
        let mut buf = std::mem::take(&mut self.buf);
        let start = buf.len();
        buf.extend_from_slice(b"{\"seq\":");
        push_u64(&mut buf, self.seq);
        buf.extend_from_slice(b",\"time\":");
        push_json_string(
            &mut buf,
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .as_bytes(),
        );
        buf.extend_from_slice(b",\"recovered\":");
        if serde_json::to_writer(&mut buf, recovered).is_err() {
            buf.extend_from_slice(b"{}");
        }
        buf.extend_from_slice(b",\"prev\":\"");
        buf.extend_from_slice(&self.head);
        buf.extend_from_slice(b"\"}");
        self.seal(&mut buf, start);
        let line_len = buf.len() - start;
        self.buf = buf;
        self.first_uncovered.get_or_insert_with(Instant::now);
        self.ended(line_len);
    }

    fn checkpoint(&mut self) {
        self.first_uncovered = None;
        if self.seq == self.covered && self.checkpointed {
            // Nothing new since the last checkpoint in this file.
            return;
        }
        self.write_checkpoint(None);
    }

    /// Writes a checkpoint of the chain's head (`continues`: the file a new file continues),
    /// flushes the file, and publishes the checkpoint outside the log: `FILE.head`, replaced
    /// atomically, and the `pdp_decision_log_checkpoint_seq` gauge. The file is flushed first
    /// so that the published checkpoint is never ahead of the log.
    fn write_checkpoint(&mut self, continues: Option<String>) {
        self.checkpointed = true;
        let checkpoint = Checkpoint {
            head: String::from_utf8_lossy(&self.head).into_owned(),
            seq: self.seq,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            continues,
        };
        let signature = self.key.as_ref().map(|k| {
            base64::engine::general_purpose::STANDARD
                .encode(k.sign(&checkpoint.signed_bytes()).to_bytes())
        });
        let line = CheckpointLine {
            checkpoint,
            signature,
        };
        let start = self.buf.len();
        if serde_json::to_writer(&mut self.buf, &line).is_ok() {
            self.buf.push(b'\n');
            let published = self.buf.get(start..).unwrap_or_default().to_vec();
            self.size += published.len() as u64;
            self.flush();
            self.publish(&published, line.checkpoint.seq);
        } else {
            self.buf.truncate(start);
        }
        self.covered = self.seq;
    }

    /// Replaces `FILE.head` with `line` (written to `FILE.head.tmp`, then renamed over it).
    fn publish(&self, line: &[u8], seq: u64) {
        let head = head_path(&self.config.path);
        let tmp = beside(&head, ".tmp");
        let written = std::fs::write(&tmp, line).and_then(|()| std::fs::rename(&tmp, &head));
        if let Err(e) = written {
            tracing::error!(file = %head.display(), "the decision log head cannot be published: {e}");
        }
        crate::metrics::metrics()
            .log_checkpoint_seq
            .set(i64::try_from(seq).unwrap_or(i64::MAX));
    }

    /// Closes the current file with a checkpoint, renames it `<name>.<last seq>`, and starts
    /// a new one that continues the chain: it opens with a checkpoint of the same record that
    /// names the file it continues, so that a file whose first records were removed cannot
    /// pass for one that continues another.
    fn rotate(&mut self) {
        self.checkpoint();
        self.flush();
        let path = self.config.path.clone();
        let rotated = beside(&path, &format!(".{:020}", self.seq));
        if let Err(e) = std::fs::rename(&path, &rotated) {
            tracing::error!("the decision log cannot be rotated: {e}");
            return;
        }
        match open_append(&path) {
            Ok(file) => {
                self.file = file;
                self.size = 0;
                let name = rotated
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.write_checkpoint(Some(name));
            }
            Err(e) => tracing::error!("the decision log cannot be reopened: {e}"),
        }
    }
}

/// Formats records as JSON lines: the fields shown and masked, and buffers reused from one
/// record to the next.
///
/// The JSON is written by hand ([`Format::body`], [`push_json_string`]) because it is
/// faster than `serde_json` writing the same bytes into a reused buffer
/// ([`Format::body_serde`]) by well over the 10 % that would justify keeping it:
/// `cargo bench -p pdp-server --bench audit` (criterion, 3 s per case, release, the same
/// run) measured a typical record (570 bytes, all fields) at 142.6 ns against 414.2 ns
/// (2.9x), and one with escapes at 204.2 ns against 436.7 ns (2.1x). Both write the same
/// bytes (`tests::serde_json_writes_the_same_line_as_the_writer`), so the hash chain of a
/// log does not depend on which one wrote it.
#[derive(Debug)]
struct Format {
    /// The fields written and the fields masked, as bits (see [`TRACE_ID`]).
    shown: u16,
    masked: u16,
    /// The caller being formatted (reused).
    caller: Vec<u8>,
    /// The current second, formatted.
    second: (i64, Vec<u8>),
    /// The time being formatted (reused).
    time: Vec<u8>,
}

impl Format {
    fn new(config: &AuditConfig) -> Format {
        let field_bits = |names: &mut dyn Iterator<Item = &String>| {
            names.fold(0u16, |bits, name| {
                bits | FIELDS.iter().position(|f| f == name).map_or(0, |i| 1 << i)
            })
        };
        Format {
            shown: match &config.fields {
                Some(fields) => field_bits(&mut fields.iter()),
                None => u16::MAX,
            },
            masked: field_bits(&mut config.mask.iter()),
            caller: Vec::with_capacity(64),
            second: (0, Vec::new()),
            time: Vec::with_capacity(32),
        }
    }

    /// Appends the record's time: RFC 3339 with microseconds, the part up to the second
    /// formatted once a second.
    fn push_time(&mut self, r: &Record, out: &mut Vec<u8>) {
        let second = r.time.timestamp();
        if self.second.0 != second || self.second.1.is_empty() {
            self.second = (
                second,
                r.time.format("%Y-%m-%dT%H:%M:%S").to_string().into_bytes(),
            );
        }
        out.extend_from_slice(&self.second.1);
        out.push(b'.');
        let micros = u64::from(r.time.timestamp_subsec_micros().min(999_999));
        let mut digits = 100_000;
        while digits > 0 {
            // A digit: below 10.
            out.push(b'0' + ((micros / digits) % 10) as u8);
            digits /= 10;
        }
        out.push(b'Z');
    }

    /// [`Format::body`] written by `serde_json` instead: the same bytes (the benchmark
    /// `server/benches/audit.rs` compares the two).
    fn body_serde(&mut self, seq: u64, prev: &[u8], r: &Record, out: &mut Vec<u8>) {
        let mut time = std::mem::take(&mut self.time);
        time.clear();
        self.push_time(r, &mut time);
        let caller = if self.shown & CALLER != 0 {
            format_caller(std::mem::take(&mut self.caller), r)
        } else {
            std::mem::take(&mut self.caller)
        };
        let (shown, masked) = (self.shown, self.masked);
        fn show(shown: u16, masked: u16, field: u16, value: &[u8]) -> Option<Shown<'_>> {
            (shown & field != 0).then_some(Shown {
                value,
                masked: masked & field != 0,
            })
        }
        let text = |field: u16, value| show(shown, masked, field, value);
        let list = |field: u16, spans| {
            (self.shown & field != 0).then_some(List {
                record: r,
                spans,
                masked: self.masked & field != 0,
            })
        };
        let line = Line {
            seq,
            time: std::str::from_utf8(&time).unwrap_or_default(),
            decision_id: r.text(Text::DecisionId),
            trace_id: text(TRACE_ID, r.bytes(Text::TraceId)),
            request_id: Some(r.bytes(Text::RequestId))
                .filter(|v| !v.is_empty())
                .and_then(|v| text(REQUEST_ID, v)),
            api: text(API, r.api.as_bytes()),
            caller: text(CALLER, &caller),
            subject: text(SUBJECT, r.bytes(Text::Subject)),
            action: text(ACTION, r.bytes(Text::Action)),
            resource: text(RESOURCE, r.bytes(Text::Resource)),
            decision: if r.allowed { "allow" } else { "deny" },
            reason: r.reason,
            determining: list(DETERMINING, &r.determining),
            obligations: list(OBLIGATIONS, &r.obligations),
            revision: text(REVISION, r.bytes(Text::Revision)),
            latency_us: (self.shown & LATENCY_US != 0).then_some(r.latency_us),
            cached: (self.shown & CACHED != 0).then_some(r.cached),
            explained: r.explained.then_some(true),
            prev: std::str::from_utf8(prev).unwrap_or_default(),
        };
        if serde_json::to_writer(&mut *out, &line).is_err() {
            out.extend_from_slice(b"{}");
        }
        self.caller = caller;
        self.time = time;
    }

    /// Appends `"name":value,` (the value masked when configured) when `field` is shown.
    fn field(&self, out: &mut Vec<u8>, field: u16, name: &str, value: &[u8]) {
        if self.shown & field != 0 {
            out.push(b'"');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            self.value(out, field, value);
            out.push(b',');
        }
    }

    /// Appends `value` as a JSON string, or `sha256:` and the first 16 hex digits of its
    /// SHA-256 when `field` is masked.
    fn value(&self, out: &mut Vec<u8>, field: u16, value: &[u8]) {
        if self.masked & field != 0 {
            out.extend_from_slice(b"\"sha256:");
            push_hex(out, Sha256::digest(value).get(..8).unwrap_or_default());
            out.push(b'"');
        } else {
            push_json_string(out, value);
        }
    }

    /// The record as one JSON object, fields in a fixed order, ending with `prev` (the hash
    /// is appended after it).
    fn body(&mut self, seq: u64, prev: &[u8], r: &Record, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"seq\":");
        push_u64(out, seq);
        out.extend_from_slice(b",\"time\":\"");
        self.push_time(r, out);
        out.extend_from_slice(b"\",\"decision_id\":");
        push_json_string(out, r.bytes(Text::DecisionId));
        out.push(b',');
        self.field(out, TRACE_ID, "trace_id", r.bytes(Text::TraceId));
        let request_id = r.bytes(Text::RequestId);
        if !request_id.is_empty() {
            self.field(out, REQUEST_ID, "request_id", request_id);
        }
        self.field(out, API, "api", r.api.as_bytes());
        if self.shown & CALLER != 0 {
            let caller = std::mem::take(&mut self.caller);
            let caller = format_caller(caller, r);
            self.field(out, CALLER, "caller", &caller);
            self.caller = caller;
        }
        self.field(out, SUBJECT, "subject", r.bytes(Text::Subject));
        self.field(out, ACTION, "action", r.bytes(Text::Action));
        self.field(out, RESOURCE, "resource", r.bytes(Text::Resource));
        out.extend_from_slice(if r.allowed {
            b"\"decision\":\"allow\",\"reason\":\""
        } else {
            b"\"decision\":\"deny\",\"reason\":\""
        });
        out.extend_from_slice(r.reason.as_bytes());
        out.extend_from_slice(b"\",");
        if self.shown & DETERMINING != 0 {
            out.extend_from_slice(b"\"determining\":[");
            for (i, span) in r.determining.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                self.value(out, DETERMINING, r.bytes_at(*span));
            }
            out.extend_from_slice(b"],");
        }
        if self.shown & OBLIGATIONS != 0 {
            out.extend_from_slice(b"\"obligations\":[");
            for (i, span) in r.obligations.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                self.value(out, OBLIGATIONS, r.bytes_at(*span));
            }
            out.extend_from_slice(b"],");
        }
        self.field(out, REVISION, "revision", r.bytes(Text::Revision));
        if self.shown & LATENCY_US != 0 {
            out.extend_from_slice(b"\"latency_us\":");
            push_u64(out, r.latency_us);
            out.push(b',');
        }
        if self.shown & CACHED != 0 {
            out.extend_from_slice(if r.cached {
                b"\"cached\":true,"
            } else {
                b"\"cached\":false,"
            });
        }
        if r.explained {
            out.extend_from_slice(b"\"explained\":true,");
        }
        out.extend_from_slice(b"\"prev\":\"");
        out.extend_from_slice(prev);
        out.extend_from_slice(b"\"}");
    }
}

/// The caller: the peer's address, then the SANs of [`Text::Caller`], into `caller`.
fn format_caller(mut caller: Vec<u8>, r: &Record) -> Vec<u8> {
    caller.clear();
    match r.peer {
        Some(std::net::SocketAddr::V4(a)) => {
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    caller.push(b'.');
                }
                push_u64(&mut caller, u64::from(octet));
            }
            caller.push(b':');
            push_u64(&mut caller, u64::from(a.port()));
        }
        Some(a) => {
            let _ = write!(caller, "{a}");
        }
        None => {}
    }
    caller.extend_from_slice(r.bytes(Text::Caller));
    caller
}

/// A record line as `serde_json` writes it (fields in the order of [`Format::body`]).
#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    time: &'a str,
    decision_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<Shown<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<Shown<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<Shown<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller: Option<Shown<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<Shown<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<Shown<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<Shown<'a>>,
    decision: &'static str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    determining: Option<List<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    obligations: Option<List<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<Shown<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cached: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explained: Option<bool>,
    prev: &'a str,
}

/// A text value, or its `sha256:` pseudonym when masked.
struct Shown<'a> {
    value: &'a [u8],
    masked: bool,
}

impl Serialize for Shown<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.masked {
            let mut masked = Vec::with_capacity(23);
            masked.extend_from_slice(b"sha256:");
            push_hex(
                &mut masked,
                Sha256::digest(self.value).get(..8).unwrap_or_default(),
            );
            s.serialize_str(std::str::from_utf8(&masked).unwrap_or_default())
        } else {
            // INVARIANT: record text is appended as UTF-8.
            s.serialize_str(std::str::from_utf8(self.value).unwrap_or_default())
        }
    }
}

/// A list of a record's texts (`determining`, `obligations`).
struct List<'a> {
    record: &'a Record,
    spans: &'a [Span],
    masked: bool,
}

impl Serialize for List<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.spans.iter().map(|span| Shown {
            value: self.record.bytes_at(*span),
            masked: self.masked,
        }))
    }
}

/// The record formatter, exposed for `server/benches/audit.rs` only: the writer's own JSON
/// (`hand`) and the same line written by `serde_json` (`serde`), both up to `prev` (the
/// hash is appended after it).
#[doc(hidden)]
#[derive(Debug)]
pub struct BenchFormat(Format);

impl BenchFormat {
    /// A formatter of records as `config` asks (fields shown and masked).
    pub fn new(config: &AuditConfig) -> BenchFormat {
        BenchFormat(Format::new(config))
    }

    /// The writer's JSON, appended to `out`.
    pub fn hand(&mut self, seq: u64, prev: &[u8], r: &Record, out: &mut Vec<u8>) {
        self.0.body(seq, prev, r, out);
    }

    /// The same line by `serde_json`, appended to `out`.
    pub fn serde(&mut self, seq: u64, prev: &[u8], r: &Record, out: &mut Vec<u8>) {
        self.0.body_serde(seq, prev, r, out);
    }
}

/// Appends `value` as a JSON string, escaped as `serde_json` escapes it: `"` and `\`, and
/// control characters (`\n`, `\t`, …, else `\u00XX`); everything else as is.
fn push_json_string(out: &mut Vec<u8>, value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    out.push(b'"');
    // Most values need no escape: found in one pass without branches per byte.
    if !value.iter().fold(false, |any, &b| any | escaped(b)) {
        out.extend_from_slice(value);
        out.push(b'"');
        return;
    }
    let mut plain = 0;
    for (i, &b) in value.iter().enumerate() {
        if !escaped(b) {
            continue;
        }
        out.extend_from_slice(value.get(plain..i).unwrap_or_default());
        plain = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(*HEX.get(usize::from(b >> 4)).unwrap_or(&b'0'));
                out.push(*HEX.get(usize::from(b & 0xf)).unwrap_or(&b'0'));
            }
        }
    }
    out.extend_from_slice(value.get(plain..).unwrap_or_default());
    out.push(b'"');
}
