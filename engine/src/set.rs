//! The compiled, immutable policy set and how it is built: documents (JSON, YAML or already
//! parsed values) and bindings go in; every problem is collected; a set with any problem is
//! rejected whole. Statements are stored once and referenced by index from the bindings'
//! attachments (roles, subjects, guardrails, resource patterns), each with an action index.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::condition::{Condition, Label};
use crate::error::{CompileError, CompileErrors, LoadError};
use crate::keys::{parse_text, Parsed, Template};
use crate::pattern::{bytes_eq, segments_match, starts_with, Pattern, Simple};
use crate::types::{Obligation, ObligationType, StatementInfo};

/// Largest policy or bindings document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;
/// Most policy documents in one set.
pub const MAX_POLICIES: usize = 100_000;
/// Most statements in one set.
pub const MAX_STATEMENTS: usize = 1_000_000;

/// The file name of the bindings in a policy directory.
pub const BINDINGS_FILE: &str = "bindings.yaml";
/// The file of a policy directory that maps HTTP requests to decision requests (read by the
/// server's Envoy ext_authz front end; not a policy).
pub const ROUTES_FILE: &str = "routes.yaml";

/// How policies attach to requests (`bindings.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bindings {
    /// Role name -> its identity policies and optional permissions boundary.
    #[serde(default)]
    pub roles: BTreeMap<String, Attachment>,
    /// Subject id -> policies attached directly to it, and the subject's directory entry:
    /// roles and principal tags the PDP knows of it (merged with the request's; directory
    /// tags win over the request's under the same key).
    #[serde(default)]
    pub subjects: BTreeMap<String, Attachment>,
    /// Policies that apply to every request, like AWS SCPs.
    #[serde(default)]
    pub guardrails: Vec<String>,
    /// Resource-based policies, attached by resource pattern.
    #[serde(default)]
    pub resources: Vec<ResourceAttachment>,
}

/// Identity policies of a role or subject.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    /// Policy names.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Permissions boundary policy name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<String>,
    /// Subjects only: roles the subject holds, whatever the request says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Subjects only: principal tags (`aws:PrincipalTag/<key>`) the PDP knows of the subject.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Resource policies for resources matching a pattern.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceAttachment {
    /// Resource id pattern (`*`, `?` wildcards, case-sensitive).
    #[serde(rename = "match")]
    pub pattern: String,
    /// Policy names.
    pub policies: Vec<String>,
}

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

    /// Whether any of the patterns matches `resource`, given the set's heads.
    #[inline]
    pub(crate) fn matches(&self, resource: &[u8], heads: &[Box<[u8]>]) -> bool {
        let n = usize::from(self.n);
        let mut at = 0usize;
        self.pats.get(..n).unwrap_or_default().iter().any(|p| {
            let text = self
                .text
                .get(at..at + usize::from(p.len))
                .unwrap_or_default();
            at += usize::from(p.len);
            pattern_matches(p, text, resource, heads)
        })
    }
}

