//! Benchmark objectives (all minimized) for tests and benchmarks.

use super::space::{ParamKind, ParamValue, Parameter, Point, SearchSpace};

/// A benchmark: its space, the objective and its known global minimum.
#[derive(Debug, Clone)]
pub struct TestFn {
    pub name: &'static str,
    pub space: SearchSpace,
    pub optimum: f64,
    f: fn(&Point) -> f64,
    /// Noisy variant `f(c, z)` with `z ~ N(0, 1)`; `None` for deterministic functions.
    noisy: Option<fn(&Point, f64) -> f64>,
}

impl TestFn {
    /// The noise-free value (what regret is measured on).
    pub fn eval(&self, c: &Point) -> f64 {
        (self.f)(c)
    }
    /// The observed value given a standard normal draw `z` (ignored when noise-free).
    pub fn eval_noisy(&self, c: &Point, z: f64) -> f64 {
        match self.noisy {
            Some(g) => g(c, z),
            None => (self.f)(c),
        }
    }
}

fn num(c: &Point, k: &str) -> f64 {
    match c.get(k) {
        Some(ParamValue::Number(v)) => *v,
        _ => f64::NAN,
    }
}

fn floats(names: &[&str], low: f64, high: f64) -> SearchSpace {
    SearchSpace {
        parameters: names
            .iter()
            .map(|n| Parameter {
                name: n.to_string(),
                kind: ParamKind::Float {
                    low,
                    high,
                    log: false,
                    step: None,
                },
            })
            .collect(),
    }
}

const X6: [&str; 6] = ["x0", "x1", "x2", "x3", "x4", "x5"];

pub fn branin() -> TestFn {
    let mut space = floats(&["x0"], -5.0, 10.0);
    space
        .parameters
        .extend(floats(&["x1"], 0.0, 15.0).parameters);
    TestFn {
        name: "branin",
        space,
        optimum: 0.397_887_357_729_738,
        f: |c| {
            let (x1, x2) = (num(c, "x0"), num(c, "x1"));
            let pi = std::f64::consts::PI;
            let b = 5.1 / (4.0 * pi * pi);
            (x2 - b * x1 * x1 + 5.0 / pi * x1 - 6.0).powi(2)
                + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x1.cos()
                + 10.0
        },
        noisy: None,
    }
}

