//! `loadtest`: a gRPC load generator for posterior with a simulated world.
//!
//! One run measures, against the same server:
//! 1. the transport floor: `grpc.health.v1.Health/Check`, an empty unary RPC,
//!    in the same load shape as the main phase;
//! 2. with `--redis URL`, the store floor: PING and an EVALSHA of a small
//!    script (two HINCRBYFLOAT) over one multiplexed connection, as the
//!    server talks to Redis;
//! 3. the main phase: Choose (and, after `--reward-delay-ms`, Reward) against
//!    a simulated world, or Reward alone on pre-collected decisions;
//!
//! and reports throughput, latency percentiles, errors by status code, each
//! as a ratio to its floor, plus decision quality: cumulative regret against
//! always playing the best arm, and its ratio to an in-process Thompson
//! sampler playing the same world at the same decision times, each of its
//! rewards visible at the time the served play's reward in the same
//! position was acknowledged (the realized delays). With `--copies K` the
//! served regret is a mean over K independent plays with its standard
//! error, and the difference to the reference is paired per copy.
//!
//! Only loopback targets are accepted: this is a benchmark tool, not a
//! way to load someone else's service.

mod driver;
mod world;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use posterior::pb;
use posterior::pb::bandits_client::BanditsClient;
use rand::RngExt;
use serde_json::json;
use tokio::sync::Semaphore;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use driver::{CallFuture, CallResult, Mode, Shape, Stats};
use world::World;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Rpc {
    /// Choose, then Reward each decision after the reward delay.
    Mixed,
    /// Choose only (no learning).
    Choose,
    /// Reward only, by decision id (exactly-once path), on decisions
    /// collected by an unmeasured Choose phase first.
    Reward,
    /// RewardBatch of --batch-size rewards by decision id (exactly-once
    /// path), on decisions collected by an unmeasured Choose phase first;
    /// --requests counts rewards, not batches.
    Batch,
    /// GetExperiment: summaries and P(best) by Monte Carlo, an expensive
    /// read (milliseconds on many arms) for overload runs, where rejecting
    /// a request must cost far less than serving it.
    Get,
}

#[derive(Parser, Debug)]
#[command(
    name = "loadtest",
    about = "Load generator for posterior (loopback only)"
)]
struct Args {
    /// posterior server (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    target: String,
    /// Redis used by the server, for the store floor and memory figures
    /// (loopback or unix socket only).
    #[arg(long)]
    redis: Option<String>,
    #[arg(long, value_enum, default_value = "mixed")]
    rpc: Rpc,
    #[arg(long, value_enum, default_value = "closed")]
    mode: Mode,
    /// Open loop: requests per second.
    #[arg(long, default_value_t = 5000.0)]
    rate: f64,
    /// Closed loop: concurrent callers. Open loop: most requests in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// HTTP/2 connections, used round-robin.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Most requests per phase.
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Longest phase, seconds.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Experiment to create (deleted first, so every run starts from the prior).
    #[arg(long, default_value = "loadtest")]
    experiment: String,
    /// True reward rates of the arms, comma-separated (one arm each).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.02,0.03,0.04,0.05,0.06,0.07,0.08,0.09,0.10,0.11"
    )]
    rates: Vec<f64>,
    /// Rotate the rates by one arm every this many seconds (0 = static).
    #[arg(long, default_value_t = 0.0)]
    drift_period: f64,
    /// Experiment half-life in seconds (0 = none); use with --drift-period.
    #[arg(long, default_value_t = 0.0)]
    half_life: f64,
    /// Delay between a decision and its reward.
    #[arg(long, default_value_t = 100)]
    reward_delay_ms: u64,
    /// Reference plays per copy (the in-process sampler is cheap).
    #[arg(long, default_value_t = 20)]
    reference_seeds: u64,
    /// Independent copies of the experiment (`EXPERIMENT-0`, ...; just
    /// `EXPERIMENT` for 1), each facing its own world with the same rates:
    /// served regret is then a mean over the copies, with its standard
    /// error. `--requests` is per copy; `--duration` bounds each group of
    /// copies played at once.
    #[arg(long, default_value_t = 1)]
    copies: usize,
    /// Copies played at once, their decisions interleaved (round-robin) at
    /// `--rate` in all, so each gets rate/N; groups of N follow one another.
    /// 0 = all copies at once. The per-copy rate is what the snapshot
    /// bound's cost depends on: 1 plays each copy at the full rate.
    #[arg(long, default_value_t = 0)]
    copies_at_once: usize,
    /// Skip the health-check floor phase.
    #[arg(long)]
    no_floor: bool,
    /// Also run `redis-benchmark` (EVALSHA of the floor script, 50 clients)
    /// against --redis, for scale; with `--rpc batch`, pipelined 16 deep
    /// too (`-P 16`), the floor batched ingestion is measured against.
    #[arg(long)]
    redis_benchmark: bool,
    /// Rewards per RewardBatch call (`--rpc batch`).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// First create this many experiments of len(rates) arms (one reward
    /// per arm, so each holds real evidence) and report Redis memory per arm.
    #[arg(long, default_value_t = 0)]
    populate: u64,
    /// JSON instead of the table.
    #[arg(long)]
    json: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadtest: tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Host part of a URL (`scheme://host:port/...`, IPv6 in brackets).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split('/').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next();
    }
    authority.split(':').next()
}

