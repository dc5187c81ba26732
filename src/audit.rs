//! The audit log: one append-only row per change, written in the same
//! transaction as the change, and `GET /orgs/{org}/audit-log` to read it.
//!
//! Payloads say what changed (`{"name": {"from": "A", "to": "B"}}`), never
//! secrets (no tokens, no password hashes). No route edits or deletes rows;
//! on PostgreSQL the request role lacks `UPDATE`/`DELETE`/`TRUNCATE` on the
//! table, and on SQLite triggers refuse both.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::db::Backend;
use crate::db::change::{Entity, Kind};
use crate::db::uow::{Arg, DbError, RawTime, RowRef, Uow};
use crate::domain::DomainError;
use crate::domain::{Action, Ownership};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::AppQuery;
use crate::http::page::{Page, open, page_limit, seal};
use crate::http::rowjson::{JsonRows, write_str, write_time, write_uuid};
use crate::orgs::context::OrgRequest;
use crate::state::AppState;

// The OpenAPI schema of a row; a page is written from the rows by
// [`AuditRows`], byte for byte what `serde_json` writes for these (the
// unit tests compare both).
/// One audit row as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Row id (UUIDv7, time-ordered).
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// Who did it; `null` for the system.
    pub actor_id: Option<Uuid>,
    /// What was done (`member.role_changed`, …).
    pub action: Kind,
    /// Kind of the changed entity.
    pub entity_type: Entity,
    /// The changed entity.
    pub entity_id: Option<Uuid>,
    /// What changed.
    #[schema(value_type = Object)]
    pub payload: Json<Value>,
    /// Request that made the change.
    pub request_id: Option<String>,
    /// When.
    #[serde(serialize_with = "crate::http::rowjson::time")]
    pub created_at: DateTime<Utc>,
}

/// Longest `action` or `entity_type` filter, in characters.
pub const FILTER_TEXT_MAX: usize = 64;

/// Filters of `GET …/audit-log`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only changes by this user.
    pub actor_id: Option<Uuid>,
    /// Only this action (`task.created`, …).
    pub action: Option<String>,
    /// Only this kind of entity.
    pub entity_type: Option<String>,
    /// Only this entity.
    pub entity_id: Option<Uuid>,
    /// Only changes at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only changes before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A query of `GET …/audit-log`, checked: what [`page`] reads.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    actor_id: Option<Uuid>,
    action: Option<String>,
    entity_type: Option<String>,
    entity_id: Option<Uuid>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    limit: u32,
    /// The last row of the previous page (newest first: rows before it).
    before: Option<Uuid>,
}

impl AuditFilter {
    /// Checks the query's values (`422`); the cursor is opened apart.
    pub fn parse(q: &AuditQuery) -> Result<Self, ApiError> {
        let limit = page_limit(q.limit)?;
        for (field, t) in [("since", &q.since), ("until", &q.until)] {
            crate::domain::reject_leap_second(field, t.as_ref())
                .map_err(|e| ApiError::validation(vec![e]))?;
        }
        for (field, v) in [("action", &q.action), ("entity_type", &q.entity_type)] {
            if v.as_ref()
                .is_some_and(|s| s.chars().count() > FILTER_TEXT_MAX)
            {
                return Err(ApiError::invalid_field(
                    field,
                    format!("must be at most {FILTER_TEXT_MAX} characters"),
                ));
            }
        }
        Ok(Self {
            actor_id: q.actor_id,
            action: q.action.clone(),
            entity_type: q.entity_type.clone(),
            entity_id: q.entity_id,
            since: q.since,
            until: q.until,
            limit,
            before: None,
        })
    }

    /// Resumes before the row `id` (newest first), without a sealed
    /// cursor (the benchmark pages this way).
    pub fn before(mut self, id: Uuid) -> Self {
        self.before = Some(id);
        self
    }

