//! The one decision path every front end calls (gRPC `Check`/`CheckBatch`, Envoy
//! ext_authz, AuthZEN): [`Decider::decide`] takes a request already in the engine's terms
//! ([`CheckInput`]) and the [`Snapshot`] to decide with, and returns an [`Outcome`]. It runs
//! the stages in order (identity → signal guards → cached engine decision, in [`stages`])
//! and then one epilogue ([`record`]) that records every answer the same way: span
//! attributes, the decision log (with its overflow policy) and the metrics.
//!
//! No transport type appears here: front ends convert their wire form into a
//! [`CheckInput`] (their conversion errors are a [`ServiceError`]), and the outcome back
//! into theirs; each maps [`ServiceError`] once onto its own status codes.

pub mod bounds;
mod record;
mod stages;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::state::{Snapshot, State};
use crate::telemetry::Traced;

/// Bounds on one request's fields, so that no input can make a decision expensive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest string field (ids, action, tag keys and values, context strings), in bytes.
    pub max_field_bytes: usize,
    /// Most context keys.
    pub max_context_keys: usize,
    /// Most values in one multivalued context key.
    pub max_list_values: usize,
    /// Most roles or tags.
    pub max_items: usize,
}

/// The limits `pdp serve` applies unless configured otherwise.
pub const DEFAULT_LIMITS: Limits = Limits {
    max_field_bytes: 4096,
    max_context_keys: 128,
    max_list_values: 256,
    max_items: 128,
};

/// Why a call got no decision: the caller's fault or ours, named once here and mapped
/// once per transport (gRPC status, HTTP status, ext_authz answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A request field cannot be used (the message names it).
    #[error("{0}")]
    InvalidArgument(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller's credential (not the subject's) is wrong.
    #[error("{0}")]
    Unauthenticated(String),
    /// The PDP failed; the detail is logged, not sent.
    #[error("{0}")]
    Internal(String),
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An Allow applied and no Deny.
    Allowed,
    /// A Deny applied.
    ExplicitDeny,
    /// Nothing allowed it.
    ImplicitDeny,
    /// The subject's token could not be verified.
    InvalidIdentity,
    /// A signal revoked the session.
    SessionRevoked,
    /// A signal says the credential changed after the token was issued.
    CredentialChanged,
    /// The signals this decision needs are not known to be applied.
    SignalsStale,
    /// The decision log could not take the record, and decisions are not made unlogged.
    AuditUnavailable,
    /// ext_authz: the request path cannot be used (refused before any route is read).
    InvalidPath,
    /// ext_authz: no route matches, and unmapped requests are denied.
    UnmappedRoute,
    /// ext_authz: no route matches, and unmapped requests pass (`unmapped: allow`).
    UnmappedAllowed,
}

impl Reason {
    /// The label metrics, spans and the decision log use.
    pub fn label(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::ExplicitDeny => "explicit_deny",
            Reason::ImplicitDeny => "implicit_deny",
            Reason::InvalidIdentity => "invalid_identity",
            Reason::SessionRevoked => "session_revoked",
            Reason::CredentialChanged => "credential_changed",
            Reason::SignalsStale => "signals_stale",
            Reason::AuditUnavailable => "audit_unavailable",
            Reason::InvalidPath => "invalid_path",
            Reason::UnmappedRoute => "unmapped_route",
            Reason::UnmappedAllowed => "unmapped_allowed",
        }
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// For the caller: why a refusal, or what the PDP ignored; empty for plain decisions.
    pub message: String,
    /// The statements that decided.
    pub determining: Vec<pdp_engine::StatementInfo>,
    /// What the caller must do with the decision.
    pub obligations: Vec<pdp_engine::Obligation>,
    /// The policy revision that decided.
    pub revision: String,
    /// The decision log's id for this answer.
    pub decision_id: String,
    /// How long the caller may reuse the answer (zero: not at all).
    pub ttl: Duration,
}

