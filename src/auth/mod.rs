//! Identity: sign-up, login, refresh, logout, me, and the [`AuthUser`]
//! extractor every authenticated route starts with.
//!
//! Refresh tokens rotate on every use; each login starts a *family*, and
//! presenting a token of the family that was already spent (a sign it was
//! stolen) revokes the whole family.

pub mod account;
pub mod cookie;
pub mod password;
pub mod ratelimit;
pub mod tokens;
pub mod user;

pub use user::{AuthUser, User, load_user};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::args;
use crate::db::uow::{DbError, Uow};
use crate::db::{Scope, now};
use crate::domain::{DomainError, DomainResult};
use crate::domain::{Email, NAME_MAX, Password, TimeZone, parse_name};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{AppJson, ClientIp, RequestId};
use crate::orgs;
use crate::security::{self, Kind};
use crate::state::AppState;

/// Body of `POST /auth/signup`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SignupBody {
    /// Email address (unique, case-insensitive).
    pub email: String,
    /// 10–128 characters, any Unicode.
    pub password: String,
    /// Display name, 1–100 characters.
    pub name: String,
}

/// Body of `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginBody {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
}

/// Body of `POST /auth/refresh` and `POST /auth/logout`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshBody {
    /// The refresh token last received. Left out in a cookie session
    /// (`X-Orgboard-Session: cookie`), which sends `{}` and the token in its
    /// cookie; elsewhere a missing token is an invalid one (`401`).
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Body of `PATCH /me`: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateMeBody {
    /// New display name, 1–100 characters.
    pub name: Option<String>,
    /// IANA time zone (`Europe/Paris`, `America/New_York`, `UTC`): the daily
    /// summary arrives at 08:00 in it.
    pub time_zone: Option<String>,
}

/// A session: the user and a fresh token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// The signed-in user.
    pub user: User,
    /// Bearer token for API calls, short-lived.
    pub access_token: String,
    /// Opaque token to get the next pair; single use. Absent in a cookie
    /// session, where it is in the `orgboard_refresh` cookie instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, update_me, account::delete_me))
        .routes(routes!(change_password))
        .merge(account::router())
}

/// Inserts an account and its personal organization in the unit of work
/// `u` (opened in the new user's scope): sign-up, and `orgboard admin
/// create-user`. `409 email_taken` when the email is registered. Returns
/// the personal organization.
pub async fn create_account<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    email: &Email,
    name: &str,
    password_hash: &str,
    request_id: Option<&str>,
) -> DomainResult<orgs::Org> {
    let inserted = u
        .execute(
            "INSERT INTO users (id, email, email_norm, name, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
            &args![
                user_id,
                email.display.as_str(),
                email.normalized.as_str(),
                name,
                password_hash,
                now()
            ],
        )
        .await;
    if let Err(e) = inserted {
        return Err(if e.is_unique_violation() {
            DomainError::conflict("email_taken", "An account with this email already exists.")
                .with_field("email", "is already registered")
        } else {
            e.into()
        });
    }
    let org_name: String = format!("{name}'s organization")
        .chars()
        .take(NAME_MAX)
        .collect();
    orgs::create_org(u, user_id, &org_name, None, true, request_id).await
}

/// A refresh token just stored, and its family (a session).
pub(crate) struct NewSession {
    family: Uuid,
    refresh: String,
}

/// Stores a new refresh token for `user_id` in `family` (a new family when
/// `None`), valid for `ttl`.
async fn insert_refresh<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    family: Option<Uuid>,
    cookie: bool,
    ttl: Duration,
) -> Result<NewSession, DbError> {
    let (refresh, hash) = tokens::new_refresh_token();
    let family = family.unwrap_or_else(Uuid::now_v7);
    let now = now();
    u.defer(
        "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, created_at, expires_at, cookie) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &args![
            Uuid::now_v7(),
            family,
            user_id,
            hash.as_slice(),
            now,
            now + ttl,
            cookie
        ],
    )
    .await?;
    Ok(NewSession { family, refresh })
}

