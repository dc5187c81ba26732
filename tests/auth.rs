#![allow(clippy::unwrap_used)]
//! Identity: sign-up, login, refresh rotation and reuse detection, logout,
//! me, password rules, rate limits.

mod common;

use axum::http::Method;
use common::{PASSWORD, TestApp};
use serde_json::json;

backend_tests!(
    signup_returns_session_and_personal_org,
    signup_refuses_duplicate_email_case_insensitively,
    login_failures_look_the_same,
    refresh_rotates_and_reuse_revokes_family,
);

async fn signup_returns_session_and_personal_org(app: TestApp) {
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(json!({"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"})),
        )
        .await
        .expect(201);
    assert_eq!(r.json["token_type"], "Bearer");
    assert!(r.json["expires_in"].as_u64().unwrap() <= 900);
    assert_eq!(r.json["user"]["email"], "Ada@Example.com");
    let token = r.json["access_token"].as_str().unwrap();
    let me = app.get("/api/v1/me", token).await.expect(200);
    assert_eq!(me.json["id"], r.json["user"]["id"]);
    let orgs = app.get("/api/v1/orgs", token).await.expect(200);
    let items = orgs.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["role"], "owner");
    assert_eq!(items[0]["is_personal"], true);
    assert!(orgs.json["next_cursor"].is_null());
}

async fn signup_refuses_duplicate_email_case_insensitively(app: TestApp) {
    let body = |e: &str| Some(json!({"email": e, "password": PASSWORD, "name": "A"}));
    app.call(Method::POST, "/api/v1/auth/signup", None, body("bob@x.io"))
        .await
        .expect(201);
    app.call(Method::POST, "/api/v1/auth/signup", None, body("BOB@X.IO"))
        .await
        .expect_problem(409, "email_taken");
}

async fn login_failures_look_the_same(app: TestApp) {
    let u = app.signup("carol").await;
    let login = |email: String, pw: &str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": pw})),
        )
    };
    let ok = login(u.email.to_uppercase(), PASSWORD).await.expect(200);
    assert!(ok.json["access_token"].is_string());
    let wrong_pw = login(u.email.clone(), "not the password").await;
    let unknown = login("nobody@example.com".into(), PASSWORD).await;
    assert_eq!(wrong_pw.status, 401);
    assert_eq!(wrong_pw.status, unknown.status);
    assert_eq!(wrong_pw.text, unknown.text, "same body for both failures");
}

async fn refresh_rotates_and_reuse_revokes_family(app: TestApp) {
    let u = app.signup("dave").await;
    let refresh = |t: &str| {
        app.call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": t})),
        )
    };
    let r1 = refresh(&u.refresh).await.expect(200);
    let second = r1.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, u.refresh);
    // Reusing the spent first token revokes the family, including `second`.
    refresh(&u.refresh)
        .await
        .expect_problem(401, "unauthorized");
    refresh(&second).await.expect_problem(401, "unauthorized");
}