impl Outcome {
    /// The engine's decision as an outcome.
    pub fn decided(d: &pdp_engine::Decision<'_>) -> Outcome {
        Outcome {
            allowed: d.allowed,
            reason: match d.reason {
                pdp_engine::Reason::Allowed => Reason::Allowed,
                pdp_engine::Reason::ExplicitDeny => Reason::ExplicitDeny,
                pdp_engine::Reason::ImplicitDeny => Reason::ImplicitDeny,
            },
            message: String::new(),
            determining: d.determining.iter().map(|s| (*s).clone()).collect(),
            obligations: d.obligations.iter().map(|o| (*o).clone()).collect(),
            revision: d.revision.to_owned(),
            decision_id: decision_id(),
            ttl: Duration::ZERO,
        }
    }

    /// A deny for `reason` with `message`, made by no statement.
    pub fn refused(reason: Reason, message: &str, revision: &str) -> Outcome {
        Outcome {
            allowed: false,
            reason,
            message: message.to_owned(),
            determining: Vec::new(),
            obligations: Vec::new(),
            revision: revision.to_owned(),
            decision_id: decision_id(),
            ttl: Duration::ZERO,
        }
    }

    /// The obligation of type `kind`, if the outcome carries one.
    pub fn obligation(&self, kind: pdp_engine::ObligationType) -> Option<&pdp_engine::Obligation> {
        self.obligations.iter().find(|o| o.kind == kind)
    }

    /// About how many bytes it holds (the decision cache's weigher).
    pub fn weight(&self) -> usize {
        let statements: usize = self
            .determining
            .iter()
            .map(|s| 32 + s.policy.len() + s.sid.as_ref().map_or(0, String::len))
            .sum();
        let obligations: usize = self
            .obligations
            .iter()
            .map(|o| 64 + o.id.len() + 64 * o.properties.len())
            .sum();
        std::mem::size_of::<Outcome>()
            + self.message.len()
            + self.revision.len()
            + self.decision_id.len()
            + statements
            + obligations
    }
}

/// A query plan, as the decider answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOutcome {
    /// Which resources are allowed.
    pub plan: pdp_engine::Plan,
    /// Why nothing is: a refusal before the policies (invalid identity, a signal guard).
    pub refused: Option<Reason>,
    /// For the caller: why a refusal, or what the PDP ignored.
    pub message: String,
    /// The policy revision planned with.
    pub revision: String,
}

/// A request in the engine's terms, with what identity and signals need beside it (the
/// token and ids borrowed from the caller's message: a token is not copied to be read).
#[derive(Debug, Clone, Default)]
pub struct CheckInput<'a> {
    /// The request as the caller stated it; the subject and identity context keys count
    /// only from a trusted caller without a token.
    pub request: pdp_engine::Request,
    /// The subject's token (a JWT); empty: none.
    pub token: &'a str,
    /// The caller's session id, for session signals (a token's `sid` wins).
    pub session_id: &'a str,
    /// The caller's device id, for device signals.
    pub device_id: &'a str,
    /// Whether the caller may assert the subject's roles, tags and identity facts.
    pub trusted: bool,
}

/// How a batch stops early (AuthZEN's `evaluations_semantic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Semantic {
    /// Every item is decided.
    #[default]
    ExecuteAll,
    /// Stop after the first deny (a failed item counts as one).
    DenyOnFirstDeny,
    /// Stop after the first allow.
    PermitOnFirstPermit,
}

impl Semantic {
    /// Whether a batch stops after an item that was (or was not) allowed.
    pub fn stops(self, allowed: bool) -> bool {
        match self {
            Semantic::ExecuteAll => false,
            Semantic::DenyOnFirstDeny => !allowed,
            Semantic::PermitOnFirstPermit => allowed,
        }
    }
}

/// The call a decision belongs to.
#[derive(Debug)]
pub struct Call {
    /// The API asking (`check`, `check_batch`, `authzen`, `ext_authz`): a metrics label and
    /// a decision log field.
    pub api: &'static str,
    /// Who asked, for the decision log (only kept when it is on): the peer's address…
    pub peer: Option<std::net::SocketAddr>,
    /// …and its client certificate's SANs, each after a space.
    pub sans: String,
    /// The trace the call belongs to (hex), if traced.
    pub trace_id: String,
    /// The caller's id for the request (`request_id`, `x-request-id`); empty: none.
    pub request_id: String,
    /// The call's span, when traced.
    pub traced: Option<Traced>,
    /// The call's `min_signal_generation` was not reached in time: every decision of the
    /// call is `signals_stale`.
    pub signals_behind: bool,
}

