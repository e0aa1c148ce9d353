//! `posterior.v1.Bandits`: experiments, Choose and Reward.
//!
//! Every handler reads the same way: validate and convert the request, call
//! the domain and the store, convert the answer. Policy lives in `bandit/`,
//! atomicity in `store/`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tonic::{Request, Response, Status};

use super::now_ms;
use super::pb;
use super::pb::bandits_server::Bandits;
use super::snapshot::{Snapshot, SnapshotCache};
use super::status::ApiError;
use crate::bandit::{
    self, Decision, DecisionSigner, ExperimentDef, Model, NewExperiment, Posterior, Prior, thompson,
};
use crate::name;
use crate::store::{
    Created, Dedupe, ExperimentState, RewardOutcome, RewardUpdate, Store, StoreError,
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
}

impl BanditSettings {
    fn fallback_arm(&self, experiment: &str) -> Option<&str> {
        self.fallback_arms
            .get(experiment)
            .or_else(|| self.fallback_arms.get("*"))
            .map(String::as_str)
    }
}

pub struct BanditService {
    store: Arc<dyn Store>,
    signer: DecisionSigner,
    settings: BanditSettings,
    /// Posterior snapshots for Choose (and definitions for Reward); off
    /// unless [`BanditService::with_cache`] is given one with a bound > 0.
    cache: SnapshotCache,
}

/// Compare-and-set retries for AddArm/RetireArm: contention on one
/// experiment's definition is rare (admin calls), so a few tries suffice.
const MAX_DEFINITION_RETRIES: usize = 8;

