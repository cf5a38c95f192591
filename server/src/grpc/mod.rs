//! The gRPC transport: `pdp.v1.AuthorizationService` over the engine. Each RPC converts its
//! input (`convert`), makes one call into the engine, and converts back.

pub mod admin;
pub mod convert;
pub mod signals;

use std::sync::Arc;

use pdp_engine::PolicySet;
use pdp_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::signals::store::{Facts, Guard};
use crate::telemetry::{stage, Traced};
use convert::{Limits, Parts};
use opentelemetry::KeyValue;

/// What every call reads.
#[derive(Debug)]
pub struct State {
    /// The policy set serving; replaced whole on reload, so a call reads one set throughout.
    pub set: arc_swap::ArcSwap<PolicySet>,
    /// Bounds on request fields.
    pub limits: Limits,
    /// Most items in one `CheckBatch`.
    pub max_batch_items: usize,
    /// A fixed clock for `aws:CurrentTime` / `aws:EpochTime` (tests replaying cases that
    /// pin the time); the system clock when `None`.
    pub clock: Option<chrono::DateTime<chrono::Utc>>,
    /// Verifies `subject.token`; without one, a request carrying a token is denied.
    pub verifier: Option<crate::identity::Verifier>,
    /// Caches decisions; `None` decides every call.
    pub cache: Option<crate::cache::DecisionCache>,
    /// Which callers may assert subjects without a token, and which hold the admin grant.
    pub trust: crate::trust::TrustPolicy,
    /// The policy directory reloads read; `None` for sets built in memory.
    pub policies: Option<std::path::PathBuf>,
    /// Reload outcomes.
    pub reloads: Arc<crate::reload::ReloadStats>,
    /// Security signals: request facts, built-in guards, invalidations.
    pub signals: Arc<crate::signals::shared::Signals>,
    /// Whether the serving set reads `pdp:SessionAge` (a value that changes every second,
    /// so it is only computed, and only splits cache keys, when a policy reads it).
    pub reads_session_age: std::sync::atomic::AtomicBool,
    /// Verifies SSF push deliveries; `None`: no transmitter configured.
    pub ssf: Option<crate::signals::ssf::SetVerifier>,
    /// Roles and tags claims, for `token-claims-change` signals.
    pub claims: (Vec<String>, String),
    /// The decision log, when on.
    pub audit: Option<crate::audit::DecisionLog>,
    /// Tracing, when on.
    pub telemetry: Option<crate::telemetry::Telemetry>,
    /// How Envoy's HTTP requests map to decision requests (`routes.yaml`); replaced with the
    /// policy set.
    pub routes: arc_swap::ArcSwap<crate::extauthz::routes::RouteTable>,
    /// The AuthZEN API's public base URL, for its metadata; `None`: no metadata published.
    pub authzen_base_url: Option<String>,
    /// The process-wide bound on calls in flight, shared by both ports.
    pub in_flight: crate::shed::InFlight,
}

/// The `AuthorizationService` implementation.
#[derive(Debug, Clone)]
pub struct Authorizer {
    state: Arc<State>,
}

impl State {
    /// State serving `set` with the default limits and the system clock.
    pub fn new(set: PolicySet, max_batch_items: usize) -> Self {
        let reads_session_age = set.reads_context_key(SESSION_AGE);
        crate::metrics::metrics().policy_serving(set.revision(), set.statement_count());
        let identity = crate::identity::IdentityConfig::default();
        State {
            set: arc_swap::ArcSwap::from_pointee(set),
            signals: Arc::new(crate::signals::shared::Signals::in_memory()),
            reads_session_age: reads_session_age.into(),
            ssf: None,
            claims: (identity.roles_claims, identity.tags_claim),
            audit: None,
            telemetry: None,
            routes: arc_swap::ArcSwap::from_pointee(crate::extauthz::routes::RouteTable::default()),
            limits: convert::DEFAULT_LIMITS,
            max_batch_items,
            clock: None,
            verifier: None,
            cache: None,
            trust: crate::trust::TrustPolicy::default(),
            policies: None,
            reloads: Arc::default(),
            authzen_base_url: None,
            in_flight: crate::shed::InFlight::new(crate::serve::DEFAULT_SERVE_LIMITS.max_in_flight),
        }
    }
}

