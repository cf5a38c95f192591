//! The docker-compose demo hangs together without Docker: `deploy/envoy/envoy.yaml` asks the
//! PDP's gRPC port over HTTP/2 with ext_authz v3 and routes to the `orders` service;
//! `docker-compose.yml` runs the image the `Dockerfile` builds with the config its `CMD` names,
//! on the ports `deploy/pdp/pdp.toml` listens on; that file is a configuration the real
//! `pdp serve` starts with; the Dockerfile builds the binary with CI's command; the demo tokens
//! verify against the demo keys; and `docker-compose config` accepts the compose file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The command the Dockerfile builds the binary with, the same as CI's.
const BUILD: &str = "cargo build --release --locked -p pdp-server --bin pdp";
/// The HTTP connection manager, Envoy's HTTP filter chain host.
const HCM: &str = "envoy.filters.network.http_connection_manager";
/// The ext_authz HTTP filter.
const EXT_AUTHZ: &str = "envoy.filters.http.ext_authz";
/// Where a cluster's HTTP/2 setting lives in the v3 API.
const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(path: &str) -> String {
    let full = repo().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// A YAML file (parsed with yaml_serde) as JSON, for `pointer` and indexing.
fn yaml(path: &str) -> Value {
    yaml_serde::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn pdp_toml() -> toml::Table {
    toml::from_str(&read("deploy/pdp/pdp.toml")).unwrap()
}

fn toml_str<'a>(table: &'a toml::Table, path: &[&str]) -> &'a str {
    let (last, parents) = path.split_last().unwrap();
    let mut t = table;
    for p in parents {
        t = t
            .get(*p)
            .and_then(toml::Value::as_table)
            .unwrap_or_else(|| panic!("pdp.toml has no [{p}]"));
    }
    t.get(*last)
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("pdp.toml has no `{}`", path.join(".")))
}

/// The port of an address key of pdp.toml (`listen`, `http_listen`).
fn toml_port(table: &toml::Table, key: &str) -> u16 {
    let text = toml_str(table, &[key]);
    let addr: SocketAddr = text
        .parse()
        .unwrap_or_else(|e| panic!("`{key}` = `{text}`: {e}"));
    assert!(
        addr.ip().is_unspecified(),
        "`{key}` = `{text}`: other containers cannot reach a loopback address"
    );
    addr.port()
}

/// Host and port of a URL such as `redis://redis:6379`.
fn url_host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();
    let (host, port) = authority.rsplit_once(':').unwrap();
    (host.to_owned(), port.parse().unwrap())
}

/// The HTTP connection managers' typed configs of every listener.
fn connection_managers(envoy: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for listener in envoy["static_resources"]["listeners"].as_array().unwrap() {
        for chain in listener["filter_chains"].as_array().unwrap() {
            for filter in chain["filters"].as_array().unwrap() {
                if filter["name"] == HCM {
                    out.push(&filter["typed_config"]);
                }
            }
        }
    }
    assert!(!out.is_empty(), "envoy.yaml has no {HCM}");
    out
}

fn cluster<'a>(envoy: &'a Value, name: &str) -> &'a Value {
    envoy["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("envoy.yaml names the cluster `{name}` but defines none"))
}

/// Every endpoint of a cluster as (host, port).
fn endpoints(cluster: &Value) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for group in cluster["load_assignment"]["endpoints"].as_array().unwrap() {
        for e in group["lb_endpoints"].as_array().unwrap() {
            let a = &e["endpoint"]["address"]["socket_address"];
            out.push((
                a["address"].as_str().unwrap().to_owned(),
                u16::try_from(a["port_value"].as_u64().unwrap()).unwrap(),
            ));
        }
    }
    assert!(
        !out.is_empty(),
        "the cluster {} has no endpoint",
        cluster["name"]
    );
    out
}

fn speaks_http2(cluster: &Value) -> bool {
    let explicit = &cluster["typed_extension_protocol_options"][HTTP_OPTIONS];
    explicit["explicit_http_config"]["http2_protocol_options"].is_object()
        || explicit["auto_config"]["http2_protocol_options"].is_object()
}

/// The compose service built from this repository (the PDP), by name.
fn pdp_service(compose: &Value) -> (&str, &Value) {
    let built: Vec<_> = compose["services"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, s)| {
            let build = &s["build"];
            build == "." || build["context"] == "."
        })
        .collect();
    assert_eq!(
        built.len(),
        1,
        "one compose service is built from the repository"
    );
    (built[0].0.as_str(), built[0].1)
}

