//! Proto ⇄ domain, as `From`/`TryFrom` impls in one place, shared by both
//! transports (gRPC carries the protobuf encoding of these messages, HTTP
//! their proto3 JSON mapping), so a handler reads
//! `let new: NewExperiment = req.try_into()?;`.
//!
//! A request's `TryFrom` rejects what the proto can express but the domain
//! cannot (an unknown enum value, a missing oneof); the domain then checks
//! its own rules (names, ranges, limits).

use std::collections::{BTreeMap, HashMap};

use crate::app::bandits::{
    Choice, ExperimentSummary, Reward, RewardTarget, Rewarded, missing_target,
};
use crate::app::ingest::{Aggregate, Batch, BatchItem};
use crate::app::page::{Page, PageRequest};
use crate::app::studies::{NewTrial, Observation, StudyView};
use crate::bandit::design::{DEFAULT_TOP_TWO_BETA, DEFAULT_WINNER_PROB_BEST};
use crate::bandit::{
    Design, ExperimentDef, Model, NewExperiment, OnWinner, Policy, Posterior, Prior, RewardGoal,
    StoppingRule,
};
use crate::bo::{
    Acquisition, Constraint, CostModel, DEFAULT_MAX_PENDING, Goal, ParamKind, ParamValue,
    Parameter, Point, SearchSpace, StudyDef, StudySpec, Trial, TrialState, default_n_initial,
};
use crate::error::Error;
use crate::name;
use crate::pb;

// ---- bandits -------------------------------------------------------------

impl From<Model> for pb::RewardModel {
    fn from(m: Model) -> Self {
        match m {
            Model::Bernoulli => pb::RewardModel::Bernoulli,
            Model::Gaussian => pb::RewardModel::Gaussian,
        }
    }
}

impl TryFrom<pb::CreateExperimentRequest> for NewExperiment {
    type Error = Error;
    fn try_from(r: pb::CreateExperimentRequest) -> Result<Self, Error> {
        let model = match pb::RewardModel::try_from(r.model) {
            Ok(pb::RewardModel::Bernoulli) => Model::Bernoulli,
            Ok(pb::RewardModel::Gaussian) => Model::Gaussian,
            Err(_) => {
                return Err(Error::invalid(format!(
                    "model: must be BERNOULLI or GAUSSIAN, got {}",
                    r.model
                )));
            }
        };
        let prior = r.prior.map(|p| match p {
            pb::create_experiment_request::Prior::BetaPrior(b) => Prior::Beta {
                alpha: b.alpha,
                beta: b.beta,
            },
            pb::create_experiment_request::Prior::NormalPrior(n) => Prior::NormalInverseGamma {
                mean: n.mean,
                kappa: n.kappa,
                alpha: n.alpha,
                beta: n.beta,
            },
        });
        let design = design_from_pb(&r)?;
        Ok(NewExperiment {
            name: r.name,
            model,
            prior,
            half_life_seconds: r.half_life_seconds,
            arms: r.arms,
            design,
        })
    }
}

