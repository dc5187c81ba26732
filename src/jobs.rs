//! The durable job queue: a table in the same database, so a job is enqueued
//! in the very transaction of the change that causes it (it exists if and
//! only if the change committed).
//!
//! Workers claim one job at a time (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
//! on SQLite the single writer makes the claim atomic), run it outside any
//! transaction, then delete it, or put it back with exponential backoff, or
//! after `max_attempts` mark it `dead`. A claim is a lease: a job whose worker
//! died is claimed again once `locked_until` passes.

use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::{Backend, Scope, Tx, now};
use crate::email;
use crate::on_tx;
use crate::state::AppState;

/// How long a claimed job may run before another worker may take it over.
const LEASE: chrono::Duration = chrono::Duration::minutes(5);
/// How often idle workers look for due jobs (they are also woken on enqueue).
const POLL: Duration = Duration::from_secs(1);

/// Work to do in the background. Payloads that concern a tenant carry its
/// `org_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Send an invitation email.
    InviteEmail(email::InviteEmail),
}

impl Job {
    fn kind(&self) -> &'static str {
        match self {
            Job::InviteEmail(_) => "invite_email",
        }
    }

    /// The payload with secrets blanked, kept on a dead job for inspection.
    fn scrubbed(&self) -> Job {
        match self {
            Job::InviteEmail(m) => Job::InviteEmail(email::InviteEmail {
                token: String::new(),
                ..m.clone()
            }),
        }
    }
}

/// Enqueues `job` inside `tx`; it runs only if `tx` commits. Call
/// [`wake`] after the commit to start it without waiting for the next poll.
pub async fn enqueue_in(tx: &mut Tx, job: &Job) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let now = now();
    on_tx!(tx, |c| {
        sqlx::query(
        "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'queued', 0, 5, $4, $4, $4)"
    )
    .bind(id)
    .bind(job.kind())
    .bind(Json(job))
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    Ok(id)
}

/// Wakes an idle worker (after a commit that enqueued jobs).
pub fn wake(state: &AppState) {
    state.jobs_wakeup.notify_one();
}

#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    payload: Json<Job>,
    attempts: i32,
    max_attempts: i32,
}

/// Claims the next due job, if any.
async fn claim(state: &AppState) -> Result<Option<Claimed>, sqlx::Error> {
    let now = now();
    let lease_end = now + LEASE;
    let pick = match state.db.backend() {
        Backend::Postgres => {
            "SELECT id FROM jobs WHERE (status = 'queued' AND run_at <= $2) \
             OR (status = 'running' AND locked_until < $2) ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED"
        }
        Backend::Sqlite => {
            "SELECT id FROM jobs WHERE (status = 'queued' AND run_at <= $2) \
             OR (status = 'running' AND locked_until < $2) ORDER BY run_at LIMIT 1"
        }
    };
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_until = $1, updated_at = $2 \
         WHERE id = ({pick}) RETURNING id, payload, attempts, max_attempts"
    );
    let mut tx = state.db.write(Scope::system()).await?;
    let claimed = on_tx!(&mut tx, |c| sqlx::query_as::<_, Claimed>(
        sqlx::AssertSqlSafe(sql.as_str())
    )
    .bind(lease_end)
    .bind(now)
    .fetch_optional(c)
    .await)?;
    tx.commit().await?;
    Ok(claimed)
}

/// Runs one job's work.
async fn perform(state: &AppState, id: Uuid, job: &Job) -> anyhow::Result<()> {
    match job {
        Job::InviteEmail(m) => {
            if !invite_still_pending(state, m).await? {
                tracing::info!(org_id = %m.org_id, invite_id = %m.invite_id,
                    "invite no longer pending; email not sent");
                return Ok(());
            }
            email::send_invite(&state.config, id, m).await
        }
    }
}

/// Whether an invite can still be accepted (a revoked one is not mailed).
async fn invite_still_pending(state: &AppState, m: &email::InviteEmail) -> anyhow::Result<bool> {
    let mut tx = state.db.read(Scope::tenant(Uuid::nil(), m.org_id)).await?;
    type Row = (
        Option<chrono::DateTime<Utc>>,
        Option<chrono::DateTime<Utc>>,
        chrono::DateTime<Utc>,
    );
    let row: Option<Row> = on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT accepted_at, revoked_at, expires_at FROM invites WHERE org_id = $1 AND id = $2"
    )
    .bind(m.org_id)
    .bind(m.invite_id)
    .fetch_optional(c)
    .await)?;
    Ok(matches!(row, Some((None, None, expires)) if expires > now()))
}

/// Delay before attempt `attempts + 1`: 2^attempts seconds, at most an hour.
pub fn backoff(attempts: i32) -> chrono::Duration {
    chrono::Duration::seconds(2i64.saturating_pow(attempts.clamp(0, 12) as u32).min(3600))
}

async fn finish(
    state: &AppState,
    c: &Claimed,
    result: anyhow::Result<()>,
) -> Result<(), sqlx::Error> {
    let mut tx = state.db.write(Scope::system()).await?;
    match result {
        Ok(()) => {
            // Done jobs are deleted: their payload may hold a secret (an
            // invite token) that must not outlive its use.
            on_tx!(&mut tx, |conn| sqlx::query(
                "DELETE FROM jobs WHERE id = $1"
            )
            .bind(c.id)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        }
        Err(e) => {
            let msg: String = format!("{e:#}").chars().take(2000).collect();
            let dead = c.attempts >= c.max_attempts;
            let now = now();
            tracing::warn!(job_id = %c.id, attempts = c.attempts, dead, error = %msg, "job failed");
            // A dead job keeps its payload for inspection, minus secrets.
            let payload = Json(if dead {
                c.payload.0.scrubbed()
            } else {
                c.payload.0.clone()
            });
            on_tx!(&mut tx, |conn| sqlx::query(
                "UPDATE jobs SET status = $1, run_at = $2, locked_until = NULL, last_error = $3, \
                 updated_at = $4, payload = $6 WHERE id = $5"
            )
            .bind(if dead { "dead" } else { "queued" })
            .bind(now + backoff(c.attempts))
            .bind(msg)
            .bind(now)
            .bind(c.id)
            .bind(&payload)
            .execute(conn)
            .await
            .map(|r| r.rows_affected()))?;
        }
    }
    tx.commit().await
}

/// Runs due jobs until none is left; returns how many ran. Used by the
/// worker loop and by tests that want the queue drained now.
pub async fn run_due(state: &AppState) -> Result<usize, sqlx::Error> {
    let mut n = 0;
    while let Some(c) = claim(state).await? {
        let result = perform(state, c.id, &c.payload.0).await;
        finish(state, &c, result).await?;
        n += 1;
    }
    Ok(n)
}

/// Starts the worker loop; it stops (after finishing the job in hand) when
/// `shutdown` is cancelled.
pub fn spawn_worker(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = run_due(&state).await {
                tracing::error!(error = %e, "job worker error");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = state.jobs_wakeup.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        tracing::debug!(at = %Utc::now(), "job worker stopped");
    })
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1).num_seconds(), 2);
        assert_eq!(backoff(3).num_seconds(), 8);
        assert_eq!(backoff(50).num_seconds(), 3600);
        assert_eq!(backoff(-1).num_seconds(), 1);
    }
}
