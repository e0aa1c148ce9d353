//! Acquisition optimizer: exhaustive enumeration on small finite spaces, else
//! many space-filling/random/local candidates + projected-gradient refinement of
//! the best few, evaluated at *snapped* points (rounded in the encoded space to
//! the encoding of the configuration they decode to) so that integer, ordinal
//! and categorical dimensions are handled exactly.

use std::collections::HashSet;

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};

use super::acquisition::AcqModel;
use super::sobol::latin_hypercube;
use super::space::{Codec, Point, SearchSpace};

/// Finite spaces up to this size are enumerated exactly: it is about the size of
/// the random candidate set, so enumeration costs the same and is never worse.
pub const ENUMERATION_LIMIT: u128 = 4096;
/// Candidates per suggestion at small n: 768 + 128 per dimension, capped at 4000.
/// Gradient refinement from the best few does the fine work, so a larger sweep
/// mostly buys time spent in the n × m kernel matrix (Optuna uses 2048).
const BASE_CANDIDATES: usize = 768;
const CANDIDATES_PER_DIM: usize = 128;
const MAX_CANDIDATES: usize = 4000;
/// Predictive variances cost n² flops per candidate; this budget (n²·m) keeps the
/// sweep near 15 ms at n = 500 while never going below `MIN_CANDIDATES`.
const FLOP_BUDGET: f64 = 1.0e8;
const MIN_CANDIDATES: usize = 256;
/// Number of best candidates refined by gradient ascent at n ≤ `REFINE_FULL_N`;
/// above it the count shrinks as 1/n (each step costs two n² mat-vecs) down to
/// `MIN_REFINE`.
const N_REFINE: usize = 8;
const REFINE_FULL_N: usize = 64;
const MIN_REFINE: usize = 3;
/// Gradient ascent iterations per refined start; the step halves on failure and
/// grows 1.5× on success, so 40 iterations cover basin-scale moves and ~1e-4 polish.
const REFINE_ITERS: usize = 40;
/// Categorical levels are enumerated during refinement up to this many levels.
const MAX_ENUM_LEVELS: usize = 64;
/// Candidate chunk size for batched evaluation (bounds the n × m kernel matrix).
const CHUNK: usize = 1024;

pub(crate) struct AcquisitionMaximizer<'a> {
    pub space: &'a SearchSpace,
    pub acq: &'a AcqModel<'a>,
    pub used: &'a HashSet<Vec<u64>>,
    /// Encoded best observed points (best first): centres for local candidates.
    pub anchors: &'a [Vec<f64>],
    pub n_train: usize,
}

fn eval_chunked(acq: &AcqModel<'_>, pts: &[Vec<f64>]) -> Vec<f64> {
    pts.chunks(CHUNK).flat_map(|c| acq.values(c)).collect()
}

