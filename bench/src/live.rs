//! `live`: live events measured over real sockets.
//!
//! 1. **Event latency.** One node (node A), or with `--redis` on PostgreSQL
//!    two nodes (A and B) on the same database, Redis, prefix and secret.
//!    SSE subscribers on each node open `GET /orgs/{org}/events`; then one
//!    writer creates tasks one at a time through node A. Every subscriber
//!    stamps every event when its last byte is read; per node the report
//!    gives received − acknowledged (the writer had its `201`), received −
//!    sent (the writer sent the request) and received − the event's `at`
//!    (the server's write time, wall clock), as HDR histograms. It also
//!    checks that every subscriber got every acknowledged write's event,
//!    once, with consecutive ids.
//! 2. **Open streams.** N more streams on node A, spread over the
//!    organization's 64 members (the per-user cap is raised for the run),
//!    each checked for `200`; node A's RSS before and after gives bytes per
//!    stream, `/metrics` its gauge of open streams; then a few writes (through
//!    A, and alternately B when there are two nodes) are timed until the last
//!    stream got each; then the streams close and the gauge must drop to 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use hyper::Method;
use orgboard::auth::tokens::Keys;
use orgboard::db::Db;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

use crate::http::Http;
use crate::report::{Machine, ServerReport, mib, ms_signed};
use crate::seed::{self, Tier};
use crate::server::{self, ServerProc, memory_kb};
use crate::sse;
use crate::stats::{Dist, DistSummary, parse_duration};
use crate::{
    DbKind, Location, cleanup, db_version, finish_seed, git, loadavg, locate, machine, new_secret,
    parse_server_env, server_binary, start_server, workspace_dir,
};

/// How long subscribers may take to receive the last events before the
/// missing ones count as lost.
const DELIVERY_WAIT: Duration = Duration::from_secs(10);
/// Longest a stream may take to open (answer head).
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a fan-out write may take to reach every stream.
const FANOUT_WAIT: Duration = Duration::from_secs(30);

