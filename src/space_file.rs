//! The study file of `posterior study create NAME --space FILE.toml`: a
//! search space, objective and constraints in TOML, turned into a
//! `CreateStudyRequest`. Validation of the values is the server's job; this
//! only checks the file's shape (unknown keys are errors naming them).
//!
//! ```toml
//! objective = { name = "cost_uusd", goal = "minimize" }   # or "maximize"
//! # or several (2 to 4), instead of `objective`:
//! #   [[objectives]]  name = "cost", goal = "minimize"
//! #   [[objectives]]  name = "p95_ms"
//! #   reference_point = [200e-6, 10000]   # optional; derived when absent
//! n_initial = 8            # optional; default scales with the dimension
//! acquisition = "log_ei"   # optional: log_ei | ucb | pi
//! seed = 42                # optional
//! metrics = ["p95_ms", "throughput"]  # optional: declared metric names
//! trial_timeout_seconds = 3600  # optional: abandon trials pending longer (0 = never)
//! max_pending = 64         # optional: most pending trials at once (default 256)
//!
//! [[parameters]]
//! name = "memory_mb"
//! ordinal = [128, 256, 512, 1024, 2048]
//!
//! [[parameters]]
//! name = "arch"
//! categorical = ["x86", "arm"]
//!
//! [[parameters]]
//! name = "learning_rate"
//! float = { low = 1e-4, high = 0.1, log = true }
//!
//! [[parameters]]
//! name = "batch"
//! int = { low = 8, high = 256, log = true }
//!
//! [[parameters]]
//! name = "heap_mb"
//! int = { low = 128, high = 1024, step = 64 }   # 128, 192, ..., 1024
//!
//! [[constraints]]
//! metric = "p95_ms"
//! upper_bound = 200
//!
//! [[constraints]]
//! metric = "throughput"
//! lower_bound = 100        # either bound, or both
//! ```
//!
//! Known prices (see `bo::cost`): `cost_model = "lambda"` (the space then
//! needs `memory_mb` and `arch` with levels x86_64/arm64; prices default to
//! the built-in us-east-1 list, or `[cost_model]` with `kind = "lambda"`
//! and any of `price_per_gb_second_x86_64`, `price_per_gb_second_arm64`,
//! `price_per_request`), or `cost_model = "instance_hours"` with a
//! `catalog`: a CSV or TOML file (path relative to the space file) or
//! inline `[[catalog]]` rows, each with name, vcpu, memory_gib,
//! price_per_hour and arch (x86_64 or arm64). The catalog becomes the
//! categorical `instance_type` (one level per row, in file order), its
//! prices the cost model's, and its numeric columns (vcpu, memory_gib,
//! price_per_hour, arch as 0 = x86_64 / 1 = arm64) the level features.
//!
//! ```text
//! name,vcpu,memory_gib,price_per_hour,arch
//! m5.large,2,8,0.096,x86_64
//! m6g.large,2,8,0.077,arm64
//! ```

use serde::Deserialize;

