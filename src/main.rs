//! The `orgboard` binary: `serve` (the default), `migrate`, `backup`,
//! `restore` and `admin`.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use orgboard::config::{Config, StorageConfig};
use tracing_subscriber::EnvFilter;

/// orgboard — multi-tenant team task management.
///
/// With no command, runs `serve`. Every setting is an ORGBOARD_* environment
/// variable (or the matching flag of the command).
#[derive(Parser)]
#[command(
    version = orgboard::VERSION,
    about,
    after_help = "Main settings: ORGBOARD_ADDR, ORGBOARD_DATA_DIR, ORGBOARD_DATABASE_URL \
        (default: the SQLite file in the data directory; postgres://… for PostgreSQL), \
        ORGBOARD_REDIS_URL, ORGBOARD_SMTP_URL, ORGBOARD_LOG.\n\
        `orgboard serve --help` lists every setting."
)]
struct Cli {
    /// A TOML file of settings: keys are the ORGBOARD_* names without the
    /// prefix, in lower case; the environment and flags win over it.
    #[arg(long, global = true, env = "ORGBOARD_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (applies pending migrations first).
    Serve(Box<Config>),
    /// Apply pending database migrations and exit.
    Migrate(StorageConfig),
    /// Write a consistent copy of the SQLite database to FILE (a new file),
    /// also while the server runs. PostgreSQL: use pg_dump.
    Backup {
        #[command(flatten)]
        storage: StorageConfig,
        /// The backup file to create.
        file: std::path::PathBuf,
    },
    /// Restore the SQLite database from FILE into an empty data directory
    /// (never over existing data). PostgreSQL: use pg_restore.
    Restore {
        #[command(flatten)]
        storage: StorageConfig,
        /// The backup file to read.
        file: std::path::PathBuf,
    },
    /// Instance administration: accounts, plans, suspension, dead jobs, the
    /// security log. Runs against the same database, also while it serves;
    /// every change is recorded (security log, and the organization's audit
    /// log with actor "admin").
    Admin {
        #[command(flatten)]
        config: Box<Config>,
        #[command(subcommand)]
        action: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account (and its personal organization). Prints a one-time
    /// link (valid 1 hour) to choose the password, unless one is read from
    /// stdin.
    CreateUser {
        /// The account's email.
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Reset an account's password: print a one-time link (valid 1 hour),
    /// or set the one read from stdin. Setting it signs out every session.
    ResetPassword {
        /// The account's email or id.
        user: String,
        /// Read the new password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set an organization's plan (free, pro, enterprise).
    SetPlan {
        /// The organization's id or slug.
        org: String,
        /// free, pro or enterprise.
        plan: String,
    },
    /// Force a feature flag for an organization (on, off, or back to its
    /// rollout with `default`).
    Flag {
        /// The organization's id or slug.
        org: String,
        /// The flag's name.
        flag: String,
        /// on, off or default.
        #[arg(value_parser = ["on", "off", "default"])]
        state: String,
    },
    /// Suspend an organization: its members get 423 on every route of it;
    /// nothing is deleted.
    Suspend {
        /// The organization's id or slug.
        org: String,
    },
    /// Lift a suspension.
    Resume {
        /// The organization's id or slug.
        org: String,
    },
    /// Dead jobs (failed every attempt).
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Read the security log, newest first.
    SecurityLog {
        /// Only this kind (signup, login, login_failed, refresh_reuse,
        /// password_changed, password_reset_requested, password_reset,
        /// account_deleted, permission_denied, admin).
        #[arg(long)]
        kind: Option<String>,
        /// Only entries about this account (email or id).
        #[arg(long)]
        user: Option<String>,
        /// How many entries (at most 10 000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List dead jobs, newest first.
    Dead {
        /// How many (at most 10 000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
    },
    /// Put a dead job (or every one, with --all) back in the queue.
    Requeue {
        /// The job's id.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<uuid::Uuid>,
        /// Every dead job (those whose secret was blanked are skipped).
        #[arg(long)]
        all: bool,
    },
}

/// `serve` with settings from the environment only (no command given).
#[derive(Parser)]
struct ServeFromEnv {
    #[command(flatten)]
    config: Config,
}

fn init_logging(filter: &str, format: &str) {
    init_logging_to(filter, format, std::io::stdout);
}

/// [`init_logging`] for `serve`: lines written in batches by a thread of
/// their own (see `orgboard::logging`); the guard writes what is left.
fn init_batched_logging(
    filter: &str,
    format: &str,
) -> Option<orgboard::logging::Flush<std::io::Stdout>> {
    match orgboard::logging::Batched::new(std::io::stdout()) {
        Ok((writer, flush)) => {
            init_logging_to(filter, format, writer);
            Some(flush)
        }
        Err(e) => {
            eprintln!("warning: cannot start the log writer thread ({e}); logging in place");
            init_logging(filter, format);
            None
        }
    }
}

fn init_logging_to<W>(filter: &str, format: &str, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    if format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .with_writer(writer)
            .init();
        return;
    }
    // Colour only on a terminal, and never with NO_COLOR set: in a file or
    // a log collector escape codes are noise.
    use std::io::IsTerminal as _;
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .init();
}

/// The one line a backup or restore prints.
fn report(what: &str, r: &orgboard::backup::Report, then: &str) {
    println!(
        "{what}: {} bytes, {} tasks, migration {}{then}",
        r.bytes, r.tasks, r.migration
    );
}

/// The first line of stdin (a password given with `--password-stdin`).
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        anyhow::bail!("no password on stdin");
    }
    Ok(line)
}

/// Runs one `orgboard admin` command.
async fn admin(config: Config, action: AdminCommand) -> anyhow::Result<()> {
    use orgboard::admin;
    let db = orgboard::db::Db::connect(&config.storage).await?;
    db.migrate().await?;
    let hasher = || {
        orgboard::auth::password::PasswordHasher::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.password_hash_concurrency,
        )
    };
    let public_url = config.public_url();
    let result = match action {
        AdminCommand::CreateUser {
            email,
            name,
            password_stdin,
        } => {
            let password = password_stdin.then(password_from_stdin).transpose()?;
            let c = admin::create_user(
                &db,
                &hasher()?,
                &public_url,
                &email,
                &name,
                password.as_deref(),
            )
            .await?;
            println!(
                "created user {} (personal organization {})",
                c.user_id, c.org_id
            );
            if let Some(link) = c.link {
                println!("to choose a password (valid 1 hour, once): {link}");
            }
            Ok(())
        }
        AdminCommand::ResetPassword {
            user,
            password_stdin,
        } => {
            let password = password_stdin.then(password_from_stdin).transpose()?;
            match admin::reset_password(&db, &hasher()?, &public_url, &user, password.as_deref())
                .await?
            {
                Some(link) => println!("reset link (valid 1 hour, once): {link}"),
                None => println!("password set; every session of {user} signed out"),
            }
            Ok(())
        }
        AdminCommand::SetPlan { org, plan } => {
            let before = admin::set_plan(&db, &org, &plan).await?;
            if before == plan {
                println!("{org} is already on the {plan} plan");
            } else {
                println!("{org}: plan {before} -> {plan}");
            }
            Ok(())
        }
        AdminCommand::Flag { org, flag, .. } => {
            // Resolve the organization first, so a typo there is named.
            admin::find_org(&db, &org).await?;
            Err(anyhow::anyhow!(
                "unknown feature flag {flag:?}: this version has no feature flags yet"
            ))
        }
        AdminCommand::Suspend { org } => suspend(&db, &org, true).await,
        AdminCommand::Resume { org } => suspend(&db, &org, false).await,
        AdminCommand::Jobs(JobsCommand::Dead { limit }) => {
            let jobs = admin::dead_jobs(&db, limit).await?;
            if jobs.is_empty() {
                println!("no dead jobs");
            }
            for j in jobs {
                println!(
                    "{}  {}  {}  attempts={}  org={}  {}",
                    j.id,
                    j.updated_at.format("%Y-%m-%dT%H:%M:%SZ"),
                    j.kind,
                    j.attempts,
                    j.org_id.map_or_else(|| "-".to_owned(), |o| o.to_string()),
                    j.last_error.unwrap_or_default().replace('\n', " "),
                );
            }
            Ok(())
        }
        AdminCommand::Jobs(JobsCommand::Requeue { id, .. }) => {
            let ids = admin::requeue(&db, id).await?;
            println!("requeued {} job(s)", ids.len());
            for id in ids {
                println!("{id}");
            }
            Ok(())
        }
        AdminCommand::SecurityLog {
            kind,
            user,
            limit,
            json,
        } => {
            if let Some(k) = &kind
                && !orgboard::security::Kind::ALL
                    .iter()
                    .any(|x| x.as_str() == k)
            {
                anyhow::bail!(
                    "unknown kind {k:?}; the kinds are {}",
                    orgboard::security::Kind::ALL.map(|x| x.as_str()).join(", ")
                );
            }
            let user_id = match user {
                Some(u) => Some(admin::find_user_id(&db, &u).await?),
                None => None,
            };
            let rows = orgboard::security::list(&db, kind.as_deref(), user_id, limit).await?;
            for r in rows {
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
                    println!(
                        "{}  {}  user={}  email={}  org={}  ip={}  {}",
                        r.created_at.format("%Y-%m-%dT%H:%M:%SZ"),
                        r.kind,
                        opt(r.user_id.map(|u| u.to_string())),
                        opt(r.email),
                        opt(r.org_id.map(|u| u.to_string())),
                        opt(r.ip),
                        r.detail.0,
                    );
                }
            }
            Ok(())
        }
    };
    db.close().await;
    result
}

