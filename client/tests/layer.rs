//! `AuthorizeLayer` against a fake PDP (a tonic server on 127.0.0.1:0 that decides by the
//! request's action) with a `tower-test` mock as the inner service: on deny the inner service
//! is never called; on allow it is, with the decision in the request's extensions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use http_body_util::BodyExt as _;
use pdp_client::layer::{
    bearer_token, AuthorizeLayer, CheckMapper, Rejection, ResponseBody, RouteMapper,
};
use pdp_client::{pb, Check, Decision, PdpClient, RetryPolicy};
use pdp_proto::v1::authorization_service_server::{
    AuthorizationService, AuthorizationServiceServer,
};
use tower::Service as _;

const ACR: &str = "urn:example:acr:phishing-resistant";

// ---------------------------------------------------------------------------------------
// The fake PDP
// ---------------------------------------------------------------------------------------

/// Decides by the action: `app:Read` allows, `app:Delete` denies, `app:Transfer` denies with
/// a step-up, `app:Export` allows with a step-up, `app:Share` allows with an obligation of a
/// type nobody knows (`x-watermark`), `app:Notify` allows with a `notification`, a token
/// `bad-token` is an invalid identity, `app:Invalid` is refused as malformed; anything else is
/// an implicit deny.
#[derive(Clone, Default)]
struct FakePdp {
    seen: Arc<Mutex<Vec<pb::CheckRequest>>>,
}

fn obligation(id: &str, kind: &str, props: &[(&str, &str)]) -> pb::Obligation {
    pb::Obligation {
        id: id.to_owned(),
        r#type: kind.to_owned(),
        properties: Some(prost_types::Struct {
            fields: props
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue((*v).to_owned())),
                        },
                    )
                })
                .collect(),
        }),
    }
}

#[tonic::async_trait]
impl AuthorizationService for FakePdp {
    async fn plan_resources(
        &self,
        _request: tonic::Request<pb::PlanResourcesRequest>,
    ) -> Result<tonic::Response<pb::PlanResourcesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not faked"))
    }

    async fn search_resources(
        &self,
        _request: tonic::Request<pb::SearchResourcesRequest>,
    ) -> Result<tonic::Response<pb::SearchResourcesResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not faked"))
    }

    async fn search_subjects(
        &self,
        _request: tonic::Request<pb::SearchSubjectsRequest>,
    ) -> Result<tonic::Response<pb::SearchSubjectsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not faked"))
    }

    async fn search_actions(
        &self,
        _request: tonic::Request<pb::SearchActionsRequest>,
    ) -> Result<tonic::Response<pb::SearchActionsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not faked"))
    }

    async fn check(
        &self,
        request: tonic::Request<pb::CheckRequest>,
    ) -> Result<tonic::Response<pb::CheckResponse>, tonic::Status> {
        let r = request.into_inner();
        self.seen.lock().unwrap().push(r.clone());
        let answer = |allow: bool, reason: pb::Reason, obligations: Vec<pb::Obligation>| {
            Ok(tonic::Response::new(pb::CheckResponse {
                decision: if allow {
                    pb::Decision::Allow
                } else {
                    pb::Decision::Deny
                } as i32,
                reason: reason as i32,
                obligations,
                decision_id: format!("d-{}", r.action),
                policy_revision: "rev-1".into(),
                ..Default::default()
            }))
        };
        let token = r.subject.as_ref().map(|s| s.token.as_str()).unwrap_or("");
        if token == "bad-token" {
            return answer(false, pb::Reason::InvalidIdentity, vec![]);
        }
        let step_up = || vec![obligation("mfa", "step-up", &[("acr", ACR)])];
        match r.action.as_str() {
            "app:Read" => answer(true, pb::Reason::Allowed, vec![]),
            "app:Delete" => answer(false, pb::Reason::ExplicitDeny, vec![]),
            "app:Transfer" => answer(false, pb::Reason::ImplicitDeny, step_up()),
            "app:Export" => answer(true, pb::Reason::Allowed, step_up()),
            "app:Share" => answer(
                true,
                pb::Reason::Allowed,
                vec![obligation("wm", "x-watermark", &[])],
            ),
            "app:Notify" => answer(
                true,
                pb::Reason::Allowed,
                vec![obligation("n1", "notification", &[("to", "security")])],
            ),
            "app:Invalid" => Err(tonic::Status::invalid_argument("action: refused")),
            _ => answer(false, pb::Reason::ImplicitDeny, vec![]),
        }
    }

    async fn check_batch(
        &self,
        _request: tonic::Request<pb::CheckBatchRequest>,
    ) -> Result<tonic::Response<pb::CheckBatchResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("no batches here"))
    }
}

