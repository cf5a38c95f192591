//! The `Condition` element: operators compiled with their values parsed up front (numbers,
//! dates, CIDRs, base64, patterns), and evaluated with IAM's rules for missing keys,
//! negation, `...IfExists` and the `ForAnyValue:` / `ForAllValues:` set qualifiers.

use std::borrow::Cow;
use std::net::IpAddr;

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use ipnet::IpNet;

use crate::keys::{parse_text, val_to_string, EvalCtx, Key, Parsed, Template, Val};
use crate::pattern::{glob, Pattern, Tok};

/// How the values of a multivalued key combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

/// The comparison an operator makes between one request value and one policy value, before
/// negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Compiled policy values of one condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    Str(Box<[StrVal]>),
    StrIc(Box<[StrVal]>),
    Like(Box<[PatVal]>),
    Num(Cmp, Box<[f64]>),
    Date(Cmp, Box<[i64]>),
    Bool(Box<[bool]>),
    Binary(Box<[Vec<u8>]>),
    Ip(Box<[IpRange]>),
    Arn(Box<[PatVal]>),
    /// `Null`: the values say whether the key must be absent (`true`) or present (`false`).
    Null(Box<[bool]>),
}

/// A string value, fixed or with policy variables.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StrVal {
    Static(Box<str>),
    Dynamic(Template),
}

/// A wildcard value, fixed or with policy variables.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PatVal {
    Static(Pattern),
    StaticArn(Box<[Pattern]>),
    Dynamic(Template),
}

/// One compiled `operator: { key: values }` entry. Equal conditions are kept once per set
/// (statements name them by index), so what a condition says must all be here; how it was
/// written, for the linter, is in the statement's [`Label`]s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub(crate) key: Key,
    pub(crate) qualifier: Qualifier,
    pub(crate) negated: bool,
    pub(crate) if_exists: bool,
    pub(crate) values: Values,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Str,
    StrIc,
    Like,
    Num(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

/// Every base operator: name, family, negated.
const OPERATORS: &[(&str, Family, bool)] = &[
    ("StringEquals", Family::Str, false),
    ("StringNotEquals", Family::Str, true),
    ("StringEqualsIgnoreCase", Family::StrIc, false),
    ("StringNotEqualsIgnoreCase", Family::StrIc, true),
    ("StringLike", Family::Like, false),
    ("StringNotLike", Family::Like, true),
    ("NumericEquals", Family::Num(Cmp::Eq), false),
    ("NumericNotEquals", Family::Num(Cmp::Eq), true),
    ("NumericLessThan", Family::Num(Cmp::Lt), false),
    ("NumericLessThanEquals", Family::Num(Cmp::Le), false),
    ("NumericGreaterThan", Family::Num(Cmp::Gt), false),
    ("NumericGreaterThanEquals", Family::Num(Cmp::Ge), false),
    ("DateEquals", Family::Date(Cmp::Eq), false),
    ("DateNotEquals", Family::Date(Cmp::Eq), true),
    ("DateLessThan", Family::Date(Cmp::Lt), false),
    ("DateLessThanEquals", Family::Date(Cmp::Le), false),
    ("DateGreaterThan", Family::Date(Cmp::Gt), false),
    ("DateGreaterThanEquals", Family::Date(Cmp::Ge), false),
    ("Bool", Family::Bool, false),
    ("BinaryEquals", Family::Binary, false),
    ("IpAddress", Family::Ip, false),
    ("NotIpAddress", Family::Ip, true),
    ("ArnEquals", Family::Arn, false),
    ("ArnNotEquals", Family::Arn, true),
    ("ArnLike", Family::Arn, false),
    ("ArnNotLike", Family::Arn, true),
    ("Null", Family::Null, false),
];

/// The names of every operator, for documentation and suggestions.
pub fn operator_names() -> impl Iterator<Item = &'static str> {
    OPERATORS.iter().map(|(n, _, _)| *n)
}

/// Where the operator and the key of one condition as written (joined by a NUL) lie in
/// its statement's labels (see [`compile`]): for the linter's messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Label(u16, u16);

impl Label {
    fn text(self, labels: &str) -> &str {
        let (start, len) = (usize::from(self.0), usize::from(self.1));
        labels.get(start..start + len).unwrap_or_default()
    }

    /// The operator as written, from the statement's labels.
    pub(crate) fn operator(self, labels: &str) -> &str {
        self.text(labels).split('\u{0}').next().unwrap_or_default()
    }

