//! Live events: every committed change also writes an event row in its own
//! transaction (a transactional outbox, table `events`), and a dispatcher
//! delivers the rows after commit — in process, or through Redis pub/sub so
//! that every node sees every event — to the streams of
//! `GET /orgs/{org}/events` ([`stream`]).
//!
//! Ids are per organization and gapless (1, 2, 3, …) and follow the order in
//! which events became visible:
//! * SQLite has one writer: a change numbers its own events inside its
//!   transaction, so commit order is id order. The committing request hands
//!   them to the [`Hub`] right after the commit.
//! * PostgreSQL commits concurrently, so a change inserts its rows unnumbered
//!   and the dispatcher numbers committed rows afterwards, one numbering
//!   transaction at a time across all nodes (an advisory lock), then
//!   publishes them. Event `n` visible implies `1..n` visible.
//!
//! A stream therefore detects a lost or late message by a gap in the ids and
//! fills it from the table, and resumes after a disconnect from the last id
//! it saw without loss or duplicates.

pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cache::BoardCache;
use crate::cluster::{Heard, Redis};
pub use crate::db::change::Event;
use crate::db::{AfterCommit, Db, TxConn};
pub use stream::router;

/// Largest number of events numbered (PostgreSQL) or read back in one go.
const BATCH: i64 = 1000;
/// How often the PostgreSQL dispatcher looks for rows nobody numbered yet
/// (another node's, or left by a node that died between commit and
/// numbering). Its own commits wake it at once.
const SWEEP: Duration = Duration::from_millis(500);
/// How long the PostgreSQL dispatcher lets commits gather when it has just
/// numbered some (an idle node numbers at once).
const COALESCE: Duration = Duration::from_millis(2);
/// Advisory lock key serializing the numbering transactions of all nodes.
const NUMBERING_LOCK: i64 = 0x6f72_6762_6576_7473; // "orgbevts"

/// What streams receive from the hub.
#[derive(Debug, Clone)]
pub enum Signal {
    /// An event (of any organization: streams filter).
    Event(Arc<Event>),
    /// Messages may have been lost (Redis reconnected): every stream
    /// re-reads the table from its last id.
    Resync,
    /// A session (refresh-token family) was revoked on this node: its
    /// streams end.
    SessionRevoked(Uuid),
}

/// Fan-out of events to this node's streams, fed in process or by Redis.
pub struct Hub {
    local: broadcast::Sender<Signal>,
    redis: Option<Redis>,
    channel: String,
}

impl Hub {
    fn new(redis: Option<Redis>) -> Self {
        let channel = redis.as_ref().map(|r| r.key("events")).unwrap_or_default();
        Self {
            local: broadcast::channel(8192).0,
            redis,
            channel,
        }
    }

    /// A receiver for a new stream.
    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.local.subscribe()
    }

    /// Delivers committed, numbered events: to Redis (every node, this one
    /// included, gets them from there) or straight to local streams.
    pub async fn publish(&self, mut events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        events.sort_by_key(|e| (e.org_id, e.id));
        metrics::counter!("orgboard_events_published_total").increment(events.len() as u64);
        if let Some(redis) = &self.redis {
            let payload = match serde_json::to_string(&events) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot encode events");
                    return;
                }
            };
            let mut conn = redis.conn.clone();
            let sent: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(payload)
                .query_async(&mut conn)
                .await;
            if let Err(e) = sent {
                // Streams find the gap at the next event, or at their
                // periodic check, and read the missing ones from the table.
                tracing::warn!(error = %e, "cannot publish events to Redis");
                self.local_send(events);
            }
        } else {
            self.local_send(events);
        }
    }

    /// Ends this node's streams opened with tokens of `session` (logout,
    /// refresh-token reuse). Other nodes notice at their streams' next
    /// periodic check.
    pub fn session_revoked(&self, session: Uuid) {
        let _ = self.local.send(Signal::SessionRevoked(session));
    }

    fn local_send(&self, events: Vec<Event>) {
        for e in events {
            // No receiver is not an error.
            let _ = self.local.send(Signal::Event(Arc::new(e)));
        }
    }

    /// Forwards Redis messages to local streams until shutdown (telling
    /// streams to resync after the subscription failed).
    fn spawn_redis_listener(self: &Arc<Self>, shutdown: CancellationToken) {
        let Some(redis) = self.redis.clone() else {
            return;
        };
        let hub = Arc::clone(self);
        redis.spawn_listener(self.channel.clone(), shutdown, move |heard| match heard {
            Heard::Resubscribed => {
                let _ = hub.local.send(Signal::Resync);
            }
            Heard::Message(bytes) => match serde_json::from_slice::<Vec<Event>>(&bytes) {
                Ok(events) => hub.local_send(events),
                Err(e) => tracing::warn!(error = %e, "undecodable event message"),
            },
        });
    }
}

