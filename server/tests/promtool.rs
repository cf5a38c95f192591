//! Prometheus's own checker, `promtool` (Debian package `prometheus`), on what the PDP and
//! its demo give Prometheus: the live `/metrics` of `pdp serve` after real decisions pass
//! `promtool check metrics` (the text format, names, help and types) with nothing to say,
//! a scraper that asks for OpenMetrics gets it, and `deploy/prometheus/prometheus.yml`
//! passes `promtool check config`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use pdp_proto::v1 as pb;

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

#[tokio::test]
async fn the_live_metrics_pass_promtool_check_metrics() {
    let server = common::start_pdp(["--jwks", &common::fixture("jwks.json")], &[]);
    let c = common::channel(&server).await;
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
