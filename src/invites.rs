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

use crate::args;
use crate::auth::{AuthUser, tokens};
use crate::db::change::{self, Kind};
use crate::db::uow::{AnyRow, DbError, Uow};
use crate::db::{Scope, now};
use crate::domain::{Action, Email, Ownership, Role};
use crate::domain::{DomainError, DomainResult, ErrorKind};
use crate::email::InviteEmail;
use crate::error::ApiResult;
use crate::http::extract::{AppJson, AppPath, AppQuery, ClientIp, RequestId};
use crate::http::page::{Page, PageQuery, paginate};
use crate::jobs::{self, Job};
use crate::orgs::context::{Collection, OrgRequest};
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

struct InviteRow {
    id: Uuid,
    org_id: Uuid,
    email: String,
    email_norm: String,
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

fn invite_from_row(r: &AnyRow) -> Result<InviteRow, DbError> {
    Ok(InviteRow {
        id: r.get(0)?,
        org_id: r.get(1)?,
        email: r.get(2)?,
        email_norm: r.get(3)?,
        role: Role::try_from(r.get::<String>(4)?).map_err(|e| DbError::Decode(4, e))?,
        invited_by: r.get(5)?,
        created_at: r.get(6)?,
        expires_at: r.get(7)?,
        accepted_at: r.get(8)?,
        revoked_at: r.get(9)?,
    })
}

async fn load_invite<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<InviteRow>, DbError> {
    let sql = format!("{INVITE_SELECT} AND id = $2");
    u.fetch_optional(&sql, &args![org_id, id])
        .await?
        .as_ref()
        .map(invite_from_row)
        .transpose()
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
    let c = Collection {
        action: Action::ManageInvites,
        name: "invites",
        within: String::new(),
        parent: None,
        select: INVITE_SELECT.to_owned(),
        args: vec![],
        key: ("id", "<"),
        order: "id DESC",
    };
    let (rows, scope, limit) = org
        .read_page::<Uuid, _>(&state, q, c, invite_from_row)
        .await?;
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
    let ttl = Duration::hours(state.config.invite_ttl_hours as i64);
    let scope = Scope::user(org.user_id());
    let created = crate::unit!(state.db, scope, |u| create(u, &org, body, ttl))?;
    jobs::wake(&state);
    Ok((StatusCode::CREATED, AppJson(created)))
}

/// `POST …/invites` (admin+, never above one's own power): stores the
/// invite and queues its email; the answer carries the token this once.
async fn create<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    body: CreateInviteBody,
    ttl: Duration,
) -> DomainResult<CreatedInvite> {
    let ctx = org.enter(u).await?;
    ctx.require(Action::ManageInvites, Ownership::NotOwn)?;
    let email = Email::parse(&body.email).map_err(|m| DomainError::invalid_field("email", m))?;
    if !ctx.role.may_grant(body.role) {
        return Err(DomainError::forbidden(
            "You cannot invite with a role above your own power.",
        ));
    }
    let member: Option<Uuid> = u
        .fetch_value(
            "SELECT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = $1 AND u.email_norm = $2",
            &args![ctx.org_id, email.normalized.as_str()],
        )
        .await?;
    if member.is_some() {
        return Err(
            DomainError::conflict("already_member", "This person is already a member.")
                .with_field("email", "is already a member"),
        );
    }
    let now = now();
    let pending: Option<Uuid> = u
        .fetch_value(
            "SELECT id FROM invites WHERE org_id = $1 AND email_norm = $2 \
             AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
            &args![ctx.org_id, email.normalized.as_str(), now],
        )
        .await?;
    if pending.is_some() {
        return Err(DomainError::conflict(
            "invite_pending",
            "A pending invite for this email exists; revoke it to invite again.",
        )
        .with_field("email", "already has a pending invite"));
    }

    let id = Uuid::now_v7();
    let (token, hash) = tokens::new_invite_token(ctx.org_id);
    let expires_at = now + ttl;
    u.defer(
        "INSERT INTO invites (org_id, id, email, email_norm, role, token_hash, invited_by, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &args![
            ctx.org_id,
            id,
            email.display.as_str(),
            email.normalized.as_str(),
            body.role.as_str(),
            hash.as_slice(),
            ctx.user_id,
            now,
            expires_at
        ],
    )
    .await?;
    let names = u
        .fetch_optional(
            "SELECT o.name, u.name FROM organizations o, users u WHERE o.id = $1 AND u.id = $2",
            &args![ctx.org_id, ctx.user_id],
        )
        .await?
        .ok_or_else(|| DomainError::internal(anyhow::anyhow!("inviter or organization gone")))?;
    jobs::enqueue_in(
        u,
        &Job::InviteEmail(InviteEmail {
            org_id: ctx.org_id,
            invite_id: id,
            to: email.display.clone(),
            org_name: names.get(0)?,
            inviter_name: names.get(1)?,
            role: body.role.as_str().to_owned(),
            token: token.clone(),
            expires_at,
        }),
    )
    .await?;
    change::record(
        u,
        ctx.change(
            Kind::InviteCreated,
            id,
            None,
            json!({ "email": email.display, "role": body.role, "expires_at": expires_at }),
        ),
    )
    .await?;
    let row = load_invite(u, ctx.org_id, id)
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok(CreatedInvite {
        invite: row.into_api(now),
        token,
    })
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
    let scope = Scope::user(org.user_id());
    crate::unit!(state.db, scope, |u| revoke(u, &org, path.invite_id))?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE …/invites/{invite_id}` (admin+; admins cannot revoke an owner
/// invite); revoking a revoked invite changes nothing.
async fn revoke<U: Uow>(u: &mut U, org: &OrgRequest, invite_id: Uuid) -> DomainResult<()> {
    let ctx = org.enter(u).await?;
    ctx.require(Action::ManageInvites, Ownership::NotOwn)?;
    let row = load_invite(u, ctx.org_id, invite_id)
        .await?
        .ok_or_else(DomainError::not_found)?;
    if !ctx.role.may_grant(row.role) {
        return Err(DomainError::forbidden(
            "Admins cannot revoke an owner invite.",
        ));
    }
    match row.status(now()) {
        InviteStatus::Accepted => {
            return Err(DomainError::conflict(
                "invite_accepted",
                "This invite was already accepted.",
            ));
        }
        InviteStatus::Revoked => return Ok(()),
        InviteStatus::Pending | InviteStatus::Expired => {}
    }
    u.execute(
        "UPDATE invites SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
        &args![now(), ctx.org_id, invite_id],
    )
    .await?;
    change::record(
        u,
        ctx.change(
            Kind::InviteRevoked,
            invite_id,
            None,
            json!({ "email": row.email, "role": row.role }),
        ),
    )
    .await?;
    Ok(())
}

/// Answer to an invite token that names no open invite.
fn invite_not_found() -> DomainError {
    DomainError::new(
        ErrorKind::NotFound,
        "invite_not_found",
        "Not found",
        "This invite does not exist, was revoked or was already used.",
    )
}

/// `POST /invites/accept` in the invite's organization: `user_id` joins it
/// with the invited role, the invite is spent.
async fn accept<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    org_id: Uuid,
    hash: Vec<u8>,
    request_id: Option<String>,
) -> DomainResult<Org> {
    let sql = format!(
        "{INVITE_SELECT} AND token_hash = $2 AND EXISTS \
         (SELECT 1 FROM organizations o WHERE o.id = invites.org_id AND o.deleted_at IS NULL)"
    );
    let row = u
        .fetch_optional(&sql, &args![org_id, hash.as_slice()])
        .await?
        .as_ref()
        .map(invite_from_row)
        .transpose()?
        .ok_or_else(invite_not_found)?;
    let now = now();
    match row.status(now) {
        InviteStatus::Pending => {}
        InviteStatus::Expired => {
            return Err(DomainError::new(
                ErrorKind::Gone,
                "invite_expired",
                "Gone",
                "This invite has expired; ask for a new one.",
            ));
        }
        InviteStatus::Accepted | InviteStatus::Revoked => return Err(invite_not_found()),
    }
    let user_email: Option<String> = u
        .fetch_value(
            "SELECT email_norm FROM users WHERE id = $1 AND deleted_at IS NULL",
            &args![user_id],
        )
        .await?;
    let Some(user_email) = user_email else {
        return Err(DomainError::account_gone());
    };
    if user_email != row.email_norm {
        return Err(
            DomainError::forbidden("This invite was sent to another email address.")
                .with_code("invite_email_mismatch"),
        );
    }
    let already: Option<String> = u
        .fetch_value(
            "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2",
            &args![org_id, user_id],
        )
        .await?;
    if already.is_some() {
        return Err(DomainError::conflict(
            "already_member",
            "You are already a member.",
        ));
    }
    // Spend the invite first: of two concurrent accepts only one wins.
    let spent = u
        .execute(
            "UPDATE invites SET accepted_at = $1, accepted_by = $2 \
             WHERE org_id = $3 AND id = $4 AND accepted_at IS NULL AND revoked_at IS NULL",
            &args![now, user_id, org_id, row.id],
        )
        .await?;
    if spent != 1 {
        return Err(invite_not_found());
    }
    u.defer(
        "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        &args![org_id, user_id, row.role.as_str(), now],
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
        request_id: request_id.as_deref(),
    };
    change::record(
        u,
        entry(
            Kind::InviteAccepted,
            row.id,
            json!({ "email": row.email, "user_id": user_id }),
        ),
    )
    .await?;
    change::record(
        u,
        entry(
            Kind::MemberJoined,
            user_id,
            json!({ "user_id": user_id, "role": row.role, "invite_id": row.id }),
        ),
    )
    .await?;
    orgs::load_org(u, user_id, org_id)
        .await?
        .ok_or_else(invite_not_found)
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
    let org_id = tokens::invite_token_org(body.token.trim())
        .filter(|_| body.token.len() <= 200)
        .ok_or_else(invite_not_found)?;
    let hash = tokens::hash_token(body.token.trim());
    let user_id = auth.user_id;
    let org = crate::unit!(state.db, Scope::tenant(user_id, org_id), |u| accept(
        u, user_id, org_id, hash, request_id
    ))?;
    Ok(AppJson(org))
}
