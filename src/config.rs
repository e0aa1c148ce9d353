//! Configuration: `config/posterior.toml` documents every key. Precedence:
//! defaults < file (`--config`) < environment < command-line flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub decisions: DecisionConfig,
    pub bandit: BanditConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub history: HistoryConfig,
}

/// `[history]`: the per-experiment history (see `app::history`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Seconds between two points of every experiment.
    pub interval_seconds: u64,
    /// Points kept per experiment; older ones are dropped.
    pub retention_points: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            interval_seconds: crate::app::history::DEFAULT_INTERVAL_SECONDS,
            retention_points: crate::app::history::DEFAULT_RETENTION_POINTS,
        }
    }
}

/// A day: a longer interval would show nothing of a running experiment.
const MAX_HISTORY_INTERVAL_SECONDS: u64 = 86_400;
/// A year at one minute: each point costs ~100 bytes per arm in the store
/// (the README has the measured figure), so this bounds a 10-arm
/// experiment's history to about half a gigabyte.
const MAX_HISTORY_RETENTION_POINTS: usize = 527_040;

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `KEY:scope[,scope]` entries (scopes: decide, report, admin).
    pub keys: Vec<String>,
    /// Serve a non-loopback address with no keys configured.
    pub allow_unauthenticated_remote: bool,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: String,
    pub max_concurrent_requests: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: open requests per connection.
    pub max_streams_per_connection: u32,
    pub max_message_bytes: usize,
    pub shutdown_grace_seconds: u64,
    /// PEM certificate chain and private key: serve gRPC over TLS when set.
    pub tls_cert: String,
    pub tls_key: String,
    /// PEM CA bundle: require client certificates signed by it (mutual TLS).
    pub tls_client_ca: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// "embedded" (durable file, the default), "memory" (volatile) or
    /// "redis" (implied by a non-empty `redis_url`).
    pub backend: String,
    /// The embedded store's file.
    pub path: String,
    pub redis_url: String,
    pub redis_connect_timeout_ms: u64,
    pub redis_response_timeout_ms: u64,
    /// Redis ACL user and password. They override any in the URL, so the
    /// secret can come from the environment instead of a config file.
    pub redis_username: String,
    pub redis_password: String,
    /// For `rediss://`: a PEM CA bundle to trust instead of the system roots
    /// (a private CA), and a client certificate and key when Redis requires
    /// them (`tls-auth-clients yes`).
    pub redis_tls_ca: String,
    pub redis_tls_cert: String,
    pub redis_tls_key: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionConfig {
    pub secret: String,
    pub dedupe_window_seconds: u64,
    pub max_clock_skew_seconds: u64,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BanditConfig {
    pub prob_best_draws: u32,
    /// Oldest posterior snapshot a Choose may use; 0 = read the store every time.
    pub choose_max_staleness_ms: u64,
    /// Experiment name (or "*" for any) → the arm Choose answers when the
    /// store is unreachable and this replica has no snapshot to draw from.
    pub fallback_arms: BTreeMap<String, String>,
    /// Test-only: seed Choose's random draws (and the propensity tables)
    /// so statistical tests over the real server are reproducible. Unset
    /// in production: a seeded server serializes its Choose draws behind
    /// one lock, and its decisions are predictable.
    pub test_rng_seed: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Prometheus exporter address; empty = off.
    pub listen: String,
    /// Experiments (and, separately, studies) with their own label; the
    /// rest count under "other" and get no per-arm or per-study gauges.
    pub max_experiments: usize,
    /// How often the per-arm posterior gauges and the winner count are
    /// recomputed (one store read per labelled experiment).
    pub refresh_seconds: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: String::new(),
            max_experiments: crate::telemetry::MAX_EXPERIMENT_LABELS,
            refresh_seconds: DEFAULT_METRICS_REFRESH_SECONDS,
        }
    }
}

