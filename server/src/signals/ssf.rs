//! Shared Signals Framework push delivery (RFC 8935): a transmitter POSTs one Security Event
//! Token (RFC 8417) per request, signed with one of its keys, and this module verifies it
//! (size, `typ`, algorithm, issuer, key, signature, audience, age, replay) and turns its OpenID
//! CAEP events into [`Signal`]s, or recognises an SSF verification event. A refusal is an
//! [`SsfError`] whose [`code`](SsfError::code) is the RFC 8935 section 2.3 error code; it never
//! quotes the token. Verification has no side effect unless the whole SET is accepted: only
//! then is its `jti` remembered, so that a retried delivery of a refused SET is judged afresh
//! and a replayed accepted one is refused.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::identity::{build_keys, header_alg, is_symmetric, IdentityConfig, Key};
use crate::signals::{
    parse_compliance, ClaimsOverride, Kind, RiskLevel, Signal, MAX_FIELD_BYTES,
    MAX_SIGNALS_PER_CALL,
};

/// Largest SET (HTTP body) accepted, in bytes.
pub const MAX_SET_BYTES: usize = 64 * 1024;
/// Longest `jti` accepted, in bytes.
pub const MAX_JTI_BYTES: usize = 256;
/// How far in the future `iat` (and `event_timestamp`) may be, in seconds: clock skew.
pub const MAX_FUTURE_SECS: i64 = 60;
/// Most `(iss, jti)` pairs remembered for replay protection.
pub const MAX_REMEMBERED_JTIS: u64 = 1_000_000;
/// The SSF verification event type.
pub const VERIFICATION_EVENT_TYPE: &str =
    "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// Signature algorithms a SET may use (asymmetric only).
pub const ACCEPTED_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Longest piece of caller input quoted in an error message, in bytes.
const MAX_SHOWN_BYTES: usize = 128;
/// Longest `reason` kept from `reason_admin` / `reason_user`, in bytes.
const MAX_REASON_BYTES: usize = 256;

/// A configured transmitter: who may push events, and with which keys.
#[derive(Debug, Clone)]
pub struct Transmitter {
    /// The transmitter's `iss`.
    pub issuer: String,
    /// The `aud` its SETs must carry: this receiver.
    pub audience: String,
    /// Its public keys (asymmetric keys only are used).
    pub keys: JwkSet,
}

/// What a verified delivery carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// CAEP events, as signals, in the order of the SET's `events` member.
    Signals(Vec<Signal>),
    /// An SSF verification event: the transmitter checks that the stream works.
    Verification {
        /// The transmitter (`iss`).
        issuer: String,
        /// The `state` the receiver asked the transmitter to echo, if any.
        state: Option<String>,
    },
}

/// Why a delivery was refused: the RFC 8935 section 2.3 error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsfError {
    /// The request or the SET is malformed or not acceptable (`invalid_request`).
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// The key or algorithm cannot be used (`invalid_key`).
    #[error("invalid_key: {0}")]
    InvalidKey(String),
    /// The issuer is unknown or missing (`invalid_issuer`).
    #[error("invalid_issuer: {0}")]
    InvalidIssuer(String),
    /// The SET is not addressed to this receiver (`invalid_audience`).
    #[error("invalid_audience: {0}")]
    InvalidAudience(String),
    /// The signature does not verify (`authentication_failed`).
    #[error("authentication_failed: {0}")]
    AuthenticationFailed(String),
}

impl SsfError {
    /// The RFC 8935 error code, e.g. `invalid_request`.
    pub fn code(&self) -> &'static str {
        match self {
            SsfError::InvalidRequest(_) => "invalid_request",
            SsfError::InvalidKey(_) => "invalid_key",
            SsfError::InvalidIssuer(_) => "invalid_issuer",
            SsfError::InvalidAudience(_) => "invalid_audience",
            SsfError::AuthenticationFailed(_) => "authentication_failed",
        }
    }

    /// The human-readable description (RFC 8935 `description`).
    pub fn description(&self) -> &str {
        match self {
            SsfError::InvalidRequest(d)
            | SsfError::InvalidKey(d)
            | SsfError::InvalidIssuer(d)
            | SsfError::InvalidAudience(d)
            | SsfError::AuthenticationFailed(d) => d,
        }
    }
}

/// A transmitter, ready to verify with.
struct Configured {
    audience: String,
    /// By `kid` (or `#index` for a key without one).
    keys: HashMap<String, Key>,
}

impl std::fmt::Debug for Configured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Transmitter")
            .field("audience", &self.audience)
            .field("kids", &kids)
            .finish()
    }
}

impl Configured {
    /// The key that verifies a SET with header `kid` and `alg`.
    fn key(&self, kid: Option<&str>, alg: Algorithm) -> Result<&Key, SsfError> {
        let (name, key) = match kid {
            Some(kid) => match self.keys.get(kid) {
                Some(key) => (kid, key),
                None => {
                    return Err(SsfError::InvalidKey(format!(
                        "unknown key `{}` for this issuer",
                        shown(kid)
                    )))
                }
            },
            None => match (self.keys.len(), self.keys.iter().next()) {
                (1, Some((name, key))) => (name.as_str(), key),
                _ => {
                    return Err(SsfError::InvalidKey(
                        "the SET names no key (`kid`) and the issuer has more than one".into(),
                    ))
                }
            },
        };
        if !key.algorithms.contains(&alg) {
            return Err(SsfError::InvalidKey(format!(
                "key `{}` cannot verify `{alg:?}` signatures",
                shown(name)
            )));
        }
        Ok(key)
    }
}

