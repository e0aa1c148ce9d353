//! Black-box tests of `posterior.v1.Bandits` over gRPC, on both stores.

mod common;

use common::{BACKENDS, Backend, TestServer};
use posterior::pb::{self, reward_request::Target};
use tonic::Code;

fn bernoulli(name: &str, arms: &[&str]) -> pb::CreateExperimentRequest {
    pb::CreateExperimentRequest {
        name: name.into(),
        arms: arms.iter().map(|s| s.to_string()).collect(),
        model: pb::RewardModel::Bernoulli as i32,
        prior: None,
        half_life_seconds: 0.0,
        ..Default::default()
    }
}

fn by_decision(exp: &str, id: &str, value: f64) -> pb::RewardRequest {
    pb::RewardRequest {
        experiment: exp.into(),
        target: Some(Target::DecisionId(id.into())),
        value,
    }
}

fn by_arm(exp: &str, arm: &str, value: f64) -> pb::RewardRequest {
    pb::RewardRequest {
        experiment: exp.into(),
        target: Some(Target::Arm(arm.into())),
        value,
    }
}

async fn get(
    c: &mut pb::bandits_client::BanditsClient<tonic::transport::Channel>,
    name: &str,
    threshold: Option<f64>,
) -> pb::GetExperimentResponse {
    c.get_experiment(pb::GetExperimentRequest {
        name: name.into(),
        threshold,
    })
    .await
    .unwrap()
    .into_inner()
}

#[tokio::test]
async fn create_choose_reward_gives_the_exact_posterior() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        let mut req = bernoulli("exact", &["a", "b"]);
        req.prior = Some(pb::create_experiment_request::Prior::BetaPrior(
            pb::BetaPrior {
                alpha: 2.0,
                beta: 3.0,
            },
        ));
        assert!(c.create_experiment(req).await.unwrap().into_inner().created);

        // Reward every decision with a known value and track the expected
        // Beta parameters per arm independently.
        let values = [1.0, 0.0, 0.25, 1.0, 1.0, 0.0, 0.5, 1.0, 0.0, 0.75];
        let mut expect = std::collections::HashMap::from([
            ("a".to_string(), (2.0, 3.0, 0u64)),
            ("b".to_string(), (2.0, 3.0, 0u64)),
        ]);
        for v in values {
            let d = c
                .choose(pb::ChooseRequest {
                    experiment: "exact".into(),
                    eligible_arms: vec![],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let r = c
                .reward(by_decision("exact", &d.decision_id, v))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.arm, d.arm);
            assert!(!r.duplicate);
            let e = expect.get_mut(&d.arm).unwrap();
            e.0 += v;
            e.1 += 1.0 - v;
            e.2 += 1;
        }
        let g = get(&mut c, "exact", Some(0.5)).await;
        let mut total_p = 0.0;
        for arm in &g.arms {
            let (a, b, n) = expect[&arm.name];
            assert_eq!(
                (arm.alpha, arm.beta, arm.rewards),
                (a, b, n),
                "{backend:?} {}",
                arm.name
            );
            assert!((arm.mean - a / (a + b)).abs() < 1e-12);
            // Independent check of the interval and tail with statrs.
            use statrs::distribution::{Beta, ContinuousCDF};
            let d = Beta::new(a, b).unwrap();
            assert!(
                (d.cdf(arm.lower) - 0.025).abs() < 1e-6 && (d.cdf(arm.upper) - 0.975).abs() < 1e-6
            );
            assert!((arm.prob_above_threshold.unwrap() - d.sf(0.5)).abs() < 1e-9);
            total_p += arm.prob_best;
        }
        assert!((total_p - 1.0).abs() < 1e-9);
        assert_eq!(g.prob_best_draws, 10_000);
    }
}

#[tokio::test]
async fn gaussian_posterior_is_exact() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        let mut req = bernoulli("revenue", &["x"]);
        req.model = pb::RewardModel::Gaussian as i32;
        c.create_experiment(req).await.unwrap();
        let xs = [12.5, -3.0, 40.25, 7.0];
        for x in xs {
            c.reward(by_arm("revenue", "x", x)).await.unwrap();
        }
        let arm = &get(&mut c, "revenue", None).await.arms[0];
        // Default prior: mean 0, kappa 0.01, alpha 1, beta 1 (NIG closed form).
        let n = 4.0;
        let xbar = xs.iter().sum::<f64>() / n;
        let ss: f64 = xs.iter().map(|x| (x - xbar).powi(2)).sum();
        let (k0, m0, a0, b0) = (0.01, 0.0, 1.0, 1.0);
        let kn = k0 + n;
        assert!(
            (arm.mu - (k0 * m0 + n * xbar) / kn).abs() < 1e-9,
            "{backend:?}"
        );
        assert!((arm.kappa - kn).abs() < 1e-12);
        assert!((arm.alpha - (a0 + n / 2.0)).abs() < 1e-12);
        let bn = b0 + ss / 2.0 + k0 * n * (xbar - m0).powi(2) / (2.0 * kn);
        assert!((arm.beta - bn).abs() < 1e-9 * bn, "{} vs {bn}", arm.beta);
        assert_eq!(arm.rewards, 4);
    }
}

