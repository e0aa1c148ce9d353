//! The HTTP/JSON transport at its edges, over the real server: API keys and
//! scopes, load shedding, TLS, bad input, metrics and deadlines, each as an
//! HTTP caller (curl, a webhook, a browser) meets them. The gRPC side of the
//! same edges is in `tests/trust.rs`.
//!
//! Plain HTTP/1.1 goes through the small client below (one request per TCP
//! connection, so a dropped connection is an error the test sees, and bytes
//! no HTTP library would send, such as invalid UTF-8, can be sent); HTTPS
//! through `curl`, which negotiates HTTP/2 over TLS by ALPN; HTTP/2 without
//! TLS (h2c) through a tonic channel, which is hyper's HTTP/2 client.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::{make_certs, test_config};
use posterior::config::Config;
use posterior::server::Running;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---- a minimal HTTP/1.1 client -------------------------------------------

/// One answer: status, headers (names lower-cased) and body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (naming the body) when it is not.
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Assert the JSON error shape `{"error": {code, status, message}}`
    /// with this HTTP status and status name, and return the message.
    fn error(&self, status: u16, name: &str) -> String {
        assert_eq!(self.status, status, "{self:?} / {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let v = self.json();
        assert_eq!(v["error"]["code"], json!(status), "{v}");
        assert_eq!(v["error"]["status"], json!(name), "{v}");
        v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {v}"))
            .to_string()
    }
}

/// A request: method, path (with query), extra headers, optional body.
#[derive(Clone, Default)]
struct Req {
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    /// Send the body with `transfer-encoding: chunked`, without a length.
    chunked: bool,
}

fn get(path: impl Into<String>) -> Req {
    Req {
        method: "GET",
        path: path.into(),
        ..Default::default()
    }
}

/// A POST with a JSON body (`application/json`).
fn post(path: impl Into<String>, body: &Value) -> Req {
    post_raw(path, "application/json", body.to_string().into_bytes())
}

/// A POST with any body and content type.
fn post_raw(path: impl Into<String>, content_type: &str, body: Vec<u8>) -> Req {
    Req {
        method: "POST",
        path: path.into(),
        headers: vec![("content-type".into(), content_type.into())],
        body: Some(body),
        chunked: false,
    }
}

/// A POST without a body (and so without a content type).
fn post_empty(path: impl Into<String>) -> Req {
    Req {
        method: "POST",
        path: path.into(),
        ..Default::default()
    }
}

impl Req {
    fn header(mut self, k: &str, v: &str) -> Req {
        self.headers.push((k.into(), v.into()));
        self
    }

    fn key(self, key: &str) -> Req {
        self.header("x-api-key", key)
    }

    fn chunked(mut self) -> Req {
        self.chunked = true;
        self
    }