/// Numbers committed, unnumbered events (PostgreSQL) and returns them.
async fn number_pending(db: &Db) -> Result<Vec<Event>, sqlx::Error> {
    let mut tx = db.system().await?;
    let TxConn::Postgres(c) = &mut tx.conn else {
        return Ok(Vec::new());
    };
    // The statement touches at most `BATCH` rows, so this transaction plans
    // it afresh each time, with index paths only (BENCHMARKS.md, "Event
    // numbering …"):
    // * sqlx prepares it, and after five runs PostgreSQL may keep a generic
    //   plan, made without knowing `LIMIT $1`. Once a thousand events
    //   waited, that plan spent 2–4 s of CPU per pass forming whole-row
    //   copies of the statement's parts, so under mixed writes numbering
    //   fell 10 000+ events behind (seconds of live-event lag) and took CPU
    //   from the writes; planned with the batch size a full pass is ~10 ms.
    // * The pending rows are read through the partial index
    //   `events_pending_idx` (`WHERE id IS NULL`), which keeps the entries
    //   of rows numbered since the last vacuum: a bitmap scan visits every
    //   one and its heap page on every pass (3.8 ms with nothing pending
    //   after 10 s of creates), a sequential scan reads the whole table; a
    //   plain index scan marks them dead once and skips them after (0.27 ms).
    sqlx::query(
        "SELECT pg_advisory_xact_lock($1), \
         set_config('plan_cache_mode', 'force_custom_plan', true), \
         set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)",
    )
    .bind(NUMBERING_LOCK)
    .execute(&mut **c)
    .await?;
    // After the lock this statement sees every earlier numbering (READ
    // COMMITTED: a new snapshot per statement). It takes the first `$1`
    // pending rows by `seq`, in index order; an organization's rows among
    // them are its first pending ones, so numbering them 1..k by `seq`
    // gives each organization a prefix of its pending rows. `base` is
    // materialized: inlined, its `max` ran once per updated row.
    let events: Vec<Event> = sqlx::query_as(
        "WITH first AS ( \
             SELECT org_id, seq FROM events WHERE id IS NULL ORDER BY seq LIMIT $1), \
         pending AS ( \
             SELECT org_id, seq, row_number() OVER (PARTITION BY org_id ORDER BY seq) AS rn \
             FROM first), \
         base AS MATERIALIZED ( \
             SELECT o.org_id, (SELECT COALESCE(max(e.id), 0) FROM events e WHERE e.org_id = o.org_id) AS last \
             FROM (SELECT DISTINCT org_id FROM pending) o) \
         UPDATE events e SET id = base.last + pending.rn \
         FROM pending JOIN base ON base.org_id = pending.org_id \
         WHERE e.org_id = pending.org_id AND e.seq = pending.seq \
         RETURNING e.id, e.org_id, e.board_id, e.type, e.entity, e.actor_id, e.at",
    )
    .bind(BATCH)
    .fetch_all(&mut **c)
    .await?;
    tx.commit().await?;
    Ok(events)
}

/// Everything live: the hub, the board-view cache, the dispatcher's wake-up
/// and the count of open streams per user. It is also the after-commit hook
/// of every tenant write transaction.
pub struct Live {
    /// Fan-out to this node's streams.
    pub hub: Arc<Hub>,
    /// Board views.
    pub cache: Arc<BoardCache>,
    dispatch: Notify,
    postgres: bool,
    streams: std::sync::Mutex<std::collections::HashMap<Uuid, usize>>,
}

impl Live {
    /// Builds the live layer over the database and, if any, Redis.
    pub fn new(db: &Db, redis: Option<Redis>) -> Arc<Self> {
        Arc::new(Self {
            hub: Arc::new(Hub::new(redis.clone())),
            cache: Arc::new(BoardCache::new(redis)),
            dispatch: Notify::new(),
            postgres: db.backend() == crate::db::Backend::Postgres,
            streams: Default::default(),
        })
    }

    /// Starts the dispatcher (PostgreSQL) and the Redis listener; both stop
    /// when `shutdown` is cancelled.
    pub fn start(self: &Arc<Self>, db: Db, shutdown: CancellationToken) {
        self.hub.spawn_redis_listener(shutdown.clone());
        self.cache.spawn_listener(shutdown.clone());
        if !self.postgres {
            return;
        }
        let live = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let busy = match live.flush(&db).await {
                    Ok(n) => n > 0,
                    Err(e) => {
                        tracing::warn!(error = %e, "event numbering failed");
                        false
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = live.dispatch.notified() => {}
                    _ = tokio::time::sleep(SWEEP) => {}
                }
                // Under load, let commits gather for a moment: one numbering
                // transaction then covers many of them.
                if busy {
                    tokio::time::sleep(COALESCE).await;
                }
            }
        });
    }

    /// Numbers and publishes every committed event now (PostgreSQL; no-op
    /// on SQLite, where commits number their own): a stream that starts
    /// "from now" then starts after every change acknowledged so far.
    pub async fn flush(&self, db: &Db) -> Result<usize, sqlx::Error> {
        let mut numbered = 0;
        if self.postgres {
            loop {
                let events = number_pending(db).await?;
                let full = events.len() as i64 >= BATCH;
                numbered += events.len();
                self.hub.publish(events).await;
                if !full {
                    break;
                }
            }
        }
        Ok(numbered)
    }

    /// Counts an open stream of `user`; `None` when they already have `cap`.
    pub fn open_stream(self: &Arc<Self>, user: Uuid, cap: usize) -> Option<StreamGuard> {
        let mut map = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(user).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        metrics::gauge!("orgboard_event_streams_open").increment(1.0);
        Some(StreamGuard {
            live: Arc::clone(self),
            user,
        })
    }
}

/// One open stream; dropping it frees the user's slot.
pub struct StreamGuard {
    live: Arc<Live>,
    user: Uuid,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let mut map = self.live.streams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
        metrics::gauge!("orgboard_event_streams_open").decrement(1.0);
    }
}

impl AfterCommit for Live {
    fn committed<'a>(
        &'a self,
        touched: &'a crate::db::change::Touches,
        events: Vec<Event>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            // Before the change is acknowledged: no node may serve a board
            // view from before it (views of this node are patched with the
            // change where it says what it did to a card).
            self.cache.invalidate(touched).await;
            if self.postgres {
                self.dispatch.notify_one();
            } else {
                self.hub.publish(events).await;
            }
        })
    }
}