thread_local! {
    /// Per-thread generator for Thompson draws and nonces: no lock on the
    /// Choose path. Seeded from the OS; nonces need uniqueness, not secrecy
    /// (the HMAC tag carries the security).
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

impl BanditService {
    pub fn new(store: Arc<dyn Store>, signer: DecisionSigner, settings: BanditSettings) -> Self {
        let cache = SnapshotCache::new(
            store.clone(),
            Arc::new(Telemetry::disabled()),
            Duration::ZERO,
        );
        BanditService {
            store,
            signer,
            settings,
            cache,
        }
    }

    /// Serve Choose from `cache` (see `api::snapshot`).
    pub fn with_cache(mut self, cache: SnapshotCache) -> Self {
        self.cache = cache;
        self
    }

    async fn load(&self, field: &str, name: &str) -> Result<ExperimentState, ApiError> {
        name::validate(field, name).map_err(ApiError::Invalid)?;
        self.store
            .experiment(name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("{field}: experiment {name:?} not found")))
    }

    /// Change an experiment's definition with compare-and-set, retrying on
    /// concurrent changes. `change` returns `None` when there is nothing to do.
    async fn update_def(
        &self,
        experiment: &str,
        change: impl Fn(&ExperimentDef) -> Result<Option<ExperimentDef>, bandit::BanditError>,
    ) -> Result<(ExperimentDef, bool), ApiError> {
        for _ in 0..MAX_DEFINITION_RETRIES {
            let state = self.load("experiment", experiment).await?;
            let Some(new) = change(&state.def)? else {
                return Ok((state.def, false));
            };
            if self.store.update_definition(&state.def, &new).await? {
                return Ok((new, true));
            }
        }
        Err(crate::store::StoreError::Conflict(format!("experiment {experiment:?}")).into())
    }

    /// Thompson draw over the snapshot's precomputed posteriors.
    fn choose(&self, snap: &Snapshot, eligible: &[String]) -> Result<pb::ChooseResponse, ApiError> {
        let def = &snap.def;
        let candidates: Cow<[usize]> = if eligible.is_empty() {
            Cow::Borrowed(&snap.active)
        } else {
            Cow::Owned(def.eligible_arms(eligible)?)
        };
        if candidates.is_empty() {
            // Unreachable through the API (the last arm cannot be retired),
            // but say so rather than answer nothing.
            def.eligible_arms(&[])?;
        }
        let now = now_ms();
        let (arm, nonce) = RNG.with(|r| {
            let mut rng = r.borrow_mut();
            let arm = thompson::choose(&snap.posteriors, &candidates, &mut *rng);
            (arm, rng.random::<u64>())
        });
        let arm = arm
            .ok_or_else(|| ApiError::Internal("no candidate arm after eligibility check".into()))?;
        snap.metrics.decisions.increment(1);
        let decision = Decision {
            arm: arm as u32,
            issued_ms: now.max(0) as u64,
            nonce,
        };
        Ok(pb::ChooseResponse {
            arm: def.arms[arm].name.clone(),
            decision_id: self.signer.sign(&def.name, def.id, &decision),
            fallback: false,
        })
    }

    /// Turn a decision id into (arm, dedupe) after checking its signature and age.
    fn verify_decision(
        &self,
        def: &ExperimentDef,
        token: &str,
        now: i64,
    ) -> Result<(usize, Dedupe), ApiError> {
        let d = self.signer.verify(&def.name, def.id, token)?;
        let now = now.max(0) as u64;
        let s = &self.settings;
        if d.issued_ms > now.saturating_add(s.max_clock_skew_ms) {
            return Err(ApiError::Invalid(format!(
                "decision_id: issued {} ms in the future, beyond the allowed clock skew of {} ms",
                d.issued_ms - now,
                s.max_clock_skew_ms
            )));
        }
        let age = now.saturating_sub(d.issued_ms);
        if age > s.dedupe_window_ms {
            return Err(ApiError::FailedPrecondition(format!(
                "decision_id: issued {} s ago, beyond the dedupe window of {} s; exactly-once cannot be guaranteed, so it is not applied (reward by arm to ingest it anyway)",
                age / 1000,
                s.dedupe_window_ms / 1000
            )));
        }
        let arm = d.arm as usize;
        if arm >= def.arms.len() {
            return Err(ApiError::Internal(
                "validly signed decision names an arm that does not exist".into(),
            ));
        }
        Ok((
            arm,
            Dedupe {
                key: d.dedupe_key(),
                issued_ms: d.issued_ms,
                // The key must outlive every moment the id is still accepted
                // (until issue + window); the skew is extra margin for
                // replicas whose clocks run behind.
                expire_at_ms: (d.issued_ms + s.dedupe_window_ms + s.max_clock_skew_ms) as i64,
            },
        ))
    }

    /// Posterior summaries and P(best) by Monte Carlo: up to 2 M draws (tens
    /// of milliseconds) for 2,000 arms, so it runs on the blocking pool:
    /// inline it would stall every Choose queued on the same async thread.
    async fn summarize(
        &self,
        state: ExperimentState,
        threshold: Option<f64>,
    ) -> Result<pb::GetExperimentResponse, ApiError> {
        let max_draws = self.settings.prob_best_draws;
        tokio::task::spawn_blocking(move || summarize(&state, threshold, max_draws))
            .await
            .map_err(|e| ApiError::Internal(format!("summary task: {e}")))
    }
}

fn summarize(
    state: &ExperimentState,
    threshold: Option<f64>,
    max_draws: usize,
) -> pb::GetExperimentResponse {
    let def = &state.def;
    let now = now_ms();
    let hl = def.half_life_ms();
    let decayed: Vec<_> = state.evidence.iter().map(|e| e.at(now, hl)).collect();
    let posteriors: Vec<Posterior> = decayed
        .iter()
        .map(|e| Posterior::new(&def.prior, e))
        .collect();
    let active: Vec<usize> = (0..def.arms.len())
        .filter(|&i| !def.arms[i].retired)
        .collect();
    let draws = thompson::prob_best_draws(active.len()).min(max_draws);
    let prob_best =
        RNG.with(|r| thompson::prob_best(&posteriors, &active, draws, &mut *r.borrow_mut()));
    let arms = def
        .arms
        .iter()
        .enumerate()
        .map(|(i, arm)| {
            let p = &posteriors[i];
            let (lower, upper) = p.credible_interval(0.95);
            let (alpha, beta, mu, kappa) = match *p {
                Posterior::Beta { alpha, beta } => (alpha, beta, 0.0, 0.0),
                Posterior::NormalInverseGamma {
                    mu,
                    kappa,
                    alpha,
                    beta,
                } => (alpha, beta, mu, kappa),
            };
            pb::ArmSummary {
                name: arm.name.clone(),
                retired: arm.retired,
                rewards: state.evidence[i].count,
                evidence: decayed[i].weight(def.model),
                mean: p.mean(),
                lower,
                upper,
                prob_best: prob_best[i],
                prob_above_threshold: threshold.map(|t| p.prob_above(t)),
                alpha,
                beta,
                mu,
                kappa,
            }
        })
        .collect();
    pb::GetExperimentResponse {
        experiment: Some(to_pb(def)),
        arms,
        prob_best_draws: draws as u32,
    }
}

