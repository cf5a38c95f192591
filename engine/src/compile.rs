//! Compilation passes: documents -> statements (element by element, collecting every
//! problem with its file, statement and field), then bindings -> indexed attachments, then
//! checks that need both (Principal only in resource policies, names that exist).

use std::collections::HashMap;

use crate::condition;
use crate::error::{CompileError, CompileErrors};
use crate::obligation::parse_obligation;
use crate::pattern::Pattern;
use crate::set::{
    res_pat, revision_of, Bindings, CAttachment, Cold, CondIds, Placer, PolicyMeta, PolicySet,
    Principals, Res, Resources, Shared, Stmt, MAX_STATEMENTS,
};
use crate::types::{Effect, Obligation, StatementInfo};

type Json = serde_json::Value;

/// Hash maps of names, with a fast (not DoS-resistant; compile input is trusted) hasher.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

const STATEMENT_KEYS: &[&str] = &[
    "Sid",
    "Effect",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Principal",
    "NotPrincipal",
    "Condition",
    "Obligations",
];

/// Collects problems with their location.
struct Problems<'a> {
    file: &'a str,
    statement: Option<usize>,
    sid: Option<&'a str>,
    out: &'a mut Vec<CompileError>,
}

impl Problems<'_> {
    fn add(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.out.push(CompileError {
            file: self.file.to_owned(),
            statement: self.statement,
            sid: self.sid.map(str::to_owned),
            field: field.map(str::to_owned),
            message: message.into(),
        });
    }
}

/// Documents compiled so far, with every problem found in them.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    statements: Vec<Stmt>,
    cold: Vec<Cold>,
    shared: Interner,
    obligations: Vec<Obligation>,
    policies: Vec<PolicyMeta>,
    by_name: FastMap<String, usize>,
    digests: Vec<(String, [u8; 32])>,
    /// Where each document's encoding is written to be digested (reused).
    scratch: Vec<u8>,
    pub(crate) errors: Vec<CompileError>,
}

/// What the set's statements share, each kept once: statements name them by index.
#[derive(Debug, Default)]
struct Interner {
    shared: Shared,
    /// Condition indexes by the digest of what they were compiled from
    /// ([`condition::digest`]).
    by_digest: FastMap<u64, smallvec::SmallVec<[u32; 1]>>,
    /// Condition indexes by exactly what they were compiled from.
    by_input: FastMap<Box<[u8]>, u32>,
    /// Resource pattern heads by text.
    heads: FastMap<Box<[u8]>, u16>,
}

impl Interner {
    /// The index of resource pattern head `text`, if there is room for it.
    fn head(&mut self, text: &[u8]) -> Option<u16> {
        if let Some(&i) = self.heads.get(text) {
            return Some(i);
        }
        let i = u16::try_from(self.shared.heads.len()).ok()?;
        self.shared.heads.push(text.into());
        self.heads.insert(text.into(), i);
        Some(i)
    }

    /// The index of the condition compiled from exactly `inputs`, if there is one.
    fn known(&self, inputs: &[u8]) -> Option<u32> {
        self.by_input.get(inputs).copied()
    }

    /// The index of a condition: that of an equal condition already kept, or a new one.
    fn intern(&mut self, made: condition::Made) -> u32 {
        let (condition, inputs) = match made {
            condition::Made::Known(i) => return i,
            condition::Made::New { condition, inputs } => (condition, inputs),
        };
        let list = &mut self.shared.conditions;
        let same = self
            .by_digest
            .entry(condition::digest(&inputs))
            .or_default();
        let i = match same
            .iter()
            .find(|&&i| list.get(i as usize) == Some(&condition))
        {
            Some(&i) => i,
            None => {
                let i = u32::try_from(list.len()).unwrap_or(u32::MAX);
                list.push(condition);
                same.push(i);
                i
            }
        };
        self.by_input.insert(inputs.into_boxed_slice(), i);
        i
    }
}

