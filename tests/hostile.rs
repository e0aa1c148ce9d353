//! Hostile input: random request messages against the real server. Whatever
//! arrives, the server answers with a deliberate status (never INTERNAL or
//! UNKNOWN, which is what a panic in a handler would become) and stays up.

mod common;

use std::collections::HashMap;

use common::test_config;
use posterior::pb::{self, bandits_client::BanditsClient, optimizer_client::OptimizerClient};
use proptest::prelude::*;
use tonic::Code;

fn deliberate(r: Result<(), tonic::Status>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert!(
            // A panicking handler surfaces as a dropped stream (UNKNOWN,
            // CANCELLED or UNAVAILABLE: the in-memory store is never down).
            !matches!(
                e.code(),
                Code::Internal
                    | Code::Unknown
                    | Code::Unimplemented
                    | Code::Unavailable
                    | Code::Cancelled
            ),
            "{:?}: {}",
            e.code(),
            e.message()
        );
    }
    Ok(())
}

/// Names: mostly valid, sometimes empty, huge, or odd characters.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-c]{1,3}",
        Just(String::new()),
        ".{0,20}",
        "[a-z]{129,200}",
        Just("{tag}".to_string()),
    ]
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        -2.0..2.0f64,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(1e308),
        Just(-1e-300),
        any::<f64>(),
    ]
}

fn kind() -> impl Strategy<Value = Option<pb::parameter::Kind>> {
    use pb::parameter::Kind;
    prop_oneof![
        Just(None),
        (number(), number(), any::<bool>()).prop_map(|(low, high, log)| Some(Kind::Float(
            pb::FloatRange {
                low,
                high,
                log,
                step: 0.0
            }
        ))),
        (any::<i64>(), any::<i64>(), any::<bool>()).prop_map(|(low, high, log)| Some(Kind::Int(
            pb::IntRange {
                low,
                high,
                log,
                step: 0
            }
        ))),
        (-5i64..5, 0i64..10, any::<bool>()).prop_map(|(low, span, log)| Some(Kind::Int(
            pb::IntRange {
                low,
                high: low + span,
                log,
                step: 0,
            }
        ))),
        prop::collection::vec(number(), 0..6)
            .prop_map(|values| Some(Kind::Ordinal(pb::OrdinalValues { values }))),
        prop::collection::vec(name(), 0..5).prop_map(|values| Some(Kind::Categorical(
            pb::CategoricalValues {
                values,
                ..Default::default()
            }
        ))),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Create(String, Vec<String>, i32, f64),
    Choose(String, Vec<String>),
    RewardArm(String, String, f64),
    RewardId(String, String, f64),
    Get(String, Option<f64>),
    AddArm(String, String),
    Retire(String, String),
    Delete(String),
    CreateStudy(
        String,
        Vec<(String, Option<pb::parameter::Kind>)>,
        u32,
        u32,
        Vec<(String, f64)>,
    ),
    Suggest(String, u32),
    Observe(String, u64, f64, Vec<(String, f64)>, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            name(),
            prop::collection::vec(name(), 0..5),
            -1i32..3,
            number()
        )
            .prop_map(|(n, a, m, h)| Op::Create(n, a, m, h)),
        (name(), prop::collection::vec(name(), 0..3)).prop_map(|(n, e)| Op::Choose(n, e)),
        (name(), name(), number()).prop_map(|(n, a, v)| Op::RewardArm(n, a, v)),
        (name(), ".{0,60}", number()).prop_map(|(n, t, v)| Op::RewardId(n, t, v)),
        (name(), prop::option::of(number())).prop_map(|(n, t)| Op::Get(n, t)),
        (name(), name()).prop_map(|(n, a)| Op::AddArm(n, a)),
        (name(), name()).prop_map(|(n, a)| Op::Retire(n, a)),
        name().prop_map(Op::Delete),
        (
            name(),
            prop::collection::vec((name(), kind()), 0..4),
            0u32..20,
            0u32..3,
            prop::collection::vec((name(), number()), 0..2)
        )
            .prop_map(|(n, p, i, a, c)| Op::CreateStudy(n, p, i, a, c)),
        (name(), prop_oneof![Just(0u32), 1u32..4, Just(u32::MAX)])
            .prop_map(|(n, c)| Op::Suggest(n, c)),
        (
            name(),
            0u64..6,
            number(),
            prop::collection::vec((name(), number()), 0..3),
            any::<bool>()
        )
            .prop_map(|(n, t, v, m, f)| Op::Observe(n, t, v, m, f)),
    ]
}

