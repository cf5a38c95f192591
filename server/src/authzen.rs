//! The OpenID AuthZEN Authorization API 1.0 on the HTTP port: `POST /access/v1/evaluation`,
//! `POST /access/v1/evaluations`, the searches (`POST /access/v1/search/{subject,resource,
//! action}`, answered by [`crate::search`]) and the PDP metadata at
//! `/.well-known/authzen-configuration`.
//! Each evaluation is mapped onto a `pdp.v1` check (subject, action, resource, context) and
//! decided by [`Decider::decide`], the path every front end shares. Obligations follow the
//! AuthZEN Obligations Extension: they are returned only to a caller that opted in to them,
//! and a decision that carries obligations the caller cannot take is answered as a plain deny.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value as Json};

mod search;

use crate::caller::Caller;
use crate::decider::bounds::FieldError;
use crate::decider::{Call, Decider, Outcome, Semantic};
use crate::state::{Snapshot, State};

/// A JSON object.
type Object = Map<String, Json>;

/// The Access Evaluation endpoint.
pub const EVALUATION_PATH: &str = "/access/v1/evaluation";
/// The Access Evaluations (batch) endpoint.
pub const EVALUATIONS_PATH: &str = "/access/v1/evaluations";
/// The Subject Search endpoint.
pub const SEARCH_SUBJECT_PATH: &str = "/access/v1/search/subject";
/// The Resource Search endpoint.
pub const SEARCH_RESOURCE_PATH: &str = "/access/v1/search/resource";
/// The Action Search endpoint.
pub const SEARCH_ACTION_PATH: &str = "/access/v1/search/action";
/// The PDP metadata.
pub const METADATA_PATH: &str = "/.well-known/authzen-configuration";
/// The environment variable holding the API keys (comma-separated) that untrusted callers
/// present as `Authorization: Bearer <key>`.
pub const API_KEYS_VAR: &str = "PDP_AUTHZEN_API_KEYS";
/// The capability URN of the AuthZEN Obligations Extension.
pub const OBLIGATIONS_CAPABILITY: &str = "urn:openid:authzen:capability:obligations";

const REQUEST_ID: &str = "x-request-id";
/// The request context members of the Obligations Extension: protocol declarations, never
/// condition keys.
const OPT_IN_KEY: &str = "supported_mandatory_extensions";
const TYPES_KEY: &str = "supported_obligations";

/// The obligation types this PDP can issue (every type the engine knows).
pub fn supported_obligations() -> impl Iterator<Item = &'static str> {
    pdp_engine::ObligationType::ALL
        .iter()
        .map(|(_, name)| *name)
}

/// The AuthZEN routes. Reads the API keys from `PDP_AUTHZEN_API_KEYS` once.
pub fn routes() -> Router<Arc<State>> {
    let keys = ApiKeys::from_env();
    if !keys.is_empty() {
        tracing::info!(keys = keys.len(), "AuthZEN API keys loaded");
    }
    Router::new()
        .route(EVALUATION_PATH, post(evaluation))
        .route(EVALUATIONS_PATH, post(evaluations))
        .route(SEARCH_SUBJECT_PATH, post(search::subject))
        .route(SEARCH_RESOURCE_PATH, post(search::resource))
        .route(SEARCH_ACTION_PATH, post(search::action))
        .route(METADATA_PATH, get(metadata))
        .layer(Extension(Arc::new(keys)))
        // Outermost, so that every answer carries the caller's request id: refusals (401,
        // 413) and errors included.
        .layer(axum::middleware::from_fn(echo_request_id))
}

/// Copies the request's `X-Request-ID` onto the response.
async fn echo_request_id(request: Request, next: Next) -> Response {
    let id = request.headers().get(REQUEST_ID).cloned();
    let mut response = next.run(request).await;
    if let Some(id) = id {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    response
}

// ---------------------------------------------------------------------------------------
// Caller authentication

/// SHA-256 digests of the configured API keys (the keys themselves are not kept).
#[derive(Debug, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    /// Keys from a comma-separated list (blank entries ignored).
    pub fn parse(list: &str) -> ApiKeys {
        ApiKeys {
            digests: list
                .split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(digest)
                .collect(),
        }
    }

    /// Keys from `PDP_AUTHZEN_API_KEYS`; none when it is unset.
    pub fn from_env() -> ApiKeys {
        std::env::var(API_KEYS_VAR)
            .map(|v| ApiKeys::parse(&v))
            .unwrap_or_default()
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `key` is one of the keys (digests compared in constant time).
    pub fn accepts(&self, key: &str) -> bool {
        let presented = digest(key);
        self.digests.iter().fold(false, |found, d| {
            let same = d
                .iter()
                .zip(presented.iter())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0;
            found | same
        })
    }
}

fn digest(key: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(key.as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Admits trusted callers, and others presenting a configured API key; a `401` otherwise.
fn authenticate(caller: &Caller, keys: &ApiKeys, headers: &HeaderMap) -> Result<(), Refusal> {
    if caller.trusted {
        return Ok(());
    }
    let peer = caller.addr;
    let refused = |challenge: &'static str, message: &str| {
        tracing::debug!(peer = ?peer, "AuthZEN call refused: {message}");
        Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: message.to_owned(),
            challenge: Some(challenge),
        })
    };
    if keys.is_empty() {
        return refused(
            "Bearer",
            "this PDP answers AuthZEN calls from trusted callers only: no API key is configured",
        );
    }
    match bearer(headers) {
        None => refused(
            "Bearer",
            "an `Authorization: Bearer <API key>` header is required",
        ),
        Some(key) if keys.accepts(key) => Ok(()),
        Some(_) => refused("Bearer error=\"invalid_token\"", "the API key is not valid"),
    }
}

