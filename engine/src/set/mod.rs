//! The compiled, immutable policy set: statements stored once (their hot part in
//! [`layout`], the rest in [`Cold`]), referenced by index from the bindings' attachments
//! (roles, subjects, guardrails, resource patterns), each with an action [`index`]; and the
//! set's limits and read-only accessors.
//!
//! This module and those under it hold data and read it. They may not compile documents
//! (that is `crate::compile`), read files (`crate::load`) or decide (`crate::eval`): those
//! depend on this, never the other way.

mod actions;
mod bindings;
mod index;
mod layout;
mod revision;

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::FixedState;

use crate::types::{Obligation, StatementInfo};

pub(crate) use actions::{ActionIds, Placer};
pub use bindings::{Attachment, Bindings, ResourceAttachment, BINDINGS_FILE};
#[cfg(test)]
pub(crate) use index::Entry;
pub(crate) use index::{
    stmt_flags, Index, ResourceIndex, DENY, HAS_PRINCIPAL, KNOWN_ACTION, NOT_RESOURCE, OBLIGATIONS,
};
pub(crate) use layout::{res_pat, Cold, CondIds, Principals, Res, ResPat, Resources, Shared, Stmt};
pub(crate) use revision::{document_digest, json_digest, revision_of};

/// Largest policy or bindings document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Most policy documents in one set.
pub const MAX_POLICIES: usize = 100_000;
/// Most statements in one set.
pub const MAX_STATEMENTS: usize = 1_000_000;

/// Compiled identity attachment.
#[derive(Debug, Clone, Default)]
pub(crate) struct CAttachment {
    pub(crate) identity: Index,
    /// Boxed: most roles have none, and the hash map's buckets stay small.
    pub(crate) boundary: Option<Box<Index>>,
}

/// What the directory says of a subject.
#[derive(Debug, Clone, Default)]
pub(crate) struct Directory {
    pub(crate) roles: Vec<crate::request::Text>,
    pub(crate) tags: BTreeMap<crate::request::Text, crate::request::Text>,
}

/// Per-policy metadata.
#[derive(Debug, Clone)]
pub(crate) struct PolicyMeta {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) statements: std::ops::Range<u32>,
}

/// Keys up to 24 bytes (most role names and subject ids) are stored inline, so a lookup
/// compares them without reading another allocation.
type Map<V> = HashMap<compact_str::CompactString, V, FixedState>;

/// A map looked up by bytes (folded action names, which a decision keeps as bytes); keys
/// up to 24 bytes inline.
pub(crate) type ByteMap<V> = HashMap<smallvec::SmallVec<[u8; 24]>, V, FixedState>;

/// A compiled, immutable, `Send + Sync` policy set. Build with [`PolicySet::builder`] or
/// [`PolicySet::load_dir`]; ask with [`PolicySet::decide`].
#[derive(Debug)]
pub struct PolicySet {
    pub(crate) statements: Vec<Stmt>,
    /// Per statement (same index): what only outcomes, the linter and tests read.
    pub(crate) cold: Vec<Cold>,
    pub(crate) shared: Shared,
    pub(crate) obligations: Vec<Obligation>,
    /// For each obligation, the index of the first obligation with the same `Id`.
    pub(crate) obligation_keys: Vec<u32>,
    pub(crate) policies: Vec<PolicyMeta>,
    pub(crate) action_ids: ActionIds,
    pub(crate) roles: Map<CAttachment>,
    pub(crate) subjects: Map<CAttachment>,
    /// Subjects with directory roles or tags.
    pub(crate) directory: Map<Directory>,
    pub(crate) guardrails: Index,
    pub(crate) guardrails_have_allow: bool,
    pub(crate) resources: ResourceIndex,
    pub(crate) bindings: Bindings,
    pub(crate) revision: String,
}

/// The format of a policy document's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

impl PolicySet {
    /// The set's revision: a digest of its documents and bindings.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Whether any condition reads the context key `name` (case-insensitive), as its key or
    /// in a policy variable. Walks every statement: callers keep the answer per revision.
    pub fn reads_context_key(&self, name: &str) -> bool {
        // Every condition in the list is some statement's.
        self.shared.conditions.iter().any(|c| {
            c.keys()
                .iter()
                .any(|k| matches!(k, crate::keys::Key::Context(n) if n.eq_ignore_ascii_case(name)))
        })
    }

