//! The board-view cache: serialized board views keyed by (organization,
//! board) and by the board's *version*: two counters, the organization's
//! and the board's, that every write transaction bumps after it commits and
//! before it is acknowledged ([`crate::events::Live`] is the after-commit
//! hook). A change whose event names its board (a task, a list, a comment,
//! the board itself) bumps that board's counter only, so writes to one
//! board leave the other boards' views cached; a change without a board (a
//! label or member removed, the organization renamed: they may touch every
//! board) bumps the organization's.
//!
//! A reader reads the version *before* it reads the database, so an entry
//! stored under version `v` holds at least every write acknowledged before
//! `v` was read; once a write is acknowledged every reader of its board sees
//! a newer version and can never be served the older entry. In process the versions
//! live in a map; with Redis they are Redis counters (`INCR`), so a write
//! through node A invalidates node B's entries as well, and entries are
//! shared through Redis too (with a short expiry). Each node also keeps
//! recent entries in memory (moka, bounded by bytes): an entry found under
//! the current version is fresh wherever it came from.
//!
//! Entries are keyed by board and `per_list` and hold the JSON and its gzip
//! form, compressed once, when first asked for. A version also names the view for
//! HTTP: [`Version::etag`] is `"<epoch>-<org n>.<board n>-<board>-<per_list>"`, where the
//! epoch is random per process (in process) or per Redis data set (a key
//! set once; a flushed Redis gets a new one), so a counter that starts over
//! never repeats an ETag of other content.
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

/// A board's version: the counters of its organization and of itself,
/// bumped by acknowledged writes, and the epoch the counters live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    epoch: u64,
    org: u64,
    board: u64,
}

/// What a committed change touched, for invalidation: its organization and,
/// when the change concerns one board only, that board.
pub type Touched = (Uuid, Option<Uuid>);

/// The pseudo-board whose counter every change of an organization bumps
/// (whatever board it names): the version of the organization's
/// collections (`GET …/tasks`), see [`BoardCache::org_version`].
const ANY_BOARD: Uuid = Uuid::nil();

impl Version {
    /// The `ETag` of a collection answer at this organization-wide version
    /// ([`BoardCache::org_version`]): `what` names the collection, `query`
    /// is the request's query string (hashed: every filter, sort and cursor
    /// gives its own tag).
    pub fn collection_etag(&self, what: &str, query: &str) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(query.as_bytes());
        let mut short = [0u8; 8];
        short.copy_from_slice(&digest[..8]);
        format!(
            "\"{:x}-{}-{what}-{:x}\"",
            self.epoch,
            self.board,
            u64::from_be_bytes(short)
        )
    }

    /// The `ETag` of the view of `board` with `per_list` cards per list at
    /// this version.
    pub fn etag(&self, board: Uuid, per_list: u32) -> String {
        format!(
            "\"{:x}-{}.{}-{}-{per_list}\"",
            self.epoch,
            self.org,
            self.board,
            board.simple()
        )
    }
}

/// A serialized board view and its gzip form, made once, the first time a
/// client that accepts gzip asks for it (an uncached read for a client that
/// does not, e.g. `Cache-Control: no-cache` from a script, never pays for
/// compression).
#[derive(Clone)]
pub struct CachedView {
    /// The JSON.
    pub body: Bytes,
    gzip: std::sync::Arc<std::sync::OnceLock<Bytes>>,
}

impl CachedView {
    /// A view of `body` (not compressed yet).
    pub fn new(body: Bytes) -> Self {
        Self {
            body,
            gzip: std::sync::Arc::default(),
        }
    }

    /// The JSON gzipped (fast level), compressed on first use and kept.
    pub fn gzip(&self) -> Bytes {
        self.gzip
            .get_or_init(|| {
                use std::io::Write as _;
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(self.body.len() / 6),
                    flate2::Compression::new(4),
                );
                let gzip = enc
                    .write_all(&self.body)
                    .and_then(|()| enc.finish())
                    .unwrap_or_default();
                Bytes::from(gzip)
            })
            .clone()
    }
}

#[derive(Clone)]
struct Entry {
    version: Version,
    view: CachedView,
}

