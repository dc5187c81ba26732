//! Two `orgboard` server processes on one PostgreSQL database and one Redis
//! behave as one: an event written through node A reaches a subscriber on
//! node B (SSE and WebSocket); node B never serves a board view older than
//! a write acknowledged by A, and patches the view it keeps with A's task
//! changes; the login rate limit is shared; a scheduled job runs once.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::common::live::{self, request};
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_orgboard");
const WAIT: Duration = Duration::from_secs(5);

struct Node {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Cluster {
    a: Node,
    b: Node,
    db_url: String,
    _db: crate::common::PgDatabase,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_node(db_url: &str, redis_url: &str, prefix: &str) -> Node {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ORGBOARD_ADDR", addr.to_string())
        .env("ORGBOARD_DATA_DIR", dir.path())
        .env("ORGBOARD_DATABASE_URL", db_url)
        .env("ORGBOARD_REDIS_URL", redis_url)
        .env("ORGBOARD_REDIS_PREFIX", prefix)
        .env(
            "ORGBOARD_SECRET",
            "multi-node-secret-multi-node-secret-0123",
        )
        .env("ORGBOARD_ARGON2_MEMORY_KIB", "64")
        .env("ORGBOARD_ARGON2_ITERATIONS", "1")
        .env("ORGBOARD_RATE_LIMIT_PER_ACCOUNT", "3")
        .env("ORGBOARD_RATE_LIMIT_PER_IP", "1000")
        .env("ORGBOARD_SCHEDULER_TICK_SECS", "1")
        .env("ORGBOARD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Node {
        child,
        addr,
        _dir: dir,
    }
}

async fn ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            let (status, _) = request(addr, "GET", "/readyz", None, None).await;
            if status == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "node {addr} not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two nodes on a fresh database.
async fn cluster() -> Cluster {
    let redis_url = crate::common::redis_url();
    let (db, db_url) = crate::common::PgDatabase::create().await;
    let prefix = format!("test-{}", Uuid::now_v7().simple());
    // A migrates first; B then finds the schema in place.
    let a = spawn_node(&db_url, &redis_url, &prefix);
    ready(a.addr).await;
    let b = spawn_node(&db_url, &redis_url, &prefix);
    ready(b.addr).await;
    Cluster {
        a,
        b,
        db_url,
        _db: db,
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

struct World {
    token: String,
    email: String,
    org: String,
    board: String,
    list: String,
}

async fn world(at: SocketAddr) -> World {
    let email = format!("multi-{}@example.com", Uuid::now_v7().simple());
    let (s, signup) = request(
        at,
        "POST",
        "/api/v1/auth/signup",
        None,
        Some(json!({"email": email, "password": "correct horse battery", "name": "Multi"})),
    )
    .await;
    assert_eq!(s, 201, "{signup}");
    let token = signup["access_token"].as_str().unwrap().to_owned();
    let (_, org) = request(
        at,
        "POST",
        "/api/v1/orgs",
        Some(&token),
        Some(json!({"name": "Multi"})),
    )
    .await;
    let org = id(&org);
    let (_, board) = request(
        at,
        "POST",
        &format!("/api/v1/orgs/{org}/boards"),
        Some(&token),
        Some(json!({"name": "B"})),
    )
    .await;
    let board = id(&board);
    let (_, list) = request(
        at,
        "POST",
        &format!("/api/v1/orgs/{org}/boards/{board}/lists"),
        Some(&token),
        Some(json!({"name": "L"})),
    )
    .await;
    World {
        token,
        email,
        org,
        board,
        list: id(&list),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    any(orgboard_no_postgres, orgboard_no_redis),
    ignore = "needs PostgreSQL and Redis: set ORGBOARD_TEST_POSTGRES_URL and ORGBOARD_TEST_REDIS_URL"
)]
async fn two_nodes_behave_as_one() {
    // Before the nodes start: their first schedule runs happen during
    // start-up, so the window that counts clock boundaries must reach back
    // to it (taken later, a 15-minute boundary crossed during start-up made
    // the test expect one run where two were right).
    let started = chrono::Utc::now();
    let c = cluster().await;
    let w = world(c.a.addr).await;
    let events = format!("/api/v1/orgs/{}/events", w.org);

    // 1. An event written through A reaches subscribers on B (SSE and
    //    WebSocket) and on A, in order.
    let mut on_b = live::sse(c.b.addr, &events, Some(&w.token), None).await;
    assert_eq!(on_b.status, 200);
    let mut ws_b = live::ws(c.b.addr, &events, &w.token).await.unwrap();
    let mut on_a = live::sse(c.a.addr, &events, Some(&w.token), None).await;
    let mut created = Vec::new();
    for i in 0..10 {
        let (s, task) = request(
            c.a.addr,
            "POST",
            &format!("/api/v1/orgs/{}/lists/{}/tasks", w.org, w.list),
            Some(&w.token),
            Some(json!({"title": format!("t{i}")})),
        )
        .await;
        assert_eq!(s, 201);
        created.push(id(&task));
    }
    let got_b = on_b.take(10, WAIT).await;
    let got_a = on_a.take(10, WAIT).await;
    for (i, (eb, ea)) in got_b.iter().zip(&got_a).enumerate() {
        assert_eq!(eb.event.as_deref(), Some("task.created"));
        assert_eq!(eb.data["entity"]["id"], created[i].as_str());
        assert_eq!(eb.id, ea.id, "both nodes number alike");
        let wsm = live::ws_next(&mut ws_b, WAIT).await.unwrap();
        assert_eq!(wsm["entity"]["id"], created[i].as_str());
    }
    let n: Vec<i64> = got_b
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(n.windows(2).all(|p| p[1] == p[0] + 1), "{n:?}");

    // Writes through both nodes at once still give one gapless sequence.
    let mut handles = Vec::new();
    for (k, addr) in [c.a.addr, c.b.addr, c.a.addr, c.b.addr]
        .into_iter()
        .enumerate()
    {
        let path = format!("/api/v1/orgs/{}/lists/{}/tasks", w.org, w.list);
        let token = w.token.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..5 {
                let (s, _) = request(
                    addr,
                    "POST",
                    &path,
                    Some(&token),
                    Some(json!({"title": format!("c{k}-{i}")})),
                )
                .await;
                assert_eq!(s, 201);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let burst = on_b.take(20, WAIT).await;
    let n2: Vec<i64> = burst
        .iter()
        .map(|e| e.id.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(n2[0], n[9] + 1);
    assert!(n2.windows(2).all(|p| p[1] == p[0] + 1), "{n2:?}");

    // Resume on B after a disconnect, from an id first seen on A.
    drop(on_b);
    let last = got_a[4].id.clone().unwrap();
    let mut resumed = live::sse(c.b.addr, &events, Some(&w.token), Some(&last)).await;
    let replay = resumed.take(25, WAIT).await;
    assert_eq!(replay[0].data["entity"]["id"], created[5].as_str());
    assert_eq!(replay.last().unwrap().id, burst.last().unwrap().id);

    // 2. B never serves a board view older than a write acknowledged by A.
    let board = format!("/api/v1/orgs/{}/boards/{}", w.org, w.board);
    let task = format!("/api/v1/orgs/{}/tasks/{}", w.org, created[0]);
    for i in 0..15 {
        let (s, _) = request(c.b.addr, "GET", &board, Some(&w.token), None).await;
        assert_eq!(s, 200); // fills B's cache (and Redis)
        let (s, _) = request(c.b.addr, "GET", &board, Some(&w.token), None).await;
        assert_eq!(s, 200); // served from the cache
        let title = format!("renamed-{i}");
        let (s, _) = request(
            c.a.addr,
            "PATCH",
            &task,
            Some(&w.token),
            Some(json!({"title": title})),
        )
        .await;
        assert_eq!(s, 200);
        for node in [c.b.addr, c.a.addr] {
            let (_, view) = request(node, "GET", &board, Some(&w.token), None).await;
            assert_eq!(
                view["lists"][0]["tasks"][0]["title"],
                title.as_str(),
                "stale view on {node}"
            );
        }
    }

    // 2b. A change written through A patches the view B keeps (A publishes
    //     its patch through Redis): B then serves the view from its cache,
    //     with the change.
    let a = c.a.addr;
    let rename = |title: &'static str| {
        let task = task.clone();
        let token = w.token.clone();
        async move {
            let (s, _) = request(
                a,
                "PATCH",
                &task,
                Some(&token),
                Some(json!({"title": title})),
            )
            .await;
            assert_eq!(s, 200);
        }
    };
    rename("read-on-b").await;
    let (_, view) = request(c.b.addr, "GET", &board, Some(&w.token), None).await;
    assert_eq!(view["lists"][0]["tasks"][0]["title"], "read-on-b");
    let patches = metric(c.b.addr, "orgboard_board_cache_patches_total").await;
    let hits = metric(c.b.addr, "orgboard_board_cache_hits_total").await;
    let misses = metric(c.b.addr, "orgboard_board_cache_misses_total").await;
    rename("patched-on-b").await;
    let deadline = Instant::now() + WAIT;
    while metric(c.b.addr, "orgboard_board_cache_patches_total").await == patches {
        assert!(Instant::now() < deadline, "B never patched its view");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, view) = request(c.b.addr, "GET", &board, Some(&w.token), None).await;
    assert_eq!(view["lists"][0]["tasks"][0]["title"], "patched-on-b");
    assert_eq!(
        metric(c.b.addr, "orgboard_board_cache_hits_total").await,
        hits + 1,
        "served from B's patched view"
    );
    assert_eq!(
        metric(c.b.addr, "orgboard_board_cache_misses_total").await,
        misses
    );

    // 3. The login rate limit is shared: 3 per account per minute in all.
    for _ in 0..3 {
        let (s, _) = request(
            c.a.addr,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(json!({"email": w.email, "password": "wrong password!"})),
        )
        .await;
        assert_eq!(s, 401);
    }
    let (s, body) = request(
        c.b.addr,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"email": w.email, "password": "wrong password!"})),
    )
    .await;
    assert_eq!(s, 429, "{body}");
    assert_eq!(body["code"], "rate_limited");

    // 4. A scheduled job runs once per period although both nodes tick
    //    every second: each schedule has exactly one run recorded.
    scheduled_jobs_ran_once(&c, started).await;
}

/// `orgboard_jobs_completed_total{kind="…"}` on one node (0 when absent).
async fn completed(addr: SocketAddr, kind: &str) -> u64 {
    metric(
        addr,
        &format!("orgboard_jobs_completed_total{{kind=\"{kind}\"}}"),
    )
    .await
}

/// The value of the series `series` (a name with its labels, if any) on one
/// node (0 when absent).
async fn metric(addr: SocketAddr, series: &str) -> u64 {
    let text = metrics_text(addr).await;
    let needle = format!("{series} ");
    text.lines()
        .find_map(|l| l.strip_prefix(needle.as_str()))
        .map(|v| v.trim().parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

async fn metrics_text(addr: SocketAddr) -> String {
    // A plain GET through the streaming client, read to the end.
    let s = live::sse(addr, "/metrics", None, None).await;
    assert_eq!(s.status, 200);
    s.text().await
}

async fn scheduled_jobs_ran_once(c: &Cluster, started: chrono::DateTime<chrono::Utc>) {
    // Both nodes tick every second and started before this test's writes;
    // each schedule is due at once on a fresh database, then next on its
    // clock boundary (every 15 minutes / every hour).
    let mut conn = PgConnectOptions::from_str(&c.db_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let (a, b) = (
            completed(c.a.addr, "cleanup").await,
            completed(c.b.addr, "cleanup").await,
        );
        if queued == 0 && a + b >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "scheduled jobs did not run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The first runs happened between `started` and now.
    let first_seen = chrono::Utc::now();
    // Give both schedulers several more ticks to (wrongly) start again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ended = chrono::Utc::now();
    let boundaries = |from: chrono::DateTime<chrono::Utc>, minutes: i64| {
        let step = minutes * 60;
        (ended.timestamp().div_euclid(step) - from.timestamp().div_euclid(step)) as u64
    };
    for (kind, minutes) in [("cleanup", 60), ("daily_summaries", 15)] {
        let (a, b) = (
            completed(c.a.addr, kind).await,
            completed(c.b.addr, kind).await,
        );
        // One run at start, then one per boundary after it. Exact unless a
        // boundary fell during start-up, when either count is right.
        let (least, most) = (
            1 + boundaries(first_seen, minutes),
            1 + boundaries(started, minutes),
        );
        assert!(
            (least..=most).contains(&(a + b)),
            "{kind}: node A ran {a}, node B ran {b}, expected {least}..={most}"
        );
    }
    let runs: Vec<(String, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as("SELECT name, last_run_at FROM schedules ORDER BY name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
}
