//! Password hashing with argon2id, always off the async runtime.
//!
//! Hashes are PHC strings carrying their own parameters, so changing the cost
//! settings never breaks existing accounts. Logins for unknown emails verify
//! against a dummy hash of the same cost, so both failures take as long.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};

/// Hashes and verifies passwords with fixed argon2id parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// Computed off the start-up path (see [`PasswordHasher::warm_up`]).
    dummy_hash: Arc<OnceLock<String>>,
}

impl PasswordHasher {
    /// A hasher with `memory_kib` of memory and `iterations` passes, one lane.
    pub fn new(memory_kib: u32, iterations: u32) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        Ok(Self {
            params,
            dummy_hash: Arc::new(OnceLock::new()),
        })
    }

    fn dummy(&self) -> String {
        self.dummy_hash
            .get_or_init(|| {
                hash_with(&self.params, "orgboard dummy password for timing").unwrap_or_default()
            })
            .clone()
    }

    /// Computes the dummy hash on the blocking pool, so start-up does not
    /// wait for it and the first unknown-email login costs the same as others.
    pub fn warm_up(&self) {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            this.dummy();
        });
    }

    /// The PHC hash of `password`, computed on the blocking pool.
    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, &password)).await?
    }

    /// Whether `password` matches `hash`; with `None` it checks against the
    /// dummy hash (and answers `false`) so an unknown account costs the same.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let known = hash.is_some();
        let this = self.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let hash = hash.unwrap_or_else(|| this.dummy());
            let Ok(parsed) = PasswordHash::new(&hash) else {
                return false;
            };
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .await
        .unwrap_or(false);
        ok && known
    }
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_record_argon2id() {
        let h = PasswordHasher::new(64, 1).expect("params");
        let pw = "correct horse battery staple ✓".to_owned();
        let hash = h.hash(pw.clone()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(h.verify(pw.clone(), Some(hash.clone())).await);
        assert!(!h.verify("wrong password".into(), Some(hash.clone())).await);
        assert!(!h.verify(pw, None).await, "dummy never matches");
    }

    #[tokio::test]
    async fn long_passwords_are_not_truncated() {
        let h = PasswordHasher::new(64, 1).expect("params");
        let a = "a".repeat(127) + "b";
        let b = "a".repeat(127) + "c";
        let hash = h.hash(a.clone()).await.expect("hash");
        assert!(h.verify(a, Some(hash.clone())).await);
        assert!(!h.verify(b, Some(hash)).await, "last character matters");
    }
}
