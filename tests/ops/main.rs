//! Operations: `/metrics` (Prometheus), `/readyz` with Redis, auth rate
//! limits shared across nodes through Redis, security headers and request
//! ids.
//!
//! Redis tests need `ORGBOARD_TEST_REDIS_URL` (skipped without it, except
//! under CI); each uses its own random key prefix.

// Its own test binary, sharing the API tests' support: the metrics recorder
// is process-wide, so exact relations between series (a histogram's +Inf
// bucket and its count) only hold without 380 other tests recording.
#![allow(clippy::unwrap_used)]

#[macro_use]
#[path = "../api/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};

use crate::common::{Resp, TestApp};
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use orgboard::config::Config;
use orgboard::db::Backend;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use uuid::Uuid;

backend_tests!(
    metrics_count_requests_by_route_template,
    metrics_sample_the_database_pools,
    metrics_show_the_job_queue_by_status,
    security_headers_on_every_answer,
    client_request_ids_are_kept_only_when_short_tokens,
    api_requests_are_limited_per_user_and_per_organization,
    a_strangers_requests_never_spend_an_organizations_budget,
);

/// `nosniff` everywhere, a strict CSP and no framing on the API and on
/// `/docs`, `no-store` on token answers; `/docs` assets come inflated to a
/// client that did not accept gzip.
async fn security_headers_on_every_answer(app: TestApp) {
    let h = |r: &Resp, name: &str| {
        r.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let health = app
        .call(axum::http::Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    assert_eq!(h(&health, "x-content-type-options"), "nosniff");
    assert_eq!(
        h(&health, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert_eq!(h(&health, "x-frame-options"), "DENY");
    let signup = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(json!({ "email": "h@example.com", "password": crate::common::PASSWORD, "name": "H" })),
        )
        .await
        .expect(201);
    assert_eq!(h(&signup, "cache-control"), "no-store");
    assert_eq!(h(&signup, "x-content-type-options"), "nosniff");
    let refresh = signup.json["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": refresh })),
        )
        .await
        .expect(200);
    assert_eq!(h(&refreshed, "cache-control"), "no-store");
    let problem = app
        .call(axum::http::Method::GET, "/api/v1/me", None, None)
        .await
        .expect(401);
    assert_eq!(h(&problem, "x-content-type-options"), "nosniff");

    let docs = app
        .call(axum::http::Method::GET, "/docs/", None, None)
        .await;
    assert_eq!(docs.status, 200);
    let csp = h(&docs, "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("script-src 'self' 'unsafe"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(h(&docs, "x-content-type-options"), "nosniff");
    // Stored gzipped; inflated for a client without gzip (and then
    // compressed as that client prefers, like any large answer).
    for (accept, encoding) in [
        ("identity", ""),
        ("gzip, br", "gzip"),
        ("gzip;q=0, br", "br"),
        ("", ""),
    ] {
        let mut req = Request::get("/docs/swagger-ui.css");
        if !accept.is_empty() {
            req = req.header("accept-encoding", accept);
        }
        let r = app.send(req.body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            h(&r, "content-encoding"),
            encoding,
            "Accept-Encoding: {accept:?}"
        );
        if encoding.is_empty() {
            assert!(
                r.text.contains(".swagger-ui"),
                "readable CSS for {accept:?}"
            );
        }
    }
}

/// A short token-like `X-Request-Id` is kept (answer, audit row); a long,
/// spaced or repeated one is replaced by a fresh id.
async fn client_request_ids_are_kept_only_when_short_tokens(app: TestApp) {
    let user = app.signup("rid").await;
    let create = |rid: Vec<&str>, name: &str| {
        let mut req = Request::post("/api/v1/orgs")
            .header("authorization", format!("Bearer {}", user.token))
            .header("content-type", "application/json");
        for r in rid {
            req = req.header("x-request-id", r);
        }
        req.body(Body::from(json!({ "name": name }).to_string()))
            .unwrap()
    };
    let echoed = |r: &Resp| r.headers["x-request-id"].to_str().unwrap().to_owned();
    let r = app
        .send(create(vec!["trace-01:abc.DEF_9"], "Kept"))
        .await
        .expect(201);
    assert_eq!(echoed(&r), "trace-01:abc.DEF_9");
    let org: Uuid = r.json["id"].as_str().unwrap().parse().unwrap();
    let audit = app
        .get(&format!("/api/v1/orgs/{org}/audit-log"), &user.token)
        .await
        .expect(200);
    assert_eq!(audit.json["items"][0]["request_id"], "trace-01:abc.DEF_9");

    let long = "x".repeat(60_000);
    for (rid, name) in [
        (vec![long.as_str()], "Long"),
        (vec!["has space"], "Spaced"),
        (vec!["a\"b"], "Quoted"),
        (vec![&long[..65]], "Sixty-five"),
        (vec!["one", "two"], "Twice"),
    ] {
        let r = app.send(create(rid.clone(), name)).await.expect(201);
        let id = echoed(&r);
        assert!(
            Uuid::parse_str(&id).is_ok(),
            "{name}: replaced by a fresh id, got {id:?}"
        );
        let org = r.json["id"].as_str().unwrap();
        let audit = app
            .get(&format!("/api/v1/orgs/{org}/audit-log"), &user.token)
            .await
            .expect(200);
        assert_eq!(audit.json["items"][0]["request_id"], id.as_str(), "{name}");
    }
}

/// Declares each listed `async fn(Backend, String)` (the second argument is
/// the Redis URL) as a test on both backends, skipped without Redis.
macro_rules! redis_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(orgboard_no_redis, ignore = "needs Redis: set ORGBOARD_TEST_REDIS_URL")]
                async fn sqlite() {
                    let url = $crate::common::redis_url();
                    super::$name(orgboard::db::Backend::Sqlite, url).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    any(orgboard_no_postgres, orgboard_no_redis),
                    ignore = "needs PostgreSQL and Redis: set ORGBOARD_TEST_POSTGRES_URL and ORGBOARD_TEST_REDIS_URL"
                )]
                async fn postgres() {
                    let url = $crate::common::redis_url();
                    super::$name(orgboard::db::Backend::Postgres, url).await;
                }
            }
        )*
    };
}

