//! SQLite's rusqlite read pool: a few read-only connections on the
//! database file, each used by one blocking task at a time.
//!
//! The big reads (the board view, filtered pages) run here rather than on
//! sqlx's SQLite pool: sqlx runs each connection on a thread of its own,
//! copies every value of every row (`sqlite3_value_dup`) and hands the rows
//! to Tokio through a channel; the copies, allocated on one thread and
//! freed on another, were most of the board view's CPU and of the server's
//! peak memory (BENCHMARKS.md, issue 13). Here a read runs on Tokio's
//! blocking pool with the connection in hand, rows are read in place
//! ([`super::uow::LiteRead`]) and the answer is written as they arrive.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::uow::{DbError, LiteRead, poll_now};

/// The read pool: at most `size` connections, opened when first needed.
pub struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    size: usize,
}

/// What [`Readers::status`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadersStatus {
    /// Connections open: idle, or held by a read.
    pub open: usize,
    /// Open and idle.
    pub idle: usize,
    /// The most there can be.
    pub max: usize,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").field("path", &self.path).finish()
    }
}

/// How many rusqlite readers run at once: the reads are CPU work (pages
/// come from SQLite's cache or the OS's), so more of them than twice the
/// cores only queue on the CPUs while each holds its page cache and its
/// answer in memory; at most `configured` (`ORGBOARD_DB_MAX_CONNECTIONS`),
/// at least 2.
pub fn pool_size(configured: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    configured.min(2 * cores).max(2)
}

/// SQLite's page cache per reader connection, in KiB (8 MiB).
const CACHE_KIB: i64 = 8 * 1024;

/// Prepared statements kept per connection (the board view's statement
/// differs with the number of lists).
const STATEMENT_CACHE: usize = 64;

fn open(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "memory")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

impl Readers {
    /// A pool of at most `size` (≥ 1) read connections on `path`.
    pub fn new(path: PathBuf, size: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            size: size.max(1),
        }
    }

    /// The pool's connections now (for metrics). A read holding a permit
    /// counts as open from the moment it takes it, a moment before a first
    /// connection is opened for it.
    pub fn status(&self) -> ReadersStatus {
        let idle = self.idle.lock().map(|v| v.len()).unwrap_or(0);
        let busy = self.size.saturating_sub(self.permits.available_permits());
        ReadersStatus {
            open: (idle + busy).min(self.size),
            idle,
            max: self.size,
        }
    }

    /// Runs `f` with a read connection on Tokio's blocking pool. A
    /// connection whose `f` panicked is dropped (the next read opens one).
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> R + Send + 'static,
    ) -> Result<R, DbError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| DbError::Executor("the read pool is closed".into()))?;
        let idle = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
        let path = self.path.clone();
        let (conn, out) = tokio::task::spawn_blocking(move || {
            let mut conn = match idle {
                Some(c) => c,
                None => open(&path)?,
            };
            let out = f(&mut conn);
            Ok::<_, DbError>((conn, out))
        })
        .await
        .map_err(|e| DbError::Executor(format!("a read task failed: {e}")))??;
        self.give_back(conn);
        Ok(out)
    }

    /// Pools a connection again — unless it was left inside a transaction
    /// (its COMMIT failed): it would refuse every later BEGIN, so it is
    /// dropped.
    fn give_back(&self, conn: Connection) {
        if conn.is_autocommit()
            && let Ok(mut idle) = self.idle.lock()
        {
            idle.push(conn);
        }
    }

    /// Runs the read `f` on a connection of the pool in one snapshot
    /// (`BEGIN … COMMIT`): the same code as on PostgreSQL, over
    /// [`LiteRead`], whose statements complete inside one poll.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&mut LiteRead<'_>) -> R + Send + 'static,
    ) -> Result<R, DbError> {
        self.drive(true, f).await
    }

    /// Runs a read of one statement (its own snapshot, no `BEGIN`): the
    /// membership check, or a statement that joins it with what it guards
    /// (a task's read). When a connection is idle it runs right here, on the
    /// calling Tokio worker: one indexed statement over cached pages costs
    /// tens of microseconds, less than handing it to the blocking pool and
    /// back (two thread wake-ups and context switches, a quarter of the
    /// server's samples under `get_task`; BENCHMARKS.md, issue 13, fifth
    /// part). A reader in WAL mode waits for no writer. Otherwise (no idle
    /// connection) it goes to the blocking pool as [`Self::read`] does.
    pub async fn read_statement<R: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&mut LiteRead<'_>) -> R + Send + 'static,
    ) -> Result<R, DbError> {
        if let Ok(permit) = self.permits.try_acquire() {
            let idle = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            if let Some(mut conn) = idle {
                let out = poll_now(f(&mut LiteRead::new(&mut conn)));
                self.give_back(conn);
                drop(permit);
                return out.ok_or_else(|| {
                    DbError::Executor("a read waited for I/O on the read pool".into())
                });
            }
        }
        self.drive(false, f).await
    }

    async fn drive<R: Send + 'static>(
        &self,
        snapshot: bool,
        f: impl AsyncFnOnce(&mut LiteRead<'_>) -> R + Send + 'static,
    ) -> Result<R, DbError> {
        self.run(move |conn| {
            let mut u = LiteRead::new(conn);
            let out = if snapshot {
                u.snapshot(|u| poll_now(f(u)))?
            } else {
                poll_now(f(&mut u))
            };
            out.ok_or_else(|| DbError::Executor("a read waited for I/O on the read pool".into()))
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gauges' view of the pool: nothing open before the first read,
    /// a busy connection while a read holds it, idle after.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_counts_open_idle_and_busy_connections() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("status.db");
        Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER)"))
            .expect("create the file");
        let readers = Arc::new(Readers::new(path, 3));
        let empty = ReadersStatus {
            open: 0,
            idle: 0,
            max: 3,
        };
        assert_eq!(readers.status(), empty);

        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn({
            let readers = Arc::clone(&readers);
            async move {
                readers
                    .run(move |_conn| {
                        held_tx.send(()).expect("signal");
                        go_rx.recv().expect("released");
                    })
                    .await
            }
        });
        tokio::task::spawn_blocking(move || held_rx.recv())
            .await
            .expect("join")
            .expect("the read started");
        assert_eq!(
            readers.status(),
            ReadersStatus {
                open: 1,
                idle: 0,
                max: 3
            }
        );
        go_tx.send(()).expect("release");
        busy.await.expect("join").expect("read");
        assert_eq!(
            readers.status(),
            ReadersStatus {
                open: 1,
                idle: 1,
                max: 3
            }
        );
    }
}
