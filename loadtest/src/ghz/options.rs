//! Run options, from a ghz configuration file (JSON or TOML, ghz's long key names) and ghz's
//! command-line flags, flags overriding the file, as in ghz. The file is read into a raw
//! serde shape that refuses unknown keys; [`Options::resolve`] turns it and the flags into
//! typed options and reports every problem at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::message::Call;

/// ghz's default `total`.
pub const DEFAULT_TOTAL: u64 = 200;
/// ghz's default `concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 50;
/// ghz's default `connections`.
pub const DEFAULT_CONNECTIONS: usize = 1;
/// ghz's default call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// ghz's default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options that do not make a run: every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct OptionsError {
    /// The problems.
    pub problems: Vec<String>,
}

/// A ghz configuration file as written (ghz's `runner.Config` JSON keys).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GhzConfig {
    /// ghz: a `.proto` file; pdp-loadtest has the types compiled in and ignores it.
    pub proto: Option<String>,
    /// ghz: a protoset; ignored likewise.
    pub protoset: Option<String>,
    /// ghz: proto import paths; ignored likewise.
    #[serde(rename = "import-paths")]
    pub import_paths: Option<Vec<String>>,
    /// `package.Service.Method`.
    pub call: Option<String>,
    /// `HOST:PORT`.
    pub host: Option<String>,
    /// Plaintext (h2c) instead of TLS.
    pub insecure: Option<bool>,
    /// CA certificate (PEM) verifying the server, for TLS.
    pub cacert: Option<String>,
    /// Server name to verify, for TLS.
    pub cname: Option<String>,
    /// Requests in all (ignored when `duration` is set).
    pub total: Option<u64>,
    /// Workers, i.e. calls in flight at most.
    pub concurrency: Option<u64>,
    /// Connections the workers are spread over.
    pub connections: Option<u64>,
    /// Open loop: requests per second, on a fixed schedule.
    pub rps: Option<u64>,
    /// How long to send requests (Go duration, `10s`).
    pub duration: Option<String>,
    /// What happens to calls in flight when `duration` ends: `close`, `wait`, `ignore`.
    #[serde(rename = "duration-stop")]
    pub duration_stop: Option<String>,
    /// Stop after this long even when `total` is not reached.
    #[serde(rename = "max-duration")]
    pub max_duration: Option<String>,
    /// Per-call timeout (`0`: none).
    pub timeout: Option<String>,
    /// Connection timeout.
    #[serde(rename = "connect-timeout")]
    pub connect_timeout: Option<String>,
    /// HTTP/2 keepalive ping interval.
    pub keepalive: Option<String>,
    /// The request (proto3 JSON), or an array of requests sent round-robin.
    pub data: Option<Value>,
    /// A file holding `data`.
    #[serde(rename = "data-file")]
    pub data_file: Option<String>,
    /// gRPC metadata (templates allowed in values).
    pub metadata: Option<BTreeMap<String, String>>,
    /// A file holding `metadata` (a JSON object).
    #[serde(rename = "metadata-file")]
    pub metadata_file: Option<String>,
    /// `summary`, `json` or `pretty`.
    pub format: Option<String>,
    /// Where the report goes (default: standard output).
    pub output: Option<String>,
    /// The run's name, in the report.
    pub name: Option<String>,
    /// Tags, in the JSON report.
    pub tags: Option<BTreeMap<String, String>>,
    /// Threads for the generator (1: a single-threaded runtime).
    pub cpus: Option<u64>,
    /// Results to leave out of the report, from the first.
    #[serde(rename = "skipFirst")]
    pub skip_first: Option<u64>,
}

impl GhzConfig {
    /// Reads a `.json` or `.toml` ghz configuration file.
    pub fn read(path: &Path) -> Result<GhzConfig, OptionsError> {
        let one = |p: String| OptionsError { problems: vec![p] };
        let text = std::fs::read_to_string(path)
            .map_err(|e| one(format!("`{}`: cannot read: {e}", path.display())))?;
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        if is_toml {
            toml::from_str(&text).map_err(|e| one(format!("`{}`: {e}", path.display())))
        } else {
            serde_json::from_str(&text).map_err(|e| one(format!("`{}`: {e}", path.display())))
        }
    }
}

