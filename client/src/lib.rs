//! `pdp-client`: the PDP's client library.
//!
//! - [`PdpClient`]: typed checks over a load-balanced tonic channel (TLS/mTLS), with
//!   deadlines, retries of what is safe to retry (with backoff and jitter, within a budget),
//!   a circuit breaker, a concurrency limit, and a failure policy that denies by default
//!   when the PDP cannot answer; a local decision cache that honours each decision's `ttl`
//!   and is invalidated at once by the PDP's Watch stream; a client span per call with the
//!   W3C trace context injected into the call's metadata.
//! - [`layer::AuthorizeLayer`]: a tower middleware that enforces decisions in front of a
//!   tonic or axum service.
//!
//! ```no_run
//! # async fn run() -> Result<(), pdp_client::ClientError> {
//! let pdp = pdp_client::PdpClient::builder().endpoint("http://127.0.0.1:50051").build()?;
//! let decision = pdp
//!     .check(
//!         pdp_client::Check::new("alice", "s3:GetObject", "arn:aws:s3:::my-bucket/data/report.csv")
//!             .role("ApplicationRole")
//!             .context("aws:SourceIp", "10.1.2.3")
//!             .context("aws:MultiFactorAuthPresent", true)
//!             .build(),
//!     )
//!     .await?;
//! if decision.is_allowed() { /* … */ }
//! # Ok(()) }
//! ```

/// The setters the request builders share ([`Check`], [`PlanQuery`]): the subject's roles,
/// tags, session and device, and the context's condition keys. Each builder holds its
/// protobuf request in `request`, with `subject` and `context` fields.
macro_rules! subject_and_context {
    () => {
        fn subject(&mut self) -> &mut pb::Subject {
            self.request.subject.get_or_insert_with(Default::default)
        }

        /// Adds a role (honoured from trusted callers only).
        #[must_use]
        pub fn role(mut self, role: &str) -> Self {
            self.subject().roles.push(role.to_owned());
            self
        }

        /// Sets a principal tag (honoured from trusted callers only).
        #[must_use]
        pub fn subject_tag(mut self, key: &str, value: &str) -> Self {
            self.subject().tags.insert(key.to_owned(), value.to_owned());
            self
        }

        /// The session the request belongs to.
        #[must_use]
        pub fn session(mut self, id: &str) -> Self {
            id.clone_into(&mut self.subject().session_id);
            self
        }

        /// The device the request comes from.
        #[must_use]
        pub fn device(mut self, id: &str) -> Self {
            id.clone_into(&mut self.subject().device_id);
            self
        }

        /// Sets a condition key.
        #[must_use]
        pub fn context(mut self, key: &str, value: impl Into<ContextValue>) -> Self {
            self.request
                .context
                .get_or_insert_with(Default::default)
                .fields
                .insert(key.to_owned(), value.into().0);
            self
        }
    };
}

mod cache;
mod client;
mod decision;
mod error;
pub mod layer;
mod plan;
pub mod sql;
mod stack;

pub use client::{BreakerPolicy, FailurePolicy, PdpClient, PdpClientBuilder, RetryPolicy};
pub use decision::{Decision, Obligation, ObligationKind, Reason};
pub use error::ClientError;
/// The PDP's gRPC types (`pdp.v1`).
pub use pdp_proto::v1 as pb;
pub use plan::{Plan, PlanKind, PlanQuery};

/// Builds a [`pb::CheckRequest`]: the common case in one line.
#[derive(Debug, Clone, Default)]
pub struct Check {
    request: pb::CheckRequest,
}

/// A context value: a string, number, boolean or list of strings.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextValue(prost_types::Value);

impl From<&str> for ContextValue {
    fn from(v: &str) -> Self {
        ContextValue(prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(v.to_owned())),
        })
    }
}

impl From<String> for ContextValue {
    fn from(v: String) -> Self {
        ContextValue(prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(v)),
        })
    }
}

impl From<bool> for ContextValue {
    fn from(v: bool) -> Self {
        ContextValue(prost_types::Value {
            kind: Some(prost_types::value::Kind::BoolValue(v)),
        })
    }
}

impl From<f64> for ContextValue {
    fn from(v: f64) -> Self {
        ContextValue(prost_types::Value {
            kind: Some(prost_types::value::Kind::NumberValue(v)),
        })
    }
}

impl From<i64> for ContextValue {
    fn from(v: i64) -> Self {
        ContextValue(prost_types::Value {
            kind: Some(prost_types::value::Kind::NumberValue(v as f64)),
        })
    }
}

impl From<Vec<String>> for ContextValue {
    fn from(v: Vec<String>) -> Self {
        ContextValue(prost_types::Value {
            kind: Some(prost_types::value::Kind::ListValue(
                prost_types::ListValue {
                    values: v.into_iter().map(|s| ContextValue::from(s).0).collect(),
                },
            )),
        })
    }
}

impl Check {
    /// May `subject` do `action` on `resource`?
    pub fn new(subject: &str, action: &str, resource: &str) -> Check {
        Check {
            request: pb::CheckRequest {
                subject: Some(pb::Subject {
                    id: subject.to_owned(),
                    ..Default::default()
                }),
                action: action.to_owned(),
                resource: Some(pb::Resource {
                    id: resource.to_owned(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        }
    }

    /// For the subject a token proves (the subject id is then the token's `sub`).
    pub fn for_token(token: &str, action: &str, resource: &str) -> Check {
        let mut c = Check::new("", action, resource);
        if let Some(s) = c.request.subject.as_mut() {
            token.clone_into(&mut s.token);
        }
        c
    }

    subject_and_context!();

    /// Sets a resource tag.
    #[must_use]
    pub fn resource_tag(mut self, key: &str, value: &str) -> Self {
        self.request
            .resource
            .get_or_insert_with(Default::default)
            .tags
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Decide only with every signal up to `generation` (a `Publish` answer's) in force:
    /// a PDP replica behind it waits, up to its bound, and otherwise denies with
    /// [`Reason::SignalsStale`](crate::Reason::SignalsStale). Such a request is never
    /// answered from the local cache.
    #[must_use]
    pub fn min_signal_generation(mut self, generation: u64) -> Self {
        self.request.min_signal_generation = generation;
        self
    }

    /// Ask for an explanation of the decision ([`Decision::explanation`]). Only a trusted
    /// caller may ask; such a request is never answered from the local cache.
    #[must_use]
    pub fn explain(mut self) -> Self {
        self.request.explain = true;
        self
    }

    /// The request.
    pub fn build(self) -> pb::CheckRequest {
        self.request
    }
}
