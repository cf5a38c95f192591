//! The `pdp` command line: evaluate a request against a policy directory, and validate,
//! test and lint policy directories.
//!
//! Exit codes: 0 success (any decision); 1 the checked policies have problems (validate,
//! test failures, lint errors or security warnings); 2 bad command line; 3 the policy set
//! cannot be loaded; 4 the request cannot be read or parsed; 5 the server could not start
//! or failed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use pdp_engine::lint::{self, Severity};
use pdp_engine::testsuite::{run_file, TestFile};
use pdp_engine::{Decision, LoadError, Obligation, PolicySet, Request};
use serde::Serialize;

/// Largest request document `pdp eval` reads.
pub const MAX_REQUEST_BYTES: u64 = 1 << 20;

const EXIT_PROBLEMS: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_POLICIES: u8 = 3;
const EXIT_REQUEST: u8 = 4;
pub(crate) const EXIT_SERVE: u8 = 5;

#[derive(Debug, Parser)]
#[command(name = "pdp", version, about = "Zero-trust policy decision point")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decide one request (JSON) against a policy directory and print the decision as JSON.
    Eval {
        /// The policy directory.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The clock for aws:CurrentTime / aws:EpochTime (RFC 3339); the system clock if unset.
        #[arg(long)]
        now: Option<DateTime<Utc>>,
        /// Add `explanation`: for a deny, the Allows that nearly applied and the first part
        /// of each that did not match, and what held back an Allow that applied.
        #[arg(long)]
        explain: bool,
        /// The request file, or `-` for standard input.
        request: PathBuf,
    },
    /// Search a policy directory as the AuthZEN search endpoints do: which resources of the
    /// inventory, which subjects of the directory or which actions a request allows (the
    /// part searched for left out); prints one page as JSON.
    Search {
        /// What is searched for.
        #[arg(value_enum)]
        what: SearchWhat,
        /// The policy directory (with `resources.jsonl` and `actions.txt` when searched).
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The clock for aws:CurrentTime / aws:EpochTime (RFC 3339); the system clock if unset.
        #[arg(long)]
        now: Option<DateTime<Utc>>,
        /// For `resources`: the resource type searched (the inventory's `type`).
        #[arg(long = "type")]
        resource_type: Option<String>,
        /// Most results on the page (default 100, at most 1,000).
        #[arg(long)]
        limit: Option<u64>,
        /// The previous page's `next_token`, with the same request and flags.
        #[arg(long, default_value = "")]
        page: String,
        /// The request (`subject`, `action`, `resource`, `context`; the part searched for
        /// left out), or `-` for standard input.
        request: PathBuf,
    },
    /// Print which resources a subject may act on (a query plan, JSON) for a request
    /// without its resource.
    Plan {
        /// The policy directory.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// The clock for aws:CurrentTime / aws:EpochTime (RFC 3339); the system clock if unset.
        #[arg(long)]
        now: Option<DateTime<Utc>>,
        /// The request file (`subject`, `action`, `context`), or `-` for standard input.
        request: PathBuf,
    },
    /// Validate, test and lint policy directories.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Serve decisions: gRPC (`pdp.v1` services, Envoy ext_authz, health, reflection) and an
    /// HTTP port (AuthZEN, SSF push delivery, /metrics, /healthz, /readyz).
    Serve(Box<crate::config::ServeArgs>),
    /// Check decision logs.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify decision log files (given in order: rotated files first, the current one
    /// last): every record's hash, the chain from its start, the checkpoints and, with
    /// --key, their signatures. Exit 0 when intact, 1 with the first problem's file and line.
    Verify {
        /// The Ed25519 public key that signs checkpoints (PEM); without it signatures are not
        /// checked.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The latest checkpoint as published beside the log (`FILE.head`): the log must
        /// still hold the record it attests (a log cut back to an earlier checkpoint does
        /// not).
        #[arg(long)]
        head: Option<PathBuf>,
        /// The log must reach at least this record (e.g. the last value seen of
        /// `pdp_decision_log_checkpoint_seq`).
        #[arg(long, value_name = "SEQ")]
        expect_seq: Option<u64>,
        /// The log files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the public key (PEM) of an Ed25519 private key (PKCS#8 PEM), for `verify --key`.
    PublicKey {
        /// The private key that signs checkpoints.
        key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Report every problem in every file of the directory.
    Validate {
        /// The policy directory.
        dir: PathBuf,
    },
    /// Run the directory's `tests/*.yaml`.
    Test {
        /// The policy directory.
        dir: PathBuf,
    },
    /// Least-privilege findings: errors, security warnings, warnings, suggestions.
    Lint {
        /// The policy directory.
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
    },
}

/// What `pdp search` searches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SearchWhat {
    /// Resources of the inventory (`resources.jsonl`) of `--type`.
    Resources,
    /// Subjects of the directory (`subjects` of `bindings.yaml`).
    Subjects,
    /// Actions the policies name and the catalog (`actions.txt`) holds.
    Actions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let code = match cli.command {
        Command::Eval {
            policies,
            now,
            explain,
            request,
        } => eval(&policies, now, &request, explain),
        Command::Plan {
            policies,
            now,
            request,
        } => plan(&policies, now, &request),
        Command::Search {
            what,
            policies,
            now,
            resource_type,
            limit,
            page,
            request,
        } => search(
            &policies,
            &SearchArgs {
                what,
                now,
                resource_type,
                limit,
                page,
            },
            &request,
        ),
        Command::Policy(PolicyCommand::Validate { dir }) => validate(&dir),
        Command::Policy(PolicyCommand::Test { dir }) => test(&dir),
        Command::Policy(PolicyCommand::Lint { dir, format }) => lint_dir(&dir, format),
        Command::Audit(AuditCommand::Verify {
            key,
            head,
            expect_seq,
            files,
        }) => audit_verify(key.as_deref(), head.as_deref(), expect_seq, &files),
        Command::Audit(AuditCommand::PublicKey { key }) => audit_public_key(&key),
        Command::Serve(args) => match crate::config::ServeConfig::resolve(&args) {
            Ok(config) => {
                init_logging();
                crate::start::serve(&config)
            }
            Err(problems) => {
                for p in problems {
                    eprintln!("error: {p}");
                }
                EXIT_USAGE
            }
        },
    };
    ExitCode::from(code)
}

