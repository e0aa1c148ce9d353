//! Exact GP regression on standardized outputs (zero prior mean).

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

use super::error::BoError;
use std::sync::Arc;

use super::kernel::{Hyper, Kernel, LevelMetric};

/// Jitter escalation, as multiples of the mean diagonal of `K + σ_n² I`. The
/// first try is exact; 1e-10 fixes round-off on near-duplicate points, each
/// further step buys two orders of magnitude of conditioning, and 1e-2 is the
/// last level at which the posterior is still a sensible (slightly over-smoothed)
/// fit. Beyond that we report `BoError::Numerical` and let the caller fall back.
const JITTERS: [f64; 6] = [0.0, 1e-10, 1e-8, 1e-6, 1e-4, 1e-2];

/// Cholesky of a symmetric PD matrix with escalating diagonal jitter.
pub(crate) fn robust_cholesky(k: &DMatrix<f64>) -> Result<Cholesky<f64, Dyn>, BoError> {
    let n = k.nrows();
    let scale = if n == 0 {
        1.0
    } else {
        k.diagonal().mean().abs().max(1e-300)
    };
    for j in JITTERS {
        let mut m = k.clone();
        if j > 0.0 {
            for i in 0..n {
                m[(i, i)] += j * scale;
            }
        }
        if let Some(c) = Cholesky::new(m) {
            let l = c.l_dirty();
            if (0..n).all(|i| l[(i, i)].is_finite() && l[(i, i)] > 0.0) {
                return Ok(c);
            }
        }
    }
    Err(BoError::Numerical(
        "Cholesky failed even with jitter 1e-2 × diag".into(),
    ))
}

/// A conditioned GP. `x` are encoded points, `y` standardized targets.
#[derive(Debug, Clone)]
pub struct Gp {
    pub(crate) x: Vec<Vec<f64>>,
    pub(crate) y: Vec<f64>,
    pub(crate) hyper: Hyper,
    pub(crate) kernel: Kernel,
    alpha: DVector<f64>,
    /// L⁻¹ (explicit, so that predictive variances of many candidates are one GEMM).
    linv: DMatrix<f64>,
}

impl Gp {
    /// Conditions the GP on `(x, y)`; with no data it is the prior.
    pub fn new(x: Vec<Vec<f64>>, y: Vec<f64>, hyper: &Hyper) -> Result<Self, BoError> {
        Self::with_levels(x, y, hyper, None)
    }

    /// [`Gp::new`] with the level distances of featured categoricals.
    pub fn with_levels(
        x: Vec<Vec<f64>>,
        y: Vec<f64>,
        hyper: &Hyper,
        levels: Option<Arc<LevelMetric>>,
    ) -> Result<Self, BoError> {
        let kernel = Kernel::with_levels(hyper, levels);
        let n = x.len();
        if n == 0 {
            return Ok(Gp {
                x,
                y,
                hyper: hyper.clone(),
                kernel,
                alpha: DVector::zeros(0),
                linv: DMatrix::zeros(0, 0),
            });
        }
        let k = gram(&kernel, &x);
        let chol = robust_cholesky(&k)?;
        let linv = lower_inverse(chol.l_dirty())
            .ok_or_else(|| BoError::Numerical("singular Cholesky factor".into()))?;
        // α = K⁻¹y = L⁻ᵀ(L⁻¹y): two mat-vecs with the explicit inverse.
        let alpha = linv.tr_mul(&(&linv * DVector::from_column_slice(&y)));
        if alpha.iter().any(|v| !v.is_finite()) {
            return Err(BoError::Numerical("non-finite GP weights".into()));
        }
        Ok(Gp {
            x,
            y,
            hyper: hyper.clone(),
            kernel,
            alpha,
            linv,
        })
    }

    /// Posterior mean at the training points, `y − σ_n² α` (from `(K_f + σ_n² I) α = y`),
    /// in O(n) instead of an O(n²)-per-point prediction.
    pub fn train_mean(&self) -> Vec<f64> {
        self.y
            .iter()
            .zip(self.alpha.iter())
            .map(|(y, a)| y - self.kernel.noise * a)
            .collect()
    }

    pub fn n(&self) -> usize {
        self.x.len()
    }

