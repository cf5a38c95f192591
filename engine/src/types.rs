//! The public vocabulary of decisions: effects, reasons, the statements that decided, and the
//! obligations a caller must carry out.

use serde::{Deserialize, Serialize};

/// A statement's `Effect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Effect {
    /// `"Allow"`.
    Allow,
    /// `"Deny"`.
    Deny,
}

impl Effect {
    /// `"Allow"` or `"Deny"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An applicable Allow, with boundaries and guardrails satisfied, and no Deny.
    Allowed,
    /// A Deny statement matched.
    ExplicitDeny,
    /// Nothing allowed the request.
    ImplicitDeny,
}

impl Reason {
    /// `allowed`, `explicit_deny` or `implicit_deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::ExplicitDeny => "explicit_deny",
            Reason::ImplicitDeny => "implicit_deny",
        }
    }
}

/// Where a statement comes from: its policy, position and `Sid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct StatementInfo {
    /// The policy name (its file stem).
    pub policy: String,
    /// The statement's `Sid`, if any.
    pub sid: Option<String>,
    /// Zero-based position of the statement in its policy.
    pub index: usize,
    /// The statement's effect.
    pub effect: Effect,
}

/// The kinds of obligation, following the OpenID AuthZEN obligations profile, plus `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ObligationType {
    /// `step-up`: re-authenticate at a stronger level (e.g. property `acr`).
    #[serde(rename = "step-up")]
    StepUp,
    /// `notification`: tell someone the decision was taken.
    #[serde(rename = "notification")]
    Notification,
    /// `session_termination`: end the subject's session.
    #[serde(rename = "session_termination")]
    SessionTermination,
    /// `custom`: anything else the caller understands.
    #[serde(rename = "custom")]
    Custom,
    /// `audit`: record the access with the given properties.
    #[serde(rename = "audit")]
    Audit,
}

impl ObligationType {
    /// Every type with its wire name.
    pub const ALL: [(ObligationType, &'static str); 5] = [
        (ObligationType::StepUp, "step-up"),
        (ObligationType::Notification, "notification"),
        (ObligationType::SessionTermination, "session_termination"),
        (ObligationType::Custom, "custom"),
        (ObligationType::Audit, "audit"),
    ];

    /// The wire name, e.g. `step-up`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("custom", |(_, n)| n)
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(t, _)| *t)
    }
}

/// An obligation attached to a statement (`Obligations: [{Id, Type, Properties}]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Obligation {
    /// Identifies the obligation; obligations are deduplicated by it.
    pub id: String,
    /// What the caller must do.
    #[serde(rename = "type")]
    pub kind: ObligationType,
    /// Free-form parameters.
    pub properties: serde_json::Map<String, serde_json::Value>,
}

/// The outcome of [`crate::PolicySet::decide`], borrowing from the set that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision<'a> {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// The statements that decided: the matching Allows on allow, the matching Denys on
    /// explicit deny, none on implicit deny.
    pub determining: smallvec::SmallVec<[&'a StatementInfo; 4]>,
    /// The union of the determining statements' obligations, deduplicated by `Id`.
    pub obligations: smallvec::SmallVec<[&'a Obligation; 2]>,
    /// The revision of the policy set that decided.
    pub revision: &'a str,
    /// Whether a condition read the clock (`aws:CurrentTime`, `aws:EpochTime`): the same
    /// request may be decided differently later, so the decision should not be cached.
    pub time_dependent: bool,
}

impl Decision<'_> {
    /// The effect of the decision.
    pub fn effect(&self) -> Effect {
        if self.allowed {
            Effect::Allow
        } else {
            Effect::Deny
        }
    }
}