/// Verifies SSF push deliveries from the configured transmitters.
pub struct SetVerifier {
    /// By issuer.
    transmitters: HashMap<String, Configured>,
    max_age: Duration,
    roles_claims: Vec<String>,
    tags_claim: String,
    /// Issuers whose `token-claims-change` events may add roles and tags; the others' only
    /// narrow.
    claims_authorities: std::collections::HashSet<String>,
    /// Digests of the `(iss, jti)` of accepted SETs.
    seen: moka::sync::Cache<[u8; 32], ()>,
}

impl std::fmt::Debug for SetVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut transmitters: Vec<(&String, &Configured)> = self.transmitters.iter().collect();
        transmitters.sort_by(|a, b| a.0.cmp(b.0));
        f.debug_struct("SetVerifier")
            .field("transmitters", &transmitters)
            .field("max_age", &self.max_age)
            .field("roles_claims", &self.roles_claims)
            .field("tags_claim", &self.tags_claim)
            .field("claims_authorities", &self.claims_authorities)
            .field("remembered_jtis", &self.seen.entry_count())
            .finish()
    }
}

impl SetVerifier {
    /// A verifier for `transmitters`. `max_age`: SETs whose `iat` is older than this (or more
    /// than [`MAX_FUTURE_SECS`] in the future) are refused; `jti`s are remembered this long
    /// (plus the allowed skew) for replay protection, at most [`MAX_REMEMBERED_JTIS`] of them.
    /// `roles_claims` and `tags_claim` map `token-claims-change` events as the identity
    /// configuration maps tokens.
    ///
    /// Fails when a transmitter has an empty issuer or audience or no usable asymmetric key,
    /// or when two transmitters share an issuer.
    pub fn new(
        transmitters: Vec<Transmitter>,
        max_age: Duration,
        roles_claims: Vec<String>,
        tags_claim: String,
    ) -> Result<SetVerifier, String> {
        let config = IdentityConfig {
            algorithms: ACCEPTED_ALGORITHMS.to_vec(),
            ..IdentityConfig::default()
        };
        let mut configured = HashMap::new();
        for t in transmitters {
            if t.issuer.is_empty() {
                return Err("an SSF transmitter has an empty issuer".into());
            }
            if t.audience.is_empty() {
                return Err(format!("SSF transmitter `{}`: empty audience", t.issuer));
            }
            let keys = build_keys(&t.keys, &config)
                .map_err(|e| format!("SSF transmitter `{}`: {e}", t.issuer))?;
            if keys.values().all(|k| k.algorithms.is_empty()) {
                return Err(format!(
                    "SSF transmitter `{}`: no key can verify an accepted algorithm",
                    t.issuer
                ));
            }
            if configured.contains_key(&t.issuer) {
                return Err(format!(
                    "SSF transmitter `{}` is configured twice",
                    t.issuer
                ));
            }
            configured.insert(
                t.issuer,
                Configured {
                    audience: t.audience,
                    keys,
                },
            );
        }
        let skew = Duration::from_secs(MAX_FUTURE_SECS.unsigned_abs());
        Ok(SetVerifier {
            transmitters: configured,
            max_age,
            roles_claims,
            tags_claim,
            claims_authorities: std::collections::HashSet::new(),
            seen: moka::sync::Cache::builder()
                .max_capacity(MAX_REMEMBERED_JTIS)
                .time_to_live(max_age.saturating_add(skew))
                .build(),
        })
    }

    /// Makes the transmitters `issuers` authoritative for claims: their `token-claims-change`
    /// events replace the subject's roles and tags. The others' (by default, every
    /// transmitter's) only narrow them.
    #[must_use]
    pub fn with_claims_authorities(mut self, issuers: impl IntoIterator<Item = String>) -> Self {
        self.claims_authorities.extend(issuers);
        self
    }

    /// Verifies one SET (the raw HTTP body) at `now` (epoch seconds). On success the SET's
    /// `(iss, jti)` is remembered, and a later delivery of the same pair is refused.
    pub fn verify(&self, body: &[u8], now: i64) -> Result<Delivery, SsfError> {
        // 1. The body.
        if body.len() > MAX_SET_BYTES {
            return Err(SsfError::InvalidRequest(format!(
                "the body is {} bytes, over the limit of {MAX_SET_BYTES}",
                body.len()
            )));
        }
        let token = std::str::from_utf8(body)
            .map_err(|_| SsfError::InvalidRequest("the body is not UTF-8".into()))?
            .trim();
        let alg_name = header_alg(token).map_err(|e| SsfError::InvalidRequest(e.to_string()))?;
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(_), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(SsfError::InvalidRequest(
                "the body is not a compact JWS (three `.`-separated segments)".into(),
            ));
        };

