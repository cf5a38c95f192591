//! Plans as PostgreSQL: [`Plan::to_sql`] renders a [`Plan`] as a parameterized `WHERE`
//! clause over a table with an id column (text) and a tags column (a JSONB object of
//! string values, `{"owner": "alice"}`), so that the database returns exactly the rows
//! the PDP allows.
//!
//! Values from the plan are only ever bound as parameters (`$1::text`, …), never written
//! into the clause; column names are checked as identifiers and quoted. The clause reads
//! tags as the PDP does: a tag key is found exactly, else as the first key (in byte order)
//! equal to it but for ASCII case; a JSON `null` value or a `NULL` column is no tag. It
//! needs a UTF-8 database and deterministic collations (PostgreSQL's default), so that
//! `_` matches one character and `=` compares bytes.
//!
//! What cannot be rendered with exactly the PDP's semantics is an error naming it
//! ([`SqlError`]), never an approximate query: `Date*`, `Binary*`, `IpAddress`, `Arn*`
//! operators, `StringEqualsIgnoreCase` with a non-ASCII value, and values still holding a
//! policy variable. Id templates (a `Resource` made from the resource's own tags) are
//! rendered, each tag value escaped for `LIKE`. A numeric comparison of a tag value the clause
//! cannot read exactly (over 1,000 characters, or an exponent of 1,000 or more) is SQL
//! `NULL` (unknown): such a row is returned only when the rest of the clause allows it
//! whatever that comparison says.

use std::fmt::Write as _;

use pdp_proto::v1 as pb;

use crate::Plan;

/// The columns a plan is rendered over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTable {
    id: String,
    tags: String,
    first_param: usize,
}

impl SqlTable {
    /// The id column (text) and the tags column (JSONB), each a column name, optionally
    /// qualified (`d.id`); the names are quoted, so they are case-sensitive.
    pub fn new(id: &str, tags: &str) -> SqlTable {
        SqlTable {
            id: id.to_owned(),
            tags: tags.to_owned(),
            first_param: 1,
        }
    }

    /// The first placeholder is `$n` [default: 1], for a clause appended to a query that
    /// has parameters of its own.
    #[must_use]
    pub fn first_param(mut self, n: usize) -> Self {
        self.first_param = n;
        self
    }
}

/// A rendered `WHERE` clause: `clause` with placeholders `$first…`, bound to `params` in
/// order (each a text parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlWhere {
    /// The condition, without the `WHERE` keyword.
    pub clause: String,
    /// The placeholders' values, in order.
    pub params: Vec<SqlParam>,
}

/// One parameter's value: always bound as text (the clause casts where it needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlParam(String);