/// Refuse anything that is not this machine.
fn require_loopback(what: &str, url: &str) -> Result<(), String> {
    if url.starts_with("redis+unix://") || url.starts_with("unix://") {
        return Ok(());
    }
    let host = url_host(url).ok_or_else(|| format!("{what}: cannot parse {url:?}"))?;
    let ok = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: {host:?} is not a loopback address; loadtest only targets this machine"
        ))
    }
}

fn code(s: &tonic::Status) -> String {
    // The first UNKNOWN's message goes to stderr: it is a transport failure
    // (reset stream, closed connection) rather than an answer, and the code
    // alone does not say which.
    static SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if s.code() == tonic::Code::Unknown && !SHOWN.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!("first UNKNOWN: {}", s.message());
    }
    format!("{:?}", s.code())
}

async fn run(args: Args) -> Result<(), String> {
    require_loopback("--target", &args.target)?;
    if let Some(r) = &args.redis {
        require_loopback("--redis", r)?;
    }
    if args.rates.is_empty() || args.rates.iter().any(|r| !(0.0..=1.0).contains(r)) {
        return Err("--rates: one rate in [0, 1] per arm".into());
    }
    if args.copies > 1 && !matches!(args.rpc, Rpc::Mixed | Rpc::Choose) {
        return Err("--copies: only with --rpc mixed or choose (the plays of a world)".into());
    }
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
        let ch = Endpoint::from_shared(args.target.clone())
            .map_err(|e| format!("--target: {e}"))?
            .tcp_nodelay(true)
            // A benchmark against loopback: a slow connect is a broken server.
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| format!("connect {}: {e}", args.target))?;
        channels.push(ch);
    }
    let clients: Arc<Vec<BanditsClient<Channel>>> =
        Arc::new(channels.iter().cloned().map(BanditsClient::new).collect());
    let shape = Shape {
        mode: args.mode,
        rate: args.rate,
        concurrency: args.concurrency,
        requests: args.requests,
        duration: Duration::from_secs_f64(args.duration),
    };
    let mut report = Report::default();

    if args.populate > 0 {
        report.memory = Some(populate(&args, &clients).await?);
    }

    // Transport floor: the empty health check, same shape.
    if !args.no_floor {
        let health: Arc<Vec<_>> =
            Arc::new(channels.iter().cloned().map(HealthClient::new).collect());
        let s = driver::run(&shape, move |i| {
            let mut c = health[i as usize % health.len()].clone();
            Box::pin(async move {
                c.check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|_| ())
                .map_err(|s| code(&s))
            }) as CallFuture
        })
        .await;
        report
            .rows
            .push(("Health/Check (transport floor)".into(), s));
    }

    // Store floor.
    if let Some(url) = &args.redis {
        let (ping, eval) = store_floor(url, &shape).await?;
        report.rows.push(("redis PING (store floor)".into(), ping));
        report
            .rows
            .push(("redis EVALSHA 2xHINCRBYFLOAT".into(), eval));
        if args.redis_benchmark {
            report.redis_benchmark = Some(redis_benchmark(url, 1).await?);
            if args.rpc == Rpc::Batch {
                report.redis_benchmark_pipelined = Some(redis_benchmark(url, 16).await?);
            }
        }
    }

    // The experiment(s), fresh.
    let names = experiment_names(&args);
    let mut admin = clients[0].clone();
    let arms: Vec<String> = (0..args.rates.len()).map(|i| format!("a{i}")).collect();
    for name in &names {
        let _ = admin
            .delete_experiment(pb::DeleteExperimentRequest { name: name.clone() })
            .await;
        admin
            .create_experiment(pb::CreateExperimentRequest {
                name: name.clone(),
                arms: arms.clone(),
                half_life_seconds: args.half_life,
                ..Default::default()
            })
            .await
            .map_err(|s| format!("create experiment {name}: {s}"))?;
    }
    let world = World {
        rates: args.rates.clone(),
        drift_period_s: args.drift_period,
    };
    match args.rpc {
        Rpc::Mixed | Rpc::Choose => {
            let (choose, reward, quality) =
                choose_phase(&args, &shape, &clients, &world, &names).await;
            report.rows.push(("Choose".into(), choose));
            if let Some(r) = reward {
                report.rows.push(("Reward (after delay)".into(), r));
            }
            report.quality = Some(quality);
        }
        Rpc::Reward => {
            let (reward, duplicates) = reward_phase(&args, &shape, &clients).await?;
            report.rows.push(("Reward (exactly-once)".into(), reward));
            report.duplicates = Some(duplicates);
        }
        Rpc::Batch => {
            let (batch, bad) = batch_phase(&args, &shape, &clients).await?;
            report.rewards_per_batch = Some(args.batch_size.max(1));
            report.rows.push((
                format!("RewardBatch x{} (exactly-once)", args.batch_size.max(1)),
                batch,
            ));
            report.duplicates = Some(bad);
        }
        Rpc::Get => {
            let (c, experiment) = (clients.clone(), args.experiment.clone());
            let s = driver::run(&shape, move |i| {
                let mut c = c[i as usize % c.len()].clone();
                let name = experiment.clone();
                Box::pin(async move {
                    c.get_experiment(pb::GetExperimentRequest {
                        name,
                        threshold: None,
                    })
                    .await
                    .map(|_| ())
                    .map_err(|s| code(&s))
                })
            })
            .await;
            report.rows.push(("GetExperiment".into(), s));
        }
    }
    report.print(&args);
    Ok(())
}