/// `admin suspend` / `admin resume`.
async fn suspend(db: &orgboard::db::Db, org: &str, suspend: bool) -> anyhow::Result<()> {
    let (info, changed) = orgboard::admin::set_suspended(db, org, suspend).await?;
    let state = if suspend { "suspended" } else { "active" };
    if changed {
        println!("{} ({}) is now {state}", info.slug, info.id);
    } else {
        println!("{} ({}) was already {state}", info.slug, info.id);
    }
    Ok(())
}

/// Reports configuration problems, one per line; exit status 2.
fn refuse(problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("configuration error: {p}");
    }
    ExitCode::from(2)
}

/// glibc keeps a memory arena per thread (up to 8 per core) and memory
/// freed into one stays there: answers built on the read pool's threads
/// and freed on Tokio's took the server's peak from ~114 to ~156 MiB in the
/// benchmark's big-board runs (BENCHMARKS.md, issue 13). The variable is
/// read by glibc when the process starts, so the server starts itself over
/// with `MALLOC_ARENA_MAX=2` when it is unset (same pid, arguments and
/// environment otherwise; `exec` only returns if it failed, and then the
/// server simply runs as it is). Set `MALLOC_ARENA_MAX` to anything to
/// keep glibc's default or choose another bound.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_malloc_arenas() {
    use std::os::unix::process::CommandExt as _;
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("MALLOC_ARENA_MAX", "2")
        .exec();
    eprintln!("orgboard: cannot restart with MALLOC_ARENA_MAX=2 ({err}); running as is");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc_arenas() {}