    /// The page's statement, built from the filters actually given (each
    /// then uses the index that leads with `org_id` and the filtered
    /// column, or the primary key's `(org_id, id)` read backwards), with
    /// its arguments: `$1` the organization, then `$2` the caller when
    /// `caller` is given (for [`OrgRequest::fetch_joined`]), then the
    /// filters'. One more row than the limit, to know if another page
    /// follows.
    fn statement(
        &self,
        backend: Backend,
        org_id: Uuid,
        caller: Option<Uuid>,
    ) -> (String, Vec<Arg<'_>>) {
        // PostgreSQL's `jsonb` goes out as its text; SQLite keeps the text.
        let payload = match backend {
            Backend::Postgres => "a.payload::text AS payload",
            Backend::Sqlite => "a.payload",
        };
        // The filters first (each on the row alias `ALIAS`); the statement
        // is put together around them.
        let mut sql = String::new();
        let mut args = vec![Arg::from(org_id)];
        args.extend(caller.map(Arg::from));
        fn add<'a>(sql: &mut String, args: &mut Vec<Arg<'a>>, clause: &str, arg: Arg<'a>) {
            args.push(arg);
            sql.push_str(&format!(" AND {ALIAS}.{clause} ${}", args.len()));
        }
        if let Some(v) = &self.action {
            add(&mut sql, &mut args, "action =", v.as_str().into());
        }
        if let Some(v) = &self.entity_type {
            add(&mut sql, &mut args, "entity_type =", v.as_str().into());
        }
        if let Some(v) = self.entity_id {
            add(&mut sql, &mut args, "entity_id =", v.into());
        }
        // The filters a row of the type-only page's merge (below) must
        // pass as well, each written once and named by its placeholder.
        let start = sql.len();
        if let Some(v) = self.actor_id {
            add(&mut sql, &mut args, "actor_id =", v.into());
        }
        if let Some(v) = self.since {
            add(&mut sql, &mut args, "created_at >=", v.into());
        }
        if let Some(v) = self.until {
            add(&mut sql, &mut args, "created_at <", v.into());
        }
        if let Some(v) = self.before {
            add(&mut sql, &mut args, "id <", v.into());
        }
        let limit = self.limit + 1;
        let (from, join) = match (&self.entity_type, &self.action, self.entity_id) {
            (Some(t), None, None) => type_only(t, &sql[start..], limit),
            _ => ("audit_log a".to_owned(), ""),
        };
        let sql = format!(
            "SELECT a.id, a.org_id, a.actor_id, a.action, a.entity_type, a.entity_id, \
             {payload}, a.request_id, a.created_at FROM {from} WHERE a.org_id = $1{join}{sql} \
             ORDER BY a.id DESC LIMIT {limit}"
        );
        (sql, args)
    }
}

