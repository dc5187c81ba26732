//! The durable job queue: a table in the same database, so a job is enqueued
//! in the very transaction of the change that causes it (it exists if and
//! only if the change committed).
//!
//! * [`enqueue_in`] adds a job inside a transaction; [`wake`] after the
//!   commit starts it without waiting for the next poll.
//! * Workers claim one job at a time (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL; on SQLite the single writer makes the claim atomic), run it
//!   outside any transaction, bounded by `ORGBOARD_JOB_TIMEOUT_SECS`, then
//!   delete it, or put it back with exponential backoff ([`backoff`]), or
//!   after `max_attempts` mark it `dead` (kept, secrets blanked, for
//!   inspection). A claim is a lease: a job whose worker died is claimed
//!   again once `locked_until` passes. At shutdown the job in hand gets
//!   `ORGBOARD_JOB_SHUTDOWN_GRACE_SECS` to finish, then is released (queued
//!   again, its attempt not counted).
//! * [`SCHEDULES`] are jobs enqueued once per period across all nodes: each
//!   node's scheduler ticks every `ORGBOARD_SCHEDULER_TICK_SECS` and claims
//!   a due schedule with one atomic `UPDATE … RETURNING` that advances it,
//!   enqueuing the job in the same transaction ([`run_schedules_at`]).
//!   They run the [`summary`] (08:00 in each member's time zone) and the
//!   [`cleanup`].
//! * Metrics: `orgboard_jobs_completed_total`, `orgboard_job_failures_total`
//!   (each failed attempt) and `orgboard_jobs_dead_total`, labelled by
//!   `kind`; [`queue::queue_depth`] counts jobs per status for the gauges.

pub mod cleanup;
pub mod queue;
pub mod summary;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::args;
use crate::db::uow::{DbError, Uow};
use crate::db::{Backend, Scope, now};
use crate::domain::DomainError;
use crate::email;

use crate::state::AppState;

pub use cleanup::{Removed, cleanup_at};
pub use summary::daily_summary_at;

/// How long a claimed job may run before another worker may take it over.
pub const LEASE: chrono::Duration = chrono::Duration::minutes(5);
/// The largest `ORGBOARD_JOB_TIMEOUT_SECS` (within [`LEASE`]).
pub use crate::config::MAX_JOB_TIMEOUT_SECS;
/// How often idle workers look for due jobs (they are also woken on enqueue).
const POLL: Duration = Duration::from_secs(1);

/// Work to do in the background. Payloads that concern a tenant carry its
/// `org_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Send an invitation email.
    InviteEmail(email::InviteEmail),
    /// Send a password reset link.
    PasswordResetEmail(email::PasswordResetEmail),
    /// Scheduled: enqueue a [`Job::DailySummary`] for every member whose
    /// local time at `at` is 08:xx and whose day is not yet handled.
    DailySummaries {
        /// The scheduler's clock when the run was claimed.
        at: DateTime<Utc>,
    },
    /// One member's daily summary.
    DailySummary(summary::SummaryJob),
    /// Scheduled: delete what has outlived its use (see [`cleanup`]).
    Cleanup {
        /// The scheduler's clock when the run was claimed.
        at: DateTime<Utc>,
    },
}

impl Job {
    /// The `kind` column and metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::InviteEmail(_) => "invite_email",
            Job::PasswordResetEmail(_) => "password_reset_email",
            Job::DailySummaries { .. } => "daily_summaries",
            Job::DailySummary(_) => "daily_summary",
            Job::Cleanup { .. } => "cleanup",
        }
    }

    /// The organization the job concerns, kept in the `org_id` column so
    /// row-level security shows it only inside that organization; `None`
    /// for instance-wide jobs.
    pub fn org_id(&self) -> Option<Uuid> {
        match self {
            Job::InviteEmail(m) => Some(m.org_id),
            Job::PasswordResetEmail(_)
            | Job::DailySummaries { .. }
            | Job::DailySummary(_)
            | Job::Cleanup { .. } => None,
        }
    }

    /// The payload with secrets blanked, kept on a dead job for inspection.
    fn scrubbed(&self) -> Job {
        match self {
            Job::InviteEmail(m) => Job::InviteEmail(email::InviteEmail {
                token: String::new(),
                ..m.clone()
            }),
            Job::PasswordResetEmail(m) => Job::PasswordResetEmail(email::PasswordResetEmail {
                token: String::new(),
                ..m.clone()
            }),
            other => other.clone(),
        }
    }
}

