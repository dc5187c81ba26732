//! Organizations: create (creator is owner), list mine with my role and
//! keyset pagination, read by id and slug, rename / change slug (admin+),
//! soft-delete (owner), and what a deleted organization looks like.

use std::collections::HashSet;

use crate::common::{TestApp, TestUser};
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    token_of_an_account_that_no_longer_exists_is_401,
    invisible_and_bidi_names_are_refused,
    create_makes_the_creator_owner_and_derives_a_slug,
    create_uses_a_given_slug_and_refuses_a_taken_one,
    create_refuses_invalid_name_and_slug,
    list_mine_shows_my_role_in_each,
    list_mine_pages_by_keyset_without_repeats_or_gaps,
    list_mine_refuses_bad_limits_and_cursors,
    read_by_id_and_by_slug,
    unknown_and_foreign_orgs_are_the_same_404,
    admin_renames_and_changes_slug_member_cannot,
    update_refuses_invalid_and_taken_slugs,
    delete_is_owner_only,
    deleted_org_answers_404_everywhere_and_frees_its_slug,
);

fn slug_of(name: &str) -> String {
    format!("{name}-{}", &Uuid::now_v7().simple().to_string()[20..])
}

/// The audit rows of `org` with `action`, newest first (read as `viewer`).
async fn audit_rows(app: &TestApp, org: Uuid, viewer: &TestUser, action: &str) -> Vec<Value> {
    app.get(
        &format!("/api/v1/orgs/{org}/audit-log?action={action}&limit=200"),
        &viewer.token,
    )
    .await
    .expect(200)
    .json["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn field_names(problem: &Value) -> Vec<String> {
    let mut f: Vec<String> = problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| {
            assert!(e["message"].is_string(), "{e}");
            e["field"].as_str().unwrap().to_owned()
        })
        .collect();
    f.sort();
    f
}

