//! The `posterior` command line. `serve` runs the service ([`serve`]); every
//! other subcommand is a gRPC client of it, like any user's: one [`client`]
//! over one channel, one function per subcommand in [`commands`], tables and
//! JSON in [`render`].
//!
//! The connection flags are declared once, in [`Conn`], as global arguments:
//! they go before or after the subcommand (`posterior --server X experiment
//! list` and `posterior experiment list --server X` are the same).

pub mod client;
pub mod commands;
pub mod render;
pub mod serve;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Shown at the end of `posterior --help`: scripts branch on these.
const AFTER_HELP: &str = "\
Exit status:
  0  success (also when the reader of the output goes away, as with `| head`)
  1  the server answered with an error, or could not be reached
     (connection refused, TLS mismatch, not a posterior server, --timeout)
  2  usage error: unknown or conflicting flags, missing or malformed values
  `posterior gate` also exits 1 on FAIL and 3 on INCONCLUSIVE (0 on PASS)

Client commands print tables for people; --json prints the server's answer
as JSON (proto3 JSON mapping: lowerCamelCase names, 64-bit integers as
strings) for scripts.";

#[derive(Parser, Debug)]
#[command(
    name = "posterior",
    version,
    about = "Decisions from Bayesian posteriors: bandits and Bayesian optimization over gRPC",
    after_help = AFTER_HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: Command,
}

/// How client commands reach the server and print its answers. Global: valid
/// before and after the subcommand. `serve` ignores them.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Client options")]
pub struct Conn {
    /// The posterior server to talk to: http://HOST:PORT, or https://HOST:PORT for TLS.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "POSTERIOR_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// API key, when the server requires one (sent as x-api-key).
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        env = "POSTERIOR_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Give up on any call, connecting included, after this many seconds.
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        env = "POSTERIOR_TIMEOUT",
        default_value = "10",
        value_parser = parse_timeout
    )]
    pub timeout: Duration,
    /// PEM CA that signed the server's certificate (https:// servers).
    #[arg(long, global = true, value_name = "PEM", env = "POSTERIOR_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM), when the server requires mutual TLS; needs --tls-key.
    #[arg(
        long,
        global = true,
        value_name = "PEM",
        env = "POSTERIOR_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM); needs --tls-cert.
    #[arg(
        long,
        global = true,
        value_name = "PEM",
        env = "POSTERIOR_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Print the server's answer as JSON instead of a table (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the service (embedded store unless --redis is given).
    Serve(serve::ServeArgs),
    /// Create, show, list and delete experiments; add and retire arms.
    #[command(subcommand)]
    Experiment(ExperimentCmd),
    /// Ask which arm to use now; prints the arm and its decision id.
    Choose {
        /// The experiment to decide for.
        experiment: String,
        /// Only these arms are eligible for this decision (comma-separated).
        #[arg(long, value_delimiter = ',', value_name = "ARMS")]
        eligible: Vec<String>,
    },
    /// Report an outcome, by decision id (exactly-once) or by arm (bulk, no exactly-once).
    Reward {
        /// The experiment the outcome belongs to.
        experiment: String,
        /// The decision id `choose` printed: counted once however often it is retried.
        #[arg(
            long,
            value_name = "ID",
            conflicts_with = "arm",
            required_unless_present = "arm"
        )]
        decision: Option<String>,
        /// The arm the outcome belongs to, for outcomes known by arm (every call counts).
        #[arg(long, value_name = "NAME")]
        arm: Option<String>,
        /// The reward. BERNOULLI: in [0, 1]; GAUSSIAN: any finite number.
        #[arg(long, allow_negative_numbers = true)]
        value: f64,
    },
    /// Canary gate: may the candidate arm replace the baseline? Exit 0 on
    /// PASS, 1 on FAIL (and on errors), 3 on INCONCLUSIVE.
    Gate {
        /// The experiment both arms belong to.
        experiment: String,
        /// The arm in production now.
        #[arg(long, value_name = "ARM")]
        baseline: String,
        /// The arm that would replace it.
        #[arg(long, value_name = "ARM")]
        candidate: String,
        /// How much worse the candidate may be, in reward units, in the goal's direction.
        #[arg(long, default_value_t = 0.0)]
        margin: f64,
        /// A bound the candidate's rate must not cross (above it for MINIMIZE, below for MAXIMIZE).
        #[arg(long, allow_negative_numbers = true)]
        slo: Option<f64>,
        /// Rewards each arm needs before a PASS [default: 100].
        #[arg(long, value_name = "N", default_value_t = 0)]
        min_rewards: u64,
        /// Posterior probability needed for PASS or FAIL [default: 0.95].
        #[arg(long, default_value_t = 0.0)]
        confidence: f64,
    },
    /// Create, show, list and delete Bayesian-optimization studies.
    #[command(subcommand)]
    Study(StudyCmd),
    /// Ask a study which configuration(s) to evaluate next.
    Suggest {
        /// The study to ask.
        study: String,
        /// Trials wanted (one per parallel worker).
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Report a trial's outcome.
    Observe {
        /// The study the trial belongs to.
        study: String,
        /// The trial id `suggest` printed.
        #[arg(long, value_name = "ID")]
        trial: u64,
        /// The objective's value (not with --failed). Not needed by a study
        /// with a cost model (its value is the cost of the reported
        /// duration_ms) or with several objectives (values in --metric).
        #[arg(long, allow_negative_numbers = true, conflicts_with = "failed")]
        value: Option<f64>,
        /// A named metric, e.g. --metric p95_ms=183 (repeatable).
        #[arg(long = "metric", value_name = "NAME=VALUE", value_parser = parse_metric)]
        metrics: Vec<(String, f64)>,
        /// The run failed (crashed, timed out): the configuration is infeasible.
        #[arg(long)]
        failed: bool,
    },
    /// Give up on a pending or queued trial (e.g. a preempted worker): its
    /// configuration may be suggested again.
    Abandon {
        /// The study the trial belongs to.
        study: String,
        /// The trial id `suggest` printed.
        #[arg(long, value_name = "ID")]
        trial: u64,
        /// Why, kept with the trial (e.g. "spot instance preempted").
        #[arg(long)]
        reason: Option<String>,
    },
    /// Queue a configuration: the next `suggest` hands it out first.
    Enqueue {
        /// The study to queue the configuration in.
        study: String,
        /// A parameter's value, e.g. --param memory_mb=1024 --param arch=arm64
        /// (one per parameter of the study).
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param, required = true)]
        params: Vec<(String, String)>,
    },
    /// Add a finished trial that did not come from `suggest` (import a past run).
    AddTrial {
        /// The study to add the trial to.
        study: String,
        /// A parameter's value, e.g. --param memory_mb=1024 (one per parameter).
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param, required = true)]
        params: Vec<(String, String)>,
        /// The objective's value (not with --failed).
        #[arg(
            long,
            allow_negative_numbers = true,
            required_unless_present = "failed",
            conflicts_with = "failed"
        )]
        value: Option<f64>,
        /// A named metric, e.g. --metric p95_ms=183 (repeatable).
        #[arg(long = "metric", value_name = "NAME=VALUE", value_parser = parse_metric)]
        metrics: Vec<(String, f64)>,
        /// The run failed: the configuration is infeasible.
        #[arg(long)]
        failed: bool,
    },
}

