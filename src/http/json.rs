//! JSON in and out: request bodies decoded into the proto messages through
//! their proto3 JSON mapping (pbjson), answers encoded the same way, and
//! errors as `{"error": {"code", "status", "message"}}` through the one kind
//! table.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// Which operation answered (the gRPC method's full name, e.g.
/// `posterior.v1.Bandits/Choose`) and how: put on every HTTP response for
/// the metrics layer, so HTTP and gRPC calls of one use case share a label
/// and no user-given name ends up in one.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub rpc: &'static str,
    /// `None` on success.
    pub error: Option<ErrorKind>,
}

/// Seconds a shed caller should wait before retrying (`Retry-After`).
/// Shedding lasts as long as the overload; one second spreads retries
/// without stalling a caller for long.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// The JSON error body of `e`, with its HTTP status from the kind table.
pub fn error_response(rpc: &'static str, e: &Error) -> Response {
    error_response_with_status(rpc, e, e.kind.http_status())
}

/// The JSON error body of `e` under another HTTP status than the table's
/// (405, which no gRPC code maps to); `code` in the body is that status.
pub fn error_response_with_status(rpc: &'static str, e: &Error, status: u16) -> Response {
    let body = serde_json::json!({
        "error": {
            "code": status,
            "status": e.kind.name(),
            "message": e.message,
        }
    });
    let mut res = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response();
    if e.kind == ErrorKind::ResourceExhausted {
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    if matches!(e.kind, ErrorKind::Internal | ErrorKind::Unavailable) {
        tracing::warn!(error = %e, rpc, "request failed");
    }
    res.extensions_mut().insert(Outcome {
        rpc,
        error: Some(e.kind),
    });
    res
}

/// A message as the JSON answer (200).
pub fn reply<T: Serialize>(rpc: &'static str, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut res = (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
            res.extensions_mut().insert(Outcome { rpc, error: None });
            res
        }
        Err(e) => error_response(rpc, &Error::internal(format!("encoding the answer: {e}"))),
    }
}

/// Decode a request body. An empty body is the empty message when
/// `optional` (a custom method without parameters, such as `:retire`), and
/// an error otherwise. A body must be `application/json`. Unknown fields,
/// wrong types and malformed JSON are INVALID_ARGUMENT with serde's
/// position and the field's name.
pub fn decode<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    optional: bool,
) -> Result<T, Error> {
    let body = body.map_err(|e| match e {
        BytesRejection::FailedToBufferBody(_) => Error::invalid(format!(
            "body: could not be read ({e}); it is limited to server.max_message_bytes"
        )),
        other => Error::invalid(format!("body: {other}")),
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return if optional {
            Ok(T::default())
        } else {
            Err(Error::invalid(
                "body: required: a JSON object (content-type: application/json)",
            ))
        };
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence != "application/json" {
        return Err(Error::invalid(format!(
            "content-type: must be application/json, got {:?}",
            if content_type.is_empty() {
                "(none)"
            } else {
                content_type
            }
        )));
    }
    // serde_json alone names the field only for unknown and missing fields;
    // a value of the wrong type would say "invalid float literal at line 1
    // column 27" without saying whose. The path says whose ("value",
    // "parameters[0].float.low").
    let mut de = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::invalid(format!("body: {inner}"))
        } else {
            Error::invalid(format!("body: {path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| Error::invalid(format!("body: {e}")))?;
    Ok(value)
}

/// A query-string rejection (an unknown parameter, a non-number threshold)
/// as INVALID_ARGUMENT.
pub fn query_error(e: QueryRejection) -> Error {
    Error::invalid(format!("query: {}", e.body_text()))
}

/// A field that the path already carries must not disagree in the body.
pub fn path_field(field: &str, from_path: &str, in_body: &mut String) -> Result<(), Error> {
    if !in_body.is_empty() && in_body != from_path {
        return Err(Error::invalid(format!(
            "{field}: comes from the path ({from_path:?}); omit it from the body or make it equal, got {in_body:?}"
        )));
    }
    *in_body = from_path.to_string();
    Ok(())
}