fn main() -> ExitCode {
    bound_malloc_arenas();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Settings from a config file become the defaults of their flags, so the
    // environment and the flags still win.
    let mut cmd = Cli::command();
    let file = match orgboard::config_file::path_from(&args) {
        None => Vec::new(),
        Some(path) => match orgboard::config_file::load(&path, &cmd) {
            Ok(settings) => settings,
            Err(problems) => return refuse(&problems),
        },
    };
    cmd = orgboard::config_file::with_defaults(cmd, &file);
    let cli = match Cli::from_arg_matches(&cmd.get_matches_from(&args)) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Migrate(storage)) => {
            init_logging(
                &std::env::var("ORGBOARD_LOG").unwrap_or_else(|_| "info".into()),
                &std::env::var("ORGBOARD_LOG_FORMAT").unwrap_or_default(),
            );
            runtime.block_on(async {
                let db = orgboard::db::Db::connect(&storage).await?;
                db.migrate().await?;
                tracing::info!(backend = db.backend().name(), "migrations applied");
                db.close().await;
                anyhow::Ok(())
            })
        }
        Some(Command::Backup { storage, file }) => {
            orgboard::backup::backup(&storage, &file).map(|r| {
                report(
                    &format!("backed up {} to {}", r.database.display(), file.display()),
                    &r,
                    "",
                )
            })
        }
        Some(Command::Restore { storage, file }) => {
            orgboard::backup::restore(&storage, &file).map(|r| {
                let what = format!("restored {} from {}", r.database.display(), file.display());
                report(&what, &r, "; start the server")
            })
        }
        Some(Command::Admin { config, action }) => {
            init_logging(
                &std::env::var("ORGBOARD_LOG").unwrap_or_else(|_| "warn".into()),
                &std::env::var("ORGBOARD_LOG_FORMAT").unwrap_or_default(),
            );
            runtime.block_on(admin(*config, action))
        }
        command => {
            let config = match command {
                Some(Command::Serve(c)) => *c,
                _ => {
                    let cmd = orgboard::config_file::with_defaults(ServeFromEnv::command(), &file);
                    match ServeFromEnv::from_arg_matches(&cmd.get_matches_from(["orgboard"])) {
                        Ok(s) => s.config,
                        Err(e) => e.exit(),
                    }
                }
            };
            let problems = config.problems();
            if !problems.is_empty() {
                return refuse(&problems);
            }
            let flush = init_batched_logging(&config.log, &config.log_format);
            let served = runtime.block_on(orgboard::server::serve(config));
            // The runtime's tasks end first (their last lines batched too).
            drop(runtime);
            drop(flush);
            return match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