    /// The number of statements.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// Policy names, in the order they were added.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|p| p.name.as_str())
    }

    /// The bindings the set was built with.
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Every statement's location, in order.
    pub fn statements(&self) -> impl Iterator<Item = &StatementInfo> {
        self.cold.iter().map(|c| &c.info)
    }

    /// The actions the statements name without a wildcard (in `Action` or `NotAction`),
    /// each once, folded to lower case as the set compares them, in no particular order.
    pub fn named_actions(&self) -> impl Iterator<Item = &str> {
        self.action_ids
            .by_id
            .iter()
            .filter_map(|(name, _)| std::str::from_utf8(name).ok())
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<PolicySet>();
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(clippy::unwrap_used)]
    fn named_actions_are_the_exact_ones_folded_once() {
        let set = crate::PolicySet::builder()
            .policy_yaml(
                "p",
                r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: ["doc:Read", "doc:*", "s3:Get*"]
    Resource: "*"
  - Effect: Deny
    NotAction: ["DOC:READ", "iam:CreateUser"]
    Resource: "*"
"#,
            )
            .bindings_yaml("b", "roles: { R: { policies: [p] } }")
            .build()
            .unwrap();
        let mut names: Vec<&str> = set.named_actions().collect();
        names.sort_unstable();
        assert_eq!(names, ["doc:read", "iam:createuser"]);
    }

    #[test]
    fn context_keys_read_by_conditions_and_variables_are_known() {
        let policy = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*",
            "Resource": "arn:aws:s3:::b/${pdp:DeviceId}/*",
            "Condition": {"NumericLessThan": {"pdp:SessionAge": "3600"}}}}"#;
        let set = super::PolicySet::builder()
            .policy_json("p", policy)
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(set.reads_context_key("pdp:sessionage"));
        assert!(set.reads_context_key("PDP:SessionAge"));
        assert!(!set.reads_context_key("pdp:RiskLevel"));
        // Resource patterns are not conditions.
        assert!(!set.reads_context_key("pdp:DeviceId"));
    }
    #[test]
    fn equal_conditions_are_kept_once_and_statements_keep_their_own() {
        let policy = |version: &str| {
            format!(
                r#"{{"Version": "{version}", "Statement": [
                {{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                  "Condition": {{"Bool": {{"aws:MultiFactorAuthPresent": "true"}},
                                "StringEquals": {{"aws:PrincipalTag/team": "${{aws:username}}"}}}}}},
                {{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*",
                  "Condition": {{"Bool": {{"aws:MultiFactorAuthPresent": "true"}}}}}},
                {{"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                  "Condition": {{"Bool": {{"aws:MultiFactorAuthPresent": "false"}},
                                "NumericLessThan": {{"pdp:Risk": [1, 2, 3, 4]}},
                                "IpAddress": {{"aws:SourceIp": "10.0.0.0/8"}},
                                "StringLike": {{"aws:userid": "a*"}}}}}}]}}"#
            )
        };
        let set = super::PolicySet::builder()
            .policy_json("new", &policy("2012-10-17"))
            .policy_json("old", &policy("2008-10-17"))
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        // MFA true and false, the tag compared with a variable (2012-10-17) and with the
        // literal text (2008-10-17: no variables), the risk list, the network, the pattern.
        assert_eq!(set.shared.conditions.len(), 7);
        let counts: Vec<usize> = set
            .statements
            .iter()
            .map(|s| set.shared.of(&s.conditions).count())
            .collect();
        assert_eq!(counts, [2, 1, 4, 2, 1, 4]);
        let labels: Vec<&str> = set
            .cold
            .iter()
            .flat_map(|c| c.labels.iter().map(|l| l.operator(&c.condition_labels)))
            .collect();
        assert_eq!(labels.len(), 14);
        // Operators in name order, as the document map keeps them.
        assert_eq!(
            labels.get(2..6),
            Some(&["Bool", "Bool", "IpAddress", "NumericLessThan"][..])
        );
    }
}
