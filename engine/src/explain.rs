//! Explanations: why a request is decided as it is. For a deny, the Allow statements that
//! nearly applied with the first part of each that did not match, the explicit Denys that
//! applied, and the role boundary or guardrail that held back an Allow that did apply.
//!
//! Off the decision's path: an explanation walks every statement that can reach the
//! subject (its attachments, the guardrails, the resource policies of the resource), reads
//! the decision from [`PolicySet::decide`] and never changes it. Bounded: at most
//! [`MAX_NEAR_MISSES`] near misses and [`MAX_VALUES`] values per condition, each value cut to
//! [`MAX_VALUE_BYTES`].

use serde::Serialize;

use crate::eval::action_key;
use crate::keys::{val_to_string, EvalCtx};
use crate::pattern::glob;
use crate::request::Request;
use crate::set::{stmt_flags, Index, PolicySet, ResPat, Stmt};
use crate::types::{Effect, Reason, StatementInfo};

/// The most near misses an explanation lists.
pub const MAX_NEAR_MISSES: usize = 8;
/// The most values listed per condition (policy side and request side each).
pub const MAX_VALUES: usize = 8;
/// The longest value listed, in bytes (longer ones are cut at a character boundary).
pub const MAX_VALUE_BYTES: usize = 256;

/// Why a request is decided as it is; see [`PolicySet::explain`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The decision, as [`PolicySet::decide`] makes it.
    pub allowed: bool,
    /// Its reason.
    pub reason: Reason,
    /// The statements that decided: the Allows of an allow, the Denys of an explicit deny.
    pub determining: Vec<StatementInfo>,
    /// Allows that applied but were held back: by a role's permissions boundary, or by the
    /// guardrails' allow-list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub held_back: Vec<HeldBack>,
    /// For a deny: Allow statements that did not apply, nearest first (those that failed
    /// only on a condition before those whose resource did not match, …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub near_misses: Vec<NearMiss>,
    /// How many near misses were left out past [`MAX_NEAR_MISSES`].
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: usize,
    /// The subject's roles that no binding names (they attach nothing); for an allow too.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unbound_roles: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// An Allow that applied but did not count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldBack {
    /// What held it back.
    pub by: Limit,
    /// The Allows that applied and were held back.
    pub allows: Vec<StatementInfo>,
}

/// What can hold back an Allow that applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Limit {
    /// A permissions boundary allows nothing of the request.
    Boundary {
        /// The role it bounds (or the subject, for a boundary bound to the subject).
        of: String,
        /// The boundary policy.
        policy: String,
    },
    /// The guardrails allow-list (guardrails with Allow statements) allows nothing of it.
    Guardrails,
}

/// A statement that did not apply, and the first part of it that did not match.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NearMiss {
    /// The statement.
    pub statement: StatementInfo,
    /// How it reaches the subject.
    pub attached: Attached,
    /// The first part that did not match.
    pub mismatch: Mismatch,
}

/// How a statement reaches a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Attached {
    /// Through one of the subject's roles.
    Role(String),
    /// Bound to the subject itself.
    Subject(String),
    /// The permissions boundary of a role.
    Boundary(String),
    /// A guardrail.
    Guardrail,
    /// A resource policy attached by this pattern.
    ResourcePolicy(String),
}

/// The first part of a statement that did not match the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "part", rename_all = "snake_case")]
pub enum Mismatch {
    /// `Action` / `NotAction`.
    Action,
    /// `Resource` / `NotResource`.
    Resource,
    /// `Principal` / `NotPrincipal` (resource policies).
    Principal,
    /// A condition that does not hold.
    Condition {
        /// The operator as written, e.g. `StringEquals`, `ForAnyValue:StringLike`.
        operator: String,
        /// The condition key as written.
        key: String,
        /// The policy's values, policy variables filled in.
        expected: Vec<String>,
        /// The request's values of the key; `None` when the request does not have it.
        actual: Option<Vec<String>>,
    },
}

impl Mismatch {
    /// How far the statement got before this part: the larger, the nearer it applied.
    fn depth(&self) -> u8 {
        match self {
            Mismatch::Action => 0,
            Mismatch::Resource => 1,
            Mismatch::Principal => 2,
            Mismatch::Condition { .. } => 3,
        }
    }
}

/// One statement's outcome for the request.
enum Walk {
    Applies,
    Misses(Mismatch),
}

/// What [`Explainer::index`] found in one attachment.
#[derive(Default)]
struct Found {
    allows: Vec<u32>,
    misses: Vec<(u32, Mismatch)>,
}

