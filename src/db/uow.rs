//! The unit of work: one small executor trait, [`Uow`], that every write
//! use case is written against once, and that runs it unchanged
//!
//! * on PostgreSQL, over tokio-postgres, pipelined ([`super::pg::PgUnit`];
//!   [`Tx`], a sqlx transaction, for code that opens its own), and
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

use std::borrow::Cow;
use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::Row as _;
use uuid::Uuid;

use super::change::{CardChange, Event, Touched};
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
    /// From tokio-postgres (PostgreSQL's units of work, [`super::pg`]).
    #[error(transparent)]
    Pg(#[from] tokio_postgres::Error),
    /// No connection came free in time.
    #[error("timed out waiting for a database connection")]
    PoolTimedOut,
    /// A column that does not hold what its reader expects.
    #[error("cannot decode column {0}: {1}")]
    Decode(usize, String),
    /// The executor cannot run this (a write on a read connection, a read
    /// that waited for I/O on a blocking thread, a closed or failed pool).
    #[error("{0}")]
    Executor(String),
}

impl DbError {
    /// True when a unique constraint refused the statement.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlx(e) => super::unique_violation(e).is_some(),
            DbError::Pg(e) => e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
            DbError::Lite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            _ => false,
        }
    }
}

/// How a request names its organization: by id or by slug.
#[derive(Debug, Clone, Copy)]
pub enum OrgKey<'a> {
    /// By id.
    Id(Uuid),
    /// By slug.
    Slug(&'a str),
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
    /// `date` (`YYYY-MM-DD` text in SQLite, as sqlx writes it).
    Date(NaiveDate),
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
impl From<NaiveDate> for Arg<'_> {
    fn from(v: NaiveDate) -> Self {
        Arg::Date(v)
    }
}

/// An owned [`Arg`], for statements that wait to be sent ([`Uow::defer`]).
#[derive(Debug, Clone)]
pub enum Val {
    /// `uuid`.
    Uuid(Option<Uuid>),
    /// `text`.
    Text(Option<String>),
    /// `smallint`.
    I16(i16),
    /// `integer`.
    I32(Option<i32>),
    /// `bigint`.
    I64(Option<i64>),
    /// `boolean`.
    Bool(bool),
    /// `timestamptz`.
    Time(Option<DateTime<Utc>>),
    /// `jsonb`.
    Json(Value),
    /// `bytea`.
    Bytes(Vec<u8>),
    /// `date`.
    Date(NaiveDate),
}

impl From<&Arg<'_>> for Val {
    fn from(a: &Arg<'_>) -> Self {
        match *a {
            Arg::Uuid(v) => Val::Uuid(v),
            Arg::Text(v) => Val::Text(v.map(str::to_owned)),
            Arg::I16(v) => Val::I16(v),
            Arg::I32(v) => Val::I32(v),
            Arg::I64(v) => Val::I64(v),
            Arg::Bool(v) => Val::Bool(v),
            Arg::Time(v) => Val::Time(v),
            Arg::Json(v) => Val::Json(v.clone()),
            Arg::Bytes(v) => Val::Bytes(v.to_vec()),
            Arg::Date(v) => Val::Date(v),
        }
    }
}

impl<'a> From<&'a Val> for Arg<'a> {
    fn from(v: &'a Val) -> Self {
        match v {
            Val::Uuid(v) => Arg::Uuid(*v),
            Val::Text(v) => Arg::Text(v.as_deref()),
            Val::I16(v) => Arg::I16(*v),
            Val::I32(v) => Arg::I32(*v),
            Val::I64(v) => Arg::I64(*v),
            Val::Bool(v) => Arg::Bool(*v),
            Val::Time(v) => Arg::Time(*v),
            Val::Json(v) => Arg::Json(v),
            Val::Bytes(v) => Arg::Bytes(v),
            Val::Date(v) => Arg::Date(*v),
        }
    }
}

