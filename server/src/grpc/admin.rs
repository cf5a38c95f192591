//! `pdp.v1.AdminService`: the serving set and the last reload's outcome, and reload on
//! demand. Only callers holding the admin grant may call it (see [`crate::trust`]).

use std::sync::Arc;

use pdp_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::reload::Outcome;
use crate::state::State;

/// The `AdminService` implementation.
#[derive(Debug, Clone)]
pub struct Admin {
    state: Arc<State>,
}

impl Admin {
    /// An admin service over `state`.
    pub fn new(state: Arc<State>) -> Self {
        Admin { state }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        crate::caller::Caller::of(request)
            .require_admin(&self.state.trust, "use the admin service")
            .map_err(Status::from)
    }
}

fn signals_status(s: &crate::signals::shared::Signals) -> pb::SignalsStatus {
    let (subjects, sessions, devices) = s.store.counts();
    pb::SignalsStatus {
        store: s.kind().to_owned(),
        connected: s.connected(),
        stale: s.stale(),
        since_contact_ms: s
            .since_contact()
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        subjects: subjects as u64,
        sessions: sessions as u64,
        devices: devices as u64,
        applied: s.store.applied(),
        cursor: s.store.cursor(),
        watchers: s.watchers.load(std::sync::atomic::Ordering::Relaxed),
        verifications: s.verifications.load(std::sync::atomic::Ordering::Relaxed),
        last_verification_state: s
            .last_verification
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default(),
    }
}

fn outcome(o: &Outcome) -> pb::ReloadOutcome {
    pb::ReloadOutcome {
        accepted: o.accepted,
        revision: o.revision.clone(),
        problems: o.problems.clone(),
        at: o.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for Admin {
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.authorize(&request)?;
        let snapshot = self.state.snapshot();
        let set = &snapshot.set;
        let reloads = &self.state.reloads;
        let last = reloads
            .last
            .lock()
            .ok()
            .and_then(|l| l.as_ref().map(outcome));
        Ok(Response::new(pb::StatusResponse {
            revision: set.revision().to_owned(),
            statements: set.statement_count() as u64,
            policies: self
                .state
                .policies
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            last_reload: last,
            reloads: reloads.reloads.load(std::sync::atomic::Ordering::Relaxed),
            rejected_reloads: reloads.failures.load(std::sync::atomic::Ordering::Relaxed),
            signals: Some(signals_status(&self.state.signals)),
        }))
    }

    async fn reload(
        &self,
        request: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ReloadResponse>, Status> {
        self.authorize(&request)?;
        let Some(dir) = &self.state.policies else {
            return Err(Status::failed_precondition(
                "this set was not loaded from a directory",
            ));
        };
        let o = crate::reload::reload(dir, &self.state, &self.state.reloads).await;
        Ok(Response::new(pb::ReloadResponse {
            outcome: Some(outcome(&o)),
        }))
    }
}