impl State {
    /// Serves `set` from now on.
    pub fn set_policies(&self, set: PolicySet) {
        self.reads_session_age.store(
            set.reads_context_key(SESSION_AGE),
            std::sync::atomic::Ordering::Release,
        );
        self.set.store(Arc::new(set));
    }
}

const SESSION_AGE: &str = "pdp:SessionAge";

impl Authorizer {
    /// A service deciding with `state`.
    pub fn new(state: Arc<State>) -> Self {
        Authorizer { state }
    }
}

/// Context keys that carry identity facts: honoured only from callers trusted to assert them.
const IDENTITY_KEY_PREFIXES: &[&str] =
    &["aws:multifactorauth", "aws:tokenissuetime", "aws:principal"];

/// Most identity context keys an ignored-identity note names.
const NOTE_MAX_KEYS: usize = 4;

/// What an untrusted caller asserted without a token and the PDP ignored (the subject's
/// `id`, `roles`, `tags`, identity context keys), as a note for the response; `None` when
/// it asserted nothing (or sent a token, whose claims replace the caller's words anyway).
fn ignored_identity(parts: &Parts<'_>) -> Option<String> {
    let mut fields = Vec::new();
    if let Some(s) = parts.subject {
        if !s.token.is_empty() {
            return None;
        }
        for (name, asserted) in [
            ("subject.id", !s.id.is_empty()),
            ("subject.roles", !s.roles.is_empty()),
            ("subject.tags", !s.tags.is_empty()),
        ] {
            if asserted {
                fields.push(format!("`{name}`"));
            }
        }
    }
    let keys: Vec<&str> = parts
        .context
        .map(|c| {
            c.fields
                .keys()
                .filter(|k| {
                    let k = k.to_ascii_lowercase();
                    IDENTITY_KEY_PREFIXES.iter().any(|p| k.starts_with(p))
                })
                .map(String::as_str)
                .collect()
        })
        .unwrap_or_default();
    for k in keys.iter().take(NOTE_MAX_KEYS) {
        fields.push(format!("context key `{k}`"));
    }
    if keys.len() > NOTE_MAX_KEYS {
        fields.push(format!(
            "{} more identity context keys",
            keys.len() - NOTE_MAX_KEYS
        ));
    }
    if fields.is_empty() {
        return None;
    }
    Some(format!(
        "the caller is not trusted to assert identity, so the PDP ignored {}: decided as an anonymous subject (send `subject.token`, or call as a trusted caller)",
        fields.join(", ")
    ))
}

/// Adds `note` to a response's message.
fn append_message(message: &mut String, note: &str) {
    if !message.is_empty() {
        message.push_str("; ");
    }
    message.push_str(note);
}

impl Authorizer {
    /// Whether the caller may assert the subject's roles, tags and identity facts itself;
    /// `PERMISSION_DENIED` when it may not call at all.
    fn trusted<T>(&self, request: &Request<T>) -> Result<bool, Status> {
        let certs = request.peer_certs();
        let certs = certs.as_deref().map(Vec::as_slice);
        let trust = &self.state.trust;
        if !trust.may_check(request.remote_addr(), certs) {
            return Err(Status::permission_denied(
                "this caller may not ask for decisions",
            ));
        }
        Ok(trust.trusts(request.remote_addr(), certs))
    }
}

/// A unique decision id: a UUID v7 (RFC 9562), ordered by its millisecond timestamp. The 74
/// bits after it are a per-process random start plus a counter, not fresh randomness, so
/// that no id costs a system call for entropy; ids stay unique within a process by the
/// counter, and across processes by the random start.
fn decision_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static START: OnceLock<([u8; 2], u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (high, low) = *START.get_or_init(|| {
        let (a, b) = uuid::Uuid::new_v4().as_u64_pair();
        let [h0, h1, ..] = a.to_be_bytes();
        ([h0, h1], b)
    });
    let n = low.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed));
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let mut tail = [0u8; 10];
    let (a, b) = tail.split_at_mut(2);
    a.copy_from_slice(&high);
    b.copy_from_slice(&n.to_be_bytes());
    // The builder overwrites the version and variant bits (6 of the 80 given).
    uuid::Builder::from_unix_timestamp_millis(millis, &tail)
        .into_uuid()
        .to_string()
}

