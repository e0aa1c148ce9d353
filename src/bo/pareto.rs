//! Several objectives: the Pareto front, its hypervolume, and ParEGO
//! (Knowles 2006), which turns each Suggest into a single-objective one.
//!
//! Why ParEGO rather than expected hypervolume improvement: it needs nothing
//! but the existing single-objective GP, its acquisition and its fantasies of
//! pending trials (constraints too), and it works the same for 2, 3 or 4
//! objectives; EHVI is exact and cheap only for two.
//!
//! Every function here works in "minimization space": a MAXIMIZE objective's
//! values are negated first (see [`to_min`]).

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use std::collections::HashSet;

use super::study::{StudyDef, StudyState};
use super::suggest::{
    Goal, MAX_ABS_VALUE, Observation, StudySpec, Suggestion, is_feasible, suggest_validated,
    validate_metric_name,
};
use super::{BoError, Point};

/// Objectives of a multi-objective study. Two is the least that makes a
/// front; beyond four a front of a few dozen trials is almost all of them
/// (nearly nothing dominates anything) and the exact hypervolume costs
/// O(n^(d-1) log n).
pub const MIN_OBJECTIVES: usize = 2;
pub const MAX_OBJECTIVES: usize = 4;

/// Knowles' ρ: the small linear term of the augmented Chebyshev function,
/// so that among weakly dominated points the better one scalarizes lower.
const PAREGO_RHO: f64 = 0.05;

/// One objective of a multi-objective study; its value is reported in the
/// observation's metrics under `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    pub name: String,
    pub goal: Goal,
}

/// A value in minimization space.
pub fn to_min(goal: Goal, v: f64) -> f64 {
    match goal {
        Goal::Minimize => v,
        Goal::Maximize => -v,
    }
}

/// `a` dominates `b`: no worse in every objective, better in one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y) && a.iter().zip(b).any(|(x, y)| x < y)
}

/// Indices of the points no other point dominates (equal points are all
/// kept), in input order. O(n²·d): fronts here have at most a few thousand
/// trials.
pub fn non_dominated(points: &[Vec<f64>]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| !points.iter().any(|q| dominates(q, &points[i])))
        .collect()
}

/// The exact hypervolume of `n` front points in `d` objectives costs about
/// n^(d-1) log n steps (see [`hypervolume`]); above this many n^(d-1) it is
/// not computed, so that GetStudy stays well under a second (measured in a
/// debug build: 4 objectives and 292 points took 1.8 s, 3 objectives and
/// 5,000 points 9.5 s; the budget allows 158 and 2,000).
pub const MAX_HYPERVOLUME_WORK: f64 = 4e6;

/// The volume dominated by `points` and bounded by `reference` (points not
/// strictly better than the reference in every objective add nothing).
/// Exact: a sweep for two objectives, slicing along the last objective
/// above (HSO). `None` when the front is too large for the budget
/// ([`MAX_HYPERVOLUME_WORK`]).
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> Option<f64> {
    let inside: Vec<Vec<f64>> = points
        .iter()
        .filter(|p| p.len() == reference.len() && p.iter().zip(reference).all(|(x, r)| x < r))
        .cloned()
        .collect();
    let d = reference.len().max(1);
    if d > 2 && (inside.len() as f64).powi(d as i32 - 1) > MAX_HYPERVOLUME_WORK {
        return None;
    }
    // Dominated points add nothing: drop them once here; the slices below
    // may hold dominated projections, which the sweep skips.
    let front = non_dominated(&inside)
        .into_iter()
        .map(|i| inside[i].clone())
        .collect();
    Some(hv(front, reference))
}