// ---------------------------------------------------------------------------------------
// Answers

/// One decision as AuthZEN answers it: exactly `{"decision": bool}` unless there is
/// something to add.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Allow (`true`) or deny.
    pub decision: bool,
    /// Obligations (to a caller that opted in), or what went wrong with a batch item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<DecisionContext>,
}

/// The `context` of a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecisionContext {
    /// What the caller must carry out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub obligations: Vec<Obligation>,
    /// Why a batch item could not be decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    /// Why the policies decided as they did (`options.explain`, trusted callers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Json>,
}

/// An obligation, as the Obligations Extension shapes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Obligation {
    /// The obligation's id.
    pub id: String,
    /// `step-up`, `notification`, `session_termination`, `custom` or `audit`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its parameters (an object, possibly empty).
    pub properties: Json,
}

/// A batch item that could not be decided.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemError {
    /// The HTTP status the item would have had on its own.
    pub status: u16,
    /// What is wrong, naming the field.
    pub message: String,
}

impl Decision {
    fn plain(allowed: bool) -> Decision {
        Decision {
            decision: allowed,
            context: None,
        }
    }

    fn failed(message: String) -> Decision {
        Decision {
            decision: false,
            context: Some(DecisionContext {
                obligations: Vec::new(),
                error: Some(ItemError {
                    status: StatusCode::BAD_REQUEST.as_u16(),
                    message,
                }),
                explanation: None,
            }),
        }
    }
}

#[derive(Debug, Serialize)]
struct Evaluations {
    evaluations: Vec<Decision>,
}

