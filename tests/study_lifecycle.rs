//! The trial lifecycle of a study against the real server, over gRPC and
//! HTTP/JSON, on the stores: AbandonTrial and the trial timeout (also across
//! two replicas on one Redis), max_pending, the trial cap, EnqueueTrial's
//! order of service, AddTrial's validation and snapping, parameter steps and
//! constraint lower bounds, and every new bad input with its code and field.

mod common;
use common::number;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{BACKENDS, Backend, RedisServer, ServiceProcess, TestServer, start_on_redis};
use common::{http_refused, refused};
use posterior::pb::{self, optimizer_client::OptimizerClient, parameter::Kind, value};
use serde_json::{Value as Json, json};
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

fn int(low: i64, high: i64, step: i64) -> Kind {
    Kind::Int(pb::IntRange {
        low,
        high,
        log: false,
        step,
    })
}

fn float(low: f64, high: f64, step: f64) -> Kind {
    Kind::Float(pb::FloatRange {
        low,
        high,
        log: false,
        step,
    })
}

fn categorical(values: &[&str]) -> Kind {
    Kind::Categorical(pb::CategoricalValues {
        values: values.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    })
}

fn study(name: &str, parameters: Vec<pb::Parameter>) -> pb::CreateStudyRequest {
    pb::CreateStudyRequest {
        name: name.into(),
        parameters,
        objective: Some(pb::Objective {
            name: "cost".into(),
            goal: pb::Goal::Minimize as i32,
        }),
        seed: 5,
        ..Default::default()
    }
}

/// A space of exactly four configurations: exhaustion is observable.
fn four(name: &str) -> pb::CreateStudyRequest {
    study(name, vec![param("n", int(0, 3, 0))])
}

/// Memory in 64 MB steps, a ratio in quarters, an architecture.
fn stepped(name: &str) -> pb::CreateStudyRequest {
    let mut r = study(
        name,
        vec![
            param("memory_mb", int(128, 3008, 64)),
            param("ratio", float(0.0, 1.0, 0.25)),
            param("arch", categorical(&["x86", "arm"])),
        ],
    );
    r.constraints = vec![pb::Constraint {
        metric: "throughput".into(),
        upper_bound: None,
        lower_bound: Some(100.0),
    }];
    r
}

fn num(x: f64) -> pb::Value {
    pb::Value {
        kind: Some(value::Kind::Number(x)),
    }
}

fn cat(c: &str) -> pb::Value {
    pb::Value {
        kind: Some(value::Kind::Category(c.into())),
    }
}

