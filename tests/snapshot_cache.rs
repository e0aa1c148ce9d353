//! The Choose snapshot cache, black-box: real redis-server, real servers.
//!
//! Staleness is observed through Choose itself: an experiment whose arm `b`
//! has 200 successes and arm `a` 200 failures makes Thompson pick `b` every
//! time (Beta(201, 1) against Beta(1, 201): their draws essentially never
//! cross), while a snapshot from before those rewards (two Beta(1, 1) arms)
//! picks `a` half the time.

mod common;

use std::time::Duration;

use common::{BACKENDS, Backend, RedisServer, test_config};
use posterior::pb;
use posterior::pb::bandits_client::BanditsClient;
use posterior::server::Running;
use tonic::transport::Channel;

async fn start(
    redis: Option<&RedisServer>,
    staleness_ms: u64,
) -> (Running, BanditsClient<Channel>) {
    let mut cfg = test_config();
    cfg.bandit.choose_max_staleness_ms = staleness_ms;
    if let Some(r) = redis {
        cfg.store.redis_url = r.url();
    }
    let running = posterior::server::start(cfg).await.expect("server starts");
    let client = BanditsClient::connect(format!("http://{}", running.addr))
        .await
        .expect("connect");
    (running, client)
}

async fn create(c: &mut BanditsClient<Channel>, name: &str, arms: &[&str]) {
    c.create_experiment(pb::CreateExperimentRequest {
        name: name.into(),
        arms: arms.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    })
    .await
    .expect("create");
}

async fn choose(c: &mut BanditsClient<Channel>, name: &str) -> pb::ChooseResponse {
    c.choose(pb::ChooseRequest {
        experiment: name.into(),
        eligible_arms: vec![],
        ..Default::default()
    })
    .await
    .expect("choose")
    .into_inner()
}

async fn reward_arm(c: &mut BanditsClient<Channel>, name: &str, arm: &str, value: f64, n: usize) {
    for _ in 0..n {
        c.reward(pb::RewardRequest {
            experiment: name.into(),
            target: Some(pb::reward_request::Target::Arm(arm.into())),
            value,
        })
        .await
        .expect("reward");
    }
}

/// Make `b` clearly better than `a` (200 rewards each).
async fn make_b_best(c: &mut BanditsClient<Channel>, name: &str) {
    reward_arm(c, name, "a", 0.0, 200).await;
    reward_arm(c, name, "b", 1.0, 200).await;
}

/// How many of `n` Chooses picked `arm`.
async fn picks(c: &mut BanditsClient<Channel>, name: &str, arm: &str, n: usize) -> usize {
    let mut k = 0;
    for _ in 0..n {
        if choose(c, name).await.arm == arm {
            k += 1;
        }
    }
    k
}

#[tokio::test]
async fn staleness_zero_reads_the_store_on_every_choose() {
    let redis = RedisServer::start();
    let (_a, mut a) = start(Some(&redis), 0).await;
    let (_b, mut b) = start(Some(&redis), 0).await;
    create(&mut a, "fresh", &["a", "b"]).await;
    choose(&mut a, "fresh").await;
    // Written through the other replica: only a store read can see it.
    make_b_best(&mut b, "fresh").await;
    assert_eq!(picks(&mut a, "fresh", "b", 50).await, 50);
}

#[tokio::test]
async fn within_the_bound_a_snapshot_is_served_from_memory() {
    // The converse, so the test above means something: with a long bound,
    // replica A keeps drawing from the snapshot it read before the rewards.
    let redis = RedisServer::start();
    let (_a, mut a) = start(Some(&redis), 60_000).await;
    let (_b, mut b) = start(Some(&redis), 60_000).await;
    create(&mut a, "cached", &["a", "b"]).await;
    choose(&mut a, "cached").await;
    make_b_best(&mut b, "cached").await;
    let k = picks(&mut a, "cached", "b", 50).await;
    assert!(
        k < 50,
        "all 50 picks saw rewards written elsewhere: not cached?"
    );
}