/// Whether a batch stops after an item that was (or was not) allowed, under `semantic`
/// (the AuthZEN `evaluations_semantic`; a failed item counts as a deny).
pub fn batch_stops(semantic: pb::BatchSemantic, allowed: bool) -> bool {
    match semantic {
        pb::BatchSemantic::ExecuteAll => false,
        pb::BatchSemantic::DenyOnFirstDeny => !allowed,
        pb::BatchSemantic::PermitOnFirstPermit => allowed,
    }
}

/// Records a batch's size and allowed items on its span.
pub fn trace_batch(call: &Call, items: usize, allowed: usize) {
    if let Some(t) = &call.traced {
        t.set([
            KeyValue::new("pdp.items", i64::try_from(items).unwrap_or(i64::MAX)),
            KeyValue::new(
                "pdp.allowed_items",
                i64::try_from(allowed).unwrap_or(i64::MAX),
            ),
        ]);
    }
}

/// `PERMISSION_DENIED` unless the caller is trusted (loopback, or a trusted client
/// certificate); `what` says what it may not do.
pub fn require_trusted<T>(state: &State, request: &Request<T>, what: &str) -> Result<(), Status> {
    let certs = request.peer_certs();
    if state
        .trust
        .trusts(request.remote_addr(), certs.as_deref().map(Vec::as_slice))
    {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "only trusted callers may {what}"
        )))
    }
}

/// `PERMISSION_DENIED` unless the caller holds the admin grant (a listed client certificate,
/// the admin bearer token, or loopback where granted for development); `UNAUTHENTICATED`
/// for a wrong bearer token. `what` says what it may not do.
pub fn require_admin<T>(state: &State, request: &Request<T>, what: &str) -> Result<(), Status> {
    let certs = request.peer_certs();
    let bearer = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match state.trust.may_administer(
        request.remote_addr(),
        certs.as_deref().map(Vec::as_slice),
        bearer,
    ) {
        Ok(()) => Ok(()),
        Err(crate::trust::AdminRefusal::BadToken) => {
            tracing::info!(peer = ?request.remote_addr(), "admin call refused: wrong bearer token");
            Err(Status::unauthenticated(
                "the bearer token is not the admin token",
            ))
        }
        Err(crate::trust::AdminRefusal::NoGrant) => Err(Status::permission_denied(format!(
            "only callers granted admin access may {what} (the admin token as \
             `authorization: Bearer`, or a client certificate listed in `trust.admin_callers`)"
        ))),
    }
}

/// The `reason` label of a response.
pub fn reason_label(reason: pb::Reason) -> &'static str {
    match reason {
        pb::Reason::Unspecified => "unspecified",
        pb::Reason::Allowed => "allowed",
        pb::Reason::ExplicitDeny => "explicit_deny",
        pb::Reason::ImplicitDeny => "implicit_deny",
        pb::Reason::InvalidIdentity => "invalid_identity",
        pb::Reason::SessionRevoked => "session_revoked",
        pb::Reason::CredentialChanged => "credential_changed",
        pb::Reason::SignalsStale => "signals_stale",
        pb::Reason::AuditUnavailable => "audit_unavailable",
    }
}

impl Authorizer {
    /// One decision for a front end other than `AuthorizationService` (AuthZEN, ext_authz):
    /// the same path as `Check` (identity, signals, cache, engine, metrics, decision log).
    /// `trusted`: whether the caller may assert the subject's roles, tags and identity
    /// facts. With `stages`, the stages get spans under `call.traced`.
    pub fn ask(
        &self,
        parts: &Parts<'_>,
        trusted: bool,
        call: &Call,
        stages: bool,
    ) -> Result<pb::CheckResponse, Status> {
        self.decide_counted(parts, trusted, "", call, stages)
    }

    /// The state decisions are made with.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// [`Self::decide`], counted and timed.
    fn decide_counted(
        &self,
        parts: &Parts<'_>,
        trusted: bool,
        prefix: &str,
        call: &Call,
        stages: bool,
    ) -> Result<pb::CheckResponse, Status> {
        let started = std::time::Instant::now();
        let traced = call.traced.as_ref().filter(|_| stages);
        let mut described =
            (self.state.audit.is_some() || traced.is_some()).then(Described::default);
        let decided = self.decide(
            parts,
            trusted,
            prefix,
            call.signals_behind,
            &mut described,
            traced,
        );
        let response = match decided {
            Ok(mut r) => {
                if !trusted {
                    if let Some(note) = ignored_identity(parts) {
                        append_message(&mut r.message, &note);
                    }
                }
                r
            }
            Err(status) => {
                if let Some(t) = traced {
                    t.error(status.message().to_owned());
                }
                return Err(status);
            }
        };
        let reason = reason_label(response.reason());
        Ok(self.record(call, traced, response, described, reason, started))
    }

