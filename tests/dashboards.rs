//! The Grafana dashboard and the alert rules only use metrics the server
//! exports: a real server gets some traffic (an experiment chosen and
//! rewarded, a study suggested and observed until its GP is fitted), its
//! exporter is scraped, and every metric name in a query of
//! `config/grafana/posterior.json` and in an expression of
//! `config/prometheus/alerts.yml` must be in the scrape. Then deleting the
//! experiment and the study removes their per-arm and per-study gauges.
//!
//! Its own test binary: the metrics recorder is process-global.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use posterior::config::Config;
use posterior::pb::bandits_client::BanditsClient;
use posterior::pb::optimizer_client::OptimizerClient;
use posterior::pb::{self, parameter::Kind};

const GRAFANA: &str = include_str!("../config/grafana/posterior.json");
const ALERTS: &str = include_str!("../config/prometheus/alerts.yml");

/// Suffixes Prometheus adds to a histogram's base name.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Metric names in a PromQL expression. Every metric of ours starts with
/// `posterior` (`posterior:` for recording rules), and nothing else in an
/// expression does once string literals (label values such as
/// `rpc="posterior.v1.Bandits/Choose"`) are blanked out.
fn promql_names(expr: &str) -> BTreeSet<String> {
    let mut code = String::with_capacity(expr.len());
    let mut in_string = None;
    let mut escaped = false;
    for c in expr.chars() {
        match in_string {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    in_string = None;
                }
                code.push(' ');
            }
            None if c == '"' || c == '\'' || c == '`' => {
                in_string = Some(c);
                code.push(' ');
            }
            None => code.push(c),
        }
    }
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("posterior") {
        let before_ok = rest[..i].chars().next_back().is_none_or(|c| !ident(c));
        let tail = &rest[i..];
        let end = tail.find(|c: char| !ident(c)).unwrap_or(tail.len());
        if before_ok {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// Every PromQL string of the dashboard: panel targets' `expr`, and the
/// template variables' queries (`label_values(metric, label)`).
fn grafana_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => grafana_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| grafana_exprs(v, out)),
        _ => {}
    }
}

/// The rule file's expressions (`expr: |` blocks and one-line `expr:`) and
/// the names its recording rules define (`record:`). The file keeps that
/// layout; a YAML parser is not worth a dependency for it.
fn alert_exprs(yaml: &str) -> (Vec<String>, BTreeSet<String>) {
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let (mut exprs, mut recorded) = (Vec::new(), BTreeSet::new());
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim_start();
        if let Some(r) = t.strip_prefix("- record:") {
            recorded.insert(r.trim().to_string());
        }
        let Some(e) = t.strip_prefix("expr:") else {
            continue;
        };
        if e.trim() == "|" {
            let block: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|b| b.trim().is_empty() || indent(b) > indent(l))
                .copied()
                .collect();
            exprs.push(block.join("\n"));
        } else {
            exprs.push(e.trim().to_string());
        }
    }
    (exprs, recorded)
}

/// Metric names in a scrape (sample lines, and `# TYPE` lines).
fn scraped_names(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut samples = BTreeSet::new();
    let mut histograms = BTreeSet::new();
    for l in text.lines() {
        if let Some(t) = l.strip_prefix("# TYPE ") {
            let mut parts = t.split_whitespace();
            if let (Some(name), Some("histogram")) = (parts.next(), parts.next()) {
                histograms.insert(name.to_string());
            }
        } else if !l.starts_with('#') && !l.trim().is_empty() {
            let end = l.find(['{', ' ']).unwrap_or(l.len());
            samples.insert(l[..end].to_string());
        }
    }
    (samples, histograms)
}

/// `name` is exported: as a sample, or as a suffix of an exported histogram.
fn exported(name: &str, samples: &BTreeSet<String>, histograms: &BTreeSet<String>) -> bool {
    samples.contains(name)
        || HISTOGRAM_SUFFIXES.iter().any(|s| {
            name.strip_suffix(s)
                .is_some_and(|base| histograms.contains(base))
        })
}

/// Every metric the dashboard and the alerts use (recording rules apart:
/// Prometheus computes those from the names they use).
fn used_names() -> BTreeSet<String> {
    let dash: serde_json::Value = serde_json::from_str(GRAFANA).expect("Grafana JSON parses");
    let mut exprs = Vec::new();
    grafana_exprs(&dash, &mut exprs);
    let mut names: BTreeSet<String> = exprs.iter().flat_map(|e| promql_names(e)).collect();
    // The dashboard queries Prometheus, not recording rules it may not have.
    let recorded_in_dash: Vec<&String> = names.iter().filter(|n| n.contains(':')).collect();
    assert!(
        recorded_in_dash.is_empty(),
        "the dashboard uses recording rules: {recorded_in_dash:?}"
    );
    let (alert_exprs, recorded) = alert_exprs(ALERTS);
    for e in &alert_exprs {
        for n in promql_names(e) {
            if n.contains(':') {
                assert!(
                    recorded.contains(&n),
                    "alerts.yml uses {n}, which no rule records"
                );
            } else {
                names.insert(n);
            }
        }
    }
    names
}