/// ghz's command-line flags (the common ones), plus two of pdp-loadtest's own.
#[derive(Debug, Default, Clone, clap::Parser)]
#[command(
    name = "pdp-loadtest",
    version,
    about = "A ghz-compatible gRPC load generator for the PDP: ghz's config files, flags and \
             reports, with pdp.v1 Check/CheckBatch and Envoy ext_authz compiled in, an open-loop \
             mode without coordinated omission, and allow/deny counts.",
    after_help = "Flags override the config file. Calls: pdp.v1.AuthorizationService.Check, \
                  pdp.v1.AuthorizationService.CheckBatch, envoy.service.auth.v3.Authorization.Check."
)]
pub struct Cli {
    /// A ghz JSON or TOML config file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The method, `package.Service.Method` or `package.Service/Method`.
    #[arg(long)]
    pub call: Option<String>,
    /// Workers (calls in flight at most).
    #[arg(short = 'c', long)]
    pub concurrency: Option<u64>,
    /// Connections the workers are spread over.
    #[arg(long)]
    pub connections: Option<u64>,
    /// Requests in all.
    #[arg(short = 'n', long)]
    pub total: Option<u64>,
    /// Send requests for this long (e.g. `10s`, `2m`); `total` is then ignored.
    #[arg(short = 'z', long)]
    pub duration: Option<String>,
    /// Stop after this long even when `total` is not reached.
    #[arg(short = 'x', long = "max-duration")]
    pub max_duration: Option<String>,
    /// At the end of `duration`: `close` (in-flight calls are errors), `wait`, `ignore`.
    #[arg(long = "duration-stop")]
    pub duration_stop: Option<String>,
    /// Open loop: this many requests per second on a fixed schedule, latency measured from
    /// each request's scheduled time.
    #[arg(short = 'r', long)]
    pub rps: Option<u64>,
    /// Per-call timeout (`0`: none).
    #[arg(short = 't', long)]
    pub timeout: Option<String>,
    /// Connection timeout.
    #[arg(long = "connect-timeout")]
    pub connect_timeout: Option<String>,
    /// HTTP/2 keepalive ping interval.
    #[arg(long)]
    pub keepalive: Option<String>,
    /// The request as JSON (`@`: read it from standard input).
    #[arg(short = 'd', long)]
    pub data: Option<String>,
    /// A file holding the request JSON.
    #[arg(short = 'D', long = "data-file")]
    pub data_file: Option<PathBuf>,
    /// gRPC metadata as a JSON object.
    #[arg(short = 'm', long)]
    pub metadata: Option<String>,
    /// A file holding the metadata JSON.
    #[arg(short = 'M', long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// `summary` (default), `json` or `pretty`.
    #[arg(short = 'O', long)]
    pub format: Option<String>,
    /// Write the report here instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Plaintext HTTP/2 (h2c) instead of TLS.
    #[arg(long)]
    pub insecure: bool,
    /// CA certificate (PEM) verifying the server, for TLS.
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Server name to verify, for TLS.
    #[arg(long)]
    pub cname: Option<String>,
    /// The run's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Tags for the JSON report, as a JSON object.
    #[arg(long)]
    pub tags: Option<String>,
    /// Generator threads (default: the CPUs this process may run on; 1: single-threaded).
    #[arg(long)]
    pub cpus: Option<u64>,
    /// Leave the first N results out of the report.
    #[arg(long = "skipFirst")]
    pub skip_first: Option<u64>,
    /// Accepted for ghz compatibility and ignored (the types are compiled in).
    #[arg(long)]
    pub proto: Option<String>,
    /// Accepted for ghz compatibility and ignored.
    #[arg(long)]
    pub protoset: Option<String>,
    /// Accepted for ghz compatibility and ignored.
    #[arg(short = 'i', long = "import-paths")]
    pub import_paths: Option<String>,
    /// pdp-loadtest: run the same load this long first, unreported (e.g. `2s`).
    #[arg(long)]
    pub warmup: Option<String>,
    /// pdp-loadtest: the server's process id, to report its CPU per call and memory.
    #[arg(long = "server-pid")]
    pub server_pid: Option<u32>,
    /// pdp-loadtest: with `--server-pid`, sample its RSS this often (e.g. `5s`).
    #[arg(long = "sample-interval")]
    pub sample_interval: Option<String>,
    /// `HOST:PORT` of the server.
    pub host: Option<String>,
}

