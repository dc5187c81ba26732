//! Invites: create (admin+, never above one's power), list (never with
//! tokens), revoke, accept (matching email only, single use, before expiry
//! and revocation), the email job enqueued in the same transaction, and the
//! audit rows (which never hold the token).

use crate::common::{TestApp, TestUser};
use orgboard::db::Scope;
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    secrets_on_disk_are_readable_by_the_owner_only,
    owner_and_admin_invite_within_their_power,
    token_is_shown_once_and_never_listed,
    duplicate_pending_invite_and_existing_member_are_conflicts,
    invalid_invite_bodies_are_refused,
    accept_matches_email_case_insensitively_and_joins_with_the_role,
    accept_by_another_email_is_refused_and_does_not_join,
    invite_is_single_use,
    revoked_invite_cannot_be_accepted,
    revoke_rules,
    expired_invite_is_gone,
    garbage_tokens_are_not_found,
    invite_of_a_deleted_org_cannot_be_accepted,
    invite_email_is_written_to_the_outbox_by_the_job,
    job_enqueued_in_a_rolled_back_transaction_never_exists,
    invite_audit_rows_never_hold_the_token,
    invite_revoked_before_its_job_runs_is_not_mailed,
);

fn invites_path(org: Uuid) -> String {
    format!("/api/v1/orgs/{org}/invites")
}

async fn invite(app: &TestApp, org: Uuid, by: &TestUser, email: &str, role: &str) -> Value {
    app.post(
        &invites_path(org),
        &by.token,
        json!({"email": email, "role": role}),
    )
    .await
    .expect(201)
    .json
}

async fn accept(app: &TestApp, user: &TestUser, token: &str) -> crate::common::Resp {
    app.post(
        "/api/v1/invites/accept",
        &user.token,
        json!({"token": token}),
    )
    .await
}

async fn is_member(app: &TestApp, org: Uuid, user: &TestUser) -> bool {
    let r = app.get(&format!("/api/v1/orgs/{org}"), &user.token).await;
    match r.status.as_u16() {
        200 => true,
        404 => {
            r.expect_problem(404, "not_found");
            false
        }
        s => panic!("unexpected {s}: {}", r.text),
    }
}

/// Every string anywhere inside `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

/// The part of an invite token after its `obi_<org>_` prefix (the secret
/// itself may contain `_`).
fn secret_of(token: &str) -> &str {
    let rest = token.strip_prefix("obi_").unwrap();
    let (_, secret) = rest.split_once('_').unwrap();
    secret
}

