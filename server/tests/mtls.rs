//! Mutual TLS: `pdp serve` with a server certificate and a client CA, trusting callers by the
//! SPIFFE ID in their client certificate instead of by loopback. Certificates are made for
//! the test with rcgen.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::process::Command;

use pb::authorization_service_client::AuthorizationServiceClient;
use pdp_proto::v1 as pb;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, Issuer, KeyPair, SanType};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

fn leaf(ca: &Issuer<'_, KeyPair>, sans: Vec<SanType>) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = sans;
    let cert = params.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn pki() -> (Pki, Issuer<'static, KeyPair>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params.clone(), ca_key).unwrap();
    let ca_pem = ca.pem();
    let issuer = Issuer::new(
        ca_params,
        KeyPair::try_from(ca.key().serialize_der()).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = leaf(
        &issuer,
        vec![SanType::DnsName("localhost".try_into().unwrap())],
    );
    std::fs::write(dir.path().join("server.pem"), cert).unwrap();
    std::fs::write(dir.path().join("server.key"), key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
    (Pki { dir, ca_pem }, issuer)
}

mod common;

use common::Server;

fn start(pki: &Pki) -> Server {
    start_with(pki, &[])
}

fn start_with(pki: &Pki, extra: &[&str]) -> Server {
    let d = pki.dir.path();
    let path = |f: &str| d.join(f).to_str().unwrap().to_owned();
    let mut args = vec![
        "--trust-loopback".to_owned(),
        "false".to_owned(),
        "--trusted-caller".to_owned(),
        "spiffe://example.test/sidecar/*".to_owned(),
        "--tls-cert".to_owned(),
        path("server.pem"),
        "--tls-key".to_owned(),
        path("server.key"),
        "--client-ca".to_owned(),
        path("ca.pem"),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let server = common::start_pdp(args, &[]);
    assert!(server.banner.contains("over TLS"), "{}", server.banner);
    server
}

async fn client(
    server: &Server,
    pki: &Pki,
    identity: Option<(String, String)>,
) -> Result<AuthorizationServiceClient<Channel>, tonic::transport::Error> {
    let port = server.addr.rsplit(':').next().unwrap();
    let mut tls = ClientTlsConfig::new()
        .domain_name("localhost")
        .ca_certificate(Certificate::from_pem(&pki.ca_pem));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(AuthorizationServiceClient::new(channel))
}

fn readme_request() -> pb::CheckRequest {
    common::readme_request(Some(true))
}

#[tokio::test]
async fn only_callers_with_a_trusted_spiffe_id_may_assert_subjects() {
    let (pki, ca) = pki();
    let server = start(&pki);
    let spiffe = |id: &str| vec![SanType::URI(id.try_into().unwrap())];

    let sidecar = leaf(&ca, spiffe("spiffe://example.test/sidecar/orders"));
    let mut c = client(&server, &pki, Some(sidecar)).await.unwrap();
    let r = c.check(readme_request()).await.unwrap().into_inner();
    assert_eq!(
        (r.decision(), r.reason()),
        (pb::Decision::Allow, pb::Reason::Allowed)
    );

    // A valid client certificate with another identity: the asserted subject and MFA are
    // ignored, so the MFA guardrail denies.
    let stranger = leaf(&ca, spiffe("spiffe://example.test/batch-job"));
    let mut c = client(&server, &pki, Some(stranger)).await.unwrap();
    let r = c.check(readme_request()).await.unwrap().into_inner();
    assert_eq!(
        (r.decision(), r.reason()),
        (pb::Decision::Deny, pb::Reason::ExplicitDeny)
    );
    assert_eq!(r.determining[0].policy, "require-mfa");
}

#[tokio::test]
async fn a_client_without_a_certificate_cannot_call() {
    let (pki, _ca) = pki();
    let server = start(&pki);
    let refused = match client(&server, &pki, None).await {
        Err(_) => true,
        Ok(mut c) => c.check(readme_request()).await.is_err(),
    };
    assert!(refused, "a call without a client certificate went through");
}

#[test]
fn trusted_callers_without_a_client_ca_are_a_configuration_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--trusted-caller",
            "spiffe://x/y",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("client_ca"));
}

#[tokio::test]
async fn only_listed_callers_may_ask_when_a_caller_list_is_set() {
    let (pki, ca) = pki();
    let server = start_with(&pki, &["--check-caller", "spiffe://example.test/sidecar/*"]);
    let spiffe = |id: &str| vec![SanType::URI(id.try_into().unwrap())];
    let mut c = client(
        &server,
        &pki,
        Some(leaf(&ca, spiffe("spiffe://example.test/sidecar/a"))),
    )
    .await
    .unwrap();
    assert!(c.check(readme_request()).await.is_ok());
    let mut c = client(
        &server,
        &pki,
        Some(leaf(&ca, spiffe("spiffe://example.test/other"))),
    )
    .await
    .unwrap();
    let e = c.check(readme_request()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
}

#[tokio::test]
async fn the_client_library_speaks_mutual_tls() {
    let (pki, ca) = pki();
    let server = start(&pki);
    let port = server.addr.rsplit(':').next().unwrap();
    let (cert, key) = leaf(
        &ca,
        vec![SanType::URI(
            "spiffe://example.test/sidecar/app".try_into().unwrap(),
        )],
    );
    let pdp = pdp_client::PdpClient::builder()
        .endpoint(format!("https://localhost:{port}"))
        .tls(
            ClientTlsConfig::new()
                .domain_name("localhost")
                .ca_certificate(Certificate::from_pem(&pki.ca_pem))
                .identity(Identity::from_pem(cert, key)),
        )
        .build()
        .unwrap();
    let d = pdp.check(readme_request()).await.unwrap();
    assert!(d.is_allowed(), "{d:?}");
    assert!(pdp.check(readme_request()).await.unwrap().is_cached());

    // Without a client certificate the PDP cannot be reached: fail closed.
    let anonymous = pdp_client::PdpClient::builder()
        .endpoint(format!("https://localhost:{port}"))
        .tls(
            ClientTlsConfig::new()
                .domain_name("localhost")
                .ca_certificate(Certificate::from_pem(&pki.ca_pem)),
        )
        .retries(pdp_client::RetryPolicy {
            max_attempts: 1,
            ..pdp_client::RetryPolicy::default()
        })
        .build()
        .unwrap();
    let d = anonymous.check(readme_request()).await.unwrap();
    assert!(!d.is_allowed());
    assert_eq!(d.reason(), pdp_client::Reason::PdpUnavailable);
}

#[tokio::test]
async fn only_certificates_listed_for_admin_may_publish_signals() {
    let (pki, ca) = pki();
    let server = start_with(&pki, &["--admin-caller", "spiffe://example.test/ops/*"]);
    let spiffe = |id: &str| vec![SanType::URI(id.try_into().unwrap())];
    let publish = |identity: (String, String)| {
        let pki = &pki;
        let server = &server;
        async move {
            let port = server.addr.rsplit(':').next().unwrap();
            let tls = ClientTlsConfig::new()
                .domain_name("localhost")
                .ca_certificate(Certificate::from_pem(&pki.ca_pem))
                .identity(Identity::from_pem(identity.0, identity.1));
            let channel = Channel::from_shared(format!("https://localhost:{port}"))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect()
                .await
                .unwrap();
            pb::signal_service_client::SignalServiceClient::new(channel)
                .publish(pb::PublishRequest {
                    signals: vec![pb::Signal {
                        r#type: pb::SignalType::SessionRevoked as i32,
                        session_id: "s-9".into(),
                        ..Default::default()
                    }],
                })
                .await
        }
    };
    // A sidecar trusted to assert subjects is not thereby granted admin access.
    let e = publish(leaf(&ca, spiffe("spiffe://example.test/sidecar/orders")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let ok = publish(leaf(&ca, spiffe("spiffe://example.test/ops/revoker")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.applied, 1, "{ok:?}");
}
