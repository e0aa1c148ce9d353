//! Compiles the protos with protox (pure Rust: no system `protoc`), writes the
//! descriptor set for gRPC reflection, and generates the tonic code and the
//! proto3 JSON (serde) impls of every message.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/posterior/v1/bandit.proto",
        "proto/posterior/v1/optimizer.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor = fds.encode_to_vec();
    std::fs::write(out.join("posterior_descriptor.bin"), &descriptor)?;
    tonic_prost_build::configure().compile_fds(fds)?;
    // The proto3 JSON mapping of the same messages, for the HTTP transport.
    // Unknown fields are refused (pbjson's default): a misspelt
    // `decisionID` silently ignored would be a lost reward.
    // Fields at their default are written too (`"duplicate": false`, not
    // an absent key): `jq .duplicate` should say false, not null.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor)?
        .emit_fields()
        .out_dir(&out)
        .build(&[".posterior.v1"])?;
    Ok(())
}
