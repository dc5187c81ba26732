//! Tasks: creation with every field and its limits, server-owned fields,
//! completion stamps, ETag / If-Match, the member "own task" rules, moves
//! within and across lists, concurrent conditional updates, idempotent
//! creation, and the filtered, sorted, keyset-paged `GET …/tasks` with
//! tamper-safe cursors. Every change writes one audit row; a refused
//! request writes none.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::sync::Arc;

use crate::common::{Resp, TestApp, TestUser};
use axum::body::Body;
use axum::http::{Method, Request};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    leap_seconds_are_refused_on_both_databases,
    a_filtered_page_that_matches_nothing_is_empty_for_members_only,
    tasks_are_created,
    tasks_are_updated,
    etag_and_if_match_guard_updates_moves_and_deletes,
    task_rights_follow_the_permission_table,
    tasks_move,
    concurrent_conditional_updates_have_one_winner,
    idempotent_creation,
    concurrent_creates_with_one_key_create_once,
    task_filters,
    every_sort_pages_completely_in_order,
    paging_and_cursors,
    a_disconnected_client_does_not_cancel_its_write,
    reading_a_task_checks_the_membership_every_time,
);

/// `GET …/tasks/{task}` (one statement on SQLite, membership included):
/// by id and by slug for every role; `404` for a stranger, a member of
/// another organization, a removed member, a task of another organization
/// and a deleted organization.
async fn reading_a_task_checks_the_membership_every_time(app: TestApp) {
    let w = world(&app).await;
    let task = titled(&app, w.org, &w.owner, w.list, "read me").await;
    let org = app
        .get(&format!("/api/v1/orgs/{}", w.org), &w.owner.token)
        .await
        .expect(200)
        .json;
    let slug = org["slug"].as_str().unwrap().to_owned();
    let mut readers = vec![];
    for role in ["admin", "member", "viewer"] {
        readers.push(app.member(w.org, &w.owner, role).await);
    }
    for who in std::iter::once(&w.owner).chain(readers.iter()) {
        for by in [w.org.to_string(), slug.clone()] {
            let r = app
                .get(&format!("/api/v1/orgs/{by}/tasks/{task}"), &who.token)
                .await
                .expect(200);
            assert_eq!(id_of(&r.json), task);
            assert_eq!(r.json["title"], "read me");
        }
    }
    // Another organization's member, and that organization's own task id.
    let other = world(&app).await;
    let foreign = titled(&app, other.org, &other.owner, other.list, "theirs").await;
    for (by, id) in [(&other.owner, task), (&w.owner, foreign)] {
        app.get(&url(w.org, &format!("/tasks/{id}")), &by.token)
            .await
            .expect_problem(404, "not_found");
    }
    app.get(
        &url(other.org, &format!("/tasks/{task}")),
        &other.owner.token,
    )
    .await
    .expect_problem(404, "not_found");
    // Removed: refused on the very next read.
    let viewer = &readers[2];
    app.delete(
        &url(w.org, &format!("/members/{}", viewer.id)),
        &w.owner.token,
    )
    .await
    .expect(204);
    app.get(&url(w.org, &format!("/tasks/{task}")), &viewer.token)
        .await
        .expect_problem(404, "not_found");
    // Deleted organization: gone for everyone, by id and by slug.
    app.delete(&format!("/api/v1/orgs/{}", w.org), &w.owner.token)
        .await
        .expect(204);
    for by in [w.org.to_string(), slug] {
        app.get(&format!("/api/v1/orgs/{by}/tasks/{task}"), &w.owner.token)
            .await
            .expect_problem(404, "not_found");
    }
}

/// A client that gives up while its create waits for the database (here:
/// behind a transaction holding the list) does not cancel it: the change
/// commits in full — task, audit row, event — once the way is free.
async fn a_disconnected_client_does_not_cancel_its_write(app: TestApp) {
    use orgboard::db::Scope;
    use tower::ServiceExt as _;
    let w = world(&app).await;
    let before = app.audit_count(w.org).await;
    // Block the create: SQLite's one writer is taken by this transaction;
    // on PostgreSQL it also holds the list the create must lock.
    let mut blocker = app
        .state
        .db
        .write(Scope::tenant(w.owner.id, w.org))
        .await
        .unwrap();
    if app.backend == orgboard::db::Backend::Postgres {
        orgboard::on_tx!(&mut blocker, |c| sqlx::query(
            "SELECT id FROM lists WHERE org_id = $1 AND id = $2 FOR UPDATE"
        )
        .bind(w.org)
        .bind(w.list)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }
    let req = Request::post(format!("/api/v1/orgs/{}/lists/{}/tasks", w.org, w.list))
        .header("authorization", format!("Bearer {}", w.owner.token))
        .header("content-type", "application/json")
        .body(Body::from(json!({"title": "survives"}).to_string()))
        .unwrap();
    // The client hangs up: its request future is dropped while waiting.
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        app.router.clone().oneshot(req),
    )
    .await;
    assert!(gave_up.is_err(), "the create should still be waiting");
    blocker.commit().await.unwrap();
    let mut found = Value::Null;
    for _ in 0..100 {
        found = app
            .get(
                &format!("/api/v1/orgs/{}/tasks?list_id={}", w.org, w.list),
                &w.owner.token,
            )
            .await
            .expect(200)
            .json;
        if !found["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(found["items"][0]["title"], "survives", "{found}");
    assert_eq!(app.audit_count(w.org).await, before + 1);
}

// Each test below runs several independent parts (each in its own
// organization) on one fresh database, which keeps the PostgreSQL runs fast.

/// Creation: every field, defaults, limits, foreign relations, server-owned fields.
async fn tasks_are_created(app: TestApp) {
    create_appends_with_every_field_and_defaults(&app).await;
    create_checks_lengths_counts_and_enums(&app).await;
    create_refuses_foreign_assignees_and_labels(&app).await;
    server_owned_fields_in_bodies_are_ignored(&app).await;
}

/// Updates: completion stamps, partial updates with from→to audit, refused input.
async fn tasks_are_updated(app: TestApp) {
    done_stamps_completed_at_and_reopening_clears_it(&app).await;
    update_changes_only_given_fields_with_from_to_audit(&app).await;
    update_refuses_invalid_input_and_changes_nothing(&app).await;
    update_answers_exactly_what_a_fresh_read_shows(&app).await;
}

/// The PATCH answer (built without reading the row back) equals the next
/// GET, field for field, relations and ETag included, for every field
/// changed alone and several at once.
async fn update_answers_exactly_what_a_fresh_read_shows(app: &TestApp) {
    let w = world(app).await;
    let member = app.member(w.org, &w.owner, "member").await;
    let (l1, l2) = (
        new_label(app, w.org, &w.owner, "zeta").await,
        new_label(app, w.org, &w.owner, "alpha").await,
    );
    let task = titled(app, w.org, &w.owner, w.list, "before").await;
    for body in [
        json!({"title": "after", "status": "done", "priority": "urgent",
               "assignee_ids": [member.id, w.owner.id, member.id], "label_ids": [l1, l2],
               "due_date": "2030-01-02T03:04:05.123456Z", "description": "d"}),
        json!({"status": "todo", "assignee_ids": [], "due_date": null}),
        json!({"label_ids": [l2]}),
        // One field at a time: an update sets only the columns that
        // changed, so each must still be stored on its own.
        json!({"title": "alone"}),
        json!({"description": "only this"}),
        json!({"priority": "low"}),
        json!({"due_date": "2031-05-06T07:08:09Z"}),
        json!({"status": "in_progress"}),
        json!({"status": "done"}),
        json!({"assignee_ids": [member.id]}),
        json!({"label_ids": []}),
    ] {
        let r = patch_task(app, w.org, &w.owner, task, body)
            .await
            .expect(200);
        let etag = r.headers["etag"].to_str().unwrap().to_owned();
        let read = app
            .get(&url(w.org, &format!("/tasks/{task}")), &w.owner.token)
            .await
            .expect(200);
        assert_eq!(r.json, read.json);
        assert_eq!(etag, read.headers["etag"].to_str().unwrap());
    }
    // The same for a move (to another list, then within it).
    let other = new_list(app, w.org, &w.owner, w.board, "Doing").await;
    let next = titled(app, w.org, &w.owner, other, "neighbour").await;
    for body in [
        json!({"list_id": other}),
        json!({"list_id": other, "after_id": next}),
    ] {
        let r = move_task(app, w.org, &w.owner, task, body)
            .await
            .expect(200);
        let read = app
            .get(&url(w.org, &format!("/tasks/{task}")), &w.owner.token)
            .await
            .expect(200);
        assert_eq!(r.json, read.json);
        assert_eq!(r.headers["etag"], read.headers["etag"]);
    }
}

/// Members: own tasks only (update/move: created or assigned; delete: created); viewers: nothing.
async fn task_rights_follow_the_permission_table(app: TestApp) {
    members_update_and_move_only_tasks_they_created_or_are_assigned(&app).await;
    members_delete_only_tasks_they_created(&app).await;
    viewers_cannot_change_tasks(&app).await;
}

/// Moves within and across lists; refused destinations and anchors.
async fn tasks_move(app: TestApp) {
    move_within_and_across_lists(&app).await;
    move_refuses_other_boards_and_foreign_anchors(&app).await;
}

/// Replay, conflict, per-user keys; failed requests store nothing.
async fn idempotent_creation(app: TestApp) {
    idempotent_create_replays_the_first_answer(&app).await;
    failed_requests_store_no_idempotency_key(&app).await;
}

/// Every filter alone and combined; foreign ids and bad values refused.
async fn task_filters(app: TestApp) {
    filters_alone_and_combined(&app).await;
    filters_refuse_foreign_ids_and_bad_values(&app).await;
}

/// Keyset paging across inserts and deletes; tamper-safe cursors bound to their sort.
async fn paging_and_cursors(app: TestApp) {
    paging_never_repeats_or_skips_across_inserts(&app).await;
    cursors_are_tamper_safe_and_bound_to_their_sort(&app).await;
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

fn set(v: impl IntoIterator<Item = Uuid>) -> HashSet<Uuid> {
    v.into_iter().collect()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

/// Percent-encodes a query-string value.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An organization (owned by `owner`) with one board and one list.
struct World {
    owner: TestUser,
    org: Uuid,
    board: Uuid,
    list: Uuid,
}

async fn world(app: &TestApp) -> World {
    let owner = app.signup("owner").await;
    let org = app.create_org(&owner, "Acme").await;
    let board = new_board(app, org, &owner, "Board").await;
    let list = new_list(app, org, &owner, board, "Todo").await;
    World {
        owner,
        org,
        board,
        list,
    }
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

async fn new_label(app: &TestApp, org: Uuid, by: &TestUser, name: &str) -> Uuid {
    id_of(
        &app.post(&url(org, "/labels"), &by.token, json!({ "name": name }))
            .await
            .expect(201)
            .json,
    )
}

async fn create(app: &TestApp, org: Uuid, by: &TestUser, list: Uuid, body: Value) -> Resp {
    app.post(&url(org, &format!("/lists/{list}/tasks")), &by.token, body)
        .await
}

async fn new_task(app: &TestApp, org: Uuid, by: &TestUser, list: Uuid, body: Value) -> Value {
    create(app, org, by, list, body).await.expect(201).json
}

async fn titled(app: &TestApp, org: Uuid, by: &TestUser, list: Uuid, title: &str) -> Uuid {
    id_of(&new_task(app, org, by, list, json!({ "title": title })).await)
}

async fn get_task(app: &TestApp, org: Uuid, by: &TestUser, task: Uuid) -> Value {
    app.get(&url(org, &format!("/tasks/{task}")), &by.token)
        .await
        .expect(200)
        .json
}

async fn patch_task(app: &TestApp, org: Uuid, by: &TestUser, task: Uuid, body: Value) -> Resp {
    app.patch(&url(org, &format!("/tasks/{task}")), &by.token, body)
        .await
}

async fn move_task(app: &TestApp, org: Uuid, by: &TestUser, task: Uuid, body: Value) -> Resp {
    app.post(&url(org, &format!("/tasks/{task}/move")), &by.token, body)
        .await
}

/// A request with a JSON body and extra headers.
fn request(
    method: Method,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(b).unwrap())),
        None => req.body(Body::empty()),
    }
    .unwrap()
}

/// The task ids of one list in the board view, in order.
async fn order_of(app: &TestApp, org: Uuid, by: &TestUser, board: Uuid, list: Uuid) -> Vec<Uuid> {
    let view = app
        .get(&url(org, &format!("/boards/{board}")), &by.token)
        .await
        .expect(200)
        .json;
    let l = view["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"] == list.to_string())
        .unwrap_or_else(|| panic!("list {list} not in the board view"));
    ids(&l["tasks"])
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
/// with `action` on task `task` by `actor`; returns its payload.
async fn one_more_row(
    app: &TestApp,
    w: &World,
    before: i64,
    action: &str,
    task: Uuid,
    actor: &TestUser,
) -> Value {
    assert_eq!(
        app.audit_count(w.org).await,
        before + 1,
        "exactly one audit row for {action}"
    );
    let row = last_audit(app, w.org, &w.owner).await;
    assert_eq!(row["action"], action, "{row}");
    assert_eq!(row["entity_type"], "task", "{row}");
    assert_eq!(row["entity_id"], task.to_string(), "{row}");
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

/// Every task of the query (one page of 200; asserts there is no more).
async fn query(app: &TestApp, org: Uuid, by: &TestUser, qs: &str) -> HashSet<Uuid> {
    let r = app
        .get(&url(org, &format!("/tasks?limit=200&{qs}")), &by.token)
        .await
        .expect(200);
    assert_eq!(r.json["next_cursor"], Value::Null, "{qs}");
    let got = ids(&r.json["items"]);
    assert_eq!(got.len(), set(got.clone()).len(), "{qs}: no repeats");
    set(got)
}

/// Every task of the query, `limit` at a time, in the order served.
async fn page_all(app: &TestApp, org: Uuid, by: &TestUser, qs: &str, limit: u32) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut path = url(org, &format!("/tasks?limit={limit}&{qs}"));
        if let Some(c) = &cursor {
            path += &format!("&cursor={c}");
        }
        let page = app.get(&path, &by.token).await.expect(200).json;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize, "{qs}");
        out.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(
                    items.len(),
                    limit as usize,
                    "{qs}: only the last page is short"
                );
                cursor = Some(c.to_owned());
            }
            None => return out,
        }
    }
    panic!("{qs}: paging does not end");
}

