//! The compiled statement as a decision reads it ([`Stmt`], three cache lines in the order
//! they are read), its resource patterns kept inline where they fit ([`InlineRes`]), its
//! conditions as indexes into what the set's statements share ([`Shared`], [`CondIds`]),
//! and what only outcomes, the linter and the index builder read ([`Cold`]).
//!
//! Layout and matching of one statement's parts only: it may not read indexes or the set.

use crate::condition::{Condition, Label};
use crate::keys::{parse_text, Parsed, Template};
use crate::pattern::{bytes_eq, segments_match, starts_with, Pattern, Simple};
use crate::types::StatementInfo;

/// One `Resource` / `NotResource` entry.
#[derive(Debug, Clone)]
pub(crate) enum ResPat {
    Static(Pattern),
    Dynamic(Template),
}

#[derive(Debug, Clone)]
pub(crate) struct Resources {
    pub(crate) negated: bool,
    pub(crate) patterns: Box<[ResPat]>,
}

/// `Principal` / `NotPrincipal`.
#[derive(Debug, Clone)]
pub(crate) struct Principals {
    pub(crate) negated: bool,
    pub(crate) anyone: bool,
    /// `PDP: user:<pattern>`, and non-PDP principal values: matched against the subject id.
    pub(crate) users: Box<[Pattern]>,
    /// `PDP: role:<pattern>`: matched against each of the subject's roles.
    pub(crate) roles: Box<[Pattern]>,
}

/// A compiled statement: what a decision reads to find whether it applies. What only the
/// outcome, the linter and the index builder read is in the set's [`Cold`] list, at the
/// same index, to keep statements small and dense in memory (and so that a decision can
/// name its determining statements without reading them).
#[derive(Debug, Clone)]
// Three cache lines, in the order a decision reads them. The first holds the resource
// (its text inline, for the common shapes) and the conditions: all that a candidate whose
// action the index matched reads (its index entry carries its effect, whether its
// resources are negated and whether it has a principal). The second the wildcard action
// patterns, which a candidate reached through its service or a wildcard is checked
// against; the third the rest.
#[repr(C, align(64))]
pub(crate) struct Stmt {
    /// The `Resource` / `NotResource` pattern, text included when it is of a simple shape.
    pub(crate) resource: Res,
    /// The statement's conditions, in the set's [`Shared`]: read only for statements
    /// whose action and resource match.
    pub(crate) conditions: CondIds,
    /// The `Action` / `NotAction` patterns with wildcards (which: `actions_negated`), the
    /// first inline (every pattern as written is kept in [`Cold::actions`]).
    pub(crate) actions_wild: smallvec::SmallVec<[Pattern; 1]>,
    pub(crate) effect: crate::types::Effect,
    pub(crate) resources_negated: bool,
    pub(crate) actions_negated: bool,
    /// Whether the statement has obligations (which its [`Cold`] holds): marked in index
    /// entries ([`OBLIGATIONS`]), so that a decision reads them only where there are some.
    pub(crate) has_obligations: bool,
    /// The [`ActionIds`] of the wildcard-free action patterns: matching them is an integer
    /// comparison.
    pub(crate) actions_exact: smallvec::SmallVec<[u32; 4]>,
    pub(crate) principal: Option<Box<Principals>>,
    /// The `Resource` / `NotResource` patterns (which: `resources_negated`).
    pub(crate) resources: Box<[ResPat]>,
}

/// How a statement's first cache line holds its resource patterns.
#[derive(Debug, Clone)]
pub(crate) enum Res {
    /// Text included (with the set's shared heads): matching reads nothing else.
    Inline(InlineRes),
    /// One pattern (its text elsewhere in memory).
    One(ResPat),
    /// Several: [`Stmt::resources`].
    Many,
}

impl Res {
    /// How a statement holds `patterns`: inline where they have an inline form (`head`
    /// gives the shared index of a head text, see [`InlineRes::new`]), else `One` or
    /// `Many`.
    pub(crate) fn new(patterns: &[ResPat], head: impl FnMut(&[u8]) -> Option<u16>) -> Self {
        if let Some(inline) = InlineRes::new(patterns, head) {
            return Res::Inline(inline);
        }
        match patterns {
            [one] => Res::One(one.clone()),
            _ => Res::Many,
        }
    }
}

