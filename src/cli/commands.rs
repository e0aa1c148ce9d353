//! What each client subcommand does: check what clap cannot, build the
//! request, connect, call (once, or once per page for lists), then print a
//! table or, with `--json`, the answer itself.

use std::collections::HashSet;

use super::client::Client;
use super::render::{self, ToJson, emit, num_short, print_json};
use super::{Command, Conn, Error, ExperimentCmd, ModelArg, StudyCmd};
use crate::pb;

/// Names per list page: the most the API allows, for the fewest round trips.
const PAGE_SIZE: i32 = 1_000;

/// Runs one client subcommand (`serve` is not one).
pub async fn run(conn: &Conn, command: Command) -> Result<(), Error> {
    match command {
        Command::Serve(_) => Err(Error::Usage("serve is not a client command".into())),
        Command::Experiment(cmd) => experiment(conn, cmd).await,
        Command::Study(cmd) => study(conn, cmd).await,
        Command::Gate {
            experiment,
            baseline,
            candidate,
            margin,
            slo,
            min_rewards,
            confidence,
        } => {
            let r = Client::connect(conn)
                .await?
                .gate(pb::GateRequest {
                    experiment,
                    baseline,
                    candidate,
                    margin,
                    slo,
                    min_rewards,
                    confidence,
                })
                .await?;
            if conn.json {
                print_json(&r.to_json())?;
            } else {
                emit(&render::gate(&r))?;
            }
            match pb::gate_response::Verdict::try_from(r.verdict) {
                Ok(pb::gate_response::Verdict::Pass) => Ok(()),
                Ok(pb::gate_response::Verdict::Fail) => Err(Error::Exit(1)),
                _ => Err(Error::Exit(3)),
            }
        }
        Command::Choose {
            experiment,
            eligible,
        } => {
            let r = Client::connect(conn)
                .await?
                .choose(pb::ChooseRequest {
                    experiment,
                    eligible_arms: eligible,
                    ..Default::default()
                })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            let mut text = format!("arm:         {}\ndecision_id: {}\n", r.arm, r.decision_id);
            if r.fallback {
                text.push_str(
                    "fallback:    true (store unreachable: the configured fallback arm)\n",
                );
            }
            emit(&text)
        }
        Command::Reward {
            experiment,
            decision,
            arm,
            value,
        } => {
            let target = match (decision, arm) {
                (Some(d), _) => pb::reward_request::Target::DecisionId(d),
                (None, Some(a)) => pb::reward_request::Target::Arm(a),
                // clap requires one of them; kept for callers other than clap.
                (None, None) => {
                    return Err(Error::Usage("give --decision ID or --arm NAME".into()));
                }
            };
            let r = Client::connect(conn)
                .await?
                .reward(pb::RewardRequest {
                    experiment,
                    target: Some(target),
                    value,
                })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&if r.duplicate {
                format!(
                    "{}: duplicate decision, already counted (not applied again)\n",
                    r.arm
                )
            } else {
                format!("{}: reward {} applied\n", r.arm, num_short(value))
            })
        }
        Command::Suggest { study, count } => {
            let r = Client::connect(conn)
                .await?
                .suggest(pb::SuggestRequest { study, count })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            let text: String = r
                .trials
                .iter()
                .map(|t| format!("trial {}: {}\n", t.trial_id, render::params(&t.params)))
                .collect();
            emit(&text)
        }
        Command::Observe {
            study,
            trial,
            value,
            metrics,
            failed,
        } => {
            let mut client = Client::connect(conn).await?;
            // Without --value the study must take its value from the
            // metrics (a cost model, several objectives): a 0 sent for a
            // plain study would be recorded as its result.
            if value.is_none() && !failed {
                let s = client
                    .get_study(pb::GetStudyRequest {
                        name: study.clone(),
                    })
                    .await?
                    .study
                    .unwrap_or_default();
                if s.cost_model.is_none() && s.objectives.is_empty() {
                    return Err(Error::Usage(format!(
                        "--value is required: study {study:?} has one objective ({}) and no cost model (or give --failed)",
                        s.objective.map(|o| o.name).unwrap_or_default()
                    )));
                }
            }
            let r = client
                .observe(pb::ObserveRequest {
                    study,
                    trial_id: trial,
                    // Ignored by the server when failed (clap refuses both),
                    // with a cost model, and with several objectives.
                    value: value.unwrap_or(0.0),
                    metrics: metrics.into_iter().collect(),
                    failed,
                })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            let t = r.trial.unwrap_or_default();
            let state = pb::TrialState::try_from(t.state).map_or("?", |s| s.as_str_name());
            emit(&format!("trial {} {state}\n", t.trial_id))
        }
        Command::Abandon {
            study,
            trial,
            reason,
        } => {
            let r = Client::connect(conn)
                .await?
                .abandon_trial(pb::AbandonTrialRequest {
                    study,
                    trial_id: trial,
                    reason,
                })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&trial_line(r.trial))
        }
        Command::Enqueue { study, params } => {
            let mut c = Client::connect(conn).await?;
            let params = typed_params(&mut c, &study, params).await?;
            let r = c
                .enqueue_trial(pb::EnqueueTrialRequest { study, params })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&trial_line(r.trial))
        }
        Command::AddTrial {
            study,
            params,
            value,
            metrics,
            failed,
        } => {
            let mut c = Client::connect(conn).await?;
            let params = typed_params(&mut c, &study, params).await?;
            let r = c
                .add_trial(pb::AddTrialRequest {
                    study,
                    params,
                    // Ignored by the server when failed (clap refuses both).
                    value: value.unwrap_or(0.0),
                    metrics: metrics.into_iter().collect(),
                    failed,
                })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&trial_line(r.trial))
        }
    }
}

