//! `pdp serve` configuration: built-in defaults, then a TOML file (`--config`), then `PDP_*`
//! environment variables, then command-line flags, each overriding the one before. The file
//! is parsed into its raw shape (unknown keys are errors), then everything is validated into
//! [`ServeConfig`], reporting every problem at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::identity::IdentityConfig;
use crate::serve::ServeLimits;

/// Default policy directory.
pub const DEFAULT_POLICIES: &str = "policies";
/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default most items in one `CheckBatch`.
pub const DEFAULT_MAX_BATCH_ITEMS: usize = 1000;
/// Default decision cache TTL, seconds.
pub const DEFAULT_CACHE_TTL_SECS: u64 = 10;
/// Default decision cache size, MiB.
pub const DEFAULT_CACHE_MIB: u64 = 64;

/// `on` / `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Settings given on the command line or in `PDP_*` variables (flags win).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file; environment variables and flags override it.
    #[arg(long, env = "PDP_CONFIG")]
    pub config: Option<PathBuf>,
    /// The policy directory [default: policies].
    #[arg(long, env = "PDP_POLICIES")]
    pub policies: Option<PathBuf>,
    /// The address to listen on; port 0 picks a free port [default: 127.0.0.1:50051].
    #[arg(long, env = "PDP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Most items in one CheckBatch [default: 1000].
    #[arg(long, env = "PDP_MAX_BATCH_ITEMS")]
    pub max_batch_items: Option<usize>,
    /// Watch the policy directory for changes [default: true] (SIGHUP reloads either way).
    #[arg(long, env = "PDP_WATCH")]
    pub watch: Option<bool>,
    /// Serve (and reload to) a policy set with no statements, which denies every request
    /// [default: false: such a set is refused].
    #[arg(long, env = "PDP_ALLOW_EMPTY_POLICIES", num_args = 0..=1, default_missing_value = "true")]
    pub allow_empty_policies: Option<bool>,
    /// A JWKS file with the keys that sign subject tokens (no tokens accepted without one).
    #[arg(long, env = "PDP_JWKS")]
    pub jwks: Option<PathBuf>,
    /// A URL serving the JWKS (fetched at start, every --jwks-refresh-secs, and soon after a
    /// token names an unknown key); instead of --jwks.
    #[arg(long, env = "PDP_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// How often the JWKS URL is fetched again, in seconds [default: 300].
    #[arg(long, env = "PDP_JWKS_REFRESH_SECS")]
    pub jwks_refresh_secs: Option<u64>,
    /// The least time between two fetches of the JWKS URL, in seconds [default: 10].
    #[arg(long, env = "PDP_JWKS_MIN_GAP_SECS")]
    pub jwks_min_gap_secs: Option<u64>,
    /// The required token issuer (`iss`).
    #[arg(long, env = "PDP_ISSUER")]
    pub issuer: Option<String>,
    /// The required token audience (`aud`).
    #[arg(long, env = "PDP_AUDIENCE")]
    pub audience: Option<String>,
    /// Clock skew allowed on `exp`/`nbf`, in seconds [default: 30].
    #[arg(long, env = "PDP_TOKEN_LEEWAY")]
    pub token_leeway: Option<u64>,
    /// Claims holding roles (repeatable; comma-separated in the variable) [default: roles, groups].
    #[arg(long = "roles-claim", env = "PDP_ROLES_CLAIMS", value_delimiter = ',')]
    pub roles_claims: Option<Vec<String>>,
    /// The claim holding principal tags [default: tags].
    #[arg(long, env = "PDP_TAGS_CLAIM")]
    pub tags_claim: Option<String>,
    /// Cache decisions [default: on].
    #[arg(long, value_enum, env = "PDP_DECISION_CACHE")]
    pub decision_cache: Option<Switch>,
    /// How long a cached decision may be served, in seconds [default: 10].
    #[arg(long, env = "PDP_DECISION_CACHE_TTL")]
    pub decision_cache_ttl: Option<u64>,
    /// Memory the decision cache may use, in MiB [default: 64].
    #[arg(long, env = "PDP_DECISION_CACHE_MIB")]
    pub decision_cache_mib: Option<u64>,
    /// Calls served at once per connection; more are refused with RESOURCE_EXHAUSTED [default: 256].
    #[arg(long, env = "PDP_MAX_CONCURRENCY")]
    pub max_concurrency: Option<usize>,
    /// Cancel a call still running after this many milliseconds [default: 2000].
    #[arg(long, env = "PDP_CALL_TIMEOUT_MS")]
    pub call_timeout_ms: Option<u64>,
    /// HTTP/2 streams one connection may open at once (advertised as
    /// MAX_CONCURRENT_STREAMS) [default: 100].
    #[arg(long, env = "PDP_MAX_STREAMS")]
    pub max_streams: Option<u32>,
    /// Calls in flight in the whole server, both ports; more are refused with
    /// RESOURCE_EXHAUSTED (HTTP 503) [default: 1024].
    #[arg(long, env = "PDP_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Connections open at once on the gRPC port; more are closed at once [default: 512].
    #[arg(long, env = "PDP_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections open at once on the HTTP port [default: 256].
    #[arg(long, env = "PDP_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// Close a new connection whose first bytes (TLS handshake, HTTP/2 preface, HTTP/1
    /// request headers) take longer than this many milliseconds [default: 10000].
    #[arg(long, env = "PDP_HANDSHAKE_TIMEOUT_MS")]
    pub handshake_timeout_ms: Option<u64>,
    /// Close a connection whose peer sends nothing for this many milliseconds (HTTP/2 peers
    /// are pinged, so a live one stays) [default: 60000].
    #[arg(long, env = "PDP_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "PDP_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, env = "PDP_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "PDP_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// Client certificate SANs (SPIFFE IDs, DNS names; a trailing `*` matches a prefix) whose
    /// holders may assert subjects (repeatable; comma-separated in the variable).
    #[arg(
        long = "trusted-caller",
        env = "PDP_TRUSTED_CALLERS",
        value_delimiter = ','
    )]
    pub trusted_callers: Option<Vec<String>>,
    /// Let loopback callers assert subjects (and call) [default: true].
    #[arg(long, env = "PDP_TRUST_LOOPBACK")]
    pub trust_loopback: Option<bool>,
    /// Client certificate SANs allowed to use the admin service and publish signals
    /// (repeatable; comma-separated in the variable) [default: none].
    #[arg(
        long = "admin-caller",
        env = "PDP_ADMIN_CALLERS",
        value_delimiter = ','
    )]
    pub admin_callers: Option<Vec<String>>,
    /// A file holding the admin bearer token (one line, at least 32 characters): callers
    /// sending `authorization: Bearer <token>` may use the admin service and publish signals.
    #[arg(long, env = "PDP_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// DEVELOPMENT ONLY: let every loopback caller (every container of a pod) use the admin
    /// service and publish signals [default: false].
    #[arg(long, env = "PDP_ADMIN_LOOPBACK")]
    pub admin_loopback: Option<bool>,
    /// Client certificate SANs allowed to ask for decisions at all (repeatable;
    /// comma-separated in the variable) [default: anyone who can connect].
    #[arg(
        long = "check-caller",
        env = "PDP_CHECK_CALLERS",
        value_delimiter = ','
    )]
    pub check_callers: Option<Vec<String>>,
    /// The address of the HTTP port (AuthZEN, SSF push delivery, /metrics, /healthz,
    /// /readyz), or `off` [default: 127.0.0.1:8180].
    #[arg(long, env = "PDP_HTTP_LISTEN")]
    pub http_listen: Option<String>,
    /// Serve /metrics on this address of its own instead of the HTTP port, or `off` (on the
    /// HTTP port) [default: off].
    #[arg(long, env = "PDP_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Where signals live: `memory` (this replica only) or a `redis://` URL shared by
    /// replicas [default: memory].
    #[arg(long, env = "PDP_SIGNALS")]
    pub signals: Option<String>,
    /// Deny sensitive actions once the shared signal store has been out of reach this many
    /// milliseconds [default: 10000].
    #[arg(long, env = "PDP_SIGNALS_STALE_AFTER_MS")]
    pub signals_stale_after_ms: Option<u64>,
    /// Sensitive actions (`service:Action` patterns; repeatable; comma-separated in the
    /// variable) [default: iam:*, *:Delete*].
    #[arg(
        long = "sensitive-action",
        env = "PDP_SENSITIVE_ACTIONS",
        value_delimiter = ','
    )]
    pub sensitive_actions: Option<Vec<String>>,
    /// Raise a subject's risk when it accumulates denies or sensitive actions [default: off].
    #[arg(long, value_enum, env = "PDP_DETECTION")]
    pub detection: Option<Switch>,
    /// Write every decision to this tamper-evident JSON-lines file [default: off].
    #[arg(long, env = "PDP_DECISION_LOG")]
    pub decision_log: Option<PathBuf>,
    /// The Ed25519 private key (PKCS#8 PEM) that signs decision log checkpoints.
    #[arg(long, env = "PDP_DECISION_LOG_KEY")]
    pub decision_log_key: Option<PathBuf>,
    /// When the decision log cannot keep up: `drop` records (counted) or `deny` decisions
    /// [default: drop].
    #[arg(long, value_enum, env = "PDP_DECISION_LOG_OVERFLOW")]
    pub decision_log_overflow: Option<OverflowArg>,
    /// Export traces over OTLP/gRPC to this endpoint (e.g. http://127.0.0.1:4317) [default:
    /// no tracing].
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// The share of new traces recorded (callers' sampled traces always are) [default: 0.1].
    #[arg(long, env = "PDP_TRACE_SAMPLE_RATIO")]
    pub trace_sample_ratio: Option<f64>,
    /// Record per-decision metrics (decisions, latency, cache lookups) [default: on].
    #[arg(long, value_enum, env = "PDP_METRICS")]
    pub metrics: Option<Switch>,
    /// The public base URL of the AuthZEN API (e.g. https://pdp.example.com), the
    /// metadata's `policy_decision_point` [default: no metadata published].
    #[arg(long, env = "PDP_AUTHZEN_BASE_URL")]
    pub authzen_base_url: Option<String>,
}