#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_string(body) {
        Ok(text) => (status, [(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => {
            tracing::error!("an AuthZEN answer could not be serialised: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An error answer: `{"error": "<message>"}`.
fn error(status: StatusCode, message: &str) -> Response {
    json(status, &ErrorBody { error: message })
}

/// A call refused before any evaluation.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
    /// The `WWW-Authenticate` challenge of a `401`.
    challenge: Option<&'static str>,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            challenge: None,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = error(self.status, &self.message);
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

/// What every AuthZEN handler extracts: the state, the API keys, the caller, the headers and
/// the body (or why it could not be read, answered by the handler).
struct Incoming {
    state: Arc<State>,
    keys: Arc<ApiKeys>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
}

impl FromRequest<Arc<State>> for Incoming {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, state: &Arc<State>) -> Result<Self, Self::Rejection> {
        let caller = request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::unknown);
        // Without the routes' key layer no key is accepted (fail closed).
        let keys = request
            .extensions()
            .get::<Arc<ApiKeys>>()
            .cloned()
            .unwrap_or_default();
        let headers = request.headers().clone();
        let body = Bytes::from_request(request, state).await;
        Ok(Incoming {
            state: state.clone(),
            keys,
            caller,
            headers,
            body,
        })
    }
}

async fn evaluation(incoming: Incoming) -> Response {
    serve(
        incoming,
        "POST /access/v1/evaluation",
        EVALUATION_PATH,
        single,
    )
}

async fn evaluations(incoming: Incoming) -> Response {
    serve(
        incoming,
        "POST /access/v1/evaluations",
        EVALUATIONS_PATH,
        batch,
    )
}

/// Traces the call (span `name`), admits it (caller, body, content type, JSON object) and
/// answers with `decide`.
fn serve(
    incoming: Incoming,
    name: &'static str,
    route: &'static str,
    decide: impl FnOnce(&Ask<'_>, &Object) -> Response,
) -> Response {
    let Incoming {
        state,
        keys,
        caller,
        headers,
        body,
    } = incoming;
    let traced = state.telemetry.as_ref().and_then(|t| {
        t.call(name, &t.from_headers(&headers), || {
            vec![
                opentelemetry::KeyValue::new("http.request.method", "POST"),
                opentelemetry::KeyValue::new("http.route", route),
            ]
        })
    });
    let mut call = Call::new("authzen", &caller, state.audit.is_some(), traced);
    if let Some(id) = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
        call.set_request_id(id);
    }
    let response = match admit(&caller, &keys, &headers, body) {
        Ok(request) => {
            // One revision answers every evaluation of the call.
            let snapshot = state.snapshot();
            let ask = Ask {
                decider: &Decider::new(state.clone()),
                snapshot: &snapshot,
                call: &call,
                trusted: caller.trusted,
            };
            decide(&ask, &request)
        }
        Err(refused) => refused.into_response(),
    };
    if let Some(t) = &call.traced {
        t.set([opentelemetry::KeyValue::new(
            "http.response.status_code",
            i64::from(response.status().as_u16()),
        )]);
    }
    response
}

/// The request body as a JSON object, once the caller is admitted.
fn admit(
    caller: &Caller,
    keys: &ApiKeys,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Object, Refusal> {
    authenticate(caller, keys, headers)?;
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "the body is over the limit of {} bytes",
                crate::serve::MAX_BODY_BYTES
            )
        } else {
            rejection.body_text()
        };
        Refusal {
            status,
            message,
            challenge: None,
        }
    })?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(Refusal::bad_request(format!(
            "the content type must be `application/json`, not `{media}`"
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::bad_request("the body is empty"));
    }
    match serde_json::from_slice::<Json>(&body) {
        Ok(Json::Object(request)) => Ok(request),
        Ok(_) => Err(Refusal::bad_request("the body must be a JSON object")),
        Err(e) => Err(Refusal::bad_request(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}

/// What an evaluation is decided with: the decider, the revision and the call.
struct Ask<'a> {
    decider: &'a Decider,
    snapshot: &'a Snapshot,
    call: &'a Call,
    /// The caller is trusted by its transport (loopback, a trusted SPIFFE ID): it may ask
    /// for explanations, which reveal policy. An API key alone does not make it so.
    trusted: bool,
}

/// One Access Evaluation.
fn single(ask: &Ask<'_>, body: &Object) -> Response {
    let explain = match explain(body.get("options")) {
        Ok(explain) => explain,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if explain && !ask.trusted {
        return error(
            StatusCode::FORBIDDEN,
            "`options.explain`: only trusted callers may ask for explanations",
        );
    }
    let parts = Tuple::single(body);
    match evaluate(ask, &parts, true, explain) {
        Ok(decision) => json(StatusCode::OK, &decision),
        Err(message) => error(StatusCode::BAD_REQUEST, &message),
    }
}

/// An Access Evaluations request; without evaluations, one Access Evaluation.
fn batch(ask: &Ask<'_>, body: &Object) -> Response {
    for name in ["subject", "action", "resource", "context"] {
        if body
            .get(name)
            .is_some_and(|v| !v.is_null() && !v.is_object())
        {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("`{name}`: must be an object"),
            );
        }
    }
    let items = match body.get("evaluations") {
        None | Some(Json::Null) => &[][..],
        Some(Json::Array(items)) => items.as_slice(),
        Some(_) => {
            return error(StatusCode::BAD_REQUEST, "`evaluations`: must be an array");
        }
    };
    // The spec: without evaluations (absent or empty), the request is one Access
    // Evaluation, answered as one.
    if items.is_empty() {
        return single(ask, body);
    }
    let max = ask.decider.state().max_batch_items;
    if items.len() > max {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "`evaluations`: {} evaluations, over the limit of {max}",
                items.len()
            ),
        );
    }
    let semantic = match semantic(body.get("options")) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match explain(body.get("options")) {
        Ok(false) => {}
        Ok(true) => {
            return error(
                StatusCode::BAD_REQUEST,
                "`options.explain`: explanations are given for a single evaluation only",
            )
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
    let mut answers = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let decided = match item {
            Json::Object(item) => evaluate(ask, &Tuple::item(body, item, i), false, false),
            _ => Err(format!("`evaluations[{i}]`: must be an object")),
        };
        let answer = match decided {
            Ok(decision) => decision,
            Err(message) => Decision::failed(message),
        };
        // A failed item counts as a deny ("deny on first denial (or failure)").
        let allowed = answer.decision;
        answers.push(answer);
        if semantic.stops(allowed) {
            break;
        }
    }
    ask.call
        .trace_batch(answers.len(), answers.iter().filter(|a| a.decision).count());
    json(
        StatusCode::OK,
        &Evaluations {
            evaluations: answers,
        },
    )
}

/// `options.explain` (`false` when absent).
fn explain(options: Option<&Json>) -> Result<bool, FieldError> {
    match options.and_then(|o| o.get("explain")) {
        None | Some(Json::Null) => Ok(false),
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(field_error("options.explain", "must be a boolean")),
    }
}

/// `options.evaluations_semantic` (`execute_all` when absent).
fn semantic(options: Option<&Json>) -> Result<Semantic, FieldError> {
    let options = match options {
        None | Some(Json::Null) => return Ok(Semantic::ExecuteAll),
        Some(Json::Object(o)) => o,
        Some(_) => return Err(field_error("options", "must be an object")),
    };
    match options.get("evaluations_semantic") {
        None | Some(Json::Null) => Ok(Semantic::ExecuteAll),
        Some(Json::String(s)) => match s.as_str() {
            "execute_all" => Ok(Semantic::ExecuteAll),
            "deny_on_first_deny" => Ok(Semantic::DenyOnFirstDeny),
            "permit_on_first_permit" => Ok(Semantic::PermitOnFirstPermit),
            other => Err(field_error(
                "options.evaluations_semantic",
                format!(
                    "must be `execute_all`, `deny_on_first_deny` or `permit_on_first_permit`, not `{other}`"
                ),
            )),
        },
        Some(_) => Err(field_error(
            "options.evaluations_semantic",
            "must be a string",
        )),
    }
}

/// Converts, decides with `ask`, and shapes the answer; a request that cannot be read
/// fails with what is wrong (a 400, or a failed batch item).
fn evaluate(
    ask: &Ask<'_>,
    tuple: &Tuple<'_>,
    stages: bool,
    explain: bool,
) -> Result<Decision, String> {
    let converted = convert(tuple).map_err(|e| e.to_string())?;
    let request = engine_request(ask, &converted)?;
    // Every caller that gets here is trusted, or authenticated by an API key (which counts
    // as trusted).
    let input = crate::decider::CheckInput {
        request,
        trusted: true,
        ..Default::default()
    };
    let (outcome, explanation) =
        ask.decider
            .decide_explained(ask.snapshot, input, ask.call, stages, explain);
    let mut decision = answer(&outcome, &converted.declared);
    if let Some(e) = explanation.and_then(|e| serde_json::to_value(e).ok()) {
        decision
            .context
            .get_or_insert_with(|| DecisionContext {
                obligations: Vec::new(),
                error: None,
                explanation: None,
            })
            .explanation = Some(e);
    }
    Ok(decision)
}

/// The AuthZEN answer to a decision: obligations only to a caller that opted in to every
/// one of their types; a plain deny when the decision carries obligations it did not.
fn answer(response: &Outcome, declared: &Declared) -> Decision {
    let allowed = response.allowed;
    if response.obligations.is_empty() {
        return Decision::plain(allowed);
    }
    if !declared.accepts(&response.obligations) {
        tracing::info!(
            decision_id = %response.decision_id,
            allowed,
            "AuthZEN: the decision carries obligations the caller did not opt in to, so it is answered as a plain deny"
        );
        return Decision::plain(false);
    }
    let obligations = response
        .obligations
        .iter()
        .map(|o| Obligation {
            id: o.id.clone(),
            kind: o.kind.as_str().to_owned(),
            properties: Json::Object(o.properties.clone()),
        })
        .collect();
    Decision {
        decision: allowed,
        context: Some(DecisionContext {
            obligations,
            error: None,
            explanation: None,
        }),
    }
}

// ---------------------------------------------------------------------------------------
// The mapping onto pdp.v1

/// What a caller declared about obligations in the request context (the Obligations
/// Extension's `supported_mandatory_extensions` and `supported_obligations`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Declared {
    /// `obligations` is listed in `supported_mandatory_extensions`.
    pub adopted: bool,
    /// The types listed in `supported_obligations`.
    pub types: Vec<String>,
}

impl Declared {
    fn from_context(context: Option<&Object>) -> Declared {
        let strings = |key: &str| -> Vec<String> {
            context
                .and_then(|c| c.get(key))
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Json::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        Declared {
            adopted: strings(OPT_IN_KEY).iter().any(|e| e == "obligations"),
            types: strings(TYPES_KEY),
        }
    }

    /// Whether the caller takes every one of `obligations`: it adopted the extension and
    /// listed each type (values this PDP does not advertise count for nothing).
    pub fn accepts(&self, obligations: &[pdp_engine::Obligation]) -> bool {
        self.adopted
            && obligations.iter().all(|o| {
                let kind = o.kind.as_str();
                supported_obligations().any(|t| t == kind) && self.types.iter().any(|t| t == kind)
            })
    }
}

/// One evaluation's four parts: each its own value, else the batch default.
#[derive(Debug, Clone, Copy)]
struct Tuple<'a> {
    own: &'a Object,
    defaults: Option<&'a Object>,
    item: Option<usize>,
}

impl<'a> Tuple<'a> {
    fn single(request: &'a Object) -> Tuple<'a> {
        Tuple {
            own: request,
            defaults: None,
            item: None,
        }
    }

    fn item(defaults: &'a Object, item: &'a Object, i: usize) -> Tuple<'a> {
        Tuple {
            own: item,
            defaults: Some(defaults),
            item: Some(i),
        }
    }

    fn own(&self, name: &str) -> Option<&'a Json> {
        self.own.get(name).filter(|v| !v.is_null())
    }

    fn default(&self, name: &str) -> Option<&'a Json> {
        self.defaults
            .and_then(|d| d.get(name))
            .filter(|v| !v.is_null())
    }

    /// How the part is named in errors: where it came from.
    fn path(&self, name: &str, own: bool) -> String {
        match self.item {
            Some(i) if own => format!("evaluations[{i}].{name}"),
            _ => name.to_owned(),
        }
    }

    /// The entity `name` (`subject`, `action`, `resource`): the evaluation's own object,
    /// which replaces the default as a whole but falls back on it for the required members
    /// it lacks, or else the default.
    fn entity(&self, name: &str) -> Result<Entity<'a>, FieldError> {
        let (value, own) = match (self.own(name), self.default(name)) {
            (Some(v), _) => (v, true),
            (None, Some(v)) => (v, false),
            (None, None) => return Err(field_error(self.path(name, true), "is required")),
        };
        let path = self.path(name, own);
        let Json::Object(main) = value else {
            return Err(field_error(path, "must be an object"));
        };
        let fallback = if own && self.item.is_some() {
            self.default(name).and_then(Json::as_object)
        } else {
            None
        };
        Ok(Entity {
            path,
            main,
            fallback,
        })
    }

    /// The context: the evaluation's own, which replaces the default as a whole, or else
    /// the default.
    fn context(&self) -> Result<Option<ContextPart<'a>>, FieldError> {
        let (value, own) = match (self.own("context"), self.default("context")) {
            (Some(v), _) => (v, true),
            (None, Some(v)) => (v, false),
            (None, None) => return Ok(None),
        };
        let path = self.path("context", own);
        match value {
            Json::Object(members) => Ok(Some(ContextPart { members, path })),
            _ => Err(field_error(path, "must be an object")),
        }
    }
}