/// `trial 7 QUEUED: memory_mb=1024 arch=arm64`.
fn trial_line(t: Option<pb::Trial>) -> String {
    let t = t.unwrap_or_default();
    let state = pb::TrialState::try_from(t.state).map_or("?", |s| s.as_str_name());
    format!(
        "trial {} {state}: {}\n",
        t.trial_id,
        render::params(&t.params)
    )
}

/// `--param NAME=VALUE` as typed values: the study's definition says which
/// parameters are categorical (a category may look like a number, e.g. a
/// level "2"); every other value must be a number. Names the study does not
/// have are sent as they are, and the server's answer names them.
async fn typed_params(
    c: &mut Client,
    study: &str,
    raw: Vec<(String, String)>,
) -> Result<std::collections::HashMap<String, pb::Value>, Error> {
    use pb::value::Kind;
    let def = c
        .get_study(pb::GetStudyRequest { name: study.into() })
        .await?
        .study
        .unwrap_or_default();
    let categorical = |name: &str| {
        def.parameters
            .iter()
            .any(|p| p.name == name && matches!(p.kind, Some(pb::parameter::Kind::Categorical(_))))
    };
    let mut out = std::collections::HashMap::new();
    for (name, v) in raw {
        let kind = if categorical(&name) {
            Kind::Category(v)
        } else {
            match v.parse::<f64>() {
                Ok(x) => Kind::Number(x),
                Err(_) if def.parameters.iter().any(|p| p.name == name) => {
                    return Err(Error::Usage(format!(
                        "--param {name}={v}: {name} is a numeric parameter, {v:?} is not a number"
                    )));
                }
                Err(_) => Kind::Category(v),
            }
        };
        if out
            .insert(name.clone(), pb::Value { kind: Some(kind) })
            .is_some()
        {
            return Err(Error::Usage(format!("--param {name}: given twice")));
        }
    }
    Ok(out)
}

