//! The service on a 3-master Redis Cluster started by the test: every
//! operation works (each experiment's and study's keys share one hash slot),
//! and scripts survive a flushed script cache (what a node restart or a
//! failover to a fresh replica does): NOSCRIPT → EVAL → cached again.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{make_certs, test_config};
use posterior::pb::{
    self, bandits_client::BanditsClient, optimizer_client::OptimizerClient, reward_request::Target,
};

struct Cluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    /// How redis-cli reaches a node (TLS files and password when set).
    cli_args: Vec<String>,
    _dir: tempfile::TempDir,
}

/// A cluster over TLS: client certificates required, a password on every
/// node (and between nodes), the cluster bus itself over TLS.
struct ClusterTls<'a> {
    certs: &'a std::path::Path,
    password: &'a str,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
    }
}

/// A free port whose cluster-bus port (+10000) is free too.
fn free_port_pair(taken: &[u16]) -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 55_000 && !taken.contains(&p) && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        {
            return p;
        }
    }
}

impl Cluster {
    fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(&self.cli_args)
            .args(["-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The seed-node list for `store.redis_url`.
    fn url(&self, scheme: &str) -> String {
        self.ports
            .iter()
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Five tries on fresh ports: another process may take a port between
/// `free_port_pair` and a node's bind (that node then exits at once).
fn start_cluster(tls: Option<ClusterTls<'_>>) -> Cluster {
    for _ in 0..4 {
        if let Some(c) = try_start_cluster(tls.as_ref()) {
            return c;
        }
    }
    try_start_cluster(tls.as_ref()).expect("a node of a fresh cluster exited five times")
}

/// The cluster, or `None` when a node exited before answering PING.
fn try_start_cluster(tls: Option<&ClusterTls<'_>>) -> Option<Cluster> {
    let dir = tempfile::tempdir().unwrap();
    let (mut node_args, mut cli_args) = (Vec::<String>::new(), Vec::<String>::new());
    if let Some(t) = tls {
        let f = |name: &str| t.certs.join(name).display().to_string();
        for (k, v) in [
            ("--tls-cert-file", f("server.pem")),
            ("--tls-key-file", f("server.key")),
            ("--tls-ca-cert-file", f("ca.pem")),
            ("--tls-auth-clients", "yes".into()),
            ("--tls-cluster", "yes".into()),
            ("--requirepass", t.password.into()),
            ("--masterauth", t.password.into()),
        ] {
            node_args.extend([k.to_string(), v]);
        }
        cli_args.extend(
            [
                "--tls",
                "--cacert",
                &f("ca.pem"),
                "--cert",
                &f("client.pem"),
                "--key",
                &f("client.key"),
                "-a",
                t.password,
                "--no-auth-warning",
            ]
            .map(String::from),
        );
    }
    let mut ports = Vec::new();
    for _ in 0..3 {
        let p = free_port_pair(&ports);
        ports.push(p);
    }
    let mut nodes = Vec::new();
    for &p in &ports {
        let d = dir.path().join(p.to_string());
        std::fs::create_dir_all(&d).unwrap();
        // With TLS the node listens on p with TLS only (and its bus on
        // p + 10000, over TLS too).
        let port_args = if tls.is_some() {
            [
                "--port".to_string(),
                "0".into(),
                "--tls-port".into(),
                p.to_string(),
            ]
            .to_vec()
        } else {
            ["--port".to_string(), p.to_string()].to_vec()
        };
        nodes.push(
            Command::new("redis-server")
                .args(&port_args)
                .args(&node_args)
                .args(["--bind", "127.0.0.1", "--cluster-enabled", "yes"])
                .args([
                    "--cluster-config-file",
                    "nodes.conf",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                ])
                .arg(&d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server"),
        );
    }
    let mut cluster = Cluster {
        nodes,
        ports,
        cli_args,
        _dir: dir,
    };
    for i in 0..cluster.ports.len() {
        let p = cluster.ports[i];
        let deadline = Instant::now() + Duration::from_secs(10);
        while cluster.cli(p, &["PING"]).trim() != "PONG" {
            if let Ok(Some(_)) = cluster.nodes[i].try_wait() {
                return None;
            }
            assert!(Instant::now() < deadline, "node {p} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let addrs: Vec<String> = cluster
        .ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let out = Command::new("redis-cli")
        .args(&cluster.cli_args)
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for &p in &cluster.ports {
        while !cluster
            .cli(p, &["CLUSTER", "INFO"])
            .contains("cluster_state:ok")
        {
            assert!(Instant::now() < deadline, "cluster did not converge");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Some(cluster)
}

/// Rewards counted over every arm of experiment `name`.
async fn total_rewards(c: &mut BanditsClient<tonic::transport::Channel>, name: &str) -> u64 {
    c.get_experiment(pb::GetExperimentRequest {
        name: name.into(),
        threshold: None,
    })
    .await
    .unwrap()
    .into_inner()
    .arms
    .iter()
    .map(|a| a.rewards)
    .sum()
}

/// How many of the cluster's masters hold keys.
fn nodes_with_keys(cluster: &Cluster) -> usize {
    cluster
        .ports
        .iter()
        .filter(|&&p| {
            cluster
                .cli(p, &["DBSIZE"])
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                > 0
        })
        .count()
}

/// Creates `names` (two arms each): enough experiments that every master
/// holds some. Returns how many nodes hold keys.
async fn create_spread(
    c: &mut BanditsClient<tonic::transport::Channel>,
    cluster: &Cluster,
    names: &[String],
) -> usize {
    for n in names {
        c.create_experiment(pb::CreateExperimentRequest {
            name: n.clone(),
            arms: vec!["a".into(), "b".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    nodes_with_keys(cluster)
}

/// `rounds` Choose + Reward pairs cycling over `names`, with every node's
/// script cache flushed halfway (as after a restart or failover: NOSCRIPT,
/// then EVAL). Returns (experiment, decision id) of each reward.
async fn reward_across_script_flush(
    c: &mut BanditsClient<tonic::transport::Channel>,
    cluster: &Cluster,
    names: &[String],
    rounds: usize,
) -> Vec<(String, String)> {
    let mut rewarded = Vec::new();
    for (round, n) in names.iter().cycle().take(rounds).enumerate() {
        if round == rounds / 2 {
            for &p in &cluster.ports {
                assert_eq!(cluster.cli(p, &["SCRIPT", "FLUSH"]).trim(), "OK");
            }
        }
        let d = c
            .choose(pb::ChooseRequest {
                experiment: n.clone(),
                eligible_arms: vec![],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let r = c
            .reward(pb::RewardRequest {
                experiment: n.clone(),
                target: Some(Target::DecisionId(d.decision_id.clone())),
                value: 1.0,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!r.duplicate);
        rewarded.push((n.clone(), d.decision_id));
    }
    rewarded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_works_on_a_three_master_cluster() {
    let cluster = start_cluster(None);
    let mut cfg = test_config();
    cfg.store.redis_url = cluster.url("redis");
    let s = posterior::server::start(cfg).await.unwrap();
    let url = format!("http://{}", s.addr);
    let mut c = BanditsClient::connect(url.clone()).await.unwrap();

    let names: Vec<String> = (0..12).map(|i| format!("exp-{i}")).collect();
    let with_keys = create_spread(&mut c, &cluster, &names).await;
    assert!(with_keys >= 2, "keys on {with_keys} node(s)");
    let rewarded = reward_across_script_flush(&mut c, &cluster, &names, 48).await;
    // Duplicates are still caught.
    for (n, id) in rewarded.iter().take(6) {
        let r = c
            .reward(pb::RewardRequest {
                experiment: n.clone(),
                target: Some(Target::DecisionId(id.clone())),
                value: 1.0,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.duplicate);
    }
    for n in &names {
        let g = c
            .get_experiment(pb::GetExperimentRequest {
                name: n.clone(),
                threshold: Some(0.5),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(g.arms.iter().map(|a| a.rewards).sum::<u64>(), 4, "{n}");
    }
    c.add_arm(pb::AddArmRequest {
        experiment: "exp-0".into(),
        arm: "c".into(),
    })
    .await
    .unwrap();
    c.retire_arm(pb::RetireArmRequest {
        experiment: "exp-0".into(),
        arm: "a".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        c.list_experiments(pb::ListExperimentsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .names
            .len(),
        12
    );
    c.delete_experiment(pb::DeleteExperimentRequest {
        name: "exp-1".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        c.list_experiments(pb::ListExperimentsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .names
            .len(),
        11
    );

    // Studies too.
    let mut o = OptimizerClient::connect(url).await.unwrap();
    o.create_study(pb::CreateStudyRequest {
        name: "tune".into(),
        parameters: vec![pb::Parameter {
            name: "x".into(),
            kind: Some(pb::parameter::Kind::Float(pb::FloatRange {
                low: 0.0,
                high: 1.0,
                log: false,
                step: 0.0,
            })),
        }],
        objective: Some(pb::Objective {
            name: "y".into(),
            goal: pb::Goal::Minimize as i32,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    for _ in 0..6 {
        let t = o
            .suggest(pb::SuggestRequest {
                study: "tune".into(),
                count: 1,
            })
            .await
            .unwrap()
            .into_inner()
            .trials
            .remove(0);
        o.observe(pb::ObserveRequest {
            study: "tune".into(),
            trial_id: t.trial_id,
            value: 1.0,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let g = o
        .get_study(pb::GetStudyRequest {
            name: "tune".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(g.trials.len(), 6);
    s.stop().await.unwrap();
}

/// The same service on a cluster reached over TLS with client certificates
/// and a password (`rediss://` seed list, `store.redis_tls_*`): every
/// reward counted once, across a flushed script cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_with_a_password() {
    const PASSWORD: &str = "cluster-password-0123";
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let cluster = start_cluster(Some(ClusterTls {
        certs: certs.path(),
        password: PASSWORD,
    }));
    let f = |name: &str| certs.path().join(name).display().to_string();
    let mut cfg = test_config();
    cfg.store.redis_url = cluster.url("rediss");
    cfg.store.redis_password = PASSWORD.into();
    cfg.store.redis_tls_ca = f("ca.pem");
    cfg.store.redis_tls_cert = f("client.pem");
    cfg.store.redis_tls_key = f("client.key");
    let s = posterior::server::start(cfg).await.unwrap();
    let mut c = BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let names: Vec<String> = (0..12).map(|i| format!("tls-{i}")).collect();
    let with_keys = create_spread(&mut c, &cluster, &names).await;
    assert!(with_keys >= 2, "keys on {with_keys} node(s)");
    reward_across_script_flush(&mut c, &cluster, &names, 36).await;
    for n in &names {
        assert_eq!(total_rewards(&mut c, n).await, 3, "{n}");
    }
    s.stop().await.unwrap();
}

/// Sticky units, verdicts and gates on a cluster: a unit's assignment key
/// lives under its experiment's hash tag, so the set-if-absent lands on the
/// experiment's own master, whichever master that is (experiments spread
/// over at least two of them), and every unit keeps its arm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_units_verdicts_and_gates_on_a_three_master_cluster() {
    let cluster = start_cluster(None);
    let mut cfg = test_config();
    cfg.store.redis_url = cluster.url("redis");
    let s = posterior::server::start(cfg).await.unwrap();
    let mut c = BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();

    let names: Vec<String> = (0..8).map(|i| format!("sticky-{i}")).collect();
    for n in &names {
        c.create_experiment(pb::CreateExperimentRequest {
            name: n.clone(),
            arms: vec!["a".into(), "b".into(), "c".into()],
            sticky_seconds: 3600.0,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let holding = nodes_with_keys(&cluster);
    assert!(holding >= 2, "experiments on {holding} node(s)");

    for n in &names {
        for unit in 0..10 {
            let unit_id = format!("user-{unit}");
            let mut first: Option<String> = None;
            for _ in 0..5 {
                let d = c
                    .choose(pb::ChooseRequest {
                        experiment: n.clone(),
                        unit_id: unit_id.clone(),
                        eligible_arms: vec![],
                    })
                    .await
                    .unwrap()
                    .into_inner();
                match &first {
                    None => first = Some(d.arm),
                    Some(a) => assert_eq!(&d.arm, a, "{n} {unit_id} switched arms"),
                }
            }
        }
    }

    // One experiment decided: 400 rewards on "a" at 0.9 against 0.1 on the
    // others make P(best) of "a" ≈ 1, so the verdict is WINNER and the gate
    // of "b" (baseline "a") FAILs; both read the store like GetExperiment.
    let arm_rewards = [("a", 0.9), ("b", 0.1), ("c", 0.1)];
    for (arm, p) in arm_rewards {
        for i in 0..400 {
            let value = if (i as f64) < p * 400.0 { 1.0 } else { 0.0 };
            c.reward(pb::RewardRequest {
                experiment: "sticky-0".into(),
                target: Some(Target::Arm(arm.into())),
                value,
            })
            .await
            .unwrap();
        }
    }
    let v = c
        .get_verdict(pb::GetVerdictRequest {
            name: "sticky-0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.winner, "a", "{}", v.reason);
    let g = c
        .gate(pb::GateRequest {
            experiment: "sticky-0".into(),
            baseline: "a".into(),
            candidate: "b".into(),
            margin: 0.05,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        g.verdict,
        pb::gate_response::Verdict::Fail as i32,
        "{}",
        g.reason
    );
    s.stop().await.unwrap();
}

/// RewardAggregate and RewardBatch on a cluster: experiments on several
/// masters, the batch one pipeline per experiment's slot, every node's
/// script cache flushed between batches (NOSCRIPT → load → re-send), each
/// request id and decision applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_and_batches_on_a_three_master_cluster() {
    use pb::batch_reward::Target as Item;
    let cluster = start_cluster(None);
    let mut cfg = test_config();
    cfg.store.redis_url = cluster.url("redis");
    let s = posterior::server::start(cfg).await.unwrap();
    let mut c = BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let names: Vec<String> = (0..6).map(|i| format!("ingest-{i}")).collect();
    let with_keys = create_spread(&mut c, &cluster, &names).await;
    assert!(with_keys >= 2, "keys on {with_keys} node(s)");
    for n in &names {
        let mut ids = Vec::new();
        for _ in 0..20 {
            let d = c
                .choose(pb::ChooseRequest {
                    experiment: n.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            ids.push(d.decision_id);
        }
        for &p in &cluster.ports {
            assert_eq!(cluster.cli(p, &["SCRIPT", "FLUSH"]).trim(), "OK");
        }
        for pass in 0..2 {
            let out = c
                .reward_batch(pb::RewardBatchRequest {
                    experiment: n.clone(),
                    rewards: ids
                        .iter()
                        .map(|d| pb::BatchReward {
                            target: Some(Item::DecisionId(d.clone())),
                            value: 1.0,
                        })
                        .collect(),
                })
                .await
                .unwrap()
                .into_inner()
                .results;
            assert!(
                out.iter()
                    .all(|r| r.error_code.is_empty() && r.duplicate == (pass == 1)),
                "{n} pass {pass}: {out:?}"
            );
        }
        for &p in &cluster.ports {
            assert_eq!(cluster.cli(p, &["SCRIPT", "FLUSH"]).trim(), "OK");
        }
        for pass in 0..2 {
            let r = c
                .reward_aggregate(pb::RewardAggregateRequest {
                    experiment: n.clone(),
                    arm: "b".into(),
                    count: 100,
                    sum: 7.0,
                    sum_squares: 0.0,
                    request_id: "minute-1".into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.duplicate, pass == 1, "{n}");
        }
        assert_eq!(total_rewards(&mut c, n).await, 120, "{n}");
    }
    s.stop().await.unwrap();
}

/// History on a cluster: a point's script touches the experiment's
/// definition and its history key, both under the `{name}` hash tag, so
/// experiments spread over the masters all record (every second here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_recorded_on_a_cluster() {
    let cluster = start_cluster(None);
    let mut cfg = test_config();
    cfg.store.redis_url = cluster.url("redis");
    cfg.history.interval_seconds = 1;
    let s = posterior::server::start(cfg).await.unwrap();
    let mut c = BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let names: Vec<String> = (0..6).map(|i| format!("hist-{i}")).collect();
    let with_keys = create_spread(&mut c, &cluster, &names).await;
    assert!(with_keys >= 2, "keys on {with_keys} node(s)");
    for n in &names {
        c.choose(pb::ChooseRequest {
            experiment: n.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in &names {
        loop {
            let points = c
                .get_experiment_history(pb::GetExperimentHistoryRequest {
                    name: n.clone(),
                    since_ms: None,
                })
                .await
                .unwrap()
                .into_inner()
                .points;
            let decisions: u64 = points
                .iter()
                .flat_map(|p| &p.arms)
                .map(|a| a.decisions)
                .sum();
            if decisions == 1 {
                break;
            }
            assert!(decisions < 1, "{n}: {decisions} decisions for one Choose");
            assert!(
                Instant::now() < deadline,
                "{n}: no history point with its decision"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    s.stop().await.unwrap();
}
