//! Boards, lists, labels and comments: who may create / change / delete
//! them, ordering of lists (and the board view), cascades, uniqueness and
//! validation, and one audit row per change (none for a refused request).

use std::collections::HashSet;

use crate::common::{Resp, TestApp, TestUser};
use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    boards_are_created_and_listed,
    board_view_has_lists_and_tasks_in_order_with_relations,
    boards_are_updated_archived_and_deleted,
    lists_are_created_renamed_and_deleted,
    lists_are_reordered,
    labels,
    comments,
    creating_posts_replay_with_an_idempotency_key,
    collection_cursors_open_only_where_they_were_made,
);

// Each test below runs several independent parts (each in its own
// organization) on one fresh database, which keeps the PostgreSQL runs fast.

/// Creation rights and validation; the listing with and without archived boards.
async fn boards_are_created_and_listed(app: TestApp) {
    boards_are_created_by_admins_and_owners_only(&app).await;
    board_listing_hides_archived_boards_unless_asked(&app).await;
}

/// Rename / describe / archive / restore with from→to audit; delete cascades.
async fn boards_are_updated_archived_and_deleted(app: TestApp) {
    board_updates_rename_describe_archive_and_restore(&app).await;
    board_delete_cascades_to_lists_tasks_and_comments(&app).await;
}

/// Lists: appended by members, renamed by members, deleted by admins with their tasks.
async fn lists_are_created_renamed_and_deleted(app: TestApp) {
    lists_are_appended_by_members_not_viewers(&app).await;
    lists_are_renamed_by_members_not_viewers(&app).await;
    list_delete_is_admin_only_and_takes_its_tasks(&app).await;
}

/// Reordering with after_id / before_id; anchors must be lists of the same board.
async fn lists_are_reordered(app: TestApp) {
    lists_reorder_with_anchors(&app).await;
    list_anchors_must_be_lists_of_the_same_board(&app).await;
}

/// Labels: create / rename / recolour / delete, uniqueness, colours, removal from tasks.
async fn labels(app: TestApp) {
    labels_are_created_renamed_recoloured_and_deleted(&app).await;
    label_names_are_unique_case_insensitively_and_colours_checked(&app).await;
    deleting_a_label_takes_it_off_tasks(&app).await;
}

/// Comments: add and list oldest first, edit by author only, delete by author or admin.
async fn comments(app: TestApp) {
    comments_are_added_by_members_and_listed_oldest_first(&app).await;
    comments_are_edited_only_by_their_author(&app).await;
    comments_are_deleted_by_their_author_or_an_admin(&app).await;
    tasks_count_their_comments_without_a_new_version(&app).await;
}

/// `comment_count` on the task, the board view (also when it was cached)
/// and the task list follows comments added and deleted; the task's version
/// does not move (a comment is no edit of the task, so no `412` for others).
async fn tasks_count_their_comments_without_a_new_version(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let b = new_board(app, org, &owner, "B").await;
    let l = new_list(app, org, &owner, b, "L").await;
    let created = new_task(app, org, &owner, l, json!({ "title": "t" })).await;
    assert_eq!(created["comment_count"], 0, "{created}");
    let t = id_of(&created);
    let count = |v: &Value| v["comment_count"].as_i64();
    let board_count = |v: &Value| count(&v["lists"][0]["tasks"][0]);
    let view = url(org, &format!("/boards/{b}"));
    assert_eq!(
        board_count(&app.get(&view, &owner.token).await.expect(200).json),
        Some(0)
    );

    let c1 = id_of(&new_comment(app, org, &owner, t, "one").await);
    new_comment(app, org, &owner, t, "two").await;
    let task = app
        .get(&url(org, &format!("/tasks/{t}")), &owner.token)
        .await
        .expect(200);
    assert_eq!(count(&task.json), Some(2), "{}", task.json);
    assert_eq!(
        task.json["version"], created["version"],
        "a comment is no new version"
    );
    assert_eq!(
        board_count(&app.get(&view, &owner.token).await.expect(200).json),
        Some(2)
    );
    let listed = app
        .get(&url(org, &format!("/tasks?list_id={l}")), &owner.token)
        .await
        .expect(200);
    assert_eq!(count(&listed.json["items"][0]), Some(2));

    app.delete(&url(org, &format!("/comments/{c1}")), &owner.token)
        .await
        .expect(204);
    app.delete(&url(org, &format!("/comments/{c1}")), &owner.token)
        .await
        .expect(404);
    assert_eq!(
        board_count(&app.get(&view, &owner.token).await.expect(200).json),
        Some(1)
    );
    // Comments added at once each count: the task is locked while one is
    // added (PostgreSQL), so none reads the count another is changing, and
    // the cached view's patches (in the order of the card's revision) end
    // on the last count.
    let adds = (0..12).map(|i| {
        let body = format!("at once {i}");
        let owner = &owner;
        async move { new_comment(app, org, owner, t, &body).await }
    });
    futures_util::future::join_all(adds).await;
    let task = app
        .get(&url(org, &format!("/tasks/{t}")), &owner.token)
        .await
        .expect(200);
    assert_eq!(count(&task.json), Some(13), "{}", task.json);
    assert_eq!(
        board_count(&app.get(&view, &owner.token).await.expect(200).json),
        Some(13)
    );
    // A comment on a task that does not exist counts nowhere.
    let nowhere = url(org, &format!("/tasks/{}/comments", Uuid::now_v7()));
    app.post(&nowhere, &owner.token, json!({ "body": "x" }))
        .await
        .expect(404);
}

// ---------------------------------------------------------------- helpers

fn url(org: Uuid, rest: &str) -> String {
    format!("/api/v1/orgs/{org}{rest}")
}

fn id_of(v: &Value) -> Uuid {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .parse()
        .unwrap()
}

fn ids(items: &Value) -> Vec<Uuid> {
    items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"))
        .iter()
        .map(id_of)
        .collect()
}

/// An organization owned by a fresh user.
async fn org_and_owner(app: &TestApp) -> (TestUser, Uuid) {
    let owner = app.signup("owner").await;
    let org = app.create_org(&owner, "Acme").await;
    (owner, org)
}

async fn new_board(app: &TestApp, org: Uuid, by: &TestUser, name: &str) -> Uuid {
    id_of(
        &app.post(&url(org, "/boards"), &by.token, json!({ "name": name }))
            .await
            .expect(201)
            .json,
    )
}

async fn new_list(app: &TestApp, org: Uuid, by: &TestUser, board: Uuid, name: &str) -> Uuid {
    id_of(
        &app.post(
            &url(org, &format!("/boards/{board}/lists")),
            &by.token,
            json!({ "name": name }),
        )
        .await
        .expect(201)
        .json,
    )
}

async fn new_task(app: &TestApp, org: Uuid, by: &TestUser, list: Uuid, body: Value) -> Value {
    app.post(&url(org, &format!("/lists/{list}/tasks")), &by.token, body)
        .await
        .expect(201)
        .json
}

