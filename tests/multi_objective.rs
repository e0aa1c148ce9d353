//! Studies with several objectives against the real server, over gRPC and
//! HTTP/JSON: Suggest/Observe on a two-objective toy problem (ZDT1 in 2-D),
//! the Pareto front and its hypervolume checked by brute force, constraints
//! keeping infeasible trials off the front, and every bad input with its code
//! and field.

mod common;
use common::number;

use std::collections::HashMap;

use common::{BACKENDS, Backend, TestServer};
use common::{http_refused, refused};
use posterior::pb::{self, optimizer_client::OptimizerClient, parameter::Kind, value};
use serde_json::{Value as Json, json};
use tonic::Code;
use tonic::transport::Channel;

async fn client(url: &str) -> OptimizerClient<Channel> {
    OptimizerClient::connect(url.to_string()).await.unwrap()
}

fn unit(name: &str) -> pb::Parameter {
    pb::Parameter {
        name: name.into(),
        kind: Some(Kind::Float(pb::FloatRange {
            low: 0.0,
            high: 1.0,
            log: false,
            step: 0.0,
        })),
    }
}

fn objective(name: &str, goal: pb::Goal) -> pb::Objective {
    pb::Objective {
        name: name.into(),
        goal: goal as i32,
    }
}

/// Two objectives with mixed goals: f1 minimized, g2 = -f2 maximized (the
/// same problem as minimizing f2).
fn zdt(name: &str) -> pb::CreateStudyRequest {
    pb::CreateStudyRequest {
        name: name.into(),
        parameters: vec![unit("x1"), unit("x2")],
        objectives: vec![
            objective("f1", pb::Goal::Minimize),
            objective("g2", pb::Goal::Maximize),
        ],
        seed: 11,
        ..Default::default()
    }
}

/// ZDT1 in two dimensions: f1 = x1, f2 = g (1 - sqrt(x1 / g)), g = 1 + 9 x2.
/// The true front is x2 = 0: f2 = 1 - sqrt(f1).
fn zdt1(x1: f64, x2: f64) -> (f64, f64) {
    let g = 1.0 + 9.0 * x2;
    (x1, g * (1.0 - (x1 / g).sqrt()))
}

/// A trial's objectives in minimization space.
fn point(t: &pb::Trial) -> [f64; 2] {
    [t.metrics["f1"], -t.metrics["g2"]]
}

fn dominates(a: [f64; 2], b: [f64; 2]) -> bool {
    a[0] <= b[0] && a[1] <= b[1] && (a[0] < b[0] || a[1] < b[1])
}

/// The front's members are completed, mutually non-dominated, and every
/// other completed trial is dominated by one of them (brute force).
#[track_caller]
fn check_front(r: &pb::GetStudyResponse) {
    assert!(!r.pareto_front.is_empty(), "an empty front");
    let completed: Vec<&pb::Trial> = r
        .trials
        .iter()
        .filter(|t| t.state == pb::TrialState::Completed as i32)
        .collect();
    let front: Vec<u64> = r.pareto_front.iter().map(|t| t.trial_id).collect();
    for a in &r.pareto_front {
        assert_eq!(a.state, pb::TrialState::Completed as i32);
        for b in &r.pareto_front {
            assert!(!dominates(point(a), point(b)), "{a:?} dominates {b:?}");
        }
    }
    for t in completed {
        let on = front.contains(&t.trial_id);
        let dominated = r.pareto_front.iter().any(|f| dominates(point(f), point(t)));
        assert_eq!(on, !dominated, "trial {}", t.trial_id);
    }
}

/// The reference the server derives: per objective, the worst completed
/// value plus 10% of the range (in the user's units, so "worst" of the
/// maximized g2 is its minimum).
fn derived_reference(r: &pb::GetStudyResponse) -> [f64; 2] {
    let pts: Vec<[f64; 2]> = r
        .trials
        .iter()
        .filter(|t| t.state == pb::TrialState::Completed as i32)
        .map(point)
        .collect();
    let mut out = [0.0; 2];
    for (j, o) in out.iter_mut().enumerate() {
        let worst = pts.iter().map(|p| p[j]).fold(f64::MIN, f64::max);
        let best = pts.iter().map(|p| p[j]).fold(f64::MAX, f64::min);
        *o = worst + 0.1 * (worst - best);
    }
    [out[0], -out[1]]
}

