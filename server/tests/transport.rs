//! The transport against the real `pdp serve`: who may change the server (the admin
//! service, publishing signals), connection and stream limits seen by raw HTTP/2 and HTTP/1
//! clients, load shedding across the process, and what the command says about itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{start_pdp, start_pdp_on, start_pdp_plain, ADMIN_TOKEN};
use pdp_proto::v1 as pb;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];

fn signals_client(
    c: &tonic::transport::Channel,
) -> pb::signal_service_client::SignalServiceClient<tonic::transport::Channel> {
    pb::signal_service_client::SignalServiceClient::new(c.clone())
}

fn admin_client(
    c: &tonic::transport::Channel,
) -> pb::admin_service_client::AdminServiceClient<tonic::transport::Channel> {
    pb::admin_service_client::AdminServiceClient::new(c.clone())
}

/// The break-glass attempt: a `token-claims-change` giving alice another role.
fn claims_change() -> pb::PublishRequest {
    let roles = prost_types::Value {
        kind: Some(prost_types::value::Kind::ListValue(
            prost_types::ListValue {
                values: vec![prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("BreakGlass".into())),
                }],
            },
        )),
    };
    pb::PublishRequest {
        signals: vec![pb::Signal {
            r#type: pb::SignalType::TokenClaimsChange as i32,
            subject: "alice".into(),
            claims: Some(prost_types::Struct {
                fields: [("roles".to_owned(), roles)].into_iter().collect(),
            }),
            ..Default::default()
        }],
    }
}

fn revoke(session: &str) -> pb::PublishRequest {
    pb::PublishRequest {
        signals: vec![pb::Signal {
            r#type: pb::SignalType::SessionRevoked as i32,
            session_id: session.into(),
            reason: "test".into(),
            ..Default::default()
        }],
    }
}

fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test]
async fn loopback_callers_may_ask_but_not_publish_or_reload_without_a_grant() {
    let server = start_pdp_plain(std::iter::empty::<&str>(), &[]);
    let c = common::channel(&server).await;
    // Asking stays open to loopback callers, asserted subjects included.
    let allowed = common::check(&c, common::readme_request(Some(true))).await;
    assert_eq!(allowed.decision(), pb::Decision::Allow, "{allowed:?}");

    let e = signals_client(&c)
        .publish(claims_change())
        .await
        .expect_err("a claims change from loopback without a grant");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    assert!(e.message().contains("admin"), "{e:?}");
    let e = admin_client(&c)
        .reload(pb::ReloadRequest {})
        .await
        .expect_err("a reload from loopback without a grant");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = admin_client(&c)
        .status(pb::StatusRequest {})
        .await
        .expect_err("admin status from loopback without a grant");
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // Nothing was applied.
    let still = common::check(&c, common::readme_request(Some(true))).await;
    assert_eq!(still.decision(), pb::Decision::Allow, "{still:?}");
}

