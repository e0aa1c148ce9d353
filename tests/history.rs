//! History (GetExperimentHistory, `GET /v1/experiments/{name}/history`)
//! and study slices and calibration (GetStudySlices,
//! `GET /v1/studies/{name}/slices`), black-box on the real server, plus the
//! store contract of `append_history`/`history` on all three real stores.
//!
//! Recording runs on the wall clock (every `history.interval_seconds`);
//! tests that need points set a 1 s interval and poll until what they wait
//! for is there (bounded waits, no assertion on timing).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{RedisServer, test_config};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use posterior::bandit::history::{ArmPoint, HistoryPoint};
use posterior::bandit::{ExperimentDef, Model, NewExperiment};
use posterior::pb;
use posterior::pb::bandits_client::BanditsClient;
use posterior::server::Running;
use posterior::store::embedded::EmbeddedStore;
use posterior::store::memory::MemoryStore;
use posterior::store::redis::{RedisOptions, RedisStore};
use posterior::store::{Store, StoreError};
use tonic::Code;
use tonic::transport::Channel;

// ---- helpers ----------------------------------------------------------------

fn def(name: &str, arms: usize) -> ExperimentDef {
    NewExperiment {
        name: name.into(),
        model: Model::Bernoulli,
        prior: None,
        half_life_seconds: 0.0,
        arms: (0..arms).map(|i| format!("arm-{i}")).collect(),
        design: Default::default(),
    }
    .into_def(7)
    .expect("valid definition")
}

/// A point with realistic values (none with more than 7 significant
/// digits, so it reads back equal from every store).
fn point(time_ms: i64, arms: usize, decisions: u64) -> HistoryPoint {
    HistoryPoint {
        time_ms,
        arms: (0..arms)
            .map(|i| ArmPoint {
                name: format!("arm-{i}"),
                rewards: 1000 + i as u64,
                evidence: 998.5,
                mean: 0.125 + i as f64 / 64.0,
                lower: 0.0625,
                upper: 0.25,
                prob_best: if i == 0 { 0.75 } else { 0.25 / 4.0 },
                decisions: decisions + i as u64,
            })
            .collect(),
    }
}

async fn stores(
    redis: &RedisServer,
    dir: &tempfile::TempDir,
) -> Vec<(&'static str, Box<dyn Store>)> {
    vec![
        ("memory", Box::new(MemoryStore::new()) as Box<dyn Store>),
        (
            "embedded",
            Box::new(EmbeddedStore::open(&dir.path().join("h.redb")).expect("open embedded")),
        ),
        (
            "redis",
            Box::new(
                RedisStore::connect(&redis.url(), &RedisOptions::default())
                    .await
                    .expect("connect redis"),
            ),
        ),
    ]
}

async fn client(r: &Running) -> BanditsClient<Channel> {
    BanditsClient::connect(format!("http://{}", r.addr))
        .await
        .expect("connect")
}

/// A server recording every second.
async fn server(redis_url: Option<&str>) -> Running {
    let mut cfg = test_config();
    cfg.history.interval_seconds = 1;
    if let Some(u) = redis_url {
        cfg.store.redis_url = u.to_string();
    }
    posterior::server::start(cfg).await.expect("server starts")
}