async fn new_label(app: &TestApp, org: Uuid, by: &TestUser, name: &str) -> Uuid {
    id_of(
        &app.post(&url(org, "/labels"), &by.token, json!({ "name": name }))
            .await
            .expect(201)
            .json,
    )
}

async fn new_comment(app: &TestApp, org: Uuid, by: &TestUser, task: Uuid, body: &str) -> Value {
    app.post(
        &url(org, &format!("/tasks/{task}/comments")),
        &by.token,
        json!({ "body": body }),
    )
    .await
    .expect(201)
    .json
}

/// The newest audit row of `org` (read by an owner or admin).
async fn last_audit(app: &TestApp, org: Uuid, admin: &TestUser) -> Value {
    app.get(&url(org, "/audit-log?limit=1"), &admin.token)
        .await
        .expect(200)
        .json["items"][0]
        .clone()
}

/// Asserts that exactly one audit row was written since the count `before`,
/// with this `(action, entity type, entity id)` and actor; returns its payload.
async fn one_more_row(
    app: &TestApp,
    org: Uuid,
    before: i64,
    admin: &TestUser,
    (action, entity_type, entity): (&str, &str, Uuid),
    actor: &TestUser,
) -> Value {
    assert_eq!(
        app.audit_count(org).await,
        before + 1,
        "exactly one audit row for {action}"
    );
    let row = last_audit(app, org, admin).await;
    assert_eq!(row["action"], action, "{row}");
    assert_eq!(row["entity_type"], entity_type, "{row}");
    assert_eq!(row["entity_id"], entity.to_string(), "{row}");
    assert_eq!(row["actor_id"], actor.id.to_string(), "{row}");
    row["payload"].clone()
}

fn fields(problem: &Resp) -> Vec<String> {
    let mut f: Vec<String> = problem.json["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {}", problem.text))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    f.sort();
    f
}

#[track_caller]
fn expect_invalid(r: Resp, field: &str) {
    let r = r.expect_problem(422, "validation_failed");
    assert_eq!(fields(&r), [field], "{}", r.text);
}

async fn board_view(app: &TestApp, org: Uuid, by: &TestUser, board: Uuid) -> Value {
    app.get(&url(org, &format!("/boards/{board}")), &by.token)
        .await
        .expect(200)
        .json
}

/// The list ids of the board view, in order.
fn view_lists(view: &Value) -> Vec<Uuid> {
    ids(&view["lists"])
}

/// The list ids of `GET …/boards/{board}/lists`, paging two at a time.
async fn listed_lists(app: &TestApp, org: Uuid, by: &TestUser, board: Uuid) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = url(org, &format!("/boards/{board}/lists?limit=2"));
        if let Some(c) = &cursor {
            path += &format!("&cursor={c}");
        }
        let page = app.get(&path, &by.token).await.expect(200).json;
        out.extend(ids(&page["items"]));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(out.len() < 100, "paging does not end");
    }
    out
}

/// Asserts the order of a board's lists, both in `GET …/lists` (paged) and
/// in the board view.
async fn check_order(app: &TestApp, org: Uuid, by: &TestUser, board: Uuid, expected: &[Uuid]) {
    assert_eq!(listed_lists(app, org, by, board).await, expected);
    assert_eq!(view_lists(&board_view(app, org, by, board).await), expected);
}

// ----------------------------------------------------------------- boards

