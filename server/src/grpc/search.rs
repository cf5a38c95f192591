//! The searches over gRPC (`SearchResources`, `SearchSubjects`, `SearchActions`): each
//! admits the caller as `Check` does, converts its request, asks [`crate::search`] for one
//! page and converts the page back. The request without its page, request id and signal
//! generation is what a page token is bound to.

use pdp_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::convert::{self, Parts};
use super::{admit, pace};
use crate::caller::Caller;
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

/// A search request whose paging fields can be taken out, so that the rest is what a page
/// token is bound to.
trait Paged: prost::Message + Sized {
    /// Takes out the page, the request id and the signal generation.
    fn unpage(&mut self) -> (Option<pb::SearchPage>, String, u64);
}

macro_rules! paged {
    ($($message:ty),*) => {$(
        impl Paged for $message {
            fn unpage(&mut self) -> (Option<pb::SearchPage>, String, u64) {
                (
                    self.page.take(),
                    std::mem::take(&mut self.request_id),
                    std::mem::take(&mut self.min_signal_generation),
                )
            }
        }
    )*};
}

paged!(
    pb::SearchResourcesRequest,
    pb::SearchSubjectsRequest,
    pb::SearchActionsRequest
);

/// A search call admitted and paced.
struct Opened<M> {
    caller: Caller,
    call: Call,
    /// The request without its paging fields.
    message: M,
    page: Option<pb::SearchPage>,
    /// What a page token is bound to: `message` encoded.
    fingerprint: Vec<u8>,
}

/// Admits the caller as `Check` does (only a trusted one when `trusted_to` says what it may
/// then do), takes the paging fields out of the request and waits for its signal generation.
async fn open<M: Paged>(
    decider: &Decider,
    request: Request<M>,
    api: &'static str,
    span: &'static str,
    trusted_to: Option<&str>,
) -> Result<Opened<M>, Status> {
    let state = decider.state();
    let (caller, mut call) = admit(state, &request, api, span)?;
    if let Some(what) = trusted_to {
        caller.require_trusted(what)?;
    }
    let mut message = request.into_inner();
    let (page, request_id, min_generation) = message.unpage();
    let fingerprint = message.encode_to_vec();
    pace(state, &mut call, &request_id, min_generation).await;
    Ok(Opened {
        caller,
        call,
        message,
        page,
        fingerprint,
    })
}

/// `SearchResources`.
pub(super) async fn resources(
    decider: &Decider,
    request: Request<pb::SearchResourcesRequest>,
) -> Result<Response<pb::SearchResourcesResponse>, Status> {
    let Opened {
        caller,
        call,
        message,
        page,
        fingerprint,
    } = open(
        decider,
        request,
        "search_resources",
        "pdp.v1.AuthorizationService/SearchResources",
        None,
    )
    .await?;
    let pb::SearchResourcesRequest {
        subject,
        action,
        resource_type,
        context,
        ..
    } = &message;
    let state = decider.state();
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
    let Opened {
        call,
        message,
        page,
        fingerprint,
        ..
    } = open(
        decider,
        request,
        "search_subjects",
        "pdp.v1.AuthorizationService/SearchSubjects",
        Some("search subjects"),
    )
    .await?;
    let pb::SearchSubjectsRequest {
        action,
        resource,
        context,
        ..
    } = &message;
    let state = decider.state();
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
    let Opened {
        caller,
        call,
        message,
        page,
        fingerprint,
    } = open(
        decider,
        request,
        "search_actions",
        "pdp.v1.AuthorizationService/SearchActions",
        None,
    )
    .await?;
    let pb::SearchActionsRequest {
        subject,
        resource,
        context,
        ..
    } = &message;
    let state = decider.state();
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
