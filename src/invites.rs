//! Invites: create (admin+, never above the inviter's own power), list
//! (tokens are never shown again), revoke, accept.
//!
//! The token (`obi_<org id>_<256 random bits>`) is returned once by create
//! and mailed by a job enqueued in the same transaction; only its SHA-256 is
//! stored. It is single use, expires (`ORGBOARD_INVITE_TTL_HOURS`, 7 days by
//! default) and is accepted only by the user whose email matches
//! (case-insensitive). Carrying the organization id lets acceptance look the
//! invite up inside its tenant, with row-level security on.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{AuthUser, tokens};
use crate::db::change::{self, Kind};
use crate::db::{Scope, Tx, now};
use crate::domain::{Action, Email, Ownership, Role};
use crate::email::InviteEmail;
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{AppJson, AppPath, AppQuery, ClientIp, RequestId};
use crate::http::page::{Page, PageQuery, open, page_limit, paginate};
use crate::jobs::{self, Job};
use crate::on_tx;
use crate::orgs::context::OrgRequest;
use crate::orgs::{self, Org};
use crate::state::AppState;

/// Where an invite stands.
#[derive(Debug, Clone, Copy, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InviteStatus {
    /// Can still be accepted.
    Pending,
    /// Used.
    Accepted,
    /// Withdrawn.
    Revoked,
    /// Past its expiry.
    Expired,
}

/// An invite as the API shows it (never with its token).
#[derive(Debug, Serialize, ToSchema)]
pub struct Invite {
    /// Invite id.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// Invited address.
    pub email: String,
    /// Role given on acceptance.
    pub role: Role,
    /// Who invited.
    pub invited_by: Uuid,
    /// Where it stands.
    pub status: InviteStatus,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expires.
    pub expires_at: DateTime<Utc>,
    /// Accepted, if it was.
    pub accepted_at: Option<DateTime<Utc>>,
    /// Revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to create: the invite and, this once, its token.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedInvite {
    /// The invite.
    #[serde(flatten)]
    pub invite: Invite,
    /// The accept token. Shown only here; store it or rely on the email.
    pub token: String,
}

#[derive(sqlx::FromRow)]
struct InviteRow {
    id: Uuid,
    org_id: Uuid,
    email: String,
    email_norm: String,
    #[sqlx(try_from = "String")]
    role: Role,
    invited_by: Uuid,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    accepted_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl InviteRow {
    fn status(&self, now: DateTime<Utc>) -> InviteStatus {
        if self.accepted_at.is_some() {
            InviteStatus::Accepted
        } else if self.revoked_at.is_some() {
            InviteStatus::Revoked
        } else if self.expires_at <= now {
            InviteStatus::Expired
        } else {
            InviteStatus::Pending
        }
    }

    fn into_api(self, now: DateTime<Utc>) -> Invite {
        Invite {
            status: self.status(now),
            id: self.id,
            org_id: self.org_id,
            email: self.email,
            role: self.role,
            invited_by: self.invited_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            accepted_at: self.accepted_at,
            revoked_at: self.revoked_at,
        }
    }
}

const INVITE_SELECT: &str = "SELECT id, org_id, email, email_norm, role, invited_by, created_at, \
     expires_at, accepted_at, revoked_at FROM invites WHERE org_id = $1";

/// Body of `POST …/invites`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateInviteBody {
    /// Address to invite.
    pub email: String,
    /// Role to give (not above the inviter's own).
    pub role: Role,
}

/// Body of `POST /invites/accept`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcceptBody {
    /// The token from the invitation.
    pub token: String,
}

/// Path of `DELETE …/invites/{invite_id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct InvitePath {
    /// Organization id or slug.
    pub org: String,
    /// The invite.
    pub invite_id: Uuid,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invites, create_invite))
        .routes(routes!(revoke_invite))
        .routes(routes!(accept_invite))
}

