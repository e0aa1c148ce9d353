//! `posterior.v1.Optimizer`: studies, Suggest and Observe.
//!
//! A study is one record in the store with a revision number. Suggest and
//! Observe read it, change it with the pure `bo` domain, and save it with a
//! compare-and-set on the revision, retrying on a lost race: two replicas
//! never hand out the same pending trial nor complete a trial twice.
//! Within one process, changes to one study are serialized by a per-study
//! lock so concurrent workers don't waste GP fits on lost races.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tonic::{Request, Response, Status};

use super::now_ms;
use super::pb;
use super::pb::optimizer_server::Optimizer;
use super::status::ApiError;
use crate::bo::{
    Acquisition, Constraint, Goal, ParamKind, ParamValue, Parameter, SearchSpace, StudyDef,
    StudySpec, StudyState, Trial, TrialState, default_n_initial,
};
use crate::name;
use crate::store::{Created, Store, StoreError};

/// Compare-and-set attempts per request. Each retry means another replica
/// saved this study in between; a handful covers any sane number of workers.
const MAX_SAVE_RETRIES: usize = 16;

pub struct OptimizerService {
    store: Arc<dyn Store>,
    /// One async lock per study name (entries are removed on delete).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl OptimizerService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        OptimizerService {
            store,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn lock_for(&self, study: &str) -> Result<Arc<tokio::sync::Mutex<()>>, ApiError> {
        let mut m = self
            .locks
            .lock()
            .map_err(|_| ApiError::Internal("study lock map poisoned".into()))?;
        Ok(m.entry(study.to_string()).or_default().clone())
    }

    async fn load(&self, field: &str, name: &str) -> Result<StudyState, ApiError> {
        name::validate(field, name).map_err(ApiError::Invalid)?;
        self.store
            .study(name)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("{field}: study {name:?} not found")))
    }

    /// Read-modify-write of one study. `change` runs on a blocking thread (it
    /// may fit a GP) and returns what the handler answers.
    async fn update<T: Send + 'static>(
        &self,
        study: &str,
        change: impl Fn(&mut StudyState) -> Result<T, ApiError> + Send + Sync + Clone + 'static,
    ) -> Result<T, ApiError> {
        let lock = self.lock_for(study)?;
        let _held = lock.lock().await;
        for _ in 0..MAX_SAVE_RETRIES {
            let state = self.load("study", study).await?;
            let f = change.clone();
            let (state, out) = tokio::task::spawn_blocking(move || {
                let mut state = state;
                let out = f(&mut state)?;
                state.revision += 1;
                Ok::<_, ApiError>((state, out))
            })
            .await
            .map_err(|e| ApiError::Internal(format!("suggest task: {e}")))??;
            if self.store.save_study(&state).await? {
                return Ok(out);
            }
        }
        Err(StoreError::Conflict(format!("study {study:?}")).into())
    }
}

fn param_from_pb(i: usize, p: pb::Parameter) -> Result<Parameter, ApiError> {
    use pb::parameter::Kind;
    let kind = match p.kind {
        Some(Kind::Float(f)) => ParamKind::Float {
            low: f.low,
            high: f.high,
            log: f.log,
        },
        Some(Kind::Int(r)) => ParamKind::Int {
            low: r.low,
            high: r.high,
            log: r.log,
        },
        Some(Kind::Ordinal(o)) => ParamKind::Ordinal { values: o.values },
        Some(Kind::Categorical(c)) => ParamKind::Categorical { values: c.values },
        None => {
            return Err(ApiError::Invalid(format!(
                "parameters[{i}]: one of float, int, ordinal or categorical is required"
            )));
        }
    };
    Ok(Parameter { name: p.name, kind })
}

fn param_to_pb(p: &Parameter) -> pb::Parameter {
    use pb::parameter::Kind;
    let kind = match &p.kind {
        ParamKind::Float { low, high, log } => Kind::Float(pb::FloatRange {
            low: *low,
            high: *high,
            log: *log,
        }),
        ParamKind::Int { low, high, log } => Kind::Int(pb::IntRange {
            low: *low,
            high: *high,
            log: *log,
        }),
        ParamKind::Ordinal { values } => Kind::Ordinal(pb::OrdinalValues {
            values: values.clone(),
        }),
        ParamKind::Categorical { values } => Kind::Categorical(pb::CategoricalValues {
            values: values.clone(),
        }),
    };
    pb::Parameter {
        name: p.name.clone(),
        kind: Some(kind),
    }
}

