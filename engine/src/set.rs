//! The compiled, immutable policy set and how it is built: documents (JSON, YAML or already
//! parsed values) and bindings go in; every problem is collected; a set with any problem is
//! rejected whole. Statements are stored once and referenced by index from the bindings'
//! attachments (roles, subjects, guardrails, resource patterns), each with an action index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::condition::Condition;
use crate::error::{CompileError, CompileErrors, LoadError};
use crate::keys::{parse_text, Parsed, Template};
use crate::pattern::Pattern;
use crate::types::{Obligation, ObligationType, StatementInfo};

/// Largest policy or bindings document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Most policy documents in one set.
pub const MAX_POLICIES: usize = 100_000;
/// Most statements in one set.
pub const MAX_STATEMENTS: usize = 1_000_000;

/// The file name of the bindings in a policy directory.
pub const BINDINGS_FILE: &str = "bindings.yaml";

/// How policies attach to requests (`bindings.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bindings {
    /// Role name -> its identity policies and optional permissions boundary.
    #[serde(default)]
    pub roles: BTreeMap<String, Attachment>,
    /// Subject id -> policies attached directly to it.
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

/// `Action` / `NotAction`.
#[derive(Debug, Clone)]
pub(crate) struct Actions {
    pub(crate) negated: bool,
    pub(crate) patterns: Box<[Pattern]>,
}

/// One `Resource` / `NotResource` entry.
#[derive(Debug, Clone)]
pub(crate) enum ResPat {
    Static(Pattern),
    Dynamic(Template),
}

#[derive(Debug, Clone)]
pub(crate) struct Resources {
    pub(crate) negated: bool,
    pub(crate) patterns: Box<[ResPat]>,
}

/// `Principal` / `NotPrincipal`.
#[derive(Debug, Clone)]
pub(crate) struct Principals {
    pub(crate) negated: bool,
    pub(crate) anyone: bool,
    /// `PDP: user:<pattern>`, and non-PDP principal values: matched against the subject id.
    pub(crate) users: Box<[Pattern]>,
    /// `PDP: role:<pattern>`: matched against each of the subject's roles.
    pub(crate) roles: Box<[Pattern]>,
}

/// A compiled statement.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub(crate) info: StatementInfo,
    pub(crate) actions: Actions,
    pub(crate) resources: Resources,
    pub(crate) principal: Option<Principals>,
    pub(crate) conditions: Box<[Condition]>,
    pub(crate) obligations: Box<[u32]>,
    /// A digest of the `Condition` element as written (0 when absent), so the linter can
    /// tell statements with the same conditions apart from others.
    pub(crate) condition_digest: u64,
}

/// Statement ids grouped by the service part of their actions (lower-case, sorted), with a
/// bucket for statements whose actions can match any service (`*`, `s*:...`, `NotAction`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    pub(crate) services: Box<[ServiceBucket]>,
    pub(crate) wildcard: Box<[u32]>,
    pub(crate) all: Box<[u32]>,
}

/// The statements whose actions name one service.
pub(crate) type ServiceBucket = (Box<str>, Box<[u32]>);

/// A document added to a builder: name, origin, parsed value or parse error.
pub(crate) type PendingDocument = (String, String, Result<serde_json::Value, String>);

/// Resource-policy attachments, bucketed by the first three parts of their pattern
/// (`arn:aws:s3`) when those are literal, so a request only tries the patterns of its own
/// partition and service.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResourceIndex {
    pub(crate) entries: Vec<(Pattern, Index)>,
    pub(crate) by_service: HashMap<Box<str>, Box<[u32]>, FixedState>,
    pub(crate) other: Box<[u32]>,
}

/// The text before the third `:` of an ARN-like string (`arn:aws:s3`), if it has one.
pub(crate) fn arn_service_prefix(s: &str) -> Option<&str> {
    let mut colons = s.match_indices(':').map(|(i, _)| i);
    let third = colons.nth(2)?;
    s.get(..third)
}

impl ResourceIndex {
    pub(crate) fn new(entries: Vec<(Pattern, Index)>) -> Self {
        let mut by_service: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut other = Vec::new();
        for (i, (pattern, _)) in entries.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let prefix = pattern.literal_prefix();
            match arn_service_prefix(&prefix) {
                Some(key) => by_service.entry(key.to_owned()).or_default().push(i),
                None => other.push(i),
            }
        }
        ResourceIndex {
            entries,
            by_service: by_service.into_iter().map(|(k, v)| (k.into_boxed_str(), v.into_boxed_slice())).collect(),
            other: other.into_boxed_slice(),
        }
    }

    /// The attachments whose pattern may match `resource`, in any order.
    pub(crate) fn candidates<'s>(&'s self, resource: &str) -> impl Iterator<Item = &'s (Pattern, Index)> {
        let bucket = arn_service_prefix(resource)
            .and_then(|k| self.by_service.get(k))
            .map_or(&[][..], |b| &b[..]);
        bucket
            .iter()
            .chain(self.other.iter())
            .filter_map(|&i| self.entries.get(i as usize))
    }
}