/// The design fields of a create request; zero values mean the defaults.
fn design_from_pb(r: &pb::CreateExperimentRequest) -> Result<Design, Error> {
    let goal = match pb::RewardGoal::try_from(r.goal) {
        Ok(pb::RewardGoal::MaximizeReward) => RewardGoal::Maximize,
        Ok(pb::RewardGoal::MinimizeReward) => RewardGoal::Minimize,
        Err(_) => {
            return Err(Error::invalid(format!(
                "goal: must be MAXIMIZE_REWARD or MINIMIZE_REWARD, got {}",
                r.goal
            )));
        }
    };
    let policy = match pb::Policy::try_from(r.policy) {
        Ok(pb::Policy::Thompson) if r.top_two_beta != 0.0 => {
            return Err(Error::invalid(
                "top_two_beta: only meaningful with policy TOP_TWO_THOMPSON",
            ));
        }
        Ok(pb::Policy::Thompson) => Policy::Thompson,
        Ok(pb::Policy::TopTwoThompson) => Policy::TopTwoThompson {
            beta: if r.top_two_beta == 0.0 {
                DEFAULT_TOP_TWO_BETA
            } else {
                r.top_two_beta
            },
        },
        Err(_) => {
            return Err(Error::invalid(format!(
                "policy: must be THOMPSON or TOP_TWO_THOMPSON, got {}",
                r.policy
            )));
        }
    };
    let stopping = match &r.stopping {
        None => StoppingRule::default(),
        Some(s) => StoppingRule {
            prob_best: if s.prob_best == 0.0 {
                DEFAULT_WINNER_PROB_BEST
            } else {
                s.prob_best
            },
            expected_loss: s.expected_loss,
            min_rewards_per_arm: s.min_rewards_per_arm,
            max_duration_seconds: s.max_duration_seconds,
            on_winner: match pb::OnWinner::try_from(s.on_winner) {
                Ok(pb::OnWinner::KeepLearning) => OnWinner::KeepLearning,
                Ok(pb::OnWinner::Exploit) => OnWinner::Exploit,
                Err(_) => {
                    return Err(Error::invalid(format!(
                        "stopping.on_winner: must be KEEP_LEARNING or EXPLOIT, got {}",
                        s.on_winner
                    )));
                }
            },
        },
    };
    Ok(Design {
        goal,
        policy,
        control_arm: (!r.control_arm.is_empty()).then(|| r.control_arm.clone()),
        control_share: r.control_share,
        min_share: r.min_share,
        sticky_seconds: r.sticky_seconds,
        stopping,
        description: r.description.clone(),
        labels: r.labels.clone().into_iter().collect(),
    })
}

impl From<&ExperimentDef> for pb::Experiment {
    fn from(def: &ExperimentDef) -> Self {
        let d = &def.design;
        let prior = match def.prior {
            Prior::Beta { alpha, beta } => {
                pb::experiment::Prior::BetaPrior(pb::BetaPrior { alpha, beta })
            }
            Prior::NormalInverseGamma {
                mean,
                kappa,
                alpha,
                beta,
            } => pb::experiment::Prior::NormalPrior(pb::NormalInverseGammaPrior {
                mean,
                kappa,
                alpha,
                beta,
            }),
        };
        pb::Experiment {
            name: def.name.clone(),
            model: pb::RewardModel::from(def.model) as i32,
            arms: def.arms.iter().map(|a| a.name.clone()).collect(),
            retired_arms: def
                .arms
                .iter()
                .filter(|a| a.retired)
                .map(|a| a.name.clone())
                .collect(),
            half_life_seconds: def.half_life_seconds,
            prior: Some(prior),
            goal: match d.goal {
                RewardGoal::Maximize => pb::RewardGoal::MaximizeReward,
                RewardGoal::Minimize => pb::RewardGoal::MinimizeReward,
            } as i32,
            policy: match d.policy {
                Policy::Thompson => pb::Policy::Thompson,
                Policy::TopTwoThompson { .. } => pb::Policy::TopTwoThompson,
            } as i32,
            top_two_beta: match d.policy {
                Policy::Thompson => 0.0,
                Policy::TopTwoThompson { beta } => beta,
            },
            control_arm: d.control_arm.clone().unwrap_or_default(),
            control_share: d.control_share,
            min_share: d.min_share,
            sticky_seconds: d.sticky_seconds,
            stopping: Some(pb::StoppingRule {
                prob_best: d.stopping.prob_best,
                expected_loss: d.stopping.expected_loss,
                min_rewards_per_arm: d.stopping.min_rewards_per_arm,
                max_duration_seconds: d.stopping.max_duration_seconds,
                on_winner: match d.stopping.on_winner {
                    OnWinner::KeepLearning => pb::OnWinner::KeepLearning,
                    OnWinner::Exploit => pb::OnWinner::Exploit,
                } as i32,
            }),
            description: d.description.clone(),
            labels: d.labels.clone().into_iter().collect(),
            created_ms: def.created_ms,
        }
    }
}

/// Create and AddArm answer the definition and whether it was new.
impl From<(ExperimentDef, bool)> for pb::CreateExperimentResponse {
    fn from((def, created): (ExperimentDef, bool)) -> Self {
        pb::CreateExperimentResponse {
            experiment: Some((&def).into()),
            created,
        }
    }
}

impl From<(ExperimentDef, bool)> for pb::AddArmResponse {
    fn from((def, created): (ExperimentDef, bool)) -> Self {
        pb::AddArmResponse {
            experiment: Some((&def).into()),
            created,
        }
    }
}