impl Compiled {
    /// Compiles one document (or records why it could not be read).
    pub(crate) fn add(&mut self, name: &str, origin: &str, doc: Result<&Json, String>) {
        let mut p = Problems {
            file: origin,
            statement: None,
            sid: None,
            out: &mut self.errors,
        };
        let doc = match doc {
            Ok(d) => d,
            Err(e) => {
                p.add(None, e);
                return;
            }
        };
        if name.trim().is_empty() {
            p.add(None, "policy name is empty");
            return;
        }
        if self.by_name.contains_key(name) {
            p.add(None, format!("policy name `{name}` is used twice"));
            return;
        }
        if self.statements.len() > MAX_STATEMENTS {
            p.add(
                None,
                format!("the set has more than {MAX_STATEMENTS} statements"),
            );
            return;
        }
        let start = u32::try_from(self.statements.len()).unwrap_or(u32::MAX);
        compile_document(
            name,
            doc,
            &mut p,
            &mut self.statements,
            &mut self.cold,
            &mut self.shared,
            &mut self.obligations,
        );
        let end = u32::try_from(self.statements.len()).unwrap_or(u32::MAX);
        self.by_name.insert(name.to_owned(), self.policies.len());
        self.policies.push(PolicyMeta {
            name: name.to_owned(),
            origin: origin.to_owned(),
            statements: start..end,
        });
        self.digests.push((
            name.to_owned(),
            crate::set::document_digest(doc, &mut self.scratch),
        ));
    }
}

