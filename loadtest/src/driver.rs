//! Load shapes and what they measure.
//!
//! - **Open loop**: request `i` is due at `start + i / rate`, whatever
//!   happened to the earlier ones; its latency is measured from that due
//!   time, so a stalled server shows up as latency instead of silently
//!   lowering the offered load (no coordinated omission).
//! - **Closed loop**: `concurrency` callers, each sending its next request
//!   when the previous one answered: the most the server can do.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Semaphore;

/// Highest latency the histograms resolve (longer ones are clamped): far
/// beyond any timeout on the path.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Outcome of one call: `Ok` or the gRPC status code (or a pseudo-code
/// like "redis_error") it failed with.
pub type CallResult = Result<(), String>;
pub type CallFuture = Pin<Box<dyn Future<Output = CallResult> + Send>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Open,
    Closed,
}

#[derive(Clone, Debug)]
pub struct Shape {
    pub mode: Mode,
    /// Open loop: arrivals per second.
    pub rate: f64,
    /// Closed loop: callers. Open loop: the most requests in flight (more
    /// arrivals wait, and their wait counts in their latency).
    pub concurrency: usize,
    pub requests: u64,
    pub duration: Duration,
}

/// Latencies (µs) and errors of one RPC kind.
pub struct Stats {
    /// Every request, whatever its outcome.
    pub hist: Histogram<u64>,
    /// Successful requests only: under overload, shed requests answer at
    /// once and would flatter the percentiles of the work actually done.
    pub accepted: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    pub elapsed: Duration,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            // 3 significant digits: 0.1% resolution at any latency.
            hist: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
            accepted: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("static histogram bounds are valid"),
            errors: BTreeMap::new(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn record(&mut self, latency: Duration, r: &CallResult) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        self.hist.saturating_record(us);
        match r {
            Ok(()) => self.accepted.saturating_record(us),
            Err(code) => *self.errors.entry(code.clone()).or_insert(0) += 1,
        }
    }

    pub fn ok(&self) -> u64 {
        self.hist.len() - self.errors.values().sum::<u64>()
    }

    pub fn throughput(&self) -> f64 {
        self.per_second(self.hist.len())
    }

    pub fn accepted_throughput(&self) -> f64 {
        self.per_second(self.accepted.len())
    }

    fn per_second(&self, n: u64) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 { n as f64 / s } else { 0.0 }
    }

    /// Percentile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// Percentile of the successful requests, in milliseconds.
    pub fn accepted_ms(&self, q: f64) -> f64 {
        self.accepted.value_at_quantile(q) as f64 / 1000.0
    }
}

/// Run `call(i)` for i = 0.. in the given shape until `requests` were sent
/// or `duration` passed; returns the latency statistics.
pub async fn run<F>(shape: &Shape, call: F) -> Stats
where
    F: Fn(u64) -> CallFuture + Send + Sync + 'static,
{
    let call = Arc::new(call);
    let stats = Arc::new(Mutex::new(Stats::new()));
    let start = Instant::now();
    let deadline = start + shape.duration;
    match shape.mode {
        Mode::Closed => {
            let next = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::new();
            for _ in 0..shape.concurrency.max(1) {
                let (call, stats, next) = (call.clone(), stats.clone(), next.clone());
                let requests = shape.requests;
                tasks.push(tokio::spawn(async move {
                    // Per-caller histogram, merged once: no lock per request.
                    let mut local = Stats::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= requests || Instant::now() >= deadline {
                            break;
                        }
                        let t = Instant::now();
                        let r = call(i).await;
                        local.record(t.elapsed(), &r);
                    }
                    merge(&stats, local);
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        }
        Mode::Open => {
            // Pacing on an OS thread: tokio's timer has 1 ms granularity,
            // which would send arrivals in bursts and charge up to 1 ms of
            // our own lateness to the server. nanosleep is good to ~0.1 ms.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
            let interval = Duration::from_secs_f64(1.0 / shape.rate.max(1e-3));
            let requests = shape.requests;
            let pacer = std::thread::spawn(move || {
                for i in 0..requests {
                    let due = start + interval.mul_f64(i as f64);
                    if due >= deadline {
                        break;
                    }
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    if tx.send((i, due)).is_err() {
                        break;
                    }
                }
            });
            let sem = Arc::new(Semaphore::new(shape.concurrency.max(1)));
            let mut tasks = tokio::task::JoinSet::new();
            while let Some((i, due)) = rx.recv().await {
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    break;
                };
                let (call, stats) = (call.clone(), stats.clone());
                tasks.spawn(async move {
                    let r = call(i).await;
                    // From the due time, not the send time.
                    let latency = due.elapsed();
                    drop(permit);
                    if let Ok(mut s) = stats.lock() {
                        s.record(latency, &r);
                    }
                });
                while tasks.try_join_next().is_some() {}
            }
            let _ = pacer.join();
            while tasks.join_next().await.is_some() {}
        }
    }
    let elapsed = start.elapsed();
    let mut s = match Arc::try_unwrap(stats) {
        Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
        Err(arc) => {
            let mut g = arc.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *g, Stats::new())
        }
    };
    s.elapsed = elapsed;
    s
}

pub fn merge(into: &Mutex<Stats>, from: Stats) {
    let mut s = into.lock().unwrap_or_else(|p| p.into_inner());
    let _ = s.hist.add(&from.hist);
    let _ = s.accepted.add(&from.accepted);
    for (k, v) in from.errors {
        *s.errors.entry(k).or_insert(0) += v;
    }
}