/// The fake PDP and a client of it.
async fn pdp() -> (PdpClient, FakePdp) {
    let fake = FakePdp::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = AuthorizationServiceServer::new(fake.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let client = PdpClient::builder()
        .endpoint(format!("http://{addr}"))
        .no_cache()
        .watch(false)
        .build()
        .unwrap();
    (client, fake)
}

// ---------------------------------------------------------------------------------------
// The layer around a mock inner service
// ---------------------------------------------------------------------------------------

type Req = http::Request<String>;

/// The subject from the Bearer token, the action from the path: `/Read` is `app:Read`.
fn mapper(request: &Req) -> Result<pb::CheckRequest, Rejection> {
    let token = bearer_token(request).ok_or_else(Rejection::missing_token)?;
    let action = format!("app:{}", request.uri().path().trim_start_matches('/'));
    Ok(Check::for_token(token, &action, "arn:app:things:::thing/1").build())
}

fn request(path: &str, token: Option<&str>, grpc: bool) -> Req {
    let mut b = http::Request::builder()
        .method("POST")
        .uri(format!("http://app.example{path}"));
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    if grpc {
        b = b.header("content-type", "application/grpc+proto");
    }
    b.body(String::new()).unwrap()
}

/// What one request through the layer produced.
struct Outcome {
    response: http::Response<ResponseBody>,
    /// The request the inner service got, if it got one.
    reached: Option<Req>,
}

impl Outcome {
    async fn body(self) -> String {
        let bytes = self
            .response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
    }
}

/// Sends `request` through `layer` around a mock service answering 200 `from inner`.
async fn send<M: CheckMapper<String>>(layer: AuthorizeLayer<M>, request: Req) -> Outcome {
    let (mut service, mut handle) =
        tower_test::mock::spawn_layer::<Req, http::Response<String>, _>(layer);
    let inner = tokio::spawn(async move {
        let (request, respond) = handle.next_request().await?;
        respond.send_response(http::Response::new("from inner".to_owned()));
        Some(request)
    });
    assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));
    let response = service.call(request).await.unwrap();
    // With the layer gone, every mock is dropped: the handle sees the end of its requests.
    drop(service);
    let reached = tokio::time::timeout(Duration::from_secs(5), inner)
        .await
        .unwrap()
        .unwrap();
    Outcome { response, reached }
}

#[tokio::test]
async fn an_allowed_request_reaches_the_inner_service_with_the_decision() {
    let (client, fake) = pdp().await;
    let outcome = send(
        AuthorizeLayer::new(client, mapper),
        request("/Read", Some("alice-token"), false),
    )
    .await;
    assert_eq!(outcome.response.status(), http::StatusCode::OK);
    let reached = outcome
        .reached
        .as_ref()
        .expect("the inner service is called");
    let decision = reached
        .extensions()
        .get::<Decision>()
        .expect("the decision is in the extensions");
    assert!(decision.is_allowed());
    assert_eq!(decision.decision_id(), "d-app:Read");
    assert_eq!(outcome.body().await, "from inner");
    let seen = fake.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].subject.as_ref().map(|s| s.token.as_str()),
        Some("alice-token")
    );
}

#[tokio::test]
async fn a_denied_request_never_reaches_the_inner_service() {
    let (client, _) = pdp().await;
    let outcome = send(
        AuthorizeLayer::new(client, mapper),
        request("/Delete", Some("alice-token"), false),
    )
    .await;
    assert!(outcome.reached.is_none(), "the inner service was called");
    assert_eq!(outcome.response.status(), http::StatusCode::FORBIDDEN);
    assert_eq!(outcome.header("content-type"), Some("application/json"));
    assert_eq!(outcome.header("x-pdp-decision-id"), Some("d-app:Delete"));
    let body: serde_json::Value = serde_json::from_str(&outcome.body().await).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"decision": "deny", "decision_id": "d-app:Delete", "reason": "explicit_deny"})
    );
}

