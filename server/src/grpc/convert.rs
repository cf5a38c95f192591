//! Protobuf <-> engine conversions, at the edge: `TryFrom`-style functions for inputs (each
//! error names the field), plain functions for outputs. Protobuf types never enter the engine.

use pdp_engine as engine;
use pdp_proto::v1 as pb;
use prost_types::value::Kind;

use crate::decider::{CheckInput, Outcome, Reason};

pub use crate::decider::{Limits, DEFAULT_LIMITS};

pub use crate::decider::bounds::FieldError;

use crate::decider::bounds::{bounded, counted};

fn field_error(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError::new(field, message)
}

/// Field names are built only when there is an error to report: they are `format!`s, and
/// the happy path runs on every call.
type FieldName<'a> = &'a dyn Fn() -> String;

/// The parts of a check request, before defaults are applied (batch items may leave any out).
#[derive(Debug, Default, Clone)]
pub struct Parts<'a> {
    pub subject: Option<&'a pb::Subject>,
    pub action: &'a str,
    pub resource: Option<&'a pb::Resource>,
    pub context: Option<&'a prost_types::Struct>,
}

/// Builds an engine request. `prefix` names the request in errors (e.g. `items[3].`).
pub fn request(
    parts: &Parts<'_>,
    limits: &Limits,
    prefix: &str,
) -> Result<engine::Request, FieldError> {
    let f = |name: &'static str| move || format!("{prefix}{name}");
    if parts.action.is_empty() {
        return Err(field_error(f("action")(), "is required"));
    }
    bounded(f("action"), parts.action, limits)?;
    let subject = match parts.subject {
        Some(s) => subject(s, limits, &f("subject"))?,
        None => engine::Subject::default(),
    };
    let resource = match parts.resource {
        Some(r) => {
            bounded(f("resource.id"), &r.id, limits)?;
            engine::Resource {
                id: r.id.as_str().into(),
                tags: tags(&r.tags, limits, &f("resource.tags"))?,
            }
        }
        None => engine::Resource::default(),
    };
    let context = match parts.context {
        Some(c) => context(c, limits, &f("context"))?,
        None => engine::Context::new(),
    };
    Ok(engine::Request {
        subject,
        action: parts.action.into(),
        resource,
        context,
        now: None,
    })
}

fn subject(
    s: &pb::Subject,
    limits: &Limits,
    field: FieldName<'_>,
) -> Result<engine::Subject, FieldError> {
    bounded(|| format!("{}.id", field()), &s.id, limits)?;
    counted(
        || format!("{}.roles", field()),
        s.roles.len(),
        "roles",
        limits.max_items,
    )?;
    for (i, r) in s.roles.iter().enumerate() {
        bounded(|| format!("{}.roles[{i}]", field()), r, limits)?;
    }
    Ok(engine::Subject {
        id: s.id.as_str().into(),
        roles: s.roles.iter().map(|r| r.as_str().into()).collect(),
        tags: tags(&s.tags, limits, &|| format!("{}.tags", field()))?,
    })
}

fn tags(
    t: &std::collections::HashMap<String, String>,
    limits: &Limits,
    field: FieldName<'_>,
) -> Result<engine::Tags, FieldError> {
    counted(field, t.len(), "tags", limits.max_items)?;
    t.iter()
        .map(|(k, v)| {
            let kf = || format!("{}.{k}", field());
            bounded(kf, k, limits)?;
            bounded(kf, v, limits)?;
            Ok((k.as_str().into(), v.as_str().into()))
        })
        .collect()
}

fn scalar(
    v: &prost_types::Value,
    field: FieldName<'_>,
    limits: &Limits,
) -> Result<engine::Scalar, FieldError> {
    match &v.kind {
        Some(Kind::StringValue(s)) => {
            bounded(field, s, limits)?;
            Ok(engine::Scalar::String(s.as_str().into()))
        }
        Some(Kind::NumberValue(n)) if n.is_finite() => Ok(engine::Scalar::Number(*n)),
        Some(Kind::BoolValue(b)) => Ok(engine::Scalar::Bool(*b)),
        Some(Kind::NumberValue(_)) => Err(field_error(field(), "numbers must be finite")),
        Some(Kind::NullValue(_)) | None => {
            Err(field_error(field(), "null is not a condition value"))
        }
        Some(Kind::StructValue(_)) => Err(field_error(field(), "objects are not condition values")),
        Some(Kind::ListValue(_)) => Err(field_error(
            field(),
            "lists inside lists are not condition values",
        )),
    }
}

