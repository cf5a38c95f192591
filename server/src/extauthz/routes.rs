//! `routes.yaml`: how an HTTP request that Envoy asks about becomes a decision request. Each
//! route matches a host, methods and a path template (`/orders/{id}`, `/files/{path*}`) and
//! names the action and the resource (an ARN template filled from the path's captures).
//! Validated like policies: every problem, with the file, the route and the field.
//!
//! Paths are matched in normal form ([`pdp_routes::normalize_path`]); a path that cannot be
//! normalized unambiguously never reaches the table (the front end refuses it). Hosts are
//! matched lower case, without the port or a trailing dot.

use std::collections::BTreeMap;
use std::path::Path;

use pdp_routes::{
    fill, match_path, parse_path, parse_template, NormalizedPath, PathOptions, Piece, Segment,
};
use serde::Deserialize;

/// Largest routes file read.
pub const MAX_ROUTES_BYTES: u64 = 1 << 20;
/// Most routes in a table.
pub const MAX_ROUTES: usize = 10_000;

/// What to do with a request no route matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unmapped {
    /// Deny it (403).
    #[default]
    Deny,
    /// Let it through without a decision.
    Allow,
}

/// What to do with a request path holding characters that some services decode or cut
/// (`%2F`, `%5C`; `;` path parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum Keep {
    /// Refuse the request (400).
    #[default]
    Reject,
    /// Keep them as characters of their segment.
    Keep,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    unmapped: Unmapped,
    #[serde(default)]
    unmapped_hosts: BTreeMap<String, Unmapped>,
    #[serde(default)]
    headers_to_remove: Vec<String>,
    #[serde(default)]
    context_headers: Vec<String>,
    #[serde(default)]
    encoded_slashes: Keep,
    #[serde(default)]
    path_parameters: Keep,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    methods: Vec<String>,
    path: String,
    action: String,
    resource: String,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    host: Option<String>,
    methods: Vec<String>,
    segments: Vec<Segment>,
    /// The template as written, for errors and docs.
    pub path: String,
    /// The action.
    pub action: String,
    resource: Vec<Piece>,
}

/// The route table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    unmapped: Unmapped,
    unmapped_hosts: BTreeMap<String, Unmapped>,
    /// Request headers removed before the request goes upstream (e.g. `authorization`).
    pub headers_to_remove: Vec<String>,
    /// Request headers copied into the context as `http:Header/<name>`.
    pub context_headers: Vec<String>,
    /// How request paths are normalized before matching.
    pub path_options: PathOptions,
}

/// A matched route: the action and the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    /// The action.
    pub action: String,
    /// The resource id.
    pub resource: String,
    /// The route's path template.
    pub route: String,
}

/// Headers that never reach the context (credentials).
const SECRET_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// A request's host as it is matched: lower case, without the port or a trailing dot.
pub fn normalize_host(host: &str) -> String {
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// Whether `pattern` (lower case: a host, `*.suffix` or `*`) matches a normalized host.
fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => pattern == host,
    }
}

/// How specific a host pattern is: a host beats `*.suffix`, a longer suffix a shorter
/// one, and `*` comes last.
fn specificity(pattern: &str) -> (u8, usize) {
    if pattern == "*" {
        (0, 0)
    } else if pattern.starts_with("*.") {
        (1, pattern.len())
    } else {
        (2, pattern.len())
    }
}

/// The problem with a host pattern, if any.
fn host_problem(h: &str) -> Option<String> {
    let bad = h.is_empty()
        || (h.contains('*') && h != "*" && !h.starts_with("*."))
        || h.get(2..)
            .is_some_and(|rest| h.starts_with("*.") && (rest.is_empty() || rest.contains('*')))
        || (h.contains(':') && !(h.starts_with('[') && h.ends_with(']')));
    bad.then(|| format!("`{h}`: a host (without a port), `*.suffix` or `*`"))
}

