//! What several nodes share through Redis (when `ORGBOARD_REDIS_URL` is set):
//! live events (pub/sub), board-view cache entries and versions, and rate
//! limit counters. Without Redis each of those stays in process.
//!
//! Every key and channel starts with `ORGBOARD_REDIS_PREFIX` (default
//! `orgboard`), so several deployments (or test runs) can share one Redis.

use anyhow::Context as _;
use redis::aio::ConnectionManager;

/// A connection to Redis, cheap to clone (it multiplexes one connection and
/// reconnects by itself).
#[derive(Clone)]
pub struct Redis {
    /// For dedicated connections (pub/sub subscribers).
    pub client: redis::Client,
    /// The shared multiplexed connection for commands.
    pub conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Redis {
    /// Connects and checks that Redis answers.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).context("invalid ORGBOARD_REDIS_URL")?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(5)))
            .set_response_timeout(Some(std::time::Duration::from_secs(5)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .context("cannot connect to Redis (ORGBOARD_REDIS_URL)")?;
        let redis = Self {
            client,
            conn,
            prefix: prefix.to_owned(),
        };
        redis.ping().await.context("Redis does not answer PING")?;
        Ok(redis)
    }

    /// A key or channel name under this deployment's prefix.
    pub fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.prefix)
    }

    /// Round trip to Redis (readiness).
    pub async fn ping(&self) -> Result<(), redis::RedisError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }
}

/// What a channel listener hears ([`Redis::spawn_listener`]).
pub enum Heard {
    /// Subscribed again after the subscription failed: messages sent in
    /// between are lost.
    Resubscribed,
    /// One message's payload.
    Message(Vec<u8>),
}

impl Redis {
    /// Listens to `channel` on a dedicated connection until `shutdown`,
    /// giving every message to `on` and resubscribing (after 500 ms) when
    /// the subscription fails.
    pub fn spawn_listener(
        &self,
        channel: String,
        shutdown: tokio_util::sync::CancellationToken,
        mut on: impl FnMut(Heard) + Send + 'static,
    ) {
        use futures_util::StreamExt as _;
        let client = self.client.clone();
        tokio::spawn(async move {
            let mut first = true;
            loop {
                let attempt = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                let pubsub = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    p = attempt => p,
                };
                match pubsub {
                    Ok(mut pubsub) => {
                        if !first {
                            on(Heard::Resubscribed);
                        }
                        first = false;
                        let mut messages = pubsub.on_message();
                        loop {
                            let msg = tokio::select! {
                                _ = shutdown.cancelled() => return,
                                m = messages.next() => m,
                            };
                            let Some(msg) = msg else { break };
                            on(Heard::Message(msg.get_payload_bytes().to_vec()));
                        }
                        tracing::warn!(%channel, "Redis subscription ended; resubscribing");
                    }
                    Err(e) => tracing::warn!(error = %e, %channel, "cannot subscribe to Redis"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                }
            }
        });
    }
}
