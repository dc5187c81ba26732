//! A PostgreSQL unit of work that sends its `BEGIN` with its first round
//! trip's worth of work ([`Unit`]).
//!
//! A task write on PostgreSQL used to spend six round trips: `BEGIN` with
//! the role and user, the membership statement (which enters the tenant),
//! a `FOR NO KEY UPDATE` on the row to change, the reads the write needs,
//! the write, `COMMIT`. Row-level security forces the order of the first
//! three (no tenant row is visible before the membership enters the
//! tenant; a row read before it is locked may be stale), and a use case
//! computes its write from its reads (an order key, an update's diff), so
//! the reads and the write cannot be one statement either.
//!
//! A [`Unit`] holds its connection without beginning. When the use case's
//! first call is [`Uow::begin_in_org`](super::uow::Uow::begin_in_org), the
//! `BEGIN` goes out as one simple-query message with everything that needs
//! no bound value: the role and user settings, then `orgboard_enter(…)`
//! (migration 0010), which sets the tenant only when the user is a member
//! of that organization and locks the rows the use case names in that
//! tenant. It runs as the caller, under row-level security, and PL/pgSQL
//! keeps its statements' plans for the connection's life (the same
//! statements sent as text were planned on every write: measured 15–35 %
//! slower creates and updates than before, despite the round trips they
//! saved). The use case's next statement (a fresh snapshot,
//! taken after the locks) then reads the membership *and* what the write
//! needs at once ([`crate::orgs::context::OrgRequest::enter_reading`]), the
//! deferred writes go in one statement, then `COMMIT`: four round trips.
//! Any other first call begins with the plain scope, exactly as
//! [`super::Db::write`] does.
//!
//! Every value in the `BEGIN` message is a UUID formatted here or an
//! organization slug made only of `[a-z0-9-]` (anything else is not a slug
//! and takes the ordinary path), so nothing a client sends is ever spliced
//! into SQL.

use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::change::{CardChange, Event, Touched};
use super::uow::{AnyRow, Arg, DbError, Lock, LockTable, OrgKey, RowRef, Uow};
use super::{APP_ROLE, AfterCommit, Backend, Scope, Tx, TxConn, pg_begin};

/// A PostgreSQL write unit whose `BEGIN` has not been sent yet, or the
/// transaction it became (see the module's documentation).
pub struct Unit {
    /// Not begun: the connection and who the unit acts for.
    idle: Option<(PoolConnection<Postgres>, Scope)>,
    /// Begun.
    tx: Option<Tx>,
    after: Option<Arc<dyn AfterCommit>>,
}

impl Unit {
    /// A unit on `conn` for `scope`, nothing sent yet.
    pub(super) fn idle(
        conn: PoolConnection<Postgres>,
        scope: Scope,
        after: Option<Arc<dyn AfterCommit>>,
    ) -> Self {
        Unit {
            idle: Some((conn, scope)),
            tx: None,
            after,
        }
    }

    /// A unit over a transaction that has begun (on SQLite: [`super::Db::write`]'s).
    pub(super) fn begun(tx: Tx) -> Self {
        Unit {
            idle: None,
            tx: Some(tx),
            after: None,
        }
    }

    /// Sends `begin` (a `BEGIN …` simple-query message) on the idle
    /// connection; the unit's transaction from here on.
    async fn open(&mut self, begin: String) -> Result<&mut Tx, DbError> {
        if let Some((conn, _)) = self.idle.take() {
            let t = Transaction::begin(
                conn,
                Some(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(begin))),
            )
            .await?;
            let mut tx = Tx::new(TxConn::Postgres(t));
            tx.after = self.after.take();
            self.tx = Some(tx);
        }
        self.tx
            .as_mut()
            .ok_or_else(|| DbError::Executor("the unit of work has ended".into()))
    }

    /// The transaction, begun with the plain scope if it was not yet.
    async fn tx(&mut self) -> Result<&mut Tx, DbError> {
        match &self.idle {
            Some((_, scope)) => {
                let begin = pg_begin(APP_ROLE, *scope, false).0;
                self.open(begin).await
            }
            None => self
                .tx
                .as_mut()
                .ok_or_else(|| DbError::Executor("the unit of work has ended".into())),
        }
    }

    /// The round trips this unit takes if it commits now: its `BEGIN`, the
    /// statements sent, the deferred writes still waiting (one statement)
    /// and `COMMIT`; 0 if nothing was ever sent.
    pub fn round_trips_to_commit(&self) -> u32 {
        match &self.tx {
            Some(tx) => 1 + tx.sent + u32::from(!tx.deferred.is_empty()) + 1,
            None => 0,
        }
    }

    /// Commits (nothing to do if no statement was ever sent: the
    /// connection goes back to the pool outside any transaction).
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.tx {
            Some(tx) => tx.commit().await,
            None => Ok(()),
        }
    }
}

/// The `BEGIN` message of a unit that enters `org` for `user` when they
/// are a member of it and locks `locks` (see the module's documentation);
/// `None` when the organization cannot be named safely without binding.
fn member_begin(scope: Scope, user: Uuid, org: &OrgKey<'_>, locks: &[Lock<'_>]) -> Option<String> {
    let (by_id, slug) = match org {
        OrgKey::Id(id) => (format!("'{}'", id.hyphenated()), "NULL".to_owned()),
        OrgKey::Slug(s)
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            ("NULL".to_owned(), format!("'{s}'"))
        }
        OrgKey::Slug(_) => return None,
    };
    // Row-level security shows a user their own memberships only.
    if scope.user_id != Some(user) || scope.org_id.is_some() {
        return None;
    }
    let ids = |table: LockTable| -> String {
        let ids: Vec<String> = locks
            .iter()
            .filter(|l| l.table == table)
            .flat_map(|l| l.ids.iter().map(|id| id.hyphenated().to_string()))
            .collect();
        format!("'{{{}}}'", ids.join(","))
    };
    let mut sql = pg_begin(APP_ROLE, scope, false).0;
    sql.push_str(&format!(
        "; SELECT orgboard_enter({by_id}::uuid, {slug}::text, '{}'::uuid, {}::uuid[], {}::uuid[])",
        user.hyphenated(),
        ids(LockTable::Lists),
        ids(LockTable::Tasks),
    ));
    Some(sql)
}

impl Uow for Unit {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn begin_in_org(
        &mut self,
        user: Uuid,
        org: &OrgKey<'_>,
        locks: &[Lock<'_>],
    ) -> Result<bool, DbError> {
        let Some((_, scope)) = &self.idle else {
            return Ok(false);
        };
        let Some(begin) = member_begin(*scope, user, org, locks) else {
            return Ok(false);
        };
        self.open(begin).await?;
        Ok(true)
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        self.tx().await?.fetch_all(sql, args).await
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<AnyRow>, DbError> {
        self.tx().await?.fetch_optional(sql, args).await
    }

    async fn fetch_each<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        each: impl FnMut(RowRef<'_, '_>) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        self.tx().await?.fetch_each(sql, args, each).await
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        self.tx().await?.execute(sql, args).await
    }

    async fn defer(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<(), DbError> {
        self.tx().await?.defer(sql, args).await
    }

    fn note(&mut self, touched: Touched, event: Option<Event>, card: Option<CardChange>) {
        // A change is noted after its writes, which began the unit.
        debug_assert!(self.tx.is_some(), "a change noted before any write");
        if let Some(tx) = &mut self.tx {
            tx.note(touched, event, card);
        }
    }
}
