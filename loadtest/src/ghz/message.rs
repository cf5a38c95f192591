//! The calls pdp-loadtest can make, and the proto3 JSON mapping of their request messages,
//! written by hand: the generated prost types do not derive serde, and a load test should
//! refuse a misspelt field rather than send a request without it. Both the JSON names
//! (`requestId`) and the proto field names (`request_id`) are accepted, as in ghz.

use std::fmt;

use envoy_types::pb::envoy::config::core::v3 as envoy_core;
use envoy_types::pb::envoy::service::auth::v3 as envoy_auth;
use envoy_types::pb::google::protobuf as envoy_pb;
use pdp_proto::v1 as pb;
use serde_json::{Map, Value};

/// The methods pdp-loadtest calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `pdp.v1.AuthorizationService/Check`.
    Check,
    /// `pdp.v1.AuthorizationService/CheckBatch`.
    CheckBatch,
    /// `envoy.service.auth.v3.Authorization/Check` (Envoy ext_authz).
    ExtAuthzCheck,
}

impl Call {
    /// Every call, by its fully qualified name.
    pub const ALL: [Call; 3] = [Call::Check, Call::CheckBatch, Call::ExtAuthzCheck];

    /// Parses ghz's `package.Service.Method` or `package.Service/Method` (a leading `/` is
    /// allowed).
    pub fn parse(name: &str) -> Option<Call> {
        let name = name.trim().trim_start_matches('/');
        let (service, method) = name.rsplit_once(['/', '.'])?;
        Call::ALL
            .into_iter()
            .find(|c| c.service() == service && c.method() == method)
    }

    /// The fully qualified service name.
    pub fn service(self) -> &'static str {
        match self {
            Call::Check | Call::CheckBatch => "pdp.v1.AuthorizationService",
            Call::ExtAuthzCheck => "envoy.service.auth.v3.Authorization",
        }
    }

    /// The method name.
    pub fn method(self) -> &'static str {
        match self {
            Call::Check | Call::ExtAuthzCheck => "Check",
            Call::CheckBatch => "CheckBatch",
        }
    }

    /// The names ghz's call data gives the method.
    pub fn names(self) -> super::template::MethodNames {
        let service = self.service();
        let (input, output) = match self {
            Call::Check | Call::ExtAuthzCheck => ("CheckRequest", "CheckResponse"),
            Call::CheckBatch => ("CheckBatchRequest", "CheckBatchResponse"),
        };
        super::template::MethodNames {
            fully_qualified: format!("{service}.{}", self.method()),
            method: self.method().to_owned(),
            service: service.rsplit('.').next().unwrap_or(service).to_owned(),
            input: input.to_owned(),
            output: output.to_owned(),
        }
    }

    /// Converts one JSON request (proto3 JSON mapping) into this call's request message.
    pub fn message(self, json: Value) -> Result<Message, DataError> {
        let at = At::root();
        Ok(match self {
            Call::Check => Message::Check(check_request(json, &at)?),
            Call::CheckBatch => Message::CheckBatch(check_batch_request(json, &at)?),
            Call::ExtAuthzCheck => Message::ExtAuthz(Box::new(envoy_check_request(json, &at)?)),
        })
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.service(), self.method())
    }
}

/// A request message, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// For [`Call::Check`].
    Check(pb::CheckRequest),
    /// For [`Call::CheckBatch`].
    CheckBatch(pb::CheckBatchRequest),
    /// For [`Call::ExtAuthzCheck`] (boxed: Envoy's request type is large).
    ExtAuthz(Box<envoy_auth::CheckRequest>),
}

/// JSON data that does not make a request message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{path}`: {problem}")]
pub struct DataError {
    /// Where, e.g. `subject.roles[1]` (empty: the message itself).
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

/// A position in the JSON, formatted only when there is an error to report.
#[derive(Debug, Clone, Copy)]
struct At<'a> {
    parent: Option<&'a At<'a>>,
    name: &'a str,
    index: Option<usize>,
}

