//! Product kernel: Matérn-5/2 (ARD) over the continuous block × an exchangeable
//! ("overlap") kernel per categorical dimension.
//!
//! `k(x, y) = σ² · m(r) · Π_c exp(-[x_c ≠ y_c] / ℓ_c)`, `r² = Σ_i (x_i - y_i)² / ℓ_i²`,
//! `m(r) = (1 + √5 r + 5r²/3) e^{-√5 r}`. The categorical factor is positive
//! definite for any number of levels (it is `exp` of a scaled Hamming kernel),
//! costs O(1) per dimension, and needs one length scale per categorical
//! dimension, instead of one-hot encoding with one length scale per level.
//!
//! A categorical with level features (see `space::level_distances`) replaces
//! the indicator `[x_c ≠ y_c]` by the squared distance `D_c(x_c, y_c)` of
//! the two levels' normalized features (0 for the same level, at most 1):
//! `exp(-D/ℓ)` is a Gaussian kernel on the feature vectors, positive
//! definite as well, so an observation of one level informs the levels near
//! it in feature space, and those far away less. Such a dimension also keeps
//! the indicator with a second length scale (see `LevelMetric::featured`);
//! a product of PD kernels is PD.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Smallest noise variance (in standardized output units). Keeps `K + σ_n² I`
/// away from singular for duplicated inputs while still allowing ~interpolation
/// of noiseless objectives (1e-6 relative variance = 0.1 % of the output std).
pub const NOISE_FLOOR: f64 = 1e-6;

const SQRT5: f64 = 2.236_067_977_499_79;

/// GP hyperparameters, all in log space so that the optimizer is unconstrained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyper {
    /// log length scale per continuous (float/int/ordinal) dimension.
    pub log_ls: Vec<f64>,
    /// log length scale per categorical dimension.
    pub log_cat_ls: Vec<f64>,
    /// log signal variance σ².
    pub log_signal: f64,
    /// log of the noise variance *above* `NOISE_FLOOR`.
    pub log_noise: f64,
}

impl Hyper {
    /// Default starting point: length scale 0.5 of the unit cube (a few bumps per
    /// dimension), categorical ℓ = 1, unit signal variance (outputs are
    /// standardized), small noise.
    pub fn default_for(n_cont: usize, n_cat: usize) -> Self {
        Hyper {
            log_ls: vec![0.5f64.ln(); n_cont],
            log_cat_ls: vec![0.0; n_cat],
            log_signal: 0.0,
            log_noise: 1e-3f64.ln(),
        }
    }
    pub fn n_params(&self) -> usize {
        self.log_ls.len() + self.log_cat_ls.len() + 2
    }
    pub fn to_vec(&self) -> Vec<f64> {
        let mut v = self.log_ls.clone();
        v.extend_from_slice(&self.log_cat_ls);
        v.push(self.log_signal);
        v.push(self.log_noise);
        v
    }
    pub fn from_vec(v: &[f64], n_cont: usize, n_cat: usize) -> Self {
        Hyper {
            log_ls: v[..n_cont].to_vec(),
            log_cat_ls: v[n_cont..n_cont + n_cat].to_vec(),
            log_signal: v[n_cont + n_cat],
            log_noise: v[n_cont + n_cat + 1],
        }
    }
    pub fn noise(&self) -> f64 {
        NOISE_FLOOR + self.log_noise.exp()
    }
    pub fn is_finite(&self) -> bool {
        self.to_vec().iter().all(|v| v.is_finite())
    }
}

/// Level distances of the categorical dimensions that have features.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelMetric {
    /// Per categorical dimension: `(levels, row-major levels × levels
    /// squared distances)`, or `None` for a plain categorical.
    pub per_cat: Vec<Option<(usize, Vec<f64>)>>,
}

impl LevelMetric {
    /// The categorical dimensions with features, in order: each has a
    /// second length scale, on the plain indicator `[a ≠ b]`, after the
    /// one per categorical dimension. The product `exp(-D/ℓ₁ - [a≠b]/ℓ₂)`
    /// lets the fit decide how much of a level's value its features
    /// explain (ℓ₂ long: all of it; short: levels stay apart as without
    /// features), so features that do not matter cost little.
    pub fn featured(&self) -> Vec<usize> {
        (0..self.per_cat.len())
            .filter(|&c| self.per_cat[c].is_some())
            .collect()
    }

    /// `D_c(a, b)` for hyperparameter index `c`: the squared feature
    /// distance of two levels, or the indicator `[a ≠ b]` for a dimension
    /// without features and for the extra indicator scales.
    #[inline]
    fn dist(&self, c: usize, a: f64, b: f64) -> f64 {
        match self.per_cat.get(c) {
            Some(Some((n, d))) => {
                let (i, j) = (a as usize, b as usize);
                if i < *n && j < *n {
                    d[i * n + j]
                } else {
                    f64::from(a != b)
                }
            }
            _ => f64::from(a != b),
        }
    }
}

