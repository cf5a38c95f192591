//! An attachment's action index ([`Index`]): one allocation laid out so that a lookup
//! reads few cache lines, with its words decoded here only: the header and group ends by
//! [`Index`]'s accessors, entries by the [`Entry`] view. Also the resource-policy index.
//!
//! It may not evaluate statements: it says which can match, with the flags of each entry.

use std::collections::{BTreeMap, HashMap};

use foldhash::fast::FixedState;

use super::actions::Placer;
use super::layout::{ResPat, Stmt};
use crate::pattern::Pattern;

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

/// One index entry: `[statement id, prefilter, prefilter, prefilter | flags]` (the
/// prefilter's two words of bytes, then its offset and length, which share the last word
/// with the statement's [`ENTRY_FLAGS`]). Entries are read through this view only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a>(&'a [u32; ENTRY]);

impl<'a> Entry<'a> {
    /// The view of an entry's words.
    #[cfg(test)]
    pub(crate) fn new(words: &'a [u32; ENTRY]) -> Self {
        Entry(words)
    }

    /// The words of an entry for statement `id`, with its prefilter (its last word with
    /// the statement's flags, see [`Placer`]) and, when `known`, [`KNOWN_ACTION`].
    fn encode(id: u32, [lo, hi, meta]: [u32; 3], known: bool) -> [u32; ENTRY] {
        let known = if known { KNOWN_ACTION } else { 0 };
        [id, lo, hi, meta | known]
    }

    /// The statement's id.
    #[inline]
    pub(crate) fn statement(self) -> u32 {
        let [id, ..] = *self.0;
        id
    }

    /// The statement's flags ([`ENTRY_FLAGS`]).
    #[inline]
    pub(crate) fn flags(self) -> u32 {
        let [.., meta] = *self.0;
        meta & ENTRY_FLAGS
    }

    /// Whether a resource passes the entry's prefilter.
    #[inline]
    pub(crate) fn admits(self, resource: &[u8]) -> bool {
        let [_, lo, hi, meta] = *self.0;
        Pattern::prefilter_admits([lo, hi, meta], resource)
    }
}

/// A run of index entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Entries<'a>(&'a [[u32; ENTRY]]);

impl<'a> Entries<'a> {
    /// The entries of `words`, a whole number of entries.
    fn of(words: &'a [u32]) -> Self {
        let (entries, rest) = words.as_chunks::<ENTRY>();
        // INVARIANT: entry runs are cut at entry boundaries (`Index::entries`).
        debug_assert!(rest.is_empty(), "an entry run of {} words", words.len());
        Entries(entries)
    }

    pub(crate) fn iter(self) -> impl Iterator<Item = Entry<'a>> {
        self.0.iter().map(Entry)
    }

    #[cfg(test)]
    pub(crate) fn len(self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(self) -> bool {
        self.0.is_empty()
    }
}

/// An index's header, its first two words: `[n_keys | NARROW, n_wild]`; where its parts
/// start follows from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// Keys (and groups).
    n_keys: usize,
    /// Wildcard entries (copied after each group).
    n_wild: usize,
    /// Whether the group ends are `u16`s, two to a word.
    narrow: bool,
}

impl Header {
    fn decode(first: u32, second: u32) -> Self {
        Header {
            n_keys: (first & !NARROW) as usize,
            n_wild: second as usize,
            narrow: first & NARROW != 0,
        }
    }

    fn encode(self) -> [u32; 2] {
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        // INVARIANT: counts stay below 2^31: a set has at most `MAX_STATEMENTS` statements.
        debug_assert!(self.n_keys < NARROW as usize);
        let narrow = if self.narrow { NARROW } else { 0 };
        [
            (to_u32(self.n_keys) & !NARROW) | narrow,
            to_u32(self.n_wild),
        ]
    }

    /// Words of the group ends.
    fn ends_len(self) -> usize {
        if self.narrow {
            self.n_keys.div_ceil(2)
        } else {
            self.n_keys
        }
    }

    /// Where the group ends start.
    fn ends_at(self) -> usize {
        HEADER + self.n_keys
    }

    /// Where the wildcard entries start.
    fn wild_at(self) -> usize {
        self.ends_at() + self.ends_len()
    }