// ----------------------------------------------------------------- create

async fn create_appends_with_every_field_and_defaults(app: &TestApp) {
    let w = world(app).await;
    let member = app.member(w.org, &w.owner, "member").await;
    let x = new_label(app, w.org, &w.owner, "x").await;
    let y = new_label(app, w.org, &w.owner, "y").await;

    let n = app.audit_count(w.org).await;
    let r = create(
        app,
        w.org,
        &member,
        w.list,
        json!({
            "title": "  Ship it  ",
            "description": "All of it.",
            "status": "in_progress",
            "priority": "high",
            "assignee_ids": [member.id, w.owner.id, member.id],
            "label_ids": [x, y],
            "due_date": "2030-01-10T12:00:00+02:00",
        }),
    )
    .await
    .expect(201);
    let full = r.json.clone();
    let t1 = id_of(&full);
    assert_eq!(r.headers["etag"], "\"1\"");
    assert_eq!(full["title"], "Ship it", "title is trimmed");
    assert_eq!(full["description"], "All of it.");
    assert_eq!(full["status"], "in_progress");
    assert_eq!(full["priority"], "high");
    assert_eq!(
        set(ids_of(&full["assignee_ids"])),
        set([member.id, w.owner.id]),
        "assignees deduplicated"
    );
    assert_eq!(full["assignee_ids"].as_array().unwrap().len(), 2);
    assert_eq!(set(ids_of(&full["label_ids"])), set([x, y]));
    assert_eq!(
        time(&full["due_date"]),
        "2030-01-10T10:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(full["org_id"], w.org.to_string());
    assert_eq!(full["board_id"], w.board.to_string());
    assert_eq!(full["list_id"], w.list.to_string());
    assert_eq!(full["created_by"], member.id.to_string());
    assert_eq!(full["completed_at"], Value::Null);
    assert_eq!(full["version"], 1);
    assert_eq!(full["created_at"], full["updated_at"]);
    let p = one_more_row(app, &w, n, "task.created", t1, &member).await;
    assert_eq!(p["title"], "Ship it");
    assert_eq!(p["list_id"], w.list.to_string());
    // What GET answers is what POST answered.
    assert_eq!(get_task(app, w.org, &member, t1).await, full);

    // Defaults.
    let d = new_task(app, w.org, &member, w.list, json!({ "title": "Plain" })).await;
    assert_eq!(d["status"], "todo");
    assert_eq!(d["priority"], "medium");
    assert_eq!(d["description"], "");
    assert_eq!(d["assignee_ids"], json!([]));
    assert_eq!(d["label_ids"], json!([]));
    assert_eq!(d["due_date"], Value::Null);
    assert_eq!(d["completed_at"], Value::Null);
    let t2 = id_of(&d);
    let t3 = titled(app, w.org, &w.owner, w.list, "Third").await;
    // Created done: completed at once.
    let done = new_task(
        app,
        w.org,
        &w.owner,
        w.list,
        json!({ "title": "Done already", "status": "done" }),
    )
    .await;
    assert!(done["completed_at"].is_string(), "{done}");
    assert_eq!(done["completed_at"], done["created_at"]);

    // Appended, in order.
    assert_eq!(
        order_of(app, w.org, &member, w.board, w.list).await,
        [t1, t2, t3, id_of(&done)]
    );
}

fn ids_of(v: &Value) -> Vec<Uuid> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().parse().unwrap())
        .collect()
}

async fn create_checks_lengths_counts_and_enums(app: &TestApp) {
    let w = world(app).await;
    let member = app.member(w.org, &w.owner, "member").await;
    let many: Vec<Uuid> = (0..51).map(|_| Uuid::now_v7()).collect();

    let n = app.audit_count(w.org).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "title": "" }), "title"),
        (json!({ "title": "   " }), "title"),
        (json!({ "title": "x".repeat(501) }), "title"),
        (json!({ "title": "a\u{0}b" }), "title"),
        (json!({ "title": 5 }), "title"),
        (json!({}), "title"),
        (
            json!({ "title": "t", "description": "d".repeat(100_001) }),
            "description",
        ),
        (
            json!({ "title": "t", "assignee_ids": many }),
            "assignee_ids",
        ),
        (json!({ "title": "t", "label_ids": many }), "label_ids"),
        (
            json!({ "title": "t", "assignee_ids": ["nope"] }),
            "assignee_ids[0]",
        ),
        (json!({ "title": "t", "status": "blocked" }), "status"),
        (json!({ "title": "t", "status": "Done" }), "status"),
        (json!({ "title": "t", "priority": "critical" }), "priority"),
        (json!({ "title": "t", "priority": 3 }), "priority"),
        (json!({ "title": "t", "due_date": "tomorrow" }), "due_date"),
    ];
    for (body, field) in cases {
        let r = create(app, w.org, &member, w.list, body.clone()).await;
        let r = r.expect_problem(422, "validation_failed");
        assert_eq!(fields(&r), [field], "{body}: {}", r.text);
    }
    // Several at once are all named.
    let r = create(
        app,
        w.org,
        &member,
        w.list,
        json!({ "title": "", "description": "d".repeat(100_001), "label_ids": many }),
    )
    .await
    .expect_problem(422, "validation_failed");
    assert_eq!(fields(&r), ["description", "label_ids", "title"]);
    assert_eq!(app.audit_count(w.org).await, n, "refused: nothing logged");
    assert_eq!(query(app, w.org, &member, "").await, HashSet::new());

    // The limits themselves are accepted.
    let t = new_task(
        app,
        w.org,
        &member,
        w.list,
        json!({ "title": "é".repeat(500), "description": "d".repeat(100_000) }),
    )
    .await;
    assert_eq!(t["title"].as_str().unwrap().chars().count(), 500);
    // Unknown list: 404.
    create(app, w.org, &member, Uuid::now_v7(), json!({ "title": "t" }))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(w.org).await, n + 1);
}

