//! The web application's HTTP surface (SPEC §10): every page path answers
//! the HTML shell with a strict Content-Security-Policy, `nosniff` and
//! `Referrer-Policy: same-origin`; assets are served gzipped to clients that
//! accept it, under a build-hashed prefix cached as immutable, with ETags and
//! `304`; a browser asking for an unknown path gets the shell with `404`
//! while API clients keep getting `problem+json`. (No data is touched: the
//! pages are the same on both databases, so these run on SQLite only.)

use crate::common::{Resp, TestApp};
use axum::body::Body;
use axum::http::{Method, Request};

fn get(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::builder().method(Method::GET).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Body::empty()).unwrap()
}

fn header<'a>(r: &'a Resp, name: &str) -> &'a str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

const PAGES: &[&str] = &[
    "/",
    "/login",
    "/signup",
    "/invites/accept?token=abc",
    "/reset-password?token=abc",
    "/me",
    "/o/acme",
    "/o/acme/b/0190c7e4-0000-7000-8000-000000000000",
    "/o/acme/members",
    "/o/acme/audit",
    "/o/acme/settings",
];

#[tokio::test]
async fn every_page_path_answers_the_shell_with_a_strict_policy() {
    let app = TestApp::sqlite().await;
    for path in PAGES {
        let r = app
            .send(get(path, &[("accept", "text/html")]))
            .await
            .expect(200);
        assert!(
            header(&r, "content-type").starts_with("text/html"),
            "{path}"
        );
        assert!(r.text.contains("<main id=\"main\""), "{path}: {}", r.text);
        let csp = header(&r, "content-security-policy");
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{path}: CSP {csp:?} lacks {part}");
        }
        for loose in ["unsafe-inline", "unsafe-eval", "*", "data: 'unsafe"] {
            assert!(!csp.contains(loose), "{path}: CSP {csp:?} allows {loose}");
        }
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert_eq!(header(&r, "referrer-policy"), "same-origin");
        assert_eq!(header(&r, "cache-control"), "no-cache", "{path}");
        // No inline script or style in the shell: every script is a file.
        assert!(!r.text.contains("style="), "{path}");
        for tag in r.text.split("<script").skip(1) {
            assert!(
                tag.trim_start()
                    .starts_with("type=\"module\" src=\"/assets/"),
                "{tag}"
            );
        }
    }
}

#[tokio::test]
async fn assets_are_immutable_under_their_build_gzipped_and_revalidated() {
    let app = TestApp::sqlite().await;
    let build = orgboard::web::build_id();
    let shell = app.send(get("/login", &[])).await.expect(200);
    let main = format!("/assets/{build}/js/main.js");
    assert!(shell.text.contains(&main), "{}", shell.text);

    let gz = app
        .send(get(&main, &[("accept-encoding", "gzip, br")]))
        .await
        .expect(200);
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    assert_eq!(
        header(&gz, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(header(&gz, "content-type").starts_with("text/javascript"));
    assert_eq!(header(&gz, "vary"), "Accept-Encoding");
    let plain = app.send(get(&main, &[])).await.expect(200);
    assert_eq!(header(&plain, "content-encoding"), "");
    assert_eq!(plain.text, gz.text, "the same file either way");

    let etag = header(&gz, "etag").to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    let again = app
        .send(get(&main, &[("if-none-match", &etag)]))
        .await
        .expect(304);
    assert!(again.text.is_empty());
    app.send(get(&main, &[("if-none-match", "\"other\"")]))
        .await
        .expect(200);

    // Another build's prefix (a tab open across an upgrade): served, but
    // revalidated instead of kept.
    let old = app
        .send(get("/assets/0123456789ab/js/main.js", &[]))
        .await
        .expect(200);
    assert_eq!(header(&old, "cache-control"), "no-cache");
    assert_eq!(old.text, plain.text);

    let css = app
        .send(get(&format!("/assets/{build}/app.css"), &[]))
        .await
        .expect(200);
    assert!(header(&css, "content-type").starts_with("text/css"));
    app.send(get(&format!("/assets/{build}/nope.js"), &[]))
        .await
        .expect_problem(404, "route_not_found");
    app.send(get(&format!("/assets/{build}/../Cargo.toml"), &[]))
        .await
        .expect(404);

    // The shell revalidates too.
    let tag = header(&shell, "etag").to_owned();
    app.send(get("/login", &[("if-none-match", &tag)]))
        .await
        .expect(304);
}

#[tokio::test]
async fn unknown_paths_are_a_page_for_browsers_and_a_problem_for_clients() {
    let app = TestApp::sqlite().await;
    let html = "text/html,application/xhtml+xml,*/*;q=0.8";
    let r = app
        .send(get("/no/such/page", &[("accept", html)]))
        .await
        .expect(404);
    assert!(header(&r, "content-type").starts_with("text/html"));
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert!(header(&r, "content-security-policy").contains("script-src 'self'"));
    app.send(get("/no/such/page", &[]))
        .await
        .expect_problem(404, "route_not_found");
    app.send(get("/api/v1/nothing", &[("accept", html)]))
        .await
        .expect_problem(404, "route_not_found");
}

#[tokio::test]
async fn the_first_page_downloads_less_than_100_kb_compressed() {
    // Everything the login page loads: the shell, the stylesheet, the icon
    // and every module the shell names or preloads (the issue's budget).
    let app = TestApp::sqlite().await;
    let build = orgboard::web::build_id();
    let shell = app.send(get("/login", &[])).await.expect(200);
    let mut total = compressed_len(&app, "/login").await;
    let prefix = format!("/assets/{build}/");
    let mut seen = 0;
    for piece in shell.text.split("\"").filter(|p| p.starts_with(&prefix)) {
        total += compressed_len(&app, piece).await;
        seen += 1;
    }
    assert!(seen >= 8, "the shell names its assets ({seen})");
    assert!(total <= 100 * 1024, "first page: {total} bytes compressed");
}

async fn compressed_len(app: &TestApp, path: &str) -> usize {
    let res = tower::ServiceExt::oneshot(
        app.router.clone(),
        get(path, &[("accept-encoding", "gzip")]),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes()
        .len()
}
