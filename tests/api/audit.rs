//! The audit log: admin+ only, newest first, filters, keyset pagination with
//! cursors bound to their organization, nothing logged for refused requests,
//! and append-only storage.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::{TestApp, TestUser};
use axum::body::Body;
use axum::http::{Method, Request};
use chrono::{DateTime, SecondsFormat, Utc};
use orgboard::db::Scope;
use serde_json::{Value, json};
use uuid::Uuid;

backend_tests!(
    audit_log_is_for_admins_and_owners,
    newest_first_with_actor_entity_payload_and_request_id,
    filters_by_actor_action_and_entity,
    filters_by_time,
    pages_by_keyset_completely_without_repeats,
    pages_by_entity_type_alone_are_the_log_filtered,
    cursors_are_bound_to_their_org_and_limits_are_checked,
    bad_filters_are_refused,
    refused_requests_write_no_audit_row,
    audit_rows_cannot_be_changed_or_deleted,
    a_page_that_matches_nothing_is_empty_for_admins_only,
);

fn log_path(org: Uuid) -> String {
    format!("/api/v1/orgs/{org}/audit-log")
}

async fn items(app: &TestApp, path: &str, by: &TestUser) -> Vec<Value> {
    app.get(path, &by.token).await.expect(200).json["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn actions(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

async fn pause() {
    tokio::time::sleep(Duration::from_millis(15)).await;
}

async fn rename(app: &TestApp, org: Uuid, by: &TestUser, name: &str) -> crate::common::Resp {
    app.patch(
        &format!("/api/v1/orgs/{org}"),
        &by.token,
        json!({"name": name}),
    )
    .await
    .expect(200)
}

async fn audit_log_is_for_admins_and_owners(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let member = app.member(org, &ada, "member").await;
    let viewer = app.member(org, &ada, "viewer").await;
    let outsider = app.signup("eve").await;
    let count = app.audit_count(org).await;
    assert!(count > 0);

    let by_owner = items(&app, &log_path(org), &ada).await;
    let by_admin = items(&app, &log_path(org), &admin).await;
    assert_eq!(by_owner.len() as i64, count);
    assert_eq!(by_owner, by_admin);
    for u in [&member, &viewer] {
        app.get(&log_path(org), &u.token)
            .await
            .expect_problem(403, "forbidden");
        app.get(&format!("{}?action=org.created", log_path(org)), &u.token)
            .await
            .expect_problem(403, "forbidden");
    }
    app.get(&log_path(org), &outsider.token)
        .await
        .expect_problem(404, "not_found");
    // Reading writes nothing.
    assert_eq!(app.audit_count(org).await, count);
}

async fn newest_first_with_actor_entity_payload_and_request_id(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let inv = app
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &ada.token,
            json!({"email": "bob@example.com", "role": "member"}),
        )
        .await
        .expect(201);
    let patched = rename(&app, org, &ada, "Acme Two").await;
    let request_id = patched.headers["x-request-id"].to_str().unwrap().to_owned();
    assert!(!request_id.is_empty());

    let log = items(&app, &log_path(org), &ada).await;
    assert_eq!(
        actions(&log),
        [
            "org.updated",
            "invite.created",
            "member.joined",
            "org.created"
        ]
    );
    let ids: Vec<Uuid> = log
        .iter()
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "ids descending: {ids:?}"
    );
    let times: Vec<DateTime<Utc>> = log
        .iter()
        .map(|e| e["created_at"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "times descending: {times:?}"
    );

    let updated = &log[0];
    assert_eq!(updated["org_id"], org.to_string());
    assert_eq!(updated["actor_id"], ada.id.to_string());
    assert_eq!(updated["entity_type"], "organization");
    assert_eq!(updated["entity_id"], org.to_string());
    assert_eq!(
        updated["payload"],
        json!({"name": {"from": "Acme", "to": "Acme Two"}})
    );
    assert_eq!(
        updated["request_id"],
        request_id.as_str(),
        "the request that made it"
    );
    let invited = &log[1];
    assert_eq!(invited["entity_type"], "invite");
    assert_eq!(invited["entity_id"], inv.json["id"]);
    assert_eq!(
        invited["request_id"],
        inv.headers["x-request-id"].to_str().unwrap(),
        "each row carries its own request id"
    );
    assert_ne!(invited["request_id"], updated["request_id"]);

    // A request id given by the client is the one recorded.
    let req = Request::builder()
        .method(Method::PATCH)
        .uri(format!("/api/v1/orgs/{org}"))
        .header("authorization", format!("Bearer {}", ada.token))
        .header("content-type", "application/json")
        .header("x-request-id", "my-trace-123")
        .body(Body::from(r#"{"name":"Acme Three"}"#))
        .unwrap();
    let r = app.send(req).await.expect(200);
    assert_eq!(r.headers["x-request-id"], "my-trace-123");
    let log = items(&app, &format!("{}?limit=1", log_path(org)), &ada).await;
    assert_eq!(log[0]["request_id"], "my-trace-123");
    assert_eq!(log[0]["payload"]["name"]["to"], "Acme Three");
}

async fn filters_by_actor_action_and_entity(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.member(org, &ada, "admin").await; // invite.created (ada), invite.accepted + member.joined (bob)
    let carol = app.member(org, &ada, "member").await;
    rename(&app, org, &bob, "By Bob").await;
    app.patch(
        &format!("/api/v1/orgs/{org}/members/{}", carol.id),
        &bob.token,
        json!({"role": "viewer"}),
    )
    .await
    .expect(200);
    // Rows in another org never show up.
    let other = app.create_org(&ada, "Other").await;
    app.join(other, &ada, &bob, "admin").await;
    rename(&app, other, &bob, "Other By Bob").await;

    let all = items(&app, &format!("{}?limit=200", log_path(org)), &ada).await;
    assert_eq!(all.len() as i64, app.audit_count(org).await);
    assert!(all.iter().all(|e| e["org_id"] == org.to_string()));
    let check = |filtered: &[Value], pred: &dyn Fn(&Value) -> bool| {
        let expected: Vec<&Value> = all.iter().filter(|e| pred(e)).collect();
        assert!(!expected.is_empty());
        assert_eq!(filtered.iter().collect::<Vec<_>>(), expected);
    };

    let by_bob = items(
        &app,
        &format!("{}?actor_id={}", log_path(org), bob.id),
        &ada,
    )
    .await;
    assert_eq!(
        actions(&by_bob),
        [
            "member.role_changed",
            "org.updated",
            "member.joined",
            "invite.accepted"
        ]
    );
    check(&by_bob, &|e| e["actor_id"] == bob.id.to_string());

    let renames = items(&app, &format!("{}?action=org.updated", log_path(org)), &ada).await;
    assert_eq!(renames.len(), 1);
    assert_eq!(renames[0]["payload"]["name"]["to"], "By Bob");
    check(&renames, &|e| e["action"] == "org.updated");

    let invites = items(&app, &format!("{}?entity_type=invite", log_path(org)), &ada).await;
    assert_eq!(
        actions(&invites),
        [
            "invite.accepted",
            "invite.created",
            "invite.accepted",
            "invite.created"
        ]
    );
    check(&invites, &|e| e["entity_type"] == "invite");

    let about_carol = items(
        &app,
        &format!("{}?entity_id={}", log_path(org), carol.id),
        &ada,
    )
    .await;
    assert_eq!(
        actions(&about_carol),
        ["member.role_changed", "member.joined"]
    );
    check(&about_carol, &|e| e["entity_id"] == carol.id.to_string());

    // Filters combine (AND).
    let combined = items(
        &app,
        &format!(
            "{}?actor_id={}&entity_type=membership&action=member.joined",
            log_path(org),
            bob.id
        ),
        &ada,
    )
    .await;
    assert_eq!(combined.len(), 1);
    assert_eq!(combined[0]["entity_id"], bob.id.to_string());
    let none = items(
        &app,
        &format!("{}?actor_id={}&action=org.created", log_path(org), bob.id),
        &ada,
    )
    .await;
    assert!(none.is_empty());
    for q in [
        "action=task.created".to_owned(),
        "entity_type=board".to_owned(),
        format!("actor_id={}", Uuid::now_v7()),
        format!("entity_id={}", Uuid::now_v7()),
        // An entity of the other org is not found through this one.
        format!("entity_id={other}"),
    ] {
        let r = app
            .get(&format!("{}?{q}", log_path(org)), &ada.token)
            .await
            .expect(200);
        assert!(
            r.json["items"].as_array().unwrap().is_empty(),
            "{q}: {}",
            r.text
        );
        assert!(r.json["next_cursor"].is_null());
    }
}

async fn filters_by_time(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    pause().await;
    let t0 = Utc::now();
    pause().await;
    rename(&app, org, &ada, "First").await;
    pause().await;
    let t1 = Utc::now();
    pause().await;
    rename(&app, org, &ada, "Second").await;
    rename(&app, org, &ada, "Third").await;
    pause().await;
    let t2 = Utc::now();

    let names = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|e| {
                e["payload"]["name"]["to"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| e["action"].as_str().unwrap().to_owned())
            })
            .collect()
    };
    let q = |params: String| format!("{}?{params}", log_path(org));

    let since_t1 = items(&app, &q(format!("since={}", rfc3339(t1))), &ada).await;
    assert_eq!(names(&since_t1), ["Third", "Second"]);
    let until_t1 = items(&app, &q(format!("until={}", rfc3339(t1))), &ada).await;
    assert_eq!(names(&until_t1), ["First", "member.joined", "org.created"]);
    let between = items(
        &app,
        &q(format!("since={}&until={}", rfc3339(t0), rfc3339(t1))),
        &ada,
    )
    .await;
    assert_eq!(names(&between), ["First"]);
    assert!(
        items(&app, &q(format!("since={}", rfc3339(t2))), &ada)
            .await
            .is_empty()
    );
    assert!(
        items(
            &app,
            &q(format!(
                "until={}",
                rfc3339(t0 - chrono::Duration::hours(1))
            )),
            &ada
        )
        .await
        .is_empty()
    );
    // With the combined filters too.
    let renamed_since = items(
        &app,
        &q(format!("action=org.updated&since={}", rfc3339(t0))),
        &ada,
    )
    .await;
    assert_eq!(names(&renamed_since), ["Third", "Second", "First"]);

    // `since` is inclusive, `until` exclusive: a row's own time bounds it.
    let second_at = since_t1[1]["created_at"].as_str().unwrap();
    let at: DateTime<Utc> = second_at.parse().unwrap();
    let from_second = items(&app, &q(format!("since={}", rfc3339(at))), &ada).await;
    assert_eq!(names(&from_second), ["Third", "Second"]);
    let before_second = items(
        &app,
        &q(format!("since={}&until={}", rfc3339(t1), rfc3339(at))),
        &ada,
    )
    .await;
    assert!(before_second.is_empty(), "{before_second:?}");

    // Any offset is accepted (percent-encoded `+`), meaning the same instant.
    let t1_plus2 = t1
        .with_timezone(&chrono::FixedOffset::east_opt(2 * 3600).unwrap())
        .to_rfc3339_opts(SecondsFormat::Micros, false)
        .replace('+', "%2B");
    let since_plus2 = items(&app, &q(format!("since={t1_plus2}")), &ada).await;
    assert_eq!(names(&since_plus2), ["Third", "Second"]);
    // Second precision works too.
    let t_later = (t2 + chrono::Duration::seconds(2)).to_rfc3339_opts(SecondsFormat::Secs, true);
    assert!(
        items(&app, &q(format!("since={t_later}")), &ada)
            .await
            .is_empty()
    );
    assert_eq!(
        items(&app, &q(format!("until={t_later}")), &ada)
            .await
            .len(),
        5
    );
}

async fn collect(app: &TestApp, by: &TestUser, base: &str, limit: u32) -> (Vec<String>, usize) {
    let sep = if base.contains('?') { '&' } else { '?' };
    let first = format!("{base}{sep}limit={limit}");
    let mut path = first.clone();
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let r = app.get(&path, &by.token).await.expect(200);
        pages += 1;
        let page = r.json["items"].as_array().unwrap();
        assert!(page.len() <= limit as usize);
        ids.extend(page.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        match r.json["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page.len(), limit as usize, "only the last page is short");
                path = format!("{first}&cursor={c}");
            }
            None => break,
        }
        assert!(pages < 50, "pagination does not end");
    }
    (ids, pages)
}