/// Undoes quoted-printable body encoding (soft line breaks and `=XX`), as a
/// mail client would, so the text can be searched.
fn quoted_printable_decode(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn outbox_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    let dir = app.dir.path().join("outbox");
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut v: Vec<_> = entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

async fn owner_and_admin_invite_within_their_power(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let member = app.member(org, &ada, "member").await;
    let viewer = app.member(org, &ada, "viewer").await;

    // The owner may invite with any role, owner included.
    for role in ["owner", "admin", "member", "viewer"] {
        let r = invite(&app, org, &ada, &format!("o-{role}@example.com"), role).await;
        assert_eq!(r["role"], role);
        assert_eq!(r["status"], "pending");
        assert_eq!(r["org_id"], org.to_string());
        assert_eq!(r["invited_by"], ada.id.to_string());
        assert!(r["accepted_at"].is_null() && r["revoked_at"].is_null());
        let token = r["token"].as_str().unwrap();
        assert!(token.starts_with("obi_"), "{token}");
        // ≥128 bits of secret: base64 of ≥16 bytes is ≥22 characters.
        assert!(secret_of(token).len() >= 22, "{token}");
        let created: chrono::DateTime<chrono::Utc> =
            r["created_at"].as_str().unwrap().parse().unwrap();
        let expires: chrono::DateTime<chrono::Utc> =
            r["expires_at"].as_str().unwrap().parse().unwrap();
        assert_eq!((expires - created).num_hours(), 7 * 24, "7 days by default");
    }
    // An admin may invite up to admin, never owner.
    for role in ["admin", "member", "viewer"] {
        invite(&app, org, &admin, &format!("a-{role}@example.com"), role).await;
    }
    let count = app.audit_count(org).await;
    app.post(
        &invites_path(org),
        &admin.token,
        json!({"email": "boss@example.com", "role": "owner"}),
    )
    .await
    .expect_problem(403, "forbidden");
    // Members and viewers may not invite at all, nor list invites.
    for u in [&member, &viewer] {
        for role in ["member", "viewer"] {
            app.post(
                &invites_path(org),
                &u.token,
                json!({"email": "friend@example.com", "role": role}),
            )
            .await
            .expect_problem(403, "forbidden");
        }
        app.get(&invites_path(org), &u.token)
            .await
            .expect_problem(403, "forbidden");
    }
    assert_eq!(app.audit_count(org).await, count, "refusals log nothing");
    let list = app.get(&invites_path(org), &ada.token).await.expect(200);
    let emails: Vec<&str> = list.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    // Newest first: the admin's three, the owner's four, then the (accepted)
    // invites that brought the three members in; nothing refused.
    assert_eq!(emails.len(), 10, "{emails:?}");
    assert_eq!(
        emails[..7],
        [
            "a-viewer@example.com",
            "a-member@example.com",
            "a-admin@example.com",
            "o-viewer@example.com",
            "o-member@example.com",
            "o-admin@example.com",
            "o-owner@example.com",
        ]
    );
    assert_eq!(emails[7], viewer.email);
    assert_eq!(emails[9], admin.email);
}

async fn token_is_shown_once_and_never_listed(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = invite(&app, org, &ada, &format!("p{i}@example.com"), "member").await;
        tokens.push(r["token"].as_str().unwrap().to_owned());
        ids.push(r["id"].as_str().unwrap().to_owned());
    }
    // Revoked and accepted invites are listed too, still without token.
    let bob = app.signup("bob").await;
    let r = invite(&app, org, &ada, &bob.email, "viewer").await;
    accept(&app, &bob, r["token"].as_str().unwrap())
        .await
        .expect(200);
    tokens.push(r["token"].as_str().unwrap().to_owned());
    app.delete(&format!("{}/{}", invites_path(org), ids[0]), &ada.token)
        .await
        .expect(204);

    let mut seen = 0;
    for viewer in [&ada, &admin] {
        let mut path = format!("{}?limit=2", invites_path(org));
        loop {
            let list = app.get(&path, &viewer.token).await.expect(200);
            let mut all = Vec::new();
            strings(&list.json, &mut all);
            for t in &tokens {
                for s in &all {
                    assert!(!s.contains(t.as_str()), "token leaked in {}", list.text);
                    assert!(
                        !s.contains(secret_of(t)),
                        "token secret leaked in {}",
                        list.text
                    );
                }
            }
            for item in list.json["items"].as_array().unwrap() {
                let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
                assert!(
                    !keys.iter().any(|k| k.contains("token")),
                    "no token field: {keys:?}"
                );
                seen += 1;
            }
            match list.json["next_cursor"].as_str() {
                Some(c) => path = format!("{}?limit=2&cursor={c}", invites_path(org)),
                None => break,
            }
        }
    }
    // Ada's 4 and the admin's own (accepted) invite, listed for two viewers.
    assert_eq!(seen, 10);
    let list = app.get(&invites_path(org), &ada.token).await.expect(200);
    let statuses: Vec<&str> = list.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "pending", "pending", "revoked", "accepted"]
    );
}

