//! The searches over gRPC (`SearchResources`, `SearchSubjects`, `SearchActions`): each
//! admits the caller as `Check` does, converts its request, asks [`crate::search`] for one
//! page and converts the page back. The request without its page, request id and signal
//! generation is what a page token is bound to.

use pdp_proto::v1 as pb;
use prost::Message as _;
use tonic::{Request, Response, Status};

use super::convert::{self, Parts};
use super::{admit, pace};
use crate::decider::{Call, Decider};
use crate::search::{Found, Paging, Searcher};

/// The action a search that leaves the action open is screened with (each candidate
/// replaces it).
const ANY_ACTION: &str = "pdp:Search";

fn page_info<T>(found: &Found<T>) -> pb::SearchPageInfo {
    pb::SearchPageInfo {
        next_token: found.next_token.clone(),
        count: u32::try_from(found.results.len()).unwrap_or(u32::MAX),
    }
}

fn paging<'a>(page: Option<&'a pb::SearchPage>, fingerprint: &'a [u8]) -> Paging<'a> {
    Paging {
        token: page.map_or("", |p| p.token.as_str()),
        limit: page.map(|p| u64::from(p.limit)),
        fingerprint,
    }
}

fn searcher<'a>(
    decider: &'a Decider,
    snapshot: &'a crate::state::Snapshot,
    call: &'a Call,
) -> Searcher<'a> {
    Searcher {
        decider,
        snapshot,
        call,
    }
}

/// `SearchResources`.
pub(super) async fn resources(
    decider: &Decider,
    request: Request<pb::SearchResourcesRequest>,
) -> Result<Response<pb::SearchResourcesResponse>, Status> {
    let state = decider.state();
    let (caller, mut call) = admit(
        state,
        &request,
        "search_resources",
        "pdp.v1.AuthorizationService/SearchResources",
    )?;
    let mut message = request.into_inner();
    let page = message.page.take();
    let request_id = std::mem::take(&mut message.request_id);
    let min_generation = std::mem::take(&mut message.min_signal_generation);
    let fingerprint = message.encode_to_vec();
    let pb::SearchResourcesRequest {
        subject,
        action,
        resource_type,
        context,
        page: _,
        request_id: _,
        min_signal_generation: _,
    } = &message;
    pace(state, &mut call, &request_id, min_generation).await;
    let max = state.limits.max_field_bytes;
    if resource_type.len() > max {
        return Err(Status::invalid_argument(format!(
            "`resource_type`: {} bytes, over the limit of {max}",
            resource_type.len()
        )));
    }
    let parts = Parts {
        subject: subject.as_ref(),
        action,
        resource: None,
        context: context.as_ref(),
    };
    let input = convert::check_input(&parts, &state.limits, "", caller.trusted)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let snapshot = state.snapshot();
    let found = searcher(decider, &snapshot, &call).resources(
        input,
        resource_type,
        &paging(page.as_ref(), &fingerprint),
    )?;
    Ok(Response::new(pb::SearchResourcesResponse {
        page: Some(page_info(&found)),
        results: found
            .results
            .into_iter()
            .map(|r| pb::FoundResource {
                resource_type: r.kind,
                id: r.id,
                resource_id: r.resource_id,
            })
            .collect(),
        policy_revision: snapshot.set.revision().to_owned(),
    }))
}

/// `SearchSubjects`: trusted callers only (it lists the directory).
pub(super) async fn subjects(
    decider: &Decider,
    request: Request<pb::SearchSubjectsRequest>,
) -> Result<Response<pb::SearchSubjectsResponse>, Status> {
    let state = decider.state();
    let (caller, mut call) = admit(
        state,
        &request,
        "search_subjects",
        "pdp.v1.AuthorizationService/SearchSubjects",
    )?;
    caller.require_trusted("search subjects")?;
    let mut message = request.into_inner();
    let page = message.page.take();
    let request_id = std::mem::take(&mut message.request_id);
    let min_generation = std::mem::take(&mut message.min_signal_generation);
    let fingerprint = message.encode_to_vec();
    let pb::SearchSubjectsRequest {
        action,
        resource,
        context,
        page: _,
        request_id: _,
        min_signal_generation: _,
    } = &message;
    pace(state, &mut call, &request_id, min_generation).await;
    let parts = Parts {
        subject: None,
        action,
        resource: resource.as_ref(),
        context: context.as_ref(),
    };
    let input = convert::check_input(&parts, &state.limits, "", true)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let snapshot = state.snapshot();
    let found = searcher(decider, &snapshot, &call)
        .subjects(input, &paging(page.as_ref(), &fingerprint))?;
    Ok(Response::new(pb::SearchSubjectsResponse {
        page: Some(page_info(&found)),
        subject_ids: found.results,
        policy_revision: snapshot.set.revision().to_owned(),
    }))
}

/// `SearchActions`.
pub(super) async fn actions(
    decider: &Decider,
    request: Request<pb::SearchActionsRequest>,
) -> Result<Response<pb::SearchActionsResponse>, Status> {
    let state = decider.state();
    let (caller, mut call) = admit(
        state,
        &request,
        "search_actions",
        "pdp.v1.AuthorizationService/SearchActions",
    )?;
    let mut message = request.into_inner();
    let page = message.page.take();
    let request_id = std::mem::take(&mut message.request_id);
    let min_generation = std::mem::take(&mut message.min_signal_generation);
    let fingerprint = message.encode_to_vec();
    let pb::SearchActionsRequest {
        subject,
        resource,
        context,
        page: _,
        request_id: _,
        min_signal_generation: _,
    } = &message;
    pace(state, &mut call, &request_id, min_generation).await;
    let parts = Parts {
        subject: subject.as_ref(),
        action: ANY_ACTION,
        resource: resource.as_ref(),
        context: context.as_ref(),
    };
    let input = convert::check_input(&parts, &state.limits, "", caller.trusted)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let snapshot = state.snapshot();
    let found =
        searcher(decider, &snapshot, &call).actions(input, &paging(page.as_ref(), &fingerprint))?;
    Ok(Response::new(pb::SearchActionsResponse {
        page: Some(page_info(&found)),
        actions: found.results,
        policy_revision: snapshot.set.revision().to_owned(),
    }))
}
