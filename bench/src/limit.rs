//! Limit mode: the SQL each scenario makes the server run, run directly
//! against the database through the same storage layer (`Db::read` /
//! `Db::write` with the tenant `Scope`, so PostgreSQL pays the same role and
//! tenant settings and SQLite the same single writer and reader pool), with
//! no HTTP, no JSON and no authentication.
//!
//! Task writes call the server's own use cases (`tasks::write::{create,
//! update, move_to}`) through `orgboard::unit!`, exactly as the handlers
//! do — a job of SQLite's group-commit writer or a PostgreSQL transaction,
//! membership check included — so nothing is mirrored. Reads call the
//! server's own query functions (`tasks::load_task`,
//! `boards::view::board_view_json`, `tasks::filter::member_page`,
//! `audit::member_page`). The filter page checks the membership as the
//! server does (on PostgreSQL joined to the page's statement), and the
//! audit-log page the membership and the role, as the server does; the task
//! and board reads leave out the membership statement the server runs
//! first: their HTTP ÷ limit ratio includes it.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyper::StatusCode;
use orgboard::db::{Db, Scope};
use orgboard::error::status_of;
use orgboard::orgs::context::OrgRequest;
use orgboard::tasks::{
    self, CreateTaskBody, MoveTaskBody, Priority, Task, UpdateTaskBody, load_task, write,
};
use rand::Rng;
use uuid::Uuid;

use crate::scenario::{
    AUDIT_FILTERS, AuditFilterSpec, Env, FILTERS, Op, PAGE, Vu, board_name, comment_text,
    create_spec, move_spec, pick_task, update_spec,
};
use crate::stats::Outcome;
use orgboard::boards::CreateBoardBody;
use orgboard::comments::CommentBody;

