//! The dashboard in a real browser: the real server on the embedded store
//! with API keys configured, seeded with a day of history (1,440 points,
//! written to the store file before the server starts) and through its
//! HTTP/JSON API (rewards, a study with a constraint through 30
//! Suggest/Observe rounds), every page opened in headless Chromium (Debian's chromium and chromium-driver,
//! driven by selenium from `scripts/check_dashboard.py`).
//!
//! The script fails on any console error, any failed request, any chart
//! that did not draw (a canvas without data-coloured pixels, an SVG figure
//! without data elements), an expected chart that is missing, or a chart
//! without a title or axis labels; it writes a full-page screenshot per page
//! to `target/dashboard-screenshots/`. It browses with a key that has the
//! `decide` scope only (what the dashboard needs), kept in session storage as
//! the page's key box keeps it; the page itself loads without a key.

mod common;

use common::test_config;
use posterior::bandit::history::{ArmPoint, HistoryPoint};
use posterior::bandit::{Design, Model, NewExperiment};
use posterior::store::Store;
use posterior::store::embedded::EmbeddedStore;
use statrs::distribution::{Beta, ContinuousCDF};

/// Seeds (admin) and browses (decide only) with these.
const ADMIN_KEY: &str = "dashboard-admin-key-0123456789";
const VIEW_KEY: &str = "dashboard-view-key-0123456789";

/// A day of one-minute points.
const HISTORY_POINTS: i64 = 1_440;
const MINUTE_MS: i64 = 60_000;

/// Create `checkout-button` in the store file at `path` and give it a day of
/// synthetic history (one point a minute up to now) through the store's
/// own `append_history`, as the recorder would have: rewards accumulate at
/// each arm's rate, mean and 95% interval are the Beta(1 + successes,
/// 1 + failures) posterior's, traffic drifts towards the best arm. The
/// server is started on the file afterwards.
async fn seed_history(path: &std::path::Path) {
    let store = EmbeddedStore::open(path).expect("open the store file");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let start_ms = (now_ms / MINUTE_MS - HISTORY_POINTS) * MINUTE_MS;
    let mut def = NewExperiment {
        name: "checkout-button".into(),
        model: Model::Bernoulli,
        prior: None,
        half_life_seconds: 0.0,
        arms: vec!["control".into(), "blue".into(), "green".into()],
        design: Design {
            control_arm: Some("control".into()),
            description: "Which checkout button converts best".into(),
            ..Design::default()
        },
    }
    .into_def(7)
    .expect("a valid experiment");
    def.created_ms = start_ms;
    store
        .create_experiment(&def)
        .await
        .expect("create the experiment");
    // Conversion rates, and the traffic share each arm ends the day with.
    let rates = [0.10, 0.13, 0.08];
    let final_share = [0.15, 0.75, 0.10];
    let mut successes = [0.0f64; 3];
    let mut rewards = [0u64; 3];
    for i in 0..HISTORY_POINTS {
        let progress = i as f64 / HISTORY_POINTS as f64;
        let mut arms = Vec::new();
        for (k, name) in ["control", "blue", "green"].into_iter().enumerate() {
            let share = (1.0 - progress) / 3.0 + progress * final_share[k];
            let decisions = (60.0 * share).round() as u64;
            rewards[k] += decisions / 2;
            successes[k] += rates[k] * (decisions / 2) as f64;
            let (a, b) = (1.0 + successes[k], 1.0 + rewards[k] as f64 - successes[k]);
            let beta = Beta::new(a, b).expect("positive parameters");
            arms.push(ArmPoint {
                name: name.into(),
                rewards: rewards[k],
                evidence: rewards[k] as f64,
                mean: a / (a + b),
                lower: beta.inverse_cdf(0.025),
                upper: beta.inverse_cdf(0.975),
                // Not the Monte Carlo of the recorder: a curve from even
                // odds to the end of day's shares is enough to draw.
                prob_best: share,
                decisions,
            });
        }
        let point = HistoryPoint {
            time_ms: start_ms + i * MINUTE_MS,
            arms,
        };
        store
            .append_history("checkout-button", &point, HISTORY_POINTS as usize)
            .await
            .expect("append a history point");
    }
    let stored = store
        .history("checkout-button", None)
        .await
        .expect("read the history back");
    assert_eq!(stored.len(), HISTORY_POINTS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_in_a_browser() {
    let Some(python) =
        common::test_python("the dashboard in a browser (scripts/check_dashboard.py)")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("posterior.redb");
    seed_history(&path).await;
    let mut cfg = test_config();
    cfg.store.backend = "embedded".into();
    cfg.store.path = path.display().to_string();
    cfg.auth.keys = vec![
        format!("{ADMIN_KEY}:admin,decide,report"),
        format!("{VIEW_KEY}:decide"),
    ];
    // The seeding store's writer thread lets go of the file just after the
    // store is dropped, not at the drop itself: until then the file is
    // still locked, which is the one error worth another try.
    let mut tries = 0;
    let running = loop {
        match posterior::server::start(cfg.clone()).await {
            Ok(r) => break r,
            Err(e) if e.contains("already open") && tries < 500 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(e) => panic!("server starts: {e}"),
        }
    };
    let url = format!("http://{}", running.addr);

    let shots = concat!(env!("CARGO_MANIFEST_DIR"), "/target/dashboard-screenshots");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/check_dashboard.py");
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            std::process::Command::new(&python)
                .args([script, &url, ADMIN_KEY, VIEW_KEY, shots])
                .output()
                .unwrap_or_else(|e| panic!("running {python} {script}: {e}"))
        }
    })
    .await
    .expect("browser check finishes");
    // Its report either way: which charts drew and how much, or what failed.
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "the dashboard failed in the browser ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    running.stop().await.expect("server stops");
}
