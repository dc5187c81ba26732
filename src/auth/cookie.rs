//! Browser sessions (SPEC §10): the refresh token lives only in an
//! `HttpOnly`, `SameSite=Strict` cookie scoped to the auth routes, never in
//! what JavaScript can read.
//!
//! A client opts in by sending `X-Orgboard-Session: cookie` on sign-up,
//! login, refresh and logout. Then the answer sets the cookie instead of
//! carrying `refresh_token`, and refresh/logout read the token from the
//! cookie. Only these two routes read a cookie, and only with that header:
//! a cross-site form or link cannot set a custom header, so it cannot use the
//! cookie. (Without the header the token travels in the JSON body, as for
//! scripts and integrations, and a cookie is ignored.)
//!
//! Two tabs may refresh at once, and a navigation may cut a refresh short
//! after the server rotated the token but before the browser stored the new
//! cookie: a refresh token issued to a cookie session and presented again by
//! a cookie session within [`GRACE_SECS`] of its rotation gets a fresh pair
//! of the same family. After that — and always for tokens sent in a JSON
//! body — reuse revokes the whole family.

use axum::http::{HeaderMap, HeaderValue, header};

/// The request header that asks for a cookie session.
pub const SESSION_HEADER: &str = "x-orgboard-session";

/// The cookie holding a browser's refresh token.
pub const REFRESH_COOKIE: &str = "orgboard_refresh";

/// The only path the browser sends the cookie to.
pub const COOKIE_PATH: &str = "/api/v1/auth";

/// How long after its rotation a cookie session's refresh token may be
/// presented again without revoking its family.
pub const GRACE_SECS: i64 = 30;

/// Whether the request asks for a cookie session (`X-Orgboard-Session:
/// cookie`).
pub fn requested(headers: &HeaderMap) -> bool {
    headers
        .get(SESSION_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cookie"))
}

/// The refresh token in the request's cookies, if any.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == REFRESH_COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for `token`, kept for `max_age_secs`; `Secure` when the
/// server's public URL is https.
pub fn set(token: &str, max_age_secs: u64, secure: bool) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={token}; Path={COOKIE_PATH}; Max-Age={max_age_secs}; HttpOnly; \
         SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    ))
    .ok()
}

/// `Set-Cookie` that removes the cookie.
pub fn clear(secure: bool) -> Option<HeaderValue> {
    set("", 0, secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refresh_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; orgboard_refresh=obr_x; b=2"),
        );
        assert_eq!(token(&h).as_deref(), Some("obr_x"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("orgboard_refreshx=1"),
        );
        assert_eq!(token(&h), None);
        assert!(!requested(&h));
        h.insert(SESSION_HEADER, HeaderValue::from_static("Cookie"));
        assert!(requested(&h));
        let set = set("obr_y", 60, true).expect("a header value");
        assert_eq!(
            set.to_str().ok(),
            Some(
                "orgboard_refresh=obr_y; Path=/api/v1/auth; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
            )
        );
    }
}