/// Adds the bindings to the compiled documents and checks what needs both.
pub(crate) fn finish(
    compiled: Compiled,
    bindings: Result<Bindings, String>,
    bindings_origin: String,
) -> Result<PolicySet, CompileErrors> {
    let Compiled {
        mut statements,
        cold,
        shared,
        obligations,
        policies,
        by_name,
        mut digests,
        scratch: _,
        mut errors,
    } = compiled;
    if statements.len() > MAX_STATEMENTS {
        errors.push(CompileError {
            file: bindings_origin,
            statement: None,
            sid: None,
            field: None,
            message: format!("the set has more than {MAX_STATEMENTS} statements"),
        });
        return Err(CompileErrors(errors));
    }

    let bindings = match bindings {
        Ok(b) => b,
        Err(e) => {
            errors.push(CompileError {
                file: bindings_origin.clone(),
                statement: None,
                sid: None,
                field: None,
                message: e,
            });
            Bindings::default()
        }
    };

    let action_ids = crate::set::ActionIds::assign(&mut statements, &cold);
    let placer = Placer::new(&statements, &cold, &action_ids);
    let mut usage = Usage::default();
    let mut bp = Problems {
        file: &bindings_origin,
        statement: None,
        sid: None,
        out: &mut errors,
    };
    let ids_of = |names: &[String],
                  field: &str,
                  bp: &mut Problems<'_>,
                  usage: &mut Vec<usize>|
     -> Vec<u32> {
        let mut ids = Vec::new();
        for n in names {
            match by_name.get(n) {
                Some(&pi) => {
                    usage.push(pi);
                    if let Some(meta) = policies.get(pi) {
                        ids.extend(meta.statements.clone());
                    }
                }
                None => bp.add(Some(field), format!("unknown policy `{n}`")),
            }
        }
        ids
    };

    let attach = |kind: &str,
                  name: &str,
                  a: &crate::set::Attachment,
                  bp: &mut Problems<'_>,
                  usage: &mut Usage| {
        let field = format!("{kind}.{name}.policies");
        let identity = ids_of(&a.policies, &field, bp, &mut usage.identity);
        let boundary = a.boundary.as_ref().map(|b| {
            let field = format!("{kind}.{name}.boundary");
            Box::new(placer.index(ids_of(
                std::slice::from_ref(b),
                &field,
                bp,
                &mut usage.identity,
            )))
        });
        CAttachment {
            identity: placer.index(identity),
            boundary,
        }
    };
    let mut roles = HashMap::with_hasher(foldhash::fast::FixedState::default());
    for (name, a) in &bindings.roles {
        if !a.roles.is_empty() || !a.tags.is_empty() {
            bp.add(
                Some(&format!("roles.{name}")),
                "`roles` and `tags` belong to subjects (the directory), not to roles",
            );
        }
        let c = attach("roles", name, a, &mut bp, &mut usage);
        roles.insert(compact_str::CompactString::from(name.as_str()), c);
    }
    let mut subjects = HashMap::with_hasher(foldhash::fast::FixedState::default());
    let mut directory = HashMap::with_hasher(foldhash::fast::FixedState::default());
    for (name, a) in &bindings.subjects {
        for role in &a.roles {
            if !bindings.roles.contains_key(role) {
                bp.add(
                    Some(&format!("subjects.{name}.roles")),
                    format!("role `{role}` is not bound in `roles`"),
                );
            }
        }
        for key in a.tags.keys() {
            if key.is_empty() {
                bp.add(Some(&format!("subjects.{name}.tags")), "a tag key is empty");
            }
        }
        if !a.roles.is_empty() || !a.tags.is_empty() {
            directory.insert(
                compact_str::CompactString::from(name.as_str()),
                crate::set::Directory {
                    roles: a.roles.iter().map(|r| r.as_str().into()).collect(),
                    tags: a
                        .tags
                        .iter()
                        .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                        .collect(),
                },
            );
        }
        let c = attach("subjects", name, a, &mut bp, &mut usage);
        subjects.insert(compact_str::CompactString::from(name.as_str()), c);
    }
    let guard_ids = ids_of(
        &bindings.guardrails,
        "guardrails",
        &mut bp,
        &mut usage.identity,
    );
    let guardrails_have_allow = guard_ids.iter().any(|i| {
        statements
            .get(*i as usize)
            .is_some_and(|s| s.effect == Effect::Allow)
    });
    let guardrails = placer.index(guard_ids);
    let mut resources = Vec::new();
    for (i, r) in bindings.resources.iter().enumerate() {
        let field = format!("resources[{i}]");
        if r.pattern.is_empty() {
            bp.add(Some(&format!("{field}.match")), "resource pattern is empty");
        }
        let ids = ids_of(
            &r.policies,
            &format!("{field}.policies"),
            &mut bp,
            &mut usage.resource,
        );
        resources.push((Pattern::new(&r.pattern, false), placer.index(ids)));
    }

    // Principal belongs in resource policies only, and resource policies need one.
    let flags = |used: &[usize]| {
        let mut f = vec![false; policies.len()];
        for &pi in used {
            if let Some(slot) = f.get_mut(pi) {
                *slot = true;
            }
        }
        f
    };
    let (identity_use, resource_use) = (flags(&usage.identity), flags(&usage.resource));
    for (pi, meta) in policies.iter().enumerate() {
        // INVARIANT: both lists have one flag per policy (`flags`). A policy missing from
        // them would escape the checks below: read it as used both ways, which reports it.
        debug_assert!(identity_use.len() == policies.len() && resource_use.len() == policies.len());
        let as_identity = identity_use.get(pi).copied().unwrap_or(true);
        let as_resource = resource_use.get(pi).copied().unwrap_or(true);
        for id in meta.statements.clone() {
            let (Some(s), Some(c)) = (statements.get(id as usize), cold.get(id as usize)) else {
                // INVARIANT: a policy's statements are a range of the set's, each with its
                // `Cold` (`Compiled::add`).
                debug_assert!(false, "statement {id} of `{}` is missing", meta.name);
                continue;
            };
            let mut p = Problems {
                file: &meta.origin,
                statement: Some(c.info.index),
                sid: c.info.sid.as_deref(),
                out: &mut errors,
            };
            if as_identity && s.principal.is_some() {
                p.add(
                    Some("Principal"),
                    format!("`{}` is attached as an identity policy, boundary or guardrail, where `Principal`/`NotPrincipal` is not allowed", meta.name),
                );
            }
            if as_resource && s.principal.is_none() {
                p.add(
                    Some("Principal"),
                    format!("`{}` is attached as a resource policy, whose statements need `Principal` or `NotPrincipal`", meta.name),
                );
            }
        }
    }

    check_obligation_ids(&cold, &obligations, &policies, &mut errors);
    if !errors.is_empty() {
        return Err(CompileErrors(errors));
    }
    // The lists grew by doubling while documents were added; the set keeps them for life.
    statements.shrink_to_fit();
    let mut cold = cold;
    cold.shrink_to_fit();
    let mut shared = shared.shared;
    shared.conditions.shrink_to_fit();
    shared.overflow.shrink_to_fit();
    shared.heads.shrink_to_fit();
    let obligation_keys = obligation_keys(&obligations);
    let revision = revision_of(&mut digests, &bindings);
    Ok(PolicySet {
        statements,
        cold,
        shared,
        obligations,
        obligation_keys,
        policies,
        action_ids,
        roles,
        subjects,
        directory,
        guardrails,
        guardrails_have_allow,
        resources: crate::set::ResourceIndex::new(resources),
        bindings,
        revision,
    })
}

