//! One client for both services: `posterior.v1.Bandits` and
//! `posterior.v1.Optimizer` over one channel, every request stamped with the
//! API key and the deadline, every failure turned into a sentence that says
//! what is wrong with `--server` (no scheme, nothing listening, TLS on one
//! side only, not a posterior server, no answer in time).

use std::error::Error as StdError;
use std::future::Future;
use std::time::Duration;

use http::Uri;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use super::render::num_short;
use super::{Conn, Error};
use crate::pb;
use crate::pb::bandits_client::BanditsClient;
use crate::pb::optimizer_client::OptimizerClient;

/// Stamps every request with the API key and a `grpc-timeout` equal to the
/// client's deadline, so the server stops working on a call nobody waits for.
#[derive(Clone)]
pub struct Stamp {
    key: Option<AsciiMetadataValue>,
    timeout: Duration,
}

impl Interceptor for Stamp {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(k) = &self.key {
            req.metadata_mut().insert("x-api-key", k.clone());
        }
        req.set_timeout(self.timeout);
        Ok(req)
    }
}

type Stamped = InterceptedService<Channel, Stamp>;

/// Where we talk to, for the deadline and for error messages.
#[derive(Clone, Debug)]
struct Target {
    /// As the user wrote it.
    server: String,
    uri: Uri,
    timeout: Duration,
    /// --tls-ca and --tls-cert given: hints name the flags missing.
    has_ca: bool,
    has_cert: bool,
}

/// A connected client of both services.
pub struct Client {
    bandits: BanditsClient<Stamped>,
    optimizer: OptimizerClient<Stamped>,
    target: Target,
}

impl Client {
    /// Checks the flags, then connects (TCP, TLS when https://, HTTP/2)
    /// within `--timeout`.
    pub async fn connect(conn: &Conn) -> Result<Client, Error> {
        let uri = parse_server(&conn.server)?;
        let key = match &conn.api_key {
            Some(k) => Some(
                k.parse::<AsciiMetadataValue>()
                    .map_err(|_| Error::Usage("--api-key: must be printable ASCII".into()))?,
            ),
            None => None,
        };
        let target = Target {
            server: conn.server.clone(),
            uri: uri.clone(),
            timeout: conn.timeout,
            has_ca: conn.tls_ca.is_some(),
            has_cert: conn.tls_cert.is_some(),
        };
        let mut endpoint = Endpoint::from(uri);
        if target.is_tls() {
            endpoint = endpoint
                .tls_config(tls_config(conn)?)
                .map_err(|e| Error::Failed(format!("TLS: {}", chain(&e))))?;
        }
        let channel = match tokio::time::timeout(conn.timeout, endpoint.connect()).await {
            Err(_) => return Err(target.timed_out()),
            Ok(Err(e)) => return Err(target.diagnose(&e).await),
            Ok(Ok(c)) => c,
        };
        let stamp = Stamp {
            key,
            timeout: conn.timeout,
        };
        Ok(Client {
            bandits: BanditsClient::with_interceptor(channel.clone(), stamp.clone()),
            optimizer: OptimizerClient::with_interceptor(channel, stamp),
            target,
        })
    }
}

/// One method per RPC, each bounded by the deadline and with its failure
/// explained.
macro_rules! rpcs {
    ($($svc:ident . $method:ident ($req:ty) -> $resp:ty;)*) => {
        impl Client {
            $(
                #[doc = concat!("`", stringify!($svc), ".", stringify!($method), "` within `--timeout`.")]
                pub async fn $method(&mut self, req: $req) -> Result<$resp, Error> {
                    let call = self.$svc.$method(req);
                    settle(&self.target, call).await
                }
            )*
        }
    };
}

rpcs! {
    bandits.create_experiment(pb::CreateExperimentRequest) -> pb::CreateExperimentResponse;
    bandits.get_experiment(pb::GetExperimentRequest) -> pb::GetExperimentResponse;
    bandits.list_experiments(pb::ListExperimentsRequest) -> pb::ListExperimentsResponse;
    bandits.delete_experiment(pb::DeleteExperimentRequest) -> pb::DeleteExperimentResponse;
    bandits.add_arm(pb::AddArmRequest) -> pb::AddArmResponse;
    bandits.retire_arm(pb::RetireArmRequest) -> pb::RetireArmResponse;
    bandits.choose(pb::ChooseRequest) -> pb::ChooseResponse;
    bandits.reward(pb::RewardRequest) -> pb::RewardResponse;
    bandits.reward_aggregate(pb::RewardAggregateRequest) -> pb::RewardAggregateResponse;
    bandits.reward_batch(pb::RewardBatchRequest) -> pb::RewardBatchResponse;
    bandits.get_verdict(pb::GetVerdictRequest) -> pb::GetVerdictResponse;
    bandits.gate(pb::GateRequest) -> pb::GateResponse;
    optimizer.create_study(pb::CreateStudyRequest) -> pb::CreateStudyResponse;
    optimizer.get_study(pb::GetStudyRequest) -> pb::GetStudyResponse;
    optimizer.list_studies(pb::ListStudiesRequest) -> pb::ListStudiesResponse;
    optimizer.delete_study(pb::DeleteStudyRequest) -> pb::DeleteStudyResponse;
    optimizer.suggest(pb::SuggestRequest) -> pb::SuggestResponse;
    optimizer.observe(pb::ObserveRequest) -> pb::ObserveResponse;
    optimizer.abandon_trial(pb::AbandonTrialRequest) -> pb::AbandonTrialResponse;
    optimizer.enqueue_trial(pb::EnqueueTrialRequest) -> pb::EnqueueTrialResponse;
    optimizer.add_trial(pb::AddTrialRequest) -> pb::AddTrialResponse;
}

