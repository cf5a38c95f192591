//! Verified identity through `pdp serve`: tokens signed with the test keys in `fixtures/`,
//! every way a token can be wrong, and identity facts the caller cannot forge.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use pb::authorization_service_client::AuthorizationServiceClient;
use pdp_proto::v1 as pb;
use serde_json::json;

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "pdp";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

mod common;

use common::Server;

fn start() -> Server {
    start_with_env(&[])
}

/// `pdp serve` verifying tokens signed with the fixture keys.
fn start_with_env(envs: &[(&str, &str)]) -> Server {
    let jwks = fixture("jwks.json");
    common::start_pdp(
        [
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
            "--jwks",
            jwks.to_str().unwrap(),
        ],
        envs,
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(overrides: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "roles": ["ApplicationRole"],
        "amr": ["pwd", "mfa"], "iat": now() - 10, "auth_time": now() - 10, "exp": now() + 600,
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(alg: Algorithm, kid: &str, key_file: &str, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(fixture(key_file)).unwrap();
    let key = match alg {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem).unwrap(),
        _ => EncodingKey::from_rsa_pem(&pem).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    encode(&header, claims, &key).unwrap()
}

fn rs256(claims: &serde_json::Value) -> String {
    sign(Algorithm::RS256, "rsa-1", "rsa.pem", claims)
}

/// The README's request, with a token and no identity facts in the context.
fn request(token: &str, mfa_in_context: Option<bool>) -> pb::CheckRequest {
    pb::CheckRequest {
        subject: Some(pb::Subject {
            token: token.to_owned(),
            ..Default::default()
        }),
        ..common::readme_request(mfa_in_context)
    }
}

async fn check(server: &Server, req: pb::CheckRequest) -> pb::CheckResponse {
    let mut c = AuthorizationServiceClient::connect(format!("http://{}", server.addr))
        .await
        .unwrap();
    c.check(req).await.unwrap().into_inner()
}

async fn expect_invalid(server: &Server, token: &str, fragment: &str) {
    let r = check(server, request(token, Some(true))).await;
    assert_eq!(
        (r.decision(), r.reason()),
        (pb::Decision::Deny, pb::Reason::InvalidIdentity),
        "{token}"
    );
    assert!(
        r.message.contains(fragment),
        "`{}` does not mention `{fragment}`",
        r.message
    );
    assert!(!r.message.contains(token), "the message repeats the token");
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_decide_as_their_subject() {
    let server = start();
    for token in [
        rs256(&claims(json!({}))),
        sign(Algorithm::PS256, "rsa-1", "rsa.pem", &claims(json!({}))),
        sign(Algorithm::ES256, "ec-1", "ec.pem", &claims(json!({}))),
        sign(Algorithm::EdDSA, "ed-1", "ed25519.pem", &claims(json!({}))),
    ] {
        // The RSA key's JWK pins RS256: PS256 must be refused with it.
        let r = check(&server, request(&token, None)).await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        if header.alg == Algorithm::PS256 {
            assert_eq!(
                r.reason(),
                pb::Reason::InvalidIdentity,
                "PS256 with an RS256-pinned key"
            );
            assert!(r.message.contains("cannot verify"), "{}", r.message);
            continue;
        }
        assert_eq!(
            r.decision(),
            pb::Decision::Allow,
            "{:?}: {}",
            header.alg,
            r.message
        );
        assert_eq!(r.reason(), pb::Reason::Allowed);
    }
}

#[tokio::test]
async fn mfa_comes_from_the_token_not_the_caller() {
    let server = start();
    let no_mfa = rs256(&claims(json!({"amr": ["pwd"]})));
    let r = check(&server, request(&no_mfa, Some(true))).await;
    assert_eq!(
        (r.decision(), r.reason()),
        (pb::Decision::Deny, pb::Reason::ExplicitDeny),
        "forged MFA was believed"
    );
    assert_eq!(r.determining[0].policy, "require-mfa");
    // Roles come from the token too: a caller-supplied role is ignored beside a token.
    let mut req = request(&rs256(&claims(json!({"roles": []}))), None);
    req.subject.as_mut().unwrap().roles = vec!["ApplicationRole".into()];
    let r = check(&server, req).await;
    assert_eq!(r.reason(), pb::Reason::ImplicitDeny);
}

#[tokio::test]
async fn every_bad_token_is_an_invalid_identity_deny() {
    let server = start();
    expect_invalid(
        &server,
        &rs256(&claims(json!({"exp": now() - 3600}))),
        "expired",
    )
    .await;
    expect_invalid(
        &server,
        &rs256(&claims(json!({"nbf": now() + 3600}))),
        "not valid yet",
    )
    .await;
    expect_invalid(
        &server,
        &rs256(&claims(json!({"iss": "https://evil.example"}))),
        "issuer",
    )
    .await;
    expect_invalid(
        &server,
        &rs256(&claims(json!({"aud": "someone-else"}))),
        "audience",
    )
    .await;
    expect_invalid(&server, &rs256(&claims(json!({"sub": null}))), "sub").await;
    expect_invalid(
        &server,
        &sign(
            Algorithm::RS256,
            "rsa-1",
            "rsa-other.pem",
            &claims(json!({})),
        ),
        "signature",
    )
    .await;
    expect_invalid(
        &server,
        &sign(Algorithm::RS256, "nope", "rsa.pem", &claims(json!({}))),
        "unknown signing key",
    )
    .await;
    expect_invalid(
        &server,
        &sign(Algorithm::ES256, "rsa-1", "ec.pem", &claims(json!({}))),
        "cannot verify",
    )
    .await;

    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(json!({})))
    );
    expect_invalid(&server, &unsigned, "alg: none").await;

    // Algorithm confusion: HMAC "signed" with the RSA public key as the secret.
    let public = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let confused = encode(
        &header,
        &claims(json!({})),
        &EncodingKey::from_secret(&public).unwrap(),
    )
    .unwrap();
    expect_invalid(&server, &confused, "HS256").await;

    expect_invalid(&server, "garbage", "well-formed").await;
    expect_invalid(&server, &"a".repeat(9000), "over the limit").await;
}

#[tokio::test]
async fn a_configured_issuer_and_audience_must_be_in_the_token() {
    let server = start();
    for (overrides, fragment) in [
        (json!({"aud": null}), "audience"),
        (json!({"iss": null}), "issuer"),
        (json!({"iss": ["https://evil.test", ISSUER]}), "issuer"),
        (json!({"iss": [ISSUER]}), "issuer"),
        (json!({"aud": ["someone-else"]}), "audience"),
        (json!({"aud": []}), "audience"),
        (json!({"aud": 7}), "audience"),
    ] {
        expect_invalid(&server, &rs256(&claims(overrides)), fragment).await;
    }
    // `aud` may be an array holding the audience.
    let r = check(
        &server,
        request(&rs256(&claims(json!({"aud": ["other", AUDIENCE]}))), None),
    )
    .await;
    assert_eq!(r.decision(), pb::Decision::Allow, "{}", r.message);

    // Without an issuer or audience configured, neither claim is read.
    let jwks = fixture("jwks.json");
    let open = common::start_pdp(["--jwks", jwks.to_str().unwrap()], &[]);
    let bare = rs256(&claims(json!({"iss": null, "aud": null})));
    let r = check(&open, request(&bare, None)).await;
    assert_eq!(r.decision(), pb::Decision::Allow, "{}", r.message);
}

#[tokio::test]
async fn tokens_never_reach_the_log() {
    let server = start_with_env(&[("PDP_LOG", "debug")]);
    let good = rs256(&claims(json!({})));
    let expired = rs256(&claims(json!({"exp": now() - 3600})));
    let mut tagged = request(&good, None);
    tagged.request_id = "req-42".into();
    assert_eq!(check(&server, tagged).await.decision(), pb::Decision::Allow);
    assert_eq!(
        check(&server, request(&expired, None)).await.reason(),
        pb::Reason::InvalidIdentity
    );
    let log = server.stop();
    assert!(log.contains("decided"), "debug logging is not on: {log}");
    assert!(
        log.contains("req-42"),
        "the request id is not logged: {log}"
    );
    for token in [&good, &expired] {
        let signature = token.rsplit('.').next().unwrap();
        assert!(!log.contains(signature), "a token reached the log");
    }
}

/// A JWKS endpoint on loopback serving whatever `body` holds, counting the fetches.
fn jwks_endpoint(
    body: std::sync::Arc<std::sync::Mutex<String>>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = fetches.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let (body, counter) = (body.clone(), counter.clone());
            // One thread per connection: a connection that sends nothing blocks no other.
            std::thread::spawn(move || {
                // Read the whole request head before answering: closing a socket with unread
                // bytes resets the connection instead of ending it.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let json = body.lock().unwrap().clone();
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
                    json.len()
                );
            });
        }
    });
    (url, fetches)
}