fn to_pb(def: &ExperimentDef) -> pb::Experiment {
    pb::Experiment {
        name: def.name.clone(),
        model: match def.model {
            Model::Bernoulli => pb::RewardModel::Bernoulli,
            Model::Gaussian => pb::RewardModel::Gaussian,
        } as i32,
        arms: def.arms.iter().map(|a| a.name.clone()).collect(),
        retired_arms: def
            .arms
            .iter()
            .filter(|a| a.retired)
            .map(|a| a.name.clone())
            .collect(),
        half_life_seconds: def.half_life_seconds,
        prior: Some(match def.prior {
            Prior::Beta { alpha, beta } => {
                pb::experiment::Prior::BetaPrior(pb::BetaPrior { alpha, beta })
            }
            Prior::NormalInverseGamma {
                mean,
                kappa,
                alpha,
                beta,
            } => pb::experiment::Prior::NormalPrior(pb::NormalInverseGammaPrior {
                mean,
                kappa,
                alpha,
                beta,
            }),
        }),
    }
}

fn new_experiment(r: pb::CreateExperimentRequest) -> Result<NewExperiment, ApiError> {
    let model = match pb::RewardModel::try_from(r.model) {
        Ok(pb::RewardModel::Bernoulli) => Model::Bernoulli,
        Ok(pb::RewardModel::Gaussian) => Model::Gaussian,
        Err(_) => {
            return Err(ApiError::Invalid(format!(
                "model: must be BERNOULLI or GAUSSIAN, got {}",
                r.model
            )));
        }
    };
    let prior = r.prior.map(|p| match p {
        pb::create_experiment_request::Prior::BetaPrior(b) => Prior::Beta {
            alpha: b.alpha,
            beta: b.beta,
        },
        pb::create_experiment_request::Prior::NormalPrior(n) => Prior::NormalInverseGamma {
            mean: n.mean,
            kappa: n.kappa,
            alpha: n.alpha,
            beta: n.beta,
        },
    });
    Ok(NewExperiment {
        name: r.name,
        model,
        prior,
        half_life_seconds: r.half_life_seconds,
        arms: r.arms,
    })
}

#[tonic::async_trait]
impl Bandits for BanditService {
    async fn create_experiment(
        &self,
        req: Request<pb::CreateExperimentRequest>,
    ) -> Result<Response<pb::CreateExperimentResponse>, Status> {
        let id = RNG.with(|r| r.borrow_mut().random::<u64>());
        let def = new_experiment(req.into_inner())?
            .into_def(id)
            .map_err(ApiError::from)?;
        let created = match self
            .store
            .create_experiment(&def)
            .await
            .map_err(ApiError::from)?
        {
            Created::Created => true,
            Created::Exists(existing) if existing.same_definition(&def) => {
                return Ok(Response::new(pb::CreateExperimentResponse {
                    experiment: Some(to_pb(&existing)),
                    created: false,
                }));
            }
            Created::Exists(_) => {
                return Err(ApiError::AlreadyExists(format!(
                    "name: experiment {:?} already exists with a different definition (delete it first, or use another name)",
                    def.name
                ))
                .into());
            }
        };
        // A snapshot of an earlier incarnation of this name must not outlive it.
        self.cache.invalidate(&def.name);
        tracing::info!(experiment = %def.name, arms = def.arms.len(), "experiment created");
        Ok(Response::new(pb::CreateExperimentResponse {
            experiment: Some(to_pb(&def)),
            created,
        }))
    }

