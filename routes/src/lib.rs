//! Route templates, shared by the PDP's Envoy ext_authz front end (`routes.yaml`) and the
//! client library's tower layer (`RouteMapper`), so that both map a request to the same
//! action and resource:
//!
//! - a path template is `/`-separated segments, each literal, `{name}` (one non-empty
//!   segment) or, last only, `{name*}` (the rest of the path, at least one character);
//! - a resource template is text with `{name}` captures filled in from the path.
//!
//! A request path with a `.` or `..` segment (percent-encoded or not) matches no route: the
//! service behind may resolve it to another path than the one that was authorized.
//!
//! ```
//! use pdp_routes::{fill, match_path, parse_path, parse_template, split_path};
//!
//! let segments = parse_path("/orders/{id}/items/{rest*}").unwrap();
//! let resource = parse_template("arn:app:orders:::order/{id}/{rest}").unwrap();
//! let parts = split_path("/orders/42/items/a/b?x=1").unwrap();
//! let captures = match_path(&segments, &parts).unwrap();
//! assert_eq!(fill(&resource, &captures), "arn:app:orders:::order/42/a/b");
//! assert!(split_path("/orders/42/items/../../admin").is_none());
//! ```

/// One segment of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text that must equal the request's segment.
    Literal(String),
    /// `{name}`: one non-empty segment.
    One(String),
    /// `{name*}`: the rest of the path (last only).
    Rest(String),
}

impl Segment {
    /// The capture's name, if the segment captures.
    pub fn capture(&self) -> Option<&str> {
        match self {
            Segment::One(n) | Segment::Rest(n) => Some(n),
            Segment::Literal(_) => None,
        }
    }
}

/// A piece of a resource template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as is.
    Text(String),
    /// `{name}`: the path's capture of that name.
    Capture(String),
}

/// Parses a path template (`/orders/{id}`, `/files/{path*}`).
pub fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("`{path}` does not start with `/`"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let mut out = Vec::with_capacity(parts.len());
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let segment = match p.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
            Some(inner) => {
                let (name, rest) = match inner.strip_suffix('*') {
                    Some(n) => (n, true),
                    None => (inner, false),
                };
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(format!("`{{{inner}}}` is not a capture name"));
                }
                if names.contains(&name) {
                    return Err(format!("`{{{name}}}` is captured twice"));
                }
                names.push(name);
                if rest && i + 1 != parts.len() {
                    return Err(format!("`{{{name}*}}` must be the last segment"));
                }
                if rest {
                    Segment::Rest(name.to_owned())
                } else {
                    Segment::One(name.to_owned())
                }
            }
            None if p.contains(['{', '}']) => {
                return Err(format!("`{p}`: a capture must be a whole segment"))
            }
            None => Segment::Literal((*p).to_owned()),
        };
        out.push(segment);
    }
    Ok(out)
}

/// Parses a resource template (`arn:app:orders:::order/{id}`).
pub fn parse_template(text: &str) -> Result<Vec<Piece>, String> {
    if text.is_empty() {
        return Err("the resource is empty".into());
    }
    let mut out = Vec::new();
    let mut rest = text;
    while let Some((before, after)) = rest.split_once('{') {
        if !before.is_empty() {
            out.push(Piece::Text(before.to_owned()));
        }
        let Some((name, after)) = after.split_once('}') else {
            return Err(format!("`{text}`: an unclosed `{{`"));
        };
        out.push(Piece::Capture(name.to_owned()));
        rest = after;
    }
    if rest.contains('}') {
        return Err(format!("`{text}`: a `}}` without `{{`"));
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

/// The first capture of `resource` that `segments` do not capture, if any.
pub fn uncaptured<'a>(segments: &[Segment], resource: &'a [Piece]) -> Option<&'a str> {
    resource.iter().find_map(|p| match p {
        Piece::Capture(name) if !segments.iter().any(|s| s.capture() == Some(name)) => {
            Some(name.as_str())
        }
        _ => None,
    })
}

/// `.` or `..`, percent-encoded or not.
pub fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

/// A request path's segments (after the leading `/`; the query and fragment dropped), or
/// `None` when one of them is `.` or `..`: such a path matches no route.
pub fn split_path(path: &str) -> Option<Vec<&str>> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    (!parts.iter().any(|p| is_dot_segment(p))).then_some(parts)
}

/// The captures of `segments` over the request path's parts, if it matches.
pub fn match_path(segments: &[Segment], parts: &[&str]) -> Option<Vec<(String, String)>> {
    let mut captures = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        match s {
            Segment::Rest(name) => {
                let rest = parts.get(i..)?.join("/");
                if rest.is_empty() {
                    return None;
                }
                captures.push((name.clone(), rest));
                return Some(captures);
            }
            Segment::One(name) => {
                let part = parts.get(i).filter(|p| !p.is_empty())?;
                captures.push((name.clone(), (*part).to_owned()));
            }
            Segment::Literal(l) => {
                if parts.get(i) != Some(&l.as_str()) {
                    return None;
                }
            }
        }
    }
    (parts.len() == segments.len()).then_some(captures)
}

/// A resource template filled in with a match's captures.
pub fn fill(resource: &[Piece], captures: &[(String, String)]) -> String {
    let mut out = String::new();
    for piece in resource {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Capture(name) => out.push_str(
                captures
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("", |(_, v)| v.as_str()),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_checked() {
        assert!(parse_path("orders").is_err());
        assert!(parse_path("/a/{x}/{x}").is_err());
        assert!(parse_path("/a/{rest*}/b").is_err());
        assert!(parse_path("/a/x{id}").is_err());
        assert!(parse_path("/a/{}").is_err());
        assert!(parse_template("").is_err());
        assert!(parse_template("a/{id").is_err());
        assert!(parse_template("a/}").is_err());
        let segments = parse_path("/a/{id}").unwrap_or_default();
        let resource = parse_template("r/{id}/{other}").unwrap_or_default();
        assert_eq!(uncaptured(&segments, &resource), Some("other"));
    }

    #[test]
    fn paths_match_and_fill() {
        let segments = parse_path("/files/{path*}").unwrap_or_default();
        let resource = parse_template("arn:files:::{path}").unwrap_or_default();
        let m = |p: &str| {
            split_path(p)
                .and_then(|parts| match_path(&segments, &parts))
                .map(|c| fill(&resource, &c))
        };
        assert_eq!(m("/files/a/b.txt").as_deref(), Some("arn:files:::a/b.txt"));
        assert_eq!(m("/files/a?q=1#f").as_deref(), Some("arn:files:::a"));
        assert_eq!(m("/files/"), None);
        assert_eq!(m("/other/a"), None);
        for traversal in [
            "/files/a/../../etc/passwd",
            "/files/./a",
            "/files/a/%2e%2e/b",
            "/files/a/%2E./b",
            "/files/..",
        ] {
            assert_eq!(m(traversal), None, "{traversal}");
        }
        let one = parse_path("/orders/{id}").unwrap_or_default();
        assert!(match_path(&one, &["orders", ""]).is_none());
        assert!(match_path(&one, &["orders", "1", "x"]).is_none());
    }
}