    /// Where the first group's entries start.
    fn groups_at(self) -> usize {
        self.wild_at() + self.n_wild * ENTRY
    }
}

/// Two narrow group ends in one word: the even one in the low half.
fn pack_ends(even: u32, odd: u32) -> u32 {
    // INVARIANT: narrow ends fit 16 bits (`Index::build` makes an index narrow only then).
    debug_assert!(even <= 0xffff && odd <= 0xffff);
    (even & 0xffff) | (odd & 0xffff) << 16
}

/// Narrow group end `i` from its word (see [`pack_ends`]).
fn unpack_end(word: u32, i: usize) -> usize {
    ((word >> (16 * (i % 2))) & 0xffff) as usize
}

impl Index {
    fn new(data: Box<[u32]>) -> Self {
        let mut head = [0; HEAD];
        for (h, d) in head.iter_mut().zip(data.iter()) {
            *h = *d;
        }
        Index { head, data }
    }

    /// Word `i`, from the copy of the first line where it lies there; 0 past the end,
    /// which only an empty index (no words: no keys, no entries) reads.
    fn word(&self, i: usize) -> u32 {
        let word = self.head.get(i).or_else(|| self.data.get(i)).copied();
        // INVARIANT: a built index reads only its own words (`Index::build` lays out every
        // part the header counts).
        debug_assert!(
            word.is_some() || self.data.is_empty(),
            "word {i} of {}",
            self.data.len()
        );
        word.unwrap_or(0)
    }

    /// `len` words from `start`: from `head` when they lie in the first line.
    fn words(&self, start: usize, len: usize) -> &[u32] {
        match self.head.get(start..start + len) {
            Some(w) => w,
            None => self.range(start, len),
        }
    }

    fn range(&self, start: usize, len: usize) -> &[u32] {
        let words = self.data.get(start..start + len);
        // INVARIANT: as for `word`; an empty index reads empty runs only.
        debug_assert!(
            words.is_some() || self.data.is_empty(),
            "words {start}+{len} of {}",
            self.data.len()
        );
        words.unwrap_or_default()
    }

    /// The decoded header.
    fn header(&self) -> Header {
        Header::decode(self.word(0), self.word(1))
    }

    /// Where group `i`'s entries end, counted in entries from the first group entry.
    fn end(&self, h: Header, i: usize) -> usize {
        if h.narrow {
            unpack_end(self.word(h.ends_at() + i / 2), i)
        } else {
            self.word(h.ends_at() + i) as usize
        }
    }

