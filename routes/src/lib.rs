//! Route templates, shared by the PDP's Envoy ext_authz front end (`routes.yaml`) and the
//! client library's tower layer (`RouteMapper`), so that both map a request to the same
//! action and resource:
//!
//! - a path template is `/`-separated segments, each literal, `{name}` (one non-empty
//!   segment) or, last only, `{name*}` (the rest of the path, at least one character);
//! - a resource template is text with `{name}` captures filled in from the path.
//!
//! A request path is matched only in normal form ([`normalize_path`], RFC 3986 §6.2.2):
//! escapes of unreserved characters decoded (`%73ecret` is `secret`), slashes merged
//! (`/data//secret` is `/data/secret`), the query dropped. A path that cannot be normalized
//! unambiguously is refused, not matched: a `.` or `..` segment (raw or percent-encoded),
//! `\`, an encoded `/`, `\`, `?` or `#`, a `;` path parameter, a double encoding, a bad
//! escape or a byte a path may not hold; the service behind might read it as another path
//! than the one that was authorized. The escapes are decoded and written again by the
//! `percent-encoding` crate; this module decides only which bytes and escapes a path may
//! hold.
//!
//! ```
//! use pdp_routes::{fill, match_path, normalize_path, parse_path, parse_template, PathOptions};
//!
//! let segments = parse_path("/orders/{id}/items/{rest*}").unwrap();
//! let resource = parse_template("arn:app:orders:::order/{id}/{rest}").unwrap();
//! let path = normalize_path("/orders//42/items/%61/b?x=1", PathOptions::default()).unwrap();
//! let captures = match_path(&segments, &path.segments()).unwrap();
//! assert_eq!(fill(&resource, &captures), "arn:app:orders:::order/42/a/b");
//! assert!(normalize_path("/orders/42/items/../../admin", PathOptions::default()).is_err());
//! ```

use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

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
            None => {
                if p.is_empty() && i + 1 != parts.len() {
                    return Err(format!(
                        "`{path}`: an empty segment never matches (request paths have their slashes merged)"
                    ));
                }
                let mut normal = String::new();
                if let Err(e) = normalize_segment(p, PathOptions::default(), &mut normal) {
                    return Err(format!("`{p}`: {e}"));
                }
                if normal == "." || normal == ".." {
                    return Err(format!("`{p}`: {}", PathError::DotSegment));
                }
                if normal != *p {
                    return Err(format!(
                        "`{p}` never matches: request paths are matched in normal form (`{normal}`)"
                    ));
                }
                Segment::Literal((*p).to_owned())
            }
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

/// Longest request path (before the query) that is normalized; a longer one is refused.
pub const MAX_PATH_BYTES: usize = 8192;

/// How a request path's encoded slashes and path parameters are treated. The default
/// refuses both: the service behind may decode `%2F` into a separator, or cut `;…` off a
/// segment (`/admin..;/x`), and so serve another path than the one that was authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PathOptions {
    /// Keep `%2F` and `%5C` as characters of their segment instead of refusing the path.
    pub keep_encoded_slashes: bool,
    /// Keep `;` and `%3B` as characters of their segment instead of refusing the path.
    /// Either way, a segment that a service reading the kept characters would see as `.`
    /// or `..` (`..%2F`, `..;x`) is refused.
    pub keep_path_parameters: bool,
}

/// Why a request path was refused: it cannot be normalized into one path that the service
/// behind is sure to read the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// Longer than [`MAX_PATH_BYTES`].
    TooLong(usize),
    /// A `.` or `..` segment, raw or percent-encoded.
    DotSegment,
    /// `%2F` or `%5C` (unless [`PathOptions::keep_encoded_slashes`]).
    EncodedSlash,
    /// A raw `\`, which some servers read as `/`.
    Backslash,
    /// `;` or `%3B` (unless [`PathOptions::keep_path_parameters`]).
    PathParameter,
    /// `%3F` or `%23`: a `?` or `#` that a server decoding twice reads as a delimiter.
    EncodedDelimiter,
    /// `%25` followed by two hex digits (`%252e`): encoded twice.
    DoubleEncoded,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// An encoded control character (`%00`–`%1F`, `%7F`).
    EncodedControl,
    /// A byte RFC 3986 does not allow in a path (space, `#`, `"`, non-ASCII, …).
    Byte(u8),
}

