//! Known prices (`cost_model`) against the real server, over gRPC and
//! HTTP/JSON on every store: trial values are the exact bills of the
//! reported durations (the expected values written out here from the
//! published prices, not computed by the server's code), Suggest honours
//! the space, the definition round-trips through each store, and every bad
//! input is refused with its code and field.

mod common;
use common::{category, number, suggest_one};

use std::collections::HashMap;

use common::{BACKENDS, Backend, TestServer};
use common::{http_refused, refused};
use posterior::pb::{self, parameter::Kind, value};
use serde_json::json;
use tonic::Code;

/// AWS Lambda us-east-1 as published: $ per GB-second and per request.
const X86_PER_GB_S: f64 = 0.0000166667;
const ARM_PER_GB_S: f64 = 0.0000133334;
const PER_REQUEST: f64 = 0.2e-6; // $0.20 per million

fn memory() -> pb::Parameter {
    pb::Parameter {
        name: "memory_mb".into(),
        kind: Some(Kind::Int(pb::IntRange {
            low: 128,
            high: 10240,
            log: false,
            step: 64,
        })),
    }
}

fn categorical(name: &str, values: &[&str], features: &[&[f64]]) -> pb::Parameter {
    pb::Parameter {
        name: name.into(),
        kind: Some(Kind::Categorical(pb::CategoricalValues {
            values: values.iter().map(|v| v.to_string()).collect(),
            features: features
                .iter()
                .map(|f| pb::LevelFeatures { values: f.to_vec() })
                .collect(),
        })),
    }
}

