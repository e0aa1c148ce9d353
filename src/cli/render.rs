//! What client commands print: numbers, tables, the text of each answer,
//! and the same answers as JSON.
//!
//! JSON follows the proto3 JSON mapping (lowerCamelCase field names, enums
//! by name, 64-bit integers as strings, NaN and infinities as strings,
//! absent messages and unset `optional` fields left out), with every other
//! field present even at its default value (`"created": false`), so scripts
//! need no defaults of their own. The pb types do not implement `Serialize`
//! yet; [`ToJson`] builds the same values by hand until they do (pbjson with
//! `emit_fields()` would print the same), and [`print_json`] takes any
//! `Serialize`, so switching changes nothing visible.

use std::collections::HashMap;
use std::io::Write;

use serde_json::{Map, Value as Json, json};

use super::Error;
use crate::pb;

/// Writes `text` to stdout. A closed pipe (`| head -1`) comes back as
/// [`Error::Closed`], a clean exit: `print!` would panic instead.
pub fn emit(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Prints `v` as indented JSON and a newline.
pub fn print_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<(), Error> {
    let mut text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Failed(format!("cannot write JSON: {e}")))?;
    text.push('\n');
    emit(&text)
}

// ---------------------------------------------------------------- numbers

/// Outside [1e-3, 1e6) fixed notation either hides the value (`0.0000` for
/// 3e-7) or drowns it in digits, so it switches to scientific there.
fn extreme(x: f64) -> bool {
    let a = x.abs();
    a >= 1e6 || (a > 0.0 && a < 1e-3)
}

fn non_finite(x: f64) -> Option<String> {
    if x.is_nan() {
        Some("NaN".into())
    } else if x.is_infinite() {
        Some(if x > 0.0 { "inf" } else { "-inf" }.into())
    } else {
        None
    }
}

/// A table number: `decimals` places in fixed notation for ordinary
/// magnitudes, `1.234e-7` (four significant digits) for extremes, `NaN`,
/// `inf`, `-inf`. Never `-0.0000`.
pub fn num(x: f64, decimals: usize) -> String {
    if let Some(s) = non_finite(x) {
        return s;
    }
    let x = if x == 0.0 { 0.0 } else { x };
    if extreme(x) {
        format!("{x:.3e}")
    } else {
        let s = format!("{x:.decimals$}");
        // -0.00001 rounds to "-0.0000": there is no negative zero to show.
        if s.starts_with('-') && s[1..].bytes().all(|b| b == b'0' || b == b'.') {
            s[1..].to_string()
        } else {
            s
        }
    }
}

