//! Storage guarantees: row-level security on PostgreSQL (checked in the
//! catalog and by queries that forget their `org_id` filter), the append-only
//! audit log, migrations that stay in step across backends, SQLite settings
//! and locking, and the readiness check.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::{TestApp, TestUser};
use orgboard::db::uow::{Arg, Uow};
use orgboard::db::{Backend, Db, PG_MIGRATOR, SQLITE_MIGRATOR, Scope, Tx, TxConn};
use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, SqlitePool};
use uuid::Uuid;

backend_tests!(
    unit_of_work_statements_agree_on_every_executor,
    read_executors_agree_and_refuse_writes,
    audit_log_is_append_only,
    ready_checks_migrations,
    idempotency_key_of_another_org_is_another_request,
    kept_relation_ids_are_what_the_migration_computes,
    every_product_write_runs_as_a_unit_of_work,
);

/// Every write of the product — sign-up, sign-in, refresh, sign-out,
/// profile and password changes, reset links, organizations, invites,
/// members, boards to comments, account deletion, jobs, schedules, the
/// clean-up, the security log and the administrator's commands — runs as a
/// unit of work: on SQLite, as a job of the group-commit writer, never a
/// `db.write` transaction of sqlx's (whose count stays where it was). On
/// PostgreSQL the same flow runs (and must succeed) and there is no such
/// writer to count.
async fn every_product_write_runs_as_a_unit_of_work(app: TestApp) {
    let db = &app.state.db;
    let before = db.sqlite_sqlx_writes();
    assert_eq!(before.is_some(), app.backend == Backend::Sqlite);
    let a = app.signup("alice").await;
    let b = app.signup("bob").await;
    let login = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "email": a.email, "password": a.password })),
        )
        .await
        .expect(200);
    let refreshed = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": login.json["refresh_token"] })),
        )
        .await
        .expect(200);
    // The spent token again: its family is revoked (a write, then 401).
    app.call(
        axum::http::Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": login.json["refresh_token"] })),
    )
    .await
    .expect(401);
    app.call(
        axum::http::Method::POST,
        "/api/v1/auth/logout",
        None,
        Some(json!({ "refresh_token": refreshed.json["refresh_token"] })),
    )
    .await
    .expect(204);
    app.patch("/api/v1/me", &a.token, json!({ "name": "Alice A." }))
        .await
        .expect(200);
    app.post(
        "/api/v1/me/password",
        &a.token,
        json!({ "current_password": a.password, "new_password": "another password 2" }),
    )
    .await
    .expect(204);
    app.call(
        axum::http::Method::POST,
        "/api/v1/auth/password-reset",
        None,
        Some(json!({ "email": b.email })),
    )
    .await
    .expect(202);
    let org = app.create_org(&a, "Acme").await;
    app.patch(
        &format!("/api/v1/orgs/{org}"),
        &a.token,
        json!({ "name": "Acme Inc", "slug": format!("acme-{}", org.simple()) }),
    )
    .await
    .expect(200);
    let invite = app
        .post(
            &format!("/api/v1/orgs/{org}/invites"),
            &a.token,
            json!({ "email": "carol@example.com", "role": "member" }),
        )
        .await
        .expect(201);
    app.delete(
        &format!(
            "/api/v1/orgs/{org}/invites/{}",
            invite.json["id"].as_str().unwrap()
        ),
        &a.token,
    )
    .await
    .expect(204);
    app.join(org, &a, &b, "member").await;
    app.patch(
        &format!("/api/v1/orgs/{org}/members/{}", b.id),
        &a.token,
        json!({ "role": "admin" }),
    )
    .await
    .expect(200);
    let tasks = app.new_list(&a, org).await;
    let task = app
        .post(&tasks, &a.token, json!({ "title": "One" }))
        .await
        .expect(201);
    app.post(
        &format!(
            "/api/v1/orgs/{org}/tasks/{}/comments",
            task.json["id"].as_str().unwrap()
        ),
        &b.token,
        json!({ "body": "Hi" }),
    )
    .await
    .expect(201);
    app.delete(&format!("/api/v1/orgs/{org}/members/{}", b.id), &a.token)
        .await
        .expect(204);
    let gone = app.signup("dora").await;
    app.call(
        axum::http::Method::DELETE,
        "/api/v1/me",
        Some(&gone.token),
        Some(json!({ "password": gone.password })),
    )
    .await
    .expect(204);
    app.delete(&format!("/api/v1/orgs/{org}"), &a.token)
        .await
        .expect(204);
    // Jobs (the emails queued above), schedules, the clean-up.
    orgboard::jobs::run_due(&app.state).await.unwrap();
    let now = chrono::Utc::now();
    orgboard::jobs::run_schedules_at(&app.state, now)
        .await
        .unwrap();
    orgboard::jobs::run_due(&app.state).await.unwrap();
    orgboard::jobs::cleanup::cleanup_at(&app.state, now)
        .await
        .unwrap();
    // The administrator's commands.
    let hasher = &app.state.hasher;
    let url = "https://board.example";
    let zoe = format!("zoe-{}@example.com", Uuid::now_v7().simple());
    let made = orgboard::admin::create_user(db, hasher, url, &zoe, "Zoe", None)
        .await
        .unwrap();
    let link = orgboard::admin::reset_password(db, hasher, url, &zoe, None)
        .await
        .unwrap()
        .unwrap();
    let token = link.split("token=").nth(1).unwrap();
    app.call(
        axum::http::Method::POST,
        "/api/v1/auth/password-reset/confirm",
        None,
        Some(json!({ "token": token, "new_password": "chosen password 3" })),
    )
    .await
    .expect(204);
    orgboard::admin::reset_password(db, hasher, url, &zoe, Some("set password 44"))
        .await
        .unwrap();
    let personal = made.org_id.to_string();
    orgboard::admin::set_plan(db, &personal, "pro")
        .await
        .unwrap();
    orgboard::admin::set_suspended(db, &personal, true)
        .await
        .unwrap();
    orgboard::admin::requeue(db, None).await.unwrap();
    assert_eq!(
        db.sqlite_sqlx_writes(),
        before,
        "a product write opened a sqlx write transaction on SQLite"
    );
}

/// One user, one key, two organizations: the second use is another request
/// (its stored answer lives in the first organization, which row-level
/// security hides on PostgreSQL): `422`, never the first answer, never `500`.
async fn idempotency_key_of_another_org_is_another_request(app: TestApp) {
    use axum::body::Body;
    use axum::http::Request;
    let a = app.signup("alice").await;
    let one = app.create_org(&a, "One").await;
    let two = app.create_org(&a, "Two").await;
    let create = |org: Uuid| {
        Request::post(format!("/api/v1/orgs/{org}/boards"))
            .header("authorization", format!("Bearer {}", a.token))
            .header("content-type", "application/json")
            .header("idempotency-key", "same-key")
            .body(Body::from(json!({ "name": "Roadmap" }).to_string()))
            .unwrap()
    };
    let first = app.send(create(one)).await.expect(201);
    let replay = app.send(create(one)).await.expect(201);
    assert_eq!(first.json, replay.json);
    app.send(create(two))
        .await
        .expect_problem(422, "idempotency_key_reused");
}

/// The storage conformance test: the same statements, with every kind of
/// bound value (and typed NULLs), through every executor a use case can run
/// on — a sqlx transaction (both backends), on SQLite a job of the
/// group-commit writer, on PostgreSQL a unit over tokio-postgres — read
/// back through `Col` to the same values;
/// parameters named out of order; deferred writes visible to the next read
/// and kept in the order written.
async fn unit_of_work_statements_agree_on_every_executor(app: TestApp) {
    let db = &app.state.db;
    // Through a sqlx write transaction (PostgreSQL, or SQLite's `db.write`).
    let mut tx = db.write(Scope::system()).await.unwrap();
    conformance(&mut tx).await.unwrap();
    drop(tx);
    // Through the unit of work as the handlers run it: on SQLite a job of
    // the group-commit writer (rusqlite), on PostgreSQL a pipelined unit
    // (tokio-postgres, its own decoding of every type).
    let done: Result<&'static str, orgboard::error::ApiError> = async {
        orgboard::unit!(db, Scope::system(), |u| async move {
            conformance(u).await?;
            Ok::<_, orgboard::error::ApiError>(if db_is_sqlite(u) { "writer" } else { "tx" })
        })
    }
    .await;
    let via = done.unwrap();
    assert_eq!(via == "writer", app.backend == Backend::Sqlite);
}

fn db_is_sqlite<U: Uow>(u: &U) -> bool {
    u.backend() == Backend::Sqlite
}

