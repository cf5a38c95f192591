//! The local decision cache: decisions kept exactly as long as the PDP's `ttl` says (and no
//! longer than the configured cap), bounded, keyed by everything the decision can depend on;
//! emptied or pruned at once by the PDP's Watch stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pdp_proto::v1 as pb;
use sha2::{Digest, Sha256};

use crate::Decision;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    decision: Decision,
    subject: String,
    session: String,
    device: String,
    revision: String,
    inserted: Instant,
    ttl: Duration,
}

struct EntryExpiry;

impl moka::Expiry<Vec<u8>, Entry> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &Vec<u8>,
        entry: &Entry,
        _now: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The cache.
pub(crate) struct Cache {
    entries: moka::sync::Cache<Vec<u8>, Entry>,
    max_ttl: Duration,
    /// Off while the Watch stream has been down past the bound: nothing is served or kept.
    pub(crate) suspended: AtomicBool,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("entries", &self.entries.entry_count())
            .field("max_ttl", &self.max_ttl)
            .finish_non_exhaustive()
    }
}

impl Cache {
    pub(crate) fn new(max_entries: u64, max_ttl: Duration) -> Cache {
        Cache {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(EntryExpiry)
                .support_invalidation_closures()
                .build(),
            max_ttl,
            suspended: AtomicBool::new(false),
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<Decision> {
        if self.suspended.load(Ordering::Acquire) {
            return None;
        }
        let e = self.entries.get(key)?;
        let left = e.ttl.saturating_sub(e.inserted.elapsed());
        (!left.is_zero()).then(|| e.decision.cached_with(left))
    }

    pub(crate) fn insert(&self, key: Vec<u8>, request: &pb::CheckRequest, decision: &Decision) {
        let ttl = decision.ttl().min(self.max_ttl);
        if ttl.is_zero() || self.suspended.load(Ordering::Acquire) {
            return;
        }
        let subject = request.subject.as_ref();
        self.entries.insert(
            key,
            Entry {
                decision: decision.clone(),
                subject: subject.map(|s| s.id.clone()).unwrap_or_default(),
                session: subject.map(|s| s.session_id.clone()).unwrap_or_default(),
                device: subject.map(|s| s.device_id.clone()).unwrap_or_default(),
                revision: decision.policy_revision().to_owned(),
                inserted: Instant::now(),
                ttl,
            },
        );
    }

    /// Applies one invalidation from the Watch stream.
    pub(crate) fn invalidate(&self, i: &pb::Invalidation) {
        if i.reset {
            self.entries.invalidate_all();
            return;
        }
        let drop_if = |f: Box<dyn Fn(&Entry) -> bool + Send + Sync>| {
            if let Err(e) = self.entries.invalidate_entries_if(move |_, entry| f(entry)) {
                tracing::warn!("the decision cache could not be pruned, emptying it: {e}");
                self.entries.invalidate_all();
            }
        };
        if !i.subject.is_empty() {
            let s = i.subject.clone();
            drop_if(Box::new(move |e| e.subject == s));
        }
        if !i.session_id.is_empty() {
            let s = i.session_id.clone();
            drop_if(Box::new(move |e| e.session == s));
        }
        if !i.device_id.is_empty() {
            let d = i.device_id.clone();
            drop_if(Box::new(move |e| e.device == d));
        }
        if !i.policy_revision.is_empty() {
            let r = i.policy_revision.clone();
            drop_if(Box::new(move |e| e.revision != r));
        }
    }

    pub(crate) fn clear(&self) {
        self.entries.invalidate_all();
    }
}

/// The canonical key of a request: every field a decision can depend on, length-prefixed,
/// with roles and tags in order and the token as its SHA-256 digest.
pub(crate) fn key(r: &pb::CheckRequest) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut put = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    let subject = r.subject.clone().unwrap_or_default();
    put(subject.id.as_bytes());
    if subject.token.is_empty() {
        put(b"");
    } else {
        put(&Sha256::digest(subject.token.as_bytes()));
    }
    let mut roles: Vec<&str> = subject.roles.iter().map(String::as_str).collect();
    roles.sort_unstable();
    put(&(roles.len() as u64).to_le_bytes());
    for role in roles {
        put(role.as_bytes());
    }
    let resource = r.resource.clone().unwrap_or_default();
    for tags in [&subject.tags, &resource.tags] {
        let mut sorted: Vec<(&String, &String)> = tags.iter().collect();
        sorted.sort_unstable();
        put(&(sorted.len() as u64).to_le_bytes());
        for (k, v) in sorted {
            put(k.as_bytes());
            put(v.as_bytes());
        }
    }
    put(subject.session_id.as_bytes());
    put(subject.device_id.as_bytes());
    put(r.action.as_bytes());
    put(resource.id.as_bytes());
    put(resource.r#type.as_bytes());
    // Struct fields are a BTreeMap: their encoding is in key order.
    put(&r
        .context
        .as_ref()
        .map(prost::Message::encode_to_vec)
        .unwrap_or_default());
    out
}
