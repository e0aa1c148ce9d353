//! API keys with scopes, checked by a tower layer in front of every service.
//!
//! | scope | grants |
//! | --- | --- |
//! | `decide` | Choose, Suggest, GetExperiment, ListExperiments, GetStudy, ListStudies, GetVerdict, Gate, GetExperimentHistory, GetStudySlices |
//! | `report` | Reward, RewardAggregate, RewardBatch, Observe, AbandonTrial, EnqueueTrial, AddTrial |
//! | `admin` | CreateExperiment, DeleteExperiment, AddArm, RetireArm, CreateStudy, DeleteStudy |
//!
//! Health and reflection stay open: load balancers and generic gRPC tools
//! need them, and they reveal nothing but the schema.
//!
//! The check itself runs in the admission layer (`edge::admission`), for
//! both transports.
//! A key travels as `authorization: Bearer KEY` or `x-api-key: KEY`. Keys
//! are stored as SHA-256 digests and compared in constant time, so neither
//! timing nor a memory dump of the config reveals them. Missing or unknown
//! key: UNAUTHENTICATED; known key without the scope: PERMISSION_DENIED.

use crate::error::{Error, ErrorKind};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Decide = 1,
    Report = 2,
    Admin = 4,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s.trim() {
            "decide" => Some(Scope::Decide),
            "report" => Some(Scope::Report),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// The scope a request needs; `None` for open routes (gRPC health and
/// reflection; HTTP `/healthz`, `/readyz`, the OpenAPI document).
///
/// gRPC: by method name. HTTP (`/v1/...`): reads (GET) and the deciding
/// custom methods (`:choose`, `:suggest`) need `decide`; the reporting ones
/// (`:reward`, `:observe`) `report`; everything else under `/v1/` (create,
/// delete, arms) `admin`, so a route added without a thought here is
/// admin-only rather than open.
pub fn scope_for(method: &http::Method, path: &str) -> Option<Scope> {
    if path.starts_with("/posterior.v1.") {
        let rpc = path.rsplit('/').next().unwrap_or("");
        return Some(match rpc {
            // What a worker reports about trials, like Observe: a
            // `decide` key that may only Suggest cannot abandon, queue or
            // invent trials.
            "Reward" | "RewardAggregate" | "RewardBatch" | "Observe" | "AbandonTrial"
            | "EnqueueTrial" | "AddTrial" => Scope::Report,
            "CreateExperiment" | "DeleteExperiment" | "AddArm" | "RetireArm" | "CreateStudy"
            | "DeleteStudy" => Scope::Admin,
            // Everything else in our packages reads or decides. A new RPC
            // defaults to `decide` unless listed above: keep this list in
            // step with the protos (a test checks every RPC is classified).
            _ => Scope::Decide,
        });
    }
    if !path.starts_with("/v1/") || path == "/v1/openapi.json" {
        return None;
    }
    if method == http::Method::GET {
        return Some(Scope::Decide);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    let verb = last.rsplit_once(':').map_or("", |(_, v)| v);
    Some(match (method, verb) {
        (&http::Method::POST, "choose" | "suggest") => Scope::Decide,
        (
            &http::Method::POST,
            "reward" | "rewardAggregate" | "rewardBatch" | "observe" | "abandon" | "enqueue"
            | "addTrial",
        ) => Scope::Report,
        _ => Scope::Admin,
    })
}

/// Configured keys: digests and scope bitmasks.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<([u8; 32], u8)>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

/// Shortest accepted key: 16 bytes of a random token is ~96+ bits.
pub const MIN_KEY_LEN: usize = 16;

fn digest(key: &str) -> [u8; 32] {
    let mut d = [0u8; 32];
    d.copy_from_slice(&Sha256::digest(key.as_bytes()));
    d
}

/// Equal-time comparison of two digests: no early exit on the first difference.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

impl ApiKeys {
    /// Parse entries of the form `KEY:scope[,scope…]`; `field` names the
    /// config key in errors (never the key itself).
    pub fn parse(field: &str, entries: &[String]) -> Result<ApiKeys, String> {
        let mut keys = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let Some((key, scopes)) = e.rsplit_once(':') else {
                return Err(format!("{field}[{i}]: expected KEY:scope[,scope...]"));
            };
            // Keys travel in an HTTP header, which cannot carry spaces at
            // either end or control bytes: such a key could never match.
            if !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "{field}[{i}]: keys must be printable ASCII without spaces (they are sent in an HTTP header)"
                ));
            }
            if key.len() < MIN_KEY_LEN {
                return Err(format!(
                    "{field}[{i}]: keys must be at least {MIN_KEY_LEN} characters"
                ));
            }
            let mut mask = 0u8;
            for s in scopes.split(',') {
                let scope = Scope::parse(s).ok_or_else(|| {
                    format!(
                        "{field}[{i}]: unknown scope {:?} (decide, report, admin)",
                        s.trim()
                    )
                })?;
                mask |= scope as u8;
            }
            keys.push((digest(key), mask));
        }
        Ok(ApiKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Check `presented` for `needed`. Every configured key is compared, so
    /// the time taken does not depend on which (if any) matched.
    pub fn authorize(&self, presented: Option<&str>, needed: Scope) -> Result<(), Error> {
        let Some(p) = presented else {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "missing API key: send 'authorization: Bearer KEY' or 'x-api-key: KEY'",
            ));
        };
        let d = digest(p);
        let mut mask = 0u8;
        for (k, m) in &self.keys {
            if same(k, &d) {
                mask |= m;
            }
        }
        if mask == 0 {
            return Err(Error::new(ErrorKind::Unauthenticated, "unknown API key"));
        }
        if mask & needed as u8 == 0 {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                format!("this API key lacks the {needed:?} scope"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_codes() {
        let keys = ApiKeys::parse(
            "auth.keys",
            &[
                "decider-key-0123456789:decide".into(),
                "admin-key-0123456789ab:admin,decide,report".into(),
            ],
        )
        .unwrap();
        assert!(
            keys.authorize(Some("decider-key-0123456789"), Scope::Decide)
                .is_ok()
        );
        assert_eq!(
            keys.authorize(Some("decider-key-0123456789"), Scope::Report)
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            keys.authorize(Some("nope-nope-nope-nope"), Scope::Decide)
                .unwrap_err()
                .code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            keys.authorize(None, Scope::Decide).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        assert!(
            keys.authorize(Some("admin-key-0123456789ab"), Scope::Admin)
                .is_ok()
        );
        let e = ApiKeys::parse("auth.keys", &["short:decide".into()]).unwrap_err();
        assert!(e.starts_with("auth.keys[0]") && !e.contains("short"), "{e}");
        assert!(
            ApiKeys::parse("auth.keys", &["a-long-enough-key-1:fly".into()])
                .unwrap_err()
                .contains("fly")
        );
    }

    #[test]
    fn keys_that_no_header_could_carry_are_refused() {
        for bad in [
            " leading-space-0123456789:decide",
            "inner space 0123456789ab:decide",
            "tab\tkey-0123456789abcdef:decide",
        ] {
            let e = ApiKeys::parse("auth.keys", &[bad.into()]).unwrap_err();
            assert!(e.contains("auth.keys[0]") && e.contains("printable"), "{e}");
        }
    }

    #[test]
    fn every_rpc_is_classified() {
        // The proto's RPCs, straight from the descriptor set: a new RPC must
        // land in a deliberate scope.
        use prost::Message;
        let fds = prost_types::FileDescriptorSet::decode(crate::pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut seen = 0;
        for f in &fds.file {
            for s in &f.service {
                for m in &s.method {
                    let path = format!("/posterior.v1.{}/{}", s.name(), m.name());
                    let scope = scope_for(&http::Method::POST, &path).unwrap();
                    let expected = match m.name() {
                        n if n.starts_with("Reward")
                            || matches!(
                                n,
                                "Observe" | "AbandonTrial" | "EnqueueTrial" | "AddTrial"
                            ) =>
                        {
                            Scope::Report
                        }
                        n if n.starts_with("Create")
                            || n.starts_with("Delete")
                            || n.ends_with("Arm") =>
                        {
                            Scope::Admin
                        }
                        _ => Scope::Decide,
                    };
                    assert_eq!(scope, expected, "{path}");
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 23);
        assert_eq!(
            scope_for(&http::Method::POST, "/grpc.health.v1.Health/Check"),
            None
        );
    }

    #[test]
    fn every_http_route_is_classified() {
        use http::Method;
        let cases = [
            (Method::GET, "/healthz", None),
            (Method::GET, "/readyz", None),
            (Method::GET, "/v1/openapi.json", None),
            // The dashboard's page and files hold no data: open. Its API
            // calls are /v1/ GETs like any other.
            (Method::GET, "/", None),
            (Method::GET, "/ui/", None),
            (Method::GET, "/ui/app.js", None),
            (Method::GET, "/v1/experiments", Some(Scope::Decide)),
            (Method::GET, "/v1/experiments/a:b", Some(Scope::Decide)),
            (
                Method::POST,
                "/v1/experiments/e:choose",
                Some(Scope::Decide),
            ),
            (
                Method::POST,
                "/v1/experiments/a:b:reward",
                Some(Scope::Report),
            ),
            (Method::POST, "/v1/studies/s:suggest", Some(Scope::Decide)),
            (Method::POST, "/v1/studies/s:observe", Some(Scope::Report)),
            (Method::POST, "/v1/studies/s:abandon", Some(Scope::Report)),
            (Method::POST, "/v1/studies/s:enqueue", Some(Scope::Report)),
            (Method::POST, "/v1/studies/s:addTrial", Some(Scope::Report)),
            (
                Method::POST,
                "/v1/experiments/e:rewardAggregate",
                Some(Scope::Report),
            ),
            (
                Method::POST,
                "/v1/experiments/e:rewardBatch",
                Some(Scope::Report),
            ),
            (
                Method::GET,
                "/v1/experiments/e:verdict",
                Some(Scope::Decide),
            ),
            (Method::GET, "/v1/experiments/e:gate", Some(Scope::Decide)),
            (
                Method::GET,
                "/v1/experiments/e/history",
                Some(Scope::Decide),
            ),
            (Method::GET, "/v1/studies/s/slices", Some(Scope::Decide)),
            (Method::POST, "/v1/experiments", Some(Scope::Admin)),
            (Method::DELETE, "/v1/experiments/e", Some(Scope::Admin)),
            (Method::POST, "/v1/experiments/e/arms", Some(Scope::Admin)),
            (
                Method::POST,
                "/v1/experiments/e/arms/a:retire",
                Some(Scope::Admin),
            ),
            (Method::POST, "/v1/studies", Some(Scope::Admin)),
            (Method::DELETE, "/v1/studies/s", Some(Scope::Admin)),
            // Unknown routes under /v1/ need the most, not the least.
            (
                Method::POST,
                "/v1/experiments/e:frobnicate",
                Some(Scope::Admin),
            ),
        ];
        for (m, p, want) in cases {
            assert_eq!(scope_for(&m, p), want, "{m} {p}");
        }
    }
}
