//! How Choose allocates one decision among the eligible arms: the policy
//! (Thompson or top-two Thompson), the holdback for the control arm, the
//! per-arm floors, and the probability of each outcome (the propensity).
//!
//! **The mixture.** For an eligible set `E` (active arms, or the caller's
//! subset of them), with `c` the control arm:
//!
//! - holdback `h = control_share` if `c ∈ E`, else `0` (an ineligible
//!   control cannot be shown, so its share goes back to the policy);
//! - floor set `O = E \ {c}` when `c ∈ E` and `control_share ≥ min_share`
//!   (the holdback already meets the control's floor), else `O = E`;
//!   `m = |O|`;
//! - floor mass `f = min(min_share · m, 1 − h)` (create checks that the
//!   holdback and the floors fit in 1 for the arms at create; the cap only
//!   matters after AddArm grew the experiment past that);
//! - policy weight `w = 1 − h − f`.
//!
//! One uniform `u` decides the branch: `u < h` plays `c`; `u < h + f` plays
//! one arm of `O` uniformly; otherwise the policy plays over all of `E`. So
//! for each arm `i ∈ E`
//!
//! `P(i) = h·[i = c] + (f / m)·[i ∈ O] + w·π_i`,
//!
//! where `π` is the policy's own distribution over `E` (Σπ = 1), hence
//! `Σ P = h + f + w = 1`, every arm of `O` gets at least `f / m` (=
//! `min_share` unless capped) and the control at least `h`. Only `π` needs
//! computing ([`Allocation::propensities`]): for plain Thompson by
//! quadrature (`bandit::leader`, tens of µs for 10 arms, checked to 10⁻⁶),
//! for top-two (and where the quadrature cannot vouch for its accuracy) by
//! Monte Carlo (~2–4 ms for 10 arms); the mixture weights are exact.
//!
//! **Goal.** Draws are compared through [`RewardGoal::oriented`], so "the
//! leader" is the lowest draw for MINIMIZE experiments.

use rand::{Rng, RngExt};

use super::design::{Design, Policy, RewardGoal};
use super::leader;
use super::posterior::Posterior;

/// Top-two resamples before giving up on finding a challenger. The expected
/// number is `1 / (1 − P(leader is best))`, unbounded as the leader becomes
/// certain; 100 keeps a Choose at most ~100 joint draws (a few µs for 10
/// arms) and is hit with probability `P(best)^100` (< 0.5 % while P(best) ≤
/// 0.95). Then the best non-leader of the last draw is played: the arm that
/// an unbounded loop would most likely reach. [`Allocation::propensities`]
/// simulates this exact procedure, so reported propensities stay right.
pub const TOP_TWO_MAX_RESAMPLES: usize = 100;

/// Policy draws behind a propensity: one s.e. is √(p(1−p)/n) ≤ √(0.25/n),
/// which is 0.005 at n = 10,000.
pub const PROPENSITY_DRAWS: usize = 10_000;
/// Single posterior draws a propensity table may cost (~20–40 ns each, so
/// ≤ ~60 ms off the async threads). Large experiments get fewer joint
/// draws: 2,000 arms get 1,000 (s.e. ≤ 0.016 in the worst case, ≤ 0.0031
/// for an arm drawn ≤ 1 % of the time, which is what most of 2,000 arms are).
pub const PROPENSITY_DRAW_BUDGET: usize = 2_000_000;
/// Fewest joint draws whatever the arm count.
pub const MIN_PROPENSITY_DRAWS: usize = 1_000;

/// Joint draws for a propensity table over `arms` eligible arms.
pub fn propensity_draws(arms: usize) -> usize {
    if arms == 0 {
        return 0;
    }
    (PROPENSITY_DRAW_BUDGET / arms).clamp(MIN_PROPENSITY_DRAWS, PROPENSITY_DRAWS)
}

/// How the policy's distribution behind a propensity table is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Quadrature for plain Thompson where it vouches for its accuracy,
    /// Monte Carlo otherwise (what Choose reports).
    Quadrature,
    /// Monte Carlo whatever the policy.
    MonteCarlo,
}

/// An experiment's allocation rule, resolved against its arm indices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Allocation {
    pub goal: RewardGoal,
    pub policy: Policy,
    /// Index of the control arm, if there is one.
    pub control: Option<usize>,
    pub control_share: f64,
    pub min_share: f64,
}

