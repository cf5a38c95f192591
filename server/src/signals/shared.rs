//! The signals a replica serves from: its in-memory [`Store`], fed by this replica alone
//! (`memory`) or by a Redis shared with the other replicas (`redis://…`). With Redis, a
//! signal is written to a hash holding the latest signal per subject/session/device and
//! type (a Lua script keeps the later event) and appended to a stream; every replica applies
//! the stream as it grows (`XREAD BLOCK`) and loads the whole hash when it starts or
//! reconnects. A replica that cannot reach Redis keeps serving on what it knows and, after
//! the staleness bound, denies sensitive actions.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wildmatch::WildMatch;

use super::detect::{DetectionRule, Detector};
use super::store::{Full, Store, StoreConfig};
use super::Signal;

/// Stream entries kept in Redis (approximately); a replica further behind reloads the hash.
const STREAM_MAX_LEN: usize = 100_000;
/// How long one `XREAD` blocks; also how often a quiet connection proves it is alive.
const BLOCK_MS: u64 = 1000;

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

struct RedisLink {
    client: redis::Client,
    hash: String,
    stream: String,
    writer: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    script: redis::Script,
    prune: redis::Script,
    connected: AtomicBool,
    /// Milliseconds after `started` when Redis last answered; 0: never.
    last_contact_ms: AtomicU64,
}

/// The signals of this replica.
pub struct Signals {
    /// The store decisions read.
    pub store: Arc<Store>,
    redis: Option<RedisLink>,
    started: Instant,
    stale_after: Duration,
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

// Keeps the event that happened later in the hash; appends to the stream either way (a
// replica applies the older event as a no-op).
const PUBLISH_SCRIPT: &str = r"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if (not current) or (tonumber(cjson.decode(current)['at']) <= tonumber(ARGV[3])) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'signal', ARGV[2])
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
                    writer: tokio::sync::Mutex::new(None),
                    script: redis::Script::new(PUBLISH_SCRIPT),
                    prune: redis::Script::new(PRUNE_SCRIPT),
                    connected: AtomicBool::new(false),
                    last_contact_ms: AtomicU64::new(0),
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
    /// memory; from start until the shared store first answers).
    pub fn stale(&self) -> bool {
        let Some(r) = &self.redis else {
            return false;
        };
        r.last_contact_ms.load(Ordering::Acquire) == 0
            || self.since_contact().is_some_and(|d| d > self.stale_after)
    }

    fn contact(&self, r: &RedisLink) {
        let ms = u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        r.last_contact_ms.store(ms, Ordering::Release);
        r.connected.store(true, Ordering::Release);
    }

    /// Puts signals in force on this replica and, with Redis, writes them there for the
    /// others; returns how many changed state here.
    pub async fn publish(
        &self,
        signals: &[Signal],
        source: &'static str,
    ) -> Result<usize, PublishError> {
        let mut applied = 0;
        for s in signals {
            received(s, source);
            if self.store.apply(s)? {
                applied += 1;
            }
        }
        self.share(signals).await?;
        Ok(applied)
    }

    /// Writes signals to Redis for the other replicas (nothing to do in memory).
    pub async fn share(&self, signals: &[Signal]) -> Result<(), PublishError> {
        if let Some(r) = &self.redis {
            for s in signals {
                self.write(r, s)
                    .await
                    .map_err(|e| PublishError::Unavailable(e.to_string()))?;
            }
        }
        Ok(())
    }

    async fn write(&self, r: &RedisLink, s: &Signal) -> redis::RedisResult<()> {
        let json = serde_json::to_string(s).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::TypeError, "encode", e.to_string()))
        })?;
        let field = format!(
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
        );
        let mut conn = Self::connection(r).await?;
        let result: redis::RedisResult<String> = r
            .script
            .key(&r.hash)
            .key(&r.stream)
            .arg(field)
            .arg(json)
            .arg(s.at)
            .arg(STREAM_MAX_LEN)
            .invoke_async(&mut conn)
            .await;
        if result.is_err() {
            // Connect afresh next time.
            *r.writer.lock().await = None;
        }
        result.map(|_| ())
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
    /// what the others know.
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
        let me = self.clone();
        tokio::spawn(async move { me.follow(loaded_tx).await });
        if tokio::time::timeout(initial_wait, loaded_rx).await.is_err() {
            tracing::warn!(
                "the shared signal store did not answer within {initial_wait:?}: serving without it, sensitive actions denied until it does"
            );
        }
    }

    /// Follows Redis for ever: loads the state, then applies the stream; on any error,
    /// reconnects with backoff and loads the state again.
    async fn follow(self: Arc<Self>, loaded: tokio::sync::oneshot::Sender<()>) {
        let Some(r) = &self.redis else {
            return;
        };
        let mut loaded = Some(loaded);
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.follow_once(r, &mut loaded).await {
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

    async fn follow_once(
        &self,
        r: &RedisLink,
        loaded: &mut Option<tokio::sync::oneshot::Sender<()>>,
    ) -> redis::RedisResult<()> {
        let mut conn = r
            .client
            .get_multiplexed_async_connection_with_config(&connection_config(
                Duration::from_millis(BLOCK_MS * 3),
            ))
            .await?;
        // Where the stream ends now; then the state (events in between apply twice, which
        // changes nothing).
        let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&r.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
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
        self.contact(r);
        tracing::info!("loaded {count} signals from the shared signal store");
        if let Some(tx) = loaded.take() {
            let _ = tx.send(());
        }
        loop {
            let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1000)
                .arg("BLOCK")
                .arg(BLOCK_MS)
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
                    last_id = entry.id;
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
