//! Rate limits for the auth routes, per client address and per account.
//!
//! In process (GCRA through `governor`); a later issue shares them across
//! nodes through Redis. Each route has its own budget, so failed logins do
//! not eat into sign-ups.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// Keyed limiters for the auth routes.
#[derive(Clone)]
pub struct RateLimits {
    per_ip: Arc<DefaultKeyedRateLimiter<String>>,
    per_account: Arc<DefaultKeyedRateLimiter<String>>,
}

impl RateLimits {
    /// `per_ip` and `per_account` attempts per minute on each route (bursts
    /// up to the same number).
    pub fn new(per_ip: u32, per_account: u32) -> Self {
        let q = |n: u32| Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN));
        Self {
            per_ip: Arc::new(RateLimiter::keyed(q(per_ip))),
            per_account: Arc::new(RateLimiter::keyed(q(per_account))),
        }
    }

    /// Counts one attempt on `route` from `ip` (and for `account`, when
    /// known); `429` with `Retry-After` when over budget.
    pub fn check(&self, route: &str, ip: IpAddr, account: Option<&str>) -> Result<(), ApiError> {
        check_one(&self.per_ip, format!("{route}|ip|{ip}"))?;
        if let Some(a) = account {
            check_one(&self.per_account, format!("{route}|acct|{a}"))?;
        }
        Ok(())
    }

    /// Forgets keys whose budget is full again (bounds memory).
    pub fn prune(&self) {
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
    }
}

fn check_one(limiter: &DefaultKeyedRateLimiter<String>, key: String) -> Result<(), ApiError> {
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        ApiError::rate_limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_ip_and_per_account_independently() {
        let rl = RateLimits::new(3, 2);
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.0.0.2".parse().expect("ip");
        assert!(rl.check("login", ip, Some("a@x.io")).is_ok());
        assert!(rl.check("login", ip, Some("a@x.io")).is_ok());
        let e = rl
            .check("login", other, Some("a@x.io"))
            .expect_err("account budget spent");
        assert_eq!(e.status().as_u16(), 429);
        assert!(
            rl.check("login", ip, Some("b@x.io")).is_ok(),
            "third from ip"
        );
        assert!(
            rl.check("login", ip, Some("c@x.io")).is_err(),
            "ip budget spent"
        );
        assert!(
            rl.check("signup", ip, None).is_ok(),
            "routes have separate budgets"
        );
    }
}
