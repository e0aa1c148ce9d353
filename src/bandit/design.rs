//! An experiment's design beyond its arms and prior: which direction is
//! better, how Choose allocates (policy, holdback, floors, sticky units),
//! when it stops, and what people call it. Validated once, at create.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::BanditError;
use crate::name;

/// Longest holdback: past half the traffic a "control" is the experiment.
pub const MAX_CONTROL_SHARE: f64 = 0.5;
/// Sticky assignments are stored per unit; a year bounds what they cost.
pub const MAX_STICKY_SECONDS: f64 = 366.0 * 86_400.0;
/// Free text shown in lists and the dashboard, not a document.
pub const MAX_DESCRIPTION_LEN: usize = 1_024;
/// Labels per experiment: enough for owner, team, ticket, surface...
pub const MAX_LABELS: usize = 32;
/// A label value is a short tag, repeated in every list answer.
pub const MAX_LABEL_VALUE_LEN: usize = 256;
/// Default P(best) a winner must reach.
pub const DEFAULT_WINNER_PROB_BEST: f64 = 0.95;
/// Default top-two probability of playing the leader (Russo 2016).
pub const DEFAULT_TOP_TWO_BETA: f64 = 0.5;

/// Whether a higher or a lower reward is better.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum RewardGoal {
    /// Conversions, revenue: the default.
    #[default]
    Maximize,
    /// Error rates, latency, cost.
    Minimize,
}

impl RewardGoal {
    /// `x` in the maximized sense: policies and verdicts compare `oriented`
    /// values, so "best" and "loss" mean the same for both goals.
    pub fn oriented(self, x: f64) -> f64 {
        match self {
            RewardGoal::Maximize => x,
            RewardGoal::Minimize => -x,
        }
    }
}

/// How Choose allocates decisions among the eligible arms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Policy {
    /// Thompson sampling: low regret.
    #[default]
    Thompson,
    /// Top-two Thompson sampling (Russo 2016): play the leader's draw with
    /// probability `beta`, else resample until another arm leads; finds the
    /// best arm in fewer rewards.
    TopTwoThompson { beta: f64 },
}

/// What Choose does once the experiment has a winner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnWinner {
    #[default]
    KeepLearning,
    /// Serve the winner only.
    Exploit,
}

/// When an experiment has a winner.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoppingRule {
    /// P(best) the winner must reach, in (0.5, 1).
    pub prob_best: f64,
    /// The winner's expected loss must also be below this (reward units);
    /// 0 = not used.
    pub expected_loss: f64,
    /// Rewards every active arm needs before a winner can be declared.
    pub min_rewards_per_arm: u64,
    /// After this long without a winner: INCONCLUSIVE. 0 = never.
    pub max_duration_seconds: f64,
    pub on_winner: OnWinner,
}

impl Default for StoppingRule {
    fn default() -> Self {
        StoppingRule {
            prob_best: DEFAULT_WINNER_PROB_BEST,
            expected_loss: 0.0,
            min_rewards_per_arm: 0,
            max_duration_seconds: 0.0,
            on_winner: OnWinner::KeepLearning,
        }
    }
}

/// Everything an experiment declares besides its arms, model and prior.
/// Stored with the definition; records written before it existed read as
/// the default (maximize, Thompson, no control, no floors, not sticky).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Design {
    pub goal: RewardGoal,
    pub policy: Policy,
    /// The arm lift is measured against; `control_share` goes to it.
    pub control_arm: Option<String>,
    /// A fixed share of decisions for the control arm (a holdback).
    pub control_share: f64,
    /// Every active arm gets at least this share of decisions.
    pub min_share: f64,
    /// > 0: a unit keeps its arm this long.
    pub sticky_seconds: f64,
    pub stopping: StoppingRule,
    pub description: String,
    pub labels: BTreeMap<String, String>,
}

fn in_range(field: &str, x: f64, lo: f64, hi: f64, what: &str) -> Result<(), BanditError> {
    if !x.is_finite() || x < lo || x > hi {
        return Err(BanditError::invalid(
            field,
            format!("must be {what}, got {x}"),
        ));
    }
    Ok(())
}