async fn create_refuses_foreign_assignees_and_labels(app: &TestApp) {
    let w = world(app).await;
    let member = app.member(w.org, &w.owner, "member").await;
    let label = new_label(app, w.org, &w.owner, "mine").await;
    let stranger = app.signup("stranger").await;
    let foreign_label = new_label(app, stranger.personal_org, &stranger, "theirs").await;

    let n = app.audit_count(w.org).await;
    let cases = [
        (
            json!({ "title": "t", "assignee_ids": [stranger.id] }),
            "assignee_ids[0]",
        ),
        (
            json!({ "title": "t", "assignee_ids": [member.id, Uuid::now_v7()] }),
            "assignee_ids[1]",
        ),
        (
            json!({ "title": "t", "label_ids": [foreign_label] }),
            "label_ids[0]",
        ),
        (
            json!({ "title": "t", "label_ids": [label, Uuid::now_v7()] }),
            "label_ids[1]",
        ),
        // A label id given as an assignee and a member as a label.
        (
            json!({ "title": "t", "assignee_ids": [label] }),
            "assignee_ids[0]",
        ),
        (
            json!({ "title": "t", "label_ids": [member.id] }),
            "label_ids[0]",
        ),
    ];
    for (body, field) in cases {
        expect_invalid(create(app, w.org, &w.owner, w.list, body).await, field);
    }
    assert_eq!(app.audit_count(w.org).await, n);
    assert_eq!(query(app, w.org, &w.owner, "").await, HashSet::new());
    assert_eq!(
        order_of(app, w.org, &w.owner, w.board, w.list).await,
        Vec::<Uuid>::new()
    );

    // A list of another organization is a 404, and nothing is created there.
    let sb = new_board(app, stranger.personal_org, &stranger, "S").await;
    let sl = new_list(app, stranger.personal_org, &stranger, sb, "S").await;
    create(app, w.org, &w.owner, sl, json!({ "title": "t" }))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(
        query(app, stranger.personal_org, &stranger, "").await,
        HashSet::new()
    );
}

async fn server_owned_fields_in_bodies_are_ignored(app: &TestApp) {
    let w = world(app).await;
    let member = app.member(w.org, &w.owner, "member").await;
    let other_board = new_board(app, w.org, &w.owner, "Other").await;
    let other_list = new_list(app, w.org, &w.owner, other_board, "Other").await;
    let forged_id = Uuid::now_v7();
    let started = Utc::now() - chrono::Duration::seconds(5);
    let forged = json!({
        "id": forged_id,
        "org_id": Uuid::now_v7(),
        "board_id": other_board,
        "list_id": other_list,
        "version": 42,
        "created_by": w.owner.id,
        "created_at": "2001-01-01T00:00:00Z",
        "updated_at": "2001-01-01T00:00:00Z",
        "completed_at": "2001-01-01T00:00:00Z",
        "position": "!",
    });
    let mut body = forged.clone();
    body["title"] = json!("mine");
    let t = new_task(app, w.org, &member, w.list, body).await;
    let id = id_of(&t);
    assert_ne!(id, forged_id);
    assert_eq!(t["org_id"], w.org.to_string());
    assert_eq!(t["board_id"], w.board.to_string());
    assert_eq!(t["list_id"], w.list.to_string());
    assert_eq!(t["version"], 1);
    assert_eq!(t["created_by"], member.id.to_string());
    assert!(time(&t["created_at"]) > started);
    assert!(time(&t["updated_at"]) > started);
    assert_eq!(t["completed_at"], Value::Null);
    assert_ne!(t["position"], "!");
    app.get(&url(w.org, &format!("/tasks/{forged_id}")), &w.owner.token)
        .await
        .expect_problem(404, "not_found");

    // The same on update: only the title changes, version goes up by one.
    let mut body = forged;
    body["title"] = json!("renamed");
    let u = patch_task(app, w.org, &member, id, body)
        .await
        .expect(200)
        .json;
    assert_eq!(u["id"], t["id"]);
    assert_eq!(u["title"], "renamed");
    assert_eq!(u["version"], 2);
    assert_eq!(u["org_id"], t["org_id"]);
    assert_eq!(u["board_id"], t["board_id"]);
    assert_eq!(u["list_id"], t["list_id"]);
    assert_eq!(u["created_by"], t["created_by"]);
    assert_eq!(u["created_at"], t["created_at"]);
    assert_eq!(u["completed_at"], Value::Null);
    assert_eq!(u["position"], t["position"]);
    assert!(time(&u["updated_at"]) >= time(&t["updated_at"]));
    assert_eq!(
        order_of(app, w.org, &member, other_board, other_list).await,
        Vec::<Uuid>::new()
    );
}

async fn done_stamps_completed_at_and_reopening_clears_it(app: &TestApp) {
    let w = world(app).await;
    let t = titled(app, w.org, &w.owner, w.list, "t").await;

    let n = app.audit_count(w.org).await;
    let done = patch_task(app, w.org, &w.owner, t, json!({ "status": "done" }))
        .await
        .expect(200)
        .json;
    let stamp = done["completed_at"].clone();
    assert!(stamp.is_string(), "{done}");
    assert_eq!(done["version"], 2);
    let p = one_more_row(app, &w, n, "task.updated", t, &w.owner).await;
    assert_eq!(
        p,
        json!({
            "status": { "from": "todo", "to": "done" },
            "completed_at": { "from": null, "to": stamp },
        })
    );

    // Another change while done keeps the stamp.
    let still = patch_task(
        app,
        w.org,
        &w.owner,
        t,
        json!({ "title": "renamed", "status": "done" }),
    )
    .await
    .expect(200)
    .json;
    assert_eq!(still["completed_at"], stamp);
    assert_eq!(
        get_task(app, w.org, &w.owner, t).await["completed_at"],
        stamp
    );

    let n = app.audit_count(w.org).await;
    let reopened = patch_task(app, w.org, &w.owner, t, json!({ "status": "in_progress" }))
        .await
        .expect(200)
        .json;
    assert_eq!(reopened["completed_at"], Value::Null);
    assert_eq!(reopened["status"], "in_progress");
    let p = one_more_row(app, &w, n, "task.updated", t, &w.owner).await;
    assert_eq!(
        p,
        json!({
            "status": { "from": "done", "to": "in_progress" },
            "completed_at": { "from": stamp, "to": null },
        })
    );
    assert_eq!(
        get_task(app, w.org, &w.owner, t).await["completed_at"],
        Value::Null
    );

    let again = patch_task(app, w.org, &w.owner, t, json!({ "status": "done" }))
        .await
        .expect(200)
        .json;
    assert!(time(&again["completed_at"]) >= time(&stamp));
    let todo = patch_task(app, w.org, &w.owner, t, json!({ "status": "todo" }))
        .await
        .expect(200)
        .json;
    assert_eq!(todo["completed_at"], Value::Null);
}

async fn update_changes_only_given_fields_with_from_to_audit(app: &TestApp) {
    let w = world(app).await;
    let member = app.member(w.org, &w.owner, "member").await;
    let label = new_label(app, w.org, &w.owner, "l").await;
    let t0 = new_task(
        app,
        w.org,
        &w.owner,
        w.list,
        json!({ "title": "a", "description": "d", "due_date": "2030-01-10T00:00:00Z" }),
    )
    .await;
    let t = id_of(&t0);

    let n = app.audit_count(w.org).await;
    let r = patch_task(app, w.org, &w.owner, t, json!({ "title": "b" }))
        .await
        .expect(200);
    assert_eq!(r.headers["etag"], "\"2\"");
    let u = r.json;
    assert_eq!(u["title"], "b");
    assert_eq!(u["version"], 2);
    for same in [
        "description",
        "status",
        "priority",
        "due_date",
        "position",
        "list_id",
    ] {
        assert_eq!(u[same], t0[same], "{same} unchanged");
    }
    let p = one_more_row(app, &w, n, "task.updated", t, &w.owner).await;
    assert_eq!(p, json!({ "title": { "from": "a", "to": "b" } }));

    let n = app.audit_count(w.org).await;
    let u = patch_task(
        app,
        w.org,
        &w.owner,
        t,
        json!({
            "priority": "urgent",
            "description": "longer",
            "assignee_ids": [member.id, w.owner.id],
            "label_ids": [label],
        }),
    )
    .await
    .expect(200)
    .json;
    assert_eq!(u["version"], 3);
    assert_eq!(u["priority"], "urgent");
    assert_eq!(
        set(ids_of(&u["assignee_ids"])),
        set([member.id, w.owner.id])
    );
    assert_eq!(u["label_ids"], json!([label]));
    let p = one_more_row(app, &w, n, "task.updated", t, &w.owner).await;
    let mut keys: Vec<&String> = p.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["assignee_ids", "description", "label_ids", "priority"]
    );
    assert_eq!(p["priority"], json!({ "from": "medium", "to": "urgent" }));
    assert_eq!(p["description"], json!({ "from": "d", "to": "longer" }));
    assert_eq!(p["label_ids"], json!({ "from": [], "to": [label] }));
    assert_eq!(p["assignee_ids"]["from"], json!([]));
    assert_eq!(
        set(ids_of(&p["assignee_ids"]["to"])),
        set([member.id, w.owner.id])
    );

    // `due_date: null` clears it.
    let n = app.audit_count(w.org).await;
    let u = patch_task(app, w.org, &w.owner, t, json!({ "due_date": null }))
        .await
        .expect(200)
        .json;
    assert_eq!(u["due_date"], Value::Null);
    assert_eq!(u["version"], 4);
    let p = one_more_row(app, &w, n, "task.updated", t, &w.owner).await;
    assert_eq!(
        p,
        json!({ "due_date": { "from": t0["due_date"], "to": null } })
    );
    assert_eq!(
        get_task(app, w.org, &w.owner, t).await["due_date"],
        Value::Null
    );

    // Emptying the relations.
    let u = patch_task(
        app,
        w.org,
        &w.owner,
        t,
        json!({ "assignee_ids": [], "label_ids": [] }),
    )
    .await
    .expect(200)
    .json;
    assert_eq!(u["assignee_ids"], json!([]));
    assert_eq!(u["label_ids"], json!([]));
    assert_eq!(u["version"], 5);

    // Nothing to change: no new version, no audit row.
    let n = app.audit_count(w.org).await;
    for body in [
        json!({}),
        json!({ "title": "b", "priority": "urgent", "due_date": null }),
    ] {
        let r = patch_task(app, w.org, &w.owner, t, body).await.expect(200);
        assert_eq!(r.json["version"], 5);
        assert_eq!(r.headers["etag"], "\"5\"");
    }
    assert_eq!(app.audit_count(w.org).await, n);
}

