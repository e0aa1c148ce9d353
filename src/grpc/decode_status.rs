//! A malformed request message is the caller's mistake, not ours.
//!
//! tonic answers a request body that does not decode as its protobuf message
//! (bad bytes, invalid UTF-8 in a string field) with INTERNAL, as grpc's
//! status-code guide suggests for parse failures. For this service INTERNAL
//! is what pages the on-call engineer, and a client sending garbage is not a
//! server fault: this layer turns exactly those responses into
//! INVALID_ARGUMENT and keeps their message. Every other INTERNAL (a corrupt
//! record in the store, a numerical failure, tonic's own protocol errors)
//! passes untouched: those do need a human.
//!
//! Recognized by the message tonic-prost gives a decode failure
//! (`Status::internal(prost::DecodeError::to_string())`, and prost's
//! `Display` starts with [`DECODE_ERROR_PREFIX`]). A unary decode failure is
//! a Trailers-Only response, with `grpc-status` in the headers; a streaming
//! one (reflection) ends the body with it in the trailers. Both are rewritten.

use std::pin::Pin;
use std::task::{Context, Poll};

use http::HeaderMap;
use http::header::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use tonic::{Code, Status};

/// What prost's `DecodeError` says first (prost 0.14 `error.rs`, `Display`),
/// and so the message of tonic-prost's decode-failure status.
pub const DECODE_ERROR_PREFIX: &str = "failed to decode Protobuf message: ";

/// `grpc-status` of INTERNAL, as the header carries it.
const INTERNAL: &[u8] = b"13";

/// Rewrites INTERNAL decode failures to INVALID_ARGUMENT (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct DecodeStatusLayer;

impl<S> tower::Layer<S> for DecodeStatusLayer {
    type Service = DecodeStatus<S>;
    fn layer(&self, inner: S) -> DecodeStatus<S> {
        DecodeStatus { inner }
    }
}

#[derive(Clone, Debug)]
pub struct DecodeStatus<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<http::Request<B>> for DecodeStatus<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<DecodeStatusBody<RB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let (mut parts, body) = res.into_parts();
            if rewrite(&mut parts.headers) {
                // tonic also leaves the `Status` in the extensions; keep it
                // in step with the headers for any layer that reads it.
                if let Some(old) = parts.extensions.remove::<Status>() {
                    parts
                        .extensions
                        .insert(Status::new(Code::InvalidArgument, old.message()));
                }
            }
            Ok(http::Response::from_parts(
                parts,
                DecodeStatusBody { inner: body },
            ))
        })
    }
}

/// The response body, with the same rewrite applied to its trailers.
#[derive(Debug, Default)]
pub struct DecodeStatusBody<B> {
    inner: B,
}

