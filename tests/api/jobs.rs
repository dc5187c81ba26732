//! The durable job queue: transactional enqueue, retries and the dead state,
//! timeouts and shutdown, schedules across nodes, the daily summary, the
//! clean-up, and `PATCH /me` (the summary's time zone). Each test runs on
//! SQLite and PostgreSQL.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::TestApp;
use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use orgboard::config::Config;
use orgboard::db::{Backend, Scope};
use orgboard::jobs::{self, Job, Removed};
use orgboard::on_tx;
use orgboard::state::AppState;
use serde_json::{Value, json};
use sqlx::types::Json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

backend_tests!(
    enqueue_rolls_back_with_its_transaction,
    failing_job_retries_with_backoff_then_dies,
    hanging_job_is_cut_by_the_timeout,
    shutdown_releases_the_job_in_hand,
    worker_runs_jobs_and_schedules_until_shutdown,
    invite_email_reaches_the_outbox_with_the_accept_link,
    daily_summary_is_sent_at_eight_local_time,
    daily_summary_is_sent_at_most_once_per_local_day,
    schedules_start_one_job_per_period,
    two_nodes_start_each_period_exactly_once,
    cleanup_deletes_what_expired_and_keeps_the_rest,
    update_me_validates_name_and_time_zone,
);

// ------------------------------------------------------------- helpers

#[derive(Debug, sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    kind: String,
    status: String,
    attempts: i32,
    run_at: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
    last_error: Option<String>,
    updated_at: DateTime<Utc>,
    payload: Json<Value>,
}

/// Every job in the queue, oldest first.
async fn job_rows(state: &AppState) -> Vec<JobRow> {
    // As the workers see the queue (orgboard_system on PostgreSQL): the
    // request role sees only the jobs of the organization it is in.
    let mut tx = state.db.system_read().await.unwrap();
    on_tx!(&mut tx, |c| sqlx::query_as::<_, JobRow>(
        "SELECT id, kind, status, attempts, run_at, locked_until, last_error, updated_at, payload \
         FROM jobs ORDER BY created_at, id"
    )
    .fetch_all(c)
    .await)
    .unwrap()
}

async fn jobs_of_kind(state: &AppState, kind: &str) -> Vec<JobRow> {
    job_rows(state)
        .await
        .into_iter()
        .filter(|j| j.kind == kind)
        .collect()
}

/// Makes job `id` due now (as if its backoff had passed).
async fn make_due(state: &AppState, id: Uuid) {
    let mut tx = state.db.system().await.unwrap();
    on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE jobs SET run_at = $1 WHERE id = $2"
    )
    .bind(Utc::now() - chrono::Duration::hours(1))
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tx.commit().await.unwrap();
}

/// A second application state ("node") on the same database and data
/// directory, with adjusted settings.
async fn node(app: &TestApp, adjust: impl FnOnce(&mut Config)) -> AppState {
    let mut config = app.state.config.clone();
    adjust(&mut config);
    orgboard::server::prepare(config).await.unwrap()
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An "SMTP server" that accepts connections and never says a word.
async fn hanging_smtp() -> (u16, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (port, task)
}

/// Undoes quoted-printable (soft line breaks and `=XX`).
fn unquote(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'=' && i + 2 < b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The messages in the outbox (decoded), by file name.
fn outbox(app: &TestApp) -> Vec<(PathBuf, String)> {
    let dir = app.dir.path().join("outbox");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut mails: Vec<(PathBuf, String)> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| {
            let text = unquote(&std::fs::read_to_string(&p).unwrap());
            (p, text)
        })
        .collect();
    mails.sort();
    mails
}

/// The daily summaries in the outbox sent to `email`.
fn summaries_to(app: &TestApp, email: &str) -> Vec<String> {
    outbox(app)
        .into_iter()
        .map(|(_, text)| text)
        .filter(|t| t.contains("Subject: Your orgboard summary") && t.contains(email))
        .collect()
}

fn all_summaries(app: &TestApp) -> usize {
    outbox(app)
        .iter()
        .filter(|(_, t)| t.contains("Subject: Your orgboard summary"))
        .count()
}

async fn invite(app: &TestApp, org: Uuid, by: &crate::common::TestUser, email: &str) -> Value {
    app.post(
        &format!("/api/v1/orgs/{org}/invites"),
        &by.token,
        json!({ "email": email, "role": "member" }),
    )
    .await
    .expect(201)
    .json
}

/// A board with one list; returns the list id.
async fn list_in(app: &TestApp, user: &crate::common::TestUser, org: Uuid, board: &str) -> Uuid {
    let b = app
        .post(
            &format!("/api/v1/orgs/{org}/boards"),
            &user.token,
            json!({ "name": board }),
        )
        .await
        .expect(201);
    let board_id = b.json["id"].as_str().unwrap();
    let l = app
        .post(
            &format!("/api/v1/orgs/{org}/boards/{board_id}/lists"),
            &user.token,
            json!({ "name": "To do" }),
        )
        .await
        .expect(201);
    l.json["id"].as_str().unwrap().parse().unwrap()
}

async fn task(
    app: &TestApp,
    user: &crate::common::TestUser,
    org: Uuid,
    list: Uuid,
    body: Value,
) -> Value {
    app.post(
        &format!("/api/v1/orgs/{org}/lists/{list}/tasks"),
        &user.token,
        body,
    )
    .await
    .expect(201)
    .json
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

// ------------------------------------------------------- the queue itself

async fn enqueue_rolls_back_with_its_transaction(app: TestApp) {
    let job = Job::Cleanup { at: Utc::now() };
    {
        let mut tx = app.state.db.write(Scope::system()).await.unwrap();
        jobs::enqueue_in(&mut tx, &job).await.unwrap();
        // Dropped without commit: rolled back.
    }
    assert!(
        job_rows(&app.state).await.is_empty(),
        "no job after rollback"
    );
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 0);

    let mut tx = app.state.db.write(Scope::system()).await.unwrap();
    let id = jobs::enqueue_in(&mut tx, &job).await.unwrap();
    tx.commit().await.unwrap();
    let rows = job_rows(&app.state).await;
    assert_eq!(rows.len(), 1, "one job after commit");
    assert_eq!(rows[0].id, id);
    assert_eq!(rows[0].kind, "cleanup");
    assert_eq!(rows[0].status, "queued");
    assert_eq!(rows[0].attempts, 0);
    assert_eq!(
        serde_json::from_value::<Job>(rows[0].payload.0.clone()).unwrap(),
        job
    );
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 1);
    assert!(
        job_rows(&app.state).await.is_empty(),
        "done jobs are deleted"
    );
}

