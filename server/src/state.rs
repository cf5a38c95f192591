//! What every front end reads: the published [`Snapshot`] (policy set, routes and what is
//! derived from them, swapped as one) and the service's long-lived parts (verifier, cache,
//! signals, decision log, trust policy, limits). Holds no transport types and no logic of
//! its own beyond publishing a snapshot.

use std::sync::Arc;

use pdp_engine::PolicySet;

use crate::extauthz::routes::RouteTable;

/// The context key for the seconds since the session began.
pub const SESSION_AGE: &str = "pdp:SessionAge";

/// One revision of what decides: the policy set, the routes read from the same directory,
/// and the flags derived from the set. Published whole, so a call reads one revision
/// throughout, never the set of one reload and the routes of another.
#[derive(Debug)]
pub struct Snapshot {
    /// The policy set.
    pub set: PolicySet,
    /// How Envoy's HTTP requests map to decision requests (`routes.yaml`).
    pub routes: RouteTable,
    /// Whether the set reads `pdp:SessionAge` (a value that changes every second, so it is
    /// only computed, and only splits cache keys, when a policy reads it).
    pub reads_session_age: bool,
    /// The resources and actions searches go through (`resources.jsonl`, `actions.txt`),
    /// shared by the snapshots of reloads that did not change them.
    pub inventory: Arc<crate::search::inventory::Inventory>,
}

impl Snapshot {
    /// The snapshot of `set` and `routes`, with its derived flags.
    pub fn new(set: PolicySet, routes: RouteTable) -> Snapshot {
        Snapshot {
            reads_session_age: set.reads_context_key(SESSION_AGE),
            set,
            routes,
            inventory: Arc::new(crate::search::inventory::Inventory::empty()),
        }
    }

    /// The snapshot with `inventory` for searches.
    pub fn with_inventory(
        mut self,
        inventory: Arc<crate::search::inventory::Inventory>,
    ) -> Snapshot {
        self.inventory = inventory;
        self
    }
}

/// What every call reads.
#[derive(Debug)]
pub struct State {
    /// The revision serving; replaced whole on reload.
    pub snapshot: arc_swap::ArcSwap<Snapshot>,
    /// Bounds on request fields.
    pub limits: crate::decider::Limits,
    /// Most items in one batch (`CheckBatch`, AuthZEN evaluations).
    pub max_batch_items: usize,
    /// A fixed clock for `aws:CurrentTime` / `aws:EpochTime` (tests replaying cases that
    /// pin the time); the system clock when `None`.
    pub clock: Option<chrono::DateTime<chrono::Utc>>,
    /// Verifies `subject.token`; without one, a request carrying a token is denied.
    pub verifier: Option<crate::identity::Verifier>,
    /// Caches decisions; `None` decides every call.
    pub cache: Option<crate::cache::DecisionCache>,
    /// Which callers may assert subjects without a token, and which hold the admin grant.
    pub trust: crate::trust::TrustPolicy,
    /// The policy directory reloads read; `None` for sets built in memory.
    pub policies: Option<std::path::PathBuf>,
    /// Reload outcomes.
    pub reloads: Arc<crate::reload::ReloadStats>,
    /// Security signals: request facts, built-in guards, invalidations.
    pub signals: Arc<crate::signals::shared::Signals>,
    /// Verifies SSF push deliveries; `None`: no transmitter configured.
    pub ssf: Option<crate::signals::ssf::SetVerifier>,
    /// Roles and tags claims, for `token-claims-change` signals.
    pub claims: crate::identity::ClaimNames,
    /// The decision log, when on.
    pub audit: Option<crate::audit::DecisionLog>,
    /// Tracing, when on.
    pub telemetry: Option<crate::telemetry::Telemetry>,
    /// The AuthZEN API's public base URL, for its metadata; `None`: no metadata published.
    pub authzen_base_url: Option<String>,
    /// The process-wide bound on calls in flight, shared by both ports.
    pub in_flight: crate::shed::InFlight,
}

impl State {
    /// State serving `set` (and no routes) with the default limits and the system clock.
    pub fn new(set: PolicySet, max_batch_items: usize) -> Self {
        Self::serving(Snapshot::new(set, RouteTable::default()), max_batch_items)
    }

    /// State serving `snapshot` with the default limits and the system clock.
    pub fn serving(snapshot: Snapshot, max_batch_items: usize) -> Self {
        crate::metrics::metrics()
            .policy_serving(snapshot.set.revision(), snapshot.set.statement_count());
        let identity = crate::identity::IdentityConfig::default();
        State {
            snapshot: arc_swap::ArcSwap::from_pointee(snapshot),
            signals: Arc::new(crate::signals::shared::Signals::in_memory()),
            ssf: None,
            claims: crate::identity::ClaimNames {
                roles: identity.roles_claims,
                tags: identity.tags_claim,
            },
            audit: None,
            telemetry: None,
            limits: crate::decider::DEFAULT_LIMITS,
            max_batch_items,
            clock: None,
            verifier: None,
            cache: None,
            trust: crate::trust::TrustPolicy::default(),
            policies: None,
            reloads: Arc::default(),
            authzen_base_url: None,
            in_flight: crate::shed::InFlight::new(crate::serve::DEFAULT_SERVE_LIMITS.max_in_flight),
        }
    }

    /// The revision serving now.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// Serves `snapshot` from now on.
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }
}