impl From<ExperimentDef> for pb::RetireArmResponse {
    fn from(def: ExperimentDef) -> Self {
        pb::RetireArmResponse {
            experiment: Some((&def).into()),
        }
    }
}

impl From<ExperimentSummary> for pb::GetExperimentResponse {
    fn from(s: ExperimentSummary) -> Self {
        let arms = s
            .arms
            .into_iter()
            .map(|a| {
                let (alpha, beta, mu, kappa) = match a.posterior {
                    Posterior::Beta { alpha, beta } => (alpha, beta, 0.0, 0.0),
                    Posterior::NormalInverseGamma {
                        mu,
                        kappa,
                        alpha,
                        beta,
                    } => (alpha, beta, mu, kappa),
                };
                pb::ArmSummary {
                    name: a.name,
                    retired: a.retired,
                    rewards: a.rewards,
                    evidence: a.evidence,
                    mean: a.mean,
                    lower: a.lower,
                    upper: a.upper,
                    prob_best: a.prob_best,
                    prob_above_threshold: a.prob_above_threshold,
                    alpha,
                    beta,
                    mu,
                    kappa,
                    expected_loss: a.expected_loss,
                    lift_mean: a.lift.map(|l| l.mean),
                    lift_lower: a.lift.map(|l| l.lower),
                    lift_upper: a.lift.map(|l| l.upper),
                }
            })
            .collect();
        pb::GetExperimentResponse {
            experiment: Some((&s.def).into()),
            arms,
            prob_best_draws: s.prob_best_draws as u32,
        }
    }
}

impl From<Choice> for pb::ChooseResponse {
    fn from(c: Choice) -> Self {
        pb::ChooseResponse {
            arm: c.arm,
            decision_id: c.decision_id,
            fallback: c.fallback,
            propensity: c.propensity,
        }
    }
}

impl TryFrom<pb::RewardRequest> for Reward {
    type Error = Error;
    fn try_from(r: pb::RewardRequest) -> Result<Self, Error> {
        let target = match r.target {
            Some(pb::reward_request::Target::DecisionId(t)) => RewardTarget::Decision(t),
            Some(pb::reward_request::Target::Arm(a)) => RewardTarget::Arm(a),
            None => return Err(missing_target()),
        };
        Ok(Reward {
            experiment: r.experiment,
            target,
            value: r.value,
        })
    }
}

impl From<Rewarded> for pb::RewardResponse {
    fn from(r: Rewarded) -> Self {
        pb::RewardResponse {
            arm: r.arm,
            duplicate: r.duplicate,
        }
    }
}

impl From<pb::RewardAggregateRequest> for Aggregate {
    fn from(r: pb::RewardAggregateRequest) -> Self {
        Aggregate {
            experiment: r.experiment,
            arm: r.arm,
            count: r.count,
            sum: r.sum,
            sum_squares: r.sum_squares,
            request_id: r.request_id,
        }
    }
}

impl From<Rewarded> for pb::RewardAggregateResponse {
    fn from(r: Rewarded) -> Self {
        pb::RewardAggregateResponse {
            arm: r.arm,
            duplicate: r.duplicate,
        }
    }
}

impl From<pb::RewardBatchRequest> for Batch {
    fn from(r: pb::RewardBatchRequest) -> Self {
        let rewards = r
            .rewards
            .into_iter()
            .map(|b| BatchItem {
                target: b.target.map(|t| match t {
                    pb::batch_reward::Target::DecisionId(d) => RewardTarget::Decision(d),
                    pb::batch_reward::Target::Arm(a) => RewardTarget::Arm(a),
                }),
                value: b.value,
            })
            .collect();
        Batch {
            experiment: r.experiment,
            rewards,
        }
    }
}

/// One result per item: the arm and duplicate flag, or the error's code
/// name and message (the item failed alone).
impl From<Vec<Result<Rewarded, Error>>> for pb::RewardBatchResponse {
    fn from(out: Vec<Result<Rewarded, Error>>) -> Self {
        let results = out
            .into_iter()
            .map(|r| match r {
                Ok(r) => pb::RewardResult {
                    arm: r.arm,
                    duplicate: r.duplicate,
                    ..Default::default()
                },
                Err(e) => pb::RewardResult {
                    error_code: e.kind.name().to_string(),
                    error_message: e.message,
                    ..Default::default()
                },
            })
            .collect();
        pb::RewardBatchResponse { results }
    }
}