fn def_from_pb(r: pb::CreateStudyRequest) -> Result<StudyDef, ApiError> {
    name::validate("name", &r.name).map_err(ApiError::Invalid)?;
    let parameters = r
        .parameters
        .into_iter()
        .enumerate()
        .map(|(i, p)| param_from_pb(i, p))
        .collect::<Result<Vec<_>, _>>()?;
    let objective = r
        .objective
        .ok_or_else(|| ApiError::Invalid("objective: required ({name, goal})".into()))?;
    let goal = match pb::Goal::try_from(objective.goal) {
        Ok(pb::Goal::Minimize) => Goal::Minimize,
        Ok(pb::Goal::Maximize) => Goal::Maximize,
        Err(_) => {
            return Err(ApiError::Invalid(format!(
                "objective.goal: must be MINIMIZE or MAXIMIZE, got {}",
                objective.goal
            )));
        }
    };
    let acquisition = match pb::Acquisition::try_from(r.acquisition) {
        Ok(pb::Acquisition::LogEi) => Acquisition::LogEi,
        Ok(pb::Acquisition::Ucb) => Acquisition::Ucb {
            beta: crate::bo::DEFAULT_UCB_BETA,
        },
        Ok(pb::Acquisition::Pi) => Acquisition::Pi,
        Err(_) => {
            return Err(ApiError::Invalid(format!(
                "acquisition: must be LOG_EI, UCB or PI, got {}",
                r.acquisition
            )));
        }
    };
    let space = SearchSpace { parameters };
    let n_initial = if r.n_initial == 0 {
        default_n_initial(space.parameters.len())
    } else {
        r.n_initial as usize
    };
    let spec = StudySpec {
        space,
        goal,
        constraints: r
            .constraints
            .into_iter()
            .map(|c| Constraint {
                metric: c.metric,
                upper_bound: c.upper_bound,
            })
            .collect(),
        n_initial,
        acquisition,
        seed: r.seed,
    };
    let def = StudyDef {
        name: r.name,
        spec,
        objective: objective.name,
        metrics: r.metrics,
    };
    def.validate()?;
    Ok(def)
}

fn def_to_pb(d: &StudyDef) -> pb::Study {
    pb::Study {
        name: d.name.clone(),
        parameters: d.spec.space.parameters.iter().map(param_to_pb).collect(),
        objective: Some(pb::Objective {
            name: d.objective.clone(),
            goal: match d.spec.goal {
                Goal::Minimize => pb::Goal::Minimize,
                Goal::Maximize => pb::Goal::Maximize,
            } as i32,
        }),
        constraints: d
            .spec
            .constraints
            .iter()
            .map(|c| pb::Constraint {
                metric: c.metric.clone(),
                upper_bound: c.upper_bound,
            })
            .collect(),
        n_initial: d.spec.n_initial as u32,
        acquisition: match d.spec.acquisition {
            Acquisition::LogEi => pb::Acquisition::LogEi,
            Acquisition::Ucb { .. } => pb::Acquisition::Ucb,
            Acquisition::Pi => pb::Acquisition::Pi,
        } as i32,
        seed: d.spec.seed,
        metrics: d.metrics.clone(),
    }
}

fn trial_to_pb(t: &Trial) -> pb::Trial {
    pb::Trial {
        trial_id: t.id,
        params: t
            .config
            .iter()
            .map(|(k, v)| {
                let kind = match v {
                    ParamValue::Number(x) => pb::value::Kind::Number(*x),
                    ParamValue::Category(c) => pb::value::Kind::Category(c.clone()),
                };
                (k.clone(), pb::Value { kind: Some(kind) })
            })
            .collect(),
        state: match t.state {
            TrialState::Pending => pb::TrialState::Pending,
            TrialState::Completed => pb::TrialState::Completed,
            TrialState::Failed => pb::TrialState::Failed,
        } as i32,
        value: t.value,
        metrics: t.metrics.clone().into_iter().collect(),
        suggested_ms: t.suggested_ms,
        observed_ms: t.observed_ms.unwrap_or(0),
    }
}