/// Kernel with hyperparameters unpacked for fast evaluation.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub(crate) inv_ls2: Vec<f64>,
    pub(crate) inv_cat_ls: Vec<f64>,
    pub(crate) signal: f64,
    pub(crate) noise: f64,
    /// Level distances of featured categoricals; `None` = all indicators.
    pub(crate) levels: Option<Arc<LevelMetric>>,
}

impl Kernel {
    pub fn new(h: &Hyper) -> Self {
        Self::with_levels(h, None)
    }

    /// A kernel whose categorical dimensions use `levels` (see [`LevelMetric`]).
    pub fn with_levels(h: &Hyper, levels: Option<Arc<LevelMetric>>) -> Self {
        Kernel {
            inv_ls2: h.log_ls.iter().map(|l| (-2.0 * l).exp()).collect(),
            inv_cat_ls: h.log_cat_ls.iter().map(|l| (-l).exp()).collect(),
            signal: h.log_signal.exp(),
            noise: h.noise(),
            levels,
        }
    }

    /// `D_c` for categorical hyperparameter `c` between `a` and `b`:
    /// indices past the categorical dimensions are the featured
    /// dimensions' indicator scales (see [`LevelMetric::featured`]).
    #[inline]
    fn cat_dist(&self, nc: usize, c: usize, a: &[f64], b: &[f64]) -> f64 {
        match &self.levels {
            None => f64::from(a[nc + c] != b[nc + c]),
            Some(m) => {
                let dims = m.per_cat.len();
                if c < dims {
                    m.dist(c, a[nc + c], b[nc + c])
                } else {
                    let d = m
                        .per_cat
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| f.is_some())
                        .nth(c - dims)
                        .map_or(c, |(d, _)| d);
                    f64::from(a.get(nc + d) != b.get(nc + d))
                }
            }
        }
    }

    pub fn n_cont(&self) -> usize {
        self.inv_ls2.len()
    }

    /// Categorical factor `Π_c exp(-D_c(a_c, b_c)/ℓ_c)`.
    #[inline]
    fn cat_factor(&self, a: &[f64], b: &[f64]) -> f64 {
        let nc = self.n_cont();
        let mut s = 0.0;
        for (c, w) in self.inv_cat_ls.iter().enumerate() {
            s += w * self.cat_dist(nc, c, a, b);
        }
        if s == 0.0 { 1.0 } else { (-s).exp() }
    }

    #[inline]
    fn r2(&self, a: &[f64], b: &[f64]) -> f64 {
        let mut r2 = 0.0;
        for (i, w) in self.inv_ls2.iter().enumerate() {
            let d = a[i] - b[i];
            r2 += d * d * w;
        }
        r2
    }

    /// Covariance `k(a, b)` (without noise).
    #[inline]
    pub fn k(&self, a: &[f64], b: &[f64]) -> f64 {
        let r = self.r2(a, b).sqrt();
        let e = (-SQRT5 * r).exp();
        self.signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r * r) * e * self.cat_factor(a, b)
    }

    /// `k(a, b)` and `∂k/∂θ` for θ = (log ℓ_i, log ℓ_c, log σ²) written into `grad`
    /// (length n_cont + n_cat + 1; the noise derivative is handled by the caller).
    ///
    /// ∂k/∂log ℓ_i = σ² C · (5/3)(1+√5 r) e^{-√5 r} · Δ_i²/ℓ_i² (no division by r,
    /// so it is well defined at r = 0); ∂k/∂log ℓ_c = k · D_c/ℓ_c; ∂k/∂log σ² = k.
    #[inline]
    pub fn k_with_grad(&self, a: &[f64], b: &[f64], grad: &mut [f64]) -> f64 {
        let nc = self.n_cont();
        let r = self.r2(a, b).sqrt();
        let e = (-SQRT5 * r).exp();
        let c = self.cat_factor(a, b);
        let k = self.signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r * r) * e * c;
        let g = self.signal * c * (5.0 / 3.0) * (1.0 + SQRT5 * r) * e;
        for (i, w) in self.inv_ls2.iter().enumerate() {
            let d = a[i] - b[i];
            grad[i] = g * d * d * w;
        }
        for (ci, w) in self.inv_cat_ls.iter().enumerate() {
            grad[nc + ci] = k * w * self.cat_dist(nc, ci, a, b);
        }
        grad[nc + self.inv_cat_ls.len()] = k;
        k
    }

    /// `k(x, y)` and `∂k/∂x_i` for the continuous coordinates of `x`.
    #[inline]
    pub fn k_with_x_grad(&self, x: &[f64], y: &[f64], grad: &mut [f64]) -> f64 {
        let r = self.r2(x, y).sqrt();
        let e = (-SQRT5 * r).exp();
        let c = self.cat_factor(x, y);
        let k = self.signal * (1.0 + SQRT5 * r + 5.0 / 3.0 * r * r) * e * c;
        let g = self.signal * c * (5.0 / 3.0) * (1.0 + SQRT5 * r) * e;
        for (i, w) in self.inv_ls2.iter().enumerate() {
            grad[i] = -g * (x[i] - y[i]) * w;
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `k_with_grad`'s hyperparameter gradient at `h` against central
    /// differences of `k` (step 1e-6, so the truncation error is O(1e-12)
    /// and rounding O(1e-10); 1e-7 leaves room for both).
    fn assert_hyper_grad_matches_fd(
        h: &Hyper,
        levels: Option<Arc<LevelMetric>>,
        a: &[f64],
        b: &[f64],
    ) {
        let (n_cont, n_cat) = (h.log_ls.len(), h.log_cat_ls.len());
        let kernel = |h: &Hyper| Kernel::with_levels(h, levels.clone());
        let v = h.to_vec();
        let mut g = vec![0.0; n_cont + n_cat + 1];
        kernel(h).k_with_grad(a, b, &mut g);
        for (j, gj) in g.iter().enumerate() {
            let eps = 1e-6;
            let mut p = v.clone();
            p[j] += eps;
            let mut m = v.clone();
            m[j] -= eps;
            let kp = kernel(&Hyper::from_vec(&p, n_cont, n_cat)).k(a, b);
            let km = kernel(&Hyper::from_vec(&m, n_cont, n_cat)).k(a, b);
            assert!(((kp - km) / (2.0 * eps) - gj).abs() < 1e-7, "theta {j}");
        }
    }

    #[test]
    fn kernel_grads_match_finite_differences() {
        let h = Hyper {
            log_ls: vec![-0.3, 0.2],
            log_cat_ls: vec![0.4],
            log_signal: 0.1,
            log_noise: -5.0,
        };
        let a = [0.2, 0.7, 1.0];
        let b = [0.5, 0.1, 0.0];
        let k = Kernel::new(&h);
        assert_hyper_grad_matches_fd(&h, None, &a, &b);
        let mut gx = vec![0.0; 2];
        k.k_with_x_grad(&a, &b, &mut gx);
        for i in 0..2 {
            let eps = 1e-6;
            let mut p = a;
            p[i] += eps;
            let mut m = a;
            m[i] -= eps;
            assert!(((k.k(&p, &b) - k.k(&m, &b)) / (2.0 * eps) - gx[i]).abs() < 1e-7);
        }
    }

    /// With level features the categorical derivative is `k · D/ℓ`; checked
    /// by central differences as for plain levels.
    #[test]
    fn kernel_grads_with_level_features_match_finite_differences() {
        let h = Hyper {
            log_ls: vec![-0.3],
            log_cat_ls: vec![0.4],
            log_signal: 0.1,
            log_noise: -5.0,
        };
        let levels = Some(Arc::new(LevelMetric {
            per_cat: vec![Some((3, vec![0.0, 0.2, 1.0, 0.2, 0.0, 0.6, 1.0, 0.6, 0.0]))],
        }));
        let (a, b) = ([0.2, 0.0], [0.5, 1.0]);
        let k = Kernel::with_levels(&h, levels.clone());
        // D(0, 1) = 0.2: the factor is exp(-0.2 / e^0.4).
        let plain = Kernel::new(&h);
        let ratio = k.k(&a, &b) / plain.k(&a, &b);
        assert!(
            (ratio - (0.8f64 / 0.4f64.exp()).exp()).abs() < 1e-12,
            "{ratio}"
        );
        assert_hyper_grad_matches_fd(&h, levels.clone(), &a, &b);
        // With the featured dimension's second scale (on [a ≠ b]): the
        // factor is exp(-0.2/ℓ₁ - 1/ℓ₂), and its gradient checks out too.
        let h2 = Hyper {
            log_cat_ls: vec![0.4, -0.2],
            ..h.clone()
        };
        let k2 = Kernel::with_levels(&h2, levels.clone());
        let want = (-0.2 / 0.4f64.exp() - 1.0 / (-0.2f64).exp()).exp();
        assert!((k2.k(&a, &b) / k2.k(&[0.2, 0.0], &[0.5, 0.0]) - want).abs() < 1e-12);
        assert_hyper_grad_matches_fd(&h2, levels, &a, &b);
    }
}