async fn duplicate_pending_invite_and_existing_member_are_conflicts(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.member(org, &ada, "member").await;
    let first = invite(&app, org, &ada, "Carol@Example.com", "member").await;
    let count = app.audit_count(org).await;

    for email in [
        "carol@example.com",
        "CAROL@EXAMPLE.COM",
        "Carol@Example.com",
    ] {
        for role in ["member", "admin"] {
            let r = app
                .post(
                    &invites_path(org),
                    &ada.token,
                    json!({"email": email, "role": role}),
                )
                .await
                .expect_problem(409, "invite_pending");
            assert_eq!(r.json["errors"][0]["field"], "email");
        }
    }
    for email in [
        bob.email.clone(),
        bob.email.to_uppercase(),
        ada.email.clone(),
    ] {
        let r = app
            .post(
                &invites_path(org),
                &ada.token,
                json!({"email": email, "role": "admin"}),
            )
            .await
            .expect_problem(409, "already_member");
        assert_eq!(r.json["errors"][0]["field"], "email");
    }
    assert_eq!(app.audit_count(org).await, count);
    let list = app.get(&invites_path(org), &ada.token).await.expect(200);
    // Bob's accepted invite and Carol's pending one.
    assert_eq!(list.json["items"].as_array().unwrap().len(), 2);

    // After a revoke the address can be invited again.
    let id = first["id"].as_str().unwrap();
    app.delete(&format!("{}/{id}", invites_path(org)), &ada.token)
        .await
        .expect(204);
    invite(&app, org, &ada, "carol@example.com", "admin").await;
    // The same address may have a pending invite in another org.
    let other = app.create_org(&ada, "Other").await;
    invite(&app, other, &ada, "carol@example.com", "member").await;
}

