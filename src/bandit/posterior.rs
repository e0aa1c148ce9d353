//! Conjugate reward models: what one reward does to an arm's evidence, and the
//! posterior that evidence implies.
//!
//! An arm's state is its *evidence*: weighted sufficient statistics of the
//! rewards seen, kept apart from the prior. That choice makes three things
//! simple and exact:
//! - updates are sums, so they commute and a store can apply them with
//!   `HINCRBYFLOAT`-like arithmetic in one atomic script;
//! - time decay ("evidence decays toward the prior") is one multiplication of
//!   the statistics by `2^(-Δt / half_life)`;
//! - the posterior is recomputed from prior + evidence on read, so a corrupt
//!   or decayed state can never produce invalid posterior parameters.

use rand::Rng;
use rand_distr::{Distribution, Gamma, StandardNormal};
use serde::{Deserialize, Serialize};
use statrs::distribution::{Beta as BetaDist, ContinuousCDF, StudentsT};

use super::BanditError;

/// How rewards are distributed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Model {
    /// Rewards in [0, 1]; a fractional value is a partial success.
    Bernoulli,
    /// Real-valued rewards with unknown mean and variance.
    Gaussian,
}

/// The prior of one arm. Every arm of an experiment shares it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Prior {
    Beta {
        alpha: f64,
        beta: f64,
    },
    /// variance ~ InvGamma(alpha, beta), mean | variance ~ Normal(mean, variance / kappa).
    NormalInverseGamma {
        mean: f64,
        kappa: f64,
        alpha: f64,
        beta: f64,
    },
}

/// Prior parameters must stay below this so sums with evidence stay finite
/// and the statrs special functions stay accurate.
const MAX_PRIOR_PARAMETER: f64 = 1e12;

impl Prior {
    /// Beta(1, 1): uniform over the success rate.
    pub const DEFAULT_BETA: Prior = Prior::Beta {
        alpha: 1.0,
        beta: 1.0,
    };
    /// Weakly informative: the prior mean (0) weighs as 1/100 of an
    /// observation, and InvGamma(1, 1) on the variance is overwhelmed after a
    /// handful of rewards whatever their scale.
    pub const DEFAULT_NORMAL: Prior = Prior::NormalInverseGamma {
        mean: 0.0,
        kappa: 0.01,
        alpha: 1.0,
        beta: 1.0,
    };

    pub fn default_for(model: Model) -> Prior {
        match model {
            Model::Bernoulli => Self::DEFAULT_BETA,
            Model::Gaussian => Self::DEFAULT_NORMAL,
        }
    }

    pub fn model(&self) -> Model {
        match self {
            Prior::Beta { .. } => Model::Bernoulli,
            Prior::NormalInverseGamma { .. } => Model::Gaussian,
        }
    }

    /// Every parameter finite, scale parameters strictly positive.
    pub fn validate(&self) -> Result<(), BanditError> {
        let positive = |field: &'static str, v: f64| {
            if v.is_finite() && v > 0.0 && v <= MAX_PRIOR_PARAMETER {
                Ok(())
            } else {
                Err(BanditError::invalid(
                    field,
                    format!("must be a finite number in (0, {MAX_PRIOR_PARAMETER:e}], got {v}"),
                ))
            }
        };
        match *self {
            Prior::Beta { alpha, beta } => {
                positive("beta_prior.alpha", alpha)?;
                positive("beta_prior.beta", beta)
            }
            Prior::NormalInverseGamma {
                mean,
                kappa,
                alpha,
                beta,
            } => {
                if !mean.is_finite() || mean.abs() > MAX_PRIOR_PARAMETER {
                    return Err(BanditError::invalid(
                        "normal_prior.mean",
                        format!(
                            "must be a finite number within ±{MAX_PRIOR_PARAMETER:e}, got {mean}"
                        ),
                    ));
                }
                positive("normal_prior.kappa", kappa)?;
                positive("normal_prior.alpha", alpha)?;
                positive("normal_prior.beta", beta)
            }
        }
    }
}

/// Gaussian rewards beyond this magnitude are rejected: their squares would
/// overflow the sum-of-squares statistic: 1e100² × 10^100 rewards still < f64::MAX.
pub const MAX_GAUSSIAN_REWARD: f64 = 1e100;

/// What one reward adds to an arm's evidence. Computed (and validated) by the
/// domain; applied by the store, possibly server-side in Redis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Delta {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// Outcomes this delta summarizes: 1 for a reward, `count` for an
    /// aggregate (added to [`Evidence::count`]).
    pub count: u64,
}