#[tokio::test]
async fn keys_from_a_url_are_fetched_again_when_a_token_names_an_unknown_key() {
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    let only_ec = json!({"keys": all["keys"].as_array().unwrap().iter().filter(|k| k["kid"] == "ec-1").collect::<Vec<_>>()});
    let body = std::sync::Arc::new(std::sync::Mutex::new(only_ec.to_string()));
    let (url, fetches) = jwks_endpoint(body.clone());

    let server = common::start_pdp(
        [
            "--issuer",
            ISSUER,
            "--audience",
            AUDIENCE,
            "--jwks-url",
            &url,
            "--jwks-refresh-secs",
            "3600",
            "--jwks-min-gap-secs",
            "0",
        ],
        &[],
    );
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "fetched once at start"
    );

    let ec = sign(Algorithm::ES256, "ec-1", "ec.pem", &claims(json!({})));
    assert_eq!(
        check(&server, request(&ec, None)).await.decision(),
        pb::Decision::Allow
    );
    let rsa = rs256(&claims(json!({})));
    let r = check(&server, request(&rsa, None)).await;
    assert_eq!(r.reason(), pb::Reason::InvalidIdentity);
    assert!(r.message.contains("unknown signing key"), "{}", r.message);

    // The provider rotates in the RSA key; the unknown kid makes the PDP fetch again.
    *body.lock().unwrap() = all.to_string();
    let mut allowed = false;
    for _ in 0..100 {
        if check(&server, request(&rsa, None)).await.decision() == pb::Decision::Allow {
            allowed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        allowed,
        "the new key was never fetched ({} fetches)",
        fetches.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(fetches.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn cached_decisions_never_outlive_the_token() {
    let server = start();
    // Without MFA the token's facts do not change by the second, so both tokens below make
    // the same cache key: the second call is answered from the entry the first one cached.
    let (iat, exp) = (now() - 10, now() + 4);
    let long = rs256(&claims(json!({"amr": ["pwd"], "iat": iat})));
    // The decision cache TTL is 10 s by default; this token expires in 4.
    let short = rs256(&claims(json!({"amr": ["pwd"], "iat": iat, "exp": exp})));
    let first = check(&server, request(&long, None)).await;
    assert_eq!(first.ttl.map_or(-1, |d| d.seconds), 10, "{}", first.message);
    let second = check(&server, request(&short, None)).await;
    assert_eq!(second.decision(), first.decision(), "{}", second.message);
    let ttl = second.ttl.map_or(-1, |d| d.seconds);
    assert!((1..=4).contains(&ttl), "ttl {ttl}");
}
