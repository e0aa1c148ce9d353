//! The `posterior` binary as users and scripts run it, against the real
//! server started in process on 127.0.0.1:0 (and against servers that are
//! not posterior: silent, HTTP/1, TLS on one side only).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Backend, TestServer, test_config};
use serde_json::Value;

/// The binary with no POSTERIOR_* variables from the environment running
/// the tests: only what a test passes counts.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_posterior"));
    for v in [
        "POSTERIOR_SERVER",
        "POSTERIOR_API_KEY",
        "POSTERIOR_TIMEOUT",
        "POSTERIOR_TLS_CA",
        "POSTERIOR_TLS_CERT",
        "POSTERIOR_TLS_KEY",
    ] {
        cmd.env_remove(v);
    }
    cmd.args(args);
    cmd
}

/// Runs the binary off the runtime's threads: the server under test
/// shares the runtime.
async fn run(args: &[&str]) -> Output {
    let mut cmd = command(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run posterior"))
        .await
        .expect("join")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs, expects exit 0, returns stdout.
async fn ok(args: &[&str]) -> String {
    let o = run(args).await;
    assert!(
        o.status.success(),
        "posterior {args:?}: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs with --json, expects exit 0, parses stdout.
async fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = ok(&all).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {text}"))
}

/// Runs, expects exit status `code`, returns stderr.
async fn fails(code: i32, args: &[&str]) -> String {
    let o = run(args).await;
    assert_eq!(
        o.status.code(),
        Some(code),
        "posterior {args:?}\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stderr(&o)
}

#[tokio::test(flavor = "multi_thread")]
async fn experiment_lifecycle_as_text_and_json() {
    let s = TestServer::start(Backend::Memory).await;
    let url = s.url.as_str();

    // Empty lists say so; as JSON they are an empty list.
    assert_eq!(
        ok(&["experiment", "list", "--server", url]).await,
        "no experiments\n"
    );
    let v = json(&["experiment", "list", "--server", url]).await;
    assert_eq!(v["names"], serde_json::json!([]));
    assert_eq!(v["nextPageToken"], "");

    let out = ok(&[
        "experiment",
        "create",
        "checkout",
        "--arms",
        "blue,green,red",
        "--server",
        url,
    ])
    .await;
    assert_eq!(out, "experiment checkout created: 3 arms\n");
    // Identical re-create; flags before the subcommand work too.
    let v = json(&[
        "--server",
        url,
        "experiment",
        "create",
        "checkout",
        "--arms",
        "blue,green,red",
    ])
    .await;
    assert_eq!(v["created"], false);
    assert_eq!(v["experiment"]["name"], "checkout");
    assert_eq!(v["experiment"]["model"], "BERNOULLI");
    assert_eq!(
        v["experiment"]["arms"],
        serde_json::json!(["blue", "green", "red"])
    );
    assert_eq!(v["experiment"]["betaPrior"]["alpha"], 1.0);

    // choose → reward by decision, exactly once.
    let v = json(&["choose", "checkout", "--server", url]).await;
    let arm = v["arm"].as_str().expect("arm").to_string();
    let decision = v["decisionId"].as_str().expect("decisionId").to_string();
    assert!(["blue", "green", "red"].contains(&arm.as_str()), "{v}");
    assert!(!decision.is_empty());
    assert_eq!(v["fallback"], false);
    let text = ok(&["choose", "checkout", "--server", url]).await;
    assert!(text.starts_with("arm:         "), "{text}");
    assert!(text.contains("\ndecision_id: "), "{text}");

    let out = ok(&[
        "reward",
        "checkout",
        "--decision",
        &decision,
        "--value",
        "1",
        "--server",
        url,
    ])
    .await;
    assert_eq!(out, format!("{arm}: reward 1 applied\n"));
    let v = json(&[
        "reward",
        "checkout",
        "--decision",
        &decision,
        "--value",
        "1",
        "--server",
        url,
    ])
    .await;
    assert_eq!(v["arm"], arm.as_str());
    assert_eq!(v["duplicate"], true);
    let v = json(&[
        "reward", "checkout", "--arm", "red", "--value", "0", "--server", url,
    ])
    .await;
    assert_eq!(v, serde_json::json!({"arm": "red", "duplicate": false}));

    // show: an aligned table, and the same numbers as JSON.
    let text = ok(&[
        "experiment",
        "show",
        "checkout",
        "--threshold",
        "0.05",
        "--server",
        url,
    ])
    .await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "experiment checkout  model BERNOULLI");
    assert!(lines[1].starts_with("arm "), "{text}");
    assert!(lines[1].ends_with("P(>0.05)"), "{text}");
    let rows = &lines[2..5];
    for r in rows {
        assert_eq!(r.len(), lines[1].len(), "ragged table:\n{text}");
        assert_eq!(r.find('['), rows[0].find('['), "{text}");
    }
    assert!(rows.iter().any(|r| r.starts_with("red ")), "{text}");
    assert_eq!(lines[5], "P(best) from 10000 joint posterior draws");

    let v = json(&[
        "experiment",
        "show",
        "checkout",
        "--threshold",
        "0.05",
        "--server",
        url,
    ])
    .await;
    assert_eq!(v["probBestDraws"], 10000);
    let arms = v["arms"].as_array().expect("arms");
    assert_eq!(arms.len(), 3);
    let red = arms.iter().find(|a| a["name"] == "red").expect("red");
    // uint64 is a string in the proto3 JSON mapping.
    let expect_red = if arm == "red" { "2" } else { "1" };
    assert_eq!(red["rewards"], expect_red);
    for a in arms {
        for k in ["mean", "lower", "upper", "probBest", "probAboveThreshold"] {
            assert!(a[k].is_f64(), "{k} in {a}");
        }
    }
    let sum: f64 = arms
        .iter()
        .map(|a| a["probBest"].as_f64().unwrap_or(0.0))
        .sum();
    assert!((sum - 1.0).abs() < 1e-9, "{v}");

    let v = json(&[
        "experiment",
        "add-arm",
        "checkout",
        "purple",
        "--server",
        url,
    ])
    .await;
    assert_eq!(v["created"], true);
    assert_eq!(
        ok(&[
            "experiment",
            "retire-arm",
            "checkout",
            "red",
            "--server",
            url
        ])
        .await,
        "arm red retired\n"
    );
    let v = json(&["experiment", "show", "checkout", "--server", url]).await;
    assert_eq!(v["experiment"]["retiredArms"], serde_json::json!(["red"]));
    assert!(
        ok(&["experiment", "show", "checkout", "--server", url])
            .await
            .contains("red (retired)")
    );

    assert_eq!(
        ok(&["experiment", "list", "--server", url]).await,
        "checkout\n"
    );
    let v = json(&["experiment", "list", "--server", url]).await;
    assert_eq!(v["names"], serde_json::json!(["checkout"]));

    // An error answered by the server: exit 1, its code and message.
    let err = fails(1, &["experiment", "show", "nope", "--server", url]).await;
    assert!(err.starts_with("error: NotFound"), "{err}");

    let v = json(&["experiment", "delete", "checkout", "--server", url]).await;
    assert_eq!(v, serde_json::json!({}));
    assert_eq!(
        ok(&["experiment", "list", "--server", url]).await,
        "no experiments\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn study_lifecycle_as_text_and_json() {
    let s = TestServer::start(Backend::Embedded).await;
    let url = s.url.as_str();
    let space = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/serverless.toml");

    assert_eq!(
        ok(&["study", "list", "--server", url]).await,
        "no studies\n"
    );
    let v = json(&["study", "list", "--server", url]).await;
    assert_eq!(v["names"], serde_json::json!([]));

    let v = json(&["study", "create", "fn", "--space", space, "--server", url]).await;
    assert_eq!(v["created"], true);
    assert_eq!(v["study"]["objective"]["goal"], "MINIMIZE");
    assert_eq!(v["study"]["seed"], "7");
    assert_eq!(v["study"]["parameters"][0]["int"]["low"], "128");

    let v = json(&["suggest", "fn", "--count", "3", "--server", url]).await;
    let trials = v["trials"].as_array().expect("trials");
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[0]["trialId"], "1");
    assert_eq!(trials[0]["state"], "PENDING");
    assert!(trials[0]["params"]["memory_mb"]["number"].is_f64(), "{v}");
    assert!(trials[0]["params"]["arch"]["category"].is_string(), "{v}");

    assert_eq!(
        ok(&[
            "observe",
            "fn",
            "--trial",
            "1",
            "--value",
            "40.5",
            "--metric",
            "p95_ms=900",
            "--server",
            url,
        ])
        .await,
        "trial 1 COMPLETED\n"
    );
    let v = json(&["observe", "fn", "--trial", "2", "--failed", "--server", url]).await;
    assert_eq!(v["trial"]["state"], "FAILED");
    assert!(v["trial"].get("value").is_none(), "{v}");

    let text = ok(&["study", "show", "fn", "--server", url]).await;
    assert!(
        text.starts_with("study fn  MINIMIZE cost_uusd  (3 trials)\n"),
        "{text}"
    );
    assert!(text.contains("  constraint: p95_ms <= 1500\n"), "{text}");
    assert!(
        text.contains("best observed: trial 1 cost_uusd=40.5"),
        "{text}"
    );
    let v = json(&["study", "show", "fn", "--server", url]).await;
    assert_eq!(v["trials"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["best"]["trialId"], "1");
    assert_eq!(v["best"]["value"], 40.5);
    assert_eq!(v["best"]["metrics"]["p95_ms"], 900.0);
    assert_eq!(v["exhausted"], false);

    assert_eq!(ok(&["study", "list", "--server", url]).await, "fn\n");
    assert_eq!(
        ok(&["study", "delete", "fn", "--server", url]).await,
        "study fn deleted\n"
    );
}

/// A server that accepts connections and never says a word.
#[tokio::test(flavor = "multi_thread")]
async fn timeout_bounds_a_server_that_never_answers() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    let t = Instant::now();
    let err = fails(
        1,
        &["experiment", "list", "--timeout", "1", "--server", &url],
    )
    .await;
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(err.contains("no answer within 1 s (--timeout)"), "{err}");
}

#[tokio::test]
async fn server_without_a_scheme_is_a_usage_error() {
    let err = fails(2, &["experiment", "list", "--server", "127.0.0.1:50051"]).await;
    assert!(
        err.contains("--server 127.0.0.1:50051: needs a scheme, e.g. http://127.0.0.1:50051"),
        "{err}"
    );
}

#[tokio::test]
async fn refused_port_says_nothing_listens() {
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let err = fails(1, &["experiment", "list", "--server", &url]).await;
    assert!(
        err.contains(&format!("nothing listens at 127.0.0.1:{port}")),
        "{err}"
    );
}

/// A web server where the gRPC server should be.
#[tokio::test(flavor = "multi_thread")]
async fn http1_server_is_not_a_posterior_server() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        }
    });
    let err = fails(1, &["experiment", "list", "--server", &url]).await;
    assert!(err.contains("not a posterior gRPC server"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_on_one_side_only_is_named() {
    // https:// to a plaintext server.
    let plain = TestServer::start(Backend::Memory).await;
    let https = plain.url.replace("http://", "https://");
    let err = fails(1, &["experiment", "list", "--server", &https]).await;
    assert!(err.contains("does not speak TLS"), "{err}");
    assert!(err.contains(&format!("use {}", plain.url)), "{err}");

    // http:// to a TLS server.
    let dir = tempfile::tempdir().expect("temp dir");
    common::make_certs(dir.path());
    let p = |f: &str| dir.path().join(f).display().to_string();
    let mut cfg = test_config();
    cfg.server.tls_cert = p("server.pem");
    cfg.server.tls_key = p("server.key");
    let tls = posterior::server::start(cfg).await.expect("TLS server");
    let http = format!("http://{}", tls.addr);
    let err = fails(1, &["experiment", "list", "--server", &http]).await;
    assert!(err.contains("speaks TLS: use https://"), "{err}");

    // And right: https with the CA.
    let https = format!("https://localhost:{}", tls.addr.port());
    let out = ok(&[
        "experiment",
        "list",
        "--server",
        &https,
        "--tls-ca",
        &p("ca.pem"),
    ])
    .await;
    assert_eq!(out, "no experiments\n");
    tls.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_is_sent() {
    let mut cfg = test_config();
    cfg.auth.keys = vec!["sesame-0123456789:admin,decide,report".into()];
    let s = posterior::server::start(cfg).await.expect("server");
    let url = format!("http://{}", s.addr);
    let err = fails(1, &["experiment", "list", "--server", &url]).await;
    assert!(err.contains("Unauthenticated"), "{err}");
    let out = ok(&[
        "experiment",
        "list",
        "--server",
        &url,
        "--api-key",
        "sesame-0123456789",
    ])
    .await;
    assert_eq!(out, "no experiments\n");
    s.stop().await.expect("stop");
}

/// `posterior experiment show X | head -1`: the reader goes away early.
/// Rust's println! would panic on the closed pipe; the CLI exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn closed_output_pipe_is_a_clean_exit() {
    let s = TestServer::start(Backend::Memory).await;
    // A table bigger than a pipe's buffer (64 KiB), so writing must block
    // and then fail once the reader has gone.
    let arms: Vec<String> = (0..1500)
        .map(|i| format!("arm-with-a-rather-long-name-{i:05}"))
        .collect();
    ok(&[
        "experiment",
        "create",
        "wide",
        "--arms",
        &arms.join(","),
        "--server",
        &s.url,
    ])
    .await;

    let mut cmd = command(&["experiment", "show", "wide", "--server", &s.url]);
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("first line");
        // The reader is dropped here: like `head -1` exiting.
        assert_eq!(first, "experiment wide  model BERNOULLI\n");
        child.wait_with_output().expect("wait")
    })
    .await
    .expect("join");
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));

    // A pipe already closed before the first write, deterministically.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd = command(&["experiment", "list", "--server", &s.url]);
    cmd.stdout(writer);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[tokio::test]
