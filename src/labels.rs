//! Labels of an organization: list, create, rename / recolour, delete.
//!
//! SPEC §4 does not name labels; they are shared vocabulary like lists, so
//! managing them needs the list right (member+), and deleting one (which
//! takes it off every task) needs the list-deletion right (admin+).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::db::change::{self, Kind, from_to};
use crate::db::{Tx, now, unique_violation};
use crate::domain::{Action, Ownership, parse_name};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::page::{Page, PageQuery, open, page_limit, paginate};
use crate::idempotency::{self, Creating};
use crate::on_tx;
use crate::orgs::context::OrgRequest;
use crate::state::AppState;

/// Longest label name.
pub const LABEL_NAME_MAX: usize = 50;

/// A label.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Label {
    /// Label id.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// Name, unique in the organization (case-insensitive).
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST …/labels`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateLabelBody {
    /// 1–50 characters.
    pub name: String,
    /// `#rrggbb` (default `#888888`).
    pub color: Option<String>,
}

/// Body of `PATCH …/labels/{label}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateLabelBody {
    /// New name.
    pub name: Option<String>,
    /// New colour.
    pub color: Option<String>,
}

/// Path of label routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct LabelPath {
    /// Organization id or slug.
    pub org: String,
    /// The label.
    pub label: Uuid,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_labels, create_label))
        .routes(routes!(update_label, delete_label))
}

const LABEL_COLUMNS: &str = "id, org_id, name, color, created_at, updated_at";

fn parse_color(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_lowercase();
    if s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s)
    } else {
        Err("must be a colour like #1a2b3c".into())
    }
}

fn parse_fields(
    name: Option<&str>,
    color: Option<&str>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let mut errors = Vec::new();
    let name = name
        .map(|n| parse_name(n, LABEL_NAME_MAX))
        .transpose()
        .map_err(|m| errors.push(FieldError::new("name", m)));
    let color = color
        .map(parse_color)
        .transpose()
        .map_err(|m| errors.push(FieldError::new("color", m)));
    match (name, color) {
        (Ok(n), Ok(c)) => Ok((n, c)),
        _ => Err(ApiError::validation(errors)),
    }
}

fn name_taken() -> ApiError {
    ApiError::conflict("label_name_taken", "A label with this name already exists.")
        .with_field("name", "is already used by another label")
}

async fn load_label(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<Option<Label>, sqlx::Error> {
    let sql = format!("SELECT {LABEL_COLUMNS} FROM labels WHERE org_id = $1 AND id = $2");
    on_tx!(tx, |c| sqlx::query_as::<_, Label>(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(c)
    .await)
}

async fn name_in_use(
    tx: &mut Tx,
    org_id: Uuid,
    name: &str,
    except: Uuid,
) -> Result<bool, sqlx::Error> {
    let found: Option<Uuid> = on_tx!(tx, |c| sqlx::query_scalar(
        "SELECT id FROM labels WHERE org_id = $1 AND name_norm = $2 AND id <> $3"
    )
    .bind(org_id)
    .bind(name.to_lowercase())
    .bind(except)
    .fetch_optional(c)
    .await)?;
    Ok(found.is_some())
}

/// Labels of the organization.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/labels", tag = "labels",
    params(("org" = String, Path, description = "Organization id or slug"), PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Label>), (status = 404, body = crate::error::Problem)))]
async fn list_labels(
    State(state): State<AppState>,
    org: OrgRequest,
    AppQuery(q): AppQuery<PageQuery>,
) -> ApiResult<AppJson<Page<Label>>> {
    let (mut tx, ctx) = org.read(&state).await?;
    ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
    let limit = page_limit(q.limit)?;
    let scope = format!("labels:{}", ctx.org_id);
    let after: Option<Uuid> = q
        .cursor
        .as_deref()
        .map(|c| open(&state, &scope, c))
        .transpose()?;
    let sql = format!(
        "SELECT {LABEL_COLUMNS} FROM labels WHERE org_id = $1{} ORDER BY id LIMIT {}",
        if after.is_some() { " AND id > $2" } else { "" },
        limit + 1
    );
    let rows = on_tx!(&mut tx, |c| {
        let mut query =
            sqlx::query_as::<_, Label>(sqlx::AssertSqlSafe(sql.as_str())).bind(ctx.org_id);
        if let Some(a) = after {
            query = query.bind(a);
        }
        query.fetch_all(c).await
    })?;
    Ok(AppJson(paginate(&state, &scope, rows, limit, |l| l.id)))
}