/// What happens to calls in flight when `duration` ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationStop {
    /// ghz's default: they are cut off and reported as errors.
    Close,
    /// They finish and are reported.
    Wait,
    /// They are cut off and not reported.
    Ignore,
}

/// The report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ghz's summary text.
    Summary,
    /// ghz's JSON report, one line.
    Json,
    /// ghz's JSON report, indented.
    Pretty,
}

/// Typed, validated run options.
#[derive(Debug, Clone)]
pub struct Options {
    /// The method.
    pub call: Call,
    /// `HOST:PORT`.
    pub host: String,
    /// Plaintext HTTP/2.
    pub insecure: bool,
    /// For TLS: the CA certificate (PEM) and the name to verify.
    pub cacert: Option<PathBuf>,
    /// For TLS: the server name to verify.
    pub cname: Option<String>,
    /// The request JSON: an object, or an array of objects sent round-robin.
    pub data: Value,
    /// gRPC metadata.
    pub metadata: BTreeMap<String, String>,
    /// Workers.
    pub concurrency: usize,
    /// Connections.
    pub connections: usize,
    /// Requests in all (`u64::MAX` with a duration).
    pub total: u64,
    /// How long to send requests.
    pub duration: Option<Duration>,
    /// Longest run.
    pub max_duration: Option<Duration>,
    /// In-flight calls when `duration` ends.
    pub duration_stop: DurationStop,
    /// Open loop rate.
    pub rps: Option<u64>,
    /// Per-call timeout.
    pub timeout: Option<Duration>,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// HTTP/2 keepalive interval.
    pub keepalive: Option<Duration>,
    /// Generator threads.
    pub cpus: usize,
    /// The run's name.
    pub name: Option<String>,
    /// Report tags.
    pub tags: BTreeMap<String, String>,
    /// Results left out of the report.
    pub skip_first: u64,
    /// Report format.
    pub format: Format,
    /// Report destination.
    pub output: Option<PathBuf>,
    /// An unreported phase of the same load before the measured one.
    pub warmup: Option<Duration>,
    /// The server process to watch.
    pub server_pid: Option<u32>,
    /// RSS sampling interval.
    pub sample_interval: Option<Duration>,
}

impl Options {
    /// Options from a ghz config file alone.
    pub fn from_config_file(path: &Path) -> Result<Options, OptionsError> {
        Options::resolve(GhzConfig::read(path)?, Cli::default())
    }

    /// Options from the command line (reading `--config` if given).
    pub fn from_cli(cli: Cli) -> Result<Options, OptionsError> {
        let config = match &cli.config {
            Some(p) => GhzConfig::read(p)?,
            None => GhzConfig::default(),
        };
        Options::resolve(config, cli)
    }

    /// Merges the flags over the file over ghz's defaults, checking everything.
    pub fn resolve(file: GhzConfig, cli: Cli) -> Result<Options, OptionsError> {
        let mut problems = Vec::new();
        let call_name = cli.call.or(file.call);
        let call = match &call_name {
            None => {
                problems.push("no call: give `call` in the config or `--call`".to_owned());
                None
            }
            Some(name) => {
                let c = Call::parse(name);
                if c.is_none() {
                    problems.push(format!(
                        "call `{name}`: pdp-loadtest can call {}",
                        Call::ALL.map(|c| c.to_string()).join(", ")
                    ));
                }
                c
            }
        };
        let host = cli.host.or(file.host).unwrap_or_default();
        if host.is_empty() {
            problems.push("no host: give `host` in the config or as the last argument".into());
        }
        let insecure = cli.insecure || file.insecure.unwrap_or(false);
        let cacert = cli.cacert.or(file.cacert.map(PathBuf::from));
        if !insecure && cacert.is_none() {
            problems.push(
                "TLS needs `--cacert` (pdp-loadtest has no system roots); use `--insecure` for plaintext"
                    .into(),
            );
        }

        let mut duration = |what: &str, text: Option<String>| -> Option<Duration> {
            let text = text?;
            match parse_go_duration(&text) {
                Ok(d) => Some(d),
                Err(e) => {
                    problems.push(format!("{what} `{text}`: {e}"));
                    None
                }
            }
        };
        let run_for = duration("duration", cli.duration.or(file.duration)).filter(|d| !d.is_zero());
        let max_duration = duration("max-duration", cli.max_duration.or(file.max_duration))
            .filter(|d| !d.is_zero());
        let timeout = duration("timeout", cli.timeout.or(file.timeout));
        let connect_timeout = duration(
            "connect-timeout",
            cli.connect_timeout.or(file.connect_timeout),
        );
        let keepalive =
            duration("keepalive", cli.keepalive.or(file.keepalive)).filter(|d| !d.is_zero());
        let sample_interval = duration("sample-interval", cli.sample_interval);
        let warmup = duration("warmup", cli.warmup).filter(|d| !d.is_zero());

        let duration_stop = match cli
            .duration_stop
            .or(file.duration_stop)
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("close") => DurationStop::Close,
            Some("wait") => DurationStop::Wait,
            Some("ignore") => DurationStop::Ignore,
            Some(other) => {
                problems.push(format!(
                    "duration-stop `{other}`: one of close, wait, ignore"
                ));
                DurationStop::Close
            }
        };

