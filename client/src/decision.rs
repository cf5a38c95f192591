//! What a check answers: [`Decision`], with typed access to its obligations.

use std::time::Duration;

use pdp_proto::v1 as pb;

/// Why the PDP decided as it did (or why the client decided for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// An applicable Allow, no Deny.
    Allowed,
    /// A Deny statement matched.
    ExplicitDeny,
    /// Nothing allowed the request.
    ImplicitDeny,
    /// The subject's identity could not be verified.
    InvalidIdentity,
    /// The session was revoked.
    SessionRevoked,
    /// The token predates a credential change.
    CredentialChanged,
    /// A sensitive action while the PDP's signals are stale.
    SignalsStale,
    /// The PDP's decision log could not keep up (fail closed).
    AuditUnavailable,
    /// The PDP could not be asked; the call site's failure policy decided.
    PdpUnavailable,
    /// A reason this client does not know.
    Other(i32),
}

impl Reason {
    pub(crate) fn from_pb(r: i32) -> Reason {
        match pb::Reason::try_from(r) {
            Ok(pb::Reason::Allowed) => Reason::Allowed,
            Ok(pb::Reason::ExplicitDeny) => Reason::ExplicitDeny,
            Ok(pb::Reason::ImplicitDeny) => Reason::ImplicitDeny,
            Ok(pb::Reason::InvalidIdentity) => Reason::InvalidIdentity,
            Ok(pb::Reason::SessionRevoked) => Reason::SessionRevoked,
            Ok(pb::Reason::CredentialChanged) => Reason::CredentialChanged,
            Ok(pb::Reason::SignalsStale) => Reason::SignalsStale,
            Ok(pb::Reason::AuditUnavailable) => Reason::AuditUnavailable,
            _ => Reason::Other(r),
        }
    }
}

/// The kinds of obligation (OpenID AuthZEN obligation types, plus `audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObligationKind {
    /// `step-up`: authenticate again, at `acr`.
    StepUp,
    /// `notification`.
    Notification,
    /// `session_termination`.
    SessionTermination,
    /// `audit`.
    Audit,
    /// `custom`.
    Custom,
    /// A type this client does not know.
    Unknown(String),
}

impl ObligationKind {
    /// The kind of a type name.
    pub fn parse(t: &str) -> ObligationKind {
        match t {
            "step-up" => ObligationKind::StepUp,
            "notification" => ObligationKind::Notification,
            "session_termination" => ObligationKind::SessionTermination,
            "audit" => ObligationKind::Audit,
            "custom" => ObligationKind::Custom,
            other => ObligationKind::Unknown(other.to_owned()),
        }
    }

    /// The type name.
    pub fn as_str(&self) -> &str {
        match self {
            ObligationKind::StepUp => "step-up",
            ObligationKind::Notification => "notification",
            ObligationKind::SessionTermination => "session_termination",
            ObligationKind::Audit => "audit",
            ObligationKind::Custom => "custom",
            ObligationKind::Unknown(t) => t,
        }
    }
}

/// Something the caller must carry out with the decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Obligation {
    /// Its id (obligations are deduplicated by it).
    pub id: String,
    /// Its kind.
    pub kind: ObligationKind,
    /// Its parameters, as JSON.
    pub properties: serde_json::Map<String, serde_json::Value>,
}

impl Obligation {
    /// A string parameter.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .get(name)
            .and_then(serde_json::Value::as_str)
    }
}

/// A decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    allowed: bool,
    reason: Reason,
    obligations: Vec<Obligation>,
    decision_id: String,
    policy_revision: String,
    ttl: Duration,
    message: String,
    fail_open: bool,
    cached: bool,
    explanation: Option<Box<pb::Explanation>>,
}

