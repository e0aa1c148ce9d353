//! Acquisition functions (all *maximized*, objective internally minimized, GP in
//! standardized units) and numerically stable Gaussian tail helpers.

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;

use super::cost::{CostScale, log_ei_lognormal_capped};
use super::gp::Gp;

const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;
const SQRT_PI_OVER_2: f64 = 1.253_314_137_315_500_3;
const SQRT_2: f64 = std::f64::consts::SQRT_2;
/// Below this z we switch log Φ and log h to asymptotic series: there `erfc`
/// would start to lose relative accuracy / underflow (erfc(30/√2) ≈ 1e-197; it
/// underflows near 27·√2), while the series in w = 1/z² ≤ 1.1e-3 is accurate
/// to ~1e-15 with the 8 terms used.
const TAIL_Z: f64 = -30.0;
/// Default UCB exploration weight κ in `μ − κσ` (≈ a 97.7 % one-sided bound).
pub const DEFAULT_UCB_BETA: f64 = 2.0;

/// Which acquisition function `suggest` maximizes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Acquisition {
    /// log expected improvement (Ament et al. 2023), the default.
    #[default]
    LogEi,
    /// Lower confidence bound on the (minimized) objective, `−(μ − beta·σ)`.
    Ucb { beta: f64 },
    /// log probability of improvement.
    Pi,
}

/// log of the standard normal density.
#[inline]
pub fn log_phi(z: f64) -> f64 {
    -0.5 * z * z - LN_SQRT_2PI
}

/// Σ_{k≥0} (−1)^k (2k−1)!! w^k, the asymptotic series shared by log Φ and log h.
fn tail_series(w: f64, start: usize) -> f64 {
    // DF[k] = (2k-1)!! with (-1)!! = 1. Φ uses c_k = (2k-1)!! (start 0), h uses
    // c_k = (2k+1)!! (start 1).
    const DF: [f64; 9] = [
        1.0, 1.0, 3.0, 15.0, 105.0, 945.0, 10395.0, 135135.0, 2027025.0,
    ];
    let mut s = 0.0;
    let mut p = 1.0;
    for k in 0..8 {
        let c = DF[k + start];
        s += if k % 2 == 0 { c * p } else { -c * p };
        p *= w;
    }
    s
}

/// log Φ(z), accurate for z from −∞ to +∞.
pub fn log_ndtr(z: f64) -> f64 {
    if z > 0.0 {
        (-0.5 * erfc(z / SQRT_2)).ln_1p()
    } else if z > TAIL_Z {
        (0.5 * erfc(-z / SQRT_2)).ln()
    } else {
        // Φ(z) = φ(z)/|z| · (1 − 1/z² + 3/z⁴ − …)
        let w = 1.0 / (z * z);
        log_phi(z) - (-z).ln() + tail_series(w, 0).ln()
    }
}

/// log h(z) with h(z) = φ(z) + zΦ(z) (EI = σ·h(z)), stable for any z.
///
/// For z ≤ −1, h(z) = φ(z)·(1 − u√π·erfcx(u)), u = −z/√2, which avoids the
/// catastrophic cancellation of φ + zΦ; for z < TAIL_Z the bracket is expanded
/// as w(1 − 3w + 15w² − …), w = 1/z², giving log h ≈ log φ(z) − 2 log|z| + …
pub fn log_h(z: f64) -> f64 {
    if z > -1.0 {
        let phi = log_phi(z).exp();
        let cdf = 0.5 * erfc(-z / SQRT_2);
        (phi + z * cdf).ln()
    } else if z > TAIL_Z {
        let u = -z / SQRT_2;
        let erfcx = (u * u).exp() * erfc(u);
        // 1 + z·√(π/2)·erfcx(−z/√2)
        log_phi(z) + (1.0 + z * SQRT_PI_OVER_2 * erfcx).ln()
    } else {
        let w = 1.0 / (z * z);
        log_phi(z) + w.ln() + tail_series(w, 1).ln()
    }
}

/// log EI for minimization with incumbent `best`: returns (value, ∂/∂μ, ∂/∂σ).
pub fn log_ei(mu: f64, sigma: f64, best: f64) -> (f64, f64, f64) {
    let z = (best - mu) / sigma;
    let lh = log_h(z);
    let r = (log_ndtr(z) - lh).exp(); // Φ(z)/h(z) = d log h / dz
    (sigma.ln() + lh, -r / sigma, 1.0 / sigma - r * z / sigma)
}

