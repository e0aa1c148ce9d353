//! Hyperparameter fitting: maximize log marginal likelihood + weak log priors
//! over log-hyperparameters with argmin's L-BFGS (More–Thuente line search).

use std::cell::RefCell;

use argmin::core::{CostFunction, Error as ArgminError, Executor, Gradient};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use rand::Rng;
use rand_distr::{Distribution, Normal};

use super::gp::{gram, lower_inverse, robust_cholesky};
use std::sync::Arc;

use super::kernel::{Hyper, Kernel, LevelMetric};

/// Log-normal priors `θ ~ N(mean, sd²)` on the log-hyperparameters. They are weak
/// (sd ≥ 1 in log space) and exist to keep the marginal likelihood from running
/// off to degenerate optima with few points (ℓ → ∞ with constant outputs, σ_n² → 0
/// with 2 points).
/// Length scales of the unit cube: centred on ℓ = 1 (smooth over the cube), sd 1
/// leaves ℓ ∈ [0.14, 7.4] within 2 sd.
const LS_PRIOR: (f64, f64) = (0.0, 1.0);
/// Categorical length scale: ℓ_c = 1 means a level change multiplies k by e^{-1}.
const CAT_PRIOR: (f64, f64) = (0.0, 1.0);
/// Outputs are standardized, so the signal variance should be about 1.
const SIGNAL_PRIOR: (f64, f64) = (0.0, 1.0);
/// Excess noise: centred on 1e-3 of the output variance (most tuned objectives
/// are nearly deterministic), sd 2.5 so that real noise is learned easily.
const NOISE_PRIOR: (f64, f64) = (-6.907_755_278_982_137, 2.5);
/// Hard box on every log-hyperparameter after optimization: beyond e^±7 the
/// kernel matrix is numerically constant or diagonal.
const LOG_BOX: f64 = 7.0;
/// The excess noise may go lower, to e^-16 ≈ 1e-7 (below `NOISE_FLOOR`, so the
/// floor then rules): at e^-7 ≈ 1e-3 of the output variance a deterministic
/// objective could not be modelled finer than ~3 % of its spread, which stalled
/// the final polishing (Hartmann6's last 1e-2 of regret).
const LOG_NOISE_MIN: f64 = -16.0;

/// How much effort to spend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FitMode {
    /// Warm start (if any), the default point, and `random_starts` draws from the prior.
    Full {
        random_starts: usize,
        max_iters: u64,
    },
    /// Warm start only (falls back to Full-like default start without a warm state).
    Warm { max_iters: u64 },
}

fn prior_of(j: usize, n_cont: usize, n_cat: usize) -> (f64, f64) {
    if j < n_cont {
        LS_PRIOR
    } else if j < n_cont + n_cat {
        CAT_PRIOR
    } else if j == n_cont + n_cat {
        SIGNAL_PRIOR
    } else {
        NOISE_PRIOR
    }
}

/// Negative log posterior (−LML − log prior, up to a constant) and its gradient
/// wrt the log-hyperparameters. `None` when the Cholesky fails.
pub fn neg_log_posterior(
    theta: &[f64],
    x: &[Vec<f64>],
    y: &[f64],
    n_cont: usize,
    n_cat: usize,
    levels: Option<&Arc<LevelMetric>>,
) -> Option<(f64, Vec<f64>)> {
    if theta.iter().any(|t| !t.is_finite()) {
        return None;
    }
    let h = Hyper::from_vec(theta, n_cont, n_cat);
    let kern = Kernel::with_levels(&h, levels.cloned());
    let n = x.len();
    let p = theta.len();
    let mut val = 0.0;
    let mut grad = vec![0.0; p];
    if n > 0 {
        let k = gram(&kern, x);
        let chol = robust_cholesky(&k).ok()?;
        let yv = nalgebra::DVector::from_column_slice(y);
        let l = chol.l_dirty();
        let logdet: f64 = (0..n).map(|i| l[(i, i)].ln()).sum::<f64>() * 2.0;
        // K⁻¹ = L⁻ᵀL⁻¹ as one GEMM (blocked, fast) after the cheap triangular
        // inverse; nalgebra's `Cholesky::inverse` solves against the identity
        // column by column and was the most expensive step of a fit.
        let linv = lower_inverse(l)?;
        let kinv = linv.transpose() * &linv;
        let alpha = &kinv * &yv;
        let lml = -0.5 * yv.dot(&alpha)
            - 0.5 * logdet
            - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
        val = -lml;
        // dLML/dθ = ½ tr((ααᵀ − K⁻¹) ∂K/∂θ); W is symmetric so off-diagonals count twice.
        let mut g = vec![0.0; p - 1];
        let mut acc = vec![0.0; p - 1];
        for i in 0..n {
            for j in 0..i {
                let w = alpha[i] * alpha[j] - kinv[(i, j)];
                kern.k_with_grad(&x[i], &x[j], &mut g);
                for (a, gv) in acc.iter_mut().zip(&g) {
                    *a += 2.0 * w * gv;
                }
            }
            let wii = alpha[i] * alpha[i] - kinv[(i, i)];
            // Diagonal: k(x,x) = σ² only depends on log σ²; noise adds e^{θ_noise}.
            acc[p - 2] += wii * kern.signal;
            grad[p - 1] -= 0.5 * wii * h.log_noise.exp();
        }
        for (gr, a) in grad.iter_mut().zip(&acc) {
            *gr -= 0.5 * a;
        }
    }
    for (j, t) in theta.iter().enumerate() {
        let (m, s) = prior_of(j, n_cont, n_cat);
        val += 0.5 * ((t - m) / s).powi(2);
        grad[j] += (t - m) / (s * s);
    }
    if !val.is_finite() || grad.iter().any(|g| !g.is_finite()) {
        return None;
    }
    Some((val, grad))
}

