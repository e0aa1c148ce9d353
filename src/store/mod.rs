//! Where posterior state lives: one trait, several backends.
//!
//! - [`embedded`]: a redb file, the durable default of `posterior serve`.
//! - [`memory`]: in-process and volatile, for tests and demos.
//! - [`redis`]: Redis (production). Every update is one atomic server-side
//!   script, so any number of service replicas can share one Redis.
//!
//! The store knows domain state types only, never proto types. It does not
//! decide policy (what is a valid reward, what is idempotent): it applies
//! what the API layer computed with the domain, atomically.

pub mod embedded;
pub mod memory;
pub mod redis;

use async_trait::async_trait;

use crate::bandit::history::HistoryPoint;
use crate::bandit::{Delta, Evidence, ExperimentDef};
use crate::bo::StudyState;

/// An experiment as read from the store: its definition and one evidence
/// record per arm (same order as `def.arms`).
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentState {
    pub def: ExperimentDef,
    pub evidence: Vec<Evidence>,
}

/// Result of a create.
#[derive(Clone, Debug, PartialEq)]
pub enum Created<T> {
    Created,
    /// Something of that name already exists: this is it.
    Exists(Box<T>),
}

/// One reward, computed by the domain, applied atomically by the store.
#[derive(Clone, Debug, PartialEq)]
pub struct RewardUpdate {
    pub experiment: String,
    /// The incarnation the decision was issued for; a mismatch means the
    /// experiment was deleted (and maybe re-created) since: `NotFound`.
    pub experiment_id: u64,
    pub arm: usize,
    pub delta: Delta,
    pub now_ms: i64,
    pub half_life_ms: i64,
    /// Exactly-once bookkeeping: apply only if this decision was not
    /// rewarded before. `None` for rewards by arm name (no exactly-once).
    pub dedupe: Option<Dedupe>,
}

/// Exactly-once bookkeeping for one decision: remember `key` until
/// `expire_at_ms` (issue time + dedupe window + margin). Stores may group
/// keys by `issued_ms` (Redis keeps one set per issue hour).
#[derive(Clone, Debug, PartialEq)]
pub struct Dedupe {
    pub key: [u8; 16],
    pub issued_ms: u64,
    pub expire_at_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewardOutcome {
    Applied,
    /// The dedupe key was already present: acknowledged, not applied again.
    Duplicate,
}

/// A sticky unit's arm, stored with its first decision.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Assignment {
    /// Index into the definition's arms.
    pub arm: usize,
    /// The probability the first decision had: every repeat reports it.
    pub propensity: f64,
}

/// Assign a sticky unit: see [`Store::assign_unit`].
#[derive(Clone, Debug, PartialEq)]
pub struct AssignUnit<'a> {
    pub experiment: &'a str,
    /// The incarnation: part of the stored key, so a re-created experiment
    /// of the same name never reads its predecessor's assignments.
    pub experiment_id: u64,
    pub unit: &'a str,
    /// What to store when the unit has no live assignment.
    pub proposed: Assignment,
    /// An assignment to this arm (retired, or not eligible for this
    /// request) counts as absent and is overwritten, in the same atomic
    /// step: a compare-and-set on the stored arm.
    pub replace: Option<usize>,
    /// How long the assignment lives (the experiment's sticky_seconds).
    pub ttl_ms: u64,
}

/// Errors of the store layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable or timed out: retryable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    /// A concurrent writer changed the record between read and write, more
    /// often than the retry budget allows.
    #[error("concurrent modification of {0}; retry")]
    Conflict(String),
    /// Stored data that does not parse: a bug or a foreign writer.
    #[error("corrupt stored state: {0}")]
    Corrupt(String),
}

/// Experiment state storage. Implementations must make `reward` atomic
/// (dedupe check + decay + update as one step) across every process that
/// shares the backend.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Create unless the name exists; then return the existing definition.
    async fn create_experiment(
        &self,
        def: &ExperimentDef,
    ) -> Result<Created<ExperimentDef>, StoreError>;
    async fn experiment(&self, name: &str) -> Result<Option<ExperimentState>, StoreError>;
    /// Names, sorted.
    async fn list_experiments(&self) -> Result<Vec<String>, StoreError>;
    /// `false` when there was nothing to delete.
    async fn delete_experiment(&self, name: &str) -> Result<bool, StoreError>;
    /// Replace the definition if it still equals `old` (compare-and-set),
    /// creating zero evidence for arms appended by `new`. `Ok(false)` when
    /// `old` no longer matches: the caller re-reads and retries.
    async fn update_definition(
        &self,
        old: &ExperimentDef,
        new: &ExperimentDef,
    ) -> Result<bool, StoreError>;
    async fn reward(&self, update: &RewardUpdate) -> Result<RewardOutcome, StoreError>;

    /// Create a study unless the name exists; then return the existing one.
    async fn create_study(&self, study: &StudyState) -> Result<Created<StudyState>, StoreError>;
    async fn study(&self, name: &str) -> Result<Option<StudyState>, StoreError>;
    /// Compare-and-set: store `study` (whose `revision` is one more than
    /// before) only if the stored revision is still `study.revision - 1`.
    /// `Ok(false)` when someone else saved first: re-read and retry.
    async fn save_study(&self, study: &StudyState) -> Result<bool, StoreError>;
    /// Names, sorted.
    async fn list_studies(&self) -> Result<Vec<String>, StoreError>;
    async fn delete_study(&self, name: &str) -> Result<bool, StoreError>;

    /// The decision-signing key shared by every process on this store: the
    /// first to ask stores `proposed`, everyone gets the stored one back, so
    /// decision ids stay valid across replicas and restarts. The in-memory
    /// store lives as long as the process: it returns `proposed`.
    async fn shared_secret(&self, proposed: &[u8]) -> Result<Vec<u8>, StoreError>;

    /// A cheap round trip, for health checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Sticky units: the unit's live assignment in this incarnation of the
    /// experiment; when it has none (never assigned, expired, or assigned
    /// to `a.replace`), store `a.proposed` for `a.ttl_ms` and return it.
    /// One atomic set-if-absent across every process sharing the backend:
    /// concurrent first decisions for one unit all get the same arm.
    async fn assign_unit(&self, a: &AssignUnit<'_>) -> Result<Assignment, StoreError>;

    /// History: record `point` for its interval (`point.time_ms`, the
    /// interval's start, identifies it). When no point exists for that
    /// interval, store it and answer `true`; when one does (another
    /// replica recorded it first), add `point`'s decision counts to it arm
    /// by arm and answer `false`. One atomic step across every process on
    /// the backend, so there is exactly one point per interval and every
    /// replica's decisions land in it. Then keep only the newest
    /// `retention_points` points. `NotFound` when the experiment does not
    /// exist (a recording racing a delete leaves nothing behind).
    async fn append_history(
        &self,
        experiment: &str,
        point: &HistoryPoint,
        retention_points: usize,
    ) -> Result<bool, StoreError>;

    /// The experiment's points with `time_ms >= since_ms` (all without),
    /// oldest first; empty for an unknown experiment. Deleting an
    /// experiment deletes its history.
    async fn history(
        &self,
        experiment: &str,
        since_ms: Option<i64>,
    ) -> Result<Vec<HistoryPoint>, StoreError>;
}

/// A point as every store keeps it: through the stored form (single
/// precision, see `bandit::history::encode`), so all backends read back
/// the same values.
pub fn stored_form(point: &HistoryPoint) -> Result<HistoryPoint, StoreError> {
    crate::bandit::history::decode(&crate::bandit::history::encode(point))
        .map_err(StoreError::Corrupt)
}
