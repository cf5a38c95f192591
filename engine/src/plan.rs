//! Query plans: "which resources may this subject act on?" as a partial evaluation of the
//! decision rule. The subject, action and context are known; the resource (its id and
//! tags) is not. [`PolicySet::plan`] goes through the same statements a decision would
//! (guardrails, the subject's identity attachments with their boundaries, resource
//! policies with their `Principal`), evaluates everything that reads only the known parts,
//! and keeps the rest as an [`Expr`] over the resource: `id like <glob>` and conditions on
//! the resource's tags. Evaluating the plan on a resource ([`Plan::allows`]) gives exactly
//! the decision's `allowed` for that resource.
//!
//! This module reads the compiled set; it never changes it and does no I/O.

use std::fmt;
use std::sync::Arc;

use crate::condition::Condition;
use crate::eval::action_key;
use crate::keys::{EvalCtx, Key, Template};
use crate::pattern::{glob, Tok};
use crate::request::{Context, Request, Resource, Subject, Text};
use crate::set::{stmt_flags, Index, PolicySet, ResPat, Stmt, DENY};

/// What is known when planning: everything of a request but the resource.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanRequest {
    /// The verified identity asking.
    #[serde(default)]
    pub subject: Subject,
    /// The action.
    pub action: Text,
    /// The other facts (condition keys).
    #[serde(default)]
    pub context: Context,
    /// The clock for `aws:CurrentTime` / `aws:EpochTime`; the system clock when `None`.
    #[serde(skip)]
    pub now: Option<chrono::DateTime<chrono::Utc>>,
}

/// Which resources the subject may act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Every resource.
    AlwaysAllowed,
    /// No resource.
    AlwaysDenied,
    /// The resources for which the expression holds.
    Conditional(Expr),
}

/// A condition on the resource alone, simplified: no constant, no duplicate term, no
/// nested `and` in an `and` (or `or` in an `or`), no double negation.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// The resource id matches an IAM wildcard pattern (case-sensitive; `*` any run of
    /// characters, `?` one character).
    IdLike(Glob),
    /// A condition that reads the resource's tags (`aws:ResourceTag/<key>`, or a policy
    /// variable naming one in its values).
    Tag(TagTest),
    /// The resource id matches a pattern whose policy variables read the resource's tags.
    IdTemplate(IdTemplate),
    /// Not.
    Not(Box<Expr>),
    /// Every one.
    And(Vec<Expr>),
    /// Any one.
    Or(Vec<Expr>),
}

/// An IAM wildcard pattern, split into literal text and wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    toks: Vec<Tok>,
}

/// A part of a [`Glob`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GlobPart {
    /// Literal text.
    Text(String),
    /// `*`: any run of characters, the empty one included.
    AnyRun,
    /// `?`: exactly one character.
    AnyChar,
}

impl Glob {
    fn new(mut toks: Vec<Tok>) -> Glob {
        toks.dedup_by(|a, b| *a == Tok::Star && *b == Tok::Star);
        Glob { toks }
    }

    /// The pattern's parts in order (consecutive literal characters as one text).
    pub fn parts(&self) -> Vec<GlobPart> {
        let mut parts = Vec::new();
        for t in &self.toks {
            match t {
                Tok::Lit(c) => match parts.last_mut() {
                    Some(GlobPart::Text(s)) => s.push(*c),
                    _ => parts.push(GlobPart::Text(c.to_string())),
                },
                Tok::Star => parts.push(GlobPart::AnyRun),
                Tok::One => parts.push(GlobPart::AnyChar),
            }
        }
        parts
    }

    /// Whether `id` matches.
    pub fn matches(&self, id: &str) -> bool {
        glob(&self.toks, id)
    }

    fn is_any(&self) -> bool {
        self.toks == [Tok::Star]
    }
}

impl fmt::Display for Glob {
    /// `*` and `?` as wildcards; a literal `*`, `?` or `\` after a `\`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.toks {
            match t {
                Tok::Lit(c @ ('*' | '?' | '\\')) => write!(f, "\\{c}")?,
                Tok::Lit(c) => write!(f, "{c}")?,
                Tok::Star => f.write_str("*")?,
                Tok::One => f.write_str("?")?,
            }
        }
        Ok(())
    }
}