/// A type alone is read by merging its actions' newest rows (not by
/// walking the log): page after page, with the other filters and cursors,
/// it is exactly the whole log filtered by type, in the log's order — for
/// types of one action and of several, types with no row, and a type that
/// does not exist.
async fn pages_by_entity_type_alone_are_the_log_filtered(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.member(org, &ada, "admin").await;
    // Another organization's rows of the same types, newer than some of
    // this one's: never on this one's pages.
    let eve = app.signup("eve").await;
    let other = app.create_org(&eve, "Other").await;
    let other_tasks = app.new_list(&eve, other).await;
    let tasks = app.new_list(&ada, org).await;
    let labels = format!("/api/v1/orgs/{org}/labels");
    let mut made = Vec::new();
    let mut middle = None;
    for i in 0..6 {
        let by = if i % 2 == 0 { &ada } else { &bob };
        let label = app
            .post(
                &labels,
                &by.token,
                json!({ "name": format!("l{i}"), "color": "#336699" }),
            )
            .await
            .expect(201);
        let id = label.json["id"].as_str().unwrap().to_owned();
        let task = app
            .post(&tasks, &by.token, json!({ "title": format!("t{i}") }))
            .await
            .expect(201);
        app.patch(
            &format!("/api/v1/orgs/{org}/labels/{id}"),
            &by.token,
            json!({ "name": format!("renamed {i}") }),
        )
        .await
        .expect(200);
        app.patch(
            &format!(
                "/api/v1/orgs/{org}/tasks/{}",
                task.json["id"].as_str().unwrap()
            ),
            &by.token,
            json!({ "title": format!("t{i}, again") }),
        )
        .await
        .expect(200);
        made.push(id);
        app.post(
            &format!("/api/v1/orgs/{other}/labels"),
            &eve.token,
            json!({ "name": format!("o{i}"), "color": "#336699" }),
        )
        .await
        .expect(201);
        app.post(
            &other_tasks,
            &eve.token,
            json!({ "title": format!("o{i}") }),
        )
        .await
        .expect(201);
        if i == 2 {
            pause().await;
            middle = Some(Utc::now());
            pause().await;
        }
    }
    app.delete(&format!("{labels}/{}", made[0]), &bob.token)
        .await
        .expect(204);
    let all = items(&app, &format!("{}?limit=200", log_path(org)), &ada).await;
    let at = |e: &Value| {
        DateTime::parse_from_rfc3339(e["created_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    let t = middle.unwrap();
    let middle = rfc3339(t);
    for entity in [
        "label",
        "task",
        "board",
        "list",
        "membership",
        "organization",
        "comment",
        "invite",
        "no-such-type",
    ] {
        for (filter, keep) in [
            (
                String::new(),
                Box::new(|_: &Value| true) as Box<dyn Fn(&Value) -> bool>,
            ),
            (
                format!("&actor_id={}", bob.id),
                Box::new(|e: &Value| e["actor_id"] == bob.id.to_string()),
            ),
            (format!("&since={middle}"), Box::new(|e: &Value| at(e) >= t)),
            (
                format!("&until={middle}&actor_id={}", ada.id),
                Box::new(|e: &Value| at(e) < t && e["actor_id"] == ada.id.to_string()),
            ),
        ] {
            let expected: Vec<String> = all
                .iter()
                .filter(|e| e["entity_type"] == entity && keep(e))
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect();
            for limit in [1, 2, 5, 200] {
                let (ids, _) = collect(
                    &app,
                    &ada,
                    &format!("{}?entity_type={entity}{filter}", log_path(org)),
                    limit,
                )
                .await;
                assert_eq!(ids, expected, "{entity}{filter}, limit {limit}");
            }
        }
    }
    // What the loop relies on: types with rows of several actions.
    let of = |t: &str| all.iter().filter(|e| e["entity_type"] == t).count();
    assert_eq!(of("label"), 13);
    assert_eq!(of("task"), 12);
}

async fn pages_by_keyset_completely_without_repeats(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await; // 2 rows
    for i in 0..8 {
        rename(&app, org, &ada, &format!("Name {i}")).await; // 8 rows
    }
    let all = items(&app, &format!("{}?limit=200", log_path(org)), &ada).await;
    assert_eq!(all.len(), 10);
    let all_ids: Vec<String> = all
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();

    for (limit, pages) in [(3, 4), (5, 2), (1, 10), (10, 1), (200, 1)] {
        let (ids, n) = collect(&app, &ada, &log_path(org), limit).await;
        assert_eq!(ids, all_ids, "limit {limit}");
        assert_eq!(n, pages, "limit {limit}");
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "no repeats");
    }
    // The default page holds everything here (default 50).
    let r = app.get(&log_path(org), &ada.token).await.expect(200);
    assert_eq!(r.json["items"].as_array().unwrap().len(), 10);
    assert!(r.json["next_cursor"].is_null());

    // Pagination keeps the filter.
    let (ids, n) = collect(
        &app,
        &ada,
        &format!("{}?action=org.updated", log_path(org)),
        3,
    )
    .await;
    assert_eq!(n, 3);
    let expected: Vec<String> = all
        .iter()
        .filter(|e| e["action"] == "org.updated")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, expected);

    // Rows added while paging appear on a new first page, not as repeats.
    let first = app
        .get(&format!("{}?limit=4", log_path(org)), &ada.token)
        .await
        .expect(200);
    let cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    rename(&app, org, &ada, "Meanwhile").await;
    let second = app
        .get(
            &format!("{}?limit=4&cursor={cursor}", log_path(org)),
            &ada.token,
        )
        .await
        .expect(200);
    let second_ids: Vec<&str> = second.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        second_ids,
        all_ids[4..8].iter().map(String::as_str).collect::<Vec<_>>()
    );
}