    /// A request refused before it could become a decision request (ext_authz's unsafe
    /// paths): a deny labelled `reason`, with `message` for the caller, recorded like every
    /// decision (span, decision log, metrics). `resource` is what the decision log shows as
    /// the resource (the request as far as it could be read).
    pub fn refuse(
        &self,
        call: &Call,
        reason: &'static str,
        message: &str,
        resource: &str,
    ) -> pb::CheckResponse {
        let started = std::time::Instant::now();
        let traced = call.traced.as_ref();
        let described = (self.state.audit.is_some() || traced.is_some()).then(|| Described {
            time: self.state.clock.unwrap_or_else(chrono::Utc::now),
            resource: resource.into(),
            ..Described::default()
        });
        tracing::debug!(reason, resource, "{message}");
        let response = convert::refused(
            pb::Reason::Unspecified,
            message,
            self.state.set.load().revision(),
            decision_id(),
        );
        self.record(call, traced, response, described, reason, started)
    }

    /// Records a decision labelled `reason` on the span, in the decision log and in the
    /// metrics; the response, refused instead when the log cannot take it and must.
    fn record(
        &self,
        call: &Call,
        traced: Option<&Traced>,
        mut response: pb::CheckResponse,
        described: Option<Described>,
        mut reason: &'static str,
        started: std::time::Instant,
    ) -> pb::CheckResponse {
        let elapsed = started.elapsed();
        if let (Some(t), Some(d)) = (traced, &described) {
            t.set([
                KeyValue::new("pdp.decision_id", response.decision_id.clone()),
                KeyValue::new(
                    "pdp.decision",
                    if response.decision == pb::Decision::Allow as i32 {
                        "allow"
                    } else {
                        "deny"
                    },
                ),
                KeyValue::new("pdp.reason", reason),
                KeyValue::new("pdp.action", d.action.to_string()),
                KeyValue::new("pdp.policy.revision", response.policy_revision.clone()),
                KeyValue::new("pdp.cache.hit", d.cached),
                KeyValue::new(
                    "pdp.determining",
                    opentelemetry::Value::Array(
                        response
                            .determining
                            .iter()
                            .map(|s| {
                                opentelemetry::StringValue::from(crate::audit::statement_id(
                                    &s.policy, &s.sid, s.index,
                                ))
                            })
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                ),
                KeyValue::new(
                    "pdp.obligations",
                    opentelemetry::Value::Array(
                        response
                            .obligations
                            .iter()
                            .map(|o| opentelemetry::StringValue::from(o.id.clone()))
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                ),
            ]);
        }
        if let (Some(log), Some(d)) = (&self.state.audit, described) {
            use crate::audit::Text;
            let mut record = crate::audit::Record::new(d.time, call.api);
            record.peer = call.peer;
            record.allowed = response.decision == pb::Decision::Allow as i32;
            record.reason = reason;
            record.latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            record.cached = d.cached;
            record
                .set(Text::DecisionId, &response.decision_id)
                .set(Text::TraceId, &call.trace_id)
                .set(Text::Caller, &call.sans)
                .set(Text::Subject, &d.subject)
                .set(Text::Action, &d.action)
                .set(Text::Resource, &d.resource)
                .set(Text::Revision, &response.policy_revision);
            for s in &response.determining {
                record.push_determining(&s.policy, &s.sid, s.index);
            }
            for o in &response.obligations {
                record.push_obligation(&o.id);
            }
            if !log.submit(record) {
                let m = crate::metrics::metrics();
                match log.overflow() {
                    crate::audit::Overflow::Drop => {
                        m.log_dropped.inc();
                    }
                    crate::audit::Overflow::Deny => {
                        m.log_refused.inc();
                        reason = reason_label(pb::Reason::AuditUnavailable);
                        response = convert::refused(
                            pb::Reason::AuditUnavailable,
                            "the decision log cannot keep up, and decisions are not made unlogged",
                            &response.policy_revision,
                            response.decision_id,
                        );
                    }
                }
            }
        }
        crate::metrics::metrics().decided(
            response.decision == pb::Decision::Allow as i32,
            reason,
            call.api,
            elapsed.as_secs_f64(),
        );
        response
    }

    fn decide(
        &self,
        parts: &Parts<'_>,
        trusted: bool,
        prefix: &str,
        signals_behind: bool,
        described: &mut Option<Described>,
        traced: Option<&Traced>,
    ) -> Result<pb::CheckResponse, Status> {
        let set = self.state.set.load();
        let now = self.state.clock.unwrap_or_else(chrono::Utc::now);
        if let Some(d) = described.as_mut() {
            d.time = now;
        }
        let token = parts.subject.map_or("", |s| s.token.as_str());
        let verified = if token.is_empty() {
            None
        } else {
            let checked = match &self.state.verifier {
                Some(v) => stage(traced, "pdp.identity", || v.verify(token, now.timestamp()))
                    .map_err(|e| (e.kind(), e.to_string())),
                None => Err(("no_keys", "this PDP verifies no tokens (start it with --jwks): send the subject without a token from a trusted caller".to_owned())),
            };
            match checked {
                Ok(v) => Some(v),
                Err((kind, message)) => {
                    crate::metrics::metrics()
                        .token_failures
                        .get_or_create(&crate::metrics::KindLabel { kind })
                        .inc();
                    tracing::debug!(reason = "REASON_INVALID_IDENTITY", "{message}");
                    if let Some(d) = described {
                        d.subject = parts
                            .subject
                            .map(|s| s.id.as_str().into())
                            .unwrap_or_default();
                        d.action = parts.action.into();
                        d.resource = parts
                            .resource
                            .map(|r| r.id.as_str().into())
                            .unwrap_or_default();
                    }
                    return Ok(convert::invalid_identity(
                        &message,
                        set.revision(),
                        decision_id(),
                    ));
                }
            }
        };
        let mut request = convert::request(parts, &self.state.limits, prefix)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !trusted || verified.is_some() {
            // Identity asserted by the caller counts for nothing unless the caller is trusted
            // to assert it, and never beside a token.
            request.subject = pdp_engine::Subject::default();
            let kept: pdp_engine::Context = request
                .context
                .iter()
                .filter(|(k, _)| {
                    let k = k.to_ascii_lowercase();
                    !IDENTITY_KEY_PREFIXES.iter().any(|p| k.starts_with(p))
                })
                .map(|(k, v)| (k.to_owned(), v.clone()))
                .collect();
            request.context = kept;
        }
        // Signal facts come from the PDP only, whoever the caller.
        if request
            .context
            .iter()
            .any(|(k, _)| k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("pdp:")))
        {
            request
                .context
                .retain(|k, _| !SIGNAL_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k)));
        }
        let token_expires_at = verified.as_ref().map(|v| v.expires_at);
        let subject = parts.subject;
        let session = verified
            .as_ref()
            .and_then(|v| v.session.clone())
            .or_else(|| subject.map(|s| s.session_id.clone()))
            .unwrap_or_default();
        let device = subject.map_or("", |s| s.device_id.as_str());
        let issued_at = match &verified {
            Some(v) => v.issued_at.or(v.auth_time),
            None => issue_time(&request.context),
        };
        if let Some(v) = verified {
            request.subject = pdp_engine::Subject {
                id: v.id.as_str().into(),
                roles: v.roles.iter().map(|r| r.as_str().into()).collect(),
                tags: v
                    .tags
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                    .collect(),
            };
            for (key, value) in v.facts(now.timestamp()) {
                request.context.insert(key, value);
            }
        }
        let signals = &self.state.signals;
        let facts = stage(traced, "pdp.signals", || {
            signals.store.lookup(
                &crate::signals::store::Query {
                    subject: &request.subject.id,
                    session: &session,
                    device,
                    issued_at,
                },
                now.timestamp(),
            )
        });
        if let Some((guard, message)) = &facts.guard {
            let reason = match guard {
                Guard::SessionRevoked => pb::Reason::SessionRevoked,
                Guard::CredentialChanged => pb::Reason::CredentialChanged,
            };
            tracing::debug!(reason = reason.as_str_name(), "{message}");
            let response = convert::refused(reason, message, set.revision(), decision_id());
            self.observe(&request, false, now);
            return Ok(logged(response, &mut request, false, described));
        }
        let stale = if signals_behind {
            Some("this replica has not applied the signals up to the request's `min_signal_generation` within the bound")
        } else if signals.stale() && signals.is_sensitive(&request.action) {
            Some("the signal store has been out of reach longer than the staleness bound, and this action is sensitive")
        } else {
            None
        };
        if let Some(message) = stale {
            let response = convert::refused(
                pb::Reason::SignalsStale,
                message,
                set.revision(),
                decision_id(),
            );
            self.observe(&request, false, now);
            return Ok(logged(response, &mut request, false, described));
        }
        let generation = facts.generation;
        apply_facts(&mut request, facts, &session, device);
        if let Some(start) = issued_at.filter(|_| {
            self.state
                .reads_session_age
                .load(std::sync::atomic::Ordering::Acquire)
        }) {
            request
                .context
                .insert(SESSION_AGE, now.timestamp().saturating_sub(start));
        }
        request.now = self.state.clock;
        let Some(cache) = &self.state.cache else {
            let decision = stage(traced, "pdp.evaluate", || set.decide(&request));
            self.observe(&request, decision.allowed, now);
            let response = convert::response(&decision, decision_id());
            return Ok(logged(response, &mut request, false, described));
        };
        // A decision is served no longer than the token that proved the identity lives.
        let token_life = token_expires_at.map(|exp| {
            std::time::Duration::from_secs(
                u64::try_from(exp.saturating_sub(now.timestamp())).unwrap_or(0),
            )
        });
        let ttl = |life: std::time::Duration| prost_types::Duration::try_from(life).ok();
        let key = crate::cache::key(set.revision(), generation, &request);
        let cached = stage(traced, "pdp.cache", || cache.get(&key));
        crate::metrics::metrics().cache_lookup("decision", cached.is_some());
        if let Some((hit, remaining)) = cached {
            // The entry may have been cached for a token that outlives this one.
            let mut response = (*hit).clone();
            response.decision_id = decision_id();
            response.ttl = ttl(token_life.map_or(remaining, |l| l.min(remaining)));
            self.observe(
                &request,
                response.decision == pb::Decision::Allow as i32,
                now,
            );
            return Ok(logged(response, &mut request, true, described));
        }
        let decision = stage(traced, "pdp.evaluate", || set.decide(&request));
        self.observe(&request, decision.allowed, now);
        let mut response = convert::response(&decision, decision_id());
        if !decision.time_dependent {
            let mut cached = response.clone();
            cached.decision_id.clear();
            response.ttl = ttl(cache.insert(key, cached, token_life));
        }
        Ok(logged(response, &mut request, false, described))
    }
}

