//! The signals a replica serves from: its in-memory [`Store`], fed by this replica alone
//! (`memory`) or by a Redis shared with the other replicas (`redis://…`). With Redis, a
//! signal is written to a hash holding the latest signal per subject/session/device and
//! type (a Lua script keeps the later event) and appended to a stream with its generation
//! (a counter in Redis that only grows); every replica applies the stream as it grows
//! (`XREAD BLOCK`), loads the whole hash when it starts or reconnects, and knows the
//! generation up to which it has applied everything. A replica that cannot reach Redis
//! keeps serving on what it knows and, after the staleness bound, denies sensitive actions.
//!
//! Redis may lose its data (a restart without persistence, a failover to an empty replica,
//! a flush). An epoch key tells: each replica remembers the epoch it loaded, and one that
//! finds it gone or changed writes back every signal it holds before following the new
//! store. A replica that finds no epoch at all (a new store, or one emptied before any
//! replica noticed) creates it and, before it serves, follows the store for a grace period
//! in which the replicas that hold signals write them back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wildmatch::WildMatch;

use super::detect::{DetectionRule, Detector};
use super::store::{Full, Store, StoreConfig};
use super::Signal;

/// Stream entries kept in Redis (approximately); a replica further behind reloads the hash.
const STREAM_MAX_LEN: usize = 100_000;
/// How long one `XREAD` blocks; also how often a quiet connection proves it is alive and
/// the epoch is checked.
const BLOCK_MS: u64 = 1000;
/// How long a replica that created the shared store's epoch follows it before it serves:
/// longer than a running replica takes to notice a lost store (its reconnect backoff, at
/// most 1 s, or its next epoch check, at most `BLOCK_MS`) and write its signals back.
pub const RESEED_GRACE: Duration = Duration::from_millis(3 * BLOCK_MS);
/// Signals written back per script call when re-seeding a shared store.
const RESEED_CHUNK: usize = 500;
/// How long a Check waits for its `min_signal_generation` unless configured otherwise.
pub const DEFAULT_GENERATION_WAIT: Duration = Duration::from_millis(100);

/// How signals are kept and shared.
#[derive(Debug, Clone)]
pub struct SignalsConfig {
    /// Bounds of the store.
    pub store: StoreConfig,
    /// `redis://…` (or `rediss://…`) when replicas share signals; `None`: memory only.
    pub redis: Option<String>,
    /// Key prefix in Redis.
    pub redis_prefix: String,
    /// After this long without reaching Redis, sensitive actions are denied.
    pub stale_after: Duration,
    /// Actions that are sensitive (`service:Action` patterns with `*` and `?`,
    /// case-insensitive).
    pub sensitive_actions: Vec<String>,
    /// Internal detection, when on.
    pub detection: Option<DetectionRule>,
    /// How often signals past retention are removed (here and from Redis).
    pub prune_every: Duration,
    /// How long a Check waits for its `min_signal_generation` before it answers
    /// `REASON_SIGNALS_STALE`.
    pub generation_wait: Duration,
    /// Whether `token-claims-change` signals published over gRPC may add roles and tags
    /// (otherwise they only narrow them).
    pub publish_claims_authoritative: bool,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        SignalsConfig {
            store: StoreConfig::default(),
            redis: None,
            redis_prefix: "pdp:signals".into(),
            stale_after: Duration::from_secs(10),
            sensitive_actions: vec!["iam:*".into(), "*:Delete*".into()],
            detection: None,
            prune_every: Duration::from_secs(60),
            generation_wait: DEFAULT_GENERATION_WAIT,
            publish_claims_authoritative: false,
        }
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The store is full.
    #[error(transparent)]
    Full(#[from] Full),
    /// The shared store could not be written (the signals are in force on this replica).
    #[error("the shared signal store cannot be reached: {0}")]
    Unavailable(String),
}

/// What a `Publish` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Signals that changed state on this replica.
    pub applied: usize,
    /// Their generation: a Check with this `min_signal_generation` decides with them in
    /// force, on any replica sharing the store.
    pub generation: u64,
}

