//! ghz's call templates: the subset of Go's `text/template` that ghz configs use, rendered
//! per request with ghz's call data (`{{.RequestNumber}}`, `{{.WorkerID}}`, `{{.UUID}}`,
//! `{{.TimestampUnix}}`, ...), ghz's functions (`newUUID`, `randomString`, `randomInt`) and
//! the common sprig functions (`mod`, `add`, `printf`, `if`/`else` with `eq`, ...).
//!
//! A template is parsed once and rendered for each request; what it does not support
//! (`range`, `with`, variables, an unknown function) is an error when it is parsed, not a
//! silently different request.
//!
//! Why not the `gtmpl` crate (Go's template language in Rust, 0.7)? It parses every
//! construct ghz configs use, but renders some of them differently from Go, and so from
//! ghz (`gtmpl_renders_what_ghz_renders_differently` shows each case):
//! - its `printf` pads `%05d` with spaces (`    7`, Go: `00007`) and writes `%q` unquoted
//!   (`a`, Go: `"a"`): zero-padded ids are a common use of `printf` in call data;
//! - a misspelt field (`{{.RequestNumbr}}`) renders `<no value>`, a silently different
//!   request, where ghz fails the call (`can't evaluate field`) and this module refuses the
//!   template when it is parsed;
//! - its functions are plain `fn(&[Value])` pointers, so `randomString`, `randomInt` and
//!   `newUUID` could not draw from the run's seeded [`Rng`], nor `.UUID` and the timestamps
//!   be made once per request on first use, without thread-local state.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// A template that cannot be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template `{template}`: {problem}")]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// What is wrong.
    pub problem: String,
}

/// The method a request is for, as ghz names its parts in the call data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodNames {
    /// `pdp.v1.AuthorizationService.Check`.
    pub fully_qualified: String,
    /// `Check`.
    pub method: String,
    /// `AuthorizationService`.
    pub service: String,
    /// `CheckRequest`.
    pub input: String,
    /// `CheckResponse`.
    pub output: String,
}

/// ghz's call data for one request. Timestamps and the UUID are made when first used, once
/// per request (every use within one request sees the same value, as in ghz).
#[derive(Debug)]
pub struct CallData<'a> {
    /// ghz's worker id, `g0c{connection}w{worker}`.
    pub worker_id: &'a str,
    /// The request's number, from 0.
    pub request_number: u64,
    /// The method.
    pub method: &'a MethodNames,
    now: Cell<Option<SystemTime>>,
    uuid: RefCell<Option<String>>,
    rng: &'a Rng,
}

impl<'a> CallData<'a> {
    /// The call data of request `request_number` sent by `worker_id`.
    pub fn new(
        worker_id: &'a str,
        request_number: u64,
        method: &'a MethodNames,
        rng: &'a Rng,
    ) -> Self {
        CallData {
            worker_id,
            request_number,
            method,
            now: Cell::new(None),
            uuid: RefCell::new(None),
            rng,
        }
    }

    fn now(&self) -> SystemTime {
        if let Some(t) = self.now.get() {
            return t;
        }
        let t = SystemTime::now();
        self.now.set(Some(t));
        t
    }

    fn uuid(&self) -> String {
        let mut slot = self.uuid.borrow_mut();
        slot.get_or_insert_with(|| self.rng.uuid()).clone()
    }

    fn field(&self, name: &str) -> Option<Val> {
        let since_epoch = || self.now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Some(match name {
            "WorkerID" => Val::Str(self.worker_id.to_owned()),
            "RequestNumber" => Val::Int(i64::try_from(self.request_number).unwrap_or(i64::MAX)),
            "FullyQualifiedName" => Val::Str(self.method.fully_qualified.clone()),
            "MethodName" => Val::Str(self.method.method.clone()),
            "ServiceName" => Val::Str(self.method.service.clone()),
            "InputName" => Val::Str(self.method.input.clone()),
            "OutputName" => Val::Str(self.method.output.clone()),
            "IsClientStreaming" | "IsServerStreaming" => Val::Bool(false),
            "Timestamp" => Val::Str(
                chrono::DateTime::<chrono::Local>::from(self.now())
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            ),
            "TimestampUnix" => Val::Int(i64::try_from(since_epoch().as_secs()).unwrap_or(0)),
            "TimestampUnixMilli" => Val::Int(i64::try_from(since_epoch().as_millis()).unwrap_or(0)),
            "TimestampUnixNano" => Val::Int(i64::try_from(since_epoch().as_nanos()).unwrap_or(0)),
            "UUID" => Val::Str(self.uuid()),
            _ => return None,
        })
    }
}

