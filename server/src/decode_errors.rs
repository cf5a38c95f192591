//! gRPC codes for requests that cannot be read. tonic answers a request message that is not
//! valid protobuf with `INTERNAL` and one over the size limit with `OUT_OF_RANGE`; both are
//! the caller's fault, so this layer rewrites those answers to `INVALID_ARGUMENT` (malformed,
//! truncated) and `RESOURCE_EXHAUSTED` (too large), keeping tonic's detail (the message and
//! field that failed, the sizes). It reads only the status of trailers-only answers, which is
//! how tonic answers a unary call whose request it could not decode, before any handler ran;
//! a handler's own statuses are never `OUT_OF_RANGE` nor carry these messages.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tonic::{Code, Status};

/// Prefix of the status message of a prost decode error (tonic-prost's codec).
const DECODE_ERROR: &str = "failed to decode Protobuf message";
/// The status message of a body that ends inside a message.
const TRUNCATED: &str = "Unexpected EOF decoding stream.";
/// Prefix of the status message of a message over the size limit.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// The layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeErrorsLayer;

impl<S> tower::Layer<S> for DecodeErrorsLayer {
    type Service = DecodeErrors<S>;

    fn layer(&self, inner: S) -> DecodeErrors<S> {
        DecodeErrors { inner }
    }
}

/// The service.
#[derive(Debug, Clone)]
pub struct DecodeErrors<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for DecodeErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        ResponseFuture {
            inner: Box::pin(self.inner.call(request)),
        }
    }
}

/// The inner service's answer, its status rewritten.
pub struct ResponseFuture<F> {
    inner: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut response = ready!(self.inner.as_mut().poll(cx))?;
        rewrite(response.headers_mut());
        Poll::Ready(Ok(response))
    }
}

/// The code a caller's unreadable request should get, if `status` is tonic's answer to one.
fn caller_code(status: &Status) -> Option<Code> {
    let message = status.message();
    match status.code() {
        Code::Internal if message.starts_with(DECODE_ERROR) || message == TRUNCATED => {
            Some(Code::InvalidArgument)
        }
        Code::OutOfRange if message.starts_with(TOO_LARGE) => Some(Code::ResourceExhausted),
        _ => None,
    }
}

/// Rewrites the status in `headers` (a trailers-only answer) when it is a decode failure.
fn rewrite(headers: &mut http::HeaderMap) {
    // Cheap test first: most answers carry no status in their headers, or `0`.
    let candidate = headers
        .get(Status::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() == b"13" || v.as_bytes() == b"11");
    if !candidate {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else {
        return;
    };
    let Some(code) = caller_code(&status) else {
        return;
    };
    let message = match code {
        Code::ResourceExhausted => {
            format!("the request message is too large: {}", status.message())
        }
        _ => format!(
            "the request message is not valid protobuf: {}",
            status.message()
        ),
    };
    headers.remove(Status::GRPC_STATUS);
    headers.remove(Status::GRPC_MESSAGE);
    headers.remove(Status::GRPC_STATUS_DETAILS);
    if Status::new(code, message).add_header(headers).is_err() {
        // The message could not be written as a header: the code alone still says it.
        headers.insert(Status::GRPC_STATUS, code_value(code));
    }
}

fn code_value(code: Code) -> http::HeaderValue {
    http::HeaderValue::from(i32::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_decode_failures_change_code() {
        let decode = Status::internal(format!(
            "{DECODE_ERROR}: CheckRequest.subject: invalid wire type"
        ));
        assert_eq!(caller_code(&decode), Some(Code::InvalidArgument));
        assert_eq!(
            caller_code(&Status::internal(TRUNCATED)),
            Some(Code::InvalidArgument)
        );
        let big = Status::out_of_range(format!(
            "{TOO_LARGE}: found 2000000 bytes, the limit is: 1048576 bytes"
        ));
        assert_eq!(caller_code(&big), Some(Code::ResourceExhausted));
        assert_eq!(caller_code(&Status::internal("the PDP failed")), None);
        assert_eq!(caller_code(&Status::invalid_argument(DECODE_ERROR)), None);
    }
}
