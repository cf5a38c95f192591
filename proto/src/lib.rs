//! `pdp-proto`: the PDP's gRPC API, `pdp.v1` (see `proto/pdp/v1/authorization.proto`).
//! Generated code only; conversions to and from the engine's types live in the server.

/// The `pdp.v1` package.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]
pub mod v1 {
    tonic::include_proto!("pdp.v1");
}

/// The encoded file descriptor set of `pdp.v1`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/pdp_descriptor.bin"));

/// The encoded file descriptor set of Envoy's `envoy.service.auth.v3` (ext_authz) and the
/// files it imports, for server reflection (the service itself comes from `envoy-types`).
pub const ENVOY_EXT_AUTHZ_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/envoy_ext_authz_descriptor.bin"));

/// Defines `fn $name(&serde_json::Value) -> $pb::Value`: JSON as a `google.protobuf.Value`
/// of the generated well-known types in module `$pb` (`prost_types`, or envoy-types' own
/// `envoy_types::pb::google::protobuf`, which has the same shape). Numbers become doubles.
/// The caller's crate needs `serde_json`.
///
/// ```
/// pdp_proto::json_to_protobuf_value!(fn to_value, prost_types);
/// let v = to_value(&serde_json::json!({"a": [1, "x", null]}));
/// assert!(matches!(v.kind, Some(prost_types::value::Kind::StructValue(_))));
/// ```
#[macro_export]
macro_rules! json_to_protobuf_value {
    ($vis:vis fn $name:ident, $($pb:ident)::+) => {
        $vis fn $name(v: &serde_json::Value) -> $($pb)::+::Value {
            use $($pb)::+::value::Kind;
            let kind = match v {
                serde_json::Value::Null => Kind::NullValue(0),
                serde_json::Value::Bool(b) => Kind::BoolValue(*b),
                serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
                serde_json::Value::String(s) => Kind::StringValue(s.clone()),
                serde_json::Value::Array(a) => Kind::ListValue($($pb)::+::ListValue {
                    values: a.iter().map($name).collect(),
                }),
                serde_json::Value::Object(m) => Kind::StructValue($($pb)::+::Struct {
                    fields: m.iter().map(|(k, v)| (k.clone(), $name(v))).collect(),
                }),
            };
            $($pb)::+::Value { kind: Some(kind) }
        }
    };
}
