//! A study as the service keeps it: its definition and its trials (queued,
//! pending, completed, failed, abandoned), with the rules of the life cycle:
//! Suggest, Observe, AbandonTrial (and the trial timeout), EnqueueTrial and
//! AddTrial. Pure: the store persists a [`StudyState`]; the API calls these
//! methods.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::cost::{COST_OBJECTIVE, DURATION_METRIC};
use super::pareto::Objective;
use super::suggest::{
    FitState, MAX_ABS_VALUE, MAX_METRIC_NAME_LEN, Observation, Recommendation, StudySpec,
    validate_metric_name,
};
use super::suggest::{recommend_validated, suggest_validated};
use super::{BoError, Point};

/// Completed and failed trials per study (pending ones are bounded by
/// `max_pending`, abandoned ones do not count). Exact GP inference is O(n³);
/// the fit already subsamples above a few hundred points, and an autotuning
/// job that needs more than 5,000 expensive evaluations wants another tool.
/// Suggest and AddTrial keep completed + failed + pending within it, so that
/// observing every pending trial can never go past it.
pub const MAX_TRIALS: usize = 5_000;
/// `max_pending` when CreateStudy leaves it 0. 256 parallel workers is more
/// than any tuning job we know of runs at once, and far from the point where
/// the fantasies of the pending trials dominate Suggest's latency.
pub const DEFAULT_MAX_PENDING: usize = 256;
/// The ceiling of `max_pending`. Every pending trial is a fantasy point in
/// each GP on every Suggest (an O(n²) update each, and a larger model to
/// predict from), and a study record that carries thousands of pending
/// trials is re-written on every change.
pub const MAX_PENDING_CEILING: usize = 1024;
/// Queued trials (EnqueueTrial) waiting for a Suggest, per study: the queue
/// is stored in the study record, so it is bounded like pending trials.
pub const MAX_QUEUED: usize = 1024;
/// Longest `trial_timeout_seconds`: a year. Longer is "never" (0), and the
/// bound keeps the milliseconds arithmetic far from overflow.
pub const MAX_TRIAL_TIMEOUT_SECONDS: u64 = 365 * 24 * 3600;
/// Bytes of an abandon reason: a short note ("spot instance preempted"),
/// stored with the trial and returned by every GetStudy.
pub const MAX_REASON_LEN: usize = 256;
/// Abandoned trials kept in the study record (the newest ones). They carry
/// nothing the model uses; without a bound a worker fleet that times out
/// forever (or a `decide` key that Suggests and never observes, with a
/// trial timeout) would grow the record without end.
pub const MAX_ABANDONED_KEPT: usize = 1000;

fn default_max_pending() -> usize {
    DEFAULT_MAX_PENDING
}
/// Named metrics per observation, and declared metrics per study:
/// constraints plus a few to display. Each is stored with every trial.
pub const MAX_METRICS: usize = 32;

/// What a user declares besides the search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyDef {
    pub name: String,
    pub spec: StudySpec,
    /// The objective's name (e.g. `cost_usd`), for display.
    pub objective: String,
    /// Declared metric names. When non-empty, constraints must name one of them.
    pub metrics: Vec<String>,
    /// A pending trial older than this is abandoned by itself; 0 = never.
    /// (Absent, i.e. 0, in studies stored before timeouts existed.)
    #[serde(default)]
    pub trial_timeout_seconds: u64,
    /// Most pending trials at once (1..=[`MAX_PENDING_CEILING`]).
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// Several objectives (2..=4), each reported in the observation's
    /// metrics under its name; empty for a single-objective study (and in
    /// studies stored before multi-objective studies existed). When set,
    /// `objective` and `spec.goal` are the first one's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objectives: Vec<Objective>,
    /// The hypervolume's reference point, one value per objective in the
    /// user's units; empty = derived from the observed values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_point: Vec<f64>,
}

