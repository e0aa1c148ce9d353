//! Output warping: a Yeo-Johnson power transform of the objective with λ fitted
//! by maximum likelihood, between two standardizations (as HEBO does).
//!
//! Objectives such as Rosenbrock or a cost with a steep cliff span orders of
//! magnitude; a stationary GP on the raw values spends its flexibility on the
//! huge bad values and sees the good region as flat. The power transform makes
//! the marginal distribution of `y` roughly Gaussian. It is strictly increasing
//! for every λ, so the incumbent and every comparison are unchanged.

/// λ is searched in this interval: λ = 1 is the identity, λ < 1 compresses the
/// upper tail (λ = 0 is `ln(1 + x)` for x ≥ 0), λ > 1 the lower tail; beyond
/// ±2 around 1 the transform is so strong that outliers dominate the fit.
const LAMBDA_RANGE: (f64, f64) = (-1.0, 3.0);
/// The transform is only used when it raises the profile log-likelihood by at
/// least this much per point over λ = 1: on roughly Gaussian outputs (Branin,
/// Hartmann6) a mild warp only adds noise to the model.
const MIN_GAIN_PER_POINT: f64 = 0.05;
/// Strictly positive outputs spanning at least this ratio (max/min) are
/// log-transformed before the power transform: costs, latencies and other
/// positive, multiplicatively noisy objectives (lognormal noise becomes
/// homoscedastic, a cliff of orders of magnitude becomes a few units).
const LOG_RATIO: f64 = 10.0;
/// ... and only when the smallest value is at least this fraction of the
/// spread below the median: near zero (Branin, Rosenbrock, regrets) ln would
/// blow up differences among the best points, which hurt on both benchmarks.
const LOG_MIN_OFFSET: f64 = 0.25;
/// Fewer points than this give no usable estimate of the shape of the marginal.
const MIN_POINTS: usize = 8;

/// Mean/std standardization; a constant (or single) output gets std 1 so
/// nothing divides by zero and the GP sees zeros.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Standardizer {
    pub mean: f64,
    pub std: f64,
}

impl Standardizer {
    pub fn new(y: &[f64]) -> Self {
        if y.is_empty() {
            return Standardizer {
                mean: 0.0,
                std: 1.0,
            };
        }
        let n = y.len() as f64;
        let mean = y.iter().sum::<f64>() / n;
        let var = y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt();
        // Relative threshold: values like 1e12 ± 1e-6 are "constant" at f64 precision.
        let std = if std.is_finite() && std > 1e-12 * mean.abs().max(1e-300) {
            std
        } else {
            1.0
        };
        Standardizer { mean, std }
    }
    pub fn fwd(&self, v: f64) -> f64 {
        (v - self.mean) / self.std
    }
    pub fn inv(&self, z: f64) -> f64 {
        z * self.std + self.mean
    }
}

/// Yeo-Johnson transform ψ_λ(x).
pub(crate) fn yeo_johnson(x: f64, lambda: f64) -> f64 {
    if x >= 0.0 {
        if lambda.abs() < 1e-12 {
            x.ln_1p()
        } else {
            ((lambda * x.ln_1p()).exp() - 1.0) / lambda
        }
    } else {
        let m = 2.0 - lambda;
        if m.abs() < 1e-12 {
            -(-x).ln_1p()
        } else {
            -(((m * (-x).ln_1p()).exp()) - 1.0) / m
        }
    }
}

/// Inverse of `yeo_johnson` (ψ_λ(0) = 0 and the sign is preserved). Values
/// outside the transform's range (possible for a GP mean far out in a
/// compressed tail) are clamped to its edge.
pub(crate) fn yeo_johnson_inv(z: f64, lambda: f64) -> f64 {
    if z >= 0.0 {
        if lambda.abs() < 1e-12 {
            z.exp_m1()
        } else {
            // (1 + λz) must stay positive: for λ < 0 the range is z < −1/λ.
            let b = (1.0 + lambda * z).max(f64::MIN_POSITIVE);
            (b.ln() / lambda).exp_m1()
        }
    } else {
        let m = 2.0 - lambda;
        if m.abs() < 1e-12 {
            -(-z).exp_m1()
        } else {
            let b = (1.0 - m * z).max(f64::MIN_POSITIVE);
            -(b.ln() / m).exp_m1()
        }
    }
}

/// Profile log-likelihood of λ (Gaussian after transform), up to a constant.
fn profile_ll(x: &[f64], lambda: f64) -> f64 {
    let n = x.len() as f64;
    let t: Vec<f64> = x.iter().map(|v| yeo_johnson(*v, lambda)).collect();
    let mean = t.iter().sum::<f64>() / n;
    let var = t.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    if !(var.is_finite() && var > 0.0) {
        return f64::NEG_INFINITY;
    }
    let jac: f64 = x.iter().map(|v| v.signum() * v.abs().ln_1p()).sum();
    -0.5 * n * var.ln() + (lambda - 1.0) * jac
}

/// `y ↦ post(ψ_λ(pre(y)))`: standardize, Yeo-Johnson, standardize again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OutputWarp {
    /// Whether `ln` is applied first (strictly positive, wide-ranging outputs).
    log: bool,
    pre: Standardizer,
    /// `None`: the identity (no power transform).
    lambda: Option<f64>,
    post: Standardizer,
}

impl OutputWarp {
    /// Standardization only (no log, no power transform): for a cost
    /// model's log duration, which the acquisition maps back exactly.
    pub fn affine(y: &[f64]) -> Self {
        OutputWarp {
            log: false,
            pre: Standardizer::new(y),
            lambda: None,
            post: Standardizer {
                mean: 0.0,
                std: 1.0,
            },
        }
    }