/// Compiled identity attachment.
#[derive(Debug, Clone, Default)]
pub(crate) struct CAttachment {
    pub(crate) identity: Index,
    pub(crate) boundary: Option<Index>,
}

/// Per-policy metadata.
#[derive(Debug, Clone)]
pub(crate) struct PolicyMeta {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) statements: std::ops::Range<u32>,
}

type Map<V> = HashMap<Box<str>, V, FixedState>;

/// A compiled, immutable, `Send + Sync` policy set. Build with [`PolicySet::builder`] or
/// [`PolicySet::load_dir`]; ask with [`PolicySet::decide`].
#[derive(Debug)]
pub struct PolicySet {
    pub(crate) statements: Vec<Stmt>,
    pub(crate) obligations: Vec<Obligation>,
    /// For each obligation, the index of the first obligation with the same `Id`.
    pub(crate) obligation_keys: Vec<u32>,
    pub(crate) policies: Vec<PolicyMeta>,
    pub(crate) roles: Map<CAttachment>,
    pub(crate) subjects: Map<CAttachment>,
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

/// Collects documents and bindings, then compiles them into a [`PolicySet`].
#[derive(Debug, Default)]
pub struct PolicySetBuilder {
    documents: Vec<PendingDocument>,
    bindings: Option<Result<Bindings, String>>,
    bindings_origin: Option<String>,
    errors: Vec<CompileError>,
}

impl PolicySetBuilder {
    /// Adds a policy document from text. `name` is how bindings refer to it.
    #[must_use]
    pub fn policy_text(mut self, name: &str, origin: &str, format: Format, text: &str) -> Self {
        let parsed = if text.len() > MAX_DOCUMENT_BYTES {
            Err(format!("document is {} bytes, over the limit of {MAX_DOCUMENT_BYTES}", text.len()))
        } else {
            match format {
                Format::Json => serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}")),
                Format::Yaml => yaml_serde::from_str(text).map_err(|e| format!("invalid YAML: {e}")),
            }
        };
        self.documents.push((name.to_owned(), origin.to_owned(), parsed));
        self
    }

    /// Adds a JSON policy document.
    #[must_use]
    pub fn policy_json(self, name: &str, text: &str) -> Self {
        self.policy_text(name, name, Format::Json, text)
    }

    /// Adds a YAML policy document.
    #[must_use]
    pub fn policy_yaml(self, name: &str, text: &str) -> Self {
        self.policy_text(name, name, Format::Yaml, text)
    }

    /// Adds an already parsed policy document.
    #[must_use]
    pub fn policy_value(mut self, name: &str, document: serde_json::Value) -> Self {
        self.documents.push((name.to_owned(), name.to_owned(), Ok(document)));
        self
    }

    /// Sets the bindings.
    #[must_use]
    pub fn bindings(mut self, bindings: Bindings) -> Self {
        self.bindings = Some(Ok(bindings));
        self
    }

    /// Sets the bindings from YAML text (the `bindings.yaml` format); `origin` names it in errors.
    #[must_use]
    pub fn bindings_yaml(mut self, origin: &str, text: &str) -> Self {
        let parsed = if text.len() > MAX_DOCUMENT_BYTES {
            Err(format!("document is {} bytes, over the limit of {MAX_DOCUMENT_BYTES}", text.len()))
        } else if text.trim().is_empty() {
            Ok(Bindings::default())
        } else {
            yaml_serde::from_str::<Bindings>(text).map_err(|e| format!("invalid bindings: {e}"))
        };
        self.bindings = Some(parsed);
        self.bindings_origin = Some(origin.to_owned());
        self
    }

    /// Compiles everything added, reporting every problem.
    pub fn build(self) -> Result<PolicySet, CompileErrors> {
        crate::compile::compile(self)
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn into_parts(
        self,
    ) -> (Vec<PendingDocument>, Result<Bindings, String>, String, Vec<CompileError>) {
        (
            self.documents,
            self.bindings.unwrap_or_else(|| Ok(Bindings::default())),
            self.bindings_origin.unwrap_or_else(|| BINDINGS_FILE.to_owned()),
            self.errors,
        )
    }
}

impl PolicySet {
    /// Starts building a set from in-memory documents.
    pub fn builder() -> PolicySetBuilder {
        PolicySetBuilder::default()
    }