/// Starts a session of `user_id` (sign-up, sign-in): a new refresh token
/// family, the `kind` entry in the security log; the account as it stands.
async fn open_session<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    in_cookie: bool,
    ttl: Duration,
    kind: Kind,
    ip: std::net::IpAddr,
) -> DomainResult<(User, NewSession)> {
    let stored = insert_refresh(u, user_id, None, in_cookie, ttl).await?;
    let user = load_user(u, user_id)
        .await?
        .ok_or_else(|| DomainError::internal(anyhow::anyhow!("user vanished")))?;
    security::record_in(u, &security::Entry::new(kind, Some(user_id), Some(ip))).await?;
    Ok((user, stored))
}

/// How long a refresh token lives.
fn refresh_ttl(state: &AppState) -> Duration {
    Duration::days(state.config.refresh_token_ttl_days as i64)
}

/// The answer of sign-up, login and refresh: the session in the body, and
/// in a cookie session the refresh token in its cookie instead.
fn session(
    state: &AppState,
    status: StatusCode,
    user: User,
    stored: NewSession,
    in_cookie: bool,
) -> ApiResult<Response> {
    let access = state.keys.issue_session_access(user.id, stored.family)?;
    let refresh = stored.refresh;
    let body = Session {
        user,
        access_token: access,
        refresh_token: (!in_cookie).then(|| refresh.clone()),
        token_type: "Bearer",
        expires_in: state.keys.access_ttl_secs,
    };
    let mut res = (status, AppJson(body)).into_response();
    if in_cookie {
        let max_age = state.config.refresh_token_ttl_days * 86_400;
        if let Some(v) = cookie::set(&refresh, max_age, state.config.public_url_is_https()) {
            res.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

/// Create an account (and its personal organization) and sign in.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = SignupBody,
    params(("X-Orgboard-Session" = Option<String>, Header,
        description = "`cookie`: a browser session. The refresh token is set in the `HttpOnly`, \
        `SameSite=Strict` cookie `orgboard_refresh` (path `/api/v1/auth`) instead of the body.")),
    responses((status = 201, body = Session, headers(("Set-Cookie" = String, description = "In a cookie session: `orgboard_refresh=…; Path=/api/v1/auth; HttpOnly; SameSite=Strict`"))), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
async fn signup(
    axum::extract::State(state): axum::extract::State<AppState>,
    ClientIp(ip): ClientIp,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    AppJson(body): AppJson<SignupBody>,
) -> ApiResult<Response> {
    let in_cookie = cookie::requested(&headers);
    let mut errors = Vec::new();
    let email = Email::parse(&body.email).map_err(|m| errors.push(FieldError::new("email", m)));
    let password =
        Password::parse(&body.password).map_err(|m| errors.push(FieldError::new("password", m)));
    let name =
        parse_name(&body.name, NAME_MAX).map_err(|m| errors.push(FieldError::new("name", m)));
    state
        .limits
        .check(
            "signup",
            ip,
            email.as_ref().ok().map(|e| e.normalized.as_str()),
        )
        .await?;
    let (Ok(email), Ok(password), Ok(name)) = (email, password, name) else {
        return Err(ApiError::validation(errors));
    };

    let hash = state.hasher.hash(password.0).await?;
    let user_id = Uuid::now_v7();
    let ttl = refresh_ttl(&state);
    let (user, stored) = crate::unit!(state.db, Scope::user(user_id), |u| async move {
        create_account(u, user_id, &email, &name, &hash, request_id.as_deref()).await?;
        open_session(u, user_id, in_cookie, ttl, Kind::Signup, ip).await
    })?;
    session(&state, StatusCode::CREATED, user, stored, in_cookie)
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    params(("X-Orgboard-Session" = Option<String>, Header,
        description = "`cookie`: a browser session. The refresh token is set in the `HttpOnly`, \
        `SameSite=Strict` cookie `orgboard_refresh` (path `/api/v1/auth`) instead of the body.")),
    responses((status = 200, body = Session, headers(("Set-Cookie" = String, description = "In a cookie session: `orgboard_refresh=…; Path=/api/v1/auth; HttpOnly; SameSite=Strict`"))), (status = 401, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
async fn login(
    axum::extract::State(state): axum::extract::State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    AppJson(body): AppJson<LoginBody>,
) -> ApiResult<Response> {
    let in_cookie = cookie::requested(&headers);
    let email_norm = body.email.trim().to_lowercase();
    // No account can have an over-long email or password: skip the lookup
    // (the dummy hash below still runs) and keep rate-limit keys bounded.
    let plausible = email_norm.chars().count() <= crate::domain::EMAIL_MAX
        && !email_norm.contains('\0')
        && body.password.chars().count() <= crate::domain::PASSWORD_MAX;
    let account_key = if plausible {
        email_norm.as_str()
    } else {
        "(implausible)"
    };
    state.limits.check("login", ip, Some(account_key)).await?;
    let creds = if !plausible {
        None
    } else {
        let email = email_norm.clone();
        crate::read_unit!(state.db, Scope::system(), |u| async move {
            match u
                .fetch_optional(
                    "SELECT id, password_hash FROM users WHERE email_norm = $1",
                    &args![&email],
                )
                .await?
            {
                Some(r) => Ok::<_, DbError>(Some((r.get::<Uuid>(0)?, r.get::<String>(1)?))),
                None => Ok(None),
            }
        })?
    };
    let (user_id, hash) = match creds {
        Some((id, hash)) => (Some(id), Some(hash)),
        None => (None, None),
    };
    // Unknown email and wrong password take the same path, time and answer.
    let ok = state.hasher.verify(body.password, hash).await?;
    let Some(user_id) = user_id.filter(|_| ok) else {
        security::record(
            &state.db,
            security::Entry::new(Kind::LoginFailed, user_id, Some(ip)).email(&email_norm),
        )
        .await;
        return Err(
            DomainError::unauthenticated("The email or password is incorrect.")
                .with_code("invalid_credentials")
                .into(),
        );
    };
    let ttl = refresh_ttl(&state);
    let (user, stored) = crate::unit!(state.db, Scope::user(user_id), |u| open_session(
        u,
        user_id,
        in_cookie,
        ttl,
        Kind::Login,
        ip
    ))?;
    session(&state, StatusCode::OK, user, stored, in_cookie)
}

struct TokenRow {
    user_id: Uuid,
    family_id: Uuid,
    spent_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    /// Issued to a cookie session.
    cookie: bool,
}

/// The refresh token a request presents: from the cookie in a cookie
/// session (`X-Orgboard-Session: cookie`), else from the body. None
/// presented is answered like an invalid one (`401` on refresh, `204` on
/// logout).
fn presented_token(headers: &HeaderMap, body: &RefreshBody) -> String {
    if cookie::requested(headers) {
        cookie::token(headers).unwrap_or_default()
    } else {
        body.refresh_token.clone().unwrap_or_default()
    }
}

/// Trade a refresh token for a new pair; the old one is spent.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshBody,
    params(("X-Orgboard-Session" = Option<String>, Header,
        description = "`cookie`: a browser session. The refresh token is set in the `HttpOnly`, \
        `SameSite=Strict` cookie `orgboard_refresh` (path `/api/v1/auth`) instead of the body; \
        refresh and logout read it from there (send `{}`), and only with this header."),
        ("orgboard_refresh" = Option<String>, Cookie, description = "The refresh token, in a cookie session")),
    responses((status = 200, body = Session, headers(("Set-Cookie" = String, description = "In a cookie session: `orgboard_refresh=…; Path=/api/v1/auth; HttpOnly; SameSite=Strict`"))), (status = 401, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
async fn refresh(
    axum::extract::State(state): axum::extract::State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    AppJson(body): AppJson<RefreshBody>,
) -> ApiResult<Response> {
    // Refreshing with a valid token is what every page load of the web
    // application does: it only counts against a loose per-address budget.
    // Failed attempts (unknown, expired, revoked or reused tokens) are
    // counted like failed logins, per address and per account, so guessing
    // stays as slow as before.
    state.limits.check_loose("refresh", ip).await?;
    let invalid = || ApiError::unauthorized("The refresh token is invalid, expired or revoked.");
    let in_cookie = cookie::requested(&headers);
    let presented = presented_token(&headers, &body);
    // A failed attempt: counted (per address, and per account when the
    // token names one); `429` once the budget is spent, else `401`.
    let failed = |account: Option<Uuid>| {
        let limits = state.limits.clone();
        async move {
            let account = account.map(|a| a.to_string());
            match limits.check("refresh", ip, account.as_deref()).await {
                Err(e) => e,
                Ok(()) => invalid(),
            }
        }
    };
    if presented.is_empty() {
        // Nothing presented (a browser without a session): no guess to count.
        return Err(invalid());
    }
    if !presented.starts_with(tokens::REFRESH_PREFIX) || presented.len() > 200 {
        return Err(failed(None).await);
    }
    let hash = tokens::hash_token(&presented);
    let ttl = refresh_ttl(&state);
    let outcome = crate::unit!(state.db, Scope::system(), |u| rotate(
        u, hash, in_cookie, ip, ttl
    ))?;
    let (user, stored) = match outcome {
        Rotated::Unknown => return Err(failed(None).await),
        Rotated::Refused(user_id) => return Err(failed(Some(user_id)).await),
        Rotated::Reused { user_id, family } => {
            state.live.hub.session_revoked(family);
            tracing::warn!(%user_id, family_id = %family, "refresh token reused; family revoked");
            return Err(failed(Some(user_id)).await);
        }
        Rotated::Fresh(user, stored) => (user, stored),
    };
    session(&state, StatusCode::OK, user, stored, in_cookie)
}

/// What presenting a refresh token came to.
enum Rotated {
    /// No such token.
    Unknown,
    /// Revoked or expired (of this account).
    Refused(Uuid),
    /// Spent before, outside the cookie grace: its family is revoked now.
    Reused {
        /// The account.
        user_id: Uuid,
        /// The revoked family.
        family: Uuid,
    },
    /// Spent now; a new token of the same family is stored.
    Fresh(User, NewSession),
}

/// Spends the refresh token with hash `hash` and stores the next one of
/// its family; a reused token revokes its whole family instead.
async fn rotate<U: Uow>(
    u: &mut U,
    hash: Vec<u8>,
    in_cookie: bool,
    ip: std::net::IpAddr,
    ttl: Duration,
) -> DomainResult<Rotated> {
    let now = now();
    let row = u
        .fetch_optional(
            "SELECT user_id, family_id, spent_at, revoked_at, expires_at, cookie \
             FROM refresh_tokens WHERE token_hash = $1",
            &args![hash.as_slice()],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Rotated::Unknown);
    };
    let row = TokenRow {
        user_id: row.get(0)?,
        family_id: row.get(1)?,
        spent_at: row.get(2)?,
        revoked_at: row.get(3)?,
        expires_at: row.get(4)?,
        cookie: row.get(5)?,
    };
    if row.revoked_at.is_some() || row.expires_at <= now {
        return Ok(Rotated::Refused(row.user_id));
    }
    // Spend it atomically: of two concurrent uses only one wins, and the
    // loser is treated as reuse.
    let spent = u
        .execute(
            "UPDATE refresh_tokens SET spent_at = $1 \
             WHERE token_hash = $2 AND spent_at IS NULL AND revoked_at IS NULL",
            &args![now, hash.as_slice()],
        )
        .await?;
    // A cookie session presenting its token again right after rotating it
    // (two tabs, or a refresh cut short by a navigation) gets a fresh pair
    // of the same family; any other reuse means theft.
    let in_grace = in_cookie
        && row.cookie
        && row
            .spent_at
            .is_none_or(|t| now - t <= Duration::seconds(cookie::GRACE_SECS));
    if (row.spent_at.is_some() || spent == 0) && !in_grace {
        revoke_family(u, row.family_id).await?;
        security::record_in(
            u,
            &security::Entry::new(Kind::RefreshReuse, Some(row.user_id), Some(ip))
                .detail(serde_json::json!({ "family_id": row.family_id })),
        )
        .await?;
        return Ok(Rotated::Reused {
            user_id: row.user_id,
            family: row.family_id,
        });
    }
    let stored = insert_refresh(
        u,
        row.user_id,
        Some(row.family_id),
        // Grace is only ever for tokens that never left a cookie.
        row.cookie && in_cookie,
        ttl,
    )
    .await?;
    // The account is gone: nothing of this is kept.
    let user = load_user(u, row.user_id).await?.ok_or_else(|| {
        DomainError::unauthenticated("The refresh token is invalid, expired or revoked.")
    })?;
    Ok(Rotated::Fresh(user, stored))
}

async fn revoke_family<U: Uow>(u: &mut U, family_id: Uuid) -> Result<(), DbError> {
    u.execute(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        &args![now(), family_id],
    )
    .await?;
    Ok(())
}

/// Sign out: revokes the refresh token's whole family. Answers `204` even
/// for unknown tokens.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshBody,
    params(("X-Orgboard-Session" = Option<String>, Header,
        description = "`cookie`: a browser session. The refresh token is set in the `HttpOnly`, \
        `SameSite=Strict` cookie `orgboard_refresh` (path `/api/v1/auth`) instead of the body; \
        refresh and logout read it from there (send `{}`), and only with this header."),
        ("orgboard_refresh" = Option<String>, Cookie, description = "The refresh token, in a cookie session")),
    responses((status = 204, description = "Signed out (also for an unknown token)",
        headers(("Set-Cookie" = String, description = "In a cookie session: clears `orgboard_refresh`")))))]
async fn logout(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: HeaderMap,
    AppJson(body): AppJson<RefreshBody>,
) -> ApiResult<Response> {
    let presented = presented_token(&headers, &body);
    if !presented.is_empty() && presented.len() <= 200 {
        let hash = tokens::hash_token(&presented);
        let family = crate::unit!(state.db, Scope::system(), |u| async move {
            let family: Option<Uuid> = u
                .fetch_value(
                    "SELECT family_id FROM refresh_tokens WHERE token_hash = $1",
                    &args![hash.as_slice()],
                )
                .await?;
            if let Some(f) = family {
                revoke_family(u, f).await?;
            }
            Ok::<_, DomainError>(family)
        })?;
        if let Some(f) = family {
            // This node's live streams of the session end now; other nodes'
            // find out at their next check (within a minute).
            state.live.hub.session_revoked(f);
        }
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    if cookie::requested(&headers)
        && let Some(v) = cookie::clear(state.config.public_url_is_https())
    {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Body of `POST /api/v1/me/password`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePasswordBody {
    /// The password in use now.
    pub current_password: String,
    /// The new password, 10–128 characters.
    pub new_password: String,
}

/// Change the caller's password (SPEC §5): with the current one, and every
/// other session is signed out (their refresh tokens revoked, their live
/// streams ended; access tokens already issued to them lapse within
/// `ORGBOARD_ACCESS_TOKEN_TTL_SECS`). The session making the change stays.
/// A wrong current password is `403 wrong_password`; attempts are limited
/// as logins are (`ORGBOARD_RATE_LIMIT_PER_IP` / `_PER_ACCOUNT`).
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", request_body = ChangePasswordBody,
    security(("bearer" = [])),
    responses((status = 204, description = "Changed; other sessions signed out"),
              (status = 401, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem, description = "`wrong_password`: the current password is not this one"),
              (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem)))]
async fn change_password(
    axum::extract::State(state): axum::extract::State<AppState>,
    ClientIp(ip): ClientIp,
    auth: AuthUser,
    AppJson(body): AppJson<ChangePasswordBody>,
) -> ApiResult<StatusCode> {
    let new = Password::parse(&body.new_password)
        .map_err(|m| ApiError::validation(vec![FieldError::new("new_password", m)]))?;
    check_own_password(
        &state,
        "change_password",
        ip,
        auth.user_id,
        body.current_password,
    )
    .await?;
    let new_hash = state.hasher.hash(new.0).await?;
    let (user_id, keep) = (auth.user_id, auth.session);
    let families = crate::unit!(state.db, Scope::user(user_id), |u| async move {
        u.execute(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3",
            &args![new_hash.as_str(), now(), user_id],
        )
        .await?;
        // Every other session.
        let families = revoke_sessions(u, user_id, keep).await?;
        security::record_in(
            u,
            &security::Entry::new(Kind::PasswordChanged, Some(user_id), Some(ip)),
        )
        .await?;
        Ok::<_, DomainError>(families)
    })?;
    for family in families {
        state.live.hub.session_revoked(family);
    }
    tracing::info!(user_id = %auth.user_id, "password changed; other sessions revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every session of `user_id` but `keep` (their refresh tokens);
/// returns the revoked families, whose live streams end after the commit.
pub(crate) async fn revoke_sessions<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<Vec<Uuid>, DbError> {
    let keep = keep.unwrap_or(Uuid::nil());
    let families = u
        .fetch_all(
            "SELECT DISTINCT family_id FROM refresh_tokens \
             WHERE user_id = $1 AND revoked_at IS NULL AND family_id <> $2",
            &args![user_id, keep],
        )
        .await?
        .iter()
        .map(|r| r.get::<Uuid>(0))
        .collect::<Result<Vec<_>, _>>()?;
    u.execute(
        "UPDATE refresh_tokens SET revoked_at = $1 \
         WHERE user_id = $2 AND revoked_at IS NULL AND family_id <> $3",
        &args![now(), user_id, keep],
    )
    .await?;
    Ok(families)
}

/// `Ok` when `password` is `user_id`'s: `403 wrong_password` otherwise,
/// `401` when the account is gone. Guessing it is limited as logins are,
/// per address and account, on a budget of `route`'s own.
pub(crate) async fn check_own_password(
    state: &AppState,
    route: &str,
    ip: std::net::IpAddr,
    user_id: Uuid,
    password: String,
) -> ApiResult<()> {
    if password.chars().count() > crate::domain::PASSWORD_MAX {
        return Err(wrong_password().into());
    }
    state
        .limits
        .check(route, ip, Some(&user_id.to_string()))
        .await?;
    let hash: Option<String> = {
        crate::read_unit!(state.db, Scope::user(user_id), |u| async move {
            match u
                .fetch_optional(
                    "SELECT password_hash FROM users WHERE id = $1 AND deleted_at IS NULL",
                    &args![user_id],
                )
                .await?
            {
                Some(r) => Ok::<_, DbError>(Some(r.get(0)?)),
                None => Ok(None),
            }
        })?
    };
    let Some(hash) = hash else {
        return Err(ApiError::account_gone());
    };
    if state.hasher.verify(password, Some(hash)).await? {
        Ok(())
    } else {
        Err(wrong_password().into())
    }
}

fn wrong_password() -> DomainError {
    DomainError::forbidden("The current password is not correct.").with_code("wrong_password")
}

/// The caller.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = crate::error::Problem)))]
async fn me(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: AuthUser,
) -> ApiResult<AppJson<User>> {
    let user_id = auth.user_id;
    let user = crate::read_unit!(state.db, Scope::user(user_id), |u| load_user(u, user_id))?
        .ok_or_else(ApiError::account_gone)?;
    Ok(AppJson(user))
}

/// Change the caller's display name or time zone.
#[utoipa::path(patch, path = "/api/v1/me", tag = "auth", request_body = UpdateMeBody,
    security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_me(
    axum::extract::State(state): axum::extract::State<AppState>,
    auth: AuthUser,
    AppJson(body): AppJson<UpdateMeBody>,
) -> ApiResult<AppJson<User>> {
    let mut errors = Vec::new();
    let name = body
        .name
        .as_deref()
        .map(|n| parse_name(n, NAME_MAX))
        .transpose()
        .map_err(|m| errors.push(FieldError::new("name", m)));
    let time_zone = body
        .time_zone
        .as_deref()
        .map(TimeZone::parse)
        .transpose()
        .map_err(|m| errors.push(FieldError::new("time_zone", m)));
    let (Ok(name), Ok(time_zone)) = (name, time_zone) else {
        return Err(ApiError::validation(errors));
    };
    let user_id = auth.user_id;
    let user = if name.is_some() || time_zone.is_some() {
        crate::unit!(state.db, Scope::user(user_id), |u| async move {
            u.execute(
                "UPDATE users SET name = COALESCE($1, name), time_zone = COALESCE($2, time_zone), \
                 updated_at = $3 WHERE id = $4 AND deleted_at IS NULL",
                &args![name.as_deref(), time_zone.map(|z| z.name()), now(), user_id],
            )
            .await?;
            load_user(u, user_id).await.map_err(ApiError::from)
        })?
    } else {
        crate::read_unit!(state.db, Scope::user(user_id), |u| load_user(u, user_id))?
    }
    .ok_or_else(ApiError::account_gone)?;
    Ok(AppJson(user))
}
