//! Slices of the objective's GP posterior: along each parameter, with the
//! others held at the recommended configuration, the posterior mean and
//! standard deviation of the objective (original units). What a data
//! scientist reads to see where the model thinks the optimum is, and how
//! sure it is.

use super::space::{ParamKind, ParamValue, Point};
use super::suggest::{FitState, Observation, StudySpec, recommend_validated, view_models};

/// Values along a numeric parameter when the request does not say.
pub const DEFAULT_SLICE_POINTS: usize = 50;
/// Most values along a numeric parameter: a chart is a few hundred pixels
/// wide, and a study has up to 32 parameters, so a response stays small
/// (32 × 1,000 × 3 numbers) and a GP prediction of 32,000 points ~100 ms.
pub const MAX_SLICE_POINTS: usize = 1_000;
/// Fewest: a line needs two ends.
pub const MIN_SLICE_POINTS: usize = 2;

/// One parameter's slice.
#[derive(Debug, Clone, PartialEq)]
pub struct ParameterSlice {
    pub parameter: String,
    /// Numeric parameters: `points` values spanning the range (on the log
    /// scale for log parameters, whole numbers for ints, every level for
    /// ordinals) plus the recommended value itself; categoricals: one per
    /// level, in definition order.
    pub values: Vec<ParamValue>,
    /// Posterior mean and standard deviation of the objective at each value.
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

/// Every parameter's slice through the recommended configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Slices {
    /// Index (into the observations given) of the recommended trial.
    pub recommended: usize,
    pub at: Point,
    pub slices: Vec<ParameterSlice>,
    /// See `Recommendation::calibration`.
    pub calibration: Option<f64>,
}

fn linspace(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
    let n = n.max(2);
    (0..n).map(move |i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
}

/// Values moved onto a stepped parameter's grid `low + k·step` (the only
/// values Suggest can give it), so the slice shows what can be tried.
fn on_steps(values: Vec<f64>, low: f64, high: f64, step: Option<f64>) -> Vec<f64> {
    match step {
        Some(s) if s > 0.0 => values
            .into_iter()
            .map(|x| (low + ((x - low) / s).round() * s).clamp(low, high))
            .collect(),
        _ => values,
    }
}

/// The values along one parameter (see [`ParameterSlice::values`]).
fn slice_values(kind: &ParamKind, at: Option<&ParamValue>, points: usize) -> Vec<ParamValue> {
    let mut nums: Vec<f64> = match kind {
        ParamKind::Categorical { values, .. } => {
            return values.iter().cloned().map(ParamValue::Category).collect();
        }
        ParamKind::Ordinal { values } => values.clone(),
        ParamKind::Float {
            low,
            high,
            log,
            step,
        } => {
            let v: Vec<f64> = if *log {
                linspace(low.ln(), high.ln(), points)
                    .map(f64::exp)
                    .collect()
            } else {
                linspace(*low, *high, points).collect()
            };
            on_steps(v, *low, *high, *step)
        }
        ParamKind::Int {
            low,
            high,
            log,
            step,
        } => {
            let (lo, hi) = (*low as f64, *high as f64);
            let v: Vec<f64> = if *log {
                linspace(lo.ln(), hi.ln(), points).map(f64::exp).collect()
            } else {
                linspace(lo, hi, points).collect()
            };
            let whole = v.into_iter().map(|x| x.round().clamp(lo, hi)).collect();
            on_steps(whole, lo, hi, step.map(|s| s as f64))
        }
    };
    if let Some(ParamValue::Number(x)) = at {
        nums.push(*x);
    }
    nums.sort_by(f64::total_cmp);
    nums.dedup();
    // exp(ln x) may land a hair outside the bounds: clamp to them.
    if let ParamKind::Float { low, high, .. } = kind {
        for x in &mut nums {
            *x = x.clamp(*low, *high);
        }
    }
    nums.into_iter().map(ParamValue::Number).collect()
}

/// The slices of a validated spec's model through its recommended
/// configuration; `None` without a model (no completed feasible trial, or
/// a GP that would not condition). `points` is clamped to
/// [`MIN_SLICE_POINTS`]..=[`MAX_SLICE_POINTS`].
pub(crate) fn slices_validated(
    spec: &StudySpec,
    observations: &[Observation],
    warm: Option<&FitState>,
    points: usize,
) -> Option<Slices> {
    let points = points.clamp(MIN_SLICE_POINTS, MAX_SLICE_POINTS);
    let rec = recommend_validated(spec, observations, warm)?;
    let recommended = rec.recommended?;
    // The same model as the recommendation (same seed and refit rule).
    let m = view_models(spec, observations, warm)?;
    let at = observations.get(recommended)?.config.clone();
    let mut slices = Vec::with_capacity(spec.space.parameters.len());
    for p in &spec.space.parameters {
        let values = slice_values(&p.kind, at.get(&p.name), points);
        let encoded: Vec<Vec<f64>> = values
            .iter()
            .map(|v| {
                let mut c = at.clone();
                c.insert(p.name.clone(), v.clone());
                spec.space.encode(&c)
            })
            .collect::<Result<_, _>>()
            .ok()?;
        let (mu, var) = m.objective.predict(&encoded);
        // As the recommendation: the predictive median in the user's units
        // (the cost with known prices), the std by the delta method.
        let (mean, std) = (0..encoded.len())
            .map(|k| m.in_user_units(spec.goal, &encoded[k], mu[k], var[k]))
            .unzip();
        slices.push(ParameterSlice {
            parameter: p.name.clone(),
            values,
            mean,
            std,
        });
    }
    Some(Slices {
        recommended,
        at,
        slices,
        calibration: rec.calibration,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_span_the_range_and_hold_the_recommended_one() {
        let v = slice_values(
            &ParamKind::Float {
                low: 1.0,
                high: 100.0,
                log: true,
                step: None,
            },
            Some(&ParamValue::Number(3.0)),
            3,
        );
        let nums: Vec<f64> = v
            .iter()
            .map(|x| match x {
                ParamValue::Number(n) => *n,
                ParamValue::Category(_) => f64::NAN,
            })
            .collect();
        assert_eq!(nums.len(), 4);
        assert!((nums[0] - 1.0).abs() < 1e-12 && (nums[3] - 100.0).abs() < 1e-9);
        assert!((nums[2] - 10.0).abs() < 1e-9, "{nums:?}");
        assert_eq!(nums[1], 3.0);
        let ints = slice_values(
            &ParamKind::Int {
                low: 0,
                high: 3,
                log: false,
                step: None,
            },
            Some(&ParamValue::Number(2.0)),
            50,
        );
        assert_eq!(ints.len(), 4, "whole numbers only, once each");
        let cats = slice_values(
            &ParamKind::Categorical {
                values: vec!["a".into(), "b".into()],
                features: Vec::new(),
            },
            Some(&ParamValue::Category("b".into())),
            50,
        );
        assert_eq!(
            cats,
            vec![
                ParamValue::Category("a".into()),
                ParamValue::Category("b".into())
            ]
        );
    }
}
