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
use crate::bo::{Best, BoError, Point, StudyDef, StudyState, Trial};
use crate::error::Error;
use crate::name;
use crate::store::{Created, Store, StoreError};
use crate::telemetry::Telemetry;

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

/// A finished trial a caller adds (AddTrial): not from Suggest.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTrial {
    pub study: String,
    pub params: Point,
    pub value: f64,
    pub metrics: BTreeMap<String, f64>,
    pub failed: bool,
}

/// A study with its best observed trial and the model's recommendation
/// (computed here, on the blocking pool: it conditions a GP).
#[derive(Clone, Debug)]
pub struct StudyView {
    pub state: StudyState,
    pub best: Option<Best>,
    /// Studies with several objectives: the Pareto front and hypervolume.
    pub front: Option<crate::bo::pareto::Front>,
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
    /// Suggest latency, GP fit time and calibration per study (no-ops
    /// unless [`Studies::with_telemetry`] is given an enabled one).
    telemetry: Arc<Telemetry>,
    /// The study revision each gauge shows: background refreshes may finish
    /// out of order, and an older revision must not overwrite a newer one.
    calibrated: Arc<Mutex<HashMap<String, u64>>>,
}

fn not_found(field: &str, name: &str) -> Error {
    Error::not_found(format!("{field}: study {name:?} not found"))
}

impl Studies {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Studies {
            store,
            locks: Mutex::new(HashMap::new()),
            telemetry: Arc::new(Telemetry::disabled()),
            calibrated: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Keep `posterior_study_calibration` current (see [`Studies::after_fit`]).
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
    }

    fn record_calibration(&self, name: &str, revision: u64, calibration: Option<f64>) {
        record_calibration(
            &self.telemetry,
            &self.calibrated,
            name,
            revision,
            calibration,
        );
    }

    /// After Suggest or Observe changed the study (new data, maybe a new
    /// fit): refresh its calibration gauge in the background (one GP
    /// conditioning on the blocking pool), only when metrics are on, so
    /// the answer never waits for it.
    fn after_fit(&self, study: &str) {
        if !self.telemetry.enabled() {
            return;
        }
        let (store, telemetry, calibrated, name) = (
            self.store.clone(),
            self.telemetry.clone(),
            self.calibrated.clone(),
            study.to_string(),
        );
        tokio::spawn(async move {
            let Ok(Some(state)) = store.study(&name).await else {
                return;
            };
            let revision = state.revision;
            let best = tokio::task::spawn_blocking(move || state.best()).await;
            if let Ok(Some(b)) = best {
                record_calibration(&telemetry, &calibrated, &name, revision, b.calibration);
            }
        });
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

    /// The study, its best trial and the recommendation. Pending trials
    /// past the study's trial timeout are abandoned first (saved, so every
    /// replica sees it), as on Suggest.
    pub async fn get(&self, name: &str) -> Result<StudyView, Error> {
        let mut state = self.load("name", name).await?;
        let now = now_ms();
        if !state.expired(now).is_empty() {
            state = self
                .update(name, move |s| {
                    s.expire(now_ms());
                    Ok(s.clone())
                })
                .await?;
            // `update` bumped the revision after the clone.
            state.revision += 1;
        }
        // The recommendation conditions a GP: off the async threads.
        let view = tokio::task::spawn_blocking(move || {
            let best = state.best();
            // O(n²) dominance checks and the hypervolume: off the async
            // threads too.
            let front = state.pareto();
            StudyView { state, best, front }
        })
        .await
        .map_err(|e| Error::internal(format!("get_study task: {e}")))?;
        self.record_calibration(
            name,
            view.state.revision,
            view.best.as_ref().and_then(|b| b.calibration),
        );
        Ok(view)
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
        let view = tokio::task::spawn_blocking(move || {
            let slices = state.slices(points);
            SlicesView { state, slices }
        })
        .await
        .map_err(|e| Error::internal(format!("slices task: {e}")))?;
        self.record_calibration(
            name,
            view.state.revision,
            view.slices.as_ref().and_then(|s| s.calibration),
        );
        Ok(view)
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
        // A re-created study starts again at revision 0.
        self.calibrated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.telemetry.forget_study(name);
        Ok(())
    }

    /// Up to `count` new pending trials (0 means 1).
    pub async fn suggest(&self, study: &str, count: u32) -> Result<Vec<Trial>, Error> {
        name::validate("study", study).map_err(Error::invalid)?;
        let count = count.max(1) as usize;
        let now = now_ms();
        let start = std::time::Instant::now();
        let out = self
            .update(study, move |s| {
                // A new fit replaces the stored hyperparameters; a Suggest
                // of the initial design (or one reusing the fit) leaves them.
                let before = s.fit.clone();
                match s.suggest(count, now) {
                    Err(BoError::SpaceExhausted) => Err(Error::failed_precondition(format!(
                        "study: {:?} has suggested every configuration of its finite search space (exhausted); abandoned trials' configurations come back",
                        s.def.name
                    ))),
                    Err(e) => Err(e.into()),
                    Ok(trials) => Ok((trials, s.fit.is_some() && s.fit != before)),
                }
            })
            .await;
        // Every outcome, errors too (a slow failure is still a slow
        // Suggest), but only for studies that exist: a label per made-up
        // name would fill the cap.
        let missing = matches!(&out, Err(e) if e.kind == crate::error::ErrorKind::NotFound);
        if !missing {
            let metrics = self.telemetry.study(study);
            metrics.suggest.record(start.elapsed().as_secs_f64());
            if let Ok((_, true)) = &out {
                self.telemetry
                    .record_fit(&metrics, now_ms() as f64 / 1000.0);
            }
        }
        let (trials, _) = out?;
        self.after_fit(study);
        Ok(trials)
    }

    /// Abandon a pending or queued trial.
    pub async fn abandon(
        &self,
        study: &str,
        trial_id: u64,
        reason: Option<String>,
    ) -> Result<Trial, Error> {
        let now = now_ms();
        self.update(study, move |s| {
            Ok(s.abandon(trial_id, reason.clone(), now)?)
        })
        .await
    }

    /// Queue a configuration for the next Suggest.
    pub async fn enqueue(&self, study: &str, params: Point) -> Result<Trial, Error> {
        let now = now_ms();
        self.update(study, move |s| Ok(s.enqueue(&params, now)?))
            .await
    }

    /// Record a finished trial that did not come from Suggest.
    pub async fn add_trial(&self, t: NewTrial) -> Result<Trial, Error> {
        let now = now_ms();
        let study = t.study.clone();
        self.update(&study, move |s| {
            Ok(s.add_trial(&t.params, t.value, t.metrics.clone(), t.failed, now)?)
        })
        .await
        .inspect(|_| self.after_fit(&study))
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
        .inspect(|_| self.after_fit(&study))
    }
}

/// Set the study's calibration gauge unless it already shows a newer
/// revision of the study.
fn record_calibration(
    telemetry: &Telemetry,
    calibrated: &Mutex<HashMap<String, u64>>,
    name: &str,
    revision: u64,
    calibration: Option<f64>,
) {
    let Some(c) = calibration else { return };
    if !telemetry.enabled() {
        return;
    }
    let mut shown = calibrated.lock().unwrap_or_else(|p| p.into_inner());
    if shown.get(name).is_some_and(|&r| r > revision) {
        return;
    }
    shown.insert(name.to_string(), revision);
    telemetry.record_calibration(name, c);
}
