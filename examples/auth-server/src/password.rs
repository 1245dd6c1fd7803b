//! Password hashing with argon2id, off the async threads.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`)
//! with OWASP's minimum parameters: 19 MiB of memory, 2 passes, 1 lane. Each
//! hash has its own random 16-byte salt. Verifying one costs ~25 ms of CPU in
//! an optimised build — far too long to block a tokio worker, so [`verify`]
//! runs on the blocking pool.
//!
//! Logging in as an unknown user must cost the same as a wrong password, or
//! the response time tells an attacker which emails have accounts. So the
//! server keeps a [`DummyHash`] (made at start-up with the same parameters)
//! and verifies the submitted password against it when no user matched.

use anyhow::Context;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Longest password accepted, in bytes: far above any real password (and
/// the ≥64 characters the example promises), low enough that nobody makes
/// the server hash megabytes. Longer ones get 400, never silent truncation.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// OWASP's minimum for argon2id: m = 19456 KiB, t = 2, p = 1.
pub const MEMORY_KIB: u32 = 19_456;
/// Passes over memory.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
        .expect("the argon2 parameters are constants within argon2's limits");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` with a fresh random salt. Blocking (~25 ms optimised):
/// call it from the blocking pool or a command-line tool.
pub fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let hash = argon2()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    Ok(hash.to_string())
}

/// True if `password` matches the PHC string `phc`. Blocking, like
/// [`hash_blocking`]. A malformed hash is an error, not a mismatch.
pub fn verify_blocking(password: &str, phc: &str) -> anyhow::Result<bool> {
    match argon2().verify_password(password.as_bytes(), phc) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(anyhow::anyhow!(
            "cannot verify against the stored hash: {e}"
        )),
    }
}

/// [`verify_blocking`] on tokio's blocking pool.
pub async fn verify(password: String, phc: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || verify_blocking(&password, &phc))
        .await
        .context("password verification task failed")?
}

/// A hash of a random password nobody knows, verified against when a login
/// names no user, so that it costs the same as a wrong password.
#[derive(Clone)]
pub struct DummyHash(String);

impl DummyHash {
    /// Makes one (on the blocking pool: it is a real argon2 hash).
    pub async fn generate() -> anyhow::Result<DummyHash> {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret[..]);
        let password = secret
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        let hash = tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .context("dummy hash task failed")??;
        Ok(DummyHash(hash))
    }

    /// The PHC string.
    pub fn phc(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let long = "correct horse battery staple ".repeat(3); // 87 characters
        let hash = hash_blocking(&long).expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_blocking(&long, &hash).expect("verify"));
        // Not truncated: dropping the last character (or adding one) fails.
        assert!(!verify_blocking(&long[..long.len() - 1], &hash).expect("verify"));
        assert!(!verify_blocking(&format!("{long}x"), &hash).expect("verify"));
    }

    #[test]
    fn salts_differ() {
        assert_ne!(
            hash_blocking("pw").expect("hash"),
            hash_blocking("pw").expect("hash")
        );
    }

    #[test]
    fn malformed_hash_is_an_error() {
        assert!(verify_blocking("pw", "not a phc string").is_err());
    }
}