pub(crate) fn load(dir: &Path) -> Result<PolicySet, u8> {
    crate::reload::load_policies(dir).map_err(|e| {
        eprintln!("error: {e}");
        match e {
            LoadError::Io { .. } | LoadError::Compile(_) => EXIT_POLICIES,
        }
    })
}

fn read_request(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    let read = if path == Path::new("-") {
        std::io::stdin()
            .take(MAX_REQUEST_BYTES + 1)
            .read_to_string(&mut text)
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_REQUEST_BYTES + 1).read_to_string(&mut text))
    };
    read.map_err(|e| format!("cannot read request `{}`: {e}", path.display()))?;
    if text.len() as u64 > MAX_REQUEST_BYTES {
        return Err(format!(
            "request `{}` is over {MAX_REQUEST_BYTES} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// The JSON form of a decision printed by `pdp eval`.
#[derive(Debug, Serialize)]
pub struct DecisionOutput<'a> {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// `allowed`, `explicit_deny` or `implicit_deny`.
    pub reason: &'static str,
    /// The statements that decided.
    pub determining: Vec<StatementOutput<'a>>,
    /// The obligations to carry out.
    pub obligations: Vec<&'a Obligation>,
    /// With `--explain`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<pdp_engine::Explanation>,
}

/// A determining statement in [`DecisionOutput`].
#[derive(Debug, Serialize)]
pub struct StatementOutput<'a> {
    /// Policy name.
    pub policy: &'a str,
    /// Sid, or null.
    pub sid: Option<&'a str>,
    /// `Allow` or `Deny`.
    pub effect: &'static str,
}

impl<'a> From<&Decision<'a>> for DecisionOutput<'a> {
    fn from(d: &Decision<'a>) -> Self {
        DecisionOutput {
            decision: if d.allowed { "allow" } else { "deny" },
            reason: d.reason.as_str(),
            determining: d
                .determining
                .iter()
                .map(|s| StatementOutput {
                    policy: &s.policy,
                    sid: s.sid.as_deref(),
                    effect: s.effect.as_str(),
                })
                .collect(),
            obligations: d.obligations.to_vec(),
            explanation: None,
        }
    }
}

