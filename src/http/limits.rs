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
//!   [`crate::http::RequestOrg`] slot) and remembers, per node, which
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
const SPENT: Left = Left {
    remaining: 0,
    full_in: 60,
};

/// A budget requests are counted against.
#[derive(Debug, Clone, Copy)]
enum Budget {
    User(Uuid),
    Org(Uuid),
}

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
    per_org: Arc<Keyed<Uuid>>,
    /// Which organization a caller's `{org}` path segment (id or slug, as
    /// written) named the last time their membership in it was confirmed.
    known: moka::sync::Cache<(Uuid, String), Uuid>,
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
    fn policy(&self, org: bool) -> HeaderValue {
        if org {
            self.policies.1.clone()
        } else {
            self.policies.0.clone()
        }
    }

    /// Counts one request against each of `budgets`: what is left of each,
    /// or how long to wait and which budget is spent.
    async fn check(&self, budgets: &[Budget]) -> Result<Vec<Left>, (Duration, Budget)> {
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
pub async fn limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
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
        .and_then(|t| state.keys.verify(t.trim()));
    let Some(access) = user else {
        return next.run(req).await;
    };
    let user = access.user_id;
    // The handler's extractor takes the caller from here (one verification).
    req.extensions_mut().insert(crate::auth::AuthUser {
        user_id: access.user_id,
        session: access.session,
        expires_at: access.expires_at,
    });
    let limits = &state.api_limits;
    // The organization is counted only once the caller's membership in it
    // is known: before the answer when it was confirmed earlier, after it
    // the first time. A stranger's requests never touch its budget.
    let segment = org_of(req.uri().path()).map(|s| (user, s));
    let known = segment.as_ref().and_then(|k| limits.known.get(k));
    let confirmed = req.extensions().get::<crate::http::RequestOrg>().cloned();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let mut budgets = vec![Budget::User(user)];
    budgets.extend(known.map(Budget::Org));
    let (mut res, mut left) = match limits.check(&budgets).await {
        Ok(left) => (next.run(req).await, Some(left)),
        Err((wait, spent)) => {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut res = ApiError::rate_limited(secs).into_response();
            let name = match spent {
                Budget::User(_) => "user",
                Budget::Org(_) => "org",
            };
            if let Ok(v) = HeaderValue::from_str(&format!("\"{name}\";r=0;t={secs}")) {
                res.headers_mut().insert("ratelimit", v);
            }
            (res, None)
        }
    };
    let confirmed_org = confirmed.and_then(|c| c.get());
    if let (Some(segment), Some(left)) = (segment, left.as_mut()) {
        match (known, confirmed_org) {
            // Confirmed now for the first time (or for another organization
            // than before, the slug having moved): remembered, and this
            // request counted after its answer. A spent budget refuses the
            // next request; this one's work is done.
            (k, Some(org)) if k != Some(org) => {
                limits.known.insert(segment, org);
                left.truncate(1);
                left.push(match limits.check(&[Budget::Org(org)]).await {
                    Ok(after) => after.first().copied().unwrap_or(SPENT),
                    Err(_) => SPENT,
                });
            }
            // No longer a member (or the organization is gone): forgotten,
            // so further requests do not count against it.
            (Some(_), None) => limits.known.invalidate(&segment),
            _ => {}
        }
    }
    if res
        .extensions()
        .get::<crate::error::ErrorCode>()
        .is_some_and(|c| c.0 == "forbidden")
    {
        let mut entry =
            crate::security::Entry::new(crate::security::Kind::PermissionDenied, Some(user), None)
                .detail(serde_json::json!({
                    "method": method.as_str(),
                    "route": route.as_ref().map_or("unmatched", |r| r.as_str()),
                }));
        entry.org_id = confirmed_org;
        crate::security::record(&state.db, entry).await;
    }
    let counted_org = left.as_ref().map_or(known.is_some(), |l| l.len() > 1);
    let h = res.headers_mut();
    h.insert("ratelimit-policy", limits.policy(counted_org));
    if let Some(left) = &left {
        let value = left
            .iter()
            .zip(["user", "org"])
            .map(|(l, n)| format!("\"{n}\";r={};t={}", l.remaining, l.full_in))
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert("ratelimit", v);
        }
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