/// Whether one inline pattern (`text` its runs after the head) matches `resource`.
#[inline]
fn pattern_matches(p: &InlinePat, text: &[u8], resource: &[u8], heads: &[Box<[u8]>]) -> bool {
    if p.runs == 0 {
        return true;
    }
    let head = u16::from_le_bytes(p.head);
    let rest = if head == NO_HEAD {
        resource
    } else {
        match heads.get(usize::from(head)) {
            Some(h) if starts_with(resource, h) => resource.get(h.len()..).unwrap_or_default(),
            // A head that is not there (never made) matches nothing: fail closed.
            _ => return false,
        }
    };
    let runs = usize::from(p.runs);
    if runs == 1 {
        return bytes_eq(text, rest);
    }
    let mut parts: [&[u8]; INLINE_RUNS] = [&[]; INLINE_RUNS];
    let mut from = 0usize;
    for (i, part) in parts.iter_mut().enumerate().take(runs) {
        let len = if i + 1 == runs {
            text.len().saturating_sub(from)
        } else {
            p.lens.get(i).map_or(0, |l| usize::from(*l))
        };
        *part = text.get(from..from + len).unwrap_or_default();
        from += len;
    }
    segments_match(parts.get(..runs).unwrap_or_default(), rest)
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
    /// The conditions of `ids`; an index out of range (never made) is left out.
    pub(crate) fn of<'a>(&'a self, ids: &'a CondIds) -> impl Iterator<Item = &'a Condition> {
        ids.ids(&self.overflow)
            .iter()
            .filter_map(|&i| self.conditions.get(i as usize))
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

    /// The indexes, given the set's overflow list.
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
/// the entries, one cache miss instead of two when the index is not in cache.
#[derive(Debug, Clone, Default)]
pub(crate) struct Index {
    head: [u32; HEAD],
    pub(crate) data: Box<[u32]>,
}

/// Words of an index's first cache line, kept in [`Index::head`].
const HEAD: usize = 16;

const HEADER: usize = 2;
/// In the first header word: `ends` are `u16`s.
const NARROW: u32 = 1 << 31;
/// u32s per index entry: statement id, then its resource prefilter (see [`prefilter`]).
pub(crate) const ENTRY: usize = 4;
/// Marks a service id among an index's keys (action ids stay below it).
const SERVICE_KEY: u32 = 1 << 31;
/// In an entry's last word (beside the prefilter's offset and length): the statement is
/// known to match every action looked up to this entry, so its action patterns are not
/// read: it names the group's action exactly, one of its patterns matched the action's name
/// when the index was built, it has `*`, or (in a service's group) `service:*`.
pub(crate) const KNOWN_ACTION: u32 = 1 << 25;
/// In an entry's last word: the statement is a `Deny`.
pub(crate) const DENY: u32 = 1 << 26;
/// In an entry's last word: the statement has `NotResource`.
pub(crate) const NOT_RESOURCE: u32 = 1 << 27;
/// In an entry's last word: the statement has `Principal` or `NotPrincipal`.
pub(crate) const HAS_PRINCIPAL: u32 = 1 << 28;
/// In an entry's last word: the statement has obligations.
pub(crate) const OBLIGATIONS: u32 = 1 << 29;
/// The bits of an entry's last word that describe its statement.
pub(crate) const ENTRY_FLAGS: u32 =
    KNOWN_ACTION | DENY | NOT_RESOURCE | HAS_PRINCIPAL | OBLIGATIONS;

/// An entry's statement flags ([`ENTRY_FLAGS`]).
#[inline]
pub(crate) fn entry_flags(entry: &[u32]) -> u32 {
    entry.get(3).map_or(0, |meta| meta & ENTRY_FLAGS)
}

/// The flags of an index entry for `stmt` ([`ENTRY_FLAGS`] but `KNOWN_ACTION`), as the
/// scan, which reads no entries, also evaluates statements with.
pub(crate) fn stmt_flags(stmt: &Stmt) -> u32 {
    let mut flags = 0;
    if stmt.effect == crate::types::Effect::Deny {
        flags |= DENY;
    }
    if stmt.resources_negated {
        flags |= NOT_RESOURCE;
    }
    if stmt.principal.is_some() {
        flags |= HAS_PRINCIPAL;
    }
    if stmt.has_obligations {
        flags |= OBLIGATIONS;
    }
    flags
}

/// A statement's resource prefilter, kept in its index entries so most statements that
/// cannot match the request's resource are skipped without reading the statement: eight
/// literal bytes every matching resource has at a fixed offset. `[0, 0, 0]` when the
/// statement has none (several resources, `NotResource`, variables, a leading wildcard with
/// a short last literal run). The bytes are counted from the end of the resource for a
/// pattern whose probe is its last literal run.
pub(crate) fn prefilter(stmt: &Stmt) -> [u32; 3] {
    match (stmt.resources_negated, &stmt.resources[..]) {
        (false, [ResPat::Static(p)]) => p.prefilter(),
        _ => [0, 0, 0],
    }
}

/// Whether a resource passes an entry's prefilter.
#[inline]
pub(crate) fn admits(entry: &[u32], resource: &[u8]) -> bool {
    let (Some(&lo), Some(&hi), Some(&meta)) = (entry.get(1), entry.get(2), entry.get(3)) else {
        return true;
    };
    Pattern::prefilter_admits([lo, hi, meta], resource)
}

impl Index {
    fn new(data: Box<[u32]>) -> Self {
        let mut head = [0; HEAD];
        for (h, d) in head.iter_mut().zip(data.iter()) {
            *h = *d;
        }
        Index { head, data }
    }

    fn word(&self, i: usize) -> u32 {
        self.head
            .get(i)
            .or_else(|| self.data.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// `len` words from `start`: from `head` when they lie in the first line.
    fn words(&self, start: usize, len: usize) -> &[u32] {
        match self.head.get(start..start + len) {
            Some(w) => w,
            None => self.range(start, len),
        }
    }

    fn header(&self, i: usize) -> usize {
        (self.word(i) & !NARROW) as usize
    }

    fn narrow(&self) -> bool {
        self.word(0) & NARROW != 0
    }

    fn range(&self, start: usize, len: usize) -> &[u32] {
        self.data.get(start..start + len).unwrap_or_default()
    }

    /// Words of `ends` for `n_keys` keys.
    fn ends_len(n_keys: usize, narrow: bool) -> usize {
        if narrow {
            n_keys.div_ceil(2)
        } else {
            n_keys
        }
    }

    /// `ends[i]`.
    fn end(&self, n_keys: usize, narrow: bool, i: usize) -> usize {
        if narrow {
            ((self.word(HEADER + n_keys + i / 2) >> (16 * (i % 2))) & 0xffff) as usize
        } else {
            self.word(HEADER + n_keys + i) as usize
        }
    }

    /// Where the wildcard entries start.
    fn wild_at(&self) -> usize {
        let n_keys = self.header(0);
        HEADER + n_keys + Self::ends_len(n_keys, self.narrow())
    }

    /// The entries of the group under `key` (with the wildcard entries), if there is one.
    fn group(&self, key: u32) -> Option<&[u32]> {
        let n_keys = self.header(0);
        let keys = self.words(HEADER, n_keys);
        let i = keys.binary_search(&key).ok()?;
        let narrow = self.narrow();
        let start = match i.checked_sub(1) {
            Some(prev) => self.end(n_keys, narrow, prev),
            None => 0,
        };
        let end = self.end(n_keys, narrow, i);
        let groups = HEADER + n_keys + Self::ends_len(n_keys, narrow) + self.header(1) * ENTRY;
        Some(self.range(groups + start * ENTRY, end.saturating_sub(start) * ENTRY))
    }

    /// Entries of the statements that can match an action: those under the action's id, or
    /// when there are none, under its service id, with those whose actions may be of any
    /// service; only these when neither has a group.
    pub(crate) fn lookup(&self, action: Option<u32>, service: Option<u32>) -> &[u32] {
        action
            .and_then(|a| self.group(a))
            .or_else(|| service.and_then(|s| self.group(s | SERVICE_KEY)))
            .unwrap_or_else(|| self.wildcard())
    }

    /// Entries of statements whose actions may be of any service.
    pub(crate) fn wildcard(&self) -> &[u32] {
        self.range(self.wild_at(), self.header(1) * ENTRY)
    }

    /// Whether the index has no statements.
    pub(crate) fn is_empty(&self) -> bool {
        self.all().is_empty()
    }

    /// Every statement id of the attachment.
    pub(crate) fn all(&self) -> &[u32] {
        let Some((&n_all, rest)) = self.data.split_last() else {
            return &[];
        };
        let n_all = n_all as usize;
        rest.get(rest.len().saturating_sub(n_all)..)
            .unwrap_or_default()
    }

    /// Lays out an index from sorted, deduplicated `(key, statement)` pairs (`services`
    /// keyed by service id), the wildcard statements and all statements. The placer gives
    /// each statement's entry words, and says of an exact action its service and whether
    /// a statement's actions match it (whose text is known here, so a statement under the
    /// action's service that cannot match it is left out of the action's group, and one
    /// that does is marked [`KNOWN_ACTION`]), and whether a statement's actions match every
    /// action (a wildcard entry then marked so).
    fn build(
        exact: &[(u32, u32)],
        services: &[(u32, u32)],
        wildcard: &[u32],
        all: &[u32],
        placer: &Placer<'_>,
        narrow_limit: usize,
    ) -> Self {
        let actions = &placer.facts;
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let service_group = |svc: u32| {
            let from = services.partition_point(|(k, _)| *k < svc);
            let to = services.partition_point(|(k, _)| *k <= svc);
            services.get(from..to).unwrap_or_default()
        };
        // Per group, keys ascending (action ids, then tagged service ids): the key, the
        // statements that name it exactly (sorted by id) and those under its service.
        type Group<'a> = (u32, &'a [(u32, u32)], &'a [(u32, u32)]);
        let mut groups: Vec<Group<'_>> = Vec::new();
        for group in exact.chunk_by(|a, b| a.0 == b.0) {
            let key = group.first().map_or(0, |(k, _)| *k);
            let under_service = actions.service_of(key).map_or(&[][..], service_group);
            groups.push((key, group, under_service));
        }
        for group in services.chunk_by(|a, b| a.0 == b.0) {
            let key = group.first().map_or(0, |(k, _)| *k);
            groups.push((key | SERVICE_KEY, &[], group));
        }
        // Each group's own entries, `(statement, known)`, laid out one group after another
        // (`own_ends` says where each ends): a statement both named exactly and under the
        // service is listed once, as named; under an exact action, only the service's
        // statements that match the action.
        let mut members: Vec<(u32, bool)> = Vec::with_capacity(exact.len() + services.len());
        let mut own_ends: Vec<usize> = Vec::with_capacity(groups.len());
        for (key, exact, service) in &groups {
            if key & SERVICE_KEY != 0 {
                let svc = key & !SERVICE_KEY;
                members.extend(
                    service
                        .iter()
                        .map(|&(_, id)| (id, actions.statement_matches_service(id, svc))),
                );
            } else {
                members.extend(exact.iter().map(|&(_, id)| (id, true)));
                members.extend(
                    service
                        .iter()
                        .filter(|(_, id)| exact.binary_search_by_key(id, |(_, i)| *i).is_err())
                        .filter(|(_, id)| actions.statement_matches(*id, *key))
                        .map(|&(_, id)| (id, true)),
                );
            }
            own_ends.push(members.len());
        }
        let entries = members.len() + groups.len() * wildcard.len();
        let narrow = entries <= narrow_limit;
        let ends_len = Self::ends_len(groups.len(), narrow);
        let mut data = Vec::with_capacity(
            HEADER + groups.len() + ends_len + (wildcard.len() + entries) * ENTRY + all.len() + 16,
        );
        // Counts past 2^31 cannot occur: a set has at most `MAX_STATEMENTS` statements.
        let n_keys = to_u32(groups.len()) & !NARROW;
        data.extend([
            n_keys | if narrow { NARROW } else { 0 },
            to_u32(wildcard.len()),
        ]);
        data.extend(groups.iter().map(|(key, _, _)| *key));
        // Each group is followed by a copy of the wildcard entries.
        let mut ends = own_ends
            .iter()
            .enumerate()
            .map(|(i, end)| to_u32(end + (i + 1) * wildcard.len()));
        if narrow {
            while let Some(a) = ends.next() {
                data.push(a | ends.next().unwrap_or(0) << 16);
            }
        } else {
            data.extend(ends);
        }
        let entry = |data: &mut Vec<u32>, id: u32, known: bool| {
            let [lo, hi, meta] = placer.entries.get(id as usize).copied().unwrap_or([0; 3]);
            let known = if known { KNOWN_ACTION } else { 0 };
            data.extend([id, lo, hi, meta | known]);
        };
        let wild_at = data.len();
        for &id in wildcard {
            entry(&mut data, id, actions.statement_matches_any(id));
        }
        let wild_end = data.len();
        let mut from = 0;
        for &to in &own_ends {
            for &(id, known) in members.get(from..to).unwrap_or_default() {
                entry(&mut data, id, known);
            }
            data.extend_from_within(wild_at..wild_end);
            from = to;
        }
        // A whole number of cache lines: placed on a line boundary, it shares no line with
        // other data.
        let pad = (16 - (data.len() + all.len() + 1) % 16) % 16;
        data.resize(data.len() + pad, 0);
        data.extend_from_slice(all);
        data.push(to_u32(all.len()));
        Index::new(data.into_boxed_slice())
    }
}

/// Resource-policy attachments, bucketed by the first three parts of their pattern
/// (`arn:aws:s3`) when those are literal, so a request only tries the patterns of its own
/// partition and service.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResourceIndex {
    pub(crate) entries: Vec<(Pattern, Index)>,
    pub(crate) by_service: HashMap<Box<str>, Box<[u32]>, FixedState>,
    pub(crate) other: Box<[u32]>,
}

/// The text before the third `:` of an ARN-like string (`arn:aws:s3`), if it has one.
pub(crate) fn arn_service_prefix(s: &str) -> Option<&str> {
    let mut colons = s
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b == b':')
        .map(|(i, _)| i);
    let third = colons.nth(2)?;
    s.get(..third)
}

impl ResourceIndex {
    pub(crate) fn new(entries: Vec<(Pattern, Index)>) -> Self {
        let mut by_service: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        let mut other = Vec::new();
        for (i, (pattern, _)) in entries.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let prefix = pattern.literal_prefix();
            match arn_service_prefix(&prefix) {
                Some(key) => by_service.entry(key.to_owned()).or_default().push(i),
                None => other.push(i),
            }
        }
        ResourceIndex {
            entries,
            by_service: by_service
                .into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_slice()))
                .collect(),
            other: other.into_boxed_slice(),
        }
    }

    /// The attachments whose pattern may match `resource`, in any order.
    pub(crate) fn candidates<'s>(
        &'s self,
        resource: &str,
    ) -> impl Iterator<Item = &'s (Pattern, Index)> {
        let bucket = (!self.by_service.is_empty())
            .then(|| arn_service_prefix(resource))
            .flatten()
            .and_then(|k| self.by_service.get(k))
            .map_or(&[][..], |b| &b[..]);
        bucket
            .iter()
            .chain(self.other.iter())
            .filter_map(|&i| self.entries.get(i as usize))
    }
}

