//! Load-test tools: the ghz-compatible load generator ([`ghz`], the `pdp-loadtest` binary),
//! the request every load test sends (the README's example), framed the way gRPC puts it on
//! the wire, and the published report ([`results`]).

pub mod ghz;
pub mod results;
pub mod token;

use pdp_proto::v1 as pb;
use prost_types::value::Kind;

/// The README's example request (allowed by the example policies).
pub fn readme_request() -> pb::CheckRequest {
    let s = |v: &str| prost_types::Value {
        kind: Some(Kind::StringValue(v.into())),
    };
    let mut fields = std::collections::BTreeMap::new();
    fields.insert("aws:SourceIp".to_owned(), s("10.1.2.3"));
    fields.insert(
        "aws:MultiFactorAuthPresent".to_owned(),
        prost_types::Value {
            kind: Some(Kind::BoolValue(true)),
        },
    );
    fields.insert("aws:RequestTag/Environment".to_owned(), s("production"));
    pb::CheckRequest {
        subject: Some(pb::Subject {
            id: "alice".into(),
            roles: vec!["ApplicationRole".into()],
            tags: [("team".to_owned(), "data".to_owned())]
                .into_iter()
                .collect(),
            ..Default::default()
        }),
        action: "s3:GetObject".into(),
        resource: Some(pb::Resource {
            id: "arn:aws:s3:::my-bucket/data/report.csv".into(),
            r#type: "s3:object".into(),
            tags: [("Environment".to_owned(), "production".to_owned())]
                .into_iter()
                .collect(),
        }),
        context: Some(prost_types::Struct { fields }),
        request_id: String::new(),
        min_signal_generation: 0,
        explain: false,
    }
}

/// A message as one gRPC data frame: uncompressed flag, big-endian length, bytes.
pub fn grpc_frame(message: &impl prost::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(0);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    out
}