        // 2. The header.
        let header_json = json_segment(header_b64, "header")?;
        match header_json.get("typ") {
            Some(Value::String(typ))
                if typ.eq_ignore_ascii_case("secevent+jwt")
                    || typ.eq_ignore_ascii_case("application/secevent+jwt") => {}
            Some(Value::String(typ)) => {
                return Err(SsfError::InvalidRequest(format!(
                    "the header's `typ` is `{}`; a SET's is `secevent+jwt`",
                    shown(typ)
                )))
            }
            Some(_) | None => {
                return Err(SsfError::InvalidRequest(
                    "the header has no `typ`; a SET's is `secevent+jwt`".into(),
                ))
            }
        }
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(SsfError::InvalidKey(
                "unsigned SETs (`alg: none`) are not accepted".into(),
            ));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => {
                SsfError::InvalidKey(format!("algorithm `{}` is not accepted", shown(&alg_name)))
            }
            _ => SsfError::InvalidRequest(format!("the header is not valid: {e}")),
        })?;
        let alg = header.alg;
        if is_symmetric(alg) || !ACCEPTED_ALGORITHMS.contains(&alg) {
            return Err(SsfError::InvalidKey(format!(
                "algorithm `{alg:?}` is not accepted"
            )));
        }

        // 3. The transmitter, by the (not yet verified) issuer.
        let unverified = json_segment(payload_b64, "payload")?;
        let issuer = match unverified.get("iss") {
            Some(Value::String(iss)) if !iss.is_empty() => iss.as_str(),
            _ => return Err(SsfError::InvalidIssuer("the SET has no `iss`".into())),
        };
        let transmitter = self.transmitters.get(issuer).ok_or_else(|| {
            SsfError::InvalidIssuer(format!("unknown issuer `{}`", shown(issuer)))
        })?;

        // 4. The key.
        let key = transmitter.key(header.kid.as_deref(), alg)?;

        // 5. Signature, then audience.
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature => {
                        SsfError::AuthenticationFailed("the signature does not verify".into())
                    }
                    K::InvalidAlgorithm
                    | K::InvalidKeyFormat
                    | K::InvalidRsaKey(_)
                    | K::InvalidEcdsaKey
                    | K::InvalidAlgorithmName => {
                        SsfError::InvalidKey(format!("the key cannot verify this SET: {e}"))
                    }
                    _ => SsfError::InvalidRequest(format!("the SET cannot be verified: {e}")),
                }
            })?
            .claims;
        // The verified payload is the one the issuer was read from; check anyway.
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(SsfError::InvalidIssuer("the SET's `iss` changed".into()));
        }
        let addressed = match claims.get("aud") {
            Some(Value::String(aud)) => *aud == transmitter.audience,
            Some(Value::Array(auds)) => auds
                .iter()
                .any(|a| a.as_str() == Some(transmitter.audience.as_str())),
            _ => false,
        };
        if !addressed {
            return Err(SsfError::InvalidAudience(
                "the SET's `aud` does not name this receiver".into(),
            ));
        }

        // 6. Claims.
        let jti = match claims.get("jti") {
            Some(Value::String(jti)) if !jti.is_empty() && jti.len() <= MAX_JTI_BYTES => jti,
            _ => {
                return Err(SsfError::InvalidRequest(format!(
                    "`jti` must be a non-empty string of at most {MAX_JTI_BYTES} bytes"
                )))
            }
        };
        let iat = claims
            .get("iat")
            .and_then(epoch_seconds)
            .ok_or_else(|| SsfError::InvalidRequest("`iat` is missing or not a number".into()))?;
        let max_age = i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX);
        if iat < now.saturating_sub(max_age) {
            return Err(SsfError::InvalidRequest(format!(
                "the SET is stale: issued {}s ago, over the limit of {max_age}s",
                now.saturating_sub(iat)
            )));
        }
        if iat > now.saturating_add(MAX_FUTURE_SECS) {
            return Err(SsfError::InvalidRequest(
                "the SET's `iat` is in the future".into(),
            ));
        }
        if let Some(exp) = claims.get("exp") {
            let exp = epoch_seconds(exp)
                .ok_or_else(|| SsfError::InvalidRequest("`exp` is not a number".into()))?;
            if exp.saturating_add(MAX_FUTURE_SECS) < now {
                return Err(SsfError::InvalidRequest(
                    "the SET has expired (`exp`)".into(),
                ));
            }
        }
        let events = match claims.get("events") {
            Some(Value::Object(events)) if !events.is_empty() => events,
            _ => {
                return Err(SsfError::InvalidRequest(
                    "`events` must be an object with at least one event".into(),
                ))
            }
        };
        let seen_key = jti_digest(issuer, jti);
        if self.seen.contains_key(&seen_key) {
            return Err(already_received(jti));
        }

        // 7. Events.
        let delivery = self.events(issuer, events, claims.get("sub_id"), iat, now)?;

        // Recorded only now, atomically: of two concurrent deliveries, one is refused.
        if !self.seen.entry(seen_key).or_insert(()).is_fresh() {
            return Err(already_received(jti));
        }
        Ok(delivery)
    }

    /// What the `events` member of a verified SET carries.
    fn events(
        &self,
        issuer: &str,
        events: &Map<String, Value>,
        sub_id: Option<&Value>,
        iat: i64,
        now: i64,
    ) -> Result<Delivery, SsfError> {
        if let Some(event) = events.get(VERIFICATION_EVENT_TYPE) {
            if events.len() != 1 {
                return Err(SsfError::InvalidRequest(
                    "a verification event must be the SET's only event".into(),
                ));
            }
            let Value::Object(event) = event else {
                return Err(SsfError::InvalidRequest(
                    "the verification event is not an object".into(),
                ));
            };
            let state = match event.get("state") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.len() <= MAX_FIELD_BYTES => Some(s.clone()),
                Some(Value::String(s)) => {
                    return Err(SsfError::InvalidRequest(format!(
                        "the verification `state` is {} bytes, over the limit of {MAX_FIELD_BYTES}",
                        s.len()
                    )))
                }
                Some(_) => {
                    return Err(SsfError::InvalidRequest(
                        "the verification `state` is not a string".into(),
                    ))
                }
            };
            return Ok(Delivery::Verification {
                issuer: issuer.to_owned(),
                state,
            });
        }
        if events.len() > MAX_SIGNALS_PER_CALL {
            return Err(SsfError::InvalidRequest(format!(
                "{} events, over the limit of {MAX_SIGNALS_PER_CALL}",
                events.len()
            )));
        }
        let mut signals = Vec::with_capacity(events.len());
        for (uri, event) in events {
            let kind = Kind::from_event_type(uri).ok_or_else(|| {
                SsfError::InvalidRequest(format!("unknown event type `{}`", shown(uri)))
            })?;
            let signal = self
                .signal(issuer, kind, event, sub_id, iat, now)
                .map_err(|e| SsfError::InvalidRequest(format!("event `{}`: {e}", shown(uri))))?;
            signals.push(signal);
        }
        Ok(Delivery::Signals(signals))
    }

    /// One CAEP event as a signal.
    fn signal(
        &self,
        issuer: &str,
        kind: Kind,
        event: &Value,
        sub_id: Option<&Value>,
        iat: i64,
        now: i64,
    ) -> Result<Signal, String> {
        let Value::Object(event) = event else {
            return Err("the event is not an object".into());
        };
        let subject = event
            .get("subject")
            .or(sub_id)
            .ok_or("no `subject`, and the SET has no `sub_id`")?;
        let target = Target::parse(subject)?;
        let at = match event.get("event_timestamp") {
            None => iat,
            Some(v) => epoch_seconds(v)
                .filter(|t| *t >= 0)
                .ok_or("`event_timestamp` is not epoch seconds")?,
        };
        if at > now.saturating_add(MAX_FUTURE_SECS) {
            return Err("`event_timestamp` is in the future".into());
        }
        let mut signal = Signal::new(kind, at);
        signal.subject = target.user.unwrap_or_default();
        signal.session = target.session.unwrap_or_default();
        signal.device = target.device.unwrap_or_default();
        match kind {
            Kind::RiskLevelChange => {
                let level = text(event, "current_level")?;
                signal.risk = Some(RiskLevel::parse(level).ok_or_else(|| {
                    format!(
                        "`current_level` `{}` is not a risk level (`none`, `low`, `medium`, `high`)",
                        shown(level)
                    )
                })?);
                // The risk is the user's, unless the event is about a device only or says so.
                let principal = match event.get("principal") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(p)) => Some(p.to_ascii_uppercase()),
                    Some(_) => return Err("`principal` is not a string".into()),
                };
                match principal.as_deref() {
                    None if !signal.subject.is_empty() => signal.device.clear(),
                    None => signal.subject.clear(),
                    Some("USER") => signal.device.clear(),
                    Some("DEVICE") => signal.subject.clear(),
                    Some(other) => {
                        return Err(format!(
                            "a risk level for principal `{}` is not supported (`USER` or `DEVICE`)",
                            shown(other)
                        ))
                    }
                }
                signal.session.clear();
            }
            Kind::DeviceComplianceChange => {
                let status = text(event, "current_status")?;
                signal.compliant = Some(parse_compliance(status).ok_or_else(|| {
                    format!(
                        "`current_status` `{}` is not `compliant` or `not-compliant`",
                        shown(status)
                    )
                })?);
            }
            Kind::AssuranceLevelChange => {
                signal.assurance = Some((
                    text(event, "namespace")?.to_owned(),
                    text(event, "current_level")?.to_owned(),
                ));
            }
            Kind::TokenClaimsChange => {
                let Some(Value::Object(claims)) = event.get("claims") else {
                    return Err("`claims` is missing or not an object".into());
                };
                signal.claims = Some(ClaimsOverride {
                    authoritative: self.claims_authorities.contains(issuer),
                    ..ClaimsOverride::from_claims(claims, &self.roles_claims, &self.tags_claim)?
                });
            }
            Kind::SessionRevoked | Kind::CredentialChange => {}
        }
        signal.reason = reason(event);
        signal.validate()?;
        Ok(signal)
    }
}

