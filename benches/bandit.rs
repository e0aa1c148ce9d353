//! Hot paths of the bandit domain, in process (no gRPC, no store):
//! `cargo bench --bench bandit`.
//!
//! - choose/N: one Thompson decision over N Bernoulli arms (posterior
//!   construction from evidence + one draw per arm), as the Choose handler
//!   does it.
//! - choose_cached/N: the same decision from a cached snapshot (posteriors
//!   precomputed at refresh, `api::snapshot`): draws only, as the Choose
//!   handler does it with `bandit.choose_max_staleness_ms > 0`.
//! - choose_goal/N: choose/N through the goal-aware draw the Choose handler
//!   uses (`thompson::choose_for` with the experiment's goal, unknown at
//!   compile time), MAXIMIZE and MINIMIZE: the orientation must cost nothing
//!   measurable next to choose/N.
//! - choose/10_arms_top_two_floors_holdback: the same over 10 arms under
//!   top-two Thompson (β = 0.5), a 10 % holdback and 5 % floors.
//! - choose/10_arms_thompson_fn: the pre-allocation path
//!   (`thompson::choose`), kept as the baseline the above are compared to.
//! - choose/10_arms_with_propensity: choose/10_arms plus the lookup of
//!   the decision's propensity in the snapshot's table, as Choose does it.
//! - choose/10_arms_with_fresh_table: choose/10_arms computing the table
//!   too, as every Choose does with the cache off (bound 0).
//! - propensity_table/…: one snapshot's propensity table, computed at
//!   refresh off the async threads, never per Choose: plain Thompson by
//!   quadrature (`thompson`) and by Monte Carlo (`thompson_monte_carlo`,
//!   10,000 joint draws, the pre-quadrature cost); top-two by Monte Carlo.
//! - reward_update: validating a reward and applying it with decay.
//! - token sign / verify: the decision id's HMAC.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use posterior::bandit::allocation::{self, Allocation};
use posterior::bandit::{
    Decision, DecisionSigner, Evidence, Model, Policy, Posterior, Prior, RewardGoal, thompson,
};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn evidence(n: usize) -> Vec<Evidence> {
    (0..n)
        .map(|i| Evidence {
            a: 10.0 + i as f64,
            b: 500.0 + 3.0 * i as f64,
            c: 0.0,
            count: 510 + 4 * i as u64,
            t_ms: 0,
        })
        .collect()
}

/// The posteriors from evidence, as the Choose handler builds them.
fn refill(posteriors: &mut Vec<Posterior>, ev: &[Evidence]) {
    posteriors.clear();
    posteriors.extend(
        ev.iter()
            .map(|e| Posterior::new(&Prior::DEFAULT_BETA, &e.at(1_000, 0))),
    );
}

fn bench_choose(c: &mut Criterion) {
    let mut g = c.benchmark_group("choose");
    for n in [2usize, 10, 100, 2_000] {
        let ev = evidence(n);
        let candidates: Vec<usize> = (0..n).collect();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut posteriors = Vec::with_capacity(n);
        g.bench_function(format!("{n}_arms"), |b| {
            b.iter(|| {
                refill(&mut posteriors, &ev);
                black_box(Allocation::THOMPSON.choose(&posteriors, &candidates, &mut rng))
            })
        });
    }
    let n = 10;
    let ev = evidence(n);
    let candidates: Vec<usize> = (0..n).collect();
    let mut rng = SmallRng::seed_from_u64(1);
    let mut posteriors = Vec::with_capacity(n);
    g.bench_function(format!("{n}_arms_thompson_fn"), |b| {
        b.iter(|| {
            refill(&mut posteriors, &ev);
            black_box(thompson::choose(&posteriors, &candidates, &mut rng))
        })
    });
    let table: std::sync::Arc<[f64]> = {
        let ps: Vec<Posterior> = ev
            .iter()
            .map(|e| Posterior::new(&Prior::DEFAULT_BETA, &e.at(1_000, 0)))
            .collect();
        Allocation::THOMPSON
            .propensities(&ps, &candidates, allocation::PROPENSITY_DRAWS, &mut rng)
            .into()
    };
    g.bench_function(format!("{n}_arms_with_propensity"), |b| {
        b.iter(|| {
            refill(&mut posteriors, &ev);
            let arm = Allocation::THOMPSON.choose(&posteriors, &candidates, &mut rng);
            black_box(arm.map(|i| (i, table.get(i).copied().unwrap_or(0.0))))
        })
    });
    g.bench_function(format!("{n}_arms_with_fresh_table"), |b| {
        b.iter(|| {
            refill(&mut posteriors, &ev);
            let t = Allocation::THOMPSON.propensities(
                &posteriors,
                &candidates,
                allocation::PROPENSITY_DRAWS,
                &mut rng,
            );
            let arm = Allocation::THOMPSON.choose(&posteriors, &candidates, &mut rng);
            black_box(arm.map(|i| (i, t[i])))
        })
    });
    let full = full_design();
    g.bench_function(format!("{n}_arms_top_two_floors_holdback"), |b| {
        b.iter(|| {
            refill(&mut posteriors, &ev);
            black_box(full.choose(&posteriors, &candidates, &mut rng))
        })
    });
    g.finish();
}

