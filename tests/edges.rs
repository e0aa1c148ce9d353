//! Edges a new user tried: oversized strings and lists, a sub-millisecond
//! half-life, and request bodies that are not protobuf. Every one is
//! INVALID_ARGUMENT naming the field and the rule (never INTERNAL, which
//! pages the on-call engineer), each cap is accepted at its value and
//! refused one above, and the server keeps serving. Over the real server.

mod common;

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes};
use common::{Backend, TestServer};
use posterior::bandit::MAX_ARMS;
use posterior::bo::{
    MAX_CATEGORY_LEN, MAX_CONSTRAINTS, MAX_DIMENSIONS, MAX_LEVELS, MAX_METRIC_NAME_LEN, MAX_METRICS,
};
use posterior::name::MAX_NAME_LEN;
use posterior::pb::{
    self, bandits_client::BanditsClient, optimizer_client::OptimizerClient, parameter::Kind,
};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

async fn optimizer(s: &TestServer) -> OptimizerClient<Channel> {
    OptimizerClient::connect(s.url.clone())
        .await
        .expect("connect")
}

fn float(name: &str) -> pb::Parameter {
    pb::Parameter {
        name: name.into(),
        kind: Some(Kind::Float(pb::FloatRange {
            low: 0.0,
            high: 1.0,
            log: false,
            step: 0.0,
        })),
    }
}

fn categorical(name: &str, values: Vec<String>) -> pb::Parameter {
    pb::Parameter {
        name: name.into(),
        kind: Some(Kind::Categorical(pb::CategoricalValues {
            values,
            ..Default::default()
        })),
    }
}

fn study(name: &str) -> pb::CreateStudyRequest {
    pb::CreateStudyRequest {
        name: name.into(),
        parameters: vec![float("x")],
        objective: Some(pb::Objective {
            name: "loss".into(),
            goal: pb::Goal::Minimize as i32,
        }),
        constraints: vec![],
        n_initial: 2,
        acquisition: pb::Acquisition::LogEi as i32,
        seed: 3,
        metrics: vec![],
        ..Default::default()
    }
}

fn experiment(name: &str, arms: Vec<String>) -> pb::CreateExperimentRequest {
    pb::CreateExperimentRequest {
        name: name.into(),
        arms,
        model: pb::RewardModel::Bernoulli as i32,
        prior: None,
        half_life_seconds: 0.0,
        ..Default::default()
    }
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// INVALID_ARGUMENT whose message contains every one of `parts`.
#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Status>, parts: &[&str]) {
    let e = r.expect_err("must be refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{}", e.message());
    for p in parts {
        assert!(e.message().contains(p), "{:?} lacks {p:?}", e.message());
    }
}

#[tokio::test]
async fn a_huge_category_is_refused_naming_the_field() {
    let s = TestServer::start(Backend::Memory).await;
    let mut o = optimizer(&s).await;
    let mut r = study("huge-category");
    let values = vec!["small".to_string(), "x".repeat(100_000)];
    r.parameters.push(categorical("c", values));
    assert_invalid(
        o.create_study(r).await,
        &["parameters[1].categorical.values[1]: must be at most 256 bytes, got 100000"],
    );
    // The same study with categories at the cap works, trials and all, and
    // GetStudy still answers.
    let mut r = study("long-categories");
    r.parameters.push(categorical(
        "c",
        names(&"c".repeat(MAX_CATEGORY_LEN - 4), 3),
    ));
    o.create_study(r).await.expect("create at the cap");
    o.suggest(pb::SuggestRequest {
        study: "long-categories".into(),
        count: 4,
    })
    .await
    .expect("suggest");
    let got = o
        .get_study(pb::GetStudyRequest {
            name: "long-categories".into(),
        })
        .await
        .expect("get");
    assert_eq!(got.into_inner().trials.len(), 4);
}

