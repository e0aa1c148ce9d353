//! `rpc_cost`: send exactly N calls of one RPC, closed loop, and exit.
//!
//! The instrument behind the per-request instruction counts in
//! docs/benchmarks.md ("Choose against the empty-RPC floor: where the
//! instructions go"): `loadtest/cost.sh` runs the server under valgrind's
//! callgrind, zeroes its counters, runs this for Health/Check, dumps, runs
//! it for Choose, dumps, and divides each phase's instructions by N. Unlike
//! throughput on a shared machine, an instruction count does not depend on
//! what the other processes do. It does nothing per call beyond the call
//! itself, so the client side of the same comparison can be counted too
//! (this binary under callgrind).

use std::time::{Duration, Instant};

use clap::Parser;
use posterior::pb;
use posterior::pb::bandits_client::BanditsClient;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Rpc {
    /// `grpc.health.v1.Health/Check`: the loadtest's transport floor.
    Health,
    /// `posterior.v1.Bandits/Choose` on `--experiment` (which must exist).
    Choose,
}

#[derive(Parser, Debug)]
#[command(
    name = "rpc_cost",
    about = "Send exactly N calls of one RPC (loopback only)"
)]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    #[arg(long, value_enum)]
    rpc: Rpc,
    #[arg(long, default_value_t = 10_000)]
    requests: u64,
    /// Callers, each sending its next call when the last one answered (the
    /// loadtest's closed-loop default).
    #[arg(long, default_value_t = 64)]
    concurrency: u64,
    /// HTTP/2 connections, used round-robin (the loadtest's default).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value = "loadtest")]
    experiment: String,
}

async fn call(rpc: Rpc, ch: Channel, experiment: &str) -> Result<(), tonic::Status> {
    match rpc {
        Rpc::Health => HealthClient::new(ch)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|_| ()),
        Rpc::Choose => BanditsClient::new(ch)
            .choose(pb::ChooseRequest {
                experiment: experiment.to_string(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    }
}

async fn run(args: Args) -> Result<(), String> {
    if !args.target.starts_with("http://127.0.0.1:") {
        return Err("--target: loopback (http://127.0.0.1:PORT) only".into());
    }
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let ch = Endpoint::from_shared(args.target.clone())
            .map_err(|e| format!("--target: {e}"))?
            .tcp_nodelay(true)
            // Under valgrind the server is ~50x slower: be patient.
            .connect_timeout(Duration::from_secs(60))
            .connect()
            .await
            .map_err(|e| format!("connect {}: {e}", args.target))?;
        channels.push(ch);
    }
    let callers = args.concurrency.max(1);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..callers {
        // Caller k sends calls k, k + callers, ...: N in all.
        let n = (args.requests + callers - 1 - k) / callers;
        let ch = channels[k as usize % channels.len()].clone();
        let (rpc, experiment) = (args.rpc, args.experiment.clone());
        tasks.push(tokio::spawn(async move {
            let mut failed = 0u64;
            for _ in 0..n {
                if call(rpc, ch.clone(), &experiment).await.is_err() {
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for t in tasks {
        failed += t.await.map_err(|e| e.to_string())?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:?}: {} calls, {failed} failed, {secs:.2} s, {:.0}/s",
        args.rpc,
        args.requests,
        args.requests as f64 / secs
    );
    if failed > 0 {
        return Err(format!("{failed} calls failed"));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpc_cost: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