async fn update_refuses_invalid_input_and_changes_nothing(app: &TestApp) {
    let w = world(app).await;
    let stranger = app.signup("stranger").await;
    let foreign_label = new_label(app, stranger.personal_org, &stranger, "theirs").await;
    let many: Vec<Uuid> = (0..51).map(|_| Uuid::now_v7()).collect();
    let t = titled(app, w.org, &w.owner, w.list, "keep").await;
    let before = get_task(app, w.org, &w.owner, t).await;

    let n = app.audit_count(w.org).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "title": "" }), "title"),
        (json!({ "title": "x".repeat(501) }), "title"),
        (
            json!({ "title": null, "description": "d".repeat(100_001) }),
            "description",
        ),
        (json!({ "assignee_ids": many }), "assignee_ids"),
        (json!({ "label_ids": many }), "label_ids"),
        (json!({ "status": "blocked" }), "status"),
        (json!({ "priority": "whenever" }), "priority"),
        (json!({ "due_date": "soon" }), "due_date"),
        (
            json!({ "title": "ok", "assignee_ids": [stranger.id] }),
            "assignee_ids[0]",
        ),
        (
            json!({ "title": "ok", "label_ids": [foreign_label] }),
            "label_ids[0]",
        ),
    ];
    for (body, field) in cases {
        let r = patch_task(app, w.org, &w.owner, t, body.clone()).await;
        let r = r.expect_problem(422, "validation_failed");
        assert_eq!(fields(&r), [field], "{body}: {}", r.text);
    }
    app.patch(
        &url(w.org, &format!("/tasks/{}", Uuid::now_v7())),
        &w.owner.token,
        json!({ "title": "x" }),
    )
    .await
    .expect_problem(404, "not_found");
    // A task of another organization is a 404 too, and stays as it was.
    let sb = new_board(app, stranger.personal_org, &stranger, "S").await;
    let sl = new_list(app, stranger.personal_org, &stranger, sb, "S").await;
    let theirs = titled(app, stranger.personal_org, &stranger, sl, "theirs").await;
    app.patch(
        &url(w.org, &format!("/tasks/{theirs}")),
        &w.owner.token,
        json!({ "title": "x" }),
    )
    .await
    .expect_problem(404, "not_found");
    assert_eq!(
        get_task(app, stranger.personal_org, &stranger, theirs).await["title"],
        "theirs"
    );
    assert_eq!(app.audit_count(w.org).await, n);
    assert_eq!(get_task(app, w.org, &w.owner, t).await, before);
}

async fn etag_and_if_match_guard_updates_moves_and_deletes(app: TestApp) {
    let w = world(&app).await;
    let other_list = new_list(&app, w.org, &w.owner, w.board, "Other").await;
    let t = titled(&app, w.org, &w.owner, w.list, "a").await;
    let path = url(w.org, &format!("/tasks/{t}"));
    let tok = &w.owner.token;

    let r = app.get(&path, tok).await.expect(200);
    assert_eq!(r.headers["etag"], "\"1\"");
    assert_eq!(r.json["version"], 1);
    let before = r.json;

    // Stale: 412, nothing changes, nothing logged.
    let n = app.audit_count(w.org).await;
    for stale in ["\"0\"", "\"2\"", "W/\"7\"", "garbage"] {
        app.send(request(
            Method::PATCH,
            &path,
            tok,
            &[("if-match", stale)],
            Some(&json!({ "title": "b" })),
        ))
        .await
        .expect_problem(412, "precondition_failed");
    }
    assert_eq!(app.audit_count(w.org).await, n);
    assert_eq!(app.get(&path, tok).await.expect(200).json, before);

    // Current: applied, version + 1, new ETag.
    let r = app
        .send(request(
            Method::PATCH,
            &path,
            tok,
            &[("if-match", "\"1\"")],
            Some(&json!({ "title": "b" })),
        ))
        .await
        .expect(200);
    assert_eq!(r.json["version"], 2);
    assert_eq!(r.json["title"], "b");
    assert_eq!(r.headers["etag"], "\"2\"");
    let p = one_more_row(&app, &w, n, "task.updated", t, &w.owner).await;
    assert_eq!(p, json!({ "title": { "from": "a", "to": "b" } }));
    let g = app.get(&path, tok).await.expect(200);
    assert_eq!(g.headers["etag"], "\"2\"");

    // The old version is now stale, for update, move and delete alike.
    let n = app.audit_count(w.org).await;
    app.send(request(
        Method::PATCH,
        &path,
        tok,
        &[("if-match", "\"1\"")],
        Some(&json!({ "title": "c" })),
    ))
    .await
    .expect_problem(412, "precondition_failed");
    app.send(request(
        Method::POST,
        &format!("{path}/move"),
        tok,
        &[("if-match", "\"1\"")],
        Some(&json!({ "list_id": other_list })),
    ))
    .await
    .expect_problem(412, "precondition_failed");
    app.send(request(
        Method::DELETE,
        &path,
        tok,
        &[("if-match", "\"1\"")],
        None,
    ))
    .await
    .expect_problem(412, "precondition_failed");
    assert_eq!(app.audit_count(w.org).await, n);
    let now = app.get(&path, tok).await.expect(200).json;
    assert_eq!(now["title"], "b");
    assert_eq!(now["list_id"], w.list.to_string());
    assert_eq!(now["version"], 2);

    // Move with the current version.
    let r = app
        .send(request(
            Method::POST,
            &format!("{path}/move"),
            tok,
            &[("if-match", "\"2\"")],
            Some(&json!({ "list_id": other_list })),
        ))
        .await
        .expect(200);
    assert_eq!(r.json["version"], 3);
    assert_eq!(r.headers["etag"], "\"3\"");
    // Without If-Match an update is unconditional.
    let r = patch_task(&app, w.org, &w.owner, t, json!({ "title": "d" }))
        .await
        .expect(200);
    assert_eq!(r.json["version"], 4);
    // Delete with the current version.
    let n = app.audit_count(w.org).await;
    app.send(request(
        Method::DELETE,
        &path,
        tok,
        &[("if-match", "\"4\"")],
        None,
    ))
    .await
    .expect(204);
    let p = one_more_row(&app, &w, n, "task.deleted", t, &w.owner).await;
    assert_eq!(p["title"], "d");
    app.get(&path, tok).await.expect_problem(404, "not_found");
}

async fn members_update_and_move_only_tasks_they_created_or_are_assigned(app: &TestApp) {
    let w = world(app).await;
    let admin = app.member(w.org, &w.owner, "admin").await;
    let member = app.member(w.org, &w.owner, "member").await;
    let other = app.member(w.org, &w.owner, "member").await;
    let done_list = new_list(app, w.org, &w.owner, w.board, "Done").await;
    let own = titled(app, w.org, &member, w.list, "own").await;
    let assigned = id_of(
        &new_task(
            app,
            w.org,
            &w.owner,
            w.list,
            json!({ "title": "assigned", "assignee_ids": [member.id] }),
        )
        .await,
    );
    let others = titled(app, w.org, &w.owner, w.list, "others").await;

    // Refused: someone else's task, including assigning oneself to it.
    let n = app.audit_count(w.org).await;
    for body in [
        json!({ "title": "mine now" }),
        json!({ "status": "done" }),
        json!({ "assignee_ids": [member.id] }),
    ] {
        patch_task(app, w.org, &member, others, body)
            .await
            .expect_problem(403, "forbidden");
    }
    move_task(app, w.org, &member, others, json!({ "list_id": done_list }))
        .await
        .expect_problem(403, "forbidden");
    for t in [own, assigned] {
        patch_task(app, w.org, &other, t, json!({ "title": "not yours" }))
            .await
            .expect_problem(403, "forbidden");
        move_task(app, w.org, &other, t, json!({ "list_id": done_list }))
            .await
            .expect_problem(403, "forbidden");
    }
    assert_eq!(app.audit_count(w.org).await, n);
    let o = get_task(app, w.org, &w.owner, others).await;
    assert_eq!(
        (o["title"].as_str(), o["version"].as_i64()),
        (Some("others"), Some(1))
    );
    assert_eq!(o["assignee_ids"], json!([]));

    // Allowed: created, or assigned.
    for (t, title) in [(own, "own 2"), (assigned, "assigned 2")] {
        let n = app.audit_count(w.org).await;
        let u = patch_task(
            app,
            w.org,
            &member,
            t,
            json!({ "title": title, "status": "done" }),
        )
        .await
        .expect(200)
        .json;
        assert_eq!(u["title"], title);
        one_more_row(app, &w, n, "task.updated", t, &member).await;
        let n = app.audit_count(w.org).await;
        let m = move_task(app, w.org, &member, t, json!({ "list_id": done_list }))
            .await
            .expect(200)
            .json;
        assert_eq!(m["list_id"], done_list.to_string());
        one_more_row(app, &w, n, "task.moved", t, &member).await;
    }
    assert_eq!(
        order_of(app, w.org, &member, w.board, done_list).await,
        [own, assigned]
    );

    // Unassigning oneself ends the right.
    patch_task(app, w.org, &member, assigned, json!({ "assignee_ids": [] }))
        .await
        .expect(200);
    patch_task(app, w.org, &member, assigned, json!({ "title": "again" }))
        .await
        .expect_problem(403, "forbidden");
    // Admins and owners update anyone's.
    patch_task(app, w.org, &admin, own, json!({ "priority": "low" }))
        .await
        .expect(200);
    move_task(app, w.org, &admin, others, json!({ "list_id": done_list }))
        .await
        .expect(200);
    patch_task(app, w.org, &w.owner, own, json!({ "priority": "high" }))
        .await
        .expect(200);
}

async fn members_delete_only_tasks_they_created(app: &TestApp) {
    let w = world(app).await;
    let admin = app.member(w.org, &w.owner, "admin").await;
    let member = app.member(w.org, &w.owner, "member").await;
    let own = titled(app, w.org, &member, w.list, "own").await;
    let assigned = id_of(
        &new_task(
            app,
            w.org,
            &w.owner,
            w.list,
            json!({ "title": "assigned", "assignee_ids": [member.id] }),
        )
        .await,
    );
    let others = titled(app, w.org, &w.owner, w.list, "others").await;
    let admins = titled(app, w.org, &admin, w.list, "admin's").await;
    app.post(
        &url(w.org, &format!("/tasks/{own}/comments")),
        &w.owner.token,
        json!({ "body": "note" }),
    )
    .await
    .expect(201);
    let del = |t: Uuid| url(w.org, &format!("/tasks/{t}"));

    let n = app.audit_count(w.org).await;
    for t in [assigned, others, admins] {
        app.delete(&del(t), &member.token)
            .await
            .expect_problem(403, "forbidden");
    }
    assert_eq!(app.audit_count(w.org).await, n);
    assert_eq!(
        order_of(app, w.org, &w.owner, w.board, w.list).await,
        [own, assigned, others, admins]
    );

    app.delete(&del(own), &member.token).await.expect(204);
    let p = one_more_row(app, &w, n, "task.deleted", own, &member).await;
    assert_eq!(p["title"], "own");
    app.get(&del(own), &w.owner.token)
        .await
        .expect_problem(404, "not_found");
    app.get(
        &url(w.org, &format!("/tasks/{own}/comments")),
        &w.owner.token,
    )
    .await
    .expect_problem(404, "not_found");

    // Admins and owners delete anyone's.
    let n = app.audit_count(w.org).await;
    app.delete(&del(others), &admin.token).await.expect(204);
    one_more_row(app, &w, n, "task.deleted", others, &admin).await;
    app.delete(&del(admins), &w.owner.token).await.expect(204);
    assert_eq!(
        order_of(app, w.org, &w.owner, w.board, w.list).await,
        [assigned]
    );
    let n = app.audit_count(w.org).await;
    app.delete(&del(own), &member.token)
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(w.org).await, n);
}

