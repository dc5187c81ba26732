//! Storage: one seam over SQLite (embedded default) and PostgreSQL.
//!
//! * [`Db`] is chosen from the URL. SQLite gets one writer connection (all
//!   writes are serialized anyway; several writers only contend) and a pool of
//!   read-only connections, WAL, `synchronous = NORMAL`, foreign keys and a
//!   busy timeout; write transactions start with `BEGIN IMMEDIATE`.
//! * Every request transaction is opened with a [`Scope`]. On PostgreSQL the
//!   transaction first switches to the `orgboard_app` role (owns nothing, no
//!   `BYPASSRLS`) and sets `app.user_id` / `app.org_id` with
//!   `set_config(…, true)`, so row-level security holds even when the URL's
//!   user is a superuser, and nothing leaks to the next user of the pooled
//!   connection.
//! * SQL is written once where the dialects agree and run with [`on_tx!`](crate::on_tx),
//!   which expands the same statement for whichever backend the transaction
//!   is on.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use std::path::PathBuf;

use clap::Args;

/// Where the database lives; shared by every command that opens it (the
/// settings are `clap` arguments, re-exported by the `config` module).
#[derive(Debug, Clone, Args)]
pub struct StorageConfig {
    /// Directory for the SQLite file, generated secrets and the mail outbox.
    #[arg(long, env = "ORGBOARD_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// `postgres://…` for PostgreSQL, `sqlite://…` for another SQLite file;
    /// default: `<data dir>/orgboard.db`.
    #[arg(long, env = "ORGBOARD_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Largest number of pooled database connections (PostgreSQL), or of
    /// reader connections (SQLite, which always has exactly one writer).
    #[arg(long, env = "ORGBOARD_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
}

impl StorageConfig {
    /// The database URL in force: the configured one or the embedded SQLite file.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.clone(),
            _ => format!("sqlite://{}", self.data_dir.join("orgboard.db").display()),
        }
    }
}

pub mod change;
pub mod pg;
pub mod readers;
pub mod unit;
pub mod uow;
pub mod writer;
pub use writer::{SqliteWriter, WriteCtx};

/// Migrations for PostgreSQL, embedded in the binary.
pub static PG_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
/// Migrations for SQLite, embedded in the binary; same versions as PostgreSQL.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL role request transactions run as (created by the migrations).
pub const APP_ROLE: &str = "orgboard_app";
/// The PostgreSQL role of the node's own cross-tenant upkeep (created by the
/// migrations; like [`APP_ROLE`] it owns nothing and cannot bypass row-level
/// security: its policies name exactly what it may see).
pub const SYSTEM_ROLE: &str = "orgboard_system";

/// A database handle, cheap to clone.
#[derive(Clone, Debug)]
pub enum Db {
    /// PostgreSQL with row-level security: sqlx's pool, the after-commit
    /// work of write transactions, and the pipelining connections of the
    /// units of work ([`pg`]).
    Postgres(PgPool, Hook, pg::Pipes),
    /// SQLite: a single writer and a pool of readers on one file.
    Sqlite {
        /// Read-only connections.
        reader: SqlitePool,
        /// Read-only rusqlite connections for the big reads (see [`readers`]).
        lite: std::sync::Arc<readers::Readers>,
        /// How to open a connection that writes outside the product's use
        /// cases — migrations, the benchmark's seeder, tests' fixtures —
        /// for one transaction ([`Db::write`] on SQLite). Every route, job
        /// and administrator command writes through `fast` (which
        /// `sqlx_writes` lets a test check).
        maintenance: std::sync::Arc<SqliteConnectOptions>,
        /// Transactions opened with `maintenance` ([`Db::sqlite_sqlx_writes`]).
        sqlx_writes: std::sync::Arc<std::sync::atomic::AtomicU64>,
        /// The group-commit writer thread (see [`writer`]): the process's
        /// only writer connection.
        fast: SqliteWriter,
        /// The after-commit work of write transactions (shared with `fast`).
        hook: Hook,
    },
}

/// The after-commit work every write transaction runs, installed once
/// (by the application state, [`Db::set_after_commit`]) and then given to
/// every write transaction and writer batch, so no caller can forget it. A
/// process without it (the administrator's CLI) commits without it: the
/// serving nodes' periodic checks pick its changes up.
#[derive(Clone, Default)]
pub struct Hook(std::sync::Arc<std::sync::OnceLock<std::sync::Arc<dyn AfterCommit>>>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Hook(set)"
        } else {
            "Hook(unset)"
        })
    }
}

