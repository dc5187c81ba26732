//! The paged board view (SPEC §5): each list carries at most `per_list`
//! card summaries (every field but the description) and a `next_cursor`
//! that `GET …/tasks?list_id=…&sort=position` pages on, in board order;
//! `ETag` / `If-None-Match` → `304` (no view read); compressed answers for
//! clients that accept them; bad `per_list`, cursors and `If-None-Match`
//! answered as documented. On SQLite and PostgreSQL.

use std::collections::{HashMap, HashSet};

use crate::common::{Resp, TestApp, TestUser};
use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    per_list_bounds_each_list_and_cursors_reach_every_card_once,
    paging_while_cards_move_never_repeats_or_loses_an_unmoved_card,
    bad_per_list_and_cursors_are_refused,
    etag_answers_304_until_a_write,
    task_pages_answer_304_until_any_change_of_the_org,
    large_answers_are_compressed,
    patched_views_equal_views_read_again,
    collections_answer_304_until_any_change_of_the_org,
    cards_read_out_of_order_are_read_again_sorted,
);

fn url(org: Uuid, rest: &str) -> String {
    format!("/api/v1/orgs/{org}{rest}")
}

fn id_of(v: &Value) -> Uuid {
    v["id"].as_str().unwrap().parse().unwrap()
}

struct Board {
    owner: TestUser,
    org: Uuid,
    board: Uuid,
    /// Lists in order, each with its task ids in order.
    lists: Vec<(Uuid, Vec<Uuid>)>,
}

/// A board whose lists hold `sizes[i]` tasks each (with a description, a
/// label and an assignee on the first task).
async fn board(app: &TestApp, sizes: &[usize]) -> Board {
    let owner = app.signup("owner").await;
    let org = app.create_org(&owner, "Acme").await;
    let board = id_of(
        &app.post(&url(org, "/boards"), &owner.token, json!({"name": "B"}))
            .await
            .expect(201)
            .json,
    );
    let label = id_of(
        &app.post(&url(org, "/labels"), &owner.token, json!({"name": "L"}))
            .await
            .expect(201)
            .json,
    );
    let mut lists = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let list = id_of(
            &app.post(
                &url(org, &format!("/boards/{board}/lists")),
                &owner.token,
                json!({"name": format!("L{i}")}),
            )
            .await
            .expect(201)
            .json,
        );
        let mut ids = Vec::new();
        for j in 0..*n {
            let body = if j == 0 {
                json!({"title": format!("{i}-{j}"), "description": "long text", "label_ids": [label],
                       "assignee_ids": [owner.id]})
            } else {
                json!({"title": format!("{i}-{j}")})
            };
            ids.push(id_of(
                &app.post(
                    &url(org, &format!("/lists/{list}/tasks")),
                    &owner.token,
                    body,
                )
                .await
                .expect(201)
                .json,
            ));
        }
        lists.push((list, ids));
    }
    Board {
        owner,
        org,
        board,
        lists,
    }
}

/// The organization's slug.
/// The view of `b` with `per_list` `n` read from the database as
/// `Cache-Control: no-cache` reads it, without storing it; PostgreSQL's
/// cards first asked for in `order`.
async fn read_view(
    app: &TestApp,
    b: &Board,
    n: u32,
    order: orgboard::boards::view::CardOrder,
) -> Value {
    let state = app.state.clone();
    let (org, board, user) = (b.org, b.board, b.owner.id);
    let scope = orgboard::db::Scope::tenant(user, org);
    let cursor = {
        let state = state.clone();
        move |list, id, position: &str| {
            orgboard::tasks::filter::position_cursor(&state, org, list, id, position)
        }
    };
    let out: Result<_, orgboard::domain::DomainError> = async {
        orgboard::read_unit!(state.db, scope, |u| {
            orgboard::boards::view::board_view_parts_in(u, org, board, n, cursor, order)
        })
    }
    .await;
    let (body, _) = out.expect("read").expect("the board");
    serde_json::from_slice::<Value>(&body).unwrap()
}

async fn slug_of(app: &TestApp, b: &Board) -> String {
    app.slug(b.org, &b.owner).await
}

/// Moves `task` as `body` says (`200` expected).
async fn move_task(app: &TestApp, b: &Board, task: Uuid, body: Value) {
    app.post(
        &url(b.org, &format!("/tasks/{task}/move")),
        &b.owner.token,
        body,
    )
    .await
    .expect(200);
}

fn ids(items: &Value) -> Vec<Uuid> {
    items.as_array().unwrap().iter().map(id_of).collect()
}

