//! Metrics (Prometheus, via the `metrics` facade) and their wiring.
//!
//! What is measured, and where:
//!
//! | metric | kind | labels | recorded by |
//! | --- | --- | --- | --- |
//! | `posterior_grpc_requests_total` | counter | `transport`, `rpc`, `code` | [`GrpcMetricsLayer`] (every request on both transports, health and reflection included) |
//! | `posterior_grpc_request_duration_seconds` | histogram | `transport`, `rpc`, `code` | [`GrpcMetricsLayer`] |
//! | `posterior_store_duration_seconds` | histogram | `op` | [`TimedStore`] (one store round trip) |
//! | `posterior_choose_snapshot_total` | counter | `result` = `hit` / `miss` / `uncached` | the Choose snapshot cache |
//! | `posterior_reward_visible_seconds` | histogram | | from a reward written here to the snapshot refresh that shows it |
//! | `posterior_decisions_total`, `posterior_rewards_total` | counter | `experiment` | Choose, Reward |
//! | `posterior_interval_width` | gauge | `experiment`, `arm` | snapshot refresh: width of the 95% credible interval |
//! | `posterior_experiment_drift` | gauge | `experiment` | history recording: KL divergence between the posteriors of successive points (sum over arms) |
//! | `posterior_study_calibration` | gauge | `study` | after Suggest, Observe, GetStudy, GetStudySlices: coverage of the GP's 90% leave-one-out intervals |
//! | `posterior_reward_lag_seconds` | histogram | | Reward: from the decision's issue (in its id) to its applied reward |
//! | `posterior_arm_mean`, `posterior_arm_interval_width`, `posterior_arm_prob_best`, `posterior_arm_evidence` | gauge | `experiment`, `arm` | the periodic task of `app::arm_metrics` ([`gauges`]: removed with the experiment) |
//! | `posterior_experiments_with_winner` | gauge | | the same task: experiments whose verdict is WINNER |
//! | `posterior_study_suggest_seconds` | histogram | `study` | Suggest |
//! | `posterior_study_fit_timestamp_seconds` | gauge | `study` | Suggest that fitted a GP ([`gauges`]: removed with the study) |
//! | `posterior_store_up` | gauge | | [`TimedStore`]: 0 when the last store call found the store unavailable, else 1 |
//!
//! **Label cardinality is capped**: the first `metrics.max_experiments`
//! (default [`MAX_EXPERIMENT_LABELS`]) experiment names seen get their own `experiment` label, later ones count
//! under `experiment="other"` (and get no interval-width gauge: a width
//! summed over unrelated experiments means nothing); only the first
//! [`MAX_ARM_LABELS`] arms of a labelled experiment get a width gauge. Study
//! names are capped the same way (own count). RPC
//! paths are capped the same way ([`MAX_RPC_LABELS`]), so a client sending
//! made-up method names cannot grow the registry.
//!
//! **Both transports share the request metrics** (the names keep their
//! historical `grpc` for existing dashboards): `transport` is `grpc` or
//! `http`; an HTTP call is labelled with the gRPC method it performs
//! (`rpc="posterior.v1.Bandits/Choose"` for `POST /v1/experiments/x:choose`)
//! and the gRPC code name of its outcome, so one use case has one series per
//! transport and no user-given name (a path segment) becomes a label.
//!
//! The exporter is **off by default** (`metrics.listen` empty): it is a second
//! listening port, which must be chosen per host (several replicas or test
//! servers on one machine would collide on a fixed default), and when off
//! every metric call is a no-op, so the hot paths pay nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use async_trait::async_trait;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::bandit::ExperimentDef;
use crate::bo::StudyState;
use crate::http::json::Outcome;
use crate::store::{Created, ExperimentState, RewardOutcome, RewardUpdate, Store, StoreError};

pub mod gauges;

/// Experiments with their own label by default (`metrics.max_experiments`);
/// the rest count under "other". 100 experiments x (2 counters + 16 arms x
/// 5 gauges) is at most 8,200 series; 100 studies x (18 histogram series +
/// 1 gauge) at most 1,900.
pub const MAX_EXPERIMENT_LABELS: usize = 100;
/// Arms of a labelled experiment that get an interval-width gauge.
pub const MAX_ARM_LABELS: usize = 16;
/// Distinct RPC paths labelled; our services have fewer than 30 methods.
pub const MAX_RPC_LABELS: usize = 64;
/// Reward-lag buckets, in seconds: 100 ms (a reward sent right after its
/// decision) up to a day (the default dedupe window, beyond which a
/// decision id is refused); longer lags land in +Inf.
const REWARD_LAG_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0, 86400.0,
];