use crate::pb;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// One objective, or `objectives` (2 to 4) and optionally
    /// `reference_point`: exactly one of the two (the server checks the
    /// counts and names).
    #[serde(default)]
    objective: Option<Objective>,
    #[serde(default)]
    objectives: Vec<Objective>,
    #[serde(default)]
    reference_point: Vec<f64>,
    #[serde(default)]
    n_initial: u32,
    #[serde(default)]
    acquisition: Option<String>,
    #[serde(default)]
    seed: u64,
    #[serde(default)]
    metrics: Vec<String>,
    #[serde(default)]
    trial_timeout_seconds: u64,
    #[serde(default)]
    max_pending: u32,
    parameters: Vec<Param>,
    #[serde(default)]
    constraints: Vec<ConstraintEntry>,
    #[serde(default)]
    cost_model: Option<CostModelEntry>,
    #[serde(default)]
    catalog: Option<CatalogEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CostModelEntry {
    Kind(String),
    Table(CostModelTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CostModelTable {
    kind: String,
    #[serde(default)]
    price_per_gb_second_x86_64: f64,
    #[serde(default)]
    price_per_gb_second_arm64: f64,
    #[serde(default)]
    price_per_request: f64,
}

/// `catalog = "file.csv"` or inline `[[catalog]]` rows. Deserialized by
/// hand: serde's untagged enums buffer their input, which loses the spans
/// that give each row its line number.
#[derive(Debug)]
enum CatalogEntry {
    Path(String),
    Rows(Vec<toml::Spanned<CatalogRow>>),
}

impl<'de> Deserialize<'de> for CatalogEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = CatalogEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a catalog file path or [[catalog]] rows")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CatalogEntry, E> {
                Ok(CatalogEntry::Path(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CatalogEntry, A::Error> {
                let mut rows = Vec::new();
                while let Some(r) = seq.next_element::<toml::Spanned<CatalogRow>>()? {
                    rows.push(r);
                }
                Ok(CatalogEntry::Rows(rows))
            }
        }
        d.deserialize_any(V)
    }
}

/// One instance type of a catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogRow {
    pub name: String,
    pub vcpu: f64,
    pub memory_gib: f64,
    pub price_per_hour: f64,
    pub arch: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    catalog: Vec<toml::Spanned<CatalogRow>>,
}

/// The columns of a catalog, in the order of a level's features (arch
/// as 0 = x86_64, 1 = arm64).
pub const CATALOG_COLUMNS: [&str; 5] = ["name", "vcpu", "memory_gib", "price_per_hour", "arch"];

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The rules on one row; the error names the column.
fn check_row(r: &CatalogRow) -> Result<(), String> {
    if r.name.is_empty() {
        return Err("name: must not be empty".into());
    }
    for (col, v) in [
        ("vcpu", r.vcpu),
        ("memory_gib", r.memory_gib),
        ("price_per_hour", r.price_per_hour),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{col}: must be a finite number > 0, got {v}"));
        }
    }
    if r.arch != "x86_64" && r.arch != "arm64" {
        return Err(format!("arch: must be x86_64 or arm64, got {:?}", r.arch));
    }
    Ok(())
}

