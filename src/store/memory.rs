//! In-process store: the default backend. State lives as long as the process.
//!
//! Locking: one `RwLock` over the name → experiment map (taken for writing
//! only by create and delete), and one `Mutex` per experiment (held for the
//! few hundred nanoseconds of a reward or a snapshot copy). Rewards to
//! different experiments never contend.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;

use super::{
    AssignUnit, Assignment, Created, ExperimentState, RewardOutcome, RewardUpdate, Store,
    StoreError,
};
use crate::bandit::history::HistoryPoint;
use crate::bandit::{Evidence, ExperimentDef};
use crate::bo::StudyState;

#[derive(Default)]
pub struct MemoryStore {
    experiments: RwLock<HashMap<String, Arc<Mutex<Entry>>>>,
    /// Studies change a few times an hour: one lock for all of them is enough.
    studies: Mutex<HashMap<String, StudyState>>,
    /// Sticky units' assignments: one lock (a unit's first decision only
    /// writes; repeats read).
    units: Mutex<Units>,
}

/// (experiment, incarnation id, unit) → (assignment, expiry in ms).
#[derive(Default)]
struct Units {
    map: HashMap<(String, u64, String), (Assignment, i64)>,
    /// Size at which expired entries are dropped (doubles with the live
    /// set, so the sweep costs O(1) per insert, amortized).
    prune_at: usize,
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

struct Entry {
    state: ExperimentState,
    /// Dedupe keys seen, and a min-heap of their expiries so each reward
    /// drops the expired ones in O(log n).
    seen: HashSet<[u8; 16]>,
    expiries: BinaryHeap<Reverse<(i64, [u8; 16])>>,
    /// History points by interval start (deleted with the entry).
    history: BTreeMap<i64, HistoryPoint>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&self, name: &str) -> Result<Option<Arc<Mutex<Entry>>>, StoreError> {
        let map = self.experiments.read().map_err(|_| poisoned())?;
        Ok(map.get(name).cloned())
    }
}