/// The file of a policy directory that maps HTTP requests to decision requests: read here,
/// never as a policy (see [`crate::reload::load_policies`]).
pub const ROUTES_FILE: &str = "routes.yaml";

impl RouteTable {
    /// Reads `<dir>/routes.yaml`; an empty table (everything unmapped, denied) when absent.
    pub fn load_dir(dir: &Path) -> Result<RouteTable, Vec<String>> {
        let path = dir.join(ROUTES_FILE);
        let shown = path.display().to_string();
        if std::fs::symlink_metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
        {
            return Ok(RouteTable::default());
        }
        let canonical = dir
            .canonicalize()
            .map_err(|e| vec![format!("{shown}: {e}")])?;
        let path = match pdp_engine::contained_file(&canonical, &path) {
            Ok(Some(target)) => target,
            Ok(None) => return Err(vec![format!("{shown}: not a regular file")]),
            Err(e) => return Err(vec![format!("{shown}: {e}")]),
        };
        match std::fs::metadata(&path) {
            Err(e) => return Err(vec![format!("{shown}: {e}")]),
            Ok(m) if m.len() > MAX_ROUTES_BYTES => {
                return Err(vec![format!(
                    "{shown}: {} bytes, over the limit of {MAX_ROUTES_BYTES}",
                    m.len()
                )])
            }
            Ok(_) => {}
        }
        let text = std::fs::read_to_string(&path).map_err(|e| vec![format!("{shown}: {e}")])?;
        RouteTable::parse(&shown, &text)
    }

