//! An experiment's history: one point per recording interval with every
//! arm's posterior summary and the decisions served since the previous
//! point (the traffic split), and the drift between successive posteriors.
//!
//! Pure data and math: the recording loop is `app::history`, the storage
//! `store` (all backends share [`encode`]/[`decode`], so a point reads back
//! the same from each).

use serde::{Deserialize, Serialize};
use statrs::function::gamma::{digamma, ln_gamma};

use super::Posterior;

/// One recording of an experiment at `time_ms` (the start of its interval,
/// Unix ms: `interval index × interval`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub time_ms: i64,
    /// In definition order (arms are only ever appended, so index i is the
    /// same arm in every point).
    pub arms: Vec<ArmPoint>,
}

/// One arm at one point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmPoint {
    pub name: String,
    /// Rewards ever received (not decayed).
    pub rewards: u64,
    /// Decayed weight of the evidence.
    pub evidence: f64,
    /// Posterior mean and its 95% equal-tailed credible interval.
    pub mean: f64,
    pub lower: f64,
    pub upper: f64,
    /// P(best), goal-aware (see `bandit::verdict`).
    pub prob_best: f64,
    /// Decisions for this arm served since the previous point, summed over
    /// every replica.
    pub decisions: u64,
}

/// The stored form of a point, shared by the embedded and Redis stores:
///
/// ```text
/// <time_ms>
/// <decisions of arm 0> <decisions of arm 1> ...
/// <name> <rewards> <evidence> <mean> <lower> <upper> <prob_best>     (one line per arm)
/// ```
///
/// Decisions sit on their own line so that Redis's script can add another
/// replica's counts without parsing the rest. Real numbers are kept to
/// single precision (7 significant digits): history draws charts and
/// drift, and this halves what a week of points costs the store (see the
/// README for the bytes per experiment). Names cannot hold spaces or
/// newlines (`crate::name`).
pub fn encode(p: &HistoryPoint) -> String {
    let mut s = format!("{}\n", p.time_ms);
    let decisions: Vec<String> = p.arms.iter().map(|a| a.decisions.to_string()).collect();
    s.push_str(&decisions.join(" "));
    for a in &p.arms {
        s.push_str(&format!(
            "\n{} {} {:?} {:?} {:?} {:?} {:?}",
            a.name,
            a.rewards,
            a.evidence as f32,
            a.mean as f32,
            a.lower as f32,
            a.upper as f32,
            a.prob_best as f32
        ));
    }
    s
}

/// Parse [`encode`]'s form; `Err` names what is wrong (stored data that
/// does not parse is corrupt, not a panic).
pub fn decode(s: &str) -> Result<HistoryPoint, String> {
    let bad = |what: &str| format!("history point: {what} in {:?}", s.get(..80).unwrap_or(s));
    let mut lines = s.split('\n');
    let time_ms = lines
        .next()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| bad("no time"))?;
    let decisions: Vec<u64> = lines
        .next()
        .ok_or_else(|| bad("no decisions line"))?
        .split_ascii_whitespace()
        .map(|d| d.parse::<u64>().map_err(|_| bad("bad decision count")))
        .collect::<Result<_, _>>()?;
    let mut arms = Vec::new();
    for (i, line) in lines.enumerate() {
        let mut f = line.split(' ');
        let name = f.next().ok_or_else(|| bad("no arm name"))?.to_string();
        let rewards = f
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| bad("bad rewards"))?;
        // The shortest decimal of the f32, read as f64: 0.1 reads back as
        // 0.1, not as 0.10000000149 (the f32's exact binary value).
        let mut real = || {
            f.next()
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| bad("bad number"))
        };
        arms.push(ArmPoint {
            name,
            rewards,
            evidence: real()?,
            mean: real()?,
            lower: real()?,
            upper: real()?,
            prob_best: real()?,
            decisions: decisions.get(i).copied().unwrap_or(0),
        });
    }
    Ok(HistoryPoint { time_ms, arms })
}

impl HistoryPoint {
    /// Add another replica's decision counts for the same interval (by arm
    /// index: arms are only appended). Counts for arms this point does not
    /// list (added since it was recorded) have no arm to land on and are
    /// dropped, as Redis's script does.
    pub fn add_decisions(&mut self, other: &HistoryPoint) {
        for (mine, theirs) in self.arms.iter_mut().zip(&other.arms) {
            mine.decisions = mine.decisions.saturating_add(theirs.decisions);
        }
    }
}

/// At most `max` points for a response: consecutive points merged in equal
/// groups, each answered by its last point with the group's decisions
/// summed (so the traffic split over the whole range is kept). Charts of a
/// week at one minute need no more than a few thousand points.
pub fn downsample(points: Vec<HistoryPoint>, max: usize) -> Vec<HistoryPoint> {
    let max = max.max(1);
    if points.len() <= max {
        return points;
    }
    let group = points.len().div_ceil(max);
    let mut out = Vec::with_capacity(max);
    let mut it = points.into_iter().peekable();
    while it.peek().is_some() {
        let chunk: Vec<HistoryPoint> = it.by_ref().take(group).collect();
        let mut last = chunk[chunk.len() - 1].clone();
        for (i, arm) in last.arms.iter_mut().enumerate() {
            arm.decisions = chunk
                .iter()
                .filter_map(|p| p.arms.get(i))
                .map(|a| a.decisions)
                .fold(0u64, u64::saturating_add);
        }
        out.push(last);
    }
    out
}

