//! Failure classes, and the one table that maps them to gRPC codes and HTTP
//! statuses.
//!
//! Every layer's error declares its [`ErrorKind`] (the domain's
//! `BanditError`, `BoError`, `ObserveError`, `TokenError`, the store's
//! `StoreError`); the application core turns any of them into an [`Error`]
//! (kind + message naming the field and the rule). The transports never
//! decide a code themselves: gRPC reads [`ErrorKind::grpc_code`], HTTP reads
//! [`ErrorKind::http_status`], both from [`TABLE`], so a failure answers the
//! same on both.

use crate::bandit::{BanditError, TokenError};
use crate::bo::{BoError, ObserveError};
use crate::store::StoreError;

/// One kind per failure class a caller must tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input: the message names the field and the rule. Not retryable.
    InvalidArgument,
    NotFound,
    /// Create with the same name but another definition.
    AlreadyExists,
    /// The request is well-formed but the state forbids it (a retired arm
    /// re-added, an exhausted study, an expired decision id).
    FailedPrecondition,
    /// A lost compare-and-set race beyond the retry budget: retry.
    Aborted,
    /// The store is unreachable or timed out: retry with backoff.
    Unavailable,
    /// Load shedding: too many requests in flight. Retry with backoff.
    ResourceExhausted,
    Unauthenticated,
    PermissionDenied,
    DeadlineExceeded,
    /// A bug or corrupt stored state; never bad input.
    Internal,
}

/// The table: kind → (gRPC code number, its canonical name, HTTP status).
/// HTTP statuses follow the standard gRPC→HTTP mapping
/// (google.rpc.Code / AIP-193).
pub const TABLE: [(ErrorKind, i32, &str, u16); 11] = [
    (ErrorKind::InvalidArgument, 3, "INVALID_ARGUMENT", 400),
    (ErrorKind::NotFound, 5, "NOT_FOUND", 404),
    (ErrorKind::AlreadyExists, 6, "ALREADY_EXISTS", 409),
    (ErrorKind::FailedPrecondition, 9, "FAILED_PRECONDITION", 400),
    (ErrorKind::Aborted, 10, "ABORTED", 409),
    (ErrorKind::Unavailable, 14, "UNAVAILABLE", 503),
    (ErrorKind::ResourceExhausted, 8, "RESOURCE_EXHAUSTED", 429),
    (ErrorKind::Unauthenticated, 16, "UNAUTHENTICATED", 401),
    (ErrorKind::PermissionDenied, 7, "PERMISSION_DENIED", 403),
    (ErrorKind::DeadlineExceeded, 4, "DEADLINE_EXCEEDED", 504),
    (ErrorKind::Internal, 13, "INTERNAL", 500),
];

impl ErrorKind {
    fn row(self) -> (ErrorKind, i32, &'static str, u16) {
        // Every kind has exactly one row (a unit test checks it); the
        // fallback is the Internal row.
        TABLE
            .iter()
            .copied()
            .find(|r| r.0 == self)
            .unwrap_or(TABLE[TABLE.len() - 1])
    }

    /// The gRPC status code.
    pub fn grpc_code(self) -> tonic::Code {
        tonic::Code::from_i32(self.row().1)
    }

    /// The canonical gRPC code name (`INVALID_ARGUMENT`), used in HTTP error
    /// bodies and metrics labels.
    pub fn name(self) -> &'static str {
        self.row().2
    }

    /// The HTTP status of the same failure.
    pub fn http_status(self) -> u16 {
        self.row().3
    }

    /// The kind of a gRPC code (for codes produced outside our handlers:
    /// tonic's own decode errors, timeouts). Codes we never produce
    /// (CANCELLED, UNKNOWN, OUT_OF_RANGE, ...) map to their nearest kind.
    pub fn from_grpc_code(code: tonic::Code) -> ErrorKind {
        let n = code as i32;
        if let Some(r) = TABLE.iter().find(|r| r.1 == n) {
            return r.0;
        }
        match code {
            tonic::Code::OutOfRange => ErrorKind::InvalidArgument,
            tonic::Code::Cancelled => ErrorKind::DeadlineExceeded,
            _ => ErrorKind::Internal,
        }
    }
}

