//! The unit of work: one small executor trait, [`Uow`], that every write
//! use case is written against once, and that runs it unchanged
//!
//! * on PostgreSQL, over a sqlx transaction ([`Tx`]), and
//! * on SQLite, as a job of the group-commit writer ([`LiteUow`], one
//!   rusqlite connection on the writer thread; see [`super::writer`]).
//!
//! A statement is SQL written once where the dialects agree (both drivers
//! read `$1`, `$2`, …; on SQLite they are bound by name, so their order in
//! the text does not matter) and a slice of [`Arg`]s. Rows come back as
//! [`AnyRow`] and are read column by column with [`AnyRow::get`], through
//! [`Col`], which says once per type how each driver stores it (a UUID is a
//! 16-byte blob in SQLite, a time is sqlx's RFC 3339 text).
//!
//! Why this shape (measured; README "How SQLite writes"): the group-commit
//! writer runs a job synchronously on one connection — no thread hop per
//! statement, which is what made sqlx-on-SQLite writes 3–4× slower — while
//! PostgreSQL needs async I/O. A use case is an `async fn` generic over
//! `U: Uow`; on the writer every statement completes inside its `poll`, so
//! the writer drives the future with a no-op waker ([`poll_now`]) and never
//! waits. On PostgreSQL the same function is an ordinary future.
//!
//! [`Tx`] implements [`Uow`] on both backends (sqlx), so code that still
//! opens its own transaction, and the storage conformance tests, run the
//! same shared statements.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row as _;
use uuid::Uuid;

use super::change::{Event, Touched};
use super::writer::time_text;
use super::{Backend, Tx, TxConn, WriteCtx};

/// A storage failure: the driver's error, or a value that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// From sqlx (PostgreSQL, SQLite reads).
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    /// From rusqlite (the SQLite writer).
    #[error(transparent)]
    Lite(#[from] rusqlite::Error),
    /// A column that does not hold what its reader expects.
    #[error("cannot decode column {0}: {1}")]
    Decode(usize, String),
}

impl DbError {
    /// True for "busy, try again" (SQLite's lock timeout, a PostgreSQL
    /// serialization failure or deadlock).
    pub fn is_busy(&self) -> bool {
        match self {
            DbError::Sqlx(e) => super::is_busy(e),
            DbError::Lite(e) => super::writer::is_busy(e),
            DbError::Decode(..) => false,
        }
    }

    /// True when a unique constraint refused the statement.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlx(e) => super::unique_violation(e).is_some(),
            DbError::Lite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            _ => false,
        }
    }
}

/// One bound value. `None` binds a typed `NULL` (PostgreSQL wants the type).
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// `uuid` (a 16-byte blob in SQLite).
    Uuid(Option<Uuid>),
    /// `text`.
    Text(Option<&'a str>),
    /// `smallint`.
    I16(i16),
    /// `integer`.
    I32(Option<i32>),
    /// `bigint`.
    I64(Option<i64>),
    /// `boolean`.
    Bool(bool),
    /// `timestamptz` (RFC 3339 text in SQLite, as sqlx writes it).
    Time(Option<DateTime<Utc>>),
    /// `jsonb` (text in SQLite).
    Json(&'a Value),
    /// `bytea` (a blob in SQLite).
    Bytes(&'a [u8]),
}

impl From<Uuid> for Arg<'_> {
    fn from(v: Uuid) -> Self {
        Arg::Uuid(Some(v))
    }
}
impl From<Option<Uuid>> for Arg<'_> {
    fn from(v: Option<Uuid>) -> Self {
        Arg::Uuid(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}
impl From<i16> for Arg<'_> {
    fn from(v: i16) -> Self {
        Arg::I16(v)
    }
}
impl From<i32> for Arg<'_> {
    fn from(v: i32) -> Self {
        Arg::I32(Some(v))
    }
}
impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::I64(Some(v))
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl From<DateTime<Utc>> for Arg<'_> {
    fn from(v: DateTime<Utc>) -> Self {
        Arg::Time(Some(v))
    }
}
impl From<Option<DateTime<Utc>>> for Arg<'_> {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Arg::Time(v)
    }
}
impl<'a> From<&'a Value> for Arg<'a> {
    fn from(v: &'a Value) -> Self {
        Arg::Json(v)
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Arg::Bytes(v)
    }
}

