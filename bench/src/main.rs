//! `orgboard-bench`: one command that measures orgboard against the
//! database's own limit.
//!
//! `run` seeds a data set of a tier straight through the storage layer,
//! starts the real server binary on a free loopback port (or targets a
//! running one), drives the HTTP API with N virtual users, each with its own
//! access token, for each scenario, optionally runs the same SQL directly on
//! the database (`--limit-mode`), checks that nothing was lost, and reports
//! as Markdown (stdout) and JSON. `live` measures live events instead: the
//! latency from a write to its SSE subscribers (same node and, with Redis,
//! another node) and how many open streams one node holds, with its memory.
//! See BENCHMARKS.md.

mod authcost;
mod http;
mod limit;
mod live;
mod prom;
mod report;
mod runner;
mod scenario;
mod seed;
mod server;
mod sse;
mod stats;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use orgboard::auth::tokens::Keys;
use orgboard::config::StorageConfig;
use orgboard::db::{Db, Scope};
use orgboard::on_tx;
use sqlx::ConnectOptions as _;
use sqlx::postgres::PgConnectOptions;

use crate::report::{Integrity, Machine, Report, ScenarioReport, SeedReport, ServerReport};
use crate::runner::{Mode, run_phase};
use crate::scenario::{Counters, Env, Scenario, make_vus, mint_tokens};
use crate::seed::{BoardKind, Dataset, Tier};
use crate::server::{Launch, ServerProc, build_server, free_port, memory_kb};
use crate::stats::parse_duration;

/// Load benchmark for orgboard.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seed a tier, start the server, run the scenarios, report.
    Run(Box<RunArgs>),
    /// Live events: latency from a write to SSE subscribers (same node and,
    /// with `--redis`, another node), and open streams per node and their
    /// memory.
    Live(Box<live::LiveArgs>),
}

/// Which database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DbKind {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database created through `--pg-url`.
    Postgres,
}

#[derive(Args)]
struct RunArgs {
    /// The database to run on.
    #[arg(long, value_enum)]
    db: DbKind,
    /// PostgreSQL server to create the run's database on (its user needs
    /// CREATEDB); with `--target`, the server's own database, used as is.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_url: String,
    /// Data set size: tiny (CI), S, M, L.
    #[arg(long, value_enum, default_value = "S")]
    tier: Tier,
    /// Virtual users, each with its own token, one request at a time.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Measured time per scenario (and per limit phase): 10s, 500ms, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unrecorded time before each phase.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// `all`, or scenario names separated by commas: get_task, filter_page,
    /// filter_page_cursor, audit_page, audit_page_cursor, list_page, board_view,
    /// board_view_cached, board_view_304, board_view_hot10k,
    /// board_view_hot10k_cached, board_view_hot100k (the hot ones: L tier),
    /// login, update_task, move_task, create_comment, create_board,
    /// create_task, mix. `board_view*` send `Cache-Control: no-cache` unless
    /// named `*_cached` or `*_304`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Also run each scenario's SQL directly on the database (no HTTP, no
    /// auth) and print every figure beside its ratio to that limit.
    #[arg(long)]
    limit_mode: bool,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
    /// Drive an already running server (`http://host:port`) instead of
    /// starting one; needs `--secret`, and `--data-dir` (SQLite) or
    /// `--pg-url` naming that server's own database. No start-up or memory
    /// figures then.
    #[arg(long)]
    target: Option<String>,
    /// The running server's ORGBOARD_SECRET (with `--target`).
    #[arg(long, hide_env_values = true)]
    secret: Option<String>,
    /// The running server's data directory (with `--target --db sqlite`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Server binary to start; default: this workspace's
    /// `target/<profile>/orgboard`, built first (same profile as this tool).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Do not build the default server binary first.
    #[arg(long)]
    no_build: bool,
    /// Extra `KEY=VALUE` environment for the server (repeatable), e.g.
    /// `--server-env ORGBOARD_DB_MAX_CONNECTIONS=32`.
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// Keep the run's database (SQLite directory or PostgreSQL database).
    #[arg(long)]
    keep_db: bool,
    /// Exit non-zero when any request or transaction failed (a 412 on a
    /// conditional write is not a failure), not only on a failed integrity
    /// check: for CI's smoke run.
    #[arg(long)]
    strict: bool,
    /// Seed of the data set and of the virtual users' choices.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Run(args) => rt.block_on(run(*args)),
        Command::Live(args) => rt.block_on(live::live(*args)),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: the integrity check failed");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

pub(crate) fn workspace_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn parse_scenarios(s: &str, tier: Tier) -> anyhow::Result<Vec<Scenario>> {
    let has_hot = !tier.spec().hot.is_empty();
    if s.trim() == "all" {
        return Ok(Scenario::ALL
            .into_iter()
            .filter(|x| has_hot || x.board() == BoardKind::Regular)
            .collect());
    }
    let mut out = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let sc = Scenario::parse(name).with_context(|| {
            format!(
                "unknown scenario {name:?}; known: all, {}",
                Scenario::ALL.map(Scenario::name).join(", ")
            )
        })?;
        anyhow::ensure!(
            has_hot || sc.board() == BoardKind::Regular,
            "{name} needs the hot boards of tier L"
        );
        out.push(sc);
    }
    anyhow::ensure!(!out.is_empty(), "no scenario given");
    Ok(out)
}