/// Context values: strings, numbers, booleans, or lists of them.
pub fn context(
    c: &prost_types::Struct,
    limits: &Limits,
    field: FieldName<'_>,
) -> Result<engine::Context, FieldError> {
    counted(field, c.fields.len(), "keys", limits.max_context_keys)?;
    let mut entries = Vec::with_capacity(c.fields.len());
    for (k, v) in &c.fields {
        let kf = || format!("{}.{k}", field());
        bounded(kf, k, limits)?;
        let value = match &v.kind {
            Some(Kind::ListValue(list)) => {
                counted(kf, list.values.len(), "values", limits.max_list_values)?;
                let mut values = Vec::with_capacity(list.values.len());
                for (i, item) in list.values.iter().enumerate() {
                    values.push(scalar(item, &|| format!("{}[{i}]", kf()), limits)?);
                }
                engine::Value::Many(values)
            }
            _ => engine::Value::One(scalar(v, &kf, limits)?),
        };
        entries.push((k.clone(), value));
    }
    Ok(entries.into_iter().collect())
}

/// Merges a batch item over the batch defaults: an item's subject, resource and non-empty
/// action replace the defaults; its context keys are added to (and override) the defaults'.
pub fn merge_context(
    defaults: Option<&prost_types::Struct>,
    item: Option<&prost_types::Struct>,
) -> Option<prost_types::Struct> {
    match (defaults, item) {
        (None, None) => None,
        (Some(d), None) => Some(d.clone()),
        (None, Some(i)) => Some(i.clone()),
        (Some(d), Some(i)) => {
            let mut merged = d.clone();
            merged
                .fields
                .extend(i.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
            Some(merged)
        }
    }
}

/// The decider's input for `parts`: the request in the engine's terms, with the token and
/// session and device ids beside it. `prefix` names the request in errors.
pub fn check_input<'a>(
    parts: &Parts<'a>,
    limits: &Limits,
    prefix: &str,
    trusted: bool,
) -> Result<CheckInput<'a>, FieldError> {
    let request = request(parts, limits, prefix)?;
    let (token, session_id, device_id) = parts.subject.map_or(("", "", ""), |s| {
        (
            s.token.as_str(),
            s.session_id.as_str(),
            s.device_id.as_str(),
        )
    });
    Ok(CheckInput {
        request,
        token,
        session_id,
        device_id,
        trusted,
    })
}

/// The protobuf reason of a decider reason (ext_authz's own refusals have none).
pub fn reason(r: Reason) -> pb::Reason {
    match r {
        Reason::Allowed => pb::Reason::Allowed,
        Reason::ExplicitDeny => pb::Reason::ExplicitDeny,
        Reason::ImplicitDeny => pb::Reason::ImplicitDeny,
        Reason::InvalidIdentity => pb::Reason::InvalidIdentity,
        Reason::SessionRevoked => pb::Reason::SessionRevoked,
        Reason::CredentialChanged => pb::Reason::CredentialChanged,
        Reason::SignalsStale => pb::Reason::SignalsStale,
        Reason::AuditUnavailable => pb::Reason::AuditUnavailable,
        Reason::InvalidPath | Reason::UnmappedRoute | Reason::UnmappedAllowed => {
            pb::Reason::Unspecified
        }
    }
}

/// An outcome as a protobuf response (its strings moved, not copied).
pub fn check_response(o: Outcome) -> pb::CheckResponse {
    pb::CheckResponse {
        decision: if o.allowed {
            pb::Decision::Allow
        } else {
            pb::Decision::Deny
        } as i32,
        reason: reason(o.reason) as i32,
        obligations: o.obligations.iter().map(obligation).collect(),
        determining: o.determining.into_iter().map(statement_ref).collect(),
        decision_id: o.decision_id,
        policy_revision: o.revision,
        ttl: prost_types::Duration::try_from(o.ttl).ok(),
        message: o.message,
        explanation: None,
    }
}

