//! Continuous verification end to end: signals published over gRPC and pushed as signed SETs
//! change the very next decision of a real `pdp serve`, cached or not; Watch streams carry
//! the invalidations.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use pdp_proto::v1 as pb;
use prost_types::value::Kind;
use tonic::transport::Channel;

mod common;

use common::{
    channel, check, copy_policies, fixture, readme_request, signals_status, start_pdp, Server,
};

async fn publish(
    c: &Channel,
    signals: Vec<pb::Signal>,
) -> Result<pb::PublishResponse, tonic::Status> {
    pb::signal_service_client::SignalServiceClient::new(c.clone())
        .publish(pb::PublishRequest { signals })
        .await
        .map(tonic::Response::into_inner)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn signal(kind: pb::SignalType, subject: &str) -> pb::Signal {
    pb::Signal {
        r#type: kind as i32,
        subject: subject.into(),
        ..Default::default()
    }
}

/// The README request (allowed), in session `session` from device `device`, with the
/// token issued at `issued` when given.
fn request(session: &str, device: &str, issued: Option<i64>) -> pb::CheckRequest {
    let mut r = readme_request(Some(true));
    let subject = r.subject.as_mut().unwrap();
    subject.session_id = session.into();
    subject.device_id = device.into();
    if let Some(t) = issued {
        let at = chrono::DateTime::from_timestamp(t, 0).unwrap().to_rfc3339();
        r.context.as_mut().unwrap().fields.insert(
            "aws:TokenIssueTime".into(),
            prost_types::Value {
                kind: Some(Kind::StringValue(at)),
            },
        );
    }
    r
}

fn decided(r: &pb::CheckResponse) -> (pb::Decision, pb::Reason) {
    (r.decision(), r.reason())
}

const ALLOWED: (pb::Decision, pb::Reason) = (pb::Decision::Allow, pb::Reason::Allowed);

#[tokio::test]
async fn a_revoked_session_is_denied_on_the_next_call_even_when_its_allow_was_cached() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let c = channel(&server).await;
    let first = check(&c, request("s-1", "", None)).await;
    assert_eq!(decided(&first), ALLOWED);
    assert!(first.ttl.unwrap().seconds > 0, "the allow is cached");

    let mut revoke = pb::Signal {
        session_id: "s-1".into(),
        ..signal(pb::SignalType::SessionRevoked, "")
    };
    revoke.reason = "user logged out everywhere".into();
    let published = publish(&c, vec![revoke]).await.unwrap();
    assert_eq!(published.applied, 1);

    let after = check(&c, request("s-1", "", None)).await;
    assert_eq!(
        decided(&after),
        (pb::Decision::Deny, pb::Reason::SessionRevoked)
    );
    assert!(after.message.contains("revoked"), "{}", after.message);
    assert_eq!(after.ttl.unwrap().seconds, 0, "guard denies are not cached");
    // Another session of the same subject is untouched.
    assert_eq!(decided(&check(&c, request("s-2", "", None)).await), ALLOWED);
}

#[tokio::test]
async fn subject_wide_revocations_and_credential_changes_deny_older_tokens_only() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let c = channel(&server).await;
    let t = now();
    let revoke = pb::Signal {
        event_time: t - 100,
        ..signal(pb::SignalType::SessionRevoked, "alice")
    };
    publish(&c, vec![revoke]).await.unwrap();
    let older = check(&c, request("", "", Some(t - 200))).await;
    assert_eq!(decided(&older).1, pb::Reason::SessionRevoked);
    assert_eq!(
        decided(&check(&c, request("", "", Some(t - 10))).await),
        ALLOWED
    );
    // A session whose start is unknown cannot be shown to postdate the revocation.
    let unknown = check(&c, request("", "", None)).await;
    assert_eq!(decided(&unknown).1, pb::Reason::SessionRevoked);

    let change = pb::Signal {
        event_time: t - 5,
        ..signal(pb::SignalType::CredentialChange, "alice")
    };
    publish(&c, vec![change]).await.unwrap();
    let before = check(&c, request("", "", Some(t - 10))).await;
    assert_eq!(
        decided(&before),
        (pb::Decision::Deny, pb::Reason::CredentialChanged)
    );
    assert_eq!(decided(&check(&c, request("", "", Some(t))).await), ALLOWED);
}