/// Whom an event is about.
#[derive(Debug, Default)]
struct Target {
    user: Option<String>,
    session: Option<String>,
    device: Option<String>,
}

impl Target {
    /// A subject identifier (RFC 9493): a simple format names the user; `complex` (or the
    /// CAEP shorthand without a `format`) names a user, a session and a device.
    fn parse(subject: &Value) -> Result<Target, String> {
        let Value::Object(members) = subject else {
            return Err("the subject is not an object".into());
        };
        let complex = match members.get("format") {
            Some(Value::String(f)) => f == "complex",
            Some(_) => return Err("the subject's `format` is not a string".into()),
            None => ["user", "session", "device"]
                .iter()
                .any(|m| members.contains_key(*m)),
        };
        if !complex {
            return Ok(Target {
                user: Some(simple_id(subject, "subject", true)?),
                ..Target::default()
            });
        }
        let part = |name: &str, email: bool| {
            members
                .get(name)
                .map(|v| simple_id(v, name, email))
                .transpose()
        };
        let target = Target {
            user: part("user", true)?,
            session: part("session", false)?,
            device: part("device", false)?,
        };
        if target.user.is_none() && target.session.is_none() && target.device.is_none() {
            return Err("the complex subject names no `user`, `session` or `device`".into());
        }
        Ok(target)
    }
}

/// The id a simple subject identifier carries: `opaque` → `id`, `iss_sub` → `sub`, and
/// (where `email` is allowed) `email` → `email`.
fn simple_id(value: &Value, what: &str, email: bool) -> Result<String, String> {
    let Value::Object(members) = value else {
        return Err(format!("`{what}` is not a subject identifier object"));
    };
    let format = match members.get("format") {
        Some(Value::String(f)) => f.as_str(),
        _ => return Err(format!("`{what}` has no `format`")),
    };
    let id = match format {
        "opaque" => text(members, "id"),
        "iss_sub" => text(members, "iss").and_then(|_| text(members, "sub")),
        "email" if email => text(members, "email"),
        other => {
            return Err(format!(
                "`{what}`: subject identifier format `{}` is not supported",
                shown(other)
            ))
        }
    };
    id.map(str::to_owned).map_err(|e| format!("`{what}`: {e}"))
}

