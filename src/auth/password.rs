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
//!
//! Each running hash also reuses a work area kept from an earlier one
//! ([`WorkAreas`]) instead of allocating its 19 MiB anew: allocated and
//! freed per hash, those buffers fragmented the allocator's heap and were
//! never given back (24 logins one after the other left 238 MB resident).

use crate::domain::DomainError;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
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

impl From<HashError> for DomainError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => {
                metrics::counter!("orgboard_password_hash_rejected_total").increment(1);
                DomainError::unavailable(
                    "Too many sign-ins are being checked right now; retry in a moment.",
                )
                .with_code("server_busy")
            }
            HashError::Failed(e) => DomainError::internal(e),
        }
    }
}

impl From<HashError> for crate::error::ApiError {
    fn from(err: HashError) -> Self {
        DomainError::from(err).into()
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

/// argon2 memory (one [`Block`] per KiB of cost) kept between hashes: at
/// most one per hashing slot, so the process holds `concurrency × cost`
/// for hashing, and nothing grows.
struct WorkAreas {
    free: Mutex<Vec<Vec<Block>>>,
    /// The configured cost in blocks: only areas of this size are kept.
    blocks: usize,
    /// How many are kept (one per slot).
    keep: usize,
}

impl WorkAreas {
    /// A work area of `blocks` blocks: a kept one if it fits, else a new one.
    fn take(&self, blocks: usize) -> Vec<Block> {
        let kept = self.free.lock().ok().and_then(|mut free| {
            let at = free.iter().position(|m| m.len() == blocks)?;
            Some(free.swap_remove(at))
        });
        kept.unwrap_or_else(|| vec![Block::default(); blocks])
    }

    /// Keeps `area` for the next hash if it has the configured cost and
    /// fewer than one per slot are kept.
    fn give(&self, area: Vec<Block>) {
        if area.len() == self.blocks
            && let Ok(mut free) = self.free.lock()
            && free.len() < self.keep
        {
            free.push(area);
        }
    }
}

/// Hashes and verifies passwords with fixed argon2id parameters, at most
/// `concurrency` at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    areas: Arc<WorkAreas>,
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
        let blocks = params.block_count();
        Ok(Self {
            params,
            areas: Arc::new(WorkAreas {
                free: Mutex::new(Vec::new()),
                blocks,
                keep: concurrency,
            }),
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
                let mut area = vec![Block::default(); self.params.block_count()];
                hash_with(
                    &self.params,
                    "orgboard dummy password for timing",
                    &mut area,
                )
                .unwrap_or_default()
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
        let this = self.clone();
        let hashed = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut area = this.areas.take(this.params.block_count());
            let hashed = hash_with(&this.params, &password, &mut area);
            this.areas.give(area);
            hashed
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
            verify_with(&password, &hash, &this.areas)
        })
        .await
        .unwrap_or(false);
        Ok(ok && known)
    }
}

/// The argon2id PHC string of `password` with a fresh salt, computed in
/// `area` (`params.block_count()` blocks).
fn hash_with(params: &Params, password: &str, area: &mut [Block]) -> anyhow::Result<String> {
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("argon2 hashing failed: {e}");
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| fail(&e))?;
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(len, |out| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, &mut *area)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc` (any argon2 variant,
/// version and cost it names), computed in a kept work area when the cost
/// is the usual one. The comparison takes constant time.
fn verify_with(password: &str, phc: &str, areas: &WorkAreas) -> bool {
    let check = || -> Option<bool> {
        let parsed = PasswordHash::new(phc).ok()?;
        let algorithm = Algorithm::try_from(parsed.algorithm).ok()?;
        let version = parsed
            .version
            .map(Version::try_from)
            .transpose()
            .ok()?
            .unwrap_or_default();
        let params = Params::try_from(&parsed).ok()?;
        let expected = parsed.hash?;
        let mut salt_buf = [0u8; 64];
        let salt = parsed.salt?.decode_b64(&mut salt_buf).ok()?;
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut area = areas.take(params.block_count());
        let computed = Output::init_with(expected.len(), |out| {
            argon
                .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut area[..])
                .map_err(|_| argon2::password_hash::Error::Crypto)
        });
        areas.give(area);
        Some(computed.ok()? == expected)
    };
    check().unwrap_or(false)
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

    /// Hashes made by the argon2 crate's own API verify here, and ours
    /// there: the PHC strings are the same format.
    #[tokio::test]
    async fn hashes_are_interchangeable_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = PasswordHasher::new(64, 1, 0).expect("params");
        let ours = h.hash("s3cret pass".into()).await.expect("hash");
        let parsed = PasswordHash::new(&ours).expect("PHC");
        assert!(
            Argon2::default()
                .verify_password(b"s3cret pass", &parsed)
                .is_ok()
        );
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(128, 2, 1, None).expect("params"),
        )
        .hash_password(b"other pass", &salt)
        .expect("hash")
        .to_string();
        assert!(
            h.verify("other pass".into(), Some(theirs.clone()))
                .await
                .expect("slot")
        );
        assert!(
            !h.verify("other pasS".into(), Some(theirs))
                .await
                .expect("slot")
        );
        assert!(
            !h.verify("x".into(), Some("not a hash".into()))
                .await
                .expect("slot")
        );
        // Work areas are kept: at most one per slot.
        let kept = h.areas.free.lock().expect("lock").len();
        assert!(kept >= 1 && kept <= h.concurrency(), "{kept}");
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
