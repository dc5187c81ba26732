//! The job queue as the gauges see it: how many jobs per status. Apart
//! from the worker ([`super`]) so that metrics can read it without
//! depending on the application state.

use crate::db::Db;
use crate::on_tx;

/// Number of jobs per status (`queued`, `running`, `dead`; zero included),
/// for the queue-depth gauges. `running` includes jobs whose lease expired
/// and that wait to be claimed again.
pub async fn queue_depth(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let mut tx = db.system_read().await?;
    let rows: Vec<(String, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT status, COUNT(*) FROM jobs GROUP BY status"
    )
    .fetch_all(c)
    .await)?;
    drop(tx);
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