impl<B: Body + Unpin> Body for DecodeStatusBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx).map(|frame| {
            frame.map(|r| {
                r.map(|f| match f.into_trailers() {
                    Ok(mut trailers) => {
                        rewrite(&mut trailers);
                        Frame::trailers(trailers)
                    }
                    Err(f) => f,
                })
            })
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// INTERNAL with a decode-failure message becomes INVALID_ARGUMENT; the
/// (percent-encoded) `grpc-message` stays as it is. True when rewritten.
fn rewrite(headers: &mut HeaderMap) -> bool {
    let is_decode_failure = headers
        .get(Status::GRPC_STATUS)
        .is_some_and(|v| v.as_bytes() == INTERNAL)
        && headers
            .get(Status::GRPC_MESSAGE)
            .is_some_and(|m| percent_decoded_starts_with(m.as_bytes(), DECODE_ERROR_PREFIX));
    if is_decode_failure {
        headers.insert(
            Status::GRPC_STATUS,
            HeaderValue::from(Code::InvalidArgument as i32),
        );
    }
    is_decode_failure
}

/// Whether the percent-decoding of `raw` (the `grpc-message` encoding)
/// starts with `prefix`. Decodes no more than the prefix's length.
fn percent_decoded_starts_with(raw: &[u8], prefix: &str) -> bool {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut want = prefix.bytes();
    let mut i = 0;
    loop {
        let Some(expected) = want.next() else {
            return true;
        };
        let got = match raw.get(i) {
            None => return false,
            Some(b'%') => match (
                raw.get(i + 1).copied().and_then(hex),
                raw.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => {
                    i += 3;
                    (h * 16 + l) as u8
                }
                _ => {
                    i += 1;
                    b'%'
                }
            },
            Some(&b) => {
                i += 1;
                b
            }
        };
        if got != expected {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::{Layer, Service, ServiceExt};

    /// What tonic's server answers when the request does not decode.
    fn decode_failure() -> Status {
        Status::internal(format!(
            "{DECODE_ERROR_PREFIX}invalid string value: data is not UTF-8 encoded"
        ))
    }

    /// A fake gRPC service answering every call with `status`, either as
    /// tonic does for unary errors (Trailers-Only: the status in the
    /// headers) or at the end of a streamed body (the status in the trailers).
    #[derive(Clone)]
    struct Fake {
        status: fn() -> Status,
        in_trailers: bool,
    }

    impl Service<http::Request<()>> for Fake {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: http::Request<()>) -> Self::Future {
            let status = (self.status)();
            if !self.in_trailers {
                return std::future::ready(Ok(status.into_http::<tonic::body::Body>()));
            }
            let mut trailers = HeaderMap::new();
            status.add_header(&mut trailers).expect("valid status");
            let frames = vec![
                Ok::<_, Status>(Frame::data(bytes::Bytes::from_static(b"\0\0\0\0\0"))),
                Ok(Frame::trailers(trailers)),
            ];
            let body = http_body_util::StreamBody::new(tokio_stream::iter(frames));
            std::future::ready(Ok(http::Response::new(tonic::body::Body::new(body))))
        }
    }

    fn fake(status: fn() -> Status, in_trailers: bool) -> Fake {
        Fake {
            status,
            in_trailers,
        }
    }

    /// The status a client would read: from the headers, else the trailers.
    async fn status_of(
        svc: impl Service<
            http::Request<()>,
            Response = http::Response<DecodeStatusBody<tonic::body::Body>>,
            Error = Infallible,
        >,
    ) -> (Status, Option<Status>) {
        let res = svc
            .oneshot(http::Request::new(()))
            .await
            .expect("infallible");
        let (parts, body) = res.into_parts();
        let ext = parts
            .extensions
            .get::<Status>()
            .map(|s| Status::new(s.code(), s.message()));
        if let Some(s) = Status::from_header_map(&parts.headers) {
            return (s, ext);
        }
        let collected = body.collect().await.expect("body");
        let trailers = collected.trailers().expect("trailers").clone();
        (
            Status::from_header_map(&trailers).expect("grpc-status"),
            ext,
        )
    }

    #[tokio::test]
    async fn decode_failures_become_invalid_argument_keeping_the_message() {
        for in_trailers in [false, true] {
            let svc = DecodeStatusLayer.layer(fake(decode_failure, in_trailers));
            let (s, ext) = status_of(svc).await;
            assert_eq!(s.code(), Code::InvalidArgument, "trailers: {in_trailers}");
            assert_eq!(s.message(), decode_failure().message());
            if !in_trailers {
                let ext = ext.expect("status extension");
                assert_eq!(ext.code(), Code::InvalidArgument);
                assert_eq!(ext.message(), decode_failure().message());
            }
        }
    }

    #[tokio::test]
    async fn other_statuses_pass_untouched() {
        let others: [fn() -> Status; 5] = [
            || Status::internal("internal error: store record is corrupt"),
            || Status::internal("Missing request message."),
            // The prefix, but not at the start: not tonic's decode failure.
            || Status::internal(format!("store: {DECODE_ERROR_PREFIX}x")),
            || Status::unavailable(format!("{DECODE_ERROR_PREFIX}x")),
            || Status::invalid_argument("name: must not be empty"),
        ];
        for status in others {
            for in_trailers in [false, true] {
                let svc = DecodeStatusLayer.layer(fake(status, in_trailers));
                let (s, _) = status_of(svc).await;
                assert_eq!(s.code(), status().code(), "{}", status().message());
                assert_eq!(s.message(), status().message());
            }
        }
    }

    #[tokio::test]
    async fn success_passes_untouched() {
        let ok = tower::service_fn(|_req: http::Request<()>| async {
            let mut res = http::Response::new(tonic::body::Body::empty());
            res.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            Ok::<_, Infallible>(res)
        });
        let res = DecodeStatusLayer
            .layer(ok)
            .oneshot(http::Request::new(()))
            .await
            .expect("infallible");
        assert!(res.headers().get(Status::GRPC_STATUS).is_none());
        assert_eq!(res.headers().len(), 1);
    }

    #[test]
    fn percent_decoding_of_the_prefix() {
        let p = DECODE_ERROR_PREFIX;
        let encoded = "failed%20to%20decode%20Protobuf%20message:%20invalid%20varint";
        assert!(percent_decoded_starts_with(encoded.as_bytes(), p));
        assert!(percent_decoded_starts_with(
            b"failed to decode Protobuf message: x",
            p
        ));
        assert!(percent_decoded_starts_with(
            b"%66ailed%20to%20decode%20Protobuf%20message%3A%20",
            p
        ));
        assert!(!percent_decoded_starts_with(b"failed%20to%20decode", p));
        assert!(!percent_decoded_starts_with(b"", p));
        assert!(!percent_decoded_starts_with(b"%zzfailed", p));
    }
}