#[tokio::test]
async fn search_space_caps_hold_at_the_cap_and_refuse_one_above() {
    let s = TestServer::start(Backend::Memory).await;
    let mut o = optimizer(&s).await;

    // Bytes per categorical value.
    let with_value = |name: &str, len: usize| {
        let mut r = study(name);
        r.parameters
            .push(categorical("c", vec!["a".into(), "v".repeat(len)]));
        r
    };
    o.create_study(with_value("cat-len-ok", MAX_CATEGORY_LEN))
        .await
        .expect("category at the cap");
    assert_invalid(
        o.create_study(with_value("cat-len-over", MAX_CATEGORY_LEN + 1))
            .await,
        &[
            "parameters[1].categorical.values[1]",
            "must be at most 256 bytes, got 257",
        ],
    );

    // Levels per categorical parameter.
    let with_levels = |name: &str, n: usize| {
        let mut r = study(name);
        r.parameters.push(categorical("c", names("l", n)));
        r
    };
    o.create_study(with_levels("levels-ok", MAX_LEVELS))
        .await
        .expect("levels at the cap");
    assert_invalid(
        o.create_study(with_levels("levels-over", MAX_LEVELS + 1))
            .await,
        &[
            "parameters[1].categorical.values",
            "must have at most 1024 values, got 1025",
        ],
    );

    // Values per ordinal parameter (the same cap).
    let with_ordinal = |name: &str, n: usize| {
        let mut r = study(name);
        r.parameters.push(pb::Parameter {
            name: "o".into(),
            kind: Some(Kind::Ordinal(pb::OrdinalValues {
                values: (0..n).map(|i| i as f64).collect(),
            })),
        });
        r
    };
    o.create_study(with_ordinal("ordinal-ok", MAX_LEVELS))
        .await
        .expect("ordinal values at the cap");
    assert_invalid(
        o.create_study(with_ordinal("ordinal-over", MAX_LEVELS + 1))
            .await,
        &[
            "parameters[1].ordinal.values",
            "must have at most 1024 values, got 1025",
        ],
    );

    // Number of parameters.
    let with_dims = |name: &str, n: usize| {
        let mut r = study(name);
        r.parameters = names("x", n).iter().map(|n| float(n)).collect();
        r
    };
    o.create_study(with_dims("dims-ok", MAX_DIMENSIONS))
        .await
        .expect("parameters at the cap");
    assert_invalid(
        o.create_study(with_dims("dims-over", MAX_DIMENSIONS + 1))
            .await,
        &["parameters: must have at most 32 parameters, got 33"],
    );

    // Bytes per parameter name.
    let mut r = study("param-name-over");
    r.parameters[0].name = "p".repeat(65);
    assert_invalid(
        o.create_study(r).await,
        &["parameters[0].name: must be at most 64 bytes, got 65"],
    );
}

#[tokio::test]
async fn metric_and_constraint_caps_hold_at_the_cap_and_refuse_one_above() {
    let s = TestServer::start(Backend::Memory).await;
    let mut o = optimizer(&s).await;
    let at = MAX_METRIC_NAME_LEN;

    // Objective name.
    let with_objective = |name: &str, len: usize| {
        let mut r = study(name);
        r.objective = Some(pb::Objective {
            name: "o".repeat(len),
            goal: 0,
        });
        r
    };
    o.create_study(with_objective("objective-ok", at))
        .await
        .expect("objective name at the cap");
    assert_invalid(
        o.create_study(with_objective("objective-over", at + 1))
            .await,
        &["objective.name: must be at most 64 bytes, got 65"],
    );

    // Declared metric names, and their number.
    let with_metrics = |name: &str, metrics: Vec<String>| {
        let mut r = study(name);
        r.metrics = metrics;
        r
    };
    o.create_study(with_metrics("metric-name-ok", vec!["m".repeat(at)]))
        .await
        .expect("metric name at the cap");
    assert_invalid(
        o.create_study(with_metrics("metric-name-over", vec!["m".repeat(at + 1)]))
            .await,
        &["metrics[0]: must be at most 64 bytes, got 65"],
    );
    o.create_study(with_metrics("metrics-ok", names("m", MAX_METRICS)))
        .await
        .expect("declared metrics at the cap");
    assert_invalid(
        o.create_study(with_metrics("metrics-over", names("m", MAX_METRICS + 1)))
            .await,
        &["metrics: must have at most 32 metrics, got 33"],
    );

    // Constraint metric names, and the number of constraints.
    let with_constraints = |name: &str, metrics: Vec<String>| {
        let mut r = study(name);
        r.constraints = metrics
            .into_iter()
            .map(|metric| pb::Constraint {
                metric,
                upper_bound: Some(1.0),
                lower_bound: None,
            })
            .collect();
        r
    };
    o.create_study(with_constraints("cmetric-ok", vec!["c".repeat(at)]))
        .await
        .expect("constraint metric at the cap");
    assert_invalid(
        o.create_study(with_constraints("cmetric-over", vec!["c".repeat(at + 1)]))
            .await,
        &["constraints[0].metric: must be at most 64 bytes, got 65"],
    );
    o.create_study(with_constraints(
        "constraints-ok",
        names("c", MAX_CONSTRAINTS),
    ))
    .await
    .expect("constraints at the cap");
    assert_invalid(
        o.create_study(with_constraints(
            "constraints-over",
            names("c", MAX_CONSTRAINTS + 1),
        ))
        .await,
        &["constraints: must have at most 8 constraints, got 9"],
    );

    // Observed metrics: key bytes and their number.
    o.create_study(study("observe")).await.expect("create");
    let trials = o
        .suggest(pb::SuggestRequest {
            study: "observe".into(),
            count: 2,
        })
        .await
        .expect("suggest")
        .into_inner()
        .trials;
    let observe = |trial_id: u64, metrics: HashMap<String, f64>| pb::ObserveRequest {
        study: "observe".into(),
        trial_id,
        value: 1.0,
        metrics,
        failed: false,
    };
    let keyed = |len: usize| HashMap::from([("k".repeat(len), 1.0)]);
    assert_invalid(
        o.observe(observe(trials[0].trial_id, keyed(at + 1))).await,
        &["metrics: each key must be at most 64 bytes, got 65"],
    );
    let many = |n: usize| names("m", n).into_iter().map(|k| (k, 0.5)).collect();
    assert_invalid(
        o.observe(observe(trials[0].trial_id, many(MAX_METRICS + 1)))
            .await,
        &["metrics: must have at most 32 entries per observation, got 33"],
    );
    o.observe(observe(trials[0].trial_id, keyed(at)))
        .await
        .expect("key at the cap");
    o.observe(observe(trials[1].trial_id, many(MAX_METRICS)))
        .await
        .expect("metrics at the cap");
}

