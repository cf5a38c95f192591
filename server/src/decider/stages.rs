//! The decision's stages, in order: identity (verify the token, or keep what a trusted
//! caller asserted), signal guards (revoked sessions, changed credentials, stale signals),
//! then the engine's decision through the cache. Each stage either hands the request on or
//! ends with an [`Outcome`]; recording is the epilogue's ([`super::record`]), not theirs.

use std::time::Duration;

use super::record::Described;
use super::{CheckInput, Decider, Outcome, Reason};
use crate::signals::store::{Facts, Guard};
use crate::state::{Snapshot, SESSION_AGE};
use crate::telemetry::{stage, Traced};

/// Context keys that carry identity facts: honoured only from callers trusted to assert them.
const IDENTITY_KEY_PREFIXES: &[&str] =
    &["aws:multifactorauth", "aws:tokenissuetime", "aws:principal"];

/// Most identity context keys an ignored-identity note names.
const NOTE_MAX_KEYS: usize = 4;

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

fn is_identity_key(key: &str) -> bool {
    IDENTITY_KEY_PREFIXES.iter().any(|p| {
        key.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    })
}

/// What an untrusted caller asserted without a token and the PDP ignores (the subject's
/// `id`, `roles`, `tags`, identity context keys), as a note for the answer; `None` when it
/// asserted nothing (or sent a token, whose claims replace the caller's words anyway).
pub(super) fn ignored_identity(input: &CheckInput<'_>) -> Option<String> {
    if !input.token.is_empty() {
        return None;
    }
    let subject = &input.request.subject;
    let mut fields = Vec::new();
    for (name, asserted) in [
        ("subject.id", !subject.id.is_empty()),
        ("subject.roles", !subject.roles.is_empty()),
        ("subject.tags", !subject.tags.is_empty()),
    ] {
        if asserted {
            fields.push(format!("`{name}`"));
        }
    }
    let keys: Vec<&str> = input
        .request
        .context
        .iter()
        .map(|(k, _)| k)
        .filter(|k| is_identity_key(k))
        .collect();
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

/// A request whose identity and signals are resolved, ready for the engine.
pub(super) struct Resolved {
    pub(super) request: pdp_engine::Request,
    generation: u64,
    token_expires_at: Option<i64>,
}

impl Decider {
    /// The stages, each ending the decision or handing it on.
    pub(super) fn run(
        &self,
        snapshot: &Snapshot,
        input: CheckInput<'_>,
        signals_behind: bool,
        traced: Option<&Traced>,
        explain: bool,
    ) -> (Outcome, Described, Option<pdp_engine::Explanation>) {
        let now = self.now();
        let mut resolved = match self.resolve(snapshot, input, signals_behind, traced, now) {
            Ok(r) => r,
            Err(refused) => {
                let (outcome, mut described) = *refused;
                described.explained = explain;
                return (outcome, described, None);
            }
        };
        // The engine's decision, through the cache.
        let (outcome, cached) = self.evaluate(
            snapshot,
            &resolved.request,
            resolved.generation,
            resolved.token_expires_at,
            now,
            traced,
        );
        self.observe(&resolved.request, outcome.allowed, now);
        // Beside the decision, never instead of it: the engine reads its own decision again.
        let explanation = explain.then(|| {
            crate::telemetry::stage(traced, "pdp.explain", || {
                snapshot.set.explain(&resolved.request)
            })
        });
        let mut described = Described::of(now, &mut resolved.request, cached);
        described.explained = explain;
        (outcome, described, explanation)
    }

    /// Identity and signal guards at `now`: the request as the engine is to see it, or the
    /// refusal that ends the call.
    pub(super) fn resolve(
        &self,
        snapshot: &Snapshot,
        input: CheckInput<'_>,
        signals_behind: bool,
        traced: Option<&Traced>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Resolved, Box<(Outcome, Described)>> {
        let revision = snapshot.set.revision();
        let CheckInput {
            mut request,
            token,
            session_id,
            device_id,
            trusted,
        } = input;

        // Identity: a token proves the subject; without one, only a trusted caller's word
        // counts.
        let verified = if token.is_empty() {
            None
        } else {
            match self.verify(token, now, traced) {
                Ok(v) => Some(v),
                Err(message) => {
                    let outcome = Outcome::refused(Reason::InvalidIdentity, &message, revision);
                    return Err(Box::new((outcome, Described::of(now, &mut request, false))));
                }
            }
        };
        if !trusted || verified.is_some() {
            request.subject = pdp_engine::Subject::default();
            request.context.retain(|k, _| !is_identity_key(k));
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
        let session = verified
            .as_ref()
            .and_then(|v| v.session.clone())
            .unwrap_or_else(|| session_id.to_owned());
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

        // Signal guards.
        let signals = &self.state.signals;
        let facts = stage(traced, "pdp.signals", || {
            signals.store.lookup(
                &crate::signals::store::Query {
                    subject: &request.subject.id,
                    session: &session,
                    device: device_id,
                    issued_at,
                },
                now.timestamp(),
            )
        });
        if let Some(outcome) = self.guard(&facts, signals_behind, &request, revision) {
            self.observe(&request, false, now);
            return Err(Box::new((outcome, Described::of(now, &mut request, false))));
        }
        let generation = facts.generation;
        apply_facts(&mut request, facts, &session, device_id);
        if let Some(start) = issued_at.filter(|_| snapshot.reads_session_age) {
            request
                .context
                .insert(SESSION_AGE, now.timestamp().saturating_sub(start));
        }
        request.now = self.state.clock;
        Ok(Resolved {
            request,
            generation,
            token_expires_at,
        })
    }

    /// The verified token, or why not.
    fn verify(
        &self,
        token: &str,
        now: chrono::DateTime<chrono::Utc>,
        traced: Option<&Traced>,
    ) -> Result<std::sync::Arc<crate::identity::Verified>, String> {
        let checked = match &self.state.verifier {
            Some(v) => stage(traced, "pdp.identity", || v.verify(token, now.timestamp()))
                .map_err(|e| (e.kind(), e.to_string())),
            None => Err(("no_keys", "this PDP verifies no tokens (start it with --jwks): send the subject without a token from a trusted caller".to_owned())),
        };
        checked.map_err(|(kind, message)| {
            crate::metrics::metrics()
                .token_failures
                .get_or_create(&crate::metrics::KindLabel { kind })
                .inc();
            message
        })
    }

    /// The refusal a guard makes, if one applies: a revoked session, a credential changed
    /// since the token, or signals not known to be applied.
    fn guard(
        &self,
        facts: &Facts,
        signals_behind: bool,
        request: &pdp_engine::Request,
        revision: &str,
    ) -> Option<Outcome> {
        if let Some((guard, message)) = &facts.guard {
            let reason = match guard {
                Guard::SessionRevoked => Reason::SessionRevoked,
                Guard::CredentialChanged => Reason::CredentialChanged,
            };
            return Some(Outcome::refused(reason, message, revision));
        }
        let signals = &self.state.signals;
        let stale = if signals_behind {
            Some("this replica has not applied the signals up to the request's `min_signal_generation` within the bound")
        } else if signals.stale() && signals.is_sensitive(&request.action) {
            Some("the signal store has been out of reach longer than the staleness bound, and this action is sensitive")
        } else {
            None
        };
        stale.map(|message| Outcome::refused(Reason::SignalsStale, message, revision))
    }

    /// The engine's decision, from the cache when it holds one; and whether it did.
    fn evaluate(
        &self,
        snapshot: &Snapshot,
        request: &pdp_engine::Request,
        generation: u64,
        token_expires_at: Option<i64>,
        now: chrono::DateTime<chrono::Utc>,
        traced: Option<&Traced>,
    ) -> (Outcome, bool) {
        let set = &snapshot.set;
        let Some(cache) = &self.state.cache else {
            let decision = stage(traced, "pdp.evaluate", || set.decide(request));
            return (Outcome::decided(&decision), false);
        };
        // A decision is served no longer than the token that proved the identity lives.
        let token_life = token_expires_at.map(|exp| {
            Duration::from_secs(u64::try_from(exp.saturating_sub(now.timestamp())).unwrap_or(0))
        });
        let key = crate::cache::key(set.revision(), generation, request);
        let cached = stage(traced, "pdp.cache", || cache.get(&key));
        crate::metrics::metrics().cache_lookup("decision", cached.is_some());
        if let Some((hit, remaining)) = cached {
            // The entry may have been cached for a token that outlives this one.
            let mut outcome = (*hit).clone();
            outcome.decision_id = super::decision_id();
            outcome.ttl = token_life.map_or(remaining, |l| l.min(remaining));
            return (outcome, true);
        }
        let decision = stage(traced, "pdp.evaluate", || set.decide(request));
        let mut outcome = Outcome::decided(&decision);
        if !decision.time_dependent {
            let mut entry = outcome.clone();
            entry.decision_id.clear();
            outcome.ttl = cache.insert(key, entry, token_life);
        }
        (outcome, false)
    }

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
