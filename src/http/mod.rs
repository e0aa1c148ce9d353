//! The HTTP/JSON transport: the same use cases as gRPC, the same messages in
//! their proto3 JSON mapping, Google AIP-style routes (custom methods after
//! a colon). Each handler decodes, calls the application core, encodes.
//!
//! Shedding, API keys and metrics are not here: they wrap both transports
//! at once (`edge`, `telemetry`), since both share one listener.

pub mod json;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::app::page::PageRequest;
use crate::bo::StudyDef;
use crate::error::{Error, ErrorKind};
use crate::pb;
use json::{
    Outcome, decode, error_response, error_response_with_status, path_field, query_error, reply,
};

/// The OpenAPI 3.1 document of every route below (`scripts/gen_openapi.py`
/// writes it from the protos; a test checks it and calls every route).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Header giving the caller's deadline in seconds (decimal), as Google's
/// HTTP APIs spell it; the HTTP counterpart of gRPC's `grpc-timeout`.
pub const DEADLINE_HEADER: &str = "x-server-timeout";

/// The HTTP routes over `app`. `max_body` bounds a request body like
/// `server.max_message_bytes` bounds a gRPC message.
pub fn router(app: Arc<App>, max_body: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/openapi.json", get(openapi))
        .route(
            "/v1/experiments",
            post(create_experiment).get(list_experiments),
        )
        .route(
            "/v1/experiments/{name}",
            get(get_experiment)
                .delete(delete_experiment)
                .post(experiment_method),
        )
        .route("/v1/experiments/{name}/arms", post(add_arm))
        .route(
            "/v1/experiments/{name}/history",
            get(get_experiment_history),
        )
        .route("/v1/experiments/{name}/arms/{arm}", post(arm_method))
        .route("/v1/studies", post(create_study).get(list_studies))
        .route("/v1/studies/{name}/slices", get(get_study_slices))
        .route(
            "/v1/studies/{name}",
            get(get_study).delete(delete_study).post(study_method),
        )
        // The dashboard: `/` and `/ui/...`, static and read-only.
        .merge(crate::ui::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(deadline))
        .with_state(app)
}

type AppState = State<Arc<App>>;
type Body = Result<Bytes, BytesRejection>;

/// The answer of a use case: its message as JSON, or the error body.
fn respond<T: Serialize>(rpc: &'static str, out: Result<T, Error>) -> Response {
    match out {
        Ok(v) => reply(rpc, &v),
        Err(e) => error_response(rpc, &e),
    }
}

/// `checkout:choose` → (`checkout`, `choose`). The verb follows the last
/// colon (names may contain colons) and is letters only.
fn custom_method(segment: &str) -> Option<(&str, &str)> {
    let (name, verb) = segment.rsplit_once(':')?;
    (!verb.is_empty() && verb.bytes().all(|b| b.is_ascii_alphabetic())).then_some((name, verb))
}

fn path_error(e: PathRejection) -> Error {
    Error::invalid(format!("path: {}", e.body_text()))
}

fn unknown_method(what: &str, segment: &str, known: &str) -> Error {
    Error::not_found(format!(
        "path: no custom method in {segment:?} for {what}; POST supports {known}"
    ))
}

// ---- service routes ------------------------------------------------------

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

async fn healthz() -> Response {
    reply("healthz", &Health { status: "SERVING" })
}

async fn readyz(State(app): AppState) -> Response {
    respond(
        "readyz",
        app.ready().await.map(|()| Health { status: "SERVING" }),
    )
}

async fn openapi() -> Response {
    let mut res = ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response();
    res.extensions_mut().insert(Outcome {
        rpc: "openapi",
        error: None,
    });
    res
}

async fn no_route(req: Request) -> Response {
    error_response(
        "other",
        &Error::not_found(format!(
            "path: no route for {} {} (see GET /v1/openapi.json)",
            req.method(),
            req.uri().path()
        )),
    )
}

async fn method_not_allowed(req: Request) -> Response {
    error_response_with_status(
        "other",
        &Error::invalid(format!(
            "method: {} is not allowed on {} (see GET /v1/openapi.json)",
            req.method(),
            req.uri().path()
        )),
        StatusCode::METHOD_NOT_ALLOWED.as_u16(),
    )
}