    /// Send on a fresh connection (`connection: close`) and read the whole
    /// answer, reading while the request is still being written, as real
    /// clients do (a server may answer before it has read a large body).
    /// A connection that fails before a complete answer (refused, reset,
    /// truncated, not HTTP) is an `Err`.
    async fn try_send(&self, addr: SocketAddr) -> Result<Reply, String> {
        let s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n",
            self.method, self.path
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let mut bytes = Vec::new();
        match &self.body {
            Some(b) if self.chunked => {
                head.push_str("transfer-encoding: chunked\r\n\r\n");
                bytes.extend_from_slice(head.as_bytes());
                for chunk in b.chunks(8192) {
                    bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    bytes.extend_from_slice(chunk);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
            }
            Some(b) => {
                head.push_str(&format!("content-length: {}\r\n\r\n", b.len()));
                bytes.extend_from_slice(head.as_bytes());
                bytes.extend_from_slice(b);
            }
            None => {
                head.push_str("\r\n");
                bytes.extend_from_slice(head.as_bytes());
            }
        }
        let (mut rd, mut wr) = s.into_split();
        // The write half lives in the task until it is aborted below: dropping
        // it would half-close the connection before the answer.
        let writer = tokio::spawn(async move {
            let sent = wr.write_all(&bytes).await;
            std::future::pending::<()>().await;
            (sent, wr)
        });
        let mut raw = Vec::new();
        let read = rd.read_to_end(&mut raw).await;
        writer.abort();
        read.map_err(|e| format!("read (after {} bytes): {e}", raw.len()))?;
        parse_reply(&raw)
    }

    async fn send(&self, addr: SocketAddr) -> Reply {
        self.try_send(addr)
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", self.method, self.path))
    }
}

fn parse_reply(raw: &[u8]) -> Result<Reply, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no header end in {:?}", String::from_utf8_lossy(raw)))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body)?;
    } else if let Some((_, n)) = headers.iter().find(|(k, _)| k == "content-length") {
        let n: usize = n.parse().map_err(|_| format!("content-length {n:?}"))?;
        if body.len() != n {
            return Err(format!("truncated body: {} of {n} bytes", body.len()));
        }
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size = std::str::from_utf8(&b[..eol]).map_err(|e| e.to_string())?;
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("chunk size {size:?}: {e}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

// ---- servers and fixtures ------------------------------------------------

const ADMIN: &str = "admin-key-0123456789abcdef";
const DECIDER: &str = "decide-key-0123456789abcde";
const REPORTER: &str = "report-key-0123456789abcde";

async fn start(cfg: Config) -> Running {
    posterior::server::start(cfg).await.expect("server starts")
}

/// Create experiment `name` with `arms` arms (`a0`, `a1`, ...) over HTTP.
async fn create_experiment(addr: SocketAddr, name: &str, arms: usize, key: Option<&str>) {
    let arms: Vec<String> = (0..arms).map(|i| format!("a{i}")).collect();
    let mut req = post("/v1/experiments", &json!({"name": name, "arms": arms}));
    if let Some(k) = key {
        req = req.key(k);
    }
    let r = req.send(addr).await;
    assert_eq!(r.status, 200, "create {name}: {}", r.text());
    assert_eq!(r.json()["experiment"]["name"], json!(name));
}

// ---- API keys and scopes -------------------------------------------------

#[tokio::test]
async fn api_keys_and_scopes_on_http() {
    let mut cfg = test_config();
    cfg.auth.keys = vec![
        format!("{ADMIN}:admin,decide,report"),
        format!("{DECIDER}:decide"),
        format!("{REPORTER}:report"),
    ];
    let s = start(cfg).await;
    let a = s.addr;
    let create = || post("/v1/experiments", &json!({"name": "e", "arms": ["x", "y"]}));

    // No key, an unknown key: 401 UNAUTHENTICATED, before anything runs.
    let m = create().send(a).await.error(401, "UNAUTHENTICATED");
    assert!(m.contains("missing API key"), "{m}");
    let m = get("/v1/experiments/e")
        .send(a)
        .await
        .error(401, "UNAUTHENTICATED");
    assert!(m.contains("missing API key"), "{m}");
    let m = create()
        .key("wrong-key-0123456789abcdef")
        .send(a)
        .await
        .error(401, "UNAUTHENTICATED");
    assert!(m.contains("unknown API key"), "{m}");
    let m = get("/v1/experiments")
        .header("authorization", "Bearer wrong-key-0123456789abcdef")
        .send(a)
        .await
        .error(401, "UNAUTHENTICATED");
    assert!(m.contains("unknown API key"), "{m}");

    // A decide-only key cannot create (admin)...
    let m = create()
        .key(DECIDER)
        .send(a)
        .await
        .error(403, "PERMISSION_DENIED");
    assert!(m.contains("Admin"), "{m}");
    // ...nor did the refused calls create anything: still NOT_FOUND.
    get("/v1/experiments/e")
        .key(ADMIN)
        .send(a)
        .await
        .error(404, "NOT_FOUND");
    let r = create().key(ADMIN).send(a).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["created"], json!(true));

    // ...but may read and choose, with either header.
    let r = get("/v1/experiments/e").key(DECIDER).send(a).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["experiment"]["name"], json!("e"));
    let r = get("/v1/experiments/e")
        .header("authorization", &format!("Bearer {DECIDER}"))
        .send(a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post("/v1/experiments/e:choose", &json!({}))
        .key(DECIDER)
        .send(a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post_empty("/v1/experiments/e:choose")
        .header("authorization", &format!("Bearer {DECIDER}"))
        .send(a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let decision = r.json()["decisionId"]
        .as_str()
        .expect("decisionId")
        .to_string();

    // ...and cannot report: 403 on :reward; the reporter can.
    let reward = || {
        post(
            "/v1/experiments/e:reward",
            &json!({"decisionId": decision, "value": 1}),
        )
    };
    let m = reward()
        .key(DECIDER)
        .send(a)
        .await
        .error(403, "PERMISSION_DENIED");
    assert!(m.contains("Report"), "{m}");
    let m = reward()
        .header("authorization", &format!("Bearer {DECIDER}"))
        .send(a)
        .await
        .error(403, "PERMISSION_DENIED");
    assert!(m.contains("Report"), "{m}");
    let r = reward().key(REPORTER).send(a).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["duplicate"], json!(false));
    // The reporter does not decide.
    post("/v1/experiments/e:choose", &json!({}))
        .key(REPORTER)
        .send(a)
        .await
        .error(403, "PERMISSION_DENIED");
    // A made-up route under /v1/ needs admin, not nothing.
    post("/v1/experiments/e:frobnicate", &json!({}))
        .key(DECIDER)
        .send(a)
        .await
        .error(403, "PERMISSION_DENIED");

    // Health, readiness and the API description stay open.
    for path in ["/healthz", "/readyz"] {
        let r = get(path).send(a).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.json(), json!({"status": "SERVING"}), "{path}");
    }
    let r = get("/v1/openapi.json").send(a).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()["openapi"]
            .as_str()
            .unwrap_or("")
            .starts_with("3.1")
    );
    s.stop().await.unwrap();
}

