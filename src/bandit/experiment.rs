//! An experiment's definition: its arms, reward model, prior and decay.

use serde::{Deserialize, Serialize};

use super::BanditError;
use super::design::Design;
use super::posterior::{Evidence, Model, Posterior, Prior};
use crate::name;

/// Arms per experiment. Ad allocation needs thousands of creatives; 2,000
/// keeps one Choose (a draw per arm, ~20 ns each) near 50 µs and one
/// experiment's state (~40 bytes per arm) well inside one Redis value.
pub const MAX_ARMS: usize = 2_000;

/// Half-lives beyond ten years are indistinguishable from "never"; the bound
/// keeps the millisecond arithmetic far from overflow.
pub const MAX_HALF_LIFE_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

/// The shortest half-life: decay is computed in whole milliseconds
/// ([`ExperimentDef::half_life_ms`]), so a positive half-life under 1 ms
/// rounded to 0, which means "never decays": the opposite of what was asked.
pub const MIN_HALF_LIFE_SECONDS: f64 = 0.001;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    pub name: String,
    pub retired: bool,
}

/// What a user creates. The arm index (position in `arms`) is stable for the
/// life of the experiment: arms are appended and retired, never removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentDef {
    pub name: String,
    pub model: Model,
    pub prior: Prior,
    /// 0 = evidence never decays.
    pub half_life_seconds: f64,
    pub arms: Vec<Arm>,
    /// The arm list of the create call, so that a retried create stays
    /// idempotent after arms were added or retired.
    pub created_with: Vec<String>,
    /// Random per incarnation: decision ids of a deleted experiment are not
    /// valid for a new experiment of the same name.
    pub id: u64,
    /// Goal, policy, holdback and floors, sticky units, stopping rule,
    /// description and labels (defaults for records written before them).
    #[serde(default)]
    pub design: Design,
    /// Unix milliseconds of the create call (the stopping rule's duration
    /// counts from it; 0 for records written before it was kept).
    #[serde(default)]
    pub created_ms: i64,
}

/// A create request after defaults are filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct NewExperiment {
    pub name: String,
    pub model: Model,
    pub prior: Option<Prior>,
    pub half_life_seconds: f64,
    pub arms: Vec<String>,
    pub design: Design,
}

