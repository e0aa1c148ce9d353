//! The application core: every use case once, in domain types, called by
//! both transports (`grpc`, `http`).
//!
//! - [`bandits`]: experiments and arms, Choose (snapshot cache, eligibility,
//!   outage fallback), Reward (exactly-once by decision id), summaries.
//! - [`studies`]: studies, Suggest and Observe (study lock, revision,
//!   compare-and-set, retries), the recommendation.
//! - [`history`]: the per-interval history of every experiment (recording
//!   loop, decision counters) and GetExperimentHistory.
//! - [`snapshot`]: the Choose snapshot cache (bounded staleness, single-flight).
//! - [`page`]: pagination of lists.
//! - [`verdict`]: GetVerdict, Gate and the list view's per-experiment facts.
//!
//! Errors are [`crate::error::Error`]: a kind and a message naming the field
//! and the rule; the transports map the kind through one table.

pub mod bandits;
pub mod history;
pub mod page;
pub mod snapshot;
pub mod studies;
pub mod verdict;

use std::sync::Arc;

use crate::error::Error;
use crate::store::Store;

pub use bandits::Bandits;
pub use studies::Studies;

/// Both use-case families over one store: what a transport holds.
pub struct App {
    pub bandits: Bandits,
    pub studies: Studies,
    store: Arc<dyn Store>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, bandits: Bandits, studies: Studies) -> App {
        App {
            bandits,
            studies,
            store,
        }
    }

    /// Readiness: the store answers a round trip.
    pub async fn ready(&self) -> Result<(), Error> {
        Ok(self.store.ping().await?)
    }
}

/// Wall-clock milliseconds since the Unix epoch: decision issue times and
/// decay are measured in it. A clock before 1970 reads as 0 rather than panic.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