    /// The key as written, from the statement's labels.
    pub(crate) fn key_name(self, labels: &str) -> &str {
        self.text(labels).split_once('\u{0}').map_or("", |(_, k)| k)
    }
}

/// A condition as compiled from a statement, and its label.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) made: Made,
    pub(crate) label: Label,
}

/// A condition compiled anew, or the index of the one the set already has, compiled from
/// the same inputs.
#[derive(Debug)]
pub(crate) enum Made {
    New {
        condition: Condition,
        /// Exactly what it was compiled from (see [`inputs`]): equal inputs compile to
        /// an equal condition, which is then not compiled again.
        inputs: Vec<u8>,
    },
    Known(u32),
}

/// Compiles one operator with its key/value map. Errors name the operator and key. Each
/// condition's label (operator and key as written) is appended to `labels`, the text all
/// the statement's conditions share.
pub(crate) fn compile(
    operator: &str,
    body: &serde_json::Value,
    variables: bool,
    known: &dyn Fn(&[u8]) -> Option<u32>,
    out: &mut Vec<Compiled>,
    labels: &mut String,
    errors: &mut Vec<(String, String)>,
) {
    let field = || format!("Condition.{operator}");
    let (qualifier, base) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
        (Qualifier::ForAnyValue, rest)
    } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
        (Qualifier::ForAllValues, rest)
    } else {
        (Qualifier::None, operator)
    };
    let (base, if_exists) = match base.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (base, false),
    };
    let Some(&(_, family, negated)) = OPERATORS.iter().find(|(n, _, _)| *n == base) else {
        let hint = OPERATORS
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(base))
            .map(|(n, _, _)| format!(" (did you mean `{n}`?)"))
            .unwrap_or_default();
        errors.push((
            field(),
            format!("unknown condition operator `{operator}`{hint}"),
        ));
        return;
    };
    if family == Family::Null && (if_exists || qualifier != Qualifier::None) {
        errors.push((
            field(),
            format!("`Null` takes neither `IfExists` nor a set qualifier (got `{operator}`)"),
        ));
        return;
    }
    let Some(map) = body.as_object() else {
        errors.push((
            field(),
            "must be an object of condition keys to values".into(),
        ));
        return;
    };
    if map.is_empty() {
        errors.push((field(), "names no condition key".into()));
    }
    for (key_name, raw) in map {
        let vfield = || format!("Condition.{operator}.{key_name}");
        if key_name.trim().is_empty() {
            errors.push((vfield(), "condition key name is empty".into()));
            continue;
        }
        let raws: &[serde_json::Value] = match raw {
            serde_json::Value::Array(a) => a,
            v => std::slice::from_ref(v),
        };
        if raws.is_empty() {
            errors.push((vfield(), "has no values".into()));
            continue;
        }
        let mut texts: smallvec::SmallVec<[Cow<'_, str>; 2]> = smallvec::SmallVec::new();
        for v in raws {
            match v {
                serde_json::Value::String(s) => texts.push(Cow::Borrowed(s)),
                serde_json::Value::Number(n) => texts.push(Cow::Owned(n.to_string())),
                serde_json::Value::Bool(b) => {
                    texts.push(Cow::Borrowed(if *b { "true" } else { "false" }))
                }
                _ => {
                    errors.push((
                        vfield(),
                        format!("value `{v}` must be a string, number or boolean"),
                    ));
                }
            }
        }
        let label = |labels: &mut String| {
            let start = labels.len();
            labels.push_str(operator);
            labels.push('\u{0}');
            labels.push_str(key_name);
            // A statement's labels past 64 KiB are cut off in messages, never wrong
            // elsewhere.
            Label(
                u16::try_from(start).unwrap_or(u16::MAX),
                u16::try_from(labels.len() - start).unwrap_or(0),
            )
        };
        let inputs = inputs(variables, operator, key_name, &texts);
        // Sets repeat a few conditions across many statements: one compiled from the same
        // inputs is not compiled again.
        if let Some(i) = known(&inputs) {
            out.push(Compiled {
                made: Made::Known(i),
                label: label(labels),
            });
            continue;
        }
        match compile_values(family, &texts, variables) {
            Ok(values) => out.push(Compiled {
                label: label(labels),
                made: Made::New {
                    condition: Condition {
                        key: Key::parse(key_name),
                        qualifier,
                        negated,
                        if_exists,
                        values,
                    },
                    inputs,
                },
            }),
            Err(e) => errors.push((vfield(), e)),
        }
    }
}