/// log Φ((b − μ)/σ): returns (value, ∂/∂μ, ∂/∂σ). Used for log PI and log P(feasible).
pub fn log_prob_below(mu: f64, sigma: f64, bound: f64) -> (f64, f64, f64) {
    let z = (bound - mu) / sigma;
    let lc = log_ndtr(z);
    let mills = (log_phi(z) - lc).exp();
    (lc, -mills / sigma, -mills * z / sigma)
}

/// log P(lo ≤ Y ≤ hi) for Y ~ N(μ, σ²), either bound optional (at least
/// one set): returns (value, ∂/∂μ, ∂/∂σ). One-sided bounds use the stable
/// tails of [`log_prob_below`]; an interval computes the difference of the
/// two CDFs on the side where neither is close to 1 (the upper tails when the
/// interval lies above the mean), so it keeps its relative accuracy.
pub fn log_prob_between(mu: f64, sigma: f64, lo: Option<f64>, hi: Option<f64>) -> (f64, f64, f64) {
    match (lo, hi) {
        (None, None) => (0.0, 0.0, 0.0),
        (None, Some(h)) => log_prob_below(mu, sigma, h),
        // P(Y ≥ lo) = P(−Y ≤ −lo): the mean flips sign, so does ∂/∂μ.
        (Some(l), None) => {
            let (v, dm, ds) = log_prob_below(-mu, sigma, -l);
            (v, -dm, ds)
        }
        (Some(l), Some(h)) => {
            let (zl, zh) = ((l - mu) / sigma, (h - mu) / sigma);
            // Φ(zh) − Φ(zl) = Φ(−zl) − Φ(−zh): take the pair further in the
            // lower tail, as log Φ(a) + log(1 − exp(log Φ(b) − log Φ(a))).
            let (a, b) = if zl + zh > 0.0 { (-zl, -zh) } else { (zh, zl) };
            let (la, lb) = (log_ndtr(a), log_ndtr(b));
            let v = la + (-(lb - la).exp()).ln_1p();
            // d/dμ P = (φ(zl) − φ(zh))/σ, d/dσ P = (zl φ(zl) − zh φ(zh))/σ;
            // divided by P = exp(v) in logs, so that tails do not underflow.
            let rl = (log_phi(zl) - v).exp();
            let rh = (log_phi(zh) - v).exp();
            (v, (rl - rh) / sigma, (zl * rl - zh * rh) / sigma)
        }
    }
}

/// A constraint model: GP of the metric (standardized) and its bounds in the
/// same units (at least one set).
pub struct ConstraintModel<'a> {
    pub gp: &'a Gp,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

/// Everything needed to evaluate the acquisition at candidate points.
pub struct AcqModel<'a> {
    pub objective: &'a Gp,
    /// Best observed feasible (standardized, minimized) value; `None` when no
    /// observation is feasible, in which case only log P(feasible) is maximized.
    pub best: Option<f64>,
    pub constraints: Vec<ConstraintModel<'a>>,
    pub kind: Acquisition,
    /// Known prices: the objective term is the expected improvement of the
    /// cost `a(x)·exp(f(x)) + b` instead of `best` on the GP's own output.
    pub(crate) cost: Option<CostAcq<'a>>,
}

/// A cost objective (see `bo::cost`): the objective GP models `g`, with
/// `ln duration_ms = loc + sd·g`, and the cost is `a(x)·duration + b`.
pub(crate) struct CostAcq<'a> {
    pub(crate) scale: &'a CostScale,
    pub(crate) loc: f64,
    pub(crate) sd: f64,
    /// The incumbent cost (dollars).
    pub(crate) best: f64,
    /// An SLO on the modeled duration itself (`duration_ms <= slo_ms`, the
    /// study's constraint on [`super::cost::DURATION_METRIC`]): improvement
    /// counts only where it holds, in the same expectation (see
    /// [`log_ei_lognormal_capped`]), instead of a second model of the same
    /// duration multiplied in as if it were independent.
    pub(crate) slo_ms: Option<f64>,
}

