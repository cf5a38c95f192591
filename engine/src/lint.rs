//! Least-privilege findings over a policy set, in the four classes IAM Access Analyzer uses:
//! errors, security warnings, warnings and suggestions. Each finding names the file, the
//! statement and a fix.

use std::fmt;

use serde::Serialize;

use crate::condition::Qualifier;
use crate::error::CompileErrors;
use crate::keys::Key;
use crate::set::{Cold, PolicySet, ResPat, Stmt};
use crate::types::Effect;

/// A statement as the linter reads it: the compiled statement and its [`Cold`] part.
struct View<'a> {
    stmt: &'a Stmt,
    cold: &'a Cold,
}

impl std::ops::Deref for View<'_> {
    type Target = Stmt;
    fn deref(&self) -> &Stmt {
        self.stmt
    }
}

impl PolicySet {
    fn view(&self, id: u32) -> Option<View<'_>> {
        Some(View {
            stmt: self.statements.get(id as usize)?,
            cold: self.cold.get(id as usize)?,
        })
    }
}

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The policy set is invalid.
    Error,
    /// Grants more than least privilege, or access that is easy to misuse.
    SecurityWarning,
    /// Probably not what the author meant.
    Warning,
    /// Could be simpler.
    Suggestion,
}

impl Severity {
    /// `error`, `security_warning`, `warning` or `suggestion`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::SecurityWarning => "security_warning",
            Severity::Warning => "warning",
            Severity::Suggestion => "suggestion",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Its class.
    pub severity: Severity,
    /// A stable identifier, e.g. `ALLOW_ALL_ACTIONS`.
    pub code: &'static str,
    /// The file.
    pub file: String,
    /// The policy, when the finding is about one.
    pub policy: Option<String>,
    /// Zero-based statement index.
    pub statement: Option<usize>,
    /// The statement's Sid.
    pub sid: Option<String>,
    /// What was found.
    pub message: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity.as_str(), self.file)?;
        if let Some(i) = self.statement {
            write!(f, ": statement {i}")?;
            if let Some(sid) = &self.sid {
                write!(f, " (Sid `{sid}`)")?;
            }
        }
        write!(
            f,
            ": {} [{}]\n    fix: {}",
            self.message, self.code, self.fix
        )
    }
}

/// Compile errors as `error` findings, for a set that could not be built.
pub fn from_compile_errors(errors: &CompileErrors) -> Vec<Finding> {
    errors
        .0
        .iter()
        .map(|e| Finding {
            severity: Severity::Error,
            code: "INVALID_POLICY",
            file: e.file.clone(),
            policy: None,
            statement: e.statement,
            sid: e.sid.clone(),
            message: match &e.field {
                Some(field) => format!("{field}: {}", e.message),
                None => e.message.clone(),
            },
            fix: "correct the element as the message says; the set is rejected until then".into(),
        })
        .collect()
}

/// Condition keys every request may carry, beyond service-specific ones (lower-case).
const KNOWN_KEYS: &[&str] = &[
    "aws:sourceip",
    "aws:multifactorauthpresent",
    "aws:multifactorauthage",
    "aws:securetransport",
    "aws:tagkeys",
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principalorgid",
    "aws:principalorgpaths",
    "aws:principaltype",
    "aws:principalisawsservice",
    "aws:principalservicename",
    "aws:sourcevpc",
    "aws:sourcevpce",
    "aws:vpcsourceip",
    "aws:sourcearn",
    "aws:sourceaccount",
    "aws:sourceorgid",
    "aws:sourceorgpaths",
    "aws:sourceidentity",
    "aws:referer",
    "aws:useragent",
    "aws:requestedregion",
    "aws:tokenissuetime",
    "aws:viaawsservice",
    "aws:calledvia",
    "aws:calledviafirst",
    "aws:calledvialast",
    "aws:federatedprovider",
    "aws:resourceaccount",
    "aws:resourceorgid",
    "aws:resourceorgpaths",
    "aws:ec2instancesourcevpc",
    "aws:ec2instancesourceprivateipv4",
    "aws:isMcpServiceAction",
    "pdp:risklevel",
    "pdp:riskscore",
    "pdp:devicecompliant",
    "pdp:assurancelevel",
    "pdp:sessionage",
    "pdp:deviceid",
    "pdp:sessionid",
    "pdp:assurancenamespace",
    "pdp:subjecttype",
    "pdp:resourcetype",
    "http:method",
    "http:path",
    "http:host",
    "http:route",
];