/// What a page filtered by `entity_type` alone (no `action`, no
/// `entity_id`) adds to its statement, so that it reads at most a few pages'
/// worth of index entries however long the log is. No index leads with the
/// type: read as the other filters are, the page would walk the log
/// backwards past every newer row of other types (seconds on a log of a
/// million rows, and more as it grows: it is append-only). A type is the
/// entity of a known set of actions ([`Kind::entity`]; every row is
/// written from its `Kind`, and a row of an unknown action cannot be read
/// at all), so the rows of type `t` are the rows of those actions: for each
/// action, the newest `limit` ids on the action's index `(org_id, action,
/// id)` that pass the other filters (`rest`), merged newest first and cut
/// to `limit`; the page then reads those rows by their key. An unknown type
/// matches nothing and reads nothing. Returns the statement's `FROM` and
/// what its `WHERE` adds. (An index of the type's own would do
/// the same in one scan but cost every audited write one more entry —
/// measured 4–9 % slower SQLite writes, BENCHMARKS.md.)
fn type_only(t: &str, rest: &str, limit: u32) -> (String, &'static str) {
    let Some(entity) = Entity::parse(t) else {
        // A constant false condition: no row is read (the membership, on
        // PostgreSQL joined to the page, is still checked).
        return ("audit_log a".to_owned(), " AND 1 = 0");
    };
    let arms = Kind::ALL
        .iter()
        .filter(|k| k.entity() == entity)
        .enumerate()
        .map(|(n, k)| {
            // Each arm names its rows `a` too, so the filters read the
            // same in it (its own scope).
            format!(
                "SELECT id FROM (SELECT {ALIAS}.id FROM audit_log {ALIAS} WHERE {ALIAS}.org_id = $1 \
                 AND {ALIAS}.action = '{}'{rest} ORDER BY {ALIAS}.id DESC LIMIT {limit}) k{n}",
                k.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    // `CROSS JOIN` keeps the merged ids outside (SQLite does not reorder
    // it): each row is then read by its key.
    (
        format!(
            "(SELECT id FROM ({arms}) u ORDER BY id DESC LIMIT {limit}) m CROSS JOIN audit_log a"
        ),
        " AND a.id = m.id",
    )
}

/// The name the page's statement gives the audit rows it filters.
const ALIAS: &str = "a";

/// The audit row columns [`AuditFilter::statement`] selects, in order.
const WIDTH: usize = 9;

/// A page's rows as read: each one's JSON (what `serde_json` writes for its
/// [`AuditEvent`], written from the row as it arrives: the payload copied
/// as the database keeps it, once checked to be JSON; nothing parsed into a
/// `serde_json::Value` and written again) and its id.
pub type AuditRows = JsonRows<Uuid>;

impl AuditRows {
    /// The last row's id.
    pub fn last_id(&self) -> Option<Uuid> {
        self.last().copied()
    }
}

/// One row's fields, borrowed from the row where the backend allows it.
struct Fields<'a> {
    id: Uuid,
    org_id: Uuid,
    actor_id: Option<Uuid>,
    action: Kind,
    entity_type: Entity,
    entity_id: Option<Uuid>,
    payload: std::borrow::Cow<'a, str>,
    request_id: Option<std::borrow::Cow<'a, str>>,
    created_at: RawTime<'a>,
}

impl<'a> Fields<'a> {
    fn read(r: RowRef<'a, '_>) -> Result<Self, DbError> {
        let action = r.text(3)?;
        let entity = r.text(4)?;
        let payload = r.text(6)?;
        // The payload goes out as stored: it must be JSON (it always is,
        // written by `change::record`; a damaged row is a 500, never a
        // broken answer).
        serde_json::from_str::<serde::de::IgnoredAny>(&payload)
            .map_err(|e| DbError::Decode(6, e.to_string()))?;
        Ok(Self {
            id: r.get(0)?,
            org_id: r.get(1)?,
            actor_id: r.get(2)?,
            action: Kind::parse(&action)
                .ok_or_else(|| DbError::Decode(3, format!("unknown action {action:?}")))?,
            entity_type: Entity::parse(&entity)
                .ok_or_else(|| DbError::Decode(4, format!("unknown entity type {entity:?}")))?,
            entity_id: r.get(5)?,
            payload,
            request_id: r.opt_text(7)?,
            created_at: r
                .time(8)?
                .ok_or_else(|| DbError::Decode(8, "expected a time, found NULL".into()))?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), DbError> {
        let opt_uuid = |out: &mut Vec<u8>, id: &Option<Uuid>| match id {
            Some(id) => write_uuid(out, id),
            None => out.extend_from_slice(b"null"),
        };
        out.extend_from_slice(b"{\"id\":");
        write_uuid(out, &self.id);
        out.extend_from_slice(b",\"org_id\":");
        write_uuid(out, &self.org_id);
        out.extend_from_slice(b",\"actor_id\":");
        opt_uuid(out, &self.actor_id);
        out.extend_from_slice(b",\"action\":");
        write_str(out, self.action.as_str());
        out.extend_from_slice(b",\"entity_type\":");
        write_str(out, self.entity_type.as_str());
        out.extend_from_slice(b",\"entity_id\":");
        opt_uuid(out, &self.entity_id);
        out.extend_from_slice(b",\"payload\":");
        out.extend_from_slice(self.payload.as_bytes());
        out.extend_from_slice(b",\"request_id\":");
        match &self.request_id {
            Some(r) => write_str(out, r),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"created_at\":");
        write_time(out, &self.created_at, 8)?;
        out.push(b'}');
        Ok(())
    }
}

/// Adds the row `r` to `rows`.
fn push_row(rows: &mut AuditRows, r: RowRef<'_, '_>) -> Result<(), DomainError> {
    rows.push(|out| {
        let f = Fields::read(r)?;
        f.write(out)?;
        Ok(f.id)
    })
}

/// A page of the organization's audit log for `f` (one more row than the
/// limit when another page follows). The caller has checked the
/// membership and the role.
pub async fn page<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    f: &AuditFilter,
) -> Result<AuditRows, DomainError> {
    let (sql, args) = f.statement(u.backend(), org_id, None);
    let mut rows = AuditRows::with_capacity(f.limit as usize + 1, 400);
    u.fetch_each(&sql, &args, |r| push_row(&mut rows, r))
        .await?;
    Ok(rows)
}

/// The same page for `org` (by id, `org_id`), the membership and the role
/// checked (`404` for a non-member, `403` below admin, `423` suspended).
/// On PostgreSQL the page's statement checks them itself, joined to the
/// membership ([`OrgRequest::fetch_joined`]: one round trip less); on
/// SQLite, where there is no round trip to save and the join measured
/// slower for task pages, the membership statement, then the page's.
pub async fn member_page<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    org_id: Uuid,
    f: &AuditFilter,
) -> Result<AuditRows, DomainError> {
    match u.backend() {
        Backend::Postgres => {
            let (sql, args) = f.statement(Backend::Postgres, org_id, Some(org.user_id()));
            let mut rows = AuditRows::with_capacity(f.limit as usize + 1, 400);
            let member = org
                .fetch_joined(
                    u,
                    &sql,
                    "t.id DESC",
                    &args,
                    WIDTH,
                    Action::ReadAuditLog,
                    |r| push_row(&mut rows, r),
                )
                .await?;
            if member {
                Ok(rows)
            } else {
                Err(DomainError::not_found())
            }
        }
        Backend::Sqlite => {
            let ctx = org.enter(u).await?;
            ctx.require(Action::ReadAuditLog, Ownership::NotOwn)?;
            page(u, ctx.org_id, f).await
        }
    }
}

/// What a cursor of the audit log of `org_id` is bound to.
fn cursor_scope(org_id: Uuid) -> String {
    format!("audit:{org_id}")
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_log))
}