/// Compiled identity attachment.
#[derive(Debug, Clone, Default)]
pub(crate) struct CAttachment {
    pub(crate) identity: Index,
    /// Boxed: most roles have none, and the hash map's buckets stay small.
    pub(crate) boundary: Option<Box<Index>>,
}

/// What the directory says of a subject.
#[derive(Debug, Clone, Default)]
pub(crate) struct Directory {
    pub(crate) roles: Vec<crate::request::Text>,
    pub(crate) tags: BTreeMap<crate::request::Text, crate::request::Text>,
}

/// Per-policy metadata.
#[derive(Debug, Clone)]
pub(crate) struct PolicyMeta {
    pub(crate) name: String,
    pub(crate) origin: String,
    pub(crate) statements: std::ops::Range<u32>,
}

/// Keys up to 24 bytes (most role names and subject ids) are stored inline, so a lookup
/// compares them without reading another allocation.
type Map<V> = HashMap<compact_str::CompactString, V, FixedState>;

/// A map looked up by bytes (folded action names, which a decision keeps as bytes); keys
/// up to 24 bytes inline.
pub(crate) type ByteMap<V> = HashMap<smallvec::SmallVec<[u8; 24]>, V, FixedState>;

/// A compiled, immutable, `Send + Sync` policy set. Build with [`PolicySet::builder`] or
/// [`PolicySet::load_dir`]; ask with [`PolicySet::decide`].
#[derive(Debug)]
pub struct PolicySet {
    pub(crate) statements: Vec<Stmt>,
    /// Per statement (same index): what only outcomes, the linter and tests read.
    pub(crate) cold: Vec<Cold>,
    pub(crate) shared: Shared,
    pub(crate) obligations: Vec<Obligation>,
    /// For each obligation, the index of the first obligation with the same `Id`.
    pub(crate) obligation_keys: Vec<u32>,
    pub(crate) policies: Vec<PolicyMeta>,
    pub(crate) action_ids: ActionIds,
    pub(crate) roles: Map<CAttachment>,
    pub(crate) subjects: Map<CAttachment>,
    /// Subjects with directory roles or tags.
    pub(crate) directory: Map<Directory>,
    pub(crate) guardrails: Index,
    pub(crate) guardrails_have_allow: bool,
    pub(crate) resources: ResourceIndex,
    pub(crate) bindings: Bindings,
    pub(crate) revision: String,
}