#[tokio::test]
async fn the_admin_token_grants_publish_and_reload() {
    let token = common::admin_token_file();
    let server = start_pdp_plain(["--admin-token-file", token.path().to_str().unwrap()], &[]);
    let c = common::channel(&server).await;
    let e = signals_client(&c).publish(revoke("s-1")).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    let e = signals_client(&c)
        .publish(bearer(
            revoke("s-1"),
            "not-the-admin-token-0123456789abcdef",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");

    let published = signals_client(&c)
        .publish(bearer(revoke("s-1"), ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.applied, 1, "{published:?}");
    let reloaded = admin_client(&c)
        .reload(bearer(pb::ReloadRequest {}, ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!(reloaded.outcome.unwrap().accepted);
    let log = server.stop();
    assert!(!log.contains(ADMIN_TOKEN), "the token was logged: {log}");
}

#[test]
fn a_short_admin_token_is_refused_at_start() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"short\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(["serve", "--admin-token-file", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("trust.admin_token_file"), "{err}");
}

#[tokio::test]
async fn loopback_admin_is_a_warned_development_setting() {
    let server = start_pdp_plain(["--admin-loopback", "true"], &[]);
    let c = common::channel(&server).await;
    let published = signals_client(&c)
        .publish(revoke("s-2"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.applied, 1);
    assert!(logs(&server, "for development only"), "{}", server.stop());
}

/// Whether the server logs a line containing `needle` within two seconds.
fn logs(server: &common::Server, needle: &str) -> bool {
    for _ in 0..100 {
        if server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn serving_beyond_loopback_without_tls_is_warned() {
    let server = start_pdp_on("0.0.0.0:0", std::iter::empty::<&str>(), &[]);
    assert!(
        logs(&server, "beyond loopback without TLS"),
        "{}",
        server.stop()
    );
    let quiet = start_pdp_plain(std::iter::empty::<&str>(), &[]);
    assert!(!logs(&quiet, "without TLS"), "{}", quiet.stop());
}

#[test]
fn metrics_can_have_a_port_of_their_own() {
    let server = start_pdp(["--metrics-listen", "127.0.0.1:0"], &[]);
    let metrics = server
        .banner
        .split("metrics on ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the banner names the metrics port")
        .to_owned();
    let (code, body) = common::http(&metrics, "GET", "/metrics", &[], "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("pdp_"), "{body}");
    let (code, _) = common::http(&server.http, "GET", "/metrics", &[], "");
    assert_eq!(code, 404, "metrics left on the HTTP port");
    let (code, _) = common::http(&server.http, "GET", "/healthz", &[], "");
    assert_eq!(code, 200);
}

/// Reads one HTTP/2 frame: type and payload.
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).unwrap();
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (head[3], payload)
}

/// A raw connection that has sent the HTTP/2 preface and read the server's SETTINGS.
fn h2_raw(addr: &str) -> (TcpStream, Vec<(u16, u32)>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(PREFACE).unwrap();
    s.write_all(&EMPTY_SETTINGS).unwrap();
    let (kind, payload) = read_frame(&mut s);
    assert_eq!(kind, 4, "the server's first frame is SETTINGS");
    let settings = payload
        .chunks_exact(6)
        .map(|e| {
            (
                u16::from_be_bytes([e[0], e[1]]),
                u32::from_be_bytes([e[2], e[3], e[4], e[5]]),
            )
        })
        .collect();
    (s, settings)
}

/// How long until the peer closes `s`; panics when it is still open after `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return start.elapsed(),
        }
        assert!(start.elapsed() < limit, "still open after {limit:?}");
    }
}

#[test]
fn settings_advertise_max_concurrent_streams() {
    let server = start_pdp(["--max-streams", "7"], &[]);
    let (_s, settings) = h2_raw(&server.addr);
    // SETTINGS_MAX_CONCURRENT_STREAMS is 0x3.
    assert!(settings.contains(&(3, 7)), "{settings:?}");
    let default = start_pdp(std::iter::empty::<&str>(), &[]);
    let (_s, settings) = h2_raw(&default.addr);
    assert!(settings.contains(&(3, 100)), "{settings:?}");
}

#[tokio::test]
async fn silent_and_partial_connections_are_closed_in_time() {
    let server = start_pdp(
        ["--handshake-timeout-ms", "300", "--idle-timeout-ms", "600"],
        &[],
    );
    let limit = Duration::from_secs(3);
    // gRPC port: a socket that sends nothing, a partial preface, partial headers.
    let mut idle = TcpStream::connect(&server.addr).unwrap();
    closed_within(&mut idle, limit);
    let mut partial = TcpStream::connect(&server.addr).unwrap();
    partial.write_all(&PREFACE[..10]).unwrap();
    closed_within(&mut partial, limit);
    let (mut headers, _) = h2_raw(&server.addr);
    // HEADERS on stream 1 without END_HEADERS, and no CONTINUATION ever.
    headers
        .write_all(&[0, 0, 3, 1, 0, 0, 0, 0, 1, 0x83, 0x86, 0x84])
        .unwrap();
    closed_within(&mut headers, limit);
    // HTTP port: a silent socket and partial request headers.
    let mut idle = TcpStream::connect(&server.http).unwrap();
    closed_within(&mut idle, limit);
    let mut partial = TcpStream::connect(&server.http).unwrap();
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: pdp\r\n")
        .unwrap();
    closed_within(&mut partial, limit);

    // A live HTTP/2 peer answers the server's pings: its idle connection stays usable.
    let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let open = tokio::spawn(connection);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!open.is_finished(), "a live idle connection was closed");
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!(
        "http://{}/grpc.health.v1.Health/Check",
        server.addr
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
}

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    let server = start_pdp(
        [
            "--max-connections",
            "2",
            "--http-max-connections",
            "2",
            "--idle-timeout-ms",
            "30000",
        ],
        &[],
    );
    let (first, _) = h2_raw(&server.addr);
    let (_second, _) = h2_raw(&server.addr);
    let mut third = TcpStream::connect(&server.addr).unwrap();
    // The server may have closed it already: writing can fail, which is the point.
    let _ = third.write_all(PREFACE);
    let _ = third.write_all(&EMPTY_SETTINGS);
    let mut got = Vec::new();
    third
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    match third.read_to_end(&mut got) {
        Ok(_) => assert!(got.is_empty(), "served over the cap: {got:?}"),
        Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "left open"),
    }
    // The HTTP port has its own cap: health checks still answer.
    let (code, _) = common::http(&server.http, "GET", "/healthz", &[], "");
    assert_eq!(code, 200);
    assert!(common::metric(&server, "pdp_connections_refused_total") >= 1.0);
    // A closed connection frees its place.
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let _again = h2_raw(&server.addr);
    // Over the HTTP cap too.
    std::thread::sleep(Duration::from_millis(200));
    let _held = [
        TcpStream::connect(&server.http).unwrap(),
        TcpStream::connect(&server.http).unwrap(),
    ];
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(&server.http).unwrap();
    closed_within(&mut over, Duration::from_secs(3));
}

#[tokio::test]
async fn calls_over_the_process_limit_are_refused_with_resource_exhausted() {
    let server = start_pdp(
        [
            "--max-in-flight",
            "2",
            "--call-timeout-ms",
            "20000",
            "--idle-timeout-ms",
            "30000",
        ],
        &[],
    );
    // Two calls held in flight: their request bodies never finish.
    let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let open = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut held = Vec::new();
    for _ in 0..2 {
        let request = http::Request::post(format!(
            "http://{}/pdp.v1.AuthorizationService/Check",
            server.addr
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
        let (response, mut body) = client.send_request(request, false).unwrap();
        // A message of 100 bytes announced, none sent.
        body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 100]), false)
            .unwrap();
        held.push((response, body));
        client = client.ready().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shed_before = common::metric(&server, "pdp_load_shed_total");

    let c = common::channel(&server).await;
    let e = pb::authorization_service_client::AuthorizationServiceClient::new(c.clone())
        .check(common::readme_request(Some(true)))
        .await
        .expect_err("a call over the process-wide limit");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    let (code, body) = common::http(
        &server.http,
        "POST",
        "/access/v1/evaluation",
        &[("content-type", "application/json")],
        "{}",
    );
    assert_eq!(code, 503, "{body}");
    // Health checks are never shed.
    let health = tonic_health::pb::health_client::HealthClient::new(c.clone())
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await;
    assert!(health.is_ok(), "{health:?}");
    assert!(common::metric(&server, "pdp_load_shed_total") >= shed_before + 2.0);

    // Once the held calls end, calls are served again.
    drop(held);
    drop(client);
    open.abort();
    let mut served = false;
    for _ in 0..40 {
        let r = pb::authorization_service_client::AuthorizationServiceClient::new(c.clone())
            .check(common::readme_request(Some(true)))
            .await;
        if r.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "calls stayed refused after the held ones ended");
}

#[test]
fn serve_help_names_every_port_and_protocol() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pdp"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let top = run(&["--help"]);
    let serve_line = top
        .lines()
        .find(|l| l.contains("serve"))
        .unwrap_or_default();
    for word in ["AuthZEN", "ext_authz", "/metrics"] {
        assert!(serve_line.contains(word), "`pdp --help`: {serve_line}");
    }
    let serve = run(&["serve", "--help"]);
    let http = serve
        .split("--http-listen")
        .nth(1)
        .and_then(|rest| rest.split("\n  -").next())
        .unwrap_or_default();
    for word in ["AuthZEN", "/metrics", "SSF"] {
        assert!(http.contains(word), "--http-listen help: {http}");
    }
    assert!(serve.contains("ext_authz"), "{serve}");
}

#[tokio::test]
async fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let server = start_pdp(std::iter::empty::<&str>(), &[("PDP_LOG", "debug")]);
    let c = common::channel(&server).await;
    common::check(&c, common::readme_request(Some(true))).await;
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.stop();
    assert!(log.contains("DEBUG"), "no debug events logged: {log}");
    assert!(!log.contains('\u{1b}'), "ANSI escapes in the log: {log:?}");
}

#[test]
fn every_problem_of_a_config_file_is_reported_at_once() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"listen = \"127.0.0.1:0\"\nlisten_adress = \"x\"\n[limits]\nmax_concurency = 5\n")
        .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(["serve", "--config", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen_adress") && err.contains("max_concurency"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error:")).count(),
        2,
        "{err}"
    );
}