// ---- lists ---------------------------------------------------------------

impl TryFrom<&pb::ListExperimentsRequest> for PageRequest {
    type Error = Error;
    fn try_from(r: &pb::ListExperimentsRequest) -> Result<Self, Error> {
        PageRequest::new(r.page_size, &r.page_token)
    }
}

impl TryFrom<&pb::ListStudiesRequest> for PageRequest {
    type Error = Error;
    fn try_from(r: &pb::ListStudiesRequest) -> Result<Self, Error> {
        PageRequest::new(r.page_size, &r.page_token)
    }
}

impl From<Page> for pb::ListExperimentsResponse {
    fn from(p: Page) -> Self {
        pb::ListExperimentsResponse {
            names: p.names,
            next_page_token: p.next_page_token,
            ..Default::default()
        }
    }
}

impl From<Page> for pb::ListStudiesResponse {
    fn from(p: Page) -> Self {
        pb::ListStudiesResponse {
            names: p.names,
            next_page_token: p.next_page_token,
        }
    }
}

// ---- studies -------------------------------------------------------------

fn parameter_from_pb(i: usize, p: pb::Parameter) -> Result<Parameter, Error> {
    use pb::parameter::Kind;
    let kind = match p.kind {
        // step 0 (the proto default) means no step; the domain checks the rest.
        Some(Kind::Float(f)) => ParamKind::Float {
            low: f.low,
            high: f.high,
            log: f.log,
            step: (f.step != 0.0).then_some(f.step),
        },
        Some(Kind::Int(r)) => ParamKind::Int {
            low: r.low,
            high: r.high,
            log: r.log,
            step: (r.step != 0).then_some(r.step),
        },
        Some(Kind::Ordinal(o)) => ParamKind::Ordinal { values: o.values },
        Some(Kind::Categorical(c)) => ParamKind::Categorical {
            values: c.values,
            features: c.features.into_iter().map(|f| f.values).collect(),
        },
        None => {
            return Err(Error::invalid(format!(
                "parameters[{i}]: one of float, int, ordinal or categorical is required"
            )));
        }
    };
    Ok(Parameter { name: p.name, kind })
}

impl From<&Parameter> for pb::Parameter {
    fn from(p: &Parameter) -> Self {
        use pb::parameter::Kind;
        let kind = match &p.kind {
            ParamKind::Float {
                low,
                high,
                log,
                step,
            } => Kind::Float(pb::FloatRange {
                low: *low,
                high: *high,
                log: *log,
                step: step.unwrap_or(0.0),
            }),
            ParamKind::Int {
                low,
                high,
                log,
                step,
            } => Kind::Int(pb::IntRange {
                low: *low,
                high: *high,
                log: *log,
                step: step.unwrap_or(0),
            }),
            ParamKind::Ordinal { values } => Kind::Ordinal(pb::OrdinalValues {
                values: values.clone(),
            }),
            ParamKind::Categorical { values, features } => {
                Kind::Categorical(pb::CategoricalValues {
                    values: values.clone(),
                    features: features
                        .iter()
                        .map(|f| pb::LevelFeatures { values: f.clone() })
                        .collect(),
                })
            }
        };
        pb::Parameter {
            name: p.name.clone(),
            kind: Some(kind),
        }
    }
}

