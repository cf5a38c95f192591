//! The signal store: the latest signals per subject, session and device, in memory on every
//! replica (a shared store feeds each replica's copy). Every change takes the next number of
//! one sequence: it becomes the generation of what it changed (part of the decision cache
//! key, so cached decisions for that subject become unreachable at once) and the cursor of
//! the invalidation it publishes to Watch streams.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use tokio::sync::broadcast;

use super::{ClaimsOverride, Kind, RiskLevel, Signal};

/// Bounds of the store.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// Most subjects, sessions and devices held (together); signals about new ones are
    /// refused beyond it (never silently evicted: a dropped revocation would allow).
    pub max_entries: usize,
    /// Signals are kept this many seconds after their event time (longer than any token
    /// lives).
    pub retention_secs: i64,
    /// Invalidations kept for Watch streams that resume.
    pub log_len: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_entries: 1_000_000,
            retention_secs: 86_400,
            log_len: 10_000,
        }
    }
}

/// The store is full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the signal store holds {0} subjects, sessions and devices, its limit")]
pub struct Full(pub usize);

/// A value with the event time that set it; a later event (or an equal time) replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamped<T> {
    at: i64,
    value: T,
}

/// Sets `slot` to `value` at `at` unless it holds a later event; says whether it changed.
fn stamp<T: PartialEq>(slot: &mut Option<Stamped<T>>, at: i64, value: T) -> bool {
    match slot {
        Some(s) if s.at > at || (s.at == at && s.value == value) => false,
        _ => {
            *slot = Some(Stamped { at, value });
            true
        }
    }
}

/// Moves a timestamp forward; says whether it moved.
fn later(slot: &mut Option<i64>, at: i64) -> bool {
    if slot.is_some_and(|t| t >= at) {
        return false;
    }
    *slot = Some(at);
    true
}

#[derive(Debug, Default)]
struct SubjectState {
    generation: u64,
    latest: i64,
    /// Sessions that began at or before this are revoked.
    revoked_before: Option<i64>,
    /// Tokens issued at or before this are refused.
    credentials_changed: Option<i64>,
    risk: Option<Stamped<RiskLevel>>,
    /// Risk raised by detection, and when it lapses.
    detected: Option<Stamped<(RiskLevel, i64)>>,
    assurance: Option<Stamped<(String, String)>>,
    claims: Option<Stamped<ClaimsOverride>>,
}

#[derive(Debug, Default)]
struct SessionState {
    generation: u64,
    latest: i64,
    revoked: Option<i64>,
}

#[derive(Debug, Default)]
struct DeviceState {
    generation: u64,
    latest: i64,
    compliant: Option<Stamped<bool>>,
    risk: Option<Stamped<RiskLevel>>,
}

#[derive(Debug, Default)]
struct Maps {
    subjects: HashMap<String, SubjectState>,
    sessions: HashMap<String, SessionState>,
    devices: HashMap<String, DeviceState>,
}

impl Maps {
    fn len(&self) -> usize {
        self.subjects.len() + self.sessions.len() + self.devices.len()
    }
}

/// Cached decisions to drop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// Its place in the sequence.
    pub seq: u64,
    /// Decisions for this subject.
    pub subject: String,
    /// Decisions for this session.
    pub session: String,
    /// Decisions for this device.
    pub device: String,
    /// Decisions made under any other policy revision.
    pub revision: String,
    /// Everything.
    pub reset: bool,
}

/// What a request is looked up by.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<'a> {
    /// Subject id.
    pub subject: &'a str,
    /// Session id (may be empty).
    pub session: &'a str,
    /// Device id (may be empty).
    pub device: &'a str,
    /// When the subject's token (or session) was issued, epoch seconds, if known.
    pub issued_at: Option<i64>,
}

/// A built-in deny that needs no policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// The session was revoked.
    SessionRevoked,
    /// The token predates a credential change.
    CredentialChanged,
}

/// What the signals say about one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The latest generation of the subject, session and device (0: no signal).
    pub generation: u64,
    /// A built-in deny.
    pub guard: Option<(Guard, String)>,
    /// The highest risk in force (subject, detected, device).
    pub risk: Option<RiskLevel>,
    /// The device's compliance.
    pub compliant: Option<bool>,
    /// Assurance namespace and level.
    pub assurance: Option<(String, String)>,
    /// Claims that override the token's.
    pub claims: Option<ClaimsOverride>,
}

