//! Ordering, concurrency, paging and bad input on the work domain (issue 3,
//! items 3, 4 and 9), on both backends:
//!
//! * 10 000 inserts at the same spot keep a total order that the database
//!   itself (bytewise collation) agrees with; a smaller run does the same
//!   through the API.
//! * 100 concurrent random moves leave every task in exactly one list, with
//!   unique positions, the count conserved and no lost update; concurrent
//!   appends to one list never share a position.
//! * Keyset paging over `GET …/tasks` never repeats or skips a task while
//!   other tasks are being inserted.
//! * No request from the bad-input table answers `5xx`, every refusal is
//!   `problem+json`, and none of them changes anything.
//!
//! Randomness comes from a fixed-seed xorshift, so a failure reproduces.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::common::{Resp, TestApp, TestUser};
use axum::body::Body;
use axum::http::{Method, Request};
use orgboard::db::Scope;
use orgboard::domain::ordering::key_between;
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    ten_thousand_inserts_at_the_same_spot_keep_a_total_order,
    same_spot_moves_through_the_api_keep_a_total_order,
    hundred_concurrent_random_moves_keep_every_task_in_exactly_one_list,
    concurrent_appends_to_one_list_get_distinct_positions,
    paging_under_concurrent_inserts_never_repeats_or_skips,
    bad_input_never_answers_5xx_and_changes_nothing,
);

/// A small deterministic generator (xorshift64): same seed, same choices.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Never zero (xorshift would stay at zero); spread nearby seeds.
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// An organization with one board and its lists.
#[derive(Clone)]
struct Fixture {
    owner: TestUser,
    org: Uuid,
    board: Uuid,
    lists: Vec<Uuid>,
}

impl Fixture {
    fn url(&self, rest: &str) -> String {
        format!("/api/v1/orgs/{}{rest}", self.org)
    }
    fn token(&self) -> &str {
        &self.owner.token
    }
}

fn id_of(r: &Resp) -> Uuid {
    r.json["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {}", r.text))
        .parse()
        .unwrap()
}

fn uuid(v: &Value) -> Uuid {
    v.as_str()
        .unwrap_or_else(|| panic!("not a uuid: {v}"))
        .parse()
        .unwrap()
}

async fn fixture(app: &TestApp, lists: usize) -> Fixture {
    let owner = app.signup("owner").await;
    let org = app.create_org(&owner, "Ordering").await;
    let board = id_of(
        &app.post(
            &format!("/api/v1/orgs/{org}/boards"),
            &owner.token,
            json!({"name": "Board"}),
        )
        .await
        .expect(201),
    );
    let mut ids = Vec::new();
    for i in 0..lists {
        ids.push(id_of(
            &app.post(
                &format!("/api/v1/orgs/{org}/boards/{board}/lists"),
                &owner.token,
                json!({ "name": format!("List {i}") }),
            )
            .await
            .expect(201),
        ));
    }
    Fixture {
        owner,
        org,
        board,
        lists: ids,
    }
}

/// Creates a task at the end of `list`; returns the response body.
async fn create_task(app: &TestApp, f: &Fixture, list: Uuid, title: &str) -> Value {
    app.post(
        &f.url(&format!("/lists/{list}/tasks")),
        f.token(),
        json!({ "title": title }),
    )
    .await
    .expect(201)
    .json
}

/// Moves `task` into `list` right after `after`; returns the response body.
async fn move_after(app: &TestApp, f: &Fixture, task: Uuid, list: Uuid, after: Uuid) -> Value {
    app.post(
        &f.url(&format!("/tasks/{task}/move")),
        f.token(),
        json!({ "list_id": list, "after_id": after }),
    )
    .await
    .expect(200)
    .json
}

/// Moves `task` into `list` right before `before`; returns the response body.
async fn move_before(app: &TestApp, f: &Fixture, task: Uuid, list: Uuid, before: Uuid) -> Value {
    app.post(
        &f.url(&format!("/tasks/{task}/move")),
        f.token(),
        json!({ "list_id": list, "before_id": before }),
    )
    .await
    .expect(200)
    .json
}

/// The board view: every list in order, each with its tasks `(id, position)`
/// in the order the server gives them.
async fn board_view(app: &TestApp, f: &Fixture) -> Vec<(Uuid, Vec<(Uuid, String)>)> {
    // The board view carries the first `per_list` tasks of each list; each
    // list's cursor pages the rest, in the same order.
    let v = app
        .get(
            &f.url(&format!("/boards/{}?per_list=1000", f.board)),
            f.token(),
        )
        .await
        .expect(200)
        .json;
    let entry = |t: &Value, list: Uuid| {
        assert_eq!(uuid(&t["list_id"]), list, "task listed under another list");
        (uuid(&t["id"]), t["position"].as_str().unwrap().to_owned())
    };
    let mut out = Vec::new();
    for l in v["lists"].as_array().unwrap() {
        let list = uuid(&l["id"]);
        let mut tasks: Vec<(Uuid, String)> = l["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| entry(t, list))
            .collect();
        let mut cursor = l["next_cursor"].as_str().map(str::to_owned);
        while let Some(c) = cursor {
            let page = app
                .get(
                    &f.url(&format!(
                        "/tasks?list_id={list}&sort=position&limit=200&cursor={c}"
                    )),
                    f.token(),
                )
                .await
                .expect(200)
                .json;
            tasks.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| entry(t, list)),
            );
            cursor = page["next_cursor"].as_str().map(str::to_owned);
        }
        out.push((list, tasks));
    }
    out
}

/// The tasks of `list` as the database orders them (`ORDER BY position`).
async fn db_order(app: &TestApp, f: &Fixture, list: Uuid) -> Vec<(Uuid, String)> {
    let mut tx = app
        .state
        .db
        .read(Scope::tenant(f.owner.id, f.org))
        .await
        .unwrap();
    orgboard::on_tx!(&mut tx, |c| sqlx::query_as::<_, (Uuid, String)>(
        "SELECT id, position FROM tasks WHERE org_id = $1 AND list_id = $2 ORDER BY position"
    )
    .bind(f.org)
    .bind(list)
    .fetch_all(c)
    .await)
    .unwrap()
}