/// What the decision log says of a request, once identity is resolved.
#[derive(Debug, Default)]
struct Described {
    time: chrono::DateTime<chrono::Utc>,
    // The request's own text, moved here at its last use (no copy).
    subject: pdp_engine::Text,
    action: pdp_engine::Text,
    resource: pdp_engine::Text,
    cached: bool,
}

/// The call a decision belongs to.
#[derive(Debug)]
pub struct Call {
    /// The API asking (`check`, `check_batch`, `authzen`, `ext_authz`, …): a metrics label
    /// and a decision log field.
    pub api: &'static str,
    /// Who asked, for the decision log (only kept when it is on): the peer's address…
    pub peer: Option<std::net::SocketAddr>,
    /// …and its client certificate's SANs, each after a space.
    pub sans: String,
    /// The trace the call belongs to (hex), if traced.
    pub trace_id: String,
    /// The call's span, when traced.
    pub traced: Option<Traced>,
    /// The call's `min_signal_generation` was not reached in time: every decision of the
    /// call is `REASON_SIGNALS_STALE`.
    pub signals_behind: bool,
}

impl Call {
    /// A call from another front end: `api` names it, `peer` says who asked (only kept
    /// when the decision log is on), `traced` is its span.
    pub fn new(
        api: &'static str,
        peer: Option<std::net::SocketAddr>,
        traced: Option<Traced>,
    ) -> Call {
        Call {
            api,
            peer,
            sans: String::new(),
            trace_id: traced.as_ref().map(Traced::trace_id).unwrap_or_default(),
            traced,
            signals_behind: false,
        }
    }
}