#[tokio::test]
async fn a_grpc_deny_is_a_trailers_only_permission_denied() {
    let (client, _) = pdp().await;
    let outcome = send(
        AuthorizeLayer::new(client, mapper),
        request("/Delete", Some("alice-token"), true),
    )
    .await;
    assert!(outcome.reached.is_none());
    assert_eq!(outcome.response.status(), http::StatusCode::OK);
    assert_eq!(outcome.header("grpc-status"), Some("7"));
    assert_eq!(outcome.header("grpc-message"), Some("explicit_deny"));
    assert_eq!(outcome.header("content-type"), Some("application/grpc"));
    assert_eq!(outcome.body().await, "");
}

#[tokio::test]
async fn step_up_answers_401_with_the_acr_challenge_over_http() {
    let (client, _) = pdp().await;
    // With a deny and with an allow alike.
    for path in ["/Transfer", "/Export"] {
        let outcome = send(
            AuthorizeLayer::new(client.clone(), mapper),
            request(path, Some("alice-token"), false),
        )
        .await;
        assert!(
            outcome.reached.is_none(),
            "{path}: the inner service was called"
        );
        assert_eq!(
            outcome.response.status(),
            http::StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_eq!(
            outcome.header("www-authenticate"),
            Some(
                format!("Bearer error=\"insufficient_user_authentication\", acr_values=\"{ACR}\"")
                    .as_str()
            ),
            "{path}"
        );
        let body: serde_json::Value = serde_json::from_str(&outcome.body().await).unwrap();
        assert_eq!(body["decision"], "deny");
        assert_eq!(body["acr_values"], ACR);
    }
}

#[tokio::test]
async fn step_up_answers_unauthenticated_with_the_challenge_over_grpc() {
    let (client, _) = pdp().await;
    let outcome = send(
        AuthorizeLayer::new(client, mapper),
        request("/Transfer", Some("alice-token"), true),
    )
    .await;
    assert!(outcome.reached.is_none());
    assert_eq!(outcome.response.status(), http::StatusCode::OK);
    assert_eq!(outcome.header("grpc-status"), Some("16"));
    assert_eq!(
        outcome.header("www-authenticate"),
        Some(
            format!("Bearer error=\"insufficient_user_authentication\", acr_values=\"{ACR}\"")
                .as_str()
        )
    );
}

#[tokio::test]
async fn an_unverifiable_token_answers_401_invalid_token() {
    let (client, _) = pdp().await;
    let outcome = send(
        AuthorizeLayer::new(client, mapper),
        request("/Read", Some("bad-token"), false),
    )
    .await;
    assert!(outcome.reached.is_none());
    assert_eq!(outcome.response.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(
        outcome.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
}

#[tokio::test]
async fn an_obligation_without_a_handler_denies() {
    let (client, _) = pdp().await;
    // A handler for another type does not help.
    let layer = AuthorizeLayer::new(client, mapper).on_obligation("notification", |_| {});
    let outcome = send(layer, request("/Share", Some("alice-token"), false)).await;
    assert!(outcome.reached.is_none(), "the inner service was called");
    assert_eq!(outcome.response.status(), http::StatusCode::FORBIDDEN);
    let body: serde_json::Value = serde_json::from_str(&outcome.body().await).unwrap();
    assert_eq!(body["reason"], "unfulfilled_obligation");
    assert_eq!(body["decision_id"], "d-app:Share");
}

#[tokio::test]
async fn a_registered_obligation_handler_runs_before_the_inner_service() {
    let (client, _) = pdp().await;
    let notified = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = notified.clone();
    let layer =
        AuthorizeLayer::new(client.clone(), mapper).on_obligation("notification", move |o| {
            log.lock()
                .unwrap()
                .push(o.property("to").unwrap_or_default().to_owned());
        });
    let (mut service, mut handle) =
        tower_test::mock::spawn_layer::<Req, http::Response<String>, _>(layer);
    assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));
    let response = tokio::spawn(service.call(request("/Notify", Some("alice-token"), false)));
    let (reached, respond) = handle
        .next_request()
        .await
        .expect("the inner service is called");
    // The handler ran before the inner service got the request.
    assert_eq!(*notified.lock().unwrap(), vec!["security".to_owned()]);
    assert_eq!(
        reached
            .extensions()
            .get::<Decision>()
            .map(|d| d.obligations().len()),
        Some(1)
    );
    respond.send_response(http::Response::new("from inner".to_owned()));
    let response = response.await.unwrap().unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);

    // The unknown type is allowed once someone handles it.
    let watermarks = Arc::new(AtomicUsize::new(0));
    let count = watermarks.clone();
    let layer = AuthorizeLayer::new(client, mapper).on_obligation("x-watermark", move |_| {
        count.fetch_add(1, Ordering::SeqCst);
    });
    let outcome = send(layer, request("/Share", Some("alice-token"), false)).await;
    assert_eq!(outcome.response.status(), http::StatusCode::OK);
    assert!(outcome.reached.is_some());
    assert_eq!(watermarks.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unmapped_request_gets_the_mappers_rejection_without_a_check() {
    let (client, fake) = pdp().await;
    let outcome = send(
        AuthorizeLayer::new(client.clone(), mapper),
        request("/Read", None, false),
    )
    .await;
    assert!(outcome.reached.is_none());
    assert_eq!(outcome.response.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(outcome.header("www-authenticate"), Some("Bearer"));
    let body: serde_json::Value = serde_json::from_str(&outcome.body().await).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"decision": "deny", "reason": "missing_token"})
    );

    // The route table's: no route, 403 (and UNAUTHENTICATED for gRPC without a token).
    let routes = RouteMapper::new()
        .route(
            http::Method::GET,
            "/data/{key*}",
            "s3:GetObject",
            "arn:aws:s3:::my-bucket/data/{key}",
        )
        .unwrap();
    let outcome = send(
        AuthorizeLayer::new(client.clone(), routes.clone()),
        request("/elsewhere", Some("alice-token"), false),
    )
    .await;
    assert!(outcome.reached.is_none());
    assert_eq!(outcome.response.status(), http::StatusCode::FORBIDDEN);
    let body: serde_json::Value = serde_json::from_str(&outcome.body().await).unwrap();
    assert_eq!(body["reason"], "unmapped_route");
    let outcome = send(
        AuthorizeLayer::new(client, routes),
        request("/data/x", None, true),
    )
    .await;
    assert!(outcome.reached.is_none());
    assert_eq!(outcome.header("grpc-status"), Some("16"));
    assert!(fake.seen.lock().unwrap().is_empty(), "the PDP was asked");
}