/// A statement as the protobuf names it.
fn statement_ref(s: engine::StatementInfo) -> pb::StatementRef {
    pb::StatementRef {
        policy: s.policy,
        sid: s.sid.unwrap_or_default(),
        index: u32::try_from(s.index).unwrap_or(u32::MAX),
        effect: s.effect.as_str().to_owned(),
    }
}

/// An explanation as protobuf (the decision itself is the response's).
pub fn explanation(e: engine::Explanation) -> pb::Explanation {
    let held_back = e
        .held_back
        .into_iter()
        .map(|h| {
            let (by, of, policy) = match h.by {
                engine::Limit::Boundary { of, policy } => ("boundary", of, policy),
                engine::Limit::Guardrails => ("guardrails", String::new(), String::new()),
            };
            pb::HeldBack {
                by: by.to_owned(),
                of,
                policy,
                allows: h.allows.into_iter().map(statement_ref).collect(),
            }
        })
        .collect();
    let near_misses = e
        .near_misses
        .into_iter()
        .map(|m| {
            let (attached, attached_name) = match m.attached {
                engine::Attached::Role(n) => ("role", n),
                engine::Attached::Subject(n) => ("subject", n),
                engine::Attached::Boundary(n) => ("boundary", n),
                engine::Attached::Guardrail => ("guardrail", String::new()),
                engine::Attached::ResourcePolicy(n) => ("resource_policy", n),
            };
            let mut miss = pb::NearMiss {
                statement: Some(statement_ref(m.statement)),
                attached: attached.to_owned(),
                attached_name,
                ..Default::default()
            };
            miss.part = match m.mismatch {
                engine::Mismatch::Action => "action",
                engine::Mismatch::Resource => "resource",
                engine::Mismatch::Principal => "principal",
                engine::Mismatch::Condition {
                    operator,
                    key,
                    expected,
                    actual,
                } => {
                    miss.operator = operator;
                    miss.key = key;
                    miss.expected = expected;
                    miss.key_present = actual.is_some();
                    miss.actual = actual.unwrap_or_default();
                    "condition"
                }
            }
            .to_owned();
            miss
        })
        .collect();
    pb::Explanation {
        held_back,
        near_misses,
        omitted: u32::try_from(e.omitted).unwrap_or(u32::MAX),
        unbound_roles: e.unbound_roles,
    }
}

/// A query plan as a protobuf response.
pub fn plan_response(p: crate::decider::PlanOutcome) -> pb::PlanResourcesResponse {
    let (kind, condition) = match &p.plan {
        engine::Plan::AlwaysAllowed => (pb::PlanKind::AlwaysAllowed, None),
        engine::Plan::AlwaysDenied => (pb::PlanKind::AlwaysDenied, None),
        engine::Plan::Conditional(e) => (pb::PlanKind::Conditional, Some(resource_expr(e))),
    };
    pb::PlanResourcesResponse {
        kind: kind as i32,
        condition,
        policy_revision: p.revision,
        reason: p.refused.map_or(pb::Reason::Unspecified, reason) as i32,
        message: p.message,
    }
}

/// A plan's expression as a protobuf tree.
pub fn resource_expr(e: &engine::Expr) -> pb::ResourceExpr {
    use pb::resource_expr::Expr as E;
    let list = |es: &[engine::Expr]| pb::ResourceExprList {
        exprs: es.iter().map(resource_expr).collect(),
    };
    let expr = match e {
        engine::Expr::IdLike(g) => E::IdLike(g.to_string()),
        engine::Expr::Tag(t) => E::Tag(pb::TagTest {
            operator: t.operator().to_owned(),
            key: t.key().to_owned(),
            values: t.values().to_vec(),
        }),
        engine::Expr::IdTemplate(t) => E::IdTemplate(t.pattern().to_owned()),
        engine::Expr::Not(e) => E::Not(Box::new(resource_expr(e))),
        engine::Expr::And(es) => E::And(list(es)),
        engine::Expr::Or(es) => E::Or(list(es)),
    };
    pb::ResourceExpr { expr: Some(expr) }
}

