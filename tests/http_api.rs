//! The HTTP/JSON transport against the real server: it must be the same
//! service as gRPC. One scripted sequence runs through gRPC on one server and
//! through HTTP/JSON on another; codes, answers and final states must agree.
//! Then the OpenAPI document (valid, and every operation it lists is a real
//! route), HTTP/1.1 keep-alive and h2c, the deadline header, and the routing
//! of custom methods (`name:verb`, names that contain colons).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use bytes::Bytes;
use common::{Backend, TestServer};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use posterior::pb::{
    self, bandits_client::BanditsClient, optimizer_client::OptimizerClient, parameter::Kind,
    reward_request::Target,
};
use serde::de::DeserializeOwned;
use serde_json::{Value as Json, json};
use tonic::transport::Channel;

// ---- the code table, written out independently of src/error.rs ------------

/// gRPC code name → HTTP status (the standard google.rpc.Code mapping).
const HTTP_STATUS: [(&str, u16); 12] = [
    ("INVALID_ARGUMENT", 400),
    ("FAILED_PRECONDITION", 400),
    ("OUT_OF_RANGE", 400),
    ("UNAUTHENTICATED", 401),
    ("PERMISSION_DENIED", 403),
    ("NOT_FOUND", 404),
    ("ALREADY_EXISTS", 409),
    ("ABORTED", 409),
    ("RESOURCE_EXHAUSTED", 429),
    ("UNAVAILABLE", 503),
    ("DEADLINE_EXCEEDED", 504),
    ("INTERNAL", 500),
];

fn http_status_of(code: &str) -> u16 {
    HTTP_STATUS
        .iter()
        .find(|(n, _)| *n == code)
        .unwrap_or_else(|| panic!("{code} is not in the code table"))
        .1
}

fn grpc_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

// ---- a small HTTP client (hyper's connection API: one TCP connection) -----

enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One HTTP connection to the server: HTTP/1.1 (keep-alive: every request
/// goes over the same TCP connection, so a server that closed it fails the
/// next request) or HTTP/2 with prior knowledge (h2c).
struct Http {
    addr: SocketAddr,
    conn: Conn,
}

struct Reply {
    status: u16,
    version: http::Version,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn is_json(&self) -> bool {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"))
    }

    fn json(&self, what: &str) -> Json {
        assert!(
            self.is_json(),
            "{what}: content-type {:?}, not JSON: {}",
            self.headers.get(http::header::CONTENT_TYPE),
            self.text()
        );
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {}", self.text()))
    }

    /// The error body, checked for our shape: exactly
    /// `{"error": {"code", "status", "message"}}`, `code` the HTTP status,
    /// and the status the table's for the code name (405 aside: no gRPC
    /// code maps to it). Returns (code name, message).
    fn error(&self, what: &str) -> (String, String) {
        assert_ne!(
            self.status,
            200,
            "{what}: expected an error: {}",
            self.text()
        );
        let v = self.json(what);
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("{what}: {v} is not an object"));
        assert_eq!(
            obj.keys().collect::<Vec<_>>(),
            ["error"],
            "{what}: error body {v}"
        );
        let e = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("{what}: {v}"));
        let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["code", "message", "status"],
            "{what}: error body {v}"
        );
        assert_eq!(
            e["code"].as_u64(),
            Some(u64::from(self.status)),
            "{what}: error.code must be the HTTP status: {v}"
        );
        let code = e["status"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: error.status not a string: {v}"));
        let message = e["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: error.message not a string: {v}"));
        assert!(!message.is_empty(), "{what}: empty message: {v}");
        if self.status != 405 {
            assert_eq!(
                self.status,
                http_status_of(code),
                "{what}: HTTP status of {code} per the table: {v}"
            );
        }
        (code.to_string(), message.to_string())
    }

    /// The answer as a message (`Ok`), or the code name of the error.
    fn outcome<T: DeserializeOwned>(&self, what: &str) -> Result<T, Failure> {
        if self.status == 200 {
            assert!(self.is_json(), "{what}: 200 without JSON: {}", self.text());
            return Ok(serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!(
                    "{what}: the answer does not decode as {}: {e}: {}",
                    std::any::type_name::<T>(),
                    self.text()
                )
            }));
        }
        let (code, message) = self.error(what);
        Err(Failure { code, message })
    }
}

impl Http {
    async fn connect(addr: SocketAddr, h2: bool) -> Http {
        let io = TokioIo::new(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        let conn = if h2 {
            let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("h2c handshake");
            tokio::spawn(conn);
            Conn::H2(send)
        } else {
            let (send, conn) = http1::handshake(io).await.expect("HTTP/1.1 handshake");
            tokio::spawn(conn);
            Conn::H1(send)
        };
        Http { addr, conn }
    }

    async fn h1(addr: SocketAddr) -> Http {
        Http::connect(addr, false).await
    }

    async fn h2(addr: SocketAddr) -> Http {
        Http::connect(addr, true).await
    }

    /// A request; a body is sent as `application/json` unless `headers`
    /// name another content type.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let uri = match self.conn {
            Conn::H1(_) => path.to_string(),
            Conn::H2(_) => format!("http://{}{path}", self.addr),
        };
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Conn::H1(_) = self.conn {
            b = b.header("host", self.addr.to_string());
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            b = b.header("content-type", "application/json");
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let res = match &mut self.conn {
            Conn::H1(s) => {
                s.ready()
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path}: connection unusable: {e}"));
                s.send_request(req).await
            }
            Conn::H2(s) => {
                s.ready()
                    .await
                    .unwrap_or_else(|e| panic!("{method} {path}: connection unusable: {e}"));
                s.send_request(req).await
            }
        }
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let (parts, body) = res.into_parts();
        let body = body
            .collect()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"))
            .to_bytes();
        Reply {
            status: parts.status.as_u16(),
            version: parts.version,
            headers: parts.headers,
            body,
        }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, &[], None).await
    }

    async fn post(&mut self, path: &str, body: &Json) -> Reply {
        self.send("POST", path, &[], Some(body.to_string().into_bytes()))
            .await
    }

    async fn delete(&mut self, path: &str) -> Reply {
        self.send("DELETE", path, &[], None).await
    }
}

/// A double as the proto3 JSON mapping writes it: a number, or the strings
/// "NaN", "Infinity", "-Infinity".
fn json_double(x: f64) -> Json {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(x)
    }
}

// ---- one API, two transports -------------------------------------------------

/// A failed call: the gRPC code name (the HTTP side reads it from
/// `error.status`, after checking the HTTP status against the table) and
/// the message.
#[derive(Clone, Debug, PartialEq)]
struct Failure {
    code: String,
    message: String,
}

type Out<T> = Result<T, Failure>;

fn grpc<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Out<T> {
    r.map(tonic::Response::into_inner).map_err(|s| Failure {
        code: grpc_name(s.code()).to_string(),
        message: s.message().to_string(),
    })
}

/// The same calls over gRPC or over HTTP/JSON. The HTTP side decodes every
/// answer as the prost message through its proto3 JSON mapping.
enum Api {
    Grpc(Channel),
    Http(Http),
}

impl Api {
    async fn grpc(url: &str) -> Api {
        Api::Grpc(
            Channel::from_shared(url.to_string())
                .unwrap()
                .connect()
                .await
                .expect("connect"),
        )
    }