async fn invalid_invite_bodies_are_refused(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    for (body, field) in [
        (json!({"email": "not-an-email", "role": "member"}), "email"),
        (json!({"email": "", "role": "member"}), "email"),
        (
            json!({"email": "a b@example.com", "role": "member"}),
            "email",
        ),
        (
            json!({"email": format!("{}@example.com", "a".repeat(250)), "role": "member"}),
            "email",
        ),
        (
            json!({"email": "ok@example.com", "role": "superuser"}),
            "role",
        ),
    ] {
        let r = app
            .post(&invites_path(org), &ada.token, body.clone())
            .await
            .expect_problem(422, "validation_failed");
        let fields: Vec<&str> = r.json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [field], "{body}: {}", r.text);
    }
    // A missing role is refused too.
    app.post(
        &invites_path(org),
        &ada.token,
        json!({"email": "ok@example.com"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    let list = app.get(&invites_path(org), &ada.token).await.expect(200);
    assert!(list.json["items"].as_array().unwrap().is_empty());
}

async fn accept_matches_email_case_insensitively_and_joins_with_the_role(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.signup("bob").await;
    let r = invite(&app, org, &ada, &bob.email.to_uppercase(), "admin").await;
    assert_eq!(r["email"], bob.email.to_uppercase(), "shown as typed");
    assert!(!is_member(&app, org, &bob).await);

    let joined = accept(&app, &bob, r["token"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(joined.json["id"], org.to_string());
    assert_eq!(joined.json["name"], "Acme");
    assert_eq!(joined.json["role"], "admin");
    let me = app
        .get(&format!("/api/v1/orgs/{org}"), &bob.token)
        .await
        .expect(200);
    assert_eq!(me.json["role"], "admin");
    let members = app
        .get(&format!("/api/v1/orgs/{org}/members"), &ada.token)
        .await
        .expect(200);
    let bob_row = members.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == bob.id.to_string())
        .unwrap()
        .clone();
    assert_eq!(bob_row["role"], "admin");
    // Bob acts as an admin at once.
    app.get(&format!("/api/v1/orgs/{org}/audit-log"), &bob.token)
        .await
        .expect(200);

    // The invite now shows as accepted.
    let list = app.get(&invites_path(org), &ada.token).await.expect(200);
    let item = &list.json["items"][0];
    assert_eq!(item["status"], "accepted");
    assert!(item["accepted_at"].is_string());

    // An invitation typed in lower case, accepted by an account signed up
    // in mixed case, works too.
    let carol_email = format!("Carol-{}@Example.COM", Uuid::now_v7().simple());
    let carol_r = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(
                json!({"email": carol_email, "password": crate::common::PASSWORD, "name": "Carol"}),
            ),
        )
        .await
        .expect(201);
    let carol_token = carol_r.json["access_token"].as_str().unwrap();
    let r = invite(&app, org, &ada, &carol_email.to_lowercase(), "viewer").await;
    let joined = app
        .post(
            "/api/v1/invites/accept",
            carol_token,
            json!({"token": r["token"]}),
        )
        .await
        .expect(200);
    assert_eq!(joined.json["role"], "viewer");
}

async fn accept_by_another_email_is_refused_and_does_not_join(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.signup("bob").await;
    let eve = app.signup("eve").await;
    let r = invite(&app, org, &ada, &bob.email, "admin").await;
    let token = r["token"].as_str().unwrap();
    let count = app.audit_count(org).await;

    accept(&app, &eve, token)
        .await
        .expect_problem(403, "invite_email_mismatch");
    // Even the inviter (a member) cannot use it.
    accept(&app, &ada, token)
        .await
        .expect_problem(403, "invite_email_mismatch");
    assert!(!is_member(&app, org, &eve).await);
    assert_eq!(app.audit_count(org).await, count);
    let list = app.get(&invites_path(org), &ada.token).await.expect(200);
    assert_eq!(list.json["items"][0]["status"], "pending");

    // The invite is not spent: Bob can still accept it.
    accept(&app, &bob, token).await.expect(200);
    assert!(is_member(&app, org, &bob).await);
    assert!(!is_member(&app, org, &eve).await);
}

async fn invite_is_single_use(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.signup("bob").await;
    let r = invite(&app, org, &ada, &bob.email, "member").await;
    let token = r["token"].as_str().unwrap();
    accept(&app, &bob, token).await.expect(200);
    let count = app.audit_count(org).await;
    accept(&app, &bob, token)
        .await
        .expect_problem(404, "invite_not_found");

    // Even after leaving, the spent token does not let Bob back in.
    app.delete(
        &format!("/api/v1/orgs/{org}/members/{}", bob.id),
        &bob.token,
    )
    .await
    .expect(204);
    let count_after_leave = app.audit_count(org).await;
    assert_eq!(count_after_leave, count + 1);
    accept(&app, &bob, token)
        .await
        .expect_problem(404, "invite_not_found");
    assert!(!is_member(&app, org, &bob).await);
    assert_eq!(app.audit_count(org).await, count_after_leave);

    // A removed member cannot reuse it either; a new invite is needed.
    let r = invite(&app, org, &ada, &bob.email, "viewer").await;
    let r2 = accept(&app, &bob, r["token"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(r2.json["role"], "viewer");
}

async fn revoked_invite_cannot_be_accepted(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let bob = app.signup("bob").await;
    let r = invite(&app, org, &ada, &bob.email, "member").await;
    let token = r["token"].as_str().unwrap();
    let id = r["id"].as_str().unwrap();

    app.delete(&format!("{}/{id}", invites_path(org)), &admin.token)
        .await
        .expect(204);
    let count = app.audit_count(org).await;
    accept(&app, &bob, token)
        .await
        .expect_problem(404, "invite_not_found");
    assert!(!is_member(&app, org, &bob).await);
    assert_eq!(app.audit_count(org).await, count);
    let list = app.get(&invites_path(org), &ada.token).await.expect(200);
    assert_eq!(list.json["items"][0]["status"], "revoked");
    assert!(list.json["items"][0]["revoked_at"].is_string());
    // Revoking again is harmless and logs nothing.
    app.delete(&format!("{}/{id}", invites_path(org)), &ada.token)
        .await
        .expect(204);
    assert_eq!(app.audit_count(org).await, count);
}

async fn revoke_rules(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let member = app.member(org, &ada, "member").await;
    let owner_invite = invite(&app, org, &ada, "future-owner@example.com", "owner").await;
    let plain = invite(&app, org, &ada, "plain@example.com", "member").await;
    let path = |v: &Value| format!("{}/{}", invites_path(org), v["id"].as_str().unwrap());
    let count = app.audit_count(org).await;

    app.delete(&path(&owner_invite), &admin.token)
        .await
        .expect_problem(403, "forbidden");
    app.delete(&path(&plain), &member.token)
        .await
        .expect_problem(403, "forbidden");
    app.delete(
        &format!("{}/{}", invites_path(org), Uuid::now_v7()),
        &ada.token,
    )
    .await
    .expect_problem(404, "not_found");
    // An invite of another org is not found through this one.
    let other = app.create_org(&ada, "Other").await;
    let foreign = invite(&app, other, &ada, "foreign@example.com", "member").await;
    app.delete(
        &format!("{}/{}", invites_path(org), foreign["id"].as_str().unwrap()),
        &ada.token,
    )
    .await
    .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(org).await, count);

    // Accepted invites cannot be revoked.
    let bob = app.signup("bob").await;
    let accepted = invite(&app, org, &ada, &bob.email, "member").await;
    accept(&app, &bob, accepted["token"].as_str().unwrap())
        .await
        .expect(200);
    app.delete(&path(&accepted), &ada.token)
        .await
        .expect_problem(409, "invite_accepted");
    assert!(is_member(&app, org, &bob).await);

    app.delete(&path(&owner_invite), &ada.token)
        .await
        .expect(204);
    app.delete(&path(&plain), &admin.token).await.expect(204);
}

async fn expired_invite_is_gone(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.signup("bob").await;
    let r = invite(&app, org, &ada, &bob.email, "member").await;
    let token = r["token"].as_str().unwrap();
    let id: Uuid = r["id"].as_str().unwrap().parse().unwrap();

    // Move its expiry into the past.
    let past = orgboard::db::now() - chrono::Duration::seconds(1);
    let mut tx = app
        .state
        .db
        .write(Scope::tenant(ada.id, org))
        .await
        .unwrap();
    let n = orgboard::on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE invites SET expires_at = $1 WHERE org_id = $2 AND id = $3"
    )
    .bind(past)
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    assert_eq!(n, 1);
    tx.commit().await.unwrap();

    let count = app.audit_count(org).await;
    accept(&app, &bob, token)
        .await
        .expect_problem(410, "invite_expired");
    assert!(!is_member(&app, org, &bob).await);
    assert_eq!(app.audit_count(org).await, count);
    let list = app.get(&invites_path(org), &ada.token).await.expect(200);
    assert_eq!(list.json["items"][0]["status"], "expired");
    // An expired invite no longer blocks a new one.
    let fresh = invite(&app, org, &ada, &bob.email, "viewer").await;
    accept(&app, &bob, token)
        .await
        .expect_problem(410, "invite_expired");
    accept(&app, &bob, fresh["token"].as_str().unwrap())
        .await
        .expect(200);
}

async fn garbage_tokens_are_not_found(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.signup("bob").await;
    let real = invite(&app, org, &ada, &bob.email, "member").await;
    let real = real["token"].as_str().unwrap();
    let secret = secret_of(real);
    let flipped = {
        let mut s = real.to_owned();
        let last = s.pop().unwrap();
        s.push(if last == 'A' { 'B' } else { 'A' });
        s
    };
    let long = format!("obi_{}_{}", org.simple(), "A".repeat(300));
    for t in [
        "",
        "garbage",
        "obi_",
        "obi_nope_nope",
        &format!("obi_{}_{}", org.simple(), "A".repeat(43)),
        &format!("obi_{}_{secret}", Uuid::now_v7().simple()),
        &format!("obi_{}_{secret}", ada.personal_org.simple()),
        &flipped,
        &long,
        secret,
    ] {
        accept(&app, &bob, t)
            .await
            .expect_problem(404, "invite_not_found");
    }
    assert!(!is_member(&app, org, &bob).await);
    // The real one still works.
    accept(&app, &bob, real).await.expect(200);
    // Without a token or signed in: refused before anything else.
    app.post("/api/v1/invites/accept", &bob.token, json!({}))
        .await
        .expect_problem(422, "validation_failed");
    app.call(
        axum::http::Method::POST,
        "/api/v1/invites/accept",
        None,
        Some(json!({"token": real})),
    )
    .await
    .expect_problem(401, "unauthorized");
}

async fn invite_of_a_deleted_org_cannot_be_accepted(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.signup("bob").await;
    let r = invite(&app, org, &ada, &bob.email, "member").await;
    app.delete(&format!("/api/v1/orgs/{org}"), &ada.token)
        .await
        .expect(204);
    accept(&app, &bob, r["token"].as_str().unwrap())
        .await
        .expect_problem(404, "invite_not_found");
    let orgs = app.get("/api/v1/orgs", &bob.token).await.expect(200);
    assert_eq!(
        orgs.json["items"].as_array().unwrap().len(),
        1,
        "only his personal org"
    );
}

async fn invite_email_is_written_to_the_outbox_by_the_job(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme Rockets").await;
    // Nothing queued yet (sign-up and org creation send no mail).
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 0);
    assert!(outbox_files(&app).is_empty());

    let r = invite(&app, org, &ada, "Bob.Builder@example.com", "admin").await;
    let token = r["token"].as_str().unwrap();
    // The worker is off in tests: the job waits in the queue.
    assert!(outbox_files(&app).is_empty());
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 1);
    let files = outbox_files(&app);
    assert_eq!(files.len(), 1, "{files:?}");
    let mail = quoted_printable_decode(&std::fs::read_to_string(&files[0]).unwrap());
    assert!(mail.contains("To: Bob.Builder@example.com"), "{mail}");
    assert!(mail.contains(token), "{mail}");
    assert!(mail.contains("Acme Rockets"), "{mail}");
    assert!(mail.contains("as admin"), "{mail}");

    // Done jobs are gone: the queue is empty and holds no token.
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 0);
    assert_eq!(outbox_files(&app).len(), 1);
    let mut tx = app.state.db.system_read().await.unwrap();
    let left = orgboard::on_tx!(&mut tx, |c| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM jobs"
    )
    .fetch_one(c)
    .await)
    .unwrap();
    drop(tx);
    assert_eq!(left, 0);

    // A refused invite enqueues nothing.
    app.post(
        &invites_path(org),
        &ada.token,
        json!({"email": "bob.builder@example.com", "role": "admin"}),
    )
    .await
    .expect_problem(409, "invite_pending");
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 0);

    // Two more invites: two more files.
    invite(&app, org, &ada, "c@example.com", "member").await;
    invite(&app, org, &ada, "d@example.com", "viewer").await;
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 2);
    assert_eq!(outbox_files(&app).len(), 3);
}

