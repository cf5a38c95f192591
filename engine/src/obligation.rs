//! Parsing a statement's `Obligations` entries (the compiler calls it per entry).
//!
//! Pure parsing of one JSON value: it may not touch the set or the compiler's state.

use crate::types::{Obligation, ObligationType};

/// Parses an `Obligations` entry.
pub(crate) fn parse_obligation(v: &serde_json::Value) -> Result<Obligation, String> {
    let Some(obj) = v.as_object() else {
        return Err(
            "each obligation must be an object with `Id`, `Type` and optional `Properties`".into(),
        );
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "Id" | "Type" | "Properties"))
    {
        return Err(format!(
            "unknown obligation field `{k}` (expected `Id`, `Type`, `Properties`)"
        ));
    }
    let id = match obj.get("Id") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err("obligation `Id` must be a non-empty string".into()),
    };
    let kind = match obj.get("Type") {
        Some(serde_json::Value::String(s)) => ObligationType::parse(s).ok_or_else(|| {
            format!(
                "obligation `{id}` has unknown `Type` `{s}` (expected one of {})",
                ObligationType::ALL
                    .iter()
                    .map(|(_, n)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        _ => return Err(format!("obligation `{id}` needs a string `Type`")),
    };
    let properties = match obj.get("Properties") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => return Err(format!("obligation `{id}` `Properties` must be an object")),
    };
    Ok(Obligation {
        id,
        kind,
        properties,
    })
}