    fn transport(&self) -> &'static str {
        match self {
            Api::Grpc(_) => "gRPC",
            Api::Http(_) => "HTTP",
        }
    }

    async fn create_experiment(
        &mut self,
        req: pb::CreateExperimentRequest,
    ) -> Out<pb::CreateExperimentResponse> {
        match self {
            Api::Grpc(c) => grpc(BanditsClient::new(c.clone()).create_experiment(req).await),
            Api::Http(h) => {
                let body = serde_json::to_value(&req).unwrap();
                h.post("/v1/experiments", &body)
                    .await
                    .outcome("CreateExperiment")
            }
        }
    }

    async fn get_experiment(
        &mut self,
        name: &str,
        threshold: Option<f64>,
    ) -> Out<pb::GetExperimentResponse> {
        match self {
            Api::Grpc(c) => grpc(
                BanditsClient::new(c.clone())
                    .get_experiment(pb::GetExperimentRequest {
                        name: name.into(),
                        threshold,
                    })
                    .await,
            ),
            Api::Http(h) => {
                let q = threshold.map_or(String::new(), |t| format!("?threshold={t}"));
                h.get(&format!("/v1/experiments/{name}{q}"))
                    .await
                    .outcome("GetExperiment")
            }
        }
    }

    async fn list_experiments(
        &mut self,
        page_size: i32,
        page_token: &str,
    ) -> Out<pb::ListExperimentsResponse> {
        match self {
            Api::Grpc(c) => grpc(
                BanditsClient::new(c.clone())
                    .list_experiments(pb::ListExperimentsRequest {
                        page_size,
                        page_token: page_token.into(),
                    })
                    .await,
            ),
            Api::Http(h) => h
                .get(&list_path("/v1/experiments", page_size, page_token))
                .await
                .outcome("ListExperiments"),
        }
    }

    async fn delete_experiment(&mut self, name: &str) -> Out<pb::DeleteExperimentResponse> {
        match self {
            Api::Grpc(c) => grpc(
                BanditsClient::new(c.clone())
                    .delete_experiment(pb::DeleteExperimentRequest { name: name.into() })
                    .await,
            ),
            Api::Http(h) => h
                .delete(&format!("/v1/experiments/{name}"))
                .await
                .outcome("DeleteExperiment"),
        }
    }

    async fn add_arm(&mut self, experiment: &str, arm: &str) -> Out<pb::AddArmResponse> {
        match self {
            Api::Grpc(c) => grpc(
                BanditsClient::new(c.clone())
                    .add_arm(pb::AddArmRequest {
                        experiment: experiment.into(),
                        arm: arm.into(),
                    })
                    .await,
            ),
            Api::Http(h) => h
                .post(
                    &format!("/v1/experiments/{experiment}/arms"),
                    &json!({ "arm": arm }),
                )
                .await
                .outcome("AddArm"),
        }
    }

    async fn retire_arm(&mut self, experiment: &str, arm: &str) -> Out<pb::RetireArmResponse> {
        match self {
            Api::Grpc(c) => grpc(
                BanditsClient::new(c.clone())
                    .retire_arm(pb::RetireArmRequest {
                        experiment: experiment.into(),
                        arm: arm.into(),
                    })
                    .await,
            ),
            // No body: `:retire` has no parameters besides the path.
            Api::Http(h) => h
                .send(
                    "POST",
                    &format!("/v1/experiments/{experiment}/arms/{arm}:retire"),
                    &[],
                    None,
                )
                .await
                .outcome("RetireArm"),
        }
    }

    async fn choose(&mut self, experiment: &str, eligible: &[&str]) -> Out<pb::ChooseResponse> {
        let eligible_arms: Vec<String> = eligible.iter().map(|s| s.to_string()).collect();
        match self {
            Api::Grpc(c) => grpc(
                BanditsClient::new(c.clone())
                    .choose(pb::ChooseRequest {
                        experiment: experiment.into(),
                        eligible_arms,
                        ..Default::default()
                    })
                    .await,
            ),
            Api::Http(h) => {
                let body = if eligible.is_empty() {
                    json!({})
                } else {
                    json!({ "eligibleArms": eligible_arms })
                };
                h.post(&format!("/v1/experiments/{experiment}:choose"), &body)
                    .await
                    .outcome("Choose")
            }
        }
    }

    async fn reward(&mut self, req: pb::RewardRequest) -> Out<pb::RewardResponse> {
        match self {
            Api::Grpc(c) => grpc(BanditsClient::new(c.clone()).reward(req).await),
            Api::Http(h) => {
                // Written by hand, in the documented field names.
                let mut body = json!({ "value": json_double(req.value) });
                match &req.target {
                    Some(Target::DecisionId(d)) => body["decisionId"] = json!(d),
                    Some(Target::Arm(a)) => body["arm"] = json!(a),
                    None => {}
                }
                h.post(&format!("/v1/experiments/{}:reward", req.experiment), &body)
                    .await
                    .outcome("Reward")
            }
        }
    }

    async fn create_study(&mut self, req: pb::CreateStudyRequest) -> Out<pb::CreateStudyResponse> {
        match self {
            Api::Grpc(c) => grpc(OptimizerClient::new(c.clone()).create_study(req).await),
            Api::Http(h) => {
                let body = serde_json::to_value(&req).unwrap();
                h.post("/v1/studies", &body).await.outcome("CreateStudy")
            }
        }
    }

    async fn get_study(&mut self, name: &str) -> Out<pb::GetStudyResponse> {
        match self {
            Api::Grpc(c) => grpc(
                OptimizerClient::new(c.clone())
                    .get_study(pb::GetStudyRequest { name: name.into() })
                    .await,
            ),
            Api::Http(h) => h
                .get(&format!("/v1/studies/{name}"))
                .await
                .outcome("GetStudy"),
        }
    }

    async fn list_studies(
        &mut self,
        page_size: i32,
        page_token: &str,
    ) -> Out<pb::ListStudiesResponse> {
        match self {
            Api::Grpc(c) => grpc(
                OptimizerClient::new(c.clone())
                    .list_studies(pb::ListStudiesRequest {
                        page_size,
                        page_token: page_token.into(),
                    })
                    .await,
            ),
            Api::Http(h) => h
                .get(&list_path("/v1/studies", page_size, page_token))
                .await
                .outcome("ListStudies"),
        }
    }

    async fn delete_study(&mut self, name: &str) -> Out<pb::DeleteStudyResponse> {
        match self {
            Api::Grpc(c) => grpc(
                OptimizerClient::new(c.clone())
                    .delete_study(pb::DeleteStudyRequest { name: name.into() })
                    .await,
            ),
            Api::Http(h) => h
                .delete(&format!("/v1/studies/{name}"))
                .await
                .outcome("DeleteStudy"),
        }
    }

    async fn suggest(&mut self, study: &str, count: u32) -> Out<pb::SuggestResponse> {
        match self {
            Api::Grpc(c) => grpc(
                OptimizerClient::new(c.clone())
                    .suggest(pb::SuggestRequest {
                        study: study.into(),
                        count,
                    })
                    .await,
            ),
            Api::Http(h) => h
                .post(
                    &format!("/v1/studies/{study}:suggest"),
                    &json!({ "count": count }),
                )
                .await
                .outcome("Suggest"),
        }
    }

    async fn observe(&mut self, req: pb::ObserveRequest) -> Out<pb::ObserveResponse> {
        match self {
            Api::Grpc(c) => grpc(OptimizerClient::new(c.clone()).observe(req).await),
            Api::Http(h) => {
                // uint64 as a string, as the proto3 JSON mapping writes it.
                let metrics: BTreeMap<&String, Json> = req
                    .metrics
                    .iter()
                    .map(|(k, v)| (k, json_double(*v)))
                    .collect();
                let body = json!({
                    "trialId": req.trial_id.to_string(),
                    "value": json_double(req.value),
                    "metrics": metrics,
                    "failed": req.failed,
                });
                h.post(&format!("/v1/studies/{}:observe", req.study), &body)
                    .await
                    .outcome("Observe")
            }
        }
    }
}

fn list_path(base: &str, page_size: i32, page_token: &str) -> String {
    let mut p = format!("{base}?pageSize={page_size}");
    if !page_token.is_empty() {
        p += &format!("&pageToken={page_token}");
    }
    p
}

// ---- the script -----------------------------------------------------------------

/// One step of the script: what was asked, which code was expected, which
/// came back, and the deterministic part of the answer (or the error
/// message: both transports call the same core, so messages agree too).
#[derive(Clone, Debug, PartialEq)]
struct Step {
    name: String,
    want: &'static str,
    code: String,
    detail: String,
}

#[derive(Default)]
struct Log {
    steps: Vec<Step>,
    /// Expectations that did not hold, besides codes.
    problems: Vec<String>,
}

impl Log {
    fn rec<T>(
        &mut self,
        name: &str,
        want: &'static str,
        out: &Out<T>,
        detail: impl FnOnce(&T) -> String,
    ) {
        let (code, detail) = match out {
            Ok(v) => ("OK".to_string(), detail(v)),
            Err(f) => (f.code.clone(), f.message.clone()),
        };
        self.steps.push(Step {
            name: name.to_string(),
            want,
            code,
            detail,
        });
    }

    /// A step expected to fail: its code and message are recorded.
    fn fails<T>(&mut self, name: &str, want: &'static str, out: &Out<T>) {
        self.rec(name, want, out, |_| String::new());
    }

