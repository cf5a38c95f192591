//! [`ClientError`]: why a call did not produce the PDP's decision.

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The request was refused as malformed (`INVALID_ARGUMENT`): fix the request.
    #[error("the PDP refused the request: {0}")]
    InvalidRequest(String),
    /// This client may not ask (`PERMISSION_DENIED`, `UNAUTHENTICATED`).
    #[error("the PDP refused this client: {0}")]
    NotAuthorized(String),
    /// The PDP is overloaded (`RESOURCE_EXHAUSTED`).
    #[error("the PDP is overloaded: {0}")]
    Overloaded(String),
    /// The PDP cannot be reached or is not serving (`UNAVAILABLE`).
    #[error("the PDP is unavailable: {0}")]
    Unavailable(String),
    /// No answer before the deadline.
    #[error("no answer within the deadline")]
    DeadlineExceeded,
    /// Too many failures lately: calls are not sent until the breaker closes again.
    #[error("the circuit breaker is open after repeated failures")]
    CircuitOpen,
    /// Any other failure.
    #[error("the call failed ({code:?}): {message}")]
    Other {
        /// The gRPC code.
        code: tonic::Code,
        /// The detail.
        message: String,
    },
    /// The client is misconfigured (a bad endpoint, TLS files).
    #[error("the client is misconfigured: {0}")]
    Config(String),
}

impl ClientError {
    /// The error a gRPC status stands for.
    pub fn from_status(s: &tonic::Status) -> ClientError {
        let m = s.message().to_owned();
        match s.code() {
            tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
                ClientError::InvalidRequest(m)
            }
            tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => {
                ClientError::NotAuthorized(m)
            }
            tonic::Code::ResourceExhausted => ClientError::Overloaded(m),
            tonic::Code::Unavailable => ClientError::Unavailable(m),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => ClientError::DeadlineExceeded,
            code => ClientError::Other { code, message: m },
        }
    }

    /// Whether trying again may succeed: the PDP was unreachable (nothing was decided).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ClientError::Unavailable(_))
    }

    /// Whether the failure says something about the PDP's health (counts towards the
    /// circuit breaker), as opposed to this request.
    pub(crate) fn is_pdp_failure(&self) -> bool {
        matches!(
            self,
            ClientError::Unavailable(_)
                | ClientError::DeadlineExceeded
                | ClientError::Overloaded(_)
                | ClientError::Other { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_back_and_only_unavailable_is_retried() {
        let e = ClientError::from_status(&tonic::Status::unavailable("down"));
        assert!(e.is_retryable());
        for s in [
            tonic::Status::invalid_argument("x"),
            tonic::Status::permission_denied("x"),
            tonic::Status::resource_exhausted("x"),
            tonic::Status::deadline_exceeded("x"),
        ] {
            assert!(!ClientError::from_status(&s).is_retryable(), "{s:?}");
        }
        assert_eq!(
            ClientError::from_status(&tonic::Status::resource_exhausted("busy")),
            ClientError::Overloaded("busy".into())
        );
    }
}