impl<'a> At<'a> {
    fn root() -> At<'static> {
        At {
            parent: None,
            name: "",
            index: None,
        }
    }

    fn field(&'a self, name: &'a str) -> At<'a> {
        At {
            parent: Some(self),
            name,
            index: None,
        }
    }

    fn item(&'a self, index: usize) -> At<'a> {
        At {
            parent: Some(self),
            name: "",
            index: Some(index),
        }
    }

    fn path(&self) -> String {
        let mut parts = Vec::new();
        let mut at = Some(self);
        while let Some(a) = at {
            match a.index {
                Some(i) => parts.push(format!("[{i}]")),
                None if !a.name.is_empty() => parts.push(a.name.to_owned()),
                None => {}
            }
            at = a.parent;
        }
        parts.reverse();
        let mut out = String::new();
        for p in parts {
            if !out.is_empty() && !p.starts_with('[') {
                out.push('.');
            }
            out.push_str(&p);
        }
        if out.is_empty() {
            out.push_str("(the message)");
        }
        out
    }

    fn err(&self, problem: impl Into<String>) -> DataError {
        DataError {
            path: self.path(),
            problem: problem.into(),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object(v: Value, at: &At<'_>) -> Result<Map<String, Value>, DataError> {
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(at.err(format!("expected an object, got {}", kind(&other)))),
    }
}

/// An unknown field: names the fields the message has.
fn unknown(at: &At<'_>, name: &str, known: &[&str]) -> DataError {
    at.field(name).err(format!(
        "unknown field (this message has: {})",
        known.join(", ")
    ))
}

fn unsupported(at: &At<'_>, name: &str) -> DataError {
    at.field(name)
        .err("this field is not supported by pdp-loadtest's JSON conversion")
}

fn string(v: Value, at: &At<'_>) -> Result<String, DataError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Null => Ok(String::new()),
        other => Err(at.err(format!("expected a string, got {}", kind(&other)))),
    }
}

fn strings(v: Value, at: &At<'_>) -> Result<Vec<String>, DataError> {
    match v {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| string(v, &at.item(i)))
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(at.err(format!(
            "expected an array of strings, got {}",
            kind(&other)
        ))),
    }
}

fn string_map<M: FromIterator<(String, String)>>(v: Value, at: &At<'_>) -> Result<M, DataError> {
    object(v, at)?
        .into_iter()
        .map(|(k, v)| {
            let s = string(v, &at.field(&k))?;
            Ok((k, s))
        })
        .collect()
}

fn integer(v: Value, at: &At<'_>) -> Result<i64, DataError> {
    match &v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Null => Some(0),
        _ => None,
    }
    .ok_or_else(|| at.err(format!("expected an integer, got {}", kind(&v))))
}

fn unsigned(v: Value, at: &At<'_>) -> Result<u32, DataError> {
    let n = integer(v, at)?;
    u32::try_from(n).map_err(|_| at.err(format!("{n} is out of range for uint32")))
}

fn boolean(v: Value, at: &At<'_>) -> Result<bool, DataError> {
    match v {
        Value::Bool(b) => Ok(b),
        Value::Null => Ok(false),
        other => Err(at.err(format!("expected a boolean, got {}", kind(&other)))),
    }
}

/// An enum given by name or by number.
fn enumeration(
    v: Value,
    at: &At<'_>,
    from_name: fn(&str) -> Option<i32>,
    names: &[&str],
) -> Result<i32, DataError> {
    match v {
        Value::String(s) => {
            from_name(&s).ok_or_else(|| at.err(format!("`{s}` is not one of {}", names.join(", "))))
        }
        other => {
            let n = integer(other, at)?;
            i32::try_from(n).map_err(|_| at.err(format!("{n} is out of range for an enum")))
        }
    }
}

pdp_proto::json_to_protobuf_value!(fn pdp_value, prost_types);
pdp_proto::json_to_protobuf_value!(fn envoy_value, envoy_pb);

