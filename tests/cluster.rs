//! The service on a 3-master Redis Cluster started by the test: every
//! operation works (each experiment's and study's keys share one hash slot),
//! and scripts survive a flushed script cache (what a node restart or a
//! failover to a fresh replica does): NOSCRIPT → EVAL → cached again.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::test_config;
use posterior::api::pb::{
    self, bandits_client::BanditsClient, optimizer_client::OptimizerClient, reward_request::Target,
};

struct Cluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
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

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn start_cluster() -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let p = free_port_pair(&ports);
        ports.push(p);
    }
    let mut nodes = Vec::new();
    for &p in &ports {
        let d = dir.path().join(p.to_string());
        std::fs::create_dir_all(&d).unwrap();
        nodes.push(
            Command::new("redis-server")
                .args([
                    "--port",
                    &p.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                ])
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
    let cluster = Cluster {
        nodes,
        ports,
        _dir: dir,
    };
    for &p in &cluster.ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        while cli(p, &["PING"]).trim() != "PONG" {
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
        while !cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "cluster did not converge");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_works_on_a_three_master_cluster() {
    let cluster = start_cluster();
    let mut cfg = test_config();
    cfg.store.redis_url = cluster
        .ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let s = posterior::server::start(cfg).await.unwrap();
    let url = format!("http://{}", s.addr);
    let mut c = BanditsClient::connect(url.clone()).await.unwrap();

    // Enough experiments that all three masters hold some.
    let names: Vec<String> = (0..12).map(|i| format!("exp-{i}")).collect();
    for n in &names {
        c.create_experiment(pb::CreateExperimentRequest {
            name: n.clone(),
            arms: vec!["a".into(), "b".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let keys_per_node: Vec<usize> = cluster
        .ports
        .iter()
        .map(|&p| cli(p, &["DBSIZE"]).trim().parse().unwrap_or(0))
        .collect();
    assert!(
        keys_per_node.iter().filter(|&&k| k > 0).count() >= 2,
        "{keys_per_node:?}"
    );

    let mut rewarded = Vec::new();
    for (round, n) in names.iter().cycle().take(48).enumerate() {
        if round == 24 {
            // Every node forgets its scripts, as after a restart or failover.
            for &p in &cluster.ports {
                assert_eq!(cli(p, &["SCRIPT", "FLUSH"]).trim(), "OK");
            }
        }
        let d = c
            .choose(pb::ChooseRequest {
                experiment: n.clone(),
                eligible_arms: vec![],
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
        c.list_experiments(pb::ListExperimentsRequest {})
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
        c.list_experiments(pb::ListExperimentsRequest {})
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
