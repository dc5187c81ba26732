//! The `orgboard` binary: `serve` (the default) and `migrate`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use orgboard::config::{Config, StorageConfig};
use tracing_subscriber::EnvFilter;

/// orgboard — multi-tenant team task management.
///
/// With no command, runs `serve`. Every setting is an ORGBOARD_* environment
/// variable (or the matching flag of the command).
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Main settings: ORGBOARD_ADDR, ORGBOARD_DATA_DIR, ORGBOARD_DATABASE_URL \
        (default: the SQLite file in the data directory; postgres://… for PostgreSQL), \
        ORGBOARD_REDIS_URL, ORGBOARD_SMTP_URL, ORGBOARD_LOG.\n\
        `orgboard serve --help` lists every setting."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (applies pending migrations first).
    Serve(Box<Config>),
    /// Apply pending database migrations and exit.
    Migrate(StorageConfig),
}

/// `serve` with settings from the environment only (no command given).
#[derive(Parser)]
struct ServeFromEnv {
    #[command(flatten)]
    config: Config,
}

fn init_logging(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only on a terminal, and never with NO_COLOR set: in a file or
    // a log collector escape codes are noise.
    use std::io::IsTerminal as _;
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            init_logging(&std::env::var("ORGBOARD_LOG").unwrap_or_else(|_| "info".into()));
            runtime.block_on(async {
                let db = orgboard::db::Db::connect(&storage).await?;
                db.migrate().await?;
                tracing::info!(backend = db.backend().name(), "migrations applied");
                db.close().await;
                anyhow::Ok(())
            })
        }
        command => {
            let config = match command {
                Some(Command::Serve(c)) => *c,
                _ => ServeFromEnv::parse_from(["orgboard"]).config,
            };
            let problems = config.problems();
            if !problems.is_empty() {
                for p in &problems {
                    eprintln!("configuration error: {p}");
                }
                return ExitCode::from(2);
            }
            init_logging(&config.log);
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
