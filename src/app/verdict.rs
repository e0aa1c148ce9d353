//! The decision use cases: an experiment's verdict under its stopping rule
//! (GetVerdict), the canary gate (Gate), and the list view's per-experiment
//! facts (ListExperiments). The math is in [`crate::bandit::verdict`].

use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::bandits::Bandits;
use super::now_ms;
use super::page::{Page, PageRequest};
use crate::bandit::verdict::{self, ArmFacts, GateAnswer, GateQuestion, JointStats, Status};
use crate::bandit::{ExperimentDef, Model, Posterior, thompson};
use crate::error::Error;
use crate::name;
use crate::store::ExperimentState;

/// One arm in a verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmVerdict {
    pub name: String,
    pub prob_best: f64,
    pub expected_loss: f64,
    pub rewards: u64,
}

/// What GetVerdict answers.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictView {
    pub status: Status,
    pub winner: Option<String>,
    pub reason: String,
    pub arms: Vec<ArmVerdict>,
}

/// What Gate is asked (proto defaults still in: 0 = default).
#[derive(Clone, Debug, PartialEq)]
pub struct GateRequest {
    pub experiment: String,
    pub baseline: String,
    pub candidate: String,
    pub margin: f64,
    pub slo: Option<f64>,
    pub min_rewards: u64,
    pub confidence: f64,
}

/// Rewards each arm needs before a PASS when the request says 0.
pub const DEFAULT_GATE_MIN_REWARDS: u64 = 100;
/// The gate's confidence when the request says 0.
pub const DEFAULT_GATE_CONFIDENCE: f64 = 0.95;

/// What Gate answers.
#[derive(Clone, Debug, PartialEq)]
pub struct GateView {
    pub answer: GateAnswer,
    pub baseline_rewards: u64,
    pub candidate_rewards: u64,
}

/// One experiment in a list page.
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    pub name: String,
    pub model: Model,
    pub active_arms: u32,
    pub rewards: u64,
    pub status: Status,
    pub description: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A page of names with each experiment's listing.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentPage {
    pub page: Page,
    pub listings: Vec<Listing>,
}

/// Joint draws per experiment for a list page's statuses: a page holds up to
/// 1,000 experiments, so a list pays at most 10⁷ single draws (~0.2 s on
/// one core, on the blocking pool). 1,000 joint draws put P(best) within
/// ±0.7% (one s.e. at 0.95), so a status in a list can differ from
/// GetVerdict's (10,000 draws) only for a leader right at the threshold.
const LISTING_DRAW_BUDGET: usize = 10_000;
const LISTING_MAX_DRAWS: usize = 1_000;
/// Store reads in flight while a list page is filled.
const LISTING_READS_IN_FLIGHT: usize = 32;
/// Joint draws at a snapshot refresh of an EXPLOIT experiment: refresh runs
/// on the Choose path's threads (at most every half staleness bound), so it
/// stays under ~10⁵ single draws (~2 ms).
pub const SNAPSHOT_DRAW_BUDGET: usize = 100_000;
pub const SNAPSHOT_MAX_DRAWS: usize = 4_000;

fn draws_within(budget: usize, max: usize, arms: usize) -> usize {
    if arms == 0 {
        return 0;
    }
    (budget / arms).clamp(100, max)
}

/// The joint statistics of `def`'s active arms under its goal and control.
pub fn stats_of(def: &ExperimentDef, posteriors: &[Posterior], draws: usize) -> JointStats {
    let active = def.active_arms();
    let control = def
        .design
        .control_arm
        .as_deref()
        .and_then(|c| def.arm_index(c));
    let mut rng = SmallRng::from_rng(&mut rand::rng());
    verdict::joint_stats(
        posteriors,
        &active,
        def.design.goal,
        control,
        draws,
        &mut rng,
    )
}

/// The verdict of an experiment from its state at `now`.
pub fn verdict_of(
    state: &ExperimentState,
    now: i64,
    budget: usize,
    max_draws: usize,
) -> (verdict::Verdict, JointStats) {
    let def = &state.def;
    let posteriors: Vec<Posterior> = def
        .posteriors_at(&state.evidence, now)
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let draws = draws_within(budget, max_draws, def.active_arms().len());
    let stats = stats_of(def, &posteriors, draws);
    let facts: Vec<ArmFacts<'_>> = def
        .arms
        .iter()
        .zip(&state.evidence)
        .map(|(a, e)| ArmFacts {
            name: &a.name,
            rewards: e.count,
            active: !a.retired,
        })
        .collect();
    let age = (now - def.created_ms).max(0) as f64 / 1000.0;
    (
        verdict::decide(&def.design.stopping, &facts, &stats, age),
        stats,
    )
}

fn arm_not_found(field: &str, arm: &str, experiment: &str) -> Error {
    Error::not_found(format!(
        "{field}: arm {arm:?} is not in experiment {experiment:?}"
    ))
}

