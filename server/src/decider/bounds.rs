//! The bounds on one request's fields ([`super::Limits`]), checked on a request already in
//! the engine's terms, for front ends that build it without a protobuf message in between
//! (AuthZEN). Errors name the field as the gRPC conversion names it, in the same order:
//! action, subject (id, roles, tags), resource (id, tags), context (keys, each key and
//! value).

use pdp_engine as engine;

use super::Limits;

/// A request field that cannot be used; becomes `INVALID_ARGUMENT` (or a 400) naming it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct FieldError {
    /// The field, e.g. `context.aws:SourceIp`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// `field` cannot be used, because `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `value` is at most `limits.max_field_bytes` long; `field` names it (built only on error).
pub(crate) fn bounded(
    field: impl FnOnce() -> String,
    value: &str,
    limits: &Limits,
) -> Result<(), FieldError> {
    if value.len() > limits.max_field_bytes {
        return Err(FieldError::new(
            field(),
            format!(
                "is {} bytes, over the limit of {}",
                value.len(),
                limits.max_field_bytes
            ),
        ));
    }
    Ok(())
}

/// `n` (of `what`: `roles`, `tags`, `keys`, `values`) is at most `limit`.
pub(crate) fn counted(
    field: impl FnOnce() -> String,
    n: usize,
    what: &str,
    limit: usize,
) -> Result<(), FieldError> {
    if n > limit {
        return Err(FieldError::new(
            field(),
            format!("has {n} {what}, over the limit of {limit}"),
        ));
    }
    Ok(())
}

fn tags(t: &engine::Tags, field: &str, limits: &Limits) -> Result<(), FieldError> {
    counted(|| field.to_owned(), t.len(), "tags", limits.max_items)?;
    for (k, v) in t.iter() {
        bounded(|| format!("{field}.{k}"), k, limits)?;
        bounded(|| format!("{field}.{k}"), v, limits)?;
    }
    Ok(())
}

fn scalar(
    s: &engine::Scalar,
    field: impl FnOnce() -> String,
    limits: &Limits,
) -> Result<(), FieldError> {
    match s {
        engine::Scalar::String(text) => bounded(field, text, limits),
        engine::Scalar::Number(n) if !n.is_finite() => {
            Err(FieldError::new(field(), "numbers must be finite"))
        }
        engine::Scalar::Number(_) | engine::Scalar::Bool(_) => Ok(()),
    }
}

/// Whether `request` is within `limits`; `prefix` names the request in errors.
pub fn check(request: &engine::Request, limits: &Limits, prefix: &str) -> Result<(), FieldError> {
    if request.action.is_empty() {
        return Err(FieldError::new(format!("{prefix}action"), "is required"));
    }
    bounded(|| format!("{prefix}action"), &request.action, limits)?;
    let subject = &request.subject;
    bounded(|| format!("{prefix}subject.id"), &subject.id, limits)?;
    counted(
        || format!("{prefix}subject.roles"),
        subject.roles.len(),
        "roles",
        limits.max_items,
    )?;
    for (i, r) in subject.roles.iter().enumerate() {
        bounded(|| format!("{prefix}subject.roles[{i}]"), r, limits)?;
    }
    tags(&subject.tags, &format!("{prefix}subject.tags"), limits)?;
    bounded(
        || format!("{prefix}resource.id"),
        &request.resource.id,
        limits,
    )?;
    tags(
        &request.resource.tags,
        &format!("{prefix}resource.tags"),
        limits,
    )?;
    let context = &request.context;
    counted(
        || format!("{prefix}context"),
        context.len(),
        "keys",
        limits.max_context_keys,
    )?;
    for (k, v) in context.iter() {
        let field = || format!("{prefix}context.{k}");
        bounded(field, k, limits)?;
        match v {
            engine::Value::One(s) => scalar(s, field, limits)?,
            engine::Value::Many(values) => {
                counted(field, values.len(), "values", limits.max_list_values)?;
                for (i, s) in values.iter().enumerate() {
                    scalar(s, || format!("{prefix}context.{k}[{i}]"), limits)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request() -> engine::Request {
        engine::Request {
            action: "docs:Read".into(),
            ..Default::default()
        }
    }

    #[test]
    fn each_bound_names_its_field() {
        let limits = super::super::DEFAULT_LIMITS;
        assert_eq!(check(&request(), &limits, ""), Ok(()));
        let mut r = request();
        r.action = "".into();
        assert_eq!(check(&r, &limits, "").unwrap_err().field, "action");
        let mut r = request();
        r.subject.roles = (0..=limits.max_items)
            .map(|i| i.to_string().into())
            .collect();
        assert_eq!(check(&r, &limits, "").unwrap_err().field, "subject.roles");
        let mut r = request();
        r.context
            .insert("big", "x".repeat(limits.max_field_bytes + 1).as_str());
        let e = check(&r, &limits, "evaluations[2].").unwrap_err();
        assert_eq!(e.field, "evaluations[2].context.big");
        assert!(e.message.contains("bytes, over the limit"), "{e}");
        let mut r = request();
        r.context.insert(
            "many",
            engine::Value::Many(vec![engine::Scalar::Bool(true); limits.max_list_values + 1]),
        );
        assert_eq!(check(&r, &limits, "").unwrap_err().field, "context.many");
        let mut r = request();
        r.context.insert("n", f64::NAN);
        assert_eq!(
            check(&r, &limits, "").unwrap_err().message,
            "numbers must be finite"
        );
    }
}