impl NewExperiment {
    /// Validate every field; the error names the first bad one.
    pub fn into_def(self, id: u64) -> Result<ExperimentDef, BanditError> {
        name::validate("name", &self.name).map_err(BanditError::Invalid)?;
        if self.arms.is_empty() {
            return Err(BanditError::invalid("arms", "at least one arm is required"));
        }
        if self.arms.len() > MAX_ARMS {
            return Err(BanditError::invalid(
                "arms",
                format!(
                    "must have at most {MAX_ARMS} arms per experiment, got {}",
                    self.arms.len()
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, arm) in self.arms.iter().enumerate() {
            name::validate(&format!("arms[{i}]"), arm).map_err(BanditError::Invalid)?;
            if !seen.insert(arm.as_str()) {
                return Err(BanditError::invalid(
                    format!("arms[{i}]"),
                    format!("duplicate arm name {arm:?}"),
                ));
            }
        }
        let prior = self.prior.unwrap_or(Prior::default_for(self.model));
        if prior.model() != self.model {
            return Err(BanditError::invalid(
                "prior",
                format!(
                    "{:?} needs {}",
                    self.model,
                    match self.model {
                        Model::Bernoulli => "beta_prior",
                        Model::Gaussian => "normal_prior",
                    }
                ),
            ));
        }
        prior.validate()?;
        let hl = self.half_life_seconds;
        if !hl.is_finite() || !(0.0..=MAX_HALF_LIFE_SECONDS).contains(&hl) {
            return Err(BanditError::invalid(
                "half_life_seconds",
                format!(
                    "must be 0 (never decay) or a positive number of seconds up to {MAX_HALF_LIFE_SECONDS}, got {hl}"
                ),
            ));
        }
        if hl > 0.0 && hl < MIN_HALF_LIFE_SECONDS {
            return Err(BanditError::invalid(
                "half_life_seconds",
                format!(
                    "must be 0 (never decay) or at least {MIN_HALF_LIFE_SECONDS} (1 ms: decay is computed in whole milliseconds), got {hl}"
                ),
            ));
        }
        self.design.validate(&self.arms)?;
        Ok(ExperimentDef {
            name: self.name,
            model: self.model,
            prior,
            half_life_seconds: hl,
            arms: self
                .arms
                .iter()
                .map(|n| Arm {
                    name: n.clone(),
                    retired: false,
                })
                .collect(),
            created_with: self.arms,
            id,
            design: self.design,
            created_ms: 0,
        })
    }
}

impl ExperimentDef {
    /// Same definition as a create request would produce: the idempotency test.
    pub fn same_definition(&self, other: &ExperimentDef) -> bool {
        self.name == other.name
            && self.model == other.model
            && self.prior == other.prior
            && self.half_life_seconds == other.half_life_seconds
            && self.created_with == other.created_with
            && self.design == other.design
    }

    pub fn half_life_ms(&self) -> i64 {
        (self.half_life_seconds * 1000.0).round() as i64
    }

    pub fn arm_index(&self, arm: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.name == arm)
    }

    /// Each arm's evidence decayed to `now_ms` and the posterior it gives, in
    /// arm order. The one place decay meets the prior: Choose snapshots and
    /// summaries both read posteriors through it.
    pub fn posteriors_at(&self, evidence: &[Evidence], now_ms: i64) -> Vec<(Evidence, Posterior)> {
        let hl = self.half_life_ms();
        evidence
            .iter()
            .map(|e| {
                let d = e.at(now_ms, hl);
                (d, Posterior::new(&self.prior, &d))
            })
            .collect()
    }

    /// Indices of the arms not retired.
    pub fn active_arms(&self) -> Vec<usize> {
        (0..self.arms.len())
            .filter(|&i| !self.arms[i].retired)
            .collect()
    }

    /// Indices of the arms a Choose may pick: the active arms, narrowed to
    /// `eligible` when it is not empty. Retired arms in `eligible` are
    /// skipped (a flag system may still list them); unknown ones are errors.
    pub fn eligible_arms(&self, eligible: &[String]) -> Result<Vec<usize>, BanditError> {
        let picked: Vec<usize> = if eligible.is_empty() {
            (0..self.arms.len())
                .filter(|&i| !self.arms[i].retired)
                .collect()
        } else {
            // An experiment has at most MAX_ARMS arms, so a longer list
            // only repeats names; the cap keeps the scan below bounded.
            if eligible.len() > MAX_ARMS {
                return Err(BanditError::invalid(
                    "eligible_arms",
                    format!(
                        "must have at most {MAX_ARMS} entries, got {}",
                        eligible.len()
                    ),
                ));
            }
            let mut idx = Vec::with_capacity(eligible.len());
            for (i, name) in eligible.iter().enumerate() {
                // An arm name follows the name rule; checking it first keeps
                // an oversized entry out of the NotFound message below.
                name::validate(&format!("eligible_arms[{i}]"), name)
                    .map_err(BanditError::Invalid)?;
                let Some(k) = self.arm_index(name) else {
                    return Err(BanditError::NotFound(format!(
                        "eligible_arms[{i}]: arm {name:?} is not in experiment {:?}",
                        self.name
                    )));
                };
                if !self.arms[k].retired && !idx.contains(&k) {
                    idx.push(k);
                }
            }
            idx
        };
        if picked.is_empty() {
            return Err(BanditError::FailedPrecondition(
                "eligible_arms: no active arm is eligible (all listed arms are retired)".into(),
            ));
        }
        Ok(picked)
    }

    /// The definition with one more arm. `Ok(None)` when the arm is already
    /// active (idempotent); retired names cannot come back, because their
    /// evidence and outstanding decision ids still refer to the old arm.
    pub fn with_arm(&self, arm: &str) -> Result<Option<ExperimentDef>, BanditError> {
        name::validate("arm", arm).map_err(BanditError::Invalid)?;
        if let Some(k) = self.arm_index(arm) {
            if self.arms[k].retired {
                return Err(BanditError::FailedPrecondition(format!(
                    "arm: {arm:?} was retired from {:?}; a retired arm cannot be re-added, use a new name",
                    self.name
                )));
            }
            return Ok(None);
        }
        if self.arms.len() >= MAX_ARMS {
            return Err(BanditError::invalid(
                "arm",
                format!(
                    "experiment {:?} already has the maximum of {MAX_ARMS} arms",
                    self.name
                ),
            ));
        }
        let mut def = self.clone();
        def.arms.push(Arm {
            name: arm.to_string(),
            retired: false,
        });
        Ok(Some(def))
    }

    /// The definition with `arm` retired. `Ok(None)` when already retired.
    /// The last active arm cannot be retired: Choose would have nothing to pick.
    pub fn with_arm_retired(&self, arm: &str) -> Result<Option<ExperimentDef>, BanditError> {
        name::validate("arm", arm).map_err(BanditError::Invalid)?;
        let Some(k) = self.arm_index(arm) else {
            return Err(BanditError::NotFound(format!(
                "arm: {arm:?} is not in experiment {:?}",
                self.name
            )));
        };
        if self.arms[k].retired {
            return Ok(None);
        }
        if self.arms.iter().filter(|a| !a.retired).count() == 1 {
            return Err(BanditError::FailedPrecondition(format!(
                "arm: {arm:?} is the last active arm of {:?}; add another before retiring it",
                self.name
            )));
        }
        let mut def = self.clone();
        def.arms[k].retired = true;
        Ok(Some(def))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(arms: &[&str]) -> NewExperiment {
        NewExperiment {
            name: "exp".into(),
            model: Model::Bernoulli,
            prior: None,
            half_life_seconds: 0.0,
            arms: arms.iter().map(|s| s.to_string()).collect(),
            design: Default::default(),
        }
    }

    #[test]
    fn validation_names_the_field() {
        let e = new(&["a", "a"]).into_def(1).unwrap_err().to_string();
        assert!(e.contains("arms[1]") && e.contains("duplicate"), "{e}");
        let e = new(&[]).into_def(1).unwrap_err().to_string();
        assert!(e.contains("arms"), "{e}");
        let many: Vec<String> = (0..=MAX_ARMS).map(|i| format!("a{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(new(&refs).into_def(1).is_err());
        assert!(new(&refs[..MAX_ARMS]).into_def(1).is_ok());
        let mut n = new(&["a"]);
        n.prior = Some(Prior::DEFAULT_NORMAL);
        assert!(
            n.into_def(1)
                .unwrap_err()
                .to_string()
                .contains("beta_prior")
        );
        let mut n = new(&["a"]);
        n.half_life_seconds = -1.0;
        assert!(
            n.into_def(1)
                .unwrap_err()
                .to_string()
                .contains("half_life_seconds")
        );
    }

    #[test]
    fn half_life_under_a_millisecond_is_refused() {
        let with_hl = |hl: f64| {
            let mut n = new(&["a"]);
            n.half_life_seconds = hl;
            n.into_def(1)
        };
        for hl in [0.0005, 1e-300, f64::MIN_POSITIVE, 0.000_999_9] {
            let e = with_hl(hl).unwrap_err();
            assert!(matches!(e, BanditError::Invalid(_)), "{hl}");
            let e = e.to_string();
            assert!(
                e.starts_with("half_life_seconds: must be 0 (never decay) or at least 0.001"),
                "{e}"
            );
        }
        assert_eq!(with_hl(0.001).unwrap().half_life_ms(), 1);
        assert_eq!(with_hl(0.0).unwrap().half_life_ms(), 0);
        assert_eq!(with_hl(2.5).unwrap().half_life_ms(), 2500);
    }

    #[test]
    fn eligible_and_retired_names_are_checked_before_lookup() {
        let def = new(&["a", "b"]).into_def(1).unwrap();
        let huge = "x".repeat(100_000);
        let e = def.eligible_arms(&["a".into(), huge.clone()]).unwrap_err();
        assert_eq!(
            e,
            BanditError::Invalid("eligible_arms[1]: must be at most 128 bytes, got 100000".into())
        );
        let e = def.with_arm_retired(&huge).unwrap_err();
        assert!(matches!(e, BanditError::Invalid(m) if m.starts_with("arm: must be at most")));
        let many = vec!["a".to_string(); MAX_ARMS + 1];
        let e = def.eligible_arms(&many).unwrap_err().to_string();
        assert_eq!(e, "eligible_arms: must have at most 2000 entries, got 2001");
        assert_eq!(def.eligible_arms(&many[..MAX_ARMS]).unwrap(), vec![0]);
    }

    #[test]
    fn arms_are_added_and_retired() {
        let def = new(&["a", "b"]).into_def(1).unwrap();
        let def2 = def.with_arm("c").unwrap().unwrap();
        assert!(def2.same_definition(&def));
        assert!(def2.with_arm("c").unwrap().is_none());
        let def3 = def2.with_arm_retired("a").unwrap().unwrap();
        assert_eq!(def3.eligible_arms(&[]).unwrap(), vec![1, 2]);
        assert_eq!(
            def3.eligible_arms(&["a".into(), "c".into()]).unwrap(),
            vec![2]
        );
        assert!(matches!(
            def3.eligible_arms(&["zz".into()]),
            Err(BanditError::NotFound(_))
        ));
        assert!(matches!(
            def3.with_arm("a"),
            Err(BanditError::FailedPrecondition(_))
        ));
        let def4 = def3.with_arm_retired("b").unwrap().unwrap();
        assert!(matches!(
            def4.with_arm_retired("c"),
            Err(BanditError::FailedPrecondition(_))
        ));
    }
}