// ---- load shedding -------------------------------------------------------

/// "big": 2,000 arms, so each GetExperiment runs ~2 M posterior draws (tens
/// of milliseconds): the slow request the overload tests need.
async fn create_big(addr: SocketAddr) {
    create_experiment(addr, "big", 2000, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_429_and_retry_after() {
    let mut cfg = test_config();
    cfg.server.max_concurrent_requests = 2;
    let s = start(cfg).await;
    let a = s.addr;
    create_big(a).await;
    // 40 concurrent summaries of "big", each on its own connection, overlap
    // far beyond 2 in flight.
    let tasks: Vec<_> = (0..40)
        .map(|_| tokio::spawn(async move { get("/v1/experiments/big").try_send(a).await }))
        .collect();
    let (mut ok, mut shed) = (0, 0);
    for t in tasks {
        let r = t
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("connection error: {e}"));
        match r.status {
            200 => {
                assert_eq!(r.json()["arms"].as_array().map(Vec::len), Some(2000));
                ok += 1;
            }
            429 => {
                assert_eq!(r.header("retry-after"), Some("1"), "{r:?}");
                let m = r.error(429, "RESOURCE_EXHAUSTED");
                assert!(m.contains("server.max_concurrent_requests"), "{m}");
                shed += 1;
            }
            _ => panic!("unexpected answer {r:?}: {}", r.text()),
        }
    }
    assert!(ok >= 2 && shed >= 1, "ok {ok}, shed {shed}");
    // After the burst the server answers normally again.
    let r = get("/v1/experiments/big").send(a).await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await.unwrap();
}

// ---- deadlines -----------------------------------------------------------

#[tokio::test]
async fn deadline_header_answers_504() {
    let s = start(test_config()).await;
    let a = s.addr;
    create_big(a).await;
    // ~2 M posterior draws take tens of milliseconds; 2 ms cannot suffice.
    let started = Instant::now();
    let r = get("/v1/experiments/big")
        .header("x-server-timeout", "0.002")
        .send(a)
        .await;
    let m = r.error(504, "DEADLINE_EXCEEDED");
    assert!(m.contains("x-server-timeout"), "{m}");
    // Answered at the deadline, not after the work: well under the time
    // the same request takes without one (measured below).
    let at_deadline = started.elapsed();
    let started = Instant::now();
    let r = get("/v1/experiments/big")
        .header("x-server-timeout", "30")
        .send(a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let full = started.elapsed();
    assert!(at_deadline < full, "{at_deadline:?} vs {full:?}");
    // A deadline that is not a number of seconds is bad input.
    for bad in ["0", "-1", "soon", "NaN", "1e9"] {
        let m = get("/v1/experiments/big")
            .header("x-server-timeout", bad)
            .send(a)
            .await
            .error(400, "INVALID_ARGUMENT");
        assert!(m.contains("x-server-timeout"), "{bad}: {m}");
    }
    s.stop().await.unwrap();
}

// ---- TLS -----------------------------------------------------------------

/// `curl ARGS`: exit code, stdout, stderr (on the blocking pool: the server
/// runs on this test's runtime).
async fn curl(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("curl")
            .args(&args)
            .output()
            .expect("curl must be installed (scripts/test installs it)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// A server with `server.tls_cert`/`tls_key` (no client certificates), and
/// the directory holding its CA.
async fn start_tls() -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let p = |f: &str| dir.path().join(f).display().to_string();
    let mut cfg = test_config();
    cfg.server.tls_cert = p("server.pem");
    cfg.server.tls_key = p("server.key");
    (start(cfg).await, dir)
}

/// What curl got over HTTPS: exit code, HTTP version, status, body, stderr.
struct CurlReply {
    exit: i32,
    version: String,
    status: u16,
    body: String,
    stderr: String,
}

/// `curl FLAGS [-d BODY] https://localhost:PORT/PATH`, trusting the test CA.
async fn curl_https(
    s: &Running,
    ca: &tempfile::TempDir,
    flags: &[&str],
    path: &str,
    body: Option<&Value>,
) -> CurlReply {
    let port = s.addr.port();
    let mut args: Vec<String> = vec![
        "-sS".into(),
        "--max-time".into(),
        "20".into(),
        "--cacert".into(),
        ca.path().join("ca.pem").display().to_string(),
        // The certificate names localhost; the server listens on 127.0.0.1.
        "--resolve".into(),
        format!("localhost:{port}:127.0.0.1"),
        "-w".into(),
        "\n%{http_version} %{http_code}".into(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    if let Some(b) = body {
        args.extend([
            "-H".into(),
            "content-type: application/json".into(),
            "--data-binary".into(),
            b.to_string(),
        ]);
    }
    args.push(format!("https://localhost:{port}{path}"));
    let (exit, out, stderr) = curl(args).await;
    let (body, last) = out.rsplit_once('\n').unwrap_or(("", &out));
    let (version, status) = last.split_once(' ').unwrap_or(("", ""));
    CurlReply {
        exit,
        version: version.to_string(),
        status: status.parse().unwrap_or(0),
        body: body.to_string(),
        stderr,
    }
}

#[tokio::test]
async fn tls_serves_http2_negotiated_by_alpn() {
    let (s, ca) = start_tls().await;
    let https = |path: &'static str, body: Option<Value>| {
        let (s, ca) = (&s, &ca);
        async move { curl_https(s, ca, &["--http2"], path, body.as_ref()).await }
    };
    let r = https("/v1/experiments", None).await;
    assert_eq!(
        (r.exit, r.version.as_str(), r.status),
        (0, "2", 200),
        "{}",
        r.stderr
    );
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap()["names"],
        json!([])
    );
    let r = https(
        "/v1/experiments",
        Some(json!({"name": "t", "arms": ["x", "y"]})),
    )
    .await;
    assert_eq!(
        (r.version.as_str(), r.status),
        ("2", 200),
        "{} {}",
        r.body,
        r.stderr
    );
    let r = https("/v1/experiments/t:choose", Some(json!({}))).await;
    assert_eq!(
        (r.version.as_str(), r.status),
        ("2", 200),
        "{} {}",
        r.body,
        r.stderr
    );
    let arm = serde_json::from_str::<Value>(&r.body).unwrap()["arm"].clone();
    assert!(arm == json!("x") || arm == json!("y"), "{}", r.body);
    // Errors keep their JSON body over HTTP/2 and TLS.
    let r = https("/v1/experiments/nope", None).await;
    assert_eq!((r.version.as_str(), r.status), ("2", 404), "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"]["status"], json!("NOT_FOUND"), "{v}");
    // Plaintext HTTP on the TLS port gets no HTTP answer.
    let plain = get("/v1/experiments").try_send(s.addr).await;
    assert!(
        plain.is_err(),
        "plaintext answered on a TLS port: {plain:?}"
    );
    s.stop().await.unwrap();
}

/// HTTP/1.1 over TLS, as it is: tonic's TLS acceptor offers only `h2` by
/// ALPN, so a client that offers ALPN `http/1.1` alone (`curl --http1.1`,
/// and HTTP/1-only client libraries that send ALPN) fails the handshake
/// with the `no_application_protocol` alert, before any HTTP. A client that
/// sends no ALPN at all gets HTTP/1.1 (the server tells HTTP/1.1 from
/// HTTP/2 by the first bytes). Plaintext HTTP/1.1 is unaffected.
#[tokio::test]
async fn tls_serves_http1_1_negotiated_by_alpn_and_without_alpn() {
    // The listener's ALPN offers h2 and http/1.1 (src/server.rs
    // `tls_acceptor`): a client offering only http/1.1 (Python's requests,
    // many webhook senders) gets HTTP/1.1; one sending no ALPN at all too.
    let (s, ca) = start_tls().await;
    for flags in [&["--http1.1"][..], &["--http1.1", "--no-alpn"][..]] {
        let r = curl_https(&s, &ca, flags, "/v1/experiments", None).await;
        assert_eq!(
            (r.exit, r.version.as_str(), r.status),
            (0, "1.1", 200),
            "{flags:?}: {}",
            r.stderr
        );
        assert_eq!(
            serde_json::from_str::<Value>(&r.body).unwrap()["names"],
            json!([])
        );
    }
    s.stop().await.unwrap();
}

// ---- bad input -----------------------------------------------------------

#[tokio::test]
async fn bad_input_is_400_invalid_argument_naming_the_culprit() {
    let s = start(test_config()).await;
    let a = s.addr;
    create_experiment(a, "e", 2, None).await;
    let reward = "/v1/experiments/e:reward";
    let mut bad_utf8 = br#"{"decisionId": "ab"#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe]);
    bad_utf8.extend_from_slice(br#"", "value": 1}"#);
    // (what, request, every piece the message must contain)
    let cases: Vec<(&str, Req, &[&str])> = vec![
        (
            "malformed JSON: where",
            post_raw(reward, "application/json", br#"{"arm":"#.to_vec()),
            &["body", "line 1 column 7"],
        ),
        (
            "wrong content type",
            post_raw(
                reward,
                "text/plain",
                br#"{"arm": "a0", "value": 1}"#.to_vec(),
            ),
            &["content-type", "application/json", "text/plain"],
        ),
        (
            "no body on :reward",
            post_empty(reward),
            &["body: required"],
        ),
        (
            "no body on create",
            post_empty("/v1/experiments"),
            &["body: required"],
        ),
        (
            "unknown field",
            post(reward, &json!({"decisionID": "x", "value": 1})),
            &["unknown field `decisionID`", "decisionId"],
        ),
        (
            "wrong type: a string for a double",
            post(reward, &json!({"arm": "a0", "value": "high"})),
            &["body: value:", "line 1 column"],
        ),
        (
            "wrong type: a bool for a double",
            post(reward, &json!({"arm": "a0", "value": true})),
            &["body: value:"],
        ),
        (
            "wrong type: a number for a string",
            post(reward, &json!({"arm": 5, "value": 1})),
            &["body: arm:", "expected a string"],
        ),
        (
            "wrong type, nested",
            post(
                "/v1/studies",
                &json!({"name": "s", "parameters": [{"name": "x", "float": {"low": "zero", "high": 1}}]}),
            ),
            &["body: parameters[0].float.low:"],
        ),
        (
            "unknown enum name",
            post(
                "/v1/studies",
                &json!({"name": "s", "objective": {"name": "loss", "goal": "BIGGER"}}),
            ),
            &["objective.goal", "BIGGER", "MINIMIZE"],
        ),
        (
            "trailing bytes after the object",
            post_raw(
                reward,
                "application/json",
                br#"{"arm": "a0", "value": 1} x"#.to_vec(),
            ),
            &["body", "trailing characters"],
        ),
        (
            "invalid UTF-8 in a string",
            post_raw(reward, "application/json", bad_utf8),
            &["body", "unicode", "line 1 column"],
        ),
        (
            "unknown query parameter",
            get("/v1/experiments/e?treshold=0.1"),
            &["query", "treshold", "threshold"],
        ),
        (
            "non-numeric threshold",
            get("/v1/experiments/e?threshold=high"),
            &["query", "threshold"],
        ),
        (
            "page size over the cap",
            get("/v1/experiments?pageSize=5000"),
            &["page_size", "1000", "5000"],
        ),
        (
            "non-numeric page size",
            get("/v1/experiments?pageSize=many"),
            &["query", "pageSize"],
        ),
        (
            "body's experiment disagrees with the path",
            post(
                reward,
                &json!({"experiment": "other", "arm": "a0", "value": 1}),
            ),
            &["experiment:", "\"e\"", "\"other\""],
        ),
    ];
    for (what, req, pieces) in cases {
        let r = req.send(a).await;
        let m = r.error(400, "INVALID_ARGUMENT");
        for p in pieces {
            assert!(m.contains(p), "{what}: {p:?} not in {m:?}");
        }
    }
    // None of it reached the experiment: no reward was applied.
    let r = get("/v1/experiments/e").send(a).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for arm in r.json()["arms"].as_array().unwrap() {
        assert_eq!(arm["rewards"], json!("0"), "{arm}");
    }
    // The same requests, well formed, are served.
    let r = post(reward, &json!({"experiment": "e", "arm": "a0", "value": 1}))
        .send(a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get("/v1/experiments/e?threshold=0.1").send(a).await;
    assert_eq!(r.status, 200, "{}", r.text());
    s.stop().await.unwrap();
}

/// POST over HTTP/2 without TLS (h2c) through a tonic channel (hyper's
/// HTTP/2 client; any request goes, not only gRPC): status and body.
async fn h2c_post(addr: SocketAddr, path: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), String> {
    use http_body_util::BodyExt;
    let ch = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .header("content-length", body.len().to_string())
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from(body),
        )))
        .unwrap();
    let res = tower::ServiceExt::oneshot(ch, req)
        .await
        .map_err(|e| format!("request: {e:?}"))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e:?}"))?
        .to_bytes();
    Ok((status, body.to_vec()))
}

/// A body over `server.max_message_bytes` is answered with the JSON error,
/// before the server reads it, whatever its size and framing; the
/// connection is not dropped before the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_a_json_error_not_a_dropped_connection() {
    let mut cfg = test_config();
    cfg.server.max_message_bytes = 64 * 1024;
    let s = start(cfg).await;
    let a = s.addr;
    create_experiment(a, "e", 2, None).await;
    let body = |n: usize| {
        let mut b = br#"{"arm": "a0", "value": 1, "experiment": ""#.to_vec();
        b.extend(std::iter::repeat_n(b'x', n));
        b.extend_from_slice(b"\"}");
        b
    };
    let check = |what: &str, m: String| {
        assert!(
            m.starts_with("body:") && m.contains("server.max_message_bytes"),
            "{what}: {m}"
        );
    };
    // A create of ~200 KB: 2,000 arm names of 100 bytes (as trust.rs's gRPC test).
    let arms: Vec<String> = (0..2000).map(|i| format!("{i:0>100}")).collect();
    let m = post("/v1/experiments", &json!({"name": "huge", "arms": arms}))
        .send(a)
        .await
        .error(400, "INVALID_ARGUMENT");
    check("create", m);
    // Just over the limit, far over it (more than the socket buffers hold,
    // so the server answers while the client is still sending), and
    // without a length (chunked).
    for (what, req) in [
        (
            "64 KiB + 1",
            post_raw(
                "/v1/experiments/e:reward",
                "application/json",
                body(64 * 1024),
            ),
        ),
        (
            "16 MB",
            post_raw(
                "/v1/experiments/e:reward",
                "application/json",
                body(16_000_000),
            ),
        ),
        (
            "16 MB chunked",
            post_raw(
                "/v1/experiments/e:reward",
                "application/json",
                body(16_000_000),
            )
            .chunked(),
        ),
    ] {
        let r = req
            .try_send(a)
            .await
            .unwrap_or_else(|e| panic!("{what}: connection error: {e}"));
        check(what, r.error(400, "INVALID_ARGUMENT"));
    }
    // HTTP/2 (h2c): the answer, then the stream is reset, not the connection.
    for n in [70_000, 16_000_000] {
        let (status, b) = h2c_post(a, "/v1/experiments/e:reward", body(n))
            .await
            .unwrap_or_else(|e| panic!("h2c {n}: {e}"));
        assert_eq!(status, 400, "h2c {n}: {}", String::from_utf8_lossy(&b));
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"]["status"], json!("INVALID_ARGUMENT"), "{v}");
    }
    // Nothing was applied, and the server goes on serving.
    let r = get("/v1/experiments/e").send(a).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for arm in r.json()["arms"].as_array().unwrap() {
        assert_eq!(arm["rewards"], json!("0"), "{arm}");
    }
    s.stop().await.unwrap();
}