impl StudyDef {
    /// The spec the models are fitted with. With several objectives a cost
    /// model only computes the cost objective's value (see
    /// `check_outcome`): the scalarized objectives that ParEGO models are
    /// not a cost, so their GP must not be the cost model's ln-duration
    /// model.
    fn model_spec(&self) -> std::borrow::Cow<'_, StudySpec> {
        if self.objectives.is_empty() || self.spec.cost_model.is_none() {
            return std::borrow::Cow::Borrowed(&self.spec);
        }
        std::borrow::Cow::Owned(StudySpec {
            cost_model: None,
            ..self.spec.clone()
        })
    }

    /// Every rule on the definition; errors name the field.
    pub fn validate(&self) -> Result<(), BoError> {
        if self.objectives.is_empty() {
            self.spec.validate()?;
        } else {
            // With several objectives `spec.goal` is only the first
            // objective's, and no rule of the spec is about it (the cost
            // objective's own goal is checked below).
            StudySpec {
                goal: super::Goal::Minimize,
                ..self.spec.clone()
            }
            .validate()?;
        }
        if !(1..=MAX_PENDING_CEILING).contains(&self.max_pending) {
            return Err(BoError::spec(
                "max_pending",
                format!(
                    "must be in 1..={MAX_PENDING_CEILING} (0 = the default {DEFAULT_MAX_PENDING}), got {}",
                    self.max_pending
                ),
            ));
        }
        if self.trial_timeout_seconds > MAX_TRIAL_TIMEOUT_SECONDS {
            return Err(BoError::spec(
                "trial_timeout_seconds",
                format!(
                    "must be at most {MAX_TRIAL_TIMEOUT_SECONDS} (a year; 0 = never), got {}",
                    self.trial_timeout_seconds
                ),
            ));
        }
        self.validate_objectives()?;
        if self.spec.cost_model.is_some() && !self.objectives.is_empty() {
            let cost = self
                .objectives
                .iter()
                .position(|o| o.name == COST_OBJECTIVE);
            match cost {
                None => {
                    return Err(BoError::spec(
                        "objectives",
                        format!(
                            "with a cost_model one objective must be named {COST_OBJECTIVE:?}: posterior computes it from the prices and the reported {DURATION_METRIC}"
                        ),
                    ));
                }
                Some(i) if self.objectives[i].goal != super::Goal::Minimize => {
                    return Err(BoError::spec(
                        format!("objectives[{i}].goal"),
                        "must be MINIMIZE for the cost objective of a cost_model",
                    ));
                }
                Some(_) => {}
            }
        }
        validate_metric_name("objective.name", &self.objective)?;
        if self.metrics.len() > MAX_METRICS {
            return Err(BoError::InvalidSpec {
                field: "metrics".into(),
                rule: format!(
                    "must have at most {MAX_METRICS} metrics, got {}",
                    self.metrics.len()
                ),
            });
        }
        let mut seen = HashSet::new();
        for (i, m) in self.metrics.iter().enumerate() {
            let field = format!("metrics[{i}]");
            validate_metric_name(&field, m)?;
            if !seen.insert(m.as_str()) {
                return Err(BoError::InvalidSpec {
                    field,
                    rule: format!("duplicate metric {m:?}"),
                });
            }
            if self.is_objective(m) {
                return Err(BoError::InvalidSpec {
                    field,
                    rule: format!("{m:?} is the objective's name; declare only the other metrics"),
                });
            }
        }
        for (i, c) in self.spec.constraints.iter().enumerate() {
            if self.is_objective(&c.metric) {
                return Err(BoError::InvalidSpec {
                    field: format!("constraints[{i}].metric"),
                    rule: format!(
                        "{:?} is the objective; constrain a separate metric",
                        c.metric
                    ),
                });
            }
            if !self.metrics.is_empty() && !self.metrics.contains(&c.metric) {
                return Err(BoError::InvalidSpec {
                    field: format!("constraints[{i}].metric"),
                    rule: format!(
                        "{:?} is not a declared metric (metrics: {:?})",
                        c.metric, self.metrics
                    ),
                });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrialState {
    /// Handed out by Suggest, not yet observed.
    Pending,
    Completed,
    Failed,
    /// Given up: not in the model, its configuration may come back.
    Abandoned,
    /// Enqueued by a user; the next Suggest hands it out (then Pending).
    Queued,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 1, 2, 3, … in suggestion order.
    pub id: u64,
    pub config: Point,
    pub state: TrialState,
    /// The objective in the user's units (None while pending or when failed).
    pub value: Option<f64>,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    pub suggested_ms: i64,
    pub observed_ms: Option<i64>,
    /// Why an abandoned trial was abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A study's whole state, persisted as one record with a revision number:
/// every change is a compare-and-set on the revision, so two replicas never
/// hand out the same pending trial nor complete a trial twice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyState {
    pub def: StudyDef,
    pub trials: Vec<Trial>,
    /// Hyperparameters of the last fit: the next Suggest warm-starts from them.
    pub fit: Option<FitState>,
    /// Incremented by every saved change.
    pub revision: u64,
}

/// The best trial and the model's recommendation, resolved to trials.
#[derive(Debug, Clone, PartialEq)]
pub struct Best {
    pub best_observed: Option<usize>,
    pub recommended: Option<usize>,
    pub mean: f64,
    pub std: f64,
    /// Coverage of the 90% leave-one-out intervals of the objective GP.
    pub calibration: Option<f64>,
}

impl StudyState {
    pub fn new(def: StudyDef) -> Self {
        StudyState {
            def,
            trials: Vec::new(),
            fit: None,
            revision: 0,
        }
    }

    /// Completed and failed trials as observations, with their trial indices.
    pub(super) fn observations(&self) -> (Vec<Observation>, Vec<usize>) {
        let mut obs = Vec::new();
        let mut idx = Vec::new();
        for (i, t) in self.trials.iter().enumerate() {
            if matches!(t.state, TrialState::Completed | TrialState::Failed) {
                obs.push(Observation {
                    config: t.config.clone(),
                    value: t.value,
                    metrics: t.metrics.clone(),
                    failed: t.state == TrialState::Failed,
                });
                idx.push(i);
            }
        }
        (obs, idx)
    }

    fn count(&self, states: &[TrialState]) -> usize {
        self.trials
            .iter()
            .filter(|t| states.contains(&t.state))
            .count()
    }

    /// Trials handed out and not yet observed.
    pub fn pending(&self) -> usize {
        self.count(&[TrialState::Pending])
    }

    /// Completed and failed trials: what [`MAX_TRIALS`] counts.
    pub fn finished(&self) -> usize {
        self.count(&[TrialState::Completed, TrialState::Failed])
    }

    /// The id the next new trial gets: ids are never reused, also after old
    /// abandoned trials were dropped (the newest trial is never dropped).
    fn next_id(&self) -> u64 {
        self.trials.iter().map(|t| t.id).max().unwrap_or(0) + 1
    }

    /// Every configuration of a finite space is observed, failed, pending or
    /// queued (abandoned ones may come back).
    pub fn exhausted(&self) -> bool {
        let Some(n) = self.def.spec.space.cardinality() else {
            return false;
        };
        let used: HashSet<Vec<u64>> = self
            .trials
            .iter()
            .filter(|t| t.state != TrialState::Abandoned)
            .map(|t| self.def.spec.space.key(&t.config))
            .collect();
        (used.len() as u128) >= n
    }

    /// Pending trials that were handed out more than `trial_timeout_seconds`
    /// ago (none when the timeout is 0).
    pub fn expired(&self, now_ms: i64) -> Vec<u64> {
        let timeout = self.def.trial_timeout_seconds;
        if timeout == 0 {
            return Vec::new();
        }
        let limit_ms = (timeout as i64).saturating_mul(1000);
        self.trials
            .iter()
            .filter(|t| {
                t.state == TrialState::Pending && now_ms.saturating_sub(t.suggested_ms) > limit_ms
            })
            .map(|t| t.id)
            .collect()
    }

    /// Abandons every expired pending trial; returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let ids = self.expired(now_ms);
        let reason = format!(
            "timed out: pending longer than trial_timeout_seconds = {}",
            self.def.trial_timeout_seconds
        );
        for id in &ids {
            if let Some(t) = self.trials.iter_mut().find(|t| t.id == *id) {
                t.state = TrialState::Abandoned;
                t.reason = Some(reason.clone());
                t.observed_ms = Some(now_ms);
            }
        }
        if !ids.is_empty() {
            self.prune_abandoned();
        }
        ids.len()
    }

    /// Drops the oldest abandoned trials beyond [`MAX_ABANDONED_KEPT`].
    fn prune_abandoned(&mut self) {
        let abandoned = self.count(&[TrialState::Abandoned]);
        let mut excess = abandoned.saturating_sub(MAX_ABANDONED_KEPT);
        if excess == 0 {
            return;
        }
        // Trials are in id order: the first abandoned ones are the oldest.
        self.trials.retain(|t| {
            if excess > 0 && t.state == TrialState::Abandoned {
                excess -= 1;
                false
            } else {
                true
            }
        });
    }

    /// Suggest up to `count` trials and record them as pending: queued
    /// trials first (in the order they were enqueued), then new ones from
    /// the model. The RNG seed derives from the study seed and the number of
    /// trials so far, so a study replayed with the same observations suggests
    /// the same configurations. Expired pending trials are abandoned first.
    pub fn suggest(&mut self, count: usize, now_ms: i64) -> Result<Vec<Trial>, BoError> {
        crate::bo::suggest::check_count(count)?;
        self.expire(now_ms);
        let pending = self.pending();
        if pending + count > self.def.max_pending {
            return Err(BoError::Refused {
                field: "count".into(),
                rule: format!(
                    "study {:?} has {pending} pending trials and max_pending = {}: {count} more would exceed it; observe or abandon (AbandonTrial) pending trials first",
                    self.def.name, self.def.max_pending
                ),
            });
        }
        let finished = self.finished();
        if finished + pending + count > MAX_TRIALS {
            return Err(BoError::Refused {
                field: "count".into(),
                rule: format!(
                    "study {:?} has {finished} completed or failed and {pending} pending trials: {count} more could exceed {MAX_TRIALS} trials (observe or abandon pending trials; a finished study stays readable)",
                    self.def.name
                ),
            });
        }
        let mut out = Vec::with_capacity(count);
        for t in self.trials.iter_mut() {
            if out.len() == count {
                break;
            }
            if t.state == TrialState::Queued {
                t.state = TrialState::Pending;
                t.suggested_ms = now_ms;
                out.push(t.clone());
            }
        }
        let rest = count - out.len();
        if rest == 0 {
            return Ok(out);
        }
        if self.exhausted() {
            return if out.is_empty() {
                Err(BoError::SpaceExhausted)
            } else {
                Ok(out)
            };
        }
        let (obs, _) = self.observations();
        let pending: Vec<Point> = self
            .trials
            .iter()
            .filter(|t| matches!(t.state, TrialState::Pending | TrialState::Queued))
            .map(|t| t.config.clone())
            .collect();
        let first = self.next_id();
        let seed = self.def.spec.seed ^ (first - 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The spec was validated when the study was created (StudyDef's
        // TryFrom and `validate`): not again on every Suggest.
        let s = if self.def.objectives.is_empty() {
            suggest_validated(
                &self.def.spec,
                &obs,
                &pending,
                rest,
                self.fit.as_ref(),
                seed,
            )
        } else {
            crate::bo::pareto::suggest_parego(
                &self.def.model_spec(),
                &self.def.objectives,
                &obs,
                &pending,
                rest,
                seed,
            )
        };
        let s = match s {
            Ok(s) => s,
            // Queued trials were handed out: they are the answer.
            Err(BoError::SpaceExhausted) if !out.is_empty() => return Ok(out),
            Err(e) => return Err(e),
        };
        if s.fit.is_some() {
            self.fit = s.fit;
        }
        let new: Vec<Trial> = s
            .configs
            .into_iter()
            .enumerate()
            .map(|(i, config)| Trial {
                id: first + i as u64,
                config,
                state: TrialState::Pending,
                value: None,
                metrics: BTreeMap::new(),
                suggested_ms: now_ms,
                observed_ms: None,
                reason: None,
            })
            .collect();
        self.trials.extend(new.iter().cloned());
        out.extend(new);
        Ok(out)
    }

    /// The rules on an outcome (Observe and AddTrial): metric names and
    /// values, the objective's value, every constrained metric present.
    /// Returns the value and metrics to store: `value`, with known prices
    /// the cost at `config` (the trial's configuration), or with several
    /// objectives the first objective's (the `value` sent is then
    /// ignored); with several objectives and a cost model, the metrics
    /// gain the cost objective's computed value.
    fn check_outcome(
        &self,
        config: Option<&Point>,
        value: f64,
        mut metrics: BTreeMap<String, f64>,
        failed: bool,
    ) -> Result<(f64, BTreeMap<String, f64>), ObserveError> {
        let def = &self.def;
        if metrics.len() > MAX_METRICS {
            return Err(ObserveError::Invalid(format!(
                "metrics: must have at most {MAX_METRICS} entries per observation, got {}",
                metrics.len()
            )));
        }
        // Only the length of a key is checked, not the declared-name rule:
        // without declared metrics any label was accepted so far, and
        // refusing an observation of a running study over a label's spelling
        // would lose a trial's result. The key is not echoed when too long.
        if let Some(k) = metrics.keys().find(|k| k.len() > MAX_METRIC_NAME_LEN) {
            let start: String = k.chars().take(16).collect();
            return Err(ObserveError::Invalid(format!(
                "metrics: each key must be at most {MAX_METRIC_NAME_LEN} bytes, got {} (the key starting {start:?})",
                k.len()
            )));
        }
        for (k, v) in &metrics {
            if !v.is_finite() || v.abs() > MAX_ABS_VALUE {
                return Err(ObserveError::Invalid(format!(
                    "metrics[{k:?}]: must be finite with |value| <= {MAX_ABS_VALUE:e}, got {v}"
                )));
            }
            let usage = def.spec.cost_model.is_some()
                && (k == crate::bo::cost::DURATION_METRIC || k == crate::bo::cost::REQUESTS_METRIC);
            if !def.metrics.is_empty() && !def.metrics.contains(k) && !def.is_objective(k) && !usage
            {
                return Err(ObserveError::Invalid(format!(
                    "metrics[{k:?}]: not a declared metric of study {:?} (metrics: {:?})",
                    def.name, def.metrics
                )));
            }
        }
        // Several objectives with a cost model: the cost objective is
        // computed, never reported (two sources of one number would
        // disagree as soon as a price changes).
        let computed_cost = def.spec.cost_model.is_some() && !def.objectives.is_empty();
        if computed_cost && metrics.contains_key(COST_OBJECTIVE) {
            return Err(ObserveError::Invalid(format!(
                "metrics.{COST_OBJECTIVE}: computed by posterior from the cost_model's prices and the reported {DURATION_METRIC}; do not report it"
            )));
        }
        if computed_cost
            && !failed
            && let (Some(cm), Some(c)) = (&def.spec.cost_model, config)
        {
            let cost = cm.cost(c, &metrics).map_err(ObserveError::Invalid)?;
            metrics.insert(COST_OBJECTIVE.to_string(), cost);
        }
        if !failed && !def.objectives.is_empty() {
            for o in &def.objectives {
                if !metrics.contains_key(&o.name) {
                    return Err(ObserveError::Invalid(format!(
                        "metrics.{}: the objective {:?} is required: a study with several objectives takes each objective's value in metrics under its name (or set failed = true)",
                        o.name, o.name
                    )));
                }
            }
        }
        let value = match def.objectives.first() {
            Some(o) if !failed => metrics.get(&o.name).copied().unwrap_or(value),
            _ => value,
        };
        // Known prices, one objective: the value is the exact cost of the
        // reported usage (the `value` sent is ignored).
        let value = match (&def.spec.cost_model, config) {
            (Some(cm), Some(c)) if !failed && !computed_cost => {
                cm.cost(c, &metrics).map_err(ObserveError::Invalid)?
            }
            _ => value,
        };
        if !failed {
            if !value.is_finite() || value.abs() > MAX_ABS_VALUE {
                return Err(ObserveError::Invalid(format!(
                    "value: must be finite with |value| <= {MAX_ABS_VALUE:e}, got {value} (use failed = true for a run that produced no value)"
                )));
            }
            for c in &def.spec.constraints {
                if !metrics.contains_key(&c.metric) {
                    return Err(ObserveError::Invalid(format!(
                        "metrics: the constrained metric {:?} is required (or set failed = true)",
                        c.metric
                    )));
                }
            }
        }
        Ok((value, metrics))
    }

    /// Complete (or fail) a pending trial.
    pub fn observe(
        &mut self,
        trial_id: u64,
        value: f64,
        metrics: BTreeMap<String, f64>,
        failed: bool,
        now_ms: i64,
    ) -> Result<&Trial, ObserveError> {
        let config = self
            .trials
            .iter()
            .find(|t| t.id == trial_id)
            .map(|t| t.config.clone());
        let (value, metrics) = self.check_outcome(config.as_ref(), value, metrics, failed)?;
        let t = self.trial_mut(trial_id)?;
        match t.state {
            TrialState::Pending => {}
            TrialState::Abandoned => {
                return Err(ObserveError::Precondition(format!(
                    "trial_id: trial {trial_id} was abandoned ({}); report its result with AddTrial instead",
                    t.reason.as_deref().unwrap_or("no reason given")
                )));
            }
            TrialState::Queued => {
                return Err(ObserveError::Precondition(format!(
                    "trial_id: trial {trial_id} is queued and was not handed out yet (Suggest hands it out); to record a finished run use AddTrial"
                )));
            }
            TrialState::Completed | TrialState::Failed => {
                return Err(ObserveError::AlreadyObserved(format!(
                    "trial_id: trial {trial_id} was already observed ({:?}); an observation is never counted twice",
                    t.state
                )));
            }
        }
        t.state = if failed {
            TrialState::Failed
        } else {
            TrialState::Completed
        };
        t.value = if failed { None } else { Some(value) };
        t.metrics = metrics;
        t.observed_ms = Some(now_ms);
        Ok(t)
    }

    /// The objective's slices through the recommended configuration
    /// (`recommended` is then an index into `trials`); see `bo::slices`.
    pub fn slices(&self, points: usize) -> Option<crate::bo::slices::Slices> {
        let (obs, idx) = self.observations();
        let mut s = crate::bo::slices::slices_validated(
            &self.def.model_spec(),
            &obs,
            self.fit.as_ref(),
            points,
        )?;
        s.recommended = *idx.get(s.recommended)?;
        Some(s)
    }

    fn trial_mut(&mut self, trial_id: u64) -> Result<&mut Trial, ObserveError> {
        let name = &self.def.name;
        self.trials
            .iter_mut()
            .find(|t| t.id == trial_id)
            .ok_or_else(|| {
                ObserveError::NotFound(format!("trial_id: study {name:?} has no trial {trial_id}"))
            })
    }

    /// Abandon a pending or queued trial. Abandoning an abandoned trial
    /// answers it unchanged (a retried call is harmless); a completed or
    /// failed one is FAILED_PRECONDITION.
    pub fn abandon(
        &mut self,
        trial_id: u64,
        reason: Option<String>,
        now_ms: i64,
    ) -> Result<Trial, ObserveError> {
        if let Some(r) = &reason
            && r.len() > MAX_REASON_LEN
        {
            return Err(ObserveError::Invalid(format!(
                "reason: must be at most {MAX_REASON_LEN} bytes, got {}",
                r.len()
            )));
        }
        let t = self.trial_mut(trial_id)?;
        match t.state {
            TrialState::Pending | TrialState::Queued => {
                t.state = TrialState::Abandoned;
                t.reason = Some(reason.unwrap_or_default());
                t.observed_ms = Some(now_ms);
            }
            TrialState::Abandoned => return Ok(t.clone()),
            TrialState::Completed | TrialState::Failed => {
                return Err(ObserveError::AlreadyObserved(format!(
                    "trial_id: trial {trial_id} was already observed ({:?}); only pending or queued trials can be abandoned",
                    t.state
                )));
            }
        }
        let out = t.clone();
        self.prune_abandoned();
        Ok(out)
    }

    /// Snap a user's configuration onto the space; errors name `params.NAME`.
    fn user_config(&self, params: &Point) -> Result<Point, ObserveError> {
        self.def
            .spec
            .space
            .snap_config(params)
            .map_err(|e| match e {
                BoError::InvalidConfig { field, rule } => {
                    ObserveError::Invalid(format!("params.{field}: {rule}"))
                }
                other => ObserveError::Invalid(format!("params: {other}")),
            })
    }

    fn push_trial(&mut self, config: Point, state: TrialState, now_ms: i64) -> &mut Trial {
        let id = self.next_id();
        self.trials.push(Trial {
            id,
            config,
            state,
            value: None,
            metrics: BTreeMap::new(),
            suggested_ms: now_ms,
            observed_ms: None,
            reason: None,
        });
        let last = self.trials.len() - 1;
        &mut self.trials[last]
    }

    /// Queue a configuration for the next Suggest.
    pub fn enqueue(&mut self, params: &Point, now_ms: i64) -> Result<Trial, ObserveError> {
        let config = self.user_config(params)?;
        let queued = self.count(&[TrialState::Queued]);
        if queued >= MAX_QUEUED {
            return Err(ObserveError::Precondition(format!(
                "study: {:?} already has {queued} queued trials (at most {MAX_QUEUED}); Suggest hands them out, or abandon some",
                self.def.name
            )));
        }
        Ok(self.push_trial(config, TrialState::Queued, now_ms).clone())
    }

    /// Record a finished trial that did not come from Suggest.
    pub fn add_trial(
        &mut self,
        params: &Point,
        value: f64,
        metrics: BTreeMap<String, f64>,
        failed: bool,
        now_ms: i64,
    ) -> Result<Trial, ObserveError> {
        let config = self.user_config(params)?;
        let (value, metrics) = self.check_outcome(Some(&config), value, metrics, failed)?;
        let (finished, pending) = (self.finished(), self.pending());
        if finished + pending >= MAX_TRIALS {
            return Err(ObserveError::Precondition(format!(
                "study: {:?} has {finished} completed or failed and {pending} pending trials; one more could exceed {MAX_TRIALS} trials",
                self.def.name
            )));
        }
        let t = self.push_trial(
            config,
            if failed {
                TrialState::Failed
            } else {
                TrialState::Completed
            },
            now_ms,
        );
        t.value = if failed { None } else { Some(value) };
        t.metrics = metrics;
        t.observed_ms = Some(now_ms);
        Ok(t.clone())
    }

    /// Best observed feasible trial and the noise-aware recommendation.
    pub fn best(&self) -> Option<Best> {
        let (obs, idx) = self.observations();
        let r: Recommendation =
            recommend_validated(&self.def.model_spec(), &obs, self.fit.as_ref())?;
        Some(Best {
            best_observed: r.best_observed.and_then(|i| idx.get(i).copied()),
            recommended: r.recommended.and_then(|i| idx.get(i).copied()),
            mean: r.mean,
            std: r.std,
            calibration: r.calibration,
        })
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObserveError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyObserved(String),
    /// The trial's or the study's state forbids the change.
    #[error("{0}")]
    Precondition(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bo::{Constraint, Goal, ParamKind, ParamValue, Parameter, SearchSpace};

    fn def() -> StudyDef {
        let space = SearchSpace {
            parameters: vec![
                Parameter {
                    name: "x".into(),
                    kind: ParamKind::Float {
                        low: 0.0,
                        high: 1.0,
                        log: false,
                        step: None,
                    },
                },
                Parameter {
                    name: "arch".into(),
                    kind: ParamKind::Categorical {
                        values: vec!["x86".into(), "arm".into()],
                        features: Vec::new(),
                    },
                },
            ],
        };
        let mut spec = StudySpec::new(space, Goal::Minimize, 7);
        spec.constraints.push(Constraint::at_most("p95_ms", 200.0));
        StudyDef {
            name: "s".into(),
            spec,
            objective: "cost".into(),
            metrics: vec![],
            trial_timeout_seconds: 0,
            max_pending: DEFAULT_MAX_PENDING,
            objectives: vec![],
            reference_point: vec![],
        }
    }

    fn ok_metrics() -> BTreeMap<String, f64> {
        BTreeMap::from([("p95_ms".to_string(), 150.0)])
    }

    fn states(s: &StudyState) -> Vec<TrialState> {
        s.trials.iter().map(|t| t.state).collect()
    }

    #[test]
    fn abandoned_trials_leave_the_model_and_the_cap() {
        // A finite space of 4 configurations: an abandoned configuration
        // must come back, so a fifth Suggest after abandoning one succeeds.
        let space = SearchSpace {
            parameters: vec![Parameter {
                name: "n".into(),
                kind: ParamKind::Int {
                    low: 0,
                    high: 3,
                    log: false,
                    step: None,
                },
            }],
        };
        let mut d = def();
        d.spec = StudySpec::new(space, Goal::Minimize, 1);
        let mut s = StudyState::new(d);
        let t = s.suggest(4, 1).unwrap();
        assert_eq!(s.suggest(1, 2), Err(BoError::SpaceExhausted));
        let gone = t[2].config.clone();
        let a = s.abandon(t[2].id, Some("preempted".into()), 3).unwrap();
        assert_eq!(a.state, TrialState::Abandoned);
        assert_eq!(a.reason.as_deref(), Some("preempted"));
        // Idempotent, and not observable any more.
        assert_eq!(s.abandon(t[2].id, None, 4).unwrap(), a);
        assert!(matches!(
            s.observe(t[2].id, 1.0, BTreeMap::new(), false, 5),
            Err(ObserveError::Precondition(m)) if m.contains("AddTrial")
        ));
        let again = s.suggest(1, 6).unwrap();
        assert_eq!(
            again[0].config, gone,
            "the abandoned configuration comes back"
        );
        assert_eq!(again[0].id, 5, "ids are never reused");
        s.observe(t[0].id, 1.0, BTreeMap::new(), false, 7).unwrap();
        assert!(matches!(
            s.abandon(t[0].id, None, 8),
            Err(ObserveError::AlreadyObserved(_))
        ));
        assert_eq!((s.finished(), s.pending()), (1, 3));
        assert!(matches!(
            s.abandon(99, None, 8),
            Err(ObserveError::NotFound(m)) if m.starts_with("trial_id")
        ));
        let long = "r".repeat(MAX_REASON_LEN + 1);
        assert!(matches!(
            s.abandon(t[1].id, Some(long), 8),
            Err(ObserveError::Invalid(m)) if m.starts_with("reason: must be at most 256 bytes")
        ));
    }

    #[test]
    fn max_pending_refuses_and_timeouts_abandon() {
        let mut d = def();
        d.max_pending = 3;
        d.trial_timeout_seconds = 10;
        let mut s = StudyState::new(d);
        s.suggest(2, 0).unwrap();
        let e = s.suggest(2, 1_000).unwrap_err();
        assert!(matches!(e, BoError::Refused { .. }), "{e}");
        assert!(e.to_string().contains("observe or abandon"), "{e}");
        s.suggest(1, 5_000).unwrap();
        // Trials 1 and 2 were handed out at 0 ms: at 10,001 ms they are
        // older than 10 s; trial 3 (5,000 ms) is not.
        assert_eq!(s.expired(10_000), Vec::<u64>::new());
        assert_eq!(s.expired(10_001), vec![1, 2]);
        let t = s.suggest(2, 10_001).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            states(&s),
            [
                TrialState::Abandoned,
                TrialState::Abandoned,
                TrialState::Pending,
                TrialState::Pending,
                TrialState::Pending
            ]
        );
        assert!(s.trials[0].reason.as_deref().unwrap().contains("timed out"));
    }

    #[test]
    fn the_trial_cap_counts_finished_trials_only() {
        let mut d = def();
        d.max_pending = MAX_PENDING_CEILING;
        let mut s = StudyState::new(d);
        // Far more trials than MAX_TRIALS pass through while pending, as
        // long as they are abandoned; the record keeps the newest
        // MAX_ABANDONED_KEPT abandoned ones.
        let mut handed = 0;
        while handed <= MAX_TRIALS + MAX_PENDING_CEILING {
            for t in s.suggest(64, 1).unwrap() {
                s.abandon(t.id, None, 1).unwrap();
                handed += 1;
            }
        }
        assert!(
            s.trials.len() <= MAX_ABANDONED_KEPT + 64,
            "{}",
            s.trials.len()
        );
        assert_eq!(s.next_id() as usize, handed + 1);
    }

    #[test]
    fn queued_trials_go_first_and_user_trials_snap() {
        let mut s = StudyState::new(def());
        let p = |x: f64, arch: &str| {
            Point::from([
                ("x".to_string(), ParamValue::Number(x)),
                ("arch".to_string(), ParamValue::Category(arch.into())),
            ])
        };
        let q1 = s.enqueue(&p(0.25, "arm"), 1).unwrap();
        let q2 = s.enqueue(&p(0.75, "x86"), 1).unwrap();
        assert_eq!((q1.state, q1.id, q2.id), (TrialState::Queued, 1, 2));
        assert!(matches!(
            s.observe(1, 1.0, ok_metrics(), false, 2),
            Err(ObserveError::Precondition(_))
        ));
        let t = s.suggest(1, 2).unwrap();
        assert_eq!((t[0].id, t[0].state), (1, TrialState::Pending));
        let t = s.suggest(3, 3).unwrap();
        assert_eq!(t[0].id, 2, "the queue is served in order, before the model");
        assert_eq!(t[0].config, p(0.75, "x86"));
        assert_eq!(t.len(), 3);

        let added = s
            .add_trial(&p(0.5, "arm"), 2.0, ok_metrics(), false, 4)
            .unwrap();
        assert_eq!(added.state, TrialState::Completed);
        assert_eq!(added.value, Some(2.0));
        for (bad, want) in [
            (p(1.5, "arm"), "params.x: must be a finite number in [0, 1]"),
            (
                p(0.5, "sparc"),
                "params.arch: must be one of the categories",
            ),
            (
                Point::from([("x".to_string(), ParamValue::Number(0.5))]),
                "params.arch: missing parameter",
            ),
        ] {
            let e = s.add_trial(&bad, 1.0, ok_metrics(), false, 5).unwrap_err();
            assert!(e.to_string().starts_with(want), "{e} vs {want}");
        }
        // The outcome's rules are Observe's: the constrained metric is required.
        let e = s
            .add_trial(&p(0.5, "arm"), 1.0, BTreeMap::new(), false, 5)
            .unwrap_err();
        assert!(e.to_string().contains("p95_ms"), "{e}");
        let f = s
            .add_trial(&p(0.5, "arm"), 0.0, BTreeMap::new(), true, 5)
            .unwrap();
        assert_eq!((f.state, f.value), (TrialState::Failed, None));
    }

    #[test]
    fn old_records_load_with_defaults() {
        // A study as stored before the lifecycle items: no timeout, no
        // max_pending, no steps, a constraint with a bare upper bound.
        let mut s = StudyState::new(def());
        s.suggest(2, 1).unwrap();
        let mut v = serde_json::to_value(&s).unwrap();
        let def = v["def"].as_object_mut().unwrap();
        def.remove("trial_timeout_seconds");
        def.remove("max_pending");
        v["def"]["spec"]["constraints"][0] =
            serde_json::json!({"metric": "p95_ms", "upper_bound": 200.0});
        let back: StudyState = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.def.max_pending, DEFAULT_MAX_PENDING);
    }

    #[test]
    fn life_cycle_and_rules() {
        let mut s = StudyState::new(def());
        let t = s.suggest(3, 1).unwrap();
        assert_eq!(t.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(
            matches!(s.observe(1, 1.0, BTreeMap::new(), false, 2), Err(ObserveError::Invalid(m)) if m.contains("p95_ms"))
        );
        let m = BTreeMap::from([("p95_ms".to_string(), 150.0)]);
        s.observe(1, 1.0, m.clone(), false, 2).unwrap();
        assert!(matches!(
            s.observe(1, 1.0, m.clone(), false, 2),
            Err(ObserveError::AlreadyObserved(_))
        ));
        assert!(matches!(
            s.observe(9, 1.0, m.clone(), false, 2),
            Err(ObserveError::NotFound(_))
        ));
        assert!(
            matches!(s.observe(2, f64::NAN, m.clone(), false, 2), Err(ObserveError::Invalid(e)) if e.starts_with("value"))
        );
        s.observe(2, 0.0, BTreeMap::new(), true, 3).unwrap();
        let b = s.best().unwrap();
        assert_eq!(b.best_observed, Some(0));
        assert_eq!(s.trials[1].state, TrialState::Failed);
        let _ = ParamValue::Number(0.0);
    }

    #[test]
    fn json_round_trip_is_exact() {
        // The Redis store keeps studies as JSON; a pending configuration that
        // came back one ulp off would no longer match its own key, and the
        // same configuration could be suggested twice (serde_json needs its
        // float_roundtrip feature for this).
        let mut s = StudyState::new(def());
        s.suggest(8, 1).unwrap();
        let back: StudyState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn definition_rules_name_the_field() {
        let mut d = def();
        d.metrics = vec!["latency".into()];
        let e = d.validate().unwrap_err().to_string();
        assert!(
            e.contains("constraints[0].metric") && e.contains("not a declared metric"),
            "{e}"
        );
        let mut d = def();
        d.spec.constraints[0].metric = "cost".into();
        assert!(d.validate().unwrap_err().to_string().contains("objective"));
        def().validate().unwrap();
    }

    #[test]
    fn caps_name_the_field_and_the_rule() {
        use crate::bo::suggest::{MAX_CONSTRAINTS, MAX_METRIC_NAME_LEN};
        let err = |d: StudyDef| d.validate().unwrap_err().to_string();
        let constraints = |n: usize| {
            (0..n)
                .map(|i| Constraint::at_most(format!("m{i}"), 1.0))
                .collect::<Vec<_>>()
        };
        let mut d = def();
        d.spec.constraints = constraints(MAX_CONSTRAINTS);
        d.validate().unwrap();
        d.spec.constraints = constraints(MAX_CONSTRAINTS + 1);
        assert!(
            err(d).contains("constraints: must have at most 8 constraints, got 9"),
            "constraints"
        );

        let mut d = def();
        d.objective = "o".repeat(MAX_METRIC_NAME_LEN);
        d.validate().unwrap();
        d.objective.push('o');
        assert!(err(d).ends_with("objective.name: must be at most 64 bytes, got 65"));

        let mut d = def();
        d.metrics = (0..MAX_METRICS).map(|i| format!("m{i}")).collect();
        d.spec.constraints[0].metric = "m0".into();
        d.validate().unwrap();
        d.metrics.push("extra".into());
        assert!(err(d).ends_with("metrics: must have at most 32 metrics, got 33"));

        let mut d = def();
        d.metrics = vec!["p95_ms".into(), "x".repeat(100_000)];
        assert!(err(d).ends_with("metrics[1]: must be at most 64 bytes, got 100000"));
        let mut d = def();
        d.spec.constraints[0].metric = "x".repeat(100_000);
        assert!(err(d).ends_with("constraints[0].metric: must be at most 64 bytes, got 100000"));

        let mut s = StudyState::new(def());
        s.suggest(1, 1).unwrap();
        let mut m = BTreeMap::from([("p95_ms".to_string(), 1.0)]);
        m.insert("k".repeat(MAX_METRIC_NAME_LEN + 1), 1.0);
        let e = s
            .observe(1, 1.0, m.clone(), false, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("metrics: each key must be at most 64 bytes, got 65"),
            "{e}"
        );
        m.remove(&"k".repeat(MAX_METRIC_NAME_LEN + 1));
        m.insert("k".repeat(MAX_METRIC_NAME_LEN), 1.0);
        s.observe(1, 1.0, m, false, 2).unwrap();
        let many: BTreeMap<String, f64> =
            (0..=MAX_METRICS).map(|i| (format!("m{i}"), 0.0)).collect();
        let e = s.observe(1, 1.0, many, false, 2).unwrap_err().to_string();
        assert!(
            e.contains("at most 32 entries per observation, got 33"),
            "{e}"
        );
    }
}
