//! Comments on tasks: list, add (member+), edit (author only), delete
//! (author, or admin+ for any).

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

use crate::audit::{self, change};
use crate::db::{Tx, now};
use crate::domain::{Action, Ownership};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::page::{Page, PageQuery, open, page_limit, paginate};
use crate::idempotency::{self, Creating};
use crate::on_tx;
use crate::orgs::context::OrgRequest;
use crate::state::AppState;
use crate::tasks::TaskPath;

/// Longest comment, in characters.
pub const BODY_MAX: usize = 10_000;

/// A comment.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Comment {
    /// Comment id.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// The task.
    pub task_id: Uuid,
    /// Who wrote it.
    pub author_id: Uuid,
    /// Text, 1–10 000 characters.
    pub body: String,
    /// Written.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was last edited, if ever.
    pub edited_at: Option<DateTime<Utc>>,
}

/// Body of `POST …/comments` and `PATCH /comments/{comment}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CommentBody {
    /// Text, 1–10 000 characters.
    pub body: String,
}

/// Path of comment routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CommentPath {
    /// Organization id or slug.
    pub org: String,
    /// The comment.
    pub comment: Uuid,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_comments, create_comment))
        .routes(routes!(edit_comment, delete_comment))
}

const COMMENT_COLUMNS: &str =
    "id, org_id, task_id, author_id, body, created_at, updated_at, edited_at";

fn parse_body(raw: &str) -> Result<String, ApiError> {
    let s = raw.trim();
    let n = s.chars().count();
    if n == 0 || n > BODY_MAX {
        return Err(ApiError::invalid_field(
            "body",
            format!("must be 1–{BODY_MAX} characters"),
        ));
    }
    if s.contains('\0') {
        // PostgreSQL cannot store NUL in text; refuse it on both backends.
        return Err(ApiError::invalid_field(
            "body",
            "must not contain NUL characters",
        ));
    }
    Ok(s.to_owned())
}

async fn task_exists(tx: &mut Tx, org_id: Uuid, task_id: Uuid) -> Result<bool, sqlx::Error> {
    let found: Option<i32> = on_tx!(tx, |c| sqlx::query_scalar(
        "SELECT 1 FROM tasks WHERE org_id = $1 AND id = $2"
    )
    .bind(org_id)
    .bind(task_id)
    .fetch_optional(c)
    .await)?;
    Ok(found.is_some())
}

async fn load_comment(tx: &mut Tx, org_id: Uuid, id: Uuid) -> Result<Option<Comment>, sqlx::Error> {
    let sql = format!("SELECT {COMMENT_COLUMNS} FROM comments WHERE org_id = $1 AND id = $2");
    on_tx!(tx, |c| sqlx::query_as::<_, Comment>(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(c)
    .await)
}

/// Comments of a task, oldest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/tasks/{task}/comments", tag = "comments",
    params(TaskPath, PageQuery), security(("bearer" = [])),
    responses((status = 200, body = Page<Comment>), (status = 404, body = crate::error::Problem)))]
