//! Password hashing with argon2id, always off the async runtime and behind a
//! bound.
//!
//! Hashes are PHC strings carrying their own parameters, so changing the cost
//! settings never breaks existing accounts. Logins for unknown emails verify
//! against a dummy hash of the same cost, so both failures take as long.
//!
//! Each hash needs its memory cost (19 MiB by default) for the time it runs.
//! Without a bound, a burst of logins (unknown emails are hashed too) put
//! one blocking thread and one buffer per attempt to work at once: 300
//! concurrent attempts took the process to 5.9 GB. So at most
//! [`PasswordHasher::concurrency`] hashes run at a time, a short queue waits
//! for a slot (up to [`QUEUE_PER_SLOT`] per slot, each at most
//! [`MAX_QUEUE_WAIT`]), and every attempt beyond that is refused at once with
//! [`HashError::Busy`] (answered `503` with `Retry-After`), before any memory
//! is spent on it.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Attempts that may wait for a hashing slot, per slot.
pub const QUEUE_PER_SLOT: usize = 8;

/// Longest an attempt waits in the queue before it is refused.
pub const MAX_QUEUE_WAIT: Duration = Duration::from_secs(5);

/// Memory all concurrent hashes may use together when the concurrency is
/// chosen automatically.
pub const AUTO_MEMORY_BUDGET_KIB: u64 = 128 * 1024;

/// Why a hash or a verification did not run.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every slot is taken and the queue is full (or the wait too long).
    #[error("password hashing is at capacity")]
    Busy,
    /// The hash could not be computed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<HashError> for crate::error::ApiError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => {
                metrics::counter!("orgboard_password_hash_rejected_total").increment(1);
                crate::error::ApiError::unavailable(
                    "Too many sign-ins are being checked right now; retry in a moment.",
                )
                .with_code("server_busy")
            }
            HashError::Failed(e) => crate::error::ApiError::internal(e),
        }
    }
}

/// The number of hashes that may run at once when none is configured: one
/// per core, but no more than fit in [`AUTO_MEMORY_BUDGET_KIB`].
pub fn auto_concurrency(memory_kib: u32) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_memory = (AUTO_MEMORY_BUDGET_KIB / u64::from(memory_kib.max(1))).max(1);
    cores
        .min(usize::try_from(by_memory).unwrap_or(usize::MAX))
        .max(1)
}

/// Hashes and verifies passwords with fixed argon2id parameters, at most
/// `concurrency` at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    /// Computed off the start-up path (see [`PasswordHasher::warm_up`]).
    dummy_hash: Arc<OnceLock<String>>,
    slots: Arc<Semaphore>,
    concurrency: usize,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

/// Leaves the queue when dropped (also when the waiting future is dropped).
struct InQueue(Arc<AtomicUsize>);

impl Drop for InQueue {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// A hasher with `memory_kib` of memory and `iterations` passes, one
    /// lane, running at most `concurrency` hashes at once (`0`: see
    /// [`auto_concurrency`]).
    pub fn new(memory_kib: u32, iterations: u32, concurrency: usize) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("invalid argon2 parameters: {e}"))?;
        let concurrency = if concurrency == 0 {
            auto_concurrency(memory_kib)
        } else {
            concurrency
        };
        Ok(Self {
            params,
            dummy_hash: Arc::new(OnceLock::new()),
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting: concurrency * QUEUE_PER_SLOT,
        })
    }

    /// How many hashes may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// A hashing slot: at once if one is free, else after a bounded wait in
    /// a bounded queue, else [`HashError::Busy`].
    async fn slot(&self) -> Result<OwnedSemaphorePermit, HashError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _queued = InQueue(self.waiting.clone());
        if before >= self.max_waiting {
            return Err(HashError::Busy);
        }
        match tokio::time::timeout(MAX_QUEUE_WAIT, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(HashError::Busy),
        }
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

    /// The PHC hash of `password`, computed on the blocking pool once a
    /// slot is free.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let permit = self.slot().await?;
        let params = self.params.clone();
        let hashed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            hash_with(&params, &password)
        })
        .await
        .map_err(|e| HashError::Failed(e.into()))?;
        Ok(hashed?)
    }

    /// Whether `password` matches `hash`; with `None` it checks against the
    /// dummy hash (and answers `false`) so an unknown account costs the same.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, HashError> {
        let permit = self.slot().await?;
        let known = hash.is_some();
        let this = self.clone();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
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
        Ok(ok && known)
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
    use axum::response::IntoResponse as _;

    #[tokio::test]
    async fn hashes_verify_and_record_argon2id() {
        let h = PasswordHasher::new(64, 1, 0).expect("params");
        let pw = "correct horse battery staple ✓".to_owned();
        let hash = h.hash(pw.clone()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            h.verify(pw.clone(), Some(hash.clone()))
                .await
                .expect("slot")
        );
        assert!(
            !h.verify("wrong password".into(), Some(hash.clone()))
                .await
                .expect("slot")
        );
        assert!(
            !h.verify(pw, None).await.expect("slot"),
            "dummy never matches"
        );
    }

    #[tokio::test]
    async fn long_passwords_are_not_truncated() {
        let h = PasswordHasher::new(64, 1, 0).expect("params");
        let a = "a".repeat(127) + "b";
        let b = "a".repeat(127) + "c";
        let hash = h.hash(a.clone()).await.expect("hash");
        assert!(h.verify(a, Some(hash.clone())).await.expect("slot"));
        assert!(
            !h.verify(b, Some(hash)).await.expect("slot"),
            "last character matters"
        );
    }

    #[test]
    fn automatic_concurrency_follows_cores_and_memory() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(auto_concurrency(64), cores.min(2048));
        // 64 MiB each: two fit in the 128 MiB budget, whatever the cores.
        assert_eq!(auto_concurrency(64 * 1024), cores.min(2));
        // Larger than the budget: still one at a time, never zero.
        assert_eq!(auto_concurrency(1024 * 1024), 1);
    }

    /// With every slot taken and the queue full, an attempt is refused at
    /// once, before it hashes anything; when the slot frees, the queued
    /// attempt runs and new ones are accepted again.
    #[tokio::test]
    async fn attempts_beyond_the_slots_and_the_queue_are_refused_at_once() {
        let h = PasswordHasher::new(64, 1, 1).expect("params");
        assert_eq!(h.concurrency(), 1);
        let held = h.slots.clone().try_acquire_owned().expect("the one slot");
        // Fill the queue: QUEUE_PER_SLOT attempts wait.
        let mut queued = Vec::new();
        for i in 0..QUEUE_PER_SLOT {
            let h = h.clone();
            queued.push(tokio::spawn(async move { h.hash(format!("pw{i}")).await }));
        }
        while h.waiting.load(Ordering::Acquire) < QUEUE_PER_SLOT {
            tokio::task::yield_now().await;
        }
        let refused = h.verify("x".into(), None).await;
        assert!(matches!(refused, Err(HashError::Busy)), "{refused:?}");
        assert!(matches!(h.hash("y".into()).await, Err(HashError::Busy)));
        let problem = crate::error::ApiError::from(HashError::Busy).into_response();
        assert_eq!(problem.status(), 503);
        assert_eq!(problem.headers()["retry-after"], "1");
        drop(held);
        for q in queued {
            q.await
                .expect("task")
                .expect("queued attempt ran once a slot was free");
        }
        assert_eq!(
            h.waiting.load(Ordering::Acquire),
            0,
            "the queue is empty again"
        );
        assert!(h.verify("x".into(), None).await.is_ok());
    }
}