/// A number as given (parameter values, metrics, thresholds): the shortest
/// text that reads back as the same f64, scientific for extremes (`1e-7`).
pub fn num_short(x: f64) -> String {
    if let Some(s) = non_finite(x) {
        return s;
    }
    let x = if x == 0.0 { 0.0 } else { x };
    if extreme(x) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

// ----------------------------------------------------------------- tables

#[derive(Clone, Copy)]
pub enum Align {
    Left,
    Right,
}

/// Columns as wide as their widest cell (at least `min`), two spaces apart.
/// The last column is not padded when left-aligned: no trailing spaces.
pub struct Table {
    cols: Vec<(String, Align, usize)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// `cols`: header, alignment, minimum width.
    pub fn new(cols: &[(&str, Align, usize)]) -> Table {
        Table {
            cols: cols
                .iter()
                .map(|(h, a, w)| (h.to_string(), *a, *w))
                .collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let width = |s: &str| s.chars().count();
        let widths: Vec<usize> = self
            .cols
            .iter()
            .enumerate()
            .map(|(i, (h, _, min))| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(i))
                    .map(|c| width(c))
                    .chain([width(h), *min])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut out = String::new();
            let n = self.cols.len();
            for (i, cell) in cells.enumerate().take(n) {
                if i > 0 {
                    out.push_str("  ");
                }
                let pad = widths[i].saturating_sub(width(cell));
                match self.cols[i].1 {
                    Align::Right => {
                        out.extend(std::iter::repeat_n(' ', pad));
                        out.push_str(cell);
                    }
                    Align::Left => {
                        out.push_str(cell);
                        if i + 1 < n {
                            out.extend(std::iter::repeat_n(' ', pad));
                        }
                    }
                }
            }
            out.truncate(out.trim_end().len());
            out.push('\n');
            out
        };
        let mut out = line(&mut self.cols.iter().map(|(h, _, _)| h.as_str()));
        for r in &self.rows {
            out.push_str(&line(&mut r.iter().map(String::as_str)));
        }
        out
    }
}

// ------------------------------------------------------------------- text

/// An enum's name; an unknown number (a newer server) as the number.
fn enum_name<E: TryFrom<i32>>(v: i32, name: fn(&E) -> &'static str) -> String {
    E::try_from(v).map_or_else(|_| v.to_string(), |e| name(&e).to_string())
}

/// `a=1 b=x`, sorted by name.
pub fn params(p: &HashMap<String, pb::Value>) -> String {
    let mut keys: Vec<&String> = p.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| {
            let v = match p[*k].kind.as_ref() {
                Some(pb::value::Kind::Number(x)) => num_short(*x),
                Some(pb::value::Kind::Category(c)) => c.clone(),
                None => "?".into(),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn metrics(m: &HashMap<String, f64>) -> String {
    let mut v: Vec<String> = m
        .iter()
        .map(|(k, x)| format!("{k}={}", num_short(*x)))
        .collect();
    v.sort();
    v.join(" ")
}

/// Names one per line, or `none` (e.g. `no experiments`) so an empty
/// answer is visibly an answer.
pub fn names(names: &[String], none: &str) -> String {
    if names.is_empty() {
        return format!("{none}\n");
    }
    names.iter().map(|n| format!("{n}\n")).collect()
}

pub fn experiment(r: &pb::GetExperimentResponse, threshold: Option<f64>) -> String {
    let mut out = String::new();
    if let Some(e) = &r.experiment {
        let model = enum_name(e.model, pb::RewardModel::as_str_name);
        out.push_str(&format!("experiment {}  model {model}", e.name));
        if e.half_life_seconds > 0.0 {
            out.push_str(&format!("  half-life {}s", num_short(e.half_life_seconds)));
        }
        out.push('\n');
    }
    // The interval's two ends share one width, so the brackets line up.
    let ends: Vec<(String, String)> = r
        .arms
        .iter()
        .map(|a| (num(a.lower, 4), num(a.upper, 4)))
        .collect();
    let w = ends
        .iter()
        .flat_map(|(l, u)| [l.len(), u.len()])
        .max()
        .unwrap_or(0)
        .max(10);
    let above = threshold.map(|t| format!("P(>{})", num_short(t)));
    let mut cols = vec![
        ("arm", Align::Left, 3),
        ("rewards", Align::Right, 8),
        ("mean", Align::Right, 10),
        ("95% interval", Align::Right, 0),
        ("P(best)", Align::Right, 7),
    ];
    if let Some(h) = &above {
        cols.push((h.as_str(), Align::Right, 10));
    }
    let mut t = Table::new(&cols);
    for (a, (lo, hi)) in r.arms.iter().zip(ends) {
        let name = if a.retired {
            format!("{} (retired)", a.name)
        } else {
            a.name.clone()
        };
        let mut row = vec![
            name,
            a.rewards.to_string(),
            num(a.mean, 4),
            format!("[{lo:>w$}, {hi:>w$}]"),
            num(a.prob_best, 3),
        ];
        if above.is_some() {
            row.push(a.prob_above_threshold.map_or("-".into(), |p| num(p, 4)));
        }
        t.row(row);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "P(best) from {} joint posterior draws\n",
        r.prob_best_draws
    ));
    out
}

/// The known prices of a study: each value in the trials is a cost in dollars.
fn cost_model_line(c: &pb::CostModel) -> String {
    match pb::CostModelKind::try_from(c.kind) {
        Ok(pb::CostModelKind::Lambda) => format!(
            "  cost model: LAMBDA (value = cost in $; per GB-second x86_64 {} arm64 {}, per request {}; from metrics duration_ms, requests)\n",
            num_short(c.price_per_gb_second_x86_64),
            num_short(c.price_per_gb_second_arm64),
            num_short(c.price_per_request)
        ),
        Ok(pb::CostModelKind::InstanceHours) => {
            let prices: Vec<(&String, &f64)> = c.price_per_hour.iter().collect();
            format!(
                "  cost model: INSTANCE_HOURS (value = cost in $ = price per hour x duration_ms / 3,600,000; {} instance types, ${}..${} per hour)\n",
                prices.len(),
                num_short(prices.iter().map(|p| *p.1).fold(f64::INFINITY, f64::min)),
                num_short(
                    prices
                        .iter()
                        .map(|p| *p.1)
                        .fold(f64::NEG_INFINITY, f64::max)
                ),
            )
        }
        _ => String::new(),
    }
}

pub fn study(r: &pb::GetStudyResponse) -> String {
    let mut out = String::new();
    let objective = r
        .study
        .as_ref()
        // A study with several objectives: a trial's value is the first's.
        .and_then(|s| {
            s.objective
                .clone()
                .or_else(|| s.objectives.first().cloned())
        })
        .unwrap_or_default();
    if let Some(s) = &r.study {
        let goals = if s.objectives.is_empty() {
            vec![objective.clone()]
        } else {
            s.objectives.clone()
        };
        let goals: Vec<String> = goals
            .iter()
            .map(|o| format!("{} {}", enum_name(o.goal, pb::Goal::as_str_name), o.name))
            .collect();
        out.push_str(&format!(
            "study {}  {}  ({} trials)\n",
            s.name,
            goals.join(", "),
            r.trials.len()
        ));
        if let Some(c) = &s.cost_model {
            out.push_str(&cost_model_line(c));
        }
        for c in &s.constraints {
            let lower = c.lower_bound.map(|b| format!("{} <= ", num_short(b)));
            let upper = c.upper_bound.map(|b| format!(" <= {}", num_short(b)));
            out.push_str(&format!(
                "  constraint: {}{}{}\n",
                lower.unwrap_or_default(),
                c.metric,
                upper.unwrap_or_default()
            ));
        }
    }
    let mut t = Table::new(&[
        ("trial", Align::Right, 6),
        ("state", Align::Left, 9),
        (objective.name.as_str(), Align::Right, 14),
        ("params / metrics", Align::Left, 0),
    ]);
    for tr in &r.trials {
        let reason = (!tr.reason.is_empty()).then(|| format!("({})", tr.reason));
        let rest = [
            params(&tr.params),
            metrics(&tr.metrics),
            reason.unwrap_or_default(),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("  ");
        t.row(vec![
            tr.trial_id.to_string(),
            enum_name(tr.state, pb::TrialState::as_str_name),
            tr.value.map_or("-".into(), |v| num(v, 6)),
            rest,
        ]);
    }
    out.push_str(&t.render());
    match &r.best {
        Some(b) => out.push_str(&format!(
            "best observed: trial {} {}={}  {}\n",
            b.trial_id,
            objective.name,
            b.value.map_or("-".into(), num_short),
            params(&b.params)
        )),
        None => out.push_str("best observed: none feasible yet\n"),
    }
    if let Some(rec) = &r.recommended
        && let Some(tr) = &rec.trial
    {
        out.push_str(&format!(
            "recommended:   trial {} (posterior mean {} ± {})  {}\n",
            tr.trial_id,
            num(rec.mean, 6),
            num(rec.std, 6),
            params(&tr.params)
        ));
    }
    if r.exhausted {
        out.push_str("search space exhausted: every configuration has been suggested\n");
    }
    if let Some(s) = &r.study
        && !s.objectives.is_empty()
    {
        out.push_str(&pareto_front(r, &s.objectives));
    }
    out
}

/// The Pareto front of a study with several objectives: one row per trial
/// with each objective's value, then the hypervolume and its reference.
fn pareto_front(r: &pb::GetStudyResponse, objectives: &[pb::Objective]) -> String {
    let n = r.pareto_front.len();
    let mut out = format!("pareto front: {n} trial{}\n", if n == 1 { "" } else { "s" });
    let mut columns = vec![("trial", Align::Right, 6)];
    columns.extend(
        objectives
            .iter()
            .map(|o| (o.name.as_str(), Align::Right, 14)),
    );
    columns.push(("params", Align::Left, 0));
    let mut t = Table::new(&columns);
    for tr in &r.pareto_front {
        let mut row = vec![tr.trial_id.to_string()];
        row.extend(
            objectives
                .iter()
                .map(|o| tr.metrics.get(&o.name).map_or("-".into(), |&v| num(v, 6))),
        );
        row.push(params(&tr.params));
        t.row(row);
    }
    out.push_str(&t.render());
    if let Some(hv) = r.hypervolume
        && !r.reference_point.is_empty()
    {
        // A derived reference carries float noise (31.220000000000002):
        // six decimals are plenty for reading.
        let reference: Vec<String> = r
            .reference_point
            .iter()
            .map(|&v| num_short((v * 1e6).round() / 1e6))
            .collect();
        out.push_str(&format!(
            "hypervolume: {}  (reference point {})\n",
            num(hv, 6),
            reference.join(", ")
        ));
    }
    out
}

// ------------------------------------------------------------------- JSON

/// A pb message as a proto3-JSON value (see the module documentation).
pub trait ToJson {
    fn to_json(&self) -> Json;
}

/// Doubles: numbers, except NaN and the infinities, which JSON lacks.
fn f(x: f64) -> Json {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(x)
    }
}

/// 64-bit integers are strings in proto3 JSON (JavaScript loses precision
/// past 2^53).
fn i64s(x: impl ToString) -> Json {
    Json::String(x.to_string())
}

/// Enums by name; an unknown number stays a number.
fn en<E: TryFrom<i32>>(v: i32, name: fn(&E) -> &'static str) -> Json {
    E::try_from(v).map_or_else(|_| json!(v), |e| json!(name(&e)))
}

/// An object from `(name, value)` pairs, skipping `None` (absent messages,
/// unset optionals).
fn obj<const N: usize>(fields: [(&str, Option<Json>); N]) -> Json {
    let mut m = Map::new();
    for (k, v) in fields {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    }
    Json::Object(m)
}

fn opt<T: ToJson>(m: &Option<T>) -> Option<Json> {
    m.as_ref().map(ToJson::to_json)
}

fn list<T: ToJson>(v: &[T]) -> Json {
    Json::Array(v.iter().map(ToJson::to_json).collect())
}

impl ToJson for pb::Experiment {
    fn to_json(&self) -> Json {
        let (beta, normal) = match &self.prior {
            Some(pb::experiment::Prior::BetaPrior(p)) => (Some(p.to_json()), None),
            Some(pb::experiment::Prior::NormalPrior(p)) => (None, Some(p.to_json())),
            None => (None, None),
        };
        obj([
            ("name", Some(json!(self.name))),
            ("model", Some(en(self.model, pb::RewardModel::as_str_name))),
            ("arms", Some(json!(self.arms))),
            ("betaPrior", beta),
            ("normalPrior", normal),
            ("halfLifeSeconds", Some(f(self.half_life_seconds))),
            ("retiredArms", Some(json!(self.retired_arms))),
        ])
    }
}

impl ToJson for pb::BetaPrior {
    fn to_json(&self) -> Json {
        json!({"alpha": f(self.alpha), "beta": f(self.beta)})
    }
}

impl ToJson for pb::NormalInverseGammaPrior {
    fn to_json(&self) -> Json {
        json!({
            "mean": f(self.mean),
            "kappa": f(self.kappa),
            "alpha": f(self.alpha),
            "beta": f(self.beta),
        })
    }
}

impl ToJson for pb::CreateExperimentResponse {
    fn to_json(&self) -> Json {
        obj([
            ("experiment", opt(&self.experiment)),
            ("created", Some(json!(self.created))),
        ])
    }
}

impl ToJson for pb::ArmSummary {
    fn to_json(&self) -> Json {
        obj([
            ("name", Some(json!(self.name))),
            ("retired", Some(json!(self.retired))),
            ("rewards", Some(i64s(self.rewards))),
            ("evidence", Some(f(self.evidence))),
            ("mean", Some(f(self.mean))),
            ("lower", Some(f(self.lower))),
            ("upper", Some(f(self.upper))),
            ("probBest", Some(f(self.prob_best))),
            ("probAboveThreshold", self.prob_above_threshold.map(f)),
            ("alpha", Some(f(self.alpha))),
            ("beta", Some(f(self.beta))),
            ("mu", Some(f(self.mu))),
            ("kappa", Some(f(self.kappa))),
        ])
    }
}

impl ToJson for pb::GetExperimentResponse {
    fn to_json(&self) -> Json {
        obj([
            ("experiment", opt(&self.experiment)),
            ("arms", Some(list(&self.arms))),
            ("probBestDraws", Some(json!(self.prob_best_draws))),
        ])
    }
}

impl ToJson for pb::ListExperimentsResponse {
    fn to_json(&self) -> Json {
        json!({"names": self.names, "nextPageToken": self.next_page_token})
    }
}

impl ToJson for pb::DeleteExperimentResponse {
    fn to_json(&self) -> Json {
        json!({})
    }
}

impl ToJson for pb::AddArmResponse {
    fn to_json(&self) -> Json {
        obj([
            ("experiment", opt(&self.experiment)),
            ("created", Some(json!(self.created))),
        ])
    }
}

impl ToJson for pb::RetireArmResponse {
    fn to_json(&self) -> Json {
        obj([("experiment", opt(&self.experiment))])
    }
}

impl ToJson for pb::ChooseResponse {
    fn to_json(&self) -> Json {
        json!({"arm": self.arm, "decisionId": self.decision_id, "fallback": self.fallback})
    }
}

impl ToJson for pb::RewardResponse {
    fn to_json(&self) -> Json {
        json!({"arm": self.arm, "duplicate": self.duplicate})
    }
}

impl ToJson for pb::RewardAggregateResponse {
    fn to_json(&self) -> Json {
        json!({"arm": self.arm, "duplicate": self.duplicate})
    }
}

impl ToJson for pb::Parameter {
    fn to_json(&self) -> Json {
        use pb::parameter::Kind;
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        match &self.kind {
            Some(Kind::Float(r)) => {
                m.insert(
                    "float".into(),
                    json!({"low": f(r.low), "high": f(r.high), "log": r.log, "step": f(r.step)}),
                );
            }
            Some(Kind::Int(r)) => {
                m.insert(
                    "int".into(),
                    json!({"low": i64s(r.low), "high": i64s(r.high), "log": r.log, "step": i64s(r.step)}),
                );
            }
            Some(Kind::Ordinal(o)) => {
                let values: Vec<Json> = o.values.iter().copied().map(f).collect();
                m.insert("ordinal".into(), json!({ "values": values }));
            }
            Some(Kind::Categorical(c)) => {
                let mut cat = json!({"values": c.values});
                if !c.features.is_empty() {
                    let features: Vec<Json> = c
                        .features
                        .iter()
                        .map(|l| json!({"values": l.values.iter().copied().map(f).collect::<Vec<_>>()}))
                        .collect();
                    cat["features"] = json!(features);
                }
                m.insert("categorical".into(), cat);
            }
            None => {}
        }
        Json::Object(m)
    }
}

impl ToJson for pb::Study {
    fn to_json(&self) -> Json {
        let objective = self
            .objective
            .as_ref()
            .map(|o| json!({"name": o.name, "goal": en(o.goal, pb::Goal::as_str_name)}));
        let constraints: Vec<Json> = self
            .constraints
            .iter()
            .map(|c| {
                obj([
                    ("metric", Some(json!(c.metric))),
                    ("upperBound", c.upper_bound.map(f)),
                    ("lowerBound", c.lower_bound.map(f)),
                ])
            })
            .collect();
        obj([
            ("name", Some(json!(self.name))),
            ("parameters", Some(list(&self.parameters))),
            ("objective", objective),
            ("constraints", Some(json!(constraints))),
            ("nInitial", Some(json!(self.n_initial))),
            (
                "acquisition",
                Some(en(self.acquisition, pb::Acquisition::as_str_name)),
            ),
            ("seed", Some(i64s(self.seed))),
            ("metrics", Some(json!(self.metrics))),
            (
                "costModel",
                self.cost_model.as_ref().map(|c| {
                    json!({
                        "kind": en(c.kind, pb::CostModelKind::as_str_name),
                        "pricePerGbSecondX8664": f(c.price_per_gb_second_x86_64),
                        "pricePerGbSecondArm64": f(c.price_per_gb_second_arm64),
                        "pricePerRequest": f(c.price_per_request),
                        "pricePerHour": c.price_per_hour.iter().map(|(k, v)| (k.clone(), f(*v))).collect::<Map<String, Json>>(),
                    })
                }),
            ),
            (
                "trialTimeoutSeconds",
                Some(i64s(self.trial_timeout_seconds)),
            ),
            ("maxPending", Some(json!(self.max_pending))),
            (
                "objectives",
                (!self.objectives.is_empty()).then(|| {
                    json!(self
                        .objectives
                        .iter()
                        .map(|o| json!({"name": o.name, "goal": en(o.goal, pb::Goal::as_str_name)}))
                        .collect::<Vec<_>>())
                }),
            ),
            (
                "referencePoint",
                (!self.reference_point.is_empty()).then(|| {
                    json!(
                        self.reference_point
                            .iter()
                            .map(|&v| f(v))
                            .collect::<Vec<_>>()
                    )
                }),
            ),
        ])
    }
}

impl ToJson for pb::CreateStudyResponse {
    fn to_json(&self) -> Json {
        obj([
            ("study", opt(&self.study)),
            ("created", Some(json!(self.created))),
        ])
    }
}

impl ToJson for pb::Trial {
    fn to_json(&self) -> Json {
        let params: Map<String, Json> = self
            .params
            .iter()
            .map(|(k, v)| {
                let v = match &v.kind {
                    Some(pb::value::Kind::Number(x)) => json!({ "number": f(*x) }),
                    Some(pb::value::Kind::Category(c)) => json!({ "category": c }),
                    None => json!({}),
                };
                (k.clone(), v)
            })
            .collect();
        let metrics: Map<String, Json> = self
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), f(*v)))
            .collect();
        obj([
            ("trialId", Some(i64s(self.trial_id))),
            ("params", Some(Json::Object(params))),
            ("state", Some(en(self.state, pb::TrialState::as_str_name))),
            ("value", self.value.map(f)),
            ("metrics", Some(Json::Object(metrics))),
            ("suggestedMs", Some(i64s(self.suggested_ms))),
            ("observedMs", Some(i64s(self.observed_ms))),
            ("reason", Some(json!(self.reason))),
        ])
    }
}