/// The 2-D hypervolume by inclusion–exclusion over every subset of the
/// front (the intersection of the boxes [p, r] is the box from the
/// coordinate-wise max): independent of the server's sweep.
fn hypervolume_ie(front: &[[f64; 2]], r: [f64; 2]) -> f64 {
    let n = front.len();
    assert!(n <= 16, "inclusion–exclusion over {n} points is too many");
    let mut total = 0.0;
    for mask in 1u32..(1 << n) {
        let mut lo = [f64::MIN; 2];
        let mut k = 0;
        for (i, p) in front.iter().enumerate() {
            if mask & (1 << i) != 0 {
                lo = [lo[0].max(p[0]), lo[1].max(p[1])];
                k += 1;
            }
        }
        let vol = (r[0] - lo[0]).max(0.0) * (r[1] - lo[1]).max(0.0);
        total += if k % 2 == 1 { vol } else { -vol };
    }
    total
}

/// One HTTP/1.1 request on a fresh connection: (status, JSON body).
use common::http_json as http;

fn zdt_metrics(x1: f64, x2: f64) -> HashMap<String, f64> {
    let (f1, f2) = zdt1(x1, x2);
    HashMap::from([("f1".to_string(), f1), ("g2".to_string(), -f2)])
}

#[tokio::test(flavor = "multi_thread")]
async fn two_objectives_over_grpc_find_a_front() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = client(&s.url).await;
        let created = c.create_study(zdt("z")).await.unwrap().into_inner();
        let study = created.study.unwrap();
        assert_eq!(study.objectives.len(), 2);
        assert!(study.objective.is_none(), "exclusive with objectives");
        // Re-creating the same definition is idempotent; another reference
        // point is another definition.
        let again = c.create_study(zdt("z")).await.unwrap().into_inner();
        assert!(!again.created);
        let mut other = zdt("z");
        other.reference_point = vec![2.0, -20.0];
        refused(c.create_study(other).await, Code::AlreadyExists, "z");
        for round in 0..15 {
            let t = c
                .suggest(pb::SuggestRequest {
                    study: "z".into(),
                    count: 1,
                })
                .await
                .unwrap()
                .into_inner()
                .trials;
            assert_eq!(t.len(), 1);
            let (x1, x2) = (number(&t[0], "x1"), number(&t[0], "x2"));
            if round == 0 {
                // Each objective is required in metrics.
                let e = c
                    .observe(pb::ObserveRequest {
                        study: "z".into(),
                        trial_id: t[0].trial_id,
                        metrics: HashMap::from([("f1".to_string(), x1)]),
                        ..Default::default()
                    })
                    .await;
                refused(e, Code::InvalidArgument, "metrics.g2");
            }
            let done = c
                .observe(pb::ObserveRequest {
                    study: "z".into(),
                    trial_id: t[0].trial_id,
                    // Left 0: a multi-objective study ignores it.
                    value: 0.0,
                    metrics: zdt_metrics(x1, x2),
                    failed: false,
                })
                .await
                .unwrap()
                .into_inner()
                .trial
                .unwrap();
            assert_eq!(done.value, Some(x1), "value is the first objective's");
        }
        let r = c
            .get_study(pb::GetStudyRequest { name: "z".into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.trials.len(), 15, "{backend:?}");
        check_front(&r);
        let reference = derived_reference(&r);
        assert_eq!(r.reference_point.len(), 2);
        for j in 0..2 {
            assert!(
                (r.reference_point[j] - reference[j]).abs() < 1e-9,
                "{:?} vs {reference:?}",
                r.reference_point
            );
        }
        let front: Vec<[f64; 2]> = r.pareto_front.iter().map(point).collect();
        let hv = r.hypervolume.expect("hypervolume");
        let want = hypervolume_ie(&front, [reference[0], -reference[1]]);
        assert!(
            hv > 0.0 && (hv - want).abs() < 1e-9 * want.max(1.0),
            "{hv} vs {want}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_objectives_over_http_find_a_front() {
    let s = TestServer::start(Backend::Memory).await;
    let a = s.addr();
    let h = http(
        a,
        "POST",
        "/v1/studies",
        Some(&json!({
            "name": "h",
            "parameters": [
                {"name": "x1", "float": {"low": 0, "high": 1}},
                {"name": "x2", "float": {"low": 0, "high": 1}},
            ],
            "objectives": [{"name": "f1"}, {"name": "g2", "goal": "MAXIMIZE"}],
            "referencePoint": [1.5, -11.0],
            "seed": "3",
        })),
    )
    .await;
    assert_eq!(h.0, 200, "{}", h.1);
    for _ in 0..15 {
        let t = http(a, "POST", "/v1/studies/h:suggest", Some(&json!({}))).await;
        assert_eq!(t.0, 200, "{}", t.1);
        let t = &t.1["trials"][0];
        let x1 = t["params"]["x1"]["number"].as_f64().unwrap();
        let x2 = t["params"]["x2"]["number"].as_f64().unwrap();
        let (f1, f2) = zdt1(x1, x2);
        let o = http(
            a,
            "POST",
            "/v1/studies/h:observe",
            Some(&json!({"trialId": t["trialId"], "metrics": {"f1": f1, "g2": -f2}})),
        )
        .await;
        assert_eq!(o.0, 200, "{}", o.1);
    }
    let g = http(a, "GET", "/v1/studies/h", None).await;
    assert_eq!(g.0, 200, "{}", g.1);
    assert_eq!(
        g.1["referencePoint"],
        json!([1.5, -11.0]),
        "the study's own"
    );
    // The same answer over gRPC, checked by brute force.
    let mut c = client(&s.url).await;
    let r = c
        .get_study(pb::GetStudyRequest { name: "h".into() })
        .await
        .unwrap()
        .into_inner();
    check_front(&r);
    assert_eq!(
        g.1["paretoFront"].as_array().map(Vec::len),
        Some(r.pareto_front.len())
    );
    let front: Vec<[f64; 2]> = r.pareto_front.iter().map(point).collect();
    // ZDT1 values stay within f1 <= 1 and f2 <= 10 < 11: every member adds.
    let want = hypervolume_ie(&front, [1.5, 11.0]);
    let hv = g.1["hypervolume"].as_f64().unwrap();
    assert!((hv - want).abs() < 1e-9 * want, "{hv} vs {want}");
}

#[tokio::test(flavor = "multi_thread")]
async fn constraints_keep_infeasible_trials_off_the_front() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = client(&s.url).await;
        let mut r = zdt("c");
        r.constraints = vec![pb::Constraint {
            metric: "p95_ms".into(),
            upper_bound: Some(200.0),
            lower_bound: None,
        }];
        r.reference_point = vec![4.0, -4.0];
        c.create_study(r).await.unwrap();
        let add = |f1: f64, g2: f64, p95: f64| pb::AddTrialRequest {
            study: "c".into(),
            params: HashMap::from([
                (
                    "x1".to_string(),
                    pb::Value {
                        kind: Some(value::Kind::Number(0.5)),
                    },
                ),
                (
                    "x2".to_string(),
                    pb::Value {
                        kind: Some(value::Kind::Number(0.5)),
                    },
                ),
            ]),
            metrics: HashMap::from([
                ("f1".to_string(), f1),
                ("g2".to_string(), g2),
                ("p95_ms".to_string(), p95),
            ]),
            ..Default::default()
        };
        // Trial 1 dominates everything but breaks the constraint; 2 and 3
        // trade off; 4 is dominated by 2.
        for (f1, g2, p95) in [
            (0.0, 0.0, 500.0),
            (1.0, -3.0, 100.0),
            (3.0, -1.0, 150.0),
            (2.0, -3.5, 100.0),
        ] {
            c.add_trial(add(f1, g2, p95)).await.unwrap();
        }
        let r = c
            .get_study(pb::GetStudyRequest { name: "c".into() })
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<u64> = r.pareto_front.iter().map(|t| t.trial_id).collect();
        assert_eq!(ids, vec![2, 3], "{backend:?}");
        // Minimization space: the front is (1, 3) and (3, 1), the reference
        // (4, 4). The boxes [p, r] are 3 x 1 and 1 x 3 and overlap in the
        // 1 x 1 square [3, 4]²: 3 + 3 - 1 = 5.
        assert_eq!(r.hypervolume, Some(5.0));
        assert_eq!(r.reference_point, vec![4.0, -4.0]);
        // Suggest works with the constraint model and the added trials.
        let t = c
            .suggest(pb::SuggestRequest {
                study: "c".into(),
                count: 3,
            })
            .await
            .unwrap()
            .into_inner()
            .trials;
        assert_eq!(t.len(), 3, "pending trials spread the batch");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_inputs_name_the_field() {
    let s = TestServer::start(Backend::Memory).await;
    let mut c = client(&s.url).await;
    let objectives = |names: &[&str]| -> Vec<pb::Objective> {
        names
            .iter()
            .map(|n| objective(n, pb::Goal::Minimize))
            .collect()
    };
    let mut cases: Vec<(pb::CreateStudyRequest, &str, Json)> = Vec::new();
    let mut r = zdt("b");
    r.objectives = objectives(&["a"]);
    cases.push((r, "objectives", json!({"objectives": [{"name": "a"}]})));
    let mut r = zdt("b");
    r.objectives = objectives(&["a", "b", "c", "d", "e"]);
    cases.push((
        r,
        "objectives",
        json!({"objectives": [{"name": "a"}, {"name": "b"}, {"name": "c"}, {"name": "d"}, {"name": "e"}]}),
    ));
    let mut r = zdt("b");
    r.objectives = objectives(&["a", "a"]);
    cases.push((
        r,
        "objectives[1].name",
        json!({"objectives": [{"name": "a"}, {"name": "a"}]}),
    ));
    let mut r = zdt("b");
    r.objective = Some(objective("cost", pb::Goal::Minimize));
    cases.push((
        r,
        "objectives",
        json!({"objective": {"name": "cost"}, "objectives": [{"name": "a"}, {"name": "b"}]}),
    ));
    let mut r = zdt("b");
    r.reference_point = vec![1.0, 2.0, 3.0];
    cases.push((
        r,
        "reference_point",
        json!({"objectives": [{"name": "a"}, {"name": "b"}], "referencePoint": [1, 2, 3]}),
    ));
    for (req, field, body) in cases {
        let m = refused(c.create_study(req).await, Code::InvalidArgument, field);
        assert!(m.contains(&format!("{field}: ")), "{m}");
        let mut body = body;
        body["name"] = json!("b");
        body["parameters"] = json!([{"name": "x1", "float": {"low": 0, "high": 1}}]);
        let h = http(s.addr(), "POST", "/v1/studies", Some(&body)).await;
        http_refused(&h, 400, "INVALID_ARGUMENT", field);
    }
    // Observe over HTTP without an objective's value.
    c.create_study(zdt("ok")).await.unwrap();
    let t = http(s.addr(), "POST", "/v1/studies/ok:suggest", Some(&json!({}))).await;
    let h = http(
        s.addr(),
        "POST",
        "/v1/studies/ok:observe",
        Some(
            &json!({"trialId": t.1["trials"][0]["trialId"], "value": 1.0, "metrics": {"g2": 1.0}}),
        ),
    )
    .await;
    http_refused(&h, 400, "INVALID_ARGUMENT", "metrics.f1");
}
