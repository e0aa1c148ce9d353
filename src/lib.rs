//! # posterior
//!
//! A decision service: other systems ask it what to do next and tell it what
//! happened; it answers from Bayesian posteriors, over gRPC and HTTP/JSON on
//! one port.
//!
//! A map of the crate, from the wire inwards:
//!
//! - [`server`]: wiring. Config → store → application core → both
//!   transports on one listener (requests with a gRPC content type go to
//!   gRPC, everything else to HTTP), with TLS, HTTP/2 limits and graceful
//!   shutdown.
//! - [`edge`]: what every request passes first, on both transports: load
//!   shedding, API keys and scopes ([`edge::admission`], [`edge::auth`]).
//! - [`grpc`], [`http`]: the two transports. Handlers of a few lines:
//!   decode, call [`app`], encode. [`pb`] holds the generated messages and
//!   their proto3 JSON mapping; [`convert`] the proto ⇄ domain conversions.
//! - [`app`]: the use cases, each once: Choose with its snapshot cache and
//!   fallback, Reward, experiment and arm admin, summaries, verdicts and
//!   canary gates ([`app::verdict`]), Suggest/Observe
//!   with study lock and compare-and-set, pagination.
//! - [`error`]: failure kinds and the one table mapping them to gRPC codes
//!   and HTTP statuses.
//! - [`bandit`]: the pure domain of multi-armed bandits: conjugate posteriors
//!   with decay, goal-aware Thompson sampling, signed decision ids; P(best),
//!   expected loss, lift, the stopping rule and the gate's probabilities
//!   ([`bandit::verdict`]). No I/O.
//! - [`bo`]: the pure domain of Bayesian optimization: search spaces, the
//!   Gaussian process and its fit, acquisitions, suggest/recommend. No I/O.
//! - [`store`]: one trait for experiment and study state; in-memory, embedded
//!   (redb, the durable default) and Redis (single, Cluster, TLS) backends.
//!   Atomic updates happen here (Lua in Redis, write transactions in redb).
//! - [`config`]: the `config/posterior.toml` schema, env overrides, and
//!   [`config::Config::check`] into a [`config::ValidConfig`].
//! - [`name`]: the naming rule shared by every user-given name.
//! - [`space_file`]: the search-space TOML file of the CLI.
//! - [`cli`]: the `posterior` command: `serve` start-up, and the client
//!   subcommands (a gRPC client like any user's).
//! - [`telemetry`]: Prometheus metrics (a tower layer over both transports,
//!   a timing wrapper around the store, per-experiment counters).
//! - [`ui`]: the read-only dashboard (a static page over the HTTP/JSON API,
//!   its assets and the vendored uPlot embedded in the binary) at `/ui/`.
//!
//! Layering: `bandit` and `bo` import nothing above them; `store` never
//! imports `app` or a transport; `app` never imports a transport or `pb`.

pub mod app;
pub mod bandit;
pub mod bo;
pub mod cli;
pub mod config;
pub mod convert;
pub mod edge;
pub mod error;
pub mod grpc;
pub mod http;
pub mod name;
pub mod pb;
pub mod server;
pub mod space_file;
pub mod store;
pub mod telemetry;
pub mod ui;