    /// A new GP with one more (fantasy) observation, same hyperparameters.
    ///
    /// O(n²) instead of a fresh O(n³) factorization: with `l = L⁻¹k` and
    /// `d² = k(x,x) + σ_n² − |l|²` (the Schur complement), the bordered factor is
    /// `[[L, 0], [lᵀ, d]]`, whose inverse is `[[L⁻¹, 0], [−lᵀL⁻¹/d, 1/d]]`. When
    /// `d²` is tiny (a near-duplicate point) this falls back to the jittered
    /// full factorization.
    pub fn with_point(&self, x: Vec<f64>, y: f64) -> Result<Self, BoError> {
        let n = self.n();
        let mut xs = self.x.clone();
        let mut ys = self.y.clone();
        let kss = self.kernel.signal + self.kernel.noise;
        let kv = DVector::from_iterator(n, self.x.iter().map(|xi| self.kernel.k(&x, xi)));
        xs.push(x);
        ys.push(y);
        if n == 0 {
            return Gp::with_levels(xs, ys, &self.hyper, self.kernel.levels.clone());
        }
        let l = &self.linv * &kv;
        let d2 = kss - l.norm_squared();
        // Relative 1e-10: the same threshold as the first jitter level.
        if !(d2.is_finite() && d2 > 1e-10 * kss) {
            return Gp::with_levels(xs, ys, &self.hyper, self.kernel.levels.clone());
        }
        let d = d2.sqrt();
        let row = self.linv.tr_mul(&l) / (-d);
        let mut linv = self.linv.clone().resize(n + 1, n + 1, 0.0);
        for j in 0..n {
            linv[(n, j)] = row[j];
        }
        linv[(n, n)] = 1.0 / d;
        let yv = DVector::from_column_slice(&ys);
        let alpha = linv.tr_mul(&(&linv * yv));
        if alpha.iter().any(|v| !v.is_finite()) {
            return Gp::with_levels(xs, ys, &self.hyper, self.kernel.levels.clone());
        }
        Ok(Gp {
            x: xs,
            y: ys,
            hyper: self.hyper.clone(),
            kernel: self.kernel.clone(),
            alpha,
            linv,
        })
    }

    /// Posterior mean and latent (noise-free) variance at many points.
    pub fn predict(&self, pts: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
        let m = pts.len();
        let n = self.n();
        let s = self.kernel.signal;
        if n == 0 {
            return (vec![0.0; m], vec![s; m]);
        }
        // Ks: n × m, one column per candidate (column-major: contiguous per candidate).
        let mut ks = DMatrix::<f64>::zeros(n, m);
        for (j, p) in pts.iter().enumerate() {
            let col = ks.column_mut(j);
            for (slot, xi) in col.into_iter().zip(&self.x) {
                *slot = self.kernel.k(p, xi);
            }
        }
        let mean = ks.tr_mul(&self.alpha);
        let v = &self.linv * &ks;
        let var = (0..m)
            .map(|j| {
                let q = v.column(j).norm_squared();
                (s - q).max(s * 1e-12)
            })
            .collect();
        (mean.iter().copied().collect(), var)
    }

    /// Leave-one-out predictive mean and variance of each training target
    /// (noise included), in closed form from the one factorization:
    /// `μ₋ᵢ = yᵢ − [K⁻¹y]ᵢ / [K⁻¹]ᵢᵢ`, `σ²₋ᵢ = 1 / [K⁻¹]ᵢᵢ` (Rasmussen &
    /// Williams, eq. 5.12), with `[K⁻¹]ᵢᵢ` the squared norm of column `i`
    /// of `L⁻¹` (`K⁻¹ = L⁻ᵀL⁻¹`). Same hyperparameters as the full fit.
    pub fn loo(&self) -> (Vec<f64>, Vec<f64>) {
        let mut mean = Vec::with_capacity(self.n());
        let mut var = Vec::with_capacity(self.n());
        for i in 0..self.n() {
            let d = self.linv.column(i).norm_squared();
            mean.push(self.y[i] - self.alpha[i] / d);
            var.push(1.0 / d);
        }
        (mean, var)
    }