/// The experiment names of the copies.
fn experiment_names(args: &Args) -> Vec<String> {
    if args.copies <= 1 {
        return vec![args.experiment.clone()];
    }
    (0..args.copies)
        .map(|k| format!("{}-{k}", args.experiment))
        .collect()
}

/// Decision quality of a run: one served play per copy, and the reference
/// plays on each copy's realized schedule.
struct Quality {
    decisions: u64,
    /// Served cumulative pseudo-regret, one per copy.
    served: Vec<f64>,
    /// Mean reference regret over `--reference-seeds` plays, one per copy,
    /// on the optimistic schedule (see `Play::schedules`).
    reference: Vec<f64>,
    /// The same on the pessimistic schedule.
    reference_pessimistic: Vec<f64>,
    /// Per-copy decision rate (decisions/s), the mean over copies.
    copy_rate: f64,
    /// Mean realized reward delay (decision to acknowledged), seconds.
    mean_delay: f64,
}

impl Quality {
    /// (served mean, s.e.), (reference mean, s.e.), (paired difference
    /// served − reference per copy: mean, s.e.), on the optimistic
    /// reference, then the pessimistic reference and its difference.
    fn figures(&self) -> [(f64, f64); 5] {
        let diff_hi: Vec<f64> = self
            .served
            .iter()
            .zip(&self.reference_pessimistic)
            .map(|(s, r)| s - r)
            .collect();
        let diff: Vec<f64> = self
            .served
            .iter()
            .zip(&self.reference)
            .map(|(s, r)| s - r)
            .collect();
        [
            world::mean_se(&self.served),
            world::mean_se(&self.reference),
            world::mean_se(&diff),
            world::mean_se(&self.reference_pessimistic),
            world::mean_se(&diff_hi),
        ]
    }
}

/// One copy's served play, as it happens.
#[derive(Default)]
struct Play {
    regret: f64,
    /// Per decision, in response order: when its Choose answered, and when
    /// its Reward was acknowledged (the upper ends of both windows).
    schedule: world::Schedule,
    /// When each decision's Choose was sent, and its Reward sent (the lower
    /// ends): the server decided, and applied the reward, in between.
    choose_sent: Vec<f64>,
    reward_sent: Vec<f64>,
}

impl Play {
    /// The two bracketing schedules (module `world`): the optimistic one
    /// decides when the Choose answered and sees each reward when it was
    /// sent; the pessimistic one decides when the Choose was sent and sees
    /// each reward when it was acknowledged. A server without snapshot lag
    /// lies between them; on a quiet machine (sub-ms RPCs) they coincide.
    fn schedules(&self) -> (world::Schedule, world::Schedule) {
        let optimistic = world::Schedule {
            times: self.schedule.times.clone(),
            visible: self.reward_sent.clone(),
        };
        let mut pairs: Vec<(f64, f64)> = self
            .choose_sent
            .iter()
            .copied()
            .zip(self.schedule.visible.iter().copied())
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let pessimistic = world::Schedule {
            times: pairs.iter().map(|p| p.0).collect(),
            visible: pairs.iter().map(|p| p.1).collect(),
        };
        (optimistic, pessimistic)
    }
}

/// A reward to send: when, for which copy and decision (its position in
/// the copy's play), the decision id and the value.
type DueReward = (Instant, usize, usize, String, f64);