async fn create_makes_the_creator_owner_and_derives_a_slug(app: TestApp) {
    let ada = app.signup("ada").await;
    let r = app
        .post(
            "/api/v1/orgs",
            &ada.token,
            json!({"name": "  Acme Rockets & Co  "}),
        )
        .await
        .expect(201);
    let org: Uuid = r.json["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(r.json["name"], "Acme Rockets & Co", "name is trimmed");
    assert_eq!(r.json["role"], "owner");
    assert_eq!(r.json["is_personal"], false);
    assert_eq!(r.json["created_by"], ada.id.to_string());
    // The name's own slug while it is free (this test's database is new).
    let slug = r.json["slug"].as_str().unwrap();
    assert_eq!(slug, "acme-rockets-co", "derived slug");
    assert!(
        slug.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{slug}"
    );

    // The creator is the one owner in the member list.
    let members = app
        .get(&format!("/api/v1/orgs/{org}/members"), &ada.token)
        .await
        .expect(200);
    let items = members.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["user_id"], ada.id.to_string());
    assert_eq!(items[0]["role"], "owner");

    // Creation is logged: org.created and the owner's member.joined.
    let created = audit_rows(&app, org, &ada, "org.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["actor_id"], ada.id.to_string());
    assert_eq!(created[0]["entity_id"], org.to_string());
    assert_eq!(created[0]["payload"]["slug"], slug);
    let joined = audit_rows(&app, org, &ada, "member.joined").await;
    assert_eq!(joined.len(), 1);
    assert_eq!(joined[0]["payload"]["role"], "owner");

    // Then a short suffix: two orgs with the same name get different slugs.
    let r2 = app
        .post(
            "/api/v1/orgs",
            &ada.token,
            json!({"name": "Acme Rockets & Co"}),
        )
        .await
        .expect(201);
    let second = r2.json["slug"].as_str().unwrap();
    assert!(
        second.starts_with("acme-rockets-co-") && second.len() == "acme-rockets-co-".len() + 6,
        "{second}"
    );
}

async fn create_uses_a_given_slug_and_refuses_a_taken_one(app: TestApp) {
    let ada = app.signup("ada").await;
    let bob = app.signup("bob").await;
    let slug = slug_of("acme");
    let r = app
        .post(
            "/api/v1/orgs",
            &ada.token,
            json!({"name": "Acme", "slug": slug}),
        )
        .await
        .expect(201);
    assert_eq!(r.json["slug"], slug.as_str());

    // Taken, whoever asks (another tenant's slug is taken too).
    let before = app.get("/api/v1/orgs", &bob.token).await.expect(200);
    app.post(
        "/api/v1/orgs",
        &bob.token,
        json!({"name": "Other", "slug": slug}),
    )
    .await
    .expect_problem(409, "slug_taken");
    app.post(
        "/api/v1/orgs",
        &ada.token,
        json!({"name": "Again", "slug": slug}),
    )
    .await
    .expect_problem(409, "slug_taken");
    // Nothing was created by the refused requests.
    let after = app.get("/api/v1/orgs", &bob.token).await.expect(200);
    assert_eq!(before.json["items"], after.json["items"]);
    let ada_orgs = app.get("/api/v1/orgs", &ada.token).await.expect(200);
    assert_eq!(ada_orgs.json["items"].as_array().unwrap().len(), 2);
}

async fn create_refuses_invalid_name_and_slug(app: TestApp) {
    let ada = app.signup("ada").await;
    let cases = [
        (json!({"name": ""}), vec!["name"]),
        (json!({"name": "   "}), vec!["name"]),
        (json!({"name": "x".repeat(101)}), vec!["name"]),
        (json!({"name": "bad\u{7}name"}), vec!["name"]),
        (json!({"name": "Ok", "slug": "Not Valid"}), vec!["slug"]),
        (json!({"name": "Ok", "slug": "a"}), vec!["slug"]),
        (json!({"name": "Ok", "slug": "x".repeat(65)}), vec!["slug"]),
        (json!({"name": "Ok", "slug": "-edge"}), vec!["slug"]),
        (json!({"name": "Ok", "slug": "a--b"}), vec!["slug"]),
        (json!({"name": "Ok", "slug": "acme_co"}), vec!["slug"]),
        (
            json!({"name": "Ok", "slug": Uuid::now_v7().to_string()}),
            vec!["slug"],
        ),
        (json!({"name": "", "slug": "UPPER"}), vec!["name", "slug"]),
    ];
    for (body, fields) in cases {
        let r = app
            .post("/api/v1/orgs", &ada.token, body.clone())
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(field_names(&r.json), fields, "body {body}");
    }
    // A name of exactly 100 characters is fine; only the personal org exists
    // besides it.
    app.post("/api/v1/orgs", &ada.token, json!({"name": "x".repeat(100)}))
        .await
        .expect(201);
    let orgs = app.get("/api/v1/orgs", &ada.token).await.expect(200);
    assert_eq!(orgs.json["items"].as_array().unwrap().len(), 2);
}

async fn list_mine_shows_my_role_in_each(app: TestApp) {
    let ada = app.signup("ada").await;
    let bob = app.signup("bob").await;
    let acme = app.create_org(&ada, "Acme").await;
    let globex = app.create_org(&ada, "Globex").await;
    let _bobs = app.create_org(&bob, "Bob's own").await;
    app.join(acme, &ada, &bob, "admin").await;
    app.join(globex, &ada, &bob, "viewer").await;

    let r = app.get("/api/v1/orgs", &bob.token).await.expect(200);
    let items = r.json["items"].as_array().unwrap();
    let roles: Vec<(String, String)> = items
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap().to_owned(),
                o["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(items.len(), 4, "personal, own, acme, globex: {roles:?}");
    let role_in = |id: Uuid| {
        roles
            .iter()
            .find(|(i, _)| *i == id.to_string())
            .map(|(_, r)| r.as_str())
    };
    assert_eq!(role_in(acme), Some("admin"));
    assert_eq!(role_in(globex), Some("viewer"));
    assert_eq!(role_in(bob.personal_org), Some("owner"));
    // Ada's personal org is not Bob's.
    assert_eq!(role_in(ada.personal_org), None);
    assert!(r.json["next_cursor"].is_null());
}

/// Follows `next_cursor` from `first` (a path with `limit=`), returning ids
/// in order and the number of pages.
async fn collect_pages(app: &TestApp, token: &str, first: &str) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut pages = 0;
    let mut path = first.to_owned();
    loop {
        let r = app.get(&path, token).await.expect(200);
        pages += 1;
        for item in r.json["items"].as_array().unwrap() {
            ids.push(item["id"].as_str().unwrap().to_owned());
        }
        match r.json["next_cursor"].as_str() {
            Some(c) => path = format!("{first}&cursor={c}"),
            None => break,
        }
        assert!(pages < 20, "pagination does not end");
    }
    (ids, pages)
}

async fn list_mine_pages_by_keyset_without_repeats_or_gaps(app: TestApp) {
    let ada = app.signup("ada").await;
    let mut expected: HashSet<String> = HashSet::from([ada.personal_org.to_string()]);
    for n in ["One", "Two", "Three"] {
        expected.insert(app.create_org(&ada, n).await.to_string());
    }
    // Someone else's orgs never show up.
    let bob = app.signup("bob").await;
    app.create_org(&bob, "Bob's").await;

    let first = app
        .get("/api/v1/orgs?limit=2", &ada.token)
        .await
        .expect(200);
    assert_eq!(first.json["items"].as_array().unwrap().len(), 2);
    assert!(first.json["next_cursor"].is_string());

    let (ids, pages) = collect_pages(&app, &ada.token, "/api/v1/orgs?limit=2").await;
    assert_eq!(pages, 2);
    assert_eq!(ids.len(), 4, "{ids:?}");
    let seen: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(seen.len(), ids.len(), "no repeats: {ids:?}");
    assert_eq!(seen, expected);
    // Same order as one big page.
    let all = app
        .get("/api/v1/orgs?limit=200", &ada.token)
        .await
        .expect(200);
    let all_ids: Vec<String> = all.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, all_ids);

    let (ids1, pages1) = collect_pages(&app, &ada.token, "/api/v1/orgs?limit=1").await;
    assert_eq!(pages1, 4);
    assert_eq!(ids1, all_ids);
}

