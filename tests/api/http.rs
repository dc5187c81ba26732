//! The HTTP surface: `problem+json` for every kind of bad input, request ids,
//! health checks, the OpenAPI document and `/docs`, rate limits, and the
//! generated secret surviving a restart.

use crate::common::{PASSWORD, Resp, TestApp};
use axum::body::Body;
use axum::http::{Method, Request};
use orgboard::config::Config;
use orgboard::db::Backend;
use serde_json::{Value, json};

/// Texts of axum's default rejections: none may ever reach a client.
const AXUM_REJECTION_TEXTS: &[&str] = &[
    "Failed to deserialize",
    "Failed to parse the request body",
    "Failed to buffer the body",
    "Expected request with `Content-Type",
    "Invalid URL",
    "Wrong number of path arguments",
    "No paths parameters found",
    "Failed to parse query string",
    "Missing request extension",
    "length limit exceeded",
];

/// Asserts an error answered as `problem+json` with this status and code,
/// with none of axum's rejection texts.
#[track_caller]
fn problem(r: Resp, status: u16, code: &str) -> Resp {
    let r = r.expect_problem(status, code);
    assert_clean_error(&r);
    r
}

/// Every error (≥ 400) is `problem+json` and free of axum's texts; nothing is 5xx.
#[track_caller]
fn assert_clean_error(r: &Resp) {
    assert!(
        r.status.as_u16() < 500,
        "server error {}: {}",
        r.status,
        r.text
    );
    if r.status.as_u16() >= 400 {
        assert_eq!(
            r.content_type(),
            "application/problem+json",
            "status {}: {}",
            r.status,
            r.text
        );
        assert_eq!(r.json["status"], r.status.as_u16(), "{}", r.text);
        assert!(r.json["code"].is_string(), "{}", r.text);
        assert!(
            r.json["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:orgboard:problem:")),
            "{}",
            r.text
        );
    }
    for text in AXUM_REJECTION_TEXTS {
        assert!(
            !r.text.contains(text),
            "axum's rejection text {text:?} leaked: {}",
            r.text
        );
    }
}

/// A request with a raw body and optional content type and bearer token.
fn raw(
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.body(body.into()).unwrap()
}

fn json_req(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    raw(method, path, token, Some("application/json"), body)
}

fn header<'a>(r: &'a Resp, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

fn signup_body(email: &str, password: &str, name: &str) -> Value {
    json!({ "email": email, "password": password, "name": name })
}

// ---------------------------------------------------------------------------
// 1. problem+json for bad input
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_json_is_400_malformed_json() {
    let app = TestApp::sqlite().await;
    for body in [
        "{\"email\":",
        "{email: 1}",
        "not json at all",
        "{\"email\": \"a@b.io\", \"password\": \"correct horse battery\", \"name\": \"A\"} trailing",
        "",
    ] {
        let r = app
            .send(json_req(Method::POST, "/api/v1/auth/signup", None, body))
            .await;
        let r = problem(r, 400, "malformed_json");
        assert!(!r.json["detail"].as_str().unwrap().is_empty());
    }
    // Invalid UTF-8 is not JSON either, and never a 5xx.
    let r = app
        .send(json_req(
            Method::POST,
            "/api/v1/auth/login",
            None,
            vec![b'{', b'"', 0xff, 0xfe, b'"', b'}'],
        ))
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_clean_error(&r);
}

#[tokio::test]
async fn wrong_json_type_names_the_field() {
    let app = TestApp::sqlite().await;
    let r = app
        .send(json_req(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            r#"{"email": 1, "password": "correct horse battery", "name": "A"}"#,
        ))
        .await;
    let r = problem(r, 422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "email", "{}", r.text);
    let msg = r.json["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("expected a string"), "{msg}");
    assert!(
        !msg.contains(" at line "),
        "serde positions are dropped: {msg}"
    );

    // A nested wrong type is named too (login: password as an object).
    let r = app
        .send(json_req(
            Method::POST,
            "/api/v1/auth/login",
            None,
            r#"{"email": "a@b.io", "password": {"x": 1}}"#,
        ))
        .await;
    let r = problem(r, 422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "password", "{}", r.text);

    // A whole body of the wrong shape.
    let r = app
        .send(json_req(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            "[1, 2]",
        ))
        .await;
    problem(r, 422, "validation_failed");
}

#[tokio::test]
async fn missing_field_is_422() {
    let app = TestApp::sqlite().await;
    let r = app
        .send(json_req(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            r#"{"email": "a@b.io", "name": "A"}"#,
        ))
        .await;
    let r = problem(r, 422, "validation_failed");
    let errors = r.json["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{}", r.text);
    assert!(
        errors[0]["message"].as_str().unwrap().contains("password"),
        "the missing field is named: {}",
        r.text
    );
    let r = app
        .send(json_req(Method::POST, "/api/v1/auth/login", None, "{}"))
        .await;
    problem(r, 422, "validation_failed");
}

#[tokio::test]
async fn body_without_json_content_type_is_415() {
    let app = TestApp::sqlite().await;
    let body = signup_body("a@b.io", PASSWORD, "A").to_string();
    let r = app
        .send(raw(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            None,
            body.clone(),
        ))
        .await;
    problem(r, 415, "unsupported_media_type");
    let r = app
        .send(raw(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some("text/plain"),
            body,
        ))
        .await;
    problem(r, 415, "unsupported_media_type");
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let app = TestApp::sqlite_with(|c| c.max_body_bytes = 2048).await;
    let big = signup_body("a@b.io", PASSWORD, &"x".repeat(4096)).to_string();
    assert!(big.len() > 2048);
    let r = app
        .send(json_req(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            big.clone(),
        ))
        .await;
    problem(r, 413, "payload_too_large");
    // Also with a huge declared length on another route.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .header("content-length", "10000000")
        .body(Body::from("x".repeat(3000)))
        .unwrap();
    problem(app.send(req).await, 413, "payload_too_large");
    // A body under the limit is still accepted.
    let small = signup_body("small@b.io", PASSWORD, "Small").to_string();
    app.send(json_req(Method::POST, "/api/v1/auth/signup", None, small))
        .await
        .expect(201);
}

#[tokio::test]
async fn unknown_route_is_404_problem() {
    let app = TestApp::sqlite().await;
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v2/orgs",
        "/api/v1/orgs/x/y/z/w",
    ] {
        let r = app.call(Method::GET, path, None, None).await;
        problem(r, 404, "route_not_found");
    }
    let r = app
        .call(Method::POST, "/api/v1/nope", None, Some(json!({})))
        .await;
    problem(r, 404, "route_not_found");
}