/// A required, non-empty string member.
fn text<'a>(members: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    match members.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(format!("`{name}` is missing or not a non-empty string")),
    }
}

/// `reason_admin` (else `reason_user`): a string, or language tag → string (English first).
fn reason(event: &Map<String, Value>) -> String {
    for name in ["reason_admin", "reason_user"] {
        let found = match event.get(name) {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(Value::Object(by_language)) => by_language
                .get("en")
                .and_then(Value::as_str)
                .or_else(|| by_language.values().find_map(Value::as_str)),
            _ => None,
        };
        if let Some(found) = found.filter(|s| !s.is_empty()) {
            return crate::truncated(found, MAX_REASON_BYTES).to_owned();
        }
    }
    String::new()
}

/// A base64url JSON object segment.
fn json_segment(segment: &str, what: &str) -> Result<Map<String, Value>, SsfError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| SsfError::InvalidRequest(format!("the {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(members)) => Ok(members),
        Ok(_) | Err(_) => Err(SsfError::InvalidRequest(format!(
            "the {what} is not a JSON object"
        ))),
    }
}

/// Epoch seconds from a JSON number (fractions dropped).
fn epoch_seconds(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f as i64)
    })
}

/// The replay-cache key of `(iss, jti)`.
fn jti_digest(issuer: &str, jti: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((issuer.len() as u64).to_le_bytes());
    hasher.update(issuer.as_bytes());
    hasher.update(jti.as_bytes());
    hasher.finalize().into()
}

fn already_received(jti: &str) -> SsfError {
    SsfError::InvalidRequest(format!(
        "a SET with `jti` `{}` was already received from this issuer",
        shown(jti)
    ))
}