async fn failing_job_retries_with_backoff_then_dies(app: TestApp) {
    // Mail goes to an SMTP port nobody listens on: every attempt fails.
    let port = closed_port();
    let smtp = node(&app, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))
    })
    .await;
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    let token = invite(&app, org, &ada, "bob@example.com").await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    for attempt in 1..=5 {
        assert_eq!(jobs::run_due(&smtp).await.unwrap(), 1, "attempt {attempt}");
        let rows = jobs_of_kind(&smtp, "invite_email").await;
        assert_eq!(rows.len(), 1);
        let job = &rows[0];
        assert_eq!(job.attempts, attempt);
        assert!(job.locked_until.is_none(), "lease cleared");
        let error = job.last_error.as_deref().unwrap_or_default();
        assert!(!error.is_empty(), "the error is kept");
        assert_eq!(
            job.run_at - job.updated_at,
            jobs::backoff(attempt),
            "attempt {attempt}: retried after 2^attempts seconds"
        );
        if attempt < 5 {
            assert_eq!(job.status, "queued", "attempt {attempt}: {error}");
            assert_eq!(job.payload.0["token"], token.as_str());
            if attempt == 3 {
                // Eight seconds of backoff: not claimable yet.
                assert_eq!(jobs::run_due(&smtp).await.unwrap(), 0);
            }
            make_due(&smtp, job.id).await;
        } else {
            assert_eq!(job.status, "dead");
            // Kept for inspection, without the secret.
            assert_eq!(job.payload.0["token"], "");
            assert_eq!(job.payload.0["to"], "bob@example.com");
        }
    }
    // Dead is final, even when "due".
    let id = jobs_of_kind(&smtp, "invite_email").await[0].id;
    make_due(&smtp, id).await;
    assert_eq!(jobs::run_due(&smtp).await.unwrap(), 0);
    let depth = jobs::queue::queue_depth(&smtp.db).await.unwrap();
    let get = |s: &str| depth.iter().find(|(k, _)| k == s).map(|(_, n)| *n);
    assert_eq!(get("dead"), Some(1), "{depth:?}");
    assert_eq!(get("queued"), Some(0), "{depth:?}");
    assert_eq!(get("running"), Some(0), "{depth:?}");
    assert!(outbox(&app).is_empty(), "nothing fell back to the outbox");
}

async fn hanging_job_is_cut_by_the_timeout(app: TestApp) {
    let (port, server) = hanging_smtp().await;
    let smtp = node(&app, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.job_timeout_secs = 1;
    })
    .await;
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    invite(&app, org, &ada, "bob@example.com").await;

    let started = std::time::Instant::now();
    assert_eq!(jobs::run_due(&smtp).await.unwrap(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded by the timeout: {:?}",
        started.elapsed()
    );
    let job = &jobs_of_kind(&smtp, "invite_email").await[0];
    assert_eq!(job.status, "queued", "retried later");
    assert_eq!(job.attempts, 1);
    assert!(
        job.last_error.as_deref().unwrap().contains("timed out"),
        "{:?}",
        job.last_error
    );
    server.abort();
}

