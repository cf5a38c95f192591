//! Action ids and statement placement: the set's exact action names and services as
//! integers ([`ActionIds`]), and what building an attachment's index needs to know of each
//! statement ([`Placer`]).
//!
//! Index building only: decisions read the ids, never the placement.

use super::index::{prefilter, stmt_flags, Index};
use super::layout::{Cold, Stmt};
use super::ByteMap;
use crate::pattern::{Pattern, Simple};

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
    pub(super) fn service_of(&self, action: u32) -> Option<u32> {
        self.ids.by_id.get(action as usize).and_then(|(_, s)| *s)
    }

    /// Whether a statement's `Action`/`NotAction` matches an exact action id.
    pub(super) fn statement_matches(&self, statement: u32, action: u32) -> bool {
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
    pub(super) fn statement_matches_any(&self, statement: u32) -> bool {
        self.statements
            .get(statement as usize)
            .is_some_and(|s| !s.actions_negated && s.actions_wild.iter().any(Pattern::is_any))
    }

    /// Whether a statement's `Action` matches every action of a service (it has
    /// `service:*`).
    pub(super) fn statement_matches_service(&self, statement: u32, service: u32) -> bool {
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
    pub(super) facts: ActionFacts<'a>,
    placements: Vec<Placement>,
    /// Each statement's entry words but the id (see [`super::Entry`]).
    pub(super) entries: Vec<[u32; 3]>,
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
    pub(super) fn index_narrow_to(
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
