//! The account life-cycle (reset by email, deleting one's account), the
//! security log, and the instance administrator's commands (`orgboard
//! admin`: accounts, plans, suspension, dead jobs), on both backends.

use crate::common::{PASSWORD, Resp, TestApp, TestUser};
use axum::http::Method;
use orgboard::db::Scope;
use orgboard::on_tx;
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    a_forgotten_password_is_reset_by_an_emailed_link_once,
    reset_links_expire_and_bad_tokens_change_nothing,
    reset_requests_and_guessed_tokens_are_rate_limited,
    deleting_an_account_leaves_shared_work_and_frees_the_email,
    the_last_owner_of_a_shared_organization_cannot_delete_their_account,
    the_security_log_records_sign_ins_refusals_and_reuse,
    the_request_role_cannot_read_the_security_log,
    a_suspended_organization_answers_423_to_members_and_keeps_its_data,
    admin_creates_users_resets_passwords_and_sets_plans,
    admin_lists_and_requeues_dead_jobs,
);

fn outbox(app: &TestApp) -> Vec<String> {
    let dir = app.dir.path().join("outbox");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// The reset token in a mail (quoted-printable soft breaks removed).
fn token_in(mail: &str) -> String {
    let flat = mail
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let at = flat.find("/reset-password?token=").expect("a reset link") + 22;
    flat[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

async fn login(app: &TestApp, email: &str, password: &str) -> Resp {
    app.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({ "email": email, "password": password })),
    )
    .await
}

async fn refresh(app: &TestApp, token: &str) -> Resp {
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": token })),
    )
    .await
}

async fn ask_reset(app: &TestApp, email: &str) -> Resp {
    app.call(
        Method::POST,
        "/api/v1/auth/password-reset",
        None,
        Some(json!({ "email": email })),
    )
    .await
}

async fn confirm(app: &TestApp, token: &str, new_password: &str) -> Resp {
    app.call(
        Method::POST,
        "/api/v1/auth/password-reset/confirm",
        None,
        Some(json!({ "token": token, "new_password": new_password })),
    )
    .await
}

async fn delete_me(app: &TestApp, u: &TestUser, password: &str) -> Resp {
    app.call(
        Method::DELETE,
        "/api/v1/me",
        Some(&u.token),
        Some(json!({ "password": password })),
    )
    .await
}

/// Security log kinds about `user`, oldest first.
async fn logged(app: &TestApp, user: Uuid) -> Vec<String> {
    let mut kinds: Vec<String> = orgboard::security::list(&app.state.db, None, Some(user), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    kinds.reverse();
    kinds
}

/// `202` for any email; a known one gets a mail with a link whose token
/// sets a new password once, signs every session out and spends every
/// other open link of the account.
async fn a_forgotten_password_is_reset_by_an_emailed_link_once(app: TestApp) {
    let u = app.signup("rita").await;
    ask_reset(&app, "nobody-here@example.com").await.expect(202);
    ask_reset(&app, "not an email").await.expect(202);
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 0);
    assert!(outbox(&app).is_empty(), "no mail for unknown emails");

    ask_reset(&app, &u.email.to_uppercase()).await.expect(202);
    ask_reset(&app, &u.email).await.expect(202);
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 2);
    let mails = outbox(&app);
    assert_eq!(mails.len(), 2);
    assert!(
        mails[0].contains(&format!("To: {}", u.email)),
        "{}",
        mails[0]
    );
    let (first, second) = (token_in(&mails[0]), token_in(&mails[1]));
    assert!(first.starts_with("obp_") && first != second);

    // A weak password is refused and spends nothing.
    confirm(&app, &second, "short")
        .await
        .expect_problem(422, "validation_failed");
    confirm(&app, &second, "a brand new passphrase")
        .await
        .expect(204);
    // Once only; and the other open link went with it.
    confirm(&app, &second, "another new passphrase")
        .await
        .expect_problem(404, "invalid_reset_token");
    confirm(&app, &first, "another new passphrase")
        .await
        .expect_problem(404, "invalid_reset_token");
    // The old password and every session are gone; the new one signs in.
    login(&app, &u.email, PASSWORD).await.expect(401);
    refresh(&app, &u.refresh).await.expect(401);
    login(&app, &u.email, "a brand new passphrase")
        .await
        .expect(200);
    let kinds = logged(&app, u.id).await;
    assert_eq!(
        kinds,
        [
            "signup",
            "password_reset_requested",
            "password_reset_requested",
            "password_reset",
            "login_failed",
            "login"
        ]
    );
    // Nothing of the token is left in the queue.
    let mut tx = app.state.db.system_read().await.unwrap();
    let jobs: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(c)
        .await)
    .unwrap();
    assert_eq!(jobs, 0);
}