/// The exact mixture weights for one eligible set (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Mixture {
    /// The control arm and its holdback `h` (only when eligible and h > 0).
    holdback: Option<(usize, f64)>,
    /// Arm left out of the floor set `O` (the control, when its holdback
    /// covers its floor).
    floor_skip: Option<usize>,
    /// `m = |O|`.
    floor_arms: usize,
    /// `f`: total floor mass.
    floor: f64,
}

impl Mixture {
    fn policy_weight(&self) -> f64 {
        let h = self.holdback.map_or(0.0, |(_, h)| h);
        (1.0 - h - self.floor).max(0.0)
    }
}

impl Allocation {
    /// `arm_index` resolves the control arm's name (`None` if it is not an arm).
    pub fn new(design: &Design, arm_index: impl Fn(&str) -> Option<usize>) -> Allocation {
        Allocation {
            goal: design.goal,
            policy: design.policy,
            control: design.control_arm.as_deref().and_then(arm_index),
            control_share: design.control_share,
            min_share: design.min_share,
        }
    }

    /// Plain Thompson sampling, maximize, no holdback or floors.
    pub const THOMPSON: Allocation = Allocation {
        goal: RewardGoal::Maximize,
        policy: Policy::Thompson,
        control: None,
        control_share: 0.0,
        min_share: 0.0,
    };

    fn mixture(&self, candidates: &[usize]) -> Mixture {
        let control = self
            .control
            .filter(|c| self.control_share > 0.0 && candidates.contains(c));
        let holdback = control.map(|c| (c, self.control_share));
        let h = holdback.map_or(0.0, |(_, h)| h);
        let floor_skip = control.filter(|_| self.control_share >= self.min_share);
        let floor_arms = candidates.len() - usize::from(floor_skip.is_some());
        let floor = if self.min_share > 0.0 && floor_arms > 0 {
            (self.min_share * floor_arms as f64).min(1.0 - h).max(0.0)
        } else {
            0.0
        };
        Mixture {
            holdback,
            floor_skip,
            floor_arms,
            floor,
        }
    }

