//! The searches (AuthZEN Subject, Resource and Action Search, and their gRPC twins),
//! transport-free: each takes a request already in the engine's terms and the snapshot to
//! answer with, and returns one page of results in a stable order with the token of the
//! next.
//!
//! - Resources: the engine's query plan for the subject and action, evaluated over the
//!   inventory's index ([`inventory`]): a glob's literal prefix narrows to a range of ids,
//!   tag equality to posting lists, and the plan decides on each candidate left (never one
//!   full decision per resource).
//! - Subjects: one decision per subject of the directory (the bindings' `subjects`).
//! - Actions: one decision per action of the catalog and per action the policies name.
//!
//! A page token says where the page ended (the last id, subject or action returned: pages
//! follow their sort order, so each item comes once), which search it belongs to (a digest
//! of the request without its page) and the inventory revision. A token is refused once the
//! inventory changed; a reload that changes only policies keeps it valid, and the pages
//! after it answer with the new policies.

// Candidates are lists of ranges; a list of one range is one of them, not a mistake.
#![allow(clippy::single_range_in_vec_init)]

pub mod inventory;

use std::ops::Range;

use base64::Engine as _;

use crate::decider::{Call, CheckInput, Decider, ServiceError};
use crate::state::Snapshot;
use inventory::TypeIndex;

/// Results in a page when the request gives no limit.
pub const DEFAULT_PAGE: usize = 100;
/// Most results in a page (a larger limit is lowered to it).
pub const MAX_PAGE: usize = 1000;
/// Most items (candidate resources, subjects, actions) one call examines: past it the page
/// ends early, possibly empty, with a token to go on.
pub const MAX_EXAMINED: usize = 20_000;
/// Longest page token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a search is asked for beyond its request.
#[derive(Debug, Clone, Copy)]
pub struct Paging<'a> {
    /// The token of the previous page; empty: the first page.
    pub token: &'a str,
    /// Most results; `None`: [`DEFAULT_PAGE`].
    pub limit: Option<u64>,
    /// The request as sent without its page (any stable encoding): a token is only good for
    /// the request that returned it.
    pub fingerprint: &'a [u8],
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Found<T> {
    /// The results, in order.
    pub results: Vec<T>,
    /// The next page's token; empty: this was the last page.
    pub next_token: String,
}

/// A resource found: its id and type as the inventory states them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundResource {
    /// The resource type.
    pub kind: String,
    /// The resource id.
    pub id: String,
    /// Its id as decisions name it (`<type>:<id>`, an ARN as is).
    pub resource_id: String,
}

/// What a search answers with.
#[derive(Debug, Clone, Copy)]
pub struct Searcher<'a> {
    /// The decider (identity, signals).
    pub decider: &'a Decider,
    /// The revision that answers.
    pub snapshot: &'a Snapshot,
    /// The call.
    pub call: &'a Call,
}

/// Which search a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Resource,
    Subject,
    Action,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Resource => "r",
            Kind::Subject => "s",
            Kind::Action => "a",
        }
    }
}

/// Where a page starts: after `cursor` (none: at the start), and how many results.
struct Start {
    cursor: Option<String>,
    limit: usize,
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(message.into())
}

