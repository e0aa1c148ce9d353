//! The bandit use cases, once for both transports: experiments and arms,
//! Choose (snapshot cache, eligibility, outage fallback) and Reward (fast
//! path on the cached definition, slow path on a fresh read, exactly-once by
//! decision id).
//!
//! Policy lives here and in `bandit/` (the math); atomicity in `store/`;
//! encoding in the transports.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use super::now_ms;
use super::page::{Page, PageRequest};
use super::snapshot::{Snapshot, SnapshotCache};
use crate::bandit::{
    BanditError, Decision, DecisionSigner, ExperimentDef, NewExperiment, Posterior, thompson,
};
use crate::error::Error;
use crate::name;
use crate::store::{
    AssignUnit, Assignment, Created, Dedupe, DedupeKind, ExperimentState, RewardOutcome,
    RewardUpdate, Store, StoreError,
};
use crate::telemetry::Telemetry;

/// Decision-id and summary settings, from `[decisions]` and `[bandit]`.
#[derive(Clone, Debug)]
pub struct BanditSettings {
    pub dedupe_window_ms: u64,
    pub max_clock_skew_ms: u64,
    pub prob_best_draws: usize,
    /// bandit.fallback_arms: experiment (or "*") → arm for Choose during a
    /// store outage when no snapshot is cached.
    pub fallback_arms: BTreeMap<String, String>,
    /// Test-only (`bandit.test_rng_seed`): one seeded generator for every
    /// draw instead of the per-thread ones, so a test's decisions are
    /// reproducible. `None` in production.
    pub rng_seed: Option<u64>,
}

impl BanditSettings {
    fn fallback_arm(&self, experiment: &str) -> Option<&str> {
        self.fallback_arms
            .get(experiment)
            .or_else(|| self.fallback_arms.get("*"))
            .map(String::as_str)
    }
}

/// What Choose answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub arm: String,
    /// Empty for a fallback answer: nothing to reward.
    pub decision_id: String,
    /// The configured fallback arm, answered during a store outage.
    pub fallback: bool,
    /// The probability this arm had of being chosen (see
    /// `bandit::allocation`); 0 for a fallback answer (not a draw).
    pub propensity: f64,
}

/// Which decision (or arm) a reward is for.
#[derive(Clone, Debug, PartialEq)]
pub enum RewardTarget {
    /// Exactly once per decision id.
    Decision(String),
    /// Bulk ingestion by arm name: no exactly-once guarantee.
    Arm(String),
}

/// A reward with neither a decision id nor an arm.
pub fn missing_target() -> Error {
    Error::invalid("decision_id: required (or arm, for bulk ingestion without exactly-once)")
}

/// A reward as a caller sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reward {
    pub experiment: String,
    pub target: RewardTarget,
    pub value: f64,
}

/// What Reward answers.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewarded {
    pub arm: String,
    /// Already counted (a retry): acknowledged, not applied again.
    pub duplicate: bool,
}

/// One arm's posterior as GetExperiment reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmSummary {
    pub name: String,
    pub retired: bool,
    /// Rewards ever received.
    pub rewards: u64,
    /// Decayed weight of the evidence.
    pub evidence: f64,
    pub mean: f64,
    /// 95% equal-tailed credible interval of the mean.
    pub lower: f64,
    pub upper: f64,
    pub prob_best: f64,
    pub prob_above_threshold: Option<f64>,
    pub posterior: Posterior,
    /// E[max_j θ_j − θ_this] in the goal's direction (0 for retired arms).
    pub expected_loss: f64,
    /// Against the control arm, when the experiment has one.
    pub lift: Option<crate::bandit::verdict::Lift>,
}

/// An experiment's definition and every arm's posterior.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentSummary {
    pub def: ExperimentDef,
    pub arms: Vec<ArmSummary>,
    /// Joint draws behind `prob_best`.
    pub prob_best_draws: usize,
}

/// Longest `ChooseRequest.unit_id`: user, session and device ids (a UUID is
/// 36 bytes, a hex SHA-256 64) fit; every sticky assignment stores it in
/// its key, so the bound also bounds what a unit costs the store.
pub const MAX_UNIT_ID_LEN: usize = 128;