fn study_to_pb(s: &StudyState) -> pb::GetStudyResponse {
    let best = s.best();
    let trial = |i: Option<usize>| i.and_then(|i| s.trials.get(i)).map(trial_to_pb);
    pb::GetStudyResponse {
        study: Some(def_to_pb(&s.def)),
        trials: s.trials.iter().map(trial_to_pb).collect(),
        best: best.as_ref().and_then(|b| trial(b.best_observed)),
        recommended: best.as_ref().and_then(|b| {
            trial(b.recommended).map(|t| pb::Recommendation {
                trial: Some(t),
                mean: b.mean,
                std: b.std,
            })
        }),
        exhausted: s.exhausted(),
    }
}

#[tonic::async_trait]
impl Optimizer for OptimizerService {
    async fn create_study(
        &self,
        req: Request<pb::CreateStudyRequest>,
    ) -> Result<Response<pb::CreateStudyResponse>, Status> {
        let def = def_from_pb(req.into_inner())?;
        let state = StudyState::new(def);
        match self.store.create_study(&state).await.map_err(ApiError::from)? {
            Created::Created => {
                tracing::info!(study = %state.def.name, dims = state.def.spec.space.parameters.len(), "study created");
                Ok(Response::new(pb::CreateStudyResponse {
                    study: Some(def_to_pb(&state.def)),
                    created: true,
                }))
            }
            Created::Exists(existing) if existing.def == state.def => Ok(Response::new(pb::CreateStudyResponse {
                study: Some(def_to_pb(&existing.def)),
                created: false,
            })),
            Created::Exists(_) => Err(ApiError::AlreadyExists(format!(
                "name: study {:?} already exists with a different definition (delete it first, or use another name)",
                state.def.name
            ))
            .into()),
        }
    }

    async fn get_study(
        &self,
        req: Request<pb::GetStudyRequest>,
    ) -> Result<Response<pb::GetStudyResponse>, Status> {
        let state = self.load("name", &req.into_inner().name).await?;
        // The recommendation conditions a GP: off the async threads.
        let resp = tokio::task::spawn_blocking(move || study_to_pb(&state))
            .await
            .map_err(|e| ApiError::Internal(format!("get_study task: {e}")))?;
        Ok(Response::new(resp))
    }

    async fn list_studies(
        &self,
        _req: Request<pb::ListStudiesRequest>,
    ) -> Result<Response<pb::ListStudiesResponse>, Status> {
        let names = self.store.list_studies().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListStudiesResponse { names }))
    }

    async fn delete_study(
        &self,
        req: Request<pb::DeleteStudyRequest>,
    ) -> Result<Response<pb::DeleteStudyResponse>, Status> {
        let name = req.into_inner().name;
        name::validate("name", &name).map_err(ApiError::Invalid)?;
        if !self
            .store
            .delete_study(&name)
            .await
            .map_err(ApiError::from)?
        {
            return Err(ApiError::NotFound(format!("name: study {name:?} not found")).into());
        }
        if let Ok(mut m) = self.locks.lock() {
            m.remove(&name);
        }
        Ok(Response::new(pb::DeleteStudyResponse {}))
    }

    async fn suggest(
        &self,
        req: Request<pb::SuggestRequest>,
    ) -> Result<Response<pb::SuggestResponse>, Status> {
        let r = req.into_inner();
        let count = r.count.max(1) as usize;
        let now = now_ms();
        let trials = self
            .update(&r.study, move |s| {
                if s.exhausted() {
                    return Err(ApiError::FailedPrecondition(format!(
                        "study: {:?} has suggested every configuration of its finite search space (exhausted)",
                        s.def.name
                    )));
                }
                Ok(s.suggest(count, now)?)
            })
            .await?;
        Ok(Response::new(pb::SuggestResponse {
            trials: trials.iter().map(trial_to_pb).collect(),
        }))
    }

    async fn observe(
        &self,
        req: Request<pb::ObserveRequest>,
    ) -> Result<Response<pb::ObserveResponse>, Status> {
        let r = req.into_inner();
        let metrics: BTreeMap<String, f64> = r.metrics.into_iter().collect();
        let now = now_ms();
        let (id, value, failed) = (r.trial_id, r.value, r.failed);
        let trial = self
            .update(&r.study, move |s| {
                Ok(s.observe(id, value, metrics.clone(), failed, now)?.clone())
            })
            .await?;
        Ok(Response::new(pb::ObserveResponse {
            trial: Some(trial_to_pb(&trial)),
        }))
    }
}