/// The policy set of `dir` and the request read from `path` (`-`: standard input); `hint`
/// follows the parse error. Errors are printed; the exit code is returned.
fn set_and_request<T: serde::de::DeserializeOwned>(
    dir: &Path,
    path: &Path,
    hint: &str,
) -> Result<(PolicySet, T), u8> {
    let set = load(dir)?;
    let text = read_request(path).map_err(|e| {
        eprintln!("error: {e}");
        EXIT_REQUEST
    })?;
    let request = serde_json::from_str(&text).map_err(|e| {
        eprintln!("error: request `{}` is invalid: {e}{hint}", path.display());
        EXIT_REQUEST
    })?;
    Ok((set, request))
}

fn eval(dir: &Path, now: Option<DateTime<Utc>>, request: &Path, explain: bool) -> u8 {
    let (set, mut req): (PolicySet, Request) = match set_and_request(dir, request, "") {
        Ok(r) => r,
        Err(code) => return code,
    };
    req.now = now;
    let decision = set.decide(&req);
    let mut output = DecisionOutput::from(&decision);
    if explain {
        output.explanation = Some(set.explain(&req));
    }
    match serde_json::to_string(&output) {
        Ok(out) => {
            println!("{out}");
            0
        }
        Err(e) => {
            eprintln!("error: cannot encode the decision: {e}");
            EXIT_REQUEST
        }
    }
}

fn plan(dir: &Path, now: Option<DateTime<Utc>>, request: &Path) -> u8 {
    let hint = " (a plan request has `subject`, `action` and `context`; the resource is what the plan leaves open)";
    let (set, mut req): (PolicySet, pdp_engine::PlanRequest) =
        match set_and_request(dir, request, hint) {
            Ok(r) => r,
            Err(code) => return code,
        };
    req.now = now;
    println!("{}", set.plan(&req).to_json());
    0
}

/// A `pdp search` request: a decision request whose searched part may be left out.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    #[serde(default)]
    subject: pdp_engine::Subject,
    #[serde(default)]
    action: pdp_engine::Text,
    #[serde(default)]
    resource: pdp_engine::Resource,
    #[serde(default)]
    context: pdp_engine::Context,
}

/// `pdp search`'s flags.
struct SearchArgs {
    what: SearchWhat,
    now: Option<DateTime<Utc>>,
    resource_type: Option<String>,
    limit: Option<u64>,
    page: String,
}

