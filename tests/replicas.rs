//! Two service instances on one Redis: exactly-once under concurrency, and
//! each instance sees the other's rewards.

mod common;

use common::{RedisServer, start_on_redis};
use posterior::pb::{self, bandits_client::BanditsClient, reward_request::Target};

const REWARDS: usize = 20_000;
const TASKS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_count_20000_concurrent_rewards_exactly() {
    let redis = RedisServer::start();
    let a = start_on_redis(&redis.url()).await;
    let b = start_on_redis(&redis.url()).await;
    let urls = [format!("http://{}", a.addr), format!("http://{}", b.addr)];

    let mut admin = BanditsClient::connect(urls[0].clone()).await.unwrap();
    admin
        .create_experiment(pb::CreateExperimentRequest {
            name: "load".into(),
            arms: vec!["a".into(), "b".into(), "c".into()],
            model: pb::RewardModel::Bernoulli as i32,
            prior: None,
            half_life_seconds: 0.0,
            ..Default::default()
        })
        .await
        .unwrap();

    // 16 tasks, alternating instances. Each decision is chosen on one
    // instance and rewarded on the other (the decision key is shared through
    // Redis), and every 10th reward is sent twice: once to each instance
    // concurrently. Exactly REWARDS decisions must be counted.
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let urls = urls.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = BanditsClient::connect(urls[t % 2].clone()).await.unwrap();
            let mut other = BanditsClient::connect(urls[(t + 1) % 2].clone())
                .await
                .unwrap();
            let n = REWARDS / TASKS;
            let (mut applied, mut dups) = (0usize, 0usize);
            for i in 0..n {
                let d = mine
                    .choose(pb::ChooseRequest {
                        experiment: "load".into(),
                        eligible_arms: vec![],
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                let req = pb::RewardRequest {
                    experiment: "load".into(),
                    target: Some(Target::DecisionId(d.decision_id)),
                    value: (i % 2) as f64,
                };
                if i % 10 == 0 {
                    let (r1, r2) = tokio::join!(other.reward(req.clone()), mine.reward(req));
                    for r in [r1.unwrap().into_inner(), r2.unwrap().into_inner()] {
                        if r.duplicate { dups += 1 } else { applied += 1 }
                    }
                } else {
                    let r = other.reward(req).await.unwrap().into_inner();
                    assert!(!r.duplicate);
                    applied += 1;
                }
            }
            (applied, dups)
        }));
    }
    let (mut applied, mut dups) = (0, 0);
    for h in handles {
        let (a, d) = h.await.unwrap();
        applied += a;
        dups += d;
    }
    assert_eq!(applied, REWARDS);
    assert_eq!(dups, REWARDS / 10);

    // Both instances read the same posterior.
    for url in &urls {
        let mut c = BanditsClient::connect(url.clone()).await.unwrap();
        let g = c
            .get_experiment(pb::GetExperimentRequest {
                name: "load".into(),
                threshold: None,
            })
            .await
            .unwrap()
            .into_inner();
        let counted: u64 = g.arms.iter().map(|a| a.rewards).sum();
        let weight: f64 = g.arms.iter().map(|a| a.alpha + a.beta - 2.0).sum();
        assert_eq!(counted, REWARDS as u64);
        assert_eq!(weight, REWARDS as f64);
        // Half the values were 1.
        let successes: f64 = g.arms.iter().map(|a| a.alpha - 1.0).sum();
        assert_eq!(successes, (REWARDS / 2) as f64);
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}