impl Call {
    /// A call from `api` by `caller`, traced as `traced`; who asked is kept only when the
    /// decision log is on (`keep_caller`).
    pub fn new(
        api: &'static str,
        caller: &crate::caller::Caller,
        keep_caller: bool,
        traced: Option<Traced>,
    ) -> Call {
        Call {
            api,
            peer: caller.addr.filter(|_| keep_caller),
            sans: if keep_caller {
                caller.sans_field()
            } else {
                String::new()
            },
            trace_id: traced.as_ref().map(Traced::trace_id).unwrap_or_default(),
            request_id: String::new(),
            traced,
            signals_behind: false,
        }
    }
}

/// Decides with the service's state.
#[derive(Debug, Clone)]
pub struct Decider {
    state: Arc<State>,
}

impl Decider {
    /// A decider over `state`.
    pub fn new(state: Arc<State>) -> Self {
        Decider { state }
    }

    /// The state decisions are made with.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Decides `input` with `snapshot` and records the answer. With `stages`, each stage
    /// gets a span under the call's.
    pub fn decide(
        &self,
        snapshot: &Snapshot,
        input: CheckInput<'_>,
        call: &Call,
        stages: bool,
    ) -> Outcome {
        self.decide_explained(snapshot, input, call, stages, false)
            .0
    }

    /// Decides `input` as [`Decider::decide`] does and, with `explain`, explains the engine's
    /// decision ([`pdp_engine::PolicySet::explain`]): none for a request refused before the
    /// policies (its reason and message say why). The decision log records that an
    /// explanation was asked for, not its text. Whether the caller may ask is the front
    /// end's to check.
    pub fn decide_explained(
        &self,
        snapshot: &Snapshot,
        input: CheckInput<'_>,
        call: &Call,
        stages: bool,
        explain: bool,
    ) -> (Outcome, Option<pdp_engine::Explanation>) {
        let started = Instant::now();
        let traced = call.traced.as_ref().filter(|_| stages);
        let note = if input.trusted {
            None
        } else {
            stages::ignored_identity(&input)
        };
        let (mut outcome, described, explanation) =
            self.run(snapshot, input, call.signals_behind, traced, explain);
        add_note(&mut outcome.message, note);
        let outcome = self.record(call, traced, outcome, described, started);
        // A decision the log refused has no explanation of its own.
        let explanation = explanation.filter(|_| outcome.reason != Reason::AuditUnavailable);
        (outcome, explanation)
    }

    /// A request refused before it could become a decision request (ext_authz's unusable
    /// paths and unmapped routes): a deny for `reason` with `message`, recorded like every
    /// decision. `resource` is what the decision log shows as the resource.
    pub fn refuse(
        &self,
        snapshot: &Snapshot,
        call: &Call,
        reason: Reason,
        message: &str,
        resource: &str,
    ) -> Outcome {
        let started = Instant::now();
        let outcome = Outcome::refused(reason, message, snapshot.set.revision());
        self.record_unchecked(call, outcome, resource, started)
    }

    /// A request let through without a decision (ext_authz's `unmapped: allow`), recorded
    /// like every decision so that it is never invisible.
    pub fn pass(&self, snapshot: &Snapshot, call: &Call, resource: &str) -> Outcome {
        let started = Instant::now();
        let mut outcome = Outcome::refused(Reason::UnmappedAllowed, "", snapshot.set.revision());
        outcome.allowed = true;
        self.record_unchecked(call, outcome, resource, started)
    }

    /// Records an answer made without a decision request, of which only the resource
    /// (`resource`) is known.
    fn record_unchecked(
        &self,
        call: &Call,
        outcome: Outcome,
        resource: &str,
        started: Instant,
    ) -> Outcome {
        let described = record::Described::unchecked(self.now(), resource);
        self.record(call, call.traced.as_ref(), outcome, described, started)
    }

