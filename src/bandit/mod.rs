//! Multi-armed bandits: the pure domain. No I/O, no async; deterministic
//! under a seeded RNG.
//!
//! - [`posterior`]: reward models, evidence, conjugate posteriors, decay.
//! - [`experiment`]: an experiment's definition, arms and their limits.
//! - [`design`]: goal, policy, holdback and floors, sticky units, stopping
//!   rule, description and labels.
//! - [`allocation`]: how Choose allocates: policy (Thompson, top-two),
//!   holdback, floors, and the propensity of each arm.
//! - [`leader`]: P(each arm leads a joint draw) by quadrature: plain
//!   Thompson's propensities without Monte Carlo.
//! - [`history`]: an experiment's history points, their stored form, and
//!   the drift (KL divergence) between successive posteriors.
//! - [`thompson`]: Thompson sampling and P(best).
//! - [`token`]: signed decision ids (no store write on Choose).
//! - [`verdict`]: expected loss, lift, the stopping rule's verdict and the
//!   canary gate's probabilities.

pub mod allocation;
pub mod design;
pub mod experiment;
pub mod history;
pub mod leader;
pub mod posterior;
pub mod thompson;
pub mod token;
pub mod verdict;

pub use allocation::Allocation;
pub use design::{Design, OnWinner, Policy, RewardGoal, StoppingRule};
pub use experiment::{Arm, ExperimentDef, MAX_ARMS, NewExperiment};
pub use posterior::{Delta, Evidence, Model, Posterior, Prior};
pub use token::{Decision, DecisionSigner, TokenError};

/// Errors of the bandit domain. Each message names the field and the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BanditError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
}

impl BanditError {
    pub fn invalid(field: impl std::fmt::Display, rule: impl std::fmt::Display) -> Self {
        BanditError::Invalid(format!("{field}: {rule}"))
    }
}