async fn conformance<U: Uow>(u: &mut U) -> Result<(), orgboard::error::ApiError> {
    use chrono::{DateTime, Utc};
    let ddl = match u.backend() {
        Backend::Postgres => {
            "CREATE TEMP TABLE conf (n integer, u uuid, t text, s smallint, i integer, \
             b bigint, f boolean, ts timestamptz, j jsonb, y bytea, d date) ON COMMIT DROP"
        }
        Backend::Sqlite => {
            "CREATE TEMP TABLE IF NOT EXISTS conf (n INTEGER, u BLOB, t TEXT, s INTEGER, \
             i INTEGER, b INTEGER, f INTEGER, ts TEXT, j TEXT, y BLOB, d TEXT)"
        }
    };
    u.execute(ddl, &[]).await?;
    u.execute("DELETE FROM conf", &[]).await?;
    let id = Uuid::now_v7();
    let at: DateTime<Utc> = DateTime::from_timestamp_micros(1_764_633_600_123_456).unwrap();
    let doc = json!({ "a": [1, "two", null], "b": { "c": true } });
    let bytes: &[u8] = &[0, 1, 2, 255];
    let day = chrono::NaiveDate::from_ymd_opt(2030, 1, 2).unwrap();
    let insert = "INSERT INTO conf (n, u, t, s, i, b, f, ts, j, y, d) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    let changed = u
        .execute(
            insert,
            &orgboard::args![
                1_i32,
                id,
                "text ✓",
                7_i16,
                70_000_i32,
                1_i64 << 40,
                true,
                at,
                &doc,
                bytes,
                day
            ],
        )
        .await?;
    assert_eq!(changed, 1);
    // Typed NULLs for every kind.
    u.defer(
        insert,
        &[
            Arg::from(2_i32),
            Arg::Uuid(None),
            Arg::Text(None),
            Arg::I16(0),
            Arg::I32(None),
            Arg::I64(None),
            Arg::Bool(false),
            Arg::Time(None),
            Arg::from(&Value::Null),
            Arg::Bytes(&[]),
            Arg::Date(day.pred_opt().unwrap()),
        ],
    )
    .await?;
    // Parameters named out of order, deferred after the other write.
    u.defer(
        "INSERT INTO conf (t, n) VALUES ($2, $1)",
        &orgboard::args![3_i32, "third"],
    )
    .await?;
    // The next read sees every deferred write.
    let rows = u
        .fetch_all(
            "SELECT n, u, t, s, i, b, f, ts, j, y FROM conf ORDER BY n",
            &[],
        )
        .await?;
    assert_eq!(rows.len(), 3);
    let r = &rows[0];
    assert_eq!(r.get::<i32>(0)?, 1);
    assert_eq!(r.get::<Uuid>(1)?, id);
    assert_eq!(r.get::<String>(2)?, "text ✓");
    assert_eq!(r.get::<i16>(3)?, 7);
    assert_eq!(r.get::<i32>(4)?, 70_000);
    assert_eq!(r.get::<i64>(5)?, 1_i64 << 40);
    assert!(r.get::<bool>(6)?);
    assert_eq!(r.get::<DateTime<Utc>>(7)?, at);
    let j: String = match u.backend() {
        Backend::Postgres => u
            .fetch_value("SELECT j::text FROM conf WHERE n = 1", &[])
            .await?
            .unwrap(),
        Backend::Sqlite => r.get::<String>(8)?,
    };
    assert_eq!(serde_json::from_str::<Value>(&j).unwrap(), doc);
    assert_eq!(r.get::<Value>(8)?, doc);
    // A date compares as the date it was bound as, on both backends.
    let on_day: Option<i32> = u
        .fetch_value("SELECT n FROM conf WHERE d = $1", &orgboard::args![day])
        .await?;
    assert_eq!(on_day, Some(1));
    let before: Option<i32> = u
        .fetch_value("SELECT n FROM conf WHERE d < $1", &orgboard::args![day])
        .await?;
    assert_eq!(before, Some(2));
    assert_eq!(r.get::<Vec<u8>>(9)?, bytes);
    let r = &rows[1];
    assert_eq!(r.get::<Option<Uuid>>(1)?, None);
    assert_eq!(r.get::<Option<String>>(2)?, None);
    assert_eq!(r.get::<Option<i32>>(4)?, None);
    assert_eq!(r.get::<Option<i64>>(5)?, None);
    assert!(!r.get::<bool>(6)?);
    assert_eq!(r.get::<Option<DateTime<Utc>>>(7)?, None);
    assert_eq!(r.get::<Vec<u8>>(9)?, Vec::<u8>::new());
    assert_eq!(rows[2].get::<String>(2)?, "third");
    // The same rows read in place, one by one (RowRef::Lite on the
    // rusqlite executors), decode to the same values.
    let mut seen = Vec::new();
    u.fetch_each("SELECT n, u, t, ts, y FROM conf ORDER BY n", &[], |r| {
        seen.push((
            r.get::<i32>(0)?,
            r.get::<Option<Uuid>>(1)?,
            r.get::<Option<String>>(2)?,
            r.get::<Option<DateTime<Utc>>>(3)?,
            r.get::<Option<Vec<u8>>>(4)?,
        ));
        assert!(r.get::<i64>(2).is_err() || r.get::<Option<String>>(2)?.is_none());
        Ok::<_, orgboard::db::uow::DbError>(())
    })
    .await?;
    assert_eq!(
        seen[0],
        (
            1,
            Some(id),
            Some("text ✓".to_owned()),
            Some(at),
            Some(bytes.to_vec())
        )
    );
    assert_eq!(seen[1], (2, None, None, None, Some(Vec::new())));
    assert_eq!(seen[2], (3, None, Some("third".to_owned()), None, None));
    assert_eq!(seen.len(), 3);
    // A value of the wrong type is an error, not a panic or a guess.
    assert!(rows[0].get::<i64>(2).is_err());
    // fetch_value / fetch_optional on no row.
    let none: Option<i32> = u
        .fetch_value("SELECT n FROM conf WHERE n = $1", &orgboard::args![99_i32])
        .await?;
    assert_eq!(none, None);
    let changed = u
        .execute(
            "UPDATE conf SET t = $1 WHERE n >= $2",
            &orgboard::args!["x", 2_i32],
        )
        .await?;
    assert_eq!(changed, 2);
    Ok(())
}

/// The read executors — a sqlx read transaction and `read_unit!` (on
/// SQLite the rusqlite read pool, in a snapshot) — read the same rows of a
/// tenant to the same values, whole or one by one; the read pool refuses
/// writes and a failed read leaves its connection usable.
async fn read_executors_agree_and_refuse_writes(app: TestApp) {
    let a = app.signup("alice").await;
    let org = app.create_org(&a, "Acme").await;
    for name in ["Roadmap", "Bugs", "Ops"] {
        app.post(
            &format!("/api/v1/orgs/{org}/boards"),
            &a.token,
            json!({ "name": name }),
        )
        .await
        .expect(201);
    }
    let db = &app.state.db;
    let scope = Scope::tenant(a.id, org);
    let sql =
        "SELECT id, name, description, created_at FROM boards WHERE org_id = $1 ORDER BY name";
    type Board = (Uuid, String, Option<String>, chrono::DateTime<chrono::Utc>);
    async fn read<U: Uow>(
        u: &mut U,
        sql: &str,
        org: Uuid,
    ) -> Result<(Vec<Board>, Vec<Board>), orgboard::error::ApiError> {
        let whole = u
            .fetch_all(sql, &orgboard::args![org])
            .await?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .collect::<Result<Vec<Board>, orgboard::db::uow::DbError>>()?;
        let mut each = Vec::new();
        u.fetch_each(sql, &orgboard::args![org], |r| {
            each.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?));
            Ok::<_, orgboard::db::uow::DbError>(())
        })
        .await?;
        Ok((whole, each))
    }
    let mut tx = db.read(scope).await.unwrap();
    let (by_tx, _) = read(&mut tx, sql, org).await.unwrap();
    drop(tx);
    let (whole, each) =
        async { orgboard::read_unit!(db, scope, |u| async move { read(u, sql, org).await }) }
            .await
            .unwrap();
    assert_eq!(by_tx.len(), 3);
    assert_eq!(
        by_tx.iter().map(|b| b.1.as_str()).collect::<Vec<_>>(),
        ["Bugs", "Ops", "Roadmap"]
    );
    assert_eq!(whole, by_tx);
    assert_eq!(each, by_tx);
    // A write through a read unit is refused (SQLite's read pool says so
    // itself; PostgreSQL's read transaction is READ ONLY), and the next
    // read still works.
    let refused = async {
        orgboard::read_unit!(db, scope, |u| async move {
            u.execute(
                "DELETE FROM boards WHERE org_id = $1",
                &orgboard::args![org],
            )
            .await
            .map_err(orgboard::error::ApiError::from)
        })
    }
    .await;
    assert!(refused.is_err(), "a read unit wrote: {refused:?}");
    let (again, _) =
        async { orgboard::read_unit!(db, scope, |u| async move { read(u, sql, org).await }) }
            .await
            .unwrap();
    assert_eq!(again, by_tx);
}

// ---------------------------------------------------------------- helpers

/// The PostgreSQL connection under a request transaction.
fn pg(tx: &mut Tx) -> &mut PgConnection {
    match &mut tx.conn {
        TxConn::Postgres(t) => t,
        TxConn::Sqlite(_) => panic!("expected a PostgreSQL transaction"),
    }
}

/// The pool the app connects with (the URL's user, who owns the tables).
fn pg_pool(app: &TestApp) -> &PgPool {
    match &app.state.db {
        Db::Postgres(pool, ..) => pool,
        Db::Sqlite { .. } => panic!("expected PostgreSQL"),
    }
}

/// SQLite's reader pool.
fn sqlite_reader(app: &TestApp) -> &SqlitePool {
    match &app.state.db {
        Db::Sqlite { reader, .. } => reader,
        Db::Postgres(..) => panic!("expected SQLite"),
    }
}

/// The database error code and message of a failed statement.
#[track_caller]
fn db_error(result: Result<u64, sqlx::Error>, what: &str) -> (String, String) {
    let err = match result {
        Ok(n) => panic!("{what}: expected an error, but it succeeded ({n} rows)"),
        Err(e) => e,
    };
    let db = err
        .as_database_error()
        .unwrap_or_else(|| panic!("{what}: not a database error: {err}"));
    (
        db.code().map(|c| c.into_owned()).unwrap_or_default(),
        db.message().to_owned(),
    )
}

/// Two users, each owning a team organization with one pending invite (so
/// both organizations have audit rows, invites and memberships).
struct TwoTenants {
    a: TestUser,
    org_a: Uuid,
    b: TestUser,
    org_b: Uuid,
}

async fn two_tenants(app: &TestApp) -> TwoTenants {
    let a = app.signup("alice").await;
    let b = app.signup("bob").await;
    let org_a = app.create_org(&a, "Alpha").await;
    let org_b = app.create_org(&b, "Beta").await;
    for (user, org) in [(&a, org_a), (&b, org_b)] {
        app.post(
            &format!("/api/v1/orgs/{org}/invites"),
            &user.token,
            json!({ "email": format!("guest-{}@example.com", Uuid::now_v7().simple()), "role": "member" }),
        )
        .await
        .expect(201);
    }
    TwoTenants { a, org_a, b, org_b }
}

const AUDIT_INSERT: &str = "INSERT INTO audit_log (org_id, id, action, entity_type, payload, created_at) \
     VALUES ($1, $2, 'test.event', 'test', '{}', $3)";

// ------------------------------------------------------- 1. the catalog