/// A `google.protobuf.Struct` from any JSON object.
fn pdp_struct(v: Value, at: &At<'_>) -> Result<prost_types::Struct, DataError> {
    Ok(prost_types::Struct {
        fields: object(v, at)?
            .into_iter()
            .map(|(k, v)| (k, pdp_value(&v)))
            .collect(),
    })
}

/// Envoy's `google.protobuf.Struct` from any JSON object.
fn envoy_struct(v: Value, at: &At<'_>) -> Result<envoy_pb::Struct, DataError> {
    Ok(envoy_pb::Struct {
        fields: object(v, at)?
            .into_iter()
            .map(|(k, v)| (k, envoy_value(&v)))
            .collect(),
    })
}

fn optional<T>(
    v: Value,
    at: &At<'_>,
    f: impl FnOnce(Value, &At<'_>) -> Result<T, DataError>,
) -> Result<Option<T>, DataError> {
    match v {
        Value::Null => Ok(None),
        v => f(v, at).map(Some),
    }
}

// ---- pdp.v1 ----

const CHECK_FIELDS: &[&str] = &["subject", "action", "resource", "context", "requestId"];

fn check_request(v: Value, at: &At<'_>) -> Result<pb::CheckRequest, DataError> {
    let mut m = pb::CheckRequest::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "subject" => m.subject = optional(v, &f, subject)?,
            "action" => m.action = string(v, &f)?,
            "resource" => m.resource = optional(v, &f, resource)?,
            "context" => m.context = optional(v, &f, pdp_struct)?,
            "requestId" | "request_id" => m.request_id = string(v, &f)?,
            _ => return Err(unknown(at, &k, CHECK_FIELDS)),
        }
    }
    Ok(m)
}

const SUBJECT_FIELDS: &[&str] = &["id", "token", "roles", "tags", "sessionId", "deviceId"];

fn subject(v: Value, at: &At<'_>) -> Result<pb::Subject, DataError> {
    let mut m = pb::Subject::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "id" => m.id = string(v, &f)?,
            "token" => m.token = string(v, &f)?,
            "roles" => m.roles = strings(v, &f)?,
            "tags" => m.tags = string_map(v, &f)?,
            "sessionId" | "session_id" => m.session_id = string(v, &f)?,
            "deviceId" | "device_id" => m.device_id = string(v, &f)?,
            _ => return Err(unknown(at, &k, SUBJECT_FIELDS)),
        }
    }
    Ok(m)
}

const RESOURCE_FIELDS: &[&str] = &["id", "type", "tags"];

fn resource(v: Value, at: &At<'_>) -> Result<pb::Resource, DataError> {
    let mut m = pb::Resource::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "id" => m.id = string(v, &f)?,
            "type" => m.r#type = string(v, &f)?,
            "tags" => m.tags = string_map(v, &f)?,
            _ => return Err(unknown(at, &k, RESOURCE_FIELDS)),
        }
    }
    Ok(m)
}

const BATCH_FIELDS: &[&str] = &[
    "subject",
    "action",
    "resource",
    "context",
    "items",
    "semantic",
    "requestId",
];
const BATCH_SEMANTICS: &[&str] = &[
    "BATCH_SEMANTIC_EXECUTE_ALL",
    "BATCH_SEMANTIC_DENY_ON_FIRST_DENY",
    "BATCH_SEMANTIC_PERMIT_ON_FIRST_PERMIT",
];

fn check_batch_request(v: Value, at: &At<'_>) -> Result<pb::CheckBatchRequest, DataError> {
    let mut m = pb::CheckBatchRequest::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "subject" => m.subject = optional(v, &f, subject)?,
            "action" => m.action = string(v, &f)?,
            "resource" => m.resource = optional(v, &f, resource)?,
            "context" => m.context = optional(v, &f, pdp_struct)?,
            "items" => {
                m.items = match v {
                    Value::Array(items) => items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| batch_item(v, &f.item(i)))
                        .collect::<Result<_, _>>()?,
                    Value::Null => Vec::new(),
                    other => return Err(f.err(format!("expected an array, got {}", kind(&other)))),
                }
            }
            "semantic" => {
                m.semantic = enumeration(
                    v,
                    &f,
                    |s| pb::BatchSemantic::from_str_name(s).map(|e| e as i32),
                    BATCH_SEMANTICS,
                )?
            }
            "requestId" | "request_id" => m.request_id = string(v, &f)?,
            _ => return Err(unknown(at, &k, BATCH_FIELDS)),
        }
    }
    Ok(m)
}

