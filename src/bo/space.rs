//! Search space: declaration, validation, and the encoding to the GP's input space.
//!
//! Encoded layout (what the kernel sees): first one coordinate in `[0, 1]` per
//! float/int/ordinal parameter (in declaration order), then one coordinate per
//! categorical parameter holding the level index as an `f64` (the kernel only
//! ever compares those for equality, so there is no one-hot blow-up).

use std::collections::{BTreeMap, HashSet};

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::error::BoError;
pub use super::kernel::LevelMetric;

/// Upper bound on the number of parameters. A GP with ~1000 observations and
/// one length scale per dimension cannot learn much beyond a few tens of
/// dimensions, the candidate search covers the cube ever more sparsely, and the
/// gradient of the marginal likelihood costs O(n²·d) per evaluation; 32 keeps
/// every `suggest` call well inside its latency budget.
pub const MAX_DIMENSIONS: usize = 32;
/// Upper bound on categorical/ordinal levels: the optimizer enumerates levels of
/// a categorical dimension during refinement, and beyond ~1000 levels the
/// exchangeable kernel cannot learn anything per level anyway.
pub const MAX_LEVELS: usize = 1024;
/// Integer bounds must be exactly representable as `f64` (the GP works in f64).
pub const MAX_ABS_INT: i64 = 1 << 53;
/// Parameter names: 1..=64 chars of `[A-Za-z0-9_.-]` (safe in metric labels and keys).
pub const MAX_NAME_LEN: usize = 64;
/// Bytes per categorical value. A category is copied into every trial that
/// picks it and into every GetStudy answer, so its size multiplies by the
/// number of trials: one 100 KB category made a study outgrow the 4 MiB
/// message limit after ~40 trials and GetStudy failed from then on. 256 bytes
/// holds any label, model id or short path; 5,000 trials of one such value
/// stay near 1.3 MB.
pub const MAX_CATEGORY_LEN: usize = 256;

/// A configuration: parameter name -> value.
pub type Point = BTreeMap<String, ParamValue>;

/// A parameter value: numbers for float/int/ordinal, strings for categoricals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Number(f64),
    Category(String),
}

/// The domain of one parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamKind {
    /// Real interval `[low, high]`, optionally searched on a log scale, or
    /// on the grid `low + k·step` when `step` is set (never with `log`).
    Float {
        low: f64,
        high: f64,
        log: bool,
        /// Absent in studies stored before steps existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
    },
    /// Integer interval `[low, high]` (inclusive), optionally log scale, or
    /// every `step`-th integer from `low` when `step` is set (never with `log`).
    Int {
        low: i64,
        high: i64,
        log: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<i64>,
    },
    /// Ordered numeric levels; must be finite and strictly increasing (we reject
    /// rather than sort, so that the caller's level order is never silently changed).
    Ordinal { values: Vec<f64> },
    /// Unordered string levels, optionally with one numeric feature vector
    /// per level (all the same length): the kernel then measures how alike
    /// two levels are by the distance of their (normalized) features instead
    /// of treating every pair of levels as equally unrelated.
    Categorical {
        values: Vec<String>,
        /// Empty = no features (and in studies stored before features existed).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        features: Vec<Vec<f64>>,
    },
}

/// One named parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    pub name: String,
    pub kind: ParamKind,
}

/// The search space: an ordered list of parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    pub parameters: Vec<Parameter>,
}