    /// A step whose whole answer is deterministic.
    fn debug<T: std::fmt::Debug>(&mut self, name: &str, want: &'static str, out: &Out<T>) {
        self.rec(name, want, out, |v| format!("{v:?}"));
    }

    fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.problems.push(what.into());
        }
    }
}

fn bernoulli(name: &str, arms: &[&str]) -> pb::CreateExperimentRequest {
    pb::CreateExperimentRequest {
        name: name.into(),
        arms: arms.iter().map(|s| s.to_string()).collect(),
        model: pb::RewardModel::Bernoulli as i32,
        prior: None,
        half_life_seconds: 0.0,
        ..Default::default()
    }
}

fn reward(exp: &str, target: Target, value: f64) -> pb::RewardRequest {
    pb::RewardRequest {
        experiment: exp.into(),
        target: Some(target),
        value,
    }
}

fn observe(study: &str, trial_id: u64, value: f64, p95: Option<f64>) -> pb::ObserveRequest {
    pb::ObserveRequest {
        study: study.into(),
        trial_id,
        value,
        metrics: p95.into_iter().map(|v| ("p95_ms".to_string(), v)).collect(),
        failed: false,
    }
}

fn study(name: &str, seed: u64) -> pb::CreateStudyRequest {
    let param = |name: &str, kind| pb::Parameter {
        name: name.into(),
        kind: Some(kind),
    };
    pb::CreateStudyRequest {
        name: name.into(),
        parameters: vec![
            param(
                "lr",
                Kind::Float(pb::FloatRange {
                    low: 1e-4,
                    high: 1e-1,
                    log: true,
                    step: 0.0,
                }),
            ),
            param(
                "layers",
                Kind::Int(pb::IntRange {
                    low: 1,
                    high: 8,
                    log: false,
                    step: 0,
                }),
            ),
            param(
                "arch",
                Kind::Categorical(pb::CategoricalValues {
                    values: vec!["x86".into(), "arm".into()],
                    ..Default::default()
                }),
            ),
        ],
        objective: Some(pb::Objective {
            name: "loss".into(),
            goal: pb::Goal::Minimize as i32,
        }),
        constraints: vec![pb::Constraint {
            metric: "p95_ms".into(),
            upper_bound: Some(200.0),
            lower_bound: None,
        }],
        n_initial: 2,
        acquisition: pb::Acquisition::LogEi as i32,
        seed,
        metrics: vec!["p95_ms".into()],
        ..Default::default()
    }
}

/// An arm's summary without its Monte-Carlo P(best), expected loss and lift
/// (active arms; a retired arm's are exactly 0 / absent and stay).
fn arm_detail(a: &pb::ArmSummary) -> String {
    let mut a = a.clone();
    if !a.retired {
        a.prob_best = 0.0;
        a.expected_loss = 0.0;
        a.lift_mean = a.lift_mean.map(|_| 0.0);
        a.lift_lower = a.lift_lower.map(|_| 0.0);
        a.lift_upper = a.lift_upper.map(|_| 0.0);
    }
    format!("{a:?}")
}

fn experiment_detail(g: &pb::GetExperimentResponse) -> String {
    let arms: Vec<String> = g.arms.iter().map(arm_detail).collect();
    format!(
        "{:?} arms={arms:?} draws={}",
        untimed_experiment(&g.experiment),
        g.prob_best_draws
    )
}

/// An experiment without its creation time (each server stamps its own).
fn untimed_experiment(e: &Option<pb::Experiment>) -> Option<pb::Experiment> {
    e.clone().map(|mut e| {
        e.created_ms = 0;
        e
    })
}

/// A trial without its timestamps (whether they are set stays), params and
/// metrics in name order.
fn trial_detail(t: &pb::Trial) -> String {
    let params: BTreeMap<&String, &Option<pb::value::Kind>> =
        t.params.iter().map(|(k, v)| (k, &v.kind)).collect();
    let metrics: BTreeMap<&String, &f64> = t.metrics.iter().collect();
    format!(
        "#{} {params:?} state={:?} value={:?} metrics={metrics:?} suggested={} observed={}",
        t.trial_id,
        pb::TrialState::try_from(t.state),
        t.value,
        t.suggested_ms > 0,
        t.observed_ms > 0
    )
}

fn trials_detail(ts: &[pb::Trial]) -> String {
    ts.iter().map(trial_detail).collect::<Vec<_>>().join("; ")
}

