//! Prometheus metrics, served at `/metrics` on the HTTP port (text exposition format). One
//! registry per process; names follow the Prometheus and OpenTelemetry conventions (`pdp_`
//! prefix, base units, `_total` counters). Label values are static strings, so recording
//! allocates nothing.

use std::sync::{Mutex, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `decision`, `reason` and the API that asked.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// The reason, e.g. `explicit_deny`.
    pub reason: &'static str,
    /// `check`, `check_batch`.
    pub api: &'static str,
}

/// A cache and the outcome of a lookup.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `decision` or `token`.
    pub cache: &'static str,
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// A cache.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheName {
    /// `decision` or `token`.
    pub cache: &'static str,
}

/// A kind (of failure, of signal).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// The kind.
    pub kind: &'static str,
}

/// A signal's type and where it came from.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabels {
    /// The CAEP event type, e.g. `session-revoked`.
    pub r#type: &'static str,
    /// `publish`, `ssf`, `detection` or `shared` (read from Redis).
    pub source: &'static str,
}

/// What a query plan said.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanLabel {
    /// `always_allowed`, `always_denied` or `conditional`.
    pub plan: &'static str,
}

/// Which search.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SearchLabel {
    /// `subject`, `resource` or `action`.
    pub search: &'static str,
}

/// An outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `accepted` or `rejected`.
    pub result: &'static str,
}