struct Explainer<'s> {
    set: &'s PolicySet,
    ctx: EvalCtx<'s>,
}

impl Explainer<'_> {
    fn statement(&self, id: u32, s: &Stmt) -> Walk {
        let ctx = &self.ctx;
        if !s.action_matches(ctx, stmt_flags(s)) {
            return Walk::Misses(Mismatch::Action);
        }
        let resource = &ctx.req.resource.id;
        let hit = s.resources.iter().any(|p| match p {
            ResPat::Static(p) => p.matches(resource),
            ResPat::Dynamic(t) => t.resolve(ctx).is_some_and(|toks| glob(&toks, resource)),
        });
        if hit == s.resources_negated {
            return Walk::Misses(Mismatch::Resource);
        }
        if let Some(p) = &s.principal {
            if !p.matches(ctx.req) {
                return Walk::Misses(Mismatch::Principal);
            }
        }
        let shared = &self.set.shared;
        let ids = s.conditions.ids(&shared.overflow);
        let labels = self
            .set
            .cold
            .get(id as usize)
            .map(|c| (&c.labels, &*c.condition_labels));
        for (n, &i) in ids.iter().enumerate() {
            let condition = shared.conditions.get(i as usize);
            if condition.is_some_and(|c| c.holds(ctx)) {
                continue;
            }
            let (operator, key) = labels
                .and_then(|(l, text)| l.get(n).map(|l| (l.operator(text), l.key_name(text))))
                .unwrap_or(("(unreadable)", ""));
            let (expected, actual) = match condition {
                Some(c) => (
                    bounded(c.values_text(ctx)),
                    ctx.lookup(&c.key)
                        .map(|found| bounded(found.values().map(val_to_string).collect())),
                ),
                None => (Vec::new(), None),
            };
            return Walk::Misses(Mismatch::Condition {
                operator: operator.to_owned(),
                key: key.to_owned(),
                expected,
                actual,
            });
        }
        // A statement whose conditions cannot all be read does not apply (as in a decision).
        if ids.len() != s.conditions.len() {
            return Walk::Misses(Mismatch::Condition {
                operator: "(unreadable)".to_owned(),
                key: String::new(),
                expected: Vec::new(),
                actual: None,
            });
        }
        Walk::Applies
    }

    /// The Allows of `index` that apply, and the Allows that miss with why.
    fn index(&self, index: &Index) -> Found {
        let mut found = Found::default();
        for &id in index.all() {
            let Some(s) = self.set.statements.get(id as usize) else {
                continue;
            };
            if s.effect == Effect::Deny {
                continue;
            }
            match self.statement(id, s) {
                Walk::Applies => found.allows.push(id),
                Walk::Misses(m) => found.misses.push((id, m)),
            }
        }
        found
    }

    fn info(&self, id: u32) -> Option<StatementInfo> {
        self.set.cold.get(id as usize).map(|c| c.info.clone())
    }

    fn infos(&self, ids: &[u32]) -> Vec<StatementInfo> {
        ids.iter().filter_map(|&id| self.info(id)).collect()
    }
}

/// At most [`MAX_VALUES`] values, each cut to [`MAX_VALUE_BYTES`].
fn bounded(values: Vec<String>) -> Vec<String> {
    values
        .into_iter()
        .take(MAX_VALUES)
        .map(|mut v| {
            if v.len() > MAX_VALUE_BYTES {
                let mut end = MAX_VALUE_BYTES;
                while !v.is_char_boundary(end) {
                    end -= 1;
                }
                v.truncate(end);
                v.push('…');
            }
            v
        })
        .collect()
}