/// A condition that reads the resource's tags, as written in its statement, with the
/// policy variables that read the known parts filled in.
#[derive(Debug, Clone)]
pub struct TagTest {
    operator: String,
    key: String,
    values: Vec<String>,
    /// The condition's index in the set (two tests of the same condition are one term).
    id: u32,
    eval: Arc<Eval>,
}

/// What evaluating a term against a resource needs: the known request (one, shared by
/// every term of a plan) and the term's condition or template.
#[derive(Debug)]
struct Eval {
    known: Arc<Request>,
    condition: Option<Condition>,
    template: Option<Template>,
}

impl Eval {
    fn with_resource(&self, resource: &Resource) -> Request {
        let mut r = (*self.known).clone();
        r.resource = resource.clone();
        r
    }
}

impl PartialEq for TagTest {
    fn eq(&self, other: &TagTest) -> bool {
        self.id == other.id && self.values == other.values
    }
}

impl TagTest {
    /// The operator as written (with its `ForAnyValue:`/`ForAllValues:` qualifier and
    /// `IfExists`).
    pub fn operator(&self) -> &str {
        &self.operator
    }

    /// The condition key as written (`aws:ResourceTag/<key>`, or another key whose values
    /// read a resource tag).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The tag the key names, when the key is `aws:ResourceTag/<tag>`.
    pub fn tag(&self) -> Option<&str> {
        let prefix = "aws:resourcetag/";
        self.key
            .get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .and_then(|_| self.key.get(prefix.len()..))
    }

    /// The values compared, as text, policy variables of the known parts filled in.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether the condition holds for `resource`.
    pub fn holds(&self, resource: &Resource) -> bool {
        let request = self.eval.with_resource(resource);
        let ctx = EvalCtx::new(&request, b"", None);
        self.eval.condition.as_ref().is_some_and(|c| c.holds(&ctx))
    }
}

/// A resource pattern whose policy variables read the resource's own tags.
#[derive(Debug, Clone)]
pub struct IdTemplate {
    text: String,
    eval: Arc<Eval>,
}

impl PartialEq for IdTemplate {
    fn eq(&self, other: &IdTemplate) -> bool {
        self.text == other.text
    }
}

impl IdTemplate {
    /// The pattern, the variables of the known parts filled in and the resource's tags
    /// left as `${aws:ResourceTag/<key>}` (with `, 'default'` where written); literal
    /// text as a glob (`*`, `?` wildcards), with `\` before a literal `*`, `?`, `\` or
    /// `$`.
    pub fn pattern(&self) -> &str {
        &self.text
    }

    /// Whether `resource`'s id matches the pattern filled in from `resource`'s tags.
    pub fn holds(&self, resource: &Resource) -> bool {
        let request = self.eval.with_resource(resource);
        let ctx = EvalCtx::new(&request, b"", None);
        self.eval
            .template
            .as_ref()
            .and_then(|t| t.resolve(&ctx))
            .is_some_and(|toks| glob(&toks, &resource.id))
    }
}

impl Expr {
    /// Whether the expression holds for `resource`.
    pub fn holds(&self, resource: &Resource) -> bool {
        match self {
            Expr::IdLike(g) => g.matches(&resource.id),
            Expr::Tag(t) => t.holds(resource),
            Expr::IdTemplate(t) => t.holds(resource),
            Expr::Not(e) => !e.holds(resource),
            Expr::And(es) => es.iter().all(|e| e.holds(resource)),
            Expr::Or(es) => es.iter().any(|e| e.holds(resource)),
        }
    }
}

impl Plan {
    /// Whether the plan allows `resource`: exactly the decision's `allowed` for the
    /// planned request with that resource.
    pub fn allows(&self, resource: &Resource) -> bool {
        match self {
            Plan::AlwaysAllowed => true,
            Plan::AlwaysDenied => false,
            Plan::Conditional(e) => e.holds(resource),
        }
    }
}

impl Plan {
    /// The plan as JSON: `{"plan": "always_allowed"}`, `{"plan": "always_denied"}`, or
    /// `{"plan": "conditional", "condition": EXPR}` (see [`Expr::to_json`]).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Plan::AlwaysAllowed => serde_json::json!({"plan": "always_allowed"}),
            Plan::AlwaysDenied => serde_json::json!({"plan": "always_denied"}),
            Plan::Conditional(e) => {
                serde_json::json!({"plan": "conditional", "condition": e.to_json()})
            }
        }
    }
}