async fn viewers_cannot_change_tasks(app: &TestApp) {
    let w = world(app).await;
    let viewer = app.member(w.org, &w.owner, "viewer").await;
    let other_list = new_list(app, w.org, &w.owner, w.board, "Other").await;
    // Even a task a viewer is assigned to.
    let t = id_of(
        &new_task(
            app,
            w.org,
            &w.owner,
            w.list,
            json!({ "title": "t", "assignee_ids": [viewer.id] }),
        )
        .await,
    );
    let before = get_task(app, w.org, &viewer, t).await;

    let n = app.audit_count(w.org).await;
    create(app, w.org, &viewer, w.list, json!({ "title": "v" }))
        .await
        .expect_problem(403, "forbidden");
    patch_task(app, w.org, &viewer, t, json!({ "title": "v" }))
        .await
        .expect_problem(403, "forbidden");
    move_task(app, w.org, &viewer, t, json!({ "list_id": other_list }))
        .await
        .expect_problem(403, "forbidden");
    app.delete(&url(w.org, &format!("/tasks/{t}")), &viewer.token)
        .await
        .expect_problem(403, "forbidden");
    assert_eq!(app.audit_count(w.org).await, n);
    assert_eq!(get_task(app, w.org, &viewer, t).await, before);
    // Reading is fine.
    assert_eq!(query(app, w.org, &viewer, "").await, set([t]));
}

// ------------------------------------------------------------------- move

async fn move_within_and_across_lists(app: &TestApp) {
    let w = world(app).await;
    let a = w.list;
    let b = new_list(app, w.org, &w.owner, w.board, "B").await;
    let t1 = titled(app, w.org, &w.owner, a, "t1").await;
    let t2 = titled(app, w.org, &w.owner, a, "t2").await;
    let t3 = titled(app, w.org, &w.owner, a, "t3").await;
    let u1 = titled(app, w.org, &w.owner, b, "u1").await;
    let order = |l: Uuid| order_of(app, w.org, &w.owner, w.board, l);

    // Within a list.
    let n = app.audit_count(w.org).await;
    let m = move_task(
        app,
        w.org,
        &w.owner,
        t3,
        json!({ "list_id": a, "after_id": t1 }),
    )
    .await
    .expect(200);
    assert_eq!(m.json["version"], 2);
    assert_eq!(m.headers["etag"], "\"2\"");
    let p = one_more_row(app, &w, n, "task.moved", t3, &w.owner).await;
    assert!(p.get("list_id").is_none(), "same list: {p}");
    assert!(p["position"]["from"].is_string() && p["position"]["to"].is_string());
    assert_eq!(p["board_id"], w.board.to_string());
    assert_eq!(order(a).await, [t1, t3, t2]);

    move_task(
        app,
        w.org,
        &w.owner,
        t2,
        json!({ "list_id": a, "before_id": t1 }),
    )
    .await
    .expect(200);
    assert_eq!(order(a).await, [t2, t1, t3]);
    move_task(
        app,
        w.org,
        &w.owner,
        t3,
        json!({ "list_id": a, "after_id": t2, "before_id": t1 }),
    )
    .await
    .expect(200);
    assert_eq!(order(a).await, [t2, t3, t1]);
    // No anchor: to the end.
    move_task(app, w.org, &w.owner, t2, json!({ "list_id": a }))
        .await
        .expect(200);
    assert_eq!(order(a).await, [t3, t1, t2]);

    // Across lists of the board.
    let n = app.audit_count(w.org).await;
    let m = move_task(
        app,
        w.org,
        &w.owner,
        t1,
        json!({ "list_id": b, "after_id": u1 }),
    )
    .await
    .expect(200)
    .json;
    assert_eq!(m["list_id"], b.to_string());
    assert_eq!(m["board_id"], w.board.to_string());
    let p = one_more_row(app, &w, n, "task.moved", t1, &w.owner).await;
    assert_eq!(p["list_id"], json!({ "from": a, "to": b }));
    assert_eq!(order(a).await, [t3, t2]);
    assert_eq!(order(b).await, [u1, t1]);

    move_task(
        app,
        w.org,
        &w.owner,
        t3,
        json!({ "list_id": b, "before_id": u1 }),
    )
    .await
    .expect(200);
    assert_eq!(order(a).await, [t2]);
    assert_eq!(order(b).await, [t3, u1, t1]);
    move_task(app, w.org, &w.owner, u1, json!({ "list_id": a }))
        .await
        .expect(200);
    assert_eq!(order(a).await, [t2, u1]);
    assert_eq!(order(b).await, [t3, t1]);
    // Into an empty list.
    let c = new_list(app, w.org, &w.owner, w.board, "C").await;
    move_task(app, w.org, &w.owner, t2, json!({ "list_id": c }))
        .await
        .expect(200);
    assert_eq!(order(a).await, [u1]);
    assert_eq!(order(c).await, [t2]);
    // A new task is still appended after moved ones.
    let t4 = titled(app, w.org, &w.owner, b, "t4").await;
    assert_eq!(order(b).await, [t3, t1, t4]);
    // The list filter follows the task.
    assert_eq!(
        query(app, w.org, &w.owner, &format!("list_id={b}")).await,
        set([t3, t1, t4])
    );
    assert_eq!(
        get_task(app, w.org, &w.owner, t3).await["version"],
        4,
        "three moves"
    );
}

async fn move_refuses_other_boards_and_foreign_anchors(app: &TestApp) {
    let w = world(app).await;
    let a = w.list;
    let b = new_list(app, w.org, &w.owner, w.board, "B").await;
    let other_board = new_board(app, w.org, &w.owner, "Other").await;
    let elsewhere = new_list(app, w.org, &w.owner, other_board, "Elsewhere").await;
    let t1 = titled(app, w.org, &w.owner, a, "t1").await;
    let t2 = titled(app, w.org, &w.owner, a, "t2").await;
    let u1 = titled(app, w.org, &w.owner, b, "u1").await;
    let e1 = titled(app, w.org, &w.owner, elsewhere, "e1").await;
    let stranger = app.signup("stranger").await;
    let sb = new_board(app, stranger.personal_org, &stranger, "S").await;
    let sl = new_list(app, stranger.personal_org, &stranger, sb, "S").await;
    let s1 = titled(app, stranger.personal_org, &stranger, sl, "s1").await;
    let before = get_task(app, w.org, &w.owner, t1).await;

    let n = app.audit_count(w.org).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({ "list_id": elsewhere }), "list_id"),
        (json!({ "list_id": sl }), "list_id"),
        (json!({ "list_id": Uuid::now_v7() }), "list_id"),
        (json!({}), "list_id"),
        (json!({ "list_id": "nope" }), "list_id"),
        // Anchors that are not tasks of the destination list.
        (json!({ "list_id": b, "after_id": t2 }), "after_id"),
        (json!({ "list_id": b, "before_id": t2 }), "before_id"),
        (json!({ "list_id": a, "after_id": u1 }), "after_id"),
        (json!({ "list_id": a, "after_id": e1 }), "after_id"),
        (json!({ "list_id": a, "before_id": s1 }), "before_id"),
        (
            json!({ "list_id": a, "before_id": Uuid::now_v7() }),
            "before_id",
        ),
        // Itself, and anchors in the wrong order.
        (json!({ "list_id": a, "after_id": t1 }), "after_id"),
        (
            json!({ "list_id": a, "after_id": t2, "before_id": t2 }),
            "before_id",
        ),
    ];
    for (body, field) in cases {
        let r = move_task(app, w.org, &w.owner, t1, body.clone()).await;
        let r = r.expect_problem(422, "validation_failed");
        assert_eq!(fields(&r), [field], "{body}: {}", r.text);
    }
    // Anchors in the wrong order (t2 comes after t1).
    let r = move_task(
        app,
        w.org,
        &w.owner,
        u1,
        json!({ "list_id": a, "after_id": t2, "before_id": t1 }),
    )
    .await;
    expect_invalid(r, "before_id");
    move_task(
        app,
        w.org,
        &w.owner,
        Uuid::now_v7(),
        json!({ "list_id": a }),
    )
    .await
    .expect_problem(404, "not_found");
    move_task(app, w.org, &w.owner, s1, json!({ "list_id": a }))
        .await
        .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(w.org).await, n);
    assert_eq!(get_task(app, w.org, &w.owner, t1).await, before);
    assert_eq!(order_of(app, w.org, &w.owner, w.board, a).await, [t1, t2]);
    assert_eq!(order_of(app, w.org, &w.owner, w.board, b).await, [u1]);
    assert_eq!(
        order_of(app, w.org, &w.owner, other_board, elsewhere).await,
        [e1]
    );
    assert_eq!(
        order_of(app, stranger.personal_org, &stranger, sb, sl).await,
        [s1]
    );
}

// ------------------------------------------------------------ concurrency

