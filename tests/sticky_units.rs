//! Sticky units (`ChooseRequest.unit_id` on an experiment with
//! `sticky_seconds > 0`), black-box: the same arm on every replica and
//! across restarts, reassignment of a retired arm, spread over units, the
//! unit_id rules, and what a unit costs in Redis memory.
//!
//! The experiments have four arms and no rewards, so Thompson sampling is
//! uniform: a non-sticky unit would see the same arm 1,000 times with
//! probability 4^-999.

mod common;

use std::collections::{HashMap, HashSet};

use common::{RedisServer, ServiceProcess, start_on_redis, test_config};
use posterior::pb;
use posterior::pb::bandits_client::BanditsClient;
use posterior::server::Running;
use tonic::Code;
use tonic::transport::Channel;

const ARMS: [&str; 4] = ["a", "b", "c", "d"];

fn sticky(name: &str, seconds: f64) -> pb::CreateExperimentRequest {
    pb::CreateExperimentRequest {
        name: name.into(),
        arms: ARMS.iter().map(|s| s.to_string()).collect(),
        model: pb::RewardModel::Bernoulli as i32,
        sticky_seconds: seconds,
        ..Default::default()
    }
}

async fn client(r: &Running) -> BanditsClient<Channel> {
    BanditsClient::connect(format!("http://{}", r.addr))
        .await
        .expect("connect")
}

async fn choose(c: &mut BanditsClient<Channel>, exp: &str, unit: &str) -> pb::ChooseResponse {
    choose_among(c, exp, unit, &[]).await
}