/// Choose against the world, copy by copy (see `--copies`,
/// `--copies-at-once`); with `--rpc mixed`, reward each decision after the
/// delay (by decision id). Returns Choose stats, Reward stats, quality.
async fn choose_phase(
    args: &Args,
    shape: &Shape,
    clients: &Arc<Vec<BanditsClient<Channel>>>,
    world: &World,
    names: &[String],
) -> (Stats, Option<Stats>, Quality) {
    let index: Arc<HashMap<String, usize>> = Arc::new(
        (0..world.rates.len())
            .map(|i| (format!("a{i}"), i))
            .collect(),
    );
    let start = Instant::now();
    let delay = Duration::from_millis(args.reward_delay_ms);
    let plays: Arc<Vec<Mutex<Play>>> =
        Arc::new(names.iter().map(|_| Mutex::new(Play::default())).collect());
    let rewarding = args.rpc == Rpc::Mixed;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<DueReward>();
    let reward_stats = Arc::new(Mutex::new(Stats::new()));
    let dispatcher = tokio::spawn(dispatch_rewards(
        rx,
        clients.clone(),
        Arc::new(names.to_vec()),
        plays.clone(),
        start,
        args.concurrency,
        reward_stats.clone(),
    ));
    let at_once = match args.copies_at_once {
        0 => names.len(),
        n => n.min(names.len()),
    };
    let mut choose = Stats::new();
    let mut copy_seconds = 0.0;
    for group in (0..names.len()).collect::<Vec<_>>().chunks(at_once) {
        let group: Arc<Vec<usize>> = Arc::new(group.to_vec());
        let names: Arc<Vec<String>> = Arc::new(names.to_vec());
        let wave = Shape {
            requests: shape.requests * group.len() as u64,
            ..shape.clone()
        };
        let (clients2, world2) = (clients.clone(), world.clone());
        let (plays2, index2, tx2) = (plays.clone(), index.clone(), tx.clone());
        let g2 = group.clone();
        let s = driver::run(&wave, move |i| {
            let mut c = clients2[i as usize % clients2.len()].clone();
            let copy = g2[i as usize % g2.len()];
            let (world, index, plays, tx) =
                (world2.clone(), index2.clone(), plays2.clone(), tx2.clone());
            let experiment = names[copy].clone();
            Box::pin(async move {
                let sent = start.elapsed().as_secs_f64();
                let r = c
                    .choose(pb::ChooseRequest {
                        experiment,
                        eligible_arms: vec![],
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| code(&s))?
                    .into_inner();
                let Some(&arm) = index.get(&r.arm) else {
                    return Err("unknown_arm".into());
                };
                let (t, position) = {
                    let mut p = plays[copy].lock().unwrap_or_else(|p| p.into_inner());
                    // Taken under the lock, so each copy's times ascend.
                    let t = start.elapsed().as_secs_f64();
                    p.regret += world.regret(arm, t);
                    p.schedule.times.push(t);
                    p.schedule.visible.push(f64::INFINITY);
                    p.choose_sent.push(sent);
                    p.reward_sent.push(f64::INFINITY);
                    (t, p.schedule.times.len() - 1)
                };
                if rewarding {
                    let v = if rand::rng().random::<f64>() < world.rate(arm, t) {
                        1.0
                    } else {
                        0.0
                    };
                    let _ = tx.send((Instant::now() + delay, copy, position, r.decision_id, v));
                }
                Ok(())
            }) as CallFuture
        })
        .await;
        let _ = choose.hist.add(&s.hist);
        let _ = choose.accepted.add(&s.accepted);
        for (k, v) in s.errors {
            *choose.errors.entry(k).or_insert(0) += v;
        }
        choose.elapsed += s.elapsed;
        copy_seconds += s.elapsed.as_secs_f64() * group.len() as f64;
    }
    drop(tx);
    let mut reward = dispatcher.await.unwrap_or_else(|_| Stats::new());
    reward.elapsed = start.elapsed();
    let plays: Vec<Play> = plays
        .iter()
        .map(|p| std::mem::take(&mut *p.lock().unwrap_or_else(|p| p.into_inner())))
        .collect();
    let decisions: u64 = plays.iter().map(|p| p.schedule.times.len() as u64).sum();
    let delays: Vec<f64> = plays
        .iter()
        .flat_map(|p| {
            let s = &p.schedule;
            s.times.iter().zip(&s.visible).map(|(t, v)| v - t)
        })
        .filter(|d| d.is_finite())
        .collect();
    let mean_delay = delays.iter().sum::<f64>() / delays.len().max(1) as f64;
    // Each copy's reference plays are its own seeds, so copies never share
    // a reference play.
    let refs: Vec<(f64, f64)> = plays
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let (lo, hi) = p.schedules();
            let mean = |s: &world::Schedule| {
                let r = world::reference_regrets(
                    world,
                    s,
                    args.half_life,
                    k as u64 * args.reference_seeds,
                    args.reference_seeds,
                );
                world::mean_se(&r).0
            };
            (mean(&lo), mean(&hi))
        })
        .collect();
    let q = Quality {
        decisions,
        served: plays.iter().map(|p| p.regret).collect(),
        reference: refs.iter().map(|r| r.0).collect(),
        reference_pessimistic: refs.iter().map(|r| r.1).collect(),
        copy_rate: decisions as f64 / copy_seconds.max(1e-9),
        mean_delay,
    };
    (choose, rewarding.then_some(reward), q)
}

