//! Condition keys and policy variables: how a key named in a policy is found in a request
//! (derived identity and clock keys first, then the context), and how `${...}` templates in
//! `Resource` and condition values are parsed at compile time and filled in at decision time.

use std::cell::Cell;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use compact_str::CompactString;

use crate::pattern::{literal_toks, wildcard_toks, Tok};
use crate::request::{Request, Scalar};

/// A condition key, resolved at compile time to where its value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// `aws:username`: the subject id.
    Username,
    /// `aws:userid`: the subject id.
    Userid,
    /// `aws:PrincipalTag/<k>`.
    PrincipalTag(CompactString),
    /// `aws:ResourceTag/<k>`.
    ResourceTag(CompactString),
    /// `aws:CurrentTime`.
    CurrentTime,
    /// `aws:EpochTime`.
    EpochTime,
    /// Any other key, looked up in the request context.
    Context(CompactString),
}

const PRINCIPAL_TAG: &str = "aws:principaltag/";
const RESOURCE_TAG: &str = "aws:resourcetag/";

impl Key {
    /// The key's name.
    pub(crate) fn name(&self) -> String {
        match self {
            Key::Username => "aws:username".into(),
            Key::Userid => "aws:userid".into(),
            Key::PrincipalTag(k) => format!("aws:PrincipalTag/{k}"),
            Key::ResourceTag(k) => format!("aws:ResourceTag/{k}"),
            Key::CurrentTime => "aws:CurrentTime".into(),
            Key::EpochTime => "aws:EpochTime".into(),
            Key::Context(k) => k.to_string(),
        }
    }

    /// Resolves a key name (case-insensitive).
    pub(crate) fn parse(name: &str) -> Key {
        let is = |known: &str| name.eq_ignore_ascii_case(known);
        let tail = |prefix: &str| {
            name.get(..prefix.len())
                .filter(|head| head.eq_ignore_ascii_case(prefix))
                .and_then(|_| name.get(prefix.len()..))
        };
        if is("aws:username") {
            Key::Username
        } else if is("aws:userid") {
            Key::Userid
        } else if is("aws:currenttime") {
            Key::CurrentTime
        } else if is("aws:epochtime") {
            Key::EpochTime
        } else if let Some(tag) = tail(PRINCIPAL_TAG) {
            // Keys keep the case they were written in: requests usually use the same
            // spelling, so a lookup's exact comparison succeeds before the
            // case-insensitive one is needed.
            Key::PrincipalTag(tag.into())
        } else if let Some(tag) = tail(RESOURCE_TAG) {
            Key::ResourceTag(tag.into())
        } else {
            Key::Context(name.into())
        }
    }
}

/// One value of a key in a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
    /// Milliseconds since the Unix epoch.
    Time(i64),
}

impl<'a> From<&'a Scalar> for Val<'a> {
    fn from(s: &'a Scalar) -> Self {
        match s {
            Scalar::String(v) => Val::Str(v),
            Scalar::Number(v) => Val::Num(*v),
            Scalar::Bool(v) => Val::Bool(*v),
        }
    }
}

/// The values a key has in a request.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Found<'a> {
    One(Val<'a>),
    Many(&'a [Scalar]),
}

impl<'a> Found<'a> {
    pub(crate) fn values(self) -> impl Iterator<Item = Val<'a>> {
        let (one, many) = match self {
            Found::One(v) => (Some(v), [].iter()),
            Found::Many(s) => (None, s.iter()),
        };
        one.into_iter().chain(many.map(Val::from))
    }
}

/// Formats a value as the text a policy variable or string operator sees.
pub(crate) fn val_to_string(v: Val<'_>) -> String {
    match v {
        Val::Str(s) => s.to_owned(),
        Val::Num(n) => number_to_string(n),
        Val::Bool(b) => b.to_string(),
        Val::Time(ms) => DateTime::<Utc>::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default(),
    }
}

