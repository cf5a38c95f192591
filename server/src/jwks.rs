//! Signing keys from a JWKS URL: fetched at start, then again periodically and soon after a
//! token names an unknown key (at most once per minimum gap, so unknown `kid`s cannot make
//! the PDP hammer the identity provider).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use jsonwebtoken::jwk::JwkSet;

use crate::state::State;

/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// How long one fetch may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches a JWK set over HTTP(S).
pub async fn fetch(url: &str) -> Result<JwkSet, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(https);
    let request = hyper::Request::get(uri)
        .header(hyper::header::ACCEPT, "application/json")
        .body(http_body_util::Empty::new())
        .map_err(|e| format!("`{url}`: {e}"))?;
    let response = tokio::time::timeout(FETCH_TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("`{url}` did not answer within {FETCH_TIMEOUT:?}"))?
        .map_err(|e| format!("`{url}`: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("`{url}` answered {}", response.status()));
    }
    let body = http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|e| format!("`{url}`: {e}"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("`{url}` is not a JWK set: {e}"))
}

/// Refreshes the verifier's keys from `url` every `every`, and when a token names an unknown
/// key, never twice within `min_gap`.
pub fn spawn_refresher(state: Arc<State>, url: String, every: Duration, min_gap: Duration) {
    tokio::spawn(async move {
        let Some(verifier) = state.verifier.as_ref() else {
            return;
        };
        let mut last = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {},
                () = verifier.unknown_kid_seen() => {},
            }
            let since = last.elapsed();
            if since < min_gap {
                tokio::time::sleep(min_gap - since).await;
            }
            last = Instant::now();
            match fetch(&url).await {
                Ok(set) => match verifier.replace_keys(&set) {
                    Ok(n) => tracing::info!(url = %url, keys = n, "signing keys refreshed"),
                    Err(e) => tracing::error!(url = %url, "signing keys not replaced: {e}"),
                },
                Err(e) => tracing::error!("signing keys not refreshed, the current ones stay: {e}"),
            }
        }
    });
}