async fn list_comments(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<TaskPath>,
    AppQuery(q): AppQuery<PageQuery>,
) -> ApiResult<AppJson<Page<Comment>>> {
    let (mut tx, ctx) = org.read(&state).await?;
    ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
    let limit = page_limit(q.limit)?;
    let scope = format!("comments:{}:{}", ctx.org_id, path.task);
    let after: Option<Uuid> = q
        .cursor
        .as_deref()
        .map(|c| open(&state, &scope, c))
        .transpose()?;
    if !task_exists(&mut tx, ctx.org_id, path.task).await? {
        return Err(ApiError::not_found());
    }
    let sql = format!(
        "SELECT {COMMENT_COLUMNS} FROM comments WHERE org_id = $1 AND task_id = $2{} ORDER BY id LIMIT {}",
        if after.is_some() { " AND id > $3" } else { "" },
        limit + 1
    );
    let rows = on_tx!(&mut tx, |c| {
        let mut query = sqlx::query_as::<_, Comment>(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(ctx.org_id)
            .bind(path.task);
        if let Some(a) = after {
            query = query.bind(a);
        }
        query.fetch_all(c).await
    })?;
    Ok(AppJson(paginate(&state, &scope, rows, limit, |c| c.id)))
}

/// Comment on a task (member+).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/tasks/{task}/comments", tag = "comments",
    params(TaskPath, ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer")),
    request_body = CommentBody, security(("bearer" = [])),
    responses((status = 201, body = Comment), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_comment(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<TaskPath>,
    req: Creating<CommentBody>,
) -> ApiResult<Response> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::CreateComment, Ownership::NotOwn)?;
    let body = parse_body(&req.body.body)?;
    if let Some(replay) =
        idempotency::claim(&mut tx, ctx.user_id, ctx.org_id, req.key.as_ref()).await?
    {
        return Ok(replay);
    }
    // Counts the comment on its task (and finds out whether the task exists).
    let counted = on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE tasks SET comment_count = comment_count + 1 WHERE org_id = $1 AND id = $2"
    )
    .bind(ctx.org_id)
    .bind(path.task)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    if counted == 0 {
        return Err(ApiError::not_found());
    }
    let id = Uuid::now_v7();
    let comment = on_tx!(&mut tx, |c| sqlx::query_as::<_, Comment>(
        "INSERT INTO comments (org_id, id, task_id, author_id, body, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         RETURNING id, org_id, task_id, author_id, body, created_at, updated_at, edited_at"
    )
    .bind(ctx.org_id)
    .bind(id)
    .bind(path.task)
    .bind(ctx.user_id)
    .bind(&body)
    .bind(now())
    .fetch_one(c)
    .await)?;
    audit::record(
        &mut tx,
        ctx.audit(
            "comment.created",
            "comment",
            Some(id),
            json!({ "task_id": path.task, "body": body }),
        ),
    )
    .await?;
    idempotency::complete(
        &mut tx,
        ctx.user_id,
        req.key.as_ref(),
        StatusCode::CREATED,
        &comment,
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, AppJson(comment)).into_response())
}

/// Edit one's own comment.
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/comments/{comment}", tag = "comments",
    params(CommentPath), request_body = CommentBody, security(("bearer" = [])),
    responses((status = 200, body = Comment), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn edit_comment(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<CommentPath>,
    AppJson(req): AppJson<CommentBody>,
) -> ApiResult<AppJson<Comment>> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::EditComment, Ownership::Own)?;
    let body = parse_body(&req.body)?;
    let comment = load_comment(&mut tx, ctx.org_id, path.comment)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let own = if comment.author_id == ctx.user_id {
        Ownership::Own
    } else {
        Ownership::NotOwn
    };
    ctx.require(Action::EditComment, own)?;
    let Some(c) = change(&comment.body, &body) else {
        return Ok(AppJson(comment));
    };
    let now = now();
    let updated = on_tx!(&mut tx, |conn| {
        sqlx::query_as::<_, Comment>(
        "UPDATE comments SET body = $1, updated_at = $2, edited_at = $2 WHERE org_id = $3 AND id = $4 \
         RETURNING id, org_id, task_id, author_id, body, created_at, updated_at, edited_at"
    )
    .bind(&body)
    .bind(now)
    .bind(ctx.org_id)
    .bind(path.comment)
    .fetch_one(conn)
    .await
    })?;
    audit::record(
        &mut tx,
        ctx.audit(
            "comment.updated",
            "comment",
            Some(path.comment),
            json!({ "task_id": comment.task_id, "body": c }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(AppJson(updated))
}

/// Delete a comment (its author; admins and owners: any).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/comments/{comment}", tag = "comments",
    params(CommentPath), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn delete_comment(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<CommentPath>,
) -> ApiResult<StatusCode> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::DeleteComment, Ownership::Own)?;
    let comment = load_comment(&mut tx, ctx.org_id, path.comment)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let own = if comment.author_id == ctx.user_id {
        Ownership::Own
    } else {
        Ownership::NotOwn
    };
    ctx.require(Action::DeleteComment, own)?;
    let deleted = on_tx!(&mut tx, |c| sqlx::query(
        "DELETE FROM comments WHERE org_id = $1 AND id = $2"
    )
    .bind(ctx.org_id)
    .bind(path.comment)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    if deleted == 0 {
        return Err(ApiError::not_found());
    }
    on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE tasks SET comment_count = comment_count - 1 \
         WHERE org_id = $1 AND id = $2 AND comment_count > 0"
    )
    .bind(ctx.org_id)
    .bind(comment.task_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    audit::record(
        &mut tx,
        ctx.audit(
            "comment.deleted",
            "comment",
            Some(path.comment),
            json!({ "task_id": comment.task_id, "author_id": comment.author_id }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
