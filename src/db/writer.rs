//! The SQLite group-commit writer: one OS thread owning one `rusqlite`
//! connection, running whole write transactions synchronously.
//!
//! Why: through sqlx every statement is a round trip to the connection's
//! worker thread and back to the async task, and SQLite's single write lock
//! is held across all of them. On a loaded 2-core machine those hops, not
//! SQLite, set the pace of writes (profiled: the writer thread was idle half
//! the time while eight creates queued behind it). Here a job is a plain
//! closure over the connection; the thread takes every job that is waiting,
//! runs them in **one** transaction, each inside its own savepoint (a job
//! that fails is rolled back to its savepoint and changes nothing, the
//! others still commit), commits once, runs the after-commit hook once with
//! all their organizations and events (in commit order), and only then
//! answers each job. Dirty pages shared by the jobs (the tail of every
//! index) are written to the WAL once per batch instead of once per job.
//!
//! Every write of the product is a use case written against the unit of
//! work ([`super::uow`]) and runs on it: this thread is the serving
//! process's only writer. Migrations, the benchmark's seeder and tests'
//! fixtures write through a connection of their own, opened for the
//! transaction ([`super::Db::write`] on SQLite); SQLite's write lock and
//! busy timeout (5 s, on both) keep the two apart.
//!
//! A job runs to completion whatever happens to the request that sent it: a
//! client that disconnects only drops the answer.

use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::change::{CardChange, Event, Touched, Touches};

/// Counter of batches the writer committed (`/metrics`).
pub const SQLITE_WRITE_BATCHES: &str = "orgboard_sqlite_write_batches_total";
/// Counter of jobs the writer ran (`/metrics`).
pub const SQLITE_WRITE_JOBS: &str = "orgboard_sqlite_write_jobs_total";

/// Why a job got no answer of its own: the writer could not take it, or
/// its batch did not commit. Callers turn it into their error type.
#[derive(Debug, Clone)]
pub enum WriterStopped {
    /// The writer thread is gone (shutdown).
    ShuttingDown,
    /// The batch's commit found the database busy.
    Busy,
    /// The batch's commit failed otherwise, or the job panicked.
    Failed(String),
}

/// Most jobs committed together.
const MAX_BATCH: usize = 256;
/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL pages after which the writer checkpoints by itself (SQLite's
/// default is 1 000): only a safety net for when the checkpointer cannot
/// keep up.
pub(crate) const WRITER_AUTOCHECKPOINT: u32 = 20_000;
/// A WAL file longer than this is cut back to nothing once the writes have
/// stopped (see [`checkpoint`]); shorter ones are left as they are.
const WAL_KEEP_BYTES: u64 = 4 << 20;
/// How long the checkpointer's truncation waits for a reader still on the
/// WAL, or for the writer, before it gives up until the next quiet tick.
const TRUNCATE_WAIT: Duration = Duration::from_millis(50);

/// What a job's closure works on: the connection inside the batch's
/// transaction (and the job's savepoint), and what the job changed.
pub struct WriteCtx<'c> {
    /// The connection; the job's statements run on it (through
    /// [`super::uow::LiteUow`]).
    pub conn: &'c mut rusqlite::Connection,
    changed: Touches,
    events: Vec<Event>,
}

impl WriteCtx<'_> {
    /// Notes that the job changed `touched` (an organization, and a board
    /// when the change concerns only one) and numbered `event`;
    /// [`super::change::record`] calls it for every recorded change.
    pub fn note(&mut self, touched: Touched, event: Option<Event>, card: Option<CardChange>) {
        self.changed.note(touched, card);
        self.events.extend(event);
    }
}

/// What the thread does once the batch's fate is known.
type Finish = Box<dyn FnOnce(Result<(), WriterStopped>) + Send>;
/// A job: runs in the batch, says whether it succeeded, and how to answer.
type Job = Box<dyn FnOnce(&mut WriteCtx<'_>) -> (bool, Finish) + Send>;

/// Handle to the writer thread; cheap to clone. The thread ends when the
/// last handle is dropped.
#[derive(Clone)]
pub struct SqliteWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for SqliteWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteWriter")
    }
}