    /// `(loc, sd)` of an affine warp: the original value is `loc + sd·z`.
    pub fn affine_parts(&self) -> (f64, f64) {
        (self.pre.mean, self.pre.std)
    }

    /// Fits the warp to `y` (internal, minimized units).
    pub fn fit(y: &[f64]) -> Self {
        let lo = y.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log = y.len() >= MIN_POINTS && lo > 0.0 && hi >= LOG_RATIO * lo && {
            let mut s = y.to_vec();
            s.sort_by(f64::total_cmp);
            lo >= LOG_MIN_OFFSET * (s[s.len() / 2] - lo)
        };
        let ly: Vec<f64>;
        let y = if log {
            ly = y.iter().map(|v| v.ln()).collect();
            &ly[..]
        } else {
            y
        };
        let pre = Standardizer::new(y);
        let x: Vec<f64> = y.iter().map(|v| pre.fwd(*v)).collect();
        let lambda = if y.len() >= MIN_POINTS {
            // Golden-section search; the profile likelihood is unimodal in λ
            // for all but pathological samples, and a grid would need ~100 points.
            let (mut a, mut b) = LAMBDA_RANGE;
            let g = 0.5 * (5f64.sqrt() - 1.0);
            let mut c = b - g * (b - a);
            let mut d = a + g * (b - a);
            let (mut fc, mut fd) = (profile_ll(&x, c), profile_ll(&x, d));
            for _ in 0..40 {
                if fc > fd {
                    b = d;
                    d = c;
                    fd = fc;
                    c = b - g * (b - a);
                    fc = profile_ll(&x, c);
                } else {
                    a = c;
                    c = d;
                    fc = fd;
                    d = a + g * (b - a);
                    fd = profile_ll(&x, d);
                }
            }
            let lam = 0.5 * (a + b);
            let gain = profile_ll(&x, lam) - profile_ll(&x, 1.0);
            (gain.is_finite() && gain > MIN_GAIN_PER_POINT * y.len() as f64).then_some(lam)
        } else {
            None
        };
        let t: Vec<f64> = x.iter().map(|v| Self::psi(lambda, *v)).collect();
        OutputWarp {
            log,
            pre,
            lambda,
            post: Standardizer::new(&t),
        }
    }

    fn psi(lambda: Option<f64>, v: f64) -> f64 {
        lambda.map_or(v, |l| yeo_johnson(v, l))
    }

    pub fn fwd(&self, y: f64) -> f64 {
        // A value below the fitted data's range maps through ln of at least the
        // smallest positive double (still finite and monotone).
        let y = if self.log {
            y.max(f64::MIN_POSITIVE).ln()
        } else {
            y
        };
        self.post.fwd(Self::psi(self.lambda, self.pre.fwd(y)))
    }

    pub fn inv(&self, z: f64) -> f64 {
        let t = self.post.inv(z);
        let v = self
            .pre
            .inv(self.lambda.map_or(t, |l| yeo_johnson_inv(t, l)));
        if self.log { v.exp() } else { v }
    }

    /// d inv / dz at `z` (central difference: the inverse is smooth), used to
    /// carry a predictive std back to original units by the delta method.
    pub fn inv_slope(&self, z: f64) -> f64 {
        let h = 1e-4 * (1.0 + z.abs());
        ((self.inv(z + h) - self.inv(z - h)) / (2.0 * h)).abs()
    }

    #[cfg(test)]
    pub fn lambda(&self) -> Option<f64> {
        self.lambda
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn yeo_johnson_invertible_and_monotone(
            x in -1e3f64..1e3, dx in 1e-6f64..10.0, lambda in -1.0f64..3.0,
        ) {
            let t = yeo_johnson(x, lambda);
            prop_assert!(t.is_finite());
            let back = yeo_johnson_inv(t, lambda);
            prop_assert!((back - x).abs() <= 1e-8 * (1.0 + x.abs()), "{} -> {} -> {}", x, t, back);
            prop_assert!(yeo_johnson(x + dx, lambda) > t);
        }

        /// The fitted warp is strictly increasing and inverts, whatever the data.
        #[test]
        fn warp_monotone_invertible(
            y in prop::collection::vec(prop_oneof![-1e4f64..1e4, 0.0f64..1.0, Just(5.0)], 1..40),
            scale in prop_oneof![Just(1.0), Just(1e6), Just(1e-6)],
        ) {
            let y: Vec<f64> = y.iter().map(|v| v * scale).collect();
            let w = OutputWarp::fit(&y);
            let mut s = y.clone();
            s.sort_by(f64::total_cmp);
            for pair in s.windows(2) {
                prop_assert!(w.fwd(pair[0]) <= w.fwd(pair[1]));
            }
            for v in &y {
                let z = w.fwd(*v);
                prop_assert!(z.is_finite());
                let back = w.inv(z);
                prop_assert!((back - v).abs() <= 1e-6 * (1.0 + v.abs()), "{} -> {} -> {}", v, z, back);
            }
        }
    }

    #[test]
    fn skewed_outputs_get_compressed_gaussian_ones_do_not() {
        // Rosenbrock-like: most values moderate, a few huge.
        let y: Vec<f64> = (0..40).map(|i| (i as f64 * 0.37).exp()).collect();
        let w = OutputWarp::fit(&y);
        let lam = w.lambda().expect("heavy right tail should be warped");
        assert!(lam < 1.0, "λ = {lam}");
        // Evenly spread (symmetric) outputs are left alone.
        let y: Vec<f64> = (0..40).map(|i| (i as f64 * 0.9).sin()).collect();
        assert_eq!(OutputWarp::fit(&y).lambda(), None);
    }
}