#[tokio::test]
async fn bandit_caps_hold_at_the_cap_and_refuse_one_above() {
    let s = TestServer::start(Backend::Memory).await;
    let mut b = s.client().await;

    // Arms at create.
    b.create_experiment(experiment("arms-ok", names("a", MAX_ARMS)))
        .await
        .expect("arms at the cap");
    assert_invalid(
        b.create_experiment(experiment("arms-over", names("a", MAX_ARMS + 1)))
            .await,
        &["arms: must have at most 2000 arms per experiment, got 2001"],
    );

    // Bytes per arm name (the name rule).
    let long = |len: usize| vec!["a".repeat(len)];
    b.create_experiment(experiment("arm-name-ok", long(MAX_NAME_LEN)))
        .await
        .expect("arm name at the cap");
    assert_invalid(
        b.create_experiment(experiment("arm-name-over", long(MAX_NAME_LEN + 1)))
            .await,
        &["arms[0]: must be at most 128 bytes, got 129"],
    );

    // Entries of eligible_arms on Choose, and their names.
    let choose = |eligible_arms: Vec<String>| pb::ChooseRequest {
        experiment: "arms-ok".into(),
        eligible_arms,
        ..Default::default()
    };
    let chosen = b
        .choose(choose(names("a", MAX_ARMS)))
        .await
        .expect("eligible_arms at the cap")
        .into_inner();
    assert!(chosen.arm.starts_with('a'), "{chosen:?}");
    assert_invalid(
        b.choose(choose(names("a", MAX_ARMS + 1))).await,
        &["eligible_arms: must have at most 2000 entries, got 2001"],
    );
    assert_invalid(
        b.choose(choose(vec!["a0".into(), "x".repeat(100_000)]))
            .await,
        &["eligible_arms[1]: must be at most 128 bytes, got 100000"],
    );
}

#[tokio::test]
async fn half_life_under_a_millisecond_is_refused() {
    let s = TestServer::start(Backend::Memory).await;
    let mut b = s.client().await;
    let with_hl = |name: &str, hl: f64| {
        let mut r = experiment(name, vec!["a".into(), "b".into()]);
        r.half_life_seconds = hl;
        r
    };
    assert_invalid(
        b.create_experiment(with_hl("hl-tiny", 0.0005)).await,
        &[
            "half_life_seconds",
            "must be 0 (never decay) or at least 0.001",
            "got 0.0005",
        ],
    );
    let one_ms = b
        .create_experiment(with_hl("hl-1ms", 0.001))
        .await
        .expect("1 ms is a half-life")
        .into_inner();
    assert_eq!(
        one_ms.experiment.expect("experiment").half_life_seconds,
        0.001
    );
    b.create_experiment(with_hl("hl-never", 0.0))
        .await
        .expect("0 means never decay");
}

// ------------------------------------------------------------ raw protobuf

