//! Exact GP regression on standardized outputs (zero prior mean).

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

use super::error::BoError;
use super::kernel::{Hyper, Kernel};

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
        let kernel = Kernel::new(hyper);
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
        let alpha = chol.solve(&DVector::from_column_slice(&y));
        let mut linv = DMatrix::identity(n, n);
        let l = chol.l_dirty();
        if !l.solve_lower_triangular_mut(&mut linv) {
            return Err(BoError::Numerical("singular Cholesky factor".into()));
        }
        // solve on the full (dirty) factor reads only the lower triangle.
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

    pub fn n(&self) -> usize {
        self.x.len()
    }

    /// A new GP with one more (fantasy) observation, same hyperparameters.
    pub fn with_point(&self, x: Vec<f64>, y: f64) -> Result<Self, BoError> {
        let mut xs = self.x.clone();
        xs.push(x);
        let mut ys = self.y.clone();
        ys.push(y);
        Gp::new(xs, ys, &self.hyper)
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
    fn duplicates_do_not_break_cholesky() {
        let x = vec![vec![0.5, 0.5]; 20];
        let y = vec![1.0; 20];
        let h = Hyper::default_for(2, 0);
        let gp = Gp::new(x, y, &h).unwrap();
        let (m, v) = gp.predict(&[vec![0.5, 0.5]]);
        assert!(m[0].is_finite() && v[0].is_finite());
    }
}