async fn shutdown_releases_the_job_in_hand(app: TestApp) {
    let (port, server) = hanging_smtp().await;
    let smtp = node(&app, |c| {
        c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        c.job_timeout_secs = 120;
        c.job_shutdown_grace_secs = 0;
    })
    .await;
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    invite(&app, org, &ada, "bob@example.com").await;
    let id = jobs_of_kind(&smtp, "invite_email").await[0].id;
    // First in line, ahead of what the scheduler enqueues.
    make_due(&smtp, id).await;

    let shutdown = CancellationToken::new();
    let worker = jobs::spawn_worker(smtp.clone(), shutdown.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let job = &jobs_of_kind(&smtp, "invite_email").await[0];
        if job.status == "running" {
            assert_eq!(job.attempts, 1);
            assert!(job.locked_until.is_some());
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Stuck in the SMTP greeting. Shutdown: released at once (no grace).
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops promptly")
        .unwrap();
    let job = &jobs_of_kind(&smtp, "invite_email").await[0];
    assert_eq!(job.status, "queued", "released");
    assert!(job.locked_until.is_none(), "lease cleared");
    assert_eq!(job.attempts, 0, "the interrupted attempt does not count");
    assert!(job.last_error.is_none());
    assert!(job.run_at <= Utc::now(), "due at once for the next worker");
    server.abort();
}

async fn worker_runs_jobs_and_schedules_until_shutdown(app: TestApp) {
    let shutdown = CancellationToken::new();
    let worker = jobs::spawn_worker(app.state.clone(), shutdown.clone());
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme").await;
    invite(&app, org, &ada, "bob@example.com").await;

    // The invite handler wakes the worker: the mail arrives without any
    // call to run_due.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while outbox(&app).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no mail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The scheduler ticked on start: both schedules advanced, and their jobs
    // ran (the queue drains).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut tx = app.state.db.read(Scope::system()).await.unwrap();
        let next: Vec<(String, DateTime<Utc>)> = on_tx!(&mut tx, |c| sqlx::query_as(
            "SELECT name, next_run_at FROM schedules ORDER BY name"
        )
        .fetch_all(c)
        .await)
        .unwrap();
        drop(tx);
        if next.len() == 2 && job_rows(&app.state).await.is_empty() {
            assert_eq!(next[0].0, "cleanup");
            assert_eq!(next[1].0, "daily_summary");
            assert!(next.iter().all(|(_, t)| *t > Utc::now()), "{next:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{next:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops")
        .unwrap();
}

async fn invite_email_reaches_the_outbox_with_the_accept_link(app: TestApp) {
    let ada = app.signup("ada").await;
    let org = app.create_org(&ada, "Acme Rockets").await;
    let r = invite(&app, org, &ada, "Bob@Example.com").await;
    let token = r["token"].as_str().unwrap();
    assert!(outbox(&app).is_empty(), "sent by the job, not the request");
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 1);

    let mails = outbox(&app);
    assert_eq!(mails.len(), 1, "{mails:?}");
    let (path, text) = &mails[0];
    assert!(path.starts_with(app.dir.path().join("outbox")));
    assert!(text.contains("To: Bob@Example.com"), "{text}");
    let link = format!(
        "{}/invites/accept?token={token}",
        app.state.config.public_url()
    );
    assert!(text.contains(&link), "accept link {link} missing:\n{text}");
    assert!(text.contains("Acme Rockets"), "{text}");
    assert!(
        job_rows(&app.state).await.is_empty(),
        "the token left the queue"
    );
}

// ---------------------------------------------------------- daily summary

async fn daily_summary_is_sent_at_eight_local_time(app: TestApp) {
    let ada = app.signup("ada").await; // UTC, the default
    let org = app.create_org(&ada, "Acme Rockets").await;
    let bob = app.member(org, &ada, "member").await;
    let carol = app.signup("carol").await;
    let moon = app.create_org(&carol, "Moon Base").await;
    app.join(moon, &carol, &ada, "member").await;
    let dave = app.signup("dave").await; // nothing assigned, ever
    app.patch(
        "/api/v1/me",
        &bob.token,
        json!({ "time_zone": "Asia/Kolkata" }),
    )
    .await
    .expect(200);

    let list = list_in(&app, &ada, org, "Launch").await;
    let done = task(
        &app,
        &ada,
        org,
        list,
        json!({ "title": "Paint the hull", "status": "done", "assignee_ids": [ada.id] }),
    )
    .await;
    let completed: DateTime<Utc> = done["completed_at"].as_str().unwrap().parse().unwrap();
    // 08:05 UTC on the day after the completion: "completed yesterday".
    let day = completed.date_naive().succ_opt().unwrap();
    let at = Utc.from_utc_datetime(&day.and_hms_opt(8, 5, 0).unwrap());
    let due = |d: chrono::Duration| (at + d).to_rfc3339();
    let h = chrono::Duration::hours;
    for (title, due_in, who) in [
        ("Fuel the rocket", h(-2), vec![ada.id]),
        ("Check the weather", h(5), vec![ada.id]),
        ("Book the launch pad", h(72), vec![ada.id]),
        ("Order snacks", h(-2), vec![bob.id]),
        ("Nobody's chore", h(-2), vec![]),
    ] {
        task(
            &app,
            &ada,
            org,
            list,
            json!({ "title": title, "due_date": due(due_in), "assignee_ids": who }),
        )
        .await;
    }
    task(
        &app,
        &ada,
        org,
        list,
        json!({ "title": "Old news", "status": "done", "due_date": due(h(-30)),
                "assignee_ids": [ada.id] }),
    )
    .await;
    let moon_list = list_in(&app, &carol, moon, "Greenhouse").await;
    task(
        &app,
        &carol,
        moon,
        moon_list,
        json!({ "title": "Water the plants", "due_date": due(h(1)), "assignee_ids": [ada.id] }),
    )
    .await;
    // Invite mails out of the way.
    jobs::run_due(&app.state).await.unwrap();
    let invites_sent = outbox(&app).len();

    // 08:05 UTC: ada, carol and dave are at 08:05; bob (Kolkata) at 13:35.
    assert_eq!(jobs::daily_summary_at(&app.state, at).await.unwrap(), 3);
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 3);
    let mails = summaries_to(&app, &ada.email);
    assert_eq!(mails.len(), 1, "{:?}", outbox(&app));
    let m = &mails[0];
    assert!(
        m.contains(&format!("Subject: Your orgboard summary for {day}")),
        "{m}"
    );
    assert!(m.contains("== Acme Rockets =="), "{m}");
    assert!(m.contains("Overdue (1):"), "{m}");
    assert!(m.contains("Fuel the rocket [Launch]"), "{m}");
    assert!(m.contains("Due in the next 24 hours (1):"), "{m}");
    assert!(m.contains("Check the weather [Launch]"), "{m}");
    // Done tasks are never overdue, even past their due date.
    assert!(m.contains("Completed yesterday (2):"), "{m}");
    assert!(m.contains("Paint the hull [Launch]"), "{m}");
    assert!(m.contains("Old news [Launch]"), "{m}");
    assert!(m.contains("== Moon Base =="), "{m}");
    assert!(m.contains("Water the plants [Greenhouse]"), "{m}");
    for absent in ["Book the launch pad", "Order snacks", "Nobody's chore"] {
        assert!(!m.contains(absent), "{absent} listed:\n{m}");
    }
    // Times are in ada's zone (UTC): due 06:05.
    assert!(
        m.contains(&format!("was due {} 06:05", day.format("%a %Y-%m-%d"))),
        "{m}"
    );
    // Nothing to say to carol (nothing assigned) nor dave: no mail.
    assert_eq!(all_summaries(&app), 1);
    assert!(summaries_to(&app, &carol.email).is_empty());
    assert!(summaries_to(&app, &dave.email).is_empty());
    assert!(
        summaries_to(&app, &bob.email).is_empty(),
        "not 08:xx in Kolkata"
    );

    // 08:10 in Kolkata (02:40 UTC the same day): bob's turn, no one else's.
    let bob_at = chrono_tz::Asia::Kolkata
        .from_local_datetime(&day.and_hms_opt(8, 10, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(bob_at, at - chrono::Duration::minutes(5 * 60 + 25));
    assert_eq!(jobs::daily_summary_at(&app.state, bob_at).await.unwrap(), 1);
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 1);
    let mails = summaries_to(&app, &bob.email);
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    // "Order snacks" is due at 06:05 UTC, 3.5 hours after bob's 08:10: due
    // soon, shown at 11:35 Kolkata time.
    assert!(m.contains("Due in the next 24 hours (1):"), "{m}");
    assert!(
        m.contains(&format!(
            "Order snacks [Launch], due {} 11:35",
            day.format("%a %Y-%m-%d")
        )),
        "{m}"
    );
    assert!(m.contains("times in Asia/Kolkata"), "{m}");
    assert!(!m.contains("Fuel the rocket"), "{m}");
    assert_eq!(all_summaries(&app), 2);
    assert_eq!(outbox(&app).len(), invites_sent + 2);

    // Outside the 08 hour nobody is due, whatever the day.
    let nine = at + chrono::Duration::hours(1);
    assert_eq!(jobs::daily_summary_at(&app.state, nine).await.unwrap(), 0);
}

async fn daily_summary_is_sent_at_most_once_per_local_day(app: TestApp) {
    let ada = app.signup("ada").await;
    app.patch(
        "/api/v1/me",
        &ada.token,
        json!({ "time_zone": "America/Los_Angeles" }),
    )
    .await
    .expect(200);
    let list = list_in(&app, &ada, ada.personal_org, "Home").await;
    // 08:05 in Los Angeles on 2 July 2030 (PDT, UTC-7) is 15:05 UTC.
    let at = utc("2030-07-02T15:05:00Z");
    task(
        &app,
        &ada,
        ada.personal_org,
        list,
        json!({ "title": "Renew passport", "due_date": "2030-07-01T12:00:00Z",
                "assignee_ids": [ada.id] }),
    )
    .await;
    // 08:05 UTC is 01:05 in Los Angeles: not her hour.
    assert_eq!(
        jobs::daily_summary_at(&app.state, utc("2030-07-02T08:05:00Z"))
            .await
            .unwrap(),
        0
    );

    assert_eq!(jobs::daily_summary_at(&app.state, at).await.unwrap(), 1);
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 1);
    assert_eq!(summaries_to(&app, &ada.email).len(), 1);
    let m = &summaries_to(&app, &ada.email)[0];
    assert!(m.contains("summary for 2030-07-02"), "{m}");
    assert!(
        m.contains("Renew passport [Home], was due Mon 2030-07-01 05:00"),
        "{m}"
    );

    // Later ticks of the same local hour: the day is handled.
    for minutes in [15, 30, 45] {
        let later = at + chrono::Duration::minutes(minutes);
        assert_eq!(jobs::daily_summary_at(&app.state, later).await.unwrap(), 0);
    }
    // Two jobs racing for one member and day (a tick that enqueued again
    // before the first ran): one mail.
    let next_day = at + chrono::Duration::days(1);
    let job = Job::DailySummary(jobs::summary::SummaryJob {
        user_id: ada.id,
        local_date: NaiveDate::from_ymd_opt(2030, 7, 3).unwrap(),
        at: next_day,
    });
    let mut tx = app.state.db.write(Scope::system()).await.unwrap();
    jobs::enqueue_in(&mut tx, &job).await.unwrap();
    jobs::enqueue_in(&mut tx, &job).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 2);
    assert_eq!(summaries_to(&app, &ada.email).len(), 2, "one more, not two");
    assert_eq!(
        jobs::daily_summary_at(&app.state, next_day).await.unwrap(),
        0
    );

    // The day after: a new summary (the passport is still overdue).
    let third = at + chrono::Duration::days(2);
    assert_eq!(jobs::daily_summary_at(&app.state, third).await.unwrap(), 1);
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 1);
    assert_eq!(summaries_to(&app, &ada.email).len(), 3);
}

