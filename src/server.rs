//! Wiring: configuration → store → application core → both transports on
//! one listening server.
//!
//! The stack, top-down (every request passes the first two, whichever
//! transport it speaks):
//! - metrics layer (`telemetry::GrpcMetricsLayer`): count and time every
//!   request (outermost, so shed and refused requests are counted too);
//! - admission (`edge::admission`): load shedding, then API keys and scopes;
//! - the transport switch: `content-type: application/grpc...` goes to gRPC,
//!   everything else to HTTP/JSON (`http::router`);
//! - gRPC: health (`grpc.health.v1.Health`, SERVING once the store
//!   answered), reflection (v1 and v1alpha, so grpcurl and friends discover
//!   the API), `posterior.v1.Bandits` and `posterior.v1.Optimizer`
//!   (`grpc::*`), each a thin face of the same `app::App`; on them,
//!   `grpc::decode_status` makes a request that does not decode
//!   INVALID_ARGUMENT, not tonic's INTERNAL (inside metrics, so they count
//!   it so).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use crate::app::bandits::BanditSettings;
use crate::app::history::{HistoryRecorder, HistorySettings};
use crate::app::snapshot::SnapshotCache;
use crate::app::{App, Bandits, Studies};
use crate::bandit::DecisionSigner;
use crate::config::{Config, StoreBackend, ValidConfig};
use crate::edge::admission::{AdmissionLayer, is_grpc};
use crate::grpc::bandits::BanditsGrpc;
use crate::grpc::decode_status::DecodeStatusLayer;
use crate::grpc::optimizer::OptimizerGrpc;
use crate::pb::FILE_DESCRIPTOR_SET;
use crate::pb::bandits_server::BanditsServer;
use crate::pb::optimizer_server::OptimizerServer;
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisOptions, RedisStore, redact_url};
use crate::telemetry::{self, GrpcMetricsLayer, Telemetry, TimedStore};

/// A server running in the background: its bound address, and how to stop it.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when `metrics.listen` is set (the bound
    /// address: `metrics.listen` may ask for port 0).
    pub metrics_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    /// The per-arm gauge task (`app::arm_metrics`), when metrics are on.
    arm_metrics: Option<JoinHandle<()>>,
}

