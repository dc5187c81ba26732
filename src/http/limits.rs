//! Rate limits on every authenticated API route (SPEC §15): one budget per
//! user and one per organization, each `n` requests per minute with bursts
//! of `n` (GCRA, as the auth routes' limits in [`crate::auth::ratelimit`]).
//!
//! * A request counts against its user's budget when it carries a valid
//!   bearer token, and against its organization's when its path names one
//!   (`/api/v1/orgs/{org}/…`, keyed by the id or slug as written). Requests
//!   without a valid token are not counted here: they are answered `401`
//!   without work, and the auth routes have their own limits.
//! * Over budget: `429 rate_limited` with `Retry-After` (seconds, rounded up),
//!   nothing done. Every counted answer carries `RateLimit-Policy`
//!   (`"user";q=1200;w=60, "org";q=6000;w=60`) and `RateLimit` (`"user";r=…;t=…,
//!   "org";r=…;t=…`: requests left, and seconds until the budget is full
//!   again) as in the IETF draft *RateLimit header fields for HTTP*.
//! * With Redis the budgets are shared by every node (one Lua script on
//!   Redis's clock, both budgets checked before either is charged); when
//!   Redis fails a check falls back to this node's budgets, as for the auth
//!   routes.
//! * Event streams count once, when they are opened (the stream itself is
//!   capped per user by `ORGBOARD_MAX_STREAMS_PER_USER`).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use crate::cluster::Redis;
use crate::error::ApiError;
use crate::state::AppState;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// How long a shared check may wait for Redis before this node's budgets
/// answer instead.
const SHARED_CHECK_TIMEOUT: Duration = Duration::from_millis(250);