#[allow(clippy::cast_possible_truncation)]
pub(crate) fn number_to_string(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// What one decision evaluates against: the request plus a lazily read clock.
#[derive(Debug)]
pub(crate) struct EvalCtx<'a> {
    pub(crate) req: &'a Request,
    /// The request's action, folded for case-insensitive matching (UTF-8).
    pub(crate) action: &'a [u8],
    /// The action's id among the set's exact action names, if any statement names it.
    pub(crate) action_id: Option<u32>,
    now_ms: Cell<Option<i64>>,
    /// The last text parsed as an IP address (by address and length) and the result: the
    /// same `aws:SourceIp` is usually tested by several statements.
    ip_cache: Cell<Option<(usize, usize, Option<IpAddr>)>>,
    /// Whether the decision read the clock (`aws:CurrentTime`, `aws:EpochTime`).
    pub(crate) clock_read: Cell<bool>,
}

impl<'a> EvalCtx<'a> {
    pub(crate) fn new(req: &'a Request, action: &'a [u8], action_id: Option<u32>) -> Self {
        EvalCtx {
            req,
            action,
            action_id,
            // Read from the request when a condition first asks (few do).
            now_ms: Cell::new(None),
            ip_cache: Cell::new(None),
            clock_read: Cell::new(false),
        }
    }

    /// Parses request text as an IP address, once per distinct text per decision.
    pub(crate) fn ip(&self, text: &str) -> Option<IpAddr> {
        let key = (text.as_ptr() as usize, text.len());
        if let Some((p, l, ip)) = self.ip_cache.get() {
            if (p, l) == key {
                return ip;
            }
        }
        let ip = dotted_quad(text.as_bytes())
            .map(IpAddr::V4)
            .or_else(|| text.trim().parse::<IpAddr>().ok());
        self.ip_cache.set(Some((key.0, key.1, ip)));
        ip
    }

    fn now_ms(&self) -> i64 {
        self.clock_read.set(true);
        if let Some(ms) = self.now_ms.get() {
            return ms;
        }
        let ms = self.req.now.unwrap_or_else(Utc::now).timestamp_millis();
        self.now_ms.set(Some(ms));
        ms
    }

    /// The values of `key`, or `None` when the request does not have it.
    pub(crate) fn lookup(&self, key: &Key) -> Option<Found<'a>> {
        let req = self.req;
        match key {
            Key::Username | Key::Userid => Some(Found::One(Val::Str(&req.subject.id))),
            Key::PrincipalTag(k) => tag(&req.subject.tags, k),
            Key::ResourceTag(k) => tag(&req.resource.tags, k),
            Key::CurrentTime => Some(Found::One(Val::Time(self.now_ms()))),
            #[allow(clippy::cast_precision_loss)]
            Key::EpochTime => Some(Found::One(Val::Num(self.now_ms().div_euclid(1000) as f64))),
            Key::Context(k) => req.context.get(k).map(|v| match v {
                crate::request::Value::One(s) => Found::One(Val::from(s)),
                crate::request::Value::Many(m) => Found::Many(m),
            }),
        }
    }
}