/// KL(p ‖ q) between two posteriors of the same family, in nats: how far
/// the posterior moved. Beta: the closed form; Normal-Inverse-Gamma: the
/// closed form of the joint (mean, variance) posterior (the Student-t
/// marginal of the mean has none). `None` across families or for
/// degenerate parameters.
pub fn kl_divergence(p: &Posterior, q: &Posterior) -> Option<f64> {
    let kl = match (*p, *q) {
        (
            Posterior::Beta {
                alpha: a1,
                beta: b1,
            },
            Posterior::Beta {
                alpha: a2,
                beta: b2,
            },
        ) => {
            if [a1, b1, a2, b2]
                .iter()
                .any(|v| !(v.is_finite() && *v > 0.0))
            {
                return None;
            }
            let ln_b = |a: f64, b: f64| ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b);
            ln_b(a2, b2) - ln_b(a1, b1)
                + (a1 - a2) * digamma(a1)
                + (b1 - b2) * digamma(b1)
                + (a2 - a1 + b2 - b1) * digamma(a1 + b1)
        }
        (
            Posterior::NormalInverseGamma {
                mu: m1,
                kappa: k1,
                alpha: a1,
                beta: b1,
            },
            Posterior::NormalInverseGamma {
                mu: m2,
                kappa: k2,
                alpha: a2,
                beta: b2,
            },
        ) => {
            if [k1, a1, b1, k2, a2, b2]
                .iter()
                .any(|v| !(v.is_finite() && *v > 0.0))
                || !(m1.is_finite() && m2.is_finite())
            {
                return None;
            }
            // Precision τ = 1/σ² ~ Gamma(α, rate β); μ | τ ~ N(m, 1/(κτ)).
            // KL = KL(Gamma₁ ‖ Gamma₂) + E₁[KL(N₁ ‖ N₂ | τ)], and the
            // normals' KL is ½[κ₂/κ₁ − 1 − ln(κ₂/κ₁) + κ₂ τ (m₁−m₂)²]
            // with E₁[τ] = α₁/β₁.
            let gamma = (a1 - a2) * digamma(a1) - ln_gamma(a1)
                + ln_gamma(a2)
                + a2 * (b1.ln() - b2.ln())
                + a1 * (b2 - b1) / b1;
            let r = k2 / k1;
            let normal = 0.5 * (r - 1.0 - r.ln() + k2 * (m1 - m2).powi(2) * a1 / b1);
            gamma + normal
        }
        _ => return None,
    };
    // Rounding can leave a hair below zero for identical posteriors.
    kl.is_finite().then_some(kl.max(0.0))
}

