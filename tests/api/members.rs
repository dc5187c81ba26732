//! Members: list, change role, remove, leave; the last-owner rule; what an
//! admin may not do to owners; a removed member's token stops working at once.

use crate::common::{TestApp, TestUser};
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    every_role_lists_members_with_roles,
    member_list_pages_by_keyset,
    owner_changes_roles_and_it_is_logged,
    admin_cannot_grant_owner_nor_touch_owners,
    members_and_viewers_cannot_manage_members,
    last_owner_cannot_demote_themselves_or_leave,
    last_owner_can_step_down_after_promoting_another,
    member_can_leave_and_it_is_logged,
    removed_member_loses_access_on_the_next_request,
    a_removed_member_is_taken_off_the_tasks_of_that_org_only,
    unknown_or_foreign_member_is_404,
    invalid_role_is_refused,
    role_of_the_wrong_json_type_is_a_validation_error,
);

fn member_path(org: Uuid, user: Uuid) -> String {
    format!("/api/v1/orgs/{org}/members/{user}")
}

/// `user_id -> role` as the member list shows it.
async fn roles(app: &TestApp, org: Uuid, by: &TestUser) -> Vec<(String, String)> {
    let r = app
        .get(&format!("/api/v1/orgs/{org}/members"), &by.token)
        .await
        .expect(200);
    let mut v: Vec<(String, String)> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn role_of(app: &TestApp, org: Uuid, by: &TestUser, user: &TestUser) -> Option<String> {
    roles(app, org, by)
        .await
        .into_iter()
        .find(|(id, _)| *id == user.id.to_string())
        .map(|(_, r)| r)
}

async fn audit_rows(app: &TestApp, org: Uuid, by: &TestUser, action: &str) -> Vec<Value> {
    app.get(
        &format!("/api/v1/orgs/{org}/audit-log?action={action}&limit=200"),
        &by.token,
    )
    .await
    .expect(200)
    .json["items"]
        .as_array()
        .unwrap()
        .clone()
}

async fn every_role_lists_members_with_roles(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let member = app.member(org, &ada, "member").await;
    let viewer = app.member(org, &ada, "viewer").await;
    // Someone in another org is not listed.
    let outsider = app.signup("outsider").await;
    app.create_org(&outsider, "Elsewhere").await;

    let mut expected = vec![
        (ada.id.to_string(), "owner".to_owned()),
        (admin.id.to_string(), "admin".to_owned()),
        (member.id.to_string(), "member".to_owned()),
        (viewer.id.to_string(), "viewer".to_owned()),
    ];
    expected.sort();
    for u in [&ada, &admin, &member, &viewer] {
        assert_eq!(roles(&app, org, u).await, expected);
    }
    let r = app
        .get(&format!("/api/v1/orgs/{org}/members"), &viewer.token)
        .await
        .expect(200);
    let me = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user_id"] == viewer.id.to_string())
        .unwrap()
        .clone();
    assert_eq!(me["email"], viewer.email.as_str());
    assert_eq!(me["name"], "viewer");
    assert!(me["joined_at"].is_string());
    assert!(r.json["next_cursor"].is_null());
    app.get(&format!("/api/v1/orgs/{org}/members"), &outsider.token)
        .await
        .expect_problem(404, "not_found");
}

async fn member_list_pages_by_keyset(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    for _ in 0..3 {
        app.member(org, &ada, "member").await;
    }
    let mut ids = Vec::new();
    let mut path = format!("/api/v1/orgs/{org}/members?limit=3");
    let mut pages = 0;
    loop {
        let r = app.get(&path, &ada.token).await.expect(200);
        pages += 1;
        for m in r.json["items"].as_array().unwrap() {
            ids.push(m["user_id"].as_str().unwrap().to_owned());
        }
        match r.json["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/orgs/{org}/members?limit=3&cursor={c}"),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 2);
    let all: Vec<String> = roles(&app, org, &ada)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(all.len(), 4);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, all, "every member once: {ids:?}");
    for limit in [0, 201] {
        app.get(
            &format!("/api/v1/orgs/{org}/members?limit={limit}"),
            &ada.token,
        )
        .await
        .expect_problem(422, "validation_failed");
    }
    // A cursor of another org's member list is refused.
    let other = app.create_org(&ada, "Other").await;
    let r = app
        .get(&format!("/api/v1/orgs/{org}/members?limit=1"), &ada.token)
        .await
        .expect(200);
    let c = r.json["next_cursor"].as_str().unwrap();
    app.get(
        &format!("/api/v1/orgs/{other}/members?cursor={c}"),
        &ada.token,
    )
    .await
    .expect_problem(400, "invalid_cursor");
}

