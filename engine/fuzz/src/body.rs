//! `parse_compile_decide`: text in, policy set built, request decided; nothing may panic.
//!
//! The input is split on the line `%%%` (the separator `"\n%%%\n"`; invalid UTF-8 is
//! replaced, not rejected):
//!
//! ```text
//! <policy document `p`, tried as JSON and as YAML>
//! %%%
//! <bindings.yaml>
//! %%%
//! <request JSON; text that is not a request is used (less one final newline) as the action
//!  of a request by `alice` holding every bound role>
//! %%%                                    (optional, up to four more)
//! <policy document `q0`, `q1`, ..., in the same format as `p`>
//! ```
//!
//! Whenever the set compiles, the request is decided and checked: deciding twice gives the
//! same decision, and the indexed decision equals a full scan (allowed, reason, the set of
//! determining statements, the set of obligation ids).
//!
//! This file is the fuzz crate's `body` module, and is included through `#[path]` by
//! `engine/tests/fuzz_seeds.rs`, which runs it over `engine/fuzz/seeds/`.

use std::collections::BTreeSet;

use pdp_engine::{Decision, PolicySet, Request, Subject};

/// Separates the parts of an input.
pub const SEPARATOR: &str = "\n%%%\n";

/// Extra policy documents read after the request.
const MAX_EXTRA: usize = 4;

/// What one input got through to, for the seed test.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// How many of the two readings (JSON, YAML) compiled.
    pub compiled: u32,
    /// How many decisions were made.
    pub decided: u32,
    /// How many of them allowed.
    pub allowed: u32,
}

/// Runs one input; panics only when a check fails.
pub fn parse_compile_decide(data: &[u8]) -> Outcome {
    let mut outcome = Outcome::default();
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split(SEPARATOR);
    let policy = parts.next().unwrap_or_default();
    let bindings = parts.next().unwrap_or_default();
    let request = parts.next();
    let extra: Vec<&str> = parts.take(MAX_EXTRA).collect();

    for json in [true, false] {
        let add = |b: pdp_engine::PolicySetBuilder, name: &str, doc: &str| {
            if json {
                b.policy_json(name, doc)
            } else {
                b.policy_yaml(name, doc)
            }
        };
        let mut builder = add(PolicySet::builder(), "p", policy);
        for (i, doc) in extra.iter().enumerate() {
            builder = add(builder, &format!("q{i}"), doc);
        }
        let set = match builder.bindings_yaml("bindings.yaml", bindings).build() {
            Ok(set) => set,
            Err(errors) => {
                // Rendering the errors is part of what must not panic.
                let _ = errors.to_string();
                continue;
            }
        };
        outcome.compiled += 1;
        if let Some(text) = request {
            outcome.decided += 1;
            if check(&set, &parse_request(&set, text)) {
                outcome.allowed += 1;
            }
        }
    }
    outcome
}

fn parse_request(set: &PolicySet, text: &str) -> Request {
    let mut request = serde_json::from_str::<Request>(text).unwrap_or_else(|_| Request {
        subject: Subject {
            id: "alice".into(),
            roles: set
                .bindings()
                .roles
                .keys()
                .map(|r| r.as_str().into())
                .collect(),
            ..Subject::default()
        },
        action: text.strip_suffix('\n').unwrap_or(text).into(),
        ..Request::default()
    });
    // A fixed clock, so the two evaluations below see the same `aws:CurrentTime`.
    request.now = chrono::DateTime::from_timestamp(1_767_225_600, 0);
    request
}

type Summary = (
    bool,
    &'static str,
    BTreeSet<(String, usize)>,
    BTreeSet<String>,
);

fn summary(d: &Decision<'_>) -> Summary {
    (
        d.allowed,
        d.reason.as_str(),
        d.determining
            .iter()
            .map(|s| (s.policy.clone(), s.index))
            .collect(),
        d.obligations.iter().map(|o| o.id.clone()).collect(),
    )
}

/// Decides `request` and checks the decision; returns whether it allowed.
fn check(set: &PolicySet, request: &Request) -> bool {
    let decision = set.decide(request);
    assert_eq!(decision, set.decide(request), "deciding twice differs");
    assert_eq!(
        summary(&decision),
        summary(&set.decide_scan(request)),
        "the indexed decision differs from a full scan for {request:?}"
    );
    decision.allowed
}
