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

use crate::args;
use crate::db::change::{self, Kind, from_to};
use crate::db::uow::{AnyRow, DbError, Uow};
use crate::db::{Backend, Scope, now};
use crate::domain::DomainError;
use crate::domain::{Action, Ownership, Role};
use crate::error::ApiResult;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::page::{Page, PageQuery, paginate};
use crate::orgs::context::{Collection, OrgRequest};
use crate::state::AppState;

/// A member as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Member {
    /// The user.
    pub user_id: Uuid,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role here.
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

fn member_from_row(r: &AnyRow) -> Result<Member, DbError> {
    let role: String = r.get(3)?;
    Ok(Member {
        user_id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role: Role::try_from(role).map_err(|e| DbError::Decode(3, e))?,
        joined_at: r.get(4)?,
    })
}

async fn load_member<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Member>, DbError> {
    let sql = format!("{MEMBER_SELECT} AND m.user_id = $2");
    u.fetch_optional(&sql, &args![org_id, user_id])
        .await?
        .as_ref()
        .map(member_from_row)
        .transpose()
}

/// How many owners the organization has, their rows locked on PostgreSQL
/// (so two owners cannot demote or remove each other at once).
async fn lock_owners<U: Uow>(u: &mut U, org_id: Uuid) -> Result<usize, DbError> {
    let sql = match u.backend() {
        Backend::Postgres => {
            "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner' FOR UPDATE"
        }
        Backend::Sqlite => "SELECT user_id FROM memberships WHERE org_id = $1 AND role = 'owner'",
    };
    Ok(u.fetch_all(sql, &args![org_id]).await?.len())
}

/// Removes a membership, and the member from every task of the
/// organization it was assigned to (the assignment rows go by cascade; the
/// ids kept on the task rows are taken out first).
pub(crate) async fn delete_membership<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<u64, DbError> {
    crate::tasks::take_out_kept_id(u, org_id, crate::tasks::Related::Assignee, user_id).await?;
    u.execute(
        "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2",
        &args![org_id, user_id],
    )
    .await
}

fn last_owner() -> DomainError {
    DomainError::conflict(
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
    let c = Collection {
        action: Action::ReadOrg,
        name: "members",
        within: String::new(),
        parent: None,
        select: MEMBER_SELECT.to_owned(),
        args: vec![],
        key: ("m.user_id", ">"),
        order: "m.user_id",
    };
    let (rows, scope, limit) = org
        .read_page::<Uuid, _>(&state, q, c, member_from_row)
        .await?;
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
    let scope = Scope::user(org.user_id());
    let member = crate::unit!(state.db, scope, |u| change_role_of(
        u,
        &org,
        path.user_id,
        body.role
    ))?;
    Ok(AppJson(member))
}

/// `PATCH …/members/{user_id}` (admin+; admins cannot touch owners or
/// grant owner; the last owner stays owner), written once for both
/// backends.
pub async fn change_role_of<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    user_id: Uuid,
    role: Role,
) -> Result<Member, DomainError> {
    let oc = org.enter(u).await?;
    oc.require(Action::ManageMembers, Ownership::NotOwn)?;
    let target = load_member(u, oc.org_id, user_id)
        .await?
        .ok_or_else(DomainError::not_found)?;
    if !oc.role.may_manage(target.role) {
        return Err(DomainError::forbidden(
            "Admins cannot change an owner's role.",
        ));
    }
    if !oc.role.may_grant(role) {
        return Err(DomainError::forbidden(
            "You cannot grant a role above your own power.",
        ));
    }
    if target.role == role {
        return Ok(target);
    }
    if target.role == Role::Owner && lock_owners(u, oc.org_id).await? <= 1 {
        return Err(last_owner());
    }
    u.defer(
        "UPDATE memberships SET role = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4",
        &args![role.as_str(), now(), oc.org_id, user_id],
    )
    .await?;
    change::record(
        u,
        oc.change(
            Kind::MemberRoleChanged,
            user_id,
            None,
            json!({ "user_id": user_id, "role": from_to(&target.role, &role) }),
        ),
    )
    .await?;
    Ok(Member { role, ..target })
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
    let scope = Scope::user(org.user_id());
    crate::unit!(state.db, scope, |u| remove(u, &org, path.user_id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE …/members/{user_id}`: remove a member (admin+; admins cannot
/// remove owners), or leave when it is the caller; the last owner can do
/// neither. Written once for both backends.
pub async fn remove<U: Uow>(u: &mut U, org: &OrgRequest, user_id: Uuid) -> Result<(), DomainError> {
    let oc = org.enter(u).await?;
    let leaving = user_id == oc.user_id;
    let action = if leaving {
        Action::Leave
    } else {
        Action::ManageMembers
    };
    oc.require(action, Ownership::NotOwn)?;
    let target = load_member(u, oc.org_id, user_id)
        .await?
        .ok_or_else(DomainError::not_found)?;
    if !leaving && !oc.role.may_manage(target.role) {
        return Err(DomainError::forbidden("Admins cannot remove an owner."));
    }
    if target.role == Role::Owner && lock_owners(u, oc.org_id).await? <= 1 {
        return Err(last_owner());
    }
    delete_membership(u, oc.org_id, user_id).await?;
    let kind = if leaving {
        Kind::MemberLeft
    } else {
        Kind::MemberRemoved
    };
    change::record(
        u,
        oc.change(
            kind,
            user_id,
            None,
            json!({ "user_id": user_id, "role": target.role }),
        ),
    )
    .await?;
    Ok(())
}
