//! The `posterior` command: `serve` runs the service; every other subcommand
//! is a gRPC client of it, like any user's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use posterior::api::pb;
use posterior::api::pb::bandits_client::BanditsClient;
use posterior::config::Config;
use tonic::transport::Channel;

#[derive(Parser)]
#[command(
    name = "posterior",
    version,
    about = "Decisions from Bayesian posteriors: bandits over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (embedded store unless --redis is given).
    Serve(ServeArgs),
    /// Create, show, list and delete experiments; add and retire arms.
    #[command(subcommand)]
    Experiment(ExperimentCmd),
    /// Ask which arm to use now; prints the arm and its decision id.
    Choose {
        experiment: String,
        /// Only these arms are eligible for this decision (comma-separated).
        #[arg(long, value_delimiter = ',')]
        eligible: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Report an outcome, by decision id (exactly-once) or by arm (bulk, no exactly-once).
    Reward {
        experiment: String,
        #[arg(long, conflicts_with = "arm", required_unless_present = "arm")]
        decision: Option<String>,
        #[arg(long)]
        arm: Option<String>,
        /// BERNOULLI: in [0, 1]; GAUSSIAN: any finite number.
        #[arg(long, allow_negative_numbers = true)]
        value: f64,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Configuration file (see config/posterior.toml).
    #[arg(long, env = "POSTERIOR_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address HOST:PORT [env: POSTERIOR_LISTEN; default 127.0.0.1:50051].
    #[arg(long)]
    listen: Option<String>,
    /// Use Redis at this URL instead of the embedded store [env: POSTERIOR_REDIS].
    #[arg(long)]
    redis: Option<String>,
}

#[derive(Args, Clone)]
struct Conn {
    /// The posterior server to talk to.
    #[arg(
        long,
        env = "POSTERIOR_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModelArg {
    Bernoulli,
    Gaussian,
}

#[derive(Subcommand)]
enum ExperimentCmd {
    /// Create an experiment (idempotent for an identical definition).
    Create {
        name: String,
        /// Arm names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        arms: Vec<String>,
        #[arg(long, value_enum, default_value = "bernoulli")]
        model: ModelArg,
        /// Beta prior alpha (BERNOULLI) [default 1].
        #[arg(long)]
        alpha: Option<f64>,
        /// Beta prior beta (BERNOULLI) [default 1].
        #[arg(long)]
        beta: Option<f64>,
        /// Evidence half-life in seconds (0 = never decays).
        #[arg(long, default_value_t = 0.0)]
        half_life: f64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Show the posterior of every arm as a table.
    Show {
        name: String,
        /// Adds P(mean > threshold) per arm (e.g. an error-rate SLO).
        #[arg(long)]
        threshold: Option<f64>,
        #[command(flatten)]
        conn: Conn,
    },
    List {
        #[command(flatten)]
        conn: Conn,
    },
    Delete {
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Add an arm to a live experiment.
    AddArm {
        experiment: String,
        arm: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Retire an arm: never chosen again, evidence kept.
    RetireArm {
        experiment: String,
        arm: String,
        #[command(flatten)]
        conn: Conn,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Experiment(cmd) => experiment(cmd).await,
        Command::Choose {
            experiment,
            eligible,
            conn,
        } => {
            let r = client(&conn)
                .await?
                .choose(pb::ChooseRequest {
                    experiment,
                    eligible_arms: eligible,
                })
                .await
                .map_err(status)?
                .into_inner();
            println!("arm:         {}\ndecision_id: {}", r.arm, r.decision_id);
            Ok(())
        }
        Command::Reward {
            experiment,
            decision,
            arm,
            value,
            conn,
        } => {
            let target = match (decision, arm) {
                (Some(d), _) => pb::reward_request::Target::DecisionId(d),
                (None, Some(a)) => pb::reward_request::Target::Arm(a),
                (None, None) => return Err("give --decision ID or --arm NAME".into()),
            };
            let r = client(&conn)
                .await?
                .reward(pb::RewardRequest {
                    experiment,
                    target: Some(target),
                    value,
                })
                .await
                .map_err(status)?
                .into_inner();
            if r.duplicate {
                println!(
                    "{}: duplicate decision, already counted (not applied again)",
                    r.arm
                );
            } else {
                println!("{}: reward {value} applied", r.arm);
            }
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    cfg.apply_env(|k| std::env::var(k).ok())?;
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    if let Some(r) = args.redis {
        cfg.store.redis_url = r;
    }
    cfg.validate()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log.filter))
        .map_err(|e| format!("log.filter: {e}"))?;
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let running = posterior::server::start(cfg).await?;
    // Also print the address: with port 0, scripts learn the port this way.
    println!("posterior listening on {}", running.addr);
    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    running.stop().await
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn client(conn: &Conn) -> Result<BanditsClient<Channel>, String> {
    BanditsClient::connect(conn.server.clone())
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", conn.server))
}

fn status(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

async fn experiment(cmd: ExperimentCmd) -> Result<(), String> {
    match cmd {
        ExperimentCmd::Create {
            name,
            arms,
            model,
            alpha,
            beta,
            half_life,
            conn,
        } => {
            let prior = match (model, alpha, beta) {
                (_, None, None) => None,
                (ModelArg::Bernoulli, a, b) => Some(
                    pb::create_experiment_request::Prior::BetaPrior(pb::BetaPrior {
                        alpha: a.unwrap_or(1.0),
                        beta: b.unwrap_or(1.0),
                    }),
                ),
                (ModelArg::Gaussian, _, _) => {
                    return Err("--alpha/--beta set a BERNOULLI Beta prior; GAUSSIAN uses the default prior from the CLI".into());
                }
            };
            let r = client(&conn)
                .await?
                .create_experiment(pb::CreateExperimentRequest {
                    name,
                    arms,
                    model: match model {
                        ModelArg::Bernoulli => pb::RewardModel::Bernoulli,
                        ModelArg::Gaussian => pb::RewardModel::Gaussian,
                    } as i32,
                    prior,
                    half_life_seconds: half_life,
                })
                .await
                .map_err(status)?
                .into_inner();
            let e = r.experiment.unwrap_or_default();
            let verb = if r.created {
                "created"
            } else {
                "already exists (identical)"
            };
            println!("experiment {} {verb}: {} arms", e.name, e.arms.len());
            Ok(())
        }
        ExperimentCmd::Show {
            name,
            threshold,
            conn,
        } => {
            let r = client(&conn)
                .await?
                .get_experiment(pb::GetExperimentRequest { name, threshold })
                .await
                .map_err(status)?
                .into_inner();
            print!("{}", render_experiment(&r, threshold));
            Ok(())
        }
        ExperimentCmd::List { conn } => {
            let r = client(&conn)
                .await?
                .list_experiments(pb::ListExperimentsRequest {})
                .await
                .map_err(status)?
                .into_inner();
            for n in r.names {
                println!("{n}");
            }
            Ok(())
        }
        ExperimentCmd::Delete { name, conn } => {
            client(&conn)
                .await?
                .delete_experiment(pb::DeleteExperimentRequest { name: name.clone() })
                .await
                .map_err(status)?;
            println!("experiment {name} deleted");
            Ok(())
        }
        ExperimentCmd::AddArm {
            experiment,
            arm,
            conn,
        } => {
            let r = client(&conn)
                .await?
                .add_arm(pb::AddArmRequest {
                    experiment,
                    arm: arm.clone(),
                })
                .await
                .map_err(status)?
                .into_inner();
            println!(
                "arm {arm} {}",
                if r.created { "added" } else { "already active" }
            );
            Ok(())
        }
        ExperimentCmd::RetireArm {
            experiment,
            arm,
            conn,
        } => {
            client(&conn)
                .await?
                .retire_arm(pb::RetireArmRequest {
                    experiment,
                    arm: arm.clone(),
                })
                .await
                .map_err(status)?;
            println!("arm {arm} retired");
            Ok(())
        }
    }
}

fn render_experiment(r: &pb::GetExperimentResponse, threshold: Option<f64>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if let Some(e) = &r.experiment {
        let model = pb::RewardModel::try_from(e.model)
            .map(|m| m.as_str_name())
            .unwrap_or("?");
        let _ = write!(out, "experiment {}  model {model}", e.name);
        if e.half_life_seconds > 0.0 {
            let _ = write!(out, "  half-life {}s", e.half_life_seconds);
        }
        let _ = writeln!(out);
    }
    let w = r
        .arms
        .iter()
        .map(|a| a.name.len())
        .max()
        .unwrap_or(3)
        .max(3);
    let _ = write!(
        out,
        "{:<w$}  {:>8}  {:>10}  {:>23}  {:>7}",
        "arm", "rewards", "mean", "95% interval", "P(best)"
    );
    if let Some(t) = threshold {
        let _ = write!(out, "  {:>10}", format!("P(>{t})"));
    }
    let _ = writeln!(out);
    for a in &r.arms {
        let name = if a.retired {
            format!("{} (retired)", a.name)
        } else {
            a.name.clone()
        };
        let _ = write!(
            out,
            "{name:<w$}  {:>8}  {:>10.4}  [{:>10.4}, {:>10.4}]  {:>7.3}",
            a.rewards, a.mean, a.lower, a.upper, a.prob_best
        );
        if let Some(p) = a.prob_above_threshold {
            let _ = write!(out, "  {p:>10.4}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "P(best) from {} joint posterior draws",
        r.prob_best_draws
    );
    out
}