/// For each obligation, the index of the first obligation with the same `Id`.
fn obligation_keys(obligations: &[Obligation]) -> Vec<u32> {
    let mut first: FastMap<&str, u32> = FastMap::default();
    obligations
        .iter()
        .enumerate()
        .map(|(i, o)| {
            *first
                .entry(o.id.as_str())
                .or_insert(u32::try_from(i).unwrap_or(u32::MAX))
        })
        .collect()
}

/// Obligations are deduplicated by `Id`, so one `Id` must always mean the same obligation:
/// otherwise which one a caller receives would depend on statement order.
fn check_obligation_ids(
    cold: &[Cold],
    obligations: &[Obligation],
    policies: &[PolicyMeta],
    errors: &mut Vec<CompileError>,
) {
    let mut first: FastMap<&str, (&Obligation, &StatementInfo)> = FastMap::default();
    for c in cold {
        let info = &c.info;
        for (pos, o) in c
            .obligations
            .clone()
            .filter_map(|o| obligations.get(o as usize))
            .enumerate()
        {
            match first.get(o.id.as_str()) {
                None => {
                    first.insert(&o.id, (o, info));
                }
                Some((earlier, at)) if *earlier != o => {
                    let file = policies
                        .iter()
                        .find(|p| p.name == info.policy)
                        .map_or_else(|| info.policy.clone(), |p| p.origin.clone());
                    errors.push(CompileError {
                        file,
                        statement: Some(info.index),
                        sid: info.sid.clone(),
                        field: Some(format!("Obligations[{pos}]")),
                        message: format!(
                            "obligation `{}` differs from the obligation with the same `Id` in policy `{}` statement {}; obligations are deduplicated by `Id`, so give different obligations different Ids",
                            o.id, at.policy, at.index
                        ),
                    });
                }
                Some(_) => {}
            }
        }
    }
}

#[derive(Default)]
struct Usage {
    identity: Vec<usize>,
    resource: Vec<usize>,
}