#[tokio::test]
async fn wrong_method_is_405_problem() {
    let app = TestApp::sqlite().await;
    for (method, path) in [
        (Method::DELETE, "/api/v1/auth/signup"),
        (Method::GET, "/api/v1/auth/login"),
        (Method::PUT, "/api/v1/orgs"),
        (Method::POST, "/healthz"),
        (Method::POST, "/api/v1/orgs/some-org/audit-log"),
    ] {
        let r = app.call(method.clone(), path, None, None).await;
        problem(r, 405, "method_not_allowed");
    }
}

#[tokio::test]
async fn missing_or_invalid_bearer_token_is_401() {
    let app = TestApp::sqlite().await;
    let r = app.call(Method::GET, "/api/v1/me", None, None).await;
    problem(r, 401, "unauthorized");
    for auth in [
        "Bearer garbage",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "garbage",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    ] {
        let req = Request::builder()
            .uri("/api/v1/orgs")
            .header("authorization", auth)
            .body(Body::empty())
            .unwrap();
        problem(app.send(req).await, 401, "unauthorized");
    }
    // Non-UTF-8 header bytes.
    let req = Request::builder()
        .uri("/api/v1/me")
        .header(
            "authorization",
            axum::http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    problem(app.send(req).await, 401, "unauthorized");
    // Tenant routes check the token before anything else.
    let r = app
        .call(Method::GET, "/api/v1/orgs/anything/members", None, None)
        .await;
    problem(r, 401, "unauthorized");
}

#[tokio::test]
async fn over_long_signup_fields_are_422_with_the_field_named() {
    let app = TestApp::sqlite().await;
    let cases = [
        ("name", signup_body("long@b.io", PASSWORD, &"n".repeat(101))),
        (
            "email",
            signup_body(&format!("{}@example.com", "e".repeat(288)), PASSWORD, "A"),
        ),
        ("password", signup_body("long@b.io", &"p".repeat(129), "A")),
    ];
    for (field, body) in cases {
        let r = app
            .call(Method::POST, "/api/v1/auth/signup", None, Some(body))
            .await;
        let r = problem(r, 422, "validation_failed");
        let errors = r.json["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{}", r.text);
        assert_eq!(errors[0]["field"], field, "{}", r.text);
        assert!(
            errors[0]["message"].as_str().unwrap().contains("at most"),
            "the bound is said: {}",
            r.text
        );
    }
    // At the bounds, all is accepted.
    app.call(
        Method::POST,
        "/api/v1/auth/signup",
        None,
        Some(signup_body(
            "bounds@b.io",
            &"p".repeat(128),
            &"n".repeat(100),
        )),
    )
    .await
    .expect(201);
}

backend_tests!(
    malformed_uuid_in_path_is_400_invalid_path,
    bad_query_is_400_invalid_query,
    over_long_org_fields_are_422,
    bad_input_sweep_never_errors_on_the_server,
    audit_rows_carry_the_request_id,
    json_body_that_is_not_an_object_is_422,
);

/// Found by schemathesis: serde fills a struct from a JSON array, so
/// `PATCH …/labels/{label}` with `[null, null]` was a `200` empty update and
/// `POST …/labels` with `["x", "#000000"]` created a label. Every body is an
/// object (as documented); any other JSON value is `422`.
async fn json_body_that_is_not_an_object_is_422(app: TestApp) {
    let u = app.signup("arrays").await;
    let org = u.personal_org;
    let label = app
        .post(
            &format!("/api/v1/orgs/{org}/labels"),
            &u.token,
            json!({ "name": "bug" }),
        )
        .await
        .expect(201);
    let label = label.json["id"].as_str().unwrap().to_owned();
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/orgs/{org}/labels/{label}"),
            "[null, null]",
        ),
        (
            Method::POST,
            format!("/api/v1/orgs/{org}/labels"),
            r##"["x", "#000000"]"##,
        ),
        (
            Method::POST,
            "/api/v1/orgs".to_owned(),
            r#""just a string""#,
        ),
        (Method::PATCH, "/api/v1/me".to_owned(), " 42"),
        (Method::PATCH, "/api/v1/me".to_owned(), "null"),
    ] {
        let r = app
            .send(json_req(method, &path, Some(&u.token), body))
            .await;
        let r = problem(r, 422, "validation_failed");
        assert_eq!(r.json["errors"][0]["field"], "", "{}", r.text);
    }
    let labels = app
        .get(&format!("/api/v1/orgs/{org}/labels"), &u.token)
        .await
        .expect(200);
    assert_eq!(labels.json["items"].as_array().unwrap().len(), 1);
}

