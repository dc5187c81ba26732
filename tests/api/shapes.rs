//! Response shapes: one walk through the API — sign-up, organizations,
//! invites, members, boards, lists, labels, tasks, comments, the board
//! view, filtered pages, the audit log and problem answers — with every
//! answer kept in one insta snapshot. Both backends compare against the
//! **same** snapshot, so a field, a type or an order that differs between
//! SQLite and PostgreSQL fails here, as does any change of shape.
//!
//! Ids, times, tokens, cursors and request ids change from run to run and
//! are redacted by [`redact`]: a UUID becomes `[uuid]`, an RFC 3339 time
//! `[time]`, the value of a key ending in `token` `[token]`, of
//! `next_cursor` `[cursor]`, of `request_id` `[request-id]`, and an order
//! key with a fraction under `position` (also an audit entry's `from`/`to`
//! of it) `[position]`: a created task's key ends with a random tie-break
//! (`orgboard::domain::ordering::key_after_last`), and the fractions of
//! keys made between such keys come from it. Everything else (names, keys
//! without a fraction, versions, counts, roles, statuses, the order of
//! items) is deterministic on a fresh database and kept as is.

use axum::http::Method;
use serde_json::{Map, Value, json};

use crate::common::{PASSWORD, TestApp};

backend_tests!(responses_keep_their_shape);

/// `v` with its run-dependent values replaced by placeholders.
fn redact(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), &v) {
                        (k, Value::String(_)) if k.ends_with("token") => json!("[token]"),
                        ("next_cursor", Value::String(_)) => json!("[cursor]"),
                        ("request_id", Value::String(_)) => json!("[request-id]"),
                        ("position", _) => positions(v),
                        _ => redact(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(redact).collect()),
        Value::String(s) if uuid::Uuid::try_parse(&s).is_ok() => json!("[uuid]"),
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(&s).is_ok() => json!("[time]"),
        other => other,
    }
}

/// `v` (a `position` value) with every order key in it that has a
/// fraction (more than the integer part its head announces) `[position]`.
fn positions(v: Value) -> Value {
    let int_len = |h: u8| match h {
        b'a'..=b'z' => usize::from(h - b'a') + 2,
        b'A'..=b'Z' => usize::from(b'Z' - h) + 2,
        _ => 0,
    };
    match v {
        Value::String(s) if s.len() > s.bytes().next().map_or(0, int_len) => json!("[position]"),
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, positions(v))).collect()),
        other => other,
    }
}

/// Answers in the order they were asked for, keyed `NN method path`.
struct Walk<'a> {
    app: &'a TestApp,
    seen: Map<String, Value>,
}

impl Walk<'_> {
    /// Sends a request, checks its status, keeps its redacted answer.
    async fn step(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        status: u16,
        name: &str,
    ) -> Value {
        let r = self
            .app
            .call(method.clone(), path, token, body)
            .await
            .expect(status);
        let key = format!("{:02} {method} {name}", self.seen.len() + 1);
        let shown = json!({ "status": status, "body": redact(r.json.clone()) });
        self.seen.insert(key, shown);
        r.json
    }
}