/// The common case of an IPv4 address, parsed without the standard library's general
/// parser: exactly four dot-separated decimal octets, no leading zeros, nothing else. Any
/// other text returns `None` and is left to the standard parser, so what is accepted is
/// exactly what `IpAddr::from_str` accepts.
fn dotted_quad(text: &[u8]) -> Option<std::net::Ipv4Addr> {
    if !(7..=15).contains(&text.len()) {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut rest = text;
    for (i, slot) in octets.iter_mut().enumerate() {
        let (value, used) = octet(rest)?;
        *slot = value;
        rest = rest.get(used..)?;
        if i < 3 {
            match rest.split_first() {
                Some((b'.', tail)) => rest = tail,
                _ => return None,
            }
        }
    }
    rest.is_empty().then(|| std::net::Ipv4Addr::from(octets))
}

/// One decimal octet at the start of `s`: its value and length. One to three digits, no
/// leading zero; a fourth digit is left for the caller, which then finds no `.` or end.
#[inline(always)]
fn octet(s: &[u8]) -> Option<(u8, usize)> {
    let digit = |i: usize| s.get(i).map(|b| b.wrapping_sub(b'0')).filter(|d| *d < 10);
    let d0 = digit(0)?;
    let Some(d1) = digit(1) else {
        return Some((d0, 1));
    };
    if d0 == 0 {
        return None;
    }
    let Some(d2) = digit(2) else {
        return Some((d0 * 10 + d1, 2));
    };
    let value = u16::from(d0) * 100 + u16::from(d1) * 10 + u16::from(d2);
    Some((u8::try_from(value).ok()?, 3))
}

fn tag<'a>(tags: &'a crate::request::Tags, key: &str) -> Option<Found<'a>> {
    tags.get_ignore_ascii_case(key)
        .map(|v| Found::One(Val::Str(v)))
}

/// One part of a template: fixed tokens or a variable.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    Toks(Vec<Tok>),
    Var { key: Key, default: Option<Box<str>> },
}

/// Text with policy variables, filled in per request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    parts: Box<[Part]>,
}

/// The result of parsing policy text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    /// No variables: the tokens are final.
    Static(Vec<Tok>),
    /// Has variables.
    Dynamic(Template),
}

/// Parses `text`. `wildcards`: whether `*`/`?` outside variables are wildcards.
/// `variables`: whether `${...}` is substituted (policy Version `2012-10-17`).
pub(crate) fn parse_text(text: &str, wildcards: bool, variables: bool) -> Result<Parsed, String> {
    let push_text = |s: &str, out: &mut Vec<Tok>| {
        if wildcards {
            wildcard_toks(s, out);
        } else {
            literal_toks(s, out);
        }
    };
    let mut current = Vec::new();
    if !variables {
        push_text(text, &mut current);
        return Ok(Parsed::Static(current));
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        push_text(rest.get(..start).unwrap_or_default(), &mut current);
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else {
            return Err(format!(
                "policy variable in `{text}` is missing its closing `}}`"
            ));
        };
        let inner = after.get(..end).unwrap_or_default().trim();
        match inner {
            "*" => current.push(Tok::Lit('*')),
            "?" => current.push(Tok::Lit('?')),
            "$" => current.push(Tok::Lit('$')),
            _ => {
                let (name, default) = match inner.split_once(',') {
                    Some((name, default)) => (name.trim(), Some(parse_default(default, text)?)),
                    None => (inner, None),
                };
                if name.is_empty() || name.contains(char::is_whitespace) {
                    return Err(format!(
                        "policy variable `${{{inner}}}` in `{text}` has no valid key name"
                    ));
                }
                if !current.is_empty() {
                    parts.push(Part::Toks(std::mem::take(&mut current)));
                }
                parts.push(Part::Var {
                    key: Key::parse(name),
                    default,
                });
            }
        }
        rest = after.get(end + 1..).unwrap_or_default();
    }
    push_text(rest, &mut current);
    if parts.is_empty() {
        return Ok(Parsed::Static(current));
    }
    if !current.is_empty() {
        parts.push(Part::Toks(current));
    }
    Ok(Parsed::Dynamic(Template {
        parts: parts.into_boxed_slice(),
    }))
}

fn parse_default(raw: &str, text: &str) -> Result<Box<str>, String> {
    let raw = raw.trim();
    raw.strip_prefix('\'')
        .and_then(|r| r.strip_suffix('\''))
        .map(Into::into)
        .ok_or_else(|| format!("default value `{raw}` in `{text}` must be in single quotes, e.g. `${{aws:username, 'anonymous'}}`"))
}

