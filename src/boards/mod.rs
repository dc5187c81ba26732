//! Boards: list, create, the board view (board → lists in order → tasks in
//! order), update / archive, delete.
//!
//! Archiving is a flag: archived boards drop out of the default listing
//! (`?archived=true` lists them) and stay readable and writable.

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

use crate::args;
use crate::db::change::{self, Kind, from_to};
use crate::db::lock_suffix;
use crate::db::now;
use crate::db::uow::{AnyRow, DbError, Uow};
use crate::domain::DomainError;
use crate::domain::{Action, NAME_MAX, Ownership, parse_name};
use crate::error::{ApiResult, FieldError};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::page::{Page, PageQuery};
use crate::idempotency::Created;
use crate::idempotency::{self, Creating, IdemKey};
use crate::orgs::context::{Collection, OrgRequest};
use crate::state::AppState;

pub mod view;

/// Longest board description.
pub const DESCRIPTION_MAX: usize = 10_000;

/// A board.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Board {
    /// Board id.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// Name.
    pub name: String,
    /// Description (may be empty).
    pub description: String,
    /// Whether it is archived.
    pub archived: bool,
    /// When it was archived.
    pub archived_at: Option<DateTime<Utc>>,
    /// Who created it.
    pub created_by: Uuid,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Board {
    fn finish(mut self) -> Self {
        self.archived = self.archived_at.is_some();
        self
    }
}

/// Body of `POST …/boards`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateBoardBody {
    /// Name, 1–100 characters.
    pub name: String,
    /// Description, up to 10 000 characters.
    pub description: Option<String>,
}

/// Body of `PATCH …/boards/{board}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateBoardBody {
    /// New name.
    pub name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// Archive (`true`) or restore (`false`).
    pub archived: Option<bool>,
}

/// Path of board routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BoardPath {
    /// Organization id or slug.
    pub org: String,
    /// The board.
    pub board: Uuid,
}

/// Query of `GET …/boards`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardsQuery {
    /// `true`: only archived boards; default: only active ones.
    pub archived: Option<bool>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_boards, create_board))
        .routes(routes!(update_board, delete_board))
}

const BOARD_COLUMNS: &str =
    "id, org_id, name, description, archived_at, created_by, created_at, updated_at";

/// Loads a board of the organization.
pub async fn load_board<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Board>, DbError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {BOARD_COLUMNS} FROM boards WHERE org_id = $1 AND id = $2")
    });
    u.fetch_optional(&SQL, &args![org_id, id])
        .await?
        .as_ref()
        .map(board_from_row)
        .transpose()
}

fn parse_board_fields(
    name: Option<&str>,
    description: Option<&str>,
) -> Result<(Option<String>, Option<String>), DomainError> {
    let mut errors = Vec::new();
    let name = name
        .map(|n| parse_name(n, NAME_MAX))
        .transpose()
        .map_err(|m| errors.push(FieldError::new("name", m)));
    let description = description.map(|d| d.trim().to_owned());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > DESCRIPTION_MAX)
    {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    } else if description.as_ref().is_some_and(|d| d.contains('\0')) {
        // PostgreSQL cannot store NUL in text; refuse it on both backends.
        errors.push(FieldError::new(
            "description",
            "must not contain NUL characters",
        ));
    }
    match name {
        Ok(n) if errors.is_empty() => Ok((n, description)),
        _ => Err(DomainError::validation(errors)),
    }
}