/// Patterns a statement can keep inline.
const INLINE_PATTERNS: usize = 2;
/// Literal runs (between `*`s) one inline pattern can have.
const INLINE_RUNS: usize = 4;
/// Bytes of pattern text a statement keeps inline (after the shared heads): what keeps
/// [`Res`] at 48 bytes.
const INLINE_TEXT: usize = 32;
/// No shared head.
const NO_HEAD: u16 = u16::MAX;
/// The shortest head worth sharing.
const MIN_HEAD: usize = 8;

/// A statement's resource patterns kept on the statement's first cache line, text included,
/// when they are static, at most [`INLINE_PATTERNS`] of them, each `*` or literal runs
/// joined by `*` (no `?`), and their text fits. The start of each pattern up to its last
/// `:` before any wildcard (`arn:aws:s3:::`, `arn:aws:ec2:us-east-1:123456789012:`) is
/// kept once per set, in [`Shared::heads`], where decisions find it in cache; the rest
/// here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InlineRes {
    n: u8,
    pats: [InlinePat; INLINE_PATTERNS],
    text: [u8; INLINE_TEXT],
}

#[derive(Debug, Clone, Copy, Default)]
struct InlinePat {
    /// The shared head, [`NO_HEAD`] for none (little-endian, as bytes so the record packs).
    head: [u8; 2],
    /// Literal runs: 0 for `*`, 1 for a pattern without wildcard, more for runs joined by
    /// `*` (a trailing `*` ends with an empty run).
    runs: u8,
    /// The length of each run but the last, which takes the rest of `len`.
    lens: [u8; INLINE_RUNS - 1],
    /// The length of the pattern's text (after its head), which follows the previous
    /// pattern's in `text`.
    len: u8,
}

impl InlineRes {
    /// The inline form of resource patterns, if they have one; `head` gives the shared
    /// index of a head text (`None` when no more can be kept).
    pub(crate) fn new(
        patterns: &[ResPat],
        mut head: impl FnMut(&[u8]) -> Option<u16>,
    ) -> Option<Self> {
        if patterns.is_empty() || patterns.len() > INLINE_PATTERNS {
            return None;
        }
        let mut out = InlineRes {
            n: u8::try_from(patterns.len()).ok()?,
            pats: [InlinePat::default(); INLINE_PATTERNS],
            text: [0; INLINE_TEXT],
        };
        let mut used = 0usize;
        for (slot, pattern) in out.pats.iter_mut().zip(patterns) {
            let ResPat::Static(p) = pattern else {
                return None;
            };
            let runs: smallvec::SmallVec<[&str; INLINE_RUNS]> = match p.simple()? {
                Simple::Any => {
                    *slot = InlinePat::default();
                    continue;
                }
                Simple::Runs(runs) => runs,
            };
            if runs.len() > INLINE_RUNS {
                return None;
            }
            // The head: the first run up to its last `:`, when that is worth sharing.
            let first = runs.first().copied().unwrap_or_default();
            let cut = first.rfind(':').map_or(0, |i| i + 1);
            let (head_id, head_len) = match first.get(..cut) {
                Some(h) if cut >= MIN_HEAD => match head(h.as_bytes()) {
                    Some(id) => (id, cut),
                    None => (NO_HEAD, 0),
                },
                _ => (NO_HEAD, 0),
            };
            let start = used;
            let mut lens = [0u8; INLINE_RUNS - 1];
            for (i, run) in runs.iter().enumerate() {
                let run = if i == 0 { run.get(head_len..)? } else { run };
                let end = used + run.len();
                out.text.get_mut(used..end)?.copy_from_slice(run.as_bytes());
                if let Some(len) = lens.get_mut(i) {
                    *len = u8::try_from(run.len()).ok()?;
                }
                used = end;
            }
            *slot = InlinePat {
                head: head_id.to_le_bytes(),
                runs: u8::try_from(runs.len()).ok()?,
                lens,
                len: u8::try_from(used - start).ok()?,
            };
        }
        Some(out)
    }