#[tokio::test]
async fn a_request_the_pdp_refuses_is_denied() {
    let (client, _) = pdp().await;
    for grpc in [false, true] {
        let outcome = send(
            AuthorizeLayer::new(client.clone(), mapper),
            request("/Invalid", Some("alice-token"), grpc),
        )
        .await;
        assert!(outcome.reached.is_none());
        if grpc {
            assert_eq!(outcome.header("grpc-status"), Some("7"));
        } else {
            assert_eq!(outcome.response.status(), http::StatusCode::FORBIDDEN);
            let body: serde_json::Value = serde_json::from_str(&outcome.body().await).unwrap();
            assert_eq!(body["reason"], "check_failed");
        }
    }
}

#[tokio::test]
async fn an_unreachable_pdp_denies() {
    // A port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let client = PdpClient::builder()
        .endpoint(format!("http://{addr}"))
        .no_cache()
        .watch(false)
        .connect_timeout(Duration::from_millis(200))
        .retries(RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        })
        .build()
        .unwrap();
    let outcome = send(
        AuthorizeLayer::new(client, mapper),
        request("/Read", Some("alice-token"), false),
    )
    .await;
    assert!(outcome.reached.is_none(), "the inner service was called");
    assert_eq!(outcome.response.status(), http::StatusCode::FORBIDDEN);
    let body: serde_json::Value = serde_json::from_str(&outcome.body().await).unwrap();
    assert_eq!(body["reason"], "pdp_unavailable");
}