/// The context object and how it is named in errors.
#[derive(Debug)]
struct ContextPart<'a> {
    members: &'a Object,
    path: String,
}

/// A subject, action or resource object.
#[derive(Debug)]
struct Entity<'a> {
    path: String,
    main: &'a Object,
    fallback: Option<&'a Object>,
}

impl<'a> Entity<'a> {
    /// A required string member.
    fn required(&self, key: &str) -> Result<&'a str, FieldError> {
        let value = self.main.get(key).filter(|v| !v.is_null()).or_else(|| {
            self.fallback
                .and_then(|f| f.get(key))
                .filter(|v| !v.is_null())
        });
        match value {
            Some(Json::String(s)) => Ok(s),
            Some(_) => Err(field_error(
                format!("{}.{key}", self.path),
                "must be a string",
            )),
            None => Err(field_error(format!("{}.{key}", self.path), "is required")),
        }
    }

    /// `properties`, when present.
    fn properties(&self) -> Result<Option<&'a Object>, FieldError> {
        match self.main.get("properties") {
            None | Some(Json::Null) => Ok(None),
            Some(Json::Object(p)) => Ok(Some(p)),
            Some(_) => Err(field_error(
                format!("{}.properties", self.path),
                "must be an object",
            )),
        }
    }
}

/// An evaluation's subject: `subject.id`, and the roles of `subject.properties.roles`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertedSubject {
    /// The id.
    pub id: String,
    /// The roles.
    pub roles: Vec<String>,
}

