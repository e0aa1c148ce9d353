//! The simulated world: arms with true Bernoulli reward rates (optionally
//! drifting), and the reference player: an in-process Thompson sampler with
//! always-fresh posteriors (`posterior::bandit`) facing the same world at
//! the same decision times, each of its rewards visible after the realized
//! delay of the served decision in the same position (checked against an
//! exact enumeration in the tests).

use std::collections::BinaryHeap;

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

/// One served play's decision times and when each decision's reward became
/// visible to the server (acknowledged), both in seconds from the start;
/// `f64::INFINITY` for a reward never sent or never acknowledged.
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    /// Ascending.
    pub times: Vec<f64>,
    /// One per decision.
    pub visible: Vec<f64>,
}

/// A reward waiting to become visible, ordered by that time (earliest first
/// out of a max-heap).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Pending {
    visible: f64,
    arm: usize,
    value: f64,
}

impl Eq for Pending {}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.visible.total_cmp(&self.visible)
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The reference: an in-process Thompson sampler (the server's default
/// prior, Beta(1, 1)) that makes its i-th decision at `schedule.times[i]`
/// with every reward visible by then, its i-th decision's reward becoming
/// visible at `schedule.visible[i]`: the served play's realized delays, so
/// it faces the same lag from the reward path as the server, and none from
/// snapshots. Returns the cumulative pseudo-regret of each of `seeds` plays
/// (seeds `first_seed..`).
pub fn reference_regrets(
    world: &World,
    schedule: &Schedule,
    half_life_s: f64,
    first_seed: u64,
    seeds: u64,
) -> Vec<f64> {
    let k = world.rates.len();
    let prior = Prior::default_for(Model::Bernoulli);
    let hl_ms = (half_life_s * 1000.0).round() as i64;
    let candidates: Vec<usize> = (0..k).collect();
    let mut out = Vec::with_capacity(seeds as usize);
    for seed in first_seed..first_seed + seeds {
        let mut rng = SmallRng::seed_from_u64(0x5eed ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut ev = vec![Evidence::default(); k];
        let mut pending: BinaryHeap<Pending> = BinaryHeap::new();
        let mut posteriors = Vec::with_capacity(k);
        let mut regret = 0.0;
        for (i, &t) in schedule.times.iter().enumerate() {
            let now_ms = (t * 1000.0) as i64;
            while pending.peek().is_some_and(|p| p.visible <= t) {
                let Some(p) = pending.pop() else { break };
                if let Ok(d) = Model::Bernoulli.delta(p.value) {
                    ev[p.arm] = ev[p.arm].apply(d, (p.visible * 1000.0) as i64, hl_ms);
                }
            }
            posteriors.clear();
            posteriors.extend(
                ev.iter()
                    .map(|e| Posterior::new(&prior, &e.at(now_ms, hl_ms))),
            );
            let arm = thompson::choose(&posteriors, &candidates, &mut rng).unwrap_or(0);
            regret += world.regret(arm, t);
            let value = if rng.random::<f64>() < world.rate(arm, t) {
                1.0
            } else {
                0.0
            };
            let visible = schedule.visible.get(i).copied().unwrap_or(f64::INFINITY);
            if visible.is_finite() {
                pending.push(Pending {
                    visible,
                    arm,
                    value,
                });
            }
        }
        out.push(regret);
    }
    out
}

/// Mean and standard error of the mean.
pub fn mean_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// B(p, q) for positive integers: (p−1)!(q−1)!/(p+q−1)!.
    fn beta_fn(p: u32, q: u32) -> f64 {
        let f = |n: u32| (1..=n).map(f64::from).product::<f64>();
        f(p - 1) * f(q - 1) / f(p + q - 1)
    }

    fn binom(n: u32, k: u32) -> f64 {
        (0..k)
            .map(|i| f64::from(n - i) / f64::from(i + 1))
            .product()
    }

    /// P(X > Y), X ~ Beta(a, b), Y ~ Beta(c, d), integer parameters, in
    /// closed form: F_Y(x) = Σ_{j=c}^{N} C(N, j) x^j (1−x)^{N−j} with
    /// N = c + d − 1, and E[X^j (1−X)^{N−j}] = B(a + j, b + N − j) / B(a, b).
    fn prob_greater(a: u32, b: u32, c: u32, d: u32) -> f64 {
        let n = c + d - 1;
        (c..=n)
            .map(|j| binom(n, j) * beta_fn(a + j, b + n - j) / beta_fn(a, b))
            .sum()
    }

    /// Exact expected regret of Thompson sampling on two Bernoulli arms
    /// under `schedule`, by enumerating every history (arm and outcome of
    /// each decision): decision i sees exactly the rewards of the earlier
    /// decisions j with visible[j] ≤ times[i], and plays arm 0 with
    /// probability P(θ₀ > θ₁) under Beta(1 + successes, 1 + failures).
    fn brute_force(rates: [f64; 2], s: &Schedule) -> f64 {
        fn go(rates: [f64; 2], s: &Schedule, hist: &mut Vec<(usize, bool)>, p: f64) -> f64 {
            let i = hist.len();
            if i == s.times.len() {
                return 0.0;
            }
            let mut c = [[1u32; 2]; 2]; // c[arm] = [1 + successes, 1 + failures]
            for (j, &(arm, ok)) in hist.iter().enumerate() {
                if s.visible[j] <= s.times[i] {
                    c[arm][usize::from(!ok)] += 1;
                }
            }
            let p0 = prob_greater(c[0][0], c[0][1], c[1][0], c[1][1]);
            let best = rates[0].max(rates[1]);
            let mut total = 0.0;
            for (arm, pa) in [(0, p0), (1, 1.0 - p0)] {
                total += p * pa * (best - rates[arm]);
                for (ok, po) in [(true, rates[arm]), (false, 1.0 - rates[arm])] {
                    hist.push((arm, ok));
                    total += go(rates, s, hist, p * pa * po);
                    hist.pop();
                }
            }
            total
        }
        go(rates, s, &mut Vec::new(), 1.0)
    }

    #[test]
    fn prob_greater_closed_form() {
        assert!((prob_greater(1, 1, 1, 1) - 0.5).abs() < 1e-12);
        // Beta(2,1) vs Beta(1,1): ∫ 2x · x dx = 2/3.
        assert!((prob_greater(2, 1, 1, 1) - 2.0 / 3.0).abs() < 1e-12);
        assert!((prob_greater(3, 2, 2, 3) + prob_greater(2, 3, 3, 2) - 1.0).abs() < 1e-12);
    }

    /// The Monte Carlo reference against the exact expectation on small
    /// cases: constant delays, realized (irregular) delays with a reward
    /// never acknowledged, and no feedback at all, where Thompson with
    /// equal priors plays uniformly: regret = n·(best − mean rate) in
    /// closed form. 200,000 plays; each play's regret lies in [0, 8·0.4],
    /// so the mean's s.e. is measured and the bound is 4 s.e. (fixed seeds).
    #[test]
    fn reference_matches_brute_force() {
        let world = World {
            rates: vec![0.3, 0.7],
            drift_period_s: 0.0,
        };
        let times: Vec<f64> = (0..8).map(f64::from).collect();
        let constant = Schedule {
            visible: times.iter().map(|t| t + 1.5).collect(),
            times: times.clone(),
        };
        let realized = Schedule {
            visible: vec![0.5, 3.2, 2.9, f64::INFINITY, 4.1, 9.0, 6.5, 7.5],
            times: times.clone(),
        };
        let immediate = Schedule {
            visible: times.clone(),
            times: times.clone(),
        };
        let never = Schedule {
            visible: vec![f64::INFINITY; 8],
            times: times.clone(),
        };
        let uniform = 8.0 * (0.7 - 0.5);
        assert!((brute_force([0.3, 0.7], &never) - uniform).abs() < 1e-9);
        for (name, s) in [
            ("constant", &constant),
            ("realized", &realized),
            ("immediate", &immediate),
            ("never", &never),
        ] {
            let exact = brute_force([0.3, 0.7], s);
            let plays = reference_regrets(&world, s, 0.0, 0, 200_000);
            let (mean, se) = mean_se(&plays);
            assert!(
                (mean - exact).abs() <= 4.0 * se,
                "{name}: reference {mean} ± {se}, exact {exact}"
            );
        }
        // Feedback helps: the exact regrets are ordered by how much is seen.
        let e = |s: &Schedule| brute_force([0.3, 0.7], s);
        assert!(e(&immediate) < e(&constant) && e(&constant) < e(&never));
    }
}