redis_tests!(
    readyz_fails_when_redis_goes_away,
    login_limit_is_shared_by_every_node,
    rate_limits_fall_back_to_the_node_when_redis_fails,
    api_limits_are_shared_by_every_node,
);

/// A GET with a bearer token through any router.
async fn get_as(router: &Router, path: &str, token: &str) -> Resp {
    send(
        router,
        Request::get(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

/// Every authenticated API request counts against its user's budget and,
/// on an organization's routes, the organization's: the answers say what
/// is left (`RateLimit-Policy`, `RateLimit`), and a spent budget is `429`
/// with `Retry-After`, doing nothing. Another user or organization is not
/// affected; unauthenticated requests and the auth routes are not counted.
async fn api_requests_are_limited_per_user_and_per_organization(app: TestApp) {
    let app = TestApp::with(app.backend, |c| {
        c.api_rate_limit_per_user = 5;
        c.api_rate_limit_per_org = 6;
    })
    .await;
    // Set-up: the sign-up helper reads `GET /orgs` (one request of the
    // user's), each invite is one of ada's in the organization, each
    // acceptance one of the invitee's outside it (budgets refill at 1 per
    // 12 s and 10 s: the test takes well under that).
    let ada = app.signup("ada").await;
    let org = ada.personal_org;
    let bob = app.member(org, &ada, "member").await;
    let cy = app.member(org, &ada, "member").await;
    // ada 3 of 5, the organization 2 of 6, bob and cy 2 of 5 each.
    let boards = format!("/api/v1/orgs/{org}/boards");
    let r = get_as(&app.router, &boards, &ada.token).await.expect(200);
    assert_eq!(
        r.headers["ratelimit-policy"],
        "\"user\";q=5;w=60, \"org\";q=6;w=60"
    );
    let left = r.headers["ratelimit"].to_str().unwrap().to_owned();
    assert!(left.starts_with("\"user\";r=1;t="), "{left}");
    assert!(left.contains(", \"org\";r=3;t="), "{left}");
    // A route of no organization counts against the user only.
    let me = get_as(&app.router, "/api/v1/me", &ada.token)
        .await
        .expect(200);
    assert_eq!(me.headers["ratelimit-policy"], "\"user\";q=5;w=60");
    let left = me.headers["ratelimit"].to_str().unwrap().to_owned();
    assert!(left.starts_with("\"user\";r=0;t="), "{left}");
    // Spent: 429 with Retry-After, and nothing done.
    let r = send(
        &app.router,
        Request::post(&boards)
            .header("authorization", format!("Bearer {}", ada.token))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"name":"never"}"#))
            .unwrap(),
    )
    .await
    .expect_problem(429, "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "Retry-After {retry}");
    assert!(r.headers.contains_key("ratelimit"));
    // Without a valid token nothing is counted (the answer is 401).
    let r = get_as(&app.router, &boards, "not-a-token")
        .await
        .expect(401);
    assert!(!r.headers.contains_key("ratelimit"));
    // The organization's budget is its members' together: 3 left.
    let r = get_as(&app.router, &boards, &bob.token).await.expect(200);
    let b = r.json["items"].as_array().unwrap().len();
    assert_eq!(b, 0, "the refused create did nothing");
    assert!(
        r.headers["ratelimit"]
            .to_str()
            .unwrap()
            .contains("\"org\";r=2;")
    );
    get_as(&app.router, &boards, &bob.token).await.expect(200);
    get_as(&app.router, &boards, &cy.token).await.expect(200);
    get_as(&app.router, &boards, &cy.token)
        .await
        .expect_problem(429, "rate_limited");
    // cy's own budget is not spent: a route of no organization answers.
    get_as(&app.router, "/api/v1/me", &cy.token)
        .await
        .expect(200);
    // Another organization has its own budget.
    let dan = app.signup("dan").await;
    get_as(
        &app.router,
        &format!("/api/v1/orgs/{}/boards", dan.personal_org),
        &dan.token,
    )
    .await
    .expect(200);
}

/// An organization's budget counts its members' requests only: a signed-in
/// stranger naming it (by id or slug) gets `404` and spends nothing of it,
/// and its id and slug share one budget.
async fn a_strangers_requests_never_spend_an_organizations_budget(app: TestApp) {
    let app = TestApp::with(app.backend, |c| {
        c.api_rate_limit_per_user = 1000;
        c.api_rate_limit_per_org = 4;
    })
    .await;
    let ada = app.signup("ada").await;
    let org = ada.personal_org;
    let r = get_as(&app.router, &format!("/api/v1/orgs/{org}"), &ada.token)
        .await
        .expect(200);
    let slug = r.json["slug"].as_str().unwrap().to_owned();
    let org_left = |r: &Resp| {
        let v = r.headers["ratelimit"].to_str().unwrap().to_owned();
        v.split(", ")
            .find_map(|p| p.strip_prefix("\"org\";r="))
            .map(|p| p.split(';').next().unwrap().parse::<u64>().unwrap())
    };
    assert_eq!(org_left(&r), Some(3));
    let eve = app.signup("eve").await;
    for path in [
        format!("/api/v1/orgs/{org}/boards"),
        format!("/api/v1/orgs/{slug}/boards"),
        format!("/api/v1/orgs/{org}"),
    ] {
        for _ in 0..3 {
            let r = get_as(&app.router, &path, &eve.token)
                .await
                .expect_problem(404, "not_found");
            assert_eq!(r.headers["ratelimit-policy"], "\"user\";q=1000;w=60");
            assert_eq!(org_left(&r), None, "{path}");
        }
    }
    // ada's first request by slug is counted in the same budget as by id.
    let by_slug = format!("/api/v1/orgs/{slug}/boards");
    let r = get_as(&app.router, &by_slug, &ada.token).await.expect(200);
    assert_eq!(org_left(&r), Some(2), "{:?}", r.headers);
    let by_id = format!("/api/v1/orgs/{org}/boards");
    let r = get_as(&app.router, &by_id, &ada.token).await.expect(200);
    assert_eq!(org_left(&r), Some(1));
    let r = get_as(&app.router, &by_slug, &ada.token).await.expect(200);
    assert_eq!(org_left(&r), Some(0));
    let r = get_as(&app.router, &by_id, &ada.token)
        .await
        .expect_problem(429, "rate_limited");
    assert!(
        r.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"org\";r=0;t="),
        "{:?}",
        r.headers
    );
    // The stranger's own organization is untouched.
    get_as(
        &app.router,
        &format!("/api/v1/orgs/{}/boards", eve.personal_org),
        &eve.token,
    )
    .await
    .expect(200);
}

/// Two nodes on one Redis share the API budgets.
async fn api_limits_are_shared_by_every_node(backend: Backend, redis: String) {
    let app = TestApp::with(backend, |c| {
        with_redis(redis, random_prefix())(c);
        c.api_rate_limit_per_user = 3;
    })
    .await;
    let b = second_node(&app).await;
    // The sign-up helper's `GET /orgs` is the first of the 3.
    let u = app.signup("shared").await;
    get_as(&app.router, "/api/v1/me", &u.token)
        .await
        .expect(200);
    get_as(&b, "/api/v1/me", &u.token).await.expect(200);
    get_as(&app.router, "/api/v1/me", &u.token)
        .await
        .expect_problem(429, "rate_limited");
    let r = get_as(&b, "/api/v1/me", &u.token)
        .await
        .expect_problem(429, "rate_limited");
    assert!(
        r.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"user\";r=0;t="),
        "{:?}",
        r.headers
    );
}

// ---------------------------------------------------------------------------
// Helpers

/// Sends a request through any router (a second node has no `TestApp`).
async fn send(router: &Router, req: Request<Body>) -> Resp {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        json,
        text,
    }
}

