//! The Python client (`clients/python`, distribution `posterior-client`)
//! against this build's server: its pytest suite (which starts
//! `posterior serve` from `CARGO_BIN_EXE_posterior` on the embedded store and
//! on a private Redis, and covers every method, every exception class,
//! retries across a restart and the asyncio client), then the check that the
//! shipped gRPC stubs match `proto/` (`scripts/gen_stubs.py --check`), then
//! `mypy --strict` on the package.
//!
//! The Python is scripts/test's virtual environment (POSTERIOR_TEST_PYTHON),
//! where the package is also `pip install`ed on every run (the
//! installability check); pytest here imports the working tree
//! (`PYTHONPATH=clients/python/src`), so an edit is tested without a
//! reinstall.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run `python args...` in `dir`; fail with its output unless it succeeds.
fn run(python: &str, dir: &Path, args: &[&str], what: &str) {
    let out = Command::new(python)
        .args(args)
        .current_dir(dir)
        .env("POSTERIOR_BIN", env!("CARGO_BIN_EXE_posterior"))
        .env("PYTHONPATH", repo().join("clients/python/src"))
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    eprintln!("{what}: ok\n{}", stdout.lines().last().unwrap_or(""));
}

#[test]
fn python_client_tests_stubs_and_types() {
    let Some(python) = common::test_python(
        "the Python client (clients/python): pytest against the server, stubs, mypy --strict",
    ) else {
        return;
    };
    // Missing packages fail here with the remedy, not as an ImportError deep
    // in pytest's output.
    let probe = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m, grpc, google.protobuf, pytest, pytest_asyncio, \
             mypy, grpc_tools, mypy_protobuf, posterior_client; \
             m.version('grpc-stubs'); m.version('types-protobuf')",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        probe.status.success(),
        "{python} lacks the Python client's test dependencies (or the installed \
         posterior-client): run the tests via scripts/test, which installs them:\n{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let root = repo();
    let client = root.join("clients/python");
    run(
        &python,
        &client,
        &["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        "pytest clients/python/tests",
    );
    run(
        &python,
        &root,
        &["clients/python/scripts/gen_stubs.py", "--check"],
        "gen_stubs.py --check",
    );
    run(
        &python,
        &client,
        &[
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            "/dev/null",
            "src/posterior_client",
        ],
        "mypy --strict posterior_client",
    );
}