const ITEM_FIELDS: &[&str] = &["subject", "action", "resource", "context"];

fn batch_item(v: Value, at: &At<'_>) -> Result<pb::CheckBatchItem, DataError> {
    let mut m = pb::CheckBatchItem::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "subject" => m.subject = optional(v, &f, subject)?,
            "action" => m.action = string(v, &f)?,
            "resource" => m.resource = optional(v, &f, resource)?,
            "context" => m.context = optional(v, &f, pdp_struct)?,
            _ => return Err(unknown(at, &k, ITEM_FIELDS)),
        }
    }
    Ok(m)
}

// ---- envoy.service.auth.v3 ----

fn envoy_check_request(v: Value, at: &At<'_>) -> Result<envoy_auth::CheckRequest, DataError> {
    let mut m = envoy_auth::CheckRequest::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "attributes" => m.attributes = optional(v, &f, attribute_context)?,
            _ => return Err(unknown(at, &k, &["attributes"])),
        }
    }
    Ok(m)
}

const ATTRIBUTE_FIELDS: &[&str] = &[
    "source",
    "destination",
    "request",
    "contextExtensions",
    "metadataContext",
    "routeMetadataContext",
    "tlsSession",
];

fn attribute_context(v: Value, at: &At<'_>) -> Result<envoy_auth::AttributeContext, DataError> {
    use envoy_auth::attribute_context::TlsSession;
    let mut m = envoy_auth::AttributeContext::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "source" => m.source = optional(v, &f, peer)?,
            "destination" => m.destination = optional(v, &f, peer)?,
            "request" => m.request = optional(v, &f, request)?,
            "contextExtensions" | "context_extensions" => m.context_extensions = string_map(v, &f)?,
            "metadataContext" | "metadata_context" => {
                m.metadata_context = optional(v, &f, metadata)?
            }
            "routeMetadataContext" | "route_metadata_context" => {
                m.route_metadata_context = optional(v, &f, metadata)?
            }
            "tlsSession" | "tls_session" => {
                m.tls_session = optional(v, &f, |v, at| {
                    let mut s = TlsSession::default();
                    for (k, v) in object(v, at)? {
                        match k.as_str() {
                            "sni" => s.sni = string(v, &at.field(&k))?,
                            _ => return Err(unknown(at, &k, &["sni"])),
                        }
                    }
                    Ok(s)
                })?
            }
            _ => return Err(unknown(at, &k, ATTRIBUTE_FIELDS)),
        }
    }
    Ok(m)
}

fn metadata(v: Value, at: &At<'_>) -> Result<envoy_core::Metadata, DataError> {
    let mut m = envoy_core::Metadata::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "filterMetadata" | "filter_metadata" => {
                for (ns, s) in object(v, &f)? {
                    let s = envoy_struct(s, &f.field(&ns))?;
                    m.filter_metadata.insert(ns, s);
                }
            }
            "typedFilterMetadata" | "typed_filter_metadata" => return Err(unsupported(at, &k)),
            _ => return Err(unknown(at, &k, &["filterMetadata", "typedFilterMetadata"])),
        }
    }
    Ok(m)
}

const PEER_FIELDS: &[&str] = &["address", "service", "labels", "principal", "certificate"];

fn peer(v: Value, at: &At<'_>) -> Result<envoy_auth::attribute_context::Peer, DataError> {
    let mut m = envoy_auth::attribute_context::Peer::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "address" => m.address = optional(v, &f, address)?,
            "service" => m.service = string(v, &f)?,
            "labels" => m.labels = string_map(v, &f)?,
            "principal" => m.principal = string(v, &f)?,
            "certificate" => m.certificate = string(v, &f)?,
            _ => return Err(unknown(at, &k, PEER_FIELDS)),
        }
    }
    Ok(m)
}