/// `drop` / `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OverflowArg {
    /// Drop the record, count it.
    Drop,
    /// Deny the decision.
    Deny,
}

/// The TOML file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    policies: Option<PathBuf>,
    listen: Option<String>,
    max_batch_items: Option<usize>,
    watch: Option<bool>,
    allow_empty_policies: Option<bool>,
    #[serde(default)]
    identity: FileIdentity,
    #[serde(default)]
    decision_cache: FileCache,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    trust: FileTrust,
    http_listen: Option<String>,
    metrics_listen: Option<String>,
    #[serde(default)]
    signals: FileSignals,
    #[serde(default)]
    decision_log: FileDecisionLog,
    #[serde(default)]
    tracing: FileTracing,
    metrics: Option<bool>,
    authzen_base_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTracing {
    otlp_endpoint: Option<String>,
    sample_ratio: Option<f64>,
    service_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDecisionLog {
    path: Option<PathBuf>,
    signing_key: Option<PathBuf>,
    overflow: Option<crate::audit::Overflow>,
    queue: Option<usize>,
    checkpoint_every: Option<u64>,
    checkpoint_interval_secs: Option<u64>,
    max_mib: Option<u64>,
    fields: Option<Vec<String>>,
    mask: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSignals {
    store: Option<String>,
    redis_prefix: Option<String>,
    stale_after_ms: Option<u64>,
    sensitive_actions: Option<Vec<String>>,
    retention_secs: Option<u64>,
    prune_interval_secs: Option<u64>,
    max_entries: Option<usize>,
    set_max_age_secs: Option<u64>,
    generation_wait_ms: Option<u64>,
    publish_claims_authoritative: Option<bool>,
    #[serde(default)]
    detection: FileDetection,
    #[serde(default)]
    transmitters: Vec<FileTransmitter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDetection {
    enabled: Option<bool>,
    window_secs: Option<u64>,
    max_denies: Option<u32>,
    max_sensitive: Option<u32>,
    raise_to: Option<String>,
    hold_secs: Option<u64>,
}

/// An SSF transmitter allowed to push signed events.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTransmitter {
    /// The SETs' `iss`.
    pub issuer: String,
    /// The `aud` the SETs must carry (this PDP).
    pub audience: String,
    /// The transmitter's signing keys (a JWKS file).
    pub jwks: PathBuf,
    /// Whether its `token-claims-change` events may add roles and tags (otherwise they only
    /// narrow them) [default: false].
    #[serde(default)]
    pub claims_authoritative: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTrust {
    loopback: Option<bool>,
    callers: Option<Vec<String>>,
    check_callers: Option<Vec<String>>,
    admin_callers: Option<Vec<String>>,
    admin_token_file: Option<PathBuf>,
    admin_loopback: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIdentity {
    jwks: Option<PathBuf>,
    jwks_url: Option<String>,
    jwks_refresh_secs: Option<u64>,
    jwks_min_gap_secs: Option<u64>,
    issuer: Option<String>,
    audience: Option<String>,
    token_leeway: Option<u64>,
    roles_claims: Option<Vec<String>>,
    tags_claim: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCache {
    enabled: Option<bool>,
    ttl_secs: Option<u64>,
    max_mib: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_concurrency: Option<usize>,
    call_timeout_ms: Option<u64>,
    max_streams: Option<u32>,
    max_in_flight: Option<usize>,
    max_connections: Option<usize>,
    http_max_connections: Option<usize>,
    handshake_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
}

/// Where signing keys are fetched from, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    /// The JWKS URL.
    pub url: String,
    /// How often the keys are fetched again.
    pub refresh: Duration,
    /// Least time between two fetches (an unknown `kid` asks for one early).
    pub min_gap: Duration,
}

/// The decision cache's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most bytes held (keys and answers, approximately).
    pub max_bytes: u64,
    /// Longest an answer is served from the cache.
    pub ttl: Duration,
}

/// The TLS files of the gRPC port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPaths {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
    /// The CA for client certificates (mutual TLS); `None`: none asked.
    pub client_ca: Option<PathBuf>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The policy directory.
    pub policies: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// Most items in one `CheckBatch`.
    pub max_batch_items: usize,
    /// Whether to watch the policy directory.
    pub watch: bool,
    /// Whether a policy set with no statements may be served.
    pub allow_empty_policies: bool,
    /// The JWKS file, when tokens are verified with fixed keys.
    pub jwks: Option<PathBuf>,
    /// The JWKS URL, when keys are fetched.
    pub jwks_url: Option<JwksUrl>,
    /// How tokens are checked and mapped.
    pub identity: IdentityConfig,
    /// The decision cache; `None` when off.
    pub cache: Option<CacheConfig>,
    /// Transport limits.
    pub limits: ServeLimits,
    /// TLS files; `None`: plaintext.
    pub tls: Option<TlsPaths>,
    /// Which callers may assert subjects.
    pub trust: crate::trust::TrustPolicy,
    /// The HTTP port's address; `None`: off.
    pub http_listen: Option<SocketAddr>,
    /// The metrics port's address; `None`: `/metrics` is on the HTTP port.
    pub metrics_listen: Option<SocketAddr>,
    /// How signals are kept and shared.
    pub signals: crate::signals::shared::SignalsConfig,
    /// SSF transmitters.
    pub transmitters: Vec<FileTransmitter>,
    /// Oldest SET accepted (and how long `jti`s are remembered).
    pub set_max_age: Duration,
    /// The decision log, when on.
    pub decision_log: Option<crate::audit::AuditConfig>,
    /// Tracing, when on.
    pub tracing: Option<crate::telemetry::TracingConfig>,
    /// Per-decision metrics.
    pub metrics: bool,
    /// The AuthZEN API's public base URL (no trailing `/`); `None`: no metadata published.
    pub authzen_base_url: Option<String>,
}

impl ServeConfig {
    /// Merges defaults, the file named by `args.config`, and `args` (environment and flags),
    /// reporting every problem.
    pub fn resolve(args: &ServeArgs) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let file = match &args.config {
            Some(path) => read_file(path).unwrap_or_else(|e| {
                problems.extend(e);
                FileConfig::default()
            }),
            None => FileConfig::default(),
        };
        let listen = match (&args.listen, &file.listen) {
            (Some(a), _) => Some(*a),
            (None, Some(text)) => text
                .parse()
                .map_err(|e| problems.push(format!("`listen`: `{text}` is not an address: {e}")))
                .ok(),
            (None, None) => DEFAULT_LISTEN.parse().ok(),
        };
        let positive = |name: &str, v: u64, problems: &mut Vec<String>| {
            if v == 0 {
                problems.push(format!("`{name}` must be greater than 0"));
            }
            v
        };
        let max_batch_items = args
            .max_batch_items
            .or(file.max_batch_items)
            .unwrap_or(DEFAULT_MAX_BATCH_ITEMS);
        positive("max_batch_items", max_batch_items as u64, &mut problems);
        let cache_on = match args.decision_cache {
            Some(s) => s == Switch::On,
            None => file.decision_cache.enabled.unwrap_or(true),
        };
        let ttl = args
            .decision_cache_ttl
            .or(file.decision_cache.ttl_secs)
            .unwrap_or(DEFAULT_CACHE_TTL_SECS);
        let mib = positive(
            "decision_cache.max_mib",
            args.decision_cache_mib
                .or(file.decision_cache.max_mib)
                .unwrap_or(DEFAULT_CACHE_MIB),
            &mut problems,
        );
        let concurrency = args
            .max_concurrency
            .or(file.limits.max_concurrency)
            .unwrap_or(256);
        positive("limits.max_concurrency", concurrency as u64, &mut problems);
        let timeout_ms = positive(
            "limits.call_timeout_ms",
            args.call_timeout_ms
                .or(file.limits.call_timeout_ms)
                .unwrap_or(2000),
            &mut problems,
        );
        let d = crate::serve::DEFAULT_SERVE_LIMITS;
        let l = &file.limits;
        let millis = |name: &str, v: Option<u64>, default: Duration, problems: &mut Vec<String>| {
            v.map_or(default, |ms| {
                Duration::from_millis(positive(&format!("limits.{name}"), ms, problems))
            })
        };
        let max_streams = args.max_streams.or(l.max_streams).unwrap_or(d.max_streams);
        positive("limits.max_streams", u64::from(max_streams), &mut problems);
        let max_in_flight = args
            .max_in_flight
            .or(l.max_in_flight)
            .unwrap_or(d.max_in_flight);
        positive("limits.max_in_flight", max_in_flight as u64, &mut problems);
        let max_connections = args
            .max_connections
            .or(l.max_connections)
            .unwrap_or(d.max_connections);
        positive(
            "limits.max_connections",
            max_connections as u64,
            &mut problems,
        );
        let http_max_connections = args
            .http_max_connections
            .or(l.http_max_connections)
            .unwrap_or(d.http_max_connections);
        positive(
            "limits.http_max_connections",
            http_max_connections as u64,
            &mut problems,
        );
        let handshake_timeout = millis(
            "handshake_timeout_ms",
            args.handshake_timeout_ms.or(l.handshake_timeout_ms),
            d.handshake_timeout,
            &mut problems,
        );
        let idle_timeout = millis(
            "idle_timeout_ms",
            args.idle_timeout_ms.or(l.idle_timeout_ms),
            d.idle_timeout,
            &mut problems,
        );
        let roles_claims = args
            .roles_claims
            .clone()
            .or(file.identity.roles_claims.clone())
            .unwrap_or_else(|| IdentityConfig::default().roles_claims);
        if roles_claims.iter().any(|c| c.trim().is_empty()) {
            problems.push("`identity.roles_claims` contains an empty claim name".into());
        }
        let identity = IdentityConfig {
            issuer: args.issuer.clone().or(file.identity.issuer.clone()),
            audience: args.audience.clone().or(file.identity.audience.clone()),
            leeway_secs: args
                .token_leeway
                .or(file.identity.token_leeway)
                .unwrap_or(30),
            roles_claims,
            tags_claim: args
                .tags_claim
                .clone()
                .or(file.identity.tags_claim.clone())
                .unwrap_or_else(|| "tags".into()),
            ..IdentityConfig::default()
        };
        let cert = args.tls_cert.clone().or(file.tls.cert.clone());
        let key = args.tls_key.clone().or(file.tls.key.clone());
        let client_ca = args.client_ca.clone().or(file.tls.client_ca.clone());
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsPaths {
                cert,
                key,
                client_ca,
            }),
            (None, None) => {
                if client_ca.is_some() {
                    problems.push("`tls.client_ca` needs `tls.cert` and `tls.key`".into());
                }
                None
            }
            _ => {
                problems.push("`tls.cert` and `tls.key` go together".into());
                None
            }
        };
        let callers = args
            .trusted_callers
            .clone()
            .or(file.trust.callers.clone())
            .unwrap_or_default();
        if !callers.is_empty() && tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
            problems.push("trusted callers are identified by client certificates: set `tls.client_ca` (with `tls.cert` and `tls.key`)".into());
        }
        if callers
            .iter()
            .any(|c| c.trim().is_empty() || c.trim() == "*")
        {
            problems.push("`trust.callers` may not be empty or `*`".into());
        }
        let check_callers = args
            .check_callers
            .clone()
            .or(file.trust.check_callers.clone())
            .unwrap_or_default();
        if !check_callers.is_empty() && tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
            problems.push("check callers are identified by client certificates: set `tls.client_ca` (with `tls.cert` and `tls.key`)".into());
        }
        let admin_callers = args
            .admin_callers
            .clone()
            .or(file.trust.admin_callers.clone())
            .unwrap_or_default();
        if !admin_callers.is_empty() && tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
            problems.push("admin callers are identified by client certificates: set `tls.client_ca` (with `tls.cert` and `tls.key`)".into());
        }
        if admin_callers
            .iter()
            .any(|c| c.trim().is_empty() || c.trim() == "*")
        {
            problems.push("`trust.admin_callers` may not be empty or `*`".into());
        }
        let admin_token = args
            .admin_token_file
            .clone()
            .or(file.trust.admin_token_file.clone())
            .and_then(|path| {
                admin_token(&path)
                    .map_err(|e| problems.push(format!("`trust.admin_token_file`: {e}")))
                    .ok()
            });
        let trust = crate::trust::TrustPolicy {
            loopback: args.trust_loopback.or(file.trust.loopback).unwrap_or(true),
            sans: callers,
            check_callers,
            admin: crate::trust::AdminGrant {
                loopback: args
                    .admin_loopback
                    .or(file.trust.admin_loopback)
                    .unwrap_or(false),
                callers: admin_callers,
                token_sha256: admin_token,
            },
        };
        let jwks = args.jwks.clone().or(file.identity.jwks.clone());
        let jwks_url = args.jwks_url.clone().or(file.identity.jwks_url.clone());
        if jwks.is_some() && jwks_url.is_some() {
            problems.push("`identity.jwks` and `identity.jwks_url` exclude each other".into());
        }
        let jwks_url = jwks_url.map(|url| {
            let every = args
                .jwks_refresh_secs
                .or(file.identity.jwks_refresh_secs)
                .unwrap_or(300);
            let gap = args
                .jwks_min_gap_secs
                .or(file.identity.jwks_min_gap_secs)
                .unwrap_or(10);
            JwksUrl {
                url,
                refresh: Duration::from_secs(every.max(1)),
                min_gap: Duration::from_secs(gap),
            }
        });
        let http_listen = match args.http_listen.as_ref().or(file.http_listen.as_ref()) {
            Some(text) if text == "off" => None,
            Some(text) => text
                .parse()
                .map_err(|e| {
                    problems.push(format!(
                        "`http_listen`: `{text}` is not an address or `off`: {e}"
                    ))
                })
                .ok(),
            None => DEFAULT_HTTP_LISTEN.parse().ok(),
        };
        let metrics_listen = match args
            .metrics_listen
            .as_ref()
            .or(file.metrics_listen.as_ref())
        {
            None => None,
            Some(text) if text == "off" => None,
            Some(text) => text
                .parse()
                .map_err(|e| {
                    problems.push(format!(
                        "`metrics_listen`: `{text}` is not an address or `off`: {e}"
                    ))
                })
                .ok(),
        };

        let signals = signals_config(args, &file.signals, &mut problems);
        for (i, t) in file.signals.transmitters.iter().enumerate() {
            if t.issuer.is_empty() || t.audience.is_empty() {
                problems.push(format!(
                    "`signals.transmitters[{i}]`: `issuer` and `audience` may not be empty"
                ));
            }
        }
        let set_max_age = Duration::from_secs(positive(
            "signals.set_max_age_secs",
            file.signals.set_max_age_secs.unwrap_or(3600),
            &mut problems,
        ));
        let decision_log = decision_log_config(args, &file.decision_log, &mut problems);
        let ratio = args
            .trace_sample_ratio
            .or(file.tracing.sample_ratio)
            .unwrap_or(0.1);
        if !(0.0..=1.0).contains(&ratio) {
            problems.push(format!(
                "`tracing.sample_ratio`: {ratio} is not between 0 and 1"
            ));
        }
        let tracing = args
            .otlp_endpoint
            .clone()
            .or(file.tracing.otlp_endpoint.clone())
            .filter(|e| !e.is_empty())
            .map(|endpoint| {
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    problems.push(format!(
                        "`tracing.otlp_endpoint`: `{endpoint}` is not an http:// or https:// URL"
                    ));
                }
                crate::telemetry::TracingConfig {
                    endpoint,
                    sample_ratio: ratio,
                    service_name: file
                        .tracing
                        .service_name
                        .clone()
                        .unwrap_or_else(|| "pdp".into()),
                }
            });
        let authzen_base_url = args
            .authzen_base_url
            .clone()
            .or(file.authzen_base_url.clone())
            .and_then(|url| {
                crate::authzen::base_url(&url)
                    .map_err(|e| problems.push(format!("`authzen_base_url`: {e}")))
                    .ok()
            });
        let (Some(listen), true) = (listen, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(ServeConfig {
            policies: args
                .policies
                .clone()
                .or(file.policies)
                .unwrap_or_else(|| DEFAULT_POLICIES.into()),
            listen,
            max_batch_items,
            watch: args.watch.or(file.watch).unwrap_or(true),
            allow_empty_policies: args
                .allow_empty_policies
                .or(file.allow_empty_policies)
                .unwrap_or(false),
            jwks,
            jwks_url,
            identity,
            cache: (cache_on && ttl > 0).then(|| CacheConfig {
                max_bytes: mib.saturating_mul(1 << 20),
                ttl: Duration::from_secs(ttl),
            }),
            limits: ServeLimits {
                concurrency_per_connection: concurrency,
                call_timeout: Duration::from_millis(timeout_ms),
                max_streams,
                max_in_flight,
                max_connections,
                http_max_connections,
                handshake_timeout,
                idle_timeout,
            },
            tls,
            trust,
            http_listen,
            metrics_listen,
            signals,
            transmitters: file.signals.transmitters,
            set_max_age,
            decision_log,
            tracing,
            metrics: match args.metrics {
                Some(s) => s == Switch::On,
                None => file.metrics.unwrap_or(true),
            },
            authzen_base_url,
        })
    }
}

