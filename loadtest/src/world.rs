//! The simulated world: arms with true Bernoulli reward rates (optionally
//! drifting), and the reference player: an in-process Thompson sampler with
//! always-fresh posteriors (`posterior::bandit`) facing the same world at
//! the same decision times with the same reward delay.

use std::collections::VecDeque;

use posterior::bandit::{Evidence, Model, Posterior, Prior, thompson};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

#[derive(Clone, Debug)]
pub struct World {
    pub rates: Vec<f64>,
    /// Every `drift_period_s` the rates rotate by one arm (the best arm
    /// moves); 0 = static.
    pub drift_period_s: f64,
}

impl World {
    /// True rate of `arm` at `t` seconds into the run.
    pub fn rate(&self, arm: usize, t: f64) -> f64 {
        let k = self.rates.len();
        let shift = if self.drift_period_s > 0.0 {
            (t / self.drift_period_s) as usize
        } else {
            0
        };
        self.rates[(arm + shift) % k]
    }

    pub fn best(&self) -> f64 {
        self.rates.iter().copied().fold(f64::MIN, f64::max)
    }

    /// Expected regret of playing `arm` at `t` (pseudo-regret: less noisy
    /// than realized rewards, same expectation).
    pub fn regret(&self, arm: usize, t: f64) -> f64 {
        self.best() - self.rate(arm, t)
    }
}

/// Play the world with fresh posteriors at the given decision times (seconds,
/// ascending); returns the mean cumulative regret over `seeds` plays.
pub fn reference_regret(
    world: &World,
    times: &[f64],
    delay_s: f64,
    half_life_s: f64,
    seeds: u64,
) -> f64 {
    let k = world.rates.len();
    let prior = Prior::default_for(Model::Bernoulli);
    let hl_ms = (half_life_s * 1000.0).round() as i64;
    let candidates: Vec<usize> = (0..k).collect();
    let mut total = 0.0;
    for seed in 0..seeds {
        let mut rng = SmallRng::seed_from_u64(0x5eed + seed);
        let mut ev = vec![Evidence::default(); k];
        let mut pending: VecDeque<(f64, usize, f64)> = VecDeque::new();
        let mut posteriors = Vec::with_capacity(k);
        let mut regret = 0.0;
        for &t in times {
            let now_ms = (t * 1000.0) as i64;
            // Constant delay: rewards come due in decision order.
            while pending.front().is_some_and(|p| p.0 <= t) {
                let Some((due, arm, v)) = pending.pop_front() else {
                    break;
                };
                if let Ok(d) = Model::Bernoulli.delta(v) {
                    ev[arm] = ev[arm].apply(d, (due * 1000.0) as i64, hl_ms);
                }
            }
            posteriors.clear();
            posteriors.extend(
                ev.iter()
                    .map(|e| Posterior::new(&prior, &e.at(now_ms, hl_ms))),
            );
            let arm = thompson::choose(&posteriors, &candidates, &mut rng).unwrap_or(0);
            regret += world.regret(arm, t);
            let v = if rng.random::<f64>() < world.rate(arm, t) {
                1.0
            } else {
                0.0
            };
            pending.push_back((t + delay_s, arm, v));
        }
        total += regret;
    }
    total / seeds.max(1) as f64
}