#[tokio::test]
async fn risk_and_device_signals_reach_policies_and_callers_cannot_forge_them() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let c = channel(&server).await;
    // A caller's own pdp: facts count for nothing, even from a trusted caller.
    let mut forged = request("", "d-1", None);
    for (k, v) in [
        ("pdp:RiskLevel", Kind::StringValue("high".into())),
        ("pdp:DeviceCompliant", Kind::BoolValue(false)),
    ] {
        forged
            .context
            .as_mut()
            .unwrap()
            .fields
            .insert(k.into(), prost_types::Value { kind: Some(v) });
    }
    let cached = check(&c, forged.clone()).await;
    assert_eq!(decided(&cached), ALLOWED);

    let device = pb::Signal {
        device_id: "d-1".into(),
        compliance: "not-compliant".into(),
        ..signal(pb::SignalType::DeviceComplianceChange, "")
    };
    publish(&c, vec![device]).await.unwrap();
    let denied = check(&c, forged.clone()).await;
    assert_eq!(decided(&denied).1, pb::Reason::ExplicitDeny);
    assert_eq!(denied.determining[0].sid, "DenyNonCompliantDevice");
    assert_eq!(decided(&check(&c, request("", "d-2", None)).await), ALLOWED);

    let risk = |level: &str| pb::Signal {
        risk_level: level.into(),
        ..signal(pb::SignalType::RiskLevelChange, "alice")
    };
    publish(&c, vec![risk("HIGH")]).await.unwrap();
    let high = check(&c, request("", "", None)).await;
    assert_eq!(high.determining[0].sid, "DenyHighRisk");
    publish(&c, vec![risk("low")]).await.unwrap();
    assert_eq!(decided(&check(&c, request("", "", None)).await), ALLOWED);

    let s = signals_status(&c).await;
    assert_eq!((s.store.as_str(), s.subjects, s.devices), ("memory", 1, 1));
    assert_eq!(s.applied, 3);
}

#[tokio::test]
async fn bad_signals_are_refused_whole_and_change_nothing() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let c = channel(&server).await;
    let good = signal(pb::SignalType::CredentialChange, "alice");
    let cases = [
        (pb::Signal::default(), "type"),
        (
            signal(pb::SignalType::DeviceComplianceChange, "alice"),
            "device",
        ),
        (
            pb::Signal {
                risk_level: "severe".into(),
                ..signal(pb::SignalType::RiskLevelChange, "alice")
            },
            "risk_level",
        ),
        (
            pb::Signal {
                event_time: now() + 3600,
                ..good.clone()
            },
            "future",
        ),
    ];
    for (bad, fragment) in cases {
        let e = publish(&c, vec![good.clone(), bad]).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("signals[1]"), "{}", e.message());
        assert!(e.message().contains(fragment), "{}", e.message());
    }
    assert_eq!(signals_status(&c).await.applied, 0);
    assert_eq!(decided(&check(&c, request("", "", Some(0))).await), ALLOWED);
}