/// 64-bit integers travel as JSON strings in the proto3 JSON mapping (and
/// come back as strings); a request may also give them as numbers.
#[tokio::test]
async fn int64_fields_accept_strings_and_numbers() {
    let s = start(test_config()).await;
    let a = s.addr;
    let r = post(
        "/v1/studies",
        &json!({
            "name": "s",
            "parameters": [{"name": "x", "float": {"low": 0, "high": 1}}],
            "objective": {"name": "loss", "goal": "MINIMIZE"},
            "seed": "7",
        }),
    )
    .send(a)
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["study"]["seed"], json!("7"));
    let r = post("/v1/studies/s:suggest", &json!({"count": 2}))
        .send(a)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ids: Vec<String> = r.json()["trials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["trialId"]
                .as_str()
                .expect("trialId as a string")
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 2, "{}", r.text());
    let as_number: u64 = ids[1].parse().unwrap();
    for (id, given) in [(&ids[0], json!(ids[0])), (&ids[1], json!(as_number))] {
        let r = post(
            "/v1/studies/s:observe",
            &json!({"trialId": given, "value": 0.5}),
        )
        .send(a)
        .await;
        assert_eq!(r.status, 200, "{given}: {}", r.text());
        let t = &r.json()["trial"];
        assert_eq!(t["trialId"], json!(id), "{t}");
        assert_eq!(t["state"], json!("COMPLETED"), "{t}");
    }
    // Both really were observed: a second Observe is refused.
    let m = post(
        "/v1/studies/s:observe",
        &json!({"trialId": as_number, "value": 0.5}),
    )
    .send(a)
    .await
    .error(400, "FAILED_PRECONDITION");
    assert!(!m.is_empty());
    // And a string that is not a number names the field.
    let m = post(
        "/v1/studies/s:observe",
        &json!({"trialId": "three", "value": 1}),
    )
    .send(a)
    .await
    .error(400, "INVALID_ARGUMENT");
    assert!(m.contains("trialId"), "{m}");
    s.stop().await.unwrap();
}

