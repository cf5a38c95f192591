//! The decision cache. Its key is the request as the engine decides it (after identity is
//! resolved) plus the policy revision, so a reload can never serve a stale decision: a new
//! revision simply misses. Entries expire after the configured TTL, and never after the token
//! that proved the subject's identity; decisions that read the clock are not cached. Bounded
//! in bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pdp_engine::{Request, Scalar, Value};

use crate::decider::Outcome;

/// A cached response, when it was cached and how long it may be served.
#[derive(Debug, Clone)]
struct Entry {
    response: Arc<Outcome>,
    inserted: Instant,
    lifetime: Duration,
}

struct EntryExpiry;

impl moka::Expiry<Vec<u8>, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &Vec<u8>,
        entry: &Entry,
        _now: Instant,
    ) -> Option<Duration> {
        Some(entry.lifetime)
    }
}

/// Decision cache.
pub struct DecisionCache {
    cache: moka::sync::Cache<Vec<u8>, Entry>,
    ttl: Duration,
}

impl std::fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.cache.entry_count())
            .finish_non_exhaustive()
    }
}

impl DecisionCache {
    /// A cache of at most `max_bytes` (keys and responses, approximately) whose entries live
    /// at most `ttl`.
    pub fn new(max_bytes: u64, ttl: Duration) -> Self {
        DecisionCache {
            cache: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &Vec<u8>, e: &Entry| {
                    u32::try_from(k.len() + 64 + e.response.weight()).unwrap_or(u32::MAX)
                })
                .expire_after(EntryExpiry)
                .eviction_listener(|_, _, cause| evicted("decision", cause))
                .build(),
            ttl,
        }
    }

    /// A cached response for `key` and how much longer it may be served.
    pub fn get(&self, key: &[u8]) -> Option<(Arc<Outcome>, Duration)> {
        self.cache
            .get(key)
            .map(|e| (e.response, e.lifetime.saturating_sub(e.inserted.elapsed())))
    }

    /// Caches a response for at most the TTL and at most `limit` (e.g. until the token
    /// expires), and says for how long (zero: not cached).
    pub fn insert(&self, key: Vec<u8>, response: Outcome, limit: Option<Duration>) -> Duration {
        let lifetime = limit.map_or(self.ttl, |l| l.min(self.ttl));
        if !lifetime.is_zero() {
            self.cache.insert(
                key,
                Entry {
                    response: Arc::new(response),
                    inserted: Instant::now(),
                    lifetime,
                },
            );
        }
        lifetime
    }
}

/// Counts an entry removed for size or expiry (not one replaced or invalidated).
pub fn evicted(cache: &'static str, cause: moka::notification::RemovalCause) {
    if cause.was_evicted() {
        crate::metrics::metrics()
            .cache_evictions
            .get_or_create(&crate::metrics::CacheName { cache })
            .inc();
    }
}

/// The canonical key of a request decided by a set of `revision` with the subject's,
/// session's and device's signal `generation` (a signal makes older entries unreachable): every field the decision
/// can depend on, length-prefixed, with roles sorted and context keys in a case-insensitive
/// order (as the engine compares them).
pub fn key(revision: &str, generation: u64, r: &Request) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    put(revision.as_bytes());
    put(&generation.to_le_bytes());
    put(r.subject.id.as_bytes());
    let mut roles: Vec<&str> = r.subject.roles.iter().map(|r| r.as_str()).collect();
    roles.sort_unstable();
    roles.dedup();
    put(&(roles.len() as u64).to_le_bytes());
    for role in roles {
        put(role.as_bytes());
    }
    for tags in [&r.subject.tags, &r.resource.tags] {
        put(&(tags.len() as u64).to_le_bytes());
        for (k, v) in tags {
            put(k.as_bytes());
            put(v.as_bytes());
        }
    }
    put(r.action.as_bytes());
    put(r.resource.id.as_bytes());
    let mut context: Vec<(String, &Value)> = r
        .context
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    context.sort_by(|a, b| a.0.cmp(&b.0));
    put(&(context.len() as u64).to_le_bytes());
    let scalar = |s: &Scalar, put: &mut dyn FnMut(&[u8])| match s {
        Scalar::String(v) => {
            put(b"s");
            put(v.as_bytes());
        }
        Scalar::Number(v) => {
            put(b"n");
            put(&v.to_bits().to_le_bytes());
        }
        Scalar::Bool(v) => put(if *v { b"t" } else { b"f" }),
    };
    for (k, v) in context {
        put(k.as_bytes());
        match v {
            Value::One(s) => scalar(s, &mut put),
            Value::Many(list) => {
                put(b"[");
                put(&(list.len() as u64).to_le_bytes());
                for s in list {
                    scalar(s, &mut put);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(roles: &[&str], ctx: &[(&str, &str)]) -> Request {
        Request {
            subject: pdp_engine::Subject {
                id: "u".into(),
                roles: roles.iter().map(|s| (*s).into()).collect(),
                ..Default::default()
            },
            action: "s3:GetObject".into(),
            context: ctx.iter().map(|(k, v)| (*k, Value::from(*v))).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn keys_ignore_role_and_context_order_but_nothing_else() {
        let a = key("r1", 0, &req(&["A", "B"], &[("x", "1"), ("Y", "2")]));
        let b = key("r1", 0, &req(&["B", "A"], &[("y", "2"), ("X", "1")]));
        assert_eq!(a, b);
        assert_ne!(
            a,
            key("r1", 7, &req(&["A", "B"], &[("x", "1"), ("Y", "2")]))
        );
        assert_ne!(
            a,
            key("r2", 0, &req(&["A", "B"], &[("x", "1"), ("Y", "2")]))
        );
        assert_ne!(a, key("r1", 0, &req(&["A"], &[("x", "1"), ("Y", "2")])));
        assert_ne!(
            a,
            key("r1", 0, &req(&["A", "B"], &[("x", "1"), ("Y", "3")]))
        );
        // Length prefixes keep field boundaries: "ab" + "c" differs from "a" + "bc".
        assert_ne!(
            key("r", 0, &req(&["ab", "c"], &[])),
            key("r", 0, &req(&["a", "bc"], &[]))
        );
    }

    #[test]
    fn entries_never_outlive_their_limit() {
        let cache = DecisionCache::new(1 << 20, Duration::from_secs(60));
        cache.insert(
            b"k".to_vec(),
            Outcome::refused(crate::decider::Reason::ImplicitDeny, "", "r"),
            Some(Duration::ZERO),
        );
        assert!(cache.get(b"k").is_none());
        cache.insert(
            b"k".to_vec(),
            Outcome::refused(crate::decider::Reason::ImplicitDeny, "", "r"),
            Some(Duration::from_millis(30)),
        );
        assert!(cache.get(b"k").is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(cache.get(b"k").is_none());
    }
}