/// Most outcomes one RewardAggregate may summarize: a billion requests is
/// more than any scrape interval sees, and keeps `count` (as an f64 weight)
/// and `count * MAX_GAUSSIAN_REWARD²` far from overflow.
pub const MAX_AGGREGATE_COUNT: u64 = 1_000_000_000;

/// Relative slack of the check Σx² ≥ (Σx)²/n (Cauchy-Schwarz): a caller's
/// sums carry rounding error, which must not reject a genuine aggregate.
pub const SUM_SQUARES_TOLERANCE: f64 = 1e-6;

impl Model {
    /// Validate a reward value and turn it into an evidence increment.
    pub fn delta(self, value: f64) -> Result<Delta, BanditError> {
        match self {
            Model::Bernoulli => {
                // `!(0..=1).contains` is also true for NaN.
                if !(0.0..=1.0).contains(&value) {
                    return Err(BanditError::invalid(
                        "value",
                        format!(
                            "a BERNOULLI reward must be in [0, 1] (1 = success, fractional = partial success), got {value}"
                        ),
                    ));
                }
                Ok(Delta {
                    a: value,
                    b: 1.0 - value,
                    c: 0.0,
                    count: 1,
                })
            }
            Model::Gaussian => {
                if !value.is_finite() || value.abs() > MAX_GAUSSIAN_REWARD {
                    return Err(BanditError::invalid(
                        "value",
                        format!(
                            "a GAUSSIAN reward must be finite with magnitude at most {MAX_GAUSSIAN_REWARD:e}, got {value}"
                        ),
                    ));
                }
                Ok(Delta {
                    a: 1.0,
                    b: value,
                    c: value * value,
                    count: 1,
                })
            }
        }
    }

    /// Validate the sufficient statistics of `count` outcomes (their sum,
    /// and for GAUSSIAN the sum of their squares) and turn them into one
    /// evidence increment: exactly the sum of the `count` single deltas,
    /// so the posterior is the one the outcomes sent one by one give.
    pub fn aggregate(self, count: u64, sum: f64, sum_squares: f64) -> Result<Delta, BanditError> {
        if count == 0 || count > MAX_AGGREGATE_COUNT {
            return Err(BanditError::invalid(
                "count",
                format!("must be in [1, {MAX_AGGREGATE_COUNT}], got {count}"),
            ));
        }
        let n = count as f64;
        if !sum.is_finite() {
            return Err(BanditError::invalid(
                "sum",
                format!("must be a finite number, got {sum}"),
            ));
        }
        if !sum_squares.is_finite() {
            return Err(BanditError::invalid(
                "sum_squares",
                format!("must be a finite number, got {sum_squares}"),
            ));
        }
        match self {
            Model::Bernoulli => {
                // Each outcome is in [0, 1] (fractional = partial success,
                // as for Reward), so their sum is in [0, count].
                if !(0.0..=n).contains(&sum) {
                    return Err(BanditError::invalid(
                        "sum",
                        format!(
                            "a BERNOULLI aggregate's sum (successes) must be in [0, count] = [0, {count}], got {sum}"
                        ),
                    ));
                }
                Ok(Delta {
                    a: sum,
                    b: n - sum,
                    c: 0.0,
                    count,
                })
            }
            Model::Gaussian => {
                if sum.abs() > n * MAX_GAUSSIAN_REWARD {
                    return Err(BanditError::invalid(
                        "sum",
                        format!(
                            "a GAUSSIAN aggregate's outcomes must each have magnitude at most {MAX_GAUSSIAN_REWARD:e}; |sum| {} exceeds count × that",
                            sum.abs()
                        ),
                    ));
                }
                // Σx² ≥ (Σx)²/n for any n numbers (Cauchy-Schwarz): below
                // it, no outcomes have these sums (a negative variance).
                let least = sum * (sum / n);
                if sum_squares < least * (1.0 - SUM_SQUARES_TOLERANCE) {
                    return Err(BanditError::invalid(
                        "sum_squares",
                        format!(
                            "must be at least sum²/count = {least} (no {count} numbers summing to {sum} have a smaller sum of squares), got {sum_squares}"
                        ),
                    ));
                }
                Ok(Delta {
                    a: n,
                    b: sum,
                    c: sum_squares,
                    count,
                })
            }
        }
    }
}

/// Weighted sufficient statistics of an arm's rewards.
///
/// Bernoulli: `a` = successes, `b` = failures. Gaussian: `a` = weight (n),
/// `b` = Σx, `c` = Σx². `count` is the raw number of rewards (never decays);
/// `t_ms` is the time the statistics were last decayed to (Unix ms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    pub count: u64,
    pub t_ms: i64,
}