/// Positions are strictly increasing as byte strings (so also distinct).
#[track_caller]
fn assert_strictly_increasing(tasks: &[(Uuid, String)]) {
    for w in tasks.windows(2) {
        assert!(
            w[0].1.as_bytes() < w[1].1.as_bytes(),
            "positions out of byte order or repeated: {} ({:?}) then {} ({:?})",
            w[0].0,
            w[0].1,
            w[1].0,
            w[1].1
        );
    }
    let distinct: HashSet<&str> = tasks.iter().map(|t| t.1.as_str()).collect();
    assert_eq!(
        distinct.len(),
        tasks.len(),
        "positions are not all distinct"
    );
}

fn ids(tasks: &[(Uuid, String)]) -> Vec<Uuid> {
    tasks.iter().map(|t| t.0).collect()
}

// ---------------------------------------------------------------------------
// 1. Inserts at the same spot
// ---------------------------------------------------------------------------

/// Storage-level inserts at the same spot (20 000 requests through the API
/// take minutes in a debug build; the API path is covered by the test below
/// and by the moves made here on top of the long keys).
const SAME_SPOT_STORED: usize = 10_000;
/// Storage-level inserts always right before B. Their keys climb towards B
/// in lower-case digits while the ones after A sink in upper-case and
/// decimal digits, so a collation that is not bytewise (case-insensitive or
/// linguistic) would order the two runs differently.
const BEFORE_B_STORED: usize = 1_000;
/// Same-spot moves through the API on top of the stored ones (each end).
const SAME_SPOT_ON_TOP: usize = 20;
/// Same-spot moves through the API alone: after A, then before B.
const SAME_SPOT_API: usize = 300;
const BEFORE_B_API: usize = 60;

