//! Choose under an experiment's design, black-box over gRPC: top-two
//! Thompson, holdback and floors, and the reported propensities.
//!
//! **Frozen posteriors.** One server writes the rewards; a second one on
//! the same Redis, with a 60 s staleness bound and no rewards of its own,
//! answers the Chooses: its first Choose reads every reward, and its
//! snapshot (and so its propensity table) does not change before the
//! refresh-ahead point (30 s), well past the run.
//!
//! **The check.** Over n = 20,000 Chooses, arm i's frequency f_i is a
//! binomial proportion with s.e. √(p_i(1−p_i)/n); the reported p_i is a
//! Monte Carlo estimate from N = 10,000 joint draws with s.e. at most
//! √(p_i(1−p_i)/N). Independent, so |f_i − p_i| has s.e.
//! √(p_i(1−p_i)(1/n + 1/N)); each arm must lie within 3 of them.
//!
//! **Seeded.** An unseeded run would miss the 3-s.e. bound for some arm
//! of some of its 5 checks (≈ 13 arms) a few % of the time. The servers run
//! with `bandit.test_rng_seed` (test-only): every Choose draws from one
//! seeded generator and each propensity table from one seeded by the
//! experiment and eligible set. Concurrent callers take the draws in
//! varying order, but every Choose of a check uses the same snapshot and
//! eligible set, so the arms' multiset, and so each frequency, is the
//! same on every run: the check passes or fails deterministically, and
//! the bound above is what it would be for any one seed.

mod common;

use std::collections::HashMap;

use common::{RedisServer, test_config};
use posterior::pb;
use posterior::pb::bandits_client::BanditsClient;
use posterior::server::Running;
use tonic::Code;
use tonic::transport::Channel;

const CHOOSES: usize = 20_000;
const MC_DRAWS: f64 = 10_000.0;
/// Any fixed value (module doc).
const SEED: u64 = 20_261_202;

async fn start(redis: &RedisServer, staleness_ms: u64) -> (Running, BanditsClient<Channel>) {
    let mut cfg = test_config();
    cfg.store.redis_url = redis.url();
    cfg.bandit.choose_max_staleness_ms = staleness_ms;
    cfg.bandit.test_rng_seed = Some(SEED);
    let running = posterior::server::start(cfg).await.expect("server starts");
    let client = BanditsClient::connect(format!("http://{}", running.addr))
        .await
        .expect("connect");
    (running, client)
}

fn experiment(name: &str) -> pb::CreateExperimentRequest {
    pb::CreateExperimentRequest {
        name: name.into(),
        arms: vec!["a".into(), "b".into(), "c".into()],
        model: pb::RewardModel::Bernoulli as i32,
        ..Default::default()
    }
}

/// Successes and failures per arm: close enough that every arm gets a
/// sizeable share under Thompson.
const EVIDENCE: [(&str, usize, usize); 3] = [("a", 30, 70), ("b", 34, 66), ("c", 27, 73)];

async fn reward(c: &mut BanditsClient<Channel>, name: &str) {
    for (arm, ok, bad) in EVIDENCE {
        for k in 0..ok + bad {
            c.reward(pb::RewardRequest {
                experiment: name.into(),
                target: Some(pb::reward_request::Target::Arm(arm.into())),
                value: if k < ok { 1.0 } else { 0.0 },
            })
            .await
            .expect("reward");
        }
    }
}

/// `CHOOSES` decisions from four concurrent callers: arm → (count, the
/// propensities reported with it).
async fn choose_many(
    c: &BanditsClient<Channel>,
    name: &str,
    eligible: &[&str],
) -> HashMap<String, (usize, Vec<f64>)> {
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut c = c.clone();
        let req = pb::ChooseRequest {
            experiment: name.into(),
            eligible_arms: eligible.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        tasks.push(tokio::spawn(async move {
            let mut out: HashMap<String, (usize, Vec<f64>)> = HashMap::new();
            for _ in 0..CHOOSES / 4 {
                let r = c.choose(req.clone()).await.expect("choose").into_inner();
                assert!(!r.fallback);
                let e = out.entry(r.arm).or_default();
                e.0 += 1;
                if !e.1.contains(&r.propensity) {
                    e.1.push(r.propensity);
                }
            }
            out
        }));
    }
    let mut all: HashMap<String, (usize, Vec<f64>)> = HashMap::new();
    for t in tasks {
        for (arm, (n, ps)) in t.await.expect("task") {
            let e = all.entry(arm).or_default();
            e.0 += n;
            for p in ps {
                if !e.1.contains(&p) {
                    e.1.push(p);
                }
            }
        }
    }
    all
}

