//! Thompson sampling through the service finds the best arm.
//!
//! Simulated Bernoulli arms with rates 0.02, 0.05, 0.10; 20,000 rounds of
//! Choose → (simulated outcome, fixed seed) → Reward over gRPC.
//!
//! Why 80% in the last quarter is a safe bound: the Lai-Robbins lower bound
//! says any consistent policy pulls a suboptimal arm i about
//! ln(T) / KL(p_i || p*) times by T. KL(0.05 || 0.10) = 0.05 ln 0.5 + 0.95 ln(0.95/0.90)
//! ≈ 0.0167 and KL(0.02 || 0.10) ≈ 0.0513, so by T = 20,000 (ln T ≈ 9.9)
//! about 593 + 193 ≈ 790 suboptimal pulls. Thompson sampling attains this
//! rate asymptotically, and pulls of arm i accrue like C_i ln t, so rounds
//! 15,000..20,000 carry only ~C ln(4/3) ≈ 790 × 0.29 / 9.9 ≈ 23 of them in
//! expectation. The test allows 1,000 (20% of 5,000): a >40x margin even if
//! finite-time behaviour is several times worse than the asymptote.

mod common;

use common::{Backend, TestServer};
use posterior::pb::{self, reward_request::Target};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const ROUNDS: usize = 20_000;

#[tokio::test]
async fn the_best_arm_gets_most_choices_by_the_last_quarter() {
    let rates = [("p02", 0.02), ("p05", 0.05), ("p10", 0.10)];
    // The embedded store fsyncs every sequential reward: its correctness is
    // covered by the other tests; here it would only add minutes.
    for backend in [Backend::Memory, Backend::Redis] {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        c.create_experiment(pb::CreateExperimentRequest {
            name: "conv".into(),
            arms: rates.iter().map(|(n, _)| n.to_string()).collect(),
            model: pb::RewardModel::Bernoulli as i32,
            prior: None,
            half_life_seconds: 0.0,
            ..Default::default()
        })
        .await
        .unwrap();
        let mut world = SmallRng::seed_from_u64(20_000);
        let mut best_late = 0usize;
        for round in 0..ROUNDS {
            let d = c
                .choose(pb::ChooseRequest {
                    experiment: "conv".into(),
                    eligible_arms: vec![],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let rate = rates.iter().find(|(n, _)| *n == d.arm).unwrap().1;
            let outcome = if world.random::<f64>() < rate {
                1.0
            } else {
                0.0
            };
            c.reward(pb::RewardRequest {
                experiment: "conv".into(),
                target: Some(Target::DecisionId(d.decision_id)),
                value: outcome,
            })
            .await
            .unwrap();
            if round >= ROUNDS * 3 / 4 && d.arm == "p10" {
                best_late += 1;
            }
        }
        let share = best_late as f64 / (ROUNDS / 4) as f64;
        eprintln!("{backend:?}: best arm share in the last quarter = {share:.3}");
        assert!(share >= 0.80, "{backend:?}: {share}");
    }
}
