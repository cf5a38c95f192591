//! Continuous verification: security signals (the OpenID CAEP event types) that change
//! decisions at once. Signals arrive through `pdp.v1.SignalService/Publish`, SSF push
//! delivery (signed Security Event Tokens, [`ssf`]) and internal detection ([`detect`]); they
//! are kept in a [`store::Store`] keyed by subject, session and device, shared between
//! replicas through Redis when configured ([`shared`]). On the Check path they become request
//! facts (`pdp:RiskLevel`, ...) and built-in guards (a revoked session is denied); the engine
//! never sees where they came from.

pub mod detect;
pub mod shared;
pub mod ssf;
pub mod store;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest id (subject, session, device) or string field of a signal, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Most signals in one `Publish` or one SET.
pub const MAX_SIGNALS_PER_CALL: usize = 1000;
/// Most roles or tags one `token-claims-change` may set.
pub const MAX_CLAIM_ITEMS: usize = 128;

/// The CAEP event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `session-revoked`.
    SessionRevoked,
    /// `credential-change`.
    CredentialChange,
    /// `token-claims-change`.
    TokenClaimsChange,
    /// `assurance-level-change`.
    AssuranceLevelChange,
    /// `device-compliance-change`.
    DeviceComplianceChange,
    /// `risk-level-change`.
    RiskLevelChange,
}

/// The URI prefix of CAEP event types.
pub const CAEP_PREFIX: &str = "https://schemas.openid.net/secevent/caep/event-type/";

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 6] = [
        Kind::SessionRevoked,
        Kind::CredentialChange,
        Kind::TokenClaimsChange,
        Kind::AssuranceLevelChange,
        Kind::DeviceComplianceChange,
        Kind::RiskLevelChange,
    ];

    /// The CAEP name, e.g. `session-revoked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SessionRevoked => "session-revoked",
            Kind::CredentialChange => "credential-change",
            Kind::TokenClaimsChange => "token-claims-change",
            Kind::AssuranceLevelChange => "assurance-level-change",
            Kind::DeviceComplianceChange => "device-compliance-change",
            Kind::RiskLevelChange => "risk-level-change",
        }
    }

    /// The kind of a CAEP event type URI (or bare name).
    pub fn from_event_type(uri: &str) -> Option<Kind> {
        let name = uri.strip_prefix(CAEP_PREFIX).unwrap_or(uri);
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// A risk level, ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// No known risk.
    None,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

impl RiskLevel {
    /// Parses `none`/`low`/`medium`/`high`, case-insensitively.
    pub fn parse(text: &str) -> Option<RiskLevel> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Some(RiskLevel::None),
            "low" => Some(RiskLevel::Low),
            "medium" => Some(RiskLevel::Medium),
            "high" => Some(RiskLevel::High),
            _ => None,
        }
    }

    /// The value of `pdp:RiskLevel`.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::None => "none",
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }

    /// The value of `pdp:RiskScore`: 0 (none) to 3 (high).
    pub fn score(self) -> i64 {
        self as i64
    }
}

/// What a `token-claims-change` overrides, already mapped through the identity
/// configuration's roles and tags claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsOverride {
    /// New roles, when a roles claim changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// New principal tags, when the tags claim changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Whether the source is authoritative for claims: the override replaces the subject's
    /// roles and tags. Otherwise it only narrows them (a role or tag the subject does not
    /// carry is not added).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authoritative: bool,
}

