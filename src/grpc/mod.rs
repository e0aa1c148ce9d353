//! The gRPC transport: `posterior.v1.Bandits` and `posterior.v1.Optimizer`
//! handlers of a few lines each (decode, call the application core,
//! encode). Authorization and shedding happen before them, in `edge`.

pub mod bandits;
pub mod decode_status;
pub mod optimizer;

use crate::error::{Error, ErrorKind};

/// An application error as a gRPC status, through the one kind table.
impl From<Error> for tonic::Status {
    fn from(e: Error) -> tonic::Status {
        if matches!(e.kind, ErrorKind::Internal | ErrorKind::Unavailable) {
            tracing::warn!(error = %e, "request failed");
        }
        tonic::Status::new(e.kind.grpc_code(), e.message)
    }
}
