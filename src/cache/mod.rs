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
//! A change that says what it did to a card (task created, changed, moved
//! or deleted, a comment added, edited or removed:
//! [`crate::db::change::CardChange`]) does not throw this
//! node's views of the board away: its after-commit work bumps the board's
//! counter from `n` to `n + 1` and patches the view stored under `n` into
//! the view under `n + 1` ([`parts`]): a view under `n` holds every write
//! acknowledged before `n`, the bump to `n + 1` is this change's, so the
//! patched view holds every write acknowledged before `n + 1`. A view under
//! any other `n` (another bump came between, in whatever order after-commit
//! work runs), one the patch cannot keep exact, or a change that says
//! nothing of its cards drops the views of the board. With Redis the node
//! then publishes the board's new counter and card changes
//! ([`BoardCache::share`]); every other node applies the same patch to the
//! view it keeps (only from `n` to `n + 1`, as above). A node that misses
//! the message only reads the view again: the counter, not the message,
//! decides what may be served.
//!
//! Entries are keyed by board, hold a view per `per_list` asked for, kept
//! in parts (when read here) with the JSON and its gzip form made once,
//! when first asked for. A version also names the view for
//! HTTP: [`Version::etag`] is `"<epoch>-<org n>.<board n>-<board>-<per_list>"`, where the
//! epoch is random per process (in process) or per Redis data set (a key
//! set once; a flushed Redis gets a new one), so a counter that starts over
//! never repeats an ETag of other content.
//!
//! If Redis fails, readers bypass the cache (served from the database) and
//! a failed invalidation is logged; entries in Redis expire after
//! [`REDIS_TTL_SECS`], which bounds any staleness such a failure could cause.

pub mod parts;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use moka::ops::compute::Op;
use uuid::Uuid;

use crate::cluster::{Heard, Redis};
use crate::db::change::{CardChange, Touches};
pub use parts::{Cursor, Parts};

/// Counter: cached board views kept through a task change by patching
/// (described in [`crate::metrics`]).
pub const BOARD_CACHE_PATCHES: &str = "orgboard_board_cache_patches_total";

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
pub type Touched = crate::db::change::Touched;

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

    /// Whether this version comes after `other` (same epoch, no counter
    /// behind, not the same).
    fn newer_than(&self, other: &Version) -> bool {
        self.epoch == other.epoch
            && self.org >= other.org
            && self.board >= other.board
            && self != other
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

/// A board view as cached: in parts when this node read it (so that a
/// change can patch it) or as JSON only (from Redis), with its JSON and
/// gzip form each made once, when first asked for (an uncached read for a
/// client that does not accept gzip, e.g. `Cache-Control: no-cache` from a
/// script, never pays for compression). Once its JSON is made, the parts
/// are slices of it: a view holds its JSON once.
#[derive(Clone)]
pub struct CachedView(Arc<ViewInner>);

struct ViewInner {
    /// The parts (re-sliced into `body` once it is made).
    parts: Option<Mutex<Parts>>,
    body: OnceLock<Bytes>,
    gzip: OnceLock<Bytes>,
    /// Read as it is (from the database or Redis), not patched: a patched
    /// view may have used up some of its lists' reserves, which a read at
    /// the same version fills again.
    read: bool,
}

impl CachedView {
    /// A view known only as its JSON `body` (cannot be patched).
    pub fn new(body: Bytes) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(body);
        Self(Arc::new(ViewInner {
            parts: None,
            body: cell,
            gzip: OnceLock::new(),
            read: true,
        }))
    }

    /// A view in `parts` whose JSON is `body` (the parts being slices of
    /// it, as [`crate::boards::view::board_view_parts`] reads them).
    pub fn from_parts(parts: Parts, body: Bytes) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(body);
        Self(Arc::new(ViewInner {
            parts: Some(Mutex::new(parts)),
            body: cell,
            gzip: OnceLock::new(),
            read: true,
        }))
    }

    /// A patched view (its JSON made when first asked for).
    fn unrendered(parts: Parts) -> Self {
        Self(Arc::new(ViewInner {
            parts: Some(Mutex::new(parts)),
            body: OnceLock::new(),
            gzip: OnceLock::new(),
            read: false,
        }))
    }

    /// The JSON (made with `cursor` the first time, for a patched view).
    pub fn body(&self, cursor: Cursor<'_>) -> Bytes {
        if let Some(body) = self.0.body.get() {
            return body.clone();
        }
        match &self.0.parts {
            Some(parts) => {
                let mut parts = parts.lock().unwrap_or_else(|e| e.into_inner());
                self.0
                    .body
                    .get_or_init(|| parts.render_shared(cursor))
                    .clone()
            }
            None => Bytes::new(),
        }
    }

    /// The JSON gzipped (fast level), compressed on first use and kept.
    pub fn gzip(&self, cursor: Cursor<'_>) -> Bytes {
        self.0
            .gzip
            .get_or_init(|| {
                use std::io::Write as _;
                let body = self.body(cursor);
                let mut enc = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 6),
                    flate2::Compression::new(4),
                );
                let gzip = enc
                    .write_all(&body)
                    .and_then(|()| enc.finish())
                    .unwrap_or_default();
                Bytes::from(gzip)
            })
            .clone()
    }

    /// This view with `cards` applied, if it is in parts and every patch
    /// keeps it exact.
    fn patched(&self, cards: &[CardChange]) -> Option<CachedView> {
        let mut parts = self
            .0
            .parts
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for c in cards {
            if !parts.apply(c) {
                return None;
            }
        }
        Some(Self::unrendered(parts))
    }

    /// About how many bytes it holds (its JSON, and a tenth for the gzip
    /// form made later).
    fn weight(&self) -> usize {
        let json = match (self.0.body.get(), &self.0.parts) {
            (Some(b), _) => b.len(),
            (None, Some(p)) => p.lock().map_or(0, |p| p.size()),
            (None, None) => 0,
        };
        json + json / 8
    }
}

