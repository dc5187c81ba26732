//! The daily summary: at 08:00 in each member's own time zone, one mail
//! listing, for every organization they belong to, the tasks assigned to
//! them that are overdue, due in the next 24 hours, or were completed
//! yesterday (their local yesterday). Sent only when there is something to
//! say, at most once per member and local day.
//!
//! The `daily_summary` schedule runs [`daily_summary_at`] every 15 minutes:
//! it finds the time zones in use where the local hour is 08 and enqueues
//! one [`SummaryJob`] per member of those zones whose day is not yet
//! handled. That job ([`send`]) claims the day in `daily_summaries` (so two
//! jobs for one member and day never both mail), reads each organization's
//! tasks in a normal tenant transaction (row-level security applies on
//! PostgreSQL), and mails through [`crate::email`] (SMTP, or the outbox).

use chrono::offset::LocalResult;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone as _, Timelike as _, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::args;
use crate::db::uow::{DbError, Uow};
use crate::db::{Scope, now};
use crate::domain::DomainError;
use crate::email::{self, OrgSummary, SummaryEmail, SummaryTask};

use crate::jobs::{self, Job};
use crate::state::AppState;

/// The local hour the summary is sent in.
pub const SUMMARY_HOUR: u32 = 8;
/// "Due soon" means due within this long after the summary's time.
pub const DUE_SOON: chrono::Duration = chrono::Duration::hours(24);
/// Most tasks read per organization (the mail lists fewer; this bounds the
/// work for a member with thousands of overdue tasks).
const MAX_TASKS_PER_ORG: i64 = 500;

/// Payload of one member's summary job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SummaryJob {
    /// The member.
    pub user_id: Uuid,
    /// Their local day the summary is for.
    pub local_date: NaiveDate,
    /// The time the summary describes ("overdue" is due before it).
    pub at: DateTime<Utc>,
}

/// The zone named `name`, or UTC when the name is not a known IANA zone
/// (names are validated on input; this covers rows written before that).
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// When `date` starts in `tz`, in UTC. A zone whose clocks skip midnight
/// (a daylight-saving change at 00:00) starts the day at its first local
/// time that exists.
pub fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_time(NaiveTime::MIN);
    for _ in 0..8 {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(d) | LocalResult::Ambiguous(d, _) => return d.with_timezone(&Utc),
            LocalResult::None => t += chrono::Duration::minutes(15),
        }
    }
    date.and_time(NaiveTime::MIN).and_utc()
}

/// Enqueues a summary job for every member whose local time at `at` is
/// 08:xx and whose local day has no summary handled yet; returns how many.
/// Run by the `daily_summary` schedule; the clock is a parameter so tests
/// can pick any moment.
pub async fn daily_summary_at(state: &AppState, at: DateTime<Utc>) -> Result<usize, DomainError> {
    let n = crate::unit!(state.db, Scope::system(), |u| enqueue_summaries(u, at))?;
    if n > 0 {
        jobs::wake(state);
    }
    Ok(n)
}