/// `[a, b, c]` as `[Arg; 3]`: `args![org_id, id, "text"]`.
#[macro_export]
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        [$($crate::db::uow::Arg::from($a)),*]
    };
}

/// A row of any backend.
pub enum AnyRow {
    /// PostgreSQL.
    Pg(sqlx::postgres::PgRow),
    /// SQLite through sqlx.
    Sqlx(sqlx::sqlite::SqliteRow),
    /// SQLite on the writer (values copied out of the statement).
    Lite(Vec<rusqlite::types::Value>),
}

impl AnyRow {
    /// Column `i` (from 0) as a `T`.
    pub fn get<T: Col>(&self, i: usize) -> Result<T, DbError> {
        match self {
            AnyRow::Pg(r) => T::pg(r, i).map_err(DbError::from),
            AnyRow::Sqlx(r) => T::sqlx_lite(r, i).map_err(DbError::from),
            AnyRow::Lite(v) => {
                let value = v
                    .get(i)
                    .ok_or_else(|| DbError::Decode(i, "no such column".into()))?;
                T::lite(value).map_err(|e| DbError::Decode(i, e))
            }
        }
    }
}

/// How each backend stores a column type.
pub trait Col: Sized {
    /// From a PostgreSQL row.
    fn pg(row: &sqlx::postgres::PgRow, i: usize) -> Result<Self, sqlx::Error>;
    /// From a sqlx SQLite row.
    fn sqlx_lite(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Self, sqlx::Error>;
    /// From a value of the SQLite writer.
    fn lite(v: &rusqlite::types::Value) -> Result<Self, String>;
}

use rusqlite::types::Value as LV;

macro_rules! col_via_sqlx {
    ($t:ty, |$v:ident| $lite:expr) => {
        impl Col for $t {
            fn pg(row: &sqlx::postgres::PgRow, i: usize) -> Result<Self, sqlx::Error> {
                row.try_get(i)
            }
            fn sqlx_lite(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Self, sqlx::Error> {
                row.try_get(i)
            }
            fn lite($v: &LV) -> Result<Self, String> {
                $lite
            }
        }
        impl Col for Option<$t> {
            fn pg(row: &sqlx::postgres::PgRow, i: usize) -> Result<Self, sqlx::Error> {
                row.try_get(i)
            }
            fn sqlx_lite(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Self, sqlx::Error> {
                row.try_get(i)
            }
            fn lite(v: &LV) -> Result<Self, String> {
                match v {
                    LV::Null => Ok(None),
                    v => <$t as Col>::lite(v).map(Some),
                }
            }
        }
    };
}

fn wrong(v: &LV, want: &str) -> String {
    format!("expected {want}, found {:?}", v.data_type())
}

col_via_sqlx!(Uuid, |v| match v {
    LV::Blob(b) => Uuid::from_slice(b).map_err(|e| e.to_string()),
    LV::Text(t) => Uuid::try_parse(t).map_err(|e| e.to_string()),
    v => Err(wrong(v, "a UUID")),
});
col_via_sqlx!(String, |v| match v {
    LV::Text(t) => Ok(t.clone()),
    v => Err(wrong(v, "text")),
});
col_via_sqlx!(i64, |v| match v {
    LV::Integer(n) => Ok(*n),
    v => Err(wrong(v, "an integer")),
});
col_via_sqlx!(i32, |v| match v {
    LV::Integer(n) => i32::try_from(*n).map_err(|e| e.to_string()),
    v => Err(wrong(v, "an integer")),
});
col_via_sqlx!(i16, |v| match v {
    LV::Integer(n) => i16::try_from(*n).map_err(|e| e.to_string()),
    v => Err(wrong(v, "an integer")),
});
col_via_sqlx!(bool, |v| match v {
    LV::Integer(n) => Ok(*n != 0),
    v => Err(wrong(v, "a boolean")),
});
col_via_sqlx!(Vec<u8>, |v| match v {
    LV::Blob(b) => Ok(b.clone()),
    v => Err(wrong(v, "a blob")),
});
col_via_sqlx!(DateTime<Utc>, |v| match v {
    LV::Text(t) => DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string()),
    v => Err(wrong(v, "a time")),
});

/// Where a unit of work runs: statements, and what it changed.
///
/// Every method's future is `Send` so a use case generic over `U: Uow`
/// is `Send` on PostgreSQL (axum handlers need it).
pub trait Uow: Send {
    /// The backend (for the few statements the dialects disagree on).
    fn backend(&self) -> Backend;

    /// Every row of a statement.
    fn fetch_all(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<AnyRow>, DbError>> + Send;

    /// The first row of a statement, if any.
    fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Option<AnyRow>, DbError>> + Send;

    /// Runs a statement; the number of rows it changed.
    fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64, DbError>> + Send;

    /// The first column of the first row of a statement, if any row.
    fn fetch_value<T: Col + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Option<T>, DbError>> + Send {
        async move {
            match self.fetch_optional(sql, args).await? {
                Some(row) => Ok(Some(row.get(0)?)),
                None => Ok(None),
            }
        }
    }

    /// Notes that the unit changed `touched` and, on SQLite, numbered
    /// `event` (published after commit); called by
    /// [`super::change::record`] only.
    fn note(&mut self, touched: Touched, event: Option<Event>);
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match *a {
                Arg::Uuid(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::I16(v) => q.bind(v),
                Arg::I32(v) => q.bind(v),
                Arg::I64(v) => q.bind(v),
                Arg::Bool(v) => q.bind(v),
                Arg::Time(v) => q.bind(v),
                Arg::Json(v) => q.bind(sqlx::types::Json(v)),
                Arg::Bytes(v) => q.bind(v),
            };
        }
        q
    }};
}

impl Uow for Tx {
    fn backend(&self) -> Backend {
        Tx::backend(self)
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(match &mut self.conn {
            TxConn::Postgres(c) => bind_all!(sqlx::query(sql), args)
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(AnyRow::Pg)
                .collect(),
            TxConn::Sqlite(c) => bind_all!(sqlx::query(sql), args)
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(AnyRow::Sqlx)
                .collect(),
        })
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<AnyRow>, DbError> {
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(match &mut self.conn {
            TxConn::Postgres(c) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(&mut **c)
                .await?
                .map(AnyRow::Pg),
            TxConn::Sqlite(c) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(&mut **c)
                .await?
                .map(AnyRow::Sqlx),
        })
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(match &mut self.conn {
            TxConn::Postgres(c) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            TxConn::Sqlite(c) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
        })
    }

    fn note(&mut self, (org, board): Touched, event: Option<Event>) {
        self.changed(org, board);
        self.committed_events.extend(event);
    }
}

/// A job of SQLite's group-commit writer as a [`Uow`].
pub struct LiteUow<'w, 'c> {
    ctx: &'w mut WriteCtx<'c>,
}

impl<'w, 'c> LiteUow<'w, 'c> {
    /// The unit of work of a writer job.
    pub fn new(ctx: &'w mut WriteCtx<'c>) -> Self {
        Self { ctx }
    }
}

/// `$1` … `$64`, the names SQLite gives numbered parameters.
const NAMES: [&str; 64] = [
    "$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12", "$13", "$14", "$15",
    "$16", "$17", "$18", "$19", "$20", "$21", "$22", "$23", "$24", "$25", "$26", "$27", "$28",
    "$29", "$30", "$31", "$32", "$33", "$34", "$35", "$36", "$37", "$38", "$39", "$40", "$41",
    "$42", "$43", "$44", "$45", "$46", "$47", "$48", "$49", "$50", "$51", "$52", "$53", "$54",
    "$55", "$56", "$57", "$58", "$59", "$60", "$61", "$62", "$63", "$64",
];

fn bind_lite(stmt: &mut rusqlite::CachedStatement<'_>, args: &[Arg<'_>]) -> rusqlite::Result<()> {
    for (i, a) in args.iter().enumerate() {
        let owned;
        let name: &str = match NAMES.get(i) {
            Some(n) => n,
            None => {
                owned = format!("${}", i + 1);
                &owned
            }
        };
        // Most statements name their parameters in order: `$n` is the n-th
        // (no lookup, which would copy the name into a C string). Otherwise
        // look the name up; a parameter the statement does not use is not
        // bound (as sqlx, which binds by number, would accept).
        let idx = if stmt.parameter_name(i + 1) == Some(name) {
            i + 1
        } else {
            match stmt.parameter_index(name)? {
                Some(idx) => idx,
                None => continue,
            }
        };
        match *a {
            Arg::Uuid(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::Text(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::I16(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::I32(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::I64(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::Bool(v) => stmt.raw_bind_parameter(idx, v)?,
            Arg::Time(v) => stmt.raw_bind_parameter(idx, v.map(time_text))?,
            Arg::Json(v) => stmt.raw_bind_parameter(idx, v.to_string())?,
            Arg::Bytes(v) => stmt.raw_bind_parameter(idx, v)?,
        }
    }
    Ok(())
}

impl LiteUow<'_, '_> {
    fn rows(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        first_only: bool,
    ) -> Result<Vec<AnyRow>, DbError> {
        let mut stmt = self.ctx.conn.prepare_cached(sql)?;
        stmt.clear_bindings();
        bind_lite(&mut stmt, args)?;
        let n = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(n);
            for i in 0..n {
                values.push(r.get::<_, LV>(i)?);
            }
            out.push(AnyRow::Lite(values));
            if first_only {
                break;
            }
        }
        Ok(out)
    }
}

impl Uow for LiteUow<'_, '_> {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        self.rows(sql, args, false)
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<AnyRow>, DbError> {
        Ok(self.rows(sql, args, true)?.pop())
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        let mut stmt = self.ctx.conn.prepare_cached(sql)?;
        stmt.clear_bindings();
        bind_lite(&mut stmt, args)?;
        Ok(stmt.raw_execute()? as u64)
    }

    fn note(&mut self, touched: Touched, event: Option<Event>) {
        self.ctx.note(touched, event);
    }
}

/// Drives `fut` to completion without waiting: on the SQLite writer every
/// statement of a use case completes inside its `poll`, so one poll
/// finishes it. `None` if it would wait (a bug: something in the use case
/// awaited real I/O on the writer thread).
pub fn poll_now<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Runs a use case as one unit of work and answers once it has committed:
/// `unit!(db, scope, |u| tasks::write::create(u, &org, …))`.
///
/// On SQLite the body runs as a job of the group-commit writer (captured
/// values are moved into the job); on PostgreSQL in a write transaction for
/// `scope`, committed when the body succeeds. Either way the after-commit
/// work runs before the answer (see [`super::Db::set_after_commit`]), and an
/// error rolls back everything the body did.
#[macro_export]
macro_rules! unit {
    ($db:expr, $scope:expr, |$u:ident| $body:expr) => {{
        let db: &$crate::db::Db = &$db;
        match db.sqlite_writer() {
            Some(writer) => {
                writer
                    .run(move |ctx| {
                        let mut lite = $crate::db::uow::LiteUow::new(ctx);
                        let $u = &mut lite;
                        $crate::db::uow::poll_now($body).unwrap_or_else(|| {
                            Err($crate::error::ApiError::internal(::anyhow::anyhow!(
                                "a writer job waited for I/O"
                            )))
                        })
                    })
                    .await
            }
            None => {
                let mut tx = db.write($scope).await?;
                let out = {
                    let $u = &mut tx;
                    $body.await
                };
                match out {
                    Ok(v) => {
                        tx.commit().await?;
                        Ok(v)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }};
}