/// The proto's prices are 0 when unset: LAMBDA then takes the built-in
/// price, and a price of the other kind is refused rather than ignored.
fn cost_model_from_pb(c: Option<pb::CostModel>) -> Result<Option<CostModel>, Error> {
    let Some(c) = c else { return Ok(None) };
    let lambda_prices = [
        ("price_per_gb_second_x86_64", c.price_per_gb_second_x86_64),
        ("price_per_gb_second_arm64", c.price_per_gb_second_arm64),
        ("price_per_request", c.price_per_request),
    ];
    let or_default = |v: f64, d: f64| if v == 0.0 { d } else { v };
    match pb::CostModelKind::try_from(c.kind) {
        Ok(pb::CostModelKind::CostModelNone) => {
            if lambda_prices.iter().any(|(_, v)| *v != 0.0) || !c.price_per_hour.is_empty() {
                return Err(Error::invalid(
                    "cost_model.kind: required (LAMBDA or INSTANCE_HOURS) when prices are given",
                ));
            }
            Ok(None)
        }
        Ok(pb::CostModelKind::Lambda) => {
            if !c.price_per_hour.is_empty() {
                return Err(Error::invalid(
                    "cost_model.price_per_hour: only for INSTANCE_HOURS, not LAMBDA",
                ));
            }
            Ok(Some(CostModel::Lambda {
                price_per_gb_second_x86_64: or_default(
                    c.price_per_gb_second_x86_64,
                    crate::bo::cost::LAMBDA_X86_64_PER_GB_SECOND,
                ),
                price_per_gb_second_arm64: or_default(
                    c.price_per_gb_second_arm64,
                    crate::bo::cost::LAMBDA_ARM64_PER_GB_SECOND,
                ),
                price_per_request: or_default(
                    c.price_per_request,
                    crate::bo::cost::LAMBDA_PER_REQUEST,
                ),
            }))
        }
        Ok(pb::CostModelKind::InstanceHours) => {
            if let Some((name, _)) = lambda_prices.iter().find(|(_, v)| *v != 0.0) {
                return Err(Error::invalid(format!(
                    "cost_model.{name}: only for LAMBDA, not INSTANCE_HOURS"
                )));
            }
            Ok(Some(CostModel::InstanceHours {
                price_per_hour: c.price_per_hour.into_iter().collect(),
            }))
        }
        Err(_) => Err(Error::invalid(format!(
            "cost_model.kind: must be LAMBDA or INSTANCE_HOURS, got {}",
            c.kind
        ))),
    }
}

fn cost_model_to_pb(c: &CostModel) -> pb::CostModel {
    match c {
        CostModel::Lambda {
            price_per_gb_second_x86_64,
            price_per_gb_second_arm64,
            price_per_request,
        } => pb::CostModel {
            kind: pb::CostModelKind::Lambda as i32,
            price_per_gb_second_x86_64: *price_per_gb_second_x86_64,
            price_per_gb_second_arm64: *price_per_gb_second_arm64,
            price_per_request: *price_per_request,
            price_per_hour: Default::default(),
        },
        CostModel::InstanceHours { price_per_hour } => pb::CostModel {
            kind: pb::CostModelKind::InstanceHours as i32,
            price_per_hour: price_per_hour
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            ..Default::default()
        },
    }
}

fn goal_from_pb(field: &str, goal: i32) -> Result<Goal, Error> {
    match pb::Goal::try_from(goal) {
        Ok(pb::Goal::Minimize) => Ok(Goal::Minimize),
        Ok(pb::Goal::Maximize) => Ok(Goal::Maximize),
        Err(_) => Err(Error::invalid(format!(
            "{field}: must be MINIMIZE or MAXIMIZE, got {goal}"
        ))),
    }
}

fn goal_to_pb(goal: Goal) -> i32 {
    let g = match goal {
        Goal::Minimize => pb::Goal::Minimize,
        Goal::Maximize => pb::Goal::Maximize,
    };
    g as i32
}

