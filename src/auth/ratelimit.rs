//! Rate limits for the auth routes, per client address and per account.
//!
//! Each route has its own budget, so failed logins do not eat into sign-ups.
//! A budget of `n` per minute allows a burst of `n`, then one attempt every
//! `60 / n` seconds (GCRA, the generic cell rate algorithm).
//!
//! * Without Redis the budgets live in this process (`governor`).
//! * With Redis (`ORGBOARD_REDIS_URL`) every node shares them: one Lua script
//!   runs GCRA on Redis's own clock for both budgets of a check, atomically
//!   and in one round trip, so nodes with skewed clocks still agree.
//! * When Redis fails during a check (error, or no answer within
//!   [`SHARED_CHECK_TIMEOUT`]), that check falls back to the in-process
//!   budgets and a warning is logged: during an outage each node limits on
//!   its own (a client can get up to one budget per node) rather than either
//!   refusing every sign-in or dropping the limits altogether.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::cluster::Redis;
use crate::error::ApiError;

/// How long a shared check may wait for Redis before falling back to the
/// in-process budgets.
pub const SHARED_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// At most one "Redis failed" warning per this many seconds (an outage would
/// otherwise log once per sign-in attempt).
const WARN_EVERY_SECS: u64 = 10;

/// GCRA over several budgets, checked in order; stops at the first that is
/// spent (those before it stay charged, as in process).
///
/// `KEYS[i]` is a budget; `ARGV[i]` its emission interval and
/// `ARGV[#KEYS + i]` its burst. Times are microseconds on Redis's clock. The
/// stored value is the budget's theoretical arrival time, which expires once
/// the budget is full again. Returns 0 when allowed, else the wait in
/// microseconds.
const GCRA_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i])
  local burst = tonumber(ARGV[#KEYS + i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - interval * burst
  if allow_at > now then
    return allow_at - now
  end
  redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
end
return 0
";

/// How many times looser than the per-address budget
/// [`RateLimits::check_loose`] is: every tab of every person behind one
/// address refreshes its session, and each page load does.
pub const LOOSE_FACTOR: u32 = 10;

/// Keyed limiters for the auth routes.
#[derive(Clone)]
pub struct RateLimits {
    per_ip: Arc<DefaultKeyedRateLimiter<String>>,
    /// [`LOOSE_FACTOR`] times the per-address budget, for attempts that are
    /// mostly legitimate (refreshing with a valid token).
    per_ip_loose: Arc<DefaultKeyedRateLimiter<String>>,
    per_account: Arc<DefaultKeyedRateLimiter<String>>,
    /// Attempts per minute: per address, per account.
    budgets: (u32, u32),
    shared: Option<Shared>,
}

/// The budgets kept in Redis.
#[derive(Clone)]
struct Shared {
    redis: Redis,
    script: Arc<redis::Script>,
    budgets: (u32, u32),
    /// Unix seconds of the last fallback warning.
    last_warning: Arc<AtomicU64>,
}

impl RateLimits {
    /// `per_ip` and `per_account` attempts per minute on each route (bursts
    /// up to the same number), kept in this process.
    pub fn new(per_ip: u32, per_account: u32) -> Self {
        let q = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            per_ip: Arc::new(RateLimiter::keyed(q(per_ip))),
            per_ip_loose: Arc::new(RateLimiter::keyed(q(per_ip.saturating_mul(LOOSE_FACTOR)))),
            per_account: Arc::new(RateLimiter::keyed(q(per_account))),
            budgets: (per_ip.max(1), per_account.max(1)),
            shared: None,
        }
    }

    /// Shares the budgets through `redis` (when given) with every node using
    /// the same Redis and key prefix; the in-process budgets remain as the
    /// fallback.
    pub fn with_redis(mut self, redis: Option<Redis>) -> Self {
        self.shared = redis.map(|redis| Shared {
            redis,
            script: Arc::new(redis::Script::new(GCRA_SCRIPT)),
            budgets: self.budgets,
            last_warning: Arc::new(AtomicU64::new(0)),
        });
        self
    }

    /// Whether the budgets are shared through Redis.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Counts one attempt on `route` from `ip` (and for `account`, when
    /// known); `429` with `Retry-After` when over budget.
    pub async fn check(
        &self,
        route: &str,
        ip: IpAddr,
        account: Option<&str>,
    ) -> Result<(), ApiError> {
        if let Some(shared) = &self.shared {
            match shared.check(route, ip, account).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(too_many(wait)),
                Err(e) => shared.warn_fallback(&e),
            }
        }
        self.check_local(route, ip, account)
    }

    /// Counts one attempt on `route` from `ip` against a budget
    /// [`LOOSE_FACTOR`] times the per-address one (no account budget).
    pub async fn check_loose(&self, route: &str, ip: IpAddr) -> Result<(), ApiError> {
        let route = format!("{route}-loose");
        if let Some(shared) = &self.shared {
            let budget = shared.budgets.0.saturating_mul(LOOSE_FACTOR);
            match shared.check_with(&route, ip, None, budget).await {
                Ok(None) => return Ok(()),
                Ok(Some(wait)) => return Err(too_many(wait)),
                Err(e) => shared.warn_fallback(&e),
            }
        }
        check_one(&self.per_ip_loose, format!("{route}|ip|{ip}"))
    }

    /// The in-process check.
    fn check_local(&self, route: &str, ip: IpAddr, account: Option<&str>) -> Result<(), ApiError> {
        check_one(&self.per_ip, format!("{route}|ip|{ip}"))?;
        if let Some(a) = account {
            check_one(&self.per_account, format!("{route}|acct|{a}"))?;
        }
        Ok(())
    }

    /// Forgets in-process keys whose budget is full again (bounds memory;
    /// shared keys expire in Redis by themselves).
    pub fn prune(&self) {
        self.per_ip.retain_recent();
        self.per_ip_loose.retain_recent();
        self.per_account.retain_recent();
    }
}