        let format = match cli.format.or(file.format).as_deref() {
            None | Some("summary") => Format::Summary,
            Some("json") => Format::Json,
            Some("pretty") => Format::Pretty,
            Some(other) => {
                problems.push(format!(
                    "format `{other}`: pdp-loadtest writes summary, json or pretty"
                ));
                Format::Summary
            }
        };

        let count = |what: &str, v: Option<u64>, default: usize, problems: &mut Vec<String>| match v
        {
            None => default,
            Some(0) => {
                problems.push(format!("{what} must be at least 1"));
                default
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        };
        let concurrency = count(
            "concurrency",
            cli.concurrency.or(file.concurrency),
            DEFAULT_CONCURRENCY,
            &mut problems,
        );
        let connections = count(
            "connections",
            cli.connections.or(file.connections),
            DEFAULT_CONNECTIONS,
            &mut problems,
        );
        if connections > concurrency {
            problems.push(format!(
                "connections ({connections}) cannot exceed concurrency ({concurrency})"
            ));
        }
        let default_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpus = count("cpus", cli.cpus.or(file.cpus), default_cpus, &mut problems);
        let rps = cli.rps.or(file.rps).filter(|&r| r > 0);
        let total = match (run_for, cli.total.or(file.total)) {
            (Some(_), _) => u64::MAX,
            (None, Some(0)) => {
                problems.push("total must be at least 1".into());
                DEFAULT_TOTAL
            }
            (None, Some(n)) => n,
            (None, None) => DEFAULT_TOTAL,
        };

        // data: `-d` (or `@` for stdin) > `-D` > the file's `data` > the file's `data-file`.
        let data = match (cli.data, cli.data_file, file.data, file.data_file) {
            (Some(d), _, _, _) => {
                let text = if d == "@" {
                    let mut s = String::new();
                    match std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
                        Ok(_) => s,
                        Err(e) => {
                            problems.push(format!("data from standard input: {e}"));
                            String::new()
                        }
                    }
                } else {
                    d
                };
                parse_json("data", &text, &mut problems)
            }
            (None, Some(p), _, _) => read_json(&p, &mut problems),
            (None, None, Some(v), _) => v,
            (None, None, None, Some(p)) => read_json(Path::new(&p), &mut problems),
            (None, None, None, None) => Value::Object(serde_json::Map::new()),
        };
        match &data {
            Value::Object(_) => {}
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {}
            Value::Array(items) if items.is_empty() => {
                problems.push("data: an array of requests must not be empty".into())
            }
            _ => problems.push("data: must be a JSON object or an array of objects".into()),
        }

        let metadata = match (
            cli.metadata,
            cli.metadata_file,
            file.metadata,
            file.metadata_file,
        ) {
            (Some(m), _, _, _) => json_map(
                "metadata",
                parse_json("metadata", &m, &mut problems),
                &mut problems,
            ),
            (None, Some(p), _, _) => {
                let v = read_json(&p, &mut problems);
                json_map("metadata", v, &mut problems)
            }
            (None, None, Some(m), _) => m,
            (None, None, None, Some(p)) => {
                let v = read_json(Path::new(&p), &mut problems);
                json_map("metadata", v, &mut problems)
            }
            (None, None, None, None) => BTreeMap::new(),
        };
        for key in metadata.keys() {
            if tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(key.as_bytes())
                .is_err()
            {
                problems.push(format!(
                    "metadata: `{key}` is not a valid ASCII metadata key"
                ));
            }
        }
        let tags = match cli.tags {
            Some(t) => json_map("tags", parse_json("tags", &t, &mut problems), &mut problems),
            None => file.tags.unwrap_or_default(),
        };
        if sample_interval.is_some() && cli.server_pid.is_none() {
            problems.push("sample-interval needs --server-pid".into());
        }

