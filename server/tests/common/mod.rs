//! What the server's end-to-end tests share: starting the real `pdp serve` on a free
//! loopback port and reading its log.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub mod otlp;

/// A free loopback port (bound, then released for a peer to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `pdp serve`, killed on drop.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The HTTP port's `127.0.0.1:PORT`.
    pub http: String,
    /// The first line it printed (`pdp: serving pdp.v1 on ADDR ...`).
    pub banner: String,
    /// Every line it printed on stderr after that.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Stops the server and returns everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The reader thread sees end of file once the process is gone.
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            if Arc::strong_count(&self.log) == 1 {
                break;
            }
        }
        self.log.lock().unwrap().join("\n")
    }
}

/// Starts `pdp serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 ARGS` in the repository root with extra
/// environment variables, and waits for it to say where it listens.
pub fn start_pdp<I, S>(args: I, envs: &[(&str, &str)]) -> Server
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    start_pdp_on("127.0.0.1:0", args, envs)
}

/// [`start_pdp`] listening on `listen` (e.g. a fixed port, to restart a server in place).
///
/// Most tests publish signals and reload from this process, on loopback: unless `args`
/// (or `envs`) say otherwise about loopback or the admin grant, the server is started with
/// the development setting `--admin-loopback true`. [`start_pdp_plain`] adds nothing.
pub fn start_pdp_on<I, S>(listen: &str, args: I, envs: &[(&str, &str)]) -> Server
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let decides_grant = args.iter().any(|a| {
        let a = a.to_string_lossy();
        a.starts_with("--admin-") || a.starts_with("--trust-loopback")
    }) || envs
        .iter()
        .any(|(k, _)| k.starts_with("PDP_ADMIN_") || *k == "PDP_TRUST_LOOPBACK");
    let mut all: Vec<std::ffi::OsString> = Vec::new();
    if !decides_grant {
        all.extend(["--admin-loopback".into(), "true".into()]);
    }
    all.extend(args);
    spawn_pdp(listen, all, envs)
}

/// `pdp serve --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 ARGS`, nothing added.
pub fn start_pdp_plain<I, S>(args: I, envs: &[(&str, &str)]) -> Server
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    spawn_pdp("127.0.0.1:0", args, envs)
}

fn spawn_pdp<I, S>(listen: &str, args: I, envs: &[(&str, &str)]) -> Server
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pdp"))
        .args(["serve", "--listen", listen, "--http-listen", "127.0.0.1:0"])
        .args(args)
        .envs(envs.iter().copied())
        .current_dir(repo)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pdp serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    // Lines logged before the banner (e.g. loading signals) are kept in the log.
    let mut early = Vec::new();
    let mut banner = String::new();
    loop {
        banner.clear();
        if stderr.read_line(&mut banner).unwrap() == 0 || banner.starts_with("pdp: serving") {
            break;
        }
        early.push(banner.trim_end().to_owned());
    }
    let addr = banner
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no address in `{banner}` (earlier lines: {early:?})")
        })
        .to_owned();
    let http = banner
        .split("HTTP on ")
        .nth(1)
        .map(|rest| rest.trim().to_owned())
        .unwrap_or_default();
    let log = Arc::new(Mutex::new(early));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Server {
        child,
        addr,
        http,
        banner,
        log,
    }
}

