//! Admission: what every request passes before a handler runs, on both
//! transports, as one tower layer (top-down):
//! 1. load shedding: at most `server.max_concurrent_requests` requests in
//!    flight; beyond that, RESOURCE_EXHAUSTED at once, never an unbounded
//!    queue (a decision service that queues turns overload into latency for
//!    every caller);
//! 2. authentication and scope (`edge::auth`), when API keys are configured.
//!
//! A refusal answers in the caller's transport: a gRPC status for gRPC
//! (`content-type: application/grpc...`), the JSON error body with its HTTP
//! status otherwise (429 with `Retry-After` when shed).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::{Error, ErrorKind};
use bytes::Buf;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use super::auth::{ApiKeys, scope_for};
use crate::http::json::error_response;

fn presented_key<B>(req: &http::Request<B>) -> Option<&str> {
    let h = req.headers();
    if let Some(v) = h.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

#[derive(Clone)]
pub struct AdmissionLayer {
    keys: Arc<ApiKeys>,
    in_flight: Arc<Semaphore>,
}

impl AdmissionLayer {
    pub fn new(keys: ApiKeys, max_concurrent_requests: usize) -> Self {
        AdmissionLayer {
            keys: Arc::new(keys),
            in_flight: Arc::new(Semaphore::new(max_concurrent_requests)),
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;
    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// A refused request's body is read (up to a bound) before the answer goes
/// out. Answering without reading leaves its DATA frames buffered in h2,
/// which charges them to a per-connection flood budget; under sustained
/// shedding the budget runs out and h2 kills the connection with every
/// request on it (GOAWAY ENHANCE_YOUR_CALM, UNKNOWN "transport error" at the
/// clients). Unary requests are small and already buffered, so this is
/// cheap; a client that trickles a large body is cut off by the bounds.
const DRAIN_MAX_BYTES: usize = 64 * 1024;
const DRAIN_MAX_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

async fn drain<B: Body>(body: B) {
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut seen = 0usize;
        while seen <= DRAIN_MAX_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    seen += frame.data_ref().map_or(0, |d| d.remaining());
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_MAX_WAIT, read).await;
}

/// Whether a request speaks gRPC (and so wants a gRPC status back).
pub fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// A refusal in the caller's transport.
fn refusal(grpc: bool, e: &Error) -> http::Response<tonic::body::Body> {
    if grpc {
        tonic::Status::new(e.kind.grpc_code(), e.message.clone()).into_http()
    } else {
        error_response("refused", e).map(tonic::body::Body::new)
    }
}

impl<S, B> tower::Service<http::Request<B>> for Admission<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Send,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let reject = |e: Error, req: http::Request<B>| -> Self::Future {
            let res = refusal(is_grpc(&req), &e);
            Box::pin(async move {
                drain(req.into_body()).await;
                Ok(res)
            })
        };
        let Ok(permit) = self.layer.in_flight.clone().try_acquire_owned() else {
            return reject(
                Error::new(
                    ErrorKind::ResourceExhausted,
                    "server overloaded: too many requests in flight (server.max_concurrent_requests); retry with backoff",
                ),
                req,
            );
        };
        let keys = &self.layer.keys;
        if !keys.is_empty()
            && let Some(scope) = scope_for(req.method(), req.uri().path())
            && let Err(e) = keys.authorize(presented_key(&req), scope)
        {
            return reject(e, req);
        }
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            drop(permit);
            out
        })
    }
}
