//! Policy tests: requests with the decision each must get. The same case format serves the
//! engine's own case corpus (files that carry their policies) and a policy directory's
//! `tests/*.yaml` (run by `pdp policy test`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::set::{Bindings, PolicySet};
use crate::types::{Decision, Effect, Reason};
use crate::Request;

/// A test file: optional inline policies and bindings, then cases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    /// What the file checks.
    #[serde(default)]
    pub description: Option<String>,
    /// Inline policies (name -> document); a policy directory's tests leave this out.
    #[serde(default)]
    pub policies: Option<BTreeMap<String, serde_json::Value>>,
    /// Inline bindings.
    #[serde(default)]
    pub bindings: Option<Bindings>,
    /// The clock for every case that sets none.
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
    /// Instead of cases: the set must be rejected with messages containing each substring.
    #[serde(default)]
    pub compile_error: Option<Vec<String>>,
    /// The cases.
    #[serde(default)]
    pub cases: Vec<TestCase>,
}

/// One request and its expected outcome.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Names the case in reports.
    pub name: String,
    /// The clock for this case.
    #[serde(default)]
    pub now: Option<DateTime<Utc>>,
    /// The request.
    pub request: Request,
    /// What must come out.
    pub expect: Expect,
}

/// Expected decision.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// `allow` or `deny`.
    pub decision: ExpectedDecision,
    /// The reason, if checked.
    #[serde(default)]
    pub reason: Option<Reason>,
    /// The determining statements, compared as a set, if checked.
    #[serde(default)]
    pub determining: Option<Vec<ExpectedStatement>>,
    /// The obligation ids, compared as a set, if checked.
    #[serde(default)]
    pub obligations: Option<Vec<String>>,
}

/// `allow` / `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpectedDecision {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// A statement reference in an expectation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedStatement {
    /// Policy name.
    pub policy: String,
    /// Sid (null when the statement has none).
    #[serde(default)]
    pub sid: Option<String>,
    /// Effect, if checked.
    #[serde(default)]
    pub effect: Option<Effect>,
}

impl TestFile {
    /// Parses a YAML test file.
    pub fn from_yaml(text: &str) -> Result<Self, String> {
        crate::nesting::check_nesting(text, crate::Format::Yaml)?;
        yaml_serde::from_str(text).map_err(|e| e.to_string())
    }

    /// Builds the inline policy set of a corpus file.
    pub fn build_set(&self, origin: &str) -> Result<PolicySet, crate::CompileErrors> {
        let mut b = PolicySet::builder();
        for (name, doc) in self.policies.iter().flatten() {
            b = b.policy_value(name, doc.clone());
        }
        b.bindings(self.bindings.clone().unwrap_or_default())
            .build()
            .map_err(|mut e| {
                for err in &mut e.0 {
                    if err.file == crate::set::BINDINGS_FILE {
                        err.file = format!("{origin}: bindings");
                    }
                }
                e
            })
    }
}

/// Runs one case; `Err` describes every mismatch.
pub fn run_case(
    set: &PolicySet,
    file_now: Option<DateTime<Utc>>,
    case: &TestCase,
) -> Result<(), String> {
    let mut req = case.request.clone();
    req.now = case.now.or(file_now).or(req.now);
    let d = set.decide(&req);
    check(&d, &case.expect)
}

fn check(d: &Decision<'_>, e: &Expect) -> Result<(), String> {
    let mut problems = Vec::new();
    let got = if d.allowed {
        ExpectedDecision::Allow
    } else {
        ExpectedDecision::Deny
    };
    if got != e.decision {
        problems.push(format!(
            "decision: expected {:?}, got {:?} ({})",
            e.decision,
            got,
            d.reason.as_str()
        ));
    }
    if let Some(r) = e.reason {
        if r != d.reason {
            problems.push(format!(
                "reason: expected {}, got {}",
                r.as_str(),
                d.reason.as_str()
            ));
        }
    }
    if let Some(want) = &e.determining {
        let mut want = want.clone();
        want.sort();
        want.dedup();
        let mut got: Vec<ExpectedStatement> = d
            .determining
            .iter()
            .map(|s| ExpectedStatement {
                policy: s.policy.clone(),
                sid: s.sid.clone(),
                effect: want.iter().any(|w| w.effect.is_some()).then_some(s.effect),
            })
            .collect();
        got.sort();
        got.dedup();
        let strip = |v: &[ExpectedStatement]| -> Vec<(String, Option<String>)> {
            v.iter()
                .map(|s| (s.policy.clone(), s.sid.clone()))
                .collect()
        };
        let effects_ok = want.iter().all(|w| {
            w.effect.is_none()
                || got
                    .iter()
                    .any(|g| g.policy == w.policy && g.sid == w.sid && g.effect == w.effect)
        });
        if strip(&want) != strip(&got) || !effects_ok {
            problems.push(format!(
                "determining: expected {}, got {}",
                fmt_stmts(&want),
                fmt_stmts(&got)
            ));
        }
    }
    if let Some(want) = &e.obligations {
        let mut want = want.clone();
        want.sort();
        want.dedup();
        let mut got: Vec<String> = d.obligations.iter().map(|o| o.id.clone()).collect();
        got.sort();
        if want != got {
            problems.push(format!("obligations: expected {want:?}, got {got:?}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn fmt_stmts(v: &[ExpectedStatement]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|s| format!("{}/{}", s.policy, s.sid.as_deref().unwrap_or("-")))
        .collect();
    format!("[{}]", items.join(", "))
}

/// The outcome of running a test file.
#[derive(Debug, Default)]
pub struct FileReport {
    /// Names of passing cases.
    pub passed: Vec<String>,
    /// Failing cases with what was wrong.
    pub failed: Vec<(String, String)>,
}

/// Runs every case of `file` against `set`.
pub fn run_file(set: &PolicySet, file: &TestFile) -> FileReport {
    let mut report = FileReport::default();
    for case in &file.cases {
        match run_case(set, file.now, case) {
            Ok(()) => report.passed.push(case.name.clone()),
            Err(e) => report.failed.push((case.name.clone(), e)),
        }
    }
    report
}
