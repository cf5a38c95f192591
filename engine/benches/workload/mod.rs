//! Loads the benchmark workloads (`iam-S{10,100,1000,10000}.json`, format
//! `engine-bench/iam-workload/v1`, see `benches/workloads/README.md`) and turns them into the
//! engine's own values: a [`PolicySet`] (roles -> bindings) and one [`Request`] per labelled
//! request, with the decision it must get.
//!
//! Shared by `benches/decide.rs` and `tests/bench_workloads.rs` through `#[path]`; each of them
//! uses only part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use pdp_engine::{
    Attachment, Bindings, Context, Decision, PolicySet, Reason, Request, Resource, Scalar, Subject,
    Tags, Value,
};
use serde::Deserialize;

/// The workload sizes (statements in the whole store), smallest first.
pub const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

/// The sizes kept in the repository (`benches/workloads/`); the larger ones are read from
/// `$PDP_BENCH_DIR` when it holds them.
pub const VENDORED_SIZES: [usize; 2] = [10, 100];

/// The only format this loader reads.
pub const FORMAT: &str = "engine-bench/iam-workload/v1";

/// The environment variable that overrides the workload directory.
pub const DIR_VAR: &str = "PDP_BENCH_DIR";

/// The fixed clock of every request (2026-01-01T00:00:00Z): no workload condition reads the
/// time, but a fixed `now` keeps the engine off the system clock.
pub const NOW_EPOCH_SECONDS: i64 = 1_767_225_600;

/// The workload directory kept in the repository.
pub fn vendored_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/workloads")
}

/// The workload directory: `$PDP_BENCH_DIR`, else [`vendored_dir`].
pub fn bench_dir() -> PathBuf {
    match std::env::var_os(DIR_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => vendored_dir(),
    }
}

/// The file of workload size `s`: in [`bench_dir`], or for a vendored size that directory
/// lacks, in [`vendored_dir`].
pub fn path_for(s: usize) -> PathBuf {
    let name = format!("iam-S{s}.json");
    let path = bench_dir().join(&name);
    if !path.exists() && VENDORED_SIZES.contains(&s) {
        return vendored_dir().join(name);
    }
    path
}

/// The sizes whose files can be read (the vendored ones always), smallest first; each
/// size left out is reported on standard output.
pub fn available_sizes() -> Vec<usize> {
    SIZES
        .into_iter()
        .filter(|&s| {
            let found = path_for(s).exists();
            if !found {
                println!(
                    "S = {s}: {} not found, not measured (set {DIR_VAR} to a directory holding it)",
                    path_for(s).display()
                );
            }
            found
        })
        .collect()
}

/// The decision a request must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Expected {
    /// Allowed, with reason [`Reason::Allowed`].
    Allow,
    /// Denied because nothing allows it: [`Reason::ImplicitDeny`].
    ImplicitDeny,
    /// Denied by a matching Deny: [`Reason::ExplicitDeny`].
    ExplicitDeny,
}

impl Expected {
    /// The engine's reason for this outcome.
    pub fn reason(self) -> Reason {
        match self {
            Expected::Allow => Reason::Allowed,
            Expected::ImplicitDeny => Reason::ImplicitDeny,
            Expected::ExplicitDeny => Reason::ExplicitDeny,
        }
    }

    /// Whether `decision` is this outcome: `allowed` and `reason` both agree.
    pub fn matches(self, decision: &Decision<'_>) -> bool {
        decision.allowed == (self == Expected::Allow) && decision.reason == self.reason()
    }
}

#[derive(Deserialize)]
struct RawWorkload {
    format: String,
    statements: usize,
    principals: BTreeMap<String, Vec<String>>,
    roles: BTreeMap<String, Vec<String>>,
    policies: Vec<serde_json::Value>,
    resources: BTreeMap<String, RawResource>,
    requests: Vec<RawRequest>,
}

#[derive(Deserialize)]
struct RawResource {
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawRequest {
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: serde_json::Map<String, serde_json::Value>,
    expected: Expected,
}

/// A workload converted into the engine's inputs.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Where it was read from.
    pub origin: String,
    /// The statement count the file declares.
    pub statements: usize,
    /// `(Id, document)` of every policy, in file order; documents keep their `Id`.
    pub policies: Vec<(String, serde_json::Value)>,
    /// Every role, bound to its policies (no boundaries).
    pub bindings: Bindings,
    /// The requests, in file order.
    pub requests: Vec<Request>,
    /// `expected[i]` is what `requests[i]` must get.
    pub expected: Vec<Expected>,
}