/// `GET /metrics` without credentials; asserts 200 and the text format.
async fn scrape(router: &Router) -> String {
    let req = Request::get("/metrics").body(Body::empty()).unwrap();
    let r = send(router, req).await.expect(200);
    assert_eq!(
        r.content_type(),
        "text/plain; version=0.0.4; charset=utf-8",
        "{}",
        r.text
    );
    r.text
}

/// Sum of every sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().unwrap())
        })
        .sum()
}

/// Whether any sample line of `name` with these labels exists.
fn has_series(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    text.lines().any(|l| {
        l.starts_with(&format!("{name}{{"))
            && labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
    })
}

/// A login attempt from `ip` through `router`.
async fn login(router: &Router, ip: &str, email: &str, password: &str) -> Resp {
    let req = Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .header("x-forwarded-for", ip)
        .body(Body::from(
            serde_json::to_vec(&json!({ "email": email, "password": password })).unwrap(),
        ))
        .unwrap();
    send(router, req).await
}

/// Settings for a node on `redis_url` under a fresh key prefix.
fn with_redis(url: String, prefix: String) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.redis_url = Some(url);
        c.redis_prefix = prefix;
    }
}

fn random_prefix() -> String {
    format!("orgboard-test-{}", Uuid::now_v7().simple())
}

