//! Limit mode: the SQL each scenario makes the server run, run directly
//! against the database through the same storage layer (`Db::read` /
//! `Db::write` with the tenant `Scope`, so PostgreSQL pays the same role and
//! tenant settings and SQLite the same single writer and reader pool), with
//! no HTTP, no JSON and no authentication.
//!
//! Where the server's query functions are public they are called
//! (`tasks::load_task`, `tasks::relation_columns`, `lists::load_list`,
//! `boards::board_view`, `audit::record`, `tasks::check_related`,
//! `tasks::last_position`, `tasks::replace_relations`); the rest mirrors the
//! statements of `src/tasks/mod.rs` and `src/tasks/filter.rs` one for one (the
//! task `INSERT … RETURNING`, the `UPDATE`s, the move anchors, and the
//! filter's `SELECT`). On SQLite the task writes are the server's own jobs
//! (`tasks::sqlite::{create, update, move_to}`) run on the same group-commit
//! writer thread, with an `OrgContext` built here instead of read. The statement
//! with which `OrgRequest::read`/`write` resolve `{org}` and the caller's
//! membership at the start of each request's transaction is authorization,
//! so it is left out: the HTTP ÷ limit ratio includes it. If those
//! statements change in the server, change them here too.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::header::{self, HeaderValue};
use hyper::{HeaderMap, StatusCode};
use orgboard::audit::{self, Entry, change};
use orgboard::db::{Db, Scope, Tx, now};
use orgboard::domain::Role;
use orgboard::domain::ordering::key_between;
use orgboard::lists::load_list;
use orgboard::on_tx;
use orgboard::orgs::context::OrgContext;
use orgboard::tasks::{
    self, CreateTaskBody, MoveTaskBody, Priority, Status, TASK_COLUMNS, Task, TaskRow,
    UpdateTaskBody, check_related, last_position, load_task, replace_relations,
};
use rand::Rng;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::scenario::{
    Env, FILTERS, Op, PAGE, Vu, create_spec, move_spec, pick_task, priority_rank, update_spec,
};
use crate::stats::Outcome;

/// Does `op` directly on the database; `None` when there is nothing to
/// measure (login, or a VU without tasks).
pub async fn limit_op(vu: &mut Vu, env: &Env, op: Op) -> Option<(Duration, Outcome)> {
    let db = env.db.as_ref()?;
    let started = Instant::now();
    let result = match op {
        Op::GetTask => {
            let id = pick_task(vu)?;
            get_task(db, vu, id).await
        }
        Op::FilterPage => {
            let f = vu.rng.random_range(0..FILTERS.len());
            filter_page(db, vu, f, None).await.map(|_| Outcome::Ok)
        }
        Op::FilterPageFirst | Op::FilterPageCursor => {
            let (f, after) = match vu.db_chain.take() {
                Some((f, a)) if op == Op::FilterPageCursor => (f, Some(a)),
                _ => (vu.rng.random_range(0..FILTERS.len()), None),
            };
            filter_page(db, vu, f, after).await.map(|next| {
                vu.db_chain = next.map(|id| (f, id));
                Outcome::Ok
            })
        }
        // Limit mode has no cache: the database's own view either way.
        Op::BoardView | Op::BoardViewCached | Op::BoardView304 => board_view(db, vu).await,
        Op::Login => return None,
        Op::CreateTask if db.sqlite_writer().is_some() => sqlite_create(db, vu, env).await,
        Op::CreateTask => create_task(db, vu, env).await,
        Op::UpdateTask => {
            let spec = update_spec(vu)?;
            if db.sqlite_writer().is_some() {
                sqlite_update(db, vu, env, spec).await
            } else {
                update_task(db, vu, env, spec).await
            }
        }
        Op::MoveTask => {
            let spec = move_spec(vu)?;
            if db.sqlite_writer().is_some() {
                sqlite_move(db, vu, env, spec).await
            } else {
                move_task(db, vu, env, spec).await
            }
        }
    };
    let latency = started.elapsed();
    Some(match result {
        Ok(o) => (latency, o),
        Err(e) => (latency, Outcome::Error(db_error_key(&e))),
    })
}

