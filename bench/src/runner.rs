//! Running a phase: every VU loops on its scenario until the time is up,
//! one request at a time; requests that start during the warm-up are not
//! recorded (their writes still count for the integrity check).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::limit::limit_op;
use crate::scenario::{Env, Scenario, Vu, http_op};
use crate::stats::Recorder;

/// HTTP or database-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Through the server, over real sockets.
    Http,
    /// The same SQL, directly on the database.
    Limit,
    /// The smallest honest write transaction (insert a task and its audit
    /// row), whatever the scenario: the database's own pace.
    Raw,
}

/// What a phase measured.
pub struct PhaseResult {
    /// Every recorded request.
    pub total: Recorder,
    /// Per operation (for the mix).
    pub per_op: BTreeMap<&'static str, Recorder>,
    /// Length of the measured window: end of warm-up → last recorded answer.
    pub seconds: f64,
}

/// Runs `scenario` with `vus` (one task each) and gives the VUs back.
pub async fn run_phase(
    vus: Vec<Vu>,
    env: Arc<Env>,
    scenario: Scenario,
    mode: Mode,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<(Vec<Vu>, PhaseResult)> {
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut handles = Vec::with_capacity(vus.len());
    for mut vu in vus {
        // A phase starts with no chain of pages open: one left open by the
        // previous scenario may be of another kind (a task filter's cursor
        // is no audit-log cursor).
        vu.http_chain = None;
        vu.db_chain = None;
        let env = env.clone();
        handles.push(tokio::spawn(async move {
            let mut total = Recorder::new();
            let mut per_op: BTreeMap<&'static str, Recorder> = BTreeMap::new();
            let mut last = measure_from;
            tokio::time::sleep_until(start).await;
            loop {
                let t = Instant::now();
                if t >= end {
                    break;
                }
                let picked = scenario.pick(&mut vu.rng);
                let op = vu.next_op(picked, mode);
                let r = match mode {
                    Mode::Http => http_op(&mut vu, &env, op).await,
                    Mode::Limit => limit_op(&mut vu, &env, op).await,
                    Mode::Raw => crate::limit::raw_op(&mut vu, &env).await,
                };
                match r {
                    Some((latency, outcome)) if t >= measure_from => {
                        total.record(latency, &outcome);
                        per_op
                            .entry(op.name())
                            .or_default()
                            .record(latency, &outcome);
                        last = last.max(Instant::now());
                    }
                    Some(_) => {}
                    // Nothing to do for this VU (e.g. no tasks): don't spin.
                    None => tokio::task::yield_now().await,
                }
            }
            (vu, total, per_op, last)
        }));
    }
    let mut vus = Vec::new();
    let mut total = Recorder::new();
    let mut per_op: BTreeMap<&'static str, Recorder> = BTreeMap::new();
    let mut last = measure_from;
    for h in handles {
        let (vu, t, p, l) = h.await?;
        vus.push(vu);
        total.merge(&t);
        for (k, r) in p {
            per_op.entry(k).or_default().merge(&r);
        }
        last = last.max(l);
    }
    vus.sort_by_key(|v| v.idx);
    let seconds = (last - measure_from).as_secs_f64();
    Ok((
        vus,
        PhaseResult {
            total,
            per_op,
            seconds: if seconds > 0.0 {
                seconds
            } else {
                duration.as_secs_f64()
            },
        },
    ))
}
