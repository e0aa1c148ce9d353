//! Choose without a store round trip: a per-experiment posterior snapshot,
//! at most `bandit.choose_max_staleness_ms` old.
//!
//! **The bound.** A snapshot's age is measured from the moment its store
//! read *started*, so it reflects every write acknowledged before then. A
//! Choose never uses a snapshot older than the bound while the store answers:
//! a reward acknowledged by any replica is seen by every Choose that starts
//! more than `bound` later. (When the refresh fails because the store is
//! down, the last snapshot is served whatever its age: see `get`.)
//! Thompson sampling tolerates slightly stale posteriors (docs/benchmarks.md
//! has the regret measured against always-fresh reads). `0` turns the cache
//! off: every Choose reads the store.
//!
//! **Refresh without a stampede** (single-flight per experiment):
//! - younger than a refresh-ahead point (half the bound; an eighth once a
//!   reward went through this replica): served as is;
//! - past that point but within the bound: served as is, and one background
//!   refresh is started unless one is already running;
//! - past the bound (or none yet): the caller waits for the in-flight
//!   refresh, or runs the one refresh itself; everyone queued behind it
//!   then finds the fresh snapshot.
//!
//! **Definition changes on this replica** (AddArm, RetireArm, Delete,
//! Create) invalidate the snapshot before their RPC returns, and a refresh
//! that started before the change does not install its result (a generation
//! counter): a retired arm is never chosen after RetireArm returned on this
//! replica. Other replicas see the change within the bound.
//!
//! Posteriors are precomputed at refresh (with decay evaluated at read
//! time; half-lives are hours, the bound milliseconds), so Choose only draws.
//!
//! **Propensities** (the probability each arm had of being chosen) are a
//! table per snapshot and eligible set, computed once, never per call: the
//! default set's table (and those of the explicit subsets the
//! previous snapshot had served) at refresh, on the blocking pool, before
//! the snapshot is installed; any other subset at its first Choose (also on
//! the blocking pool), then kept in the snapshot, at most
//! [`MAX_SUBSET_PROPENSITIES`] subsets. Cost: for plain Thompson (the
//! default policy), quadrature (`bandit::leader`), ~tens of µs for 10
//! arms; for top-two, or posteriors the quadrature cannot vouch for,
//! `propensity_draws` Monte Carlo joint draws (10,000 for up to 200 arms,
//! fewer beyond, ≤ 2 M single draws: see `bandit::allocation`), ~2–4 ms
//! for 10 arms. With the cache off (bound 0) every Choose builds a
//! snapshot and so computes its table: affordable at thousands of Choose/s
//! for plain Thompson, not for top-two.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::history::{ArmCounts, DecisionTally};
use crate::bandit::allocation::{self, Allocation};
use crate::bandit::{ExperimentDef, OnWinner, Posterior};
use crate::store::{ExperimentState, Store, StoreError};
use crate::telemetry::{ExperimentMetrics, Telemetry};

/// An experiment's definition and precomputed posteriors, as read at `read_at`.
pub struct Snapshot {
    pub def: ExperimentDef,
    /// One per arm, in `def.arms` order.
    pub posteriors: Vec<Posterior>,
    /// Indices of the active arms: the candidates when no eligible list is given.
    pub active: Vec<usize>,
    /// The design's allocation rule (policy, holdback, floors, goal).
    pub allocation: Allocation,
    pub metrics: ExperimentMetrics,
    /// With `on_winner = EXPLOIT` and a WINNER verdict at refresh: the
    /// winner, which Choose then serves. Computed here, once per refresh
    /// (bounded draws, see `app::verdict::SNAPSHOT_DRAW_BUDGET`), never per
    /// Choose: a verdict reached after the refresh shows at the next one,
    /// within the staleness bound (or at once with the cache off).
    pub exploit: Option<usize>,
    /// This replica's decision counters of the experiment (for history).
    pub decisions: Arc<ArmCounts>,
    read_at: Instant,
    /// Propensities over `active`, once per snapshot.
    default_propensities: OnceLock<Arc<[f64]>>,
    /// Propensities over explicit eligible subsets (sorted indices), at
    /// most [`MAX_SUBSET_PROPENSITIES`].
    subset_propensities: Mutex<SubsetTables>,
    /// Test-only (`bandit.test_rng_seed`): propensity tables drawn from a
    /// generator seeded by this, the experiment and the eligible set, so a
    /// test's reported propensities are reproducible.
    rng_seed: Option<u64>,
}