/// The views of one board at one version, one per `per_list` asked for.
#[derive(Clone)]
struct Entry {
    version: Version,
    /// Shared: a hit clones the entry (one reference count, no copy).
    views: Arc<Vec<(u32, CachedView)>>,
}

impl Entry {
    fn with(&self, version: Version, per_list: u32, view: CachedView) -> Entry {
        let mut views = if self.version == version {
            self.views.as_ref().clone()
        } else {
            Vec::new()
        };
        views.retain(|(n, _)| *n != per_list);
        views.push((per_list, view));
        Entry {
            version,
            views: Arc::new(views),
        }
    }
}

/// Cached board views, in process and (when configured) in Redis.
pub struct BoardCache {
    local: moka::sync::Cache<(Uuid, Uuid), Entry>,
    versions: Mutex<HashMap<Touched, u64>>,
    /// The epoch of in-process versions.
    epoch: u64,
    /// This node, in the patches it publishes.
    node: u64,
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
                    let bytes: usize = e.views.iter().map(|(_, v)| v.weight()).sum();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .time_to_live(Duration::from_secs(if redis.is_some() {
                    REDIS_TTL_SECS
                } else {
                    600
                }))
                .build(),
            versions: Mutex::new(HashMap::new()),
            epoch: rand::random(),
            node: rand::random(),
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
        let key = (org, board);
        let here = self
            .local
            .get(&key)
            .filter(|e| e.version == version)
            .and_then(|e| {
                e.views
                    .iter()
                    .find(|(n, _)| *n == per_list)
                    .map(|(_, v)| v.clone())
            });
        let found = match here {
            Some(view) => Some(view),
            None => match &self.redis {
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
                        self.store(key, version, per_list, view.clone());
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
        if let Some(redis) = &self.redis
            && view.0.body.get().is_some()
        {
            let mut c = redis.conn.clone();
            let set: Result<(), _> = redis::cmd("SET")
                .arg(Self::entry_key(redis, org, board, per_list, version))
                .arg(view.0.body.get().map_or(&[][..], |b| b.as_ref()))
                .arg("EX")
                .arg(REDIS_TTL_SECS)
                .query_async(&mut c)
                .await;
            if let Err(e) = set {
                tracing::warn!(error = %e, "board cache: Redis SET failed");
            }
        }
        self.store((org, board), version, per_list, view);
    }

    /// Keeps `view` here, beside the board's views of the same version.
    fn store(&self, key: (Uuid, Uuid), version: Version, per_list: u32, view: CachedView) {
        self.local.entry(key).and_compute_with(|found| match found {
            // A newer entry (patched, or stored by a later read) stays.
            Some(e) if e.value().version.newer_than(&version) => Op::Nop,
            // So does a view read at the same version: replacing it (a
            // reload sent with `no-cache`, two misses at once) changes
            // nothing but memory — the replaced answers, a megabyte each
            // on a big board, are freed only when the map reclaims them,
            // which took the peak RSS of the uncached big-board runs from
            // ~108 to ~147 MiB once reads got faster (BENCHMARKS.md). A
            // patched one is replaced: the read fills its reserves again.
            Some(e)
                if e.value().version == version
                    && e.value()
                        .views
                        .iter()
                        .any(|(n, v)| *n == per_list && v.0.read) =>
            {
                Op::Nop
            }
            Some(e) => Op::Put(e.into_value().with(version, per_list, view)),
            None => Op::Put(Entry {
                version,
                views: Arc::new(vec![(per_list, view)]),
            }),
        });
    }

    /// After the board's counter went to `now`: the views stored under
    /// `now - 1` patched with `cards` become the views under `now`; views
    /// read at `now` or later stay; any other views of the board are
    /// dropped.
    fn patch(&self, org: Uuid, board: Uuid, now: u64, cards: Option<&[CardChange]>) {
        self.local.entry((org, board)).and_compute_with(|found| {
            let Some(e) = found.map(|e| e.into_value()) else {
                return Op::Nop;
            };
            if e.version.board >= now {
                // Read after the counter reached `now`, so after this
                // change committed: it holds it already.
                return Op::Nop;
            }
            let Some(cards) = cards.filter(|_| e.version.board.checked_add(1) == Some(now)) else {
                return Op::Remove;
            };
            let views: Vec<_> = e
                .views
                .iter()
                .filter_map(|(n, v)| v.patched(cards).map(|v| (*n, v)))
                .collect();
            if views.is_empty() {
                return Op::Remove;
            }
            metrics::counter!(BOARD_CACHE_PATCHES).increment(1);
            Op::Put(Entry {
                version: Version {
                    board: now,
                    ..e.version
                },
                views: Arc::new(views),
            })
        });
    }

    /// Bumps the version of everything `touches` names (after a commit,
    /// before the acknowledgement): each board named, and each organization
    /// whose change named no board; this node's views of a board are
    /// patched with its card changes or dropped (see the module's doc).
    pub async fn invalidate(&self, touches: &Touches) {
        // And every organization's changes counter (ANY_BOARD), once each.
        let mut orgs: Vec<Touched> = touches
            .touched()
            .iter()
            .map(|t| (t.0, Some(ANY_BOARD)))
            .collect();
        orgs.sort_unstable();
        orgs.dedup();
        let touched: Vec<Touched> = touches.touched().iter().copied().chain(orgs).collect();
        // Each counter's new value, when known.
        let now: Vec<Option<u64>> = match &self.redis {
            None => {
                let mut map = self.versions.lock().unwrap_or_else(|e| e.into_inner());
                touched
                    .iter()
                    .map(|t| {
                        let n = map.entry(*t).or_insert(0);
                        *n += 1;
                        Some(*n)
                    })
                    .collect()
            }
            Some(redis) => {
                let mut pipe = redis::pipe();
                // Counters never expire (one small key per organization and
                // per board ever written): a counter that started over would
                // repeat ETags of other content.
                for t in &touched {
                    pipe.cmd("INCR").arg(Self::version_key(redis, *t));
                }
                let mut c = redis.conn.clone();
                let mut result: redis::RedisResult<Vec<u64>> = pipe.query_async(&mut c).await;
                if result.is_err() {
                    // A retry may count some counters twice: only their
                    // views are then read again.
                    result = pipe.query_async(&mut c).await;
                }
                match result {
                    Ok(values) if values.len() == touched.len() => {
                        values.into_iter().map(Some).collect()
                    }
                    Ok(_) => vec![None; touched.len()],
                    Err(e) => {
                        tracing::error!(error = %e, "board cache: cannot invalidate in Redis");
                        vec![None; touched.len()]
                    }
                }
            }
        };
        let mut shared = Vec::new();
        for (t, n) in touched.iter().zip(now) {
            if let (org, Some(board)) = *t
                && board != ANY_BOARD
            {
                match n {
                    Some(n) => {
                        let cards = touches.cards(org, board);
                        self.patch(org, board, n, cards);
                        // Only with Redis is there anyone to tell.
                        if let Some(cards) = cards.filter(|c| self.redis.is_some() && !c.is_empty())
                        {
                            shared.push(BoardPatch {
                                org,
                                board,
                                now: n,
                                cards: cards.into(),
                            });
                        }
                    }
                    None => self.local.invalidate(&(org, board)),
                }
            }
        }
        self.share(shared);
    }

    /// Tells the other nodes (through Redis) how this node patched its
    /// views, so that they patch theirs instead of reading them again. In
    /// the background: whether they hear it or not, they never serve a view
    /// older than the counter (a patch they miss only costs them a read).
    fn share(&self, boards: Vec<BoardPatch<'_>>) {
        let Some(redis) = &self.redis else {
            return;
        };
        if boards.is_empty() {
            return;
        }
        let message = match serde_json::to_vec(&PatchMessage {
            node: self.node,
            boards,
        }) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "board cache: cannot encode a patch");
                return;
            }
        };
        let mut c = redis.conn.clone();
        let channel = Self::patch_channel(redis);
        tokio::spawn(async move {
            let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                .arg(channel)
                .arg(message)
                .query_async(&mut c)
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "board cache: cannot publish a patch");
            }
        });
    }

    fn patch_channel(redis: &Redis) -> String {
        redis.key("bv:patches")
    }

    /// Patches this node's views with what other nodes publish (see
    /// [`BoardCache::share`]), until `shutdown`; nothing without Redis.
    pub fn spawn_listener(self: &Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let Some(redis) = &self.redis else {
            return;
        };
        let cache = Arc::clone(self);
        redis.spawn_listener(Self::patch_channel(redis), shutdown, move |heard| {
            // After a lost subscription nothing is to be done: a view whose
            // patch was missed is dropped by the next one, or never matches
            // the counter again.
            if let Heard::Message(bytes) = heard {
                cache.heard(&bytes);
            }
        });
    }

    /// Applies another node's patches to this node's views (the same
    /// [`BoardCache::patch`] as for this node's own changes: a view is
    /// patched only from the version just before).
    fn heard(&self, message: &[u8]) {
        match serde_json::from_slice::<PatchMessage>(message) {
            Ok(m) if m.node != self.node => {
                for b in m.boards {
                    self.patch(b.org, b.board, b.now, Some(&b.cards));
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "board cache: undecodable patch"),
        }
    }
}