/// `db:<code>` of a database error, else `db`.
fn db_error_key(e: &anyhow::Error) -> String {
    match e
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|d| d.code().map(|c| c.into_owned()))
    {
        Some(code) => format!("db:{code}"),
        None => "db".to_owned(),
    }
}

fn scope(vu: &Vu) -> Scope {
    Scope::tenant(vu.user_id, vu.org_id)
}

/// A write transaction in the VU's tenant (`BEGIN IMMEDIATE` on SQLite).
async fn write_tx(db: &Db, vu: &Vu) -> anyhow::Result<Tx> {
    Ok(db.write(scope(vu)).await?)
}

/// The server stamps every audit row with its request id.
fn request_id() -> String {
    Uuid::new_v4().to_string()
}

async fn get_task(db: &Db, vu: &Vu, id: Uuid) -> anyhow::Result<Outcome> {
    let mut tx = db.read(scope(vu)).await?;
    let task = load_task(&mut tx, vu.org_id, id, false).await?;
    Ok(if task.is_some() {
        Outcome::Ok
    } else {
        Outcome::Error("404".into())
    })
}

async fn board_view(db: &Db, vu: &Vu) -> anyhow::Result<Outcome> {
    let mut tx = db.read(scope(vu)).await?;
    // The server's own function: the statements, and the JSON written as
    // the rows arrive (it cannot be told apart from reading them). The
    // server seals a cursor for each list with more; a placeholder here.
    let view = orgboard::boards::board_view_json(
        &mut tx,
        vu.org_id,
        vu.board_id,
        orgboard::boards::DEFAULT_PER_LIST,
        |_, id, _| id.to_string(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("board view: {e:?}"))?;
    Ok(if view.is_some() {
        Outcome::Ok
    } else {
        Outcome::Error("404".into())
    })
}

/// The filter's query for `FILTERS[f]` (default sort: by id), after `after`
/// when paging; returns the last id when there is a next page.
async fn filter_page(
    db: &Db,
    vu: &Vu,
    f: usize,
    after: Option<Uuid>,
) -> anyhow::Result<Option<Uuid>> {
    let (statuses, priorities) = FILTERS[f];
    let mut sql = format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.org_id = $1");
    let mut n = 1;
    let mut ph = |k: usize| {
        (0..k)
            .map(|_| {
                n += 1;
                format!("${n}")
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    sql += &format!(" AND t.status IN ({})", ph(statuses.len()));
    sql += &format!(" AND t.priority IN ({})", ph(priorities.len()));
    if after.is_some() {
        sql += &format!(" AND t.id > {}", ph(1));
    }
    sql += &format!(" ORDER BY t.id ASC LIMIT {}", PAGE + 1);
    let mut tx = db.read(scope(vu)).await?;
    // As the server: the relation ids in the same statement, around the page.
    let sql = format!(
        "SELECT t.*{} FROM ({sql}) t ORDER BY t.id ASC",
        tasks::relation_columns(tx.backend())
    );
    let mut rows: Vec<TaskRow> = on_tx!(&mut tx, |c| {
        let mut q = sqlx::query_as::<_, TaskRow>(sqlx::AssertSqlSafe(sql.as_str())).bind(vu.org_id);
        for s in statuses {
            q = q.bind(*s);
        }
        for p in priorities {
            q = q.bind(priority_rank(p));
        }
        if let Some(a) = after {
            q = q.bind(a);
        }
        q.fetch_all(c).await
    })?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let rows: Vec<Task> = rows.into_iter().map(TaskRow::into_task).collect();
    Ok(if more {
        rows.last().map(|t| t.id)
    } else {
        None
    })
}

fn entry<'a>(vu: &Vu, action: &'a str, id: Uuid, payload: Value, rid: &'a str) -> Entry<'a> {
    Entry {
        org_id: vu.org_id,
        actor_id: Some(vu.user_id),
        action,
        entity_type: "task",
        entity_id: Some(id),
        payload,
        request_id: Some(rid),
    }
}

async fn create_task(db: &Db, vu: &mut Vu, env: &Env) -> anyhow::Result<Outcome> {
    let spec = create_spec(vu);
    let rid = request_id();
    let mut tx = write_tx(db, vu).await?;
    let list = load_list(&mut tx, vu.org_id, vu.lists[spec.list], true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("list not found"))?;
    check_related(&mut tx, vu.org_id, &spec.assignees, &spec.labels).await?;
    let last = last_position(&mut tx, vu.org_id, list.id, Uuid::nil()).await?;
    let position = key_between(last.as_deref(), None)?;
    let id = Uuid::now_v7();
    let now = now();
    let status = Status::Todo;
    let sql = format!(
        "INSERT INTO tasks (org_id, id, board_id, list_id, title, description, status, priority, position, \
         due_date, created_by, completed_at, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13) \
         RETURNING {}",
        TASK_COLUMNS.replace("t.", "")
    );
    let completed_at: Option<chrono::DateTime<chrono::Utc>> = None;
    let due: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut task = on_tx!(&mut tx, |c| sqlx::query_as::<_, Task>(sqlx::AssertSqlSafe(
        sql.as_str()
    ))
    .bind(vu.org_id)
    .bind(id)
    .bind(list.board_id)
    .bind(list.id)
    .bind(&spec.title)
    .bind(spec.description.as_str())
    .bind(status.as_str())
    .bind(priority_rank(spec.priority))
    .bind(&position)
    .bind(due)
    .bind(vu.user_id)
    .bind(completed_at)
    .bind(now)
    .fetch_one(c)
    .await)?;
    replace_relations(
        &mut tx,
        vu.org_id,
        id,
        (!spec.assignees.is_empty()).then_some(spec.assignees.as_slice()),
        (!spec.labels.is_empty()).then_some(spec.labels.as_slice()),
    )
    .await?;
    task.assignee_ids = spec.assignees;
    task.label_ids = spec.labels;
    let payload = json!({
        "title": task.title, "board_id": task.board_id, "list_id": task.list_id,
        "status": task.status, "priority": task.priority,
        "assignee_ids": task.assignee_ids, "label_ids": task.label_ids, "due_date": task.due_date,
    });
    audit::record(&mut tx, entry(vu, "task.created", id, payload, &rid)).await?;
    tx.commit().await?;
    env.limit_counts.created.fetch_add(1, Ordering::Relaxed);
    Ok(Outcome::Ok)
}

/// The caller as the server's handler sees it after the membership
/// statement (which limit mode leaves out).
fn org_context(vu: &Vu) -> OrgContext {
    OrgContext {
        org_id: vu.org_id,
        user_id: vu.user_id,
        role: Role::Admin,
        request_id: Some(request_id()),
    }
}

/// `If-Match` with the version the VU last saw, as the HTTP client sends it.
fn if_match(version: i64) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        h.insert(header::IF_MATCH, v);
    }
    h
}

fn sqlite_writer(db: &Db) -> anyhow::Result<&orgboard::db::SqliteWriter> {
    db.sqlite_writer()
        .ok_or_else(|| anyhow::anyhow!("not SQLite"))
}

/// SQLite: the server's own create job (`tasks::sqlite::create`) on the
/// group-commit writer, as the handler runs it.
async fn sqlite_create(db: &Db, vu: &mut Vu, env: &Env) -> anyhow::Result<Outcome> {
    let writer = sqlite_writer(db)?;
    let spec = create_spec(vu);
    let (oc, list) = (org_context(vu), vu.lists[spec.list]);
    let body = CreateTaskBody {
        title: spec.title,
        description: Some(spec.description),
        status: None,
        priority: Some(parse_priority(spec.priority)),
        assignee_ids: Some(spec.assignees),
        label_ids: Some(spec.labels),
        due_date: None,
    };
    writer
        .run(move |w| tasks::sqlite::create(w, &oc, list, &body))
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.status()))?;
    env.limit_counts.created.fetch_add(1, Ordering::Relaxed);
    Ok(Outcome::Ok)
}

