//! The board-view cache: serialized board views keyed by (organization,
//! board) and by the organization's *version*, a counter that every write
//! transaction of the organization bumps after it commits and before it is
//! acknowledged ([`crate::events::Live`] is the after-commit hook).
//!
//! A reader reads the version *before* it reads the database, so an entry
//! stored under version `v` holds at least every write acknowledged before
//! `v` was read; once a write is acknowledged every reader sees a newer
//! version and can never be served the older entry. In process the versions
//! live in a map; with Redis they are Redis counters (`INCR`), so a write
//! through node A invalidates node B's entries as well, and entries are
//! shared through Redis too (with a short expiry). Each node also keeps
//! recent entries in memory (moka, bounded by bytes): an entry found under
//! the current version is fresh wherever it came from.
//!
//! If Redis fails, readers bypass the cache (served from the database) and
//! a failed invalidation is logged; entries in Redis expire after
//! [`REDIS_TTL_SECS`], which bounds any staleness such a failure could cause.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use uuid::Uuid;

use crate::cluster::Redis;

/// Expiry of entries kept in Redis.
pub const REDIS_TTL_SECS: u64 = 30;
/// Memory budget of the in-process layer.
const LOCAL_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Clone)]
struct Entry {
    version: u64,
    body: Bytes,
}

/// Cached board views, in process and (when configured) in Redis.
pub struct BoardCache {
    local: moka::sync::Cache<(Uuid, Uuid), Entry>,
    versions: Mutex<HashMap<Uuid, u64>>,
    redis: Option<Redis>,
}

impl BoardCache {
    /// An empty cache; shared through `redis` when given.
    pub fn new(redis: Option<Redis>) -> Self {
        Self {
            // Entries of an old version are simply never matched again (and
            // replaced by the next store). With Redis, local copies expire as
            // the shared ones do, so a lost invalidation stays bounded.
            local: moka::sync::Cache::builder()
                .max_capacity(LOCAL_BYTES)
                .weigher(|_, e: &Entry| u32::try_from(e.body.len()).unwrap_or(u32::MAX))
                .time_to_live(Duration::from_secs(if redis.is_some() {
                    REDIS_TTL_SECS
                } else {
                    600
                }))
                .build(),
            versions: Mutex::new(HashMap::new()),
            redis,
        }
    }

    fn version_key(redis: &Redis, org: Uuid) -> String {
        redis.key(&format!("bv:v:{}", org.simple()))
    }

    fn entry_key(redis: &Redis, org: Uuid, board: Uuid, version: u64) -> String {
        redis.key(&format!("bv:{}:{}:{version}", org.simple(), board.simple()))
    }

    /// The organization's current version; `None` (do not cache) when Redis
    /// does not answer.
    pub async fn version(&self, org: Uuid) -> Option<u64> {
        match &self.redis {
            None => Some(
                *self
                    .versions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&org)
                    .unwrap_or(&0),
            ),
            Some(redis) => {
                let mut c = redis.conn.clone();
                let got: Result<Option<u64>, _> = redis::cmd("GET")
                    .arg(Self::version_key(redis, org))
                    .query_async(&mut c)
                    .await;
                got.map(|v| v.unwrap_or(0))
                    .inspect_err(|e| tracing::warn!(error = %e, "board cache: Redis GET failed"))
                    .ok()
            }
        }
    }

    /// The view of `board` stored under `version`, counted as a hit or miss.
    pub async fn get(&self, org: Uuid, board: Uuid, version: u64) -> Option<Bytes> {
        let found = match self.local.get(&(org, board)) {
            Some(e) if e.version == version => Some(e.body),
            _ => match &self.redis {
                None => None,
                Some(redis) => {
                    let mut c = redis.conn.clone();
                    let got: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
                        .arg(Self::entry_key(redis, org, board, version))
                        .query_async(&mut c)
                        .await;
                    got.ok().flatten().map(|body| {
                        let body = Bytes::from(body);
                        self.local.insert(
                            (org, board),
                            Entry {
                                version,
                                body: body.clone(),
                            },
                        );
                        body
                    })
                }
            },
        };
        if found.is_some() {
            metrics::counter!("orgboard_board_cache_hits_total").increment(1);
        } else {
            metrics::counter!("orgboard_board_cache_misses_total").increment(1);
        }
        found
    }

    /// Stores the view of `board` read after `version` was.
    pub async fn put(&self, org: Uuid, board: Uuid, version: u64, body: Bytes) {
        if let Some(redis) = &self.redis {
            let mut c = redis.conn.clone();
            let set: Result<(), _> = redis::cmd("SET")
                .arg(Self::entry_key(redis, org, board, version))
                .arg(body.as_ref())
                .arg("EX")
                .arg(REDIS_TTL_SECS)
                .query_async(&mut c)
                .await;
            if let Err(e) = set {
                tracing::warn!(error = %e, "board cache: Redis SET failed");
            }
        }
        self.local.insert((org, board), Entry { version, body });
    }

    /// Bumps the version of every organization in `orgs` (after a commit,
    /// before the acknowledgement).
    pub async fn invalidate(&self, orgs: &[Uuid]) {
        match &self.redis {
            None => {
                let mut map = self.versions.lock().unwrap_or_else(|e| e.into_inner());
                for org in orgs {
                    *map.entry(*org).or_insert(0) += 1;
                }
            }
            Some(redis) => {
                let mut pipe = redis::pipe();
                for org in orgs {
                    pipe.cmd("INCR")
                        .arg(Self::version_key(redis, *org))
                        .ignore();
                }
                let mut c = redis.conn.clone();
                let mut result: Result<(), _> = pipe.query_async(&mut c).await;
                if result.is_err() {
                    result = pipe.query_async(&mut c).await;
                }
                if let Err(e) = result {
                    tracing::error!(error = %e, "board cache: cannot invalidate in Redis");
                }
            }
        }
    }
}