fn hv(mut pts: Vec<Vec<f64>>, r: &[f64]) -> f64 {
    if pts.is_empty() {
        return 0.0;
    }
    let d = r.len();
    if d == 1 {
        let best = pts.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
        return r[0] - best;
    }
    if d == 2 {
        // Sorted by the first objective, the staircase is the points that
        // lower the best second objective so far.
        pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        let mut stairs: Vec<&Vec<f64>> = Vec::new();
        for p in &pts {
            if stairs.last().is_none_or(|s| p[1] < s[1]) {
                stairs.push(p);
            }
        }
        let mut area = 0.0;
        for (i, p) in stairs.iter().enumerate() {
            let next_x = stairs.get(i + 1).map_or(r[0], |q| q[0]);
            area += (next_x - p[0]) * (r[1] - p[1]);
        }
        return area;
    }
    pts.sort_by(|a, b| a[d - 1].total_cmp(&b[d - 1]));
    let mut volume = 0.0;
    for k in 0..pts.len() {
        let next = pts.get(k + 1).map_or(r[d - 1], |q| q[d - 1]);
        let height = next - pts[k][d - 1];
        if height > 0.0 {
            let slab: Vec<Vec<f64>> = pts[..=k].iter().map(|p| p[..d - 1].to_vec()).collect();
            volume += height * hv(slab, &r[..d - 1]);
        }
    }
    volume
}

/// The reference point when the study gives none: per objective, the worst
/// value among `points` plus 10% of the range of values (plus 1 when every
/// value is the same), so that the extreme trials of the front still add
/// volume. Empty when there are no points.
pub fn derived_reference(points: &[Vec<f64>]) -> Vec<f64> {
    let Some(first) = points.first() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|j| {
            let worst = points
                .iter()
                .map(|p| p[j])
                .fold(f64::NEG_INFINITY, f64::max);
            let best = points.iter().map(|p| p[j]).fold(f64::INFINITY, f64::min);
            let range = worst - best;
            worst + if range > 0.0 { 0.1 * range } else { 1.0 }
        })
        .collect()
}

/// A weight vector drawn uniformly from the simplex (Dirichlet(1, …, 1):
/// normalized exponentials). Knowles draws from a fixed lattice of the
/// simplex; a continuous draw covers it the same way without a lattice
/// size to choose per number of objectives.
pub fn random_weights(k: usize, rng: &mut StdRng) -> Vec<f64> {
    // 1 - u is in (0, 1]: the log is finite.
    let e: Vec<f64> = (0..k).map(|_| -(1.0 - rng.random::<f64>()).ln()).collect();
    let sum: f64 = e.iter().sum();
    if sum > 0.0 {
        e.iter().map(|x| x / sum).collect()
    } else {
        vec![1.0 / k as f64; k]
    }
}

/// The augmented Chebyshev scalarization of `points` (minimization space):
/// each objective normalized to [0, 1] over the points, then
/// `max_j w_j f_j + ρ Σ_j w_j f_j`.
pub fn parego_scalarize(points: &[Vec<f64>], weights: &[f64]) -> Vec<f64> {
    let k = weights.len();
    let lo: Vec<f64> = (0..k)
        .map(|j| points.iter().map(|p| p[j]).fold(f64::INFINITY, f64::min))
        .collect();
    let hi: Vec<f64> = (0..k)
        .map(|j| {
            points
                .iter()
                .map(|p| p[j])
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    points
        .iter()
        .map(|p| {
            let f: Vec<f64> = (0..k)
                .map(|j| {
                    let range = hi[j] - lo[j];
                    let n = if range > 0.0 {
                        (p[j] - lo[j]) / range
                    } else {
                        0.0
                    };
                    weights[j] * n
                })
                .collect();
            f.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b)) + PAREGO_RHO * f.iter().sum::<f64>()
        })
        .collect()
}

/// The objectives of an observation in minimization space; `None` for a
/// failed trial or one missing an objective.
pub fn objective_values(objectives: &[Objective], o: &Observation) -> Option<Vec<f64>> {
    if o.failed {
        return None;
    }
    objectives
        .iter()
        .map(|ob| o.metrics.get(&ob.name).map(|&v| to_min(ob.goal, v)))
        .collect()
}

