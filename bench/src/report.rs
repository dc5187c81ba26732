//! The report: JSON (everything) and a Markdown table (the figures that
//! matter), each HTTP figure beside the database's own limit measured in
//! the same run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::prom::CacheStats;
use crate::seed::RowCounts;
use crate::stats::Summary;

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `orgboard-bench <version>`.
    pub tool: String,
    /// The command line.
    pub command: String,
    /// When the run started (UTC, RFC 3339).
    pub started_at: String,
    /// `git rev-parse --short HEAD` of the workspace.
    pub commit: String,
    /// Whether tracked files differed from that commit.
    pub dirty: bool,
    /// The machine.
    pub machine: Machine,
    /// `sqlite` or `postgres`.
    pub db: String,
    /// The database's version.
    pub db_version: String,
    /// Tier name.
    pub tier: String,
    /// Virtual users.
    pub concurrency: usize,
    /// Measured seconds per phase.
    pub duration_s: f64,
    /// Warm-up seconds per phase.
    pub warmup_s: f64,
    /// Seeding.
    pub seed: SeedReport,
    /// The server process (absent with `--target`).
    pub server: Option<ServerReport>,
    /// One entry per scenario.
    pub scenarios: Vec<ScenarioReport>,
    /// The raw limit (with `--limit-mode` and a write scenario): one task
    /// and its audit row per transaction, prepared, at the same
    /// concurrency.
    pub raw: Option<Summary>,
    /// Nothing lost?
    pub integrity: Integrity,
    /// Token check and membership statement on their own (limit mode).
    pub auth_cost: Option<crate::authcost::AuthCost>,
    /// `/proc/loadavg` (1, 5, 15 min) when the measurements began (after
    /// seeding) and when they ended: other work on the machine skews every
    /// figure.
    pub loadavg: (String, String),
    /// Remarks (skipped scenarios, caveats).
    pub notes: Vec<String>,
}

/// The machine the run was on.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub nproc: usize,
    /// RAM in MiB.
    pub mem_total_mib: u64,
    /// CPU model.
    pub cpu: String,
}

/// How seeding went.
#[derive(Debug, Serialize)]
pub struct SeedReport {
    /// Wall time of the whole seeding (hash + inserts + analyze), seconds.
    pub total_s: f64,
    /// Hashing the one password.
    pub hash_s: f64,
    /// The bulk inserts.
    pub insert_s: f64,
    /// `VACUUM ANALYZE` (PostgreSQL) or the WAL checkpoint (SQLite).
    pub finish_s: f64,
    /// Organizations.
    pub orgs: usize,
    /// Rows per table.
    pub rows: RowCounts,
}

/// The server process.
#[derive(Debug, Serialize)]
pub struct ServerReport {
    /// Path of the binary.
    pub bin: String,
    /// `release`, `debug` or `unknown` (from the path).
    pub profile: String,
    /// Size of the binary.
    pub binary_bytes: u64,
    /// Spawn → `/readyz` 200.
    pub startup_ms: f64,
    /// `VmRSS` half a second after it was ready.
    pub rss_idle_kib: u64,
    /// `VmHWM` at the end of the run (the process's peak).
    pub rss_peak_kib: u64,
    /// Whether it exited 0 on SIGTERM.
    pub clean_exit: bool,
}

/// One scenario's figures.
#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub name: String,
    /// Over HTTP.
    pub http: Summary,
    /// Highest server `VmRSS` sampled (every 50 ms) during the HTTP phase.
    pub http_peak_rss_kib: Option<u64>,
    /// Per operation over HTTP (for the mix).
    pub http_ops: BTreeMap<String, Summary>,
    /// The database's own limit (with `--limit-mode`).
    pub limit: Option<Summary>,
    /// Per operation in limit mode (for the mix).
    pub limit_ops: BTreeMap<String, Summary>,
    /// HTTP requests/s ÷ limit transactions/s.
    pub ratio: Option<f64>,
    /// The server's board cache during the HTTP phase (board view
    /// scenarios and the mix; from `/metrics`).
    pub cache: Option<CacheStats>,
}