impl CostAcq<'_> {
    /// (log EI, ∂/∂μ_g, ∂/∂σ_g, ∂/∂ln a) at a point with GP mean `mu`, std `s`.
    fn term(&self, ln_a: f64, mu: f64, s: f64) -> (f64, f64, f64, f64) {
        // The cost at the SLO: `a·slo_ms` (+ b, which cancels against the
        // incumbent's); above it no improvement counts.
        let cap = self
            .slo_ms
            .map_or(f64::INFINITY, |slo| (ln_a + slo.ln()).exp());
        let (v, dy, ds, du) = log_ei_lognormal_capped(
            ln_a + self.loc + self.sd * mu,
            self.sd * s,
            self.best - self.scale.fixed,
            cap,
        );
        // ln a moves both the log cost and the cap.
        (v, dy * self.sd, ds * self.sd, dy + du)
    }
}

fn objective_term(kind: Acquisition, mu: f64, sigma: f64, best: f64) -> (f64, f64, f64) {
    match kind {
        Acquisition::LogEi => log_ei(mu, sigma, best),
        Acquisition::Pi => log_prob_below(mu, sigma, best),
        Acquisition::Ucb { beta } => (-mu + beta * sigma, -1.0, beta),
    }
}

impl AcqModel<'_> {
    /// Acquisition values at many points (batched GP predictions).
    pub fn values(&self, pts: &[Vec<f64>]) -> Vec<f64> {
        let mut out = vec![0.0; pts.len()];
        if let Some(c) = &self.cost {
            let (m, v) = self.objective.predict(pts);
            for i in 0..pts.len() {
                let (ln_a, _) = c.scale.ln_a(&pts[i]);
                out[i] += c.term(ln_a, m[i], v[i].sqrt()).0;
            }
        } else if let Some(best) = self.best {
            let (m, v) = self.objective.predict(pts);
            for i in 0..pts.len() {
                out[i] += objective_term(self.kind, m[i], v[i].sqrt(), best).0;
            }
        }
        for c in &self.constraints {
            let (m, v) = c.gp.predict(pts);
            for i in 0..pts.len() {
                out[i] += log_prob_between(m[i], v[i].sqrt(), c.lower, c.upper).0;
            }
        }
        for o in &mut out {
            if !o.is_finite() {
                *o = f64::NEG_INFINITY;
            }
        }
        out
    }

    /// Value and gradient wrt the continuous coordinates at one point.
    pub fn value_grad(&self, p: &[f64]) -> (f64, Vec<f64>) {
        let nc = self.objective.kernel.n_cont();
        let mut val = 0.0;
        let mut grad = vec![0.0; nc];
        if let Some(c) = &self.cost {
            let (ln_a, dln_a) = c.scale.ln_a(p);
            let (mu, var, dmu, dvar) = self.objective.predict_with_grad(p);
            let s = var.sqrt();
            let (a, d_mu, d_s, d_ln_a) = c.term(ln_a, mu, s);
            val += a;
            for i in 0..nc {
                grad[i] += d_mu * dmu[i] + d_s * dvar[i] / (2.0 * s);
            }
            if let Some((j, d)) = dln_a
                && j < nc
            {
                grad[j] += d_ln_a * d;
            }
        }
        let mut add = |gp: &Gp, f: &dyn Fn(f64, f64) -> (f64, f64, f64)| {
            let (mu, var, dmu, dvar) = gp.predict_with_grad(p);
            let s = var.sqrt();
            let (a, da_dmu, da_ds) = f(mu, s);
            val += a;
            for i in 0..nc {
                grad[i] += da_dmu * dmu[i] + da_ds * dvar[i] / (2.0 * s);
            }
        };
        if self.cost.is_none()
            && let Some(best) = self.best
        {
            add(self.objective, &|m, s| {
                objective_term(self.kind, m, s, best)
            });
        }
        for c in &self.constraints {
            add(c.gp, &|m, s| log_prob_between(m, s, c.lower, c.upper));
        }
        if !val.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return (f64::NEG_INFINITY, vec![0.0; nc]);
        }
        (val, grad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_log_ei(z: f64) -> f64 {
        let phi = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let cdf = 0.5 * erfc(-z / SQRT_2);
        (phi + z * cdf).ln()
    }

    #[test]
    fn log_h_matches_naive_where_accurate() {
        let mut z = -5.0;
        while z <= 5.0 {
            let a = log_h(z);
            let b = naive_log_ei(z);
            assert!((a - b).abs() < 1e-8 * (1.0 + b.abs()), "z={z}: {a} vs {b}");
            z += 0.01;
        }
    }

    #[test]
    fn log_h_finite_monotone_and_continuous_in_tail() {
        let mut prev = f64::NEG_INFINITY;
        let mut z = -1000.0;
        while z <= 10.0 {
            let v = log_h(z);
            assert!(v.is_finite(), "z={z}");
            assert!(v > prev, "not increasing at z={z}: {v} <= {prev}");
            prev = v;
            z += 0.001 * (1.0 + z.abs()).min(10.0);
        }
        // Continuity across the branch switches.
        for zs in [TAIL_Z, -1.0] {
            let (a, b) = (log_h(zs - 1e-9), log_h(zs + 1e-9));
            assert!((a - b).abs() < 1e-7 * a.abs(), "jump at {zs}: {a} vs {b}");
            let (a, b) = (log_ndtr(zs - 1e-9), log_ndtr(zs + 1e-9));
            assert!((a - b).abs() < 1e-7 * a.abs(), "log_ndtr jump at {zs}");
        }
        // Leading asymptotic behaviour: log h(z) ≈ log φ(z) − 2 log|z|.
        let z = -1000.0;
        assert!((log_h(z) - (log_phi(z) - 2.0 * 1000f64.ln())).abs() < 1e-5);
    }

    #[test]
    fn interval_probability_matches_statrs_and_its_gradient() {
        use statrs::distribution::{ContinuousCDF, Normal};
        let n = Normal::new(0.0, 1.0).unwrap();
        for &(mu, s, lo, hi) in &[
            (0.0, 1.0, -1.0, 1.0),
            (3.0, 0.5, -1.0, 1.0),
            (-2.0, 2.0, 0.5, 4.0),
            (0.2, 0.1, 0.0, 0.3),
        ] {
            let want = (n.cdf((hi - mu) / s) - n.cdf((lo - mu) / s)).ln();
            let (v, dm, ds) = log_prob_between(mu, s, Some(lo), Some(hi));
            assert!(
                (v - want).abs() < 1e-9 * (1.0 + want.abs()),
                "{v} vs {want}"
            );
            let e = 1e-6;
            let f = |m: f64, s: f64| log_prob_between(m, s, Some(lo), Some(hi)).0;
            let fm = (f(mu + e, s) - f(mu - e, s)) / (2.0 * e);
            let fs = (f(mu, s + e) - f(mu, s - e)) / (2.0 * e);
            assert!((fm - dm).abs() < 1e-4 * (1.0 + dm.abs()), "{fm} vs {dm}");
            assert!((fs - ds).abs() < 1e-4 * (1.0 + ds.abs()), "{fs} vs {ds}");
        }
        // Lower bound only: P(Y >= lo) = 1 - Φ((lo - μ)/σ).
        let (v, _, _) = log_prob_between(1.0, 2.0, Some(0.0), None);
        assert!((v - (1.0 - n.cdf(-0.5)).ln()).abs() < 1e-12);
        // Far in the tail the interval stays finite (no 0 - 0).
        let (v, _, _) = log_prob_between(-40.0, 1.0, Some(0.0), Some(1.0));
        assert!(v.is_finite() && v < -700.0, "{v}");
    }

    #[test]
    fn log_ei_gradient_consistent() {
        for &(mu, s) in &[(0.3, 0.5), (5.0, 0.1), (-1.0, 2.0), (40.0, 0.2)] {
            let (_, dm, ds) = log_ei(mu, s, 0.0);
            let e = 1e-6;
            let fm = (log_ei(mu + e, s, 0.0).0 - log_ei(mu - e, s, 0.0).0) / (2.0 * e);
            let fs = (log_ei(mu, s + e, 0.0).0 - log_ei(mu, s - e, 0.0).0) / (2.0 * e);
            assert!(
                (fm - dm).abs() < 1e-4 * (1.0 + dm.abs()),
                "mu {mu}: {fm} vs {dm}"
            );
            assert!(
                (fs - ds).abs() < 1e-4 * (1.0 + ds.abs()),
                "s {s}: {fs} vs {ds}"
            );
        }
    }
}