impl Hook {
    /// The installed work, if any.
    pub fn get(&self) -> Option<std::sync::Arc<dyn AfterCommit>> {
        self.0.get().cloned()
    }
}

/// Which backend a [`Db`] or [`Tx`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Backend {
    /// Lower-case name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Postgres => "postgres",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// Who a transaction acts for: the user and, inside an organization, the
/// tenant. On PostgreSQL row-level security sees exactly this.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope {
    /// The authenticated user, if any.
    pub user_id: Option<Uuid>,
    /// The organization (tenant), if the work is inside one.
    pub org_id: Option<Uuid>,
}

impl Scope {
    /// No user, no tenant: sign-up, login, refresh, background work.
    pub fn system() -> Self {
        Self::default()
    }
    /// A signed-in user outside any organization.
    pub fn user(user_id: Uuid) -> Self {
        Self {
            user_id: Some(user_id),
            org_id: None,
        }
    }
    /// A user acting inside an organization.
    pub fn tenant(user_id: Uuid, org_id: Uuid) -> Self {
        Self {
            user_id: Some(user_id),
            org_id: Some(org_id),
        }
    }
}

/// The connection of an open transaction, on either backend.
pub enum TxConn {
    /// PostgreSQL transaction (already switched to the app role).
    Postgres(Transaction<'static, Postgres>),
    /// SQLite transaction.
    Sqlite(Transaction<'static, Sqlite>),
}

/// Work to do once a transaction that changed organizations has committed,
/// before the change is acknowledged: invalidate cached board views, wake
/// the event dispatcher. Installed with [`Tx::after_commit`].
pub trait AfterCommit: Send + Sync {
    /// Called after a successful commit with every organization (and board)
    /// the transaction changed (see [`Tx::changed`]) and the events it
    /// numbered itself (SQLite; on PostgreSQL the dispatcher numbers them).
    fn committed<'a>(
        &'a self,
        touched: &'a change::Touches,
        events: Vec<change::Event>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;
}

/// An open transaction on either backend, with the organizations it changed.
pub struct Tx {
    /// The connection; use [`on_tx!`](crate::on_tx) to run statements on it.
    pub conn: TxConn,
    changed: change::Touches,
    after: Option<std::sync::Arc<dyn AfterCommit>>,
    /// Events this transaction numbered itself (SQLite), published after commit.
    pub(crate) committed_events: Vec<change::Event>,
    /// Writes waiting to be sent (PostgreSQL; see [`uow::Uow::defer`]).
    pub(crate) deferred: uow::Deferred,
}

/// Runs the same sqlx statement on whichever backend `tx` is on:
/// `on_tx!(tx, |c| sqlx::query("…").bind(x).fetch_one(c).await)`. The body
/// is expanded once per backend, so it must produce the same type on both
/// (map `execute` results with `.map(|r| r.rows_affected())`).
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match &mut ($tx).conn {
            $crate::db::TxConn::Postgres(t) => {
                let $c: &mut ::sqlx::PgConnection = &mut **t;
                $body
            }
            $crate::db::TxConn::Sqlite(t) => {
                let $c: &mut ::sqlx::SqliteConnection = &mut **t;
                $body
            }
        }
    };
}

/// How long a PostgreSQL connection may sit idle in the pool before it is
/// pinged when handed out again (a server restart or a network cut shows
/// there, not in the request that uses it).
const IDLE_PING_AFTER: Duration = Duration::from_secs(10);