async fn owner_changes_roles_and_it_is_logged(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.member(org, &ada, "member").await;

    let r = app
        .patch(
            &member_path(org, bob.id),
            &ada.token,
            json!({"role": "admin"}),
        )
        .await
        .expect(200);
    assert_eq!(r.json["role"], "admin");
    assert_eq!(r.json["user_id"], bob.id.to_string());
    assert_eq!(
        role_of(&app, org, &ada, &bob).await.as_deref(),
        Some("admin")
    );
    // Bob's very next request acts with the new role (tokens carry no role).
    let r = app
        .get(&format!("/api/v1/orgs/{org}"), &bob.token)
        .await
        .expect(200);
    assert_eq!(r.json["role"], "admin");
    app.get(&format!("/api/v1/orgs/{org}/audit-log"), &bob.token)
        .await
        .expect(200);

    let rows = audit_rows(&app, org, &ada, "member.role_changed").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], ada.id.to_string());
    assert_eq!(rows[0]["entity_type"], "membership");
    assert_eq!(rows[0]["entity_id"], bob.id.to_string());
    assert_eq!(rows[0]["payload"]["user_id"], bob.id.to_string());
    assert_eq!(
        rows[0]["payload"]["role"],
        json!({"from": "member", "to": "admin"})
    );

    // Owner may grant owner, and demote an owner who is not the last one.
    app.patch(
        &member_path(org, bob.id),
        &ada.token,
        json!({"role": "owner"}),
    )
    .await
    .expect(200);
    app.patch(
        &member_path(org, bob.id),
        &ada.token,
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    assert_eq!(
        role_of(&app, org, &ada, &bob).await.as_deref(),
        Some("viewer")
    );
    let rows = audit_rows(&app, org, &ada, "member.role_changed").await;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0]["payload"]["role"],
        json!({"from": "owner", "to": "viewer"})
    );
    assert_eq!(
        rows[1]["payload"]["role"],
        json!({"from": "admin", "to": "owner"})
    );
    let r = app
        .get(&format!("/api/v1/orgs/{org}"), &bob.token)
        .await
        .expect(200);
    assert_eq!(r.json["role"], "viewer");
    app.get(&format!("/api/v1/orgs/{org}/audit-log"), &bob.token)
        .await
        .expect_problem(403, "forbidden");

    // Setting the same role again changes (and logs) nothing.
    let before = app.audit_count(org).await;
    app.patch(
        &member_path(org, bob.id),
        &ada.token,
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    assert_eq!(app.audit_count(org).await, before);

    // Owner removes a member: member.removed with the role they had.
    app.delete(&member_path(org, bob.id), &ada.token)
        .await
        .expect(204);
    let rows = audit_rows(&app, org, &ada, "member.removed").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], ada.id.to_string());
    assert_eq!(rows[0]["entity_id"], bob.id.to_string());
    assert_eq!(rows[0]["payload"]["user_id"], bob.id.to_string());
    assert_eq!(rows[0]["payload"]["role"], "viewer");
    assert!(audit_rows(&app, org, &ada, "member.left").await.is_empty());
    assert_eq!(role_of(&app, org, &ada, &bob).await, None);
}