    /// One decision over `candidates` (indices into `posteriors`; the
    /// caller's eligibility check makes them non-empty and active). `None`
    /// only for an empty slice.
    pub fn choose<R: Rng + ?Sized>(
        &self,
        posteriors: &[Posterior],
        candidates: &[usize],
        rng: &mut R,
    ) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        // Plain Thompson (the default design) skips the mixture entirely.
        if self.control_share > 0.0 || self.min_share > 0.0 {
            let mix = self.mixture(candidates);
            let h = mix.holdback.map_or(0.0, |(_, h)| h);
            if h + mix.floor > 0.0 {
                let u: f64 = rng.random();
                if let Some((c, h)) = mix.holdback
                    && u < h
                {
                    return Some(c);
                }
                if u < h + mix.floor {
                    let k = rng.random_range(0..mix.floor_arms);
                    return candidates
                        .iter()
                        .copied()
                        .filter(|&i| Some(i) != mix.floor_skip)
                        .nth(k);
                }
            }
        }
        self.play_policy(posteriors, candidates, rng)
    }

    /// The policy part alone (no holdback, no floors).
    fn play_policy<R: Rng + ?Sized>(
        &self,
        posteriors: &[Posterior],
        candidates: &[usize],
        rng: &mut R,
    ) -> Option<usize> {
        match self.policy {
            Policy::Thompson => top_two(posteriors, candidates, self.goal, rng).map(|(i, _)| i),
            Policy::TopTwoThompson { beta } => {
                let (leader, _) = top_two(posteriors, candidates, self.goal, rng)?;
                if candidates.len() < 2 || rng.random::<f64>() < beta {
                    return Some(leader);
                }
                let mut runner_up = None;
                for _ in 0..TOP_TWO_MAX_RESAMPLES {
                    let (j, second) = top_two(posteriors, candidates, self.goal, rng)?;
                    if j != leader {
                        return Some(j);
                    }
                    runner_up = second;
                }
                // The leader led every resample: its best challenger in
                // the last one (see TOP_TWO_MAX_RESAMPLES).
                runner_up.or(Some(leader))
            }
        }
    }

    /// The probability of each arm being chosen (one per posterior; 0 off
    /// `candidates`): the exact mixture around the policy's distribution.
    /// Plain Thompson's is P(arm leads a joint draw), by quadrature
    /// ([`leader::leader_probabilities`]; `draws` and `rng` unused) unless
    /// that declines; then, and for top-two, a Monte Carlo estimate from
    /// `draws` joint draws (s.e. of each entry ≤ w·√(0.25 / draws), w the
    /// policy weight).
    ///
    /// Top-two is estimated by simulating its procedure on a pool of
    /// `draws` joint draws: for draw k with leader I, the leader branch
    /// adds β to I; the challenger branch takes the resamples to be the
    /// draws that follow k in the pool (independent draws of the same joint
    /// posterior), adding 1−β to the first leader ≠ I among the next
    /// [`TOP_TWO_MAX_RESAMPLES`], or else to the runner-up of the last one,
    /// exactly as [`Allocation::choose`] does. The coin is averaged out
    /// rather than flipped (lower variance, same mean).
    pub fn propensities<R: Rng + ?Sized>(
        &self,
        posteriors: &[Posterior],
        candidates: &[usize],
        draws: usize,
        rng: &mut R,
    ) -> Vec<f64> {
        self.propensities_by(Method::Quadrature, posteriors, candidates, draws, rng)
    }

    /// [`Allocation::propensities`] by the given method; `MonteCarlo`
    /// whatever the policy is the independent estimate the quadrature is
    /// tested and benched against.
    pub fn propensities_by<R: Rng + ?Sized>(
        &self,
        method: Method,
        posteriors: &[Posterior],
        candidates: &[usize],
        draws: usize,
        rng: &mut R,
    ) -> Vec<f64> {
        let mut p = vec![0.0; posteriors.len()];
        let candidates: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| i < posteriors.len())
            .collect();
        if candidates.is_empty() {
            return p;
        }
        let mix = self.mixture(&candidates);
        if let Some((c, h)) = mix.holdback {
            p[c] += h;
        }
        if mix.floor > 0.0 {
            let each = mix.floor / mix.floor_arms as f64;
            for &i in &candidates {
                if Some(i) != mix.floor_skip {
                    p[i] += each;
                }
            }
        }
        let w = mix.policy_weight();
        if w <= 0.0 {
            return p;
        }
        if candidates.len() == 1 {
            p[candidates[0]] += w;
            return p;
        }
        // Plain Thompson: π_i = P(i leads a joint draw), by quadrature
        // when it can vouch for its accuracy (see `bandit::leader`).
        if method == Method::Quadrature
            && self.policy == Policy::Thompson
            && let Some(lead) = leader::leader_probabilities(posteriors, &candidates, self.goal)
        {
            for (&i, pi) in candidates.iter().zip(lead) {
                p[i] += w * pi;
            }
            return p;
        }
        let draws = draws.max(1);
        let pool: Vec<(usize, usize)> = (0..draws)
            .filter_map(|_| {
                let (i, s) = top_two(posteriors, &candidates, self.goal, rng)?;
                Some((i, s.unwrap_or(i)))
            })
            .collect();
        let n = pool.len();
        if n == 0 {
            return p;
        }
        let mut pi = vec![0.0; posteriors.len()];
        match self.policy {
            Policy::Thompson => {
                for &(i, _) in &pool {
                    pi[i] += 1.0;
                }
            }
            Policy::TopTwoThompson { beta } => {
                for (k, &(leader, _)) in pool.iter().enumerate() {
                    pi[leader] += beta;
                    let mut challenger = None;
                    let mut last = (leader, leader);
                    for j in 1..=TOP_TWO_MAX_RESAMPLES {
                        last = pool[(k + j) % n];
                        if last.0 != leader {
                            challenger = Some(last.0);
                            break;
                        }
                    }
                    pi[challenger.unwrap_or(last.1)] += 1.0 - beta;
                }
            }
        }
        for (pi, p) in pi.iter().zip(p.iter_mut()) {
            *p += w * pi / n as f64;
        }
        p
    }
}