/// A second node: another process's state (own pools, own in-process
/// limiters, own Redis connection) on the same database, Redis and prefix.
async fn second_node(app: &TestApp) -> Router {
    let state = orgboard::server::prepare(app.state.config.clone())
        .await
        .expect("second node starts");
    orgboard::http::router(state)
}

/// A TCP relay in front of Redis that the test can cut, so a Redis that
/// answered at start-up goes away later (what `/readyz` must notice).
struct RedisRelay {
    /// `redis://…` through the relay (credentials and database kept).
    url: String,
    stop: CancellationToken,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl RedisRelay {
    async fn start(redis_url: &str) -> Self {
        let target_url = url::Url::parse(redis_url).unwrap();
        let target = format!(
            "{}:{}",
            target_url.host_str().unwrap(),
            target_url.port().unwrap_or(6379)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut url = target_url.clone();
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(listener.local_addr().unwrap().port()))
            .unwrap();
        let stop = CancellationToken::new();
        let tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (stop2, tasks2) = (stop.clone(), tasks.clone());
        let accept = tokio::spawn(async move {
            loop {
                let mut client = tokio::select! {
                    _ = stop2.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((c, _)) => c,
                        Err(_) => continue,
                    },
                };
                let stop3 = stop2.clone();
                let target = target.clone();
                let relay = tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = stop3.cancelled() => {},
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {},
                    }
                });
                tasks2.lock().unwrap().push(relay);
            }
            // The listener drops here: the port now refuses connections.
        });
        tasks.lock().unwrap().push(accept);
        Self {
            url: url.to_string(),
            stop,
            tasks,
        }
    }

    /// Closes the port and every relayed connection.
    async fn cut(&self) {
        self.stop.cancel();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock().unwrap());
        for t in tasks {
            let _ = t.await;
        }
    }
}

// ---------------------------------------------------------------------------
// /metrics

