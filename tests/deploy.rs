//! The deployment files (deploy/) against the code: scripts/check_deploy.py
//! checks probe paths, ports, config keys, env names and the systemd unit's
//! directives against the Rust sources (it says what, in its docstring);
//! this test runs it with the test Python (PyYAML) and then feeds the
//! Kubernetes ConfigMap's TOML, with each variant's environment (the
//! Deployment's env, Secret placeholders resolved), through the real config
//! parser and checker: what a pod would run on must be a valid config.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use posterior::config::{Config, StoreBackend};

/// `NAME=VALUE` lines as written by check_deploy.py --out.
fn read_env(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn deployment_files_agree_with_the_code_and_their_config_is_valid() {
    let Some(python) = common::test_python("the deployment files (scripts/check_deploy.py)") else {
        return;
    };
    let root = env!("CARGO_MANIFEST_DIR");
    let out = tempfile::tempdir().expect("temp dir");
    let run = Command::new(&python)
        .arg(format!("{root}/scripts/check_deploy.py"))
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run scripts/check_deploy.py");
    assert!(
        run.status.success(),
        "scripts/check_deploy.py failed:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    let text = std::fs::read_to_string(out.path().join("posterior.toml")).expect("ConfigMap TOML");
    for (variant, expected_store) in [
        (
            "base.env",
            StoreBackend::Embedded {
                path: "/var/lib/posterior/posterior.redb".into(),
            },
        ),
        (
            "redis.env",
            StoreBackend::Redis {
                url: "redis://redis:6379/0".into(),
            },
        ),
    ] {
        let env = read_env(&out.path().join(variant));
        let mut cfg = Config::from_toml(&text).expect("the ConfigMap's TOML parses");
        cfg.apply_env(|k| env.get(k).cloned())
            .unwrap_or_else(|e| panic!("{variant}: environment rejected: {e}"));
        let valid = cfg
            .check()
            .unwrap_or_else(|e| panic!("{variant}: the config a pod runs on is invalid: {e}"));
        assert_eq!(valid.store, expected_store, "{variant}");
        // Reachable from outside the pod, metrics on, keys from the Secret.
        assert!(
            valid.listen.ip().is_unspecified(),
            "{variant}: {}",
            valid.listen
        );
        assert_eq!(valid.listen.port(), 50051, "{variant}");
        assert_eq!(valid.metrics.map(|m| m.port()), Some(9464), "{variant}");
        assert!(!valid.keys.is_empty(), "{variant}: no API keys");
    }
}