impl Authorizer {
    /// The call a gRPC request makes: who asked (peer address and client certificate SANs,
    /// built only when the decision log is on) and its span (`span`, e.g.
    /// `pdp.v1.AuthorizationService/Check`, continuing the caller's trace).
    pub fn grpc_call<T>(
        &self,
        request: &Request<T>,
        api: &'static str,
        span: &'static str,
    ) -> Call {
        // Formatted by the decision log's writer, off the decision path.
        let mut sans = String::new();
        let peer = if self.state.audit.is_some() {
            if let Some(certs) = request.peer_certs() {
                if let Some(leaf) = certs.first() {
                    for san in crate::trust::sans_of(leaf) {
                        sans.push(' ');
                        sans.push_str(&san);
                    }
                }
            }
            request.remote_addr()
        } else {
            None
        };
        let traced = self.state.telemetry.as_ref().and_then(|t| {
            let parent = t.from_metadata(request.metadata());
            let (service, method) = span.rsplit_once('/').unwrap_or((span, ""));
            t.call(span, &parent, || {
                vec![
                    KeyValue::new("rpc.system", "grpc"),
                    KeyValue::new("rpc.service", service),
                    KeyValue::new("rpc.method", method),
                ]
            })
        });
        Call {
            api,
            peer,
            sans,
            trace_id: traced.as_ref().map(Traced::trace_id).unwrap_or_default(),
            traced,
            signals_behind: false,
        }
    }
}