/// The integrity check after the run (counted in the database).
#[derive(Debug, Default, Serialize)]
pub struct Integrity {
    /// Tasks seeded.
    pub seeded_tasks: u64,
    /// Creates acknowledged with 201 over HTTP.
    pub http_creates: u64,
    /// Creates committed by limit mode.
    pub limit_creates: u64,
    /// Updates acknowledged (200) over HTTP + committed by limit mode.
    pub updates: u64,
    /// Moves acknowledged (200) over HTTP + committed by limit mode.
    pub moves: u64,
    /// Writes whose answer never came.
    pub unanswered_writes: u64,
    /// Tasks in the seeded organizations now.
    pub tasks_in_db: u64,
    /// `task.created` audit rows there.
    pub audit_created: u64,
    /// `task.updated` audit rows there.
    pub audit_updated: u64,
    /// `task.moved` audit rows there.
    pub audit_moved: u64,
    /// Comments created (HTTP 201 + limit mode).
    pub comments: u64,
    /// Comments in the seeded organizations now (the seed has none).
    pub comments_in_db: u64,
    /// `comment.created` audit rows there.
    pub audit_comments: u64,
    /// Boards created (HTTP 201 + limit mode).
    pub boards: u64,
    /// `board.created` audit rows there (the seed writes none).
    pub audit_boards: u64,
    /// Every count matches.
    pub ok: bool,
}

pub(crate) fn ms(us: u64) -> String {
    let m = us as f64 / 1000.0;
    if m < 10.0 {
        format!("{m:.3}")
    } else if m < 1000.0 {
        format!("{m:.1}")
    } else {
        format!("{m:.0}")
    }
}

