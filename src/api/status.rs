//! One error type for the API layer and its single mapping to `tonic::Status`.

use tonic::{Code, Status};

use crate::bandit::{BanditError, TokenError};
use crate::bo::{BoError, ObserveError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Bandit(#[from] BanditError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Bo(#[from] BoError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> Code {
        match self {
            ApiError::Bandit(BanditError::Invalid(_))
            | ApiError::Token(_)
            | ApiError::Invalid(_) => Code::InvalidArgument,
            ApiError::Bandit(BanditError::NotFound(_)) | ApiError::NotFound(_) => Code::NotFound,
            ApiError::Bandit(BanditError::FailedPrecondition(_))
            | ApiError::FailedPrecondition(_) => Code::FailedPrecondition,
            ApiError::AlreadyExists(_) => Code::AlreadyExists,
            ApiError::Bo(BoError::SpaceExhausted) => Code::FailedPrecondition,
            ApiError::Bo(BoError::Numerical(_)) => Code::Internal,
            ApiError::Bo(_) => Code::InvalidArgument,
            ApiError::Observe(ObserveError::Invalid(_)) => Code::InvalidArgument,
            ApiError::Observe(ObserveError::NotFound(_)) => Code::NotFound,
            ApiError::Observe(ObserveError::AlreadyObserved(_)) => Code::FailedPrecondition,
            ApiError::Store(StoreError::Unavailable(_)) => Code::Unavailable,
            ApiError::Store(StoreError::NotFound(_)) => Code::NotFound,
            // A lost compare-and-set race: the client may simply retry.
            ApiError::Store(StoreError::Conflict(_)) => Code::Aborted,
            ApiError::Store(StoreError::Corrupt(_)) | ApiError::Internal(_) => Code::Internal,
        }
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let code = e.code();
        if matches!(code, Code::Internal | Code::Unavailable) {
            tracing::warn!(error = %e, "request failed");
        }
        Status::new(code, e.to_string())
    }
}