fn kind_tag(kind: &ParamKind) -> &'static str {
    match kind {
        ParamKind::Float { .. } => "float",
        ParamKind::Int { .. } => "int",
        ParamKind::Ordinal { .. } => "ordinal",
        ParamKind::Categorical { .. } => "categorical",
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

impl SearchSpace {
    /// Checks every rule; the error names the offending field.
    pub fn validate(&self) -> Result<(), BoError> {
        if self.parameters.is_empty() {
            return Err(BoError::space(
                "parameters",
                "must contain at least one parameter",
            ));
        }
        if self.parameters.len() > MAX_DIMENSIONS {
            return Err(BoError::space(
                "parameters",
                format!(
                    "must have at most {MAX_DIMENSIONS} parameters, got {}",
                    self.parameters.len()
                ),
            ));
        }
        let mut names = HashSet::new();
        for (i, p) in self.parameters.iter().enumerate() {
            let f = |s: &str| format!("parameters[{i}].{s}");
            if p.name.len() > MAX_NAME_LEN {
                return Err(BoError::space(
                    f("name"),
                    format!("must be at most {MAX_NAME_LEN} bytes, got {}", p.name.len()),
                ));
            }
            if !valid_name(&p.name) {
                return Err(BoError::space(
                    f("name"),
                    format!("must be 1..={MAX_NAME_LEN} characters of [A-Za-z0-9_.-]"),
                ));
            }
            if !names.insert(p.name.as_str()) {
                return Err(BoError::space(
                    f("name"),
                    format!("duplicate name {:?}", p.name),
                ));
            }
            let t = kind_tag(&p.kind);
            match &p.kind {
                ParamKind::Float {
                    low,
                    high,
                    log,
                    step,
                } => {
                    if !low.is_finite() {
                        return Err(BoError::space(f(&format!("{t}.low")), "must be finite"));
                    }
                    if !high.is_finite() {
                        return Err(BoError::space(f(&format!("{t}.high")), "must be finite"));
                    }
                    if low >= high {
                        return Err(BoError::space(f(&format!("{t}.low")), "must be < high"));
                    }
                    if !(high - low).is_finite() {
                        return Err(BoError::space(
                            f(&format!("{t}.high")),
                            "high - low must be finite",
                        ));
                    }
                    if *log && *low <= 0.0 {
                        return Err(BoError::space(
                            f(&format!("{t}.low")),
                            "must be > 0 when log is set",
                        ));
                    }
                    if let Some(s) = step {
                        float_steps(*low, *high, *log, *s)
                            .map_err(|rule| BoError::space(f(&format!("{t}.step")), rule))?;
                    }
                }
                ParamKind::Int {
                    low,
                    high,
                    log,
                    step,
                } => {
                    if low.abs() > MAX_ABS_INT || low == &i64::MIN {
                        return Err(BoError::space(
                            f(&format!("{t}.low")),
                            "|low| must be <= 2^53",
                        ));
                    }
                    if high.abs() > MAX_ABS_INT || high == &i64::MIN {
                        return Err(BoError::space(
                            f(&format!("{t}.high")),
                            "|high| must be <= 2^53",
                        ));
                    }
                    if low >= high {
                        return Err(BoError::space(f(&format!("{t}.low")), "must be < high"));
                    }
                    if *log && *low <= 0 {
                        return Err(BoError::space(
                            f(&format!("{t}.low")),
                            "must be > 0 when log is set",
                        ));
                    }
                    if let Some(s) = step {
                        int_steps(*low, *high, *log, *s)
                            .map_err(|rule| BoError::space(f(&format!("{t}.step")), rule))?;
                    }
                }
                ParamKind::Ordinal { values } => {
                    if values.is_empty() {
                        return Err(BoError::space(
                            f(&format!("{t}.values")),
                            "must not be empty",
                        ));
                    }
                    if values.len() > MAX_LEVELS {
                        return Err(BoError::space(
                            f(&format!("{t}.values")),
                            format!(
                                "must have at most {MAX_LEVELS} values, got {}",
                                values.len()
                            ),
                        ));
                    }
                    for (j, v) in values.iter().enumerate() {
                        if !v.is_finite() {
                            return Err(BoError::space(
                                f(&format!("{t}.values[{j}]")),
                                "must be finite",
                            ));
                        }
                        if j > 0 {
                            let prev = values[j - 1];
                            if *v == prev {
                                return Err(BoError::space(
                                    f(&format!("{t}.values[{j}]")),
                                    "duplicate value",
                                ));
                            }
                            if *v < prev {
                                return Err(BoError::space(
                                    f(&format!("{t}.values[{j}]")),
                                    "values must be sorted strictly increasing (not sorted for you)",
                                ));
                            }
                        }
                    }
                }
                ParamKind::Categorical { values, features } => {
                    if values.is_empty() {
                        return Err(BoError::space(
                            f(&format!("{t}.values")),
                            "must not be empty",
                        ));
                    }
                    if values.len() > MAX_LEVELS {
                        return Err(BoError::space(
                            f(&format!("{t}.values")),
                            format!(
                                "must have at most {MAX_LEVELS} values, got {}",
                                values.len()
                            ),
                        ));
                    }
                    validate_features(values.len(), features).map_err(|(field, rule)| {
                        BoError::space(f(&format!("{t}.{field}")), rule)
                    })?;
                    let mut seen = HashSet::new();
                    for (j, v) in values.iter().enumerate() {
                        if v.is_empty() {
                            return Err(BoError::space(
                                f(&format!("{t}.values[{j}]")),
                                "must not be empty",
                            ));
                        }
                        if v.len() > MAX_CATEGORY_LEN {
                            return Err(BoError::space(
                                f(&format!("{t}.values[{j}]")),
                                format!(
                                    "must be at most {MAX_CATEGORY_LEN} bytes, got {}",
                                    v.len()
                                ),
                            ));
                        }
                        if !seen.insert(v.as_str()) {
                            return Err(BoError::space(
                                f(&format!("{t}.values[{j}]")),
                                format!("duplicate category {v:?}"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks that `config` assigns every parameter exactly one value of its
    /// declared type and nothing else.
    pub fn validate_config(&self, config: &Point) -> Result<(), BoError> {
        for key in config.keys() {
            if !self.parameters.iter().any(|p| &p.name == key) {
                return Err(BoError::config(key.clone(), "unknown parameter"));
            }
        }
        for p in &self.parameters {
            let name = &p.name;
            let v = config
                .get(name)
                .ok_or_else(|| BoError::config(name.clone(), "missing parameter"))?;
            match (&p.kind, v) {
                (ParamKind::Float { low, high, .. }, ParamValue::Number(x)) => {
                    if !x.is_finite() || x < low || x > high {
                        return Err(BoError::config(
                            name.clone(),
                            format!("must be a finite number in [{low}, {high}]"),
                        ));
                    }
                    if snap_number(&p.kind, *x) != *x {
                        return Err(BoError::config(name.clone(), grid_rule(&p.kind)));
                    }
                }
                (ParamKind::Int { low, high, .. }, ParamValue::Number(x)) => {
                    if !x.is_finite() || x.fract() != 0.0 || *x < *low as f64 || *x > *high as f64 {
                        return Err(BoError::config(
                            name.clone(),
                            format!("must be an integer in [{low}, {high}]"),
                        ));
                    }
                    if snap_number(&p.kind, *x) != *x {
                        return Err(BoError::config(name.clone(), grid_rule(&p.kind)));
                    }
                }
                (ParamKind::Ordinal { values }, ParamValue::Number(x)) => {
                    if !values.contains(x) {
                        return Err(BoError::config(
                            name.clone(),
                            "must be one of the ordinal values",
                        ));
                    }
                }
                (ParamKind::Categorical { values, .. }, ParamValue::Category(s)) => {
                    if !values.contains(s) {
                        return Err(BoError::config(
                            name.clone(),
                            "must be one of the categories",
                        ));
                    }
                }
                (ParamKind::Categorical { .. }, _) => {
                    return Err(BoError::config(name.clone(), "must be a category string"));
                }
                (_, _) => return Err(BoError::config(name.clone(), "must be a number")),
            }
        }
        Ok(())
    }

    /// A configuration given by a user (EnqueueTrial, AddTrial) checked
    /// against the space and snapped to it exactly as suggestions are:
    /// integers rounded, stepped values moved to the nearest grid point.
    /// Values outside `[low, high]`, unknown ordinal levels or categories,
    /// and missing or unknown parameters are refused, never clamped.
    pub fn snap_config(&self, config: &Point) -> Result<Point, BoError> {
        for key in config.keys() {
            if !self.parameters.iter().any(|p| &p.name == key) {
                return Err(BoError::config(
                    key.clone(),
                    format!(
                        "unknown parameter (the study's parameters: {:?})",
                        self.parameters.iter().map(|p| &p.name).collect::<Vec<_>>()
                    ),
                ));
            }
        }
        let mut out = Point::new();
        for p in &self.parameters {
            let v = config
                .get(&p.name)
                .ok_or_else(|| BoError::config(p.name.clone(), "missing parameter"))?;
            let snapped = match (&p.kind, v) {
                (ParamKind::Float { low, high, .. }, ParamValue::Number(x)) => {
                    if !x.is_finite() || x < low || x > high {
                        return Err(BoError::config(
                            p.name.clone(),
                            format!("must be a finite number in [{low}, {high}], got {x}"),
                        ));
                    }
                    ParamValue::Number(snap_number(&p.kind, *x))
                }
                (ParamKind::Int { low, high, .. }, ParamValue::Number(x)) => {
                    if !x.is_finite() || *x < *low as f64 || *x > *high as f64 {
                        return Err(BoError::config(
                            p.name.clone(),
                            format!("must be a finite number in [{low}, {high}], got {x}"),
                        ));
                    }
                    ParamValue::Number(snap_number(&p.kind, *x))
                }
                (ParamKind::Ordinal { values }, ParamValue::Number(x)) => {
                    if !values.contains(x) {
                        return Err(BoError::config(
                            p.name.clone(),
                            format!("must be one of the ordinal values {values:?}, got {x}"),
                        ));
                    }
                    ParamValue::Number(*x)
                }
                (ParamKind::Categorical { values, .. }, ParamValue::Category(s)) => {
                    if !values.contains(s) {
                        return Err(BoError::config(
                            p.name.clone(),
                            format!("must be one of the categories {values:?}"),
                        ));
                    }
                    ParamValue::Category(s.clone())
                }
                (ParamKind::Categorical { .. }, _) => {
                    return Err(BoError::config(p.name.clone(), "must be a category string"));
                }
                (_, _) => return Err(BoError::config(p.name.clone(), "must be a number")),
            };
            out.insert(p.name.clone(), snapped);
        }
        Ok(out)
    }

    /// True when every parameter has finitely many values.
    pub fn is_finite(&self) -> bool {
        self.parameters
            .iter()
            .all(|p| level_count(&p.kind).is_some())
    }

    /// Number of distinct configurations, `None` for spaces with a float
    /// parameter or when the count overflows `u128`.
    pub fn cardinality(&self) -> Option<u128> {
        self.parameters
            .iter()
            .try_fold(1u128, |acc, p| acc.checked_mul(level_count(&p.kind)?))
    }

    pub(crate) fn n_continuous(&self) -> usize {
        self.parameters
            .iter()
            .filter(|p| !matches!(p.kind, ParamKind::Categorical { .. }))
            .count()
    }

    /// Level counts of the categorical parameters, in encoded order.
    pub(crate) fn cat_levels(&self) -> Vec<usize> {
        self.parameters
            .iter()
            .filter_map(|p| match &p.kind {
                ParamKind::Categorical { values, .. } => Some(values.len()),
                _ => None,
            })
            .collect()
    }

    /// Per categorical dimension (in encoded order), its level distances
    /// when it has features (see [`level_distances`]); `None` when no
    /// categorical has features, so that spaces without features build the
    /// very kernel they always had.
    pub(crate) fn level_metric(&self) -> Option<std::sync::Arc<LevelMetric>> {
        let per_cat: Vec<Option<(usize, Vec<f64>)>> = self
            .parameters
            .iter()
            .filter_map(|p| match &p.kind {
                ParamKind::Categorical { values, features } => {
                    Some(level_distances(features).map(|d| (values.len(), d)))
                }
                _ => None,
            })
            .collect();
        if per_cat.iter().all(Option::is_none) {
            return None;
        }
        Some(std::sync::Arc::new(LevelMetric { per_cat }))
    }

    /// Encoded position of each parameter (continuous block first, then categorical block).
    pub(crate) fn positions(&self) -> Vec<usize> {
        let nc = self.n_continuous();
        let (mut c, mut k) = (0, nc);
        self.parameters
            .iter()
            .map(|p| {
                if matches!(p.kind, ParamKind::Categorical { .. }) {
                    k += 1;
                    k - 1
                } else {
                    c += 1;
                    c - 1
                }
            })
            .collect()
    }

    /// Encodes a configuration that passed `validate_config`.
    pub(crate) fn encode(&self, config: &Point) -> Result<Vec<f64>, BoError> {
        self.validate_config(config)?;
        let pos = self.positions();
        let mut out = vec![0.0; self.parameters.len()];
        for (p, &j) in self.parameters.iter().zip(&pos) {
            let v = &config[&p.name];
            out[j] = match (&p.kind, v) {
                (ParamKind::Float { low, high, log, .. }, ParamValue::Number(x)) => {
                    to_unit(*x, *low, *high, *log)
                }
                (ParamKind::Int { low, high, log, .. }, ParamValue::Number(x)) => {
                    to_unit(*x, *low as f64, *high as f64, *log)
                }
                (ParamKind::Ordinal { values }, ParamValue::Number(x)) => {
                    let idx = values.iter().position(|v| v == x).unwrap_or(0);
                    ordinal_unit(idx, values.len())
                }
                (ParamKind::Categorical { values, .. }, ParamValue::Category(s)) => {
                    values.iter().position(|v| v == s).unwrap_or(0) as f64
                }
                _ => 0.0,
            };
        }
        Ok(out)
    }

    /// Decodes an encoded point (any real numbers; clamped) into a configuration
    /// whose values are exactly of the declared types.
    pub(crate) fn decode(&self, x: &[f64]) -> Point {
        let pos = self.positions();
        let mut out = Point::new();
        for (p, &j) in self.parameters.iter().zip(&pos) {
            let u = x.get(j).copied().unwrap_or(0.0);
            let u = if u.is_finite() { u } else { 0.0 };
            let v = match &p.kind {
                ParamKind::Float { low, high, log, .. } => {
                    ParamValue::Number(snap_number(&p.kind, from_unit(u, *low, *high, *log)))
                }
                ParamKind::Int { low, high, log, .. } => ParamValue::Number(snap_number(
                    &p.kind,
                    from_unit(u, *low as f64, *high as f64, *log),
                )),
                ParamKind::Ordinal { values } => {
                    ParamValue::Number(values[ordinal_index(u, values.len())])
                }
                ParamKind::Categorical { values, .. } => {
                    let idx = (u.max(0.0).round() as usize).min(values.len() - 1);
                    ParamValue::Category(values[idx].clone())
                }
            };
            out.insert(p.name.clone(), v);
        }
        out
    }

    /// Rounds an encoded point to the encoding of the configuration it decodes to.
    pub(crate) fn snap(&self, x: &[f64]) -> (Vec<f64>, Point) {
        let c = self.decode(x);
        let e = self.encode(&c).unwrap_or_else(|_| x.to_vec());
        (e, c)
    }

    /// An identity key: equal keys iff equal configurations (floats by bit pattern,
    /// `-0.0` folded into `0.0`). Assumes a valid configuration.
    pub(crate) fn key(&self, config: &Point) -> Vec<u64> {
        self.parameters
            .iter()
            .map(|p| match (&p.kind, config.get(&p.name)) {
                (ParamKind::Categorical { values, .. }, Some(ParamValue::Category(s))) => {
                    values.iter().position(|v| v == s).unwrap_or(usize::MAX) as u64
                }
                (ParamKind::Ordinal { values }, Some(ParamValue::Number(x))) => {
                    values.iter().position(|v| v == x).unwrap_or(usize::MAX) as u64
                }
                (_, Some(ParamValue::Number(x))) => (x + 0.0).to_bits(),
                _ => u64::MAX,
            })
            .collect()
    }

    /// The `index`-th configuration of a finite space in mixed-radix order
    /// (`index < cardinality`); `None` for floats.
    pub(crate) fn config_at(&self, mut index: u128) -> Option<Point> {
        let mut out = Point::new();
        for p in &self.parameters {
            let n = level_count(&p.kind)?;
            let i = index % n;
            index /= n;
            let v = match &p.kind {
                ParamKind::Int { low, step, .. } => ParamValue::Number(
                    (*low as i128 + i as i128 * step.unwrap_or(1) as i128) as f64,
                ),
                ParamKind::Ordinal { values } => ParamValue::Number(values[i as usize]),
                ParamKind::Categorical { values, .. } => {
                    ParamValue::Category(values[i as usize].clone())
                }
                ParamKind::Float {
                    low,
                    high,
                    step: Some(s),
                    ..
                } => ParamValue::Number(grid_value(*low, *high, *s, i as f64)),
                ParamKind::Float { .. } => return None,
            };
            out.insert(p.name.clone(), v);
        }
        Some(out)
    }

    /// A uniformly random encoded point (categorical levels uniform).
    pub(crate) fn random_point<R: Rng>(&self, rng: &mut R) -> Vec<f64> {
        let nc = self.n_continuous();
        let mut x: Vec<f64> = (0..nc).map(|_| rng.random::<f64>()).collect();
        x.extend(
            self.cat_levels()
                .iter()
                .map(|&l| rng.random_range(0..l) as f64),
        );
        x
    }
}

/// Rounding and identity keys directly in the encoded space, for the optimizer's
/// hot loop: building a `Point` (a `BTreeMap` of `String`s) per candidate costs
/// more than the GP prediction at small n, and only the winners need decoding.
pub(crate) struct Codec<'a> {
    space: &'a SearchSpace,
    /// Encoded position of each parameter (see `SearchSpace::positions`).
    pos: Vec<usize>,
}

impl<'a> Codec<'a> {
    pub(crate) fn new(space: &'a SearchSpace) -> Self {
        Codec {
            space,
            pos: space.positions(),
        }
    }

    /// Rounds `x` in place to the encoding of the configuration it decodes to, so
    /// that `decode(x)` is exact and the GP scores what would be suggested.
    /// Floats are only clamped (re-encoding a decoded float can move it by an ulp,
    /// which no model can tell apart); `key` agrees with `space.key(&decode(x))`.
    pub(crate) fn snap(&self, x: &mut [f64]) {
        for (p, &j) in self.space.parameters.iter().zip(&self.pos) {
            let Some(slot) = x.get_mut(j) else { continue };
            let u = if slot.is_finite() { *slot } else { 0.0 };
            *slot = match &p.kind {
                ParamKind::Float { step: None, .. } => u.clamp(0.0, 1.0),
                ParamKind::Float { low, high, log, .. } => to_unit(
                    snap_number(&p.kind, from_unit(u, *low, *high, *log)),
                    *low,
                    *high,
                    *log,
                ),
                ParamKind::Int { low, high, log, .. } => {
                    let (lo, hi) = (*low as f64, *high as f64);
                    let v = snap_number(&p.kind, from_unit(u, lo, hi, *log));
                    to_unit(v, lo, hi, *log)
                }
                ParamKind::Ordinal { values } => {
                    let n = values.len();
                    ordinal_unit(ordinal_index(u, n), n)
                }
                ParamKind::Categorical { values, .. } => {
                    (u.max(0.0).round() as usize).min(values.len() - 1) as f64
                }
            };
        }
    }

    /// `space.key(&space.decode(x))` without building the configuration.
    pub(crate) fn key(&self, x: &[f64]) -> Vec<u64> {
        self.space
            .parameters
            .iter()
            .zip(&self.pos)
            .map(|(p, &j)| {
                let u = x.get(j).copied().unwrap_or(0.0);
                let u = if u.is_finite() { u } else { 0.0 };
                match &p.kind {
                    ParamKind::Float { low, high, log, .. } => {
                        (snap_number(&p.kind, from_unit(u, *low, *high, *log)) + 0.0).to_bits()
                    }
                    ParamKind::Int { low, high, log, .. } => {
                        let (lo, hi) = (*low as f64, *high as f64);
                        (snap_number(&p.kind, from_unit(u, lo, hi, *log)) + 0.0).to_bits()
                    }
                    ParamKind::Ordinal { values } => ordinal_index(u, values.len()) as u64,
                    ParamKind::Categorical { values, .. } => {
                        (u.max(0.0).round() as usize).min(values.len() - 1) as u64
                    }
                }
            })
            .collect()
    }
}

/// Most features per level: the distance is O(features) per level pair,
/// computed once per model; 16 holds a catalog's columns with room to spare.
pub const MAX_FEATURES: usize = 16;

/// Level features: one vector per level, all of one length in
/// 1..=[`MAX_FEATURES`], every number finite. Returns (field, rule).
fn validate_features(levels: usize, features: &[Vec<f64>]) -> Result<(), (String, String)> {
    if features.is_empty() {
        return Ok(());
    }
    if features.len() != levels {
        return Err((
            "features".into(),
            format!(
                "must have one feature vector per level: {levels} values, got {} feature vectors",
                features.len()
            ),
        ));
    }
    let width = features[0].len();
    for (j, v) in features.iter().enumerate() {
        if v.is_empty() || v.len() > MAX_FEATURES {
            return Err((
                format!("features[{j}]"),
                format!("must have 1..={MAX_FEATURES} numbers, got {}", v.len()),
            ));
        }
        if v.len() != width {
            return Err((
                format!("features[{j}]"),
                format!(
                    "every level must have as many features as the first ({width}), got {}",
                    v.len()
                ),
            ));
        }
        if let Some(k) = v.iter().position(|x| !x.is_finite()) {
            return Err((format!("features[{j}][{k}]"), "must be finite".into()));
        }
    }
    Ok(())
}

/// Squared distances between the levels of a categorical with features,
/// row-major `levels × levels`: each feature column scaled to [0, 1] over
/// the levels (min-max, so that price in dollars and memory in GiB weigh
/// alike; a constant column contributes nothing), and the squared Euclidean
/// distance divided by the number of columns, so that the largest possible
/// distance is 1, the distance between two levels of a categorical without
/// features. `None` without features.
pub(crate) fn level_distances(features: &[Vec<f64>]) -> Option<Vec<f64>> {
    let n = features.len();
    let w = features.first()?.len();
    if w == 0 {
        return None;
    }
    let mut scaled = vec![vec![0.0; w]; n];
    for c in 0..w {
        let lo = features.iter().map(|f| f[c]).fold(f64::INFINITY, f64::min);
        let hi = features
            .iter()
            .map(|f| f[c])
            .fold(f64::NEG_INFINITY, f64::max);
        let span = hi - lo;
        for (row, f) in scaled.iter_mut().zip(features) {
            row[c] = if span > 0.0 && span.is_finite() {
                (f[c] - lo) / span
            } else {
                0.0
            };
        }
    }
    let mut d = vec![0.0; n * n];
    for a in 0..n {
        for b in 0..n {
            let s: f64 = (0..w).map(|c| (scaled[a][c] - scaled[b][c]).powi(2)).sum();
            d[a * n + b] = s / w as f64;
        }
    }
    Some(d)
}

/// Level index an encoded ordinal coordinate rounds to (same rule as `decode`).
fn ordinal_index(u: f64, n: usize) -> usize {
    if n <= 1 {
        0
    } else {
        ((u.clamp(0.0, 1.0) * (n - 1) as f64).round() as usize).min(n - 1)
    }
}

fn level_count(kind: &ParamKind) -> Option<u128> {
    match kind {
        ParamKind::Float {
            low,
            high,
            step: Some(s),
            ..
        } => Some(((high - low) / s).round().max(0.0) as u128 + 1),
        ParamKind::Float { .. } => None,
        ParamKind::Int {
            low, high, step, ..
        } => Some(
            ((*high as i128 - *low as i128) / step.unwrap_or(1).max(1) as i128 + 1).max(1) as u128,
        ),
        ParamKind::Ordinal { values } => Some(values.len() as u128),
        ParamKind::Categorical { values, .. } => Some(values.len() as u128),
    }
}

/// Levels of a float grid: `(high - low) / step` must be a whole number
/// (within 1e-9 relative, so that `step = 0.1` over `[0, 1]` is accepted
/// despite binary rounding), at least 1, and exactly representable.
fn float_steps(low: f64, high: f64, log: bool, step: f64) -> Result<f64, String> {
    if log {
        return Err("step and log are exclusive (a log scale has no even steps)".into());
    }
    if !(step.is_finite() && step > 0.0) {
        return Err(format!("must be a finite number > 0, got {step}"));
    }
    let r = (high - low) / step;
    let k = r.round();
    if !(1.0..=MAX_ABS_INT as f64).contains(&k) || (r - k).abs() > 1e-9 * k {
        return Err(format!(
            "high must be reachable: (high - low) / step = ({high} - {low}) / {step} = {r} is not a whole number of steps"
        ));
    }
    Ok(k)
}

/// Levels of an integer grid: `(high - low)` must be a multiple of `step`.
fn int_steps(low: i64, high: i64, log: bool, step: i64) -> Result<i64, String> {
    if log {
        return Err("step and log are exclusive (a log scale has no even steps)".into());
    }
    if step < 1 {
        return Err(format!("must be >= 1, got {step}"));
    }
    let d = high as i128 - low as i128;
    if d % step as i128 != 0 {
        return Err(format!(
            "high must be reachable: high - low = {d} is not a multiple of step {step}"
        ));
    }
    Ok((d / step as i128) as i64)
}

/// The `k`-th value of a float grid; the last one is `high` itself, so that
/// rounding in `low + k·step` never leaves the range or misses its end.
fn grid_value(low: f64, high: f64, step: f64, k: f64) -> f64 {
    let last = ((high - low) / step).round();
    let k = k.clamp(0.0, last);
    if k >= last {
        high
    } else {
        (low + k * step).min(high)
    }
}

/// A number moved onto its parameter's domain: clamped to `[low, high]`,
/// integers rounded, stepped ranges to the nearest grid point (NaN to `low`).
/// The one rule shared by `decode`, the codec and user configurations.
fn snap_number(kind: &ParamKind, x: f64) -> f64 {
    let x = if x.is_nan() { f64::NEG_INFINITY } else { x };
    match kind {
        ParamKind::Float {
            low,
            high,
            step: Some(s),
            ..
        } => grid_value(*low, *high, *s, ((x.clamp(*low, *high) - low) / s).round()),
        ParamKind::Float { low, high, .. } => x.clamp(*low, *high),
        ParamKind::Int {
            low, high, step, ..
        } => {
            let (lo, hi) = (*low as f64, *high as f64);
            match step {
                // Without a step, exactly the rounding suggestions always had.
                None => x.round().clamp(lo, hi),
                Some(s) => {
                    let s = (*s).max(1) as f64;
                    let k = ((x.clamp(lo, hi) - lo) / s).round();
                    (lo + k * s).clamp(lo, hi)
                }
            }
        }
        ParamKind::Ordinal { .. } | ParamKind::Categorical { .. } => x,
    }
}

/// The rule a value off its parameter's grid breaks.
fn grid_rule(kind: &ParamKind) -> String {
    match kind {
        ParamKind::Float {
            low, step: Some(s), ..
        } => format!("must be {low} + k * {s} (the parameter's step)"),
        ParamKind::Int {
            low, step: Some(s), ..
        } => format!("must be {low} + k * {s} (the parameter's step)"),
        _ => "must be on the parameter's grid".into(),
    }
}

/// Ordinals are encoded by *rank* (index scaled to [0, 1]), not by value: levels
/// such as {1, 2, 4, 8, 1024} would otherwise crowd into one end of the cube,
/// and rank encoding makes rounding to the nearest level exact and cheap.
fn ordinal_unit(idx: usize, n: usize) -> f64 {
    if n <= 1 {
        0.0
    } else {
        idx as f64 / (n - 1) as f64
    }
}

fn to_unit(x: f64, low: f64, high: f64, log: bool) -> f64 {
    let u = if log {
        (x.ln() - low.ln()) / (high.ln() - low.ln())
    } else {
        (x - low) / (high - low)
    };
    u.clamp(0.0, 1.0)
}

pub(crate) fn from_unit(u: f64, low: f64, high: f64, log: bool) -> f64 {
    let u = u.clamp(0.0, 1.0);
    if log {
        (low.ln() + u * (high.ln() - low.ln())).exp()
    } else {
        low + u * (high - low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mixed() -> SearchSpace {
        let p = |name: &str, kind| Parameter {
            name: name.into(),
            kind,
        };
        SearchSpace {
            parameters: vec![
                p(
                    "c",
                    ParamKind::Categorical {
                        values: vec!["a".into(), "b".into(), "c".into()],
                        features: Vec::new(),
                    },
                ),
                p(
                    "f",
                    ParamKind::Float {
                        low: -3.0,
                        high: 7.5,
                        log: false,
                        step: None,
                    },
                ),
                p(
                    "lf",
                    ParamKind::Float {
                        low: 1e-4,
                        high: 10.0,
                        log: true,
                        step: None,
                    },
                ),
                p(
                    "i",
                    ParamKind::Int {
                        low: -4,
                        high: 9,
                        log: false,
                        step: None,
                    },
                ),
                p(
                    "li",
                    ParamKind::Int {
                        low: 1,
                        high: 1000,
                        log: true,
                        step: None,
                    },
                ),
                p(
                    "o",
                    ParamKind::Ordinal {
                        values: vec![0.5, 1.0, 4.0, 1024.0],
                    },
                ),
                p(
                    "sf",
                    ParamKind::Float {
                        low: -1.0,
                        high: 2.0,
                        log: false,
                        step: Some(0.3),
                    },
                ),
                p(
                    "si",
                    ParamKind::Int {
                        low: -10,
                        high: 50,
                        log: false,
                        step: Some(5),
                    },
                ),
            ],
        }
    }

    #[test]
    fn caps_name_the_field_and_the_rule() {
        let cat = |values: Vec<String>| SearchSpace {
            parameters: vec![Parameter {
                name: "c".into(),
                kind: ParamKind::Categorical {
                    values,
                    features: Vec::new(),
                },
            }],
        };
        let mut values = vec!["a".to_string(), "b".into(), "c".into()];
        values.push("x".repeat(MAX_CATEGORY_LEN));
        cat(values.clone()).validate().unwrap();
        values[3].push('x');
        assert_eq!(
            cat(values).validate().unwrap_err().to_string(),
            format!(
                "invalid search space: parameters[0].categorical.values[3]: must be at most {MAX_CATEGORY_LEN} bytes, got {}",
                MAX_CATEGORY_LEN + 1
            )
        );
        let levels = |n: usize| (0..n).map(|i| format!("l{i}")).collect::<Vec<_>>();
        cat(levels(MAX_LEVELS)).validate().unwrap();
        let e = cat(levels(MAX_LEVELS + 1))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("parameters[0].categorical.values: must have at most 1024 values, got 1025"),
            "{e}"
        );
        let dims = |n: usize| SearchSpace {
            parameters: (0..n)
                .map(|i| Parameter {
                    name: format!("x{i}"),
                    kind: ParamKind::Float {
                        low: 0.0,
                        high: 1.0,
                        log: false,
                        step: None,
                    },
                })
                .collect(),
        };
        dims(MAX_DIMENSIONS).validate().unwrap();
        let e = dims(MAX_DIMENSIONS + 1).validate().unwrap_err().to_string();
        assert!(
            e.contains("parameters: must have at most 32 parameters, got 33"),
            "{e}"
        );
        let mut long = dims(1);
        long.parameters[0].name = "x".repeat(100_000);
        let e = long.validate().unwrap_err().to_string();
        assert!(
            e.ends_with("parameters[0].name: must be at most 64 bytes, got 100000"),
            "{e}"
        );
    }

    fn stepped() -> SearchSpace {
        SearchSpace {
            parameters: vec![
                Parameter {
                    name: "memory_mb".into(),
                    kind: ParamKind::Int {
                        low: 128,
                        high: 1024,
                        log: false,
                        step: Some(64),
                    },
                },
                Parameter {
                    name: "ratio".into(),
                    kind: ParamKind::Float {
                        low: 0.1,
                        high: 1.0,
                        log: false,
                        step: Some(0.1),
                    },
                },
            ],
        }
    }

    #[test]
    fn steps_make_a_finite_grid_that_ends_at_high() {
        let sp = stepped();
        sp.validate().unwrap();
        // (1024 - 128) / 64 + 1 = 15 memory sizes, (1.0 - 0.1) / 0.1 + 1 = 10 ratios.
        assert_eq!(sp.cardinality(), Some(150));
        assert!(sp.is_finite());
        let all: Vec<Point> = (0..150).map(|i| sp.config_at(i).unwrap()).collect();
        for c in &all {
            sp.validate_config(c).unwrap();
            let ParamValue::Number(m) = c["memory_mb"] else {
                panic!()
            };
            assert_eq!((m as i64 - 128) % 64, 0);
        }
        assert_eq!(all[14]["memory_mb"], ParamValue::Number(1024.0));
        assert_eq!(all[149]["ratio"], ParamValue::Number(1.0));
        // Every encoded point decodes onto the grid.
        for k in 0..=100 {
            let u = k as f64 / 100.0;
            sp.validate_config(&sp.decode(&[u, u])).unwrap();
        }
        // User values snap to the nearest grid point, as suggestions do.
        let c = Point::from([
            ("memory_mb".to_string(), ParamValue::Number(1000.0)),
            ("ratio".to_string(), ParamValue::Number(0.33)),
        ]);
        let s = sp.snap_config(&c).unwrap();
        assert_eq!(s["memory_mb"], ParamValue::Number(1024.0));
        assert_eq!(s["ratio"], sp.config_at(30).unwrap()["ratio"]); // k = 2
        assert!(sp.validate_config(&c).is_err());
        let out = Point::from([
            ("memory_mb".to_string(), ParamValue::Number(1100.0)),
            ("ratio".to_string(), ParamValue::Number(0.5)),
        ]);
        assert!(
            sp.snap_config(&out).is_err(),
            "out of range is refused, not clamped"
        );
    }

    #[test]
    fn unreachable_high_and_bad_steps_are_refused() {
        let err = |kind: ParamKind| {
            SearchSpace {
                parameters: vec![Parameter {
                    name: "p".into(),
                    kind,
                }],
            }
            .validate()
            .unwrap_err()
            .to_string()
        };
        let int = |low, high, log, step| ParamKind::Int {
            low,
            high,
            log,
            step: Some(step),
        };
        let float = |low, high, log, step| ParamKind::Float {
            low,
            high,
            log,
            step: Some(step),
        };
        let e = err(int(128, 1000, false, 64));
        assert!(
            e.contains("parameters[0].int.step: high must be reachable: high - low = 872 is not a multiple of step 64"),
            "{e}"
        );
        assert!(err(int(0, 10, false, 0)).contains("int.step: must be >= 1"));
        assert!(err(int(1, 10, true, 3)).contains("int.step: step and log are exclusive"));
        let e = err(float(0.0, 1.0, false, 0.3));
        assert!(
            e.contains("parameters[0].float.step: high must be reachable"),
            "{e}"
        );
        assert!(
            err(float(0.0, 1.0, false, -0.1)).contains("float.step: must be a finite number > 0")
        );
        assert!(err(float(0.0, 1.0, false, f64::NAN)).contains("float.step"));
        assert!(err(float(0.0, 1.0, false, 2.0)).contains("float.step: high must be reachable"));
    }

    fn featured(features: Vec<Vec<f64>>) -> SearchSpace {
        SearchSpace {
            parameters: vec![Parameter {
                name: "instance_type".into(),
                kind: ParamKind::Categorical {
                    values: vec!["small".into(), "medium".into(), "huge".into()],
                    features,
                },
            }],
        }
    }

    /// One observation of level `small` moves the posterior mean at its
    /// feature-space neighbour `medium` almost as much as at `small` itself,
    /// and at the far level `huge` less; without features both other levels
    /// move alike. Fixed hyperparameters (ℓ = 1, unit signal, noise 1e-6 +
    /// e^-14), so the figures are the kernel's: features 0, 0.1, 1 scale to
    /// themselves, D(small, medium) = 0.01 → k = e^-0.01 = 0.990,
    /// D(small, huge) = 1 → k = e^-1 = 0.368, and μ = k·y/(1 + noise).
    #[test]
    fn level_features_let_an_observation_inform_its_neighbours() {
        use super::super::gp::Gp;
        use super::super::kernel::Hyper;
        let h = Hyper {
            log_ls: vec![],
            log_cat_ls: vec![0.0],
            log_signal: 0.0,
            log_noise: -14.0,
        };
        let mean_at = |sp: &SearchSpace| {
            let gp = Gp::with_levels(vec![vec![0.0]], vec![1.0], &h, sp.level_metric()).unwrap();
            gp.predict(&[vec![1.0], vec![2.0]]).0
        };
        let with = mean_at(&featured(vec![vec![0.0], vec![0.1], vec![1.0]]));
        let without = mean_at(&featured(vec![]));
        assert!((with[0] - (-0.01f64).exp()).abs() < 1e-4, "{with:?}");
        assert!((with[1] - (-1.0f64).exp()).abs() < 1e-4, "{with:?}");
        assert!((without[0] - (-1.0f64).exp()).abs() < 1e-4, "{without:?}");
        assert!((without[0] - without[1]).abs() < 1e-12);
        assert!(with[0] > without[0] + 0.5 && with[0] > with[1] + 0.5);
        // Columns on other scales weigh alike after min-max scaling:
        // (vcpu, price) = (2, 0.1), (2, 0.11), (64, 3.0) ranks the same way.
        let scaled = mean_at(&featured(vec![
            vec![2.0, 0.1],
            vec![2.0, 0.11],
            vec![64.0, 3.0],
        ]));
        assert!(scaled[0] > 0.99 && scaled[1] < 0.37, "{scaled:?}");
    }

    #[test]
    fn bad_level_features_name_the_field_and_the_rule() {
        let e = |f: Vec<Vec<f64>>| featured(f).validate().unwrap_err().to_string();
        assert!(
            e(vec![vec![1.0], vec![2.0]]).contains(
                "parameters[0].categorical.features: must have one feature vector per level: 3 values, got 2"
            ),
            "{}",
            e(vec![vec![1.0], vec![2.0]])
        );
        let ragged = e(vec![vec![1.0], vec![2.0, 3.0], vec![1.0]]);
        assert!(
            ragged.contains("parameters[0].categorical.features[1]: every level must have as many features as the first (1), got 2"),
            "{ragged}"
        );
        let nan = e(vec![vec![1.0], vec![f64::NAN], vec![1.0]]);
        assert!(
            nan.contains("parameters[0].categorical.features[1][0]: must be finite"),
            "{nan}"
        );
        let empty = e(vec![vec![], vec![], vec![]]);
        assert!(
            empty.contains("categorical.features[0]: must have 1..=16 numbers, got 0"),
            "{empty}"
        );
        featured(vec![vec![1.0], vec![2.0], vec![5.0]])
            .validate()
            .unwrap();
    }

    proptest! {
        /// The encoded-space rounding agrees with decode → encode, and its key with
        /// the configuration's key, for any real input (out of range, NaN, ±∞).
        #[test]
        fn codec_matches_decode_encode(
            raw in prop::collection::vec(
                prop_oneof![-0.5f64..1.5, -1.0f64..4.0, Just(f64::NAN), Just(f64::INFINITY), Just(-0.0)],
                8,
            ),
        ) {
            let sp = mixed();
            let codec = Codec::new(&sp);
            let mut x = raw.clone();
            codec.snap(&mut x);
            let c = sp.decode(&raw);
            prop_assert_eq!(&sp.decode(&x), &c);
            prop_assert_eq!(codec.key(&x), sp.key(&c));
            prop_assert_eq!(codec.key(&raw), sp.key(&c));
            let e = sp.encode(&c).unwrap();
            for (a, b) in x.iter().zip(&e) {
                prop_assert!((a - b).abs() <= 1e-12, "{:?} vs {:?}", x, e);
            }
        }
    }
}
