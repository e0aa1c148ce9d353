//! Test harness: real parts only. A `redis-server` started on a unix socket
//! in a temp dir (killed on drop), and the real gRPC server started in
//! process on 127.0.0.1:0.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use posterior::config::Config;
use posterior::pb::bandits_client::BanditsClient;
use posterior::pb::optimizer_client::OptimizerClient;
use posterior::server::Running;
use tonic::transport::Channel;

/// A free loopback port, for servers that cannot bind port 0 and report
/// back (redis-server's TLS port) and for "nothing listens here". Racy:
/// between this and the server's bind, another test process (or an
/// outgoing connection's ephemeral port) may take it, which happened in CI
/// to the metrics exporter; that one now binds port 0 and reports back
/// (`Running::metrics_addr`). Prefer port 0 wherever the server can.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A throwaway CA, a server certificate for localhost/127.0.0.1 and a client
/// certificate, made with the openssl command line.
pub fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=posterior-test-ca",
        ],
    ]
    .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &format!("{who}.key"),
                "-out",
                &format!("{who}.csr"),
                "-subj",
                &format!("/CN={who}"),
            ],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{who}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{who}.ext"),
        ]);
    }
}

/// A private redis-server for one test, never the machine's shared instance.
pub struct RedisServer {
    child: Child,
    dir: tempfile::TempDir,
    pub socket: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Start with extra `redis-server` arguments (e.g. persistence settings).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Self::try_start(extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start with arguments that name a TCP port (`args(port)`, e.g. a TLS
    /// port), on a fresh free port each try: another process may take the
    /// port between [`free_port`] and redis-server's bind, and redis-server
    /// then exits at once. Five tries: one collision is already rare.
    pub fn start_on_free_port(args: impl Fn(u16) -> Vec<String>) -> (RedisServer, u16) {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            match Self::try_start(args(port)) {
                Ok(r) => return (r, port),
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start on any of 5 free ports: {last}");
    }

    fn try_start(extra: Vec<String>) -> Result<RedisServer, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("redis.sock");
        let child = Self::spawn(dir.path(), &socket, &extra);
        let mut r = RedisServer {
            child,
            dir,
            socket,
            extra,
        };
        r.wait_ready()?;
        Ok(r)
    }

    fn spawn(dir: &std::path::Path, socket: &std::path::Path, extra: &[String]) -> Child {
        Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (.ci/run installs it)")
    }

    /// Start again in the same directory (after a kill): same socket, and
    /// whatever persistence files the previous run left.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.dir.path(), &self.socket, &self.extra);
        if let Err(e) = self.wait_ready() {
            panic!("{e}");
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Wait until it answers; an error if it exits first (a port taken, a
    /// bad argument) or is not up within 10 s.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("redis-server exited before it was ready: {status}"));
            }
            // Any answer means it is up, NOAUTH included: tests that lock
            // the default user out still start through here.
            if self.socket.exists()
                && let Ok(c) = redis::Client::open(self.url())
                && let Ok(mut conn) = c.get_connection()
                && match redis::cmd("PING").query::<String>(&mut conn) {
                    Ok(_) => true,
                    Err(e) => !e.is_io_error(),
                }
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "redis-server did not become ready at {}",
            self.socket.display()
        ))
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// A synchronous connection for test assertions on raw Redis state.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to test redis")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Embedded,
    Redis,
}

pub const BACKENDS: [Backend; 3] = [Backend::Memory, Backend::Embedded, Backend::Redis];

/// A running server and, for the Redis backend, the Redis it uses.
pub struct TestServer {
    pub running: Option<Running>,
    pub redis: Option<RedisServer>,
    pub url: String,
    /// Holds the embedded store's file for the test's lifetime.
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        let redis = (backend == Backend::Redis).then(RedisServer::start);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = test_config();
        if let Some(r) = &redis {
            cfg.store.redis_url = r.url();
        }
        if backend == Backend::Embedded {
            cfg.store.backend = "embedded".into();
            cfg.store.path = dir.path().join("posterior.redb").display().to_string();
        }
        let running = posterior::server::start(cfg).await.expect("server starts");
        let url = format!("http://{}", running.addr);
        TestServer {
            running: Some(running),
            redis,
            url,
            dir,
        }
    }

    pub async fn client(&self) -> BanditsClient<Channel> {
        BanditsClient::connect(self.url.clone())
            .await
            .expect("connect to server")
    }

    pub async fn optimizer(&self) -> OptimizerClient<Channel> {
        OptimizerClient::connect(self.url.clone())
            .await
            .expect("connect to server")
    }

    /// The server's listening address (gRPC and HTTP share it).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().expect("running").addr
    }
}

/// Defaults, bound to a free loopback port, on the in-memory store (tests
/// that want the embedded file set `store.backend` and `store.path`).
pub fn test_config() -> Config {
    let mut cfg = Config::default();
    cfg.server.listen = "127.0.0.1:0".into();
    cfg.store.backend = "memory".into();
    cfg
}

