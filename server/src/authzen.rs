//! The OpenID AuthZEN Authorization API 1.0 on the HTTP port.

use std::sync::Arc;

use axum::Router;

use crate::grpc::State;

/// The AuthZEN routes.
pub fn routes() -> Router<Arc<State>> {
    Router::new()
}