#[tokio::test]
async fn only_trusted_callers_publish_or_watch() {
    let server = start_pdp(["--trust-loopback", "false"], &[]);
    let c = channel(&server).await;
    let e = publish(&c, vec![signal(pb::SignalType::CredentialChange, "alice")])
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e = pb::signal_service_client::SignalServiceClient::new(c.clone())
        .watch(pb::WatchRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}

async fn next(stream: &mut tonic::Streaming<pb::Invalidation>) -> pb::Invalidation {
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
        .await
        .expect("an invalidation within 5 s")
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn watch_streams_carry_invalidations_and_resume_from_a_cursor() {
    let dir = copy_policies();
    let server = start_pdp(["--policies", dir.path().to_str().unwrap()], &[]);
    let c = channel(&server).await;
    let mut watch = pb::signal_service_client::SignalServiceClient::new(c.clone());
    let mut stream = watch
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = next(&mut stream).await;
    assert!(first.reset, "a stream without a cursor starts with a reset");
    assert!(!first.policy_revision.is_empty());
    let start = first.cursor.clone();

    publish(&c, vec![signal(pb::SignalType::CredentialChange, "alice")])
        .await
        .unwrap();
    let change = next(&mut stream).await;
    assert_eq!((change.subject.as_str(), change.reset), ("alice", false));
    assert_ne!(change.cursor, start);

    // A policy change is an invalidation too.
    let extra = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}}"#;
    std::fs::write(dir.path().join("extra.json"), extra).unwrap();
    let revision = next(&mut stream).await;
    assert!(!revision.policy_revision.is_empty());
    assert_ne!(revision.policy_revision, first.policy_revision);
    drop(stream);

    // Resuming from the first cursor replays both, without a reset.
    let mut resumed = watch
        .watch(pb::WatchRequest {
            cursor: start.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!next(&mut resumed).await.reset);
    assert_eq!(next(&mut resumed).await.subject, "alice");
    assert_eq!(
        next(&mut resumed).await.policy_revision,
        revision.policy_revision
    );
    // A cursor this replica never gave means the client may have missed anything.
    let mut unknown = watch
        .watch(pb::WatchRequest {
            cursor: "0123456789abcdef-1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(next(&mut unknown).await.reset);
    assert_eq!(signals_status(&c).await.watchers, 2);
}

#[tokio::test]
async fn repeated_denies_raise_the_risk_until_the_subject_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pdp.toml");
    std::fs::write(
        &config,
        "[signals.detection]\nenabled = true\nmax_denies = 3\nwindow_secs = 60\nhold_secs = 600\n",
    )
    .unwrap();
    let server = start_pdp(["--config", config.to_str().unwrap()], &[]);
    let c = channel(&server).await;
    assert_eq!(decided(&check(&c, request("", "", None)).await), ALLOWED);
    // Without MFA every request is an explicit deny (the require-mfa guardrail).
    for _ in 0..4 {
        let denied = check(&c, readme_request(Some(false))).await;
        assert_eq!(denied.decision(), pb::Decision::Deny);
    }
    let mut stopped = None;
    for _ in 0..50 {
        let r = check(&c, request("", "", None)).await;
        if r.decision() == pb::Decision::Deny {
            stopped = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stopped = stopped.expect("the raised risk denies alice's allowed request");
    assert_eq!(stopped.determining[0].sid, "DenyHighRisk");
    // Another subject is not affected.
    let mut bob = request("", "", None);
    bob.subject.as_mut().unwrap().id = "bob".into();
    assert_eq!(decided(&check(&c, bob).await), ALLOWED);
}

// ---- SSF push delivery ----

const ISSUER: &str = "https://idp.example.com";
const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";

fn set(key: &str, claims: &serde_json::Value, typ: &str) -> String {
    let pem = std::fs::read(fixture(key)).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    header.typ = Some(typ.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

fn set_claims(jti: &str, aud: &str, events: serde_json::Value) -> serde_json::Value {
    serde_json::json!({ "iss": ISSUER, "aud": aud, "iat": now(), "jti": jti, "events": events })
}

fn session_revoked(session: &str) -> serde_json::Value {
    serde_json::json!({
        format!("{CAEP}session-revoked"): {
            "subject": {
                "format": "complex",
                "user": { "format": "iss_sub", "iss": ISSUER, "sub": "alice" },
                "session": { "format": "opaque", "id": session }
            },
            "event_timestamp": now()
        }
    })
}

/// POSTs `body` to the SSF push endpoint; the status and the body.
fn push(server: &Server, body: &str, content_type: &str) -> (u16, String) {
    common::http(
        &server.http,
        "POST",
        "/ssf/push",
        &[("Content-Type", content_type)],
        body,
    )
}

fn ssf_server() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pdp.toml");
    std::fs::write(
        &config,
        format!(
            "[[signals.transmitters]]\nissuer = \"{ISSUER}\"\naudience = \"https://pdp.example.com\"\njwks = \"{}\"\n",
            fixture("jwks.json")
        ),
    )
    .unwrap();
    let server = start_pdp(["--config", config.to_str().unwrap()], &[]);
    (dir, server)
}

const SET_TYPE: &str = "application/secevent+jwt";

/// A SET whose payload is not JSON (signed, so only the JSON is wrong).
fn malformed_json_set() -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let header = b64(br#"{"alg":"RS256","kid":"rsa-1","typ":"secevent+jwt"}"#);
    let payload = b64(br#"{"iss": "https://idp.example.com", "events": {"#);
    let message = format!("{header}.{payload}");
    let pem = std::fs::read(fixture("rsa.pem")).unwrap();
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
        jsonwebtoken::Algorithm::RS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}
const AUD: &str = "https://pdp.example.com";

#[tokio::test]
async fn a_signed_set_pushed_by_a_transmitter_revokes_the_session() {
    let (_dir, server) = ssf_server();
    let c = channel(&server).await;
    assert_eq!(decided(&check(&c, request("s-9", "", None)).await), ALLOWED);
    let token = set(
        "rsa.pem",
        &set_claims("jti-1", AUD, session_revoked("s-9")),
        "secevent+jwt",
    );
    let (code, body) = push(&server, &token, SET_TYPE);
    assert_eq!(code, 202, "{body}");
    assert_eq!(
        decided(&check(&c, request("s-9", "", None)).await).1,
        pb::Reason::SessionRevoked
    );
    // The verification event is acknowledged and recorded.
    let verification = serde_json::json!({
        "https://schemas.openid.net/secevent/ssf/event-type/verification": { "state": "abc" }
    });
    let token = set(
        "rsa.pem",
        &set_claims("jti-2", AUD, verification),
        "secevent+jwt",
    );
    assert_eq!(push(&server, &token, SET_TYPE).0, 202);
    let s = signals_status(&c).await;
    assert_eq!(
        (s.verifications, s.last_verification_state.as_str()),
        (1, "abc")
    );
}

#[tokio::test]
async fn bad_sets_are_refused_with_the_rfc_error_codes_and_change_nothing() {
    let (_dir, server) = ssf_server();
    let c = channel(&server).await;
    let good = set(
        "rsa.pem",
        &set_claims("jti-ok", AUD, session_revoked("s-1")),
        "secevent+jwt",
    );
    let unknown_event = serde_json::json!({ "https://example.com/event/other": {} });
    let cases: Vec<(String, &str, &str)> = vec![
        (
            set(
                "rsa-other.pem",
                &set_claims("jti-a", AUD, session_revoked("s-1")),
                "secevent+jwt",
            ),
            SET_TYPE,
            "authentication_failed",
        ),
        (
            set(
                "rsa.pem",
                &set_claims("jti-b", "https://elsewhere", session_revoked("s-1")),
                "secevent+jwt",
            ),
            SET_TYPE,
            "invalid_audience",
        ),
        (
            set(
                "rsa.pem",
                &set_claims("jti-c", AUD, unknown_event),
                "secevent+jwt",
            ),
            SET_TYPE,
            "invalid_request",
        ),
        ("{not a jwt".into(), SET_TYPE, "invalid_request"),
        (malformed_json_set(), SET_TYPE, "invalid_request"),
        (good.clone(), "application/json", "invalid_request"),
    ];
    for (body, content_type, code) in cases {
        let (status_code, answer) = push(&server, &body, content_type);
        assert_eq!(status_code, 400, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["err"], code, "{answer}");
        assert!(!answer["description"].as_str().unwrap().is_empty());
    }
    assert_eq!(
        signals_status(&c).await.applied,
        0,
        "nothing refused was applied"
    );
    assert_eq!(push(&server, &good, SET_TYPE).0, 202);
    // The same SET again is a replay.
    let (code, answer) = push(&server, &good, SET_TYPE);
    assert_eq!(code, 400);
    assert!(answer.contains("invalid_request"), "{answer}");
    assert_eq!(signals_status(&c).await.applied, 1);
}

#[tokio::test]
async fn context_keys_of_any_text_are_screened_without_failing() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let c = channel(&server).await;
    // Multibyte characters around the fourth byte, where the `pdp:` prefix is looked for.
    let mut odd = request("", "", None);
    for key in ["xéé", "pdé:x", "日本語キー"] {
        odd.context.as_mut().unwrap().fields.insert(
            key.into(),
            prost_types::Value {
                kind: Some(Kind::StringValue("high".into())),
            },
        );
    }
    assert_eq!(decided(&check(&c, odd).await), ALLOWED);
}

/// oncall-bob stopping an instance: allowed only with the EmergencyRole (break-glass).
fn break_glass(roles: &[&str]) -> pb::CheckRequest {
    let mut r = readme_request(Some(true));
    let subject = r.subject.as_mut().unwrap();
    subject.id = "oncall-bob".into();
    subject.roles = roles.iter().map(|r| (*r).to_owned()).collect();
    r.action = "ec2:StopInstances".into();
    r.resource.as_mut().unwrap().id =
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0abc1234def567890".into();
    r.context.as_mut().unwrap().fields.insert(
        "aws:MultiFactorAuthAge".into(),
        prost_types::Value {
            kind: Some(Kind::NumberValue(600.0)),
        },
    );
    r
}

fn claims_change(subject: &str, roles: &[&str]) -> pb::Signal {
    let list = prost_types::ListValue {
        values: roles
            .iter()
            .map(|r| prost_types::Value {
                kind: Some(Kind::StringValue((*r).to_owned())),
            })
            .collect(),
    };
    pb::Signal {
        claims: Some(prost_types::Struct {
            fields: [(
                "roles".to_owned(),
                prost_types::Value {
                    kind: Some(Kind::ListValue(list)),
                },
            )]
            .into(),
        }),
        ..signal(pb::SignalType::TokenClaimsChange, subject)
    }
}

#[tokio::test]
async fn a_claims_change_narrows_roles_but_adds_none_unless_its_source_is_authoritative() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let c = channel(&server).await;
    let glass = break_glass(&["EmergencyRole"]);
    assert_eq!(decided(&check(&c, glass).await), ALLOWED);
    let without = break_glass(&["MonitoringRole"]);
    assert_eq!(
        decided(&check(&c, without.clone()).await).1,
        pb::Reason::ImplicitDeny
    );

    // A claims change naming a role the subject does not carry does not grant it.
    publish(
        &c,
        vec![claims_change(
            "oncall-bob",
            &["EmergencyRole", "MonitoringRole"],
        )],
    )
    .await
    .unwrap();
    assert_eq!(
        decided(&check(&c, without).await),
        (pb::Decision::Deny, pb::Reason::ImplicitDeny),
        "break-glass is not granted by a claims change"
    );
    // One that leaves a role out removes it.
    assert_eq!(decided(&check(&c, request("", "", None)).await), ALLOWED);
    publish(&c, vec![claims_change("alice", &[])])
        .await
        .unwrap();
    assert_eq!(
        decided(&check(&c, request("", "", None)).await).1,
        pb::Reason::ImplicitDeny,
        "alice no longer holds ApplicationRole"
    );

    // The same claims change pushed by an SSF transmitter (not authoritative by default).
    let (_dir, ssf) = ssf_server();
    let cs = channel(&ssf).await;
    let event = serde_json::json!({
        format!("{CAEP}token-claims-change"): {
            "subject": { "format": "iss_sub", "iss": ISSUER, "sub": "oncall-bob" },
            "claims": { "roles": ["EmergencyRole", "MonitoringRole"] },
            "event_timestamp": now()
        }
    });
    let token = set(
        "rsa.pem",
        &set_claims("jti-claims", AUD, event),
        "secevent+jwt",
    );
    assert_eq!(push(&ssf, &token, SET_TYPE).0, 202);
    assert_eq!(
        decided(&check(&cs, break_glass(&["MonitoringRole"])).await).1,
        pb::Reason::ImplicitDeny
    );
}

#[tokio::test]
async fn an_authoritative_source_of_claims_may_add_roles() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pdp.toml");
    std::fs::write(&config, "[signals]\npublish_claims_authoritative = true\n").unwrap();
    let server = start_pdp(["--config", config.to_str().unwrap()], &[]);
    let c = channel(&server).await;
    publish(&c, vec![claims_change("oncall-bob", &["EmergencyRole"])])
        .await
        .unwrap();
    assert_eq!(
        decided(&check(&c, break_glass(&["MonitoringRole"])).await),
        ALLOWED
    );
}

#[tokio::test]
async fn publish_answers_a_generation_checks_can_require() {
    let server = start_pdp(Vec::<&str>::new(), &[]);
    let c = channel(&server).await;
    let first = publish(&c, vec![signal(pb::SignalType::CredentialChange, "carol")])
        .await
        .unwrap();
    let revoke = pb::Signal {
        session_id: "s-gen".into(),
        ..signal(pb::SignalType::SessionRevoked, "")
    };
    let second = publish(&c, vec![revoke]).await.unwrap();
    assert!(second.generation > first.generation && first.generation > 0);
    let mut r = request("s-gen", "", None);
    r.min_signal_generation = second.generation;
    assert_eq!(
        decided(&check(&c, r.clone()).await).1,
        pb::Reason::SessionRevoked
    );
    // A generation this replica has not reached: denied once the bound passes.
    let mut ahead = request("s-other", "", None);
    ahead.min_signal_generation = second.generation + 1000;
    let started = std::time::Instant::now();
    let behind = check(&c, ahead.clone()).await;
    assert_eq!(
        decided(&behind),
        (pb::Decision::Deny, pb::Reason::SignalsStale)
    );
    assert!(
        behind.message.contains("min_signal_generation"),
        "{}",
        behind.message
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let batch = pb::authorization_service_client::AuthorizationServiceClient::new(c.clone())
        .check_batch(pb::CheckBatchRequest {
            subject: ahead.subject.clone(),
            action: ahead.action.clone(),
            resource: ahead.resource.clone(),
            context: ahead.context.clone(),
            items: vec![pb::CheckBatchItem::default(); 2],
            min_signal_generation: ahead.min_signal_generation,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.responses.len(), 2);
    assert!(batch
        .responses
        .iter()
        .all(|r| r.reason() == pb::Reason::SignalsStale));
    ahead.min_signal_generation = 0;
    assert_eq!(decided(&check(&c, ahead).await), ALLOWED);
}