/// The store.
#[derive(Debug)]
pub struct Store {
    maps: RwLock<Maps>,
    /// Entries held, read without the lock: most requests concern subjects without signals.
    entries: AtomicU64,
    seq: AtomicU64,
    /// Identifies this replica's sequence in cursors.
    epoch: u64,
    log: Mutex<VecDeque<Change>>,
    changes: broadcast::Sender<Change>,
    config: StoreConfig,
    applied: AtomicU64,
}

impl Store {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Store {
        let (changes, _) = broadcast::channel(1024);
        Store {
            maps: RwLock::default(),
            entries: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            epoch: uuid::Uuid::new_v4().as_u64_pair().0,
            log: Mutex::new(VecDeque::new()),
            changes,
            config,
            applied: AtomicU64::new(0),
        }
    }

    /// The store's bounds.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// Records `signal`; says whether it changed anything (a signal already known, or older
    /// than what is known, changes nothing). Idempotent.
    pub fn apply(&self, signal: &Signal) -> Result<bool, Full> {
        let Ok(mut maps) = self.maps.write() else {
            return Ok(false);
        };
        let full = maps.len() >= self.config.max_entries;
        let at = signal.at;
        let mut touched = Change::default();
        let changed = match signal.kind {
            Kind::SessionRevoked if !signal.session.is_empty() => {
                let Some(s) = entry(&mut maps.sessions, &signal.session, full)? else {
                    return Ok(false);
                };
                touched.session.clone_from(&signal.session);
                let c = later(&mut s.revoked, at);
                bump(&mut s.latest, at);
                c
            }
            Kind::DeviceComplianceChange => {
                let Some(d) = entry(&mut maps.devices, &signal.device, full)? else {
                    return Ok(false);
                };
                touched.device.clone_from(&signal.device);
                let c = signal
                    .compliant
                    .is_some_and(|v| stamp(&mut d.compliant, at, v));
                bump(&mut d.latest, at);
                c
            }
            Kind::RiskLevelChange if signal.subject.is_empty() => {
                let Some(d) = entry(&mut maps.devices, &signal.device, full)? else {
                    return Ok(false);
                };
                touched.device.clone_from(&signal.device);
                let c = signal.risk.is_some_and(|r| stamp(&mut d.risk, at, r));
                bump(&mut d.latest, at);
                c
            }
            kind => {
                let Some(s) = entry(&mut maps.subjects, &signal.subject, full)? else {
                    return Ok(false);
                };
                touched.subject.clone_from(&signal.subject);
                let c = match kind {
                    Kind::SessionRevoked => later(&mut s.revoked_before, at),
                    Kind::CredentialChange => later(&mut s.credentials_changed, at),
                    Kind::TokenClaimsChange => signal
                        .claims
                        .clone()
                        .is_some_and(|c| stamp(&mut s.claims, at, c)),
                    Kind::AssuranceLevelChange => signal
                        .assurance
                        .clone()
                        .is_some_and(|a| stamp(&mut s.assurance, at, a)),
                    Kind::RiskLevelChange => match (signal.risk, signal.until) {
                        (Some(r), Some(until)) => stamp(&mut s.detected, at, (r, until)),
                        (Some(r), None) => stamp(&mut s.risk, at, r),
                        (None, _) => false,
                    },
                    Kind::DeviceComplianceChange => false,
                };
                bump(&mut s.latest, at);
                c
            }
        };
        self.entries.store(maps.len() as u64, Ordering::Release);
        if !changed {
            return Ok(false);
        }
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        if let Some(s) = maps.subjects.get_mut(&touched.subject) {
            s.generation = seq;
        }
        if let Some(s) = maps.sessions.get_mut(&touched.session) {
            s.generation = seq;
        }
        if let Some(d) = maps.devices.get_mut(&touched.device) {
            d.generation = seq;
        }
        touched.seq = seq;
        self.applied.fetch_add(1, Ordering::Relaxed);
        self.publish(touched);
        Ok(true)
    }