impl Expr {
    /// The expression as JSON: `{"id_like": GLOB}` (`*`, `?` wildcards; `\` escapes a
    /// literal one), `{"tag": {"operator", "key", "values"}}`, `{"id_template": TEXT}`,
    /// `{"not": EXPR}`, `{"and": [EXPR…]}`, `{"or": [EXPR…]}`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Expr::IdLike(g) => json!({"id_like": g.to_string()}),
            Expr::Tag(t) => json!({"tag": {
                "operator": t.operator,
                "key": t.key,
                "values": t.values,
            }}),
            Expr::IdTemplate(t) => json!({"id_template": t.text}),
            Expr::Not(e) => json!({"not": e.to_json()}),
            Expr::And(es) => json!({"and": es.iter().map(Expr::to_json).collect::<Vec<_>>()}),
            Expr::Or(es) => json!({"or": es.iter().map(Expr::to_json).collect::<Vec<_>>()}),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |f: &mut fmt::Formatter<'_>, es: &[Expr], op: &str| -> fmt::Result {
            f.write_str("(")?;
            for (i, e) in es.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{e}")?;
            }
            f.write_str(")")
        };
        match self {
            Expr::IdLike(g) => write!(f, "id like {:?}", g.to_string()),
            Expr::Tag(t) => write!(f, "{} {} {:?}", t.operator, t.key, t.values),
            Expr::IdTemplate(t) => write!(f, "id like template {:?}", t.text),
            Expr::Not(e) => write!(f, "not {e}"),
            Expr::And(es) => list(f, es, "and"),
            Expr::Or(es) => list(f, es, "or"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Building

/// An expression while it is built: with constants, folded away by the constructors.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    True,
    False,
    Expr(Expr),
}

/// The distinct terms of `nodes`, operands of the same operator (`is_same`) flattened in;
/// `None` when one of them is `absorbing` (`False` for `and`, `True` for `or`). A term
/// beside its own negation is absorbing too.
fn terms(
    nodes: impl IntoIterator<Item = Node>,
    absorbing: &Node,
    is_same: fn(Expr) -> Result<Vec<Expr>, Expr>,
) -> Option<Vec<Expr>> {
    let mut terms: Vec<Expr> = Vec::new();
    let push = |e: Expr, terms: &mut Vec<Expr>| {
        if !terms.contains(&e) {
            terms.push(e);
        }
    };
    for n in nodes {
        match n {
            Node::Expr(e) => match is_same(e) {
                Ok(inner) => inner.into_iter().for_each(|e| push(e, &mut terms)),
                Err(e) => push(e, &mut terms),
            },
            other if &other == absorbing => return None,
            _ => {}
        }
    }
    let contradiction = terms
        .iter()
        .any(|t| terms.contains(&Expr::Not(Box::new(t.clone()))));
    (!contradiction).then_some(terms)
}

fn and(nodes: impl IntoIterator<Item = Node>) -> Node {
    let same = |e| match e {
        Expr::And(inner) => Ok(inner),
        e => Err(e),
    };
    let Some(mut terms) = terms(nodes, &Node::False, same) else {
        return Node::False;
    };
    match terms.len() {
        0 => Node::True,
        1 => terms.pop().map_or(Node::True, Node::Expr),
        _ => Node::Expr(Expr::And(terms)),
    }
}

fn or(nodes: impl IntoIterator<Item = Node>) -> Node {
    let same = |e| match e {
        Expr::Or(inner) => Ok(inner),
        e => Err(e),
    };
    let Some(mut terms) = terms(nodes, &Node::True, same) else {
        return Node::True;
    };
    // `id like *` holds for every resource.
    if terms
        .iter()
        .any(|t| matches!(t, Expr::IdLike(g) if g.is_any()))
    {
        return Node::True;
    }
    match terms.len() {
        0 => Node::False,
        1 => terms.pop().map_or(Node::False, Node::Expr),
        _ => Node::Expr(Expr::Or(terms)),
    }
}

fn not(n: Node) -> Node {
    match n {
        Node::True => Node::False,
        Node::False => Node::True,
        Node::Expr(Expr::Not(e)) => Node::Expr(*e),
        Node::Expr(e) => Node::Expr(Expr::Not(Box::new(e))),
    }
}

fn id_like(toks: Vec<Tok>) -> Node {
    let g = Glob::new(toks);
    if g.is_any() {
        Node::True
    } else {
        Node::Expr(Expr::IdLike(g))
    }
}

/// Whether a key is one of the resource's tags.
fn reads_resource(key: &Key) -> bool {
    matches!(key, Key::ResourceTag(_))
}

/// What one statement says of the resource when it is evaluated for the known parts.
struct Planner<'s> {
    set: &'s PolicySet,
    ctx: EvalCtx<'s>,
    known: Arc<Request>,
}