/// Boards of the organization.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/boards", tag = "boards",
    params(("org" = String, Path, description = "Organization id or slug"), BoardsQuery,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this page: `304` when nothing in the organization changed since")),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Board>, headers(("ETag" = String, description = "The page's version (`{org}` by id only)"))),
              (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"), (status = 404, body = crate::error::Problem)))]
async fn list_boards(
    State(state): State<AppState>,
    org: OrgRequest,
    AppQuery(q): AppQuery<BoardsQuery>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    let archived = q.archived.unwrap_or(false);
    let c = Collection {
        action: Action::ReadOrg,
        name: "boards",
        within: format!(":{archived}"),
        parent: None,
        select: format!(
            "SELECT {BOARD_COLUMNS} FROM boards WHERE org_id = $1 AND archived_at IS {} NULL",
            if archived { "NOT" } else { "" }
        ),
        args: vec![],
        key: ("id", ">"),
        order: "id",
    };
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    crate::http::conditional::collection_page::<Uuid, _, _>(
        &state,
        org,
        page,
        c,
        (&uri, &headers),
        board_from_row,
        |b| b.id,
    )
    .await
}

/// Create a board (admin+).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/boards", tag = "boards",
    params(("org" = String, Path, description = "Organization id or slug"),
           ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer")),
    request_body = CreateBoardBody, security(("bearer" = [])),
    responses((status = 201, body = Board), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_board(
    State(state): State<AppState>,
    org: OrgRequest,
    req: Creating<CreateBoardBody>,
) -> ApiResult<Response> {
    let scope = crate::db::Scope::user(org.user_id());
    let created = crate::unit!(state.db, scope, |u| create(
        u,
        &org,
        &req.body,
        req.key.as_ref()
    ))?;
    Ok(match created {
        Created::New(board) => (StatusCode::CREATED, AppJson(board)).into_response(),
        Created::Replay(replay) => replay.into_response(),
    })
}

/// `POST …/boards` (admin+), written once for both backends.
pub async fn create<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    body: &CreateBoardBody,
    key: Option<&IdemKey>,
) -> Result<Created<Board>, DomainError> {
    let oc = org.enter(u).await?;
    oc.require(Action::ManageBoard, Ownership::NotOwn)?;
    let (name, description) = parse_board_fields(Some(&body.name), body.description.as_deref())?;
    let name = name.unwrap_or_default();
    let description = description.unwrap_or_default();
    if let Some(replay) = idempotency::claim(u, oc.user_id, oc.org_id, key).await? {
        return Ok(Created::Replay(replay));
    }
    let id = Uuid::now_v7();
    let now = now();
    u.defer(
        "INSERT INTO boards (org_id, id, name, description, created_by, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
        &args![oc.org_id, id, &name, &description, oc.user_id, now],
    )
    .await?;
    change::record(
        u,
        oc.change(Kind::BoardCreated, id, Some(id), json!({ "name": name })),
    )
    .await?;
    let board = Board {
        id,
        org_id: oc.org_id,
        name,
        description,
        archived: false,
        archived_at: None,
        created_by: oc.user_id,
        created_at: now,
        updated_at: now,
    };
    idempotency::complete(u, oc.user_id, key, 201, &board).await?;
    Ok(Created::New(board))
}

/// Rename, describe, archive or restore a board (admin+).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/boards/{board}", tag = "boards",
    params(BoardPath), request_body = UpdateBoardBody, security(("bearer" = [])),
    responses((status = 200, body = Board), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn update_board(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<BoardPath>,
    AppJson(body): AppJson<UpdateBoardBody>,
) -> ApiResult<AppJson<Board>> {
    let scope = crate::db::Scope::user(org.user_id());
    let board = crate::unit!(state.db, scope, |u| update(u, &org, path.board, &body))?;
    Ok(AppJson(board))
}

/// A board from a row of [`BOARD_COLUMNS`].
fn board_from_row(r: &AnyRow) -> Result<Board, DbError> {
    Ok(Board {
        id: r.get(0)?,
        org_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        archived: false,
        archived_at: r.get(4)?,
        created_by: r.get(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    }
    .finish())
}

/// A board of the organization, locked on PostgreSQL (against concurrent
/// changes of it and placements of lists on it); lists call it too.
pub(crate) async fn lock_board<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Board>, DbError> {
    let sql = format!(
        "SELECT {BOARD_COLUMNS} FROM boards WHERE org_id = $1 AND id = $2{}",
        lock_suffix(u.backend())
    );
    u.fetch_optional(&sql, &args![org_id, id])
        .await?
        .as_ref()
        .map(board_from_row)
        .transpose()
}

/// `PATCH …/boards/{board}`: rename, describe, archive or restore
/// (admin+), written once for both backends.
pub async fn update<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    id: Uuid,
    body: &UpdateBoardBody,
) -> Result<Board, DomainError> {
    let oc = org.enter(u).await?;
    oc.require(Action::ManageBoard, Ownership::NotOwn)?;
    let (name, description) =
        parse_board_fields(body.name.as_deref(), body.description.as_deref())?;
    let board = lock_board(u, oc.org_id, id)
        .await?
        .ok_or_else(DomainError::not_found)?;
    let now = now();
    let new_name = name.unwrap_or_else(|| board.name.clone());
    let new_description = description.unwrap_or_else(|| board.description.clone());
    let new_archived_at = match body.archived {
        Some(true) => board.archived_at.or(Some(now)),
        Some(false) => None,
        None => board.archived_at,
    };
    let mut payload = serde_json::Map::new();
    if let Some(c) = from_to(&board.name, &new_name) {
        payload.insert("name".into(), c);
    }
    if let Some(c) = from_to(&board.description, &new_description) {
        payload.insert("description".into(), c);
    }
    let archived_changed = board.archived_at.is_some() != new_archived_at.is_some();
    if archived_changed {
        payload.insert(
            "archived".into(),
            json!({ "from": board.archived_at.is_some(), "to": new_archived_at.is_some() }),
        );
    }
    if payload.is_empty() {
        return Ok(board);
    }
    u.defer(
        "UPDATE boards SET name = $1, description = $2, archived_at = $3, updated_at = $4 \
         WHERE org_id = $5 AND id = $6",
        &args![
            &new_name,
            &new_description,
            new_archived_at,
            now,
            oc.org_id,
            id
        ],
    )
    .await?;
    let kind = match (archived_changed, new_archived_at.is_some()) {
        (true, true) => Kind::BoardArchived,
        (true, false) => Kind::BoardRestored,
        _ => Kind::BoardUpdated,
    };
    change::record(u, oc.change(kind, id, Some(id), payload.into())).await?;
    Ok(Board {
        name: new_name,
        description: new_description,
        archived: new_archived_at.is_some(),
        archived_at: new_archived_at,
        updated_at: now,
        ..board
    })
}

/// Delete a board with its lists, tasks and comments (admin+).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/boards/{board}", tag = "boards",
    params(BoardPath), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn delete_board(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<BoardPath>,
) -> ApiResult<StatusCode> {
    let scope = crate::db::Scope::user(org.user_id());
    crate::unit!(state.db, scope, |u| delete(u, &org, path.board))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE …/boards/{board}` with its lists, tasks and comments (admin+),
/// written once for both backends.
pub async fn delete<U: Uow>(u: &mut U, org: &OrgRequest, id: Uuid) -> Result<(), DomainError> {
    let oc = org.enter(u).await?;
    oc.require(Action::ManageBoard, Ownership::NotOwn)?;
    let board = lock_board(u, oc.org_id, id)
        .await?
        .ok_or_else(DomainError::not_found)?;
    let tasks: i64 = u
        .fetch_value(
            "SELECT COUNT(*) FROM tasks WHERE org_id = $1 AND board_id = $2",
            &args![oc.org_id, id],
        )
        .await?
        .unwrap_or(0);
    u.defer(
        "DELETE FROM boards WHERE org_id = $1 AND id = $2",
        &args![oc.org_id, id],
    )
    .await?;
    change::record(
        u,
        oc.change(
            Kind::BoardDeleted,
            id,
            Some(id),
            json!({ "name": board.name, "tasks_deleted": tasks }),
        ),
    )
    .await?;
    Ok(())
}