fn query_digest(kind: Kind, fingerprint: &[u8]) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(kind.tag());
    hash.update(fingerprint);
    hash.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Searcher<'_> {
    /// Reads the paging request of a `kind` search.
    fn start(&self, kind: Kind, paging: &Paging<'_>) -> Result<Start, ServiceError> {
        let limit = match paging.limit {
            None | Some(0) => DEFAULT_PAGE,
            Some(n) => usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        };
        if paging.token.is_empty() {
            return Ok(Start {
                cursor: None,
                limit,
            });
        }
        let foreign = || invalid("`page.token`: not a page token of this PDP");
        if paging.token.len() > MAX_TOKEN_BYTES {
            return Err(invalid(format!(
                "`page.token`: {} bytes, over the limit of {MAX_TOKEN_BYTES}",
                paging.token.len()
            )));
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(paging.token)
            .map_err(|_| foreign())?;
        let raw = String::from_utf8(raw).map_err(|_| foreign())?;
        let mut fields = raw.splitn(5, '|');
        let (Some(tag), Some(inventory), Some(query), Some(_policies), Some(cursor)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return Err(foreign());
        };
        if tag != kind.tag() || query != query_digest(kind, paging.fingerprint) {
            return Err(invalid(
                "`page.token`: issued for another search request; repeat the request that returned it, changing only `page`",
            ));
        }
        let now = self.snapshot.inventory.revision();
        if inventory != now {
            return Err(invalid(format!(
                "`page.token`: the inventory changed since the token was issued (revision `{inventory}`, now `{now}`); start the search again without a token"
            )));
        }
        Ok(Start {
            cursor: Some(cursor.to_owned()),
            limit,
        })
    }

    /// The token of the page after the item `last` of a `kind` search.
    fn token(&self, kind: Kind, paging: &Paging<'_>, last: &str) -> String {
        let raw = format!(
            "{}|{}|{}|{}|{last}",
            kind.tag(),
            self.snapshot.inventory.revision(),
            query_digest(kind, paging.fingerprint),
            self.snapshot.set.revision(),
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// The resources of type `kind` that `input` (its resource left out) may act on.
    pub fn resources(
        &self,
        input: CheckInput<'_>,
        kind: &str,
        paging: &Paging<'_>,
    ) -> Result<Found<FoundResource>, ServiceError> {
        let start = self.start(Kind::Resource, paging)?;
        let planned = self.decider.plan(self.snapshot, input, self.call);
        let mut found = Found {
            results: Vec::new(),
            next_token: String::new(),
        };
        let Some(index) = self.snapshot.inventory.of_type(kind) else {
            return Ok(found);
        };
        if planned.refused.is_some() {
            return Ok(found);
        }
        let from = start.cursor.as_deref().map_or(0, |c| index.after(c));
        let candidates = clip(candidates(&planned.plan, index), from..index.len());
        let mut examined = 0usize;
        let mut positions = candidates.iter().flat_map(Clone::clone).peekable();
        while let Some(at) = positions.next() {
            let Some(entry) = index.entries.get(at as usize) else {
                break;
            };
            examined += 1;
            if planned.plan.allows(&entry.resource) {
                found.results.push(FoundResource {
                    kind: entry.kind.clone(),
                    id: entry.id.clone(),
                    resource_id: entry.resource.id.to_string(),
                });
            }
            let full = found.results.len() >= start.limit || examined >= MAX_EXAMINED;
            if full && positions.peek().is_some() {
                found.next_token = self.token(Kind::Resource, paging, &entry.resource.id);
                break;
            }
        }
        self.searched("resource", examined, found.results.len());
        Ok(found)
    }

    /// The subjects of the directory that may do what `input` asks (its subject id left
    /// out), in id order.
    pub fn subjects(
        &self,
        input: CheckInput<'_>,
        paging: &Paging<'_>,
    ) -> Result<Found<String>, ServiceError> {
        let start = self.start(Kind::Subject, paging)?;
        let subjects = &self.snapshot.set.bindings().subjects;
        let mut found = Found {
            results: Vec::new(),
            next_token: String::new(),
        };
        // The guards that do not depend on the subject refuse every one alike: answered
        // once, rather than a refusal per subject (each counting as that subject's deny in
        // the risk detection).
        let signals = &self.decider.state().signals;
        if self.call.signals_behind
            || (signals.stale() && signals.is_sensitive(&input.request.action))
        {
            self.searched("subject", 0, 0);
            return Ok(found);
        }
        let mut rest = match &start.cursor {
            Some(c) => subjects.range::<str, _>((
                std::ops::Bound::Excluded(c.as_str()),
                std::ops::Bound::Unbounded,
            )),
            None => subjects.range::<str, _>(..),
        }
        .map(|(id, _)| id)
        .peekable();
        let mut examined = 0usize;
        while let Some(id) = rest.next() {
            examined += 1;
            let mut request = input.request.clone();
            request.subject = pdp_engine::Subject {
                id: id.as_str().into(),
                ..Default::default()
            };
            let each = CheckInput {
                request,
                trusted: true,
                ..Default::default()
            };
            if self.allowed(each) {
                found.results.push(id.clone());
            }
            let full = found.results.len() >= start.limit || examined >= MAX_EXAMINED;
            if full && rest.peek().is_some() {
                found.next_token = self.token(Kind::Subject, paging, id);
                break;
            }
        }
        self.searched("subject", examined, found.results.len());
        Ok(found)
    }

    /// The actions `input` (its action left out) may perform: every action of the catalog
    /// and every action a statement names, in name order. A catalog action is named as
    /// the catalog writes it; other actions as the set compares them (lower case).
    pub fn actions(
        &self,
        input: CheckInput<'_>,
        paging: &Paging<'_>,
    ) -> Result<Found<String>, ServiceError> {
        let start = self.start(Kind::Action, paging)?;
        let mut found = Found {
            results: Vec::new(),
            next_token: String::new(),
        };
        let mut screened = input.request.clone();
        if screened.action.is_empty() {
            // The screen's bounds need an action; each candidate replaces it.
            screened.action = "pdp:Search".into();
        }
        let subject = CheckInput {
            request: screened,
            ..input
        };
        let Ok(request) = self.decider.screen(self.snapshot, subject, self.call) else {
            return Ok(found);
        };
        let mut names = candidate_actions(self.snapshot);
        if let Some(c) = &start.cursor {
            names.retain(|n| n.as_str() > c.as_str());
        }
        let mut rest = names.into_iter().peekable();
        let mut examined = 0usize;
        let mut asked = request;
        // The subject was screened once; the guard that depends on the action (sensitive
        // actions are refused while the signals are stale) applies to each.
        let signals = &self.decider.state().signals;
        let stale = signals.stale();
        while let Some(name) = rest.next() {
            examined += 1;
            asked.action = name.as_str().into();
            let refused = stale && signals.is_sensitive(&name);
            if !refused && self.snapshot.set.decide(&asked).allowed {
                found.results.push(name.clone());
            }
            let full = found.results.len() >= start.limit || examined >= MAX_EXAMINED;
            if full && rest.peek().is_some() {
                found.next_token = self.token(Kind::Action, paging, &name);
                break;
            }
        }
        self.searched("action", examined, found.results.len());
        Ok(found)
    }

    /// Records a page of `search`: the metrics, and a debug line.
    fn searched(&self, search: &'static str, examined: usize, found: usize) {
        crate::metrics::metrics().searched(search, examined);
        tracing::debug!(
            request_id = %self.call.request_id,
            api = self.call.api,
            search,
            examined,
            found,
            revision = %self.snapshot.set.revision(),
            "searched"
        );
    }

    /// Whether `input` is allowed, identity and signals applied as for a check.
    fn allowed(&self, input: CheckInput<'_>) -> bool {
        match self.decider.screen(self.snapshot, input, self.call) {
            Ok(request) => self.snapshot.set.decide(&request).allowed,
            Err(_) => false,
        }
    }
}

/// The catalog's actions and those the policies name (a named action the catalog also has,
/// ignoring case, once, as the catalog writes it), sorted.
fn candidate_actions(snapshot: &Snapshot) -> Vec<String> {
    let catalog = snapshot.inventory.actions();
    let folded: std::collections::HashSet<String> =
        catalog.iter().map(|a| a.to_lowercase()).collect();
    let mut names: Vec<String> = catalog.to_vec();
    names.extend(
        snapshot
            .set
            .named_actions()
            .filter(|a| !folded.contains(*a))
            .map(str::to_owned),
    );
    names.sort();
    names.dedup();
    names
}

// ---------------------------------------------------------------------------------------
// Candidates: a superset of the positions a plan allows, as sorted disjoint ranges

/// Sorted, disjoint, non-empty ranges of positions; `None` stands for every position.
type Ranges = Option<Vec<Range<u32>>>;

/// The positions of `index` the plan can allow (a superset: the plan decides on each).
fn candidates(plan: &pdp_engine::Plan, index: &TypeIndex) -> Vec<Range<u32>> {
    match plan {
        pdp_engine::Plan::AlwaysDenied => Vec::new(),
        pdp_engine::Plan::AlwaysAllowed => vec![0..index.len()],
        pdp_engine::Plan::Conditional(e) => {
            narrow(e, index).unwrap_or_else(|| vec![0..index.len()])
        }
    }
}

fn narrow(expr: &pdp_engine::Expr, index: &TypeIndex) -> Ranges {
    use pdp_engine::{Expr, GlobPart};
    match expr {
        Expr::IdLike(glob) => match glob.parts().first() {
            Some(GlobPart::Text(prefix)) => Some(normal(vec![index.prefix_range(prefix)])),
            _ => None,
        },
        // Exactly `StringEquals` (no qualifier, no `IfExists`) on a resource tag, with
        // every value known: the resource must carry the tag with one of the values.
        Expr::Tag(t) if t.operator() == "StringEquals" => {
            let tag = t.tag()?;
            if t.values().iter().any(|v| v.contains("${")) {
                return None;
            }
            let mut positions: Vec<u32> = t
                .values()
                .iter()
                .flat_map(|v| index.tagged(tag, v).iter().copied())
                .collect();
            positions.sort_unstable();
            positions.dedup();
            Some(normal(positions.into_iter().map(|p| p..p + 1).collect()))
        }
        Expr::And(terms) => terms
            .iter()
            .filter_map(|t| narrow(t, index))
            .reduce(|a, b| intersect(&a, &b)),
        Expr::Or(terms) => {
            let mut all = Vec::new();
            for t in terms {
                all.extend(narrow(t, index)?);
            }
            Some(normal(all))
        }
        Expr::Tag(_) | Expr::IdTemplate(_) | Expr::Not(_) => None,
    }
}

/// Sorts and merges ranges (dropping empty ones).
fn normal(mut ranges: Vec<Range<u32>>) -> Vec<Range<u32>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u32>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// The positions in both.
fn intersect(a: &[Range<u32>], b: &[Range<u32>]) -> Vec<Range<u32>> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        let start = x.start.max(y.start);
        let end = x.end.min(y.end);
        if start < end {
            out.push(start..end);
        }
        if x.end < y.end {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// The ranges cut to `within`.
fn clip(ranges: Vec<Range<u32>>, within: Range<u32>) -> Vec<Range<u32>> {
    intersect(&ranges, &[within])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_intersect() {
        assert_eq!(normal(vec![5..7, 0..2, 1..3, 9..9]), vec![0..3, 5..7]);
        assert_eq!(
            intersect(&[0..3, 5..9], &[2..6, 8..20]),
            vec![2..3, 5..6, 8..9]
        );
        assert_eq!(clip(vec![0..10], 4..20), vec![4..10]);
        assert!(intersect(&[0..3], &[3..5]).is_empty());
    }
}