fn compile_document(
    name: &str,
    doc: &Json,
    p: &mut Problems<'_>,
    statements: &mut Vec<Stmt>,
    cold: &mut Vec<Cold>,
    shared: &mut Interner,
    obligations: &mut Vec<Obligation>,
) {
    let Some(obj) = doc.as_object() else {
        p.add(
            None,
            "a policy document must be an object with `Version` and `Statement`",
        );
        return;
    };
    for k in obj.keys() {
        if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
            p.add(
                Some(k),
                format!("unknown policy element `{k}` (expected `Version`, `Id`, `Statement`)"),
            );
        }
    }
    let variables = match obj.get("Version") {
        Some(Json::String(v)) if v == "2012-10-17" => true,
        Some(Json::String(v)) if v == "2008-10-17" => false,
        None => false,
        Some(v) => {
            p.add(
                Some("Version"),
                format!("unsupported `Version` {v} (expected `2012-10-17` or `2008-10-17`)"),
            );
            true
        }
    };
    if let Some(id) = obj.get("Id") {
        if !id.is_string() {
            p.add(Some("Id"), "`Id` must be a string");
        }
    }
    let list: Vec<&Json> = match obj.get("Statement") {
        Some(Json::Array(a)) => a.iter().collect(),
        Some(o @ Json::Object(_)) => vec![o],
        Some(_) => {
            p.add(
                Some("Statement"),
                "`Statement` must be an object or an array of objects",
            );
            return;
        }
        None => {
            p.add(Some("Statement"), "missing `Statement`");
            return;
        }
    };
    let mut sids: FastMap<&str, usize> = FastMap::default();
    for (index, raw) in list.into_iter().enumerate() {
        // A scan comparing lengths first: cheaper than the ordered map's search.
        let sid = raw
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.as_str() == "Sid"))
            .and_then(|(_, v)| v.as_str());
        let mut sp = Problems {
            file: p.file,
            statement: Some(index),
            sid,
            out: p.out,
        };
        if let Some(s) = sid {
            if let Some(first) = sids.insert(s, index) {
                sp.add(
                    Some("Sid"),
                    format!("duplicate `Sid` `{s}` (also statement {first})"),
                );
            }
        }
        if let Some(stmt) = compile_statement(
            name,
            index,
            sid.map(str::to_owned),
            raw,
            &Env {
                variables,
                known: &|inputs| shared.known(inputs),
            },
            &mut sp,
            obligations,
        ) {
            let (mut stmt, mut c, compiled) = stmt;
            let mut ids: smallvec::SmallVec<[u32; CondIds::INLINE]> = smallvec::SmallVec::new();
            for cond in compiled {
                c.labels.push(cond.label);
                ids.push(shared.intern(cond.made));
            }
            stmt.conditions = CondIds::new(&ids, &mut shared.shared.overflow);
            stmt.resource = Res::new(&stmt.resources, |head| shared.head(head));
            statements.push(stmt);
            cold.push(c);
        }
    }
}

fn string_list<'j>(v: &'j Json, field: &str, p: &mut Problems<'_>) -> Option<Vec<&'j str>> {
    let items: Vec<&Json> = match v {
        Json::String(_) => vec![v],
        Json::Array(a) if !a.is_empty() => a.iter().collect(),
        Json::Array(_) => {
            p.add(Some(field), "must not be an empty list");
            return None;
        }
        _ => {
            p.add(Some(field), "must be a string or a list of strings");
            return None;
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        match i.as_str() {
            Some(s) if !s.is_empty() => out.push(s),
            Some(_) => p.add(Some(field), "contains an empty string"),
            None => p.add(Some(field), format!("`{i}` is not a string")),
        }
    }
    Some(out)
}

/// Picks exactly one of `a` / `b`.
fn one_of<'j>(
    (va, vb): (Option<&'j Json>, Option<&'j Json>),
    a: &str,
    b: &str,
    required: bool,
    p: &mut Problems<'_>,
) -> Option<(bool, &'j Json)> {
    match (va, vb) {
        (Some(_), Some(_)) => {
            p.add(
                Some(a),
                format!("a statement has either `{a}` or `{b}`, not both"),
            );
            None
        }
        (Some(v), None) => Some((false, v)),
        (None, Some(v)) => Some((true, v)),
        (None, None) => {
            if required {
                p.add(Some(a), format!("missing `{a}` (or `{b}`)"));
            }
            None
        }
    }
}

/// A statement's elements, found in one pass over its keys (each lookup in a JSON object
/// is a search of an ordered map).
#[derive(Default)]
struct Fields<'j> {
    sid: Option<&'j Json>,
    effect: Option<&'j Json>,
    action: Option<&'j Json>,
    not_action: Option<&'j Json>,
    resource: Option<&'j Json>,
    not_resource: Option<&'j Json>,
    principal: Option<&'j Json>,
    not_principal: Option<&'j Json>,
    condition: Option<&'j Json>,
    obligations: Option<&'j Json>,
}

