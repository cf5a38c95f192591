//! Request payloads and metadata, prepared once and built per request: a JSON request
//! without templates becomes its message once (and is cloned per request); one with
//! templates keeps the templates of its string values parsed, renders them with the
//! request's call data and converts the result. An array of requests is sent round-robin by
//! request number, as ghz does for unary calls.
//!
//! ghz renders the whole JSON text as one template; rendering string values one by one gives
//! the same requests for configuration files (where every template sits inside a JSON
//! string) without re-parsing JSON for every request.

use serde_json::{Map, Value};
use tonic::metadata::{Ascii, MetadataKey, MetadataMap, MetadataValue};

use super::message::{Call, DataError, Message};
use super::template::{CallData, MethodNames, Rng, Template, TemplateError};

/// Data or metadata that cannot make requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// A template does not parse or render.
    #[error("data: {0}")]
    Template(#[from] TemplateError),
    /// The JSON does not make the call's request message.
    #[error("data: {0}")]
    Message(#[from] DataError),
    /// Metadata that is not valid gRPC metadata.
    #[error("metadata: {0}")]
    Metadata(String),
}

/// JSON with parsed templates in its strings.
#[derive(Debug, Clone)]
enum Json {
    /// A subtree without templates.
    Plain(Value),
    Template(Template),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn compile(v: &Value) -> Result<Json, TemplateError> {
        if !has_template(v) {
            return Ok(Json::Plain(v.clone()));
        }
        Ok(match v {
            Value::String(s) => Json::Template(Template::parse(s)?),
            Value::Array(items) => {
                Json::Array(items.iter().map(Json::compile).collect::<Result<_, _>>()?)
            }
            Value::Object(m) => Json::Object(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), Json::compile(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => Json::Plain(other.clone()),
        })
    }

    fn render(&self, data: &CallData<'_>) -> Result<Value, TemplateError> {
        Ok(match self {
            Json::Plain(v) => v.clone(),
            Json::Template(t) => Value::String(t.render(data)?),
            Json::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|j| j.render(data))
                    .collect::<Result<_, _>>()?,
            ),
            Json::Object(fields) => {
                let mut m = Map::new();
                for (k, j) in fields {
                    m.insert(k.clone(), j.render(data)?);
                }
                Value::Object(m)
            }
        })
    }
}

fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => Template::is_template(s),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(m) => m.values().any(has_template),
        _ => false,
    }
}

#[derive(Debug, Clone)]
enum Payload {
    Fixed(Box<Message>),
    Templated(Json),
}

/// The requests of a run.
#[derive(Debug, Clone)]
pub struct Payloads {
    call: Call,
    names: MethodNames,
    items: Vec<Payload>,
    metadata: Vec<(MetadataKey<Ascii>, MetaValue)>,
}

#[derive(Debug, Clone)]
enum MetaValue {
    Fixed(MetadataValue<Ascii>),
    Templated(Template),
}

