//! API keys with scopes, checked by a tower layer in front of every service.
//!
//! | scope | grants |
//! | --- | --- |
//! | `decide` | Choose, Suggest, GetExperiment, ListExperiments, GetStudy, ListStudies |
//! | `report` | Reward, Observe |
//! | `admin` | CreateExperiment, DeleteExperiment, AddArm, RetireArm, CreateStudy, DeleteStudy |
//!
//! Health and reflection stay open: load balancers and generic gRPC tools
//! need them, and they reveal nothing but the schema.
//!
//! The check itself runs in the admission layer (`api::admission`).
//! A key travels as `authorization: Bearer KEY` or `x-api-key: KEY`. Keys
//! are stored as SHA-256 digests and compared in constant time, so neither
//! timing nor a memory dump of the config reveals them. Missing or unknown
//! key: UNAUTHENTICATED; known key without the scope: PERMISSION_DENIED.

use sha2::{Digest, Sha256};
use tonic::Status;

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

/// The scope an RPC needs; `None` for open services (health, reflection).
pub fn scope_for(path: &str) -> Option<Scope> {
    let method = path.rsplit('/').next().unwrap_or("");
    if !path.starts_with("/posterior.v1.") {
        return None;
    }
    Some(match method {
        "Reward" | "Observe" => Scope::Report,
        "CreateExperiment" | "DeleteExperiment" | "AddArm" | "RetireArm" | "CreateStudy"
        | "DeleteStudy" => Scope::Admin,
        // Everything else in our packages reads or decides. A new RPC
        // defaults to `admin` only if listed above: keep this list in step
        // with the protos (a test checks every RPC is classified).
        _ => Scope::Decide,
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
    pub fn authorize(&self, presented: Option<&str>, needed: Scope) -> Result<(), Status> {
        let Some(p) = presented else {
            return Err(Status::unauthenticated(
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
            return Err(Status::unauthenticated("unknown API key"));
        }
        if mask & needed as u8 == 0 {
            return Err(Status::permission_denied(format!(
                "this API key lacks the {:?} scope",
                needed
            )));
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
        let fds = prost_types::FileDescriptorSet::decode(crate::api::FILE_DESCRIPTOR_SET).unwrap();
        let mut seen = 0;
        for f in &fds.file {
            for s in &f.service {
                for m in &s.method {
                    let path = format!("/posterior.v1.{}/{}", s.name(), m.name());
                    let scope = scope_for(&path).unwrap();
                    let expected = match m.name() {
                        "Reward" | "Observe" => Scope::Report,
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
        assert_eq!(seen, 14);
        assert_eq!(scope_for("/grpc.health.v1.Health/Check"), None);
    }
}
