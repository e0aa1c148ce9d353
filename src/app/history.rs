//! Experiment history: every `history.interval_seconds` one point per
//! experiment (every arm's posterior summary and the decisions served
//! since the previous point), and GetExperimentHistory.
//!
//! **Decisions** are counted in memory by each replica ([`DecisionTally`]:
//! one atomic add per Choose, reached through the Choose snapshot, so Choose
//! still writes nothing to the store) and handed to the store once per
//! interval.
//!
//! **One point per interval, whatever the number of replicas.** Every
//! replica wakes at the interval boundaries of the wall clock and records
//! the point of that boundary: `time_ms = round(now / interval) × interval`,
//! the same for replicas whose clocks agree within half an interval. The
//! store's `append_history` creates the point if the interval has none
//! (the first replica's posterior summary) or adds this replica's decision
//! counts to it (the others), in one atomic step (a Lua script on Redis, a
//! write transaction on redb). A recording that fails (store down) puts its
//! counts back, so they land in the next point.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::bandits::summarize;
use super::now_ms;
use crate::bandit::Posterior;
use crate::bandit::history::{self, ArmPoint, HistoryPoint};
use crate::error::Error;
use crate::name;
use crate::store::{Store, StoreError};
use crate::telemetry::Telemetry;

/// Default of `history.interval_seconds`: a point a minute.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 60;
/// Default of `history.retention_points`: a week at one minute.
pub const DEFAULT_RETENTION_POINTS: usize = 10_080;

/// Arm-points (points × arms) in one GetExperimentHistory answer: ~70
/// bytes each on the wire, so ≤ ~1.4 MB, well inside the default 4 MiB
/// message limit. Longer ranges are merged (see
/// [`history::downsample`]): a week at one minute of a 10-arm experiment
/// comes back as 2,000 points of ~5 minutes.
pub const MAX_ARM_POINTS_PER_RESPONSE: usize = 20_000;

/// Decisions served per arm of one experiment since the last recording.
#[derive(Default)]
pub struct ArmCounts {
    /// Grows when arms are added (rare: under the write lock); Choose takes
    /// the read lock and one atomic add.
    counts: RwLock<Vec<AtomicU64>>,
}

impl ArmCounts {
    /// One decision for `arm`.
    pub fn add(&self, arm: usize) {
        {
            let counts = self.counts.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = counts.get(arm) {
                c.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut counts = self.counts.write().unwrap_or_else(|p| p.into_inner());
        while counts.len() <= arm {
            counts.push(AtomicU64::new(0));
        }
        counts[arm].fetch_add(1, Ordering::Relaxed);
    }

    /// Take the counts (each reset to zero atomically: a concurrent add
    /// lands either here or in the next drain, never nowhere).
    fn drain(&self) -> Vec<u64> {
        let counts = self.counts.read().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect()
    }

    /// Put counts back (a recording that did not reach the store).
    fn restore(&self, taken: &[u64]) {
        for (arm, &n) in taken.iter().enumerate() {
            if n > 0 {
                // add() grows the vector if needed; then add the rest.
                self.add(arm);
                let counts = self.counts.read().unwrap_or_else(|p| p.into_inner());
                counts[arm].fetch_add(n - 1, Ordering::Relaxed);
            }
        }
    }
}

/// This replica's decision counters, by experiment name. Snapshots hold
/// their experiment's [`ArmCounts`], so Choose never looks a name up here.
#[derive(Default)]
pub struct DecisionTally {
    experiments: RwLock<HashMap<String, Arc<ArmCounts>>>,
}

impl DecisionTally {
    /// The counters of `name` (created on first use).
    pub fn experiment(&self, name: &str) -> Arc<ArmCounts> {
        if let Some(c) = self
            .experiments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return c.clone();
        }
        self.experiments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn drain(&self, name: &str) -> Vec<u64> {
        let counts = self
            .experiments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        counts.map(|c| c.drain()).unwrap_or_default()
    }

    /// Forget experiments that no longer exist, unless a snapshot still
    /// holds their counters (it may be about to count into them).
    fn retain(&self, live: &HashSet<&str>) {
        self.experiments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, c| live.contains(name.as_str()) || Arc::strong_count(c) > 1);
    }
}

/// `[history]` settings, checked.
#[derive(Clone, Debug)]
pub struct HistorySettings {
    pub interval_ms: i64,
    pub retention_points: usize,
    /// Joint draws behind P(best) (bandit.prob_best_draws).
    pub prob_best_draws: usize,
}

/// The recording loop of one replica.
pub struct HistoryRecorder {
    store: Arc<dyn Store>,
    tally: Arc<DecisionTally>,
    settings: HistorySettings,
    telemetry: Arc<Telemetry>,
    /// Each experiment's posteriors at this replica's previous recording
    /// (with the incarnation id): the drift gauge's other end.
    previous: Mutex<HashMap<String, (u64, Vec<Posterior>)>>,
}

/// What one recording round did (for logs and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// Points this replica created.
    pub created: usize,
    /// Points another replica had created: only decisions added.
    pub merged: usize,
    pub failed: usize,
}

impl HistoryRecorder {
    pub fn new(
        store: Arc<dyn Store>,
        tally: Arc<DecisionTally>,
        settings: HistorySettings,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        HistoryRecorder {
            store,
            tally,
            settings,
            telemetry,
            previous: Mutex::new(HashMap::new()),
        }
    }

