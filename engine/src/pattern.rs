//! Wildcard patterns (`*` any run of characters, `?` exactly one) as IAM uses them in `Action`,
//! `Resource`, `Principal` and the `*Like` / `Arn*` operators, with the common shapes (exact,
//! prefix, any) recognised at compile time so most matches are one comparison.
//!
//! Written here rather than taken from a glob crate because policy variables substitute
//! *literal* text into a pattern (a user named `*` must match only `*`), which needs literal
//! and wildcard tokens side by side.

/// One token of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A literal character (already lower-cased in a case-insensitive pattern).
    Lit(char),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters, possibly empty.
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Any,
    Exact(Box<str>),
    Prefix(Box<str>),
    Glob(Box<[Tok]>),
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    shape: Shape,
    case_insensitive: bool,
}

/// Tokens of `text` where `*` and `?` are wildcards.
pub(crate) fn wildcard_toks(text: &str, out: &mut Vec<Tok>) {
    out.extend(text.chars().map(|c| match c {
        '*' => Tok::Star,
        '?' => Tok::One,
        c => Tok::Lit(c),
    }));
}

/// Tokens of `text` taken literally.
pub(crate) fn literal_toks(text: &str, out: &mut Vec<Tok>) {
    out.extend(text.chars().map(Tok::Lit));
}

impl Pattern {
    /// A pattern from text with `*` and `?` wildcards.
    pub(crate) fn new(text: &str, case_insensitive: bool) -> Self {
        let mut toks = Vec::with_capacity(text.len());
        wildcard_toks(text, &mut toks);
        Self::from_toks(toks, case_insensitive)
    }

    /// A pattern from tokens; literal characters are lower-cased when case-insensitive.
    pub(crate) fn from_toks(mut toks: Vec<Tok>, case_insensitive: bool) -> Self {
        if case_insensitive {
            for t in &mut toks {
                if let Tok::Lit(c) = t {
                    *c = fold(*c);
                }
            }
        }
        // Collapse runs of `*`: they match the same strings as one.
        toks.dedup_by(|a, b| *a == Tok::Star && *b == Tok::Star);
        let lits = toks.iter().take_while(|t| matches!(t, Tok::Lit(_)));
        let literal_len = lits.count();
        let shape = if toks == [Tok::Star] {
            Shape::Any
        } else if literal_len == toks.len() {
            Shape::Exact(lit_string(&toks))
        } else if literal_len + 1 == toks.len() && toks.last() == Some(&Tok::Star) {
            Shape::Prefix(lit_string(toks.get(..literal_len).unwrap_or_default()))
        } else {
            Shape::Glob(toks.into_boxed_slice())
        };
        Pattern {
            shape,
            case_insensitive,
        }
    }

    /// Whether the pattern matches the whole of `text`.
    pub(crate) fn matches(&self, text: &str) -> bool {
        match &self.shape {
            Shape::Any => true,
            Shape::Exact(s) => {
                if self.case_insensitive {
                    eq_fold(s, text)
                } else {
                    **s == *text
                }
            }
            Shape::Prefix(p) => {
                if self.case_insensitive {
                    text.get(..p.len()).is_some_and(|head| eq_fold(p, head))
                } else {
                    text.starts_with(&**p)
                }
            }
            Shape::Glob(toks) => glob(toks, text, self.case_insensitive),
        }
    }

    /// The pattern as text (lower-cased when case-insensitive).
    pub(crate) fn text(&self) -> String {
        match &self.shape {
            Shape::Any => "*".to_owned(),
            Shape::Exact(s) => s.to_string(),
            Shape::Prefix(p) => format!("{p}*"),
            Shape::Glob(t) => crate::keys::toks_to_string(t),
        }
    }

    /// Whether this pattern is the lone `*`.
    pub(crate) fn is_any(&self) -> bool {
        matches!(self.shape, Shape::Any)
    }