/// Context keys only the PDP sets (from signals and verified facts); callers' are dropped.
const SIGNAL_KEYS: &[&str] = &[
    "pdp:RiskLevel",
    "pdp:RiskScore",
    "pdp:DeviceCompliant",
    "pdp:AssuranceLevel",
    "pdp:AssuranceNamespace",
    "pdp:SessionAge",
    "pdp:SessionId",
    "pdp:DeviceId",
];

/// `aws:TokenIssueTime` as epoch seconds (RFC 3339 in the context, as trusted callers send
/// it).
fn issue_time(context: &pdp_engine::Context) -> Option<i64> {
    match context.get("aws:TokenIssueTime")? {
        pdp_engine::Value::One(pdp_engine::Scalar::String(s)) => {
            chrono::DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.timestamp())
        }
        _ => None,
    }
}

/// Puts what the signals say into the request: claims overrides narrow the roles and tags
/// (or, from a source authoritative for claims, replace them), the rest become `pdp:`
/// condition keys.
fn apply_facts(request: &mut pdp_engine::Request, facts: Facts, session: &str, device: &str) {
    if let Some(claims) = facts.claims {
        let subject = &mut request.subject;
        match (claims.roles, claims.authoritative) {
            (Some(roles), true) => subject.roles = roles.into_iter().map(Into::into).collect(),
            // A role the subject does not carry is not added.
            (Some(roles), false) => subject
                .roles
                .retain(|r| roles.iter().any(|n| n.as_str() == r.as_str())),
            (None, _) => {}
        }
        match (claims.tags, claims.authoritative) {
            (Some(tags), true) => {
                subject.tags = tags
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect();
            }
            // A tag is kept only with the same value: a changed value would add one.
            (Some(tags), false) => {
                subject.tags = subject
                    .tags
                    .iter()
                    .filter(|(k, v)| tags.get(k.as_str()).is_some_and(|n| n == v.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
            }
            (None, _) => {}
        }
    }
    if let Some(risk) = facts.risk {
        request.context.insert("pdp:RiskLevel", risk.as_str());
        request.context.insert("pdp:RiskScore", risk.score());
    }
    if let Some(compliant) = facts.compliant {
        request.context.insert("pdp:DeviceCompliant", compliant);
    }
    if let Some((namespace, level)) = facts.assurance {
        request.context.insert("pdp:AssuranceNamespace", namespace);
        request.context.insert("pdp:AssuranceLevel", level);
    }
    if !session.is_empty() {
        request.context.insert("pdp:SessionId", session);
    }
    if !device.is_empty() {
        request.context.insert("pdp:DeviceId", device);
    }
}

impl Authorizer {
    /// Counts a decision for internal detection, publishing the risk it raises.
    fn observe(
        &self,
        request: &pdp_engine::Request,
        allowed: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let signals = &self.state.signals;
        let Some(detector) = &signals.detector else {
            return;
        };
        let sensitive = signals.is_sensitive(&request.action);
        let Some(raised) = detector.observe(
            &request.subject.id,
            !allowed,
            sensitive,
            now.timestamp_millis(),
        ) else {
            return;
        };
        tracing::warn!(subject = %raised.subject, "{}", raised.reason);
        let signals = signals.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = signals
                        .publish(std::slice::from_ref(&raised), "detection")
                        .await
                    {
                        tracing::warn!("a detected risk was not shared: {e}");
                    }
                });
            }
            Err(_) => {
                let _ = signals.store.apply(&raised);
            }
        }
    }
}

