//! The periodic task behind the per-arm posterior gauges
//! (`posterior_arm_mean`, `_interval_width`, `_prob_best`, `_evidence`) and
//! `posterior_experiments_with_winner`.
//!
//! Why a task and not the Choose path: P(best) and the verdict take Monte
//! Carlo draws, and an idle experiment has no snapshot refreshes at all;
//! here each labelled experiment costs one store read and a bounded number
//! of draws (the snapshot's EXPLOIT budget) every `metrics.refresh_seconds`,
//! whatever the traffic. Only experiments with their own `experiment` label
//! (the first `metrics.max_experiments` to get a decision or a reward on
//! this replica since start-up, see `telemetry`) are read, so the cost and
//! the series are bounded, and the labels stay with the experiments that
//! have traffic. Experiments deleted through another
//! replica lose their gauges here at the next refresh (through this one, at
//! once: `Bandits::delete`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::now_ms;
use super::verdict::{SNAPSHOT_DRAW_BUDGET, SNAPSHOT_MAX_DRAWS, verdict_of};
use crate::bandit::verdict::Status;
use crate::store::{ExperimentState, Store};
use crate::telemetry::{ArmGauges, Telemetry};

/// Refresh the gauges every `period` until the returned task is aborted.
pub fn spawn(
    store: Arc<dyn Store>,
    telemetry: Arc<Telemetry>,
    period: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        // A refresh slower than the period (a slow store) delays the next
        // one rather than bunching them up.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shown = BTreeSet::new();
        loop {
            tick.tick().await;
            refresh(&*store, &telemetry, &mut shown).await;
        }
    })
}

/// One refresh. `shown` holds the experiments that have gauges; those no
/// longer listed (deleted elsewhere) lose them. Store errors leave the
/// last values in place (the store timing already set `posterior_store_up`).
pub async fn refresh(store: &dyn Store, telemetry: &Telemetry, shown: &mut BTreeSet<String>) {
    let names = match store.list_experiments().await {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, "arm gauges: cannot list experiments");
            return;
        }
    };
    let listed: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    shown.retain(|n| {
        let keep = listed.contains(n.as_str());
        if !keep {
            telemetry.forget_experiment(n);
        }
        keep
    });
    let mut winners = 0u64;
    for name in &names {
        let Some(m) = telemetry.labelled_experiment(name) else {
            // No traffic here since start-up, or beyond the label cap:
            // neither read nor counted.
            continue;
        };
        let removals = crate::telemetry::gauges::global().removals();
        let state = match store.experiment(name).await {
            Ok(Some(s)) => s,
            // Deleted since the listing; the next refresh forgets it.
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(experiment = %name, error = %e, "arm gauges: cannot read");
                return;
            }
        };
        // Draws are CPU work: off the async threads.
        let Ok((arms, winner)) = tokio::task::spawn_blocking(move || figures(&state)).await else {
            continue;
        };
        let gauges: Vec<ArmGauges<'_>> = arms
            .iter()
            .map(|(arm, g)| ArmGauges {
                arm: arm.as_str(),
                ..*g
            })
            .collect();
        telemetry.record_arms(&m, &gauges, removals);
        shown.insert(name.clone());
        winners += u64::from(winner);
    }
    telemetry.experiments_with_winner.set(winners as f64);
}

/// Each arm's figures (arm name apart, for the borrow) and whether the
/// verdict under the experiment's stopping rule is WINNER.
fn figures(state: &ExperimentState) -> (Vec<(String, ArmGauges<'static>)>, bool) {
    let now = now_ms();
    let def = &state.def;
    let (verdict, stats) = verdict_of(state, now, SNAPSHOT_DRAW_BUDGET, SNAPSHOT_MAX_DRAWS);
    let arms = def
        .arms
        .iter()
        .zip(def.posteriors_at(&state.evidence, now))
        .enumerate()
        .map(|(i, (arm, (e, p)))| {
            let (lo, hi) = p.credible_interval(0.95);
            (
                arm.name.clone(),
                ArmGauges {
                    arm: "",
                    mean: p.mean(),
                    interval_width: hi - lo,
                    prob_best: stats.prob_best.get(i).copied().unwrap_or(0.0),
                    evidence: e.weight(def.model),
                },
            )
        })
        .collect();
    (arms, verdict.status == Status::Winner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bandit::{Model, NewExperiment};
    use crate::store::RewardUpdate;
    use crate::store::memory::MemoryStore;
    use crate::telemetry::gauges;

    #[tokio::test]
    async fn gauges_follow_the_posteriors_and_go_with_the_experiment() {
        let store = MemoryStore::new();
        let def = NewExperiment {
            name: "arm-metrics-unit".into(),
            model: Model::Bernoulli,
            prior: None,
            half_life_seconds: 0.0,
            arms: vec!["a".into(), "b".into()],
            design: Default::default(),
        }
        .into_def(7)
        .unwrap();
        store.create_experiment(&def).await.unwrap();
        // 3 successes, 1 failure on arm a: Beta(1+3, 1+1), mean 4/6.
        for v in [1.0, 1.0, 1.0, 0.0] {
            store
                .reward(&RewardUpdate {
                    experiment: def.name.clone(),
                    experiment_id: def.id,
                    arm: 0,
                    delta: def.model.delta(v).unwrap(),
                    now_ms: now_ms(),
                    half_life_ms: def.half_life_ms(),
                    dedupe: None,
                })
                .await
                .unwrap();
        }
        let t = Telemetry::new(true);
        let mut shown = BTreeSet::new();
        let g = gauges::global();
        // No traffic on this replica yet: no label, no gauges.
        refresh(&store, &t, &mut shown).await;
        assert!(shown.is_empty());
        // A decision or reward here labels it (as Choose and Reward do).
        t.experiment("arm-metrics-unit");
        refresh(&store, &t, &mut shown).await;
        let get = |name: &str, arm: &str| {
            g.get(name, &[("experiment", "arm-metrics-unit"), ("arm", arm)])
        };
        // Closed forms: Beta(4, 2) has mean 2/3; Beta(1, 1) mean 1/2 and a
        // 95% interval [0.025, 0.975] of width 0.95.
        assert!((get("posterior_arm_mean", "a").unwrap() - 4.0 / 6.0).abs() < 1e-12);
        assert!((get("posterior_arm_mean", "b").unwrap() - 0.5).abs() < 1e-12);
        assert!((get("posterior_arm_interval_width", "b").unwrap() - 0.95).abs() < 1e-9);
        assert_eq!(get("posterior_arm_evidence", "a"), Some(4.0));
        assert_eq!(get("posterior_arm_evidence", "b"), Some(0.0));
        let (pa, pb) = (
            get("posterior_arm_prob_best", "a").unwrap(),
            get("posterior_arm_prob_best", "b").unwrap(),
        );
        assert!((pa + pb - 1.0).abs() < 1e-9 && pa > pb, "{pa} {pb}");
        // Deleted (as by another replica): gone at the next refresh.
        store.delete_experiment("arm-metrics-unit").await.unwrap();
        refresh(&store, &t, &mut shown).await;
        assert_eq!(get("posterior_arm_mean", "a"), None);
        assert!(shown.is_empty());
    }
}
