//! The `posterior` command: `serve` runs the service; every other subcommand
//! is a gRPC client of it, like any user's.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use posterior::config::Config;
use posterior::pb;
use posterior::pb::bandits_client::BanditsClient;
use posterior::pb::optimizer_client::OptimizerClient;
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
    /// Create, show, list and delete Bayesian-optimization studies.
    #[command(subcommand)]
    Study(StudyCmd),
    /// Ask a study which configuration(s) to evaluate next.
    Suggest {
        study: String,
        /// Trials wanted (parallel workers).
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[command(flatten)]
        conn: Conn,
    },
    /// Report a trial's outcome.
    Observe {
        study: String,
        #[arg(long)]
        trial: u64,
        /// The objective (omit with --failed).
        #[arg(
            long,
            allow_negative_numbers = true,
            required_unless_present = "failed"
        )]
        value: Option<f64>,
        /// A named metric, e.g. --metric p95_ms=183 (repeatable).
        #[arg(long = "metric", value_parser = parse_metric)]
        metrics: Vec<(String, f64)>,
        /// The run failed: the configuration is infeasible.
        #[arg(long)]
        failed: bool,
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
    /// API key, when the server requires one.
    #[arg(long, env = "POSTERIOR_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// PEM CA that signed the server's certificate (for https:// servers).
    #[arg(long, env = "POSTERIOR_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Client certificate and key (PEM), when the server requires mutual TLS.
    #[arg(long, env = "POSTERIOR_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, env = "POSTERIOR_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Adds the API key to every request.
#[derive(Clone)]
struct ApiKey(Option<tonic::metadata::AsciiMetadataValue>);

impl tonic::service::Interceptor for ApiKey {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(k) = &self.0 {
            req.metadata_mut().insert("x-api-key", k.clone());
        }
        Ok(req)
    }
}

type Authed = tonic::service::interceptor::InterceptedService<Channel, ApiKey>;