async fn job_enqueued_in_a_rolled_back_transaction_never_exists(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let job = orgboard::jobs::Job::InviteEmail(orgboard::email::InviteEmail {
        org_id: org,
        invite_id: Uuid::now_v7(),
        to: "ghost@example.com".into(),
        org_name: "Acme".into(),
        inviter_name: "Ada".into(),
        role: "member".into(),
        token: "obi_ghost_ghostghostghostghostghost".into(),
        expires_at: chrono::Utc::now(),
    });
    {
        let mut tx = app
            .state
            .db
            .write(Scope::tenant(ada.id, org))
            .await
            .unwrap();
        orgboard::jobs::enqueue_in(&mut tx, &job).await.unwrap();
        // Dropped without commit: rolled back.
    }
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 0);
    assert!(outbox_files(&app).is_empty());

    // The same job in a committed transaction does run (the test can fail).
    let mut tx = app
        .state
        .db
        .write(Scope::tenant(ada.id, org))
        .await
        .unwrap();
    orgboard::jobs::enqueue_in(&mut tx, &job).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 1);
    // It names no pending invite, so the job completes without mailing.
    assert!(outbox_files(&app).is_empty());
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 0);
}

async fn invite_audit_rows_never_hold_the_token(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.signup("bob").await;
    let accepted = invite(&app, org, &ada, &bob.email, "admin").await;
    let revoked = invite(&app, org, &ada, "gone@example.com", "member").await;
    let accepted_id = accepted["id"].as_str().unwrap();
    let revoked_id = revoked["id"].as_str().unwrap();
    let tokens = [
        accepted["token"].as_str().unwrap().to_owned(),
        revoked["token"].as_str().unwrap().to_owned(),
    ];
    app.delete(&format!("{}/{revoked_id}", invites_path(org)), &ada.token)
        .await
        .expect(204);
    accept(&app, &bob, &tokens[0]).await.expect(200);

    let log = app
        .get(
            &format!("/api/v1/orgs/{org}/audit-log?limit=200"),
            &ada.token,
        )
        .await
        .expect(200);
    let items = log.json["items"].as_array().unwrap();
    let find = |action: &str, entity: &str| -> Value {
        let found: Vec<&Value> = items
            .iter()
            .filter(|e| e["action"] == action && e["entity_id"] == entity)
            .collect();
        assert_eq!(found.len(), 1, "{action} {entity}: {}", log.text);
        found[0].clone()
    };
    let created = find("invite.created", accepted_id);
    assert_eq!(created["actor_id"], ada.id.to_string());
    assert_eq!(created["entity_type"], "invite");
    assert_eq!(created["payload"]["email"], bob.email.as_str());
    assert_eq!(created["payload"]["role"], "admin");
    find("invite.created", revoked_id);
    let rev = find("invite.revoked", revoked_id);
    assert_eq!(rev["actor_id"], ada.id.to_string());
    assert_eq!(rev["payload"]["email"], "gone@example.com");
    let acc = find("invite.accepted", accepted_id);
    assert_eq!(acc["actor_id"], bob.id.to_string());
    assert_eq!(acc["payload"]["user_id"], bob.id.to_string());
    let joined = find("member.joined", &bob.id.to_string());
    assert_eq!(joined["actor_id"], bob.id.to_string());
    assert_eq!(joined["entity_type"], "membership");
    assert_eq!(joined["payload"]["role"], "admin");
    assert_eq!(joined["payload"]["invite_id"], accepted_id);

    // No token, nor its secret part, anywhere in the log.
    let mut all = Vec::new();
    strings(&log.json, &mut all);
    for t in &tokens {
        for s in &all {
            assert!(
                !s.contains(t.as_str()) && !s.contains(secret_of(t)),
                "token in audit log: {s}"
            );
        }
    }
    // Also straight from the table, payloads included.
    let mut tx = app.state.db.read(Scope::tenant(ada.id, org)).await.unwrap();
    let payloads: Vec<String> = orgboard::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT CAST(payload AS TEXT) FROM audit_log WHERE org_id = $1"
    )
    .bind(org)
    .fetch_all(c)
    .await)
    .unwrap();
    drop(tx);
    assert!(payloads.len() >= 6, "{payloads:?}");
    for p in &payloads {
        for t in &tokens {
            assert!(!p.contains(secret_of(t)), "token in payload {p}");
        }
    }
}

