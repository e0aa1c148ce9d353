//! Black-box tests of `posterior.v1.Optimizer` over gRPC, on both stores.

mod common;
use common::{category, number};

use std::collections::{HashMap, HashSet};

use common::{BACKENDS, RedisServer, TestServer, start_on_redis};
use posterior::pb::{self, optimizer_client::OptimizerClient, parameter::Kind};
use tonic::Code;
use tonic::transport::Channel;

async fn client(url: &str) -> OptimizerClient<Channel> {
    OptimizerClient::connect(url.to_string()).await.unwrap()
}

fn param(name: &str, kind: Kind) -> pb::Parameter {
    pb::Parameter {
        name: name.into(),
        kind: Some(kind),
    }
}

fn mixed_study(name: &str) -> pb::CreateStudyRequest {
    pb::CreateStudyRequest {
        name: name.into(),
        parameters: vec![
            param(
                "lr",
                Kind::Float(pb::FloatRange {
                    low: 1e-4,
                    high: 1e-1,
                    log: true,
                    step: 0.0,
                }),
            ),
            param(
                "layers",
                Kind::Int(pb::IntRange {
                    low: 1,
                    high: 8,
                    log: false,
                    step: 0,
                }),
            ),
            param(
                "memory_mb",
                Kind::Ordinal(pb::OrdinalValues {
                    values: vec![128.0, 256.0, 512.0, 1024.0],
                }),
            ),
            param(
                "arch",
                Kind::Categorical(pb::CategoricalValues {
                    values: vec!["x86".into(), "arm".into()],
                    ..Default::default()
                }),
            ),
        ],
        objective: Some(pb::Objective {
            name: "loss".into(),
            goal: pb::Goal::Minimize as i32,
        }),
        constraints: vec![],
        n_initial: 4,
        acquisition: pb::Acquisition::LogEi as i32,
        seed: 11,
        metrics: vec![],
        ..Default::default()
    }
}

/// A smooth toy objective over the mixed space; its minimum is near lr=1e-2,
/// layers=3, memory 512, arm.
fn toy_loss(t: &pb::Trial) -> f64 {
    let lr = number(t, "lr").log10() + 2.0;
    let layers = number(t, "layers") - 3.0;
    let mem = (number(t, "memory_mb").log2() - 9.0).abs();
    let arch = if category(t, "arch") == "arm" {
        0.0
    } else {
        0.5
    };
    lr * lr + 0.1 * layers * layers + 0.3 * mem + arch
}