/// The format of a policy document's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Collects documents and bindings, then compiles them into a [`PolicySet`]. Each document
/// is compiled as it is added (so the builder keeps no parsed documents); `build` adds the
/// bindings and reports every problem found in all of them.
#[derive(Debug, Default)]
pub struct PolicySetBuilder {
    pub(crate) compiled: crate::compile::Compiled,
    bindings: Option<Result<Bindings, String>>,
    bindings_origin: Option<String>,
}

impl PolicySetBuilder {
    /// Adds a policy document from text. `name` is how bindings refer to it; `origin` (e.g.
    /// the file path) names it in errors.
    #[must_use]
    pub fn policy_text(mut self, name: &str, origin: &str, format: Format, text: &str) -> Self {
        let parsed: Result<serde_json::Value, String> = if text.len() > MAX_DOCUMENT_BYTES {
            Err(format!(
                "document is {} bytes, over the limit of {MAX_DOCUMENT_BYTES}",
                text.len()
            ))
        } else {
            crate::nesting::check_nesting(text, format)
                .and_then(|()| match format {
                    Format::Json => {
                        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
                    }
                    Format::Yaml => {
                        yaml_serde::from_str(text).map_err(|e| format!("invalid YAML: {e}"))
                    }
                })
                .and_then(|v| crate::nesting::check_value(&v).map(|()| v))
        };
        self.compiled
            .add(name, origin, parsed.as_ref().map_err(String::clone));
        self
    }

    /// Adds a JSON policy document.
    #[must_use]
    pub fn policy_json(self, name: &str, text: &str) -> Self {
        self.policy_text(name, name, Format::Json, text)
    }

    /// Adds a YAML policy document.
    #[must_use]
    pub fn policy_yaml(self, name: &str, text: &str) -> Self {
        self.policy_text(name, name, Format::Yaml, text)
    }

    /// Adds an already parsed policy document.
    #[must_use]
    pub fn policy_value(self, name: &str, document: serde_json::Value) -> Self {
        self.policy_document(name, &document)
    }

    /// Adds an already parsed policy document that the caller keeps.
    #[must_use]
    pub fn policy_document(mut self, name: &str, document: &serde_json::Value) -> Self {
        self.compiled.add(name, name, Ok(document));
        self
    }

    /// Sets the bindings.
    #[must_use]
    pub fn bindings(mut self, bindings: Bindings) -> Self {
        self.bindings = Some(Ok(bindings));
        self
    }

    /// Sets the bindings from YAML text (the `bindings.yaml` format); `origin` names it in errors.
    #[must_use]
    pub fn bindings_yaml(mut self, origin: &str, text: &str) -> Self {
        let parsed = if text.len() > MAX_DOCUMENT_BYTES {
            Err(format!(
                "document is {} bytes, over the limit of {MAX_DOCUMENT_BYTES}",
                text.len()
            ))
        } else if text.trim().is_empty() {
            Ok(Bindings::default())
        } else {
            crate::nesting::check_nesting(text, Format::Yaml).and_then(|()| {
                yaml_serde::from_str::<Bindings>(text).map_err(|e| format!("invalid bindings: {e}"))
            })
        };
        self.bindings = Some(parsed);
        self.bindings_origin = Some(origin.to_owned());
        self
    }

    /// Compiles everything added, reporting every problem.
    pub fn build(self) -> Result<PolicySet, CompileErrors> {
        crate::compile::finish(
            self.compiled,
            self.bindings.unwrap_or_else(|| Ok(Bindings::default())),
            self.bindings_origin
                .unwrap_or_else(|| BINDINGS_FILE.to_owned()),
        )
    }

    pub(crate) fn error(&mut self, e: CompileError) {
        self.compiled.errors.push(e);
    }

    pub(crate) fn has_bindings(&self) -> bool {
        self.bindings.is_some()
    }

    pub(crate) fn set_bindings_origin(&mut self, origin: String) {
        self.bindings_origin = Some(origin);
    }
}

impl PolicySet {
    /// Starts building a set from in-memory documents.
    pub fn builder() -> PolicySetBuilder {
        PolicySetBuilder::default()
    }

    /// Loads `DIR/*.json`, `DIR/*.yaml`/`*.yml` (one policy each, named by file stem) and
    /// `DIR/bindings.yaml`. Sub-directories (such as `tests/`) are not read; a symbolic link
    /// is read only if it resolves to a file inside `DIR` (one leaving it is an error of the
    /// set, see [`contained_file`]).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<PolicySet, LoadError> {
        let dir = dir.as_ref();
        let io = |path: &Path, source| LoadError::Io {
            path: path.display().to_string(),
            source,
        };
        let canonical = dir.canonicalize().map_err(|e| io(dir, e))?;
        // Not `is_file`, which follows links: links are resolved below, within `dir` only.
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        entries.sort();
        let mut builder = PolicySet::builder();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut count = 0usize;
        for path in entries {
            let file_name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            let format = match ext {
                "json" => Format::Json,
                "yaml" | "yml" => Format::Yaml,
                _ => continue,
            };
            let origin = path.display().to_string();
            let target = match contained_file(&canonical, &path) {
                Ok(Some(target)) => target,
                Ok(None) => continue,
                Err(message) => {
                    builder.error(CompileError {
                        file: origin,
                        statement: None,
                        sid: None,
                        field: None,
                        message,
                    });
                    continue;
                }
            };
            let text = read_bounded(&target).map_err(|e| io(&path, e))?;
            if file_name == BINDINGS_FILE || file_name == "bindings.yml" {
                builder = builder.bindings_yaml(&origin, &text);
                continue;
            }
            if file_name == ROUTES_FILE {
                continue;
            }
            count += 1;
            if count > MAX_POLICIES {
                builder.error(CompileError {
                    file: dir.display().to_string(),
                    statement: None,
                    sid: None,
                    field: None,
                    message: format!("more than {MAX_POLICIES} policy documents"),
                });
                break;
            }
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            if let Some(other) = seen.insert(name.clone(), origin.clone()) {
                builder.error(CompileError {
                    file: origin.clone(),
                    statement: None,
                    sid: None,
                    field: None,
                    message: format!("policy name `{name}` is also used by `{other}`"),
                });
                continue;
            }
            builder = builder.policy_text(&name, &origin, format, &text);
        }
        if !builder.has_bindings() {
            builder.set_bindings_origin(dir.join(BINDINGS_FILE).display().to_string());
        }
        Ok(builder.build()?)
    }

    /// The set's revision: a digest of its documents and bindings.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Whether any condition reads the context key `name` (case-insensitive), as its key or
    /// in a policy variable. Walks every statement: callers keep the answer per revision.
    pub fn reads_context_key(&self, name: &str) -> bool {
        // Every condition in the list is some statement's.
        self.shared.conditions.iter().any(|c| {
            c.keys()
                .iter()
                .any(|k| matches!(k, crate::keys::Key::Context(n) if n.eq_ignore_ascii_case(name)))
        })
    }

    /// The number of statements.
    pub fn statement_count(&self) -> usize {
        self.statements.len()
    }

    /// Policy names, in the order they were added.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.iter().map(|p| p.name.as_str())
    }

    /// The bindings the set was built with.
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Every statement's location, in order.
    pub fn statements(&self) -> impl Iterator<Item = &StatementInfo> {
        self.cold.iter().map(|c| &c.info)
    }

    /// The actions the statements name without a wildcard (in `Action` or `NotAction`),
    /// each once, folded to lower case as the set compares them, in no particular order.
    pub fn named_actions(&self) -> impl Iterator<Item = &str> {
        self.action_ids
            .by_id
            .iter()
            .filter_map(|(name, _)| std::str::from_utf8(name).ok())
    }
}