    /// Tells Watch streams that policy revision `revision` now serves.
    pub fn policy_changed(&self, revision: &str) {
        let Ok(_maps) = self.maps.write() else {
            return;
        };
        let seq = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        self.publish(Change {
            seq,
            revision: revision.to_owned(),
            ..Change::default()
        });
    }

    /// Appends to the log and tells live streams; called with the maps locked, so the log is
    /// in sequence order.
    fn publish(&self, change: Change) {
        if let Ok(mut log) = self.log.lock() {
            if log.len() >= self.config.log_len.max(1) {
                log.pop_front();
            }
            log.push_back(change.clone());
        }
        // No receivers is fine: nobody watches.
        let _ = self.changes.send(change);
    }

    /// What the signals say about a request at `now` (epoch seconds).
    pub fn lookup(&self, q: &Query<'_>, now: i64) -> Facts {
        let mut facts = Facts::default();
        if self.entries.load(Ordering::Acquire) == 0 {
            return facts;
        }
        let Ok(maps) = self.maps.read() else {
            return facts;
        };
        let issued_before = |t: i64| q.issued_at.is_none_or(|iat| iat <= t);
        if let Some(s) = (!q.session.is_empty())
            .then(|| maps.sessions.get(q.session))
            .flatten()
        {
            facts.generation = facts.generation.max(s.generation);
            if s.revoked.is_some() {
                facts.guard = Some((
                    Guard::SessionRevoked,
                    "the session has been revoked".to_owned(),
                ));
            }
        }
        if let Some(s) = maps.subjects.get(q.subject) {
            facts.generation = facts.generation.max(s.generation);
            if facts.guard.is_none() {
                if let Some(t) = s.revoked_before.filter(|t| issued_before(*t)) {
                    facts.guard = Some((Guard::SessionRevoked, revoked_message(t, q.issued_at)));
                } else if let Some(t) = s.credentials_changed.filter(|t| issued_before(*t)) {
                    facts.guard = Some((
                        Guard::CredentialChanged,
                        format!(
                            "the subject's credentials changed at {}; {}",
                            rfc3339(t),
                            if q.issued_at.is_some() {
                                "the token was issued before"
                            } else {
                                "the token's issue time is unknown"
                            }
                        ),
                    ));
                }
            }
            facts.risk = s.risk.as_ref().map(|r| r.value);
            if let Some(d) = s.detected.as_ref().filter(|d| d.value.1 > now) {
                facts.risk = facts.risk.max(Some(d.value.0));
            }
            facts.assurance = s.assurance.as_ref().map(|a| a.value.clone());
            facts.claims = s.claims.as_ref().map(|c| c.value.clone());
        }
        if let Some(d) = (!q.device.is_empty())
            .then(|| maps.devices.get(q.device))
            .flatten()
        {
            facts.generation = facts.generation.max(d.generation);
            facts.compliant = d.compliant.as_ref().map(|c| c.value);
            if let Some(r) = &d.risk {
                facts.risk = facts.risk.max(Some(r.value));
            }
        }
        facts
    }

    /// Drops entries whose latest event is older than the retention at `now`; returns how
    /// many.
    pub fn prune(&self, now: i64) -> usize {
        let horizon = now.saturating_sub(self.config.retention_secs);
        let Ok(mut maps) = self.maps.write() else {
            return 0;
        };
        let before = maps.len();
        maps.subjects.retain(|_, s| s.latest >= horizon);
        maps.sessions.retain(|_, s| s.latest >= horizon);
        maps.devices.retain(|_, d| d.latest >= horizon);
        self.entries.store(maps.len() as u64, Ordering::Release);
        before - maps.len()
    }