fn decision_log_config(
    args: &ServeArgs,
    file: &FileDecisionLog,
    problems: &mut Vec<String>,
) -> Option<crate::audit::AuditConfig> {
    let path = args.decision_log.clone().or(file.path.clone())?;
    let mut c = crate::audit::AuditConfig::new(path);
    c.signing_key = args.decision_log_key.clone().or(file.signing_key.clone());
    c.overflow = match args.decision_log_overflow {
        Some(OverflowArg::Drop) => crate::audit::Overflow::Drop,
        Some(OverflowArg::Deny) => crate::audit::Overflow::Deny,
        None => file.overflow.unwrap_or(crate::audit::Overflow::Drop),
    };
    let positive = |name: &str, v: u64, problems: &mut Vec<String>| {
        if v == 0 {
            problems.push(format!("`decision_log.{name}` must be greater than 0"));
        }
        v
    };
    c.queue = usize::try_from(positive(
        "queue",
        file.queue.unwrap_or(c.queue) as u64,
        problems,
    ))
    .unwrap_or(usize::MAX);
    c.checkpoint_every = positive(
        "checkpoint_every",
        file.checkpoint_every.unwrap_or(c.checkpoint_every),
        problems,
    );
    c.checkpoint_interval = Duration::from_secs(positive(
        "checkpoint_interval_secs",
        file.checkpoint_interval_secs.unwrap_or(10),
        problems,
    ));
    c.max_bytes =
        positive("max_mib", file.max_mib.unwrap_or(100), problems).saturating_mul(1 << 20);
    c.fields.clone_from(&file.fields);
    c.mask = file.mask.clone().unwrap_or_default();
    for f in c.fields.iter().flatten().chain(&c.mask) {
        if !crate::audit::FIELDS.contains(&f.as_str()) {
            problems.push(format!(
                "`decision_log`: `{f}` is not a field (one of {})",
                crate::audit::FIELDS.join(", ")
            ));
        }
    }
    Some(c)
}