/// Where to read `path`, an entry of the policy directory whose canonical path is `dir`:
/// `Some` for a regular file, or a symbolic link that resolves to a regular file inside
/// `dir` (as Kubernetes mounts a ConfigMap); `None` for what is not read (a directory,
/// a special file, a link to either inside `dir`); an error for a link that resolves
/// outside `dir` or cannot be resolved. The error names the link only: neither where it
/// points nor anything of the file there.
pub fn contained_file(dir: &Path, path: &Path) -> Result<Option<std::path::PathBuf>, String> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| format!("cannot read the directory entry: {e}"))?;
    if !meta.file_type().is_symlink() {
        return Ok(meta.is_file().then(|| path.to_path_buf()));
    }
    let Ok(target) = path.canonicalize() else {
        return Err("symbolic link that cannot be resolved; not read".to_owned());
    };
    if !target.starts_with(dir) {
        return Err("symbolic link to a file outside the policy directory; not read".to_owned());
    }
    Ok(std::fs::metadata(&target)
        .is_ok_and(|m| m.is_file())
        .then_some(target))
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_DOCUMENT_BYTES as u64 + 1)
        .read_to_string(&mut text)?;
    Ok(text)
}

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

/// Global ids for the exact (folded) action names and the services that statements name, so
/// a decision hashes its action once and each attachment's index is searched by integer.
#[derive(Debug, Clone, Default)]
pub(crate) struct ActionIds {
    /// Exact action name -> its id, and the id of its service (so a decision whose action
    /// a statement names needs one lookup).
    pub(crate) actions: ByteMap<(u32, Option<u32>)>,
    pub(crate) services: ByteMap<u32>,
    /// The name and service id of each action id (for building indexes).
    pub(crate) by_id: Vec<(Box<[u8]>, Option<u32>)>,
    /// The name of each service id (for building indexes).
    pub(crate) service_names: Vec<Box<[u8]>>,
}

/// What building an index needs to know of actions and of statements' action patterns.
pub(crate) struct ActionFacts<'a> {
    pub(crate) statements: &'a [Stmt],
    pub(crate) ids: &'a ActionIds,
}

impl ActionFacts<'_> {
    /// The service id of an exact action id.
    fn service_of(&self, action: u32) -> Option<u32> {
        self.ids.by_id.get(action as usize).and_then(|(_, s)| *s)
    }

    /// Whether a statement's `Action`/`NotAction` matches an exact action id.
    fn statement_matches(&self, statement: u32, action: u32) -> bool {
        let (Some(s), Some((name, _))) = (
            self.statements.get(statement as usize),
            self.ids.by_id.get(action as usize),
        ) else {
            return false;
        };
        // As a decision matches the action (`Stmt::applies`), for an action whose folded
        // text is `name` and whose id is `action`.
        let hit = s.actions_wild.iter().any(|p| p.matches_bytes(name))
            || s.actions_exact.contains(&action);
        hit != s.actions_negated
    }

    /// Whether a statement's `Action` matches every action (it has `*`).
    fn statement_matches_any(&self, statement: u32) -> bool {
        self.statements
            .get(statement as usize)
            .is_some_and(|s| !s.actions_negated && s.actions_wild.iter().any(Pattern::is_any))
    }

    /// Whether a statement's `Action` matches every action of a service (it has
    /// `service:*`).
    fn statement_matches_service(&self, statement: u32, service: u32) -> bool {
        let (Some(s), Some(name)) = (
            self.statements.get(statement as usize),
            self.ids.service_names.get(service as usize),
        ) else {
            return false;
        };
        // `service:*`: every action looked up under this service (its text before the
        // first `:` is the service's name) starts with `service:`.
        !s.actions_negated
            && s.actions_wild.iter().any(|p| match p.simple() {
                Some(Simple::Runs(runs)) => match runs.as_slice() {
                    [head, ""] => head
                        .as_bytes()
                        .split_last()
                        .is_some_and(|(colon, svc)| *colon == b':' && svc == &name[..]),
                    _ => false,
                },
                _ => false,
            })
    }
}

/// Where a statement's action patterns place it in an index.
enum Placement {
    /// Some pattern can match actions of any service (`*`, `s*:...`, `NotAction`).
    Wildcard,
    /// Exact action ids and service ids (for patterns with wildcards after the service).
    Keys(Vec<u32>, Vec<u32>),
}

impl ActionIds {
    /// Interns the actions and services of `statements` and records each statement's exact
    /// action ids.
    pub(crate) fn assign(statements: &mut [Stmt], cold: &[Cold]) -> Self {
        let ids = Self::new(cold);
        for (s, c) in statements.iter_mut().zip(cold) {
            let exact: smallvec::SmallVec<[u32; 4]> = c
                .actions
                .iter()
                .filter(|p| p.is_exact())
                .filter_map(|p| ids.actions.get(p.literal_prefix().as_bytes()).map(|e| e.0))
                .collect();
            s.actions_wild = c
                .actions
                .iter()
                .filter(|p| !p.is_exact())
                .cloned()
                .collect();
            s.actions_exact = exact;
        }
        ids
    }

    fn new(cold: &[Cold]) -> Self {
        let mut ids = ActionIds::default();
        for c in cold {
            for p in c.actions.iter() {
                let prefix = p.literal_prefix();
                let Some((service, _)) = prefix.split_once(':') else {
                    continue;
                };
                let service = (!p.is_any()).then(|| {
                    let n = u32::try_from(ids.services.len()).unwrap_or(u32::MAX);
                    *ids.services.entry(service.as_bytes().into()).or_insert(n)
                });
                if p.is_exact() {
                    let n = u32::try_from(ids.actions.len()).unwrap_or(u32::MAX);
                    ids.actions
                        .entry(prefix.as_bytes().into())
                        .or_insert((n, service));
                }
            }
        }
        ids.service_names = vec![Box::default(); ids.services.len()];
        for (name, &id) in &ids.services {
            if let Some(slot) = ids.service_names.get_mut(id as usize) {
                *slot = name.as_slice().into();
            }
        }
        ids.by_id = vec![(Box::default(), None); ids.actions.len()];
        for (name, &(id, service)) in &ids.actions {
            if let Some(slot) = ids.by_id.get_mut(id as usize) {
                *slot = (name.as_slice().into(), service);
            }
        }
        ids
    }