/// A poisoned lock means a thread panicked while holding it: a bug. Report
/// it as unavailable rather than propagate the panic into every request.
fn poisoned() -> StoreError {
    StoreError::Unavailable("in-memory store lock poisoned by an earlier panic".into())
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_experiment(
        &self,
        def: &ExperimentDef,
    ) -> Result<Created<ExperimentDef>, StoreError> {
        let mut map = self.experiments.write().map_err(|_| poisoned())?;
        if let Some(e) = map.get(&def.name) {
            let e = e.lock().map_err(|_| poisoned())?;
            return Ok(Created::Exists(Box::new(e.state.def.clone())));
        }
        let entry = Entry {
            state: ExperimentState {
                def: def.clone(),
                evidence: vec![Evidence::default(); def.arms.len()],
            },
            seen: HashSet::new(),
            expiries: BinaryHeap::new(),
            history: BTreeMap::new(),
        };
        map.insert(def.name.clone(), Arc::new(Mutex::new(entry)));
        Ok(Created::Created)
    }

    async fn experiment(&self, name: &str) -> Result<Option<ExperimentState>, StoreError> {
        match self.entry(name)? {
            None => Ok(None),
            Some(e) => Ok(Some(e.lock().map_err(|_| poisoned())?.state.clone())),
        }
    }

    async fn list_experiments(&self) -> Result<Vec<String>, StoreError> {
        let map = self.experiments.read().map_err(|_| poisoned())?;
        let mut names: Vec<String> = map.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    async fn delete_experiment(&self, name: &str) -> Result<bool, StoreError> {
        let mut map = self.experiments.write().map_err(|_| poisoned())?;
        Ok(map.remove(name).is_some())
    }

    async fn update_definition(
        &self,
        old: &ExperimentDef,
        new: &ExperimentDef,
    ) -> Result<bool, StoreError> {
        let Some(e) = self.entry(&old.name)? else {
            return Ok(false);
        };
        let mut e = e.lock().map_err(|_| poisoned())?;
        if &e.state.def != old {
            return Ok(false);
        }
        e.state.def = new.clone();
        let n = new.arms.len();
        e.state.evidence.resize(n, Evidence::default());
        Ok(true)
    }

    async fn reward(&self, u: &RewardUpdate) -> Result<RewardOutcome, StoreError> {
        let gone = || {
            StoreError::NotFound(format!(
                "experiment: {:?} not found (deleted?)",
                u.experiment
            ))
        };
        let e = self.entry(&u.experiment)?.ok_or_else(gone)?;
        let mut e = e.lock().map_err(|_| poisoned())?;
        if e.state.def.id != u.experiment_id {
            return Err(gone());
        }
        if u.arm >= e.state.evidence.len() {
            return Err(StoreError::NotFound(format!(
                "arm: index {} not in {:?}",
                u.arm, u.experiment
            )));
        }
        if let Some(d) = &u.dedupe {
            // Forget keys whose window has passed, soonest expiry first.
            while let Some(&Reverse((exp, key))) = e.expiries.peek() {
                if exp > u.now_ms {
                    break;
                }
                e.expiries.pop();
                e.seen.remove(&key);
            }
            if !e.seen.insert(d.key) {
                return Ok(RewardOutcome::Duplicate);
            }
            e.expiries.push(Reverse((d.expire_at_ms, d.key)));
        }
        let ev = e.state.evidence[u.arm].apply(u.delta, u.now_ms, u.half_life_ms);
        e.state.evidence[u.arm] = ev;
        Ok(RewardOutcome::Applied)
    }

    async fn create_study(&self, study: &StudyState) -> Result<Created<StudyState>, StoreError> {
        let mut map = self.studies.lock().map_err(|_| poisoned())?;
        if let Some(s) = map.get(&study.def.name) {
            return Ok(Created::Exists(Box::new(s.clone())));
        }
        map.insert(study.def.name.clone(), study.clone());
        Ok(Created::Created)
    }

    async fn study(&self, name: &str) -> Result<Option<StudyState>, StoreError> {
        Ok(self
            .studies
            .lock()
            .map_err(|_| poisoned())?
            .get(name)
            .cloned())
    }

    async fn save_study(&self, study: &StudyState) -> Result<bool, StoreError> {
        let mut map = self.studies.lock().map_err(|_| poisoned())?;
        match map.get_mut(&study.def.name) {
            Some(cur) if cur.revision + 1 == study.revision => {
                *cur = study.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn list_studies(&self) -> Result<Vec<String>, StoreError> {
        let mut names: Vec<String> = self
            .studies
            .lock()
            .map_err(|_| poisoned())?
            .keys()
            .cloned()
            .collect();
        names.sort();
        Ok(names)
    }

    async fn delete_study(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .studies
            .lock()
            .map_err(|_| poisoned())?
            .remove(name)
            .is_some())
    }

    async fn shared_secret(&self, proposed: &[u8]) -> Result<Vec<u8>, StoreError> {
        Ok(proposed.to_vec())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn assign_unit(&self, a: &AssignUnit<'_>) -> Result<Assignment, StoreError> {
        let now = wall_ms();
        let mut units = self.units.lock().map_err(|_| poisoned())?;
        let key = (
            a.experiment.to_string(),
            a.experiment_id,
            a.unit.to_string(),
        );
        if let Some(&(cur, expires)) = units.map.get(&key)
            && expires > now
            && Some(cur.arm) != a.replace
        {
            return Ok(cur);
        }
        let expires = now.saturating_add(i64::try_from(a.ttl_ms).unwrap_or(i64::MAX));
        units.map.insert(key, (a.proposed, expires));
        if units.map.len() >= units.prune_at {
            units.map.retain(|_, (_, e)| *e > now);
            let live = units.map.len();
            units.prune_at = (2 * live).max(1024);
        }
        Ok(a.proposed)
    }

    async fn append_history(
        &self,
        experiment: &str,
        point: &HistoryPoint,
        retention_points: usize,
    ) -> Result<bool, StoreError> {
        let point = super::stored_form(point)?;
        let e = self.entry(experiment)?.ok_or_else(|| {
            StoreError::NotFound(format!("experiment: {experiment:?} not found (deleted?)"))
        })?;
        let mut e = e.lock().map_err(|_| poisoned())?;
        if let Some(cur) = e.history.get_mut(&point.time_ms) {
            cur.add_decisions(&point);
            return Ok(false);
        }
        e.history.insert(point.time_ms, point);
        while e.history.len() > retention_points.max(1) {
            e.history.pop_first();
        }
        Ok(true)
    }

    async fn history(
        &self,
        experiment: &str,
        since_ms: Option<i64>,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let Some(e) = self.entry(experiment)? else {
            return Ok(Vec::new());
        };
        let e = e.lock().map_err(|_| poisoned())?;
        Ok(e.history
            .range(since_ms.unwrap_or(i64::MIN)..)
            .map(|(_, p)| p.clone())
            .collect())
    }
}