    /// The literal text before the first wildcard (lower-cased when case-insensitive).
    pub(crate) fn literal_prefix(&self) -> String {
        match &self.shape {
            Shape::Any => String::new(),
            Shape::Exact(s) | Shape::Prefix(s) => s.to_string(),
            Shape::Glob(t) => t
                .iter()
                .map_while(|t| match t {
                    Tok::Lit(c) => Some(*c),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Whether every string this pattern matches is also matched by `other` (a sound but
    /// incomplete check, used by the linter for redundancy findings).
    pub(crate) fn covered_by(&self, other: &Pattern) -> bool {
        if other.is_any() {
            return true;
        }
        match &self.shape {
            Shape::Exact(s) => other.matches(s),
            Shape::Prefix(p) => match &other.shape {
                Shape::Prefix(q) => p.starts_with(&**q),
                _ => false,
            },
            _ => false,
        }
    }
}

fn lit_string(toks: &[Tok]) -> Box<str> {
    toks.iter()
        .filter_map(|t| match t {
            Tok::Lit(c) => Some(*c),
            _ => None,
        })
        .collect::<String>()
        .into_boxed_str()
}

fn fold(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

/// `pattern` is already folded; `text` is folded on the fly.
fn eq_fold(pattern: &str, text: &str) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return pattern.eq_ignore_ascii_case(text);
    }
    let mut t = text.chars().map(fold);
    pattern.chars().all(|p| t.next() == Some(p)) && t.next().is_none()
}

fn char_len_at(text: &str, at: usize) -> usize {
    text.get(at..)
        .and_then(|s| s.chars().next())
        .map_or(1, char::len_utf8)
}

/// Iterative wildcard match with single-star backtracking: linear in practice, never
/// exponential (each `*` restart advances the text position).
pub(crate) fn glob(toks: &[Tok], text: &str, case_insensitive: bool) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut restart: Option<(usize, usize)> = None;
    loop {
        let rest = text.get(ti..).unwrap_or_default();
        match toks.get(pi) {
            Some(Tok::Star) => {
                restart = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some(Tok::One) => {
                if let Some(c) = rest.chars().next() {
                    ti += c.len_utf8();
                    pi += 1;
                    continue;
                }
            }
            Some(Tok::Lit(p)) => {
                if let Some(c) = rest.chars().next() {
                    let c2 = if case_insensitive { fold(c) } else { c };
                    if c2 == *p {
                        ti += c.len_utf8();
                        pi += 1;
                        continue;
                    }
                }
            }
            None => {
                if rest.is_empty() {
                    return true;
                }
            }
        }
        match restart {
            Some((sp, st)) if st < text.len() => {
                let next = st + char_len_at(text, st);
                restart = Some((sp, next));
                pi = sp;
                ti = next;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_recognised() {
        assert!(Pattern::new("*", false).is_any());
        assert_eq!(Pattern::new("s3:Get*", true).shape, Shape::Prefix("s3:get".into()));
        assert_eq!(Pattern::new("a**", false).shape, Shape::Prefix("a".into()));
        assert!(matches!(Pattern::new("a*b", false).shape, Shape::Glob(_)));
    }

    #[test]
    fn case_insensitive_matching_folds_text() {
        let p = Pattern::new("S3:GetObject", true);
        assert!(p.matches("s3:getobject"));
        assert!(p.matches("S3:GETOBJECT"));
        assert!(!p.matches("s3:getobjectx"));
        assert!(Pattern::new("s3:Get*", true).matches("S3:GETBucket"));
    }

    #[test]
    fn case_sensitive_matching_is_exact() {
        let p = Pattern::new("arn:aws:s3:::Bucket/*", false);
        assert!(p.matches("arn:aws:s3:::Bucket/a/b"));
        assert!(!p.matches("arn:aws:s3:::bucket/a"));
    }

    #[test]
    fn star_crosses_slashes_and_question_mark_is_one_char() {
        assert!(Pattern::new("a*c", false).matches("a/b/c"));
        assert!(Pattern::new("a?c", false).matches("abc"));
        assert!(Pattern::new("a?c", false).matches("aéc"));
        assert!(!Pattern::new("a?c", false).matches("ac"));
        assert!(!Pattern::new("a?c", false).matches("abbc"));
        assert!(Pattern::new("*b*d", false).matches("abcbd"));
        assert!(!Pattern::new("*b*d", false).matches("abcbde"));
        assert!(Pattern::new("", false).matches(""));
        assert!(!Pattern::new("", false).matches("a"));
    }

    #[test]
    fn pathological_patterns_stay_fast() {
        let p = Pattern::new(&"*a".repeat(50), false);
        let text = "a".repeat(10_000) + "b";
        assert!(!p.matches(&text));
    }

    #[test]
    fn literal_tokens_do_not_act_as_wildcards() {
        let mut t = Vec::new();
        wildcard_toks("home/", &mut t);
        literal_toks("*", &mut t);
        let p = Pattern::from_toks(t, false);
        assert!(p.matches("home/*"));
        assert!(!p.matches("home/x"));
    }
}