/// Suggest buckets, in seconds: 1 ms (initial design, no GP) up to 60 s (a
/// GP fit on the largest studies, plus waiting for the study lock).
const SUGGEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The label for everything beyond a cap.
pub const OTHER: &str = "other";

/// Latency buckets, in seconds: 50 µs (a cached Choose on loopback) up to
/// 2.5 s (beyond the store's 1 s timeout, so timeouts land in a bucket).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// The exporter's address once installed, as asked (`metrics.listen`) and as
/// bound (they differ for port 0): the recorder is process-global, so a
/// second server in the same process (tests, replicas) shares it.
static INSTALLED: OnceLock<(SocketAddr, SocketAddr)> = OnceLock::new();

/// Install the Prometheus exporter on `listen` (once per process) and return
/// the address it listens on (port 0 picks a free port, which tests use so
/// that no other process can take the port between choosing and binding).
/// Must run inside a tokio runtime: the exporter's HTTP listener is a task
/// on it.
pub fn install_exporter(listen: SocketAddr) -> Result<SocketAddr, String> {
    if let Some(&(asked, bound)) = INSTALLED.get() {
        return if listen == asked || listen == bound {
            Ok(bound)
        } else {
            Err(format!(
                "metrics.listen: this process already exports metrics on {bound}"
            ))
        };
    }
    // Bound here, synchronously, so a taken port is a start-up error.
    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .and_then(|l| l.local_addr().map(|a| (l, a)))
        .and_then(|(l, a)| tokio::net::TcpListener::from_std(l).map(|l| (l, a)))
        .map_err(|e| format!("metrics.listen: cannot export on {listen}: {e}"))?;
    let (listener, bound) = listener;
    // Exact names first: the builder tries `Full` matchers before `Suffix`.
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("posterior_reward_lag_seconds".into()),
            REWARD_LAG_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("posterior_study_suggest_seconds".into()),
                SUGGEST_BUCKETS,
            )
        })
        .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS))
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("metrics.listen: cannot export on {listen}: {e}"))?;
    let _ = INSTALLED.set((listen, bound));
    serve_exporter(listener, handle);
    tracing::info!(listen = %bound, "prometheus metrics exported at /metrics");
    Ok(bound)
}

/// Serve `GET /metrics` (any path, as the exporter crate's own listener
/// did; `/health` answers OK): the facade's metrics, then the removable
/// [`gauges`]. Our own listener rather than the crate's, because the crate's
/// renders only the facade.
fn serve_exporter(listener: tokio::net::TcpListener, handle: PrometheusHandle) {
    let upkeep = handle.clone();
    tokio::spawn(async move {
        // Histogram samples are buffered per thread and drained here (and at
        // every render); 5 s is the crate's own default upkeep period.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let metrics = move || {
        let handle = handle.clone();
        async move {
            let mut text = handle.render();
            text.push_str(&gauges::global().render());
            (
                [(
                    http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
        }
    };
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "OK" }))
        .fallback(axum::routing::get(metrics));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics exporter stopped");
        }
    });
}

/// Per-study handles, resolved once per name.
#[derive(Clone)]
pub struct StudyMetrics {
    /// `posterior_study_suggest_seconds{study}`.
    pub suggest: Histogram,
    /// `Some(label)` when this study has its own label (fit-time gauge).
    labelled: Option<Arc<str>>,
}

/// Per-experiment counters, resolved once (a label lookup per call would be
/// a hash-map probe on the Choose path).
#[derive(Clone)]
pub struct ExperimentMetrics {
    pub decisions: Counter,
    pub rewards: Counter,
    /// `Some(label)` when this experiment has its own label (width gauges).
    labelled: Option<Arc<str>>,
}