/// `2^(-Δt / half_life)`: the weight old evidence keeps after `Δt`.
/// Clocks of several replicas may disagree: time never runs backwards
/// (a negative Δt decays nothing).
pub fn decay_factor(from_ms: i64, to_ms: i64, half_life_ms: i64) -> f64 {
    if half_life_ms <= 0 || to_ms <= from_ms {
        return 1.0;
    }
    let dt = (to_ms - from_ms) as f64;
    (-dt / half_life_ms as f64).exp2()
}

impl Evidence {
    /// The evidence as seen at `now_ms`: decayed, not updated.
    pub fn at(&self, now_ms: i64, half_life_ms: i64) -> Evidence {
        let f = decay_factor(self.t_ms, now_ms, half_life_ms);
        Evidence {
            a: self.a * f,
            b: self.b * f,
            c: self.c * f,
            count: self.count,
            t_ms: self.t_ms.max(now_ms),
        }
    }

    /// Decay to `now_ms`, then add one reward (or one aggregate). The Redis store's Lua script
    /// performs exactly this arithmetic; keep the two in step.
    pub fn apply(&self, delta: Delta, now_ms: i64, half_life_ms: i64) -> Evidence {
        let d = self.at(now_ms, half_life_ms);
        Evidence {
            a: d.a + delta.a,
            b: d.b + delta.b,
            c: d.c + delta.c,
            count: d.count.saturating_add(delta.count),
            t_ms: d.t_ms,
        }
    }

    /// Effective number of rewards after decay.
    pub fn weight(&self, model: Model) -> f64 {
        match model {
            Model::Bernoulli => self.a + self.b,
            Model::Gaussian => self.a,
        }
    }
}

/// An arm's posterior over its mean reward.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Posterior {
    Beta {
        alpha: f64,
        beta: f64,
    },
    /// variance ~ InvGamma(alpha, beta), mean | variance ~ Normal(mu, variance / kappa).
    NormalInverseGamma {
        mu: f64,
        kappa: f64,
        alpha: f64,
        beta: f64,
    },
}

impl Posterior {
    /// Prior + evidence, the standard conjugate update (weighted statistics
    /// enter the formulas as if they were counts).
    pub fn new(prior: &Prior, ev: &Evidence) -> Posterior {
        match *prior {
            Prior::Beta { alpha, beta } => Posterior::Beta {
                alpha: alpha + ev.a.max(0.0),
                beta: beta + ev.b.max(0.0),
            },
            Prior::NormalInverseGamma {
                mean,
                kappa,
                alpha,
                beta,
            } => {
                let n = ev.a.max(0.0);
                if n <= 0.0 {
                    return Posterior::NormalInverseGamma {
                        mu: mean,
                        kappa,
                        alpha,
                        beta,
                    };
                }
                let xbar = ev.b / n;
                // Σ(x - x̄)² = Σx² - n x̄²; rounding can make it slightly negative.
                let ss = (ev.c - n * xbar * xbar).max(0.0);
                let kappa_n = kappa + n;
                Posterior::NormalInverseGamma {
                    mu: (kappa * mean + n * xbar) / kappa_n,
                    kappa: kappa_n,
                    alpha: alpha + n / 2.0,
                    beta: beta + ss / 2.0 + kappa * n * (xbar - mean).powi(2) / (2.0 * kappa_n),
                }
            }
        }
    }

    /// Posterior mean of the arm's mean reward.
    pub fn mean(&self) -> f64 {
        match *self {
            Posterior::Beta { alpha, beta } => alpha / (alpha + beta),
            Posterior::NormalInverseGamma { mu, .. } => mu,
        }
    }

    /// Equal-tailed credible interval of the mean with the given mass.
    pub fn credible_interval(&self, mass: f64) -> (f64, f64) {
        let lo = (1.0 - mass) / 2.0;
        let hi = 1.0 - lo;
        let m = self.marginal();
        (m.quantile(lo), m.quantile(hi))
    }

    /// P(mean > threshold): the canary question.
    pub fn prob_above(&self, threshold: f64) -> f64 {
        match self.marginal() {
            Marginal::Beta(d) => d.sf(threshold),
            Marginal::StudentT(d) => d.sf(threshold),
            Marginal::Point(m) => {
                if m > threshold {
                    1.0
                } else {
                    0.0
                }
            }
            large => 1.0 - large.cdf_by_quantile(threshold),
        }
    }