fn address(v: Value, at: &At<'_>) -> Result<envoy_core::Address, DataError> {
    use envoy_core::address::Address as A;
    let mut m = envoy_core::Address::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        let a = match k.as_str() {
            "socketAddress" | "socket_address" => A::SocketAddress(socket_address(v, &f)?),
            "pipe" => {
                let mut p = envoy_core::Pipe::default();
                for (k, v) in object(v, &f)? {
                    let g = f.field(&k);
                    match k.as_str() {
                        "path" => p.path = string(v, &g)?,
                        "mode" => p.mode = unsigned(v, &g)?,
                        _ => return Err(unknown(&f, &k, &["path", "mode"])),
                    }
                }
                A::Pipe(p)
            }
            "envoyInternalAddress" | "envoy_internal_address" => return Err(unsupported(at, &k)),
            _ => {
                return Err(unknown(
                    at,
                    &k,
                    &["socketAddress", "pipe", "envoyInternalAddress"],
                ))
            }
        };
        if m.address.is_some() {
            return Err(f.err("only one of socketAddress, pipe may be set"));
        }
        m.address = Some(a);
    }
    Ok(m)
}

const SOCKET_FIELDS: &[&str] = &[
    "protocol",
    "address",
    "portValue",
    "namedPort",
    "resolverName",
    "ipv4Compat",
];

fn socket_address(v: Value, at: &At<'_>) -> Result<envoy_core::SocketAddress, DataError> {
    use envoy_core::socket_address::{PortSpecifier, Protocol};
    let mut m = envoy_core::SocketAddress::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "protocol" => {
                m.protocol = enumeration(
                    v,
                    &f,
                    |s| Protocol::from_str_name(s).map(|p| p as i32),
                    &["TCP", "UDP"],
                )?
            }
            "address" => m.address = string(v, &f)?,
            "portValue" | "port_value" => {
                m.port_specifier = Some(PortSpecifier::PortValue(unsigned(v, &f)?))
            }
            "namedPort" | "named_port" => {
                m.port_specifier = Some(PortSpecifier::NamedPort(string(v, &f)?))
            }
            "resolverName" | "resolver_name" => m.resolver_name = string(v, &f)?,
            "ipv4Compat" | "ipv4_compat" => m.ipv4_compat = boolean(v, &f)?,
            _ => return Err(unknown(at, &k, SOCKET_FIELDS)),
        }
    }
    Ok(m)
}

fn request(v: Value, at: &At<'_>) -> Result<envoy_auth::attribute_context::Request, DataError> {
    let mut m = envoy_auth::attribute_context::Request::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "time" => m.time = optional(v, &f, timestamp)?,
            "http" => m.http = optional(v, &f, http_request)?,
            _ => return Err(unknown(at, &k, &["time", "http"])),
        }
    }
    Ok(m)
}