/// Send each reward when due, at most `concurrency` in flight; latency from
/// the due time (a backlog shows as latency). An acknowledged reward's time
/// goes into its copy's schedule (when it became visible to the server).
async fn dispatch_rewards(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<DueReward>,
    clients: Arc<Vec<BanditsClient<Channel>>>,
    names: Arc<Vec<String>>,
    plays: Arc<Vec<Mutex<Play>>>,
    start: Instant,
    concurrency: usize,
    stats: Arc<Mutex<Stats>>,
) -> Stats {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0usize;
    while let Some((due, copy, position, id, v)) = rx.recv().await {
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let mut c = clients[n % clients.len()].clone();
        n += 1;
        let (stats, experiment, plays) = (stats.clone(), names[copy].clone(), plays.clone());
        tasks.spawn(async move {
            let sent = start.elapsed().as_secs_f64();
            let r: CallResult = c
                .reward(pb::RewardRequest {
                    experiment,
                    target: Some(pb::reward_request::Target::DecisionId(id)),
                    value: v,
                })
                .await
                .map(|_| ())
                .map_err(|s| code(&s));
            let acked = start.elapsed().as_secs_f64();
            drop(permit);
            if r.is_ok() {
                let mut p = plays[copy].lock().unwrap_or_else(|p| p.into_inner());
                if let Some(slot) = p.schedule.visible.get_mut(position) {
                    *slot = acked;
                }
                if let Some(slot) = p.reward_sent.get_mut(position) {
                    *slot = sent;
                }
            }
            if let Ok(mut s) = stats.lock() {
                s.record(due.elapsed(), &r);
            }
        });
        // Reap finished tasks so the set stays small on long runs.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::replace(&mut *s, Stats::new())
}

/// Collect `shape.requests` decisions by Choose (unmeasured).
async fn collect_decisions(
    args: &Args,
    shape: &Shape,
    clients: &Arc<Vec<BanditsClient<Channel>>>,
) -> Result<Arc<Vec<String>>, String> {
    let ids: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let collect = Shape {
        mode: Mode::Closed,
        duration: Duration::from_secs(600),
        ..shape.clone()
    };
    let (c2, ids2, exp) = (clients.clone(), ids.clone(), args.experiment.clone());
    let s = driver::run(&collect, move |i| {
        let mut c = c2[i as usize % c2.len()].clone();
        let (ids, experiment) = (ids2.clone(), exp.clone());
        Box::pin(async move {
            let r = c
                .choose(pb::ChooseRequest {
                    experiment,
                    eligible_arms: vec![],
                    ..Default::default()
                })
                .await
                .map_err(|s| code(&s))?;
            if let Ok(mut v) = ids.lock() {
                v.push(r.into_inner().decision_id);
            }
            Ok(())
        }) as CallFuture
    })
    .await;
    if !s.errors.is_empty() {
        return Err(format!("collecting decisions: errors {:?}", s.errors));
    }
    Ok(Arc::new(std::mem::take(
        &mut *ids.lock().unwrap_or_else(|p| p.into_inner()),
    )))
}

/// Collect decisions (unmeasured), then reward each once by decision id in
/// the given shape. Returns the Reward stats and how many came back as
/// duplicates (must be 0: each id is sent once).
async fn reward_phase(
    args: &Args,
    shape: &Shape,
    clients: &Arc<Vec<BanditsClient<Channel>>>,
) -> Result<(Stats, u64), String> {
    let ids = collect_decisions(args, shape, clients).await?;
    let duplicates = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (c2, exp, d2, ids2) = (
        clients.clone(),
        args.experiment.clone(),
        duplicates.clone(),
        ids.clone(),
    );
    let shape = Shape {
        requests: shape.requests.min(ids.len() as u64),
        ..shape.clone()
    };
    let stats = driver::run(&shape, move |i| {
        let mut c = c2[i as usize % c2.len()].clone();
        let (experiment, dup) = (exp.clone(), d2.clone());
        let id = ids2[i as usize].clone();
        Box::pin(async move {
            let r = c
                .reward(pb::RewardRequest {
                    experiment,
                    target: Some(pb::reward_request::Target::DecisionId(id)),
                    value: (i % 2) as f64,
                })
                .await
                .map_err(|s| code(&s))?;
            if r.into_inner().duplicate {
                dup.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(())
        }) as CallFuture
    })
    .await;
    Ok((stats, duplicates.load(std::sync::atomic::Ordering::Relaxed)))
}

/// Collect `--requests` decisions (unmeasured), then reward each once by
/// decision id in RewardBatch calls of `--batch-size`. Returns the stats
/// of the batch calls (one request = one batch) and how many items came
/// back as duplicates or errors (both must be 0: each id is sent once).
async fn batch_phase(
    args: &Args,
    shape: &Shape,
    clients: &Arc<Vec<BanditsClient<Channel>>>,
) -> Result<(Stats, u64), String> {
    let ids = collect_decisions(args, shape, clients).await?;
    let size = args.batch_size.max(1);
    let batches = ids.len().div_ceil(size);
    let bad = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (c2, exp, bad2) = (clients.clone(), args.experiment.clone(), bad.clone());
    let shape = Shape {
        requests: batches as u64,
        ..shape.clone()
    };
    let stats = driver::run(&shape, move |i| {
        let mut c = c2[i as usize % c2.len()].clone();
        let (experiment, bad) = (exp.clone(), bad2.clone());
        let from = i as usize * size;
        let rewards: Vec<pb::BatchReward> = ids[from.min(ids.len())..(from + size).min(ids.len())]
            .iter()
            .enumerate()
            .map(|(k, id)| pb::BatchReward {
                target: Some(pb::batch_reward::Target::DecisionId(id.clone())),
                value: ((from + k) % 2) as f64,
            })
            .collect();
        Box::pin(async move {
            let r = c
                .reward_batch(pb::RewardBatchRequest {
                    experiment,
                    rewards,
                })
                .await
                .map_err(|s| code(&s))?;
            let n = r
                .into_inner()
                .results
                .iter()
                .filter(|r| r.duplicate || !r.error_code.is_empty())
                .count();
            bad.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }) as CallFuture
    })
    .await;
    Ok((stats, bad.load(std::sync::atomic::Ordering::Relaxed)))
}

/// Two HINCRBYFLOAT on one hash: BENCHMARKS.md's store-floor script, about
/// the work of one reward (which also does HGET + SADD + PEXPIREAT).
const FLOOR_LUA: &str = "redis.call('HINCRBYFLOAT', KEYS[1], 'a', 1) redis.call('HINCRBYFLOAT', KEYS[1], 'b', 1) return 1";
const FLOOR_KEY: &str = "loadtest:floor";

async fn store_floor(url: &str, shape: &Shape) -> Result<(Stats, Stats), String> {
    let client = redis::Client::open(url).map_err(|e| format!("--redis: {e}"))?;
    let conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("--redis: {e}"))?;
    let closed = Shape {
        mode: Mode::Closed,
        ..shape.clone()
    };
    let c = conn.clone();
    let ping = driver::run(&closed, move |_| {
        let mut c = c.clone();
        Box::pin(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .map(|_| ())
                .map_err(|e| format!("redis: {:?}", e.kind()))
        }) as CallFuture
    })
    .await;
    let script = Arc::new(redis::Script::new(FLOOR_LUA));
    let c = conn.clone();
    let eval = driver::run(&closed, move |_| {
        let (mut c, script) = (c.clone(), script.clone());
        Box::pin(async move {
            script
                .key(FLOOR_KEY)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|_| ())
                .map_err(|e| format!("redis: {:?}", e.kind()))
        }) as CallFuture
    })
    .await;
    let mut c = conn;
    let _: Result<i64, _> = redis::cmd("DEL").arg(FLOOR_KEY).query_async(&mut c).await;
    Ok((ping, eval))
}