/// A validated study definition: Suggest and Observe never re-check it.
impl TryFrom<pb::CreateStudyRequest> for StudyDef {
    type Error = Error;
    fn try_from(r: pb::CreateStudyRequest) -> Result<Self, Error> {
        name::validate("name", &r.name).map_err(Error::invalid)?;
        let parameters = r
            .parameters
            .into_iter()
            .enumerate()
            .map(|(i, p)| parameter_from_pb(i, p))
            .collect::<Result<Vec<_>, _>>()?;
        let objectives = r
            .objectives
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                Ok(crate::bo::pareto::Objective {
                    goal: goal_from_pb(&format!("objectives[{i}].goal"), o.goal)?,
                    name: o.name,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let (objective, goal) = match (r.objective, objectives.first()) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "objectives: exclusive with `objective`; set `objective` for one objective or `objectives` for several",
                ));
            }
            (Some(o), None) => {
                let goal = goal_from_pb("objective.goal", o.goal)?;
                (o.name, goal)
            }
            (None, Some(first)) => (first.name.clone(), first.goal),
            (None, None) => {
                return Err(Error::invalid(
                    "objective: required ({name, goal}), or `objectives` for several",
                ));
            }
        };
        let acquisition = match pb::Acquisition::try_from(r.acquisition) {
            Ok(pb::Acquisition::LogEi) => Acquisition::LogEi,
            Ok(pb::Acquisition::Ucb) => Acquisition::Ucb {
                beta: crate::bo::DEFAULT_UCB_BETA,
            },
            Ok(pb::Acquisition::Pi) => Acquisition::Pi,
            Err(_) => {
                return Err(Error::invalid(format!(
                    "acquisition: must be LOG_EI, UCB or PI, got {}",
                    r.acquisition
                )));
            }
        };
        let space = SearchSpace { parameters };
        let n_initial = if r.n_initial == 0 {
            default_n_initial(space.parameters.len())
        } else {
            r.n_initial as usize
        };
        let spec = StudySpec {
            space,
            goal,
            constraints: r
                .constraints
                .into_iter()
                .map(|c| Constraint {
                    metric: c.metric,
                    // Neither bound: what a client from before lower bounds
                    // sends for `metric <= 0` (proto3 leaves a 0 off the wire).
                    upper_bound: match (c.upper_bound, c.lower_bound) {
                        (None, None) => Some(0.0),
                        (u, _) => u,
                    },
                    lower_bound: c.lower_bound,
                })
                .collect(),
            n_initial,
            acquisition,
            seed: r.seed,
            cost_model: cost_model_from_pb(r.cost_model)?,
        };
        let def = StudyDef {
            name: r.name,
            spec,
            objective,
            metrics: r.metrics,
            trial_timeout_seconds: r.trial_timeout_seconds,
            max_pending: match r.max_pending {
                0 => DEFAULT_MAX_PENDING,
                n => n as usize,
            },
            objectives,
            reference_point: r.reference_point,
        };
        def.validate()?;
        Ok(def)
    }
}

impl From<&StudyDef> for pb::Study {
    fn from(d: &StudyDef) -> Self {
        pb::Study {
            name: d.name.clone(),
            parameters: d.spec.space.parameters.iter().map(Into::into).collect(),
            // Exclusive with `objectives`, as in the request.
            objective: d.objectives.is_empty().then(|| pb::Objective {
                name: d.objective.clone(),
                goal: goal_to_pb(d.spec.goal),
            }),
            objectives: d
                .objectives
                .iter()
                .map(|o| pb::Objective {
                    name: o.name.clone(),
                    goal: goal_to_pb(o.goal),
                })
                .collect(),
            reference_point: d.reference_point.clone(),
            cost_model: d.spec.cost_model.as_ref().map(cost_model_to_pb),
            constraints: d
                .spec
                .constraints
                .iter()
                .map(|c| pb::Constraint {
                    metric: c.metric.clone(),
                    upper_bound: c.upper_bound,
                    lower_bound: c.lower_bound,
                })
                .collect(),
            n_initial: d.spec.n_initial as u32,
            acquisition: match d.spec.acquisition {
                Acquisition::LogEi => pb::Acquisition::LogEi,
                Acquisition::Ucb { .. } => pb::Acquisition::Ucb,
                Acquisition::Pi => pb::Acquisition::Pi,
            } as i32,
            seed: d.spec.seed,
            metrics: d.metrics.clone(),
            trial_timeout_seconds: d.trial_timeout_seconds,
            max_pending: d.max_pending as u32,
        }
    }
}

impl From<(StudyDef, bool)> for pb::CreateStudyResponse {
    fn from((def, created): (StudyDef, bool)) -> Self {
        pb::CreateStudyResponse {
            study: Some((&def).into()),
            created,
        }
    }
}

impl From<&Trial> for pb::Trial {
    fn from(t: &Trial) -> Self {
        pb::Trial {
            trial_id: t.id,
            params: t
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.into()))
                .collect(),
            state: match t.state {
                TrialState::Pending => pb::TrialState::Pending,
                TrialState::Completed => pb::TrialState::Completed,
                TrialState::Failed => pb::TrialState::Failed,
                TrialState::Abandoned => pb::TrialState::Abandoned,
                TrialState::Queued => pb::TrialState::Queued,
            } as i32,
            value: t.value,
            metrics: t.metrics.clone().into_iter().collect(),
            suggested_ms: t.suggested_ms,
            observed_ms: t.observed_ms.unwrap_or(0),
            reason: t.reason.clone().unwrap_or_default(),
        }
    }
}