#[test]
fn the_extractors_find_names_and_only_names() {
    let e = r#"sum by (rpc) (rate(posterior_grpc_requests_total{rpc=~"posterior.v1.Bandits/Choose",code="OK"}[5m])) / posterior:x:ratio_rate5m and on (experiment) max(posterior_arm_evidence)"#;
    assert_eq!(
        promql_names(e),
        BTreeSet::from([
            "posterior:x:ratio_rate5m".to_string(),
            "posterior_arm_evidence".to_string(),
            "posterior_grpc_requests_total".to_string(),
        ])
    );
    let (exprs, recorded) = alert_exprs(ALERTS);
    assert!(exprs.len() >= 16, "{} expressions", exprs.len());
    assert!(recorded.contains("posterior:rpc_errors:ratio_rate1h"));
    // The sets are not vacuous: each view's metrics are in them.
    let used = used_names();
    for n in [
        "posterior_decisions_total",
        "posterior_experiments_with_winner",
        "posterior_grpc_request_duration_seconds_bucket",
        "posterior_store_up",
        "posterior_choose_snapshot_total",
        "posterior_reward_lag_seconds_bucket",
        "posterior_reward_lag_seconds_sum",
        "posterior_arm_interval_width",
        "posterior_arm_evidence",
        "posterior_experiment_drift",
        "posterior_study_suggest_seconds_bucket",
        "posterior_study_fit_timestamp_seconds",
        "posterior_study_calibration",
    ] {
        assert!(used.contains(n), "{n} not found in the dashboard or alerts");
    }
}

/// What Grafana's import needs and the issue asks of the dashboard: the
/// three rows in order, a `datasource` variable of type datasource, and
/// every panel and query on `${datasource}` (no data source uid of the
/// machine it was made on).
#[test]
fn the_dashboard_is_importable_with_its_three_rows() {
    let d: serde_json::Value = serde_json::from_str(GRAFANA).expect("Grafana JSON parses");
    assert!(d["title"].is_string() && d["uid"].is_string());
    let panels = d["panels"].as_array().expect("panels");
    let rows: Vec<&str> = panels
        .iter()
        .filter(|p| p["type"] == "row")
        .filter_map(|p| p["title"].as_str())
        .collect();
    assert_eq!(rows, ["Executive", "On-call", "Debug"]);
    let vars = d["templating"]["list"].as_array().expect("templating");
    assert!(vars.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    let mut ids = BTreeSet::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "{title}: duplicate id"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
            assert!(t["expr"].as_str().is_some_and(|e| !e.is_empty()), "{title}");
        }
    }
}

/// The value of the first sample whose line starts with `series` (name and
/// labels exactly as rendered), NaN when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).filter(|r| r.starts_with(' ')))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

async fn scrape(port: u16) -> String {
    common::scrape_metrics(port).await
}

/// The server's configuration: memory store, exporter on a port of its
/// own choosing (port 0, reported back), per-arm gauges every second;
/// history points (hence the drift gauge) every second.
fn config() -> Config {
    Config::from_toml(
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"memory\"\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\nrefresh_seconds = 1\n\
         [history]\ninterval_seconds = 1\n",
    )
    .expect("test config parses")
}

fn float(name: &str, low: f64, high: f64) -> pb::Parameter {
    pb::Parameter {
        name: name.into(),
        kind: Some(Kind::Float(pb::FloatRange {
            low,
            high,
            log: false,
            step: 0.0,
        })),
    }
}

