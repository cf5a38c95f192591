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
    /// Only `*` wildcards: the literal runs between them (at least two; the first and last
    /// may be empty), matched with prefix, suffix and in-order substring search.
    Segments(Box<[Box<str>]>),
    Glob(Box<[Tok]>),
}

/// A compiled wildcard pattern. A case-insensitive pattern is stored folded (lower-case) and
/// must be matched against folded text (see [`fold`]), so matching itself is always a
/// plain comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    shape: Shape,
    /// A cheap first check kept inline, so that most mismatches are rejected without
    /// reading the pattern's text from elsewhere in memory.
    probe: Probe,
}

/// A pattern without `?` (see [`Pattern::simple`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Simple<'a> {
    /// `*`.
    Any,
    /// Literal runs joined by `*`: one for a pattern without wildcard; a leading or
    /// trailing `*` gives an empty first or last run.
    Runs(smallvec::SmallVec<[&'a str; 4]>),
}

/// The probe decides alone: an exact or prefix pattern whose whole literal is `bytes`.
const CONCLUSIVE: u8 = 1;
/// `at` counts from the end of the text (the bytes end every match: the last literal run of
/// a `*` pattern, usually more telling than its `arn:aws:service:` start).
const FROM_END: u8 = 2;

/// Length bounds and up to eight literal bytes at a fixed offset that every match has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Probe {
    min_len: u16,
    /// `u16::MAX`: no upper bound.
    max_len: u16,
    at: u16,
    len: u8,
    /// [`CONCLUSIVE`] and [`FROM_END`] (one byte, so a pattern stays 40 bytes).
    flags: u8,
    bytes: [u8; 8],
}

/// The last (up to) eight bytes of `text`, zero-padded, and how many there are.
fn last_eight(text: &str) -> ([u8; 8], usize) {
    let p = text.as_bytes();
    let n = p.len().min(8);
    let mut bytes = [0u8; 8];
    for (dst, src) in bytes.iter_mut().zip(p.iter().skip(p.len() - n)) {
        *dst = *src;
    }
    (bytes, n)
}

impl Probe {
    /// A probe on the last (up to) eight bytes of `literal_prefix`, which every match
    /// starts with.
    fn new(literal_prefix: &str, min_len: usize, max_len: Option<usize>) -> Self {
        let (bytes, n) = last_eight(literal_prefix);
        // Out-of-range figures only weaken the check: a smaller minimum, no maximum, no bytes.
        let (at, n) = match u16::try_from(literal_prefix.len() - n) {
            Ok(at) => (at, n),
            Err(_) => (0, 0),
        };
        Probe {
            min_len: u16::try_from(min_len).unwrap_or(u16::MAX),
            max_len: max_len
                .and_then(|m| u16::try_from(m).ok())
                .filter(|m| *m < u16::MAX)
                .unwrap_or(u16::MAX),
            at,
            len: u8::try_from(n).unwrap_or(0),
            flags: 0,
            bytes,
        }
    }

    /// A probe on the last (up to) eight bytes of `suffix`, which every match ends with.
    fn suffix(suffix: &str, min_len: usize) -> Self {
        let (bytes, n) = last_eight(suffix);
        Probe {
            min_len: u16::try_from(min_len).unwrap_or(u16::MAX),
            max_len: u16::MAX,
            at: u16::try_from(n).unwrap_or(0),
            len: u8::try_from(n).unwrap_or(0),
            flags: FROM_END,
            bytes,
        }
    }

    fn conclusive(&self) -> bool {
        self.flags & CONCLUSIVE != 0
    }

    fn counts_from_end(&self) -> bool {
        self.flags & FROM_END != 0
    }

    #[inline]
    fn admits(&self, text: &[u8]) -> bool {
        let len = text.len();
        if len < usize::from(self.min_len)
            || (self.max_len != u16::MAX && len > usize::from(self.max_len))
        {
            return false;
        }
        probe_eq(
            text,
            usize::from(self.at),
            self.counts_from_end(),
            usize::from(self.len),
            u64::from_le_bytes(self.bytes),
        )
    }
}