/// A batch of `n` reads (`s3:GetObject` on `my-bucket/data/{i}.csv`, each a distinct
/// decision) with the subject and context of `base`.
pub fn data_batch(
    base: &pdp_proto::v1::CheckRequest,
    n: usize,
) -> pdp_proto::v1::CheckBatchRequest {
    use pdp_proto::v1 as pb;
    pb::CheckBatchRequest {
        subject: base.subject.clone(),
        action: "s3:GetObject".into(),
        context: base.context.clone(),
        items: (0..n)
            .map(|i| pb::CheckBatchItem {
                resource: Some(pb::Resource {
                    id: format!("arn:aws:s3:::my-bucket/data/{i}.csv"),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The README's example request: alice in ApplicationRole reading her data from the
/// corporate network, with `aws:MultiFactorAuthPresent` set to `mfa` (absent when `None`).
pub fn readme_request(mfa: Option<bool>) -> pdp_proto::v1::CheckRequest {
    use pdp_proto::v1 as pb;
    use prost_types::value::Kind;
    let value = |kind| prost_types::Value { kind: Some(kind) };
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(
        "aws:SourceIp".to_owned(),
        value(Kind::StringValue("10.1.2.3".into())),
    );
    fields.insert(
        "aws:RequestTag/Environment".to_owned(),
        value(Kind::StringValue("production".into())),
    );
    if let Some(m) = mfa {
        fields.insert(
            "aws:MultiFactorAuthPresent".to_owned(),
            value(Kind::BoolValue(m)),
        );
    }
    pb::CheckRequest {
        subject: Some(pb::Subject {
            id: "alice".into(),
            roles: vec!["ApplicationRole".into()],
            ..Default::default()
        }),
        action: "s3:GetObject".into(),
        resource: Some(pb::Resource {
            id: "arn:aws:s3:::my-bucket/data/report.csv".into(),
            ..Default::default()
        }),
        context: Some(prost_types::Struct { fields }),
        request_id: String::new(),
        min_signal_generation: 0,
        explain: false,
    }
}

/// Sends one HTTP/1.1 request to `addr` and returns the status and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

/// The value of the first metric sample whose line starts with `prefix` (0 when absent).
pub fn metric(server: &Server, prefix: &str) -> f64 {
    let (code, text) = http(&server.http, "GET", "/metrics", &[], "");
    assert_eq!(code, 200, "{text}");
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A channel to the server's gRPC port (retried while it comes up).
pub async fn channel(server: &Server) -> tonic::transport::Channel {
    let url = format!("http://{}", server.addr);
    for _ in 0..50 {
        if let Ok(c) = tonic::transport::Channel::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
        {
            return c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("cannot connect to {url}");
}

/// A copy of the example policies in a temporary directory (to edit, or to watch).
pub fn copy_policies() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

/// Stops the server with SIGTERM and waits (up to 5 s) for it to exit: a graceful stop
/// (the decision log closes with a checkpoint, traces are flushed). Connections to it must
/// be dropped first: a graceful stop waits for them.
pub async fn stop_gracefully(mut server: Server) {
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    for _ in 0..100 {
        if server.child.try_wait().unwrap().is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("pdp serve did not stop on SIGTERM");
}

/// The admin bearer token of [`admin_token_file`].
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// A file holding [`ADMIN_TOKEN`], for `--admin-token-file`.
pub fn admin_token_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, format!("{ADMIN_TOKEN}\n").as_bytes()).unwrap();
    f
}

/// A file of `server/tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// One Check over `c`.
pub async fn check(
    c: &tonic::transport::Channel,
    request: pdp_proto::v1::CheckRequest,
) -> pdp_proto::v1::CheckResponse {
    pdp_proto::v1::authorization_service_client::AuthorizationServiceClient::new(c.clone())
        .check(request)
        .await
        .unwrap()
        .into_inner()
}

/// The signal store's state, from `AdminService/Status`.
pub async fn signals_status(c: &tonic::transport::Channel) -> pdp_proto::v1::SignalsStatus {
    pdp_proto::v1::admin_service_client::AdminServiceClient::new(c.clone())
        .status(pdp_proto::v1::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .signals
        .unwrap()
}

/// An RS256 token signed with the fixture key `rsa-1`: `sub` alice, issued now, valid ten
/// minutes, with `claims` added (or replacing those).
pub fn rs256_token(claims: serde_json::Value) -> String {
    let pem = std::fs::read(fixture("rsa.pem")).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let now = chrono::Utc::now().timestamp();
    let mut all = serde_json::json!({ "sub": "alice", "iat": now, "exp": now + 600 });
    if let (Some(all), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
        all.extend(extra.clone());
    }
    jsonwebtoken::encode(
        &header,
        &all,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

/// The decision log's records in `path` (checkpoints left out; a missing file, none; a line
/// being written, skipped).
pub fn decision_records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
