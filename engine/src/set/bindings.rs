//! The bindings (`bindings.yaml`) as written: how policies attach to requests. A serde
//! shape only; the compiler checks it and turns it into the set's attachments.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The file name of the bindings in a policy directory.
pub const BINDINGS_FILE: &str = "bindings.yaml";
/// How policies attach to requests (`bindings.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bindings {
    /// Role name -> its identity policies and optional permissions boundary.
    #[serde(default)]
    pub roles: BTreeMap<String, Attachment>,
    /// Subject id -> policies attached directly to it, and the subject's directory entry:
    /// roles and principal tags the PDP knows of it (merged with the request's; directory
    /// tags win over the request's under the same key).
    #[serde(default)]
    pub subjects: BTreeMap<String, Attachment>,
    /// Policies that apply to every request, like AWS SCPs.
    #[serde(default)]
    pub guardrails: Vec<String>,
    /// Resource-based policies, attached by resource pattern.
    #[serde(default)]
    pub resources: Vec<ResourceAttachment>,
}

/// Identity policies of a role or subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// Policy names.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Permissions boundary policy name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<String>,
    /// Subjects only: roles the subject holds, whatever the request says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Subjects only: principal tags (`aws:PrincipalTag/<key>`) the PDP knows of the subject.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Resource policies for resources matching a pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceAttachment {
    /// Resource id pattern (`*`, `?` wildcards, case-sensitive).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Policy names.
    pub policies: Vec<String>,
}
