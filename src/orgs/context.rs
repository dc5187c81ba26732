//! [`OrgRequest`] → [`OrgContext`]: the second step of every tenant request
//! (SPEC §3).
//!
//! The [`OrgRequest`] extractor authenticates the caller and reads `{org}`
//! (id or slug) from the path, without touching the database. The handler
//! then enters the organization inside its unit of work with
//! [`OrgRequest::enter`] (or a read transaction with [`OrgRequest::read`]),
//! which resolves the organization and loads the caller's membership
//! *inside that transaction* — one statement, which on
//! PostgreSQL also enters the tenant for row-level security — and hands back
//! the [`OrgContext`]. So the membership check and the data access share one
//! transaction (a write acts on the role committed alongside it), and the
//! check costs one round trip. An unknown organization, a deleted one and one
//! the caller is not a member of all answer the same `404`. Access tokens
//! carry no role, so a removed member is refused on the very next request.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::auth::user::AuthUser;
use crate::db::uow::{AnyRow, Arg, RowRef, Uow};
use crate::db::{Backend, Scope};
use crate::domain::DomainError;
use crate::domain::{Action, Ownership, Role, require};
use crate::error::ApiError;
use crate::http::extract::request_id_of;
use crate::state::AppState;

/// A tenant request before its membership is checked: the caller and the
/// `{org}` reference from the path.
#[derive(Debug, Clone)]
pub struct OrgRequest {
    auth: AuthUser,
    org_ref: OrgRef,
    request_id: Option<String>,
    /// Where the request log learns the organization once it is resolved.
    logged_org: Option<crate::http::extract::RequestOrg>,
}

#[derive(Debug, Clone)]
enum OrgRef {
    Id(Uuid),
    Slug(String),
    /// Cannot name any organization (too long, NUL): always `404`.
    Invalid,
}

impl FromRequestParts<AppState> for OrgRequest {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("invalid_path", "The path is invalid."))?;
        let raw = params
            .iter()
            .find(|(k, _)| *k == "org")
            .map(|(_, v)| v)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("route has no {{org}}")))?;
        let org_ref = match Uuid::try_parse(raw) {
            Ok(id) => OrgRef::Id(id),
            // No organization has such a slug (and PostgreSQL refuses NUL in
            // text): answer as for any unknown one, without asking.
            Err(_) if raw.len() > crate::domain::SLUG_MAX || raw.contains('\0') => OrgRef::Invalid,
            Err(_) => OrgRef::Slug(raw.to_owned()),
        };
        Ok(OrgRequest {
            auth,
            org_ref,
            request_id: request_id_of(parts),
            logged_org: parts
                .extensions
                .get::<crate::http::extract::RequestOrg>()
                .cloned(),
        })
    }
}

impl OrgRequest {
    /// Tells the request log and the API limits which organization this
    /// request acts in, once the caller's membership in it is confirmed
    /// (every statement that confirms one calls this).
    pub fn note_org(&self, org_id: Uuid) {
        if let Some(slot) = &self.logged_org {
            slot.set(org_id);
        }
    }
}

impl OrgRequest {
    /// A request by `user_id` in the organization with id `org_id`, for
    /// callers without an HTTP request (the benchmark's limit mode runs the
    /// use cases themselves); its membership is still checked by
    /// [`OrgRequest::enter`].
    pub fn for_member(user_id: Uuid, org_id: Uuid, request_id: Option<String>) -> Self {
        OrgRequest {
            auth: AuthUser {
                user_id,
                session: None,
                expires_at: u64::MAX,
            },
            org_ref: OrgRef::Id(org_id),
            request_id,
            logged_org: None,
        }
    }

    /// The verified access token behind the request (its session and
    /// expiry), so a handler needs no second extraction to read them.
    pub fn auth(&self) -> &AuthUser {
        &self.auth
    }
}

impl OrgRequest {
    /// Resolves the organization and the caller's membership in the unit
    /// of work `u` (one statement, which on PostgreSQL also enters the
    /// tenant); `404` unless the caller is a member, `423` when the
    /// organization is suspended.
    pub async fn enter<U: Uow>(&self, u: &mut U) -> Result<OrgContext, DomainError> {
        let (by, key) = self.org_key().ok_or_else(DomainError::not_found)?;
        let sql = membership_sql(u.backend(), by);
        let row = u
            .fetch_optional(sql, &[key_arg(key), Arg::from(self.auth.user_id)])
            .await?
            .ok_or_else(DomainError::not_found)?;
        self.context_from((&row).into(), 0)
    }