    /// Record at every interval boundary of the wall clock, forever (the
    /// server aborts the task at shutdown).
    pub async fn run(self: Arc<Self>) {
        let interval = self.settings.interval_ms.max(1);
        loop {
            let now = now_ms();
            let next = (now / interval + 1) * interval;
            tokio::time::sleep(Duration::from_millis((next - now).max(0) as u64)).await;
            // Round, not floor: a timer that fires a little early or late
            // still names the boundary it was set for.
            let now = now_ms();
            let time_ms = ((now + interval / 2) / interval) * interval;
            let r = self.record(time_ms).await;
            tracing::debug!(time_ms, ?r, "history recorded");
        }
    }

    /// One point per experiment at `time_ms`.
    pub async fn record(&self, time_ms: i64) -> Result<Recorded, Error> {
        let names = self.store.list_experiments().await?;
        self.tally
            .retain(&names.iter().map(String::as_str).collect::<HashSet<_>>());
        let mut done = Recorded::default();
        for name in &names {
            match self.record_one(name, time_ms).await {
                Ok(Some(true)) => done.created += 1,
                Ok(Some(false)) => done.merged += 1,
                Ok(None) => {}
                Err(e) => {
                    done.failed += 1;
                    tracing::warn!(experiment = %name, error = %e, "history point not recorded");
                }
            }
        }
        self.previous
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|n, _| names.binary_search(n).is_ok());
        Ok(done)
    }

    async fn record_one(&self, name: &str, time_ms: i64) -> Result<Option<bool>, StoreError> {
        let Some(state) = self.store.experiment(name).await? else {
            return Ok(None);
        };
        let id = state.def.id;
        let decisions = self.tally.drain(name);
        let draws = self.settings.prob_best_draws;
        let d = decisions.clone();
        // P(best) draws are CPU work: on the blocking pool.
        let summary = tokio::task::spawn_blocking(move || summarize(state, None, draws))
            .await
            .map_err(|e| StoreError::Unavailable(format!("history task: {e}")))?;
        let point = HistoryPoint {
            time_ms,
            arms: summary
                .arms
                .iter()
                .enumerate()
                .map(|(i, a)| ArmPoint {
                    name: a.name.clone(),
                    rewards: a.rewards,
                    evidence: a.evidence,
                    mean: a.mean,
                    lower: a.lower,
                    upper: a.upper,
                    prob_best: a.prob_best,
                    decisions: d.get(i).copied().unwrap_or(0),
                })
                .collect(),
        };
        let created = match self
            .store
            .append_history(name, &point, self.settings.retention_points)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                self.tally.experiment(name).restore(&decisions);
                return Err(e);
            }
        };
        let posteriors: Vec<Posterior> = summary.arms.iter().map(|a| a.posterior).collect();
        let mut previous = self.previous.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((prev_id, prev)) = previous.get(name)
            && *prev_id == id
        {
            self.telemetry
                .record_drift(name, history::drift(prev, &posteriors));
        }
        previous.insert(name.to_string(), (id, posteriors));
        Ok(Some(created))
    }
}

impl super::Bandits {
    /// GetExperimentHistory: the points since `since_ms` (all without), at
    /// most [`MAX_ARM_POINTS_PER_RESPONSE`] arm-points (merged beyond).
    pub async fn history(
        &self,
        name: &str,
        since_ms: Option<i64>,
    ) -> Result<Vec<HistoryPoint>, Error> {
        experiment_history(self.store.as_ref(), name, since_ms).await
    }

    /// This replica's decision counters (the recorder drains them).
    pub fn decision_tally(&self) -> Arc<DecisionTally> {
        self.cache.tally().clone()
    }
}

async fn experiment_history(
    store: &dyn Store,
    name: &str,
    since_ms: Option<i64>,
) -> Result<Vec<HistoryPoint>, Error> {
    name::validate("name", name).map_err(Error::invalid)?;
    if let Some(s) = since_ms
        && s < 0
    {
        return Err(Error::invalid(format!(
            "since_ms: must be a Unix time in milliseconds (>= 0), got {s}"
        )));
    }
    let Some(state) = store.experiment(name).await? else {
        return Err(Error::not_found(format!(
            "name: experiment {name:?} not found"
        )));
    };
    let points = store.history(name, since_ms).await?;
    let arms = state.def.arms.len().max(1);
    Ok(history::downsample(
        points,
        MAX_ARM_POINTS_PER_RESPONSE / arms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_survive_growth_drain_and_restore() {
        let c = ArmCounts::default();
        c.add(0);
        c.add(3);
        c.add(3);
        assert_eq!(c.drain(), vec![1, 0, 0, 2]);
        assert_eq!(c.drain(), vec![0, 0, 0, 0]);
        c.restore(&[5, 0, 0, 1, 2]);
        c.add(0);
        assert_eq!(c.drain(), vec![6, 0, 0, 1, 2]);
    }

    #[test]
    fn the_tally_forgets_only_unheld_deleted_experiments() {
        let t = DecisionTally::default();
        let held = t.experiment("a");
        t.experiment("b").add(1);
        t.retain(&HashSet::new());
        // "a" is held by a snapshot: kept; "b" is not: gone.
        held.add(0);
        assert_eq!(t.drain("a"), vec![1]);
        assert_eq!(t.drain("b"), Vec::<u64>::new());
    }
}