// ------------------------------------------------------------- schedules

async fn schedules_start_one_job_per_period(app: TestApp) {
    let tick = |t: &'static str| {
        let state = app.state.clone();
        async move { jobs::run_schedules_at(&state, utc(t)).await.unwrap() }
    };
    // First sight: both due at once.
    assert_eq!(
        tick("2030-01-01T07:50:00Z").await,
        ["daily_summary", "cleanup"]
    );
    assert!(tick("2030-01-01T07:50:30Z").await.is_empty());
    assert!(tick("2030-01-01T07:59:59Z").await.is_empty());
    // 08:00 is a quarter and an hour.
    assert_eq!(
        tick("2030-01-01T08:00:10Z").await,
        ["daily_summary", "cleanup"]
    );
    assert!(tick("2030-01-01T08:14:59Z").await.is_empty());
    assert_eq!(tick("2030-01-01T08:15:00Z").await, ["daily_summary"]);
    // A node that was down for hours catches up with one run, not many.
    assert_eq!(
        tick("2030-01-01T13:07:00Z").await,
        ["daily_summary", "cleanup"]
    );
    assert!(tick("2030-01-01T13:14:00Z").await.is_empty());

    let summaries = jobs_of_kind(&app.state, "daily_summaries").await;
    let cleanups = jobs_of_kind(&app.state, "cleanup").await;
    assert_eq!(summaries.len(), 4);
    assert_eq!(cleanups.len(), 3);
    // Each job carries the time of its run.
    assert_eq!(
        summaries[2].payload.0["at"],
        json!(utc("2030-01-01T08:15:00Z"))
    );
    assert_eq!(jobs::run_due(&app.state).await.unwrap(), 7);
    assert!(job_rows(&app.state).await.is_empty());
}