async fn observe_failed_with_a_value_is_refused() {
    let err = fails(
        2,
        &["observe", "fn", "--trial", "1", "--failed", "--value", "1"],
    )
    .await;
    assert!(err.contains("cannot be used with"), "{err}");
}

/// Every subcommand, positional argument and flag has a help text, and the
/// exit statuses are documented.
#[test]
fn help_is_complete() {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            if id != "help" && id != "version" && a.get_help().is_none() {
                missing.push(format!("{path} {id}"));
            }
        }
        for sc in cmd.get_subcommands() {
            let p = format!("{path} {}", sc.get_name());
            if sc.get_about().is_none() {
                missing.push(p.clone());
            }
            walk(sc, &p, missing);
        }
    }
    let mut cmd = posterior::cli::Cli::command();
    cmd.build();
    let mut missing = Vec::new();
    walk(&cmd, "posterior", &mut missing);
    assert!(missing.is_empty(), "no help text: {missing:?}");

    let o = command(&["--help"]).output().expect("run");
    assert!(o.status.success());
    let help = stdout(&o);
    assert!(help.contains("Exit status:"), "{help}");
    for code in ["  0  ", "  1  ", "  2  "] {
        assert!(help.contains(code), "{help}");
    }
    for sub in [
        &["experiment", "--help"][..],
        &["experiment", "create", "--help"],
        &["study", "show", "--help"],
        &["observe", "--help"],
    ] {
        let o = command(sub).output().expect("run");
        assert!(o.status.success(), "{sub:?}");
        assert!(stdout(&o).contains("--timeout <SECONDS>"), "{sub:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reward_aggregate_counts_once_per_request_id() {
    let s = TestServer::start(Backend::Memory).await;
    let url = s.url.as_str();
    ok(&[
        "experiment",
        "create",
        "canary",
        "--arms",
        "baseline,candidate",
        "--server",
        url,
    ])
    .await;
    let agg = |id: &'static str| {
        [
            "experiment",
            "reward-aggregate",
            "canary",
            "--arm",
            "candidate",
            "--count",
            "412",
            "--sum",
            "9",
            "--request-id",
            id,
            "--server",
            url,
        ]
    };
    assert_eq!(
        ok(&agg("m-12:00")).await,
        "candidate: 412 outcomes (sum 9) applied, request m-12:00\n"
    );
    let v = json(&agg("m-12:00")).await;
    assert_eq!(
        v,
        serde_json::json!({"arm": "candidate", "duplicate": true})
    );
    // Without --request-id: a fresh id each run, printed.
    let out = ok(&[
        "experiment",
        "reward-aggregate",
        "canary",
        "--arm",
        "baseline",
        "--count",
        "400",
        "--sum",
        "2",
        "--server",
        url,
    ])
    .await;
    assert!(
        out.starts_with("baseline: 400 outcomes (sum 2) applied, request cli-"),
        "{out}"
    );
    let v = json(&["experiment", "show", "canary", "--server", url]).await;
    let rewards: Vec<u64> = v["arms"]
        .as_array()
        .expect("arms")
        .iter()
        // uint64 as a string, as in the proto3 JSON mapping.
        .map(|a| {
            a["rewards"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(rewards, [400, 412]);
    // Bad input: the server's message names the field; exit 1.
    let err = fails(
        1,
        &[
            "experiment",
            "reward-aggregate",
            "canary",
            "--arm",
            "baseline",
            "--count",
            "10",
            "--sum",
            "11",
            "--server",
            url,
        ],
    )
    .await;
    assert!(err.contains("sum:"), "{err}");
}

/// Rewards over every arm, as `experiment show --json` gives them (uint64
/// as a string, as in the proto3 JSON mapping).
async fn total_rewards(url: &str, experiment: &str) -> u64 {
    let v = json(&["experiment", "show", experiment, "--server", url]).await;
    v["arms"]
        .as_array()
        .expect("arms")
        .iter()
        .map(|a| {
            a["rewards"]
                .as_str()
                .and_then(|r| r.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// `experiment reward-batch`: JSON lines from a file, 1,000 per call (2,500
/// lines make three calls); decision ids count once however often the file
/// is sent again; a refused line is reported by number with exit 1 while the
/// other lines still apply; a malformed line is a usage error (exit 2)
/// before anything is sent.
#[tokio::test(flavor = "multi_thread")]
async fn reward_batch_sends_json_lines_exactly_once() {
    let s = TestServer::start(Backend::Memory).await;
    let url = s.url.as_str();
    ok(&[
        "experiment",
        "create",
        "b",
        "--arms",
        "x,y",
        "--server",
        url,
    ])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut lines = Vec::new();
    for i in 0..2_500 {
        if i % 5 == 0 {
            let v = json(&["choose", "b", "--server", url]).await;
            let id = v["decisionId"].as_str().expect("decisionId").to_string();
            lines.push(serde_json::json!({"decisionId": id, "value": 1}).to_string());
        } else {
            let arm = if i % 2 == 0 { "x" } else { "y" };
            lines.push(serde_json::json!({"arm": arm, "value": 0}).to_string());
        }
    }
    let by_id: Vec<String> = lines.iter().step_by(5).cloned().collect();
    let all = dir.path().join("all.jsonl");
    std::fs::write(&all, lines.join("\n")).expect("write");
    let file = all.to_str().expect("utf-8 path");
    let out = ok(&[
        "experiment",
        "reward-batch",
        "b",
        "--file",
        file,
        "--server",
        url,
    ])
    .await;
    assert_eq!(
        out,
        "2500 applied, 0 duplicate (already counted), 0 refused\n"
    );

    // The decision-id lines again: all duplicates, nothing counted twice.
    let again = dir.path().join("again.jsonl");
    std::fs::write(&again, by_id.join("\n")).expect("write");
    let v = json(&[
        "experiment",
        "reward-batch",
        "b",
        "--file",
        again.to_str().expect("utf-8 path"),
        "--server",
        url,
    ])
    .await;
    assert_eq!(v["applied"], 0, "{v}");
    assert_eq!(v["duplicates"], 500, "{v}");
    let total = total_rewards(url, "b").await;
    assert_eq!(total, 2_500);

    // One bad line among good ones: it alone is refused, named by line.
    let mixed = dir.path().join("mixed.jsonl");
    std::fs::write(
        &mixed,
        "{\"arm\": \"x\", \"value\": 1}\n{\"arm\": \"nope\", \"value\": 1}\n{\"arm\": \"y\", \"value\": 1}\n",
    )
    .expect("write");
    let o = run(&[
        "experiment",
        "reward-batch",
        "b",
        "--file",
        mixed.to_str().expect("utf-8 path"),
        "--server",
        url,
    ])
    .await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("line 2: NOT_FOUND "), "{text}");
    assert!(
        text.ends_with("2 applied, 0 duplicate (already counted), 1 refused\n"),
        "{text}"
    );

    // Malformed JSON: usage error naming the line, nothing sent.
    let broken = dir.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"arm\": \"x\", \"value\": 1}\n{\"arm\": \n").expect("write");
    let err = fails(
        2,
        &[
            "experiment",
            "reward-batch",
            "b",
            "--file",
            broken.to_str().expect("utf-8 path"),
            "--server",
            url,
        ],
    )
    .await;
    assert!(err.contains("line 2"), "{err}");
    let total = total_rewards(url, "b").await;
    assert_eq!(total, 2_502, "the broken file applied nothing");
}

/// `study show` of a study with several objectives prints the front, each
/// objective's value, the hypervolume and its reference point.
#[tokio::test(flavor = "multi_thread")]
async fn study_show_prints_the_pareto_front() {
    use posterior::pb;
    let s = TestServer::start(Backend::Memory).await;
    let url = s.url.as_str();
    let mut c = pb::optimizer_client::OptimizerClient::connect(s.url.clone())
        .await
        .expect("connect");
    let objective = |name: &str, goal: pb::Goal| pb::Objective {
        name: name.into(),
        goal: goal as i32,
    };
    c.create_study(pb::CreateStudyRequest {
        name: "mo".into(),
        parameters: vec![pb::Parameter {
            name: "x".into(),
            kind: Some(pb::parameter::Kind::Float(pb::FloatRange {
                low: 0.0,
                high: 1.0,
                log: false,
                step: 0.0,
            })),
        }],
        objectives: vec![
            objective("cost", pb::Goal::Minimize),
            objective("speed", pb::Goal::Maximize),
        ],
        reference_point: vec![10.0, 0.0],
        ..Default::default()
    })
    .await
    .expect("create");
    // Trial 3 is dominated by trial 1 (more cost, less speed).
    for (x, cost, speed) in [(0.1, 1.0, 5.0), (0.2, 4.0, 8.0), (0.3, 2.0, 4.0)] {
        c.add_trial(pb::AddTrialRequest {
            study: "mo".into(),
            params: [(
                "x".to_string(),
                pb::Value {
                    kind: Some(pb::value::Kind::Number(x)),
                },
            )]
            .into(),
            metrics: [("cost".to_string(), cost), ("speed".to_string(), speed)].into(),
            ..Default::default()
        })
        .await
        .expect("add trial");
    }
    let text = ok(&["study", "show", "mo", "--server", url]).await;
    assert!(
        text.starts_with("study mo  MINIMIZE cost, MAXIMIZE speed  (3 trials)\n"),
        "{text}"
    );
    assert!(text.contains("pareto front: 2 trials\n"), "{text}");
    // Against (10, 0): boxes 9 x 5 and 6 x 8 overlap in 6 x 5: 45 + 48 - 30.
    assert!(
        text.contains("hypervolume: 63.000000  (reference point 10, 0)\n"),
        "{text}"
    );
    let v = json(&["study", "show", "mo", "--server", url]).await;
    let ids: Vec<&Value> = v["paretoFront"]
        .as_array()
        .expect("paretoFront")
        .iter()
        .map(|t| &t["trialId"])
        .collect();
    assert_eq!(ids, [&Value::from("1"), &Value::from("2")], "{v}");
    assert_eq!(v["hypervolume"], 63.0);
    assert_eq!(v["study"]["objectives"][1]["goal"], "MAXIMIZE");
}

/// Known prices from the CLI: `study create` from the example space file
/// with a CSV catalog, `observe` with a duration and no --value, and
/// `study show` with the cost ($0.34/h c5.2xlarge or whichever type was
/// suggested, × 1,830,000 ms / 3,600,000, computed here from the catalog).
/// A plain study still needs --value.
#[tokio::test(flavor = "multi_thread")]
async fn cost_model_study_from_a_catalog() {
    let s = TestServer::start(Backend::Memory).await;
    let url = s.url.as_str();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let v = json(&[
        "study",
        "create",
        "job",
        "--space",
        &format!("{dir}/batch_job.toml"),
        "--server",
        url,
    ])
    .await;
    assert_eq!(v["study"]["costModel"]["kind"], "INSTANCE_HOURS", "{v}");
    let cat = &v["study"]["parameters"][1]["categorical"];
    assert_eq!(cat["values"].as_array().map(Vec::len), Some(14), "{v}");
    let v = json(&["suggest", "job", "--server", url]).await;
    let ty = v["trials"][0]["params"]["instance_type"]["category"]
        .as_str()
        .expect("instance_type")
        .to_string();
    let catalog = std::fs::read_to_string(format!("{dir}/instances.csv")).unwrap();
    let price: f64 = catalog
        .lines()
        .find_map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[0] == ty).then(|| cells[3].parse().unwrap())
        })
        .expect("the suggested type is in the catalog");
    let v = json(&[
        "observe",
        "job",
        "--trial",
        "1",
        "--metric",
        "duration_ms=1830000",
        "--server",
        url,
    ])
    .await;
    let value = v["trial"]["value"].as_f64().expect("a cost");
    let want = price * 1_830_000.0 / 3_600_000.0;
    assert!((value - want).abs() <= 1e-12 * want, "{value} vs {want}");
    let show = ok(&["study", "show", "job", "--server", url]).await;
    assert!(show.contains("cost model: INSTANCE_HOURS"), "{show}");
    assert!(show.contains(&format!("{want:.6}")), "{show}");

    // Two objectives, cost and p95, from the example file: the CLI reports
    // duration and p95 only, and the front shows the computed cost.
    let v = json(&[
        "study",
        "create",
        "two",
        "--space",
        &format!("{dir}/lambda_two_objectives.toml"),
        "--server",
        url,
    ])
    .await;
    assert_eq!(v["study"]["objectives"][0]["name"], "cost", "{v}");
    assert_eq!(v["study"]["referencePoint"][1], 10000.0, "{v}");
    let v = json(&["suggest", "two", "--server", url]).await;
    let t = &v["trials"][0]["params"];
    let mem = t["memory_mb"]["number"].as_f64().expect("memory_mb");
    let per_gb_s = match t["arch"]["category"].as_str() {
        Some("arm64") => 0.0000133334,
        _ => 0.0000166667,
    };
    let v = json(&[
        "observe",
        "two",
        "--trial",
        "1",
        "--metric",
        "duration_ms=812.4",
        "--metric",
        "p95_ms=1400",
        "--server",
        url,
    ])
    .await;
    // Billed duration rounded up to 813 ms, plus $0.20 per million requests.
    let want = mem / 1024.0 * 0.813 * per_gb_s + 0.2e-6;
    let cost = v["trial"]["metrics"]["cost"].as_f64().expect("cost");
    assert!((cost - want).abs() <= 1e-12 * want, "{cost} vs {want}");
    let show = ok(&["study", "show", "two", "--server", url]).await;
    assert!(show.contains("pareto front: 1 trial\n"), "{show}");

    let space = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/serverless.toml");
    ok(&["study", "create", "fn", "--space", space, "--server", url]).await;
    ok(&["suggest", "fn", "--server", url]).await;
    let err = fails(
        2,
        &[
            "observe", "fn", "--trial", "1", "--metric", "p95_ms=3", "--server", url,
        ],
    )
    .await;
    assert!(err.contains("--value is required"), "{err}");
}
