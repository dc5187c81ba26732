//! Identity: sign-up, login, refresh rotation and reuse detection, logout,
//! me, password rules, rate limits.

use crate::common::{PASSWORD, TestApp};
use axum::http::Method;
use serde_json::json;

backend_tests!(
    cookie_session_keeps_the_refresh_token_out_of_javascript,
    cookie_refresh_presented_again_within_the_grace_keeps_the_family,
    signup_returns_session_and_personal_org,
    signup_refuses_duplicate_email_case_insensitively,
    login_failures_look_the_same,
    refresh_rotates_and_reuse_revokes_family,
    changing_the_password_signs_out_every_other_session,
);

/// `POST /me/password`: the current password is required (`403
/// wrong_password`, nothing changed), the new one is checked (`422`); once
/// changed, the old password no longer logs in, other sessions' refresh
/// tokens are revoked, and the session that made the change goes on.
async fn changing_the_password_signs_out_every_other_session(app: TestApp) {
    let u = app.signup("erin").await;
    let login = |password: &str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": u.email, "password": password})),
        )
    };
    let refresh = |t: &str| refresh_with(&app, t.to_owned());
    let other = login(&u.password).await.expect(200);
    let other_refresh = other.json["refresh_token"].as_str().unwrap().to_owned();
    let change = |current: &str, new: &str| {
        app.post(
            "/api/v1/me/password",
            &u.token,
            json!({"current_password": current, "new_password": new}),
        )
    };
    let new = "a brand new passphrase";
    change("not the password", new)
        .await
        .expect_problem(403, "wrong_password");
    let r = change(&u.password, "short")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "new_password");
    // Nothing changed so far.
    login(&u.password).await.expect(200);

    change(&u.password, new).await.expect(204);
    login(&u.password)
        .await
        .expect_problem(401, "invalid_credentials");
    login(new).await.expect(200);
    // The other session is signed out; this one is not.
    refresh(&other_refresh)
        .await
        .expect_problem(401, "unauthorized");
    refresh(&u.refresh).await.expect(200);
    // Without a token: 401.
    app.call(
        Method::POST,
        "/api/v1/me/password",
        None,
        Some(json!({"current_password": new, "new_password": "another long one"})),
    )
    .await
    .expect(401);
}

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

/// `POST /auth/refresh` with `token` in the body.
async fn refresh_with(app: &TestApp, token: String) -> crate::common::Resp {
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": token })),
    )
    .await
}

async fn refresh_rotates_and_reuse_revokes_family(app: TestApp) {
    let u = app.signup("dave").await;
    let refresh = |t: &str| refresh_with(&app, t.to_owned());
    let r1 = refresh(&u.refresh).await.expect(200);
    let second = r1.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, u.refresh);
    // Reusing the spent first token revokes the family, including `second`.
    refresh(&u.refresh)
        .await
        .expect_problem(401, "unauthorized");
    refresh(&second).await.expect_problem(401, "unauthorized");
}

/// A login that asks for a cookie session.
fn cookie_login(email: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .header("x-orgboard-session", "cookie")
        .body(axum::body::Body::from(
            json!({ "email": email, "password": PASSWORD }).to_string(),
        ))
        .unwrap()
}