/// SQLite: the server's own update job, with `If-Match`.
async fn sqlite_update(
    db: &Db,
    vu: &mut Vu,
    env: &Env,
    spec: crate::scenario::UpdateSpec,
) -> anyhow::Result<Outcome> {
    let writer = sqlite_writer(db)?;
    let (id, version) = (vu.tasks[spec.task].id, vu.tasks[spec.task].version);
    let oc = org_context(vu);
    let body = UpdateTaskBody {
        title: Some(spec.title),
        description: None,
        status: None,
        priority: Some(parse_priority(spec.priority)),
        assignee_ids: None,
        label_ids: None,
        due_date: None,
    };
    let headers = if_match(version);
    let done = writer
        .run(move |w| tasks::sqlite::update(w, &oc, id, &headers, &body))
        .await;
    Ok(conditional_outcome(
        done,
        vu,
        spec.task,
        &env.limit_counts.updated,
    ))
}

/// The outcome of a conditional write (`412` is a conflict, not an
/// error), noting the VU's new version of the task.
fn conditional_outcome(
    done: Result<Task, orgboard::error::ApiError>,
    vu: &mut Vu,
    task: usize,
    counter: &std::sync::atomic::AtomicU64,
) -> Outcome {
    match done {
        Ok(t) => {
            vu.tasks[task].version = t.version;
            counter.fetch_add(1, Ordering::Relaxed);
            Outcome::Ok
        }
        Err(e) if e.status() == StatusCode::PRECONDITION_FAILED => Outcome::Conflict,
        Err(e) => Outcome::Error(e.status().as_u16().to_string()),
    }
}

