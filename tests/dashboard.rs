//! The dashboard in a real browser: the real server on the embedded store
//! with API keys configured, seeded through its HTTP/JSON API, every page
//! opened in headless Chromium (Debian's chromium and chromium-driver,
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

/// Seeds (admin) and browses (decide only) with these.
const ADMIN_KEY: &str = "dashboard-admin-key-0123456789";
const VIEW_KEY: &str = "dashboard-view-key-0123456789";

/// The Python with selenium (`$POSTERIOR_TEST_PYTHON`, set by scripts/test),
/// or `None` when skipped explicitly (`POSTERIOR_SKIP_PYTHON=1`). Neither:
/// the test fails, so a CI that forgot the browser does not pass silently.
fn test_python() -> Option<String> {
    if let Ok(python) = std::env::var("POSTERIOR_TEST_PYTHON") {
        return Some(python);
    }
    if std::env::var("POSTERIOR_SKIP_PYTHON").as_deref() == Ok("1") {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n** POSTERIOR_SKIP_PYTHON=1: the dashboard was NOT tested in a browser **\n"
        );
        return None;
    }
    panic!(
        "POSTERIOR_TEST_PYTHON is not set, so the dashboard cannot be tested in a browser: \
         run the tests via scripts/test (it installs chromium, chromium-driver and selenium \
         and sets POSTERIOR_TEST_PYTHON), or set POSTERIOR_SKIP_PYTHON=1 to skip it explicitly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_in_a_browser() {
    let Some(python) = test_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = test_config();
    cfg.store.backend = "embedded".into();
    cfg.store.path = dir.path().join("posterior.redb").display().to_string();
    cfg.auth.keys = vec![
        format!("{ADMIN_KEY}:admin,decide,report"),
        format!("{VIEW_KEY}:decide"),
    ];
    let running = posterior::server::start(cfg).await.expect("server starts");
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