async fn get_with(app: &TestApp, path: &str, token: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.send(req.body(Body::empty()).unwrap()).await
}

/// Follows a list's cursor through `GET …/tasks` to the end.
async fn rest_of(app: &TestApp, b: &Board, list: Uuid, mut cursor: Option<String>) -> Vec<Uuid> {
    let mut seen = Vec::new();
    while let Some(c) = cursor {
        let page = app
            .get(
                &url(
                    b.org,
                    &format!("/tasks?list_id={list}&sort=position&limit=4&cursor={c}"),
                ),
                &b.owner.token,
            )
            .await
            .expect(200)
            .json;
        seen.extend(ids(&page["items"]));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    seen
}

async fn per_list_bounds_each_list_and_cursors_reach_every_card_once(app: TestApp) {
    let b = board(&app, &[7, 0, 3, 12]).await;
    let view = app
        .get(
            &url(b.org, &format!("/boards/{}?per_list=3", b.board)),
            &b.owner.token,
        )
        .await
        .expect(200)
        .json;
    let lists = view["lists"].as_array().unwrap();
    assert_eq!(lists.len(), 4);
    // The view (written as its rows arrive) is the board as the boards
    // collection shows it plus `lists`, each the list as the lists
    // collection shows it plus `tasks` and `next_cursor`.
    let boards = app
        .get(&url(b.org, "/boards"), &b.owner.token)
        .await
        .expect(200)
        .json;
    let mut head = view.as_object().unwrap().clone();
    assert!(head.remove("lists").is_some());
    assert_eq!(Value::Object(head), boards["items"][0]);
    let plain = app
        .get(
            &url(b.org, &format!("/boards/{}/lists", b.board)),
            &b.owner.token,
        )
        .await
        .expect(200)
        .json;
    for (l, p) in lists.iter().zip(plain["items"].as_array().unwrap()) {
        let mut l = l.as_object().unwrap().clone();
        assert!(l.remove("tasks").is_some() && l.remove("next_cursor").is_some());
        assert_eq!(&Value::Object(l), p);
    }
    for (l, (list, expected)) in lists.iter().zip(&b.lists) {
        assert_eq!(id_of(l), *list);
        let first = ids(&l["tasks"]);
        assert_eq!(first.len(), expected.len().min(3), "{l}");
        // A cursor exactly when the list has more.
        assert_eq!(l["next_cursor"].is_string(), expected.len() > 3, "{l}");
        for t in l["tasks"].as_array().unwrap() {
            assert!(t.get("description").is_none(), "a summary: {t}");
            assert!(t["position"].is_string() && t["version"].is_i64() && t["comment_count"] == 0);
        }
        let mut all = first;
        all.extend(
            rest_of(
                &app,
                &b,
                *list,
                l["next_cursor"].as_str().map(str::to_owned),
            )
            .await,
        );
        assert_eq!(&all, expected, "every card once, in board order");
    }
    // `-position`: the same list from its end.
    let (list, expected) = &b.lists[3];
    let back = app
        .get(
            &url(
                b.org,
                &format!("/tasks?list_id={list}&sort=-position&limit=200"),
            ),
            &b.owner.token,
        )
        .await
        .expect(200)
        .json;
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(ids(&back["items"]), reversed);
    // The summary equals the task minus its description.
    let first = &lists[0]["tasks"][0];
    let mut full = app
        .get(
            &url(b.org, &format!("/tasks/{}", id_of(first))),
            &b.owner.token,
        )
        .await
        .expect(200)
        .json;
    assert_eq!(full["description"], "long text");
    full.as_object_mut().unwrap().remove("description");
    assert_eq!(&full, first);
    // Default: 200 per list; a list of 12 then has no cursor.
    let view = app
        .get(&url(b.org, &format!("/boards/{}", b.board)), &b.owner.token)
        .await
        .expect(200)
        .json;
    assert_eq!(ids(&view["lists"][3]["tasks"]), b.lists[3].1);
    assert_eq!(view["lists"][3]["next_cursor"], Value::Null);
    // per_list = 1000 is allowed; 1 leaves one card per list.
    for n in ["1", "1000"] {
        app.get(
            &url(b.org, &format!("/boards/{}?per_list={n}", b.board)),
            &b.owner.token,
        )
        .await
        .expect(200);
    }
}

/// Keyset paging by position: while cards move (within and across lists),
/// every card that did not move is seen exactly once, nothing from another
/// list appears, and a moved card appears at most twice (before and after
/// its move), never as a stranger.
async fn paging_while_cards_move_never_repeats_or_loses_an_unmoved_card(app: TestApp) {
    let b = board(&app, &[30, 5]).await;
    let (list, cards) = &b.lists[0];
    let view = app
        .get(
            &url(b.org, &format!("/boards/{}?per_list=5", b.board)),
            &b.owner.token,
        )
        .await
        .expect(200)
        .json;
    let mut seen = ids(&view["lists"][0]["tasks"]);
    let mut cursor = view["lists"][0]["next_cursor"].as_str().map(str::to_owned);
    let mut moved = HashSet::new();
    let mut round = 0;
    while let Some(c) = cursor {
        // Between pages: one card to the top of the list, one to the other
        // list, one from far back to just behind the cursor.
        let pick = cards[(round * 7 + 3) % cards.len()];
        let to_top = json!({"list_id": list, "before_id": cards[0]});
        let away = json!({"list_id": b.lists[1].0});
        let body = if round % 2 == 0 { to_top } else { away };
        if !moved.contains(&pick) {
            move_task(&app, &b, pick, body).await;
            moved.insert(pick);
        }
        round += 1;
        let page = app
            .get(
                &url(
                    b.org,
                    &format!("/tasks?list_id={list}&sort=position&limit=5&cursor={c}"),
                ),
                &b.owner.token,
            )
            .await
            .expect(200)
            .json;
        for t in page["items"].as_array().unwrap() {
            assert_eq!(t["list_id"], list.to_string(), "only this list's cards");
        }
        seen.extend(ids(&page["items"]));
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    for id in &seen {
        *counts.entry(*id).or_default() += 1;
    }
    for id in cards {
        let n = counts.get(id).copied().unwrap_or(0);
        if moved.contains(id) {
            assert!(n <= 2, "a moved card at most twice ({n})");
        } else {
            assert_eq!(n, 1, "an unmoved card exactly once");
        }
    }
    assert!(seen.iter().all(|id| cards.contains(id)));
}

async fn bad_per_list_and_cursors_are_refused(app: TestApp) {
    let b = board(&app, &[4, 4]).await;
    let view_path = url(b.org, &format!("/boards/{}", b.board));
    for bad in ["0", "-1", "1001", "4294967296", "abc", "", "2.5", "%00"] {
        let r = app
            .get(&format!("{view_path}?per_list={bad}"), &b.owner.token)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(
            r.json["errors"][0]["field"], "per_list",
            "{bad}: {}",
            r.json
        );
    }
    let view = app
        .get(&format!("{view_path}?per_list=2"), &b.owner.token)
        .await
        .expect(200)
        .json;
    let cursor = view["lists"][0]["next_cursor"].as_str().unwrap().to_owned();
    let (a, other) = (b.lists[0].0, b.lists[1].0);
    // Its own list and sort: fine.
    app.get(
        &url(
            b.org,
            &format!("/tasks?list_id={a}&sort=position&cursor={cursor}"),
        ),
        &b.owner.token,
    )
    .await
    .expect(200);
    // Another list, another sort, no list, another organization: refused.
    for q in [
        format!("list_id={other}&sort=position&cursor={cursor}"),
        format!("list_id={a}&sort=-position&cursor={cursor}"),
        format!("list_id={a}&sort=created_at&cursor={cursor}"),
        format!("list_id={a}&cursor={cursor}"),
        format!("board_id={}&cursor={cursor}", b.board),
    ] {
        app.get(&url(b.org, &format!("/tasks?{q}")), &b.owner.token)
            .await
            .expect_problem(400, "invalid_cursor");
    }
    app.get(&url(b.org, "/tasks?sort=position"), &b.owner.token)
        .await
        .expect_problem(422, "validation_failed");
    let stranger = app.signup("stranger").await;
    let theirs = app.create_org(&stranger, "Theirs").await;
    let their_list = app.new_list(&stranger, theirs).await;
    let their_list = their_list.split('/').nth(6).unwrap().to_owned();
    app.get(
        &url(
            theirs,
            &format!("/tasks?list_id={their_list}&sort=position&cursor={cursor}"),
        ),
        &stranger.token,
    )
    .await
    .expect_problem(400, "invalid_cursor");
    // A stranger never gets this board, whatever the query.
    app.get(&format!("{view_path}?per_list=0"), &stranger.token)
        .await
        .expect_problem(404, "not_found");
}

async fn etag_answers_304_until_a_write(app: TestApp) {
    let b = board(&app, &[3]).await;
    let path = url(b.org, &format!("/boards/{}", b.board));
    let first = get_with(&app, &path, &b.owner.token, &[]).await.expect(200);
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let same = get_with(&app, &path, &b.owner.token, &[("if-none-match", &etag)])
        .await
        .expect(304);
    assert!(same.text.is_empty());
    assert_eq!(same.headers["etag"].to_str().unwrap(), etag);
    // Weak comparison and lists of tags.
    let weak = format!("\"x\", W/{etag}");
    get_with(&app, &path, &b.owner.token, &[("if-none-match", &weak)])
        .await
        .expect(304);
    // Garbage is no match.
    for junk in ["garbage", "\"\"", "W/", ",,,", &"x".repeat(4000)] {
        get_with(&app, &path, &b.owner.token, &[("if-none-match", junk)])
            .await
            .expect(200);
    }
    // Another per_list is another representation.
    get_with(
        &app,
        &format!("{path}?per_list=2"),
        &b.owner.token,
        &[("if-none-match", &etag)],
    )
    .await
    .expect(200);
    // `no-cache` reads the database: never 304.
    get_with(
        &app,
        &path,
        &b.owner.token,
        &[("if-none-match", &etag), ("cache-control", "no-cache")],
    )
    .await
    .expect(200);
    // A stranger with the tag gets 404, not 304.
    let stranger = app.signup("stranger").await;
    get_with(&app, &path, &stranger.token, &[("if-none-match", &etag)])
        .await
        .expect_problem(404, "not_found");
    // Any acknowledged write of the organization: a new tag and the change.
    app.post(
        &url(b.org, &format!("/lists/{}/tasks", b.lists[0].0)),
        &b.owner.token,
        json!({"title": "new"}),
    )
    .await
    .expect(201);
    let after = get_with(&app, &path, &b.owner.token, &[("if-none-match", &etag)])
        .await
        .expect(200);
    assert_ne!(after.headers["etag"].to_str().unwrap(), etag);
    assert_eq!(after.json["lists"][0]["tasks"].as_array().unwrap().len(), 4);
}

/// `GET …/tasks` carries an `ETag` of the organization's changes counter
/// and the query: `304` until any change of the organization (on any board)
/// is acknowledged; another query is another tag; strangers get `404`; by
/// slug there is no tag.
async fn task_pages_answer_304_until_any_change_of_the_org(app: TestApp) {
    let b = board(&app, &[3]).await;
    let path = url(
        b.org,
        &format!("/tasks?list_id={}&sort=position&limit=2", b.lists[0].0),
    );
    let first = get_with(&app, &path, &b.owner.token, &[]).await.expect(200);
    let etag = first.headers["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(first.json["items"].as_array().unwrap().len(), 2);
    let same = get_with(&app, &path, &b.owner.token, &[("if-none-match", &etag)])
        .await
        .expect(304);
    assert!(same.text.is_empty());
    assert_eq!(same.headers["etag"].to_str().unwrap(), etag);
    // The next page (its cursor in the query) is another representation.
    let cursor = first.json["next_cursor"].as_str().unwrap();
    let next = get_with(
        &app,
        &format!("{path}&cursor={cursor}"),
        &b.owner.token,
        &[("if-none-match", &etag)],
    )
    .await
    .expect(200);
    assert_eq!(next.json["items"].as_array().unwrap().len(), 1);
    assert_ne!(next.headers["etag"].to_str().unwrap(), etag);
    for junk in ["garbage", "\"\"", "W/", &"x".repeat(4000)] {
        get_with(&app, &path, &b.owner.token, &[("if-none-match", junk)])
            .await
            .expect(200);
    }
    // A stranger with the tag gets 404, not 304.
    let stranger = app.signup("stranger").await;
    get_with(&app, &path, &stranger.token, &[("if-none-match", &etag)])
        .await
        .expect_problem(404, "not_found");
    // By slug: the same page, no tag, never 304.
    let slug = slug_of(&app, &b).await;
    let by_slug = path.replace(&b.org.to_string(), &slug);
    let plain = get_with(&app, &by_slug, &b.owner.token, &[("if-none-match", &etag)])
        .await
        .expect(200);
    assert!(!plain.headers.contains_key("etag"));
    assert_eq!(plain.json["items"], first.json["items"]);
    // A change on another board of the organization: a new tag.
    app.post(
        &url(b.org, "/boards"),
        &b.owner.token,
        json!({"name": "elsewhere"}),
    )
    .await
    .expect(201);
    let after = get_with(&app, &path, &b.owner.token, &[("if-none-match", &etag)])
        .await
        .expect(200);
    let tag2 = after.headers["etag"].to_str().unwrap().to_owned();
    assert_ne!(tag2, etag);
    // A change of a task of the page: a new tag and the change.
    let task = b.lists[0].1[0];
    app.patch(
        &url(b.org, &format!("/tasks/{task}")),
        &b.owner.token,
        json!({"title": "renamed"}),
    )
    .await
    .expect(200);
    let changed = get_with(&app, &path, &b.owner.token, &[("if-none-match", &tag2)])
        .await
        .expect(200);
    assert_eq!(changed.json["items"][0]["title"], "renamed");
}

async fn large_answers_are_compressed(app: TestApp) {
    let b = board(&app, &[40]).await;
    let path = url(b.org, &format!("/boards/{}", b.board));
    // Uncached, then cached: gzip either way, and the same JSON as plain.
    let plain = get_with(&app, &path, &b.owner.token, &[]).await.expect(200);
    assert!(!plain.headers.contains_key("content-encoding"));
    for _ in 0..2 {
        let gz = get_with(
            &app,
            &path,
            &b.owner.token,
            &[("accept-encoding", "gzip"), ("cache-control", "no-cache")],
        )
        .await
        .expect(200);
        assert_eq!(gz.headers["content-encoding"], "gzip");
        assert_eq!(gz.json, plain.json);
        let cached = get_with(&app, &path, &b.owner.token, &[("accept-encoding", "gzip")])
            .await
            .expect(200);
        assert_eq!(cached.headers["content-encoding"], "gzip");
        assert_eq!(cached.json, plain.json);
    }
    // Other JSON answers above 2 KB: compressed as the client prefers.
    let tasks = url(b.org, &format!("/tasks?list_id={}&limit=40", b.lists[0].0));
    for (accept, expected) in [("br", "br"), ("zstd", "zstd"), ("gzip", "gzip")] {
        let r = get_with(&app, &tasks, &b.owner.token, &[("accept-encoding", accept)])
            .await
            .expect(200);
        assert_eq!(r.headers["content-encoding"], expected, "{accept}");
    }
    // Small answers are not.
    let small = get_with(
        &app,
        &url(b.org, ""),
        &b.owner.token,
        &[("accept-encoding", "gzip")],
    )
    .await
    .expect(200);
    assert!(!small.headers.contains_key("content-encoding"));
}

/// Card changes (a task's, or its comment count's) patch the cached views
/// of their board instead of dropping them (crate::cache::parts): after
/// each change of a fixed pseudo-random sequence (creates, updates with odd
/// due times, moves within and across lists, deletes, comments added,
/// edited and removed, a label deleted), the view served from the cache is exactly the
/// view read from the database, for a `per_list` that shows every card and
/// for ones that leave lists with more (and cards beyond the reserve a view
/// keeps); and most card changes did patch (the view stayed cached).
async fn patched_views_equal_views_read_again(app: TestApp) {
    // Per list 1 and 3, list 2 (14 cards) has cards beyond the ones a
    // view keeps (the page and a reserve of 8).
    let b = board(&app, &[5, 0, 14]).await;
    let label = id_of(
        &app.post(
            &url(b.org, "/labels"),
            &b.owner.token,
            json!({"name": "Spare"}),
        )
        .await
        .expect(201)
        .json,
    );
    let lists: Vec<Uuid> = b.lists.iter().map(|l| l.0).collect();
    let mut tasks: Vec<Uuid> = b.lists.iter().flat_map(|l| l.1.clone()).collect();
    // Comments kept, with their task.
    let mut comments: Vec<(Uuid, Uuid)> = Vec::new();
    let views = [
        url(b.org, &format!("/boards/{}", b.board)),
        url(b.org, &format!("/boards/{}?per_list=3", b.board)),
        url(b.org, &format!("/boards/{}?per_list=1", b.board)),
    ];
    let per_list = [orgboard::boards::view::DEFAULT_PER_LIST, 3, 1];
    // The view read from the database as `Cache-Control: no-cache` reads
    // it, without storing it: patches pile up over many changes.
    let read = |n: u32| read_view(&app, &b, n, orgboard::boards::view::CardOrder::AsRead);
    let cache = &app.state.live.cache;
    // A fixed sequence (a linear congruential generator; CI is
    // deterministic).
    let mut seed: u64 = 20_261_206;
    let mut next = move |n: usize| -> usize {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % n
    };
    let (mut task_changes, mut patched, mut patched_small) = (0, 0, 0);
    let (mut comment_changes, mut comment_patched) = (0, 0);
    for step in 0..70 {
        // Every view cached (or patched) before the change.
        for v in &views {
            app.get(v, &b.owner.token).await.expect(200);
        }
        let op = if step == 55 { 9 } else { next(10) };
        let mut is_task_change = true;
        let mut is_comment = false;
        match op {
            0..=2 => {
                let list = lists[next(lists.len())];
                let body = match next(3) {
                    0 => {
                        json!({"title": format!("new {step}"), "due_date": "2027-01-02T03:04:05.123456789Z"})
                    }
                    1 if step < 55 => {
                        json!({"title": format!("new {step}"), "label_ids": [label], "assignee_ids": [b.owner.id]})
                    }
                    _ => json!({"title": format!("new {step}"), "status": "done"}),
                };
                let t = app
                    .post(
                        &url(b.org, &format!("/lists/{list}/tasks")),
                        &b.owner.token,
                        body,
                    )
                    .await
                    .expect(201)
                    .json;
                tasks.push(id_of(&t));
            }
            3 | 4 => {
                let t = tasks[next(tasks.len())];
                let body = match next(4) {
                    0 => json!({"title": format!("renamed {step}")}),
                    1 => json!({"status": "done", "priority": "high"}),
                    2 => {
                        json!({"due_date": "2027-03-04T05:06:07.000001999+02:00", "label_ids": []})
                    }
                    _ => json!({"status": "todo", "due_date": null, "assignee_ids": [b.owner.id]}),
                };
                app.patch(&url(b.org, &format!("/tasks/{t}")), &b.owner.token, body)
                    .await
                    .expect(200);
            }
            5..=7 => {
                let t = tasks[next(tasks.len())];
                let to = lists[next(lists.len())];
                // Anchor on a card the fresh view shows in the target list.
                let fresh = read(per_list[0]).await;
                let shown: Vec<Uuid> = fresh["lists"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| id_of(l) == to)
                    .map(|l| ids(&l["tasks"]))
                    .unwrap_or_default();
                let others: Vec<Uuid> = shown.into_iter().filter(|x| *x != t).collect();
                let body = match (next(3), others.is_empty()) {
                    (0, false) => json!({"list_id": to, "before_id": others[next(others.len())]}),
                    (1, false) => json!({"list_id": to, "after_id": others[next(others.len())]}),
                    _ => json!({"list_id": to}),
                };
                move_task(&app, &b, t, body).await;
            }
            8 => {
                let t = tasks.swap_remove(next(tasks.len()));
                app.delete(&url(b.org, &format!("/tasks/{t}")), &b.owner.token)
                    .await
                    .expect(204);
                comments.retain(|(task, _)| *task != t);
            }
            _ if step == 55 => {
                // A label deleted may touch every card: views read again.
                is_task_change = false;
                app.delete(&url(b.org, &format!("/labels/{label}")), &b.owner.token)
                    .await
                    .expect(204);
            }
            _ => {
                // A comment added or removed changes a card's count: the
                // view is patched as for a task's change; one edited
                // changes nothing on the card: the view stays.
                is_comment = true;
                match (comments.len(), next(3)) {
                    (n, 0) if n > 0 => {
                        let (_, c) = comments.swap_remove(next(n));
                        app.delete(&url(b.org, &format!("/comments/{c}")), &b.owner.token)
                            .await
                            .expect(204);
                    }
                    (n, 1) if n > 0 => {
                        let (_, c) = comments[next(n)];
                        app.patch(
                            &url(b.org, &format!("/comments/{c}")),
                            &b.owner.token,
                            json!({"body": format!("edited {step}")}),
                        )
                        .await
                        .expect(200);
                    }
                    _ => {
                        let t = tasks[next(tasks.len())];
                        let c = app
                            .post(
                                &url(b.org, &format!("/tasks/{t}/comments")),
                                &b.owner.token,
                                json!({"body": "hello"}),
                            )
                            .await
                            .expect(201)
                            .json;
                        comments.push((t, id_of(&c)));
                    }
                }
            }
        }
        let v = cache.version(b.org, b.board).await.unwrap();
        let still = cache
            .get(b.org, b.board, orgboard::boards::view::DEFAULT_PER_LIST, v)
            .await
            .is_some();
        let small = cache.get(b.org, b.board, 1, v).await.is_some();
        if is_comment {
            // The view that shows every card keeps its place through each.
            comment_changes += 1;
            comment_patched += usize::from(still);
        }
        if is_task_change {
            task_changes += 1;
            patched += usize::from(still);
            patched_small += usize::from(small);
        } else {
            assert!(
                !still,
                "step {step}: a change that cannot patch drops the view"
            );
        }
        same_views(
            &app,
            &b,
            &views,
            &per_list,
            &read,
            &format!("step {step} (op {op})"),
        )
        .await;
    }
    assert!(
        comment_changes >= 3 && comment_patched == comment_changes,
        "{comment_patched} of {comment_changes} comments added, edited or removed patched the view"
    );
    assert!(
        patched * 10 >= task_changes * 9,
        "{patched} of {task_changes} card changes patched the view that shows every card"
    );
    // With one card a page, some changes must replace a card from the
    // reserve or refuse; most still patch.
    assert!(
        patched_small * 2 >= task_changes,
        "{patched_small} of {task_changes} card changes patched the view of one card a list"
    );
    // Cards leaving the page of a long list one by one: each is replaced
    // from the reserve the view keeps (still patched, still exact) until
    // the reserve runs out and the view of one card a list is read again.
    let long = lists[2];
    for n in 0..10 {
        app.post(
            &url(b.org, &format!("/lists/{long}/tasks")),
            &b.owner.token,
            json!({"title": format!("tail {n}")}),
        )
        .await
        .expect(201);
    }
    // Read again (and stored): the view keeps the page and a full reserve.
    for v in &views {
        get_with(&app, v, &b.owner.token, &[("cache-control", "no-cache")])
            .await
            .expect(200);
    }
    let (mut replaced, mut refused) = (0, false);
    for k in 0..12 {
        let fresh = read(1).await;
        let first = ids(&fresh["lists"][2]["tasks"])[0];
        move_task(&app, &b, first, json!({"list_id": lists[0]})).await;
        let v = cache.version(b.org, b.board).await.unwrap();
        match cache.get(b.org, b.board, 1, v).await {
            Some(_) if !refused => replaced += 1,
            Some(_) => {}
            None => refused = true,
        }
        same_views(
            &app,
            &b,
            &views,
            &per_list,
            &read,
            &format!("departure {k}"),
        )
        .await;
    }
    assert!(
        refused && replaced == orgboard::cache::parts::RESERVE,
        "{replaced} departures replaced from the reserve before it ran out ({refused})"
    );
    // The relation ids the rows keep followed every change of the sequence.
    assert_eq!(app.relation_ids_drift(b.org).await, Vec::<Uuid>::new());
}

/// Boards, lists, labels, comments and the audit log carry the `ETag` of
/// the organization's changes counter and their path and query: `304`
/// until any change of the organization is acknowledged, another
/// collection's (or page's) tag is no match, and access comes first (a
/// stranger gets `404`, a member the audit log's `403`, a bad query its
/// error, whatever tag they send).
async fn collections_answer_304_until_any_change_of_the_org(app: TestApp) {
    let b = board(&app, &[2]).await;
    let task = b.lists[0].1[0];
    app.post(
        &url(b.org, &format!("/tasks/{task}/comments")),
        &b.owner.token,
        json!({"body": "first"}),
    )
    .await
    .expect(201);
    let paths = [
        url(b.org, "/boards"),
        url(b.org, &format!("/boards/{}/lists", b.board)),
        url(b.org, "/labels"),
        url(b.org, &format!("/tasks/{task}/comments")),
        url(b.org, "/audit-log"),
        url(b.org, "/audit-log?limit=2"),
    ];
    let stranger = app.signup("stranger").await;
    let mut tags = Vec::new();
    for path in &paths {
        let first = get_with(&app, path, &b.owner.token, &[]).await.expect(200);
        let tag = first.headers["etag"].to_str().unwrap().to_owned();
        let same = get_with(&app, path, &b.owner.token, &[("if-none-match", &tag)])
            .await
            .expect(304);
        assert!(same.text.is_empty(), "{path}");
        assert_eq!(same.headers["etag"].to_str().unwrap(), tag);
        for junk in ["garbage", "\"\"", "W/", &"x".repeat(4000)] {
            get_with(&app, path, &b.owner.token, &[("if-none-match", junk)])
                .await
                .expect(200);
        }
        get_with(&app, path, &stranger.token, &[("if-none-match", &tag)])
            .await
            .expect_problem(404, "not_found");
        tags.push(tag);
    }
    // Each collection and page has its own tag.
    let distinct: HashSet<&String> = tags.iter().collect();
    assert_eq!(distinct.len(), tags.len(), "{tags:?}");
    get_with(
        &app,
        &paths[2],
        &b.owner.token,
        &[("if-none-match", &tags[0])],
    )
    .await
    .expect(200);
    // A member joins (a change of the organization); roles and bad
    // queries come before the tag.
    let member = app.member(b.org, &b.owner, "member").await;
    get_with(&app, &paths[4], &member.token, &[("if-none-match", "*")])
        .await
        .expect_problem(403, "forbidden");
    get_with(
        &app,
        &url(b.org, "/labels?limit=0"),
        &b.owner.token,
        &[("if-none-match", "*")],
    )
    .await
    .expect(422);
    // The member joined after the tags were made: every tag is old now.
    for (path, tag) in paths.iter().zip(&tags) {
        get_with(&app, path, &b.owner.token, &[("if-none-match", tag)])
            .await
            .expect(200);
    }
    // Any change of the organization: new tags, and the change is there.
    let fresh: Vec<String> = {
        let mut v = Vec::new();
        for path in &paths {
            let r = get_with(&app, path, &b.owner.token, &[]).await.expect(200);
            v.push(r.headers["etag"].to_str().unwrap().to_owned());
        }
        v
    };
    app.post(
        &url(b.org, "/labels"),
        &b.owner.token,
        json!({"name": "New"}),
    )
    .await
    .expect(201);
    for (path, tag) in paths.iter().zip(&fresh) {
        let r = get_with(&app, path, &b.owner.token, &[("if-none-match", tag)])
            .await
            .expect(200);
        assert_ne!(r.headers["etag"].to_str().unwrap(), tag, "{path}");
    }
    let labels = get_with(&app, &paths[2], &b.owner.token, &[])
        .await
        .expect(200);
    assert!(
        labels.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "New")
    );
    // By slug: no tag.
    let slug = slug_of(&app, &b).await;
    let by_slug = get_with(
        &app,
        &format!("/api/v1/orgs/{slug}/labels"),
        &b.owner.token,
        &[("if-none-match", "*")],
    )
    .await
    .expect(200);
    assert!(!by_slug.headers.contains_key("etag"));
}

/// Each of `views` served through the cache equals `read(per_list)`, the
/// view read from the database; `what` names the moment.
async fn same_views<F: std::future::Future<Output = Value>>(
    app: &TestApp,
    b: &Board,
    views: &[String],
    per_list: &[u32],
    read: &impl Fn(u32) -> F,
    what: &str,
) {
    for (v, n) in views.iter().zip(per_list) {
        let cached = app.get(v, &b.owner.token).await.expect(200).json;
        let read = read(*n).await;
        if cached != read {
            // Name the first card that differs.
            let cards = |x: &Value| -> Vec<Value> {
                x["lists"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|l| l["tasks"].as_array().unwrap().clone())
                    .collect()
            };
            let diff = cards(&cached)
                .into_iter()
                .zip(cards(&read))
                .find(|(a, b)| a != b);
            panic!(
                "{what}: {v}: first card that differs (cached, read): {diff:#?}\n\
                 cached: {cached}\nread: {read}"
            );
        }
    }
}

/// PostgreSQL reads a board's cards with no `ORDER BY` (its `Append` gives
/// each list's index range in turn; crate `boards::view::CardOrder`), checks
/// that order as the rows arrive, and reads them again sorted when it does
/// not hold. Asked with the branches reversed (every list after the one
/// before it) or each list's cards reversed (each card before the one
/// before it), the view must still equal the sorted one, for a `per_list`
/// that shows every card and one that leaves lists with more. On SQLite each
/// list is its own ordered statement and the order asked is not used; the
/// views must be equal there too.
async fn cards_read_out_of_order_are_read_again_sorted(app: TestApp) {
    use orgboard::boards::view::CardOrder;
    let b = board(&app, &[5, 0, 3, 12]).await;
    let read = |n: u32, order: CardOrder| read_view(&app, &b, n, order);
    for n in [orgboard::boards::view::DEFAULT_PER_LIST, 2] {
        let sorted = read(n, CardOrder::Sorted).await;
        let shown: usize = sorted["lists"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["tasks"].as_array().unwrap().len())
            .sum();
        assert_eq!(shown, if n == 2 { 2 + 2 + 2 } else { 20 }, "per_list {n}");
        assert_eq!(
            read(n, CardOrder::AsRead).await,
            sorted,
            "as read, per_list {n}"
        );
        assert_eq!(
            read(n, CardOrder::Reversed).await,
            sorted,
            "reversed, per_list {n}"
        );
        assert_eq!(
            read(n, CardOrder::Descending).await,
            sorted,
            "descending, per_list {n}"
        );
    }
}