    /// Loads `DIR/*.json`, `DIR/*.yaml`/`*.yml` (one policy each, named by file stem) and
    /// `DIR/bindings.yaml`. Sub-directories (such as `tests/`) are not read.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<PolicySet, LoadError> {
        let dir = dir.as_ref();
        let io = |path: &Path, source| LoadError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        let mut builder = PolicySet::builder();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut count = 0usize;
        for path in entries {
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
            let format = match ext {
                "json" => Format::Json,
                "yaml" | "yml" => Format::Yaml,
                _ => continue,
            };
            let origin = path.display().to_string();
            let text = read_bounded(&path).map_err(|e| io(&path, e))?;
            if file_name == BINDINGS_FILE || file_name == "bindings.yml" {
                builder = builder.bindings_yaml(&origin, &text);
                continue;
            }
            count += 1;
            if count > MAX_POLICIES {
                builder.errors.push(CompileError {
                    file: dir.display().to_string(),
                    statement: None,
                    sid: None,
                    field: None,
                    message: format!("more than {MAX_POLICIES} policy documents"),
                });
                break;
            }
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            if let Some(other) = seen.insert(name.clone(), origin.clone()) {
                builder.errors.push(CompileError {
                    file: origin.clone(),
                    statement: None,
                    sid: None,
                    field: None,
                    message: format!("policy name `{name}` is also used by `{other}`"),
                });
                continue;
            }
            builder = builder.policy_text(&name, &origin, format, &text);
        }
        if builder.bindings.is_none() {
            builder.bindings_origin = Some(dir.join(BINDINGS_FILE).display().to_string());
        }
        Ok(builder.build()?)
    }

    /// The set's revision: a digest of its documents and bindings.
    pub fn revision(&self) -> &str {
        &self.revision
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
        self.statements.iter().map(|s| &s.info)
    }
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1).read_to_string(&mut text)?;
    Ok(text)
}

/// Compiles `Resource`-like text into a pattern entry.
pub(crate) fn res_pat(text: &str, variables: bool) -> Result<ResPat, String> {
    Ok(match parse_text(text, true, variables)? {
        Parsed::Static(t) => ResPat::Static(Pattern::from_toks(t, false)),
        Parsed::Dynamic(t) => ResPat::Dynamic(t),
    })
}

/// Builds an action index over statement ids.
pub(crate) fn build_index(statements: &[Stmt], ids: impl IntoIterator<Item = u32>) -> Index {
    let mut services: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let mut wildcard = BTreeSet::new();
    let mut all = BTreeSet::new();
    for id in ids {
        let Some(stmt) = statements.get(id as usize) else { continue };
        all.insert(id);
        let mut stmt_services = BTreeSet::new();
        let mut any_service = stmt.actions.negated;
        for p in stmt.actions.patterns.iter() {
            match p.literal_prefix().split_once(':') {
                Some((service, _)) if !p.is_any() => {
                    stmt_services.insert(service.to_ascii_lowercase());
                }
                _ => any_service = true,
            }
        }
        if any_service {
            wildcard.insert(id);
        } else {
            for s in stmt_services {
                services.entry(s).or_default().insert(id);
            }
        }
    }
    Index {
        services: services
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v.into_iter().collect()))
            .collect(),
        wildcard: wildcard.into_iter().collect(),
        all: all.into_iter().collect(),
    }
}

/// The revision digest of a set's inputs.
pub(crate) fn revision_of(docs: &[(String, &serde_json::Value)], bindings: &Bindings) -> String {
    let mut h = Sha256::new();
    let mut sorted: Vec<_> = docs.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, doc) in sorted {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(doc.to_string().as_bytes());
        h.update([0]);
    }
    h.update(serde_json::to_string(bindings).unwrap_or_default().as_bytes());
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Parses an `Obligations` entry.
pub(crate) fn parse_obligation(v: &serde_json::Value) -> Result<Obligation, String> {
    let Some(obj) = v.as_object() else {
        return Err("each obligation must be an object with `Id`, `Type` and optional `Properties`".into());
    };
    if let Some(k) = obj.keys().find(|k| !matches!(k.as_str(), "Id" | "Type" | "Properties")) {
        return Err(format!("unknown obligation field `{k}` (expected `Id`, `Type`, `Properties`)"));
    }
    let id = match obj.get("Id") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err("obligation `Id` must be a non-empty string".into()),
    };
    let kind = match obj.get("Type") {
        Some(serde_json::Value::String(s)) => ObligationType::parse(s).ok_or_else(|| {
            format!(
                "obligation `{id}` has unknown `Type` `{s}` (expected one of {})",
                ObligationType::ALL.iter().map(|(_, n)| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            )
        })?,
        _ => return Err(format!("obligation `{id}` needs a string `Type`")),
    };
    let properties = match obj.get("Properties") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => return Err(format!("obligation `{id}` `Properties` must be an object")),
    };
    Ok(Obligation { id, kind, properties })
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<PolicySet>();
}
