//! Proving knowledge of the cluster secret without sending it.
//!
//! Every member of a cluster (nodes and the coordinator) shares one secret.
//! A link between two members opens with a challenge-response in both
//! directions: each side sends a fresh random nonce, and each answers with
//! an HMAC-SHA256, keyed by the secret, over both nonces, the name of the
//! step and, from a node, its id. So
//!
//! - the secret never crosses the wire, and an eavesdropper learns nothing
//!   it can replay: the next connection has other nonces;
//! - a stranger who can reach the ports but lacks the secret can neither
//!   join (it cannot answer a challenge) nor pose as a member to one that
//!   dials it (it cannot prove itself first);
//! - a proof names its step ([`Step`]), so one side's answer can never be
//!   reflected back as the other's, nor a bus proof used on the
//!   coordinator link or between coordinators.
//!
//! Each field is length-prefixed before it is hashed, so no two different
//! sets of fields hash the same bytes. What travels are hex strings; this
//! module has no I/O: the links (`keycafe-server`'s bus and coordinator
//! link, `coordinate-server`'s listener and group links) carry the values
//! in their own messages. `docs/security.md` has the threat model.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Random bytes in a nonce (sent as twice as many hex digits).
pub const NONCE_LEN: usize = 32;

/// The shortest cluster secret accepted: a guessable secret protects
/// nothing.
pub const MIN_SECRET_LEN: usize = 16;

/// The step a proof answers; part of what is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A bus server answering the dialling node's challenge.
    BusServer,
    /// A node proving itself to the bus server it dialled.
    BusClient,
    /// The coordinator answering a node's challenge.
    Coordinator,
    /// A node proving itself to the coordinator.
    CoordinatorClient,
    /// A coordinator answering the challenge of a group member that dialled
    /// its group port.
    GroupServer,
    /// A coordinator proving itself to the group member it dialled.
    GroupClient,
}

impl Step {
    fn label(self) -> &'static [u8] {
        match self {
            Step::BusServer => b"keycafe/bus/server/v1",
            Step::BusClient => b"keycafe/bus/client/v1",
            Step::Coordinator => b"keycafe/coordinator/server/v1",
            Step::CoordinatorClient => b"keycafe/coordinator/client/v1",
            Step::GroupServer => b"keycafe/group/server/v1",
            Step::GroupClient => b"keycafe/group/client/v1",
        }
    }
}

/// A fresh nonce, as hex. Fails only if the operating system cannot give
/// random bytes.
pub fn nonce() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; NONCE_LEN];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// Why a secret is not acceptable, if it is not.
pub fn check_secret(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(format!(
            "the cluster secret must be at least {MIN_SECRET_LEN} characters (it has {}); \
             generate one with: openssl rand -hex 32",
            secret.len()
        ));
    }
    Ok(())
}

/// The proof for `step`: HMAC-SHA256 keyed by `secret` over the step, the
/// challenger's nonce, the answerer's nonce and the answerer's id (empty
/// for the coordinator and bus servers, which the dialler knows by
/// address; a coordinator's member id, in decimal, on either side of a
/// group link), as hex.
pub fn proof(secret: &[u8], step: Step, challenge: &str, answer_nonce: &str, id: &str) -> String {
    hex(&mac(secret, step, challenge, answer_nonce, id)
        .finalize()
        .into_bytes())
}

/// True if `proof` is the right one (compared in constant time).
pub fn verify(
    secret: &[u8],
    step: Step,
    challenge: &str,
    answer_nonce: &str,
    id: &str,
    proof: &str,
) -> bool {
    let Some(bytes) = unhex(proof) else {
        return false;
    };
    mac(secret, step, challenge, answer_nonce, id)
        .verify_slice(&bytes)
        .is_ok()
}

fn mac(secret: &[u8], step: Step, challenge: &str, answer_nonce: &str, id: &str) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    for field in [
        step.label(),
        challenge.as_bytes(),
        answer_nonce.as_bytes(),
        id.as_bytes(),
    ] {
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field);
    }
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 128 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// True if `nonce` has the shape of one of ours: so much hex, no more.
pub fn is_nonce(nonce: &str) -> bool {
    nonce.len() == 2 * NONCE_LEN && nonce.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-cluster";

    #[test]
    fn a_proof_verifies_only_with_the_same_secret_nonces_step_and_id() {
        let (a, b) = (nonce().unwrap(), nonce().unwrap());
        assert!(is_nonce(&a) && a != b);
        let good = proof(SECRET, Step::BusClient, &a, &b, "node-1");
        assert!(verify(SECRET, Step::BusClient, &a, &b, "node-1", &good));
        assert!(!verify(
            b"another secret!!",
            Step::BusClient,
            &a,
            &b,
            "node-1",
            &good
        ));
        assert!(
            !verify(SECRET, Step::BusServer, &a, &b, "node-1", &good),
            "reflected"
        );
        for other in [
            Step::CoordinatorClient,
            Step::GroupServer,
            Step::GroupClient,
        ] {
            assert!(!verify(SECRET, other, &a, &b, "node-1", &good), "{other:?}");
        }
        assert!(
            !verify(SECRET, Step::BusClient, &b, &a, "node-1", &good),
            "swapped"
        );
        assert!(
            !verify(SECRET, Step::BusClient, &a, &b, "node-2", &good),
            "other id"
        );
    }

    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        let one = proof(SECRET, Step::BusClient, "ab", "c", "");
        let other = proof(SECRET, Step::BusClient, "a", "bc", "");
        assert_ne!(one, other);
    }

    #[test]
    fn garbage_proofs_are_false_not_panics() {
        for junk in ["", "zz", "abc", "é", &"00".repeat(100)] {
            assert!(!verify(SECRET, Step::BusClient, "a", "b", "c", junk));
        }
        assert!(!is_nonce("short") && !is_nonce(&"g".repeat(64)));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(check_secret("short").is_err());
        assert!(check_secret("0123456789abcdef").is_ok());
    }
}