/// Requests are counted and timed under their route template and status;
/// unknown paths under `unmatched`; `/metrics` itself is not counted and
/// needs no credentials.
async fn metrics_count_requests_by_route_template(app: TestApp) {
    let u = app.signup("metrics").await;
    let org = u.personal_org;
    let board = app
        .post(
            &format!("/api/v1/orgs/{org}/boards"),
            &u.token,
            json!({ "name": "Ops" }),
        )
        .await
        .expect(201);
    let board = board.json["id"].as_str().unwrap().to_owned();
    let list = app
        .post(
            &format!("/api/v1/orgs/{org}/boards/{board}/lists"),
            &u.token,
            json!({ "name": "Todo" }),
        )
        .await
        .expect(201);
    let list = list.json["id"].as_str().unwrap().to_owned();
    let task = app
        .post(
            &format!("/api/v1/orgs/{org}/lists/{list}/tasks"),
            &u.token,
            json!({ "title": "Count me" }),
        )
        .await
        .expect(201);
    let task = task.json["id"].as_str().unwrap().to_owned();

    const TASK: &str = "/api/v1/orgs/{org}/tasks/{task}";
    let ok = [("route", TASK), ("status", "200"), ("method", "GET")];
    let missing = [("route", TASK), ("status", "404"), ("method", "GET")];
    let unmatched = [("route", "unmatched"), ("status", "404")];
    let before = scrape(&app.router).await;

    app.get(&format!("/api/v1/orgs/{org}/tasks/{task}"), &u.token)
        .await
        .expect(200);
    app.get(&format!("/api/v1/orgs/{org}/tasks/{task}"), &u.token)
        .await
        .expect(200);
    app.get(
        &format!("/api/v1/orgs/{org}/tasks/{}", Uuid::now_v7()),
        &u.token,
    )
    .await
    .expect(404);
    app.get("/no/such/path", &u.token).await.expect(404);
    let after = scrape(&app.router).await;

    // The metrics are process-wide and other tests run alongside: compare
    // before and after, at least our own requests must have been added.
    let grew = |name: &str, labels: &[(&str, &str)]| {
        sample(&after, name, labels) - sample(&before, name, labels)
    };
    assert!(grew("orgboard_http_requests_total", &ok) >= 2.0, "{after}");
    assert!(
        grew("orgboard_http_requests_total", &missing) >= 1.0,
        "{after}"
    );
    assert!(
        grew("orgboard_http_requests_total", &unmatched) >= 1.0,
        "{after}"
    );
    assert!(
        grew("orgboard_http_request_duration_seconds_count", &ok) >= 2.0,
        "{after}"
    );
    assert!(
        grew("orgboard_http_request_duration_seconds_sum", &ok) > 0.0,
        "{after}"
    );
    // The build and the process, for dashboards and alerts.
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&after, "orgboard_build_info", &[("version", version)]),
        1.0,
        "{after}"
    );
    assert!(
        sample(&after, "process_resident_memory_bytes", &[]) > 1e6,
        "{after}"
    );
    assert!(sample(&after, "process_open_fds", &[]) >= 3.0, "{after}");
    // A counter of whole seconds: present, 0 in a young test process.
    assert!(after.contains("\nprocess_cpu_seconds_total "), "{after}");

    // Never the raw path: no id, no unknown path in any label.
    for raw in [
        task.as_str(),
        board.as_str(),
        &org.to_string(),
        "/no/such/path",
    ] {
        assert!(!after.contains(raw), "{raw} leaked into a label:\n{after}");
    }
    // Histogram buckets from 0.5 ms to 10 s, cumulative up to +Inf.
    let bucket = "orgboard_http_request_duration_seconds_bucket";
    for le in ["0.0005", "0.001", "0.01", "0.1", "1", "10", "+Inf"] {
        assert!(
            has_series(&after, bucket, &[("route", TASK), ("le", le)]),
            "no {le} bucket:\n{after}"
        );
    }
    let inf = sample(
        &after,
        bucket,
        &[("route", TASK), ("status", "200"), ("le", "+Inf")],
    );
    let ten = sample(
        &after,
        bucket,
        &[("route", TASK), ("status", "200"), ("le", "10")],
    );
    let tiny = sample(
        &after,
        bucket,
        &[("route", TASK), ("status", "200"), ("le", "0.0005")],
    );
    assert!(
        tiny <= ten && ten <= inf,
        "buckets not cumulative:\n{after}"
    );
    assert_eq!(
        inf,
        sample(&after, "orgboard_http_request_duration_seconds_count", &ok),
        "{after}"
    );
    // Scraping is not a request of the product.
    assert!(
        !has_series(
            &after,
            "orgboard_http_requests_total",
            &[("route", "/metrics")]
        ),
        "{after}"
    );
    assert!(after.contains("# TYPE orgboard_http_requests_total counter"));
    assert!(after.contains("# TYPE orgboard_http_request_duration_seconds histogram"));
    // What other modules emit is there from the start.
    for name in [
        "orgboard_event_streams_open",
        "orgboard_events_published_total",
        "orgboard_board_cache_hits_total",
        "orgboard_board_cache_misses_total",
        "orgboard_job_failures_total",
        "orgboard_jobs_dead_total",
        "orgboard_jobs_completed_total",
    ] {
        assert!(
            after.contains(&format!("# TYPE {name} ")),
            "{name}:\n{after}"
        );
    }
    // The library helper renders the same registry.
    assert!(orgboard::metrics::render().contains("orgboard_http_requests_total{"));
}