    /// What the store holds, as the signals that would set it again: the latest of each
    /// type per subject, session and device (to re-seed a shared store that lost its data).
    pub fn retained(&self) -> Vec<Signal> {
        let Ok(maps) = self.maps.read() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut push = |kind: Kind, at: i64, fill: &dyn Fn(&mut Signal)| {
            let mut s = Signal::new(kind, at);
            s.reason = "re-seeded".into();
            fill(&mut s);
            out.push(s);
        };
        for (id, s) in &maps.sessions {
            if let Some(at) = s.revoked {
                push(Kind::SessionRevoked, at, &|x| x.session.clone_from(id));
            }
        }
        for (id, d) in &maps.devices {
            if let Some(c) = &d.compliant {
                push(Kind::DeviceComplianceChange, c.at, &|x| {
                    x.device.clone_from(id);
                    x.compliant = Some(c.value);
                });
            }
            if let Some(r) = &d.risk {
                push(Kind::RiskLevelChange, r.at, &|x| {
                    x.device.clone_from(id);
                    x.risk = Some(r.value);
                });
            }
        }
        for (id, s) in &maps.subjects {
            let subject = |x: &mut Signal| x.subject.clone_from(id);
            if let Some(at) = s.revoked_before {
                push(Kind::SessionRevoked, at, &subject);
            }
            if let Some(at) = s.credentials_changed {
                push(Kind::CredentialChange, at, &subject);
            }
            if let Some(r) = &s.risk {
                push(Kind::RiskLevelChange, r.at, &|x| {
                    subject(x);
                    x.risk = Some(r.value);
                });
            }
            if let Some(d) = &s.detected {
                push(Kind::RiskLevelChange, d.at, &|x| {
                    subject(x);
                    x.risk = Some(d.value.0);
                    x.until = Some(d.value.1);
                });
            }
            if let Some(a) = &s.assurance {
                push(Kind::AssuranceLevelChange, a.at, &|x| {
                    subject(x);
                    x.assurance = Some(a.value.clone());
                });
            }
            if let Some(c) = &s.claims {
                push(Kind::TokenClaimsChange, c.at, &|x| {
                    subject(x);
                    x.claims = Some(c.value.clone());
                });
            }
        }
        out
    }

    /// Subjects, sessions and devices held.
    pub fn counts(&self) -> (usize, usize, usize) {
        self.maps.read().map_or((0, 0, 0), |m| {
            (m.subjects.len(), m.sessions.len(), m.devices.len())
        })
    }

    /// Signals that changed state since start.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// The latest change's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// The cursor after the latest change.
    pub fn cursor(&self) -> String {
        self.cursor_at(self.seq.load(Ordering::Acquire))
    }

    /// The cursor after change `seq`.
    pub fn cursor_at(&self, seq: u64) -> String {
        format!("{:016x}-{seq}", self.epoch)
    }

    /// Starts a Watch stream resuming after `cursor`: the current cursor, whether the
    /// caller must drop everything (no cursor, another replica's or an unknown one, or one
    /// older than the log), the changes after the cursor, and the live changes (which may
    /// repeat replayed ones: skip those at or below the last sequence seen).
    pub fn watch(&self, cursor: &str) -> Resume {
        // Subscribe before reading the log, so nothing falls between the two.
        let live = self.changes.subscribe();
        let current = self.seq.load(Ordering::Acquire);
        let log: Vec<Change> = self
            .log
            .lock()
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        let resumed = parse_cursor(cursor).filter(|(epoch, seq)| {
            let oldest_kept = log.first().map_or(current, |c| c.seq.saturating_sub(1));
            *epoch == self.epoch && *seq <= current && *seq >= oldest_kept
        });
        match resumed {
            Some((_, seq)) => Resume {
                seq,
                reset: false,
                replay: log.into_iter().filter(|c| c.seq > seq).collect(),
                live,
            },
            None => Resume {
                seq: current,
                reset: true,
                replay: Vec::new(),
                live,
            },
        }
    }
}

/// A Watch stream's start.
#[derive(Debug)]
pub struct Resume {
    /// The sequence the stream starts after.
    pub seq: u64,
    /// The caller must drop everything.
    pub reset: bool,
    /// Changes after the cursor, in order.
    pub replay: Vec<Change>,
    /// Changes from now on.
    pub live: broadcast::Receiver<Change>,
}

fn parse_cursor(cursor: &str) -> Option<(u64, u64)> {
    let (epoch, seq) = cursor.split_once('-')?;
    Some((u64::from_str_radix(epoch, 16).ok()?, seq.parse().ok()?))
}

