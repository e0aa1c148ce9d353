//! The Bayesian-optimization use cases, once for both transports: studies,
//! Suggest and Observe.
//!
//! A study is one record in the store with a revision number. Suggest and
//! Observe read it, change it with the pure `bo` domain, bump the revision
//! and save it with a compare-and-set on the revision, retrying on a lost
//! race: two replicas never hand out the same pending trial nor complete a
//! trial twice. Within one process, changes to one study are serialized by a
//! per-study lock so concurrent workers don't waste GP fits on lost races.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use super::now_ms;
use super::page::{Page, PageRequest};
use crate::bo::{Best, StudyDef, StudyState, Trial};
use crate::error::Error;
use crate::name;
use crate::store::{Created, Store, StoreError};

/// Compare-and-set attempts per request. Each retry means another replica
/// saved this study in between; a handful covers any sane number of workers.
const MAX_SAVE_RETRIES: usize = 16;

/// An observation as a caller sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub study: String,
    pub trial_id: u64,
    pub value: f64,
    pub metrics: BTreeMap<String, f64>,
    /// The run failed: the configuration is infeasible.
    pub failed: bool,
}

/// A study with its best observed trial and the model's recommendation
/// (computed here, on the blocking pool: it conditions a GP).
#[derive(Clone, Debug)]
pub struct StudyView {
    pub state: StudyState,
    pub best: Option<Best>,
}

/// GetStudySlices: the study and its slices (`None` until a completed
/// feasible trial exists).
#[derive(Clone, Debug)]
pub struct SlicesView {
    pub state: StudyState,
    pub slices: Option<crate::bo::slices::Slices>,
}

/// The study use cases over one store.
pub struct Studies {
    store: Arc<dyn Store>,
    /// One async lock per study name (entries are removed on delete). A
    /// tokio mutex: it is held across the store read, the GP fit and the save.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn not_found(field: &str, name: &str) -> Error {
    Error::not_found(format!("{field}: study {name:?} not found"))
}

impl Studies {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Studies {
            store,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock_for(&self, study: &str) -> Arc<tokio::sync::Mutex<()>> {
        // Poisoning only means a panic elsewhere; the map stays valid.
        let mut m = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(study.to_string()).or_default().clone()
    }

    async fn load(&self, field: &str, name: &str) -> Result<StudyState, Error> {
        name::validate(field, name).map_err(Error::invalid)?;
        self.store
            .study(name)
            .await?
            .ok_or_else(|| not_found(field, name))
    }

    /// Read-modify-write of one study: `change` runs on a blocking thread
    /// (it may fit a GP); the revision is bumped here and the save is a
    /// compare-and-set on it.
    async fn update<T: Send + 'static>(
        &self,
        study: &str,
        change: impl Fn(&mut StudyState) -> Result<T, Error> + Send + Sync + Clone + 'static,
    ) -> Result<T, Error> {
        let lock = self.lock_for(study);
        let _held = lock.lock().await;
        for _ in 0..MAX_SAVE_RETRIES {
            let state = self.load("study", study).await?;
            let f = change.clone();
            let (state, out) = tokio::task::spawn_blocking(move || {
                let mut state = state;
                let out = f(&mut state)?;
                state.revision += 1;
                Ok::<_, Error>((state, out))
            })
            .await
            .map_err(|e| Error::internal(format!("study task: {e}")))??;
            if self.store.save_study(&state).await? {
                return Ok(out);
            }
        }
        Err(StoreError::Conflict(format!("study {study:?}")).into())
    }

    /// Create a study from a validated definition; an identical re-create
    /// answers the existing one with `created = false`.
    pub async fn create(&self, def: StudyDef) -> Result<(StudyDef, bool), Error> {
        let state = StudyState::new(def);
        match self.store.create_study(&state).await? {
            Created::Created => {
                tracing::info!(study = %state.def.name, dims = state.def.spec.space.parameters.len(), "study created");
                Ok((state.def, true))
            }
            Created::Exists(existing) if existing.def == state.def => Ok((existing.def, false)),
            Created::Exists(_) => Err(Error::already_exists(format!(
                "name: study {:?} already exists with a different definition (delete it first, or use another name)",
                state.def.name
            ))),
        }
    }

    /// The study, its best trial and the recommendation.
    pub async fn get(&self, name: &str) -> Result<StudyView, Error> {
        let state = self.load("name", name).await?;
        // The recommendation conditions a GP: off the async threads.
        tokio::task::spawn_blocking(move || {
            let best = state.best();
            StudyView { state, best }
        })
        .await
        .map_err(|e| Error::internal(format!("get_study task: {e}")))
    }

    /// The objective's slices through the recommended configuration,
    /// `points` values along each numeric parameter (absent: 50).
    pub async fn slices(&self, name: &str, points: Option<i32>) -> Result<SlicesView, Error> {
        use crate::bo::slices::{DEFAULT_SLICE_POINTS, MAX_SLICE_POINTS, MIN_SLICE_POINTS};
        let points = match points {
            None => DEFAULT_SLICE_POINTS,
            Some(p)
                if (MIN_SLICE_POINTS as i64..=MAX_SLICE_POINTS as i64).contains(&(p as i64)) =>
            {
                p as usize
            }
            Some(p) => {
                return Err(Error::invalid(format!(
                    "points: must be between {MIN_SLICE_POINTS} and {MAX_SLICE_POINTS}, got {p}"
                )));
            }
        };
        let state = self.load("name", name).await?;
        // Conditions a GP and predicts up to 32,000 points: off the async threads.
        tokio::task::spawn_blocking(move || {
            let slices = state.slices(points);
            SlicesView { state, slices }
        })
        .await
        .map_err(|e| Error::internal(format!("slices task: {e}")))
    }

    /// A page of study names.
    pub async fn list(&self, page: &PageRequest) -> Result<Page, Error> {
        Ok(page.apply(self.store.list_studies().await?))
    }

    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        name::validate("name", name).map_err(Error::invalid)?;
        if !self.store.delete_study(name).await? {
            return Err(not_found("name", name));
        }
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        Ok(())
    }

    /// Up to `count` new pending trials (0 means 1).
    pub async fn suggest(&self, study: &str, count: u32) -> Result<Vec<Trial>, Error> {
        let count = count.max(1) as usize;
        let now = now_ms();
        self.update(study, move |s| {
            if s.exhausted() {
                return Err(Error::failed_precondition(format!(
                    "study: {:?} has suggested every configuration of its finite search space (exhausted)",
                    s.def.name
                )));
            }
            Ok(s.suggest(count, now)?)
        })
        .await
    }

    /// Complete (or fail) a pending trial.
    pub async fn observe(&self, o: Observation) -> Result<Trial, Error> {
        let now = now_ms();
        let study = o.study.clone();
        self.update(&study, move |s| {
            Ok(
                s.observe(o.trial_id, o.value, o.metrics.clone(), o.failed, now)?
                    .clone(),
            )
        })
        .await
    }
}