impl ToJson for pb::Recommendation {
    fn to_json(&self) -> Json {
        obj([
            ("trial", opt(&self.trial)),
            ("mean", Some(f(self.mean))),
            ("std", Some(f(self.std))),
        ])
    }
}

impl ToJson for pb::GetStudyResponse {
    fn to_json(&self) -> Json {
        obj([
            ("study", opt(&self.study)),
            ("trials", Some(list(&self.trials))),
            ("best", opt(&self.best)),
            ("recommended", opt(&self.recommended)),
            ("exhausted", Some(json!(self.exhausted))),
            (
                "paretoFront",
                (!self.pareto_front.is_empty()).then(|| list(&self.pareto_front)),
            ),
            ("hypervolume", self.hypervolume.map(f)),
            (
                "referencePoint",
                (!self.reference_point.is_empty()).then(|| {
                    json!(
                        self.reference_point
                            .iter()
                            .map(|&v| f(v))
                            .collect::<Vec<_>>()
                    )
                }),
            ),
        ])
    }
}

impl ToJson for pb::ListStudiesResponse {
    fn to_json(&self) -> Json {
        json!({"names": self.names, "nextPageToken": self.next_page_token})
    }
}

impl ToJson for pb::DeleteStudyResponse {
    fn to_json(&self) -> Json {
        json!({})
    }
}

