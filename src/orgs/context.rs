//! [`OrgContext`]: the second step of every tenant request (SPEC §3).
//!
//! It authenticates the caller, resolves `{org}` (id or slug) and loads the
//! caller's membership. An unknown organization, a deleted one and one the
//! caller is not a member of all answer the same `404`. Access tokens carry
//! no role, so a removed member is refused on the very next request.
//!
//! Handlers then open their transaction through the context:
//! [`OrgContext::read`] or [`OrgContext::write`]. A write transaction checks
//! the membership again inside itself, so the role the handler acts on is the
//! one committed alongside the change.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use uuid::Uuid;

use crate::audit;
use crate::auth::AuthUser;
use crate::db::{Scope, Tx};
use crate::domain::{Action, Ownership, Role, require};
use crate::error::ApiError;
use crate::http::extract::request_id_of;
use crate::on_tx;
use crate::state::AppState;

/// The caller inside an organization.
#[derive(Debug, Clone)]
pub struct OrgContext {
    /// The organization (tenant).
    pub org_id: Uuid,
    /// The caller.
    pub user_id: Uuid,
    /// The caller's role, as last read.
    pub role: Role,
    /// The request id, for the audit log.
    pub request_id: Option<String>,
}

#[derive(sqlx::FromRow)]
struct MembershipRow {
    id: Uuid,
    #[sqlx(try_from = "String")]
    role: Role,
}

impl FromRequestParts<AppState> for OrgContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("invalid_path", "The path is invalid."))?;
        let org_ref = params
            .iter()
            .find(|(k, _)| *k == "org")
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("route has no {{org}}")))?;
        let request_id = request_id_of(parts);

        // No organization has such a reference (and PostgreSQL refuses NUL
        // in text): answer as for any unknown one, without asking.
        if org_ref.len() > crate::domain::SLUG_MAX || org_ref.contains('\0') {
            return Err(ApiError::not_found());
        }
        let mut tx = state.db.read(Scope::user(auth.user_id)).await?;
        let row = match Uuid::try_parse(&org_ref) {
            Ok(id) => on_tx!(&mut tx, |c| sqlx::query_as::<_, MembershipRow>(
                "SELECT o.id, m.role FROM organizations o \
                 JOIN memberships m ON m.org_id = o.id AND m.user_id = $2 \
                 WHERE o.id = $1 AND o.deleted_at IS NULL"
            )
            .bind(id)
            .bind(auth.user_id)
            .fetch_optional(c)
            .await),
            Err(_) => on_tx!(&mut tx, |c| sqlx::query_as::<_, MembershipRow>(
                "SELECT o.id, m.role FROM organizations o \
                 JOIN memberships m ON m.org_id = o.id AND m.user_id = $2 \
                 WHERE o.slug = $1 AND o.deleted_at IS NULL"
            )
            .bind(&org_ref)
            .bind(auth.user_id)
            .fetch_optional(c)
            .await),
        }?;
        drop(tx);
        let row = row.ok_or_else(ApiError::not_found)?;
        Ok(OrgContext {
            org_id: row.id,
            user_id: auth.user_id,
            role: row.role,
            request_id,
        })
    }
}

impl OrgContext {
    /// `403` unless the caller's role allows `action`.
    pub fn require(&self, action: Action, own: Ownership) -> Result<(), ApiError> {
        require(self.role, action, own)
    }

    /// The tenant scope of this request.
    pub fn scope(&self) -> Scope {
        Scope::tenant(self.user_id, self.org_id)
    }

    /// A read transaction inside the organization.
    pub async fn read(&self, state: &AppState) -> Result<Tx, ApiError> {
        Ok(state.db.read(self.scope()).await?)
    }

    /// A write transaction inside the organization. The membership is read
    /// again inside it (and `self.role` updated); `404` if it is gone.
    pub async fn write(&mut self, state: &AppState) -> Result<Tx, ApiError> {
        let mut tx = state.db.write(self.scope()).await?;
        let role: Option<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "SELECT m.role FROM memberships m JOIN organizations o ON o.id = m.org_id \
             WHERE m.org_id = $1 AND m.user_id = $2 AND o.deleted_at IS NULL"
        )
        .bind(self.org_id)
        .bind(self.user_id)
        .fetch_optional(c)
        .await)?;
        let role = role.ok_or_else(ApiError::not_found)?;
        self.role = role
            .parse()
            .map_err(|e: String| ApiError::internal(anyhow::anyhow!(e)))?;
        Ok(tx)
    }

    /// An audit entry by the caller in this organization.
    pub fn audit<'a>(
        &'a self,
        action: &'a str,
        entity_type: &'a str,
        entity_id: Option<Uuid>,
        payload: serde_json::Value,
    ) -> audit::Entry<'a> {
        audit::Entry {
            org_id: self.org_id,
            actor_id: Some(self.user_id),
            action,
            entity_type,
            entity_id,
            payload,
            request_id: self.request_id.as_deref(),
        }
    }
}