async fn connect(conn: &Conn) -> Result<(Channel, ApiKey), String> {
    let key = match &conn.api_key {
        Some(k) => Some(
            k.parse()
                .map_err(|_| "--api-key: must be printable ASCII".to_string())?,
        ),
        None => None,
    };
    let mut endpoint = Channel::from_shared(conn.server.clone())
        .map_err(|e| format!("--server {}: {e}", conn.server))?;
    if conn.server.starts_with("https://") {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &conn.tls_ca {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(c), Some(k)) = (&conn.tls_cert, &conn.tls_key) {
            tls = tls.identity(Identity::from_pem(read(c)?, read(k)?));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| format!("TLS: {e}"))?;
    }
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", conn.server))?;
    Ok((channel, ApiKey(key)))
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

#[derive(Subcommand)]
enum StudyCmd {
    /// Create a study from a TOML file (see README: the study file).
    Create {
        name: String,
        #[arg(long)]
        space: PathBuf,
        #[command(flatten)]
        conn: Conn,
    },
    /// Trials table, best observed trial and the recommendation.
    Show {
        name: String,
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
}

fn parse_metric(s: &str) -> Result<(String, f64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let v: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{k}: not a number: {v:?}"))?;
    Ok((k.trim().to_string(), v))
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
        Command::Study(cmd) => study(cmd).await,
        Command::Suggest { study, count, conn } => {
            let r = optimizer(&conn)
                .await?
                .suggest(pb::SuggestRequest { study, count })
                .await
                .map_err(status)?
                .into_inner();
            for t in &r.trials {
                println!("trial {}: {}", t.trial_id, render_params(&t.params));
            }
            Ok(())
        }
        Command::Observe {
            study,
            trial,
            value,
            metrics,
            failed,
            conn,
        } => {
            let r = optimizer(&conn)
                .await?
                .observe(pb::ObserveRequest {
                    study,
                    trial_id: trial,
                    value: value.unwrap_or(0.0),
                    metrics: metrics.into_iter().collect(),
                    failed,
                })
                .await
                .map_err(status)?
                .into_inner();
            let t = r.trial.unwrap_or_default();
            let state = pb::TrialState::try_from(t.state)
                .map(|s| s.as_str_name())
                .unwrap_or("?");
            println!("trial {} {state}", t.trial_id);
            Ok(())
        }
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
            if r.fallback {
                println!("fallback:    true (store unreachable: the configured fallback arm)");
            }
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
    // Logs on stderr: stdout carries only the "listening on" line scripts read.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let grace = std::time::Duration::from_secs(cfg.server.shutdown_grace_seconds);
    let running = posterior::server::start(cfg).await?;
    // Also print the address: with port 0, scripts learn the port this way.
    println!("posterior listening on {}", running.addr);
    shutdown_signal().await;
    tracing::info!("shutting down: draining in-flight requests");
    match tokio::time::timeout(grace, running.stop()).await {
        Ok(r) => r,
        Err(_) => {
            tracing::warn!(
                ?grace,
                "drain grace period over: closing the remaining idle connections"
            );
            Ok(())
        }
    }
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

async fn optimizer(conn: &Conn) -> Result<OptimizerClient<Authed>, String> {
    let (ch, key) = connect(conn).await?;
    Ok(OptimizerClient::with_interceptor(ch, key))
}

async fn study(cmd: StudyCmd) -> Result<(), String> {
    match cmd {
        StudyCmd::Create { name, space, conn } => {
            let text =
                std::fs::read_to_string(&space).map_err(|e| format!("{}: {e}", space.display()))?;
            let req = posterior::space_file::parse(&name, &text)
                .map_err(|e| format!("{}: {e}", space.display()))?;
            let r = optimizer(&conn)
                .await?
                .create_study(req)
                .await
                .map_err(status)?
                .into_inner();
            let s = r.study.unwrap_or_default();
            let verb = if r.created {
                "created"
            } else {
                "already exists (identical)"
            };
            println!(
                "study {} {verb}: {} parameters, {} initial design trials",
                s.name,
                s.parameters.len(),
                s.n_initial
            );
            Ok(())
        }
        StudyCmd::Show { name, conn } => {
            let r = optimizer(&conn)
                .await?
                .get_study(pb::GetStudyRequest { name })
                .await
                .map_err(status)?
                .into_inner();
            print!("{}", render_study(&r));
            Ok(())
        }
        StudyCmd::List { conn } => {
            let r = optimizer(&conn)
                .await?
                .list_studies(pb::ListStudiesRequest::default())
                .await
                .map_err(status)?
                .into_inner();
            for n in r.names {
                println!("{n}");
            }
            Ok(())
        }
        StudyCmd::Delete { name, conn } => {
            optimizer(&conn)
                .await?
                .delete_study(pb::DeleteStudyRequest { name: name.clone() })
                .await
                .map_err(status)?;
            println!("study {name} deleted");
            Ok(())
        }
    }
}

fn render_params(p: &std::collections::HashMap<String, pb::Value>) -> String {
    let mut keys: Vec<&String> = p.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| {
            let v = match p[*k].kind.as_ref() {
                Some(pb::value::Kind::Number(x)) => format!("{x}"),
                Some(pb::value::Kind::Category(c)) => c.clone(),
                None => "?".into(),
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_study(r: &pb::GetStudyResponse) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let objective = r
        .study
        .as_ref()
        .and_then(|s| s.objective.clone())
        .unwrap_or_default();
    if let Some(s) = &r.study {
        let goal = pb::Goal::try_from(objective.goal)
            .map(|g| g.as_str_name())
            .unwrap_or("?");
        let _ = writeln!(
            out,
            "study {}  {goal} {}  ({} trials)",
            s.name,
            objective.name,
            r.trials.len()
        );
        for c in &s.constraints {
            let _ = writeln!(out, "  constraint: {} <= {}", c.metric, c.upper_bound);
        }
    }
    let _ = writeln!(
        out,
        "{:>6}  {:<9}  {:>14}  params / metrics",
        "trial", "state", objective.name
    );
    for t in &r.trials {
        let state = pb::TrialState::try_from(t.state)
            .map(|s| s.as_str_name())
            .unwrap_or("?");
        let value = t
            .value
            .map(|v| format!("{v:.6}"))
            .unwrap_or_else(|| "-".into());
        let mut metrics: Vec<String> = t.metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
        metrics.sort();
        let _ = writeln!(
            out,
            "{:>6}  {state:<9}  {value:>14}  {}  {}",
            t.trial_id,
            render_params(&t.params),
            metrics.join(" ")
        );
    }
    match &r.best {
        Some(b) => {
            let _ = writeln!(
                out,
                "best observed: trial {} {}={}  {}",
                b.trial_id,
                objective.name,
                b.value.unwrap_or(f64::NAN),
                render_params(&b.params)
            );
        }
        None => {
            let _ = writeln!(out, "best observed: none feasible yet");
        }
    }
    if let Some(rec) = &r.recommended
        && let Some(t) = &rec.trial
    {
        let _ = writeln!(
            out,
            "recommended:   trial {} (posterior mean {:.6} ± {:.6})  {}",
            t.trial_id,
            rec.mean,
            rec.std,
            render_params(&t.params)
        );
    }
    if r.exhausted {
        let _ = writeln!(
            out,
            "search space exhausted: every configuration has been suggested"
        );
    }
    out
}

async fn client(conn: &Conn) -> Result<BanditsClient<Authed>, String> {
    let (ch, key) = connect(conn).await?;
    Ok(BanditsClient::with_interceptor(ch, key))
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
                .list_experiments(pb::ListExperimentsRequest::default())
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
    let label = |a: &pb::ArmSummary| {
        if a.retired {
            format!("{} (retired)", a.name)
        } else {
            a.name.clone()
        }
    };
    let w = r
        .arms
        .iter()
        .map(|a| label(a).len())
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
        let name = label(a);
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
