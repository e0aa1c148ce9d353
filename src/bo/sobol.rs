//! Space-filling initial design: maximin Latin hypercube sampling.
//!
//! We use LHS rather than scrambled Sobol: it needs no direction-number tables,
//! it is stratified in every one-dimensional projection for *any* number of
//! points (Sobol's balance properties only hold at powers of two, and a study's
//! `n_initial` is typically 5..=10), and picking the best of a few random LHS
//! designs by minimum pairwise distance removes the occasional clumped design.

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

/// Number of random LHS designs compared by the maximin criterion. O(tries·n²·d),
/// negligible for initial designs (n ≤ a few tens).
const MAXIMIN_TRIES: usize = 16;

/// One random Latin hypercube of `n` points with `n_cont` continuous coordinates in
/// (0, 1) followed by categorical level indices balanced across levels.
pub(crate) fn latin_hypercube<R: Rng>(
    n: usize,
    n_cont: usize,
    cat_levels: &[usize],
    rng: &mut R,
) -> Vec<Vec<f64>> {
    let mut pts = vec![Vec::with_capacity(n_cont + cat_levels.len()); n];
    let mut perm: Vec<usize> = (0..n).collect();
    for _ in 0..n_cont {
        perm.shuffle(rng);
        for (i, p) in pts.iter_mut().enumerate() {
            p.push((perm[i] as f64 + rng.random::<f64>()) / n as f64);
        }
    }
    for &levels in cat_levels {
        // Balanced: each level used floor(n/L) or ceil(n/L) times, in random order;
        // which levels get the extra use is random too.
        let mut lv: Vec<usize> = (0..levels.max(1)).collect();
        lv.shuffle(rng);
        let mut col: Vec<usize> = (0..n).map(|i| lv[i % lv.len()]).collect();
        col.shuffle(rng);
        for (p, l) in pts.iter_mut().zip(col) {
            p.push(l as f64);
        }
    }
    pts
}

/// Best of `MAXIMIN_TRIES` LHS designs by minimum pairwise distance (continuous
/// coordinates plus 1 per differing categorical level).
pub(crate) fn maximin_design<R: Rng>(
    n: usize,
    n_cont: usize,
    cat_levels: &[usize],
    rng: &mut R,
) -> Vec<Vec<f64>> {
    let mut best = Vec::new();
    let mut best_score = f64::NEG_INFINITY;
    for _ in 0..MAXIMIN_TRIES {
        let d = latin_hypercube(n, n_cont, cat_levels, rng);
        let mut score = f64::INFINITY;
        for i in 0..d.len() {
            for j in 0..i {
                let mut s = 0.0;
                for (k, (a, b)) in d[i].iter().zip(&d[j]).enumerate() {
                    if k < n_cont {
                        s += (a - b).powi(2);
                    } else if a != b {
                        s += 1.0;
                    }
                }
                score = score.min(s);
            }
        }
        if score > best_score {
            best_score = score;
            best = d;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn lhs_is_stratified() {
        let mut rng = StdRng::seed_from_u64(1);
        let n = 10;
        let d = maximin_design(n, 3, &[3], &mut rng);
        assert_eq!(d.len(), n);
        for k in 0..3 {
            let mut bins: Vec<usize> = d.iter().map(|p| (p[k] * n as f64) as usize).collect();
            bins.sort();
            assert_eq!(bins, (0..n).collect::<Vec<_>>());
        }
        let mut counts = [0; 3];
        for p in &d {
            counts[p[3] as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c == 3 || c == 4));
    }
}