impl SqliteWriter {
    /// Opens the connection to `path` (WAL, `synchronous = NORMAL`, foreign
    /// keys, busy timeout — as the sqlx connections) and starts the thread.
    pub fn start(path: &std::path::Path, hook: super::Hook) -> anyhow::Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = -16000; PRAGMA temp_store = memory;",
        )?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT)?;
        conn.set_prepared_statement_cache_capacity(128);
        let checkpointer = rusqlite::Connection::open(path)?;
        // Its passive checkpoints never wait; only the truncation of a quiet
        // WAL does, and briefly (see `checkpoint`).
        checkpointer.busy_timeout(TRUNCATE_WAIT)?;
        let wal = super::sidecar(path, "-wal");
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (tx, rx) = mpsc::channel::<Job>();
        let (alive, writer_gone) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("orgboard-sqlite-writer".into())
            .spawn(move || {
                run(conn, rx, hook, runtime);
                drop(alive);
            })?;
        std::thread::Builder::new()
            .name("orgboard-sqlite-checkpoint".into())
            .spawn(move || checkpoint(checkpointer, &wal, writer_gone))?;
        Ok(Self { jobs: tx })
    }

    /// Runs `f` in the next batch and answers once that batch has committed
    /// (and its after-commit hook has run). `f`'s error rolls back only its
    /// own changes and is returned as is; a failed commit fails every job of
    /// the batch.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<WriterStopped> + Send + 'static,
        F: FnOnce(&mut WriteCtx<'_>) -> Result<T, E> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |ctx| {
            let result = f(ctx);
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |committed| {
                let _ = answer.send(match committed {
                    Ok(()) => result,
                    Err(e) => result.and(Err(E::from(e))),
                });
            });
            (ok, finish)
        });
        self.jobs
            .send(job)
            .map_err(|_| E::from(WriterStopped::ShuttingDown))?;
        answered.await.map_err(|_| {
            E::from(WriterStopped::Failed(
                "the SQLite writer dropped the job (it panicked, or its batch was cut off)".into(),
            ))
        })?
    }
}

/// Copies the WAL back into the database file every [`CHECKPOINT_EVERY`],
/// on its own connection and thread, until the writer thread ends; and
/// once the writes have stopped, cuts a long WAL file back to nothing.
///
/// Why: with `synchronous = NORMAL` a commit only appends to the WAL; the
/// `fsync`s happen at checkpoints, which SQLite otherwise runs inside the
/// commit that crosses 1 000 WAL pages — on the writer, holding up every
/// write queued behind it (the p99 of creates). A `PASSIVE` checkpoint
/// never blocks writers or readers; it copies what it can.
///
/// SQLite writes the WAL from its start again once everything in it has
/// been copied back, but never makes the file shorter: after a burst of
/// writes it stayed at its longest (90 MB after the benchmark's task
/// creates) for as long as the server ran. So when a tick finds no frame
/// written since the last one and every frame copied back, and the file is
/// longer than [`WAL_KEEP_BYTES`], a `TRUNCATE` checkpoint empties it. That
/// one takes the write lock and waits for readers still on the WAL, at most
/// [`TRUNCATE_WAIT`] (the writer's next batch may wait as long, once, when
/// writes resume); if it cannot finish, the next quiet tick tries again.
/// Under steady writes it never runs.
fn checkpoint(conn: rusqlite::Connection, wal: &std::path::Path, writer_gone: mpsc::Receiver<()>) {
    let mut last_log = None;
    while let Err(mpsc::RecvTimeoutError::Timeout) = writer_gone.recv_timeout(CHECKPOINT_EVERY) {
        // (busy, frames in the WAL, frames copied back)
        let passive = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        let (log, copied) = match passive {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "WAL checkpoint failed");
                continue;
            }
        };
        let quiet = last_log == Some(log) && log == copied;
        last_log = Some(log);
        // The file's length is looked at only when the writes have stopped.
        if quiet && std::fs::metadata(wal).is_ok_and(|m| m.len() > WAL_KEEP_BYTES) {
            match conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            }) {
                Ok(0) => last_log = Some(0),
                Ok(_) => tracing::debug!("WAL truncation waited too long; next quiet tick"),
                Err(e) => tracing::debug!(error = %e, "WAL truncation failed; next quiet tick"),
            }
        }
    }
}