/// The shortest last literal run of a `*` pattern that its probe takes its bytes from.
const SUFFIX_PROBE_MIN: usize = 4;

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
        if text.contains('?') {
            let mut toks = Vec::with_capacity(text.len());
            wildcard_toks(text, &mut toks);
            return Self::from_toks(toks, case_insensitive);
        }
        // Only `*` wildcards: build the shape straight from the text.
        let text: std::borrow::Cow<'_, str> = if !case_insensitive {
            std::borrow::Cow::Borrowed(text)
        } else if text.is_ascii() {
            // Most patterns: folded a byte at a time, with no decoding.
            if text.bytes().any(|b| b.is_ascii_uppercase()) {
                std::borrow::Cow::Owned(text.to_ascii_lowercase())
            } else {
                std::borrow::Cow::Borrowed(text)
            }
        } else if text.chars().any(|c| fold_char(c) != c) {
            std::borrow::Cow::Owned(text.chars().map(fold_char).collect())
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        // Runs of `*` match the same strings as one.
        let text: std::borrow::Cow<'_, str> = if text.contains("**") {
            let mut collapsed = String::with_capacity(text.len());
            for c in text.chars() {
                if !(c == '*' && collapsed.ends_with('*')) {
                    collapsed.push(c);
                }
            }
            std::borrow::Cow::Owned(collapsed)
        } else {
            text
        };
        let stars = text.bytes().filter(|b| *b == b'*').count();
        let shape = if stars == 0 {
            Shape::Exact(match text {
                std::borrow::Cow::Owned(s) => s.into_boxed_str(),
                std::borrow::Cow::Borrowed(s) => s.into(),
            })
        } else if text == "*" {
            Shape::Any
        } else if stars == 1 && text.ends_with('*') {
            Shape::Prefix(text.trim_end_matches('*').into())
        } else {
            Shape::Segments(text.split('*').map(Into::into).collect())
        };
        Self::with_shape(shape)
    }

    /// A pattern from tokens; literal characters are lower-cased when case-insensitive.
    pub(crate) fn from_toks(mut toks: Vec<Tok>, case_insensitive: bool) -> Self {
        if case_insensitive {
            for t in &mut toks {
                if let Tok::Lit(c) = t {
                    *c = fold_char(*c);
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
        } else if !toks.contains(&Tok::One) {
            let segments: Vec<Box<str>> = toks.split(|t| *t == Tok::Star).map(lit_string).collect();
            Shape::Segments(segments.into_boxed_slice())
        } else {
            Shape::Glob(toks.into_boxed_slice())
        };
        Self::with_shape(shape)
    }

    fn with_shape(shape: Shape) -> Self {
        let lit_len = |t: &Tok| match t {
            Tok::Lit(c) => c.len_utf8(),
            Tok::One => 1,
            Tok::Star => 0,
        };
        let (min_len, max_len) = match &shape {
            Shape::Any => (0, None),
            Shape::Exact(s) => (s.len(), Some(s.len())),
            Shape::Prefix(p) => (p.len(), None),
            Shape::Segments(segs) => (segs.iter().map(|s| s.len()).sum(), None),
            Shape::Glob(t) => (t.iter().map(lit_len).sum(), None),
        };
        let mut pattern = Pattern {
            shape,
            probe: Probe::new("", 0, None),
        };
        pattern.probe = match &pattern.shape {
            // A long enough last run says more than the start, which is usually the
            // partition and service that every resource of the same kind shares.
            Shape::Segments(segs) if segs.last().is_some_and(|l| l.len() >= SUFFIX_PROBE_MIN) => {
                Probe::suffix(segs.last().map_or("", |l| l), min_len)
            }
            _ => Probe::new(&pattern.literal_prefix(), min_len, max_len),
        };
        if matches!(&pattern.shape, Shape::Exact(s) | Shape::Prefix(s) if s.len() <= 8) {
            pattern.probe.flags |= CONCLUSIVE;
        }
        pattern
    }

    /// Whether the pattern matches the whole of `text` (folded text for a case-insensitive
    /// pattern).
    pub(crate) fn matches(&self, text: &str) -> bool {
        match &self.shape {
            Shape::Glob(toks) => self.probe.admits(text.as_bytes()) && glob(toks, text),
            _ => self.matches_bytes(text.as_bytes()),
        }
    }

    /// [`Pattern::matches`] for text as bytes (UTF-8 for a pattern with `?`, which counts
    /// characters: other text never matches it).
    pub(crate) fn matches_bytes(&self, text: &[u8]) -> bool {
        if !self.probe.admits(text) {
            return false;
        }
        if self.probe.conclusive() {
            return true;
        }
        match &self.shape {
            Shape::Any => true,
            Shape::Exact(s) => bytes_eq(s.as_bytes(), text),
            Shape::Prefix(p) => starts_with(text, p.as_bytes()),
            Shape::Segments(segs) => segments_match(segs, text),
            Shape::Glob(toks) => std::str::from_utf8(text).is_ok_and(|t| glob(toks, t)),
        }
    }

    /// The pattern as text (lower-cased when case-insensitive).
    pub(crate) fn text(&self) -> String {
        match &self.shape {
            Shape::Any => "*".to_owned(),
            Shape::Exact(s) => s.to_string(),
            Shape::Prefix(p) => format!("{p}*"),
            Shape::Segments(segs) => segs.join("*"),
            Shape::Glob(t) => crate::keys::toks_to_string(t),
        }
    }

    /// The probe's literal bytes as an index prefilter: `[bytes 0..4, bytes 4..8,
    /// at | len << 16 | from_end << 24]`
    /// (see `set::index::prefilter`); `[0, 0, 0]` when it has no bytes.
    pub(crate) fn prefilter(&self) -> [u32; 3] {
        let p = &self.probe;
        if p.len == 0 {
            return [0, 0, 0];
        }
        let [a, b, c, d, e, f, g, h] = p.bytes;
        [
            u32::from_le_bytes([a, b, c, d]),
            u32::from_le_bytes([e, f, g, h]),
            u32::from(p.at) | (u32::from(p.len) << 16) | (u32::from(p.counts_from_end()) << 24),
        ]
    }

    /// Whether `text` passes a [`Pattern::prefilter`].
    #[inline]
    pub(crate) fn prefilter_admits([lo, hi, meta]: [u32; 3], text: &[u8]) -> bool {
        probe_eq(
            text,
            (meta & 0xffff) as usize,
            meta & (1 << 24) != 0,
            ((meta >> 16) & 0xff) as usize,
            u64::from(lo) | (u64::from(hi) << 32),
        )
    }

    /// The pattern as literal runs joined by `*` (`None` for one with `?`), which
    /// [`segments_match`] matches as the pattern does: how a statement keeps its resource
    /// inline.
    pub(crate) fn simple(&self) -> Option<Simple<'_>> {
        Some(match &self.shape {
            Shape::Any => Simple::Any,
            Shape::Exact(s) => Simple::Runs(smallvec::smallvec![&**s]),
            Shape::Prefix(p) => Simple::Runs(smallvec::smallvec![&**p, ""]),
            Shape::Segments(segs) => Simple::Runs(segs.iter().map(|s| &**s).collect()),
            Shape::Glob(_) => return None,
        })
    }

    /// Whether this pattern has no wildcard.
    pub(crate) fn is_exact(&self) -> bool {
        matches!(self.shape, Shape::Exact(_))
    }

    /// The pattern as tokens (literal characters as folded when case-insensitive).
    pub(crate) fn toks(&self) -> Vec<Tok> {
        let lits = |s: &str, out: &mut Vec<Tok>| out.extend(s.chars().map(Tok::Lit));
        let mut out = Vec::new();
        match &self.shape {
            Shape::Any => out.push(Tok::Star),
            Shape::Exact(s) => lits(s, &mut out),
            Shape::Prefix(s) => {
                lits(s, &mut out);
                out.push(Tok::Star);
            }
            Shape::Segments(segs) => {
                for (i, s) in segs.iter().enumerate() {
                    if i > 0 {
                        out.push(Tok::Star);
                    }
                    lits(s, &mut out);
                }
            }
            Shape::Glob(t) => out.extend_from_slice(t),
        }
        out
    }

    /// Whether this pattern is the lone `*`.
    pub(crate) fn is_any(&self) -> bool {
        matches!(self.shape, Shape::Any)
    }

    /// The literal text before the first wildcard (lower-cased when case-insensitive).
    pub(crate) fn literal_prefix(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match &self.shape {
            Shape::Any => Cow::Borrowed(""),
            Shape::Exact(s) | Shape::Prefix(s) => Cow::Borrowed(s),
            Shape::Segments(segs) => Cow::Borrowed(segs.first().map_or("", |s| s)),
            Shape::Glob(t) => Cow::Owned(
                t.iter()
                    .map_while(|t| match t {
                        Tok::Lit(c) => Some(*c),
                        _ => None,
                    })
                    .collect(),
            ),
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

fn fold_char(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

/// Folds text for matching against case-insensitive patterns; text of up to 24 bytes (most
/// actions) stays inline, costing no allocation.
pub(crate) fn fold(text: &str) -> compact_str::CompactString {
    if text.is_ascii() {
        // Lower-casing ASCII in place keeps the text valid UTF-8: no copy is validated.
        let mut folded = compact_str::CompactString::from(text);
        folded.make_ascii_lowercase();
        folded
    } else {
        text.chars().map(fold_char).collect()
    }
}

/// The longest text [`fold_into`] folds in place.
pub(crate) const FOLD_BUF: usize = 64;

/// Folds ASCII text of up to [`FOLD_BUF`] bytes into `buf`, on the caller's stack; `None`
/// for other text (fold it with [`fold`]). The result is ASCII, so valid UTF-8, but is
/// handed out as bytes: checking that again costs more than the folding.
pub(crate) fn fold_into<'b>(text: &str, buf: &'b mut [u8; FOLD_BUF]) -> Option<&'b [u8]> {
    let src = text.as_bytes();
    let n = src.len();
    if n > FOLD_BUF || !text.is_ascii() {
        return None;
    }
    let folded = buf.get_mut(..n)?;
    folded.copy_from_slice(src);
    folded.make_ascii_lowercase();
    Some(folded)
}

/// Eight bytes of `s` from `at` as a little-endian word, when they are all there.
#[inline(always)]
pub(crate) fn word(s: &[u8], at: usize) -> Option<u64> {
    s.get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
        .map(u64::from_le_bytes)
}

/// Byte-slice equality for the short texts patterns compare (names, ARN pieces): word
/// loads in line instead of a call into the C library's `memcmp`, which dominates for
/// slices of a few dozen bytes.
#[inline(always)]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            if word(a, i) != word(b, i) {
                return false;
            }
            i += 8;
        }
        // The tail as one word overlapping the last full one.
        return i == n || word(a, n - 8) == word(b, n - 8);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// `text` starts with `prefix` (see [`bytes_eq`]).
