//! Decision ids: a reward is attributed to its decision without a store write
//! at Choose time.
//!
//! The id carries the chosen arm's index, the issue time and a random nonce,
//! with an HMAC-SHA256 tag (truncated to 128 bits) over those and the
//! experiment's name and incarnation id. A forged or altered id fails the tag
//! check; an id of a deleted experiment fails it for the re-created one. The
//! (issue time, nonce) pair is the dedupe key that makes Reward exactly-once.
//!
//! Layout, 37 bytes, base64url without padding (50 characters):
//! `version:u8 | arm:u32 | issued_ms:u64 | nonce:u64 | tag:[u8; 16]`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const BODY_LEN: usize = 1 + 4 + 8 + 8;
/// 128-bit tags: forging one takes ~2^128 tries; halving the SHA-256 output
/// keeps ids short.
const TAG_LEN: usize = 16;
const TOKEN_LEN: usize = BODY_LEN + TAG_LEN;
/// Encoded length; anything longer is rejected before decoding.
pub const ENCODED_LEN: usize = (TOKEN_LEN * 4).div_ceil(3);

/// What a valid decision id says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub arm: u32,
    pub issued_ms: u64,
    pub nonce: u64,
}

impl Decision {
    /// 16 bytes that identify this decision for exactly-once bookkeeping.
    pub fn dedupe_key(&self) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&self.issued_ms.to_be_bytes());
        k[8..].copy_from_slice(&self.nonce.to_be_bytes());
        k
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("decision_id: not a decision id issued by this service (malformed)")]
    Malformed,
    #[error(
        "decision_id: signature check failed (forged, altered, or issued for another experiment or an earlier incarnation of it)"
    )]
    BadSignature,
}

/// Signs and verifies decision ids with the server key. Cloning the keyed
/// HMAC state per call skips re-hashing the key each time.
#[derive(Clone)]
pub struct DecisionSigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for DecisionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DecisionSigner(..)")
    }
}

impl DecisionSigner {
    pub fn new(key: &[u8]) -> Self {
        // HMAC accepts keys of any length.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        DecisionSigner { mac }
    }

    fn tag(&self, experiment: &str, experiment_id: u64, body: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(&experiment_id.to_be_bytes());
        mac.update(&(experiment.len() as u64).to_be_bytes());
        mac.update(experiment.as_bytes());
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&full[..TAG_LEN]);
        t
    }

    pub fn sign(&self, experiment: &str, experiment_id: u64, d: &Decision) -> String {
        let mut raw = [0u8; TOKEN_LEN];
        raw[0] = VERSION;
        raw[1..5].copy_from_slice(&d.arm.to_be_bytes());
        raw[5..13].copy_from_slice(&d.issued_ms.to_be_bytes());
        raw[13..21].copy_from_slice(&d.nonce.to_be_bytes());
        let tag = self.tag(experiment, experiment_id, &raw[..BODY_LEN]);
        raw[BODY_LEN..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn verify(
        &self,
        experiment: &str,
        experiment_id: u64,
        token: &str,
    ) -> Result<Decision, TokenError> {
        if token.len() != ENCODED_LEN {
            return Err(TokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() != TOKEN_LEN || raw[0] != VERSION {
            return Err(TokenError::Malformed);
        }
        let mut mac = self.mac.clone();
        mac.update(&experiment_id.to_be_bytes());
        mac.update(&(experiment.len() as u64).to_be_bytes());
        mac.update(experiment.as_bytes());
        mac.update(&raw[..BODY_LEN]);
        // Constant-time comparison of the truncated tag.
        mac.verify_truncated_left(&raw[BODY_LEN..])
            .map_err(|_| TokenError::BadSignature)?;
        let u32_at = |i: usize| u32::from_be_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[i..i + 8]);
            u64::from_be_bytes(b)
        };
        Ok(Decision {
            arm: u32_at(1),
            issued_ms: u64_at(5),
            nonce: u64_at(13),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer() -> DecisionSigner {
        DecisionSigner::new(b"test key")
    }

    #[test]
    fn round_trip_and_tamper() {
        let d = Decision {
            arm: 7,
            issued_ms: 1_700_000_000_000,
            nonce: 42,
        };
        let t = signer().sign("exp", 9, &d);
        assert_eq!(t.len(), ENCODED_LEN);
        assert_eq!(signer().verify("exp", 9, &t), Ok(d));
        assert_eq!(
            signer().verify("exp2", 9, &t),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer().verify("exp", 10, &t),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            DecisionSigner::new(b"other").verify("exp", 9, &t),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer().verify("exp", 9, "short"),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            signer().verify("exp", 9, &"!".repeat(ENCODED_LEN)),
            Err(TokenError::Malformed)
        );
        // Flip each character: never accepted.
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let s = String::from_utf8(b).unwrap();
            assert!(signer().verify("exp", 9, &s).is_err(), "position {i}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_verify_or_panic(s in ".{0,80}") {
            prop_assert!(signer().verify("exp", 1, &s).is_err());
        }
    }
}
