//! The AuthZEN searches (`POST /access/v1/search/{subject,resource,action}`): each request
//! is read as an evaluation with the searched part left open, answered by
//! [`crate::search`], and shaped as `{"results": [...], "page": {"next_token", "count"}}`.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::Value as Json;

use super::{
    convert, engine_request, error, json, Ask, Converted, Incoming, Object, Tuple,
    SEARCH_ACTION_PATH, SEARCH_RESOURCE_PATH, SEARCH_SUBJECT_PATH,
};

pub(super) async fn subject(incoming: Incoming) -> Response {
    super::serve(
        incoming,
        "POST /access/v1/search/subject",
        SEARCH_SUBJECT_PATH,
        subject_search,
    )
}

pub(super) async fn resource(incoming: Incoming) -> Response {
    super::serve(
        incoming,
        "POST /access/v1/search/resource",
        SEARCH_RESOURCE_PATH,
        resource_search,
    )
}

pub(super) async fn action(incoming: Incoming) -> Response {
    super::serve(
        incoming,
        "POST /access/v1/search/action",
        SEARCH_ACTION_PATH,
        action_search,
    )
}

/// A search's `page`: `{"token": "...", "limit": N}`, both optional.
struct PageIn<'a> {
    token: &'a str,
    limit: Option<u64>,
}

fn page_of(body: &Object) -> Result<PageIn<'_>, String> {
    let page = match body.get("page") {
        None | Some(Json::Null) => {
            return Ok(PageIn {
                token: "",
                limit: None,
            })
        }
        Some(Json::Object(p)) => p,
        Some(_) => return Err("`page`: must be an object".to_owned()),
    };
    let token = match page.get("token") {
        None | Some(Json::Null) => "",
        Some(Json::String(t)) => t.as_str(),
        Some(_) => return Err("`page.token`: must be a string".to_owned()),
    };
    let limit = match page.get("limit") {
        None | Some(Json::Null) => None,
        Some(Json::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| "`page.limit`: must be a whole number, 0 or more".to_owned())?,
        ),
        Some(_) => return Err("`page.limit`: must be a number".to_owned()),
    };
    Ok(PageIn { token, limit })
}

/// A search request: its page, the request as an evaluation (the searched entity's missing
/// parts filled with `fill`), and its fingerprint (the body without `page`).
fn search_request<'a>(
    body: &'a Object,
    fill: &str,
) -> Result<(PageIn<'a>, Object, Vec<u8>), String> {
    let page = page_of(body)?;
    let mut unpaged = body.clone();
    unpaged.remove("page");
    let fingerprint = serde_json::to_vec(&unpaged).map_err(|e| e.to_string())?;
    let mut patched = unpaged;
    let (entity, member, value) = match fill {
        "subject" => ("subject", "id", Json::String(String::new())),
        "resource" => ("resource", "id", Json::String(String::new())),
        _ => ("action", "name", Json::String("pdp:Search".to_owned())),
    };
    match patched.get_mut(entity) {
        Some(Json::Object(o)) => {
            // The searched entity's id is ignored, as the specification says.
            o.insert(member.to_owned(), value);
        }
        None | Some(Json::Null) if entity == "action" => {
            let mut o = Object::new();
            o.insert(member.to_owned(), value);
            patched.insert(entity.to_owned(), Json::Object(o));
        }
        _ => {}
    }
    Ok((page, patched, fingerprint))
}

/// The answer to a search: `{"results": [...], "page": {"next_token": "...", "count": N}}`.
fn found<T: Serialize>(results: Vec<T>, next_token: String) -> Response {
    let count = results.len();
    json(
        StatusCode::OK,
        &serde_json::json!({
            "results": results,
            "page": {"next_token": next_token, "count": count},
        }),
    )
}

/// A search that failed: its status and message.
fn search_error(e: &crate::decider::ServiceError) -> Response {
    use crate::decider::ServiceError as E;
    match e {
        E::InvalidArgument(m) => error(StatusCode::BAD_REQUEST, m),
        E::PermissionDenied(m) => error(StatusCode::FORBIDDEN, m),
        E::Unauthenticated(m) => error(StatusCode::UNAUTHORIZED, m),
        E::Internal(m) => {
            tracing::error!("an AuthZEN search failed: {m}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the PDP failed to answer; the detail is in its log",
            )
        }
    }
}

/// Runs `search` on a search request whose `fill` entity is searched.
fn search_with(
    ask: &Ask<'_>,
    body: &Object,
    fill: &str,
    search: impl FnOnce(
        &crate::search::Searcher<'_>,
        crate::decider::CheckInput<'static>,
        &Converted,
        &crate::search::Paging<'_>,
    ) -> Response,
) -> Response {
    let (page, patched, fingerprint) = match search_request(body, fill) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    let converted = match convert(&Tuple::single(&patched)) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    let request = match engine_request(ask, &converted) {
        Ok(r) => r,
        Err(m) => return error(StatusCode::BAD_REQUEST, &m),
    };
    // As for an evaluation: every caller that gets here counts as trusted.
    let input = crate::decider::CheckInput {
        request,
        trusted: true,
        ..Default::default()
    };
    let searcher = crate::search::Searcher {
        decider: ask.decider,
        snapshot: ask.snapshot,
        call: ask.call,
    };
    let paging = crate::search::Paging {
        token: page.token,
        limit: page.limit,
        fingerprint: &fingerprint,
    };
    search(&searcher, input, &converted, &paging)
}

/// The entity type a search request names (`subject.type`, `resource.type`).
fn entity_type<'a>(body: &'a Object, entity: &str) -> &'a str {
    body.get(entity)
        .and_then(|e| e.get("type"))
        .and_then(Json::as_str)
        .unwrap_or_default()
}

/// Subject Search: which subjects of the directory may do `action` on `resource`.
fn subject_search(ask: &Ask<'_>, body: &Object) -> Response {
    // It lists the directory: as over gRPC, only a caller trusted by its transport may (an
    // API key alone admits a caller to decisions, not to who exists).
    if !ask.trusted {
        return error(
            StatusCode::FORBIDDEN,
            "only trusted callers may search subjects",
        );
    }
    let kind = entity_type(body, "subject").to_owned();
    search_with(
        ask,
        body,
        "subject",
        |searcher, input, _, paging| match searcher.subjects(input, paging) {
            Ok(f) => found(
                f.results
                    .into_iter()
                    .map(|id| serde_json::json!({"type": kind, "id": id}))
                    .collect(),
                f.next_token,
            ),
            Err(e) => search_error(&e),
        },
    )
}

/// Resource Search: which resources of the inventory of type `resource.type` `subject`
/// may do `action` on.
fn resource_search(ask: &Ask<'_>, body: &Object) -> Response {
    let kind = entity_type(body, "resource").to_owned();
    search_with(
        ask,
        body,
        "resource",
        |searcher, input, _, paging| match searcher.resources(input, &kind, paging) {
            Ok(f) => found(
                f.results
                    .into_iter()
                    .map(|r| serde_json::json!({"type": r.kind, "id": r.id}))
                    .collect(),
                f.next_token,
            ),
            Err(e) => search_error(&e),
        },
    )
}

/// Action Search: which actions `subject` may do on `resource`.
fn action_search(ask: &Ask<'_>, body: &Object) -> Response {
    search_with(
        ask,
        body,
        "action",
        |searcher, input, _, paging| match searcher.actions(input, paging) {
            Ok(f) => found(
                f.results
                    .into_iter()
                    .map(|name| serde_json::json!({"name": name}))
                    .collect(),
                f.next_token,
            ),
            Err(e) => search_error(&e),
        },
    )
}