/// Writes waiting to be sent, PostgreSQL only (see [`Uow::defer`]).
///
/// A single-row `INSERT … VALUES (…)` joins an earlier waiting one with the
/// same text as one more row of it, so rows of one table keep the order
/// they were written in (the parts of one statement run in no set order,
/// but the rows of one `VALUES` list are inserted in order: two events of
/// one change get their sequence numbers in the order they happened).
#[derive(Debug, Default)]
pub struct Deferred {
    statements: Vec<Waiting>,
}

/// (text, its one `VALUES` tuple when it is a single-row insert, the extra
/// tuples merged into it, values).
type Waiting = (String, Option<String>, Vec<String>, Vec<Val>);

/// The `(…)` after the last `VALUES ` of a single-row insert, if `sql` is
/// one (nothing after the tuple, one tuple).
fn single_row_tuple(sql: &str) -> Option<&str> {
    if !sql.starts_with("INSERT INTO ") {
        return None;
    }
    let at = sql.rfind("VALUES (")?;
    let tuple = &sql[at + 7..];
    (tuple.ends_with(')') && tuple.matches('(').count() == 1).then_some(tuple)
}

impl Deferred {
    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    pub(super) fn push(&mut self, sql: &str, args: &[Arg<'_>]) {
        let vals: Vec<Val> = args.iter().map(Val::from).collect();
        if let Some(tuple) = single_row_tuple(sql)
            && let Some((_, _, extra, have)) = self
                .statements
                .iter_mut()
                .find(|(text, t, _, _)| t.is_some() && text == sql)
        {
            extra.push(renumber(tuple, have.len()));
            have.extend(vals);
            return;
        }
        self.statements.push((
            sql.to_owned(),
            single_row_tuple(sql).map(str::to_owned),
            Vec::new(),
            vals,
        ));
    }

    /// Everything waiting as one statement — the last one, with the others
    /// as data-modifying `WITH` parts before it, their `$n` renumbered —
    /// and its values; `None` when nothing waits.
    pub(super) fn take(&mut self) -> Option<(String, Vec<Val>)> {
        let statements: Vec<(String, Vec<Val>)> = std::mem::take(&mut self.statements)
            .into_iter()
            .map(|(mut text, _, extra, vals)| {
                for tuple in extra {
                    text.push_str(", ");
                    text.push_str(&tuple);
                }
                (text, vals)
            })
            .collect();
        let mut statements = statements;
        if statements.len() <= 1 {
            return statements.pop();
        }
        let mut sql = String::from("WITH ");
        let mut vals = Vec::new();
        let last = statements.len() - 1;
        for (i, (text, args)) in statements.into_iter().enumerate() {
            let renumbered = renumber(&text, vals.len());
            if i < last {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("d{i} AS ({renumbered})"));
            } else {
                sql.push(' ');
                sql.push_str(&renumbered);
            }
            vals.extend(args);
        }
        Some((sql, vals))
    }
}

/// `sql` with every `$n` turned into `$(n + by)` (orgboard's statements
/// have no `$` inside literals).
fn renumber(sql: &str, by: usize) -> String {
    if by == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut n = 0usize;
        let mut digits = false;
        while let Some(&(_, d)) = chars.peek() {
            match d.to_digit(10) {
                Some(v) => {
                    n = n * 10 + v as usize;
                    digits = true;
                    chars.next();
                }
                None => break,
            }
        }
        if digits {
            out.push_str(&(n + by).to_string());
        }
    }
    out
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
    /// PostgreSQL through sqlx.
    Pg(sqlx::postgres::PgRow),
    /// PostgreSQL through tokio-postgres ([`super::pg`]).
    Tpg(tokio_postgres::Row),
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
            AnyRow::Tpg(r) => T::tpg(r, i).map_err(|e| DbError::Decode(i, e.to_string())),
            AnyRow::Sqlx(r) => T::sqlx_lite(r, i).map_err(DbError::from),
            AnyRow::Lite(v) => {
                let value = v
                    .get(i)
                    .ok_or_else(|| DbError::Decode(i, "no such column".into()))?;
                T::lite(value.into()).map_err(|e| DbError::Decode(i, e))
            }
        }
    }
}

