//! OpenTelemetry tracing: the PDP continues the caller's W3C trace (`traceparent`,
//! `tracestate`, `baggage` from gRPC metadata or HTTP headers), with a span per call and a
//! child span per stage (identity, signals, cache, evaluation), exported over OTLP/gRPC in
//! batches, sampled parent-based with a ratio for new traces. Off (no spans, nothing on the
//! hot path but a `None` check) unless an endpoint is configured. Attributes carry the
//! decision and what decided it, never tokens or context values.

use opentelemetry::propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

/// Where and how much to trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingConfig {
    /// The OTLP/gRPC endpoint, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// The share of new traces (without a sampled parent) recorded, 0 to 1.
    pub sample_ratio: f64,
    /// `service.name`.
    pub service_name: String,
}

/// The tracer of a PDP with tracing on.
pub struct Telemetry {
    provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::Tracer,
    propagator: TextMapCompositePropagator,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Starts exporting. Must run inside the Tokio runtime (the gRPC exporter's connection
    /// lives there).
    pub fn start(config: &TracingConfig) -> Result<Telemetry, String> {
        use opentelemetry_otlp::WithExportConfig as _;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(config.endpoint.clone())
            .with_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(|e| format!("the OTLP exporter for `{}`: {e}", config.endpoint))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("pdp");
        let propagator = TextMapCompositePropagator::new(vec![
            Box::new(opentelemetry_sdk::propagation::TraceContextPropagator::new()),
            Box::new(opentelemetry_sdk::propagation::BaggagePropagator::new()),
        ]);
        Ok(Telemetry {
            provider,
            tracer,
            propagator,
        })
    }

    /// The caller's context from gRPC metadata.
    pub fn from_metadata(&self, metadata: &tonic::metadata::MetadataMap) -> Context {
        self.propagator.extract(&Metadata(metadata))
    }

    /// The caller's context from HTTP headers.
    pub fn from_headers(&self, headers: &http::HeaderMap) -> Context {
        self.propagator.extract(&Headers(headers))
    }

    /// Starts the span of a call, child of `parent`; `None` when the call is not sampled
    /// (nothing more is spent on it).
    pub fn call(
        &self,
        name: &'static str,
        parent: &Context,
        attributes: impl FnOnce() -> Vec<KeyValue>,
    ) -> Option<Traced> {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(opentelemetry::trace::SpanKind::Server)
            .start_with_context(&self.tracer, parent);
        if !span.is_recording() {
            return None;
        }
        let traced = Traced {
            cx: parent.with_span(span),
            tracer: self.tracer.clone(),
        };
        traced.set(attributes());
        Some(traced)
    }

    /// Exports what is buffered and stops.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("traces could not all be exported at shutdown: {e}");
        }
    }
}

/// A call being traced.
#[derive(Debug)]
pub struct Traced {
    cx: Context,
    tracer: opentelemetry_sdk::trace::Tracer,
}

impl Traced {
    /// Runs `f` in a child span named `name`.
    pub fn stage<R>(&self, name: &'static str, f: impl FnOnce() -> R) -> R {
        let mut span = self.tracer.start_with_context(name, &self.cx);
        let out = f();
        span.end();
        out
    }

    /// Sets attributes of the call's span.
    pub fn set(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        let span = self.cx.span();
        for kv in attributes {
            span.set_attribute(kv);
        }
    }

    /// The trace id (hex) when the call is sampled; empty otherwise.
    pub fn trace_id(&self) -> String {
        let span = self.cx.span();
        let sc = span.span_context();
        if sc.is_sampled() {
            sc.trace_id().to_string()
        } else {
            String::new()
        }
    }

    /// Marks the call failed.
    pub fn error(&self, message: String) {
        self.cx
            .span()
            .set_status(opentelemetry::trace::Status::error(message));
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

/// Runs `f` in a stage span when the call is traced.
pub fn stage<R>(traced: Option<&Traced>, name: &'static str, f: impl FnOnce() -> R) -> R {
    match traced {
        Some(t) => t.stage(name, f),
        None => f(),
    }
}

struct Metadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}
