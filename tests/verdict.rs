//! From allocation to decision, against the real server: the goal
//! (MINIMIZE), expected loss and lift in GetExperiment, GetVerdict and its
//! transitions, EXPLOIT, the canary gate (its power and false-alarm rate,
//! its bad input, its HTTP statuses and CLI exit codes), list metadata; and
//! the stopping rule's calibration under the prior (domain level).

mod common;

use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use posterior::bandit::verdict::{self, ArmFacts, Status};
use posterior::bandit::{Posterior, RewardGoal, StoppingRule};
use posterior::pb;
use posterior::pb::bandits_client::BanditsClient;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use tonic::transport::Channel;

type Client = BanditsClient<Channel>;

async fn create(c: &mut Client, req: pb::CreateExperimentRequest) {
    c.create_experiment(req).await.expect("create");
}

fn experiment(name: &str, arms: &[&str]) -> pb::CreateExperimentRequest {
    pb::CreateExperimentRequest {
        name: name.into(),
        arms: arms.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    }
}

/// `n` rewards to `arm`, `ones` of them 1 (the rest 0).
async fn rewards(c: &mut Client, exp: &str, arm: &str, n: u64, ones: u64) {
    for i in 0..n {
        c.reward(pb::RewardRequest {
            experiment: exp.into(),
            value: if i < ones { 1.0 } else { 0.0 },
            target: Some(pb::reward_request::Target::Arm(arm.into())),
        })
        .await
        .expect("reward");
    }
}

async fn verdict(c: &mut Client, name: &str) -> pb::GetVerdictResponse {
    c.get_verdict(pb::GetVerdictRequest { name: name.into() })
        .await
        .expect("verdict")
        .into_inner()
}

fn status(v: &pb::GetVerdictResponse) -> pb::get_verdict_response::Status {
    pb::get_verdict_response::Status::try_from(v.status).expect("status")
}

fn gate_req(exp: &str, baseline: &str, candidate: &str) -> pb::GateRequest {
    pb::GateRequest {
        experiment: exp.into(),
        baseline: baseline.into(),
        candidate: candidate.into(),
        ..Default::default()
    }
}

fn gate_verdict(g: &pb::GateResponse) -> pb::gate_response::Verdict {
    pb::gate_response::Verdict::try_from(g.verdict).expect("verdict")
}

/// A plain HTTP/1.1 GET (Connection: close): status and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    http_get_with(addr, path, "").await
}

/// [`http_get`] with extra header lines (each ending in \r\n).
async fn http_get_with(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &str,
) -> (u16, serde_json::Value) {
    http_send(addr, "GET", path, headers, "").await
}

async fn http_send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}content-length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, serde_json::from_str(body).unwrap_or_default())
}

// ---- goal, expected loss, lift ------------------------------------------------