impl From<StudyView> for pb::GetStudyResponse {
    fn from(v: StudyView) -> Self {
        let s = &v.state;
        let trial = |i: Option<usize>| i.and_then(|i| s.trials.get(i)).map(pb::Trial::from);
        let front = v.front;
        pb::GetStudyResponse {
            study: Some((&s.def).into()),
            trials: s.trials.iter().map(Into::into).collect(),
            best: v.best.as_ref().and_then(|b| trial(b.best_observed)),
            recommended: v.best.as_ref().and_then(|b| {
                trial(b.recommended).map(|t| pb::Recommendation {
                    trial: Some(t),
                    mean: b.mean,
                    std: b.std,
                })
            }),
            exhausted: s.exhausted(),
            calibration: v.best.as_ref().and_then(|b| b.calibration),
            pareto_front: front.as_ref().map_or_else(Vec::new, |f| {
                f.trials.iter().filter_map(|&i| trial(Some(i))).collect()
            }),
            hypervolume: front.as_ref().and_then(|f| f.hypervolume),
            reference_point: front.map(|f| f.reference).unwrap_or_default(),
        }
    }
}

impl From<Vec<Trial>> for pb::SuggestResponse {
    fn from(trials: Vec<Trial>) -> Self {
        pb::SuggestResponse {
            trials: trials.iter().map(Into::into).collect(),
        }
    }
}

impl From<pb::ObserveRequest> for Observation {
    fn from(r: pb::ObserveRequest) -> Self {
        Observation {
            study: r.study,
            trial_id: r.trial_id,
            value: r.value,
            metrics: r.metrics.into_iter().collect::<BTreeMap<_, _>>(),
            failed: r.failed,
        }
    }
}

impl From<Trial> for pb::ObserveResponse {
    fn from(t: Trial) -> Self {
        pb::ObserveResponse {
            trial: Some((&t).into()),
        }
    }
}

/// A configuration as a caller sends it (EnqueueTrial, AddTrial): every
/// value needs its kind; the space checks the rest.
fn params_from_pb(params: HashMap<String, pb::Value>) -> Result<Point, Error> {
    params
        .into_iter()
        .map(|(k, v)| match v.kind {
            Some(pb::value::Kind::Number(x)) => Ok((k, ParamValue::Number(x))),
            Some(pb::value::Kind::Category(c)) => Ok((k, ParamValue::Category(c))),
            None => Err(Error::invalid(format!(
                "params.{k}: a value needs `number` (float, int, ordinal) or `category`"
            ))),
        })
        .collect()
}

impl TryFrom<pb::AddTrialRequest> for NewTrial {
    type Error = Error;
    fn try_from(r: pb::AddTrialRequest) -> Result<Self, Error> {
        Ok(NewTrial {
            study: r.study,
            params: params_from_pb(r.params)?,
            value: r.value,
            metrics: r.metrics.into_iter().collect(),
            failed: r.failed,
        })
    }
}

/// The configuration of an EnqueueTrial request.
impl TryFrom<pb::EnqueueTrialRequest> for Point {
    type Error = Error;
    fn try_from(r: pb::EnqueueTrialRequest) -> Result<Self, Error> {
        params_from_pb(r.params)
    }
}

impl From<Trial> for pb::AbandonTrialResponse {
    fn from(t: Trial) -> Self {
        pb::AbandonTrialResponse {
            trial: Some((&t).into()),
        }
    }
}

impl From<Trial> for pb::EnqueueTrialResponse {
    fn from(t: Trial) -> Self {
        pb::EnqueueTrialResponse {
            trial: Some((&t).into()),
        }
    }
}

impl From<Trial> for pb::AddTrialResponse {
    fn from(t: Trial) -> Self {
        pb::AddTrialResponse {
            trial: Some((&t).into()),
        }
    }
}

// ---- verdicts, gates, listings ---------------------------------------------

impl From<crate::bandit::verdict::Status> for pb::get_verdict_response::Status {
    fn from(s: crate::bandit::verdict::Status) -> Self {
        use crate::bandit::verdict::Status;
        match s {
            Status::Running => pb::get_verdict_response::Status::Running,
            Status::Winner => pb::get_verdict_response::Status::Winner,
            Status::Inconclusive => pb::get_verdict_response::Status::Inconclusive,
        }
    }
}

