//! Bayesian optimization core (pure math, no I/O, deterministic under a seed).
//!
//! Module map:
//! * [`space`]: search space declaration, validation, unit-cube encoding/decoding.
//! * [`sobol`]: initial design (maximin Latin hypercube).
//! * [`kernel`]: Matérn-5/2 ARD × exchangeable categorical kernel, hyperparameters.
//! * [`gp`]: exact GP conditioning (Cholesky with escalating jitter) and prediction.
//! * [`fit`]: hyperparameter fit (log marginal likelihood + priors, argmin L-BFGS).
//! * [`cost`]: known prices (cost models), the log-normal expected improvement.
//! * [`acquisition`]: log EI (stable tails), UCB, log PI, log P(feasible).
//! * [`maximize`]: acquisition maximization over mixed spaces.
//! * [`suggest`]: the algorithm: the entry points [`suggest()`] and [`recommend`].
//! * [`study`]: a study: its definition, trials and their lifecycle.
//! * [`testfns`]: benchmark functions (Branin, Hartmann6, Ackley-5, Rosenbrock-4, serverless toy).
//! * [`warp`]: output standardization and the Yeo-Johnson output warp.
//! * [`error`]: the error type [`BoError`].

pub mod acquisition;
pub mod cost;
pub mod error;
pub mod fit;
pub mod gp;
pub mod kernel;
pub mod maximize;
pub mod pareto;
pub mod slices;
pub mod sobol;
pub mod space;
pub mod study;
pub mod suggest;
pub mod testfns;
pub mod warp;

pub use acquisition::{Acquisition, DEFAULT_UCB_BETA};
pub use cost::CostModel;
pub use error::BoError;
pub use kernel::Hyper;
pub use space::{
    MAX_CATEGORY_LEN, MAX_DIMENSIONS, MAX_LEVELS, ParamKind, ParamValue, Parameter, Point,
    SearchSpace,
};
pub use study::{
    Best, DEFAULT_MAX_PENDING, MAX_ABANDONED_KEPT, MAX_METRICS, MAX_PENDING_CEILING, MAX_QUEUED,
    MAX_REASON_LEN, MAX_TRIAL_TIMEOUT_SECONDS, MAX_TRIALS, ObserveError, StudyDef, StudyState,
    Trial, TrialState,
};
pub use suggest::{
    Constraint, FitState, Goal, MAX_CONSTRAINTS, MAX_METRIC_NAME_LEN, Observation, Recommendation,
    StudySpec, Suggestion, default_n_initial, recommend, suggest,
};