impl PolicySet {
    /// Why `request` is decided as it is. The decision is [`PolicySet::decide`]'s, read
    /// first and never changed; for a deny, the explanation adds the Allows that nearly
    /// applied (nearest first, bounded) and what held back an Allow that applied.
    ///
    /// ```
    /// use pdp_engine::{Mismatch, PolicySet, Request, Resource, Subject};
    ///
    /// let set = PolicySet::builder()
    ///     .policy_yaml("read", r#"
    /// Version: "2012-10-17"
    /// Statement:
    ///   - Sid: ReadOwn
    ///     Effect: Allow
    ///     Action: "s3:GetObject"
    ///     Resource: "arn:aws:s3:::docs/*"
    ///     Condition: { StringEquals: { "aws:ResourceTag/owner": "${aws:username}" } }
    /// "#)
    ///     .bindings_yaml("bindings.yaml", "roles: { Reader: { policies: [read] } }")
    ///     .build()?;
    /// let request = Request {
    ///     subject: Subject { id: "alice".into(), roles: vec!["Reader".into()].into(), ..Default::default() },
    ///     action: "s3:GetObject".into(),
    ///     resource: Resource { id: "arn:aws:s3:::docs/a.txt".into(), ..Default::default() },
    ///     ..Default::default()
    /// };
    /// let why = set.explain(&request);
    /// assert!(!why.allowed);
    /// let Mismatch::Condition { key, expected, actual, .. } = &why.near_misses[0].mismatch else {
    ///     panic!("a condition");
    /// };
    /// assert_eq!((key.as_str(), expected[0].as_str(), actual), ("aws:ResourceTag/owner", "alice", &None));
    /// # Ok::<(), pdp_engine::CompileErrors>(())
    /// ```
    pub fn explain(&self, request: &Request) -> Explanation {
        let decision = self.decide(request);
        let mut out = Explanation {
            allowed: decision.allowed,
            reason: decision.reason,
            determining: decision.determining.iter().map(|s| (*s).clone()).collect(),
            held_back: Vec::new(),
            near_misses: Vec::new(),
            omitted: 0,
            unbound_roles: Vec::new(),
        };
        let merged = self.with_directory(request);
        let request = merged.as_ref().unwrap_or(request);
        let subject = &request.subject;
        out.unbound_roles = subject
            .roles
            .iter()
            .filter(|role| !self.roles.contains_key(role.as_str()))
            .map(ToString::to_string)
            .collect();
        if decision.allowed {
            return out;
        }
        let (action, action_id) = action_key(self, &request.action);
        let x = Explainer {
            set: self,
            ctx: EvalCtx::new(request, action.as_bytes(), action_id),
        };
        let mut misses: Vec<(u32, Attached, Mismatch)> = Vec::new();
        let mut allowed_somewhere = false;
        let mut push = |found: Found, attached: &Attached| {
            for (id, m) in found.misses {
                misses.push((id, attached.clone(), m));
            }
        };

        let mut attachments = Vec::new();
        for role in subject.roles.iter() {
            if let Some(att) = self.roles.get(role.as_str()) {
                attachments.push((att, Attached::Role(role.to_string()), role));
            }
        }
        if let Some(att) = self.subjects.get(subject.id.as_str()) {
            attachments.push((att, Attached::Subject(subject.id.to_string()), &subject.id));
        }
        for (att, attached, name) in attachments {
            let is_role = matches!(attached, Attached::Role(_));
            let identity = x.index(&att.identity);
            let applied = identity.allows.clone();
            let Some(boundary) = &att.boundary else {
                allowed_somewhere |= !applied.is_empty();
                push(identity, &attached);
                continue;
            };
            let bounded = x.index(boundary);
            if applied.is_empty() {
                push(identity, &attached);
                continue;
            }
            // The boundary's misses first: they are what stopped the request.
            if bounded.allows.is_empty() {
                out.held_back.push(HeldBack {
                    by: Limit::Boundary {
                        of: name.to_string(),
                        policy: self.boundary_policy(name.as_str(), is_role),
                    },
                    allows: x.infos(&applied),
                });
                push(bounded, &Attached::Boundary(name.to_string()));
            } else {
                allowed_somewhere = true;
            }
            push(identity, &attached);
        }

        let resource = &request.resource.id;
        for (pattern, index) in self.resources.candidates(resource) {
            if !pattern.matches(resource) {
                continue;
            }
            let found = x.index(index);
            let attached = Attached::ResourcePolicy(crate::keys::toks_to_string(&pattern.toks()));
            for &id in &found.allows {
                let Some(s) = self.statements.get(id as usize) else {
                    continue;
                };
                match self.resource_grant_holds(s, &x) {
                    Ok(()) => allowed_somewhere = true,
                    Err(roles) => {
                        for role in roles {
                            out.held_back.push(HeldBack {
                                by: Limit::Boundary {
                                    policy: self.boundary_policy(&role, true),
                                    of: role,
                                },
                                allows: x.infos(&[id]),
                            });
                        }
                    }
                }
            }
            push(found, &attached);
        }

        if self.guardrails_have_allow {
            let guard = x.index(&self.guardrails);
            if guard.allows.is_empty() && allowed_somewhere {
                out.held_back.push(HeldBack {
                    by: Limit::Guardrails,
                    allows: Vec::new(),
                });
                push(guard, &Attached::Guardrail);
            }
        }

        // Nearest first; among equals, in the order walked. Statements that missed only on
        // their action are listed only when nothing came nearer.
        misses.sort_by_key(|(_, _, m)| std::cmp::Reverse(m.depth()));
        let nearest = misses.first().map_or(0, |(_, _, m)| m.depth());
        misses.retain(|(_, _, m)| nearest == 0 || m.depth() > 0);
        let mut seen = Vec::new();
        misses.retain(|(id, a, _)| {
            let fresh = !seen.contains(&(*id, a.clone()));
            seen.push((*id, a.clone()));
            fresh
        });
        out.omitted = misses.len().saturating_sub(MAX_NEAR_MISSES);
        out.near_misses = misses
            .into_iter()
            .take(MAX_NEAR_MISSES)
            .filter_map(|(id, attached, mismatch)| {
                Some(NearMiss {
                    statement: x.info(id)?,
                    attached,
                    mismatch,
                })
            })
            .collect();
        out
    }

