//! Envoy's external authorization API (`envoy.service.auth.v3.Authorization/Check`) on the
//! gRPC port, so that any Envoy or Istio sidecar can ask the PDP with configuration alone.
//! The HTTP request is mapped to a decision request by the policy directory's `routes.yaml`
//! ([`routes`]); the subject comes from the `authorization: Bearer` JWT (verified), or, from a
//! trusted sidecar, from the `jwt_authn` filter's verified payload or the downstream peer's
//! principal (SPIFFE ID). An allow lets the request through with the decision id and the
//! obligations in upstream headers and dynamic metadata; a deny is a 403 with a JSON body, or
//! a 401 challenge when the PDP needs a step-up or a valid token.
//!
//! The path is normalized first ([`pdp_routes::normalize_path`]); one that cannot be
//! normalized unambiguously (dot segments, encoded slashes, path parameters, …) is refused
//! with a 400 before any route, unmapped rule or context extension is consulted, and the
//! refusal is recorded as a decision like any other.

pub mod routes;

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb as envoy;
use envoy_types::ext_authz::v3::{
    CheckResponseExt as _, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use envoy_types::pb::google::protobuf as envoy_pb;
use pdp_proto::v1 as pb;
use prost_types::value::Kind;
use tonic::{Request, Response, Status};

use crate::decider::{Decider, Outcome, Reason, ServiceError};
use crate::grpc::convert::Parts;
use crate::state::State;
use routes::Unmapped;

/// The metadata namespace Envoy's `jwt_authn` filter writes verified payloads to.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";
/// The namespace of the dynamic metadata the PDP returns.
pub const METADATA_NAMESPACE: &str = "pdp";

/// The `envoy.service.auth.v3.Authorization` implementation.
#[derive(Debug, Clone)]
pub struct ExtAuthz {
    decider: Decider,
}

impl ExtAuthz {
    /// The service over `state`.
    pub fn new(state: Arc<State>) -> Self {
        ExtAuthz {
            decider: Decider::new(state),
        }
    }
}

fn string_value(s: impl Into<String>) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

/// An envoy `Value` as JSON (integral numbers as integers, as JWT claims are).
fn envoy_json(v: &envoy_pb::Value) -> serde_json::Value {
    use envoy_pb::value::Kind as K;
    use serde_json::Value as J;
    match &v.kind {
        None | Some(K::NullValue(_)) => J::Null,
        Some(K::BoolValue(b)) => J::Bool(*b),
        Some(K::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => J::from(*n as i64),
        Some(K::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Some(K::StringValue(s)) => J::String(s.clone()),
        Some(K::ListValue(l)) => J::Array(l.values.iter().map(envoy_json).collect()),
        Some(K::StructValue(s)) => J::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), envoy_json(v)))
                .collect(),
        ),
    }
}

/// A verified JWT payload (from `jwt_authn`) as a subject, and its identity facts as
/// context entries, mapped exactly as the PDP maps the tokens it verifies itself.
fn subject_from_payload(
    payload: &envoy_pb::Struct,
    claims: &crate::identity::ClaimNames,
    context: &mut BTreeMap<String, prost_types::Value>,
) -> Option<pb::Subject> {
    let json: serde_json::Map<String, serde_json::Value> = payload
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), envoy_json(v)))
        .collect();
    let v =
        crate::identity::verified_from_claims(&json, &claims.roles, &claims.tags, false).ok()?;
    for (key, value) in v.facts(chrono::Utc::now().timestamp()) {
        let kind = match value {
            pdp_engine::Value::One(pdp_engine::Scalar::Bool(b)) => Kind::BoolValue(b),
            pdp_engine::Value::One(pdp_engine::Scalar::Number(n)) => Kind::NumberValue(n),
            pdp_engine::Value::One(pdp_engine::Scalar::String(s)) => {
                Kind::StringValue(s.to_string())
            }
            pdp_engine::Value::Many(_) => continue,
        };
        context.insert(key.to_owned(), prost_types::Value { kind: Some(kind) });
    }
    Some(pb::Subject {
        id: v.id,
        roles: v.roles,
        tags: v.tags.into_iter().collect(),
        session_id: v.session.unwrap_or_default(),
        ..Default::default()
    })
}