impl ToJson for pb::SuggestResponse {
    fn to_json(&self) -> Json {
        json!({ "trials": list(&self.trials) })
    }
}

impl ToJson for pb::ObserveResponse {
    fn to_json(&self) -> Json {
        obj([("trial", opt(&self.trial))])
    }
}

impl ToJson for pb::AbandonTrialResponse {
    fn to_json(&self) -> Json {
        obj([("trial", opt(&self.trial))])
    }
}

impl ToJson for pb::EnqueueTrialResponse {
    fn to_json(&self) -> Json {
        obj([("trial", opt(&self.trial))])
    }
}

impl ToJson for pb::AddTrialResponse {
    fn to_json(&self) -> Json {
        obj([("trial", opt(&self.trial))])
    }
}

/// `posterior experiment verdict`: status, winner, the reason, and per arm
/// P(best), expected loss and rewards.
pub fn verdict(r: &pb::GetVerdictResponse) -> String {
    let status = pb::get_verdict_response::Status::try_from(r.status)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| r.status.to_string());
    let mut out = format!("status:  {status}\n");
    if !r.winner.is_empty() {
        out.push_str(&format!("winner:  {}\n", r.winner));
    }
    out.push_str(&format!("reason:  {}\n\n", r.reason));
    let mut t = Table::new(&[
        ("ARM", Align::Left, 0),
        ("P(BEST)", Align::Right, 0),
        ("EXP.LOSS", Align::Right, 0),
        ("REWARDS", Align::Right, 0),
    ]);
    for a in &r.arms {
        t.row(vec![
            a.name.clone(),
            num(a.prob_best, 3),
            num(a.expected_loss, 4),
            a.rewards.to_string(),
        ]);
    }
    out.push_str(&t.render());
    out
}

