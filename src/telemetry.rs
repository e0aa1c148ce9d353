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
//!
//! **Label cardinality is capped**: the first [`MAX_EXPERIMENT_LABELS`]
//! experiment names seen get their own `experiment` label, later ones count
//! under `experiment="other"` (and get no interval-width gauge: a width
//! summed over unrelated experiments means nothing); only the first
//! [`MAX_ARM_LABELS`] arms of a labelled experiment get a width gauge. RPC
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
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

use crate::bandit::ExperimentDef;
use crate::bo::StudyState;
use crate::http::json::Outcome;
use crate::store::{Created, ExperimentState, RewardOutcome, RewardUpdate, Store, StoreError};

/// Experiments with their own label; the rest count under "other". 100
/// experiments x (2 counters + 16 gauges) keeps a scrape well under 10k series.
pub const MAX_EXPERIMENT_LABELS: usize = 100;
/// Arms of a labelled experiment that get an interval-width gauge.
pub const MAX_ARM_LABELS: usize = 16;
/// Distinct RPC paths labelled; our services have fewer than 30 methods.
pub const MAX_RPC_LABELS: usize = 64;
/// The label for everything beyond a cap.
pub const OTHER: &str = "other";

/// Latency buckets, in seconds: 50 µs (a cached Choose on loopback) up to
/// 2.5 s (beyond the store's 1 s timeout, so timeouts land in a bucket).
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5,
];

/// The exporter's address, once installed: the recorder is process-global,
/// so a second server in the same process (tests, replicas) shares it.
static INSTALLED: OnceLock<SocketAddr> = OnceLock::new();

/// Install the Prometheus exporter on `listen` (once per process). Must run
/// inside a tokio runtime: the exporter's HTTP listener is a task on it.
pub fn install_exporter(listen: SocketAddr) -> Result<(), String> {
    if let Some(addr) = INSTALLED.get() {
        return if *addr == listen {
            Ok(())
        } else {
            Err(format!(
                "metrics.listen: this process already exports metrics on {addr}"
            ))
        };
    }
    PrometheusBuilder::new()
        .with_http_listener(listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| b.install())
        .map_err(|e| format!("metrics.listen: cannot export on {listen}: {e}"))?;
    let _ = INSTALLED.set(listen);
    tracing::info!(%listen, "prometheus metrics exported at /metrics");
    Ok(())
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
        }
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
        // A poisoned lock only means a panic elsewhere; the map stays valid.
        let mut map = self.experiments.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = map.get(name) {
            return m.clone();
        }
        if map.len() >= MAX_EXPERIMENT_LABELS {
            return self.other.clone();
        }
        let label: Arc<str> = name.into();
        let m = ExperimentMetrics {
            decisions: metrics::counter!("posterior_decisions_total", "experiment" => label.to_string()),
            rewards: metrics::counter!("posterior_rewards_total", "experiment" => label.to_string()),
            labelled: Some(label),
        };
        map.insert(name.to_string(), m.clone());
        m
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
    h: [Histogram; 12],
}

impl TimedStore {
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        let h =
            |op: &'static str| metrics::histogram!("posterior_store_duration_seconds", "op" => op);
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

async fn timed<T>(h: &Histogram, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let r = f.await;
    h.record(start.elapsed().as_secs_f64());
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
        let h = metrics::histogram!("posterior_store_duration_seconds", "op" => "assign_unit");
        timed(&h, self.inner.assign_unit(a)).await
    }
}