/// A row being read, of any backend: an [`AnyRow`], or a row of a
/// rusqlite statement read in place (no value copied out of SQLite; see
/// [`Uow::fetch_each`]).
#[derive(Clone, Copy)]
pub enum RowRef<'a, 's> {
    /// A row already taken from the driver.
    Any(&'a AnyRow),
    /// The current row of a rusqlite statement.
    Lite(&'a rusqlite::Row<'s>),
}

impl<'a> From<&'a AnyRow> for RowRef<'a, 'static> {
    fn from(r: &'a AnyRow) -> Self {
        RowRef::Any(r)
    }
}

impl<'a> RowRef<'a, '_> {
    /// Column `i` (from 0) as a `T`.
    pub fn get<T: Col>(&self, i: usize) -> Result<T, DbError> {
        match self {
            RowRef::Any(r) => r.get(i),
            RowRef::Lite(r) => T::lite(r.get_ref(i)?).map_err(|e| DbError::Decode(i, e)),
        }
    }

    /// Text column `i`, borrowed from the row where the driver allows it
    /// (rusqlite rows read in place, PostgreSQL rows), else copied.
    pub fn text(&self, i: usize) -> Result<Cow<'a, str>, DbError> {
        match *self {
            RowRef::Lite(r) => match r.get_ref(i)? {
                LV::Text(t) => utf8(t).map(Cow::Borrowed),
                v => Err(wrong(v, "text")),
            }
            .map_err(|e| DbError::Decode(i, e)),
            RowRef::Any(AnyRow::Pg(r)) => Ok(Cow::Borrowed(r.try_get::<&str, _>(i)?)),
            RowRef::Any(AnyRow::Tpg(r)) => r
                .try_get::<_, &str>(i)
                .map(Cow::Borrowed)
                .map_err(|e| DbError::Decode(i, e.to_string())),
            RowRef::Any(r) => r.get::<String>(i).map(Cow::Owned),
        }
    }

    /// Text column `i` that may be `NULL` (as [`Self::text`]).
    pub fn opt_text(&self, i: usize) -> Result<Option<Cow<'a, str>>, DbError> {
        match *self {
            RowRef::Lite(r) => match r.get_ref(i)? {
                LV::Null => Ok(None),
                _ => self.text(i).map(Some),
            },
            RowRef::Any(AnyRow::Pg(r)) => Ok(r.try_get::<Option<&str>, _>(i)?.map(Cow::Borrowed)),
            RowRef::Any(AnyRow::Tpg(r)) => r
                .try_get::<_, Option<&str>>(i)
                .map(|t| t.map(Cow::Borrowed))
                .map_err(|e| DbError::Decode(i, e.to_string())),
            RowRef::Any(r) => Ok(r.get::<Option<String>>(i)?.map(Cow::Owned)),
        }
    }

    /// Time column `i` as the row holds it: on a rusqlite row read in place,
    /// SQLite's text (borrowed), else the decoded value; `None` for NULL.
    pub fn time(&self, i: usize) -> Result<Option<RawTime<'a>>, DbError> {
        match *self {
            RowRef::Lite(r) => match r.get_ref(i)? {
                LV::Null => Ok(None),
                _ => self.text(i).map(|t| Some(RawTime::Text(t))),
            },
            RowRef::Any(r) => Ok(r.get::<Option<DateTime<Utc>>>(i)?.map(RawTime::Value)),
        }
    }
}

/// A time column as a row holds it ([`RowRef::time`]).
pub enum RawTime<'a> {
    /// SQLite's text (RFC 3339; see [`crate::db::writer::time_text`]).
    Text(Cow<'a, str>),
    /// A decoded value.
    Value(DateTime<Utc>),
}

/// A time as SQLite keeps it: RFC 3339, or with a space before the time
/// (as SQLite's own functions write it).
pub fn parse_time(t: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| e.to_string())
}