async fn experiment(conn: &Conn, cmd: ExperimentCmd) -> Result<(), Error> {
    match cmd {
        ExperimentCmd::Create {
            name,
            arms,
            model,
            alpha,
            beta,
            half_life,
        } => {
            let prior = match (model, alpha, beta) {
                (_, None, None) => None,
                (ModelArg::Bernoulli, a, b) => Some(
                    pb::create_experiment_request::Prior::BetaPrior(pb::BetaPrior {
                        alpha: a.unwrap_or(1.0),
                        beta: b.unwrap_or(1.0),
                    }),
                ),
                (ModelArg::Gaussian, _, _) => {
                    return Err(Error::Usage(
                        "--alpha/--beta set a BERNOULLI Beta prior; GAUSSIAN experiments use the default prior from the CLI".into(),
                    ));
                }
            };
            let model = match model {
                ModelArg::Bernoulli => pb::RewardModel::Bernoulli,
                ModelArg::Gaussian => pb::RewardModel::Gaussian,
            };
            let r = Client::connect(conn)
                .await?
                .create_experiment(pb::CreateExperimentRequest {
                    name,
                    arms,
                    model: model as i32,
                    prior,
                    half_life_seconds: half_life,
                    ..Default::default()
                })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            let e = r.experiment.unwrap_or_default();
            let verb = if r.created {
                "created"
            } else {
                "already exists (identical)"
            };
            emit(&format!(
                "experiment {} {verb}: {} arms\n",
                e.name,
                e.arms.len()
            ))
        }
        ExperimentCmd::Show { name, threshold } => {
            let r = Client::connect(conn)
                .await?
                .get_experiment(pb::GetExperimentRequest { name, threshold })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&render::experiment(&r, threshold))
        }
        ExperimentCmd::Verdict { name } => {
            let r = Client::connect(conn)
                .await?
                .get_verdict(pb::GetVerdictRequest { name })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&render::verdict(&r))
        }
        ExperimentCmd::List => {
            let mut c = Client::connect(conn).await?;
            let names = all_pages(async |page_token| {
                let r = c
                    .list_experiments(pb::ListExperimentsRequest {
                        page_size: PAGE_SIZE,
                        page_token,
                    })
                    .await?;
                Ok((r.names, r.next_page_token))
            })
            .await?;
            if conn.json {
                // Every page in one answer, as if the server had sent one.
                let all = pb::ListExperimentsResponse {
                    names,
                    next_page_token: String::new(),
                    ..Default::default()
                };
                return print_json(&all.to_json());
            }
            emit(&render::names(&names, "no experiments"))
        }
        ExperimentCmd::Delete { name } => {
            let r = Client::connect(conn)
                .await?
                .delete_experiment(pb::DeleteExperimentRequest { name: name.clone() })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&format!("experiment {name} deleted\n"))
        }
        ExperimentCmd::AddArm { experiment, arm } => {
            let r = Client::connect(conn)
                .await?
                .add_arm(pb::AddArmRequest {
                    experiment,
                    arm: arm.clone(),
                })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            let what = if r.created { "added" } else { "already active" };
            emit(&format!("arm {arm} {what}\n"))
        }
        ExperimentCmd::RetireArm { experiment, arm } => {
            let r = Client::connect(conn)
                .await?
                .retire_arm(pb::RetireArmRequest {
                    experiment,
                    arm: arm.clone(),
                })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&format!("arm {arm} retired\n"))
        }
        ExperimentCmd::RewardBatch { name, file } => reward_batch(conn, name, &file).await,
        ExperimentCmd::RewardAggregate {
            name,
            arm,
            count,
            sum,
            sum_squares,
            request_id,
        } => {
            // No id given: a fresh one, so this invocation counts once even
            // when the call is retried; printed so a rerun can reuse it.
            let request_id =
                request_id.unwrap_or_else(|| format!("cli-{:016x}", rand::random::<u64>()));
            let r = Client::connect(conn)
                .await?
                .reward_aggregate(pb::RewardAggregateRequest {
                    experiment: name,
                    arm,
                    count,
                    sum,
                    sum_squares,
                    request_id: request_id.clone(),
                })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&if r.duplicate {
                format!(
                    "{}: request {request_id} already counted (not applied again)\n",
                    r.arm
                )
            } else {
                format!(
                    "{}: {count} outcomes (sum {}) applied, request {request_id}\n",
                    r.arm,
                    num_short(sum)
                )
            })
        }
    }
}

async fn study(conn: &Conn, cmd: StudyCmd) -> Result<(), Error> {
    match cmd {
        StudyCmd::Create { name, space } => {
            // The file first: a typo in it should not wait for a server.
            let text = std::fs::read_to_string(&space)
                .map_err(|e| Error::Failed(format!("{}: {e}", space.display())))?;
            let req = crate::space_file::parse_at(&name, &text, space.parent())
                .map_err(|e| Error::Failed(format!("{}: {e}", space.display())))?;
            let r = Client::connect(conn).await?.create_study(req).await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            let s = r.study.unwrap_or_default();
            let verb = if r.created {
                "created"
            } else {
                "already exists (identical)"
            };
            emit(&format!(
                "study {} {verb}: {} parameters, {} initial design trials\n",
                s.name,
                s.parameters.len(),
                s.n_initial
            ))
        }
        StudyCmd::Show { name } => {
            let r = Client::connect(conn)
                .await?
                .get_study(pb::GetStudyRequest { name })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&render::study(&r))
        }
        StudyCmd::List => {
            let mut c = Client::connect(conn).await?;
            let names = all_pages(async |page_token| {
                let r = c
                    .list_studies(pb::ListStudiesRequest {
                        page_size: PAGE_SIZE,
                        page_token,
                    })
                    .await?;
                Ok((r.names, r.next_page_token))
            })
            .await?;
            if conn.json {
                let all = pb::ListStudiesResponse {
                    names,
                    next_page_token: String::new(),
                };
                return print_json(&all.to_json());
            }
            emit(&render::names(&names, "no studies"))
        }
        StudyCmd::Delete { name } => {
            let r = Client::connect(conn)
                .await?
                .delete_study(pb::DeleteStudyRequest { name: name.clone() })
                .await?;
            if conn.json {
                return print_json(&r.to_json());
            }
            emit(&format!("study {name} deleted\n"))
        }
    }
}