/// Inserts a task with the given order key straight into the table.
async fn insert_raw(tx: &mut orgboard::db::Tx, f: &Fixture, list: Uuid, key: &str) -> Uuid {
    let id = Uuid::now_v7();
    let now = orgboard::db::now();
    orgboard::on_tx!(tx, |c| sqlx::query(
        "INSERT INTO tasks (org_id, id, board_id, list_id, title, description, status, priority, \
         position, due_date, created_by, completed_at, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, '', 'todo', 1, $6, NULL, $7, NULL, 1, $8, $8)"
    )
    .bind(f.org)
    .bind(id)
    .bind(f.board)
    .bind(list)
    .bind(format!("stored {key}"))
    .bind(key)
    .bind(f.owner.id)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    id
}

fn pos_of(v: &Value) -> String {
    v["position"].as_str().unwrap().to_owned()
}

async fn ten_thousand_inserts_at_the_same_spot_keep_a_total_order(app: TestApp) {
    let f = fixture(&app, 1).await;
    let list = f.lists[0];
    // A and B hold the first two keys a list hands out without a
    // tie-break ("a0", "a1": a create's key ends with a random one, see
    // `key_after_last`), so that the runs below differ in case every time.
    let mut tx = app
        .state
        .db
        .write(Scope::tenant(f.owner.id, f.org))
        .await
        .unwrap();
    let (a_pos, b_pos) = (
        key_between(None, None).unwrap(),
        key_between(Some("a0"), None).unwrap(),
    );
    let (a_id, b_id) = (
        insert_raw(&mut tx, &f, list, &a_pos).await,
        insert_raw(&mut tx, &f, list, &b_pos).await,
    );

    // 10 000 tasks, each placed between A and the one inserted before it,
    // then 1 000 each placed between the one inserted before it and B,
    // written straight into the table in one transaction.
    let mut after_a = Vec::with_capacity(SAME_SPOT_STORED);
    let mut right = b_pos.clone();
    for _ in 0..SAME_SPOT_STORED {
        let key = key_between(Some(&a_pos), Some(&right)).unwrap();
        assert!(a_pos < key && key < right, "{a_pos} < {key} < {right}");
        after_a.push(insert_raw(&mut tx, &f, list, &key).await);
        right = key;
    }
    let longest_after_a = right.len();
    let mut before_b = Vec::with_capacity(BEFORE_B_STORED);
    let mut left = key_between(Some(&a_pos), Some(&b_pos)).unwrap(); // the first one's key
    for _ in 0..BEFORE_B_STORED {
        let key = key_between(Some(&left), Some(&b_pos)).unwrap();
        assert!(left < key && key < b_pos, "{left} < {key} < {b_pos}");
        before_b.push(insert_raw(&mut tx, &f, list, &key).await);
        left = key;
    }
    tx.commit().await.unwrap();
    // "a0V…" (the first key after A) against "a0l…" (the first one before
    // B): byte order puts upper case first, a linguistic collation does not.
    let first = key_between(Some(&a_pos), Some(&b_pos)).unwrap();
    assert!(
        first[2..].bytes().any(|c| c.is_ascii_uppercase())
            && left[2..].bytes().any(|c| c.is_ascii_lowercase()),
        "the two runs should differ in case: {first} / {left}"
    );

    // Then the server itself places tasks at both spots, next to the
    // longest keys so far.
    let mut moved_after_a = Vec::new();
    let mut moved_before_b = Vec::new();
    for i in 0..SAME_SPOT_ON_TOP {
        let t = create_task(&app, &f, list, &format!("api after A {i}")).await;
        let pos = pos_of(&move_after(&app, &f, uuid(&t["id"]), list, a_id).await);
        assert!(a_pos < pos && pos < right, "{a_pos} < {pos} < {right}");
        right = pos;
        moved_after_a.push(uuid(&t["id"]));

        let t = create_task(&app, &f, list, &format!("api before B {i}")).await;
        let pos = pos_of(&move_before(&app, &f, uuid(&t["id"]), list, b_id).await);
        assert!(left < pos && pos < b_pos, "{left} < {pos} < {b_pos}");
        left = pos;
        moved_before_b.push(uuid(&t["id"]));
    }

    let mut expected = vec![a_id];
    expected.extend(moved_after_a.iter().rev());
    expected.extend(after_a.iter().rev());
    expected.extend(&before_b);
    expected.extend(&moved_before_b);
    expected.push(b_id);

    // The database orders the keys exactly as byte strings do.
    let db = db_order(&app, &f, list).await;
    assert_eq!(db.len(), expected.len());
    assert_strictly_increasing(&db);
    assert!(
        ids(&db) == expected,
        "ORDER BY position differs from the insertion order"
    );
    // And so does the board view.
    let view = board_view(&app, &f).await;
    assert_eq!(view.len(), 1);
    assert_strictly_increasing(&view[0].1);
    assert!(
        ids(&view[0].1) == expected,
        "board view order differs from the insertion order"
    );
    assert!(
        longest_after_a < 2_000,
        "keys grew to {longest_after_a} bytes"
    );
}

async fn same_spot_moves_through_the_api_keep_a_total_order(app: TestApp) {
    let f = fixture(&app, 2).await;
    let (list, other) = (f.lists[0], f.lists[1]);
    let a = uuid(&create_task(&app, &f, list, "A").await["id"]);
    let b = uuid(&create_task(&app, &f, list, "B").await["id"]);
    let mut inserted = Vec::new();
    for i in 0..SAME_SPOT_API {
        // Every third one comes from the other list (a cross-list move).
        let from = if i % 3 == 0 { other } else { list };
        let t = uuid(&create_task(&app, &f, from, &format!("t{i}")).await["id"]);
        let m = move_after(&app, &f, t, list, a).await;
        assert_eq!(uuid(&m["list_id"]), list);
        inserted.push(t);
    }
    let mut climbing = Vec::new();
    for i in 0..BEFORE_B_API {
        let from = if i % 3 == 0 { other } else { list };
        let t = uuid(&create_task(&app, &f, from, &format!("u{i}")).await["id"]);
        let m = move_before(&app, &f, t, list, b).await;
        assert_eq!(uuid(&m["list_id"]), list);
        climbing.push(t);
    }
    let mut expected = vec![a];
    expected.extend(inserted.iter().rev());
    expected.extend(&climbing);
    expected.push(b);

    let db = db_order(&app, &f, list).await;
    assert_strictly_increasing(&db);
    assert_eq!(ids(&db), expected, "ORDER BY position");
    let view = board_view(&app, &f).await;
    assert_eq!(ids(&view[0].1), expected, "board view");
    assert!(view[1].1.is_empty(), "the other list is empty again");
    assert!(db_order(&app, &f, other).await.is_empty());
}

// ---------------------------------------------------------------------------
// 2. Concurrency
// ---------------------------------------------------------------------------

const LISTS: usize = 4;
const TASKS: usize = 40;
const MOVES: usize = 100;
const SEED: u64 = 0x00DD_BA11_5EED;

/// What one concurrent move asked for and got.
struct MoveOutcome {
    job: usize,
    task: Uuid,
    body: Value,
    resp: Resp,
}

async fn hundred_concurrent_random_moves_keep_every_task_in_exactly_one_list(app: TestApp) {
    let f = fixture(&app, LISTS).await;
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let t = create_task(&app, &f, f.lists[i % LISTS], &format!("task {i}")).await;
        tasks.push(uuid(&t["id"]));
    }
    let audit_before = app.audit_count(f.org).await;
    let app = Arc::new(app);
    let tasks = Arc::new(tasks);

    let mut handles = Vec::new();
    for job in 0..MOVES {
        let (app, f, tasks) = (app.clone(), f.clone(), tasks.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = Rng::new(SEED + job as u64);
            let task = tasks[rng.below(tasks.len())];
            let dest = f.lists[rng.below(LISTS)];
            let mode = rng.below(3);
            let mut body = json!({ "list_id": dest });
            if mode > 0 {
                // An anchor from the destination as it looks right now: it
                // may have moved away by the time the move runs.
                let view = board_view(&app, &f).await;
                let candidates: Vec<Uuid> = view
                    .iter()
                    .find(|(l, _)| *l == dest)
                    .unwrap()
                    .1
                    .iter()
                    .map(|t| t.0)
                    .filter(|t| *t != task)
                    .collect();
                if !candidates.is_empty() {
                    let anchor = candidates[rng.below(candidates.len())];
                    let field = if mode == 1 { "after_id" } else { "before_id" };
                    body[field] = json!(anchor);
                }
            }
            let resp = app
                .post(
                    &f.url(&format!("/tasks/{task}/move")),
                    f.token(),
                    body.clone(),
                )
                .await;
            MoveOutcome {
                job,
                task,
                body,
                resp,
            }
        }));
    }
    let mut outcomes = Vec::new();
    for h in handles {
        outcomes.push(h.await.unwrap());
    }

    // Every answer is a success or a refusal of a stale anchor.
    let mut ok = 0;
    let mut stale = 0;
    let mut anchored_ok = 0;
    // Per task: the (version, list) of each successful move.
    let mut done: HashMap<Uuid, Vec<(i64, Uuid)>> = HashMap::new();
    for o in &outcomes {
        let s = o.resp.status.as_u16();
        match s {
            200 => {
                ok += 1;
                if o.body.get("after_id").is_some() || o.body.get("before_id").is_some() {
                    anchored_ok += 1;
                }
                assert_eq!(uuid(&o.resp.json["id"]), o.task);
                assert_eq!(o.resp.json["list_id"], o.body["list_id"]);
                done.entry(o.task).or_default().push((
                    o.resp.json["version"].as_i64().unwrap(),
                    uuid(&o.resp.json["list_id"]),
                ));
            }
            422 => {
                let field = o.resp.json["errors"][0]["field"].as_str().unwrap_or("");
                assert!(
                    o.resp.json["code"] == "validation_failed"
                        && (field == "after_id" || field == "before_id")
                        && o.body.get(field).is_some(),
                    "job {}: 422 that is not a stale anchor: {} (body {})",
                    o.job,
                    o.resp.text,
                    o.body
                );
                stale += 1;
            }
            _ => panic!(
                "job {}: move answered {s} (body {}): {}",
                o.job, o.body, o.resp.text
            ),
        }
    }
    assert_eq!(ok + stale, MOVES);
    // About a third of the moves carry no anchor; of the others, most find
    // theirs still in place (typically 60–70 successes in all).
    assert!(
        ok >= MOVES * 2 / 5 && anchored_ok >= MOVES / 10,
        "only {ok} of {MOVES} moves succeeded, {anchored_ok} with an anchor ({stale} stale anchors)"
    );

    // Every task is in exactly one list; the count is conserved; positions
    // are unique within each list; the view's order is ORDER BY position.
    let view = board_view(&app, &f).await;
    assert_eq!(view.len(), LISTS);
    let mut seen: HashMap<Uuid, Uuid> = HashMap::new();
    for (list, in_list) in &view {
        assert_strictly_increasing(in_list);
        assert_eq!(
            ids(in_list),
            ids(&db_order(&app, &f, *list).await),
            "board view order differs from ORDER BY position in list {list}"
        );
        for (t, _) in in_list {
            assert!(seen.insert(*t, *list).is_none(), "task {t} is in two lists");
        }
    }
    assert_eq!(seen.len(), TASKS, "task count not conserved");
    let mut tx = app
        .state
        .db
        .read(Scope::tenant(f.owner.id, f.org))
        .await
        .unwrap();
    let stored: i64 = orgboard::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM tasks WHERE org_id = $1"
    )
    .bind(f.org)
    .fetch_one(c)
    .await)
    .unwrap();
    drop(tx);
    assert_eq!(stored, TASKS as i64, "rows in the tasks table");
    let all: HashSet<Uuid> = tasks.iter().copied().collect();
    assert_eq!(seen.keys().copied().collect::<HashSet<_>>(), all);

    // No lost update: each task's version counts its successful moves, and
    // the last of them (highest version) decided where it is.
    for t in tasks.iter() {
        let r = app
            .get(&f.url(&format!("/tasks/{t}")), f.token())
            .await
            .expect(200);
        let version = r.json["version"].as_i64().unwrap();
        let mut moves = done.remove(t).unwrap_or_default();
        moves.sort();
        let versions: Vec<i64> = moves.iter().map(|m| m.0).collect();
        assert_eq!(
            versions,
            (2..=version).collect::<Vec<_>>(),
            "task {t}: versions of its successful moves"
        );
        if let Some((_, list)) = moves.last() {
            assert_eq!(seen[t], *list, "task {t} is not where its last move put it");
        }
    }
    // One audit row per successful move, none for the refused ones.
    assert_eq!(
        app.audit_count(f.org).await - audit_before,
        ok as i64,
        "audit rows for {ok} moves"
    );
}