impl Payloads {
    /// Prepares `data` (an object or a non-empty array of objects) and `metadata` for `call`,
    /// and builds request 0 to find problems before any load is sent.
    pub fn compile<'a>(
        call: Call,
        data: &Value,
        metadata: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Result<Payloads, PayloadError> {
        let names = call.names();
        let values: Vec<&Value> = match data {
            Value::Array(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            one => vec![one],
        };
        let mut items = Vec::with_capacity(values.len().max(1));
        for v in values {
            items.push(if has_template(v) {
                Payload::Templated(Json::compile(v)?)
            } else {
                Payload::Fixed(Box::new(call.message(v.clone())?))
            });
        }
        if items.is_empty() {
            items.push(Payload::Fixed(Box::new(
                call.message(Value::Object(Map::new()))?,
            )));
        }
        let mut md = Vec::new();
        for (k, v) in metadata {
            let key = MetadataKey::from_bytes(k.as_bytes())
                .map_err(|e| PayloadError::Metadata(format!("`{k}`: {e}")))?;
            let value = if Template::is_template(v) {
                MetaValue::Templated(Template::parse(v)?)
            } else {
                MetaValue::Fixed(
                    v.parse()
                        .map_err(|e| PayloadError::Metadata(format!("`{k}`: {e}")))?,
                )
            };
            md.push((key, value));
        }
        let payloads = Payloads {
            call,
            names,
            items,
            metadata: md,
        };
        let rng = Rng::new(0);
        for i in 0..payloads.items.len() as u64 {
            payloads.build(i, "g0c0w0", &rng)?;
        }
        Ok(payloads)
    }

    /// The call.
    pub fn call(&self) -> Call {
        self.call
    }

    /// Request number `n`, sent by `worker_id`, with its metadata.
    pub fn build(
        &self,
        n: u64,
        worker_id: &str,
        rng: &Rng,
    ) -> Result<(Message, MetadataMap), PayloadError> {
        let index = (n % self.items.len() as u64) as usize;
        let data = CallData::new(worker_id, n, &self.names, rng);
        let message = match self.items.get(index) {
            Some(Payload::Fixed(m)) => (**m).clone(),
            Some(Payload::Templated(j)) => self.call.message(j.render(&data)?)?,
            None => self.call.message(Value::Object(Map::new()))?,
        };
        let mut md = MetadataMap::with_capacity(self.metadata.len());
        for (k, v) in &self.metadata {
            let value = match v {
                MetaValue::Fixed(v) => v.clone(),
                MetaValue::Templated(t) => t
                    .render(&data)?
                    .parse()
                    .map_err(|e| PayloadError::Metadata(format!("`{k}`: {e}")))?,
            };
            md.insert(k.clone(), value);
        }
        Ok((message, md))
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;
    use serde_json::json;

    #[test]
    fn templated_requests_vary_and_arrays_go_round_robin() {
        let data = json!({
            "subject": {"id": "alice"},
            "action": "s3:GetObject",
            "resource": {"id": "arn:aws:s3:::b/{{mod .RequestNumber 3}}"},
            "context": {"mfa": "{{if eq (mod .RequestNumber 2) 0}}true{{else}}false{{end}}"},
            "requestId": "{{.WorkerID}}-{{.RequestNumber}}"
        });
        let md = [("x-run".to_owned(), "r{{.RequestNumber}}".to_owned())];
        let p = Payloads::compile(Call::Check, &data, md.iter().map(|(k, v)| (k, v))).unwrap();
        let rng = Rng::new(1);
        let (m, md) = p.build(4, "g0c0w3", &rng).unwrap();
        let Message::Check(r) = m else { panic!() };
        assert_eq!(r.resource.unwrap().id, "arn:aws:s3:::b/1");
        assert_eq!(r.request_id, "g0c0w3-4");
        let mfa = r.context.unwrap().fields.remove("mfa").unwrap();
        assert_eq!(
            mfa.kind,
            Some(prost_types::value::Kind::StringValue("true".into()))
        );
        assert_eq!(md.get("x-run").unwrap(), "r4");

        let two = json!([{"action": "a"}, {"action": "b"}]);
        let p = Payloads::compile(Call::Check, &two, []).unwrap();
        let actions: Vec<String> = (0..4)
            .map(|n| match p.build(n, "w", &rng).unwrap().0 {
                Message::Check(r) => r.action,
                _ => panic!(),
            })
            .collect();
        assert_eq!(actions, ["a", "b", "a", "b"]);
    }

    #[test]
    fn bad_data_is_refused_before_the_run() {
        let e = Payloads::compile(Call::Check, &json!({"action": "{{.Nope}}"}), []).unwrap_err();
        assert!(matches!(e, PayloadError::Template(_)), "{e}");
        let e = Payloads::compile(Call::Check, &json!({"acton": "x"}), []).unwrap_err();
        assert!(e.to_string().contains("acton"), "{e}");
    }
}
