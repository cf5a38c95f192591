//! Evaluation: the decision rule over the statements that can apply to a request, found
//! through the attachments' action indexes. Allocation-free for requests whose matching
//! statements fit the inline buffers (the common case).

use smallvec::SmallVec;

use crate::keys::EvalCtx;
use crate::pattern::{fold, fold_into, glob, FOLD_BUF};
use crate::request::Request;
use crate::set::{
    stmt_flags, CAttachment, Index, PolicySet, Principals, Res, ResPat, Shared, Stmt, DENY,
    HAS_PRINCIPAL, KNOWN_ACTION, MAX_STATEMENTS, NOT_RESOURCE, OBLIGATIONS,
};
use crate::types::{Decision, Reason};

/// Statement ids that decide, each tagged with [`OBLIGED`] when the statement has
/// obligations.
type Ids = SmallVec<[u32; 8]>;

/// Tags an id in [`Ids`]: the statement has obligations, so the outcome reads them (and
/// reads nothing of the others).
const OBLIGED: u32 = 1 << 31;
const _: () = assert!(MAX_STATEMENTS < OBLIGED as usize);

/// A statement id tagged for [`Ids`] from its entry's flags.
fn tagged(id: u32, flags: u32) -> u32 {
    if flags & OBLIGATIONS != 0 {
        id | OBLIGED
    } else {
        id
    }
}

/// Statement ids gathered while evaluating.
#[derive(Default)]
struct Acc {
    denies: Ids,
    allows: Ids,
    guard_allows: Ids,
    memo: Memo,
}

/// Which statements an identity attachment already evaluated in this decision, and with
/// what result: a policy attached to several of the subject's roles (a shared baseline, a
/// guardrail-like policy) is evaluated once. Bounded and inline; past its capacity
/// statements are simply evaluated again.
#[derive(Default)]
struct Memo {
    ids: [u32; MEMO],
    applied: u32,
    len: usize,
}

const MEMO: usize = 16;

impl Memo {
    fn applies(
        &mut self,
        id: u32,
        stmt: &Stmt,
        shared: &Shared,
        ctx: &EvalCtx<'_>,
        flags: u32,
    ) -> bool {
        // INVARIANT: `len` counts filled slots, at most `MEMO` (it grows only with a slot).
        debug_assert!(self.len <= MEMO);
        let seen = self.ids.get(..self.len).unwrap_or_default();
        if let Some(at) = seen.iter().position(|&i| i == id) {
            return self.applied & (1 << at) != 0;
        }
        let applies = stmt.applies(shared, ctx, flags);
        if let Some(slot) = self.ids.get_mut(self.len) {
            *slot = id;
            if applies {
                self.applied |= 1 << self.len;
            }
            self.len += 1;
        }
        applies
    }
}

/// Files a statement that applies under `denies` or `allows` by its effect (from its index
/// entry's flags); returns whether it allows.
fn record(denies: &mut Ids, allows: &mut Ids, id: u32, flags: u32) -> bool {
    let (list, allow) = if flags & DENY != 0 {
        (denies, false)
    } else {
        (allows, true)
    };
    push_unique(list, tagged(id, flags));
    allow
}

fn push_unique(v: &mut Ids, id: u32) {
    if !v.contains(&id) {
        v.push(id);
    }
}

/// The request action's ids in the set's [`crate::set::ActionIds`], looked up once, and the
/// resource for the index entries' prefilters.
#[derive(Clone, Copy)]
struct ActionKey<'r> {
    action: Option<u32>,
    service: Option<u32>,
    resource: &'r [u8],
}