/// SQLite: the server's own move job, with `If-Match`.
async fn sqlite_move(
    db: &Db,
    vu: &mut Vu,
    env: &Env,
    spec: crate::scenario::MoveSpec,
) -> anyhow::Result<Outcome> {
    let writer = sqlite_writer(db)?;
    let (id, version) = (vu.tasks[spec.task].id, vu.tasks[spec.task].version);
    let oc = org_context(vu);
    let body = MoveTaskBody {
        list_id: vu.lists[spec.to],
        after_id: spec.after,
        before_id: None,
    };
    let headers = if_match(version);
    let done = writer
        .run(move |w| tasks::sqlite::move_to(w, &oc, id, &headers, &body))
        .await;
    let outcome = conditional_outcome(done, vu, spec.task, &env.limit_counts.moved);
    if outcome == Outcome::Ok {
        vu.tasks[spec.task].list = spec.to;
    }
    Ok(outcome)
}

fn parse_priority(p: &str) -> Priority {
    match p {
        "low" => Priority::Low,
        "medium" => Priority::Medium,
        "high" => Priority::High,
        _ => Priority::Urgent,
    }
}

async fn update_task(
    db: &Db,
    vu: &mut Vu,
    env: &Env,
    spec: crate::scenario::UpdateSpec,
) -> anyhow::Result<Outcome> {
    let id = vu.tasks[spec.task].id;
    let rid = request_id();
    let mut tx = write_tx(db, vu).await?;
    let Some(task) = load_task(&mut tx, vu.org_id, id, true).await? else {
        return Ok(Outcome::Error("404".into()));
    };
    let now = now();
    let mut new = task.clone();
    new.title = spec.title;
    new.priority = parse_priority(spec.priority);
    let mut payload = serde_json::Map::new();
    for (field, c) in [
        ("title", change(&task.title, &new.title)),
        ("priority", change(&task.priority, &new.priority)),
    ] {
        if let Some(c) = c {
            payload.insert(field.into(), c);
        }
    }
    let changed = on_tx!(&mut tx, |c| {
        sqlx::query(
        "UPDATE tasks SET title = $1, description = $2, status = $3, priority = $4, due_date = $5, \
         completed_at = $6, version = version + 1, updated_at = $7 \
         WHERE org_id = $8 AND id = $9 AND version = $10"
    )
    .bind(&new.title)
    .bind(&new.description)
    .bind(new.status.as_str())
    .bind(new.priority.rank())
    .bind(new.due_date)
    .bind(new.completed_at)
    .bind(now)
    .bind(vu.org_id)
    .bind(id)
    .bind(task.version)
    .execute(c)
    .await
    .map(|r| r.rows_affected())
    })?;
    if changed != 1 {
        return Ok(Outcome::Conflict);
    }
    audit::record(&mut tx, entry(vu, "task.updated", id, payload.into(), &rid)).await?;
    let updated = load_task(&mut tx, vu.org_id, id, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("task vanished"))?;
    tx.commit().await?;
    vu.tasks[spec.task].version = updated.version;
    env.limit_counts.updated.fetch_add(1, Ordering::Relaxed);
    Ok(Outcome::Ok)
}