/// Arguments of `live`.
#[derive(Args)]
pub struct LiveArgs {
    /// The database: SQLite (one node) or PostgreSQL.
    #[arg(long, value_enum)]
    db: DbKind,
    /// PostgreSQL server to create the run's database on (its user needs
    /// CREATEDB).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_url: String,
    /// Redis for the servers (`ORGBOARD_REDIS_URL`, with a prefix of the
    /// run's own); with PostgreSQL a second node is started on the same
    /// database, Redis, prefix and secret.
    #[arg(long)]
    redis: Option<String>,
    /// Tasks the writer creates, one at a time, through node A (0: no
    /// latency phase).
    #[arg(long, default_value_t = 500)]
    events: u32,
    /// Pause after each write of the latency phase: 10ms, 0s.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    interval: Duration,
    /// Timing subscribers per node in the latency phase.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    subscribers: u16,
    /// Streams to open on node A (0: no open-streams phase).
    #[arg(long, default_value_t = 1000)]
    streams: u32,
    /// Streams being opened at a time.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    open_concurrency: u16,
    /// Writes timed until every open stream got their event.
    #[arg(long, default_value_t = 5)]
    fanout_writes: u32,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Server binary to start; default: this workspace's
    /// `target/<profile>/orgboard`, built first.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Do not build the default server binary first.
    #[arg(long)]
    no_build: bool,
    /// Extra `KEY=VALUE` environment for the servers (repeatable; wins over
    /// the tool's own, e.g. `ORGBOARD_MAX_STREAMS_PER_USER`).
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// Keep the run's database.
    #[arg(long)]
    keep_db: bool,
    /// Also exit non-zero when a write or a stream failed (lost or
    /// misordered events always do).
    #[arg(long)]
    strict: bool,
    /// Seed of the data set.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

/// Everything one `live` run measured.
#[derive(Debug, Serialize)]
pub struct LiveReport {
    /// `orgboard-bench <version>`.
    pub tool: String,
    /// The command line.
    pub command: String,
    /// When the run started (UTC).
    pub started_at: String,
    /// `git rev-parse --short HEAD`.
    pub commit: String,
    /// Whether tracked files differed from it.
    pub dirty: bool,
    /// The machine.
    pub machine: Machine,
    /// `sqlite` or `postgres`.
    pub db: String,
    /// Its version.
    pub db_version: String,
    /// Whether the servers used Redis.
    pub redis: bool,
    /// The servers: A, then B.
    pub servers: Vec<ServerReport>,
    /// `ORGBOARD_MAX_STREAMS_PER_USER` of the run.
    pub max_streams_per_user: String,
    /// The open-file limit (soft) of the tool, which the servers inherit.
    pub open_files_limit: Option<u64>,
    /// The latency phase.
    pub latency: Option<LatencyReport>,
    /// The open-streams phase.
    pub streams: Option<StreamsReport>,
    /// `/proc/loadavg` after seeding and at the end.
    pub loadavg: (String, String),
    /// Every event reached every subscriber and stream, once, in order.
    pub ok: bool,
    /// Remarks.
    pub notes: Vec<String>,
}

/// The latency phase.
#[derive(Debug, Serialize)]
pub struct LatencyReport {
    /// Writes asked for.
    pub writes: u32,
    /// Pause after each, ms.
    pub interval_ms: f64,
    /// Writes acknowledged (`201`).
    pub acknowledged: u64,
    /// Failed writes by status (`"500"`, `"io"`, `"timeout"`).
    pub write_errors: BTreeMap<String, u64>,
    /// Latency of the writes themselves (sent → `201` read).
    pub write_latency: DistSummary,
    /// Per node.
    pub nodes: Vec<NodeLatency>,
}

/// What the subscribers of one node saw.
#[derive(Debug, Serialize)]
pub struct NodeLatency {
    /// `A (same node as the writer)` or `B (other node)`.
    pub node: String,
    /// Subscribers on it.
    pub subscribers: usize,
    /// Acknowledged writes × subscribers.
    pub expected: u64,
    /// Of those, received.
    pub received: u64,
    /// Expected but not received within the wait.
    pub lost: u64,
    /// Events received twice by one subscriber.
    pub duplicates: u64,
    /// Events whose id did not follow the previous one's by 1.
    pub out_of_order: u64,
    /// Event received − write acknowledged (negative: the event came first).
    pub received_minus_acked: DistSummary,
    /// Event received − write sent.
    pub received_minus_sent: DistSummary,
    /// Event received (wall clock) − the event's `at`.
    pub received_minus_at: DistSummary,
}

/// The open-streams phase.
#[derive(Debug, Serialize)]
pub struct StreamsReport {
    /// Streams asked for.
    pub requested: u32,
    /// Opened with `200`.
    pub opened: u64,
    /// Failures by status or `io`/`timeout`.
    pub errors: BTreeMap<String, u64>,
    /// The first failure's message, if any.
    pub first_error: Option<String>,
    /// Users they were spread over.
    pub users: usize,
    /// Streams being opened at a time.
    pub open_concurrency: u16,
    /// Wall time to open all of them.
    pub open_seconds: f64,
    /// Opened per second.
    pub open_per_s: f64,
    /// Per stream: connect → response head.
    pub open_latency: DistSummary,
    /// Node A's `VmRSS` before opening them (KiB).
    pub rss_before_kib: u64,
    /// With all of them open, settled (KiB).
    pub rss_open_kib: u64,
    /// (open − before) ÷ opened.
    pub bytes_per_stream: Option<f64>,
    /// Highest `VmRSS` sampled while they were open (KiB).
    pub rss_peak_kib: u64,
    /// After closing them (KiB).
    pub rss_after_close_kib: u64,
    /// The tool's own `VmRSS` growth per stream (the client side).
    pub client_bytes_per_stream: Option<f64>,
    /// `orgboard_event_streams_open` before, with them open, after closing.
    pub gauge: (Option<f64>, Option<f64>, Option<f64>),
    /// The timed writes.
    pub fanout: Vec<FanoutReport>,
}

/// One write's way to every open stream.
#[derive(Debug, Serialize)]
pub struct FanoutReport {
    /// The node the write went through.
    pub via: String,
    /// Streams that got its event.
    pub reached: u64,
    /// Streams that did not (within the wait).
    pub missing: u64,
    /// Received − acknowledged over the streams.
    pub received_minus_acked: DistSummary,
}

/// A started node.
struct Node {
    name: &'static str,
    proc: ServerProc,
    report: ServerReport,
    http: Http,
}

/// One acknowledged write.
struct Write {
    sent: Instant,
    acked: Instant,
}

/// One event as a subscriber got it.
struct Got {
    id: i64,
    task: Option<Uuid>,
    at: Instant,
    wall: DateTime<Utc>,
    written: Option<DateTime<Utc>>,
}

impl Got {
    fn parse(e: &sse::SseEvent) -> Option<Got> {
        let v: Value = serde_json::from_str(&e.data).ok()?;
        let id = v.get("id")?.as_i64()?;
        let task = (v.get("type").and_then(Value::as_str) == Some("task.created"))
            .then(|| {
                v.pointer("/entity/id")
                    .and_then(Value::as_str)
                    .and_then(|s| Uuid::try_parse(s).ok())
            })
            .flatten();
        let written = v
            .get("at")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc));
        Some(Got {
            id,
            task,
            at: e.at,
            wall: e.wall,
            written,
        })
    }
}