/// Reads and converts workload size `s` from [`bench_dir`]. A missing file is an error that
/// says where it looked and how to point elsewhere.
pub fn load_size(s: usize) -> Result<Workload, String> {
    let path = path_for(s);
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read workload `{origin}`: {e}\n(S = 10 and 100 are in engine/benches/workloads; \
             set {DIR_VAR} to a directory that holds iam-S{{1000,10000}}.json for the larger ones)"
        )
    })?;
    from_json(&origin, &text)
}

/// Converts a workload's JSON text; `origin` names it in errors.
pub fn from_json(origin: &str, text: &str) -> Result<Workload, String> {
    let raw: RawWorkload =
        serde_json::from_str(text).map_err(|e| format!("{origin}: not a workload: {e}"))?;
    if raw.format != FORMAT {
        return Err(format!(
            "{origin}: format `{}`, expected `{FORMAT}`",
            raw.format
        ));
    }

    let mut policies = Vec::with_capacity(raw.policies.len());
    let mut ids = BTreeSet::new();
    let mut statements = 0usize;
    for (i, doc) in raw.policies.into_iter().enumerate() {
        let id = doc
            .get("Id")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("{origin}: policies[{i}] has no string `Id`"))?
            .to_owned();
        if !ids.insert(id.clone()) {
            return Err(format!("{origin}: policy Id `{id}` is used twice"));
        }
        statements += match doc.get("Statement") {
            Some(serde_json::Value::Array(list)) => list.len(),
            Some(_) => 1,
            None => 0,
        };
        policies.push((id, doc));
    }
    if statements != raw.statements {
        return Err(format!(
            "{origin}: the policies hold {statements} statements, the file declares {}",
            raw.statements
        ));
    }

    let mut bindings = Bindings::default();
    for (role, attached) in raw.roles {
        if let Some(missing) = attached.iter().find(|p| !ids.contains(p.as_str())) {
            return Err(format!(
                "{origin}: role `{role}` names unknown policy `{missing}`"
            ));
        }
        bindings.roles.insert(
            role,
            Attachment {
                policies: attached,
                boundary: None,
                ..Attachment::default()
            },
        );
    }

    let now = DateTime::<Utc>::from_timestamp(NOW_EPOCH_SECONDS, 0)
        .ok_or_else(|| format!("{origin}: bad fixed clock"))?;
    let mut requests = Vec::with_capacity(raw.requests.len());
    let mut expected = Vec::with_capacity(raw.requests.len());
    for (i, r) in raw.requests.into_iter().enumerate() {
        let roles = raw
            .principals
            .get(&r.principal)
            .ok_or_else(|| {
                format!(
                    "{origin}: requests[{i}]: unknown principal `{}`",
                    r.principal
                )
            })?
            .clone();
        let tags = raw
            .resources
            .get(&r.resource)
            .ok_or_else(|| format!("{origin}: requests[{i}]: unknown resource `{}`", r.resource))?
            .tags
            .clone();
        let mut context = Context::new();
        for (key, v) in &r.context {
            let v = value(v).map_err(|e| format!("{origin}: requests[{i}].context.{key}: {e}"))?;
            context.insert(key.as_str(), v);
        }
        requests.push(Request {
            subject: Subject {
                id: r.principal.into(),
                roles: roles.into_iter().map(Into::into).collect(),
                tags: Tags::new(),
            },
            action: r.action.into(),
            resource: Resource {
                id: r.resource.into(),
                tags: tags
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
            },
            context,
            now: Some(now),
        });
        expected.push(r.expected);
    }
    if requests.is_empty() {
        return Err(format!("{origin}: no requests"));
    }

    Ok(Workload {
        origin: origin.to_owned(),
        statements: raw.statements,
        policies,
        bindings,
        requests,
        expected,
    })
}

fn scalar(v: &serde_json::Value) -> Result<Scalar, String> {
    match v {
        serde_json::Value::Bool(b) => Ok(Scalar::Bool(*b)),
        serde_json::Value::Number(n) => n
            .as_f64()
            .map(Scalar::Number)
            .ok_or_else(|| format!("number {n} out of range")),
        serde_json::Value::String(s) => Ok(Scalar::String(s.as_str().into())),
        other => Err(format!("unsupported context value {other}")),
    }
}

fn value(v: &serde_json::Value) -> Result<Value, String> {
    match v {
        serde_json::Value::Array(items) => Ok(Value::Many(
            items.iter().map(scalar).collect::<Result<_, _>>()?,
        )),
        other => Ok(Value::One(scalar(other)?)),
    }
}

