//! Prometheus's own checker, `promtool` (Debian package `prometheus`), on what the PDP and
//! its demo give Prometheus: the live `/metrics` of `pdp serve` after real decisions pass
//! `promtool check metrics` (the text format, names, help and types) with nothing to say,
//! a scraper that asks for OpenMetrics gets it, `deploy/prometheus/prometheus.yml`
//! passes `promtool check config`, the alerting rules `deploy/prometheus/alerts.yml` pass
//! `promtool check rules` and their unit tests (`alerts.test.yml`, each alert firing and not
//! firing) `promtool test rules`, and every series they select is one a running `pdp serve`
//! exposes, with the label values they match.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use pdp_proto::v1 as pb;
use serde_json::Value;

mod common;

fn promtool(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install it (`apt-get install prometheus`); .ci/run does"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn repo(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Decisions of each labelled kind: an allow, an explicit deny, a bad token.
async fn decide(server: &common::Server) {
    let c = common::channel(server).await;
    let mut authz = pb::authorization_service_client::AuthorizationServiceClient::new(c);
    // Samples in the labelled families too: an allow, an explicit deny, a bad token.
    authz
        .check(common::readme_request(Some(true)))
        .await
        .unwrap();
    authz
        .check(common::readme_request(Some(false)))
        .await
        .unwrap();
    let mut bad_token = common::readme_request(Some(true));
    bad_token.subject.as_mut().unwrap().token = "not.a.jwt".into();
    authz.check(bad_token).await.unwrap();
}

#[tokio::test]
async fn the_live_metrics_pass_promtool_check_metrics() {
    let server = common::start_pdp(["--jwks", &common::fixture("jwks.json")], &[]);
    decide(&server).await;

    let (code, body) = common::http(&server.http, "GET", "/metrics", &[], "");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("# TYPE pdp_decisions_total counter"),
        "{body}"
    );
    assert!(!body.contains("# EOF"), "{body}");
    let o = promtool(&["check", "metrics"], &body);
    assert!(o.status.success(), "promtool check metrics: {}", text(&o));
    assert_eq!(text(&o).trim(), "", "promtool found problems");

    // Prometheus asks for OpenMetrics, and gets it.
    let (code, body) = common::http(
        &server.http,
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
        "",
    );
    assert_eq!(code, 200);
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    assert!(body.contains("# TYPE pdp_decisions counter"), "{body}");
}

#[test]
fn the_demo_prometheus_config_passes_promtool_check_config() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/prometheus/prometheus.yml"
    );
    let o = promtool(&["check", "config", path], "");
    assert!(o.status.success(), "promtool check config: {}", text(&o));
    assert!(text(&o).contains("SUCCESS"), "{}", text(&o));
}

#[test]
fn the_alerting_rules_pass_promtool_check_rules() {
    let rules = yaml("deploy/prometheus/alerts.yml");
    let count: usize = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    let o = promtool(
        &["check", "rules", &repo("deploy/prometheus/alerts.yml")],
        "",
    );
    assert!(o.status.success(), "promtool check rules: {}", text(&o));
    assert!(
        text(&o).contains(&format!("SUCCESS: {count} rules found")),
        "{}",
        text(&o)
    );
    // The demo's Prometheus loads them.
    let config = yaml("deploy/prometheus/prometheus.yml");
    assert_eq!(config["rule_files"], serde_json::json!(["alerts.yml"]));
}

#[test]
fn every_alert_is_unit_tested_firing_and_not_firing() {
    let o = promtool(
        &["test", "rules", &repo("deploy/prometheus/alerts.test.yml")],
        "",
    );
    assert!(o.status.success(), "promtool test rules: {}", text(&o));
    assert!(text(&o).contains("SUCCESS"), "{}", text(&o));

    let tests = yaml("deploy/prometheus/alerts.test.yml");
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .collect();
    let rules = yaml("deploy/prometheus/alerts.yml");
    let alerts: Vec<&str> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    for alert in alerts {
        let expected = |firing: bool| {
            cases.iter().any(|c| {
                c["alertname"] == alert
                    && c["exp_alerts"]
                        .as_array()
                        .is_some_and(|a| a.is_empty() != firing)
            })
        };
        assert!(expected(true), "{alert} is never tested firing");
        assert!(expected(false), "{alert} is never tested not firing");
    }
}