/// Every table with `org_id` (and `organizations`) has RLS enabled and forced
/// and a policy on `app.org_id`; the runtime role cannot bypass it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn catalog_forces_rls_on_every_tenant_table() {
    let app = TestApp::postgres().await;
    let pool = pg_pool(&app);

    // Every table, not only those with org_id: a new table holding tenant
    // or account data cannot skip row-level security by leaving org_id out.
    // The exceptions are named here, each with its reason.
    const WITHOUT_RLS: [(&str, &str); 2] = [
        (
            "_sqlx_migrations",
            "the migration history; no runtime role has any privilege on it",
        ),
        (
            "schedules",
            "instance-wide schedule names and times; no tenant or user data",
        ),
    ];
    let tables: Vec<(String, bool, bool, i64, i64, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity,
                (SELECT COUNT(*) FROM pg_policies p
                  WHERE p.schemaname = 'public' AND p.tablename = c.relname
                    AND p.permissive = 'PERMISSIVE'
                    AND p.roles && ARRAY['public', 'orgboard_app']::name[]),
                (SELECT COUNT(*) FROM pg_policies p
                  WHERE p.schemaname = 'public' AND p.tablename = c.relname
                    AND p.qual LIKE '%app.org_id%'),
                (c.relname = 'organizations' OR EXISTS (
                    SELECT 1 FROM information_schema.columns col
                     WHERE col.table_schema = 'public' AND col.table_name = c.relname
                       AND col.column_name = 'org_id')),
                has_table_privilege('orgboard_app', c.oid, 'SELECT')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("catalog query");

    let names: BTreeSet<&str> = tables.iter().map(|t| t.0.as_str()).collect();
    for expected in [
        "organizations",
        "memberships",
        "invites",
        "audit_log",
        "jobs",
        "idempotency_keys",
        "users",
        "refresh_tokens",
    ] {
        assert!(
            names.contains(expected),
            "table {expected} not found among {names:?}"
        );
    }
    for (name, _) in WITHOUT_RLS.iter().filter(|(n, _)| *n != "_sqlx_migrations") {
        assert!(
            names.contains(name),
            "exempt table {name} no longer exists: drop it from the list"
        );
    }
    let offenders: Vec<String> = tables
        .iter()
        .filter(|t| !WITHOUT_RLS.iter().any(|(n, _)| *n == t.0))
        .filter_map(
            |(name, enabled, forced, policies, on_org, tenant, readable)| {
                let mut wrong = Vec::new();
                if !enabled {
                    wrong.push("RLS not enabled");
                }
                if !forced {
                    wrong.push("RLS not forced");
                }
                if *policies == 0 {
                    wrong.push("no permissive policy for orgboard_app");
                }
                // A table the request role may only append to (the security
                // log) shows it nothing to leak, whatever organization a row
                // names.
                if *tenant && *readable && *on_org == 0 {
                    wrong.push("has org_id but no policy on app.org_id");
                }
                (!wrong.is_empty()).then(|| format!("{name}: {}", wrong.join(", ")))
            },
        )
        .collect();
    assert!(
        offenders.is_empty(),
        "tables without forced row-level security:\n{}",
        offenders.join("\n")
    );
    // The exempt ones really hold nothing the runtime roles could leak.
    let migrations_readable: bool = sqlx::query_scalar(
        "SELECT has_table_privilege('orgboard_app', '_sqlx_migrations', 'SELECT')
             OR has_table_privilege('orgboard_system', '_sqlx_migrations', 'SELECT')",
    )
    .fetch_one(pool)
    .await
    .expect("privilege on _sqlx_migrations");
    assert!(
        !migrations_readable,
        "_sqlx_migrations readable by a runtime role"
    );
    let schedule_columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name = 'schedules' ORDER BY ordinal_position",
    )
    .fetch_all(pool)
    .await
    .expect("schedules columns");
    assert_eq!(
        schedule_columns,
        ["name", "next_run_at", "last_run_at", "updated_at"],
        "schedules changed shape: does it now hold tenant data (then it needs RLS)?"
    );

    // Both runtime roles: requests (orgboard_app) and the node's own
    // upkeep (orgboard_system: event numbering, clean-up).
    for role_name in ["orgboard_app", "orgboard_system"] {
        check_runtime_role(pool, role_name).await;
    }
    // orgboard_system reads no tenant table whole but the event outbox and
    // the job queue it runs (invites: a few columns, through policies
    // limited to expired ones; idempotency keys: their creation time;
    // organizations: their id, name, slug, plan and states, for the
    // administrator's commands), and the security log, which is the
    // instance administrator's (`orgboard admin security-log`).
    let readable: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public' AND c.relkind = 'r'
            AND EXISTS (SELECT 1 FROM information_schema.columns col
                         WHERE col.table_schema = 'public' AND col.table_name = c.relname
                           AND col.column_name = 'org_id')
            AND has_table_privilege('orgboard_system', c.oid, 'SELECT')
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("privilege query");
    assert_eq!(
        readable,
        ["events", "jobs", "security_log"],
        "tenant tables orgboard_system may read"
    );
}

/// A runtime role is no superuser, cannot bypass RLS, owns nothing and
/// cannot become a role that could.
async fn check_runtime_role(pool: &PgPool, name: &str) {
    let role: Option<(bool, bool, bool)> = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
    .expect("pg_roles");
    let (superuser, bypass, login) = role.unwrap_or_else(|| panic!("role {name} does not exist"));
    assert!(!superuser, "{name} is a superuser");
    assert!(!bypass, "{name} has BYPASSRLS");
    assert!(!login, "{name} can log in");

    // Owning a table (directly, or through a role it inherits) would let it
    // turn RLS off with ALTER TABLE.
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'public'
            AND (c.relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)
                 OR pg_has_role($1, c.relowner, 'USAGE'))
          ORDER BY 1",
    )
    .bind(name)
    .fetch_all(pool)
    .await
    .expect("ownership query");
    assert!(
        owned.is_empty(),
        "{name} owns (or inherits ownership of) {owned:?}"
    );

    // Nor may it become a role that bypasses RLS.
    let escalations: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles
          WHERE (rolsuper OR rolbypassrls) AND rolname <> $1
            AND pg_has_role($1, oid, 'MEMBER')",
    )
    .bind(name)
    .fetch_all(pool)
    .await
    .expect("membership query");
    assert!(
        escalations.is_empty(),
        "{name} is a member of privileged roles {escalations:?}"
    );
}

// ------------------------------------------------- 2. RLS on its own

/// Queries without an `org_id` filter, inside org A's transaction, see only
/// org A (and A's own memberships); nothing of org B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn rls_hides_other_tenants_without_org_filter() {
    let app = TestApp::postgres().await;
    let TwoTenants { a, org_a, b, org_b } = two_tenants(&app).await;
    let b_orgs = [org_b, b.personal_org];

    // Org B really has rows: the owner's pool (a superuser here) sees them.
    for table in ["audit_log", "invites", "memberships"] {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table} WHERE org_id = $1"
        )))
        .bind(org_b)
        .fetch_one(pg_pool(&app))
        .await
        .expect("count");
        assert!(n > 0, "setup: org B has no {table} rows");
    }

    let mut tx = app
        .state
        .db
        .read(Scope::tenant(a.id, org_a))
        .await
        .expect("tenant tx");

    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(pg(&mut tx))
        .await
        .expect("current_user");
    assert_eq!(user, "orgboard_app");
    let is_super: String = sqlx::query_scalar("SELECT current_setting('is_superuser')")
        .fetch_one(pg(&mut tx))
        .await
        .expect("is_superuser");
    assert_eq!(is_super, "off");

    for table in ["audit_log", "invites"] {
        let orgs: Vec<Uuid> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT org_id FROM {table}")))
                .fetch_all(pg(&mut tx))
                .await
                .expect("select");
        assert!(orgs.contains(&org_a), "{table}: org A's own rows missing");
        assert!(
            orgs.iter().all(|o| *o == org_a),
            "{table}: rows of other organizations visible: {orgs:?}"
        );
    }

    let members: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT org_id, user_id FROM memberships")
        .fetch_all(pg(&mut tx))
        .await
        .expect("memberships");
    assert!(members.contains(&(org_a, a.id)), "A's membership missing");
    assert!(
        members.contains(&(a.personal_org, a.id)),
        "A's own membership in another org missing"
    );
    let foreign: Vec<_> = members
        .iter()
        .filter(|(org, user)| (*org != org_a && *user != a.id) || b_orgs.contains(org))
        .collect();
    assert!(
        foreign.is_empty(),
        "foreign memberships visible: {foreign:?}"
    );

    let orgs: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM organizations")
        .fetch_all(pg(&mut tx))
        .await
        .expect("organizations");
    assert!(orgs.contains(&org_a), "org A itself missing");
    let foreign: Vec<_> = orgs.iter().filter(|o| b_orgs.contains(o)).collect();
    assert!(foreign.is_empty(), "B's organizations visible: {foreign:?}");
    drop(tx);

    // No tenant, no user: nothing at all.
    let mut tx = app.state.db.read(Scope::system()).await.expect("system tx");
    for table in ["audit_log", "invites", "memberships", "organizations"] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(pg(&mut tx))
                .await
                .expect("count");
        assert_eq!(n, 0, "{table}: an unscoped transaction sees {n} rows");
    }
}

