//! Crash durability: kill -9 the store and the service under load, restart,
//! and every acknowledged reward is counted exactly once.
//!
//! Method: N decisions are chosen up front. 8 tasks reward them concurrently
//! while the test kills the processes with SIGKILL mid-stream. After the
//! restart, *every* decision (acknowledged or not) is rewarded again, as a
//! client retrying would. Exactly-once then requires:
//! - the stored count right after the restart ≥ the rewards acknowledged
//!   before the crash (nothing acknowledged was lost), and
//! - the count after the retries == N (nothing counted twice, the dedupe
//!   records survived the crash too).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{RedisServer, ServiceProcess};
use posterior::pb::{self, bandits_client::BanditsClient, reward_request::Target};

const N: usize = 2_000;

async fn count(url: &str) -> u64 {
    let mut c = BanditsClient::connect(url.to_string()).await.unwrap();
    let g = c
        .get_experiment(pb::GetExperimentRequest {
            name: "crash".into(),
            threshold: None,
        })
        .await
        .unwrap()
        .into_inner();
    g.arms.iter().map(|a| a.rewards).sum()
}

/// Choose N decisions, then reward them from 8 tasks; returns the ids and
/// a counter of acknowledged rewards that keeps counting until the tasks die.
async fn load(
    url: &str,
) -> (
    Vec<String>,
    Arc<AtomicUsize>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let mut c = BanditsClient::connect(url.to_string()).await.unwrap();
    c.create_experiment(pb::CreateExperimentRequest {
        name: "crash".into(),
        arms: vec!["a".into(), "b".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut ids = Vec::with_capacity(N);
    for _ in 0..N {
        ids.push(
            c.choose(pb::ChooseRequest {
                experiment: "crash".into(),
                eligible_arms: vec![],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .decision_id,
        );
    }
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for chunk in ids.chunks(N / 8) {
        let chunk = chunk.to_vec();
        let acked = acked.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = BanditsClient::connect(url).await else {
                return;
            };
            for id in chunk {
                let r = c
                    .reward(pb::RewardRequest {
                        experiment: "crash".into(),
                        target: Some(Target::DecisionId(id)),
                        value: 1.0,
                    })
                    .await;
                match r {
                    Ok(_) => {
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => return, // the crash
                }
            }
        }));
    }
    (ids, acked, tasks)
}

async fn retry_all(url: &str, ids: &[String]) {
    let mut c = BanditsClient::connect(url.to_string()).await.unwrap();
    for id in ids {
        c.reward(pb::RewardRequest {
            experiment: "crash".into(),
            target: Some(Target::DecisionId(id.clone())),
            value: 1.0,
        })
        .await
        .unwrap();
    }
}

/// Wait until some rewards were acknowledged but not all.
async fn until_mid_stream(acked: &AtomicUsize) {
    for _ in 0..2_000 {
        if acked.load(Ordering::SeqCst) >= N / 4 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_survives_kill_9_with_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posterior.redb");
    let env = [
        ("POSTERIOR_DATA", path.to_str().unwrap()),
        ("POSTERIOR_STORE", "embedded"),
    ];
    let mut svc = ServiceProcess::start(&[], &env);
    let (ids, acked, tasks) = load(&svc.url()).await;
    until_mid_stream(&acked).await;
    svc.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.load(Ordering::SeqCst);
    assert!(
        acked < N,
        "the crash came too late to test anything ({acked} acknowledged)"
    );

    let svc = ServiceProcess::start(&[], &env);
    let stored = count(&svc.url()).await;
    eprintln!("embedded: acknowledged {acked}, stored after restart {stored}, sent {N}");
    assert!(
        stored as usize >= acked,
        "lost acknowledged rewards: stored {stored} < acked {acked}"
    );
    // Decision ids stay valid across the restart (the signing key is in the
    // file) and duplicates stay duplicates.
    retry_all(&svc.url(), &ids).await;
    assert_eq!(count(&svc.url()).await, N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_with_appendfsync_always_survives_kill_9_of_both() {
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = redis.url();
    let mut svc = ServiceProcess::start(&["--redis", &url], &[]);
    let (ids, acked, tasks) = load(&svc.url()).await;
    until_mid_stream(&acked).await;
    redis.kill9();
    svc.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.load(Ordering::SeqCst);
    assert!(
        acked < N,
        "the crash came too late to test anything ({acked} acknowledged)"
    );

    redis.restart();
    let svc = ServiceProcess::start(&["--redis", &url], &[]);
    let stored = count(&svc.url()).await;
    eprintln!("redis: acknowledged {acked}, stored after restart {stored}, sent {N}");
    assert!(
        stored as usize >= acked,
        "lost acknowledged rewards: stored {stored} < acked {acked}"
    );
    retry_all(&svc.url(), &ids).await;
    assert_eq!(count(&svc.url()).await, N as u64);
}

/// Redis alone is killed under load and restarted while the service keeps
/// running: clients see only UNAVAILABLE (and retry), the service recovers
/// by itself, and every decision ends up counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_under_load_the_service_recovers_and_counts_once() {
    use common::start_on_redis;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let svc = start_on_redis(&redis.url()).await;
    let url = format!("http://{}", svc.addr);
    let (ids, acked, tasks) = load(&url).await;
    // `load`'s tasks stop at their first error; drive the retries here.
    until_mid_stream(&acked).await;
    redis.kill9();
    for t in tasks {
        let _ = t.await;
    }
    let acked_before = acked.load(Ordering::SeqCst);
    let codes: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    // Retry every decision while Redis is down and after it returns, as
    // clients would (decision ids make the retries safe).
    let restart = tokio::spawn(async move {
        // Down longer than the connection manager's reconnect attempts and
        // the 1 s response timeout, so clients do see the outage.
        tokio::time::sleep(Duration::from_millis(3000)).await;
        redis.restart();
        redis
    });
    let mut retries = Vec::new();
    for chunk in ids.chunks(N / 8) {
        let chunk = chunk.to_vec();
        let (url, codes) = (url.clone(), codes.clone());
        retries.push(tokio::spawn(async move {
            let mut c = BanditsClient::connect(url).await.unwrap();
            for id in chunk {
                loop {
                    let r = c
                        .reward(pb::RewardRequest {
                            experiment: "crash".into(),
                            target: Some(Target::DecisionId(id.clone())),
                            value: 1.0,
                        })
                        .await;
                    match r {
                        Ok(_) => break,
                        Err(e) => {
                            *codes
                                .lock()
                                .unwrap()
                                .entry(format!("{:?}", e.code()))
                                .or_default() += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }
        }));
    }
    for r in retries {
        r.await.unwrap();
    }
    let _redis = restart.await.unwrap();
    let codes = codes.lock().unwrap().clone();
    eprintln!(
        "redis killed under load: {acked_before} acknowledged before the kill, errors seen while down: {codes:?}"
    );
    assert!(codes.keys().all(|k| k == "Unavailable"), "{codes:?}");
    assert!(
        codes.get("Unavailable").is_some_and(|&n| n > 0),
        "the outage was never seen: {codes:?}"
    );
    assert_eq!(count(&url).await, N as u64);
    svc.stop().await.unwrap();
}