impl Planner<'_> {
    /// When `s` applies, as an expression over the resource.
    fn statement(&self, id: u32, s: &Stmt, flags: u32) -> Node {
        if !s.action_matches(&self.ctx, flags) {
            return Node::False;
        }
        if let Some(p) = &s.principal {
            if !p.matches(self.ctx.req) {
                return Node::False;
            }
        }
        let resource = or(s.resources.iter().map(|p| self.pattern(p)));
        let resource = if s.resources_negated {
            not(resource)
        } else {
            resource
        };
        let shared = &self.set.shared;
        let ids = s.conditions.ids(&shared.overflow);
        // A condition that is not there (never made) counts as the decision counts it: as
        // holding for a Deny (which then applies: fail closed), as failing an Allow.
        let deny = flags & DENY != 0;
        if ids.len() != s.conditions.len() && !deny {
            return Node::False;
        }
        let labels = self
            .set
            .cold
            .get(id as usize)
            .map(|c| (&c.labels, &*c.condition_labels));
        let mut parts = vec![resource];
        for (n, &i) in ids.iter().enumerate() {
            let Some(c) = shared.conditions.get(i as usize) else {
                if deny {
                    continue;
                }
                return Node::False;
            };
            if c.reads(reads_resource) {
                let (operator, key) = labels
                    .and_then(|(l, text)| l.get(n).map(|l| (l.operator(text), l.key_name(text))))
                    .unwrap_or_default();
                parts.push(Node::Expr(Expr::Tag(TagTest {
                    operator: operator.to_owned(),
                    key: key.to_owned(),
                    values: c.values_text(&self.ctx),
                    id: i,
                    eval: Arc::new(Eval {
                        known: self.known.clone(),
                        condition: Some(c.clone()),
                        template: None,
                    }),
                })));
            } else if !c.holds(&self.ctx) {
                return Node::False;
            }
        }
        and(parts)
    }

    fn pattern(&self, p: &ResPat) -> Node {
        match p {
            ResPat::Static(p) => id_like(p.toks()),
            ResPat::Dynamic(t) if t.keys().any(reads_resource) => {
                let Some(text) = t.plan_text(&self.ctx, reads_resource) else {
                    return Node::False;
                };
                Node::Expr(Expr::IdTemplate(IdTemplate {
                    text,
                    eval: Arc::new(Eval {
                        known: self.known.clone(),
                        condition: None,
                        template: Some(t.clone()),
                    }),
                }))
            }
            ResPat::Dynamic(t) => match t.resolve(&self.ctx) {
                Some(toks) => id_like(toks),
                None => Node::False,
            },
        }
    }

    /// Calls `f` with each statement of `index` that can apply, whether it denies, and
    /// when it applies.
    fn each<'i>(&'i self, index: &Index, mut f: impl FnMut(&'i Stmt, bool, Node)) {
        for &id in index.all() {
            let Some(s) = self.set.statements.get(id as usize) else {
                continue;
            };
            let flags = stmt_flags(s);
            let n = self.statement(id, s, flags);
            if n != Node::False {
                f(s, flags & DENY != 0, n);
            }
        }
    }

    /// The statements of `index`: Allows and Denys, each as an expression.
    fn split(&self, index: &Index) -> (Vec<Node>, Vec<Node>) {
        let (mut allows, mut denies) = (Vec::new(), Vec::new());
        self.each(index, |_, deny, n| {
            if deny {
                denies.push(n);
            } else {
                allows.push(n);
            }
        });
        (allows, denies)
    }
}