/// GCRA over the budgets `KEYS` (`ARGV[i]`: emission interval in µs,
/// `ARGV[#KEYS + i]`: burst), on Redis's clock. Every budget is checked
/// first; only when all allow is each charged. Returns `{wait}` when one is
/// spent (µs), else `{0, left_1, full_in_1, left_2, full_in_2, …}`.
const SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i])
  local burst = tonumber(ARGV[#KEYS + i])
  local tat = tonumber(redis.call('GET', key)) or now
  if tat < now then tat = now end
  tats[i] = tat
  local allow_at = tat + interval - interval * burst
  if allow_at > now and allow_at - now > wait then wait = allow_at - now end
end
if wait > 0 then return {wait} end
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

/// One budget's state after a request was let through.
#[derive(Debug, Clone, Copy)]
struct Left {
    /// Requests left now.
    remaining: u64,
    /// Seconds until the budget is full again.
    full_in: u64,
}

/// The per-user and per-organization budgets.
#[derive(Clone)]
pub struct ApiLimits {
    per_user: Arc<Keyed<Uuid>>,
    per_org: Arc<Keyed<String>>,
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
            // Digits, quotes and punctuation only: always a valid value.
            policies: (
                HeaderValue::from_str(&user).unwrap_or(HeaderValue::from_static("")),
                HeaderValue::from_str(&both).unwrap_or(HeaderValue::from_static("")),
            ),
            redis: redis.map(|r| (r, Arc::new(redis::Script::new(SCRIPT)))),
        }
    }

    /// The `RateLimit-Policy` value.
    fn policy(&self, org: bool) -> HeaderValue {
        if org {
            self.policies.1.clone()
        } else {
            self.policies.0.clone()
        }
    }

    /// Counts one request of `user` (in `org`, when named): what is left of
    /// each budget, or how long to wait.
    async fn check(&self, user: Uuid, org: Option<&str>) -> Result<Vec<Left>, Duration> {
        if let Some((redis, script)) = &self.redis {
            match self.check_shared(redis, script, user, org).await {
                Ok(found) => return found,
                Err(e) => {
                    tracing::warn!(error = %e, "shared API rate limit check failed; using this node's budgets")
                }
            }
        }
        let now = DefaultClock::default().now();
        let left = |snapshot: governor::middleware::StateSnapshot, per_minute: u32| {
            let remaining = u64::from(snapshot.remaining_burst_capacity());
            let missing = u64::from(per_minute).saturating_sub(remaining);
            Left {
                remaining,
                full_in: (missing * 60).div_ceil(u64::from(per_minute)),
            }
        };
        let mut out = vec![
            self.per_user
                .check_key(&user)
                .map(|s| left(s, self.budgets.0))
                .map_err(|n| n.wait_time_from(now))?,
        ];
        if let Some(org) = org {
            out.push(
                self.per_org
                    .check_key(&org.to_owned())
                    .map(|s| left(s, self.budgets.1))
                    .map_err(|n| n.wait_time_from(now))?,
            );
        }
        Ok(out)
    }

    async fn check_shared(
        &self,
        redis: &Redis,
        script: &redis::Script,
        user: Uuid,
        org: Option<&str>,
    ) -> anyhow::Result<Result<Vec<Left>, Duration>> {
        let mut call = script.prepare_invoke();
        call.key(redis.key(&format!("apilimit:user:{}", user.simple())));
        let mut budgets = vec![self.budgets.0];
        if let Some(org) = org {
            call.key(redis.key(&format!("apilimit:org:{org}")));
            budgets.push(self.budgets.1);
        }
        for n in &budgets {
            call.arg((60_000_000 / u64::from(*n)).max(1));
        }
        for n in &budgets {
            call.arg(*n);
        }
        let mut conn = redis.conn.clone();
        let got: Vec<i64> =
            tokio::time::timeout(SHARED_CHECK_TIMEOUT, call.invoke_async(&mut conn))
                .await
                .map_err(|_| anyhow::anyhow!("no answer within {SHARED_CHECK_TIMEOUT:?}"))??;
        match got.first() {
            Some(&wait) if wait > 0 => Ok(Err(Duration::from_micros(wait.unsigned_abs()))),
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
    }
}

/// The organization segment of an API path (`/api/v1/orgs/{org}/…`), when
/// it is one that could name an organization.
fn org_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/v1/orgs/")?;
    let seg = rest.split('/').next()?;
    (!seg.is_empty()
        && seg.len() <= 64
        && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    .then(|| seg.to_ascii_lowercase())
}

/// The middleware: counts authenticated API requests, refuses those over
/// budget, and adds the `RateLimit` headers to what it counted.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !path.starts_with("/api/v1/")
        || path.starts_with("/api/v1/auth/")
        || path == "/api/v1/openapi.json"
    {
        return next.run(req).await;
    }
    let user = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .and_then(|t| state.keys.verify(t.trim()))
        .map(|a| a.user_id);
    let Some(user) = user else {
        return next.run(req).await;
    };
    let org = org_of(path);
    let limits = &state.api_limits;
    let policy = limits.policy(org.is_some());
    let (mut res, left) = match limits.check(user, org.as_deref()).await {
        Ok(left) => (next.run(req).await, Some(left)),
        Err(wait) => (
            ApiError::rate_limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
                .into_response(),
            None,
        ),
    };
    let h = res.headers_mut();
    h.insert("ratelimit-policy", policy);
    let names = ["user", "org"];
    let value = match &left {
        Some(left) => left
            .iter()
            .zip(names)
            .map(|(l, n)| format!("\"{n}\";r={};t={}", l.remaining, l.full_in))
            .collect::<Vec<_>>()
            .join(", "),
        None => {
            let retry = h
                .get(axum::http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("1")
                .to_owned();
            format!("\"user\";r=0;t={retry}")
        }
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        h.insert("ratelimit", v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_segment_is_taken_from_org_paths_only() {
        assert_eq!(
            org_of("/api/v1/orgs/Acme-Co/boards").as_deref(),
            Some("acme-co")
        );
        assert_eq!(org_of("/api/v1/orgs/acme").as_deref(), Some("acme"));
        assert_eq!(org_of("/api/v1/orgs"), None);
        assert_eq!(org_of("/api/v1/me"), None);
        assert_eq!(org_of(&format!("/api/v1/orgs/{}/x", "a".repeat(65))), None);
        assert_eq!(org_of("/api/v1/orgs/a%20b/x"), None);
    }

    #[tokio::test]
    async fn budgets_count_down_and_refuse_when_spent() {
        let l = ApiLimits::new(3, 100, None);
        let u = Uuid::now_v7();
        let first = l.check(u, Some("acme")).await.expect("allowed");
        assert_eq!(first[0].remaining, 2);
        assert_eq!(first[1].remaining, 99);
        assert!(first[0].full_in >= 1);
        l.check(u, None).await.expect("allowed");
        l.check(u, None).await.expect("allowed");
        let wait = l.check(u, None).await.expect_err("spent");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another user has a budget of their own.
        l.check(Uuid::now_v7(), None).await.expect("allowed");
    }

    #[tokio::test]
    async fn the_organization_budget_is_shared_by_its_users() {
        let l = ApiLimits::new(100, 2, None);
        l.check(Uuid::now_v7(), Some("acme"))
            .await
            .expect("allowed");
        l.check(Uuid::now_v7(), Some("acme"))
            .await
            .expect("allowed");
        assert!(l.check(Uuid::now_v7(), Some("acme")).await.is_err());
        l.check(Uuid::now_v7(), Some("other"))
            .await
            .expect("allowed");
    }
}