/// What the request role can reach outside the tenant tables: inside org
/// B's transaction (as B's owner) no job, stored idempotent answer, account
/// or session of org A is visible, even to queries without any filter. Before
/// migration 0005 B saw A's invite job (the invitee's email and the
/// plaintext token), A's stored task JSON, and every user and refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn rls_hides_jobs_keys_and_accounts_of_other_tenants() {
    use axum::body::Body;
    use axum::http::Request;

    let app = TestApp::postgres().await;
    let TwoTenants { a, org_a, b, org_b } = two_tenants(&app).await;
    let req = Request::post(format!("/api/v1/orgs/{org_a}/boards"))
        .header("authorization", format!("Bearer {}", a.token))
        .header("content-type", "application/json")
        .header("idempotency-key", "alpha-board-1")
        .body(Body::from(
            json!({ "name": "Alpha secret roadmap" }).to_string(),
        ))
        .unwrap();
    app.send(req).await.expect(201);

    // Setup: A's rows exist (the owner's pool sees them).
    let a_jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE org_id = $1")
        .bind(org_a)
        .fetch_one(pg_pool(&app))
        .await
        .expect("count");
    assert!(a_jobs > 0, "setup: org A's invite job missing");
    let a_keys: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM idempotency_keys WHERE org_id = $1 AND response LIKE '%Alpha secret%'",
    )
    .bind(org_a)
    .fetch_one(pg_pool(&app))
    .await
    .expect("count");
    assert_eq!(a_keys, 1, "setup: A's stored answer missing");

    let mut tx = app
        .state
        .db
        .write(Scope::tenant(b.id, org_b))
        .await
        .expect("tenant tx");
    let jobs: Vec<(Option<Uuid>, String)> =
        sqlx::query_as("SELECT org_id, payload::text FROM jobs")
            .fetch_all(pg(&mut tx))
            .await
            .expect("jobs");
    assert!(!jobs.is_empty(), "B's own invite job is visible to B");
    assert!(
        jobs.iter().all(|(org, _)| *org == Some(org_b)),
        "jobs of other organizations visible: {jobs:?}"
    );
    let answers: Vec<Option<String>> = sqlx::query_scalar("SELECT response FROM idempotency_keys")
        .fetch_all(pg(&mut tx))
        .await
        .expect("idempotency_keys");
    assert!(
        answers.is_empty(),
        "stored answers visible to B: {answers:?}"
    );
    let users: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM users")
        .fetch_all(pg(&mut tx))
        .await
        .expect("users");
    assert_eq!(
        users,
        [b.id],
        "users visible to B besides B and B's co-members"
    );
    let sessions: Vec<Uuid> = sqlx::query_scalar("SELECT user_id FROM refresh_tokens")
        .fetch_all(pg(&mut tx))
        .await
        .expect("refresh_tokens");
    assert!(!sessions.is_empty(), "B's own sessions are visible to B");
    assert!(
        sessions.iter().all(|u| *u == b.id),
        "other users' sessions visible: {sessions:?}"
    );
    let renamed = sqlx::query("UPDATE users SET name = 'pwned' WHERE id = $1")
        .bind(a.id)
        .execute(pg(&mut tx))
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(renamed, 0, "B changed A's account");
    let written = sqlx::query(
        "INSERT INTO jobs (id, kind, payload, status, run_at, created_at, updated_at, org_id) \
         VALUES ($1, 'x', '{}', 'queued', now(), now(), now(), $2)",
    )
    .bind(Uuid::now_v7())
    .bind(org_a)
    .execute(pg(&mut tx))
    .await
    .map(|r| r.rows_affected());
    let (code, _) = db_error(written, "a job for org A from B's transaction");
    assert_eq!(code, "42501", "refused by the policy's WITH CHECK");
    drop(tx);

    // B's co-members become visible once they join: members see each other.
    let carol = app.signup("carol").await;
    app.join(org_b, &b, &carol, "member").await;
    let mut tx = app
        .state
        .db
        .read(Scope::tenant(b.id, org_b))
        .await
        .expect("tenant tx");
    let mut users: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM users")
        .fetch_all(pg(&mut tx))
        .await
        .expect("users");
    users.sort();
    let mut expected = vec![b.id, carol.id];
    expected.sort();
    assert_eq!(users, expected);
}

/// Writing a row of org B from org A's transaction is refused by the policy's
/// `WITH CHECK`, while the same row for org A is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn rls_refuses_writes_into_another_tenant() {
    let app = TestApp::postgres().await;
    let TwoTenants {
        a, org_a, org_b, ..
    } = two_tenants(&app).await;
    let scope = Scope::tenant(a.id, org_a);

    let mut tx = app.state.db.write(scope).await.expect("tenant tx");
    let own = sqlx::query(AUDIT_INSERT)
        .bind(org_a)
        .bind(Uuid::now_v7())
        .bind(orgboard::db::now())
        .execute(pg(&mut tx))
        .await
        .map(|r| r.rows_affected());
    assert_eq!(own.expect("insert into own org"), 1);
    drop(tx);

    let mut tx = app.state.db.write(scope).await.expect("tenant tx");
    let foreign = sqlx::query(AUDIT_INSERT)
        .bind(org_b)
        .bind(Uuid::now_v7())
        .bind(orgboard::db::now())
        .execute(pg(&mut tx))
        .await
        .map(|r| r.rows_affected());
    let (code, message) = db_error(foreign, "insert into org B from org A");
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("row-level security"), "{message}");
    drop(tx);

    // Moving an own row into org B is refused too.
    let mut tx = app.state.db.write(scope).await.expect("tenant tx");
    let moved = sqlx::query("UPDATE invites SET org_id = $1")
        .bind(org_b)
        .execute(pg(&mut tx))
        .await
        .map(|r| r.rows_affected());
    let (code, message) = db_error(moved, "move an invite to org B");
    assert_eq!(code, "42501", "{message}");
    assert!(message.contains("row-level security"), "{message}");
}

/// The role and the tenant are transaction-local: the pooled connection
/// goes back to its own user with no tenant set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn tenant_scope_does_not_outlive_the_transaction() {
    let app = TestApp::postgres_with(|c| c.storage.db_max_connections = 1).await;
    let org = Uuid::now_v7();
    let user = Uuid::now_v7();
    let probe = "SELECT pg_backend_pid(), current_user::text, \
                 COALESCE(current_setting('app.org_id', true), ''), \
                 COALESCE(current_setting('app.user_id', true), '')";

    let mut tx = app
        .state
        .db
        .write(Scope::tenant(user, org))
        .await
        .expect("tx");
    let (pid, role, seen_org, seen_user): (i32, String, String, String) = sqlx::query_as(probe)
        .fetch_one(pg(&mut tx))
        .await
        .expect("probe");
    assert_eq!(role, "orgboard_app");
    assert_eq!(seen_org, org.to_string());
    assert_eq!(seen_user, user.to_string());
    tx.commit().await.expect("commit");

    let mut conn = pg_pool(&app).acquire().await.expect("acquire");
    let (pid_after, role_after, org_after, user_after): (i32, String, String, String) =
        sqlx::query_as(probe)
            .fetch_one(&mut *conn)
            .await
            .expect("probe");
    assert_eq!(pid_after, pid, "not the same pooled connection");
    assert_ne!(role_after, "orgboard_app", "role leaked past commit");
    assert_eq!(org_after, "", "app.org_id leaked past commit");
    assert_eq!(user_after, "", "app.user_id leaked past commit");
    drop(conn);

    // Same after a rollback.
    let mut tx = app
        .state
        .db
        .read(Scope::tenant(user, org))
        .await
        .expect("tx");
    let (pid, ..): (i32, String, String, String) = sqlx::query_as(probe)
        .fetch_one(pg(&mut tx))
        .await
        .expect("probe");
    drop(tx);
    let mut conn = pg_pool(&app).acquire().await.expect("acquire");
    let (pid_after, role_after, org_after, _): (i32, String, String, String) =
        sqlx::query_as(probe)
            .fetch_one(&mut *conn)
            .await
            .expect("probe");
    assert_eq!(pid_after, pid, "not the same pooled connection");
    assert_ne!(role_after, "orgboard_app", "role leaked past rollback");
    assert_eq!(org_after, "", "app.org_id leaked past rollback");
}

/// PostgreSQL's units take the connection given back last (the pool is a
/// stack): after a burst opened three connections, one request at a time
/// runs on one of them, not round all three. Round the pool (first in,
/// first out) measured 8–18 % fewer task reads/s after a burst of
/// collection reads had opened the whole pool (BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn units_reuse_the_connection_given_back_last() {
    let app = TestApp::postgres_with(|c| c.storage.db_max_connections = 3).await;
    let db = &app.state.db;
    let ada = app.signup("ada").await;
    let scope = Scope::tenant(ada.id, ada.personal_org);
    async fn backend(u: &mut impl Uow) -> i32 {
        u.fetch_optional("SELECT pg_backend_pid()", &[])
            .await
            .expect("pid")
            .expect("a row")
            .get::<i32>(0)
            .expect("an int")
    }
    // A burst: three units at once, three connections.
    let mut held = Vec::new();
    let mut burst = BTreeSet::new();
    for _ in 0..3 {
        let mut u = db.pg_read(scope, false).await.expect("read");
        burst.insert(backend(&mut u).await);
        held.push(u);
    }
    assert_eq!(burst.len(), 3, "three connections: {burst:?}");
    drop(held);
    // Dropped inside their transactions: each connection comes back after
    // its `ROLLBACK`, sent by a task of its own.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen = BTreeSet::new();
    for _ in 0..12 {
        let mut u = db.unit(scope).await.expect("unit");
        seen.insert(backend(&mut u).await);
        u.commit().await.expect("commit");
    }
    assert!(seen.is_subset(&burst), "{seen:?} outside {burst:?}");
    assert_eq!(seen.len(), 1, "one request at a time went round {seen:?}");
}