impl Db {
    /// Opens the database named by the settings (creating the SQLite file and
    /// data directory when needed). Does not migrate.
    pub async fn connect(cfg: &StorageConfig) -> anyhow::Result<Db> {
        let url = cfg.effective_database_url();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let opts = PgConnectOptions::from_str(&url).context("invalid ORGBOARD_DATABASE_URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(cfg.db_max_connections)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(5))
                // sqlx pings every connection it hands out by default: one
                // more round trip per transaction (a fifth of a task
                // create's). A connection in steady use needs no proof of
                // life; one that sat idle is still pinged first.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > IDLE_PING_AFTER {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(opts)
                .await
                .context("cannot connect to PostgreSQL")?;
            // The units of work's own connections (see `pg`): as many
            // again, opened only when used.
            let pipes = pg::Pipes::new(&url, cfg.db_max_connections as usize)?;
            Ok(Db::Postgres(pool, Hook::default(), pipes))
        } else {
            private_dir(&cfg.data_dir).with_context(|| {
                format!("cannot create data directory {}", cfg.data_dir.display())
            })?;
            let base = SqliteConnectOptions::from_str(&url)
                .context("invalid SQLite URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
                .pragma("cache_size", "-16000")
                .pragma("temp_store", "memory")
                // The connection thread hands rows over a bounded channel
                // (50 by default) and stops when it is full: a 10 000-task
                // board view was 200 round trips between the threads.
                .row_buffer_size(4096);
            let path = base.get_filename().to_owned();
            private_database_file(&path)
                .with_context(|| format!("cannot create SQLite database {}", path.display()))?;
            // Checkpoints are the checkpointer thread's (see `writer`).
            let maintenance = std::sync::Arc::new(base.clone().pragma(
                "wal_autocheckpoint",
                writer::WRITER_AUTOCHECKPOINT.to_string(),
            ));
            // The writer first: it turns a new file to WAL, which the
            // read-only connections cannot.
            let hook = Hook::default();
            let fast = SqliteWriter::start(&path, hook.clone())
                .with_context(|| format!("cannot open SQLite database {url} for writing"))?;
            // An SQLite connection is a file handle in this process: it
            // cannot be lost the way a socket can, so no pool pings it
            // before handing it out (a thread round trip each).
            // sqlx's read-only connections: tools and tests only (every
            // route and job reads on `lite`), so none is kept open.
            let reader = SqlitePoolOptions::new()
                .max_connections(cfg.db_max_connections.max(2))
                .min_connections(0)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(base.read_only(true))
                .await
                .with_context(|| format!("cannot open SQLite database {url}"))?;
            let lite = std::sync::Arc::new(readers::Readers::new(
                path.clone(),
                readers::pool_size(cfg.db_max_connections as usize),
            ));
            Ok(Db::Sqlite {
                reader,
                lite,
                maintenance,
                sqlx_writes: Default::default(),
                fast,
                hook,
            })
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Postgres(..) => Backend::Postgres,
            Db::Sqlite { .. } => Backend::Sqlite,
        }
    }

    /// Applies pending migrations (as the URL's user, which owns the tables).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Db::Postgres(pool, ..) => PG_MIGRATOR.run(pool).await?,
            Db::Sqlite { maintenance, .. } => {
                let pool = one_connection(maintenance).await?;
                SQLITE_MIGRATOR.run(&pool).await?;
                pool.close().await;
            }
        }
        Ok(())
    }

    /// Checks that the database answers — on the pool of the migrations
    /// and on the one the routes use — and every migration is applied.
    pub async fn ready(&self) -> anyhow::Result<()> {
        let (applied, expected): (Vec<i64>, usize) = match self {
            Db::Postgres(pool, ..) => (
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await?,
                PG_MIGRATOR.iter().count(),
            ),
            Db::Sqlite { reader, .. } => (
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(reader)
                    .await?,
                SQLITE_MIGRATOR.iter().count(),
            ),
        };
        anyhow::ensure!(
            applied.len() >= expected,
            "{} of {} migrations applied",
            applied.len(),
            expected
        );
        // The connections the routes use: the units' pool (PostgreSQL),
        // the read pool (SQLite).
        use uow::Uow as _;
        crate::read_unit!(self, system, |u| async move {
            u.fetch_optional("SELECT 1", &[]).await.map(drop)
        })?;
        Ok(())
    }

    /// Installs the after-commit work of every later write transaction
    /// (once; a second call is ignored).
    pub fn set_after_commit(&self, work: std::sync::Arc<dyn AfterCommit>) {
        let _ = self.hook().0.set(work);
    }

    fn hook(&self) -> &Hook {
        match self {
            Db::Postgres(_, hook, _) | Db::Sqlite { hook, .. } => hook,
        }
    }

    /// Opens a sqlx read transaction for `scope`: for tools and tests (the
    /// benchmark's integrity check, fixtures). Every read of a route or job
    /// runs as a read unit instead ([`crate::read_unit!`]: SQLite's
    /// rusqlite read pool, PostgreSQL's [`pg::PgRead`]); the node's upkeep
    /// reads as `orgboard_system` (`read_unit!(db, system, …)`).
    pub async fn read(&self, scope: Scope) -> Result<Tx, sqlx::Error> {
        Ok(Tx::new(match self {
            Db::Postgres(pool, ..) => {
                TxConn::Postgres(pool.begin_with(pg_begin(APP_ROLE, scope, true)).await?)
            }
            Db::Sqlite { reader, .. } => TxConn::Sqlite(reader.begin().await?),
        }))
    }

    /// Opens a write transaction for `scope`. On SQLite this is for what
    /// writes outside the product's use cases (the benchmark's seeder,
    /// tests' fixtures): `BEGIN IMMEDIATE` on a connection of its own,
    /// opened for this transaction and closed after it, beside the
    /// group-commit writer (SQLite's write lock and busy timeout keep them
    /// apart).
    pub async fn write(&self, scope: Scope) -> Result<Tx, sqlx::Error> {
        let mut tx = match self {
            Db::Postgres(pool, ..) => Tx::new(TxConn::Postgres(
                pool.begin_with(pg_begin(APP_ROLE, scope, false)).await?,
            )),
            Db::Sqlite {
                maintenance,
                sqlx_writes,
                ..
            } => sqlite_write(maintenance, sqlx_writes).await?,
        };
        tx.after = self.hook().get();
        Ok(tx)
    }

    /// Opens a write unit for `scope` that sends nothing yet: on PostgreSQL
    /// its `BEGIN` waits for the use case's first call (see [`unit::Unit`]); on
    /// SQLite a write transaction at once, as [`Db::write`] (the product's
    /// SQLite writes run on the group-commit writer instead).
    pub async fn unit(&self, scope: Scope) -> Result<unit::Unit, uow::DbError> {
        match self {
            Db::Postgres(_, hook, pipes) => Ok(unit::Unit::Pg(Box::new(
                pipes.unit(scope, hook.get()).await?,
            ))),
            Db::Sqlite { .. } => Ok(unit::Unit::Tx(self.write(scope).await?)),
        }
    }

    /// Opens a read for `scope` on PostgreSQL whose `BEGIN` travels with
    /// its first statement; `one`: a read of one statement, which sends its
    /// `COMMIT` with it too ([`pg::PgRead`]). SQLite's reads run on
    /// [`Db::sqlite_readers`] instead: an error there.
    pub async fn pg_read(&self, scope: Scope, one: bool) -> Result<pg::PgRead, uow::DbError> {
        match self {
            Db::Postgres(_, _, pipes) => pipes.read(scope, one).await,
            Db::Sqlite { .. } => Err(uow::DbError::Executor(
                "a PostgreSQL read asked of SQLite".into(),
            )),
        }
    }

    /// [`Db::pg_read`] as `orgboard_system` ([`SYSTEM_ROLE`]): the node's
    /// upkeep and the administrator's reads across organizations
    /// (`read_unit!(db, system, |u| …)`).
    pub async fn pg_system_read(&self) -> Result<pg::PgRead, uow::DbError> {
        match self {
            Db::Postgres(_, _, pipes) => pipes.read_as(SYSTEM_ROLE, Scope::system(), false).await,
            Db::Sqlite { .. } => Err(uow::DbError::Executor(
                "a PostgreSQL read asked of SQLite".into(),
            )),
        }
    }

    /// SQLite's rusqlite read pool (`None` on PostgreSQL): a read that
    /// runs on a blocking thread with the connection in hand (see
    /// [`readers`] and [`uow::LiteRead`]).
    pub fn sqlite_readers(&self) -> Option<&std::sync::Arc<readers::Readers>> {
        match self {
            Db::Sqlite { lite, .. } => Some(lite),
            Db::Postgres(..) => None,
        }
    }

    /// How many write transactions [`Db::write`] and [`Db::system`] opened on
    /// SQLite (`None` on PostgreSQL): the product's own writes never open
    /// one, so a test can tell that a flow wrote only through the
    /// group-commit writer.
    pub fn sqlite_sqlx_writes(&self) -> Option<u64> {
        match self {
            Db::Sqlite { sqlx_writes, .. } => {
                Some(sqlx_writes.load(std::sync::atomic::Ordering::Relaxed))
            }
            Db::Postgres(..) => None,
        }
    }

    /// The group-commit writer, on SQLite (`None` on PostgreSQL).
    pub fn sqlite_writer(&self) -> Option<&SqliteWriter> {
        match self {
            Db::Sqlite { fast, .. } => Some(fast),
            Db::Postgres(..) => None,
        }
    }

    /// Opens a write transaction for the node's own upkeep across
    /// organizations (numbering events, cleaning up): on PostgreSQL it runs
    /// as `orgboard_system`, which row-level security lets see only the
    /// tables and rows its own policies name (see migration 0003).
    pub async fn system(&self) -> Result<Tx, sqlx::Error> {
        let mut tx = match self {
            Db::Postgres(pool, ..) => Tx::new(TxConn::Postgres(
                pool.begin_with(pg_begin(SYSTEM_ROLE, Scope::system(), false))
                    .await?,
            )),
            Db::Sqlite {
                maintenance,
                sqlx_writes,
                ..
            } => sqlite_write(maintenance, sqlx_writes).await?,
        };
        tx.after = self.hook().get();
        Ok(tx)
    }

    /// Opens a read transaction for the node's own upkeep across
    /// organizations (queue gauges): `orgboard_system`, read-only, on
    /// PostgreSQL; a reader connection on SQLite.
    pub async fn system_read(&self) -> Result<Tx, sqlx::Error> {
        Ok(Tx::new(match self {
            Db::Postgres(pool, ..) => TxConn::Postgres(
                pool.begin_with(pg_begin(SYSTEM_ROLE, Scope::system(), true))
                    .await?,
            ),
            Db::Sqlite { reader, .. } => TxConn::Sqlite(reader.begin().await?),
        }))
    }

    /// Folds SQLite's write-ahead log back into the database file now and
    /// truncates it (after a bulk load), on a connection of its own; nothing
    /// on PostgreSQL.
    pub async fn sqlite_checkpoint(&self) -> Result<(), sqlx::Error> {
        if let Db::Sqlite { maintenance, .. } = self {
            let pool = one_connection(maintenance).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&pool)
                .await?;
            pool.close().await;
        }
        Ok(())
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        match self {
            Db::Postgres(pool, _, pipes) => {
                pipes.close();
                pool.close().await
            }
            Db::Sqlite { reader, .. } => reader.close().await,
        }
    }
}