#[inline(always)]
pub(crate) fn starts_with(text: &[u8], prefix: &[u8]) -> bool {
    text.get(..prefix.len())
        .is_some_and(|t| bytes_eq(t, prefix))
}

/// `text` ends with `suffix` (see [`bytes_eq`]).
#[inline(always)]
pub(crate) fn ends_with(text: &[u8], suffix: &[u8]) -> bool {
    text.len()
        .checked_sub(suffix.len())
        .and_then(|at| text.get(at..))
        .is_some_and(|t| bytes_eq(t, suffix))
}

/// Whether `text` has the `len` (at most 8) bytes of `want` (little-endian, zero above
/// `len`) at offset `at`, counted from the end of `text` when `from_end`: one masked word
/// compare when eight bytes are there to load.
#[inline(always)]
fn probe_eq(text: &[u8], at: usize, from_end: bool, len: usize, want: u64) -> bool {
    if len == 0 {
        return true;
    }
    let at = if from_end {
        match text.len().checked_sub(at) {
            Some(start) => start,
            None => return false,
        }
    } else {
        at
    };
    let mask = if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (len * 8)) - 1
    };
    if let Some(w) = word(text, at) {
        return w & mask == want;
    }
    let Some(bytes) = text.get(at..at + len) else {
        return false;
    };
    let mut w = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        w |= u64::from(*b) << (i * 8);
    }
    w == want
}