async fn load_invite(
    tx: &mut Tx,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<InviteRow>, sqlx::Error> {
    let sql = format!("{INVITE_SELECT} AND id = $2");
    on_tx!(tx, |c| sqlx::query_as::<_, InviteRow>(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(org_id)
    .bind(id)
    .fetch_optional(c)
    .await)
}

/// Invites of the organization, newest first (admin+).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/invites", tag = "invites",
    params(("org" = String, Path, description = "Organization id or slug"), PageQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Invite>), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
async fn list_invites(
    State(state): State<AppState>,
    org: OrgRequest,
    AppQuery(q): AppQuery<PageQuery>,
) -> ApiResult<AppJson<Page<Invite>>> {
    let (mut tx, ctx) = org.read(&state).await?;
    ctx.require(Action::ManageInvites, Ownership::NotOwn)?;
    let limit = page_limit(q.limit)?;
    let scope = format!("invites:{}", ctx.org_id);
    let before: Option<Uuid> = q
        .cursor
        .as_deref()
        .map(|c| open(&state, &scope, c))
        .transpose()?;
    let sql = match before {
        Some(_) => format!(
            "{INVITE_SELECT} AND id < $2 ORDER BY id DESC LIMIT {}",
            limit + 1
        ),
        None => format!("{INVITE_SELECT} ORDER BY id DESC LIMIT {}", limit + 1),
    };
    let rows = on_tx!(&mut tx, |c| {
        let mut query =
            sqlx::query_as::<_, InviteRow>(sqlx::AssertSqlSafe(sql.as_str())).bind(ctx.org_id);
        if let Some(b) = before {
            query = query.bind(b);
        }
        query.fetch_all(c).await
    })?;
    let now = now();
    let page = paginate(&state, &scope, rows, limit, |r| r.id);
    Ok(AppJson(Page {
        items: page.items.into_iter().map(|r| r.into_api(now)).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Invite someone by email (admin+; never with a role above one's own).
/// The answer carries the accept token once; an email with it is queued.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/invites", tag = "invites",
    params(("org" = String, Path, description = "Organization id or slug")),
    request_body = CreateInviteBody, security(("bearer" = [])),
    responses((status = 201, body = CreatedInvite), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn create_invite(
    State(state): State<AppState>,
    org: OrgRequest,
    AppJson(body): AppJson<CreateInviteBody>,
) -> ApiResult<(StatusCode, AppJson<CreatedInvite>)> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::ManageInvites, Ownership::NotOwn)?;
    let email = Email::parse(&body.email).map_err(|m| ApiError::invalid_field("email", m))?;
    if !ctx.role.may_grant(body.role) {
        return Err(ApiError::forbidden(
            "You cannot invite with a role above your own power.",
        ));
    }
    let member: Option<Uuid> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id \
         WHERE m.org_id = $1 AND u.email_norm = $2"
    )
    .bind(ctx.org_id)
    .bind(&email.normalized)
    .fetch_optional(c)
    .await)?;
    if member.is_some() {
        return Err(
            ApiError::conflict("already_member", "This person is already a member.")
                .with_field("email", "is already a member"),
        );
    }
    let now = now();
    let pending: Option<Uuid> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT id FROM invites WHERE org_id = $1 AND email_norm = $2 \
         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3"
    )
    .bind(ctx.org_id)
    .bind(&email.normalized)
    .bind(now)
    .fetch_optional(c)
    .await)?;
    if pending.is_some() {
        return Err(ApiError::conflict(
            "invite_pending",
            "A pending invite for this email exists; revoke it to invite again.",
        )
        .with_field("email", "already has a pending invite"));
    }

    let id = Uuid::now_v7();
    let (token, hash) = tokens::new_invite_token(ctx.org_id);
    let expires_at = now + Duration::hours(state.config.invite_ttl_hours as i64);
    on_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO invites (org_id, id, email, email_norm, role, token_hash, invited_by, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(ctx.org_id)
    .bind(id)
    .bind(&email.display)
    .bind(&email.normalized)
    .bind(body.role.as_str())
    .bind(hash)
    .bind(ctx.user_id)
    .bind(now)
    .bind(expires_at)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    let (org_name, inviter_name): (String, String) = on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT o.name, u.name FROM organizations o, users u WHERE o.id = $1 AND u.id = $2"
    )
    .bind(ctx.org_id)
    .bind(ctx.user_id)
    .fetch_one(c)
    .await)?;
    jobs::enqueue_in(
        &mut tx,
        &Job::InviteEmail(InviteEmail {
            org_id: ctx.org_id,
            invite_id: id,
            to: email.display.clone(),
            org_name,
            inviter_name,
            role: body.role.as_str().to_owned(),
            token: token.clone(),
            expires_at,
        }),
    )
    .await?;
    change::record(
        &mut tx,
        ctx.change(
            Kind::InviteCreated,
            id,
            None,
            json!({ "email": email.display, "role": body.role, "expires_at": expires_at }),
        ),
    )
    .await?;
    let row = load_invite(&mut tx, ctx.org_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    jobs::wake(&state);
    Ok((
        StatusCode::CREATED,
        AppJson(CreatedInvite {
            invite: row.into_api(now),
            token,
        }),
    ))
}

/// Revoke a pending invite (admin+; admins cannot revoke an owner invite).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/invites/{invite_id}", tag = "invites",
    params(InvitePath), security(("bearer" = [])),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem)))]
