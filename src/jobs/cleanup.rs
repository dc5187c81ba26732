//! Clean-up: deletes what has outlived its use. The `cleanup` schedule runs
//! it hourly, in one transaction opened with [`crate::db::Db::system`] (on
//! PostgreSQL the role `orgboard_system`, whose grants and policies in
//! migration 0004 let it read only the columns these statements test and
//! delete only such rows).
//!
//! | what | deleted when |
//! |---|---|
//! | invites | not accepted, expired more than [`INVITE_GRACE`] ago (revoked ones too) |
//! | refresh tokens | expired, or revoked. A spent token is kept until it expires: presenting it again is how a stolen token is detected (its family is revoked) |
//! | idempotency keys | older than [`IDEMPOTENCY_RETENTION`] |
//! | events | numbered and older than [`EVENT_RETENTION`], except each organization's newest (event ids continue from it) |
//! | daily summary records | for local days more than [`SUMMARY_RECORD_RETENTION`] ago |
//! | password reset links | expired, or used |
//! | security log entries | older than [`SECURITY_LOG_RETENTION`] (SPEC §15) |

use chrono::{DateTime, Utc};

use crate::args;
use crate::db::uow::{DbError, Uow};
use crate::domain::DomainError;

use crate::state::AppState;

/// How long after its expiry an unaccepted invite is kept (so "expired"
/// rather than "not found" can still be answered for a while).
pub const INVITE_GRACE: chrono::Duration = chrono::Duration::days(1);
/// How long an idempotency key is kept (replays within it are answered).
pub const IDEMPOTENCY_RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// How long live events are kept (how far back a subscriber can resume).
pub const EVENT_RETENTION: chrono::Duration = chrono::Duration::hours(24);
/// How long the record that a member's summary was handled is kept (it
/// only needs to outlive the local day).
pub const SUMMARY_RECORD_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// How long the security log is kept.
pub const SECURITY_LOG_RETENTION: chrono::Duration = chrono::Duration::days(90);

/// How many rows one clean-up pass deleted, per kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    /// Expired, unaccepted invites.
    pub invites: u64,
    /// Expired or revoked refresh tokens.
    pub refresh_tokens: u64,
    /// Old idempotency keys.
    pub idempotency_keys: u64,
    /// Old events.
    pub events: u64,
    /// Old daily summary records.
    pub daily_summaries: u64,
    /// Expired or used password reset links.
    pub password_resets: u64,
    /// Security log entries past their retention.
    pub security_log: u64,
}

/// Deletes everything that is past its retention at `at` (the clock is a
/// parameter so tests can move it); returns what went.
pub async fn cleanup_at(state: &AppState, at: DateTime<Utc>) -> Result<Removed, DomainError> {
    crate::unit!(state.db, system, |u| async move {
        cleanup_in(u, at).await.map_err(DomainError::from)
    })
}

async fn cleanup_in<U: Uow>(u: &mut U, at: DateTime<Utc>) -> Result<Removed, DbError> {
    let invites = u
        .execute(
            "DELETE FROM invites WHERE accepted_at IS NULL AND expires_at < $1",
            &args![at - INVITE_GRACE],
        )
        .await?;
    let refresh_tokens = u
        .execute(
            "DELETE FROM refresh_tokens WHERE expires_at < $1 OR revoked_at < $1",
            &args![at],
        )
        .await?;
    let idempotency_keys = u
        .execute(
            "DELETE FROM idempotency_keys WHERE created_at < $1",
            &args![at - IDEMPOTENCY_RETENTION],
        )
        .await?;
    // Pending events (no id yet) are never touched, and the newest event of
    // each organization stays: numbering continues from MAX(id).
    let events = u
        .execute(
            "DELETE FROM events WHERE at < $1 AND id IS NOT NULL \
             AND id < (SELECT MAX(e.id) FROM events e WHERE e.org_id = events.org_id)",
            &args![at - EVENT_RETENTION],
        )
        .await?;
    let daily_summaries = u
        .execute(
            "DELETE FROM daily_summaries WHERE local_date < $1",
            &args![(at - SUMMARY_RECORD_RETENTION).date_naive()],
        )
        .await?;
    let password_resets = u
        .execute(
            "DELETE FROM password_resets WHERE expires_at < $1 OR used_at < $1",
            &args![at],
        )
        .await?;
    let security_log = u
        .execute(
            "DELETE FROM security_log WHERE created_at < $1",
            &args![at - SECURITY_LOG_RETENTION],
        )
        .await?;
    Ok(Removed {
        password_resets,
        security_log,
        invites,
        refresh_tokens,
        idempotency_keys,
        events,
        daily_summaries,
    })
}