    async fn get_experiment(
        &self,
        req: Request<pb::GetExperimentRequest>,
    ) -> Result<Response<pb::GetExperimentResponse>, Status> {
        let r = req.into_inner();
        if let Some(t) = r.threshold
            && !t.is_finite()
        {
            return Err(
                ApiError::Invalid(format!("threshold: must be a finite number, got {t}")).into(),
            );
        }
        let state = self.load("name", &r.name).await?;
        Ok(Response::new(self.summarize(state, r.threshold).await?))
    }

    async fn list_experiments(
        &self,
        _req: Request<pb::ListExperimentsRequest>,
    ) -> Result<Response<pb::ListExperimentsResponse>, Status> {
        let names = self
            .store
            .list_experiments()
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListExperimentsResponse { names }))
    }

    async fn delete_experiment(
        &self,
        req: Request<pb::DeleteExperimentRequest>,
    ) -> Result<Response<pb::DeleteExperimentResponse>, Status> {
        let r = req.into_inner();
        name::validate("name", &r.name).map_err(ApiError::Invalid)?;
        let deleted = self
            .store
            .delete_experiment(&r.name)
            .await
            .map_err(ApiError::from)?;
        // Gone either way (by us or by another replica): drop the snapshot.
        self.cache.invalidate(&r.name);
        if !deleted {
            return Err(
                ApiError::NotFound(format!("name: experiment {:?} not found", r.name)).into(),
            );
        }
        tracing::info!(experiment = %r.name, "experiment deleted");
        Ok(Response::new(pb::DeleteExperimentResponse {}))
    }

    async fn add_arm(
        &self,
        req: Request<pb::AddArmRequest>,
    ) -> Result<Response<pb::AddArmResponse>, Status> {
        let r = req.into_inner();
        name::validate("arm", &r.arm).map_err(ApiError::Invalid)?;
        let (def, created) = self
            .update_def(&r.experiment, |d| d.with_arm(&r.arm))
            .await?;
        self.cache.invalidate(&r.experiment);
        Ok(Response::new(pb::AddArmResponse {
            experiment: Some(to_pb(&def)),
            created,
        }))
    }

    async fn retire_arm(
        &self,
        req: Request<pb::RetireArmRequest>,
    ) -> Result<Response<pb::RetireArmResponse>, Status> {
        let r = req.into_inner();
        name::validate("arm", &r.arm).map_err(ApiError::Invalid)?;
        let (def, _) = self
            .update_def(&r.experiment, |d| d.with_arm_retired(&r.arm))
            .await?;
        // Before returning: no Choose on this replica may pick it from now on.
        self.cache.invalidate(&r.experiment);
        Ok(Response::new(pb::RetireArmResponse {
            experiment: Some(to_pb(&def)),
        }))
    }

    async fn choose(
        &self,
        req: Request<pb::ChooseRequest>,
    ) -> Result<Response<pb::ChooseResponse>, Status> {
        let r = req.into_inner();
        name::validate("experiment", &r.experiment).map_err(ApiError::Invalid)?;
        let snap = match self.cache.get(&r.experiment).await {
            Ok(snap) => snap,
            // The store is down and there is no snapshot to draw from (the
            // cache already served one if it had it): the configured
            // fallback keeps the caller's product working, if it may be shown.
            Err(StoreError::Unavailable(e)) => {
                return match self.settings.fallback_arm(&r.experiment) {
                    Some(arm)
                        if r.eligible_arms.is_empty()
                            || r.eligible_arms.iter().any(|a| a == arm) =>
                    {
                        self.cache.telemetry().choose_fallback.increment(1);
                        tracing::debug!(experiment = %r.experiment, arm, error = %e, "store down: fallback arm");
                        Ok(Response::new(pb::ChooseResponse {
                            arm: arm.to_string(),
                            decision_id: String::new(),
                            fallback: true,
                        }))
                    }
                    _ => Err(ApiError::from(StoreError::Unavailable(e)).into()),
                };
            }
            Err(e) => return Err(ApiError::from(e).into()),
        }
        .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "experiment: experiment {:?} not found",
                    r.experiment
                ))
            })?;
        Ok(Response::new(self.choose(&snap, &r.eligible_arms)?))
    }

    async fn reward(
        &self,
        req: Request<pb::RewardRequest>,
    ) -> Result<Response<pb::RewardResponse>, Status> {
        let r = req.into_inner();
        name::validate("experiment", &r.experiment).map_err(ApiError::Invalid)?;
        let now = now_ms();
        // Fast path: the cached definition, no read round trip. The store's
        // reward step re-checks the incarnation id and the arm atomically;
        // whatever a stale definition could explain (an arm added elsewhere,
        // a re-created experiment) is retried below on a fresh read.
        let cached = self.cache.cached(&r.experiment);
        if let Some(snap) = &cached
            && let Ok(update) = self.reward_update(&snap.def, &r, now)
        {
            match self.store.reward(&update).await {
                Ok(outcome) => return Ok(self.rewarded(&snap.def, &update, outcome)),
                Err(StoreError::NotFound(_)) => self.cache.invalidate(&r.experiment),
                Err(e) => return Err(ApiError::from(e).into()),
            }
        }
        let (snap, state);
        let def = if cached.is_none() && self.cache.enabled() {
            // Nothing cached yet: read through the cache, so the next
            // rewards (and Choose) find the definition there.
            snap = self
                .cache
                .get(&r.experiment)
                .await
                .map_err(ApiError::from)?;
            let snap = snap.as_ref().ok_or_else(|| {
                ApiError::NotFound(format!(
                    "experiment: experiment {:?} not found",
                    r.experiment
                ))
            })?;
            &snap.def
        } else {
            state = self.load("experiment", &r.experiment).await?;
            &state.def
        };
        let update = self.reward_update(def, &r, now)?;
        let outcome = self.store.reward(&update).await.map_err(ApiError::from)?;
        Ok(self.rewarded(def, &update, outcome))
    }
}