/// PostgreSQL's units of work (tokio-postgres, pipelined; `db::pg`) never
/// give a connection back inside a transaction: a unit dropped after a
/// write it never committed, after a failed statement, or while a
/// statement was in flight leaves nothing behind for the next unit on the
/// same connection (the pool holds one), and a commit whose waiting writes
/// fail keeps none of the unit's writes. Without the rollback on drop, the
/// next unit's `BEGIN` would be a no-op inside the old transaction and its
/// `COMMIT` would keep the abandoned board.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn units_never_give_back_a_connection_inside_a_transaction() {
    let app = TestApp::postgres_with(|c| c.storage.db_max_connections = 1).await;
    let db = &app.state.db;
    let ada = app.signup("ada").await;
    let scope = Scope::tenant(ada.id, ada.personal_org);
    let insert = "INSERT INTO boards (org_id, id, name, created_by, created_at, updated_at) \
                  VALUES ($1, $2, $3, $4, now(), now())";
    let board = |id: Uuid, name: &'static str| {
        [
            Arg::from(ada.personal_org),
            Arg::from(id),
            Arg::from(name),
            Arg::from(ada.id),
        ]
    };
    // What the next unit on the connection sees: its backend, whether a
    // transaction was already open before its own `BEGIN` (then the
    // transaction began before this statement's), and the boards named.
    async fn probe(db: &Db, scope: Scope, ids: &[Uuid]) -> (i32, bool, i64) {
        let mut u = db.unit(scope).await.expect("unit");
        let row = u
            .fetch_optional(
                "SELECT pg_backend_pid(), now() < statement_timestamp() - interval '50 milliseconds', \
                 (SELECT count(*) FROM boards WHERE id = ANY($1::uuid[]))",
                &[Arg::from(
                    format!(
                        "{{{}}}",
                        ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",")
                    )
                    .as_str(),
                )],
            )
            .await
            .expect("probe")
            .expect("a row");
        let out = (
            row.get::<i32>(0).unwrap(),
            row.get::<bool>(1).unwrap(),
            row.get::<i64>(2).unwrap(),
        );
        u.commit().await.expect("commit");
        out
    }
    let (pid, stale, _) = probe(db, scope, &[]).await;
    assert!(!stale);

    // 1. A write sent, never committed; the unit dropped.
    let abandoned = Uuid::now_v7();
    let mut u = db.unit(scope).await.unwrap();
    u.execute(insert, &board(abandoned, "abandoned"))
        .await
        .unwrap();
    drop(u);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (pid_after, stale, kept) = probe(db, scope, &[abandoned]).await;
    assert_eq!(pid_after, pid, "the connection was not given back");
    assert!(!stale, "the next unit ran inside the abandoned transaction");
    assert_eq!(kept, 0, "an uncommitted write was kept");

    // 2. A statement that fails; the unit dropped with its error.
    let mut u = db.unit(scope).await.unwrap();
    u.execute(insert, &board(abandoned, "abandoned"))
        .await
        .unwrap();
    assert!(u.fetch_all("SELECT 1 / 0", &[]).await.is_err());
    drop(u);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, stale, kept) = probe(db, scope, &[abandoned]).await;
    assert!(!stale && kept == 0, "after a failed statement");

    // 3. A statement in flight when the unit is dropped (a client gone).
    let mut u = db.unit(scope).await.unwrap();
    u.execute(insert, &board(abandoned, "abandoned"))
        .await
        .unwrap();
    let slow = tokio::time::timeout(
        Duration::from_millis(50),
        u.fetch_all("SELECT pg_sleep(0.3)", &[]),
    )
    .await;
    assert!(slow.is_err(), "the statement should still be running");
    drop(u);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, stale, kept) = probe(db, scope, &[abandoned]).await;
    assert!(!stale && kept == 0, "after a statement in flight");

    // 4. Waiting writes that fail at commit: the write sent before them is
    // not kept either, and the connection serves the next unit.
    let first = Uuid::now_v7();
    let mut u = db.unit(scope).await.unwrap();
    u.execute(insert, &board(first, "first")).await.unwrap();
    u.defer(insert, &board(first, "the same key again"))
        .await
        .unwrap();
    let failed = u.commit().await;
    assert!(
        failed.as_ref().is_err_and(|e| e.is_unique_violation()),
        "{failed:?}"
    );
    let (_, stale, kept) = probe(db, scope, &[first]).await;
    assert!(!stale && kept == 0, "a failed commit kept a write");

    // And a unit that commits keeps its writes, sent and waiting.
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut u = db.unit(scope).await.unwrap();
    u.execute(insert, &board(a, "sent")).await.unwrap();
    u.defer(insert, &board(b, "waiting")).await.unwrap();
    u.commit().await.unwrap();
    let (_, _, kept) = probe(db, scope, &[a, b]).await;
    assert_eq!(kept, 2);
}

/// The units' connections (tokio-postgres) read the URL's `sslmode` as
/// sqlx does: encrypted exactly when sqlx's are (the tests' URL leaves the
/// default, `prefer`: against a server with TLS on — Debian's, with its
/// self-signed certificate — both are encrypted, the certificate accepted
/// as sqlx and libpq accept it; against one without, neither).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn units_encrypt_as_sqlx_does() {
    let app = TestApp::postgres().await;
    // Read by the URL's user: the app role may not see its own session's
    // line of `pg_stat_ssl`.
    let ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = $1";
    let own: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pg_pool(&app))
        .await
        .expect("sqlx pid");
    let by_sqlx: bool = sqlx::query_scalar(ssl)
        .bind(own)
        .fetch_one(pg_pool(&app))
        .await
        .expect("sqlx");
    let mut u = app.state.db.unit(Scope::system()).await.expect("unit");
    let pid: Option<i32> = u
        .fetch_value("SELECT pg_backend_pid()", &[])
        .await
        .expect("unit pid");
    u.commit().await.expect("commit");
    let by_unit: bool = sqlx::query_scalar(ssl)
        .bind(pid.expect("a pid"))
        .fetch_one(pg_pool(&app))
        .await
        .expect("the unit's connection is still open");
    assert_eq!(by_unit, by_sqlx);
}

/// A unit whose connection the server closes under it (an administrator's
/// `pg_terminate_backend`, a restart) is answered `503` with `Retry-After`,
/// not `500`, and the pool opens a new connection for the next unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn a_lost_connection_is_unavailable_and_replaced() {
    let app = TestApp::postgres_with(|c| c.storage.db_max_connections = 1).await;
    let db = &app.state.db;
    let pid_sql = "SELECT pg_backend_pid()";
    let mut u = db.unit(Scope::system()).await.expect("unit");
    let pid: Option<i32> = u.fetch_value(pid_sql, &[]).await.expect("pid");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid.expect("a pid"))
        .fetch_one(pg_pool(&app))
        .await
        .expect("terminate");
    assert!(killed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lost = u
        .fetch_value::<i32>(pid_sql, &[])
        .await
        .expect_err("the connection is gone");
    let answer = orgboard::error::ApiError::from(orgboard::domain::DomainError::from(lost));
    assert_eq!(answer.status().as_u16(), 503, "{answer:?}");
    drop(u);
    let mut u = db.unit(Scope::system()).await.expect("a new connection");
    let again: Option<i32> = u.fetch_value(pid_sql, &[]).await.expect("pid");
    u.commit().await.expect("commit");
    assert_ne!(again, pid, "the closed connection came back");
}

/// A one-statement PostgreSQL read (`GET …/tasks/{task}`: `BEGIN`, the
/// statement and `COMMIT` in one round trip) refuses a second statement
/// rather than run it outside its transaction, where the scope it was
/// given no longer holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn a_one_statement_read_refuses_a_second() {
    let app = TestApp::postgres().await;
    let ada = app.signup("ada").await;
    let scope = Scope::tenant(ada.id, ada.personal_org);
    let tenant = "SELECT current_setting('app.org_id', true)";
    let mut read = app.state.db.pg_read(scope, true).await.expect("read");
    let seen: Option<String> = read.fetch_value(tenant, &[]).await.expect("first");
    assert_eq!(seen, Some(ada.personal_org.to_string()));
    assert!(read.fetch_value::<String>(tenant, &[]).await.is_err());
}

// ------------------------------------------------ 3. append-only audit log

async fn audit_log_is_append_only(app: TestApp) {
    let TwoTenants { a, org_a, .. } = two_tenants(&app).await;
    let before = app.audit_count(org_a).await;
    assert!(before > 0, "setup: no audit rows");
    let scope = Scope::tenant(a.id, org_a);

    let mut statements = vec!["UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"];
    if app.backend == Backend::Postgres {
        statements.push("TRUNCATE audit_log");
    }
    for sql in statements {
        // An error aborts the transaction: a fresh one per statement.
        let mut tx = app.state.db.write(scope).await.expect("tenant tx");
        let result = orgboard::on_tx!(&mut tx, |c| sqlx::query(sql)
            .execute(c)
            .await
            .map(|r| r.rows_affected()));
        let (code, message) = db_error(result, sql);
        match app.backend {
            Backend::Postgres => {
                assert_eq!(code, "42501", "{sql}: {message}");
                assert!(message.contains("permission denied"), "{sql}: {message}");
            }
            Backend::Sqlite => {
                assert!(message.contains("append-only"), "{sql}: {message}");
            }
        }
    }

    // Appending still works, and nothing was lost or rewritten.
    let mut tx = app.state.db.write(scope).await.expect("tenant tx");
    let inserted = orgboard::on_tx!(&mut tx, |c| sqlx::query(AUDIT_INSERT)
        .bind(org_a)
        .bind(Uuid::now_v7())
        .bind(orgboard::db::now())
        .execute(c)
        .await
        .map(|r| r.rows_affected()));
    assert_eq!(inserted.expect("append"), 1);
    tx.commit().await.expect("commit");
    assert_eq!(app.audit_count(org_a).await, before + 1);
    let mut tx = app.state.db.read(scope).await.expect("tenant tx");
    let rewritten: i64 = orgboard::on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_log WHERE action = 'x'"
    )
    .fetch_one(c)
    .await)
    .expect("count");
    assert_eq!(rewritten, 0);
}