/// Pool gauges describe this node's pools, sampled at scrape time (after
/// a sign-up, a write unit, and a read of the caller, a read unit: the
/// units' pool on PostgreSQL and the read pool on SQLite open connections
/// only when used).
async fn metrics_sample_the_database_pools(app: TestApp) {
    let u = app.signup("pooled").await;
    app.get("/api/v1/me", &u.token).await.expect(200);
    let text = scrape(&app.router).await;
    let max = app.state.config.storage.db_max_connections;
    let pools: &[(&str, u32)] = match app.backend {
        Backend::Postgres => &[("postgres", max), ("postgres_units", max)],
        Backend::Sqlite => &[(
            "sqlite_reader",
            orgboard::db::readers::pool_size(max as usize) as u32,
        )],
    };
    for (pool, max) in pools {
        let labels = [("pool", *pool)];
        let size = sample(&text, "orgboard_db_pool_connections", &labels);
        let idle = sample(&text, "orgboard_db_pool_idle_connections", &labels);
        assert!(
            has_series(&text, "orgboard_db_pool_connections", &labels),
            "{pool}:\n{text}"
        );
        assert_eq!(
            sample(&text, "orgboard_db_pool_max_connections", &labels),
            f64::from(*max),
            "{pool}:\n{text}"
        );
        assert!(size >= 1.0 && size <= f64::from(*max), "{pool}: {size}");
        assert!(idle <= size, "{pool}: {idle} idle of {size}");
    }
}

/// The queue depth gauge follows the jobs table: an invite enqueues its
/// email (workers are off in tests, so it stays queued), and a job moved to
/// `dead` shows there.
async fn metrics_show_the_job_queue_by_status(app: TestApp) {
    let depth =
        |text: &str, status: &str| sample(text, "orgboard_job_queue_depth", &[("status", status)]);
    let owner = app.signup("jobs").await;
    let before = scrape(&app.router).await;
    for status in ["queued", "running", "dead"] {
        assert!(
            has_series(&before, "orgboard_job_queue_depth", &[("status", status)]),
            "{status}:\n{before}"
        );
    }
    let queued = depth(&before, "queued");

    app.post(
        &format!("/api/v1/orgs/{}/invites", owner.personal_org),
        &owner.token,
        json!({ "email": format!("new-{}@example.com", Uuid::now_v7().simple()), "role": "member" }),
    )
    .await
    .expect(201);
    let after = scrape(&app.router).await;
    assert_eq!(depth(&after, "queued"), queued + 1.0, "{after}");

    // Kill one job by hand: the gauge moves it from queued to dead.
    let mut tx = app.state.db.system().await.unwrap();
    let moved = orgboard::on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE jobs SET status = 'dead' WHERE id = (SELECT id FROM jobs WHERE status = 'queued' LIMIT 1)"
    )
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(moved, 1);
    let dead = scrape(&app.router).await;
    assert_eq!(depth(&dead, "queued"), queued, "{dead}");
    assert_eq!(depth(&dead, "dead"), depth(&after, "dead") + 1.0, "{dead}");
}

// ---------------------------------------------------------------------------
// /readyz and Redis

