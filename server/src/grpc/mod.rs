//! The gRPC transport: `pdp.v1.AuthorizationService`. Each RPC asks the request's
//! [`Caller`] whether it may call, converts its input ([`convert`]), makes one call into
//! the [`Decider`] per decision, and converts the outcome back. [`ServiceError`] becomes a
//! `tonic::Status` here and nowhere else.

pub mod admin;
pub mod convert;
mod search;
pub mod signals;

use std::sync::Arc;

use pdp_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::caller::Caller;
use crate::decider::{Call, Decider, Semantic, ServiceError};
use crate::state::State;
use convert::Parts;
use opentelemetry::KeyValue;

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Status {
        match e {
            ServiceError::InvalidArgument(m) => Status::invalid_argument(m),
            ServiceError::PermissionDenied(m) => Status::permission_denied(m),
            ServiceError::Unauthenticated(m) => Status::unauthenticated(m),
            ServiceError::Internal(m) => {
                tracing::error!("a call failed: {m}");
                Status::internal("the PDP failed to answer; the detail is in its log")
            }
        }
    }
}

/// The `AuthorizationService` implementation.
#[derive(Debug, Clone)]
pub struct Authorizer {
    decider: Decider,
}

impl Authorizer {
    /// A service deciding with `state`.
    pub fn new(state: Arc<State>) -> Self {
        Authorizer {
            decider: Decider::new(state),
        }
    }
}

/// The [`Call`] of a gRPC request by `caller`: who asked (kept only when the decision log
/// is on) and its span (`span`, e.g. `pdp.v1.AuthorizationService/Check`, continuing the
/// caller's trace).
fn call_of<T>(
    state: &State,
    request: &Request<T>,
    caller: &Caller,
    api: &'static str,
    span: &'static str,
) -> Call {
    let traced = state.telemetry.as_ref().and_then(|t| {
        let parent = t.from_metadata(request.metadata());
        let (service, method) = span.rsplit_once('/').unwrap_or((span, ""));
        t.call(span, &parent, || {
            vec![
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", service),
                KeyValue::new("rpc.method", method),
            ]
        })
    });
    Call::new(api, caller, state.audit.is_some(), traced)
}

/// Admits a gRPC request for decisions: its [`Caller`] (refused with `PERMISSION_DENIED`
/// when it may not ask) and its [`Call`] (see [`call_of`]).
pub fn admit<T>(
    state: &State,
    request: &Request<T>,
    api: &'static str,
    span: &'static str,
) -> Result<(Caller, Call), Status> {
    let caller = Caller::of(request);
    caller.require_check()?;
    let call = call_of(state, request, &caller, api, span);
    Ok((caller, call))
}

/// Keeps the caller's request id, and waits (within the bound) until this replica has
/// applied the signals up to `min_generation`; past the bound every decision of the call
/// is `signals_stale`.
async fn pace(state: &State, call: &mut Call, request_id: &str, min_generation: u64) {
    call.set_request_id(request_id);
    call.signals_behind = !state.signals.reached(min_generation).await;
}

/// The `semantic` field.
fn semantic(value: i32) -> Result<Semantic, ServiceError> {
    match pb::BatchSemantic::try_from(value) {
        Ok(pb::BatchSemantic::ExecuteAll) => Ok(Semantic::ExecuteAll),
        Ok(pb::BatchSemantic::DenyOnFirstDeny) => Ok(Semantic::DenyOnFirstDeny),
        Ok(pb::BatchSemantic::PermitOnFirstPermit) => Ok(Semantic::PermitOnFirstPermit),
        Err(_) => Err(ServiceError::InvalidArgument(format!(
            "`semantic`: unknown value {value}"
        ))),
    }
}

/// What one decision is within its call.
#[derive(Clone, Copy)]
enum Item<'a> {
    /// The call's one decision (its stages traced), explained or not.
    Single { explain: bool },
    /// A batch item, named `prefix` in errors (e.g. `items[3].`).
    Batch { prefix: &'a str },
}

impl Authorizer {
    /// One decision of `parts`, converted and answered in protobuf.
    fn decide(
        &self,
        snapshot: &crate::state::Snapshot,
        parts: &Parts<'_>,
        trusted: bool,
        call: &Call,
        item: Item<'_>,
    ) -> Result<pb::CheckResponse, ServiceError> {
        let (prefix, stages, explain) = match item {
            Item::Single { explain } => ("", true, explain),
            Item::Batch { prefix } => (prefix, false, false),
        };
        let state = self.decider.state();
        let input = convert::check_input(parts, &state.limits, prefix, trusted).map_err(|e| {
            if let Some(t) = call.traced.as_ref().filter(|_| stages) {
                t.error(e.to_string());
            }
            ServiceError::InvalidArgument(e.to_string())
        })?;
        let (outcome, explanation) = self
            .decider
            .decide_explained(snapshot, input, call, stages, explain);
        let mut response = convert::check_response(outcome);
        response.explanation = explanation.map(|e| Box::new(convert::explanation(e)));
        Ok(response)
    }
}