impl AcquisitionMaximizer<'_> {
    /// Best unused configuration found, or `None` if nothing unused was found
    /// (the caller then falls back to a random unused configuration).
    pub fn run<R: Rng>(&self, rng: &mut R) -> Option<(Vec<f64>, Point)> {
        let sp = self.space;
        if let Some(card) = sp.cardinality()
            && card <= ENUMERATION_LIMIT
        {
            return self.enumerate(card);
        }
        let codec = Codec::new(sp);
        let d = sp.parameters.len();
        let nc = sp.n_continuous();
        let cat_levels = sp.cat_levels();
        let base = (BASE_CANDIDATES + CANDIDATES_PER_DIM * d).min(MAX_CANDIDATES);
        let by_budget = (FLOP_BUDGET / ((self.n_train * self.n_train) as f64 + 1.0)) as usize;
        let m = base.min(by_budget.max(MIN_CANDIDATES));

        // 35 % LHS, 35 % uniform, 30 % perturbations of the best observed points
        // (trust-region-like: the incumbent's basin is where EI usually peaks late
        // in a study, and random candidates almost never land close enough).
        let n_local = if self.anchors.is_empty() {
            0
        } else {
            m * 3 / 10
        };
        let n_lhs = (m - n_local) / 2;
        let mut pts = latin_hypercube(n_lhs, nc, &cat_levels, rng);
        for _ in 0..(m - n_local - n_lhs) {
            pts.push(sp.random_point(rng));
        }
        let normal = Normal::new(0.0, 1.0).ok();
        // Subset perturbation probability: moving ~2 coordinates at a time keeps
        // candidates near the incumbent in most coordinates, which matters as d grows.
        let p_sub = (2.0 / nc.max(1) as f64).min(1.0);
        for i in 0..n_local {
            // The incumbent gets half of the local candidates, the runners-up the rest.
            let a = if i % 2 == 0 || self.anchors.len() == 1 {
                &self.anchors[0]
            } else {
                &self.anchors[1 + (i / 2) % (self.anchors.len() - 1)]
            };
            // Scales from 0.2 down to 0.005 of the cube: both basin-level and fine moves.
            let scale = [0.2, 0.1, 0.05, 0.02, 0.005][(i / 2) % 5];
            let subset = i % 4 >= 2;
            let mut p = a.clone();
            for (j, v) in p.iter_mut().enumerate() {
                if j < nc {
                    if subset && rng.random::<f64>() >= p_sub {
                        continue;
                    }
                    let z = normal.map(|n| n.sample(rng)).unwrap_or(0.0);
                    *v = (*v + scale * z).clamp(0.0, 1.0);
                } else if rng.random::<f64>() < 0.2 {
                    *v = rng.random_range(0..cat_levels[j - nc]) as f64;
                }
            }
            pts.push(p);
        }
        for p in &mut pts {
            codec.snap(p);
        }
        let vals = eval_chunked(self.acq, &pts);
        let mut order: Vec<usize> = (0..pts.len()).filter(|&i| vals[i].is_finite()).collect();
        order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));

        let mut best: Option<(f64, Vec<f64>)> = None;
        let mut consider = |v: f64, e: Vec<f64>| {
            if v.is_finite()
                && best.as_ref().is_none_or(|(bv, _)| v > *bv)
                && !self.used.contains(&codec.key(&e))
            {
                best = Some((v, e));
            }
        };
        let n_refine = if self.n_train <= REFINE_FULL_N {
            N_REFINE
        } else {
            (N_REFINE * REFINE_FULL_N / self.n_train).max(MIN_REFINE)
        };
        let mut starts = Vec::new();
        let mut seen = HashSet::new();
        for &i in &order {
            let k = codec.key(&pts[i]);
            if self.used.contains(&k) || !seen.insert(k) {
                continue;
            }
            consider(vals[i], pts[i].clone());
            starts.push(i);
            if starts.len() >= n_refine {
                break;
            }
        }
        for &i in &starts {
            let x = if nc > 0 {
                self.refine(&pts[i])
            } else {
                pts[i].clone()
            };
            let mut x = self.refine_categorical(&codec, &x);
            codec.snap(&mut x);
            let v = self.acq.values(std::slice::from_ref(&x))[0];
            consider(v, x);
        }
        // Only the winner is decoded into a configuration.
        best.map(|(_, e)| {
            let c = sp.decode(&e);
            (e, c)
        })
    }

    fn enumerate(&self, card: u128) -> Option<(Vec<f64>, Point)> {
        let sp = self.space;
        let mut pts = Vec::new();
        let mut cfgs = Vec::new();
        for i in 0..card {
            let Some(c) = sp.config_at(i) else { continue };
            if self.used.contains(&sp.key(&c)) {
                continue;
            }
            if let Ok(e) = sp.encode(&c) {
                pts.push(e);
                cfgs.push(c);
            }
        }
        let vals = eval_chunked(self.acq, &pts);
        // Non-finite acquisition values still beat "nothing": rank them last.
        let best = (0..pts.len()).max_by(|&a, &b| {
            let (va, vb) = (vals[a], vals[b]);
            va.total_cmp(&vb).then(b.cmp(&a))
        })?;
        Some((pts[best].clone(), cfgs[best].clone()))
    }

    /// Projected gradient ascent over the continuous block within [0, 1], with a
    /// step that grows on success and halves on failure. The gradient is
    /// preconditioned by the squared length scales (steepest ascent in the
    /// kernel's own metric, where the acquisition is roughly isotropic), so
    /// irrelevant long-ℓ dimensions do not stall the search and short-ℓ ones do
    /// not overshoot; the step is measured in units of the shortest length scale.
    fn refine(&self, x0: &[f64]) -> Vec<f64> {
        let nc = self.space.n_continuous();
        // ℓ capped at 1: beyond the cube's width a longer scale is irrelevant.
        let ls: Vec<f64> = self.acq.objective.kernel.inv_ls2[..nc]
            .iter()
            .map(|w| (1.0 / w.sqrt()).min(1.0))
            .collect();
        let mut x = x0.to_vec();
        let (mut fx, mut g) = self.acq.value_grad(&x);
        if !fx.is_finite() {
            return x;
        }
        let mut step = 0.25;
        for _ in 0..REFINE_ITERS {
            // Direction in ℓ-scaled coordinates u_i = x_i / ℓ_i: ∂f/∂u_i = ℓ_i g_i.
            let gn = (0..nc).map(|i| (ls[i] * g[i]).powi(2)).sum::<f64>().sqrt();
            if gn == 0.0 || !gn.is_finite() || step < 1e-4 {
                break;
            }
            let mut y = x.clone();
            for i in 0..nc {
                y[i] = (x[i] + step * ls[i] * ls[i] * g[i] / gn).clamp(0.0, 1.0);
            }
            let (fy, gy) = self.acq.value_grad(&y);
            if fy > fx {
                x = y;
                fx = fy;
                g = gy;
                step *= 1.5;
            } else {
                step *= 0.5;
            }
        }
        x
    }

    /// One coordinate pass over categorical dimensions: try every level.
    fn refine_categorical(&self, codec: &Codec<'_>, x0: &[f64]) -> Vec<f64> {
        let sp = self.space;
        let nc = sp.n_continuous();
        let levels = sp.cat_levels();
        let mut x = x0.to_vec();
        codec.snap(&mut x);
        for (c, &l) in levels.iter().enumerate() {
            if l <= 1 || l > MAX_ENUM_LEVELS {
                continue;
            }
            let cands: Vec<Vec<f64>> = (0..l)
                .map(|lv| {
                    let mut p = x.clone();
                    p[nc + c] = lv as f64;
                    p
                })
                .collect();
            let vals = self.acq.values(&cands);
            if let Some(b) = (0..l)
                .filter(|&i| vals[i].is_finite())
                .max_by(|&a, &b| vals[a].total_cmp(&vals[b]))
            {
                x = cands[b].clone();
            }
        }
        x
    }
}

/// A random configuration not in `used`; `None` only if the space is exhausted.
pub(crate) fn random_unused<R: Rng>(
    space: &SearchSpace,
    used: &HashSet<Vec<u64>>,
    rng: &mut R,
) -> Option<(Vec<f64>, Point)> {
    // Rejection sampling first (cheap when the space is mostly unused)...
    for _ in 0..1000 {
        let (e, c) = space.snap(&space.random_point(rng));
        if !used.contains(&space.key(&c)) {
            return Some((e, c));
        }
    }
    // ...then a deterministic scan of a finite space from a random offset, which is
    // guaranteed to find an unused configuration if one exists.
    let card = space.cardinality()?;
    let start = rng.random::<u64>() as u128 % card;
    let limit = card.min(u128::from(u32::MAX));
    for k in 0..limit {
        let c = space.config_at((start + k) % card)?;
        if !used.contains(&space.key(&c)) {
            let e = space.encode(&c).ok()?;
            return Some((e, c));
        }
    }
    None
}