fn run(
    mut conn: rusqlite::Connection,
    jobs: mpsc::Receiver<Job>,
    hook: super::Hook,
    runtime: Option<tokio::runtime::Handle>,
) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let mut finishes = Vec::with_capacity(batch.len());
        let mut changed = Touches::default();
        let mut events = Vec::new();
        let outcome = (|| -> rusqlite::Result<()> {
            // The statements every batch and job run are prepared once.
            conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
            for job in batch.drain(..) {
                conn.prepare_cached("SAVEPOINT job")?.execute([])?;
                let mut ctx = WriteCtx {
                    conn: &mut conn,
                    changed: Touches::default(),
                    events: Vec::new(),
                };
                // A panicking job (a bug) must not take the writer down:
                // it is rolled back like a failed one, and its request gets
                // a 500 when its answer channel closes.
                let (ok, finish) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                    || job(&mut ctx),
                )) {
                    Ok((ok, finish)) => (ok, Some(finish)),
                    Err(_) => {
                        tracing::error!("a SQLite writer job panicked; rolled back");
                        (false, None)
                    }
                };
                let (job_changed, job_events) = (ctx.changed, ctx.events);
                if ok {
                    conn.prepare_cached("RELEASE job")?.execute([])?;
                    changed.merge(job_changed);
                    events.extend(job_events);
                } else {
                    conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
                }
                if let Some(finish) = finish {
                    finishes.push(finish);
                }
            }
            conn.prepare_cached("COMMIT")?.execute([]).map(|_| ())
        })();
        let committed = match outcome {
            Ok(()) => Ok(()),
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        };
        metrics::counter!(SQLITE_WRITE_BATCHES).increment(1);
        metrics::counter!(SQLITE_WRITE_JOBS).increment(finishes.len() as u64);
        match committed {
            Ok(()) => {
                if let (Some(hook), Some(rt)) = (hook.get(), &runtime)
                    && !changed.is_empty()
                {
                    // Cache invalidation and publishing, before any job is
                    // answered. A runtime that is shutting down may refuse
                    // the work; the writer must outlive that.
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        rt.block_on(hook.committed(&changed, events))
                    }));
                    if ran.is_err() {
                        tracing::error!("the after-commit hook of a SQLite batch panicked");
                    }
                }
                for finish in finishes {
                    finish(Ok(()));
                }
            }
            Err(e) => {
                // Jobs that had already failed keep their own error.
                let busy = is_busy(&e);
                tracing::error!(error = %e, "SQLite group commit failed");
                for finish in finishes {
                    finish(Err(if busy {
                        WriterStopped::Busy
                    } else {
                        WriterStopped::Failed(format!("commit failed: {e}"))
                    }));
                }
                // Jobs the failure cut off were dropped with the batch's
                // drain: their requests get a 500 when the answer channel
                // closes.
            }
        }
    }
}

