//! The epilogue every answer goes through, whatever ended it: the span's attributes, the
//! decision log's record (refusing the answer when the log cannot take it and must), the
//! debug event and the metrics. Nothing here changes a decision except the log's overflow
//! policy.

use opentelemetry::KeyValue;

use super::{Call, Decider, Outcome, Reason};
use crate::telemetry::Traced;

/// What the decision log says of a request, once identity is resolved.
#[derive(Debug, Default)]
pub(super) struct Described {
    time: chrono::DateTime<chrono::Utc>,
    // The request's own text, moved here at its last use (no copy).
    subject: pdp_engine::Text,
    action: pdp_engine::Text,
    resource: pdp_engine::Text,
    cached: bool,
    /// The caller asked for an explanation.
    pub(super) explained: bool,
}

impl Described {
    /// The request, at its last use: its strings move here.
    pub(super) fn of(
        time: chrono::DateTime<chrono::Utc>,
        request: &mut pdp_engine::Request,
        cached: bool,
    ) -> Described {
        Described {
            time,
            subject: std::mem::take(&mut request.subject.id),
            action: std::mem::take(&mut request.action),
            resource: std::mem::take(&mut request.resource.id),
            cached,
            explained: false,
        }
    }

    /// A request that never became a decision request: only its resource is known.
    pub(super) fn unchecked(time: chrono::DateTime<chrono::Utc>, resource: &str) -> Described {
        Described {
            time,
            resource: resource.into(),
            ..Described::default()
        }
    }
}

impl Decider {
    /// Records `outcome` on the span, in the decision log, the debug log and the metrics;
    /// returns it, refused instead when the log cannot take it and must.
    pub(super) fn record(
        &self,
        call: &Call,
        traced: Option<&Traced>,
        mut outcome: Outcome,
        described: Described,
        started: std::time::Instant,
    ) -> Outcome {
        let elapsed = started.elapsed();
        let reason = outcome.reason.label();
        if let Some(t) = traced {
            t.set([
                KeyValue::new("pdp.decision_id", outcome.decision_id.clone()),
                KeyValue::new(
                    "pdp.decision",
                    if outcome.allowed { "allow" } else { "deny" },
                ),
                KeyValue::new("pdp.reason", reason),
                KeyValue::new("pdp.action", described.action.to_string()),
                KeyValue::new("pdp.policy.revision", outcome.revision.clone()),
                KeyValue::new("pdp.cache.hit", described.cached),
                KeyValue::new(
                    "pdp.determining",
                    opentelemetry::Value::Array(
                        outcome
                            .determining
                            .iter()
                            .map(|s| {
                                opentelemetry::StringValue::from(crate::audit::statement_id(
                                    &s.policy,
                                    s.sid.as_deref().unwrap_or_default(),
                                    u32::try_from(s.index).unwrap_or(u32::MAX),
                                ))
                            })
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                ),
                KeyValue::new(
                    "pdp.obligations",
                    opentelemetry::Value::Array(
                        outcome
                            .obligations
                            .iter()
                            .map(|o| opentelemetry::StringValue::from(o.id.clone()))
                            .collect::<Vec<_>>()
                            .into(),
                    ),
                ),
            ]);
        }
        // The one event per decision (fields only; never tokens or context values).
        tracing::debug!(
            decision_id = %outcome.decision_id,
            request_id = %call.request_id,
            api = call.api,
            subject = %described.subject,
            action = %described.action,
            resource = %described.resource,
            decision = if outcome.allowed { "allow" } else { "deny" },
            reason,
            revision = %outcome.revision,
            cached = described.cached,
            message = %outcome.message,
            "decided"
        );
        if let Some(log) = &self.state.audit {
            use crate::audit::Text;
            let mut record = crate::audit::Record::new(described.time, call.api);
            record.peer = call.peer;
            record.allowed = outcome.allowed;
            record.reason = reason;
            record.latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            record.cached = described.cached;
            record.explained = described.explained;
            record
                .set(Text::DecisionId, &outcome.decision_id)
                .set(Text::TraceId, &call.trace_id)
                .set(Text::RequestId, &call.request_id)
                .set(Text::Caller, &call.sans)
                .set(Text::Subject, &described.subject)
                .set(Text::Action, &described.action)
                .set(Text::Resource, &described.resource)
                .set(Text::Revision, &outcome.revision);
            for s in &outcome.determining {
                record.push_determining(
                    &s.policy,
                    s.sid.as_deref().unwrap_or_default(),
                    u32::try_from(s.index).unwrap_or(u32::MAX),
                );
            }
            for o in &outcome.obligations {
                record.push_obligation(&o.id);
            }
            if !log.submit(record) {
                let m = crate::metrics::metrics();
                match log.overflow() {
                    crate::audit::Overflow::Drop => {
                        m.log_dropped.inc();
                    }
                    crate::audit::Overflow::Deny => {
                        m.log_refused.inc();
                        let mut refused = Outcome::refused(
                            Reason::AuditUnavailable,
                            "the decision log cannot keep up, and decisions are not made unlogged",
                            &outcome.revision,
                        );
                        refused.decision_id = std::mem::take(&mut outcome.decision_id);
                        outcome = refused;
                    }
                }
            }
        }
        crate::metrics::metrics().decided(
            outcome.allowed,
            outcome.reason.label(),
            call.api,
            elapsed.as_secs_f64(),
        );
        outcome
    }
}