async fn cursors_are_bound_to_their_org_and_limits_are_checked(app: TestApp) {
    let ada = app.signup("ada").await;
    let a = app.create_org(&ada, "A").await;
    let b = app.create_org(&ada, "B").await;
    for i in 0..3 {
        rename(&app, a, &ada, &format!("A{i}")).await;
        rename(&app, b, &ada, &format!("B{i}")).await;
    }
    let r = app
        .get(&format!("{}?limit=2", log_path(a)), &ada.token)
        .await
        .expect(200);
    let cursor = r.json["next_cursor"].as_str().unwrap().to_owned();
    app.get(
        &format!("{}?limit=2&cursor={cursor}", log_path(a)),
        &ada.token,
    )
    .await
    .expect(200);
    // Org A's cursor on org B: refused, even for someone admin of both.
    app.get(
        &format!("{}?limit=2&cursor={cursor}", log_path(b)),
        &ada.token,
    )
    .await
    .expect_problem(400, "invalid_cursor");
    // A cursor of another collection (my orgs) is refused too.
    let orgs = app
        .get("/api/v1/orgs?limit=1", &ada.token)
        .await
        .expect(200);
    let orgs_cursor = orgs.json["next_cursor"].as_str().unwrap();
    app.get(&format!("{}?cursor={orgs_cursor}", log_path(a)), &ada.token)
        .await
        .expect_problem(400, "invalid_cursor");
    // Forged or altered.
    let mut altered = cursor.clone().into_bytes();
    let mid = altered.len() / 3;
    altered[mid] = if altered[mid] == b'x' { b'y' } else { b'x' };
    let altered = String::from_utf8(altered).unwrap();
    for c in ["nope", "a.b", &altered, &"A".repeat(1100)] {
        app.get(&format!("{}?cursor={c}", log_path(a)), &ada.token)
            .await
            .expect_problem(400, "invalid_cursor");
    }
    for limit in ["0", "201"] {
        let r = app
            .get(&format!("{}?limit={limit}", log_path(a)), &ada.token)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.json["errors"][0]["field"], "limit");
    }
    for limit in ["-1", "abc"] {
        app.get(&format!("{}?limit={limit}", log_path(a)), &ada.token)
            .await
            .expect_problem(400, "invalid_query");
    }
}

