//! The `posterior` command: `serve` runs the service; every other subcommand
//! is a gRPC client of it. All of it lives in [`posterior::cli`]; this file
//! only hands over.

use std::process::ExitCode;

fn main() -> ExitCode {
    posterior::cli::run(posterior::cli::parse())
}