        match (call, problems.is_empty()) {
            (Some(call), true) => Ok(Options {
                call,
                host,
                insecure,
                cacert,
                cname: cli.cname.or(file.cname),
                data,
                metadata,
                concurrency,
                connections,
                total,
                duration: run_for,
                max_duration,
                duration_stop,
                rps,
                timeout: timeout
                    .map_or(Some(DEFAULT_TIMEOUT), |t| Some(t).filter(|t| !t.is_zero())),
                connect_timeout: connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                keepalive,
                cpus,
                name: cli.name.or(file.name),
                tags,
                skip_first: cli.skip_first.or(file.skip_first).unwrap_or(0),
                format,
                output: cli.output.or(file.output.map(PathBuf::from)),
                warmup,
                server_pid: cli.server_pid,
                sample_interval,
            }),
            _ => Err(OptionsError { problems }),
        }
    }
}

fn parse_json(what: &str, text: &str, problems: &mut Vec<String>) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| {
        problems.push(format!("{what}: not JSON: {e}"));
        Value::Null
    })
}

fn read_json(path: &Path, problems: &mut Vec<String>) -> Value {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_json(&format!("`{}`", path.display()), &text, problems),
        Err(e) => {
            problems.push(format!("`{}`: cannot read: {e}", path.display()));
            Value::Null
        }
    }
}

fn json_map(what: &str, v: Value, problems: &mut Vec<String>) -> BTreeMap<String, String> {
    match v {
        Value::Object(m) => m
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                other => {
                    problems.push(format!("{what}: `{k}` must be a string, not {other}"));
                    None
                }
            })
            .collect(),
        Value::Null => BTreeMap::new(),
        other => {
            problems.push(format!(
                "{what}: must be a JSON object of strings, not {other}"
            ));
            BTreeMap::new()
        }
    }
}

/// Parses a Go duration (`300ms`, `1.5s`, `2m30s`, `1h`; `0` alone).
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| "missing unit (ns, us, ms, s, m, h)".to_owned())?;
        let (num, after) = rest.split_at(num_end);
        let n: f64 = num.parse().map_err(|_| format!("bad number `{num}`"))?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => return Err(format!("unknown unit `{other}` (ns, us, ms, s, m, h)")),
        };
        total += n * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    use clap::Parser;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_go_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(
            parse_go_duration("2m30s").unwrap(),
            Duration::from_secs(150)
        );
        assert_eq!(
            parse_go_duration("1.5ms").unwrap(),
            Duration::from_micros(1500)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("10d").is_err());
    }

    #[test]
    fn flags_override_the_config_file() {
        let file: GhzConfig = serde_json::from_str(
            r#"{"call": "pdp.v1.AuthorizationService.Check", "host": "a:1", "insecure": true,
                "concurrency": 8, "connections": 2, "total": 1000, "data": {"action": "x"}}"#,
        )
        .unwrap();
        let cli = Cli::parse_from(["pdp-loadtest", "-c", "16", "-z", "2s", "-O", "json", "b:2"]);
        let o = Options::resolve(file, cli).unwrap();
        assert_eq!(
            (o.host.as_str(), o.concurrency, o.connections),
            ("b:2", 16, 2)
        );
        assert_eq!(o.duration, Some(Duration::from_secs(2)));
        assert_eq!(o.total, u64::MAX, "a duration makes total irrelevant");
        assert_eq!(o.format, Format::Json);
        assert_eq!(o.timeout, Some(DEFAULT_TIMEOUT));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let file: GhzConfig = serde_json::from_str(
            r#"{"call": "x.Y.Z", "concurrency": 1, "connections": 2, "duration": "5"}"#,
        )
        .unwrap();
        let e = Options::resolve(file, Cli::default()).unwrap_err();
        assert!(e.problems.len() >= 4, "{e}");
        let unknown = serde_json::from_str::<GhzConfig>(r#"{"calll": "x"}"#);
        assert!(unknown.is_err(), "unknown keys are refused");
    }
}