async fn two_nodes_start_each_period_exactly_once(app: TestApp) {
    let other = node(&app, |_| {}).await;
    let nodes = [app.state.clone(), other.clone(), app.state.clone(), other];
    let start = utc("2030-01-01T07:50:00Z");
    let mut started = Vec::new();
    // Ticks every 5 minutes from 07:50 to 08:25, each by four callers (two
    // per node) at once.
    for i in 0..8 {
        let t = start + chrono::Duration::minutes(5 * i);
        let handles: Vec<_> = nodes
            .iter()
            .cloned()
            .map(|s| tokio::spawn(async move { jobs::run_schedules_at(&s, t).await.unwrap() }))
            .collect();
        let mut names: Vec<&str> = Vec::new();
        for h in handles {
            names.extend(h.await.unwrap());
        }
        names.sort();
        started.push((t.format("%H:%M").to_string(), names));
    }
    let expected: Vec<(String, Vec<&str>)> = [
        ("07:50", vec!["cleanup", "daily_summary"]),
        ("07:55", vec![]),
        ("08:00", vec!["cleanup", "daily_summary"]),
        ("08:05", vec![]),
        ("08:10", vec![]),
        ("08:15", vec!["daily_summary"]),
        ("08:20", vec![]),
        ("08:25", vec![]),
    ]
    .into_iter()
    .map(|(t, n)| (t.to_owned(), n))
    .collect();
    assert_eq!(started, expected);
    assert_eq!(jobs_of_kind(&app.state, "daily_summaries").await.len(), 3);
    assert_eq!(jobs_of_kind(&app.state, "cleanup").await.len(), 2);
}