const APPENDS: usize = 20;

async fn concurrent_appends_to_one_list_get_distinct_positions(app: TestApp) {
    let f = fixture(&app, 2).await;
    let list = f.lists[0];
    let mut before = Vec::new();
    for i in 0..3 {
        before.push(uuid(
            &create_task(&app, &f, list, &format!("before {i}")).await["id"],
        ));
    }
    let app = Arc::new(app);
    let mut handles = Vec::new();
    for i in 0..APPENDS {
        let (app, f) = (app.clone(), f.clone());
        handles.push(tokio::spawn(async move {
            app.post(
                &f.url(&format!("/lists/{list}/tasks")),
                f.token(),
                json!({ "title": format!("append {i}") }),
            )
            .await
        }));
    }
    let mut created = Vec::new();
    for h in handles {
        let r = h.await.unwrap().expect(201);
        created.push((
            uuid(&r.json["id"]),
            r.json["position"].as_str().unwrap().to_owned(),
        ));
    }
    let positions: HashSet<&str> = created.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(
        positions.len(),
        APPENDS,
        "two appends got the same position"
    );

    let db = db_order(&app, &f, list).await;
    assert_eq!(db.len(), before.len() + APPENDS, "every append is stored");
    assert_strictly_increasing(&db);
    // The earlier tasks stay first; the appended ones follow in key order.
    assert_eq!(ids(&db[..before.len()]), before);
    let mut by_key = created.clone();
    by_key.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(db[before.len()..].to_vec(), by_key);
    let view = board_view(&app, &f).await;
    assert_eq!(view[0].1, db, "board view equals ORDER BY position");
}

// ---------------------------------------------------------------------------
// 3. Paging under concurrent inserts
// ---------------------------------------------------------------------------

const PAGED: usize = 120;
const PAGE: usize = 7;

