//! The security log (SPEC §15): who signed up, signed in or failed to,
//! presented a spent refresh token, changed or reset a password, deleted an
//! account, or was refused by the permission table. It is the instance
//! administrator's (`orgboard admin security-log`), separate from each
//! organization's audit log (which records changes): the request role may
//! only append to it; reading and the 90-day clean-up run as
//! `orgboard_system` on PostgreSQL.
//!
//! Entries never hold a secret: no password, token or token hash. A failed
//! login keeps the email as typed (bounded), which is what an administrator
//! needs to see a guessing attack.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use crate::args;
use crate::db::uow::{DbError, Uow};
use crate::db::{Db, Scope, now};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An account was created.
    Signup,
    /// A successful sign-in.
    Login,
    /// A sign-in with a wrong email or password.
    LoginFailed,
    /// A spent refresh token was presented again; its family was revoked.
    RefreshReuse,
    /// The password was changed by its owner.
    PasswordChanged,
    /// A password reset link was asked for (known accounts only).
    PasswordResetRequested,
    /// A password was set through a reset link or by the administrator.
    PasswordReset,
    /// The account was deleted by its owner.
    AccountDeleted,
    /// A signed-in caller was refused by the permission table (`403`).
    PermissionDenied,
    /// An instance administrator's command (`orgboard admin …`).
    Admin,
}

impl Kind {
    /// Every kind, in the order above.
    pub const ALL: [Kind; 10] = [
        Self::Signup,
        Self::Login,
        Self::LoginFailed,
        Self::RefreshReuse,
        Self::PasswordChanged,
        Self::PasswordResetRequested,
        Self::PasswordReset,
        Self::AccountDeleted,
        Self::PermissionDenied,
        Self::Admin,
    ];

    /// The one string form (stored, and printed by the admin command).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::LoginFailed => "login_failed",
            Self::RefreshReuse => "refresh_reuse",
            Self::PasswordChanged => "password_changed",
            Self::PasswordResetRequested => "password_reset_requested",
            Self::PasswordReset => "password_reset",
            Self::AccountDeleted => "account_deleted",
            Self::PermissionDenied => "permission_denied",
            Self::Admin => "admin",
        }
    }
}

/// One entry to append.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What happened.
    pub kind: Kind,
    /// The account concerned, when known.
    pub user_id: Option<Uuid>,
    /// The email as given (failed logins, reset requests), at most 254
    /// characters kept.
    pub email: Option<String>,
    /// The organization concerned (permission refusals).
    pub org_id: Option<Uuid>,
    /// The client's address.
    pub ip: Option<IpAddr>,
    /// More (the route of a refusal, how a password was reset).
    pub detail: Value,
}

impl Entry {
    /// An entry of `kind` about `user_id`, from `ip`.
    pub fn new(kind: Kind, user_id: Option<Uuid>, ip: Option<IpAddr>) -> Self {
        Self {
            kind,
            user_id,
            email: None,
            org_id: None,
            ip,
            detail: Value::Object(Default::default()),
        }
    }

    /// With the email as given.
    pub fn email(mut self, email: &str) -> Self {
        self.email = Some(email.chars().take(crate::domain::EMAIL_MAX).collect());
        self
    }

    /// With more detail.
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Appends `entry` in a transaction of its own. A failure is logged, not
/// returned: the request it describes has its own outcome.
pub async fn record(db: &Db, entry: Entry) {
    let kind = entry.kind;
    if let Err(e) = try_record(db, entry).await {
        tracing::warn!(error = %e, kind = kind.as_str(), "could not write the security log");
    }
}

async fn try_record(db: &Db, e: Entry) -> Result<(), crate::error::ApiError> {
    crate::unit!(db, Scope::system(), |u| async move {
        record_in(u, &e).await.map_err(crate::error::ApiError::from)
    })
}

/// Appends `entry` in the unit of work `u`, the one of the change it
/// records (a sign-in's session, a reset): it commits with it, at no extra
/// transaction.
pub async fn record_in<U: Uow>(u: &mut U, e: &Entry) -> Result<(), DbError> {
    let ip = e.ip.map(|ip| ip.to_string());
    u.defer(
        "INSERT INTO security_log (id, kind, user_id, email, org_id, ip, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &args![
            Uuid::now_v7(),
            e.kind.as_str(),
            e.user_id,
            e.email.as_deref(),
            e.org_id,
            ip.as_deref(),
            &e.detail,
            now()
        ],
    )
    .await
}

/// One entry as read back.
#[derive(Debug, Clone, Serialize)]
pub struct Logged {
    /// Entry id (UUIDv7).
    pub id: Uuid,
    /// [`Kind::as_str`].
    pub kind: String,
    /// The account concerned.
    pub user_id: Option<Uuid>,
    /// The email as given.
    pub email: Option<String>,
    /// The organization concerned.
    pub org_id: Option<Uuid>,
    /// The client's address.
    pub ip: Option<String>,
    /// More.
    pub detail: Json<Value>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// The newest `limit` entries (of `kind`, of `user_id`, when given),
/// newest first; as `orgboard_system` on PostgreSQL.
pub async fn list(
    db: &Db,
    kind: Option<&str>,
    user_id: Option<Uuid>,
    limit: u32,
) -> Result<Vec<Logged>, DbError> {
    let kind = kind.map(str::to_owned);
    crate::read_unit!(db, system, |u| async move {
        u.fetch_all(
            "SELECT id, kind, user_id, email, org_id, ip, detail, created_at FROM security_log \
             WHERE ($1 IS NULL OR kind = $1) AND ($2 IS NULL OR user_id = $2) \
             ORDER BY id DESC LIMIT $3",
            &args![kind.as_deref(), user_id, i64::from(limit)],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Logged {
                id: r.get(0)?,
                kind: r.get(1)?,
                user_id: r.get(2)?,
                email: r.get(3)?,
                org_id: r.get(4)?,
                ip: r.get(5)?,
                detail: Json(r.get(6)?),
                created_at: r.get(7)?,
            })
        })
        .collect()
    })
}