async fn revoke_invite(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<InvitePath>,
) -> ApiResult<StatusCode> {
    let (mut tx, ctx) = org.write(&state).await?;
    ctx.require(Action::ManageInvites, Ownership::NotOwn)?;
    let row = load_invite(&mut tx, ctx.org_id, path.invite_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !ctx.role.may_grant(row.role) {
        return Err(ApiError::forbidden("Admins cannot revoke an owner invite."));
    }
    match row.status(now()) {
        InviteStatus::Accepted => {
            return Err(ApiError::conflict(
                "invite_accepted",
                "This invite was already accepted.",
            ));
        }
        InviteStatus::Revoked => return Ok(StatusCode::NO_CONTENT),
        InviteStatus::Pending | InviteStatus::Expired => {}
    }
    on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE invites SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL"
    )
    .bind(now())
    .bind(ctx.org_id)
    .bind(path.invite_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    change::record(
        &mut tx,
        ctx.change(
            Kind::InviteRevoked,
            path.invite_id,
            None,
            json!({ "email": row.email, "role": row.role }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accept an invite: the caller joins with the invited role. Only the user
/// whose email matches may accept, once, before expiry and revocation.
#[utoipa::path(post, path = "/api/v1/invites/accept", tag = "invites", request_body = AcceptBody,
    security(("bearer" = [])),
    responses((status = 200, body = Org), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 409, body = crate::error::Problem),
              (status = 410, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
async fn accept_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    AppJson(body): AppJson<AcceptBody>,
) -> ApiResult<AppJson<Org>> {
    state
        .limits
        .check("invite_accept", ip, Some(&auth.user_id.to_string()))
        .await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invite_not_found",
            "Not found",
            "This invite does not exist, was revoked or was already used.",
        )
    };
    let org_id = tokens::invite_token_org(body.token.trim())
        .filter(|_| body.token.len() <= 200)
        .ok_or_else(not_found)?;
    let hash = tokens::hash_token(body.token.trim());
    let mut tx = state.db.write(Scope::tenant(auth.user_id, org_id)).await?;
    let sql = format!(
        "{INVITE_SELECT} AND token_hash = $2 AND EXISTS \
         (SELECT 1 FROM organizations o WHERE o.id = invites.org_id AND o.deleted_at IS NULL)"
    );
    let row = on_tx!(&mut tx, |c| sqlx::query_as::<_, InviteRow>(
        sqlx::AssertSqlSafe(sql.as_str())
    )
    .bind(org_id)
    .bind(&hash)
    .fetch_optional(c)
    .await)?
    .ok_or_else(not_found)?;
    let now = now();
    match row.status(now) {
        InviteStatus::Pending => {}
        InviteStatus::Expired => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "invite_expired",
                "Gone",
                "This invite has expired; ask for a new one.",
            ));
        }
        InviteStatus::Accepted | InviteStatus::Revoked => return Err(not_found()),
    }
    let user_email: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT email_norm FROM users WHERE id = $1 AND deleted_at IS NULL"
    )
    .bind(auth.user_id)
    .fetch_optional(c)
    .await)?;
    let Some(user_email) = user_email else {
        return Err(ApiError::account_gone());
    };
    if user_email != row.email_norm {
        return Err(
            ApiError::forbidden("This invite was sent to another email address.")
                .with_code("invite_email_mismatch"),
        );
    }
    let already: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2"
    )
    .bind(org_id)
    .bind(auth.user_id)
    .fetch_optional(c)
    .await)?;
    if already.is_some() {
        return Err(ApiError::conflict(
            "already_member",
            "You are already a member.",
        ));
    }
    // Spend the invite first: of two concurrent accepts only one wins.
    let spent = on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE invites SET accepted_at = $1, accepted_by = $2 \
         WHERE org_id = $3 AND id = $4 AND accepted_at IS NULL AND revoked_at IS NULL"
    )
    .bind(now)
    .bind(auth.user_id)
    .bind(org_id)
    .bind(row.id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    if spent != 1 {
        return Err(not_found());
    }
    on_tx!(&mut tx, |c| {
        sqlx::query(
        "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)"
    )
    .bind(org_id)
    .bind(auth.user_id)
    .bind(row.role.as_str())
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    let entry = |kind, entity_id: Uuid, payload| change::Change {
        org_id,
        actor_id: Some(auth.user_id),
        kind,
        entity_id,
        board_id: None,
        payload,
        card: None,
        request_id: request_id.as_deref(),
    };
    change::record(
        &mut tx,
        entry(
            Kind::InviteAccepted,
            row.id,
            json!({ "email": row.email, "user_id": auth.user_id }),
        ),
    )
    .await?;
    change::record(
        &mut tx,
        entry(
            Kind::MemberJoined,
            auth.user_id,
            json!({ "user_id": auth.user_id, "role": row.role, "invite_id": row.id }),
        ),
    )
    .await?;
    let org = orgs::load_org(&mut tx, auth.user_id, org_id)
        .await?
        .ok_or_else(not_found)?;
    tx.commit().await?;
    Ok(AppJson(org))
}
