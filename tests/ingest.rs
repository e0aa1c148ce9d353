//! RewardAggregate and RewardBatch, black-box over the real server on every
//! store: an aggregate gives the posterior of the same outcomes sent one by
//! one; request ids and batch items are exactly-once under concurrent
//! retries to two replicas on one Redis; a bad batch item fails alone with
//! its code; a flushed Redis script cache (NOSCRIPT) loses nothing; every
//! bad input names its field, over gRPC and over HTTP; a retired arm still
//! takes late outcomes; and what a stored request id costs in Redis memory.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::{BACKENDS, Backend, RedisServer, TestServer, start_on_redis};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use posterior::pb::{self, bandits_client::BanditsClient, batch_reward::Target};
use posterior::server::Running;
use serde_json::{Value as Json, json};
use tonic::Code;
use tonic::transport::Channel;

type Client = BanditsClient<Channel>;

async fn connect(addr: SocketAddr) -> Client {
    BanditsClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

async fn replica_client(r: &Running) -> Client {
    connect(r.addr).await
}

fn experiment(name: &str, model: pb::RewardModel, arms: &[&str]) -> pb::CreateExperimentRequest {
    pb::CreateExperimentRequest {
        name: name.into(),
        arms: arms.iter().map(|s| s.to_string()).collect(),
        model: model as i32,
        ..Default::default()
    }
}

fn aggregate(
    exp: &str,
    arm: &str,
    count: u64,
    sum: f64,
    sum_squares: f64,
    request_id: &str,
) -> pb::RewardAggregateRequest {
    pb::RewardAggregateRequest {
        experiment: exp.into(),
        arm: arm.into(),
        count,
        sum,
        sum_squares,
        request_id: request_id.into(),
    }
}

fn by_decision(id: &str, value: f64) -> pb::BatchReward {
    pb::BatchReward {
        target: Some(Target::DecisionId(id.into())),
        value,
    }
}

fn by_arm(arm: &str, value: f64) -> pb::BatchReward {
    pb::BatchReward {
        target: Some(Target::Arm(arm.into())),
        value,
    }
}

async fn arms(c: &mut Client, exp: &str) -> Vec<pb::ArmSummary> {
    c.get_experiment(pb::GetExperimentRequest {
        name: exp.into(),
        threshold: None,
    })
    .await
    .expect("get experiment")
    .into_inner()
    .arms
}

async fn rewards(c: &mut Client, exp: &str) -> u64 {
    arms(c, exp).await.iter().map(|a| a.rewards).sum()
}

async fn decision(c: &mut Client, exp: &str) -> String {
    c.choose(pb::ChooseRequest {
        experiment: exp.into(),
        ..Default::default()
    })
    .await
    .expect("choose")
    .into_inner()
    .decision_id
}

/// |a - b| within `rel` of the larger magnitude (or of 1 near zero).
fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1.0)
}

fn assert_same_posterior(one_by_one: &pb::ArmSummary, aggregated: &pb::ArmSummary, what: &str) {
    assert_eq!(one_by_one.rewards, aggregated.rewards, "{what}: rewards");
    for (field, x, y) in [
        ("alpha", one_by_one.alpha, aggregated.alpha),
        ("beta", one_by_one.beta, aggregated.beta),
        ("mu", one_by_one.mu, aggregated.mu),
        ("kappa", one_by_one.kappa, aggregated.kappa),
        ("mean", one_by_one.mean, aggregated.mean),
        ("lower", one_by_one.lower, aggregated.lower),
        ("upper", one_by_one.upper, aggregated.upper),
        ("evidence", one_by_one.evidence, aggregated.evidence),
    ] {
        // Sums in another order differ by a few ulps per term: 1e-9
        // relative is far above that for 500 terms and far below any
        // modelling difference (one outcome more or less moves these by
        // ~1e-3).
        assert!(close(x, y, 1e-9), "{what}: {field} {x} vs {y}");
    }
}

/// Outcomes of a fixed deterministic sequence (no RNG needed: the claim is
/// arithmetic, not statistical).
fn gaussian_outcomes(n: usize) -> Vec<f64> {
    (0..n)
        .map(|k| 3.0 + 2.5 * ((k as f64) * 0.77).sin() + 0.01 * k as f64)
        .collect()
}