/// The span a call's events are logged in, carrying its request id (the caller's, or one
/// made up when it sent none). Costs nothing when debug logging is off.
fn request_span(name: &'static str, request_id: &str) -> tracing::Span {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return tracing::Span::none();
    }
    let id = if request_id.is_empty() {
        decision_id()
    } else {
        request_id.to_owned()
    };
    match name {
        "check_batch" => tracing::debug_span!("check_batch", request_id = %id),
        _ => tracing::debug_span!("check", request_id = %id),
    }
}

/// One debug event per decision (fields only; never tokens or context values).
fn logged(
    response: pb::CheckResponse,
    request: &mut pdp_engine::Request,
    cached: bool,
    described: &mut Option<Described>,
) -> pb::CheckResponse {
    tracing::debug!(
        decision_id = %response.decision_id,
        subject = %request.subject.id,
        action = %request.action,
        resource = %request.resource.id,
        decision = response.decision().as_str_name(),
        reason = response.reason().as_str_name(),
        revision = %response.policy_revision,
        cached,
        "decided"
    );
    // The request's last use: its strings move into the description.
    if let Some(d) = described {
        d.subject = std::mem::take(&mut request.subject.id);
        d.action = std::mem::take(&mut request.action);
        d.resource = std::mem::take(&mut request.resource.id);
        d.cached = cached;
    }
    response
}

#[tonic::async_trait]
impl pb::authorization_service_server::AuthorizationService for Authorizer {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let trusted = self.trusted(&request)?;
        let mut call = self.grpc_call(&request, "check", "pdp.v1.AuthorizationService/Check");
        let pb::CheckRequest {
            subject,
            action,
            resource,
            context,
            request_id,
            min_signal_generation,
        } = request.into_inner();
        call.signals_behind = !self.state.signals.reached(min_signal_generation).await;
        let parts = Parts {
            subject: subject.as_ref(),
            action: &action,
            resource: resource.as_ref(),
            context: context.as_ref(),
        };
        request_span("check", &request_id)
            .in_scope(|| self.decide_counted(&parts, trusted, "", &call, true))
            .map(Response::new)
    }

    async fn check_batch(
        &self,
        request: Request<pb::CheckBatchRequest>,
    ) -> Result<Response<pb::CheckBatchResponse>, Status> {
        let trusted = self.trusted(&request)?;
        let mut call = self.grpc_call(
            &request,
            "check_batch",
            "pdp.v1.AuthorizationService/CheckBatch",
        );
        let pb::CheckBatchRequest {
            subject,
            action,
            resource,
            context,
            items,
            semantic,
            request_id,
            min_signal_generation,
        } = request.into_inner();
        call.signals_behind = !self.state.signals.reached(min_signal_generation).await;
        let span = request_span("check_batch", &request_id);
        let _entered = span.enter();
        if items.len() > self.state.max_batch_items {
            return Err(Status::invalid_argument(format!(
                "`items`: {} items, over the limit of {}",
                items.len(),
                self.state.max_batch_items
            )));
        }
        let semantic = pb::BatchSemantic::try_from(semantic).map_err(|_| {
            Status::invalid_argument(format!("`semantic`: unknown value {semantic}"))
        })?;
        let mut responses = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let merged = convert::merge_context(context.as_ref(), item.context.as_ref());
            let parts = Parts {
                subject: item.subject.as_ref().or(subject.as_ref()),
                action: if item.action.is_empty() {
                    &action
                } else {
                    &item.action
                },
                resource: item.resource.as_ref().or(resource.as_ref()),
                context: merged.as_ref(),
            };
            let response =
                self.decide_counted(&parts, trusted, &format!("items[{i}]."), &call, false)?;
            let allowed = response.decision == pb::Decision::Allow as i32;
            responses.push(response);
            let stop = batch_stops(semantic, allowed);
            if stop {
                break;
            }
        }
        let allowed = responses
            .iter()
            .filter(|r| r.decision == pb::Decision::Allow as i32)
            .count();
        trace_batch(&call, responses.len(), allowed);
        Ok(Response::new(pb::CheckBatchResponse { responses }))
    }
}
