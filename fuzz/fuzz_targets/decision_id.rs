//! Decision ids (`posterior::bandit::token`).
//!
//! Properties checked:
//! 1. `verify` never panics, whatever the token, experiment name and id.
//! 2. An accepted token is exactly the canonical id of what it decodes to:
//!    `verify(t) == Ok(d)` implies `sign(d) == t`. A second spelling of a
//!    valid id (non-canonical base64 trailing bits, padding, other alphabet)
//!    would break the one-id-per-decision assumption and fails here.
//! 3. Round trip: `verify(sign(d)) == Ok(d)`, the id has `ENCODED_LEN`
//!    base64url characters, and it is rejected for another experiment id.
//! 4. Any one-character substitution, truncation or extension of a signed id
//!    is rejected.
//!
//! Input layout (short inputs are zero-padded):
//! `experiment_id: u64 BE | n: u8 | experiment name: n bytes | mutation
//! position: u8 | mutation byte: u8 | rest`. `rest` is the token (lossy
//! UTF-8), and its first 20 bytes are also the round-trip decision
//! (`arm: u32 BE | issued_ms: u64 BE | nonce: u64 BE`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use posterior::bandit::token::{Decision, DecisionSigner, ENCODED_LEN};

const KEY: &[u8] = b"posterior fuzz key";
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Reads fixed-size fields from the front of the input, zero-padding.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let h = self.take(N);
        a[..h.len()].copy_from_slice(h);
        a
    }
    fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }
    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }
}

fuzz_target!(|data: &[u8]| {
    let signer = DecisionSigner::new(KEY);
    let mut r = Reader(data);
    let experiment_id = r.u64();
    let n = r.u8() as usize;
    let experiment = String::from_utf8_lossy(r.take(n)).into_owned();
    let mutation_pos = r.u8() as usize;
    let mutation_byte = r.u8();
    let rest = r.0;

    // 1 and 2: arbitrary token.
    let token = String::from_utf8_lossy(rest);
    if let Ok(d) = signer.verify(&experiment, experiment_id, &token) {
        let canonical = signer.sign(&experiment, experiment_id, &d);
        assert_eq!(
            canonical, token,
            "accepted a non-canonical spelling of a decision id: {d:?}"
        );
    }

    // 3: round trip of decision fields taken from the same bytes.
    let mut f = Reader(rest);
    let d = Decision {
        arm: u32::from_be_bytes(f.array()),
        issued_ms: f.u64(),
        nonce: f.u64(),
    };
    let id = signer.sign(&experiment, experiment_id, &d);
    assert_eq!(id.len(), ENCODED_LEN);
    assert!(id.bytes().all(|b| ALPHABET.contains(&b)), "{id:?}");
    assert_eq!(signer.verify(&experiment, experiment_id, &id), Ok(d));
    assert!(
        signer.verify(&experiment, experiment_id ^ 1, &id).is_err(),
        "id verified for another experiment id"
    );

    // 4: one-character substitution by another base64url character (the
    // interesting case: it still decodes), or by any other byte.
    let pos = mutation_pos % id.len();
    let mut bytes = id.clone().into_bytes();
    bytes[pos] = if mutation_byte < 128 {
        let c = ALPHABET[(mutation_byte % 64) as usize];
        if c == bytes[pos] {
            ALPHABET[((mutation_byte + 1) % 64) as usize]
        } else {
            c
        }
    } else if mutation_byte == 128 {
        b'='
    } else if bytes[pos] == mutation_byte & 0x7f {
        b'!'
    } else {
        // 129..=255 → an ASCII byte different from the original.
        mutation_byte & 0x7f
    };
    let mutated = String::from_utf8(bytes).expect("ASCII");
    assert_ne!(mutated, id);
    if let Ok(m) = signer.verify(&experiment, experiment_id, &mutated) {
        panic!(
            "mutated id accepted: signed {id:?} for {d:?}; mutated at {pos} to {mutated:?}, decoded {m:?}"
        );
    }
    // Truncated, or extended by a character or by base64 padding.
    let shorter = &id[..id.len() - 1];
    assert!(signer.verify(&experiment, experiment_id, shorter).is_err());
    for tail in ["=", "==", "A", "\u{0}"] {
        let longer = format!("{id}{tail}");
        assert!(signer.verify(&experiment, experiment_id, &longer).is_err());
    }
});