/// An evaluation's resource: `<type>:<id>` (or an ARN as is).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertedResource {
    /// The resource id.
    pub id: String,
}

/// An evaluation in the engine's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The subject.
    pub subject: ConvertedSubject,
    /// `action.name`, qualified by the resource type.
    pub action: String,
    /// The resource.
    pub resource: ConvertedResource,
    /// The context members and the entities' types and properties as condition keys.
    pub context: BTreeMap<String, pdp_engine::Value>,
    /// What the caller declared about obligations.
    pub declared: Declared,
}

/// Condition keys the mapping adds.
pub const SUBJECT_TYPE_KEY: &str = "pdp:SubjectType";
/// Condition key of the resource type.
pub const RESOURCE_TYPE_KEY: &str = "pdp:ResourceType";
/// Prefix of the condition keys of `subject.properties`.
pub const SUBJECT_PROPERTY_PREFIX: &str = "pdp:SubjectProperty/";
/// Prefix of the condition keys of `resource.properties`.
pub const RESOURCE_PROPERTY_PREFIX: &str = "pdp:ResourceProperty/";
/// Prefix of the condition keys of `action.properties`.
pub const ACTION_PROPERTY_PREFIX: &str = "pdp:ActionProperty/";

/// Maps one evaluation onto a `pdp.v1` check.
fn convert(tuple: &Tuple<'_>) -> Result<Converted, FieldError> {
    let subject = tuple.entity("subject")?;
    let action = tuple.entity("action")?;
    let resource = tuple.entity("resource")?;
    let subject_type = subject.required("type")?;
    let subject_id = subject.required("id")?;
    let name = action.required("name")?;
    if name.is_empty() {
        return Err(field_error(
            format!("{}.name", action.path),
            "must not be empty",
        ));
    }
    let resource_type = resource.required("type")?;
    let resource_id = resource.required("id")?;

    // Caller context first; keys the entities give win over it (compared ignoring case,
    // as the engine compares condition keys).
    let mut context = BTreeMap::new();
    let context_part = tuple.context()?;
    if let Some(ContextPart { members, path }) = &context_part {
        for (key, value) in members.iter() {
            if key == OPT_IN_KEY || key == TYPES_KEY {
                continue;
            }
            flatten(key, &format!("{path}.{key}"), value, &mut context)?;
        }
    }
    let mut derived = BTreeMap::new();
    derived.insert(SUBJECT_TYPE_KEY.to_owned(), string(subject_type));
    derived.insert(RESOURCE_TYPE_KEY.to_owned(), string(resource_type));
    let mut roles = Vec::new();
    for (entity, prefix) in [
        (&subject, SUBJECT_PROPERTY_PREFIX),
        (&resource, RESOURCE_PROPERTY_PREFIX),
        (&action, ACTION_PROPERTY_PREFIX),
    ] {
        let Some(properties) = entity.properties()? else {
            continue;
        };
        for (key, value) in properties {
            flatten(
                &format!("{prefix}{key}"),
                &format!("{}.properties.{key}", entity.path),
                value,
                &mut derived,
            )?;
        }
        if prefix == SUBJECT_PROPERTY_PREFIX {
            if let Some(value) = properties.get("roles") {
                roles = role_list(value, &format!("{}.properties.roles", entity.path))?;
            }
        }
    }
    let overridden: HashSet<String> = derived.keys().map(|k| k.to_ascii_lowercase()).collect();
    context.retain(|k: &String, _| !overridden.contains(&k.to_ascii_lowercase()));
    context.extend(derived);

    Ok(Converted {
        subject: ConvertedSubject {
            id: subject_id.to_owned(),
            roles,
        },
        action: action_name(name, resource_type),
        resource: ConvertedResource {
            id: resource_name(resource_type, resource_id),
        },
        context,
        declared: Declared::from_context(context_part.map(|c| c.members)),
    })
}

/// An evaluation's request in the engine's terms, within the limits. A resource of the
/// inventory carries the inventory's tags (`aws:ResourceTag/<key>`).
fn engine_request(ask: &Ask<'_>, converted: &Converted) -> Result<pdp_engine::Request, String> {
    let tags = ask
        .snapshot
        .inventory
        .resource(&converted.resource.id)
        .map(|e| e.resource.tags.clone())
        .unwrap_or_default();
    let request = pdp_engine::Request {
        subject: pdp_engine::Subject {
            id: converted.subject.id.as_str().into(),
            roles: converted
                .subject
                .roles
                .iter()
                .map(|r| r.as_str().into())
                .collect(),
            ..Default::default()
        },
        action: converted.action.as_str().into(),
        resource: pdp_engine::Resource {
            id: converted.resource.id.as_str().into(),
            tags,
        },
        context: converted
            .context
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        now: None,
    };
    crate::decider::bounds::check(&request, &ask.decider.state().limits, "")
        .map_err(|e| e.to_string())?;
    Ok(request)
}

/// The action: `name` as is when it has a `:`, else `<resource type>:<name>`, or
/// `authzen:<name>` without a resource type.
pub fn action_name(name: &str, resource_type: &str) -> String {
    if name.contains(':') {
        name.to_owned()
    } else if resource_type.is_empty() {
        format!("authzen:{name}")
    } else {
        format!("{resource_type}:{name}")
    }
}