/// (θ, value, gradient) of the last evaluation.
type Memo = (Vec<f64>, f64, Vec<f64>);

/// argmin problem with a one-entry memo, because L-BFGS asks for the cost and the
/// gradient at the same point separately and each needs the same Cholesky.
struct Problem<'a> {
    x: &'a [Vec<f64>],
    y: &'a [f64],
    n_cont: usize,
    n_cat: usize,
    levels: Option<&'a Arc<LevelMetric>>,
    memo: RefCell<Option<Memo>>,
}

impl Problem<'_> {
    fn eval(&self, theta: &[f64]) -> Result<(f64, Vec<f64>), ArgminError> {
        if let Some((t, v, g)) = self.memo.borrow().as_ref()
            && t.as_slice() == theta
        {
            return Ok((*v, g.clone()));
        }
        let (v, g) = neg_log_posterior(theta, self.x, self.y, self.n_cont, self.n_cat, self.levels)
            .ok_or_else(|| ArgminError::msg("GP objective not finite"))?;
        *self.memo.borrow_mut() = Some((theta.to_vec(), v, g.clone()));
        Ok((v, g))
    }
}

impl CostFunction for Problem<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> Result<f64, ArgminError> {
        Ok(self.eval(p)?.0)
    }
}

impl Gradient for Problem<'_> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Vec<f64>) -> Result<Vec<f64>, ArgminError> {
        Ok(self.eval(p)?.1)
    }
}

fn lbfgs(problem: Problem<'_>, start: Vec<f64>, max_iters: u64) -> Option<Vec<f64>> {
    let ls = MoreThuenteLineSearch::new();
    let solver = LBFGS::new(ls, 8)
        .with_tolerance_grad(1e-5)
        .ok()?
        .with_tolerance_cost(1e-9)
        .ok()?;
    let res = Executor::new(problem, solver)
        .configure(|s| s.param(start).max_iters(max_iters))
        .run()
        .ok()?;
    let mut state = res.state;
    state.take_best_param()
}

/// Steepest descent with Armijo backtracking, the step capped at `MAX_GD_STEP`
/// in every log-hyperparameter. The fallback when L-BFGS cannot leave its start:
/// on a badly fitting start (e.g. after an outlier arrived) the gradient reaches
/// hundreds, L-BFGS's unit first step then lands at e^±300 where the line
/// search fails, and the stale hyperparameters would be kept for good.
fn descend(problem: &Problem<'_>, start: Vec<f64>, iters: u64) -> Option<Vec<f64>> {
    let (mut f, mut g) = problem.eval(&start).ok()?;
    let mut x = start;
    let mut step = 1.0;
    for _ in 0..iters {
        let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if gmax < 1e-5 || step < 1e-6 {
            break;
        }
        let d: Vec<f64> = g.iter().map(|v| -v / gmax.max(1.0)).collect();
        let slope: f64 = g.iter().zip(&d).map(|(a, b)| a * b).sum();
        let y: Vec<f64> = x
            .iter()
            .zip(&d)
            .map(|(a, b)| a + step * MAX_GD_STEP * b)
            .collect();
        match problem.eval(&y) {
            Ok((fy, gy)) if fy <= f + 1e-4 * step * MAX_GD_STEP * slope => {
                x = y;
                f = fy;
                g = gy;
                step = (step * 2.0).min(1.0);
            }
            _ => step *= 0.5,
        }
    }
    Some(x)
}

/// Largest move of one log-hyperparameter per steepest-descent step.
const MAX_GD_STEP: f64 = 1.0;