/// A sqlx write transaction on SQLite, on a connection of its own: `BEGIN
/// IMMEDIATE` waits for the write lock as long as the busy timeout allows
/// (5 s), then fails as `SQLITE_BUSY`. The connection closes when the
/// transaction ends.
async fn sqlite_write(
    options: &SqliteConnectOptions,
    opened: &std::sync::atomic::AtomicU64,
) -> Result<Tx, sqlx::Error> {
    opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let pool = one_connection(options).await?;
    // The transaction keeps the pool (and its one connection) alive; both
    // go when it ends.
    Ok(Tx::new(TxConn::Sqlite(
        pool.begin_with("BEGIN IMMEDIATE").await?,
    )))
}

/// A pool of exactly one SQLite connection, opened now: what a transaction
/// of sqlx's needs to own its connection.
async fn one_connection(options: &SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone())
        .await
}

/// `BEGIN` and the scope in one round trip (simple-query protocol allows
/// two statements). `role` is the GUC behind `SET ROLE`: setting it
/// transaction-locally drops every privilege of the connection's own user
/// (even a superuser's) until the transaction ends. The values are UUIDs
/// formatted here, never client text, so inlining them is safe.
pub(crate) fn pg_begin(role: &str, scope: Scope, read_only: bool) -> sqlx::AssertSqlSafe<String> {
    let id = |u: Option<Uuid>| u.map(|u| u.hyphenated().to_string()).unwrap_or_default();
    sqlx::AssertSqlSafe(format!(
        "BEGIN{}; SELECT set_config('role', '{role}', true), \
         set_config('app.user_id', '{}', true), set_config('app.org_id', '{}', true)",
        if read_only { " READ ONLY" } else { "" },
        id(scope.user_id),
        id(scope.org_id),
    ))
}