/// The series a PromQL expression selects by a `pdp_` name, each with the `label="value"`
/// matchers that follow it. Names are taken whole (letters, digits, `_`, `:`), so a
/// misspelled suffix is not cut down to a valid prefix.
fn selectors(expr: &str) -> Vec<(String, Vec<(String, String)>)> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("pdp_") {
        let starts = !rest[..at].chars().next_back().is_some_and(ident);
        let tail = &rest[at..];
        let end = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
        rest = &tail[end..];
        if !starts {
            continue;
        }
        let mut matchers = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            let close = inner.find('}').unwrap();
            for m in inner[..close].split(',').filter(|m| !m.trim().is_empty()) {
                let (k, v) = m
                    .split_once('=')
                    .unwrap_or_else(|| panic!("unsupported matcher `{m}` in `{expr}`"));
                assert!(
                    !k.ends_with('!') && !v.starts_with('~'),
                    "only `=` matchers are checked: `{m}` in `{expr}`"
                );
                matchers.push((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()));
            }
        }
        out.push((tail[..end].to_owned(), matchers));
    }
    out
}

#[cfg(unix)]
#[tokio::test]
async fn every_series_the_alerts_select_is_exposed_by_pdp_serve() {
    let dir = common::copy_policies();
    let server = common::start_pdp(
        [
            "--jwks",
            &common::fixture("jwks.json"),
            "--policies",
            dir.path().to_str().unwrap(),
            "--watch",
            "false",
        ],
        &[],
    );
    decide(&server).await;
    // One accepted reload, then one rejected (a statement without an Effect).
    let reload = |result: &str| {
        let killed = Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let line = format!("pdp_policy_reloads_total{{result=\"{result}\"}} 1");
        for _ in 0..100 {
            let (_, body) = common::http(&server.http, "GET", "/metrics", &[], "");
            if body.contains(&line) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("SIGHUP: no `{line}`; log: {:?}", server.log.lock().unwrap());
    };
    reload("accepted");
    std::fs::write(
        dir.path().join("broken.json"),
        r#"{"Version":"2012-10-17","Statement":[{"Action":"s3:GetObject","Resource":"*"}]}"#,
    )
    .unwrap();
    reload("rejected");

    let (code, body) = common::http(&server.http, "GET", "/metrics", &[], "");
    assert_eq!(code, 200, "{body}");
    // Each sample as its name and its label pairs.
    let samples: Vec<(&str, &str)> = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let end = l.find(['{', ' ']).unwrap();
            let labels = l[end..]
                .strip_prefix('{')
                .map_or("", |r| &r[..r.find('}').unwrap()]);
            (&l[..end], labels)
        })
        .collect();

    let rules = yaml("deploy/prometheus/alerts.yml");
    let mut used = std::collections::BTreeSet::new();
    for rule in rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
    {
        let expr = rule["expr"].as_str().unwrap();
        for (name, matchers) in selectors(expr) {
            let found = samples.iter().any(|(n, labels)| {
                *n == name
                    && matchers
                        .iter()
                        .all(|(k, v)| labels.split(',').any(|p| p == format!("{k}=\"{v}\"")))
            });
            assert!(
                found,
                "{}: `{expr}` selects {name} {matchers:?}, which pdp serve does not expose:\n{body}",
                rule["alert"]
            );
            used.insert(name);
        }
    }
    assert!(
        used.len() >= 9,
        "too few metrics found in the rules: {used:?}"
    );
}