/// The container ports a compose service publishes or exposes.
fn container_ports(service: &Value) -> Vec<u16> {
    let mut out = Vec::new();
    for list in [&service["ports"], &service["expose"]] {
        for p in list.as_array().into_iter().flatten() {
            let text = match p {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => other["target"].to_string(),
            };
            let container = text.rsplit(':').next().unwrap().split('/').next().unwrap();
            out.push(container.parse().unwrap());
        }
    }
    out
}

/// A compose volume `SOURCE:TARGET[:MODE]` as (source, target).
fn mounts(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let parts: Vec<_> = v.as_str().unwrap().split(':').collect();
            (parts[0].to_owned(), parts[1].to_owned())
        })
        .collect()
}

/// The Dockerfile's instructions, continuation lines joined and comments dropped.
fn dockerfile() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
                out.push((op.to_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

/// The last `op` of the Dockerfile's final stage, as an exec-form list.
fn exec_form(instructions: &[(String, String)], op: &str) -> Vec<String> {
    let (_, args) = instructions
        .iter()
        .rev()
        .find(|(o, _)| o == op)
        .unwrap_or_else(|| panic!("the Dockerfile has no {op}"));
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{op} {args} is not exec form: {e}"))
}

/// The path the image's `CMD` serves (`serve --config PATH`).
fn cmd_config_path() -> String {
    let cmd = exec_form(&dockerfile(), "CMD");
    let at = cmd
        .iter()
        .position(|a| a == "--config")
        .expect("CMD names --config");
    cmd[at + 1].clone()
}

#[test]
fn envoy_asks_the_pdp_grpc_port_with_ext_authz_v3_over_http2() {
    let envoy = yaml("deploy/envoy/envoy.yaml");
    let compose = yaml("docker-compose.yml");
    let (pdp_name, _) = pdp_service(&compose);
    let listen_port = toml_port(&pdp_toml(), "listen");
    for hcm in connection_managers(&envoy) {
        // The paths the PDP authorizes are the ones routed upstream.
        assert_eq!(hcm["normalize_path"], true, "normalize_path");
        assert_eq!(hcm["merge_slashes"], true, "merge_slashes");
        assert_eq!(
            hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST",
            "path_with_escaped_slashes_action"
        );
        let filters = hcm["http_filters"].as_array().unwrap();
        let names: Vec<_> = filters
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        let authz = names
            .iter()
            .position(|n| *n == EXT_AUTHZ)
            .expect("the ext_authz filter");
        assert_eq!(
            names.last(),
            Some(&"envoy.filters.http.router"),
            "the router is the last filter: {names:?}"
        );
        assert!(authz < names.len() - 1);
        let config = &filters[authz]["typed_config"];
        assert_eq!(config["transport_api_version"], "V3");
        assert_eq!(
            config["failure_mode_allow"], false,
            "ext_authz fails closed, explicitly"
        );
        assert!(
            config["grpc_service"]["timeout"].is_string(),
            "ext_authz has a timeout"
        );
        let name = config["grpc_service"]["envoy_grpc"]["cluster_name"]
            .as_str()
            .expect("ext_authz over envoy_grpc");
        let pdp = cluster(&envoy, name);
        assert!(
            speaks_http2(pdp),
            "gRPC needs HTTP/2 to the cluster `{name}`"
        );
        for (host, port) in endpoints(pdp) {
            assert_eq!(host, pdp_name, "the PDP's compose service");
            assert_eq!(port, listen_port, "`listen` in deploy/pdp/pdp.toml");
        }
    }
}

#[test]
fn envoy_routes_allowed_requests_to_the_orders_service_port() {
    let envoy = yaml("deploy/envoy/envoy.yaml");
    let compose = yaml("docker-compose.yml");
    let mut routed = 0;
    for hcm in connection_managers(&envoy) {
        for host in hcm["route_config"]["virtual_hosts"].as_array().unwrap() {
            for route in host["routes"].as_array().unwrap() {
                let name = route["route"]["cluster"]
                    .as_str()
                    .expect("a route's cluster");
                for (service, port) in endpoints(cluster(&envoy, name)) {
                    let s = &compose["services"][&service];
                    assert!(s.is_object(), "no compose service `{service}`");
                    assert!(
                        container_ports(s).contains(&port),
                        "`{service}` exposes {port}: {s}"
                    );
                    assert_eq!(service, "orders");
                    routed += 1;
                }
            }
        }
    }
    assert!(routed > 0, "Envoy routes somewhere");
    let orders = &compose["services"]["orders"];
    assert!(
        orders["ports"].is_null(),
        "the upstream is reachable only through Envoy"
    );
}

#[test]
fn compose_runs_the_image_with_the_demo_config_on_its_ports() {
    let compose = yaml("docker-compose.yml");
    let (pdp_name, pdp) = pdp_service(&compose);
    let config = pdp_toml();
    let instructions = dockerfile();

    // The config file the image's CMD serves is the one under test.
    assert_eq!(exec_form(&instructions, "ENTRYPOINT"), ["pdp"]);
    let cmd_path = cmd_config_path();
    let mounted = mounts(pdp);
    let source_of = |target: &str| {
        mounted
            .iter()
            .find(|(_, t)| t == target)
            .map(|(s, _)| s.trim_start_matches("./").to_owned())
            .unwrap_or_else(|| panic!("`{pdp_name}` mounts nothing at {target}: {mounted:?}"))
    };
    assert_eq!(source_of(&cmd_path), "deploy/pdp/pdp.toml");
    // The keys it names are mounted from the demo's, which sign the demo tokens.
    let jwks = toml_str(&config, &["identity", "jwks"]);
    assert_eq!(source_of(jwks), "deploy/demo/jwks.json");
    // The decision log's directory is a volume.
    let log = Path::new(toml_str(&config, &["decision_log", "path"]));
    source_of(log.parent().unwrap().to_str().unwrap());
    // The policies are the image's own copy.
    let policies = toml_str(&config, &["policies"]);
    assert!(
        instructions.iter().any(|(op, args)| op == "COPY"
            && args
                .split_whitespace()
                .last()
                .map(|d| d.trim_end_matches('/'))
                == Some(policies)),
        "the Dockerfile copies policies/ to {policies}"
    );

    // Both ports are exposed by the image and published by compose.
    let grpc = toml_port(&config, "listen");
    let http = toml_port(&config, "http_listen");
    let exposed: Vec<u16> = instructions
        .iter()
        .filter(|(op, _)| op == "EXPOSE")
        .flat_map(|(_, a)| a.split_whitespace().map(|p| p.parse::<u16>().unwrap()))
        .collect();
    let published = container_ports(pdp);
    for port in [grpc, http] {
        assert!(exposed.contains(&port), "EXPOSE {port}: {exposed:?}");
        assert!(published.contains(&port), "compose publishes {port}");
    }

    // The other services the config names are compose services on those ports.
    let (redis, _) = url_host_port(toml_str(&config, &["signals", "store"]));
    assert!(compose["services"][&redis].is_object(), "service `{redis}`");
    let (jaeger, otlp) = url_host_port(toml_str(&config, &["tracing", "otlp_endpoint"]));
    assert_eq!(otlp, 4317, "OTLP/gRPC");
    let j = &compose["services"][&jaeger];
    assert!(
        j["environment"]["COLLECTOR_OTLP_ENABLED"] == "true",
        "Jaeger receives OTLP: {j}"
    );

    // Prometheus scrapes the PDP's HTTP port.
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let targets: Vec<_> = prometheus["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["static_configs"].as_array().unwrap())
        .flat_map(|s| s["targets"].as_array().unwrap())
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        targets.contains(&format!("{pdp_name}:{http}").as_str()),
        "{targets:?}"
    );

    // One network, inside 10.0.0.0/8, where the example policy allows reads from.
    let networks = compose["networks"].as_object().unwrap();
    assert_eq!(networks.len(), 1);
    // `docker-compose config` does not check that services name defined networks.
    for (name, service) in compose["services"].as_object().unwrap() {
        let on: Vec<_> = service["networks"]
            .as_array()
            .unwrap_or_else(|| panic!("`{name}` names its network"))
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert!(
            on.iter().all(|n| networks.contains_key(*n)),
            "`{name}` is on {on:?}, not defined"
        );
    }
    for (name, network) in networks {
        for c in network["ipam"]["config"].as_array().unwrap() {
            let subnet = c["subnet"].as_str().unwrap();
            let (ip, prefix) = subnet.split_once('/').unwrap();
            let ip: Ipv4Addr = ip.parse().unwrap();
            let prefix: u8 = prefix.parse().unwrap();
            assert!(
                ip.octets()[0] == 10 && prefix >= 8,
                "network `{name}`: {subnet} is not inside 10.0.0.0/8"
            );
        }
    }
}

#[test]
fn the_demo_config_starts_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo();
    let mut command = Command::new(env!("CARGO_BIN_EXE_pdp"));
    command
        .args(["serve", "--config"])
        .arg(repo.join("deploy/pdp/pdp.toml"));
    // Nothing from the caller's environment changes what is tested.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("PDP_") || key.starts_with("OTEL_") {
            command.env_remove(key);
        }
    }
    // Only what cannot work outside compose is overridden: loopback ports, local files,
    // signals in memory (no Redis), no tracing (an empty endpoint turns it off).
    let mut child = command
        .env("PDP_LISTEN", "127.0.0.1:0")
        .env("PDP_HTTP_LISTEN", "127.0.0.1:0")
        .env("PDP_POLICIES", repo.join("policies"))
        .env("PDP_JWKS", repo.join("deploy/demo/jwks.json"))
        .env("PDP_SIGNALS", "memory")
        .env("PDP_DECISION_LOG", dir.path().join("decisions.jsonl"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "")
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pdp serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        let _ = tx.send(first);
        // Keep draining, so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let first = rx.recv_timeout(Duration::from_secs(60));
    // The HTTP port (healthchecked by compose) answers.
    let health = first
        .as_ref()
        .ok()
        .and_then(|l| l.split("HTTP on ").nth(1))
        .map(|addr| get(addr.trim(), "/healthz"));
    // A server that did not start exits: wait a little for its code.
    let mut exited = child.try_wait().unwrap();
    if health.is_none() {
        for _ in 0..50 {
            if exited.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            exited = child.try_wait().unwrap();
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let first = first.unwrap_or_else(|_| panic!("pdp serve said nothing in 60 s"));
    assert!(
        first.starts_with("pdp: serving"),
        "pdp serve --config deploy/pdp/pdp.toml did not start (exit code {:?}, 2 is a configuration problem): {first}",
        exited.and_then(|s| s.code())
    );
    let health = health.unwrap_or_else(|| panic!("no HTTP port in `{first}`"));
    assert!(health.contains(" 200 "), "GET /healthz: {health}");
}

#[test]
fn the_dockerfile_builds_the_binary_as_ci_does() {
    let instructions = dockerfile();
    let runs: Vec<_> = instructions
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(runs.contains(&BUILD), "RUN {BUILD}: {runs:?}");
    let froms: Vec<_> = instructions
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(
        froms,
        ["rust:1-slim-bookworm AS build", "debian:bookworm-slim"]
    );
    assert!(instructions
        .iter()
        .any(|(op, a)| op == "COPY"
            && a == "--from=build /src/target/release/pdp /usr/local/bin/pdp"));
    let user = instructions
        .iter()
        .rev()
        .find(|(op, _)| op == "USER")
        .map(|(_, a)| a.as_str());
    assert_eq!(user, Some("10001:10001"), "the server runs as non-root");
}

#[test]
fn the_demo_tokens_verify_against_the_demo_keys() {
    use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
    let config = pdp_toml();
    let keys: JwkSet = serde_json::from_str(&read("deploy/demo/jwks.json")).unwrap();
    // 2036-01-01T00:00:00Z.
    let year_2036 = 2_082_758_400;
    for (name, roles) in [("alice", vec!["ApplicationRole"]), ("bob", vec![])] {
        let token = read(&format!("deploy/demo/tokens/{name}.jwt"));
        let token = token.trim();
        let header = decode_header(token).unwrap();
        let kid = header.kid.clone().expect("a kid");
        assert_eq!(kid, "rsa-1");
        let key = DecodingKey::from_jwk(keys.find(&kid).expect("the key")).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[toml_str(&config, &["identity", "issuer"])]);
        validation.set_audience(&[toml_str(&config, &["identity", "audience"])]);
        let claims = decode::<Value>(token, &key, &validation)
            .unwrap_or_else(|e| panic!("{name}.jwt: {e}"))
            .claims;
        assert_eq!(claims["sub"], name);
        let exp = claims["exp"].as_i64().unwrap();
        assert!(
            (year_2036..year_2036 + 366 * 86_400).contains(&exp),
            "{name}.jwt expires in 2036: {exp}"
        );
        let got: Vec<_> = claims["roles"]
            .as_array()
            .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(got, roles, "{name}'s roles");
        assert_eq!(claims["amr"], serde_json::json!(["mfa"]));
    }
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    let out = Command::new("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run docker-compose ({e}): install it (Debian: apt-get install docker-compose) to check docker-compose.yml"
            )
        });
    assert!(
        out.status.success(),
        "docker-compose -f docker-compose.yml config -q failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `GET path` to `addr`, returning the status line.
fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.lines().next().unwrap_or_default().to_owned()
}