async fn admin_cannot_grant_owner_nor_touch_owners(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let other_admin = app.member(org, &ada, "admin").await;
    let member = app.member(org, &ada, "member").await;
    let co_owner = app.member(org, &ada, "admin").await;
    app.patch(
        &member_path(org, co_owner.id),
        &ada.token,
        json!({"role": "owner"}),
    )
    .await
    .expect(200);
    let before = roles(&app, org, &ada).await;
    let count = app.audit_count(org).await;

    // Cannot grant owner, to anyone (themselves included).
    for target in [&member, &other_admin, &admin] {
        app.patch(
            &member_path(org, target.id),
            &admin.token,
            json!({"role": "owner"}),
        )
        .await
        .expect_problem(403, "forbidden");
    }
    // Cannot change or remove an owner (even with two owners around).
    for owner in [&ada, &co_owner] {
        for role in ["admin", "member", "viewer"] {
            app.patch(
                &member_path(org, owner.id),
                &admin.token,
                json!({"role": role}),
            )
            .await
            .expect_problem(403, "forbidden");
        }
        app.delete(&member_path(org, owner.id), &admin.token)
            .await
            .expect_problem(403, "forbidden");
    }
    assert_eq!(roles(&app, org, &ada).await, before, "nothing changed");
    assert_eq!(app.audit_count(org).await, count, "nothing logged");

    // What an admin may do: change and remove non-owners, other admins too.
    app.patch(
        &member_path(org, member.id),
        &admin.token,
        json!({"role": "admin"}),
    )
    .await
    .expect(200);
    app.patch(
        &member_path(org, other_admin.id),
        &admin.token,
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    app.delete(&member_path(org, other_admin.id), &admin.token)
        .await
        .expect(204);
    assert_eq!(
        role_of(&app, org, &ada, &member).await.as_deref(),
        Some("admin")
    );
    assert_eq!(role_of(&app, org, &ada, &other_admin).await, None);
    let rows = audit_rows(&app, org, &ada, "member.removed").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], admin.id.to_string());
}

async fn members_and_viewers_cannot_manage_members(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let member = app.member(org, &ada, "member").await;
    let viewer = app.member(org, &ada, "viewer").await;
    let before = roles(&app, org, &ada).await;
    let count = app.audit_count(org).await;
    for (actor, target) in [(&member, &viewer), (&viewer, &member), (&member, &ada)] {
        app.patch(
            &member_path(org, target.id),
            &actor.token,
            json!({"role": "viewer"}),
        )
        .await
        .expect_problem(403, "forbidden");
        app.delete(&member_path(org, target.id), &actor.token)
            .await
            .expect_problem(403, "forbidden");
    }
    // Not even themselves upwards.
    app.patch(
        &member_path(org, member.id),
        &member.token,
        json!({"role": "admin"}),
    )
    .await
    .expect_problem(403, "forbidden");
    assert_eq!(roles(&app, org, &ada).await, before);
    assert_eq!(app.audit_count(org).await, count);
}

async fn last_owner_cannot_demote_themselves_or_leave(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let count = app.audit_count(org).await;
    for role in ["admin", "member", "viewer"] {
        app.patch(&member_path(org, ada.id), &ada.token, json!({"role": role}))
            .await
            .expect_problem(409, "last_owner");
    }
    app.delete(&member_path(org, ada.id), &ada.token)
        .await
        .expect_problem(409, "last_owner");
    assert_eq!(
        role_of(&app, org, &ada, &ada).await.as_deref(),
        Some("owner")
    );
    assert_eq!(app.audit_count(org).await, count);
    // The sole owner of a personal org cannot leave it either.
    app.delete(&member_path(ada.personal_org, ada.id), &ada.token)
        .await
        .expect_problem(409, "last_owner");
    app.get(&format!("/api/v1/orgs/{}", ada.personal_org), &ada.token)
        .await
        .expect(200);
    // Still fully the owner.
    app.get(&format!("/api/v1/orgs/{org}"), &ada.token)
        .await
        .expect(200);
    app.patch(
        &member_path(org, admin.id),
        &ada.token,
        json!({"role": "member"}),
    )
    .await
    .expect(200);
}

async fn last_owner_can_step_down_after_promoting_another(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.member(org, &ada, "admin").await;
    let carol = app.member(org, &ada, "member").await;

    app.patch(
        &member_path(org, bob.id),
        &ada.token,
        json!({"role": "owner"}),
    )
    .await
    .expect(200);
    // Two owners: Ada may now demote herself.
    let r = app
        .patch(
            &member_path(org, ada.id),
            &ada.token,
            json!({"role": "admin"}),
        )
        .await
        .expect(200);
    assert_eq!(r.json["role"], "admin");
    // Now Bob is the last owner: he cannot leave or step down...
    app.delete(&member_path(org, bob.id), &bob.token)
        .await
        .expect_problem(409, "last_owner");
    app.patch(
        &member_path(org, bob.id),
        &bob.token,
        json!({"role": "member"}),
    )
    .await
    .expect_problem(409, "last_owner");
    // ...and Ada, now an admin, cannot touch him.
    app.patch(
        &member_path(org, bob.id),
        &ada.token,
        json!({"role": "member"}),
    )
    .await
    .expect_problem(403, "forbidden");
    // Bob promotes Carol, then leaves.
    app.patch(
        &member_path(org, carol.id),
        &bob.token,
        json!({"role": "owner"}),
    )
    .await
    .expect(200);
    app.delete(&member_path(org, bob.id), &bob.token)
        .await
        .expect(204);
    app.get(&format!("/api/v1/orgs/{org}"), &bob.token)
        .await
        .expect_problem(404, "not_found");

    let mut expected = vec![
        (ada.id.to_string(), "admin".to_owned()),
        (carol.id.to_string(), "owner".to_owned()),
    ];
    expected.sort();
    assert_eq!(roles(&app, org, &carol).await, expected);
    let left = audit_rows(&app, org, &carol, "member.left").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["actor_id"], bob.id.to_string());
    assert_eq!(left[0]["payload"]["role"], "owner");
    // Carol is the last owner now.
    app.delete(&member_path(org, carol.id), &carol.token)
        .await
        .expect_problem(409, "last_owner");
}

