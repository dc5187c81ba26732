//! Lists of a board: list, create (appended), rename, reorder, delete.
//!
//! Order is a fractional key (`domain::ordering`). Writers that place a list
//! lock the board row first (PostgreSQL `FOR NO KEY UPDATE`; SQLite has one
//! writer), so two concurrent appends never pick the same key.

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

use crate::boards::{self, BoardPath};
use crate::db::change::{self, Kind, from_to};
use crate::db::{Backend, Tx, now};
use crate::domain::ordering::key_between;
use crate::domain::{Action, Ownership, parse_name};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::page::{Page, PageQuery, open, page_limit, paginate};
use crate::idempotency::{self, Creating};
use crate::on_tx;
use crate::orgs::context::OrgRequest;
use crate::state::AppState;

/// Longest list name.
pub const LIST_NAME_MAX: usize = 200;

/// A list as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct List {
    /// List id.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// The board it belongs to.
    pub board_id: Uuid,
    /// Name.
    pub name: String,
    /// Order key within the board (compare as bytes).
    pub position: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST …/lists` and `PATCH /lists/{list}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ListBody {
    /// Name, 1–200 characters.
    pub name: String,
}

/// Body of `POST /lists/{list}/move`: place it right after `after_id` and/or
/// right before `before_id` (lists of the same board); neither: last.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct MoveListBody {
    /// The list that will come right before this one.
    pub after_id: Option<Uuid>,
    /// The list that will come right after this one.
    pub before_id: Option<Uuid>,
}

/// Path of list routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ListPath {
    /// Organization id or slug.
    pub org: String,
    /// The list.
    pub list: Uuid,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_lists, create_list))
        .routes(routes!(rename_list, delete_list))
        .routes(routes!(move_list))
}

const LIST_COLUMNS: &str = "id, org_id, board_id, name, position, created_at, updated_at";

/// `FOR NO KEY UPDATE` on PostgreSQL, nothing on SQLite (its single writer
/// already serializes writers).
pub fn lock_suffix(tx: &Tx) -> &'static str {
    match tx.backend() {
        Backend::Postgres => " FOR NO KEY UPDATE",
        Backend::Sqlite => "",
    }
}

/// Loads a list of the organization (`lock`: and locks it for placing tasks).
pub async fn load_list(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
    lock: bool,
) -> Result<Option<List>, sqlx::Error> {
    let suffix = if lock { lock_suffix(tx) } else { "" };
    let sql = format!("SELECT {LIST_COLUMNS} FROM lists WHERE org_id = $1 AND id = $2{suffix}");
    on_tx!(tx, |c| sqlx::query_as::<_, List>(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(c)
    .await)
}

/// Lists of a board in order.
pub async fn lists_of_board(
    tx: &mut Tx,
    org_id: Uuid,
    board_id: Uuid,
) -> Result<Vec<List>, sqlx::Error> {
    let sql = format!(
        "SELECT {LIST_COLUMNS} FROM lists WHERE org_id = $1 AND board_id = $2 ORDER BY position"
    );
    on_tx!(tx, |c| sqlx::query_as::<_, List>(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(org_id)
    .bind(board_id)
    .fetch_all(c)
    .await)
}

/// The order key of the neighbour of `pos` among a board's lists (the next
/// one when `after`, else the previous one), skipping `skip`.
async fn neighbour(
    tx: &mut Tx,
    org_id: Uuid,
    board_id: Uuid,
    pos: Option<&str>,
    after: bool,
    skip: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let sql = match (pos.is_some(), after) {
        (true, true) => {
            "SELECT position FROM lists WHERE org_id = $1 AND board_id = $2 AND id <> $3 \
             AND position > $4 ORDER BY position LIMIT 1"
        }
        (true, false) => {
            "SELECT position FROM lists WHERE org_id = $1 AND board_id = $2 AND id <> $3 \
             AND position < $4 ORDER BY position DESC LIMIT 1"
        }
        // No anchor: the last (after = false) or first (after = true) list.
        (false, false) => {
            "SELECT position FROM lists WHERE org_id = $1 AND board_id = $2 AND id <> $3 \
             ORDER BY position DESC LIMIT 1"
        }
        (false, true) => {
            "SELECT position FROM lists WHERE org_id = $1 AND board_id = $2 AND id <> $3 \
             ORDER BY position LIMIT 1"
        }
    };
    on_tx!(tx, |c| {
        let mut q = sqlx::query_scalar::<_, String>(sql)
            .bind(org_id)
            .bind(board_id)
            .bind(skip);
        if let Some(p) = pos {
            q = q.bind(p);
        }
        q.fetch_optional(c).await
    })
}

fn list_name(raw: &str) -> Result<String, ApiError> {
    parse_name(raw, LIST_NAME_MAX).map_err(|m| ApiError::invalid_field("name", m))
}

/// Lists of a board, in order.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/boards/{board}/lists", tag = "lists",
    params(BoardPath, PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<List>), (status = 404, body = crate::error::Problem)))]