impl Shared {
    /// `Ok(None)` when allowed, `Ok(Some(wait))` when a budget is spent.
    async fn check(
        &self,
        route: &str,
        ip: IpAddr,
        account: Option<&str>,
    ) -> anyhow::Result<Option<Duration>> {
        self.check_with(route, ip, account, self.budgets.0).await
    }

    /// [`Self::check`] with another per-address budget.
    async fn check_with(
        &self,
        route: &str,
        ip: IpAddr,
        account: Option<&str>,
        per_ip: u32,
    ) -> anyhow::Result<Option<Duration>> {
        let mut call = self.script.prepare_invoke();
        call.key(self.redis.key(&format!("ratelimit:{route}:ip:{ip}")));
        let per_account = self.budgets.1;
        let mut bursts = vec![per_ip];
        if let Some(a) = account {
            // Hashed: bounded keys, and no email addresses stored in Redis.
            let digest = Sha256::digest(a.as_bytes());
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            call.key(self.redis.key(&format!("ratelimit:{route}:account:{hex}")));
            bursts.push(per_account);
        }
        for n in &bursts {
            call.arg(emission_interval_micros(*n));
        }
        for n in &bursts {
            call.arg(*n);
        }
        let mut conn = self.redis.conn.clone();
        let wait: i64 = tokio::time::timeout(SHARED_CHECK_TIMEOUT, call.invoke_async(&mut conn))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {SHARED_CHECK_TIMEOUT:?}"))??;
        Ok((wait > 0).then(|| Duration::from_micros(wait.unsigned_abs())))
    }

    fn warn_fallback(&self, err: &anyhow::Error) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let last = self.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_SECS
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = %err,
                "shared rate limit check failed; using this node's own limits until Redis answers"
            );
        }
    }
}

/// Microseconds between two attempts once the burst is spent.
fn emission_interval_micros(per_minute: u32) -> u64 {
    (60_000_000 / u64::from(per_minute.max(1))).max(1)
}

/// `429` telling the client to wait `wait`, rounded up to whole seconds.
fn too_many(wait: Duration) -> ApiError {
    ApiError::rate_limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

fn check_one(limiter: &DefaultKeyedRateLimiter<String>, key: String) -> Result<(), ApiError> {
    limiter
        .check_key(&key)
        .map_err(|not_until| too_many(not_until.wait_time_from(limiter.clock().now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limits_per_ip_and_per_account_independently() {
        let rl = RateLimits::new(3, 2);
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(rl.check("login", ip, Some("a@x.io")).await.is_ok());
        assert!(rl.check("login", ip, Some("a@x.io")).await.is_ok());
        let e = rl
            .check("login", other, Some("a@x.io"))
            .await
            .expect_err("account budget spent");
        assert_eq!(e.status().as_u16(), 429);
        assert!(
            rl.check("login", ip, Some("b@x.io")).await.is_ok(),
            "third from ip"
        );
        assert!(
            rl.check("login", ip, Some("c@x.io")).await.is_err(),
            "ip budget spent"
        );
        assert!(
            rl.check("signup", ip, None).await.is_ok(),
            "routes have separate budgets"
        );
    }

    #[test]
    fn emission_interval_spreads_the_minute() {
        assert_eq!(emission_interval_micros(1), 60_000_000);
        assert_eq!(emission_interval_micros(10), 6_000_000);
        assert_eq!(emission_interval_micros(0), 60_000_000);
        assert_eq!(emission_interval_micros(u32::MAX), 1);
    }

    #[test]
    fn retry_after_rounds_up() {
        use axum::response::IntoResponse;
        let secs = |d| {
            let res = too_many(d).into_response();
            assert_eq!(res.status().as_u16(), 429);
            res.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        assert_eq!(secs(Duration::from_micros(1)), "1");
        assert_eq!(secs(Duration::from_millis(1500)), "2");
        assert_eq!(secs(Duration::from_secs(6)), "6");
    }
}
