//! The gRPC surface: thin handlers (validate, call the domain and the store,
//! convert), the generated protobuf types, and the one error mapping.

pub mod admission;
pub mod auth;
pub mod bandit;
pub mod decode_status;
pub mod optimizer;
pub mod snapshot;
pub mod status;

/// Generated from `proto/posterior/v1/*.proto` by build.rs.
pub mod pb {
    tonic::include_proto!("posterior.v1");
}

/// The encoded descriptor set of our protos, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/posterior_descriptor.bin"));

/// Wall-clock milliseconds since the Unix epoch: decision issue times and
/// decay are measured in it. A clock before 1970 reads as 0 rather than panic.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