async fn list_mine_refuses_bad_limits_and_cursors(app: TestApp) {
    let ada = app.signup("ada").await;
    let bob = app.signup("bob").await;
    for n in ["One", "Two"] {
        app.create_org(&ada, n).await;
    }
    app.create_org(&bob, "Bob's").await;
    for limit in ["0", "201"] {
        let r = app
            .get(&format!("/api/v1/orgs?limit={limit}"), &ada.token)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(field_names(&r.json), ["limit"]);
    }
    app.get("/api/v1/orgs?limit=200", &ada.token)
        .await
        .expect(200);
    app.get("/api/v1/orgs?limit=1", &ada.token)
        .await
        .expect(200);

    let r = app
        .get("/api/v1/orgs?limit=1", &ada.token)
        .await
        .expect(200);
    let cursor = r.json["next_cursor"].as_str().unwrap().to_owned();
    // The genuine cursor works.
    app.get(&format!("/api/v1/orgs?limit=1&cursor={cursor}"), &ada.token)
        .await
        .expect(200);

    // Altered in one character, anywhere: refused.
    for i in [0, cursor.len() / 2, cursor.len() - 1] {
        let mut bytes = cursor.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(bytes).unwrap();
        app.get(&format!("/api/v1/orgs?limit=1&cursor={forged}"), &ada.token)
            .await
            .expect_problem(400, "invalid_cursor");
    }
    for forged in ["garbage", "AAAA", &"A".repeat(2000)] {
        app.get(&format!("/api/v1/orgs?cursor={forged}"), &ada.token)
            .await
            .expect_problem(400, "invalid_cursor");
    }
    // Ada's cursor does not page Bob's list.
    app.get(&format!("/api/v1/orgs?limit=1&cursor={cursor}"), &bob.token)
        .await
        .expect_problem(400, "invalid_cursor");
}