    /// Fraction of the first `rows` training targets inside their central
    /// `mass` leave-one-out predictive interval: a calibrated GP covers
    /// about `mass`. `None` without rows.
    pub fn loo_coverage(&self, rows: usize, mass: f64) -> Option<f64> {
        let rows = rows.min(self.n());
        if rows == 0 {
            return None;
        }
        let z = std_normal_quantile(0.5 + mass / 2.0);
        let (mean, var) = self.loo();
        let inside = (0..rows)
            .filter(|&i| (self.y[i] - mean[i]).abs() <= z * var[i].sqrt())
            .count();
        Some(inside as f64 / rows as f64)
    }

    /// Mean, variance and their gradients wrt the continuous coordinates at one point.
    pub fn predict_with_grad(&self, p: &[f64]) -> (f64, f64, Vec<f64>, Vec<f64>) {
        let n = self.n();
        let nc = self.kernel.n_cont();
        let s = self.kernel.signal;
        if n == 0 {
            return (0.0, s, vec![0.0; nc], vec![0.0; nc]);
        }
        let mut kv = DVector::<f64>::zeros(n);
        let mut dk = DMatrix::<f64>::zeros(n, nc);
        let mut g = vec![0.0; nc];
        for (i, xi) in self.x.iter().enumerate() {
            kv[i] = self.kernel.k_with_x_grad(p, xi, &mut g);
            for (c, gc) in g.iter().enumerate() {
                dk[(i, c)] = *gc;
            }
        }
        let mu = kv.dot(&self.alpha);
        let dmu: Vec<f64> = dk.tr_mul(&self.alpha).iter().copied().collect();
        let v = &self.linv * &kv;
        let q = v.norm_squared();
        let var = (s - q).max(s * 1e-12);
        let w = self.linv.tr_mul(&v); // K⁻¹ k
        let dvar: Vec<f64> = dk.tr_mul(&w).iter().map(|d| -2.0 * d).collect();
        (mu, var, dmu, dvar)
    }
}

/// `L⁻¹` of a lower-triangular `L` (only the lower triangle is read, so the
/// "dirty" nalgebra factor works). Column `j` of `L⁻¹` is zero above row `j`, so
/// forward substitution on the unit vector starts at `j`: n³/6 multiply-adds as
/// contiguous column axpys, about 3× less work than nalgebra's general
/// triangular solve against the identity, which dominated `suggest` profiles.
/// `None` on a zero or non-finite pivot.
pub(crate) fn lower_inverse(l: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    let n = l.nrows();
    let ls = l.as_slice();
    let mut inv = DMatrix::<f64>::zeros(n, n);
    let data = inv.as_mut_slice();
    for j in 0..n {
        let col = &mut data[j * n..(j + 1) * n];
        col[j] = 1.0;
        for k in j..n {
            let d = ls[k * n + k];
            if d == 0.0 || !d.is_finite() {
                return None;
            }
            let xk = col[k] / d;
            col[k] = xk;
            if xk != 0.0 {
                let lk = &ls[k * n + k + 1..(k + 1) * n];
                for (c, &lv) in col[k + 1..].iter_mut().zip(lk) {
                    *c -= xk * lv;
                }
            }
        }
    }
    Some(inv)
}

fn std_normal_quantile(p: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::standard().inverse_cdf(p)
}