    /// [`OrgRequest::enter`] and one read of what the use case needs, in
    /// as few round trips as the unit allows: on a PostgreSQL
    /// [`crate::db::unit::Unit`] that has not begun, the `BEGIN` enters the
    /// tenant and one statement then reads the membership and `read`;
    /// otherwise `enter`, then the same statement. The row holds `read`'s
    /// columns first (`0..read.width`). `404` unless the caller is a member
    /// (the statement's membership join decides, whatever the `BEGIN` set),
    /// `423` when the organization is suspended, as `enter`. Rows `read`
    /// locks must be joined after the membership (`read.joins` may name
    /// `m`), so a non-member locks nothing.
    pub async fn enter_reading<U: Uow>(
        &self,
        u: &mut U,
        read: &Fused<'_>,
    ) -> Result<(OrgContext, AnyRow), DomainError> {
        let (by, key) = self.org_key().ok_or_else(DomainError::not_found)?;
        if !u.begin_in_org(self.auth.user_id, &key).await? {
            self.enter(u).await?;
        }
        let sql = format!(
            "SELECT {}, o.id, m.role, o.suspended_at IS NOT NULL FROM organizations o \
             JOIN memberships m ON m.org_id = o.id AND m.user_id = $2 {} \
             WHERE {by} = $1 AND o.deleted_at IS NULL",
            read.columns, read.joins
        );
        let mut args = vec![key_arg(key), Arg::from(self.auth.user_id)];
        args.extend_from_slice(&read.args);
        let row = u
            .fetch_optional(&sql, &args)
            .await?
            .ok_or_else(DomainError::not_found)?;
        let oc = self.context_from((&row).into(), read.width)?;
        Ok((oc, row))
    }

    /// The context from a row holding [`membership_sql`]'s `(organization
    /// id, role, suspended)` at `at` (a statement joined to the membership
    /// reads them beside what it guards); `423` when suspended.
    pub fn context_from(&self, row: RowRef<'_, '_>, at: usize) -> Result<OrgContext, DomainError> {
        let org_id: Uuid = row.get(at)?;
        let role = Role::try_from(row.get::<String>(at + 1)?)
            .map_err(|e| DomainError::internal(anyhow::anyhow!(e)))?;
        if row.get::<bool>(at + 2)? {
            return Err(DomainError::suspended());
        }
        self.note_org(org_id);
        Ok(OrgContext {
            org_id,
            user_id: self.auth.user_id,
            role,
            request_id: self.request_id.clone(),
        })
    }
}

/// The organization's key as a bound value.
fn key_arg(key: OrgKey<'_>) -> Arg<'_> {
    match key {
        OrgKey::Id(id) => Arg::from(id),
        OrgKey::Slug(s) => Arg::from(s),
    }
}

/// What a use case reads in the statement that checks the membership (see
/// [`OrgRequest::enter_reading`]): `columns` (selected first, `width` of
/// them; they may name the organization as `o.id`), `joins` (after the
/// membership's), and the values they bind as `$3`, `$4`, ….
pub struct Fused<'a> {
    /// The columns, comma-separated.
    pub columns: &'a str,
    /// How many columns.
    pub width: usize,
    /// `LEFT JOIN …` clauses, or nothing.
    pub joins: &'a str,
    /// The values of `$3…`.
    pub args: Vec<Arg<'a>>,
}

/// The statement that resolves `{org}` (`by`: `o.id` or `o.slug`, `$1`) and
/// the caller's membership (`$2`) at the start of every tenant transaction:
/// one row `(id, role, suspended)` or none (a suspended organization is
/// answered `423` to its members, `404` to everyone else, as any other). On PostgreSQL the same statement enters the
/// tenant (`set_config` runs once, for the one matching row); RLS lets a
/// user see their own memberships and organizations before that. Built
/// once per (backend, `by`): every tenant request runs it.
pub fn membership_sql(backend: Backend, by: &'static str) -> &'static str {
    debug_assert!(by == "o.id" || by == "o.slug", "membership by {by}");
    static SQL: std::sync::OnceLock<[String; 4]> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        let make = |backend: Backend, by: &str| {
            let set = match backend {
                Backend::Postgres => ", set_config('app.org_id', o.id::text, true)",
                Backend::Sqlite => "",
            };
            format!(
                "SELECT o.id, m.role, o.suspended_at IS NOT NULL AS suspended{set} FROM organizations o \
                 JOIN memberships m ON m.org_id = o.id AND m.user_id = $2 \
                 WHERE {by} = $1 AND o.deleted_at IS NULL"
            )
        };
        [
            make(Backend::Postgres, "o.id"),
            make(Backend::Postgres, "o.slug"),
            make(Backend::Sqlite, "o.id"),
            make(Backend::Sqlite, "o.slug"),
        ]
    });
    &all[membership_slot(backend, by)]
}