async fn malformed_uuid_in_path_is_400_invalid_path(app: TestApp) {
    let u = app.signup("pathy").await;
    let org = u.personal_org;
    let r = app
        .patch(
            &format!("/api/v1/orgs/{org}/members/not-a-uuid"),
            &u.token,
            json!({ "role": "member" }),
        )
        .await;
    let r = problem(r, 400, "invalid_path");
    assert!(!r.json["detail"].as_str().unwrap().is_empty());
    let r = app
        .delete(&format!("/api/v1/orgs/{org}/members/12345"), &u.token)
        .await;
    problem(r, 400, "invalid_path");
    let r = app
        .delete(&format!("/api/v1/orgs/{org}/invites/zzz"), &u.token)
        .await;
    problem(r, 400, "invalid_path");
    // Percent-encoded garbage, including invalid UTF-8.
    let r = app
        .delete(&format!("/api/v1/orgs/{org}/members/%FF%FE"), &u.token)
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert_clean_error(&r);
}

async fn bad_query_is_400_invalid_query(app: TestApp) {
    let u = app.signup("query").await;
    let r = app.get("/api/v1/orgs?limit=abc", &u.token).await;
    let r = problem(r, 400, "invalid_query");
    assert!(
        r.json["detail"].as_str().unwrap().contains("limit"),
        "{}",
        r.text
    );
    let r = app.get("/api/v1/orgs?limit=-1", &u.token).await;
    problem(r, 400, "invalid_query");
    let org = u.personal_org;
    for q in [
        "actor_id=nope",
        "since=yesterday",
        "entity_id=1",
        "limit=99999999999999999999",
    ] {
        let r = app
            .get(&format!("/api/v1/orgs/{org}/audit-log?{q}"), &u.token)
            .await;
        problem(r, 400, "invalid_query");
    }
    // Well-formed but out of bounds is a validation error naming the field.
    let r = app.get("/api/v1/orgs?limit=201", &u.token).await;
    let r = problem(r, 422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "limit");
    let r = app.get("/api/v1/orgs?cursor=forged", &u.token).await;
    problem(r, 400, "invalid_cursor");
}

async fn over_long_org_fields_are_422(app: TestApp) {
    let u = app.signup("longorg").await;
    let r = app
        .post("/api/v1/orgs", &u.token, json!({ "name": "n".repeat(101) }))
        .await;
    let r = problem(r, 422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "name", "{}", r.text);
    let r = app
        .post(
            "/api/v1/orgs",
            &u.token,
            json!({ "name": "ok", "slug": "s".repeat(65) }),
        )
        .await;
    let r = problem(r, 422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "slug", "{}", r.text);
    let org = u.personal_org;
    let r = app
        .patch(
            &format!("/api/v1/orgs/{org}"),
            &u.token,
            json!({ "name": "n".repeat(101) }),
        )
        .await;
    let r = problem(r, 422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "name", "{}", r.text);
    let r = app
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &u.token,
            json!({ "email": format!("{}@example.com", "e".repeat(288)), "role": "member" }),
        )
        .await;
    let r = problem(r, 422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "email", "{}", r.text);
}

