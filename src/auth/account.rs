//! The account life-cycle (SPEC §5): a forgotten password reset by email,
//! and deleting one's account.
//!
//! * `POST /api/v1/auth/password-reset` `{email}` answers `202` whatever the
//!   email: for an account it stores the hash of a new single-use token
//!   (valid [`RESET_TTL`]) and queues an email with the link
//!   `/reset-password?token=…`. Requests are limited per address and per
//!   email as logins are.
//! * `POST /api/v1/auth/password-reset/confirm` `{token, new_password}` sets
//!   the password, spends the token (and every other open link of the
//!   account) and signs out every session. An unknown, used or expired
//!   token is `404 invalid_reset_token` and changes nothing; failed
//!   attempts are limited per address.
//! * `DELETE /api/v1/me` `{password}` deletes the caller's account. In each
//!   organization the caller belongs to: when they are its only member
//!   (their personal organization, and any other nobody joined) the
//!   organization is deleted with them; otherwise they leave it — unless
//!   they are its last owner, which refuses the whole request with
//!   `409 last_owner` and changes nothing. The user row stays (comments,
//!   tasks and audit rows keep pointing at it) as "Deleted user" with no
//!   email or password anyone could sign in with; every session ends.
//!   Invites the user sent stay valid until they expire or are revoked.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AuthUser, cookie, tokens};
use crate::args;
use crate::db::change;
use crate::db::uow::{DbError, Uow, enter_tenant};
use crate::db::{Backend, Scope, now};
use crate::domain::Role;
use crate::domain::{DomainError, DomainResult, ErrorKind};
use crate::domain::{EMAIL_MAX, Password};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{AppJson, ClientIp, RequestId};
use crate::jobs::{self, Job};
use crate::security::{self, Kind};
use crate::state::AppState;

/// How long a reset link works.
pub const RESET_TTL: Duration = Duration::hours(1);
/// Prefix of reset tokens (so a token pasted in the wrong place is told
/// apart without a lookup).
pub const RESET_PREFIX: &str = "obp_";

/// Body of `POST /api/v1/auth/password-reset`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordResetBody {
    /// The account's email.
    pub email: String,
}

/// Body of `POST /api/v1/auth/password-reset/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PasswordResetConfirmBody {
    /// The token of the emailed link.
    pub token: String,
    /// The new password, 10–128 characters.
    pub new_password: String,
}

/// Body of `DELETE /api/v1/me`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteMeBody {
    /// The account's password, to confirm.
    pub password: String,
}

/// A new reset token and its stored hash.
pub fn new_reset_token() -> (String, Vec<u8>) {
    let t = format!("{RESET_PREFIX}{}", tokens::random_token(32));
    let h = tokens::hash_token(&t);
    (t, h)
}

struct Account {
    id: Uuid,
    email: String,
    name: String,
}

/// Stores a reset token for `user_id` in the unit of work `u` (the
/// administrator's `reset-password --link` uses it too, without the
/// email). Returns the token and when it expires.
pub async fn create_reset<U: Uow>(
    u: &mut U,
    user_id: Uuid,
) -> Result<(String, chrono::DateTime<chrono::Utc>), DbError> {
    let (token, hash) = new_reset_token();
    let now = now();
    let expires_at = now + RESET_TTL;
    u.defer(
        "INSERT INTO password_resets (id, user_id, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &args![Uuid::now_v7(), user_id, hash.as_slice(), now, expires_at],
    )
    .await?;
    Ok((token, expires_at))
}

/// Ask for a password reset link by email. Always `202`: whether an account
/// has this email is not told.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth",
    request_body = PasswordResetBody,
    responses((status = 202, description = "If an account has this email, a reset link (valid 1 hour, single use) is on its way"),
              (status = 429, body = crate::error::Problem)))]