    /// `n` entries from word `at`.
    fn entries(&self, at: usize, n: usize) -> Entries<'_> {
        Entries::of(self.range(at, n * ENTRY))
    }

    /// The entries of the group under `key` (with the wildcard entries), if there is one.
    fn group(&self, key: u32) -> Option<Entries<'_>> {
        let h = self.header();
        let keys = self.words(HEADER, h.n_keys);
        let i = keys.binary_search(&key).ok()?;
        let start = match i.checked_sub(1) {
            Some(prev) => self.end(h, prev),
            None => 0,
        };
        let end = self.end(h, i);
        // INVARIANT: group ends ascend (`Index::build` writes them so).
        debug_assert!(start <= end, "group {i} from {start} to {end}");
        Some(self.entries(h.groups_at() + start * ENTRY, end.saturating_sub(start)))
    }

    /// Entries of the statements that can match an action: those under the action's id, or
    /// when there are none, under its service id, with those whose actions may be of any
    /// service; only these when neither has a group.
    pub(crate) fn lookup(&self, action: Option<u32>, service: Option<u32>) -> Entries<'_> {
        action
            .and_then(|a| self.group(a))
            .or_else(|| service.and_then(|s| self.group(s | SERVICE_KEY)))
            .unwrap_or_else(|| self.wildcard())
    }

    /// Entries of statements whose actions may be of any service.
    pub(crate) fn wildcard(&self) -> Entries<'_> {
        let h = self.header();
        self.entries(h.wild_at(), h.n_wild)
    }

    /// Whether the index has no statements.
    pub(crate) fn is_empty(&self) -> bool {
        self.all().is_empty()
    }

    /// Every statement id of the attachment.
    pub(crate) fn all(&self) -> &[u32] {
        // An empty index has no words.
        let Some((&n_all, rest)) = self.data.split_last() else {
            return &[];
        };
        let ids = rest
            .len()
            .checked_sub(n_all as usize)
            .and_then(|at| rest.get(at..));
        // INVARIANT: the last word counts the ids before it (`Index::build`).
        debug_assert!(ids.is_some(), "{n_all} ids in {} words", rest.len());
        ids.unwrap_or_default()
    }

    /// Lays out an index from sorted, deduplicated `(key, statement)` pairs (`services`
    /// keyed by service id), the wildcard statements and all statements. The placer gives
    /// each statement's entry words, and says of an exact action its service and whether
    /// a statement's actions match it (whose text is known here, so a statement under the
    /// action's service that cannot match it is left out of the action's group, and one
    /// that does is marked [`KNOWN_ACTION`]), and whether a statement's actions match every
    /// action (a wildcard entry then marked so).
    pub(super) fn build(
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
            // INVARIANT: partition points of one sorted list: `from <= to <= len`.
            debug_assert!(from <= to && to <= services.len());
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
        let header = Header {
            n_keys: groups.len(),
            n_wild: wildcard.len(),
            narrow: entries <= narrow_limit,
        };
        let mut data = Vec::with_capacity(header.groups_at() + entries * ENTRY + all.len() + 16);
        data.extend(header.encode());
        data.extend(groups.iter().map(|(key, _, _)| *key));
        // Each group is followed by a copy of the wildcard entries.
        let mut ends = own_ends
            .iter()
            .enumerate()
            .map(|(i, end)| to_u32(end + (i + 1) * wildcard.len()));
        if header.narrow {
            while let Some(even) = ends.next() {
                data.push(pack_ends(even, ends.next().unwrap_or(0)));
            }
        } else {
            data.extend(ends);
        }
        let entry = |data: &mut Vec<u32>, id: u32, known: bool| {
            let words = placer.entries.get(id as usize).copied();
            // INVARIANT: `all` holds only the set's statements, each with its words.
            debug_assert!(words.is_some(), "statement {id} has no entry words");
            data.extend(Entry::encode(id, words.unwrap_or([0; 3]), known));
        };
        let wild_at = data.len();
        for &id in wildcard {
            entry(&mut data, id, actions.statement_matches_any(id));
        }
        let wild_end = data.len();
        let mut from = 0;
        for &to in &own_ends {
            // INVARIANT: `own_ends` are ascending lengths of `members`.
            debug_assert!(from <= to && to <= members.len());
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

#[cfg(test)]
mod tests {

    /// A set of one policy, `p`, bound to role `R`.
    fn role_r(policy: &str) -> crate::PolicySet {
        crate::PolicySet::builder()
            .policy_json("p", policy)
            .bindings_yaml("b", "roles: { R: { policies: [p] } }")
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"))
    }

    /// Role `R`'s identity index.
    fn index_of_r(set: &crate::PolicySet) -> super::Index {
        set.roles
            .get("R")
            .map(|a| a.identity.clone())
            .unwrap_or_default()
    }

    /// The entries (statement id, whether marked [`super::KNOWN_ACTION`]) a lookup of
    /// `action` reads in role `R`'s index (the wildcard entries last).
    fn entries(set: &crate::PolicySet, action: &str) -> Vec<(u32, bool)> {
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
            .iter()
            .map(|e| (e.statement(), e.flags() & super::KNOWN_ACTION != 0))
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
        assert!(narrow.header().narrow && !wide.header().narrow);
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
            assert!(super::HEADER + index.header().n_keys > super::HEAD);
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
        assert!(super::HEADER + index.header().n_keys <= super::HEAD);
        assert_ne!(index.head, [0; super::HEAD]);
        assert_eq!(
            index.words(super::HEADER, index.header().n_keys),
            index.range(super::HEADER, index.header().n_keys)
        );
        let ids = &set.action_ids;
        let (get, svc) = ids
            .actions
            .get(&b"s3:getobject"[..])
            .map_or((None, None), |&(a, s)| (Some(a), s));
        assert_eq!(index.lookup(get, svc).len(), 1);
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
}