/// Default HTTP listen address: loopback only.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8180";

fn signals_config(
    args: &ServeArgs,
    file: &FileSignals,
    problems: &mut Vec<String>,
) -> crate::signals::shared::SignalsConfig {
    use crate::signals::detect::DetectionRule;
    use crate::signals::shared::SignalsConfig;
    let defaults = SignalsConfig::default();
    let redis = match args.signals.as_ref().or(file.store.as_ref()) {
        None => None,
        Some(s) if s == "memory" => None,
        Some(s) if s.starts_with("redis://") || s.starts_with("rediss://") => Some(s.clone()),
        Some(s) => {
            problems.push(format!(
                "`signals.store`: `{s}` is neither `memory` nor a `redis://` URL"
            ));
            None
        }
    };
    let stale_after_ms = args
        .signals_stale_after_ms
        .or(file.stale_after_ms)
        .unwrap_or(10_000);
    if stale_after_ms == 0 {
        problems.push("`signals.stale_after_ms` must be greater than 0".into());
    }
    let sensitive_actions = args
        .sensitive_actions
        .clone()
        .or(file.sensitive_actions.clone())
        .unwrap_or(defaults.sensitive_actions);
    for a in &sensitive_actions {
        if !a.contains(':') && a != "*" {
            problems.push(format!(
                "`signals.sensitive_actions`: `{a}` is not a `service:Action` pattern"
            ));
        }
    }
    let d = &file.detection;
    let enabled = match args.detection {
        Some(s) => s == Switch::On,
        None => d.enabled.unwrap_or(false),
    };
    let raise_to = d.raise_to.as_deref().unwrap_or("high");
    let raise_to = crate::signals::RiskLevel::parse(raise_to).unwrap_or_else(|| {
        problems.push(format!(
            "`signals.detection.raise_to`: `{raise_to}` is not low, medium or high"
        ));
        crate::signals::RiskLevel::High
    });
    let rule = DetectionRule {
        window: Duration::from_secs(d.window_secs.unwrap_or(60).max(1)),
        max_denies: d.max_denies.unwrap_or(20),
        max_sensitive: d.max_sensitive.unwrap_or(10),
        raise_to,
        hold: Duration::from_secs(d.hold_secs.unwrap_or(900)),
    };
    if enabled && rule.max_denies == 0 && rule.max_sensitive == 0 {
        problems.push(
            "`signals.detection`: `max_denies` and `max_sensitive` are both 0, nothing is counted"
                .into(),
        );
    }
    if file.generation_wait_ms.is_some_and(|ms| ms > 10_000) {
        problems.push(
            "`signals.generation_wait_ms` may be at most 10000 (a Check waits this long at most)"
                .into(),
        );
    }
    let store = crate::signals::store::StoreConfig {
        max_entries: file.max_entries.unwrap_or(defaults.store.max_entries),
        retention_secs: i64::try_from(file.retention_secs.unwrap_or(86_400)).unwrap_or(i64::MAX),
        ..defaults.store
    };
    if store.max_entries == 0 || store.retention_secs == 0 {
        problems.push(
            "`signals.max_entries` and `signals.retention_secs` must be greater than 0".into(),
        );
    }
    SignalsConfig {
        store,
        redis,
        redis_prefix: file.redis_prefix.clone().unwrap_or(defaults.redis_prefix),
        stale_after: Duration::from_millis(stale_after_ms),
        sensitive_actions,
        detection: enabled.then_some(rule),
        prune_every: Duration::from_secs(file.prune_interval_secs.unwrap_or(60).max(1)),
        generation_wait: file
            .generation_wait_ms
            .map_or(defaults.generation_wait, Duration::from_millis),
        publish_claims_authoritative: file.publish_claims_authoritative.unwrap_or(false),
    }
}

