//! What the real `pdp serve` answers at the edges of its gRPC API: requests it cannot read
//! (raw frames sent with a byte codec), decision ids, an untrusted caller's ignored identity,
//! and the field paths of refused signals.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use bytes::{Buf, BufMut};
use pb::authorization_service_client::AuthorizationServiceClient;
use pdp_proto::v1 as pb;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

mod common;

use common::{channel, start_pdp};

/// Sends and receives message bytes as they are, so that a test can send bytes that are
/// not the method's message.
#[derive(Debug, Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

/// Calls `path` with `message` as the request message's bytes.
async fn call_raw(
    channel: tonic::transport::Channel,
    path: &'static str,
    message: Vec<u8>,
) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(message),
        http::uri::PathAndQuery::from_static(path),
        Raw,
    )
    .await
    .map(tonic::Response::into_inner)
}

const CHECK: &str = "/pdp.v1.AuthorizationService/Check";
const CHECK_BATCH: &str = "/pdp.v1.AuthorizationService/CheckBatch";
const ENVOY_CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

#[tokio::test]
async fn malformed_protobuf_is_an_invalid_argument() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let c = channel(&server).await;
    // Field 1 (`subject`), length-delimited, 127 bytes announced and 2 sent; then a field
    // with an invalid wire type (7).
    for bytes in [vec![0x0a, 0x7f, 0x01, 0x02], vec![0x0f]] {
        for path in [CHECK, CHECK_BATCH, ENVOY_CHECK] {
            let e = call_raw(c.clone(), path, bytes.clone()).await.unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument, "{path}: {e:?}");
            assert!(
                e.message().contains("not valid protobuf"),
                "{path}: {}",
                e.message()
            );
        }
    }
    // The well-formed request still decides.
    let mut client = AuthorizationServiceClient::new(c);
    let r = client
        .check(common::readme_request(Some(true)))
        .await
        .unwrap();
    assert_eq!(r.into_inner().decision(), pb::Decision::Allow);
}

#[tokio::test]
async fn an_oversize_message_is_resource_exhausted() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let c = channel(&server).await;
    let big = vec![0u8; pdp_server::serve::MAX_MESSAGE_BYTES + 1];
    for path in [CHECK, ENVOY_CHECK] {
        let e = call_raw(c.clone(), path, big.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted, "{path}: {e:?}");
        assert!(e.message().contains("too large"), "{path}: {}", e.message());
    }
}

#[tokio::test]
async fn decision_ids_are_uuid_v7() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let mut client = AuthorizationServiceClient::new(channel(&server).await);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = client
            .check(common::readme_request(Some(true)))
            .await
            .unwrap()
            .into_inner();
        ids.push(r.decision_id);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for id in &ids {
        let uuid = uuid::Uuid::parse_str(id).unwrap();
        assert_eq!(uuid.get_version_num(), 7, "{id}");
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
        let (secs, _) = uuid.get_timestamp().unwrap().to_unix();
        assert!(secs.abs_diff(now) < 60, "{id}: timestamp {secs}, now {now}");
    }
    assert!(ids[0] != ids[1] && ids[1] != ids[2], "{ids:?}");
}

#[tokio::test]
async fn an_untrusted_callers_ignored_identity_is_named_in_the_message() {
    let untrusted = start_pdp(["--trust-loopback", "false"], &[]);
    let mut client = AuthorizationServiceClient::new(channel(&untrusted).await);
    let r = client
        .check(common::readme_request(Some(true)))
        .await
        .unwrap()
        .into_inner();
    // Without the asserted MFA, `require-mfa` denies.
    assert_eq!(r.decision(), pb::Decision::Deny);
    for named in [
        "not trusted",
        "`subject.id`",
        "`subject.roles`",
        "context key `aws:MultiFactorAuthPresent`",
    ] {
        assert!(r.message.contains(named), "`{named}` not in: {}", r.message);
    }
    assert!(!r.message.contains("subject.tags"), "{}", r.message);

    // Each batch item says so too, including one answered from the decision cache.
    let request = common::readme_request(Some(true));
    let item = || pb::CheckBatchItem {
        resource: request.resource.clone(),
        ..Default::default()
    };
    let batch = client
        .check_batch(pb::CheckBatchRequest {
            subject: request.subject.clone(),
            action: request.action.clone(),
            context: request.context.clone(),
            items: vec![item(), item()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.responses.len(), 2);
    for r in &batch.responses {
        assert!(r.message.contains("`subject.roles`"), "{}", r.message);
    }

    // Nothing asserted, nothing said; a trusted caller's identity counts, and nothing is said.
    let mut anonymous = common::readme_request(None);
    anonymous.subject = None;
    let r = client.check(anonymous).await.unwrap().into_inner();
    assert_eq!(r.message, "");
    let trusted = start_pdp::<[&str; 0], _>([], &[]);
    let mut client = AuthorizationServiceClient::new(channel(&trusted).await);
    let r = client
        .check(common::readme_request(Some(true)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (r.decision(), r.message.as_str()),
        (pb::Decision::Allow, "")
    );
}

#[tokio::test]
async fn refused_signals_name_the_field_or_the_signal() {
    let server = start_pdp::<[&str; 0], _>([], &[]);
    let mut client = pb::signal_service_client::SignalServiceClient::new(channel(&server).await);
    let good = pb::Signal {
        r#type: pb::SignalType::CredentialChange as i32,
        subject: "alice".into(),
        ..Default::default()
    };
    let publish = |bad: pb::Signal| pb::PublishRequest {
        signals: vec![good.clone(), bad],
    };
    let long = pb::Signal {
        subject: "x".repeat(2000),
        ..good.clone()
    };
    let e = client.publish(publish(long)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("`signals[1].subject`: 2000 bytes"),
        "{}",
        e.message()
    );
    let no_device = pb::Signal {
        r#type: pb::SignalType::DeviceComplianceChange as i32,
        compliance: "compliant".into(),
        ..Default::default()
    };
    let e = client.publish(publish(no_device)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(
        e.message().starts_with("`signals[1]`: a `"),
        "{}",
        e.message()
    );
}