/// The entry for `key`, made when absent unless the store is full; `None` for an empty key.
fn entry<'a, T: Default>(
    map: &'a mut HashMap<String, T>,
    key: &str,
    full: bool,
) -> Result<Option<&'a mut T>, Full> {
    if key.is_empty() {
        return Ok(None);
    }
    if !map.contains_key(key) {
        if full {
            return Err(Full(map.len()));
        }
        map.insert(key.to_owned(), T::default());
    }
    Ok(map.get_mut(key))
}

fn bump(latest: &mut i64, at: i64) {
    *latest = (*latest).max(at);
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn revoked_message(t: i64, issued_at: Option<i64>) -> String {
    format!(
        "the subject's sessions that began at or before {} have been revoked{}",
        rfc3339(t),
        if issued_at.is_none() {
            " (and this session's start is unknown)"
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        sized(3)
    }

    fn sized(max_entries: usize) -> Store {
        Store::new(StoreConfig {
            max_entries,
            retention_secs: 100,
            log_len: 4,
        })
    }

    fn signal(kind: Kind, subject: &str, at: i64) -> Signal {
        let mut s = Signal::new(kind, at);
        s.subject = subject.into();
        s
    }

    fn q<'a>(subject: &'a str, session: &'a str, issued_at: Option<i64>) -> Query<'a> {
        Query {
            subject,
            session,
            device: "",
            issued_at,
        }
    }

    #[test]
    fn revocations_deny_sessions_that_began_before_them() {
        let s = store();
        assert_eq!(s.lookup(&q("alice", "", Some(50)), 60), Facts::default());
        assert_eq!(
            s.apply(&signal(Kind::SessionRevoked, "alice", 100)),
            Ok(true)
        );
        // Applying the same signal again changes nothing.
        assert_eq!(
            s.apply(&signal(Kind::SessionRevoked, "alice", 100)),
            Ok(false)
        );
        let guard = |iat| s.lookup(&q("alice", "", iat), 200).guard.map(|g| g.0);
        assert_eq!(guard(Some(99)), Some(Guard::SessionRevoked));
        assert_eq!(guard(Some(100)), Some(Guard::SessionRevoked));
        assert_eq!(guard(Some(101)), None);
        assert_eq!(
            guard(None),
            Some(Guard::SessionRevoked),
            "unknown start: fail closed"
        );
        assert_eq!(s.lookup(&q("bob", "", None), 200).guard, None);

        let mut one = Signal::new(Kind::SessionRevoked, 5);
        one.session = "s1".into();
        assert_eq!(s.apply(&one), Ok(true));
        let g = s.lookup(&q("bob", "s1", Some(1000)), 2000).guard;
        assert_eq!(g.map(|g| g.0), Some(Guard::SessionRevoked));
    }

    #[test]
    fn credential_changes_refuse_older_tokens() {
        let s = store();
        assert_eq!(s.apply(&signal(Kind::CredentialChange, "a", 100)), Ok(true));
        let guard = |iat| s.lookup(&q("a", "", iat), 200).guard.map(|g| g.0);
        assert_eq!(guard(Some(90)), Some(Guard::CredentialChanged));
        assert_eq!(guard(Some(110)), None);
    }

    #[test]
    fn the_latest_event_wins_and_each_change_moves_the_generation() {
        let s = store();
        let mut high = signal(Kind::RiskLevelChange, "a", 100);
        high.risk = Some(RiskLevel::High);
        let mut low_older = signal(Kind::RiskLevelChange, "a", 90);
        low_older.risk = Some(RiskLevel::Low);
        assert_eq!(s.apply(&high), Ok(true));
        let g1 = s.lookup(&q("a", "", None), 0).generation;
        assert_eq!(
            s.apply(&low_older),
            Ok(false),
            "an older event does not win"
        );
        assert_eq!(s.lookup(&q("a", "", None), 0).risk, Some(RiskLevel::High));
        let mut low = signal(Kind::RiskLevelChange, "a", 110);
        low.risk = Some(RiskLevel::Low);
        assert_eq!(s.apply(&low), Ok(true));
        let facts = s.lookup(&q("a", "", None), 0);
        assert_eq!(facts.risk, Some(RiskLevel::Low));
        assert!(facts.generation > g1);
    }

    #[test]
    fn detected_risk_lapses_and_device_risk_counts() {
        let s = store();
        let mut detected = signal(Kind::RiskLevelChange, "a", 100);
        detected.risk = Some(RiskLevel::High);
        detected.until = Some(150);
        assert_eq!(s.apply(&detected), Ok(true));
        assert_eq!(s.lookup(&q("a", "", None), 120).risk, Some(RiskLevel::High));
        assert_eq!(s.lookup(&q("a", "", None), 151).risk, None);
        let mut device = Signal::new(Kind::DeviceComplianceChange, 100);
        device.device = "d".into();
        device.compliant = Some(false);
        assert_eq!(s.apply(&device), Ok(true));
        let facts = s.lookup(
            &Query {
                subject: "a",
                device: "d",
                ..Query::default()
            },
            151,
        );
        assert_eq!(facts.compliant, Some(false));
    }

    #[test]
    fn a_full_store_refuses_new_entries_but_updates_known_ones() {
        let s = store();
        for name in ["a", "b", "c"] {
            assert_eq!(s.apply(&signal(Kind::CredentialChange, name, 1)), Ok(true));
        }
        assert_eq!(
            s.apply(&signal(Kind::CredentialChange, "d", 1)),
            Err(Full(3))
        );
        assert_eq!(s.apply(&signal(Kind::CredentialChange, "a", 2)), Ok(true));
        assert_eq!(s.prune(102), 2, "b and c are past retention");
        assert_eq!(s.counts(), (1, 0, 0));
    }

    #[test]
    fn what_the_store_retains_sets_an_empty_store_to_the_same_facts() {
        let s = sized(100);
        let mut session = Signal::new(Kind::SessionRevoked, 5);
        session.session = "s1".into();
        let mut risk = signal(Kind::RiskLevelChange, "a", 7);
        risk.risk = Some(RiskLevel::High);
        let mut device = Signal::new(Kind::DeviceComplianceChange, 8);
        device.device = "d".into();
        device.compliant = Some(false);
        let mut claims = signal(Kind::TokenClaimsChange, "a", 9);
        claims.claims = Some(ClaimsOverride {
            roles: Some(vec!["R".into()]),
            ..ClaimsOverride::default()
        });
        for x in [
            &session,
            &risk,
            &device,
            &claims,
            &signal(Kind::SessionRevoked, "a", 3),
            &signal(Kind::CredentialChange, "a", 4),
        ] {
            assert_eq!(s.apply(x), Ok(true));
        }
        let copy = sized(100);
        for x in s.retained() {
            assert_eq!(copy.apply(&x), Ok(true), "{x:?}");
        }
        let query = Query {
            subject: "a",
            session: "s1",
            device: "d",
            issued_at: Some(1),
        };
        let (mut before, mut after) = (s.lookup(&query, 10), copy.lookup(&query, 10));
        before.generation = 0;
        after.generation = 0;
        assert_eq!(before, after);
        assert_eq!(copy.counts(), s.counts());
    }

    #[test]
    fn watch_resumes_from_a_cursor_or_says_reset() {
        let s = sized(100);
        let start = s.cursor();
        for (i, name) in ["a", "b"].iter().enumerate() {
            let _ = s.apply(&signal(Kind::CredentialChange, name, i as i64));
        }
        let r = s.watch(&start);
        assert!(!r.reset);
        let subjects: Vec<_> = r.replay.iter().map(|c| c.subject.as_str()).collect();
        assert_eq!(subjects, ["a", "b"]);
        assert!(s.watch("").reset);
        assert!(
            s.watch("0000000000000000-1").reset,
            "another replica's cursor"
        );
        // The log keeps 4 changes: a cursor before them is too old.
        for name in ["c", "d", "e", "f"] {
            let _ = s.apply(&signal(Kind::CredentialChange, name, 0));
        }
        assert!(s.watch(&start).reset);
        let mut live = s.watch(&s.cursor()).live;
        s.policy_changed("rev2");
        assert_eq!(live.try_recv().map(|c| c.revision), Ok("rev2".to_owned()));
    }
}