impl SqlParam {
    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SqlParam {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Why a plan cannot be rendered as SQL. Nothing approximate is rendered in its place:
/// treat it as allowing nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    /// A column name is not a plain identifier.
    #[error("`{name}` is not a column name: {why}")]
    Identifier {
        /// The name given.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The first placeholder cannot be `$0`.
    #[error("the first placeholder must be `$1` or later (got `${0}`)")]
    FirstParam(usize),
    /// A tag condition with no exact SQL equivalent.
    #[error("`{operator}` on `{key}` cannot be rendered in SQL exactly: {why}")]
    Condition {
        /// The condition's operator.
        operator: String,
        /// The condition's key.
        key: String,
        /// Why.
        why: String,
    },
    /// An id template this renderer cannot read.
    #[error("the id template `{pattern}` cannot be rendered in SQL: {why}")]
    IdTemplate {
        /// The template.
        pattern: String,
        /// Why.
        why: String,
    },
    /// The plan breaks the `PlanResources` contract.
    #[error("the plan is malformed: {0}")]
    Malformed(String),
    /// The plan is too large for one query.
    #[error("the plan is too large for one query: {0}")]
    TooLarge(String),
}

/// The deepest expression rendered (the PDP's plans are simplified and shallow).
const MAX_DEPTH: usize = 64;
/// The most placeholders a PostgreSQL statement may have.
const MAX_PARAM: usize = 65_535;
/// Longer tag values are unknown (`NULL`) to numeric comparisons.
const MAX_NUMERIC_TEXT: usize = 1000;

/// The characters Rust's `str::trim` removes (Unicode `White_Space`), as a regex class.
const WS: &str =
    r"[\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
/// A number as the PDP reads one (Rust's `f64` syntax; `inf` and `NaN` are not finite).
const NUMBER: &str = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?";
/// The same with an exponent PostgreSQL's `numeric` reads (at most 999 after its zeros).
const SAFE_NUMBER: &str = r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?0*[0-9]{1,3})?";
/// ASCII upper and lower case, for `translate`.
const UPPER: &str = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ'";
const LOWER: &str = "'abcdefghijklmnopqrstuvwxyz'";

impl Plan {
    /// The plan as a PostgreSQL `WHERE` clause over `table`: `TRUE` when every resource is
    /// allowed, `FALSE` when none is, else the condition with its values as parameters.
    ///
    /// ```
    /// use pdp_client::{pb, sql::SqlTable, Plan};
    ///
    /// let plan = Plan::from_response(&pb::PlanResourcesResponse {
    ///     kind: pb::PlanKind::Conditional as i32,
    ///     condition: Some(pb::ResourceExpr {
    ///         expr: Some(pb::resource_expr::Expr::IdLike("doc:alice/*".into())),
    ///     }),
    ///     ..Default::default()
    /// });
    /// let sql = plan.to_sql(&SqlTable::new("id", "tags"))?;
    /// assert_eq!(sql.clause, r#"("id" LIKE $1::text ESCAPE E'\\')"#);
    /// assert_eq!(sql.params[0].as_str(), "doc:alice/%");
    /// # Ok::<(), pdp_client::sql::SqlError>(())
    /// ```
    pub fn to_sql(&self, table: &SqlTable) -> Result<SqlWhere, SqlError> {
        let mut w = Writer {
            id: quote(&table.id)?,
            tags: quote(&table.tags)?,
            params: Vec::new(),
            next: match table.first_param {
                0 => return Err(SqlError::FirstParam(0)),
                n => n,
            },
        };
        let clause = match (self.kind(), self.condition()) {
            (crate::PlanKind::AlwaysAllowed, _) => "TRUE".to_owned(),
            (crate::PlanKind::Conditional, Some(e)) => w.expr(e, 0)?,
            (crate::PlanKind::AlwaysDenied | crate::PlanKind::Conditional, _) => "FALSE".to_owned(),
        };
        Ok(SqlWhere {
            clause,
            params: w.params,
        })
    }
}

/// A column name, checked and quoted: each dot-separated part an ASCII identifier of at
/// most 63 bytes.
fn quote(name: &str) -> Result<String, SqlError> {
    let bad = |why| SqlError::Identifier {
        name: name.to_owned(),
        why,
    };
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() > 3 {
        return Err(bad("more than three dot-separated parts"));
    }
    let mut out = String::new();
    for part in parts {
        let mut chars = part.chars();
        match chars.next() {
            None => return Err(bad("an empty part")),
            Some(c) if !(c.is_ascii_alphabetic() || c == '_') => {
                return Err(bad("a part must start with an ASCII letter or `_`"))
            }
            Some(_) => {}
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            return Err(bad(
                "a part may hold only ASCII letters, digits, `_` and `$`",
            ));
        }
        if part.len() > 63 {
            return Err(bad("a part is longer than 63 bytes"));
        }
        if !out.is_empty() {
            out.push('.');
        }
        let _ = write!(out, "\"{part}\"");
    }
    Ok(out)
}

/// Text as a PostgreSQL escape string literal: for the clause's own constants only (plan
/// values are parameters).
fn e_literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An IAM glob (`*`, `?`; `\` before a literal `*`, `?` or `\`) as a `LIKE` pattern with
/// `\` as its escape.
fn like_pattern(glob: &str) -> Result<String, String> {
    let mut out = String::with_capacity(glob.len() + 4);
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(l @ ('*' | '?')) => out.push(l),
                Some('\\') => out.push_str("\\\\"),
                Some(other) => {
                    return Err(format!(
                        "`\\{other}` in `{glob}` escapes neither `*`, `?` nor `\\`"
                    ))
                }
                None => return Err(format!("`{glob}` ends in a lone `\\`")),
            },
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Text as a glob that matches it literally.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How a condition's values compare, as the PDP's operators do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Str,
    StrIc,
    Like,
    Num(Cmp),
    Bool,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

/// The operators rendered: name, family, negated.
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
    ("Bool", Family::Bool, false),
    ("Null", Family::Null, false),
];

/// The operators the PDP knows and this renderer does not, with why.
const UNRENDERED: &[(&str, &str)] = &[
    ("Date", "the PDP reads dates in several ISO 8601 forms and as epoch seconds, which PostgreSQL cannot parse the same way without failing on other text"),
    ("Binary", "base64 decoding has no error-free exact form in SQL"),
    ("IpAddress", "PostgreSQL's `inet` parsing fails on text that is not an address instead of not matching"),
    ("NotIpAddress", "PostgreSQL's `inet` parsing fails on text that is not an address instead of not matching"),
    ("Arn", "ARN patterns match component by component"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

struct Writer {
    id: String,
    tags: String,
    params: Vec<SqlParam>,
    next: usize,
}

impl Writer {
    /// A placeholder for `value`.
    fn param(&mut self, value: impl Into<String>) -> Result<String, SqlError> {
        let n = self.next;
        if n > MAX_PARAM {
            return Err(SqlError::TooLarge(format!(
                "more than {MAX_PARAM} placeholders"
            )));
        }
        self.next += 1;
        self.params.push(SqlParam(value.into()));
        Ok(format!("${n}::text"))
    }

    fn expr(&mut self, e: &pb::ResourceExpr, depth: usize) -> Result<String, SqlError> {
        use pb::resource_expr::Expr as E;
        if depth > MAX_DEPTH {
            return Err(SqlError::TooLarge(format!(
                "expressions nested deeper than {MAX_DEPTH}"
            )));
        }
        let list = |w: &mut Writer, es: &[pb::ResourceExpr], op: &str, empty: &str| {
            if es.is_empty() {
                return Ok(empty.to_owned());
            }
            let parts = es
                .iter()
                .map(|e| w.expr(e, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("({})", parts.join(op)))
        };
        match &e.expr {
            None => Err(SqlError::Malformed(
                "an expression with nothing in it".into(),
            )),
            Some(E::IdLike(glob)) => {
                let pattern = like_pattern(glob).map_err(SqlError::Malformed)?;
                let p = self.param(pattern)?;
                Ok(format!("({} LIKE {p} ESCAPE E'\\\\')", self.id))
            }
            Some(E::Tag(t)) => self.tag(t),
            Some(E::IdTemplate(t)) => self.id_template(t),
            Some(E::Not(e)) => Ok(format!("(NOT {})", self.expr(e, depth + 1)?)),
            Some(E::And(l)) => list(self, &l.exprs, " AND ", "TRUE"),
            Some(E::Or(l)) => list(self, &l.exprs, " OR ", "FALSE"),
        }
    }

    /// A tag condition, with the PDP's rules: a missing tag satisfies an `IfExists` or
    /// `ForAllValues:` operator and a negated plain one, and nothing else; a present tag
    /// (one value) satisfies the operator when it matches a value, or none when negated.
    /// A tag value found by the long form of [`Self::lookup`] is read once, bound as
    /// `pdp_v.v` in a subquery around the test.
    fn tag(&mut self, t: &pb::TagTest) -> Result<String, SqlError> {
        let mut bound = None;
        let test = self.tag_test(t, &mut bound)?;
        Ok(match bound {
            Some(lookup) => format!("(SELECT {test} FROM (SELECT {lookup} AS v) AS pdp_v)"),
            None => test,
        })
    }

    fn tag_test(
        &mut self,
        t: &pb::TagTest,
        bound: &mut Option<String>,
    ) -> Result<String, SqlError> {
        let pb::TagTest {
            operator,
            key,
            values,
        } = t;
        let unrendered = |why: String| SqlError::Condition {
            operator: operator.clone(),
            key: key.clone(),
            why,
        };
        let (qualifier, base) = if let Some(rest) = operator.strip_prefix("ForAnyValue:") {
            (Qualifier::ForAnyValue, rest)
        } else if let Some(rest) = operator.strip_prefix("ForAllValues:") {
            (Qualifier::ForAllValues, rest)
        } else {
            (Qualifier::None, operator.as_str())
        };
        let (base, if_exists) = match base.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (base, false),
        };
        let Some(&(_, family, negated)) = OPERATORS.iter().find(|(n, _, _)| *n == base) else {
            let why = UNRENDERED
                .iter()
                .find(|(prefix, _)| base.starts_with(prefix))
                .map_or("an operator this client does not know", |(_, why)| why);
            return Err(unrendered(why.to_owned()));
        };
        let prefix = "aws:resourcetag/";
        let Some(tag) = key
            .get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .and_then(|_| key.get(prefix.len()..))
        else {
            return Err(unrendered(
                "its key is not `aws:ResourceTag/<tag>` (it reads the resource's tags only in its values)".into(),
            ));
        };
        if matches!(family, Family::Str | Family::StrIc | Family::Like) {
            if let Some(v) = values.iter().find(|v| v.contains("${")) {
                return Err(unrendered(format!(
                    "the value `{v}` still holds a policy variable (one reading the resource's tags, or a key the request lacks)"
                )));
            }
        }
        let value = self.lookup(tag, bound)?;
        if family == Family::Null {
            if if_exists || qualifier != Qualifier::None {
                return Err(SqlError::Malformed(format!(
                    "`{operator}`: `Null` takes neither `IfExists` nor a set qualifier"
                )));
            }
            let mut absent = false;
            let mut present = false;
            for v in values {
                match parse_bool(v) {
                    Some(true) => absent = true,
                    Some(false) => present = true,
                    None => return Err(unrendered(format!("`{v}` is not `true` or `false`"))),
                }
            }
            return Ok(match (absent, present) {
                (true, true) => "TRUE".to_owned(),
                (true, false) => format!("({value} IS NULL)"),
                (false, true) => format!("({value} IS NOT NULL)"),
                (false, false) => "FALSE".to_owned(),
            });
        }
        let matches = match family {
            Family::Str => {
                let ps = values
                    .iter()
                    .map(|v| self.param(v.as_str()))
                    .collect::<Result<Vec<_>, _>>()?;
                in_list(&value, &ps)
            }
            Family::StrIc => {
                if let Some(v) = values.iter().find(|v| !v.is_ascii()) {
                    return Err(unrendered(format!(
                        "the value `{v}` is not ASCII, and Unicode case folding differs between the PDP and PostgreSQL"
                    )));
                }
                let ps = values
                    .iter()
                    .map(|v| self.param(v.to_ascii_lowercase()))
                    .collect::<Result<Vec<_>, _>>()?;
                // A tag value equals an ASCII value but for case when its lower case (the
                // PDP's Unicode one) is that value: ASCII letters fold, and of all other
                // characters only the Kelvin sign (U+212A) folds to ASCII (`k`).
                let folded = format!("translate({value}, {UPPER} || chr(8490), {LOWER} || 'k')");
                in_list(&folded, &ps)
            }
            Family::Like => {
                let mut parts = Vec::with_capacity(values.len());
                for v in values {
                    let pattern = like_pattern(v).map_err(|e| unrendered(e.clone()))?;
                    let p = self.param(pattern)?;
                    parts.push(format!("{value} LIKE {p} ESCAPE E'\\\\'"));
                }
                any_of(&parts)
            }
            Family::Bool => {
                let mut words = Vec::new();
                for v in values {
                    match parse_bool(v) {
                        Some(true) => words.push("'true'".to_owned()),
                        Some(false) => words.push("'false'".to_owned()),
                        None => return Err(unrendered(format!("`{v}` is not `true` or `false`"))),
                    }
                }
                in_list(&format!("translate({value}, {UPPER}, {LOWER})"), &words)
            }
            Family::Num(cmp) => self.numeric(&value, cmp, values).map_err(unrendered)?,
            Family::Null => return Err(SqlError::Malformed("unreachable `Null`".into())),
        };
        let satisfied = if negated {
            format!("(NOT {matches})")
        } else {
            matches
        };
        let missing = if_exists
            || match qualifier {
                Qualifier::ForAllValues => true,
                Qualifier::ForAnyValue => false,
                Qualifier::None => negated,
            };
        Ok(if missing {
            format!("({value} IS NULL OR {satisfied})")
        } else {
            format!("({value} IS NOT NULL AND {satisfied})")
        })
    }

    /// The tag's value (text, `NULL` when the resource lacks it): the key exactly, else
    /// the first key in byte order equal to it but for ASCII case (a key without ASCII
    /// letters has no other spelling). That long form is put in `bound`, and `pdp_v.v`
    /// stands for it.
    fn lookup(&mut self, tag: &str, bound: &mut Option<String>) -> Result<String, SqlError> {
        let (value, long) = self.lookup_expr(tag)?;
        if !long {
            return Ok(value);
        }
        *bound = Some(value);
        Ok("pdp_v.v".to_owned())
    }

    /// The tag's value, and whether it is the long form (a subquery).
    fn lookup_expr(&mut self, tag: &str) -> Result<(String, bool), SqlError> {
        let k = self.param(tag)?;
        let tags = &self.tags;
        if !tag.bytes().any(|b| b.is_ascii_alphabetic()) {
            return Ok((format!("({tags} ->> {k})"), false));
        }
        Ok((format!(
            "COALESCE({tags} ->> {k}, (SELECT pdp_tag.value FROM jsonb_each_text({tags}) AS pdp_tag \
             WHERE pdp_tag.value IS NOT NULL AND translate(pdp_tag.key, {UPPER}, {LOWER}) = translate({k}, {UPPER}, {LOWER}) \
             ORDER BY pdp_tag.key COLLATE \"C\" LIMIT 1))"
        ), true))
    }

    /// An id pattern made from the resource's own tags (`${aws:ResourceTag/<key>}`, with
    /// `, 'default'` or without), the rest a glob with `\` before a literal `*`, `?`, `\`
    /// or `$`: `id LIKE` the pattern built in SQL, each tag value escaped for `LIKE`
    /// (filled-in text is literal). A tag the resource lacks takes its default; without
    /// one, the pattern matches nothing.
    fn id_template(&mut self, text: &str) -> Result<String, SqlError> {
        let bad = |why: String| SqlError::IdTemplate {
            pattern: text.to_owned(),
            why,
        };
        let mut pieces: Vec<String> = Vec::new();
        let mut present: Vec<String> = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(l @ ('*' | '?' | '$')) => literal.push(l),
                    Some('\\') => literal.push_str("\\\\"),
                    Some(other) => {
                        return Err(bad(format!(
                            "`\\{other}` escapes neither `*`, `?`, `\\` nor `$`"
                        )))
                    }
                    None => return Err(bad("it ends in a lone `\\`".into())),
                },
                '*' => literal.push('%'),
                '?' => literal.push('_'),
                '%' | '_' => {
                    literal.push('\\');
                    literal.push(c);
                }
                '$' if chars.peek() == Some(&'{') => {
                    chars.next();
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => inner.push(c),
                            None => return Err(bad("a `${` is not closed".into())),
                        }
                    }
                    let (name, default) = match inner.split_once(',') {
                        Some((name, d)) => {
                            let d = d.trim();
                            let d = d
                                .strip_prefix('\'')
                                .and_then(|d| d.strip_suffix('\''))
                                .ok_or_else(|| bad(format!("the default `{d}` is not quoted")))?;
                            (name.trim(), Some(d))
                        }
                        None => (inner.trim(), None),
                    };
                    let prefix = "aws:resourcetag/";
                    let Some(tag) = name
                        .get(..prefix.len())
                        .filter(|p| p.eq_ignore_ascii_case(prefix))
                        .and_then(|_| name.get(prefix.len()..))
                    else {
                        return Err(bad(format!(
                            "`${{{name}}}` is not a resource tag (the PDP fills in every other variable)"
                        )));
                    };
                    if !literal.is_empty() {
                        pieces.push(self.param(std::mem::take(&mut literal))?);
                    }
                    let (value, _) = self.lookup_expr(tag)?;
                    let escaped = format!(
                        "replace(replace(replace({value}, {b}, {bb}), '%', {bp}), '_', {bu})",
                        b = e_literal("\\"),
                        bb = e_literal("\\\\"),
                        bp = e_literal("\\%"),
                        bu = e_literal("\\_"),
                    );
                    match default {
                        Some(d) => {
                            let d = like_pattern(&glob_literal(d)).map_err(bad)?;
                            let d = self.param(d)?;
                            pieces.push(format!("COALESCE({escaped}, {d})"));
                        }
                        None => {
                            present.push(format!("{value} IS NOT NULL"));
                            pieces.push(escaped);
                        }
                    }
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() || pieces.is_empty() {
            pieces.push(self.param(literal)?);
        }
        present.push(format!(
            "{} LIKE ({}) ESCAPE E'\\\\'",
            self.id,
            pieces.join(" || ")
        ));
        Ok(format!("({})", present.join(" AND ")))
    }

    /// Whether the tag value, read as the PDP reads a number (trimmed, Rust's `f64`
    /// syntax, rounded to the nearest double, finite), compares to any of `values` as
    /// `cmp` says. Exact: each comparison with a double `p` is made on the exact decimal
    /// value against the bounds of the interval that rounds to `p`. `NULL` (unknown) for
    /// a number PostgreSQL cannot read as `numeric` (see [`SAFE_NUMBER`]).
    fn numeric(&mut self, value: &str, cmp: Cmp, values: &[String]) -> Result<String, String> {
        let mut parts = Vec::with_capacity(values.len());
        let n = format!(
            "regexp_replace({value}, {}, '', 'g')::numeric",
            e_literal(&format!("^{WS}+|{WS}+$"))
        );
        let param = |w: &mut Writer, text: String| {
            w.param(text)
                .map(|p| format!("{p}::numeric"))
                .map_err(|e| e.to_string())
        };
        let limit = overflow_threshold();
        for v in values {
            let p = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite())
                .ok_or_else(|| format!("`{v}` is not a number"))?;
            let r = rounding_interval(p);
            let (lo_op, hi_op) = if r.closed { (">=", "<=") } else { (">", "<") };
            let part = match cmp {
                Cmp::Eq => {
                    let (lo, hi) = (param(self, r.lo)?, param(self, r.hi)?);
                    format!("({n} {lo_op} {lo} AND {n} {hi_op} {hi})")
                }
                Cmp::Lt => {
                    // Below the interval's low end (the end itself when it rounds up).
                    let op = if r.closed { "<" } else { "<=" };
                    let (lo, min) = (param(self, r.lo)?, param(self, format!("-{limit}"))?);
                    format!("({n} {op} {lo} AND {n} > {min})")
                }
                Cmp::Le => {
                    let (hi, min) = (param(self, r.hi)?, param(self, format!("-{limit}"))?);
                    format!("({n} {hi_op} {hi} AND {n} > {min})")
                }
                Cmp::Gt => {
                    let op = if r.closed { ">" } else { ">=" };
                    let (hi, max) = (param(self, r.hi)?, param(self, limit.clone())?);
                    format!("({n} {op} {hi} AND {n} < {max})")
                }
                Cmp::Ge => {
                    let (lo, max) = (param(self, r.lo)?, param(self, limit.clone())?);
                    format!("({n} {lo_op} {lo} AND {n} < {max})")
                }
            };
            parts.push(part);
        }
        Ok(format!(
            "(CASE WHEN {value} !~ {valid} THEN FALSE \
             WHEN length({value}) > {MAX_NUMERIC_TEXT} OR {value} !~ {safe} THEN NULL \
             ELSE {any} END)",
            valid = e_literal(&format!("^{WS}*{NUMBER}{WS}*$")),
            safe = e_literal(&format!("^{WS}*{SAFE_NUMBER}{WS}*$")),
            any = any_of(&parts),
        ))
    }
}

/// `x IN (a, b)`, or `FALSE` for no values.
fn in_list(x: &str, values: &[String]) -> String {
    if values.is_empty() {
        "FALSE".to_owned()
    } else {
        format!("({x} IN ({}))", values.join(", "))
    }
}

/// `(a OR b)`, or `FALSE` for none.
fn any_of(parts: &[String]) -> String {
    match parts {
        [] => "FALSE".to_owned(),
        [one] => one.clone(),
        _ => format!("({})", parts.join(" OR ")),
    }
}

fn parse_bool(t: &str) -> Option<bool> {
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The real numbers that round to a double (to nearest, ties to even): from `lo` to `hi`,
/// both exact decimals, the ends included when `closed` (the double's mantissa is even).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Interval {
    lo: String,
    hi: String,
    closed: bool,
}

/// The interval of reals that round to `p` (finite).
fn rounding_interval(p: f64) -> Interval {
    // `-0.0` compares equal to `0.0`: one interval.
    let a = p.abs();
    let bits = a.to_bits();
    let biased = i32::try_from(bits >> 52).unwrap_or(0);
    let frac = bits & ((1 << 52) - 1);
    if a == 0.0 {
        let half = decimal(1, -1075);
        return Interval {
            lo: format!("-{half}"),
            hi: half,
            closed: true,
        };
    }
    let (mant, e) = if biased == 0 {
        (frac, -1074)
    } else {
        (frac | (1 << 52), biased - 1075)
    };
    // `a` is `mant · 2^e`; the step up is `2^e`, and so is the step down but at a power of
    // two above the smallest normal, where it is half that.
    let up = decimal(2 * mant + 1, e - 1);
    let down = if frac == 0 && biased > 1 {
        decimal(4 * mant - 1, e - 2)
    } else {
        decimal(2 * mant - 1, e - 1)
    };
    let closed = mant % 2 == 0;
    if p > 0.0 {
        Interval {
            lo: down,
            hi: up,
            closed,
        }
    } else {
        Interval {
            lo: format!("-{up}"),
            hi: format!("-{down}"),
            closed,
        }
    }
}

/// The smallest magnitude that rounds to infinity: halfway between the largest double
/// and `2^1024` (a tie, which rounds to the even `2^1024`).
fn overflow_threshold() -> String {
    decimal((1 << 54) - 1, 970)
}

/// The exact decimal text of `m · 2^k`.
fn decimal(m: u64, k: i32) -> String {
    const BASE: u64 = 1_000_000_000;
    // Little-endian limbs in base 10^9.
    let mut limbs: Vec<u64> = Vec::new();
    let mut rest = m;
    while rest > 0 {
        limbs.push(rest % BASE);
        rest /= BASE;
    }
    let mul = |limbs: &mut Vec<u64>, f: u64| {
        let mut carry = 0;
        for l in limbs.iter_mut() {
            let v = *l * f + carry;
            *l = v % BASE;
            carry = v / BASE;
        }
        while carry > 0 {
            limbs.push(carry % BASE);
            carry /= BASE;
        }
    };
    // `m · 2^k` for `k ≥ 0`; `m · 5^-k / 10^-k` otherwise.
    let (factor, times) = if k >= 0 { (2, k) } else { (5, -k) };
    for _ in 0..times {
        mul(&mut limbs, factor);
    }
    let mut digits = String::new();
    for (i, l) in limbs.iter().rev().enumerate() {
        if i == 0 {
            let _ = write!(digits, "{l}");
        } else {
            let _ = write!(digits, "{l:09}");
        }
    }
    if digits.is_empty() {
        digits.push('0');
    }
    if k >= 0 {
        return digits;
    }
    let scale = usize::try_from(-k).unwrap_or(0);
    if digits.len() <= scale {
        digits = format!("{}{digits}", "0".repeat(scale - digits.len() + 1));
    }
    let (int, fraction) = digits.split_at(digits.len() - scale);
    let fraction = fraction.trim_end_matches('0');
    if fraction.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use pb::resource_expr::Expr as E;

    fn conditional(e: E) -> Plan {
        Plan::from_response(&pb::PlanResourcesResponse {
            kind: pb::PlanKind::Conditional as i32,
            condition: Some(pb::ResourceExpr { expr: Some(e) }),
            ..Default::default()
        })
    }

    fn tag(operator: &str, key: &str, values: &[&str]) -> E {
        E::Tag(pb::TagTest {
            operator: operator.into(),
            key: key.into(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        })
    }

    fn render(e: E) -> Result<SqlWhere, SqlError> {
        conditional(e).to_sql(&SqlTable::new("id", "tags"))
    }

    fn params(w: &SqlWhere) -> Vec<&str> {
        w.params.iter().map(SqlParam::as_str).collect()
    }

    #[test]
    fn constant_plans_are_true_and_false() {
        let table = SqlTable::new("id", "tags");
        let allowed = Plan::from_response(&pb::PlanResourcesResponse {
            kind: pb::PlanKind::AlwaysAllowed as i32,
            ..Default::default()
        });
        let w = allowed.to_sql(&table).unwrap();
        assert_eq!((w.clause.as_str(), w.params.len()), ("TRUE", 0));
        let w = Plan::unavailable("down".into()).to_sql(&table).unwrap();
        assert_eq!((w.clause.as_str(), w.params.len()), ("FALSE", 0));
    }

    #[test]
    fn globs_become_like_patterns_with_sql_wildcards_escaped() {
        let w = render(E::IdLike(r"doc:50%_off/\*?/*".into())).unwrap();
        assert_eq!(w.clause, r#"("id" LIKE $1::text ESCAPE E'\\')"#);
        assert_eq!(params(&w), [r"doc:50\%\_off/*_/%"]);
        let w = render(E::IdLike(r"a\\b".into())).unwrap();
        assert_eq!(params(&w), [r"a\\b"]);
        assert!(matches!(
            render(E::IdLike(r"a\b".into())),
            Err(SqlError::Malformed(_))
        ));
        assert!(matches!(
            render(E::IdLike("a\\".into())),
            Err(SqlError::Malformed(_))
        ));
    }

    #[test]
    fn placeholders_start_where_the_table_says() {
        let plan = conditional(E::And(pb::ResourceExprList {
            exprs: vec![
                pb::ResourceExpr {
                    expr: Some(E::IdLike("doc:*".into())),
                },
                pb::ResourceExpr {
                    expr: Some(E::Not(Box::new(pb::ResourceExpr {
                        expr: Some(tag("StringEquals", "aws:ResourceTag/env", &["prod"])),
                    }))),
                },
            ],
        }));
        let w = plan
            .to_sql(&SqlTable::new("d.id", "d.tags").first_param(3))
            .unwrap();
        assert_eq!(
            w.clause,
            concat!(
                r#"(("d"."id" LIKE $3::text ESCAPE E'\\') AND "#,
                r#"(NOT (SELECT (pdp_v.v IS NOT NULL AND (pdp_v.v IN ($5::text))) FROM "#,
                r#"(SELECT COALESCE("d"."tags" ->> $4::text, (SELECT pdp_tag.value FROM jsonb_each_text("d"."tags") AS pdp_tag "#,
                r#"WHERE pdp_tag.value IS NOT NULL AND translate(pdp_tag.key, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') = translate($4::text, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') "#,
                r#"ORDER BY pdp_tag.key COLLATE "C" LIMIT 1)) AS v) AS pdp_v)))"#,
            )
        );
        assert_eq!(params(&w), ["doc:%", "env", "prod"]);
        assert_eq!(
            plan.to_sql(&SqlTable::new("id", "tags").first_param(0)),
            Err(SqlError::FirstParam(0))
        );
    }

    #[test]
    fn column_names_are_checked_and_quoted() {
        let plan = conditional(E::IdLike("x".into()));
        for bad in [
            "",
            "id; DROP TABLE t",
            "a.",
            "\"id\"",
            "1id",
            "a.b.c.d",
            "ïd",
        ] {
            assert!(
                matches!(
                    plan.to_sql(&SqlTable::new(bad, "tags")),
                    Err(SqlError::Identifier { .. })
                ),
                "{bad:?}"
            );
        }
        let w = plan.to_sql(&SqlTable::new("Docs.ID", "tags")).unwrap();
        assert!(w.clause.starts_with(r#"("Docs"."ID" LIKE"#), "{}", w.clause);
    }

    #[test]
    fn a_key_without_letters_is_read_directly() {
        let w = render(tag("StringEquals", "aws:ResourceTag/42", &["x"])).unwrap();
        assert_eq!(
            w.clause,
            r#"(("tags" ->> $1::text) IS NOT NULL AND (("tags" ->> $1::text) IN ($2::text)))"#
        );
        assert_eq!(params(&w), ["42", "x"]);
    }

    #[test]
    fn a_missing_tag_satisfies_if_exists_for_all_values_and_negations() {
        let missing_ok = |op: &str| {
            let value = if op.contains("Numeric") {
                "1"
            } else if op == "Bool" {
                "true"
            } else {
                "x"
            };
            render(tag(op, "aws:ResourceTag/1", &[value]))
                .unwrap()
                .clause
                .starts_with(r#"(("tags" ->> $1::text) IS NULL OR"#)
        };
        for op in [
            "StringEqualsIfExists",
            "ForAllValues:StringEquals",
            "StringNotEquals",
            "StringNotLike",
            "ForAnyValue:StringLikeIfExists",
            "NumericNotEquals",
        ] {
            assert!(missing_ok(op), "{op}");
        }
        for op in [
            "StringEquals",
            "ForAnyValue:StringEquals",
            "ForAnyValue:StringNotEquals",
            "StringLike",
            "NumericLessThan",
            "Bool",
        ] {
            assert!(!missing_ok(op), "{op}");
        }
    }

    #[test]
    fn null_tests_presence_only() {
        let w = render(tag("Null", "aws:ResourceTag/1", &["true"])).unwrap();
        assert_eq!(w.clause, r#"(("tags" ->> $1::text) IS NULL)"#);
        let w = render(tag("Null", "aws:ResourceTag/1", &["false"])).unwrap();
        assert_eq!(w.clause, r#"(("tags" ->> $1::text) IS NOT NULL)"#);
        let w = render(tag("Null", "aws:ResourceTag/1", &["false", "true"])).unwrap();
        assert_eq!(w.clause, "TRUE");
        assert!(matches!(
            render(tag("NullIfExists", "aws:ResourceTag/1", &["true"])),
            Err(SqlError::Malformed(_))
        ));
    }

    #[test]
    fn ignore_case_folds_ascii_and_the_kelvin_sign_and_refuses_other_values() {
        let w = render(tag("StringEqualsIgnoreCase", "aws:ResourceTag/1", &["Key"])).unwrap();
        assert!(w.clause.contains("|| chr(8490)"), "{}", w.clause);
        assert_eq!(params(&w), ["1", "key"]);
        let e = render(tag(
            "StringEqualsIgnoreCase",
            "aws:ResourceTag/1",
            &["Ärger"],
        ));
        assert!(
            matches!(&e, Err(SqlError::Condition { why, .. }) if why.contains("not ASCII")),
            "{e:?}"
        );
    }

    #[test]
    fn bool_and_like_values_are_read_as_the_pdp_reads_them() {
        let w = render(tag("Bool", "aws:ResourceTag/1", &["TRUE"])).unwrap();
        assert!(w.clause.ends_with("IN ('true')))"), "{}", w.clause);
        let w = render(tag("StringLike", "aws:ResourceTag/1", &["a*", r"b\?_"])).unwrap();
        assert_eq!(params(&w), ["1", "a%", r"b?\_"]);
        assert!(w.clause.contains(" OR "), "{}", w.clause);
    }

    #[test]
    fn what_has_no_exact_sql_is_an_error_naming_it() {
        for (e, says) in [
            (
                tag(
                    "DateLessThan",
                    "aws:ResourceTag/d",
                    &["2026-01-01T00:00:00Z"],
                ),
                "dates",
            ),
            (
                tag("IpAddress", "aws:ResourceTag/ip", &["10.0.0.0/8"]),
                "inet",
            ),
            (tag("ArnLike", "aws:ResourceTag/a", &["arn:*"]), "ARN"),
            (
                tag("BinaryEquals", "aws:ResourceTag/b", &["QQ=="]),
                "base64",
            ),
            (
                tag("StringMatches", "aws:ResourceTag/b", &["x"]),
                "does not know",
            ),
            (
                tag(
                    "StringEquals",
                    "aws:PrincipalTag/team",
                    &["${aws:ResourceTag/team}"],
                ),
                "aws:ResourceTag/<tag>",
            ),
            (
                tag(
                    "StringEquals",
                    "aws:ResourceTag/team",
                    &["${aws:ResourceTag/x}"],
                ),
                "policy variable",
            ),
        ] {
            let err = render(e).unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
        let err = render(E::IdTemplate("doc/${aws:username}/*".into())).unwrap_err();
        assert!(
            err.to_string()
                .contains("`${aws:username}` is not a resource tag"),
            "{err}"
        );
        let err = render(E::IdTemplate(r"doc/\x".into())).unwrap_err();
        assert!(err.to_string().contains("escapes neither"), "{err}");
    }

    /// The example of `docs/client.md`.
    #[test]
    fn the_documented_example_renders_as_shown() {
        let plan = conditional(E::And(pb::ResourceExprList {
            exprs: vec![
                pb::ResourceExpr {
                    expr: Some(E::IdLike("doc:*".into())),
                },
                pb::ResourceExpr {
                    expr: Some(tag("StringEquals", "aws:ResourceTag/owner", &["alice"])),
                },
            ],
        }));
        let w = plan.to_sql(&SqlTable::new("id", "tags")).unwrap();
        assert_eq!(
            w.clause,
            concat!(
                r#"(("id" LIKE $1::text ESCAPE E'\\') AND "#,
                r#"(SELECT (pdp_v.v IS NOT NULL AND (pdp_v.v IN ($3::text))) FROM "#,
                r#"(SELECT COALESCE("tags" ->> $2::text, (SELECT pdp_tag.value FROM jsonb_each_text("tags") AS pdp_tag "#,
                r#"WHERE pdp_tag.value IS NOT NULL AND translate(pdp_tag.key, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') = translate($2::text, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') "#,
                r#"ORDER BY pdp_tag.key COLLATE "C" LIMIT 1)) AS v) AS pdp_v))"#,
            )
        );
        assert_eq!(params(&w), ["doc:%", "owner", "alice"]);
    }

    #[test]
    fn id_templates_build_the_pattern_from_escaped_tag_values() {
        let w = render(E::IdTemplate(
            r"doc:\$5_${aws:ResourceTag/7}/${aws:ResourceTag/8, 'n*'}/*".into(),
        ))
        .unwrap();
        let esc = |t: &str| {
            format!(
                r#"replace(replace(replace(("tags" ->> {t}), E'\\', E'\\\\'), '%', E'\\%'), '_', E'\\_')"#
            )
        };
        assert_eq!(
            w.clause,
            format!(
                r#"(("tags" ->> $2::text) IS NOT NULL AND "id" LIKE ($1::text || {} || $3::text || COALESCE({}, $5::text) || $6::text) ESCAPE E'\\')"#,
                esc("$2::text"),
                esc("$4::text"),
            )
        );
        assert_eq!(params(&w), [r"doc:$5\_", "7", "/", "8", r"n*", "/%"]);
    }

    #[test]
    fn values_are_only_ever_parameters() {
        let evil = "x' OR '1'='1";
        let w = render(tag("StringEquals", "aws:ResourceTag/o'wner", &[evil])).unwrap();
        assert!(!w.clause.contains(evil) && !w.clause.contains("o'wner"));
        assert_eq!(params(&w), ["o'wner", evil]);
    }

    #[test]
    fn rounding_intervals_hold_exactly_the_texts_that_parse_to_the_double() {
        let next_up = |x: f64| f64::from_bits(x.to_bits() + 1);
        for p in [
            1.0,
            0.1,
            3.0,
            -2.5,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            0.0,
            9_007_199_254_740_993.0,
            next_up(1.0),
        ] {
            let r = rounding_interval(p);
            let at = |t: &str| t.parse::<f64>().unwrap();
            // The ends are ties: they parse to `p` exactly when closed.
            assert_eq!(at(&r.lo) == p, r.closed, "{p} lo {}", r.lo);
            assert_eq!(at(&r.hi) == p, r.closed, "{p} hi {}", r.hi);
            // A digit appended moves an end away from zero: inwards for a positive low
            // end and a negative high one, outwards otherwise.
            for (end, low) in [(&r.lo, true), (&r.hi, false)] {
                let nudged = format!("{}1", with_point(end));
                let inward = low != end.starts_with('-');
                assert_eq!(at(&nudged) == p, inward, "{p}: {nudged}");
            }
        }
        assert_eq!(
            overflow_threshold().parse::<f64>().unwrap(),
            f64::INFINITY,
            "the threshold rounds up"
        );
        assert!(decimal(1, -1).eq("0.5") && decimal(3, 2).eq("12"));
    }

    /// `t` with a decimal point, so that a digit appended makes it larger in magnitude.
    fn with_point(t: &str) -> String {
        if t.contains('.') {
            t.to_owned()
        } else {
            format!("{t}.0")
        }
    }
}