#[tokio::test]
async fn every_metric_of_the_dashboard_and_alerts_is_exported() {
    let running = posterior::server::start(config())
        .await
        .expect("server starts");
    let port = running.metrics_addr.expect("metrics on").port();
    let url = format!("http://{}", running.addr);
    let mut b = BanditsClient::connect(url.clone()).await.expect("connect");
    let mut o = OptimizerClient::connect(url).await.expect("connect");

    // An experiment: decisions, rewards by decision id (reward lag), a
    // duplicate, and a Choose of a missing experiment (an error code).
    b.create_experiment(pb::CreateExperimentRequest {
        name: "dash".into(),
        arms: vec!["a".into(), "b".into()],
        ..Default::default()
    })
    .await
    .expect("create experiment");
    for i in 0..20 {
        let d = b
            .choose(pb::ChooseRequest {
                experiment: "dash".into(),
                ..Default::default()
            })
            .await
            .expect("choose")
            .into_inner();
        let reward = pb::RewardRequest {
            experiment: "dash".into(),
            target: Some(pb::reward_request::Target::DecisionId(d.decision_id)),
            value: f64::from(i % 2),
        };
        b.reward(reward.clone()).await.expect("reward");
        if i == 0 {
            let dup = b.reward(reward).await.expect("duplicate").into_inner();
            assert!(dup.duplicate);
        }
    }
    let missing = b
        .choose(pb::ChooseRequest {
            experiment: "missing".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), tonic::Code::NotFound);

    // A study past its initial design (2 trials), so Suggest fits a GP.
    o.create_study(pb::CreateStudyRequest {
        name: "dash-study".into(),
        parameters: vec![float("x", 0.0, 1.0)],
        objective: Some(pb::Objective {
            name: "loss".into(),
            goal: pb::Goal::Minimize as i32,
        }),
        n_initial: 2,
        seed: 7,
        ..Default::default()
    })
    .await
    .expect("create study");
    for _ in 0..5 {
        let t = o
            .suggest(pb::SuggestRequest {
                study: "dash-study".into(),
                count: 1,
            })
            .await
            .expect("suggest")
            .into_inner()
            .trials
            .remove(0);
        let x = match t.params.get("x").and_then(|v| v.kind.clone()) {
            Some(pb::value::Kind::Number(x)) => x,
            other => panic!("x is not a number: {other:?}"),
        };
        o.observe(pb::ObserveRequest {
            study: "dash-study".into(),
            trial_id: t.trial_id,
            value: (x - 0.3).powi(2),
            metrics: HashMap::new(),
            failed: false,
        })
        .await
        .expect("observe");
    }
    // Suggest on a study that does not exist: NOT_FOUND, and no label.
    let nope = o
        .suggest(pb::SuggestRequest {
            study: "no-such-study".into(),
            count: 1,
        })
        .await;
    assert_eq!(nope.unwrap_err().code(), tonic::Code::NotFound);
    o.get_study(pb::GetStudyRequest {
        name: "dash-study".into(),
    })
    .await
    .expect("get study");

    let used = used_names();
    // No decay: the arms' evidence adds up to the 20 rewards applied.
    let evidence = |text: &str| {
        value(text, r#"posterior_arm_evidence{experiment="dash",arm="a"}"#)
            + value(text, r#"posterior_arm_evidence{experiment="dash",arm="b"}"#)
    };
    // Gauges of periodic tasks appear within a period or two (1 s here),
    // and the per-arm ones show all the rewards at the first refresh after
    // the traffic: scrape until both hold, for at most 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (missing, text) = loop {
        let text = scrape(port).await;
        let (samples, histograms) = scraped_names(&text);
        let missing: Vec<String> = used
            .iter()
            .filter(|n| !exported(n, &samples, &histograms))
            .cloned()
            .collect();
        if (missing.is_empty() && evidence(&text) == 20.0) || Instant::now() > deadline {
            break (missing, text);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        missing.is_empty(),
        "used by config/grafana/posterior.json or config/prometheus/alerts.yml but not exported: {missing:?}"
    );

    // A few values, against what the traffic above implies.
    // One lag observation per applied reward by decision id: 20, not 21
    // (the duplicate is not measured again).
    assert_eq!(value(&text, "posterior_reward_lag_seconds_count"), 20.0);
    assert_eq!(value(&text, "posterior_store_up"), 1.0);
    assert!(text.contains(r#"posterior_study_suggest_seconds_count{study="dash-study"} 5"#));
    assert!(!text.contains("no-such-study"));
    assert_eq!(evidence(&text), 20.0);
    let p_best = value(
        &text,
        r#"posterior_arm_prob_best{experiment="dash",arm="a"}"#,
    ) + value(
        &text,
        r#"posterior_arm_prob_best{experiment="dash",arm="b"}"#,
    );
    assert!((p_best - 1.0).abs() < 1e-9, "P(best) sums to {p_best}");

    // Deleting removes the per-arm and per-study gauges at once.
    assert!(text.contains(r#"posterior_arm_mean{experiment="dash",arm="a"}"#));
    assert!(text.contains(r#"posterior_study_fit_timestamp_seconds{study="dash-study"}"#));
    b.delete_experiment(pb::DeleteExperimentRequest {
        name: "dash".into(),
    })
    .await
    .expect("delete experiment");
    o.delete_study(pb::DeleteStudyRequest {
        name: "dash-study".into(),
    })
    .await
    .expect("delete study");
    let text = scrape(port).await;
    for family in [
        "posterior_arm_mean",
        "posterior_arm_interval_width",
        "posterior_arm_prob_best",
        "posterior_arm_evidence",
    ] {
        assert!(
            !text.contains(&format!("{family}{{experiment=\"dash\"")),
            "{family} of a deleted experiment is still exported"
        );
    }
    assert!(!text.contains(r#"posterior_study_fit_timestamp_seconds{study="dash-study"}"#));
    running.stop().await.expect("stop");
}