/// What compiling a statement takes from its document and its set.
#[derive(Clone, Copy)]
struct Env<'a> {
    /// Whether policy variables apply (the document's `Version`).
    variables: bool,
    /// The index of the condition the set already has, compiled from exactly these
    /// inputs, if any.
    known: &'a dyn Fn(&[u8]) -> Option<u32>,
}

fn compile_statement(
    policy: &str,
    index: usize,
    sid: Option<String>,
    raw: &Json,
    env: &Env<'_>,
    p: &mut Problems<'_>,
    obligations: &mut Vec<Obligation>,
) -> Option<(Stmt, Cold, Vec<condition::Compiled>)> {
    let Env { variables, known } = *env;
    let Some(obj) = raw.as_object() else {
        p.add(None, "a statement must be an object");
        return None;
    };
    let before = p.out.len();
    let mut f = Fields::default();
    for (k, v) in obj {
        let slot = match k.as_str() {
            "Sid" => &mut f.sid,
            "Effect" => &mut f.effect,
            "Action" => &mut f.action,
            "NotAction" => &mut f.not_action,
            "Resource" => &mut f.resource,
            "NotResource" => &mut f.not_resource,
            "Principal" => &mut f.principal,
            "NotPrincipal" => &mut f.not_principal,
            "Condition" => &mut f.condition,
            "Obligations" => &mut f.obligations,
            _ => {
                p.add(
                    Some(k),
                    format!(
                        "unknown statement element `{k}` (expected one of {})",
                        STATEMENT_KEYS.join(", ")
                    ),
                );
                continue;
            }
        };
        *slot = Some(v);
    }
    if let Some(s) = f.sid {
        if !s.is_string() {
            p.add(Some("Sid"), "`Sid` must be a string");
        }
    }
    let effect = match f.effect {
        Some(Json::String(e)) if e == "Allow" => Some(Effect::Allow),
        Some(Json::String(e)) if e == "Deny" => Some(Effect::Deny),
        Some(e) => {
            p.add(
                Some("Effect"),
                format!("`Effect` must be `Allow` or `Deny`, not {e}"),
            );
            None
        }
        None => {
            p.add(Some("Effect"), "missing `Effect`");
            None
        }
    };

    let actions = one_of((f.action, f.not_action), "Action", "NotAction", true, p).and_then(|(negated, v)| {
        let field = if negated { "NotAction" } else { "Action" };
        let list = string_list(v, field, p)?;
        let mut patterns = Vec::with_capacity(list.len());
        for a in &list {
            let valid = *a == "*"
                || a.split_once(':').is_some_and(|(svc, act)| !svc.is_empty() && !act.is_empty())
                    && !a.contains(char::is_whitespace);
            if valid {
                patterns.push(Pattern::new(a, true));
            } else {
                p.add(Some(field), format!("`{a}` is not an action: expected `service:Action` (wildcards allowed) or `*`"));
            }
        }
        Some((negated, patterns.into_boxed_slice()))
    });

    let resources = one_of(
        (f.resource, f.not_resource),
        "Resource",
        "NotResource",
        true,
        p,
    )
    .and_then(|(negated, v)| {
        let field = if negated { "NotResource" } else { "Resource" };
        let list = string_list(v, field, p)?;
        let mut patterns = Vec::with_capacity(list.len());
        for r in &list {
            match res_pat(r, variables) {
                Ok(pat) => patterns.push(pat),
                Err(e) => p.add(Some(field), e),
            }
        }
        Some(Resources {
            negated,
            patterns: patterns.into_iter().collect(),
        })
    });

    let principal = one_of(
        (f.principal, f.not_principal),
        "Principal",
        "NotPrincipal",
        false,
        p,
    )
    .and_then(|(negated, v)| compile_principal(negated, v, p))
    .map(Box::new);

    let mut conditions = Vec::new();
    let mut condition_labels = String::new();
    if let Some(c) = f.condition {
        match c.as_object() {
            Some(ops) => {
                let mut errs = Vec::new();
                for (op, body) in ops {
                    condition::compile(
                        op,
                        body,
                        variables,
                        known,
                        &mut conditions,
                        &mut condition_labels,
                        &mut errs,
                    );
                }
                for (field, msg) in errs {
                    p.add(Some(&field), msg);
                }
            }
            None => p.add(
                Some("Condition"),
                "`Condition` must be an object of operators",
            ),
        }
    }

    // The statement's obligations are pushed one after another: a range of the set's list.
    let first_obligation = u32::try_from(obligations.len()).unwrap_or(u32::MAX);
    if let Some(o) = f.obligations {
        match o.as_array() {
            Some(list) => {
                for (i, item) in list.iter().enumerate() {
                    match parse_obligation(item) {
                        Ok(ob) => obligations.push(ob),
                        Err(e) => p.add(Some(&format!("Obligations[{i}]")), e),
                    }
                }
            }
            None => p.add(Some("Obligations"), "`Obligations` must be a list"),
        }
    }

    if p.out.len() != before {
        return None;
    }
    let (negated, action_patterns) = actions?;
    let resources = resources?;
    let obligations = first_obligation..u32::try_from(obligations.len()).unwrap_or(u32::MAX);
    let stmt = Stmt {
        effect: effect?,
        // Exact ids and wildcard patterns are filled in by `ActionIds::assign`.
        actions_negated: negated,
        actions_exact: smallvec::SmallVec::new(),
        actions_wild: smallvec::SmallVec::new(),
        // Made (inline where it can be, with the set's shared pattern heads) when the
        // statement is added to the set.
        resource: crate::set::Res::Many,
        resources: resources.patterns,
        resources_negated: resources.negated,
        principal,
        // Filled in when the conditions are added to the set's.
        conditions: CondIds::default(),
        has_obligations: !obligations.is_empty(),
    };
    let cold = Cold {
        info: StatementInfo {
            policy: policy.to_owned(),
            sid,
            index,
            effect: effect?,
        },
        obligations,
        actions: action_patterns,
        condition_digest: f.condition.map_or(0, crate::set::json_digest),
        condition_labels: condition_labels.into_boxed_str(),
        labels: smallvec::SmallVec::new(),
    };
    Some((stmt, cold, conditions))
}

