//! `posterior serve`: configuration (file, then environment, then flags),
//! logging, the server, and a graceful stop on SIGTERM or Ctrl-C.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::config::Config;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (see config/posterior.toml).
    #[arg(long, value_name = "FILE", env = "POSTERIOR_CONFIG")]
    pub config: Option<PathBuf>,
    /// Listen address HOST:PORT [env: POSTERIOR_LISTEN; default 127.0.0.1:50051].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Use Redis at this URL instead of the embedded store [env: POSTERIOR_REDIS].
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

/// Runs the service until SIGTERM or Ctrl-C, then drains in-flight requests
/// for at most `server.shutdown_grace_seconds`.
pub async fn run(args: ServeArgs) -> Result<(), String> {
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
    // The handlers are installed before the server accepts a connection: a
    // SIGTERM that arrives once the service answers (a supervisor stopping
    // a replica right after its readiness check) must drain, not kill by
    // the signal's default action. tokio installs a handler when the
    // stream is created, not when it is first polled.
    let shutdown = ShutdownSignal::install();
    let running = crate::server::start(cfg).await?;
    // Also print the address: with port 0, scripts learn the port this way.
    // A reader that stops reading after this line (tests, supervisors) must
    // not take the service down: a write error here is ignored.
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "posterior listening on {}", running.addr);
        let _ = out.flush();
    }
    shutdown.recv().await;
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

/// SIGTERM or Ctrl-C (SIGINT), with their handlers installed.
struct ShutdownSignal {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl ShutdownSignal {
    fn install() -> ShutdownSignal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            ShutdownSignal {
                streams: signal(SignalKind::terminate())
                    .and_then(|t| Ok((t, signal(SignalKind::interrupt())?)))
                    .ok(),
            }
        }
        #[cfg(not(unix))]
        {
            ShutdownSignal {}
        }
    }

    async fn recv(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.streams {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        // No signal handlers (not unix, or installing them failed): Ctrl-C.
        let _ = tokio::signal::ctrl_c().await;
    }
}