async fn choose_among(
    c: &mut BanditsClient<Channel>,
    exp: &str,
    unit: &str,
    eligible: &[&str],
) -> pb::ChooseResponse {
    c.choose(pb::ChooseRequest {
        experiment: exp.into(),
        unit_id: unit.into(),
        eligible_arms: eligible.iter().map(|s| s.to_string()).collect(),
    })
    .await
    .expect("choose")
    .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unit_one_arm_across_two_replicas_and_units_spread() {
    let redis = RedisServer::start();
    let r1 = start_on_redis(&redis.url()).await;
    let r2 = start_on_redis(&redis.url()).await;
    let (mut c1, mut c2) = (client(&r1).await, client(&r2).await);
    c1.create_experiment(sticky("e", 3600.0))
        .await
        .expect("create");

    let first = choose(&mut c1, "e", "user-1").await;
    let mut ids = HashSet::new();
    for k in 0..1_000 {
        let c = if k % 2 == 0 { &mut c1 } else { &mut c2 };
        let r = choose(c, "e", "user-1").await;
        assert_eq!(r.arm, first.arm, "choose {k}");
        // The original assignment's propensity, on both replicas.
        assert_eq!(r.propensity, first.propensity);
        assert!(ids.insert(r.decision_id), "decision ids are fresh");
    }
    assert!(first.propensity > 0.0 && first.propensity < 1.0);

    // Different units spread over the arms: 400 units, 100 expected per arm
    // (binomial s.d. ≈ 8.7); each arm must get at least 50.
    let mut per_arm: HashMap<String, usize> = HashMap::new();
    for u in 0..400 {
        let c = if u % 2 == 0 { &mut c1 } else { &mut c2 };
        let r = choose(c, "e", &format!("unit-{u}")).await;
        *per_arm.entry(r.arm).or_default() += 1;
    }
    for arm in ARMS {
        let n = per_arm.get(arm).copied().unwrap_or(0);
        assert!(n >= 50, "{arm}: {n} of 400 ({per_arm:?})");
    }

    // Concurrent first decisions for one unit on both replicas: one arm.
    let mut tasks = Vec::new();
    for k in 0..20 {
        let mut c = if k % 2 == 0 { c1.clone() } else { c2.clone() };
        tasks.push(tokio::spawn(async move {
            choose(&mut c, "e", "racing-unit").await.arm
        }));
    }
    let mut arms = HashSet::new();
    for t in tasks {
        arms.insert(t.await.expect("task"));
    }
    assert_eq!(arms.len(), 1, "{arms:?}");
    r1.stop().await.expect("stop");
    r2.stop().await.expect("stop");
}

#[tokio::test]
async fn a_retired_or_ineligible_stored_arm_is_reassigned() {
    let redis = RedisServer::start();
    let r = start_on_redis(&redis.url()).await;
    let mut c = client(&r).await;
    c.create_experiment(sticky("e", 3600.0))
        .await
        .expect("create");
    let old = choose(&mut c, "e", "u").await.arm;
    c.retire_arm(pb::RetireArmRequest {
        experiment: "e".into(),
        arm: old.clone(),
    })
    .await
    .expect("retire");
    let new = choose(&mut c, "e", "u").await;
    assert_ne!(new.arm, old);
    for _ in 0..50 {
        let again = choose(&mut c, "e", "u").await;
        assert_eq!(again.arm, new.arm);
        assert_eq!(again.propensity, new.propensity);
    }
    // Not eligible for this request: reassigned within the eligible list,
    // and that is the unit's arm from then on.
    let other: Vec<&str> = ARMS
        .iter()
        .copied()
        .filter(|a| *a != old && *a != new.arm)
        .collect();
    let narrowed = choose_among(&mut c, "e", "u", &other).await;
    assert!(other.contains(&narrowed.arm.as_str()));
    assert_eq!(choose(&mut c, "e", "u").await.arm, narrowed.arm);
    r.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignments_survive_an_embedded_restart_but_not_a_re_create() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("posterior.redb");
    let env = [
        ("POSTERIOR_DATA", path.to_str().expect("utf-8 path")),
        ("POSTERIOR_STORE", "embedded"),
    ];
    let units: Vec<String> = (0..20).map(|u| format!("unit-{u}")).collect();

    let mut svc = ServiceProcess::start(&[], &env);
    let mut c = BanditsClient::connect(svc.url()).await.expect("connect");
    c.create_experiment(sticky("e", 3600.0))
        .await
        .expect("create");
    let mut before = Vec::new();
    for u in &units {
        let x = choose(&mut c, "e", u).await;
        before.push((x.arm, x.propensity));
    }
    // The hardest stop: every assignment was committed before it was answered.
    svc.kill9();

    let svc = ServiceProcess::start(&[], &env);
    let mut c = BanditsClient::connect(svc.url()).await.expect("connect");
    for (u, b) in units.iter().zip(&before) {
        let x = choose(&mut c, "e", u).await;
        assert_eq!((&x.arm, x.propensity), (&b.0, b.1), "{u} after restart");
    }
    // Delete and re-create: the new incarnation assigns afresh (20 units
    // all drawing their old arm again has probability 4^-20).
    c.delete_experiment(pb::DeleteExperimentRequest { name: "e".into() })
        .await
        .expect("delete");
    c.create_experiment(sticky("e", 3600.0))
        .await
        .expect("re-create");
    let mut same = 0;
    for (u, b) in units.iter().zip(&before) {
        if choose(&mut c, "e", u).await.arm == b.0 {
            same += 1;
        }
    }
    assert!(
        same < units.len(),
        "the re-created experiment kept assignments"
    );
}

#[tokio::test]
async fn assignments_expire_after_sticky_seconds() {
    let r = posterior::server::start(test_config())
        .await
        .expect("start");
    let mut c = client(&r).await;
    c.create_experiment(sticky("e", 0.2)).await.expect("create");
    let units: Vec<String> = (0..20).map(|u| format!("unit-{u}")).collect();
    let mut before = Vec::new();
    for u in &units {
        before.push(choose(&mut c, "e", u).await.arm);
    }
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let mut same = 0;
    for (u, b) in units.iter().zip(&before) {
        if choose(&mut c, "e", u).await.arm == *b {
            same += 1;
        }
    }
    assert!(same < units.len(), "assignments outlived sticky_seconds");
    r.stop().await.expect("stop");
}

#[tokio::test]
async fn unit_id_rules() {
    let r = posterior::server::start(test_config())
        .await
        .expect("start");
    let mut c = client(&r).await;
    c.create_experiment(sticky("s", 3600.0))
        .await
        .expect("create");
    c.create_experiment(sticky("plain", 0.0))
        .await
        .expect("create");
    for exp in ["s", "plain"] {
        let e = c
            .choose(pb::ChooseRequest {
                experiment: exp.into(),
                unit_id: "x".repeat(129),
                eligible_arms: vec![],
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with("unit_id"), "{}", e.message());
    }
    // 128 bytes is fine.
    choose(&mut c, "s", &"x".repeat(128)).await;
    // A unit id on a non-sticky experiment is ignored: fresh draws.
    let arms: HashSet<String> = {
        let mut s = HashSet::new();
        for _ in 0..100 {
            s.insert(choose(&mut c, "plain", "u").await.arm);
        }
        s
    };
    assert!(arms.len() > 1, "{arms:?}");
    r.stop().await.expect("stop");
}

fn used_memory(r: &RedisServer) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut r.connection())
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

/// docs/api.md quotes this figure.
#[tokio::test]
async fn each_sticky_unit_costs_under_250_bytes_of_redis_memory() {
    const N: usize = 10_000;
    let redis = RedisServer::start();
    let s = start_on_redis(&redis.url()).await;
    let mut c = client(&s).await;
    c.create_experiment(sticky("checkout-button", 86_400.0))
        .await
        .expect("create");
    choose(&mut c, "checkout-button", "warm-up").await;
    let before = used_memory(&redis);
    for u in 0..N {
        // A 36-byte id, like a UUID.
        choose(&mut c, "checkout-button", &format!("{u:036}")).await;
    }
    let per_unit = (used_memory(&redis) - before) as f64 / N as f64;
    eprintln!("redis memory per sticky unit (36-byte unit id): {per_unit:.1} bytes");
    // A key with a TTL: main dict entry (24) + key sds (~87 bytes of
    // `posterior:{checkout-button}:u:<incarnation id>:<unit>`, 96 after
    // rounding) + value object with its embedded "arm propensity" string
    // (~48) + expires dict entry (24) + bucket pointers in both tables
    // (16-32 with rehash headroom) ≈ 210-230 bytes.
    assert!(per_unit < 250.0, "{per_unit}");
    s.stop().await.expect("stop");
}