pub(crate) fn machine() -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    Machine {
        nproc: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        mem_total_mib: mem_kb / 1024,
        cpu,
    }
}

/// The first three fields of `/proc/loadavg`.
pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn git(ws: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(ws)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Where the run's database lives, and how to clean it up.
pub(crate) struct Location {
    pub storage: StorageConfig,
    /// SQLite directory we created (removed at the end unless kept).
    pub temp: Option<tempfile::TempDir>,
    /// PostgreSQL database we created: (admin URL, name).
    pub pg_created: Option<(String, String)>,
}

async fn pg_admin(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    PgConnectOptions::from_str(url)?
        .disable_statement_logging()
        .connect()
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))
}

fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

/// Where the run's database is: `target`/`data_dir` describe a running
/// server's own (`--target`), otherwise a fresh one is made.
pub(crate) async fn locate(
    db: DbKind,
    pg_url: &str,
    target: Option<&str>,
    data_dir: Option<&Path>,
    run_id: &str,
) -> anyhow::Result<Location> {
    match (db, target) {
        (DbKind::Sqlite, None) => {
            let dir = tempfile::Builder::new()
                .prefix("orgboard-bench-")
                .tempdir()?;
            Ok(Location {
                storage: storage(dir.path().to_path_buf(), None),
                temp: Some(dir),
                pg_created: None,
            })
        }
        (DbKind::Sqlite, Some(_)) => {
            let dir = data_dir
                .map(Path::to_path_buf)
                .context("--target with --db sqlite needs --data-dir (the server's)")?;
            Ok(Location {
                storage: storage(dir, None),
                temp: None,
                pg_created: None,
            })
        }
        (DbKind::Postgres, None) => {
            let name = format!("orgboard_bench_{run_id}");
            let mut admin = pg_admin(pg_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut admin)
                .await
                .context("CREATE DATABASE (the --pg-url user needs CREATEDB)")?;
            let mut url = url::Url::parse(pg_url)?;
            url.set_path(&name);
            let dir = tempfile::Builder::new()
                .prefix("orgboard-bench-")
                .tempdir()?;
            Ok(Location {
                storage: storage(dir.path().to_path_buf(), Some(url.to_string())),
                temp: Some(dir),
                pg_created: Some((pg_url.to_owned(), name)),
            })
        }
        (DbKind::Postgres, Some(_)) => {
            let dir = tempfile::Builder::new()
                .prefix("orgboard-bench-")
                .tempdir()?;
            Ok(Location {
                storage: storage(dir.path().to_path_buf(), Some(pg_url.to_owned())),
                temp: Some(dir),
                pg_created: None,
            })
        }
    }
}

/// The storage settings of the run: the server's defaults (16 pooled
/// connections; SQLite: one writer and 16 readers).
fn storage(data_dir: PathBuf, database_url: Option<String>) -> StorageConfig {
    StorageConfig {
        data_dir,
        database_url,
        db_max_connections: 16,
    }
}

