//! Settings, read from `ORGBOARD_*` environment variables (or the matching
//! command-line flags) and validated at start-up with one clear message per
//! problem. The embedded default needs none of them.

use std::net::SocketAddr;
use std::path::PathBuf;

/// The largest `ORGBOARD_JOB_TIMEOUT_SECS`: a job must end (or be cut) well
/// within its lease (`jobs::LEASE`, 5 minutes), or a second worker could
/// claim it while it runs.
pub const MAX_JOB_TIMEOUT_SECS: u64 = 240;

use clap::Args;

pub use crate::db::StorageConfig;

/// Everything `orgboard serve` reads.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ORGBOARD_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    #[command(flatten)]
    pub storage: StorageConfig,

    /// Redis for live events across nodes, the shared board-view cache and
    /// shared rate limits (optional; in process without it). Required when
    /// several nodes serve one database.
    #[arg(long, env = "ORGBOARD_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel (deployments sharing a Redis
    /// need different prefixes).
    #[arg(long, env = "ORGBOARD_REDIS_PREFIX", default_value = "orgboard")]
    pub redis_prefix: String,

    /// SMTP server for outgoing mail (`smtp://user:pass@host:port` or
    /// `smtps://…`); without it mail goes to `<data dir>/outbox/*.eml`.
    #[arg(long, env = "ORGBOARD_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender address of outgoing mail.
    #[arg(
        long,
        env = "ORGBOARD_SMTP_FROM",
        default_value = "orgboard <no-reply@orgboard.invalid>"
    )]
    pub smtp_from: String,

    /// Base URL people use to reach this server, used in links in emails.
    #[arg(long, env = "ORGBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Log filter (`info`, `orgboard=debug,tower_http=info`, …).
    #[arg(long, env = "ORGBOARD_LOG", default_value = "info")]
    pub log: String,

    /// Log format: `text` (colour only on a terminal and without NO_COLOR)
    /// or `json` (one object per line, for log collectors).
    #[arg(long, env = "ORGBOARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Signing secret for access tokens and cursors (≥ 32 bytes). Without it
    /// one is generated once and kept in `<data dir>/secret.key`; several
    /// nodes must share the same value.
    #[arg(long, env = "ORGBOARD_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Lifetime of access tokens in seconds (at most 900).
    #[arg(long, env = "ORGBOARD_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of refresh tokens in days.
    #[arg(long, env = "ORGBOARD_REFRESH_TOKEN_TTL_DAYS", default_value_t = 30)]
    pub refresh_token_ttl_days: u64,

    /// Lifetime of invites in hours.
    #[arg(long, env = "ORGBOARD_INVITE_TTL_HOURS", default_value_t = 168)]
    pub invite_ttl_hours: u64,

    /// argon2id memory cost in KiB.
    #[arg(long, env = "ORGBOARD_ARGON2_MEMORY_KIB", default_value_t = 19_456)]
    pub argon2_memory_kib: u32,

    /// argon2id iterations.
    #[arg(long, env = "ORGBOARD_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,

    /// Password hashes (sign-up, login) computed at once; `0` picks one per
    /// core, no more than fit in 128 MiB of argon2 memory. A short queue
    /// waits behind them; attempts beyond it are answered `503` at once.
    #[arg(long, env = "ORGBOARD_PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,

    /// Attempts per minute on each auth route from one client address.
    #[arg(long, env = "ORGBOARD_RATE_LIMIT_PER_IP", default_value_t = 30)]
    pub rate_limit_per_ip: u32,

    /// Attempts per minute on each auth route for one account (email or user).
    #[arg(long, env = "ORGBOARD_RATE_LIMIT_PER_ACCOUNT", default_value_t = 10)]
    pub rate_limit_per_account: u32,

    /// Requests per minute one user may make to the authenticated API
    /// (bursts of as many); shared across nodes with Redis.
    #[arg(long, env = "ORGBOARD_API_RATE_LIMIT_PER_USER", default_value_t = 1200)]
    pub api_rate_limit_per_user: u32,

    /// Requests per minute to one organization's routes, all its members
    /// together (bursts of as many); shared across nodes with Redis.
    #[arg(long, env = "ORGBOARD_API_RATE_LIMIT_PER_ORG", default_value_t = 6000)]
    pub api_rate_limit_per_org: u32,

    /// Take the client address from the first `X-Forwarded-For` entry (only
    /// behind a proxy that sets it).
    #[arg(long, env = "ORGBOARD_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// Most client connections open at once; `0` derives it from the
    /// open-files limit (what is left after the database pool and a reserve,
    /// at most 4 096). At the cap the connection idle the longest is closed
    /// to make room; busy ones are never cut.
    #[arg(long, env = "ORGBOARD_MAX_CONNECTIONS", default_value_t = 0)]
    pub max_connections: usize,

    /// Seconds a client has to send a request's headers once it started.
    #[arg(long, env = "ORGBOARD_HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Seconds a connection may stay open with no request in flight.
    #[arg(long, env = "ORGBOARD_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "ORGBOARD_MAX_BODY_BYTES", default_value_t = 1_048_576)]
    pub max_body_bytes: usize,

    /// Open event streams (SSE or WebSocket) one user may hold on one node.
    #[arg(long, env = "ORGBOARD_MAX_STREAMS_PER_USER", default_value_t = 16)]
    pub max_streams_per_user: usize,

    /// Seconds between heartbeats on idle event streams.
    #[arg(long, env = "ORGBOARD_EVENTS_HEARTBEAT_SECS", default_value_t = 15)]
    pub events_heartbeat_secs: u64,

    /// Run background job workers in this process.
    #[arg(long, env = "ORGBOARD_WORKERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub workers: bool,

    /// Seconds between a node's looks at the schedules (daily summary,
    /// clean-up); each period's job is enqueued once across all nodes.
    #[arg(long, env = "ORGBOARD_SCHEDULER_TICK_SECS", default_value_t = 30)]
    pub scheduler_tick_secs: u64,

    /// Longest a background job may run, in seconds; a job cut by it counts
    /// as a failed attempt and is retried (at most 240, below the lease).
    #[arg(long, env = "ORGBOARD_JOB_TIMEOUT_SECS", default_value_t = 120)]
    pub job_timeout_secs: u64,

    /// At shutdown, seconds the job in hand may take to finish before it is
    /// released back to the queue.
    #[arg(long, env = "ORGBOARD_JOB_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub job_shutdown_grace_secs: u64,
}