/// Garbage bodies, as raw JSON text.
fn garbage_bodies() -> Vec<String> {
    let long = "x".repeat(10_000);
    let huge_array = format!("[{}]", vec!["1"; 50_000].join(","));
    let deep = format!("{}{}", "[".repeat(2_000), "]".repeat(2_000));
    let mut bodies: Vec<String> = [
        "null",
        "[]",
        "\"x\"",
        "0",
        "-1e999",
        "true",
        "{}",
        "{\"name\": {}}",
        "{\"name\": []}",
        "{\"name\": null}",
        "{\"email\": 1, \"password\": 2, \"name\": 3}",
        "{\"email\": true, \"password\": [], \"name\": {}}",
        "{\"email\": 1.5e308, \"token\": 7, \"refresh_token\": 8, \"role\": 9}",
        "{\"role\": \"emperor\"}",
        "{\"role\": \"\"}",
        "{\"role\": \"OWNER\"}",
        "{\"slug\": \"../../etc/passwd\", \"name\": \"x\"}",
        "{\"slug\": \"01890000-0000-7000-8000-000000000000\", \"name\": \"x\"}",
        "{\"name\": \"\\u0000\\u0007\", \"email\": \"a\\u0000@b.io\"}",
        "{\"name\": \"\\ud800\"}",
        "{\"name\": \"Zoë 🚀 名前 \\u202e\", \"email\": \"zoë@例え.テスト\", \"password\": \"🔑🔑🔑🔑🔑🔑🔑🔑🔑🔑\"}",
        "{\"email\": \"   \", \"password\": \"          \", \"name\": \"   \"}",
        "{\"email\": \"a@b.io\", \"email\": \"c@d.io\"}",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    bodies.push(huge_array.clone());
    bodies.push(format!("{{\"name\": {huge_array}}}"));
    bodies.push(deep);
    for field in [
        "email",
        "password",
        "name",
        "slug",
        "token",
        "refresh_token",
        "role",
    ] {
        bodies.push(json!({ field: long }).to_string());
    }
    bodies.push(
        json!({
            "email": format!("{long}@example.com"),
            "password": long,
            "name": long,
            "slug": long,
            "token": long,
            "refresh_token": long,
            "role": long,
        })
        .to_string(),
    );
    bodies.push(
        json!({ "email": "ok@example.com", "password": "é".repeat(10_000), "name": "🚀".repeat(10_000) })
            .to_string(),
    );
    bodies
}

async fn bad_input_sweep_never_errors_on_the_server(app: TestApp) {
    let u = app.signup("sweep").await;
    let org = u.personal_org;
    let other = app.signup("other").await;
    let member = format!("/api/v1/orgs/{org}/members/{}", other.id);
    let routes: Vec<(Method, String, bool)> = vec![
        (Method::POST, "/api/v1/auth/signup".into(), false),
        (Method::POST, "/api/v1/auth/login".into(), false),
        (Method::POST, "/api/v1/auth/refresh".into(), false),
        (Method::POST, "/api/v1/auth/logout".into(), false),
        (Method::POST, "/api/v1/invites/accept".into(), true),
        (Method::POST, "/api/v1/orgs".into(), true),
        (Method::PATCH, format!("/api/v1/orgs/{org}"), true),
        (Method::POST, format!("/api/v1/orgs/{org}/invites"), true),
        (Method::PATCH, member, true),
    ];
    let bodies = garbage_bodies();
    for (method, path, authed) in &routes {
        let token = authed.then_some(u.token.as_str());
        for body in &bodies {
            let r = app
                .send(json_req(method.clone(), path, token, body.clone()))
                .await;
            let shown: String = body.chars().take(80).collect();
            assert!(
                r.status.as_u16() < 500,
                "{method} {path} with {shown:?} answered {}: {}",
                r.status,
                r.text
            );
            assert_clean_error(&r);
            assert!(
                header(&r, "x-request-id").is_some(),
                "{method} {path}: no x-request-id"
            );
        }
        // Invalid UTF-8 and a non-JSON content type, too.
        let r = app
            .send(json_req(
                method.clone(),
                path,
                token,
                vec![0xffu8, 0xfe, 0x00],
            ))
            .await;
        assert_clean_error(&r);
        let r = app
            .send(raw(
                method.clone(),
                path,
                token,
                Some("application/x-www-form-urlencoded"),
                "email=a&password=b",
            ))
            .await;
        assert_clean_error(&r);
    }
    // The caller is still fine afterwards, and still the owner.
    let r = app
        .get(&format!("/api/v1/orgs/{org}"), &u.token)
        .await
        .expect(200);
    assert_eq!(r.json["role"], "owner");
}

// ---------------------------------------------------------------------------
// 2. Request ids
// ---------------------------------------------------------------------------

#[tokio::test]
async fn every_response_has_a_request_id() {
    let app = TestApp::sqlite_with(|c| c.max_body_bytes = 2048).await;
    let responses = vec![
        app.call(Method::GET, "/healthz", None, None).await,
        app.call(Method::GET, "/nope", None, None).await,
        app.call(Method::DELETE, "/healthz", None, None).await,
        app.call(Method::GET, "/api/v1/me", None, None).await,
        app.call(Method::GET, "/api/v1/openapi.json", None, None)
            .await,
        app.send(json_req(Method::POST, "/api/v1/auth/login", None, "{"))
            .await,
        app.send(json_req(
            Method::POST,
            "/api/v1/auth/login",
            None,
            "x".repeat(5000),
        ))
        .await,
    ];
    let mut seen = std::collections::HashSet::new();
    for r in responses {
        let id = header(&r, "x-request-id")
            .unwrap_or_else(|| panic!("no x-request-id on {}: {}", r.status, r.text))
            .to_owned();
        assert!(!id.is_empty());
        assert!(seen.insert(id), "request ids are unique");
    }
}

#[tokio::test]
async fn client_request_id_is_echoed() {
    let app = TestApp::sqlite().await;
    for path in ["/healthz", "/nope", "/api/v1/me"] {
        let req = Request::builder()
            .uri(path)
            .header("x-request-id", "client-chosen-id-42")
            .body(Body::empty())
            .unwrap();
        let r = app.send(req).await;
        assert_eq!(
            header(&r, "x-request-id"),
            Some("client-chosen-id-42"),
            "{path}"
        );
    }
}

async fn audit_rows_carry_the_request_id(app: TestApp) {
    let u = app.signup("audited").await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/orgs")
        .header("authorization", format!("Bearer {}", u.token))
        .header("content-type", "application/json")
        .header("x-request-id", "audit-req-7f3a")
        .body(Body::from(json!({ "name": "Audited Co" }).to_string()))
        .unwrap();
    let r = app.send(req).await.expect(201);
    assert_eq!(header(&r, "x-request-id"), Some("audit-req-7f3a"));
    let org = r.json["id"].as_str().unwrap().to_owned();
    let log = app
        .get(&format!("/api/v1/orgs/{org}/audit-log"), &u.token)
        .await
        .expect(200);
    let items = log.json["items"].as_array().unwrap();
    let created: Vec<&Value> = items
        .iter()
        .filter(|i| i["action"] == "org.created")
        .collect();
    assert_eq!(created.len(), 1, "{}", log.text);
    assert_eq!(created[0]["request_id"], "audit-req-7f3a", "{}", log.text);
    assert!(
        items.iter().all(|i| i["request_id"] == "audit-req-7f3a"),
        "every row of that request carries its id: {}",
        log.text
    );

    // Without a client id, the generated one (the one answered) is recorded.
    let r = app
        .patch(
            &format!("/api/v1/orgs/{org}"),
            &u.token,
            json!({ "name": "Renamed Co" }),
        )
        .await
        .expect(200);
    let generated = header(&r, "x-request-id").unwrap().to_owned();
    let log = app
        .get(
            &format!("/api/v1/orgs/{org}/audit-log?action=org.updated"),
            &u.token,
        )
        .await
        .expect(200);
    assert_eq!(
        log.json["items"][0]["request_id"], generated,
        "{}",
        log.text
    );
}

// ---------------------------------------------------------------------------
// 3. Health
// ---------------------------------------------------------------------------

#[tokio::test]
async fn healthz_and_readyz_answer_ok() {
    let app = TestApp::sqlite().await;
    for path in ["/healthz", "/readyz"] {
        let r = app.call(Method::GET, path, None, None).await.expect(200);
        assert!(
            r.content_type().starts_with("application/json"),
            "{path}: {}",
            r.content_type()
        );
        assert_eq!(r.json, json!({ "status": "ok" }), "{path}");
    }
}

#[tokio::test]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn readyz_on_postgres_answers_ok() {
    let app = TestApp::postgres().await;
    let r = app
        .call(Method::GET, "/readyz", None, None)
        .await
        .expect(200);
    assert_eq!(r.json, json!({ "status": "ok" }));
}