/// A browser session (`X-Orgboard-Session: cookie`) receives its refresh
/// token only as an `HttpOnly`, `SameSite=Strict` cookie scoped to the auth
/// routes; refresh and logout read it only with that header (a cross-site
/// request cannot add it), and logout clears it.
async fn cookie_session_keeps_the_refresh_token_out_of_javascript(app: TestApp) {
    use axum::body::Body;
    use axum::http::Request;
    let user = app.signup("cookie").await;
    let login = cookie_login(&user.email);
    let r = app.send(login).await.expect(200);
    assert!(
        r.json.get("refresh_token").is_none(),
        "no token for JavaScript: {}",
        r.text
    );
    assert!(r.json["access_token"].is_string());
    let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/api/v1/auth",
        "Max-Age=2592000",
    ] {
        assert!(set.contains(part), "{part} in {set}");
    }
    assert!(!set.contains("Secure"), "plain http here: {set}");
    let cookie = set.split(';').next().unwrap().to_owned();

    let refresh = |cookie: &str, header: bool| {
        let mut req = Request::post("/api/v1/auth/refresh")
            .header("content-type", "application/json")
            .header("cookie", cookie);
        if header {
            req = req.header("x-orgboard-session", "cookie");
        }
        req.body(Body::from("{}")).unwrap()
    };
    // Without the header the cookie is not read: no token, nothing happens.
    let r = app.send(refresh(&cookie, false)).await;
    assert!(r.headers.get("set-cookie").is_none());
    r.expect_problem(401, "unauthorized");
    // With it: a new pair, the refresh token again only in the cookie.
    let r = app.send(refresh(&cookie, true)).await.expect(200);
    assert!(r.json.get("refresh_token").is_none());
    let next = r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_ne!(next, cookie, "rotated");
    let token = r.json["access_token"].as_str().unwrap().to_owned();
    app.get("/api/v1/me", &token).await.expect(200);
    // No cookie at all: 401.
    let r = app.send(refresh("other=1", true)).await;
    r.expect_problem(401, "unauthorized");

    // Logout by cookie revokes the family and clears the cookie.
    let logout = Request::post("/api/v1/auth/logout")
        .header("content-type", "application/json")
        .header("x-orgboard-session", "cookie")
        .header("cookie", &next)
        .body(Body::from("{}"))
        .unwrap();
    let r = app.send(logout).await.expect(204);
    let cleared = r.headers["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("orgboard_refresh=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    app.send(refresh(&next, true))
        .await
        .expect_problem(401, "unauthorized");

    // Behind https the cookie is Secure.
    let secure = TestApp::with(app.backend, |c| {
        c.public_url = Some("https://board.example".into())
    })
    .await;
    let u = secure.signup("secure").await;
    let login = cookie_login(&u.email);
    let r = secure.send(login).await.expect(200);
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

/// Two tabs refreshing at once, or a refresh cut short: a cookie session's
/// token presented again within 30 s of its rotation gets a fresh pair of
/// the same family; after 30 s — and always for a token sent in a JSON
/// body — reuse revokes the family.
async fn cookie_refresh_presented_again_within_the_grace_keeps_the_family(app: TestApp) {
    use axum::body::Body;
    use axum::http::Request;
    let user = app.signup("tabs").await;
    let login = cookie_login(&user.email);
    let r = app.send(login).await.expect(200);
    let first = r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let refresh = |cookie: &str| {
        Request::post("/api/v1/auth/refresh")
            .header("content-type", "application/json")
            .header("x-orgboard-session", "cookie")
            .header("cookie", cookie)
            .body(Body::from("{}"))
            .unwrap()
    };
    let cookie_of = |r: &crate::common::Resp| {
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    };
    let tab_a = app.send(refresh(&first)).await.expect(200);
    let tab_b = app.send(refresh(&first)).await.expect(200);
    let (a, b) = (cookie_of(&tab_a), cookie_of(&tab_b));
    assert_ne!(a, b);
    // Both new tokens are live members of the family.
    let a2 = app.send(refresh(&a)).await.expect(200);
    let b2 = app.send(refresh(&b)).await.expect(200);

    // Past the grace, presenting a spent token revokes the whole family.
    let mut tx = app
        .state
        .db
        .write(orgboard::db::Scope::system())
        .await
        .unwrap();
    orgboard::on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE refresh_tokens SET spent_at = $1 WHERE user_id = $2 AND spent_at IS NOT NULL"
    )
    .bind(chrono::Utc::now() - chrono::Duration::seconds(31))
    .bind(user.id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tx.commit().await.unwrap();
    app.send(refresh(&first))
        .await
        .expect_problem(401, "unauthorized");
    app.send(refresh(&cookie_of(&a2)))
        .await
        .expect_problem(401, "unauthorized");
    app.send(refresh(&cookie_of(&b2)))
        .await
        .expect_problem(401, "unauthorized");

    // A JSON-body session gets no grace: the second use revokes at once.
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": user.email, "password": PASSWORD })),
        )
        .await
        .expect(200);
    let token = r.json["refresh_token"].as_str().unwrap().to_owned();
    let use_it = || {
        app.call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": token })),
        )
    };
    let fresh = use_it().await.expect(200);
    use_it().await.expect_problem(401, "unauthorized");
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": fresh.json["refresh_token"] })),
    )
    .await
    .expect_problem(401, "unauthorized");
}