async fn boards_are_created_by_admins_and_owners_only(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let admin = app.member(org, &owner, "admin").await;
    let member = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;

    let n = app.audit_count(org).await;
    let r = app
        .post(
            &url(org, "/boards"),
            &owner.token,
            json!({ "name": "  Roadmap  ", "description": "Q3 plans" }),
        )
        .await
        .expect(201);
    let b = id_of(&r.json);
    assert_eq!(r.json["name"], "Roadmap", "name is trimmed");
    assert_eq!(r.json["description"], "Q3 plans");
    assert_eq!(r.json["org_id"], org.to_string());
    assert_eq!(r.json["archived"], false);
    assert_eq!(r.json["archived_at"], Value::Null);
    assert_eq!(r.json["created_by"], owner.id.to_string());
    let payload = one_more_row(app, org, n, &owner, ("board.created", "board", b), &owner).await;
    assert_eq!(payload["name"], "Roadmap");

    let n = app.audit_count(org).await;
    let r = app
        .post(&url(org, "/boards"), &admin.token, json!({ "name": "Ops" }))
        .await
        .expect(201);
    assert_eq!(r.json["description"], "", "description defaults to empty");
    one_more_row(
        app,
        org,
        n,
        &owner,
        ("board.created", "board", id_of(&r.json)),
        &admin,
    )
    .await;

    // Members and viewers may not; invalid names are refused; nothing logged.
    let n = app.audit_count(org).await;
    for u in [&member, &viewer] {
        app.post(&url(org, "/boards"), &u.token, json!({ "name": "Mine" }))
            .await
            .expect_problem(403, "forbidden");
    }
    let long = "x".repeat(101);
    for bad in ["", "   ", long.as_str()] {
        expect_invalid(
            app.post(&url(org, "/boards"), &owner.token, json!({ "name": bad }))
                .await,
            "name",
        );
    }
    expect_invalid(
        app.post(
            &url(org, "/boards"),
            &owner.token,
            json!({ "name": "ok", "description": "d".repeat(10_001) }),
        )
        .await,
        "description",
    );
    assert_eq!(app.audit_count(org).await, n);
    let listed = app
        .get(&url(org, "/boards"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(listed.json["items"].as_array().unwrap().len(), 2);
}

async fn board_listing_hides_archived_boards_unless_asked(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let viewer = app.member(org, &owner, "viewer").await;
    let a = new_board(app, org, &owner, "A").await;
    let b = new_board(app, org, &owner, "B").await;
    let c = new_board(app, org, &owner, "C").await;
    // Another organization's board never shows.
    let other = app.create_org(&owner, "Other").await;
    new_board(app, other, &owner, "Elsewhere").await;

    let r = app
        .patch(
            &url(org, &format!("/boards/{b}")),
            &owner.token,
            json!({ "archived": true }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["archived"], true);
    assert!(r.json["archived_at"].is_string());

    let active = app
        .get(&url(org, "/boards"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(
        ids(&active.json["items"])
            .into_iter()
            .collect::<HashSet<_>>(),
        HashSet::from([a, c])
    );
    let archived = app
        .get(&url(org, "/boards?archived=true"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(ids(&archived.json["items"]), [b]);
    assert_eq!(archived.json["items"][0]["archived"], true);

    // An archived board stays readable; restoring brings it back.
    board_view(app, org, &viewer, b).await;
    app.patch(
        &url(org, &format!("/boards/{b}")),
        &owner.token,
        json!({ "archived": false }),
    )
    .await
    .expect(200);
    let active = app
        .get(&url(org, "/boards"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(active.json["items"].as_array().unwrap().len(), 3);
    let archived = app
        .get(&url(org, "/boards?archived=true"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(archived.json["items"], json!([]));
}

async fn board_view_has_lists_and_tasks_in_order_with_relations(app: TestApp) {
    let (owner, org) = org_and_owner(&app).await;
    let member = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;
    let board = new_board(&app, org, &owner, "Board").await;
    let l1 = new_list(&app, org, &owner, board, "Todo").await;
    let l2 = new_list(&app, org, &owner, board, "Doing").await;
    let l3 = new_list(&app, org, &owner, board, "Done").await;
    let empty_board = new_board(&app, org, &owner, "Empty").await;
    let other_list = new_list(&app, org, &owner, empty_board, "Elsewhere").await;
    let label = new_label(&app, org, &owner, "bug").await;

    let t1 = id_of(&new_task(&app, org, &owner, l1, json!({ "title": "one" })).await);
    let t2 = new_task(
        &app,
        org,
        &owner,
        l1,
        json!({ "title": "two", "assignee_ids": [member.id], "label_ids": [label] }),
    )
    .await;
    let t2 = id_of(&t2);
    let t3 = id_of(&new_task(&app, org, &owner, l1, json!({ "title": "three" })).await);
    let t4 = id_of(&new_task(&app, org, &owner, l3, json!({ "title": "four" })).await);
    new_task(
        &app,
        org,
        &owner,
        other_list,
        json!({ "title": "not here" }),
    )
    .await;

    // Reorder: list Done first, task three first in Todo.
    app.post(
        &url(org, &format!("/lists/{l3}/move")),
        &owner.token,
        json!({ "before_id": l1 }),
    )
    .await
    .expect(200);
    app.post(
        &url(org, &format!("/tasks/{t3}/move")),
        &owner.token,
        json!({ "list_id": l1, "before_id": t1 }),
    )
    .await
    .expect(200);

    let view = board_view(&app, org, &viewer, board).await;
    assert_eq!(view["id"], board.to_string());
    assert_eq!(view["name"], "Board");
    assert_eq!(view_lists(&view), [l3, l1, l2]);
    let lists = view["lists"].as_array().unwrap();
    assert_eq!(lists[1]["name"], "Todo");
    assert_eq!(lists[1]["board_id"], board.to_string());
    assert_eq!(ids(&lists[0]["tasks"]), [t4]);
    assert_eq!(ids(&lists[1]["tasks"]), [t3, t1, t2]);
    assert_eq!(lists[2]["tasks"], json!([]));
    let two = &lists[1]["tasks"][2];
    assert_eq!(two["assignee_ids"], json!([member.id]));
    assert_eq!(two["label_ids"], json!([label]));
    assert_eq!(lists[1]["tasks"][0]["assignee_ids"], json!([]));
    assert_eq!(lists[1]["tasks"][0]["label_ids"], json!([]));

    let empty = board_view(&app, org, &viewer, empty_board).await;
    assert_eq!(empty["lists"].as_array().unwrap().len(), 1);
    // Unknown and foreign boards are the same 404.
    app.get(
        &url(org, &format!("/boards/{}", Uuid::now_v7())),
        &viewer.token,
    )
    .await
    .expect_problem(404, "not_found");
    let stranger = app.signup("stranger").await;
    let foreign = new_board(&app, stranger.personal_org, &stranger, "Theirs").await;
    app.get(&url(org, &format!("/boards/{foreign}")), &owner.token)
        .await
        .expect_problem(404, "not_found");
}

async fn board_updates_rename_describe_archive_and_restore(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let admin = app.member(org, &owner, "admin").await;
    let member = app.member(org, &owner, "member").await;
    let b = new_board(app, org, &owner, "Old").await;
    let path = url(org, &format!("/boards/{b}"));

    let n = app.audit_count(org).await;
    let r = app
        .patch(&path, &admin.token, json!({ "name": "New" }))
        .await
        .expect(200);
    assert_eq!(r.json["name"], "New");
    let p = one_more_row(app, org, n, &owner, ("board.updated", "board", b), &admin).await;
    assert_eq!(p, json!({ "name": { "from": "Old", "to": "New" } }));

    let n = app.audit_count(org).await;
    app.patch(&path, &owner.token, json!({ "description": "About" }))
        .await
        .expect(200);
    let p = one_more_row(app, org, n, &owner, ("board.updated", "board", b), &owner).await;
    assert_eq!(p, json!({ "description": { "from": "", "to": "About" } }));

    let n = app.audit_count(org).await;
    let r = app
        .patch(&path, &owner.token, json!({ "archived": true }))
        .await
        .expect(200);
    assert_eq!(r.json["archived"], true);
    let p = one_more_row(app, org, n, &owner, ("board.archived", "board", b), &owner).await;
    assert_eq!(p, json!({ "archived": { "from": false, "to": true } }));

    // Archiving an archived board changes nothing and logs nothing.
    let n = app.audit_count(org).await;
    let again = app
        .patch(&path, &owner.token, json!({ "archived": true }))
        .await
        .expect(200);
    assert_eq!(again.json["archived_at"], r.json["archived_at"]);
    assert_eq!(app.audit_count(org).await, n);

    let r = app
        .patch(&path, &owner.token, json!({ "archived": false }))
        .await
        .expect(200);
    assert_eq!(r.json["archived"], false);
    assert_eq!(r.json["archived_at"], Value::Null);
    let p = one_more_row(app, org, n, &owner, ("board.restored", "board", b), &owner).await;
    assert_eq!(p, json!({ "archived": { "from": true, "to": false } }));

    // Refused: member (403), invalid name (422), unknown board (404); nothing changes.
    let n = app.audit_count(org).await;
    app.patch(&path, &member.token, json!({ "name": "Mine" }))
        .await
        .expect_problem(403, "forbidden");
    app.patch(&path, &member.token, json!({ "archived": true }))
        .await
        .expect_problem(403, "forbidden");
    expect_invalid(
        app.patch(&path, &owner.token, json!({ "name": " " })).await,
        "name",
    );
    app.patch(
        &url(org, &format!("/boards/{}", Uuid::now_v7())),
        &owner.token,
        json!({ "name": "X" }),
    )
    .await
    .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(org).await, n);
    let view = board_view(app, org, &member, b).await;
    assert_eq!(view["name"], "New");
    assert_eq!(view["description"], "About");
    assert_eq!(view["archived"], false);
}

async fn board_delete_cascades_to_lists_tasks_and_comments(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let admin = app.member(org, &owner, "admin").await;
    let member = app.member(org, &owner, "member").await;
    let b = new_board(app, org, &owner, "Doomed").await;
    let keep = new_board(app, org, &owner, "Kept").await;
    let l1 = new_list(app, org, &owner, b, "A").await;
    let l2 = new_list(app, org, &owner, b, "B").await;
    let kept_list = new_list(app, org, &owner, keep, "K").await;
    let t1 = id_of(&new_task(app, org, &member, l1, json!({ "title": "t1" })).await);
    let t2 = id_of(&new_task(app, org, &member, l2, json!({ "title": "t2" })).await);
    let kept_task = id_of(&new_task(app, org, &owner, kept_list, json!({ "title": "k" })).await);
    let c = id_of(&new_comment(app, org, &member, t1, "hello").await);

    let n = app.audit_count(org).await;
    app.delete(&url(org, &format!("/boards/{b}")), &member.token)
        .await
        .expect_problem(403, "forbidden");
    app.delete(
        &url(org, &format!("/boards/{}", Uuid::now_v7())),
        &admin.token,
    )
    .await
    .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(org).await, n);
    board_view(app, org, &member, b).await;

    app.delete(&url(org, &format!("/boards/{b}")), &admin.token)
        .await
        .expect(204);
    let p = one_more_row(app, org, n, &owner, ("board.deleted", "board", b), &admin).await;
    assert_eq!(p["name"], "Doomed");
    assert_eq!(p["tasks_deleted"], 2);

    app.get(&url(org, &format!("/boards/{b}")), &owner.token)
        .await
        .expect_problem(404, "not_found");
    app.get(&url(org, &format!("/boards/{b}/lists")), &owner.token)
        .await
        .expect_problem(404, "not_found");
    for t in [t1, t2] {
        app.get(&url(org, &format!("/tasks/{t}")), &owner.token)
            .await
            .expect_problem(404, "not_found");
    }
    for l in [l1, l2] {
        app.patch(
            &url(org, &format!("/lists/{l}")),
            &owner.token,
            json!({ "name": "x" }),
        )
        .await
        .expect_problem(404, "not_found");
    }
    app.patch(
        &url(org, &format!("/comments/{c}")),
        &member.token,
        json!({ "body": "x" }),
    )
    .await
    .expect_problem(404, "not_found");
    let all = app.get(&url(org, "/tasks"), &owner.token).await.expect(200);
    assert_eq!(ids(&all.json["items"]), [kept_task]);
    assert_eq!(
        view_lists(&board_view(app, org, &owner, keep).await),
        [kept_list]
    );
    // Deleting again: 404, no row.
    let n = app.audit_count(org).await;
    app.delete(&url(org, &format!("/boards/{b}")), &admin.token)
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(org).await, n);
}

// ------------------------------------------------------------------ lists

async fn lists_are_appended_by_members_not_viewers(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let member = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;
    let b = new_board(app, org, &owner, "B").await;

    let n = app.audit_count(org).await;
    let r = app
        .post(
            &url(org, &format!("/boards/{b}/lists")),
            &member.token,
            json!({ "name": " Backlog " }),
        )
        .await
        .expect(201);
    let first = id_of(&r.json);
    assert_eq!(r.json["name"], "Backlog");
    assert_eq!(r.json["board_id"], b.to_string());
    assert_eq!(r.json["org_id"], org.to_string());
    let p = one_more_row(
        app,
        org,
        n,
        &owner,
        ("list.created", "list", first),
        &member,
    )
    .await;
    assert_eq!(p["name"], "Backlog");
    assert_eq!(p["board_id"], b.to_string());

    let mut expected = vec![first];
    for name in ["Two", "Three", "Four", "Five"] {
        expected.push(new_list(app, org, &owner, b, name).await);
    }
    assert_eq!(listed_lists(app, org, &viewer, b).await, expected);
    assert_eq!(
        view_lists(&board_view(app, org, &viewer, b).await),
        expected
    );

    let n = app.audit_count(org).await;
    app.post(
        &url(org, &format!("/boards/{b}/lists")),
        &viewer.token,
        json!({ "name": "Nope" }),
    )
    .await
    .expect_problem(403, "forbidden");
    expect_invalid(
        app.post(
            &url(org, &format!("/boards/{b}/lists")),
            &member.token,
            json!({ "name": "" }),
        )
        .await,
        "name",
    );
    app.post(
        &url(org, &format!("/boards/{}/lists", Uuid::now_v7())),
        &member.token,
        json!({ "name": "Lost" }),
    )
    .await
    .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(org).await, n);
    assert_eq!(listed_lists(app, org, &viewer, b).await, expected);
}

async fn lists_are_renamed_by_members_not_viewers(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let member = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;
    let b = new_board(app, org, &owner, "B").await;
    let l = new_list(app, org, &owner, b, "Old").await;
    let path = url(org, &format!("/lists/{l}"));

    let n = app.audit_count(org).await;
    let r = app
        .patch(&path, &member.token, json!({ "name": "New" }))
        .await
        .expect(200);
    assert_eq!(r.json["name"], "New");
    let p = one_more_row(app, org, n, &owner, ("list.updated", "list", l), &member).await;
    assert_eq!(p["name"], json!({ "from": "Old", "to": "New" }));

    let n = app.audit_count(org).await;
    app.patch(&path, &viewer.token, json!({ "name": "Viewer's" }))
        .await
        .expect_problem(403, "forbidden");
    expect_invalid(
        app.patch(&path, &member.token, json!({ "name": "x".repeat(201) }))
            .await,
        "name",
    );
    app.patch(
        &url(org, &format!("/lists/{}", Uuid::now_v7())),
        &member.token,
        json!({ "name": "Lost" }),
    )
    .await
    .expect_problem(404, "not_found");
    // Same name: nothing to log.
    app.patch(&path, &member.token, json!({ "name": "New" }))
        .await
        .expect(200);
    assert_eq!(app.audit_count(org).await, n);
    let view = board_view(app, org, &viewer, b).await;
    assert_eq!(view["lists"][0]["name"], "New");
}

async fn lists_reorder_with_anchors(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let member = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;
    let b = new_board(app, org, &owner, "B").await;
    let a = new_list(app, org, &owner, b, "A").await;
    let bb = new_list(app, org, &owner, b, "B").await;
    let c = new_list(app, org, &owner, b, "C").await;
    let d = new_list(app, org, &owner, b, "D").await;
    let mv = |l: Uuid| url(org, &format!("/lists/{l}/move"));

    let n = app.audit_count(org).await;
    let r = app
        .post(&mv(d), &member.token, json!({ "after_id": a }))
        .await
        .expect(200);
    assert_eq!(r.json["id"], d.to_string());
    let p = one_more_row(app, org, n, &owner, ("list.moved", "list", d), &member).await;
    assert_eq!(p["board_id"], b.to_string());
    assert!(p["position"]["from"].is_string() && p["position"]["to"].is_string());
    check_order(app, org, &viewer, b, &[a, d, bb, c]).await;

    app.post(&mv(a), &member.token, json!({ "before_id": c }))
        .await
        .expect(200);
    check_order(app, org, &viewer, b, &[d, bb, a, c]).await;

    // Both anchors, adjacent.
    app.post(
        &mv(c),
        &member.token,
        json!({ "after_id": d, "before_id": bb }),
    )
    .await
    .expect(200);
    check_order(app, org, &viewer, b, &[d, c, bb, a]).await;

    // To the very front and, without anchors, to the end.
    app.post(&mv(a), &member.token, json!({ "before_id": d }))
        .await
        .expect(200);
    check_order(app, org, &viewer, b, &[a, d, c, bb]).await;
    app.post(&mv(d), &member.token, json!({})).await.expect(200);
    check_order(app, org, &viewer, b, &[a, c, bb, d]).await;
    // After the last one.
    app.post(&mv(a), &member.token, json!({ "after_id": d }))
        .await
        .expect(200);
    check_order(app, org, &viewer, b, &[c, bb, d, a]).await;
    assert_eq!(app.audit_count(org).await, n + 6);

    // Moves into an ever narrower gap (right after B) keep a total order.
    for i in 0..20 {
        let l = if i % 2 == 0 { a } else { c };
        app.post(&mv(l), &owner.token, json!({ "after_id": bb }))
            .await
            .expect(200);
    }
    check_order(app, org, &viewer, b, &[bb, c, a, d]).await;

    // Refused: viewer, anchors in the wrong order, itself as anchor.
    let n = app.audit_count(org).await;
    app.post(&mv(a), &viewer.token, json!({ "before_id": bb }))
        .await
        .expect_problem(403, "forbidden");
    expect_invalid(
        app.post(
            &mv(d),
            &member.token,
            json!({ "after_id": a, "before_id": c }),
        )
        .await,
        "before_id",
    );
    expect_invalid(
        app.post(&mv(a), &member.token, json!({ "after_id": a }))
            .await,
        "after_id",
    );
    app.post(
        &url(org, &format!("/lists/{}/move", Uuid::now_v7())),
        &member.token,
        json!({}),
    )
    .await
    .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(org).await, n);
    check_order(app, org, &viewer, b, &[bb, c, a, d]).await;
}

async fn list_anchors_must_be_lists_of_the_same_board(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let b1 = new_board(app, org, &owner, "One").await;
    let b2 = new_board(app, org, &owner, "Two").await;
    let a = new_list(app, org, &owner, b1, "A").await;
    let b = new_list(app, org, &owner, b1, "B").await;
    let other = new_list(app, org, &owner, b2, "Other board").await;
    let stranger = app.signup("stranger").await;
    let sb = new_board(app, stranger.personal_org, &stranger, "S").await;
    let foreign = new_list(app, stranger.personal_org, &stranger, sb, "Foreign").await;
    let mv = url(org, &format!("/lists/{a}/move"));

    let n = app.audit_count(org).await;
    for anchor in [other, foreign, Uuid::now_v7()] {
        expect_invalid(
            app.post(&mv, &owner.token, json!({ "after_id": anchor }))
                .await,
            "after_id",
        );
        expect_invalid(
            app.post(&mv, &owner.token, json!({ "before_id": anchor }))
                .await,
            "before_id",
        );
    }
    assert_eq!(app.audit_count(org).await, n);
    assert_eq!(listed_lists(app, org, &owner, b1).await, [a, b]);
    assert_eq!(listed_lists(app, org, &owner, b2).await, [other]);
    // The other tenant's list is untouched.
    assert_eq!(
        listed_lists(app, stranger.personal_org, &stranger, sb).await,
        [foreign]
    );
}

async fn list_delete_is_admin_only_and_takes_its_tasks(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let admin = app.member(org, &owner, "admin").await;
    let member = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;
    let b = new_board(app, org, &owner, "B").await;
    let doomed = new_list(app, org, &owner, b, "Doomed").await;
    let kept = new_list(app, org, &owner, b, "Kept").await;
    let t1 = id_of(&new_task(app, org, &member, doomed, json!({ "title": "a" })).await);
    let t2 = id_of(&new_task(app, org, &member, doomed, json!({ "title": "b" })).await);
    let t3 = id_of(&new_task(app, org, &member, kept, json!({ "title": "c" })).await);

    let n = app.audit_count(org).await;
    for u in [&member, &viewer] {
        app.delete(&url(org, &format!("/lists/{doomed}")), &u.token)
            .await
            .expect_problem(403, "forbidden");
    }
    assert_eq!(app.audit_count(org).await, n);
    assert_eq!(listed_lists(app, org, &owner, b).await, [doomed, kept]);

    app.delete(&url(org, &format!("/lists/{doomed}")), &admin.token)
        .await
        .expect(204);
    let p = one_more_row(
        app,
        org,
        n,
        &owner,
        ("list.deleted", "list", doomed),
        &admin,
    )
    .await;
    assert_eq!(p["tasks_deleted"], 2);
    assert_eq!(p["name"], "Doomed");

    for t in [t1, t2] {
        app.get(&url(org, &format!("/tasks/{t}")), &owner.token)
            .await
            .expect_problem(404, "not_found");
    }
    app.get(&url(org, &format!("/tasks/{t3}")), &owner.token)
        .await
        .expect(200);
    assert_eq!(listed_lists(app, org, &owner, b).await, [kept]);
    let view = board_view(app, org, &owner, b).await;
    assert_eq!(ids(&view["lists"][0]["tasks"]), [t3]);
    let all = app.get(&url(org, "/tasks"), &owner.token).await.expect(200);
    assert_eq!(ids(&all.json["items"]), [t3]);
    app.delete(&url(org, &format!("/lists/{doomed}")), &admin.token)
        .await
        .expect_problem(404, "not_found");
}

// ----------------------------------------------------------------- labels

async fn labels_are_created_renamed_recoloured_and_deleted(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let admin = app.member(org, &owner, "admin").await;
    let member = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;

    let n = app.audit_count(org).await;
    let r = app
        .post(
            &url(org, "/labels"),
            &member.token,
            json!({ "name": " Bug ", "color": "#FF0000" }),
        )
        .await
        .expect(201);
    let bug = id_of(&r.json);
    assert_eq!(r.json["name"], "Bug");
    assert_eq!(r.json["color"], "#ff0000", "colours are lower-cased");
    assert_eq!(r.json["org_id"], org.to_string());
    let p = one_more_row(
        app,
        org,
        n,
        &owner,
        ("label.created", "label", bug),
        &member,
    )
    .await;
    assert_eq!(p, json!({ "name": "Bug", "color": "#ff0000" }));

    let plain = app
        .post(
            &url(org, "/labels"),
            &owner.token,
            json!({ "name": "Plain" }),
        )
        .await
        .expect(201);
    assert_eq!(plain.json["color"], "#888888", "default colour");
    let plain = id_of(&plain.json);

    let listed = app
        .get(&url(org, "/labels"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(
        ids(&listed.json["items"])
            .into_iter()
            .collect::<HashSet<_>>(),
        HashSet::from([bug, plain])
    );

    let path = url(org, &format!("/labels/{bug}"));
    let n = app.audit_count(org).await;
    let r = app
        .patch(&path, &member.token, json!({ "name": "Defect" }))
        .await
        .expect(200);
    assert_eq!(r.json["name"], "Defect");
    assert_eq!(r.json["color"], "#ff0000");
    let p = one_more_row(
        app,
        org,
        n,
        &owner,
        ("label.updated", "label", bug),
        &member,
    )
    .await;
    assert_eq!(p, json!({ "name": { "from": "Bug", "to": "Defect" } }));

    let n = app.audit_count(org).await;
    let r = app
        .patch(&path, &member.token, json!({ "color": "#00aa00" }))
        .await
        .expect(200);
    assert_eq!(r.json["color"], "#00aa00");
    assert_eq!(r.json["name"], "Defect");
    let p = one_more_row(
        app,
        org,
        n,
        &owner,
        ("label.updated", "label", bug),
        &member,
    )
    .await;
    assert_eq!(
        p,
        json!({ "color": { "from": "#ff0000", "to": "#00aa00" } })
    );

    // Renaming to another case of its own name is allowed.
    app.patch(&path, &member.token, json!({ "name": "DEFECT" }))
        .await
        .expect(200);

    // Refused: viewers (create, update, delete), members deleting, unknown.
    let n = app.audit_count(org).await;
    app.post(&url(org, "/labels"), &viewer.token, json!({ "name": "V" }))
        .await
        .expect_problem(403, "forbidden");
    app.patch(&path, &viewer.token, json!({ "name": "V" }))
        .await
        .expect_problem(403, "forbidden");
    for u in [&viewer, &member] {
        app.delete(&path, &u.token)
            .await
            .expect_problem(403, "forbidden");
    }
    app.patch(
        &url(org, &format!("/labels/{}", Uuid::now_v7())),
        &owner.token,
        json!({ "name": "Lost" }),
    )
    .await
    .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(org).await, n);

    app.delete(&path, &admin.token).await.expect(204);
    let p = one_more_row(app, org, n, &owner, ("label.deleted", "label", bug), &admin).await;
    assert_eq!(p["name"], "DEFECT");
    let listed = app
        .get(&url(org, "/labels"), &viewer.token)
        .await
        .expect(200);
    assert_eq!(ids(&listed.json["items"]), [plain]);
    app.delete(&path, &admin.token)
        .await
        .expect_problem(404, "not_found");
}

async fn label_names_are_unique_case_insensitively_and_colours_checked(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let bug = new_label(app, org, &owner, "Bug").await;
    let feature = new_label(app, org, &owner, "Feature").await;

    let n = app.audit_count(org).await;
    for name in ["Bug", "bug", "BUG", "  bUg "] {
        let r = app
            .post(&url(org, "/labels"), &owner.token, json!({ "name": name }))
            .await
            .expect_problem(409, "label_name_taken");
        assert_eq!(fields(&r), ["name"]);
    }
    app.patch(
        &url(org, &format!("/labels/{feature}")),
        &owner.token,
        json!({ "name": "BUG" }),
    )
    .await
    .expect_problem(409, "label_name_taken");

    for color in ["red", "#fff", "#12345", "#1234567", "#gggggg", "123456", ""] {
        expect_invalid(
            app.post(
                &url(org, "/labels"),
                &owner.token,
                json!({ "name": "New", "color": color }),
            )
            .await,
            "color",
        );
        expect_invalid(
            app.patch(
                &url(org, &format!("/labels/{bug}")),
                &owner.token,
                json!({ "color": color }),
            )
            .await,
            "color",
        );
    }
    expect_invalid(
        app.post(&url(org, "/labels"), &owner.token, json!({ "name": "" }))
            .await,
        "name",
    );
    expect_invalid(
        app.post(
            &url(org, "/labels"),
            &owner.token,
            json!({ "name": "x".repeat(51) }),
        )
        .await,
        "name",
    );
    assert_eq!(app.audit_count(org).await, n);
    let listed = app
        .get(&url(org, "/labels"), &owner.token)
        .await
        .expect(200);
    let items = listed.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().any(|l| l["name"] == "Feature"));

    // Another organization may use the same name.
    let other = app.create_org(&owner, "Other").await;
    new_label(app, other, &owner, "bug").await;
}

async fn deleting_a_label_takes_it_off_tasks(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let b = new_board(app, org, &owner, "B").await;
    let l = new_list(app, org, &owner, b, "L").await;
    let x = new_label(app, org, &owner, "x").await;
    let y = new_label(app, org, &owner, "y").await;
    let t1 = id_of(
        &new_task(
            app,
            org,
            &owner,
            l,
            json!({ "title": "one", "label_ids": [x, y] }),
        )
        .await,
    );
    let t2 = id_of(
        &new_task(
            app,
            org,
            &owner,
            l,
            json!({ "title": "two", "label_ids": [x] }),
        )
        .await,
    );

    let with_x = app
        .get(&url(org, &format!("/tasks?label_id={x}")), &owner.token)
        .await
        .expect(200);
    assert_eq!(
        ids(&with_x.json["items"])
            .into_iter()
            .collect::<HashSet<_>>(),
        HashSet::from([t1, t2])
    );

    let n = app.audit_count(org).await;
    app.delete(&url(org, &format!("/labels/{x}")), &owner.token)
        .await
        .expect(204);
    assert_eq!(app.audit_count(org).await, n + 1, "one row for the label");

    let one = app
        .get(&url(org, &format!("/tasks/{t1}")), &owner.token)
        .await
        .expect(200);
    assert_eq!(one.json["label_ids"], json!([y]));
    let two = app
        .get(&url(org, &format!("/tasks/{t2}")), &owner.token)
        .await
        .expect(200);
    assert_eq!(two.json["label_ids"], json!([]));
    let view = board_view(app, org, &owner, b).await;
    let labels: Vec<&Value> = view["lists"][0]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["label_ids"])
        .collect();
    assert_eq!(labels, [&json!([y]), &json!([])]);
    // The deleted label is no longer a valid filter or a valid label to set.
    expect_invalid(
        app.get(&url(org, &format!("/tasks?label_id={x}")), &owner.token)
            .await,
        "label_id",
    );
    expect_invalid(
        app.patch(
            &url(org, &format!("/tasks/{t2}")),
            &owner.token,
            json!({ "label_ids": [x] }),
        )
        .await,
        "label_ids[0]",
    );

    // A label between two others is taken out of the ids the task row
    // keeps (created in this order, the three sort in this order).
    let z = new_label(app, org, &owner, "z").await;
    let w = new_label(app, org, &owner, "w").await;
    app.patch(
        &url(org, &format!("/tasks/{t1}")),
        &owner.token,
        json!({ "label_ids": [w, y, z] }),
    )
    .await
    .expect(200);
    app.delete(&url(org, &format!("/labels/{z}")), &owner.token)
        .await
        .expect(204);
    let one = app
        .get(&url(org, &format!("/tasks/{t1}")), &owner.token)
        .await
        .expect(200);
    assert_eq!(one.json["label_ids"], json!([y, w]));
    assert_eq!(app.relation_ids_drift(org).await, Vec::<Uuid>::new());
}

// --------------------------------------------------------------- comments

async fn comments_are_added_by_members_and_listed_oldest_first(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let member = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;
    let b = new_board(app, org, &owner, "B").await;
    let l = new_list(app, org, &owner, b, "L").await;
    let t = id_of(&new_task(app, org, &owner, l, json!({ "title": "t" })).await);
    let other = id_of(&new_task(app, org, &owner, l, json!({ "title": "other" })).await);
    new_comment(app, org, &owner, other, "elsewhere").await;
    let path = url(org, &format!("/tasks/{t}/comments"));

    let n = app.audit_count(org).await;
    let r = app
        .post(&path, &member.token, json!({ "body": "  first!  " }))
        .await
        .expect(201);
    let first = id_of(&r.json);
    assert_eq!(r.json["body"], "first!");
    assert_eq!(r.json["author_id"], member.id.to_string());
    assert_eq!(r.json["task_id"], t.to_string());
    assert_eq!(r.json["edited_at"], Value::Null);
    let p = one_more_row(
        app,
        org,
        n,
        &owner,
        ("comment.created", "comment", first),
        &member,
    )
    .await;
    assert_eq!(p["task_id"], t.to_string());

    let mut expected = vec![first];
    for (i, who) in [&owner, &member, &owner, &member].into_iter().enumerate() {
        expected.push(id_of(
            &new_comment(app, org, who, t, &format!("c{i}")).await,
        ));
    }

    // Oldest first, two at a time, complete and without repeats.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut p = format!("{path}?limit=2");
        if let Some(c) = &cursor {
            p += &format!("&cursor={c}");
        }
        let page = app.get(&p, &viewer.token).await.expect(200).json;
        let got = ids(&page["items"]);
        assert!(got.len() <= 2);
        seen.extend(got);
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);
    let all = app.get(&path, &viewer.token).await.expect(200).json;
    assert_eq!(all["items"][0]["body"], "first!");
    assert_eq!(all["next_cursor"], Value::Null);

    // Refused: viewer, empty / over-long body, unknown task; nothing logged.
    let n = app.audit_count(org).await;
    app.post(&path, &viewer.token, json!({ "body": "hi" }))
        .await
        .expect_problem(403, "forbidden");
    for bad in [String::new(), "   ".into(), "x".repeat(10_001)] {
        expect_invalid(
            app.post(&path, &member.token, json!({ "body": bad })).await,
            "body",
        );
    }
    app.post(
        &url(org, &format!("/tasks/{}/comments", Uuid::now_v7())),
        &member.token,
        json!({ "body": "lost" }),
    )
    .await
    .expect_problem(404, "not_found");
    app.get(
        &url(org, &format!("/tasks/{}/comments", Uuid::now_v7())),
        &member.token,
    )
    .await
    .expect_problem(404, "not_found");
    // Another organization's task and comment are the same 404.
    let stranger = app.signup("stranger").await;
    let so = stranger.personal_org;
    let sb = new_board(app, so, &stranger, "S").await;
    let sl = new_list(app, so, &stranger, sb, "S").await;
    let st = id_of(&new_task(app, so, &stranger, sl, json!({ "title": "theirs" })).await);
    let sc = id_of(&new_comment(app, so, &stranger, st, "theirs").await);
    let foreign = url(org, &format!("/tasks/{st}/comments"));
    app.get(&foreign, &owner.token)
        .await
        .expect_problem(404, "not_found");
    app.post(&foreign, &owner.token, json!({ "body": "in" }))
        .await
        .expect_problem(404, "not_found");
    app.patch(
        &url(org, &format!("/comments/{sc}")),
        &owner.token,
        json!({ "body": "x" }),
    )
    .await
    .expect_problem(404, "not_found");
    app.delete(&url(org, &format!("/comments/{sc}")), &owner.token)
        .await
        .expect_problem(404, "not_found");
    let theirs = app
        .get(&url(so, &format!("/tasks/{st}/comments")), &stranger.token)
        .await
        .expect(200);
    assert_eq!(ids(&theirs.json["items"]), [sc]);
    assert_eq!(theirs.json["items"][0]["body"], "theirs");
    assert_eq!(app.audit_count(org).await, n);
    assert_eq!(
        app.get(&path, &viewer.token).await.expect(200).json["items"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

async fn comments_are_edited_only_by_their_author(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let admin = app.member(org, &owner, "admin").await;
    let member = app.member(org, &owner, "member").await;
    let other = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;
    let b = new_board(app, org, &owner, "B").await;
    let l = new_list(app, org, &owner, b, "L").await;
    let t = id_of(&new_task(app, org, &owner, l, json!({ "title": "t" })).await);
    let c = id_of(&new_comment(app, org, &member, t, "original").await);
    let path = url(org, &format!("/comments/{c}"));

    let n = app.audit_count(org).await;
    for u in [&owner, &admin, &other, &viewer] {
        app.patch(&path, &u.token, json!({ "body": "hijacked" }))
            .await
            .expect_problem(403, "forbidden");
    }
    expect_invalid(
        app.patch(&path, &member.token, json!({ "body": "" })).await,
        "body",
    );
    app.patch(
        &url(org, &format!("/comments/{}", Uuid::now_v7())),
        &member.token,
        json!({ "body": "x" }),
    )
    .await
    .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(org).await, n);
    let listed = app
        .get(&url(org, &format!("/tasks/{t}/comments")), &member.token)
        .await
        .expect(200);
    assert_eq!(listed.json["items"][0]["body"], "original");

    let r = app
        .patch(&path, &member.token, json!({ "body": "edited" }))
        .await
        .expect(200);
    assert_eq!(r.json["body"], "edited");
    assert!(r.json["edited_at"].is_string());
    assert_eq!(r.json["author_id"], member.id.to_string());
    let p = one_more_row(
        app,
        org,
        n,
        &owner,
        ("comment.updated", "comment", c),
        &member,
    )
    .await;
    assert_eq!(p["body"], json!({ "from": "original", "to": "edited" }));
    assert_eq!(p["task_id"], t.to_string());

    // An owner edits their own comment.
    let mine = id_of(&new_comment(app, org, &owner, t, "mine").await);
    app.patch(
        &url(org, &format!("/comments/{mine}")),
        &owner.token,
        json!({ "body": "mine, edited" }),
    )
    .await
    .expect(200);
}

async fn comments_are_deleted_by_their_author_or_an_admin(app: &TestApp) {
    let (owner, org) = org_and_owner(app).await;
    let admin = app.member(org, &owner, "admin").await;
    let member = app.member(org, &owner, "member").await;
    let other = app.member(org, &owner, "member").await;
    let viewer = app.member(org, &owner, "viewer").await;
    let b = new_board(app, org, &owner, "B").await;
    let l = new_list(app, org, &owner, b, "L").await;
    let t = id_of(&new_task(app, org, &owner, l, json!({ "title": "t" })).await);
    let c1 = id_of(&new_comment(app, org, &member, t, "one").await);
    let c2 = id_of(&new_comment(app, org, &member, t, "two").await);
    let c3 = id_of(&new_comment(app, org, &admin, t, "three").await);
    let c4 = id_of(&new_comment(app, org, &admin, t, "four").await);
    let path = |c: Uuid| url(org, &format!("/comments/{c}"));

    let n = app.audit_count(org).await;
    for u in [&other, &viewer] {
        app.delete(&path(c1), &u.token)
            .await
            .expect_problem(403, "forbidden");
    }
    app.delete(&path(c3), &member.token)
        .await
        .expect_problem(403, "forbidden");
    assert_eq!(app.audit_count(org).await, n);

    // The author.
    app.delete(&path(c1), &member.token).await.expect(204);
    let p = one_more_row(
        app,
        org,
        n,
        &owner,
        ("comment.deleted", "comment", c1),
        &member,
    )
    .await;
    assert_eq!(p["task_id"], t.to_string());
    // An admin, someone else's.
    let n = app.audit_count(org).await;
    app.delete(&path(c2), &admin.token).await.expect(204);
    let p = one_more_row(
        app,
        org,
        n,
        &owner,
        ("comment.deleted", "comment", c2),
        &admin,
    )
    .await;
    assert_eq!(p["author_id"], member.id.to_string());
    // An owner, an admin's.
    let n = app.audit_count(org).await;
    app.delete(&path(c3), &owner.token).await.expect(204);
    one_more_row(
        app,
        org,
        n,
        &owner,
        ("comment.deleted", "comment", c3),
        &owner,
    )
    .await;

    let listed = app
        .get(&url(org, &format!("/tasks/{t}/comments")), &viewer.token)
        .await
        .expect(200);
    assert_eq!(ids(&listed.json["items"]), [c4]);
    let n = app.audit_count(org).await;
    app.delete(&path(c1), &member.token)
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(org).await, n);
}

// ------------------------------------------------------------ idempotency

fn keyed_post(path: &str, token: &str, key: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

async fn creating_posts_replay_with_an_idempotency_key(app: TestApp) {
    let (owner, org) = org_and_owner(&app).await;
    let b0 = new_board(&app, org, &owner, "Base").await;
    let l0 = new_list(&app, org, &owner, b0, "Base").await;
    let t0 = id_of(&new_task(&app, org, &owner, l0, json!({ "title": "t" })).await);

    let cases = [
        (
            url(org, "/boards"),
            json!({ "name": "Board" }),
            json!({ "name": "Other" }),
        ),
        (
            url(org, &format!("/boards/{b0}/lists")),
            json!({ "name": "List" }),
            json!({ "name": "Other" }),
        ),
        (
            url(org, "/labels"),
            json!({ "name": "Label" }),
            json!({ "name": "Other" }),
        ),
        (
            url(org, &format!("/tasks/{t0}/comments")),
            json!({ "body": "Comment" }),
            json!({ "body": "Other" }),
        ),
    ];
    for (path, body, other_body) in cases {
        let key = format!("key-{}", Uuid::now_v7());
        let n = app.audit_count(org).await;
        let first = app
            .send(keyed_post(&path, &owner.token, &key, &body))
            .await
            .expect(201);
        assert!(first.headers.get("idempotent-replayed").is_none(), "{path}");
        let again = app
            .send(keyed_post(&path, &owner.token, &key, &body))
            .await
            .expect(201);
        assert_eq!(again.text, first.text, "{path}: replayed byte for byte");
        assert_eq!(again.headers["idempotent-replayed"], "true");
        assert_eq!(app.audit_count(org).await, n + 1, "{path}: created once");
        app.send(keyed_post(&path, &owner.token, &key, &other_body))
            .await
            .expect_problem(422, "idempotency_key_reused");
        assert_eq!(app.audit_count(org).await, n + 1, "{path}");
    }
    let boards = app
        .get(&url(org, "/boards"), &owner.token)
        .await
        .expect(200);
    assert_eq!(boards.json["items"].as_array().unwrap().len(), 2);
    let lists = app
        .get(&url(org, &format!("/boards/{b0}/lists")), &owner.token)
        .await
        .expect(200);
    assert_eq!(lists.json["items"].as_array().unwrap().len(), 2);
}

/// A collection page's cursor opens only on the collection, parent and
/// filter it was made for (`400 invalid_cursor` elsewhere, never another
/// board's lists or another task's comments); a page of a board or task
/// that does not exist is `404`.
async fn collection_cursors_open_only_where_they_were_made(app: TestApp) {
    let (owner, org) = org_and_owner(&app).await;
    let t = &owner.token;
    let (a, b) = (
        new_board(&app, org, &owner, "A").await,
        new_board(&app, org, &owner, "B").await,
    );
    let mut first_list = None;
    for board in [a, b] {
        for name in ["one", "two"] {
            let l = new_list(&app, org, &owner, board, name).await;
            first_list.get_or_insert(l);
        }
    }
    let list = first_list.unwrap();
    let ta = id_of(&new_task(&app, org, &owner, list, json!({ "title": "a" })).await);
    let tb = id_of(&new_task(&app, org, &owner, list, json!({ "title": "b" })).await);
    for task in [ta, tb] {
        new_comment(&app, org, &owner, task, "one").await;
        new_comment(&app, org, &owner, task, "two").await;
    }
    new_label(&app, org, &owner, "red").await;
    new_label(&app, org, &owner, "blue").await;
    let cursor = |r: Resp| r.json["next_cursor"].as_str().unwrap().to_owned();
    let page = async |rest: &str| cursor(app.get(&url(org, rest), t).await.expect(200));

    let lists_a = page(&format!("/boards/{a}/lists?limit=1")).await;
    let comments_a = page(&format!("/tasks/{ta}/comments?limit=1")).await;
    let labels = page("/labels?limit=1").await;
    let boards = page("/boards?limit=1").await;
    app.member(org, &owner, "member").await;
    let members = page("/members?limit=1").await;
    // Where they were made: they open.
    for ok in [
        format!("/boards/{a}/lists?limit=1&cursor={lists_a}"),
        format!("/tasks/{ta}/comments?limit=1&cursor={comments_a}"),
        format!("/labels?limit=1&cursor={labels}"),
        format!("/boards?limit=1&cursor={boards}"),
        format!("/members?limit=1&cursor={members}"),
    ] {
        app.get(&url(org, &ok), t).await.expect(200);
    }
    // Anywhere else: refused.
    for elsewhere in [
        format!("/boards/{b}/lists?cursor={lists_a}"),
        format!("/tasks/{tb}/comments?cursor={comments_a}"),
        format!("/boards?cursor={labels}"),
        format!("/boards?archived=true&cursor={boards}"),
        format!("/labels?cursor={boards}"),
        format!("/invites?cursor={members}"),
        format!("/tasks/{ta}/comments?cursor={lists_a}"),
    ] {
        app.get(&url(org, &elsewhere), t)
            .await
            .expect_problem(400, "invalid_cursor");
    }
    // A parent that does not exist.
    let nobody = Uuid::now_v7();
    for missing in [
        format!("/boards/{nobody}/lists"),
        format!("/tasks/{nobody}/comments"),
        format!("/tasks/{list}/comments"),
        format!("/boards/{ta}/lists"),
    ] {
        app.get(&url(org, &missing), t)
            .await
            .expect_problem(404, "not_found");
    }
}