/// An expired link, a token of another kind, garbage and an over-long
/// token are each `404 invalid_reset_token`, and the password stays.
async fn reset_links_expire_and_bad_tokens_change_nothing(app: TestApp) {
    let u = app.signup("sam").await;
    ask_reset(&app, &u.email).await.expect(202);
    orgboard::jobs::run_due(&app.state).await.unwrap();
    let token = token_in(&outbox(&app)[0]);
    // An hour and a bit later.
    let mut tx = app.state.db.write(Scope::user(u.id)).await.unwrap();
    on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE password_resets SET expires_at = $1 WHERE user_id = $2"
    )
    .bind(chrono::Utc::now() - chrono::Duration::minutes(1))
    .bind(u.id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tx.commit().await.unwrap();
    for bad in [
        token.clone(),
        u.refresh.clone(),
        "obp_nothing".to_owned(),
        format!("obp_{}", "x".repeat(300)),
        String::new(),
    ] {
        confirm(&app, &bad, "a brand new passphrase")
            .await
            .expect_problem(404, "invalid_reset_token");
    }
    login(&app, &u.email, PASSWORD).await.expect(200);
    // Malformed bodies are problems too.
    app.call(
        Method::POST,
        "/api/v1/auth/password-reset/confirm",
        None,
        Some(json!({ "token": 5 })),
    )
    .await
    .expect(422);
}