pub fn hartmann6() -> TestFn {
    TestFn {
        name: "hartmann6",
        space: floats(&X6, 0.0, 1.0),
        optimum: -3.322_368_011_415_515,
        f: |c| {
            const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
            const A: [[f64; 6]; 4] = [
                [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
                [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
                [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
                [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
            ];
            const P: [[f64; 6]; 4] = [
                [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
                [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
                [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
                [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
            ];
            let x: Vec<f64> = X6.iter().map(|k| num(c, k)).collect();
            -(0..4)
                .map(|i| {
                    let s: f64 = (0..6)
                        .map(|j| A[i][j] * (x[j] - P[i][j] * 1e-4).powi(2))
                        .sum();
                    ALPHA[i] * (-s).exp()
                })
                .sum::<f64>()
        },
        noisy: None,
    }
}

pub fn ackley5() -> TestFn {
    TestFn {
        name: "ackley5",
        space: floats(&X6[..5], -32.768, 32.768),
        optimum: 0.0,
        f: |c| {
            let x: Vec<f64> = X6[..5].iter().map(|k| num(c, k)).collect();
            let n = x.len() as f64;
            let s2 = x.iter().map(|v| v * v).sum::<f64>() / n;
            let sc = x
                .iter()
                .map(|v| (2.0 * std::f64::consts::PI * v).cos())
                .sum::<f64>()
                / n;
            -20.0 * (-0.2 * s2.sqrt()).exp() - sc.exp() + 20.0 + std::f64::consts::E
        },
        noisy: None,
    }
}

pub fn rosenbrock4() -> TestFn {
    TestFn {
        name: "rosenbrock4",
        space: floats(&X6[..4], -5.0, 10.0),
        optimum: 0.0,
        f: |c| {
            let x: Vec<f64> = X6[..4].iter().map(|k| num(c, k)).collect();
            (0..3)
                .map(|i| 100.0 * (x[i + 1] - x[i] * x[i]).powi(2) + (1.0 - x[i]).powi(2))
                .sum()
        },
        noisy: None,
    }
}

fn serverless_cost(c: &Point) -> f64 {
    // Toy cost (µ$ per 1000 items) of a batch-processing serverless function.
    let mem = num(c, "memory_mb");
    let batch = num(c, "batch_size");
    let (cold, per_item) = match c.get("runtime") {
        Some(ParamValue::Category(s)) if s == "go" => (0.08, 0.020),
        Some(ParamValue::Category(s)) if s == "node" => (0.20, 0.045),
        Some(ParamValue::Category(s)) if s == "java" => (0.70, 0.025),
        _ => (0.30, 0.060),
    };
    // CPU share grows with memory up to one vCPU at 1769 MB (Lambda-like).
    let cpu = (mem / 1769.0).min(1.0);
    let duration = cold * 0.1 + batch * per_item / cpu + 0.002 * batch.ln_1p() * batch;
    let gb_s = mem / 1024.0 * duration;
    // Latency SLO: batches longer than 10 s are penalized.
    let penalty = if duration > 10.0 {
        50.0 * (duration - 10.0)
    } else {
        0.0
    };
    (gb_s * 16.67 + 0.2) * 1000.0 / batch + penalty
}

/// Mixed discrete space: ordinal memory, log-int batch size, categorical runtime.
pub fn serverless() -> TestFn {
    let space = SearchSpace {
        parameters: vec![
            Parameter {
                name: "memory_mb".into(),
                kind: ParamKind::Ordinal {
                    values: vec![128.0, 256.0, 512.0, 1024.0, 1536.0, 2048.0, 3008.0],
                },
            },
            Parameter {
                name: "batch_size".into(),
                kind: ParamKind::Int {
                    low: 1,
                    high: 512,
                    log: true,
                    step: None,
                },
            },
            Parameter {
                name: "runtime".into(),
                kind: ParamKind::Categorical {
                    values: vec!["python".into(), "node".into(), "go".into(), "java".into()],
                    features: Vec::new(),
                },
            },
        ],
    };
    let card = space.cardinality().unwrap_or(0);
    let optimum = (0..card)
        .filter_map(|i| space.config_at(i))
        .map(|c| serverless_cost(&c))
        .fold(f64::INFINITY, f64::min);
    TestFn {
        name: "serverless",
        space,
        optimum,
        f: serverless_cost,
        noisy: None,
    }
}

/// The "serverless toy" of BENCHMARKS.md (µUSD per invocation, Lambda-shaped):
/// duration multiplied by `exp(0.05 z)`, then billed per started millisecond.
fn lambda_cost(c: &Point, z: f64) -> f64 {
    let mem = num(c, "memory_mb");
    let arm = matches!(c.get("arch"), Some(ParamValue::Category(s)) if s == "arm");
    let (slow, price) = if arm {
        (1.10, 1.33334e-5)
    } else {
        (1.00, 1.66667e-5)
    };
    let vcpu = mem / 1769.0;
    let cpu_s = 1.2 * slow * (0.75 / vcpu.min(1.0) + 0.25 / vcpu);
    let pressure = 1.0 + (400.0 / mem).powi(3);
    let duration_s = (cpu_s * pressure + 0.25) * (0.05 * z).exp();
    let billed_ms = (1000.0 * duration_s).ceil();
    (price * mem / 1024.0 * billed_ms / 1000.0 + 0.20e-6) * 1e6
}

/// Memory 128..=10240 MB in steps of 64 (159 levels, an ordinal because the
/// space has no stepped integers) × architecture {x86, arm}: 318 configurations.
pub fn serverless_toy() -> TestFn {
    let space = SearchSpace {
        parameters: vec![
            Parameter {
                name: "memory_mb".into(),
                kind: ParamKind::Ordinal {
                    values: (0..159).map(|i| 128.0 + 64.0 * i as f64).collect(),
                },
            },
            Parameter {
                name: "arch".into(),
                kind: ParamKind::Categorical {
                    values: vec!["x86".into(), "arm".into()],
                    features: Vec::new(),
                },
            },
        ],
    };
    let card = space.cardinality().unwrap_or(0);
    let optimum = (0..card)
        .filter_map(|i| space.config_at(i))
        .map(|c| lambda_cost(&c, 0.0))
        .fold(f64::INFINITY, f64::min);
    TestFn {
        name: "serverless_toy",
        space,
        optimum,
        f: |c| lambda_cost(c, 0.0),
        noisy: Some(lambda_cost),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(names: &[&str], x: &[f64]) -> Point {
        names
            .iter()
            .zip(x)
            .map(|(n, v)| (n.to_string(), ParamValue::Number(*v)))
            .collect()
    }

    #[test]
    fn known_optima() {
        let b = branin();
        assert!(
            (b.eval(&cfg(&["x0", "x1"], &[std::f64::consts::PI, 2.275])) - b.optimum).abs() < 1e-5
        );
        let h = hartmann6();
        let xs = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!((h.eval(&cfg(&X6, &xs)) - h.optimum).abs() < 1e-4);
        assert!(ackley5().eval(&cfg(&X6[..5], &[0.0; 5])).abs() < 1e-12);
        assert_eq!(rosenbrock4().eval(&cfg(&X6[..4], &[1.0; 4])), 0.0);
        let s = serverless();
        assert!(s.optimum.is_finite() && s.optimum > 0.0);
        // BENCHMARKS.md: 35.6302 µUSD at 1152 MB on arm.
        let t = serverless_toy();
        assert!((t.optimum - 35.6302).abs() < 1e-3, "{}", t.optimum);
        let mut c = Point::new();
        c.insert("memory_mb".into(), ParamValue::Number(1152.0));
        c.insert("arch".into(), ParamValue::Category("arm".into()));
        assert!((t.eval(&c) - t.optimum).abs() < 1e-9);
    }
}