impl ClaimsOverride {
    /// Maps changed claims: each of `roles_claims` present (an array of strings or a
    /// space-separated string) replaces the roles; `tags_claim` (an object of strings)
    /// replaces the tags. Other claims are ignored.
    pub fn from_claims(
        claims: &serde_json::Map<String, serde_json::Value>,
        roles_claims: &[String],
        tags_claim: &str,
    ) -> Result<ClaimsOverride, String> {
        use serde_json::Value as J;
        let mut out = ClaimsOverride::default();
        for name in roles_claims {
            let roles: Vec<String> = match claims.get(name) {
                None => continue,
                Some(J::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
                Some(J::Array(items)) => items
                    .iter()
                    .map(|v| match v {
                        J::String(s) => Ok(s.clone()),
                        _ => Err(format!("claim `{name}`: roles must be strings")),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(format!("claim `{name}`: not a string or an array")),
            };
            out.roles.get_or_insert_with(Vec::new).extend(roles);
        }
        if let Some(value) = claims.get(tags_claim) {
            let J::Object(map) = value else {
                return Err(format!("claim `{tags_claim}`: not an object"));
            };
            let mut tags = BTreeMap::new();
            for (k, v) in map {
                let J::String(v) = v else {
                    return Err(format!("claim `{tags_claim}.{k}`: not a string"));
                };
                tags.insert(k.clone(), v.clone());
            }
            out.tags = Some(tags);
        }
        let items =
            out.roles.as_ref().map_or(0, Vec::len) + out.tags.as_ref().map_or(0, BTreeMap::len);
        if items > MAX_CLAIM_ITEMS {
            return Err(format!(
                "{items} roles and tags, over the limit of {MAX_CLAIM_ITEMS}"
            ));
        }
        if out.roles.is_none() && out.tags.is_none() {
            return Err(format!(
                "no claim this PDP maps: expected one of {} or `{tags_claim}`",
                roles_claims
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(out)
    }
}

/// One security event, in the form the store keeps and replicas exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// The event type.
    pub kind: Kind,
    /// Subject id; empty when the event is about a session or device only.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Session id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session: String,
    /// Device id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub device: String,
    /// When the event happened, epoch seconds.
    pub at: i64,
    /// `risk-level-change`: the level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<RiskLevel>,
    /// `risk-level-change` raised by detection: when the raised level lapses, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// `device-compliance-change`: whether the device is compliant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliant: Option<bool>,
    /// `assurance-level-change`: namespace and level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assurance: Option<(String, String)>,
    /// `token-claims-change`: what changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsOverride>,
    /// Why (for logs only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl Signal {
    /// A signal of `kind` with no target or payload yet.
    pub fn new(kind: Kind, at: i64) -> Signal {
        Signal {
            kind,
            subject: String::new(),
            session: String::new(),
            device: String::new(),
            at,
            risk: None,
            until: None,
            compliant: None,
            assurance: None,
            claims: None,
            reason: String::new(),
        }
    }

    /// Checks that the signal names what its kind needs and carries its payload, and that
    /// every field is within bounds.
    pub fn validate(&self) -> Result<(), String> {
        self.check().map_err(|(field, message)| match field {
            Some(field) => format!("`{field}` is {message}"),
            None => message,
        })
    }

    /// [`Self::validate`], the field at fault apart (`None`: the signal as a whole): the
    /// message then says what is wrong with it (`300 bytes, over the limit of 256`).
    pub fn check(&self) -> Result<(), (Option<&'static str>, String)> {
        let (ns, level) = self
            .assurance
            .as_ref()
            .map_or(("", ""), |(n, l)| (n.as_str(), l.as_str()));
        for (name, value) in [
            ("subject", self.subject.as_str()),
            ("session_id", self.session.as_str()),
            ("device_id", self.device.as_str()),
            ("reason", self.reason.as_str()),
            ("assurance_namespace", ns),
            ("assurance_level", level),
        ] {
            if value.len() > MAX_FIELD_BYTES {
                return Err((
                    Some(name),
                    format!("{} bytes, over the limit of {MAX_FIELD_BYTES}", value.len()),
                ));
            }
        }
        let need = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err((
                    None,
                    format!("a `{}` signal needs {what}", self.kind.as_str()),
                ))
            }
        };
        let subject = !self.subject.is_empty();
        match self.kind {
            Kind::SessionRevoked => need(
                subject || !self.session.is_empty(),
                "a subject or a session id",
            ),
            Kind::CredentialChange => need(subject, "a subject"),
            Kind::TokenClaimsChange => {
                need(subject && self.claims.is_some(), "a subject and claims")
            }
            Kind::AssuranceLevelChange => need(
                subject
                    && self
                        .assurance
                        .as_ref()
                        .is_some_and(|(n, l)| !n.is_empty() && !l.is_empty()),
                "a subject, an assurance namespace and a level",
            ),
            Kind::DeviceComplianceChange => need(
                !self.device.is_empty() && self.compliant.is_some(),
                "a device id and a compliance status (`compliant` or `not-compliant`)",
            ),
            Kind::RiskLevelChange => need(
                (subject || !self.device.is_empty()) && self.risk.is_some(),
                "a subject or a device id, and a risk level (`none`, `low`, `medium`, `high`)",
            ),
        }
    }
}

/// Parses a compliance status: `compliant` / `not-compliant` (case-insensitive).
pub fn parse_compliance(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "compliant" => Some(true),
        "not-compliant" | "not_compliant" | "noncompliant" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_caep_uris() {
        for k in Kind::ALL {
            assert_eq!(
                Kind::from_event_type(&format!("{CAEP_PREFIX}{}", k.as_str())),
                Some(k)
            );
        }
        assert_eq!(Kind::from_event_type("https://example.com/other"), None);
    }

    #[test]
    fn signals_missing_what_their_kind_needs_are_refused() {
        let mut s = Signal::new(Kind::DeviceComplianceChange, 1);
        s.device = "d1".into();
        assert!(s.validate().is_err());
        s.compliant = Some(false);
        assert!(s.validate().is_ok());
        let mut r = Signal::new(Kind::SessionRevoked, 1);
        assert!(r.validate().is_err());
        r.subject = "x".repeat(MAX_FIELD_BYTES + 1);
        let too_long = r.validate().err().unwrap_or_default();
        assert!(too_long.contains("over the limit"), "{too_long}");
    }

    #[test]
    fn claims_map_through_the_identity_claims() {
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"roles": ["A", "B"], "tags": {"team": "x"}, "other": 1}"#)
                .unwrap_or_default();
        let o = ClaimsOverride::from_claims(&claims, &["roles".into()], "tags");
        assert_eq!(
            o,
            Ok(ClaimsOverride {
                roles: Some(vec!["A".into(), "B".into()]),
                tags: Some([("team".to_owned(), "x".to_owned())].into()),
                authoritative: false,
            })
        );
        let only_other: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"other": 1}"#).unwrap_or_default();
        assert!(ClaimsOverride::from_claims(&only_other, &["roles".into()], "tags").is_err());
    }
}