/// Sorted arm indices of an eligible subset → its propensity table.
type SubsetTables = HashMap<Box<[usize]>, Arc<[f64]>>;

/// Eligible subsets whose propensity tables a snapshot keeps. A flag system
/// narrows eligibility by a few segments (platform, country tier), not per
/// request; 32 tables of ≤ 2,000 f64 stay ≤ 512 KiB per experiment. A 33rd
/// subset still gets its table, computed for the call and not kept (so a
/// caller rotating through more subsets pays the computation per Choose).
pub const MAX_SUBSET_PROPENSITIES: usize = 32;

/// FNV-1a over an experiment name and an eligible set: a seeded table's
/// generator differs per experiment and set, and is the same on every run.
fn table_key(name: &str, candidates: &[usize]) -> u64 {
    let bytes = name
        .bytes()
        .chain(candidates.iter().flat_map(|i| (*i as u64).to_le_bytes()));
    bytes.fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A subset's key: its indices, sorted (the table does not depend on order).
fn subset_key(candidates: &[usize]) -> Box<[usize]> {
    let mut k: Vec<usize> = candidates.to_vec();
    k.sort_unstable();
    k.dedup();
    k.into_boxed_slice()
}

impl Snapshot {
    pub fn build(
        state: ExperimentState,
        now_ms: i64,
        read_at: Instant,
        telemetry: &Telemetry,
        tally: &DecisionTally,
    ) -> Snapshot {
        let exploit = (state.def.design.stopping.on_winner == OnWinner::Exploit)
            .then(|| {
                super::verdict::verdict_of(
                    &state,
                    now_ms,
                    super::verdict::SNAPSHOT_DRAW_BUDGET,
                    super::verdict::SNAPSHOT_MAX_DRAWS,
                )
                .0
                .winner
            })
            .flatten();
        let def = state.def;
        let posteriors: Vec<Posterior> = def
            .posteriors_at(&state.evidence, now_ms)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        let active = def.active_arms();
        let allocation = Allocation::new(&def.design, |a| def.arm_index(a));
        let metrics = telemetry.experiment(&def.name);
        let decisions = tally.experiment(&def.name);
        if telemetry.enabled() {
            let widths: Vec<f64> = posteriors
                .iter()
                .take(crate::telemetry::MAX_ARM_LABELS)
                .map(|p| {
                    let (lo, hi) = p.credible_interval(0.95);
                    hi - lo
                })
                .collect();
            telemetry.record_widths(&metrics, &def, &widths);
        }
        Snapshot {
            def,
            posteriors,
            active,
            allocation,
            metrics,
            exploit,
            decisions,
            read_at,
            default_propensities: OnceLock::new(),
            subset_propensities: Mutex::new(HashMap::new()),
            rng_seed: None,
        }
    }

    /// The propensity table of `candidates` (the default set `active`, or
    /// an explicit subset) if already computed: a lookup, for the Choose path.
    pub fn propensities_ready(&self, candidates: &[usize]) -> Option<Arc<[f64]>> {
        if candidates == self.active.as_slice() {
            return self.default_propensities.get().cloned();
        }
        let key = subset_key(candidates);
        if *key == *self.active {
            return self.default_propensities.get().cloned();
        }
        self.subset_propensities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }

    /// The propensity table of `candidates`, computing (and keeping) it if
    /// needed. CPU-bound (milliseconds): call it off the async threads.
    pub fn propensities(&self, candidates: &[usize]) -> Arc<[f64]> {
        if let Some(p) = self.propensities_ready(candidates) {
            return p;
        }
        let key = subset_key(candidates);
        if *key == *self.active {
            return self
                .default_propensities
                .get_or_init(|| self.compute_propensities(&self.active))
                .clone();
        }
        let table = self.compute_propensities(&key);
        let mut subsets = self
            .subset_propensities
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if subsets.len() < MAX_SUBSET_PROPENSITIES {
            subsets.insert(key, table.clone());
        }
        table
    }

    fn compute_propensities(&self, candidates: &[usize]) -> Arc<[f64]> {
        let mut rng = match self.rng_seed {
            Some(seed) => SmallRng::seed_from_u64(seed ^ table_key(&self.def.name, candidates)),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        self.allocation
            .propensities(
                &self.posteriors,
                candidates,
                allocation::propensity_draws(candidates.len()),
                &mut rng,
            )
            .into()
    }

    /// Compute the default table, and those of the subsets `previous` had
    /// served (still valid index sets of this definition): at refresh, so
    /// steady traffic never computes on the Choose path.
    ///
    /// When nothing a table depends on changed since `previous` (no reward
    /// applied, no decay, same definition), its tables are taken over
    /// instead of drawn again. A refresh runs every half bound (20 times a
    /// second per experiment in steady Choose traffic at the 100 ms
    /// default) and one 10-arm table is ~27 M instructions: redrawing
    /// identical inputs cost more CPU than the Choose calls themselves
    /// (docs/benchmarks.md, "where the instructions go"). The tables are
    /// the same estimate of the same probabilities, so Choose's answers do
    /// not change (with `bandit.test_rng_seed` they are bit-identical: the
    /// seed depends on the experiment and the eligible set only).
    pub fn warm(&self, previous: Option<&Snapshot>) {
        if let Some(prev) = previous
            && self.draws_like(prev)
        {
            if let Some(t) = prev.default_propensities.get() {
                let _ = self.default_propensities.set(t.clone());
            }
            let kept = prev
                .subset_propensities
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            *self
                .subset_propensities
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = kept;
        }
        self.propensities(&self.active);
        let Some(prev) = previous else { return };
        let keys: Vec<Box<[usize]>> = prev
            .subset_propensities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for key in keys {
            if key
                .iter()
                .all(|&i| self.def.arms.get(i).is_some_and(|a| !a.retired))
            {
                self.propensities(&key);
            }
        }
    }

    /// Whether a propensity table of `other` is one of this snapshot too:
    /// a table is a function of the posteriors, the allocation rule and
    /// the eligible set (its key, or `active`) alone, and of the test seed.
    /// Posteriors are compared bit for bit, so any reward or any decay
    /// since `other` (and any arm added or retired) means new tables.
    fn draws_like(&self, other: &Snapshot) -> bool {
        self.posteriors == other.posteriors
            && self.allocation == other.allocation
            && self.active == other.active
            && self.rng_seed == other.rng_seed
    }

    pub fn age(&self) -> Duration {
        self.read_at.elapsed()
    }
}

/// One experiment's cache entry.
struct Slot {
    current: RwLock<Option<Arc<Snapshot>>>,
    /// Held by the one refresh of this experiment in flight (single-flight);
    /// waiters queue on it. A tokio mutex: it is held across the store read.
    refresh: Arc<tokio::sync::Mutex<()>>,
    /// Bumped (under `current`'s write lock) by every invalidation; a refresh
    /// installs its result only if the generation is unchanged since it began.
    generation: AtomicU64,
    /// When the oldest reward written through this replica and not yet in
    /// the snapshot was acknowledged: for the reward-to-visible metric and
    /// the earlier refresh-ahead point.
    dirty_since: Mutex<Option<Instant>>,
}

impl Slot {
    fn current(&self) -> Option<Arc<Snapshot>> {
        // Poisoning only means a panic elsewhere; the Option stays valid.
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn dirty(&self) -> bool {
        self.dirty_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }
}

struct Inner {
    store: Arc<dyn Store>,
    telemetry: Arc<Telemetry>,
    /// Decisions per arm since the last history point, handed to every
    /// snapshot built here.
    tally: Arc<DecisionTally>,
    max_staleness: Duration,
    /// Test-only seed for the snapshots' propensity tables (see [`Snapshot`]).
    rng_seed: Option<u64>,
    slots: RwLock<HashMap<String, Arc<Slot>>>,
}

/// The cache. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SnapshotCache {
    inner: Arc<Inner>,
}

impl SnapshotCache {
    pub fn new(
        store: Arc<dyn Store>,
        telemetry: Arc<Telemetry>,
        max_staleness: Duration,
    ) -> SnapshotCache {
        SnapshotCache {
            inner: Arc::new(Inner {
                store,
                telemetry,
                tally: Arc::new(DecisionTally::default()),
                max_staleness,
                rng_seed: None,
                slots: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Test-only (`bandit.test_rng_seed`): reproducible propensity tables.
    /// Call it before the cache is shared (at start-up).
    pub fn with_rng_seed(mut self, seed: Option<u64>) -> SnapshotCache {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.rng_seed = seed,
            None => tracing::warn!("bandit.test_rng_seed set after the cache was shared: ignored"),
        }
        self
    }

    pub fn enabled(&self) -> bool {
        !self.inner.max_staleness.is_zero()
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.inner.telemetry
    }

    /// This replica's decision counters (for the history recorder).
    pub fn tally(&self) -> &Arc<DecisionTally> {
        &self.inner.tally
    }

    /// A snapshot of `name` no older than the bound; `None` if the
    /// experiment does not exist. With the cache off, a fresh read.
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let inner = &self.inner;
        if !self.enabled() {
            inner.telemetry.snapshot_uncached.increment(1);
            let read_at = Instant::now();
            return Ok(inner.store.experiment(name).await?.map(|s| {
                let mut snap =
                    Snapshot::build(s, super::now_ms(), read_at, &inner.telemetry, &inner.tally);
                snap.rng_seed = inner.rng_seed;
                Arc::new(snap)
            }));
        }
        let slot = self.slot(name);
        if let Some(s) = slot.current() {
            let age = s.age();
            if age <= inner.max_staleness {
                inner.telemetry.snapshot_hit.increment(1);
                if age >= self.refresh_ahead(&slot) {
                    self.spawn_refresh(name, &slot);
                }
                return Ok(Some(s));
            }
        }
        inner.telemetry.snapshot_miss.increment(1);
        let guard = slot.refresh.lock().await;
        // Whoever held the lock before us may have just refreshed.
        if let Some(s) = slot.current()
            && s.age() <= inner.max_staleness
        {
            return Ok(Some(s));
        }
        let r = Inner::refresh(inner, name, &slot).await;
        drop(guard);
        match r {
            Ok(None) => self.forget(name),
            // The store is down: keep deciding from the last snapshot rather
            // than fail the caller's request path. Thompson sampling on old
            // posteriors is still a sound decision; rewards meanwhile answer
            // UNAVAILABLE, so clients retry them once the store is back, and
            // the next Choose after recovery refreshes.
            Err(StoreError::Unavailable(ref e)) => {
                if let Some(s) = slot.current() {
                    inner.telemetry.snapshot_stale.increment(1);
                    tracing::debug!(experiment = name, error = %e, age_ms = s.age().as_millis() as u64, "store down: serving a stale snapshot");
                    return Ok(Some(s));
                }
            }
            _ => {}
        }
        r
    }

    /// The cached snapshot of `name` whatever its age, without a store
    /// read: for Reward, which needs only the definition (incarnation id,
    /// model, arms), and whose store script re-checks the incarnation and
    /// the arm atomically. `None` when nothing is cached (or the cache is off).
    pub fn cached(&self, name: &str) -> Option<Arc<Snapshot>> {
        if !self.enabled() {
            return None;
        }
        let slots = self.inner.slots.read().unwrap_or_else(|p| p.into_inner());
        slots.get(name).and_then(|s| s.current())
    }

    /// A definition change (or deletion) of `name` was written by this
    /// replica: drop the snapshot, and keep any refresh already in flight
    /// from installing what it read before the change.
    pub fn invalidate(&self, name: &str) {
        let slot = {
            let slots = self.inner.slots.read().unwrap_or_else(|p| p.into_inner());
            slots.get(name).cloned()
        };
        if let Some(slot) = slot {
            let mut cur = slot.current.write().unwrap_or_else(|p| p.into_inner());
            slot.generation.fetch_add(1, Ordering::SeqCst);
            *cur = None;
        }
    }

    /// A reward to `name` was applied through this replica: refresh soon
    /// (in the background), so Choose sees it well within the bound.
    pub fn note_reward(&self, name: &str) {
        if !self.enabled() {
            return;
        }
        let slot = {
            let slots = self.inner.slots.read().unwrap_or_else(|p| p.into_inner());
            slots.get(name).cloned()
        };
        let Some(slot) = slot else { return };
        {
            let mut d = slot.dirty_since.lock().unwrap_or_else(|p| p.into_inner());
            if d.is_none() {
                *d = Some(Instant::now());
            }
        }
        if slot
            .current()
            .is_some_and(|s| s.age() >= self.refresh_ahead(&slot))
        {
            self.spawn_refresh(name, &slot);
        }
    }

    /// Number of experiments with a cache entry (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Age at which a snapshot still within the bound gets a background
    /// refresh: half the bound keeps steady traffic from ever waiting; an
    /// eighth after a local reward makes the reward visible soon without a
    /// read per reward (single-flight coalesces the rest).
    fn refresh_ahead(&self, slot: &Slot) -> Duration {
        if slot.dirty() {
            self.inner.max_staleness / 8
        } else {
            self.inner.max_staleness / 2
        }
    }

    fn slot(&self, name: &str) -> Arc<Slot> {
        if let Some(s) = self
            .inner
            .slots
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return s.clone();
        }
        let mut slots = self.inner.slots.write().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Slot {
                    current: RwLock::new(None),
                    refresh: Arc::new(tokio::sync::Mutex::new(())),
                    generation: AtomicU64::new(0),
                    dirty_since: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Drop the entry of an experiment that does not exist, so Choose calls
    /// on made-up names do not grow the map.
    fn forget(&self, name: &str) {
        let mut slots = self.inner.slots.write().unwrap_or_else(|p| p.into_inner());
        if slots.get(name).is_some_and(|s| s.current().is_none()) {
            slots.remove(name);
        }
    }

    fn spawn_refresh(&self, name: &str, slot: &Arc<Slot>) {
        // Already refreshing (or a caller is): nothing to start.
        let Ok(guard) = slot.refresh.clone().try_lock_owned() else {
            return;
        };
        // Outside a runtime (not the case in the server) there is no
        // background: the next Choose past the bound refreshes in line.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = self.inner.clone();
        let slot = slot.clone();
        let name = name.to_string();
        rt.spawn(async move {
            let _guard = guard;
            if let Err(e) = Inner::refresh(&inner, &name, &slot).await {
                // The next Choose past the bound retries in line and
                // reports the error to its caller.
                tracing::debug!(experiment = %name, error = %e, "background snapshot refresh failed");
            }
        });
    }
}

impl Inner {
    /// Read the store and install the snapshot. The caller holds `slot.refresh`.
    async fn refresh(
        inner: &Inner,
        name: &str,
        slot: &Slot,
    ) -> Result<Option<Arc<Snapshot>>, StoreError> {
        let generation = slot.generation.load(Ordering::SeqCst);
        let dirty_since = slot
            .dirty_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let read_at = Instant::now();
        let state = match inner.store.experiment(name).await {
            Ok(s) => s,
            Err(e) => {
                Self::restore_dirty(slot, dirty_since);
                return Err(e);
            }
        };
        let Some(state) = state else {
            let mut cur = slot.current.write().unwrap_or_else(|p| p.into_inner());
            if slot.generation.load(Ordering::SeqCst) == generation {
                *cur = None;
            }
            return Ok(None);
        };
        let mut snap = Snapshot::build(
            state,
            super::now_ms(),
            read_at,
            &inner.telemetry,
            &inner.tally,
        );
        snap.rng_seed = inner.rng_seed;
        let snap = Arc::new(snap);
        // Propensity tables before install, on the blocking pool (ms of
        // draws). If that task fails, Choose computes them at first use.
        let (warming, previous) = (snap.clone(), slot.current());
        if let Err(e) = tokio::task::spawn_blocking(move || warming.warm(previous.as_deref())).await
        {
            tracing::warn!(experiment = %name, error = %e, "propensity warm-up failed");
        }
        let mut cur = slot.current.write().unwrap_or_else(|p| p.into_inner());
        if slot.generation.load(Ordering::SeqCst) == generation {
            *cur = Some(snap.clone());
            drop(cur);
            if let Some(t) = dirty_since {
                inner
                    .telemetry
                    .reward_visible
                    .record(t.elapsed().as_secs_f64());
            }
        } else {
            drop(cur);
            Self::restore_dirty(slot, dirty_since);
        }
        // Even when not installed (a definition changed meanwhile), what we
        // read is no older than the caller's bound: return it.
        Ok(Some(snap))
    }

    fn restore_dirty(slot: &Slot, since: Option<Instant>) {
        if let Some(t) = since {
            let mut d = slot.dirty_since.lock().unwrap_or_else(|p| p.into_inner());
            *d = Some(d.map_or(t, |cur| cur.min(t)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bandit::{Design, Evidence, Model, NewExperiment};

    fn state(successes: f64) -> ExperimentState {
        let def = NewExperiment {
            name: "checkout".into(),
            model: Model::Bernoulli,
            prior: None,
            half_life_seconds: 0.0,
            arms: vec!["a".into(), "b".into(), "c".into()],
            design: Design::default(),
        }
        .into_def(7)
        .expect("a valid definition");
        let mut evidence = vec![Evidence::default(); 3];
        evidence[1].a = successes;
        evidence[1].count = successes as u64;
        ExperimentState { def, evidence }
    }

    fn snapshot(successes: f64) -> Snapshot {
        let now = 1_000_000;
        Snapshot::build(
            state(successes),
            now,
            Instant::now(),
            &Telemetry::new(false),
            &DecisionTally::default(),
        )
    }

    #[test]
    fn an_unchanged_posterior_keeps_its_propensity_tables() {
        let first = snapshot(3.0);
        first.warm(None);
        assert!(first.propensities_ready(&[0, 2]).is_none());
        let subset = first.propensities(&[0, 2]);
        let default = first.propensities(&first.active);

        // Same evidence, definition and allocation: the very same tables.
        let same = snapshot(3.0);
        same.warm(Some(&first));
        let same_default = same.propensities_ready(&same.active).expect("warmed");
        assert!(Arc::ptr_eq(&default, &same_default));
        let same_subset = same.propensities_ready(&[0, 2]).expect("kept");
        assert!(Arc::ptr_eq(&subset, &same_subset));

        // One more reward: drawn again, for the default and the kept subset.
        let changed = snapshot(4.0);
        changed.warm(Some(&first));
        let new_default = changed.propensities_ready(&changed.active).expect("warmed");
        assert!(!Arc::ptr_eq(&default, &new_default));
        let new_subset = changed.propensities_ready(&[0, 2]).expect("rewarmed");
        assert!(!Arc::ptr_eq(&subset, &new_subset));
    }
}