/// The `posterior` binary as a child process (`serve` with `args` and
/// `env`), its address read from the line it prints at start-up.
pub struct ServiceProcess {
    pub child: Child,
    pub addr: String,
}

impl ServiceProcess {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> ServiceProcess {
        use std::io::{BufRead, BufReader};
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_posterior"));
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .env("POSTERIOR_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn posterior serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read start-up line");
        let addr = line
            .trim()
            .strip_prefix("posterior listening on ")
            .unwrap_or_else(|| panic!("unexpected start-up line {line:?}"))
            .to_string();
        ServiceProcess { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill9(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A second service instance on the same Redis.
pub async fn start_on_redis(url: &str) -> Running {
    let mut cfg = test_config();
    cfg.store.redis_url = url.to_string();
    posterior::server::start(cfg).await.expect("server starts")
}

/// The metrics exporter's text at `GET /metrics` on 127.0.0.1:`port`.
pub async fn scrape_metrics(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to exporter");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The Python of the tests that need one (`$POSTERIOR_TEST_PYTHON`, set by
/// scripts/test with its packages installed), or `None` when skipped
/// explicitly (`POSTERIOR_SKIP_PYTHON=1`, announced on stderr). Neither: the
/// test fails, so a machine that missed scripts/test does not pass silently.
/// `what` names what the Python checks.
pub fn test_python(what: &str) -> Option<String> {
    if let Ok(python) = std::env::var("POSTERIOR_TEST_PYTHON") {
        return Some(python);
    }
    if std::env::var("POSTERIOR_SKIP_PYTHON").as_deref() == Ok("1") {
        // Straight to the process's stderr: libtest captures eprintln! of
        // passing tests, and this must be seen.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n**********************************************************************\n\
             ** POSTERIOR_SKIP_PYTHON=1: NOT checked: {what}\n\
             ** Run the tests via scripts/test to check it.\n\
             **********************************************************************\n"
        );
        return None;
    }
    panic!(
        "POSTERIOR_TEST_PYTHON is not set, so this cannot be checked: {what}. Run the tests \
         via scripts/test (it prepares the Python environment, the browser included, and sets \
         POSTERIOR_TEST_PYTHON), or set POSTERIOR_SKIP_PYTHON=1 to skip it explicitly"
    );
}

/// One HTTP/1.1 request with a JSON body to the server at `addr`: the
/// status and the JSON answer (panics on a non-JSON answer).
pub async fn http_json(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> (u16, serde_json::Value) {
    use http_body_util::BodyExt;
    let io =
        hyper_util::rt::TokioIo::new(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    let (mut send, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .expect("request");
    let res = send.send_request(req).await.expect("response");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let json = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {bytes:?}"));
    (status, json)
}

/// A trial's numeric parameter `k` (int, float or ordinal).
pub fn number(t: &posterior::pb::Trial, k: &str) -> f64 {
    match t.params[k].kind {
        Some(posterior::pb::value::Kind::Number(x)) => x,
        _ => panic!("{k} is not a number in {t:?}"),
    }
}

/// A trial's categorical parameter `k`.
pub fn category(t: &posterior::pb::Trial, k: &str) -> String {
    match &t.params[k].kind {
        Some(posterior::pb::value::Kind::Category(c)) => c.clone(),
        _ => panic!("{k} is not a category in {t:?}"),
    }
}

/// Asserts that a gRPC call was refused with `code` and a message naming
/// `field` (every bad input names its field); returns the message.
#[track_caller]
pub fn refused<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: tonic::Code,
    field: &str,
) -> String {
    let e = r.expect_err("expected an error");
    assert_eq!(e.code(), code, "{}", e.message());
    assert!(
        e.message().contains(field),
        "message {:?} does not name {field:?}",
        e.message()
    );
    e.message().to_string()
}

/// The HTTP counterpart of [`refused`]: `status`, the error body's gRPC
/// code name `code`, and a message naming `field`.
#[track_caller]
pub fn http_refused(r: &(u16, serde_json::Value), status: u16, code: &str, field: &str) {
    assert_eq!(r.0, status, "{}", r.1);
    assert_eq!(r.1["error"]["status"], code, "{}", r.1);
    let message = r.1["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(field),
        "{message:?} does not name {field:?}"
    );
}

/// Suggest one trial of `study` (panics on an error: for tests whose point
/// is elsewhere).
pub async fn suggest_one(c: &mut OptimizerClient<Channel>, study: &str) -> posterior::pb::Trial {
    c.suggest(posterior::pb::SuggestRequest {
        study: study.into(),
        count: 1,
    })
    .await
    .expect("suggest")
    .into_inner()
    .trials
    .remove(0)
}
