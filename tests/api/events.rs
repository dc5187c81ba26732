//! Live events on real sockets (SSE and WebSocket), on both databases:
//! delivery, order, isolation between organizations, board filter, resume
//! after a disconnect, disconnection of a removed member, the per-user cap;
//! and the board-view cache never serving a view older than an
//! acknowledged write.

use std::time::{Duration, Instant};

use crate::common::live::{self, Next};
use crate::common::{TestApp, TestUser};
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    sse_delivers_every_change_in_order,
    websocket_carries_the_same_events,
    streams_see_only_their_organization,
    board_filter_narrows_the_stream,
    resume_replays_missed_events_without_duplicates,
    resume_from_expired_or_unknown_id_resets,
    long_replay_arrives_whole_and_in_order,
    removed_member_is_disconnected_within_a_second,
    streams_per_user_are_capped,
    board_view_cache_is_never_stale,
    board_view_cache_is_invalidated_per_board,
    stream_ends_when_its_token_expires,
    stream_ends_when_its_session_is_revoked,
    every_write_transaction_publishes_its_changes,
    comment_events_carry_their_board,
);

/// Sign-up writes `org.created` and `member.joined` outside any
/// organization's request (it used to commit without the after-commit work,
/// so on SQLite those events were never published): the unit of work now
/// installs it on every write transaction, so they reach the hub.
async fn every_write_transaction_publishes_its_changes(app: TestApp) {
    let mut hub = app.state.live.hub.subscribe();
    let user = app.signup("newcomer").await;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, hub.recv()).await {
            Ok(Ok(orgboard::events::Signal::Event(e))) if e.org_id == user.personal_org => {
                assert_eq!(e.actor_id, Some(user.id));
                seen.push(e.kind.as_str());
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("hub closed: {e}"),
            Err(_) => panic!("sign-up's events were not published; saw {seen:?}"),
        }
    }
    assert_eq!(seen, ["org.created", "member.joined"]);
}

/// A comment's event names its task's board (the change record carries it
/// explicitly), so a board-filtered stream gets comments of that board.
async fn comment_events_carry_their_board(app: TestApp) {
    let o = setup(&app).await;
    let task = app
        .post(
            &url(o.org, &format!("/lists/{}/tasks", o.list)),
            &o.owner.token,
            json!({ "title": "Discuss" }),
        )
        .await
        .expect(201)
        .json;
    let comment = app
        .post(
            &url(
                o.org,
                &format!("/tasks/{}/comments", task["id"].as_str().unwrap()),
            ),
            &o.owner.token,
            json!({ "body": "first" }),
        )
        .await
        .expect(201)
        .json;
    let cid = comment["id"].as_str().unwrap();
    app.patch(
        &url(o.org, &format!("/comments/{cid}")),
        &o.owner.token,
        json!({ "body": "second" }),
    )
    .await
    .expect(200);
    app.delete(&url(o.org, &format!("/comments/{cid}")), &o.owner.token)
        .await
        .expect(204);
    let board = o.board.to_string();
    let rows: Vec<(String, Option<Uuid>)> = {
        let mut tx = app
            .state
            .db
            .read(orgboard::db::Scope::tenant(o.owner.id, o.org))
            .await
            .unwrap();
        orgboard::on_tx!(&mut tx, |c| sqlx::query_as(
            "SELECT type, board_id FROM events WHERE org_id = $1 AND type LIKE 'comment.%' ORDER BY seq"
        )
        .bind(o.org)
        .fetch_all(c)
        .await)
        .unwrap()
    };
    let kinds: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["comment.created", "comment.updated", "comment.deleted"]
    );
    for (kind, b) in &rows {
        assert_eq!(
            b.map(|b| b.to_string()).as_deref(),
            Some(board.as_str()),
            "{kind}"
        );
    }
}