#[tokio::test]
async fn suggestions_are_in_the_space_and_of_the_declared_types() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = client(&s.url).await;
        assert!(
            c.create_study(mixed_study("mixed"))
                .await
                .unwrap()
                .into_inner()
                .created
        );
        // Identical re-create is idempotent; a different one conflicts.
        assert!(
            !c.create_study(mixed_study("mixed"))
                .await
                .unwrap()
                .into_inner()
                .created
        );
        let mut other = mixed_study("mixed");
        other.seed = 12;
        assert_eq!(
            c.create_study(other).await.unwrap_err().code(),
            Code::AlreadyExists
        );

        let mut seen = HashSet::new();
        for round in 0..12 {
            let trials = c
                .suggest(pb::SuggestRequest {
                    study: "mixed".into(),
                    count: 2,
                })
                .await
                .unwrap()
                .into_inner()
                .trials;
            assert_eq!(trials.len(), 2);
            for t in trials {
                let lr = number(&t, "lr");
                assert!((1e-4..=1e-1).contains(&lr), "{lr}");
                let layers = number(&t, "layers");
                assert!(
                    layers.fract() == 0.0 && (1.0..=8.0).contains(&layers),
                    "{layers}"
                );
                assert!([128.0, 256.0, 512.0, 1024.0].contains(&number(&t, "memory_mb")));
                assert!(["x86", "arm"].contains(&category(&t, "arch").as_str()));
                assert_eq!(
                    pb::TrialState::try_from(t.state),
                    Ok(pb::TrialState::Pending)
                );
                assert!(seen.insert(t.trial_id));
                let v = toy_loss(&t);
                let o = c
                    .observe(pb::ObserveRequest {
                        study: "mixed".into(),
                        trial_id: t.trial_id,
                        value: v,
                        metrics: HashMap::new(),
                        failed: round == 0 && t.trial_id == 1,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(o.trial.unwrap().trial_id, t.trial_id);
            }
        }
        let g = c
            .get_study(pb::GetStudyRequest {
                name: "mixed".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(g.trials.len(), 24);
        assert_eq!(
            g.trials
                .iter()
                .filter(|t| t.state == pb::TrialState::Failed as i32)
                .count(),
            1
        );
        let best = g.best.unwrap();
        let best_value = g
            .trials
            .iter()
            .filter_map(|t| t.value)
            .fold(f64::INFINITY, f64::min);
        assert_eq!(best.value, Some(best_value), "{backend:?}");
        let rec = g.recommended.unwrap();
        assert!(rec.std >= 0.0 && rec.mean.is_finite());
        assert!(rec.trial.unwrap().value.is_some());
        let names = c
            .list_studies(pb::ListStudiesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .names;
        assert_eq!(names, vec!["mixed".to_string()]);
        c.delete_study(pb::DeleteStudyRequest {
            name: "mixed".into(),
        })
        .await
        .unwrap();
        assert_eq!(
            c.get_study(pb::GetStudyRequest {
                name: "mixed".into()
            })
            .await
            .unwrap_err()
            .code(),
            Code::NotFound
        );
    }
}

#[tokio::test]
async fn a_trial_is_observed_once_and_failed_configurations_are_never_resuggested() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = client(&s.url).await;
        // A finite space of 2 x 3 = 6 configurations.
        let req = pb::CreateStudyRequest {
            name: "finite".into(),
            parameters: vec![
                param(
                    "arch",
                    Kind::Categorical(pb::CategoricalValues {
                        values: vec!["x86".into(), "arm".into()],
                        ..Default::default()
                    }),
                ),
                param(
                    "size",
                    Kind::Ordinal(pb::OrdinalValues {
                        values: vec![1.0, 2.0, 4.0],
                    }),
                ),
            ],
            objective: Some(pb::Objective {
                name: "cost".into(),
                goal: pb::Goal::Minimize as i32,
            }),
            n_initial: 2,
            ..Default::default()
        };
        c.create_study(req).await.unwrap();
        let mut configs = HashSet::new();
        let mut failed_config = None;
        for i in 0..6 {
            let t = c
                .suggest(pb::SuggestRequest {
                    study: "finite".into(),
                    count: 1,
                })
                .await
                .unwrap()
                .into_inner()
                .trials
                .remove(0);
            let key = (category(&t, "arch"), number(&t, "size").to_bits());
            assert!(
                configs.insert(key.clone()),
                "{backend:?}: configuration suggested twice"
            );
            let failed = i == 0;
            if failed {
                failed_config = Some(key);
            }
            c.observe(pb::ObserveRequest {
                study: "finite".into(),
                trial_id: t.trial_id,
                value: i as f64,
                metrics: HashMap::new(),
                failed,
            })
            .await
            .unwrap();
            let again = c
                .observe(pb::ObserveRequest {
                    study: "finite".into(),
                    trial_id: t.trial_id,
                    value: 0.0,
                    metrics: HashMap::new(),
                    failed: false,
                })
                .await
                .unwrap_err();
            assert_eq!(again.code(), Code::FailedPrecondition);
        }
        assert!(failed_config.is_some());
        let e = c
            .suggest(pb::SuggestRequest {
                study: "finite".into(),
                count: 1,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        assert!(e.message().contains("exhausted"), "{}", e.message());
        let g = c
            .get_study(pb::GetStudyRequest {
                name: "finite".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(g.exhausted);
        // Trial values were 0..5 with trial 1 failed: best observed is value 1.
        assert_eq!(g.best.unwrap().value, Some(1.0));
        let e = c
            .observe(pb::ObserveRequest {
                study: "finite".into(),
                trial_id: 99,
                value: 0.0,
                metrics: HashMap::new(),
                failed: false,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }
}

#[tokio::test]
async fn constraints_steer_the_recommendation_to_feasible_configurations() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = client(&s.url).await;
        // Minimize x subject to latency = 1 - x <= 0.5: the feasible optimum is x = 0.5.
        let req = pb::CreateStudyRequest {
            name: "c".into(),
            parameters: vec![param(
                "x",
                Kind::Float(pb::FloatRange {
                    low: 0.0,
                    high: 1.0,
                    log: false,
                    step: 0.0,
                }),
            )],
            objective: Some(pb::Objective {
                name: "cost".into(),
                goal: pb::Goal::Minimize as i32,
            }),
            constraints: vec![pb::Constraint {
                metric: "latency".into(),
                upper_bound: Some(0.5),
                lower_bound: None,
            }],
            seed: 3,
            ..Default::default()
        };
        c.create_study(req).await.unwrap();
        for _ in 0..15 {
            let t = c
                .suggest(pb::SuggestRequest {
                    study: "c".into(),
                    count: 1,
                })
                .await
                .unwrap()
                .into_inner()
                .trials
                .remove(0);
            let x = number(&t, "x");
            c.observe(pb::ObserveRequest {
                study: "c".into(),
                trial_id: t.trial_id,
                value: x,
                metrics: HashMap::from([("latency".to_string(), 1.0 - x)]),
                failed: false,
            })
            .await
            .unwrap();
        }
        let g = c
            .get_study(pb::GetStudyRequest { name: "c".into() })
            .await
            .unwrap()
            .into_inner();
        let best = g.best.unwrap();
        assert!(
            best.metrics["latency"] <= 0.5,
            "{backend:?}: best is infeasible"
        );
        let rec = g.recommended.unwrap().trial.unwrap();
        assert!(rec.metrics["latency"] <= 0.5);
        // The model found the boundary region: within 0.1 of the feasible optimum.
        assert!(number(&best, "x") < 0.6, "{}", number(&best, "x"));
        // Infeasible points exist (the unconstrained optimum x=0 region was probed by the design).
        assert!(
            g.trials
                .iter()
                .any(|t| t.metrics.get("latency").is_some_and(|l| *l > 0.5))
        );
    }
}

#[tokio::test]
async fn seeded_studies_are_reproducible() {
    let s = TestServer::start(common::Backend::Memory).await;
    let mut c = client(&s.url).await;
    let mut runs = Vec::new();
    for name in ["r1", "r2"] {
        c.create_study(mixed_study(name)).await.unwrap();
        let mut params = Vec::new();
        for _ in 0..8 {
            let t = c
                .suggest(pb::SuggestRequest {
                    study: name.into(),
                    count: 1,
                })
                .await
                .unwrap()
                .into_inner()
                .trials
                .remove(0);
            params.push(format!("{:?}", {
                let mut v: Vec<_> = t
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), format!("{:?}", v.kind)))
                    .collect();
                v.sort();
                v
            }));
            c.observe(pb::ObserveRequest {
                study: name.into(),
                trial_id: t.trial_id,
                value: toy_loss(&t),
                metrics: HashMap::new(),
                failed: false,
            })
            .await
            .unwrap();
        }
        runs.push(params);
    }
    assert_eq!(runs[0], runs[1]);
}

#[tokio::test]
async fn bad_input_names_the_field() {
    let s = TestServer::start(common::Backend::Memory).await;
    let mut c = client(&s.url).await;
    let with = |f: &dyn Fn(&mut pb::CreateStudyRequest)| {
        let mut r = mixed_study("bad");
        f(&mut r);
        r
    };
    let cases: Vec<(pb::CreateStudyRequest, &str)> = vec![
        (
            with(&|r| {
                r.parameters[0] = param(
                    "lr",
                    Kind::Float(pb::FloatRange {
                        low: 1.0,
                        high: 1.0,
                        log: false,
                        step: 0.0,
                    }),
                )
            }),
            "parameters[0]",
        ),
        (
            with(&|r| {
                r.parameters[0] = param(
                    "lr",
                    Kind::Float(pb::FloatRange {
                        low: 0.0,
                        high: 1.0,
                        log: true,
                        step: 0.0,
                    }),
                )
            }),
            "parameters[0]",
        ),
        (
            with(&|r| {
                r.parameters[0] = param(
                    "lr",
                    Kind::Float(pb::FloatRange {
                        low: f64::NAN,
                        high: 1.0,
                        log: false,
                        step: 0.0,
                    }),
                )
            }),
            "parameters[0]",
        ),
        (
            with(&|r| {
                r.parameters[1] = param(
                    "layers",
                    Kind::Int(pb::IntRange {
                        low: 5,
                        high: 2,
                        log: false,
                        step: 0,
                    }),
                )
            }),
            "parameters[1]",
        ),
        (
            with(&|r| {
                r.parameters[3] = param("arch", Kind::Categorical(pb::CategoricalValues::default()))
            }),
            "parameters[3]",
        ),
        (
            with(&|r| {
                r.parameters[3] = param(
                    "arch",
                    Kind::Categorical(pb::CategoricalValues {
                        values: vec!["a".into(), "a".into()],
                        ..Default::default()
                    }),
                )
            }),
            "parameters[3]",
        ),
        (with(&|r| r.parameters[0].kind = None), "parameters[0]"),
        (
            with(&|r| r.parameters[1].name = "lr".into()),
            "parameters[1]",
        ),
        (with(&|r| r.objective = None), "objective"),
        (
            with(&|r| {
                r.metrics = vec!["p95_ms".into()];
                r.constraints = vec![pb::Constraint {
                    metric: "p99_ms".into(),
                    upper_bound: Some(1.0),
                    lower_bound: None,
                }];
            }),
            "constraints[0].metric",
        ),
        (
            with(&|r| {
                r.constraints = vec![pb::Constraint {
                    metric: "p95".into(),
                    upper_bound: Some(f64::INFINITY),
                    lower_bound: None,
                }]
            }),
            "constraints[0].upper_bound",
        ),
        (
            with(&|r| {
                r.parameters = (0..=posterior::bo::MAX_DIMENSIONS)
                    .map(|i| {
                        param(
                            &format!("x{i}"),
                            Kind::Float(pb::FloatRange {
                                low: 0.0,
                                high: 1.0,
                                log: false,
                                step: 0.0,
                            }),
                        )
                    })
                    .collect()
            }),
            "parameters",
        ),
        (with(&|r| r.name = "bad name".into()), "name"),
    ];
    for (req, field) in cases {
        let e = c.create_study(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {}", e.message());
        assert!(e.message().contains(field), "{field}: {}", e.message());
    }
    c.create_study(mixed_study("ok")).await.unwrap();
    let t = c
        .suggest(pb::SuggestRequest {
            study: "ok".into(),
            count: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .trials
        .remove(0);
    for v in [f64::NAN, f64::INFINITY] {
        let e = c
            .observe(pb::ObserveRequest {
                study: "ok".into(),
                trial_id: t.trial_id,
                value: v,
                metrics: HashMap::new(),
                failed: false,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("value"));
    }
    let e = c
        .observe(pb::ObserveRequest {
            study: "ok".into(),
            trial_id: t.trial_id,
            value: 1.0,
            metrics: HashMap::from([("m".to_string(), f64::NAN)]),
            failed: false,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("metrics"));
    let e = c
        .suggest(pb::SuggestRequest {
            study: "ok".into(),
            count: 10_000,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("count"));
    let e = c
        .suggest(pb::SuggestRequest {
            study: "missing".into(),
            count: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_never_hand_out_the_same_pending_trial() {
    let redis = RedisServer::start();
    let a = start_on_redis(&redis.url()).await;
    let b = start_on_redis(&redis.url()).await;
    let urls = [format!("http://{}", a.addr), format!("http://{}", b.addr)];
    let mut admin = client(&urls[0]).await;
    admin.create_study(mixed_study("par")).await.unwrap();
    // 8 workers, 4 per replica, each asking for 3 suggestions at once.
    let mut handles = Vec::new();
    for w in 0..8 {
        let url = urls[w % 2].clone();
        handles.push(tokio::spawn(async move {
            let mut c = client(&url).await;
            let mut got = Vec::new();
            for _ in 0..3 {
                let t = c
                    .suggest(pb::SuggestRequest {
                        study: "par".into(),
                        count: 1,
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .trials
                    .remove(0);
                got.push(t);
            }
            got
        }));
    }
    let mut ids = HashSet::new();
    let mut configs = HashSet::new();
    for h in handles {
        for t in h.await.unwrap() {
            assert!(
                ids.insert(t.trial_id),
                "trial id {} handed out twice",
                t.trial_id
            );
            let mut key: Vec<_> = t
                .params
                .iter()
                .map(|(k, v)| format!("{k}={:?}", v.kind))
                .collect();
            key.sort();
            assert!(
                configs.insert(key.clone()),
                "configuration handed out twice: trial {} {key:?}",
                t.trial_id
            );
        }
    }
    assert_eq!(ids.len(), 24);
    let g = admin
        .get_study(pb::GetStudyRequest { name: "par".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.trials.len(), 24);
}