/// A failure as the application core reports it: its kind and a message
/// that names the field and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }
    pub fn already_exists(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::AlreadyExists, message)
    }
    pub fn failed_precondition(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::FailedPrecondition, message)
    }
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(
            ErrorKind::Internal,
            format!("internal error: {}", message.into()),
        )
    }
    pub fn code(&self) -> tonic::Code {
        self.kind.grpc_code()
    }
}

/// Each layer's error declares its kind.
pub trait HasKind: std::fmt::Display {
    fn kind(&self) -> ErrorKind;
}

impl HasKind for BanditError {
    fn kind(&self) -> ErrorKind {
        match self {
            BanditError::Invalid(_) => ErrorKind::InvalidArgument,
            BanditError::NotFound(_) => ErrorKind::NotFound,
            BanditError::FailedPrecondition(_) => ErrorKind::FailedPrecondition,
        }
    }
}

impl HasKind for TokenError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

impl HasKind for BoError {
    fn kind(&self) -> ErrorKind {
        match self {
            BoError::SpaceExhausted | BoError::Refused { .. } => ErrorKind::FailedPrecondition,
            BoError::Numerical(_) => ErrorKind::Internal,
            BoError::InvalidSpace { .. }
            | BoError::InvalidSpec { .. }
            | BoError::InvalidConfig { .. }
            | BoError::InvalidObservation { .. }
            | BoError::InvalidRequest { .. } => ErrorKind::InvalidArgument,
        }
    }
}

impl HasKind for ObserveError {
    fn kind(&self) -> ErrorKind {
        match self {
            ObserveError::Invalid(_) => ErrorKind::InvalidArgument,
            ObserveError::NotFound(_) => ErrorKind::NotFound,
            ObserveError::AlreadyObserved(_) | ObserveError::Precondition(_) => {
                ErrorKind::FailedPrecondition
            }
        }
    }
}

impl HasKind for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::NotFound(_) => ErrorKind::NotFound,
            // A lost compare-and-set race: the client may simply retry.
            StoreError::Conflict(_) => ErrorKind::Aborted,
            StoreError::Corrupt(_) => ErrorKind::Internal,
        }
    }
}

macro_rules! from_kinded {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error { kind: e.kind(), message: e.to_string() }
            }
        }
    )*};
}
from_kinded!(BanditError, TokenError, BoError, ObserveError, StoreError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_codes_round_trip() {
        for (kind, n, name, _) in TABLE {
            assert_eq!(TABLE.iter().filter(|r| r.0 == kind).count(), 1);
            assert_eq!(kind.grpc_code() as i32, n);
            assert_eq!(ErrorKind::from_grpc_code(kind.grpc_code()), kind);
            // The canonical name is tonic's own spelling of the code.
            assert_eq!(
                format!("{:?}", kind.grpc_code()).to_uppercase(),
                name.replace('_', "")
            );
        }
    }

    #[test]
    fn http_statuses_follow_the_standard_mapping() {
        use ErrorKind::*;
        for (k, s) in [
            (InvalidArgument, 400),
            (FailedPrecondition, 400),
            (Unauthenticated, 401),
            (PermissionDenied, 403),
            (NotFound, 404),
            (AlreadyExists, 409),
            (Aborted, 409),
            (ResourceExhausted, 429),
            (Unavailable, 503),
            (DeadlineExceeded, 504),
            (Internal, 500),
        ] {
            assert_eq!(k.http_status(), s, "{k:?}");
        }
    }

    #[test]
    fn layer_errors_keep_their_message_and_kind() {
        let e: Error = BanditError::invalid("arms", "at least one arm").into();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert_eq!(e.message, "arms: at least one arm");
        let e: Error = StoreError::Unavailable("redis down".into()).into();
        assert_eq!(e.code(), tonic::Code::Unavailable);
        let e: Error = StoreError::Corrupt("x".into()).into();
        assert_eq!(e.kind, ErrorKind::Internal);
    }
}
