//! The shared application state every handler receives.

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::auth::password::PasswordHasher;
use crate::auth::ratelimit::RateLimits;
use crate::auth::tokens::{Keys, load_or_create_secret};
use crate::cluster::Redis;
use crate::config::Config;
use crate::db::Db;
use crate::events::Live;

/// Everything long-lived: settings, database, keys, limiters.
pub struct App {
    /// The settings in force.
    pub config: Config,
    /// The database.
    pub db: Db,
    /// Token and cursor keys.
    pub keys: Keys,
    /// Password hashing.
    pub hasher: PasswordHasher,
    /// Auth route rate limits.
    pub limits: RateLimits,
    /// Rate limits of the authenticated API, per user and per organization.
    pub api_limits: crate::http::limits::ApiLimits,
    /// Woken after a transaction that enqueued jobs commits.
    pub jobs_wakeup: Notify,
    /// Redis, when configured (shared by every node).
    pub redis: Option<Redis>,
    /// Cancelled when the process shuts down; background tasks watch it.
    pub shutdown: CancellationToken,
    /// Live events, the board-view cache, and the after-commit hook.
    pub live: Arc<Live>,
}

/// Cheap-to-clone handle on [`App`], the axum state.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

impl AppState {
    /// Builds the state over an open (migrated) database and, when
    /// configured, a Redis connection.
    pub fn new(config: Config, db: Db, redis: Option<Redis>) -> anyhow::Result<Self> {
        let secret = load_or_create_secret(config.secret.as_deref(), &config.storage.data_dir)?;
        let keys = Keys::new(&secret, config.access_token_ttl_secs);
        let hasher = PasswordHasher::new(
            config.argon2_memory_kib,
            config.argon2_iterations,
            config.password_hash_concurrency,
        )?;
        crate::metrics::init();
        let limits = RateLimits::new(config.rate_limit_per_ip, config.rate_limit_per_account)
            .with_redis(redis.clone());
        let api_limits = crate::http::limits::ApiLimits::new(
            config.api_rate_limit_per_user,
            config.api_rate_limit_per_org,
            redis.clone(),
        );
        let shutdown = CancellationToken::new();
        let live = Live::new(&db, redis.clone());
        live.start(db.clone(), shutdown.clone());
        // Every write transaction from now on invalidates and publishes
        // after it commits (sign-up and invitations included).
        db.set_after_commit(live.clone());
        Ok(Self(Arc::new(App {
            config,
            db,
            keys,
            hasher,
            limits,
            api_limits,
            jobs_wakeup: Notify::new(),
            redis,
            shutdown,
            live,
        })))
    }
}
