//! A study as the service keeps it: its definition and its trials (pending,
//! completed, failed), with the rules of the Suggest/Observe life cycle.
//! Pure: the store persists a [`StudyState`]; the API calls these methods.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::suggest::{
    FitState, MAX_ABS_VALUE, MAX_METRIC_NAME_LEN, Observation, Recommendation, StudySpec,
    validate_metric_name,
};
use super::suggest::{recommend_validated, suggest_validated};
use super::{BoError, Point};

/// Trials per study, pending included. Exact GP inference is O(n³); the fit
/// already subsamples above a few hundred points, and an autotuning job that
/// needs more than 5,000 expensive evaluations wants another tool.
pub const MAX_TRIALS: usize = 5_000;
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
}

impl StudyDef {
    /// Every rule on the definition; errors name the field.
    pub fn validate(&self) -> Result<(), BoError> {
        self.spec.validate()?;
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
            if m == &self.objective {
                return Err(BoError::InvalidSpec {
                    field,
                    rule: format!("{m:?} is the objective's name; declare only the other metrics"),
                });
            }
        }
        for (i, c) in self.spec.constraints.iter().enumerate() {
            if c.metric == self.objective {
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
    Pending,
    Completed,
    Failed,
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
    fn observations(&self) -> (Vec<Observation>, Vec<usize>) {
        let mut obs = Vec::new();
        let mut idx = Vec::new();
        for (i, t) in self.trials.iter().enumerate() {
            if t.state != TrialState::Pending {
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

    /// Every configuration of a finite space has been tried or is pending.
    pub fn exhausted(&self) -> bool {
        match self.def.spec.space.cardinality() {
            Some(n) => (self.trials.len() as u128) >= n,
            None => false,
        }
    }

    /// Suggest up to `count` new trials and record them as pending. The RNG
    /// seed derives from the study seed and the number of trials so far, so a
    /// study replayed with the same observations suggests the same configurations.
    pub fn suggest(&mut self, count: usize, now_ms: i64) -> Result<Vec<Trial>, BoError> {
        if self.trials.len() + count > MAX_TRIALS {
            return Err(BoError::InvalidRequest {
                field: "count".into(),
                rule: format!("study {:?} would exceed {MAX_TRIALS} trials", self.def.name),
            });
        }
        let (obs, _) = self.observations();
        let pending: Vec<Point> = self
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Pending)
            .map(|t| t.config.clone())
            .collect();
        let seed =
            self.def.spec.seed ^ (self.trials.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The spec was validated when the study was created (StudyDef's
        // TryFrom and `validate`): not again on every Suggest.
        let s = suggest_validated(
            &self.def.spec,
            &obs,
            &pending,
            count,
            self.fit.as_ref(),
            seed,
        )?;
        if s.fit.is_some() {
            self.fit = s.fit;
        }
        let first = self.trials.len() as u64 + 1;
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
            })
            .collect();
        self.trials.extend(new.iter().cloned());
        Ok(new)
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
            if !def.metrics.is_empty() && !def.metrics.contains(k) {
                return Err(ObserveError::Invalid(format!(
                    "metrics[{k:?}]: not a declared metric of study {:?} (metrics: {:?})",
                    def.name, def.metrics
                )));
            }
        }
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
        let Some(t) = self.trials.iter_mut().find(|t| t.id == trial_id) else {
            return Err(ObserveError::NotFound(format!(
                "trial_id: study {:?} has no trial {trial_id}",
                def.name
            )));
        };
        if t.state != TrialState::Pending {
            return Err(ObserveError::AlreadyObserved(format!(
                "trial_id: trial {trial_id} was already observed ({:?}); an observation is never counted twice",
                t.state
            )));
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
        let mut s =
            crate::bo::slices::slices_validated(&self.def.spec, &obs, self.fit.as_ref(), points)?;
        s.recommended = *idx.get(s.recommended)?;
        Some(s)
    }

    /// Best observed feasible trial and the noise-aware recommendation.
    pub fn best(&self) -> Option<Best> {
        let (obs, idx) = self.observations();
        let r: Recommendation = recommend_validated(&self.def.spec, &obs, self.fit.as_ref())?;
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
                    },
                },
                Parameter {
                    name: "arch".into(),
                    kind: ParamKind::Categorical {
                        values: vec!["x86".into(), "arm".into()],
                    },
                },
            ],
        };
        let mut spec = StudySpec::new(space, Goal::Minimize, 7);
        spec.constraints.push(Constraint {
            metric: "p95_ms".into(),
            upper_bound: 200.0,
        });
        StudyDef {
            name: "s".into(),
            spec,
            objective: "cost".into(),
            metrics: vec![],
        }
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
                .map(|i| Constraint {
                    metric: format!("m{i}"),
                    upper_bound: 1.0,
                })
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