// ---------------------------------------------------------------------------
// 4. OpenAPI and /docs
// ---------------------------------------------------------------------------

/// Every route of the app (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("post", "/api/v1/auth/signup"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/me"),
    ("patch", "/api/v1/me"),
    ("get", "/api/v1/orgs"),
    ("post", "/api/v1/orgs"),
    ("get", "/api/v1/orgs/{org}"),
    ("patch", "/api/v1/orgs/{org}"),
    ("delete", "/api/v1/orgs/{org}"),
    ("get", "/api/v1/orgs/{org}/members"),
    ("patch", "/api/v1/orgs/{org}/members/{user_id}"),
    ("delete", "/api/v1/orgs/{org}/members/{user_id}"),
    ("get", "/api/v1/orgs/{org}/invites"),
    ("post", "/api/v1/orgs/{org}/invites"),
    ("delete", "/api/v1/orgs/{org}/invites/{invite_id}"),
    ("post", "/api/v1/invites/accept"),
    ("get", "/api/v1/orgs/{org}/audit-log"),
];

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let app = TestApp::sqlite().await;
    let r = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    assert!(
        r.content_type().starts_with("application/json"),
        "{}",
        r.content_type()
    );
    let doc = &r.json;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "orgboard");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
    // The served document is the one generated from the code.
    assert_eq!(
        doc,
        &serde_json::to_value(orgboard::http::openapi()).unwrap()
    );
    assert!(
        doc["components"]["securitySchemes"]["bearer"].is_object(),
        "bearer auth is declared"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());

    // Every documented operation exists in the router, every path parameter
    // is declared, and every operation has a response.
    let u = app.signup("doc").await;
    for (path, item) in paths {
        let params: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            if !HTTP_METHODS.contains(&method.as_str()) {
                continue;
            }
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            for p in &params {
                assert!(
                    declared.contains(p),
                    "{method} {path}: path parameter {p} is not declared"
                );
            }
            let concrete = path
                .replace("{org}", &u.personal_org.to_string())
                .replace("{user_id}", &uuid::Uuid::now_v7().to_string())
                .replace("{invite_id}", &uuid::Uuid::now_v7().to_string());
            let concrete = params.iter().fold(concrete, |acc, p| {
                acc.replace(&format!("{{{p}}}"), &uuid::Uuid::now_v7().to_string())
            });
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (m != Method::GET && m != Method::DELETE).then(|| json!({}));
            let r = app.call(m, &concrete, Some(&u.token), body).await;
            assert!(
                r.json["code"] != "route_not_found" && r.json["code"] != "method_not_allowed",
                "{method} {path} is documented but not routed: {}",
                r.text
            );
            assert_clean_error(&r);
        }
    }
}