fn lambda(name: &str) -> pb::CreateStudyRequest {
    pb::CreateStudyRequest {
        name: name.into(),
        parameters: vec![memory(), categorical("arch", &["x86_64", "arm64"], &[])],
        objective: Some(pb::Objective {
            name: "cost_usd".into(),
            goal: pb::Goal::Minimize as i32,
        }),
        seed: 5,
        cost_model: Some(pb::CostModel {
            kind: pb::CostModelKind::Lambda as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A Lambda bill at the published prices above: `duration_ms` rounded up
/// to the next millisecond, GB-seconds at the architecture's price, plus
/// the per-request price.
fn lambda_bill(mem: f64, arm: bool, duration_ms: f64, requests: f64) -> f64 {
    let price = if arm { ARM_PER_GB_S } else { X86_PER_GB_S };
    mem / 1024.0 * duration_ms.ceil() / 1000.0 * price + PER_REQUEST * requests
}

/// The serverless toy (`bo::testfns`): duration in ms, arm 10% slower,
/// plus a fractional part so that the 1 ms rounding shows.
fn toy_duration_ms(mem: f64, arm: bool) -> f64 {
    let slow = if arm { 1.10 } else { 1.00 };
    let vcpu = mem / 1769.0;
    let cpu_s = 1.2 * slow * (0.75 / vcpu.min(1.0) + 0.25 / vcpu);
    let pressure = 1.0 + (400.0 / mem).powi(3);
    1000.0 * (cpu_s * pressure + 0.25) + 0.3
}

use common::http_json as http;

#[tokio::test(flavor = "multi_thread")]
async fn lambda_studies_bill_exactly_on_every_store() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.optimizer().await;
        let created = c.create_study(lambda("l")).await.unwrap().into_inner();
        let cm = created.study.unwrap().cost_model.expect("cost_model");
        assert_eq!(cm.kind, pb::CostModelKind::Lambda as i32);
        // 0 in the request: the built-in prices, stated in the study.
        assert_eq!(cm.price_per_gb_second_x86_64, X86_PER_GB_S);
        assert_eq!(cm.price_per_gb_second_arm64, ARM_PER_GB_S);
        assert_eq!(cm.price_per_request, PER_REQUEST);
        assert!(
            !c.create_study(lambda("l"))
                .await
                .unwrap()
                .into_inner()
                .created
        );
        let mut costs = Vec::new();
        for round in 0..14 {
            let t = suggest_one(&mut c, "l").await;
            let mem = number(&t, "memory_mb");
            assert_eq!((mem as i64 - 128) % 64, 0, "{mem} is off the 64 MB grid");
            assert!((128.0..=10240.0).contains(&mem));
            let arch = category(&t, "arch");
            let arm = arch == "arm64";
            let d = toy_duration_ms(mem, arm);
            // Every third trial reports 1000 requests.
            let requests = if round % 3 == 2 { 1000.0 } else { 1.0 };
            let mut metrics = HashMap::from([("duration_ms".to_string(), d)]);
            if requests > 1.0 {
                metrics.insert("requests".into(), requests);
            }
            let done = c
                .observe(pb::ObserveRequest {
                    study: "l".into(),
                    trial_id: t.trial_id,
                    value: 0.0,
                    metrics,
                    failed: false,
                })
                .await
                .unwrap()
                .into_inner()
                .trial
                .unwrap();
            let want = lambda_bill(mem, arm, d, requests);
            let got = done.value.expect("a cost");
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "{backend:?} {mem} MB {arch} {d} ms: {got} vs {want}"
            );
            costs.push(got);
        }
        let r = c
            .get_study(pb::GetStudyRequest { name: "l".into() })
            .await
            .unwrap()
            .into_inner();
        // The definition as stored and read back by this store.
        assert_eq!(
            r.study.as_ref().unwrap().cost_model,
            Some(cm),
            "{backend:?}"
        );
        let best = r.best.expect("best").value.expect("value");
        let min = costs.iter().copied().fold(f64::INFINITY, f64::min);
        assert_eq!(best, min, "best is the cheapest trial");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_hours_with_level_features_over_http() {
    let s = TestServer::start(Backend::Memory).await;
    let a = s.addr();
    let prices = [
        ("m5.large", 0.096),
        ("m6g.large", 0.077),
        ("c5.xlarge", 0.17),
    ];
    let created = http(
        a,
        "POST",
        "/v1/studies",
        Some(&json!({
            "name": "i",
            "parameters": [
                {"name": "threads", "int": {"low": 1, "high": 8}},
                {"name": "instance_type", "categorical": {
                    "values": ["m5.large", "m6g.large", "c5.xlarge"],
                    "features": [
                        {"values": [2, 8, 0.096, 0]},
                        {"values": [2, 8, 0.077, 1]},
                        {"values": [4, 8, 0.17, 0]},
                    ],
                }},
            ],
            "objective": {"name": "cost_usd"},
            "costModel": {"kind": "INSTANCE_HOURS", "pricePerHour": {
                "m5.large": 0.096, "m6g.large": 0.077, "c5.xlarge": 0.17,
            }},
        })),
    )
    .await;
    assert_eq!(created.0, 200, "{}", created.1);
    for _ in 0..6 {
        let t = http(a, "POST", "/v1/studies/i:suggest", Some(&json!({}))).await;
        assert_eq!(t.0, 200, "{}", t.1);
        let t = &t.1["trials"][0];
        let ty = t["params"]["instance_type"]["category"].as_str().unwrap();
        let threads = t["params"]["threads"]["number"].as_f64().unwrap();
        let d = 3_600_000.0 / threads + 1234.5;
        let o = http(
            a,
            "POST",
            "/v1/studies/i:observe",
            Some(&json!({"trialId": t["trialId"], "metrics": {"duration_ms": d}})),
        )
        .await;
        assert_eq!(o.0, 200, "{}", o.1);
        let price = prices.iter().find(|p| p.0 == ty).unwrap().1;
        // Hourly price × duration in hours (no rounding).
        let want = price * d / 3_600_000.0;
        let got = o.1["trial"]["value"].as_f64().unwrap();
        assert!((got - want).abs() <= 1e-12 * want, "{got} vs {want}");
    }
    let g = http(a, "GET", "/v1/studies/i", None).await;
    assert_eq!(g.0, 200, "{}", g.1);
    let study = &g.1["study"];
    assert_eq!(study["costModel"]["kind"], "INSTANCE_HOURS", "{study}");
    assert_eq!(study["costModel"]["pricePerHour"]["c5.xlarge"], 0.17);
    assert_eq!(
        study["parameters"][1]["categorical"]["features"][1]["values"],
        json!([2.0, 8.0, 0.077, 1.0])
    );
}

/// Each bad input: (what is wrong, the request, the field its error names).
fn bad_requests() -> Vec<(&'static str, pb::CreateStudyRequest, &'static str)> {
    let mut out = Vec::new();
    let mut r = lambda("b");
    r.parameters.remove(0);
    out.push(("no memory_mb", r, "memory_mb"));
    let mut r = lambda("b");
    r.parameters[0].kind = Some(Kind::Float(pb::FloatRange {
        low: 128.0,
        high: 1024.0,
        log: false,
        step: 0.0,
    }));
    out.push(("memory_mb a float", r, "parameters[0]"));
    let mut r = lambda("b");
    r.parameters[1] = categorical("arch", &["x86", "arm"], &[]);
    out.push(("unknown arch", r, "parameters[1].categorical.values[0]"));
    let mut r = lambda("b");
    r.parameters.remove(1);
    out.push(("no arch", r, "arch"));
    let mut r = lambda("b");
    r.cost_model.as_mut().unwrap().price_per_gb_second_arm64 = -1.0;
    out.push(("negative price", r, "cost_model.price_per_gb_second_arm64"));
    let mut r = lambda("b");
    r.cost_model.as_mut().unwrap().kind = 7;
    out.push(("unknown kind", r, "cost_model.kind"));
    let mut r = lambda("b");
    r.cost_model
        .as_mut()
        .unwrap()
        .price_per_hour
        .insert("m5.large".into(), 0.1);
    out.push(("hourly prices on LAMBDA", r, "cost_model.price_per_hour"));
    let mut r = lambda("b");
    r.acquisition = pb::Acquisition::Ucb as i32;
    out.push(("UCB", r, "acquisition"));
    let mut r = lambda("b");
    r.objective.as_mut().unwrap().goal = pb::Goal::Maximize as i32;
    out.push(("maximize a cost", r, "objective.goal"));
    let mut r = lambda("b");
    r.objective = None;
    r.objectives = vec![
        pb::Objective {
            name: "cost_usd".into(),
            goal: 0,
        },
        pb::Objective {
            name: "p95_ms".into(),
            goal: 0,
        },
    ];
    out.push((
        "several objectives, none named cost",
        r.clone(),
        "objectives",
    ));
    r.objectives[0].name = "cost".into();
    r.objectives[0].goal = pb::Goal::Maximize as i32;
    out.push(("the cost objective maximized", r, "objectives[0].goal"));
    let mut r = lambda("b");
    r.cost_model = Some(pb::CostModel {
        kind: pb::CostModelKind::InstanceHours as i32,
        ..Default::default()
    });
    out.push(("INSTANCE_HOURS without instance_type", r, "instance_type"));
    let mut r = lambda("b");
    r.parameters
        .push(categorical("instance_type", &["a", "b"], &[]));
    r.cost_model = Some(pb::CostModel {
        kind: pb::CostModelKind::InstanceHours as i32,
        price_per_hour: HashMap::from([("a".to_string(), 1.0)]),
        ..Default::default()
    });
    out.push(("a level without a price", r, "cost_model.price_per_hour"));
    let mut r = lambda("b");
    r.cost_model = None;
    r.parameters[1] = categorical("arch", &["x86_64", "arm64"], &[&[1.0]]);
    out.push((
        "one feature vector for two levels",
        r,
        "parameters[1].categorical.features",
    ));
    let mut r = lambda("b");
    r.cost_model = None;
    r.parameters[1] = categorical("arch", &["x86_64", "arm64"], &[&[1.0], &[1.0, 2.0]]);
    out.push((
        "ragged features",
        r,
        "parameters[1].categorical.features[1]",
    ));
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_name_their_field_over_grpc_and_http() {
    let s = TestServer::start(Backend::Memory).await;
    let mut c = s.optimizer().await;
    let a = s.addr();
    for (what, req, field) in bad_requests() {
        eprintln!("{what}");
        refused(
            c.create_study(req.clone()).await,
            Code::InvalidArgument,
            field,
        );
        // The same request as proto3 JSON (pbjson's mapping of the message;
        // an unknown enum number has none, its JSON spelling is below).
        if let Ok(body) = serde_json::to_value(&req) {
            http_refused(
                &http(a, "POST", "/v1/studies", Some(&body)).await,
                400,
                "INVALID_ARGUMENT",
                field,
            );
        }
    }
    let mut body = serde_json::to_value(lambda("b")).unwrap();
    body["costModel"]["kind"] = json!("SPOT");
    let h = http(a, "POST", "/v1/studies", Some(&body)).await;
    assert_eq!(h.0, 400, "{}", h.1);
    assert!(
        h.1["error"]["message"].as_str().unwrap().contains("kind"),
        "{}",
        h.1
    );
    // Observe without a duration, or with a bad one.
    c.create_study(lambda("o")).await.unwrap();
    let t = suggest_one(&mut c, "o").await;
    let observe = |metrics: HashMap<String, f64>| pb::ObserveRequest {
        study: "o".into(),
        trial_id: t.trial_id,
        value: 1.0,
        metrics,
        failed: false,
    };
    refused(
        c.observe(observe(HashMap::new())).await,
        Code::InvalidArgument,
        "metrics.duration_ms",
    );
    refused(
        c.observe(observe(HashMap::from([("duration_ms".into(), 0.0)])))
            .await,
        Code::InvalidArgument,
        "metrics.duration_ms",
    );
    refused(
        c.observe(observe(HashMap::from([
            ("duration_ms".into(), 10.0),
            ("requests".into(), -1.0),
        ])))
        .await,
        Code::InvalidArgument,
        "metrics.requests",
    );
    let h = http(
        a,
        "POST",
        "/v1/studies/o:observe",
        Some(&json!({"trialId": t.trial_id.to_string(), "metrics": {"p95_ms": 3}})),
    )
    .await;
    http_refused(&h, 400, "INVALID_ARGUMENT", "metrics.duration_ms");
    // Still pending after the refusals: a good report completes it.
    let done = c
        .observe(observe(HashMap::from([("duration_ms".into(), 100.0)])))
        .await
        .unwrap()
        .into_inner()
        .trial
        .unwrap();
    let mem = number(&t, "memory_mb");
    let want = lambda_bill(mem, category(&t, "arch") == "arm64", 100.0, 1.0);
    assert!((done.value.unwrap() - want).abs() <= 1e-12 * want);
}

/// Imported runs are billed as observed ones (at the snapped memory),
/// batches with pending trials stay distinct and on the grid, and the
/// slices are costs in dollars: along memory at the recommended arch, the
/// cheapest predicted point is within the range the toy's costs span.
#[tokio::test(flavor = "multi_thread")]
async fn add_trial_batches_and_slices_with_known_prices() {
    let s = TestServer::start(Backend::Memory).await;
    let mut c = s.optimizer().await;
    c.create_study(lambda("a")).await.unwrap();
    let number_value = |x: f64| pb::Value {
        kind: Some(value::Kind::Number(x)),
    };
    let category_value = |x: &str| pb::Value {
        kind: Some(value::Kind::Category(x.into())),
    };
    // 700 MB snaps to 704 (128 + 9 × 64), and the bill is 704 MB's.
    let added = c
        .add_trial(pb::AddTrialRequest {
            study: "a".into(),
            params: HashMap::from([
                ("memory_mb".to_string(), number_value(700.0)),
                ("arch".to_string(), category_value("arm64")),
            ]),
            value: 0.0,
            metrics: HashMap::from([("duration_ms".to_string(), 999.2)]),
            failed: false,
        })
        .await
        .unwrap()
        .into_inner()
        .trial
        .unwrap();
    assert_eq!(number(&added, "memory_mb"), 704.0);
    let want = 704.0 / 1024.0 * 1000.0 / 1000.0 * ARM_PER_GB_S + PER_REQUEST;
    assert!((added.value.unwrap() - want).abs() <= 1e-12 * want);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..4 {
        let batch = c
            .suggest(pb::SuggestRequest {
                study: "a".into(),
                count: 4,
            })
            .await
            .unwrap()
            .into_inner()
            .trials;
        assert_eq!(batch.len(), 4);
        for t in &batch {
            let mem = number(t, "memory_mb");
            assert_eq!((mem as i64 - 128) % 64, 0);
            assert!(seen.insert((mem as i64, category(t, "arch"))), "{t:?}");
        }
        for t in batch {
            let mem = number(&t, "memory_mb");
            let d = toy_duration_ms(mem, category(&t, "arch") == "arm64");
            c.observe(pb::ObserveRequest {
                study: "a".into(),
                trial_id: t.trial_id,
                metrics: HashMap::from([("duration_ms".to_string(), d)]),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    }
    let r = c
        .get_study(pb::GetStudyRequest { name: "a".into() })
        .await
        .unwrap()
        .into_inner();
    let values: Vec<f64> = r.trials.iter().filter_map(|t| t.value).collect();
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
    let sl = c
        .get_study_slices(pb::GetStudySlicesRequest {
            name: "a".into(),
            points: Some(20),
        })
        .await
        .unwrap()
        .into_inner();
    let memory = sl
        .slices
        .iter()
        .find(|s| s.parameter == "memory_mb")
        .unwrap();
    let cheapest = memory.mean.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        cheapest > 0.5 * lo && cheapest < hi,
        "slice minimum {cheapest} outside the observed costs [{lo}, {hi}]"
    );
    let rec = r.recommended.expect("recommended");
    assert!(rec.mean > 0.0 && rec.mean < 2.0 * lo, "{rec:?} vs {lo}");
}

/// The LAMBDA toy with two objectives, cost and p95 duration (the
/// serverless trade-off): the `cost` objective is posterior's exact bill of
/// the reported duration, the front is the brute-force non-dominated set
/// of (cost, p95), and reporting the cost or leaving out p95 is refused.
#[tokio::test(flavor = "multi_thread")]
async fn cost_and_latency_as_two_objectives_on_every_store() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.optimizer().await;
        let mut req = lambda("two");
        req.objective = None;
        // The cost second: which objective is priced goes by its name.
        req.objectives = vec![
            pb::Objective {
                name: "p95_ms".into(),
                goal: pb::Goal::Minimize as i32,
            },
            pb::Objective {
                name: "cost".into(),
                goal: pb::Goal::Minimize as i32,
            },
        ];
        c.create_study(req).await.unwrap();
        for round in 0..12 {
            let t = suggest_one(&mut c, "two").await;
            let (mem, arm) = (number(&t, "memory_mb"), category(&t, "arch") == "arm64");
            let d = toy_duration_ms(mem, arm);
            let observe = |metrics: HashMap<String, f64>| pb::ObserveRequest {
                study: "two".into(),
                trial_id: t.trial_id,
                value: 0.0,
                metrics,
                failed: false,
            };
            if round == 0 {
                refused(
                    c.observe(observe(HashMap::from([
                        ("duration_ms".into(), d),
                        ("p95_ms".into(), 1.5 * d),
                        ("cost".into(), 1.0),
                    ])))
                    .await,
                    Code::InvalidArgument,
                    "metrics.cost",
                );
                refused(
                    c.observe(observe(HashMap::from([("duration_ms".into(), d)])))
                        .await,
                    Code::InvalidArgument,
                    "metrics.p95_ms",
                );
            }
            let done = c
                .observe(observe(HashMap::from([
                    ("duration_ms".into(), d),
                    ("p95_ms".into(), 1.5 * d),
                ])))
                .await
                .unwrap()
                .into_inner()
                .trial
                .unwrap();
            let want = lambda_bill(mem, arm, d, 1.0);
            let got = done.metrics["cost"];
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "{backend:?} {mem} MB: {got} vs {want}"
            );
            assert_eq!(done.value, Some(1.5 * d), "value is the first objective's");
        }
        let r = c
            .get_study(pb::GetStudyRequest { name: "two".into() })
            .await
            .unwrap()
            .into_inner();
        let point = |t: &pb::Trial| (t.metrics["p95_ms"], t.metrics["cost"]);
        let dominates =
            |a: (f64, f64), b: (f64, f64)| a.0 <= b.0 && a.1 <= b.1 && (a.0 < b.0 || a.1 < b.1);
        let front: Vec<u64> = r.pareto_front.iter().map(|t| t.trial_id).collect();
        assert!(!front.is_empty(), "{backend:?}: an empty front");
        for t in r
            .trials
            .iter()
            .filter(|t| t.state == pb::TrialState::Completed as i32)
        {
            let dominated = r
                .trials
                .iter()
                .filter(|u| u.state == pb::TrialState::Completed as i32)
                .any(|u| dominates(point(u), point(t)));
            assert_eq!(
                front.contains(&t.trial_id),
                !dominated,
                "{backend:?}: trial {}",
                t.trial_id
            );
        }
        assert!(r.hypervolume.is_some_and(|h| h > 0.0), "{backend:?}");
    }
}