/// How each backend stores a column type.
pub trait Col: Sized {
    /// From a PostgreSQL row read by sqlx.
    fn pg(row: &sqlx::postgres::PgRow, i: usize) -> Result<Self, sqlx::Error>;
    /// From a PostgreSQL row read by tokio-postgres.
    fn tpg(row: &tokio_postgres::Row, i: usize) -> Result<Self, tokio_postgres::Error>;
    /// From a sqlx SQLite row.
    fn sqlx_lite(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Self, sqlx::Error>;
    /// From a rusqlite value (the writer, the rusqlite readers).
    fn lite(v: LV<'_>) -> Result<Self, String>;
}

use rusqlite::types::ValueRef as LV;

macro_rules! col_via_sqlx {
    ($t:ty, |$v:ident| $lite:expr) => {
        impl Col for $t {
            fn pg(row: &sqlx::postgres::PgRow, i: usize) -> Result<Self, sqlx::Error> {
                row.try_get(i)
            }
            fn tpg(row: &tokio_postgres::Row, i: usize) -> Result<Self, tokio_postgres::Error> {
                row.try_get(i)
            }
            fn sqlx_lite(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Self, sqlx::Error> {
                row.try_get(i)
            }
            fn lite($v: LV<'_>) -> Result<Self, String> {
                $lite
            }
        }
        impl Col for Option<$t> {
            fn pg(row: &sqlx::postgres::PgRow, i: usize) -> Result<Self, sqlx::Error> {
                row.try_get(i)
            }
            fn tpg(row: &tokio_postgres::Row, i: usize) -> Result<Self, tokio_postgres::Error> {
                row.try_get(i)
            }
            fn sqlx_lite(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Self, sqlx::Error> {
                row.try_get(i)
            }
            fn lite(v: LV<'_>) -> Result<Self, String> {
                match v {
                    LV::Null => Ok(None),
                    v => <$t as Col>::lite(v).map(Some),
                }
            }
        }
    };
}

fn wrong(v: LV<'_>, want: &str) -> String {
    format!("expected {want}, found {:?}", v.data_type())
}

/// Text of a SQLite value.
fn utf8(t: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(t).map_err(|e| e.to_string())
}

col_via_sqlx!(Uuid, |v| match v {
    LV::Blob(b) => Uuid::from_slice(b).map_err(|e| e.to_string()),
    LV::Text(t) => Uuid::try_parse_ascii(t).map_err(|e| e.to_string()),
    v => Err(wrong(v, "a UUID")),
});
col_via_sqlx!(String, |v| match v {
    LV::Text(t) => utf8(t).map(str::to_owned),
    v => Err(wrong(v, "text")),
});
col_via_sqlx!(i64, |v| match v {
    LV::Integer(n) => Ok(n),
    v => Err(wrong(v, "an integer")),
});
col_via_sqlx!(i32, |v| match v {
    LV::Integer(n) => i32::try_from(n).map_err(|e| e.to_string()),
    v => Err(wrong(v, "an integer")),
});
col_via_sqlx!(i16, |v| match v {
    LV::Integer(n) => i16::try_from(n).map_err(|e| e.to_string()),
    v => Err(wrong(v, "an integer")),
});
col_via_sqlx!(bool, |v| match v {
    LV::Integer(n) => Ok(n != 0),
    v => Err(wrong(v, "a boolean")),
});
col_via_sqlx!(Vec<u8>, |v| match v {
    LV::Blob(b) => Ok(b.to_vec()),
    v => Err(wrong(v, "a blob")),
});
col_via_sqlx!(DateTime<Utc>, |v| match v {
    LV::Text(t) => parse_time(utf8(t)?),
    v => Err(wrong(v, "a time")),
});

/// `jsonb` on PostgreSQL, JSON text on SQLite.
impl Col for Value {
    fn pg(row: &sqlx::postgres::PgRow, i: usize) -> Result<Self, sqlx::Error> {
        row.try_get::<sqlx::types::Json<Value>, _>(i).map(|j| j.0)
    }
    fn tpg(row: &tokio_postgres::Row, i: usize) -> Result<Self, tokio_postgres::Error> {
        row.try_get(i)
    }
    fn sqlx_lite(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Self, sqlx::Error> {
        row.try_get::<sqlx::types::Json<Value>, _>(i).map(|j| j.0)
    }
    fn lite(v: LV<'_>) -> Result<Self, String> {
        match v {
            LV::Text(t) => serde_json::from_slice(t).map_err(|e| e.to_string()),
            v => Err(wrong(v, "JSON text")),
        }
    }
}

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

    /// Calls `each` with every row of a statement as it is read, without
    /// collecting them (a board view writes its JSON this way). On the
    /// rusqlite executors the row is read in place, no value copied.
    fn fetch_each<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        mut each: impl FnMut(RowRef<'_, '_>) -> Result<(), E> + Send,
    ) -> impl Future<Output = Result<(), E>> + Send {
        async move {
            for row in self.fetch_all(sql, args).await? {
                each(RowRef::Any(&row))?;
            }
            Ok(())
        }
    }

    /// Runs a statement; the number of rows it changed.
    fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64, DbError>> + Send;

    /// A write whose result nobody reads (an `INSERT` of a new row, the
    /// audit and event rows, …). On PostgreSQL it waits and is sent with the
    /// other waiting writes as **one** statement (data-modifying `WITH`
    /// parts) before the next read or at commit, saving a round trip per
    /// write; its errors surface there. The parts of one statement see the
    /// same snapshot and run in no set order, so a deferred write must not
    /// depend on another waiting one (a `DELETE` and an `INSERT` of the same
    /// key: run the `DELETE` with [`Uow::execute`]). On SQLite it runs at
    /// once (no round trip to save).
    fn defer(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<(), DbError>> + Send;

    /// Begins the unit inside organization `org` for `user` before its
    /// first statement. True when it did: the next statement may read the
    /// organization's rows, and must check the membership itself (it
    /// decides: on PostgreSQL the tenant may have been set from the path
    /// alone, see [`super::unit::member_begin`]). False when the unit had
    /// already begun: the caller enters with a statement of its own
    /// ([`crate::orgs::context::OrgRequest::enter`]). On PostgreSQL this
    /// is how a [`super::unit::Unit`] saves two round trips; SQLite's
    /// writer is alone and has no row-level security, so there is nothing
    /// to do before the first statement.
    fn begin_in_org(
        &mut self,
        user: Uuid,
        org: &OrgKey<'_>,
    ) -> impl Future<Output = Result<bool, DbError>> + Send {
        // SQLite: the writer (or a sqlx write transaction, which holds the
        // write lock) is alone and there is no row-level security, so there
        // is nothing to do first. PostgreSQL: an executor that has begun
        // ([`Tx`]); only [`super::unit::Unit`] can still begin.
        let ready = self.backend() == Backend::Sqlite;
        let _ = (user, org);
        async move { Ok(ready) }
    }

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
    fn note(&mut self, touched: Touched, event: Option<Event>, card: Option<CardChange>);
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
                Arg::Date(v) => q.bind(v),
            };
        }
        q
    }};
}