    /// The permissions boundary policy bound to a role (or a subject), by name.
    fn boundary_policy(&self, name: &str, role: bool) -> String {
        let bound = if role {
            &self.bindings.roles
        } else {
            &self.bindings.subjects
        };
        bound
            .get(name)
            .and_then(|a| a.boundary.clone())
            .unwrap_or_default()
    }

    /// Whether a resource-policy Allow that applies counts (the decision's rule), or the
    /// roles whose boundaries held it back.
    fn resource_grant_holds(&self, s: &Stmt, x: &Explainer<'_>) -> Result<(), Vec<String>> {
        let Some(p) = &s.principal else {
            return Ok(());
        };
        let subject = &x.ctx.req.subject;
        if p.negated || p.anyone || p.users.iter().any(|u| u.matches(&subject.id)) {
            return Ok(());
        }
        let mut held = Vec::new();
        for role in subject
            .roles
            .iter()
            .filter(|role| p.roles.iter().any(|r| r.matches(role.as_str())))
        {
            match self
                .roles
                .get(role.as_str())
                .and_then(|a| a.boundary.as_deref())
            {
                None => return Ok(()),
                Some(b) if !x.index(b).allows.is_empty() => return Ok(()),
                Some(_) => held.push(role.to_string()),
            }
        }
        Err(held)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

    use super::*;
    use crate::request::{Context, Resource, Subject};

    fn request(id: &str, roles: &[&str], action: &str, resource: &str) -> Request {
        Request {
            subject: Subject {
                id: id.into(),
                roles: roles
                    .iter()
                    .map(|r| (*r).into())
                    .collect::<Vec<crate::request::Text>>()
                    .into(),
                ..Default::default()
            },
            action: action.into(),
            resource: Resource {
                id: resource.into(),
                ..Default::default()
            },
            context: Context::new(),
            now: None,
        }
    }

    const POLICY: &str = r#"
Version: "2012-10-17"
Statement:
  - Sid: Write
    Effect: Allow
    Action: "s3:PutObject"
    Resource: "arn:aws:s3:::b/*"
  - Sid: ReadOther
    Effect: Allow
    Action: "s3:GetObject"
    Resource: "arn:aws:s3:::other/*"
  - Sid: ReadWithMfa
    Effect: Allow
    Action: "s3:GetObject"
    Resource: "arn:aws:s3:::b/*"
    Condition: { Bool: { "aws:MultiFactorAuthPresent": "true" } }
  - Sid: NoSecrets
    Effect: Deny
    Action: "s3:*"
    Resource: "arn:aws:s3:::b/secret/*"
"#;

    fn set(bindings: &str, extra: &[(&str, &str)]) -> PolicySet {
        let mut b = PolicySet::builder().policy_yaml("p", POLICY);
        for (name, text) in extra {
            b = b.policy_yaml(name, text);
        }
        b.bindings_yaml("bindings.yaml", bindings).build().unwrap()
    }

    #[test]
    fn near_misses_come_nearest_first_with_the_value_compared() {
        let s = set("roles: { R: { policies: [p] } }", &[]);
        let mut r = request("alice", &["R", "Ghost"], "s3:GetObject", "arn:aws:s3:::b/x");
        r.context = Context::new().with("aws:MultiFactorAuthPresent", false);
        let why = s.explain(&r);
        assert!(!why.allowed);
        assert_eq!(why.reason, Reason::ImplicitDeny);
        assert_eq!(why.unbound_roles, ["Ghost"]);
        // ReadWithMfa failed on its condition, ReadOther on its resource; Write (action)
        // is left out since nearer ones exist.
        let sids: Vec<_> = why
            .near_misses
            .iter()
            .map(|m| m.statement.sid.as_deref().unwrap())
            .collect();
        assert_eq!(sids, ["ReadWithMfa", "ReadOther"]);
        assert_eq!(why.near_misses[0].attached, Attached::Role("R".into()));
        assert_eq!(
            why.near_misses[0].mismatch,
            Mismatch::Condition {
                operator: "Bool".into(),
                key: "aws:MultiFactorAuthPresent".into(),
                expected: vec!["true".into()],
                actual: Some(vec!["false".into()]),
            }
        );
        assert_eq!(why.near_misses[1].mismatch, Mismatch::Resource);
        // The explanation never changes the decision.
        assert_eq!(why.allowed, s.decide(&r).allowed);
    }

    #[test]
    fn an_explicit_deny_names_its_statements() {
        let s = set("roles: { R: { policies: [p] } }", &[]);
        let r = request("alice", &["R"], "s3:PutObject", "arn:aws:s3:::b/secret/k");
        let why = s.explain(&r);
        assert_eq!(why.reason, Reason::ExplicitDeny);
        assert_eq!(why.determining[0].sid.as_deref(), Some("NoSecrets"));
    }

    #[test]
    fn a_boundary_that_holds_back_an_allow_is_named() {
        let boundary = r#"
Version: "2012-10-17"
Statement:
  - Sid: OnlyReads
    Effect: Allow
    Action: "s3:Get*"
    Resource: "*"
"#;
        let s = set(
            "roles: { R: { policies: [p], boundary: limit } }",
            &[("limit", boundary)],
        );
        let r = request("alice", &["R"], "s3:PutObject", "arn:aws:s3:::b/k");
        let why = s.explain(&r);
        assert!(!why.allowed);
        assert_eq!(why.held_back.len(), 1, "{why:?}");
        assert_eq!(
            why.held_back[0].by,
            Limit::Boundary {
                of: "R".into(),
                policy: "limit".into()
            }
        );
        assert_eq!(why.held_back[0].allows[0].sid.as_deref(), Some("Write"));
        assert_eq!(why.near_misses[0].attached, Attached::Boundary("R".into()));
        assert_eq!(why.near_misses[0].mismatch, Mismatch::Action);
    }

    #[test]
    fn guardrails_that_allow_nothing_of_it_are_named() {
        let guard = r#"
Version: "2012-10-17"
Statement:
  - Sid: OnlyFromOffice
    Effect: Allow
    Action: "*"
    Resource: "*"
    Condition: { IpAddress: { "aws:SourceIp": "10.0.0.0/8" } }
"#;
        let s = set(
            "roles: { R: { policies: [p] } }\nguardrails: [guard]",
            &[("guard", guard)],
        );
        let mut r = request("alice", &["R"], "s3:PutObject", "arn:aws:s3:::b/k");
        r.context = Context::new().with("aws:SourceIp", "192.0.2.1");
        let why = s.explain(&r);
        assert!(!why.allowed);
        assert_eq!(why.held_back[0].by, Limit::Guardrails);
        assert_eq!(why.near_misses[0].attached, Attached::Guardrail);
        let Mismatch::Condition {
            operator, actual, ..
        } = &why.near_misses[0].mismatch
        else {
            panic!("{why:?}");
        };
        assert_eq!(operator, "IpAddress");
        assert_eq!(actual.as_deref(), Some(&["192.0.2.1".to_owned()][..]));
    }

    #[test]
    fn near_misses_and_values_are_bounded() {
        let mut policy = String::from("Version: \"2012-10-17\"\nStatement:\n");
        for i in 0..20 {
            policy.push_str(&format!(
                "  - {{ Sid: S{i}, Effect: Allow, Action: \"s3:GetObject\", Resource: \"arn:aws:s3:::b{i}/*\" }}\n"
            ));
        }
        let s = PolicySet::builder()
            .policy_yaml("many", &policy)
            .bindings_yaml("bindings.yaml", "roles: { R: { policies: [many] } }")
            .build()
            .unwrap();
        let why = s.explain(&request("a", &["R"], "s3:GetObject", "arn:aws:s3:::zz/k"));
        assert_eq!(why.near_misses.len(), MAX_NEAR_MISSES);
        assert_eq!(why.omitted, 20 - MAX_NEAR_MISSES);
        let long = "é".repeat(MAX_VALUE_BYTES);
        let cut = bounded(vec![long; MAX_VALUES + 3]);
        assert_eq!(cut.len(), MAX_VALUES);
        assert!(cut[0].len() <= MAX_VALUE_BYTES + '…'.len_utf8());
    }
}