impl Walk<'_> {
    /// A `GET` answered `200`.
    async fn get(&mut self, path: &str, token: Option<&str>, name: &str) -> Value {
        self.step(Method::GET, path, token, None, 200, name).await
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

async fn responses_keep_their_shape(app: TestApp) {
    let mut w = Walk {
        app: &app,
        seen: Map::new(),
    };
    let signup = json!({ "email": "ada@example.com", "password": PASSWORD, "name": "Ada" });
    let ada = w
        .step(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(signup),
            201,
            "signup",
        )
        .await;
    let t = ada["access_token"].as_str().unwrap().to_owned();
    let t = Some(t.as_str());
    w.get("/api/v1/me", t, "me").await;
    let org = w
        .step(
            Method::POST,
            "/api/v1/orgs",
            t,
            Some(json!({ "name": "Acme", "slug": "acme" })),
            201,
            "orgs",
        )
        .await;
    let o = format!("/api/v1/orgs/{}", id(&org));
    w.step(
        Method::PATCH,
        &o,
        t,
        Some(json!({ "name": "Acme Inc" })),
        200,
        "orgs/{org}",
    )
    .await;
    w.get("/api/v1/orgs", t, "orgs").await;
    let invite = w
        .step(
            Method::POST,
            &format!("{o}/invites"),
            t,
            Some(json!({ "email": "bob@example.com", "role": "member" })),
            201,
            "invites",
        )
        .await;
    w.get(&format!("{o}/invites"), t, "invites").await;
    let signup = json!({ "email": "bob@example.com", "password": PASSWORD, "name": "Bob" });
    let bob = w
        .step(
            Method::POST,
            "/api/v1/auth/signup",
            None,
            Some(signup),
            201,
            "signup",
        )
        .await;
    let bt = bob["access_token"].as_str().unwrap().to_owned();
    let bt = Some(bt.as_str());
    w.step(
        Method::POST,
        "/api/v1/invites/accept",
        bt,
        Some(json!({ "token": invite["token"] })),
        200,
        "invites/accept",
    )
    .await;
    w.get(&format!("{o}/members"), t, "members").await;
    let board = w
        .step(
            Method::POST,
            &format!("{o}/boards"),
            t,
            Some(json!({ "name": "Roadmap", "description": "This quarter" })),
            201,
            "boards",
        )
        .await;
    let b = format!("{o}/boards/{}", id(&board));
    let todo = w
        .step(
            Method::POST,
            &format!("{b}/lists"),
            t,
            Some(json!({ "name": "To do" })),
            201,
            "boards/{board}/lists",
        )
        .await;
    let done = w
        .step(
            Method::POST,
            &format!("{b}/lists"),
            t,
            Some(json!({ "name": "Done" })),
            201,
            "boards/{board}/lists",
        )
        .await;
    let label = w
        .step(
            Method::POST,
            &format!("{o}/labels"),
            t,
            Some(json!({ "name": "bug", "color": "#cc0000" })),
            201,
            "labels",
        )
        .await;
    let task = w
        .step(
            Method::POST,
            &format!("{o}/lists/{}/tasks", id(&todo)),
            t,
            Some(json!({
                "title": "Ship it", "description": "All of it", "priority": "high",
                "assignee_ids": [bob["user"]["id"]], "label_ids": [label["id"]],
                "due_date": "2030-01-02T03:04:05Z",
            })),
            201,
            "lists/{list}/tasks",
        )
        .await;
    let k = format!("{o}/tasks/{}", id(&task));
    w.step(
        Method::PATCH,
        &k,
        t,
        Some(json!({ "status": "in_progress", "title": "Ship it now" })),
        200,
        "tasks/{task}",
    )
    .await;
    w.step(
        Method::POST,
        &format!("{k}/move"),
        t,
        Some(json!({ "list_id": done["id"] })),
        200,
        "tasks/{task}/move",
    )
    .await;
    let comment = w
        .step(
            Method::POST,
            &format!("{k}/comments"),
            bt,
            Some(json!({ "body": "On it." })),
            201,
            "tasks/{task}/comments",
        )
        .await;
    w.step(
        Method::PATCH,
        &format!("{o}/comments/{}", id(&comment)),
        bt,
        Some(json!({ "body": "On it!" })),
        200,
        "comments/{comment}",
    )
    .await;
    w.get(&k, t, "tasks/{task}").await;
    w.get(&format!("{k}/comments"), t, "tasks/{task}/comments")
        .await;
    w.get(
        &format!("{o}/tasks?status=in_progress&limit=1"),
        t,
        "tasks?status",
    )
    .await;
    w.get(&b, t, "boards/{board}").await;
    w.get(&format!("{o}/boards"), t, "boards").await;
    w.get(&format!("{o}/audit-log?limit=5"), t, "audit-log")
        .await;
    // Problems: unknown, refused, invalid.
    w.step(
        Method::GET,
        &format!("{o}/tasks/{}", uuid::Uuid::nil()),
        t,
        None,
        404,
        "tasks/{unknown}",
    )
    .await;
    w.step(
        Method::POST,
        &format!("{o}/boards"),
        bt,
        Some(json!({ "name": "Mine" })),
        403,
        "boards (member)",
    )
    .await;
    w.step(
        Method::POST,
        &format!("{o}/lists/{}/tasks", id(&todo)),
        t,
        Some(json!({ "title": "", "priority": "someday" })),
        422,
        "lists/{list}/tasks (invalid)",
    )
    .await;
    insta::assert_json_snapshot!("response_shapes", Value::Object(w.seen));
}