async fn read_by_id_and_by_slug(app: TestApp) {
    let ada = app.signup("ada").await;
    let slug = slug_of("acme");
    let created = app
        .post(
            "/api/v1/orgs",
            &ada.token,
            json!({"name": "Acme", "slug": slug}),
        )
        .await
        .expect(201);
    let id = created.json["id"].as_str().unwrap();
    let by_id = app
        .get(&format!("/api/v1/orgs/{id}"), &ada.token)
        .await
        .expect(200);
    let by_slug = app
        .get(&format!("/api/v1/orgs/{slug}"), &ada.token)
        .await
        .expect(200);
    assert_eq!(by_id.json, created.json);
    assert_eq!(by_slug.json, created.json);

    // Every role may read, and sees its own role.
    let org: Uuid = id.parse().unwrap();
    let viewer = app.member(org, &ada, "viewer").await;
    let r = app
        .get(&format!("/api/v1/orgs/{slug}"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(r.json["role"], "viewer");
    assert_eq!(r.json["id"], id);
}

async fn unknown_and_foreign_orgs_are_the_same_404(app: TestApp) {
    let ada = app.signup("ada").await;
    let eve = app.signup("eve").await;
    let slug = slug_of("acme");
    let r = app
        .post(
            "/api/v1/orgs",
            &ada.token,
            json!({"name": "Acme", "slug": slug}),
        )
        .await
        .expect(201);
    let id = r.json["id"].as_str().unwrap().to_owned();
    let mut bodies = Vec::new();
    for path in [
        format!("/api/v1/orgs/{id}"),
        format!("/api/v1/orgs/{slug}"),
        format!("/api/v1/orgs/{}", Uuid::now_v7()),
        "/api/v1/orgs/no-such-org".to_owned(),
        format!("/api/v1/orgs/{}", "x".repeat(300)),
    ] {
        let r = app
            .get(&path, &eve.token)
            .await
            .expect_problem(404, "not_found");
        bodies.push(r.json["detail"].clone());
        app.patch(&path, &eve.token, json!({"name": "Mine now"}))
            .await
            .expect_problem(404, "not_found");
        app.delete(&path, &eve.token)
            .await
            .expect_problem(404, "not_found");
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // Untouched.
    let r = app
        .get(&format!("/api/v1/orgs/{id}"), &ada.token)
        .await
        .expect(200);
    assert_eq!(r.json["name"], "Acme");
}

async fn admin_renames_and_changes_slug_member_cannot(app: TestApp) {
    let ada = app.signup("ada").await;
    let old_slug = slug_of("acme");
    let r = app
        .post(
            "/api/v1/orgs",
            &ada.token,
            json!({"name": "Acme", "slug": old_slug}),
        )
        .await
        .expect(201);
    let org: Uuid = r.json["id"].as_str().unwrap().parse().unwrap();
    let admin = app.member(org, &ada, "admin").await;
    let member = app.member(org, &ada, "member").await;
    let viewer = app.member(org, &ada, "viewer").await;

    for u in [&member, &viewer] {
        app.patch(
            &format!("/api/v1/orgs/{org}"),
            &u.token,
            json!({"name": "Hijacked"}),
        )
        .await
        .expect_problem(403, "forbidden");
    }
    assert!(audit_rows(&app, org, &ada, "org.updated").await.is_empty());

    let r = app
        .patch(
            &format!("/api/v1/orgs/{org}"),
            &admin.token,
            json!({"name": "Acme Two"}),
        )
        .await
        .expect(200);
    assert_eq!(r.json["name"], "Acme Two");
    assert_eq!(r.json["slug"], old_slug.as_str());
    assert_eq!(r.json["role"], "admin");
    let rows = audit_rows(&app, org, &ada, "org.updated").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], admin.id.to_string());
    assert_eq!(rows[0]["entity_type"], "organization");
    assert_eq!(rows[0]["entity_id"], org.to_string());
    assert_eq!(
        rows[0]["payload"],
        json!({"name": {"from": "Acme", "to": "Acme Two"}})
    );

    // Slug change: the new slug resolves, the old one no longer does.
    let new_slug = slug_of("acme-two");
    let r = app
        .patch(
            &format!("/api/v1/orgs/{old_slug}"),
            &admin.token,
            json!({"slug": new_slug}),
        )
        .await
        .expect(200);
    assert_eq!(r.json["slug"], new_slug.as_str());
    assert_eq!(r.json["name"], "Acme Two");
    app.get(&format!("/api/v1/orgs/{new_slug}"), &member.token)
        .await
        .expect(200);
    app.get(&format!("/api/v1/orgs/{old_slug}"), &member.token)
        .await
        .expect_problem(404, "not_found");
    let rows = audit_rows(&app, org, &ada, "org.updated").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0]["payload"],
        json!({"slug": {"from": old_slug, "to": new_slug}}),
        "newest first, only what changed"
    );

    // A PATCH that changes nothing writes nothing.
    let before = app.audit_count(org).await;
    app.patch(
        &format!("/api/v1/orgs/{org}"),
        &ada.token,
        json!({"name": "Acme Two"}),
    )
    .await
    .expect(200);
    assert_eq!(app.audit_count(org).await, before);

    let r = app
        .get(&format!("/api/v1/orgs/{org}"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(r.json["name"], "Acme Two");
}

async fn update_refuses_invalid_and_taken_slugs(app: TestApp) {
    let ada = app.signup("ada").await;
    let bob = app.signup("bob").await;
    let org = app.create_org(&ada, "Acme").await;
    let bobs_slug = slug_of("globex");
    app.post(
        "/api/v1/orgs",
        &bob.token,
        json!({"name": "Globex", "slug": bobs_slug}),
    )
    .await
    .expect(201);
    let mine = app
        .post(
            "/api/v1/orgs",
            &ada.token,
            json!({"name": "Mine", "slug": slug_of("mine")}),
        )
        .await
        .expect(201);
    let before = app
        .get(&format!("/api/v1/orgs/{org}"), &ada.token)
        .await
        .expect(200);
    let count = app.audit_count(org).await;

    for (body, fields) in [
        (json!({"name": ""}), vec!["name"]),
        (json!({"slug": "No Spaces"}), vec!["slug"]),
        (
            json!({"name": "x".repeat(101), "slug": "-x-"}),
            vec!["name", "slug"],
        ),
    ] {
        let r = app
            .patch(&format!("/api/v1/orgs/{org}"), &ada.token, body)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(field_names(&r.json), fields);
    }
    // Taken by another tenant's org (invisible to Ada) and by one of her own.
    let r = app
        .patch(
            &format!("/api/v1/orgs/{org}"),
            &ada.token,
            json!({"slug": bobs_slug}),
        )
        .await
        .expect_problem(409, "slug_taken");
    assert_eq!(field_names(&r.json), ["slug"]);
    app.patch(
        &format!("/api/v1/orgs/{org}"),
        &ada.token,
        json!({"name": "Renamed", "slug": mine.json["slug"]}),
    )
    .await
    .expect_problem(409, "slug_taken");

    let after = app
        .get(&format!("/api/v1/orgs/{org}"), &ada.token)
        .await
        .expect(200);
    assert_eq!(before.json, after.json, "nothing changed");
    assert_eq!(app.audit_count(org).await, count, "nothing logged");
    app.get(&format!("/api/v1/orgs/{bobs_slug}"), &bob.token)
        .await
        .expect(200);
}

async fn delete_is_owner_only(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let member = app.member(org, &ada, "member").await;
    for u in [&admin, &member] {
        app.delete(&format!("/api/v1/orgs/{org}"), &u.token)
            .await
            .expect_problem(403, "forbidden");
    }
    app.get(&format!("/api/v1/orgs/{org}"), &admin.token)
        .await
        .expect(200);
    assert!(audit_rows(&app, org, &ada, "org.deleted").await.is_empty());

    // A second owner may delete too.
    app.patch(
        &format!("/api/v1/orgs/{org}/members/{}", admin.id),
        &ada.token,
        json!({"role": "owner"}),
    )
    .await
    .expect(200);
    let count = app.audit_count(org).await;
    let r = app
        .delete(&format!("/api/v1/orgs/{org}"), &admin.token)
        .await
        .expect(204);
    assert!(r.text.is_empty());
    assert_eq!(
        app.audit_count(org).await,
        count + 1,
        "org.deleted is logged"
    );
}

async fn deleted_org_answers_404_everywhere_and_frees_its_slug(app: TestApp) {
    let ada = app.signup("ada").await;
    let slug = slug_of("acme");
    let r = app
        .post(
            "/api/v1/orgs",
            &ada.token,
            json!({"name": "Acme", "slug": slug}),
        )
        .await
        .expect(201);
    let org: Uuid = r.json["id"].as_str().unwrap().parse().unwrap();
    let member = app.member(org, &ada, "member").await;
    let invite = app
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &ada.token,
            json!({"email": "late@example.com", "role": "member"}),
        )
        .await
        .expect(201);
    let invite_id = invite.json["id"].as_str().unwrap().to_owned();
    let count = app.audit_count(org).await;

    app.delete(&format!("/api/v1/orgs/{slug}"), &ada.token)
        .await
        .expect(204);
    assert_eq!(app.audit_count(org).await, count + 1, "org.deleted logged");

    for org_ref in [org.to_string(), slug.clone()] {
        let base = format!("/api/v1/orgs/{org_ref}");
        for u in [&ada, &member] {
            app.get(&base, &u.token)
                .await
                .expect_problem(404, "not_found");
            app.patch(&base, &u.token, json!({"name": "Back"}))
                .await
                .expect_problem(404, "not_found");
            app.delete(&base, &u.token)
                .await
                .expect_problem(404, "not_found");
            for sub in ["members", "invites", "audit-log"] {
                app.get(&format!("{base}/{sub}"), &u.token)
                    .await
                    .expect_problem(404, "not_found");
            }
            app.patch(
                &format!("{base}/members/{}", member.id),
                &u.token,
                json!({"role": "admin"}),
            )
            .await
            .expect_problem(404, "not_found");
            app.delete(&format!("{base}/members/{}", u.id), &u.token)
                .await
                .expect_problem(404, "not_found");
            app.post(
                &format!("{base}/invites"),
                &u.token,
                json!({"email": "x@example.com", "role": "member"}),
            )
            .await
            .expect_problem(404, "not_found");
            app.delete(&format!("{base}/invites/{invite_id}"), &u.token)
                .await
                .expect_problem(404, "not_found");
        }
    }
    // Nothing happened in the deleted org after its deletion.
    assert_eq!(app.audit_count(org).await, count + 1);
    // It is gone from "my organizations".
    for u in [&ada, &member] {
        let r = app.get("/api/v1/orgs", &u.token).await.expect(200);
        assert!(
            !r.json["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["id"] == org.to_string()),
            "{}",
            r.text
        );
    }

    // The slug is free again, for anyone.
    let bob = app.signup("bob").await;
    let r = app
        .post(
            "/api/v1/orgs",
            &bob.token,
            json!({"name": "New Acme", "slug": slug}),
        )
        .await
        .expect(201);
    let new_org = r.json["id"].as_str().unwrap();
    assert_ne!(new_org, org.to_string());
    let r = app
        .get(&format!("/api/v1/orgs/{slug}"), &bob.token)
        .await
        .expect(200);
    assert_eq!(r.json["id"], new_org);
    // And it resolves to the new org only: Ada, not a member of it, gets 404.
    app.get(&format!("/api/v1/orgs/{slug}"), &ada.token)
        .await
        .expect_problem(404, "not_found");
}

/// A well-signed token whose account is gone (never existed here) is `401
/// account_not_found` on every route outside an organization, never a `500`
/// from a foreign key; inside one it is `404` like any non-member.
async fn token_of_an_account_that_no_longer_exists_is_401(app: TestApp) {
    let ghost = app.state.keys.issue_access(Uuid::now_v7()).unwrap();
    app.post("/api/v1/orgs", &ghost, json!({ "name": "Ghost Inc" }))
        .await
        .expect_problem(401, "account_not_found");
    app.get("/api/v1/me", &ghost)
        .await
        .expect_problem(401, "account_not_found");
    app.patch("/api/v1/me", &ghost, json!({ "name": "Boo" }))
        .await
        .expect_problem(401, "account_not_found");
    let owner = app.signup("owner").await;
    let org = app.create_org(&owner, "Real Inc").await;
    let invite = app
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &owner.token,
            json!({ "email": "ghost@example.com", "role": "member" }),
        )
        .await
        .expect(201);
    app.post(
        "/api/v1/invites/accept",
        &ghost,
        json!({ "token": invite.json["token"] }),
    )
    .await
    .expect_problem(401, "account_not_found");
    app.get(&format!("/api/v1/orgs/{org}"), &ghost)
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        app.get("/api/v1/orgs", &owner.token).await.expect(200).json["items"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing was created for the ghost"
    );
}