impl Design {
    /// Every rule, against the experiment's arms at create; the error names
    /// the field.
    pub fn validate(&self, arms: &[String]) -> Result<(), BanditError> {
        if let Policy::TopTwoThompson { beta } = self.policy
            && !(beta > 0.0 && beta < 1.0)
        {
            return Err(BanditError::invalid(
                "top_two_beta",
                format!("must be in (0, 1) (0 means the default 0.5), got {beta}"),
            ));
        }
        in_range(
            "control_share",
            self.control_share,
            0.0,
            MAX_CONTROL_SHARE,
            "in [0, 0.5]",
        )?;
        in_range("min_share", self.min_share, 0.0, 1.0, "in [0, 1]")?;
        match &self.control_arm {
            Some(c) => {
                name::validate("control_arm", c).map_err(BanditError::Invalid)?;
                if !arms.iter().any(|a| a == c) {
                    return Err(BanditError::invalid(
                        "control_arm",
                        format!("{c:?} is not one of the experiment's arms"),
                    ));
                }
            }
            None if self.control_share > 0.0 => {
                return Err(BanditError::invalid(
                    "control_share",
                    "needs control_arm: the holdback goes to it",
                ));
            }
            None => {}
        }
        // The holdback and every other arm's floor must fit in one unit of
        // traffic (the control arm's floor is inside its holdback).
        let others = arms
            .len()
            .saturating_sub(usize::from(self.control_arm.is_some()));
        let reserved = self.control_share + self.min_share * others as f64;
        if reserved > 1.0 + 1e-12 {
            return Err(BanditError::invalid(
                "min_share",
                format!(
                    "floors and holdback add up to {reserved} of the traffic (min_share {} x {others} arms + control_share {}); they must fit in 1",
                    self.min_share, self.control_share
                ),
            ));
        }
        in_range(
            "sticky_seconds",
            self.sticky_seconds,
            0.0,
            MAX_STICKY_SECONDS,
            "0 (not sticky) or a number of seconds up to a year",
        )?;
        let s = &self.stopping;
        if !(s.prob_best > 0.5 && s.prob_best < 1.0) {
            return Err(BanditError::invalid(
                "stopping.prob_best",
                format!(
                    "must be in (0.5, 1) (0 means the default {DEFAULT_WINNER_PROB_BEST}), got {}",
                    s.prob_best
                ),
            ));
        }
        in_range(
            "stopping.expected_loss",
            s.expected_loss,
            0.0,
            f64::MAX,
            "0 (not used) or a positive number of reward units",
        )?;
        in_range(
            "stopping.max_duration_seconds",
            s.max_duration_seconds,
            0.0,
            10.0 * 366.0 * 86_400.0,
            "0 (never) or a number of seconds up to ten years",
        )?;
        if self.description.len() > MAX_DESCRIPTION_LEN {
            return Err(BanditError::invalid(
                "description",
                format!(
                    "must be at most {MAX_DESCRIPTION_LEN} bytes, got {}",
                    self.description.len()
                ),
            ));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(BanditError::invalid(
                "labels",
                format!("at most {MAX_LABELS} labels, got {}", self.labels.len()),
            ));
        }
        for (k, v) in &self.labels {
            name::validate(&format!("labels[{k:?}]"), k).map_err(BanditError::Invalid)?;
            if v.len() > MAX_LABEL_VALUE_LEN {
                return Err(BanditError::invalid(
                    format!("labels[{k:?}]"),
                    format!(
                        "a value must be at most {MAX_LABEL_VALUE_LEN} bytes, got {}",
                        v.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arms() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn defaults_are_valid_and_old_records_read_as_defaults() {
        Design::default().validate(&arms()).unwrap();
        let d: Design = serde_json::from_str("{}").unwrap();
        assert_eq!(d, Design::default());
        assert_eq!(d.stopping.prob_best, DEFAULT_WINNER_PROB_BEST);
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(Design, &str)> = vec![
            (
                Design {
                    control_share: 0.6,
                    control_arm: Some("a".into()),
                    ..Default::default()
                },
                "control_share",
            ),
            (
                Design {
                    control_share: 0.1,
                    ..Default::default()
                },
                "control_share",
            ),
            (
                Design {
                    control_arm: Some("z".into()),
                    ..Default::default()
                },
                "control_arm",
            ),
            (
                Design {
                    min_share: 0.4,
                    ..Default::default()
                },
                "min_share",
            ),
            (
                Design {
                    control_arm: Some("a".into()),
                    control_share: 0.5,
                    min_share: 0.26,
                    ..Default::default()
                },
                "min_share",
            ),
            (
                Design {
                    policy: Policy::TopTwoThompson { beta: 1.0 },
                    ..Default::default()
                },
                "top_two_beta",
            ),
            (
                Design {
                    sticky_seconds: -1.0,
                    ..Default::default()
                },
                "sticky_seconds",
            ),
            (
                Design {
                    stopping: StoppingRule {
                        prob_best: 0.4,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "stopping.prob_best",
            ),
            (
                Design {
                    description: "x".repeat(MAX_DESCRIPTION_LEN + 1),
                    ..Default::default()
                },
                "description",
            ),
            (
                Design {
                    labels: [("bad key".to_string(), "v".to_string())].into(),
                    ..Default::default()
                },
                "labels",
            ),
        ];
        for (d, field) in cases {
            let e = d.validate(&arms()).unwrap_err().to_string();
            assert!(e.starts_with(field), "{field}: {e}");
        }
        // Exactly full: a holdback of 0.5 and floors of 0.25 for two others.
        Design {
            control_arm: Some("a".into()),
            control_share: 0.5,
            min_share: 0.25,
            ..Default::default()
        }
        .validate(&arms())
        .unwrap();
    }

    #[test]
    fn orientation() {
        assert_eq!(RewardGoal::Maximize.oriented(0.2), 0.2);
        assert_eq!(RewardGoal::Minimize.oriented(0.2), -0.2);
    }
}