impl Index {
    /// Calls `f` with every statement of `statements` that could match the action, its id
    /// and its entry's flags ([`crate::set::ENTRY_FLAGS`]: its effect, whether the index
    /// knows that it matches the action, …), so that the parts of the statement they answer
    /// for need not be read. Each statement comes once. When scanning (`SCAN`: the
    /// unindexed reference, compiled apart so that the indexed path carries none of its
    /// code), every statement comes, with the flags of a wildcard entry.
    fn each<'s, const SCAN: bool>(
        &self,
        statements: &'s [Stmt],
        key: ActionKey<'_>,
        mut f: impl FnMut(u32, &'s Stmt, u32),
    ) {
        if SCAN {
            for &id in self.all() {
                let s = statements.get(id as usize);
                // INVARIANT: an index holds only its set's statements (`Placer::index`).
                debug_assert!(s.is_some(), "statement {id} of {}", statements.len());
                if let Some(s) = s {
                    f(id, s, stmt_flags(s));
                }
            }
            return;
        }
        for e in self.lookup(key.action, key.service).iter() {
            if e.admits(key.resource) {
                let id = e.statement();
                let s = statements.get(id as usize);
                // INVARIANT: an index holds only its set's statements (`Placer::index`).
                debug_assert!(s.is_some(), "statement {id} of {}", statements.len());
                if let Some(s) = s {
                    f(id, s, e.flags());
                }
            }
        }
    }
}

impl Stmt {
    /// Whether the statement applies, given its index entry's flags (whether its actions
    /// are known to match, whether its resources are negated, whether it has a principal).
    ///
    /// A part the compiler always makes but the layout lacks (a resource pattern, the
    /// principal the flags announce, a condition) cannot be checked: it counts as matching
    /// for a Deny and as not matching for an Allow ([`missing_part`]), so a broken layout
    /// fails closed: the Deny applies, the Allow does not.
    fn applies(&self, shared: &Shared, ctx: &EvalCtx<'_>, flags: u32) -> bool {
        // INVARIANT: entry flags are made from the statement (`Placer::new`).
        debug_assert!(
            layouts_broken_on_purpose() || flags & !KNOWN_ACTION == stmt_flags(self),
            "entry flags {flags:#x} for a statement with {:#x}",
            stmt_flags(self)
        );
        let req = ctx.req;
        if !self.action_matches(ctx, flags) {
            return false;
        }
        let resource = &req.resource.id;
        let pattern_matches = |p: &ResPat| match p {
            ResPat::Static(p) => p.matches(resource),
            ResPat::Dynamic(t) => t.resolve(ctx).is_some_and(|toks| glob(&toks, resource)),
        };
        let resource_hit = match &self.resource {
            Res::Inline(p) => p.matches(resource.as_bytes(), &shared.heads),
            Res::One(p) => Some(pattern_matches(p)),
            // A statement has a pattern at least (the compiler rejects an empty list).
            Res::Many if self.resources.is_empty() => None,
            Res::Many => Some(self.resources.iter().any(pattern_matches)),
        };
        let resource_applies = match resource_hit {
            Some(hit) => hit != (flags & NOT_RESOURCE != 0),
            None => missing_part(flags),
        };
        if !resource_applies {
            return false;
        }
        if flags & HAS_PRINCIPAL != 0 {
            let principal_applies = match &self.principal {
                Some(p) => p.matches(req),
                None => missing_part(flags),
            };
            if !principal_applies {
                return false;
            }
        }
        let ids = self.conditions.ids(&shared.overflow);
        if ids.len() != self.conditions.len() {
            return missing_part(flags);
        }
        ids.iter()
            .all(|&i| match shared.conditions.get(i as usize) {
                Some(c) => c.holds(ctx),
                None => missing_part(flags),
            })
    }
}

/// Whether layouts may be broken: the unit tests below break them on purpose, to show what
/// a release build then decides; everywhere else a broken layout fails a debug assertion.
fn layouts_broken_on_purpose() -> bool {
    cfg!(test)
}

/// Whether a statement part that the layout lacks counts as matching: for a Deny it does
/// (the Deny applies), for an Allow it does not.
#[cold]
#[inline(never)]
fn missing_part(flags: u32) -> bool {
    // INVARIANT: the compiler makes every part a statement's layout and flags name
    // (`compile_statement`, `Res::new`, `CondIds::new`, `Interner::head`). Unit tests
    // break layouts on purpose, to show what a release build then decides.
    debug_assert!(layouts_broken_on_purpose(), "a statement part is missing");
    flags & DENY != 0
}

impl Stmt {
    /// Whether the statement's `Action`/`NotAction` matches the request's action (known to,
    /// when its index entry's flags say so).
    #[inline]
    pub(crate) fn action_matches(&self, ctx: &EvalCtx<'_>, flags: u32) -> bool {
        if flags & KNOWN_ACTION != 0 {
            return true;
        }
        // Wildcards first: a candidate reached through its service has one that can
        // match, and they are on the line read next.
        let action_hit = self
            .actions_wild
            .iter()
            .any(|p| p.matches_bytes(ctx.action))
            || ctx
                .action_id
                .is_some_and(|id| self.actions_exact.contains(&id));
        action_hit != self.actions_negated
    }
}