#[tokio::test]
async fn a_reward_elsewhere_is_visible_once_the_bound_has_passed() {
    let redis = RedisServer::start();
    let bound = 200;
    let (_a, mut a) = start(Some(&redis), bound).await;
    let (_b, mut b) = start(Some(&redis), bound).await;
    create(&mut a, "bound", &["a", "b"]).await;
    choose(&mut a, "bound").await;
    make_b_best(&mut b, "bound").await;
    // The guarantee: a reward acknowledged more than `bound` ago is seen.
    tokio::time::sleep(Duration::from_millis(bound + 50)).await;
    assert_eq!(picks(&mut a, "bound", "b", 50).await, 50);
}

#[tokio::test]
async fn a_reward_through_this_replica_is_visible_within_the_bound() {
    for backend in BACKENDS {
        let redis = (backend == Backend::Redis).then(RedisServer::start);
        let bound = 200;
        let (_a, mut a) = start(redis.as_ref(), bound).await;
        create(&mut a, "local", &["a", "b"]).await;
        choose(&mut a, "local").await;
        make_b_best(&mut a, "local").await;
        tokio::time::sleep(Duration::from_millis(bound + 50)).await;
        assert_eq!(picks(&mut a, "local", "b", 50).await, 50, "{backend:?}");
    }
}

#[tokio::test]
async fn definition_changes_on_this_replica_take_effect_at_once() {
    for backend in BACKENDS {
        let redis = (backend == Backend::Redis).then(RedisServer::start);
        // A bound far longer than the test: only invalidation can explain
        // what Choose sees.
        let (_a, mut a) = start(redis.as_ref(), 60_000).await;
        create(&mut a, "defs", &["a", "b", "c"]).await;
        choose(&mut a, "defs").await;

        a.retire_arm(pb::RetireArmRequest {
            experiment: "defs".into(),
            arm: "b".into(),
        })
        .await
        .expect("retire");
        assert_eq!(picks(&mut a, "defs", "b", 200).await, 0, "{backend:?}");

        a.add_arm(pb::AddArmRequest {
            experiment: "defs".into(),
            arm: "d".into(),
        })
        .await
        .expect("add arm");
        let r = a
            .choose(pb::ChooseRequest {
                experiment: "defs".into(),
                eligible_arms: vec!["d".into()],
                ..Default::default()
            })
            .await
            .expect("the new arm is eligible at once");
        assert_eq!(r.into_inner().arm, "d");

        a.delete_experiment(pb::DeleteExperimentRequest {
            name: "defs".into(),
        })
        .await
        .expect("delete");
        let e = a
            .choose(pb::ChooseRequest {
                experiment: "defs".into(),
                eligible_arms: vec![],
                ..Default::default()
            })
            .await
            .expect_err("deleted");
        assert_eq!(e.code(), tonic::Code::NotFound, "{backend:?}");
    }
}

#[tokio::test]
async fn reward_with_a_stale_cached_definition_falls_back_to_the_store() {
    let redis = RedisServer::start();
    let (_a, mut a) = start(Some(&redis), 60_000).await;
    let (_b, mut b) = start(Some(&redis), 60_000).await;
    create(&mut a, "stale", &["a", "b"]).await;
    choose(&mut a, "stale").await; // A caches the two-arm definition

    // An arm added elsewhere, chosen elsewhere, rewarded here.
    b.add_arm(pb::AddArmRequest {
        experiment: "stale".into(),
        arm: "c".into(),
    })
    .await
    .expect("add arm");
    let d = b
        .choose(pb::ChooseRequest {
            experiment: "stale".into(),
            eligible_arms: vec!["c".into()],
            ..Default::default()
        })
        .await
        .expect("choose c")
        .into_inner();
    let r = a
        .reward(pb::RewardRequest {
            experiment: "stale".into(),
            target: Some(pb::reward_request::Target::DecisionId(d.decision_id)),
            value: 1.0,
        })
        .await
        .expect("rewarded despite A's stale definition")
        .into_inner();
    assert_eq!(r.arm, "c");
    assert!(!r.duplicate);

    // Deleted and re-created elsewhere: A's cached incarnation is gone; a
    // reward by arm goes to the new incarnation.
    b.delete_experiment(pb::DeleteExperimentRequest {
        name: "stale".into(),
    })
    .await
    .expect("delete");
    create(&mut b, "stale", &["a", "b"]).await;
    reward_arm(&mut a, "stale", "b", 1.0, 1).await;
    let g = b
        .get_experiment(pb::GetExperimentRequest {
            name: "stale".into(),
            threshold: None,
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(g.arms[1].rewards, 1);
}
