//! # posterior
//!
//! A decision service: other systems ask it what to do next and tell it what
//! happened; it answers from Bayesian posteriors, over gRPC.
//!
//! A map of the crate, from the wire inwards:
//!
//! - [`server`]: wiring. Config → store → gRPC services (health, reflection,
//!   `posterior.v1.Bandits`, `posterior.v1.Optimizer`) on a listener, with
//!   TLS, HTTP/2 limits and graceful shutdown.
//! - [`api`]: thin gRPC handlers, proto ⇄ domain conversion, and the single
//!   `ApiError → tonic::Status` mapping ([`api::status`]); admission (load
//!   shedding, API keys) in [`api::admission`]; the Choose snapshot cache and
//!   the outage fallbacks in [`api::snapshot`] and [`api::bandit`].
//! - [`bandit`]: the pure domain of multi-armed bandits: conjugate posteriors
//!   with decay, Thompson sampling, signed decision ids. No I/O.
//! - [`bo`]: the pure domain of Bayesian optimization: search spaces, the
//!   Gaussian process and its fit, acquisitions, suggest/recommend. No I/O.
//! - [`store`]: one trait for experiment and study state; in-memory, embedded
//!   (redb, the durable default) and Redis (single, Cluster, TLS) backends.
//!   Atomic updates happen here (Lua in Redis, write transactions in redb).
//! - [`config`]: the `config/posterior.toml` schema, env overrides, validation.
//! - [`name`]: the naming rule shared by every user-given name.
//! - [`space_file`]: the search-space TOML file of the CLI.
//! - [`cli`]: the `posterior` command: `serve` start-up, gRPC client subcommands.
//! - [`telemetry`]: Prometheus metrics (a tower layer on the gRPC server, a
//!   timing wrapper around the store, per-experiment counters).
//!
//! Layering: `bandit` and `bo` import neither `store` nor `api`; `store` never
//! imports `api`. The domain can be tested and benchmarked alone.

pub mod api;
pub mod bandit;
pub mod bo;
pub mod cli;
pub mod config;
pub mod name;
pub mod server;
pub mod space_file;
pub mod store;
pub mod telemetry;