/// Fits hyperparameters. Never fails: if every start fails, returns the warm
/// start (if valid) or the default hyperparameters.
// The data, its layout (dimensions, level distances) and the fit's
// controls: grouping them would only move the list into a struct literal.
#[allow(clippy::too_many_arguments)]
pub fn fit_hyper<R: Rng>(
    x: &[Vec<f64>],
    y: &[f64],
    n_cont: usize,
    n_cat: usize,
    levels: Option<&Arc<LevelMetric>>,
    warm: Option<&Hyper>,
    mode: FitMode,
    rng: &mut R,
) -> Hyper {
    let default = Hyper::default_for(n_cont, n_cat);
    let warm =
        warm.filter(|w| w.log_ls.len() == n_cont && w.log_cat_ls.len() == n_cat && w.is_finite());
    let mut starts: Vec<Vec<f64>> = Vec::new();
    if let Some(w) = warm {
        starts.push(w.to_vec());
    }
    let (random_starts, max_iters) = match mode {
        FitMode::Full {
            random_starts,
            max_iters,
        } => (random_starts, max_iters),
        FitMode::Warm { max_iters } => (0, max_iters),
    };
    if warm.is_none() || matches!(mode, FitMode::Full { .. }) {
        starts.push(default.to_vec());
    }
    for _ in 0..random_starts {
        let t: Vec<f64> = (0..default.n_params())
            .map(|j| {
                let (m, s) = prior_of(j, n_cont, n_cat);
                // Draw within ±1.5 sd: the prior tails are not useful starts.
                let z: f64 = Normal::new(0.0, 1.0).map(|d| d.sample(rng)).unwrap_or(0.0);
                m + s * z.clamp(-1.5, 1.5)
            })
            .collect();
        starts.push(t);
    }
    let fallback = warm.cloned().unwrap_or_else(|| default.clone());
    let mut best: Option<(f64, Vec<f64>)> = None;
    let mut consider = |t: Vec<f64>| {
        let last = t.len() - 1;
        let t: Vec<f64> = t
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let lo = if j == last { LOG_NOISE_MIN } else { -LOG_BOX };
                v.clamp(lo, LOG_BOX)
            })
            .collect();
        if let Some((v, _)) = neg_log_posterior(&t, x, y, n_cont, n_cat, levels)
            && best.as_ref().is_none_or(|(bv, _)| v < *bv)
        {
            best = Some((v, t));
        }
    };
    for s in starts {
        let problem = Problem {
            x,
            y,
            n_cont,
            n_cat,
            levels,
            memo: RefCell::new(None),
        };
        consider(s.clone());
        let memo = RefCell::new(None);
        match lbfgs(problem, s.clone(), max_iters) {
            Some(t) if t != s => consider(t),
            _ => {
                let problem = Problem {
                    x,
                    y,
                    n_cont,
                    n_cat,
                    levels,
                    memo,
                };
                if let Some(t) = descend(&problem, s, max_iters)
                    .and_then(|t| lbfgs(problem, t.clone(), max_iters).or(Some(t)))
                {
                    consider(t);
                }
            }
        }
    }
    match best {
        Some((_, t)) => Hyper::from_vec(&t, n_cont, n_cat),
        None => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn gradient_matches_central_differences() {
        let mut rng = StdRng::seed_from_u64(11);
        for trial in 0..5 {
            let n = 12;
            let x: Vec<Vec<f64>> = (0..n)
                .map(|_| {
                    vec![
                        rng.random(),
                        rng.random(),
                        rng.random(),
                        rng.random_range(0..3) as f64,
                    ]
                })
                .collect();
            let y: Vec<f64> = x
                .iter()
                .map(|p| (4.0 * p[0]).sin() + p[1] - p[3] * 0.3 + 0.1 * rng.random::<f64>())
                .collect();
            let theta: Vec<f64> = (0..6).map(|_| rng.random_range(-1.5..0.5)).collect();
            let (_, g) = neg_log_posterior(&theta, &x, &y, 3, 1, None).unwrap();
            for j in 0..theta.len() {
                let eps = 1e-5;
                let mut a = theta.clone();
                a[j] += eps;
                let mut b = theta.clone();
                b[j] -= eps;
                let fa = neg_log_posterior(&a, &x, &y, 3, 1, None).unwrap().0;
                let fb = neg_log_posterior(&b, &x, &y, 3, 1, None).unwrap().0;
                let fd = (fa - fb) / (2.0 * eps);
                assert!(
                    (fd - g[j]).abs() <= 1e-4 * (1.0 + fd.abs()),
                    "trial {trial} θ{j}: analytic {} vs fd {fd}",
                    g[j]
                );
            }
        }
    }

    #[test]
    fn fit_improves_objective_and_learns_irrelevant_dim() {
        let mut rng = StdRng::seed_from_u64(5);
        let x: Vec<Vec<f64>> = (0..30).map(|_| vec![rng.random(), rng.random()]).collect();
        let y: Vec<f64> = x.iter().map(|p| (6.0 * p[0]).sin()).collect();
        let h = fit_hyper(
            &x,
            &y,
            2,
            0,
            None,
            None,
            FitMode::Full {
                random_starts: 2,
                max_iters: 60,
            },
            &mut rng,
        );
        let f0 = neg_log_posterior(&Hyper::default_for(2, 0).to_vec(), &x, &y, 2, 0, None)
            .unwrap()
            .0;
        let f1 = neg_log_posterior(&h.to_vec(), &x, &y, 2, 0, None)
            .unwrap()
            .0;
        assert!(f1 < f0);
        // dimension 1 is irrelevant: its length scale should be much longer.
        assert!(h.log_ls[1] > h.log_ls[0] + 1.0, "{:?}", h.log_ls);
    }
}