impl From<crate::app::verdict::VerdictView> for pb::GetVerdictResponse {
    fn from(v: crate::app::verdict::VerdictView) -> Self {
        pb::GetVerdictResponse {
            status: pb::get_verdict_response::Status::from(v.status) as i32,
            winner: v.winner.unwrap_or_default(),
            reason: v.reason,
            arms: v
                .arms
                .into_iter()
                .map(|a| pb::ArmVerdict {
                    name: a.name,
                    prob_best: a.prob_best,
                    expected_loss: a.expected_loss,
                    rewards: a.rewards,
                })
                .collect(),
        }
    }
}

impl From<pb::GateRequest> for crate::app::verdict::GateRequest {
    fn from(r: pb::GateRequest) -> Self {
        crate::app::verdict::GateRequest {
            experiment: r.experiment,
            baseline: r.baseline,
            candidate: r.candidate,
            margin: r.margin,
            slo: r.slo,
            min_rewards: r.min_rewards,
            confidence: r.confidence,
        }
    }
}

impl From<crate::app::verdict::GateView> for pb::GateResponse {
    fn from(g: crate::app::verdict::GateView) -> Self {
        use crate::bandit::verdict::GateVerdict;
        let verdict = match g.answer.verdict {
            GateVerdict::Inconclusive => pb::gate_response::Verdict::Inconclusive,
            GateVerdict::Pass => pb::gate_response::Verdict::Pass,
            GateVerdict::Fail => pb::gate_response::Verdict::Fail,
        };
        pb::GateResponse {
            verdict: verdict as i32,
            prob_candidate_worse: g.answer.prob_candidate_worse,
            prob_slo_breach: g.answer.prob_slo_breach,
            baseline_rewards: g.baseline_rewards,
            candidate_rewards: g.candidate_rewards,
            reason: g.answer.reason,
        }
    }
}

impl From<crate::app::verdict::ExperimentPage> for pb::ListExperimentsResponse {
    fn from(p: crate::app::verdict::ExperimentPage) -> Self {
        pb::ListExperimentsResponse {
            names: p.page.names,
            next_page_token: p.page.next_page_token,
            experiments: p
                .listings
                .into_iter()
                .map(|l| pb::ExperimentListing {
                    name: l.name,
                    model: pb::RewardModel::from(l.model) as i32,
                    arms: l.active_arms,
                    rewards: l.rewards,
                    status: pb::get_verdict_response::Status::from(l.status) as i32,
                    description: l.description,
                    labels: l.labels.into_iter().collect(),
                })
                .collect(),
        }
    }
}

// ---- history ---------------------------------------------------------------

impl From<Vec<crate::bandit::history::HistoryPoint>> for pb::GetExperimentHistoryResponse {
    fn from(points: Vec<crate::bandit::history::HistoryPoint>) -> Self {
        pb::GetExperimentHistoryResponse {
            points: points
                .into_iter()
                .map(|p| pb::HistoryPoint {
                    time_ms: p.time_ms,
                    arms: p
                        .arms
                        .into_iter()
                        .map(|a| pb::HistoryArm {
                            name: a.name,
                            rewards: a.rewards,
                            evidence: a.evidence,
                            mean: a.mean,
                            lower: a.lower,
                            upper: a.upper,
                            prob_best: a.prob_best,
                            decisions: a.decisions,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl From<&ParamValue> for pb::Value {
    fn from(v: &ParamValue) -> Self {
        let kind = match v {
            ParamValue::Number(x) => pb::value::Kind::Number(*x),
            ParamValue::Category(c) => pb::value::Kind::Category(c.clone()),
        };
        pb::Value { kind: Some(kind) }
    }
}

impl From<crate::app::studies::SlicesView> for pb::GetStudySlicesResponse {
    fn from(v: crate::app::studies::SlicesView) -> Self {
        let Some(s) = v.slices else {
            return pb::GetStudySlicesResponse::default();
        };
        pb::GetStudySlicesResponse {
            recommended: v.state.trials.get(s.recommended).map(pb::Trial::from),
            slices: s
                .slices
                .into_iter()
                .map(|p| pb::ParameterSlice {
                    parameter: p.parameter,
                    values: p.values.iter().map(Into::into).collect(),
                    mean: p.mean,
                    std: p.std,
                })
                .collect(),
            calibration: s.calibration,
        }
    }
}
