//! The study file of `posterior study create NAME --space FILE.toml`: a
//! search space, objective and constraints in TOML, turned into a
//! `CreateStudyRequest`. Validation of the values is the server's job; this
//! only checks the file's shape (unknown keys are errors naming them).
//!
//! ```toml
//! objective = { name = "cost_uusd", goal = "minimize" }   # or "maximize"
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

use serde::Deserialize;

use crate::pb;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    objective: Objective,
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

/// Parse a study file into the request that creates study `name`.
pub fn parse(name: &str, text: &str) -> Result<pb::CreateStudyRequest, String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let goal = match f.objective.goal.to_ascii_lowercase().as_str() {
        "minimize" => pb::Goal::Minimize,
        "maximize" => pb::Goal::Maximize,
        other => {
            return Err(format!(
                "objective.goal: must be \"minimize\" or \"maximize\", got {other:?}"
            ));
        }
    };
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
    Ok(pb::CreateStudyRequest {
        name: name.to_string(),
        parameters,
        objective: Some(pb::Objective {
            name: f.objective.name,
            goal: goal as i32,
        }),
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
        // Several objectives are not in the space file (yet): CreateStudy.
        objectives: vec![],
        reference_point: vec![],
        cost_model: None,
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
}