/// Top-two (β = 0.5), arm 0 the control with a 10 % holdback, 5 % floors.
fn full_design() -> Allocation {
    Allocation {
        goal: RewardGoal::Maximize,
        policy: Policy::TopTwoThompson { beta: 0.5 },
        control: Some(0),
        control_share: 0.1,
        min_share: 0.05,
    }
}

fn bench_propensity(c: &mut Criterion) {
    let mut g = c.benchmark_group("propensity_table");
    g.sample_size(10);
    let n = 10;
    let posteriors: Vec<Posterior> = evidence(n)
        .iter()
        .map(|e| Posterior::new(&Prior::DEFAULT_BETA, e))
        .collect();
    let candidates: Vec<usize> = (0..n).collect();
    let mut rng = SmallRng::seed_from_u64(1);
    for (name, a) in [
        ("thompson", Allocation::THOMPSON),
        ("top_two_floors_holdback", full_design()),
    ] {
        g.bench_function(format!("{n}_arms_{name}"), |b| {
            b.iter(|| {
                black_box(a.propensities(
                    &posteriors,
                    &candidates,
                    allocation::PROPENSITY_DRAWS,
                    &mut rng,
                ))
            })
        });
    }
    g.bench_function(format!("{n}_arms_thompson_monte_carlo"), |b| {
        b.iter(|| {
            black_box(Allocation::THOMPSON.propensities_by(
                allocation::Method::MonteCarlo,
                &posteriors,
                &candidates,
                allocation::PROPENSITY_DRAWS,
                &mut rng,
            ))
        })
    });
    g.finish();
}

fn bench_choose_goal(c: &mut Criterion) {
    let mut g = c.benchmark_group("choose_goal");
    for (label, goal) in [("max", RewardGoal::Maximize), ("min", RewardGoal::Minimize)] {
        let n = 10;
        let ev = evidence(n);
        let candidates: Vec<usize> = (0..n).collect();
        let mut rng = SmallRng::seed_from_u64(1);
        let mut posteriors = Vec::with_capacity(n);
        g.bench_function(format!("{n}_arms_{label}"), |b| {
            b.iter(|| {
                refill(&mut posteriors, &ev);
                black_box(thompson::choose_for(
                    black_box(goal),
                    &posteriors,
                    &candidates,
                    &mut rng,
                ))
            })
        });
    }
    g.finish();
}

fn bench_choose_cached(c: &mut Criterion) {
    let mut g = c.benchmark_group("choose_cached");
    for n in [2usize, 10, 100, 2_000] {
        let posteriors: Vec<Posterior> = evidence(n)
            .iter()
            .map(|e| Posterior::new(&Prior::DEFAULT_BETA, e))
            .collect();
        let candidates: Vec<usize> = (0..n).collect();
        let mut rng = SmallRng::seed_from_u64(1);
        g.bench_function(format!("{n}_arms"), |b| {
            b.iter(|| black_box(Allocation::THOMPSON.choose(&posteriors, &candidates, &mut rng)))
        });
    }
    g.finish();
}

fn bench_reward(c: &mut Criterion) {
    let ev = Evidence::default();
    c.bench_function("reward_update", |b| {
        b.iter(|| {
            let d = Model::Bernoulli
                .delta(black_box(1.0))
                .unwrap_or(posterior::bandit::Delta {
                    a: 0.0,
                    b: 0.0,
                    c: 0.0,
                    count: 1,
                });
            black_box(ev.apply(d, black_box(5_000), 3_600_000))
        })
    });
}

fn bench_token(c: &mut Criterion) {
    let s = DecisionSigner::new(b"bench key of reasonable length!!");
    let d = Decision {
        arm: 3,
        issued_ms: 1_732_000_000_000,
        nonce: 0x1234_5678_9abc_def0,
    };
    let t = s.sign("checkout-button", 42, &d);
    c.bench_function("token_sign", |b| {
        b.iter(|| black_box(s.sign(black_box("checkout-button"), 42, &d)))
    });
    c.bench_function("token_verify", |b| {
        b.iter(|| black_box(s.verify(black_box("checkout-button"), 42, &t)))
    });
}

criterion_group!(
    benches,
    bench_choose,
    bench_choose_goal,
    bench_choose_cached,
    bench_propensity,
    bench_reward,
    bench_token
);
criterion_main!(benches);