struct RedisLink {
    client: redis::Client,
    hash: String,
    stream: String,
    /// Which incarnation of the shared store this is (gone or changed: it lost its data).
    epoch_key: String,
    /// The generation counter.
    generation_key: String,
    writer: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    script: redis::Script,
    prune: redis::Script,
    connected: AtomicBool,
    /// Milliseconds after `started` when Redis last answered; 0: never.
    last_contact_ms: AtomicU64,
    /// Whether this replica holds everything the shared store holds: it has loaded it (and,
    /// after creating its epoch, waited out the re-seed grace).
    synced: AtomicBool,
    /// Every signal up to this generation is applied here.
    applied: tokio::sync::watch::Sender<u64>,
}

/// The signals of this replica.
pub struct Signals {
    /// The store decisions read.
    pub store: Arc<Store>,
    redis: Option<RedisLink>,
    started: Instant,
    stale_after: Duration,
    generation_wait: Duration,
    /// Whether `token-claims-change` signals published over gRPC may add roles and tags.
    pub publish_claims_authoritative: bool,
    prune_every: Duration,
    sensitive: Vec<WildMatch>,
    /// Internal detection, when on.
    pub detector: Option<Detector>,
    /// Open Watch streams.
    pub watchers: AtomicU64,
    /// SSF `verification` events received, and the last one's `state`.
    pub verifications: AtomicU64,
    /// The `state` of the last SSF verification event.
    pub last_verification: Mutex<String>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals")
            .field("store", &self.store)
            .field("shared", &self.redis.is_some())
            .field("stale_after", &self.stale_after)
            .finish_non_exhaustive()
    }
}

// For each (field, signal, event time) of ARGV[3..]: keeps the event that happened later in
// the hash KEYS[1]; takes the next generation (KEYS[3]); appends the signal and its
// generation to the stream KEYS[2] (capped at ARGV[1]) either way (a replica applies the
// older event as a no-op). The generation never falls below ARGV[2] nor below the store's
// clock in microseconds, so it keeps growing when the store loses its data. Returns the
// last generation (the current one when there is no signal).
const PUBLISH_SCRIPT: &str = r"
local g = tonumber(redis.call('GET', KEYS[3]) or '0')
if g < tonumber(ARGV[2]) then g = tonumber(ARGV[2]) end
for i = 3, #ARGV, 3 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if (not current) or (tonumber(cjson.decode(current)['at']) <= tonumber(ARGV[i + 2])) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  g = g + 1
  if now > g then g = now end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'signal', ARGV[i + 1], 'generation', string.format('%.0f', g))
end
redis.call('SET', KEYS[3], string.format('%.0f', g))
return g
";

// Deletes the given fields whose signal happened before ARGV[1], re-reading each one.
const PRUNE_SCRIPT: &str = r"
local removed = 0
for i = 2, #ARGV do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if current and tonumber(cjson.decode(current)['at']) < tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
";

impl Signals {
    /// Signals kept as `config` says. Fails on an unusable Redis URL or action pattern.
    pub fn new(config: &SignalsConfig) -> Result<Signals, String> {
        let redis = match &config.redis {
            Some(url) => {
                let client = redis::Client::open(url.as_str())
                    .map_err(|e| format!("`signals.redis`: {e}"))?;
                Some(RedisLink {
                    client,
                    hash: format!("{}:state", config.redis_prefix),
                    stream: format!("{}:events", config.redis_prefix),
                    epoch_key: format!("{}:epoch", config.redis_prefix),
                    generation_key: format!("{}:generation", config.redis_prefix),
                    writer: tokio::sync::Mutex::new(None),
                    script: redis::Script::new(PUBLISH_SCRIPT),
                    prune: redis::Script::new(PRUNE_SCRIPT),
                    connected: AtomicBool::new(false),
                    last_contact_ms: AtomicU64::new(0),
                    synced: AtomicBool::new(false),
                    applied: tokio::sync::watch::Sender::new(0),
                })
            }
            None => None,
        };
        for p in &config.sensitive_actions {
            if !p.contains(':') && p != "*" {
                return Err(format!(
                    "`signals.sensitive_actions`: `{p}` is not a `service:Action` pattern"
                ));
            }
        }
        Ok(Signals::build(config, redis))
    }