pub(crate) async fn db_version(db: &Db) -> String {
    let r: Result<String, sqlx::Error> = match db {
        Db::Postgres(p, ..) => sqlx::query_scalar("SHOW server_version").fetch_one(p).await,
        Db::Sqlite { reader, .. } => {
            sqlx::query_scalar("SELECT sqlite_version()")
                .fetch_one(reader)
                .await
        }
    };
    r.unwrap_or_else(|_| "?".into())
}

/// Makes the freshly loaded data look like a database in service: statistics
/// for PostgreSQL's planner (what autovacuum would do after a bulk load);
/// SQLite gets its WAL folded back (the server runs no ANALYZE, so neither
/// does this).
pub(crate) async fn finish_seed(db: &Db, loc: &Location) -> anyhow::Result<()> {
    match db {
        Db::Postgres(..) => {
            let url = loc
                .storage
                .database_url
                .clone()
                .context("no PostgreSQL URL")?;
            let mut c = pg_admin(&url).await?;
            sqlx::query("VACUUM ANALYZE").execute(&mut c).await?;
        }
        Db::Sqlite { .. } => db.sqlite_checkpoint().await?,
    }
    Ok(())
}

/// `--server-env KEY=VALUE` pairs.
pub(crate) fn parse_server_env(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for kv in pairs {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--server-env {kv:?} is not KEY=VALUE"))?;
        env.insert(k.to_owned(), v.to_owned());
    }
    Ok(env)
}

/// The server binary to start: `given`, or the workspace's own for this
/// tool's profile, built first unless `no_build`.
pub(crate) fn server_binary(
    ws: &Path,
    given: Option<PathBuf>,
    no_build: bool,
) -> anyhow::Result<PathBuf> {
    if let Some(b) = given {
        return Ok(b);
    }
    let release = !cfg!(debug_assertions);
    if !no_build {
        build_server(ws, release)?;
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| ws.join("target"));
    Ok(target_dir
        .join(if release { "release" } else { "debug" })
        .join("orgboard"))
}

/// A fresh secret for the servers the tool starts.
pub(crate) fn new_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Starts the server binary on a free port with the run's storage, `secret`
/// and the tool's settings (rate limits out of the way), then `extra`
/// (which wins); waits until it is ready and half a second more, and gives
/// its report (idle RSS then). Its log goes to `data_dir/log_name`.
pub(crate) async fn start_server(
    bin: &Path,
    storage: &StorageConfig,
    data_dir: &Path,
    secret: &str,
    extra: &BTreeMap<String, String>,
    log_name: &str,
) -> anyhow::Result<(ServerProc, ServerReport)> {
    let port = free_port()?;
    let mut env = BTreeMap::new();
    env.insert(
        "ORGBOARD_DATA_DIR".to_owned(),
        data_dir.display().to_string(),
    );
    if let Some(u) = &storage.database_url {
        env.insert("ORGBOARD_DATABASE_URL".to_owned(), u.clone());
    }
    env.insert("ORGBOARD_ADDR".to_owned(), format!("127.0.0.1:{port}"));
    env.insert("ORGBOARD_SECRET".to_owned(), secret.to_owned());
    // The login scenario measures hashing, not the limiter.
    env.insert(
        "ORGBOARD_RATE_LIMIT_PER_IP".to_owned(),
        "100000000".to_owned(),
    );
    env.insert(
        "ORGBOARD_RATE_LIMIT_PER_ACCOUNT".to_owned(),
        "100000000".to_owned(),
    );
    // Every request still goes through the API limiter (its cost is in the
    // figures); the budgets are only too large to be spent.
    env.insert(
        "ORGBOARD_API_RATE_LIMIT_PER_USER".to_owned(),
        "100000000".to_owned(),
    );
    env.insert(
        "ORGBOARD_API_RATE_LIMIT_PER_ORG".to_owned(),
        "100000000".to_owned(),
    );
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    let log = data_dir.join(log_name);
    let s = ServerProc::start(
        Launch {
            bin: bin.to_path_buf(),
            env,
            log,
        },
        port,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = memory_kb(s.pid).map(|m| m.0).unwrap_or(0);
    let profile = if bin.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else if bin.components().any(|c| c.as_os_str() == "debug") {
        "debug"
    } else {
        "unknown"
    };
    eprintln!(
        "server {} (pid {}, {}) ready in {:.0} ms, idle RSS {} KiB",
        bin.display(),
        s.pid,
        s.base,
        s.startup_ms,
        idle
    );
    let report = ServerReport {
        bin: bin.display().to_string(),
        profile: profile.to_owned(),
        binary_bytes: s.bin_size,
        startup_ms: s.startup_ms,
        rss_idle_kib: idle,
        rss_peak_kib: 0,
        clean_exit: false,
    };
    Ok((s, report))
}

/// Removes the run's database (or says where it was kept).
pub(crate) async fn cleanup(loc: Location, keep: bool) {
    if keep {
        match (&loc.pg_created, &loc.temp) {
            (Some((_, name)), _) => eprintln!("kept PostgreSQL database {name}"),
            (None, Some(dir)) => eprintln!("kept {}", dir.path().display()),
            _ => {}
        }
        if let Some(t) = loc.temp {
            let _ = t.keep();
        }
    } else if let Some((admin, name)) = &loc.pg_created {
        match pg_admin(admin).await {
            Ok(mut c) => {
                if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut c)
                .await
                {
                    eprintln!("warning: could not drop database {name}: {e}");
                }
            }
            Err(e) => eprintln!("warning: could not drop database {name}: {e:#}"),
        }
    }
}