/// Least length of the admin bearer token.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The SHA-256 digest of the admin token in `path` (its first line, trimmed).
fn admin_token(path: &Path) -> Result<[u8; 32], String> {
    use sha2::Digest;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(
            std::fs::File::open(path)
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?,
            4096,
        ),
        &mut text,
    )
    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.chars().count() < MIN_ADMIN_TOKEN_CHARS || token.contains(char::is_whitespace) {
        return Err(format!(
            "`{}` must hold a token of at least {MIN_ADMIN_TOKEN_CHARS} characters, without spaces, on its first line",
            path.display()
        ));
    }
    Ok(sha2::Sha256::digest(token.as_bytes()).into())
}

/// Most problems reported from one file.
const MAX_FILE_PROBLEMS: usize = 64;

/// The file's raw shape, or every problem in it: all syntax errors, then every unknown key
/// and bad value (each one found is set aside and the rest read again).
fn read_file(path: &Path) -> Result<FileConfig, Vec<String>> {
    use serde::Deserialize as _;
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("cannot read `{}`: {e}", path.display())])?;
    let at = |e: &toml::de::Error| {
        let line = e
            .span()
            .and_then(|s| text.get(..s.start))
            .map_or(0, |before| before.matches('\n').count() + 1);
        format!("`{}`, line {line}: {}", path.display(), e.message().trim())
    };
    let (mut root, syntax) = toml::de::DeTable::parse_recoverable(&text);
    if !syntax.is_empty() {
        return Err(syntax.iter().take(MAX_FILE_PROBLEMS).map(at).collect());
    }
    let mut problems = Vec::new();
    while problems.len() < MAX_FILE_PROBLEMS {
        match FileConfig::deserialize(toml::de::Deserializer::from(root.clone())) {
            Ok(file) if problems.is_empty() => return Ok(file),
            Ok(_) => break,
            Err(e) => {
                problems.push(at(&e));
                match e.span() {
                    Some(span) if set_aside(root.get_mut(), &span) => {}
                    _ => break,
                }
            }
        }
    }
    Err(problems)
}