fn create(name: &str, arms: &[&str]) -> pb::CreateExperimentRequest {
    pb::CreateExperimentRequest {
        name: name.into(),
        arms: arms.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

async fn choose_n(c: &mut BanditsClient<Channel>, exp: &str, n: usize) {
    for _ in 0..n {
        c.choose(pb::ChooseRequest {
            experiment: exp.into(),
            ..Default::default()
        })
        .await
        .expect("choose");
    }
}

async fn history(
    c: &mut BanditsClient<Channel>,
    name: &str,
    since_ms: Option<i64>,
) -> Result<Vec<pb::HistoryPoint>, tonic::Status> {
    c.get_experiment_history(pb::GetExperimentHistoryRequest {
        name: name.into(),
        since_ms,
    })
    .await
    .map(|r| r.into_inner().points)
}

fn total_decisions(points: &[pb::HistoryPoint]) -> u64 {
    points
        .iter()
        .flat_map(|p| &p.arms)
        .map(|a| a.decisions)
        .sum()
}

/// Poll until `done` holds (bounded: recording is on the wall clock).
async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

/// `GET path` over HTTP/1.1: (status, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("tcp");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = send.send_request(req).await.expect("send");
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

// ---- the store contract, on all three stores ---------------------------------

#[tokio::test]
async fn append_and_read_history_on_every_store() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    for (backend, store) in stores(&redis, &dir).await {
        let e = def("e", 3);
        store.create_experiment(&e).await.expect("create");

        // The first append of an interval creates its point; later ones
        // (other replicas) add their decisions to it, arm by arm.
        assert!(
            store
                .append_history("e", &point(60_000, 3, 5), 10)
                .await
                .expect("append"),
            "{backend}"
        );
        assert!(
            !store
                .append_history("e", &point(60_000, 3, 2), 10)
                .await
                .expect("append"),
            "{backend}"
        );
        let mut other = point(60_000, 3, 0);
        other.arms[0].mean = 0.875; // ignored: the first replica's posterior stands
        assert!(!store.append_history("e", &other, 10).await.expect("append"));
        let h = store.history("e", None).await.expect("history");
        assert_eq!(h.len(), 1, "{backend}: one point per interval");
        let got: Vec<u64> = h[0].arms.iter().map(|a| a.decisions).collect();
        // (5, 6, 7) + (2, 3, 4) + (0, 1, 2)
        assert_eq!(got, vec![7, 10, 13], "{backend}");
        let mut want = point(60_000, 3, 5);
        for (a, d) in want.arms.iter_mut().zip(&got) {
            a.decisions = *d;
        }
        assert_eq!(h[0], want, "{backend}: the stored point reads back");

        // Retention: only the newest `retention_points` stay.
        for k in 2..=12 {
            store
                .append_history("e", &point(k * 60_000, 3, 1), 4)
                .await
                .expect("append");
        }
        let h = store.history("e", None).await.expect("history");
        let times: Vec<i64> = h.iter().map(|p| p.time_ms).collect();
        assert_eq!(times, vec![540_000, 600_000, 660_000, 720_000], "{backend}");

        // since_ms: points at or after it.
        let h = store.history("e", Some(600_000)).await.expect("history");
        assert_eq!(h.len(), 3, "{backend}");
        let h = store.history("e", Some(600_001)).await.expect("history");
        assert_eq!(h.len(), 2, "{backend}");
        assert!(
            store
                .history("e", Some(i64::MAX))
                .await
                .expect("history")
                .is_empty()
        );

        // An arm added since an interval's point: its counts have no arm there.
        assert!(
            !store
                .append_history("e", &point(720_000, 4, 1), 4)
                .await
                .expect("append")
        );
        let h = store.history("e", Some(720_000)).await.expect("history");
        assert_eq!(h[0].arms.len(), 3, "{backend}");
        assert_eq!(h[0].arms[0].decisions, 2, "{backend}");

        // Unknown experiment: NotFound on append, nothing to read.
        match store.append_history("nope", &point(60_000, 1, 1), 4).await {
            Err(StoreError::NotFound(m)) => assert!(m.contains("nope"), "{m}"),
            other => panic!("{backend}: {other:?}"),
        }
        assert!(
            store
                .history("nope", None)
                .await
                .expect("history")
                .is_empty()
        );

        // Deleting the experiment deletes its history; a re-created one starts empty.
        assert!(store.delete_experiment("e").await.expect("delete"));
        assert!(
            store.history("e", None).await.expect("history").is_empty(),
            "{backend}"
        );
        store.create_experiment(&e).await.expect("re-create");
        assert!(
            store.history("e", None).await.expect("history").is_empty(),
            "{backend}"
        );
    }
    // Redis: the history lived under the experiment's hash tag, and is gone.
    let mut conn = redis.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*history*")
        .query(&mut conn)
        .expect("keys");
    assert!(keys.is_empty(), "{keys:?}");
}

// ---- recording on the server ----------------------------------------------------

/// Two replicas on one Redis, recording every second: exactly one point
/// per interval, and the decisions both served all land in the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_one_point_per_interval_and_every_decision_counted() {
    let redis = RedisServer::start();
    let (r1, r2) = (
        server(Some(&redis.url())).await,
        server(Some(&redis.url())).await,
    );
    let (mut c1, mut c2) = (client(&r1).await, client(&r2).await);
    c1.create_experiment(create("e", &["a", "b", "c"]))
        .await
        .expect("create");
    let start = posterior::app::now_ms();
    // Different totals per replica: a sum that misses either one shows.
    choose_n(&mut c1, "e", 30).await;
    choose_n(&mut c2, "e", 50).await;
    choose_n(&mut c1, "e", 7).await;
    let mut c = c1.clone();
    wait_for("87 decisions in the history", || {
        let mut c = c.clone();
        async move { total_decisions(&history(&mut c, "e", None).await.expect("history")) >= 87 }
    })
    .await;
    // A few more intervals: nothing is counted twice.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let points = history(&mut c, "e", None).await.expect("history");
    let end = posterior::app::now_ms();
    assert_eq!(total_decisions(&points), 87);
    // One point per interval: distinct interval boundaries, increasing,
    // and no more of them than intervals elapsed (two replicas recording
    // separately would give about twice as many).
    for w in points.windows(2) {
        assert!(
            w[0].time_ms < w[1].time_ms,
            "{} then {}",
            w[0].time_ms,
            w[1].time_ms
        );
    }
    assert!(points.iter().all(|p| p.time_ms % 1000 == 0));
    let intervals = (end - start) / 1000 + 2;
    assert!(
        points.len() as i64 <= intervals,
        "{} points in {intervals} intervals",
        points.len()
    );
    // The same seen from the raw store: one member per score.
    let mut conn = redis.connection();
    let scores: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg("posterior:{e}:history")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut conn)
        .expect("zrange");
    let mut distinct: Vec<i64> = scores.iter().map(|(_, s)| *s as i64).collect();
    distinct.dedup();
    assert_eq!(distinct.len(), scores.len());
    // Every point has every arm, with its posterior summary.
    for p in &points {
        assert_eq!(p.arms.len(), 3);
        let pb: f64 = p.arms.iter().map(|a| a.prob_best).sum();
        assert!((pb - 1.0).abs() < 1e-3, "P(best) sums to {pb}");
        for a in &p.arms {
            assert!(a.lower <= a.mean && a.mean <= a.upper, "{a:?}");
        }
    }
    // Deleting the experiment deletes its history.
    c1.delete_experiment(pb::DeleteExperimentRequest { name: "e".into() })
        .await
        .expect("delete");
    let exists: i64 = redis::cmd("EXISTS")
        .arg("posterior:{e}:history")
        .query(&mut conn)
        .expect("exists");
    // A recording in flight when the delete ran finds no experiment: the
    // store's script refuses it, so nothing comes back.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let exists_later: i64 = redis::cmd("EXISTS")
        .arg("posterior:{e}:history")
        .query(&mut conn)
        .expect("exists");
    assert_eq!((exists, exists_later), (0, 0));
    r1.stop().await.expect("stop");
    r2.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_equals_grpc_since_ms_and_bad_input() {
    let r = server(None).await;
    let mut c = client(&r).await;
    c.create_experiment(create("e", &["a", "b"]))
        .await
        .expect("create");
    choose_n(&mut c, "e", 10).await;
    let probe = c.clone();
    wait_for("three points", || {
        let mut c = probe.clone();
        async move { history(&mut c, "e", None).await.expect("history").len() >= 3 }
    })
    .await;

    // HTTP answers the same message as gRPC (proto3 JSON). A point may be
    // recorded between two calls: compare when the gRPC answers before and
    // after the HTTP call agree.
    let mut same = false;
    for _ in 0..10 {
        let before = history(&mut c, "e", None).await.expect("history");
        let (status, body) = http_get(r.addr, "/v1/experiments/e/history").await;
        let after = history(&mut c, "e", None).await.expect("history");
        assert_eq!(status, 200, "{body}");
        if before == after {
            let http: pb::GetExperimentHistoryResponse = serde_json::from_str(&body).expect("JSON");
            assert_eq!(http.points, before);
            same = true;
            break;
        }
    }
    assert!(same, "the history kept changing between calls");

    // since_ms keeps the points at or after it, on both transports.
    let all = history(&mut c, "e", None).await.expect("history");
    let t = all[1].time_ms;
    let since = history(&mut c, "e", Some(t)).await.expect("history");
    assert_eq!(since.first().map(|p| p.time_ms), Some(t));
    assert!(since.iter().all(|p| p.time_ms >= t));
    let (status, body) = http_get(r.addr, &format!("/v1/experiments/e/history?sinceMs={t}")).await;
    assert_eq!(status, 200);
    let http: pb::GetExperimentHistoryResponse = serde_json::from_str(&body).expect("JSON");
    assert!(http.points.iter().all(|p| p.time_ms >= t));
    assert_eq!(http.points.first().map(|p| p.time_ms), Some(t));

    // Bad input: the field and the rule, the right code and status.
    let e = history(&mut c, "nope", None).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("nope"), "{}", e.message());
    let (status, _) = http_get(r.addr, "/v1/experiments/nope/history").await;
    assert_eq!(status, 404);
    let e = history(&mut c, "e", Some(-5)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("since_ms"), "{}", e.message());
    let (status, body) = http_get(r.addr, "/v1/experiments/e/history?sinceMs=-5").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("since_ms"), "{body}");
    let (status, body) = http_get(r.addr, "/v1/experiments/e/history?sinceMs=yesterday").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("sinceMs"), "{body}");
    let (status, body) = http_get(r.addr, "/v1/experiments/e/history?since=1").await;
    assert_eq!(status, 400, "{body}");
    let e = history(&mut c, "bad name!", None).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().starts_with("name"), "{}", e.message());
    r.stop().await.expect("stop");
}