async fn list_lists(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<BoardPath>,
    AppQuery(q): AppQuery<PageQuery>,
) -> ApiResult<AppJson<Page<List>>> {
    let (mut tx, ctx) = org.read(&state).await?;
    ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
    let limit = page_limit(q.limit)?;
    let scope = format!("lists:{}:{}", ctx.org_id, path.board);
    let after: Option<String> = q
        .cursor
        .as_deref()
        .map(|c| open(&state, &scope, c))
        .transpose()?;
    boards::load_board(&mut tx, ctx.org_id, path.board)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let sql = format!(
        "SELECT {LIST_COLUMNS} FROM lists WHERE org_id = $1 AND board_id = $2{} ORDER BY position LIMIT {}",
        if after.is_some() {
            " AND position > $3"
        } else {
            ""
        },
        limit + 1
    );
    let rows = on_tx!(&mut tx, |c| {
        let mut query = sqlx::query_as::<_, List>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(ctx.org_id)
            .bind(path.board);
        if let Some(a) = &after {
            query = query.bind(a.as_str());
        }
        query.fetch_all(c).await
    })?;
    Ok(AppJson(paginate(&state, &scope, rows, limit, |l| {
        l.position.clone()
    })))
}

/// Create a list at the end of the board (member+).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/boards/{board}/lists", tag = "lists",
    params(BoardPath, ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer")),
    request_body = ListBody, security(("bearer" = [])),
    responses((status = 201, body = List), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_list(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<BoardPath>,
    req: Creating<ListBody>,
) -> ApiResult<Response> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::ManageList, Ownership::NotOwn)?;
    let name = list_name(&req.body.name)?;
    if let Some(replay) =
        idempotency::claim(&mut tx, ctx.user_id, ctx.org_id, req.key.as_ref()).await?
    {
        return Ok(replay.into_response());
    }
    boards::load_board_locked(&mut tx, ctx.org_id, path.board)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let last = neighbour(&mut tx, ctx.org_id, path.board, None, false, Uuid::nil()).await?;
    let position = key_between(last.as_deref(), None)?;
    let now = now();
    let id = Uuid::now_v7();
    let list = on_tx!(&mut tx, |c| sqlx::query_as::<_, List>(
        "INSERT INTO lists (org_id, id, board_id, name, position, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         RETURNING id, org_id, board_id, name, position, created_at, updated_at"
    )
    .bind(ctx.org_id)
    .bind(id)
    .bind(path.board)
    .bind(&name)
    .bind(&position)
    .bind(now)
    .fetch_one(c)
    .await)?;
    change::record(
        &mut tx,
        ctx.change(
            Kind::ListCreated,
            id,
            Some(path.board),
            json!({ "name": name, "board_id": path.board }),
        ),
    )
    .await?;
    idempotency::complete(&mut tx, ctx.user_id, req.key.as_ref(), 201, &list).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(list)).into_response())
}

