//! Members of an organization: list, change role, remove, leave.
//!
//! Rules (besides the permission table): an organization never loses its
//! last owner; an admin neither grants owner nor touches owners. Owner rows
//! are locked (`FOR UPDATE` on PostgreSQL; SQLite has a single writer) before
//! the "last owner" check, so two owners demoting each other concurrently
//! cannot both succeed.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::db::change::{self, Kind, from_to};
use crate::db::{Backend, Tx, now};
use crate::domain::{Action, Ownership, Role};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::page::{Page, PageQuery, open, page_limit, paginate};
use crate::on_tx;
use crate::orgs::context::OrgRequest;
use crate::state::AppState;

/// A member as the API shows them.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role here.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

/// Body of `PATCH …/members/{user_id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeRoleBody {
    /// The new role.
    pub role: Role,
}

/// Path of member routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MemberPath {
    /// Organization id or slug.
    pub org: String,
    /// The member's user id.
    pub user_id: Uuid,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_members))
        .routes(routes!(change_role, remove_member))
}

const MEMBER_SELECT: &str = "SELECT m.user_id, u.email, u.name, m.role, m.created_at AS joined_at \
     FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.org_id = $1";

async fn load_member(
    tx: &mut Tx,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Member>, sqlx::Error> {
    let sql = format!("{MEMBER_SELECT} AND m.user_id = $2");
    on_tx!(tx, |c| sqlx::query_as::<_, Member>(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(c)
    .await)
}

/// Locks the owner rows of the organization and counts them.
async fn lock_owners(tx: &mut Tx, org_id: Uuid) -> Result<usize, sqlx::Error> {
    let sql = match tx.backend() {
        Backend::Postgres => {
            "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE"
        }
        Backend::Sqlite => "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner'",
    };
    let owners: Vec<Uuid> = on_tx!(tx, |c| sqlx::query_scalar(sql)
        .bind(org_id)
        .fetch_all(c)
        .await)?;
    Ok(owners.len())
}

/// Removes `user_id` from `org_id` inside `tx` (the remove/leave route, and
/// account deletion).
pub(crate) async fn delete_membership(
    tx: &mut Tx,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<u64, sqlx::Error> {
    on_tx!(tx, |c| sqlx::query(
        "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2"
    )
    .bind(org_id)
    .bind(user_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
}

fn last_owner() -> ApiError {
    ApiError::conflict(
        "last_owner",
        "An organization must keep at least one owner; make someone else owner first.",
    )
}

/// Members with their roles.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/members", tag = "members",
    params(("org" = String, Path, description = "Organization id or slug"), PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Member>), (status = 404, body = crate::error::Problem)))]
async fn list_members(
    State(state): State<AppState>,
    org: OrgRequest,
    AppQuery(q): AppQuery<PageQuery>,
) -> ApiResult<AppJson<Page<Member>>> {
    let (mut tx, ctx) = org.read(&state).await?;
    ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
    let limit = page_limit(q.limit)?;
    let scope = format!("members:{}", ctx.org_id);
    let after: Option<Uuid> = q
        .cursor
        .as_deref()
        .map(|c| open(&state, &scope, c))
        .transpose()?;
    let sql = match after {
        Some(_) => format!(
            "{MEMBER_SELECT} AND m.user_id > $2 ORDER BY m.user_id LIMIT {}",
            limit + 1
        ),
        None => format!("{MEMBER_SELECT} ORDER BY m.user_id LIMIT {}", limit + 1),
    };
    let rows = on_tx!(&mut tx, |c| {
        let mut query =
            sqlx::query_as::<_, Member>(sqlx::AssertSqlSafe(sql.as_str())).bind(ctx.org_id);
        if let Some(a) = after {
            query = query.bind(a);
        }
        query.fetch_all(c).await
    })?;
    Ok(AppJson(paginate(&state, &scope, rows, limit, |m| {
        m.user_id
    })))
}

/// Change a member's role (admin+; admins cannot touch owners or grant owner).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/members/{user_id}", tag = "members",
    params(MemberPath), request_body = ChangeRoleBody, security(("bearer" = [])),
    responses((status = 200, body = Member), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn change_role(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<MemberPath>,
    AppJson(body): AppJson<ChangeRoleBody>,
) -> ApiResult<AppJson<Member>> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::ManageMembers, Ownership::NotOwn)?;
    let target = load_member(&mut tx, ctx.org_id, path.user_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !ctx.role.may_manage(target.role) {
        return Err(ApiError::forbidden("Admins cannot change an owner's role."));
    }
    if !ctx.role.may_grant(body.role) {
        return Err(ApiError::forbidden(
            "You cannot grant a role above your own power.",
        ));
    }
    if target.role == body.role {
        return Ok(AppJson(target));
    }
    if target.role == Role::Owner && lock_owners(&mut tx, ctx.org_id).await? <= 1 {
        return Err(last_owner());
    }
    on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE memberships SET role = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4"
    )
    .bind(body.role.as_str())
    .bind(now())
    .bind(ctx.org_id)
    .bind(path.user_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    change::record(
        &mut tx,
        ctx.change(
            Kind::MemberRoleChanged,
            path.user_id,
            None,
            json!({ "user_id": path.user_id, "role": from_to(&target.role, &body.role) }),
        ),
    )
    .await?;
    let member = load_member(&mut tx, ctx.org_id, path.user_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(AppJson(member))
}

/// Remove a member (admin+; admins cannot remove owners), or leave when
/// `user_id` is the caller. The last owner can do neither.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/members/{user_id}", tag = "members",
    params(MemberPath), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn remove_member(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<MemberPath>,
) -> ApiResult<StatusCode> {
    let (mut tx, ctx) = org.write(&state).await?;
    let leaving = path.user_id == ctx.user_id;
    let action = if leaving {
        Action::Leave
    } else {
        Action::ManageMembers
    };
    ctx.require(action, Ownership::NotOwn)?;
    let target = load_member(&mut tx, ctx.org_id, path.user_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !leaving && !ctx.role.may_manage(target.role) {
        return Err(ApiError::forbidden("Admins cannot remove an owner."));
    }
    if target.role == Role::Owner && lock_owners(&mut tx, ctx.org_id).await? <= 1 {
        return Err(last_owner());
    }
    delete_membership(&mut tx, ctx.org_id, path.user_id).await?;
    let (action, payload) = if leaving {
        (
            Kind::MemberLeft,
            json!({ "user_id": path.user_id, "role": target.role }),
        )
    } else {
        (
            Kind::MemberRemoved,
            json!({ "user_id": path.user_id, "role": target.role }),
        )
    };
    change::record(&mut tx, ctx.change(action, path.user_id, None, payload)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