    /// Parses a routes document; `origin` names it in errors.
    pub fn parse(origin: &str, text: &str) -> Result<RouteTable, Vec<String>> {
        pdp_engine::check_nesting(text, pdp_engine::Format::Yaml)
            .map_err(|e| vec![format!("{origin}: {e}")])?;
        let raw: RawTable =
            yaml_serde::from_str(text).map_err(|e| vec![format!("{origin}: {e}")])?;
        let mut problems = Vec::new();
        if raw.routes.len() > MAX_ROUTES {
            problems.push(format!(
                "{origin}: {} routes, over the limit of {MAX_ROUTES}",
                raw.routes.len()
            ));
        }
        let mut routes = Vec::new();
        for (i, r) in raw.routes.into_iter().enumerate() {
            let at =
                |field: &str, message: String| format!("{origin}: routes[{i}].{field}: {message}");
            let before = problems.len();
            let segments = match parse_path(&r.path) {
                Ok(s) => s,
                Err(m) => {
                    problems.push(at("path", m));
                    Vec::new()
                }
            };
            let resource = match parse_template(&r.resource) {
                Ok(pieces) => {
                    for p in &pieces {
                        if let Piece::Capture(name) = p {
                            if !segments.iter().any(|s| s.capture() == Some(name)) {
                                problems.push(at(
                                    "resource",
                                    format!(
                                        "`{{{name}}}` is not captured by the path `{}`",
                                        r.path
                                    ),
                                ));
                            }
                        }
                    }
                    pieces
                }
                Err(m) => {
                    problems.push(at("resource", m));
                    Vec::new()
                }
            };
            match r.action.split_once(':') {
                Some((service, name)) if !service.is_empty() && !name.is_empty() => {}
                _ => problems.push(at(
                    "action",
                    format!("`{}` is not `service:Action`", r.action),
                )),
            }
            let methods: Vec<String> = r.methods.iter().map(|m| m.to_ascii_uppercase()).collect();
            for m in &methods {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase() || b == b'*') {
                    problems.push(at("methods", format!("`{m}` is not an HTTP method")));
                }
            }
            if let Some(problem) = r.host.as_deref().and_then(host_problem) {
                problems.push(at("host", problem));
            }
            if problems.len() == before {
                routes.push(Route {
                    host: r.host.filter(|h| h != "*").map(|h| normalize_host(&h)),
                    methods: methods.into_iter().filter(|m| m != "*").collect(),
                    segments,
                    path: r.path,
                    action: r.action,
                    resource,
                });
            }
        }
        let mut unmapped_hosts = BTreeMap::new();
        for (pattern, u) in &raw.unmapped_hosts {
            if let Some(problem) = host_problem(pattern) {
                problems.push(format!("{origin}: unmapped_hosts: {problem}"));
            } else if unmapped_hosts.insert(normalize_host(pattern), *u).is_some() {
                problems.push(format!(
                    "{origin}: unmapped_hosts: `{pattern}` is listed twice (hosts are matched lower case, without a trailing dot)"
                ));
            }
        }
        for (field, list) in [
            ("headers_to_remove", &raw.headers_to_remove),
            ("context_headers", &raw.context_headers),
        ] {
            for h in list {
                if h.is_empty()
                    || !h
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    problems.push(format!("{origin}: {field}: `{h}` is not a header name"));
                }
            }
        }
        for h in &raw.context_headers {
            if SECRET_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
                problems.push(format!(
                    "{origin}: context_headers: `{h}` carries credentials and never enters the context"
                ));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(RouteTable {
            routes,
            unmapped: raw.unmapped,
            unmapped_hosts,
            headers_to_remove: raw
                .headers_to_remove
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            context_headers: raw
                .context_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            path_options: PathOptions {
                keep_encoded_slashes: raw.encoded_slashes == Keep::Keep,
                keep_path_parameters: raw.path_parameters == Keep::Keep,
            },
        })
    }

    /// Routes in the table.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether the table has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The first route matching `host`, `method` and the normalized `path`.
    pub fn find(&self, host: &str, method: &str, path: &NormalizedPath) -> Option<Matched> {
        let host = normalize_host(host);
        let parts = path.segments();
        self.routes.iter().find_map(|r| {
            if r.host.as_deref().is_some_and(|h| !host_matches(h, &host)) {
                return None;
            }
            if !r.methods.is_empty() && !r.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
                return None;
            }
            let captures = match_path(&r.segments, &parts)?;
            Some(Matched {
                action: r.action.clone(),
                resource: fill(&r.resource, &captures),
                route: r.path.clone(),
            })
        })
    }

    /// What to do with an unmatched request to `host`: the most specific `unmapped_hosts`
    /// pattern matching it decides, else `unmapped`.
    pub fn unmapped(&self, host: &str) -> Unmapped {
        let host = normalize_host(host);
        self.unmapped_hosts
            .iter()
            .filter(|(pattern, _)| host_matches(pattern, &host))
            .max_by_key(|(pattern, _)| specificity(pattern))
            .map_or(self.unmapped, |(_, u)| *u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = r#"
routes:
  - methods: [GET, head]
    path: /orders/{id}
    action: orders:GetOrder
    resource: "arn:app:orders:::order/{id}"
  - host: "*.files.example.com"
    path: /files/{path*}
    action: files:Read
    resource: "arn:app:files:::{path}"
unmapped: deny
unmapped_hosts: { "public.example.com": allow }
headers_to_remove: [Authorization]
context_headers: [x-tenant]
"#;

    fn table() -> RouteTable {
        RouteTable::parse("routes.yaml", TABLE).unwrap_or_default()
    }

    impl RouteTable {
        /// `find` on a raw path; `None` when it cannot be normalized.
        fn find_raw(&self, host: &str, method: &str, path: &str) -> Option<Matched> {
            let path = pdp_routes::normalize_path(path, self.path_options).ok()?;
            self.find(host, method, &path)
        }
    }

    #[test]
    fn templates_fill_the_resource_from_the_path() {
        let t = table();
        assert_eq!(t.len(), 2);
        let m = t.find_raw("api.example.com", "GET", "/orders/42?expand=1");
        assert_eq!(
            m.map(|m| (m.action, m.resource)),
            Some(("orders:GetOrder".into(), "arn:app:orders:::order/42".into()))
        );
        assert!(t.find_raw("api", "POST", "/orders/42").is_none(), "method");
        assert!(
            t.find_raw("api", "GET", "/orders/42/items").is_none(),
            "length"
        );
        assert!(
            t.find_raw("api", "GET", "/orders/").is_none(),
            "empty capture"
        );
        let f = t.find_raw("eu.files.example.com:8443", "PUT", "/files/a/b/c.txt");
        assert_eq!(
            f.map(|m| m.resource),
            Some("arn:app:files:::a/b/c.txt".into())
        );
        assert!(
            t.find_raw("files.example.com", "GET", "/files/a").is_none(),
            "host suffix"
        );
        assert_eq!(t.unmapped("public.example.com"), Unmapped::Allow);
        assert_eq!(t.unmapped("other"), Unmapped::Deny);
        assert_eq!(t.headers_to_remove, ["authorization"]);
    }

    #[test]
    fn paths_match_in_normal_form() {
        let t = table();
        let f = |path: &str| {
            t.find_raw("eu.files.example.com", "GET", path)
                .map(|m| m.resource)
        };
        assert_eq!(f("/files//a//%62").as_deref(), Some("arn:app:files:::a/b"));
        assert_eq!(f("/%66iles/a").as_deref(), Some("arn:app:files:::a"));
        assert_eq!(f("/files/a..b").as_deref(), Some("arn:app:files:::a..b"));
        assert_eq!(f("/files/a%2Fb"), None, "refused by default");
        let keep = RouteTable::parse("r.yaml", &format!("{TABLE}encoded_slashes: keep\n"))
            .unwrap_or_default();
        assert!(keep.path_options.keep_encoded_slashes);
        assert!(!keep.path_options.keep_path_parameters);
        assert_eq!(
            keep.find_raw("eu.files.example.com", "GET", "/files/a%2fb")
                .map(|m| m.resource)
                .as_deref(),
            Some("arn:app:files:::a%2Fb")
        );
    }

    #[test]
    fn hosts_match_lower_case_without_port_or_trailing_dot() {
        let t = RouteTable::parse(
            "r.yaml",
            r#"
routes:
  - host: API.example.com
    path: /a
    action: a:A
    resource: r
unmapped: allow
unmapped_hosts:
  "*.example.com": allow
  "Admin.Example.com": deny
  "*.internal.example.com": deny
  "*": allow
"#,
        )
        .unwrap_or_default();
        for host in ["api.example.com", "API.EXAMPLE.COM:443", "api.example.com."] {
            assert!(t.find_raw(host, "GET", "/a").is_some(), "{host}");
        }
        assert!(t.find_raw("xapi.example.com", "GET", "/a").is_none());
        for host in [
            "admin.example.com",
            "ADMIN.example.com:8443",
            "admin.example.com.",
            "db.internal.example.com",
        ] {
            assert_eq!(t.unmapped(host), Unmapped::Deny, "{host}");
        }
        assert_eq!(t.unmapped("www.example.com"), Unmapped::Allow);
        assert_eq!(t.unmapped("other.org"), Unmapped::Allow);
        for bad in [
            "unmapped_hosts: { \"a.com\": allow, \"A.com\": deny }",
            "unmapped_hosts: { \"a.com:80\": allow }",
            "unmapped_hosts: { \"*.\": allow }",
            "routes: [{ host: \"a*.com\", path: /a, action: a:A, resource: r }]",
        ] {
            assert!(RouteTable::parse("r.yaml", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_route_and_field() {
        let bad = r#"
routes:
  - path: orders/{id}
    action: GetOrder
    resource: "arn:{nope}"
  - path: /a/{x*}/b
    action: a:B
    resource: "x"
context_headers: [authorization]
"#;
        let problems = RouteTable::parse("r.yaml", bad).err().unwrap_or_default();
        let text = problems.join("\n");
        for expected in [
            "routes[0].path",
            "routes[0].action",
            "routes[1].path",
            "context_headers",
        ] {
            assert!(text.contains(expected), "{expected} missing from:\n{text}");
        }
        assert!(RouteTable::parse("r.yaml", "routes: []\nmistake: 1\n").is_err());
    }
}