impl BanditService {
    /// Check a reward against `def` and compute the store update.
    fn reward_update(
        &self,
        def: &ExperimentDef,
        r: &pb::RewardRequest,
        now: i64,
    ) -> Result<RewardUpdate, ApiError> {
        let (arm, dedupe) = match &r.target {
            Some(pb::reward_request::Target::DecisionId(t)) => {
                let (arm, d) = self.verify_decision(def, t, now)?;
                (arm, Some(d))
            }
            Some(pb::reward_request::Target::Arm(a)) => {
                name::validate("arm", a).map_err(ApiError::Invalid)?;
                let arm = def.arm_index(a).ok_or_else(|| {
                    ApiError::NotFound(format!("arm: {a:?} is not in experiment {:?}", def.name))
                })?;
                (arm, None)
            }
            None => {
                return Err(ApiError::Invalid(
                    "decision_id: required (or arm, for bulk ingestion without exactly-once)"
                        .into(),
                ));
            }
        };
        let delta = def.model.delta(r.value).map_err(ApiError::from)?;
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
    ) -> Response<pb::RewardResponse> {
        if outcome == RewardOutcome::Applied {
            self.cache.note_reward(&def.name);
            self.cache
                .telemetry()
                .experiment(&def.name)
                .rewards
                .increment(1);
        }
        Response::new(pb::RewardResponse {
            arm: def.arms[update.arm].name.clone(),
            duplicate: outcome == RewardOutcome::Duplicate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn service() -> BanditService {
        BanditService::new(
            Arc::new(MemoryStore::new()),
            DecisionSigner::new(b"k"),
            BanditSettings {
                dedupe_window_ms: 86_400_000,
                max_clock_skew_ms: 300_000,
                prob_best_draws: 1000,
                fallback_arms: BTreeMap::new(),
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
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        assert!(e.to_string().contains("dedupe window"));
        // Issued further in the future than the allowed skew: rejected.
        let e = s
            .verify_decision(&d, &t, issued as i64 - 300_001)
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
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