    /// Whether any of the patterns matches `resource`, given the set's heads; `None` when a
    /// part of the layout is missing (a pattern, its text or its head: never made, see
    /// [`InlineRes::new`]), which the decision resolves fail-closed.
    #[inline]
    pub(crate) fn matches(&self, resource: &[u8], heads: &[Box<[u8]>]) -> Option<bool> {
        let mut at = 0usize;
        for p in self.pats.get(..usize::from(self.n))? {
            let end = at + usize::from(p.len);
            let text = self.text.get(at..end)?;
            at = end;
            if p.matches(text, resource, heads)? {
                return Some(true);
            }
        }
        Some(false)
    }
}

impl InlinePat {
    /// Whether the pattern (`text` its runs after the head) matches `resource`; `None`
    /// when its head or a run is missing from the layout.
    #[inline]
    fn matches(&self, text: &[u8], resource: &[u8], heads: &[Box<[u8]>]) -> Option<bool> {
        if self.runs == 0 {
            return Some(true);
        }
        let head = u16::from_le_bytes(self.head);
        let rest = if head == NO_HEAD {
            resource
        } else {
            let h = heads.get(usize::from(head))?;
            if !starts_with(resource, h) {
                return Some(false);
            }
            resource.get(h.len()..)?
        };
        let runs = usize::from(self.runs);
        if runs == 1 {
            return Some(bytes_eq(text, rest));
        }
        let mut parts: [&[u8]; INLINE_RUNS] = [&[]; INLINE_RUNS];
        let mut from = 0usize;
        for (i, part) in parts.iter_mut().enumerate().take(runs) {
            let len = if i + 1 == runs {
                text.len().checked_sub(from)?
            } else {
                usize::from(*self.lens.get(i)?)
            };
            *part = text.get(from..from + len)?;
            from += len;
        }
        Some(segments_match(parts.get(..runs)?, rest))
    }
}

/// What the statements of a set share, each kept once however many statements have it,
/// so that a decision finds it in cache: the conditions (sets repeat a few across many
/// statements: MFA, source networks, tags) and the starts of resource patterns (a few
/// partitions, services, regions and accounts: `arn:aws:s3:::`), see [`InlineRes`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Shared {
    pub(crate) conditions: Vec<Condition>,
    /// The condition indexes of the statements with more than [`CondIds::INLINE`]
    /// conditions, one run per statement (where it starts: its [`CondIds`]).
    pub(crate) overflow: Vec<u32>,
    pub(crate) heads: Vec<Box<[u8]>>,
}

impl Shared {
    /// The conditions of `ids` (for the linter and tests; a decision resolves a missing
    /// one fail-closed instead, see `Stmt::applies`).
    pub(crate) fn of<'a>(&'a self, ids: &'a CondIds) -> impl Iterator<Item = &'a Condition> {
        let list = ids.ids(&self.overflow);
        // INVARIANT: the compiler interns every condition a statement names.
        debug_assert_eq!(list.len(), ids.len(), "condition ids missing");
        list.iter().filter_map(|&i| {
            let c = self.conditions.get(i as usize);
            debug_assert!(c.is_some(), "condition {i} of {}", self.conditions.len());
            c
        })
    }
}

/// A statement's conditions as indexes into its set's [`Shared`]: up to
/// [`CondIds::INLINE`] inline (on the statement's first cache line), more in the set's
/// overflow list (`ids[0]` then says where).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CondIds {
    len: u32,
    ids: [u32; CondIds::INLINE],
}

impl CondIds {
    pub(crate) const INLINE: usize = 3;

