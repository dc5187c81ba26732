//! Rate limits on every authenticated API route (SPEC §15): one budget per
//! user and one per organization, each `n` requests per minute with bursts
//! of `n` (GCRA, as the auth routes' limits in [`crate::auth::ratelimit`]).
//!
//! * A request counts against its user's budget when it carries a valid
//!   bearer token. It counts against an organization's budget (keyed by the
//!   organization's id, so its id and slug share one) only when the caller's
//!   membership in it is confirmed: a stranger's requests to
//!   `/api/v1/orgs/<theirs>/…` are answered `404` and never spend another
//!   tenant's budget. Membership is confirmed inside the handler's
//!   transaction, so the middleware learns it from the answer (the
//!   [`crate::http::extract::RequestOrg`] slot) and remembers, per node, which
//!   organization a caller's `{org}` segment named. The first request of a
//!   caller in an organization (on a node, within 10 minutes) is counted
//!   after its answer; later ones before it, refused with `429` when the
//!   organization's budget is spent. A request answered without a
//!   confirmed membership (removed member, deleted organization) forgets the
//!   pair. Requests without a valid token are not counted here: they are
//!   answered `401` without work, and the auth routes have their own limits.
//! * Over budget: `429 rate_limited` with `Retry-After` (seconds, rounded up),
//!   nothing done. Every counted answer carries `RateLimit-Policy`
//!   (`"user";q=1200;w=60, "org";q=6000;w=60`) and `RateLimit` (`"user";r=…;t=…,
//!   "org";r=…;t=…`: requests left, and seconds until the budget is full
//!   again) as in the IETF draft *RateLimit header fields for HTTP*.
//! * With Redis the budgets are shared by every node (one Lua script on
//!   Redis's clock, both budgets checked before either is charged; in
//!   process the user's is charged first, so a request refused for its
//!   organization's budget still costs its user one); when
//!   Redis fails a check falls back to this node's budgets, as for the auth
//!   routes.
//! * Event streams count once, when they are opened (the stream itself is
//!   capped per user by `ORGBOARD_MAX_STREAMS_PER_USER`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use crate::cluster::Redis;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// How long a shared check may wait for Redis before this node's budgets
/// answer instead.
const SHARED_CHECK_TIMEOUT: Duration = Duration::from_millis(250);