/// The assignee and label ids the task use cases keep on the row are, to
/// the byte, what migration 0009 computed for the rows that existed before
/// it: running its `UPDATE` again over tasks written by the API changes
/// nothing (under the tenant's row-level security on PostgreSQL).
async fn kept_relation_ids_are_what_the_migration_computes(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let bob = app.member(org, &ada, "member").await;
    let mut labels = Vec::new();
    for name in ["one", "two", "three"] {
        let r = app
            .post(
                &format!("/api/v1/orgs/{org}/labels"),
                &ada.token,
                json!({ "name": name, "color": "#336699" }),
            )
            .await
            .expect(201);
        labels.push(r.json["id"].as_str().unwrap().to_owned());
    }
    let tasks = app.new_list(&ada, org).await;
    for (assignees, tagged) in [
        (json!([]), json!([])),
        (json!([bob.id]), json!([labels[1]])),
        (json!([bob.id, ada.id]), json!([labels[2], labels[0]])),
        (json!([]), json!([labels[0], labels[1], labels[2]])),
    ] {
        app.post(
            &tasks,
            &ada.token,
            json!({ "title": "t", "assignee_ids": assignees, "label_ids": tagged }),
        )
        .await
        .expect(201);
    }
    let kept = app.kept_relation_ids(org).await;
    assert_eq!(kept.len(), 4);
    assert!(kept.iter().any(|(_, a, _)| a.contains(',')), "{kept:?}");
    assert!(
        kept.iter().any(|(_, _, l)| l.matches(',').count() == 2),
        "{kept:?}"
    );

    let dir = match app.backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    let file = format!(
        "{}/migrations/{dir}/0009_relation_ids.sql",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let backfill = &text[text.find("UPDATE tasks SET").expect("the backfill")..];
    let mut tx = app
        .state
        .db
        .write(Scope::tenant(ada.id, org))
        .await
        .unwrap();
    let updated = orgboard::on_tx!(&mut tx, |c| sqlx::query(sqlx::AssertSqlSafe(backfill))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    assert!(updated >= 4, "{updated}");
    tx.commit().await.unwrap();
    assert_eq!(app.kept_relation_ids(org).await, kept);
    assert_eq!(app.relation_ids_drift(org).await, Vec::<Uuid>::new());
}

// ------------------------------------------------ 4. migrations in step

#[test]
fn migrations_have_same_versions_on_both_backends() {
    // Whether a migration runs in the migrator's transaction may differ:
    // SQLite rebuilds a table (to change a CHECK) with foreign keys off,
    // which only works outside a transaction, and opens its own.
    let list = |m: &sqlx::migrate::Migrator| {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect::<Vec<_>>()
    };
    let pg = list(&PG_MIGRATOR);
    let sqlite = list(&SQLITE_MIGRATOR);
    assert!(!pg.is_empty(), "no PostgreSQL migrations embedded");
    assert_eq!(
        pg, sqlite,
        "migrations/postgres and migrations/sqlite differ"
    );
}

/// Asserts two sets are equal, listing what each side lacks.
#[track_caller]
fn assert_same(what: &str, pg: &BTreeSet<String>, sqlite: &BTreeSet<String>) {
    assert!(!pg.is_empty(), "{what}: nothing found on PostgreSQL");
    let only_pg: Vec<_> = pg.difference(sqlite).collect();
    let only_sqlite: Vec<_> = sqlite.difference(pg).collect();
    assert!(
        only_pg.is_empty() && only_sqlite.is_empty(),
        "{what} differ between backends\n  only on PostgreSQL: {only_pg:#?}\n  only on SQLite: {only_sqlite:#?}"
    );
}

/// After migration both databases have the same tables, columns
/// (with nullability), keys and indexes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn migrated_schemas_match() {
    let pg_app = TestApp::postgres().await;
    let sqlite_app = TestApp::sqlite().await;
    let pool = pg_pool(&pg_app);
    let lite = sqlite_reader(&sqlite_app);

    // Columns. SQLite lets a non-INTEGER rowid primary key hold NULL unless
    // declared NOT NULL; the application never writes one, so a primary key
    // column counts as NOT NULL.
    let pg_cols: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, is_nullable = 'NO'
           FROM information_schema.columns
          WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .expect("pg columns");
    let lite_cols: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT m.name, p.name, p.\"notnull\" OR p.pk > 0
           FROM sqlite_master m, pragma_table_info(m.name) p
          WHERE m.type = 'table' AND m.name <> '_sqlx_migrations'
            AND m.name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(lite)
    .await
    .expect("sqlite columns");
    let fmt = |rows: Vec<(String, String, bool)>| -> BTreeSet<String> {
        rows.into_iter()
            .map(|(t, c, not_null)| format!("{t}.{c}{}", if not_null { " NOT NULL" } else { "" }))
            .collect()
    };
    assert_same("columns", &fmt(pg_cols), &fmt(lite_cols));

    // Primary keys, unique constraints and foreign keys, by columns.
    let pg_keys: Vec<String> = sqlx::query_scalar(
        "WITH k AS (
           SELECT c.contype, c.conrelid::regclass::text AS tbl,
                  c.confrelid, c.confdeltype,
                  (SELECT string_agg(a.attname, ',' ORDER BY x.o)
                     FROM unnest(c.conkey) WITH ORDINALITY x(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = x.n) AS cols,
                  (SELECT string_agg(a.attname, ',' ORDER BY x.o)
                     FROM unnest(c.confkey) WITH ORDINALITY x(n, o)
                     JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = x.n) AS fcols
             FROM pg_constraint c
            WHERE c.connamespace = 'public'::regnamespace AND c.contype IN ('p', 'u', 'f')
              AND c.conrelid::regclass::text <> '_sqlx_migrations')
         SELECT CASE contype
                  WHEN 'p' THEN tbl || ' PRIMARY KEY (' || cols || ')'
                  WHEN 'u' THEN tbl || ' UNIQUE (' || cols || ')'
                  ELSE tbl || ' FOREIGN KEY (' || cols || ') REFERENCES '
                       || confrelid::regclass::text || ' (' || fcols || ')'
                       || CASE confdeltype WHEN 'c' THEN ' ON DELETE CASCADE'
                                           WHEN 'n' THEN ' ON DELETE SET NULL'
                                           WHEN 'r' THEN ' ON DELETE RESTRICT'
                                           ELSE '' END
                END
           FROM k",
    )
    .fetch_all(pool)
    .await
    .expect("pg keys");
    let lite_keys: Vec<String> = sqlx::query_scalar(
        "SELECT m.name || CASE l.origin WHEN 'pk' THEN ' PRIMARY KEY (' ELSE ' UNIQUE (' END
                || (SELECT group_concat(name, ',') FROM
                      (SELECT i.name FROM pragma_index_info(l.name) i ORDER BY i.seqno))
                || ')'
           FROM sqlite_master m, pragma_index_list(m.name) l
          WHERE m.type = 'table' AND m.name <> '_sqlx_migrations'
            AND l.origin IN ('pk', 'u')
         UNION ALL
         SELECT m.name || ' PRIMARY KEY (' || p.name || ')'
           FROM sqlite_master m, pragma_table_info(m.name) p
          WHERE m.type = 'table' AND p.pk = 1 AND m.name <> '_sqlx_migrations'
            AND (SELECT COUNT(*) FROM pragma_table_info(m.name) q WHERE q.pk > 0) = 1
            AND NOT EXISTS (SELECT 1 FROM pragma_index_list(m.name) l WHERE l.origin = 'pk')
         UNION ALL
         SELECT m.name || ' FOREIGN KEY ('
                || (SELECT group_concat(\"from\", ',') FROM
                      (SELECT g.\"from\" FROM pragma_foreign_key_list(m.name) g
                        WHERE g.id = f.id ORDER BY g.seq))
                || ') REFERENCES ' || f.\"table\" || ' ('
                || (SELECT group_concat(\"to\", ',') FROM
                      (SELECT g.\"to\" FROM pragma_foreign_key_list(m.name) g
                        WHERE g.id = f.id ORDER BY g.seq))
                || ')'
                || CASE f.on_delete WHEN 'CASCADE' THEN ' ON DELETE CASCADE'
                                    WHEN 'SET NULL' THEN ' ON DELETE SET NULL'
                                    WHEN 'RESTRICT' THEN ' ON DELETE RESTRICT'
                                    ELSE '' END
           FROM sqlite_master m, pragma_foreign_key_list(m.name) f
          WHERE m.type = 'table' AND m.name <> '_sqlx_migrations' AND f.seq = 0",
    )
    .fetch_all(lite)
    .await
    .expect("sqlite keys");
    assert_same(
        "keys",
        &pg_keys.into_iter().collect(),
        &lite_keys.into_iter().collect(),
    );

    // Indexes made with CREATE INDEX (not those behind a key), by name,
    // table, uniqueness and columns.
    let pg_indexes: Vec<String> = sqlx::query_scalar(
        "SELECT t.relname || '.' || ic.relname
                || CASE WHEN x.indisunique THEN ' UNIQUE' ELSE '' END || ' ('
                || (SELECT string_agg(a.attname, ',' ORDER BY k.o)
                      FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(n, o)
                      JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.n)
                || ')'
                || CASE WHEN x.indpred IS NOT NULL THEN ' WHERE …' ELSE '' END
           FROM pg_index x
           JOIN pg_class ic ON ic.oid = x.indexrelid
           JOIN pg_class t ON t.oid = x.indrelid
           JOIN pg_namespace n ON n.oid = t.relnamespace
          WHERE n.nspname = 'public' AND t.relname <> '_sqlx_migrations'
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(pool)
    .await
    .expect("pg indexes");
    let lite_indexes: Vec<String> = sqlx::query_scalar(
        "SELECT m.name || '.' || l.name
                || CASE WHEN l.\"unique\" THEN ' UNIQUE' ELSE '' END || ' ('
                || (SELECT group_concat(name, ',') FROM
                      (SELECT i.name FROM pragma_index_info(l.name) i ORDER BY i.seqno))
                || ')'
                || CASE WHEN l.partial THEN ' WHERE …' ELSE '' END
           FROM sqlite_master m, pragma_index_list(m.name) l
          WHERE m.type = 'table' AND m.name <> '_sqlx_migrations' AND l.origin = 'c'",
    )
    .fetch_all(lite)
    .await
    .expect("sqlite indexes");
    assert_same(
        "indexes",
        &pg_indexes.into_iter().collect(),
        &lite_indexes.into_iter().collect(),
    );
}

// ----------------------------------------------------- 5. SQLite settings

/// Every SQLite connection runs with WAL, foreign keys, a busy timeout and
/// `synchronous = NORMAL`: the readers, a transaction of `db.write` (its
/// own connection), and the group-commit writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connections_are_configured() {
    let app = TestApp::sqlite().await;
    let reader = sqlite_reader(&app);
    const SETTINGS: &str = "SELECT (SELECT journal_mode FROM pragma_journal_mode), \
         (SELECT foreign_keys FROM pragma_foreign_keys), \
         (SELECT timeout FROM pragma_busy_timeout), \
         (SELECT synchronous FROM pragma_synchronous)";
    let check = |name: &str, (journal, fk, busy, sync): (String, i64, i64, i64)| {
        assert_eq!(journal.to_lowercase(), "wal", "{name}: journal_mode");
        assert_eq!(fk, 1, "{name}: foreign_keys");
        assert!(busy > 0, "{name}: busy_timeout = {busy}");
        assert_eq!(sync, 1, "{name}: synchronous should be NORMAL");
    };
    let mut conn = reader.acquire().await.expect("acquire");
    let got = sqlx::query_as(SETTINGS)
        .fetch_one(&mut *conn)
        .await
        .expect("reader settings");
    check("reader", got);
    drop(conn);
    let mut tx = app.state.db.write(Scope::system()).await.expect("write tx");
    let got = orgboard::on_tx!(&mut tx, |c| sqlx::query_as(SETTINGS).fetch_one(c).await)
        .expect("write tx settings");
    check("db.write", got);
    drop(tx);
    let writer = app.state.db.sqlite_writer().expect("SQLite's writer");
    let got = writer
        .run(
            |c| -> Result<(String, i64, i64, i64), orgboard::error::ApiError> {
                Ok(c.conn.query_row(SETTINGS, [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?)
            },
        )
        .await
        .expect("writer settings");
    check("writer", got);

    // The readers cannot write.
    let mut conn = reader.acquire().await.expect("acquire");
    let write = sqlx::query("CREATE TABLE reader_write_probe (x INTEGER)")
        .execute(&mut *conn)
        .await
        .map(|r| r.rows_affected());
    let (code, message) = db_error(write, "write on a reader connection");
    assert_eq!(code, "8", "expected SQLITE_READONLY: {message}");
}

/// A transaction from `db.write` takes the write lock at `BEGIN`: another
/// writer on the same file is refused until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_write_transaction_holds_the_write_lock() {
    let app = TestApp::sqlite().await;
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(sqlite_reader(&app))
            .await
            .expect("database file");
    assert!(!file.is_empty(), "not a file database");
    let mut other = SqliteConnectOptions::new()
        .filename(&file)
        .busy_timeout(Duration::ZERO)
        .disable_statement_logging()
        .connect()
        .await
        .expect("second connection");

    let tx = app.state.db.write(Scope::system()).await.expect("write tx");
    let refused = sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .map(|r| r.rows_affected());
    let err = refused.expect_err("a second writer got the lock while db.write was open");
    assert!(
        orgboard::db::is_busy(&err),
        "expected SQLITE_BUSY, got {err}"
    );
    // Commit (not drop) so the lock is released before the next statement.
    tx.commit().await.expect("commit");

    // Once the first transaction ends the lock is free again.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("lock free after the write transaction ended");
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("rollback");
    other.close().await.expect("close");
}

// -------------------------------------------------------------- 6. ready

/// `/readyz`'s check, and what the README's "Upgrading" says of a node of
/// the previous version once a newer one has migrated: it stays ready, but
/// it refuses to migrate (so to start).
async fn ready_checks_migrations(app: TestApp) {
    app.state
        .db
        .ready()
        .await
        .expect("ready on a migrated database");
    let newer = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (99999, 'from a newer release', TRUE, $1, 0)";
    let checksum = vec![0u8; 48];
    let added = match &app.state.db {
        Db::Postgres(pool, ..) => sqlx::query(newer)
            .bind(&checksum)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Db::Sqlite { .. } => {
            let mut tx = app.state.db.write(Scope::system()).await.expect("write");
            let n = orgboard::on_tx!(&mut tx, |c| sqlx::query(newer)
                .bind(&checksum)
                .execute(c)
                .await
                .map(|r| r.rows_affected()));
            tx.commit().await.expect("commit");
            n
        }
    };
    assert_eq!(added.expect("a newer release's migration"), 1);
    app.state
        .db
        .ready()
        .await
        .expect("still ready beside a newer release's migration");
    let refused = app.state.db.migrate().await.expect_err("migrates anyway");
    assert!(
        refused
            .to_string()
            .contains("previously applied but is missing"),
        "{refused:#}"
    );
    // It really looks: with a migration forgotten it is not ready.
    let forgotten = match &app.state.db {
        Db::Postgres(pool, ..) => sqlx::query("DELETE FROM _sqlx_migrations")
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
        Db::Sqlite { .. } => {
            let mut tx = app.state.db.write(Scope::system()).await.expect("write");
            let n = orgboard::on_tx!(&mut tx, |c| sqlx::query("DELETE FROM _sqlx_migrations")
                .execute(c)
                .await
                .map(|r| r.rows_affected()));
            tx.commit().await.expect("commit");
            n
        }
    };
    assert!(forgotten.expect("delete") > 0);
    assert!(
        app.state.db.ready().await.is_err(),
        "ready with no migrations applied"
    );
}

// ------------------------------------- PostgreSQL task writes in four trips

/// On PostgreSQL a task create, update, move (every anchor form) and
/// delete each take four round trips — `BEGIN` with the tenant and the
/// locks, one statement that checks the membership and reads what the
/// write needs, the writes as one statement, `COMMIT` — and the `BEGIN`
/// enters an organization only for its members: a non-member's unit sees
/// no tenant, locks nothing and is answered `404`, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn task_writes_take_two_round_trips_and_lock_only_for_members() {
    use orgboard::orgs::context::OrgRequest;
    use orgboard::tasks::{CreateTaskBody, MoveTaskBody, UpdateTaskBody, write};

    let app = TestApp::postgres().await;
    let db = &app.state.db;
    let ada = app.signup("ada").await;
    let eve = app.signup("eve").await;
    let path = app.new_list(&ada, ada.personal_org).await;
    let list = list_of(&path);
    let org = OrgRequest::for_member(ada.id, ada.personal_org, None);
    let create: CreateTaskBody = serde_json::from_value(json!({
        "title": "counted", "assignee_ids": [ada.id]
    }))
    .unwrap();

    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut u = db.unit(Scope::user(ada.id)).await.unwrap();
        let created = write::create(&mut u, &org, list, &create, None)
            .await
            .expect("create");
        assert_eq!(u.round_trips_to_commit(), 2, "create");
        u.commit().await.unwrap();
        let orgboard::idempotency::Created::New(task) = created else {
            panic!("a create without a key is new");
        };
        ids.push(task.id);
    }

    // Whether another transaction can lock the row at once.
    let free = |table: &'static str, id: Uuid| async move {
        let mut other = db
            .write(Scope::tenant(ada.id, ada.personal_org))
            .await
            .unwrap();
        let locked: Result<Option<i32>, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT 1 FROM {table} WHERE id = $1 FOR NO KEY UPDATE NOWAIT"
        )))
        .bind(id)
        .fetch_optional(pg(&mut other))
        .await;
        // Rolled back now, not when the dropped transaction's queued
        // `ROLLBACK` happens to be sent: the row lock this took must be gone
        // before the next check (under a loaded run it lingered and the
        // next `NOWAIT` failed on the checker's own earlier lock).
        if let TxConn::Postgres(tx) = other.conn {
            tx.rollback().await.unwrap();
        }
        match locked {
            Ok(found) => {
                assert_eq!(found, Some(1), "{table} {id} exists");
                true
            }
            Err(e) => {
                assert!(e.to_string().contains("could not obtain lock"), "{e}");
                false
            }
        }
    };

    let update: UpdateTaskBody = serde_json::from_value(json!({
        "title": "renamed", "assignee_ids": [], "priority": "high"
    }))
    .unwrap();
    let mut u = db.unit(Scope::user(ada.id)).await.unwrap();
    let updated = write::update(&mut u, &org, ids[0], Some("\"1\""), &update)
        .await
        .expect("update");
    assert_eq!(u.round_trips_to_commit(), 2, "update");
    // The reading statement locked the task; the list stays free.
    assert!(!free("tasks", ids[0]).await, "the updated task is locked");
    assert!(free("lists", list).await, "no list is locked");
    u.commit().await.unwrap();
    assert!(free("tasks", ids[0]).await, "the commit let it go");
    assert_eq!((updated.title.as_str(), updated.version), ("renamed", 2));
    assert!(updated.assignee_ids.is_empty());

    let moves = [
        json!({ "list_id": list }),
        json!({ "list_id": list, "after_id": ids[1] }),
        json!({ "list_id": list, "before_id": ids[1] }),
        json!({ "list_id": list, "after_id": ids[1], "before_id": ids[2] }),
    ];
    for body in moves {
        let body: MoveTaskBody = serde_json::from_value(body.clone()).unwrap();
        let mut u = db.unit(Scope::user(ada.id)).await.unwrap();
        write::move_to(&mut u, &org, ids[0], None, &body)
            .await
            .expect("move");
        assert_eq!(u.round_trips_to_commit(), 2, "move {body:?}");
        u.commit().await.unwrap();
    }
    let mut order = Vec::new();
    for id in &ids {
        let t = app
            .get(
                &format!("/api/v1/orgs/{}/tasks/{id}", ada.personal_org),
                &ada.token,
            )
            .await
            .expect(200);
        order.push((t.json["position"].as_str().unwrap().to_owned(), *id));
    }
    order.sort();
    let order: Vec<Uuid> = order.into_iter().map(|(_, id)| id).collect();
    let want = vec![ids[1], ids[0], ids[2]];
    assert_eq!(
        order, want,
        "the last move put the task between its anchors"
    );

    let mut u = db.unit(Scope::user(ada.id)).await.unwrap();
    write::delete(&mut u, &org, ids[2], None)
        .await
        .expect("delete");
    assert_eq!(u.round_trips_to_commit(), 2, "delete");
    u.commit().await.unwrap();

    // Eve is no member of Ada's organization. Her unit's `BEGIN` names Ada's
    // organization (the tenant is set from the path, as a read's is), but
    // the statement that reads and locks joins the membership first: every
    // write (a comment's too) is answered 404, locks nothing and writes
    // nothing.
    let intruder = OrgRequest::for_member(eve.id, ada.personal_org, None);
    let status = |r: Result<(), orgboard::domain::DomainError>| {
        r.err()
            .map(|e| orgboard::error::ApiError::from(e).status().as_u16())
    };
    let audit_before = app.audit_count(ada.personal_org).await;
    let mut u = db.unit(Scope::user(eve.id)).await.unwrap();
    let refused = write::create(&mut u, &intruder, list, &create, None).await;
    assert_eq!(status(refused.map(|_| ())), Some(404), "create");
    assert!(free("lists", list).await);
    drop(u);
    let move_body: MoveTaskBody = serde_json::from_value(json!({ "list_id": list })).unwrap();
    let comment = orgboard::comments::CommentBody {
        body: "not hers to add".into(),
    };
    for what in ["update", "move", "delete", "comment"] {
        let mut u = db.unit(Scope::user(eve.id)).await.unwrap();
        let refused = match what {
            "update" => write::update(&mut u, &intruder, ids[0], None, &update)
                .await
                .map(|_| ()),
            "move" => write::move_to(&mut u, &intruder, ids[0], None, &move_body)
                .await
                .map(|_| ()),
            // A comment's create reads and locks the task the same way.
            "comment" => {
                orgboard::comments::write::create(&mut u, &intruder, ids[0], &comment, None)
                    .await
                    .map(|_| ())
            }
            _ => write::delete(&mut u, &intruder, ids[0], None).await,
        };
        assert_eq!(status(refused), Some(404), "{what}");
        // Her unit is still open (its transaction too): the task is free.
        assert!(
            free("tasks", ids[0]).await,
            "{what}: the intruder locked the task"
        );
        u.commit().await.unwrap();
    }
    assert_eq!(app.audit_count(ada.personal_org).await, audit_before);
    let kept = app
        .get(
            &format!("/api/v1/orgs/{}/tasks/{}", ada.personal_org, ids[0]),
            &ada.token,
        )
        .await
        .expect(200);
    assert_eq!(
        kept.json["version"],
        json!(6),
        "nothing of Eve's was written"
    );

    // The same through HTTP with the organization named by its slug (the
    // `BEGIN` matches the slug), and with a slug that is not one (the
    // ordinary path, 404).
    let orgs = app.get("/api/v1/orgs", &ada.token).await.expect(200);
    let slug = orgs.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == json!(ada.personal_org))
        .and_then(|o| o["slug"].as_str())
        .unwrap()
        .to_owned();
    let by_slug = path.replace(&ada.personal_org.to_string(), &slug);
    app.post(&by_slug, &ada.token, json!({ "title": "by slug" }))
        .await
        .expect(201);
    let not_a_slug = path.replace(&ada.personal_org.to_string(), "Not'a-Slug");
    app.post(&not_a_slug, &ada.token, json!({ "title": "x" }))
        .await
        .expect(404);
    app.post(&path, &eve.token, json!({ "title": "x" }))
        .await
        .expect(404);
}