/// True for SQLite's "busy"/"locked" results.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A time as sqlx stores `DateTime<Utc>` in SQLite (RFC 3339, `+00:00`,
/// as many fraction digits as needed), so both writers' rows sort and
/// decode the same.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DomainError;

    fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.db");
        let c = rusqlite::Connection::open(&path).expect("open");
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER PRIMARY KEY);")
            .expect("schema");
        (dir, path)
    }

    fn rows(path: &std::path::Path) -> Vec<i64> {
        let c = rusqlite::Connection::open(path).expect("open");
        let mut s = c.prepare("SELECT n FROM t ORDER BY n").expect("prepare");
        s.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// Jobs queued together share one transaction, yet a job that fails
    /// after writing (or panics) leaves nothing behind and the others
    /// commit; every job gets its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_job_in_a_batch_rolls_back_alone() {
        let (_dir, path) = setup();
        let writer = SqliteWriter::start(&path, crate::db::Hook::default()).expect("writer");
        // A first job holds the writer until released, so the others queue
        // up and go in as one batch.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let w = writer.clone();
            async move {
                w.run(move |c| -> Result<(), DomainError> {
                    c.conn.execute("INSERT INTO t VALUES (0)", [])?;
                    let _ = held.recv();
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut jobs = Vec::new();
        for n in 1..=20_i64 {
            let w = writer.clone();
            jobs.push(tokio::spawn(async move {
                w.run(move |c| -> Result<i64, DomainError> {
                    c.conn.execute("INSERT INTO t VALUES (?1)", [n])?;
                    match n % 5 {
                        0 => Err(DomainError::bad_request("odd", "refused after writing")),
                        3 => panic!("job {n} panics after writing"),
                        _ => Ok(n),
                    }
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(release);
        assert!(first.await.expect("join").is_ok());
        for (i, j) in jobs.into_iter().enumerate() {
            let n = i as i64 + 1;
            let r = j.await.expect("join");
            match n % 5 {
                0 => assert_eq!(
                    r.expect_err("refused").kind(),
                    crate::domain::ErrorKind::BadRequest
                ),
                3 => assert_eq!(
                    r.expect_err("panicked").kind(),
                    crate::domain::ErrorKind::Internal
                ),
                _ => assert_eq!(r.expect("committed"), n),
            }
        }
        let expected: Vec<i64> = (0..=20)
            .filter(|n| n % 5 != 0 || *n == 0)
            .filter(|n| n % 5 != 3)
            .collect();
        assert_eq!(rows(&path), expected);
        // The writer is still alive after the panic.
        writer
            .run(|c| -> Result<(), DomainError> {
                c.conn.execute("INSERT INTO t VALUES (100)", [])?;
                Ok(())
            })
            .await
            .expect("writer survives");
        assert_eq!(rows(&path).last(), Some(&100));
    }

    /// A transaction of another connection holding SQLite's write lock (a
    /// fixture through [`crate::db::Db::write`]) keeps the writer waiting,
    /// within the busy timeout, until it ends; then the job commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_connections_write_keeps_the_writer_waiting() {
        let (_dir, path) = setup();
        let writer = SqliteWriter::start(&path, crate::db::Hook::default()).expect("writer");
        let other = rusqlite::Connection::open(&path).expect("open");
        other.execute_batch("BEGIN IMMEDIATE").expect("write lock");
        let job = tokio::spawn({
            let w = writer.clone();
            async move {
                w.run(|c| -> Result<(), DomainError> {
                    c.conn.execute("INSERT INTO t VALUES (1)", [])?;
                    Ok(())
                })
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !job.is_finished(),
            "the job ran while another held the lock"
        );
        assert!(rows(&path).is_empty());
        other.execute_batch("COMMIT").expect("commit");
        job.await.expect("join").expect("committed");
        assert_eq!(rows(&path), vec![1]);
    }

    /// A WAL file made long by a burst of writes is cut back to nothing by
    /// the checkpointer once the writes stop; the rows stay, and the next
    /// write starts the WAL again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_wal_is_truncated_once_writes_stop() {
        let (_dir, path) = setup();
        let wal = path.with_file_name("w.db-wal");
        let writer = SqliteWriter::start(&path, crate::db::Hook::default()).expect("writer");
        // About 8 MB of pages, in jobs of 100 rows of 4 KB.
        for chunk in 0..20_i64 {
            writer
                .run(move |c| -> Result<(), DomainError> {
                    c.conn.execute(
                        "CREATE TABLE IF NOT EXISTS b (n INTEGER PRIMARY KEY, v BLOB)",
                        [],
                    )?;
                    for n in chunk * 100..(chunk + 1) * 100 {
                        c.conn
                            .execute("INSERT INTO b VALUES (?1, zeroblob(4000))", [n])?;
                    }
                    Ok(())
                })
                .await
                .expect("written");
        }
        let len = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert!(
            len() > WAL_KEEP_BYTES,
            "the burst made a long WAL: {}",
            len()
        );
        // Quiet from here: a tick copies everything back, the next sees no
        // new frame and truncates.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while len() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
        }
        assert_eq!(len(), 0, "the WAL was not truncated");
        let count = |p: &std::path::Path| -> i64 {
            rusqlite::Connection::open(p)
                .expect("open")
                .query_row("SELECT count(*) FROM b", [], |r| r.get(0))
                .expect("count")
        };
        assert_eq!(count(&path), 2_000);
        writer
            .run(|c| -> Result<(), DomainError> {
                c.conn.execute("INSERT INTO t VALUES (1)", [])?;
                Ok(())
            })
            .await
            .expect("a write after the truncation");
        assert!(len() > 0, "the next write starts the WAL again");
        assert_eq!(rows(&path), vec![1]);
    }

    /// The writer's rows must read, sort and compare like sqlx's: the same
    /// text for the same time (whole seconds, micro- and nanoseconds).
    #[tokio::test]
    async fn times_are_written_as_sqlx_writes_them() {
        let (_dir, path) = setup();
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("sqlx");
        sqlx::query("CREATE TABLE times (t TEXT)")
            .execute(&pool)
            .await
            .expect("table");
        for micros in [
            1_764_633_600_000_000_i64,
            1_764_633_600_123_456,
            1_764_633_600_100_000,
        ] {
            let t = chrono::DateTime::from_timestamp_micros(micros).expect("time");
            let t = t + chrono::Duration::nanoseconds(micros % 7);
            let sqlx_text: String = sqlx::query_scalar("INSERT INTO times VALUES ($1) RETURNING t")
                .bind(t)
                .fetch_one(&pool)
                .await
                .expect("insert");
            assert_eq!(time_text(t), sqlx_text);
        }
    }
}