/// Awaits `call` for at most the deadline. The client-side timer is the one
/// that counts: a server that accepted the connection and never answers
/// (or a proxy in between) sends no grpc-timeout error back.
async fn settle<T>(
    target: &Target,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Error> {
    match tokio::time::timeout(target.timeout, call).await {
        Err(_) => Err(target.timed_out()),
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(target.status(s).await),
    }
}

/// `--server` must be an http:// or https:// URL with a host: tonic would
/// otherwise fail later with a message about URIs that does not name the
/// flag.
fn parse_server(server: &str) -> Result<Uri, Error> {
    let bad = |why: &str| Error::Usage(format!("--server {server}: {why}"));
    if !server.contains("://") {
        return Err(bad(&format!("needs a scheme, e.g. http://{server}")));
    }
    let uri: Uri = server
        .parse()
        .map_err(|e| bad(&format!("not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(bad(
                "the scheme must be http:// (plaintext) or https:// (TLS)",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host, e.g. http://127.0.0.1:50051"));
    }
    Ok(uri)
}

fn tls_config(conn: &Conn) -> Result<ClientTlsConfig, Error> {
    let read = |p: &std::path::PathBuf| {
        std::fs::read(p).map_err(|e| Error::Failed(format!("{}: {e}", p.display())))
    };
    let mut tls = ClientTlsConfig::new();
    if let Some(ca) = &conn.tls_ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    if let (Some(c), Some(k)) = (&conn.tls_cert, &conn.tls_key) {
        tls = tls.identity(Identity::from_pem(read(c)?, read(k)?));
    }
    Ok(tls)
}

/// The messages of an error and of all its sources, outermost first.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        // Wrappers often repeat their source's text; say it once.
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// The first I/O error kind in the source chain.
fn io_kind(e: &(dyn StdError + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = err.source();
    }
    None
}

/// What answers at the server's address, seen from raw bytes.
#[derive(Debug, PartialEq)]
enum Peer {
    /// A TLS record (alert or handshake): a TLS server.
    Tls,
    /// `HTTP/1.x ...`: a web server, not gRPC.
    Http1,
    /// An HTTP/2 SETTINGS frame: HTTP/2 in plaintext.
    Http2,
    /// Something else, or nothing.
    Unknown,
}

impl Target {
    fn is_tls(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }

    fn authority(&self) -> &str {
        self.uri.authority().map_or("", |a| a.as_str())
    }

    fn timed_out(&self) -> Error {
        Error::Failed(format!(
            "{}: no answer within {} s (--timeout)",
            self.server,
            num_short(self.timeout.as_secs_f64())
        ))
    }

    /// A failed call. Statuses the server sent are shown as they are; a
    /// status tonic made up from a transport failure is diagnosed.
    async fn status(&self, s: Status) -> Error {
        match s.code() {
            Code::DeadlineExceeded => return self.timed_out(),
            // tonic's own grpc-timeout enforcement.
            Code::Cancelled if s.message() == "Timeout expired" => return self.timed_out(),
            _ => {}
        }
        if let Some(src) = s.source() {
            return self.diagnose(src).await;
        }
        if s.message().starts_with("grpc-status header missing") {
            // An HTTP/2 server answered, but not with gRPC.
            return Error::Failed(format!(
                "{} is not a posterior gRPC server: {}",
                self.server,
                s.message()
            ));
        }
        if s.code() == Code::Unimplemented && s.message().is_empty() {
            return Error::Failed(format!(
                "{} is not a posterior gRPC server (or an older one): it does not know this call",
                self.server
            ));
        }
        Error::Failed(format!("{:?}: {}", s.code(), s.message()))
    }

    /// A transport failure (connect or call): names the likely cause.
    async fn diagnose(&self, e: &(dyn StdError + 'static)) -> Error {
        let detail = chain(e);
        let fail = |msg: String| Error::Failed(msg);
        match io_kind(e) {
            Some(std::io::ErrorKind::ConnectionRefused) => {
                return fail(format!(
                    "nothing listens at {} (connection refused): is `posterior serve` running there?",
                    self.authority()
                ));
            }
            Some(std::io::ErrorKind::TimedOut) => return self.timed_out(),
            _ => {}
        }
        let lower = detail.to_lowercase();
        if self.is_tls() {
            if lower.contains("certificate") {
                let hint = if lower.contains("certificaterequired")
                    || lower.contains("certificate required")
                {
                    "the server requires a client certificate: give --tls-cert and --tls-key"
                } else if self.has_ca {
                    "is --tls-ca the CA that signed the server's certificate?"
                } else {
                    "give the CA that signed the server's certificate with --tls-ca"
                };
                return fail(format!("TLS with {}: {detail}; {hint}", self.server));
            }
            if lower.contains("corrupt message") || lower.contains("invalidcontenttype") {
                return match self.probe().await {
                    Peer::Http1 => fail(format!(
                        "{} is not a posterior gRPC server: it answers plaintext HTTP/1, not TLS",
                        self.server
                    )),
                    _ => fail(format!(
                        "{} does not speak TLS: it is a plaintext server, use http://{}",
                        self.server,
                        self.authority()
                    )),
                };
            }
        } else {
            match self.probe().await {
                Peer::Tls => {
                    return fail(format!(
                        "{} speaks TLS: use https://{} (and --tls-ca for a private CA)",
                        self.server,
                        self.authority()
                    ));
                }
                Peer::Http1 => {
                    return fail(format!(
                        "{} is not a posterior gRPC server: it answers HTTP/1 (a web server?)",
                        self.server
                    ));
                }
                Peer::Http2 | Peer::Unknown => {}
            }
        }
        if self.is_tls() && !self.has_cert {
            // With TLS 1.3 a server that wants a client certificate refuses
            // only after the handshake: the client sees a closed connection.
            return fail(format!(
                "cannot talk to {}: {detail} (if it requires client certificates, give --tls-cert and --tls-key)",
                self.server
            ));
        }
        fail(format!("cannot talk to {}: {detail}", self.server))
    }

    /// After a failure only: opens a plain TCP connection, sends the HTTP/2
    /// preface, and looks at the first bytes of the answer. A TLS server
    /// answers with an alert record, an HTTP/1 server with `HTTP/1.1 400`,
    /// an HTTP/2 server with a SETTINGS frame.
    async fn probe(&self) -> Peer {
        let Some(host) = self.uri.host() else {
            return Peer::Unknown;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = self
            .uri
            .port_u16()
            .unwrap_or(if self.is_tls() { 443 } else { 80 });
        let look = async {
            let mut s = tokio::net::TcpStream::connect((host, port)).await.ok()?;
            s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                .await
                .ok()?;
            let mut buf = [0u8; 16];
            let mut n = 0;
            // A few bytes suffice; they may come in more than one segment.
            while n < 5 {
                match s.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
            }
            Some(buf[..n].to_vec())
        };
        let wait = self.timeout.min(Duration::from_secs(2));
        let Ok(Some(bytes)) = tokio::time::timeout(wait, look).await else {
            return Peer::Unknown;
        };
        classify(&bytes)
    }
}

fn classify(bytes: &[u8]) -> Peer {
    match bytes {
        [b'H', b'T', b'T', b'P', b'/', ..] => Peer::Http1,
        // Record type alert (21) or handshake (22), version 3.x.
        [0x15 | 0x16, 0x03, ..] => Peer::Tls,
        // A frame header: 24-bit length, then type 4 (SETTINGS).
        [_, _, _, 0x04, ..] => Peer::Http2,
        _ => Peer::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert!(parse_server("http://127.0.0.1:50051").is_ok());
        assert!(parse_server("https://posterior.internal:443").is_ok());
        let msg = |s: &str| match parse_server(s) {
            Err(Error::Usage(m)) => m,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(
            msg("127.0.0.1:50051"),
            "--server 127.0.0.1:50051: needs a scheme, e.g. http://127.0.0.1:50051"
        );
        assert!(msg("ftp://h:1").contains("http://"));
        assert!(msg("http://").contains("--server http://"));
    }

    #[test]
    fn peers_from_first_bytes() {
        assert_eq!(classify(b"HTTP/1.1 400 Bad Request"), Peer::Http1);
        assert_eq!(classify(&[0x15, 0x03, 0x03, 0x00, 0x02]), Peer::Tls);
        assert_eq!(classify(&[0, 0, 18, 4, 0]), Peer::Http2);
        assert_eq!(classify(b""), Peer::Unknown);
    }
}