// -------------------------------------------------------------- clean-up

async fn set_invite_expiry(app: &TestApp, org: Uuid, id: &str, expires: DateTime<Utc>) {
    let id: Uuid = id.parse().unwrap();
    let mut tx = app
        .state
        .db
        .write(Scope::tenant(Uuid::nil(), org))
        .await
        .unwrap();
    let n = on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE invites SET expires_at = $1 WHERE org_id = $2 AND id = $3"
    )
    .bind(expires)
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n, 1);
}

async fn invite_ids(app: &TestApp, org: Uuid) -> Vec<Uuid> {
    let mut tx = app
        .state
        .db
        .read(Scope::tenant(Uuid::nil(), org))
        .await
        .unwrap();
    on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT id FROM invites WHERE org_id = $1 ORDER BY id"
    )
    .bind(org)
    .fetch_all(c)
    .await)
    .unwrap()
}

/// An organization made straight in the database (no request, so no event
/// of its own): its events are exactly the ones a test adds.
async fn bare_org(app: &TestApp, owner: Uuid) -> Uuid {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let mut tx = app.state.db.write(Scope::tenant(owner, id)).await.unwrap();
    on_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO organizations (id, name, slug, created_by, created_at, updated_at) \
         VALUES ($1, 'Bare', $2, $3, $4, $4)"
    )
    .bind(id)
    .bind(format!("bare-{}", id.simple()))
    .bind(owner)
    .bind(now)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn add_event(app: &TestApp, org: Uuid, id: i64, when: DateTime<Utc>) {
    let mut tx = app
        .state
        .db
        .write(Scope::tenant(Uuid::nil(), org))
        .await
        .unwrap();
    on_tx!(&mut tx, |c| sqlx::query(
        "INSERT INTO events (org_id, seq, id, type, entity, at) VALUES ($1, $2, $2, 'test.event', $3, $4)"
    )
    .bind(org)
    .bind(id)
    .bind(Json(json!({})))
    .bind(when)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tx.commit().await.unwrap();
}

async fn event_ids(app: &TestApp, org: Uuid) -> Vec<i64> {
    let mut tx = app
        .state
        .db
        .read(Scope::tenant(Uuid::nil(), org))
        .await
        .unwrap();
    on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT id FROM events WHERE org_id = $1 ORDER BY id"
    )
    .bind(org)
    .fetch_all(c)
    .await)
    .unwrap()
}

