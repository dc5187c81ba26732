//! Prometheus metrics, served at `GET /metrics` (unauthenticated, like
//! `/healthz`: keep it off the public internet or filter it at the proxy).
//!
//! Code records through the [`metrics`] facade (`metrics::counter!(…)`,
//! `metrics::gauge!(…)`); one Prometheus recorder, installed once per
//! process by [`init`], keeps the values and [`render`] writes them out.
//! What this module measures itself:
//!
//! * every HTTP request, by matched route template (never the raw path, so
//!   ids do not explode the label set; `unmatched` for 404s of unknown
//!   paths), method and status: [`HTTP_REQUESTS`] and the latency histogram
//!   [`HTTP_DURATION`] (the [`track_requests`] middleware; `/metrics` itself
//!   is left out);
//! * at each scrape ([`scrape`]): the database pools ([`DB_POOL_CONNECTIONS`],
//!   [`DB_POOL_IDLE`], [`DB_POOL_MAX`]) and the job queue by status
//!   ([`JOB_QUEUE_DEPTH`]).
//!
//! Other modules emit the metrics named by the remaining constants; [`init`]
//! describes them and registers them at zero so they are scraped (and can be
//! alerted on) before the first event.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::db::Db;

/// Where the metrics are served (and the one route they do not count).
pub const METRICS_PATH: &str = "/metrics";

/// Counter: HTTP requests, by `method`, `route` (template) and `status`.
pub const HTTP_REQUESTS: &str = "orgboard_http_requests_total";
/// Histogram: seconds from request to response headers, same labels as
/// [`HTTP_REQUESTS`] (a streamed body, such as live events, is not timed).
pub const HTTP_DURATION: &str = "orgboard_http_request_duration_seconds";
/// Gauge: open connections of a database pool (`pool` = `postgres`,
/// `postgres_units` or `sqlite_reader`), busy and idle.
pub const DB_POOL_CONNECTIONS: &str = "orgboard_db_pool_connections";
/// Gauge: idle connections of a database pool.
pub const DB_POOL_IDLE: &str = "orgboard_db_pool_idle_connections";
/// Gauge: the most connections a database pool may open.
pub const DB_POOL_MAX: &str = "orgboard_db_pool_max_connections";
/// Gauge: jobs in the queue table by `status` (`queued`, `running`, `dead`;
/// done jobs are deleted).
pub const JOB_QUEUE_DEPTH: &str = "orgboard_job_queue_depth";
/// Gauge: live event streams (SSE and WebSocket) open on this node.
pub const EVENT_STREAMS_OPEN: &str = "orgboard_event_streams_open";
/// Counter: events published to subscribers.
pub const EVENTS_PUBLISHED: &str = "orgboard_events_published_total";
/// Counter: board views served from the cache.
pub const BOARD_CACHE_HITS: &str = "orgboard_board_cache_hits_total";
/// Counter: board views that had to be built from the database.
pub const BOARD_CACHE_MISSES: &str = "orgboard_board_cache_misses_total";
pub use crate::cache::BOARD_CACHE_PATCHES;
pub use crate::db::writer::SQLITE_WRITE_BATCHES;
pub use crate::db::writer::SQLITE_WRITE_JOBS;
/// Counter: job attempts that failed (each retry counts).
pub const JOB_FAILURES: &str = "orgboard_job_failures_total";
/// Counter: jobs moved to the dead-letter state.
pub const JOBS_DEAD: &str = "orgboard_jobs_dead_total";
/// Counter: jobs that completed.
pub const JOBS_COMPLETED: &str = "orgboard_jobs_completed_total";

/// Latency buckets in seconds, 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Job states, all reported (at zero when absent) so a drained state drops
/// back to 0 instead of keeping its last value.
const JOB_STATUSES: &[&str] = &["queued", "running", "dead"];

/// How often histogram samples are folded into their buckets (the recorder
/// leaves this to its owner; unscraped samples would pile up otherwise).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// A scrape's database query may take this long before it is skipped.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(2);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Samples and renders one at a time: the sampled gauges are process-wide,
/// and a process can host several applications (the test suite does), so
/// two interleaved scrapes could otherwise report each other's values.
static SCRAPE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Installs the Prometheus recorder as the process's global recorder (once;
/// later calls return the same handle) and describes every metric.
/// `AppState::new` calls it, before anything can record.
pub fn init() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            // Only fails on an empty bucket list.
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %e, "another metrics recorder is installed; /metrics will miss its values");
        }
        describe();
        process_collector().describe();
        metrics::gauge!(
            "orgboard_build_info",
            "version" => env!("CARGO_PKG_VERSION"),
            "commit" => crate::COMMIT
        )
        .set(1.0);
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
        }
        handle
    })
}

/// Everything recorded so far, in the Prometheus text format (without
/// sampling the database; see [`scrape`]).
pub fn render() -> String {
    init().render()
}

/// Samples the database pools and the job queue of `db`, then renders
/// (what `GET /metrics` answers).
pub async fn scrape(db: &Db) -> String {
    let handle = init();
    let _one_at_a_time = SCRAPE.lock().await;
    // Pools first: the job query below borrows a connection.
    sample_pools(db);
    sample_job_queue(db).await;
    process_collector().collect();
    handle.render()
}