fn search(dir: &Path, args: &SearchArgs, request: &Path) -> u8 {
    use crate::search::{Paging, Searcher};
    let hint = " (a search request has `subject`, `action`, `resource` and `context`, the part searched for left out)";
    let (set, req): (PolicySet, SearchRequest) = match set_and_request(dir, request, hint) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let inventory = match crate::search::inventory::Inventory::load_dir(dir) {
        Ok(i) => i,
        Err(e) => {
            for p in &e.0 {
                eprintln!("error: {p}");
            }
            return EXIT_POLICIES;
        }
    };
    let kind = match (args.what, &args.resource_type) {
        (SearchWhat::Resources, None) => {
            eprintln!(
                "error: `pdp search resources` needs `--type` (the inventory's resource type)"
            );
            return EXIT_REQUEST;
        }
        (_, t) => t.clone().unwrap_or_default(),
    };
    let snapshot = crate::state::Snapshot::new(set, crate::extauthz::routes::RouteTable::default())
        .with_inventory(std::sync::Arc::new(inventory));
    let mut state = crate::state::State::serving(snapshot, 1);
    state.clock = args.now;
    let decider = crate::decider::Decider::new(std::sync::Arc::new(state));
    let snapshot = decider.state().snapshot();
    let call = crate::decider::Call::new("cli", &crate::caller::Caller::unknown(), false, None);
    // A resource of the inventory named without tags carries the inventory's, as in an
    // AuthZEN evaluation and search.
    let mut resource = req.resource;
    if resource.tags.is_empty() {
        if let Some(entry) = snapshot.inventory.resource(&resource.id) {
            resource.tags = entry.resource.tags.clone();
        }
    }
    let input = crate::decider::CheckInput {
        request: pdp_engine::Request {
            subject: req.subject,
            action: req.action,
            resource,
            context: req.context,
            now: args.now,
        },
        // The command line reads the policies themselves: its word counts.
        trusted: true,
        ..Default::default()
    };
    // A page token is good for the same search: what, the type and the request as read.
    let fingerprint = format!("{:?}|{kind}|{:?}", args.what, input.request).into_bytes();
    let paging = Paging {
        token: &args.page,
        limit: args.limit,
        fingerprint: &fingerprint,
    };
    let searcher = Searcher {
        decider: &decider,
        snapshot: &snapshot,
        call: &call,
    };
    let page = |results: Vec<serde_json::Value>, next_token: String| serde_json::json!({ "results": results, "page": { "next_token": next_token } });
    let answer = match args.what {
        SearchWhat::Resources => searcher.resources(input, &kind, &paging).map(|f| {
            let results = f
                .results
                .into_iter()
                .map(|r| serde_json::json!({ "type": r.kind, "id": r.id }))
                .collect();
            page(results, f.next_token)
        }),
        SearchWhat::Subjects => searcher.subjects(input, &paging).map(|f| {
            let results = f
                .results
                .into_iter()
                .map(|id| serde_json::json!({ "id": id }))
                .collect();
            page(results, f.next_token)
        }),
        SearchWhat::Actions => searcher.actions(input, &paging).map(|f| {
            let results = f
                .results
                .into_iter()
                .map(|name| serde_json::json!({ "name": name }))
                .collect();
            page(results, f.next_token)
        }),
    };
    match answer {
        Ok(answer) => {
            println!("{answer}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_REQUEST
        }
    }
}

fn validate(dir: &Path) -> u8 {
    let routes = crate::extauthz::routes::RouteTable::load_dir(dir);
    let inventory = crate::search::inventory::Inventory::load_dir(dir);
    // The problems of the files beside the policies: routes, then the inventory.
    let mut beside: Vec<String> = routes.as_ref().err().cloned().unwrap_or_default();
    if let Err(e) = &inventory {
        beside.extend(e.0.iter().cloned());
    }
    match crate::reload::load_policies(dir) {
        Ok(set) => match (routes, inventory) {
            (Ok(routes), Ok(inventory)) => {
                println!(
                    "ok: {} policies, {} statements, {} routes, {} resources, {} catalog actions, revision {}",
                    set.policy_names().count(),
                    set.statement_count(),
                    routes.len(),
                    inventory.resource_count(),
                    inventory.actions().len(),
                    set.revision()
                );
                0
            }
            _ => {
                for p in &beside {
                    println!("{p}");
                }
                eprintln!("{} problem(s) found", beside.len());
                EXIT_PROBLEMS
            }
        },
        Err(LoadError::Compile(errors)) => {
            for e in &errors.0 {
                println!("{e}");
            }
            for p in &beside {
                println!("{p}");
            }
            eprintln!("{} problem(s) found", errors.0.len() + beside.len());
            EXIT_PROBLEMS
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_POLICIES
        }
    }
}

fn test(dir: &Path) -> u8 {
    let set = match load(dir) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let tests_dir = dir.join("tests");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&tests_dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect(),
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", tests_dir.display());
            return EXIT_POLICIES;
        }
    };
    files.sort();
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut out = std::io::stdout().lock();
    for path in &files {
        let name = path.display();
        let file = match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| TestFile::from_yaml(&t))
        {
            Ok(f) => f,
            Err(e) => {
                let _ = writeln!(out, "FAIL {name}: cannot load test file: {e}");
                failed += 1;
                continue;
            }
        };
        if file.policies.is_some() || file.bindings.is_some() || file.compile_error.is_some() {
            let _ = writeln!(out, "FAIL {name}: a policy directory's tests use the directory's set: remove `policies`, `bindings` and `compile_error`");
            failed += 1;
            continue;
        }
        let report = run_file(&set, &file);
        for case in &report.passed {
            let _ = writeln!(out, "ok   {name}: {case}");
        }
        for (case, why) in &report.failed {
            let _ = writeln!(out, "FAIL {name}: {case}: {why}");
        }
        passed += report.passed.len();
        failed += report.failed.len();
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        if passed == 0 && failed == 0 {
            eprintln!("error: no test cases found in `{}`", tests_dir.display());
        }
        EXIT_PROBLEMS
    } else {
        0
    }
}

