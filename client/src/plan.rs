//! What a query plan answers: [`Plan`], which resources a subject may act on, as the PDP's
//! `PlanResources` gives it (see [`PdpClient::plan`](crate::PdpClient::plan)), and
//! [`PlanQuery`], which builds the request. `Plan::to_sql` (the `sql` module) renders a
//! plan as a PostgreSQL `WHERE` clause.

use pdp_proto::v1 as pb;

use crate::{ContextValue, Reason};

/// What a plan says of every resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanKind {
    /// Every resource is allowed.
    AlwaysAllowed,
    /// No resource is allowed.
    AlwaysDenied,
    /// The resources for which [`Plan::condition`] holds are allowed.
    Conditional,
}

/// A query plan: which resources the subject may act on.
///
/// Built from the PDP's answer, failing closed: an answer this client cannot read (an
/// unknown kind, a conditional plan without its condition) allows nothing, and so does
/// a plan the client made because the PDP could not answer ([`Plan::is_unavailable`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    kind: PlanKind,
    condition: Option<pb::ResourceExpr>,
    policy_revision: String,
    reason: Option<Reason>,
    message: String,
    unavailable: bool,
}

impl Plan {
    /// The PDP's answer.
    pub fn from_response(r: &pb::PlanResourcesResponse) -> Plan {
        let pb::PlanResourcesResponse {
            kind,
            condition,
            policy_revision,
            reason,
            message,
        } = r;
        let denied = |why: &str| Plan {
            kind: PlanKind::AlwaysDenied,
            condition: None,
            policy_revision: policy_revision.clone(),
            reason: refusal(*reason),
            message: if message.is_empty() {
                why.to_owned()
            } else {
                format!("{message} ({why})")
            },
            unavailable: false,
        };
        let kind = match pb::PlanKind::try_from(*kind) {
            Ok(pb::PlanKind::AlwaysAllowed) => PlanKind::AlwaysAllowed,
            Ok(pb::PlanKind::AlwaysDenied) => PlanKind::AlwaysDenied,
            Ok(pb::PlanKind::Conditional) if condition.is_some() => PlanKind::Conditional,
            Ok(pb::PlanKind::Conditional) => {
                return denied("a conditional plan without its condition: nothing is allowed")
            }
            Ok(pb::PlanKind::Unspecified) | Err(_) => {
                return denied(&format!(
                    "a plan of unknown kind `{kind}`: nothing is allowed"
                ))
            }
        };
        Plan {
            kind,
            condition: if kind == PlanKind::Conditional {
                condition.clone()
            } else {
                None
            },
            policy_revision: policy_revision.clone(),
            reason: refusal(*reason),
            message: message.clone(),
            unavailable: false,
        }
    }

    /// The plan when the PDP could not answer: nothing is allowed.
    pub(crate) fn unavailable(message: String) -> Plan {
        Plan {
            kind: PlanKind::AlwaysDenied,
            condition: None,
            policy_revision: String::new(),
            reason: Some(Reason::PdpUnavailable),
            message,
            unavailable: true,
        }
    }

    /// What the plan says of every resource.
    pub fn kind(&self) -> PlanKind {
        self.kind
    }

    /// With [`PlanKind::Conditional`]: the condition on a resource's id and tags.
    pub fn condition(&self) -> Option<&pb::ResourceExpr> {
        self.condition.as_ref()
    }

    /// Whether every resource is allowed.
    pub fn is_always_allowed(&self) -> bool {
        self.kind == PlanKind::AlwaysAllowed
    }

    /// Whether no resource is allowed.
    pub fn is_always_denied(&self) -> bool {
        self.kind == PlanKind::AlwaysDenied
    }

    /// The policy revision planned with (empty when the PDP was not reached).
    pub fn policy_revision(&self) -> &str {
        &self.policy_revision
    }

    /// Why nothing is allowed when the PDP refused before the policies (an invalid
    /// token, a revoked session, stale signals) or could not be asked
    /// ([`Reason::PdpUnavailable`]); `None` otherwise.
    pub fn reason(&self) -> Option<Reason> {
        self.reason
    }