/// The soft limit on open files of this process (inherited by the servers).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        Some(u64::MAX)
    } else {
        soft.parse().ok()
    }
}

/// The gauge of open streams on a node.
async fn gauge(http: &Http) -> Option<f64> {
    let text = crate::prom::scrape(http).await?;
    crate::prom::value(&text, crate::prom::STREAMS_OPEN)
}

/// Creates one task through `http`; `Ok(task)` on `201`, else the error key.
async fn create(
    http: &Http,
    org: Uuid,
    list: Uuid,
    token: &str,
    title: String,
) -> (Instant, Instant, Result<Uuid, String>) {
    let body = json!({ "title": title, "priority": "medium" }).to_string();
    let path = format!("/api/v1/orgs/{org}/lists/{list}/tasks");
    let sent = Instant::now();
    let r = http
        .send(
            Method::POST,
            &path,
            Some(token),
            Some(body.into_bytes()),
            None,
        )
        .await;
    let acked = Instant::now();
    let out = match r {
        Ok(r) if r.status == 201 => serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v.get("id")?.as_str().and_then(|s| Uuid::try_parse(s).ok()))
            .ok_or_else(|| "201 without an id".to_owned()),
        Ok(r) => Err(r.status.to_string()),
        Err(e) => Err(e.key.to_owned()),
    };
    (sent, acked, out)
}