#[tokio::test]
async fn openapi_document_snapshot() {
    let app = TestApp::sqlite().await;
    let r = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .expect(200);
    // The crate version is redacted: a release should not churn the snapshot.
    insta::assert_json_snapshot!("openapi", r.json, { ".info.version" => "[version]" });
}

/// Properties of the OpenAPI document that generated clients and contract
/// tests (`.ci/api-contract.sh`) rely on; each one was once broken.
#[test]
fn openapi_document_is_exact_where_clients_depend_on_it() {
    let doc = serde_json::to_value(orgboard::http::openapi()).unwrap();
    let mut raw = serde_json::to_value(orgboard::http::openapi()).unwrap();
    // Every bound of the finishing step names a property that exists.
    assert_eq!(
        orgboard::http::apidoc::finish_value(&mut raw),
        Vec::<String>::new()
    );
    assert_eq!(doc["servers"][0]["url"], "/");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        assert!(
            !name.starts_with("Page_"),
            "{name}: pages are `<Item>Page` schemas"
        );
        if name.ends_with("Page") && name != "Page" {
            let items = &schema["properties"]["items"]["items"];
            let item = name.trim_end_matches("Page");
            assert_eq!(
                items["$ref"],
                format!("#/components/schemas/{item}"),
                "{name} must refer to {item}, not copy it"
            );
        }
    }
    let mut operation_ids = std::collections::HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !HTTP_METHODS.contains(&method.as_str()) {
                continue;
            }
            let at = format!("{method} {path}");
            let id = op["operationId"].as_str().unwrap();
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !id.ends_with("_route"),
                "{at}: operation id {id} is not snake_case without `_route`"
            );
            assert!(operation_ids.insert(id.to_owned()), "{at}: duplicate {id}");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("414"), "{at}: 414 not documented");
            for (status, response) in responses {
                assert!(
                    response["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{at} {status}: no description"
                );
                if status == "414" {
                    // hyper's answer to a request line over 64 KiB: no body.
                    assert!(response.get("content").is_none(), "{at} 414");
                } else if status.starts_with('4') || status.starts_with('5') {
                    let content = response["content"].as_object().unwrap();
                    assert_eq!(
                        content.keys().collect::<Vec<_>>(),
                        ["application/problem+json"],
                        "{at} {status}"
                    );
                    assert_eq!(
                        content["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{at} {status}"
                    );
                }
            }
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if secured {
                assert!(responses.contains_key("401"), "{at}: no 401");
            }
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let body = op.get("requestBody").is_some();
            if body {
                for status in ["400", "413", "415", "422"] {
                    assert!(responses.contains_key(status), "{at}: no {status}");
                }
            }
            for p in &params {
                let (name, location) = (p["name"].as_str().unwrap(), p["in"].as_str().unwrap());
                assert_ne!(
                    p["schema"]["type"],
                    json!(["string", "null"]),
                    "{at}: {name} cannot be null"
                );
                match (location, name) {
                    ("query", "limit") => {
                        assert_eq!(p["schema"]["minimum"], 1, "{at}");
                        assert_eq!(p["schema"]["maximum"], 200, "{at}");
                    }
                    ("query", "status" | "priority") => {
                        assert_eq!(p["schema"]["type"], "array", "{at}");
                        assert_eq!(p["explode"], false, "{at}: comma-separated");
                    }
                    // `{org}` is an id or a slug; every other path id is a UUID.
                    ("path", "org") => assert_eq!(p["schema"]["type"], "string"),
                    ("path", _) => assert_eq!(p["schema"]["format"], "uuid", "{at}: {name}"),
                    _ => {}
                }
                if location == "path" {
                    assert!(responses.contains_key("400"), "{at}: no 400 invalid_path");
                    assert!(responses.contains_key("404"), "{at}: no 404");
                }
                if location == "query" {
                    assert!(responses.contains_key("400"), "{at}: no 400 invalid_query");
                }
            }
        }
    }
    assert!(operation_ids.contains("create_org"));
}