/// The standard `process_*` metrics (CPU seconds, resident and virtual
/// memory, open and maximum file descriptors, threads, start time), read
/// from `/proc` at each scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by method, route template and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from request to response headers, by method, route template and status."
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Open connections of each database pool (busy and idle), sampled at scrape."
    );
    describe_gauge!(
        DB_POOL_IDLE,
        "Idle connections of each database pool, sampled at scrape."
    );
    describe_gauge!(DB_POOL_MAX, "Most connections each database pool may open.");
    describe_gauge!(
        JOB_QUEUE_DEPTH,
        "Jobs in the queue table by status, sampled at scrape."
    );
    describe_gauge!(
        EVENT_STREAMS_OPEN,
        "Live event streams (SSE and WebSocket) open on this node."
    );
    describe_counter!(EVENTS_PUBLISHED, "Events published to subscribers.");
    describe_counter!(BOARD_CACHE_HITS, "Board views served from the cache.");
    describe_counter!(
        BOARD_CACHE_MISSES,
        "Board views built from the database (cache miss)."
    );
    describe_counter!(
        BOARD_CACHE_PATCHES,
        "Cached board views kept through a task change by patching."
    );
    describe_counter!(
        SQLITE_WRITE_BATCHES,
        "Transactions committed by the SQLite group-commit writer."
    );
    describe_counter!(
        SQLITE_WRITE_JOBS,
        "Write requests carried by the SQLite group-commit writer's transactions."
    );
    describe_counter!(
        JOB_FAILURES,
        "Job attempts that failed (each retry counts)."
    );
    describe_counter!(JOBS_DEAD, "Jobs moved to the dead-letter state.");
    describe_counter!(JOBS_COMPLETED, "Jobs that completed.");

    // Registered at zero so they are scraped before the first event.
    metrics::gauge!(EVENT_STREAMS_OPEN).increment(0.0);
    for name in [
        EVENTS_PUBLISHED,
        BOARD_CACHE_HITS,
        BOARD_CACHE_MISSES,
        BOARD_CACHE_PATCHES,
        JOB_FAILURES,
        JOBS_DEAD,
        JOBS_COMPLETED,
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// Middleware counting and timing every request by its route template.
pub async fn track_requests(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    if route.as_deref() == Some(METRICS_PATH) {
        return next.run(req).await;
    }
    let method = method_label(req.method());
    let started = Instant::now();
    let res = next.run(req).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route.unwrap_or_else(|| "unmatched".to_owned())),
        ("status", res.status().as_u16().to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    res
}

/// The method as a label; anything unusual is `other` (clients choose the
/// method, and must not be able to grow the label set).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn sample_pools(db: &Db) {
    let pool = |name: &'static str, size: u32, idle: usize, max: u32| {
        metrics::gauge!(DB_POOL_CONNECTIONS, "pool" => name).set(f64::from(size));
        metrics::gauge!(DB_POOL_IDLE, "pool" => name).set(idle as f64);
        metrics::gauge!(DB_POOL_MAX, "pool" => name).set(f64::from(max));
    };
    match db {
        Db::Postgres(p, _, units) => {
            pool(
                "postgres",
                p.size(),
                p.num_idle(),
                p.options().get_max_connections(),
            );
            let s = units.status();
            pool(
                "postgres_units",
                u32::try_from(s.size).unwrap_or(u32::MAX),
                s.available,
                u32::try_from(s.max_size).unwrap_or(u32::MAX),
            );
        }
        // The writer is one thread with its connection, not a pool: its
        // work is in the write batch and job counters.
        Db::Sqlite { lite, .. } => {
            // The read pool of every route and job (rusqlite).
            let s = lite.status();
            let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
            pool("sqlite_reader", n(s.open), s.idle, n(s.max));
        }
    }
}

async fn sample_job_queue(db: &Db) {
    match tokio::time::timeout(SAMPLE_TIMEOUT, crate::jobs::queue::queue_depth(db)).await {
        Ok(Ok(counts)) => {
            let missing = JOB_STATUSES
                .iter()
                .filter(|s| !counts.iter().any(|(c, _)| c == *s))
                .map(|s| ((*s).to_owned(), 0));
            for (status, n) in counts.iter().cloned().chain(missing) {
                metrics::gauge!(JOB_QUEUE_DEPTH, "status" => status).set(n as f64);
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot count jobs"),
        Err(_) => tracing::warn!("metrics: counting jobs timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn described_metrics_appear_at_zero() {
        init();
        let text = render();
        for name in [
            JOBS_COMPLETED,
            JOBS_DEAD,
            JOB_FAILURES,
            EVENTS_PUBLISHED,
            BOARD_CACHE_HITS,
            BOARD_CACHE_MISSES,
            BOARD_CACHE_PATCHES,
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} counter")),
                "{name} missing:\n{text}"
            );
        }
        assert!(
            text.contains(&format!("# TYPE {EVENT_STREAMS_OPEN} gauge")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "# HELP {JOBS_DEAD} Jobs moved to the dead-letter state."
            )),
            "{text}"
        );
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&odd), "other");
    }
}
