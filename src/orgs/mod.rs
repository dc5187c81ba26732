//! Organizations (tenants): create, list mine, read, rename / change slug,
//! soft-delete.

pub mod context;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::args;
use crate::auth::user::AuthUser;
use crate::db::change::{self, Kind, from_to};
use crate::db::uow::{AnyRow, Arg, DbError, Uow, enter_tenant};
use crate::db::{Scope, now};
use crate::domain::{Action, NAME_MAX, Ownership, Role, Slug, parse_name};
use crate::domain::{DomainError, DomainResult};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{AppJson, AppQuery, RequestId};
use crate::http::page::{Page, PageQuery, open, page_limit, paginate};
use crate::state::AppState;
use context::OrgRequest;

/// An organization, with the caller's role in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Org {
    /// Organization id (UUIDv7).
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// URL-safe handle, usable instead of the id in paths.
    pub slug: String,
    /// `free`, `pro` or `enterprise` (SPEC §13; set by an instance
    /// administrator until billing exists).
    pub plan: String,
    /// Suspended by the instance administrator: every route of the
    /// organization answers `423 org_suspended` until it is resumed.
    pub suspended: bool,
    /// Created at sign-up for its owner.
    pub is_personal: bool,
    /// Who created it.
    pub created_by: Uuid,
    /// The caller's role.
    pub role: Role,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last renamed or changed.
    pub updated_at: DateTime<Utc>,
}

/// Body of `POST /orgs`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateOrgBody {
    /// Display name, 1–100 characters.
    pub name: String,
    /// Optional handle (2–64 of a-z, 0-9, '-'); derived from the name when absent.
    pub slug: Option<String>,
}

/// Body of `PATCH /orgs/{org}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateOrgBody {
    /// New display name.
    pub name: Option<String>,
    /// New handle.
    pub slug: Option<String>,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_orgs, create_org_route))
        .routes(routes!(get_org, update_org, delete_org))
}

const ORG_SELECT: &str = "SELECT o.id, o.name, o.slug, o.plan, o.suspended_at IS NOT NULL AS suspended, \
     o.is_personal, o.created_by, m.role, o.created_at, o.updated_at FROM organizations o \
     JOIN memberships m ON m.org_id = o.id AND m.user_id = $1";

fn org_from_row(r: &AnyRow) -> Result<Org, DbError> {
    Ok(Org {
        id: r.get(0)?,
        name: r.get(1)?,
        slug: r.get(2)?,
        plan: r.get(3)?,
        suspended: r.get(4)?,
        is_personal: r.get(5)?,
        created_by: r.get(6)?,
        role: Role::try_from(r.get::<String>(7)?).map_err(|e| DbError::Decode(7, e))?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

/// The organization `org_id` with `user_id`'s role in it, unless deleted
/// or `user_id` is not a member.
pub(crate) async fn load_org<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    org_id: Uuid,
) -> Result<Option<Org>, DbError> {
    let sql = format!("{ORG_SELECT} WHERE o.id = $2 AND o.deleted_at IS NULL");
    u.fetch_optional(&sql, &args![user_id, org_id])
        .await?
        .as_ref()
        .map(org_from_row)
        .transpose()
}

/// Soft-deletes an organization in the unit of work `u` (entered in it):
/// it answers `404` from then on and its slug is free again. The delete
/// route and account deletion share it.
pub(crate) async fn soft_delete<U: Uow>(u: &mut U, org_id: Uuid) -> Result<u64, DbError> {
    u.execute(
        "UPDATE organizations SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL",
        &args![now(), org_id],
    )
    .await
}

/// Creates an organization owned by `user_id` in the unit of work `u` and
/// records `org.created` and `member.joined`. Without a slug, the name's
/// plain slug when it is free ("Acme Corp" → `acme-corp`), else that with a
/// short random suffix. `409` when the given slug is taken.
pub async fn create_org<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    name: &str,
    slug: Option<Slug>,
    personal: bool,
    request_id: Option<&str>,
) -> DomainResult<Org> {
    let org_id = Uuid::now_v7();
    enter_tenant(u, org_id).await?;
    let now = now();
    let given = slug.is_some();
    let mut slug = slug
        .or_else(|| Slug::plain(name))
        .unwrap_or_else(|| Slug::derive_from(name));
    // A derived slug that collides is derived again; a given one is a 409.
    for _ in 0..6 {
        let inserted = u
            .execute(
                "INSERT INTO organizations (id, name, slug, is_personal, created_by, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (slug) WHERE deleted_at IS NULL DO NOTHING",
                &args![org_id, name, slug.0.as_str(), personal, user_id, now],
            )
            .await?;
        if inserted == 1 {
            u.defer(
                "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) \
                 VALUES ($1, $2, 'owner', $3, $3)",
                &args![org_id, user_id, now],
            )
            .await?;
            let entry = |kind, entity_id: Uuid, payload| change::Change {
                org_id,
                actor_id: Some(user_id),
                kind,
                entity_id,
                board_id: None,
                payload,
                card: None,
                request_id,
            };
            change::record(
                u,
                entry(
                    Kind::OrgCreated,
                    org_id,
                    json!({"name": name, "slug": slug.0}),
                ),
            )
            .await?;
            change::record(
                u,
                entry(
                    Kind::MemberJoined,
                    user_id,
                    json!({"user_id": user_id, "role": "owner"}),
                ),
            )
            .await?;
            return load_org(u, user_id, org_id)
                .await?
                .ok_or_else(|| DomainError::internal(anyhow::anyhow!("created org not visible")));
        }
        if given {
            return Err(slug_taken());
        }
        slug = Slug::derive_from(name);
    }
    Err(DomainError::internal(anyhow::anyhow!(
        "could not derive a free slug"
    )))
}

fn slug_taken() -> DomainError {
    DomainError::conflict("slug_taken", "This slug is already in use.")
        .with_field("slug", "is already in use")
}

/// My organizations, with my role in each.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs", params(PageQuery),
    security(("bearer" = [])), responses((status = 200, body = Page<Org>)))]