    fn placement(&self, s: &Stmt, c: &Cold) -> Placement {
        if s.actions_negated {
            return Placement::Wildcard;
        }
        let (mut exact, mut services) = (Vec::new(), Vec::new());
        for p in c.actions.iter() {
            let prefix = p.literal_prefix();
            let service = match prefix.split_once(':') {
                Some((service, _)) if !p.is_any() => service,
                _ => return Placement::Wildcard,
            };
            if p.is_exact() {
                match self.actions.get(prefix.as_bytes()) {
                    Some(&(id, _)) => exact.push(id),
                    None => return Placement::Wildcard,
                }
            } else {
                match self.services.get(service.as_bytes()) {
                    Some(&id) => services.push(id),
                    None => return Placement::Wildcard,
                }
            }
        }
        Placement::Keys(exact, services)
    }
}

/// What building an attachment's action index needs of each statement of a set, worked
/// out once however many attachments name the statement: where its action patterns place
/// it, and its index entries' words (resource prefilter and flags).
pub(crate) struct Placer<'a> {
    facts: ActionFacts<'a>,
    placements: Vec<Placement>,
    entries: Vec<[u32; 3]>,
}

impl<'a> Placer<'a> {
    pub(crate) fn new(statements: &'a [Stmt], cold: &[Cold], ids: &'a ActionIds) -> Self {
        Placer {
            facts: ActionFacts { statements, ids },
            placements: statements
                .iter()
                .zip(cold)
                .map(|(s, c)| ids.placement(s, c))
                .collect(),
            entries: statements
                .iter()
                .map(|s| {
                    let [lo, hi, meta] = prefilter(s);
                    [lo, hi, meta | stmt_flags(s)]
                })
                .collect(),
        }
    }

    /// The action index over statement ids.
    pub(crate) fn index(&self, members: impl IntoIterator<Item = u32>) -> Index {
        self.index_narrow_to(members, usize::from(u16::MAX))
    }

    /// [`Placer::index`], with `u16` group ends when the groups hold at most
    /// `narrow_limit` entries (tests build both forms).
    fn index_narrow_to(
        &self,
        members: impl IntoIterator<Item = u32>,
        narrow_limit: usize,
    ) -> Index {
        // (key, statement) pairs, sorted and deduplicated: cheaper than ordered maps for
        // the handful of statements an attachment has.
        let mut exact: Vec<(u32, u32)> = Vec::new();
        let mut services: Vec<(u32, u32)> = Vec::new();
        let mut wildcard: Vec<u32> = Vec::new();
        let mut all: Vec<u32> = members.into_iter().collect();
        all.sort_unstable();
        all.dedup();
        all.retain(|id| self.facts.statements.get(*id as usize).is_some());
        for &id in &all {
            match self.placements.get(id as usize) {
                Some(Placement::Wildcard) => wildcard.push(id),
                Some(Placement::Keys(actions, svcs)) => {
                    exact.extend(actions.iter().map(|&a| (a, id)));
                    services.extend(svcs.iter().map(|&s| (s, id)));
                }
                None => {}
            }
        }
        for v in [&mut exact, &mut services] {
            v.sort_unstable();
            v.dedup();
        }
        Index::build(&exact, &services, &wildcard, &all, self, narrow_limit)
    }
}

/// The revision digest of a set's inputs: its documents' digests in name order, then the
/// bindings.
pub(crate) fn revision_of(docs: &mut [(String, [u8; 32])], bindings: &Bindings) -> String {
    docs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, digest) in docs.iter() {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(digest);
    }
    // Serialized whole and hashed in one call (cheaper than feeding the hasher the
    // serializer's many small writes); bindings always serialize.
    if let Ok(text) = serde_json::to_vec(bindings) {
        h.update(text);
    }
    let digest = h.finalize();
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Where [`encode`] writes: a buffer or a hasher.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

/// Feeds an unambiguous encoding of a JSON value's structure to `out` (cheaper than
/// serializing it: no escaping, no number formatting, no copy of the document).
fn encode(out: &mut impl Sink, v: &serde_json::Value) {
    use serde_json::Value as J;
    fn len(out: &mut impl Sink, n: usize) {
        out.put(&(n as u64).to_le_bytes());
    }
    match v {
        J::Null => out.put(b"n"),
        J::Bool(true) => out.put(b"t"),
        J::Bool(false) => out.put(b"f"),
        J::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.put(b"#i");
                out.put(&i.to_le_bytes());
            } else if let Some(u) = n.as_u64() {
                out.put(b"#u");
                out.put(&u.to_le_bytes());
            } else {
                out.put(b"#f");
                out.put(&n.as_f64().unwrap_or_default().to_bits().to_le_bytes());
            }
        }
        J::String(s) => {
            out.put(b"s");
            len(out, s.len());
            out.put(s.as_bytes());
        }
        J::Array(a) => {
            out.put(b"[");
            len(out, a.len());
            for item in a {
                encode(out, item);
            }
        }
        J::Object(m) => {
            out.put(b"{");
            len(out, m.len());
            for (k, item) in m {
                len(out, k.len());
                out.put(k.as_bytes());
                encode(out, item);
            }
        }
    }
}

/// A SHA-256 digest of a document's structure. The encoding is written to `scratch` (left
/// with it) and hashed in one call: cheaper than feeding the hasher its many small pieces.
pub(crate) fn document_digest(v: &serde_json::Value, scratch: &mut Vec<u8>) -> [u8; 32] {
    scratch.clear();
    encode(scratch, v);
    Sha256::digest(scratch.as_slice()).into()
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A 64-bit digest of a JSON value's structure, for telling apart values in the linter.
pub(crate) fn json_digest(v: &serde_json::Value) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut sink = HashSink(FixedState::default().build_hasher());
    encode(&mut sink, v);
    sink.0.finish()
}

/// Feeds a 64-bit hasher directly.
struct HashSink<H>(H);