/// Enqueues `job` in the unit of work `u`; it runs only if the unit
/// commits. Call [`wake`] after the commit to start it without waiting for
/// the next poll.
pub async fn enqueue_in<U: Uow>(u: &mut U, job: &Job) -> Result<Uuid, DbError> {
    let id = Uuid::now_v7();
    let payload =
        serde_json::to_value(job).map_err(|e| DbError::Executor(format!("job payload: {e}")))?;
    u.defer(
        "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at, org_id) \
         VALUES ($1, $2, $3, 'queued', 0, 5, $4, $4, $4, $5)",
        &args![id, job.kind(), &payload, now(), job.org_id()],
    )
    .await?;
    Ok(id)
}

/// Wakes an idle worker (after a commit that enqueued jobs).
pub fn wake(state: &AppState) {
    state.jobs_wakeup.notify_one();
}

// ------------------------------------------------------------ schedules

/// A job enqueued once per period, by whichever node claims the period
/// first.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Key in the `schedules` table.
    pub name: &'static str,
    /// The period. Runs are aligned on multiples of it since the Unix epoch
    /// (UTC): every 15 minutes means at :00, :15, :30 and :45.
    pub every: chrono::Duration,
    /// The job of a run claimed at the given time.
    pub job: fn(DateTime<Utc>) -> Job,
}

fn daily_summaries_job(at: DateTime<Utc>) -> Job {
    Job::DailySummaries { at }
}

fn cleanup_job(at: DateTime<Utc>) -> Job {
    Job::Cleanup { at }
}

/// Every schedule. The daily summary looks every 15 minutes (every zone's
/// offset is a multiple of 15 minutes, so 08:00 local falls on a run, and a
/// member gets four chances within their 08:00 hour); the clean-up runs
/// hourly.
pub const SCHEDULES: &[Schedule] = &[
    Schedule {
        name: "daily_summary",
        every: chrono::Duration::minutes(15),
        job: daily_summaries_job,
    },
    Schedule {
        name: "cleanup",
        every: chrono::Duration::hours(1),
        job: cleanup_job,
    },
];

/// The first multiple of `every` (since the epoch) strictly after `now`.
fn next_after(now: DateTime<Utc>, every: chrono::Duration) -> DateTime<Utc> {
    let step = every.num_seconds().max(1);
    let next = (now.timestamp().div_euclid(step) + 1).saturating_mul(step);
    DateTime::from_timestamp(next, 0).unwrap_or(now + every)
}

/// Claims every schedule due at `now` (the clock is a parameter so tests can
/// move it) and enqueues its job; returns the names of those started. Safe
/// to call from any number of nodes at once: a period starts exactly once.
pub async fn run_schedules_at(
    state: &AppState,
    now: DateTime<Utc>,
) -> Result<Vec<&'static str>, DomainError> {
    let mut started = Vec::new();
    for schedule in SCHEDULES {
        if claim_schedule(state, schedule, now).await? {
            started.push(schedule.name);
        }
    }
    if !started.is_empty() {
        tracing::debug!(schedules = ?started, "scheduled jobs enqueued");
        wake(state);
    }
    Ok(started)
}

async fn claim_schedule(
    state: &AppState,
    schedule: &'static Schedule,
    now: DateTime<Utc>,
) -> Result<bool, DomainError> {
    crate::unit!(state.db, Scope::system(), |u| claim_schedule_in(
        u, schedule, now
    ))
}