fn obligation(o: &engine::Obligation) -> pb::Obligation {
    pb::Obligation {
        id: o.id.clone(),
        r#type: o.kind.as_str().to_owned(),
        properties: Some(prost_types::Struct {
            fields: o
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), json_to_value(v)))
                .collect(),
        }),
    }
}

/// A protobuf value as JSON (numbers that are not finite become `null`).
pub fn value_to_json(v: &prost_types::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.kind {
        None | Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(*b),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
        Some(Kind::StringValue(s)) => J::String(s.clone()),
        Some(Kind::ListValue(l)) => J::Array(l.values.iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => J::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

pdp_proto::json_to_protobuf_value!(fn json_to_value, prost_types);

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(s: &str) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }

    #[test]
    fn nested_context_values_are_rejected_naming_the_field() {
        let mut c = prost_types::Struct::default();
        c.fields.insert(
            "k".into(),
            prost_types::Value {
                kind: Some(Kind::StructValue(prost_types::Struct::default())),
            },
        );
        let err = context(&c, &DEFAULT_LIMITS, &|| "context".to_owned()).err();
        assert_eq!(err.map(|e| e.field), Some("context.k".to_owned()));
    }

    #[test]
    fn lists_become_multivalued_keys() -> Result<(), FieldError> {
        let mut c = prost_types::Struct::default();
        c.fields.insert(
            "aws:TagKeys".into(),
            prost_types::Value {
                kind: Some(Kind::ListValue(prost_types::ListValue {
                    values: vec![sv("a"), sv("b")],
                })),
            },
        );
        let ctx = context(&c, &DEFAULT_LIMITS, &|| "context".to_owned())?;
        assert_eq!(
            ctx.get("aws:tagkeys"),
            Some(&engine::Value::from(vec!["a", "b"]))
        );
        Ok(())
    }

    #[test]
    fn oversized_fields_are_rejected() {
        let parts = Parts {
            action: "s3:GetObject",
            ..Default::default()
        };
        let big = "x".repeat(DEFAULT_LIMITS.max_field_bytes + 1);
        let r = pb::Resource {
            id: big,
            ..Default::default()
        };
        let parts = Parts {
            resource: Some(&r),
            ..parts
        };
        let err = request(&parts, &DEFAULT_LIMITS, "").err();
        assert_eq!(err.map(|e| e.field), Some("resource.id".to_owned()));
    }

    #[test]
    fn tags_are_converted_in_key_order_within_their_limits() {
        let limits = Limits {
            max_items: 2,
            ..DEFAULT_LIMITS
        };
        let mut r = pb::Resource {
            id: "arn:aws:s3:::b/k".into(),
            tags: [("team", "data"), ("env", "prod")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ..Default::default()
        };
        fn parts(r: &pb::Resource) -> Parts<'_> {
            Parts {
                action: "s3:GetObject",
                resource: Some(r),
                ..Default::default()
            }
        }
        let ok = request(&parts(&r), &limits, "").map(|q| q.resource.tags);
        let listed = ok.map(|t| {
            t.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        });
        assert_eq!(
            listed.ok(),
            Some(vec!["env=prod".to_owned(), "team=data".to_owned()])
        );

        r.tags
            .insert("env".into(), "x".repeat(limits.max_field_bytes + 1));
        let err = request(&parts(&r), &limits, "").err();
        assert_eq!(err.map(|e| e.field), Some("resource.tags.env".to_owned()));

        r.tags.insert("env".into(), "prod".into());
        r.tags.insert("owner".into(), "ops".into());
        let err = request(&parts(&r), &limits, "").err();
        assert_eq!(err.map(|e| e.field), Some("resource.tags".to_owned()));
    }

    #[test]
    fn item_context_overrides_defaults_key_by_key() {
        let mut d = prost_types::Struct::default();
        d.fields.insert("a".into(), sv("1"));
        d.fields.insert("b".into(), sv("1"));
        let mut i = prost_types::Struct::default();
        i.fields.insert("b".into(), sv("2"));
        let m = merge_context(Some(&d), Some(&i)).unwrap_or_default();
        assert_eq!(m.fields.get("a"), Some(&sv("1")));
        assert_eq!(m.fields.get("b"), Some(&sv("2")));
    }
}