impl PolicySet {
    /// The plan for `request`: which resources it allows. See [`Plan`].
    pub fn plan(&self, request: &PlanRequest) -> Plan {
        let known = Request {
            subject: request.subject.clone(),
            action: request.action.clone(),
            resource: Resource::default(),
            context: request.context.clone(),
            now: request.now,
        };
        let known = self.with_directory(&known).unwrap_or(known);
        let (action, action_id) = action_key(self, &known.action);
        let known = Arc::new(known);
        let planner = Planner {
            set: self,
            ctx: EvalCtx::new(&known, action.as_bytes(), action_id),
            known: known.clone(),
        };
        let subject = &planner.ctx.req.subject;
        let mut denies = Vec::new();
        let mut allowed = Vec::new();

        let (guard_allows, guard_denies) = planner.split(&self.guardrails);
        denies.extend(guard_denies);

        let mut attachments = Vec::new();
        for role in subject.roles.iter() {
            if let Some(att) = self.roles.get(role.as_str()) {
                attachments.push(att);
            }
        }
        if let Some(att) = self.subjects.get(subject.id.as_str()) {
            attachments.push(att);
        }
        for att in attachments {
            let (allows, d) = planner.split(&att.identity);
            denies.extend(d);
            match &att.boundary {
                None => allowed.push(or(allows)),
                Some(boundary) => {
                    let (bounded, d) = planner.split(boundary);
                    denies.extend(d);
                    allowed.push(and([or(allows), or(bounded)]));
                }
            }
        }

        for (pattern, index) in &self.resources.entries {
            let attached = id_like(pattern.toks());
            planner.each(index, |s, deny, n| {
                if deny {
                    denies.push(and([attached.clone(), n]));
                } else {
                    let counts = self.resource_allow_plan(s, &planner);
                    allowed.push(and([attached.clone(), n, counts]));
                }
            });
        }

        let guard = if self.guardrails_have_allow {
            or(guard_allows)
        } else {
            Node::True
        };
        match and([or(allowed), guard, not(or(denies))]) {
            Node::True => Plan::AlwaysAllowed,
            Node::False => Plan::AlwaysDenied,
            Node::Expr(e) => Plan::Conditional(e),
        }
    }