/// The reward distribution of an experiment's arms.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModelArg {
    /// Rewards in [0, 1] (1 = success); Beta prior.
    Bernoulli,
    /// Real-valued rewards; Normal-Inverse-Gamma prior.
    Gaussian,
}

#[derive(Subcommand, Debug)]
pub enum ExperimentCmd {
    /// Create an experiment (idempotent for an identical definition).
    Create {
        /// The experiment's name: letters, digits, '_', '.', ':', '-'.
        name: String,
        /// Arm names, comma-separated.
        #[arg(long, value_delimiter = ',', required = true, value_name = "ARMS")]
        arms: Vec<String>,
        /// How rewards are distributed.
        #[arg(long, value_enum, default_value = "bernoulli")]
        model: ModelArg,
        /// Beta prior alpha (BERNOULLI only) [default: 1].
        #[arg(long)]
        alpha: Option<f64>,
        /// Beta prior beta (BERNOULLI only) [default: 1].
        #[arg(long)]
        beta: Option<f64>,
        /// Evidence half-life in seconds, for drifting rewards (0 = never decays).
        #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
        half_life: f64,
    },
    /// Show the posterior of every arm as a table.
    Show {
        /// The experiment to show.
        name: String,
        /// Adds P(mean > threshold) per arm (e.g. an error-rate SLO).
        #[arg(long, allow_negative_numbers = true)]
        threshold: Option<f64>,
    },
    /// List experiment names.
    List,
    /// The experiment's verdict under its stopping rule: RUNNING, WINNER or INCONCLUSIVE.
    Verdict {
        /// The experiment to judge.
        name: String,
    },
    /// Delete an experiment and all its evidence.
    Delete {
        /// The experiment to delete.
        name: String,
    },
    /// Add an arm to a live experiment; it starts at the prior.
    AddArm {
        /// The experiment to add the arm to.
        experiment: String,
        /// The new arm's name.
        arm: String,
    },
    /// Retire an arm: never chosen again, evidence kept.
    RetireArm {
        /// The experiment the arm belongs to.
        experiment: String,
        /// The arm to retire.
        arm: String,
    },
    /// Report many outcomes of one arm at once (e.g. "412 requests, 9 errors"),
    /// exactly once per request id.
    RewardAggregate {
        /// The experiment the outcomes belong to.
        name: String,
        /// The arm the outcomes belong to.
        #[arg(long)]
        arm: String,
        /// How many outcomes.
        #[arg(long)]
        count: u64,
        /// Their sum (BERNOULLI: successes, in [0, count]).
        #[arg(long, allow_negative_numbers = true)]
        sum: f64,
        /// The sum of their squares (GAUSSIAN).
        #[arg(long, value_name = "Q", default_value_t = 0.0)]
        sum_squares: f64,
        /// Counted once however often it is retried [default: a fresh random id,
        /// printed, so a retry can pass it].
        #[arg(long, value_name = "ID")]
        request_id: Option<String>,
    },
    /// Report many rewards in few calls: one JSON object per line, as the
    /// HTTP API takes them ({"decisionId": "...", "value": 1} or
    /// {"arm": "b", "value": 0}), sent 1,000 to a call (the server's cap).
    /// Exit 1 when any line was refused (each is reported).
    RewardBatch {
        /// The experiment the rewards belong to.
        name: String,
        /// The JSON-lines file; "-" reads standard input.
        #[arg(long, value_name = "FILE", default_value = "-")]
        file: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum StudyCmd {
    /// Create a study from a TOML file (see README: the study file).
    Create {
        /// The study's name: letters, digits, '_', '.', ':', '-'.
        name: String,
        /// The study file: search space, objective, constraints (e.g. examples/serverless.toml).
        #[arg(long, value_name = "FILE")]
        space: PathBuf,
    },
    /// Trials table, best observed trial and the recommendation.
    Show {
        /// The study to show.
        name: String,
    },
    /// List study names.
    List,
    /// Delete a study and all its trials.
    Delete {
        /// The study to delete.
        name: String,
    },
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
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

/// Seconds, fractions allowed; 0 is refused (every call would fail at once).
fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number of seconds: {s:?}"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("must be more than 0 seconds, got {s}"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("too long: {s} seconds"))
}

/// Why a command did not succeed; each maps to one exit status.
#[derive(Debug)]
pub enum Error {
    /// The server answered with an error, or could not be reached: exit 1.
    Failed(String),
    /// Arguments clap cannot check alone (e.g. --alpha with --model
    /// gaussian, a --server without a scheme): exit 2, like clap's own.
    Usage(String),
    /// Whoever read our output went away (`| head -1`): not a failure of
    /// the command, nothing more to say, exit 0.
    Closed,
    /// The answer is printed and its meaning is the exit status (`gate`:
    /// 1 on FAIL, 3 on INCONCLUSIVE).
    Exit(u8),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Error::Closed
        } else {
            Error::Failed(format!("writing the output: {e}"))
        }
    }
}