    /// Signals kept in memory with the default settings.
    pub fn in_memory() -> Signals {
        Signals::build(&SignalsConfig::default(), None)
    }

    fn build(config: &SignalsConfig, redis: Option<RedisLink>) -> Signals {
        Signals {
            store: Arc::new(Store::new(config.store)),
            redis,
            started: Instant::now(),
            stale_after: config.stale_after,
            generation_wait: config.generation_wait,
            publish_claims_authoritative: config.publish_claims_authoritative,
            prune_every: config.prune_every.max(Duration::from_secs(1)),
            sensitive: config
                .sensitive_actions
                .iter()
                .map(|p| WildMatch::new_case_insensitive(p))
                .collect(),
            detector: config.detection.map(Detector::new),
            watchers: AtomicU64::new(0),
            verifications: AtomicU64::new(0),
            last_verification: Mutex::new(String::new()),
        }
    }

    /// Whether `action` is sensitive.
    pub fn is_sensitive(&self, action: &str) -> bool {
        self.sensitive.iter().any(|p| p.matches(action))
    }

    /// `memory` or `redis`.
    pub fn kind(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// Whether the shared store answers now (always, for memory).
    pub fn connected(&self) -> bool {
        self.redis
            .as_ref()
            .is_none_or(|r| r.connected.load(Ordering::Acquire))
    }

    /// Time since the shared store last answered (`None` for memory; the time since start
    /// when it never answered).
    pub fn since_contact(&self) -> Option<Duration> {
        let r = self.redis.as_ref()?;
        let elapsed = self.started.elapsed();
        let last = Duration::from_millis(r.last_contact_ms.load(Ordering::Acquire));
        Some(elapsed.saturating_sub(last))
    }

    /// Whether signals may have been missed for longer than the staleness bound (never for
    /// memory; from start until this replica holds what the shared store holds).
    pub fn stale(&self) -> bool {
        let Some(r) = &self.redis else {
            return false;
        };
        r.last_contact_ms.load(Ordering::Acquire) == 0
            || !r.synced.load(Ordering::Acquire)
            || self.since_contact().is_some_and(|d| d > self.stale_after)
    }

    /// The generation up to which every signal is in force here: the shared store's, or,
    /// in memory, this replica's own sequence.
    pub fn generation(&self) -> u64 {
        match &self.redis {
            Some(r) => *r.applied.borrow(),
            None => self.store.seq(),
        }
    }

    /// Whether every signal up to generation `min` is in force here, waiting for it up to
    /// the configured bound (no wait for 0, nor in memory, where nothing else brings
    /// signals a caller was told the generation of).
    pub async fn reached(&self, min: u64) -> bool {
        if min == 0 || self.generation() >= min {
            return true;
        }
        let Some(r) = &self.redis else {
            return false;
        };
        let mut applied = r.applied.subscribe();
        let waited = tokio::time::timeout(self.generation_wait, applied.wait_for(|g| *g >= min))
            .await
            .is_ok_and(|seen| seen.is_ok());
        waited
    }

    fn contact(&self, r: &RedisLink) {
        let ms = u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        r.last_contact_ms.store(ms, Ordering::Release);
        r.connected.store(true, Ordering::Release);
    }

    /// Puts signals in force on this replica and, with Redis, writes them there for the
    /// others; says how many changed state here, and their generation.
    pub async fn publish(
        &self,
        signals: &[Signal],
        source: &'static str,
    ) -> Result<Published, PublishError> {
        let mut applied = 0;
        for s in signals {
            received(s, source);
            if self.store.apply(s)? {
                applied += 1;
            }
        }
        let generation = self.share(signals).await?;
        Ok(Published {
            applied,
            generation,
        })
    }

    /// Writes signals to Redis for the other replicas (nothing to do in memory); returns
    /// their generation (in memory, this replica's sequence).
    pub async fn share(&self, signals: &[Signal]) -> Result<u64, PublishError> {
        let Some(r) = &self.redis else {
            return Ok(self.store.seq());
        };
        self.write(r, signals, 0)
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))
    }

    /// Writes `signals` in one script call (a generation at least `floor`); returns the
    /// last generation.
    async fn write(
        &self,
        r: &RedisLink,
        signals: &[Signal],
        floor: u64,
    ) -> redis::RedisResult<u64> {
        let mut conn = Self::connection(r).await?;
        let mut invocation = r.script.key(&r.hash);
        invocation
            .key(&r.stream)
            .key(&r.generation_key)
            .arg(STREAM_MAX_LEN)
            .arg(floor);
        for s in signals {
            let json = serde_json::to_string(s).map_err(|e| {
                redis::RedisError::from((redis::ErrorKind::TypeError, "encode", e.to_string()))
            })?;
            invocation.arg(field(s)).arg(json).arg(s.at);
        }
        let result: redis::RedisResult<u64> = invocation.invoke_async(&mut conn).await;
        if result.is_err() {
            // Connect afresh next time.
            *r.writer.lock().await = None;
        }
        result
    }

    /// Writes back every signal this replica holds, to a shared store that lost its data,
    /// with generations above every one this replica has seen.
    async fn reseed(&self, r: &RedisLink) -> redis::RedisResult<usize> {
        let retained = self.store.retained();
        let floor = *r.applied.borrow();
        if retained.is_empty() {
            self.write(r, &[], floor).await?;
        }
        for chunk in retained.chunks(RESEED_CHUNK) {
            self.write(r, chunk, floor).await?;
        }
        Ok(retained.len())
    }

    /// The connection writes go through (made when there is none).
    async fn connection(r: &RedisLink) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let mut guard = r.writer.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = r
            .client
            .get_multiplexed_async_connection_with_config(&connection_config(Duration::from_secs(
                1,
            )))
            .await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Removes signals older than the retention from the shared hash (each replica does it;
    /// a script re-reads each field, so a signal written since the scan is kept). Returns how
    /// many were removed.
    async fn prune_shared(&self, r: &RedisLink, now: i64) -> redis::RedisResult<usize> {
        let horizon = now.saturating_sub(self.store.config().retention_secs);
        let mut conn = Self::connection(r).await?;
        let mut old = Vec::new();
        scan_hash(&mut conn, &r.hash, |field, json| {
            if serde_json::from_str::<Signal>(json).is_ok_and(|s| s.at < horizon) {
                old.push(field.to_owned());
            }
        })
        .await?;
        let mut removed = 0;
        for chunk in old.chunks(500) {
            let mut invocation = r.prune.key(&r.hash);
            invocation.arg(horizon);
            for field in chunk {
                invocation.arg(field);
            }
            removed += invocation.invoke_async::<usize>(&mut conn).await?;
        }
        Ok(removed)
    }

    /// Starts the background work: following Redis (when shared) and pruning the store.
    /// Waits up to `initial_wait` for Redis's state to load, so a starting replica serves
    /// what the others know, and, when it found the store new (or emptied), for the re-seed
    /// grace on top.
    pub async fn start(self: &Arc<Self>, initial_wait: Duration) {
        let me = self.clone();
        let every = self.prune_every;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let now = chrono::Utc::now().timestamp();
                me.store.prune(now);
                if let Some(r) = &me.redis {
                    match me.prune_shared(r, now).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            "{n} signals past retention removed from the shared store"
                        ),
                        Err(e) => tracing::debug!("the shared signal store was not pruned: {e}"),
                    }
                }
            }
        });
        if self.redis.is_none() {
            return;
        }
        let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel();
        let me = self.clone();
        let following = Following {
            epoch: None,
            grace_until: None,
            loaded: Some(loaded_tx),
            synced: Some(synced_tx),
        };
        tokio::spawn(async move { me.follow(following).await });
        if tokio::time::timeout(initial_wait, loaded_rx).await.is_err() {
            tracing::warn!(
                "the shared signal store did not answer within {initial_wait:?}: serving without it, sensitive actions denied until it does"
            );
            return;
        }
        let grace = RESEED_GRACE + Duration::from_millis(BLOCK_MS);
        if tokio::time::timeout(grace, synced_rx).await.is_err() {
            tracing::warn!(
                "the shared signal store was not followed through its re-seed grace: serving, sensitive actions denied until it is"
            );
        }
    }

    /// Follows Redis for ever: loads the state, then applies the stream; on any error,
    /// reconnects with backoff and loads the state again.
    async fn follow(self: Arc<Self>, mut following: Following) {
        let Some(r) = &self.redis else {
            return;
        };
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.follow_once(r, &mut following).await {
                Ok(()) => {}
                Err(e) => {
                    if r.connected.swap(false, Ordering::AcqRel) {
                        tracing::warn!("lost the shared signal store: {e}");
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
            if r.connected.load(Ordering::Acquire) {
                backoff = Duration::from_millis(50);
            }
        }
    }

    /// Which incarnation of the shared store this is, making sure it has one: when the
    /// epoch this replica remembers is gone or changed, the store lost its data and this
    /// replica writes back what it holds first. Returns the epoch, and whether this call
    /// created it for a replica that remembered none (a new store, as far as it knows).
    async fn epoch(
        &self,
        r: &RedisLink,
        conn: &mut redis::aio::MultiplexedConnection,
        remembered: Option<&str>,
    ) -> redis::RedisResult<(String, bool)> {
        let current: Option<String> = redis::cmd("GET")
            .arg(&r.epoch_key)
            .query_async(conn)
            .await?;
        if let Some(known) = remembered {
            if current.as_deref() != Some(known) {
                tracing::warn!(
                    "the shared signal store lost its data (its epoch is {}): writing back the signals this replica holds",
                    if current.is_some() { "another" } else { "gone" }
                );
                let n = self.reseed(r).await?;
                tracing::info!("{n} signals written back to the shared signal store");
            }
        }
        if let Some(current) = current {
            return Ok((current, false));
        }
        let proposed = format!("{:016x}", uuid::Uuid::new_v4().as_u64_pair().0);
        let set: Option<String> = redis::cmd("SET")
            .arg(&r.epoch_key)
            .arg(&proposed)
            .arg("NX")
            .query_async(conn)
            .await?;
        let epoch: Option<String> = redis::cmd("GET")
            .arg(&r.epoch_key)
            .query_async(conn)
            .await?;
        let epoch = epoch.ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::ResponseError,
                "the shared store's epoch vanished as it was set",
            ))
        })?;
        Ok((epoch, set.is_some() && remembered.is_none()))
    }

    async fn follow_once(
        &self,
        r: &RedisLink,
        following: &mut Following,
    ) -> redis::RedisResult<()> {
        let mut conn = r
            .client
            .get_multiplexed_async_connection_with_config(&connection_config(
                Duration::from_millis(BLOCK_MS * 3),
            ))
            .await?;
        let (epoch, created) = self.epoch(r, &mut conn, following.epoch.as_deref()).await?;
        if created {
            following.grace_until = Some(Instant::now() + RESEED_GRACE);
            tracing::info!(
                "the shared signal store is new (or lost its data): following it for {RESEED_GRACE:?} before serving, so replicas holding signals write them back"
            );
        }
        following.epoch = Some(epoch.clone());
        // Where the stream ends now and the generation it reached, together; then the
        // state, which holds everything up to that generation (events in between apply
        // twice, which changes nothing).
        let (last, generation): (redis::streams::StreamRangeReply, Option<u64>) = redis::pipe()
            .atomic()
            .cmd("XREVRANGE")
            .arg(&r.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .cmd("GET")
            .arg(&r.generation_key)
            .query_async(&mut conn)
            .await?;
        let mut last_id = last
            .ids
            .first()
            .map_or_else(|| "0-0".to_owned(), |e| e.id.clone());
        let mut count = 0usize;
        scan_hash(&mut conn, &r.hash, |_, json| {
            self.apply_json(json);
            count += 1;
        })
        .await?;
        r.applied
            .send_if_modified(|g| raise(g, generation.unwrap_or(0)));
        self.contact(r);
        tracing::info!("loaded {count} signals from the shared signal store");
        if let Some(tx) = following.loaded.take() {
            let _ = tx.send(());
        }
        let mut epoch_checked = Instant::now();
        loop {
            let block = match following.grace_until {
                Some(until) if Instant::now() >= until => {
                    following.grace_until = None;
                    BLOCK_MS
                }
                Some(until) => {
                    u64::try_from(until.saturating_duration_since(Instant::now()).as_millis())
                        .unwrap_or(BLOCK_MS)
                        .clamp(1, BLOCK_MS)
                }
                None => BLOCK_MS,
            };
            if following.grace_until.is_none() && !r.synced.swap(true, Ordering::AcqRel) {
                if let Some(tx) = following.synced.take() {
                    let _ = tx.send(());
                }
            }
            let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(block)
                .arg("STREAMS")
                .arg(&r.stream)
                .arg(&last_id)
                .query_async(&mut conn)
                .await?;
            self.contact(r);
            for key in reply.map(|r| r.keys).unwrap_or_default() {
                for entry in key.ids {
                    if let Some(json) = entry.get::<String>("signal") {
                        self.apply_json(&json);
                    }
                    if let Some(g) = entry.get::<u64>("generation") {
                        r.applied.send_if_modified(|seen| raise(seen, g));
                    }
                    last_id = entry.id;
                }
            }
            if epoch_checked.elapsed() >= Duration::from_millis(BLOCK_MS) {
                epoch_checked = Instant::now();
                let now: Option<String> = redis::cmd("GET")
                    .arg(&r.epoch_key)
                    .query_async(&mut conn)
                    .await?;
                if now.as_deref() != Some(epoch.as_str()) {
                    // Start over: write back what this replica holds, then load.
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::ResponseError,
                        "the shared store's epoch changed: it lost its data",
                    )));
                }
            }
        }
    }

    fn apply_json(&self, json: &str) {
        match serde_json::from_str::<Signal>(json) {
            Ok(s) => {
                match s
                    .validate()
                    .and_then(|()| self.store.apply(&s).map_err(|e| e.to_string()))
                {
                    // Counted where it changed something: the publishing replica counted it.
                    Ok(true) => received(&s, "shared"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!("a shared signal was not applied: {e}"),
                }
            }
            Err(e) => tracing::warn!("the shared signal store holds an unreadable signal: {e}"),
        }
    }
}