/// Does `op` directly on the database; `None` when there is nothing to
/// measure (login, a list page, or a VU without tasks).
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
        Op::AuditPage => {
            let f = vu.rng.random_range(0..AUDIT_FILTERS.len());
            audit_page(db, vu, f, None).await.map(|_| Outcome::Ok)
        }
        Op::AuditPageFirst | Op::AuditPageCursor => {
            let (f, before) = match vu.db_chain.take() {
                Some((f, b)) if op == Op::AuditPageCursor => (f, Some(b)),
                _ => (vu.rng.random_range(0..AUDIT_FILTERS.len()), None),
            };
            audit_page(db, vu, f, before).await.map(|next| {
                vu.db_chain = next.map(|id| (f, id));
                Outcome::Ok
            })
        }
        // Limit mode has no cache: the database's own view either way.
        Op::BoardView | Op::BoardViewCached | Op::BoardView304 => board_view(db, vu).await,
        Op::Login | Op::ListPage => return None,
        Op::CreateTask => create_task(db, vu, env).await,
        Op::CreateComment => {
            let task = pick_task(vu)?;
            create_comment(db, vu, env, task).await
        }
        Op::CreateBoard => create_board(db, vu, env).await,
        Op::UpdateTask => {
            let spec = update_spec(vu)?;
            update_task(db, vu, env, spec).await
        }
        Op::MoveTask => {
            let spec = move_spec(vu)?;
            move_task(db, vu, env, spec).await
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

/// The scope of a read (the tenant set with the `BEGIN`, as the server's
/// reads of an organization known by id).
fn scope(vu: &Vu) -> Scope {
    Scope::tenant(vu.user_id, vu.org_id)
}

/// The scope of a use case's write unit, as the server opens it: the user
/// only. The use case enters the organization itself (on PostgreSQL with
/// its `BEGIN`, `orgboard::db::unit`); a unit begun inside the tenant would
/// take the longer path (membership, locks and reads one statement each).
fn write_scope(vu: &Vu) -> Scope {
    Scope::user(vu.user_id)
}

/// The server stamps every audit row with its request id.
fn request_id() -> String {
    Uuid::new_v4().to_string()
}

async fn get_task(db: &Db, vu: &Vu, id: Uuid) -> anyhow::Result<Outcome> {
    // As the server reads a task: one statement on SQLite's read pool, one
    // round trip (`BEGIN`, the statement, `COMMIT`) on PostgreSQL.
    let org_id = vu.org_id;
    let task = match db.sqlite_readers() {
        Some(readers) => {
            readers
                .read_statement(async move |u| load_task(u, org_id, id).await)
                .await??
        }
        None => {
            let mut read = db.pg_read(scope(vu), true).await?;
            load_task(&mut read, org_id, id).await?
        }
    };
    Ok(if task.is_some() {
        Outcome::Ok
    } else {
        Outcome::Error("404".into())
    })
}

async fn board_view(db: &Db, vu: &Vu) -> anyhow::Result<Outcome> {
    use orgboard::boards::view::{DEFAULT_PER_LIST, board_view_json};
    // The server's own function on the server's own path (SQLite: the
    // rusqlite read pool): the statements, and the JSON written as the rows
    // arrive. The server seals a cursor for each list with more; a
    // placeholder here.
    let (org_id, board_id) = (vu.org_id, vu.board_id);
    let cursor = |_, id: Uuid, _: &str| id.to_string();
    let view = orgboard::read_unit!(db, scope(vu), |u| async move {
        board_view_json(u, org_id, board_id, DEFAULT_PER_LIST, cursor).await
    })
    .map_err(|e| anyhow::anyhow!("board view: {e:?}"))?;
    Ok(if view.is_some() {
        Outcome::Ok
    } else {
        Outcome::Error("404".into())
    })
}

/// The filter's page for `FILTERS[f]` (default sort: by id), after `after`
/// when paging, through the server's own function on the server's own
/// path (SQLite: the rusqlite read pool); returns the last id when there
/// is a next page.
async fn filter_page(
    db: &Db,
    vu: &Vu,
    f: usize,
    after: Option<Uuid>,
) -> anyhow::Result<Option<Uuid>> {
    let (statuses, priorities) = FILTERS[f];
    let query = tasks::filter::TaskQuery {
        status: Some(statuses.join(",")),
        priority: Some(priorities.join(",")),
        limit: Some(PAGE as u32),
        ..Default::default()
    };
    let mut filter =
        tasks::filter::Filter::parse(&query).map_err(|e| anyhow::anyhow!("filter: {e:?}"))?;
    if let Some(id) = after {
        filter = filter.after(id);
    }
    let org_id = vu.org_id;
    let org = org_request(vu);
    let mut rows = orgboard::read_unit!(db, scope(vu), |u| async move {
        tasks::filter::member_page(u, &org, org_id, &filter).await
    })
    .map_err(|e| anyhow::anyhow!("filter page: {e:?}"))?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    Ok(if more { rows.last_id() } else { None })
}

/// The audit log's page for `AUDIT_FILTERS[f]` (newest first), before
/// `before` when paging, through the server's own function on the server's
/// own path (SQLite: the rusqlite read pool), membership and role checked;
/// returns the last id when there is a next page.
async fn audit_page(
    db: &Db,
    vu: &Vu,
    f: usize,
    before: Option<Uuid>,
) -> anyhow::Result<Option<Uuid>> {
    let mut query = orgboard::audit::AuditQuery {
        limit: Some(PAGE as u32),
        ..Default::default()
    };
    match AUDIT_FILTERS[f] {
        AuditFilterSpec::All => {}
        AuditFilterSpec::Action(a) => query.action = Some(a.to_owned()),
        AuditFilterSpec::EntityType(t) => query.entity_type = Some(t.to_owned()),
        AuditFilterSpec::OwnActor => query.actor_id = Some(vu.user_id),
    }
    let mut filter = orgboard::audit::AuditFilter::parse(&query)
        .map_err(|e| anyhow::anyhow!("audit filter: {e:?}"))?;
    if let Some(id) = before {
        filter = filter.before(id);
    }
    let org_id = vu.org_id;
    let org = org_request(vu);
    let mut rows = orgboard::read_unit!(db, scope(vu), |u| async move {
        orgboard::audit::member_page(u, &org, org_id, &filter).await
    })
    .map_err(|e| anyhow::anyhow!("audit page: {e:?}"))?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    Ok(if more { rows.last_id() } else { None })
}

/// The raw limit: the smallest honest write transaction at the same
/// concurrency — one task and its audit row, each one prepared statement,
/// in a write unit of the tenant (on PostgreSQL `BEGIN` with the role and
/// tenant settings, two `INSERT`s, `COMMIT`; on SQLite a job of the same
/// group-commit writer). Every report shows how close orgboard's own
/// writes come to it.
pub async fn raw_op(vu: &mut Vu, env: &Env) -> Option<(Duration, Outcome)> {
    let db = env.db.as_ref()?;
    let (org, user, list) = (vu.org_id, vu.user_id, vu.lists[0]);
    let board = vu.board_id;
    let rid = request_id();
    let started = Instant::now();
    let scope = scope(vu);
    let done: Result<(), orgboard::domain::DomainError> =
        async { orgboard::unit!(db, scope, |u| raw_create(u, org, user, board, list, &rid)) }.await;
    let latency = started.elapsed();
    Some(match done {
        Ok(()) => {
            env.limit_counts.created.fetch_add(1, Ordering::Relaxed);
            (latency, Outcome::Ok)
        }
        Err(e) => (
            latency,
            Outcome::Error(status_of(e.kind()).as_u16().to_string()),
        ),
    })
}

async fn raw_create<U: orgboard::db::uow::Uow>(
    u: &mut U,
    org: Uuid,
    user: Uuid,
    board: Uuid,
    list: Uuid,
    rid: &str,
) -> Result<(), orgboard::domain::DomainError> {
    let id = Uuid::now_v7();
    let now = orgboard::db::now();
    // After every real key, and unique: the raw tasks sort last.
    let position = format!("zz{}", id.simple());
    u.execute(
        "INSERT INTO tasks (org_id, id, board_id, list_id, title, description, status, priority, \
         position, created_by, version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'raw', '', 'todo', 1, $5, $6, 1, $7, $7)",
        &orgboard::args![org, id, board, list, &position, user, now],
    )
    .await?;
    let payload = serde_json::json!({ "title": "raw" });
    u.execute(
        "INSERT INTO audit_log (org_id, id, actor_id, action, entity_type, entity_id, payload, \
         request_id, created_at) VALUES ($1, $2, $3, 'task.created', 'task', $4, $5, $6, $7)",
        &orgboard::args![org, Uuid::now_v7(), user, id, &payload, rid, now],
    )
    .await?;
    Ok(())
}

/// The request the use cases act for (its membership is checked by the
/// use case, as on the server).
fn org_request(vu: &Vu) -> OrgRequest {
    OrgRequest::for_member(vu.user_id, vu.org_id, Some(request_id()))
}

/// `If-Match` with the version the VU last saw, as the HTTP client sends it.
fn if_match(version: i64) -> String {
    format!("\"{version}\"")
}

/// The server's own create use case (`tasks::write::create`), run as the
/// handler runs it: a job of SQLite's group-commit writer, or a
/// PostgreSQL transaction.
async fn create_task(db: &Db, vu: &mut Vu, env: &Env) -> anyhow::Result<Outcome> {
    let spec = create_spec(vu);
    let (org, list) = (org_request(vu), vu.lists[spec.list]);
    let body = CreateTaskBody {
        title: spec.title,
        description: Some(spec.description),
        status: None,
        priority: Some(parse_priority(spec.priority)),
        assignee_ids: Some(spec.assignees),
        label_ids: Some(spec.labels),
        due_date: None,
    };
    let scope = write_scope(vu);
    orgboard::unit!(db, scope, |u| write::create(u, &org, list, &body, None))
        .map_err(|e| anyhow::anyhow!("{}", status_of(e.kind())))?;
    env.limit_counts.created.fetch_add(1, Ordering::Relaxed);
    Ok(Outcome::Ok)
}

/// The server's own comment use case (`comments::write::create`).
async fn create_comment(db: &Db, vu: &mut Vu, env: &Env, task: Uuid) -> anyhow::Result<Outcome> {
    let org = org_request(vu);
    let body = CommentBody {
        body: comment_text(vu),
    };
    let scope = write_scope(vu);
    orgboard::unit!(db, scope, |u| orgboard::comments::write::create(
        u, &org, task, &body, None
    ))
    .map_err(|e| anyhow::anyhow!("{}", status_of(e.kind())))?;
    env.limit_counts.comments.fetch_add(1, Ordering::Relaxed);
    Ok(Outcome::Ok)
}

/// The server's own board use case (`boards::create`).
async fn create_board(db: &Db, vu: &mut Vu, env: &Env) -> anyhow::Result<Outcome> {
    let org = org_request(vu);
    let body = CreateBoardBody {
        name: board_name(vu),
        description: None,
    };
    let scope = write_scope(vu);
    orgboard::unit!(db, scope, |u| orgboard::boards::create(
        u, &org, &body, None
    ))
    .map_err(|e| anyhow::anyhow!("{}", status_of(e.kind())))?;
    env.limit_counts.boards.fetch_add(1, Ordering::Relaxed);
    Ok(Outcome::Ok)
}

/// The server's own update use case, with `If-Match`.
async fn update_task(
    db: &Db,
    vu: &mut Vu,
    env: &Env,
    spec: crate::scenario::UpdateSpec,
) -> anyhow::Result<Outcome> {
    let (id, version) = (vu.tasks[spec.task].id, vu.tasks[spec.task].version);
    let org = org_request(vu);
    let body = UpdateTaskBody {
        title: Some(spec.title),
        description: None,
        status: None,
        priority: Some(parse_priority(spec.priority)),
        assignee_ids: None,
        label_ids: None,
        due_date: None,
    };
    let tag = if_match(version);
    let scope = write_scope(vu);
    let done = orgboard::unit!(db, scope, |u| write::update(
        u,
        &org,
        id,
        Some(tag.as_str()),
        &body
    ));
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
    done: Result<Task, orgboard::domain::DomainError>,
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
        Err(e) if status_of(e.kind()) == StatusCode::PRECONDITION_FAILED => Outcome::Conflict,
        Err(e) => Outcome::Error(status_of(e.kind()).as_u16().to_string()),
    }
}

/// The server's own move use case, with `If-Match`.
async fn move_task(
    db: &Db,
    vu: &mut Vu,
    env: &Env,
    spec: crate::scenario::MoveSpec,
) -> anyhow::Result<Outcome> {
    let (id, version) = (vu.tasks[spec.task].id, vu.tasks[spec.task].version);
    let org = org_request(vu);
    let body = MoveTaskBody {
        list_id: vu.lists[spec.to],
        after_id: spec.after,
        before_id: None,
    };
    let tag = if_match(version);
    let scope = write_scope(vu);
    let done = orgboard::unit!(db, scope, |u| write::move_to(
        u,
        &org,
        id,
        Some(tag.as_str()),
        &body
    ));
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