/// `redis-benchmark` (50 clients, `pipeline` commands in flight per client)
/// on the floor script: the rate Redis itself reaches for about a reward's
/// work, for scale (pipelined: the floor of batched ingestion).
async fn redis_benchmark(url: &str, pipeline: usize) -> Result<f64, String> {
    let client = redis::Client::open(url).map_err(|e| format!("--redis: {e}"))?;
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("--redis: {e}"))?;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(FLOOR_LUA)
        .query_async(&mut c)
        .await
        .map_err(|e| format!("SCRIPT LOAD: {e}"))?;
    let mut cmd = tokio::process::Command::new("redis-benchmark");
    if let Some(path) = url.strip_prefix("redis+unix://") {
        cmd.args(["-s", path]);
    } else {
        let host = url_host(url).unwrap_or("127.0.0.1");
        let port = url
            .split_once("://")
            .and_then(|(_, r)| r.split('/').next())
            .and_then(|a| a.rsplit_once(':'))
            .map_or("6379", |(_, p)| p);
        cmd.args(["-h", host, "-p", port]);
    }
    let out = cmd
        .args([
            "-c",
            "50",
            "-P",
            &pipeline.to_string(),
            "-n",
            "200000",
            "-q",
            "EVALSHA",
            &sha,
            "1",
            FLOOR_KEY,
        ])
        .output()
        .await
        .map_err(|e| format!("redis-benchmark: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let _: Result<i64, _> = redis::cmd("DEL").arg(FLOOR_KEY).query_async(&mut c).await;
    // "EVALSHA ...: 110000.00 requests per second, p50=0.231 msec"
    text.split("requests per second")
        .next()
        .and_then(|s| s.rsplit(' ').find(|w| !w.is_empty()))
        .and_then(|w| w.parse::<f64>().ok())
        .ok_or_else(|| format!("redis-benchmark: unexpected output {text:?}"))
}

fn used_memory(info: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
}

struct Memory {
    experiments: u64,
    arms: u64,
    bytes_before: u64,
    bytes_after: u64,
}

/// Create `--populate` experiments, one reward per arm, and measure Redis.
async fn populate(
    args: &Args,
    clients: &Arc<Vec<BanditsClient<Channel>>>,
) -> Result<Memory, String> {
    let url = args
        .redis
        .as_ref()
        .ok_or("--populate: needs --redis to measure memory")?;
    let client = redis::Client::open(url.as_str()).map_err(|e| format!("--redis: {e}"))?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("--redis: {e}"))?;
    let info = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        async move {
            let s: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut c)
                .await
                .map_err(|e| format!("INFO memory: {e}"))?;
            used_memory(&s).ok_or_else(|| "INFO memory: no used_memory".to_string())
        }
    };
    let before = info(&mut conn).await?;
    let k = args.rates.len();
    let shape = Shape {
        mode: Mode::Closed,
        rate: 0.0,
        concurrency: args.concurrency,
        requests: args.populate,
        duration: Duration::from_secs(3600),
    };
    let (c2, prefix) = (clients.clone(), args.experiment.clone());
    let s = driver::run(&shape, move |i| {
        let mut c = c2[i as usize % c2.len()].clone();
        let name = format!("{prefix}-pop-{i}");
        Box::pin(async move {
            let arms: Vec<String> = (0..k).map(|a| format!("arm-{a}")).collect();
            c.create_experiment(pb::CreateExperimentRequest {
                name: name.clone(),
                arms: arms.clone(),
                ..Default::default()
            })
            .await
            .map_err(|s| code(&s))?;
            for (j, arm) in arms.into_iter().enumerate() {
                c.reward(pb::RewardRequest {
                    experiment: name.clone(),
                    target: Some(pb::reward_request::Target::Arm(arm)),
                    value: (j % 2) as f64,
                })
                .await
                .map_err(|s| code(&s))?;
            }
            Ok(())
        }) as CallFuture
    })
    .await;
    if !s.errors.is_empty() {
        return Err(format!("--populate: errors {:?}", s.errors));
    }
    let after = info(&mut conn).await?;
    Ok(Memory {
        experiments: args.populate,
        arms: args.populate * k as u64,
        bytes_before: before,
        bytes_after: after,
    })
}