fn bernoulli_outcomes(n: usize) -> Vec<f64> {
    // 1 when k² mod 7 < 3: 3 of 7 residue classes' squares... a fixed,
    // irregular 0/1 pattern.
    (0..n)
        .map(|k| f64::from(u8::from((k * k) % 7 < 3)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_equals_the_same_outcomes_sent_one_by_one() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        for (model, outcomes) in [
            (pb::RewardModel::Bernoulli, bernoulli_outcomes(500)),
            (pb::RewardModel::Gaussian, gaussian_outcomes(500)),
        ] {
            let (single, agg) = (format!("single-{model:?}"), format!("agg-{model:?}"));
            for name in [&single, &agg] {
                c.create_experiment(experiment(name, model, &["x", "y"]))
                    .await
                    .expect("create");
            }
            for &v in &outcomes {
                c.reward(pb::RewardRequest {
                    experiment: single.clone(),
                    target: Some(pb::reward_request::Target::Arm("x".into())),
                    value: v,
                })
                .await
                .expect("reward");
            }
            // In two aggregates (as two scrape intervals would report).
            let (first, second) = outcomes.split_at(180);
            for (k, part) in [first, second].into_iter().enumerate() {
                let sum: f64 = part.iter().sum();
                let sum_squares: f64 = part.iter().map(|v| v * v).sum();
                let r = c
                    .reward_aggregate(aggregate(
                        &agg,
                        "x",
                        part.len() as u64,
                        sum,
                        sum_squares,
                        &format!("scrape-{k}"),
                    ))
                    .await
                    .expect("aggregate")
                    .into_inner();
                assert_eq!((r.arm.as_str(), r.duplicate), ("x", false));
            }
            let what = format!("{backend:?} {model:?}");
            let (a1, a2) = (arms(&mut c, &single).await, arms(&mut c, &agg).await);
            assert_same_posterior(&a1[0], &a2[0], &what);
            assert_eq!(a2[0].rewards, 500, "{what}");
            assert_eq!(a2[1].rewards, 0, "{what}: the other arm");

            // A retry of a request id is acknowledged, not applied again.
            let sum: f64 = first.iter().sum();
            let sum_squares: f64 = first.iter().map(|v| v * v).sum();
            let retry = aggregate(&agg, "x", 180, sum, sum_squares, "scrape-0");
            let r = c
                .reward_aggregate(retry.clone())
                .await
                .expect("retry")
                .into_inner();
            assert!(r.duplicate, "{what}: retry");
            assert_same_posterior(&a1[0], &arms(&mut c, &agg).await[0], &what);
            // The same request id for another arm is another report.
            let r = c
                .reward_aggregate(pb::RewardAggregateRequest {
                    arm: "y".into(),
                    ..retry
                })
                .await
                .expect("other arm")
                .into_inner();
            assert_eq!((r.arm.as_str(), r.duplicate), ("y", false), "{what}");
            assert_eq!(arms(&mut c, &agg).await[1].rewards, 180, "{what}");
        }
        if let Some(r) = s.running {
            r.stop().await.expect("stop");
        }
    }
}

/// Tasks × ids, each task sending every id (to alternating replicas): the
/// ids must be applied exactly once in total.
const RETRY_TASKS: usize = 20;
const RETRY_IDS: usize = 40;

/// 20 tasks send the same 40 request ids, each to the replica its task and
/// id pick; each id must be applied once (`duplicate = false` once) and the
/// arm must hold 40 × 10 outcomes.
async fn request_ids_once(clients: Vec<Client>, exp: &str) {
    let clients = Arc::new(clients);
    let mut tasks = Vec::new();
    for t in 0..RETRY_TASKS {
        let clients = clients.clone();
        let exp = exp.to_string();
        tasks.push(tokio::spawn(async move {
            let mut applied = Vec::new();
            for i in 0..RETRY_IDS {
                let mut c = clients[(t + i) % clients.len()].clone();
                let r = c
                    .reward_aggregate(aggregate(&exp, "x", 10, 3.0, 0.0, &format!("minute-{i}")))
                    .await
                    .expect("aggregate")
                    .into_inner();
                if !r.duplicate {
                    applied.push(i);
                }
            }
            applied
        }));
    }
    let mut times = vec![0usize; RETRY_IDS];
    for t in tasks {
        for i in t.await.expect("task") {
            times[i] += 1;
        }
    }
    assert!(times.iter().all(|&n| n == 1), "applied counts {times:?}");
    let mut c = clients[0].clone();
    assert_eq!(rewards(&mut c, exp).await, (RETRY_IDS * 10) as u64);
}

/// Every decision id of `ids` in batches of `per_batch`, sent by 10 tasks
/// to alternating replicas: each must be applied once in total.
async fn batch_items_once(clients: Vec<Client>, exp: &str, ids: Vec<String>, per_batch: usize) {
    let clients = Arc::new(clients);
    let ids = Arc::new(ids);
    let mut tasks = Vec::new();
    for t in 0..10 {
        let (clients, ids, exp) = (clients.clone(), ids.clone(), exp.to_string());
        tasks.push(tokio::spawn(async move {
            let mut applied = Vec::new();
            for (b, chunk) in ids.chunks(per_batch).enumerate() {
                let mut c = clients[(t + b) % clients.len()].clone();
                let out = c
                    .reward_batch(pb::RewardBatchRequest {
                        experiment: exp.clone(),
                        rewards: chunk.iter().map(|d| by_decision(d, 1.0)).collect(),
                    })
                    .await
                    .expect("batch")
                    .into_inner();
                assert_eq!(out.results.len(), chunk.len());
                for (k, r) in out.results.iter().enumerate() {
                    assert_eq!(r.error_code, "", "{}", r.error_message);
                    if !r.duplicate {
                        applied.push(b * per_batch + k);
                    }
                }
            }
            applied
        }));
    }
    let mut times = vec![0usize; ids.len()];
    for t in tasks {
        for i in t.await.expect("task") {
            times[i] += 1;
        }
    }
    assert!(times.iter().all(|&n| n == 1), "applied counts {times:?}");
    let mut c = clients[0].clone();
    assert_eq!(rewards(&mut c, exp).await, ids.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_batch_items_are_exactly_once_across_two_replicas() {
    let redis = RedisServer::start();
    let r1 = start_on_redis(&redis.url()).await;
    let r2 = start_on_redis(&redis.url()).await;
    let (mut c1, c2) = (replica_client(&r1).await, replica_client(&r2).await);
    for name in ["agg", "batch"] {
        c1.create_experiment(experiment(name, pb::RewardModel::Bernoulli, &["x", "y"]))
            .await
            .expect("create");
    }
    request_ids_once(vec![c1.clone(), c2.clone()], "agg").await;
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(decision(&mut c1, "batch").await);
    }
    batch_items_once(vec![c1, c2], "batch", ids, 50).await;
    r1.stop().await.expect("stop");
    r2.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_and_batch_items_are_exactly_once_on_one_server() {
    // Memory and embedded: one process owns the store; concurrency is the
    // 20 (10) tasks on one server.
    for backend in [Backend::Memory, Backend::Embedded] {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        for name in ["agg", "batch"] {
            c.create_experiment(experiment(name, pb::RewardModel::Bernoulli, &["x", "y"]))
                .await
                .expect("create");
        }
        request_ids_once(vec![c.clone()], "agg").await;
        let mut ids = Vec::new();
        for _ in 0..200 {
            ids.push(decision(&mut c, "batch").await);
        }
        batch_items_once(vec![c], "batch", ids, 50).await;
        if let Some(r) = s.running {
            r.stop().await.expect("stop");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_item_fails_alone_with_its_code() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        c.create_experiment(experiment("e", pb::RewardModel::Bernoulli, &["x", "y"]))
            .await
            .expect("create");
        let chosen = c
            .choose(pb::ChooseRequest {
                experiment: "e".into(),
                ..Default::default()
            })
            .await
            .expect("choose")
            .into_inner();
        let good = chosen.decision_id;
        let out = c
            .reward_batch(pb::RewardBatchRequest {
                experiment: "e".into(),
                rewards: vec![
                    by_decision(&good, 1.0),
                    by_decision("not-a-decision-id", 1.0),
                    by_arm("x", f64::NAN),
                    by_arm("zz", 1.0),
                    by_arm("y", 0.0),
                    pb::BatchReward {
                        target: None,
                        value: 1.0,
                    },
                    by_decision(&good, 1.0),
                ],
            })
            .await
            .expect("batch")
            .into_inner()
            .results;
        let what = format!("{backend:?}");
        let codes: Vec<&str> = out.iter().map(|r| r.error_code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "",
                "INVALID_ARGUMENT",
                "INVALID_ARGUMENT",
                "NOT_FOUND",
                "",
                "INVALID_ARGUMENT",
                ""
            ],
            "{what}: {out:?}"
        );
        for (i, field) in [
            (1, "rewards[1].decision_id"),
            (2, "rewards[2].value"),
            (3, "rewards[3].arm"),
            (5, "rewards[5].decision_id"),
        ] {
            assert!(
                out[i].error_message.starts_with(field),
                "{what}: {}",
                out[i].error_message
            );
            assert_eq!(out[i].arm, "", "{what}");
        }
        assert_eq!((&out[0].arm, out[0].duplicate), (&chosen.arm, false));
        assert_eq!((out[4].arm.as_str(), out[4].duplicate), ("y", false));
        // The same decision twice in one batch: applied once.
        assert!(out[6].duplicate, "{what}");
        assert_eq!(out[0].error_message, "", "{what}");
        let a = arms(&mut c, "e").await;
        let on_x = u64::from(chosen.arm == "x");
        assert_eq!((a[0].rewards, a[1].rewards), (on_x, 2 - on_x), "{what}");
        if let Some(r) = s.running {
            r.stop().await.expect("stop");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_script_cache_loses_no_batch_item() {
    let s = TestServer::start(Backend::Redis).await;
    let redis = s.redis.as_ref().expect("redis");
    let mut c = s.client().await;
    c.create_experiment(experiment("e", pb::RewardModel::Gaussian, &["x", "y"]))
        .await
        .expect("create");
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(decision(&mut c, "e").await);
    }
    for (b, chunk) in ids.chunks(100).enumerate() {
        // As after a Redis restart or failover: every call of the next
        // pipeline answers NOSCRIPT before it touches anything.
        let flushed: String = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut redis.connection())
            .expect("SCRIPT FLUSH");
        assert_eq!(flushed, "OK");
        let out = c
            .reward_batch(pb::RewardBatchRequest {
                experiment: "e".into(),
                rewards: chunk.iter().map(|d| by_decision(d, 2.0)).collect(),
            })
            .await
            .expect("batch")
            .into_inner()
            .results;
        assert!(
            out.iter().all(|r| r.error_code.is_empty() && !r.duplicate),
            "batch {b}: {out:?}"
        );
        // And an aggregate after a flush.
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query::<String>(&mut redis.connection())
            .expect("SCRIPT FLUSH");
        let r = c
            .reward_aggregate(aggregate("e", "y", 2, 4.0, 8.0, &format!("r{b}")))
            .await
            .expect("aggregate after flush")
            .into_inner();
        assert!(!r.duplicate);
    }
    let a = arms(&mut c, "e").await;
    assert_eq!(a[0].rewards + a[1].rewards, 300 + 3 * 2);
    // Every decision exactly once: a second pass is all duplicates.
    let out = c
        .reward_batch(pb::RewardBatchRequest {
            experiment: "e".into(),
            rewards: ids[..100].iter().map(|d| by_decision(d, 2.0)).collect(),
        })
        .await
        .expect("batch")
        .into_inner()
        .results;
    assert!(out.iter().all(|r| r.duplicate && r.error_code.is_empty()));
    if let Some(r) = s.running {
        r.stop().await.expect("stop");
    }
}

// ---- bad input: code, field, HTTP status ----------------------------------

/// One HTTP/1.1 connection (keep-alive) to the server.
struct Http {
    addr: SocketAddr,
    send: http1::SendRequest<Full<Bytes>>,
}

impl Http {
    async fn connect(addr: SocketAddr) -> Http {
        let io = TokioIo::new(tokio::net::TcpStream::connect(addr).await.expect("connect"));
        let (send, conn) = http1::handshake(io).await.expect("handshake");
        tokio::spawn(conn);
        Http { addr, send }
    }

    /// POST a JSON body; (status, body).
    async fn post(&mut self, path: &str, body: &Json) -> (u16, Json) {
        let req = http::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        self.send.ready().await.expect("connection");
        let res = self.send.send_request(req).await.expect("send");
        let status = res.status().as_u16();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {bytes:?}"));
        (status, json)
    }
}

/// gRPC code name → HTTP status, written out independently of the table in
/// src/error.rs (the standard google.rpc.Code mapping).
fn http_status(code: &str) -> u16 {
    match code {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => 400,
        "NOT_FOUND" => 404,
        other => panic!("no status listed for {other}"),
    }
}

fn grpc_code(name: &str) -> Code {
    match name {
        "INVALID_ARGUMENT" => Code::InvalidArgument,
        "NOT_FOUND" => Code::NotFound,
        other => panic!("no code listed for {other}"),
    }
}

/// A bad request over both transports: its gRPC code, its HTTP status, and
/// the field at the start of its message.
struct Bad {
    what: &'static str,
    grpc: Option<pb::RewardAggregateRequest>,
    batch: Option<pb::RewardBatchRequest>,
    http_path: &'static str,
    http_body: Json,
    code: &'static str,
    field: &'static str,
}

fn bad_aggregates() -> Vec<Bad> {
    let long = "r".repeat(129);
    let agg = |exp: &str, arm: &str, count: u64, sum: f64, ss: f64, id: &str| {
        Some(aggregate(exp, arm, count, sum, ss, id))
    };
    vec![
        Bad {
            what: "count 0",
            grpc: agg("b", "x", 0, 0.0, 0.0, "r"),
            batch: None,
            http_path: "/v1/experiments/b:rewardAggregate",
            http_body: json!({"arm": "x", "count": "0", "sum": 0, "requestId": "r"}),
            code: "INVALID_ARGUMENT",
            field: "count:",
        },
        Bad {
            what: "count above 1e9",
            grpc: agg("b", "x", 1_000_000_001, 0.0, 0.0, "r"),
            batch: None,
            http_path: "/v1/experiments/b:rewardAggregate",
            http_body: json!({"arm": "x", "count": "1000000001", "sum": 0, "requestId": "r"}),
            code: "INVALID_ARGUMENT",
            field: "count:",
        },
        Bad {
            what: "negative count (HTTP only: uint64 over gRPC)",
            grpc: None,
            batch: None,
            http_path: "/v1/experiments/b:rewardAggregate",
            http_body: json!({"arm": "x", "count": -5, "sum": 0, "requestId": "r"}),
            code: "INVALID_ARGUMENT",
            field: "count",
        },
        Bad {
            what: "Bernoulli sum above count",
            grpc: agg("b", "x", 10, 11.0, 0.0, "r"),
            batch: None,
            http_path: "/v1/experiments/b:rewardAggregate",
            http_body: json!({"arm": "x", "count": "10", "sum": 11, "requestId": "r"}),
            code: "INVALID_ARGUMENT",
            field: "sum:",
        },
        Bad {
            what: "Bernoulli negative sum",
            grpc: agg("b", "x", 10, -1.0, 0.0, "r"),
            batch: None,
            http_path: "/v1/experiments/b:rewardAggregate",
            http_body: json!({"arm": "x", "count": "10", "sum": -1, "requestId": "r"}),
            code: "INVALID_ARGUMENT",
            field: "sum:",
        },
        Bad {
            what: "NaN sum",
            grpc: agg("g", "x", 10, f64::NAN, 0.0, "r"),
            batch: None,
            http_path: "/v1/experiments/g:rewardAggregate",
            http_body: json!({"arm": "x", "count": "10", "sum": "NaN", "requestId": "r"}),
            code: "INVALID_ARGUMENT",
            field: "sum:",
        },
        Bad {
            what: "infinite sum of squares",
            grpc: agg("g", "x", 10, 1.0, f64::INFINITY, "r"),
            batch: None,
            http_path: "/v1/experiments/g:rewardAggregate",
            http_body: json!({"arm": "x", "count": "10", "sum": 1, "sumSquares": "Infinity", "requestId": "r"}),
            code: "INVALID_ARGUMENT",
            field: "sum_squares:",
        },
        Bad {
            // Σx² ≥ (Σx)²/n: 10 numbers summing to 10 have Σx² ≥ 10.
            what: "Gaussian sum of squares below sum²/count",
            grpc: agg("g", "x", 10, 10.0, 9.9, "r"),
            batch: None,
            http_path: "/v1/experiments/g:rewardAggregate",
            http_body: json!({"arm": "x", "count": "10", "sum": 10, "sumSquares": 9.9, "requestId": "r"}),
            code: "INVALID_ARGUMENT",
            field: "sum_squares:",
        },
        Bad {
            what: "no request id",
            grpc: agg("b", "x", 10, 1.0, 0.0, ""),
            batch: None,
            http_path: "/v1/experiments/b:rewardAggregate",
            http_body: json!({"arm": "x", "count": "10", "sum": 1}),
            code: "INVALID_ARGUMENT",
            field: "request_id:",
        },
        Bad {
            what: "request id of 129 bytes",
            grpc: agg("b", "x", 10, 1.0, 0.0, &long),
            batch: None,
            http_path: "/v1/experiments/b:rewardAggregate",
            http_body: json!({"arm": "x", "count": "10", "sum": 1, "requestId": long}),
            code: "INVALID_ARGUMENT",
            field: "request_id:",
        },
        Bad {
            what: "unknown arm",
            grpc: agg("b", "zz", 10, 1.0, 0.0, "r"),
            batch: None,
            http_path: "/v1/experiments/b:rewardAggregate",
            http_body: json!({"arm": "zz", "count": "10", "sum": 1, "requestId": "r"}),
            code: "NOT_FOUND",
            field: "arm:",
        },
        Bad {
            what: "unknown experiment",
            grpc: agg("nope", "x", 10, 1.0, 0.0, "r"),
            batch: None,
            http_path: "/v1/experiments/nope:rewardAggregate",
            http_body: json!({"arm": "x", "count": "10", "sum": 1, "requestId": "r"}),
            code: "NOT_FOUND",
            field: "experiment:",
        },
        Bad {
            what: "empty batch",
            grpc: None,
            batch: Some(pb::RewardBatchRequest {
                experiment: "b".into(),
                rewards: vec![],
            }),
            http_path: "/v1/experiments/b:rewardBatch",
            http_body: json!({"rewards": []}),
            code: "INVALID_ARGUMENT",
            field: "rewards:",
        },
        Bad {
            what: "1,001 items",
            grpc: None,
            batch: Some(pb::RewardBatchRequest {
                experiment: "b".into(),
                rewards: vec![by_arm("x", 1.0); 1001],
            }),
            http_path: "/v1/experiments/b:rewardBatch",
            http_body: json!({"rewards": vec![json!({"arm": "x", "value": 1}); 1001]}),
            code: "INVALID_ARGUMENT",
            field: "rewards:",
        },
        Bad {
            what: "batch for an unknown experiment",
            grpc: None,
            batch: Some(pb::RewardBatchRequest {
                experiment: "nope".into(),
                rewards: vec![by_arm("x", 1.0)],
            }),
            http_path: "/v1/experiments/nope:rewardBatch",
            http_body: json!({"rewards": [{"arm": "x", "value": 1}]}),
            code: "NOT_FOUND",
            field: "experiment:",
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_names_its_field_with_its_code_and_status() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let addr = s.running.as_ref().expect("running").addr;
        let mut c = s.client().await;
        let mut h = Http::connect(addr).await;
        c.create_experiment(experiment("b", pb::RewardModel::Bernoulli, &["x"]))
            .await
            .expect("create");
        c.create_experiment(experiment("g", pb::RewardModel::Gaussian, &["x"]))
            .await
            .expect("create");
        for bad in bad_aggregates() {
            let what = format!("{backend:?} {}", bad.what);
            let answer = match (bad.grpc, bad.batch) {
                (Some(a), _) => Some(c.reward_aggregate(a).await.map(|_| ())),
                (_, Some(b)) => Some(c.reward_batch(b).await.map(|_| ())),
                _ => None,
            };
            if let Some(answer) = answer {
                let e = answer.expect_err(&what);
                assert_eq!(e.code(), grpc_code(bad.code), "{what}: {}", e.message());
                assert!(
                    e.message().starts_with(bad.field),
                    "{what}: {}",
                    e.message()
                );
            }
            let (http, body) = h.post(bad.http_path, &bad.http_body).await;
            assert_eq!(http, http_status(bad.code), "{what}: {body}");
            assert_eq!(body["error"]["status"], bad.code, "{what}: {body}");
            let msg = body["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains(bad.field), "{what}: {msg}");
        }
        // Nothing bad was applied.
        assert_eq!(rewards(&mut c, "b").await, 0, "{backend:?}");
        assert_eq!(rewards(&mut c, "g").await, 0, "{backend:?}");

        // And the good ones over HTTP: an aggregate, then a batch with a
        // bad item, each result in order.
        let (st, body) = h
            .post(
                "/v1/experiments/b:rewardAggregate",
                &json!({"arm": "x", "count": "412", "sum": 9, "requestId": "m1"}),
            )
            .await;
        assert_eq!(st, 200, "{backend:?}: {body}");
        assert_eq!(
            (&body["arm"], &body["duplicate"]),
            (&json!("x"), &json!(false)),
            "{backend:?}: {body}"
        );
        let (st, body) = h
            .post(
                "/v1/experiments/b:rewardBatch",
                &json!({"rewards": [{"arm": "x", "value": 1}, {"arm": "x", "value": 2}]}),
            )
            .await;
        assert_eq!(st, 200, "{backend:?}: {body}");
        assert_eq!(body["results"][0]["arm"], "x", "{backend:?}: {body}");
        assert_eq!(body["results"][0]["errorCode"], "", "{backend:?}: {body}");
        assert_eq!(
            body["results"][1]["errorCode"], "INVALID_ARGUMENT",
            "{backend:?}: {body}"
        );
        assert_eq!(rewards(&mut c, "b").await, 413, "{backend:?}");
        if let Some(r) = s.running {
            r.stop().await.expect("stop");
        }
    }
}

// ---- Redis memory ---------------------------------------------------------

fn used_memory(r: &RedisServer) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut r.connection())
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

/// README.md quotes this figure.
#[tokio::test]
async fn each_request_id_costs_under_200_bytes_of_redis_memory() {
    const N: usize = 10_000;
    let redis = RedisServer::start();
    let s = start_on_redis(&redis.url()).await;
    let mut c = replica_client(&s).await;
    c.create_experiment(experiment(
        "canary-errors",
        pb::RewardModel::Bernoulli,
        &["baseline", "candidate"],
    ))
    .await
    .expect("create");
    c.reward_aggregate(aggregate(
        "canary-errors",
        "baseline",
        1,
        0.0,
        0.0,
        "warm-up",
    ))
    .await
    .expect("warm-up");
    let before = used_memory(&redis);
    for i in 0..N {
        // A 36-byte id, like a UUID: the store keeps a 16-byte digest.
        c.reward_aggregate(aggregate(
            "canary-errors",
            "candidate",
            412,
            9.0,
            0.0,
            &format!("{i:036}"),
        ))
        .await
        .expect("aggregate");
    }
    let per_id = (used_memory(&redis) - before) as f64 / N as f64;
    eprintln!("redis memory per stored request id: {per_id:.1} bytes");
    // A key with a TTL: main dict entry (24) + key sds of
    // `posterior:{canary-errors}:r:<32 hex>` (60 bytes + header + NUL, 64
    // in jemalloc's size class) + the empty value (an embedded string
    // object, 24) + expires dict entry (24) + bucket arrays: with ~10,000
    // keys both dicts have 16,384 buckets of 8 bytes (26 bytes per key) ≈
    // 160-190 bytes (187 measured).
    assert!(per_id < 200.0, "{per_id}");
    let counts: HashMap<String, u64> = arms(&mut c, "canary-errors")
        .await
        .into_iter()
        .map(|a| (a.name, a.rewards))
        .collect();
    assert_eq!(counts["candidate"], 412 * N as u64);
    s.stop().await.expect("stop");
}

/// A retired arm is never chosen again, but late outcomes of its past
/// decisions still count, as Reward by arm does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_arm_still_takes_aggregates_and_batches() {
    for backend in BACKENDS {
        let s = TestServer::start(backend).await;
        let mut c = s.client().await;
        c.create_experiment(experiment("e", pb::RewardModel::Bernoulli, &["x", "y"]))
            .await
            .expect("create");
        c.retire_arm(pb::RetireArmRequest {
            experiment: "e".into(),
            arm: "y".into(),
        })
        .await
        .expect("retire");
        let r = c
            .reward_aggregate(aggregate("e", "y", 50, 5.0, 0.0, "late"))
            .await
            .expect("aggregate to a retired arm")
            .into_inner();
        assert_eq!((r.arm.as_str(), r.duplicate), ("y", false), "{backend:?}");
        let out = c
            .reward_batch(pb::RewardBatchRequest {
                experiment: "e".into(),
                rewards: vec![by_arm("y", 1.0), by_arm("x", 0.0)],
            })
            .await
            .expect("batch")
            .into_inner()
            .results;
        assert!(out.iter().all(|r| r.error_code.is_empty()), "{out:?}");
        let a = arms(&mut c, "e").await;
        assert_eq!((a[0].rewards, a[1].rewards), (1, 51), "{backend:?}");
        assert!(a[1].retired);
        if let Some(r) = s.running {
            r.stop().await.expect("stop");
        }
    }
}