/// The caller's deadline: past it the request is answered 504
/// DEADLINE_EXCEEDED (work already on the blocking pool runs to its end, as
/// on gRPC).
async fn deadline(req: Request, next: Next) -> Response {
    let Some(v) = req.headers().get(DEADLINE_HEADER) else {
        return next.run(req).await;
    };
    let secs = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0);
    let Some(secs) = secs else {
        return error_response(
            "other",
            &Error::invalid(format!(
                "{DEADLINE_HEADER}: must be a number of seconds in (0, 86400], got {v:?}"
            )),
        );
    };
    match tokio::time::timeout(Duration::from_secs_f64(secs), next.run(req)).await {
        Ok(res) => res,
        Err(_) => error_response(
            "other",
            &Error::new(
                ErrorKind::DeadlineExceeded,
                format!("{DEADLINE_HEADER}: deadline of {secs} s exceeded"),
            ),
        ),
    }
}

// ---- bandits -------------------------------------------------------------

const CREATE_EXPERIMENT: &str = "posterior.v1.Bandits/CreateExperiment";
const GET_EXPERIMENT: &str = "posterior.v1.Bandits/GetExperiment";
const LIST_EXPERIMENTS: &str = "posterior.v1.Bandits/ListExperiments";
const DELETE_EXPERIMENT: &str = "posterior.v1.Bandits/DeleteExperiment";
const ADD_ARM: &str = "posterior.v1.Bandits/AddArm";
const RETIRE_ARM: &str = "posterior.v1.Bandits/RetireArm";
const CHOOSE: &str = "posterior.v1.Bandits/Choose";
const REWARD: &str = "posterior.v1.Bandits/Reward";
const REWARD_AGGREGATE: &str = "posterior.v1.Bandits/RewardAggregate";
const REWARD_BATCH: &str = "posterior.v1.Bandits/RewardBatch";

async fn create_experiment(State(app): AppState, headers: HeaderMap, body: Body) -> Response {
    respond(
        CREATE_EXPERIMENT,
        async {
            let req: pb::CreateExperimentRequest = decode(&headers, body, false)?;
            let out = app.bandits.create(req.try_into()?).await?;
            Ok(pb::CreateExperimentResponse::from(out))
        }
        .await,
    )
}

/// `pageSize` and `pageToken` (the proto names are accepted too); anything
/// else is refused rather than ignored.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    #[serde(alias = "page_size")]
    page_size: Option<i32>,
    #[serde(alias = "page_token")]
    page_token: Option<String>,
}

impl ListQuery {
    fn page(q: Result<Query<ListQuery>, QueryRejection>) -> Result<PageRequest, Error> {
        let Query(q) = q.map_err(query_error)?;
        PageRequest::new(
            q.page_size.unwrap_or(0),
            q.page_token.as_deref().unwrap_or(""),
        )
    }
}

