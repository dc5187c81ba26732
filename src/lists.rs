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
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::boards::BoardPath;
use crate::db::Scope;
use crate::db::uow::Arg;
use crate::domain::DomainError;
use crate::domain::{Action, parse_name};
use crate::error::ApiResult;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::page::{Page, PageQuery};
use crate::idempotency::{Created, Creating};
use crate::orgs::context::{Collection, OrgRequest};
use crate::state::AppState;

/// Longest list name.
pub const LIST_NAME_MAX: usize = 200;

/// A list as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
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

/// Lists of a board in order.
pub async fn lists_of_board<U: crate::db::uow::Uow>(
    u: &mut U,
    org_id: Uuid,
    board_id: Uuid,
) -> Result<Vec<List>, crate::db::uow::DbError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT {LIST_COLUMNS} FROM lists WHERE org_id = $1 AND board_id = $2 ORDER BY position"
        )
    });
    u.fetch_all(&SQL, &crate::args![org_id, board_id])
        .await?
        .iter()
        .map(write::list)
        .collect()
}

fn list_name(raw: &str) -> Result<String, DomainError> {
    parse_name(raw, LIST_NAME_MAX).map_err(|m| DomainError::invalid_field("name", m))
}

/// Lists of a board, in order.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/boards/{board}/lists", tag = "lists",
    params(BoardPath, PageQuery,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this page: `304` when nothing in the organization changed since")), security(("bearer" = [])),
    responses((status = 200, body = Page<List>, headers(("ETag" = String, description = "The page's version (`{org}` by id only)"))),
              (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"), (status = 404, body = crate::error::Problem)))]
async fn list_lists(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<BoardPath>,
    AppQuery(q): AppQuery<PageQuery>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    let c = Collection {
        action: Action::ReadOrg,
        name: "lists",
        within: format!(":{}", path.board),
        parent: Some(("boards", path.board)),
        select: format!("SELECT {LIST_COLUMNS} FROM lists WHERE org_id = $1 AND board_id = $2"),
        args: vec![Arg::from(path.board)],
        key: ("position", ">"),
        order: "position",
    };
    crate::http::conditional::collection_page::<String, _, _>(
        &state,
        org,
        q,
        c,
        (&uri, &headers),
        write::list,
        |l| l.position.clone(),
    )
    .await
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
    let scope = Scope::user(org.user_id());
    let created = crate::unit!(state.db, scope, |u| write::create(
        u,
        &org,
        path.board,
        &req.body,
        req.key.as_ref()
    ))?;
    Ok(match created {
        Created::New(list) => (StatusCode::CREATED, AppJson(list)).into_response(),
        Created::Replay(replay) => replay.into_response(),
    })
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
    let scope = Scope::user(org.user_id());
    let list = crate::unit!(state.db, scope, |u| write::rename(
        u, &org, path.list, &body
    ))?;
    Ok(AppJson(list))
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
    let scope = Scope::user(org.user_id());
    crate::unit!(state.db, scope, |u| write::delete(u, &org, path.list))?;
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
    let scope = Scope::user(org.user_id());
    let list = crate::unit!(state.db, scope, |u| write::move_to(
        u, &org, path.list, &body
    ))?;
    Ok(AppJson(list))
}

/// The list writes, each written once for both backends (see
/// [`crate::db::uow`]). Writers that place a list lock the board row first
/// (PostgreSQL; SQLite's writer is alone), so two concurrent appends never
/// pick the same key.
pub mod write {
    use serde_json::json;
    use uuid::Uuid;

    use super::{LIST_COLUMNS, List, ListBody, MoveListBody, list_name};
    use crate::args;
    use crate::db::change::{self, Kind, from_to};
    use crate::db::uow::{AnyRow, Arg, DbError, Uow};
    use crate::db::{lock_suffix, now};
    use crate::domain::ordering::key_between;
    use crate::domain::{Action, DomainError, Ownership};
    use crate::error::FieldError;
    use crate::idempotency::{self, Created, IdemKey};
    use crate::orgs::context::OrgRequest;

    /// A list from a row of [`LIST_COLUMNS`].
    pub(crate) fn list(r: &AnyRow) -> Result<List, DbError> {
        Ok(List {
            id: r.get(0)?,
            org_id: r.get(1)?,
            board_id: r.get(2)?,
            name: r.get(3)?,
            position: r.get(4)?,
            created_at: r.get(5)?,
            updated_at: r.get(6)?,
        })
    }

    /// A list of the organization (`lock`: and locks it on PostgreSQL, for
    /// placing tasks).
    pub async fn load_list<U: Uow>(
        u: &mut U,
        org_id: Uuid,
        id: Uuid,
        lock: bool,
    ) -> Result<Option<List>, DbError> {
        let suffix = if lock { lock_suffix(u.backend()) } else { "" };
        let sql = format!("SELECT {LIST_COLUMNS} FROM lists WHERE org_id = $1 AND id = $2{suffix}");
        u.fetch_optional(&sql, &args![org_id, id])
            .await?
            .as_ref()
            .map(list)
            .transpose()
    }

    /// The order key of the neighbour of `pos` among a board's lists (the
    /// next one when `after`, else the previous one), skipping `skip`.
    async fn neighbour<U: Uow>(
        u: &mut U,
        org_id: Uuid,
        board_id: Uuid,
        pos: Option<&str>,
        after: bool,
        skip: Uuid,
    ) -> Result<Option<String>, DbError> {
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
        let mut bound: Vec<Arg<'_>> = args![org_id, board_id, skip].to_vec();
        bound.extend(pos.map(Arg::from));
        u.fetch_value(sql, &bound).await
    }

    /// The order key of an anchor list given in a move body; `422` when it
    /// is not a list of the same board in this organization.
    async fn anchor<U: Uow>(
        u: &mut U,
        org_id: Uuid,
        board_id: Uuid,
        field: &'static str,
        id: Option<Uuid>,
    ) -> Result<Option<String>, DomainError> {
        let Some(id) = id else { return Ok(None) };
        match load_list(u, org_id, id, false).await? {
            Some(l) if l.board_id == board_id => Ok(Some(l.position)),
            _ => Err(DomainError::invalid_field(
                field,
                "is not a list of this board",
            )),
        }
    }

    /// `POST …/boards/{board}/lists`: a list at the end of the board
    /// (member+).
    pub async fn create<U: Uow>(
        u: &mut U,
        org: &OrgRequest,
        board: Uuid,
        body: &ListBody,
        key: Option<&IdemKey>,
    ) -> Result<Created<List>, DomainError> {
        let oc = org.enter(u).await?;
        oc.require(Action::ManageList, Ownership::NotOwn)?;
        let name = list_name(&body.name)?;
        if let Some(replay) = idempotency::claim(u, oc.user_id, oc.org_id, key).await? {
            return Ok(Created::Replay(replay));
        }
        if crate::boards::lock_board(u, oc.org_id, board)
            .await?
            .is_none()
        {
            return Err(DomainError::not_found());
        }
        let last = neighbour(u, oc.org_id, board, None, false, Uuid::nil()).await?;
        let position = key_between(last.as_deref(), None)?;
        let now = now();
        let id = Uuid::now_v7();
        u.defer(
            "INSERT INTO lists (org_id, id, board_id, name, position, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &args![oc.org_id, id, board, &name, &position, now],
        )
        .await?;
        change::record(
            u,
            oc.change(
                Kind::ListCreated,
                id,
                Some(board),
                json!({ "name": name, "board_id": board }),
            ),
        )
        .await?;
        let list = List {
            id,
            org_id: oc.org_id,
            board_id: board,
            name,
            position,
            created_at: now,
            updated_at: now,
        };
        idempotency::complete(u, oc.user_id, key, 201, &list).await?;
        Ok(Created::New(list))
    }

    /// `PATCH …/lists/{list}` (member+).
    pub async fn rename<U: Uow>(
        u: &mut U,
        org: &OrgRequest,
        id: Uuid,
        body: &ListBody,
    ) -> Result<List, DomainError> {
        let oc = org.enter(u).await?;
        oc.require(Action::ManageList, Ownership::NotOwn)?;
        let name = list_name(&body.name)?;
        let list = load_list(u, oc.org_id, id, true)
            .await?
            .ok_or_else(DomainError::not_found)?;
        let Some(c) = from_to(&list.name, &name) else {
            return Ok(list);
        };
        let now = now();
        u.defer(
            "UPDATE lists SET name = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
            &args![&name, now, oc.org_id, id],
        )
        .await?;
        change::record(
            u,
            oc.change(
                Kind::ListUpdated,
                id,
                Some(list.board_id),
                json!({ "name": c, "board_id": list.board_id }),
            ),
        )
        .await?;
        Ok(List {
            name,
            updated_at: now,
            ..list
        })
    }

    /// `DELETE …/lists/{list}` and its tasks (admin+).
    pub async fn delete<U: Uow>(u: &mut U, org: &OrgRequest, id: Uuid) -> Result<(), DomainError> {
        let oc = org.enter(u).await?;
        oc.require(Action::DeleteList, Ownership::NotOwn)?;
        let list = load_list(u, oc.org_id, id, true)
            .await?
            .ok_or_else(DomainError::not_found)?;
        let tasks: i64 = u
            .fetch_value(
                "SELECT COUNT(*) FROM tasks WHERE org_id = $1 AND list_id = $2",
                &args![oc.org_id, id],
            )
            .await?
            .unwrap_or(0);
        u.defer(
            "DELETE FROM lists WHERE org_id = $1 AND id = $2",
            &args![oc.org_id, id],
        )
        .await?;
        change::record(
            u,
            oc.change(
                Kind::ListDeleted,
                id,
                Some(list.board_id),
                json!({ "name": list.name, "board_id": list.board_id, "tasks_deleted": tasks }),
            ),
        )
        .await?;
        Ok(())
    }

    /// `POST …/lists/{list}/move`: reorder within its board (member+).
    pub async fn move_to<U: Uow>(
        u: &mut U,
        org: &OrgRequest,
        id: Uuid,
        body: &MoveListBody,
    ) -> Result<List, DomainError> {
        let oc = org.enter(u).await?;
        oc.require(Action::ManageList, Ownership::NotOwn)?;
        for (field, anchor_id) in [("after_id", body.after_id), ("before_id", body.before_id)] {
            if anchor_id == Some(id) {
                return Err(DomainError::invalid_field(field, "must be another list"));
            }
        }
        let list = load_list(u, oc.org_id, id, false)
            .await?
            .ok_or_else(DomainError::not_found)?;
        if crate::boards::lock_board(u, oc.org_id, list.board_id)
            .await?
            .is_none()
        {
            return Err(DomainError::not_found());
        }
        let board = list.board_id;
        let after = anchor(u, oc.org_id, board, "after_id", body.after_id).await?;
        let before = anchor(u, oc.org_id, board, "before_id", body.before_id).await?;
        let (lower, upper) = match (after, before) {
            (Some(a), Some(b)) => {
                if a >= b {
                    return Err(DomainError::validation(vec![FieldError::new(
                        "before_id",
                        "must come after after_id",
                    )]));
                }
                (Some(a), Some(b))
            }
            (Some(a), None) => {
                let next = neighbour(u, oc.org_id, board, Some(&a), true, list.id).await?;
                (Some(a), next)
            }
            (None, Some(b)) => {
                let prev = neighbour(u, oc.org_id, board, Some(&b), false, list.id).await?;
                (prev, Some(b))
            }
            (None, None) => {
                let last = neighbour(u, oc.org_id, board, None, false, list.id).await?;
                (last, None)
            }
        };
        let position = key_between(lower.as_deref(), upper.as_deref())?;
        let now = now();
        u.defer(
            "UPDATE lists SET position = $1, updated_at = $2 WHERE org_id = $3 AND id = $4",
            &args![&position, now, oc.org_id, id],
        )
        .await?;
        change::record(
            u,
            oc.change(
                Kind::ListMoved,
                id,
                Some(board),
                json!({ "board_id": board, "position": from_to(&list.position, &position) }),
            ),
        )
        .await?;
        Ok(List {
            position,
            updated_at: now,
            ..list
        })
    }
}