    pub(crate) fn new(ids: &[u32], overflow: &mut Vec<u32>) -> Self {
        let len = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        let mut inline = [0; Self::INLINE];
        if ids.len() <= Self::INLINE {
            for (slot, id) in inline.iter_mut().zip(ids) {
                *slot = *id;
            }
        } else {
            if let Some(first) = inline.first_mut() {
                *first = u32::try_from(overflow.len()).unwrap_or(u32::MAX);
            }
            overflow.extend_from_slice(ids);
        }
        CondIds { len, ids: inline }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many conditions the statement has.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// The indexes, given the set's overflow list; fewer than [`CondIds::len`] (none) when
    /// the list does not hold them, which the caller checks.
    pub(crate) fn ids<'a>(&'a self, overflow: &'a [u32]) -> &'a [u32] {
        let len = self.len as usize;
        if len <= Self::INLINE {
            self.ids.get(..len).unwrap_or_default()
        } else {
            let start = self.ids.first().map_or(0, |&i| i as usize);
            overflow.get(start..start + len).unwrap_or_default()
        }
    }
}

/// What only the outcome, the linter and the index builder read of a statement.
#[derive(Debug, Clone)]
pub(crate) struct Cold {
    pub(crate) info: StatementInfo,
    /// The statement's obligations, a range of the set's list.
    pub(crate) obligations: std::ops::Range<u32>,
    /// Every `Action`/`NotAction` pattern as written (folded).
    pub(crate) actions: Box<[Pattern]>,
    /// A digest of the `Condition` element as written (0 when absent), so the linter can
    /// tell statements with the same conditions apart from others.
    pub(crate) condition_digest: u64,
    /// Where each condition's operator and key as written lie in `condition_labels`.
    pub(crate) labels: smallvec::SmallVec<[Label; 3]>,
    /// The operators and keys of the conditions as written (see [`Label`]).
    pub(crate) condition_labels: Box<str>,
}

/// The statements of one attachment that can match an action, in one allocation laid out
/// so that a lookup reads few cache lines: a sorted key list (exact action ids, and service
/// ids tagged with [`SERVICE_KEY`]) and where each key's group of entries ends, right after
/// a two-word header (for up to nine keys, all in the first cache line when the allocation
/// starts on a line boundary; it is a whole number of lines); then the
/// entries of statements whose actions can match any service (`*`, `s*:...`, `NotAction`),
/// and the groups, each followed by a copy of those, so a lookup reads one run of entries.
///
/// `[n_keys | NARROW, n_wild, keys × n_keys, ends, wild entries, group entries…, padding,
/// all ids, n_all]`. `ends` are `u16`s, two to a word, when [`NARROW`], else `u32`s; group
/// `i` holds the entries from `ends[i - 1]` (0 for the first) to `ends[i]`, counted in
/// entries from the first group entry. An exact action's group also holds the statements
/// of its service's group (those whose wildcard patterns name that service) that match the
/// action, all marked [`KNOWN_ACTION`], so a lookup searches the keys once (for the
/// action, or, when this attachment names no statement with it exactly, for its service)
/// and a decision for a named action matches no action patterns but those of wildcard
/// entries that are not `*`.
///
/// The first cache line of `data` is also kept in `head`, beside the allocation's pointer
/// (in an attachment's hash-map bucket, which the lookup of the role has just read): the
/// header, keys and group ends are read there, so a lookup reaches into `data` only for
/// Compiles `Resource`-like text into a pattern entry.
pub(crate) fn res_pat(text: &str, variables: bool) -> Result<ResPat, String> {
    if !(variables && text.contains("${")) {
        return Ok(ResPat::Static(Pattern::new(text, false)));
    }
    Ok(match parse_text(text, true, variables)? {
        Parsed::Static(t) => ResPat::Static(Pattern::from_toks(t, false)),
        Parsed::Dynamic(t) => ResPat::Dynamic(t),
    })
}

#[cfg(test)]
mod tests {
    /// Resource-like text: one of a few ARN starts, then a tail from a small alphabet
    /// (with `*` in patterns).
    fn arnish(wild: bool) -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let tail = if wild {
            "[ab:/*]{0,14}"
        } else {
            "[ab:/]{0,14}"
        };
        (
            prop::sample::select(vec!["", "a", "arn:aws:s3:::", "arn:aws:ec2:eu-west-1:123:"]),
            proptest::string::string_regex(tail).unwrap_or_else(|e| unreachable!("{e}")),
        )
            .prop_map(|(head, tail)| format!("{head}{tail}"))
    }

    proptest::proptest! {
        #[test]
        fn inline_resources_match_as_their_patterns_do(
            patterns in proptest::collection::vec(arnish(true), 1..3),
            resources in proptest::collection::vec(arnish(false), 1..8),
        ) {
            let compiled: Vec<super::ResPat> = patterns
                .iter()
                .map(|p| super::ResPat::Static(crate::pattern::Pattern::new(p, false)))
                .collect();
            let mut heads: Vec<Box<[u8]>> = Vec::new();
            let inline = super::InlineRes::new(&compiled, |h| {
                let i = heads.iter().position(|k| &**k == h).unwrap_or_else(|| {
                    heads.push(h.into());
                    heads.len() - 1
                });
                u16::try_from(i).ok()
            });
            if let Some(inline) = inline {
                // Also resources that match: each pattern with its `*`s filled in.
                let filled = patterns.iter().flat_map(|p| {
                    ["", "a", ":/b"].map(|fill| p.replace('*', fill))
                });
                for r in &resources.into_iter().chain(filled).collect::<Vec<_>>() {
                    let want = compiled.iter().any(|p| match p {
                        super::ResPat::Static(p) => p.matches(r),
                        super::ResPat::Dynamic(_) => false,
                    });
                    proptest::prop_assert_eq!(
                        inline.matches(r.as_bytes(), &heads), Some(want),
                        "patterns {:?} resource {:?}", patterns, r
                    );
                }
            }
        }
    }