// Read like `GET …/tasks`: by organization id, with a valid query and no
// `304` to answer, [`member_page`] (on PostgreSQL the membership joined to
// the page's statement); anything else enters the organization first, so a
// non-member gets `404` and a member below admin `403` whatever the query,
// before its `422` or `400`.
/// The organization's audit log, newest first (admin+).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/audit-log", tag = "audit",
    params(("org" = String, Path, description = "Organization id or slug"), AuditQuery,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this page: `304` when nothing in the organization changed since")),
    security(("bearer" = [])),
    responses((status = 200, body = Page<AuditEvent>, headers(("ETag" = String, description = "The page's version (`{org}` by id only)"))),
              (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn list_audit_log(
    State(state): State<AppState>,
    org: OrgRequest,
    AppQuery(q): AppQuery<AuditQuery>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    let filter = AuditFilter::parse(&q);
    let cursor = q.cursor;
    // The organization's version is read before the database (see
    // crate::cache), so a page read after it holds every change
    // acknowledged before it.
    let cond =
        crate::http::conditional::Conditional::read(&state, &org, "audit-log", &uri, &headers)
            .await;
    let unchanged = cond.unchanged();
    let opener = state.clone();
    let (by_id, scope) = org.read_scope();
    let read = crate::read_unit!(state.db, scope, |u| async move {
        if let (Some(org_id), Ok(f)) = (by_id, &filter)
            && !unchanged
        {
            let before = match cursor.as_deref() {
                Some(c) => open(&opener, &cursor_scope(org_id), c).ok(),
                None => None,
            };
            if cursor.is_none() || before.is_some() {
                let mut f = f.clone();
                f.before = before;
                let rows = member_page(u, &org, org_id, &f).await?;
                return Ok(Some((rows, f, org_id)));
            }
        }
        let ctx = org.enter(u).await?;
        ctx.require(Action::ReadAuditLog, Ownership::NotOwn)?;
        let mut filter = filter?;
        if let Some(c) = cursor.as_deref() {
            filter.before = Some(open(&opener, &cursor_scope(ctx.org_id), c)?);
        }
        if unchanged {
            return Ok::<_, ApiError>(None);
        }
        let rows = page(u, ctx.org_id, &filter).await?;
        Ok(Some((rows, filter, ctx.org_id)))
    })?;
    let Some((rows, filter, org_id)) = read else {
        return Ok(cond.not_modified());
    };
    let scope = cursor_scope(org_id);
    Ok(cond.answer(rows.into_page(filter.limit as usize, |last| seal(&state, &scope, last))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entity id, with or without its type, reads the entity's index in
    /// the page's order, not the primary key backwards with a filter
    /// (migration 0012); the type alone reads its actions' index, each
    /// action's newest ids, and sorts only those (SQLite's plans). No
    /// filter here reads the log itself from one end.
    #[tokio::test]
    async fn entity_filters_read_their_index_in_order() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:")
            .await
            .expect("memory");
        crate::db::SQLITE_MIGRATOR
            .run(&pool)
            .await
            .expect("migrated");
        let q = |entity_type: Option<&str>, entity_id: Option<Uuid>| AuditQuery {
            entity_type: entity_type.map(str::to_owned),
            entity_id,
            ..AuditQuery::default()
        };
        let id = Uuid::now_v7();
        let mut since = q(Some("label"), None);
        since.since = Some(Utc::now());
        since.actor_id = Some(id);
        for (query, index, merged) in [
            (q(Some("task"), None), "audit_log_action_idx", true),
            (since, "audit_log_action_idx", true),
            (q(None, Some(id)), "audit_log_entity_idx", false),
            (q(Some("task"), Some(id)), "audit_log_entity_idx", false),
        ] {
            let filter = AuditFilter::parse(&query).expect("filter");
            let (sql, _) = filter.statement(Backend::Sqlite, id, None);
            // (id, parent, unused, detail) per step.
            let plan: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(&pool)
                    .await
                    .expect("plan");
            let plan = plan
                .into_iter()
                .map(|(.., detail)| detail)
                .collect::<Vec<_>>()
                .join(" / ");
            assert!(plan.contains(index), "{query:?}: {plan}");
            assert!(!plan.contains("SCAN a"), "{query:?} scans: {plan}");
            if merged {
                // One search of the action index per action of the type,
                // then the rows by their key.
                let kinds = Kind::ALL
                    .iter()
                    .filter(|k| {
                        k.entity().as_str() == query.entity_type.as_deref().unwrap_or_default()
                    })
                    .count();
                assert_eq!(plan.matches(index).count(), kinds, "{query:?}: {plan}");
                let read = plan
                    .rsplit(" / ")
                    .find(|step| step.starts_with("SEARCH a USING"))
                    .unwrap_or_default();
                assert!(read.ends_with("AND id=?)"), "{query:?}: {plan}");
            } else {
                assert!(!plan.contains("TEMP B-TREE"), "{query:?} sorts: {plan}");
            }
        }
    }

    /// Writes `e` as a page writes a row (its payload as `serde_json`
    /// keeps it, `stored` the time as the database gives it).
    fn written(e: &AuditEvent, stored: RawTime<'_>) -> String {
        let payload = serde_json::to_string(&e.payload.0).expect("payload");
        let f = Fields {
            id: e.id,
            org_id: e.org_id,
            actor_id: e.actor_id,
            action: e.action,
            entity_type: e.entity_type,
            entity_id: e.entity_id,
            payload: payload.into(),
            request_id: e.request_id.as_deref().map(Into::into),
            created_at: stored,
        };
        let mut out = Vec::new();
        f.write(&mut out).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_row_is_what_serde_writes_for_its_event() {
        let times = [
            DateTime::from_timestamp(1_765_000_000, 0).expect("time"),
            DateTime::from_timestamp(1_765_000_000, 123_000_000).expect("time"),
            DateTime::from_timestamp(1_765_000_000, 123_456_789).expect("time"),
        ];
        for (k, t) in times.into_iter().enumerate() {
            let e = AuditEvent {
                id: Uuid::now_v7(),
                org_id: Uuid::from_u128(1),
                actor_id: (k != 1).then(|| Uuid::from_u128(2)),
                action: Kind::ALL[k * 7 % Kind::ALL.len()],
                entity_type: Kind::ALL[k * 7 % Kind::ALL.len()].entity(),
                entity_id: (k != 2).then(|| Uuid::from_u128(3)),
                payload: Json(serde_json::json!({
                    "name": {"from": "A \"quoted\"\n\u{1}", "to": "Ünïcode ✓"},
                    "n": k, "list": [1, null, true]
                })),
                request_id: (k != 0).then(|| format!("req\"{k}\\")),
                created_at: t,
            };
            let want = serde_json::to_string(&e).expect("serde");
            assert_eq!(written(&e, RawTime::Value(t)), want, "as a value");
            // SQLite's canonical text (`crate::db::writer::time_text`).
            let text = t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
            assert_eq!(
                written(&e, RawTime::Text(text.into())),
                want,
                "as SQLite's text"
            );
        }
    }
}