#[tokio::test]
async fn readiness_is_the_inner_services() {
    let (client, _) = pdp().await;
    let (mut service, mut handle) = tower_test::mock::spawn_layer::<Req, http::Response<String>, _>(
        AuthorizeLayer::new(client, mapper),
    );
    handle.allow(0);
    assert!(service.poll_ready().is_pending());
    handle.allow(1);
    assert!(service.is_woken());
    assert!(matches!(service.poll_ready(), Poll::Ready(Ok(()))));
}

// ---------------------------------------------------------------------------------------
// In front of real axum and tonic services
// ---------------------------------------------------------------------------------------

async fn call_router(
    app: &mut axum::Router,
    method: &str,
    token: Option<&str>,
) -> http::Response<axum::body::Body> {
    let mut b = http::Request::builder()
        .method(method)
        .uri("/data/report.csv");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    let request = b.body(axum::body::Body::empty()).unwrap();
    poll_fn(|cx| tower::Service::<http::Request<axum::body::Body>>::poll_ready(app, cx))
        .await
        .unwrap();
    app.call(request).await.unwrap()
}

#[tokio::test]
async fn an_axum_router_gets_the_decision_as_an_extension() {
    let (client, _) = pdp().await;
    let routes = RouteMapper::new()
        .route(
            http::Method::GET,
            "/data/{key}",
            "app:Read",
            "arn:app:data:::{key}",
        )
        .unwrap()
        .route(
            http::Method::DELETE,
            "/data/{key}",
            "app:Delete",
            "arn:app:data:::{key}",
        )
        .unwrap();
    let mut app = axum::Router::new()
        .route(
            "/data/{key}",
            axum::routing::get(
                |axum::extract::Path(key): axum::extract::Path<String>,
                 axum::Extension(decision): axum::Extension<Decision>| async move {
                    format!("{key} by {}", decision.decision_id())
                },
            )
            .delete(|| async { "deleted" }),
        )
        .layer(AuthorizeLayer::new(client, routes));
    let allowed = call_router(&mut app, "GET", Some("alice-token")).await;
    assert_eq!(allowed.status(), http::StatusCode::OK);
    let body = allowed.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"report.csv by d-app:Read");
    let denied = call_router(&mut app, "DELETE", Some("alice-token")).await;
    assert_eq!(denied.status(), http::StatusCode::FORBIDDEN);
    let anonymous = call_router(&mut app, "GET", None).await;
    assert_eq!(anonymous.status(), http::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_tonic_server_behind_the_layer_answers_grpc_denials_as_statuses() {
    let (client, _) = pdp().await;
    // The protected service is another fake PDP; the action comes from `x-action` metadata.
    let mapper = |r: &http::Request<tonic::body::Body>| {
        let token = bearer_token(r).ok_or_else(Rejection::missing_token)?;
        let action = r
            .headers()
            .get("x-action")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Ok(Check::for_token(token, action, "arn:app:things:::thing/1").build())
    };
    let app = FakePdp::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .layer(AuthorizeLayer::new(client, mapper))
        .add_service(AuthorizationServiceServer::new(app.clone()));
    tokio::spawn(async move {
        server
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    let mut grpc = pb::authorization_service_client::AuthorizationServiceClient::connect(format!(
        "http://{addr}"
    ))
    .await
    .unwrap();
    let call = |action: &str, token: &str| {
        let mut r = tonic::Request::new(pb::CheckRequest {
            action: "app:Read".into(),
            ..Default::default()
        });
        r.metadata_mut().insert("x-action", action.parse().unwrap());
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    };
    let ok = grpc.check(call("app:Read", "alice-token")).await.unwrap();
    assert_eq!(ok.get_ref().decision_id, "d-app:Read");
    let denied = grpc
        .check(call("app:Delete", "alice-token"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let step_up = grpc
        .check(call("app:Transfer", "alice-token"))
        .await
        .unwrap_err();
    assert_eq!(step_up.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        step_up
            .metadata()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some(format!(
            "Bearer error=\"insufficient_user_authentication\", acr_values=\"{ACR}\""
        ))
    );
    // Only the allowed call reached the service.
    assert_eq!(app.seen.lock().unwrap().len(), 1);
}