fn rps(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

fn errors(s: &Summary) -> String {
    if s.errors.is_empty() {
        "0".to_owned()
    } else {
        s.errors
            .iter()
            .map(|(k, v)| format!("{v}×{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Signed microseconds as milliseconds, like [`ms`].
pub(crate) fn ms_signed(us: i64) -> String {
    if us < 0 {
        format!("−{}", ms(us.unsigned_abs()))
    } else {
        ms(us as u64)
    }
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn row(out: &mut String, name: &str, h: &Summary, l: Option<&Summary>) {
    let (lr, ratio, lp50, lp99) = match l {
        Some(l) => (
            rps(l.rps),
            if l.rps > 0.0 {
                format!("{:.2}×", h.rps / l.rps)
            } else {
                "–".into()
            },
            ms(l.p50_us),
            ms(l.p99_us),
        ),
        None => ("–".into(), "–".into(), "–".into(), "–".into()),
    };
    let _ = writeln!(
        out,
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {lr} | {ratio} | {lp50} | {lp99} |",
        rps(h.rps),
        ms(h.p50_us),
        ms(h.p90_us),
        ms(h.p99_us),
        ms(h.max_us),
        errors(h),
        h.conflicts_412,
    );
}

impl Report {
    /// The Markdown rendering.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "### orgboard-bench: {} {}, tier {}, {} virtual users, {} s per phase (+{} s warm-up)\n",
            self.db, self.db_version, self.tier, self.concurrency, self.duration_s, self.warmup_s
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
        let r = &self.seed.rows;
        let _ = writeln!(
            o,
            "- seeded {} organizations, {} users, {} boards, {} tasks ({} assignees, {} task labels), {} audit rows in {:.1} s (hash {:.2} s, inserts {:.1} s, {} {:.1} s)",
            self.seed.orgs,
            r.users,
            r.boards,
            r.tasks,
            r.task_assignees,
            r.task_labels,
            r.audit_log,
            self.seed.total_s,
            self.seed.hash_s,
            self.seed.insert_s,
            if self.db == "postgres" {
                "VACUUM ANALYZE"
            } else {
                "WAL checkpoint"
            },
            self.seed.finish_s
        );
        match &self.server {
            Some(s) => {
                let _ = writeln!(
                    o,
                    "- server: {} build, binary {:.1} MiB, start-up {:.0} ms (spawn → /readyz 200), RSS idle {}, peak {}{}",
                    s.profile,
                    s.binary_bytes as f64 / (1024.0 * 1024.0),
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
            None => {
                let _ = writeln!(
                    o,
                    "- server: external (--target); no start-up or memory figures"
                );
            }
        }
        let _ = writeln!(
            o,
            "- load average (1/5/15 min) {} at the first scenario, {} at the end",
            self.loadavg.0, self.loadavg.1
        );
        let _ = writeln!(o, "- command: `{}`\n", self.command);
        let _ = writeln!(
            o,
            "| scenario | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | 412 | DB limit tx/s | HTTP ÷ limit | limit p50 ms | limit p99 ms |"
        );
        let _ = writeln!(
            o,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in &self.scenarios {
            row(&mut o, &s.name, &s.http, s.limit.as_ref());
            if s.http_ops.len() > 1 {
                for (op, h) in &s.http_ops {
                    row(
                        &mut o,
                        &format!("↳ {} in {}", op, s.name),
                        h,
                        s.limit_ops.get(op),
                    );
                }
            }
        }
        if let Some(raw) = &self.raw {
            let _ = writeln!(
                o,
                "\nRaw limit (insert a task and its audit row, one prepared statement each, in a write unit of the tenant; same concurrency): {} tx/s, p50 {} ms, p99 {} ms, errors {}.",
                rps(raw.rps),
                ms(raw.p50_us),
                ms(raw.p99_us),
                errors(raw)
            );
            for s in &self.scenarios {
                if raw.rps > 0.0
                    && matches!(s.name.as_str(), "create_task" | "update_task" | "move_task")
                {
                    let _ = writeln!(
                        o,
                        "- {}: HTTP {:.2}× raw{}",
                        s.name,
                        s.http.rps / raw.rps,
                        match &s.limit {
                            Some(l) => format!(", use case {:.2}× raw", l.rps / raw.rps),
                            None => String::new(),
                        }
                    );
                }
            }
        }
        let cached: Vec<(&str, &CacheStats)> = self
            .scenarios
            .iter()
            .filter_map(|s| s.cache.as_ref().map(|c| (s.name.as_str(), c)))
            .collect();
        if !cached.is_empty() {
            let _ = writeln!(
                o,
                "\n| board cache (from /metrics, HTTP phase incl. warm-up) | hit rate | hits | misses |"
            );
            let _ = writeln!(o, "|---|---:|---:|---:|");
            for (name, c) in cached {
                let _ = writeln!(
                    o,
                    "| {name} | {} | {} | {} |",
                    match c.hit_rate {
                        Some(r) => format!("{:.1} %", r * 100.0),
                        None => "– (not asked: no-cache)".to_owned(),
                    },
                    c.hits,
                    c.misses
                );
            }
        }
        let i = &self.integrity;
        let _ = writeln!(
            o,
            "\nIntegrity: {} — tasks in DB {} = seeded {} + acknowledged creates {} (HTTP {} + limit {}); audit task.created {}, task.updated {} (acknowledged {}), task.moved {} (acknowledged {}); comments in DB {}, audit comment.created {} (acknowledged {}); audit board.created {} (acknowledged {}); unanswered writes {}.",
            if i.ok { "OK" } else { "MISMATCH" },
            i.tasks_in_db,
            i.seeded_tasks,
            i.http_creates + i.limit_creates,
            i.http_creates,
            i.limit_creates,
            i.audit_created,
            i.audit_updated,
            i.updates,
            i.audit_moved,
            i.moves,
            i.comments_in_db,
            i.audit_comments,
            i.comments,
            i.audit_boards,
            i.boards,
            i.unanswered_writes
        );
        if let Some(c) = &self.auth_cost {
            let _ = writeln!(
                o,
                "\nAuth + membership per request (one client, {} each, µs): token check p50 {:.1} / p99 {:.1}; membership statement p50 {:.1} / p99 {:.1}; together p50 {:.1}.",
                c.iterations,
                c.verify_p50_us,
                c.verify_p99_us,
                c.membership_p50_us,
                c.membership_p99_us,
                c.total_p50_us()
            );
        }
        for n in &self.notes {
            let _ = writeln!(o, "\n- {n}");
        }
        o
    }
}