async fn request_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<PasswordResetBody>,
) -> ApiResult<StatusCode> {
    let email_norm = body.email.trim().to_lowercase();
    let plausible = email_norm.chars().count() <= EMAIL_MAX && !email_norm.contains('\0');
    let key = if plausible {
        email_norm.as_str()
    } else {
        "(implausible)"
    };
    state.limits.check("password_reset", ip, Some(key)).await?;
    if !plausible {
        return Ok(StatusCode::ACCEPTED);
    }
    crate::unit!(state.db, Scope::system(), |u| async move {
        let Some(r) = u
            .fetch_optional(
                "SELECT id, email, name FROM users WHERE email_norm = $1 AND deleted_at IS NULL",
                &args![email_norm.as_str()],
            )
            .await?
        else {
            return Ok(());
        };
        let account = Account {
            id: r.get(0)?,
            email: r.get(1)?,
            name: r.get(2)?,
        };
        let (token, expires_at) = create_reset(u, account.id).await?;
        jobs::enqueue_in(
            u,
            &Job::PasswordResetEmail(crate::email::PasswordResetEmail {
                user_id: account.id,
                to: account.email,
                name: account.name,
                token,
                expires_at,
            }),
        )
        .await?;
        security::record_in(
            u,
            &security::Entry::new(Kind::PasswordResetRequested, Some(account.id), Some(ip)),
        )
        .await?;
        Ok::<_, DomainError>(())
    })?;
    jobs::wake(&state);
    Ok(StatusCode::ACCEPTED)
}

/// `404`, as for an invite token that names nothing: the link names no
/// open reset (unknown, used and expired look the same).
fn invalid_reset_token() -> DomainError {
    DomainError::new(
        ErrorKind::NotFound,
        "invalid_reset_token",
        "Not found",
        "This reset link is invalid, already used or expired; ask for a new one.",
    )
}

struct ResetRow {
    id: Uuid,
    user_id: Uuid,
}

/// Looks up an open reset link: its id and account.
async fn open_reset(state: &AppState, hash: &[u8]) -> ApiResult<Option<ResetRow>> {
    let hash = hash.to_vec();
    Ok(crate::read_unit!(
        state.db,
        Scope::system(),
        |u| async move {
            match u
            .fetch_optional(
                "SELECT r.id, r.user_id FROM password_resets r JOIN users u ON u.id = r.user_id \
                 WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.expires_at > $2 \
                 AND u.deleted_at IS NULL",
                &args![&hash[..], now()],
            )
            .await?
        {
            Some(r) => Ok::<_, DbError>(Some(ResetRow {
                id: r.get(0)?,
                user_id: r.get(1)?,
            })),
            None => Ok(None),
        }
        }
    )?)
}