    /// The marginal posterior of the mean: Beta, or Student-t with 2α
    /// degrees of freedom, location μ, scale √(β/(ακ)); as statrs
    /// distributions up to [`EXACT_QUANTILE_LIMIT`], as large-sample
    /// approximations beyond.
    fn marginal(&self) -> Marginal {
        match *self {
            Posterior::Beta { alpha, beta } => {
                if !(alpha > 0.0 && beta > 0.0 && alpha.is_finite() && beta.is_finite()) {
                    return Marginal::Point(self.mean());
                }
                if alpha + beta > EXACT_QUANTILE_LIMIT {
                    return Marginal::LargeBeta { alpha, beta };
                }
                match BetaDist::new(alpha, beta) {
                    Ok(d) => Marginal::Beta(d),
                    Err(_) => Marginal::Point(self.mean()),
                }
            }
            Posterior::NormalInverseGamma { mu, .. } => {
                let Some((_, scale, freedom)) = self.student_t() else {
                    return Marginal::Point(mu);
                };
                if freedom > EXACT_QUANTILE_LIMIT && scale.is_finite() && scale > 0.0 {
                    return Marginal::LargeStudentT {
                        location: mu,
                        scale,
                        freedom,
                    };
                }
                match StudentsT::new(mu, scale, freedom) {
                    Ok(d) => Marginal::StudentT(d),
                    Err(_) => Marginal::Point(mu),
                }
            }
        }
    }

    /// A NormalInverseGamma's marginal of the mean as Student-t
    /// (location μ, scale √(β/(ακ)), 2α degrees of freedom); `None` for a
    /// Beta.
    pub fn student_t(&self) -> Option<(f64, f64, f64)> {
        match *self {
            Posterior::Beta { .. } => None,
            Posterior::NormalInverseGamma {
                mu,
                kappa,
                alpha,
                beta,
            } => Some((mu, (beta / (alpha * kappa)).sqrt(), 2.0 * alpha)),
        }
    }

    /// One Thompson draw of the arm's mean reward.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            // Beta(α, β) = X / (X + Y) with X ~ Gamma(α), Y ~ Gamma(β).
            Posterior::Beta { alpha, beta } => {
                let x = gamma(alpha, rng);
                let y = gamma(beta, rng);
                if x + y > 0.0 {
                    x / (x + y)
                } else {
                    self.mean()
                }
            }
            // σ² = β / G with G ~ Gamma(α, 1); mean ~ Normal(μ, σ²/κ).
            Posterior::NormalInverseGamma {
                mu,
                kappa,
                alpha,
                beta,
            } => {
                let g = gamma(alpha, rng);
                if g <= 0.0 {
                    return mu;
                }
                let z: f64 = StandardNormal.sample(rng);
                mu + z * (beta / (g * kappa)).sqrt()
            }
        }
    }
}

/// Beyond this α + β (Beta) or these degrees of freedom (Student-t), statrs's
/// inverse CDFs are not used: both invert the regularized incomplete beta by
/// Newton's method (AS 109), which stops converging for large parameters
/// (Beta(2, 10^7) loops forever) while the incomplete beta's 140-term
/// continued fraction loses accuracy. One RewardAggregate reaches such
/// evidence in a single call. Up to the limit statrs is exact and fast;
/// beyond it the large-sample approximations of [`Marginal`] are accurate
/// to far better than the interval's width.
pub const EXACT_QUANTILE_LIMIT: f64 = 1e5;

enum Marginal {
    Beta(BetaDist),
    StudentT(StudentsT),
    Point(f64),
    /// α + β > [`EXACT_QUANTILE_LIMIT`].
    LargeBeta {
        alpha: f64,
        beta: f64,
    },
    /// More than [`EXACT_QUANTILE_LIMIT`] degrees of freedom.
    LargeStudentT {
        location: f64,
        scale: f64,
        freedom: f64,
    },
}

/// Below this, the smaller Beta parameter is treated as a Gamma shape (see
/// `Marginal::quantile`); above it, the Beta is near-normal (skewness at
/// most 2/√100 = 0.2), and a Cornish-Fisher expansion is accurate.
const SMALL_SHAPE: f64 = 100.0;