async fn run(
    b: &mut BanditsClient<tonic::transport::Channel>,
    o: &mut OptimizerClient<tonic::transport::Channel>,
    op: Op,
) -> Result<(), tonic::Status> {
    use pb::reward_request::Target;
    match op {
        Op::Create(name, arms, model, hl) => b
            .create_experiment(pb::CreateExperimentRequest {
                name,
                arms,
                model,
                prior: None,
                half_life_seconds: hl,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        Op::Choose(experiment, eligible_arms) => b
            .choose(pb::ChooseRequest {
                experiment,
                eligible_arms,
                ..Default::default()
            })
            .await
            .map(|_| ()),
        Op::RewardArm(experiment, arm, value) => b
            .reward(pb::RewardRequest {
                experiment,
                target: Some(Target::Arm(arm)),
                value,
            })
            .await
            .map(|_| ()),
        Op::RewardId(experiment, id, value) => b
            .reward(pb::RewardRequest {
                experiment,
                target: Some(Target::DecisionId(id)),
                value,
            })
            .await
            .map(|_| ()),
        Op::Get(name, threshold) => b
            .get_experiment(pb::GetExperimentRequest { name, threshold })
            .await
            .map(|_| ()),
        Op::AddArm(experiment, arm) => b
            .add_arm(pb::AddArmRequest { experiment, arm })
            .await
            .map(|_| ()),
        Op::Retire(experiment, arm) => b
            .retire_arm(pb::RetireArmRequest { experiment, arm })
            .await
            .map(|_| ()),
        Op::Delete(name) => b
            .delete_experiment(pb::DeleteExperimentRequest { name })
            .await
            .map(|_| ()),
        Op::CreateStudy(name, params, n_initial, acquisition, constraints) => o
            .create_study(pb::CreateStudyRequest {
                name,
                parameters: params
                    .into_iter()
                    .map(|(name, kind)| pb::Parameter { name, kind })
                    .collect(),
                objective: Some(pb::Objective {
                    name: "y".into(),
                    goal: 0,
                }),
                constraints: constraints
                    .into_iter()
                    .map(|(metric, upper_bound)| pb::Constraint {
                        metric,
                        upper_bound: Some(upper_bound),
                        lower_bound: None,
                    })
                    .collect(),
                n_initial,
                acquisition: acquisition as i32,
                seed: 1,
                metrics: vec![],
                ..Default::default()
            })
            .await
            .map(|_| ()),
        Op::Suggest(study, count) => o
            .suggest(pb::SuggestRequest { study, count })
            .await
            .map(|_| ()),
        Op::Observe(study, trial_id, value, metrics, failed) => o
            .observe(pb::ObserveRequest {
                study,
                trial_id,
                value,
                metrics: metrics.into_iter().collect::<HashMap<_, _>>(),
                failed,
            })
            .await
            .map(|_| ()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_request_sequences_get_deliberate_answers(ops in prop::collection::vec(op(), 1..25)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let s = posterior::server::start(test_config()).await.unwrap();
            let url = format!("http://{}", s.addr);
            let mut b = BanditsClient::connect(url.clone()).await.unwrap();
            let mut o = OptimizerClient::connect(url).await.unwrap();
            for op in ops {
                deliberate(run(&mut b, &mut o, op).await)?;
            }
            // Still serving.
            let alive = b.list_experiments(pb::ListExperimentsRequest::default()).await.is_ok();
            prop_assert!(alive, "server stopped answering");
            s.stop().await.map_err(TestCaseError::fail)?;
            Ok(())
        })?;
    }
}
