//! `pdp.v1.SignalService`: signals in (`Publish`: callers holding the admin grant only, see
//! [`crate::trust`]), invalidations out (`Watch`: trusted callers, loopback or a trusted
//! client certificate).

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pdp_proto::v1 as pb;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use crate::signals::store::Change;
use crate::signals::{self as sig, Kind, RiskLevel, Signal};
use crate::state::State;

/// Most Watch streams open at once.
pub const MAX_WATCHERS: u64 = 10_000;

/// The `SignalService` implementation.
#[derive(Debug, Clone)]
pub struct SignalService {
    state: Arc<State>,
}

impl SignalService {
    /// The service over `state`.
    pub fn new(state: Arc<State>) -> Self {
        SignalService { state }
    }

    fn authorize<T>(&self, request: &Request<T>, what: &str) -> Result<(), Status> {
        crate::caller::Caller::of(request)
            .require_trusted(what)
            .map_err(Status::from)
    }
}

/// A protobuf signal as the store keeps it; errors name the field. `authoritative`: whether
/// its claims may add roles and tags (else they only narrow).
pub fn signal(
    s: &pb::Signal,
    now: i64,
    claims: &crate::identity::ClaimNames,
    authoritative: bool,
    prefix: &str,
) -> Result<Signal, String> {
    let pb::Signal {
        r#type,
        subject,
        session_id,
        device_id,
        event_time,
        risk_level,
        compliance,
        assurance_namespace,
        assurance_level,
        claims: changed,
        reason,
    } = s;
    let kind = match pb::SignalType::try_from(*r#type) {
        Ok(pb::SignalType::SessionRevoked) => Kind::SessionRevoked,
        Ok(pb::SignalType::CredentialChange) => Kind::CredentialChange,
        Ok(pb::SignalType::TokenClaimsChange) => Kind::TokenClaimsChange,
        Ok(pb::SignalType::AssuranceLevelChange) => Kind::AssuranceLevelChange,
        Ok(pb::SignalType::DeviceComplianceChange) => Kind::DeviceComplianceChange,
        Ok(pb::SignalType::RiskLevelChange) => Kind::RiskLevelChange,
        Ok(pb::SignalType::Unspecified) | Err(_) => {
            return Err(format!(
                "`{prefix}type`: unknown or unspecified signal type {type}"
            ))
        }
    };
    let at = if *event_time == 0 { now } else { *event_time };
    if at > now.saturating_add(300) {
        return Err(format!(
            "`{prefix}event_time`: more than 5 minutes in the future"
        ));
    }
    let mut out = Signal::new(kind, at);
    out.subject.clone_from(subject);
    out.session.clone_from(session_id);
    out.device.clone_from(device_id);
    out.reason.clone_from(reason);
    if !risk_level.is_empty() {
        out.risk = Some(RiskLevel::parse(risk_level).ok_or_else(|| {
            format!("`{prefix}risk_level`: `{risk_level}` is not none, low, medium or high")
        })?);
    }
    if !compliance.is_empty() {
        out.compliant = Some(sig::parse_compliance(compliance).ok_or_else(|| {
            format!("`{prefix}compliance`: `{compliance}` is not compliant or not-compliant")
        })?);
    }
    if !assurance_namespace.is_empty() || !assurance_level.is_empty() {
        out.assurance = Some((assurance_namespace.clone(), assurance_level.clone()));
    }
    if let Some(changed) = changed {
        let json: serde_json::Map<String, serde_json::Value> = changed
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), super::convert::value_to_json(v)))
            .collect();
        out.claims = Some(sig::ClaimsOverride {
            authoritative,
            ..sig::ClaimsOverride::from_claims(&json, &claims.roles, &claims.tags)
                .map_err(|e| format!("`{prefix}claims`: {e}"))?
        });
    }
    out.check().map_err(|(field, message)| match field {
        Some(field) => format!("`{prefix}{field}`: {message}"),
        // The signal as a whole: its path without the trailing `.`.
        None => format!("`{}`: {message}", prefix.trim_end_matches('.')),
    })?;
    Ok(out)
}