    /// When a resource-policy Allow that applies counts (see the decision's rule): always
    /// when granted to the subject itself or through a role without a boundary; otherwise
    /// when a granting role's boundary allows.
    fn resource_allow_plan(&self, s: &Stmt, planner: &Planner<'_>) -> Node {
        let Some(p) = &s.principal else {
            return Node::True;
        };
        let subject = &planner.ctx.req.subject;
        if p.negated || p.anyone || p.users.iter().any(|u| u.matches(&subject.id)) {
            return Node::True;
        }
        let granted: Vec<&Text> = subject
            .roles
            .iter()
            .filter(|role| p.roles.iter().any(|r| r.matches(role.as_str())))
            .collect();
        let boundary_of = |role: &Text| {
            self.roles
                .get(role.as_str())
                .and_then(|att| att.boundary.as_deref())
        };
        if granted.iter().any(|role| boundary_of(role).is_none()) {
            return Node::True;
        }
        or(granted
            .iter()
            .filter_map(|role| boundary_of(role))
            .map(|b| or(planner.split(b).0)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use crate::request::Subject;

    fn set(policy: &str) -> PolicySet {
        PolicySet::builder()
            .policy_yaml("p", policy)
            .bindings_yaml("b", "roles: { R: { policies: [p] } }")
            .build()
            .unwrap()
    }

    fn plan(set: &PolicySet, id: &str, action: &str) -> Plan {
        set.plan(&PlanRequest {
            subject: Subject {
                id: id.into(),
                roles: vec!["R".into()].into(),
                ..Default::default()
            },
            action: action.into(),
            ..Default::default()
        })
    }

    fn resource(id: &str, tags: &[(&str, &str)]) -> Resource {
        Resource {
            id: id.into(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    const HOME: &str = r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "s3:GetObject"
    Resource: "arn:aws:s3:::b/${aws:username}/*"
  - Effect: Deny
    Action: "s3:*"
    Resource: "arn:aws:s3:::b/*/secret*"
  - Effect: Allow
    Action: "ec2:*"
    Resource: "*"
"#;

    #[test]
    fn variables_are_filled_in_and_denies_subtracted() {
        let s = set(HOME);
        let Plan::Conditional(e) = plan(&s, "alice", "s3:GetObject") else {
            panic!("expected a condition");
        };
        assert_eq!(
            e.to_string(),
            r#"(id like "arn:aws:s3:::b/alice/*" and not id like "arn:aws:s3:::b/*/secret*")"#
        );
        let p = plan(&s, "alice", "s3:GetObject");
        assert!(p.allows(&resource("arn:aws:s3:::b/alice/notes", &[])));
        assert!(!p.allows(&resource("arn:aws:s3:::b/alice/secret.txt", &[])));
        assert!(!p.allows(&resource("arn:aws:s3:::b/bob/notes", &[])));
    }

    #[test]
    fn constants_fold_to_always_and_never() {
        let s = set(HOME);
        assert_eq!(plan(&s, "alice", "ec2:RunInstances"), Plan::AlwaysAllowed);
        assert_eq!(plan(&s, "alice", "iam:CreateUser"), Plan::AlwaysDenied);
        let other = s.plan(&PlanRequest {
            subject: Subject {
                id: "alice".into(),
                roles: vec!["Nobody".into()].into(),
                ..Default::default()
            },
            action: "ec2:RunInstances".into(),
            ..Default::default()
        });
        assert_eq!(other, Plan::AlwaysDenied, "a role with no policies");
    }

    #[test]
    fn resource_tag_conditions_stay_with_their_values_filled_in() {
        let s = set(r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "docs:Read"
    Resource: "doc:*"
    Condition:
      StringEquals: { "aws:ResourceTag/owner": "${aws:username}" }
      Bool: { "aws:SecureTransport": "true" }
"#);
        let secure = s.plan(&PlanRequest {
            subject: Subject {
                id: "alice".into(),
                roles: vec!["R".into()].into(),
                ..Default::default()
            },
            action: "docs:Read".into(),
            context: Context::new().with("aws:SecureTransport", true),
            now: None,
        });
        let Plan::Conditional(Expr::And(terms)) = &secure else {
            panic!("{secure:?}");
        };
        let Some(Expr::Tag(t)) = terms.get(1) else {
            panic!("{terms:?}");
        };
        assert_eq!(
            (t.operator(), t.key(), t.tag(), t.values()),
            (
                "StringEquals",
                "aws:ResourceTag/owner",
                Some("owner"),
                &["alice".to_owned()][..]
            )
        );
        assert!(secure.allows(&resource("doc:1", &[("owner", "alice")])));
        assert!(!secure.allows(&resource("doc:1", &[("owner", "bob")])));
        assert!(!secure.allows(&resource("doc:1", &[])));
        // The known condition fails: nothing is allowed, whatever the tags.
        assert_eq!(plan(&s, "alice", "docs:Read"), Plan::AlwaysDenied);
    }

    #[test]
    fn like_values_show_literal_wildcards_from_variables_escaped() {
        let s = set(r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "docs:Read"
    Resource: "*"
    Condition:
      StringLike: { "aws:ResourceTag/owner": ["${aws:username}/*", "a\\b?"] }
"#);
        let p = plan(&s, "x*y", "docs:Read");
        let Plan::Conditional(Expr::Tag(t)) = &p else {
            panic!("{p:?}");
        };
        assert_eq!(t.values(), ["x\\*y/*", "a\\\\b?"]);
        assert!(p.allows(&resource("d", &[("owner", "x*y/1")])));
        assert!(!p.allows(&resource("d", &[("owner", "xzy/1")])));
    }

    #[test]
    fn id_templates_show_known_variables_filled_in_and_literals_escaped() {
        let s = set(r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "docs:Read"
    Resource: "doc:${aws:username}/${aws:ResourceTag/team, 'none'}/${$}{x}*"
"#);
        let p = plan(&s, "a*b", "docs:Read");
        let Plan::Conditional(Expr::IdTemplate(t)) = &p else {
            panic!("{p:?}");
        };
        assert_eq!(
            t.pattern(),
            "doc:a\\*b/${aws:ResourceTag/team, 'none'}/\\${x}*"
        );
        assert!(p.allows(&resource("doc:a*b/red/${x}1", &[("team", "red")])));
        assert!(p.allows(&resource("doc:a*b/none/${x}", &[])));
        assert!(!p.allows(&resource("doc:aXb/red/${x}1", &[("team", "red")])));
    }

    #[test]
    fn globs_show_literal_wildcards_escaped() {
        let g = Glob::new(vec![
            Tok::Lit('a'),
            Tok::Lit('*'),
            Tok::Star,
            Tok::Star,
            Tok::One,
        ]);
        assert_eq!(g.to_string(), "a\\**?");
        assert_eq!(
            g.parts(),
            [
                GlobPart::Text("a*".into()),
                GlobPart::AnyRun,
                GlobPart::AnyChar
            ]
        );
        assert!(g.matches("a*xyz1"));
        assert!(!g.matches("ab1"));
    }
}