    #[test]
    fn resources_of_common_shapes_are_inline() {
        let inline = |patterns: &[&str]| {
            let compiled: Vec<super::ResPat> = patterns
                .iter()
                .map(|p| super::ResPat::Static(crate::pattern::Pattern::new(p, false)))
                .collect();
            super::InlineRes::new(&compiled, |_| Some(0)).is_some()
        };
        assert!(inline(&["*"]));
        assert!(inline(&[
            "arn:aws:ec2:eu-west-1:123456789012:instance/i-00000329"
        ]));
        assert!(inline(&["arn:aws:s3:::bkt-072*/logs/*"]));
        assert!(inline(&[
            "arn:aws:s3:::b/logs/obj-0.json",
            "arn:aws:s3:::bkt-0062/*"
        ]));
        // Too many runs, `?`, too much text, too many patterns: matched as patterns.
        assert!(!inline(&["a*b*c*d*e"]));
        assert!(!inline(&["arn:aws:s3:::b?"]));
        assert!(!inline(&[
            "arn:aws:s3:::a-very-long-bucket-name/with/a/long/prefix/*"
        ]));
        assert!(!inline(&["a", "b", "c"]));
    }

    #[test]
    fn condition_ids_inline_and_in_the_overflow_list() {
        let mut overflow = vec![9];
        let three = super::CondIds::new(&[4, 5, 6], &mut overflow);
        let five = super::CondIds::new(&[1, 2, 3, 4, 5], &mut overflow);
        assert_eq!(three.ids(&overflow), [4, 5, 6]);
        assert_eq!(five.ids(&overflow), [1, 2, 3, 4, 5]);
        assert_eq!(overflow, [9, 1, 2, 3, 4, 5]);
        // An overflow list without them (never made) yields none, and the count tells:
        // a decision then fails the statement.
        assert!(five.ids(&[]).is_empty());
        assert_eq!(five.len(), 5);
    }

    #[test]
    fn statements_keep_their_fields_on_the_lines_a_decision_reads() {
        use std::mem::offset_of;
        type S = super::Stmt;
        let end = |offset: usize, size: usize| offset + size;
        // Line 1: what a candidate matched by exact action reads.
        assert_eq!(std::mem::size_of::<super::Res>(), 48);
        assert!(end(offset_of!(S, resource), 48) <= 64);
        assert!(end(offset_of!(S, conditions), 16) <= 64);
        // Line 2: wildcard actions.
        assert!(offset_of!(S, actions_wild) >= 64);
        assert!(end(offset_of!(S, actions_wild), 48) <= 128);
        assert_eq!(std::mem::size_of::<S>(), 192);
    }

    #[test]
    fn hot_structures_stay_small() {
        let stmt = std::mem::size_of::<super::Stmt>();
        assert!(
            stmt <= 256,
            "Stmt is {stmt} bytes (four cache lines at most)"
        );
        // A condition fits one cache line: evaluating one reads one line.
        let condition = std::mem::size_of::<crate::condition::Condition>();
        assert!(condition <= 64, "Condition is {condition} bytes");
        // An attachment (a role's hash-map value) holds its index's first line, the
        // pointer to the rest and a boxed boundary: with the role's name, two lines.
        let attachment = std::mem::size_of::<crate::set::CAttachment>();
        assert!(attachment <= 96, "CAttachment is {attachment} bytes");
        eprintln!(
            "Stmt {stmt} ResPat {} Pattern {} Condition {condition}",
            std::mem::size_of::<super::ResPat>(),
            std::mem::size_of::<crate::pattern::Pattern>(),
        );
    }
}