/// Rows with their line numbers, checked (and names unique); `what`
/// names the file in errors.
fn check_rows(what: &str, rows: Vec<(usize, CatalogRow)>) -> Result<Vec<CatalogRow>, String> {
    if rows.is_empty() {
        return Err(format!("{what}: the catalog has no instance types"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    for (line, r) in rows {
        check_row(&r).map_err(|e| format!("{what} line {line}: {e}"))?;
        if !seen.insert(r.name.clone()) {
            return Err(format!(
                "{what} line {line}: name: duplicate instance type {:?}",
                r.name
            ));
        }
        out.push(r);
    }
    Ok(out)
}

/// A CSV catalog: a header naming the five columns (any order), then one
/// row per instance type; blank lines and `#` comments are skipped; no
/// quoting (instance type names have no commas).
pub fn parse_catalog_csv(what: &str, text: &str) -> Result<Vec<CatalogRow>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((hline, header)) = lines.next() else {
        return Err(format!(
            "{what}: empty catalog (expected a header: {})",
            CATALOG_COLUMNS.join(",")
        ));
    };
    let cols: Vec<&str> = header.split(',').map(str::trim).collect();
    let mut idx = [0usize; 5];
    for (k, want) in CATALOG_COLUMNS.iter().enumerate() {
        idx[k] = cols.iter().position(|c| c == want).ok_or_else(|| {
            format!(
                "{what} line {hline}: the header must name the columns {} (missing {want:?})",
                CATALOG_COLUMNS.join(",")
            )
        })?;
    }
    if let Some(extra) = cols.iter().find(|c| !CATALOG_COLUMNS.contains(c)) {
        return Err(format!("{what} line {hline}: unknown column {extra:?}"));
    }
    let mut rows = Vec::new();
    for (line, l) in lines {
        let cells: Vec<&str> = l.split(',').map(str::trim).collect();
        if cells.len() != cols.len() {
            return Err(format!(
                "{what} line {line}: expected {} cells, got {}",
                cols.len(),
                cells.len()
            ));
        }
        let num = |k: usize| -> Result<f64, String> {
            let c = cells[idx[k]];
            c.parse::<f64>().map_err(|_| {
                format!(
                    "{what} line {line}: {}: not a number: {c:?}",
                    CATALOG_COLUMNS[k]
                )
            })
        };
        rows.push((
            line,
            CatalogRow {
                name: cells[idx[0]].to_string(),
                vcpu: num(1)?,
                memory_gib: num(2)?,
                price_per_hour: num(3)?,
                arch: cells[idx[4]].to_string(),
            },
        ));
    }
    check_rows(what, rows)
}

/// A TOML catalog: `[[catalog]]` tables of the five keys.
pub fn parse_catalog_toml(what: &str, text: &str) -> Result<Vec<CatalogRow>, String> {
    let f: CatalogFile = toml::from_str(text).map_err(|e| format!("{what}: {e}"))?;
    spanned_rows(what, text, f.catalog)
}

fn spanned_rows(
    what: &str,
    text: &str,
    rows: Vec<toml::Spanned<CatalogRow>>,
) -> Result<Vec<CatalogRow>, String> {
    let rows = rows
        .into_iter()
        .map(|r| (line_of(text, r.span().start), r.into_inner()))
        .collect();
    check_rows(what, rows)
}

/// The parameter `instance_type` (levels and features) and the prices of
/// a catalog.
fn catalog_parameter(
    rows: &[CatalogRow],
) -> (pb::Parameter, std::collections::HashMap<String, f64>) {
    let features = rows
        .iter()
        .map(|r| pb::LevelFeatures {
            values: vec![
                r.vcpu,
                r.memory_gib,
                r.price_per_hour,
                if r.arch == "arm64" { 1.0 } else { 0.0 },
            ],
        })
        .collect();
    let p = pb::Parameter {
        name: "instance_type".into(),
        kind: Some(pb::parameter::Kind::Categorical(pb::CategoricalValues {
            values: rows.iter().map(|r| r.name.clone()).collect(),
            features,
        })),
    };
    let prices = rows
        .iter()
        .map(|r| (r.name.clone(), r.price_per_hour))
        .collect();
    (p, prices)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Objective {
    name: String,
    #[serde(default = "minimize")]
    goal: String,
}

fn minimize() -> String {
    "minimize".into()
}

impl Objective {
    /// `field`: where the objective is in the file, for the error.
    fn into_pb(self, field: &str) -> Result<pb::Objective, String> {
        let goal = match self.goal.to_ascii_lowercase().as_str() {
            "minimize" => pb::Goal::Minimize,
            "maximize" => pb::Goal::Maximize,
            other => {
                return Err(format!(
                    "{field}.goal: must be \"minimize\" or \"maximize\", got {other:?}"
                ));
            }
        };
        Ok(pb::Objective {
            name: self.name,
            goal: goal as i32,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Range<T> {
    low: T,
    high: T,
    #[serde(default)]
    log: bool,
    step: Option<T>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Param {
    name: String,
    float: Option<Range<f64>>,
    int: Option<Range<i64>>,
    ordinal: Option<Vec<f64>>,
    categorical: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstraintEntry {
    metric: String,
    upper_bound: Option<f64>,
    lower_bound: Option<f64>,
}

/// Parse a study file into the request that creates study `name`; a
/// catalog file is read relative to the current directory.
pub fn parse(name: &str, text: &str) -> Result<pb::CreateStudyRequest, String> {
    parse_at(name, text, None)
}

/// [`parse`] for the study file in directory `base` (where a catalog path
/// is resolved).
pub fn parse_at(
    name: &str,
    text: &str,
    base: Option<&std::path::Path>,
) -> Result<pb::CreateStudyRequest, String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let objective = match (f.objective, f.objectives.is_empty()) {
        (Some(o), true) => Some(o.into_pb("objective")?),
        (None, false) => None,
        (Some(_), false) => {
            return Err(
                "objectives: exclusive with `objective`; set `objective` for one objective or `[[objectives]]` for several".into(),
            );
        }
        (None, true) => {
            return Err(
                "objective: required (objective = { name = \"...\", goal = \"minimize\" }), or [[objectives]] for several".into(),
            );
        }
    };
    let objectives = f
        .objectives
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.into_pb(&format!("objectives[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    let acquisition = match f
        .acquisition
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("log_ei") => pb::Acquisition::LogEi,
        Some("ucb") => pb::Acquisition::Ucb,
        Some("pi") => pb::Acquisition::Pi,
        Some(other) => {
            return Err(format!(
                "acquisition: must be log_ei, ucb or pi, got {other:?}"
            ));
        }
    };
    let mut parameters = Vec::with_capacity(f.parameters.len());
    for (i, p) in f.parameters.into_iter().enumerate() {
        use pb::parameter::Kind;
        let mut kinds = Vec::new();
        if let Some(r) = p.float {
            kinds.push(Kind::Float(pb::FloatRange {
                low: r.low,
                high: r.high,
                log: r.log,
                step: r.step.unwrap_or(0.0),
            }));
        }
        if let Some(r) = p.int {
            kinds.push(Kind::Int(pb::IntRange {
                low: r.low,
                high: r.high,
                log: r.log,
                step: r.step.unwrap_or(0),
            }));
        }
        if let Some(v) = p.ordinal {
            kinds.push(Kind::Ordinal(pb::OrdinalValues { values: v }));
        }
        if let Some(v) = p.categorical {
            kinds.push(Kind::Categorical(pb::CategoricalValues {
                values: v,
                features: Vec::new(),
            }));
        }
        if kinds.len() != 1 {
            return Err(format!(
                "parameters[{i}] ({}): exactly one of float, int, ordinal, categorical is required",
                p.name
            ));
        }
        parameters.push(pb::Parameter {
            name: p.name,
            kind: kinds.pop(),
        });
    }
    let kind = match &f.cost_model {
        None => None,
        Some(CostModelEntry::Kind(k)) => Some(k.clone()),
        Some(CostModelEntry::Table(t)) => Some(t.kind.clone()),
    };
    let mut cost_model = match kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => None,
        Some("lambda") => Some(pb::CostModel {
            kind: pb::CostModelKind::Lambda as i32,
            ..Default::default()
        }),
        Some("instance_hours") => Some(pb::CostModel {
            kind: pb::CostModelKind::InstanceHours as i32,
            ..Default::default()
        }),
        Some(other) => {
            return Err(format!(
                "cost_model: must be \"lambda\" or \"instance_hours\", got {other:?}"
            ));
        }
    };
    if let (Some(c), Some(CostModelEntry::Table(t))) = (cost_model.as_mut(), &f.cost_model) {
        c.price_per_gb_second_x86_64 = t.price_per_gb_second_x86_64;
        c.price_per_gb_second_arm64 = t.price_per_gb_second_arm64;
        c.price_per_request = t.price_per_request;
    }
    if let Some(catalog) = f.catalog {
        let Some(c) = cost_model
            .as_mut()
            .filter(|c| c.kind == pb::CostModelKind::InstanceHours as i32)
        else {
            return Err("catalog: only with cost_model = \"instance_hours\"".into());
        };
        if parameters.iter().any(|p| p.name == "instance_type") {
            return Err(
                "parameters: instance_type comes from the catalog; do not declare it too".into(),
            );
        }
        let rows = match catalog {
            CatalogEntry::Rows(rows) => spanned_rows("catalog", text, rows)?,
            CatalogEntry::Path(path) => {
                let full = match base {
                    Some(b) => b.join(&path),
                    None => std::path::PathBuf::from(&path),
                };
                let what = full.display().to_string();
                let body =
                    std::fs::read_to_string(&full).map_err(|e| format!("catalog: {what}: {e}"))?;
                if path.to_ascii_lowercase().ends_with(".toml") {
                    parse_catalog_toml(&what, &body)?
                } else {
                    parse_catalog_csv(&what, &body)?
                }
            }
        };
        let (p, prices) = catalog_parameter(&rows);
        parameters.push(p);
        c.price_per_hour = prices;
    }
    Ok(pb::CreateStudyRequest {
        name: name.to_string(),
        parameters,
        objective,
        constraints: f
            .constraints
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if c.upper_bound.is_none() && c.lower_bound.is_none() {
                    return Err(format!(
                        "constraints[{i}] ({}): upper_bound, lower_bound or both is required",
                        c.metric
                    ));
                }
                Ok(pb::Constraint {
                    metric: c.metric,
                    upper_bound: c.upper_bound,
                    lower_bound: c.lower_bound,
                })
            })
            .collect::<Result<_, _>>()?,
        n_initial: f.n_initial,
        acquisition: acquisition as i32,
        seed: f.seed,
        objectives,
        reference_point: f.reference_point,
        cost_model,
        metrics: f.metrics,
        trial_timeout_seconds: f.trial_timeout_seconds,
        max_pending: f.max_pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc: String = include_str!("space_file.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let r = parse("s", &doc).unwrap();
        assert_eq!(r.parameters.len(), 5);
        assert_eq!(r.constraints[0].metric, "p95_ms");
        assert_eq!(r.constraints[1].lower_bound, Some(100.0));
        assert_eq!(r.constraints[1].upper_bound, None);
        assert_eq!(r.max_pending, 64);
        assert_eq!(r.n_initial, 8);
    }

    #[test]
    fn catalog_errors_name_the_line() {
        let ok = "name,vcpu,memory_gib,price_per_hour,arch\n# comment\nm5.large,2,8,0.096,x86_64\n\nm6g.large,2,8,0.077,arm64\n";
        let rows = parse_catalog_csv("c.csv", ok).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].arch, "arm64");
        let bad = |t: &str| parse_catalog_csv("c.csv", t).unwrap_err();
        let e = bad(
            "name,vcpu,memory_gib,price_per_hour,arch\nm5.large,2,8,0.096,x86_64\nm6g.large,two,8,0.077,arm64\n",
        );
        assert_eq!(e, "c.csv line 3: vcpu: not a number: \"two\"");
        let e = bad("name,vcpu,memory_gib,price_per_hour,arch\nm5.large,2,8,-1,x86_64\n");
        assert_eq!(
            e,
            "c.csv line 2: price_per_hour: must be a finite number > 0, got -1"
        );
        let e = bad("name,vcpu,memory_gib,price_per_hour,arch\n\nm5.large,2,8,1,sparc\n");
        assert_eq!(
            e,
            "c.csv line 3: arch: must be x86_64 or arm64, got \"sparc\""
        );
        let e = bad("name,vcpu,memory_gib,price_per_hour,arch\nm5.large,2,8\n");
        assert_eq!(e, "c.csv line 2: expected 5 cells, got 3");
        let e = bad("name,vcpu,memory_gib,price,arch\n");
        assert!(
            e.starts_with("c.csv line 1: the header must name the columns"),
            "{e}"
        );
        let e = bad("name,vcpu,memory_gib,price_per_hour,arch\na,1,1,1,arm64\na,1,1,1,arm64\n");
        assert_eq!(e, "c.csv line 3: name: duplicate instance type \"a\"");
        let toml_bad = "[[catalog]]\nname = \"a\"\nvcpu = 1\nmemory_gib = 1\nprice_per_hour = 1\narch = \"arm64\"\n\n[[catalog]]\nname = \"b\"\nvcpu = 0\nmemory_gib = 1\nprice_per_hour = 1\narch = \"arm64\"\n";
        let e = parse_catalog_toml("c.toml", toml_bad).unwrap_err();
        assert!(
            e.starts_with("c.toml line 8: vcpu: must be a finite number > 0"),
            "{e}"
        );
        let e = parse_catalog_toml("c.toml", "[[catalog]]\nname = \"a\"\nvcpu = \n").unwrap_err();
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn inline_catalog_becomes_instance_type_with_features_and_prices() {
        let text = "objective = { name = \"cost_usd\" }\ncost_model = \"instance_hours\"\nparameters = []\n\n[[catalog]]\nname = \"m5.large\"\nvcpu = 2\nmemory_gib = 8\nprice_per_hour = 0.096\narch = \"x86_64\"\n\n[[catalog]]\nname = \"m6g.xlarge\"\nvcpu = 4\nmemory_gib = 16\nprice_per_hour = 0.154\narch = \"arm64\"\n";
        let r = parse("s", text).unwrap();
        let c = r.cost_model.unwrap();
        assert_eq!(c.kind, pb::CostModelKind::InstanceHours as i32);
        assert_eq!(c.price_per_hour["m6g.xlarge"], 0.154);
        let Some(pb::parameter::Kind::Categorical(cat)) = &r.parameters[0].kind else {
            panic!("{:?}", r.parameters)
        };
        assert_eq!(cat.values, vec!["m5.large", "m6g.xlarge"]);
        assert_eq!(cat.features[1].values, vec![4.0, 16.0, 0.154, 1.0]);
        let lambda = parse(
            "s",
            "objective = { name = \"c\" }\nparameters = []\n[cost_model]\nkind = \"lambda\"\nprice_per_request = 3e-7\n",
        )
        .unwrap();
        assert_eq!(lambda.cost_model.unwrap().price_per_request, 3e-7);
    }

    #[test]
    fn the_examples_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for (file, params) in [
            ("lambda.toml", 2),
            ("batch_job.toml", 2),
            ("lambda_two_objectives.toml", 2),
        ] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            let r = parse_at("s", &text, Some(&dir)).unwrap();
            assert_eq!(r.parameters.len(), params, "{file}");
            assert!(r.cost_model.is_some(), "{file}");
        }
        let text = std::fs::read_to_string(dir.join("batch_job.toml")).unwrap();
        let r = parse_at("s", &text, Some(&dir)).unwrap();
        assert_eq!(r.cost_model.unwrap().price_per_hour.len(), 14);
    }

    #[test]
    fn shape_errors_name_the_key() {
        let e = parse(
            "s",
            "objective = { name = \"c\" }\n[[parameters]]\nname = \"x\"\n",
        )
        .unwrap_err();
        assert!(e.contains("parameters[0]"), "{e}");
        let e = parse(
            "s",
            "objective = { name = \"c\" }\nparameters = []\nbogus = 1\n",
        )
        .unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn several_objectives_with_a_reference_point() {
        let text = "parameters = []\nreference_point = [2e-4, 1e4]\n\n[[objectives]]\nname = \"cost\"\n\n[[objectives]]\nname = \"throughput\"\ngoal = \"Maximize\"\n";
        let r = parse("s", text).unwrap();
        assert_eq!(r.objective, None);
        let got: Vec<(&str, i32)> = r
            .objectives
            .iter()
            .map(|o| (o.name.as_str(), o.goal))
            .collect();
        assert_eq!(
            got,
            [
                ("cost", pb::Goal::Minimize as i32),
                ("throughput", pb::Goal::Maximize as i32)
            ]
        );
        assert_eq!(r.reference_point, [2e-4, 1e4]);
        for (text, field) in [
            ("parameters = []\n", "objective"),
            (
                "objective = { name = \"a\" }\nparameters = []\n[[objectives]]\nname = \"b\"\n",
                "objectives",
            ),
            (
                "parameters = []\n[[objectives]]\nname = \"b\"\ngoal = \"up\"\n",
                "objectives[0].goal",
            ),
        ] {
            let e = parse("s", text).unwrap_err();
            assert!(e.starts_with(field), "{text}: {e}");
        }
    }
}