/// Cached board views, in process and (when configured) in Redis.
pub struct BoardCache {
    local: moka::sync::Cache<(Uuid, Uuid, u32), Entry>,
    versions: Mutex<HashMap<Touched, u64>>,
    /// The epoch of in-process versions.
    epoch: u64,
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
                .weigher(|_, e: &Entry| {
                    // The gzip form (made later) is about a tenth of the JSON.
                    u32::try_from(e.view.body.len() + e.view.body.len() / 8).unwrap_or(u32::MAX)
                })
                .time_to_live(Duration::from_secs(if redis.is_some() {
                    REDIS_TTL_SECS
                } else {
                    600
                }))
                .build(),
            versions: Mutex::new(HashMap::new()),
            epoch: rand::random(),
            redis,
        }
    }

    fn epoch_key(redis: &Redis) -> String {
        redis.key("bv:epoch")
    }

    fn version_key(redis: &Redis, (org, board): Touched) -> String {
        match board {
            None => redis.key(&format!("bv:v:{}", org.simple())),
            Some(b) => redis.key(&format!("bv:v:{}:{}", org.simple(), b.simple())),
        }
    }

    fn entry_key(redis: &Redis, org: Uuid, board: Uuid, per_list: u32, v: Version) -> String {
        redis.key(&format!(
            "bv:{}:{}:{per_list}:{:x}:{}.{}",
            org.simple(),
            board.simple(),
            v.epoch,
            v.org,
            v.board
        ))
    }

    /// The epoch of the Redis data set: read with the version; set once
    /// (`SET NX`) when missing, i.e. first use or a flushed Redis.
    async fn redis_epoch(redis: &Redis, found: Option<u64>) -> redis::RedisResult<u64> {
        if let Some(e) = found {
            return Ok(e);
        }
        let mut c = redis.conn.clone();
        let _: Option<String> = redis::cmd("SET")
            .arg(Self::epoch_key(redis))
            .arg(rand::random::<u32>())
            .arg("NX")
            .query_async(&mut c)
            .await?;
        redis::cmd("GET")
            .arg(Self::epoch_key(redis))
            .query_async(&mut c)
            .await
    }

    /// The current version of `board`; `None` (do not cache) when Redis
    /// does not answer.
    pub async fn version(&self, org: Uuid, board: Uuid) -> Option<Version> {
        match &self.redis {
            None => {
                let map = self.versions.lock().unwrap_or_else(|e| e.into_inner());
                Some(Version {
                    epoch: self.epoch,
                    org: *map.get(&(org, None)).unwrap_or(&0),
                    board: *map.get(&(org, Some(board))).unwrap_or(&0),
                })
            }
            Some(redis) => {
                let mut c = redis.conn.clone();
                let got: redis::RedisResult<(Option<u64>, Option<u64>, Option<u64>)> =
                    redis::cmd("MGET")
                        .arg(Self::version_key(redis, (org, None)))
                        .arg(Self::version_key(redis, (org, Some(board))))
                        .arg(Self::epoch_key(redis))
                        .query_async(&mut c)
                        .await;
                let got = match got {
                    Ok((n_org, n_board, epoch)) => {
                        Self::redis_epoch(redis, epoch).await.map(|epoch| Version {
                            epoch,
                            org: n_org.unwrap_or(0),
                            board: n_board.unwrap_or(0),
                        })
                    }
                    Err(e) => Err(e),
                };
                got.inspect_err(|e| tracing::warn!(error = %e, "board cache: Redis read failed"))
                    .ok()
            }
        }
    }

    /// The organization-wide version: a counter every acknowledged change
    /// of the organization bumps, whichever board it names (read before the
    /// database, as [`BoardCache::version`]). `None` when Redis does not
    /// answer.
    pub async fn org_version(&self, org: Uuid) -> Option<Version> {
        self.version(org, ANY_BOARD).await
    }

    /// The view of `board` with `per_list` cards per list stored under
    /// `version`, counted as a hit or miss.
    pub async fn get(
        &self,
        org: Uuid,
        board: Uuid,
        per_list: u32,
        version: Version,
    ) -> Option<CachedView> {
        let key = (org, board, per_list);
        let found = match self.local.get(&key) {
            Some(e) if e.version == version => Some(e.view),
            _ => match &self.redis {
                None => None,
                Some(redis) => {
                    let mut c = redis.conn.clone();
                    let got: Result<Option<Vec<u8>>, _> = redis::cmd("GET")
                        .arg(Self::entry_key(redis, org, board, per_list, version))
                        .query_async(&mut c)
                        .await;
                    got.ok().flatten().map(|body| {
                        // Redis holds the JSON; this node compresses its copy once
                        // (when a client first asks for gzip).
                        let view = CachedView::new(Bytes::from(body));
                        self.local.insert(
                            key,
                            Entry {
                                version,
                                view: view.clone(),
                            },
                        );
                        view
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

    /// Stores the view of `board` (with `per_list`) read after `version` was.
    pub async fn put(
        &self,
        org: Uuid,
        board: Uuid,
        per_list: u32,
        version: Version,
        view: CachedView,
    ) {
        if let Some(redis) = &self.redis {
            let mut c = redis.conn.clone();
            let set: Result<(), _> = redis::cmd("SET")
                .arg(Self::entry_key(redis, org, board, per_list, version))
                .arg(view.body.as_ref())
                .arg("EX")
                .arg(REDIS_TTL_SECS)
                .query_async(&mut c)
                .await;
            if let Err(e) = set {
                tracing::warn!(error = %e, "board cache: Redis SET failed");
            }
        }
        self.local
            .insert((org, board, per_list), Entry { version, view });
    }

    /// Bumps the version of everything in `touched` (after a commit, before
    /// the acknowledgement): each board named, and each organization whose
    /// change named no board.
    pub async fn invalidate(&self, touched: &[Touched]) {
        // And every organization's changes counter (ANY_BOARD), once each.
        let mut orgs: Vec<Touched> = touched.iter().map(|t| (t.0, Some(ANY_BOARD))).collect();
        orgs.sort_unstable();
        orgs.dedup();
        let touched: Vec<Touched> = touched.iter().copied().chain(orgs).collect();
        let touched = touched.as_slice();
        match &self.redis {
            None => {
                let mut map = self.versions.lock().unwrap_or_else(|e| e.into_inner());
                for t in touched {
                    *map.entry(*t).or_insert(0) += 1;
                }
            }
            Some(redis) => {
                let mut pipe = redis::pipe();
                // Counters never expire (one small key per organization and
                // per board ever written): a counter that started over would
                // repeat ETags of other content.
                for t in touched {
                    pipe.cmd("INCR").arg(Self::version_key(redis, *t)).ignore();
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
