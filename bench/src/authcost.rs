//! The per-request price of authentication and of the membership check,
//! measured on their own (one client, in process): the issue's "auth +
//! membership per request" figure. Token check = `Keys::verify_access` on a
//! real access token (HS256 JWT, what the `AuthUser` extractor runs). The
//! membership check = the statement `OrgRequest::read`/`write` run at the
//! start of every tenant transaction (`orgs::context::membership_sql`),
//! timed alone inside an open read transaction of the caller's scope, as in
//! the server (on PostgreSQL that is one round trip; the transaction's own
//! `BEGIN`, which carries the role and user settings, is not counted).

use std::time::Instant;

use hdrhistogram::Histogram;
use orgboard::auth::tokens::Keys;
use orgboard::db::{Db, Scope};
use orgboard::on_tx;
use orgboard::orgs::context::membership_sql;
use serde::Serialize;
use uuid::Uuid;

/// Microseconds per check, p50 and p99.
#[derive(Debug, Clone, Serialize)]
pub struct AuthCost {
    /// Checks timed of each kind.
    pub iterations: u64,
    /// Token check, p50 µs.
    pub verify_p50_us: f64,
    /// Token check, p99 µs.
    pub verify_p99_us: f64,
    /// Membership statement, p50 µs.
    pub membership_p50_us: f64,
    /// Membership statement, p99 µs.
    pub membership_p99_us: f64,
}

impl AuthCost {
    /// Token check + membership statement at the median, µs.
    pub fn total_p50_us(&self) -> f64 {
        self.verify_p50_us + self.membership_p50_us
    }
}

fn hist() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 60_000_000_000, 3)?)
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Times `iterations` token checks and membership statements for `user` in
/// `org`.
pub async fn measure(
    db: &Db,
    keys: &Keys,
    org: Uuid,
    user: Uuid,
    iterations: u64,
) -> anyhow::Result<AuthCost> {
    let token = keys.issue_access(user)?;
    let mut verify = hist()?;
    for _ in 0..iterations {
        let t = Instant::now();
        let who = keys.verify_access(&token);
        verify.record(t.elapsed().as_nanos().max(1) as u64)?;
        anyhow::ensure!(who == Some(user), "the token did not verify");
    }
    let sql = membership_sql(db.backend(), "o.id");
    let mut member = hist()?;
    for _ in 0..iterations {
        let mut tx = db.read(Scope::user(user)).await?;
        let t = Instant::now();
        let found = on_tx!(&mut tx, |c| sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org)
            .bind(user)
            .fetch_optional(c)
            .await
            .map(|row| row.is_some()))?;
        member.record(t.elapsed().as_nanos().max(1) as u64)?;
        tx.commit().await?;
        anyhow::ensure!(found, "the member was not found");
    }
    Ok(AuthCost {
        iterations,
        verify_p50_us: us(&verify, 0.5),
        verify_p99_us: us(&verify, 0.99),
        membership_p50_us: us(&member, 0.5),
        membership_p99_us: us(&member, 0.99),
    })
}