impl<H: std::hash::Hasher> Sink for HashSink<H> {
    fn put(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
}

/// Parses an `Obligations` entry.
pub(crate) fn parse_obligation(v: &serde_json::Value) -> Result<Obligation, String> {
    let Some(obj) = v.as_object() else {
        return Err(
            "each obligation must be an object with `Id`, `Type` and optional `Properties`".into(),
        );
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "Id" | "Type" | "Properties"))
    {
        return Err(format!(
            "unknown obligation field `{k}` (expected `Id`, `Type`, `Properties`)"
        ));
    }
    let id = match obj.get("Id") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err("obligation `Id` must be a non-empty string".into()),
    };
    let kind = match obj.get("Type") {
        Some(serde_json::Value::String(s)) => ObligationType::parse(s).ok_or_else(|| {
            format!(
                "obligation `{id}` has unknown `Type` `{s}` (expected one of {})",
                ObligationType::ALL
                    .iter()
                    .map(|(_, n)| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?,
        _ => return Err(format!("obligation `{id}` needs a string `Type`")),
    };
    let properties = match obj.get("Properties") {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(m)) => m.clone(),
        Some(_) => return Err(format!("obligation `{id}` `Properties` must be an object")),
    };
    Ok(Obligation {
        id,
        kind,
        properties,
    })
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<PolicySet>();
}

#[cfg(test)]
mod tests {
    /// Feeds a hasher each piece as [`super::encode`] writes it.
    struct Pieces(sha2::Sha256);

    impl super::Sink for Pieces {
        fn put(&mut self, bytes: &[u8]) {
            sha2::Digest::update(&mut self.0, bytes);
        }
    }

    #[test]
    fn a_document_digest_is_the_hash_of_its_encoding_however_it_is_fed() {
        let doc = serde_json::json!({"Version": "2012-10-17", "Statement": [
            {"Sid": "a", "Effect": "Allow", "Action": ["s3:Get*", "s3:List*"],
             "Resource": "arn:aws:s3:::b/*", "Condition": {"NumericLessThan": {"k": 3.5}}},
            {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*",
             "Condition": {"Bool": {"aws:MultiFactorAuthPresent": false}, "Null": {"x": true}}},
            {"Effect": "Allow", "Action": "s3:*", "Resource": [], "Big": 18_446_744_073_709_551_615u64,
             "Neg": -7, "Nothing": null}]});
        let mut pieces = Pieces(sha2::Sha256::default());
        super::encode(&mut pieces, &doc);
        let fed: [u8; 32] = sha2::Digest::finalize(pieces.0).into();
        let mut scratch = b"left over from an earlier document".to_vec();
        assert_eq!(super::document_digest(&doc, &mut scratch), fed);
        // Another document through the same buffer: nothing of the first is hashed.
        let other = serde_json::json!({"Version": "2012-10-17", "Statement": []});
        let mut fresh = Vec::new();
        assert_eq!(
            super::document_digest(&other, &mut scratch),
            super::document_digest(&other, &mut fresh)
        );
        assert_ne!(super::document_digest(&other, &mut scratch), fed);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn named_actions_are_the_exact_ones_folded_once() {
        let set = super::PolicySet::builder()
            .policy_yaml(
                "p",
                r#"
Version: "2012-10-17"
Statement:
  - Effect: Allow
    Action: ["doc:Read", "doc:*", "s3:Get*"]
    Resource: "*"
  - Effect: Deny
    NotAction: ["DOC:READ", "iam:CreateUser"]
    Resource: "*"
"#,
            )
            .bindings_yaml("b", "roles: { R: { policies: [p] } }")
            .build()
            .unwrap();
        let mut names: Vec<&str> = set.named_actions().collect();
        names.sort_unstable();
        assert_eq!(names, ["doc:read", "iam:createuser"]);
    }

    #[cfg(unix)]
    #[test]
    #[allow(clippy::unwrap_used)]
    fn links_are_read_only_inside_the_policy_directory() {
        let root = std::env::temp_dir().join(format!("pdp-links-{}", std::process::id()));
        let dir = root.join("policies");
        let outside = root.join("outside");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let doc = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}}"#;
        std::fs::write(dir.join("real.json"), doc).unwrap();
        std::fs::write(outside.join("secret.yaml"), "password: hunter2\n").unwrap();
        std::os::unix::fs::symlink(dir.join("real.json"), dir.join("inside.json")).unwrap();
        assert_eq!(
            super::PolicySet::load_dir(&dir)
                .unwrap()
                .policy_names()
                .count(),
            2
        );
        std::os::unix::fs::symlink(outside.join("secret.yaml"), dir.join("leak.yaml")).unwrap();
        let err = super::PolicySet::load_dir(&dir).unwrap_err().to_string();
        assert!(
            err.contains("leak.yaml") && err.contains("outside the policy directory"),
            "{err}"
        );
        assert!(
            !err.contains("password") && !err.contains("hunter2") && !err.contains("secret"),
            "{err}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn revisions_stay_the_same_from_one_release_to_the_next() {
        // Replicas running different releases during a rollout must name the same set the
        // same way: the digest's encoding is fixed, and this pins it.
        let set = super::PolicySet::builder()
            .policy_json(
                "read",
                r#"{"Version": "2012-10-17", "Statement": {"Sid": "R", "Effect": "Allow",
                    "Action": ["s3:Get*", "s3:List*"], "Resource": "arn:aws:s3:::docs/*",
                    "Condition": {"NumericLessThan": {"pdp:Risk": 3}}}}"#,
            )
            .policy_yaml(
                "deny",
                "Version: '2012-10-17'\nStatement:\n  - Effect: Deny\n    Action: '*'\n    Resource: '*'\n    Condition: {Bool: {aws:MultiFactorAuthPresent: false}}\n",
            )
            .bindings_yaml(
                "bindings.yaml",
                "roles: { Reader: { policies: [read], boundary: read } }\nguardrails: [deny]\n",
            )
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(set.revision(), "05fa738359c58439");
        // The same documents written in the other format: the same set, the same revision.
        let again = super::PolicySet::builder()
            .policy_yaml(
                "read",
                "Version: '2012-10-17'\nStatement:\n  Sid: R\n  Effect: Allow\n  Action: [s3:Get*, s3:List*]\n  Resource: arn:aws:s3:::docs/*\n  Condition: {NumericLessThan: {pdp:Risk: 3}}\n",
            )
            .policy_json(
                "deny",
                r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*",
                    "Resource": "*", "Condition": {"Bool": {"aws:MultiFactorAuthPresent": false}}}]}"#,
            )
            .bindings_yaml(
                "bindings.yaml",
                "roles: { Reader: { policies: [read], boundary: read } }\nguardrails: [deny]\n",
            )
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(again.revision(), set.revision());
    }

    #[test]
    fn context_keys_read_by_conditions_and_variables_are_known() {
        let policy = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "s3:*",
            "Resource": "arn:aws:s3:::b/${pdp:DeviceId}/*",
            "Condition": {"NumericLessThan": {"pdp:SessionAge": "3600"}}}}"#;
        let set = super::PolicySet::builder()
            .policy_json("p", policy)
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(set.reads_context_key("pdp:sessionage"));
        assert!(set.reads_context_key("PDP:SessionAge"));
        assert!(!set.reads_context_key("pdp:RiskLevel"));
        // Resource patterns are not conditions.
        assert!(!set.reads_context_key("pdp:DeviceId"));
    }

    /// A set of one policy, `p`, bound to role `R`.
    fn role_r(policy: &str) -> super::PolicySet {
        super::PolicySet::builder()
            .policy_json("p", policy)
            .bindings_yaml("b", "roles: { R: { policies: [p] } }")
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// Role `R`'s identity index.
    fn index_of_r(set: &super::PolicySet) -> super::Index {
        set.roles
            .get("R")
            .map(|a| a.identity.clone())
            .unwrap_or_default()
    }

    /// The entries (statement id, whether marked [`super::KNOWN_ACTION`]) a lookup of
    /// `action` reads in role `R`'s index (the wildcard entries last).
    fn entries(set: &super::PolicySet, action: &str) -> Vec<(u32, bool)> {
        let ids = &set.action_ids;
        let (id, service) = ids
            .actions
            .get(action.as_bytes())
            .map_or((None, None), |&(id, s)| (Some(id), s));
        let service = service.or_else(|| {
            let (name, _) = action.split_once(':')?;
            ids.services.get(name.as_bytes()).copied()
        });
        index_of_r(set)
            .lookup(id, service)
            .chunks_exact(super::ENTRY)
            .map(|e| {
                let id = e.first().copied().unwrap_or(u32::MAX);
                (id, super::entry_flags(e) & super::KNOWN_ACTION != 0)
            })
            .collect()
    }

    #[test]
    fn wide_and_narrow_indexes_hold_the_same_groups() {
        let mut statements = Vec::new();
        for i in 0..40 {
            statements.push(format!(
                r#"{{"Effect": "Allow", "Action": ["s3:Get{i}", "s3:Put*", "ec2:Run{}"], "Resource": "*"}}"#,
                i % 7
            ));
        }
        statements.push(r#"{"Effect": "Deny", "Action": "*", "Resource": "*"}"#.to_owned());
        let policy = format!(
            r#"{{"Version": "2012-10-17", "Statement": [{}]}}"#,
            statements.join(",")
        );
        let set = role_r(&policy);
        let members = 0..u32::try_from(set.statements.len()).unwrap_or(0);
        let placer = super::Placer::new(&set.statements, &set.cold, &set.action_ids);
        let build = |limit| placer.index_narrow_to(members.clone(), limit);
        let (narrow, wide) = (build(usize::from(u16::MAX)), build(0));
        assert!(narrow.narrow() && !wide.narrow());
        let services: Vec<u32> = set.action_ids.services.values().copied().collect();
        let actions: Vec<(u32, Option<u32>)> = set.action_ids.actions.values().copied().collect();
        assert!(actions.len() > 40);
        for (a, svc) in actions {
            assert_eq!(narrow.lookup(Some(a), svc), wide.lookup(Some(a), svc));
            assert!(!narrow.lookup(Some(a), svc).is_empty());
        }
        for svc in services {
            assert_eq!(narrow.lookup(None, Some(svc)), wide.lookup(None, Some(svc)));
        }
        assert_eq!(narrow.lookup(None, None), wide.lookup(None, None));
        assert_eq!(narrow.all(), wide.all());
        assert_eq!(narrow.all().len(), set.statements.len());
        // Over 14 keys: the keys run past the copy of the first line into `data`.
        for index in [&narrow, &wide] {
            assert!(super::HEADER + index.header(0) > super::HEAD);
            assert_eq!(Some(&index.head[..]), index.data.get(..super::HEAD));
        }
    }

    #[test]
    fn an_index_keeps_a_copy_of_its_first_line() {
        let set = role_r(
            r#"{"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
                {"Effect": "Allow", "Action": "s3:Put*", "Resource": "*"}]}"#,
        );
        let index = index_of_r(&set);
        assert_eq!(index.data.len() % super::HEAD, 0);
        assert_eq!(Some(&index.head[..]), index.data.get(..super::HEAD));
        // Its keys lie in the copy, and read there as they do in `data`.
        assert!(super::HEADER + index.header(0) <= super::HEAD);
        assert_ne!(index.head, [0; super::HEAD]);
        assert_eq!(
            index.words(super::HEADER, index.header(0)),
            index.range(super::HEADER, index.header(0))
        );
        let ids = &set.action_ids;
        let (get, svc) = ids
            .actions
            .get(&b"s3:getobject"[..])
            .map_or((None, None), |&(a, s)| (Some(a), s));
        assert_eq!(index.lookup(get, svc).len(), super::ENTRY);
        // An empty index reads as empty.
        let empty = super::Index::default();
        assert!(empty.lookup(get, svc).is_empty() && empty.all().is_empty());
    }

    #[test]
    fn a_named_actions_group_holds_only_the_service_statements_that_match_it() {
        let policy = r#"{"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:Put*", "Resource": "*"},
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "NotAction": "iam:*", "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#;
        let set = role_r(policy);
        // Named exactly: the exact statement, `s3:Get*` and `s3:*` (all known to match, so
        // no action pattern is read), not `s3:Put*`; then `*` (known) and the `NotAction`
        // (checked).
        assert_eq!(
            entries(&set, "s3:getobject"),
            [(0, true), (1, true), (5, true), (3, true), (4, false)]
        );
        // Not named by any statement: the service's group, each pattern to be checked but
        // `s3:*`.
        assert_eq!(
            entries(&set, "s3:listbucket"),
            [(1, false), (2, false), (5, true), (3, true), (4, false)]
        );
        // No service: only the wildcard entries.
        assert_eq!(entries(&set, "s3"), [(3, true), (4, false)]);
    }

    #[test]
    fn equal_conditions_are_kept_once_and_statements_keep_their_own() {
        let policy = |version: &str| {
            format!(
                r#"{{"Version": "{version}", "Statement": [
                {{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                  "Condition": {{"Bool": {{"aws:MultiFactorAuthPresent": "true"}},
                                "StringEquals": {{"aws:PrincipalTag/team": "${{aws:username}}"}}}}}},
                {{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "*",
                  "Condition": {{"Bool": {{"aws:MultiFactorAuthPresent": "true"}}}}}},
                {{"Effect": "Deny", "Action": "s3:*", "Resource": "*",
                  "Condition": {{"Bool": {{"aws:MultiFactorAuthPresent": "false"}},
                                "NumericLessThan": {{"pdp:Risk": [1, 2, 3, 4]}},
                                "IpAddress": {{"aws:SourceIp": "10.0.0.0/8"}},
                                "StringLike": {{"aws:userid": "a*"}}}}}}]}}"#
            )
        };
        let set = super::PolicySet::builder()
            .policy_json("new", &policy("2012-10-17"))
            .policy_json("old", &policy("2008-10-17"))
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        // MFA true and false, the tag compared with a variable (2012-10-17) and with the
        // literal text (2008-10-17: no variables), the risk list, the network, the pattern.
        assert_eq!(set.shared.conditions.len(), 7);
        let counts: Vec<usize> = set
            .statements
            .iter()
            .map(|s| set.shared.of(&s.conditions).count())
            .collect();
        assert_eq!(counts, [2, 1, 4, 2, 1, 4]);
        let labels: Vec<&str> = set
            .cold
            .iter()
            .flat_map(|c| c.labels.iter().map(|l| l.operator(&c.condition_labels)))
            .collect();
        assert_eq!(labels.len(), 14);
        // Operators in name order, as the document map keeps them.
        assert_eq!(
            labels.get(2..6),
            Some(&["Bool", "Bool", "IpAddress", "NumericLessThan"][..])
        );
    }

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
                        inline.matches(r.as_bytes(), &heads), want,
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
        let attachment = std::mem::size_of::<super::CAttachment>();
        assert!(attachment <= 96, "CAttachment is {attachment} bytes");
        eprintln!(
            "Stmt {stmt} ResPat {} Pattern {} Condition {condition}",
            std::mem::size_of::<super::ResPat>(),
            std::mem::size_of::<crate::pattern::Pattern>(),
        );
    }
}