async fn bad_filters_are_refused(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    for q in [
        "since=yesterday",
        "until=2024-13-01T00:00:00Z",
        "since=2024-01-01",
        "actor_id=not-a-uuid",
        "entity_id=42",
    ] {
        app.get(&format!("{}?{q}", log_path(org)), &ada.token)
            .await
            .expect_problem(400, "invalid_query");
    }
    let long = "x".repeat(65);
    for field in ["action", "entity_type"] {
        let r = app
            .get(&format!("{}?{field}={long}", log_path(org)), &ada.token)
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(r.json["errors"][0]["field"], field);
    }
    // The bound is 64 characters, as documented (`maxLength: 64`), not 64
    // bytes: schemathesis found 64 four-byte characters refused.
    let wide = "%F0%9D%95%8B".repeat(64);
    let wider = "%F0%9D%95%8B".repeat(65);
    for field in ["action", "entity_type"] {
        app.get(&format!("{}?{field}={wide}", log_path(org)), &ada.token)
            .await
            .expect(200);
        app.get(&format!("{}?{field}={wider}", log_path(org)), &ada.token)
            .await
            .expect_problem(422, "validation_failed");
    }
}

async fn refused_requests_write_no_audit_row(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let admin = app.member(org, &ada, "admin").await;
    let member = app.member(org, &ada, "member").await;
    let bob = app.signup("bob").await;
    let pending = app
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &ada.token,
            json!({"email": bob.email, "role": "member"}),
        )
        .await
        .expect(201);
    let token = pending.json["token"].as_str().unwrap().to_owned();
    let eve = app.signup("eve").await;
    let count = app.audit_count(org).await;
    let org_path = format!("/api/v1/orgs/{org}");
    let members = |u: &TestUser| format!("/api/v1/orgs/{org}/members/{}", u.id);

    // 403s
    app.patch(&org_path, &member.token, json!({"name": "No"}))
        .await
        .expect_problem(403, "forbidden");
    app.delete(&org_path, &admin.token)
        .await
        .expect_problem(403, "forbidden");
    app.patch(&members(&member), &admin.token, json!({"role": "owner"}))
        .await
        .expect_problem(403, "forbidden");
    app.delete(&members(&ada), &admin.token)
        .await
        .expect_problem(403, "forbidden");
    app.post(
        &format!("/api/v1/orgs/{org}/invites"),
        &member.token,
        json!({"email": "x@example.com", "role": "member"}),
    )
    .await
    .expect_problem(403, "forbidden");
    app.post(
        "/api/v1/invites/accept",
        &eve.token,
        json!({"token": token}),
    )
    .await
    .expect_problem(403, "invite_email_mismatch");
    // 422s
    app.patch(&org_path, &ada.token, json!({"name": ""}))
        .await
        .expect_problem(422, "validation_failed");
    app.patch(
        &org_path,
        &ada.token,
        json!({"name": "Fine", "slug": "Not OK"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    app.post(
        &format!("/api/v1/orgs/{org}/invites"),
        &ada.token,
        json!({"email": "nope", "role": "member"}),
    )
    .await
    .expect_problem(422, "validation_failed");
    // 409s
    app.patch(&members(&ada), &ada.token, json!({"role": "admin"}))
        .await
        .expect_problem(409, "last_owner");
    app.delete(&members(&ada), &ada.token)
        .await
        .expect_problem(409, "last_owner");
    app.post(
        &format!("/api/v1/orgs/{org}/invites"),
        &ada.token,
        json!({"email": bob.email, "role": "admin"}),
    )
    .await
    .expect_problem(409, "invite_pending");
    let taken = app.signup("taken").await;
    let taken_slug = app.slug(taken.personal_org, &taken).await;
    app.patch(
        &org_path,
        &ada.token,
        json!({"name": "Renamed", "slug": taken_slug}),
    )
    .await
    .expect_problem(409, "slug_taken");
    // 404s
    app.delete(
        &format!("/api/v1/orgs/{org}/invites/{}", Uuid::now_v7()),
        &ada.token,
    )
    .await
    .expect_problem(404, "not_found");
    app.patch(&org_path, &eve.token, json!({"name": "Mine"}))
        .await
        .expect_problem(404, "not_found");

    assert_eq!(app.audit_count(org).await, count, "refusals log nothing");
    let r = app.get(&org_path, &ada.token).await.expect(200);
    assert_eq!(r.json["name"], "Acme");

    // A change that goes through is logged (so the count above can move).
    app.post(
        "/api/v1/invites/accept",
        &bob.token,
        json!({"token": token}),
    )
    .await
    .expect(200);
    assert_eq!(
        app.audit_count(org).await,
        count + 2,
        "invite.accepted + member.joined"
    );
}

async fn audit_rows_cannot_be_changed_or_deleted(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let count = app.audit_count(org).await;
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        app.call(m, &log_path(org), Some(&ada.token), Some(json!({})))
            .await
            .expect_problem(405, "method_not_allowed");
    }
    let id = items(&app, &log_path(org), &ada).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.delete(&format!("{}/{id}", log_path(org)), &ada.token)
        .await
        .expect_problem(404, "route_not_found");

    // The database refuses it too, for the role requests run as.
    let mut statements = vec![
        "UPDATE audit_log SET action = 'forged' WHERE org_id = $1",
        "DELETE FROM audit_log WHERE org_id = $1",
    ];
    if app.backend == orgboard::db::Backend::Postgres {
        statements.push("TRUNCATE audit_log");
    }
    for sql in statements {
        let mut tx = app
            .state
            .db
            .write(Scope::tenant(ada.id, org))
            .await
            .unwrap();
        let res = orgboard::on_tx!(&mut tx, |c| {
            let q = sqlx::query(sql);
            let q = if sql.contains("$1") { q.bind(org) } else { q };
            q.execute(c).await.map(|r| r.rows_affected())
        });
        assert!(res.is_err(), "{sql} was allowed: {res:?}");
        drop(tx);
    }
    assert_eq!(app.audit_count(org).await, count);
    let log = items(&app, &log_path(org), &ada).await;
    assert!(log.iter().all(|e| e["action"] != "forged"));
}

/// The page read with the membership in its own statement (PostgreSQL,
/// by id) and the ordinary path (by slug, and on SQLite) answer alike: an
/// empty page is `[]` with no cursor for an admin, `403` for a member or
/// viewer, `404` for a stranger; a cursor handed out on one path opens on
/// the other.
async fn a_page_that_matches_nothing_is_empty_for_admins_only(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme Empty").await;
    let admin = app.member(org, &ada, "admin").await;
    let member = app.member(org, &ada, "member").await;
    let viewer = app.member(org, &ada, "viewer").await;
    let stranger = app.signup("eve").await;
    let slug = app.slug(org, &ada).await;
    for base in [log_path(org), format!("/api/v1/orgs/{slug}/audit-log")] {
        // An action, a type read by its actions and an unknown type (which
        // reads no row at all).
        for filter in [
            "action=label.deleted",
            "entity_type=label",
            "entity_type=nope",
        ] {
            let none = format!("{base}?{filter}");
            for u in [&ada, &admin] {
                let page = app.get(&none, &u.token).await.expect(200);
                assert_eq!(
                    page.json,
                    json!({"items": [], "next_cursor": null}),
                    "{none}"
                );
            }
            for u in [&member, &viewer] {
                app.get(&none, &u.token)
                    .await
                    .expect_problem(403, "forbidden");
            }
            app.get(&none, &stranger.token)
                .await
                .expect_problem(404, "not_found");
        }
        // A bad query or cursor takes the path that enters first: the role
        // and the membership still answer before the query's own error.
        for bad in [
            "?limit=0",
            "?cursor=forged",
            "?action=label.deleted&cursor=forged",
        ] {
            let path = format!("{base}{bad}");
            app.get(&path, &viewer.token)
                .await
                .expect_problem(403, "forbidden");
            app.get(&path, &stranger.token)
                .await
                .expect_problem(404, "not_found");
        }
        app.get(&format!("{base}?limit=0"), &admin.token)
            .await
            .expect_problem(422, "validation_failed");
        app.get(&format!("{base}?cursor=forged"), &admin.token)
            .await
            .expect_problem(400, "invalid_cursor");
        // Something matches: the joined statement still reads it.
        let joined = items(&app, &format!("{base}?action=member.joined"), &admin).await;
        assert_eq!(
            joined.len(),
            4,
            "{base}: the owner and three members joined"
        );
    }
    // A cursor of a page read by id opens by slug and the other way round,
    // and the pages together are the whole log, newest first, once each.
    let all = items(&app, &format!("{}?limit=200", log_path(org)), &ada).await;
    assert!(all.len() >= 4);
    let first = app
        .get(&format!("{}?limit=2", log_path(org)), &ada.token)
        .await
        .expect(200);
    let cursor = first.json["next_cursor"].as_str().unwrap().to_owned();
    let second = app
        .get(
            &format!("/api/v1/orgs/{slug}/audit-log?limit=2&cursor={cursor}"),
            &ada.token,
        )
        .await
        .expect(200);
    let mut seen: Vec<Value> = first.json["items"].as_array().unwrap().clone();
    seen.extend(second.json["items"].as_array().unwrap().iter().cloned());
    assert_eq!(seen[..], all[..4]);
    let cursor = second.json["next_cursor"].as_str().unwrap().to_owned();
    let third = app
        .get(
            &format!("{}?limit=2&cursor={cursor}", log_path(org)),
            &ada.token,
        )
        .await
        .expect(200);
    assert_eq!(third.json["items"][0], all[4]);
}