/// The step-up obligation's required `acr`, when the decision carries one.
fn step_up_acr(outcome: &Outcome) -> Option<String> {
    outcome
        .obligation(pdp_engine::ObligationType::StepUp)
        .map(|o| {
            o.properties
                .get("acr")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
}

/// The obligations as JSON (id, type, properties).
fn obligations_json(outcome: &Outcome) -> serde_json::Value {
    serde_json::Value::Array(
        outcome
            .obligations
            .iter()
            .map(|o| {
                serde_json::json!({
                    "id": o.id,
                    "type": o.kind.as_str(),
                    "properties": o.properties,
                })
            })
            .collect(),
    )
}

// JSON as an envoy `Value`.
pdp_proto::json_to_protobuf_value!(fn envoy_value, envoy_types::pb::google::protobuf);

/// Longest request path shown in the decision log for a refused request.
const MAX_SHOWN_PATH: usize = 1024;

/// A request path as the decision log shows it: without the query (it may carry
/// credentials), cut to [`MAX_SHOWN_PATH`] bytes.
fn shown_path(raw: &str) -> &str {
    let path = raw.split_once('?').map_or(raw, |(p, _)| p);
    crate::truncated(path, MAX_SHOWN_PATH)
}

/// The dynamic metadata of an answer, for Envoy's access logs.
fn metadata(
    decision_id: &str,
    allowed: bool,
    reason: &str,
    obligations: &serde_json::Value,
) -> envoy_pb::Struct {
    envoy_pb::Struct {
        fields: [
            ("decision_id".to_owned(), envoy_value(&decision_id.into())),
            (
                "decision".to_owned(),
                envoy_value(&if allowed { "allow" } else { "deny" }.into()),
            ),
            ("reason".to_owned(), envoy_value(&reason.into())),
            ("obligations".to_owned(), envoy_value(obligations)),
        ]
        .into_iter()
        .collect(),
    }
}

/// The answer to a request refused before any route was consulted: `status` with the
/// refusal's decision id, `reason` and message.
fn refusal(status: envoy::HttpStatusCode, refused: &Outcome, grpc: Status) -> envoy::CheckResponse {
    let reason = refused.reason.label();
    let body = serde_json::json!({
        "decision": "deny",
        "decision_id": refused.decision_id,
        "reason": reason,
        "message": refused.message,
    });
    let mut response = denied(status, &body, None, grpc);
    response.set_dynamic_metadata(Some(metadata(
        &refused.decision_id,
        false,
        reason,
        &serde_json::Value::Array(Vec::new()),
    )));
    response
}

fn denied(
    status: envoy::HttpStatusCode,
    body: &serde_json::Value,
    challenge: Option<String>,
    grpc: Status,
) -> envoy::CheckResponse {
    let mut http = DeniedHttpResponseBuilder::new();
    http.set_http_status(status)
        .add_header("content-type", "application/json", None, false)
        .set_body(body.to_string());
    if let Some(c) = challenge {
        http.add_header("www-authenticate", c, None, false);
    }
    let mut response = envoy::CheckResponse::with_status(grpc);
    response.set_http_response(http);
    response
}

/// The answer to a call that got no decision, the one mapping of [`ServiceError`] onto
/// ext_authz: the HTTP status Envoy sends the client, and a JSON body saying why.
fn failed(e: ServiceError) -> envoy::CheckResponse {
    let (status, reason, grpc) = match &e {
        ServiceError::InvalidArgument(m) => (
            envoy::HttpStatusCode::BadRequest,
            "bad_request",
            Status::invalid_argument(m.clone()),
        ),
        ServiceError::PermissionDenied(m) => (
            envoy::HttpStatusCode::Forbidden,
            "permission_denied",
            Status::permission_denied(m.clone()),
        ),
        ServiceError::Unauthenticated(m) => (
            envoy::HttpStatusCode::Unauthorized,
            "unauthenticated",
            Status::unauthenticated(m.clone()),
        ),
        ServiceError::Internal(m) => {
            tracing::error!("an ext_authz check failed: {m}");
            (
                envoy::HttpStatusCode::InternalServerError,
                "internal",
                Status::internal("the PDP failed to answer"),
            )
        }
    };
    let message = match &e {
        ServiceError::Internal(_) => "the PDP failed to answer".to_owned(),
        other => other.to_string(),
    };
    denied(
        status,
        &serde_json::json!({ "decision": "deny", "reason": reason, "message": message }),
        None,
        grpc,
    )
}

/// The answer letting a request through: the decision id and obligations as upstream
/// headers and dynamic metadata, and the configured headers removed.
fn allowed(outcome: &Outcome, headers_to_remove: &[String]) -> envoy::CheckResponse {
    let obligations = obligations_json(outcome);
    let mut ok = OkHttpResponseBuilder::new();
    ok.add_header(
        "x-pdp-decision-id",
        outcome.decision_id.clone(),
        None,
        false,
    );
    if !outcome.obligations.is_empty() {
        ok.add_header("x-pdp-obligations", obligations.to_string(), None, false);
    }
    for h in headers_to_remove {
        ok.remove_header(h.clone());
    }
    let mut response = envoy::CheckResponse::with_status(Status::ok(""));
    response.set_http_response(ok);
    response.set_dynamic_metadata(Some(metadata(
        &outcome.decision_id,
        true,
        outcome.reason.label(),
        &obligations,
    )));
    response
}

#[tonic::async_trait]
impl envoy::Authorization for ExtAuthz {
    async fn check(
        &self,
        request: Request<envoy::CheckRequest>,
    ) -> Result<Response<envoy::CheckResponse>, Status> {
        let state = self.decider.state().clone();
        let (caller, mut call) = crate::grpc::admit(
            &state,
            &request,
            "ext_authz",
            "envoy.service.auth.v3.Authorization/Check",
        )?;
        let trusted_sidecar = caller.trusted;
        let check = request.into_inner();
        let attributes = check.attributes.unwrap_or_default();
        let http = attributes
            .request
            .as_ref()
            .and_then(|r| r.http.clone())
            .unwrap_or_default();
        // The request's id for the log: Envoy's `x-request-id` (what its access log and the
        // upstream see), else the id of Envoy's stream (`http.id`, meaningful to Envoy only).
        match http.headers.get("x-request-id").filter(|id| !id.is_empty()) {
            Some(id) => call.set_request_id(id),
            None if !http.id.is_empty() => call.set_request_id(&http.id),
            None => {}
        }
        // One revision throughout: the routes and the set that decides.
        let snapshot = state.snapshot();
        let routes = &snapshot.routes;
        let host = if http.host.is_empty() {
            http.headers.get(":authority").cloned().unwrap_or_default()
        } else {
            http.host.clone()
        };

        // The path in normal form, or refused before anything reads it: the service behind
        // might resolve it to another path than the one a route would authorize.
        let path = match pdp_routes::normalize_path(&http.path, routes.path_options) {
            Ok(path) => path,
            Err(e) => {
                let message = e.to_string();
                let refused = self.decider.refuse(
                    &snapshot,
                    &call,
                    Reason::InvalidPath,
                    &message,
                    shown_path(&http.path),
                );
                return Ok(Response::new(refusal(
                    envoy::HttpStatusCode::BadRequest,
                    &refused,
                    Status::invalid_argument(message),
                )));
            }
        };

        // The route: context extensions may name the action and resource themselves.
        let ext = &attributes.context_extensions;
        let matched = match (ext.get("pdp.action"), ext.get("pdp.resource")) {
            (Some(action), Some(resource)) => Some(routes::Matched {
                action: action.clone(),
                resource: resource.clone(),
                route: String::new(),
            }),
            _ => routes.find(&host, &http.method, &path),
        };
        let Some(matched) = matched else {
            return Ok(Response::new(match routes.unmapped(&host) {
                Unmapped::Allow => {
                    let passed = self.decider.pass(&snapshot, &call, path.as_str());
                    allowed(&passed, &routes.headers_to_remove)
                }
                Unmapped::Deny => {
                    let refused = self.decider.refuse(
                        &snapshot,
                        &call,
                        Reason::UnmappedRoute,
                        "no route matches this request",
                        path.as_str(),
                    );
                    refusal(
                        envoy::HttpStatusCode::Forbidden,
                        &refused,
                        Status::permission_denied("no route matches this request"),
                    )
                }
            }));
        };

        // The context: the request's facts, configured headers, route hints.
        let mut context: BTreeMap<String, prost_types::Value> = BTreeMap::new();
        if let Some(ip) = attributes
            .source
            .as_ref()
            .and_then(|p| p.address.as_ref())
            .and_then(|a| a.address.as_ref())
            .and_then(|a| match a {
                envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s) => {
                    Some(s.address.clone())
                }
                _ => None,
            })
        {
            context.insert("aws:SourceIp".into(), string_value(ip));
        }
        let secure = http.scheme.eq_ignore_ascii_case("https")
            || attributes
                .source
                .as_ref()
                .is_some_and(|p| !p.principal.is_empty() || !p.certificate.is_empty());
        context.insert(
            "aws:SecureTransport".into(),
            prost_types::Value {
                kind: Some(Kind::BoolValue(secure)),
            },
        );
        context.insert("http:Method".into(), string_value(http.method.clone()));
        context.insert("http:Path".into(), string_value(path.as_str()));
        context.insert("http:Host".into(), string_value(host.clone()));
        if !matched.route.is_empty() {
            context.insert("http:Route".into(), string_value(matched.route.clone()));
        }
        for name in &routes.context_headers {
            if let Some(v) = http.headers.get(name) {
                context.insert(format!("http:Header/{name}"), string_value(v.clone()));
            }
        }
        for (k, v) in ext {
            if k != "pdp.action" && k != "pdp.resource" {
                context.insert(
                    format!("envoy:ContextExtension/{k}"),
                    string_value(v.clone()),
                );
            }
        }

        // The subject.
        let bearer = http
            .headers
            .get("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let subject = match bearer {
            Some(token) => Some(pb::Subject {
                token: token.to_owned(),
                ..Default::default()
            }),
            None if trusted_sidecar => {
                let from_jwt = attributes
                    .metadata_context
                    .as_ref()
                    .and_then(|m| m.filter_metadata.get(JWT_AUTHN_NAMESPACE))
                    .and_then(|ns| {
                        ns.fields.values().find_map(|v| match &v.kind {
                            Some(envoy_pb::value::Kind::StructValue(payload))
                                if payload.fields.contains_key("sub") =>
                            {
                                Some(payload.clone())
                            }
                            _ => None,
                        })
                    })
                    .and_then(|payload| {
                        subject_from_payload(&payload, &state.claims, &mut context)
                    });
                from_jwt.or_else(|| {
                    attributes
                        .source
                        .as_ref()
                        .filter(|p| !p.principal.is_empty())
                        .map(|p| pb::Subject {
                            id: p.principal.clone(),
                            ..Default::default()
                        })
                })
            }
            None => None,
        };
        let anonymous = subject.is_none();
        let context = prost_types::Struct { fields: context };
        let resource = pb::Resource {
            id: matched.resource.clone(),
            ..Default::default()
        };
        let parts = Parts {
            subject: subject.as_ref(),
            action: &matched.action,
            resource: Some(&resource),
            context: Some(&context),
        };
        let input =
            match crate::grpc::convert::check_input(&parts, &state.limits, "", trusted_sidecar) {
                Ok(input) => input,
                Err(e) => {
                    if let Some(t) = &call.traced {
                        t.error(e.to_string());
                    }
                    return Ok(Response::new(failed(ServiceError::InvalidArgument(
                        e.to_string(),
                    ))));
                }
            };
        let decision = self.decider.decide(&snapshot, input, &call, true);
        if decision.allowed {
            return Ok(Response::new(allowed(&decision, &routes.headers_to_remove)));
        }
        let reason = decision.reason.label();
        let obligations = obligations_json(&decision);
        let body = serde_json::json!({
            "decision": "deny",
            "decision_id": decision.decision_id,
            "reason": reason,
        });
        let mut response = if decision.reason == Reason::InvalidIdentity {
            denied(
                envoy::HttpStatusCode::Unauthorized,
                &body,
                Some("Bearer error=\"invalid_token\"".into()),
                Status::unauthenticated("the token could not be verified"),
            )
        } else if anonymous {
            // RFC 6750 §3: a request without credentials is asked for them, with no error
            // code; a token might change the answer, so this is not a final 403.
            denied(
                envoy::HttpStatusCode::Unauthorized,
                &body,
                Some("Bearer".into()),
                Status::unauthenticated("a token is required"),
            )
        } else if let Some(acr) = step_up_acr(&decision) {
            // RFC 9470: ask the client to authenticate again at the required level.
            let body = serde_json::json!({
                "decision": "deny",
                "decision_id": decision.decision_id,
                "reason": reason,
                "acr_values": acr,
            });
            denied(
                envoy::HttpStatusCode::Unauthorized,
                &body,
                Some(format!(
                    "Bearer error=\"insufficient_user_authentication\", error_description=\"a stronger authentication is required\", acr_values=\"{acr}\""
                )),
                Status::unauthenticated("step-up authentication required"),
            )
        } else {
            denied(
                envoy::HttpStatusCode::Forbidden,
                &body,
                None,
                Status::permission_denied("denied"),
            )
        };
        response.set_dynamic_metadata(Some(metadata(
            &decision.decision_id,
            false,
            reason,
            &obligations,
        )));
        Ok(Response::new(response))
    }
}