async fn paging_under_concurrent_inserts_never_repeats_or_skips(app: TestApp) {
    let f = fixture(&app, 2).await;
    let mut existing: Vec<Uuid> = Vec::new();
    for i in 0..PAGED {
        existing.push(uuid(
            &create_task(&app, &f, f.lists[i % 2], &format!("paged {i}")).await["id"],
        ));
    }
    // A run of tasks sharing one updated_at: the cursor must break ties by id.
    {
        let tied = orgboard::db::now();
        let mut tx = app
            .state
            .db
            .write(Scope::tenant(f.owner.id, f.org))
            .await
            .unwrap();
        for id in existing.iter().step_by(3) {
            orgboard::on_tx!(&mut tx, |c| sqlx::query(
                "UPDATE tasks SET updated_at = $1 WHERE org_id = $2 AND id = $3"
            )
            .bind(tied)
            .bind(f.org)
            .bind(*id)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let app = Arc::new(app);

    for sort in ["", "&sort=-created_at", "&sort=updated_at"] {
        // The inserter: for each page fetched, inserts one task before the
        // next fetch starts and another one while it runs.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
        let inserter = {
            let (app, f) = (app.clone(), f.clone());
            tokio::spawn(async move {
                let mut made = Vec::new();
                let mut n = 0;
                while let Some(between) = rx.recv().await {
                    let mut between = Some(between);
                    for _ in 0..2 {
                        n += 1;
                        let t =
                            create_task(&app, &f, f.lists[n % 2], &format!("concurrent {n}")).await;
                        made.push(uuid(&t["id"]));
                        if let Some(b) = between.take() {
                            let _ = b.send(());
                        }
                    }
                }
                made
            })
        };
        let before: HashSet<Uuid> = existing.iter().copied().collect();

        let mut items: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages <= 200, "{sort}: paging does not end");
            let mut url = f.url(&format!("/tasks?limit={PAGE}{sort}"));
            if let Some(c) = &cursor {
                url += &format!("&cursor={c}");
            }
            let r = app.get(&url, f.token()).await.expect(200);
            let page = r.json["items"].as_array().unwrap();
            assert!(page.len() <= PAGE);
            items.extend(page.iter().cloned());
            cursor = r.json["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
            assert_eq!(page.len(), PAGE, "{sort}: a short page with a cursor");
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            tx.send(done_tx).await.unwrap();
            done_rx.await.unwrap();
        }
        drop(tx);
        let inserted = inserter.await.unwrap();
        assert!(!inserted.is_empty());

        let got: Vec<Uuid> = items.iter().map(|t| uuid(&t["id"])).collect();
        let distinct: HashSet<Uuid> = got.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            got.len(),
            "{sort}: a task repeats across pages"
        );
        let missing: Vec<&Uuid> = before.iter().filter(|t| !distinct.contains(t)).collect();
        assert!(
            missing.is_empty(),
            "{sort}: {} existing tasks were skipped",
            missing.len()
        );
        let known: HashSet<Uuid> = before.iter().chain(inserted.iter()).copied().collect();
        assert!(
            got.iter().all(|t| known.contains(t)),
            "{sort}: unknown task"
        );
        // The pages, put together, are in the promised order.
        let key = |t: &Value| -> (String, Uuid) {
            let k = match sort {
                "&sort=updated_at" => t["updated_at"].as_str().unwrap().to_owned(),
                _ => String::new(),
            };
            (k, uuid(&t["id"]))
        };
        for w in items.windows(2) {
            let (a, b) = (key(&w[0]), key(&w[1]));
            let in_order = match sort {
                "&sort=-created_at" => a > b,
                "&sort=updated_at" => {
                    let ta: chrono::DateTime<chrono::Utc> = a.0.parse().unwrap();
                    let tb: chrono::DateTime<chrono::Utc> = b.0.parse().unwrap();
                    (ta, a.1) < (tb, b.1)
                }
                _ => a < b,
            };
            assert!(in_order, "{sort}: out of order: {a:?} then {b:?}");
        }
        existing.extend(inserted);
    }
}

// ---------------------------------------------------------------------------
// 4. Bad input
// ---------------------------------------------------------------------------

/// A request body in the bad-input table.
#[derive(Clone)]
enum Payload {
    None,
    Json(Value),
    /// Raw bytes with this content type (`None`: no header).
    Raw(Option<&'static str>, Vec<u8>),
}

struct Case {
    method: Method,
    path: String,
    body: Payload,
}

/// Every route of the work domain with a placeholder for each id and a body
/// that would be accepted with valid ids.
fn routes(list: Uuid) -> Vec<(Method, &'static str, Option<Value>)> {
    let m = |s: &str| Method::from_bytes(s.as_bytes()).unwrap();
    vec![
        (m("GET"), "/api/v1/orgs/{org}/boards", None),
        (
            m("POST"),
            "/api/v1/orgs/{org}/boards",
            Some(json!({"name": "n"})),
        ),
        (m("GET"), "/api/v1/orgs/{org}/boards/{board}", None),
        (
            m("PATCH"),
            "/api/v1/orgs/{org}/boards/{board}",
            Some(json!({"name": "n"})),
        ),
        (m("DELETE"), "/api/v1/orgs/{org}/boards/{board}", None),
        (m("GET"), "/api/v1/orgs/{org}/boards/{board}/lists", None),
        (
            m("POST"),
            "/api/v1/orgs/{org}/boards/{board}/lists",
            Some(json!({"name": "n"})),
        ),
        (
            m("PATCH"),
            "/api/v1/orgs/{org}/lists/{list}",
            Some(json!({"name": "n"})),
        ),
        (m("DELETE"), "/api/v1/orgs/{org}/lists/{list}", None),
        (
            m("POST"),
            "/api/v1/orgs/{org}/lists/{list}/move",
            Some(json!({})),
        ),
        (
            m("POST"),
            "/api/v1/orgs/{org}/lists/{list}/tasks",
            Some(json!({"title": "t"})),
        ),
        (m("GET"), "/api/v1/orgs/{org}/tasks", None),
        (m("GET"), "/api/v1/orgs/{org}/tasks/{task}", None),
        (
            m("PATCH"),
            "/api/v1/orgs/{org}/tasks/{task}",
            Some(json!({"title": "t"})),
        ),
        (m("DELETE"), "/api/v1/orgs/{org}/tasks/{task}", None),
        (
            m("POST"),
            "/api/v1/orgs/{org}/tasks/{task}/move",
            Some(json!({"list_id": list})),
        ),
        (m("GET"), "/api/v1/orgs/{org}/tasks/{task}/comments", None),
        (
            m("POST"),
            "/api/v1/orgs/{org}/tasks/{task}/comments",
            Some(json!({"body": "b"})),
        ),
        (m("GET"), "/api/v1/orgs/{org}/labels", None),
        (
            m("POST"),
            "/api/v1/orgs/{org}/labels",
            Some(json!({"name": "n"})),
        ),
        (
            m("PATCH"),
            "/api/v1/orgs/{org}/labels/{label}",
            Some(json!({"name": "n"})),
        ),
        (m("DELETE"), "/api/v1/orgs/{org}/labels/{label}", None),
        (
            m("PATCH"),
            "/api/v1/orgs/{org}/comments/{comment}",
            Some(json!({"body": "b"})),
        ),
        (m("DELETE"), "/api/v1/orgs/{org}/comments/{comment}", None),
    ]
}

const PLACEHOLDERS: [&str; 6] = ["org", "board", "list", "task", "label", "comment"];

fn fill(template: &str, ids: &HashMap<&str, String>) -> String {
    let mut p = template.to_owned();
    for (k, v) in ids {
        p = p.replace(&format!("{{{k}}}"), v);
    }
    p
}

/// `[[[…]]]` nested `depth` times.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut v = "[".repeat(depth).into_bytes();
    v.extend("]".repeat(depth).into_bytes());
    v
}

/// `{"a":{"a":…{}…}}` nested `depth` times, as the value of `field`.
fn nested_objects(field: &str, depth: usize) -> Vec<u8> {
    let mut s = format!("{{\"{field}\":");
    s += &"{\"a\":".repeat(depth);
    s += "{}";
    s += &"}".repeat(depth + 1);
    s.into_bytes()
}

fn bad_cases(valid: &HashMap<&str, String>, list: Uuid, task: Uuid) -> Vec<Case> {
    let mut cases = Vec::new();
    let long = |n: usize| "x".repeat(n);
    let many_uuids: Vec<String> = (0..10_000).map(|_| Uuid::now_v7().to_string()).collect();
    let many_junk: Vec<&str> = vec!["x"; 10_000];

    // Malformed (and unknown) ids in every path position of every route.
    let bad_ids = [
        "x".to_owned(),
        "1".to_owned(),
        long(300),
        "00000000-0000-0000-0000-00000000000g".to_owned(),
        "null".to_owned(),
        "%00".to_owned(),
        "%E2%80%AE".to_owned(),
        Uuid::now_v7().to_string(),
    ];
    for (method, template, body) in routes(list) {
        for ph in PLACEHOLDERS {
            if !template.contains(&format!("{{{ph}}}")) {
                continue;
            }
            for bad in &bad_ids {
                let mut ids = valid.clone();
                ids.insert(ph, bad.clone());
                cases.push(Case {
                    method: method.clone(),
                    path: fill(template, &ids),
                    body: body.clone().map_or(Payload::None, Payload::Json),
                });
            }
        }
    }

    // Bodies that must be refused, per route.
    let json_cases: Vec<(&str, &str, Value)> = vec![
        // Boards.
        ("POST", "/boards", json!({"name": long(10_000)})),
        (
            "POST",
            "/boards",
            json!({"name": "ok", "description": long(100_001)}),
        ),
        ("POST", "/boards", json!({"name": 5})),
        ("POST", "/boards", json!({"name": null})),
        ("POST", "/boards", json!({"name": ["a"]})),
        ("POST", "/boards", json!({"name": {"a": 1}})),
        ("POST", "/boards", json!({"name": ""})),
        ("POST", "/boards", json!({"name": "ok", "description": 7})),
        ("POST", "/boards", json!({})),
        ("POST", "/boards", json!([])),
        ("POST", "/boards", json!("board")),
        ("POST", "/boards", json!(42)),
        ("POST", "/boards", Value::Null),
        ("PATCH", "/boards/{board}", json!({"name": long(10_000)})),
        (
            "PATCH",
            "/boards/{board}",
            json!({"description": long(100_001)}),
        ),
        ("PATCH", "/boards/{board}", json!({"name": 5})),
        ("PATCH", "/boards/{board}", json!({"archived": "yes"})),
        ("PATCH", "/boards/{board}", json!({"archived": 1})),
        ("PATCH", "/boards/{board}", json!({"name": "   "})),
        ("PATCH", "/boards/{board}", json!([{"name": "n"}])),
        (
            "POST",
            "/boards",
            json!({"name": "ok", "description": "nul \u{0} inside"}),
        ),
        (
            "PATCH",
            "/boards/{board}",
            json!({"description": "nul \u{0} inside"}),
        ),
        // Lists.
        (
            "POST",
            "/boards/{board}/lists",
            json!({"name": long(10_000)}),
        ),
        ("POST", "/boards/{board}/lists", json!({"name": 5})),
        ("POST", "/boards/{board}/lists", json!({"name": null})),
        ("POST", "/boards/{board}/lists", json!({})),
        ("POST", "/boards/{board}/lists", json!({"name": ""})),
        ("PATCH", "/lists/{list}", json!({"name": long(10_000)})),
        ("PATCH", "/lists/{list}", json!({"name": null})),
        ("PATCH", "/lists/{list}", json!({"name": {}})),
        ("POST", "/lists/{list}/move", json!({"after_id": "x"})),
        ("POST", "/lists/{list}/move", json!({"after_id": 5})),
        ("POST", "/lists/{list}/move", json!({"before_id": {}})),
        (
            "POST",
            "/lists/{list}/move",
            json!({"after_id": Uuid::now_v7()}),
        ),
        ("POST", "/lists/{list}/move", json!({"before_id": list})),
        ("POST", "/lists/{list}/move", json!({"after_id": task})),
        // Tasks: create.
        ("POST", "/lists/{list}/tasks", json!({"title": long(501)})),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "description": long(100_001)}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "status": "nope"}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "status": "TODO"}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "status": 1}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "priority": "critical"}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "priority": 3}),
        ),
        ("POST", "/lists/{list}/tasks", json!({"title": 123})),
        ("POST", "/lists/{list}/tasks", json!({"title": null})),
        ("POST", "/lists/{list}/tasks", json!({"title": true})),
        ("POST", "/lists/{list}/tasks", json!({})),
        ("POST", "/lists/{list}/tasks", json!({"title": "   "})),
        ("POST", "/lists/{list}/tasks", json!({"title": "a\u{0}b"})),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "assignee_ids": {}}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "assignee_ids": "x"}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "label_ids": {"a": 1}}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "label_ids": [null]}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "assignee_ids": many_uuids}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "label_ids": many_uuids}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "assignee_ids": many_junk}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "assignee_ids": [Uuid::now_v7()]}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "label_ids": [Uuid::now_v7()]}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "due_date": "yesterday"}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "due_date": 12}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "due_date": "2024-13-45T00:00:00Z"}),
        ),
        (
            "POST",
            "/lists/{list}/tasks",
            json!({"title": "t", "description": "nul \u{0} inside"}),
        ),
        // Tasks: update.
        (
            "PATCH",
            "/tasks/{task}",
            json!({"description": "nul \u{0} inside"}),
        ),
        ("PATCH", "/tasks/{task}", json!({"title": long(501)})),
        (
            "PATCH",
            "/tasks/{task}",
            json!({"description": long(100_001)}),
        ),
        ("PATCH", "/tasks/{task}", json!({"status": "nope"})),
        ("PATCH", "/tasks/{task}", json!({"priority": "critical"})),
        ("PATCH", "/tasks/{task}", json!({"title": 123})),
        ("PATCH", "/tasks/{task}", json!({"title": ""})),
        ("PATCH", "/tasks/{task}", json!({"assignee_ids": {}})),
        (
            "PATCH",
            "/tasks/{task}",
            json!({"assignee_ids": many_uuids}),
        ),
        ("PATCH", "/tasks/{task}", json!({"label_ids": many_uuids})),
        ("PATCH", "/tasks/{task}", json!({"label_ids": many_junk})),
        ("PATCH", "/tasks/{task}", json!({"due_date": "yesterday"})),
        ("PATCH", "/tasks/{task}", json!({"due_date": {}})),
        ("PATCH", "/tasks/{task}", json!("title")),
        // Tasks: move.
        ("POST", "/tasks/{task}/move", json!({})),
        ("POST", "/tasks/{task}/move", json!({"list_id": null})),
        ("POST", "/tasks/{task}/move", json!({"list_id": "x"})),
        ("POST", "/tasks/{task}/move", json!({"list_id": 5})),
        ("POST", "/tasks/{task}/move", json!({"list_id": [list]})),
        (
            "POST",
            "/tasks/{task}/move",
            json!({"list_id": Uuid::now_v7()}),
        ),
        (
            "POST",
            "/tasks/{task}/move",
            json!({"list_id": list, "after_id": "x"}),
        ),
        (
            "POST",
            "/tasks/{task}/move",
            json!({"list_id": list, "after_id": task}),
        ),
        (
            "POST",
            "/tasks/{task}/move",
            json!({"list_id": list, "before_id": task}),
        ),
        (
            "POST",
            "/tasks/{task}/move",
            json!({"list_id": list, "before_id": Uuid::now_v7()}),
        ),
        (
            "POST",
            "/tasks/{task}/move",
            json!({"list_id": list, "after_id": true}),
        ),
        // Comments.
        (
            "POST",
            "/tasks/{task}/comments",
            json!({"body": long(100_001)}),
        ),
        (
            "POST",
            "/tasks/{task}/comments",
            json!({"body": long(10_001)}),
        ),
        ("POST", "/tasks/{task}/comments", json!({"body": 1})),
        ("POST", "/tasks/{task}/comments", json!({"body": null})),
        ("POST", "/tasks/{task}/comments", json!({"body": ""})),
        ("POST", "/tasks/{task}/comments", json!({})),
        (
            "PATCH",
            "/comments/{comment}",
            json!({"body": long(100_001)}),
        ),
        ("PATCH", "/comments/{comment}", json!({"body": null})),
        ("PATCH", "/comments/{comment}", json!({"body": ["b"]})),
        // Labels.
        ("POST", "/labels", json!({"name": long(10_000)})),
        ("POST", "/labels", json!({"name": long(51)})),
        ("POST", "/labels", json!({"name": "l", "color": "red"})),
        (
            "POST",
            "/labels",
            json!({"name": "l", "color": long(10_000)}),
        ),
        ("POST", "/labels", json!({"name": "l", "color": 5})),
        ("POST", "/labels", json!({"name": 5})),
        ("POST", "/labels", json!({"name": null})),
        ("POST", "/labels", json!({})),
        ("PATCH", "/labels/{label}", json!({"name": long(10_000)})),
        ("PATCH", "/labels/{label}", json!({"color": "#12345"})),
        ("PATCH", "/labels/{label}", json!({"name": []})),
        (
            "POST",
            "/labels",
            json!({"name": "l", "color": "#12\u{0}456"}),
        ),
        (
            "PATCH",
            "/comments/{comment}",
            json!({"body": "nul \u{0} inside"}),
        ),
    ];
    for (method, rest, body) in json_cases {
        cases.push(Case {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: fill(&format!("/api/v1/orgs/{{org}}{rest}"), valid),
            body: Payload::Json(body),
        });
    }

    // Bodies that are not JSON, too deep, too big or of the wrong type, on
    // every route that takes a body.
    for (method, template, body) in routes(list) {
        if body.is_none() {
            continue;
        }
        let path = fill(template, valid);
        // The field this route reads (any other one would just be ignored;
        // the move of a list reads only optional anchors).
        let field = body
            .as_ref()
            .and_then(|b| b.as_object().unwrap().keys().next().cloned())
            .unwrap_or_else(|| "after_id".to_owned());
        let valid_body = serde_json::to_vec(&body).unwrap();
        let mut trailing = valid_body.clone();
        trailing.extend(b" trailing");
        let mut bad_utf8 = format!("{{\"{field}\": \"").into_bytes();
        bad_utf8.extend(b"\xff\xfe\"}");
        let raws: Vec<Payload> = vec![
            Payload::Raw(Some("application/json"), nested_arrays(100_000)),
            Payload::Raw(Some("application/json"), nested_objects(&field, 10_000)),
            Payload::Raw(Some("application/json"), b"{".to_vec()),
            Payload::Raw(Some("application/json"), trailing),
            Payload::Raw(Some("application/json"), Vec::new()),
            Payload::Raw(Some("application/json"), bad_utf8),
            Payload::Raw(Some("application/json"), vec![b' '; 2 * 1024 * 1024]),
            Payload::Raw(Some("text/plain"), valid_body.clone()),
            Payload::Raw(None, valid_body),
            Payload::Json(json!(null)),
            Payload::Json(json!({ field.clone(): "nul \u{0} inside" })),
        ];
        for body in raws {
            cases.push(Case {
                method: method.clone(),
                path: path.clone(),
                body,
            });
        }
    }

    // Query-string garbage on every listing.
    let tasks = "/api/v1/orgs/{org}/tasks";
    let queries: Vec<(&str, String)> = vec![
        (tasks, "limit=-1".into()),
        (tasks, "limit=abc".into()),
        (tasks, "limit=0".into()),
        (tasks, "limit=201".into()),
        (tasks, "limit=99999999999999999999".into()),
        (tasks, "limit=1.5".into()),
        (tasks, "cursor=garbage".into()),
        (tasks, "cursor=".into()),
        (tasks, format!("cursor={}", long(5_000))),
        (tasks, "cursor=eyJzIjoidGFza3MiLCJwIjp7fX0".into()),
        (tasks, "status=nope".into()),
        (tasks, "status=todo,nope".into()),
        (tasks, "status=".into()),
        (tasks, format!("status={}", ["todo"; 11].join(","))),
        (tasks, "priority=critical".into()),
        (tasks, "due_before=yesterday".into()),
        (tasks, "due_after=2024-13-45".into()),
        (tasks, "sort=;drop".into()),
        (tasks, "sort=%3Bdrop%20table%20tasks".into()),
        (tasks, "sort=title".into()),
        (tasks, "sort=--created_at".into()),
        (tasks, "board_id=x".into()),
        (tasks, "list_id=1".into()),
        (tasks, format!("assignee_id={}", long(300))),
        (
            tasks,
            "label_id=00000000-0000-0000-0000-00000000000g".into(),
        ),
        (tasks, format!("board_id={}", Uuid::now_v7())),
        (tasks, format!("list_id={}", Uuid::now_v7())),
        (tasks, format!("assignee_id={}", Uuid::now_v7())),
        (tasks, format!("label_id={}", Uuid::now_v7())),
        (tasks, format!("q={}", long(10_000))),
        (tasks, "limit=1&limit=2".into()),
        (tasks, "limit=%ZZ".into()),
        (tasks, "q=%00".into()),
        (tasks, "q=a%00b".into()),
        (tasks, "cursor=%00".into()),
        (tasks, "sort=%00".into()),
        (tasks, "status=%00".into()),
        ("/api/v1/orgs/{org}/boards", "archived=maybe".into()),
        ("/api/v1/orgs/{org}/boards", "limit=abc".into()),
        ("/api/v1/orgs/{org}/boards", "limit=-1".into()),
        ("/api/v1/orgs/{org}/boards", "cursor=garbage".into()),
        (
            "/api/v1/orgs/{org}/boards/{board}/lists",
            "cursor=garbage".into(),
        ),
        ("/api/v1/orgs/{org}/boards/{board}/lists", "limit=0".into()),
        ("/api/v1/orgs/{org}/labels", "cursor=garbage".into()),
        ("/api/v1/orgs/{org}/labels", "limit=abc".into()),
        (
            "/api/v1/orgs/{org}/tasks/{task}/comments",
            "cursor=garbage".into(),
        ),
        (
            "/api/v1/orgs/{org}/tasks/{task}/comments",
            "limit=-1".into(),
        ),
    ];
    for (template, query) in queries {
        cases.push(Case {
            method: Method::GET,
            path: format!("{}?{query}", fill(template, valid)),
            body: Payload::None,
        });
    }
    cases
}