/// Caller input as quoted in an error message: bounded.
fn shown(s: &str) -> String {
    let cut = crate::truncated(s, MAX_SHOWN_BYTES);
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut.to_owned()
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const NOW: i64 = 1_750_000_000;
    const ISS: &str = "https://idp.example.com/";
    const AUD: &str = "https://pdp.example.com/ssf";
    const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn jwks() -> JwkSet {
        let text = std::fs::read_to_string(fixture("jwks.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn verifier() -> SetVerifier {
        SetVerifier::new(
            vec![Transmitter {
                issuer: ISS.into(),
                audience: AUD.into(),
                keys: jwks(),
            }],
            Duration::from_secs(300),
            vec!["roles".into(), "groups".into()],
            "tags".into(),
        )
        .unwrap()
    }

    /// A SET signed with `pem` (RS256 for RSA keys, ES256 for `ec.pem`) under `kid`.
    fn sign_with(pem: &str, kid: Option<&str>, claims: &Value) -> String {
        let bytes = std::fs::read(fixture(pem)).unwrap();
        let (alg, key) = if pem.starts_with("ec") {
            (Algorithm::ES256, EncodingKey::from_ec_pem(&bytes).unwrap())
        } else {
            (Algorithm::RS256, EncodingKey::from_rsa_pem(&bytes).unwrap())
        };
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        header.typ = Some("secevent+jwt".into());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn sign(claims: &Value) -> String {
        sign_with("rsa.pem", Some("rsa-1"), claims)
    }

    /// A SET's claims with one event.
    fn set(jti: &str, event_type: &str, event: Value) -> Value {
        json!({
            "iss": ISS,
            "aud": AUD,
            "iat": NOW - 10,
            "jti": jti,
            "events": { event_type: event },
        })
    }

    fn caep(name: &str) -> String {
        format!("{CAEP}{name}")
    }

    fn user(sub: &str) -> Value {
        json!({"format": "iss_sub", "iss": ISS, "sub": sub})
    }

    fn signals(v: &SetVerifier, token: &str) -> Vec<Signal> {
        match v.verify(token.as_bytes(), NOW) {
            Ok(Delivery::Signals(s)) => s,
            other => panic!("expected signals, got {other:?}"),
        }
    }

    fn one_signal(claims: &Value) -> Signal {
        let mut s = signals(&verifier(), &sign(claims));
        assert_eq!(s.len(), 1);
        s.pop().unwrap()
    }

    /// The refusal of `token`, checked not to quote it.
    fn refusal(v: &SetVerifier, token: &str) -> SsfError {
        let e = v.verify(token.as_bytes(), NOW).unwrap_err();
        assert!(!e.description().contains(token), "{e}");
        if let Some(sig) = token.rsplit('.').next().filter(|s| s.len() > 8) {
            assert!(!e.to_string().contains(sig), "{e}");
        }
        e
    }

    #[test]
    fn a_session_revoked_set_with_a_complex_subject_becomes_a_signal() {
        let claims = set(
            "j1",
            &caep("session-revoked"),
            json!({
                "subject": {
                    "format": "complex",
                    "user": user("alice"),
                    "session": {"format": "opaque", "id": "sess-1"},
                },
                "event_timestamp": NOW - 20,
                "initiating_entity": "policy",
                "reason_admin": {"en": "Landspeed policy violation"},
            }),
        );
        let mut expected = Signal::new(Kind::SessionRevoked, NOW - 20);
        expected.subject = "alice".into();
        expected.session = "sess-1".into();
        expected.reason = "Landspeed policy violation".into();
        assert_eq!(one_signal(&claims), expected);
    }

    #[test]
    fn each_caep_type_maps_its_payload() {
        let risk = one_signal(&set(
            "r",
            &caep("risk-level-change"),
            json!({"subject": user("alice"), "current_level": "HIGH", "previous_level": "LOW"}),
        ));
        assert_eq!(
            (risk.subject.as_str(), risk.risk),
            ("alice", Some(RiskLevel::High))
        );

        let compliance = one_signal(&set(
            "d",
            &caep("device-compliance-change"),
            json!({
                "subject": {"device": {"format": "opaque", "id": "dev-1"}},
                "current_status": "not-compliant",
                "previous_status": "compliant",
            }),
        ));
        assert_eq!(compliance.device, "dev-1");
        assert_eq!(compliance.compliant, Some(false));

        let assurance = one_signal(&set(
            "a",
            &caep("assurance-level-change"),
            json!({"subject": user("alice"), "namespace": "NIST-AAL", "current_level": "nist-aal2"}),
        ));
        assert_eq!(
            assurance.assurance,
            Some(("NIST-AAL".to_owned(), "nist-aal2".to_owned()))
        );

        let claims = one_signal(&set(
            "c",
            &caep("token-claims-change"),
            json!({"subject": user("alice"), "claims": {"roles": ["admin"], "tags": {"team": "x"}}}),
        ));
        assert_eq!(
            claims.claims,
            Some(ClaimsOverride {
                roles: Some(vec!["admin".into()]),
                tags: Some([("team".to_owned(), "x".to_owned())].into()),
                authoritative: false,
            })
        );

        let event = set(
            "c2",
            &caep("token-claims-change"),
            json!({"subject": user("alice"), "claims": {"roles": ["admin"]}}),
        );
        let trusted = verifier().with_claims_authorities([ISS.to_owned()]);
        let from_authority = signals(&trusted, &sign(&event)).pop().unwrap();
        assert_eq!(
            from_authority.claims.map(|c| c.authoritative),
            Some(true),
            "a transmitter configured as authoritative for claims may add roles"
        );

        let credential = one_signal(&set(
            "k",
            &caep("credential-change"),
            json!({
                "subject": {"format": "email", "email": "alice@example.com"},
                "credential_type": "password",
                "change_type": "update",
                "reason_user": "x".repeat(2 * MAX_REASON_BYTES),
            }),
        ));
        assert_eq!(credential.subject, "alice@example.com");
        assert_eq!(credential.reason.len(), MAX_REASON_BYTES);
        // No `event_timestamp`: the SET's `iat`.
        assert_eq!(credential.at, NOW - 10);
    }

    #[test]
    fn a_risk_about_a_device_only_applies_to_the_device() {
        let risk = one_signal(&set(
            "r",
            &caep("risk-level-change"),
            json!({"subject": {"format": "complex", "device": {"format": "opaque", "id": "dev-1"}}, "current_level": "medium"}),
        ));
        assert_eq!((risk.subject.as_str(), risk.device.as_str()), ("", "dev-1"));
        let told = one_signal(&set(
            "r2",
            &caep("risk-level-change"),
            json!({
                "subject": {"user": user("alice"), "device": {"format": "opaque", "id": "dev-1"}},
                "principal": "DEVICE",
                "current_level": "low",
            }),
        ));
        assert_eq!((told.subject.as_str(), told.device.as_str()), ("", "dev-1"));
    }

    #[test]
    fn the_sets_sub_id_is_the_subject_when_the_event_names_none() {
        let mut claims = set("s", &caep("session-revoked"), json!({}));
        claims["sub_id"] = json!({"format": "opaque", "id": "alice"});
        assert_eq!(one_signal(&claims).subject, "alice");
        let no_subject = set("s2", &caep("session-revoked"), json!({}));
        let e = refusal(&verifier(), &sign(&no_subject));
        assert_eq!(e.code(), "invalid_request");
    }

    #[test]
    fn an_unknown_subject_format_or_an_invalid_signal_is_refused() {
        let v = verifier();
        let phone = set(
            "p",
            &caep("session-revoked"),
            json!({"subject": {"format": "phone_number", "phone_number": "+1 555"}}),
        );
        let e = refusal(&v, &sign(&phone));
        assert!(
            matches!(e, SsfError::InvalidRequest(ref d) if d.contains("phone_number")),
            "{e}"
        );
        let no_level = set(
            "l",
            &caep("risk-level-change"),
            json!({"subject": user("alice"), "current_level": "catastrophic"}),
        );
        let e = refusal(&v, &sign(&no_level));
        assert!(
            matches!(e, SsfError::InvalidRequest(ref d) if d.contains("risk-level-change")),
            "{e}"
        );
        // A compliance change about a user (no device) fails `Signal::validate`.
        let no_device = set(
            "n",
            &caep("device-compliance-change"),
            json!({"subject": user("alice"), "current_status": "compliant"}),
        );
        let e = refusal(&v, &sign(&no_device));
        assert!(
            matches!(e, SsfError::InvalidRequest(ref d) if d.contains("device id")),
            "{e}"
        );
    }

    #[test]
    fn a_verification_event_carries_the_issuer_and_state() {
        let v = verifier();
        let claims = set("v1", VERIFICATION_EVENT_TYPE, json!({"state": "abc"}));
        assert_eq!(
            v.verify(sign(&claims).as_bytes(), NOW),
            Ok(Delivery::Verification {
                issuer: ISS.into(),
                state: Some("abc".into()),
            })
        );
        let mut mixed = set("v2", VERIFICATION_EVENT_TYPE, json!({}));
        mixed["events"][caep("session-revoked")] = json!({"subject": user("alice")});
        assert_eq!(refusal(&v, &sign(&mixed)).code(), "invalid_request");
    }

    #[test]
    fn an_es256_set_verifies_with_the_ec_key() {
        let claims = set(
            "e",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        let token = sign_with("ec.pem", Some("ec-1"), &claims);
        assert_eq!(signals(&verifier(), &token).len(), 1);
    }

    #[test]
    fn a_signature_by_another_key_fails_authentication() {
        let claims = set(
            "x",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        let token = sign_with("rsa-other.pem", Some("rsa-1"), &claims);
        assert!(matches!(
            refusal(&verifier(), &token),
            SsfError::AuthenticationFailed(_)
        ));
    }

    #[test]
    fn unknown_or_mismatched_keys_are_invalid_keys() {
        let v = verifier();
        let claims = set(
            "x",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        let unknown = sign_with("rsa.pem", Some("rsa-9"), &claims);
        assert!(matches!(refusal(&v, &unknown), SsfError::InvalidKey(_)));
        // RS256 under the EC key's kid.
        let mismatched = sign_with("rsa.pem", Some("ec-1"), &claims);
        assert!(matches!(refusal(&v, &mismatched), SsfError::InvalidKey(_)));
        // No kid, and the issuer has three keys.
        let no_kid = sign_with("rsa.pem", None, &claims);
        assert!(matches!(refusal(&v, &no_kid), SsfError::InvalidKey(_)));
    }

    #[test]
    fn without_a_kid_the_only_key_is_used() {
        let mut keys = jwks();
        keys.keys
            .retain(|k| k.common.key_id.as_deref() == Some("ec-1"));
        let v = SetVerifier::new(
            vec![Transmitter {
                issuer: ISS.into(),
                audience: AUD.into(),
                keys,
            }],
            Duration::from_secs(300),
            vec![],
            "tags".into(),
        )
        .unwrap();
        let claims = set(
            "x",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        assert_eq!(signals(&v, &sign_with("ec.pem", None, &claims)).len(), 1);
    }

    #[test]
    fn a_set_for_another_audience_is_refused() {
        let v = verifier();
        let mut claims = set(
            "x",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        claims["aud"] = json!("https://other.example.com/");
        assert!(matches!(
            refusal(&v, &sign(&claims)),
            SsfError::InvalidAudience(_)
        ));
        claims["aud"] = json!(["https://other.example.com/", AUD]);
        assert_eq!(signals(&v, &sign(&claims)).len(), 1);
        claims["jti"] = json!("y");
        if let Some(c) = claims.as_object_mut() {
            c.remove("aud");
        }
        assert!(matches!(
            refusal(&v, &sign(&claims)),
            SsfError::InvalidAudience(_)
        ));
    }

    #[test]
    fn an_unknown_or_missing_issuer_is_refused() {
        let v = verifier();
        let mut claims = set(
            "x",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        claims["iss"] = json!("https://evil.example.com/");
        assert!(matches!(
            refusal(&v, &sign(&claims)),
            SsfError::InvalidIssuer(_)
        ));
        if let Some(c) = claims.as_object_mut() {
            c.remove("iss");
        }
        assert!(matches!(
            refusal(&v, &sign(&claims)),
            SsfError::InvalidIssuer(_)
        ));
    }

    #[test]
    fn a_replayed_jti_is_refused_and_a_refused_sets_jti_is_not_recorded() {
        let v = verifier();
        let good = set(
            "j",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        // Refused first (unknown event type alongside), with the same jti.
        let mut bad = good.clone();
        bad["events"]["https://example.com/other"] = json!({});
        assert_eq!(refusal(&v, &sign(&bad)).code(), "invalid_request");
        let token = sign(&good);
        assert_eq!(signals(&v, &token).len(), 1);
        let e = refusal(&v, &token);
        assert!(
            matches!(e, SsfError::InvalidRequest(ref d) if d.contains("already received")),
            "{e}"
        );
        // The same jti from another issuer is another SET.
        let other = SetVerifier::new(
            vec![
                Transmitter {
                    issuer: ISS.into(),
                    audience: AUD.into(),
                    keys: jwks(),
                },
                Transmitter {
                    issuer: "https://idp2.example.com/".into(),
                    audience: AUD.into(),
                    keys: jwks(),
                },
            ],
            Duration::from_secs(300),
            vec![],
            "tags".into(),
        )
        .unwrap();
        let mut second = good.clone();
        second["iss"] = json!("https://idp2.example.com/");
        assert_eq!(signals(&other, &token).len(), 1);
        assert_eq!(signals(&other, &sign(&second)).len(), 1);
    }

    #[test]
    fn an_unknown_event_type_refuses_the_whole_set() {
        let mut claims = set(
            "u",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        claims["events"]["https://example.com/event/other"] = json!({"subject": user("alice")});
        let e = refusal(&verifier(), &sign(&claims));
        assert!(
            matches!(e, SsfError::InvalidRequest(ref d) if d.contains("unknown event type")),
            "{e}"
        );
    }

    #[test]
    fn malformed_bodies_are_invalid_requests() {
        let v = verifier();
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let header = b64(r#"{"alg":"RS256","typ":"secevent+jwt","kid":"rsa-1"}"#);
        let cases = [
            "not a jwt".to_owned(),
            "a.b".to_owned(),
            format!("{header}.{}.c2ln", b64("{not json")),
            format!("{header}.{}.c2ln", b64("[1, 2]")),
            format!("{}.{}.c2ln", b64("{not json"), b64("{}")),
        ];
        for case in &cases {
            assert_eq!(refusal(&v, case).code(), "invalid_request", "{case}");
        }
        assert_eq!(
            v.verify(&[0xff, 0xfe, b'.', b'a', b'.', b'b'], NOW)
                .map_err(|e| e.code()),
            Err("invalid_request")
        );
        let big = vec![b'a'; MAX_SET_BYTES + 1];
        assert_eq!(
            v.verify(&big, NOW).map_err(|e| e.code()),
            Err("invalid_request")
        );

        // A JWT that is not a SET: no `typ`, or another one.
        let claims = set(
            "t",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        let key = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa.pem")).unwrap()).unwrap();
        for typ in [None, Some("JWT")] {
            let mut h = Header::new(Algorithm::RS256);
            h.kid = Some("rsa-1".into());
            h.typ = typ.map(str::to_owned);
            let token = jsonwebtoken::encode(&h, &claims, &key).unwrap();
            let e = refusal(&v, &token);
            assert!(
                matches!(e, SsfError::InvalidRequest(ref d) if d.contains("typ")),
                "{e}"
            );
        }
        // `application/secevent+jwt` is accepted, case-insensitively.
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("rsa-1".into());
        h.typ = Some("Application/SecEvent+JWT".into());
        let token = jsonwebtoken::encode(&h, &claims, &key).unwrap();
        assert_eq!(signals(&v, &token).len(), 1);
    }

    #[test]
    fn required_claims_must_be_present() {
        let v = verifier();
        let base = set(
            "m",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        for (claim, value) in [
            ("jti", None),
            ("jti", Some(json!(""))),
            ("jti", Some(json!("j".repeat(MAX_JTI_BYTES + 1)))),
            ("iat", None),
            ("iat", Some(json!("yesterday"))),
            ("events", None),
            ("events", Some(json!({}))),
            ("exp", Some(json!(NOW - 3600))),
        ] {
            let mut claims = base.clone();
            match value {
                Some(value) => claims[claim] = value,
                None => {
                    if let Some(c) = claims.as_object_mut() {
                        c.remove(claim);
                    }
                }
            }
            assert_eq!(
                refusal(&v, &sign(&claims)).code(),
                "invalid_request",
                "{claim}"
            );
        }
        // An `exp` still ahead is fine.
        let mut claims = base.clone();
        claims["exp"] = json!(NOW + 3600);
        assert_eq!(signals(&v, &sign(&claims)).len(), 1);
    }

    #[test]
    fn unsigned_and_hmac_sets_are_invalid_keys() {
        let v = verifier();
        let claims = set(
            "n",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"secevent+jwt"}"#),
            b64(&claims.to_string())
        );
        assert!(matches!(refusal(&v, &none), SsfError::InvalidKey(_)));
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("rsa-1".into());
        h.typ = Some("secevent+jwt".into());
        let public = std::fs::read(fixture("rsa-public.pem")).unwrap();
        let hs =
            jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&public).unwrap()).unwrap();
        assert!(matches!(refusal(&v, &hs), SsfError::InvalidKey(_)));
    }

    #[test]
    fn stale_and_future_sets_are_refused() {
        let v = verifier();
        let mut claims = set(
            "s",
            &caep("session-revoked"),
            json!({"subject": user("alice")}),
        );
        claims["iat"] = json!(NOW - 301);
        let e = refusal(&v, &sign(&claims));
        assert!(
            matches!(e, SsfError::InvalidRequest(ref d) if d.contains("stale")),
            "{e}"
        );
        claims["iat"] = json!(NOW + 61);
        assert_eq!(refusal(&v, &sign(&claims)).code(), "invalid_request");
        claims["iat"] = json!(NOW + 60);
        assert_eq!(signals(&v, &sign(&claims)).len(), 1);
    }

    #[test]
    fn error_codes_are_the_rfc_8935_ones() {
        let d = || "d".to_owned();
        assert_eq!(SsfError::InvalidRequest(d()).code(), "invalid_request");
        assert_eq!(SsfError::InvalidKey(d()).code(), "invalid_key");
        assert_eq!(SsfError::InvalidIssuer(d()).code(), "invalid_issuer");
        assert_eq!(SsfError::InvalidAudience(d()).code(), "invalid_audience");
        assert_eq!(
            SsfError::AuthenticationFailed(d()).code(),
            "authentication_failed"
        );
        assert_eq!(SsfError::InvalidKey("why".into()).description(), "why");
    }

    #[test]
    fn bad_configurations_are_refused() {
        let t = |issuer: &str, audience: &str, keys: JwkSet| Transmitter {
            issuer: issuer.into(),
            audience: audience.into(),
            keys,
        };
        let new = |ts: Vec<Transmitter>| {
            SetVerifier::new(ts, Duration::from_secs(60), vec![], "tags".into()).map(|_| ())
        };
        assert!(new(vec![t("", AUD, jwks())]).is_err());
        assert!(new(vec![t(ISS, "", jwks())]).is_err());
        assert!(new(vec![t(ISS, AUD, JwkSet { keys: vec![] })]).is_err());
        let symmetric: JwkSet =
            serde_json::from_value(json!({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}))
                .unwrap();
        assert!(new(vec![t(ISS, AUD, symmetric)]).is_err());
        assert!(new(vec![t(ISS, AUD, jwks()), t(ISS, AUD, jwks())]).is_err());
        assert!(new(vec![t(ISS, AUD, jwks())]).is_ok());
        let shown = format!("{:?}", verifier());
        assert!(
            shown.contains("rsa-1") && !shown.contains("zBF3yS1RM4"),
            "{shown}"
        );
    }
}