#[derive(Default)]
struct Report {
    rows: Vec<(String, Stats)>,
    quality: Option<Quality>,
    duplicates: Option<u64>,
    redis_benchmark: Option<f64>,
    redis_benchmark_pipelined: Option<f64>,
    /// `--rpc batch`: rewards per request of the batch row.
    rewards_per_batch: Option<usize>,
    memory: Option<Memory>,
}

impl Report {
    /// Rewards per second of the batch row, and its ratio to the pipelined
    /// redis-benchmark floor of the same run.
    fn batch_rewards(&self) -> Option<(f64, Option<f64>)> {
        let per = self.rewards_per_batch? as f64;
        let (_, s) = self
            .rows
            .iter()
            .find(|(n, _)| n.starts_with("RewardBatch"))?;
        let rewards = s.throughput() * per;
        Some((
            rewards,
            self.redis_benchmark_pipelined
                .filter(|f| *f > 0.0)
                .map(|f| rewards / f),
        ))
    }
}

impl Report {
    fn floor(&self, prefix: &str) -> Option<&Stats> {
        self.rows
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(_, s)| s)
    }

    fn print(&self, args: &Args) {
        let transport = self.floor("Health/Check");
        let store = self.floor("redis PING");
        let ratio = |a: f64, b: Option<f64>| b.filter(|b| *b > 0.0).map(|b| a / b);
        if args.json {
            let rows: Vec<_> = self
                .rows
                .iter()
                .map(|(name, s)| {
                    json!({
                        "rpc": name,
                        "requests": s.hist.len(),
                        "ok": s.ok(),
                        "errors": s.errors,
                        "seconds": s.elapsed.as_secs_f64(),
                        "throughput_per_s": s.throughput(),
                        "latency_ms": {"p50": s.ms(0.5), "p90": s.ms(0.9), "p99": s.ms(0.99), "p99_9": s.ms(0.999), "max": s.ms(1.0)},
                        "accepted_per_s": s.accepted_throughput(),
                        "accepted_latency_ms": {"p50": s.accepted_ms(0.5), "p90": s.accepted_ms(0.9), "p99": s.accepted_ms(0.99), "p99_9": s.accepted_ms(0.999), "max": s.accepted_ms(1.0)},
                        "throughput_ratio_to_transport_floor": ratio(s.throughput(), transport.map(Stats::throughput)),
                        "p50_ratio_to_transport_floor": ratio(s.ms(0.5), transport.map(|f| f.ms(0.5))),
                        "p50_ratio_to_store_floor": ratio(s.ms(0.5), store.map(|f| f.ms(0.5))),
                    })
                })
                .collect();
            let v = json!({
                "target": args.target,
                "mode": format!("{:?}", args.mode).to_lowercase(),
                "rpc": format!("{:?}", args.rpc).to_lowercase(),
                "rate": (args.mode == Mode::Open).then_some(args.rate),
                "concurrency": args.concurrency,
                "connections": args.connections,
                "rows": rows,
                "quality": self.quality.as_ref().map(|q| {
                    let [(sm, sse), (rm, rse), (dm, dse), (pm, pse), (pdm, pdse)] = q.figures();
                    json!({
                        "reference_pessimistic_regret": pm,
                        "reference_pessimistic_regret_se": pse,
                        "difference_pessimistic": pdm,
                        "difference_pessimistic_se": pdse,
                        "regret_ratio_pessimistic": ratio(sm, Some(pm)),
                        "decisions": q.decisions,
                        "copies": q.served.len(),
                        "decisions_per_s_per_copy": q.copy_rate,
                        "regret": sm,
                        "regret_se": sse,
                        "regret_per_copy": q.served,
                        "reference_regret": rm,
                        "reference_regret_se": rse,
                        "reference_per_copy": q.reference,
                        "difference": dm,
                        "difference_se": dse,
                        "regret_ratio": ratio(sm, Some(rm)),
                        "reference_seeds": args.reference_seeds,
                        "reward_delay_ms": args.reward_delay_ms,
                        "mean_realized_delay_ms": q.mean_delay * 1000.0,
                    })
                }),
                "duplicates": self.duplicates,
                "redis_benchmark_evalsha_per_s": self.redis_benchmark,
                "redis_benchmark_evalsha_pipelined_16_per_s": self.redis_benchmark_pipelined,
                "batch_rewards_per_s": self.batch_rewards().map(|b| b.0),
                "batch_rewards_ratio_to_pipelined_floor": self.batch_rewards().and_then(|b| b.1),
                "memory": self.memory.as_ref().map(|m| json!({
                    "experiments": m.experiments,
                    "arms": m.arms,
                    "used_memory_before": m.bytes_before,
                    "used_memory_after": m.bytes_after,
                    "bytes_per_arm": (m.bytes_after.saturating_sub(m.bytes_before)) as f64 / m.arms.max(1) as f64,
                })),
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            return;
        }
        let shape = match args.mode {
            Mode::Open => format!(
                "open loop at {} req/s (max {} in flight)",
                args.rate, args.concurrency
            ),
            Mode::Closed => format!("closed loop, {} callers", args.concurrency),
        };
        println!(
            "target {}  {}  {} connections  rpc {:?}",
            args.target, shape, args.connections, args.rpc
        );
        if let Some(m) = &self.memory {
            let per = (m.bytes_after.saturating_sub(m.bytes_before)) as f64 / m.arms.max(1) as f64;
            println!(
                "populated {} experiments / {} arms: used_memory {} -> {} bytes = {:.1} bytes per arm",
                m.experiments, m.arms, m.bytes_before, m.bytes_after, per
            );
        }
        println!(
            "{:<32} {:>9} {:>7} {:>11} {:>8} {:>8} {:>8} {:>8} {:>10} {:>10}",
            "rpc",
            "requests",
            "errors",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "thr/floor",
            "p50/store"
        );
        for (name, s) in &self.rows {
            let f = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
            println!(
                "{:<32} {:>9} {:>7} {:>11.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>10} {:>10}",
                name,
                s.hist.len(),
                s.errors.values().sum::<u64>(),
                s.throughput(),
                s.ms(0.5),
                s.ms(0.9),
                s.ms(0.99),
                s.ms(0.999),
                f(ratio(s.throughput(), transport.map(Stats::throughput))),
                f(ratio(s.ms(0.5), store.map(|f| f.ms(0.5)))),
            );
        }
        for (name, s) in &self.rows {
            if !s.errors.is_empty() {
                println!(
                    "errors {name}: {:?}; the {} accepted: {:.0}/s, p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
                    s.errors,
                    s.accepted.len(),
                    s.accepted_throughput(),
                    s.accepted_ms(0.5),
                    s.accepted_ms(0.99),
                    s.accepted_ms(0.999)
                );
            }
        }
        if let Some(b) = self.redis_benchmark {
            println!("redis-benchmark EVALSHA (2xHINCRBYFLOAT, 50 clients): {b:.0} req/s");
        }
        if let Some(b) = self.redis_benchmark_pipelined {
            println!("redis-benchmark EVALSHA (2xHINCRBYFLOAT, 50 clients, -P 16): {b:.0} req/s");
        }
        if let Some((rewards, ratio)) = self.batch_rewards() {
            println!(
                "RewardBatch: {rewards:.0} rewards/s, {} of the pipelined floor",
                ratio.map_or("-".to_string(), |r| format!("{r:.2}"))
            );
        }
        if let Some(d) = self.duplicates {
            println!("duplicates acknowledged (each id sent once, must be 0): {d}");
        }
        if let Some(q) = &self.quality {
            let [(sm, sse), (rm, rse), (dm, dse), (pm, pse), (pdm, pdse)] = q.figures();
            println!(
                "decisions {} over {} copies ({:.0}/s per copy, mean realized reward delay {:.1} ms)",
                q.decisions,
                q.served.len(),
                q.copy_rate,
                q.mean_delay * 1000.0
            );
            println!(
                "regret per copy {sm:.1} ± {sse:.1}  reference (in-process Thompson on the realized delays, {} plays per copy) optimistic {rm:.1} ± {rse:.1} (ratio {:.3}, difference {dm:.1} ± {dse:.1}), pessimistic {pm:.1} ± {pse:.1} (ratio {:.3}, difference {pdm:.1} ± {pdse:.1})",
                args.reference_seeds,
                ratio(sm, Some(rm)).unwrap_or(f64::NAN),
                ratio(sm, Some(pm)).unwrap_or(f64::NAN)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert!(require_loopback("t", "http://127.0.0.1:50051").is_ok());
        assert!(require_loopback("t", "http://localhost:1").is_ok());
        assert!(require_loopback("t", "http://[::1]:1").is_ok());
        assert!(require_loopback("t", "redis+unix:///tmp/r.sock").is_ok());
        assert!(require_loopback("t", "redis://127.0.0.1:7000/0").is_ok());
        assert!(require_loopback("t", "http://10.0.0.1:50051").is_err());
        assert!(require_loopback("t", "http://example.com:50051").is_err());
        assert!(require_loopback("t", "redis://user:pw@10.1.1.1:7000").is_err());
    }
}
