//! The decider in process: a set built in memory, the in-memory signal store standing in
//! for a shared one, and a fixed clock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use super::*;
use crate::signals::{Kind, Signal};

const POLICY: &str = r#"
Version: "2012-10-17"
Statement:
  - Sid: ReadDocs
    Effect: Allow
    Action: "docs:Read"
    Resource: "doc:*"
  - Sid: UntilThen
    Effect: Allow
    Action: "docs:Write"
    Resource: "doc:*"
    Condition: { DateLessThan: { "aws:CurrentTime": "2030-01-01T00:00:00Z" } }
  - Sid: NoSecrets
    Effect: Deny
    Action: "docs:*"
    Resource: "doc:secret"
"#;

fn state() -> State {
    let set = pdp_engine::PolicySet::builder()
        .policy_yaml("docs", POLICY)
        .bindings_yaml("bindings.yaml", "roles: { Reader: { policies: [docs] } }")
        .build()
        .unwrap();
    let mut state = State::new(set, 10);
    state.clock = Some(
        chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
            .unwrap()
            .into(),
    );
    state
}

fn input(action: &str, resource: &str, trusted: bool) -> CheckInput<'static> {
    CheckInput {
        request: pdp_engine::Request {
            subject: pdp_engine::Subject {
                id: "alice".into(),
                roles: vec!["Reader".into()].into(),
                ..Default::default()
            },
            action: action.into(),
            resource: pdp_engine::Resource {
                id: resource.into(),
                ..Default::default()
            },
            ..Default::default()
        },
        session_id: "s1",
        trusted,
        ..Default::default()
    }
}

fn call() -> Call {
    Call::new("check", &crate::caller::Caller::unknown(), false, None)
}

fn decide(decider: &Decider, input: CheckInput) -> Outcome {
    decider.decide(&decider.state().snapshot(), input, &call(), false)
}

#[test]
fn a_trusted_callers_subject_counts_and_an_untrusted_ones_is_ignored_with_a_note() {
    let decider = Decider::new(Arc::new(state()));
    let trusted = decide(&decider, input("docs:Read", "doc:1", true));
    assert!(trusted.allowed);
    assert_eq!(trusted.reason, Reason::Allowed);
    assert_eq!(trusted.determining.len(), 1);
    assert!(trusted.message.is_empty());
    let untrusted = decide(&decider, input("docs:Read", "doc:1", false));
    assert!(!untrusted.allowed);
    assert_eq!(untrusted.reason, Reason::ImplicitDeny);
    assert!(
        untrusted.message.contains("`subject.id`, `subject.roles`"),
        "{}",
        untrusted.message
    );
    assert_ne!(trusted.decision_id, untrusted.decision_id);
}

#[test]
fn an_explicit_deny_wins_and_names_its_statement() {
    let decider = Decider::new(Arc::new(state()));
    let o = decide(&decider, input("docs:Read", "doc:secret", true));
    assert!(!o.allowed);
    assert_eq!(o.reason, Reason::ExplicitDeny);
    assert_eq!(o.determining[0].sid.as_deref(), Some("NoSecrets"));
}

#[test]
fn a_token_without_a_verifier_is_an_invalid_identity() {
    let decider = Decider::new(Arc::new(state()));
    let mut i = input("docs:Read", "doc:1", true);
    i.token = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
    let o = decide(&decider, i);
    assert_eq!(o.reason, Reason::InvalidIdentity);
    assert!(!o.allowed);
    assert!(o.message.contains("--jwks"), "{}", o.message);
}

#[test]
fn a_revoked_session_is_refused_before_the_engine() {
    let state = state();
    let mut revoked = Signal::new(Kind::SessionRevoked, 1);
    revoked.session = "s1".into();
    state.signals.store.apply(&revoked).unwrap();
    let decider = Decider::new(Arc::new(state));
    let o = decide(&decider, input("docs:Read", "doc:1", true));
    assert_eq!(o.reason, Reason::SessionRevoked);
    assert!(o.determining.is_empty());
    let mut other = input("docs:Read", "doc:1", true);
    other.session_id = "s2";
    assert!(decide(&decider, other).allowed);
}