// ---- what history costs Redis --------------------------------------------------

fn used_memory(r: &RedisServer) -> i64 {
    let mut conn = r.connection();
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut conn)
        .expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

/// The README's figure: a week at one minute (the default retention) of a
/// 10-arm experiment, in Redis bytes. Values vary like real ones (the
/// stored form's length depends on the digits).
#[tokio::test]
async fn redis_bytes_per_experiment_at_the_default_retention() {
    use rand::{RngExt, SeedableRng};
    const ARMS: usize = 10;
    let retention = posterior::app::history::DEFAULT_RETENTION_POINTS;
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url(), &RedisOptions::default())
        .await
        .expect("connect");
    store
        .create_experiment(&def("e", ARMS))
        .await
        .expect("create");
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let before = used_memory(&redis);
    let t0 = 1_764_633_600_000i64;
    // Twice the retention: the bound holds and the figure is the steady state.
    for k in 0..2 * retention as i64 {
        let mut p = point(t0 + k * 60_000, ARMS, 0);
        for (i, a) in p.arms.iter_mut().enumerate() {
            let n = 100 * k as u64 + i as u64;
            a.rewards = n;
            a.evidence = n as f64;
            a.mean = rng.random::<f64>();
            a.lower = a.mean * rng.random::<f64>();
            a.upper = a.mean + (1.0 - a.mean) * rng.random::<f64>();
            a.prob_best = rng.random::<f64>();
            a.decisions = rng.random_range(0..5_000);
        }
        store
            .append_history("e", &p, retention)
            .await
            .expect("append");
    }
    let bytes = used_memory(&redis) - before;
    let points = store.history("e", None).await.expect("history");
    assert_eq!(points.len(), retention);
    println!(
        "history of one {ARMS}-arm experiment at {retention} points: {bytes} bytes of Redis memory ({:.0} per point, {:.0} per arm-point)",
        bytes as f64 / retention as f64,
        bytes as f64 / (retention * ARMS) as f64
    );
    // The stored form is ~70 bytes per arm-point plus the sorted set's
    // per-member overhead (~60 bytes per point): under 1 KiB per point.
    assert!(bytes < 10 * 1024 * 1024, "{bytes} bytes");
}

