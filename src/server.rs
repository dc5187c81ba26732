//! Running the server: start-up (connect, migrate, bind), background
//! workers, and graceful shutdown on SIGTERM/SIGINT.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::Db;
use crate::state::AppState;

/// Where a person on this machine can open the server: a wildcard address
/// (`0.0.0.0`, `::`) is reached through the loopback one.
fn browsable(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, addr.port())
}

/// Connects, migrates and builds the state: everything before listening.
pub async fn prepare(config: Config) -> anyhow::Result<AppState> {
    let db = Db::connect(&config.storage).await?;
    db.migrate().await.context("migrations failed")?;
    let redis = match &config.redis_url {
        Some(url) if !url.trim().is_empty() => {
            Some(crate::cluster::Redis::connect(url, &config.redis_prefix).await?)
        }
        _ => None,
    };
    AppState::new(config, db, redis)
}

/// Runs `orgboard serve` until a shutdown signal; in-flight requests and the
/// job in hand finish first.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let addr = config.addr;
    let workers = config.workers;
    let state = prepare(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let shutdown = state.shutdown.clone();
    state.hasher.warm_up();

    let mut background = Vec::new();
    if workers {
        background.push(crate::jobs::spawn_worker(state.clone(), shutdown.clone()));
    }
    background.push(spawn_pruner(state.clone(), shutdown.clone()));

    let data_dir = match state.db.backend() {
        crate::db::Backend::Sqlite => state.config.storage.data_dir.display().to_string(),
        crate::db::Backend::Postgres => "-".to_owned(),
    };
    tracing::info!(
        addr = %local,
        backend = state.db.backend().name(),
        version = crate::VERSION,
        data_dir,
        startup_ms = started.elapsed().as_millis() as u64,
        "orgboard listening: open http://{}/",
        browsable(local)
    );
    let app = crate::http::router(state.clone());
    let limits = state.config.connection_limits();
    tracing::info!(
        max_connections = limits.max_connections,
        header_read_timeout_secs = limits.header_read.as_secs(),
        idle_timeout_secs = limits.idle.as_secs(),
        "connection limits"
    );
    let token = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: draining requests and jobs");
        token.cancel();
    });
    crate::listener::serve(listener, app, limits, shutdown.clone()).await?;
    shutdown.cancel();
    for handle in background {
        let _ = handle.await;
    }
    state.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

fn spawn_pruner(state: AppState, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {
                    state.limits.prune();
                    state.api_limits.prune();
                }
            }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
