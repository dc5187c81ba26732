//! Comments on tasks: list, add (member+), edit (author only), delete
//! (author, or admin+ for any).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::db::Scope;
use crate::db::uow::Arg;
use crate::domain::Action;
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::page::{Page, PageQuery};
use crate::idempotency::Created;
use crate::idempotency::Creating;
use crate::orgs::context::{Collection, OrgRequest};
use crate::state::AppState;
use crate::tasks::TaskPath;

/// Longest comment, in characters.
pub const BODY_MAX: usize = 10_000;

/// A comment.
#[derive(Debug, Clone, Serialize, ToSchema)]
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

fn parse_body(raw: &str) -> Result<String, DomainError> {
    let s = raw.trim();
    let n = s.chars().count();
    if n == 0 || n > BODY_MAX {
        return Err(DomainError::invalid_field(
            "body",
            format!("must be 1–{BODY_MAX} characters"),
        ));
    }
    if s.contains('\0') {
        // PostgreSQL cannot store NUL in text; refuse it on both backends.
        return Err(DomainError::invalid_field(
            "body",
            "must not contain NUL characters",
        ));
    }
    Ok(s.to_owned())
}

/// Comments of a task, oldest first.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/tasks/{task}/comments", tag = "comments",
    params(TaskPath, PageQuery,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this page: `304` when nothing in the organization changed since")), security(("bearer" = [])),
    responses((status = 200, body = Page<Comment>, headers(("ETag" = String, description = "The page's version (`{org}` by id only)"))),
              (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"), (status = 404, body = crate::error::Problem)))]
async fn list_comments(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<TaskPath>,
    AppQuery(q): AppQuery<PageQuery>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    let c = Collection {
        action: Action::ReadOrg,
        name: "comments",
        within: format!(":{}", path.task),
        parent: Some(("tasks", path.task)),
        select: format!(
            "SELECT {COMMENT_COLUMNS} FROM comments WHERE org_id = $1 AND task_id = $2"
        ),
        args: vec![Arg::from(path.task)],
        key: ("id", ">"),
        order: "id",
    };
    crate::http::conditional::collection_page::<Uuid, _, _>(
        &state,
        org,
        q,
        c,
        (&uri, &headers),
        write::comment,
        |c| c.id,
    )
    .await
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
    let scope = Scope::user(org.user_id());
    let created = crate::unit!(state.db, scope, |u| write::create(
        u,
        &org,
        path.task,
        &req.body,
        req.key.as_ref()
    ))?;
    Ok(match created {
        Created::New(comment) => (StatusCode::CREATED, AppJson(comment)).into_response(),
        Created::Replay(replay) => replay.into_response(),
    })
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
    let scope = Scope::user(org.user_id());
    let comment = crate::unit!(state.db, scope, |u| write::edit(
        u,
        &org,
        path.comment,
        &req
    ))?;
    Ok(AppJson(comment))
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
    let scope = Scope::user(org.user_id());
    crate::unit!(state.db, scope, |u| write::delete(u, &org, path.comment))?;
    Ok(StatusCode::NO_CONTENT)
}

/// The comment writes, each written once for both backends (see
/// [`crate::db::uow`]).
pub mod write {
    use std::sync::LazyLock;

    use serde_json::json;
    use uuid::Uuid;

    use super::{COMMENT_COLUMNS, Comment, CommentBody, parse_body};
    use crate::args;
    use crate::db::change::{self, CardChange, Kind, from_to};
    use crate::db::now;
    use crate::db::uow::{AnyRow, DbError, Uow};
    use crate::domain::{Action, DomainError, Ownership};

    use crate::idempotency::Created;
    use crate::idempotency::{self, IdemKey};
    use crate::orgs::context::Fused;
    use crate::orgs::context::{OrgContext, OrgRequest};
    use crate::tasks::card::{CARD_COLUMNS, CARD_RETURNING, CARD_WIDTH, CardFields};
    use crate::tasks::write::task_join;

    /// Sets a task's comment count to `count` (an expression of the old
    /// one) and moves its revision on ($1 org, $2 task), returning its card
    /// as it now is: a comment changes the count a card shows, and the
    /// board's cached views are patched with the card (see
    /// [`CardFields::rev`]) instead of read again.
    fn count_sql(count: &str) -> String {
        format!(
            "UPDATE tasks SET comment_count = {count}, comment_rev = comment_rev + 1 \
             WHERE org_id = $1 AND id = $2 RETURNING {CARD_RETURNING}"
        )
    }

    /// A comment added: the count's update, without its card (the use case
    /// read the card, locked, beforehand: [`CardFields::with_comment_added`]).
    const COUNT_ADDED: &str = "UPDATE tasks SET comment_count = comment_count + 1, \
         comment_rev = comment_rev + 1 WHERE org_id = $1 AND id = $2";
    /// [`count_sql`] of a comment removed.
    static COUNT_REMOVED: LazyLock<String> = LazyLock::new(|| {
        count_sql("CASE WHEN comment_count > 0 THEN comment_count - 1 ELSE 0 END")
    });

    /// Runs `sql` ([`COUNT_REMOVED`]) on `task`: its
    /// board and what the change did to its card; `None` when there is no
    /// such task. The card is written from the row in place (on SQLite's
    /// writer nothing is copied out of the statement).
    async fn count<U: Uow>(
        u: &mut U,
        sql: &str,
        org_id: Uuid,
        task_id: Uuid,
    ) -> Result<Option<(Uuid, CardChange)>, DomainError> {
        let mut found = None;
        u.fetch_each(sql, &args![org_id, task_id], |r| {
            let card = CardFields::from_row(r)?;
            found = Some((card.board_id, card.change(Some(card.list_id))?));
            Ok::<_, DomainError>(())
        })
        .await?;
        Ok(found)
    }

    /// A comment from a row of [`COMMENT_COLUMNS`].
    pub(super) fn comment(r: &AnyRow) -> Result<Comment, DbError> {
        Ok(Comment {
            id: r.get(0)?,
            org_id: r.get(1)?,
            task_id: r.get(2)?,
            author_id: r.get(3)?,
            body: r.get(4)?,
            created_at: r.get(5)?,
            updated_at: r.get(6)?,
            edited_at: r.get(7)?,
        })
    }

    /// A comment of the organization, if it exists.
    async fn load<U: Uow>(u: &mut U, org_id: Uuid, id: Uuid) -> Result<Option<Comment>, DbError> {
        let sql = format!("SELECT {COMMENT_COLUMNS} FROM comments WHERE org_id = $1 AND id = $2");
        u.fetch_optional(&sql, &args![org_id, id])
            .await?
            .as_ref()
            .map(comment)
            .transpose()
    }

    /// The comment and the caller, after the checks edit and delete share:
    /// it exists (`404`) and the caller may `action` it (author: own).
    async fn mine<U: Uow>(
        u: &mut U,
        org: &OrgRequest,
        id: Uuid,
        action: Action,
    ) -> Result<(OrgContext, Comment), DomainError> {
        let oc = org.enter(u).await?;
        oc.require(action, Ownership::Own)?;
        let comment = load(u, oc.org_id, id)
            .await?
            .ok_or_else(DomainError::not_found)?;
        let own = if comment.author_id == oc.user_id {
            Ownership::Own
        } else {
            Ownership::NotOwn
        };
        oc.require(action, own)?;
        Ok((oc, comment))
    }

    /// `POST …/tasks/{task}/comments`. One statement reads the membership
    /// and the task's card, locking the task on PostgreSQL
    /// ([`task_join`]: a concurrent comment waits, so the count read here
    /// plus one is the count written); the count's update, the comment,
    /// its audit row and event go with `COMMIT`: two round trips.
    pub async fn create<U: Uow>(
        u: &mut U,
        org: &OrgRequest,
        task_id: Uuid,
        body: &CommentBody,
        key: Option<&IdemKey>,
    ) -> Result<Created<Comment>, DomainError> {
        let joins = task_join(u.backend(), 3);
        let read = Fused {
            columns: CARD_COLUMNS,
            width: CARD_WIDTH,
            joins: &joins,
            args: args![task_id].to_vec(),
        };
        let (oc, row) = org.enter_reading(u, &read).await?;
        oc.require(Action::CreateComment, Ownership::NotOwn)?;
        let body = parse_body(&body.body)?;
        if let Some(replay) = idempotency::claim(u, oc.user_id, oc.org_id, key).await? {
            return Ok(Created::Replay(replay));
        }
        if row.get::<Option<Uuid>>(0)?.is_none() {
            return Err(DomainError::not_found());
        }
        // The card as the count's update leaves it, for the board's cached
        // views (see [`CardFields::rev`]).
        let card = CardFields::from_row((&row).into())?.with_comment_added();
        let (board, card) = (card.board_id, card.change(Some(card.list_id))?);
        u.defer(COUNT_ADDED, &args![oc.org_id, task_id]).await?;
        let id = Uuid::now_v7();
        let now = now();
        u.defer(
            "INSERT INTO comments (org_id, id, task_id, author_id, body, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &args![oc.org_id, id, task_id, oc.user_id, &body, now],
        )
        .await?;
        change::record(
            u,
            oc.change(
                Kind::CommentCreated,
                id,
                Some(board),
                json!({ "task_id": task_id, "body": body }),
            )
            .with_card(card),
        )
        .await?;
        let comment = Comment {
            id,
            org_id: oc.org_id,
            task_id,
            author_id: oc.user_id,
            body,
            created_at: now,
            updated_at: now,
            edited_at: None,
        };
        idempotency::complete(u, oc.user_id, key, 201, &comment).await?;
        Ok(Created::New(comment))
    }

    /// `PATCH …/comments/{comment}` (its author only).
    pub async fn edit<U: Uow>(
        u: &mut U,
        org: &OrgRequest,
        id: Uuid,
        req: &CommentBody,
    ) -> Result<Comment, DomainError> {
        let (oc, comment) = mine(u, org, id, Action::EditComment).await?;
        let body = parse_body(&req.body)?;
        let Some(c) = from_to(&comment.body, &body) else {
            return Ok(comment);
        };
        let board: Option<Uuid> = u
            .fetch_value(
                "SELECT board_id FROM tasks WHERE org_id = $1 AND id = $2",
                &args![oc.org_id, comment.task_id],
            )
            .await?;
        let now = now();
        u.defer(
            "UPDATE comments SET body = $1, updated_at = $2, edited_at = $2 WHERE org_id = $3 AND id = $4",
            &args![&body, now, oc.org_id, id],
        )
        .await?;
        // A comment's text is not on its card: the board's views stay.
        change::record(
            u,
            oc.change(
                Kind::CommentUpdated,
                id,
                board,
                json!({ "task_id": comment.task_id, "body": c }),
            )
            .with_card(CardChange::Unchanged {
                id: comment.task_id,
            }),
        )
        .await?;
        Ok(Comment {
            body,
            updated_at: now,
            edited_at: Some(now),
            ..comment
        })
    }

    /// `DELETE …/comments/{comment}` (its author; admins and owners: any).
    pub async fn delete<U: Uow>(u: &mut U, org: &OrgRequest, id: Uuid) -> Result<(), DomainError> {
        let (oc, comment) = mine(u, org, id, Action::DeleteComment).await?;
        let deleted = u
            .execute(
                "DELETE FROM comments WHERE org_id = $1 AND id = $2",
                &args![oc.org_id, id],
            )
            .await?;
        if deleted == 0 {
            return Err(DomainError::not_found());
        }
        let counted = count(u, &COUNT_REMOVED, oc.org_id, comment.task_id).await?;
        let mut change = oc.change(
            Kind::CommentDeleted,
            id,
            counted.as_ref().map(|(board, _)| *board),
            json!({ "task_id": comment.task_id, "author_id": comment.author_id }),
        );
        if let Some((_, card)) = counted {
            change = change.with_card(card);
        }
        change::record(u, change).await?;
        Ok(())
    }
}