/// GCRA over the budgets `KEYS` (`ARGV[i]`: emission interval in µs,
/// `ARGV[#KEYS + i]`: burst), on Redis's clock. Every budget is checked
/// first; only when all allow is each charged. Returns `{wait}` when one is
/// spent (µs, and the 1-based index of the budget that waits longest), else `{0, left_1, full_in_1, left_2, full_in_2, …}`.
const SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local wait = 0
local spent = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i])
  local burst = tonumber(ARGV[#KEYS + i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  tats[i] = tat
  local allow_at = tat + interval - interval * burst
  if allow_at > now and allow_at - now > wait then
    wait = allow_at - now
    spent = i
  end
end
if wait > 0 then return {wait, spent} end
local out = {0}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i])
  local burst = tonumber(ARGV[#KEYS + i])
  local new_tat = tats[i] + interval
  redis.call('SET', key, string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
  out[#out + 1] = math.floor((now + interval * burst - new_tat) / interval)
  out[#out + 1] = math.ceil((new_tat - now) / 1000000)
end
return out
";

/// How many (caller, `{org}` segment) → organization pairs a node keeps.
const KNOWN_CAPACITY: u64 = 100_000;
/// A pair unused this long is forgotten (the next request of that caller
/// in that organization is counted after its answer again).
const KNOWN_IDLE: Duration = Duration::from_secs(600);

/// What an organization's budget shows when it was found spent after an
/// answer (its next request waits).
pub(crate) const SPENT: Left = Left {
    remaining: 0,
    full_in: 60,
};

/// A budget requests are counted against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Budget {
    /// A user's.
    User(Uuid),
    /// An organization's.
    Org(Uuid),
}

/// One budget's state after a request was let through.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Left {
    /// Requests left now.
    pub(crate) remaining: u64,
    /// Seconds until the budget is full again.
    pub(crate) full_in: u64,
}

/// The per-user and per-organization budgets.
#[derive(Clone)]
pub struct ApiLimits {
    per_user: Arc<Keyed<Uuid>>,
    per_org: Arc<Keyed<Uuid>>,
    /// Which organization a caller's `{org}` path segment (id or slug, as
    /// written) named the last time their membership in it was confirmed.
    pub(crate) known: moka::sync::Cache<(Uuid, String), Uuid>,
    /// Requests per minute: per user, per organization.
    budgets: (u32, u32),
    /// The `RateLimit-Policy` values (user only; user and organization),
    /// made once: they follow from the budgets.
    policies: (HeaderValue, HeaderValue),
    redis: Option<(Redis, Arc<redis::Script>)>,
}

impl ApiLimits {
    /// `per_user` and `per_org` requests per minute (bursts of as many);
    /// shared through `redis` when given.
    pub fn new(per_user: u32, per_org: u32, redis: Option<Redis>) -> Self {
        let q = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        let (per_user, per_org) = (per_user.max(1), per_org.max(1));
        let user = format!("\"user\";q={per_user};w=60");
        let both = format!("{user}, \"org\";q={per_org};w=60");
        Self {
            per_user: Arc::new(RateLimiter::keyed(q(per_user)).with_middleware()),
            per_org: Arc::new(RateLimiter::keyed(q(per_org)).with_middleware()),
            budgets: (per_user, per_org),
            known: moka::sync::Cache::builder()
                .max_capacity(KNOWN_CAPACITY)
                .time_to_idle(KNOWN_IDLE)
                .build(),
            // Digits, quotes and punctuation only: always a valid value.
            policies: (
                HeaderValue::from_str(&user).unwrap_or(HeaderValue::from_static("")),
                HeaderValue::from_str(&both).unwrap_or(HeaderValue::from_static("")),
            ),
            redis: redis.map(|r| (r, Arc::new(redis::Script::new(SCRIPT)))),
        }
    }

    /// The `RateLimit-Policy` value.
    pub(crate) fn policy(&self, org: bool) -> HeaderValue {
        if org {
            self.policies.1.clone()
        } else {
            self.policies.0.clone()
        }
    }

    /// Counts one request against each of `budgets`: what is left of each,
    /// or how long to wait and which budget is spent.
    pub(crate) async fn check(&self, budgets: &[Budget]) -> Result<Vec<Left>, (Duration, Budget)> {
        if let Some((redis, script)) = &self.redis {
            match self.check_shared(redis, script, budgets).await {
                Ok(found) => return found,
                Err(e) => {
                    tracing::warn!(error = %e, "shared API rate limit check failed; using this node's budgets")
                }
            }
        }
        let left = |snapshot: governor::middleware::StateSnapshot, per_minute: u32| {
            let remaining = u64::from(snapshot.remaining_burst_capacity());
            let missing = u64::from(per_minute).saturating_sub(remaining);
            Left {
                remaining,
                full_in: (missing * 60).div_ceil(u64::from(per_minute)),
            }
        };
        budgets
            .iter()
            .map(|b| {
                match b {
                    Budget::User(id) => self.per_user.check_key(id),
                    Budget::Org(id) => self.per_org.check_key(id),
                }
                .map(|s| left(s, self.per_minute(*b)))
                // The limiter's own clock: a new `DefaultClock` (quanta)
                // probes the CPU with CPUID each time it is made, which
                // traps to the hypervisor on a VM and cost a fifth of a
                // cheap request's time when it was made per check.
                .map_err(|n| (n.wait_time_from(self.per_user.clock().now()), *b))
            })
            .collect()
    }

    fn per_minute(&self, budget: Budget) -> u32 {
        match budget {
            Budget::User(_) => self.budgets.0,
            Budget::Org(_) => self.budgets.1,
        }
    }

    async fn check_shared(
        &self,
        redis: &Redis,
        script: &redis::Script,
        budgets: &[Budget],
    ) -> anyhow::Result<Result<Vec<Left>, (Duration, Budget)>> {
        let mut call = script.prepare_invoke();
        for b in budgets {
            call.key(redis.key(&match b {
                Budget::User(id) => format!("apilimit:user:{}", id.simple()),
                Budget::Org(id) => format!("apilimit:org:{}", id.simple()),
            }));
        }
        for b in budgets {
            call.arg((60_000_000 / u64::from(self.per_minute(*b))).max(1));
        }
        for b in budgets {
            call.arg(self.per_minute(*b));
        }
        let mut conn = redis.conn.clone();
        let got: Vec<i64> =
            tokio::time::timeout(SHARED_CHECK_TIMEOUT, call.invoke_async(&mut conn))
                .await
                .map_err(|_| anyhow::anyhow!("no answer within {SHARED_CHECK_TIMEOUT:?}"))??;
        match got.first() {
            Some(&wait) if wait > 0 => {
                let spent = got
                    .get(1)
                    .and_then(|i| usize::try_from(*i).ok())
                    .and_then(|i| budgets.get(i.wrapping_sub(1)))
                    .copied()
                    .unwrap_or(budgets[0]);
                Ok(Err((Duration::from_micros(wait.unsigned_abs()), spent)))
            }
            Some(_) => Ok(Ok(got[1..]
                .chunks(2)
                .map(|c| Left {
                    remaining: c.first().copied().unwrap_or(0).max(0).unsigned_abs(),
                    full_in: c.get(1).copied().unwrap_or(0).max(0).unsigned_abs(),
                })
                .collect())),
            None => anyhow::bail!("empty answer from the rate limit script"),
        }
    }

    /// Forgets in-process keys whose budget is full again.
    pub fn prune(&self) {
        self.per_user.retain_recent();
        self.per_org.retain_recent();
        self.known.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn budgets_count_down_and_refuse_when_spent() {
        let l = ApiLimits::new(3, 100, None);
        let u = Budget::User(Uuid::now_v7());
        let first = l
            .check(&[u, Budget::Org(Uuid::now_v7())])
            .await
            .expect("allowed");
        assert_eq!(first[0].remaining, 2);
        assert_eq!(first[1].remaining, 99);
        assert!(first[0].full_in >= 1);
        l.check(&[u]).await.expect("allowed");
        l.check(&[u]).await.expect("allowed");
        let (wait, spent) = l.check(&[u]).await.expect_err("spent");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(matches!(spent, Budget::User(_)));
        // Another user has a budget of their own.
        l.check(&[Budget::User(Uuid::now_v7())])
            .await
            .expect("allowed");
    }

    #[tokio::test]
    async fn the_organization_budget_is_shared_by_its_users() {
        let l = ApiLimits::new(100, 2, None);
        let acme = Budget::Org(Uuid::now_v7());
        for _ in 0..2 {
            l.check(&[Budget::User(Uuid::now_v7()), acme])
                .await
                .expect("allowed");
        }
        let (_, spent) = l
            .check(&[Budget::User(Uuid::now_v7()), acme])
            .await
            .expect_err("spent");
        assert!(matches!(spent, Budget::Org(_)));
        l.check(&[Budget::User(Uuid::now_v7()), Budget::Org(Uuid::now_v7())])
            .await
            .expect("allowed");
    }
}