/// `K + σ_n² I` for the training inputs.
pub(crate) fn gram(kernel: &Kernel, x: &[Vec<f64>]) -> DMatrix<f64> {
    let n = x.len();
    let mut k = DMatrix::<f64>::zeros(n, n);
    for i in 0..n {
        for j in 0..i {
            let v = kernel.k(&x[i], &x[j]);
            k[(i, j)] = v;
            k[(j, i)] = v;
        }
        k[(i, i)] = kernel.signal + kernel.noise;
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn interpolates_noiseless_data() {
        let mut rng = StdRng::seed_from_u64(3);
        let x: Vec<Vec<f64>> = (0..15).map(|_| vec![rng.random(), rng.random()]).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|p| (3.0 * p[0]).sin() + p[1] * p[1] - 0.5)
            .collect();
        let h = Hyper {
            log_ls: vec![0.3f64.ln(); 2],
            log_cat_ls: vec![],
            log_signal: 0.0,
            log_noise: 1e-12f64.ln(), // total noise = NOISE_FLOOR + 1e-12
        };
        let gp = Gp::new(x.clone(), y.clone(), &h).unwrap();
        let (m, v) = gp.predict(&x);
        for i in 0..x.len() {
            assert!((m[i] - y[i]).abs() < 1e-3, "mean {} vs {}", m[i], y[i]);
            assert!(v[i].sqrt() < 2e-3, "std {}", v[i].sqrt());
        }
        // Away from the data the variance must be clearly larger.
        let (_, vf) = gp.predict(&[vec![5.0, 5.0]]);
        assert!(vf[0] > 0.9);
        // The O(n) training-point mean agrees with a full prediction, also with noise.
        let h = Hyper {
            log_noise: 0.05f64.ln(),
            ..h
        };
        let gp = Gp::new(x.clone(), y, &h).unwrap();
        let (m, _) = gp.predict(&x);
        for (a, b) in gp.train_mean().iter().zip(&m) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn predict_grad_matches_finite_differences() {
        let mut rng = StdRng::seed_from_u64(4);
        let x: Vec<Vec<f64>> = (0..8)
            .map(|_| vec![rng.random(), rng.random(), rng.random_range(0..3) as f64])
            .collect();
        let y: Vec<f64> = (0..8).map(|_| rng.random::<f64>() - 0.5).collect();
        let h = Hyper {
            log_ls: vec![-1.0, -0.5],
            log_cat_ls: vec![0.0],
            log_signal: 0.2,
            log_noise: -6.0,
        };
        let gp = Gp::new(x, y, &h).unwrap();
        let p = vec![0.4, 0.6, 1.0];
        let (mu, var, dmu, dvar) = gp.predict_with_grad(&p);
        let (m0, v0) = gp.predict(std::slice::from_ref(&p));
        assert!((mu - m0[0]).abs() < 1e-10 && (var - v0[0]).abs() < 1e-10);
        for i in 0..2 {
            let eps = 1e-6;
            let mut a = p.clone();
            a[i] += eps;
            let mut b = p.clone();
            b[i] -= eps;
            let (ma, va) = gp.predict(&[a]);
            let (mb, vb) = gp.predict(&[b]);
            assert!(((ma[0] - mb[0]) / (2.0 * eps) - dmu[i]).abs() < 1e-5);
            assert!(((va[0] - vb[0]) / (2.0 * eps) - dvar[i]).abs() < 1e-5);
        }
    }

    #[test]
    fn with_point_matches_full_conditioning() {
        let mut rng = StdRng::seed_from_u64(8);
        let pt = |rng: &mut StdRng| vec![rng.random(), rng.random(), rng.random_range(0..2) as f64];
        let x: Vec<Vec<f64>> = (0..20).map(|_| pt(&mut rng)).collect();
        let y: Vec<f64> = (0..20).map(|_| rng.random::<f64>() - 0.5).collect();
        let h = Hyper {
            log_ls: vec![-1.0, -0.3],
            log_cat_ls: vec![0.2],
            log_signal: 0.1,
            log_noise: -7.0,
        };
        let mut inc = Gp::new(x[..12].to_vec(), y[..12].to_vec(), &h).unwrap();
        for i in 12..20 {
            inc = inc.with_point(x[i].clone(), y[i]).unwrap();
        }
        // A duplicate: the Schur complement is then about the noise variance.
        let inc = inc.with_point(x[3].clone(), y[3]).unwrap();
        let mut xf = x.clone();
        xf.push(x[3].clone());
        let mut yf = y.clone();
        yf.push(y[3]);
        let full = Gp::new(xf, yf, &h).unwrap();
        let test: Vec<Vec<f64>> = (0..30).map(|_| pt(&mut rng)).collect();
        let (m1, v1) = inc.predict(&test);
        let (m2, v2) = full.predict(&test);
        for i in 0..test.len() {
            assert!((m1[i] - m2[i]).abs() < 1e-6, "mean {} vs {}", m1[i], m2[i]);
            assert!((v1[i] - v2[i]).abs() < 1e-6, "var {} vs {}", v1[i], v2[i]);
        }
    }

    #[test]
    fn lower_inverse_is_inverse() {
        let mut rng = StdRng::seed_from_u64(2);
        let n = 37;
        let mut l = DMatrix::<f64>::from_fn(n, n, |_, _| rng.random::<f64>() - 0.5);
        for i in 0..n {
            l[(i, i)] = 1.0 + rng.random::<f64>();
        }
        let inv = lower_inverse(&l).unwrap();
        // Only the lower triangle of `l` counts.
        let prod = inv * l.lower_triangle();
        assert!((prod - DMatrix::<f64>::identity(n, n)).amax() < 1e-10);
        l[(5, 5)] = 0.0;
        assert!(lower_inverse(&l).is_none());
    }

    #[test]
    fn closed_form_loo_equals_refits_without_each_point() {
        let mut rng = StdRng::seed_from_u64(21);
        let x: Vec<Vec<f64>> = (0..25)
            .map(|_| vec![rng.random(), rng.random(), rng.random_range(0..3) as f64])
            .collect();
        let y: Vec<f64> = x
            .iter()
            .map(|p| (4.0 * p[0]).sin() + p[1] - 0.3 * p[2] + 0.1 * (rng.random::<f64>() - 0.5))
            .collect();
        let h = Hyper {
            log_ls: vec![-1.0, -0.5],
            log_cat_ls: vec![0.3],
            log_signal: 0.0,
            log_noise: 0.01f64.ln(),
        };
        let gp = Gp::new(x.clone(), y.clone(), &h).unwrap();
        let (mean, var) = gp.loo();
        for i in 0..x.len() {
            let mut xs = x.clone();
            let mut ys = y.clone();
            xs.remove(i);
            ys.remove(i);
            let without = Gp::new(xs, ys, &h).unwrap();
            let (m, v) = without.predict(std::slice::from_ref(&x[i]));
            // The refit predicts the latent value; the held-out target adds the noise.
            let v = v[0] + gp.kernel.noise;
            assert!(
                (mean[i] - m[0]).abs() < 1e-8,
                "mean {} vs {}",
                mean[i],
                m[0]
            );
            assert!(
                (var[i] - v).abs() < 1e-8 * v.max(1.0),
                "var {} vs {v}",
                var[i]
            );
        }
    }

    /// On samples of the GP itself with the true hyperparameters, each
    /// held-out target given the others is exactly N(μ₋ᵢ, σ²₋ᵢ), so every
    /// coverage indicator has mean 0.9 and so does each sample's coverage
    /// c_r ∈ [0, 1]. The R = 5,000 samples are independent: by Hoeffding,
    /// P(|mean c − 0.9| ≥ 0.04) ≤ 2·exp(−2·R·0.04²) = 2.3e-7.
    #[test]
    fn loo_coverage_is_near_nominal_on_a_well_specified_gp() {
        let mut rng = StdRng::seed_from_u64(5);
        let h = Hyper {
            log_ls: vec![0.2f64.ln()],
            log_cat_ls: vec![],
            log_signal: 0.0,
            log_noise: 0.05f64.ln(),
        };
        let kernel = Kernel::new(&h);
        let normal = rand_distr::StandardNormal;
        let (r, n) = (5_000, 30);
        let mut sum = 0.0;
        for _ in 0..r {
            let x: Vec<Vec<f64>> = (0..n).map(|_| vec![rng.random::<f64>()]).collect();
            let chol = robust_cholesky(&gram(&kernel, &x)).unwrap();
            let z = DVector::<f64>::from_fn(n, |_, _| rng.sample::<f64, _>(normal));
            let y = chol.l() * z;
            let gp = Gp::new(x, y.iter().copied().collect(), &h).unwrap();
            let c = gp.loo_coverage(n, 0.9).unwrap();
            assert!((0.0..=1.0).contains(&c));
            sum += c;
        }
        let mean = sum / r as f64;
        assert!((mean - 0.9).abs() < 0.04, "mean coverage {mean}");
    }

    #[test]
    fn duplicates_do_not_break_cholesky() {
        let x = vec![vec![0.5, 0.5]; 20];
        let y = vec![1.0; 20];
        let h = Hyper::default_for(2, 0);
        let gp = Gp::new(x, y, &h).unwrap();
        let (m, v) = gp.predict(&[vec![0.5, 0.5]]);
        assert!(m[0].is_finite() && v[0].is_finite());
    }
}