/// Claims `schedule` if it is due at `now` and enqueues its job.
async fn claim_schedule_in<U: Uow>(
    u: &mut U,
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<bool, DomainError> {
    // A schedule seen for the first time is due at once.
    u.execute(
        "INSERT INTO schedules (name, next_run_at, updated_at) VALUES ($1, $2, $2) \
         ON CONFLICT (name) DO NOTHING",
        &args![schedule.name, now],
    )
    .await?;
    // The claim: on PostgreSQL a concurrent claimer blocks on the row lock,
    // then re-checks `next_run_at` against the committed row and finds it
    // no longer due; on SQLite the single writer serializes the two.
    let claimed: Option<String> = u
        .fetch_value(
            "UPDATE schedules SET next_run_at = $2, last_run_at = $3, updated_at = $3 \
             WHERE name = $1 AND next_run_at <= $3 RETURNING name",
            &args![schedule.name, next_after(now, schedule.every), now],
        )
        .await?;
    if claimed.is_some() {
        enqueue_in(u, &(schedule.job)(now)).await?;
    }
    Ok(claimed.is_some())
}

// --------------------------------------------------------------- workers

struct Claimed {
    id: Uuid,
    payload: Job,
    attempts: i32,
    max_attempts: i32,
}

/// Claims the next due job, if any.
async fn claim(state: &AppState) -> Result<Option<Claimed>, DomainError> {
    crate::unit!(state.db, system, |u| claim_in(u))
}

async fn claim_in<U: Uow>(u: &mut U) -> Result<Option<Claimed>, DomainError> {
    let now = now();
    let lease_end = now + LEASE;
    let pick = match u.backend() {
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
    let Some(row) = u.fetch_optional(&sql, &args![lease_end, now]).await? else {
        return Ok(None);
    };
    let payload: serde_json::Value = row.get(1)?;
    Ok(Some(Claimed {
        id: row.get(0)?,
        payload: serde_json::from_value(payload)
            .map_err(|e| DomainError::internal(anyhow::anyhow!("job payload: {e}")))?,
        attempts: row.get(2)?,
        max_attempts: row.get(3)?,
    }))
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
        Job::PasswordResetEmail(m) => email::send_password_reset(&state.config, id, m).await,
        Job::DailySummaries { at } => {
            let n = summary::daily_summary_at(state, *at).await?;
            tracing::debug!(%at, members = n, "daily summaries enqueued");
            Ok(())
        }
        Job::DailySummary(s) => summary::send(state, id, s).await,
        Job::Cleanup { at } => {
            let removed = cleanup::cleanup_at(state, *at).await?;
            tracing::info!(%at, ?removed, "clean-up done");
            Ok(())
        }
    }
}

/// Whether an invite can still be accepted (a revoked one is not mailed).
async fn invite_still_pending(state: &AppState, m: &email::InviteEmail) -> anyhow::Result<bool> {
    let (org_id, invite_id) = (m.org_id, m.invite_id);
    let row = crate::read_unit!(
        state.db,
        Scope::tenant(Uuid::nil(), org_id),
        |u| async move {
            match u
            .fetch_optional(
                "SELECT accepted_at, revoked_at, expires_at FROM invites WHERE org_id = $1 AND id = $2",
                &args![org_id, invite_id],
            )
            .await?
        {
            Some(r) => Ok::<_, DbError>(Some((
                r.get::<Option<DateTime<Utc>>>(0)?,
                r.get::<Option<DateTime<Utc>>>(1)?,
                r.get::<DateTime<Utc>>(2)?,
            ))),
            None => Ok(None),
        }
        }
    )?;
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
) -> Result<(), DomainError> {
    let kind = c.payload.kind();
    let id = c.id;
    match result {
        Ok(()) => {
            // Done jobs are deleted: their payload may hold a secret (an
            // invite token) that must not outlive its use.
            crate::unit!(state.db, system, |u| async move {
                u.execute("DELETE FROM jobs WHERE id = $1", &args![id])
                    .await
                    .map_err(DomainError::from)
            })?;
            ::metrics::counter!("orgboard_jobs_completed_total", "kind" => kind).increment(1);
        }
        Err(e) => {
            let msg: String = format!("{e:#}").chars().take(2000).collect();
            let dead = c.attempts >= c.max_attempts;
            let now = now();
            tracing::warn!(job_id = %c.id, kind, attempts = c.attempts, dead, error = %msg, "job failed");
            // A dead job keeps its payload for inspection, minus secrets.
            let payload = serde_json::to_value(if dead {
                c.payload.scrubbed()
            } else {
                c.payload.clone()
            })
            .map_err(|e| DomainError::internal(anyhow::anyhow!("job payload: {e}")))?;
            let run_at = now + backoff(c.attempts);
            crate::unit!(state.db, system, |u| async move {
                u.execute(
                    "UPDATE jobs SET status = $1, run_at = $2, locked_until = NULL, last_error = $3, \
                     updated_at = $4, payload = $6 WHERE id = $5",
                    &args![
                        if dead { "dead" } else { "queued" },
                        run_at,
                        msg.as_str(),
                        now,
                        id,
                        &payload
                    ],
                )
                .await
                .map_err(DomainError::from)
            })?;
            ::metrics::counter!("orgboard_job_failures_total", "kind" => kind).increment(1);
            if dead {
                ::metrics::counter!("orgboard_jobs_dead_total", "kind" => kind).increment(1);
            }
        }
    }
    Ok(())
}

/// Puts a job interrupted by shutdown back in the queue, due at once, its
/// interrupted attempt not counted.
async fn release(state: &AppState, c: &Claimed) -> Result<(), DomainError> {
    let id = c.id;
    crate::unit!(state.db, system, |u| async move {
        u.execute(
            "UPDATE jobs SET status = 'queued', locked_until = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $2 \
             WHERE id = $1 AND status = 'running'",
            &args![id, now()],
        )
        .await
        .map_err(DomainError::from)
    })?;
    tracing::info!(job_id = %c.id, kind = c.payload.kind(), "job released at shutdown");
    Ok(())
}

/// Runs a claimed job to its end: done, failed (an error, or the timeout),
/// or, when `shutdown` fires and the grace period passes first, released.
async fn run_claimed(
    state: &AppState,
    c: Claimed,
    shutdown: &CancellationToken,
) -> Result<(), DomainError> {
    let limit = Duration::from_secs(state.config.job_timeout_secs);
    let work = tokio::time::timeout(limit, perform(state, c.id, &c.payload));
    tokio::pin!(work);
    let outcome = tokio::select! {
        biased;
        r = &mut work => Some(r),
        _ = shutdown.cancelled() => {
            let grace = Duration::from_secs(state.config.job_shutdown_grace_secs);
            tokio::time::timeout(grace, &mut work).await.ok()
        }
    };
    match outcome {
        Some(Ok(result)) => finish(state, &c, result).await,
        Some(Err(_elapsed)) => {
            let e = anyhow::anyhow!("timed out after {} s", limit.as_secs());
            finish(state, &c, Err(e)).await
        }
        None => release(state, &c).await,
    }
}

/// Runs due jobs until none is left or `shutdown` fires.
async fn drain(state: &AppState, shutdown: &CancellationToken) -> Result<usize, DomainError> {
    let mut n = 0;
    while !shutdown.is_cancelled() {
        let Some(c) = claim(state).await? else {
            break;
        };
        run_claimed(state, c, shutdown).await?;
        n += 1;
    }
    Ok(n)
}

/// Runs due jobs until none is left (including jobs they enqueue); returns
/// how many ran. Used by tests that want the queue drained now.
pub async fn run_due(state: &AppState) -> Result<usize, DomainError> {
    drain(state, &CancellationToken::new()).await
}

/// Starts the worker loop and the scheduler; both stop when `shutdown` is
/// cancelled, the worker after finishing (or releasing) the job in hand.
pub fn spawn_worker(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let scheduler = tokio::spawn(scheduler_loop(state.clone(), shutdown.clone()));
        while !shutdown.is_cancelled() {
            if let Err(e) = drain(&state, &shutdown).await {
                tracing::error!(error = %e, "job worker error");
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = state.jobs_wakeup.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        let _ = scheduler.await;
        tracing::debug!(at = %Utc::now(), "job worker stopped");
    })
}

async fn scheduler_loop(state: AppState, shutdown: CancellationToken) {
    let tick = Duration::from_secs(state.config.scheduler_tick_secs.max(1));
    loop {
        if let Err(e) = run_schedules_at(&state, now()).await {
            tracing::error!(error = %e, "scheduler error");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1).num_seconds(), 2);
        assert_eq!(backoff(3).num_seconds(), 8);
        assert_eq!(backoff(50).num_seconds(), 3600);
        assert_eq!(backoff(-1).num_seconds(), 1);
    }

    #[test]
    fn schedule_runs_are_aligned_on_their_period() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let quarter = chrono::Duration::minutes(15);
        assert_eq!(
            next_after(at("2030-01-01T08:07:12Z"), quarter),
            at("2030-01-01T08:15:00Z")
        );
        // Exactly on a boundary: the next one, never the same instant.
        assert_eq!(
            next_after(at("2030-01-01T08:15:00Z"), quarter),
            at("2030-01-01T08:30:00Z")
        );
        assert_eq!(
            next_after(at("2030-01-01T23:59:59Z"), chrono::Duration::hours(1)),
            at("2030-01-02T00:00:00Z")
        );
    }

    #[test]
    fn payloads_are_tagged_by_kind() {
        let at = "2030-01-01T08:00:00Z".parse().expect("time");
        for job in [Job::DailySummaries { at }, Job::Cleanup { at }] {
            let v = serde_json::to_value(&job).expect("json");
            assert_eq!(v["kind"], job.kind());
            assert_eq!(serde_json::from_value::<Job>(v).expect("back"), job);
        }
    }
}