/// Every chosen arm reported one propensity (one snapshot), the
/// frequencies agree with them (module doc), and `expect` holds.
fn check(label: &str, got: &HashMap<String, (usize, Vec<f64>)>, expect: &[(&str, f64, f64)]) {
    let mut total = 0.0;
    for (arm, (n, ps)) in got {
        assert_eq!(ps.len(), 1, "{label}: arm {arm} reported {ps:?}");
        let p = ps[0];
        total += p;
        let f = *n as f64 / CHOOSES as f64;
        let se = (p * (1.0 - p) * (1.0 / CHOOSES as f64 + 1.0 / MC_DRAWS)).sqrt();
        assert!(
            (f - p).abs() <= 3.0 * se,
            "{label}: arm {arm}: frequency {f} vs propensity {p} (3 s.e. = {})",
            3.0 * se
        );
        println!("{label}: {arm}: frequency {f:.4}, propensity {p:.4}, s.e. {se:.4}");
    }
    // Arms never chosen must have had (almost) no chance; the reported ones
    // are a distribution.
    assert!(total <= 1.0 + 1e-9, "{label}: {total}");
    for &(arm, lo, hi) in expect {
        let p = got.get(arm).map_or(0.0, |(_, ps)| ps[0]);
        assert!(
            p >= lo && p <= hi,
            "{label}: {arm}: {p} not in [{lo}, {hi}]"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn frequencies_match_reported_propensities() {
    let redis = RedisServer::start();
    let (writer, mut w) = start(&redis, 100).await;
    let plain = experiment("plain");
    let top_two = pb::CreateExperimentRequest {
        policy: pb::Policy::TopTwoThompson as i32,
        top_two_beta: 0.5,
        ..experiment("top-two")
    };
    let full = pb::CreateExperimentRequest {
        policy: pb::Policy::TopTwoThompson as i32,
        top_two_beta: 0.5,
        control_arm: "c".into(),
        control_share: 0.2,
        min_share: 0.1,
        ..experiment("full")
    };
    // Minimize: the lowest rate leads.
    let minimize = pb::CreateExperimentRequest {
        goal: pb::RewardGoal::MinimizeReward as i32,
        ..experiment("minimize")
    };
    for e in [&plain, &top_two, &full, &minimize] {
        w.create_experiment(e.clone()).await.expect("create");
        reward(&mut w, &e.name).await;
    }
    writer.stop().await.expect("stop writer");

    let (reader, r) = start(&redis, 60_000).await;
    let got = choose_many(&r, "plain", &[]).await;
    // Thompson leans to b (34 %), a little to a.
    check("plain", &got, &[("b", 0.5, 1.0)]);
    let got = choose_many(&r, "top-two", &[]).await;
    // Top-two gives the runner-up (a) far more than Thompson does.
    check("top-two", &got, &[("b", 0.4, 0.75), ("a", 0.2, 0.5)]);
    let got = choose_many(&r, "full", &[]).await;
    // c: holdback 0.2 (≥ min_share, so no floor) + its policy share;
    // a, b: floor 0.1 each + 0.6 of the policy.
    check(
        "full",
        &got,
        &[("c", 0.2, 0.45), ("a", 0.1, 1.0), ("b", 0.1, 1.0)],
    );
    let got = choose_many(&r, "full", &["a", "c"]).await;
    // A subset: floors and holdback over the eligible arms; b never shown.
    assert!(!got.contains_key("b"));
    check("full [a, c]", &got, &[("c", 0.2, 1.0), ("a", 0.1, 1.0)]);
    let got = choose_many(&r, "minimize", &[]).await;
    check("minimize", &got, &[("c", 0.4, 1.0), ("b", 0.0, 0.2)]);
    reader.stop().await.expect("stop reader");
}

#[tokio::test]
async fn fallback_answers_have_propensity_zero() {
    let mut cfg = test_config();
    let mut redis = RedisServer::start();
    cfg.store.redis_url = redis.url();
    cfg.bandit
        .fallback_arms
        .insert("e".to_string(), "a".to_string());
    let running = posterior::server::start(cfg).await.expect("server starts");
    let mut c = BanditsClient::connect(format!("http://{}", running.addr))
        .await
        .expect("connect");
    redis.kill();
    let r = c
        .choose(pb::ChooseRequest {
            experiment: "e".into(),
            ..Default::default()
        })
        .await
        .expect("fallback")
        .into_inner();
    assert!(r.fallback);
    assert_eq!(r.propensity, 0.0);
    running.stop().await.expect("stop");
}

#[tokio::test]
async fn bad_designs_name_their_field() {
    let redis = RedisServer::start();
    let (running, mut c) = start(&redis, 100).await;
    let cases = [
        (
            pb::CreateExperimentRequest {
                policy: pb::Policy::TopTwoThompson as i32,
                top_two_beta: 1.5,
                ..experiment("x1")
            },
            "top_two_beta",
        ),
        (
            pb::CreateExperimentRequest {
                control_share: 0.1,
                ..experiment("x2")
            },
            "control_share",
        ),
        (
            pb::CreateExperimentRequest {
                min_share: 0.4,
                ..experiment("x3")
            },
            "min_share",
        ),
    ];
    for (req, field) in cases {
        let e = c.create_experiment(req).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{field}: {e:?}");
        assert!(e.message().starts_with(field), "{field}: {}", e.message());
    }
    running.stop().await.expect("stop");
}
