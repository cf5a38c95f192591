//! A small axum service protected by `AuthorizeLayer`: the policy enforcement point inside
//! the application, asking `pdp serve` about every request.
//!
//! `GET /data/{key}` is checked as `s3:GetObject` on `arn:aws:s3:::my-bucket/data/{key}`,
//! for the subject the request's Bearer token proves, from `aws:SourceIp` = the peer's
//! address. Other routes are denied (403 `unmapped_route`), a request without a token gets
//! 401, and the PDP's denials come back as 403 / 401 (step-up) with a JSON body.
//!
//! ```sh
//! # 1. The PDP, with the demo key set (the example policies in policies/):
//! cargo run --bin pdp -- serve --jwks server/tests/fixtures/jwks.json \
//!     --issuer https://idp.demo.local --audience pdp-demo
//!
//! # 2. This service on 127.0.0.1:3000 (PDP_ADDR defaults to http://127.0.0.1:50051).
//! #    The example policy `app-data` allows reads from 10.0.0.0/8 only, and a local curl
//! #    comes from 127.0.0.1: DEMO_SOURCE_IP stands in for the peer's address.
//! DEMO_SOURCE_IP=10.1.2.3 cargo run -p pdp-client --example axum_app
//!
//! # 3. alice (role ApplicationRole, MFA) may read; bob may not; no token: 401.
//! curl -i -H "authorization: Bearer $(cat deploy/demo/tokens/alice.jwt)" \
//!     localhost:3000/data/report.csv                                      # 200
//! curl -i -H "authorization: Bearer $(cat deploy/demo/tokens/bob.jwt)" \
//!     localhost:3000/data/report.csv                                      # 403
//! curl -i localhost:3000/data/report.csv                                  # 401
//! ```
//!
//! The demo tokens are signed with published test keys: never trust them outside a demo.

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path};
use axum::routing::get;
use axum::{Extension, Router};
use pdp_client::layer::{AuthorizeLayer, Rejection, RouteMapper};
use pdp_client::{pb, Decision, PdpClient};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let pdp_addr =
        std::env::var("PDP_ADDR").unwrap_or_else(|_| "http://127.0.0.1:50051".to_owned());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    // For the demo only: a fixed source address instead of the peer's.
    let demo_source_ip = std::env::var("DEMO_SOURCE_IP").ok();

    let pdp = PdpClient::builder().endpoint(pdp_addr.as_str()).build()?;

    let routes = RouteMapper::new().route(
        http::Method::GET,
        "/data/{key}",
        "s3:GetObject",
        "arn:aws:s3:::my-bucket/data/{key}",
    )?;
    // The route table gives the token, action and resource; the peer's address is axum's
    // to know (it is in the request's extensions with `into_make_service_with_connect_info`).
    let mapper =
        move |request: &http::Request<axum::body::Body>| -> Result<pb::CheckRequest, Rejection> {
            let mut check = routes.check(request)?;
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip().to_string());
            if let Some(ip) = demo_source_ip.clone().or(peer) {
                check = check.context("aws:SourceIp", ip);
            }
            Ok(check.build())
        };

    let authorize = AuthorizeLayer::new(pdp, mapper)
        .on_obligation("audit", |o| {
            tracing::info!(obligation = %o.id, "audited read");
        })
        .on_obligation("notification", |o| {
            println!("notify {:?}: {}", o.property("to"), o.id);
        });

    let app = Router::new()
        .route("/data/{key}", get(read))
        .layer(authorize);

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("axum_app: serving on http://{listen}, asking the PDP at {pdp_addr}");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

/// Runs only for requests the PDP allowed; the decision rides along in the extensions.
async fn read(Path(key): Path<String>, Extension(decision): Extension<Decision>) -> String {
    format!(
        "the contents of data/{key} (decision {}, policy revision {})\n",
        decision.decision_id(),
        decision.policy_revision()
    )
}