    /// Which resources `input` (its resource left out) may act on: identity and signal
    /// guards as for [`Decider::decide`], then the engine's plan. A refusal before the
    /// policies plans no resource, with its reason. Plans are counted in the metrics and
    /// logged at debug level, not written to the decision log (they decide nothing).
    pub fn plan(&self, snapshot: &Snapshot, input: CheckInput<'_>, call: &Call) -> PlanOutcome {
        let traced = call.traced.as_ref();
        let note = if input.trusted {
            None
        } else {
            stages::ignored_identity(&input)
        };
        let revision = snapshot.set.revision().to_owned();
        let now = self.now();
        let mut answer = match self.resolve(snapshot, input, call.signals_behind, traced, now) {
            Err(refused) => {
                let (refused, _) = *refused;
                PlanOutcome {
                    plan: pdp_engine::Plan::AlwaysDenied,
                    refused: Some(refused.reason),
                    message: refused.message,
                    revision,
                }
            }
            Ok(resolved) => {
                let request = resolved.request;
                let planned = pdp_engine::PlanRequest {
                    subject: request.subject,
                    action: request.action,
                    context: request.context,
                    now: request.now,
                };
                PlanOutcome {
                    plan: crate::telemetry::stage(traced, "pdp.plan", || {
                        snapshot.set.plan(&planned)
                    }),
                    refused: None,
                    message: String::new(),
                    revision,
                }
            }
        };
        add_note(&mut answer.message, note);
        let kind = match &answer.plan {
            pdp_engine::Plan::AlwaysAllowed => "always_allowed",
            pdp_engine::Plan::AlwaysDenied => "always_denied",
            pdp_engine::Plan::Conditional(_) => "conditional",
        };
        tracing::debug!(
            request_id = %call.request_id,
            api = call.api,
            plan = kind,
            refused = answer.refused.map(Reason::label),
            revision = %answer.revision,
            "planned"
        );
        crate::metrics::metrics().planned(kind);
        answer
    }

    /// The request as the engine is to see it after identity and signal guards, as for
    /// [`Decider::decide`], or the reason it is refused; nothing is recorded (searches
    /// decide with it many times, and report what they found, not each decision).
    pub fn screen(
        &self,
        snapshot: &Snapshot,
        input: CheckInput<'_>,
        call: &Call,
    ) -> Result<pdp_engine::Request, Reason> {
        let now = self.now();
        self.resolve(snapshot, input, call.signals_behind, None, now)
            .map(|resolved| resolved.request)
            .map_err(|refused| refused.0.reason)
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.state.clock.unwrap_or_else(chrono::Utc::now)
    }
}

/// Adds `note` (what the PDP ignored) to an answer's message.
fn add_note(message: &mut String, note: Option<String>) {
    if let Some(note) = note {
        if !message.is_empty() {
            message.push_str("; ");
        }
        message.push_str(&note);
    }
}

/// A unique decision id: a UUID v7 (RFC 9562), ordered by its millisecond timestamp. The 74
/// bits after it are a per-process random start plus a counter, not fresh randomness, so
/// that no id costs a system call for entropy; ids stay unique within a process by the
/// counter, and across processes by the random start.
pub fn decision_id() -> String {
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

/// Longest request id kept for the log; a longer one is cut at a character boundary.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

impl Call {
    /// Keeps the caller's request id, cut to [`MAX_REQUEST_ID_BYTES`].
    pub fn set_request_id(&mut self, id: &str) {
        self.request_id = crate::truncated(id, MAX_REQUEST_ID_BYTES).to_owned();
    }

    /// Records a batch's size and allowed items on its span.
    pub fn trace_batch(&self, items: usize, allowed: usize) {
        if let Some(t) = &self.traced {
            t.set([
                opentelemetry::KeyValue::new("pdp.items", i64::try_from(items).unwrap_or(i64::MAX)),
                opentelemetry::KeyValue::new(
                    "pdp.allowed_items",
                    i64::try_from(allowed).unwrap_or(i64::MAX),
                ),
            ]);
        }
    }
}