/// ParEGO: `count` suggestions, each with a fresh weight vector, by the
/// single-objective machinery on the scalarized objectives (minimized).
/// Earlier suggestions of the batch join the pending trials, so the batch
/// spreads as a single-objective batch does. No fit is returned: each
/// scalarization is a different function, so a warm start would mislead.
pub(crate) fn suggest_parego(
    spec: &StudySpec,
    objectives: &[Objective],
    observations: &[Observation],
    pending: &[Point],
    count: usize,
    seed: u64,
) -> Result<Suggestion, BoError> {
    let mut spec = spec.clone();
    spec.goal = Goal::Minimize;
    let values: Vec<Option<Vec<f64>>> = observations
        .iter()
        .map(|o| objective_values(objectives, o))
        .collect();
    let complete: Vec<Vec<f64>> = values.iter().flatten().cloned().collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9a2e_6000_0000_0001);
    let mut pending = pending.to_vec();
    let mut configs = Vec::with_capacity(count);
    for _ in 0..count {
        let w = random_weights(objectives.len(), &mut rng);
        let mut scalar = parego_scalarize(&complete, &w).into_iter();
        let obs: Vec<Observation> = observations
            .iter()
            .zip(&values)
            .map(|(o, v)| Observation {
                value: v.as_ref().and_then(|_| scalar.next()),
                failed: o.failed || v.is_none(),
                ..o.clone()
            })
            .collect();
        // The same seed for each: the initial design continues its
        // sequence through the pending trials as a single Suggest would.
        match suggest_validated(&spec, &obs, &pending, 1, None, seed) {
            Ok(s) => {
                for c in s.configs {
                    pending.push(c.clone());
                    configs.push(c);
                }
            }
            Err(BoError::SpaceExhausted) if !configs.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    Ok(Suggestion { configs, fit: None })
}

impl StudyDef {
    /// `name` is the objective's or one of the objectives'.
    pub fn is_objective(&self, name: &str) -> bool {
        name == self.objective || self.objectives.iter().any(|o| o.name == name)
    }

    /// The rules on `objectives` and `reference_point`; errors name the field.
    pub(super) fn validate_objectives(&self) -> Result<(), BoError> {
        if self.objectives.is_empty() {
            if !self.reference_point.is_empty() {
                return Err(BoError::spec(
                    "reference_point",
                    "only for a study with `objectives` (several objectives)",
                ));
            }
            return Ok(());
        }
        let n = self.objectives.len();
        if !(MIN_OBJECTIVES..=MAX_OBJECTIVES).contains(&n) {
            return Err(BoError::spec(
                "objectives",
                format!(
                    "must have {MIN_OBJECTIVES} to {MAX_OBJECTIVES} objectives, got {n} (for one, use `objective`)"
                ),
            ));
        }
        let mut seen = HashSet::new();
        for (i, o) in self.objectives.iter().enumerate() {
            let field = format!("objectives[{i}].name");
            validate_metric_name(&field, &o.name)?;
            if !seen.insert(o.name.as_str()) {
                return Err(BoError::spec(
                    field,
                    format!("duplicate objective {:?}", o.name),
                ));
            }
        }
        if !self.reference_point.is_empty() {
            if self.reference_point.len() != n {
                return Err(BoError::spec(
                    "reference_point",
                    format!(
                        "must have one value per objective ({n}), got {}",
                        self.reference_point.len()
                    ),
                ));
            }
            if let Some((i, v)) = self
                .reference_point
                .iter()
                .enumerate()
                .find(|(_, v)| !v.is_finite() || v.abs() > MAX_ABS_VALUE)
            {
                return Err(BoError::spec(
                    format!("reference_point[{i}]"),
                    format!("must be finite with |value| <= {MAX_ABS_VALUE:e}, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// A multi-objective study's front and its hypervolume.
#[derive(Debug, Clone, PartialEq)]
pub struct Front {
    /// Indices into the study's trials: the completed feasible trials no
    /// other completed feasible trial dominates, in trial order.
    pub trials: Vec<usize>,
    /// Of the front, against `reference`; `None` when the front is too
    /// large to compute it exactly ([`MAX_HYPERVOLUME_WORK`]).
    pub hypervolume: Option<f64>,
    /// The reference point used, in the user's units: the study's, or
    /// derived ([`derived_reference`]); empty while nothing is completed
    /// and the study gives none.
    pub reference: Vec<f64>,
}

impl StudyState {
    /// The Pareto front (`None` for a single-objective study).
    pub fn pareto(&self) -> Option<Front> {
        let def = &self.def;
        if def.objectives.is_empty() {
            return None;
        }
        let (obs, idx) = self.observations();
        let (mut points, mut trials) = (Vec::new(), Vec::new());
        for (o, i) in obs.iter().zip(idx) {
            if is_feasible(&def.spec, o)
                && let Some(v) = objective_values(&def.objectives, o)
            {
                points.push(v);
                trials.push(i);
            }
        }
        let flip = |r: &[f64]| -> Vec<f64> {
            r.iter()
                .zip(&def.objectives)
                .map(|(&v, o)| to_min(o.goal, v))
                .collect()
        };
        let reference = if def.reference_point.is_empty() {
            derived_reference(&points)
        } else {
            flip(&def.reference_point)
        };
        let front = non_dominated(&points);
        let front_points: Vec<Vec<f64>> = front.iter().map(|&k| points[k].clone()).collect();
        Some(Front {
            trials: front.iter().map(|&k| trials[k]).collect(),
            hypervolume: hypervolume(&front_points, &reference),
            // `to_min` is its own inverse.
            reference: flip(&reference),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn random_points(rng: &mut StdRng, n: usize, d: usize, levels: u32) -> Vec<Vec<f64>> {
        // Few levels per coordinate: ties and equal points happen.
        (0..n)
            .map(|_| (0..d).map(|_| rng.random_range(0..levels) as f64).collect())
            .collect()
    }

    #[test]
    fn the_front_equals_a_brute_force_dominance_check() {
        // Mixed goals: the front is computed on the user's values through
        // `to_min`; the brute force compares the user's values directly,
        // objective by objective, with the goal's own order.
        let goals = [Goal::Minimize, Goal::Maximize, Goal::Minimize];
        let mut rng = StdRng::seed_from_u64(12);
        for round in 0..200 {
            let d = 2 + round % 2;
            let user = random_points(&mut rng, 1 + round % 30, d, 6);
            let min: Vec<Vec<f64>> = user
                .iter()
                .map(|p| p.iter().zip(goals).map(|(&v, g)| to_min(g, v)).collect())
                .collect();
            let front = non_dominated(&min);
            let better = |a: f64, b: f64, g: Goal| match g {
                Goal::Minimize => a < b,
                Goal::Maximize => a > b,
            };
            let brute: Vec<usize> = (0..user.len())
                .filter(|&i| {
                    !(0..user.len()).any(|j| {
                        let no_worse = (0..d).all(|k| !better(user[i][k], user[j][k], goals[k]));
                        let one_better = (0..d).any(|k| better(user[j][k], user[i][k], goals[k]));
                        no_worse && one_better
                    })
                })
                .collect();
            assert_eq!(front, brute, "round {round}: {user:?}");
            assert!(!front.is_empty());
        }
    }

    /// The dominated area on the integer grid, counted cell by cell: a unit
    /// cell [x, x+1] × [y, y+1] is dominated when some point is <= its lower
    /// corner in both coordinates.
    fn grid_area(points: &[Vec<f64>], r: &[f64]) -> f64 {
        let mut cells = 0;
        for x in 0..(r[0] as i64) {
            for y in 0..(r[1] as i64) {
                if points.iter().any(|p| p[0] <= x as f64 && p[1] <= y as f64) {
                    cells += 1;
                }
            }
        }
        cells as f64
    }

    #[test]
    fn hypervolume_in_two_dimensions_equals_the_grid_count() {
        let mut rng = StdRng::seed_from_u64(3);
        for n in 0..40 {
            let pts = random_points(&mut rng, n % 12, 2, 10);
            let r = [10.0, 9.0];
            assert_eq!(hypervolume(&pts, &r), Some(grid_area(&pts, &r)), "{pts:?}");
        }
        // Closed form: two rectangles minus their overlap.
        let pts = vec![vec![1.0, 3.0], vec![2.0, 1.0]];
        let r = [4.0, 4.0];
        assert_eq!(
            hypervolume(&pts, &r),
            Some(3.0 * 1.0 + 2.0 * 3.0 - 2.0 * 1.0)
        );
        // A point on or beyond the reference adds nothing.
        assert_eq!(hypervolume(&[vec![4.0, 0.0]], &r), Some(0.0));
    }

    #[test]
    fn hypervolume_in_three_dimensions_equals_inclusion_exclusion() {
        // Each point dominates the box [p, r]; the union's volume by
        // inclusion–exclusion over every subset (the intersection of boxes
        // is the box from the coordinate-wise max).
        let mut rng = StdRng::seed_from_u64(5);
        for n in 1..9 {
            let pts = random_points(&mut rng, n, 3, 8);
            let r = [8.0, 8.0, 8.0];
            let mut ie = 0.0;
            for mask in 1u32..(1 << n) {
                let chosen: Vec<&Vec<f64>> = (0..n)
                    .filter(|i| mask & (1 << i) != 0)
                    .map(|i| &pts[i])
                    .collect();
                let vol: f64 = (0..3)
                    .map(|k| {
                        let lo = chosen.iter().map(|p| p[k]).fold(f64::MIN, f64::max);
                        (r[k] - lo).max(0.0)
                    })
                    .product();
                let sign = if chosen.len() % 2 == 1 { 1.0 } else { -1.0 };
                ie += sign * vol;
            }
            let got = hypervolume(&pts, &r).unwrap();
            assert!((got - ie).abs() < 1e-9, "{got} vs {ie}: {pts:?}");
        }
    }

    #[test]
    fn too_large_a_front_has_no_hypervolume() {
        // Points on the simplex x1 + … + x4 = 1 never dominate each other.
        let mut rng = StdRng::seed_from_u64(8);
        let front = |n: usize, rng: &mut StdRng| -> Vec<Vec<f64>> {
            (0..n).map(|_| random_weights(4, rng)).collect()
        };
        let r = [1.0; 4];
        // 158³ ≈ 3.94e6 is within the budget, 159³ ≈ 4.02e6 is not.
        assert!(hypervolume(&front(159, &mut rng), &r).is_none());
        assert!(hypervolume(&front(158, &mut rng), &r).is_some());
        let small = front(20, &mut rng);
        assert_eq!(non_dominated(&small).len(), 20);
        let hv = hypervolume(&small, &r).unwrap();
        assert!(hv > 0.0 && hv < 1.0, "{hv}");
    }

    #[test]
    fn scalarization_and_weights() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            let w = random_weights(3, &mut rng);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            assert!(w.iter().all(|&x| x >= 0.0));
        }
        // Normalized to [0, 1]: the ideal point scalarizes to 0, the nadir
        // to max(w) + ρ Σ w = 0.5 + 0.05.
        let pts = vec![vec![0.0, 10.0], vec![2.0, 30.0], vec![1.0, 20.0]];
        let s = parego_scalarize(&pts, &[0.5, 0.5]);
        assert_eq!(s[0], 0.0);
        assert!((s[1] - 0.55).abs() < 1e-12);
        assert_eq!(derived_reference(&pts), vec![2.2, 32.0]);
    }

    fn two_objective_state() -> StudyState {
        use crate::bo::study::DEFAULT_MAX_PENDING;
        use crate::bo::{Constraint, ParamKind, Parameter, SearchSpace};
        let space = SearchSpace {
            parameters: vec![Parameter {
                name: "x".into(),
                kind: ParamKind::Float {
                    low: 0.0,
                    high: 1.0,
                    log: false,
                    step: None,
                },
            }],
        };
        let mut spec = StudySpec::new(space, Goal::Minimize, 9);
        spec.constraints.push(Constraint::at_most("p95_ms", 200.0));
        StudyState::new(StudyDef {
            name: "mo".into(),
            spec,
            objective: "cost".into(),
            metrics: vec![],
            trial_timeout_seconds: 0,
            max_pending: DEFAULT_MAX_PENDING,
            objectives: vec![
                Objective {
                    name: "cost".into(),
                    goal: Goal::Minimize,
                },
                Objective {
                    name: "speed".into(),
                    goal: Goal::Maximize,
                },
            ],
            reference_point: vec![],
        })
    }

    fn m(cost: f64, speed: f64, p95: f64) -> BTreeMap<String, f64> {
        [("cost", cost), ("speed", speed), ("p95_ms", p95)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn a_study_with_two_objectives() {
        use crate::bo::study::ObserveError;
        let mut s = two_objective_state();
        s.def.validate().unwrap();
        assert!(s.pareto().unwrap().trials.is_empty());
        assert!(s.pareto().unwrap().reference.is_empty());
        let t = s.suggest(5, 1).unwrap();
        let mut missing = m(1.0, 1.0, 1.0);
        missing.remove("speed");
        let e = s.observe(t[0].id, 0.0, missing, false, 2).unwrap_err();
        assert!(
            matches!(&e, ObserveError::Invalid(msg) if msg.starts_with("metrics.speed:")),
            "{e}"
        );
        // `value` is ignored: the trial's value is the first objective's.
        let done = s
            .observe(t[0].id, 123.0, m(3.0, 6.0, 100.0), false, 2)
            .unwrap();
        assert_eq!(done.value, Some(3.0));
        s.observe(t[1].id, 0.0, m(1.0, 2.0, 100.0), false, 2)
            .unwrap();
        // Infeasible (p95_ms > 200) and better in both: not on the front.
        s.observe(t[2].id, 0.0, m(0.0, 9.0, 900.0), false, 2)
            .unwrap();
        // Dominated by trial 1.
        s.observe(t[3].id, 0.0, m(4.0, 5.0, 100.0), false, 2)
            .unwrap();
        s.observe(t[4].id, 0.0, BTreeMap::new(), true, 2).unwrap();
        let f = s.pareto().unwrap();
        let ids: Vec<u64> = f.trials.iter().map(|&i| s.trials[i].id).collect();
        assert_eq!(ids, vec![t[0].id, t[1].id]);
        // Derived over the feasible completed trials (1, 2, 4): cost worst 4,
        // range 3 -> 4.3; speed worst 2, range 4 -> 2 - 0.4 = 1.6.
        assert!((f.reference[0] - 4.3).abs() < 1e-12 && (f.reference[1] - 1.6).abs() < 1e-12);
        // Minimization space against (4.3, -1.6): (3, -6) and (1, -2):
        // 1.3 x 4.4 + 3.3 x 0.4 - 1.3 x 0.4 = 5.72 + 1.32 - 0.52 = 6.52.
        let hv = f.hypervolume.unwrap();
        assert!((hv - 6.52).abs() < 1e-9, "{hv}");
        // ParEGO after the initial design: a batch of distinct configurations.
        s.def.spec.n_initial = 2;
        let more = s.suggest(3, 3).unwrap();
        assert_eq!(more.len(), 3);
        assert!(more[0].config != more[1].config && more[1].config != more[2].config);
        assert!(s.fit.is_none(), "no warm start from a scalarization");
    }

    #[test]
    fn records_without_objectives_load_and_with_them_round_trip() {
        let s = two_objective_state();
        let back: StudyState = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let mut v = serde_json::to_value(&s).unwrap();
        let def = v["def"].as_object_mut().unwrap();
        def.remove("objectives");
        def.remove("reference_point");
        let old: StudyState = serde_json::from_value(v).unwrap();
        assert!(old.def.objectives.is_empty() && old.def.reference_point.is_empty());
        assert_eq!(old.pareto(), None);
    }

    #[test]
    fn definition_rules_name_the_field() {
        let err = |f: &dyn Fn(&mut StudyDef)| {
            let mut d = two_objective_state().def;
            f(&mut d);
            d.validate().unwrap_err().to_string()
        };
        let o = |n: &str| Objective {
            name: n.into(),
            goal: Goal::Minimize,
        };
        assert!(err(&|d| d.objectives.truncate(1)).contains("objectives: must have 2 to 4"));
        assert!(
            err(&|d| d.objectives = ["a", "b", "c", "d", "e"].map(o).to_vec())
                .contains("objectives: must have 2 to 4 objectives, got 5")
        );
        assert!(
            err(&|d| d.objectives[1].name = "cost".into())
                .contains("objectives[1].name: duplicate")
        );
        assert!(
            err(&|d| d.reference_point = vec![1.0])
                .contains("reference_point: must have one value per objective (2), got 1")
        );
        assert!(err(&|d| d.reference_point = vec![1.0, f64::NAN]).contains("reference_point[1]"));
        assert!(
            err(&|d| d.spec.constraints[0].metric = "speed".into())
                .contains("constraints[0].metric")
        );
        assert!(err(&|d| d.metrics = vec!["speed".into()]).contains("metrics[0]"));
        assert!(
            err(&|d| {
                d.objectives.clear();
                d.reference_point = vec![1.0, 2.0];
            })
            .contains("reference_point: only for")
        );
    }

    /// ZDT1 in 2-D with `budget` evaluations: the final hypervolume against
    /// (1.1, 11). `n_initial = budget` is the space-filling design alone.
    fn zdt1_hypervolume(seed: u64, n_initial: usize, budget: usize) -> f64 {
        use crate::bo::study::DEFAULT_MAX_PENDING;
        use crate::bo::{ParamKind, ParamValue, Parameter, SearchSpace};
        let unit = |n: &str| Parameter {
            name: n.into(),
            kind: ParamKind::Float {
                low: 0.0,
                high: 1.0,
                log: false,
                step: None,
            },
        };
        let space = SearchSpace {
            parameters: vec![unit("x1"), unit("x2")],
        };
        let mut spec = StudySpec::new(space, Goal::Minimize, seed);
        spec.n_initial = n_initial;
        let objective = |n: &str| Objective {
            name: n.into(),
            goal: Goal::Minimize,
        };
        let mut s = StudyState::new(StudyDef {
            name: "zdt1".into(),
            spec,
            objective: "f1".into(),
            metrics: vec![],
            trial_timeout_seconds: 0,
            max_pending: DEFAULT_MAX_PENDING,
            objectives: vec![objective("f1"), objective("f2")],
            reference_point: vec![1.1, 11.0],
        });
        for _ in 0..budget {
            let t = s.suggest(1, 0).unwrap().remove(0);
            let x = |k: &str| match t.config[k] {
                ParamValue::Number(v) => v,
                ParamValue::Category(_) => unreachable!("float parameters"),
            };
            let g = 1.0 + 9.0 * x("x2");
            let f2 = g * (1.0 - (x("x1") / g).sqrt());
            let m = BTreeMap::from([("f1".to_string(), x("x1")), ("f2".to_string(), f2)]);
            s.observe(t.id, 0.0, m, false, 0).unwrap();
        }
        s.pareto().unwrap().hypervolume.unwrap()
    }

    #[test]
    fn parego_closes_most_of_the_gap_on_zdt1() {
        // The true front is f2 = 1 - sqrt(f1), f1 in [0, 1]; against
        // (1.1, 11) it dominates 1.1 * 11 - ∫₀¹ (1 - √x) dx = 12.1 - 1/3.
        let best = 12.1 - 1.0 / 3.0;
        // With 30 evaluations (10 space-filling, 20 by ParEGO), on 5 fixed
        // seeds, the gap to it must be under half the gap of 30
        // space-filling points of the same seed (a baseline in the same run).
        // Measured: ParEGO 0.06-0.25, the design alone 1.0-1.3.
        for seed in 1..6 {
            let parego = best - zdt1_hypervolume(seed, 10, 30);
            let design = best - zdt1_hypervolume(seed, 30, 30);
            assert!(parego >= 0.0 && design >= 0.0);
            assert!(parego < 0.5 * design, "seed {seed}: {parego} vs {design}");
        }
    }
}