// ---- study slices and calibration ------------------------------------------------

use posterior::pb::optimizer_client::OptimizerClient;

fn number(v: &pb::Value) -> Option<f64> {
    match v.kind {
        Some(pb::value::Kind::Number(x)) => Some(x),
        _ => None,
    }
}

/// A study with a float, an int and a categorical parameter, and 12
/// observed trials of a smooth objective with a little deterministic noise.
async fn study_with_trials(c: &mut OptimizerClient<Channel>, name: &str, trials: usize) {
    use pb::parameter::Kind;
    c.create_study(pb::CreateStudyRequest {
        name: name.into(),
        parameters: vec![
            pb::Parameter {
                name: "x".into(),
                kind: Some(Kind::Float(pb::FloatRange {
                    low: 0.0,
                    high: 1.0,
                    log: false,
                    step: 0.0,
                })),
            },
            pb::Parameter {
                name: "n".into(),
                kind: Some(Kind::Int(pb::IntRange {
                    low: 1,
                    high: 8,
                    log: false,
                    step: 0,
                })),
            },
            pb::Parameter {
                name: "arch".into(),
                kind: Some(Kind::Categorical(pb::CategoricalValues {
                    values: vec!["x86".into(), "arm".into()],
                    ..Default::default()
                })),
            },
        ],
        objective: Some(pb::Objective {
            name: "cost".into(),
            goal: pb::Goal::Minimize as i32,
        }),
        seed: 3,
        ..Default::default()
    })
    .await
    .expect("create study");
    for k in 0..trials {
        let t = c
            .suggest(pb::SuggestRequest {
                study: name.into(),
                count: 1,
            })
            .await
            .expect("suggest")
            .into_inner()
            .trials
            .remove(0);
        let x = t.params.get("x").and_then(number).expect("x");
        let n = t.params.get("n").and_then(number).expect("n");
        let arm = matches!(
            t.params.get("arch").and_then(|v| v.kind.clone()),
            Some(pb::value::Kind::Category(ref c)) if c == "arm"
        );
        let value = (x - 0.3).powi(2)
            + 0.05 * (n - 4.0).abs()
            + if arm { 0.1 } else { 0.0 }
            + 0.01 * ((k * 7 % 5) as f64 - 2.0);
        c.observe(pb::ObserveRequest {
            study: name.into(),
            trial_id: t.trial_id,
            value,
            ..Default::default()
        })
        .await
        .expect("observe");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_pass_through_the_recommendation_on_every_store() {
    for backend in common::BACKENDS {
        let s = common::TestServer::start(backend).await;
        let running = s.running.as_ref().expect("running");
        let mut c = OptimizerClient::connect(s.url.clone())
            .await
            .expect("connect");
        study_with_trials(&mut c, "s", 12).await;
        let study = c
            .get_study(pb::GetStudyRequest { name: "s".into() })
            .await
            .expect("get study")
            .into_inner();
        let rec = study.recommended.clone().expect("a recommendation");
        let at = rec.trial.clone().expect("trial").params;
        let slices = c
            .get_study_slices(pb::GetStudySlicesRequest {
                name: "s".into(),
                points: Some(20),
            })
            .await
            .expect("slices")
            .into_inner();
        assert_eq!(
            slices.recommended.as_ref().map(|t| t.params.clone()),
            Some(at.clone())
        );
        let names: Vec<&str> = slices.slices.iter().map(|p| p.parameter.as_str()).collect();
        assert_eq!(names, vec!["x", "n", "arch"], "{backend:?}");
        for p in &slices.slices {
            assert_eq!(p.values.len(), p.mean.len());
            assert_eq!(p.values.len(), p.std.len());
            assert!(p.std.iter().all(|s| s.is_finite() && *s >= 0.0));
            // The slice at the recommended value is the GP's prediction
            // there: GetStudy's recommended mean and std.
            let k = p
                .values
                .iter()
                .position(|v| Some(v) == at.get(&p.parameter))
                .unwrap_or_else(|| panic!("{}: recommended value not in the slice", p.parameter));
            let tol = 1e-9 * (1.0 + rec.mean.abs());
            assert!(
                (p.mean[k] - rec.mean).abs() < tol,
                "{}: {} vs {}",
                p.parameter,
                p.mean[k],
                rec.mean
            );
            assert!(
                (p.std[k] - rec.std).abs() < 1e-9 * (1.0 + rec.std),
                "{}: {} vs {}",
                p.parameter,
                p.std[k],
                rec.std
            );
        }
        // x: 20 values over [0, 1] plus the recommended one (unless it is one of them).
        let x = &slices.slices[0];
        assert!((20..=21).contains(&x.values.len()), "{}", x.values.len());
        let xs: Vec<f64> = x.values.iter().filter_map(number).collect();
        assert_eq!(xs.first(), Some(&0.0));
        assert_eq!(xs.last(), Some(&1.0));
        assert!(xs.windows(2).all(|w| w[0] < w[1]));
        // n: whole numbers 1..=8, once each.
        let ns: Vec<f64> = slices.slices[1].values.iter().filter_map(number).collect();
        assert_eq!(ns, (1..=8).map(f64::from).collect::<Vec<_>>());
        // arch: one value per level.
        assert_eq!(slices.slices[2].values.len(), 2);
        // Calibration: a coverage, the same in GetStudy and in the slices.
        let cal = study.calibration.expect("calibration with 12 trials");
        println!(
            "{backend:?}: recommended mean {:.4} ± {:.4}, calibration {cal}",
            rec.mean, rec.std
        );
        assert!((0.0..=1.0).contains(&cal), "{cal}");
        assert_eq!(slices.calibration, Some(cal));

        // HTTP answers the same.
        let (status, body) = http_get(running.addr, "/v1/studies/s/slices?points=20").await;
        assert_eq!(status, 200, "{body}");
        let http: pb::GetStudySlicesResponse = serde_json::from_str(&body).expect("JSON");
        assert_eq!(http, slices);
        // Default points: 50 along x.
        let (_, body) = http_get(running.addr, "/v1/studies/s/slices").await;
        let http: pb::GetStudySlicesResponse = serde_json::from_str(&body).expect("JSON");
        assert!((50..=51).contains(&http.slices[0].values.len()));
    }
}

#[tokio::test]
async fn slices_bad_input_and_a_study_without_trials() {
    let s = common::TestServer::start(common::Backend::Memory).await;
    let addr = s.running.as_ref().expect("running").addr;
    let mut c = OptimizerClient::connect(s.url.clone())
        .await
        .expect("connect");
    study_with_trials(&mut c, "empty", 0).await;
    // No completed trial: nothing to slice through, no calibration.
    let r = c
        .get_study_slices(pb::GetStudySlicesRequest {
            name: "empty".into(),
            points: None,
        })
        .await
        .expect("slices")
        .into_inner();
    assert!(r.recommended.is_none() && r.slices.is_empty() && r.calibration.is_none());
    let st = c
        .get_study(pb::GetStudyRequest {
            name: "empty".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(st.calibration, None);

    for (points, http) in [(1, "1"), (1001, "1001"), (-3, "-3")] {
        let e = c
            .get_study_slices(pb::GetStudySlicesRequest {
                name: "empty".into(),
                points: Some(points),
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with("points"), "{}", e.message());
        let (status, body) =
            http_get(addr, &format!("/v1/studies/empty/slices?points={http}")).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("points"), "{body}");
    }
    let (status, body) = http_get(addr, "/v1/studies/empty/slices?points=many").await;
    assert_eq!(status, 400);
    assert!(body.contains("points"), "{body}");
    let e = c
        .get_study_slices(pb::GetStudySlicesRequest {
            name: "nope".into(),
            points: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    assert!(e.message().contains("nope"));
    let (status, _) = http_get(addr, "/v1/studies/nope/slices").await;
    assert_eq!(status, 404);
}

// ---- the two gauges ----------------------------------------------------------------

async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to exporter");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out
}

fn gauge(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

/// The only test of this binary with an exporter (the recorder is
/// process-global; other servers here leave metrics off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_and_calibration_gauges_are_exported() {
    let mut cfg = test_config();
    cfg.history.interval_seconds = 1;
    // Port 0: the exporter reports the port it bound, so no other test
    // process can take it in between.
    cfg.metrics.listen = "127.0.0.1:0".into();
    let r = posterior::server::start(cfg).await.expect("server starts");
    let port = r.metrics_addr.expect("metrics on").port();
    let mut c = client(&r).await;
    c.create_experiment(create("drifting", &["a", "b"]))
        .await
        .expect("create");
    let probe = c.clone();
    wait_for("a first point", || {
        let mut c = probe.clone();
        async move {
            !history(&mut c, "drifting", None)
                .await
                .expect("history")
                .is_empty()
        }
    })
    .await;
    // Evidence between two points moves the posterior: the drift (a KL
    // divergence, > 0 for any change) must show it.
    for _ in 0..20 {
        c.reward(pb::RewardRequest {
            experiment: "drifting".into(),
            target: Some(pb::reward_request::Target::Arm("a".into())),
            value: 1.0,
        })
        .await
        .expect("reward");
    }
    let series = r#"posterior_experiment_drift{experiment="drifting"}"#;
    wait_for("a positive drift", || async move {
        gauge(&scrape(port).await, series).is_some_and(|d| d > 0.0 && d.is_finite())
    })
    .await;

    // Calibration: refreshed after Observe without anyone asking GetStudy.
    let mut o = OptimizerClient::connect(format!("http://{}", r.addr))
        .await
        .expect("connect");
    study_with_trials(&mut o, "calibrated", 8).await;
    let series = r#"posterior_study_calibration{study="calibrated"}"#;
    wait_for("a calibration gauge", || async move {
        gauge(&scrape(port).await, series).is_some()
    })
    .await;
    let st = o
        .get_study(pb::GetStudyRequest {
            name: "calibrated".into(),
        })
        .await
        .expect("get")
        .into_inner();
    // GetStudy saw the last revision: no refresh of an earlier one (they
    // may finish late) can replace what it set.
    let cal = gauge(&scrape(port).await, series).expect("gauge");
    assert!((0.0..=1.0).contains(&cal), "{cal}");
    assert_eq!(st.calibration, Some(cal));
    r.stop().await.expect("stop");
}