fn timestamp(v: Value, at: &At<'_>) -> Result<envoy_pb::Timestamp, DataError> {
    let s = string(v, at)?;
    let t = chrono::DateTime::parse_from_rfc3339(&s)
        .map_err(|e| at.err(format!("`{s}` is not an RFC 3339 timestamp: {e}")))?;
    Ok(envoy_pb::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

const HTTP_FIELDS: &[&str] = &[
    "id", "method", "headers", "path", "host", "scheme", "query", "fragment", "size", "protocol",
    "body",
];

fn http_request(
    v: Value,
    at: &At<'_>,
) -> Result<envoy_auth::attribute_context::HttpRequest, DataError> {
    let mut m = envoy_auth::attribute_context::HttpRequest::default();
    for (k, v) in object(v, at)? {
        let f = at.field(&k);
        match k.as_str() {
            "id" => m.id = string(v, &f)?,
            "method" => m.method = string(v, &f)?,
            "headers" => m.headers = string_map(v, &f)?,
            "path" => m.path = string(v, &f)?,
            "host" => m.host = string(v, &f)?,
            "scheme" => m.scheme = string(v, &f)?,
            "query" => m.query = string(v, &f)?,
            "fragment" => m.fragment = string(v, &f)?,
            "size" => m.size = integer(v, &f)?,
            "protocol" => m.protocol = string(v, &f)?,
            "body" => m.body = string(v, &f)?,
            "headerMap" | "header_map" | "rawBody" | "raw_body" => return Err(unsupported(at, &k)),
            _ => return Err(unknown(at, &k, HTTP_FIELDS)),
        }
    }
    Ok(m)
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
    fn call_names_parse_in_both_ghz_forms() {
        assert_eq!(
            Call::parse("pdp.v1.AuthorizationService.Check"),
            Some(Call::Check)
        );
        assert_eq!(
            Call::parse("pdp.v1.AuthorizationService/CheckBatch"),
            Some(Call::CheckBatch)
        );
        assert_eq!(
            Call::parse("/envoy.service.auth.v3.Authorization/Check"),
            Some(Call::ExtAuthzCheck)
        );
        assert_eq!(Call::parse("pdp.v1.AdminService.Status"), None);
        assert_eq!(Call::Check.names().service, "AuthorizationService");
    }

    #[test]
    fn the_readme_request_converts_field_by_field() {
        let m = Call::Check
            .message(json!({
                "subject": {"id": "alice", "roles": ["ApplicationRole"], "tags": {"team": "data"}},
                "action": "s3:GetObject",
                "resource": {"id": "arn:aws:s3:::my-bucket/data/report.csv", "type": "s3:object",
                             "tags": {"Environment": "production"}},
                "context": {"aws:SourceIp": "10.1.2.3", "aws:MultiFactorAuthPresent": true,
                            "aws:RequestTag/Environment": "production"},
                "request_id": "r1"
            }))
            .unwrap();
        let mut want = crate::readme_request();
        want.request_id = "r1".into();
        assert_eq!(m, Message::Check(want));
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let e = Call::Check
            .message(json!({"subject": {"id": "a", "rolez": []}}))
            .unwrap_err();
        assert_eq!(e.path, "subject.rolez");
        assert!(e.problem.contains("unknown field"), "{e}");
        let e = Call::CheckBatch
            .message(json!({"items": [{"action": "a"}, {"action": 3}]}))
            .unwrap_err();
        assert_eq!(e.path, "items[1].action");
        let e = Call::CheckBatch
            .message(json!({"semantic": "NOPE"}))
            .unwrap_err();
        assert!(e.problem.contains("BATCH_SEMANTIC_EXECUTE_ALL"), "{e}");
    }

    #[test]
    fn ext_authz_requests_convert_with_camel_case_and_snake_case_names() {
        let m = Call::ExtAuthzCheck
            .message(json!({"attributes": {
                "source": {"address": {"socketAddress": {"address": "10.1.2.3", "portValue": 41000}}},
                "request": {"http": {"method": "GET", "host": "api.example.com", "path": "/data/x",
                                     "headers": {"x-tenant": "acme"}}},
                "metadata_context": {"filterMetadata": {"envoy.filters.http.jwt_authn":
                    {"jwt_payload": {"sub": "alice", "roles": ["ApplicationRole"]}}}}
            }}))
            .unwrap();
        let Message::ExtAuthz(r) = m else { panic!() };
        let a = r.attributes.unwrap();
        let http = a.request.unwrap().http.unwrap();
        assert_eq!(http.path, "/data/x");
        assert_eq!(
            http.headers.get("x-tenant").map(String::as_str),
            Some("acme")
        );
        assert!(a
            .metadata_context
            .unwrap()
            .filter_metadata
            .contains_key("envoy.filters.http.jwt_authn"));
        let e = Call::ExtAuthzCheck
            .message(json!({"attributes": {"request": {"http": {"rawBody": "eA=="}}}}))
            .unwrap_err();
        assert!(e.problem.contains("not supported"), "{e}");
    }
}