/// A literal run as bytes (patterns keep text, inline resources bytes).
pub(crate) trait Run {
    fn run(&self) -> &[u8];
}

impl Run for Box<str> {
    fn run(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Run for &[u8] {
    fn run(&self) -> &[u8] {
        self
    }
}

/// Whether `text` matches literal runs joined by `*` (at least two runs): starts with the
/// first, ends with the last, has the others in order between.
pub(crate) fn segments_match<S: Run>(segs: &[S], text: &[u8]) -> bool {
    let (Some(first), Some(last)) = (segs.first(), segs.last()) else {
        return false;
    };
    let (first, last) = (first.run(), last.run());
    if text.len() < first.len() + last.len() || !starts_with(text, first) || !ends_with(text, last)
    {
        return false;
    }
    let mut window = text
        .get(first.len()..text.len() - last.len())
        .unwrap_or_default();
    for seg in segs.iter().skip(1).take(segs.len().saturating_sub(2)) {
        let seg = seg.run();
        match find(window, seg) {
            Some(at) => window = window.get(at + seg.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    true
}

/// Leftmost occurrence of `needle` in `hay`. Segments and resources are usually short, so a
/// first-byte scan beats the setup cost of a general substring searcher; a long segment in
/// a text of more than 64 bytes uses `memchr`'s linear-time searcher, so the scan's worst
/// case stays bounded (64 × 64 byte comparisons).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > 16 && hay.len() > 64 {
        return memchr::memmem::find(hay, needle);
    }
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    let last_start = hay.len().checked_sub(needle.len())?;
    (0..=last_start).find(|&i| {
        hay.get(i) == Some(&first)
            && hay
                .get(i + 1..i + needle.len())
                .is_some_and(|h| bytes_eq(h, rest))
    })
}

fn char_len_at(text: &str, at: usize) -> usize {
    text.get(at..)
        .and_then(|s| s.chars().next())
        .map_or(1, char::len_utf8)
}

/// Iterative wildcard match with single-star backtracking: linear in practice, never
/// exponential (each `*` restart advances the text position).
pub(crate) fn glob(toks: &[Tok], text: &str) -> bool {
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
                    if c == *p {
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
    fn folding_in_place_agrees_with_fold() {
        let mut all: String = (0u8..128).map(char::from).collect();
        all.push_str("s3:GetObject-ABCXYZ@[`{az");
        for text in [
            "",
            "s3:GetObject",
            "EC2:DescribeInstances",
            all.as_str(),
            "x".repeat(64).as_str(),
        ] {
            let mut buf = [0u8; FOLD_BUF];
            match fold_into(text, &mut buf) {
                Some(folded) => assert_eq!(folded, fold(text).as_bytes(), "{text:?}"),
                None => assert!(text.len() > FOLD_BUF, "{text:?}"),
            }
        }
        let mut buf = [0u8; FOLD_BUF];
        assert!(fold_into("Ä:x", &mut buf).is_none());
        assert!(fold_into(&"x".repeat(65), &mut buf).is_none());
    }

    #[test]
    fn shapes_are_recognised() {
        assert!(Pattern::new("*", false).is_any());
        assert_eq!(
            Pattern::new("s3:Get*", true).shape,
            Shape::Prefix("s3:get".into())
        );
        assert_eq!(Pattern::new("a**", false).shape, Shape::Prefix("a".into()));
        assert!(matches!(
            Pattern::new("a*b", false).shape,
            Shape::Segments(_)
        ));
        assert!(matches!(Pattern::new("a?b", false).shape, Shape::Glob(_)));
    }

    #[test]
    fn case_insensitive_matching_folds_text() {
        let p = Pattern::new("S3:GetObject", true);
        assert!(p.matches(&fold("s3:getobject")));
        assert!(p.matches(&fold("S3:GETOBJECT")));
        assert!(!p.matches(&fold("s3:getobjectx")));
        assert!(Pattern::new("s3:Get*", true).matches(&fold("S3:GETBucket")));
        assert_eq!(fold("S3:ÉTAT"), "s3:état");
        assert_eq!(fold("S3:GetObject"), "s3:getobject");
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
        assert!(Pattern::new("*b*b", false).matches("bb"));
        assert!(Pattern::new("*bb*b", false).matches("bbb"));
        assert!(!Pattern::new("*bb*b", false).matches("bb"));
        assert!(Pattern::new("a*b*c", false).matches("abc"));
        assert!(!Pattern::new("ab*ba", false).matches("aba"));
        assert!(Pattern::new("arn:aws:s3:::bkt-096*/data/*", false)
            .matches("arn:aws:s3:::bkt-0961/data/x/y"));
        assert!(!Pattern::new("arn:aws:s3:::bkt-096*/data/*", false)
            .matches("arn:aws:s3:::bkt-0961/tmp/x"));
        assert!(!Pattern::new("", false).matches("a"));
    }

    #[test]
    fn long_segments_are_found() {
        let p = Pattern::new("a*abcdefghijklmnopqrstu*z", false);
        assert!(p.matches("axxabcdefghijklmnopqrstuyyz"));
        assert!(!p.matches("axxabcdefghijklmnopqrstyyz"));
        let text = format!(
            "a{}abcdefghijklmnopqrstuz",
            "abcdefghijklmnopqrst".repeat(1000)
        );
        assert!(p.matches(&text));
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

#[cfg(test)]
mod shape_tests {
    use super::*;

    /// The text fast path and the token path build the same pattern.
    #[test]
    fn text_and_token_construction_agree() {
        for text in [
            "",
            "*",
            "**",
            "a",
            "a*",
            "a**",
            "*a",
            "**a",
            "a*b",
            "a**b*",
            "*a*",
            "s3:Get*",
            "arn:aws:s3:::b-0*/data/*",
            "S3:GetObject",
            "IAM:*User*Policy",
            "É*x",
            "É*X:Ÿ",
        ] {
            for ci in [false, true] {
                let mut toks = Vec::new();
                wildcard_toks(text, &mut toks);
                assert_eq!(
                    Pattern::new(text, ci),
                    Pattern::from_toks(toks, ci),
                    "{text} ci={ci}"
                );
            }
        }
    }

    #[test]
    fn short_literals_are_decided_by_the_probe() {
        let exact = Pattern::new("ab", false);
        assert!(exact.probe.conclusive());
        assert!(exact.matches("ab"));
        assert!(!exact.matches("abc"));
        assert!(!exact.matches("ac"));
        let prefix = Pattern::new("s3:*", true);
        assert!(prefix.probe.conclusive());
        assert!(prefix.matches("s3:getobject"));
        assert!(!prefix.matches("s4:getobject"));
        assert!(!prefix.matches("s3"));
        assert!(!Pattern::new("s3:GetObjectTagging", true).probe.conclusive());
    }

    #[test]
    fn long_middle_runs_are_found_in_short_and_long_texts() {
        // A middle run longer than 16 bytes: scanned in a short text, searched with
        // `memchr` in a long one; both find the leftmost occurrence and agree with a glob.
        let p = Pattern::new("arn:*:123456789012:instance/*:end", false);
        let short = "arn:aws:ec2:us-east-1:123456789012:instance/i-1:end";
        let long = format!(
            "arn:aws:ec2:{}:123456789012:instance/i-1:end",
            "x".repeat(80)
        );
        let missing = format!(
            "arn:aws:ec2:{}:123456789012:instancX/i-1:end",
            "x".repeat(80)
        );
        assert!(short.len() <= 64 && long.len() > 64);
        assert!(p.matches(short));
        assert!(p.matches(&long));
        assert!(!p.matches(&missing));
        assert!(!p.matches("arn:aws:ec2:us-east-1:123456789012:instanc/i-1:end"));
        assert_eq!(
            find(b"aaaaaaaaaaaaaaaaaaab", b"aaaaaaaaaaaaaaaaaab"),
            Some(1)
        );
        let hay = format!("{}{}", "a".repeat(70), "aaaaaaaaaaaaaaaaaab");
        assert_eq!(find(hay.as_bytes(), b"aaaaaaaaaaaaaaaaaab"), Some(70));
    }

    #[test]
    fn star_patterns_probe_their_last_run_from_the_end() {
        let p = Pattern::new("arn:aws:dynamodb:*:123456789012:table/tbl-0401", false);
        assert!(p.probe.counts_from_end());
        let [lo, hi, meta] = p.prefilter();
        assert_eq!(meta >> 24, 1);
        for (resource, hit) in [
            (
                "arn:aws:dynamodb:us-east-1:123456789012:table/tbl-0401",
                true,
            ),
            (
                "arn:aws:dynamodb:eu-west-1:123456789012:table/tbl-0401",
                true,
            ),
            (
                "arn:aws:dynamodb:us-east-1:123456789012:table/tbl-0402",
                false,
            ),
            (
                "arn:aws:dynamodb:us-east-1:123456789012:table/tbl-0401x",
                false,
            ),
            ("tbl-0401", false),
            ("0401", false),
        ] {
            assert_eq!(p.matches(resource), hit, "{resource}");
            // The index prefilter must never reject a match.
            let entry = [0, lo, hi, meta];
            if hit {
                assert!(
                    crate::set::Entry::new(&entry).admits(resource.as_bytes()),
                    "{resource}"
                );
            }
        }
        let entry = [0, lo, hi, meta];
        assert!(!crate::set::Entry::new(&entry).admits(b"arn:aws:dynamodb:x:1:table/tbl-0402"));
        assert!(!crate::set::Entry::new(&entry).admits(b"0401"));
        // A leading wildcard: the suffix is the only literal a match must have.
        let p = Pattern::new("*/reports/summary.json", false);
        assert!(p.probe.counts_from_end());
        assert!(p.matches("arn:aws:s3:::b/reports/summary.json"));
        assert!(!p.matches("arn:aws:s3:::b/reports/summary.jsonl"));
        // A short last run keeps the prefix probe.
        assert!(!Pattern::new("arn:aws:s3:::bkt-0012*/tmp/*", false)
            .probe
            .counts_from_end());
    }
}