async fn concurrent_conditional_updates_have_one_winner(app: TestApp) {
    let w = world(&app).await;
    let other_list = new_list(&app, w.org, &w.owner, w.board, "Other").await;
    let t = titled(&app, w.org, &w.owner, w.list, "start").await;
    let n = app.audit_count(w.org).await;
    let app = Arc::new(app);
    let path = url(w.org, &format!("/tasks/{t}"));

    let mut handles = Vec::new();
    for i in 0..10 {
        let app = Arc::clone(&app);
        let path = path.clone();
        let token = w.owner.token.clone();
        handles.push(tokio::spawn(async move {
            let body = json!({ "title": format!("writer {i}") });
            let r = app
                .send(request(
                    Method::PATCH,
                    &path,
                    &token,
                    &[("if-match", "\"1\"")],
                    Some(&body),
                ))
                .await;
            (i, r)
        }));
    }
    let mut winners = Vec::new();
    for h in handles {
        let (i, r) = h.await.unwrap();
        match r.status.as_u16() {
            200 => winners.push(i),
            _ => {
                r.expect_problem(412, "precondition_failed");
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one winner: {winners:?}");
    let now = get_task(&app, w.org, &w.owner, t).await;
    assert_eq!(now["version"], 2);
    assert_eq!(now["title"], format!("writer {}", winners[0]));
    assert_eq!(app.audit_count(w.org).await, n + 1);

    // The same for moves at version 2.
    let mut handles = Vec::new();
    for i in 0..10 {
        let app = Arc::clone(&app);
        let path = format!("{path}/move");
        let token = w.owner.token.clone();
        let list = if i % 2 == 0 { other_list } else { w.list };
        handles.push(tokio::spawn(async move {
            app.send(request(
                Method::POST,
                &path,
                &token,
                &[("if-match", "\"2\"")],
                Some(&json!({ "list_id": list })),
            ))
            .await
        }));
    }
    let mut ok = 0;
    for h in handles {
        let r = h.await.unwrap();
        if r.status.as_u16() == 200 {
            ok += 1;
        } else {
            r.expect_problem(412, "precondition_failed");
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(get_task(&app, w.org, &w.owner, t).await["version"], 3);
    assert_eq!(app.audit_count(w.org).await, n + 2);
}

// ------------------------------------------------------------ idempotency

fn keyed(path: &str, token: &str, key: &str, body: &Value) -> Request<Body> {
    request(
        Method::POST,
        path,
        token,
        &[("idempotency-key", key)],
        Some(body),
    )
}

async fn idempotent_create_replays_the_first_answer(app: &TestApp) {
    let w = world(app).await;
    let member = app.member(w.org, &w.owner, "member").await;
    let other_list = new_list(app, w.org, &w.owner, w.board, "Other").await;
    let path = url(w.org, &format!("/lists/{}/tasks", w.list));
    let body = json!({ "title": "once", "priority": "high" });
    let key = "create-once-1";

    let n = app.audit_count(w.org).await;
    let first = app
        .send(keyed(&path, &w.owner.token, key, &body))
        .await
        .expect(201);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let id = id_of(&first.json);
    assert_eq!(app.audit_count(w.org).await, n + 1);

    // Change the task: the replay still answers what the first request got.
    patch_task(app, w.org, &w.owner, id, json!({ "title": "changed" }))
        .await
        .expect(200);
    for _ in 0..2 {
        let again = app
            .send(keyed(&path, &w.owner.token, key, &body))
            .await
            .expect(201);
        assert_eq!(again.text, first.text, "byte for byte");
        assert_eq!(again.headers["idempotent-replayed"], "true");
        assert_eq!(again.content_type(), "application/json");
    }
    assert_eq!(query(app, w.org, &w.owner, "").await, set([id]));
    assert_eq!(
        app.audit_count(w.org).await,
        n + 2,
        "created once, updated once"
    );

    // Same key, another body or another path: refused, nothing created.
    let n = app.audit_count(w.org).await;
    for (p, b) in [
        (
            path.clone(),
            json!({ "title": "twice", "priority": "high" }),
        ),
        (path.clone(), json!({ "title": "once" })),
        (
            url(w.org, &format!("/lists/{other_list}/tasks")),
            body.clone(),
        ),
    ] {
        app.send(keyed(&p, &w.owner.token, key, &b))
            .await
            .expect_problem(422, "idempotency_key_reused");
    }
    assert_eq!(app.audit_count(w.org).await, n);
    assert_eq!(query(app, w.org, &w.owner, "").await, set([id]));

    // Keys belong to their user: another user's request with the same key is new.
    let theirs = app
        .send(keyed(&path, &member.token, key, &body))
        .await
        .expect(201);
    assert!(theirs.headers.get("idempotent-replayed").is_none());
    let their_id = id_of(&theirs.json);
    assert_ne!(their_id, id);
    assert_eq!(theirs.json["created_by"], member.id.to_string());
    assert_eq!(query(app, w.org, &w.owner, "").await, set([id, their_id]));
    assert_eq!(app.audit_count(w.org).await, n + 1);

    // A malformed key is refused outright.
    let long = "k".repeat(256);
    app.send(keyed(&path, &w.owner.token, &long, &body))
        .await
        .expect_problem(400, "invalid_idempotency_key");
    assert_eq!(query(app, w.org, &w.owner, "").await, set([id, their_id]));
}

async fn concurrent_creates_with_one_key_create_once(app: TestApp) {
    let w = world(&app).await;
    let n = app.audit_count(w.org).await;
    let app = Arc::new(app);
    let path = url(w.org, &format!("/lists/{}/tasks", w.list));
    let body = json!({ "title": "racing", "description": "ten at once" });

    let mut handles = Vec::new();
    for _ in 0..10 {
        let app = Arc::clone(&app);
        let path = path.clone();
        let body = body.clone();
        let token = w.owner.token.clone();
        handles.push(tokio::spawn(async move {
            app.send(keyed(&path, &token, "race-key", &body)).await
        }));
    }
    let mut answers = Vec::new();
    for h in handles {
        answers.push(h.await.unwrap().expect(201));
    }
    let first = &answers[0].text;
    assert!(
        answers.iter().all(|a| &a.text == first),
        "all answers identical"
    );
    let replayed = answers
        .iter()
        .filter(|a| a.headers.get("idempotent-replayed").is_some())
        .count();
    assert_eq!(replayed, 9, "one original, nine replays");
    let id = id_of(&answers[0].json);
    assert_eq!(query(&app, w.org, &w.owner, "").await, set([id]));
    assert_eq!(app.audit_count(w.org).await, n + 1);
}

async fn failed_requests_store_no_idempotency_key(app: &TestApp) {
    let w = world(app).await;
    let stranger = app.signup("stranger").await;
    let path = url(w.org, &format!("/lists/{}/tasks", w.list));
    let key = "fix-and-retry";

    let n = app.audit_count(w.org).await;
    // Refused inside the transaction (foreign assignee) …
    app.send(keyed(
        &path,
        &w.owner.token,
        key,
        &json!({ "title": "t", "assignee_ids": [stranger.id] }),
    ))
    .await
    .expect_problem(422, "validation_failed");
    // … before it (bad title) …
    app.send(keyed(&path, &w.owner.token, key, &json!({ "title": "" })))
        .await
        .expect_problem(422, "validation_failed");
    // … and on an unknown list.
    app.send(keyed(
        &url(w.org, &format!("/lists/{}/tasks", Uuid::now_v7())),
        &w.owner.token,
        key,
        &json!({ "title": "t" }),
    ))
    .await
    .expect_problem(404, "not_found");
    assert_eq!(app.audit_count(w.org).await, n);
    assert_eq!(query(app, w.org, &w.owner, "").await, HashSet::new());

    // The corrected request goes through with the same key, once.
    let fixed = json!({ "title": "t", "assignee_ids": [w.owner.id] });
    let r = app
        .send(keyed(&path, &w.owner.token, key, &fixed))
        .await
        .expect(201);
    assert!(r.headers.get("idempotent-replayed").is_none());
    let again = app
        .send(keyed(&path, &w.owner.token, key, &fixed))
        .await
        .expect(201);
    assert_eq!(again.text, r.text);
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(query(app, w.org, &w.owner, "").await, set([id_of(&r.json)]));
    assert_eq!(app.audit_count(w.org).await, n + 1);
}

// -------------------------------------------------------------- filtering

async fn filters_alone_and_combined(app: &TestApp) {
    let w = world(app).await;
    let (org, o) = (w.org, &w.owner);
    let a = app.member(org, o, "member").await;
    let b = app.member(org, o, "member").await;
    let viewer = app.member(org, o, "viewer").await;
    let b1 = w.board;
    let l1 = w.list;
    let l2 = new_list(app, org, o, b1, "L2").await;
    let b2 = new_board(app, org, o, "B2").await;
    let l3 = new_list(app, org, o, b2, "L3").await;
    let x = new_label(app, org, o, "x").await;
    let y = new_label(app, org, o, "y").await;
    let mk =
        |list: Uuid, body: Value| async move { id_of(&new_task(app, org, o, list, body).await) };
    let t1 = mk(
        l1,
        json!({ "title": "Fix login bug", "status": "todo", "priority": "high",
        "assignee_ids": [a.id], "label_ids": [x], "due_date": "2030-01-10T00:00:00Z" }),
    )
    .await;
    let t2 = mk(
        l1,
        json!({ "title": "Write docs", "status": "in_progress", "priority": "low",
        "assignee_ids": [b.id], "due_date": "2030-01-20T00:00:00Z" }),
    )
    .await;
    let t3 = mk(
        l2,
        json!({ "title": "100% coverage", "status": "done", "priority": "urgent",
        "assignee_ids": [a.id, b.id], "label_ids": [x, y] }),
    )
    .await;
    let t4 = mk(
        l2,
        json!({ "title": "snake_case names", "status": "todo", "priority": "medium",
        "label_ids": [y], "due_date": "2030-01-05T00:00:00Z" }),
    )
    .await;
    let t5 = mk(
        l3,
        json!({ "title": "FIX the LOGIN page", "status": "in_progress", "priority": "high",
        "assignee_ids": [a.id], "due_date": "2030-02-01T00:00:00Z" }),
    )
    .await;
    let t6 = mk(
        l3,
        json!({ "title": "Plain", "status": "done", "priority": "medium",
        "label_ids": [x], "due_date": "2029-12-31T00:00:00Z" }),
    )
    .await;
    // Another tenant with look-alike tasks, which never show.
    let stranger = app.signup("stranger").await;
    let sb = new_board(app, stranger.personal_org, &stranger, "S").await;
    let sl = new_list(app, stranger.personal_org, &stranger, sb, "S").await;
    new_task(
        app,
        stranger.personal_org,
        &stranger,
        sl,
        json!({ "title": "Fix login 100% snake_case", "status": "todo", "priority": "high",
                "due_date": "2030-01-10T00:00:00Z" }),
    )
    .await;

    let d = |s: &str| enc(s);
    let cases: Vec<(String, Vec<Uuid>)> = vec![
        (String::new(), vec![t1, t2, t3, t4, t5, t6]),
        (format!("board_id={b1}"), vec![t1, t2, t3, t4]),
        (format!("board_id={b2}"), vec![t5, t6]),
        (format!("list_id={l1}"), vec![t1, t2]),
        (format!("list_id={l2}"), vec![t3, t4]),
        ("status=todo".into(), vec![t1, t4]),
        ("status=in_progress".into(), vec![t2, t5]),
        ("status=todo,done".into(), vec![t1, t3, t4, t6]),
        (
            "status=todo,in_progress,done".into(),
            vec![t1, t2, t3, t4, t5, t6],
        ),
        ("priority=high".into(), vec![t1, t5]),
        ("priority=high,urgent".into(), vec![t1, t3, t5]),
        ("priority=low".into(), vec![t2]),
        (format!("assignee_id={}", a.id), vec![t1, t3, t5]),
        (format!("assignee_id={}", b.id), vec![t2, t3]),
        (format!("assignee_id={}", o.id), vec![]),
        (format!("label_id={x}"), vec![t1, t3, t6]),
        (format!("label_id={y}"), vec![t3, t4]),
        (
            format!("due_before={}", d("2030-01-15T00:00:00Z")),
            vec![t1, t4, t6],
        ),
        (
            format!("due_before={}", d("2030-01-10T00:00:00Z")),
            vec![t4, t6],
        ),
        (
            format!("due_after={}", d("2030-01-15T00:00:00Z")),
            vec![t2, t5],
        ),
        (format!("due_after={}", d("2030-01-20T00:00:00Z")), vec![t5]),
        (
            format!(
                "due_after={}&due_before={}",
                d("2030-01-01T00:00:00Z"),
                d("2030-01-15T00:00:00Z")
            ),
            vec![t1, t4],
        ),
        // The same instant in another offset.
        (
            format!("due_before={}", d("2030-01-15T05:00:00+05:00")),
            vec![t1, t4, t6],
        ),
        ("q=login".into(), vec![t1, t5]),
        ("q=LOGIN".into(), vec![t1, t5]),
        ("q=Fix".into(), vec![t1, t5]),
        (format!("q={}", d("the login")), vec![t5]),
        (format!("q={}", d("%")), vec![t3]),
        (format!("q={}", d("0%")), vec![t3]),
        (format!("q={}", d("e%c")), vec![]),
        (format!("q={}", d("_")), vec![t4]),
        (format!("q={}", d("e_c")), vec![t4]),
        (format!("q={}", d("e_n")), vec![]),
        ("q=zzz".into(), vec![]),
        // Combined.
        (
            format!("board_id={b1}&status=todo&assignee_id={}", a.id),
            vec![t1],
        ),
        (format!("label_id={x}&priority=urgent"), vec![t3]),
        (format!("q=login&list_id={l3}"), vec![t5]),
        (format!("status=done&label_id={x}&board_id={b2}"), vec![t6]),
        (
            format!(
                "assignee_id={}&due_before={}",
                a.id,
                d("2030-01-15T00:00:00Z")
            ),
            vec![t1],
        ),
        ("priority=medium&q=a".into(), vec![t4, t6]),
        (format!("label_id={y}&assignee_id={}", b.id), vec![t3]),
        (format!("list_id={l1}&status=done"), vec![]),
    ];
    for (qs, expected) in cases {
        assert_eq!(query(app, org, &viewer, &qs).await, set(expected), "?{qs}");
    }
    // Filters hold across pages too.
    let paged = page_all(
        app,
        org,
        &viewer,
        &format!("label_id={x}&sort=-priority"),
        1,
    )
    .await;
    assert_eq!(paged.iter().map(id_of).collect::<Vec<_>>(), [t3, t1, t6]);
}

async fn filters_refuse_foreign_ids_and_bad_values(app: &TestApp) {
    let w = world(app).await;
    titled(app, w.org, &w.owner, w.list, "mine").await;
    let stranger = app.signup("stranger").await;
    let so = stranger.personal_org;
    let sb = new_board(app, so, &stranger, "S").await;
    let sl = new_list(app, so, &stranger, sb, "S").await;
    let slabel = new_label(app, so, &stranger, "s").await;
    titled(app, so, &stranger, sl, "theirs").await;
    let get = |qs: String| {
        let w = &w;
        async move {
            app.get(&url(w.org, &format!("/tasks?{qs}")), &w.owner.token)
                .await
        }
    };

    for (qs, field) in [
        (format!("board_id={sb}"), "board_id"),
        (format!("list_id={sl}"), "list_id"),
        (format!("assignee_id={}", stranger.id), "assignee_id"),
        (format!("label_id={slabel}"), "label_id"),
        (format!("board_id={}", Uuid::now_v7()), "board_id"),
        (format!("list_id={}", Uuid::now_v7()), "list_id"),
        (format!("assignee_id={}", Uuid::now_v7()), "assignee_id"),
        (format!("label_id={}", Uuid::now_v7()), "label_id"),
        // A list id given as a board id and the like.
        (format!("board_id={}", w.list), "board_id"),
        (format!("list_id={}", w.board), "list_id"),
        ("status=blocked".into(), "status"),
        ("status=todo,nope".into(), "status"),
        ("status=".into(), "status"),
        ("priority=critical".into(), "priority"),
        ("sort=title".into(), "sort"),
        ("sort=--priority".into(), "sort"),
        ("sort=created".into(), "sort"),
        ("sort=".into(), "sort"),
        ("limit=0".into(), "limit"),
        ("limit=201".into(), "limit"),
        (format!("q={}", "q".repeat(201)), "q"),
    ] {
        expect_invalid(get(qs.clone()).await, field);
    }
    let r = get(format!("board_id={sb}&label_id={slabel}"))
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(fields(&r), ["board_id", "label_id"]);
    // Own ids around a foreign one: only the foreign one is named (the ids
    // are checked in one statement, one column each).
    let r = get(format!(
        "board_id={}&list_id={}&assignee_id={}&label_id={slabel}",
        w.board, w.list, w.owner.id
    ))
    .await
    .expect_problem(422, "validation_failed");
    assert_eq!(fields(&r), ["label_id"]);
    let r = get(format!(
        "board_id={}&list_id={sl}&assignee_id={}",
        w.board, w.owner.id
    ))
    .await
    .expect_problem(422, "validation_failed");
    assert_eq!(fields(&r), ["list_id"]);
    for qs in [
        "board_id=nope",
        "due_before=yesterday",
        "limit=-1",
        "limit=x",
    ] {
        get(qs.into()).await.expect_problem(400, "invalid_query");
    }
    // The other tenant's filters work for them only.
    assert_eq!(
        query(app, so, &stranger, &format!("board_id={sb}"))
            .await
            .len(),
        1
    );
}

// ------------------------------------------------------ sorting and paging

fn rank(p: &Value) -> u8 {
    match p.as_str().unwrap() {
        "low" => 0,
        "medium" => 1,
        "high" => 2,
        "urgent" => 3,
        other => panic!("priority {other}"),
    }
}

/// Compares two tasks by `sort` (`name` or `-name`), ties by id in the same
/// direction. Due dates: only for tasks that have one.
fn compare(sort: &str, a: &Value, b: &Value) -> Ordering {
    let (desc, name) = match sort.strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, sort),
    };
    let by_key = match name {
        "created_at" => time(&a["created_at"]).cmp(&time(&b["created_at"])),
        "updated_at" => time(&a["updated_at"]).cmp(&time(&b["updated_at"])),
        "due_date" => time(&a["due_date"]).cmp(&time(&b["due_date"])),
        "priority" => rank(&a["priority"]).cmp(&rank(&b["priority"])),
        other => panic!("sort {other}"),
    };
    let o = by_key.then_with(|| id_of(a).cmp(&id_of(b)));
    if desc { o.reverse() } else { o }
}

async fn every_sort_pages_completely_in_order(app: TestApp) {
    let w = world(&app).await;
    let other_list = new_list(&app, w.org, &w.owner, w.board, "Other").await;
    let (d1, d2, d3) = (
        "2030-03-01T00:00:00Z",
        "2030-02-01T00:00:00Z",
        "2030-04-01T00:00:00Z",
    );
    let specs: [(&str, Option<&str>); 11] = [
        ("high", Some(d1)),
        ("low", None),
        ("high", Some(d2)),
        ("urgent", Some(d1)),
        ("medium", None),
        ("low", Some(d3)),
        ("high", Some(d2)),
        ("medium", None),
        ("urgent", Some(d1)),
        ("high", Some(d3)),
        ("low", Some(d1)),
    ];
    let mut made = Vec::new();
    for (i, (priority, due)) in specs.iter().enumerate() {
        let list = if i % 3 == 0 { other_list } else { w.list };
        made.push(id_of(
            &new_task(
                &app,
                w.org,
                &w.owner,
                list,
                json!({ "title": format!("t{i}"), "priority": priority, "due_date": due }),
            )
            .await,
        ));
    }
    // Shuffle updated_at against created_at.
    for i in [4, 1, 7, 0] {
        patch_task(
            &app,
            w.org,
            &w.owner,
            made[i],
            json!({ "title": format!("u{i}") }),
        )
        .await
        .expect(200);
    }
    let all: Vec<Value> = app
        .get(&url(w.org, "/tasks?limit=200"), &w.owner.token)
        .await
        .expect(200)
        .json["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 11);

    for sort in [
        "",
        "created_at",
        "-created_at",
        "updated_at",
        "-updated_at",
        "due_date",
        "-due_date",
        "priority",
        "-priority",
    ] {
        let qs = if sort.is_empty() {
            String::new()
        } else {
            format!("sort={sort}")
        };
        let got = page_all(&app, w.org, &w.owner, &qs, 3).await;
        let got_ids: Vec<Uuid> = got.iter().map(id_of).collect();
        assert_eq!(
            set(got_ids.clone()).len(),
            got_ids.len(),
            "{sort}: no repeats"
        );
        assert_eq!(set(got_ids.clone()), set(made.clone()), "{sort}: complete");
        let key = if sort.is_empty() { "created_at" } else { sort };
        if key.ends_with("due_date") {
            let (dated, undated): (Vec<Value>, Vec<Value>) =
                all.iter().cloned().partition(|t| !t["due_date"].is_null());
            let mut expected = dated;
            expected.sort_by(|a, b| compare(key, a, b));
            let n = expected.len();
            assert_eq!(
                got_ids[..n],
                expected.iter().map(id_of).collect::<Vec<_>>()[..],
                "{sort}: dated tasks in order"
            );
            assert_eq!(
                set(got_ids[n..].iter().copied()),
                set(undated.iter().map(id_of)),
                "{sort}: tasks without a due date last"
            );
        } else {
            let mut expected = all.clone();
            expected.sort_by(|a, b| compare(key, a, b));
            assert_eq!(
                got_ids,
                expected.iter().map(id_of).collect::<Vec<_>>(),
                "{sort}: in order"
            );
        }
    }

    // With filters: the filter holds on every page, order as above.
    let qs = format!("list_id={}&priority=high,urgent&sort=-due_date", w.list);
    let got: Vec<Uuid> = page_all(&app, w.org, &w.owner, &qs, 2)
        .await
        .iter()
        .map(id_of)
        .collect();
    let mut expected: Vec<Value> = all
        .iter()
        .filter(|t| t["list_id"] == w.list.to_string() && rank(&t["priority"]) >= 2)
        .cloned()
        .collect();
    assert!(expected.iter().all(|t| !t["due_date"].is_null()));
    expected.sort_by(|a, b| compare("-due_date", a, b));
    assert_eq!(got, expected.iter().map(id_of).collect::<Vec<_>>());
}

async fn paging_never_repeats_or_skips_across_inserts(app: &TestApp) {
    let w = world(app).await;
    let mut existing = Vec::new();
    for i in 0..6 {
        existing.push(titled(app, w.org, &w.owner, w.list, &format!("t{i}")).await);
    }
    let page = |qs: String| {
        let w = &w;
        async move {
            app.get(&url(w.org, &format!("/tasks?limit=2&{qs}")), &w.owner.token)
                .await
                .expect(200)
                .json
        }
    };

    // Oldest first: tasks created while paging come at the end.
    let first = page("sort=created_at".into()).await;
    let mut seen = ids(&first["items"]);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let n1 = titled(app, w.org, &w.owner, w.list, "new 1").await;
    let n2 = titled(app, w.org, &w.owner, w.list, "new 2").await;
    loop {
        let p = page(format!("sort=created_at&cursor={cursor}")).await;
        seen.extend(ids(&p["items"]));
        match p["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
        // Another insert in the middle of paging.
        if seen.len() == 4 {
            titled(app, w.org, &w.owner, w.list, "new 3").await;
        }
    }
    assert_eq!(seen[..6], existing[..]);
    assert_eq!(seen[6..8], [n1, n2]);
    assert_eq!(seen.len(), 9);
    assert_eq!(set(seen.clone()).len(), 9);

    // Newest first: inserts while paging do not shift what follows.
    let first = page("sort=-created_at".into()).await;
    let mut seen = ids(&first["items"]);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    titled(app, w.org, &w.owner, w.list, "new 4").await;
    // Deleting the task the cursor points at does not break paging either.
    let anchor = *seen.last().unwrap();
    app.delete(&url(w.org, &format!("/tasks/{anchor}")), &w.owner.token)
        .await
        .expect(204);
    loop {
        let p = page(format!("sort=-created_at&cursor={cursor}")).await;
        seen.extend(ids(&p["items"]));
        match p["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let mut expected: Vec<Uuid> = existing.clone();
    expected.extend([n1, n2]);
    assert_eq!(
        seen.len(),
        9,
        "the 9 tasks there when paging began: {seen:?}"
    );
    assert_eq!(set(seen.clone()).len(), 9);
    assert!(seen.windows(2).all(|p| p[0] > p[1]), "newest first");
    for t in expected {
        assert!(seen.contains(&t), "{t} not skipped");
    }
    assert_eq!(
        query(app, w.org, &w.owner, "").await.len(),
        9,
        "8 + new 3 + new 4 - the deleted one"
    );
}

async fn cursors_are_tamper_safe_and_bound_to_their_sort(app: &TestApp) {
    let w = world(app).await;
    for (i, p) in ["low", "high", "medium", "urgent", "high"]
        .iter()
        .enumerate()
    {
        new_task(
            app,
            w.org,
            &w.owner,
            w.list,
            json!({ "title": format!("t{i}"), "priority": p }),
        )
        .await;
    }
    for name in ["a", "b", "c"] {
        new_label(app, w.org, &w.owner, name).await;
    }
    let other_org = app.create_org(&w.owner, "Other").await;
    let ob = new_board(app, other_org, &w.owner, "B").await;
    let ol = new_list(app, other_org, &w.owner, ob, "L").await;
    for i in 0..5 {
        titled(app, other_org, &w.owner, ol, &format!("o{i}")).await;
    }
    let tasks = |org: Uuid, qs: String| {
        let w = &w;
        async move {
            app.get(&url(org, &format!("/tasks?{qs}")), &w.owner.token)
                .await
        }
    };

    let first = tasks(w.org, "sort=priority&limit=2".into())
        .await
        .expect(200)
        .json;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let next = tasks(w.org, format!("sort=priority&limit=2&cursor={cursor}"))
        .await
        .expect(200)
        .json;
    let (p1, p2) = (set(ids(&first["items"])), set(ids(&next["items"])));
    assert_eq!(p2.len(), 2);
    assert!(p1.is_disjoint(&p2));

    // Forged and altered cursors.
    let (payload, tag) = cursor.split_once('.').unwrap();
    let mut sealed: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    let mut moved = sealed.clone();
    moved["p"]["id"] = json!(Uuid::now_v7());
    let moved = format!("{}.{tag}", B64.encode(serde_json::to_vec(&moved).unwrap()));
    let scope = sealed["s"].as_str().unwrap().to_owned();
    assert!(scope.contains(&w.org.to_string()), "{scope}");
    sealed["s"] = json!(scope.replace(&w.org.to_string(), &other_org.to_string()));
    let transplanted = format!("{}.{tag}", B64.encode(serde_json::to_vec(&sealed).unwrap()));
    let mid = payload.len() / 2;
    let flip = if &payload[mid..=mid] == "A" { "B" } else { "A" };
    let flipped = format!("{}{flip}{}.{tag}", &payload[..mid], &payload[mid + 1..]);
    let bad_tag = format!("{payload}.{}", B64.encode([0u8; 16]));
    for forged in [
        "garbage".to_owned(),
        "abc.def".to_owned(),
        String::new(),
        moved,
        transplanted.clone(),
        flipped,
        bad_tag,
        format!("{payload}.{tag}x"),
        "x".repeat(2000),
    ] {
        let r = tasks(
            w.org,
            format!("sort=priority&limit=2&cursor={}", enc(&forged)),
        )
        .await;
        r.expect_problem(400, "invalid_cursor");
    }
    tasks(
        other_org,
        format!("sort=priority&limit=2&cursor={}", enc(&transplanted)),
    )
    .await
    .expect_problem(400, "invalid_cursor");

    // A genuine cursor with another sort, in another organization, or on
    // another collection.
    for sort in ["-priority", "due_date", "created_at", "updated_at"] {
        tasks(w.org, format!("sort={sort}&limit=2&cursor={cursor}"))
            .await
            .expect_problem(400, "invalid_cursor");
    }
    tasks(w.org, format!("limit=2&cursor={cursor}"))
        .await
        .expect_problem(400, "invalid_cursor");
    tasks(other_org, format!("sort=priority&limit=2&cursor={cursor}"))
        .await
        .expect_problem(400, "invalid_cursor");
    let labels = app
        .get(&url(w.org, "/labels?limit=2"), &w.owner.token)
        .await
        .expect(200)
        .json;
    let label_cursor = labels["next_cursor"].as_str().unwrap().to_owned();
    tasks(w.org, format!("limit=2&cursor={label_cursor}"))
        .await
        .expect_problem(400, "invalid_cursor");
    app.get(
        &url(w.org, &format!("/labels?limit=2&cursor={cursor}")),
        &w.owner.token,
    )
    .await
    .expect_problem(400, "invalid_cursor");
    // The genuine one still works.
    tasks(w.org, format!("sort=priority&limit=2&cursor={cursor}"))
        .await
        .expect(200);
}

/// A leap second (`:60`) is refused wherever a client sends a time: SQLite
/// would have stored the text `:60` and PostgreSQL the next minute, so the
/// same filter would have answered differently.
async fn leap_seconds_are_refused_on_both_databases(app: TestApp) {
    let owner = app.signup("leap").await;
    let org = app.create_org(&owner, "Leap").await;
    let tasks = app.new_list(&owner, org).await;
    let leap = "2030-06-30T23:59:60Z";
    let r = app
        .post(
            &tasks,
            &owner.token,
            json!({ "title": "t", "due_date": leap }),
        )
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(r.json["errors"][0]["field"], "due_date");
    let task = app
        .post(
            &tasks,
            &owner.token,
            json!({ "title": "t", "due_date": "2030-06-30T23:59:59Z" }),
        )
        .await
        .expect(201);
    let t = task.json["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/orgs/{org}/tasks/{t}"),
        &owner.token,
        json!({ "due_date": leap }),
    )
    .await
    .expect_problem(422, "validation_failed");
    for q in ["due_before", "due_after"] {
        app.get(
            &format!("/api/v1/orgs/{org}/tasks?{q}={leap}"),
            &owner.token,
        )
        .await
        .expect_problem(422, "validation_failed");
    }
    for q in ["since", "until"] {
        app.get(
            &format!("/api/v1/orgs/{org}/audit-log?{q}={leap}"),
            &owner.token,
        )
        .await
        .expect_problem(422, "validation_failed");
    }
    let stored = app
        .get(&format!("/api/v1/orgs/{org}/tasks/{t}"), &owner.token)
        .await
        .expect(200);
    assert_eq!(stored.json["due_date"], "2030-06-30T23:59:59Z", "unchanged");
}

/// A filtered page checks the membership with the page (on PostgreSQL in
/// the same statement): a member whose filter matches nothing gets an
/// empty page, one that matches gets its tasks, and someone else gets `404`
/// either way, by id and by slug.
async fn a_filtered_page_that_matches_nothing_is_empty_for_members_only(app: TestApp) {
    let owner = app.signup("olga").await;
    let stranger = app.signup("sven").await;
    let org = owner.personal_org;
    let tasks = app.new_list(&owner, org).await;
    app.post(&tasks, &owner.token, json!({ "title": "Only todo" }))
        .await
        .expect(201);
    let slug = app.slug(org, &owner).await;
    for key in [org.to_string(), slug] {
        let empty = format!("/api/v1/orgs/{key}/tasks?status=done&limit=5");
        let r = app.get(&empty, &owner.token).await.expect(200);
        assert_eq!(r.json["items"], json!([]), "{key}: {}", r.text);
        assert_eq!(r.json["next_cursor"], Value::Null);
        let some = format!("/api/v1/orgs/{key}/tasks?status=todo&limit=5");
        let r = app.get(&some, &owner.token).await.expect(200);
        assert_eq!(
            r.json["items"][0]["title"], "Only todo",
            "{key}: {}",
            r.text
        );
        for path in [&empty, &some] {
            app.get(path, &stranger.token)
                .await
                .expect_problem(404, "not_found");
        }
    }
}