/// Handles to every metric, and the label caps. Cheap to clone via `Arc`.
pub struct Telemetry {
    enabled: bool,
    experiments: Mutex<HashMap<String, ExperimentMetrics>>,
    other: ExperimentMetrics,
    rpcs: Mutex<HashMap<String, Arc<str>>>,
    pub snapshot_hit: Counter,
    pub snapshot_miss: Counter,
    pub snapshot_uncached: Counter,
    /// Choose served from a snapshot past its bound because the store is down.
    pub snapshot_stale: Counter,
    /// Choose answered with the configured fallback arm: store down, no snapshot.
    pub choose_fallback: Counter,
    pub reward_visible: Histogram,
    /// `posterior_reward_lag_seconds`: decision issue → applied reward.
    pub reward_lag: Histogram,
    /// `posterior_experiments_with_winner` (set by `app::arm_metrics`).
    pub experiments_with_winner: Gauge,
    /// Experiment (and, separately, study) names with their own label.
    max_experiments: usize,
    studies: Mutex<HashMap<String, StudyMetrics>>,
    other_study: StudyMetrics,
}

impl Telemetry {
    /// `enabled`: an exporter is installed. When not, every handle is a
    /// no-op and the per-label bookkeeping is skipped.
    pub fn new(enabled: bool) -> Telemetry {
        let other = ExperimentMetrics {
            decisions: metrics::counter!("posterior_decisions_total", "experiment" => OTHER),
            rewards: metrics::counter!("posterior_rewards_total", "experiment" => OTHER),
            labelled: None,
        };
        Telemetry {
            enabled,
            experiments: Mutex::new(HashMap::new()),
            other,
            rpcs: Mutex::new(HashMap::new()),
            snapshot_hit: metrics::counter!("posterior_choose_snapshot_total", "result" => "hit"),
            snapshot_miss: metrics::counter!("posterior_choose_snapshot_total", "result" => "miss"),
            snapshot_uncached: metrics::counter!("posterior_choose_snapshot_total", "result" => "uncached"),
            snapshot_stale: metrics::counter!("posterior_choose_snapshot_total", "result" => "stale_outage"),
            choose_fallback: metrics::counter!("posterior_choose_snapshot_total", "result" => "fallback_arm"),
            reward_visible: metrics::histogram!("posterior_reward_visible_seconds"),
            reward_lag: metrics::histogram!("posterior_reward_lag_seconds"),
            experiments_with_winner: metrics::gauge!("posterior_experiments_with_winner"),
            max_experiments: MAX_EXPERIMENT_LABELS,
            studies: Mutex::new(HashMap::new()),
            other_study: StudyMetrics {
                suggest: metrics::histogram!("posterior_study_suggest_seconds", "study" => OTHER),
                labelled: None,
            },
        }
    }

    /// Cap experiment (and study) labels at `n` (`metrics.max_experiments`).
    pub fn with_max_experiments(mut self, n: usize) -> Telemetry {
        self.max_experiments = n;
        self
    }

    pub fn max_experiments(&self) -> usize {
        self.max_experiments
    }

    pub fn disabled() -> Telemetry {
        Telemetry::new(false)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Counters for one experiment: its own label for the first
    /// [`MAX_EXPERIMENT_LABELS`] names, "other" after.
    pub fn experiment(&self, name: &str) -> ExperimentMetrics {
        if !self.enabled {
            return self.other.clone();
        }
        capped(
            &self.experiments,
            name,
            self.max_experiments,
            &self.other,
            |label| ExperimentMetrics {
                decisions: metrics::counter!("posterior_decisions_total", "experiment" => label.to_string()),
                rewards: metrics::counter!("posterior_rewards_total", "experiment" => label.to_string()),
                labelled: Some(label),
            },
        )
    }

    /// Interval-width gauges for a fresh snapshot (labelled experiments,
    /// first [`MAX_ARM_LABELS`] arms; retired arms included, they still learn).
    pub fn record_widths(&self, m: &ExperimentMetrics, def: &ExperimentDef, widths: &[f64]) {
        let Some(label) = &m.labelled else { return };
        for (arm, w) in def.arms.iter().zip(widths).take(MAX_ARM_LABELS) {
            metrics::gauge!("posterior_interval_width", "experiment" => label.to_string(), "arm" => arm.name.clone()).set(*w);
        }
    }

    /// `posterior_experiment_drift{experiment}`: KL divergence between the
    /// posteriors of the experiment's two latest history points (summed
    /// over arms). Labelled experiments only (the same cap as the counters:
    /// a drift summed over unrelated experiments means nothing).
    pub fn record_drift(&self, experiment: &str, kl: f64) {
        if !self.enabled {
            return;
        }
        if let Some(label) = &self.experiment(experiment).labelled {
            metrics::gauge!("posterior_experiment_drift", "experiment" => label.to_string())
                .set(kl);
        }
    }

    /// `posterior_study_calibration{study}`: the LOO coverage of the
    /// study's last fit, for studies with their own label (the
    /// `metrics.max_experiments` cap; a coverage averaged over unrelated
    /// studies means nothing, so there is no "other"). Removable: it goes
    /// with the study ([`Telemetry::forget_study`]).
    pub fn record_calibration(&self, study: &str, coverage: f64) {
        if !self.enabled {
            return;
        }
        let Some(label) = self.study(study).labelled else {
            return;
        };
        gauges::global().set(
            "posterior_study_calibration",
            "Coverage of the study's 90% leave-one-out predictive intervals under its last GP fit (about 0.9 when calibrated).",
            &[("study", &label)],
            coverage,
        );
    }

    /// The experiment's handles if it already has its own label (it had a
    /// decision or a reward since start-up, within the cap); never claims
    /// a label, so a periodic pass over every experiment cannot take the
    /// labels from the ones with traffic.
    pub fn labelled_experiment(&self, name: &str) -> Option<ExperimentMetrics> {
        if !self.enabled {
            return None;
        }
        let map = self.experiments.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name).filter(|m| m.labelled.is_some()).cloned()
    }