/// The policy set serving.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RevisionLabel {
    /// Its revision.
    pub revision: String,
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `pdp_decisions_total`.
    pub decisions: Family<DecisionLabels, Counter>,
    /// `pdp_check_duration_seconds`: time to answer one Check (or one CheckBatch item).
    pub check_duration: Histogram,
    /// `pdp_plans_total`: query plans made, by what they said.
    pub plans: Family<PlanLabel, Counter>,
    /// `pdp_searches_total`: search pages answered, by search.
    pub searches: Family<SearchLabel, Counter>,
    /// `pdp_search_examined_total`: items (candidate resources, subjects, actions) the
    /// searches examined, by search.
    pub search_examined: Family<SearchLabel, Counter>,
    /// `pdp_cache_lookups_total`.
    pub cache_lookups: Family<CacheLabels, Counter>,
    /// `pdp_cache_evictions_total`: entries removed for size or expiry.
    pub cache_evictions: Family<CacheName, Counter>,
    /// `pdp_token_verification_failures_total`.
    pub token_failures: Family<KindLabel, Counter>,
    /// `pdp_policy_reloads_total`.
    pub reloads: Family<ResultLabel, Counter>,
    /// `pdp_policy_statements`.
    pub statements: Gauge,
    /// `pdp_policy_revision_info`: 1 for the serving revision.
    pub revision: Family<RevisionLabel, Gauge>,
    serving_revision: Mutex<String>,
    /// `pdp_signals_received_total`.
    pub signals: Family<SignalLabels, Counter>,
    /// `pdp_signals_stale`: 1 while the shared signal store is stale.
    pub signals_stale: Gauge,
    /// `pdp_watch_subscribers`.
    pub watchers: Gauge,
    /// `pdp_load_shed_total`: calls refused because their connection, or the whole server,
    /// had too many in flight.
    pub load_shed: Counter,
    /// `pdp_connections_refused_total`: connections closed as accepted, over a port's cap.
    pub connections_refused: Counter,
    /// `pdp_decision_log_records_total`.
    pub log_written: Counter,
    /// `pdp_decision_log_dropped_total`: records dropped because the log could not keep up.
    pub log_dropped: Counter,
    /// `pdp_decision_log_refused_total`: decisions turned into denies because the log could
    /// not keep up (`overflow = "deny"`).
    pub log_refused: Counter,
    /// `pdp_decision_log_checkpoint_seq`: the last record the latest checkpoint covers,
    /// published outside the log so that a log cut back to an earlier checkpoint shows.
    pub log_checkpoint_seq: Gauge,
    /// Whether per-decision metrics are recorded (`--metrics off` turns them off).
    enabled: std::sync::atomic::AtomicBool,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pdp");
        let m = Metrics {
            registry: Registry::default(),
            decisions: Family::default(),
            check_duration: Histogram::new(exponential_buckets(0.000_010, 2.0, 16)),
            plans: Family::default(),
            searches: Family::default(),
            search_examined: Family::default(),
            cache_lookups: Family::default(),
            cache_evictions: Family::default(),
            token_failures: Family::default(),
            reloads: Family::default(),
            statements: Gauge::default(),
            revision: Family::default(),
            serving_revision: Mutex::new(String::new()),
            signals: Family::default(),
            signals_stale: Gauge::default(),
            watchers: Gauge::default(),
            load_shed: Counter::default(),
            connections_refused: Counter::default(),
            log_written: Counter::default(),
            log_dropped: Counter::default(),
            log_refused: Counter::default(),
            log_checkpoint_seq: Gauge::default(),
            enabled: std::sync::atomic::AtomicBool::new(true),
        };
        registry.register("decisions", "Decisions made", m.decisions.clone());
        registry.register_with_unit(
            "check_duration",
            "Time to answer one decision request",
            prometheus_client::registry::Unit::Seconds,
            m.check_duration.clone(),
        );
        registry.register(
            "plans",
            "Query plans made (PlanResources), by what they said",
            m.plans.clone(),
        );
        registry.register(
            "searches",
            "Search pages answered (AuthZEN search, gRPC Search*), by search",
            m.searches.clone(),
        );
        registry.register(
            "search_examined",
            "Items the searches examined (candidate resources, subjects, actions), by search",
            m.search_examined.clone(),
        );
        registry.register(
            "cache_lookups",
            "Cache lookups by cache and result",
            m.cache_lookups.clone(),
        );
        registry.register(
            "cache_evictions",
            "Cache entries removed for size or expiry",
            m.cache_evictions.clone(),
        );
        registry.register(
            "token_verification_failures",
            "Subject tokens refused, by kind",
            m.token_failures.clone(),
        );
        registry.register("policy_reloads", "Policy reloads tried", m.reloads.clone());
        registry.register(
            "policy_statements",
            "Statements in the serving policy set",
            m.statements.clone(),
        );
        registry.register(
            "policy_revision_info",
            "The serving policy revision (value 1)",
            m.revision.clone(),
        );
        registry.register(
            "signals_received",
            "Security signals received, by type and source",
            m.signals.clone(),
        );
        registry.register(
            "signals_stale",
            "1 while the shared signal store has been out of reach past the staleness bound",
            m.signals_stale.clone(),
        );
        registry.register(
            "watch_subscribers",
            "Open SignalService/Watch streams",
            m.watchers.clone(),
        );
        registry.register(
            "load_shed",
            "Calls refused because their connection, or the server, had too many in flight",
            m.load_shed.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed as accepted because their port had as many open as allowed",
            m.connections_refused.clone(),
        );
        registry.register(
            "decision_log_records",
            "Records written to the decision log",
            m.log_written.clone(),
        );
        registry.register(
            "decision_log_dropped",
            "Decision log records dropped because the log could not keep up",
            m.log_dropped.clone(),
        );
        registry.register(
            "decision_log_refused",
            "Decisions denied because the decision log could not keep up",
            m.log_refused.clone(),
        );
        registry.register(
            "decision_log_checkpoint_seq",
            "The seq of the last record the latest decision log checkpoint covers",
            m.log_checkpoint_seq.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Records that `revision` with `statements` statements now serves.
    pub fn policy_serving(&self, revision: &str, statements: usize) {
        self.statements
            .set(i64::try_from(statements).unwrap_or(i64::MAX));
        if let Ok(mut current) = self.serving_revision.lock() {
            if *current != revision {
                self.revision.remove(&RevisionLabel {
                    revision: current.clone(),
                });
                self.revision
                    .get_or_create(&RevisionLabel {
                        revision: revision.to_owned(),
                    })
                    .set(1);
                revision.clone_into(&mut current);
            }
        }
    }

    /// Turns per-decision metrics (decisions, latency, cache lookups) on or off.
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether per-decision metrics are recorded.
    pub fn enabled(&self) -> bool {
        self.enabled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a query plan.
    pub fn planned(&self, plan: &'static str) {
        if self.enabled() {
            self.plans.get_or_create(&PlanLabel { plan }).inc();
        }
    }

    /// Counts a search page of `search` that examined `examined` items.
    pub fn searched(&self, search: &'static str, examined: usize) {
        if self.enabled() {
            let label = SearchLabel { search };
            self.searches.get_or_create(&label).inc();
            self.search_examined
                .get_or_create(&label)
                .inc_by(u64::try_from(examined).unwrap_or(u64::MAX));
        }
    }

    /// Counts a decision taking `seconds`.
    pub fn decided(&self, allowed: bool, reason: &'static str, api: &'static str, seconds: f64) {
        if !self.enabled() {
            return;
        }
        self.check_duration.observe(seconds);
        self.decisions
            .get_or_create(&DecisionLabels {
                decision: if allowed { "allow" } else { "deny" },
                reason,
                api,
            })
            .inc();
    }

    /// Counts a cache lookup.
    pub fn cache_lookup(&self, cache: &'static str, hit: bool) {
        if !self.enabled() {
            return;
        }
        self.cache_lookups
            .get_or_create(&CacheLabels {
                cache,
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    /// The OpenMetrics 1.0 exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// The Prometheus 0.0.4 text exposition, for scrapers and tools that do not ask for
    /// OpenMetrics (`promtool check metrics`, curl).
    pub fn render_prometheus_text(&self) -> String {
        prometheus_text(&self.render())
    }
}

/// The Prometheus text format of an OpenMetrics text: the two differ, for what this registry
/// holds, in that OpenMetrics names a counter's family without the `_total` its samples carry
/// and has `# UNIT` and `# EOF` lines, which the older format lacks.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta.and_then(|(p, rest)| rest.split_once(' ').map(|(n, t)| (p, n, t))) {
            Some((p, name, text)) if counters.contains(name) && !name.ends_with("_total") => {
                out.push_str(p);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(text);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_the_prefix() {
        let m = metrics();
        m.decided(true, "allowed", "check", 0.001);
        m.cache_lookup("decision", false);
        m.policy_serving("rev-a", 3);
        m.policy_serving("rev-b", 4);
        let text = m.render();
        for name in [
            "pdp_decisions_total{decision=\"allow\",reason=\"allowed\",api=\"check\"}",
            "pdp_check_duration_seconds_bucket",
            "pdp_cache_lookups_total{cache=\"decision\",result=\"miss\"}",
            "pdp_policy_statements 4",
            "pdp_policy_revision_info{revision=\"rev-b\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(!text.contains("rev-a"), "the old revision is gone");
    }

    /// Every metric name in the Grafana dashboard (`deploy/grafana/pdp-dashboard.json`) is a
    /// sample name this registry exposes, so a renamed metric cannot leave a panel blank.
    #[test]
    fn the_grafana_dashboard_only_queries_exposed_metrics() {
        fn queries(value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, v) in map {
                        match v {
                            serde_json::Value::String(s)
                                if key == "expr" || key == "definition" || key == "query" =>
                            {
                                out.push(s.clone());
                            }
                            _ => queries(v, out),
                        }
                    }
                }
                serde_json::Value::Array(items) => {
                    for v in items {
                        queries(v, out);
                    }
                }
                _ => {}
            }
        }
        // Every identifier starting `pdp_`, taken whole (letters, digits, `_`, `:`), so a
        // misspelled suffix is not cut down to a valid prefix.
        fn pdp_names(query: &str) -> Vec<String> {
            let ident = |c: &char| c.is_ascii_alphanumeric() || *c == '_' || *c == ':';
            let chars: Vec<char> = query.chars().collect();
            let mut names = Vec::new();
            let mut i = 0;
            while i < chars.len() {
                let starts = !i
                    .checked_sub(1)
                    .and_then(|p| chars.get(p))
                    .is_some_and(ident);
                if starts && chars.get(i..i + 4) == Some(&['p', 'd', 'p', '_'][..]) {
                    let mut j = i + 4;
                    while chars.get(j).is_some_and(ident) {
                        j += 1;
                    }
                    names.push(chars.get(i..j).unwrap_or_default().iter().collect());
                    i = j;
                } else {
                    i += 1;
                }
            }
            names
        }

        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/grafana/pdp-dashboard.json"
        );
        let json = std::fs::read_to_string(path).unwrap_or_else(|e| unreachable!("{path}: {e}"));
        let dashboard: serde_json::Value =
            serde_json::from_str(&json).unwrap_or_else(|e| unreachable!("{path}: {e}"));
        let mut found = Vec::new();
        queries(&dashboard, &mut found);

        // A family without children is not written at all, so give each labelled family one,
        // on a registry of its own (the process's is shared with the other tests).
        let m = Metrics::new();
        m.decided(false, "explicit_deny", "check", 0.001);
        m.cache_lookup("decision", true);
        m.cache_evictions
            .get_or_create(&CacheName { cache: "token" })
            .inc();
        m.token_failures
            .get_or_create(&KindLabel { kind: "expired" })
            .inc();
        m.reloads
            .get_or_create(&ResultLabel { result: "accepted" })
            .inc();
        m.policy_serving("rev-dashboard", 1);
        m.signals
            .get_or_create(&SignalLabels {
                r#type: "session-revoked",
                source: "publish",
            })
            .inc();
        // prometheus-client writes `# TYPE <family> <type>`, the family without `_total`.
        let text = m.render();
        assert!(text.contains("# TYPE pdp_decisions counter\n"), "{text}");
        let mut exposed = std::collections::BTreeSet::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let mut parts = rest.split_whitespace();
            let (Some(family), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "info" => &["_info"],
                _ => &[""],
            };
            for suffix in suffixes {
                exposed.insert(format!("{family}{suffix}"));
            }
        }

        let mut used = std::collections::BTreeSet::new();
        for query in &found {
            for name in pdp_names(query) {
                assert!(
                    exposed.contains(&name),
                    "the dashboard queries {name}, which the registry does not expose \
                     (in `{query}`); exposed: {exposed:?}"
                );
                used.insert(name);
            }
        }
        assert!(
            used.len() >= 10,
            "too few metrics found in {path}: {used:?}"
        );
    }
}