fn lint_dir(dir: &Path, format: OutputFormat) -> u8 {
    let findings = match crate::reload::load_policies(dir) {
        Ok(set) => lint::lint(&set),
        Err(LoadError::Compile(errors)) => lint::from_compile_errors(&errors),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_POLICIES;
        }
    };
    match format {
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&findings).unwrap_or_else(|_| "[]".into())
            );
        }
        OutputFormat::Text => {
            for f in &findings {
                println!("{f}");
            }
            let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
            println!(
                "{} error(s), {} security warning(s), {} warning(s), {} suggestion(s)",
                count(Severity::Error),
                count(Severity::SecurityWarning),
                count(Severity::Warning),
                count(Severity::Suggestion)
            );
        }
    }
    if findings
        .iter()
        .any(|f| matches!(f.severity, Severity::Error | Severity::SecurityWarning))
    {
        EXIT_PROBLEMS
    } else {
        0
    }
}

/// `n` and `one` or `many` as `n` asks.
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn audit_verify(
    key: Option<&Path>,
    head: Option<&Path>,
    expect_seq: Option<u64>,
    files: &[PathBuf],
) -> u8 {
    use crate::audit::verify::{self, Expected, VerifyError};
    use ed25519_dalek::pkcs8::DecodePublicKey;
    let key = match key {
        Some(path) => {
            let read = std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| {
                    ed25519_dalek::VerifyingKey::from_public_key_pem(&pem)
                        .map_err(|e| format!("not an Ed25519 public key (PEM): {e}"))
                });
            match read {
                Ok(k) => Some(k),
                Err(e) => {
                    eprintln!("error: `{}`: {e}", path.display());
                    return EXIT_USAGE;
                }
            }
        }
        None => None,
    };
    let mut expected = Vec::new();
    if let Some(seq) = expect_seq {
        expected.push(Expected {
            seq,
            head: None,
            source: format!("--expect-seq {seq}"),
        });
    }
    let result = match head {
        Some(path) => verify::read_head(path, key.as_ref()).and_then(|e| {
            expected.push(e);
            verify::verify_expecting(files, key.as_ref(), &expected)
        }),
        None => verify::verify_expecting(files, key.as_ref(), &expected),
    };
    match result {
        Ok(r) => {
            for loss in &r.losses {
                println!("warning: {loss}");
            }
            let records = if r.records == 0 {
                "no records".to_owned()
            } else {
                format!(
                    "{} (seq {}..{})",
                    counted(r.records, "record", "records"),
                    r.first_seq,
                    r.last_seq
                )
            };
            let continues = r.continues.as_ref().map_or_else(String::new, |name| {
                format!(
                    ", continuing `{name}` from its signed checkpoint of record {}",
                    r.first_seq.saturating_sub(1)
                )
            });
            let held: String = r
                .expected
                .iter()
                .map(|e| format!("; {} holds (record {})", e.source, e.seq))
                .collect();
            println!(
                "intact: {records}{continues}, {}, the last at {}; signatures {}{held}{}",
                counted(r.checkpoints, "checkpoint", "checkpoints"),
                r.last_checkpoint,
                if r.signatures_checked {
                    "verified"
                } else {
                    "not checked (no --key)"
                },
                if r.losses.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} lost to a crash (above)",
                        counted(r.losses.len() as u64, "partial line", "partial lines")
                    )
                }
            );
            0
        }
        Err(VerifyError::Tampered(t)) => {
            println!("NOT INTACT: {t}");
            EXIT_PROBLEMS
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

fn audit_public_key(path: &Path) -> u8 {
    use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, DecodePrivateKey, EncodePublicKey};
    let key = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|pem| {
            ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
                .map_err(|e| format!("not an Ed25519 private key (PKCS#8 PEM): {e}"))
        })
        .and_then(|k| {
            k.verifying_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| e.to_string())
        });
    match key {
        Ok(pem) => {
            print!("{pem}");
            0
        }
        Err(e) => {
            eprintln!("error: `{}`: {e}", path.display());
            EXIT_USAGE
        }
    }
}

/// Logs to standard error, filtered by `PDP_LOG` (e.g. `debug`, `pdp_server=debug`;
/// default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PDP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never in a file or a log collector.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