/// Every name of a paginated list: `page(token)` returns one page's names
/// and the next token; an empty token ends the list. A server that hands
/// out a token twice would loop forever: that is an error, not a list.
async fn all_pages(
    mut page: impl AsyncFnMut(String) -> Result<(Vec<String>, String), Error>,
) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    let mut seen = HashSet::new();
    let mut token = String::new();
    loop {
        let (more, next) = page(token).await?;
        names.extend(more);
        if next.is_empty() {
            return Ok(names);
        }
        if !seen.insert(next.clone()) {
            return Err(Error::Failed(format!(
                "the server sent page token {next:?} twice; stopping after {} names",
                names.len()
            )));
        }
        token = next;
    }
}

/// Rewards per RewardBatch call: the server's cap (`app::ingest::MAX_BATCH_REWARDS`).
const BATCH_SIZE: usize = crate::app::ingest::MAX_BATCH_REWARDS;

/// `experiment reward-batch`: JSON lines in, one result per line out (line
/// numbers from 1, so a refused line is easy to find and resend; by
/// decision id a resend is exactly-once).
async fn reward_batch(conn: &Conn, experiment: String, file: &str) -> Result<(), Error> {
    let text = if file == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Error::Failed(format!("reading standard input: {e}")))?
    } else {
        std::fs::read_to_string(file).map_err(|e| Error::Failed(format!("reading {file}: {e}")))?
    };
    // Parse everything before sending anything: a typo on line 900 must not
    // leave lines 1-899 applied and the rest not.
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: pb::BatchReward = serde_json::from_str(line)
            .map_err(|e| Error::Usage(format!("{file}: line {}: {e}", i + 1)))?;
        items.push((i + 1, item));
    }
    if items.is_empty() {
        return Err(Error::Usage(format!("{file}: no rewards")));
    }
    let mut client = Client::connect(conn).await?;
    let (mut applied, mut duplicates, mut refused) = (0usize, 0usize, 0usize);
    let mut out = Vec::new();
    for chunk in items.chunks(BATCH_SIZE) {
        let r = client
            .reward_batch(pb::RewardBatchRequest {
                experiment: experiment.clone(),
                rewards: chunk.iter().map(|(_, item)| item.clone()).collect(),
            })
            .await?;
        for ((line, _), res) in chunk.iter().zip(r.results) {
            let outcome = if !res.error_code.is_empty() {
                refused += 1;
                "refused"
            } else if res.duplicate {
                duplicates += 1;
                "duplicate"
            } else {
                applied += 1;
                "applied"
            };
            out.push((*line, outcome, res));
        }
    }
    if conn.json {
        let results: Vec<serde_json::Value> = out
            .iter()
            .map(|(line, outcome, r)| {
                serde_json::json!({"line": line, "outcome": outcome, "arm": r.arm,
                    "errorCode": r.error_code, "errorMessage": r.error_message})
            })
            .collect();
        print_json(
            &serde_json::json!({"applied": applied, "duplicates": duplicates,
            "refused": refused, "results": results}),
        )?;
    } else {
        let mut text = String::new();
        for (line, _, r) in out.iter().filter(|(_, o, _)| *o == "refused") {
            text.push_str(&format!(
                "line {line}: {} {}\n",
                r.error_code, r.error_message
            ));
        }
        text.push_str(&format!(
            "{applied} applied, {duplicates} duplicate (already counted), {refused} refused\n"
        ));
        emit(&text)?;
    }
    if refused > 0 {
        return Err(Error::Exit(1));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn pages_are_followed_to_the_empty_token() {
        let pages = [("", vec!["a", "b"], "t1"), ("t1", vec!["c"], "")];
        let mut calls = 0;
        let names = block(all_pages(async |token: String| {
            let (expect, names, next) = &pages[calls];
            assert_eq!(token, *expect);
            calls += 1;
            Ok((
                names.iter().map(|s| s.to_string()).collect(),
                next.to_string(),
            ))
        }))
        .expect("pages");
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(calls, 2);
    }

    #[test]
    fn a_repeated_token_stops_the_loop() {
        let mut calls = 0;
        let r = block(all_pages(async |_token: String| {
            calls += 1;
            Ok((vec!["x".to_string()], "same".to_string()))
        }));
        match r {
            Err(Error::Failed(m)) => assert!(m.contains("twice"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(calls, 2);
    }
}