/// What a node publishes after patching its views (see [`BoardCache::share`]).
#[derive(serde::Serialize, serde::Deserialize)]
struct PatchMessage<'a> {
    /// The publishing node (it ignores its own messages).
    node: u64,
    #[serde(borrow)]
    boards: Vec<BoardPatch<'a>>,
}

/// One board's counter after a change, and the change's cards.
#[derive(serde::Serialize, serde::Deserialize)]
struct BoardPatch<'a> {
    org: Uuid,
    board: Uuid,
    now: u64,
    #[serde(borrow)]
    cards: std::borrow::Cow<'a, [CardChange]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a node publishes is what the others apply: every card change
    /// (a summary with characters JSON escapes, a deletion) comes back
    /// equal; a node ignores its own message, and a summary that is not a
    /// JSON object is refused whole.
    #[test]
    fn a_published_patch_reads_back_as_it_was_sent() {
        let (org, board, list) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let cards = vec![
            CardChange::Put {
                id: Uuid::now_v7(),
                list_id: list,
                was: None,
                position: "a0".into(),
                version: 7,
                json: Bytes::from_static(
                    "{\"title\":\"\\\"quoted\\\" \\n é \\u2028\",\"position\":\"a0\"}".as_bytes(),
                ),
            },
            CardChange::Gone {
                id: Uuid::now_v7(),
                was: list,
            },
        ];
        let message = |node: u64| {
            serde_json::to_vec(&PatchMessage {
                node,
                boards: vec![BoardPatch {
                    org,
                    board,
                    now: 9,
                    cards: cards.as_slice().into(),
                }],
            })
            .expect("encodes")
        };
        let sent = message(42);
        let got: PatchMessage = serde_json::from_slice(&sent).expect("decodes");
        assert_eq!(got.node, 42);
        assert_eq!((got.boards[0].org, got.boards[0].board), (org, board));
        assert_eq!(got.boards[0].now, 9);
        assert_eq!(got.boards[0].cards.as_ref(), cards.as_slice());

        let text = String::from_utf8(sent.clone()).expect("JSON is UTF-8");
        let not_object = text.replacen("\"json\":\"{", "\"json\":\"[{", 1);
        assert_ne!(not_object, text);
        assert!(serde_json::from_str::<PatchMessage>(&not_object).is_err());
        let broken = text.replacen("\"json\":\"{", "\"json\":\"{{", 1);
        assert!(serde_json::from_str::<PatchMessage>(&broken).is_err());

        // Its own message changes nothing on the node that sent it; another
        // node's is applied (here: drops a view it cannot patch exactly).
        let cache = BoardCache::new(None);
        let v = Version {
            epoch: cache.epoch,
            org: 0,
            board: 8,
        };
        cache.store((org, board), v, 200, view("{\"read\":1}"));
        let own = message(cache.node);
        cache.heard(&own);
        assert!(cache.local.get(&(org, board)).is_some());
        cache.heard(&sent);
        assert!(cache.local.get(&(org, board)).is_none());
    }

    fn view(json: &'static str) -> CachedView {
        CachedView::new(Bytes::from_static(json.as_bytes()))
    }

    async fn body(cache: &BoardCache, key: (Uuid, Uuid), per_list: u32, v: Version) -> Bytes {
        let no_cursor = |_: Uuid, _: Uuid, _: &str| String::new();
        cache
            .get(key.0, key.1, per_list, v)
            .await
            .expect("a view kept")
            .body(&no_cursor)
    }

    /// A view read again at the version a kept view was read at (a reload
    /// with `no-cache`, two misses at once) leaves the kept one in place:
    /// the same answer, and no replaced megabytes waiting to be reclaimed
    /// (that a read replaces a patched view, refilling its reserves, is
    /// `board_view::patched_views_equal_views_read_again`'s). A
    /// view with another `per_list` is kept beside it; a newer version
    /// replaces both, and an older one never replaces a newer.
    #[tokio::test]
    async fn a_view_read_again_at_the_same_version_leaves_the_kept_one() {
        let cache = BoardCache::new(None);
        let (org, board) = (Uuid::now_v7(), Uuid::now_v7());
        let key = (org, board);
        let v1 = cache.version(org, board).await.expect("in process");
        cache.put(org, board, 200, v1, view("{\"first\":1}")).await;
        cache.put(org, board, 200, v1, view("{\"again\":1}")).await;
        assert_eq!(body(&cache, key, 200, v1).await, "{\"first\":1}");
        cache.put(org, board, 3, v1, view("{\"three\":1}")).await;
        assert_eq!(body(&cache, key, 200, v1).await, "{\"first\":1}");
        assert_eq!(body(&cache, key, 3, v1).await, "{\"three\":1}");

        let mut touches = Touches::default();
        touches.note((org, Some(board)), None);
        cache.invalidate(&touches).await;
        let v2 = cache.version(org, board).await.expect("in process");
        assert!(v2.newer_than(&v1));
        cache.put(org, board, 200, v2, view("{\"second\":1}")).await;
        cache.put(org, board, 200, v1, view("{\"late\":1}")).await;
        assert_eq!(body(&cache, key, 200, v2).await, "{\"second\":1}");
        assert!(cache.get(org, board, 3, v2).await.is_none());
    }
}