/// The call data fields ghz defines.
pub const FIELDS: &[&str] = &[
    "WorkerID",
    "RequestNumber",
    "FullyQualifiedName",
    "MethodName",
    "ServiceName",
    "InputName",
    "OutputName",
    "IsClientStreaming",
    "IsServerStreaming",
    "Timestamp",
    "TimestampUnix",
    "TimestampUnixMilli",
    "TimestampUnixNano",
    "UUID",
];

/// A small, fast pseudo-random generator (xorshift64*) for `randomString`, `randomInt` and
/// UUIDs: load data needs variety, not secrecy.
#[derive(Debug)]
pub struct Rng(Cell<u64>);

impl Rng {
    /// Seeded from the clock and `salt`.
    pub fn new(salt: u64) -> Self {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Rng(Cell::new(
            (t ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
        ))
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let mut x = self.0.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `[lo, hi)` (`lo` when the range is empty).
    pub fn range(&self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = hi.abs_diff(lo);
        lo.wrapping_add_unsigned(self.next_u64() % span)
    }

    /// A random version 4 UUID, hyphenated.
    pub fn uuid(&self) -> String {
        let (a, b) = (self.next_u64(), self.next_u64());
        let a = (a & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
        let b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }

    fn alphanumeric(&self, len: usize) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        (0..len)
            .map(|_| {
                let i = (self.next_u64() % CHARS.len() as u64) as usize;
                CHARS.get(i).map_or('a', |&c| char::from(c))
            })
            .collect()
    }
}

/// A value inside a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// `nil`.
    Nil,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
}

impl Val {
    fn truthy(&self) -> bool {
        match self {
            Val::Nil => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
        }
    }

    /// sprig's conversion to an integer (strings are parsed; anything else unparsable is 0).
    fn to_i64(&self) -> i64 {
        match self {
            Val::Nil => 0,
            Val::Bool(b) => i64::from(*b),
            Val::Int(i) => *i,
            Val::Float(f) => *f as i64,
            Val::Str(s) => s
                .trim()
                .parse::<i64>()
                .ok()
                .or_else(|| s.trim().parse::<f64>().ok().map(|f| f as i64))
                .unwrap_or(0),
        }
    }

    fn to_f64(&self) -> f64 {
        match self {
            Val::Float(f) => *f,
            Val::Str(s) => s.trim().parse().unwrap_or(0.0),
            other => other.to_i64() as f64,
        }
    }

    fn write_to(&self, out: &mut String) {
        match self {
            Val::Nil => out.push_str("<no value>"),
            Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Val::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Val::Float(f) => {
                let _ = write!(out, "{f}");
            }
            Val::Str(s) => out.push_str(s),
        }
    }

