//! The single error type of the `bo` module.

use thiserror::Error;

/// Everything that can go wrong in the Bayesian-optimization core.
///
/// `field` strings use a JSON-path-like syntax (`parameters[2].float.low`) so
/// the service can surface them verbatim in an `INVALID_ARGUMENT` status.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BoError {
    /// The search space violates a rule (bounds, names, levels, size).
    #[error("invalid search space: {field}: {rule}")]
    InvalidSpace { field: String, rule: String },
    /// The study spec (outside the space) violates a rule.
    #[error("invalid study spec: {field}: {rule}")]
    InvalidSpec { field: String, rule: String },
    /// A configuration does not belong to the search space.
    #[error("invalid configuration: {field}: {rule}")]
    InvalidConfig { field: String, rule: String },
    /// An observation is malformed (bad config, non-finite value, ...).
    #[error("invalid observation: {field}: {rule}")]
    InvalidObservation { field: String, rule: String },
    /// A request argument (e.g. `count`) is out of range.
    #[error("invalid request: {field}: {rule}")]
    InvalidRequest { field: String, rule: String },
    /// The study's state refuses the request (too many pending trials, the
    /// trial cap): observe or abandon trials first.
    #[error("{field}: {rule}")]
    Refused { field: String, rule: String },
    /// Every configuration of a finite space has been observed, failed or is pending.
    #[error("search space exhausted: every configuration has been tried or is pending")]
    SpaceExhausted,
    /// A linear-algebra step failed even after the jitter escalation.
    #[error("numerical failure: {0}")]
    Numerical(String),
}

impl BoError {
    pub(crate) fn space(field: impl Into<String>, rule: impl Into<String>) -> Self {
        BoError::InvalidSpace {
            field: field.into(),
            rule: rule.into(),
        }
    }
    pub(crate) fn spec(field: impl Into<String>, rule: impl Into<String>) -> Self {
        BoError::InvalidSpec {
            field: field.into(),
            rule: rule.into(),
        }
    }
    pub(crate) fn config(field: impl Into<String>, rule: impl Into<String>) -> Self {
        BoError::InvalidConfig {
            field: field.into(),
            rule: rule.into(),
        }
    }
    pub(crate) fn observation(field: impl Into<String>, rule: impl Into<String>) -> Self {
        BoError::InvalidObservation {
            field: field.into(),
            rule: rule.into(),
        }
    }
    pub(crate) fn request(field: impl Into<String>, rule: impl Into<String>) -> Self {
        BoError::InvalidRequest {
            field: field.into(),
            rule: rule.into(),
        }
    }
}