/// A digest of a condition's [`inputs`], to find equal conditions by: the same for equal
/// inputs, which compile to equal conditions. (Not whether policy variables apply: most
/// conditions compile the same under both policy versions, and those that do not are told
/// apart when compared.)
pub(crate) fn digest(inputs: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(inputs.get(1..).unwrap_or_default())
}

/// Everything a condition is compiled from, unambiguously: whether policy variables apply
/// (the first byte), the operator, the key as written and the values as text, each text
/// after its length.
fn inputs(variables: bool, operator: &str, key_name: &str, texts: &[Cow<'_, str>]) -> Vec<u8> {
    let len: usize = texts.iter().map(|t| t.len() + 4).sum();
    let mut out = Vec::with_capacity(1 + 8 + operator.len() + key_name.len() + len);
    out.push(u8::from(variables));
    for t in [operator, key_name]
        .into_iter()
        .chain(texts.iter().map(AsRef::as_ref))
    {
        // Texts past 4 GiB cannot occur: documents are bounded far below.
        out.extend_from_slice(&u32::try_from(t.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(t.as_bytes());
    }
    out
}

fn compile_values(
    family: Family,
    texts: &[Cow<'_, str>],
    variables: bool,
) -> Result<Values, String> {
    fn each<T>(
        texts: &[Cow<'_, str>],
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Box<[T]>, String> {
        texts
            .iter()
            .map(|t| f(t))
            .collect::<Result<Vec<_>, _>>()
            .map(Vec::into_boxed_slice)
    }
    Ok(match family {
        Family::Str => Values::Str(each(texts, |t| str_val(t, variables, false))?),
        Family::StrIc => Values::StrIc(each(texts, |t| str_val(t, variables, true))?),
        Family::Like => Values::Like(each(texts, |t| pat_val(t, variables, false))?),
        Family::Arn => Values::Arn(each(texts, |t| pat_val(t, variables, true))?),
        Family::Num(c) => Values::Num(
            c,
            each(texts, |t| {
                parse_number(t).ok_or_else(|| format!("`{t}` is not a number"))
            })?,
        ),
        Family::Date(c) => Values::Date(
            c,
            each(texts, |t| {
                parse_date(t).ok_or_else(|| {
                    format!("`{t}` is not a date (ISO 8601 such as `2026-01-31T12:00:00Z`, or epoch seconds)")
                })
            })?,
        ),
        Family::Bool | Family::Null => {
            let v = each(texts, |t| {
                parse_bool(t).ok_or_else(|| format!("`{t}` is not `true` or `false`"))
            })?;
            if family == Family::Bool {
                Values::Bool(v)
            } else {
                Values::Null(v)
            }
        }
        Family::Binary => Values::Binary(each(texts, |t| {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|e| format!("`{t}` is not base64: {e}"))
        })?),
        Family::Ip => Values::Ip(each(texts, |t| {
            parse_ip(t)
                .map(IpRange::from)
                .ok_or_else(|| format!("`{t}` is not an IP address or CIDR block"))
        })?),
    })
}

fn str_val(text: &str, variables: bool, fold: bool) -> Result<StrVal, String> {
    if !(variables && text.contains("${")) {
        return Ok(StrVal::Static(if fold {
            text.to_lowercase().into()
        } else {
            text.into()
        }));
    }
    Ok(match parse_text(text, false, variables)? {
        Parsed::Static(_) if fold => StrVal::Static(text.to_lowercase().into()),
        Parsed::Static(t) => StrVal::Static(crate::keys::toks_to_string(&t).into()),
        Parsed::Dynamic(t) => StrVal::Dynamic(t),
    })
}

fn pat_val(text: &str, variables: bool, arn: bool) -> Result<PatVal, String> {
    if !(arn || variables && text.contains("${")) {
        return Ok(PatVal::Static(Pattern::new(text, false)));
    }
    Ok(match parse_text(text, true, variables)? {
        Parsed::Static(t) if arn => PatVal::StaticArn(arn_pattern(t)),
        Parsed::Static(t) => PatVal::Static(Pattern::from_toks(t, false)),
        Parsed::Dynamic(t) => PatVal::Dynamic(t),
    })
}

/// Splits ARN pattern tokens into up to six component patterns at literal `:`.
fn arn_pattern(toks: Vec<Tok>) -> Box<[Pattern]> {
    let mut parts = Vec::with_capacity(6);
    let mut current = Vec::new();
    for t in toks {
        if t == Tok::Lit(':') && parts.len() < 5 {
            parts.push(Pattern::from_toks(std::mem::take(&mut current), false));
        } else {
            current.push(t);
        }
    }
    parts.push(Pattern::from_toks(current, false));
    parts.into_boxed_slice()
}

fn arn_matches(parts: &[Pattern], text: &str) -> bool {
    if parts.len() < 6 {
        // Not a full ARN pattern (e.g. `*`): match the whole string.
        let joined: Vec<&Pattern> = parts.iter().collect();
        return joined.len() == 1 && joined.first().is_some_and(|p| p.matches(text));
    }
    let mut pieces = text.splitn(6, ':');
    parts
        .iter()
        .all(|p| pieces.next().is_some_and(|piece| p.matches(piece)))
}

pub(crate) fn parse_number(t: &str) -> Option<f64> {
    t.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

pub(crate) fn parse_bool(t: &str) -> Option<bool> {
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A CIDR block as a network and a mask, so a test is one AND and one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IpRange {
    V4 { network: u32, mask: u32 },
    V6 { network: u128, mask: u128 },
}

impl From<IpNet> for IpRange {
    fn from(net: IpNet) -> Self {
        match net {
            IpNet::V4(n) => IpRange::V4 {
                network: u32::from(n.network()),
                mask: u32::from(n.netmask()),
            },
            IpNet::V6(n) => IpRange::V6 {
                network: u128::from(n.network()),
                mask: u128::from(n.netmask()),
            },
        }
    }
}

impl IpRange {
    /// Whether the block holds `ip` (an IPv4 address never matches an IPv6 block and the
    /// other way round, as with `ipnet`'s `contains`).
    #[inline]
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (IpRange::V4 { network, mask }, IpAddr::V4(a)) => u32::from(a) & mask == *network,
            (IpRange::V6 { network, mask }, IpAddr::V6(a)) => u128::from(a) & mask == *network,
            _ => false,
        }
    }
}

fn parse_ip(t: &str) -> Option<IpNet> {
    let t = t.trim();
    t.parse::<IpNet>()
        .ok()
        .or_else(|| t.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Parses ISO 8601 (with or without offset; date only) or epoch seconds into epoch millis.
pub(crate) fn parse_date(t: &str) -> Option<i64> {
    let t = t.trim();
    if !t.is_empty()
        && t.trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return t.parse::<i64>().ok()?.checked_mul(1000);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Some(d.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y%m%dT%H%M%SZ",
        "%Y-%m-%dT%H:%MZ",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(d.and_utc().timestamp_millis());
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z"] {
        if let Ok(d) = DateTime::parse_from_str(t, fmt) {
            return Some(d.timestamp_millis());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
}

impl Condition {
    /// Evaluates the condition against a request.
    pub(crate) fn holds(&self, ctx: &EvalCtx<'_>) -> bool {
        let found = ctx.lookup(&self.key);
        if let Values::Null(expect_absent) = &self.values {
            let absent = found.is_none();
            return expect_absent.contains(&absent);
        }
        let Some(found) = found else {
            if self.if_exists {
                return true;
            }
            return match self.qualifier {
                Qualifier::ForAllValues => true,
                Qualifier::ForAnyValue => false,
                Qualifier::None => self.negated,
            };
        };
        // A plain operator on a multivalued key: positive = any value matches, negated = no
        // value matches (every value satisfies the negation).
        let all = match self.qualifier {
            Qualifier::ForAllValues => true,
            Qualifier::ForAnyValue => false,
            Qualifier::None => self.negated,
        };
        let satisfied = |v: Val<'_>| self.matches_any(v, ctx) != self.negated;
        match found {
            // One value: any and all agree.
            crate::keys::Found::One(v) => satisfied(v),
            crate::keys::Found::Many(_) => {
                let mut values = found.values();
                if all {
                    values.all(satisfied)
                } else {
                    values.any(satisfied)
                }
            }
        }
    }

    /// Whether one request value matches any policy value (positive sense).
    fn matches_any(&self, v: Val<'_>, ctx: &EvalCtx<'_>) -> bool {
        match &self.values {
            Values::Str(vals) => with_str(v, |s| vals.iter().any(|pv| str_eq(pv, s, ctx, false))),
            Values::StrIc(vals) => with_str(v, |s| vals.iter().any(|pv| str_eq(pv, s, ctx, true))),
            Values::Like(vals) => {
                with_str(v, |s| vals.iter().any(|pv| pat_match(pv, s, ctx, false)))
            }
            Values::Arn(vals) => with_str(v, |s| vals.iter().any(|pv| pat_match(pv, s, ctx, true))),
            Values::Num(cmp, vals) => {
                as_number(v).is_some_and(|n| vals.iter().any(|p| compare(*cmp, n, *p)))
            }
            Values::Date(cmp, vals) => {
                as_date(v).is_some_and(|d| vals.iter().any(|p| compare(*cmp, d, *p)))
            }
            Values::Bool(vals) => as_bool(v).is_some_and(|b| vals.contains(&b)),
            Values::Binary(vals) => match v {
                Val::Str(s) => base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .is_ok_and(|bytes| vals.contains(&bytes)),
                _ => false,
            },
            Values::Ip(nets) => match v {
                Val::Str(s) => ctx
                    .ip(s)
                    .is_some_and(|ip| nets.iter().any(|n| n.contains(ip))),
                _ => false,
            },
            Values::Null(_) => false,
        }
    }
}

fn with_str(v: Val<'_>, f: impl FnOnce(&str) -> bool) -> bool {
    match v {
        Val::Str(s) => f(s),
        Val::Bool(true) => f("true"),
        Val::Bool(false) => f("false"),
        other => f(&val_to_string(other)),
    }
}

fn str_eq(pv: &StrVal, s: &str, ctx: &EvalCtx<'_>, fold: bool) -> bool {
    let eq = |p: &str| {
        if !fold {
            crate::pattern::bytes_eq(p.as_bytes(), s.as_bytes())
        } else if p.is_ascii() && s.is_ascii() {
            p.eq_ignore_ascii_case(s)
        } else {
            p.to_lowercase() == s.to_lowercase()
        }
    };
    match pv {
        StrVal::Static(p) => eq(p),
        StrVal::Dynamic(t) => t
            .resolve(ctx)
            .is_some_and(|toks| eq(&crate::keys::toks_to_string(&toks))),
    }
}

fn pat_match(pv: &PatVal, s: &str, ctx: &EvalCtx<'_>, arn: bool) -> bool {
    match pv {
        PatVal::Static(p) => p.matches(s),
        PatVal::StaticArn(parts) => arn_matches(parts, s),
        PatVal::Dynamic(t) => t.resolve(ctx).is_some_and(|toks| {
            if arn {
                arn_matches(&arn_pattern(toks), s)
            } else {
                glob(&toks, s)
            }
        }),
    }
}

fn compare<T: PartialOrd>(cmp: Cmp, req: T, pol: T) -> bool {
    match cmp {
        Cmp::Eq => req == pol,
        Cmp::Lt => req < pol,
        Cmp::Le => req <= pol,
        Cmp::Gt => req > pol,
        Cmp::Ge => req >= pol,
    }
}

fn as_number(v: Val<'_>) -> Option<f64> {
    match v {
        Val::Num(n) => Some(n),
        Val::Str(s) => parse_number(s),
        Val::Bool(_) | Val::Time(_) => None,
    }
}

#[allow(clippy::cast_possible_truncation)]
fn as_date(v: Val<'_>) -> Option<i64> {
    match v {
        Val::Time(ms) => Some(ms),
        Val::Num(n) if n.is_finite() => Some((n * 1000.0) as i64),
        Val::Str(s) => parse_date(s),
        _ => None,
    }
}

fn as_bool(v: Val<'_>) -> Option<bool> {
    match v {
        Val::Bool(b) => Some(b),
        Val::Str(s) => parse_bool(s),
        Val::Num(_) | Val::Time(_) => None,
    }
}

impl Condition {
    /// The keys this condition reads (its key and any variables in its values).
    pub(crate) fn keys(&self) -> Vec<&Key> {
        let mut keys = vec![&self.key];
        let templates: Vec<&Template> = match &self.values {
            Values::Str(v) | Values::StrIc(v) => v
                .iter()
                .filter_map(|s| match s {
                    StrVal::Dynamic(t) => Some(t),
                    StrVal::Static(_) => None,
                })
                .collect(),
            Values::Like(v) | Values::Arn(v) => v
                .iter()
                .filter_map(|s| match s {
                    PatVal::Dynamic(t) => Some(t),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for t in templates {
            keys.extend(t.keys());
        }
        keys
    }

    /// Whether this is a non-`Like` string or ARN-equals operator whose values contain
    /// wildcard characters (which such operators treat literally).
    pub(crate) fn literal_wildcards(&self) -> bool {
        match &self.values {
            Values::Str(v) | Values::StrIc(v) => v.iter().any(|s| match s {
                StrVal::Static(s) => s.contains(['*', '?']),
                StrVal::Dynamic(_) => false,
            }),
            _ => false,
        }
    }
}

impl Condition {
    /// Whether the condition reads a key `pred` picks: as its key, or in a policy variable
    /// of its values.
    pub(crate) fn reads(&self, pred: impl Fn(&Key) -> bool) -> bool {
        self.keys().into_iter().any(pred)
    }

    /// The values as text, policy variables filled in from `ctx` (left as written where
    /// `ctx` cannot fill them). Pattern values (`*Like`, `Arn*`) are written as globs: `*`
    /// and `?` are wildcards and `\` comes before a literal `*`, `?` or `\` (one a policy
    /// variable filled in, say), so that a literal is never read as a wildcard.
    pub(crate) fn values_text(&self, ctx: &EvalCtx<'_>) -> Vec<String> {
        let template = |t: &Template| {
            t.resolve(ctx)
                .map_or_else(|| t.text(), |toks| crate::keys::toks_to_string(&toks))
        };
        let glob_template = |t: &Template| {
            t.resolve(ctx)
                .map_or_else(|| t.text(), |toks| crate::keys::toks_to_glob(&toks))
        };
        let pattern = |p: &Pattern| crate::keys::toks_to_glob(&p.toks());
        match &self.values {
            Values::Str(v) | Values::StrIc(v) => v
                .iter()
                .map(|s| match s {
                    StrVal::Static(s) => s.to_string(),
                    StrVal::Dynamic(t) => template(t),
                })
                .collect(),
            Values::Like(v) | Values::Arn(v) => v
                .iter()
                .map(|p| match p {
                    PatVal::Static(p) => pattern(p),
                    PatVal::StaticArn(parts) => {
                        parts.iter().map(pattern).collect::<Vec<_>>().join(":")
                    }
                    PatVal::Dynamic(t) => glob_template(t),
                })
                .collect(),
            Values::Num(_, v) => v
                .iter()
                .map(|n| crate::keys::number_to_string(*n))
                .collect(),
            Values::Date(_, v) => v.iter().map(|ms| val_to_string(Val::Time(*ms))).collect(),
            Values::Bool(v) | Values::Null(v) => v.iter().map(ToString::to_string).collect(),
            Values::Binary(v) => v
                .iter()
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
                .collect(),
            Values::Ip(v) => v.iter().map(IpRange::text).collect(),
        }
    }
}

impl IpRange {
    /// The block in CIDR notation.
    fn text(&self) -> String {
        match *self {
            IpRange::V4 { network, mask } => {
                format!(
                    "{}/{}",
                    std::net::Ipv4Addr::from(network),
                    mask.count_ones()
                )
            }
            IpRange::V6 { network, mask } => {
                format!(
                    "{}/{}",
                    std::net::Ipv6Addr::from(network),
                    mask.count_ones()
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_in_iso_and_epoch_forms() {
        let day = Some(1_767_225_600_000);
        assert_eq!(parse_date("2026-01-01T00:00:00Z"), day);
        assert_eq!(parse_date("2026-01-01"), day);
        assert_eq!(parse_date("2026-01-01T00:00:00"), day);
        assert_eq!(parse_date("2026-01-01T01:00:00+01:00"), day);
        assert_eq!(parse_date("1767225600"), day);
        assert_eq!(parse_date("20260101T000000Z"), day);
        assert_eq!(parse_date("tomorrow"), None);
        assert_eq!(parse_date("99999999999999999999"), None);
    }

    #[test]
    fn arn_patterns_match_component_wise() {
        let parts = arn_pattern(
            "arn:aws:iam::*:role/Admin*"
                .chars()
                .map(|c| match c {
                    '*' => Tok::Star,
                    c => Tok::Lit(c),
                })
                .collect(),
        );
        assert!(arn_matches(&parts, "arn:aws:iam::123456789012:role/AdminX"));
        assert!(!arn_matches(
            &parts,
            "arn:aws:iam::123456789012:user/AdminX"
        ));
        assert!(!arn_matches(&parts, "not-an-arn"));
        // `*` in the account part does not cross into the resource part.
        assert!(!arn_matches(&parts, "arn:aws:iam::1:2:role/Admin"));
    }

    #[test]
    fn ip_values_accept_addresses_and_cidrs() {
        assert!(parse_ip("10.0.0.0/8").is_some());
        assert!(parse_ip("2001:db8::/32").is_some());
        assert!(parse_ip("10.1.2.3").is_some());
        assert!(parse_ip("10.1.2.3/33").is_none());
    }
}