impl Template {
    /// Fills in the variables; `None` when a variable's key is missing (or multivalued) and it
    /// has no default. Substituted text is literal.
    pub(crate) fn resolve(&self, ctx: &EvalCtx<'_>) -> Option<Vec<Tok>> {
        let mut out = Vec::new();
        for part in self.parts.iter() {
            match part {
                Part::Toks(t) => out.extend_from_slice(t),
                Part::Var { key, default } => match ctx.lookup(key) {
                    Some(Found::One(v)) => literal_toks(&val_to_string(v), &mut out),
                    _ => literal_toks(default.as_deref()?, &mut out),
                },
            }
        }
        Some(out)
    }

    /// The template as text: `${key}` (with `, 'default'`) for each variable.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for part in self.parts.iter() {
            match part {
                Part::Toks(t) => out.push_str(&toks_to_string(t)),
                Part::Var { key, default } => {
                    out.push_str("${");
                    out.push_str(&key.name());
                    if let Some(d) = default {
                        out.push_str(", '");
                        out.push_str(d);
                        out.push('\'');
                    }
                    out.push('}');
                }
            }
        }
        out
    }

    /// The template as a plan shows it: the variables `ctx` knows (those `unknown` does
    /// not pick) filled in, the others as `${key}` (with `, 'default'`); literal text as a
    /// glob with `\` also before a literal `$`, so a filled-in `*` or `${` is never read as
    /// a wildcard or a variable. `None` when a known variable is missing and has no
    /// default: the template then matches nothing.
    pub(crate) fn plan_text(
        &self,
        ctx: &EvalCtx<'_>,
        unknown: impl Fn(&Key) -> bool,
    ) -> Option<String> {
        let escaped = |toks: &[Tok], out: &mut String| {
            for t in toks {
                if *t == Tok::Lit('$') {
                    out.push('\\');
                }
                out.push_str(&toks_to_glob(std::slice::from_ref(t)));
            }
        };
        let mut out = String::new();
        for part in self.parts.iter() {
            match part {
                Part::Toks(t) => escaped(t, &mut out),
                Part::Var { key, default } if unknown(key) => {
                    out.push_str("${");
                    out.push_str(&key.name());
                    if let Some(d) = default {
                        out.push_str(", '");
                        out.push_str(d);
                        out.push('\'');
                    }
                    out.push('}');
                }
                Part::Var { key, default } => {
                    let mut toks = Vec::new();
                    match ctx.lookup(key) {
                        Some(Found::One(v)) => literal_toks(&val_to_string(v), &mut toks),
                        _ => literal_toks(default.as_deref()?, &mut toks),
                    }
                    escaped(&toks, &mut out);
                }
            }
        }
        Some(out)
    }

    /// The condition keys this template reads.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var { key, .. } => Some(key),
            Part::Toks(_) => None,
        })
    }
}

/// Tokens as a glob: `*` and `?` for the wildcards, `\` before a literal `*`, `?` or `\`.
pub(crate) fn toks_to_glob(toks: &[Tok]) -> String {
    let mut out = String::with_capacity(toks.len());
    for t in toks {
        match t {
            Tok::Lit(c @ ('*' | '?' | '\\')) => {
                out.push('\\');
                out.push(*c);
            }
            Tok::Lit(c) => out.push(*c),
            Tok::One => out.push('?'),
            Tok::Star => out.push('*'),
        }
    }
    out
}

