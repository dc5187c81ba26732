//! The job queue as the gauges see it: how many jobs per status. Apart
//! from the worker ([`super`]) so that metrics can read it without
//! depending on the application state.

use crate::db::Db;
use crate::db::uow::{DbError, Uow};

/// Number of jobs per status (`queued`, `running`, `dead`; zero included),
/// for the queue-depth gauges. `running` includes jobs whose lease expired
/// and that wait to be claimed again.
pub async fn queue_depth(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    let rows = crate::read_unit!(db, system, |u| async move {
        u.fetch_all("SELECT status, COUNT(*) FROM jobs GROUP BY status", &[])
            .await?
            .iter()
            .map(|r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)))
            .collect::<Result<Vec<_>, DbError>>()
    })?;
    let mut depth: Vec<(String, i64)> = ["queued", "running", "dead"]
        .into_iter()
        .map(|s| (s.to_owned(), 0))
        .collect();
    for (status, n) in rows {
        match depth.iter_mut().find(|(s, _)| *s == status) {
            Some(slot) => slot.1 = n,
            None => depth.push((status, n)),
        }
    }
    Ok(depth)
}
