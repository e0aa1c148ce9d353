//! Trust: API keys and scopes, loopback-only without keys, load shedding,
//! message size limits, graceful shutdown, TLS (to clients and to Redis).

mod common;

use common::{RedisServer, ServiceProcess, make_certs, test_config};
use posterior::pb::{self, bandits_client::BanditsClient, reward_request::Target};
use tonic::Code;
use tonic::transport::Channel;

const ADMIN: &str = "admin-key-0123456789abcdef";
const DECIDER: &str = "decide-key-0123456789abcde";
const REPORTER: &str = "report-key-0123456789abcde";

fn with_key<T>(mut req: tonic::Request<T>, key: &str) -> tonic::Request<T> {
    req.metadata_mut().insert("x-api-key", key.parse().unwrap());
    req
}

#[tokio::test]
async fn api_keys_and_scopes() {
    let mut cfg = test_config();
    cfg.auth.keys = vec![
        format!("{ADMIN}:admin,decide,report"),
        format!("{DECIDER}:decide"),
        format!("{REPORTER}:report"),
    ];
    let s = posterior::server::start(cfg).await.unwrap();
    let mut c = BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let create = || pb::CreateExperimentRequest {
        name: "a".into(),
        arms: vec!["x".into(), "y".into()],
        ..Default::default()
    };

    let e = c.create_experiment(create()).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
    let e = c
        .create_experiment(with_key(
            tonic::Request::new(create()),
            "wrong-key-0123456789abcdef",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = c
        .create_experiment(with_key(tonic::Request::new(create()), DECIDER))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    c.create_experiment(with_key(tonic::Request::new(create()), ADMIN))
        .await
        .unwrap();

    // Bearer form works too.
    let mut req = tonic::Request::new(pb::ChooseRequest {
        experiment: "a".into(),
        eligible_arms: vec![],
        ..Default::default()
    });
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {DECIDER}").parse().unwrap(),
    );
    let d = c.choose(req).await.unwrap().into_inner();
    let reward = || pb::RewardRequest {
        experiment: "a".into(),
        target: Some(Target::DecisionId(d.decision_id.clone())),
        value: 1.0,
    };
    let e = c
        .reward(with_key(tonic::Request::new(reward()), DECIDER))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    c.reward(with_key(tonic::Request::new(reward()), REPORTER))
        .await
        .unwrap();
    let e = c
        .choose(with_key(
            tonic::Request::new(pb::ChooseRequest {
                experiment: "a".into(),
                eligible_arms: vec![],
                ..Default::default()
            }),
            REPORTER,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);

    // Health stays open for load balancers.
    let ch = Channel::from_shared(format!("http://{}", s.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let r = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn without_keys_only_loopback_is_served() {
    let mut cfg = test_config();
    cfg.server.listen = "0.0.0.0:0".into();
    let e = posterior::server::start(cfg.clone())
        .await
        .err()
        .expect("refused");
    assert!(
        e.contains("server.listen") && e.contains("auth.keys"),
        "{e}"
    );
    cfg.auth.allow_unauthenticated_remote = true;
    let s = posterior::server::start(cfg).await.unwrap();
    s.stop().await.unwrap();
}

/// "big": 2,000 arms, so each GetExperiment runs ~2 M posterior draws (tens
/// of milliseconds): the slow request the overload tests need.
async fn create_big(c: &mut BanditsClient<Channel>) {
    c.create_experiment(pb::CreateExperimentRequest {
        name: "big".into(),
        arms: (0..2000).map(|i| format!("a{i}")).collect(),
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_resource_exhausted() {
    let mut cfg = test_config();
    cfg.server.max_concurrent_requests = 2;
    let s = posterior::server::start(cfg).await.unwrap();
    let url = format!("http://{}", s.addr);
    let mut c = BanditsClient::connect(url.clone()).await.unwrap();
    // 40 concurrent summaries of "big" overlap far beyond 2 in flight.
    create_big(&mut c).await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.get_experiment(pb::GetExperimentRequest {
                name: "big".into(),
                threshold: None,
            })
            .await
            .map(|_| ())
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) if e.code() == Code::ResourceExhausted => shed += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert!(ok >= 2 && shed >= 1, "ok {ok}, shed {shed}");
    // After the burst the server answers normally again.
    c.get_experiment(pb::GetExperimentRequest {
        name: "big".into(),
        threshold: None,
    })
    .await
    .unwrap();
    s.stop().await.unwrap();
}

/// Sustained shedding on one HTTP/2 connection: every request gets an
/// answer (OK or RESOURCE_EXHAUSTED), never a killed connection. Refusing
/// without reading the request left its DATA frames charged to h2's flood
/// budget until h2 sent GOAWAY ENHANCE_YOUR_CALM, and every request on the
/// connection failed with UNKNOWN "transport error" (seen in the overload
/// run before the admission layer drained refused bodies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_shedding_never_kills_the_connection() {
    let mut cfg = test_config();
    cfg.server.max_concurrent_requests = 1;
    let s = posterior::server::start(cfg).await.unwrap();
    // One channel = one HTTP/2 connection for every request below.
    let c = BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    create_big(&mut c.clone()).await;
    // Keep the single slot busy with ~2 M-draw summaries.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hog = {
        let (mut c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = c
                    .get_experiment(pb::GetExperimentRequest {
                        name: "big".into(),
                        threshold: None,
                    })
                    .await;
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes = std::collections::BTreeMap::<String, u32>::new();
            for _ in 0..300 {
                let code = match c
                    .choose(pb::ChooseRequest {
                        experiment: "big".into(),
                        eligible_arms: vec![],
                        ..Default::default()
                    })
                    .await
                {
                    Ok(_) => Code::Ok,
                    Err(e) => e.code(),
                };
                *codes.entry(format!("{code:?}")).or_default() += 1;
            }
            codes
        }));
    }
    let mut codes = std::collections::BTreeMap::<String, u32>::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *codes.entry(k).or_default() += v;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    hog.await.unwrap();
    let shed = codes.get("ResourceExhausted").copied().unwrap_or(0);
    assert!(
        codes.keys().all(|k| k == "Ok" || k == "ResourceExhausted"),
        "{codes:?}"
    );
    // 19,200 requests; the slot is free only between summaries.
    assert!(
        shed > 10_000,
        "too little shedding to test anything: {codes:?}"
    );
}

/// A caller's deadline (grpc-timeout) is honoured by the server: at it the
/// caller gets an answer instead of waiting for the work. The code is
/// tonic's: CANCELLED "Timeout expired" (its server-side timeout layer sits
/// outside ours; clients with their own deadline timer, as grpc-go and
/// grpc-java have, report DEADLINE_EXCEEDED at the same moment).
#[tokio::test]
async fn deadlines_are_honoured() {
    let s = posterior::server::start(test_config()).await.unwrap();
    let mut c = BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    create_big(&mut c).await;
    // ~2 M posterior draws take tens of milliseconds; 2 ms cannot suffice.
    let mut req = tonic::Request::new(pb::GetExperimentRequest {
        name: "big".into(),
        threshold: None,
    });
    req.set_timeout(std::time::Duration::from_millis(2));
    // Had the server waited for the work, this would be OK.
    let e = c.get_experiment(req).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::Cancelled, "Timeout expired")
    );
    // Without a deadline the same request completes.
    c.get_experiment(pb::GetExperimentRequest {
        name: "big".into(),
        threshold: None,
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let mut cfg = test_config();
    cfg.server.max_message_bytes = 64 * 1024;
    let s = posterior::server::start(cfg).await.unwrap();
    let mut c = BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    // 2,000 names of 100 bytes: ~200 KB > 64 KiB.
    let arms: Vec<String> = (0..2000).map(|i| format!("{i:0>100}")).collect();
    let e = c
        .create_experiment(pb::CreateExperimentRequest {
            name: "huge".into(),
            arms,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{e:?}"
    );
    c.list_experiments(pb::ListExperimentsRequest::default())
        .await
        .unwrap();
    s.stop().await.unwrap();
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.redb");
    let conf = dir.path().join("posterior.toml");
    std::fs::write(&conf, "[server]\nshutdown_grace_seconds = 1\n").unwrap();
    let mut svc = ServiceProcess::start(
        &["--config", conf.to_str().unwrap()],
        &[("POSTERIOR_DATA", path.to_str().unwrap())],
    );
    let mut c = BanditsClient::connect(svc.url()).await.unwrap();
    c.list_experiments(pb::ListExperimentsRequest::default())
        .await
        .unwrap();
    let pid = svc.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // The client keeps its connection open: the server still exits, after
    // the grace period, with status 0; new connections are refused meanwhile.
    let status = svc.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    drop(c);
}

#[tokio::test]
async fn tls_and_client_certificates() {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let p = |f: &str| dir.path().join(f).display().to_string();
    let read = |f: &str| std::fs::read(dir.path().join(f)).unwrap();
    let mut cfg = test_config();
    cfg.server.tls_cert = p("server.pem");
    cfg.server.tls_key = p("server.key");
    cfg.server.tls_client_ca = p("ca.pem");
    let s = posterior::server::start(cfg).await.unwrap();
    let port = s.addr.port();
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .domain_name("localhost");

    // With the client certificate: served.
    let ch = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(
            tls.clone()
                .identity(Identity::from_pem(read("client.pem"), read("client.key"))),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    BanditsClient::new(ch)
        .list_experiments(pb::ListExperimentsRequest::default())
        .await
        .unwrap();

    // TLS without a client certificate: refused by mutual TLS.
    let no_cert = async {
        let ch = Channel::from_shared(format!("https://127.0.0.1:{port}"))
            .unwrap()
            .tls_config(tls.clone())
            .unwrap()
            .connect()
            .await?;
        BanditsClient::new(ch)
            .list_experiments(pb::ListExperimentsRequest::default())
            .await
            .map_err(|e| e.into())
    };
    let r: Result<_, Box<dyn std::error::Error>> = no_cert.await;
    assert!(r.is_err(), "a client without a certificate was served");

    // Plaintext: refused.
    let plain = async {
        let mut c = BanditsClient::connect(format!("http://127.0.0.1:{port}")).await?;
        c.list_experiments(pb::ListExperimentsRequest::default())
            .await
            .map_err(|e| e.into())
    };
    let r: Result<_, Box<dyn std::error::Error>> = plain.await;
    assert!(r.is_err(), "plaintext was served on a TLS listener");
    s.stop().await.unwrap();
}

/// Redis over TLS with client certificates and an ACL user, the default
/// user switched off: every Bandits call works through it, and each missing
/// piece (password, CA, client certificate, TLS itself) is refused at
/// start-up with an error that names the setting and never shows the password.
#[tokio::test]
async fn redis_over_tls_with_an_acl_user() {
    const PASSWORD: &str = "correct-horse-battery-staple";
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let p = |f: &str| dir.path().join(f).display().to_string();
    let acl_user = format!(">{PASSWORD}");
    // Least privilege: everything but the @dangerous commands (KEYS,
    // FLUSHALL, CONFIG, ...), which the store never sends.
    let (redis, port) = RedisServer::start_on_free_port(|port| {
        [
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &p("server.pem"),
            "--tls-key-file",
            &p("server.key"),
            "--tls-ca-cert-file",
            &p("ca.pem"),
            "--tls-auth-clients",
            "yes",
            "--user",
            "default",
            "off",
            "--user",
            "posterior",
            "on",
            &acl_user,
            "~*",
            "&*",
            "+@all",
            "-@dangerous",
        ]
        .map(String::from)
        .to_vec()
    });
    let good = || {
        let mut cfg = test_config();
        cfg.store.redis_url = format!("rediss://127.0.0.1:{port}");
        cfg.store.redis_username = "posterior".into();
        cfg.store.redis_password = PASSWORD.into();
        cfg.store.redis_tls_ca = p("ca.pem");
        cfg.store.redis_tls_cert = p("client.pem");
        cfg.store.redis_tls_key = p("client.key");
        cfg.store.redis_connect_timeout_ms = 1000;
        cfg
    };

    let s = posterior::server::start(good()).await.unwrap();
    let mut c = BanditsClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    c.create_experiment(pb::CreateExperimentRequest {
        name: "tls".into(),
        arms: vec!["x".into(), "y".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut rewarded = 0u64;
    for _ in 0..20 {
        let d = c
            .choose(pb::ChooseRequest {
                experiment: "tls".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let r = c
            .reward(pb::RewardRequest {
                experiment: "tls".into(),
                target: Some(Target::DecisionId(d.decision_id)),
                value: 1.0,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!r.duplicate);
        rewarded += 1;
    }
    let got = c
        .get_experiment(pb::GetExperimentRequest {
            name: "tls".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let counted: u64 = got.arms.iter().map(|a| a.rewards).sum();
    assert_eq!(counted, rewarded);
    // The state really is in this Redis, written as the ACL user.
    let mut raw = redis.connection();
    let _: () = redis::cmd("AUTH")
        .arg("posterior")
        .arg(PASSWORD)
        .query(&mut raw)
        .unwrap();
    let keys: u64 = redis::cmd("DBSIZE").query(&mut raw).unwrap();
    assert!(keys > 0, "nothing written to the TLS redis");
    drop(c);
    drop(s);

    let refused = |cfg: posterior::config::Config, why: &'static str| async move {
        let err = match posterior::server::start(cfg).await {
            Ok(_) => panic!("started with {why}"),
            Err(e) => e,
        };
        assert!(err.contains("store.redis_url"), "{why}: {err}");
        assert!(!err.contains(PASSWORD), "{why}: password leaked: {err}");
    };
    let mut cfg = good();
    cfg.store.redis_password = "wrong-password".into();
    refused(cfg, "a wrong password").await;
    let mut cfg = good();
    cfg.store.redis_url = format!("rediss://posterior:{PASSWORD}@127.0.0.1:{port}");
    cfg.store.redis_password = "wrong-password".into();
    refused(cfg, "a wrong password overriding the URL's").await;
    let mut cfg = good();
    cfg.store.redis_tls_ca = String::new();
    refused(cfg, "the system roots, which do not know the test CA").await;
    let mut cfg = good();
    cfg.store.redis_tls_cert = String::new();
    cfg.store.redis_tls_key = String::new();
    refused(cfg, "no client certificate").await;
    let mut cfg = good();
    cfg.store.redis_tls_ca = String::new();
    cfg.store.redis_tls_cert = String::new();
    cfg.store.redis_tls_key = String::new();
    cfg.store.redis_url = format!("redis://127.0.0.1:{port}");
    refused(cfg, "plaintext to the TLS port").await;

    // And the password may come in the URL alone.
    let mut cfg = good();
    cfg.store.redis_url = format!("rediss://posterior:{PASSWORD}@127.0.0.1:{port}");
    cfg.store.redis_username = String::new();
    cfg.store.redis_password = String::new();
    posterior::server::start(cfg).await.unwrap();
}