/// How a replica follows the shared store, across reconnects.
struct Following {
    /// The epoch of the store this replica loaded.
    epoch: Option<String>,
    /// Until when a replica that found the store new waits for others to re-seed it.
    grace_until: Option<Instant>,
    /// Told once the state first loaded.
    loaded: Option<tokio::sync::oneshot::Sender<()>>,
    /// Told once the replica holds what the shared store holds.
    synced: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Moves `seen` up to `g`; says whether it moved.
fn raise(seen: &mut u64, g: u64) -> bool {
    if g > *seen {
        *seen = g;
        true
    } else {
        false
    }
}

/// The hash field a signal is kept under: the latest per type and target.
fn field(s: &Signal) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}{}",
        s.kind.as_str(),
        s.subject,
        s.session,
        s.device,
        if s.until.is_some() {
            "\u{1f}detected"
        } else {
            ""
        }
    )
}

/// Calls `each(field, value)` for every field of the hash `key` (HSCAN, 1000 at a time).
async fn scan_hash(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    mut each: impl FnMut(&str, &str),
) -> redis::RedisResult<()> {
    let mut cursor = "0".to_owned();
    loop {
        let (next, pairs): (String, Vec<String>) = redis::cmd("HSCAN")
            .arg(key)
            .arg(&cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        for pair in pairs.chunks(2) {
            if let [field, value] = pair {
                each(field, value);
            }
        }
        if next == "0" {
            return Ok(());
        }
        cursor = next;
    }
}

/// Counts a signal received.
fn received(s: &Signal, source: &'static str) {
    crate::metrics::metrics()
        .signals
        .get_or_create(&crate::metrics::SignalLabels {
            r#type: s.kind.as_str(),
            source,
        })
        .inc();
}

fn connection_config(response_timeout: Duration) -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(response_timeout)
}