/// `posterior gate`: the verdict, its probabilities and the reason.
pub fn gate(r: &pb::GateResponse) -> String {
    let verdict = pb::gate_response::Verdict::try_from(r.verdict)
        .map(|s| s.as_str_name().to_string())
        .unwrap_or_else(|_| r.verdict.to_string());
    let mut out = format!(
        "verdict:               {verdict}\nP(candidate worse):    {}\n",
        num(r.prob_candidate_worse, 4)
    );
    if let Some(b) = r.prob_slo_breach {
        out.push_str(&format!("P(SLO breach):         {}\n", num(b, 4)));
    }
    out.push_str(&format!(
        "rewards:               baseline {}, candidate {}\nreason:                {}\n",
        r.baseline_rewards, r.candidate_rewards, r.reason
    ));
    out
}

impl ToJson for pb::GetVerdictResponse {
    fn to_json(&self) -> Json {
        let arms: Vec<Json> = self
            .arms
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "probBest": f(a.prob_best),
                    "expectedLoss": f(a.expected_loss),
                    "rewards": i64s(a.rewards),
                })
            })
            .collect();
        json!({
            "status": en(self.status, pb::get_verdict_response::Status::as_str_name),
            "winner": self.winner,
            "reason": self.reason,
            "arms": arms,
        })
    }
}