async fn move_task(
    db: &Db,
    vu: &mut Vu,
    env: &Env,
    spec: crate::scenario::MoveSpec,
) -> anyhow::Result<Outcome> {
    let id = vu.tasks[spec.task].id;
    let target_id = vu.lists[spec.to];
    let rid = request_id();
    let org = vu.org_id;
    let mut tx = write_tx(db, vu).await?;
    let Some(task) = load_task(&mut tx, org, id, false).await? else {
        return Ok(Outcome::Error("404".into()));
    };
    let mut to_lock = vec![task.list_id, target_id];
    to_lock.sort();
    to_lock.dedup();
    let mut target = None;
    for l in to_lock {
        let list = load_list(&mut tx, org, l, true).await?;
        if l == target_id {
            target = list;
        }
    }
    let target = target.ok_or_else(|| anyhow::anyhow!("list not found"))?;
    let task = load_task(&mut tx, org, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("task vanished"))?;
    let after: Option<String> = match spec.after {
        Some(a) => on_tx!(&mut tx, |c| sqlx::query_scalar(
            "SELECT position FROM tasks WHERE org_id = $1 AND list_id = $2 AND id = $3"
        )
        .bind(org)
        .bind(target.id)
        .bind(a)
        .fetch_optional(c)
        .await)?,
        None => None,
    };
    let (lower, upper) = match after {
        Some(a) => {
            let next: Option<String> = on_tx!(&mut tx, |c| {
                sqlx::query_scalar(
                "SELECT position FROM tasks WHERE org_id = $1 AND list_id = $2 AND id <> $3 AND position > $4 \
                 ORDER BY position LIMIT 1"
            )
            .bind(org)
            .bind(target.id)
            .bind(task.id)
            .bind(&a)
            .fetch_optional(c)
            .await
            })?;
            (Some(a), next)
        }
        None => (last_position(&mut tx, org, target.id, task.id).await?, None),
    };
    let position = key_between(lower.as_deref(), upper.as_deref())?;
    let now = now();
    on_tx!(&mut tx, |c| sqlx::query(
        "UPDATE tasks SET list_id = $1, position = $2, version = version + 1, updated_at = $3 \
         WHERE org_id = $4 AND id = $5"
    )
    .bind(target.id)
    .bind(&position)
    .bind(now)
    .bind(org)
    .bind(id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    let mut payload = serde_json::Map::new();
    if let Some(c) = change(&task.list_id, &target.id) {
        payload.insert("list_id".into(), c);
    }
    if let Some(c) = change(&task.position, &position) {
        payload.insert("position".into(), c);
    }
    payload.insert("board_id".into(), json!(task.board_id));
    audit::record(&mut tx, entry(vu, "task.moved", id, payload.into(), &rid)).await?;
    let moved = load_task(&mut tx, org, id, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("task vanished"))?;
    tx.commit().await?;
    vu.tasks[spec.task].version = moved.version;
    vu.tasks[spec.task].list = spec.to;
    env.limit_counts.moved.fetch_add(1, Ordering::Relaxed);
    Ok(Outcome::Ok)
}