/// Asking for links is limited per email (the account's mailbox is not
/// flooded) and guessing tokens per address: `429` with `Retry-After`, and
/// nothing more is mailed.
async fn reset_requests_and_guessed_tokens_are_rate_limited(app: TestApp) {
    let app = TestApp::with(app.backend, |c| {
        c.rate_limit_per_account = 2;
        c.rate_limit_per_ip = 3;
    })
    .await;
    let u = app.signup("lim").await;
    ask_reset(&app, &u.email).await.expect(202);
    ask_reset(&app, &u.email).await.expect(202);
    let r = ask_reset(&app, &u.email)
        .await
        .expect_problem(429, "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 2);
    assert_eq!(outbox(&app).len(), 2);
    for _ in 0..3 {
        confirm(&app, "obp_guess", "a brand new passphrase")
            .await
            .expect_problem(404, "invalid_reset_token");
    }
    confirm(&app, "obp_guess", "a brand new passphrase")
        .await
        .expect_problem(429, "rate_limited");
    login(&app, &u.email, PASSWORD).await.expect(200);
}

/// The account goes; what it did in shared organizations stays, by a
/// "Deleted user"; its personal organization goes with it; it cannot sign
/// in again, and its email is free for a new account.
async fn deleting_an_account_leaves_shared_work_and_frees_the_email(app: TestApp) {
    let owner = app.signup("olga").await;
    let org = owner.personal_org;
    let leaver = app.member(org, &owner, "member").await;
    let tasks = app.new_list(&owner, org).await;
    let task = app
        .post(
            &tasks,
            &leaver.token,
            json!({ "title": "Left behind", "assignee_ids": [leaver.id] }),
        )
        .await
        .expect(201);
    let task_id = task.json["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/orgs/{org}/tasks/{task_id}/comments"),
        &leaver.token,
        json!({ "body": "my last words" }),
    )
    .await
    .expect(201);

    delete_me(&app, &leaver, "not the password")
        .await
        .expect_problem(403, "wrong_password");
    app.get("/api/v1/me", &leaver.token).await.expect(200);
    delete_me(&app, &leaver, &leaver.password).await.expect(204);

    // Signed out everywhere, unable to sign in; the token still verifies
    // but finds no account and no organization.
    app.get("/api/v1/me", &leaver.token)
        .await
        .expect_problem(401, "account_not_found");
    app.get(&format!("/api/v1/orgs/{org}/boards"), &leaver.token)
        .await
        .expect_problem(404, "not_found");
    let mut tx = app.state.db.system_read().await.unwrap();
    let personal_gone: bool = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT deleted_at IS NOT NULL FROM organizations WHERE id = $1"
    )
    .bind(leaver.personal_org)
    .fetch_one(c)
    .await)
    .unwrap();
    drop(tx);
    assert!(
        personal_gone,
        "the personal organization went with the account"
    );
    login(&app, &leaver.email, &leaver.password)
        .await
        .expect(401);
    refresh(&app, &leaver.refresh).await.expect(401);
    app.post("/api/v1/orgs", &leaver.token, json!({ "name": "Ghost" }))
        .await
        .expect_problem(401, "account_not_found");

    // The shared work stays, attributed to the same id, no longer
    // assigned to anyone (in the task's read and the ids its row keeps).
    let left = app
        .get(&format!("/api/v1/orgs/{org}/tasks/{task_id}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(left.json["assignee_ids"], json!([]));
    assert_eq!(left.json["created_by"], leaver.id.to_string());
    assert_eq!(app.relation_ids_drift(org).await, Vec::<Uuid>::new());
    let comments = app
        .get(
            &format!("/api/v1/orgs/{org}/tasks/{task_id}/comments"),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(
        comments.json["items"][0]["author_id"],
        leaver.id.to_string()
    );
    let members = app
        .get(&format!("/api/v1/orgs/{org}/members"), &owner.token)
        .await
        .expect(200);
    assert_eq!(members.json["items"].as_array().unwrap().len(), 1);
    let audit = app
        .get(
            &format!("/api/v1/orgs/{org}/audit-log?action=member.left"),
            &owner.token,
        )
        .await
        .expect(200);
    assert_eq!(audit.json["items"][0]["actor_id"], leaver.id.to_string());
    assert_eq!(
        audit.json["items"][0]["payload"]["reason"],
        "account_deleted"
    );
    let mut tx = app.state.db.read(Scope::system()).await.unwrap();
    let (name, email): (String, String) = on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT name, email FROM users WHERE id = $1"
    )
    .bind(leaver.id)
    .fetch_one(c)
    .await)
    .unwrap();
    drop(tx);
    assert_eq!(name, "Deleted user");
    assert!(!email.contains('@'), "{email}");
    assert_eq!(
        logged(&app, leaver.id).await.last().unwrap(),
        "account_deleted"
    );

    // The email signs up again, as a new account.
    let again = app
        .call(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(json!({ "email": leaver.email, "password": PASSWORD, "name": "Back" })),
        )
        .await
        .expect(201);
    assert_ne!(again.json["user"]["id"], leaver.id.to_string());
}

/// `409 last_owner` while the caller is the last owner of an organization
/// with other members, and nothing changes (not even in their other
/// organizations); once someone else is owner, the account goes.
async fn the_last_owner_of_a_shared_organization_cannot_delete_their_account(app: TestApp) {
    let owner = app.signup("una").await;
    let shared = app.create_org(&owner, "Shared Things").await;
    let solo = app.create_org(&owner, "Solo Things").await;
    let bob = app.member(shared, &owner, "admin").await;
    let r = delete_me(&app, &owner, &owner.password)
        .await
        .expect_problem(409, "last_owner");
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .contains(&shared.to_string())
    );
    for org in [owner.personal_org, shared, solo] {
        app.get(&format!("/api/v1/orgs/{org}"), &owner.token)
            .await
            .expect(200);
    }
    app.get("/api/v1/me", &owner.token).await.expect(200);

    app.patch(
        &format!("/api/v1/orgs/{shared}/members/{}", bob.id),
        &owner.token,
        json!({ "role": "owner" }),
    )
    .await
    .expect(200);
    delete_me(&app, &owner, &owner.password).await.expect(204);
    // The shared organization lives on with bob; the ones only the owner
    // was in went with them.
    app.get(&format!("/api/v1/orgs/{shared}/boards"), &bob.token)
        .await
        .expect(200);
    let orgs = app.get("/api/v1/orgs", &bob.token).await.expect(200);
    let ids: Vec<&str> = orgs.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&shared.to_string().as_str()));
    let mut tx = app.state.db.system_read().await.unwrap();
    let gone: i64 = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM organizations WHERE id IN ($1, $2) AND deleted_at IS NOT NULL"
    )
    .bind(solo)
    .bind(owner.personal_org)
    .fetch_one(c)
    .await)
    .unwrap();
    assert_eq!(gone, 2);
}