    /// Handles for one study: its own label for the first
    /// `max_experiments` study names, "other" after.
    pub fn study(&self, name: &str) -> StudyMetrics {
        if !self.enabled {
            return self.other_study.clone();
        }
        capped(
            &self.studies,
            name,
            self.max_experiments,
            &self.other_study,
            |label| StudyMetrics {
                suggest: metrics::histogram!("posterior_study_suggest_seconds", "study" => label.to_string()),
                labelled: Some(label),
            },
        )
    }

    /// A Suggest of `m`'s study fitted a GP now (Unix seconds).
    pub fn record_fit(&self, m: &StudyMetrics, unix_seconds: f64) {
        let Some(label) = &m.labelled else { return };
        gauges::global().set(
            "posterior_study_fit_timestamp_seconds",
            "Unix time of the study's last Gaussian-process fit (a Suggest that fitted).",
            &[("study", label)],
            unix_seconds,
        );
    }

    /// The experiment's four per-arm posterior gauges, for its first
    /// [`MAX_ARM_LABELS`] arms (labelled experiments only), unless a
    /// deletion happened since `removals` ([`gauges::Gauges::removals`],
    /// read before the store read these figures come from).
    pub fn record_arms(&self, m: &ExperimentMetrics, arms: &[ArmGauges<'_>], removals: u64) {
        let Some(label) = &m.labelled else { return };
        let labels: Vec<[(&'static str, &str); 2]> = arms
            .iter()
            .take(MAX_ARM_LABELS)
            .map(|a| [("experiment", &**label), ("arm", a.arm)])
            .collect();
        let mut samples = Vec::with_capacity(labels.len() * 4);
        for (a, labels) in arms.iter().zip(&labels) {
            let sample = |name, help, value| gauges::Sample {
                name,
                help,
                labels,
                value,
            };
            samples.push(sample(
                "posterior_arm_mean",
                "Posterior mean of the arm's reward.",
                a.mean,
            ));
            samples.push(sample(
                "posterior_arm_interval_width",
                "Width of the arm's 95% credible interval of the mean.",
                a.interval_width,
            ));
            samples.push(sample(
                "posterior_arm_prob_best",
                "Posterior probability that the arm is the best (goal-aware, active arms; 0 when retired).",
                a.prob_best,
            ));
            samples.push(sample(
                "posterior_arm_evidence",
                "Decayed weight of the arm's evidence (rewards, after the half-life).",
                a.evidence,
            ));
        }
        gauges::global().set_unless_removed_since(removals, &samples);
    }

    /// The experiment was deleted: its per-arm gauges go (its counters
    /// cannot: the facade keeps them until restart, frozen).
    pub fn forget_experiment(&self, name: &str) {
        if self.enabled {
            gauges::global().remove("experiment", name);
        }
    }

    /// The study was deleted: its fit-time gauge goes.
    pub fn forget_study(&self, name: &str) {
        if self.enabled {
            gauges::global().remove("study", name);
        }
    }

    fn rpc_label(&self, path: &str) -> Arc<str> {
        let mut map = self.rpcs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = map.get(path) {
            return l.clone();
        }
        if map.len() >= MAX_RPC_LABELS {
            return OTHER.into();
        }
        let l: Arc<str> = path.trim_start_matches('/').into();
        map.insert(path.to_string(), l.clone());
        l
    }
}

/// `name`'s handles from `map`: made by `make` (from the label) while fewer
/// than `cap` names have their own, `other` after.
fn capped<T: Clone>(
    map: &Mutex<HashMap<String, T>>,
    name: &str,
    cap: usize,
    other: &T,
    make: impl FnOnce(Arc<str>) -> T,
) -> T {
    // A poisoned lock only means a panic elsewhere; the map stays valid.
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = map.get(name) {
        return m.clone();
    }
    if map.len() >= cap {
        return other.clone();
    }
    let m = make(name.into());
    map.insert(name.to_string(), m.clone());
    m
}

/// One arm's posterior figures for [`Telemetry::record_arms`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ArmGauges<'a> {
    pub arm: &'a str,
    pub mean: f64,
    pub interval_width: f64,
    pub prob_best: f64,
    pub evidence: f64,
}

// ---------------------------------------------------------------- gRPC layer

/// Tower layer on the server: one count and one latency observation per
/// request on either transport, labelled by transport, method and gRPC
/// status code name.
#[derive(Clone)]
pub struct GrpcMetricsLayer {
    telemetry: Arc<Telemetry>,
}

impl GrpcMetricsLayer {
    pub fn new(telemetry: Arc<Telemetry>) -> Self {
        GrpcMetricsLayer { telemetry }
    }
}

impl<S> tower::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;
    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics {
            inner,
            telemetry: self.telemetry.clone(),
        }
    }
}