async fn member_can_leave_and_it_is_logged(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let member = app.member(org, &ada, "member").await;
    let viewer = app.member(org, &ada, "viewer").await;
    let admin = app.member(org, &ada, "admin").await;

    for u in [&member, &viewer, &admin] {
        let r = app
            .delete(&member_path(org, u.id), &u.token)
            .await
            .expect(204);
        assert!(r.text.is_empty());
        app.get(&format!("/api/v1/orgs/{org}"), &u.token)
            .await
            .expect_problem(404, "not_found");
        // Leaving again: no longer a member at all.
        app.delete(&member_path(org, u.id), &u.token)
            .await
            .expect_problem(404, "not_found");
    }
    assert_eq!(
        roles(&app, org, &ada).await,
        vec![(ada.id.to_string(), "owner".to_owned())]
    );

    let rows = audit_rows(&app, org, &ada, "member.left").await;
    assert_eq!(rows.len(), 3);
    // Newest first: admin, viewer, member.
    for (row, (u, role)) in
        rows.iter()
            .zip([(&admin, "admin"), (&viewer, "viewer"), (&member, "member")])
    {
        assert_eq!(row["actor_id"], u.id.to_string());
        assert_eq!(row["entity_type"], "membership");
        assert_eq!(row["entity_id"], u.id.to_string());
        assert_eq!(row["payload"]["user_id"], u.id.to_string());
        assert_eq!(row["payload"]["role"], role);
    }
    assert!(
        audit_rows(&app, org, &ada, "member.removed")
            .await
            .is_empty()
    );
}

async fn removed_member_loses_access_on_the_next_request(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.member(org, &ada, "admin").await;
    // Bob has access now, with the token he already holds.
    app.get(&format!("/api/v1/orgs/{org}"), &bob.token)
        .await
        .expect(200);
    app.get(&format!("/api/v1/orgs/{org}/audit-log"), &bob.token)
        .await
        .expect(200);

    app.delete(&member_path(org, bob.id), &ada.token)
        .await
        .expect(204);

    // The very next request with the same token is refused, on every route.
    app.get(&format!("/api/v1/orgs/{org}"), &bob.token)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("/api/v1/orgs/{org}/members"), &bob.token)
        .await
        .expect_problem(404, "not_found");
    app.get(&format!("/api/v1/orgs/{org}/audit-log"), &bob.token)
        .await
        .expect_problem(404, "not_found");
    app.patch(
        &format!("/api/v1/orgs/{org}"),
        &bob.token,
        json!({"name": "Revenge"}),
    )
    .await
    .expect_problem(404, "not_found");
    app.post(
        &format!("/api/v1/orgs/{org}/invites"),
        &bob.token,
        json!({"email": "friend@example.com", "role": "admin"}),
    )
    .await
    .expect_problem(404, "not_found");
    let r = app.get("/api/v1/orgs", &bob.token).await.expect(200);
    assert!(
        !r.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["id"] == org.to_string())
    );
    // His token still works elsewhere: he was removed, not logged out.
    app.get(&format!("/api/v1/orgs/{}", bob.personal_org), &bob.token)
        .await
        .expect(200);

    let rows = audit_rows(&app, org, &ada, "member.removed").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["payload"]["role"], "admin");
    assert_eq!(
        app.get(&format!("/api/v1/orgs/{org}"), &ada.token)
            .await
            .expect(200)
            .json["name"],
        "Acme"
    );
}