/// Sign-up, login, a failed login (with the email as typed), a permission
/// refusal (with its organization and route) and refresh-token reuse are
/// in the security log; no entry holds a password or token.
async fn the_security_log_records_sign_ins_refusals_and_reuse(app: TestApp) {
    let owner = app.signup("vera").await;
    let org = owner.personal_org;
    let viewer = app.member(org, &owner, "viewer").await;
    login(&app, &viewer.email, "wrong password!")
        .await
        .expect(401);
    login(&app, &viewer.email, &viewer.password)
        .await
        .expect(200);
    app.post(
        &format!("/api/v1/orgs/{org}/boards"),
        &viewer.token,
        json!({ "name": "Nope" }),
    )
    .await
    .expect_problem(403, "forbidden");
    let r = refresh(&app, &viewer.refresh).await.expect(200);
    let _ = r;
    refresh(&app, &viewer.refresh).await.expect(401);
    assert_eq!(
        logged(&app, viewer.id).await,
        [
            "signup",
            "login_failed",
            "login",
            "permission_denied",
            "refresh_reuse"
        ]
    );
    let entries = orgboard::security::list(&app.state.db, None, Some(viewer.id), 100)
        .await
        .unwrap();
    let denied = entries
        .iter()
        .find(|e| e.kind == "permission_denied")
        .unwrap();
    assert_eq!(denied.org_id, Some(org));
    assert_eq!(
        denied.detail.0,
        json!({ "method": "POST", "route": "/api/v1/orgs/{org}/boards" })
    );
    let failed = entries.iter().find(|e| e.kind == "login_failed").unwrap();
    assert_eq!(failed.email.as_deref(), Some(viewer.email.as_str()));
    let all = serde_json::to_string(&entries).unwrap();
    assert!(!all.contains("wrong password!") && !all.contains(&viewer.refresh));
    // Filters by kind.
    let only = orgboard::security::list(&app.state.db, Some("login"), None, 100)
        .await
        .unwrap();
    assert!(!only.is_empty() && only.iter().all(|e| e.kind == "login"));
}

/// On PostgreSQL the request role may append to the security log but not
/// read it, even outside any tenant; SQLite has no roles (nothing to test
/// there but that the table exists and is written).
async fn the_request_role_cannot_read_the_security_log(app: TestApp) {
    let u = app.signup("wes").await;
    let mut tx = app.state.db.read(Scope::user(u.id)).await.unwrap();
    let read = on_tx!(&mut tx, |c| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM security_log"
    )
    .fetch_one(c)
    .await);
    match app.backend {
        orgboard::db::Backend::Postgres => {
            let e = read.expect_err("the request role reads the security log");
            assert!(e.to_string().contains("permission denied"), "{e}");
        }
        orgboard::db::Backend::Sqlite => assert!(read.unwrap() >= 1),
    }
}