    fn into_string(self) -> String {
        match self {
            Val::Str(s) => s,
            other => {
                let mut s = String::new();
                other.write_to(&mut s);
                s
            }
        }
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Output(Pipeline),
    If {
        branches: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline(Vec<Command>);

#[derive(Debug, Clone)]
enum Command {
    /// A function called with arguments (and the piped value last).
    Call(Func, Vec<Operand>),
    /// A single operand.
    Operand(Operand),
}

#[derive(Debug, Clone)]
enum Operand {
    Field(String),
    Dot,
    Lit(Val),
    Sub(Pipeline),
    /// A function named without arguments inside a command's arguments, e.g. `{{print newUUID}}`.
    Func(Func),
}

macro_rules! funcs {
    ($($variant:ident = $name:literal),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Func { $($variant),* }
        impl Func {
            fn from_name(name: &str) -> Option<Func> {
                match name { $($name => Some(Func::$variant),)* _ => None }
            }
        }
        /// The functions templates may call.
        pub const FUNCTIONS: &[&str] = &[$($name),*];
    };
}

funcs! {
    And = "and", Or = "or", Not = "not", Eq = "eq", Ne = "ne", Lt = "lt", Le = "le", Gt = "gt",
    Ge = "ge", Len = "len", Print = "print", Printf = "printf", Println = "println",
    NewUuid = "newUUID", RandomString = "randomString", RandomInt = "randomInt",
    Add = "add", Add1 = "add1", Sub = "sub", Mul = "mul", Div = "div", Mod = "mod", Max = "max",
    Min = "min", ToString = "toString", Atoi = "atoi", Int = "int", Int64 = "int64",
    Float64 = "float64", Upper = "upper", Lower = "lower", Trim = "trim", Repeat = "repeat",
    Replace = "replace", Substr = "substr", Trunc = "trunc", Contains = "contains",
    HasPrefix = "hasPrefix", HasSuffix = "hasSuffix", Quote = "quote", Squote = "squote",
    Default = "default", Ternary = "ternary", Uuidv4 = "uuidv4", RandInt = "randInt",
    RandAlphaNum = "randAlphaNum", Cat = "cat",
}

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let err = |problem: String| TemplateError {
            template: source.to_owned(),
            problem,
        };
        let items = split(source).map_err(err)?;
        let mut pos = 0;
        let (nodes, end) = parse_nodes(&items, &mut pos).map_err(err)?;
        if let Some(end) = end {
            return Err(err(format!("unexpected `{{{{{end}}}}}`")));
        }
        Ok(Template {
            source: source.to_owned(),
            nodes,
        })
    }

    /// Whether `text` holds a template action at all.
    pub fn is_template(text: &str) -> bool {
        text.contains("{{")
    }

    /// Renders the template with `data`.
    pub fn render(&self, data: &CallData<'_>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len() + 16);
        render_nodes(&self.nodes, data, &mut out).map_err(|problem| TemplateError {
            template: self.source.clone(),
            problem,
        })?;
        Ok(out)
    }
}

/// Text and actions, in order, with `{{-`/`-}}` trimming applied.
#[derive(Debug)]
enum Item {
    Text(String),
    Action(String),
}

fn split(source: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut rest = source;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let (text, after) = rest.split_at(open);
        let after = after.get(2..).unwrap_or_default();
        let trim_left = after.starts_with("- ") || after.starts_with("-\t") || after == "-";
        let mut text = if trim_next { text.trim_start() } else { text };
        if trim_left {
            text = text.trim_end();
        }
        if !text.is_empty() {
            items.push(Item::Text(text.to_owned()));
        }
        let Some(close) = after.find("}}") else {
            return Err("unclosed action (no `}}`)".into());
        };
        let mut body = after.get(..close).unwrap_or_default();
        if trim_left {
            body = body.get(1..).unwrap_or_default();
        }
        trim_next = body.ends_with(" -") || body.ends_with("\t-");
        if trim_next {
            body = body.get(..body.len() - 1).unwrap_or_default();
        }
        let body = body.trim();
        if !(body.starts_with("/*") && body.ends_with("*/")) {
            items.push(Item::Action(body.to_owned()));
        }
        rest = after.get(close + 2..).unwrap_or_default();
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        items.push(Item::Text(text.to_owned()));
    }
    Ok(items)
}

/// Parses nodes up to an `else`/`end` (returned) or the end of the items.
fn parse_nodes(items: &[Item], pos: &mut usize) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(item) = items.get(*pos) {
        *pos += 1;
        match item {
            Item::Text(t) => nodes.push(Node::Text(t.clone())),
            Item::Action(a) => {
                let keyword = a.split_whitespace().next().unwrap_or_default();
                match keyword {
                    "end" | "else" => return Ok((nodes, Some(a.clone()))),
                    "if" => nodes.push(parse_if(a.get(2..).unwrap_or_default(), items, pos)?),
                    "range" | "with" | "define" | "template" | "block" | "break" | "continue" => {
                        return Err(format!("`{keyword}` is not supported by pdp-loadtest"))
                    }
                    "" => return Err("empty action".into()),
                    _ => nodes.push(Node::Output(parse_pipeline(a)?)),
                }
            }
        }
    }
    Ok((nodes, None))
}