/// A fresh login: (access token, refresh token).
async fn login(app: &TestApp, user: &crate::common::TestUser) -> (String, String) {
    let r = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": user.email, "password": user.password })),
        )
        .await
        .expect(200);
    (
        r.json["access_token"].as_str().unwrap().to_owned(),
        r.json["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// The stream does not outlive its access token: an `end` event saying
/// why, then the end of the stream (before, it ran on after expiry).
async fn stream_ends_when_its_token_expires(app: TestApp) {
    let app = TestApp::with(app.backend, |c| c.access_token_ttl_secs = 2).await;
    let o = setup(&app).await;
    let addr = live::serve(&app).await;
    let (token, _) = login(&app, &o.owner).await;
    let mut sse = live::sse(addr, &url(o.org, "/events"), Some(&token), None).await;
    assert_eq!(sse.status, 200);
    new_task(&app, &o, "before expiry").await;
    let created = sse.next(WAIT).await.event();
    assert_eq!(created.event.as_deref(), Some("task.created"));
    let end = sse.next(WAIT).await.event();
    assert_eq!(end.event.as_deref(), Some("end"));
    assert_eq!(end.data["reason"], "token_expired");
    assert_eq!(end.id, created.id, "the last id sent, to resume from");
    assert!(matches!(sse.next(WAIT).await, Next::End));
}

/// Logging out (revoking the session) ends that session's streams; another
/// session of the same user keeps its own.
async fn stream_ends_when_its_session_is_revoked(app: TestApp) {
    let o = setup(&app).await;
    let addr = live::serve(&app).await;
    let (token, refresh) = login(&app, &o.owner).await;
    let (other_token, _) = login(&app, &o.owner).await;
    let mut sse = live::sse(addr, &url(o.org, "/events"), Some(&token), None).await;
    let mut ws = live::ws(addr, &url(o.org, "/events"), &token)
        .await
        .unwrap();
    let mut other = live::sse(addr, &url(o.org, "/events"), Some(&other_token), None).await;
    app.call(
        axum::http::Method::POST,
        "/api/v1/auth/logout",
        None,
        Some(json!({ "refresh_token": refresh })),
    )
    .await
    .expect(204);
    let end = sse.next(WAIT).await.event();
    assert_eq!(end.event.as_deref(), Some("end"));
    assert_eq!(end.data["reason"], "session_revoked");
    assert!(matches!(sse.next(WAIT).await, Next::End));
    let ws_end = live::ws_next(&mut ws, WAIT).await.unwrap();
    assert_eq!(ws_end["type"], "end");
    assert_eq!(ws_end["reason"], "session_revoked");
    assert!(
        live::ws_next(&mut ws, WAIT).await.is_none(),
        "socket closed"
    );
    new_task(&app, &o, "after logout").await;
    assert_eq!(
        other.next(WAIT).await.event().event.as_deref(),
        Some("task.created"),
        "the other session's stream goes on"
    );
}

const WAIT: Duration = Duration::from_secs(5);

fn url(org: Uuid, rest: &str) -> String {
    format!("/api/v1/orgs/{org}{rest}")
}

fn id(v: &Value) -> Uuid {
    v["id"].as_str().unwrap().parse().unwrap()
}

struct Org {
    owner: TestUser,
    org: Uuid,
    board: Uuid,
    list: Uuid,
}

async fn setup(app: &TestApp) -> Org {
    let owner = app.signup("Owner").await;
    let org = app.create_org(&owner, "Events Inc").await;
    let board = id(&app
        .post(&url(org, "/boards"), &owner.token, json!({"name": "Board"}))
        .await
        .expect(201)
        .json);
    let list = id(&app
        .post(
            &url(org, &format!("/boards/{board}/lists")),
            &owner.token,
            json!({"name": "Todo"}),
        )
        .await
        .expect(201)
        .json);
    Org {
        owner,
        org,
        board,
        list,
    }
}

/// A second board of the organization.
async fn other_board(app: &TestApp, o: &Org) -> Uuid {
    id(&app
        .post(
            &url(o.org, "/boards"),
            &o.owner.token,
            json!({"name": "Other"}),
        )
        .await
        .expect(201)
        .json)
}

async fn new_task(app: &TestApp, o: &Org, title: &str) -> Value {
    app.post(
        &url(o.org, &format!("/lists/{}/tasks", o.list)),
        &o.owner.token,
        json!({ "title": title }),
    )
    .await
    .expect(201)
    .json
}

fn ids(events: &[live::Sse]) -> Vec<i64> {
    events
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect()
}

async fn sse_delivers_every_change_in_order(app: TestApp) {
    let o = setup(&app).await;
    let addr = live::serve(&app).await;
    let mut s = live::sse(addr, &url(o.org, "/events"), Some(&o.owner.token), None).await;
    assert_eq!(s.status, 200);
    assert!(
        s.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let task = new_task(&app, &o, "First").await;
    let t = id(&task);
    app.patch(
        &url(o.org, &format!("/tasks/{t}")),
        &o.owner.token,
        json!({ "title": "Renamed" }),
    )
    .await
    .expect(200);
    app.post(
        &url(o.org, &format!("/tasks/{t}/comments")),
        &o.owner.token,
        json!({ "body": "hello" }),
    )
    .await
    .expect(201);
    app.delete(&url(o.org, &format!("/tasks/{t}")), &o.owner.token)
        .await
        .expect(204);
    let got = s.take(4, WAIT).await;
    let kinds: Vec<_> = got.iter().map(|e| e.event.clone().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "task.created",
            "task.updated",
            "comment.created",
            "task.deleted"
        ]
    );
    // Ids are consecutive per organization and match the data's id.
    let n = ids(&got);
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{n:?}");
    for (e, i) in got.iter().zip(&n) {
        assert_eq!(e.data["id"], *i);
        assert_eq!(e.data["org_id"], o.org.to_string());
        assert_eq!(e.data["actor_id"], o.owner.id.to_string());
        assert_eq!(e.data["board_id"], o.board.to_string(), "{:?}", e.data);
        assert!(e.data["at"].is_string());
    }
    assert_eq!(got[0].data["entity"]["id"], t.to_string());
    assert_eq!(got[0].data["entity"]["type"], "task");
    assert_eq!(
        got[1].data["entity"]["changes"]["title"],
        json!({"from": "First", "to": "Renamed"})
    );
    // Nothing else is pending.
    assert!(matches!(
        s.next(Duration::from_millis(300)).await,
        Next::Timeout
    ));
}

async fn websocket_carries_the_same_events(app: TestApp) {
    let o = setup(&app).await;
    let addr = live::serve(&app).await;
    let mut ws = live::ws(addr, &url(o.org, "/events"), &o.owner.token)
        .await
        .unwrap();
    let task = new_task(&app, &o, "Over WS").await;
    let e = live::ws_next(&mut ws, WAIT).await.unwrap();
    assert_eq!(e["type"], "task.created");
    assert_eq!(e["entity"]["id"], task["id"]);
    assert_eq!(e["board_id"], o.board.to_string());
    let first = e["id"].as_i64().unwrap();
    app.post(
        &url(o.org, &format!("/tasks/{}/move", id(&task))),
        &o.owner.token,
        json!({ "list_id": o.list }),
    )
    .await
    .expect(200);
    let e = live::ws_next(&mut ws, WAIT).await.unwrap();
    assert_eq!(e["type"], "task.moved");
    assert_eq!(e["id"].as_i64().unwrap(), first + 1);
    // Query-string token (browsers cannot set headers on a WebSocket).
    let r = live::ws(addr, &url(o.org, "/events"), "not-a-token").await;
    assert_eq!(r.err(), Some(401));
    let mut req =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{addr}{}?access_token={}",
            url(o.org, "/events"),
            o.owner.token
        ))
        .unwrap();
    req.headers_mut().remove("authorization");
    let (mut ws2, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    new_task(&app, &o, "Second").await;
    let e = live::ws_next(&mut ws2, WAIT).await.unwrap();
    assert_eq!(e["type"], "task.created");
    assert_eq!(e["entity"]["changes"]["title"], "Second");
}

async fn streams_see_only_their_organization(app: TestApp) {
    let a = setup(&app).await;
    let b = setup(&app).await;
    let addr = live::serve(&app).await;
    // Another organization's stream: 404, over SSE and WebSocket alike.
    let s = live::sse(addr, &url(a.org, "/events"), Some(&b.owner.token), None).await;
    assert_eq!(s.status, 404);
    let body: Value = serde_json::from_str(&s.text().await).unwrap();
    assert_eq!(body["code"], "not_found");
    assert_eq!(
        live::ws(addr, &url(a.org, "/events"), &b.owner.token)
            .await
            .err(),
        Some(404)
    );
    // A board of another organization as filter: refused.
    let s = live::sse(
        addr,
        &url(b.org, &format!("/events?board_id={}", a.board)),
        Some(&b.owner.token),
        None,
    )
    .await;
    assert_eq!(s.status, 422);
    // No token: 401.
    let s = live::sse(addr, &url(a.org, "/events"), None, None).await;
    assert_eq!(s.status, 401);
    // B's stream gets B's events only, even with A busy first.
    let mut sb = live::sse(addr, &url(b.org, "/events"), Some(&b.owner.token), None).await;
    let mut sa = live::sse(addr, &url(a.org, "/events"), Some(&a.owner.token), None).await;
    for i in 0..5 {
        new_task(&app, &a, &format!("a{i}")).await;
    }
    new_task(&app, &b, "b0").await;
    let e = sb.next(WAIT).await.event();
    assert_eq!(e.data["org_id"], b.org.to_string());
    assert_eq!(e.data["entity"]["changes"]["title"], "b0");
    assert!(matches!(
        sb.next(Duration::from_millis(300)).await,
        Next::Timeout
    ));
    let got = sa.take(5, WAIT).await;
    assert!(got.iter().all(|e| e.data["org_id"] == a.org.to_string()));
    // A viewer may subscribe too (reading is every role's right).
    let viewer = app.member(a.org, &a.owner, "viewer").await;
    let s = live::sse(addr, &url(a.org, "/events"), Some(&viewer.token), None).await;
    assert_eq!(s.status, 200);
}

async fn board_filter_narrows_the_stream(app: TestApp) {
    let o = setup(&app).await;
    let other = other_board(&app, &o).await;
    let addr = live::serve(&app).await;
    let mut s = live::sse(
        addr,
        &url(o.org, &format!("/events?board_id={}", o.board)),
        Some(&o.owner.token),
        None,
    )
    .await;
    assert_eq!(s.status, 200);
    app.post(
        &url(o.org, &format!("/boards/{other}/lists")),
        &o.owner.token,
        json!({"name": "elsewhere"}),
    )
    .await
    .expect(201);
    app.post(
        &url(o.org, "/labels"),
        &o.owner.token,
        json!({"name": "bug", "color": "#ff0000"}),
    )
    .await
    .expect(201);
    new_task(&app, &o, "mine").await;
    let e = s.next(WAIT).await.event();
    assert_eq!(e.event.as_deref(), Some("task.created"));
    assert_eq!(e.data["board_id"], o.board.to_string());
    assert!(matches!(
        s.next(Duration::from_millis(300)).await,
        Next::Timeout
    ));
}

async fn resume_replays_missed_events_without_duplicates(app: TestApp) {
    let o = setup(&app).await;
    let addr = live::serve(&app).await;
    let mut s = live::sse(addr, &url(o.org, "/events"), Some(&o.owner.token), None).await;
    new_task(&app, &o, "one").await;
    new_task(&app, &o, "two").await;
    let seen = s.take(2, WAIT).await;
    let last = seen[1].id.clone().unwrap();
    drop(s);
    for t in ["three", "four", "five"] {
        new_task(&app, &o, t).await;
    }
    let mut s = live::sse(
        addr,
        &url(o.org, "/events"),
        Some(&o.owner.token),
        Some(&last),
    )
    .await;
    assert_eq!(s.status, 200);
    let replay = s.take(3, WAIT).await;
    let titles: Vec<_> = replay
        .iter()
        .map(|e| {
            e.data["entity"]["changes"]["title"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(titles, ["three", "four", "five"]);
    let last_n: i64 = last.parse().unwrap();
    assert_eq!(ids(&replay), vec![last_n + 1, last_n + 2, last_n + 3]);
    // Then live ones, continuing the sequence, with no duplicate.
    new_task(&app, &o, "six").await;
    let e = s.next(WAIT).await.event();
    assert_eq!(e.id, Some((last_n + 4).to_string()));
    assert!(matches!(
        s.next(Duration::from_millis(300)).await,
        Next::Timeout
    ));
    // The same through ?last_event_id= on a WebSocket.
    let mut ws = live::ws(
        addr,
        &url(o.org, &format!("/events?last_event_id={last}")),
        &o.owner.token,
    )
    .await
    .unwrap();
    for k in 1..=4 {
        let e = live::ws_next(&mut ws, WAIT).await.unwrap();
        assert_eq!(e["id"].as_i64().unwrap(), last_n + k);
    }
    // Many concurrent writers: the stream still sees every id exactly once, in order.
    let mut s = live::sse(addr, &url(o.org, "/events"), Some(&o.owner.token), None).await;
    let mut writers = Vec::new();
    for w in 0..4 {
        let router = app.router.clone();
        let token = o.owner.token.clone();
        let path = url(o.org, &format!("/lists/{}/tasks", o.list));
        writers.push(tokio::spawn(async move {
            use tower::ServiceExt as _;
            for i in 0..10 {
                let req = axum::http::Request::post(&path)
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(
                        json!({"title": format!("w{w}-{i}")}).to_string(),
                    ))
                    .unwrap();
                let res = router.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status(), 201);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let got = s.take(40, WAIT).await;
    let n = ids(&got);
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "{n:?}");
}

/// A replay longer than one read batch (500) arrives whole, in order.
async fn long_replay_arrives_whole_and_in_order(app: TestApp) {
    let o = setup(&app).await;
    let addr = live::serve(&app).await;
    let mut s = live::sse(addr, &url(o.org, "/events"), Some(&o.owner.token), None).await;
    new_task(&app, &o, "mark").await;
    let mark: i64 = s.next(WAIT).await.event().id.unwrap().parse().unwrap();
    drop(s);
    for i in 0..600 {
        app.post(
            &url(o.org, "/labels"),
            &o.owner.token,
            json!({ "name": format!("l{i}") }),
        )
        .await
        .expect(201);
    }
    let mut s = live::sse(
        addr,
        &url(o.org, "/events"),
        Some(&o.owner.token),
        Some(&mark.to_string()),
    )
    .await;
    let got = s.take(600, WAIT).await;
    assert_eq!(ids(&got), ((mark + 1)..=(mark + 600)).collect::<Vec<_>>());
    assert_eq!(got[599].data["entity"]["changes"]["name"], "l599");
    assert!(matches!(
        s.next(Duration::from_millis(300)).await,
        Next::Timeout
    ));
}

async fn resume_from_expired_or_unknown_id_resets(app: TestApp) {
    let o = setup(&app).await;
    let addr = live::serve(&app).await;
    for t in ["a", "b", "c"] {
        new_task(&app, &o, t).await;
    }
    // Wait until the three are numbered (PostgreSQL numbers after commit).
    let mut s = live::sse(
        addr,
        &url(o.org, "/events"),
        Some(&o.owner.token),
        Some("0"),
    )
    .await;
    let all = s.take(7, WAIT).await; // org, member, board, list, 3 tasks
    let newest: i64 = all.last().unwrap().id.as_deref().unwrap().parse().unwrap();
    drop(s);
    // An id from the future: reset to the newest.
    let mut s = live::sse(
        addr,
        &url(o.org, "/events"),
        Some(&o.owner.token),
        Some("999999"),
    )
    .await;
    let e = s.next(WAIT).await.event();
    assert_eq!(e.event.as_deref(), Some("reset"));
    assert_eq!(e.id, Some(newest.to_string()));
    assert_eq!(e.data["type"], "reset");
    // Live events follow the reset.
    new_task(&app, &o, "d").await;
    let e = s.next(WAIT).await.event();
    assert_eq!(e.id, Some((newest + 1).to_string()));
    drop(s);
    // Events that are gone (the clean-up keeps the newest): reset too.
    expire_events_before(&app, o.org, newest).await;
    let mut s = live::sse(
        addr,
        &url(o.org, "/events"),
        Some(&o.owner.token),
        Some("2"),
    )
    .await;
    let e = s.next(WAIT).await.event();
    assert_eq!(e.event.as_deref(), Some("reset"));
    assert_eq!(e.id, Some((newest + 1).to_string()));
    // Not an id: 400.
    let s = live::sse(
        addr,
        &url(o.org, "/events"),
        Some(&o.owner.token),
        Some("abc"),
    )
    .await;
    assert_eq!(s.status, 400);
}

/// Deletes the organization's events numbered below `id` (as the clean-up
/// job does with old ones), as the database owner.
async fn expire_events_before(app: &TestApp, org: Uuid, id: i64) {
    let mut tx = app.state.db.system().await.unwrap();
    orgboard::on_tx!(&mut tx, |c| sqlx::query(
        "DELETE FROM events WHERE org_id = $1 AND id < $2"
    )
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tx.commit().await.unwrap();
}

async fn removed_member_is_disconnected_within_a_second(app: TestApp) {
    let o = setup(&app).await;
    let member = app.member(o.org, &o.owner, "member").await;
    let stays = app.member(o.org, &o.owner, "viewer").await;
    let addr = live::serve(&app).await;
    let mut sse = live::sse(addr, &url(o.org, "/events"), Some(&member.token), None).await;
    let mut ws = live::ws(addr, &url(o.org, "/events"), &member.token)
        .await
        .unwrap();
    let mut other = live::sse(addr, &url(o.org, "/events"), Some(&stays.token), None).await;
    app.delete(
        &url(o.org, &format!("/members/{}", member.id)),
        &o.owner.token,
    )
    .await
    .expect(204);
    let removed_at = Instant::now();
    // The removal event itself, then the end of the stream.
    let e = sse.next(WAIT).await.event();
    assert_eq!(e.event.as_deref(), Some("member.removed"));
    assert!(matches!(sse.next(WAIT).await, Next::End));
    let ws_event = live::ws_next(&mut ws, WAIT).await.unwrap();
    assert_eq!(ws_event["type"], "member.removed");
    assert!(
        live::ws_next(&mut ws, WAIT).await.is_none(),
        "socket closed"
    );
    assert!(
        removed_at.elapsed() < Duration::from_secs(1),
        "disconnected after {:?}",
        removed_at.elapsed()
    );
    // Others stay connected and keep receiving.
    assert_eq!(
        other.next(WAIT).await.event().event.as_deref(),
        Some("member.removed")
    );
    new_task(&app, &o, "after").await;
    assert_eq!(
        other.next(WAIT).await.event().event.as_deref(),
        Some("task.created")
    );
    // And the removed member cannot subscribe again.
    let s = live::sse(addr, &url(o.org, "/events"), Some(&member.token), None).await;
    assert_eq!(s.status, 404);
}

async fn streams_per_user_are_capped(app: TestApp) {
    let app = TestApp::with(app.backend, |c| c.max_streams_per_user = 2).await;
    let o = setup(&app).await;
    let addr = live::serve(&app).await;
    let s1 = live::sse(addr, &url(o.org, "/events"), Some(&o.owner.token), None).await;
    let s2 = live::sse(addr, &url(o.org, "/events"), Some(&o.owner.token), None).await;
    assert_eq!((s1.status, s2.status), (200, 200));
    let s3 = live::sse(addr, &url(o.org, "/events"), Some(&o.owner.token), None).await;
    assert_eq!(s3.status, 429);
    let body: Value = serde_json::from_str(&s3.text().await).unwrap();
    assert_eq!(body["code"], "too_many_streams");
    // Another user is not affected; closing a stream frees its slot.
    let other = app.member(o.org, &o.owner, "member").await;
    let s4 = live::sse(addr, &url(o.org, "/events"), Some(&other.token), None).await;
    assert_eq!(s4.status, 200);
    drop(s1);
    let mut again = 0;
    for _ in 0..50 {
        let s = live::sse(addr, &url(o.org, "/events"), Some(&o.owner.token), None).await;
        again = s.status;
        if again == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(again, 200);
}

async fn board_view_cache_is_never_stale(app: TestApp) {
    let o = setup(&app).await;
    let path = url(o.org, &format!("/boards/{}", o.board));
    let view = |v: &Value| -> Vec<String> {
        v["lists"][0]["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = app.get(&path, &o.owner.token).await.expect(200).json;
    assert!(view(&first).is_empty());
    assert!(cached(&app, o.org, o.board).await, "the view was stored");
    let again = app.get(&path, &o.owner.token).await.expect(200).json;
    assert_eq!(first, again);
    // Reads are served from the cache: a planted entry under the current
    // version is what the next read returns. (A view read at a version is
    // never replaced by another read at it, so the plant goes under the
    // next version, as a change would make it.)
    let cache = &app.state.live.cache;
    let mut touches = orgboard::db::change::Touches::default();
    touches.note((o.org, Some(o.board)), None);
    cache.invalidate(&touches).await;
    let v = cache.version(o.org, o.board).await.unwrap();
    cache
        .put(
            o.org,
            o.board,
            orgboard::boards::view::DEFAULT_PER_LIST,
            v,
            orgboard::cache::CachedView::new(axum::body::Bytes::from_static(b"{\"planted\":true}")),
        )
        .await;
    let planted = app.get(&path, &o.owner.token).await.expect(200).json;
    assert_eq!(planted, json!({"planted": true}));
    // A write's acknowledgement comes after its invalidation.
    // Every acknowledged write is in the next read, whatever it changed.
    let task = new_task(&app, &o, "fresh").await;
    assert!(
        !cached(&app, o.org, o.board).await,
        "invalidated before the 201"
    );
    assert_eq!(
        view(&app.get(&path, &o.owner.token).await.expect(200).json),
        ["fresh"]
    );
    app.patch(
        &url(o.org, &format!("/tasks/{}", id(&task))),
        &o.owner.token,
        json!({"title": "renamed"}),
    )
    .await
    .expect(200);
    assert_eq!(
        view(&app.get(&path, &o.owner.token).await.expect(200).json),
        ["renamed"]
    );
    app.patch(&path, &o.owner.token, json!({"name": "New name"}))
        .await
        .expect(200);
    let v = app.get(&path, &o.owner.token).await.expect(200).json;
    assert_eq!(v["name"], "New name");
    // Another organization's member still gets 404, cached or not.
    let stranger = app.signup("Stranger").await;
    app.get(&path, &stranger.token)
        .await
        .expect_problem(404, "not_found");
    // Interleaved writers and readers: each read after a write sees it.
    for i in 0..20 {
        new_task(&app, &o, &format!("t{i}")).await;
        let titles = view(&app.get(&path, &o.owner.token).await.expect(200).json);
        assert_eq!(titles.len(), i + 2);
        assert_eq!(titles.last().unwrap(), &format!("t{i}"));
    }
}

/// A change of one board (a task, a comment, a list) leaves the other
/// boards' views cached; a change that may touch every board (a label or a
/// member removed) invalidates them all, and no view is ever stale.
async fn board_view_cache_is_invalidated_per_board(app: TestApp) {
    let o = setup(&app).await;
    let other = other_board(&app, &o).await;
    let other_list = id(&app
        .post(
            &url(o.org, &format!("/boards/{other}/lists")),
            &o.owner.token,
            json!({"name": "Doing"}),
        )
        .await
        .expect(201)
        .json);
    let label = id(&app
        .post(&url(o.org, "/labels"), &o.owner.token, json!({"name": "L"}))
        .await
        .expect(201)
        .json);
    let member = app.member(o.org, &o.owner, "member").await;
    let on_other = id(&app
        .post(
            &url(o.org, &format!("/lists/{other_list}/tasks")),
            &o.owner.token,
            json!({"title": "there", "label_ids": [label], "assignee_ids": [member.id]}),
        )
        .await
        .expect(201)
        .json);
    let view_of = |board: Uuid| url(o.org, &format!("/boards/{board}"));
    let read = |board: Uuid| {
        let path = view_of(board);
        let app = &app;
        let token = o.owner.token.clone();
        async move { app.get(&path, &token).await.expect(200).json }
    };
    let other_before = read(other).await;
    read(o.board).await;
    assert!(cached(&app, o.org, other).await && cached(&app, o.org, o.board).await);

    // A task, a comment and a list on the first board: the other stays.
    let task = new_task(&app, &o, "here").await;
    app.post(
        &url(o.org, &format!("/tasks/{}/comments", id(&task))),
        &o.owner.token,
        json!({"body": "hi"}),
    )
    .await
    .expect(201);
    app.post(
        &url(o.org, &format!("/boards/{}/lists", o.board)),
        &o.owner.token,
        json!({"name": "More"}),
    )
    .await
    .expect(201);
    assert!(!cached(&app, o.org, o.board).await, "its own view went");
    assert!(cached(&app, o.org, other).await, "the other board's stayed");
    assert_eq!(read(other).await, other_before);
    let mine = read(o.board).await;
    assert_eq!(mine["lists"][0]["tasks"][0]["comment_count"], 1);
    assert_eq!(mine["lists"].as_array().unwrap().len(), 2);

    // A change of the other board's task invalidates that board only.
    app.patch(
        &url(o.org, &format!("/tasks/{on_other}")),
        &o.owner.token,
        json!({"title": "renamed"}),
    )
    .await
    .expect(200);
    assert!(cached(&app, o.org, o.board).await);
    assert_eq!(
        read(other).await["lists"][0]["tasks"][0]["title"],
        "renamed"
    );

    // Deleting the label or removing the member changes tasks on any board.
    app.delete(&url(o.org, &format!("/labels/{label}")), &o.owner.token)
        .await
        .expect(204);
    assert!(!cached(&app, o.org, other).await && !cached(&app, o.org, o.board).await);
    assert_eq!(
        read(other).await["lists"][0]["tasks"][0]["label_ids"],
        json!([])
    );
    read(o.board).await;
    app.delete(
        &url(o.org, &format!("/members/{}", member.id)),
        &o.owner.token,
    )
    .await
    .expect(204);
    assert!(!cached(&app, o.org, other).await && !cached(&app, o.org, o.board).await);
    assert_eq!(
        read(other).await["lists"][0]["tasks"][0]["assignee_ids"],
        json!([])
    );
}

/// Whether the cache holds this board view for the current version.
async fn cached(app: &TestApp, org: Uuid, board: Uuid) -> bool {
    let cache = &app.state.live.cache;
    let v = cache.version(org, board).await.unwrap();
    cache
        .get(org, board, orgboard::boards::view::DEFAULT_PER_LIST, v)
        .await
        .is_some()
}
