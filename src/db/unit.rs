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
//! `BEGIN` becomes one simple-query message with everything that needs
//! no bound value: the role, user and tenant settings, the tenant taken
//! from the path's organization id (as every read's is). That message
//! travels with the use case's next statement, which reads the membership
//! *and* what the write needs at once, and locks the row it changes
//! (`FOR NO KEY UPDATE` in a lateral subquery joined after the
//! membership, so a non-member locks nothing and reads nothing: no row,
//! `404`) — [`crate::orgs::context::OrgRequest::enter_reading`]; the
//! deferred writes travel with `COMMIT` ([`super::pg`]): two round trips.
//! An organization named by slug is resolved by `orgboard_enter(…)`
//! (migration 0010) in the same message, which sets the tenant only for a
//! member. Any other first call begins with the plain scope, exactly as
//! [`super::Db::write`] does.
//!
//! (Until 2026-12-07 every write's `BEGIN` called `orgboard_enter` and the
//! function locked the rows: a PL/pgSQL call per write that checked the
//! same membership the reading statement checks again. Setting the tenant
//! from the path and locking in the reading statement made PostgreSQL
//! task creates 8–12 % and updates and moves 20–25 % faster over HTTP;
//! see BENCHMARKS.md.)
//!
//! Every value in the `BEGIN` message is a UUID formatted here or an
//! organization slug made only of `[a-z0-9-]` (anything else is not a slug
//! and takes the ordinary path), so nothing a client sends is ever spliced
//! into SQL.

use uuid::Uuid;

use super::change::{CardChange, Event, Touched};
use super::pg::PgUnit;
use super::uow::{AnyRow, Arg, DbError, OrgKey, RowRef, Uow};
use super::{APP_ROLE, Backend, Scope, Tx, pg_begin};

/// A write unit: on PostgreSQL one whose `BEGIN` has not been sent yet
/// (see the module's documentation); on SQLite a write transaction that
/// has begun ([`super::Db::write`]'s).
pub enum Unit {
    /// PostgreSQL.
    Pg(Box<PgUnit>),
    /// A transaction that has begun.
    Tx(Tx),
}

impl Unit {
    /// The round trips this unit takes if it commits now (PostgreSQL; see
    /// [`PgUnit::round_trips_to_commit`]); 0 for a begun transaction.
    pub fn round_trips_to_commit(&self) -> u32 {
        match self {
            Unit::Pg(u) => u.round_trips_to_commit(),
            Unit::Tx(_) => 0,
        }
    }

    /// Commits (on PostgreSQL nothing to do if nothing was ever sent).
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Unit::Pg(u) => u.commit().await,
            Unit::Tx(tx) => Ok(tx.commit().await?),
        }
    }
}

/// The `BEGIN` message of a unit that enters `org` for `user` (see the
/// module's documentation); `None` when the organization cannot be named
/// safely without binding.
///
/// By id, the tenant is set from the path, as a read's is: the use case's
/// reading statement joins the membership and decides (no row for a
/// non-member: `404`, nothing written, nothing locked — the rows a write
/// changes are locked by that statement, after the membership join; see
/// [`crate::tasks::write`]). By slug, `orgboard_enter` resolves it and sets
/// the tenant only for a member (the settings cannot name a slug).
pub(super) fn member_begin(scope: Scope, user: Uuid, org: &OrgKey<'_>) -> Option<String> {
    // Row-level security shows a user their own memberships only.
    if scope.user_id != Some(user) || scope.org_id.is_some() {
        return None;
    }
    let slug = match org {
        OrgKey::Id(id) => return Some(pg_begin(APP_ROLE, Scope::tenant(user, *id), false).0),
        OrgKey::Slug(s)
            if !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            s
        }
        OrgKey::Slug(_) => return None,
    };
    let mut sql = pg_begin(APP_ROLE, scope, false).0;
    sql.push_str(&format!(
        "; SELECT orgboard_enter(NULL::uuid, '{slug}'::text, '{}'::uuid, '{{}}'::uuid[], '{{}}'::uuid[])",
        user.hyphenated(),
    ));
    Some(sql)
}

macro_rules! either {
    ($self:expr, |$u:ident| $body:expr) => {
        match $self {
            Unit::Pg($u) => $body,
            Unit::Tx($u) => $body,
        }
    };
}

impl Uow for Unit {
    fn backend(&self) -> Backend {
        either!(self, |u| u.backend())
    }

    async fn begin_in_org(&mut self, user: Uuid, org: &OrgKey<'_>) -> Result<bool, DbError> {
        either!(self, |u| u.begin_in_org(user, org).await)
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        either!(self, |u| u.fetch_all(sql, args).await)
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<AnyRow>, DbError> {
        either!(self, |u| u.fetch_optional(sql, args).await)
    }

    async fn fetch_each<E: From<DbError> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        each: impl FnMut(RowRef<'_, '_>) -> Result<(), E> + Send,
    ) -> Result<(), E> {
        either!(self, |u| u.fetch_each(sql, args, each).await)
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        either!(self, |u| u.execute(sql, args).await)
    }

    async fn defer(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<(), DbError> {
        either!(self, |u| u.defer(sql, args).await)
    }

    fn note(&mut self, touched: Touched, event: Option<Event>, card: Option<CardChange>) {
        either!(self, |u| u.note(touched, event, card))
    }
}