/// Runs `live`.
pub async fn live(a: LiveArgs) -> anyhow::Result<bool> {
    let ws = workspace_dir();
    let run_id = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let started_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    anyhow::ensure!(
        a.redis.is_none() || a.db == DbKind::Postgres,
        "--redis starts a second node on the same database, which needs --db postgres"
    );
    let nodes = if a.redis.is_some() { 2 } else { 1 };
    // Each stream holds a descriptor in this process and one in the server.
    let need = u64::from(a.streams) + 2 * u64::from(a.subscribers) * nodes + 256;
    let limit = open_files_limit();
    if let Some(l) = limit
        && l < need
    {
        anyhow::bail!(
            "the open-file limit is {l}, this run needs about {need} (one descriptor per stream \
             in this tool and in the server, which inherits the limit): raise it first, e.g. \
             `ulimit -n {}`",
            need.next_power_of_two().max(4096)
        );
    }
    let server_env = parse_server_env(&a.server_env)?;
    let bin = server_binary(&ws, a.server_bin.clone(), a.no_build)?;
    let loc = locate(a.db, &a.pg_url, None, None, &run_id).await?;
    let outcome = live_on(&a, &loc, &bin, server_env, &run_id, limit).await;
    cleanup(loc, a.keep_db).await;
    let mut report = outcome?;
    report.started_at = started_at;
    let md = report.markdown();
    println!("{md}");
    if let Some(p) = &a.markdown {
        std::fs::write(p, &md).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if a.strict {
        let write_errors = report
            .latency
            .as_ref()
            .map_or(0, |l| l.write_errors.values().sum::<u64>());
        let stream_errors = report
            .streams
            .as_ref()
            .map_or(0, |s| s.errors.values().sum::<u64>());
        anyhow::ensure!(
            write_errors == 0 && stream_errors == 0,
            "--strict: {write_errors} failed writes, {stream_errors} streams not opened"
        );
    }
    if !report.ok {
        eprintln!("error: events were lost, duplicated or out of order (see the report)");
    }
    Ok(report.ok)
}

async fn live_on(
    a: &LiveArgs,
    loc: &Location,
    bin: &Path,
    server_env: BTreeMap<String, String>,
    run_id: &str,
    open_files: Option<u64>,
) -> anyhow::Result<LiveReport> {
    let ws = workspace_dir();
    let db = Db::connect(&loc.storage).await?;
    db.migrate().await.context("migrations failed")?;
    let db_version = db_version(&db).await;
    let db_name = match a.db {
        DbKind::Sqlite => "sqlite",
        DbKind::Postgres => "postgres",
    };
    eprintln!("seeding tier tiny on {db_name} {db_version} …");
    let ds = seed::seed(&db, Tier::Tiny, run_id, a.seed, 1).await?;
    finish_seed(&db, loc).await?;
    db.close().await;
    let org = ds.orgs.first().context("nothing seeded")?;
    let board = org.boards.first().context("no board seeded")?;
    let secret = new_secret();
    let keys = Keys::new(secret.as_bytes(), 900);
    let tokens = org
        .members
        .iter()
        .map(|m| keys.issue_access(m.id))
        .collect::<Result<Vec<_>, _>>()?;
    let users = tokens.len();

    // --- servers -------------------------------------------------------------
    let mut env = BTreeMap::new();
    let per_user = (a.streams as usize).div_ceil(users) + usize::from(a.subscribers) + 2;
    env.insert(
        "ORGBOARD_MAX_STREAMS_PER_USER".to_owned(),
        per_user.max(16).to_string(),
    );
    if let Some(r) = &a.redis {
        env.insert("ORGBOARD_REDIS_URL".to_owned(), r.clone());
        env.insert(
            "ORGBOARD_REDIS_PREFIX".to_owned(),
            format!("orgboard-bench-{run_id}"),
        );
    }
    env.extend(server_env);
    let max_per_user = env
        .get("ORGBOARD_MAX_STREAMS_PER_USER")
        .cloned()
        .unwrap_or_default();
    let mut nodes = Vec::new();
    let (p, r) = start_server(
        bin,
        &loc.storage,
        &loc.storage.data_dir,
        &secret,
        &env,
        "server-a.log",
    )
    .await?;
    nodes.push(Node {
        name: "A",
        http: Http::new(&p.base),
        proc: p,
        report: r,
    });
    if a.redis.is_some() {
        let dir = loc.storage.data_dir.join("node-b");
        std::fs::create_dir_all(&dir)?;
        let (p, r) = start_server(bin, &loc.storage, &dir, &secret, &env, "server-b.log").await?;
        nodes.push(Node {
            name: "B",
            http: Http::new(&p.base),
            proc: p,
            report: r,
        });
    }
    let load_start = loadavg();
    let events_path = format!("/api/v1/orgs/{}/events", org.id);

    // --- 1. latency --------------------------------------------------------------
    let latency = if a.events > 0 {
        Some(latency_phase(a, &nodes, org.id, &board.lists, &tokens, &events_path).await?)
    } else {
        None
    };
    check_alive(&mut nodes)?;

    // --- 2. open streams -----------------------------------------------------------
    let streams = if a.streams > 0 {
        Some(streams_phase(a, &nodes, org.id, &board.lists, &tokens, &events_path).await?)
    } else {
        None
    };
    check_alive(&mut nodes)?;

    // --- stop ----------------------------------------------------------------------
    let load_end = loadavg();
    let mut servers = Vec::new();
    for mut n in nodes {
        n.report.rss_peak_kib = memory_kb(n.proc.pid).map(|m| m.1).unwrap_or(0);
        n.report.clean_exit = n.proc.stop().await?;
        servers.push(n.report);
    }

    if let Some(url) = &a.redis {
        let prefix = format!("orgboard-bench-{run_id}");
        match tokio::time::timeout(Duration::from_secs(5), redis_cleanup(url, &prefix)).await {
            Ok(Ok(n)) => eprintln!("removed {n} Redis key(s) under {prefix}:"),
            Ok(Err(e)) => {
                eprintln!("warning: could not remove the Redis keys under {prefix}: {e:#}")
            }
            Err(_) => eprintln!("warning: could not remove the Redis keys under {prefix}: timeout"),
        }
    }

    let lat_ok = latency.as_ref().is_none_or(|l| {
        l.nodes
            .iter()
            .all(|n| n.lost == 0 && n.duplicates == 0 && n.out_of_order == 0)
    });
    let fan_ok = streams
        .as_ref()
        .is_none_or(|s| s.fanout.iter().all(|f| f.missing == 0));
    let mut notes = vec![
        format!(
            "Data: tier tiny (1 organization, 64 members, one board of 200 tasks); every stream \
             follows the whole organization (no board_id filter). Streams are spread over the \
             64 members; ORGBOARD_MAX_STREAMS_PER_USER = {max_per_user} for the run."
        ),
        "received − acknowledged is negative when the event reached the subscriber before the writer had read its 201 (the server publishes after the commit, before it answers); min and the percentiles keep the sign. received − at compares the tool's wall clock with the event's `at` (the server's write time, taken in the transaction before the commit), same machine and clock.".to_owned(),
        "Client, servers and database share the machine's CPUs: a fan-out to N streams includes the tool parsing N events on the same cores.".to_owned(),
    ];
    if a.redis.is_some() {
        notes.push(format!(
            "Two nodes on one PostgreSQL database and one Redis (prefix orgboard-bench-{run_id}, same secret); node A's commits are published through Redis to both nodes, node B only sees them through Redis."
        ));
    }
    Ok(LiveReport {
        tool: format!("orgboard-bench {}", env!("CARGO_PKG_VERSION")),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_at: String::new(),
        commit: git(&ws, &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        dirty: git(&ws, &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
        machine: machine(),
        db: db_name.to_owned(),
        db_version,
        redis: a.redis.is_some(),
        servers,
        max_streams_per_user: max_per_user,
        open_files_limit: open_files,
        latency,
        streams,
        loadavg: (load_start, load_end),
        ok: lat_ok && fan_ok,
        notes,
    })
}

/// Deletes the run's keys (`prefix:*`) from Redis: the servers leave their
/// board-cache version counters behind.
async fn redis_cleanup(url: &str, prefix: &str) -> anyhow::Result<i64> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let n: i64 = redis::Script::new(
        "local n = 0 for _, k in ipairs(redis.call('KEYS', ARGV[1])) do \
         n = n + redis.call('DEL', k) end return n",
    )
    .arg(format!("{prefix}:*"))
    .invoke_async(&mut conn)
    .await?;
    Ok(n)
}

fn check_alive(nodes: &mut [Node]) -> anyhow::Result<()> {
    for n in nodes {
        if !n.proc.alive() {
            anyhow::bail!(
                "server {} died; log:\n{}",
                n.name,
                server::tail(&n.proc.log)
            );
        }
    }
    Ok(())
}

async fn latency_phase(
    a: &LiveArgs,
    nodes: &[Node],
    org: Uuid,
    lists: &[Uuid],
    tokens: &[String],
    path: &str,
) -> anyhow::Result<LatencyReport> {
    // Subscribers first: each is positioned at the newest event once its
    // answer head has arrived.
    type Inbox = Arc<Mutex<Vec<Got>>>;
    let mut subs: Vec<(usize, Inbox, tokio::task::JoinHandle<()>)> = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for i in 0..usize::from(a.subscribers) {
            let user = (n * usize::from(a.subscribers) + i) % tokens.len();
            let mut s = sse::open(node.proc.base.as_str(), path, &tokens[user])
                .await
                .with_context(|| format!("cannot open a subscriber on node {}", node.name))?;
            anyhow::ensure!(
                s.status == 200,
                "a subscriber on node {} got {}",
                node.name,
                s.status
            );
            let inbox: Inbox = Arc::default();
            let into = inbox.clone();
            let h = tokio::spawn(async move {
                while let Some(e) = s.next().await {
                    if let Some(g) = Got::parse(&e) {
                        into.lock().unwrap_or_else(|e| e.into_inner()).push(g);
                    }
                }
            });
            subs.push((n, inbox, h));
        }
    }
    eprintln!(
        "latency: {} subscriber(s) on {} node(s); writing {} tasks through node A, {:?} apart …",
        subs.len(),
        nodes.len(),
        a.events,
        a.interval
    );

    // One writer, one task at a time, through node A.
    let writer = &nodes[0].http;
    let mut writes: HashMap<Uuid, Write> = HashMap::new();
    let mut write_errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut write_latency = Dist::new();
    for k in 0..a.events as usize {
        let (sent, acked, r) = create(
            writer,
            org,
            lists[k % lists.len()],
            &tokens[0],
            format!("live event {k}"),
        )
        .await;
        match r {
            Ok(task) => {
                write_latency.record_between(sent, acked);
                writes.insert(task, Write { sent, acked });
            }
            Err(key) => *write_errors.entry(key).or_default() += 1,
        }
        if !a.interval.is_zero() {
            tokio::time::sleep(a.interval).await;
        }
    }

    // Wait until every subscriber has every acknowledged write's event.
    let deadline = Instant::now() + DELIVERY_WAIT;
    loop {
        let done = subs.iter().all(|(_, inbox, _)| {
            let got = inbox.lock().unwrap_or_else(|e| e.into_inner());
            got.iter()
                .filter(|g| g.task.is_some_and(|t| writes.contains_key(&t)))
                .count()
                >= writes.len()
        });
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (_, _, h) in &subs {
        h.abort();
    }

    let mut per_node = Vec::new();
    for n in 0..nodes.len() {
        let mut ack = Dist::new();
        let mut sent = Dist::new();
        let mut wall = Dist::new();
        let (mut received, mut duplicates, mut out_of_order) = (0u64, 0u64, 0u64);
        let mine: Vec<_> = subs.iter().filter(|(k, _, _)| *k == n).collect();
        for (_, inbox, _) in &mine {
            let got = inbox.lock().unwrap_or_else(|e| e.into_inner());
            let mut prev: Option<i64> = None;
            let mut seen = HashSet::new();
            for g in got.iter() {
                if prev.is_some_and(|p| g.id != p + 1) {
                    out_of_order += 1;
                }
                prev = Some(g.id);
                let Some(w) = g.task.and_then(|t| writes.get(&t).map(|w| (t, w))) else {
                    continue;
                };
                if !seen.insert(w.0) {
                    duplicates += 1;
                    continue;
                }
                received += 1;
                ack.record_between(w.1.acked, g.at);
                sent.record_between(w.1.sent, g.at);
                if let Some(at) = g.written
                    && let Some(us) = (g.wall - at).num_microseconds()
                {
                    wall.record_us(us);
                }
            }
        }
        let expected = writes.len() as u64 * mine.len() as u64;
        per_node.push(NodeLatency {
            node: if n == 0 {
                "A (same node as the writer)".to_owned()
            } else {
                "B (other node)".to_owned()
            },
            subscribers: mine.len(),
            expected,
            received,
            lost: expected.saturating_sub(received),
            duplicates,
            out_of_order,
            received_minus_acked: ack.summary(),
            received_minus_sent: sent.summary(),
            received_minus_at: wall.summary(),
        });
    }
    for n in &per_node {
        let s = &n.received_minus_acked;
        eprintln!(
            "latency {}: {} of {} events, received − acked p50 {} ms p99 {} ms max {} ms",
            n.node,
            n.received,
            n.expected,
            ms_signed(s.p50_us),
            ms_signed(s.p99_us),
            ms_signed(s.max_us)
        );
    }
    Ok(LatencyReport {
        writes: a.events,
        interval_ms: a.interval.as_secs_f64() * 1000.0,
        acknowledged: writes.len() as u64,
        write_errors,
        write_latency: write_latency.summary(),
        nodes: per_node,
    })
}

async fn streams_phase(
    a: &LiveArgs,
    nodes: &[Node],
    org: Uuid,
    lists: &[Uuid],
    tokens: &[String],
    path: &str,
) -> anyhow::Result<StreamsReport> {
    let node = &nodes[0];
    // Let the latency phase's streams close, then take the baseline.
    let mut gauge_before = gauge(&node.http).await;
    for _ in 0..50 {
        if gauge_before.is_none_or(|g| g == 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        gauge_before = gauge(&node.http).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = memory_kb(node.proc.pid).map_or(0, |m| m.0);
    let client_before = memory_kb(std::process::id()).map_or(0, |m| m.0);
    node.proc.take_sampled_peak_kb();
    eprintln!(
        "streams: opening {} on node A, {} at a time …",
        a.streams, a.open_concurrency
    );

    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<(u32, Uuid, Instant)>();
    let (open_tx, mut open_rx) =
        mpsc::unbounded_channel::<(Result<u16, String>, Instant, Instant)>();
    let sem = Arc::new(Semaphore::new(usize::from(a.open_concurrency)));
    let started = Instant::now();
    let mut handles = Vec::with_capacity(a.streams as usize);
    for i in 0..a.streams {
        let permit = sem.clone().acquire_owned().await?;
        let base = node.proc.base.clone();
        let path = path.to_owned();
        let token = tokens[i as usize % tokens.len()].clone();
        let ev_tx = ev_tx.clone();
        let open_tx = open_tx.clone();
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = tokio::time::timeout(OPEN_TIMEOUT, sse::open(&base, &path, &token)).await;
            let t1 = Instant::now();
            drop(permit);
            let mut s = match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let _ = open_tx.send((Err(format!("io: {e:#}")), t0, t1));
                    return;
                }
                Err(_) => {
                    let _ = open_tx.send((Err("timeout".to_owned()), t0, t1));
                    return;
                }
            };
            let _ = open_tx.send((Ok(s.status), t0, t1));
            drop(open_tx);
            if s.status != 200 {
                return;
            }
            while let Some(e) = s.next().await {
                if let Some(task) = Got::parse(&e).and_then(|g| g.task) {
                    let _ = ev_tx.send((i, task, e.at));
                }
            }
        }));
    }
    drop(open_tx);
    let mut opened = 0u64;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_error = None;
    let mut open_latency = Dist::new();
    let mut last_open = started;
    for _ in 0..a.streams {
        let Some((r, t0, t1)) = open_rx.recv().await else {
            break;
        };
        open_latency.record_between(t0, t1);
        last_open = last_open.max(t1);
        match r {
            Ok(200) => opened += 1,
            Ok(status) => *errors.entry(status.to_string()).or_default() += 1,
            Err(e) => {
                let key = if e == "timeout" { "timeout" } else { "io" };
                *errors.entry(key.to_owned()).or_default() += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let open_seconds = (last_open - started).as_secs_f64();
    eprintln!(
        "streams: {opened} of {} opened in {open_seconds:.1} s; errors {errors:?}",
        a.streams
    );
    // Settle, then measure.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rss_open = memory_kb(node.proc.pid).map_or(0, |m| m.0);
    let client_open = memory_kb(std::process::id()).map_or(0, |m| m.0);
    let gauge_open = gauge(&node.http).await;

    // Fan-out: a write, timed until every stream got its event.
    let mut fanout = Vec::new();
    for w in 0..a.fanout_writes as usize {
        let via = &nodes[w % nodes.len()];
        while ev_rx.try_recv().is_ok() {}
        let (_, acked, r) = create(
            &via.http,
            org,
            lists[w % lists.len()],
            &tokens[0],
            format!("fan-out {w}"),
        )
        .await;
        let task = match r {
            Ok(t) => t,
            Err(e) => anyhow::bail!("the fan-out write through node {} failed: {e}", via.name),
        };
        let mut d = Dist::new();
        let mut reached = HashSet::new();
        let deadline = tokio::time::Instant::from_std(acked + FANOUT_WAIT);
        while (reached.len() as u64) < opened {
            match tokio::time::timeout_at(deadline, ev_rx.recv()).await {
                Ok(Some((i, t, at))) if t == task => {
                    if reached.insert(i) {
                        d.record_between(acked, at);
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let s = d.summary();
        eprintln!(
            "fan-out via {}: {} of {opened} streams, last {} ms after the 201",
            via.name,
            reached.len(),
            ms_signed(s.max_us)
        );
        fanout.push(FanoutReport {
            via: via.name.to_owned(),
            reached: reached.len() as u64,
            missing: opened.saturating_sub(reached.len() as u64),
            received_minus_acked: s,
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let rss_peak = node.proc.take_sampled_peak_kb();

    // Close them; the node must count them down to zero.
    for h in &handles {
        h.abort();
    }
    for h in handles {
        let _ = h.await;
    }
    let mut gauge_after = gauge(&node.http).await;
    for _ in 0..100 {
        if gauge_after.is_none_or(|g| g <= gauge_before.unwrap_or(0.0)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        gauge_after = gauge(&node.http).await;
    }
    let rss_after_close = memory_kb(node.proc.pid).map_or(0, |m| m.0);
    let per = |after: u64, before: u64| {
        (opened > 0).then(|| (after as f64 - before as f64) * 1024.0 / opened as f64)
    };
    Ok(StreamsReport {
        requested: a.streams,
        opened,
        errors,
        first_error,
        users: tokens.len(),
        open_concurrency: a.open_concurrency,
        open_seconds,
        open_per_s: if open_seconds > 0.0 {
            opened as f64 / open_seconds
        } else {
            0.0
        },
        open_latency: open_latency.summary(),
        rss_before_kib: rss_before,
        rss_open_kib: rss_open,
        bytes_per_stream: per(rss_open, rss_before),
        rss_peak_kib: rss_peak,
        rss_after_close_kib: rss_after_close,
        client_bytes_per_stream: per(client_open, client_before),
        gauge: (gauge_before, gauge_open, gauge_after),
        fanout,
    })
}

fn gauge_text(g: Option<f64>) -> String {
    g.map_or_else(|| "?".to_owned(), |v| format!("{v:.0}"))
}

fn dist_cells(d: &DistSummary) -> String {
    if d.count == 0 {
        return "– | – | – | – | –".to_owned();
    }
    format!(
        "{} | {} | {} | {} | {}",
        ms_signed(d.min_us),
        ms_signed(d.p50_us),
        ms_signed(d.p90_us),
        ms_signed(d.p99_us),
        ms_signed(d.max_us)
    )
}

impl LiveReport {
    /// The Markdown rendering.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let nodes = self.servers.len();
        let _ = writeln!(
            o,
            "### orgboard-bench live: {} {}, {} node{}{}\n",
            self.db,
            self.db_version,
            nodes,
            if nodes == 1 { "" } else { "s" },
            if self.redis { " with Redis" } else { "" }
        );
        let _ = writeln!(
            o,
            "- commit `{}`{}; machine: {} CPUs ({}), {:.1} GiB RAM; started {}",
            self.commit,
            if self.dirty {
                " (with uncommitted changes)"
            } else {
                ""
            },
            self.machine.nproc,
            self.machine.cpu,
            self.machine.mem_total_mib as f64 / 1024.0,
            self.started_at
        );
        for (s, name) in self.servers.iter().zip(["A", "B"]) {
            let _ = writeln!(
                o,
                "- node {name}: {} build, start-up {:.0} ms, RSS idle {}, peak {}{}",
                s.profile,
                s.startup_ms,
                mib(s.rss_idle_kib),
                mib(s.rss_peak_kib),
                if s.clean_exit {
                    ""
                } else {
                    "; did NOT exit cleanly on SIGTERM"
                }
            );
        }
        let _ = writeln!(
            o,
            "- open-file limit {}; ORGBOARD_MAX_STREAMS_PER_USER={}; load average (1/5/15 min) {} after seeding, {} at the end",
            self.open_files_limit
                .map_or_else(|| "?".to_owned(), |l| l.to_string()),
            self.max_streams_per_user,
            self.loadavg.0,
            self.loadavg.1
        );
        let _ = writeln!(o, "- command: `{}`", self.command);
        if let Some(l) = &self.latency {
            let errors = if l.write_errors.is_empty() {
                "no errors".to_owned()
            } else {
                l.write_errors
                    .iter()
                    .map(|(k, v)| format!("{v}×{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                o,
                "\n**Event latency**: one writer created {} tasks one at a time through node A, {} ms apart ({} acknowledged, {errors}; the create itself p50 {} ms, p99 {} ms). All figures in ms.\n",
                l.writes,
                l.interval_ms,
                l.acknowledged,
                ms_signed(l.write_latency.p50_us),
                ms_signed(l.write_latency.p99_us)
            );
            let _ = writeln!(
                o,
                "| subscribers on | received / expected | lost | dup. | out of order | measure | min | p50 | p90 | p99 | max |"
            );
            let _ = writeln!(o, "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|");
            for n in &l.nodes {
                let head = format!(
                    "{} × {} | {} / {} | {} | {} | {}",
                    n.node,
                    n.subscribers,
                    n.received,
                    n.expected,
                    n.lost,
                    n.duplicates,
                    n.out_of_order
                );
                let rows = [
                    ("received − acknowledged", &n.received_minus_acked),
                    ("received − sent", &n.received_minus_sent),
                    ("received − `at` (wall clock)", &n.received_minus_at),
                ];
                for (k, (label, d)) in rows.iter().enumerate() {
                    let lead = if k == 0 {
                        head.as_str()
                    } else {
                        " |  |  |  | "
                    };
                    let _ = writeln!(o, "| {lead} | {label} | {} |", dist_cells(d));
                }
                let _ = writeln!(
                    o,
                    "|  |  |  |  |  | ↳ events that arrived before the 201 | {} of {} |  |  |  |  |",
                    n.received_minus_acked.negative, n.received_minus_acked.count
                );
            }
        }
        if let Some(s) = &self.streams {
            let errors = if s.errors.is_empty() {
                "0".to_owned()
            } else {
                s.errors
                    .iter()
                    .map(|(k, v)| format!("{v}×{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                o,
                "\n**Open streams on node A**: {} requested over {} users, {} at a time.\n",
                s.requested, s.users, s.open_concurrency
            );
            let _ = writeln!(
                o,
                "| opened (200) | errors | open time | opened/s | open p50 ms | open p99 ms | RSS before | RSS with streams | per stream | RSS peak | RSS after close | gauge before / open / after close |"
            );
            let _ = writeln!(
                o,
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
            );
            let _ = writeln!(
                o,
                "| {} | {errors} | {:.2} s | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
                s.opened,
                s.open_seconds,
                s.open_per_s,
                ms_signed(s.open_latency.p50_us),
                ms_signed(s.open_latency.p99_us),
                mib(s.rss_before_kib),
                mib(s.rss_open_kib),
                s.bytes_per_stream
                    .map_or_else(|| "–".to_owned(), |b| format!("{:.1} KiB", b / 1024.0)),
                mib(s.rss_peak_kib),
                mib(s.rss_after_close_kib),
                gauge_text(s.gauge.0),
                gauge_text(s.gauge.1),
                gauge_text(s.gauge.2),
            );
            if let Some(e) = &s.first_error {
                let _ = writeln!(o, "\nFirst failure: {e}");
            }
            if let Some(c) = s.client_bytes_per_stream {
                let _ = writeln!(
                    o,
                    "\n(The tool's own RSS grew by {:.1} KiB per stream: the client side.)",
                    c / 1024.0
                );
            }
            if !s.fanout.is_empty() {
                let _ = writeln!(
                    o,
                    "\nOne write, then every open stream's copy of its event, received − acknowledged (ms):\n"
                );
                let _ = writeln!(
                    o,
                    "| write | via node | streams reached | missing | first | p50 | p90 | p99 | last |"
                );
                let _ = writeln!(o, "|---:|---|---:|---:|---:|---:|---:|---:|---:|");
                for (k, f) in s.fanout.iter().enumerate() {
                    let _ = writeln!(
                        o,
                        "| {} | {} | {} | {} | {} |",
                        k + 1,
                        f.via,
                        f.reached,
                        f.missing,
                        dist_cells(&f.received_minus_acked)
                    );
                }
            }
        }
        let _ = writeln!(
            o,
            "\nCheck: {}",
            if self.ok {
                "OK — every acknowledged write's event reached every subscriber and stream once, ids consecutive."
            } else {
                "FAILED — events lost, duplicated or out of order (see above)."
            }
        );
        for n in &self.notes {
            let _ = writeln!(o, "\n- {n}");
        }
        o
    }
}