impl Running {
    /// Stop accepting, let in-flight requests finish, and wait.
    pub async fn stop(mut self) -> Result<(), String> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.arm_metrics.take() {
            t.abort();
        }
        match self.task.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Wait until the server exits (it runs until `stop`).
    pub async fn wait(self) -> Result<(), String> {
        match self.task.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Redis connection settings from the `[store]` section; TLS files are read
/// here so a missing file is a start-up error that names the key.
fn redis_options(st: &crate::config::StoreConfig) -> Result<RedisOptions, String> {
    let read = |key: &str, path: &str| -> Result<Option<Vec<u8>>, String> {
        if path.is_empty() {
            return Ok(None);
        }
        read_pem(key, path).map(Some)
    };
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let cert = read("store.redis_tls_cert", &st.redis_tls_cert)?;
    let key = read("store.redis_tls_key", &st.redis_tls_key)?;
    Ok(RedisOptions {
        connect_timeout: Duration::from_millis(st.redis_connect_timeout_ms),
        response_timeout: Duration::from_millis(st.redis_response_timeout_ms),
        username: non_empty(&st.redis_username),
        password: non_empty(&st.redis_password),
        tls_ca_pem: read("store.redis_tls_ca", &st.redis_tls_ca)?,
        tls_client_pem: cert.zip(key),
    })
}

/// HTTP/2 receive window per connection. h2 guards against floods of small
/// DATA frames with a budget of half this window (at least 25,600 bytes of
/// "overhead", each buffered unary request charging up to 256): at the 64 KiB
/// default, ~130 requests waiting on an overloaded server trip it, and h2
/// kills the connection with every request on it (GOAWAY ENHANCE_YOUR_CALM,
/// seen by clients as UNKNOWN "transport error"). 1 MiB gives a 512 KiB
/// budget, ~2,000 waiting requests, far above max_streams_per_connection.
const CONNECTION_WINDOW_BYTES: u32 = 1024 * 1024;

/// The store the configuration asks for, and the key that signs decision ids.
async fn open_store(cfg: &ValidConfig) -> Result<(Arc<dyn Store>, Vec<u8>), String> {
    let store: Arc<dyn Store> = match &cfg.store {
        StoreBackend::Redis { url } => {
            let opts = redis_options(&cfg.config.store)?;
            let store = RedisStore::connect(url, &opts)
                .await
                .map_err(|e| format!("store.redis_url: {e}"))?;
            tracing::info!(url = %redact_url(url), tls = url.starts_with("rediss://"), "connected to redis");
            Arc::new(store)
        }
        StoreBackend::Memory => Arc::new(MemoryStore::new()),
        StoreBackend::Embedded { path } => {
            Arc::new(EmbeddedStore::open(path).map_err(|e| format!("store.path: {e}"))?)
        }
    };
    let secret = &cfg.config.decisions.secret;
    let secret = if secret.is_empty() {
        // Generated once per store, then shared: see `Store::shared_secret`.
        let proposed: [u8; 32] = rand::random();
        store
            .shared_secret(&proposed)
            .await
            .map_err(|e| format!("decisions.secret: {e}"))?
    } else {
        secret.as_bytes().to_vec()
    };
    Ok((store, secret))
}

/// A PEM file the config names under `key`; a missing file is a start-up
/// error naming the key.
fn read_pem(key: &str, path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key}: {path}: {e}"))
}

/// How long a client may take to finish its TLS handshake: a stalled
/// handshake holds a task and a socket, never the accept loop.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Completed TLS connections waiting for the server to take them.
const TLS_ACCEPT_QUEUE: usize = 1024;

/// The listener's TLS acceptor, from the PEM files the config names.
///
/// Done here rather than by tonic: tonic's acceptor offers ALPN `h2` only,
/// so an HTTP/1.1-only client (Python's requests, many webhook senders)
/// could not speak HTTPS to the HTTP/JSON API. Offered: `h2` first (gRPC
/// and HTTP/2 clients), then `http/1.1`.
fn tls_acceptor(cfg: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let s = &cfg.server;
    if s.tls_cert.is_empty() {
        return Ok(None);
    }
    let certs = CertificateDer::pem_slice_iter(&read_pem("server.tls_cert", &s.tls_cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("server.tls_cert: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&read_pem("server.tls_key", &s.tls_key)?)
        .map_err(|e| format!("server.tls_key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls_cert: {e}"))?;
    let builder = if s.tls_client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for c in
            CertificateDer::pem_slice_iter(&read_pem("server.tls_client_ca", &s.tls_client_ca)?)
        {
            let c = c.map_err(|e| format!("server.tls_client_ca: {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("server.tls_client_ca: {e}"))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .map_err(|e| format!("server.tls_client_ca: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut tls = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("server.tls_cert / server.tls_key: {e}"))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls))))
}

/// Accept TCP connections and hand over those that finished their TLS
/// handshake; each handshake runs in its own task, so one slow client
/// cannot hold up the others. Stops when the server drops the receiver.
fn tls_incoming(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<
    Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(TLS_ACCEPT_QUEUE);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = tx.closed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: say so,
                        // breathe, go on accepting.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Validate `cfg`, open the store, bind `cfg.server.listen` (port 0 picks a
/// free port) and serve in the background.
pub async fn start(cfg: Config) -> Result<Running, String> {
    let valid = cfg.check()?;
    let addr = valid.listen;
    // Metrics first: handles created before the recorder exists are no-ops.
    let metrics_addr = match valid.metrics {
        Some(m) => Some(telemetry::install_exporter(m)?),
        None => None,
    };
    let telemetry = Arc::new(
        Telemetry::new(valid.metrics.is_some())
            .with_max_experiments(valid.config.metrics.max_experiments),
    );
    let (mut store, secret) = open_store(&valid).await?;
    let backend = valid.store.name();
    let keys = valid.keys;
    let cfg = valid.config;
    if telemetry.enabled() {
        store = TimedStore::wrap(store);
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("server.listen: cannot bind {addr}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;

    let bandits = Bandits::new(
        store.clone(),
        DecisionSigner::new(&secret),
        BanditSettings {
            dedupe_window_ms: cfg.decisions.dedupe_window_seconds * 1000,
            max_clock_skew_ms: cfg.decisions.max_clock_skew_seconds * 1000,
            prob_best_draws: cfg.bandit.prob_best_draws as usize,
            fallback_arms: cfg.bandit.fallback_arms.clone(),
            rng_seed: cfg.bandit.test_rng_seed,
        },
    )
    .with_cache(
        SnapshotCache::new(
            store.clone(),
            telemetry.clone(),
            Duration::from_millis(cfg.bandit.choose_max_staleness_ms),
        )
        .with_rng_seed(cfg.bandit.test_rng_seed),
    );
    // History: one point per experiment per interval (see app::history).
    let recorder = Arc::new(HistoryRecorder::new(
        store.clone(),
        bandits.decision_tally(),
        HistorySettings {
            interval_ms: (cfg.history.interval_seconds * 1000) as i64,
            retention_points: cfg.history.retention_points,
            prob_best_draws: cfg.bandit.prob_best_draws as usize,
        },
        telemetry.clone(),
    ));
    let recording = tokio::spawn(recorder.run()).abort_handle();
    let arm_metrics = telemetry.enabled().then(|| {
        crate::app::arm_metrics::spawn(
            store.clone(),
            telemetry.clone(),
            Duration::from_secs(cfg.metrics.refresh_seconds),
        )
    });
    let app = Arc::new(App::new(
        store.clone(),
        bandits,
        Studies::new(store.clone()).with_telemetry(telemetry.clone()),
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<BanditsServer<BanditsGrpc>>().await;
    health.set_serving::<OptimizerServer<OptimizerGrpc>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| format!("reflection: {e}"))?;

    if keys.is_empty() {
        tracing::warn!("no API keys configured (auth.keys): authentication is off");
    }
    let max_msg = cfg.server.max_message_bytes;
    let grpc = tonic::service::Routes::new(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(
            BanditsServer::new(BanditsGrpc::new(app.clone()))
                .max_decoding_message_size(max_msg)
                .max_encoding_message_size(max_msg),
        )
        .add_service(
            OptimizerServer::new(OptimizerGrpc::new(app.clone()))
                .max_decoding_message_size(max_msg)
                .max_encoding_message_size(max_msg),
        )
        .into_axum_router()
        .layer(DecodeStatusLayer);
    let http = crate::http::router(app, max_msg);
    // One listener, two transports: gRPC by content type, HTTP otherwise.
    let both = axum::Router::new().fallback_service(tower::service_fn(
        move |req: axum::extract::Request| {
            let target = if is_grpc(&req) {
                grpc.clone()
            } else {
                http.clone()
            };
            tower::ServiceExt::oneshot(target, req)
        },
    ));

    let (tx, rx) = oneshot::channel::<()>();
    let tls = tls_acceptor(&cfg)?;
    let builder = tonic::transport::Server::builder()
        // HTTP/1.1 beside HTTP/2 (prior knowledge, h2c): curl, browsers,
        // webhooks. gRPC itself stays HTTP/2.
        .accept_http1(true)
        .max_concurrent_streams(cfg.server.max_streams_per_connection)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
    let router = builder
        .layer(GrpcMetricsLayer::new(telemetry))
        .layer(AdmissionLayer::new(
            keys,
            cfg.server.max_concurrent_requests,
        ))
        .add_routes(tonic::service::Routes::from(both));
    let shutdown = async move {
        // Stopped, or the handle dropped: either way, stop recording too.
        let _ = rx.await;
        recording.abort();
    };
    let task = match tls {
        Some(acceptor) => tokio::spawn(
            router.serve_with_incoming_shutdown(tls_incoming(listener, acceptor), shutdown),
        ),
        None => {
            // Small responses must not wait on Nagle's algorithm (a 40 ms
            // stall against delayed ACKs); tonic sets no socket options on
            // streams handed to serve_with_incoming.
            let incoming = TcpListenerStream::new(listener).map(|s| {
                if let Ok(s) = &s {
                    let _ = s.set_nodelay(true);
                }
                s
            });
            tokio::spawn(router.serve_with_incoming_shutdown(incoming, shutdown))
        }
    };
    tracing::info!(%addr, store = backend, "posterior listening");
    Ok(Running {
        addr,
        metrics_addr,
        shutdown: Some(tx),
        task,
        arm_metrics,
    })
}