/// Tokens back to text (all literal).
pub(crate) fn toks_to_string(toks: &[Tok]) -> String {
    toks.iter()
        .map(|t| match t {
            Tok::Lit(c) => *c,
            Tok::One => '?',
            Tok::Star => '*',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Context, Subject};

    fn req() -> Request {
        Request {
            subject: Subject {
                id: "alice".into(),
                roles: vec![].into(),
                tags: [("Team".into(), "blue".into())].into(),
            },
            context: Context::new().with("aws:SourceIp", "10.0.0.1"),
            ..Request::default()
        }
    }

    #[test]
    fn dotted_quad_accepts_exactly_what_the_standard_parser_accepts() {
        let cases = [
            "10.0.0.1",
            "255.255.255.255",
            "0.0.0.0",
            "192.168.1.20",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.4 ",
            " 1.2.3.4",
            "a.b.c.d",
            "1.2.3.-4",
            "1.2.3.+4",
            "1000.1.1.1",
            "",
            ".",
            "1.2.3.4.",
            "::1",
            "2001:db8::1",
            "1.2.3.٣",
            "999.0.0.0",
            "00.0.0.0",
            "0.0.0.00",
        ];
        for text in cases {
            let expected = text.parse::<std::net::Ipv4Addr>().ok();
            if let Some(fast) = dotted_quad(text.as_bytes()) {
                assert_eq!(Some(fast), expected, "{text:?}");
            } else {
                assert!(
                    expected.is_none() || text.trim() != text || text.contains(':'),
                    "{text:?}: the fast path refused an address the standard parser takes"
                );
            }
        }
        // Every combination of a few telling octets.
        let octets = [
            "0", "9", "10", "01", "99", "100", "255", "256", "999", "1000", "", "x",
        ];
        for a in octets {
            for b in ["0", "01", "255", "256"] {
                for c in octets {
                    let text = format!("{a}.{b}.1.{c}");
                    let expected = text.parse::<std::net::Ipv4Addr>().ok();
                    assert_eq!(dotted_quad(text.as_bytes()), expected, "{text:?}");
                }
            }
        }
        // Through the decision context: the fallback still handles what the fast path leaves.
        let r = req();
        let ctx = EvalCtx::new(&r, b"", None);
        assert_eq!(ctx.ip(" 10.0.0.1 "), "10.0.0.1".parse().ok());
        assert_eq!(ctx.ip("2001:db8::1"), "2001:db8::1".parse().ok());
        assert_eq!(ctx.ip("01.2.3.4"), None);
    }

    #[test]
    fn derived_keys_win_over_context() {
        let mut r = req();
        r.context.insert("aws:username", "mallory");
        let ctx = EvalCtx::new(&r, b"", None);
        assert!(matches!(
            ctx.lookup(&Key::parse("AWS:UserName")),
            Some(Found::One(Val::Str("alice")))
        ));
        assert!(matches!(
            ctx.lookup(&Key::parse("aws:PrincipalTag/team")),
            Some(Found::One(Val::Str("blue")))
        ));
        assert!(ctx.lookup(&Key::parse("aws:PrincipalTag/other")).is_none());
    }

    #[test]
    fn templates_substitute_literally_with_defaults_and_escapes() -> Result<(), String> {
        let r = req();
        let ctx = EvalCtx::new(&r, b"", None);
        let Parsed::Dynamic(t) = parse_text(
            "home/${aws:username}/${*}/${aws:PrincipalTag/x, 'none'}",
            true,
            true,
        )?
        else {
            return Err("expected a template".into());
        };
        let toks = t.resolve(&ctx).ok_or("resolves")?;
        assert_eq!(toks_to_string(&toks), "home/alice/*/none");
        assert!(toks.iter().all(|t| matches!(t, Tok::Lit(_))));
        let Parsed::Dynamic(t) = parse_text("${aws:missing}", true, true)? else {
            return Err("expected a template".into());
        };
        assert!(t.resolve(&ctx).is_none());
        Ok(())
    }

    #[test]
    fn old_version_keeps_variables_as_text() -> Result<(), String> {
        assert_eq!(
            parse_text("${aws:username}", false, false)?,
            Parsed::Static("${aws:username}".chars().map(Tok::Lit).collect())
        );
        Ok(())
    }

    #[test]
    fn malformed_variables_are_errors() {
        assert!(parse_text("${aws:username", true, true).is_err());
        assert!(parse_text("${aws:username, nodefault}", true, true).is_err());
        assert!(parse_text("${}", true, true).is_err());
    }
}