/// `/readyz` answers 200 while Redis answers and 503 (problem+json) once
/// the Redis the node started with goes away; a Redis that is down at
/// start-up stops the start-up instead.
async fn readyz_fails_when_redis_goes_away(backend: Backend, redis: String) {
    // Down at start-up: `prepare` refuses to start.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path().to_path_buf(), None);
    config.redis_url = Some(format!("redis://127.0.0.1:{closed}"));
    let err = orgboard::server::prepare(config)
        .await
        .err()
        .expect("start-up must fail without Redis");
    assert!(format!("{err:#}").contains("Redis"), "{err:#}");

    // Up at start-up, then gone.
    let relay = RedisRelay::start(&redis).await;
    let app = TestApp::with(backend, with_redis(relay.url.clone(), random_prefix())).await;
    let ready = |app: &TestApp| {
        let router = app.router.clone();
        async move {
            send(
                &router,
                Request::get("/readyz").body(Body::empty()).unwrap(),
            )
            .await
        }
    };
    let r = ready(&app).await.expect(200);
    assert_eq!(r.json["status"], "ok");

    relay.cut().await;
    let r = ready(&app).await;
    let r = r.expect_problem(503, "unavailable");
    assert!(
        r.json["detail"].as_str().unwrap().contains("Redis"),
        "{}",
        r.text
    );
    assert!(r.headers.contains_key("retry-after"));
    // Liveness does not depend on Redis.
    send(
        &app.router,
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await
    .expect(200);
}

/// One account's login budget is shared by two nodes on the same Redis:
/// spent through node A, node B refuses with 429 and `Retry-After`. Without
/// Redis the same two nodes would each have their own budget (control).
async fn login_limit_is_shared_by_every_node(backend: Backend, redis: String) {
    const BUDGET: u32 = 3;
    let app = TestApp::with(backend, |c| {
        with_redis(redis, random_prefix())(c);
        c.rate_limit_per_account = BUDGET;
    })
    .await;
    assert!(app.state.limits.is_shared());
    let a = app.router.clone();
    let b = second_node(&app).await;
    let user = app.signup("limited").await;
    let other = app.signup("bystander").await;

    for i in 0..BUDGET {
        // A different address each time: only the account budget is at play.
        login(&a, &format!("10.1.0.{i}"), &user.email, "wrong password")
            .await
            .expect_problem(401, "invalid_credentials");
    }
    let r = login(&b, "10.2.0.1", &user.email, &user.password)
        .await
        .expect_problem(429, "rate_limited");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1..=60 / u64::from(BUDGET)).contains(&retry),
        "Retry-After {retry}"
    );
    // The account is spent, not the node: others still sign in through B,
    // and the address budget of B's client was not touched by A.
    login(&b, "10.2.0.1", &other.email, &other.password)
        .await
        .expect(200);
    // And A agrees.
    login(&a, "10.1.0.99", &user.email, &user.password)
        .await
        .expect_problem(429, "rate_limited");

    // Control: without Redis each node counts alone, so B lets it through.
    let alone = TestApp::with(backend, |c| c.rate_limit_per_account = BUDGET).await;
    assert!(!alone.state.limits.is_shared());
    let b_alone = second_node(&alone).await;
    let lonely = alone.signup("lonely").await;
    for _ in 0..BUDGET {
        login(&alone.router, "10.3.0.1", &lonely.email, "wrong password")
            .await
            .expect(401);
    }
    login(&alone.router, "10.3.0.1", &lonely.email, "wrong password")
        .await
        .expect(429);
    login(&b_alone, "10.3.0.1", &lonely.email, &lonely.password)
        .await
        .expect(200);
}

/// When Redis stops answering, checks fall back to the node's own budgets:
/// no error reaches the client, and the limit still holds.
async fn rate_limits_fall_back_to_the_node_when_redis_fails(backend: Backend, redis: String) {
    const BUDGET: u32 = 2;
    let relay = RedisRelay::start(&redis).await;
    let app = TestApp::with(backend, |c| {
        with_redis(relay.url.clone(), random_prefix())(c);
        c.rate_limit_per_account = BUDGET;
    })
    .await;
    let user = app.signup("fallback").await;
    for _ in 0..BUDGET {
        login(&app.router, "10.4.0.1", &user.email, "wrong password")
            .await
            .expect(401);
    }
    login(&app.router, "10.4.0.1", &user.email, "wrong password")
        .await
        .expect_problem(429, "rate_limited");

    relay.cut().await;
    // The shared budget is out of reach; this node's own one starts full.
    for _ in 0..BUDGET {
        login(&app.router, "10.4.0.1", &user.email, "wrong password")
            .await
            .expect_problem(401, "invalid_credentials");
    }
    let r = login(&app.router, "10.4.0.1", &user.email, &user.password)
        .await
        .expect_problem(429, "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
}
