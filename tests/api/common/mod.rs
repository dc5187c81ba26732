//! Test harness: every test gets its own fresh database and runs through the
//! real router, once on SQLite and once on PostgreSQL.
//!
//! * SQLite: a file in a temporary directory.
//! * PostgreSQL: a new database created through `ORGBOARD_TEST_POSTGRES_URL`
//!   (any database on the server; the user needs CREATEDB), migrated, and
//!   dropped when the test ends. Requests run as `orgboard_app` under
//!   row-level security exactly as in production, even when that URL's user
//!   is a superuser. Without the variable, PostgreSQL tests are reported as
//!   *ignored* with the reason (the build script sets `orgboard_no_postgres`;
//!   `orgboard_no_redis` likewise for `ORGBOARD_TEST_REDIS_URL`), except
//!   under CI (`CI` set), where they run and fail on the missing URL. A
//!   test never returns early and passes: mark one that needs a service
//!   with `#[cfg_attr(orgboard_no_postgres, ignore = "…")]`.
//!
//! Write a test as `async fn name(app: TestApp)` and list it in
//! `backend_tests!(name, …)`: that makes `name::sqlite` and `name::postgres`.

#![allow(dead_code, clippy::unwrap_used)]

pub mod live;

use std::str::FromStr;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use orgboard::config::Config;
use orgboard::db::Backend;
use orgboard::state::AppState;
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use tower::ServiceExt;
use uuid::Uuid;

/// Declares each listed `async fn(TestApp)` as a test on both backends.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::TestApp::sqlite().await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(orgboard_no_postgres, ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL")]
                async fn postgres() {
                    super::$name($crate::common::TestApp::postgres().await).await;
                }
            }
        )*
    };
}

/// An application on a fresh database.
pub struct TestApp {
    /// The state (database, config, keys) behind the router.
    pub state: AppState,
    /// The real router.
    pub router: Router,
    /// Which backend.
    pub backend: Backend,
    /// Keeps the data directory alive.
    pub dir: tempfile::TempDir,
    pg: Option<PgDatabase>,
}

/// A fresh PostgreSQL database, dropped when this is.
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// Creates one through `ORGBOARD_TEST_POSTGRES_URL` and returns it with
    /// its URL.
    pub async fn create() -> (Self, String) {
        let admin_url = postgres_url();
        let name = format!("orgboard_test_{}", Uuid::now_v7().simple());
        let mut admin = admin_connect(&admin_url)
            .await
            .expect("cannot connect to ORGBOARD_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let mut url = url::Url::parse(&admin_url).expect("valid URL");
        url.set_path(&name);
        (Self { admin_url, name }, url.to_string())
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut c) = admin_connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            });
        })
        .join();
    }
}

async fn admin_connect(url: &str) -> Result<sqlx::PgConnection, sqlx::Error> {
    PgConnectOptions::from_str(url)?
        .disable_statement_logging()
        .connect()
        .await
}

/// The PostgreSQL server URL for tests. A test that calls this without the
/// variable fails: outside CI such tests are marked ignored at build time
/// (`orgboard_no_postgres`), and CI never skips.
pub fn postgres_url() -> String {
    match std::env::var("ORGBOARD_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "ORGBOARD_TEST_POSTGRES_URL is not set: this test needs PostgreSQL (under CI every \
             such test must run; elsewhere it should have been ignored — is it missing \
             #[cfg_attr(orgboard_no_postgres, ignore = ...)]?)"
        ),
    }
}

/// The Redis URL for tests (`ORGBOARD_TEST_REDIS_URL`); fails without it,
/// like [`postgres_url`] (such tests are ignored via `orgboard_no_redis`).
/// Give each test its own `redis_prefix` so tests sharing one Redis do not
/// meet.
pub fn redis_url() -> String {
    match std::env::var("ORGBOARD_TEST_REDIS_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "ORGBOARD_TEST_REDIS_URL is not set: this test needs Redis (under CI every such \
             test must run; elsewhere it should have been ignored — is it missing \
             #[cfg_attr(orgboard_no_redis, ignore = ...)]?)"
        ),
    }
}