impl Tx {
    fn new(conn: TxConn) -> Self {
        Self {
            conn,
            changed: change::Touches::default(),
            after: None,
            committed_events: Vec::new(),
            deferred: uow::Deferred::default(),
        }
    }

    /// The backend this transaction runs on.
    pub fn backend(&self) -> Backend {
        match self.conn {
            TxConn::Postgres(_) => Backend::Postgres,
            TxConn::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Notes that this transaction changed `org_id`, in `board` only when
    /// given (the audit log calls it for every recorded change, with the
    /// board of its event).
    pub fn changed(&mut self, org_id: Uuid, board: Option<Uuid>) {
        self.changed.note((org_id, board), None);
    }

    /// Enters an organization inside an open transaction (after creating it,
    /// or after resolving it for the user).
    pub async fn set_org(&mut self, org_id: Uuid) -> Result<(), sqlx::Error> {
        // Deferred writes belong to the tenant they were written in.
        self.flush_sqlx().await?;
        if let TxConn::Postgres(tx) = &mut self.conn {
            sqlx::query("SELECT set_config('app.org_id', $1, true)")
                .bind(org_id.to_string())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Sends the deferred writes, with sqlx's error.
    async fn flush_sqlx(&mut self) -> Result<(), sqlx::Error> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        self.flush().await.map_err(|e| match e {
            uow::DbError::Sqlx(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        })
    }

    /// Sends the deferred writes, commits, then runs the after-commit hook
    /// (if any organization changed), so the change is visible to readers
    /// and subscribers before the caller acknowledges it.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.flush_sqlx().await?;
        match self.conn {
            TxConn::Postgres(tx) => tx.commit().await?,
            TxConn::Sqlite(tx) => tx.commit().await?,
        }
        if let Some(hook) = &self.after
            && !self.changed.is_empty()
        {
            hook.committed(&self.changed, self.committed_events).await;
        }
        Ok(())
    }
}

/// Creates `dir` (and its parents) readable by this user only, and takes
/// group and other access away from it if it exists: it holds the database
/// (password hashes), the signing secret and the mail outbox (invite
/// links).
pub fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mode = std::fs::metadata(dir)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// A file beside the SQLite database `path`: its name with `suffix` added
/// (`-wal`, `-shm`).
pub fn sidecar(path: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(suffix);
    path.with_file_name(name)
}

/// Makes the SQLite file (and its `-wal`/`-shm` companions, which SQLite
/// creates with the database file's mode) readable by this user only:
/// created empty with mode 0600 before SQLite opens it, or tightened if it
/// exists (files of older versions were 0644).
fn private_database_file(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str() == ":memory:" || path.as_os_str().is_empty() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        for suffix in ["", "-wal", "-shm"] {
            let p = sidecar(path, suffix);
            if let Ok(meta) = std::fs::metadata(&p)
                && meta.permissions().mode() & 0o077 != 0
            {
                let mode = meta.permissions().mode() & 0o700;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(())
}

/// ` FOR NO KEY UPDATE` on PostgreSQL (locks the rows a statement reads
/// against concurrent writers without blocking foreign-key checks); nothing
/// on SQLite, whose single writer is alone.
pub fn lock_suffix(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => " FOR NO KEY UPDATE",
        Backend::Sqlite => "",
    }
}

/// `$first, $first+1, …` for `n` values (both drivers read `$n`).
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// True when the error means "busy, try again": SQLite's lock timeout, or a
/// PostgreSQL serialization failure or deadlock.
pub fn is_busy(err: &sqlx::Error) -> bool {
    let Some(db) = err.as_database_error() else {
        return false;
    };
    matches!(
        db.code().as_deref(),
        Some("5" | "6" | "261" | "517" | "40001" | "40P01")
    )
}

/// When `err` is a unique-constraint violation, the constraint's name (on
/// PostgreSQL) or the message naming its columns (on SQLite), so callers can
/// turn it into a field error.
pub fn unique_violation(err: &sqlx::Error) -> Option<String> {
    let db = err.as_database_error()?;
    if !db.is_unique_violation() {
        return None;
    }
    Some(
        db.constraint()
            .map(str::to_owned)
            .unwrap_or_else(|| db.message().to_owned()),
    )
}

/// Current time, truncated to microseconds (what PostgreSQL keeps) so a value
/// reads back exactly as written on both backends.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    micros(chrono::Utc::now())
}

/// `t` truncated to microseconds (what PostgreSQL keeps): a time a client
/// sends (a due date) is stored, answered and read back the same on both
/// backends.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