/// Atomic replacements of a sticky unit's ineligible stored arm before a
/// Choose gives up storing: only replicas racing with different eligible
/// sets for the same unit need more than one.
const MAX_STICKY_REPLACEMENTS: usize = 3;

/// Compare-and-set retries for AddArm/RetireArm: contention on one
/// experiment's definition is rare (admin calls), so a few tries suffice.
const MAX_DEFINITION_RETRIES: usize = 8;

thread_local! {
    /// Per-thread generator for Thompson draws and nonces: no lock on the
    /// Choose path. Seeded from the OS; nonces need uniqueness, not secrecy
    /// (the HMAC tag carries the security).
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// The bandit use cases over one store.
pub struct Bandits {
    pub(super) store: Arc<dyn Store>,
    signer: DecisionSigner,
    pub(super) settings: BanditSettings,
    /// Posterior snapshots for Choose (and definitions for Reward); off
    /// unless [`Bandits::with_cache`] is given one with a bound > 0.
    pub(super) cache: SnapshotCache,
    /// With `settings.rng_seed`: the one generator behind every draw. A
    /// lock on the Choose path, acceptable only in tests; the draws of
    /// concurrent Chooses then form one reproducible sequence (their
    /// arms' multiset does not depend on which caller got which).
    seeded: Option<std::sync::Mutex<SmallRng>>,
}

/// The index of the arm named `a` (retired arms included: late outcomes of
/// a retired arm still count), or NOT_FOUND naming the field.
pub(super) fn arm_index(def: &ExperimentDef, a: &str) -> Result<usize, Error> {
    name::validate("arm", a).map_err(Error::invalid)?;
    def.arm_index(a)
        .ok_or_else(|| Error::not_found(format!("arm: {a:?} is not in experiment {:?}", def.name)))
}

fn not_found(field: &str, name: &str) -> Error {
    Error::not_found(format!("{field}: experiment {name:?} not found"))
}

impl Bandits {
    pub fn new(store: Arc<dyn Store>, signer: DecisionSigner, settings: BanditSettings) -> Self {
        let cache = SnapshotCache::new(
            store.clone(),
            Arc::new(Telemetry::disabled()),
            Duration::ZERO,
        );
        let seeded = settings
            .rng_seed
            .map(|s| std::sync::Mutex::new(SmallRng::seed_from_u64(s)));
        Bandits {
            store,
            signer,
            settings,
            cache,
            seeded,
        }
    }

    /// Run `f` with this service's generator: the per-thread one, or the
    /// seeded one of a test configuration.
    fn with_rng<T>(&self, f: impl FnOnce(&mut SmallRng) -> T) -> T {
        match &self.seeded {
            Some(m) => f(&mut m.lock().unwrap_or_else(|p| p.into_inner())),
            None => RNG.with(|r| f(&mut r.borrow_mut())),
        }
    }

    /// Serve Choose from `cache` (see `app::snapshot`).
    pub fn with_cache(mut self, cache: SnapshotCache) -> Self {
        self.cache = cache;
        self
    }

    pub(super) async fn load(&self, field: &str, name: &str) -> Result<ExperimentState, Error> {
        name::validate(field, name).map_err(Error::invalid)?;
        self.store
            .experiment(name)
            .await?
            .ok_or_else(|| not_found(field, name))
    }

    /// Create an experiment; an identical re-create answers the existing one
    /// with `created = false`, a different definition is ALREADY_EXISTS.
    pub async fn create(&self, new: NewExperiment) -> Result<(ExperimentDef, bool), Error> {
        let id = self.with_rng(|r| r.random::<u64>());
        let mut def = new.into_def(id)?;
        def.created_ms = now_ms();
        match self.store.create_experiment(&def).await? {
            Created::Created => {}
            Created::Exists(existing) if existing.same_definition(&def) => {
                return Ok((*existing, false));
            }
            Created::Exists(_) => {
                return Err(Error::already_exists(format!(
                    "name: experiment {:?} already exists with a different definition (delete it first, or use another name)",
                    def.name
                )));
            }
        }
        // A snapshot of an earlier incarnation of this name must not outlive it.
        self.cache.invalidate(&def.name);
        tracing::info!(experiment = %def.name, arms = def.arms.len(), "experiment created");
        Ok((def, true))
    }

    /// Every arm's posterior, interval and P(best); with a threshold, also
    /// P(mean > threshold).
    pub async fn summary(
        &self,
        name: &str,
        threshold: Option<f64>,
    ) -> Result<ExperimentSummary, Error> {
        if let Some(t) = threshold
            && !t.is_finite()
        {
            return Err(Error::invalid(format!(
                "threshold: must be a finite number, got {t}"
            )));
        }
        let state = self.load("name", name).await?;
        // P(best) takes up to 2 M draws (tens of milliseconds for 2,000
        // arms): on the blocking pool, since inline it would stall every
        // Choose queued on the same async thread.
        let max_draws = self.settings.prob_best_draws;
        tokio::task::spawn_blocking(move || summarize(state, threshold, max_draws))
            .await
            .map_err(|e| Error::internal(format!("summary task: {e}")))
    }

    /// A page of experiment names.
    pub async fn list(&self, page: &PageRequest) -> Result<Page, Error> {
        Ok(page.apply(self.store.list_experiments().await?))
    }

    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        name::validate("name", name).map_err(Error::invalid)?;
        let deleted = self.store.delete_experiment(name).await?;
        // Gone either way (by us or by another replica): drop the snapshot
        // and the per-arm gauges.
        self.cache.invalidate(name);
        self.cache.telemetry().forget_experiment(name);
        if !deleted {
            return Err(not_found("name", name));
        }
        tracing::info!(experiment = %name, "experiment deleted");
        Ok(())
    }

    /// Add an arm (idempotent); `true` when it was new.
    pub async fn add_arm(
        &self,
        experiment: &str,
        arm: &str,
    ) -> Result<(ExperimentDef, bool), Error> {
        name::validate("arm", arm).map_err(Error::invalid)?;
        let out = self.update_def(experiment, |d| d.with_arm(arm)).await?;
        self.cache.invalidate(experiment);
        Ok(out)
    }

    /// Retire an arm: never chosen again; its evidence stays visible.
    pub async fn retire_arm(&self, experiment: &str, arm: &str) -> Result<ExperimentDef, Error> {
        name::validate("arm", arm).map_err(Error::invalid)?;
        let (def, _) = self
            .update_def(experiment, |d| d.with_arm_retired(arm))
            .await?;
        // Before returning: no Choose on this replica may pick it from now on.
        self.cache.invalidate(experiment);
        Ok(def)
    }

    /// Change an experiment's definition with compare-and-set, retrying on
    /// concurrent changes. `change` returns `None` when there is nothing to do.
    async fn update_def(
        &self,
        experiment: &str,
        change: impl Fn(&ExperimentDef) -> Result<Option<ExperimentDef>, BanditError>,
    ) -> Result<(ExperimentDef, bool), Error> {
        for _ in 0..MAX_DEFINITION_RETRIES {
            let state = self.load("experiment", experiment).await?;
            let Some(new) = change(&state.def)? else {
                return Ok((state.def, false));
            };
            if self.store.update_definition(&state.def, &new).await? {
                return Ok((new, true));
            }
        }
        Err(StoreError::Conflict(format!("experiment {experiment:?}")).into())
    }

    /// Which arm now: one decision under the experiment's allocation
    /// (policy, holdback, floors) from the snapshot, with its propensity. No
    /// store write, except a sticky unit's first decision (see
    /// [`Bandits::sticky`]). During a store outage with no snapshot to draw
    /// from, the configured fallback arm if the caller may be shown it.
    ///
    /// `unit_id` (may be empty: none) matters only when the experiment is
    /// sticky; on other experiments it is ignored, so callers can always
    /// send it and an experiment can become sticky without client changes.
    /// It is checked either way (at most [`MAX_UNIT_ID_LEN`] bytes).
    pub async fn choose(
        &self,
        experiment: &str,
        eligible: &[String],
        unit_id: &str,
    ) -> Result<Choice, Error> {
        name::validate("experiment", experiment).map_err(Error::invalid)?;
        if unit_id.len() > MAX_UNIT_ID_LEN {
            return Err(Error::invalid(format!(
                "unit_id: must be at most {MAX_UNIT_ID_LEN} bytes, got {}",
                unit_id.len()
            )));
        }
        let snap = match self.cache.get(experiment).await {
            Ok(snap) => snap,
            // The store is down and there is no snapshot to draw from (the
            // cache already served one if it had it): the configured
            // fallback keeps the caller's product working, if it may be shown.
            Err(StoreError::Unavailable(e)) => return self.fallback(experiment, eligible, e),
            Err(e) => return Err(e.into()),
        }
        .ok_or_else(|| not_found("experiment", experiment))?;
        let owned;
        let candidates: &[usize] = if eligible.is_empty() {
            &snap.active
        } else {
            owned = snap.def.eligible_arms(eligible)?;
            &owned
        };
        if candidates.is_empty() {
            // Unreachable through the API (the last arm cannot be retired),
            // but say so rather than answer nothing.
            snap.def.eligible_arms(&[])?;
        }
        let propensities = match snap.propensities_ready(candidates) {
            Some(p) => p,
            // First Choose on this eligible subset with this snapshot (or
            // the cache is off): tens of µs of quadrature for plain
            // Thompson, milliseconds of draws for top-two (see
            // `Allocation::propensities`), on the blocking pool.
            None => {
                let (s, c) = (snap.clone(), candidates.to_vec());
                tokio::task::spawn_blocking(move || s.propensities(&c))
                    .await
                    .map_err(|e| Error::internal(format!("propensity task: {e}")))?
            }
        };
        let exploit = snap.exploit.filter(|w| candidates.contains(w));
        let (arm, nonce) = self.with_rng(|rng| {
            // EXPLOIT after a winner (found at snapshot refresh): the winner,
            // when the caller may be shown it; otherwise the allocation
            // (policy, holdback, floors).
            let arm = match exploit {
                Some(w) => Some(w),
                None => snap
                    .allocation
                    .choose(&snap.posteriors, candidates, &mut *rng),
            };
            (arm, rng.random::<u64>())
        });
        let arm = arm.ok_or_else(|| Error::internal("no candidate arm after eligibility check"))?;
        let fresh = Assignment {
            arm,
            // Exploiting a winner is no draw: it is played with certainty.
            propensity: if exploit.is_some() {
                1.0
            } else {
                propensities.get(arm).copied().unwrap_or(0.0)
            },
        };
        let sticky_ms = snap.def.design.sticky_seconds * 1000.0;
        let decided = if !unit_id.is_empty() && sticky_ms >= 1.0 {
            match self
                .sticky(&snap, candidates, unit_id, fresh, sticky_ms as u64)
                .await
            {
                Ok(a) => a,
                Err(StoreError::Unavailable(e)) => return self.fallback(experiment, eligible, e),
                Err(e) => return Err(e.into()),
            }
        } else {
            fresh
        };
        Ok(self.decision(&snap, decided, nonce))
    }

    /// A sticky unit's arm: its stored assignment when that arm is still
    /// eligible, else `fresh`, stored with one atomic set-if-absent (or a
    /// compare-and-set replacing an ineligible stored arm). One store round
    /// trip per sticky Choose; a write only for a unit's first decision.
    async fn sticky(
        &self,
        snap: &Snapshot,
        candidates: &[usize],
        unit: &str,
        fresh: Assignment,
        ttl_ms: u64,
    ) -> Result<Assignment, StoreError> {
        let mut replace = None;
        for _ in 0..MAX_STICKY_REPLACEMENTS {
            let got = self
                .store
                .assign_unit(&AssignUnit {
                    experiment: &snap.def.name,
                    experiment_id: snap.def.id,
                    unit,
                    proposed: fresh,
                    replace,
                    ttl_ms,
                })
                .await?;
            if candidates.contains(&got.arm) {
                return Ok(got);
            }
            // Retired, or not eligible for this request: reassign, unless
            // another replica already has (then check theirs).
            replace = Some(got.arm);
        }
        // Replicas with different eligible sets kept replacing each
        // other's assignment: answer this request's draw, unstored.
        Ok(fresh)
    }

    /// The answer for `a`, with a fresh signed decision id.
    fn decision(&self, snap: &Snapshot, a: Assignment, nonce: u64) -> Choice {
        let def = &snap.def;
        snap.metrics.decisions.increment(1);
        // For the history's traffic split: counted here, stored once per interval.
        snap.decisions.add(a.arm);
        let decision = Decision {
            arm: a.arm as u32,
            issued_ms: now_ms().max(0) as u64,
            nonce,
        };
        Choice {
            arm: def.arms[a.arm].name.clone(),
            decision_id: self.signer.sign(&def.name, def.id, &decision),
            fallback: false,
            propensity: a.propensity,
        }
    }

    /// The configured fallback arm for a store outage, if the caller may be
    /// shown it; else the outage (UNAVAILABLE, retryable).
    fn fallback(&self, experiment: &str, eligible: &[String], e: String) -> Result<Choice, Error> {
        match self.settings.fallback_arm(experiment) {
            Some(arm) if eligible.is_empty() || eligible.iter().any(|a| a == arm) => {
                self.cache.telemetry().choose_fallback.increment(1);
                tracing::debug!(experiment, arm, error = %e, "store down: fallback arm");
                Ok(Choice {
                    arm: arm.to_string(),
                    decision_id: String::new(),
                    fallback: true,
                    propensity: 0.0,
                })
            }
            _ => Err(StoreError::Unavailable(e).into()),
        }
    }

    /// Apply a reward: by decision id exactly once, by arm as bulk ingestion.
    pub async fn reward(&self, r: &Reward) -> Result<Rewarded, Error> {
        let now = now_ms();
        let mut out = self
            .ingest(&r.experiment, 1, |def, _| {
                self.reward_update(def, &r.target, r.value, now)
            })
            .await?;
        out.pop()
            .unwrap_or_else(|| Err(Error::internal("reward: no result")))
    }

    /// Apply `n` rewards to one experiment in one store operation: `build`
    /// checks item `i` against a definition and computes its update. One
    /// result per item, in order; the outer error fails them all (unknown
    /// experiment, store down).
    ///
    /// Fast path: the cached definition, no read round trip. The store's
    /// reward step re-checks the incarnation id and the arm atomically;
    /// items a stale definition could explain failing (an arm added
    /// elsewhere, a re-created experiment) are retried on a fresh read.
    pub(super) async fn ingest(
        &self,
        experiment: &str,
        n: usize,
        build: impl Fn(&ExperimentDef, usize) -> Result<RewardUpdate, Error>,
    ) -> Result<Vec<Result<Rewarded, Error>>, Error> {
        name::validate("experiment", experiment).map_err(Error::invalid)?;
        let mut out: Vec<Option<Result<Rewarded, Error>>> = vec![None; n];
        let mut retry: Vec<usize> = (0..n).collect();
        let cached = self.cache.cached(experiment);
        if let Some(snap) = &cached {
            retry = self
                .apply(&snap.def, &retry, &build, &mut out, true)
                .await?;
            if retry.is_empty() {
                return Ok(out.into_iter().flatten().collect());
            }
        }
        let (snap, state);
        let def = if cached.is_none() && self.cache.enabled() {
            // Nothing cached yet: read through the cache, so the next
            // rewards (and Choose) find the definition there.
            snap = self.cache.get(experiment).await?;
            &snap
                .as_ref()
                .ok_or_else(|| not_found("experiment", experiment))?
                .def
        } else {
            state = self.load("experiment", experiment).await?;
            &state.def
        };
        self.apply(def, &retry, &build, &mut out, false).await?;
        Ok(out
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Err(Error::internal("reward: no result"))))
            .collect())
    }

    /// Build and store the items `which` against `def`, filling `out`.
    /// With `stale_ok` (a cached definition), an item that fails to build
    /// or finds its experiment or arm gone is left unanswered and returned
    /// for a retry on a fresh read.
    async fn apply(
        &self,
        def: &ExperimentDef,
        which: &[usize],
        build: &impl Fn(&ExperimentDef, usize) -> Result<RewardUpdate, Error>,
        out: &mut [Option<Result<Rewarded, Error>>],
        stale_ok: bool,
    ) -> Result<Vec<usize>, Error> {
        let mut retry = Vec::new();
        let (mut updates, mut sent) = (Vec::with_capacity(which.len()), Vec::new());
        for &i in which {
            match build(def, i) {
                Ok(u) => {
                    updates.push(u);
                    sent.push(i);
                }
                Err(_) if stale_ok => retry.push(i),
                Err(e) => out[i] = Some(Err(e)),
            }
        }
        if updates.is_empty() {
            return Ok(retry);
        }
        let outcomes = match updates.as_slice() {
            // A single reward keeps the store's single-reward operation
            // (and its latency histogram).
            [u] => match self.store.reward(u).await {
                Err(e @ StoreError::Unavailable(_)) => return Err(e.into()),
                r => vec![r],
            },
            _ => self.store.reward_batch(&updates).await?,
        };
        let mut gone = false;
        for ((i, u), outcome) in sent.into_iter().zip(&updates).zip(outcomes) {
            match outcome {
                Ok(o) => out[i] = Some(Ok(self.rewarded(def, u, o))),
                Err(StoreError::NotFound(_)) if stale_ok => {
                    gone = true;
                    retry.push(i);
                }
                Err(e) => out[i] = Some(Err(e.into())),
            }
        }
        if gone {
            self.cache.invalidate(&def.name);
        }
        retry.sort_unstable();
        Ok(retry)
    }

    /// Check a reward against `def` and compute the store update.
    pub(super) fn reward_update(
        &self,
        def: &ExperimentDef,
        target: &RewardTarget,
        value: f64,
        now: i64,
    ) -> Result<RewardUpdate, Error> {
        let (arm, dedupe) = match target {
            RewardTarget::Decision(t) => {
                let (arm, d) = self.verify_decision(def, t, now)?;
                (arm, Some(d))
            }
            RewardTarget::Arm(a) => (arm_index(def, a)?, None),
        };
        let delta = def.model.delta(value)?;
        Ok(RewardUpdate {
            experiment: def.name.clone(),
            experiment_id: def.id,
            arm,
            delta,
            now_ms: now,
            half_life_ms: def.half_life_ms(),
            dedupe,
        })
    }

    /// The answer to an applied (or duplicate) reward; refreshes the
    /// experiment's snapshot soon so Choose sees it.
    fn rewarded(
        &self,
        def: &ExperimentDef,
        update: &RewardUpdate,
        outcome: RewardOutcome,
    ) -> Rewarded {
        if outcome == RewardOutcome::Applied {
            self.cache.note_reward(&def.name);
            let telemetry = self.cache.telemetry();
            telemetry
                .experiment(&def.name)
                .rewards
                .increment(update.delta.count);
            // Reward lag: the decision id carries its issue time (rewards by
            // arm have none; duplicates were measured when first applied).
            if let Some(d) = &update.dedupe {
                let lag_ms = update.now_ms.saturating_sub(d.issued_ms as i64).max(0);
                telemetry.reward_lag.record(lag_ms as f64 / 1000.0);
            }
        }
        Rewarded {
            arm: def.arms[update.arm].name.clone(),
            duplicate: outcome == RewardOutcome::Duplicate,
        }
    }

    /// Turn a decision id into (arm, dedupe) after checking its signature and age.
    fn verify_decision(
        &self,
        def: &ExperimentDef,
        token: &str,
        now: i64,
    ) -> Result<(usize, Dedupe), Error> {
        let d = self.signer.verify(&def.name, def.id, token)?;
        let now = now.max(0) as u64;
        let s = &self.settings;
        if d.issued_ms > now.saturating_add(s.max_clock_skew_ms) {
            return Err(Error::invalid(format!(
                "decision_id: issued {} ms in the future, beyond the allowed clock skew of {} ms",
                d.issued_ms - now,
                s.max_clock_skew_ms
            )));
        }
        let age = now.saturating_sub(d.issued_ms);
        if age > s.dedupe_window_ms {
            return Err(Error::failed_precondition(format!(
                "decision_id: issued {} s ago, beyond the dedupe window of {} s; exactly-once cannot be guaranteed, so it is not applied (reward by arm to ingest it anyway)",
                age / 1000,
                s.dedupe_window_ms / 1000
            )));
        }
        let arm = d.arm as usize;
        if arm >= def.arms.len() {
            return Err(Error::internal(
                "validly signed decision names an arm that does not exist",
            ));
        }
        Ok((
            arm,
            Dedupe {
                kind: DedupeKind::Decision,
                key: d.dedupe_key(),
                issued_ms: d.issued_ms,
                // The key must outlive every moment the id is still accepted
                // (until issue + window); the skew is extra margin for
                // replicas whose clocks run behind.
                expire_at_ms: (d.issued_ms + s.dedupe_window_ms + s.max_clock_skew_ms) as i64,
            },
        ))
    }
}

