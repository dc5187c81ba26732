//! The middleware of the API limits ([`super::limits`]): verifies the
//! bearer token once (the handler's [`crate::auth::user::AuthUser`] takes
//! the caller from here), counts the request against its budgets, refuses
//! it when one is spent, adds the `RateLimit` headers, and records
//! permission refusals in the security log. Apart from the budgets so
//! that the application state, which holds them, does not depend on it.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::limits::{Budget, SPENT};
use crate::error::ApiError;
use crate::state::AppState;

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
    req.extensions_mut().insert(crate::auth::user::AuthUser {
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
    let confirmed = req
        .extensions()
        .get::<crate::http::extract::RequestOrg>()
        .cloned();
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
}