/// Removes the entry of `table` (at any depth) that the span of a problem points into: the
/// key named, or the value found wrong; whether one was found.
fn set_aside(table: &mut toml::de::DeTable<'_>, span: &std::ops::Range<usize>) -> bool {
    let inside = |s: std::ops::Range<usize>| s.start <= span.start && span.end <= s.end;
    let mut found = None;
    for (key, value) in table.iter_mut() {
        let value_span = value.span();
        let nested = match value.get_mut() {
            toml::de::DeValue::Table(t) => set_aside(t, span),
            toml::de::DeValue::Array(items) => items.iter_mut().any(|item| match item.get_mut() {
                toml::de::DeValue::Table(t) => set_aside(t, span),
                _ => false,
            }),
            _ => false,
        };
        if nested {
            return true;
        }
        if inside(key.span()) || inside(value_span) {
            found = Some(key.get_ref().clone());
            break;
        }
    }
    match found {
        Some(key) => {
            let entries = std::mem::take(table);
            *table = entries
                .into_iter()
                .filter(|(k, _)| *k.get_ref() != key)
                .collect();
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap_or_else(|e| unreachable!("{e}"));
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap_or_else(|e| unreachable!("{e}"));
        f
    }

    #[test]
    fn defaults_serve_policies_on_loopback() -> Result<(), Vec<String>> {
        let c = ServeConfig::resolve(&ServeArgs::default())?;
        assert_eq!(c.policies, PathBuf::from("policies"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        assert!(c.watch && c.jwks.is_none());
        assert_eq!(
            c.cache,
            Some(CacheConfig {
                max_bytes: 64 << 20,
                ttl: Duration::from_secs(10)
            })
        );
        Ok(())
    }

    #[test]
    fn flags_override_the_file() -> Result<(), Vec<String>> {
        let f = file("listen = \"127.0.0.1:7000\"\nmax_batch_items = 5\n[decision_cache]\nttl_secs = 3\n[identity]\nissuer = \"https://file\"\n");
        let args = ServeArgs {
            config: Some(f.path().to_path_buf()),
            max_batch_items: Some(9),
            ..Default::default()
        };
        let c = ServeConfig::resolve(&args)?;
        assert_eq!(c.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(c.max_batch_items, 9);
        assert_eq!(c.cache.map(|c| c.ttl), Some(Duration::from_secs(3)));
        assert_eq!(c.identity.issuer.as_deref(), Some("https://file"));
        Ok(())
    }

    #[test]
    fn unknown_keys_and_bad_values_are_all_reported() {
        let f = file("listen = \"nowhere\"\nmistake = 1\n");
        let errors = ServeConfig::resolve(&ServeArgs {
            config: Some(f.path().to_path_buf()),
            ..Default::default()
        })
        .err();
        let text = errors.unwrap_or_default().join("\n");
        assert!(text.contains("mistake"), "{text}");

        let f = file("mistake = 1\n[limits]\nmax_concurency = 5\ncall_timeout_ms = \"soon\"\n");
        let errors = ServeConfig::resolve(&ServeArgs {
            config: Some(f.path().to_path_buf()),
            ..Default::default()
        })
        .err()
        .unwrap_or_default();
        let text = errors.join("\n");
        assert_eq!(errors.len(), 3, "{text}");
        assert!(
            text.contains("mistake") && text.contains("max_concurency") && text.contains("line 4"),
            "{text}"
        );

        let f = file("listen = \"nowhere\"\n[limits]\nmax_concurrency = 0\n");
        let errors = ServeConfig::resolve(&ServeArgs {
            config: Some(f.path().to_path_buf()),
            ..Default::default()
        })
        .err();
        let text = errors.unwrap_or_default().join("\n");
        assert!(
            text.contains("`listen`") && text.contains("max_concurrency"),
            "{text}"
        );
    }
}