// ---- metrics -------------------------------------------------------------

async fn scrape(port: u16) -> String {
    let r = get("/metrics")
        .try_send(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("scrape");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// The value of the sample whose line starts with `series` (name and labels
/// exactly as rendered), 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The only test here with metrics on (the recorder is process-global).
#[tokio::test]
async fn http_requests_are_counted_by_operation_never_by_name() {
    let mut cfg = test_config();
    // Port 0: the exporter reports the port it bound.
    cfg.metrics.listen = "127.0.0.1:0".into();
    let s = start(cfg).await;
    let port = s.metrics_addr.expect("metrics on").port();
    let a = s.addr;
    // A name that must never become an `rpc` label.
    const NAME: &str = "zebra-canary-42";
    create_experiment(a, NAME, 2, None).await;
    let series = |rpc: &str, code: &str| {
        format!(r#"posterior_grpc_requests_total{{transport="http",rpc="{rpc}",code="{code}"}}"#)
    };
    let choose_ok = series("posterior.v1.Bandits/Choose", "OK");
    let choose_missing = series("posterior.v1.Bandits/Choose", "NOT_FOUND");
    let get_missing = series("posterior.v1.Bandits/GetExperiment", "NOT_FOUND");
    let reward_bad = series("posterior.v1.Bandits/Reward", "INVALID_ARGUMENT");
    let no_route = series("other", "NOT_FOUND");
    let before = scrape(port).await;

    for _ in 0..3 {
        let r = post(format!("/v1/experiments/{NAME}:choose"), &json!({}))
            .send(a)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    post_empty("/v1/experiments/no-such-zebra:choose")
        .send(a)
        .await
        .error(404, "NOT_FOUND");
    get("/v1/experiments/no-such-zebra")
        .send(a)
        .await
        .error(404, "NOT_FOUND");
    post(
        format!("/v1/experiments/{NAME}:reward"),
        &json!({"value": "high"}),
    )
    .send(a)
    .await
    .error(400, "INVALID_ARGUMENT");
    // Made-up methods and routes carrying the name.
    post_empty(format!("/v1/experiments/{NAME}:frobnicate"))
        .send(a)
        .await
        .error(404, "NOT_FOUND");
    get(format!("/v1/{NAME}/{NAME}"))
        .send(a)
        .await
        .error(404, "NOT_FOUND");
    get(format!("/{NAME}"))
        .send(a)
        .await
        .error(404, "NOT_FOUND");
    let after = scrape(port).await;

    let delta = |s: &str| value(&after, s) - value(&before, s);
    assert_eq!(delta(&choose_ok), 3.0, "{after}");
    assert_eq!(delta(&choose_missing), 1.0, "{after}");
    assert_eq!(delta(&get_missing), 1.0, "{after}");
    assert_eq!(delta(&reward_bad), 1.0, "{after}");
    assert_eq!(delta(&no_route), 3.0, "{after}");
    // Timed under the same labels.
    assert_eq!(
        value(
            &after,
            r#"posterior_grpc_request_duration_seconds_count{transport="http",rpc="posterior.v1.Bandits/Choose",code="OK"}"#
        ) - value(
            &before,
            r#"posterior_grpc_request_duration_seconds_count{transport="http",rpc="posterior.v1.Bandits/Choose",code="OK"}"#
        ),
        3.0
    );
    // No `rpc` label holds a user-given name (the experiment label may).
    let rpc_labels: Vec<&str> = after
        .lines()
        .filter_map(|l| l.split_once("rpc=\"").map(|(_, r)| r))
        .filter_map(|r| r.split_once('"').map(|(v, _)| v))
        .collect();
    assert!(!rpc_labels.is_empty(), "{after}");
    for l in &rpc_labels {
        assert!(
            !l.contains("zebra") && !l.starts_with("v1/") && !l.contains(':'),
            "user-given path in an rpc label: {l:?}"
        );
    }
    assert!(
        after.contains(&format!(
            r#"posterior_decisions_total{{experiment="{NAME}"}}"#
        )),
        "{after}"
    );
    s.stop().await.unwrap();
}