/// A codec that sends and receives message bodies as they are, so a test
/// can put bytes on the wire that no generated client would.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// One unary call of `path` with `body` as the request message's bytes.
async fn raw_call(url: &str, path: &'static str, body: &[u8]) -> Result<Bytes, Status> {
    let channel = Channel::from_shared(url.to_string())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(Bytes::copy_from_slice(body)),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

const CREATE_EXPERIMENT: &str = "/posterior.v1.Bandits/CreateExperiment";
const CHOOSE: &str = "/posterior.v1.Bandits/Choose";
const CREATE_STUDY: &str = "/posterior.v1.Optimizer/CreateStudy";

/// Deterministic pseudo-random bytes (xorshift64*), no RNG crate needed.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[track_caller]
fn assert_decode_refused(r: Result<Bytes, Status>, what: &str) {
    let e = r.expect_err("must be refused");
    assert_eq!(
        e.code(),
        Code::InvalidArgument,
        "{what}: {:?} {}",
        e.code(),
        e.message()
    );
    assert!(
        e.message()
            .starts_with("failed to decode Protobuf message: "),
        "{what}: {}",
        e.message()
    );
}

#[tokio::test]
async fn malformed_protobuf_is_invalid_argument_and_the_server_keeps_serving() {
    let s = TestServer::start(Backend::Memory).await;

    // The raw path itself works: a well-formed body is served.
    let ok = experiment("raw-ok", vec!["a".into(), "b".into()]).encode_to_vec();
    let answer = raw_call(&s.url, CREATE_EXPERIMENT, &ok)
        .await
        .expect("well-formed raw body");
    let answer = pb::CreateExperimentResponse::decode(answer).expect("a response");
    assert!(answer.created);

    // CreateExperimentRequest.name (field 1, length-delimited) = ff fe:
    // not UTF-8.
    let bad_utf8 = [0x0a, 0x02, 0xff, 0xfe];
    assert!(pb::CreateExperimentRequest::decode(&bad_utf8[..]).is_err());
    let r = raw_call(&s.url, CREATE_EXPERIMENT, &bad_utf8).await;
    let e = r.as_ref().expect_err("refused");
    assert!(e.message().contains("UTF-8"), "{}", e.message());
    assert_decode_refused(r, "invalid UTF-8 in name");

    // Invalid UTF-8 nested deep: parameters[0].categorical.values[0].
    let mut study_bytes = study("raw-study").encode_to_vec();
    let nested = pb::Parameter {
        name: "c".into(),
        kind: Some(Kind::Categorical(pb::CategoricalValues {
            values: vec!["\u{0}\u{0}".into()],
            ..Default::default()
        })),
    }
    .encode_to_vec();
    // Turn the two NUL bytes of the category into ff fe, then append the
    // parameter as field 2 (parameters) of the request.
    let nested: Vec<u8> = {
        let mut v = nested.clone();
        let at = v.len() - 2;
        v[at] = 0xff;
        v[at + 1] = 0xfe;
        v
    };
    study_bytes.push(0x12);
    study_bytes.push(nested.len() as u8);
    study_bytes.extend_from_slice(&nested);
    assert!(pb::CreateStudyRequest::decode(&study_bytes[..]).is_err());
    assert_decode_refused(
        raw_call(&s.url, CREATE_STUDY, &study_bytes).await,
        "invalid UTF-8 in a category",
    );

    // Garbage: fixed and pseudo-random bodies that prost refuses.
    let mut bodies: Vec<Vec<u8>> = vec![
        vec![0xff; 16],
        b"\xde\xad\xbe\xef not protobuf at all".to_vec(),
        vec![0x0f],             // field 1 with wire type 7: no such type
        vec![0x0a, 0x7f, b'a'], // length 127, one byte present
    ];
    let mut seed = 1;
    while bodies.len() < 40 {
        let g = garbage(seed, 1 + (seed as usize * 7) % 64);
        seed += 1;
        if pb::ChooseRequest::decode(&g[..]).is_err()
            && pb::CreateStudyRequest::decode(&g[..]).is_err()
        {
            bodies.push(g);
        }
    }
    for (i, g) in bodies.iter().enumerate() {
        let path = [CREATE_EXPERIMENT, CHOOSE, CREATE_STUDY][i % 3];
        if path == CREATE_EXPERIMENT && pb::CreateExperimentRequest::decode(&g[..]).is_ok() {
            continue;
        }
        assert_decode_refused(
            raw_call(&s.url, path, g).await,
            &format!("garbage {i} {g:02x?} to {path}"),
        );
    }

    // Still serving, through the generated client.
    let mut b = BanditsClient::connect(s.url.clone())
        .await
        .expect("connect");
    let chosen = b
        .choose(pb::ChooseRequest {
            experiment: "raw-ok".into(),
            eligible_arms: vec![],
            ..Default::default()
        })
        .await
        .expect("choose after the garbage")
        .into_inner();
    assert!(["a", "b"].contains(&chosen.arm.as_str()));
}