/// PostgreSQL numbers committed events after the fact (the dispatcher), a
/// batch of 1 000 at a time. A backlog of more than two batches, of two
/// organizations interleaved, is numbered whole: each organization's ids
/// continue from its last, gapless, in commit (`seq`) order. (The
/// statement was rewritten to take the batch before numbering it and to
/// be planned afresh on every pass; BENCHMARKS.md, "Event numbering".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn a_backlog_of_events_is_numbered_per_organization_in_order() {
    let app = TestApp::postgres().await;
    let (ada, bob) = (app.signup("ada").await, app.signup("bob").await);
    let (a, b) = (ada.personal_org, bob.personal_org);
    app.state.live.flush(&app.state.db).await.expect("flush");
    let pool = pg_pool(&app);
    let last = |org: Uuid| async move {
        sqlx::query_scalar::<_, Option<i64>>("SELECT max(id) FROM events WHERE org_id = $1")
            .bind(org)
            .fetch_one(pool)
            .await
            .expect("max id")
            .unwrap_or(0)
    };
    let (last_a, last_b) = (last(a).await, last(b).await);
    // 2 600 committed, unnumbered rows as a burst of writes leaves them
    // (the owner's pool: a superuser here), a, b, a, b, … by `seq`.
    sqlx::query(
        "INSERT INTO events (org_id, type, entity, at) \
         SELECT CASE WHEN g % 2 = 0 THEN $1 ELSE $2 END, 'task.created', '{}'::jsonb, now() \
         FROM generate_series(1, 2600) g ORDER BY g",
    )
    .bind(a)
    .bind(b)
    .execute(pg_pool(&app))
    .await
    .expect("backlog");
    // The node's dispatcher may take some of it first; either way, after
    // a flush nothing is left.
    app.state.live.flush(&app.state.db).await.expect("flush");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE id IS NULL")
        .fetch_one(pg_pool(&app))
        .await
        .expect("pending");
    assert_eq!(pending, 0, "events left unnumbered");
    for (org, before) in [(a, last_a), (b, last_b)] {
        let ids: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM events WHERE org_id = $1 AND id > $2 ORDER BY seq")
                .bind(org)
                .bind(before)
                .fetch_all(pg_pool(&app))
                .await
                .expect("ids");
        let expected: Vec<i64> = (before + 1..=before + 1300).collect();
        assert_eq!(
            ids, expected,
            "organization {org}: ids not gapless in seq order"
        );
    }
}