async fn run(a: RunArgs) -> anyhow::Result<bool> {
    let scenarios = parse_scenarios(&a.scenario, a.tier)?;
    let ws = workspace_dir();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    anyhow::ensure!(
        (a.warmup + a.duration).as_secs() < 850,
        "--warmup + --duration must stay under 850 s: access tokens live 900 s"
    );
    if a.target.is_some() && a.secret.is_none() {
        anyhow::bail!("--target needs --secret (the server's ORGBOARD_SECRET) to mint tokens");
    }
    let server_env = parse_server_env(&a.server_env)?;
    // Build the server before seeding, so a build failure costs nothing.
    let server_bin = match &a.target {
        Some(_) => None,
        None => Some(server_binary(&ws, a.server_bin.clone(), a.no_build)?),
    };

    // --- database and seeding ------------------------------------------------
    let loc = locate(
        a.db,
        &a.pg_url,
        a.target.as_deref(),
        a.data_dir.as_deref(),
        &run_id,
    )
    .await?;
    let outcome = run_on(&a, &loc, &scenarios, server_bin, server_env, &run_id).await;
    // Clean up whatever happened.
    cleanup(loc, a.keep_db).await;
    let (mut report, ok) = outcome?;
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
        let failed: Vec<&str> = report
            .scenarios
            .iter()
            .filter(|s| {
                s.http.error_count > 0 || s.limit.as_ref().is_some_and(|l| l.error_count > 0)
            })
            .map(|s| s.name.as_str())
            .collect();
        anyhow::ensure!(
            failed.is_empty(),
            "--strict: errors in {}",
            failed.join(", ")
        );
    }
    Ok(ok)
}