#[tokio::test]
async fn docs_page_needs_no_network() {
    let app = TestApp::sqlite().await;
    let mut path = "/docs".to_owned();
    let mut page = None;
    for _ in 0..3 {
        let r = app.call(Method::GET, &path, None, None).await;
        if r.status.is_redirection() {
            let location = header(&r, "location").unwrap().to_owned();
            assert!(location.starts_with('/'), "local redirect: {location}");
            path = location;
            continue;
        }
        page = Some(r.expect(200));
        break;
    }
    let page = page.expect("/docs answers a page");
    assert!(
        page.content_type().starts_with("text/html"),
        "{}",
        page.content_type()
    );
    assert!(page.text.to_lowercase().contains("<html"), "{}", page.text);
    assert!(page.text.contains("swagger"), "{}", page.text);
    assert_no_external_urls(&page.text, &path);

    // Every asset the page references is served locally.
    let base = if path.ends_with('/') {
        path.clone()
    } else {
        format!("{path}/")
    };
    let assets = referenced_assets(&page.text);
    assert!(
        assets.iter().any(|a| a.ends_with(".js")),
        "the page loads scripts: {assets:?}"
    );
    let mut initializer = None;
    for asset in &assets {
        let url = if asset.starts_with('/') {
            asset.clone()
        } else {
            format!("{base}{}", asset.trim_start_matches("./"))
        };
        let r = app.call(Method::GET, &url, None, None).await;
        assert_eq!(r.status.as_u16(), 200, "{url} is not served");
        if asset.contains("swagger-initializer") {
            initializer = Some(r.text);
        }
    }
    let init = match initializer {
        Some(init) => init,
        None => {
            app.call(
                Method::GET,
                &format!("{base}swagger-initializer.js"),
                None,
                None,
            )
            .await
            .expect(200)
            .text
        }
    };
    assert!(
        init.contains("/api/v1/openapi.json"),
        "the page renders our document: {init}"
    );
    assert_no_external_urls(&init, "swagger-initializer.js");
    // The bundle's default validatorUrl is https://validator.swagger.io,
    // whose badge the page would load: it must be switched off.
    let compact: String = init.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        compact.contains(r#""validatorUrl":"none""#),
        "the online validator is disabled: {init}"
    );
}

#[track_caller]
fn assert_no_external_urls(text: &str, what: &str) {
    for scheme in ["http://", "https://", "//cdn", "//unpkg", "//fonts."] {
        assert!(
            !text.contains(scheme),
            "{what} references an external URL ({scheme}): {text}"
        );
    }
}