fn invalidation(change: &Change, cursor: String) -> pb::Invalidation {
    pb::Invalidation {
        cursor,
        reset: change.reset,
        subject: change.subject.clone(),
        session_id: change.session.clone(),
        device_id: change.device.clone(),
        policy_revision: change.revision.clone(),
    }
}

/// Counts a Watch stream while it is open.
struct Watching(Arc<State>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.signals.watchers.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::metrics().watchers.dec();
    }
}

type InvalidationStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Invalidation, Status>> + Send>>;

#[tonic::async_trait]
impl pb::signal_service_server::SignalService for SignalService {
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        crate::caller::Caller::of(&request).require_admin(&self.state.trust, "publish signals")?;
        let pb::PublishRequest { signals } = request.into_inner();
        if signals.is_empty() {
            return Err(Status::invalid_argument("`signals`: no signal"));
        }
        if signals.len() > sig::MAX_SIGNALS_PER_CALL {
            return Err(Status::invalid_argument(format!(
                "`signals`: {} signals, over the limit of {}",
                signals.len(),
                sig::MAX_SIGNALS_PER_CALL
            )));
        }
        let now = chrono::Utc::now().timestamp();
        let authoritative = self.state.signals.publish_claims_authoritative;
        // Every signal is checked before any is applied: a bad one changes nothing.
        let parsed = signals
            .iter()
            .enumerate()
            .map(|(i, s)| {
                signal(
                    s,
                    now,
                    &self.state.claims,
                    authoritative,
                    &format!("signals[{i}]."),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(Status::invalid_argument)?;
        for s in &parsed {
            tracing::info!(
                kind = s.kind.as_str(),
                subject = %s.subject,
                session = %s.session,
                device = %s.device,
                reason = %s.reason,
                "signal published"
            );
        }
        let published = self
            .state
            .signals
            .publish(&parsed, "publish")
            .await
            .map_err(|e| match e {
                crate::signals::shared::PublishError::Full(f) => {
                    Status::resource_exhausted(f.to_string())
                }
                crate::signals::shared::PublishError::Unavailable(m) => Status::unavailable(m),
            })?;
        Ok(Response::new(pb::PublishResponse {
            applied: u32::try_from(published.applied).unwrap_or(u32::MAX),
            cursor: self.state.signals.store.cursor(),
            generation: published.generation,
        }))
    }

    type WatchStream = InvalidationStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.authorize(&request, "watch invalidations")?;
        let signals = &self.state.signals;
        if signals.watchers.fetch_add(1, Ordering::AcqRel) >= MAX_WATCHERS {
            signals.watchers.fetch_sub(1, Ordering::AcqRel);
            return Err(Status::resource_exhausted(format!(
                "{MAX_WATCHERS} Watch streams are open, the limit"
            )));
        }
        crate::metrics::metrics().watchers.inc();
        let watching = Watching(self.state.clone());
        let pb::WatchRequest { cursor } = request.into_inner();
        let store = signals.store.clone();
        let resume = store.watch(&cursor);
        let revision = self.state.snapshot().set.revision().to_owned();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let _watching = watching;
            let mut last = resume.seq;
            let first = pb::Invalidation {
                cursor: store.cursor_at(last),
                reset: resume.reset,
                policy_revision: revision,
                ..Default::default()
            };
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            for change in &resume.replay {
                last = change.seq;
                if tx
                    .send(Ok(invalidation(change, store.cursor_at(last))))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let mut live = resume.live;
            loop {
                let message = tokio::select! {
                    received = live.recv() => match received {
                        Ok(change) if change.seq <= last => continue,
                        Ok(change) => {
                            last = change.seq;
                            invalidation(&change, store.cursor_at(last))
                        }
                        // This stream fell behind: the client must drop everything.
                        Err(RecvError::Lagged(_)) => {
                            last = store.seq();
                            pb::Invalidation {
                                cursor: store.cursor_at(last),
                                reset: true,
                                ..Default::default()
                            }
                        }
                        Err(RecvError::Closed) => return,
                    },
                    () = tx.closed() => return,
                };
                if tx.send(Ok(message)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as InvalidationStream,
        ))
    }
}