/// Per-arm gauges every 15 s: a common Prometheus scrape interval, so each
/// scrape sees a value at most one scrape old; 100 experiments cost 100
/// store reads and ~10^7 draws per period.
pub const DEFAULT_METRICS_REFRESH_SECONDS: u64 = 15;
/// Above 10,000 labelled experiments a scrape passes ~10^6 series: beyond
/// what one Prometheus target should export.
const MAX_METRICS_EXPERIMENTS: usize = 10_000;

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub filter: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:50051".into(),
            max_concurrent_requests: 1024,
            max_streams_per_connection: 100,
            max_message_bytes: 4 * 1024 * 1024,
            shutdown_grace_seconds: 10,
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_client_ca: String::new(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: "embedded".into(),
            path: "posterior.redb".into(),
            redis_url: String::new(),
            redis_connect_timeout_ms: 2000,
            redis_response_timeout_ms: 1000,
            redis_username: String::new(),
            redis_password: String::new(),
            redis_tls_ca: String::new(),
            redis_tls_cert: String::new(),
            redis_tls_key: String::new(),
        }
    }
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            secret: String::new(),
            dedupe_window_seconds: 86_400,
            max_clock_skew_seconds: 300,
        }
    }
}

impl Default for BanditConfig {
    fn default() -> Self {
        BanditConfig {
            prob_best_draws: 10_000,
            choose_max_staleness_ms: DEFAULT_CHOOSE_MAX_STALENESS_MS,
            fallback_arms: BTreeMap::new(),
            test_rng_seed: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
        }
    }
}

/// Where state lives, decided once from `store.backend` and `store.redis_url`.
#[derive(Clone, Debug, PartialEq)]
pub enum StoreBackend {
    /// Volatile: lost when the process ends (tests, demos).
    Memory,
    /// The durable default: one redb file.
    Embedded { path: std::path::PathBuf },
    /// Redis (one node, or a comma-separated cluster seed list); connection
    /// settings in `config.store`.
    Redis { url: String },
}

impl StoreBackend {
    /// For logs.
    pub fn name(&self) -> &'static str {
        match self {
            StoreBackend::Memory => "memory",
            StoreBackend::Embedded { .. } => "embedded",
            StoreBackend::Redis { .. } => "redis",
        }
    }
}

/// A configuration that passed [`Config::check`]: it cannot be invalid.
#[derive(Clone, Debug)]
pub struct ValidConfig {
    pub listen: SocketAddr,
    /// The Prometheus exporter's address; `None` = metrics off.
    pub metrics: Option<SocketAddr>,
    pub store: StoreBackend,
    pub keys: crate::edge::auth::ApiKeys,
    /// Every other (checked) setting.
    pub config: Config,
}

/// Environment variables that override the file (flags override these).
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("POSTERIOR_LISTEN", "server.listen"),
    ("POSTERIOR_REDIS", "store.redis_url"),
    ("POSTERIOR_REDIS_USERNAME", "store.redis_username"),
    ("POSTERIOR_REDIS_PASSWORD", "store.redis_password"),
    ("POSTERIOR_STORE", "store.backend"),
    ("POSTERIOR_DATA", "store.path"),
    ("POSTERIOR_DECISION_SECRET", "decisions.secret"),
    (
        "POSTERIOR_DEDUPE_WINDOW_SECONDS",
        "decisions.dedupe_window_seconds",
    ),
    ("POSTERIOR_LOG", "log.filter"),
    ("POSTERIOR_API_KEYS", "auth.keys (entries separated by ';')"),
    (
        "POSTERIOR_CHOOSE_MAX_STALENESS_MS",
        "bandit.choose_max_staleness_ms",
    ),
    ("POSTERIOR_METRICS_LISTEN", "metrics.listen"),
    (
        "POSTERIOR_FALLBACK_ARMS",
        "bandit.fallback_arms (\"experiment=arm;*=arm\")",
    ),
];

/// See config/posterior.toml; the regret measured at this bound against
/// always-fresh reads is in docs/benchmarks.md.
pub const DEFAULT_CHOOSE_MAX_STALENESS_MS: u64 = 100;
/// Beyond a minute a "snapshot" is a different experiment; surely a unit mistake.
const MAX_CHOOSE_STALENESS_MS: u64 = 60_000;