impl Marginal {
    /// The `p` quantile. Every branch terminates (no unbounded iteration).
    fn quantile(&self, p: f64) -> f64 {
        match *self {
            Marginal::Beta(d) => d.inverse_cdf(p),
            Marginal::StudentT(d) => d.inverse_cdf(p),
            Marginal::Point(m) => m,
            Marginal::LargeBeta { alpha, beta } => large_beta_quantile(alpha, beta, p),
            Marginal::LargeStudentT {
                location,
                scale,
                freedom,
            } => {
                // Cornish-Fisher expansion of Student-t in 1/ν (Abramowitz
                // & Stegun 26.7.5); the next term is O(z⁷/ν³), < 10^-12 here.
                let z = std_normal_quantile(p);
                let (z3, z5) = (z.powi(3), z.powi(5));
                let t = z
                    + (z3 + z) / (4.0 * freedom)
                    + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * freedom * freedom);
                location + scale * t
            }
        }
    }

    /// P(X ≤ x) for the large-sample approximations, by bisection on the
    /// quantile function (monotone; 64 halvings of [0, 1] reach f64's
    /// resolution), so the interval and the tail probability agree.
    fn cdf_by_quantile(&self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..64 {
            let mid = 0.5 * (lo + hi);
            if self.quantile(mid) <= x {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        0.5 * (lo + hi)
    }
}

fn std_normal_quantile(p: f64) -> f64 {
    use statrs::distribution::Normal;
    Normal::standard().inverse_cdf(p.clamp(1e-300, 1.0 - 1e-16))
}

/// The `p` quantile of Beta(α, β) with α + β > [`EXACT_QUANTILE_LIMIT`].
///
/// - One shape below [`SMALL_SHAPE`] (few successes, or few failures, in
///   very many rewards): Beta(α, β) = G/(G + H) with G ~ Gamma(α),
///   H ~ Gamma(β); H's relative spread 1/√β ≤ 0.3% barely moves G/(G + H),
///   so H is taken as β and the quantile is that of Gamma(α) mapped through
///   g ↦ g/(g + β) (statrs's Gamma quantile is a bracketed, bounded
///   iteration, accurate for small shapes).
/// - Both shapes large: near-normal; Cornish-Fisher expansion with the
///   Beta's skewness and excess kurtosis.
fn large_beta_quantile(alpha: f64, beta: f64, p: f64) -> f64 {
    use statrs::distribution::Gamma;
    if alpha.min(beta) < SMALL_SHAPE {
        let (small, big, q) = if alpha <= beta {
            (alpha, beta, p)
        } else {
            (beta, alpha, 1.0 - p)
        };
        let g = Gamma::new(small, 1.0)
            .map(|d| d.inverse_cdf(q.clamp(0.0, 1.0)))
            .unwrap_or(small);
        let x = g / (g + big);
        return if alpha <= beta { x } else { 1.0 - x };
    }
    let n = alpha + beta;
    let mean = alpha / n;
    let sd = (alpha * beta / (n * n * (n + 1.0))).sqrt();
    let skew = 2.0 * (beta - alpha) * (n + 1.0).sqrt() / ((n + 2.0) * (alpha * beta).sqrt());
    let kurt = 6.0 * ((alpha - beta).powi(2) * (n + 1.0) - alpha * beta * (n + 2.0))
        / (alpha * beta * (n + 2.0) * (n + 3.0));
    let z = std_normal_quantile(p);
    let w = z + (z * z - 1.0) * skew / 6.0 + (z.powi(3) - 3.0 * z) * kurt / 24.0
        - (2.0 * z.powi(3) - 5.0 * z) * skew * skew / 36.0;
    (mean + sd * w).clamp(0.0, 1.0)
}

/// A Gamma(shape, 1) draw. Parameters are validated upstream; a degenerate
/// shape yields 0 rather than a panic.
fn gamma<R: Rng + ?Sized>(shape: f64, rng: &mut R) -> f64 {
    match Gamma::new(shape, 1.0) {
        Ok(g) => g.sample(rng),
        Err(_) => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn ks_statistic(mut draws: Vec<f64>, cdf: impl Fn(f64) -> f64) -> f64 {
        draws.sort_by(f64::total_cmp);
        let n = draws.len() as f64;
        draws
            .iter()
            .enumerate()
            .map(|(i, &x)| {
                let f = cdf(x);
                (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
            })
            .fold(0.0, f64::max)
    }

    // Kolmogorov-Smirnov at n = 20,000 draws: the asymptotic critical value
    // at significance 0.001 is 1.949 / √n ≈ 0.0138. With a fixed seed the test
    // is deterministic; a sampler off by even 2% in a quantile fails it.
    const KS_DRAWS: usize = 20_000;
    const KS_CRITICAL: f64 = 1.949 / 141.421_356; // 1.949 / √20000

    #[test]
    fn beta_draws_follow_the_statrs_cdf() {
        let mut rng = SmallRng::seed_from_u64(7);
        for (a, b) in [(1.0, 1.0), (3.5, 40.2), (0.4, 0.7), (250.0, 4750.0)] {
            let p = Posterior::Beta { alpha: a, beta: b };
            let draws: Vec<f64> = (0..KS_DRAWS).map(|_| p.sample(&mut rng)).collect();
            let d = BetaDist::new(a, b).unwrap();
            let ks = ks_statistic(draws, |x| d.cdf(x));
            assert!(ks < KS_CRITICAL, "Beta({a},{b}) KS {ks} >= {KS_CRITICAL}");
        }
    }

    #[test]
    fn normal_inverse_gamma_draws_follow_the_student_t_marginal() {
        let mut rng = SmallRng::seed_from_u64(11);
        for (mu, kappa, alpha, beta) in [
            (0.0, 0.01, 1.0, 1.0),
            (12.0, 30.0, 15.0, 80.0),
            (-3.0, 2.0, 0.6, 0.2),
        ] {
            let p = Posterior::NormalInverseGamma {
                mu,
                kappa,
                alpha,
                beta,
            };
            let draws: Vec<f64> = (0..KS_DRAWS).map(|_| p.sample(&mut rng)).collect();
            let d = StudentsT::new(mu, (beta / (alpha * kappa)).sqrt(), 2.0 * alpha).unwrap();
            let ks = ks_statistic(draws, |x| d.cdf(x));
            assert!(ks < KS_CRITICAL, "NIG KS {ks} >= {KS_CRITICAL}");
        }
    }

    #[test]
    fn bernoulli_update_is_the_beta_conjugate_update() {
        let mut ev = Evidence::default();
        for v in [1.0, 0.0, 0.0, 1.0, 0.25] {
            ev = ev.apply(Model::Bernoulli.delta(v).unwrap(), 0, 0);
        }
        // 2.25 successes, 2.75 failures over Beta(1, 1).
        assert_eq!(
            Posterior::new(&Prior::DEFAULT_BETA, &ev),
            Posterior::Beta {
                alpha: 3.25,
                beta: 3.75
            }
        );
        assert_eq!(ev.count, 5);
    }

    /// The delta of an aggregate is the sum of the single deltas: the
    /// evidence (hence the posterior) is the same to float error.
    #[test]
    fn an_aggregate_is_the_sum_of_its_single_rewards() {
        let xs = [2.0, -4.5, 9.25, 0.0, 1e-3, 7.0];
        for (model, xs) in [
            (Model::Gaussian, &xs[..]),
            (Model::Bernoulli, &[1.0, 0.0, 0.0, 1.0, 0.25, 1.0][..]),
        ] {
            let mut one = Evidence::default();
            for &x in xs {
                one = one.apply(model.delta(x).unwrap(), 10, 1000);
            }
            let sum: f64 = xs.iter().sum();
            let ss: f64 = xs.iter().map(|x| x * x).sum();
            let d = model.aggregate(xs.len() as u64, sum, ss).unwrap();
            let agg = Evidence::default().apply(d, 10, 1000);
            assert_eq!(agg.count, one.count);
            for (a, b) in [(agg.a, one.a), (agg.b, one.b), (agg.c, one.c)] {
                assert!(
                    (a - b).abs() <= 1e-12 * a.abs().max(1.0),
                    "{model:?}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn aggregates_outside_what_outcomes_can_sum_to_are_refused() {
        let field = |r: Result<Delta, BanditError>| match r {
            Err(BanditError::Invalid(m)) => m.split(':').next().unwrap_or("").to_string(),
            other => panic!("{other:?}"),
        };
        let (b, g) = (Model::Bernoulli, Model::Gaussian);
        assert_eq!(field(b.aggregate(0, 0.0, 0.0)), "count");
        assert_eq!(
            field(b.aggregate(MAX_AGGREGATE_COUNT + 1, 0.0, 0.0)),
            "count"
        );
        assert_eq!(field(b.aggregate(10, 10.5, 0.0)), "sum");
        assert_eq!(field(b.aggregate(10, -0.5, 0.0)), "sum");
        assert_eq!(field(g.aggregate(10, f64::NAN, 0.0)), "sum");
        assert_eq!(field(g.aggregate(10, 1.0, f64::INFINITY)), "sum_squares");
        assert_eq!(field(g.aggregate(2, 0.0, -1.0)), "sum_squares");
        // 4 numbers summing to 8 have Σx² ≥ 16 (all equal to 2).
        assert_eq!(field(g.aggregate(4, 8.0, 15.9)), "sum_squares");
        assert!(g.aggregate(4, 8.0, 16.0).is_ok());
        // Rounding in the caller's sums is tolerated.
        assert!(g.aggregate(4, 8.0, 16.0 * (1.0 - 1e-9)).is_ok());
        assert!(b.aggregate(10, 10.0, 0.0).is_ok());
        assert!(b.aggregate(10, 0.0, 0.0).is_ok());
    }

    #[test]
    fn gaussian_update_matches_the_textbook_formulas() {
        // Murphy (2007), "Conjugate Bayesian analysis of the Gaussian", eq. 85-89.
        let xs = [2.0, 4.0, 9.0];
        let (m0, k0, a0, b0) = (1.0, 2.0, 3.0, 4.0);
        let prior = Prior::NormalInverseGamma {
            mean: m0,
            kappa: k0,
            alpha: a0,
            beta: b0,
        };
        let mut ev = Evidence::default();
        for x in xs {
            ev = ev.apply(Model::Gaussian.delta(x).unwrap(), 0, 0);
        }
        let n = 3.0;
        let xbar = 5.0;
        let ss = 9.0 + 1.0 + 16.0;
        let want = Posterior::NormalInverseGamma {
            mu: (k0 * m0 + n * xbar) / (k0 + n),
            kappa: k0 + n,
            alpha: a0 + n / 2.0,
            beta: b0 + ss / 2.0 + k0 * n * (xbar - m0) * (xbar - m0) / (2.0 * (k0 + n)),
        };
        let got = Posterior::new(&prior, &ev);
        let (
            Posterior::NormalInverseGamma {
                mu,
                kappa,
                alpha,
                beta,
            },
            Posterior::NormalInverseGamma {
                mu: m,
                kappa: k,
                alpha: a,
                beta: b,
            },
        ) = (got, want)
        else {
            panic!("wrong family");
        };
        for (x, y) in [(mu, m), (kappa, k), (alpha, a), (beta, b)] {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }

    #[test]
    fn one_half_life_halves_the_evidence() {
        let hl = 3_600_000;
        let mut ev = Evidence::default();
        for _ in 0..10 {
            ev = ev.apply(Model::Bernoulli.delta(1.0).unwrap(), 1_000, hl);
        }
        let later = ev.at(1_000 + hl, hl);
        assert!((later.a - 5.0).abs() < 1e-12);
        assert!((later.weight(Model::Bernoulli) - 5.0).abs() < 1e-12);
        // Two half-lives: a quarter. Raw count never decays.
        let much_later = ev.at(1_000 + 2 * hl, hl);
        assert!((much_later.a - 2.5).abs() < 1e-12);
        assert_eq!(much_later.count, 10);
        // A clock running backwards decays nothing.
        assert_eq!(ev.at(0, hl).a, ev.a);
    }

    #[test]
    fn interval_and_tail_agree_with_statrs() {
        let p = Posterior::Beta {
            alpha: 3.0,
            beta: 97.0,
        };
        let (lo, hi) = p.credible_interval(0.95);
        let d = BetaDist::new(3.0, 97.0).unwrap();
        assert!((d.cdf(lo) - 0.025).abs() < 1e-6 && (d.cdf(hi) - 0.975).abs() < 1e-6);
        assert!((p.prob_above(0.05) - (1.0 - d.cdf(0.05))).abs() < 1e-9);
        assert!(lo < p.mean() && p.mean() < hi);
    }

    #[test]
    fn huge_evidence_gives_intervals_without_hanging() {
        // Past the limit the approximations take over; at the limit they
        // agree with statrs's exact quantiles.
        for (a, b) in [
            (2.0, 99_990.0),
            (150.0, 99_000.0),
            (40_000.0, 59_000.0),
            (99_000.0, 30.0),
        ] {
            let exact = Posterior::Beta { alpha: a, beta: b }.credible_interval(0.95);
            for (i, p) in [0.025, 0.975].into_iter().enumerate() {
                let approx = large_beta_quantile(a, b, p);
                let want = if i == 0 { exact.0 } else { exact.1 };
                let width = exact.1 - exact.0;
                assert!(
                    (approx - want).abs() < 2e-3 * width,
                    "Beta({a}, {b}) q{p}: {approx} vs {want}"
                );
            }
        }
        for (a, b) in [
            (2.0, 1e7),
            (2.0, 1e9 + 10.0),
            (1e8, 1e8),
            (5e11, 3.0),
            (0.5, 1e12),
        ] {
            let p = Posterior::Beta { alpha: a, beta: b };
            let (lo, hi) = p.credible_interval(0.95);
            assert!(
                lo.is_finite() && hi.is_finite() && lo <= p.mean() && p.mean() <= hi,
                "Beta({a}, {b}): {lo} {hi}"
            );
            let tail = p.prob_above(hi);
            assert!(
                (tail - 0.025).abs() < 1e-3,
                "Beta({a}, {b}): P(> upper) = {tail}"
            );
        }
        let t = Posterior::NormalInverseGamma {
            mu: 120.0,
            kappa: 1e9,
            alpha: 5e8,
            beta: 5e8 * 400.0,
        };
        let (lo, hi) = t.credible_interval(0.95);
        let sd = (400.0f64 / 1e9).sqrt();
        assert!(
            (hi - 120.0 - 1.959_964 * sd).abs() < 1e-5 * sd
                && (120.0 - lo - 1.959_964 * sd).abs() < 1e-5 * sd,
            "{lo} {hi}"
        );
        assert!((t.prob_above(120.0) - 0.5).abs() < 1e-9);
        // Student-t at the limit: the expansion agrees with statrs.
        let near = Posterior::NormalInverseGamma {
            mu: 0.0,
            kappa: 1.0,
            alpha: 49_000.0,
            beta: 49_000.0,
        };
        let m = Marginal::LargeStudentT {
            location: 0.0,
            scale: 1.0,
            freedom: 98_000.0,
        };
        let (exact, approx) = (near.credible_interval(0.95).1, m.quantile(0.975));
        assert!((exact - approx).abs() < 1e-6, "{exact} vs {approx}");
    }

    #[test]
    fn bad_values_are_rejected_with_the_field_named() {
        for v in [-0.1, 1.1, f64::NAN, f64::INFINITY] {
            let e = Model::Bernoulli.delta(v).unwrap_err().to_string();
            assert!(e.contains("value") && e.contains("[0, 1]"), "{e}");
        }
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e101] {
            assert!(Model::Gaussian.delta(v).is_err());
        }
        assert!(Model::Gaussian.delta(-1e9).is_ok());
    }

    fn bernoulli_value() -> impl Strategy<Value = f64> {
        prop_oneof![Just(0.0), Just(1.0), 0.0..=1.0f64]
    }

    proptest! {
        // Updates commute: any order of the same rewards gives the same posterior
        // up to float rounding (sums in another order differ by a few ulps).
        #[test]
        fn updates_commute(values in prop::collection::vec(-1e6..1e6f64, 1..60), seed in any::<u64>()) {
            let mut shuffled = values.clone();
            let mut rng = SmallRng::seed_from_u64(seed);
            for i in (1..shuffled.len()).rev() {
                let j = rand::RngExt::random_range(&mut rng, 0..=i);
                shuffled.swap(i, j);
            }
            let run = |xs: &[f64]| xs.iter().fold(Evidence::default(), |e, &x| e.apply(Model::Gaussian.delta(x).unwrap(), 0, 0));
            let (p, q) = (Posterior::new(&Prior::DEFAULT_NORMAL, &run(&values)), Posterior::new(&Prior::DEFAULT_NORMAL, &run(&shuffled)));
            let (Posterior::NormalInverseGamma { mu: m1, beta: b1, .. }, Posterior::NormalInverseGamma { mu: m2, beta: b2, .. }) = (p, q) else { unreachable!() };
            prop_assert!((m1 - m2).abs() <= 1e-9 * (1.0 + m1.abs()));
            prop_assert!((b1 - b2).abs() <= 1e-9 * (1.0 + b1.abs()));
        }

        #[test]
        fn bernoulli_updates_commute_and_stay_valid(values in prop::collection::vec(bernoulli_value(), 0..200)) {
            let fwd = values.iter().fold(Evidence::default(), |e, &x| e.apply(Model::Bernoulli.delta(x).unwrap(), 0, 0));
            let rev = values.iter().rev().fold(Evidence::default(), |e, &x| e.apply(Model::Bernoulli.delta(x).unwrap(), 0, 0));
            let (Posterior::Beta { alpha: a1, beta: b1 }, Posterior::Beta { alpha: a2, beta: b2 }) =
                (Posterior::new(&Prior::DEFAULT_BETA, &fwd), Posterior::new(&Prior::DEFAULT_BETA, &rev)) else { unreachable!() };
            prop_assert!((a1 - a2).abs() < 1e-9 && (b1 - b2).abs() < 1e-9);
            prop_assert!(a1 >= 1.0 && b1 >= 1.0 && a1.is_finite() && b1.is_finite());
            prop_assert!((a1 + b1 - 2.0 - values.len() as f64).abs() < 1e-9);
        }

        // Whatever the rewards and decay, the posterior parameters stay valid
        // and its summaries finite.
        #[test]
        fn gaussian_parameters_stay_valid(values in prop::collection::vec(-1e100..1e100f64, 0..40), dt in 0i64..10_000_000, hl in 0i64..1_000_000) {
            let mut ev = Evidence::default();
            for (i, &x) in values.iter().enumerate() {
                ev = ev.apply(Model::Gaussian.delta(x).unwrap(), i as i64 * dt, hl);
            }
            let p = Posterior::new(&Prior::DEFAULT_NORMAL, &ev);
            let Posterior::NormalInverseGamma { mu, kappa, alpha, beta } = p else { unreachable!() };
            prop_assert!(mu.is_finite() && kappa > 0.0 && alpha > 0.0 && beta > 0.0, "{p:?}");
            let mut rng = SmallRng::seed_from_u64(1);
            prop_assert!(!p.sample(&mut rng).is_nan());
        }
    }
}