#[tokio::test]
async fn minimize_steers_traffic_to_the_low_error_rate() {
    let s = TestServer::start(Backend::Memory).await;
    let mut c = s.client().await;
    create(
        &mut c,
        pb::CreateExperimentRequest {
            goal: pb::RewardGoal::MinimizeReward as i32,
            control_arm: "old".into(),
            ..experiment("errors", &["old", "new"])
        },
    )
    .await;
    // Error rates 10% (old) and 1% (new), 300 requests each.
    rewards(&mut c, "errors", "old", 300, 30).await;
    rewards(&mut c, "errors", "new", 300, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut new = 0;
    for _ in 0..200 {
        let r = c
            .choose(pb::ChooseRequest {
                experiment: "errors".into(),
                ..Default::default()
            })
            .await
            .expect("choose")
            .into_inner();
        new += u32::from(r.arm == "new");
    }
    // P(θ_new < θ_old) ≈ 1 - 1e-6 here: every draw but a freak one.
    assert!(new >= 195, "new chosen {new} of 200");
    let e = c
        .get_experiment(pb::GetExperimentRequest {
            name: "errors".into(),
            threshold: None,
        })
        .await
        .expect("get")
        .into_inner();
    let (old, newa) = (&e.arms[0], &e.arms[1]);
    assert!(newa.prob_best > 0.99, "{newa:?}");
    assert!(old.prob_best < 0.01);
    // The loss of the worse arm is about the difference of the rates.
    assert!(
        (old.expected_loss - 0.09).abs() < 0.02,
        "{}",
        old.expected_loss
    );
    assert!(newa.expected_loss < 1e-3, "{}", newa.expected_loss);
    // Lift vs control: about (0.013 - 0.103)/0.103 ≈ -0.87, control 0.
    let lift = newa.lift_mean.expect("lift");
    assert!((lift + 0.87).abs() < 0.08, "{lift}");
    assert!(newa.lift_lower.unwrap() < lift && lift < newa.lift_upper.unwrap());
    assert_eq!(old.lift_mean, Some(0.0));
    // Without a control arm: no lift.
    create(&mut c, experiment("plain", &["a", "b"])).await;
    let e = c
        .get_experiment(pb::GetExperimentRequest {
            name: "plain".into(),
            threshold: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(e.arms.iter().all(|a| a.lift_mean.is_none()));
}

// ---- verdicts ------------------------------------------------------------------

async fn verdict_transitions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut c = s.client().await;
    create(
        &mut c,
        pb::CreateExperimentRequest {
            stopping: Some(pb::StoppingRule {
                min_rewards_per_arm: 50,
                ..Default::default()
            }),
            ..experiment("clear", &["blue", "red"])
        },
    )
    .await;
    let v = verdict(&mut c, "clear").await;
    assert_eq!(status(&v), pb::get_verdict_response::Status::Running);
    assert!(v.winner.is_empty());
    assert!(v.reason.starts_with("no winner yet"), "{}", v.reason);
    // Clear evidence but too few rewards on red: still RUNNING, and it says why.
    rewards(&mut c, "clear", "blue", 100, 60).await;
    rewards(&mut c, "clear", "red", 30, 3).await;
    let v = verdict(&mut c, "clear").await;
    assert_eq!(status(&v), pb::get_verdict_response::Status::Running);
    assert!(v.reason.contains("red has 30 of the 50"), "{}", v.reason);
    rewards(&mut c, "clear", "red", 70, 7).await;
    let v = verdict(&mut c, "clear").await;
    assert_eq!(
        status(&v),
        pb::get_verdict_response::Status::Winner,
        "{v:?}"
    );
    assert_eq!(v.winner, "blue");
    assert!(
        v.reason
            .starts_with("blue is best with P(best) 1.000 ≥ 0.95")
            && v.reason.ends_with("after 200 rewards"),
        "{}",
        v.reason
    );
    assert_eq!(v.arms.len(), 2);
    assert_eq!(v.arms[0].rewards, 100);
    assert!(v.arms[1].expected_loss > 0.3, "{:?}", v.arms[1]);
    // The list view says so too.
    let l = c
        .list_experiments(pb::ListExperimentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(l.names, vec!["clear"]);
    assert_eq!(l.experiments.len(), 1);
    let e = &l.experiments[0];
    assert_eq!((e.arms, e.rewards), (2, 200));
    assert_eq!(e.status, pb::get_verdict_response::Status::Winner as i32);
    // Unknown experiment.
    let e = c
        .get_verdict(pb::GetVerdictRequest {
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().starts_with("name:"), "{}", e.message());
}

#[tokio::test]
async fn verdict_running_to_winner_memory() {
    verdict_transitions(Backend::Memory).await;
}

#[tokio::test]
async fn verdict_running_to_winner_redis() {
    verdict_transitions(Backend::Redis).await;
}

#[tokio::test]
async fn verdict_is_inconclusive_after_max_duration() {
    let s = TestServer::start(Backend::Memory).await;
    let mut c = s.client().await;
    create(
        &mut c,
        pb::CreateExperimentRequest {
            stopping: Some(pb::StoppingRule {
                max_duration_seconds: 1.0,
                ..Default::default()
            }),
            description: "short".into(),
            labels: [("team".to_string(), "growth".to_string())].into(),
            ..experiment("short", &["a", "b"])
        },
    )
    .await;
    assert_eq!(
        status(&verdict(&mut c, "short").await),
        pb::get_verdict_response::Status::Running
    );
    let t = Instant::now();
    loop {
        let v = verdict(&mut c, "short").await;
        if status(&v) == pb::get_verdict_response::Status::Inconclusive {
            assert!(
                v.reason
                    .starts_with("no winner within max_duration_seconds 1"),
                "{}",
                v.reason
            );
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "still {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let l = c
        .list_experiments(pb::ListExperimentsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let e = &l.experiments[0];
    assert_eq!(
        e.status,
        pb::get_verdict_response::Status::Inconclusive as i32
    );
    assert_eq!(e.description, "short");
    assert_eq!(e.labels.get("team").map(String::as_str), Some("growth"));
}

#[tokio::test]
async fn exploit_serves_only_the_winner() {
    let s = TestServer::start(Backend::Memory).await;
    let mut c = s.client().await;
    create(
        &mut c,
        pb::CreateExperimentRequest {
            stopping: Some(pb::StoppingRule {
                on_winner: pb::OnWinner::Exploit as i32,
                ..Default::default()
            }),
            ..experiment("x", &["a", "b", "c"])
        },
    )
    .await;
    // Before a winner, every arm is served.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let r = c
            .choose(pb::ChooseRequest {
                experiment: "x".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.insert(r.arm);
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    rewards(&mut c, "x", "a", 60, 20).await;
    rewards(&mut c, "x", "b", 60, 45).await;
    rewards(&mut c, "x", "c", 60, 20).await;
    assert_eq!(verdict(&mut c, "x").await.winner, "b");
    // The snapshot (bound 100 ms) learns the verdict at its next refresh.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        // Refresh-ahead may serve one more old snapshot: warm it.
        let _ = c
            .choose(pb::ChooseRequest {
                experiment: "x".into(),
                ..Default::default()
            })
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..100 {
        let r = c
            .choose(pb::ChooseRequest {
                experiment: "x".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.arm, "b", "choice {i}");
    }
    // An eligibility list without the winner still gets an answer.
    let r = c
        .choose(pb::ChooseRequest {
            experiment: "x".into(),
            eligible_arms: vec!["a".into(), "c".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.arm == "a" || r.arm == "c");
}

// ---- the gate: power and false alarms -------------------------------------------

/// Requests per arm before each gate call. A 1% baseline and a 5% candidate:
/// the posterior difference of the means has s.d. ≈ √(.01·.99/n +
/// .05·.95/n) = 0.0098 at n = 600, and FAIL (P(worse) ≥ 0.95, margin 0)
/// needs the observed difference above ≈ 1.645 s.d. = 0.016; it is ~N(0.04,
/// 0.0098), so a run FAILs with probability ≈ Φ((0.04 − 0.016)/0.0098) =
/// Φ(2.4) ≈ 0.99. Equal arms: P(worse) is then roughly uniform over runs
/// (the posterior probability is a one-sided p-value here), so FAIL ≈ 5%.
const GATE_N: u64 = 600;
const GATE_RUNS: u64 = 40;

/// Runs of the gate with baseline rate `pb` and candidate rate `pc`; how
/// many FAILed. Outcomes from a seeded RNG, sent as rewards by arm.
async fn gate_runs(c: &mut Client, tag: &str, pb_: f64, pc: f64) -> u64 {
    let mut fails = 0;
    for run in 0..GATE_RUNS {
        let name = format!("{tag}{run}");
        create(
            c,
            pb::CreateExperimentRequest {
                goal: pb::RewardGoal::MinimizeReward as i32,
                ..experiment(&name, &["stable", "canary"])
            },
        )
        .await;
        let mut rng = SmallRng::seed_from_u64(1_000 + run);
        for (arm, p) in [("stable", pb_), ("canary", pc)] {
            let errors = (0..GATE_N).filter(|_| rng.random::<f64>() < p).count() as u64;
            rewards(c, &name, arm, GATE_N, errors).await;
        }
        let g = c
            .gate(gate_req(&name, "stable", "canary"))
            .await
            .expect("gate")
            .into_inner();
        assert_eq!((g.baseline_rewards, g.candidate_rewards), (GATE_N, GATE_N));
        fails += u64::from(gate_verdict(&g) == pb::gate_response::Verdict::Fail);
    }
    fails
}

#[tokio::test]
async fn gate_fails_a_five_fold_error_rate_and_rarely_an_equal_one() {
    let s = TestServer::start(Backend::Memory).await;
    let mut c = s.client().await;
    let bad = gate_runs(&mut c, "bad", 0.01, 0.05).await;
    // ≥ 95% of the 40 runs.
    assert!(
        bad >= 38,
        "5x candidate FAILed in {bad} of {GATE_RUNS} runs"
    );
    let equal = gate_runs(&mut c, "eq", 0.01, 0.01).await;
    eprintln!(
        "gate: 5x candidate FAIL {bad}/{GATE_RUNS}, equal candidate FAIL {equal}/{GATE_RUNS}"
    );
    // ≤ 5% + 3 s.e., s.e. = √(0.05·0.95/40) = 0.034: ≤ 15.3%, 6 of 40.
    assert!(
        equal <= 6,
        "equal candidate FAILed in {equal} of {GATE_RUNS} runs"
    );
}

// ---- the gate: statuses, exit codes, bad input ------------------------------------

/// Experiment `g` (MINIMIZE): `good` at 1%, `bad` at 5%, `base` at 1% with
/// 600 requests each; `few` with 50 requests and no error (P(worse) ≈
/// (1 − 0.0116)^51 ≈ 0.55: undecided).
async fn gate_fixture(c: &mut Client) {
    create(
        c,
        pb::CreateExperimentRequest {
            goal: pb::RewardGoal::MinimizeReward as i32,
            ..experiment("g", &["base", "good", "bad", "few"])
        },
    )
    .await;
    rewards(c, "g", "base", 600, 6).await;
    rewards(c, "g", "good", 600, 6).await;
    rewards(c, "g", "bad", 600, 30).await;
    rewards(c, "g", "few", 50, 0).await;
}

#[tokio::test]
async fn gate_answers_200_412_425_and_the_cli_exits_0_1_3() {
    let s = TestServer::start(Backend::Memory).await;
    let addr = s.running.as_ref().unwrap().addr;
    let mut c = s.client().await;
    gate_fixture(&mut c).await;
    // `good` vs `base` at margin 0.015: equal rates, the difference's s.d.
    // is 0.0057, so P(worse by more than 0.015) ≈ 0.005: PASS.
    for (cand, extra, code, verdict_name, exit) in [
        ("good", "&margin=0.015", 200, "PASS", 0),
        ("bad", "", 412, "FAIL", 1),
        ("few", "", 425, "INCONCLUSIVE", 3),
    ] {
        let (st, body) = http_get(
            addr,
            &format!("/v1/experiments/g:gate?baseline=base&candidate={cand}{extra}"),
        )
        .await;
        assert_eq!(st, code, "{cand}: {body}");
        assert_eq!(body["verdict"], verdict_name, "{body}");
        assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()));
        let mut args = vec![
            "--server".to_string(),
            s.url.clone(),
            "gate".into(),
            "g".into(),
            "--baseline".into(),
            "base".into(),
            "--candidate".into(),
            cand.into(),
        ];
        if cand == "good" {
            args.extend(["--margin".into(), "0.015".into()]);
        }
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_posterior"))
                .env_remove("POSTERIOR_SERVER")
                .env_remove("POSTERIOR_API_KEY")
                .args(&args)
                .output()
                .expect("run posterior")
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(exit), "{cand}: {text}");
        assert!(text.contains(verdict_name), "{text}");
    }
    // The SLO: `good` breaches an SLO of 0.1% with certainty.
    let (st, body) = http_get(
        addr,
        "/v1/experiments/g:gate?baseline=base&candidate=good&margin=0.015&slo=0.001",
    )
    .await;
    assert_eq!(st, 412, "{body}");
    assert!(body["probSloBreach"].as_f64().unwrap() > 0.99, "{body}");
    // For Argo's web metric: every verdict as a 200, the verdict in the body.
    let (st, body) = http_get_with(
        addr,
        "/v1/experiments/g:gate?baseline=base&candidate=bad",
        "x-gate-status: 200\r\n",
    )
    .await;
    assert_eq!(
        (st, body["verdict"].as_str()),
        (200, Some("FAIL")),
        "{body}"
    );
    // Flagger's webhooks POST their own payload: the query string decides.
    let (st, body) = http_send(
        addr,
        "POST",
        "/v1/experiments/g:gate?baseline=base&candidate=bad",
        "content-type: application/json\r\n",
        r#"{"name":"podinfo","namespace":"test","phase":"Progressing","metadata":{}}"#,
    )
    .await;
    assert_eq!(
        (st, body["verdict"].as_str()),
        (412, Some("FAIL")),
        "{body}"
    );
    // The verdict over HTTP and the CLI.
    let (st, body) = http_get(addr, "/v1/experiments/g:verdict").await;
    assert_eq!(st, 200, "{body}");
    assert!(body["arms"].as_array().is_some_and(|a| a.len() == 4));
    let (st, _) = http_get(addr, "/v1/experiments/nope:verdict").await;
    assert_eq!(st, 404);
    // A name with a colon and another suffix is still GetExperiment.
    let (st, body) = http_get(addr, "/v1/experiments/g:other").await;
    assert_eq!(st, 404, "{body}");
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_posterior"))
            .args(["--server", &url, "experiment", "verdict", "g", "--json"])
            .output()
            .expect("run")
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["reason"].as_str().is_some(), "{v}");
    // Errors stay at exit 1.
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_posterior"))
            .args([
                "--server",
                &url,
                "gate",
                "g",
                "--baseline",
                "base",
                "--candidate",
                "zzz",
            ])
            .output()
            .expect("run")
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn gate_bad_input_names_the_field() {
    let s = TestServer::start(Backend::Memory).await;
    let addr = s.running.as_ref().unwrap().addr;
    let mut c = s.client().await;
    gate_fixture(&mut c).await;
    let cases: Vec<(pb::GateRequest, Code, &str)> = vec![
        (gate_req("g", "zzz", "good"), Code::NotFound, "baseline"),
        (gate_req("g", "base", "zzz"), Code::NotFound, "candidate"),
        (
            gate_req("nope", "base", "good"),
            Code::NotFound,
            "experiment",
        ),
        (
            gate_req("g", "base", "base"),
            Code::InvalidArgument,
            "candidate",
        ),
        (gate_req("g", "", "good"), Code::InvalidArgument, "baseline"),
        (
            pb::GateRequest {
                margin: -0.1,
                ..gate_req("g", "base", "good")
            },
            Code::InvalidArgument,
            "margin",
        ),
        (
            pb::GateRequest {
                margin: f64::INFINITY,
                ..gate_req("g", "base", "good")
            },
            Code::InvalidArgument,
            "margin",
        ),
        (
            pb::GateRequest {
                confidence: 0.4,
                ..gate_req("g", "base", "good")
            },
            Code::InvalidArgument,
            "confidence",
        ),
        (
            pb::GateRequest {
                confidence: 1.0,
                ..gate_req("g", "base", "good")
            },
            Code::InvalidArgument,
            "confidence",
        ),
        (
            pb::GateRequest {
                slo: Some(f64::NAN),
                ..gate_req("g", "base", "good")
            },
            Code::InvalidArgument,
            "slo",
        ),
    ];
    for (req, code, field) in cases {
        let e = c.gate(req.clone()).await.unwrap_err();
        assert_eq!(e.code(), code, "{req:?}: {}", e.message());
        assert!(
            e.message().starts_with(&format!("{field}:")),
            "{req:?}: {}",
            e.message()
        );
    }
    // The same over HTTP: the error table's statuses, not 412/425.
    for (q, st) in [
        ("baseline=zzz&candidate=good", 404),
        ("baseline=base&candidate=base", 400),
        ("baseline=base&candidate=good&margin=-1", 400),
        ("baseline=base&candidate=good&confidence=2", 400),
        ("baseline=base&candidate=good&slo=NaN", 400),
        ("baseline=base&candidate=good&bogus=1", 400),
    ] {
        let (s2, body) = http_get(addr, &format!("/v1/experiments/g:gate?{q}")).await;
        assert_eq!(s2, st, "{q}: {body}");
    }
}

// ---- stopping calibration (domain level) ------------------------------------------

/// With true rates drawn from the prior, a posterior probability is
/// calibrated under that prior, even with optional stopping: each time the
/// rule stops, P(the leader is truly best | data) ≥ 0.95 by construction,
/// so averaged over the runs that stop, the wrong winner is picked at most
/// 5% of the time (up to the Monte Carlo error of P(best) at the
/// threshold). 3 arms, Beta(1,1) truth and prior, 10 rewards per arm per
/// batch, the verdict after each batch, a budget of 60 batches.
#[test]
fn stopping_at_prob_best_095_picks_the_wrong_winner_at_most_5_percent() {
    const RUNS: u64 = 300;
    const BATCH: u64 = 10;
    const BUDGET: u64 = 60;
    let rule = StoppingRule::default();
    let names = ["a", "b", "c"];
    let (mut winners, mut wrong) = (0u64, 0u64);
    for run in 0..RUNS {
        let mut rng = SmallRng::seed_from_u64(run);
        let truth: Vec<f64> = (0..3).map(|_| rng.random::<f64>()).collect();
        let best = (0..3)
            .max_by(|&i, &j| truth[i].total_cmp(&truth[j]))
            .unwrap();
        let mut succ = [0u64; 3];
        let mut n = 0u64;
        for _ in 0..BUDGET {
            for (k, s) in succ.iter_mut().enumerate() {
                *s += (0..BATCH)
                    .filter(|_| rng.random::<f64>() < truth[k])
                    .count() as u64;
            }
            n += BATCH;
            let posts: Vec<Posterior> = succ
                .iter()
                .map(|&s| Posterior::Beta {
                    alpha: 1.0 + s as f64,
                    beta: 1.0 + (n - s) as f64,
                })
                .collect();
            let stats = verdict::joint_stats(
                &posts,
                &[0, 1, 2],
                RewardGoal::Maximize,
                None,
                2_000,
                &mut rng,
            );
            let facts: Vec<ArmFacts<'_>> = names
                .iter()
                .map(|nm| ArmFacts {
                    name: nm,
                    rewards: n,
                    active: true,
                })
                .collect();
            let v = verdict::decide(&rule, &facts, &stats, 0.0);
            if v.status == Status::Winner {
                winners += 1;
                wrong += u64::from(v.winner != Some(best));
                break;
            }
        }
    }
    let rate = wrong as f64 / winners as f64;
    let se = (0.05 * 0.95 / winners as f64).sqrt();
    assert!(winners > RUNS / 2, "only {winners} of {RUNS} runs stopped");
    assert!(
        rate <= 0.05 + 3.0 * se,
        "wrong winner in {wrong} of {winners} stopped runs ({rate:.3} > 0.05 + 3·{se:.3})"
    );
    eprintln!("calibration: {wrong} wrong of {winners} winners ({rate:.3}); {RUNS} runs");
}