/// Families of keys every request may carry (lower-case prefixes).
const KNOWN_PREFIXES: &[&str] = &[
    "aws:requesttag/",
    "pdp:subjectproperty/",
    "pdp:resourceproperty/",
    "pdp:actionproperty/",
    "http:header/",
    "envoy:contextextension/",
];

/// Global keys that can hold several values in a request.
const MULTIVALUED_KEYS: &[&str] = &[
    "aws:TagKeys",
    "aws:PrincipalOrgPaths",
    "aws:ResourceOrgPaths",
    "aws:CalledVia",
    "aws:PrincipalServiceNamesList",
    "aws:SourceOrgPaths",
];

/// Whether a key is single-valued by definition (identity, tags, network, MFA, time).
fn single_valued(key: &Key) -> bool {
    match key {
        Key::Username
        | Key::Userid
        | Key::PrincipalTag(_)
        | Key::ResourceTag(_)
        | Key::CurrentTime
        | Key::EpochTime => true,
        Key::Context(name) => {
            [
                "aws:SourceIp",
                "aws:MultiFactorAuthPresent",
                "aws:MultiFactorAuthAge",
                "aws:SecureTransport",
                "aws:SourceVpc",
                "aws:SourceVpce",
                "aws:PrincipalArn",
                "aws:PrincipalAccount",
                "aws:PrincipalOrgID",
                "aws:RequestedRegion",
                "aws:TokenIssueTime",
                "aws:UserAgent",
                "aws:Referer",
                "aws:SourceArn",
                "aws:SourceAccount",
                "aws:PrincipalType",
                "aws:ViaAWSService",
            ]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name))
                || name.to_ascii_lowercase().starts_with("aws:requesttag/")
        }
    }
}

/// Verbs of actions that only read.
const READ_VERBS: &[&str] = &[
    "get", "list", "describe", "head", "search", "query", "scan", "select", "lookup", "filter",
    "batchget", "check", "validate", "view", "read", "test", "preview", "estimate",
];

struct Ctx<'a> {
    set: &'a PolicySet,
    out: Vec<Finding>,
}

impl Ctx<'_> {
    fn add(
        &mut self,
        s: &View<'_>,
        severity: Severity,
        code: &'static str,
        message: String,
        fix: &str,
    ) {
        let file = self
            .set
            .policies
            .iter()
            .find(|p| p.name == s.cold.info.policy)
            .map_or_else(|| s.cold.info.policy.clone(), |p| p.origin.clone());
        self.out.push(Finding {
            severity,
            code,
            file,
            policy: Some(s.cold.info.policy.clone()),
            statement: Some(s.cold.info.index),
            sid: s.cold.info.sid.clone(),
            message,
            fix: fix.to_owned(),
        });
    }
}

/// Lints a compiled set. Findings come sorted by severity, then file and statement.
pub fn lint(set: &PolicySet) -> Vec<Finding> {
    let mut cx = Ctx {
        set,
        out: Vec::new(),
    };
    let break_glass = break_glass_policies(set);
    for (stmt, cold) in set.statements.iter().zip(&set.cold) {
        let s = &View { stmt, cold };
        statement_findings(&mut cx, s, break_glass.contains(&s.cold.info.policy));
    }
    redundant_statements(&mut cx);
    unused_policies(&mut cx);
    cx.out.sort_by(|a, b| {
        (a.severity, &a.file, a.statement).cmp(&(b.severity, &b.file, b.statement))
    });
    cx.out
}

fn is_break_glass_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace(['-', '_', ' '], "");
    n.contains("breakglass") || n.contains("emergency")
}