#[test]
fn a_call_behind_on_signals_is_stale() {
    let decider = Decider::new(Arc::new(state()));
    let mut behind = call();
    behind.signals_behind = true;
    let o = decider.decide(
        &decider.state().snapshot(),
        input("docs:Read", "doc:1", true),
        &behind,
        false,
    );
    assert_eq!(o.reason, Reason::SignalsStale);
    assert!(!o.allowed);
}

#[test]
fn callers_cannot_set_the_pdps_own_signal_keys() {
    let set = pdp_engine::PolicySet::builder()
        .policy_yaml(
            "low",
            r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "docs:Read"
    Resource: "*"
    Condition: { StringEquals: { "pdp:RiskLevel": "low" } }
"#,
        )
        .bindings_yaml("bindings.yaml", "roles: { Reader: { policies: [low] } }")
        .build()
        .unwrap();
    let decider = Decider::new(Arc::new(State::new(set, 10)));
    let mut i = input("docs:Read", "doc:1", true);
    i.request.context.insert("pdp:RiskLevel", "low");
    assert!(!decide(&decider, i).allowed);
}

#[test]
fn the_fixed_clock_decides_time_conditions_and_they_are_never_cached() {
    let mut s = state();
    s.cache = Some(crate::cache::DecisionCache::new(
        1 << 20,
        std::time::Duration::from_secs(60),
    ));
    let decider = Decider::new(Arc::new(s));
    let before = decide(&decider, input("docs:Write", "doc:1", true));
    assert!(before.allowed);
    assert!(
        before.ttl.is_zero(),
        "a time-dependent decision is not cached"
    );
    let mut later = state();
    later.clock = Some(
        chrono::DateTime::parse_from_rfc3339("2031-01-01T00:00:00Z")
            .unwrap()
            .into(),
    );
    let decider = Decider::new(Arc::new(later));
    assert!(!decide(&decider, input("docs:Write", "doc:1", true)).allowed);
}

#[test]
fn a_cached_decision_gets_a_fresh_id_and_the_same_answer() {
    let mut s = state();
    s.cache = Some(crate::cache::DecisionCache::new(
        1 << 20,
        std::time::Duration::from_secs(60),
    ));
    let decider = Decider::new(Arc::new(s));
    let first = decide(&decider, input("docs:Read", "doc:1", true));
    assert!(!first.ttl.is_zero());
    let second = decide(&decider, input("docs:Read", "doc:1", true));
    assert_eq!(second.allowed, first.allowed);
    assert_eq!(second.determining, first.determining);
    assert_ne!(second.decision_id, first.decision_id);
    assert!(!second.decision_id.is_empty());
}

#[test]
fn refusals_and_passes_carry_the_serving_revision() {
    let decider = Decider::new(Arc::new(state()));
    let snapshot = decider.state().snapshot();
    let refused = decider.refuse(&snapshot, &call(), Reason::InvalidPath, "no", "/a/../b");
    assert!(!refused.allowed);
    assert_eq!(refused.revision, snapshot.set.revision());
    let passed = decider.pass(&snapshot, &call(), "/x");
    assert!(passed.allowed);
    assert_eq!(passed.reason, Reason::UnmappedAllowed);
}

#[test]
fn batches_stop_as_their_semantic_says() {
    assert!(!Semantic::ExecuteAll.stops(false));
    assert!(Semantic::DenyOnFirstDeny.stops(false));
    assert!(!Semantic::DenyOnFirstDeny.stops(true));
    assert!(Semantic::PermitOnFirstPermit.stops(true));
}

#[test]
fn request_ids_are_cut_at_a_character_boundary() {
    let mut c = call();
    c.set_request_id(&"é".repeat(100));
    assert!(c.request_id.len() <= MAX_REQUEST_ID_BYTES);
    assert_eq!(c.request_id, "é".repeat(MAX_REQUEST_ID_BYTES / 2));
    c.set_request_id("req-1");
    assert_eq!(c.request_id, "req-1");
}