/// Where the statement for (backend, `by`) sits in a table built in the
/// order Postgres/id, Postgres/slug, SQLite/id, SQLite/slug (statements
/// that embed [`membership_sql`] cache theirs the same way).
pub fn membership_slot(backend: Backend, by: &str) -> usize {
    let base = match backend {
        Backend::Postgres => 0,
        Backend::Sqlite => 2,
    };
    base + usize::from(by == "o.slug")
}

/// How a request names its organization, for statements that check the
/// membership themselves (see [`OrgRequest::org_key`]).
pub use crate::db::uow::OrgKey;

impl OrgRequest {
    /// How the path names the organization: the column of `o` to match
    /// ([`membership_sql`]'s `by`) and the value to bind as `$1`; `None` when
    /// the reference cannot name any organization (`404`).
    pub fn org_key(&self) -> Option<(&'static str, OrgKey<'_>)> {
        match &self.org_ref {
            OrgRef::Id(id) => Some(("o.id", OrgKey::Id(*id))),
            OrgRef::Slug(s) => Some(("o.slug", OrgKey::Slug(s))),
            OrgRef::Invalid => None,
        }
    }

    /// The caller (bound as `$2` in [`membership_sql`]).
    pub fn user_id(&self) -> Uuid {
        self.auth.user_id
    }

    /// The organization's id when the path names it by id, and the scope
    /// of a read for this request: by id the tenant is known before the
    /// database and set with the read transaction on PostgreSQL (row-level
    /// security only narrows; the membership still decides), by slug only
    /// the user.
    pub fn read_scope(&self) -> (Option<Uuid>, Scope) {
        match self.org_ref {
            OrgRef::Id(id) => (Some(id), Scope::tenant(self.auth.user_id, id)),
            _ => (None, Scope::user(self.auth.user_id)),
        }
    }

    /// Reads `page` — a statement of the organization `$1` (by id) whose
    /// `$2` is the caller and whose rows have `width` columns, the first
    /// never `NULL` — joined to the caller's membership in the same
    /// statement: `(membership) m LEFT JOIN (page) t`, ordered by `order`
    /// (over `t`'s columns). No row at all when the caller is not a member
    /// (then `Ok(false)`, the caller answers `404`); one row without a
    /// `page` row when the page is empty. The role (for `action`) and the
    /// suspension are checked on the first row, before `each` sees any.
    /// PostgreSQL's one round trip less than the membership statement
    /// first (BENCHMARKS.md, issue 13, eighth part); `args` are `page`'s.
    #[allow(clippy::too_many_arguments)]
    pub async fn fetch_joined<U: Uow>(
        &self,
        u: &mut U,
        page: &str,
        order: &str,
        args: &[Arg<'_>],
        width: usize,
        action: Action,
        mut each: impl FnMut(RowRef<'_, '_>) -> Result<(), DomainError> + Send,
    ) -> Result<bool, DomainError> {
        let sql = format!(
            "SELECT t.*, m.id, m.role, m.suspended FROM ({}) m LEFT JOIN ({page}) t ON 1 = 1 \
             ORDER BY {order}",
            membership_sql(u.backend(), "o.id"),
        );
        let mut checked = false;
        u.fetch_each(&sql, args, |r| {
            if !checked {
                self.context_from(r, width)?
                    .require(action, Ownership::NotOwn)?;
                checked = true;
            }
            if r.get::<Option<Uuid>>(0)?.is_some() {
                each(r)?;
            }
            Ok::<_, DomainError>(())
        })
        .await?;
        Ok(checked)
    }
}

/// The caller inside an organization.
#[derive(Debug, Clone)]
pub struct OrgContext {
    /// The organization (tenant).
    pub org_id: Uuid,
    /// The caller.
    pub user_id: Uuid,
    /// The caller's role, read in this request's transaction.
    pub role: Role,
    /// The request id, for the audit log.
    pub request_id: Option<String>,
}

impl OrgContext {
    /// `403` unless the caller's role allows `action`.
    pub fn require(&self, action: Action, own: Ownership) -> Result<(), DomainError> {
        Ok(require(self.role, action, own)?)
    }

