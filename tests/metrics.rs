//! The Prometheus exporter, scraped over HTTP. Its own test binary: the
//! metrics recorder is process-global.

mod common;

use common::test_config;
use posterior::pb;
use posterior::pb::bandits_client::BanditsClient;

async fn scrape(port: u16) -> String {
    common::scrape_metrics(port).await
}

/// The value of the first sample whose line starts with `series` (name and
/// labels exactly as rendered), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_and_are_scraped() {
    let mut cfg = test_config();
    // Port 0: the exporter reports the port it bound.
    cfg.metrics.listen = "127.0.0.1:0".into();
    let running = posterior::server::start(cfg).await.expect("server starts");
    let port = running.metrics_addr.expect("metrics on").port();
    let mut c = BanditsClient::connect(format!("http://{}", running.addr))
        .await
        .expect("connect");
    c.create_experiment(pb::CreateExperimentRequest {
        name: "m".into(),
        arms: vec!["a".into(), "b".into()],
        ..Default::default()
    })
    .await
    .expect("create");

    let choose_ok = r#"posterior_grpc_requests_total{transport="grpc",rpc="posterior.v1.Bandits/Choose",code="OK"}"#;
    let decisions = r#"posterior_decisions_total{experiment="m"}"#;
    let before = scrape(port).await;
    for _ in 0..3 {
        let d = c
            .choose(pb::ChooseRequest {
                experiment: "m".into(),
                eligible_arms: vec![],
                ..Default::default()
            })
            .await
            .expect("choose")
            .into_inner();
        c.reward(pb::RewardRequest {
            experiment: "m".into(),
            target: Some(pb::reward_request::Target::DecisionId(d.decision_id)),
            value: 1.0,
        })
        .await
        .expect("reward");
    }
    let missing = c
        .choose(pb::ChooseRequest {
            experiment: "nope".into(),
            eligible_arms: vec![],
            ..Default::default()
        })
        .await;
    assert!(missing.is_err());
    let after = scrape(port).await;

    assert_eq!(value(&after, choose_ok) - value(&before, choose_ok), 3.0);
    assert_eq!(value(&after, decisions) - value(&before, decisions), 3.0);
    assert_eq!(
        value(&after, r#"posterior_rewards_total{experiment="m"}"#),
        3.0
    );
    assert_eq!(
        value(
            &after,
            r#"posterior_grpc_requests_total{transport="grpc",rpc="posterior.v1.Bandits/Choose",code="NOT_FOUND"}"#
        ),
        1.0
    );
    // Latency histograms with the configured buckets, store timing, cache.
    assert!(after.contains(
        r#"posterior_grpc_request_duration_seconds_bucket{transport="grpc",rpc="posterior.v1.Bandits/Choose",code="OK",le="0.001"}"#
    ));
    assert!(after.contains(r#"posterior_store_duration_seconds_count{op="experiment"}"#));
    assert!(value(&after, r#"posterior_choose_snapshot_total{result="hit"}"#) >= 1.0);
    assert!(after.contains(r#"posterior_interval_width{experiment="m",arm="a"}"#));
    running.stop().await.expect("stop");
}
