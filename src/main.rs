//! The `orgboard` binary: `serve` (the default) and `migrate`.

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
}

/// `serve` with settings from the environment only (no command given).
#[derive(Parser)]
struct ServeFromEnv {
    #[command(flatten)]
    config: Config,
}

fn init_logging(filter: &str, format: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    if format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
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
        .init();
}

/// The one line a backup or restore prints.
fn report(what: &str, r: &orgboard::backup::Report, then: &str) {
    println!(
        "{what}: {} bytes, {} tasks, migration {}{then}",
        r.bytes, r.tasks, r.migration
    );
}

/// Reports configuration problems, one per line; exit status 2.
fn refuse(problems: &[String]) -> ExitCode {
    for p in problems {
        eprintln!("configuration error: {p}");
    }
    ExitCode::from(2)
}

fn main() -> ExitCode {
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
            init_logging(&config.log, &config.log_format);
            runtime.block_on(orgboard::server::serve(config))
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