async fn list_orgs(
    State(state): State<AppState>,
    auth: AuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> ApiResult<AppJson<Page<Org>>> {
    let limit = page_limit(q.limit)?;
    let scope = format!("orgs:{}", auth.user_id);
    let after: Option<Uuid> = q
        .cursor
        .as_deref()
        .map(|c| open(&state, &scope, c))
        .transpose()?;
    let sql = format!(
        "{ORG_SELECT} WHERE o.deleted_at IS NULL{} ORDER BY o.id LIMIT {}",
        if after.is_some() {
            " AND o.id > $2"
        } else {
            ""
        },
        limit + 1
    );
    let rows = crate::read_unit!(state.db, Scope::user(auth.user_id), |u| async move {
        let mut args = vec![Arg::from(auth.user_id)];
        if let Some(a) = after {
            args.push(Arg::from(a));
        }
        u.fetch_all(&sql, &args)
            .await?
            .iter()
            .map(org_from_row)
            .collect::<Result<Vec<_>, DbError>>()
    })?;
    Ok(AppJson(paginate(&state, &scope, rows, limit, |o| o.id)))
}

/// Create an organization; the caller becomes its owner.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", operation_id = "create_org", request_body = CreateOrgBody,
    security(("bearer" = [])),
    responses((status = 201, body = Org), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn create_org_route(
    State(state): State<AppState>,
    auth: AuthUser,
    RequestId(request_id): RequestId,
    AppJson(body): AppJson<CreateOrgBody>,
) -> ApiResult<(StatusCode, AppJson<Org>)> {
    let mut errors = Vec::new();
    let name =
        parse_name(&body.name, NAME_MAX).map_err(|m| errors.push(FieldError::new("name", m)));
    let slug = body
        .slug
        .as_deref()
        .map(Slug::parse)
        .transpose()
        .map_err(|m| errors.push(FieldError::new("slug", m)));
    let (Ok(name), Ok(slug)) = (name, slug) else {
        return Err(ApiError::validation(errors));
    };
    let user_id = auth.user_id;
    let org = crate::unit!(state.db, Scope::user(user_id), |u| async move {
        // A token outlives an account deleted meanwhile: answer 401, not a
        // foreign-key error.
        if crate::auth::user::load_user(u, user_id).await?.is_none() {
            return Err(DomainError::account_gone());
        }
        create_org(u, user_id, &name, slug, false, request_id.as_deref()).await
    })?;
    Ok((StatusCode::CREATED, AppJson(org)))
}

/// An organization I belong to.
#[utoipa::path(get, path = "/api/v1/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "Organization id or slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Org), (status = 404, body = crate::error::Problem)))]
async fn get_org(State(state): State<AppState>, org: OrgRequest) -> ApiResult<AppJson<Org>> {
    let (_, scope) = org.read_scope();
    let org = crate::read_unit!(state.db, scope, |u| async move {
        let ctx = org.enter(u).await?;
        ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
        load_org(u, ctx.user_id, ctx.org_id)
            .await?
            .ok_or_else(DomainError::not_found)
    })?;
    Ok(AppJson(org))
}

/// Rename an organization or change its slug (admin+).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}", tag = "orgs", request_body = UpdateOrgBody,
    params(("org" = String, Path, description = "Organization id or slug")),
    security(("bearer" = [])),
    responses((status = 200, body = Org), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_org(
    State(state): State<AppState>,
    org: OrgRequest,
    AppJson(body): AppJson<UpdateOrgBody>,
) -> ApiResult<AppJson<Org>> {
    let scope = Scope::user(org.user_id());
    let org = crate::unit!(state.db, scope, |u| update(u, &org, body))?;
    Ok(AppJson(org))
}

/// `PATCH /orgs/{org}` (admin+): a new name and/or slug; `409` when the
/// slug is taken. Written once for both backends.
pub async fn update<U: Uow>(u: &mut U, org: &OrgRequest, body: UpdateOrgBody) -> DomainResult<Org> {
    let ctx = org.enter(u).await?;
    ctx.require(Action::UpdateOrg, Ownership::NotOwn)?;
    let mut errors = Vec::new();
    let name = body
        .name
        .as_deref()
        .map(|n| parse_name(n, NAME_MAX))
        .transpose()
        .map_err(|m| errors.push(FieldError::new("name", m)));
    let slug = body
        .slug
        .as_deref()
        .map(Slug::parse)
        .transpose()
        .map_err(|m| errors.push(FieldError::new("slug", m)));
    let (Ok(name), Ok(slug)) = (name, slug) else {
        return Err(DomainError::validation(errors));
    };

    let current = load_org(u, ctx.user_id, ctx.org_id)
        .await?
        .ok_or_else(DomainError::not_found)?;
    let new_name = name.unwrap_or_else(|| current.name.clone());
    let new_slug = slug.map(|s| s.0).unwrap_or_else(|| current.slug.clone());
    let mut payload = serde_json::Map::new();
    if let Some(c) = from_to(&current.name, &new_name) {
        payload.insert("name".into(), c);
    }
    if let Some(c) = from_to(&current.slug, &new_slug) {
        payload.insert("slug".into(), c);
    }
    if payload.is_empty() {
        return Ok(current);
    }
    if new_slug != current.slug {
        let taken: Option<Uuid> = u
            .fetch_value(
                "SELECT id FROM organizations WHERE slug = $1 AND deleted_at IS NULL",
                &args![new_slug.as_str()],
            )
            .await?;
        // RLS hides other tenants' rows from this query on PostgreSQL; the
        // unique index below still refuses a collision.
        if taken.is_some() {
            return Err(slug_taken());
        }
    }
    let res = u
        .execute(
            "UPDATE organizations SET name = $1, slug = $2, updated_at = $3 WHERE id = $4",
            &args![new_name.as_str(), new_slug.as_str(), now(), ctx.org_id],
        )
        .await;
    if let Err(e) = res {
        return Err(if e.is_unique_violation() {
            slug_taken()
        } else {
            e.into()
        });
    }
    change::record(
        u,
        ctx.change(Kind::OrgUpdated, ctx.org_id, None, payload.into()),
    )
    .await?;
    load_org(u, ctx.user_id, ctx.org_id)
        .await?
        .ok_or_else(DomainError::not_found)
}

/// Delete an organization (owner only). It is soft-deleted: every route of
/// it answers `404` from then on, and its slug is free again.
#[utoipa::path(delete, path = "/api/v1/orgs/{org}", tag = "orgs",
    params(("org" = String, Path, description = "Organization id or slug")),
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn delete_org(State(state): State<AppState>, org: OrgRequest) -> ApiResult<StatusCode> {
    let scope = Scope::user(org.user_id());
    crate::unit!(state.db, scope, |u| async move {
        let ctx = org.enter(u).await?;
        ctx.require(Action::DeleteOrg, Ownership::NotOwn)?;
        soft_delete(u, ctx.org_id).await?;
        change::record(u, ctx.change(Kind::OrgDeleted, ctx.org_id, None, json!({}))).await?;
        Ok::<_, ApiError>(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}