impl ToJson for pb::GateResponse {
    fn to_json(&self) -> Json {
        obj([
            (
                "verdict",
                Some(en(self.verdict, pb::gate_response::Verdict::as_str_name)),
            ),
            ("probCandidateWorse", Some(f(self.prob_candidate_worse))),
            ("probSloBreach", self.prob_slo_breach.map(f)),
            ("baselineRewards", Some(i64s(self.baseline_rewards))),
            ("candidateRewards", Some(i64s(self.candidate_rewards))),
            ("reason", Some(json!(self.reason))),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_numbers_in_fixed_notation() {
        assert_eq!(num(0.66667, 4), "0.6667");
        assert_eq!(num(1.0, 3), "1.000");
        assert_eq!(num(-12.5, 2), "-12.50");
        assert_eq!(num(999_999.0, 1), "999999.0");
        assert_eq!(num(0.001, 4), "0.0010");
        assert_eq!(num(0.0, 4), "0.0000");
    }

    #[test]
    fn extremes_in_scientific_notation() {
        assert_eq!(num(1.234e-7, 4), "1.234e-7");
        assert_eq!(num(-1.234e-7, 4), "-1.234e-7");
        assert_eq!(num(0.000_999_9, 4), "9.999e-4");
        assert_eq!(num(1e6, 2), "1.000e6");
        assert_eq!(num(-3.5e12, 6), "-3.500e12");
        assert_eq!(num(f64::MIN_POSITIVE, 4), "2.225e-308");
        assert_eq!(num_short(1e-7), "1e-7");
        assert_eq!(num_short(2.5e9), "2.5e9");
        assert_eq!(num_short(40.5), "40.5");
        assert_eq!(num_short(149.0), "149");
    }

    #[test]
    fn no_negative_zero_and_named_non_finite() {
        assert_eq!(num(-0.0, 4), "0.0000");
        assert_eq!(num_short(-0.0), "0");
        assert_eq!(num(f64::NAN, 4), "NaN");
        assert_eq!(num(f64::INFINITY, 4), "inf");
        assert_eq!(num(f64::NEG_INFINITY, 4), "-inf");
        assert_eq!(num_short(f64::NAN), "NaN");
        assert_eq!(f(f64::NAN), json!("NaN"));
        assert_eq!(f(f64::NEG_INFINITY), json!("-Infinity"));
    }

    #[test]
    fn table_columns_stay_aligned_whatever_the_widths() {
        let mut t = Table::new(&[("arm", Align::Left, 3), ("mean", Align::Right, 6)]);
        t.row(vec!["a".into(), num(0.5, 4)]);
        t.row(vec!["long-arm-name".into(), num(1.234e-9, 4)]);
        t.row(vec!["b".into(), num(f64::NAN, 4)]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        // Widths: the longest name (13) and the longest number (8).
        assert_eq!(lines[0], format!("{:<13}  {:>8}", "arm", "mean"));
        assert_eq!(lines[1], format!("{:<13}  {:>8}", "a", "0.5000"));
        assert_eq!(lines[2], "long-arm-name  1.234e-9");
        assert_eq!(lines[3], format!("{:<13}  {:>8}", "b", "NaN"));
        // Every line ends at the same column: right-aligned last column.
        assert!(lines.iter().all(|l| l.len() == lines[0].len()), "{text}");
    }

    #[test]
    fn experiment_table_keeps_intervals_aligned() {
        let arm = |name: &str, lower: f64, upper: f64| pb::ArmSummary {
            name: name.into(),
            mean: (lower + upper) / 2.0,
            lower,
            upper,
            prob_best: 0.5,
            ..Default::default()
        };
        let r = pb::GetExperimentResponse {
            experiment: None,
            arms: vec![arm("a", 0.1, 0.9), arm("b", -2.5e-9, 3.0e7)],
            prob_best_draws: 10,
        };
        let text = experiment(&r, None);
        let lines: Vec<&str> = text.lines().take(3).collect();
        let col = |l: &str, c: char| l.find(c);
        assert_eq!(col(lines[1], '['), col(lines[2], '['), "{text}");
        assert_eq!(col(lines[1], ','), col(lines[2], ','), "{text}");
        assert_eq!(col(lines[1], ']'), col(lines[2], ']'), "{text}");
        assert_eq!(lines[0].len(), lines[1].len(), "{text}");
    }
}