/// The resource id: `<type>:<id>`, or the id as is when it is an ARN or there is no type.
pub fn resource_name(resource_type: &str, id: &str) -> String {
    if resource_type.is_empty() || id.starts_with("arn:") {
        id.to_owned()
    } else {
        format!("{resource_type}:{id}")
    }
}

/// Roles: an array of strings (or one string).
fn role_list(value: &Json, path: &str) -> Result<Vec<String>, FieldError> {
    match value {
        Json::Null => Ok(Vec::new()),
        Json::String(s) => Ok(vec![s.clone()]),
        Json::Array(items) => {
            let mut roles = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Json::String(s) => roles.push(s.clone()),
                    Json::Null => {}
                    _ => {
                        return Err(field_error(format!("{path}[{i}]"), "roles must be strings"));
                    }
                }
            }
            Ok(roles)
        }
        _ => Err(field_error(path, "must be an array of strings")),
    }
}

/// Adds `value` under `key`: scalars as they are, arrays of scalars as lists, objects
/// flattened with `/` (`owner/email`), `null` skipped. `path` names the value in errors.
pub fn flatten(
    key: &str,
    path: &str,
    value: &Json,
    out: &mut BTreeMap<String, pdp_engine::Value>,
) -> Result<(), FieldError> {
    match value {
        Json::Null => {}
        Json::Object(members) => {
            for (k, v) in members {
                flatten(&format!("{key}/{k}"), &format!("{path}.{k}"), v, out)?;
            }
        }
        Json::Array(items) => {
            let mut values = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Json::Null => {}
                    Json::Object(_) => {
                        return Err(field_error(
                            format!("{path}[{i}]"),
                            "objects inside arrays are not supported: only arrays of strings, numbers and booleans",
                        ));
                    }
                    Json::Array(_) => {
                        return Err(field_error(
                            format!("{path}[{i}]"),
                            "arrays inside arrays are not supported",
                        ));
                    }
                    scalar => values.push(scalar_value(scalar)),
                }
            }
            out.insert(key.to_owned(), pdp_engine::Value::Many(values));
        }
        scalar => {
            out.insert(key.to_owned(), pdp_engine::Value::One(scalar_value(scalar)));
        }
    }
    Ok(())
}