impl PathError {
    /// A short label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            PathError::NotAbsolute => "not_absolute",
            PathError::TooLong(_) => "too_long",
            PathError::DotSegment => "dot_segment",
            PathError::EncodedSlash => "encoded_slash",
            PathError::Backslash => "backslash",
            PathError::PathParameter => "path_parameter",
            PathError::EncodedDelimiter => "encoded_delimiter",
            PathError::DoubleEncoded => "double_encoded",
            PathError::BadEscape => "bad_escape",
            PathError::EncodedControl => "encoded_control",
            PathError::Byte(_) => "bad_character",
        }
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::NotAbsolute => write!(f, "the path does not start with `/`"),
            PathError::TooLong(n) => write!(
                f,
                "the path is {n} bytes, over the limit of {MAX_PATH_BYTES}"
            ),
            PathError::DotSegment => write!(f, "the path has a `.` or `..` segment"),
            PathError::EncodedSlash => {
                write!(f, "the path has an encoded `/` or `\\` (`%2F`, `%5C`)")
            }
            PathError::Backslash => write!(f, "the path has a `\\`"),
            PathError::PathParameter => {
                write!(f, "the path has a `;` path parameter (`;` or `%3B`)")
            }
            PathError::EncodedDelimiter => {
                write!(f, "the path has an encoded `?` or `#` (`%3F`, `%23`)")
            }
            PathError::DoubleEncoded => write!(
                f,
                "the path is percent-encoded twice (`%25` before two hex digits)"
            ),
            PathError::BadEscape => write!(f, "the path has a `%` not followed by two hex digits"),
            PathError::EncodedControl => write!(f, "the path has an encoded control character"),
            PathError::Byte(b) if b.is_ascii_graphic() => {
                write!(
                    f,
                    "the path has `{}`, which a path may not hold",
                    char::from(*b)
                )
            }
            PathError::Byte(b) => write!(
                f,
                "the path has the byte 0x{b:02X}, which a path may not hold"
            ),
        }
    }
}

impl std::error::Error for PathError {}

/// A request path in normal form (RFC 3986 §6.2.2): percent-escapes of unreserved
/// characters decoded and the others' hex digits upper case, empty segments merged (a
/// trailing `/` kept), without the query; never a `.` or `..` segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedPath(String);

impl NormalizedPath {
    /// The path, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments after the leading `/` (`/` alone is one empty segment).
    pub fn segments(&self) -> Vec<&str> {
        self.0.split('/').skip(1).collect()
    }
}

impl std::fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Normalizes a request path (`:path`: the query is dropped), or says why it cannot be
/// normalized unambiguously. Dot segments are refused rather than resolved: a path that
/// has them was not written by a well-behaved client, and the service behind may resolve
/// them differently.
pub fn normalize_path(raw: &str, options: PathOptions) -> Result<NormalizedPath, PathError> {
    let path = raw.split_once('?').map_or(raw, |(p, _)| p);
    if path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong(path.len()));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut out = String::with_capacity(path.len());
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment.is_empty() && !last {
            continue;
        }
        out.push('/');
        let start = out.len();
        normalize_segment(segment, options, &mut out)?;
        if is_dot_segment(out.get(start..).unwrap_or_default()) {
            return Err(PathError::DotSegment);
        }
    }
    Ok(NormalizedPath(out))
}

/// Whether a normalized segment is `.` or `..`, or would be to a service that reads the
/// encoded slashes or path parameters it was allowed to keep (`..%2F`, `..;x`).
fn is_dot_segment(segment: &str) -> bool {
    let pieces = segment.split("%2F").flat_map(|p| p.split("%5C"));
    pieces
        .map(|p| {
            p.split(';')
                .next()
                .and_then(|h| h.split("%3B").next())
                .unwrap_or_default()
        })
        .any(|head| head == "." || head == "..")
}