async fn invite_revoked_before_its_job_runs_is_not_mailed(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let kept = app
        .post(
            &invites_path(org),
            &ada.token,
            json!({ "email": "kept@example.com", "role": "member" }),
        )
        .await
        .expect(201);
    let revoked = app
        .post(
            &invites_path(org),
            &ada.token,
            json!({ "email": "revoked@example.com", "role": "member" }),
        )
        .await
        .expect(201);
    let id = revoked.json["id"].as_str().unwrap();
    app.delete(&format!("{}/{id}", invites_path(org)), &ada.token)
        .await
        .expect(204);
    assert_eq!(orgboard::jobs::run_due(&app.state).await.unwrap(), 2);
    let files = outbox_files(&app);
    assert_eq!(files.len(), 1, "only the pending invite is mailed");
    let mail = quoted_printable_decode(&std::fs::read_to_string(&files[0]).unwrap());
    assert!(mail.contains("kept@example.com"));
    assert!(mail.contains(kept.json["token"].as_str().unwrap()));
}

/// The data directory, the SQLite file (password hashes) with its WAL, the
/// outbox and each mail in it (invite links) are this user's only (before:
/// 0644, readable by every local account).
async fn secrets_on_disk_are_readable_by_the_owner_only(app: TestApp) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let owner = app.signup("disk").await;
    let org = app.create_org(&owner, "Disk").await;
    app.post(
        &format!("/api/v1/orgs/{org}/invites"),
        &owner.token,
        json!({ "email": "new@example.com", "role": "member" }),
    )
    .await
    .expect(201);
    orgboard::jobs::run_due(&app.state).await.unwrap();
    let files = outbox_files(&app);
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&files[0]), 0o600, "{}", files[0].display());
    assert_eq!(mode(&app.dir.path().join("outbox")), 0o700);
    if app.backend == orgboard::db::Backend::Sqlite {
        for f in ["orgboard.db", "orgboard.db-wal", "orgboard.db-shm"] {
            assert_eq!(mode(&app.dir.path().join(f)), 0o600, "{f}");
        }
    }
    // A data directory left open by an older version is closed at start.
    let old = app.dir.path().join("old-data");
    std::fs::create_dir(&old).unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    orgboard::db::private_dir(&old).unwrap();
    assert_eq!(mode(&old), 0o700);
}
