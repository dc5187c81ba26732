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

use crate::db::change::{Entity, Kind};
use crate::domain::{Action, Ownership};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{AppJson, AppQuery};
use crate::http::page::{Page, open, page_limit, paginate};
use crate::on_tx;
use crate::orgs::context::OrgRequest;
use crate::state::AppState;

/// One audit row as the API shows it.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct AuditEvent {
    /// Row id (UUIDv7, time-ordered).
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// Who did it; `null` for the system.
    pub actor_id: Option<Uuid>,
    /// What was done (`member.role_changed`, …).
    #[sqlx(try_from = "String")]
    pub action: Kind,
    /// Kind of the changed entity.
    #[sqlx(try_from = "String")]
    pub entity_type: Entity,
    /// The changed entity.
    pub entity_id: Option<Uuid>,
    /// What changed.
    #[schema(value_type = Object)]
    pub payload: Json<Value>,
    /// Request that made the change.
    pub request_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Longest `action` or `entity_type` filter, in characters.
pub const FILTER_TEXT_MAX: usize = 64;

/// Filters of `GET …/audit-log`.
#[derive(Debug, Deserialize, IntoParams)]
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

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_log))
}

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
    let cond =
        crate::http::conditional::Conditional::read(&state, &org, "audit-log", &uri, &headers)
            .await;
    let (mut tx, ctx) = org.read(&state).await?;
    ctx.require(Action::ReadAuditLog, Ownership::NotOwn)?;
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
    let scope = format!("audit:{}", ctx.org_id);
    let before: Option<Uuid> = q
        .cursor
        .as_deref()
        .map(|c| open(&state, &scope, c))
        .transpose()?;
    if cond.unchanged() {
        return Ok(cond.not_modified());
    }

    // Built from the filters actually given, so each query can use the index
    // that leads with org_id and the filtered column.
    let mut sql = String::from(
        "SELECT id, org_id, actor_id, action, entity_type, entity_id, payload, request_id, \
         created_at FROM audit_log WHERE org_id = $1",
    );
    let mut n = 1;
    let mut next = |col: &str, op: &str| {
        n += 1;
        format!(" AND {col} {op} ${n}")
    };
    if q.actor_id.is_some() {
        sql += &next("actor_id", "=");
    }
    if q.action.is_some() {
        sql += &next("action", "=");
    }
    if q.entity_type.is_some() {
        sql += &next("entity_type", "=");
    }
    if q.entity_id.is_some() {
        sql += &next("entity_id", "=");
    }
    if q.since.is_some() {
        sql += &next("created_at", ">=");
    }
    if q.until.is_some() {
        sql += &next("created_at", "<");
    }
    if before.is_some() {
        sql += &next("id", "<");
    }
    sql += &format!(" ORDER BY id DESC LIMIT {}", limit + 1);

    let rows: Vec<AuditEvent> = on_tx!(&mut tx, |c| {
        let mut query =
            sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(sql.as_str())).bind(ctx.org_id);
        if let Some(v) = q.actor_id {
            query = query.bind(v);
        }
        if let Some(v) = &q.action {
            query = query.bind(v.as_str());
        }
        if let Some(v) = &q.entity_type {
            query = query.bind(v.as_str());
        }
        if let Some(v) = q.entity_id {
            query = query.bind(v);
        }
        if let Some(v) = q.since {
            query = query.bind(v);
        }
        if let Some(v) = q.until {
            query = query.bind(v);
        }
        if let Some(v) = before {
            query = query.bind(v);
        }
        query.fetch_all(c).await
    })?;
    Ok(cond.answer(AppJson(paginate(&state, &scope, rows, limit, |e| e.id))))
}