/// Longest dedupe window: a year of keys is already more memory than anyone
/// wants; beyond that it is surely a unit mistake.
const MAX_DEDUPE_WINDOW_SECONDS: u64 = 366 * 86_400;

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let cfg: Config = toml::from_str(text)
            .map_err(|e| format!("config: {}", e.message()).replace('`', "'"))?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
        Self::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Apply environment overrides from `get` (std::env::var in production).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(v) = get("POSTERIOR_LISTEN") {
            self.server.listen = v;
        }
        if let Some(v) = get("POSTERIOR_REDIS") {
            self.store.redis_url = v;
        }
        if let Some(v) = get("POSTERIOR_REDIS_USERNAME") {
            self.store.redis_username = v;
        }
        if let Some(v) = get("POSTERIOR_REDIS_PASSWORD") {
            self.store.redis_password = v;
        }
        if let Some(v) = get("POSTERIOR_STORE") {
            self.store.backend = v;
        }
        if let Some(v) = get("POSTERIOR_DATA") {
            self.store.path = v;
        }
        if let Some(v) = get("POSTERIOR_DECISION_SECRET") {
            self.decisions.secret = v;
        }
        if let Some(v) = get("POSTERIOR_DEDUPE_WINDOW_SECONDS") {
            self.decisions.dedupe_window_seconds = v.parse().map_err(|_| {
                format!("POSTERIOR_DEDUPE_WINDOW_SECONDS: not a whole number of seconds: {v:?}")
            })?;
        }
        if let Some(v) = get("POSTERIOR_API_KEYS") {
            self.auth.keys = v
                .split(';')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = get("POSTERIOR_LOG") {
            self.log.filter = v;
        }
        if let Some(v) = get("POSTERIOR_CHOOSE_MAX_STALENESS_MS") {
            self.bandit.choose_max_staleness_ms = v.parse().map_err(|_| {
                format!(
                    "POSTERIOR_CHOOSE_MAX_STALENESS_MS: not a whole number of milliseconds: {v:?}"
                )
            })?;
        }
        if let Some(v) = get("POSTERIOR_METRICS_LISTEN") {
            self.metrics.listen = v;
        }
        if let Some(v) = get("POSTERIOR_FALLBACK_ARMS") {
            self.bandit.fallback_arms = v
                .split(';')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(|e| {
                    e.split_once('=')
                        .map(|(k, a)| (k.trim().to_string(), a.trim().to_string()))
                        .ok_or_else(|| {
                            format!("POSTERIOR_FALLBACK_ARMS: expected experiment=arm, got {e:?}")
                        })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(())
    }

    /// TLS files only make sense for `rediss://` URLs (every node of a
    /// cluster list), and a client certificate needs its key.
    fn validate_redis_tls(&self) -> Result<(), String> {
        let st = &self.store;
        if st.redis_tls_cert.is_empty() != st.redis_tls_key.is_empty() {
            return Err(
                "store.redis_tls_cert / store.redis_tls_key: set both (client certificate) or neither"
                    .into(),
            );
        }
        let any_tls_file = !(st.redis_tls_ca.is_empty() && st.redis_tls_cert.is_empty());
        if any_tls_file {
            let urls = crate::store::redis::url_list(&st.redis_url);
            let all_tls = !urls.is_empty() && urls.iter().all(|u| u.starts_with("rediss://"));
            if !all_tls {
                return Err("store.redis_tls_ca / store.redis_tls_cert: need TLS: every URL in store.redis_url must start with rediss://".into());
            }
        }
        Ok(())
    }

    /// Every rule on every key; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.listen_addr()?;
        match self.store.backend.as_str() {
            "embedded" | "memory" | "redis" => {}
            other => {
                return Err(format!(
                    "store.backend: must be \"embedded\", \"memory\" or \"redis\", got {other:?}"
                ));
            }
        }
        if self.store.backend == "redis" && self.store.redis_url.is_empty() {
            return Err("store.redis_url: required when store.backend = \"redis\"".into());
        }
        if self.store.backend == "embedded"
            && self.store.redis_url.is_empty()
            && self.store.path.is_empty()
        {
            return Err("store.path: required for the embedded store".into());
        }
        if self.store.redis_connect_timeout_ms == 0 || self.store.redis_response_timeout_ms == 0 {
            return Err("store.redis_connect_timeout_ms / store.redis_response_timeout_ms: must be > 0 (0 would wait forever)".into());
        }
        self.validate_redis_tls()?;
        let w = self.decisions.dedupe_window_seconds;
        if !(60..=MAX_DEDUPE_WINDOW_SECONDS).contains(&w) {
            return Err(format!(
                "decisions.dedupe_window_seconds: must be between 60 and {MAX_DEDUPE_WINDOW_SECONDS}, got {w}"
            ));
        }
        if self.decisions.max_clock_skew_seconds > 3600 {
            return Err("decisions.max_clock_skew_seconds: must be at most 3600".into());
        }
        if !self.decisions.secret.is_empty() && self.decisions.secret.len() < 16 {
            return Err("decisions.secret: must be empty (generated) or at least 16 bytes".into());
        }
        if !(1..=1_000_000).contains(&self.server.max_concurrent_requests) {
            return Err("server.max_concurrent_requests: must be between 1 and 1000000".into());
        }
        let tls = &self.server;
        if tls.tls_cert.is_empty() != tls.tls_key.is_empty() {
            return Err(
                "server.tls_cert / server.tls_key: set both (TLS) or neither (plaintext)".into(),
            );
        }
        if !tls.tls_client_ca.is_empty() && tls.tls_cert.is_empty() {
            return Err("server.tls_client_ca: client certificates need TLS: set server.tls_cert and server.tls_key".into());
        }
        if self.server.shutdown_grace_seconds > 3600 {
            return Err("server.shutdown_grace_seconds: must be at most 3600".into());
        }
        if !(1..=10_000).contains(&self.server.max_streams_per_connection) {
            return Err("server.max_streams_per_connection: must be between 1 and 10000".into());
        }
        if !(64 * 1024..=256 * 1024 * 1024).contains(&self.server.max_message_bytes) {
            return Err("server.max_message_bytes: must be between 64 KiB and 256 MiB".into());
        }
        let keys = crate::edge::auth::ApiKeys::parse("auth.keys", &self.auth.keys)?;
        let addr = self.listen_addr()?;
        if keys.is_empty() && !addr.ip().is_loopback() && !self.auth.allow_unauthenticated_remote {
            return Err(format!(
                "server.listen: {addr} is not a loopback address and no API keys are configured (auth.keys); \
                 configure keys, or set auth.allow_unauthenticated_remote = true to serve without authentication"
            ));
        }
        if !(100..=1_000_000).contains(&self.bandit.prob_best_draws) {
            return Err("bandit.prob_best_draws: must be between 100 and 1000000".into());
        }
        if self.bandit.choose_max_staleness_ms > MAX_CHOOSE_STALENESS_MS {
            return Err(format!(
                "bandit.choose_max_staleness_ms: must be at most {MAX_CHOOSE_STALENESS_MS}, got {}",
                self.bandit.choose_max_staleness_ms
            ));
        }
        for (experiment, arm) in &self.bandit.fallback_arms {
            if experiment != "*" {
                crate::name::validate("bandit.fallback_arms (experiment)", experiment)?;
            }
            crate::name::validate(&format!("bandit.fallback_arms.{experiment:?}"), arm)?;
        }
        self.metrics_addr()?;
        let h = &self.history;
        if !(1..=MAX_HISTORY_INTERVAL_SECONDS).contains(&h.interval_seconds) {
            return Err(format!(
                "history.interval_seconds: must be between 1 and {MAX_HISTORY_INTERVAL_SECONDS}, got {}",
                h.interval_seconds
            ));
        }
        if !(1..=MAX_HISTORY_RETENTION_POINTS).contains(&h.retention_points) {
            return Err(format!(
                "history.retention_points: must be between 1 and {MAX_HISTORY_RETENTION_POINTS}, got {}",
                h.retention_points
            ));
        }
        if self.metrics.max_experiments > MAX_METRICS_EXPERIMENTS {
            return Err(format!(
                "metrics.max_experiments: must be at most {MAX_METRICS_EXPERIMENTS}, got {}",
                self.metrics.max_experiments
            ));
        }
        if !(1..=3600).contains(&self.metrics.refresh_seconds) {
            return Err(format!(
                "metrics.refresh_seconds: must be between 1 and 3600, got {}",
                self.metrics.refresh_seconds
            ));
        }
        Ok(())
    }

    /// Validate once into a [`ValidConfig`]: the typed values the server
    /// runs on (addresses parsed, the store backend an enum, API keys
    /// hashed), so nothing downstream re-reads or re-checks a string.
    pub fn check(self) -> Result<ValidConfig, String> {
        self.validate()?;
        let listen = self.listen_addr()?;
        let metrics = self.metrics_addr()?;
        let keys = crate::edge::auth::ApiKeys::parse("auth.keys", &self.auth.keys)?;
        let store = if !self.store.redis_url.is_empty() {
            // A Redis URL wins over `store.backend` (the CLI's --redis and
            // POSTERIOR_REDIS set only the URL).
            StoreBackend::Redis {
                url: self.store.redis_url.clone(),
            }
        } else if self.store.backend == "memory" {
            StoreBackend::Memory
        } else {
            StoreBackend::Embedded {
                path: self.store.path.clone().into(),
            }
        };
        Ok(ValidConfig {
            listen,
            metrics,
            store,
            keys,
            config: self,
        })
    }

    /// The exporter's address, or `None` when metrics are off.
    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, String> {
        if self.metrics.listen.is_empty() {
            return Ok(None);
        }
        self.metrics.listen.parse().map(Some).map_err(|_| {
            format!(
                "metrics.listen: expected empty (off) or HOST:PORT with an IP host, got {:?}",
                self.metrics.listen
            )
        })
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, String> {
        self.server.listen.parse().map_err(|_| {
            format!(
                "server.listen: expected HOST:PORT with an IP host, got {:?}",
                self.server.listen
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_types_the_store_backend_once() {
        let v = Config::default().check().unwrap();
        assert_eq!(
            v.store,
            StoreBackend::Embedded {
                path: "posterior.redb".into()
            }
        );
        assert_eq!(v.listen.port(), 50051);
        assert!(v.metrics.is_none() && v.keys.is_empty());
        let mut c = Config::default();
        c.store.backend = "memory".into();
        assert_eq!(c.check().unwrap().store, StoreBackend::Memory);
        // A Redis URL wins over the backend name.
        let mut c = Config::default();
        c.store.redis_url = "redis://127.0.0.1:1".into();
        assert_eq!(c.check().unwrap().store.name(), "redis");
        let mut c = Config::default();
        c.store.backend = "etcd".into();
        assert!(c.check().unwrap_err().starts_with("store.backend"));
    }

    #[test]
    fn shipped_file_is_the_defaults() {
        let text = include_str!("../config/posterior.toml");
        let cfg = Config::from_toml(text).unwrap();
        assert_eq!(cfg, Config::default());
        cfg.validate().unwrap();
    }

    #[test]
    fn metrics_caps_are_checked_and_named() {
        let cfg =
            Config::from_toml("[metrics]\nmax_experiments = 3\nrefresh_seconds = 2\n").unwrap();
        assert_eq!(
            (cfg.metrics.max_experiments, cfg.metrics.refresh_seconds),
            (3, 2)
        );
        let mut c = Config::default();
        c.metrics.max_experiments = 10_001;
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("metrics.max_experiments: must be at most 10000")
        );
        let mut c = Config::default();
        c.metrics.refresh_seconds = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .starts_with("metrics.refresh_seconds: must be between 1 and 3600")
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(e.contains("lisen"), "{e}");
        let e = Config::from_toml("[nope]\n").unwrap_err();
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn env_overrides_and_validation() {
        let mut cfg = Config::default();
        cfg.apply_env(|k| match k {
            "POSTERIOR_LISTEN" => Some("0.0.0.0:9".into()),
            "POSTERIOR_REDIS" => Some("redis://x".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(cfg.server.listen, "0.0.0.0:9");
        assert_eq!(cfg.store.redis_url, "redis://x");
        cfg.decisions.dedupe_window_seconds = 1;
        assert!(
            cfg.validate()
                .unwrap_err()
                .contains("decisions.dedupe_window_seconds")
        );
        cfg.decisions.dedupe_window_seconds = 86400;
        cfg.server.listen = "nohost".into();
        assert!(cfg.validate().unwrap_err().contains("server.listen"));
    }

    #[test]
    fn redis_credentials_and_tls_files() {
        let mut cfg = Config::default();
        cfg.apply_env(|k| match k {
            "POSTERIOR_REDIS" => Some("redis://h:6379".into()),
            "POSTERIOR_REDIS_USERNAME" => Some("app".into()),
            "POSTERIOR_REDIS_PASSWORD" => Some("pw".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (
                cfg.store.redis_username.as_str(),
                cfg.store.redis_password.as_str()
            ),
            ("app", "pw")
        );
        cfg.validate().unwrap();
        // A CA file with a plaintext URL is a mistake, not a silent no-op.
        cfg.store.redis_tls_ca = "ca.pem".into();
        assert!(cfg.validate().unwrap_err().contains("rediss://"));
        cfg.store.redis_url = "rediss://a:1,redis://b:2".into();
        assert!(cfg.validate().unwrap_err().contains("rediss://"));
        cfg.store.redis_url = " , ".into();
        assert!(cfg.validate().unwrap_err().contains("rediss://"));
        cfg.store.redis_url = "rediss://a:1, rediss://b:2".into();
        cfg.validate().unwrap();
        cfg.store.redis_tls_cert = "client.pem".into();
        assert!(cfg.validate().unwrap_err().contains("store.redis_tls_key"));
        cfg.store.redis_tls_key = "client.key".into();
        cfg.validate().unwrap();
    }
}