fn compile_principal(negated: bool, v: &Json, p: &mut Problems<'_>) -> Option<Principals> {
    let field = if negated { "NotPrincipal" } else { "Principal" };
    let mut out = Principals {
        negated,
        anyone: false,
        users: Box::new([]),
        roles: Box::new([]),
    };
    let mut users = Vec::new();
    let mut roles = Vec::new();
    match v {
        Json::String(s) if s == "*" => out.anyone = true,
        Json::Object(map) if !map.is_empty() => {
            for (kind, vals) in map {
                let kfield = format!("{field}.{kind}");
                if !matches!(
                    kind.as_str(),
                    "PDP" | "AWS" | "Service" | "Federated" | "CanonicalUser"
                ) {
                    p.add(Some(&kfield), format!("unknown principal type `{kind}` (expected `PDP`, `AWS`, `Service`, `Federated` or `CanonicalUser`)"));
                    continue;
                }
                let Some(list) = string_list(vals, &kfield, p) else {
                    continue;
                };
                for item in list {
                    if item == "*" {
                        out.anyone = true;
                    } else if kind == "PDP" {
                        if let Some(u) = item.strip_prefix("user:") {
                            users.push(Pattern::new(u, false));
                        } else if let Some(r) = item.strip_prefix("role:") {
                            roles.push(Pattern::new(r, false));
                        } else {
                            p.add(
                                Some(&kfield),
                                format!("`{item}` must start with `user:` or `role:` (or be `*`)"),
                            );
                        }
                    } else {
                        users.push(Pattern::new(item, false));
                    }
                }
            }
        }
        _ => {
            p.add(Some(field), format!("`{field}` must be `\"*\"` or an object such as {{\"PDP\": [\"user:alice\", \"role:Auditor\"]}}"));
            return None;
        }
    }
    out.users = users.into_boxed_slice();
    out.roles = roles.into_boxed_slice();
    Some(out)
}