fn parse_if(cond: &str, items: &[Item], pos: &mut usize) -> Result<Node, String> {
    let mut branches = Vec::new();
    let mut cond = parse_pipeline(cond)?;
    loop {
        let (body, end) = parse_nodes(items, pos)?;
        branches.push((cond, body));
        match end.as_deref() {
            Some("end") => {
                return Ok(Node::If {
                    branches,
                    otherwise: Vec::new(),
                })
            }
            Some("else") => {
                let (otherwise, end) = parse_nodes(items, pos)?;
                if end.as_deref() != Some("end") {
                    return Err("`if ... else` without `end`".into());
                }
                return Ok(Node::If {
                    branches,
                    otherwise,
                });
            }
            Some(other) if other.starts_with("else if ") => {
                cond = parse_pipeline(other.get(8..).unwrap_or_default())?;
            }
            Some(other) => return Err(format!("unexpected `{{{{{other}}}}}` in `if`")),
            None => return Err("`if` without `end`".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Field(String),
    Dot,
    Lit(Val),
    Open,
    Close,
    Pipe,
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '|' => {
                chars.next();
                out.push(Token::Pipe);
            }
            '$' => return Err("variables (`$`) are not supported by pdp-loadtest".into()),
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated string".into()),
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, '\\')) => s.push('\\'),
                            Some((_, '"')) => s.push('"'),
                            Some((_, other)) => {
                                return Err(format!("unsupported escape `\\{other}`"))
                            }
                            None => return Err("unterminated string".into()),
                        },
                        Some((_, c)) => s.push(c),
                    }
                }
                out.push(Token::Lit(Val::Str(s)));
            }
            '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated raw string".into()),
                        Some((_, '`')) => break,
                        Some((_, c)) => s.push(c),
                    }
                }
                out.push(Token::Lit(Val::Str(s)));
            }
            '.' => {
                chars.next();
                let mut name = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if name.is_empty() {
                    out.push(Token::Dot);
                } else if chars.peek().is_some_and(|&(_, c)| c == '.') {
                    return Err(format!("`.{name}.`: nested fields are not supported"));
                } else {
                    out.push(Token::Field(name));
                }
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let mut end = i;
                while let Some(&(j, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '+' || c == '_' {
                        end = j + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = text.get(i..end).unwrap_or_default().replace('_', "");
                let v = if let Ok(n) = word.parse::<i64>() {
                    Val::Int(n)
                } else if let Some(n) = word
                    .strip_prefix("0x")
                    .and_then(|h| i64::from_str_radix(h, 16).ok())
                {
                    Val::Int(n)
                } else if let Ok(f) = word.parse::<f64>() {
                    Val::Float(f)
                } else {
                    return Err(format!("bad number `{word}`"));
                };
                out.push(Token::Lit(v));
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut end = i;
                while let Some(&(j, c)) = chars.peek() {
                    if c.is_alphanumeric() || c == '_' {
                        end = j + c.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = text.get(i..end).unwrap_or_default();
                out.push(match word {
                    "true" => Token::Lit(Val::Bool(true)),
                    "false" => Token::Lit(Val::Bool(false)),
                    "nil" => Token::Lit(Val::Nil),
                    w => Token::Ident(w.to_owned()),
                });
            }
            other => return Err(format!("unexpected `{other}`")),
        }
    }
    Ok(out)
}

fn parse_pipeline(text: &str) -> Result<Pipeline, String> {
    if text.contains(":=") || text.contains(" = ") {
        return Err("variables are not supported by pdp-loadtest".into());
    }
    let toks = tokens(text)?;
    let mut pos = 0;
    let p = pipeline(&toks, &mut pos)?;
    if let Some(t) = toks.get(pos) {
        return Err(format!("unexpected {t:?}"));
    }
    Ok(p)
}

fn pipeline(toks: &[Token], pos: &mut usize) -> Result<Pipeline, String> {
    let mut cmds = vec![command(toks, pos)?];
    while toks.get(*pos) == Some(&Token::Pipe) {
        *pos += 1;
        cmds.push(command(toks, pos)?);
    }
    Ok(Pipeline(cmds))
}

fn command(toks: &[Token], pos: &mut usize) -> Result<Command, String> {
    let mut operands = Vec::new();
    let mut head = None;
    while let Some(t) = toks.get(*pos) {
        let op = match t {
            Token::Pipe | Token::Close => break,
            Token::Ident(name) => {
                let f = Func::from_name(name).ok_or_else(|| {
                    format!(
                        "function `{name}` is not supported by pdp-loadtest (it has: {})",
                        FUNCTIONS.join(", ")
                    )
                })?;
                if operands.is_empty() && head.is_none() {
                    head = Some(f);
                    *pos += 1;
                    continue;
                }
                Operand::Func(f)
            }
            Token::Field(name) => {
                if !FIELDS.contains(&name.as_str()) {
                    return Err(format!(
                        "`.{name}` is not a field of ghz's call data (it has: {})",
                        FIELDS.join(", ")
                    ));
                }
                Operand::Field(name.clone())
            }
            Token::Dot => Operand::Dot,
            Token::Lit(v) => Operand::Lit(v.clone()),
            Token::Open => {
                *pos += 1;
                let p = pipeline(toks, pos)?;
                if toks.get(*pos) != Some(&Token::Close) {
                    return Err("unclosed `(`".into());
                }
                Operand::Sub(p)
            }
        };
        *pos += 1;
        operands.push(op);
    }
    match head {
        Some(f) => Ok(Command::Call(f, operands)),
        None => match <[Operand; 1]>::try_from(operands) {
            Ok([op]) => Ok(Command::Operand(op)),
            Err(ops) if ops.is_empty() => Err("missing value".into()),
            Err(_) => Err("more than one value without a function".into()),
        },
    }
}

fn render_nodes(nodes: &[Node], data: &CallData<'_>, out: &mut String) -> Result<(), String> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Output(p) => eval_pipeline(p, data)?.write_to(out),
            Node::If {
                branches,
                otherwise,
            } => {
                let mut taken = false;
                for (cond, body) in branches {
                    if eval_pipeline(cond, data)?.truthy() {
                        render_nodes(body, data, out)?;
                        taken = true;
                        break;
                    }
                }
                if !taken {
                    render_nodes(otherwise, data, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_pipeline(p: &Pipeline, data: &CallData<'_>) -> Result<Val, String> {
    let mut piped: Option<Val> = None;
    for cmd in &p.0 {
        piped = Some(match cmd {
            Command::Operand(op) => {
                if piped.is_some() {
                    return Err("a value cannot be piped into a non-function".into());
                }
                eval_operand(op, data)?
            }
            Command::Call(f, ops) => {
                let mut args = Vec::with_capacity(ops.len() + 1);
                for op in ops {
                    args.push(eval_operand(op, data)?);
                }
                if let Some(v) = piped.take() {
                    args.push(v);
                }
                call(*f, args, data)?
            }
        });
    }
    Ok(piped.unwrap_or(Val::Nil))
}

fn eval_operand(op: &Operand, data: &CallData<'_>) -> Result<Val, String> {
    Ok(match op {
        Operand::Field(name) => data
            .field(name)
            .ok_or_else(|| format!("no field `.{name}`"))?,
        Operand::Dot => Val::Str(String::new()),
        Operand::Lit(v) => v.clone(),
        Operand::Sub(p) => eval_pipeline(p, data)?,
        Operand::Func(f) => call(*f, Vec::new(), data)?,
    })
}

fn compare(a: &Val, b: &Val) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        (Val::Nil, Val::Nil) => Some(std::cmp::Ordering::Equal),
        (Val::Int(_) | Val::Float(_), Val::Int(_) | Val::Float(_)) => {
            a.to_f64().partial_cmp(&b.to_f64())
        }
        _ => None,
    }
}

fn arity(name: &str, args: &[Val], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!("`{name}` takes {n} arguments, got {}", args.len()))
    }
}

fn call(f: Func, args: Vec<Val>, data: &CallData<'_>) -> Result<Val, String> {
    use std::cmp::Ordering;
    let int = |i: usize| args.get(i).map_or(0, Val::to_i64);
    let string = |i: usize| {
        args.get(i)
            .cloned()
            .map(Val::into_string)
            .unwrap_or_default()
    };
    let cmp = |name: &str, want: &[Ordering]| -> Result<Val, String> {
        arity(name, &args, 2)?;
        let (Some(a), Some(b)) = (args.first(), args.get(1)) else {
            return Err(format!("`{name}` takes 2 arguments"));
        };
        let o =
            compare(a, b).ok_or_else(|| format!("`{name}`: incompatible types for comparison"))?;
        Ok(Val::Bool(want.contains(&o)))
    };
    Ok(match f {
        Func::And => {
            let mut last = Val::Bool(true);
            for a in args {
                if !a.truthy() {
                    return Ok(a);
                }
                last = a;
            }
            last
        }
        Func::Or => {
            let mut last = Val::Bool(false);
            for a in args {
                if a.truthy() {
                    return Ok(a);
                }
                last = a;
            }
            last
        }
        Func::Not => {
            arity("not", &args, 1)?;
            Val::Bool(!args.first().is_some_and(Val::truthy))
        }
        Func::Eq | Func::Ne => {
            let Some((first, rest)) = args.split_first() else {
                return Err("`eq` needs arguments".into());
            };
            if rest.is_empty() {
                return Err("`eq` needs at least 2 arguments".into());
            }
            let mut equal = false;
            for other in rest {
                let o = compare(first, other)
                    .ok_or_else(|| "`eq`: incompatible types for comparison".to_owned())?;
                equal |= o == Ordering::Equal;
            }
            Val::Bool(if f == Func::Eq { equal } else { !equal })
        }
        Func::Lt => cmp("lt", &[Ordering::Less])?,
        Func::Le => cmp("le", &[Ordering::Less, Ordering::Equal])?,
        Func::Gt => cmp("gt", &[Ordering::Greater])?,
        Func::Ge => cmp("ge", &[Ordering::Greater, Ordering::Equal])?,
        Func::Len => {
            arity("len", &args, 1)?;
            Val::Int(string(0).chars().count() as i64)
        }
        Func::Print | Func::Cat | Func::Println => {
            let mut s = String::new();
            for (i, a) in args.iter().enumerate() {
                let sep = match f {
                    Func::Println | Func::Cat => i > 0,
                    // Go's print puts spaces between operands when neither is a string.
                    _ => {
                        i > 0
                            && !matches!(a, Val::Str(_))
                            && !matches!(args.get(i - 1), Some(Val::Str(_)))
                    }
                };
                if sep {
                    s.push(' ');
                }
                a.write_to(&mut s);
            }
            if f == Func::Println {
                s.push('\n');
            }
            Val::Str(s)
        }
        Func::Printf => {
            let Some((format, rest)) = args.split_first() else {
                return Err("`printf` needs a format".into());
            };
            Val::Str(printf(&format.clone().into_string(), rest)?)
        }
        Func::NewUuid | Func::Uuidv4 => Val::Str(data.rng.uuid()),
        Func::RandomString => {
            let n = int(0);
            let n = if n <= 0 { data.rng.range(2, 17) } else { n };
            Val::Str(data.rng.alphanumeric(usize::try_from(n).unwrap_or(0)))
        }
        Func::RandAlphaNum => Val::Str(data.rng.alphanumeric(usize::try_from(int(0)).unwrap_or(0))),
        Func::RandomInt | Func::RandInt => {
            arity("randomInt", &args, 2)?;
            Val::Int(data.rng.range(int(0), int(1)))
        }
        Func::Add => Val::Int(args.iter().map(Val::to_i64).fold(0, i64::wrapping_add)),
        Func::Add1 => Val::Int(int(0).wrapping_add(1)),
        Func::Sub => Val::Int(int(0).wrapping_sub(int(1))),
        Func::Mul => Val::Int(args.iter().map(Val::to_i64).fold(1, i64::wrapping_mul)),
        Func::Div | Func::Mod => {
            arity(if f == Func::Div { "div" } else { "mod" }, &args, 2)?;
            let d = int(1);
            if d == 0 {
                return Err("integer divide by zero".into());
            }
            Val::Int(if f == Func::Div {
                int(0).wrapping_div(d)
            } else {
                int(0).wrapping_rem(d)
            })
        }
        Func::Max => Val::Int(args.iter().map(Val::to_i64).max().unwrap_or(0)),
        Func::Min => Val::Int(args.iter().map(Val::to_i64).min().unwrap_or(0)),
        Func::ToString => Val::Str(string(0)),
        Func::Atoi | Func::Int | Func::Int64 => Val::Int(int(0)),
        Func::Float64 => Val::Float(args.first().map_or(0.0, Val::to_f64)),
        Func::Upper => Val::Str(string(0).to_uppercase()),
        Func::Lower => Val::Str(string(0).to_lowercase()),
        Func::Trim => Val::Str(string(0).trim().to_owned()),
        Func::Repeat => Val::Str(string(1).repeat(usize::try_from(int(0)).unwrap_or(0))),
        Func::Replace => {
            arity("replace", &args, 3)?;
            Val::Str(string(2).replace(&string(0), &string(1)))
        }
        Func::Substr => {
            arity("substr", &args, 3)?;
            let s: Vec<char> = string(2).chars().collect();
            let len = s.len() as i64;
            let start = int(0).clamp(0, len) as usize;
            let end = if int(1) < 0 {
                len
            } else {
                int(1).clamp(0, len)
            } as usize;
            Val::Str(
                s.get(start..end.max(start))
                    .unwrap_or_default()
                    .iter()
                    .collect(),
            )
        }
        Func::Trunc => {
            arity("trunc", &args, 2)?;
            let s: Vec<char> = string(1).chars().collect();
            let n = int(0);
            let len = s.len() as i64;
            let kept = if n >= 0 {
                s.get(..n.min(len) as usize)
            } else {
                s.get((len + n).max(0) as usize..)
            };
            Val::Str(kept.unwrap_or_default().iter().collect())
        }
        Func::Contains => Val::Bool(string(1).contains(&string(0))),
        Func::HasPrefix => Val::Bool(string(1).starts_with(&string(0))),
        Func::HasSuffix => Val::Bool(string(1).ends_with(&string(0))),
        Func::Quote => Val::Str(format!("{:?}", string(0))),
        Func::Squote => Val::Str(format!("'{}'", string(0))),
        Func::Default => {
            arity("default", &args, 2)?;
            let given = args.get(1).cloned().unwrap_or(Val::Nil);
            if given.truthy() {
                given
            } else {
                args.first().cloned().unwrap_or(Val::Nil)
            }
        }
        Func::Ternary => {
            arity("ternary", &args, 3)?;
            let pick = if args.get(2).is_some_and(Val::truthy) {
                0
            } else {
                1
            };
            args.get(pick).cloned().unwrap_or(Val::Nil)
        }
    })
}

/// Go's `fmt.Sprintf` for the verbs load data needs: `%d %s %v %q %x %X %f %t %%` with flags
/// `-`, `0`, `+`, a width and a precision.
fn printf(format: &str, args: &[Val]) -> Result<String, String> {
    let mut out = String::new();
    let mut args = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero, mut plus) = (false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' => plus = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = 0usize;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = width * 10 + d as usize;
            chars.next();
        }
        let mut precision = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = 0usize;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                p = p * 10 + d as usize;
                chars.next();
            }
            precision = Some(p);
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.next() else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        let body = match verb {
            'd' => {
                let n = arg.to_i64();
                if plus && n >= 0 {
                    format!("+{n}")
                } else {
                    n.to_string()
                }
            }
            's' | 'v' => arg.clone().into_string(),
            'q' => format!("{:?}", arg.clone().into_string()),
            'x' => match arg {
                Val::Str(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                other => format!("{:x}", other.to_i64()),
            },
            'X' => match arg {
                Val::Str(s) => s.bytes().map(|b| format!("{b:02X}")).collect(),
                other => format!("{:X}", other.to_i64()),
            },
            'f' => format!("{:.*}", precision.unwrap_or(6), arg.to_f64()),
            't' => arg.truthy().to_string(),
            other => return Err(format!("`printf`: verb `%{other}` is not supported")),
        };
        let pad = width.saturating_sub(body.chars().count());
        if left {
            out.push_str(&body);
            out.extend(std::iter::repeat_n(' ', pad));
        } else if zero && matches!(verb, 'd' | 'f' | 'x' | 'X') {
            let (sign, digits) = match body.strip_prefix('-') {
                Some(d) => ("-", d),
                None => match body.strip_prefix('+') {
                    Some(d) => ("+", d),
                    None => ("", body.as_str()),
                },
            };
            out.push_str(sign);
            out.extend(std::iter::repeat_n('0', pad));
            out.push_str(digits);
        } else {
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(&body);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    fn names() -> MethodNames {
        MethodNames {
            fully_qualified: "pdp.v1.AuthorizationService.Check".into(),
            method: "Check".into(),
            service: "AuthorizationService".into(),
            input: "CheckRequest".into(),
            output: "CheckResponse".into(),
        }
    }

    fn render(t: &str, n: u64) -> String {
        let m = names();
        let rng = Rng::new(1);
        let data = CallData::new("g0c1w2", n, &m, &rng);
        Template::parse(t).unwrap().render(&data).unwrap()
    }

    #[test]
    fn fields_render_as_ghz_does() {
        assert_eq!(
            render("r-{{.RequestNumber}}-{{ .WorkerID }}", 42),
            "r-42-g0c1w2"
        );
        assert_eq!(
            render("{{.MethodName}}/{{.InputName}}", 0),
            "Check/CheckRequest"
        );
        let u = render("{{.UUID}} {{.UUID}}", 0);
        let (a, b) = u.split_once(' ').unwrap();
        assert_eq!(a, b, "one UUID per request");
        assert_eq!(a.len(), 36);
        assert_eq!(a.chars().nth(14), Some('4'));
        assert!(render("{{.TimestampUnix}}", 0).parse::<i64>().unwrap() > 1_600_000_000);
    }

    #[test]
    fn conditions_and_sprig_arithmetic_vary_by_request_number() {
        let t = "{{if eq (mod .RequestNumber 4) 3}}false{{else}}true{{end}}";
        let got: Vec<String> = (0..8).map(|n| render(t, n)).collect();
        assert_eq!(
            got,
            ["true", "true", "true", "false", "true", "true", "true", "false"]
        );
        assert_eq!(render("{{mod .RequestNumber 1000}}", 12345), "345");
        assert_eq!(render("{{add 1 2 .RequestNumber}}", 3), "6");
        assert_eq!(render("{{.RequestNumber | mod 10}}", 7), "3");
        assert_eq!(render("{{printf `%05d` .RequestNumber}}", 42), "00042");
        assert_eq!(render(r#"{{printf "%s-%d" "a" 3}}"#, 0), "a-3");
        assert_eq!(
            render(
                "{{if lt .RequestNumber 2}}a{{else if lt .RequestNumber 4}}b{{else}}c{{end}}",
                3
            ),
            "b"
        );
        assert_eq!(render("  {{- .RequestNumber -}}  ", 5), "5");
        assert_eq!(render("{{/* a comment */}}x", 5), "x");
        assert_eq!(render("{{randomString 8 | len}}", 0), "8");
        let r: i64 = render("{{randomInt 10 20}}", 0).parse().unwrap();
        assert!((10..20).contains(&r));
    }

    #[test]
    fn unsupported_constructs_are_refused_when_parsed() {
        for bad in [
            "{{range .X}}{{end}}",
            "{{.Nope}}",
            "{{nosuch 1}}",
            "{{$x := 1}}",
            "{{if true}}x",
            "{{.RequestNumber",
            "{{end}}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    /// What the `gtmpl` crate renders differently from Go's `text/template` (and so from
    /// ghz), next to what this module renders. Go's output was checked with Go's own
    /// `text/template` executing these templates over a struct with `RequestNumber`.
    #[test]
    fn gtmpl_renders_what_ghz_renders_differently() {
        let mut data = std::collections::HashMap::new();
        data.insert("RequestNumber".to_owned(), gtmpl::Value::from(7u64));
        let data = gtmpl::Context::from(gtmpl::Value::Map(data));
        let gtmpl_render = |t: &str| {
            let mut tmpl = gtmpl::Template::default();
            tmpl.parse(t)
                .map_err(|e| e.to_string())
                .and_then(|()| tmpl.render(&data).map_err(|e| e.to_string()))
        };
        for (template, go, gtmpl_renders) in [
            ("{{printf `%05d` .RequestNumber}}", "00007", "    7"),
            (r#"{{printf "%q" "a"}}"#, r#""a""#, "a"),
        ] {
            assert_eq!(gtmpl_render(template).as_deref(), Ok(gtmpl_renders));
            assert_eq!(render(template, 7), go, "{template}");
        }
        // A misspelt field: Go fails the call, gtmpl sends `<no value>`, this module refuses
        // the template.
        assert_eq!(
            gtmpl_render("user-{{.RequestNumbr}}").as_deref(),
            Ok("user-<no value>")
        );
        assert!(Template::parse("user-{{.RequestNumbr}}").is_err());
    }

    #[test]
    fn text_without_actions_is_unchanged() {
        assert_eq!(render("plain", 1), "plain");
        assert!(!Template::is_template("plain"));
    }
}