/// Enqueues the summary jobs due at `at` (see [`daily_summary_at`]).
async fn enqueue_summaries<U: Uow>(u: &mut U, at: DateTime<Utc>) -> Result<usize, DomainError> {
    let zones = u
        .fetch_all("SELECT DISTINCT time_zone FROM users", &[])
        .await?
        .iter()
        .map(|r| r.get::<String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    let mut n = 0;
    for name in zones {
        let local = at.with_timezone(&zone(&name));
        if local.hour() != SUMMARY_HOUR {
            continue;
        }
        let local_date = local.date_naive();
        let users = u
            .fetch_all(
                "SELECT u.id FROM users u WHERE u.time_zone = $1 AND NOT EXISTS \
                 (SELECT 1 FROM daily_summaries d WHERE d.user_id = u.id AND d.local_date = $2) \
                 ORDER BY u.id",
                &args![name.as_str(), local_date],
            )
            .await?
            .iter()
            .map(|r| r.get::<Uuid>(0))
            .collect::<Result<Vec<_>, _>>()?;
        for user_id in users {
            let job = Job::DailySummary(SummaryJob {
                user_id,
                local_date,
                at,
            });
            jobs::enqueue_in(u, &job).await?;
            n += 1;
        }
    }
    Ok(n)
}

/// Claims the member's day for job `job_id`: true when this job (or an
/// earlier attempt of it) owns the day and nothing was mailed yet.
async fn claim_day(state: &AppState, job_id: Uuid, job: &SummaryJob) -> Result<bool, DomainError> {
    let (user_id, local_date) = (job.user_id, job.local_date);
    crate::unit!(state.db, Scope::user(user_id), |u| async move {
        u.execute(
            "INSERT INTO daily_summaries (user_id, local_date, job_id, mailed, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, local_date) DO NOTHING",
            &args![user_id, local_date, job_id, false, now()],
        )
        .await?;
        let owner = u
            .fetch_optional(
                "SELECT job_id, mailed FROM daily_summaries WHERE user_id = $1 AND local_date = $2",
                &args![user_id, local_date],
            )
            .await?;
        Ok(match owner {
            Some(r) => r.get::<Uuid>(0)? == job_id && !r.get::<bool>(1)?,
            None => false,
        })
    })
}

type TaskRow = (
    String,
    String,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

/// The member's part of one organization, read inside that tenant.
async fn org_summary(
    state: &AppState,
    job: &SummaryJob,
    org_id: Uuid,
    org_name: String,
    yesterday: (DateTime<Utc>, DateTime<Utc>),
) -> Result<OrgSummary, DbError> {
    let sql = format!(
        "SELECT t.title, b.name, t.status, t.due_date, t.completed_at \
           FROM task_assignees a \
           JOIN tasks t ON t.org_id = a.org_id AND t.id = a.task_id \
           JOIN boards b ON b.org_id = t.org_id AND b.id = t.board_id \
          WHERE a.org_id = $1 AND a.user_id = $2 AND b.archived_at IS NULL \
            AND ((t.status <> 'done' AND t.due_date < $3) \
                 OR (t.status = 'done' AND t.completed_at >= $4 AND t.completed_at < $5)) \
          ORDER BY t.id LIMIT {MAX_TASKS_PER_ORG}"
    );
    let (user_id, due_before) = (job.user_id, job.at + DUE_SOON);
    let rows = crate::read_unit!(state.db, Scope::tenant(user_id, org_id), |u| async move {
        let args = args![org_id, user_id, due_before, yesterday.0, yesterday.1];
        u.fetch_all(&sql, &args)
            .await?
            .iter()
            .map(|r| -> Result<TaskRow, DbError> {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut summary = OrgSummary {
        org_name,
        ..Default::default()
    };
    for (title, board, status, due, completed) in rows {
        let task = |at| SummaryTask {
            title: title.clone(),
            board: board.clone(),
            at,
        };
        match (status.as_str(), due, completed) {
            ("done", _, Some(done_at)) => summary.completed.push(task(done_at)),
            ("done", _, None) => {}
            (_, Some(due), _) if due < job.at => summary.overdue.push(task(due)),
            (_, Some(due), _) => summary.due_soon.push(task(due)),
            (_, None, _) => {}
        }
    }
    for list in [
        &mut summary.overdue,
        &mut summary.due_soon,
        &mut summary.completed,
    ] {
        list.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.title.cmp(&b.title)));
    }
    Ok(summary)
}

/// Runs one member's summary job (`job_id` names the outbox file and owns
/// the day; see the module docs).
pub async fn send(state: &AppState, job_id: Uuid, job: &SummaryJob) -> anyhow::Result<()> {
    // The member and their organizations, as the member (row-level security
    // shows a user their own memberships).
    let user_id = job.user_id;
    let (user, orgs) = crate::read_unit!(state.db, Scope::user(user_id), |u| async move {
        let user = match u
            .fetch_optional(
                "SELECT email, name, time_zone FROM users WHERE id = $1",
                &args![user_id],
            )
            .await?
        {
            Some(r) => Some((
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<String>(2)?,
            )),
            None => None,
        };
        let orgs = u
            .fetch_all(
                "SELECT o.id, o.name FROM memberships m JOIN organizations o ON o.id = m.org_id \
                 WHERE m.user_id = $1 AND o.deleted_at IS NULL ORDER BY o.name, o.id",
                &args![user_id],
            )
            .await?
            .iter()
            .map(|r| Ok((r.get::<Uuid>(0)?, r.get::<String>(1)?)))
            .collect::<Result<Vec<_>, DbError>>()?;
        Ok::<_, DbError>((user, orgs))
    })?;
    let Some((to, name, tz_name)) = user else {
        return Ok(()); // the account is gone
    };
    if !claim_day(state, job_id, job).await? {
        tracing::debug!(user_id = %job.user_id, date = %job.local_date,
            "daily summary already handled");
        return Ok(());
    }

    let tz = zone(&tz_name);
    let yesterday = match job.local_date.pred_opt() {
        Some(y) => (local_midnight(tz, y), local_midnight(tz, job.local_date)),
        None => return Ok(()),
    };
    let mut sections = Vec::new();
    for (org_id, org_name) in orgs {
        let s = org_summary(state, job, org_id, org_name, yesterday).await?;
        if !s.is_empty() {
            sections.push(s);
        }
    }
    if sections.is_empty() {
        tracing::debug!(user_id = %job.user_id, date = %job.local_date,
            "nothing to say; no daily summary sent");
        return Ok(());
    }
    let mail = SummaryEmail {
        to,
        name,
        time_zone: tz,
        local_date: job.local_date,
        orgs: sections,
    };
    email::send_summary(&state.config, job_id, job.user_id, &mail).await?;

    let (user_id, local_date) = (job.user_id, job.local_date);
    crate::unit!(state.db, Scope::user(user_id), |u| async move {
        u.execute(
            "UPDATE daily_summaries SET mailed = $1 WHERE user_id = $2 AND local_date = $3 AND job_id = $4",
            &args![true, user_id, local_date, job_id],
        )
        .await
        .map_err(DomainError::from)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_midnight_follows_the_zone() {
        let d = NaiveDate::from_ymd_opt(2030, 1, 2).expect("date");
        assert_eq!(
            local_midnight(chrono_tz::Asia::Kolkata, d),
            "2030-01-01T18:30:00Z".parse::<DateTime<Utc>>().expect("t")
        );
        assert_eq!(
            local_midnight(Tz::UTC, d),
            "2030-01-02T00:00:00Z".parse::<DateTime<Utc>>().expect("t")
        );
        // Santiago moved its clocks from 00:00 to 01:00 on 2022-09-11: the
        // day started at 01:00 local (04:00 UTC).
        let skipped = NaiveDate::from_ymd_opt(2022, 9, 11).expect("date");
        assert_eq!(
            local_midnight(chrono_tz::America::Santiago, skipped),
            "2022-09-11T04:00:00Z".parse::<DateTime<Utc>>().expect("t")
        );
    }

    #[test]
    fn unknown_zone_names_fall_back_to_utc() {
        assert_eq!(zone("Europe/Paris"), chrono_tz::Europe::Paris);
        assert_eq!(zone("Mars/Olympus"), Tz::UTC);
    }
}