/// `admin suspend`: every route of the organization answers its members
/// `423 org_suspended` (reads, the SQLite fast paths, writes) and others
/// `404` as before; nothing is deleted, and `resume` brings it back. Both
/// are audited with actor "admin".
async fn a_suspended_organization_answers_423_to_members_and_keeps_its_data(app: TestApp) {
    let owner = app.signup("xena").await;
    let org = owner.personal_org;
    let stranger = app.signup("yuri").await;
    let tasks = app.new_list(&owner, org).await;
    let task = app
        .post(&tasks, &owner.token, json!({ "title": "Kept" }))
        .await
        .expect(201);
    let task_path = format!(
        "/api/v1/orgs/{org}/tasks/{}",
        task.json["id"].as_str().unwrap()
    );
    let (info, changed) = orgboard::admin::set_suspended(&app.state.db, &org.to_string(), true)
        .await
        .unwrap();
    assert!(changed && info.id == org);
    let boards = format!("/api/v1/orgs/{org}/boards");
    app.get(&boards, &owner.token)
        .await
        .expect_problem(423, "org_suspended");
    app.get(&task_path, &owner.token)
        .await
        .expect_problem(423, "org_suspended");
    // The filtered page: on PostgreSQL its statement checks the membership
    // itself; a page with ids and the stranger take the ordinary path.
    let page = format!("/api/v1/orgs/{org}/tasks?status=todo&limit=5");
    app.get(&page, &owner.token)
        .await
        .expect_problem(423, "org_suspended");
    app.get(&format!("/api/v1/orgs/{org}/tasks"), &owner.token)
        .await
        .expect_problem(423, "org_suspended");
    app.get(&page, &stranger.token)
        .await
        .expect_problem(404, "not_found");
    // The audit log's page checks it the same way.
    let log = format!("/api/v1/orgs/{org}/audit-log?action=task.created");
    app.get(&log, &owner.token)
        .await
        .expect_problem(423, "org_suspended");
    app.get(&log, &stranger.token)
        .await
        .expect_problem(404, "not_found");
    app.post(&tasks, &owner.token, json!({ "title": "Never" }))
        .await
        .expect_problem(423, "org_suspended");
    app.post(&boards, &owner.token, json!({ "name": "Never" }))
        .await
        .expect_problem(423, "org_suspended");
    app.get(&boards, &stranger.token)
        .await
        .expect_problem(404, "not_found");
    let orgs = app.get("/api/v1/orgs", &owner.token).await.expect(200);
    assert_eq!(orgs.json["items"][0]["suspended"], true);
    // Again: nothing changes.
    let (_, changed) = orgboard::admin::set_suspended(&app.state.db, &org.to_string(), true)
        .await
        .unwrap();
    assert!(!changed);

    orgboard::admin::set_suspended(&app.state.db, &org.to_string(), false)
        .await
        .unwrap();
    let t = app.get(&task_path, &owner.token).await.expect(200);
    assert_eq!(t.json["title"], "Kept");
    let audit = app
        .get(&format!("/api/v1/orgs/{org}/audit-log"), &owner.token)
        .await
        .expect(200);
    let actions: Vec<(&str, &Value, &Value)> = audit.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                &e["actor_id"],
                &e["payload"]["actor"],
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("org.resumed", &Value::Null, &json!("admin")),
            ("org.suspended", &Value::Null, &json!("admin")),
        ]
    );
    // Unknown organizations are named in the error.
    let e = orgboard::admin::set_suspended(&app.state.db, "no-such-org", true)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-such-org"), "{e}");
}