/// Compiles policies and bindings into a set (what the compile benchmark times).
pub fn compile(
    policies: &[(String, serde_json::Value)],
    bindings: Bindings,
) -> Result<PolicySet, String> {
    let mut builder = PolicySet::builder();
    for (id, doc) in policies {
        builder = builder.policy_document(id, doc);
    }
    builder
        .bindings(bindings)
        .build()
        .map_err(|e| e.to_string())
}

/// What one pass over a workload's requests found.
#[derive(Debug, Default)]
pub struct Check {
    /// Requests checked.
    pub checked: usize,
    /// Requests whose indexed decision is not the expected one.
    pub wrong: usize,
    /// Requests where `decide_scan` disagrees with `decide`.
    pub scan_disagrees: usize,
    /// Descriptions of the first problems.
    pub first: Vec<String>,
}

impl Check {
    /// Whether every decision was right and the scan agreed everywhere.
    pub fn ok(&self) -> bool {
        self.wrong == 0 && self.scan_disagrees == 0
    }

    /// A multi-line summary naming the first problems.
    pub fn summary(&self, origin: &str) -> String {
        let mut out = format!(
            "{origin}: {} of {} decisions differ from `expected`, decide_scan disagrees with decide on {}",
            self.wrong, self.checked, self.scan_disagrees
        );
        for line in &self.first {
            let _ = write!(out, "\n  {line}");
        }
        if self.first.len() < self.wrong + self.scan_disagrees {
            out.push_str("\n  ...");
        }
        out
    }
}

/// The determining statements as sorted `policy#index` names, independent of lookup order.
fn determining(d: &Decision<'_>) -> Vec<String> {
    let mut v: Vec<String> = d
        .determining
        .iter()
        .map(|s| format!("{}#{}", s.policy, s.index))
        .collect();
    v.sort();
    v
}

fn describe(r: &Request) -> String {
    let ctx: Vec<String> = r
        .context
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!(
        "{} (roles {:?}) {} on {} (tags {:?}) [{}]",
        r.subject.id,
        r.subject.roles,
        r.action,
        r.resource.id,
        r.resource.tags,
        ctx.join(", ")
    )
}

/// How a benchmark binary was started.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// `PDP_BENCH_QUICK` is set (not to `0`): the report only, no criterion groups.
    pub quick: bool,
    /// Run with `--bench` (`cargo bench`), not by `cargo test --benches`.
    pub bench: bool,
}

impl Mode {
    /// The mode of this process.
    pub fn current() -> Mode {
        Mode {
            quick: std::env::var("PDP_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0"),
            bench: std::env::args().any(|a| a == "--bench"),
        }
    }

    /// Whether to print the report: always with `PDP_BENCH_QUICK`, else only under
    /// `cargo bench` (`cargo test --benches` runs each criterion benchmark once, no report).
    pub fn report(self) -> bool {
        self.quick || self.bench
    }
}

/// Prints `message` as an error and exits 1 (a benchmark that cannot load its workloads).
pub fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

/// Loads workload size `s` and builds its set.
pub fn load_built(s: usize) -> Result<(Workload, PolicySet), String> {
    let workload = load_size(s)?;
    let set = workload
        .build()
        .map_err(|e| format!("{}: the set does not compile: {e}", workload.origin))?;
    Ok((workload, set))
}

impl Workload {
    /// Builds the set from clones of the policies and bindings.
    pub fn build(&self) -> Result<PolicySet, String> {
        compile(&self.policies, self.bindings.clone())
    }

    /// Checks every request: the indexed decision against `expected` (allowed and reason),
    /// and `decide_scan` against `decide` (allowed, reason and determining statements).
    /// Describes at most `keep` problems.
    pub fn check(&self, set: &PolicySet, keep: usize) -> Check {
        let mut check = Check::default();
        for (i, (request, want)) in self.requests.iter().zip(&self.expected).enumerate() {
            check.checked += 1;
            let got = set.decide(request);
            let scan = set.decide_scan(request);
            if !want.matches(&got) {
                check.wrong += 1;
                if check.first.len() < keep {
                    check.first.push(format!(
                        "requests[{i}]: expected {want:?}, got allowed={} reason={:?} by {:?}: {}",
                        got.allowed,
                        got.reason,
                        determining(&got),
                        describe(request)
                    ));
                }
            }
            let (a, b) = (determining(&got), determining(&scan));
            if got.allowed != scan.allowed || got.reason != scan.reason || a != b {
                check.scan_disagrees += 1;
                if check.first.len() < keep {
                    check.first.push(format!(
                        "requests[{i}]: decide gave {}/{:?} by {a:?}, decide_scan gave {}/{:?} by {b:?}: {}",
                        got.allowed,
                        got.reason,
                        scan.allowed,
                        scan.reason,
                        describe(request)
                    ));
                }
            }
        }
        check
    }
}