/// Everything the bad requests could have changed.
async fn snapshot(app: &TestApp, f: &Fixture, task: Uuid) -> (i64, Vec<String>) {
    let mut pages = Vec::new();
    for path in [
        format!("/boards/{}", f.board),
        "/boards?limit=200".to_owned(),
        "/boards?archived=true&limit=200".to_owned(),
        "/labels?limit=200".to_owned(),
        "/tasks?limit=200".to_owned(),
        format!("/tasks/{task}/comments?limit=200"),
    ] {
        pages.push(app.get(&f.url(&path), f.token()).await.expect(200).text);
    }
    (app.audit_count(f.org).await, pages)
}

async fn bad_input_never_answers_5xx_and_changes_nothing(app: TestApp) {
    let f = fixture(&app, 2).await;
    let list = f.lists[0];
    let task = uuid(&create_task(&app, &f, list, "T").await["id"]);
    create_task(&app, &f, f.lists[1], "U").await;
    let label = id_of(
        &app.post(&f.url("/labels"), f.token(), json!({"name": "bug"}))
            .await
            .expect(201),
    );
    let comment = id_of(
        &app.post(
            &f.url(&format!("/tasks/{task}/comments")),
            f.token(),
            json!({"body": "hello"}),
        )
        .await
        .expect(201),
    );
    let valid: HashMap<&str, String> = HashMap::from([
        ("org", f.org.to_string()),
        ("board", f.board.to_string()),
        ("list", list.to_string()),
        ("task", task.to_string()),
        ("label", label.to_string()),
        ("comment", comment.to_string()),
    ]);

    let before = snapshot(&app, &f, task).await;
    let cases = bad_cases(&valid, list, task);
    let mut failures = Vec::new();
    for case in &cases {
        let mut req = Request::builder()
            .method(case.method.clone())
            .uri(&case.path)
            .header("authorization", format!("Bearer {}", f.token()));
        let body = match &case.body {
            Payload::None => Body::empty(),
            Payload::Json(v) => {
                req = req.header("content-type", "application/json");
                Body::from(serde_json::to_vec(v).unwrap())
            }
            Payload::Raw(ct, bytes) => {
                if let Some(ct) = ct {
                    req = req.header("content-type", *ct);
                }
                Body::from(bytes.clone())
            }
        };
        let r = app.send(req.body(body).unwrap()).await;
        let s = r.status.as_u16();
        let problem = r.content_type() == "application/problem+json"
            && r.json["status"] == s
            && r.json["code"].is_string();
        if !(400..500).contains(&s) || !problem {
            let shown: String = match &case.body {
                Payload::None => String::new(),
                Payload::Json(v) => v.to_string().chars().take(120).collect(),
                Payload::Raw(ct, b) => format!(
                    "[{ct:?}] {}",
                    String::from_utf8_lossy(&b[..b.len().min(60)])
                ),
            };
            failures.push(format!(
                "{} {} {shown} -> {s} {} {}",
                case.method,
                case.path.chars().take(160).collect::<String>(),
                r.content_type(),
                r.text.chars().take(200).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad requests were not a 4xx problem+json:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let after = snapshot(&app, &f, task).await;
    assert_eq!(before.0, after.0, "bad requests wrote audit rows");
    assert!(before.1 == after.1, "bad requests changed data");
}