/// A JSON string, number or boolean as an engine scalar.
fn scalar_value(value: &Json) -> pdp_engine::Scalar {
    match value {
        Json::Bool(b) => pdp_engine::Scalar::Bool(*b),
        // Not finite only past f64's range: refused by the bounds check.
        Json::Number(n) => pdp_engine::Scalar::Number(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => pdp_engine::Scalar::String(s.as_str().into()),
        // INVARIANT: callers pass scalars only.
        Json::Null | Json::Array(_) | Json::Object(_) => {
            debug_assert!(false, "not a scalar: {value}");
            pdp_engine::Scalar::Bool(false)
        }
    }
}

fn string(s: &str) -> pdp_engine::Value {
    pdp_engine::Value::One(pdp_engine::Scalar::String(s.into()))
}

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------
// Metadata

/// The PDP metadata document.
#[derive(Debug, Serialize)]
struct Metadata {
    policy_decision_point: String,
    access_evaluation_endpoint: String,
    access_evaluations_endpoint: String,
    search_subject_endpoint: String,
    search_resource_endpoint: String,
    search_action_endpoint: String,
    capabilities: [&'static str; 1],
    supported_obligations: Vec<&'static str>,
}

/// The PDP metadata, with URLs under the configured public base URL (`authzen_base_url`);
/// a `404` without one. Never built from the request (`Host`, `X-Forwarded-*`): a caller
/// must not be able to point a PEP at another PDP.
async fn metadata(Extract(state): Extract<Arc<State>>) -> Response {
    let Some(base) = &state.authzen_base_url else {
        return error(
            StatusCode::NOT_FOUND,
            "the PDP metadata is not published: it needs the PDP's public URL (`authzen_base_url`, `--authzen-base-url`)",
        );
    };
    json(
        StatusCode::OK,
        &Metadata {
            access_evaluation_endpoint: format!("{base}{EVALUATION_PATH}"),
            access_evaluations_endpoint: format!("{base}{EVALUATIONS_PATH}"),
            search_subject_endpoint: format!("{base}{SEARCH_SUBJECT_PATH}"),
            search_resource_endpoint: format!("{base}{SEARCH_RESOURCE_PATH}"),
            search_action_endpoint: format!("{base}{SEARCH_ACTION_PATH}"),
            policy_decision_point: base.clone(),
            capabilities: [OBLIGATIONS_CAPABILITY],
            supported_obligations: supported_obligations().collect(),
        },
    )
}

/// Longest base URL accepted, in bytes.
pub const MAX_BASE_URL_BYTES: usize = 2048;

/// Checks a public base URL for the metadata: an absolute `https://` (or `http://`) URL
/// with a host, optionally a path, and no user info, query or fragment; returned without
/// a trailing `/`.
pub fn base_url(text: &str) -> Result<String, String> {
    if text.len() > MAX_BASE_URL_BYTES {
        return Err(format!(
            "{} bytes, over the limit of {MAX_BASE_URL_BYTES}",
            text.len()
        ));
    }
    let uri: http::Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("https" | "http") => {}
        _ => return Err(format!("`{text}` is not an https:// (or http://) URL")),
    }
    match uri.authority() {
        Some(a) if !a.host().is_empty() && !a.as_str().contains('@') => {}
        _ => return Err(format!("`{text}` has no host, or has user info")),
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(format!("`{text}` has a query or a fragment"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]

    use super::*;

    fn object(v: Json) -> Object {
        match v {
            Json::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn sv(s: &str) -> pdp_engine::Value {
        string(s)
    }

    fn list(values: Vec<pdp_engine::Scalar>) -> pdp_engine::Value {
        pdp_engine::Value::Many(values)
    }

    fn single(v: Json) -> Result<Converted, FieldError> {
        let request = object(v);
        convert(&Tuple::single(&request))
    }

    #[test]
    fn nested_properties_are_flattened_with_slashes() {
        let c = single(serde_json::json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "1", "properties": {
                "owner": {"email": "a@x", "name": null},
                "labels": ["a", null, 2, true],
            }},
            "context": {"time": "now", "net": {"ip": "10.0.0.1"}},
        }))
        .unwrap();
        let f = &c.context;
        assert_eq!(f.get("pdp:ResourceProperty/owner/email"), Some(&sv("a@x")));
        assert!(!f.contains_key("pdp:ResourceProperty/owner/name"));
        assert_eq!(
            f.get("pdp:ResourceProperty/labels"),
            Some(&list(vec![
                pdp_engine::Scalar::String("a".into()),
                scalar_value(&serde_json::json!(2)),
                scalar_value(&Json::Bool(true)),
            ]))
        );
        assert_eq!(f.get("time"), Some(&sv("now")));
        assert_eq!(f.get("net/ip"), Some(&sv("10.0.0.1")));
        assert_eq!(f.get("pdp:SubjectType"), Some(&sv("user")));
        assert_eq!(f.get("pdp:ResourceType"), Some(&sv("doc")));
    }

    #[test]
    fn arrays_of_objects_are_refused_naming_the_field() {
        let err = single(serde_json::json!({
            "subject": {"type": "user", "id": "alice", "properties": {"groups": [{"id": "g"}]}},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "1"},
        }))
        .unwrap_err();
        assert_eq!(err.field, "subject.properties.groups[0]");
        let err = single(serde_json::json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "1"},
            "context": {"a": {"b": [[1]]}},
        }))
        .unwrap_err();
        assert_eq!(err.field, "context.a.b[0]");
    }

    #[test]
    fn actions_are_qualified_by_the_resource_type() {
        assert_eq!(
            action_name("can_update_todo", "todo"),
            "todo:can_update_todo"
        );
        assert_eq!(action_name("GET", "route"), "route:GET");
        assert_eq!(action_name("s3:GetObject", "s3"), "s3:GetObject");
        assert_eq!(action_name("read", ""), "authzen:read");
    }

    #[test]
    fn resources_are_named_by_type_unless_arns() {
        assert_eq!(
            resource_name("todo", "7240d0db-8ff0-41ec-98b2-34a096273b92"),
            "todo:7240d0db-8ff0-41ec-98b2-34a096273b92"
        );
        assert_eq!(
            resource_name("route", "/todos/{todoId}"),
            "route:/todos/{todoId}"
        );
        assert_eq!(
            resource_name("s3", "arn:aws:s3:::my-bucket/data/report.csv"),
            "arn:aws:s3:::my-bucket/data/report.csv"
        );
        assert_eq!(resource_name("", "x"), "x");
    }

    #[test]
    fn roles_come_from_subject_properties() {
        let c = single(serde_json::json!({
            "subject": {"type": "user", "id": "alice", "properties": {"roles": ["admin", "editor"]}},
            "action": {"name": "s3:GetObject"},
            "resource": {"type": "s3", "id": "arn:aws:s3:::b/k"},
            "identity": "ignored",
        }))
        .unwrap();
        assert_eq!(c.subject.id, "alice");
        assert_eq!(
            c.subject.roles,
            vec!["admin".to_owned(), "editor".to_owned()]
        );
        assert_eq!(c.action, "s3:GetObject");
        assert_eq!(c.resource.id, "arn:aws:s3:::b/k");
        let err = single(serde_json::json!({
            "subject": {"type": "user", "id": "alice", "properties": {"roles": [1]}},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "1"},
        }))
        .unwrap_err();
        assert_eq!(err.field, "subject.properties.roles[0]");
    }

    #[test]
    fn missing_and_mistyped_members_name_the_field() {
        let cases = [
            (
                serde_json::json!({"action": {"name": "r"}, "resource": {"type": "d", "id": "1"}}),
                "subject",
            ),
            (
                serde_json::json!({"subject": {"id": "a"}, "action": {"name": "r"}, "resource": {"type": "d", "id": "1"}}),
                "subject.type",
            ),
            (
                serde_json::json!({"subject": {"type": "u", "id": "a"}, "action": {}, "resource": {"type": "d", "id": "1"}}),
                "action.name",
            ),
            (
                serde_json::json!({"subject": {"type": "u", "id": "a"}, "action": {"name": 123}, "resource": {"type": "d", "id": "1"}}),
                "action.name",
            ),
            (
                serde_json::json!({"subject": "alice", "action": {"name": "r"}, "resource": {"type": "d", "id": "1"}}),
                "subject",
            ),
            (
                serde_json::json!({"subject": {"type": "u", "id": "a"}, "action": {"name": "r"}, "resource": {"type": "d"}}),
                "resource.id",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(single(request).unwrap_err().field, field);
        }
    }

    #[test]
    fn entity_keys_win_over_caller_context_keys() {
        let c = single(serde_json::json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "1"},
            "context": {"PDP:SUBJECTTYPE": "admin"},
        }))
        .unwrap();
        assert!(!c.context.contains_key("PDP:SUBJECTTYPE"));
        assert_eq!(c.context.get("pdp:SubjectType"), Some(&sv("user")));
    }

    #[test]
    fn batch_items_replace_defaults_as_wholes() {
        let defaults = object(serde_json::json!({
            "subject": {"type": "user", "id": "alice", "properties": {"roles": ["admin"]}},
            "action": {"name": "write"},
            "resource": {"type": "record"},
            "context": {"a": 1, "b": 2},
        }));
        let item = object(serde_json::json!({
            "subject": {"id": "bob"},
            "resource": {"id": "record-1"},
            "context": {"b": 3},
        }));
        let c = convert(&Tuple::item(&defaults, &item, 0)).unwrap();
        // Required members fall back on the default; properties do not.
        assert_eq!(c.subject.id, "bob");
        assert!(c.subject.roles.is_empty());
        assert_eq!(c.context.get("pdp:SubjectType"), Some(&sv("user")));
        assert_eq!(c.resource.id, "record:record-1");
        assert_eq!(c.action, "record:write");
        // The item's context replaces the default's.
        assert!(!c.context.contains_key("a"));
        assert_eq!(
            c.context.get("b"),
            Some(&pdp_engine::Value::One(scalar_value(&serde_json::json!(3))))
        );
        let resource_only = object(serde_json::json!({"resource": {"id": "record-2"}}));
        let c = convert(&Tuple::item(&defaults, &resource_only, 1)).unwrap();
        assert_eq!(c.subject.roles, vec!["admin".to_owned()]);
        assert!(c.context.contains_key("a"));
        let missing = object(serde_json::json!({"subject": {"type": "user", "id": "x"}}));
        let no_defaults = object(serde_json::json!({}));
        let err = convert(&Tuple::item(&no_defaults, &missing, 2)).unwrap_err();
        assert_eq!(err.field, "evaluations[2].action");
    }

    #[test]
    fn obligations_reach_only_callers_that_opted_in_to_their_types() {
        let step_up = pdp_engine::Obligation {
            id: "s".into(),
            kind: pdp_engine::ObligationType::StepUp,
            properties: serde_json::Map::new(),
        };
        let mut response = Outcome::refused(crate::decider::Reason::Allowed, "", "r");
        response.allowed = true;
        response.obligations = vec![step_up];
        let declared = |c: Json| Declared::from_context(Some(&object(c)));
        assert_eq!(
            answer(&response, &Declared::default()),
            Decision::plain(false)
        );
        let only_listed = declared(serde_json::json!({"supported_obligations": ["step-up"]}));
        assert_eq!(answer(&response, &only_listed), Decision::plain(false));
        let other_type = declared(serde_json::json!({
            "supported_mandatory_extensions": ["obligations"],
            "supported_obligations": ["notification"],
        }));
        assert_eq!(answer(&response, &other_type), Decision::plain(false));
        let adopted = declared(serde_json::json!({
            "supported_mandatory_extensions": ["obligations"],
            "supported_obligations": ["step-up"],
        }));
        let a = answer(&response, &adopted);
        assert!(a.decision);
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(
            text,
            r#"{"decision":true,"context":{"obligations":[{"id":"s","type":"step-up","properties":{}}]}}"#
        );
        let plain = Outcome::refused(crate::decider::Reason::ImplicitDeny, "", "r");
        assert_eq!(
            serde_json::to_string(&answer(&plain, &adopted)).unwrap(),
            r#"{"decision":false}"#
        );
    }

    #[test]
    fn declarations_are_not_condition_keys() {
        let c = single(serde_json::json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "1"},
            "context": {"supported_mandatory_extensions": ["obligations"], "supported_obligations": ["step-up"]},
        }))
        .unwrap();
        assert!(!c.context.contains_key("supported_obligations"));
        assert!(c.declared.adopted);
    }

    #[test]
    fn semantics_parse_and_default_to_execute_all() {
        assert_eq!(semantic(None).unwrap(), Semantic::ExecuteAll);
        let o = serde_json::json!({"evaluations_semantic": "deny_on_first_deny"});
        assert_eq!(semantic(Some(&o)).unwrap(), Semantic::DenyOnFirstDeny);
        let bad = serde_json::json!({"evaluations_semantic": "first"});
        assert_eq!(
            semantic(Some(&bad)).unwrap_err().field,
            "options.evaluations_semantic"
        );
    }

    #[test]
    fn base_urls_are_absolute_without_query_or_user_info() {
        assert_eq!(
            base_url("https://pdp.example.com/").as_deref(),
            Ok("https://pdp.example.com")
        );
        assert_eq!(
            base_url("https://gw.example.com/pdp").as_deref(),
            Ok("https://gw.example.com/pdp")
        );
        for bad in [
            "/access",
            "pdp.example.com",
            "ftp://pdp.example.com",
            "https://user@pdp.example.com",
            "https://pdp.example.com/?a=b",
            "https://pdp.example.com/#x",
        ] {
            assert!(base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_keys_are_matched_by_digest() {
        let keys = ApiKeys::parse(" k1, ,k2 ");
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts("k1"));
        assert!(keys.accepts("k2"));
        assert!(!keys.accepts("k3"));
        assert!(!keys.accepts(""));
        assert!(ApiKeys::parse("").is_empty());
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("undefined"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer k1"));
        assert_eq!(bearer(&h), Some("k1"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic k1"));
        assert_eq!(bearer(&h), None);
    }
}