impl Tx {
    /// Sends the deferred writes (PostgreSQL), as one statement.
    pub(crate) async fn flush(&mut self) -> Result<(), DbError> {
        let Some((sql, vals)) = self.deferred.take() else {
            return Ok(());
        };
        let args: Vec<Arg<'_>> = vals.iter().map(Arg::from).collect();
        if let TxConn::Postgres(c) = &mut self.conn {
            bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &args)
                .execute(&mut **c)
                .await?;
        }
        Ok(())
    }
}

impl Uow for Tx {
    fn backend(&self) -> Backend {
        Tx::backend(self)
    }

    async fn defer(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<(), DbError> {
        match self.conn {
            TxConn::Postgres(_) => {
                self.deferred.push(sql, args);
                Ok(())
            }
            TxConn::Sqlite(_) => self.execute(sql, args).await.map(|_| ()),
        }
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        self.flush().await?;
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

    async fn fetch_each<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        mut each: impl FnMut(RowRef<'_, '_>) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        use futures_util::TryStreamExt as _;
        self.flush().await?;
        let sql = sqlx::AssertSqlSafe(sql);
        match &mut self.conn {
            TxConn::Postgres(c) => {
                let mut rows = bind_all!(sqlx::query(sql), args).fetch(&mut **c);
                while let Some(row) = rows.try_next().await.map_err(DbError::from)? {
                    each(RowRef::Any(&AnyRow::Pg(row)))?;
                }
            }
            TxConn::Sqlite(c) => {
                let mut rows = bind_all!(sqlx::query(sql), args).fetch(&mut **c);
                while let Some(row) = rows.try_next().await.map_err(DbError::from)? {
                    each(RowRef::Any(&AnyRow::Sqlx(row)))?;
                }
            }
        }
        Ok(())
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<AnyRow>, DbError> {
        self.flush().await?;
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
        self.flush().await?;
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

    fn note(&mut self, touched: Touched, event: Option<Event>, card: Option<CardChange>) {
        self.changed.note(touched, card);
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
            Arg::Date(v) => stmt.raw_bind_parameter(idx, v.format("%F").to_string())?,
        }
    }
    Ok(())
}

/// Rows of a statement on a rusqlite connection, copied out (`first_only`:
/// stop after one).
fn lite_rows(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
    first_only: bool,
) -> Result<Vec<AnyRow>, DbError> {
    let mut stmt = conn.prepare_cached(sql)?;
    stmt.clear_bindings();
    bind_lite(&mut stmt, args)?;
    let n = stmt.column_count();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut values = Vec::with_capacity(n);
        for i in 0..n {
            values.push(r.get::<_, rusqlite::types::Value>(i)?);
        }
        out.push(AnyRow::Lite(values));
        if first_only {
            break;
        }
    }
    Ok(out)
}

/// Every row of a statement on a rusqlite connection, read in place.
fn lite_each<E: From<DbError>>(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
    mut each: impl FnMut(RowRef<'_, '_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut stmt = conn.prepare_cached(sql).map_err(DbError::from)?;
    stmt.clear_bindings();
    bind_lite(&mut stmt, args).map_err(DbError::from)?;
    let mut rows = stmt.raw_query();
    while let Some(r) = rows.next().map_err(DbError::from)? {
        each(RowRef::Lite(r))?;
    }
    Ok(())
}

impl Uow for LiteUow<'_, '_> {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        lite_rows(self.ctx.conn, sql, args, false)
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<AnyRow>, DbError> {
        Ok(lite_rows(self.ctx.conn, sql, args, true)?.pop())
    }

    async fn fetch_each<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        each: impl FnMut(RowRef<'_, '_>) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        lite_each(self.ctx.conn, sql, args, each)
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        let mut stmt = self.ctx.conn.prepare_cached(sql)?;
        stmt.clear_bindings();
        bind_lite(&mut stmt, args)?;
        Ok(stmt.raw_execute()? as u64)
    }

    async fn defer(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<(), DbError> {
        self.execute(sql, args).await.map(|_| ())
    }

    fn note(&mut self, touched: Touched, event: Option<Event>, card: Option<CardChange>) {
        self.ctx.note(touched, event, card);
    }
}

/// A connection of SQLite's rusqlite read pool as a [`Uow`] (see
/// [`super::Db::lite_read`]): statements run in place on the calling
/// (blocking) thread, rows are read without a copy. Writes are refused.
pub struct LiteRead<'c> {
    conn: &'c mut rusqlite::Connection,
}

impl<'c> LiteRead<'c> {
    /// Reads on `conn`.
    pub fn new(conn: &'c mut rusqlite::Connection) -> Self {
        Self { conn }
    }