async fn run_on(
    a: &RunArgs,
    loc: &Location,
    scenarios: &[Scenario],
    server_bin: Option<PathBuf>,
    server_env: BTreeMap<String, String>,
    run_id: &str,
) -> anyhow::Result<(Report, bool)> {
    let ws = workspace_dir();
    let concurrency = a.concurrency as usize;
    let db = Db::connect(&loc.storage).await?;
    db.migrate().await.context("migrations failed")?;
    let db_version = db_version(&db).await;
    let db_name = match a.db {
        DbKind::Sqlite => "sqlite",
        DbKind::Postgres => "postgres",
    };
    eprintln!("seeding tier {} on {db_name} {db_version} …", a.tier.name());
    let t0 = Instant::now();
    let parallel = if a.db == DbKind::Postgres { 3 } else { 1 };
    let ds = seed::seed(&db, a.tier, run_id, a.seed, parallel).await?;
    let t_fin = Instant::now();
    finish_seed(&db, loc).await?;
    let finish_s = t_fin.elapsed().as_secs_f64();
    let seed_report = SeedReport {
        total_s: t0.elapsed().as_secs_f64(),
        hash_s: ds.hash_secs,
        insert_s: ds.insert_secs,
        finish_s,
        orgs: ds.orgs.len(),
        rows: ds.rows,
    };
    eprintln!(
        "seeded {} tasks in {} organizations in {:.1} s (inserts {:.1} s, finish {:.1} s)",
        ds.tasks(),
        ds.orgs.len(),
        seed_report.total_s,
        seed_report.insert_s,
        finish_s
    );

    // --- server ------------------------------------------------------------
    let secret = match &a.secret {
        Some(s) => s.clone(),
        None => new_secret(),
    };
    let keys = Keys::new(secret.as_bytes(), 900);
    let mut server = None;
    let mut server_report = None;
    let base = match (&a.target, server_bin) {
        (Some(t), _) => t.clone(),
        (None, Some(bin)) => {
            let (s, r) = start_server(
                &bin,
                &loc.storage,
                &loc.storage.data_dir,
                &secret,
                &server_env,
                "server.log",
            )
            .await?;
            server_report = Some(r);
            let b = s.base.clone();
            server = Some(s);
            b
        }
        (None, None) => anyhow::bail!("no server to run against"),
    };

    // --- scenarios -----------------------------------------------------------
    let env = Arc::new(Env {
        http: Some(http::Http::new(&base)),
        db: Some(db.clone()),
        http_counts: Counters::default(),
        limit_counts: Counters::default(),
    });
    let mut notes = Vec::new();
    let mut regular = make_vus(&ds, concurrency, BoardKind::Regular, a.seed);
    let distinct_orgs = regular
        .iter()
        .map(|v| v.org_id)
        .collect::<std::collections::HashSet<_>>()
        .len();
    notes.push(format!(
        "{} virtual users in {} organization(s), each with its own user and access token; \
         tasks of a shared board are split between its users.",
        regular.len(),
        distinct_orgs
    ));
    let load_start = loadavg();
    let mut results = Vec::new();
    let mut cache_unavailable_noted = false;
    let mut hot: HashMap<BoardKind, Vec<scenario::Vu>> = HashMap::new();
    for &sc in scenarios {
        let kind = sc.board();
        let mut vus = if kind == BoardKind::Regular {
            std::mem::take(&mut regular)
        } else {
            hot.remove(&kind)
                .unwrap_or_else(|| make_vus(&ds, concurrency, kind, a.seed))
        };
        mint_tokens(&mut vus, &keys)?;
        if let Some(s) = &server {
            s.take_sampled_peak_kb();
        }
        let reports_cache = sc.is_board_view() || sc.uses_board_cache();
        let cache_before = match (&env.http, reports_cache) {
            (Some(h), true) => prom::cache_counters(h).await,
            _ => None,
        };
        let (back, h) = run_phase(vus, env.clone(), sc, Mode::Http, a.warmup, a.duration).await?;
        let peak = server.as_ref().map(|s| s.take_sampled_peak_kb());
        let cache = match (&env.http, cache_before) {
            (Some(h), Some(before)) => prom::cache_counters(h)
                .await
                .map(|after| prom::CacheStats::between(before, after)),
            _ => None,
        };
        if reports_cache && cache.is_none() && !cache_unavailable_noted {
            cache_unavailable_noted = true;
            notes.push(
                "The board cache's counters could not be read from /metrics: no hit rate.".into(),
            );
        }
        let http_sum = h.total.summary(h.seconds);
        eprintln!(
            "{:<24} http : {:>8.1} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms  errors {}  412s {}{}",
            sc.name(),
            http_sum.rps,
            http_sum.p50_us as f64 / 1000.0,
            http_sum.p99_us as f64 / 1000.0,
            http_sum.error_count,
            http_sum.conflicts_412,
            match cache.as_ref().and_then(|c| c.hit_rate.map(|r| (r, c))) {
                Some((r, c)) => format!(
                    "  cache hits {:.1} % ({} of {})",
                    r * 100.0,
                    c.hits,
                    c.hits + c.misses
                ),
                None => String::new(),
            }
        );
        if let Some(s) = server.as_mut()
            && !s.alive()
        {
            anyhow::bail!(
                "the server died during {}; log:\n{}",
                sc.name(),
                server::tail(&s.log)
            );
        }
        let mut vus = back;
        let mut limit = None;
        let mut limit_ops = BTreeMap::new();
        if a.limit_mode && sc.has_limit() {
            let (back, l) =
                run_phase(vus, env.clone(), sc, Mode::Limit, a.warmup, a.duration).await?;
            vus = back;
            let s = l.total.summary(l.seconds);
            eprintln!(
                "{:<24} limit: {:>8.1} tx/s   p50 {:>8.3} ms  p99 {:>8.3} ms  errors {}",
                sc.name(),
                s.rps,
                s.p50_us as f64 / 1000.0,
                s.p99_us as f64 / 1000.0,
                s.error_count
            );
            limit_ops = l
                .per_op
                .iter()
                .map(|(k, r)| ((*k).to_owned(), r.summary(l.seconds)))
                .collect();
            limit = Some(s);
        }
        if kind == BoardKind::Regular {
            regular = vus;
        } else {
            hot.insert(kind, vus);
        }
        let ratio = limit
            .as_ref()
            .filter(|l| l.rps > 0.0)
            .map(|l| http_sum.rps / l.rps);
        results.push(ScenarioReport {
            name: sc.name().to_owned(),
            http_ops: h
                .per_op
                .iter()
                .map(|(k, r)| ((*k).to_owned(), r.summary(h.seconds)))
                .collect(),
            http: http_sum,
            http_peak_rss_kib: peak,
            limit,
            limit_ops,
            ratio,
            cache,
        });
    }

    // The raw limit once per run with writes (limit mode): the smallest
    // honest write transaction at the same concurrency.
    let writes = [
        Scenario::CreateTask,
        Scenario::UpdateTask,
        Scenario::MoveTask,
        Scenario::Mix,
    ];
    let raw = if a.limit_mode && scenarios.iter().any(|s| writes.contains(s)) {
        let (back, r) = run_phase(
            regular,
            env.clone(),
            Scenario::CreateTask,
            Mode::Raw,
            a.warmup,
            a.duration,
        )
        .await?;
        drop(back);
        let s = r.total.summary(r.seconds);
        eprintln!(
            "{:<24} raw:   {:>8.1} tx/s   p50 {:>8.3} ms  p99 {:>8.3} ms  errors {}",
            "insert task + audit",
            s.rps,
            s.p50_us as f64 / 1000.0,
            s.p99_us as f64 / 1000.0,
            s.error_count
        );
        Some(s)
    } else {
        drop(regular);
        None
    };

    // --- stop, integrity -------------------------------------------------------
    let load_end = loadavg();
    if let (Some(mut s), Some(r)) = (server, server_report.as_mut()) {
        r.rss_peak_kib = memory_kb(s.pid).map(|m| m.1).unwrap_or(0);
        r.clean_exit = s.stop().await?;
    }
    let integrity = check_integrity(&db, &ds, &env).await?;
    // The price of the token check and the membership statement on their
    // own, one client, after the load (limit mode only: it is the database).
    let auth_cost = match (a.limit_mode, ds.orgs.first()) {
        (true, Some(org)) => match org.members.first() {
            Some(m) => Some(authcost::measure(&db, &keys, org.id, m.id, 5_000).await?),
            None => None,
        },
        _ => None,
    };
    db.close().await;
    if scenarios.iter().any(|s| s.is_board_view()) {
        notes.push(
            "board_view, board_view_hot10k and board_view_hot100k send Cache-Control: no-cache (read from the database every time, as before the cache existed; the server still stores what it read); the *_cached variants send no such header but `Accept-Encoding: gzip, br`, as a browser does, and read the answer as sent (compressed once, when the cache first served it compressed), served from the server's board cache, which every write to the organization invalidates; board_view_304 revalidates the view it last got with If-None-Match (a 304 counts as a success; no body is read or built). The cached variants have no limit phase: their uncached twin's is the database's."
                .into(),
        );
    }
    if scenarios.iter().any(|s| s.uses_board_cache()) {
        notes.push(
            "Board cache hit rate = hits ÷ (hits + misses) of the server's /metrics counters read before and after the HTTP phase (warm-up included). The mix's board views go through the cache, as a client's would; its task writes patch the cached view of their board (or drop it when a patch cannot stay exact), other writes drop it."
                .into(),
        );
    }
    if scenarios.contains(&Scenario::FilterPageCursor) {
        notes.push(
            "filter_page_cursor pages through each filter from its first page to its last; its ↳ rows split the first pages (filter_page_first) from the pages fetched with a cursor."
                .into(),
        );
    }
    if scenarios.contains(&Scenario::AuditPageCursor) {
        notes.push(
            "audit_page_cursor pages through each audit-log filter (none, action=list.updated, entity_type=label, the VU's own actor_id) from its first page to its last, newest first; its ↳ rows split the first pages (audit_page_first) from the pages fetched with a cursor. The seeded history is 2 audit rows per seeded task over the last 30 days, with actions the run's writes never produce."
                .into(),
        );
    }
    if a.limit_mode && scenarios.contains(&Scenario::Login) {
        notes.push("login has no database-only limit (it is authentication itself).".into());
    }
    notes.push(
        "Client, server and database share the machine's CPUs. Limit mode leaves out HTTP, JSON and the token check; its task writes are the server's own use cases (the statement that resolves {org} and the membership included), so do its filtered pages (the membership joined to the page, as the server reads it) and its audit-log pages (membership and role checked, as on the server); its task and board reads leave that statement out, so their HTTP ÷ limit includes it."
            .into(),
    );
    let ok = integrity.ok;
    let report = Report {
        tool: format!("orgboard-bench {}", env!("CARGO_PKG_VERSION")),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started_at: String::new(),
        commit: git(&ws, &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
        dirty: git(&ws, &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
        machine: machine(),
        db: db_name.to_owned(),
        db_version,
        tier: a.tier.name().to_owned(),
        concurrency,
        duration_s: a.duration.as_secs_f64(),
        warmup_s: a.warmup.as_secs_f64(),
        seed: seed_report,
        server: server_report,
        scenarios: results,
        raw,
        integrity,
        auth_cost,
        loadavg: (load_start, load_end),
        notes,
    };
    Ok((report, ok))
}

/// Counts, in every seeded organization, the tasks and the audit rows of the
/// five actions the run's writes produce (the seeded audit history uses
/// other actions only), and compares them with what the run acknowledged.
async fn check_integrity(db: &Db, ds: &Dataset, env: &Env) -> anyhow::Result<Integrity> {
    let (hc, hu, hm, hx) = env.http_counts.get();
    let (lc, lu, lm, lx) = env.limit_counts.get();
    let (hcm, hb) = env.http_counts.created_others();
    let (lcm, lb) = env.limit_counts.created_others();
    let mut i = Integrity {
        seeded_tasks: ds.tasks(),
        http_creates: hc,
        limit_creates: lc,
        updates: hu + lu,
        moves: hm + lm,
        unanswered_writes: hx + lx,
        comments: hcm + lcm,
        boards: hb + lb,
        ..Integrity::default()
    };
    for org in &ds.orgs {
        let mut tx = db.read(Scope::tenant(org.members[0].id, org.id)).await?;
        let tasks: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM tasks WHERE org_id = $1"
        )
        .bind(org.id)
        .fetch_one(c)
        .await)?;
        let audit: Vec<(String, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(
            "SELECT action, COUNT(*) FROM audit_log WHERE org_id = $1 \
             AND action IN ('task.created', 'task.updated', 'task.moved', 'comment.created', \
             'board.created') GROUP BY action"
        )
        .bind(org.id)
        .fetch_all(c)
        .await)?;
        let comments: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM comments WHERE org_id = $1"
        )
        .bind(org.id)
        .fetch_one(c)
        .await)?;
        i.tasks_in_db += tasks as u64;
        i.comments_in_db += comments as u64;
        for (action, n) in audit {
            match action.as_str() {
                "task.created" => i.audit_created += n as u64,
                "task.updated" => i.audit_updated += n as u64,
                "task.moved" => i.audit_moved += n as u64,
                "comment.created" => i.audit_comments += n as u64,
                "board.created" => i.audit_boards += n as u64,
                // The seeded history (seed::SEEDED_AUDIT) and anything else
                // the run does not count.
                _ => {}
            }
        }
    }
    let creates = i.http_creates + i.limit_creates;
    i.ok = i.tasks_in_db == i.seeded_tasks + creates
        && i.audit_created == creates
        && i.audit_updated == i.updates
        && i.audit_moved == i.moves
        && i.comments_in_db == i.comments
        && i.audit_comments == i.comments
        && i.audit_boards == i.boards;
    Ok(i)
}