    /// A change this member made in the organization, to record with
    /// [`crate::db::change::record`].
    pub fn change(
        &self,
        kind: crate::db::change::Kind,
        entity_id: Uuid,
        board_id: Option<Uuid>,
        payload: serde_json::Value,
    ) -> crate::db::change::Change<'_> {
        crate::db::change::Change {
            org_id: self.org_id,
            actor_id: Some(self.user_id),
            request_id: self.request_id.as_deref(),
            kind,
            entity_id,
            board_id,
            payload,
            card: None,
        }
    }
}

/// One page of an organization's collection (boards, lists, labels,
/// comments, members, invites), for [`OrgRequest::read_collection`].
pub struct Collection {
    /// The right the caller needs.
    pub action: Action,
    /// The cursor's scope is `{name}:{org id}{within}`: a cursor of another
    /// collection, organization or parent does not open.
    pub name: &'static str,
    /// See `name` (e.g. `:{board id}`).
    pub within: String,
    /// A row that must exist first, `404` otherwise: (table, id).
    pub parent: Option<(&'static str, Uuid)>,
    /// The statement up to its `WHERE` clauses: `$1` is the organization,
    /// then [`Collection::args`].
    pub select: String,
    /// Its arguments after the organization.
    pub args: Vec<Arg<'static>>,
    /// The column a cursor's key is compared with, and how (`>` or `<`).
    pub key: (&'static str, &'static str),
    /// `ORDER BY` (the order of `key`).
    pub order: &'static str,
}

/// A collection cursor's key as a statement argument.
pub trait CursorKey: serde::de::DeserializeOwned + Send + 'static {
    /// The argument.
    fn arg(&self) -> Arg<'_>;
}

impl CursorKey for Uuid {
    fn arg(&self) -> Arg<'_> {
        Arg::from(*self)
    }
}

impl CursorKey for String {
    fn arg(&self) -> Arg<'_> {
        Arg::from(self)
    }
}

impl OrgRequest {
    /// [`OrgRequest::read_collection`] for a collection without an `ETag`
    /// (always read): the rows, the cursor scope and the page size.
    pub async fn read_page<K: CursorKey, T: Send + 'static>(
        self,
        state: &AppState,
        q: crate::http::page::PageQuery,
        c: Collection,
        decode: fn(&AnyRow) -> Result<T, crate::db::uow::DbError>,
    ) -> Result<(Vec<T>, String, u32), ApiError> {
        self.read_collection::<K, T>(state, q, false, c, decode)
            .await?
            // Only `unchanged` answers `None`.
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a page read unconditionally")))
    }

    /// Reads one page of `c` in one read unit: the membership (`404`
    /// unless a member; `c.action` checked), the page size, the cursor
    /// (`400` unless it was made for this collection), the parent, then
    /// `None` when `unchanged` (answer `304`), else up to `limit + 1` rows
    /// decoded by `decode`, with the cursor scope and the page size.
    pub async fn read_collection<K: CursorKey, T: Send + 'static>(
        self,
        state: &AppState,
        q: crate::http::page::PageQuery,
        unchanged: bool,
        c: Collection,
        decode: fn(&AnyRow) -> Result<T, crate::db::uow::DbError>,
    ) -> Result<Option<(Vec<T>, String, u32)>, ApiError> {
        use crate::http::page::{open, page_limit};
        let limit = page_limit(q.limit);
        let opener = state.clone();
        let (_, unit_scope) = self.read_scope();
        crate::read_unit!(state.db, unit_scope, |u| async move {
            let ctx = self.enter(u).await?;
            ctx.require(c.action, Ownership::NotOwn)?;
            let limit = limit?;
            let scope = format!("{}:{}{}", c.name, ctx.org_id, c.within);
            let after: Option<K> = q
                .cursor
                .as_deref()
                .map(|s| open(&opener, &scope, s))
                .transpose()?;
            if let Some((table, id)) = c.parent {
                let sql = format!("SELECT 1 FROM {table} WHERE org_id = $1 AND id = $2");
                let found = u
                    .fetch_optional(&sql, &[Arg::from(ctx.org_id), Arg::from(id)])
                    .await?;
                if found.is_none() {
                    return Err(ApiError::not_found());
                }
            }
            if unchanged {
                return Ok(None);
            }
            let mut args = vec![Arg::from(ctx.org_id)];
            args.extend(c.args.iter().copied());
            let mut sql = c.select;
            if let Some(k) = &after {
                args.push(k.arg());
                sql += &format!(" AND {} {} ${}", c.key.0, c.key.1, args.len());
            }
            sql += &format!(" ORDER BY {} LIMIT {}", c.order, limit + 1);
            let rows = u.fetch_all(&sql, &args).await?;
            let items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
            Ok(Some((items, scope, limit)))
        })
    }
}