/// The bytes that stay percent-encoded in normal form: all but the unreserved characters
/// (RFC 3986 §2.3), whose escapes are decoded. `percent_encode` writes the hex digits of
/// the others in upper case, as §6.2.2.1 asks.
const STAYS_ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Whether `b` may stand unencoded in a path segment (RFC 3986 `pchar`: unreserved,
/// sub-delims, `:` and `@`).
fn is_pchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

/// Checks the unencoded bytes of a segment (between escapes), first refusal first.
fn check_raw(raw: &str, options: PathOptions) -> Result<(), PathError> {
    for b in raw.bytes() {
        match b {
            b'\\' => return Err(PathError::Backslash),
            b';' if !options.keep_path_parameters => return Err(PathError::PathParameter),
            b if is_pchar(b) => {}
            b => return Err(PathError::Byte(b)),
        }
    }
    Ok(())
}

/// Decodes the escape at the start of `text` (`%` and two hex digits), if it is one.
/// `percent_decode` passes a malformed escape through unchanged, so an escape decodes
/// to exactly one byte only when it is well formed.
fn decode_escape(text: &str) -> Option<u8> {
    let mut decoded = percent_decode_str(text.get(..3)?);
    match (decoded.next(), decoded.next()) {
        (Some(byte), None) => Some(byte),
        _ => None,
    }
}

/// Appends `segment` in normal form to `out`: the raw runs as they are, each escape
/// decoded and encoded again (decoded for an unreserved character, upper-case hex for the
/// others), refusing at the first byte or escape that makes the path ambiguous.
fn normalize_segment(
    segment: &str,
    options: PathOptions,
    out: &mut String,
) -> Result<(), PathError> {
    let mut rest = segment;
    loop {
        let Some((raw, escaped)) = rest.split_once('%') else {
            check_raw(rest, options)?;
            out.push_str(rest);
            return Ok(());
        };
        check_raw(raw, options)?;
        out.push_str(raw);
        // `escaped` starts after the `%`; the escape is `%` and its two hex digits.
        let escape = rest.get(raw.len()..).unwrap_or_default();
        let decoded = decode_escape(escape).ok_or(PathError::BadEscape)?;
        rest = escaped.get(2..).unwrap_or_default();
        match decoded {
            b'/' | b'\\' if !options.keep_encoded_slashes => return Err(PathError::EncodedSlash),
            b';' if !options.keep_path_parameters => return Err(PathError::PathParameter),
            b'?' | b'#' => return Err(PathError::EncodedDelimiter),
            b'%' if rest
                .as_bytes()
                .get(..2)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
            {
                return Err(PathError::DoubleEncoded)
            }
            d if d < 0x20 || d == 0x7f => return Err(PathError::EncodedControl),
            d => out.extend(percent_encode(std::slice::from_ref(&d), STAYS_ENCODED)),
        }
    }
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
    fn template_literals_must_be_in_normal_form() {
        for bad in [
            "/a//b",
            "/%73ecret",
            "/a/%2e",
            "/a/..",
            "/a;b",
            "/a\\b",
            "/a b",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
        assert!(parse_path("/a/%20b/").is_ok());
    }

    #[test]
    fn paths_match_and_fill() {
        let segments = parse_path("/files/{path*}").unwrap_or_default();
        let resource = parse_template("arn:files:::{path}").unwrap_or_default();
        let m = |p: &str| {
            normalize_path(p, PathOptions::default())
                .ok()
                .and_then(|path| match_path(&segments, &path.segments()))
                .map(|c| fill(&resource, &c))
        };
        assert_eq!(m("/files/a/b.txt").as_deref(), Some("arn:files:::a/b.txt"));
        assert_eq!(m("/files/a?q=1#f").as_deref(), Some("arn:files:::a"));
        assert_eq!(m("//files//a//%62").as_deref(), Some("arn:files:::a/b"));
        assert_eq!(m("/files/"), None);
        assert_eq!(m("/other/a"), None);
        let one = parse_path("/orders/{id}").unwrap_or_default();
        assert!(match_path(&one, &["orders", ""]).is_none());
        assert!(match_path(&one, &["orders", "1", "x"]).is_none());
    }

    /// Each input, normalized with the default options: the normal form, or the refusal.
    const TABLE: &[(&str, Result<&str, PathError>)] = &[
        ("/", Ok("/")),
        ("/a/b", Ok("/a/b")),
        ("/a/b/", Ok("/a/b/")),
        ("/a/b?x=1&y=../..", Ok("/a/b")),
        ("/a/b?", Ok("/a/b")),
        ("//a///b//", Ok("/a/b/")),
        ("//", Ok("/")),
        ("/data/%73ecret", Ok("/data/secret")),
        ("/%41%7a%30%2D%5f%7E%2e", Ok("/Az0-_~.")),
        ("/a%2fb", Err(PathError::EncodedSlash)),
        ("/a%2Fb", Err(PathError::EncodedSlash)),
        ("/a%5cb", Err(PathError::EncodedSlash)),
        ("/a%20b%c3%a9", Ok("/a%20b%C3%A9")),
        ("/a%25b", Ok("/a%25b")),
        ("/a%252e%252e/b", Err(PathError::DoubleEncoded)),
        ("/a:b@c!$&'()*+,=", Ok("/a:b@c!$&'()*+,=")),
        ("/a..b/.x/..y", Ok("/a..b/.x/..y")),
        ("/.", Err(PathError::DotSegment)),
        ("/..", Err(PathError::DotSegment)),
        ("/a/./b", Err(PathError::DotSegment)),
        ("/public/../admin/panel", Err(PathError::DotSegment)),
        ("/a/%2e%2e/b", Err(PathError::DotSegment)),
        ("/a/%2e%2E/b", Err(PathError::DotSegment)),
        ("/a/%2E./b", Err(PathError::DotSegment)),
        ("/a/.%2e/b", Err(PathError::DotSegment)),
        ("/a/%2e/b", Err(PathError::DotSegment)),
        ("/a/./", Err(PathError::DotSegment)),
        ("/a/..%2Fadmin", Err(PathError::EncodedSlash)),
        ("/a/..;/admin", Err(PathError::PathParameter)),
        ("/a;jsessionid=1", Err(PathError::PathParameter)),
        ("/a%3Bb", Err(PathError::PathParameter)),
        ("/a\\..\\admin", Err(PathError::Backslash)),
        ("/admin%3F", Err(PathError::EncodedDelimiter)),
        ("/admin%23x", Err(PathError::EncodedDelimiter)),
        ("/admin#x", Err(PathError::Byte(b'#'))),
        ("/a b", Err(PathError::Byte(b' '))),
        ("/caf\u{e9}", Err(PathError::Byte(0xC3))),
        ("/a\tb", Err(PathError::Byte(b'\t'))),
        ("/a%00b", Err(PathError::EncodedControl)),
        ("/a%7f", Err(PathError::EncodedControl)),
        ("/a%", Err(PathError::BadEscape)),
        ("/a%2", Err(PathError::BadEscape)),
        ("/a%zz", Err(PathError::BadEscape)),
        ("/a%+1", Err(PathError::BadEscape)),
        ("/a%%41", Err(PathError::BadEscape)),
        ("/a%\u{e9}", Err(PathError::BadEscape)),
        ("/a%2\u{e9}", Err(PathError::BadEscape)),
        ("/a%25", Ok("/a%25")),
        ("/a%25%", Err(PathError::BadEscape)),
        ("/a%252", Ok("/a%252")),
        ("/a%3a%c3%A9%7b", Ok("/a%3A%C3%A9%7B")),
        ("/%2e%2e%2f", Err(PathError::EncodedSlash)),
        ("/a%2f\\", Err(PathError::EncodedSlash)),
        ("/a\\%2f", Err(PathError::Backslash)),
        ("/a b%zz", Err(PathError::Byte(b' '))),
        ("/a%zz b", Err(PathError::BadEscape)),
        ("/a;%2f", Err(PathError::PathParameter)),
        ("", Err(PathError::NotAbsolute)),
        ("a/b", Err(PathError::NotAbsolute)),
        ("*", Err(PathError::NotAbsolute)),
        ("http://h/a", Err(PathError::NotAbsolute)),
        ("?/a", Err(PathError::NotAbsolute)),
    ];

    #[test]
    fn paths_normalize_or_are_refused() {
        for (input, expected) in TABLE {
            let got = normalize_path(input, PathOptions::default());
            assert_eq!(
                got.as_ref().map(NormalizedPath::as_str).map_err(|e| *e),
                *expected,
                "{input:?}"
            );
            if let Ok(normal) = got {
                // The normal form is its own normal form.
                assert_eq!(
                    normalize_path(normal.as_str(), PathOptions::default()).as_ref(),
                    Ok(&normal),
                    "{input:?}"
                );
            }
        }
    }

    #[test]
    fn options_keep_encoded_slashes_and_path_parameters() {
        let keep = PathOptions {
            keep_encoded_slashes: true,
            keep_path_parameters: true,
        };
        for (input, expected) in [
            ("/a%2fb%5c", Ok("/a%2Fb%5C")),
            ("/a;v=1/b%3bc", Ok("/a;v=1/b%3Bc")),
            ("/a/..;/admin", Err(PathError::DotSegment)),
            ("/a/.;x", Err(PathError::DotSegment)),
            ("/a/..%3Bx", Err(PathError::DotSegment)),
            ("/a/..%2F", Err(PathError::DotSegment)),
            ("/a/x%2F..%2Fy", Err(PathError::DotSegment)),
            ("/a/x%5C.", Err(PathError::DotSegment)),
            ("/a/..x%2F.y", Ok("/a/..x%2F.y")),
            ("/a\\b", Err(PathError::Backslash)),
            ("/a%3F", Err(PathError::EncodedDelimiter)),
        ] {
            assert_eq!(
                normalize_path(input, keep)
                    .as_ref()
                    .map(NormalizedPath::as_str)
                    .map_err(|e| *e),
                expected,
                "{input:?}"
            );
        }
    }

    #[test]
    fn each_option_keeps_only_its_own_characters() {
        let slashes = PathOptions {
            keep_encoded_slashes: true,
            keep_path_parameters: false,
        };
        let parameters = PathOptions {
            keep_encoded_slashes: false,
            keep_path_parameters: true,
        };
        for (input, options, expected) in [
            ("/a%2f%5C", slashes, Ok("/a%2F%5C")),
            ("/a%2F;b", slashes, Err(PathError::PathParameter)),
            ("/a%2F%3bb", slashes, Err(PathError::PathParameter)),
            ("/..%2f", slashes, Err(PathError::DotSegment)),
            ("/a;b%3b", parameters, Ok("/a;b%3B")),
            ("/a;b%2F", parameters, Err(PathError::EncodedSlash)),
            ("/..;b", parameters, Err(PathError::DotSegment)),
            ("/a;%252e", parameters, Err(PathError::DoubleEncoded)),
        ] {
            assert_eq!(
                normalize_path(input, options)
                    .as_ref()
                    .map(NormalizedPath::as_str)
                    .map_err(|e| *e),
                expected,
                "{input:?} {options:?}"
            );
        }
    }

    #[test]
    fn long_paths_are_refused() {
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(
            normalize_path(&long, PathOptions::default()),
            Err(PathError::TooLong(MAX_PATH_BYTES + 1))
        );
        let fits = format!("/{}?{}", "a".repeat(MAX_PATH_BYTES - 1), "q".repeat(100));
        assert!(normalize_path(&fits, PathOptions::default()).is_ok());
    }
}