/// The action folded for matching, and its id among the set's exact action names.
pub(crate) fn action_key(
    set: &PolicySet,
    action: &str,
) -> (compact_str::CompactString, Option<u32>) {
    let folded = fold(action);
    let id = set
        .action_ids
        .actions
        .get(folded.as_bytes())
        .map(|&(id, _)| id);
    (folded, id)
}

impl Principals {
    pub(crate) fn matches(&self, req: &Request) -> bool {
        let hit = self.anyone
            || self.users.iter().any(|p| p.matches(&req.subject.id))
            || self
                .roles
                .iter()
                .any(|p| req.subject.roles.iter().any(|r| p.matches(r)));
        hit != self.negated
    }
}

impl PolicySet {
    /// Decides a request. Never fails: deny unless an allow applies.
    ///
    /// ```
    /// use pdp_engine::{PolicySet, Request, Subject, Resource, Reason};
    ///
    /// let set = PolicySet::builder()
    ///     .policy_json("read", r#"{"Version": "2012-10-17", "Statement": {
    ///         "Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::docs/*"}}"#)
    ///     .bindings_yaml("bindings.yaml", "roles: { Reader: { policies: [read] } }")
    ///     .build()?;
    /// let request = Request {
    ///     subject: Subject { id: "alice".into(), roles: vec!["Reader".into()].into(), ..Default::default() },
    ///     action: "s3:GetObject".into(),
    ///     resource: Resource { id: "arn:aws:s3:::docs/a.txt".into(), ..Default::default() },
    ///     ..Default::default()
    /// };
    /// let decision = set.decide(&request);
    /// assert!(decision.allowed);
    /// assert_eq!(decision.reason, Reason::Allowed);
    /// assert_eq!(decision.determining[0].policy, "read");
    /// # Ok::<(), pdp_engine::CompileErrors>(())
    /// ```
    pub fn decide(&self, request: &Request) -> Decision<'_> {
        self.decide_known::<false>(request)
    }

    /// The decision for the request with what the directory knows of its subject.
    fn decide_known<const SCAN: bool>(&self, request: &Request) -> Decision<'_> {
        match self.with_directory(request) {
            Some(merged) => self.decide_with::<SCAN>(&merged),
            None => self.decide_with::<SCAN>(request),
        }
    }

    /// The request with what the directory knows of its subject (roles added, tags set),
    /// when it knows anything; `None` otherwise (no copy).
    pub(crate) fn with_directory(&self, request: &Request) -> Option<Request> {
        if self.directory.is_empty() {
            return None;
        }
        let entry = self.directory.get(request.subject.id.as_str())?;
        let mut merged = request.clone();
        for role in &entry.roles {
            if !merged.subject.roles.contains(role) {
                merged.subject.roles.push(role.clone());
            }
        }
        for (k, v) in &entry.tags {
            merged.subject.tags.insert(k.clone(), v.clone());
        }
        Some(merged)
    }

    /// The same decision as [`PolicySet::decide`], computed by scanning every attached
    /// statement instead of using the action index. A reference for tests and benchmarks.
    #[doc(hidden)]
    pub fn decide_scan(&self, request: &Request) -> Decision<'_> {
        self.decide_known::<true>(request)
    }

    fn decide_with<const SCAN: bool>(&self, request: &Request) -> Decision<'_> {
        // The subject's attachments first: the processor can fetch them from memory while
        // it folds and looks up the action.
        let mut attachments: SmallVec<[&CAttachment; 4]> = SmallVec::new();
        if !self.roles.is_empty() {
            for role in &request.subject.roles {
                if let Some(att) = self.roles.get(role.as_str()) {
                    attachments.push(att);
                }
            }
        }
        if !self.subjects.is_empty() {
            if let Some(att) = self.subjects.get(request.subject.id.as_str()) {
                attachments.push(att);
            }
        }
        let mut buf = [0u8; FOLD_BUF];
        let folded;
        let action = match fold_into(&request.action, &mut buf) {
            Some(action) => action,
            None => {
                folded = fold(&request.action);
                folded.as_bytes()
            }
        };
        let known = &self.action_ids;
        let (action_id, service) = match known.actions.get(action) {
            Some(&(id, service)) => (Some(id), service),
            // The service is the text before the first `:`; an action without one has
            // none (index entries under a service may be marked as matching every action
            // that starts with `service:`).
            None => (
                None,
                action
                    .iter()
                    .position(|b| *b == b':')
                    .and_then(|i| action.get(..i))
                    .and_then(|svc| known.services.get(svc))
                    .copied(),
            ),
        };
        let ctx = EvalCtx::new(request, action, action_id);
        let key = ActionKey {
            action: action_id,
            resource: request.resource.id.as_bytes(),
            service,
        };
        let mut acc = Acc::default();

        // Most sets have no guardrails: skip the lookup in their empty index.
        if !self.guardrails.is_empty() {
            self.guardrails
                .each::<SCAN>(&self.statements, key, |id, s, flags| {
                    if s.applies(&self.shared, &ctx, flags) {
                        record(&mut acc.denies, &mut acc.guard_allows, id, flags);
                    }
                });
        }

        let mut allowed = false;
        // A statement can come twice only through two attachments (or an attachment and
        // its boundary): with one, nothing is remembered.
        let remember = attachments.len() > 1;
        for att in attachments {
            allowed |= self.attachment::<SCAN>(att, &ctx, key, &mut acc, remember);
        }
        if !self.resources.entries.is_empty() {
            allowed |= self.resource_policies::<SCAN>(&ctx, key, &mut acc);
        }

        let (allowed, reason, deciding) = if !acc.denies.is_empty() {
            (false, Reason::ExplicitDeny, acc.denies)
        } else if allowed && (!self.guardrails_have_allow || !acc.guard_allows.is_empty()) {
            let mut deciding = acc.allows;
            for id in acc.guard_allows {
                push_unique(&mut deciding, id);
            }
            (true, Reason::Allowed, deciding)
        } else {
            (false, Reason::ImplicitDeny, Ids::new())
        };
        let mut decision = self.decision(allowed, reason, &deciding);
        decision.time_dependent = ctx.clock_read.get();
        decision
    }

    /// Evaluates the resource policies attached to the request's resource; returns
    /// whether one allows. Out of line: most sets have none, and the decision's code
    /// stays smaller without it.
    #[inline(never)]
    fn resource_policies<const SCAN: bool>(
        &self,
        ctx: &EvalCtx<'_>,
        key: ActionKey,
        acc: &mut Acc,
    ) -> bool {
        let mut allowed = false;
        let resource = &ctx.req.resource.id;
        for (pattern, index) in self.resources.candidates(resource) {
            if !pattern.matches(resource) {
                continue;
            }
            index.each::<SCAN>(&self.statements, key, |id, s, flags| {
                if !s.applies(&self.shared, ctx, flags) {
                    return;
                }
                if flags & DENY != 0 {
                    record(&mut acc.denies, &mut acc.allows, id, flags);
                } else if self.resource_allow_counts::<SCAN>(s, ctx, key, acc) {
                    push_unique(&mut acc.allows, tagged(id, flags));
                    allowed = true;
                }
            });
        }
        allowed
    }

    /// Whether a resource-policy Allow that applies counts. Granted to the subject itself
    /// (`user:`, an `AWS` value, anyone, a `NotPrincipal` that leaves the subject out), it
    /// does, as in AWS for a grant to the user's ARN. Granted only through roles, it counts
    /// through a matching role without a permissions boundary, or through one whose boundary
    /// allows the request too (whose Allows then count as well): a grant to a role's ARN is
    /// limited by the role's boundary. Boundaries of different roles never mix.
    fn resource_allow_counts<const SCAN: bool>(
        &self,
        s: &Stmt,
        ctx: &EvalCtx<'_>,
        key: ActionKey,
        acc: &mut Acc,
    ) -> bool {
        let Some(p) = &s.principal else {
            // INVARIANT: a resource policy's statements have a principal (`finish` rejects
            // one without); a grant to no one counts for no one.
            debug_assert!(
                layouts_broken_on_purpose(),
                "a resource-policy statement without a principal"
            );
            return false;
        };
        let subject = &ctx.req.subject;
        if p.negated || p.anyone || p.users.iter().any(|u| u.matches(&subject.id)) {
            return true;
        }
        let granted =
            |role: &&crate::request::Text| p.roles.iter().any(|r| r.matches(role.as_str()));
        let boundary_of = |role: &crate::request::Text| {
            self.roles
                .get(role.as_str())
                .and_then(|att| att.boundary.as_deref())
        };
        // A matching role without a boundary: nothing limits the grant.
        if subject
            .roles
            .iter()
            .filter(granted)
            .any(|role| boundary_of(role).is_none())
        {
            return true;
        }
        let mut counts = false;
        for boundary in subject.roles.iter().filter(granted).filter_map(boundary_of) {
            let mut boundary_allows = Ids::new();
            boundary.each::<SCAN>(&self.statements, key, |id, b, flags| {
                if acc.memo.applies(id, b, &self.shared, ctx, flags) {
                    record(&mut acc.denies, &mut boundary_allows, id, flags);
                }
            });
            if !boundary_allows.is_empty() {
                counts = true;
                for id in boundary_allows {
                    push_unique(&mut acc.allows, id);
                }
            }
        }
        counts
    }

    /// Evaluates one identity attachment; returns whether it allows (with its boundary).
    fn attachment<const SCAN: bool>(
        &self,
        att: &CAttachment,
        ctx: &EvalCtx<'_>,
        key: ActionKey,
        acc: &mut Acc,
        remember: bool,
    ) -> bool {
        let Some(boundary) = &att.boundary else {
            // No boundary: whether an identity statement allows decides; its allows go
            // straight to the decision's.
            let mut allows = false;
            att.identity
                .each::<SCAN>(&self.statements, key, |id, s, flags| {
                    let applies = if remember {
                        acc.memo.applies(id, s, &self.shared, ctx, flags)
                    } else {
                        s.applies(&self.shared, ctx, flags)
                    };
                    if applies {
                        allows |= record(&mut acc.denies, &mut acc.allows, id, flags);
                    }
                });
            return allows;
        };
        let mut allows = Ids::new();
        att.identity
            .each::<SCAN>(&self.statements, key, |id, s, flags| {
                if acc.memo.applies(id, s, &self.shared, ctx, flags) {
                    record(&mut acc.denies, &mut allows, id, flags);
                }
            });
        let mut boundary_allows = Ids::new();
        boundary.each::<SCAN>(&self.statements, key, |id, s, flags| {
            if acc.memo.applies(id, s, &self.shared, ctx, flags) {
                record(&mut acc.denies, &mut boundary_allows, id, flags);
            }
        });
        if allows.is_empty() || boundary_allows.is_empty() {
            return false;
        }
        allows.extend(boundary_allows);
        for id in allows {
            push_unique(&mut acc.allows, id);
        }
        true
    }

    fn decision(&self, allowed: bool, reason: Reason, ids: &[u32]) -> Decision<'_> {
        let mut determining = SmallVec::new();
        let mut obligations: SmallVec<[_; 2]> = SmallVec::new();
        let mut seen: SmallVec<[u32; 4]> = SmallVec::new();
        for &tagged in ids {
            // Naming the statement reads nothing of it: its `Cold` is only addressed.
            let c = self.cold.get((tagged & !OBLIGED) as usize);
            // INVARIANT: every statement has its `Cold`, at the same index (`finish`).
            debug_assert!(
                c.is_some(),
                "statement {} has no cold part",
                tagged & !OBLIGED
            );
            let Some(c) = c else {
                continue;
            };
            determining.push(&c.info);
            if tagged & OBLIGED == 0 {
                continue;
            }
            for o in c.obligations.clone() {
                let key = self.obligation_keys.get(o as usize).copied();
                // INVARIANT: one key per obligation (`obligation_keys`), and a statement's
                // obligations are a range of the set's list.
                debug_assert!(key.is_some(), "obligation {o} has no key");
                let key = key.unwrap_or(o);
                if !seen.contains(&key) {
                    let ob = self.obligations.get(o as usize);
                    debug_assert!(ob.is_some(), "obligation {o} of {}", self.obligations.len());
                    if let Some(ob) = ob {
                        seen.push(key);
                        obligations.push(ob);
                    }
                }
            }
        }
        Decision {
            allowed,
            reason,
            determining,
            obligations,
            revision: &self.revision,
            time_dependent: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{PolicySet, Request, Resource, Subject};

    fn set() -> Result<PolicySet, crate::CompileErrors> {
        PolicySet::builder()
            .policy_json(
                "p",
                r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"s3:GetObject","Resource":"*",
                 "Condition":{"DateLessThan":{"aws:CurrentTime":"2100-01-01T00:00:00Z"}}},
                {"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#,
            )
            .bindings_yaml("b", "roles: { R: { policies: [p] } }")
            .build()
    }

    fn request(action: &str) -> Request {
        Request {
            subject: Subject {
                id: "u".into(),
                roles: vec!["R".into()].into(),
                ..Default::default()
            },
            action: action.into(),
            resource: Resource {
                id: "x".into(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_service_wildcard_matches_only_actions_of_that_service() -> Result<(), crate::CompileErrors>
    {
        let set = PolicySet::builder()
            .policy_json(
                "p",
                r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"s3:*","Resource":"*"},
                {"Effect":"Allow","Action":"ec2:DescribeInstances","Resource":"*"}]}"#,
            )
            .bindings_yaml("b", "roles: { R: { policies: [p] } }")
            .build()?;
        for (action, allowed) in [
            ("s3:GetObject", true),
            ("S3:anything", true),
            ("s3:", true),
            ("s3", false),
            ("s3x:GetObject", false),
            ("ec2:DescribeInstances", true),
            ("ec2:RunInstances", false),
        ] {
            assert_eq!(set.decide(&request(action)).allowed, allowed, "{action}");
            assert_eq!(
                set.decide_scan(&request(action)).allowed,
                allowed,
                "{action}"
            );
        }
        Ok(())
    }

    #[test]
    fn decisions_that_read_the_clock_say_so() -> Result<(), crate::CompileErrors> {
        let set = set()?;
        let timed = set.decide(&request("s3:GetObject"));
        assert!(timed.allowed && timed.time_dependent);
        let untimed = set.decide(&request("s3:ListBucket"));
        assert!(untimed.allowed && !untimed.time_dependent);
        Ok(())
    }

    /// Role `R`'s set of one policy: an Allow of everything and `deny`, a Deny (Sid `D`).
    fn allow_all_but(deny: &str) -> Result<PolicySet, crate::CompileErrors> {
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":"*","Resource":"*"}},
            {{"Sid":"D","Effect":"Deny",{deny}}}]}}"#
        );
        PolicySet::builder()
            .policy_json("p", &policy)
            .bindings_yaml("b", "roles: { R: { policies: [p] } }")
            .build()
    }

    /// Whether `D` denies the request, by the index and by the scan alike.
    fn denied_by_d(set: &PolicySet, request: &Request) -> bool {
        let (indexed, scanned) = (set.decide(request), set.decide_scan(request));
        assert_eq!(indexed.allowed, scanned.allowed);
        !indexed.allowed
            && indexed.reason == crate::Reason::ExplicitDeny
            && indexed
                .determining
                .iter()
                .any(|s| s.sid.as_deref() == Some("D"))
    }

    fn for_resource(resource: &str) -> Request {
        let mut r = request("s3:GetObject");
        r.resource.id = resource.into();
        r
    }

    #[test]
    fn a_deny_whose_condition_is_missing_applies() -> Result<(), crate::CompileErrors> {
        let mut set = allow_all_but(
            r#""Action":"s3:*","Resource":"*",
               "Condition":{"StringEquals":{"aws:PrincipalTag/team":"blocked"}}"#,
        )?;
        let r = request("s3:GetObject");
        assert!(!denied_by_d(&set, &r) && set.decide(&r).allowed);
        // The condition list lost (a layout no compiler makes): the Deny applies.
        set.shared.conditions.clear();
        assert!(denied_by_d(&set, &r));
        // So it does when the statement's ids run past the overflow list.
        let mut set = allow_all_but(
            r#""Action":"s3:*","Resource":"*","Condition":{
               "StringEquals":{"aws:PrincipalTag/a":"x","aws:PrincipalTag/b":"x",
                               "aws:PrincipalTag/c":"x","aws:PrincipalTag/d":"x"}}"#,
        )?;
        assert!(!denied_by_d(&set, &r));
        set.shared.overflow.clear();
        assert!(denied_by_d(&set, &r));
        Ok(())
    }

    #[test]
    fn an_allow_whose_condition_is_missing_does_not_apply() -> Result<(), crate::CompileErrors> {
        let mut set = PolicySet::builder()
            .policy_json(
                "p",
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:*",
                    "Resource":"*","Condition":{"StringLike":{"aws:username":"*"}}}}"#,
            )
            .bindings_yaml("b", "roles: { R: { policies: [p] } }")
            .build()?;
        let r = request("s3:GetObject");
        assert!(set.decide(&r).allowed);
        set.shared.conditions.clear();
        assert!(!set.decide(&r).allowed && !set.decide_scan(&r).allowed);
        Ok(())
    }

    #[test]
    fn a_deny_whose_resource_pattern_is_missing_applies() -> Result<(), crate::CompileErrors> {
        // Inline, with its head (`arn:aws:s3:::`) among the set's shared heads.
        let mut set = allow_all_but(r#""Action":"s3:*","Resource":"arn:aws:s3:::secret/*""#)?;
        let (secret, other) = (
            for_resource("arn:aws:s3:::secret/a"),
            for_resource("arn:aws:s3:::other/a"),
        );
        assert!(denied_by_d(&set, &secret) && !denied_by_d(&set, &other));
        // The head lost: the Deny applies to what reaches it (the index entry's prefilter,
        // made from the pattern's text, still keeps `other` from it).
        set.shared.heads.clear();
        assert!(denied_by_d(&set, &secret));
        // Several patterns (kept apart from the statement's first line), lost.
        let mut set = allow_all_but(
            r#""Action":"s3:*","NotResource":["arn:aws:s3:::a/*","arn:aws:s3:::b/*","arn:aws:s3:::c/*"]"#,
        )?;
        let inside = for_resource("arn:aws:s3:::a/x");
        assert!(!denied_by_d(&set, &inside) && denied_by_d(&set, &other));
        if let Some(s) = set.statements.get_mut(1) {
            assert!(matches!(s.resource, crate::set::Res::Many));
            s.resources = Box::new([]);
        }
        assert!(denied_by_d(&set, &inside) && denied_by_d(&set, &other));
        Ok(())
    }

    /// A set with a resource policy on `arn:aws:s3:::shared/*`: `statement` (with a
    /// `Principal`) as its only statement.
    fn resource_policy(statement: &str) -> Result<PolicySet, crate::CompileErrors> {
        PolicySet::builder()
            .policy_json("p", r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#)
            .policy_json(
                "rp",
                &format!(r#"{{"Version":"2012-10-17","Statement":{{"Sid":"D",{statement}}}}}"#),
            )
            .bindings_yaml(
                "b",
                "roles: { R: { policies: [p] } }\nresources: [{ match: 'arn:aws:s3:::shared/*', policies: [rp] }]",
            )
            .build()
    }

    #[test]
    fn a_deny_whose_principal_is_missing_applies() -> Result<(), crate::CompileErrors> {
        let mut set = resource_policy(
            r#""Effect":"Deny","Principal":{"PDP":"user:mallory"},"Action":"s3:*","Resource":"*""#,
        )?;
        let r = for_resource("arn:aws:s3:::shared/a");
        assert!(!denied_by_d(&set, &r) && set.decide(&r).allowed);
        if let Some(s) = set.statements.get_mut(1) {
            s.principal = None;
        }
        assert!(denied_by_d(&set, &r));
        Ok(())
    }

    #[test]
    fn an_allow_whose_principal_is_missing_does_not_apply() -> Result<(), crate::CompileErrors> {
        let mut set = resource_policy(
            r#""Effect":"Allow","Principal":{"PDP":"user:mallory"},"Action":"s3:*","Resource":"*""#,
        )?;
        let mut r = for_resource("arn:aws:s3:::shared/a");
        r.subject.id = "alice".into();
        r.subject.roles = Vec::<crate::Text>::new().into();
        assert!(!set.decide(&r).allowed);
        if let Some(s) = set.statements.get_mut(1) {
            s.principal = None;
        }
        // The Allow, its grantee lost, grants no one.
        assert!(!set.decide(&r).allowed && !set.decide_scan(&r).allowed);
        Ok(())
    }
}