impl Bandits {
    /// The experiment's verdict under its stopping rule.
    pub async fn verdict(&self, name: &str) -> Result<VerdictView, Error> {
        let state = self.load("name", name).await?;
        let max_draws = self.settings.prob_best_draws;
        tokio::task::spawn_blocking(move || {
            let (v, stats) = verdict_of(
                &state,
                now_ms(),
                thompson::PROB_BEST_DRAW_BUDGET,
                max_draws.min(thompson::PROB_BEST_DRAWS),
            );
            let def = &state.def;
            VerdictView {
                status: v.status,
                winner: v.winner.map(|w| def.arms[w].name.clone()),
                reason: v.reason,
                arms: def
                    .arms
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| !a.retired)
                    .map(|(i, a)| ArmVerdict {
                        name: a.name.clone(),
                        prob_best: stats.prob_best[i],
                        expected_loss: stats.expected_loss[i],
                        rewards: state.evidence[i].count,
                    })
                    .collect(),
            }
        })
        .await
        .map_err(|e| Error::internal(format!("verdict task: {e}")))
    }

    /// The canary gate: may the candidate replace the baseline?
    pub async fn gate(&self, r: &GateRequest) -> Result<GateView, Error> {
        name::validate("experiment", &r.experiment).map_err(Error::invalid)?;
        name::validate("baseline", &r.baseline).map_err(Error::invalid)?;
        name::validate("candidate", &r.candidate).map_err(Error::invalid)?;
        if r.baseline == r.candidate {
            return Err(Error::invalid(format!(
                "candidate: must differ from baseline (both {:?})",
                r.candidate
            )));
        }
        if !(r.margin.is_finite() && r.margin >= 0.0) {
            return Err(Error::invalid(format!(
                "margin: must be a finite number ≥ 0 (reward units the candidate may be worse by), got {}",
                r.margin
            )));
        }
        if let Some(s) = r.slo
            && !s.is_finite()
        {
            return Err(Error::invalid(format!(
                "slo: must be a finite number, got {s}"
            )));
        }
        let confidence = if r.confidence == 0.0 {
            DEFAULT_GATE_CONFIDENCE
        } else {
            r.confidence
        };
        if !(confidence > 0.5 && confidence < 1.0) {
            return Err(Error::invalid(format!(
                "confidence: must be in (0.5, 1) (0 means the default {DEFAULT_GATE_CONFIDENCE}), got {}",
                r.confidence
            )));
        }
        let min_rewards = if r.min_rewards == 0 {
            DEFAULT_GATE_MIN_REWARDS
        } else {
            r.min_rewards
        };
        let state = self.load("experiment", &r.experiment).await?;
        let def = &state.def;
        let b = def
            .arm_index(&r.baseline)
            .ok_or_else(|| arm_not_found("baseline", &r.baseline, &def.name))?;
        let c = def
            .arm_index(&r.candidate)
            .ok_or_else(|| arm_not_found("candidate", &r.candidate, &def.name))?;
        let posteriors = def.posteriors_at(&state.evidence, now_ms());
        let (bp, cp) = (posteriors[b].1, posteriors[c].1);
        let (br, cr) = (state.evidence[b].count, state.evidence[c].count);
        let (goal, margin, slo) = (def.design.goal, r.margin, r.slo);
        let (bn, cn) = (r.baseline.clone(), r.candidate.clone());
        // Two 2,049-point quadratures with incomplete-beta calls: ~1 ms,
        // off the async threads all the same.
        let answer = tokio::task::spawn_blocking(move || {
            verdict::gate(&GateQuestion {
                goal,
                baseline: (&bn, &bp, br),
                candidate: (&cn, &cp, cr),
                margin,
                slo,
                min_rewards,
                confidence,
            })
        })
        .await
        .map_err(|e| Error::internal(format!("gate task: {e}")))?;
        Ok(GateView {
            answer,
            baseline_rewards: br,
            candidate_rewards: cr,
        })
    }

    /// A page of experiment names with what a list view shows of each.
    /// Experiments deleted between the name list and their read are left
    /// out of both.
    pub async fn list_detailed(&self, page: &PageRequest) -> Result<ExperimentPage, Error> {
        let page = self.list(page).await?;
        let mut states = Vec::with_capacity(page.names.len());
        for chunk in page.names.chunks(LISTING_READS_IN_FLIGHT) {
            let mut set = tokio::task::JoinSet::new();
            for (k, n) in chunk.iter().enumerate() {
                let store = self.store.clone();
                let n = n.clone();
                set.spawn(async move { (k, store.experiment(&n).await) });
            }
            let mut got: Vec<Option<ExperimentState>> = (0..chunk.len()).map(|_| None).collect();
            while let Some(r) = set.join_next().await {
                let (k, s) = r.map_err(|e| Error::internal(format!("list task: {e}")))?;
                got[k] = s?;
            }
            states.extend(got);
        }
        let listings = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            states
                .into_iter()
                .flatten()
                .map(|s| {
                    let (v, _) = verdict_of(&s, now, LISTING_DRAW_BUDGET, LISTING_MAX_DRAWS);
                    let def = s.def;
                    Listing {
                        model: def.model,
                        active_arms: def.arms.iter().filter(|a| !a.retired).count() as u32,
                        rewards: s.evidence.iter().map(|e| e.count).sum(),
                        status: v.status,
                        description: def.design.description,
                        labels: def.design.labels,
                        name: def.name,
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::internal(format!("list task: {e}")))?;
        let names = listings.iter().map(|l| l.name.clone()).collect();
        Ok(ExperimentPage {
            page: Page {
                names,
                next_page_token: page.next_page_token,
            },
            listings,
        })
    }
}