fn params(kv: &[(&str, pb::Value)]) -> HashMap<String, pb::Value> {
    kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn state(t: &pb::Trial) -> pb::TrialState {
    pb::TrialState::try_from(t.state).expect("a known state")
}

async fn suggest(
    c: &mut OptimizerClient<Channel>,
    study: &str,
    count: u32,
) -> Result<Vec<pb::Trial>, tonic::Status> {
    c.suggest(pb::SuggestRequest {
        study: study.into(),
        count,
    })
    .await
    .map(|r| r.into_inner().trials)
}

async fn get(c: &mut OptimizerClient<Channel>, name: &str) -> pb::GetStudyResponse {
    c.get_study(pb::GetStudyRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
}

async fn abandon(
    c: &mut OptimizerClient<Channel>,
    study: &str,
    trial_id: u64,
    reason: Option<&str>,
) -> Result<pb::Trial, tonic::Status> {
    c.abandon_trial(pb::AbandonTrialRequest {
        study: study.into(),
        trial_id,
        reason: reason.map(Into::into),
    })
    .await
    .map(|r| r.into_inner().trial.expect("trial"))
}

async fn observe(
    c: &mut OptimizerClient<Channel>,
    study: &str,
    trial_id: u64,
    value: f64,
) -> Result<pb::Trial, tonic::Status> {
    c.observe(pb::ObserveRequest {
        study: study.into(),
        trial_id,
        value,
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner().trial.expect("trial"))
}

// ---- HTTP/JSON ---------------------------------------------------------------

/// One HTTP/1.1 request on a fresh connection: (status, JSON body).
async fn http_post(addr: SocketAddr, path: &str, body: &Json) -> (u16, Json) {
    common::http_json(addr, "POST", path, Some(body)).await
}

// ---- abandon -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn abandoned_trials_come_back_and_do_not_count() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = client(&s.url).await;
        c.create_study(four("four")).await.unwrap();
        let t = suggest(&mut c, "four", 4).await.unwrap();
        assert_eq!(t.len(), 4);
        refused(
            suggest(&mut c, "four", 1).await,
            Code::FailedPrecondition,
            "exhausted",
        );
        let gone = number(&t[2], "n");
        let a = abandon(
            &mut c,
            "four",
            t[2].trial_id,
            Some("spot instance preempted"),
        )
        .await
        .unwrap();
        assert_eq!(state(&a), pb::TrialState::Abandoned);
        assert_eq!(a.reason, "spot instance preempted");
        // Abandoning again is harmless and changes nothing.
        assert_eq!(
            abandon(&mut c, "four", t[2].trial_id, None).await.unwrap(),
            a
        );
        // Its configuration is free again: the only one left.
        let again = suggest(&mut c, "four", 1).await.unwrap();
        assert_eq!(number(&again[0], "n"), gone, "{backend:?}");
        assert_eq!(again[0].trial_id, 5, "ids are never reused");
        // A late result of the abandoned trial points to AddTrial.
        let m = refused(
            observe(&mut c, "four", t[2].trial_id, 1.0).await,
            Code::FailedPrecondition,
            "trial_id",
        );
        assert!(m.contains("AddTrial"), "{m}");
        observe(&mut c, "four", t[0].trial_id, 1.0).await.unwrap();
        refused(
            abandon(&mut c, "four", t[0].trial_id, None).await,
            Code::FailedPrecondition,
            "trial_id",
        );
        refused(
            abandon(&mut c, "four", 99, None).await,
            Code::NotFound,
            "trial_id",
        );
        refused(
            abandon(&mut c, "nope", 1, None).await,
            Code::NotFound,
            "study",
        );
        refused(
            abandon(&mut c, "four", t[1].trial_id, Some(&"r".repeat(257))).await,
            Code::InvalidArgument,
            "reason",
        );
        let g = get(&mut c, "four").await;
        let states: Vec<_> = g.trials.iter().map(state).collect();
        use pb::TrialState::*;
        assert_eq!(
            states,
            [Completed, Pending, Abandoned, Pending, Pending],
            "{backend:?}"
        );
        assert_eq!(g.trials[2].reason, "spot instance preempted");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_new_states_survive_a_restart_of_the_embedded_store() {
    // The binary, killed and started again on the same file (an in-process
    // server keeps the file's lock until the test ends).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posterior.redb");
    let env = [
        ("POSTERIOR_DATA", path.to_str().unwrap()),
        ("POSTERIOR_STORE", "embedded"),
    ];
    let svc = ServiceProcess::start(&[], &env);
    let mut c = client(&svc.url()).await;
    let mut req = stepped("s");
    req.trial_timeout_seconds = 3600;
    req.max_pending = 7;
    c.create_study(req).await.unwrap();
    let t = suggest(&mut c, "s", 2).await.unwrap();
    abandon(&mut c, "s", t[0].trial_id, Some("preempted"))
        .await
        .unwrap();
    let q = c
        .enqueue_trial(pb::EnqueueTrialRequest {
            study: "s".into(),
            params: params(&[
                ("memory_mb", num(1024.0)),
                ("ratio", num(0.5)),
                ("arch", cat("arm")),
            ]),
        })
        .await
        .unwrap()
        .into_inner()
        .trial
        .unwrap();
    let before = get(&mut c, "s").await;
    drop(c);
    drop(svc);

    let svc = ServiceProcess::start(&[], &env);
    let mut c = client(&svc.url()).await;
    let after = get(&mut c, "s").await;
    assert_eq!(after.trials, before.trials);
    assert_eq!(after.study, before.study);
    let def = after.study.unwrap();
    assert_eq!((def.trial_timeout_seconds, def.max_pending), (3600, 7));
    assert_eq!(def.constraints[0].lower_bound, Some(100.0));
    assert_eq!(def.constraints[0].upper_bound, None);
    assert_eq!(state(&after.trials[0]), pb::TrialState::Abandoned);
    assert_eq!(after.trials[0].reason, "preempted");
    assert_eq!(state(&after.trials[2]), pb::TrialState::Queued);
    // And the queue is still served first.
    let next = suggest(&mut c, "s", 1).await.unwrap();
    assert_eq!(next[0].trial_id, q.trial_id);
}

// ---- trial timeout, max_pending, the trial cap -----------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn timed_out_trials_are_abandoned_on_any_replica() {
    let redis = RedisServer::start();
    let a = start_on_redis(&redis.url()).await;
    let b = start_on_redis(&redis.url()).await;
    let mut ca = client(&format!("http://{}", a.addr)).await;
    let mut cb = client(&format!("http://{}", b.addr)).await;
    let mut quick = four("quick");
    quick.trial_timeout_seconds = 1;
    ca.create_study(quick).await.unwrap();
    // The control: an hour's timeout, the same wait, nothing abandoned.
    let mut slow = four("slow");
    slow.trial_timeout_seconds = 3600;
    ca.create_study(slow).await.unwrap();
    let t = suggest(&mut ca, "quick", 2).await.unwrap();
    suggest(&mut ca, "slow", 2).await.unwrap();
    // Longer than the 1 s timeout; the outcome does not depend on how much
    // longer (a pending trial only ever gets older).
    tokio::time::sleep(Duration::from_millis(1_300)).await;

    // GetStudy on the other replica abandons them, and saves it.
    let g = get(&mut cb, "quick").await;
    for tr in &g.trials {
        assert_eq!(state(tr), pb::TrialState::Abandoned, "{tr:?}");
        assert!(tr.reason.contains("timed out"), "{}", tr.reason);
    }
    assert_eq!(get(&mut ca, "quick").await.trials, g.trials);
    let g = get(&mut cb, "slow").await;
    assert!(g.trials.iter().all(|t| state(t) == pb::TrialState::Pending));

    // Suggest on replica A abandons too: pending ones from B, after the wait.
    let fresh = suggest(&mut cb, "quick", 2).await.unwrap();
    assert!(fresh.iter().all(|f| f.trial_id > t[1].trial_id));
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    suggest(&mut ca, "quick", 1).await.unwrap();
    let g = get(&mut ca, "quick").await;
    let states: Vec<_> = g.trials.iter().map(state).collect();
    use pb::TrialState::*;
    assert_eq!(
        states,
        [Abandoned, Abandoned, Abandoned, Abandoned, Pending]
    );
    // An abandoned configuration came back (the space has only four).
    drop(redis);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_pending_is_refused_until_trials_are_observed_or_abandoned() {
    for backend in [Backend::Memory, Backend::Redis] {
        let s = TestServer::start(backend).await;
        let mut c = client(&s.url).await;
        let mut r = stepped("p");
        r.max_pending = 3;
        c.create_study(r).await.unwrap();
        let t = suggest(&mut c, "p", 2).await.unwrap();
        let m = refused(
            suggest(&mut c, "p", 2).await,
            Code::FailedPrecondition,
            "count",
        );
        assert!(
            m.contains("max_pending = 3") && m.contains("observe or abandon"),
            "{m}"
        );
        let h = http_post(s.addr(), "/v1/studies/p:suggest", &json!({"count": 2})).await;
        http_refused(&h, 400, "FAILED_PRECONDITION", "observe or abandon");
        abandon(&mut c, "p", t[0].trial_id, None).await.unwrap();
        assert_eq!(suggest(&mut c, "p", 2).await.unwrap().len(), 2);

        // The default, and the ceiling.
        c.create_study(stepped("d")).await.unwrap();
        assert_eq!(
            get(&mut c, "d").await.study.unwrap().max_pending,
            posterior::bo::DEFAULT_MAX_PENDING as u32
        );
        let mut r = stepped("x");
        r.max_pending = posterior::bo::MAX_PENDING_CEILING as u32 + 1;
        refused(
            c.create_study(r.clone()).await,
            Code::InvalidArgument,
            "max_pending",
        );
        let h = http_post(
            s.addr(),
            "/v1/studies",
            &json!({
                "name": "x",
                "parameters": [{"name": "n", "int": {"low": "0", "high": "3"}}],
                "objective": {"name": "cost"},
                "maxPending": 1025,
            }),
        )
        .await;
        http_refused(&h, 400, "INVALID_ARGUMENT", "max_pending");
        r.max_pending = 0;
        r.trial_timeout_seconds = posterior::bo::MAX_TRIAL_TIMEOUT_SECONDS + 1;
        refused(
            c.create_study(r).await,
            Code::InvalidArgument,
            "trial_timeout_seconds",
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_trial_cap_is_not_reachable_through_pending_trials() {
    use posterior::bo::{MAX_PENDING_CEILING, MAX_TRIALS};
    let s = TestServer::start(Backend::Memory).await;
    let mut c = client(&s.url).await;
    let mut r = study("cap", vec![param("x", float(0.0, 1.0, 0.0))]);
    r.max_pending = MAX_PENDING_CEILING as u32;
    r.trial_timeout_seconds = 1;
    c.create_study(r).await.unwrap();
    // Hand out more than MAX_TRIALS trials that nobody observes: each round
    // fills max_pending, waits out the 1 s timeout, and the next Suggest
    // abandons the round. Before, 5,000 pending trials killed the study.
    // (However slow a round is, the loop only ever waits when max_pending
    // is reached, so the outcome does not depend on timing.)
    let mut handed = 0;
    while handed <= MAX_TRIALS {
        match suggest(&mut c, "cap", 64).await {
            Ok(t) => handed += t.len(),
            Err(e) => {
                refused::<()>(Err(e), Code::FailedPrecondition, "max_pending");
                tokio::time::sleep(Duration::from_millis(1_100)).await;
            }
        }
    }
    let t = suggest(&mut c, "cap", 1).await.unwrap();
    assert_eq!(t[0].trial_id as usize, handed + 1);
    observe(&mut c, "cap", t[0].trial_id, 0.5).await.unwrap();
    let g = get(&mut c, "cap").await;
    assert_eq!(
        g.trials
            .iter()
            .filter(|t| state(t) == pb::TrialState::Completed)
            .count(),
        1
    );
    // The record keeps only the newest abandoned trials.
    assert!(
        g.trials.len() <= posterior::bo::MAX_ABANDONED_KEPT + MAX_PENDING_CEILING,
        "{}",
        g.trials.len()
    );
}

// ---- enqueue ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn enqueued_trials_are_handed_out_first_in_order() {
    for backend in [Backend::Memory, Backend::Redis] {
        let s = TestServer::start(backend).await;
        let mut c = client(&s.url).await;
        c.create_study(stepped("q")).await.unwrap();
        let mut queued = Vec::new();
        for (mem, arch) in [(512.0, "arm"), (1000.0, "x86"), (3008.0, "arm")] {
            let t = c
                .enqueue_trial(pb::EnqueueTrialRequest {
                    study: "q".into(),
                    params: params(&[
                        ("memory_mb", num(mem)),
                        ("ratio", num(0.6)),
                        ("arch", cat(arch)),
                    ]),
                })
                .await
                .unwrap()
                .into_inner()
                .trial
                .unwrap();
            assert_eq!(state(&t), pb::TrialState::Queued);
            queued.push(t);
        }
        // Snapped as suggestions are: 1000 MB to 1024 (128 + 14 * 64), 0.6 to 0.5.
        assert_eq!(number(&queued[1], "memory_mb"), 1024.0);
        assert_eq!(number(&queued[1], "ratio"), 0.5);
        // Over HTTP too; a queued trial is not observable yet.
        let h = http_post(
            s.addr(),
            "/v1/studies/q:enqueue",
            &json!({"params": {"memory_mb": {"number": 128}, "ratio": {"number": 1}, "arch": {"category": "x86"}}}),
        )
        .await;
        assert_eq!(h.0, 200, "{}", h.1);
        assert_eq!(h.1["trial"]["state"], "QUEUED");
        assert_eq!(h.1["trial"]["trialId"], "4");
        let early = c
            .observe(pb::ObserveRequest {
                study: "q".into(),
                trial_id: 1,
                value: 1.0,
                metrics: [("throughput".to_string(), 120.0)].into(),
                failed: false,
            })
            .await;
        refused(early, Code::FailedPrecondition, "queued");
        // Abandoning a queued trial takes it out of the queue.
        abandon(&mut c, "q", 2, None).await.unwrap();

        let first = suggest(&mut c, "q", 2).await.unwrap();
        assert_eq!(first.iter().map(|t| t.trial_id).collect::<Vec<_>>(), [1, 3]);
        assert!(first.iter().all(|t| state(t) == pb::TrialState::Pending));
        assert_eq!(first[0].params, queued[0].params);
        let next = suggest(&mut c, "q", 2).await.unwrap();
        assert_eq!(next[0].trial_id, 4, "the last queued one, then the model's");
        assert_eq!(next[1].trial_id, 5);
        assert_eq!(
            state(&get(&mut c, "q").await.trials[1]),
            pb::TrialState::Abandoned
        );
    }
}

// ---- add trial -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn added_trials_are_validated_snapped_and_counted() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = client(&s.url).await;
        c.create_study(stepped("a")).await.unwrap();
        let good = || {
            params(&[
                ("memory_mb", num(1000.0)),
                ("ratio", num(0.3)),
                ("arch", cat("arm")),
            ])
        };
        let add = |p: HashMap<String, pb::Value>, value: f64, metrics: &[(&str, f64)]| {
            pb::AddTrialRequest {
                study: "a".into(),
                params: p,
                value,
                metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                failed: false,
            }
        };
        let t = c
            .add_trial(add(good(), 12.5, &[("throughput", 140.0)]))
            .await
            .unwrap()
            .into_inner()
            .trial
            .unwrap();
        assert_eq!(state(&t), pb::TrialState::Completed);
        assert_eq!(t.value, Some(12.5));
        assert_eq!(number(&t, "memory_mb"), 1024.0);
        assert_eq!(number(&t, "ratio"), 0.25);

        let with = |k: &str, v: pb::Value| {
            let mut p = good();
            p.insert(k.into(), v);
            p
        };
        let without = |k: &str| {
            let mut p = good();
            p.remove(k);
            p
        };
        let cases = [
            (with("bogus", num(1.0)), "params.bogus: unknown parameter"),
            (without("arch"), "params.arch: missing parameter"),
            (
                with("memory_mb", num(4096.0)),
                "params.memory_mb: must be a finite number in [128, 3008]",
            ),
            (with("memory_mb", num(f64::NAN)), "params.memory_mb"),
            (with("ratio", num(-0.1)), "params.ratio"),
            (
                with("arch", cat("sparc")),
                "params.arch: must be one of the categories",
            ),
            (
                with("arch", num(1.0)),
                "params.arch: must be a category string",
            ),
            (
                with("memory_mb", cat("big")),
                "params.memory_mb: must be a number",
            ),
            (with("ratio", pb::Value { kind: None }), "params.ratio"),
        ];
        for (p, field) in cases {
            refused(
                c.add_trial(add(p.clone(), 1.0, &[("throughput", 1.0)]))
                    .await,
                Code::InvalidArgument,
                field,
            );
            refused(
                c.enqueue_trial(pb::EnqueueTrialRequest {
                    study: "a".into(),
                    params: p,
                })
                .await,
                Code::InvalidArgument,
                field,
            );
        }
        refused(
            c.add_trial(add(good(), f64::NAN, &[("throughput", 1.0)]))
                .await,
            Code::InvalidArgument,
            "value",
        );
        refused(
            c.add_trial(add(good(), 1.0, &[])).await,
            Code::InvalidArgument,
            "throughput",
        );
        let mut failed = add(good(), 0.0, &[]);
        failed.failed = true;
        let f = c
            .add_trial(failed)
            .await
            .unwrap()
            .into_inner()
            .trial
            .unwrap();
        assert_eq!((state(&f), f.value), (pb::TrialState::Failed, None));

        // HTTP: the same route, the same rules.
        let h = http_post(
            s.addr(),
            "/v1/studies/a:addTrial",
            &json!({"params": {"memory_mb": {"number": 200}, "ratio": {"number": 1}, "arch": {"category": "x86"}},
                    "value": 30, "metrics": {"throughput": 90}}),
        )
        .await;
        assert_eq!(h.0, 200, "{}", h.1);
        assert_eq!(h.1["trial"]["state"], "COMPLETED");
        assert_eq!(h.1["trial"]["params"]["memory_mb"]["number"], 192.0);
        let h = http_post(
            s.addr(),
            "/v1/studies/a:addTrial",
            &json!({"params": {"memory_mb": {"number": 200}}, "value": 1}),
        )
        .await;
        http_refused(&h, 400, "INVALID_ARGUMENT", "params.");
        let h = http_post(
            s.addr(),
            "/v1/studies/nope:addTrial",
            &json!({"params": {}}),
        )
        .await;
        http_refused(&h, 404, "NOT_FOUND", "study");

        // The added trials are the study's evidence: the best feasible one
        // is trial 1 (throughput 140 >= 100; trial 3 costs more and is infeasible).
        let g = get(&mut c, "a").await;
        assert_eq!(g.trials.len(), 3);
        assert_eq!(g.best.unwrap().trial_id, 1, "{backend:?}");
        // Suggestions never repeat an added configuration.
        for t in suggest(&mut c, "a", 4).await.unwrap() {
            assert_ne!(t.params, g.trials[0].params);
        }
    }
}

// ---- steps and lower bounds ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn suggestions_honour_steps_and_lower_bounds() {
    let s = TestServer::start(Backend::Memory).await;
    let mut c = client(&s.url).await;
    let mut r = stepped("g");
    r.n_initial = 6;
    c.create_study(r).await.unwrap();
    // cost = memory (minimize); throughput = memory / 10 · (0.5 + ratio):
    // feasible (>= 100) needs memory >= 1000 / (0.5 + ratio), i.e. at least
    // 704 MB at ratio 1. The cheapest feasible configuration is 704 MB,
    // ratio 1; everything cheaper is infeasible.
    let mut infeasible_cheaper = 0;
    for _ in 0..8 {
        for t in suggest(&mut c, "g", 2).await.unwrap() {
            let m = number(&t, "memory_mb");
            let ratio = number(&t, "ratio");
            assert_eq!((m as i64 - 128) % 64, 0, "{m} is not 128 + k * 64");
            assert!((128.0..=3008.0).contains(&m));
            assert!([0.0, 0.25, 0.5, 0.75, 1.0].contains(&ratio), "{ratio}");
            let throughput = m / 10.0 * (0.5 + ratio);
            if throughput < 100.0 {
                infeasible_cheaper += 1;
            }
            c.observe(pb::ObserveRequest {
                study: "g".into(),
                trial_id: t.trial_id,
                value: m,
                metrics: [("throughput".to_string(), throughput)].into(),
                failed: false,
            })
            .await
            .unwrap();
        }
    }
    let g = get(&mut c, "g").await;
    let best = g.best.expect("a feasible trial");
    let best_throughput = best.metrics["throughput"];
    assert!(best_throughput >= 100.0, "best is infeasible: {best:?}");
    // The lower bound mattered: cheaper, infeasible trials were observed and
    // are not the best (the best is the cheapest feasible one observed).
    assert!(infeasible_cheaper > 0, "no infeasible trial was tried");
    let cheapest_feasible = g
        .trials
        .iter()
        .filter(|t| t.metrics.get("throughput").is_some_and(|v| *v >= 100.0))
        .filter_map(|t| t.value)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best.value, Some(cheapest_feasible));
    assert!(
        g.trials
            .iter()
            .filter_map(|t| t.value)
            .any(|v| v < cheapest_feasible),
        "no cheaper infeasible trial"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_steps_and_bounds_are_refused_naming_the_field() {
    let s = TestServer::start(Backend::Memory).await;
    let mut c = client(&s.url).await;
    let one = |kind: Kind| study("bad", vec![param("p", kind)]);
    let log_int = Kind::Int(pb::IntRange {
        low: 1,
        high: 1025,
        log: true,
        step: 64,
    });
    let cases = [
        (
            one(int(128, 1000, 64)),
            "parameters[0].int.step: high must be reachable",
        ),
        (one(int(0, 10, -2)), "parameters[0].int.step: must be >= 1"),
        (
            one(log_int),
            "parameters[0].int.step: step and log are exclusive",
        ),
        (
            one(float(0.0, 1.0, 0.3)),
            "parameters[0].float.step: high must be reachable",
        ),
        (
            one(float(0.0, 1.0, -0.5)),
            "parameters[0].float.step: must be a finite number > 0",
        ),
        (
            one(float(0.0, 1.0, f64::INFINITY)),
            "parameters[0].float.step",
        ),
    ];
    for (req, field) in cases {
        refused(c.create_study(req).await, Code::InvalidArgument, field);
    }
    let bounds = |lower: Option<f64>, upper: Option<f64>| {
        let mut r = four("b");
        r.constraints = vec![pb::Constraint {
            metric: "m".into(),
            upper_bound: upper,
            lower_bound: lower,
        }];
        r
    };
    refused(
        c.create_study(bounds(Some(5.0), Some(5.0))).await,
        Code::InvalidArgument,
        "constraints[0].lower_bound: must be < upper_bound",
    );
    refused(
        c.create_study(bounds(Some(f64::NAN), None)).await,
        Code::InvalidArgument,
        "constraints[0].lower_bound: must be finite",
    );
    // Neither bound is what a client from before lower bounds sends for
    // `m <= 0`: proto3 leaves the 0 off the wire.
    let r = c
        .create_study(bounds(None, None))
        .await
        .unwrap()
        .into_inner();
    let con = &r.study.unwrap().constraints[0];
    assert_eq!((con.lower_bound, con.upper_bound), (None, Some(0.0)));

    // HTTP: the same refusals with 400 and the field.
    let h = http_post(
        s.running.as_ref().unwrap().addr,
        "/v1/studies",
        &json!({
            "name": "h",
            "parameters": [{"name": "m", "int": {"low": "128", "high": "1000", "step": "64"}}],
            "objective": {"name": "cost"},
        }),
    )
    .await;
    http_refused(&h, 400, "INVALID_ARGUMENT", "parameters[0].int.step");
    let h = http_post(
        s.running.as_ref().unwrap().addr,
        "/v1/studies",
        &json!({
            "name": "h",
            "parameters": [{"name": "m", "int": {"low": "0", "high": "3"}}],
            "objective": {"name": "cost"},
            "constraints": [{"metric": "t", "lowerBound": 3, "upperBound": 1}],
        }),
    )
    .await;
    http_refused(&h, 400, "INVALID_ARGUMENT", "constraints[0].lower_bound");
    let h = http_post(
        s.running.as_ref().unwrap().addr,
        "/v1/studies/four:abandon",
        &json!({"trialId": "1", "reason": "x".repeat(300)}),
    )
    .await;
    http_refused(&h, 404, "NOT_FOUND", "study");
    // On study b (created above): the reason's length, a value off the
    // space, an unknown trial.
    let b = s.running.as_ref().unwrap().addr;
    let h = http_post(
        b,
        "/v1/studies/b:abandon",
        &json!({"trialId": "1", "reason": "x".repeat(300)}),
    )
    .await;
    http_refused(
        &h,
        400,
        "INVALID_ARGUMENT",
        "reason: must be at most 256 bytes",
    );
    let h = http_post(
        b,
        "/v1/studies/b:enqueue",
        &json!({"params": {"n": {"number": 7}}}),
    )
    .await;
    http_refused(
        &h,
        400,
        "INVALID_ARGUMENT",
        "params.n: must be a finite number in [0, 3]",
    );
    let h = http_post(b, "/v1/studies/b:abandon", &json!({"trialId": "9"})).await;
    http_refused(&h, 404, "NOT_FOUND", "trial_id");
    let h = http_post(
        b,
        "/v1/studies/b:addTrial",
        &json!({"params": {"n": {"number": 1}}, "value": "NaN"}),
    )
    .await;
    http_refused(&h, 400, "INVALID_ARGUMENT", "value");
}

// ---- the CLI -------------------------------------------------------------------------

async fn cli(args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_posterior"));
    for v in ["POSTERIOR_SERVER", "POSTERIOR_API_KEY", "POSTERIOR_TIMEOUT"] {
        cmd.env_remove(v);
    }
    cmd.args(args);
    let o = tokio::task::spawn_blocking(move || cmd.output().expect("run posterior"))
        .await
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_abandons_enqueues_and_adds_trials() {
    let s = TestServer::start(Backend::Memory).await;
    let url = s.url.as_str();
    let space = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/serverless.toml");
    let (ok, _, err) = cli(&["study", "create", "fn", "--space", space, "--server", url]).await;
    assert!(ok, "{err}");
    let (ok, out, err) = cli(&[
        "add-trial",
        "fn",
        "--param",
        "memory_mb=1000",
        "--param",
        "arch=arm",
        "--value",
        "41",
        "--metric",
        "p95_ms=800",
        "--server",
        url,
    ])
    .await;
    assert!(ok, "{err}");
    // 64 MB steps from 128: 1000 snaps to 1024.
    assert!(out.starts_with("trial 1 COMPLETED: "), "{out}");
    assert!(out.contains("memory_mb=1024"), "{out}");
    let (ok, out, err) = cli(&[
        "enqueue",
        "fn",
        "--param",
        "memory_mb=2048",
        "--param",
        "arch=x86",
        "--server",
        url,
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.starts_with("trial 2 QUEUED: "), "{out}");
    let (ok, out, _) = cli(&["suggest", "fn", "--server", url]).await;
    assert!(ok && out.starts_with("trial 2: "), "{out}");
    let (ok, out, err) = cli(&[
        "abandon",
        "fn",
        "--trial",
        "2",
        "--reason",
        "preempted",
        "--server",
        url,
    ])
    .await;
    assert!(ok, "{err}");
    assert!(out.starts_with("trial 2 ABANDONED"), "{out}");
    let (ok, out, _) = cli(&["study", "show", "fn", "--server", url]).await;
    assert!(ok && out.contains("(preempted)"), "{out}");
    // A numeric parameter given a word is a usage error before any request.
    let (ok, _, err) = cli(&[
        "enqueue",
        "fn",
        "--param",
        "memory_mb=lots",
        "--param",
        "arch=x86",
        "--server",
        url,
    ])
    .await;
    assert!(!ok && err.contains("memory_mb"), "{err}");
    let (ok, _, err) = cli(&[
        "add-trial",
        "fn",
        "--param",
        "memory_mb=99999",
        "--param",
        "arch=x86",
        "--value",
        "1",
        "--metric",
        "p95_ms=1",
        "--server",
        url,
    ])
    .await;
    assert!(!ok && err.contains("params.memory_mb"), "{err}");
}

// ---- scopes ------------------------------------------------------------------------

fn with_key<T>(req: T, key: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(req);
    req.metadata_mut()
        .insert("x-api-key", key.parse().expect("ascii key"));
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn a_decide_key_cannot_kill_a_study_nor_change_its_trials() {
    const ADMIN: &str = "admin-key-0123456789abcdef";
    const DECIDER: &str = "decide-key-0123456789abcde";
    const REPORTER: &str = "report-key-0123456789abcde";
    let mut cfg = common::test_config();
    cfg.auth.keys = vec![
        format!("{ADMIN}:admin"),
        format!("{DECIDER}:decide"),
        format!("{REPORTER}:report"),
    ];
    let running = posterior::server::start(cfg).await.unwrap();
    let mut c = client(&format!("http://{}", running.addr)).await;
    let mut r = study("k", vec![param("x", float(0.0, 1.0, 0.0))]);
    r.max_pending = 64;
    c.create_study(with_key(r, ADMIN)).await.unwrap();
    let s = || pb::SuggestRequest {
        study: "k".into(),
        count: 64,
    };
    c.suggest(with_key(s(), DECIDER)).await.unwrap();
    // A Suggest loop with a decide key stops at max_pending...
    refused(
        c.suggest(with_key(s(), DECIDER)).await,
        Code::FailedPrecondition,
        "observe or abandon",
    );
    // ...and only a report key frees trials.
    let ab = || pb::AbandonTrialRequest {
        study: "k".into(),
        trial_id: 1,
        reason: None,
    };
    refused(
        c.abandon_trial(with_key(ab(), DECIDER)).await,
        Code::PermissionDenied,
        "Report scope",
    );
    let q = pb::EnqueueTrialRequest {
        study: "k".into(),
        params: params(&[("x", num(0.5))]),
    };
    refused(
        c.enqueue_trial(with_key(q, DECIDER)).await,
        Code::PermissionDenied,
        "Report scope",
    );
    let add = pb::AddTrialRequest {
        study: "k".into(),
        params: params(&[("x", num(0.5))]),
        value: 1.0,
        ..Default::default()
    };
    refused(
        c.add_trial(with_key(add, DECIDER)).await,
        Code::PermissionDenied,
        "Report scope",
    );
    c.abandon_trial(with_key(ab(), REPORTER)).await.unwrap();
    c.suggest(with_key(
        pb::SuggestRequest {
            study: "k".into(),
            count: 1,
        },
        DECIDER,
    ))
    .await
    .unwrap();
}