/// `src="…"` and `href="…"` values of an HTML page.
fn referenced_assets(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                let v = &rest[..end];
                if !v.is_empty() && !v.starts_with('#') && !v.starts_with("data:") {
                    out.push(v.to_owned());
                }
                rest = &rest[end..];
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// 5. Rate limits
// ---------------------------------------------------------------------------

async fn limited_app(backend: Backend) -> TestApp {
    TestApp::with(backend, |c: &mut Config| {
        c.rate_limit_per_ip = 3;
        c.rate_limit_per_account = 2;
    })
    .await
}

fn login_from(ip: &str, email: &str, password: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .header("x-forwarded-for", ip)
        .body(Body::from(
            json!({ "email": email, "password": password }).to_string(),
        ))
        .unwrap()
}

#[track_caller]
fn assert_rate_limited(r: Resp) {
    let r = problem(r, 429, "rate_limited");
    let retry = header(&r, "retry-after").expect("Retry-After header");
    let secs: u64 = retry
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After is integer seconds: {retry:?}"));
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
}

async fn rate_limit_per_account(app: TestApp) {
    // Failed logins for one email, each from another address: the account
    // budget (2) runs out, whatever the address and the letter case.
    let email = "victim@example.com";
    problem(
        app.send(login_from("10.0.0.1", email, "wrong password 1"))
            .await,
        401,
        "invalid_credentials",
    );
    problem(
        app.send(login_from(
            "10.0.0.2",
            "Victim@Example.COM",
            "wrong password 2",
        ))
        .await,
        401,
        "invalid_credentials",
    );
    assert_rate_limited(
        app.send(login_from("10.0.0.3", email, "wrong password 3"))
            .await,
    );
    assert_rate_limited(app.send(login_from("10.0.0.4", email, PASSWORD)).await);
    // Another account is not affected.
    problem(
        app.send(login_from(
            "10.0.0.5",
            "someone@example.com",
            "wrong password",
        ))
        .await,
        401,
        "invalid_credentials",
    );
}

async fn rate_limit_per_ip(app: TestApp) {
    let ip = "192.0.2.7";
    for i in 0..3 {
        let r = app
            .send(login_from(
                ip,
                &format!("user{i}@example.com"),
                "wrong password",
            ))
            .await;
        problem(r, 401, "invalid_credentials");
    }
    assert_rate_limited(
        app.send(login_from(ip, "user9@example.com", "wrong password"))
            .await,
    );
    // Another address still works.
    problem(
        app.send(login_from(
            "192.0.2.8",
            "user9@example.com",
            "wrong password",
        ))
        .await,
        401,
        "invalid_credentials",
    );
    // And another route has its own budget for the same address.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/signup")
        .header("content-type", "application/json")
        .header("x-forwarded-for", ip)
        .body(Body::from(
            signup_body("fresh@example.com", PASSWORD, "Fresh").to_string(),
        ))
        .unwrap();
    app.send(req).await.expect(201);
    // Sign-up is limited per address too.
    for i in 0..2 {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/signup")
            .header("content-type", "application/json")
            .header("x-forwarded-for", ip)
            .body(Body::from(
                signup_body(&format!("fresh{i}@example.com"), PASSWORD, "Fresh").to_string(),
            ))
            .unwrap();
        app.send(req).await.expect(201);
    }
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/signup")
        .header("content-type", "application/json")
        .header("x-forwarded-for", ip)
        .body(Body::from(
            signup_body("fresh9@example.com", PASSWORD, "Fresh").to_string(),
        ))
        .unwrap();
    assert_rate_limited(app.send(req).await);
}

fn refresh_from(ip: &str, token: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/refresh")
        .header("content-type", "application/json")
        .header("x-forwarded-for", ip)
        .body(Body::from(json!({ "refresh_token": token }).to_string()))
        .unwrap()
}

/// SPEC §10: refreshing with a valid token (every page load of the web
/// application) is not limited as tightly as failed attempts. Valid
/// refreshes count only against a budget ten times the per-address one;
/// invalid tokens spend the tight budget (3 here) and then get `429`; a
/// request without any token guesses nothing and counts only loosely.
async fn refresh_limits_failures_tightly_and_valid_tokens_loosely(app: TestApp) {
    let ip = "198.51.100.9";
    let signup = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/signup")
        .header("content-type", "application/json")
        .header("x-forwarded-for", ip)
        .body(Body::from(
            signup_body("tabs@example.com", PASSWORD, "Tabs").to_string(),
        ))
        .unwrap();
    let mut token = app.send(signup).await.expect(201).json["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut attempts = 0;
    for _ in 0..10 {
        let r = app.send(refresh_from(ip, &token)).await.expect(200);
        token = r.json["refresh_token"].as_str().unwrap().to_owned();
        attempts += 1;
    }
    for i in 0..3 {
        let r = app.send(refresh_from(ip, &format!("obr_guess{i}"))).await;
        problem(r, 401, "unauthorized");
        attempts += 1;
    }
    assert_rate_limited(app.send(refresh_from(ip, "obr_guess9")).await);
    attempts += 1;
    // The holder of a valid token is not locked out by someone guessing.
    let r = app.send(refresh_from(ip, &token)).await.expect(200);
    token = r.json["refresh_token"].as_str().unwrap().to_owned();
    attempts += 1;
    // The loose budget (30) ends too.
    let mut limited = false;
    while attempts < 40 {
        attempts += 1;
        let r = app.send(refresh_from(ip, "")).await;
        if r.status == 429 {
            assert_rate_limited(r);
            limited = true;
            break;
        }
        problem(r, 401, "unauthorized");
    }
    assert!(
        limited,
        "the loose budget never ran out in {attempts} attempts"
    );
    assert!(
        attempts > 30,
        "the loose budget is 30 a minute, ran out at {attempts}"
    );
    assert_rate_limited(app.send(refresh_from(ip, &token)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_limits_sqlite() {
    refresh_limits_failures_tightly_and_valid_tokens_loosely(limited_app(Backend::Sqlite).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn refresh_limits_postgres() {
    refresh_limits_failures_tightly_and_valid_tokens_loosely(limited_app(Backend::Postgres).await)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_account_sqlite() {
    rate_limit_per_account(limited_app(Backend::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn rate_limit_per_account_postgres() {
    rate_limit_per_account(limited_app(Backend::Postgres).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_ip_sqlite() {
    rate_limit_per_ip(limited_app(Backend::Sqlite).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn rate_limit_per_ip_postgres() {
    rate_limit_per_ip(limited_app(Backend::Postgres).await).await;
}

// ---------------------------------------------------------------------------
// 6. The generated secret survives a restart
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_secret_persists_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = Config::for_tests(dir.path().to_path_buf(), None);
        c.secret = None;
        c
    };
    let first = orgboard::server::prepare(config()).await.unwrap();
    let router = orgboard::http::router(first.clone());
    let res = tower::ServiceExt::oneshot(
        router,
        json_req(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            signup_body("persist@example.com", PASSWORD, "Persist").to_string(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let session: Value = serde_json::from_slice(&body).unwrap();
    let token = session["access_token"].as_str().unwrap().to_owned();
    first.db.close().await;
    drop(first);

    let key = dir.path().join("secret.key");
    let meta = std::fs::metadata(&key).expect("secret.key exists");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "secret.key is private"
        );
    }
    let secret_before = std::fs::read(&key).unwrap();
    assert!(secret_before.len() >= 32);

    let me = |state: orgboard::state::AppState, token: String| async move {
        let req = Request::builder()
            .uri("/api/v1/me")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        tower::ServiceExt::oneshot(orgboard::http::router(state), req)
            .await
            .unwrap()
            .status()
            .as_u16()
    };

    // A restart on the same data directory keeps the token valid.
    let second = orgboard::server::prepare(config()).await.unwrap();
    assert_eq!(me(second.clone(), token.clone()).await, 200);
    assert_eq!(
        std::fs::read(&key).unwrap(),
        secret_before,
        "not regenerated"
    );
    second.db.close().await;

    // Another data directory has another secret: the token is refused there.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = Config::for_tests(other_dir.path().to_path_buf(), None);
    other.secret = None;
    let other = orgboard::server::prepare(other).await.unwrap();
    assert_eq!(me(other.clone(), token).await, 401);
    assert_ne!(
        std::fs::read(other_dir.path().join("secret.key")).unwrap(),
        secret_before
    );
}