impl From<String> for Error {
    fn from(e: String) -> Error {
        Error::Failed(e)
    }
}

/// Parses the command line (exits 2 on a usage error, 0 after `--help`).
/// The connection flags are global, so clap lists them under every
/// subcommand; they are hidden from `serve --help`, where they mean nothing.
pub fn parse() -> Cli {
    let mut cmd = Cli::command();
    cmd.build();
    let cmd = cmd.mut_subcommand("serve", |serve| {
        serve.mut_args(|a| if a.is_global_set() { a.hide(true) } else { a })
    });
    Cli::from_arg_matches(&cmd.get_matches()).unwrap_or_else(|e| e.exit())
}

/// Runs a parsed command line; the process's exit status.
pub fn run(cli: Cli) -> ExitCode {
    // The service wants every core; a client makes one call at a time.
    let rt = match &cli.command {
        Command::Serve(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => return fail(&Error::Failed(format!("cannot start the runtime: {e}"))),
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await.map_err(Error::Failed),
            command => commands::run(&cli.conn, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Reports `e` on stderr and picks the exit status. Writes to stderr
/// ignore errors: with stderr closed too there is nobody left to tell.
fn fail(e: &Error) -> ExitCode {
    let mut err = std::io::stderr().lock();
    match e {
        Error::Closed => ExitCode::SUCCESS,
        Error::Exit(code) => ExitCode::from(*code),
        Error::Failed(msg) => {
            let _ = writeln!(err, "error: {msg}");
            ExitCode::from(1)
        }
        Error::Usage(msg) => {
            let _ = writeln!(err, "error: {msg}\n\nFor more information, try '--help'.");
            ExitCode::from(2)
        }
    }
}