async fn cleanup_deletes_what_expired_and_keeps_the_rest(app: TestApp) {
    let now = Utc::now();
    let days = chrono::Duration::days;
    let hours = chrono::Duration::hours;
    let ada = app.signup("ada").await;
    let bob = app.signup("bob").await;
    let carol = app.signup("carol").await;
    let org = app.create_org(&ada, "Acme").await;

    // Invites.
    let stale = invite(&app, org, &ada, "stale@example.com").await;
    let recent = invite(&app, org, &ada, "recent@example.com").await;
    let revoked = invite(&app, org, &ada, "revoked@example.com").await;
    let accepted = invite(&app, org, &ada, &bob.email).await;
    let pending = invite(&app, org, &ada, "pending@example.com").await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_owned();
    app.delete(
        &format!("/api/v1/orgs/{org}/invites/{}", id(&revoked)),
        &ada.token,
    )
    .await
    .expect(204);
    app.post(
        "/api/v1/invites/accept",
        &bob.token,
        json!({ "token": accepted["token"] }),
    )
    .await
    .expect(200);
    set_invite_expiry(&app, org, &id(&stale), now - days(2)).await;
    set_invite_expiry(&app, org, &id(&recent), now - hours(1)).await;
    set_invite_expiry(&app, org, &id(&revoked), now - days(2)).await;
    set_invite_expiry(&app, org, &id(&accepted), now - days(2)).await;

    // Refresh tokens: ada's first one is spent by a refresh (kept: it is
    // how reuse is caught), her new one is live; bob signs out (revoked);
    // carol's expired.
    let refreshed = app
        .call(
            axum::http::Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": ada.refresh })),
        )
        .await
        .expect(200);
    let ada_live = refreshed.json["refresh_token"].as_str().unwrap().to_owned();
    app.call(
        axum::http::Method::POST,
        "/api/v1/auth/logout",
        None,
        Some(json!({ "refresh_token": bob.refresh })),
    )
    .await
    .expect(204);
    let mut tx = app.state.db.write(Scope::system()).await.unwrap();
    on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE refresh_tokens SET expires_at = $1 WHERE user_id = $2"
    )
    .bind(now - hours(1))
    .bind(carol.id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tx.commit().await.unwrap();

    // Idempotency keys and summary records.
    // Keys belong to the organization of the request that stored them.
    let mut tx = app
        .state
        .db
        .write(Scope::tenant(ada.id, ada.personal_org))
        .await
        .unwrap();
    for (key, created) in [("old-key", now - hours(25)), ("new-key", now - hours(1))] {
        on_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at, org_id) \
             VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(ada.id)
        .bind(key)
        .bind(vec![0u8; 32])
        .bind(created)
        .bind(ada.personal_org)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }
    for date in [now - days(10), now - days(1)] {
        on_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO daily_summaries (user_id, local_date, job_id, mailed, created_at) \
             VALUES ($1, $2, $3, $4, $5)"
        )
        .bind(ada.id)
        .bind(date.date_naive())
        .bind(Uuid::now_v7())
        .bind(true)
        .bind(date)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }
    tx.commit().await.unwrap();

    // Password reset links: an expired one and a used one go, an open one
    // stays; security log entries go after 90 days.
    let mut tx = app.state.db.write(Scope::user(ada.id)).await.unwrap();
    for (expires, used) in [
        (now - hours(2), None),
        (now + hours(1), Some(now - hours(1))),
        (now + hours(1), None),
    ] {
        on_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO password_resets (id, user_id, token_hash, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        )
        .bind(Uuid::now_v7())
        .bind(ada.id)
        .bind(Uuid::now_v7().as_bytes().to_vec())
        .bind(now - hours(3))
        .bind(expires)
        .bind(used)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }
    for at in [now - days(91), now - days(89)] {
        on_tx!(&mut tx, |c| sqlx::query(
            "INSERT INTO security_log (id, kind, user_id, detail, created_at) \
             VALUES ($1, 'login', $2, '{}', $3)"
        )
        .bind(Uuid::now_v7())
        .bind(ada.id)
        .bind(at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }
    tx.commit().await.unwrap();

    // Events: "busy" has two old ones (the older goes; the newer is its
    // newest and stays, old as it is), "lone" a single old one (its newest:
    // stays), "mixed" an old and a recent one (the old one goes).
    let busy = bare_org(&app, ada.id).await;
    let lone = bare_org(&app, ada.id).await;
    let mixed = bare_org(&app, ada.id).await;
    add_event(&app, busy, 1, now - hours(48)).await;
    add_event(&app, busy, 2, now - hours(30)).await;
    add_event(&app, lone, 1, now - hours(48)).await;
    add_event(&app, mixed, 1, now - hours(48)).await;
    add_event(&app, mixed, 2, now - hours(1)).await;

    let removed = jobs::cleanup_at(&app.state, Utc::now()).await.unwrap();
    assert_eq!(
        removed,
        Removed {
            invites: 2,
            refresh_tokens: 2,
            idempotency_keys: 1,
            events: 2,
            daily_summaries: 1,
            password_resets: 2,
            security_log: 1,
        }
    );

    let mut kept: Vec<Uuid> = [&recent, &accepted, &pending]
        .iter()
        .map(|v| id(v).parse().unwrap())
        .collect();
    kept.sort();
    assert_eq!(invite_ids(&app, org).await, kept);
    assert_eq!(event_ids(&app, busy).await, [2]);
    assert_eq!(event_ids(&app, lone).await, [1]);
    assert_eq!(event_ids(&app, mixed).await, [2]);

    let mut tx = app
        .state
        .db
        .read(Scope::tenant(ada.id, ada.personal_org))
        .await
        .unwrap();
    let keys: Vec<String> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT key FROM idempotency_keys WHERE user_id = $1"
    )
    .bind(ada.id)
    .fetch_all(c)
    .await)
    .unwrap();
    let summary_days: Vec<NaiveDate> = on_tx!(&mut tx, |c| sqlx::query_scalar(
        "SELECT local_date FROM daily_summaries WHERE user_id = $1"
    )
    .bind(ada.id)
    .fetch_all(c)
    .await)
    .unwrap();
    let tokens: Vec<(Uuid, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(
        "SELECT user_id, COUNT(*) FROM refresh_tokens GROUP BY user_id"
    )
    .fetch_all(c)
    .await)
    .unwrap();
    drop(tx);
    assert_eq!(keys, ["new-key"]);
    assert_eq!(summary_days, [(now - days(1)).date_naive()]);
    assert_eq!(tokens, [(ada.id, 2)], "only ada's spent and live tokens");

    // A second pass finds nothing.
    assert_eq!(
        jobs::cleanup_at(&app.state, Utc::now()).await.unwrap(),
        Removed::default()
    );

    // The spent token was kept, so its reuse is still caught: the family
    // (with the live token) is revoked.
    let refresh = |t: String| {
        app.call(
            axum::http::Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": t })),
        )
    };
    refresh(ada.refresh.clone()).await.expect(401);
    refresh(ada_live).await.expect(401);

    if app.backend == Backend::Postgres {
        // The clean-up role reads no secrets: no token hash, no email.
        for sql in [
            "SELECT token_hash FROM invites",
            "SELECT email FROM invites",
            "SELECT token_hash FROM refresh_tokens",
            "SELECT response FROM idempotency_keys",
            "SELECT title FROM tasks",
        ] {
            let mut tx = app.state.db.system().await.unwrap();
            let err = on_tx!(&mut tx, |c| sqlx::query(sql)
                .fetch_all(c)
                .await
                .map(|r| r.len()))
            .expect_err(sql);
            let code = err.as_database_error().and_then(|e| e.code()).unwrap();
            assert_eq!(code, "42501", "{sql}: {err}");
        }
    }
}