/// Rename a list (member+).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/lists/{list}", tag = "lists",
    params(ListPath), request_body = ListBody, security(("bearer" = [])),
    responses((status = 200, body = List), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn rename_list(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<ListPath>,
    AppJson(body): AppJson<ListBody>,
) -> ApiResult<AppJson<List>> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::ManageList, Ownership::NotOwn)?;
    let name = list_name(&body.name)?;
    let list = load_list(&mut tx, ctx.org_id, path.list, true)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let Some(c) = from_to(&list.name, &name) else {
        return Ok(AppJson(list));
    };
    let updated = on_tx!(&mut tx, |conn| sqlx::query_as::<_, List>(
        "UPDATE lists SET name = $1, updated_at = $2 WHERE org_id = $3 AND id = $4 \
         RETURNING id, org_id, board_id, name, position, created_at, updated_at"
    )
    .bind(&name)
    .bind(now())
    .bind(ctx.org_id)
    .bind(path.list)
    .fetch_one(conn)
    .await)?;
    change::record(
        &mut tx,
        ctx.change(
            Kind::ListUpdated,
            path.list,
            Some(list.board_id),
            json!({ "name": c, "board_id": list.board_id }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(AppJson(updated))
}

/// Delete a list and its tasks (admin+).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/lists/{list}", tag = "lists",
    params(ListPath), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn delete_list(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<ListPath>,
) -> ApiResult<StatusCode> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::DeleteList, Ownership::NotOwn)?;
    let list = load_list(&mut tx, ctx.org_id, path.list, true)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let tasks: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM tasks WHERE org_id = $1 AND list_id = $2"
    )
    .bind(ctx.org_id)
    .bind(path.list)
    .fetch_one(c)
    .await)?;
    on_tx!(&mut tx, |c| sqlx::query(
        "DELETE FROM lists WHERE org_id = $1 AND id = $2"
    )
    .bind(ctx.org_id)
    .bind(path.list)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    change::record(
        &mut tx,
        ctx.change(
            Kind::ListDeleted,
            path.list,
            Some(list.board_id),
            json!({ "name": list.name, "board_id": list.board_id, "tasks_deleted": tasks }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reorder a list within its board (member+).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/lists/{list}/move", tag = "lists",
    params(ListPath), request_body = MoveListBody, security(("bearer" = [])),
    responses((status = 200, body = List), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn move_list(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<ListPath>,
    AppJson(body): AppJson<MoveListBody>,
) -> ApiResult<AppJson<List>> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::ManageList, Ownership::NotOwn)?;
    for (field, id) in [("after_id", body.after_id), ("before_id", body.before_id)] {
        if id == Some(path.list) {
            return Err(ApiError::invalid_field(field, "must be another list"));
        }
    }
    let list = load_list(&mut tx, ctx.org_id, path.list, false)
        .await?
        .ok_or_else(ApiError::not_found)?;
    boards::load_board_locked(&mut tx, ctx.org_id, list.board_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let after = resolve_anchor(
        &mut tx,
        ctx.org_id,
        list.board_id,
        "after_id",
        body.after_id,
    )
    .await?;
    let before = resolve_anchor(
        &mut tx,
        ctx.org_id,
        list.board_id,
        "before_id",
        body.before_id,
    )
    .await?;
    let (lower, upper) = match (after, before) {
        (Some(a), Some(b)) => {
            if a >= b {
                return Err(ApiError::validation(vec![FieldError::new(
                    "before_id",
                    "must come after after_id",
                )]));
            }
            (Some(a), Some(b))
        }
        (Some(a), None) => {
            let next =
                neighbour(&mut tx, ctx.org_id, list.board_id, Some(&a), true, list.id).await?;
            (Some(a), next)
        }
        (None, Some(b)) => {
            let prev =
                neighbour(&mut tx, ctx.org_id, list.board_id, Some(&b), false, list.id).await?;
            (prev, Some(b))
        }
        (None, None) => {
            let last = neighbour(&mut tx, ctx.org_id, list.board_id, None, false, list.id).await?;
            (last, None)
        }
    };
    let position = key_between(lower.as_deref(), upper.as_deref())?;
    let moved = on_tx!(&mut tx, |c| sqlx::query_as::<_, List>(
        "UPDATE lists SET position = $1, updated_at = $2 WHERE org_id = $3 AND id = $4 \
         RETURNING id, org_id, board_id, name, position, created_at, updated_at"
    )
    .bind(&position)
    .bind(now())
    .bind(ctx.org_id)
    .bind(path.list)
    .fetch_one(c)
    .await)?;
    change::record(
        &mut tx,
        ctx.change(Kind::ListMoved, path.list, Some(list.board_id), json!({ "board_id": list.board_id, "position": from_to(&list.position, &moved.position) }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(AppJson(moved))
}

/// The order key of an anchor list given in a move body; `422` when it is
/// not a list of the same board in this organization.
async fn resolve_anchor(
    tx: &mut Tx,
    org_id: Uuid,
    board_id: Uuid,
    field: &'static str,
    id: Option<Uuid>,
) -> Result<Option<String>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    match load_list(tx, org_id, id, false).await? {
        Some(l) if l.board_id == board_id => Ok(Some(l.position)),
        _ => Err(ApiError::invalid_field(
            field,
            "is not a list of this board",
        )),
    }
}