impl Config {
    /// Problems with the settings, one message each; empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.access_token_ttl_secs == 0 || self.access_token_ttl_secs > 900 {
            p.push("ORGBOARD_ACCESS_TOKEN_TTL_SECS must be between 1 and 900".to_owned());
        }
        if self.refresh_token_ttl_days == 0 || self.refresh_token_ttl_days > 365 {
            p.push("ORGBOARD_REFRESH_TOKEN_TTL_DAYS must be between 1 and 365".to_owned());
        }
        if self.invite_ttl_hours == 0 || self.invite_ttl_hours > 24 * 90 {
            p.push("ORGBOARD_INVITE_TTL_HOURS must be between 1 and 2160".to_owned());
        }
        if self.argon2_memory_kib < 8 || self.argon2_iterations == 0 {
            p.push(
                "ORGBOARD_ARGON2_MEMORY_KIB must be ≥ 8 and ORGBOARD_ARGON2_ITERATIONS ≥ 1"
                    .to_owned(),
            );
        }
        if self.rate_limit_per_ip == 0 || self.rate_limit_per_account == 0 {
            p.push("ORGBOARD_RATE_LIMIT_PER_IP and _PER_ACCOUNT must be ≥ 1".to_owned());
        }
        if self.api_rate_limit_per_user == 0 || self.api_rate_limit_per_org == 0 {
            p.push("ORGBOARD_API_RATE_LIMIT_PER_USER and _PER_ORG must be ≥ 1".to_owned());
        }
        if self.scheduler_tick_secs == 0 || self.scheduler_tick_secs > 3600 {
            p.push("ORGBOARD_SCHEDULER_TICK_SECS must be between 1 and 3600".to_owned());
        }
        if self.job_timeout_secs == 0 || self.job_timeout_secs > MAX_JOB_TIMEOUT_SECS {
            p.push(format!(
                "ORGBOARD_JOB_TIMEOUT_SECS must be between 1 and {}",
                MAX_JOB_TIMEOUT_SECS
            ));
        }
        if self.job_shutdown_grace_secs > 300 {
            p.push("ORGBOARD_JOB_SHUTDOWN_GRACE_SECS must be at most 300".to_owned());
        }
        if self.header_read_timeout_secs == 0 || self.header_read_timeout_secs > 3600 {
            p.push("ORGBOARD_HEADER_READ_TIMEOUT_SECS must be between 1 and 3600".to_owned());
        }
        if self.idle_timeout_secs == 0 || self.idle_timeout_secs > 86_400 {
            p.push("ORGBOARD_IDLE_TIMEOUT_SECS must be between 1 and 86400".to_owned());
        }
        if self.max_body_bytes < 1024 {
            p.push("ORGBOARD_MAX_BODY_BYTES must be at least 1024".to_owned());
        }
        if self.storage.db_max_connections == 0 {
            p.push("ORGBOARD_DB_MAX_CONNECTIONS must be ≥ 1".to_owned());
        }
        if let Some(s) = &self.secret
            && s.len() < 32
        {
            p.push("ORGBOARD_SECRET must be at least 32 characters".to_owned());
        }
        let url = self.storage.effective_database_url();
        if !(url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.starts_with("sqlite:"))
        {
            p.push(
                "ORGBOARD_DATABASE_URL must start with postgres://, postgresql:// or sqlite:"
                    .to_owned(),
            );
        }
        if let Some(u) = &self.smtp_url
            && !(u.starts_with("smtp://") || u.starts_with("smtps://"))
        {
            p.push("ORGBOARD_SMTP_URL must start with smtp:// or smtps://".to_owned());
        }
        if let Some(u) = &self.redis_url
            && !(u.starts_with("redis://") || u.starts_with("rediss://"))
        {
            p.push("ORGBOARD_REDIS_URL must start with redis:// or rediss://".to_owned());
        }
        if self.smtp_from.parse::<lettre::message::Mailbox>().is_err() {
            p.push("ORGBOARD_SMTP_FROM is not a valid mailbox".to_owned());
        }
        p
    }

    /// The bounds on client connections.
    pub fn connection_limits(&self) -> crate::listener::Limits {
        crate::listener::Limits {
            max_connections: match self.max_connections {
                0 => crate::listener::auto_max_connections(self.storage.db_max_connections),
                n => n,
            },
            header_read: std::time::Duration::from_secs(self.header_read_timeout_secs),
            idle: std::time::Duration::from_secs(self.idle_timeout_secs),
        }
    }

    /// Whether people reach this server over https (then the session
    /// cookie is `Secure`).
    pub fn public_url_is_https(&self) -> bool {
        self.public_url().starts_with("https://")
    }

    /// Base URL for links in emails.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Settings for tests and tools: the defaults, a given data directory and
    /// database, cheap password hashing and generous rate limits.
    pub fn for_tests(data_dir: PathBuf, database_url: Option<String>) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            storage: StorageConfig {
                data_dir,
                database_url,
                db_max_connections: 8,
            },
            redis_url: None,
            redis_prefix: "orgboard".to_owned(),
            smtp_url: None,
            smtp_from: "orgboard <no-reply@orgboard.invalid>".to_owned(),
            public_url: None,
            log: "warn".to_owned(),
            log_format: "text".to_owned(),
            secret: Some("test-secret-test-secret-test-secret-0123".to_owned()),
            access_token_ttl_secs: 900,
            refresh_token_ttl_days: 30,
            invite_ttl_hours: 168,
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            password_hash_concurrency: 0,
            rate_limit_per_ip: 100_000,
            rate_limit_per_account: 100_000,
            api_rate_limit_per_user: 1_000_000,
            api_rate_limit_per_org: 1_000_000,
            trust_forwarded_for: true,
            max_body_bytes: 1_048_576,
            max_connections: 0,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            workers: false,
            scheduler_tick_secs: 30,
            job_timeout_secs: 30,
            job_shutdown_grace_secs: 1,
            max_streams_per_user: 16,
            events_heartbeat_secs: 15,
        }
    }
}