/// `admin create-user` (with a password, or a link to choose one),
/// `reset-password` (link or new password: every session ends) and
/// `set-plan` (the plans of SPEC §13; anything else refused).
async fn admin_creates_users_resets_passwords_and_sets_plans(app: TestApp) {
    let db = &app.state.db;
    let hasher = &app.state.hasher;
    let url = "https://board.example";
    let c = orgboard::admin::create_user(db, hasher, url, "Zoe@Example.com", "Zoe", Some(PASSWORD))
        .await
        .unwrap();
    assert!(c.link.is_none());
    let s = login(&app, "zoe@example.com", PASSWORD).await.expect(200);
    let token = s.json["access_token"].as_str().unwrap().to_owned();
    let orgs = app.get("/api/v1/orgs", &token).await.expect(200);
    assert_eq!(orgs.json["items"][0]["id"], c.org_id.to_string());
    let e = orgboard::admin::create_user(db, hasher, url, "zoe@example.com", "Zoe", None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = orgboard::admin::create_user(db, hasher, url, "not-an-email", "X", None)
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("email:"), "{e}");

    // Without a password: a link to choose one, that works once.
    let c2 = orgboard::admin::create_user(db, hasher, url, "amy@example.com", "Amy", None)
        .await
        .unwrap();
    let link = c2.link.unwrap();
    let t = link
        .strip_prefix("https://board.example/reset-password?token=")
        .unwrap();
    confirm(&app, t, "amy's own passphrase").await.expect(204);
    login(&app, "amy@example.com", "amy's own passphrase")
        .await
        .expect(200);

    // Reset: with a password every session ends; without, a link.
    let refresh_token = s.json["refresh_token"].as_str().unwrap().to_owned();
    let none = orgboard::admin::reset_password(
        db,
        hasher,
        url,
        "ZOE@example.com",
        Some("set by the admin"),
    )
    .await
    .unwrap();
    assert!(none.is_none());
    refresh(&app, &refresh_token).await.expect(401);
    login(&app, "zoe@example.com", "set by the admin")
        .await
        .expect(200);
    let link = orgboard::admin::reset_password(db, hasher, url, &c.user_id.to_string(), None)
        .await
        .unwrap()
        .unwrap();
    assert!(link.starts_with("https://board.example/reset-password?token=obp_"));
    let e = orgboard::admin::reset_password(db, hasher, url, "ghost@example.com", None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ghost@example.com"), "{e}");

    // Plans, by slug or id.
    let slug = orgs.json["items"][0]["slug"].as_str().unwrap().to_owned();
    let before = orgboard::admin::set_plan(db, &slug, "pro").await.unwrap();
    assert_eq!(before, "free");
    let org = app
        .get(&format!("/api/v1/orgs/{}", c.org_id), &token)
        .await
        .expect(200);
    assert_eq!(org.json["plan"], "pro");
    for (org_ref, plan, says) in [
        (slug.as_str(), "team", "unknown plan"),
        (slug.as_str(), "", "unknown plan"),
        ("no-such-org", "pro", "no-such-org"),
    ] {
        let e = orgboard::admin::set_plan(db, org_ref, plan)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(says), "{e}");
    }
    let audit = app
        .get(
            &format!(
                "/api/v1/orgs/{}/audit-log?action=org.plan_changed",
                c.org_id
            ),
            &token,
        )
        .await
        .expect(200);
    assert_eq!(audit.json["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        audit.json["items"][0]["payload"],
        json!({ "plan": { "from": "free", "to": "pro" }, "actor": "admin" })
    );
    let admin_log = orgboard::security::list(db, Some("admin"), None, 100)
        .await
        .unwrap();
    assert!(admin_log.len() >= 5, "{admin_log:?}");
}

/// `admin jobs dead` lists dead jobs; `requeue` puts one (or all) back with
/// attempts starting over, but refuses one whose secret was blanked.
async fn admin_lists_and_requeues_dead_jobs(app: TestApp) {
    let db = &app.state.db;
    let mut tx = db.system().await.unwrap();
    let now = chrono::Utc::now();
    let (cleanup, invite) = (Uuid::now_v7(), Uuid::now_v7());
    for (id, kind, payload) in [
        (cleanup, "cleanup", json!({ "kind": "cleanup", "at": now })),
        (invite, "invite_email", json!({ "kind": "invite_email" })),
    ] {
        on_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, \
             last_error, created_at, updated_at) VALUES ($1, $2, $3, 'dead', 5, 5, $4, 'boom', $4, $4)"
        )
        .bind(id)
        .bind(kind)
        .bind(sqlx::types::Json(payload.clone()))
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }
    tx.commit().await.unwrap();
    let dead = orgboard::admin::dead_jobs(db, 50).await.unwrap();
    let mut ids: Vec<Uuid> = dead.iter().map(|j| j.id).collect();
    ids.sort();
    assert_eq!(ids, [cleanup, invite]);
    assert!(dead.iter().all(|j| j.last_error.as_deref() == Some("boom")));

    let e = orgboard::admin::requeue(db, Some(invite))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("lost its token"), "{e}");
    let e = orgboard::admin::requeue(db, Some(Uuid::now_v7()))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no dead job"), "{e}");
    let requeued = orgboard::admin::requeue(db, None).await.unwrap();
    assert_eq!(requeued, [cleanup]);
    let dead = orgboard::admin::dead_jobs(db, 50).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, invite);
    // The requeued clean-up runs.
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 1);
}