/// Names and titles made only of invisible characters are empty; bidi
/// override and isolate controls are refused in them; emails need a domain
/// name, not an address literal.
async fn invisible_and_bidi_names_are_refused(app: TestApp) {
    let owner = app.signup("owner").await;
    for name in ["\u{200B}", " \u{FEFF} ", "Acme\u{202E}gnp.exe"] {
        app.post("/api/v1/orgs", &owner.token, json!({ "name": name }))
            .await
            .expect_problem(422, "validation_failed");
    }
    let org = app.create_org(&owner, "Acme").await;
    let tasks = app.new_list(&owner, org).await;
    for title in [
        "\u{200B}",
        "\u{2060}\u{200D}",
        "invoice\u{202E}fdp.exe",
        "x\u{2066}y",
    ] {
        let r = app
            .post(&tasks, &owner.token, json!({ "title": title }))
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.json["errors"][0]["field"], "title", "{title:?}");
    }
    // Ordinary text of any script, emoji sequences with joiners: accepted.
    app.post(
        &tasks,
        &owner.token,
        json!({ "title": "مرحبا 👩\u{200D}💻 テスト" }),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/v1/orgs/{org}/invites"),
        &owner.token,
        json!({ "email": "x@[127.0.0.1]", "role": "member" }),
    )
    .await
    .expect_problem(422, "validation_failed");
}