/// One joint draw over `candidates`: the leader (highest oriented draw) and
/// the runner-up (`None` with one candidate). `>` keeps the first of exact
/// ties; NaN never leads.
fn top_two<R: Rng + ?Sized>(
    posteriors: &[Posterior],
    candidates: &[usize],
    goal: RewardGoal,
    rng: &mut R,
) -> Option<(usize, Option<usize>)> {
    let mut best: Option<(usize, f64)> = None;
    let mut second: Option<(usize, f64)> = None;
    for &i in candidates {
        let Some(p) = posteriors.get(i) else { continue };
        let x = goal.oriented(p.sample(rng));
        if best.is_none_or(|(_, b)| x > b) {
            second = best;
            best = Some((i, x));
        } else if second.is_none_or(|(_, s)| x > s) {
            second = Some((i, x));
        }
    }
    best.map(|(i, _)| (i, second.map(|(s, _)| s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn beta(a: f64, b: f64) -> Posterior {
        Posterior::Beta { alpha: a, beta: b }
    }

    fn alloc(policy: Policy, control: Option<usize>, share: f64, floor: f64) -> Allocation {
        Allocation {
            goal: RewardGoal::Maximize,
            policy,
            control,
            control_share: share,
            min_share: floor,
        }
    }

    /// Frequencies of `n` decisions.
    fn freq(a: &Allocation, ps: &[Posterior], cand: &[usize], n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut c = vec![0.0; ps.len()];
        for _ in 0..n {
            c[a.choose(ps, cand, &mut rng).unwrap()] += 1.0;
        }
        c.iter().map(|x| x / n as f64).collect()
    }

    /// Each frequency within 4 s.e. of the propensity; s.e. combines the
    /// binomial s.e. of both estimates (√(p(1−p)/n) each).
    fn agree(f: &[f64], p: &[f64], n: usize, draws: usize) {
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{p:?}");
        for (i, (&f, &p)) in f.iter().zip(p).enumerate() {
            let se = (p * (1.0 - p) * (1.0 / n as f64 + 1.0 / draws as f64)).sqrt();
            assert!((f - p).abs() <= 4.0 * se + 1e-9, "arm {i}: {f} vs {p}");
        }
    }

    #[test]
    fn mixture_weights_are_exact() {
        // Arm 0 far ahead: the policy plays it (almost) always.
        let ps = [beta(900.0, 100.0), beta(100.0, 900.0), beta(100.0, 900.0)];
        let mut rng = SmallRng::seed_from_u64(1);
        let a = alloc(Policy::Thompson, Some(1), 0.2, 0.1);
        let p = a.propensities(&ps, &[0, 1, 2], 10_000, &mut rng);
        // h = 0.2 to arm 1; O = {0, 2} (0.2 ≥ 0.1), f = 0.2; w = 0.6.
        assert!((p[1] - 0.2).abs() < 1e-12, "{p:?}");
        assert!((p[2] - 0.1).abs() < 1e-12, "{p:?}");
        assert!((p[0] - 0.7).abs() < 1e-12, "{p:?}");
        // Control not eligible: no holdback, floors over the eligible set.
        let p = a.propensities(&ps, &[0, 2], 10_000, &mut rng);
        assert_eq!(p[1], 0.0);
        assert!((p[2] - 0.1).abs() < 1e-12 && (p[0] - 0.9).abs() < 1e-12);
        // Holdback smaller than the floor: the control is in the floor set.
        let a = alloc(Policy::Thompson, Some(1), 0.05, 0.1);
        let p = a.propensities(&ps, &[0, 1, 2], 10_000, &mut rng);
        assert!((p[1] - 0.15).abs() < 1e-12, "{p:?}");
        // Floors past 1 (arms added after create): capped at 1 − h.
        let a = alloc(Policy::Thompson, None, 0.0, 0.5);
        let p = a.propensities(&ps, &[0, 1, 2], 10_000, &mut rng);
        for x in p {
            assert!((x - 1.0 / 3.0).abs() < 1e-12);
        }
    }

    #[test]
    fn frequencies_match_propensities() {
        let ps = [
            beta(30.0, 70.0),
            beta(33.0, 67.0),
            beta(25.0, 75.0),
            beta(2.0, 8.0),
        ];
        let cand = [0, 1, 2, 3];
        let n = 40_000;
        for (k, a) in [
            alloc(Policy::Thompson, None, 0.0, 0.0),
            alloc(Policy::TopTwoThompson { beta: 0.5 }, None, 0.0, 0.0),
            alloc(Policy::TopTwoThompson { beta: 0.3 }, Some(2), 0.2, 0.05),
            alloc(Policy::Thompson, Some(0), 0.1, 0.2),
        ]
        .iter()
        .enumerate()
        {
            let mut rng = SmallRng::seed_from_u64(100 + k as u64);
            let p = a.propensities(&ps, &cand, PROPENSITY_DRAWS, &mut rng);
            let f = freq(a, &ps, &cand, n, 7 + k as u64);
            agree(&f, &p, n, PROPENSITY_DRAWS);
        }
        // A subset.
        let a = alloc(Policy::TopTwoThompson { beta: 0.5 }, Some(3), 0.1, 0.1);
        let mut rng = SmallRng::seed_from_u64(9);
        let p = a.propensities(&ps, &[1, 3], PROPENSITY_DRAWS, &mut rng);
        let f = freq(&a, &ps, &[1, 3], n, 10);
        agree(&f, &p, n, PROPENSITY_DRAWS);
        assert_eq!(p[0] + p[2], 0.0);
    }

    /// Plain Thompson's table (quadrature) against the Monte Carlo one
    /// from 200,000 draws, both around the same exact mixture: within 4
    /// s.e. (√(p(1−p)/200,000) ≤ 0.0011 per entry) plus the quadrature's
    /// tolerance. And a shape the quadrature declines still gets a table.
    #[test]
    fn quadrature_agrees_with_monte_carlo_inside_the_mixture() {
        let ps = [
            beta(30.0, 70.0),
            beta(33.0, 67.0),
            beta(25.0, 75.0),
            beta(2.0, 8.0),
        ];
        let draws = 200_000;
        for (k, a) in [
            alloc(Policy::Thompson, None, 0.0, 0.0),
            alloc(Policy::Thompson, Some(2), 0.2, 0.05),
        ]
        .iter()
        .enumerate()
        {
            let mut rng = SmallRng::seed_from_u64(20 + k as u64);
            let q = a.propensities(&ps, &[0, 1, 2, 3], 10, &mut rng);
            let mc = a.propensities_by(Method::MonteCarlo, &ps, &[0, 1, 2, 3], draws, &mut rng);
            assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{q:?}");
            for (i, (&q, &m)) in q.iter().zip(&mc).enumerate() {
                let se = (q * (1.0 - q) / draws as f64).sqrt();
                assert!(
                    (q - m).abs() <= 4.0 * se + 1e-5,
                    "{a:?} arm {i}: {q} vs {m}"
                );
            }
        }
        // Beta(0.5, 0.5): infinite density at the ends, Monte Carlo.
        let odd = [beta(0.5, 0.5), beta(1.0, 1.0)];
        let mut rng = SmallRng::seed_from_u64(30);
        let p = Allocation::THOMPSON.propensities(&odd, &[0, 1], 20_000, &mut rng);
        // Exactly 1/2 by symmetry about 1/2; s.e. √(0.25/20,000) = 0.0035.
        assert!((p[0] - 0.5).abs() < 4.0 * 0.0036, "{p:?}");
    }

    #[test]
    fn top_two_splays_between_the_best_two() {
        // Arm 0 nearly certain best: Thompson plays it ~always; top-two
        // gives the challenger ~1 − β.
        let ps = [beta(600.0, 400.0), beta(500.0, 500.0), beta(100.0, 900.0)];
        let mut rng = SmallRng::seed_from_u64(3);
        let tt = alloc(Policy::TopTwoThompson { beta: 0.5 }, None, 0.0, 0.0);
        let p = tt.propensities(&ps, &[0, 1, 2], PROPENSITY_DRAWS, &mut rng);
        assert!(
            (p[0] - 0.5).abs() < 0.01 && (p[1] - 0.5).abs() < 0.01,
            "{p:?}"
        );
        let f = freq(&tt, &ps, &[0, 1, 2], 20_000, 4);
        assert!((f[1] - 0.5).abs() < 0.02, "{f:?}");
    }

    #[test]
    fn minimize_prefers_the_lowest() {
        let ps = [beta(10.0, 990.0), beta(100.0, 900.0)];
        let mut rng = SmallRng::seed_from_u64(5);
        for policy in [Policy::Thompson, Policy::TopTwoThompson { beta: 0.9 }] {
            let mut a = alloc(policy, None, 0.0, 0.0);
            a.goal = RewardGoal::Minimize;
            let p = a.propensities(&ps, &[0, 1], PROPENSITY_DRAWS, &mut rng);
            assert!(p[0] > 0.85, "{policy:?}: {p:?}");
            a.goal = RewardGoal::Maximize;
            let p = a.propensities(&ps, &[0, 1], PROPENSITY_DRAWS, &mut rng);
            assert!(p[1] > 0.85, "{policy:?}: {p:?}");
        }
    }

    #[test]
    fn single_and_empty_candidates() {
        let ps = [beta(1.0, 1.0), beta(1.0, 1.0)];
        let mut rng = SmallRng::seed_from_u64(6);
        let a = alloc(Policy::TopTwoThompson { beta: 0.5 }, Some(0), 0.3, 0.2);
        assert_eq!(a.choose(&ps, &[1], &mut rng), Some(1));
        assert_eq!(a.choose(&ps, &[], &mut rng), None);
        assert_eq!(a.propensities(&ps, &[1], 100, &mut rng), vec![0.0, 1.0]);
        assert_eq!(propensity_draws(10), PROPENSITY_DRAWS);
        assert_eq!(propensity_draws(2_000), MIN_PROPENSITY_DRAWS);
    }
}