// ------------------------------------------------------------- PATCH /me

async fn update_me_validates_name_and_time_zone(app: TestApp) {
    let ada = app.signup("ada").await;
    let me = app.get("/api/v1/me", &ada.token).await.expect(200);
    assert_eq!(me.json["time_zone"], "UTC");

    let r = app
        .patch(
            "/api/v1/me",
            &ada.token,
            json!({ "time_zone": "Asia/Kolkata" }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["time_zone"], "Asia/Kolkata");
    assert_eq!(r.json["name"], "ada");
    let r = app
        .patch(
            "/api/v1/me",
            &ada.token,
            json!({ "name": "  Ada Lovelace " }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["name"], "Ada Lovelace");
    assert_eq!(r.json["time_zone"], "Asia/Kolkata", "untouched");

    for (body, fields) in [
        (json!({ "time_zone": "Mars/Olympus" }), vec!["time_zone"]),
        (json!({ "time_zone": "asia/kolkata" }), vec!["time_zone"]),
        (json!({ "time_zone": "+05:30" }), vec!["time_zone"]),
        (json!({ "time_zone": " " }), vec!["time_zone"]),
        (
            json!({ "name": "", "time_zone": "Nowhere" }),
            vec!["name", "time_zone"],
        ),
        (
            json!({ "name": "x".repeat(101), "time_zone": "UTC" }),
            vec!["name"],
        ),
    ] {
        let r = app
            .patch("/api/v1/me", &ada.token, body.clone())
            .await
            .expect_problem(422, "validation_failed");
        let got: Vec<&str> = r.json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(got, fields, "{body}");
    }
    app.patch("/api/v1/me", &ada.token, json!({ "time_zone": 5 }))
        .await
        .expect_problem(422, "validation_failed");
    // Nothing changed by the refused requests; an empty patch changes nothing.
    let r = app
        .patch("/api/v1/me", &ada.token, json!({}))
        .await
        .expect(200);
    assert_eq!(r.json["name"], "Ada Lovelace");
    assert_eq!(r.json["time_zone"], "Asia/Kolkata");
    let r = app
        .patch(
            "/api/v1/me",
            &ada.token,
            json!({ "time_zone": "America/New_York" }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["time_zone"], "America/New_York");
    let me = app.get("/api/v1/me", &ada.token).await.expect(200);
    assert_eq!(me.json["time_zone"], "America/New_York");
    assert_eq!(me.json["name"], "Ada Lovelace");

    app.call(
        axum::http::Method::PATCH,
        "/api/v1/me",
        None,
        Some(json!({ "name": "Eve" })),
    )
    .await
    .expect_problem(401, "unauthorized");
}