#[derive(Clone)]
pub struct GrpcMetrics<S> {
    inner: S,
    telemetry: Arc<Telemetry>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
    RB: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if !self.telemetry.enabled {
            return Box::pin(self.inner.call(req));
        }
        let grpc = crate::edge::admission::is_grpc(&req);
        let rpc = grpc.then(|| self.telemetry.rpc_label(req.uri().path()));
        let start = Instant::now();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let (transport, rpc, code): (&str, Arc<str>, &str) = match (&res, rpc) {
                // Unary errors are "trailers-only" responses: grpc-status is
                // in the headers. Successes carry it in the trailers, after
                // the body; a response without it in the headers is OK (our
                // RPCs are unary, so nothing fails after the headers are sent).
                (Ok(r), Some(rpc)) => (
                    "grpc",
                    rpc,
                    r.headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|s| s.parse::<usize>().ok())
                        .map_or("OK", |c| CODE_NAMES.get(c).copied().unwrap_or("UNKNOWN")),
                ),
                // HTTP: the handler (or the admission layer) said which
                // operation answered and how; else a route we do not know.
                (Ok(r), None) => match r.extensions().get::<Outcome>() {
                    Some(o) => ("http", o.rpc.into(), o.error.map_or("OK", |k| k.name())),
                    None => ("http", OTHER.into(), "UNKNOWN"),
                },
                (Err(_), rpc) => (
                    if rpc.is_some() { "grpc" } else { "http" },
                    rpc.unwrap_or_else(|| OTHER.into()),
                    "transport_error",
                ),
            };
            let secs = start.elapsed().as_secs_f64();
            metrics::counter!("posterior_grpc_requests_total", "transport" => transport, "rpc" => rpc.to_string(), "code" => code).increment(1);
            metrics::histogram!("posterior_grpc_request_duration_seconds", "transport" => transport, "rpc" => rpc.to_string(), "code" => code).record(secs);
            res
        })
    }
}

/// Canonical gRPC status names, indexed by code (the usual label values).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

// ---------------------------------------------------------------- store timing

/// A [`Store`] that times every call: `posterior_store_duration_seconds{op}`.
/// Wrapped around the real store only when metrics are on.
pub struct TimedStore {
    inner: Arc<dyn Store>,
    h: [Op; 12],
}

/// One operation's latency histogram, and `posterior_store_up`, which
/// every call sets from its outcome.
struct Op {
    latency: Histogram,
    up: Gauge,
}

