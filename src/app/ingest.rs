//! Aggregated and batched rewards: RewardAggregate (the sufficient
//! statistics of many outcomes, exactly once per request id) and
//! RewardBatch (many rewards in one call and one store operation). Both
//! go through the same path as Reward ([`Bandits::ingest`]), so a reward
//! is checked and applied the same way whichever call carries it.

use sha2::{Digest, Sha256};

use super::Bandits;
use super::bandits::{RewardTarget, Rewarded, arm_index, missing_target};
use super::now_ms;
use crate::bandit::ExperimentDef;
use crate::error::Error;
use crate::store::{Dedupe, DedupeKind, RewardUpdate};

/// Longest `request_id`: a UUID is 36 bytes, a hex SHA-256 64; the store
/// keeps a fixed-size digest of it, so the bound is about sane input, not
/// memory.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Most items in one RewardBatch: 1,000 rewards make a request of a few
/// tens of KiB (well under the 4 MiB message limit) and one Redis pipeline
/// that holds Redis for about a millisecond.
pub const MAX_BATCH_REWARDS: usize = 1000;

/// The fields of a batch item, as its errors name them.
const ITEM_FIELDS: [&str; 3] = ["decision_id:", "arm:", "value:"];

/// A RewardAggregate as a caller sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    pub experiment: String,
    pub arm: String,
    /// Outcomes summarized.
    pub count: u64,
    /// Their sum (BERNOULLI: successes).
    pub sum: f64,
    /// The sum of their squares (GAUSSIAN; not used for BERNOULLI).
    pub sum_squares: f64,
    /// Exactly once per (experiment, arm, request_id) within the dedupe window.
    pub request_id: String,
}

/// One reward of a RewardBatch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchItem {
    /// `None` when the caller gave neither: that item fails alone.
    pub target: Option<RewardTarget>,
    pub value: f64,
}

/// A RewardBatch as a caller sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub experiment: String,
    pub rewards: Vec<BatchItem>,
}

/// The store key of a request id: a digest of the incarnation, the arm and
/// the id, so a re-created experiment (new incarnation) or another arm
/// starts afresh, and the key is 16 bytes whatever the id's length.
/// Collisions need 2^64 ids (birthday bound on 128 bits).
fn request_key(experiment_id: u64, arm: usize, request_id: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    // Domain separation from decision keys (issue time + nonce).
    h.update(b"posterior.v1.RewardAggregate.request_id\0");
    h.update(experiment_id.to_be_bytes());
    h.update((arm as u64).to_be_bytes());
    h.update(request_id.as_bytes());
    let digest = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&digest[..16]);
    k
}

impl Bandits {
    /// Apply the sufficient statistics of `count` outcomes to one arm,
    /// exactly once per request id within the dedupe window.
    pub async fn reward_aggregate(&self, a: &Aggregate) -> Result<Rewarded, Error> {
        if a.request_id.is_empty() {
            return Err(Error::invalid(
                "request_id: required (a retry with the same id is applied once)",
            ));
        }
        if a.request_id.len() > MAX_REQUEST_ID_BYTES {
            return Err(Error::invalid(format!(
                "request_id: at most {MAX_REQUEST_ID_BYTES} bytes, got {}",
                a.request_id.len()
            )));
        }
        let now = now_ms();
        let mut out = self
            .ingest(&a.experiment, 1, |def, _| {
                self.aggregate_update(def, a, now)
            })
            .await?;
        out.pop()
            .unwrap_or_else(|| Err(Error::internal("reward aggregate: no result")))
    }

    fn aggregate_update(
        &self,
        def: &ExperimentDef,
        a: &Aggregate,
        now: i64,
    ) -> Result<RewardUpdate, Error> {
        let arm = arm_index(def, &a.arm)?;
        let delta = def.model.aggregate(a.count, a.sum, a.sum_squares)?;
        let s = &self.settings;
        let issued = now.max(0) as u64;
        Ok(RewardUpdate {
            experiment: def.name.clone(),
            experiment_id: def.id,
            arm,
            delta,
            now_ms: now,
            half_life_ms: def.half_life_ms(),
            dedupe: Some(Dedupe {
                kind: DedupeKind::Request,
                key: request_key(def.id, arm, &a.request_id),
                issued_ms: issued,
                // Retries within the window are recognized; the skew is
                // margin for replicas whose clocks run behind.
                expire_at_ms: issued.saturating_add(s.dedupe_window_ms + s.max_clock_skew_ms)
                    as i64,
            }),
        })
    }

    /// Apply up to [`MAX_BATCH_REWARDS`] rewards in one store operation:
    /// one result per item, in order; a bad item fails alone.
    pub async fn reward_batch(&self, b: &Batch) -> Result<Vec<Result<Rewarded, Error>>, Error> {
        let n = b.rewards.len();
        if n == 0 || n > MAX_BATCH_REWARDS {
            return Err(Error::invalid(format!(
                "rewards: between 1 and {MAX_BATCH_REWARDS} items, got {n}"
            )));
        }
        let now = now_ms();
        let out = self
            .ingest(&b.experiment, n, |def, i| {
                let r = &b.rewards[i];
                let target = r.target.as_ref().ok_or_else(missing_target)?;
                self.reward_update(def, target, r.value, now)
            })
            .await?;
        // Name the item's field in its message: "rewards[3].value: ...".
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.map_err(|e| {
                    if ITEM_FIELDS.iter().any(|f| e.message.starts_with(f)) {
                        Error::new(e.kind, format!("rewards[{i}].{}", e.message))
                    } else {
                        e
                    }
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::request_key;

    #[test]
    fn request_keys_differ_by_incarnation_arm_and_id() {
        let k = request_key(1, 0, "r");
        assert_eq!(k, request_key(1, 0, "r"));
        assert_ne!(k, request_key(2, 0, "r"));
        assert_ne!(k, request_key(1, 1, "r"));
        assert_ne!(k, request_key(1, 0, "s"));
    }
}