/// Create a label (member+).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/labels", tag = "labels",
    params(("org" = String, Path, description = "Organization id or slug"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer")),
    request_body = CreateLabelBody, security(("bearer" = [])),
    responses((status = 201, body = Label), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_label(
    State(state): State<AppState>,
    org: OrgRequest,
    req: Creating<CreateLabelBody>,
) -> ApiResult<Response> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::ManageList, Ownership::NotOwn)?;
    let (name, color) = parse_fields(Some(&req.body.name), req.body.color.as_deref())?;
    let name = name.unwrap_or_default();
    let color = color.unwrap_or_else(|| "#888888".into());
    if let Some(replay) =
        idempotency::claim(&mut tx, ctx.user_id, ctx.org_id, req.key.as_ref()).await?
    {
        return Ok(replay.into_response());
    }
    if name_in_use(&mut tx, ctx.org_id, &name, Uuid::nil()).await? {
        return Err(name_taken());
    }
    let id = Uuid::now_v7();
    let now = now();
    let label = on_tx!(&mut tx, |c| sqlx::query_as::<_, Label>(
        "INSERT INTO labels (org_id, id, name, name_norm, color, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id, org_id, name, color, created_at, updated_at"
    )
    .bind(ctx.org_id)
    .bind(id)
    .bind(&name)
    .bind(name.to_lowercase())
    .bind(&color)
    .bind(now)
    .fetch_one(c)
    .await)
    .map_err(|e| if unique_violation(&e).is_some() { name_taken() } else { e.into() })?;
    change::record(
        &mut tx,
        ctx.change(
            Kind::LabelCreated,
            id,
            None,
            json!({ "name": name, "color": color }),
        ),
    )
    .await?;
    idempotency::complete(&mut tx, ctx.user_id, req.key.as_ref(), 201, &label).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(label)).into_response())
}

/// Rename or recolour a label (member+).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/labels/{label}", tag = "labels",
    params(LabelPath), request_body = UpdateLabelBody, security(("bearer" = [])),
    responses((status = 200, body = Label), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_label(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<LabelPath>,
    AppJson(body): AppJson<UpdateLabelBody>,
) -> ApiResult<AppJson<Label>> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::ManageList, Ownership::NotOwn)?;
    let (name, color) = parse_fields(body.name.as_deref(), body.color.as_deref())?;
    let label = load_label(&mut tx, ctx.org_id, path.label)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let new_name = name.unwrap_or_else(|| label.name.clone());
    let new_color = color.unwrap_or_else(|| label.color.clone());
    let mut payload = serde_json::Map::new();
    if let Some(c) = from_to(&label.name, &new_name) {
        payload.insert("name".into(), c);
    }
    if let Some(c) = from_to(&label.color, &new_color) {
        payload.insert("color".into(), c);
    }
    if payload.is_empty() {
        return Ok(AppJson(label));
    }
    if name_in_use(&mut tx, ctx.org_id, &new_name, label.id).await? {
        return Err(name_taken());
    }
    let updated = on_tx!(&mut tx, |c| sqlx::query_as::<_, Label>(
        "UPDATE labels SET name = $1, name_norm = $2, color = $3, updated_at = $4 \
         WHERE org_id = $5 AND id = $6 RETURNING id, org_id, name, color, created_at, updated_at"
    )
    .bind(&new_name)
    .bind(new_name.to_lowercase())
    .bind(&new_color)
    .bind(now())
    .bind(ctx.org_id)
    .bind(path.label)
    .fetch_one(c)
    .await)
    .map_err(|e| {
        if unique_violation(&e).is_some() {
            name_taken()
        } else {
            e.into()
        }
    })?;
    change::record(
        &mut tx,
        ctx.change(Kind::LabelUpdated, path.label, None, payload.into()),
    )
    .await?;
    tx.commit().await?;
    Ok(AppJson(updated))
}

/// Delete a label, taking it off every task (admin+).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/labels/{label}", tag = "labels",
    params(LabelPath), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn delete_label(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<LabelPath>,
) -> ApiResult<StatusCode> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::DeleteList, Ownership::NotOwn)?;
    let label = load_label(&mut tx, ctx.org_id, path.label)
        .await?
        .ok_or_else(ApiError::not_found)?;
    on_tx!(&mut tx, |c| sqlx::query(
        "DELETE FROM labels WHERE org_id = $1 AND id = $2"
    )
    .bind(ctx.org_id)
    .bind(path.label)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    change::record(
        &mut tx,
        ctx.change(
            Kind::LabelDeleted,
            path.label,
            None,
            json!({ "name": label.name }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