/// The id under `key` of an answer's JSON.
fn uuid_at(v: &Value, key: &str) -> Uuid {
    v[key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no id at {key} in {v}"))
}

/// The list id of a `…/lists/{list}/tasks` path ([`TestApp::new_list`]'s).
fn list_of(tasks_path: &str) -> Uuid {
    tasks_path
        .trim_end_matches("/tasks")
        .rsplit('/')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("list id")
}

/// A task create locks no list on PostgreSQL (its key carries a tie-break,
/// `orgboard::domain::ordering::key_after_last`), so the list it read can
/// be deleted before its insert reaches the database. The insert's foreign
/// key then refuses it: the create answers `404` as if the list had been
/// gone first, and nothing of it is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn a_create_whose_list_is_deleted_before_it_commits_is_not_found() {
    use orgboard::domain::{DomainError, ErrorKind};
    let app = TestApp::postgres().await;
    let ada = app.signup("ada").await;
    let org = ada.personal_org;
    let tasks_path = app.new_list(&ada, org).await;
    let list = list_of(&tasks_path);
    let audit_before = app.audit_count(org).await;

    // The create reads the list and its last key (the first round trip)
    // and keeps its writes for the commit.
    let mut unit = app.state.db.unit(Scope::user(ada.id)).await.expect("unit");
    let request = orgboard::orgs::context::OrgRequest::for_member(ada.id, org, None);
    let body = orgboard::tasks::CreateTaskBody {
        title: "late".into(),
        description: None,
        status: None,
        priority: None,
        assignee_ids: None,
        label_ids: None,
        due_date: None,
    };
    orgboard::tasks::write::create(&mut unit, &request, list, &body, None)
        .await
        .expect("the list is there when the create reads it");
    // Meanwhile the list is deleted: nothing waits for the create.
    app.delete(&format!("/api/v1/orgs/{org}/lists/{list}"), &ada.token)
        .await
        .expect(204);
    let audit_deleted = app.audit_count(org).await;
    assert_eq!(audit_deleted, audit_before + 1, "the delete is recorded");

    let err = DomainError::from(unit.commit().await.expect_err("the insert is refused"));
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    // Nothing of the create was kept: no task, no audit row.
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE org_id = $1")
        .bind(org)
        .fetch_one(pg_pool(&app))
        .await
        .expect("count");
    assert_eq!(tasks, 0);
    assert_eq!(app.audit_count(org).await, audit_deleted);
}

/// The one conflict a lock-free create can meet on PostgreSQL — another
/// task took its exact key in the same list at the same moment (about one
/// in 9·10⁸ creates that read the same last key) — is a `409
/// position_taken`, never a `500`; the route runs such a create again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn a_taken_order_key_is_a_conflict_not_a_fault() {
    use orgboard::domain::{DomainError, ErrorKind};
    let app = TestApp::postgres().await;
    let ada = app.signup("ada").await;
    let org = ada.personal_org;
    let tasks_path = app.new_list(&ada, org).await;
    let first = app
        .post(&tasks_path, &ada.token, json!({ "title": "first" }))
        .await
        .expect(201);
    let task = |k: &str| uuid_at(&first.json, k);
    let position = first.json["position"]
        .as_str()
        .expect("position")
        .to_owned();
    let mut unit = app
        .state
        .db
        .unit(Scope::tenant(ada.id, org))
        .await
        .expect("unit");
    unit.defer(
        "INSERT INTO tasks (org_id, id, board_id, list_id, title, description, status, priority, \
         position, created_by, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'twin', '', 'todo', 1, $5, $6, 1, $7, $7)",
        &[
            Arg::from(org),
            Arg::from(Uuid::now_v7()),
            Arg::from(task("board_id")),
            Arg::from(task("list_id")),
            Arg::from(position.as_str()),
            Arg::from(ada.id),
            Arg::from(orgboard::db::now()),
        ],
    )
    .await
    .expect("deferred");
    let err = DomainError::from(unit.commit().await.expect_err("the key is taken"));
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err:?}");
    assert_eq!(err.code(), orgboard::domain::error::POSITION_TAKEN);
}

/// The move counterpart of the test above: a move locks the task, not its
/// destination list, so that list can be deleted before the move's update
/// reaches the database. The update's foreign key refuses it: `404`, and
/// the task stays where it was, unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
async fn a_move_whose_destination_is_deleted_before_it_commits_is_not_found() {
    use orgboard::domain::{DomainError, ErrorKind};
    let app = TestApp::postgres().await;
    let ada = app.signup("ada").await;
    let org = ada.personal_org;
    let tasks_path = app.new_list(&ada, org).await;
    let task = app
        .post(&tasks_path, &ada.token, json!({ "title": "stays" }))
        .await
        .expect(201)
        .json;
    let id = |k: &str| uuid_at(&task, k);
    let destination = app
        .post(
            &format!("/api/v1/orgs/{org}/boards/{}/lists", id("board_id")),
            &ada.token,
            json!({ "name": "Gone soon" }),
        )
        .await
        .expect(201);
    let destination = uuid_at(&destination.json, "id");

    let mut unit = app.state.db.unit(Scope::user(ada.id)).await.expect("unit");
    let request = orgboard::orgs::context::OrgRequest::for_member(ada.id, org, None);
    let body = orgboard::tasks::MoveTaskBody {
        list_id: destination,
        after_id: None,
        before_id: None,
    };
    orgboard::tasks::write::move_to(&mut unit, &request, id("id"), None, &body)
        .await
        .expect("the destination is there when the move reads it");
    app.delete(
        &format!("/api/v1/orgs/{org}/lists/{destination}"),
        &ada.token,
    )
    .await
    .expect(204);

    let err = DomainError::from(unit.commit().await.expect_err("the update is refused"));
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err:?}");
    let after = app
        .get(
            &format!("/api/v1/orgs/{org}/tasks/{}", id("id")),
            &ada.token,
        )
        .await
        .expect(200)
        .json;
    assert_eq!(after["list_id"], task["list_id"]);
    assert_eq!(after["position"], task["position"]);
    assert_eq!(after["version"], task["version"]);
}
