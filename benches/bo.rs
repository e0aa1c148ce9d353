//! Suggest with pending trials, in process (no gRPC, no store):
//! `cargo bench --bench bo`.
//!
//! - suggest_6d_100_completed/0_pending: one Suggest (count 1) on Hartmann6
//!   (6-D) with 100 completed trials and none pending, warm-started from the
//!   stored hyperparameters as the service does.
//! - suggest_6d_100_completed/64_pending: the same with 64 pending trials
//!   (suggested, not yet observed), which the model takes into account as
//!   fantasies. The target (issue 12) is at most 3x the time without pending
//!   trials; the ratio of the two lines of one run is the figure.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use posterior::bo::{FitState, Goal, Observation, ParamValue, Point, StudySpec, suggest, testfns};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// A uniformly random configuration of the 6-D unit cube.
fn random_config(rng: &mut StdRng) -> Point {
    (0..6)
        .map(|i| (format!("x{i}"), ParamValue::Number(rng.random::<f64>())))
        .collect()
}

fn bench_pending(c: &mut Criterion) {
    let f = testfns::hartmann6();
    let spec = StudySpec::new(f.space.clone(), Goal::Minimize, 7);
    let mut rng = StdRng::seed_from_u64(12);
    let observations: Vec<Observation> = (0..100)
        .map(|_| {
            let config = random_config(&mut rng);
            Observation {
                value: Some(f.eval(&config)),
                config,
                metrics: Default::default(),
                failed: false,
            }
        })
        .collect();
    let pending: Vec<Point> = (0..64).map(|_| random_config(&mut rng)).collect();
    // The stored hyperparameters of an earlier Suggest: both cases start
    // from the same warm state, as consecutive Suggests of a study do.
    let warm: FitState = suggest(&spec, &observations, &[], 1, None, 1)
        .expect("suggest")
        .fit
        .expect("a fit");

    let mut g = c.benchmark_group("suggest_6d_100_completed");
    g.sample_size(20).measurement_time(Duration::from_secs(20));
    for n_pending in [0usize, 64] {
        let p = &pending[..n_pending];
        g.bench_function(format!("{n_pending}_pending"), |b| {
            b.iter(|| {
                black_box(suggest(&spec, &observations, p, 1, Some(&warm), 3).expect("suggest"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_pending);
criterion_main!(benches);
