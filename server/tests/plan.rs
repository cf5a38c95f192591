//! `PlanResources` through the real `pdp serve`: the plan as a protobuf tree, the same
//! identity and signal rules as `Check`, and answers that agree with `Check` on resources.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use pb::authorization_service_client::AuthorizationServiceClient;
use pb::resource_expr::Expr as E;
use pdp_proto::v1 as pb;

mod common;

use common::{channel, fixture, rs256_token, start_pdp};

const HOME: &str = r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: "s3:GetObject"
    Resource: "arn:aws:s3:::b/${aws:username}/*"
  - Effect: Deny
    Action: "s3:*"
    Resource: "arn:aws:s3:::b/*/secret*"
  - Effect: Allow
    Action: "docs:Read"
    Resource: "doc:*"
    Condition:
      StringEquals: { "aws:ResourceTag/owner": "${aws:username}" }
"#;

fn policies() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("home.yaml"), HOME).unwrap();
    std::fs::write(
        dir.path().join("bindings.yaml"),
        "roles: { R: { policies: [home] } }",
    )
    .unwrap();
    dir
}

fn subject(id: &str) -> Option<pb::Subject> {
    Some(pb::Subject {
        id: id.into(),
        roles: vec!["R".into()],
        ..Default::default()
    })
}

fn plan_request(subject: Option<pb::Subject>, action: &str) -> pb::PlanResourcesRequest {
    pb::PlanResourcesRequest {
        subject,
        action: action.into(),
        ..Default::default()
    }
}

fn id_like(e: &pb::ResourceExpr) -> &str {
    match &e.expr {
        Some(E::IdLike(g)) => g,
        other => panic!("not id_like: {other:?}"),
    }
}

#[tokio::test]
async fn plans_answer_which_resources_and_agree_with_check() {
    let dir = policies();
    let server = start_pdp(
        [
            "--policies",
            dir.path().to_str().unwrap(),
            "--jwks",
            &fixture("jwks.json"),
        ],
        &[],
    );
    let mut c = AuthorizationServiceClient::new(channel(&server).await);
    let p = c
        .plan_resources(plan_request(subject("alice"), "s3:GetObject"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.kind(), pb::PlanKind::Conditional);
    assert!(!p.policy_revision.is_empty());
    let Some(E::And(and)) = p.condition.as_ref().and_then(|c| c.expr.as_ref()) else {
        panic!("{p:?}");
    };
    assert_eq!(id_like(&and.exprs[0]), "arn:aws:s3:::b/alice/*");
    let Some(E::Not(not)) = &and.exprs[1].expr else {
        panic!("{and:?}");
    };
    assert_eq!(id_like(not), "arn:aws:s3:::b/*/secret*");
    // The plan and Check agree.
    for (resource, allowed) in [
        ("arn:aws:s3:::b/alice/notes", true),
        ("arn:aws:s3:::b/alice/secret.txt", false),
        ("arn:aws:s3:::b/bob/notes", false),
    ] {
        let r = c
            .check(pb::CheckRequest {
                subject: subject("alice"),
                action: "s3:GetObject".into(),
                resource: Some(pb::Resource {
                    id: resource.into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.decision() == pb::Decision::Allow, allowed, "{resource}");
    }

    // A tag condition, its policy variable filled in from the verified token.
    let token = rs256_token(serde_json::json!({ "sub": "tina", "roles": ["R"] }));
    let p = c
        .plan_resources(plan_request(
            Some(pb::Subject {
                token,
                ..Default::default()
            }),
            "docs:Read",
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(E::And(and)) = p.condition.as_ref().and_then(|c| c.expr.as_ref()) else {
        panic!("{p:?}");
    };
    assert_eq!(id_like(&and.exprs[0]), "doc:*");
    let Some(E::Tag(tag)) = &and.exprs[1].expr else {
        panic!("{and:?}");
    };
    assert_eq!(
        (tag.operator.as_str(), tag.key.as_str(), tag.values.clone()),
        (
            "StringEquals",
            "aws:ResourceTag/owner",
            vec!["tina".to_owned()]
        )
    );

    // Nothing for an action no statement names; nothing, with the reason, for a bad token.
    let none = c
        .plan_resources(plan_request(subject("alice"), "iam:CreateUser"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(none.kind(), pb::PlanKind::AlwaysDenied);
    assert_eq!(none.reason(), pb::Reason::Unspecified);
    let bad = c
        .plan_resources(plan_request(
            Some(pb::Subject {
                token: "not-a-token".into(),
                ..Default::default()
            }),
            "s3:GetObject",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bad.kind(), pb::PlanKind::AlwaysDenied);
    assert_eq!(bad.reason(), pb::Reason::InvalidIdentity);
    assert!(bad.condition.is_none());

    // A request without an action is refused, naming the field.
    let err = c
        .plan_resources(plan_request(subject("alice"), ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("`action`"), "{}", err.message());
    assert_eq!(
        common::metric(&server, r#"pdp_plans_total{plan="always_denied"}"#),
        2.0
    );
}

#[tokio::test]
async fn an_untrusted_callers_asserted_subject_plans_nothing() {
    let dir = policies();
    let server = start_pdp(
        [
            "--policies",
            dir.path().to_str().unwrap(),
            "--trust-loopback",
            "false",
        ],
        &[],
    );
    let mut c = AuthorizationServiceClient::new(channel(&server).await);
    let p = c
        .plan_resources(plan_request(subject("alice"), "s3:GetObject"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.kind(), pb::PlanKind::AlwaysDenied);
    assert!(
        p.message.contains("not trusted to assert identity"),
        "{}",
        p.message
    );
}