/// Policies attached to roles or subjects whose names mark them as break-glass, and
/// policies so named themselves.
fn break_glass_policies(set: &PolicySet) -> Vec<String> {
    let mut out: Vec<String> = set
        .policies
        .iter()
        .filter(|p| is_break_glass_name(&p.name))
        .map(|p| p.name.clone())
        .collect();
    for (name, a) in set
        .bindings
        .roles
        .iter()
        .chain(set.bindings.subjects.iter())
    {
        if is_break_glass_name(name) {
            out.extend(a.policies.iter().cloned());
        }
    }
    out
}

fn is_write_action(action_text: &str) -> bool {
    let name = action_text
        .split_once(':')
        .map_or(action_text, |(_, n)| n)
        .to_ascii_lowercase();
    !READ_VERBS.iter().any(|v| name.starts_with(v)) || name.starts_with('*')
}

fn statement_findings(cx: &mut Ctx<'_>, s: &View<'_>, break_glass: bool) {
    let allow = s.cold.info.effect == Effect::Allow;
    let actions: Vec<String> = s.cold.actions.iter().map(|p| p.text()).collect();
    if allow && !s.actions_negated {
        if actions.iter().any(|a| a == "*") {
            cx.add(
                s,
                Severity::SecurityWarning,
                "ALLOW_ALL_ACTIONS",
                "Allow with `Action: \"*\"` grants every action of every service".into(),
                "list the specific actions the principal needs",
            );
        } else {
            for a in actions.iter().filter(|a| a.ends_with(":*")) {
                cx.add(
                    s,
                    Severity::SecurityWarning,
                    "ALLOW_SERVICE_WILDCARD",
                    format!("Allow with `{a}` grants every action of the service"),
                    "list the specific actions, or a narrower pattern such as `service:Get*`",
                );
            }
        }
        let all_resources = s
            .resources
            .iter()
            .any(|r| matches!(r, ResPat::Static(p) if p.is_any()));
        if !s.resources_negated && all_resources {
            let writes: Vec<&String> = actions.iter().filter(|a| is_write_action(a)).collect();
            if !writes.is_empty() {
                cx.add(
                    s,
                    Severity::SecurityWarning,
                    "WRITE_ON_ALL_RESOURCES",
                    format!(
                        "Allow of write actions ({}) on `Resource: \"*\"`",
                        writes
                            .iter()
                            .map(|a| format!("`{a}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "scope `Resource` to the ARNs the actions need",
                );
            }
        }
    }
    if allow && s.actions_negated {
        cx.add(s, Severity::SecurityWarning, "ALLOW_WITH_NOT_ACTION",
            "Allow with `NotAction` grants every action not listed, including ones added to services later".into(),
            "use `Action` with the actions to allow");
    }
    if allow && s.resources_negated {
        cx.add(
            s,
            Severity::SecurityWarning,
            "ALLOW_WITH_NOT_RESOURCE",
            "Allow with `NotResource` grants access to every resource not listed".into(),
            "use `Resource` with the resources to allow",
        );
    }
    if let Some(p) = &s.principal {
        if allow && p.negated {
            cx.add(
                s,
                Severity::SecurityWarning,
                "ALLOW_WITH_NOT_PRINCIPAL",
                "Allow with `NotPrincipal` grants access to everyone not listed".into(),
                "use `Principal` with the principals to allow",
            );
        }
        if allow && !p.negated && p.anyone && s.conditions.is_empty() {
            cx.add(
                s,
                Severity::SecurityWarning,
                "ALLOW_ANY_PRINCIPAL",
                "resource policy allows any principal (`*`) with no condition".into(),
                "name the principals, or add conditions that restrict who gets access",
            );
        }
    }
    let labels = &*s.cold.condition_labels;
    let set = cx.set;
    for (c, label) in set.shared.of(&s.conditions).zip(s.cold.labels.iter()) {
        if allow && c.qualifier == Qualifier::ForAllValues {
            cx.add(s, Severity::SecurityWarning, "ALLOW_WITH_FOR_ALL_VALUES",
                format!("`{}` on an Allow is true when `{}` is missing or empty, so it can allow requests that carry no values", label.operator(labels), label.key_name(labels)),
                "use `ForAnyValue:` or add a `Null` condition requiring the key to be present");
        }
        if c.literal_wildcards() {
            cx.add(
                s,
                Severity::Warning,
                "WILDCARD_WITHOUT_LIKE",
                format!(
                    "`{}` compares `*`/`?` in its values for `{}` literally",
                    label.operator(labels),
                    label.key_name(labels)
                ),
                "use `StringLike` (or `StringNotLike`) to match wildcards",
            );
        }
        let multivalued = MULTIVALUED_KEYS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(label.key_name(labels)));
        if c.qualifier == Qualifier::None && multivalued {
            cx.add(s, Severity::Warning, "MULTIVALUED_KEY_WITHOUT_SET_OPERATOR",
                format!("`{}` can hold several values, but `{}` has no `ForAnyValue:`/`ForAllValues:` qualifier", label.key_name(labels), label.operator(labels)),
                "say how the values combine: `ForAnyValue:` (at least one) or `ForAllValues:` (every one)");
        }
        if c.qualifier != Qualifier::None && single_valued(&c.key) {
            cx.add(s, Severity::Warning, "SET_OPERATOR_ON_SINGLE_VALUED_KEY",
                format!("`{}` holds one value, so `{}` can be more permissive than intended (`ForAllValues:` is true when it is missing)", label.key_name(labels), label.operator(labels)),
                "drop the `ForAnyValue:`/`ForAllValues:` qualifier");
        }
        for key in c.keys() {
            if let Some(name) = unknown_key(key, &actions) {
                cx.add(s, Severity::Warning, "UNKNOWN_CONDITION_KEY",
                    format!("condition key `{name}` is neither a global key nor a key of the services in this statement's actions"),
                    "check the key's spelling; requests without it never satisfy a positive operator");
            }
        }
    }
    redundant_within(cx, s, &actions);
    if allow && break_glass && !s.has_obligations {
        cx.add(
            s,
            Severity::SecurityWarning,
            "BREAK_GLASS_WITHOUT_OBLIGATION",
            "break-glass Allow carries no obligation, so its use is neither notified nor audited"
                .into(),
            "add `Obligations` with a `notification` and an `audit` entry",
        );
    }
}

fn unknown_key(key: &Key, actions: &[String]) -> Option<String> {
    let Key::Context(written) = key else {
        return None;
    };
    let name = written.to_lowercase();
    if KNOWN_KEYS.iter().any(|k| k.eq_ignore_ascii_case(&name))
        || KNOWN_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        return None;
    }
    let service = name.split_once(':').map(|(s, _)| s)?;
    let known_service = actions.iter().any(|a| {
        a == "*"
            || a.split_once(':')
                .is_some_and(|(svc, _)| svc == service || svc.contains('*'))
    });
    (service == "aws" || !known_service).then(|| written.to_string())
}

/// Indices of the patterns covered by another in the list (of equal ones, the later).
fn covered_entries(pats: &[&crate::pattern::Pattern]) -> Vec<usize> {
    (0..pats.len())
        .filter(|&i| {
            pats.get(i).is_some_and(|p| {
                pats.iter()
                    .enumerate()
                    .any(|(j, q)| i != j && p.covered_by(q) && !(q.covered_by(p) && j > i))
            })
        })
        .collect()
}

fn redundant_within(cx: &mut Ctx<'_>, s: &View<'_>, actions: &[String]) {
    let pats: Vec<&crate::pattern::Pattern> = s.cold.actions.iter().collect();
    for i in covered_entries(&pats) {
        cx.add(
            s,
            Severity::Suggestion,
            "REDUNDANT_ACTION",
            format!(
                "action `{}` is already covered by another action in the statement",
                actions.get(i).map_or("", String::as_str)
            ),
            "remove the redundant action",
        );
    }
    let res: Vec<&crate::pattern::Pattern> = s
        .resources
        .iter()
        .filter_map(|r| match r {
            ResPat::Static(p) => Some(p),
            ResPat::Dynamic(_) => None,
        })
        .collect();
    for i in covered_entries(&res) {
        let text = res.get(i).map(|p| p.text()).unwrap_or_default();
        cx.add(
            s,
            Severity::Suggestion,
            "REDUNDANT_RESOURCE",
            format!("resource `{text}` is already covered by another resource in the statement"),
            "remove the redundant resource",
        );
    }
}

/// Whether every action and every (fixed) resource of `a` is covered by one of `b`'s.
fn targets_covered(a: &View<'_>, b: &View<'_>) -> bool {
    let actions = a
        .cold
        .actions
        .iter()
        .all(|p| b.cold.actions.iter().any(|q| p.covered_by(q)));
    let resources = a.resources.iter().all(|p| match p {
        ResPat::Static(p) => b
            .resources
            .iter()
            .any(|q| matches!(q, ResPat::Static(q) if p.covered_by(q))),
        ResPat::Dynamic(_) => false,
    });
    actions && resources
}

/// A statement is redundant when another of the same policy, with the same effect and
/// conditions, covers all its actions and resources.
fn redundant_statements(cx: &mut Ctx<'_>) {
    let set = cx.set;
    for meta in &set.policies {
        let ids: Vec<u32> = meta.statements.clone().collect();
        for &a in &ids {
            let Some(sa) = set.view(a) else {
                continue;
            };
            let covered_by = ids.iter().filter(|&&b| b != a).find_map(|&b| {
                let sb = set.view(b)?;
                let same_shape = sa.cold.info.effect == sb.cold.info.effect
                    && sa.cold.condition_digest == sb.cold.condition_digest
                    && !sa.actions_negated
                    && !sb.actions_negated
                    && !sa.resources_negated
                    && !sb.resources_negated
                    && sa.principal.is_none()
                    && sb.principal.is_none();
                let covers = same_shape && targets_covered(&sa, &sb);
                // Of two identical statements, report only the later one.
                let mutual = covers && targets_covered(&sb, &sa);
                (covers && (!mutual || b < a)).then_some(sb)
            });
            if let Some(sb) = covered_by {
                let other = sb.cold.info.sid.as_ref().map_or_else(
                    || format!("statement {}", sb.cold.info.index),
                    |s| format!("`{s}`"),
                );
                cx.add(&sa, Severity::Suggestion, "REDUNDANT_STATEMENT",
                    format!("every action and resource of this statement is already covered by {other} with the same effect and conditions"),
                    "remove the statement or merge it into the other");
            }
        }
    }
}

fn unused_policies(cx: &mut Ctx<'_>) {
    let b = &cx.set.bindings;
    for meta in &cx.set.policies {
        let used =
            b.roles.values().chain(b.subjects.values()).any(|a| {
                a.policies.contains(&meta.name) || a.boundary.as_ref() == Some(&meta.name)
            }) || b.guardrails.contains(&meta.name)
                || b.resources.iter().any(|r| r.policies.contains(&meta.name));
        if !used {
            cx.out.push(Finding {
                severity: Severity::Warning,
                code: "UNUSED_POLICY",
                file: meta.origin.clone(),
                policy: Some(meta.name.clone()),
                statement: None,
                sid: None,
                message: format!("policy `{}` is not attached by any binding, so it never applies", meta.name),
                fix: "attach it in bindings.yaml (roles, subjects, guardrails or resources) or delete it".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(policy: &str, bindings: &str) -> Vec<&'static str> {
        let set = PolicySet::builder()
            .policy_json("p", policy)
            .bindings_yaml("b", bindings)
            .build();
        match set {
            Ok(set) => lint(&set).into_iter().map(|f| f.code).collect(),
            Err(e) => vec![if e.0.is_empty() { "" } else { "COMPILE" }],
        }
    }

    const ROLE: &str = "roles: { R: { policies: [p] } }";

    #[test]
    fn allow_star_is_a_security_warning() {
        let c = codes(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::b/*"}}"#,
            ROLE,
        );
        assert!(c.contains(&"ALLOW_ALL_ACTIONS"), "{c:?}");
    }

    #[test]
    fn service_wildcard_and_write_on_all_resources_are_flagged() {
        let c = codes(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["s3:*","s3:PutObject"],"Resource":"*"}}"#,
            ROLE,
        );
        assert!(c.contains(&"ALLOW_SERVICE_WILDCARD"), "{c:?}");
        assert!(c.contains(&"WRITE_ON_ALL_RESOURCES"), "{c:?}");
        assert!(c.contains(&"REDUNDANT_ACTION"), "{c:?}");
    }

    #[test]
    fn read_actions_on_all_resources_are_fine() {
        let c = codes(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["ec2:Describe*","s3:ListAllMyBuckets"],"Resource":"*"}}"#,
            ROLE,
        );
        assert!(c.is_empty(), "{c:?}");
    }

    #[test]
    fn not_elements_and_for_all_values_on_allow_are_flagged() {
        let c = codes(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","NotAction":"iam:*","NotResource":"arn:aws:s3:::x"},
            {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*",
             "Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["a"]},"StringEquals":{"aws:RequestTag/x":"a*"}}}]}"#,
            ROLE,
        );
        for code in [
            "ALLOW_WITH_NOT_ACTION",
            "ALLOW_WITH_NOT_RESOURCE",
            "ALLOW_WITH_FOR_ALL_VALUES",
            "WILDCARD_WITHOUT_LIKE",
        ] {
            assert!(c.contains(&code), "{code} missing from {c:?}");
        }
    }

    #[test]
    fn unknown_keys_unused_policies_and_redundant_statements_are_reported() {
        let set = PolicySet::builder()
            .policy_json("p", r#"{"Version":"2012-10-17","Statement":[
                {"Sid":"A","Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::b/*","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
                {"Sid":"B","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/x","Condition":{"Bool":{"aws:SecureTransport":"true"}}},
                {"Sid":"C","Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/x","Condition":{"StringEquals":{"aws:SourceIpp":"1", "ec2:Region":"x", "s3:prefix":"y"}}}]}"#)
            .policy_json("orphan", r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"s3:GetObject","Resource":"*"}}"#)
            .bindings_yaml("b", ROLE)
            .build();
        let Ok(set) = set else {
            unreachable!("valid set")
        };
        let f = lint(&set);
        let redundant: Vec<_> = f
            .iter()
            .filter(|f| f.code == "REDUNDANT_STATEMENT")
            .map(|f| f.sid.as_deref())
            .collect();
        assert_eq!(redundant, vec![Some("B")]);
        let unknown: Vec<_> = f
            .iter()
            .filter(|f| f.code == "UNKNOWN_CONDITION_KEY")
            .map(|f| f.message.clone())
            .collect();
        assert_eq!(unknown.len(), 2, "{unknown:?}");
        assert!(f
            .iter()
            .any(|f| f.code == "UNUSED_POLICY" && f.policy.as_deref() == Some("orphan")));
    }

    #[test]
    fn set_operators_must_fit_the_key() {
        let c = codes(
            r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::b/*","Condition":{"StringNotEquals":{"aws:TagKeys":["a"]}}},
            {"Effect":"Deny","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*","Condition":{"ForAnyValue:IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}},
            {"Effect":"Deny","Action":"s3:ListBucket","Resource":"arn:aws:s3:::b","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["a"]}}}]}"#,
            ROLE,
        );
        assert_eq!(
            c.iter()
                .filter(|c| **c == "MULTIVALUED_KEY_WITHOUT_SET_OPERATOR")
                .count(),
            1,
            "{c:?}"
        );
        assert_eq!(
            c.iter()
                .filter(|c| **c == "SET_OPERATOR_ON_SINGLE_VALUED_KEY")
                .count(),
            1,
            "{c:?}"
        );
    }

    #[test]
    fn break_glass_allow_without_obligation_is_flagged() {
        let c = codes(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ec2:StopInstances","Resource":"arn:aws:ec2:*:*:instance/*"}}"#,
            "roles: { EmergencyRole: { policies: [p] } }",
        );
        assert!(c.contains(&"BREAK_GLASS_WITHOUT_OBLIGATION"), "{c:?}");
    }
}