/// Posterior summaries and P(best) by Monte Carlo (CPU-bound: call it off
/// the async threads).
pub(super) fn summarize(
    state: ExperimentState,
    threshold: Option<f64>,
    max_draws: usize,
) -> ExperimentSummary {
    let def = state.def;
    let decayed = def.posteriors_at(&state.evidence, now_ms());
    let posteriors: Vec<Posterior> = decayed.iter().map(|(_, p)| *p).collect();
    let active = def.active_arms();
    let draws = thompson::prob_best_draws(active.len()).min(max_draws);
    // P(best), expected loss and lift from the same joint draws, goal-aware.
    let stats = super::verdict::stats_of(&def, &posteriors, draws);
    let arms = def
        .arms
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let (e, p) = &decayed[i];
            let (lower, upper) = p.credible_interval(0.95);
            ArmSummary {
                name: arm.name.clone(),
                retired: arm.retired,
                rewards: state.evidence[i].count,
                evidence: e.weight(def.model),
                mean: p.mean(),
                lower,
                upper,
                prob_best: stats.prob_best[i],
                prob_above_threshold: threshold.map(|t| p.prob_above(t)),
                posterior: *p,
                expected_loss: stats.expected_loss[i],
                lift: stats.lift[i],
            }
        })
        .collect();
    ExperimentSummary {
        def,
        arms,
        prob_best_draws: draws,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bandit::Model;
    use crate::error::ErrorKind;
    use crate::store::memory::MemoryStore;

    fn service() -> Bandits {
        Bandits::new(
            Arc::new(MemoryStore::new()),
            DecisionSigner::new(b"k"),
            BanditSettings {
                dedupe_window_ms: 86_400_000,
                max_clock_skew_ms: 300_000,
                prob_best_draws: 1000,
                fallback_arms: BTreeMap::new(),
                rng_seed: None,
            },
        )
    }

    fn def() -> ExperimentDef {
        NewExperiment {
            name: "e".into(),
            model: Model::Bernoulli,
            prior: None,
            half_life_seconds: 0.0,
            arms: vec!["a".into(), "b".into()],
            design: Default::default(),
        }
        .into_def(5)
        .unwrap()
    }

    #[test]
    fn decision_ids_expire_with_the_dedupe_window() {
        let s = service();
        let d = def();
        let issued = 1_700_000_000_000u64;
        let t = s.signer.sign(
            "e",
            5,
            &Decision {
                arm: 1,
                issued_ms: issued,
                nonce: 9,
            },
        );
        let day = 86_400_000i64;
        let (arm, dd) = s.verify_decision(&d, &t, issued as i64 + day).unwrap();
        assert_eq!(arm, 1);
        // The dedupe record outlives the acceptance window.
        assert!(dd.expire_at_ms >= issued as i64 + day);
        let e = s
            .verify_decision(&d, &t, issued as i64 + day + 1)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::FailedPrecondition);
        assert!(e.to_string().contains("dedupe window"));
        // Issued further in the future than the allowed skew: rejected.
        let e = s
            .verify_decision(&d, &t, issued as i64 - 300_001)
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(s.verify_decision(&d, &t, issued as i64 - 299_000).is_ok());
    }

    #[test]
    fn a_signed_id_with_an_impossible_arm_is_not_a_panic() {
        let s = service();
        let t = s.signer.sign(
            "e",
            5,
            &Decision {
                arm: 99,
                issued_ms: 1_000,
                nonce: 1,
            },
        );
        assert!(s.verify_decision(&def(), &t, 2_000).is_err());
    }
}