/// Set a new password with the emailed token; every session is signed out.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth",
    request_body = PasswordResetConfirmBody,
    responses((status = 204, description = "Password set; every session signed out"),
              (status = 404, body = crate::error::Problem, description = "`invalid_reset_token`: unknown, used or expired"),
              (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
async fn confirm_password_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<PasswordResetConfirmBody>,
) -> ApiResult<StatusCode> {
    let new = Password::parse(&body.new_password)
        .map_err(|m| ApiError::validation(vec![FieldError::new("new_password", m)]))?;
    let failed = || async {
        match state.limits.check("password_reset_confirm", ip, None).await {
            Err(e) => e,
            Ok(()) => invalid_reset_token().into(),
        }
    };
    if !body.token.starts_with(RESET_PREFIX) || body.token.len() > 200 {
        return Err(failed().await);
    }
    let hash = tokens::hash_token(&body.token);
    let Some(reset) = open_reset(&state, &hash).await? else {
        return Err(failed().await);
    };
    let new_hash = state.hasher.hash(new.0).await?;
    let (reset_id, user_id) = (reset.id, reset.user_id);
    // `None`: another use spent it first.
    let families = crate::unit!(state.db, Scope::system(), |u| async move {
        // Spend it: of two concurrent uses one wins.
        let spent = u
            .execute(
                "UPDATE password_resets SET used_at = $1 \
                 WHERE id = $2 AND used_at IS NULL AND expires_at > $1",
                &args![now(), reset_id],
            )
            .await?;
        if spent == 0 {
            return Ok(None);
        }
        let families = set_password(u, user_id, &new_hash).await?;
        security::record_in(
            u,
            &security::Entry::new(Kind::PasswordReset, Some(user_id), Some(ip))
                .detail(json!({ "via": "link" })),
        )
        .await?;
        Ok::<_, DomainError>(Some(families))
    })?;
    let Some(families) = families else {
        return Err(failed().await);
    };
    for family in families {
        state.live.hub.session_revoked(family);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Sets `user_id`'s password hash, spends their open reset links and
/// revokes every session; returns the revoked session families (to end
/// their live streams after the commit).
pub async fn set_password<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    hash: &str,
) -> Result<Vec<Uuid>, DbError> {
    let now = now();
    u.execute(
        "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL",
        &args![hash, now, user_id],
    )
    .await?;
    u.execute(
        "UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
        &args![now, user_id],
    )
    .await?;
    super::revoke_sessions(u, user_id, None).await
}

/// Delete the caller's account (with the password). Refused with
/// `409 last_owner` while they are the last owner of an organization that
/// has other members.
#[utoipa::path(delete, path = "/api/v1/me", tag = "auth", request_body = DeleteMeBody,
    security(("bearer" = [])),
    responses((status = 204, description = "Deleted; every session ended"),
              (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem, description = "`wrong_password`"),
              (status = 409, body = crate::error::Problem, description = "`last_owner`: name another owner first (`detail` says where)"),
              (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
pub(super) async fn delete_me(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    auth: AuthUser,
    AppJson(body): AppJson<DeleteMeBody>,
) -> ApiResult<Response> {
    let user_id = auth.user_id;
    super::check_own_password(&state, "delete_account", ip, user_id, body.password).await?;
    let families = crate::unit!(state.db, Scope::user(user_id), |u| delete_account(
        u,
        user_id,
        ip,
        request_id.as_deref()
    ))?;
    for family in families {
        state.live.hub.session_revoked(family);
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    if cookie::requested(&headers)
        && let Some(v) = cookie::clear(state.config.public_url_is_https())
    {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Deletes account `user_id` in the unit of work `u`: it leaves every
/// organization (an organization it is alone in is deleted with it), its
/// row is blanked, its sessions revoked; `409 last_owner` while it is the
/// last owner of an organization with other members. Returns the revoked
/// session families.
async fn delete_account<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    ip: std::net::IpAddr,
    request_id: Option<&str>,
) -> DomainResult<Vec<Uuid>> {
    let memberships = u
        .fetch_all(
            "SELECT m.org_id, m.role FROM memberships m \
             JOIN organizations o ON o.id = m.org_id AND o.deleted_at IS NULL \
             WHERE m.user_id = $1 ORDER BY m.org_id",
            &args![user_id],
        )
        .await?;
    let now = now();
    for m in memberships {
        let org_id: Uuid = m.get(0)?;
        let role = Role::try_from(m.get::<String>(1)?)
            .map_err(|e| DomainError::internal(anyhow::anyhow!(e)))?;
        enter_tenant(u, org_id).await?;
        // Locked on PostgreSQL, as a role change locks owners: a concurrent
        // demotion cannot leave the organization without an owner.
        let sql = match u.backend() {
            Backend::Postgres => "SELECT role FROM memberships WHERE org_id = $1 FOR UPDATE",
            Backend::Sqlite => "SELECT role FROM memberships WHERE org_id = $1",
        };
        let roles = u
            .fetch_all(sql, &args![org_id])
            .await?
            .iter()
            .map(|r| r.get::<String>(0))
            .collect::<Result<Vec<_>, _>>()?;
        let entry = |kind, entity: Uuid, payload| change::Change {
            org_id,
            actor_id: Some(user_id),
            kind,
            entity_id: entity,
            board_id: None,
            payload,
            card: None,
            request_id,
        };
        if roles.len() <= 1 {
            crate::orgs::soft_delete(u, org_id).await?;
            change::record(
                u,
                entry(
                    change::Kind::OrgDeleted,
                    org_id,
                    json!({ "reason": "account_deleted" }),
                ),
            )
            .await?;
            continue;
        }
        let owners = roles.iter().filter(|r| *r == "owner").count();
        if role == Role::Owner && owners <= 1 {
            return Err(DomainError::conflict(
                "last_owner",
                format!(
                    "You are the last owner of organization {org_id}, which has other members; \
                     make someone else owner first (or remove them)."
                ),
            ));
        }
        crate::members::delete_membership(u, org_id, user_id).await?;
        change::record(
            u,
            entry(
                change::Kind::MemberLeft,
                user_id,
                json!({ "user_id": user_id, "role": role, "reason": "account_deleted" }),
            ),
        )
        .await?;
    }
    // The row stays for what points at it; nothing in it can sign in.
    let blank = format!("deleted-{}", user_id.simple());
    u.execute(
        "UPDATE users SET email = $1, email_norm = $1, name = 'Deleted user', \
         password_hash = '', updated_at = $2, deleted_at = $2 WHERE id = $3",
        &args![blank.as_str(), now, user_id],
    )
    .await?;
    u.execute(
        "DELETE FROM password_resets WHERE user_id = $1",
        &args![user_id],
    )
    .await?;
    let families = super::revoke_sessions(u, user_id, None).await?;
    security::record_in(
        u,
        &security::Entry::new(Kind::AccountDeleted, Some(user_id), Some(ip)),
    )
    .await?;
    Ok(families)
}

/// Routes of this module.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(request_password_reset))
        .routes(routes!(confirm_password_reset))
}