/// A response, with its body parsed as JSON (`Value::Null` when empty or
/// not JSON; the raw text is kept).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Resp {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// The `Content-Type` header.
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts a problem+json error with this status and machine code.
    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Self {
        let r = self.expect(status);
        assert_eq!(r.content_type(), "application/problem+json", "{}", r.text);
        assert_eq!(r.json["status"], status, "{}", r.text);
        assert_eq!(r.json["code"], code, "{}", r.text);
        assert!(r.json["title"].is_string() && r.json["detail"].is_string());
        r
    }
}

/// A signed-up user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh: String,
    /// The personal organization made at sign-up.
    pub personal_org: Uuid,
}

pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    /// On a fresh SQLite file.
    pub async fn sqlite() -> Self {
        Self::sqlite_with(|_| {}).await
    }

    /// On a fresh SQLite file, with adjusted settings.
    pub async fn sqlite_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path().to_path_buf(), None);
        adjust(&mut config);
        Self::start(config, dir, None).await
    }

    /// On a fresh PostgreSQL database.
    pub async fn postgres() -> Self {
        Self::postgres_with(|_| {}).await
    }

    /// On a fresh PostgreSQL database with adjusted settings.
    pub async fn postgres_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let (db, url) = PgDatabase::create().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(dir.path().to_path_buf(), Some(url));
        adjust(&mut config);
        Self::start(config, dir, Some(db)).await
    }

    /// On the given backend with adjusted settings.
    pub async fn with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite_with(adjust).await,
            Backend::Postgres => Self::postgres_with(adjust).await,
        }
    }

    async fn start(config: Config, dir: tempfile::TempDir, pg: Option<PgDatabase>) -> Self {
        let state = orgboard::server::prepare(config).await.expect("start app");
        let backend = state.db.backend();
        let router = orgboard::http::router(state.clone());
        Self {
            state,
            router,
            backend,
            dir,
            pg,
        }
    }

    /// Sends a request through the router.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&b).unwrap())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    /// Sends a prepared request through the router.
    pub async fn send(&self, req: Request<Body>) -> Resp {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        // An event stream never ends: keep its headers, drop its body.
        let streaming = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let bytes = if streaming {
            Default::default()
        } else {
            res.into_body().collect().await.unwrap().to_bytes()
        };
        // Decoded as a browser would (the /docs assets are stored gzipped).
        let bytes = if headers
            .get("content-encoding")
            .is_some_and(|v| v.as_bytes() == b"gzip")
        {
            use std::io::Read as _;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            out.into()
        } else {
            bytes
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            json,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Signs up a user with a unique email derived from `name`.
    pub async fn signup(&self, name: &str) -> TestUser {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase(),
            Uuid::now_v7().simple()
        );
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/signup",
                None,
                Some(json!({ "email": email, "password": PASSWORD, "name": name })),
            )
            .await
            .expect(201);
        let me = self
            .get("/api/v1/orgs", r.json["access_token"].as_str().unwrap())
            .await
            .expect(200);
        TestUser {
            id: r.json["user"]["id"].as_str().unwrap().parse().unwrap(),
            email,
            password: PASSWORD.into(),
            token: r.json["access_token"].as_str().unwrap().into(),
            refresh: r.json["refresh_token"].as_str().unwrap().into(),
            personal_org: me.json["items"][0]["id"].as_str().unwrap().parse().unwrap(),
        }
    }

    /// The slug of `org`, as `by` (a member) reads it.
    pub async fn slug(&self, org: Uuid, by: &TestUser) -> String {
        self.get(&format!("/api/v1/orgs/{org}"), &by.token)
            .await
            .expect(200)
            .json["slug"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates an organization owned by `owner`; returns its id.
    pub async fn create_org(&self, owner: &TestUser, name: &str) -> Uuid {
        let r = self
            .post("/api/v1/orgs", &owner.token, json!({ "name": name }))
            .await
            .expect(201);
        r.json["id"].as_str().unwrap().parse().unwrap()
    }

    /// Invites `user` to `org` with `role` (by `admin`) and accepts.
    pub async fn join(&self, org: Uuid, admin: &TestUser, user: &TestUser, role: &str) {
        let r = self
            .post(
                &format!("/api/v1/orgs/{org}/invites"),
                &admin.token,
                json!({ "email": user.email, "role": role }),
            )
            .await
            .expect(201);
        let token = r.json["token"].as_str().unwrap().to_owned();
        self.post(
            "/api/v1/invites/accept",
            &user.token,
            json!({ "token": token }),
        )
        .await
        .expect(200);
    }

    /// Creates a board with one list in `org`; returns the path to create
    /// tasks in that list (`/api/v1/orgs/{org}/lists/{list}/tasks`).
    pub async fn new_list(&self, owner: &TestUser, org: Uuid) -> String {
        let board = self
            .post(
                &format!("/api/v1/orgs/{org}/boards"),
                &owner.token,
                json!({ "name": "Board" }),
            )
            .await
            .expect(201);
        let board = board.json["id"].as_str().unwrap();
        let list = self
            .post(
                &format!("/api/v1/orgs/{org}/boards/{board}/lists"),
                &owner.token,
                json!({ "name": "List" }),
            )
            .await
            .expect(201);
        format!(
            "/api/v1/orgs/{org}/lists/{}/tasks",
            list.json["id"].as_str().unwrap()
        )
    }

    /// Signs up a new user and makes them a `role` member of `org`.
    pub async fn member(&self, org: Uuid, owner: &TestUser, role: &str) -> TestUser {
        let u = self.signup(role).await;
        self.join(org, owner, &u, role).await;
        u
    }

    /// A read transaction inside `org`'s tenant (as no user).
    pub async fn tenant_read(&self, org: Uuid) -> orgboard::db::Tx {
        self.state
            .db
            .read(orgboard::db::Scope::tenant(Uuid::nil(), org))
            .await
            .unwrap()
    }

    /// Number of audit rows of `org` (read inside the tenant).
    pub async fn audit_count(&self, org: Uuid) -> i64 {
        let mut tx = self.tenant_read(org).await;
        orgboard::on_tx!(&mut tx, |c| sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM audit_log WHERE org_id = $1"
        )
        .bind(org)
        .fetch_one(c)
        .await)
        .unwrap()
    }

    /// The assignee and label ids every task of `org` keeps on its row
    /// (migration 0009), by task, read inside the tenant.
    pub async fn kept_relation_ids(&self, org: Uuid) -> Vec<(Uuid, String, String)> {
        let mut tx = self.tenant_read(org).await;
        orgboard::on_tx!(&mut tx, |c| sqlx::query_as::<_, (Uuid, String, String)>(
            "SELECT id, assignee_ids, label_ids FROM tasks WHERE org_id = $1 ORDER BY id"
        )
        .bind(org)
        .fetch_all(c)
        .await)
        .unwrap()
    }

    /// Tasks of `org` whose kept assignee or label ids differ from the
    /// relation rows (`task_assignees`, `task_labels`): none, always.
    pub async fn relation_ids_drift(&self, org: Uuid) -> Vec<Uuid> {
        use std::collections::BTreeMap;
        let mut tx = self.tenant_read(org).await;
        let mut want: BTreeMap<Uuid, [Vec<Uuid>; 2]> = BTreeMap::new();
        for (i, table, col) in [
            (0, "task_assignees", "user_id"),
            (1, "task_labels", "label_id"),
        ] {
            let sql = format!("SELECT task_id, {col} FROM {table} WHERE org_id = $1");
            let rows = orgboard::on_tx!(&mut tx, |c| sqlx::query_as::<_, (Uuid, Uuid)>(
                sqlx::AssertSqlSafe(sql.as_str())
            )
            .bind(org)
            .fetch_all(c)
            .await)
            .unwrap();
            for (task, id) in rows {
                want.entry(task).or_default()[i].push(id);
            }
        }
        drop(tx);
        self.kept_relation_ids(org)
            .await
            .into_iter()
            .filter(|(id, assignees, labels)| {
                let [a, l] = want.remove(id).unwrap_or_default();
                *assignees != orgboard::tasks::ids_text(&a)
                    || *labels != orgboard::tasks::ids_text(&l)
            })
            .map(|(id, _, _)| id)
            .collect()
    }
}