impl Decision {
    /// The PDP's answer.
    pub fn from_response(r: &pb::CheckResponse) -> Decision {
        Decision {
            allowed: r.decision == pb::Decision::Allow as i32,
            reason: Reason::from_pb(r.reason),
            obligations: r
                .obligations
                .iter()
                .map(|o| Obligation {
                    id: o.id.clone(),
                    kind: ObligationKind::parse(&o.r#type),
                    properties: o
                        .properties
                        .as_ref()
                        .map(|p| p.fields.iter().map(|(k, v)| (k.clone(), json(v))).collect())
                        .unwrap_or_default(),
                })
                .collect(),
            decision_id: r.decision_id.clone(),
            policy_revision: r.policy_revision.clone(),
            ttl: r
                .ttl
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or(Duration::ZERO),
            message: r.message.clone(),
            fail_open: false,
            cached: false,
            explanation: r.explanation.clone(),
        }
    }

    /// What the failure policy answers when the PDP cannot: deny, or (only where a call site
    /// asked for it) an allow marked [`Decision::is_fail_open`].
    pub(crate) fn unavailable(allow: bool, message: String) -> Decision {
        Decision {
            allowed: allow,
            reason: Reason::PdpUnavailable,
            obligations: Vec::new(),
            decision_id: String::new(),
            policy_revision: String::new(),
            ttl: Duration::ZERO,
            message,
            fail_open: allow,
            cached: false,
            explanation: None,
        }
    }

    pub(crate) fn cached_with(mut self, ttl: Duration) -> Decision {
        self.cached = true;
        self.ttl = ttl;
        self
    }

    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// Why.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// Every obligation.
    pub fn obligations(&self) -> &[Obligation] {
        &self.obligations
    }

    /// The `step-up` obligation, if any: the required `acr` is its `acr` property.
    pub fn step_up(&self) -> Option<&Obligation> {
        self.of(&ObligationKind::StepUp).next()
    }

    /// The `notification` obligations.
    pub fn notifications(&self) -> impl Iterator<Item = &Obligation> {
        self.of(&ObligationKind::Notification)
    }

    /// The `session_termination` obligation, if any.
    pub fn session_termination(&self) -> Option<&Obligation> {
        self.of(&ObligationKind::SessionTermination).next()
    }

    /// The `audit` obligations.
    pub fn audits(&self) -> impl Iterator<Item = &Obligation> {
        self.of(&ObligationKind::Audit)
    }

    /// The `custom` obligations.
    pub fn custom(&self) -> impl Iterator<Item = &Obligation> {
        self.of(&ObligationKind::Custom)
    }

    fn of<'a>(&'a self, kind: &'a ObligationKind) -> impl Iterator<Item = &'a Obligation> {
        self.obligations.iter().filter(move |o| &o.kind == kind)
    }

    /// The PDP's decision id (empty when the PDP was not reached).
    pub fn decision_id(&self) -> &str {
        &self.decision_id
    }

    /// The policy revision that decided.
    pub fn policy_revision(&self) -> &str {
        &self.policy_revision
    }

    /// How long the decision may be reused (what remains of it, when it came from the cache).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The PDP's detail for identity failures, or why the PDP could not be reached.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Why the policies decided as they did, when the request asked (`explain`, trusted
    /// callers only). Explained checks are never served from or kept in the local cache.
    pub fn explanation(&self) -> Option<&pb::Explanation> {
        self.explanation.as_deref()
    }

    /// Whether this is a fail-open allow: the PDP was not reached and the call site chose to
    /// let the request through.
    pub fn is_fail_open(&self) -> bool {
        self.fail_open
    }

    /// Whether the decision came from the local cache.
    pub fn is_cached(&self) -> bool {
        self.cached
    }
}

fn json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    use serde_json::Value as J;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(*b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Some(Kind::StringValue(s)) => J::String(s.clone()),
        Some(Kind::ListValue(l)) => J::Array(l.values.iter().map(json).collect()),
        Some(Kind::StructValue(s)) => {
            J::Object(s.fields.iter().map(|(k, v)| (k.clone(), json(v))).collect())
        }
    }
}