    /// The PDP's detail, or why the PDP could not be reached.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the PDP could not be asked and the client answered with a plan that allows
    /// nothing.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

/// The reason of a plan's answer: `None` when unspecified (the plan came from the policies).
fn refusal(reason: i32) -> Option<Reason> {
    (reason != pb::Reason::Unspecified as i32).then(|| Reason::from_pb(reason))
}

/// Builds a [`pb::PlanResourcesRequest`]: which resources may `subject` do `action` on?
#[derive(Debug, Clone, Default)]
pub struct PlanQuery {
    request: pb::PlanResourcesRequest,
}

impl PlanQuery {
    /// Which resources may `subject` do `action` on?
    pub fn new(subject: &str, action: &str) -> PlanQuery {
        PlanQuery {
            request: pb::PlanResourcesRequest {
                subject: Some(pb::Subject {
                    id: subject.to_owned(),
                    ..Default::default()
                }),
                action: action.to_owned(),
                ..Default::default()
            },
        }
    }

    /// For the subject a token proves (the subject id is then the token's `sub`).
    pub fn for_token(token: &str, action: &str) -> PlanQuery {
        let mut q = PlanQuery::new("", action);
        token.clone_into(&mut q.subject().token);
        q
    }

    subject_and_context!();

    /// Plan only with every signal up to `generation` (a `Publish` answer's) in force.
    #[must_use]
    pub fn min_signal_generation(mut self, generation: u64) -> Self {
        self.request.min_signal_generation = generation;
        self
    }

    /// The request.
    pub fn build(self) -> pb::PlanResourcesRequest {
        self.request
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]

    use super::*;

    #[test]
    fn an_unreadable_answer_allows_nothing() {
        let conditional_without_condition = pb::PlanResourcesResponse {
            kind: pb::PlanKind::Conditional as i32,
            policy_revision: "r1".into(),
            ..Default::default()
        };
        let p = Plan::from_response(&conditional_without_condition);
        assert!(p.is_always_denied());
        assert_eq!(p.policy_revision(), "r1");
        assert!(p.message().contains("without its condition"), "{p:?}");
        for kind in [pb::PlanKind::Unspecified as i32, 99] {
            let p = Plan::from_response(&pb::PlanResourcesResponse {
                kind,
                ..Default::default()
            });
            assert!(p.is_always_denied(), "{kind}");
            assert!(!p.is_unavailable());
        }
    }

    #[test]
    fn a_condition_is_kept_only_with_a_conditional_plan() {
        let expr = pb::ResourceExpr {
            expr: Some(pb::resource_expr::Expr::IdLike("doc:*".into())),
        };
        let p = Plan::from_response(&pb::PlanResourcesResponse {
            kind: pb::PlanKind::Conditional as i32,
            condition: Some(expr.clone()),
            ..Default::default()
        });
        assert_eq!(
            (p.kind(), p.condition()),
            (PlanKind::Conditional, Some(&expr))
        );
        let p = Plan::from_response(&pb::PlanResourcesResponse {
            kind: pb::PlanKind::AlwaysAllowed as i32,
            condition: Some(expr),
            ..Default::default()
        });
        assert_eq!((p.kind(), p.condition()), (PlanKind::AlwaysAllowed, None));
    }

    #[tokio::test]
    async fn a_pdp_that_cannot_answer_gives_a_plan_that_allows_nothing() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let pdp = crate::PdpClient::builder()
            .endpoint(format!("http://127.0.0.1:{port}"))
            .failure_policy(crate::FailurePolicy::FailOpen)
            .no_cache()
            .build();
        let Ok(pdp) = pdp else {
            panic!("{pdp:?}");
        };
        let query = PlanQuery::new("alice", "docs:Read").build();
        let p = pdp.plan(query.clone()).await;
        let Ok(p) = p else {
            panic!("{p:?}");
        };
        assert!(p.is_always_denied() && p.is_unavailable(), "{p:?}");
        assert_eq!(p.reason(), Some(Reason::PdpUnavailable));
        assert!(p.message().contains("unavailable"), "{p:?}");
        // Without a plan made up in its place (the breaker may have opened by now).
        assert!(matches!(
            pdp.try_plan(query).await,
            Err(crate::ClientError::Unavailable(_) | crate::ClientError::CircuitOpen)
        ));
    }

    #[test]
    fn the_query_builder_fills_the_request() {
        let r = PlanQuery::new("alice", "docs:Read")
            .role("Reader")
            .context("aws:SecureTransport", true)
            .min_signal_generation(7)
            .build();
        let subject = r.subject.unwrap_or_default();
        assert_eq!(
            (subject.id.as_str(), subject.roles, r.action.as_str()),
            ("alice", vec!["Reader".to_owned()], "docs:Read")
        );
        assert_eq!(r.min_signal_generation, 7);
        assert!(r
            .context
            .is_some_and(|c| c.fields.contains_key("aws:SecureTransport")));
    }
}
