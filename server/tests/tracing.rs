//! Tracing end to end: `pdp serve` exports to a real OTLP/gRPC receiver (the collector's
//! `TraceService`, served by this test); a Check carrying a W3C `traceparent` yields the call
//! span as a child of the caller's span, and one child span per stage, with the decision's
//! attributes and never the token.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use pdp_proto::v1 as pb;

mod common;

use common::otlp::{hex, receiver, Sink};
use common::{channel, fixture, readme_request, rs256_token, start_pdp};

fn attribute(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn string(span: &Span, key: &str) -> String {
    match attribute(span, key) {
        Some(Value::StringValue(s)) => s,
        other => panic!("{key}: {other:?}"),
    }
}

async fn spans_of(sink: &Sink, trace_id: &str, at_least: usize) -> Vec<Span> {
    for _ in 0..100 {
        let spans: Vec<Span> = sink
            .spans()
            .into_iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .collect();
        if spans.len() >= at_least {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {at_least} spans of trace {trace_id} reached the receiver");
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_continues_the_callers_trace_with_a_span_per_stage() {
    let (sink, port) = receiver().await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("decisions.jsonl");
    let server = start_pdp(
        [
            "--jwks",
            &fixture("jwks.json"),
            "--otlp-endpoint",
            &endpoint,
            "--trace-sample-ratio",
            "1",
            "--decision-log",
            log.to_str().unwrap(),
        ],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    let c = channel(&server).await;
    let mut authz = pb::authorization_service_client::AuthorizationServiceClient::new(c);
    let token = rs256_token(serde_json::json!({ "roles": ["ApplicationRole"], "amr": ["mfa"] }));
    let mut request = readme_request(None);
    request.subject = Some(pb::Subject {
        token: token.clone(),
        ..Default::default()
    });
    let mut call = tonic::Request::new(request);
    call.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE_ID}-{PARENT}-01").parse().unwrap(),
    );
    call.metadata_mut()
        .insert("baggage", "tenant=acme".parse().unwrap());
    let response = authz.check(call).await.unwrap().into_inner();
    assert_eq!(response.decision(), pb::Decision::Allow);

    let spans = spans_of(&sink, TRACE_ID, 5).await;
    let root = spans
        .iter()
        .find(|s| s.name == "pdp.v1.AuthorizationService/Check")
        .expect("the call span");
    assert_eq!(
        hex(&root.parent_span_id),
        PARENT,
        "a child of the caller's span"
    );
    assert_eq!(string(root, "pdp.decision"), "allow");
    assert_eq!(string(root, "pdp.reason"), "allowed");
    assert_eq!(string(root, "pdp.action"), "s3:GetObject");
    assert_eq!(
        string(root, "pdp.policy.revision"),
        response.policy_revision
    );
    assert_eq!(string(root, "pdp.decision_id"), response.decision_id);
    assert_eq!(
        attribute(root, "pdp.cache.hit"),
        Some(Value::BoolValue(false))
    );
    match attribute(root, "pdp.determining") {
        Some(Value::ArrayValue(a)) => assert!(!a.values.is_empty()),
        other => panic!("pdp.determining: {other:?}"),
    }
    for stage in ["pdp.identity", "pdp.signals", "pdp.cache", "pdp.evaluate"] {
        let s = spans
            .iter()
            .find(|s| s.name == stage)
            .unwrap_or_else(|| panic!("no {stage} span"));
        assert_eq!(
            s.parent_span_id, root.span_id,
            "{stage} is a child of the call"
        );
    }
    let everything = format!("{spans:?}");
    assert!(!everything.contains(&token), "no token in any span");
    assert!(
        !everything.contains("10.1.2.3"),
        "no context value in any span"
    );

    // A call without a parent starts a trace of its own (ratio 1: sampled).
    let root_call = authz
        .check(readme_request(Some(true)))
        .await
        .unwrap()
        .into_inner();
    drop(authz);
    let mut found = None;
    for _ in 0..100 {
        found = sink.spans().into_iter().find(|s| {
            s.parent_span_id.is_empty()
                && attribute(s, "pdp.decision_id")
                    == Some(Value::StringValue(root_call.decision_id.clone()))
        });
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(found.is_some(), "a root span for the untraced call");
    let _ = server.stop();

    // The decision log names the trace.
    let first = std::fs::read_to_string(&log).unwrap();
    let record: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(record["trace_id"], TRACE_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_span_the_client_span_and_the_pdp_spans_form_one_trace() {
    use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
    use opentelemetry_otlp::WithExportConfig as _;

    let (sink, port) = receiver().await;
    let endpoint = format!("http://127.0.0.1:{port}");
    let server = start_pdp(
        ["--otlp-endpoint", &endpoint, "--trace-sample-ratio", "1"],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    // The app: its own tracer provider exporting to the same receiver, and the W3C
    // propagator the client library injects with.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .unwrap();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let pdp = pdp_client::PdpClient::builder()
        .endpoint(format!("http://{}", server.addr))
        .no_cache()
        .build()
        .unwrap();
    let app = provider.tracer("app").start("GET /data/report.csv");
    let cx = opentelemetry::Context::current_with_span(app);
    let trace_id = cx.span().span_context().trace_id().to_string();
    let app_span_id = cx.span().span_context().span_id().to_string();
    let decision = {
        let request = readme_request(Some(true));
        let fut = pdp.check(request);
        opentelemetry::trace::FutureExt::with_context(fut, cx.clone())
            .await
            .unwrap()
    };
    assert!(decision.is_allowed());
    cx.span().end();

    let spans = spans_of(&sink, &trace_id, 4).await;
    let named = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no `{name}` span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let server_spans: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "pdp.v1.AuthorizationService/Check")
        .collect();
    assert_eq!(server_spans.len(), 2, "the client's span and the PDP's");
    // The client span is the app span's child; the PDP's call span is the client span's.
    let (client, pdp_call): (&Span, &Span) = if hex(&server_spans[0].parent_span_id) == app_span_id
    {
        (server_spans[0], server_spans[1])
    } else {
        (server_spans[1], server_spans[0])
    };
    assert_eq!(
        hex(&client.parent_span_id),
        app_span_id,
        "client span under the app span"
    );
    assert_eq!(
        pdp_call.parent_span_id, client.span_id,
        "PDP span under the client span"
    );
    let _ = named("pdp.evaluate");
    let _ = provider.shutdown();
}