/// Removing a member unassigns them from every task of that organization —
/// in the task's read, the board view and the assignee filter — and from
/// no task of another organization they belong to.
async fn a_removed_member_is_taken_off_the_tasks_of_that_org_only(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let other = app.create_org(&ada, "Other").await;
    let bob = app.member(org, &ada, "member").await;
    let cleo = app.member(org, &ada, "member").await;
    app.join(other, &ada, &bob, "member").await;
    let tasks = app.new_list(&ada, org).await;
    let new_task = async |path: &str, assignees: Value| {
        let r = app
            .post(
                path,
                &ada.token,
                json!({ "title": "t", "assignee_ids": assignees }),
            )
            .await
            .expect(201);
        r.json["id"].as_str().unwrap().parse::<Uuid>().unwrap()
    };
    let both = new_task(&tasks, json!([bob.id, cleo.id])).await;
    let bobs = new_task(&tasks, json!([bob.id])).await;
    let elsewhere = new_task(&app.new_list(&ada, other).await, json!([bob.id])).await;

    app.delete(&member_path(org, bob.id), &ada.token)
        .await
        .expect(204);

    let assignees = async |org: Uuid, task: Uuid| {
        app.get(&format!("/api/v1/orgs/{org}/tasks/{task}"), &ada.token)
            .await
            .expect(200)
            .json["assignee_ids"]
            .clone()
    };
    assert_eq!(assignees(org, both).await, json!([cleo.id]));
    assert_eq!(assignees(org, bobs).await, json!([]));
    assert_eq!(assignees(other, elsewhere).await, json!([bob.id]));
    let page = app
        .get(
            &format!("/api/v1/orgs/{org}/tasks?assignee_id={}", cleo.id),
            &ada.token,
        )
        .await
        .expect(200);
    let items = page.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["assignee_ids"], json!([cleo.id]));
    let board = page.json["items"][0]["board_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let view = app
        .get(&format!("/api/v1/orgs/{org}/boards/{board}"), &ada.token)
        .await
        .expect(200);
    let shown: Vec<&Value> = view.json["lists"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["assignee_ids"])
        .collect();
    assert_eq!(shown, [&json!([cleo.id]), &json!([])]);
    for org in [org, other] {
        assert_eq!(app.relation_ids_drift(org).await, Vec::<Uuid>::new());
    }
}

async fn unknown_or_foreign_member_is_404(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    // Bob is a member of another of Ada's orgs, not of this one.
    let other = app.create_org(&ada, "Other").await;
    let bob = app.member(other, &ada, "member").await;
    let count = app.audit_count(org).await;
    for user in [bob.id, Uuid::now_v7()] {
        app.patch(
            &member_path(org, user),
            &ada.token,
            json!({"role": "admin"}),
        )
        .await
        .expect_problem(404, "not_found");
        app.delete(&member_path(org, user), &ada.token)
            .await
            .expect_problem(404, "not_found");
    }
    assert_eq!(app.audit_count(org).await, count);
    assert_eq!(
        role_of(&app, other, &ada, &bob).await.as_deref(),
        Some("member")
    );
    app.patch(
        &format!("/api/v1/orgs/{org}/members/not-a-uuid"),
        &ada.token,
        json!({"role": "admin"}),
    )
    .await
    .expect_problem(400, "invalid_path");
}

async fn invalid_role_is_refused(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.member(org, &ada, "member").await;
    for role in [json!("superuser"), json!("Owner"), json!("")] {
        let r = app
            .patch(&member_path(org, bob.id), &ada.token, json!({"role": role}))
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.json["errors"][0]["field"], "role", "{}", r.text);
    }
    app.patch(&member_path(org, bob.id), &ada.token, json!({}))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(
        role_of(&app, org, &ada, &bob).await.as_deref(),
        Some("member")
    );
}

/// `{"role": 1}` is valid JSON with a wrong type: a `422` naming the field,
/// not a `400 malformed_json` claiming the body is not JSON.
async fn role_of_the_wrong_json_type_is_a_validation_error(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.member(org, &ada, "member").await;
    for role in [json!(1), json!(null), json!(true), json!(["admin"])] {
        let r = app
            .patch(&member_path(org, bob.id), &ada.token, json!({"role": role}))
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.json["errors"][0]["field"], "role", "{}", r.text);
    }
    assert_eq!(
        role_of(&app, org, &ada, &bob).await.as_deref(),
        Some("member")
    );
}