#[tokio::test]
async fn a_duplicated_reward_is_applied_once() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        c.create_experiment(bernoulli("dup", &["a"])).await.unwrap();
        let d = c
            .choose(pb::ChooseRequest {
                experiment: "dup".into(),
                eligible_arms: vec![],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let first = c
            .reward(by_decision("dup", &d.decision_id, 1.0))
            .await
            .unwrap()
            .into_inner();
        assert!(!first.duplicate);
        for _ in 0..5 {
            let again = c
                .reward(by_decision("dup", &d.decision_id, 1.0))
                .await
                .unwrap()
                .into_inner();
            assert!(again.duplicate, "{backend:?}");
        }
        let arm = &get(&mut c, "dup", None).await.arms[0];
        assert_eq!(
            (arm.rewards, arm.alpha, arm.beta),
            (1, 2.0, 1.0),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn create_is_idempotent_and_conflicts_are_already_exists() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        assert!(
            c.create_experiment(bernoulli("e", &["a", "b"]))
                .await
                .unwrap()
                .into_inner()
                .created
        );
        assert!(
            !c.create_experiment(bernoulli("e", &["a", "b"]))
                .await
                .unwrap()
                .into_inner()
                .created
        );
        let e = c
            .create_experiment(bernoulli("e", &["a", "c"]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::AlreadyExists, "{backend:?}");
        assert!(e.message().contains("name"));
        // Still idempotent after an arm was added.
        c.add_arm(pb::AddArmRequest {
            experiment: "e".into(),
            arm: "c".into(),
        })
        .await
        .unwrap();
        assert!(
            !c.create_experiment(bernoulli("e", &["a", "b"]))
                .await
                .unwrap()
                .into_inner()
                .created
        );
        let names = c
            .list_experiments(pb::ListExperimentsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .names;
        assert_eq!(names, vec!["e".to_string()]);
        c.delete_experiment(pb::DeleteExperimentRequest { name: "e".into() })
            .await
            .unwrap();
        assert!(
            c.list_experiments(pb::ListExperimentsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .names
                .is_empty()
        );
        let e = c
            .delete_experiment(pb::DeleteExperimentRequest { name: "e".into() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
    }
}

#[tokio::test]
async fn retired_arms_are_never_chosen_and_keep_their_evidence() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        c.create_experiment(bernoulli("r", &["a", "b"]))
            .await
            .unwrap();
        for _ in 0..3 {
            c.reward(by_arm("r", "a", 1.0)).await.unwrap();
        }
        // A decision issued before retirement can still be rewarded.
        let mut pending = None;
        for _ in 0..50 {
            let d = c
                .choose(pb::ChooseRequest {
                    experiment: "r".into(),
                    eligible_arms: vec![],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            if d.arm == "a" {
                pending = Some(d.decision_id);
                break;
            }
        }
        let pending = pending.expect("arm a chosen at least once in 50 tries");
        c.retire_arm(pb::RetireArmRequest {
            experiment: "r".into(),
            arm: "a".into(),
        })
        .await
        .unwrap();
        let added = c
            .add_arm(pb::AddArmRequest {
                experiment: "r".into(),
                arm: "c".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(added.created);
        for _ in 0..200 {
            let d = c
                .choose(pb::ChooseRequest {
                    experiment: "r".into(),
                    eligible_arms: vec![],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_ne!(d.arm, "a", "{backend:?}");
        }
        // Eligible list naming only the retired arm: nothing to choose.
        let e = c
            .choose(pb::ChooseRequest {
                experiment: "r".into(),
                eligible_arms: vec!["a".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        // A subset narrows the choice.
        for _ in 0..50 {
            let d = c
                .choose(pb::ChooseRequest {
                    experiment: "r".into(),
                    eligible_arms: vec!["a".into(), "c".into()],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(d.arm, "c");
        }
        c.reward(by_decision("r", &pending, 1.0)).await.unwrap();
        let g = get(&mut c, "r", None).await;
        let a = g.arms.iter().find(|x| x.name == "a").unwrap();
        assert!(a.retired);
        assert_eq!(a.rewards, 4);
        assert_eq!(a.prob_best, 0.0);
        assert_eq!(g.experiment.unwrap().retired_arms, vec!["a".to_string()]);
        // Re-adding a retired name is refused; retiring the last arm too.
        let e = c
            .add_arm(pb::AddArmRequest {
                experiment: "r".into(),
                arm: "a".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
        c.retire_arm(pb::RetireArmRequest {
            experiment: "r".into(),
            arm: "b".into(),
        })
        .await
        .unwrap();
        let e = c
            .retire_arm(pb::RetireArmRequest {
                experiment: "r".into(),
                arm: "c".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::FailedPrecondition);
    }
}

#[tokio::test]
async fn decision_ids_are_bound_to_their_experiment_and_incarnation() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        c.create_experiment(bernoulli("one", &["a"])).await.unwrap();
        c.create_experiment(bernoulli("two", &["a"])).await.unwrap();
        let d = c
            .choose(pb::ChooseRequest {
                experiment: "one".into(),
                eligible_arms: vec![],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        // Another experiment's id: rejected.
        let e = c
            .reward(by_decision("two", &d.decision_id, 1.0))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("decision_id"), "{}", e.message());
        // Altered: rejected.
        let mut forged = d.decision_id.clone().into_bytes();
        forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
        let e = c
            .reward(by_decision("one", &String::from_utf8(forged).unwrap(), 1.0))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        // Deleted and re-created: the old id is not valid for the new experiment.
        c.delete_experiment(pb::DeleteExperimentRequest { name: "one".into() })
            .await
            .unwrap();
        c.create_experiment(bernoulli("one", &["a"])).await.unwrap();
        let e = c
            .reward(by_decision("one", &d.decision_id, 1.0))
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{backend:?}");
        assert_eq!(get(&mut c, "one", None).await.arms[0].rewards, 0);
    }
}

#[tokio::test]
async fn bad_input_gets_its_code_and_names_the_field() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        c.create_experiment(bernoulli("ok", &["a", "b"]))
            .await
            .unwrap();
        let mut g = bernoulli("gauss", &["a"]);
        g.model = pb::RewardModel::Gaussian as i32;
        c.create_experiment(g).await.unwrap();

        let many: Vec<String> = (0..=posterior::bandit::MAX_ARMS)
            .map(|i| format!("arm{i}"))
            .collect();
        let mut too_many = bernoulli("big", &[]);
        too_many.arms = many.clone();
        let mut max_ok = bernoulli("big", &[]);
        max_ok.arms = many[..posterior::bandit::MAX_ARMS].to_vec();
        let mut bad_prior = bernoulli("p", &["a"]);
        bad_prior.prior = Some(pb::create_experiment_request::Prior::BetaPrior(
            pb::BetaPrior {
                alpha: 0.0,
                beta: 1.0,
            },
        ));
        let mut wrong_prior = bernoulli("p", &["a"]);
        wrong_prior.prior = Some(pb::create_experiment_request::Prior::NormalPrior(
            pb::NormalInverseGammaPrior {
                mean: 0.0,
                kappa: 1.0,
                alpha: 1.0,
                beta: 1.0,
            },
        ));
        let mut bad_model = bernoulli("m", &["a"]);
        bad_model.model = 7;
        let mut bad_hl = bernoulli("h", &["a"]);
        bad_hl.half_life_seconds = f64::NAN;

        let creates = [
            (bernoulli("", &["a"]), "name"),
            (bernoulli("has space", &["a"]), "name"),
            (bernoulli(&"x".repeat(129), &["a"]), "name"),
            (bernoulli("e", &[]), "arms"),
            (bernoulli("e", &["a", "a"]), "arms[1]"),
            (bernoulli("e", &["ok", "bad/name"]), "arms[1]"),
            (too_many, "arms"),
            (bad_prior, "beta_prior.alpha"),
            (wrong_prior, "prior"),
            (bad_model, "model"),
            (bad_hl, "half_life_seconds"),
        ];
        for (req, field) in creates {
            let e = c.create_experiment(req).await.unwrap_err();
            assert_eq!(
                e.code(),
                Code::InvalidArgument,
                "{backend:?} {field}: {}",
                e.message()
            );
            assert!(e.message().contains(field), "{field}: {}", e.message());
        }
        // 2,000 arms is within the limit.
        assert!(
            c.create_experiment(max_ok)
                .await
                .unwrap()
                .into_inner()
                .created
        );
        let d = c
            .choose(pb::ChooseRequest {
                experiment: "big".into(),
                eligible_arms: vec![],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(d.arm.starts_with("arm"));

        let rewards = [
            (by_arm("ok", "a", 1.5), Code::InvalidArgument, "value"),
            (by_arm("ok", "a", -0.1), Code::InvalidArgument, "value"),
            (by_arm("ok", "a", f64::NAN), Code::InvalidArgument, "value"),
            (
                by_arm("gauss", "a", f64::NAN),
                Code::InvalidArgument,
                "value",
            ),
            (
                by_arm("gauss", "a", f64::INFINITY),
                Code::InvalidArgument,
                "value",
            ),
            (
                by_arm("gauss", "a", f64::NEG_INFINITY),
                Code::InvalidArgument,
                "value",
            ),
            (by_arm("ok", "zzz", 1.0), Code::NotFound, "arm"),
            (by_arm("nope", "a", 1.0), Code::NotFound, "experiment"),
            (
                by_decision("ok", "garbage", 1.0),
                Code::InvalidArgument,
                "decision_id",
            ),
            (
                pb::RewardRequest {
                    experiment: "ok".into(),
                    target: None,
                    value: 1.0,
                },
                Code::InvalidArgument,
                "decision_id",
            ),
        ];
        for (req, code, field) in rewards {
            let e = c.reward(req).await.unwrap_err();
            assert_eq!(e.code(), code, "{backend:?} {field}: {}", e.message());
            assert!(e.message().contains(field), "{field}: {}", e.message());
        }
        let e = c
            .choose(pb::ChooseRequest {
                experiment: "nope".into(),
                eligible_arms: vec![],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = c
            .choose(pb::ChooseRequest {
                experiment: "ok".into(),
                eligible_arms: vec!["zz".into()],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        assert!(e.message().contains("eligible_arms[0]"));
        let e = c
            .choose(pb::ChooseRequest {
                experiment: "{bad}".into(),
                eligible_arms: vec![],
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = c
            .get_experiment(pb::GetExperimentRequest {
                name: "ok".into(),
                threshold: Some(f64::INFINITY),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("threshold"));
        let e = c
            .get_experiment(pb::GetExperimentRequest {
                name: "missing".into(),
                threshold: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = c
            .add_arm(pb::AddArmRequest {
                experiment: "missing".into(),
                arm: "a".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        let e = c
            .retire_arm(pb::RetireArmRequest {
                experiment: "ok".into(),
                arm: "zz".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::NotFound);
        // The server is still healthy after all of that.
        assert!(
            c.list_experiments(pb::ListExperimentsRequest::default())
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn store_outage_is_unavailable_and_recovers_by_itself() {
    let mut s = TestServer::start(Backend::Redis).await;
    let mut c = s.client().await;
    c.create_experiment(bernoulli("o", &["a", "b"]))
        .await
        .unwrap();
    c.create_experiment(bernoulli("never-chosen", &["a"]))
        .await
        .unwrap();
    let choose = |name: &str| pb::ChooseRequest {
        experiment: name.into(),
        eligible_arms: vec![],
        ..Default::default()
    };
    let d = c.choose(choose("o")).await.unwrap().into_inner();
    s.redis.as_mut().unwrap().kill();
    // Past the staleness bound, Choose keeps answering from the last
    // snapshot (the store is down, not the experiment)...
    tokio::time::sleep(std::time::Duration::from_millis(
        posterior::config::DEFAULT_CHOOSE_MAX_STALENESS_MS + 50,
    ))
    .await;
    let stale = c.choose(choose("o")).await.unwrap().into_inner();
    assert!(["a", "b"].contains(&stale.arm.as_str()));
    // ...but an experiment with no snapshot, rewards, reads and lists report
    // the outage as retryable.
    let e = c.choose(choose("never-chosen")).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    let e = c
        .reward(by_decision("o", &d.decision_id, 1.0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    let e = c
        .list_experiments(pb::ListExperimentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    // Redis comes back (empty: this one keeps nothing on disk); the service
    // reconnects by itself and answers from the new state.
    s.redis.as_mut().unwrap().restart();
    let mut recovered = false;
    for _ in 0..100 {
        if c.list_experiments(pb::ListExperimentsRequest::default())
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(recovered, "no recovery within 5 s");
    c.create_experiment(bernoulli("after", &["a"]))
        .await
        .unwrap();
    let d = c.choose(choose("after")).await.unwrap().into_inner();
    c.reward(by_decision("after", &d.decision_id, 1.0))
        .await
        .unwrap();
}

/// A replica with no snapshot of an experiment (it restarted, or never chose
/// it) during a store outage answers the configured fallback arm, marked as
/// such and with no decision id; or UNAVAILABLE where the caller's eligible
/// arms exclude it. Cached experiments keep sampling from their snapshot,
/// and once the store is back nothing is a fallback any more.
#[tokio::test]
async fn fallback_arm_when_the_store_is_down_and_nothing_is_cached() {
    // Persistent, so the state is still there after the restart below.
    let mut redis =
        common::RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let admin = common::start_on_redis(&redis.url()).await;
    let mut admin = pb::bandits_client::BanditsClient::connect(format!("http://{}", admin.addr))
        .await
        .unwrap();
    for name in ["checkout", "warm"] {
        admin
            .create_experiment(bernoulli(name, &["control", "treatment"]))
            .await
            .unwrap();
    }
    let mut cfg = common::test_config();
    cfg.store.redis_url = redis.url();
    cfg.bandit.fallback_arms = [("checkout", "control"), ("*", "default")]
        .into_iter()
        .map(|(e, a)| (e.to_string(), a.to_string()))
        .collect();
    let s = posterior::server::start(cfg).await.unwrap();
    let mut c = pb::bandits_client::BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let choose = |name: &str, eligible: &[&str]| pb::ChooseRequest {
        experiment: name.into(),
        eligible_arms: eligible.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    };
    let up = c.choose(choose("warm", &[])).await.unwrap().into_inner();
    assert!(!up.fallback && !up.decision_id.is_empty());

    redis.kill();
    let fb = c
        .choose(choose("checkout", &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (fb.arm.as_str(), fb.fallback, fb.decision_id.as_str()),
        ("control", true, "")
    );
    let fb = c
        .choose(choose("checkout", &["control", "treatment"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((fb.arm.as_str(), fb.fallback), ("control", true));
    // "*" covers experiments without their own entry.
    let fb = c.choose(choose("other", &[])).await.unwrap().into_inner();
    assert_eq!((fb.arm.as_str(), fb.fallback), ("default", true));
    // A fallback the caller may not show is no answer.
    let e = c
        .choose(choose("checkout", &["treatment"]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{}", e.message());
    // The cached experiment keeps Thompson sampling from its snapshot.
    tokio::time::sleep(std::time::Duration::from_millis(
        posterior::config::DEFAULT_CHOOSE_MAX_STALENESS_MS + 50,
    ))
    .await;
    let stale = c.choose(choose("warm", &[])).await.unwrap().into_inner();
    assert!(!stale.fallback && !stale.decision_id.is_empty());

    redis.restart();
    let mut recovered = None;
    for _ in 0..100 {
        // Until the reconnect, answers are still fallbacks.
        if let Ok(d) = c.choose(choose("checkout", &[])).await
            && !d.get_ref().fallback
        {
            recovered = Some(d.into_inner());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let d = recovered.expect("recovered within 5 s");
    assert!(!d.decision_id.is_empty(), "{d:?}");
    c.reward(by_decision("checkout", &d.decision_id, 1.0))
        .await
        .unwrap();
}

#[tokio::test]
async fn decay_halves_evidence_per_half_life() {
    // Rewards by arm land at "now"; the summary decays them to read time. With
    // a 1 s half-life and ~1.1 s between write and read, ~45% of the weight
    // remains: strictly less than 10, more than 10 / 2^3 (2 s of slack).
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        let mut req = bernoulli("drift", &["a"]);
        req.half_life_seconds = 1.0;
        c.create_experiment(req).await.unwrap();
        for _ in 0..10 {
            c.reward(by_arm("drift", "a", 1.0)).await.unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let arm = &get(&mut c, "drift", None).await.arms[0];
        assert_eq!(arm.rewards, 10);
        assert!(
            arm.evidence < 10.0 * 0.5_f64.powf(1.0) && arm.evidence > 10.0 * 0.5_f64.powi(3),
            "{backend:?} {}",
            arm.evidence
        );
        assert!((arm.alpha - 1.0 - arm.evidence).abs() < 1e-9);
    }
}