impl TimedStore {
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        let h = |op: &'static str| Op {
            latency: metrics::histogram!("posterior_store_duration_seconds", "op" => op),
            up: metrics::gauge!("posterior_store_up"),
        };
        Arc::new(TimedStore {
            inner,
            h: [
                h("create_experiment"),
                h("experiment"),
                h("list_experiments"),
                h("delete_experiment"),
                h("update_definition"),
                h("reward"),
                h("ping"),
                h("create_study"),
                h("study"),
                h("save_study"),
                h("list_studies"),
                h("delete_study"),
            ],
        })
    }
}

async fn timed<T>(
    op: &Op,
    f: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let start = Instant::now();
    let r = f.await;
    op.latency.record(start.elapsed().as_secs_f64());
    // Only "unreachable or timed out" means down: a conflict, a missing
    // record or corrupt data came from a store that answered.
    op.up.set(if matches!(r, Err(StoreError::Unavailable(_))) {
        0.0
    } else {
        1.0
    });
    r
}

#[async_trait]
impl Store for TimedStore {
    async fn create_experiment(
        &self,
        def: &ExperimentDef,
    ) -> Result<Created<ExperimentDef>, StoreError> {
        timed(&self.h[0], self.inner.create_experiment(def)).await
    }
    async fn experiment(&self, name: &str) -> Result<Option<ExperimentState>, StoreError> {
        timed(&self.h[1], self.inner.experiment(name)).await
    }
    async fn list_experiments(&self) -> Result<Vec<String>, StoreError> {
        timed(&self.h[2], self.inner.list_experiments()).await
    }
    async fn delete_experiment(&self, name: &str) -> Result<bool, StoreError> {
        timed(&self.h[3], self.inner.delete_experiment(name)).await
    }
    async fn update_definition(
        &self,
        old: &ExperimentDef,
        new: &ExperimentDef,
    ) -> Result<bool, StoreError> {
        timed(&self.h[4], self.inner.update_definition(old, new)).await
    }
    async fn reward(&self, update: &RewardUpdate) -> Result<RewardOutcome, StoreError> {
        timed(&self.h[5], self.inner.reward(update)).await
    }
    async fn reward_batch(
        &self,
        updates: &[RewardUpdate],
    ) -> Result<Vec<Result<RewardOutcome, StoreError>>, StoreError> {
        // Looked up per call, as for assign_unit below (one per batch).
        let op = Op {
            latency: metrics::histogram!("posterior_store_duration_seconds", "op" => "reward_batch"),
            up: metrics::gauge!("posterior_store_up"),
        };
        timed(&op, self.inner.reward_batch(updates)).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        timed(&self.h[6], self.inner.ping()).await
    }
    async fn shared_secret(&self, proposed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.inner.shared_secret(proposed).await
    }
    async fn create_study(&self, study: &StudyState) -> Result<Created<StudyState>, StoreError> {
        timed(&self.h[7], self.inner.create_study(study)).await
    }
    async fn study(&self, name: &str) -> Result<Option<StudyState>, StoreError> {
        timed(&self.h[8], self.inner.study(name)).await
    }
    async fn save_study(&self, study: &StudyState) -> Result<bool, StoreError> {
        timed(&self.h[9], self.inner.save_study(study)).await
    }
    async fn list_studies(&self) -> Result<Vec<String>, StoreError> {
        timed(&self.h[10], self.inner.list_studies()).await
    }
    async fn delete_study(&self, name: &str) -> Result<bool, StoreError> {
        timed(&self.h[11], self.inner.delete_study(name)).await
    }
    async fn append_history(
        &self,
        experiment: &str,
        point: &crate::bandit::history::HistoryPoint,
        retention_points: usize,
    ) -> Result<bool, StoreError> {
        // Once per experiment per interval: not worth a histogram.
        self.inner
            .append_history(experiment, point, retention_points)
            .await
    }
    async fn history(
        &self,
        experiment: &str,
        since_ms: Option<i64>,
    ) -> Result<Vec<crate::bandit::history::HistoryPoint>, StoreError> {
        self.inner.history(experiment, since_ms).await
    }
    async fn assign_unit(
        &self,
        a: &crate::store::AssignUnit<'_>,
    ) -> Result<crate::store::Assignment, StoreError> {
        // Looked up per call (a registry hit, ~100 ns, next to a store
        // round trip), which keeps the histogram array above unchanged.
        let op = Op {
            latency: metrics::histogram!("posterior_store_duration_seconds", "op" => "assign_unit"),
            up: metrics::gauge!("posterior_store_up"),
        };
        timed(&op, self.inner.assign_unit(a)).await
    }
}