#[tonic::async_trait]
impl pb::authorization_service_server::AuthorizationService for Authorizer {
    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let state = self.decider.state();
        let (caller, mut call) = admit(
            state,
            &request,
            "check",
            "pdp.v1.AuthorizationService/Check",
        )?;
        let pb::CheckRequest {
            subject,
            action,
            resource,
            context,
            request_id,
            min_signal_generation,
            explain,
        } = request.into_inner();
        if explain {
            // An explanation reveals policy.
            caller
                .require_trusted("ask for explanations")
                .map_err(Status::from)?;
        }
        pace(state, &mut call, &request_id, min_signal_generation).await;
        let parts = Parts {
            subject: subject.as_ref(),
            action: &action,
            resource: resource.as_ref(),
            context: context.as_ref(),
        };
        let snapshot = state.snapshot();
        self.decide(
            &snapshot,
            &parts,
            caller.trusted,
            &call,
            Item::Single { explain },
        )
        .map(Response::new)
        .map_err(Status::from)
    }

    async fn plan_resources(
        &self,
        request: Request<pb::PlanResourcesRequest>,
    ) -> Result<Response<pb::PlanResourcesResponse>, Status> {
        let state = self.decider.state();
        let (caller, mut call) = admit(
            state,
            &request,
            "plan_resources",
            "pdp.v1.AuthorizationService/PlanResources",
        )?;
        let pb::PlanResourcesRequest {
            subject,
            action,
            context,
            request_id,
            min_signal_generation,
        } = request.into_inner();
        pace(state, &mut call, &request_id, min_signal_generation).await;
        let parts = Parts {
            subject: subject.as_ref(),
            action: &action,
            resource: None,
            context: context.as_ref(),
        };
        let input = convert::check_input(&parts, &state.limits, "", caller.trusted)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let snapshot = state.snapshot();
        let planned = self.decider.plan(&snapshot, input, &call);
        Ok(Response::new(convert::plan_response(planned)))
    }

    async fn search_resources(
        &self,
        request: Request<pb::SearchResourcesRequest>,
    ) -> Result<Response<pb::SearchResourcesResponse>, Status> {
        search::resources(&self.decider, request).await
    }

    async fn search_subjects(
        &self,
        request: Request<pb::SearchSubjectsRequest>,
    ) -> Result<Response<pb::SearchSubjectsResponse>, Status> {
        search::subjects(&self.decider, request).await
    }

    async fn search_actions(
        &self,
        request: Request<pb::SearchActionsRequest>,
    ) -> Result<Response<pb::SearchActionsResponse>, Status> {
        search::actions(&self.decider, request).await
    }

    async fn check_batch(
        &self,
        request: Request<pb::CheckBatchRequest>,
    ) -> Result<Response<pb::CheckBatchResponse>, Status> {
        let state = self.decider.state();
        let (caller, mut call) = admit(
            state,
            &request,
            "check_batch",
            "pdp.v1.AuthorizationService/CheckBatch",
        )?;
        let pb::CheckBatchRequest {
            subject,
            action,
            resource,
            context,
            items,
            semantic: semantic_value,
            request_id,
            min_signal_generation,
        } = request.into_inner();
        pace(state, &mut call, &request_id, min_signal_generation).await;
        if items.len() > state.max_batch_items {
            return Err(Status::invalid_argument(format!(
                "`items`: {} items, over the limit of {}",
                items.len(),
                state.max_batch_items
            )));
        }
        let semantic = semantic(semantic_value)?;
        // One revision decides every item.
        let snapshot = state.snapshot();
        let mut responses = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let merged = convert::merge_context(context.as_ref(), item.context.as_ref());
            let parts = Parts {
                subject: item.subject.as_ref().or(subject.as_ref()),
                action: if item.action.is_empty() {
                    &action
                } else {
                    &item.action
                },
                resource: item.resource.as_ref().or(resource.as_ref()),
                context: merged.as_ref(),
            };
            let prefix = format!("items[{i}].");
            let response = self.decide(
                &snapshot,
                &parts,
                caller.trusted,
                &call,
                Item::Batch { prefix: &prefix },
            )?;
            let allowed = response.decision == pb::Decision::Allow as i32;
            responses.push(response);
            if semantic.stops(allowed) {
                break;
            }
        }
        let allowed = responses
            .iter()
            .filter(|r| r.decision == pb::Decision::Allow as i32)
            .count();
        call.trace_batch(responses.len(), allowed);
        Ok(Response::new(pb::CheckBatchResponse { responses }))
    }
}