/// Alter a decision id in the middle: the tag no longer matches.
fn forge(id: &str) -> String {
    let mut b = id.as_bytes().to_vec();
    if b.is_empty() {
        return "AAAA".into();
    }
    let i = b.len() / 2;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

/// What the script leaves behind, read at its end.
struct Final {
    experiment: pb::GetExperimentResponse,
    study: pb::GetStudyResponse,
}

/// The scripted sequence. Every step is recorded; steps that need an
/// earlier answer use an empty value when it failed (the logs then differ
/// from the expected codes, which the caller reports).
async fn script(api: &mut Api) -> (Log, Final) {
    let mut log = Log::default();
    let t = api.transport();

    // -- experiments: create, idempotent re-create, conflicts --------------
    let r = api
        .create_experiment(bernoulli("checkout", &["a", "b"]))
        .await;
    log.rec("create checkout", "OK", &r, |r| {
        format!(
            "{:?} created={}",
            untimed_experiment(&r.experiment),
            r.created
        )
    });
    log.check(
        r.as_ref().is_ok_and(|r| r.created),
        format!("{t}: first create: created=true"),
    );
    let r = api
        .create_experiment(bernoulli("checkout", &["a", "b"]))
        .await;
    log.rec("re-create checkout, identical", "OK", &r, |r| {
        format!(
            "{:?} created={}",
            untimed_experiment(&r.experiment),
            r.created
        )
    });
    log.check(
        r.as_ref().is_ok_and(|r| !r.created),
        format!("{t}: identical re-create: created=false"),
    );
    let r = api
        .create_experiment(bernoulli("checkout", &["a", "b", "c"]))
        .await;
    log.fails("re-create checkout, other arms", "ALREADY_EXISTS", &r);
    let r = api.create_experiment(bernoulli("bad", &["a", "b c"])).await;
    log.fails("create with a bad arm name", "INVALID_ARGUMENT", &r);

    // -- arms -----------------------------------------------------------------
    let r = api.add_arm("checkout", "c").await;
    log.rec("add arm c", "OK", &r, |r| {
        format!(
            "{:?} created={}",
            untimed_experiment(&r.experiment),
            r.created
        )
    });
    log.check(
        r.as_ref().is_ok_and(|r| {
            r.created
                && r.experiment
                    .as_ref()
                    .is_some_and(|e| e.arms == ["a", "b", "c"])
        }),
        format!("{t}: add arm c: created, arms a b c"),
    );
    let r = api.add_arm("checkout", "c").await;
    log.rec("add arm c again", "OK", &r, |r| {
        format!(
            "{:?} created={}",
            untimed_experiment(&r.experiment),
            r.created
        )
    });
    log.check(
        r.as_ref().is_ok_and(|r| !r.created),
        format!("{t}: add arm c again: created=false"),
    );
    let r = api.add_arm("nosuch", "c").await;
    log.fails("add arm to an unknown experiment", "NOT_FOUND", &r);
    let r = api.retire_arm("checkout", "b").await;
    log.rec("retire b", "OK", &r, |r| {
        format!("{:?}", untimed_experiment(&r.experiment))
    });
    log.check(
        r.as_ref().is_ok_and(|r| {
            r.experiment
                .as_ref()
                .is_some_and(|e| e.retired_arms == ["b"])
        }),
        format!("{t}: retire b: retired_arms [b]"),
    );
    let r = api.retire_arm("checkout", "b").await;
    log.rec("retire b again", "OK", &r, |r| {
        format!("{:?}", untimed_experiment(&r.experiment))
    });
    let r = api.add_arm("checkout", "b").await;
    log.fails("re-add retired b", "FAILED_PRECONDITION", &r);
    let r = api.retire_arm("checkout", "zz").await;
    log.fails("retire an unknown arm", "NOT_FOUND", &r);
    let r = api.create_experiment(bernoulli("solo", &["x"])).await;
    log.rec("create solo", "OK", &r, |r| {
        format!(
            "{:?} created={}",
            untimed_experiment(&r.experiment),
            r.created
        )
    });
    let r = api.retire_arm("solo", "x").await;
    log.fails("retire the last active arm", "FAILED_PRECONDITION", &r);

    // -- choose -----------------------------------------------------------------
    let r = api.choose("checkout", &[]).await;
    // Which active arm is a Thompson draw: only that it is an active one.
    log.rec("choose, no eligible list", "OK", &r, |c| {
        format!(
            "active={} id={} fallback={}",
            c.arm == "a" || c.arm == "c",
            !c.decision_id.is_empty(),
            c.fallback
        )
    });
    let r = api.choose("checkout", &["c"]).await;
    log.rec("choose among [c]", "OK", &r, |c| {
        format!(
            "arm={} id={} fallback={}",
            c.arm,
            !c.decision_id.is_empty(),
            c.fallback
        )
    });
    log.check(
        r.as_ref().is_ok_and(|c| c.arm == "c"),
        format!("{t}: choose among [c] gives c"),
    );
    let id_c = r.map(|c| c.decision_id).unwrap_or_default();
    let r = api.choose("checkout", &["b"]).await;
    log.fails("choose among retired arms only", "FAILED_PRECONDITION", &r);
    let r = api.choose("checkout", &["a", "nope"]).await;
    log.fails("choose with an unknown eligible arm", "NOT_FOUND", &r);
    let r = api.choose("nosuch", &[]).await;
    log.fails("choose, unknown experiment", "NOT_FOUND", &r);
    let r = api.choose("solo", &[]).await;
    log.rec("choose solo", "OK", &r, |c| {
        format!("arm={} id={}", c.arm, !c.decision_id.is_empty())
    });
    let id_x = r.map(|c| c.decision_id).unwrap_or_default();

    // -- reward -----------------------------------------------------------------
    let r = api
        .reward(reward("checkout", Target::DecisionId(id_c.clone()), 1.0))
        .await;
    log.debug("reward the decision for c", "OK", &r);
    log.check(
        r.as_ref().is_ok_and(|r| r.arm == "c" && !r.duplicate),
        format!("{t}: reward by decision: arm c, not a duplicate"),
    );
    let r = api
        .reward(reward("checkout", Target::DecisionId(id_c.clone()), 1.0))
        .await;
    log.debug("reward the same decision again", "OK", &r);
    log.check(
        r.as_ref().is_ok_and(|r| r.arm == "c" && r.duplicate),
        format!("{t}: the same decision again: duplicate=true"),
    );
    let r = api
        .reward(reward("checkout", Target::Arm("a".into()), 0.25))
        .await;
    log.debug("reward by arm a", "OK", &r);
    log.check(
        r.as_ref().is_ok_and(|r| r.arm == "a" && !r.duplicate),
        format!("{t}: reward by arm a"),
    );
    for (what, v) in [
        ("above 1", 1.5),
        ("below 0", -0.1),
        ("NaN", f64::NAN),
        ("infinite", f64::INFINITY),
    ] {
        let r = api
            .reward(reward("checkout", Target::Arm("a".into()), v))
            .await;
        log.fails(&format!("BERNOULLI reward {what}"), "INVALID_ARGUMENT", &r);
    }
    let r = api
        .reward(reward("checkout", Target::DecisionId(forge(&id_c)), 1.0))
        .await;
    log.fails("forged decision id", "INVALID_ARGUMENT", &r);
    let r = api
        .reward(reward(
            "checkout",
            Target::DecisionId("not-a-decision".into()),
            1.0,
        ))
        .await;
    log.fails("malformed decision id", "INVALID_ARGUMENT", &r);
    let r = api
        .reward(reward("checkout", Target::DecisionId(id_x.clone()), 1.0))
        .await;
    log.fails("decision id of another experiment", "INVALID_ARGUMENT", &r);
    let r = api
        .reward(reward("checkout", Target::Arm("zz".into()), 1.0))
        .await;
    log.fails("reward an unknown arm", "NOT_FOUND", &r);
    let r = api
        .reward(pb::RewardRequest {
            experiment: "checkout".into(),
            target: None,
            value: 1.0,
        })
        .await;
    log.fails("reward without a target", "INVALID_ARGUMENT", &r);
    let r = api
        .reward(reward("solo", Target::DecisionId(id_x.clone()), 0.0))
        .await;
    log.debug("reward the solo decision", "OK", &r);

    // -- read, list ---------------------------------------------------------------
    let r = api.get_experiment("checkout", Some(0.5)).await;
    log.rec("get checkout, threshold 0.5", "OK", &r, experiment_detail);
    if let Ok(g) = &r {
        let by_name: BTreeMap<&str, &pb::ArmSummary> =
            g.arms.iter().map(|a| (a.name.as_str(), a)).collect();
        let post = |n: &str| {
            by_name
                .get(n)
                .map(|a| (a.alpha, a.beta, a.rewards, a.retired))
        };
        log.check(
            post("a") == Some((1.25, 1.75, 1, false))
                && post("b") == Some((1.0, 1.0, 0, true))
                && post("c") == Some((2.0, 1.0, 1, false)),
            format!("{t}: posteriors after the rewards: {:?}", g.arms),
        );
        log.check(
            g.arms.iter().all(|a| a.prob_above_threshold.is_some())
                && by_name.get("b").is_some_and(|b| b.prob_best == 0.0)
                && (g.arms.iter().map(|a| a.prob_best).sum::<f64>() - 1.0).abs() < 1e-9,
            format!("{t}: P(above), P(best) of checkout: {:?}", g.arms),
        );
    }
    let r = api.get_experiment("checkout", Some(f64::NAN)).await;
    log.fails("get with a NaN threshold", "INVALID_ARGUMENT", &r);
    let r = api.create_experiment(bernoulli("zeta", &["z"])).await;
    log.rec("create zeta", "OK", &r, |r| {
        format!("created={}", r.created)
    });

    let mut token = String::new();
    let mut listed = Vec::new();
    for page in 1..=4 {
        let r = api.list_experiments(1, &token).await;
        log.rec(&format!("list experiments, page {page}"), "OK", &r, |p| {
            format!("{:?} next={:?}", p.names, p.next_page_token)
        });
        let Ok(p) = r else { break };
        log.check(
            p.names.len() == 1,
            format!("{t}: page_size 1 gives one name, got {:?}", p.names),
        );
        listed.extend(p.names);
        token = p.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    log.check(
        listed == ["checkout", "solo", "zeta"],
        format!("{t}: pages of one name cover every experiment once: {listed:?}"),
    );
    let r = api.list_experiments(-1, "").await;
    log.fails("list, negative page size", "INVALID_ARGUMENT", &r);
    let r = api.list_experiments(1, "!!").await;
    log.fails("list, bad page token", "INVALID_ARGUMENT", &r);

    // -- delete -------------------------------------------------------------------
    let r = api.delete_experiment("solo").await;
    log.debug("delete solo", "OK", &r);
    let r = api.get_experiment("solo", None).await;
    log.fails("get deleted solo", "NOT_FOUND", &r);
    let r = api.delete_experiment("solo").await;
    log.fails("delete solo again", "NOT_FOUND", &r);
    let r = api.choose("solo", &[]).await;
    log.fails("choose deleted solo", "NOT_FOUND", &r);
    let r = api
        .reward(reward("solo", Target::DecisionId(id_x.clone()), 1.0))
        .await;
    log.fails("reward deleted solo", "NOT_FOUND", &r);
    let r = api.list_experiments(0, "").await;
    log.rec("list after delete", "OK", &r, |p| {
        format!("{:?} next={:?}", p.names, p.next_page_token)
    });
    log.check(
        r.as_ref()
            .is_ok_and(|p| p.names == ["checkout", "zeta"] && p.next_page_token.is_empty()),
        format!("{t}: list after delete: checkout, zeta"),
    );

    // -- studies ------------------------------------------------------------------
    let r = api.create_study(study("tune", 7)).await;
    log.rec("create study", "OK", &r, |r| {
        format!("{:?} created={}", r.study, r.created)
    });
    log.check(
        r.as_ref().is_ok_and(|r| r.created),
        format!("{t}: create study: created=true"),
    );
    let r = api.create_study(study("tune", 7)).await;
    log.rec("re-create study, identical", "OK", &r, |r| {
        format!("created={}", r.created)
    });
    log.check(
        r.as_ref().is_ok_and(|r| !r.created),
        format!("{t}: identical re-create of a study: created=false"),
    );
    let r = api.create_study(study("tune", 8)).await;
    log.fails("re-create study, other seed", "ALREADY_EXISTS", &r);
    let mut no_objective = study("noobj", 7);
    no_objective.objective = None;
    let r = api.create_study(no_objective).await;
    log.fails("create study without objective", "INVALID_ARGUMENT", &r);

    let r = api.suggest("tune", 2).await;
    log.rec("suggest 2", "OK", &r, |s| trials_detail(&s.trials));
    let ids: Vec<u64> = r
        .as_ref()
        .map(|s| s.trials.iter().map(|t| t.trial_id).collect())
        .unwrap_or_default();
    log.check(ids.len() == 2, format!("{t}: suggest 2 gives 2: {ids:?}"));
    let (t1, t2) = (
        ids.first().copied().unwrap_or(0),
        ids.get(1).copied().unwrap_or(0),
    );
    let r = api.observe(observe("tune", t1, 0.3, Some(120.0))).await;
    log.rec("observe completed", "OK", &r, |o| {
        o.trial.as_ref().map(trial_detail).unwrap_or_default()
    });
    log.check(
        r.as_ref().is_ok_and(|o| {
            o.trial.as_ref().is_some_and(|t| {
                t.state == pb::TrialState::Completed as i32 && t.value == Some(0.3)
            })
        }),
        format!("{t}: observed trial is COMPLETED with its value"),
    );
    let mut failed = observe("tune", t2, 0.0, None);
    failed.failed = true;
    let r = api.observe(failed).await;
    log.rec("observe failed", "OK", &r, |o| {
        o.trial.as_ref().map(trial_detail).unwrap_or_default()
    });
    log.check(
        r.as_ref().is_ok_and(|o| {
            o.trial
                .as_ref()
                .is_some_and(|t| t.state == pb::TrialState::Failed as i32)
        }),
        format!("{t}: failed trial is FAILED"),
    );
    let r = api.observe(observe("tune", t1, 0.1, Some(100.0))).await;
    log.fails("observe again", "FAILED_PRECONDITION", &r);
    let r = api.observe(observe("tune", 99, 0.1, Some(100.0))).await;
    log.fails("observe an unknown trial", "NOT_FOUND", &r);
    let r = api.observe(observe("nosuch", 1, 0.1, Some(100.0))).await;
    log.fails("observe an unknown study", "NOT_FOUND", &r);
    let r = api.suggest("tune", 1).await;
    log.rec("suggest 1 after observations", "OK", &r, |s| {
        trials_detail(&s.trials)
    });
    let t3 = r
        .as_ref()
        .ok()
        .and_then(|s| s.trials.first())
        .map_or(0, |t| t.trial_id);
    let r = api.observe(observe("tune", t3, 0.2, None)).await;
    log.fails(
        "observe without the constrained metric",
        "INVALID_ARGUMENT",
        &r,
    );
    let r = api.get_study("tune").await;
    log.rec("get study", "OK", &r, |g| {
        format!(
            "{:?} trials=[{}] best={:?} recommended={:?} exhausted={}",
            g.study,
            trials_detail(&g.trials),
            g.best.as_ref().map(trial_detail),
            g.recommended
                .as_ref()
                .map(|r| (r.trial.as_ref().map(trial_detail), r.mean, r.std)),
            g.exhausted
        )
    });
    let r = api.create_study(study("tmp", 1)).await;
    log.rec("create study tmp", "OK", &r, |r| {
        format!("created={}", r.created)
    });
    let r = api.list_studies(1, "").await;
    log.rec("list studies, page 1", "OK", &r, |p| {
        format!("{:?} next={:?}", p.names, p.next_page_token)
    });
    let token = r.map(|p| p.next_page_token).unwrap_or_default();
    log.check(!token.is_empty(), format!("{t}: a second page of studies"));
    let r = api.list_studies(1, &token).await;
    log.rec("list studies, page 2", "OK", &r, |p| {
        format!("{:?} next={:?}", p.names, p.next_page_token)
    });
    log.check(
        r.as_ref()
            .is_ok_and(|p| p.names == ["tune"] && p.next_page_token.is_empty()),
        format!("{t}: the second page of studies is the last"),
    );
    let r = api.delete_study("tmp").await;
    log.debug("delete study tmp", "OK", &r);
    let r = api.get_study("tmp").await;
    log.fails("get deleted study", "NOT_FOUND", &r);
    let r = api.delete_study("tmp").await;
    log.fails("delete study tmp again", "NOT_FOUND", &r);
    let r = api.suggest("tmp", 1).await;
    log.fails("suggest on a deleted study", "NOT_FOUND", &r);
    let r = api.list_studies(0, "").await;
    log.rec("list studies after delete", "OK", &r, |p| {
        format!("{:?} next={:?}", p.names, p.next_page_token)
    });

    let experiment = api
        .get_experiment("checkout", Some(0.5))
        .await
        .unwrap_or_else(|e| panic!("{t}: final GetExperiment: {e:?}"));
    let study = api
        .get_study("tune")
        .await
        .unwrap_or_else(|e| panic!("{t}: final GetStudy: {e:?}"));
    (log, Final { experiment, study })
}

/// A trial with its timestamps cleared.
fn untimed(t: &pb::Trial) -> pb::Trial {
    let mut t = t.clone();
    assert!(t.suggested_ms > 0, "{t:?}");
    t.suggested_ms = 0;
    t.observed_ms = 0;
    t
}

/// Both runs' logs agree step by step, every code is the expected one, and
/// the final states are the same.
fn assert_equivalent(g: &(Log, Final), h: &(Log, Final)) {
    let (glog, gfin) = g;
    let (hlog, hfin) = h;
    for (a, b) in glog.steps.iter().zip(&hlog.steps) {
        assert_eq!(a.name, b.name, "the scripts diverged");
        assert_eq!(
            (&a.code, &a.detail),
            (&b.code, &b.detail),
            "step {:?}: gRPC (left) and HTTP (right) disagree",
            a.name
        );
    }
    assert_eq!(glog.steps.len(), hlog.steps.len(), "number of steps");
    // Same codes on both; now they must also be the expected ones.
    let wrong: Vec<String> = glog
        .steps
        .iter()
        .filter(|s| s.code != s.want)
        .map(|s| {
            format!(
                "{:?}: want {}, got {} ({})",
                s.name, s.want, s.code, s.detail
            )
        })
        .collect();
    assert!(wrong.is_empty(), "unexpected codes:\n{}", wrong.join("\n"));
    for (t, log) in [("gRPC", glog), ("HTTP", hlog)] {
        assert!(
            log.problems.is_empty(),
            "{t}: expectations that failed:\n{}",
            log.problems.join("\n")
        );
    }

    // Final state of the experiment, field by field; P(best) is a Monte
    // Carlo estimate (10,000 draws), so within 0.05.
    let (ge, he) = (&gfin.experiment, &hfin.experiment);
    assert_eq!(
        untimed_experiment(&ge.experiment),
        untimed_experiment(&he.experiment)
    );
    assert_eq!(ge.prob_best_draws, he.prob_best_draws);
    assert_eq!(ge.arms.len(), he.arms.len());
    assert_eq!(ge.arms.len(), 3);
    for (a, b) in ge.arms.iter().zip(&he.arms) {
        assert!(
            (a.prob_best - b.prob_best).abs() <= 0.05,
            "prob_best of {}: {} vs {}",
            a.name,
            a.prob_best,
            b.prob_best
        );
        let (mut a, mut b) = (a.clone(), b.clone());
        assert!(
            (a.expected_loss - b.expected_loss).abs() <= 0.05,
            "expected_loss of {}",
            a.name
        );
        for x in [&mut a, &mut b] {
            x.prob_best = 0.0;
            x.expected_loss = 0.0;
        }
        assert_eq!(a, b);
    }

    // Final state of the study: same definition, same trials (seeded
    // suggestions: the same configurations), same states and values.
    let (gs, hs) = (&gfin.study, &hfin.study);
    assert_eq!(gs.study, hs.study);
    assert_eq!(gs.study.as_ref().map(|s| s.seed), Some(7));
    assert_eq!(gs.trials.len(), 3);
    let states: Vec<(u64, i32, Option<f64>)> = gs
        .trials
        .iter()
        .map(|t| (t.trial_id, t.state, t.value))
        .collect();
    assert_eq!(
        states,
        [
            (1, pb::TrialState::Completed as i32, Some(0.3)),
            (2, pb::TrialState::Failed as i32, None),
            (3, pb::TrialState::Pending as i32, None),
        ]
    );
    let untimed_all = |s: &pb::GetStudyResponse| s.trials.iter().map(untimed).collect::<Vec<_>>();
    assert_eq!(untimed_all(gs), untimed_all(hs), "trials (configurations)");
    assert_eq!(
        gs.best.as_ref().map(untimed),
        hs.best.as_ref().map(untimed),
        "best"
    );
    assert_eq!(gs.best.as_ref().map(|t| t.trial_id), Some(1));
    let rec = |s: &pb::GetStudyResponse| {
        s.recommended.as_ref().map(|r| {
            (
                r.trial.as_ref().map(untimed),
                r.mean.to_bits(),
                r.std.to_bits(),
            )
        })
    };
    assert_eq!(rec(gs), rec(hs), "recommendation");
    assert_eq!(gs.exhausted, hs.exhausted);
}

async fn run_both(backend: Backend) {
    let a = TestServer::start(backend).await;
    let b = TestServer::start(backend).await;
    let mut grpc_api = Api::grpc(&a.url).await;
    let mut http_api = Api::Http(Http::h1(b.running.as_ref().unwrap().addr).await);
    let g = script(&mut grpc_api).await;
    let h = script(&mut http_api).await;
    assert!(g.0.steps.len() > 60, "{} steps", g.0.steps.len());
    assert_equivalent(&g, &h);
}

#[tokio::test]
async fn grpc_and_http_leave_the_same_state_and_give_the_same_codes() {
    run_both(Backend::Memory).await;
}

#[tokio::test]
async fn grpc_and_http_agree_on_the_redis_store() {
    run_both(Backend::Redis).await;
}

/// The JSON names of the messages are the proto3 JSON mapping's
/// (lowerCamelCase, 64-bit integers as strings), fields at their default
/// included: what clients written from the documentation send and read.
#[tokio::test]
async fn json_uses_the_proto3_mapping() {
    let s = TestServer::start(Backend::Memory).await;
    let mut h = Http::h1(s.running.as_ref().unwrap().addr).await;
    let r = h
        .post(
            "/v1/experiments",
            &json!({"name": "e", "arms": ["a"], "halfLifeSeconds": 3600,
                    "betaPrior": {"alpha": 2, "beta": 3}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json("create");
    assert_eq!(v["created"], json!(true));
    assert_eq!(v["experiment"]["halfLifeSeconds"], json!(3600.0));
    assert_eq!(v["experiment"]["betaPrior"]["alpha"], json!(2.0));
    assert_eq!(v["experiment"]["retiredArms"], json!([]));
    assert_eq!(v["experiment"]["model"], json!("BERNOULLI"));
    // Requests may also use the proto field name (the proto3 JSON mapping
    // says parsers accept both); an unknown field is refused.
    let r = h
        .post("/v1/experiments/e:choose", &json!({"eligible_arms": ["a"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h
        .post("/v1/experiments/e:choose", &json!({"eligibleArm": ["a"]}))
        .await;
    let (code, msg) = r.error("misspelt field");
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(msg.contains("eligibleArm"), "{msg}");
    let c = h.post("/v1/experiments/e:choose", &json!({})).await;
    let c = c.json("choose");
    let id = c["decisionId"].as_str().expect("decisionId").to_string();
    assert_eq!(c["fallback"], json!(false));
    let r = h
        .post(
            "/v1/experiments/e:reward",
            &json!({"decisionId": id, "value": 1}),
        )
        .await
        .json("reward");
    assert_eq!(r, json!({"arm": "a", "duplicate": false}));
    let g = h.get("/v1/experiments/e").await.json("get");
    let arm = &g["arms"][0];
    // uint64 as a string; an absent optional is absent, not null.
    assert_eq!(arm["rewards"], json!("1"));
    assert!(arm.get("probAboveThreshold").is_none(), "{arm}");
    assert_eq!(g["probBestDraws"], json!(10_000));
    for k in [
        "name", "retired", "rewards", "evidence", "mean", "lower", "upper", "probBest", "alpha",
        "beta", "mu", "kappa",
    ] {
        assert!(arm.get(k).is_some(), "{k} missing from {arm}");
    }
    // Studies: trialId as a string, enums by name.
    let st = serde_json::to_value(study("s", 3)).unwrap();
    assert_eq!(st["seed"], json!("3"), "{st}");
    assert_eq!(st["constraints"][0]["upperBound"], json!(200.0));
    assert_eq!(st["objective"]["goal"], json!("MINIMIZE"));
    let r = h.post("/v1/studies", &st).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let t = h
        .post("/v1/studies/s:suggest", &json!({}))
        .await
        .json("suggest");
    assert_eq!(t["trials"][0]["trialId"], json!("1"), "{t}");
    assert_eq!(t["trials"][0]["state"], json!("PENDING"), "{t}");
    assert_eq!(t["trials"][0]["observedMs"], json!("0"), "{t}");
    assert!(
        t["trials"][0]["params"]["arch"]["category"].is_string(),
        "{t}"
    );
    assert!(t["trials"][0]["params"]["lr"]["number"].is_number(), "{t}");
    // A trial id as a JSON number is accepted too.
    let r = h
        .post(
            "/v1/studies/s:observe",
            &json!({"trialId": 1, "value": 0.5, "metrics": {"p95_ms": 10}}),
        )
        .await
        .json("observe");
    assert_eq!(r["trial"]["state"], json!("COMPLETED"), "{r}");
    assert_eq!(r["trial"]["value"], json!(0.5), "{r}");
}

// ---- OpenAPI ------------------------------------------------------------------------

/// Every operation of the HTTP API.
const OPERATIONS: &[&str] = &[
    "GET /healthz",
    "GET /readyz",
    "GET /v1/openapi.json",
    "POST /v1/experiments",
    "GET /v1/experiments",
    "GET /v1/experiments/{name}",
    "DELETE /v1/experiments/{name}",
    "POST /v1/experiments/{name}/arms",
    "POST /v1/experiments/{name}/arms/{arm}:retire",
    "POST /v1/experiments/{name}:choose",
    "POST /v1/experiments/{name}:reward",
    "POST /v1/experiments/{name}:rewardAggregate",
    "POST /v1/experiments/{name}:rewardBatch",
    "GET /v1/experiments/{name}:verdict",
    "GET /v1/experiments/{name}:gate",
    "POST /v1/experiments/{name}:gate",
    "GET /v1/experiments/{name}/history",
    "POST /v1/studies",
    "GET /v1/studies",
    "GET /v1/studies/{name}",
    "DELETE /v1/studies/{name}",
    "GET /v1/studies/{name}/slices",
    "POST /v1/studies/{name}:suggest",
    "POST /v1/studies/{name}:observe",
    "POST /v1/studies/{name}:abandon",
    "POST /v1/studies/{name}:enqueue",
    "POST /v1/studies/{name}:addTrial",
];

/// `METHOD PATH` of every operation in the document, and its responses.
fn operations(doc: &Json) -> BTreeMap<String, Json> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                ops.insert(
                    format!("{} {path}", method.to_uppercase()),
                    op["responses"].clone(),
                );
            }
        }
    }
    ops
}

/// `PYTHON scripts/check_openapi.py URL`: the document is valid OpenAPI
/// 3.1; returns its `METHOD PATH` lines.
fn check_openapi(python: &str, url: &str) -> BTreeSet<String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check_openapi.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running {python} {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} {url} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A request for an operation, on the fixtures: path parameters
/// substituted (`{name}` → `e` or `s`, `{arm}` → `a`), a body that should
/// succeed.
fn request_for(op: &str, name_override: Option<&str>) -> (String, String, Option<Json>) {
    let (method, template) = op.split_once(' ').unwrap();
    let name = name_override.unwrap_or(if template.starts_with("/v1/studies") {
        "s"
    } else {
        "e"
    });
    let path = template.replace("{name}", name).replace("{arm}", "a");
    let body = match op {
        "POST /v1/experiments" => Some(json!({"name": "e2", "arms": ["x"]})),
        "POST /v1/experiments/{name}/arms" => Some(json!({"arm": "c"})),
        "POST /v1/experiments/{name}/arms/{arm}:retire" => None,
        "POST /v1/experiments/{name}:choose" => Some(json!({})),
        "POST /v1/experiments/{name}:reward" => Some(json!({"arm": "a", "value": 1})),
        "POST /v1/experiments/{name}:rewardAggregate" => {
            Some(json!({"arm": "a", "count": "10", "sum": 3, "requestId": "r1"}))
        }
        "POST /v1/experiments/{name}:rewardBatch" => {
            Some(json!({"rewards": [{"arm": "a", "value": 1}]}))
        }
        "POST /v1/studies" => Some(serde_json::to_value(study("s2", 1)).unwrap()),
        "POST /v1/studies/{name}:suggest" => Some(json!({"count": 1})),
        "POST /v1/studies/{name}:observe" => {
            Some(json!({"trialId": "1", "value": 0.5, "metrics": {"p95_ms": 10}}))
        }
        // Trial 2 of the fixtures (trial 1 is observed).
        "POST /v1/studies/{name}:abandon" => Some(json!({"trialId": "2", "reason": "preempted"})),
        "POST /v1/studies/{name}:enqueue" => Some(json!({"params": {
            "lr": {"number": 0.01}, "layers": {"number": 3}, "arch": {"category": "arm"}}})),
        "POST /v1/studies/{name}:addTrial" => Some(json!({"params": {
            "lr": {"number": 0.01}, "layers": {"number": 3}, "arch": {"category": "arm"}},
            "value": 0.4, "metrics": {"p95_ms": 12}})),
        _ => None,
    };
    let query = match op {
        "GET /v1/experiments" | "GET /v1/studies" => "?pageSize=10",
        "GET /v1/experiments/{name}" => "?threshold=0.5",
        "GET /v1/experiments/{name}/history" => "?sinceMs=0",
        "GET /v1/experiments/{name}:gate" | "POST /v1/experiments/{name}:gate" => {
            "?baseline=a&candidate=b"
        }
        _ => "",
    };
    (method.to_string(), format!("{path}{query}"), body)
}

#[tokio::test]
async fn openapi_document_is_valid_and_every_operation_is_a_route() {
    let s = TestServer::start(Backend::Memory).await;
    let addr = s.running.as_ref().unwrap().addr;
    let mut h = Http::h1(addr).await;
    let r = h.get("/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    let doc = r.json("openapi.json");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    let ops = operations(&doc);
    let listed: BTreeSet<String> = ops.keys().cloned().collect();
    let expected: BTreeSet<String> = OPERATIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(listed, expected, "the document's operations");

    // The schema check, and its listing agrees with ours. On the blocking
    // pool: the script fetches the document from this process's server,
    // which must keep running meanwhile.
    if let Some(python) = common::test_python("the OpenAPI document (scripts/check_openapi.py)") {
        let url = format!("http://{addr}/v1/openapi.json");
        let listing = tokio::task::spawn_blocking(move || check_openapi(&python, &url))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        assert_eq!(listing, expected, "scripts/check_openapi.py's listing");
    }

    // Each error a response documents sits under the table's status for
    // its code (a `FAILED_PRECONDITION` documented under 409 would send
    // clients looking for the wrong status).
    let resolve = |r: &Json| -> Json {
        match r["$ref"].as_str() {
            Some(p) => doc
                .pointer(p.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("unresolved {p}"))
                .clone(),
            None => r.clone(),
        }
    };
    for (op, responses) in &ops {
        for (status, r) in responses.as_object().expect("responses") {
            let desc = resolve(r)["description"].as_str().unwrap_or("").to_string();
            for (code, http) in HTTP_STATUS {
                if desc.contains(&format!("`{code}`")) {
                    assert_eq!(
                        status,
                        &http.to_string(),
                        "{op}: the {status} response documents `{code}`, which answers {http}: {desc}"
                    );
                }
            }
        }
    }

    // Fixtures: experiment e with arm a (and b, so that a can be retired),
    // study s with two suggested trials.
    for (path, body) in [
        ("/v1/experiments", json!({"name": "e", "arms": ["a", "b"]})),
        ("/v1/studies", serde_json::to_value(study("s", 1)).unwrap()),
        ("/v1/studies/s:suggest", json!({"count": 2})),
    ] {
        let r = h.post(path, &body).await;
        assert_eq!(r.status, 200, "fixture {path}: {}", r.text());
    }

    // Every operation on the fixtures: its documented success. Deletes
    // last, so the others find their resources.
    let mut order: Vec<&String> = ops.keys().collect();
    order.sort_by_key(|op| op.starts_with("DELETE "));
    for op in order {
        let (method, path, body) = request_for(op, None);
        let r = h
            .send(
                &method,
                &path,
                &[],
                body.map(|b| b.to_string().into_bytes()),
            )
            .await;
        assert!(
            ops[op].get("200").is_some(),
            "{op}: no documented 200 response"
        );
        // The gate answers its verdict in the status: with the fixture's
        // few rewards, INCONCLUSIVE (425, documented).
        let want = if op.ends_with(":gate") { 425 } else { 200 };
        assert_eq!(r.status, want, "{op} ({method} {path}): {}", r.text());
        r.json(op);
    }

    // Every operation on a resource that does not exist (or with a bad
    // query when it names none): a JSON error of our shape from the
    // handler (not the router's "no route"), with a documented status.
    for op in ops.keys() {
        if ["GET /healthz", "GET /readyz", "GET /v1/openapi.json"].contains(&op.as_str()) {
            continue;
        }
        let (method, mut path, body) = request_for(op, Some("nope"));
        if op == "GET /v1/experiments" || op == "GET /v1/studies" {
            path = path.replace("pageSize=10", "pageSize=-1");
        }
        let body = match op.as_str() {
            // Creates have no resource to miss: an invalid body.
            "POST /v1/experiments" | "POST /v1/studies" => Some(json!({"name": "bad name"})),
            _ => body,
        };
        let r = h
            .send(
                &method,
                &path,
                &[],
                body.map(|b| b.to_string().into_bytes()),
            )
            .await;
        let (code, message) = r.error(op);
        assert!(
            !message.starts_with("path: no route") && r.status != 405,
            "{op} ({method} {path}) did not reach a handler: {}",
            r.text()
        );
        assert!(
            ops[op].get(r.status.to_string()).is_some(),
            "{op}: {} ({code}) is not a documented response",
            r.status
        );
    }
}

// ---- HTTP/1.1 keep-alive and h2c -------------------------------------------------

#[tokio::test]
async fn choose_works_over_http1_keep_alive_and_h2c() {
    let s = TestServer::start(Backend::Memory).await;
    let addr = s.running.as_ref().unwrap().addr;
    let mut h1 = Http::h1(addr).await;
    let r = h1
        .post("/v1/experiments", &json!({"name": "e", "arms": ["a", "b"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    for (label, mut conn) in [("HTTP/1.1", h1), ("h2c", Http::h2(addr).await)] {
        let want = if label == "h2c" {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        // Several requests, one connection: a closed connection would fail
        // the next `ready()`.
        let mut seen = BTreeSet::new();
        for i in 0..20 {
            let r = conn.post("/v1/experiments/e:choose", &json!({})).await;
            assert_eq!(r.status, 200, "{label} #{i}: {}", r.text());
            assert_eq!(r.version, want, "{label} #{i}");
            assert!(
                r.headers
                    .get(http::header::CONNECTION)
                    .is_none_or(|v| v != "close"),
                "{label} #{i}: the server closes the connection"
            );
            let c: pb::ChooseResponse = r.outcome("choose").unwrap();
            assert!(!c.decision_id.is_empty() && !c.fallback, "{label}: {c:?}");
            seen.insert(c.arm.clone());
            let rw: pb::RewardResponse = conn
                .post(
                    "/v1/experiments/e:reward",
                    &json!({"decisionId": c.decision_id, "value": 1}),
                )
                .await
                .outcome("reward")
                .unwrap();
            assert_eq!(rw.arm, c.arm, "{label}");
        }
        assert!(seen.is_subset(&BTreeSet::from(["a".into(), "b".into()])));
        // Errors are answered on the same connection, which stays usable.
        let r = conn.post("/v1/experiments/nope:choose", &json!({})).await;
        assert_eq!(r.error(label).0, "NOT_FOUND");
        let r = conn.get("/v1/experiments/e").await;
        assert_eq!(r.status, 200, "{label}: {}", r.text());
        if let Conn::H1(s) = &conn.conn {
            assert!(!s.is_closed(), "{label}: connection closed");
        }
    }

    // h2c: concurrent streams on one connection.
    let h2 = Http::h2(addr).await;
    let Conn::H2(send) = &h2.conn else {
        unreachable!()
    };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            let req = http::Request::post(format!("http://{addr}/v1/experiments/e:choose"))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{\"eligibleArms\":[\"b\"]}")))
                .unwrap();
            send.ready().await.unwrap();
            let res = send.send_request(req).await.unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let c: pb::ChooseResponse = serde_json::from_slice(&body).unwrap();
        assert_eq!(c.arm, "b");
    }
}

// ---- the deadline header ----------------------------------------------------------

#[tokio::test]
async fn a_malformed_deadline_header_is_a_400_naming_it() {
    let s = TestServer::start(Backend::Memory).await;
    let mut h = Http::h1(s.running.as_ref().unwrap().addr).await;
    let r = h
        .post("/v1/experiments", &json!({"name": "e", "arms": ["a"]}))
        .await;
    assert_eq!(r.status, 200);
    for bad in ["abc", "0", "-1", "NaN", "inf", "1e9", "86401", "5s", ""] {
        let r = h
            .send(
                "GET",
                "/v1/experiments/e",
                &[("x-server-timeout", bad)],
                None,
            )
            .await;
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text());
        let (code, message) = r.error(bad);
        assert_eq!(code, "INVALID_ARGUMENT");
        assert!(
            message.starts_with("x-server-timeout:"),
            "{bad:?}: the message must name the header: {message}"
        );
    }
    // The same request with a well-formed deadline, and without one.
    for ok in ["2.5", " 30 ", "86400"] {
        let r = h
            .send(
                "GET",
                "/v1/experiments/e",
                &[("x-server-timeout", ok)],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{ok:?}: {}", r.text());
    }
    let r = h
        .send(
            "POST",
            "/v1/experiments/e:choose",
            &[("x-server-timeout", "10")],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

// ---- custom methods and routing -------------------------------------------------------

#[tokio::test]
async fn custom_methods_names_with_colons_and_routing_errors() {
    let s = TestServer::start(Backend::Memory).await;
    let mut h = Http::h1(s.running.as_ref().unwrap().addr).await;
    let r = h
        .post(
            "/v1/experiments",
            &json!({"name": "a:b", "arms": ["x", "y:z"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // The verb follows the last colon.
    let c: pb::ChooseResponse = h
        .post("/v1/experiments/a:b:choose", &json!({}))
        .await
        .outcome("choose a:b")
        .unwrap();
    assert!(c.arm == "x" || c.arm == "y:z", "{c:?}");
    let rw: pb::RewardResponse = h
        .post(
            "/v1/experiments/a:b:reward",
            &json!({"decisionId": c.decision_id, "value": 1}),
        )
        .await
        .outcome("reward a:b")
        .unwrap();
    assert_eq!((rw.arm.as_str(), rw.duplicate), (c.arm.as_str(), false));
    // Percent-encoded colons in the name, as the document suggests.
    let c2: pb::ChooseResponse = h
        .post(
            "/v1/experiments/a%3Ab:choose",
            &json!({"eligibleArms": ["x"]}),
        )
        .await
        .outcome("choose a%3Ab")
        .unwrap();
    assert_eq!(c2.arm, "x");
    // A body naming the same experiment as the path is fine; another is not.
    let r = h
        .post("/v1/experiments/a:b:choose", &json!({"experiment": "a:b"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = h
        .post(
            "/v1/experiments/a:b:choose",
            &json!({"experiment": "other"}),
        )
        .await;
    let (code, msg) = r.error("path/body disagree");
    assert_eq!(code, "INVALID_ARGUMENT");
    assert!(msg.starts_with("experiment:"), "{msg}");
    // An arm with a colon, retired through `{arm}:retire`.
    let rr: pb::RetireArmResponse = h
        .send("POST", "/v1/experiments/a:b/arms/y:z:retire", &[], None)
        .await
        .outcome("retire y:z")
        .unwrap();
    assert_eq!(rr.experiment.unwrap().retired_arms, ["y:z"]);
    let g: pb::GetExperimentResponse = h
        .get("/v1/experiments/a:b")
        .await
        .outcome("get a:b")
        .unwrap();
    assert_eq!(g.experiment.unwrap().name, "a:b");
    assert_eq!(g.arms.iter().map(|a| a.rewards).sum::<u64>(), 1);

    // Unknown verbs: 404 naming the known ones.
    for (path, known) in [
        (
            "/v1/experiments/a:b:frobnicate",
            ":choose, :reward, :rewardAggregate, :rewardBatch and :gate",
        ),
        (
            "/v1/experiments/a:b:choose2",
            ":choose, :reward, :rewardAggregate, :rewardBatch and :gate",
        ),
        ("/v1/experiments/a:b/arms/x:delete", ":retire"),
        (
            "/v1/studies/s:choose",
            ":suggest, :observe, :abandon, :enqueue and :addTrial",
        ),
    ] {
        let r = h.post(path, &json!({})).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        let (code, msg) = r.error(path);
        assert_eq!(code, "NOT_FOUND");
        assert!(msg.contains(known), "{path}: {msg}");
    }
    // POST on a resource without a verb: 404. A name with a colon reads as
    // name + verb (`a:b` is experiment `a`, verb `b`).
    for path in [
        "/v1/experiments/e",
        "/v1/experiments/a:b",
        "/v1/studies/s",
        "/v1/experiments/a:b/arms/x",
    ] {
        let r = h.post(path, &json!({})).await;
        assert_eq!(r.status, 404, "POST {path}: {}", r.text());
        let (code, msg) = r.error(path);
        assert_eq!(code, "NOT_FOUND");
        assert!(msg.contains("no custom method"), "POST {path}: {msg}");
    }
    // GET on a custom-method path reads a resource of that name (names may
    // contain colons): here none, so NOT_FOUND, in JSON.
    for (path, what) in [
        ("/v1/experiments/a:b:choose", "experiment \"a:b:choose\""),
        ("/v1/studies/s:suggest", "study \"s:suggest\""),
    ] {
        let r = h.get(path).await;
        assert_eq!(r.status, 404, "GET {path}: {}", r.text());
        let (code, msg) = r.error(path);
        assert_eq!(code, "NOT_FOUND");
        assert!(msg.contains(what), "GET {path}: {msg}");
    }
    // No route at all: 404 JSON (a file the dashboard does not have too).
    for path in ["/v2/experiments", "/v1/experiments/a/b/c", "/ui/missing.js"] {
        let r = h.get(path).await;
        assert_eq!(r.status, 404, "GET {path}: {}", r.text());
        let (code, msg) = r.error(path);
        assert_eq!(code, "NOT_FOUND");
        assert!(msg.starts_with("path: no route"), "GET {path}: {msg}");
    }
    // `/` is the dashboard's: a redirect to `/ui/`.
    let r = h.get("/").await;
    assert_eq!(r.status, 308, "GET /: {}", r.text());
    assert_eq!(
        r.headers.get("location").map(|v| v.as_bytes()),
        Some(&b"/ui/"[..])
    );
    // A method the route does not have: 405 JSON with `Allow`.
    for (method, path, allow) in [
        ("PUT", "/v1/experiments", "GET,HEAD,POST"),
        ("PATCH", "/v1/experiments/a:b", "DELETE,GET,HEAD,POST"),
        ("GET", "/v1/experiments/a:b/arms", "POST"),
        ("DELETE", "/v1/experiments/a:b/arms/x:retire", "POST"),
        ("PUT", "/v1/studies/s:suggest", "DELETE,GET,HEAD,POST"),
        ("POST", "/healthz", "GET,HEAD"),
    ] {
        let r = h.send(method, path, &[], None).await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        let (_, msg) = r.error(&format!("{method} {path}"));
        assert!(msg.contains(method), "{method} {path}: {msg}");
        let got: BTreeSet<String> = r
            .headers
            .get(http::header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        let want: BTreeSet<String> = allow.split(',').map(str::to_string).collect();
        assert_eq!(got, want, "{method} {path}: Allow");
    }
}