async fn list_experiments(
    State(app): AppState,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    respond(
        LIST_EXPERIMENTS,
        async {
            let page = ListQuery::page(q)?;
            Ok(pb::ListExperimentsResponse::from(
                app.bandits.list_detailed(&page).await?,
            ))
        }
        .await,
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct GetExperimentQuery {
    threshold: Option<f64>,
}

/// `GET /v1/experiments/{name}`, and the GET custom methods `:verdict` and
/// `:gate` (the verb after the last colon; any other suffix is part of the
/// name, as before).
async fn get_experiment(
    State(app): AppState,
    name: Result<Path<String>, PathRejection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    if let Ok(Path(segment)) = &name {
        match custom_method(segment) {
            Some((n, "verdict")) => return get_verdict(&app, n, &uri).await,
            Some((n, "gate")) => return gate(&app, n, &uri, &headers).await,
            _ => {}
        }
    }
    let q = Query::<GetExperimentQuery>::try_from_uri(&uri);
    respond(
        GET_EXPERIMENT,
        async {
            let Path(name) = name.map_err(path_error)?;
            let Query(q) = q.map_err(query_error)?;
            let summary = app.bandits.summary(&name, q.threshold).await?;
            Ok(pb::GetExperimentResponse::from(summary))
        }
        .await,
    )
}

async fn delete_experiment(
    State(app): AppState,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    respond(
        DELETE_EXPERIMENT,
        async {
            let Path(name) = name.map_err(path_error)?;
            app.bandits.delete(&name).await?;
            Ok(pb::DeleteExperimentResponse {})
        }
        .await,
    )
}

/// `POST /v1/experiments/{name}:choose`, `:reward`, `:rewardAggregate` and
/// `:rewardBatch`; `:gate` as with GET
/// (for webhooks that only POST, e.g. Flagger: the query string is the
/// request, the body is the caller's own payload and is not read).
async fn experiment_method(
    State(app): AppState,
    segment: Result<Path<String>, PathRejection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Path(segment) = match segment {
        Ok(s) => s,
        Err(e) => return error_response("other", &path_error(e)),
    };
    match custom_method(&segment) {
        Some((name, "choose")) => respond(
            CHOOSE,
            async {
                let mut req: pb::ChooseRequest = decode(&headers, body, true)?;
                path_field("experiment", name, &mut req.experiment)?;
                Ok(pb::ChooseResponse::from(
                    app.bandits
                        .choose(&req.experiment, &req.eligible_arms, &req.unit_id)
                        .await?,
                ))
            }
            .await,
        ),
        Some((name, "reward")) => respond(
            REWARD,
            async {
                let mut req: pb::RewardRequest = decode(&headers, body, false)?;
                path_field("experiment", name, &mut req.experiment)?;
                Ok(pb::RewardResponse::from(
                    app.bandits.reward(&req.try_into()?).await?,
                ))
            }
            .await,
        ),
        Some((name, "rewardAggregate")) => respond(
            REWARD_AGGREGATE,
            async {
                let mut req: pb::RewardAggregateRequest = decode(&headers, body, false)?;
                path_field("experiment", name, &mut req.experiment)?;
                Ok(pb::RewardAggregateResponse::from(
                    app.bandits.reward_aggregate(&req.into()).await?,
                ))
            }
            .await,
        ),
        Some((name, "rewardBatch")) => respond(
            REWARD_BATCH,
            async {
                let mut req: pb::RewardBatchRequest = decode(&headers, body, false)?;
                path_field("experiment", name, &mut req.experiment)?;
                Ok(pb::RewardBatchResponse::from(
                    app.bandits.reward_batch(&req.into()).await?,
                ))
            }
            .await,
        ),
        Some((name, "gate")) => gate(&app, name, &uri, &headers).await,
        _ => error_response(
            "other",
            &unknown_method(
                "an experiment",
                &segment,
                ":choose, :reward, :rewardAggregate, :rewardBatch and :gate",
            ),
        ),
    }
}

async fn add_arm(
    State(app): AppState,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(
        ADD_ARM,
        async {
            let Path(name) = name.map_err(path_error)?;
            let mut req: pb::AddArmRequest = decode(&headers, body, false)?;
            path_field("experiment", &name, &mut req.experiment)?;
            Ok(pb::AddArmResponse::from(
                app.bandits.add_arm(&req.experiment, &req.arm).await?,
            ))
        }
        .await,
    )
}

/// `POST /v1/experiments/{name}/arms/{arm}:retire`.
async fn arm_method(
    State(app): AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Path((name, segment)) = match path {
        Ok(p) => p,
        Err(e) => return error_response("other", &path_error(e)),
    };
    match custom_method(&segment) {
        Some((arm, "retire")) => respond(
            RETIRE_ARM,
            async {
                let mut req: pb::RetireArmRequest = decode(&headers, body, true)?;
                path_field("experiment", &name, &mut req.experiment)?;
                path_field("arm", arm, &mut req.arm)?;
                Ok(pb::RetireArmResponse::from(
                    app.bandits.retire_arm(&req.experiment, &req.arm).await?,
                ))
            }
            .await,
        ),
        _ => error_response("other", &unknown_method("an arm", &segment, ":retire")),
    }
}

// ---- studies -------------------------------------------------------------

const CREATE_STUDY: &str = "posterior.v1.Optimizer/CreateStudy";
const GET_STUDY: &str = "posterior.v1.Optimizer/GetStudy";
const LIST_STUDIES: &str = "posterior.v1.Optimizer/ListStudies";
const DELETE_STUDY: &str = "posterior.v1.Optimizer/DeleteStudy";
const SUGGEST: &str = "posterior.v1.Optimizer/Suggest";
const OBSERVE: &str = "posterior.v1.Optimizer/Observe";
const ABANDON_TRIAL: &str = "posterior.v1.Optimizer/AbandonTrial";
const ENQUEUE_TRIAL: &str = "posterior.v1.Optimizer/EnqueueTrial";
const ADD_TRIAL: &str = "posterior.v1.Optimizer/AddTrial";

async fn create_study(State(app): AppState, headers: HeaderMap, body: Body) -> Response {
    respond(
        CREATE_STUDY,
        async {
            let req: pb::CreateStudyRequest = decode(&headers, body, false)?;
            let def: StudyDef = req.try_into()?;
            Ok(pb::CreateStudyResponse::from(
                app.studies.create(def).await?,
            ))
        }
        .await,
    )
}

async fn list_studies(
    State(app): AppState,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    respond(
        LIST_STUDIES,
        async {
            let page = ListQuery::page(q)?;
            Ok(pb::ListStudiesResponse::from(
                app.studies.list(&page).await?,
            ))
        }
        .await,
    )
}

async fn get_study(State(app): AppState, name: Result<Path<String>, PathRejection>) -> Response {
    respond(
        GET_STUDY,
        async {
            let Path(name) = name.map_err(path_error)?;
            Ok(pb::GetStudyResponse::from(app.studies.get(&name).await?))
        }
        .await,
    )
}

async fn delete_study(State(app): AppState, name: Result<Path<String>, PathRejection>) -> Response {
    respond(
        DELETE_STUDY,
        async {
            let Path(name) = name.map_err(path_error)?;
            app.studies.delete(&name).await?;
            Ok(pb::DeleteStudyResponse {})
        }
        .await,
    )
}

/// `POST /v1/studies/{name}:suggest`, `:observe`, `:abandon`, `:enqueue`
/// and `:addTrial`.
async fn study_method(
    State(app): AppState,
    segment: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Path(segment) = match segment {
        Ok(s) => s,
        Err(e) => return error_response("other", &path_error(e)),
    };
    match custom_method(&segment) {
        Some((name, "suggest")) => respond(
            SUGGEST,
            async {
                let mut req: pb::SuggestRequest = decode(&headers, body, true)?;
                path_field("study", name, &mut req.study)?;
                Ok(pb::SuggestResponse::from(
                    app.studies.suggest(&req.study, req.count).await?,
                ))
            }
            .await,
        ),
        Some((name, "observe")) => respond(
            OBSERVE,
            async {
                let mut req: pb::ObserveRequest = decode(&headers, body, false)?;
                path_field("study", name, &mut req.study)?;
                Ok(pb::ObserveResponse::from(
                    app.studies.observe(req.into()).await?,
                ))
            }
            .await,
        ),
        Some((name, "abandon")) => respond(
            ABANDON_TRIAL,
            async {
                let mut req: pb::AbandonTrialRequest = decode(&headers, body, false)?;
                path_field("study", name, &mut req.study)?;
                Ok(pb::AbandonTrialResponse::from(
                    app.studies
                        .abandon(&req.study, req.trial_id, req.reason)
                        .await?,
                ))
            }
            .await,
        ),
        Some((name, "enqueue")) => respond(
            ENQUEUE_TRIAL,
            async {
                let mut req: pb::EnqueueTrialRequest = decode(&headers, body, false)?;
                path_field("study", name, &mut req.study)?;
                let study = req.study.clone();
                Ok(pb::EnqueueTrialResponse::from(
                    app.studies.enqueue(&study, req.try_into()?).await?,
                ))
            }
            .await,
        ),
        Some((name, "addTrial")) => respond(
            ADD_TRIAL,
            async {
                let mut req: pb::AddTrialRequest = decode(&headers, body, false)?;
                path_field("study", name, &mut req.study)?;
                Ok(pb::AddTrialResponse::from(
                    app.studies.add_trial(req.try_into()?).await?,
                ))
            }
            .await,
        ),
        _ => error_response(
            "other",
            &unknown_method(
                "a study",
                &segment,
                ":suggest, :observe, :abandon, :enqueue and :addTrial",
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_methods_follow_the_last_colon() {
        assert_eq!(
            custom_method("checkout:choose"),
            Some(("checkout", "choose"))
        );
        assert_eq!(custom_method("a:b:reward"), Some(("a:b", "reward")));
        assert_eq!(custom_method("checkout"), None);
        assert_eq!(custom_method("a:b2"), None);
        assert_eq!(custom_method("a:"), None);
    }
}

// ---- history ----------------------------------------------------------------

const GET_EXPERIMENT_HISTORY: &str = "posterior.v1.Bandits/GetExperimentHistory";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HistoryQuery {
    /// Parsed below, so a bad value gets a message naming the field.
    #[serde(alias = "since_ms")]
    since_ms: Option<String>,
}

/// `GET /v1/experiments/{name}/history?sinceMs=..`.
async fn get_experiment_history(
    State(app): AppState,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    respond(
        GET_EXPERIMENT_HISTORY,
        async {
            let Path(name) = name.map_err(path_error)?;
            let Query(q) = q.map_err(query_error)?;
            let since_ms = q
                .since_ms
                .map(|s| {
                    s.parse::<i64>().map_err(|_| {
                        Error::invalid(format!(
                            "sinceMs: must be a Unix time in milliseconds (an integer), got {s:?}"
                        ))
                    })
                })
                .transpose()?;
            Ok(pb::GetExperimentHistoryResponse::from(
                app.bandits.history(&name, since_ms).await?,
            ))
        }
        .await,
    )
}

const GET_STUDY_SLICES: &str = "posterior.v1.Optimizer/GetStudySlices";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SlicesQuery {
    /// Parsed below, so a bad value gets a message naming the field.
    points: Option<String>,
}

/// `GET /v1/studies/{name}/slices?points=..`.
async fn get_study_slices(
    State(app): AppState,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<SlicesQuery>, QueryRejection>,
) -> Response {
    respond(
        GET_STUDY_SLICES,
        async {
            let Path(name) = name.map_err(path_error)?;
            let Query(q) = q.map_err(query_error)?;
            let points = q
                .points
                .map(|s| {
                    s.parse::<i32>().map_err(|_| {
                        Error::invalid(format!("points: must be an integer, got {s:?}"))
                    })
                })
                .transpose()?;
            Ok(pb::GetStudySlicesResponse::from(
                app.studies.slices(&name, points).await?,
            ))
        }
        .await,
    )
}

// ---- verdicts and gates ----------------------------------------------------

const GET_VERDICT: &str = "posterior.v1.Bandits/GetVerdict";
const GATE: &str = "posterior.v1.Bandits/Gate";
/// `x-gate-status: 200`: answer every gate verdict with 200.
pub const GATE_STATUS_HEADER: &str = "x-gate-status";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

/// `GET /v1/experiments/{name}:verdict`.
async fn get_verdict(app: &App, name: &str, uri: &axum::http::Uri) -> Response {
    respond(
        GET_VERDICT,
        async {
            Query::<NoQuery>::try_from_uri(uri).map_err(query_error)?;
            Ok(pb::GetVerdictResponse::from(
                app.bandits.verdict(name).await?,
            ))
        }
        .await,
    )
}

/// The gate's query parameters (camelCase, proto names accepted too).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GateQuery {
    baseline: Option<String>,
    candidate: Option<String>,
    margin: Option<f64>,
    slo: Option<f64>,
    #[serde(alias = "min_rewards")]
    min_rewards: Option<u64>,
    confidence: Option<f64>,
}

/// `GET /v1/experiments/{name}:gate?baseline=..&candidate=..`: the
/// GateResponse with 200 on PASS, 412 on FAIL and 425 (Too Early) on
/// INCONCLUSIVE, so a webhook caller can act on the status alone. Errors
/// keep the error table's statuses.
///
/// With the request header `x-gate-status: 200`, every verdict answers 200
/// (the verdict only in the body): for callers such as Argo Rollouts' `web`
/// metric, which treats any non-2xx answer as a measurement error and never
/// reads its body.
async fn gate(app: &App, name: &str, uri: &axum::http::Uri, headers: &HeaderMap) -> Response {
    let always_200 = headers
        .get(GATE_STATUS_HEADER)
        .is_some_and(|v| v.as_bytes() == b"200");
    let out = async {
        let Query(q) = Query::<GateQuery>::try_from_uri(uri).map_err(query_error)?;
        let req = crate::app::verdict::GateRequest {
            experiment: name.to_string(),
            baseline: q.baseline.unwrap_or_default(),
            candidate: q.candidate.unwrap_or_default(),
            margin: q.margin.unwrap_or(0.0),
            slo: q.slo,
            min_rewards: q.min_rewards.unwrap_or(0),
            confidence: q.confidence.unwrap_or(0.0),
        };
        Ok(pb::GateResponse::from(app.bandits.gate(&req).await?))
    }
    .await;
    match out {
        Ok(body) => {
            let status = match pb::gate_response::Verdict::try_from(body.verdict) {
                Ok(pb::gate_response::Verdict::Pass) => StatusCode::OK,
                Ok(pb::gate_response::Verdict::Fail) => StatusCode::PRECONDITION_FAILED,
                _ => StatusCode::from_u16(425).unwrap_or(StatusCode::CONFLICT),
            };
            let mut res = reply(GATE, &body);
            if res.status() == StatusCode::OK && !always_200 {
                *res.status_mut() = status;
            }
            res
        }
        Err(e) => error_response(GATE, &e),
    }
}
