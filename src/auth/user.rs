//! Who is calling: the [`AuthUser`] extractor every authenticated route
//! starts with, and the account as the API shows it ([`User`],
//! [`load_user`]). Below the rest of identity (sign-up creates an
//! organization; organizations only need to know who calls).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::args;
use crate::db::uow::{DbError, Uow};
use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller, from a valid bearer access token. No database
/// work: the token carries only the user id; what the user may do is looked
/// up per request by the organization context.
#[derive(Clone, Copy, Debug)]
pub struct AuthUser {
    /// The caller.
    pub user_id: Uuid,
    /// The session the token belongs to (its refresh-token family), if any.
    pub session: Option<Uuid>,
    /// When the token expires (Unix seconds).
    pub expires_at: u64,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Verified once per request: the API limits verify the token first
        // and leave the caller here.
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(*user);
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("Missing bearer token."))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("Expected 'Authorization: Bearer <token>'."))?;
        let access = state
            .keys
            .verify(token.trim())
            .ok_or_else(|| ApiError::unauthorized("The access token is invalid or expired."))?;
        Ok(AuthUser {
            user_id: access.user_id,
            session: access.session,
            expires_at: access.expires_at,
        })
    }
}

/// A person, as the API shows them.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct User {
    /// User id (UUIDv7).
    pub id: Uuid,
    /// Email as given at sign-up.
    pub email: String,
    /// Display name.
    pub name: String,
    /// IANA time zone for daily summaries.
    pub time_zone: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// Loads a user by id.
pub async fn load_user<U: Uow>(u: &mut U, user_id: Uuid) -> Result<Option<User>, DbError> {
    let Some(r) = u
        .fetch_optional(
            "SELECT id, email, name, time_zone, created_at FROM users WHERE id = $1 AND deleted_at IS NULL",
            &args![user_id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(User {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        time_zone: r.get(3)?,
        created_at: r.get(4)?,
    }))
}