    /// Runs `f` in one read transaction (one snapshot for all its
    /// statements), ended whatever `f` returns.
    pub fn snapshot<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Result<T, DbError> {
        self.conn.prepare_cached("BEGIN")?.execute([])?;
        let out = f(self);
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(out)
    }
}

impl Uow for LiteRead<'_> {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        lite_rows(self.conn, sql, args, false)
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<AnyRow>, DbError> {
        Ok(lite_rows(self.conn, sql, args, true)?.pop())
    }

    async fn fetch_each<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        each: impl FnMut(RowRef<'_, '_>) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        lite_each(self.conn, sql, args, each)
    }

    async fn execute(&mut self, _sql: &str, _args: &[Arg<'_>]) -> Result<u64, DbError> {
        Err(DbError::Executor("a read connection does not write".into()))
    }

    async fn defer(&mut self, _sql: &str, _args: &[Arg<'_>]) -> Result<(), DbError> {
        Err(DbError::Executor("a read connection does not write".into()))
    }

    fn note(&mut self, _touched: Touched, _event: Option<Event>, _card: Option<CardChange>) {}
}

/// Enters organization `org_id` for the rest of the unit of work: on
/// PostgreSQL row-level security lets the unit see that tenant's rows from
/// here on (a new organization, or one found by an invite token); SQLite
/// has no row-level security. Writes still waiting are sent first, in the
/// tenant they were written in.
pub async fn enter_tenant<U: Uow>(u: &mut U, org_id: Uuid) -> Result<(), DbError> {
    if u.backend() == Backend::Postgres {
        let id = org_id.to_string();
        u.fetch_optional(
            "SELECT set_config('app.org_id', $1, true)",
            &[Arg::Text(Some(&id))],
        )
        .await?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Waiting writes become one statement: the earlier ones as `WITH`
    /// parts, every `$n` shifted past the parameters before it.
    #[test]
    fn deferred_writes_are_one_statement_with_renumbered_parameters() {
        let mut d = Deferred::default();
        assert!(d.take().is_none());
        d.push("INSERT INTO a (x) VALUES ($1)", &crate::args![1_i64]);
        let (one, vals) = d.take().expect("one");
        assert_eq!(one, "INSERT INTO a (x) VALUES ($1)");
        assert_eq!(vals.len(), 1);
        d.push(
            "INSERT INTO a (x, y) VALUES ($1, $2)",
            &crate::args![1_i64, 2_i64],
        );
        d.push(
            "UPDATE b SET x = $2 WHERE y = $1 AND z = $10",
            &crate::args![3_i64, 4_i64],
        );
        d.push("INSERT INTO c (x) VALUES ($1)", &crate::args!["text"]);
        let (sql, vals) = d.take().expect("three");
        assert_eq!(
            sql,
            "WITH d0 AS (INSERT INTO a (x, y) VALUES ($1, $2)), \
             d1 AS (UPDATE b SET x = $4 WHERE y = $3 AND z = $12) INSERT INTO c (x) VALUES ($5)"
        );
        assert_eq!(vals.len(), 5);
        assert!(d.is_empty());
    }

    /// Single-row inserts with the same text become one multi-row insert,
    /// in the order written, wherever they were queued.
    #[test]
    fn single_row_inserts_of_one_table_keep_their_order() {
        let mut d = Deferred::default();
        let ev = "INSERT INTO events (a, b) VALUES ($1, $2)";
        d.push(ev, &crate::args![1_i64, 2_i64]);
        d.push(
            "INSERT INTO audit_log (a) VALUES ($1)",
            &crate::args![3_i64],
        );
        d.push(ev, &crate::args![4_i64, 5_i64]);
        d.push(
            "INSERT INTO t (a) VALUES ($1), ($2)",
            &crate::args![6_i64, 7_i64],
        );
        let (sql, vals) = d.take().expect("statement");
        assert_eq!(
            sql,
            "WITH d0 AS (INSERT INTO events (a, b) VALUES ($1, $2), ($3, $4)), \
             d1 AS (INSERT INTO audit_log (a) VALUES ($5)) INSERT INTO t (a) VALUES ($6), ($7)"
        );
        let ints: Vec<i64> = vals
            .iter()
            .map(|v| match v {
                Val::I64(Some(n)) => *n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ints, [1, 2, 4, 5, 3, 6, 7]);
    }
}