/// Drift between two successive points' posteriors: Σ over arms present in
/// both of KL(new ‖ old).
pub fn drift(old: &[Posterior], new: &[Posterior]) -> f64 {
    old.iter()
        .zip(new)
        .filter_map(|(o, n)| kl_divergence(n, o))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{Beta, Continuous, Gamma, Normal};

    fn point() -> HistoryPoint {
        HistoryPoint {
            time_ms: 1_700_000_040_000,
            arms: vec![
                ArmPoint {
                    name: "control".into(),
                    rewards: 1234,
                    evidence: 1200.5,
                    mean: 0.125,
                    lower: 0.1,
                    upper: 0.15,
                    prob_best: 0.25,
                    decisions: 40,
                },
                ArmPoint {
                    name: "b:2".into(),
                    rewards: 0,
                    evidence: 0.0,
                    mean: 0.5,
                    lower: 0.025,
                    upper: 0.975,
                    prob_best: 0.75,
                    decisions: 0,
                },
            ],
        }
    }

    #[test]
    fn points_round_trip_through_the_stored_form() {
        let p = point();
        // Every value above has at most 7 significant digits.
        assert_eq!(decode(&encode(&p)).unwrap(), p);
        assert!(decode("x\n").is_err());
        assert!(decode("5\n1 2\nname 1 0.5").is_err());
        let empty = HistoryPoint {
            time_ms: 0,
            arms: vec![],
        };
        assert_eq!(decode(&encode(&empty)).unwrap(), empty);
    }

    #[test]
    fn downsampling_keeps_the_decisions() {
        let points: Vec<HistoryPoint> = (0..10)
            .map(|i| {
                let mut p = point();
                p.time_ms = i;
                p
            })
            .collect();
        let d = downsample(points, 4);
        // 10 points in groups of 3: 4 groups (3, 3, 3, 1).
        assert_eq!(d.len(), 4);
        assert_eq!(d[0].time_ms, 2);
        assert_eq!(d[3].time_ms, 9);
        let total: u64 = d.iter().map(|p| p.arms[0].decisions).sum();
        assert_eq!(total, 10 * 40);
    }

    /// Composite Simpson's rule on [a, b] with n (even) intervals.
    fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
        let h = (b - a) / n as f64;
        let mut s = f(a) + f(b);
        for i in 1..n {
            let w = if i % 2 == 1 { 4.0 } else { 2.0 };
            s += w * f(a + i as f64 * h);
        }
        s * h / 3.0
    }

    #[test]
    fn beta_kl_matches_numeric_integration() {
        for &(a1, b1, a2, b2) in &[
            (2.0, 3.0, 4.0, 5.0),
            (10.0, 30.0, 12.0, 29.0),
            (50.0, 5.0, 45.0, 9.0),
            (3.0, 3.0, 3.0, 3.0),
        ] {
            let p = Beta::new(a1, b1).unwrap();
            let q = Beta::new(a2, b2).unwrap();
            // Parameters ≥ 2: the integrand vanishes at both ends, so
            // Simpson on a fine grid is accurate to ~1e-8.
            let numeric = simpson(
                |x| {
                    let px = p.pdf(x);
                    if px <= 0.0 {
                        0.0
                    } else {
                        px * (px.ln() - q.pdf(x).ln())
                    }
                },
                1e-9,
                1.0 - 1e-9,
                200_000,
            );
            let closed = kl_divergence(
                &Posterior::Beta {
                    alpha: a1,
                    beta: b1,
                },
                &Posterior::Beta {
                    alpha: a2,
                    beta: b2,
                },
            )
            .unwrap();
            assert!(
                (closed - numeric).abs() < 1e-6,
                "Beta({a1},{b1}) vs Beta({a2},{b2}): {closed} vs {numeric}"
            );
        }
    }

    #[test]
    fn normal_inverse_gamma_kl_matches_numeric_integration() {
        // (m, κ, α, β) pairs; the joint density of (μ, τ = 1/σ²) is
        // Gamma(τ; α, rate β) · N(μ; m, 1/(κτ)) (KL is invariant under the
        // change of variable σ² → τ).
        for &((m1, k1, a1, b1), (m2, k2, a2, b2)) in &[
            ((0.0, 5.0, 3.0, 2.0), (0.3, 7.0, 4.0, 2.5)),
            ((1.0, 20.0, 10.0, 12.0), (1.1, 25.0, 12.5, 14.0)),
        ] {
            let g1 = Gamma::new(a1, b1).unwrap();
            let g2 = Gamma::new(a2, b2).unwrap();
            let log_joint = |g: &Gamma, m: f64, k: f64, mu: f64, tau: f64| {
                let n = Normal::new(m, (1.0 / (k * tau)).sqrt()).unwrap();
                g.ln_pdf(tau) + n.ln_pdf(mu)
            };
            // Integrate τ over its bulk (mean α/β, sd √α/β, ±12 sd, > 0)
            // and μ | τ over ±12 conditional sd: the mass left out is
            // < 1e-20, far below the tolerance.
            let (tm, ts) = (a1 / b1, a1.sqrt() / b1);
            let numeric = simpson(
                |tau| {
                    if tau <= 0.0 {
                        return 0.0;
                    }
                    let sd = (1.0 / (k1 * tau)).sqrt();
                    let inner = simpson(
                        |mu| {
                            let l1 = log_joint(&g1, m1, k1, mu, tau);
                            let l2 = log_joint(&g2, m2, k2, mu, tau);
                            l1.exp() * (l1 - l2)
                        },
                        m1 - 12.0 * sd,
                        m1 + 12.0 * sd,
                        400,
                    );
                    inner
                },
                (tm - 12.0 * ts).max(1e-12),
                tm + 12.0 * ts,
                2_000,
            );
            let closed = kl_divergence(
                &Posterior::NormalInverseGamma {
                    mu: m1,
                    kappa: k1,
                    alpha: a1,
                    beta: b1,
                },
                &Posterior::NormalInverseGamma {
                    mu: m2,
                    kappa: k2,
                    alpha: a2,
                    beta: b2,
                },
            )
            .unwrap();
            assert!(
                (closed - numeric).abs() < 1e-5,
                "NIG: closed {closed} vs numeric {numeric}"
            );
        }
    }

    #[test]
    fn no_drift_without_change_and_none_across_families() {
        let b = Posterior::Beta {
            alpha: 3.0,
            beta: 4.0,
        };
        assert!(kl_divergence(&b, &b).unwrap() < 1e-12);
        let n = Posterior::NormalInverseGamma {
            mu: 0.0,
            kappa: 1.0,
            alpha: 1.0,
            beta: 1.0,
        };
        assert_eq!(kl_divergence(&b, &n), None);
        assert!(drift(&[b, b], &[b]) < 1e-12);
    }
}
