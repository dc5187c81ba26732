//! The hot task writes on SQLite, as jobs of the group-commit writer
//! ([`crate::db::writer`]): the same checks, statements and audit rows as
//! the sqlx versions in [`super`], run synchronously on the writer thread,
//! so a create holds SQLite's write lock for the time SQLite needs rather
//! than for a dozen thread hops. PostgreSQL (and SQLite requests with an
//! `Idempotency-Key`, which are rare) use the sqlx versions. Every test of
//! `tests/tasks.rs` runs on both databases, so each behaviour is checked on
//! this path (SQLite) and on the sqlx one (PostgreSQL); the answers are
//! built by the same functions (`NewTask`, `apply_update`, `check_if_match`).

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{
    CreateTaskBody, MoveTaskBody, NewTask, Priority, Status, Task, UpdateTaskBody, apply_update,
    changed_concurrently, check_if_match, diff, ownership, validate_fields,
};
use crate::db::WriteCtx;
use crate::db::writer::time_text;
use crate::domain::ordering::key_between;
use crate::domain::{Action, Ownership};
use crate::error::{ApiError, FieldError};
use crate::orgs::context::OrgContext;

/// `None` for "no row", like sqlx's `fetch_optional`.
fn optional<T>(r: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The board of a list of the organization (the list row itself needs no
/// lock: the writer is alone).
fn board_of_list(
    conn: &rusqlite::Connection,
    org_id: Uuid,
    list_id: Uuid,
) -> rusqlite::Result<Option<Uuid>> {
    optional(
        conn.prepare_cached("SELECT board_id FROM lists WHERE org_id = ?1 AND id = ?2")?
            .query_row(rusqlite::params![org_id, list_id], |r| r.get(0)),
    )
}

/// [`super::check_related`] on the writer's connection.
fn check_related(
    conn: &rusqlite::Connection,
    org_id: Uuid,
    assignees: &[Uuid],
    labels: &[Uuid],
) -> Result<(), ApiError> {
    for (field, sql, ids) in [
        (
            "assignee_ids",
            "SELECT 1 FROM memberships WHERE org_id = ?1 AND user_id = ?2",
            assignees,
        ),
        (
            "label_ids",
            "SELECT 1 FROM labels WHERE org_id = ?1 AND id = ?2",
            labels,
        ),
    ] {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut errors = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if !stmt.exists(rusqlite::params![org_id, id])? {
                errors.push(FieldError::new(
                    format!("{field}[{i}]"),
                    if field == "assignee_ids" {
                        "is not a member of this organization"
                    } else {
                        "is not a label of this organization"
                    },
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
    }
    Ok(())
}

/// [`super::replace_relations`] for a new task: inserts the sets given.
fn insert_relations(
    conn: &rusqlite::Connection,
    org_id: Uuid,
    task_id: Uuid,
    assignees: &[Uuid],
    labels: &[Uuid],
) -> rusqlite::Result<()> {
    for (sql, ids) in [
        (
            "INSERT INTO task_assignees (org_id, task_id, user_id) VALUES (?1, ?2, ?3)",
            assignees,
        ),
        (
            "INSERT INTO task_labels (org_id, task_id, label_id) VALUES (?1, ?2, ?3)",
            labels,
        ),
    ] {
        if ids.is_empty() {
            continue;
        }
        let mut stmt = conn.prepare_cached(sql)?;
        for id in ids {
            stmt.execute(rusqlite::params![org_id, task_id, id])?;
        }
    }
    Ok(())
}

/// Creates a task at the end of `list_id` for the member `oc` (whose role
/// was read in this same transaction): the body of `POST
/// …/lists/{list}/tasks` after authentication, as a writer job.
pub fn create(
    w: &mut WriteCtx<'_>,
    oc: &OrgContext,
    list_id: Uuid,
    body: &CreateTaskBody,
) -> Result<Task, ApiError> {
    oc.require(Action::CreateTask, Ownership::NotOwn)?;
    let NewTask {
        title,
        assignees,
        labels,
        status,
        priority,
    } = NewTask::check(body)?;
    let conn = w.conn;
    let board_id = board_of_list(conn, oc.org_id, list_id)?.ok_or_else(ApiError::not_found)?;
    check_related(conn, oc.org_id, &assignees, &labels)?;
    let last: Option<String> = optional(
        conn.prepare_cached(
            "SELECT position FROM tasks WHERE org_id = ?1 AND list_id = ?2 ORDER BY position DESC LIMIT 1",
        )?
        .query_row(rusqlite::params![oc.org_id, list_id], |r| r.get(0)),
    )?;
    let position = key_between(last.as_deref(), None)?;
    let id = Uuid::now_v7();
    let now = crate::db::now();
    let now_text = time_text(now);
    let completed_at = (status == Status::Done).then_some(now);
    let description = body.description.clone().unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO tasks (org_id, id, board_id, list_id, title, description, status, priority, position, \
         due_date, created_by, completed_at, version, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 1, ?13, ?13)",
    )?
    .execute(rusqlite::params![
        oc.org_id,
        id,
        board_id,
        list_id,
        title,
        description,
        status.as_str(),
        priority.rank(),
        position,
        body.due_date.map(time_text),
        oc.user_id,
        completed_at.map(time_text),
        now_text,
    ])?;
    insert_relations(conn, oc.org_id, id, &assignees, &labels)?;
    let task = Task {
        id,
        org_id: oc.org_id,
        board_id,
        list_id,
        title,
        description,
        status,
        priority,
        position,
        assignee_ids: assignees,
        label_ids: labels,
        due_date: body.due_date,
        created_by: oc.user_id,
        completed_at,
        version: 1,
        comment_count: 0,
        created_at: now,
        updated_at: now,
    };
    crate::events::record_sqlite(
        w,
        &oc.audit(
            "task.created",
            "task",
            Some(id),
            json!({
                "title": task.title, "board_id": task.board_id, "list_id": task.list_id,
                "status": task.status, "priority": task.priority,
                "assignee_ids": task.assignee_ids, "label_ids": task.label_ids, "due_date": task.due_date,
            }),
        ),
    )?;
    Ok(task)
}

fn time(s: String) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

fn conversion(e: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
}

/// [`super::load_task`] on the writer's connection (one statement: the
/// task and its relation ids).
fn load_task(
    conn: &rusqlite::Connection,
    org_id: Uuid,
    id: Uuid,
) -> rusqlite::Result<Option<Task>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.id, t.org_id, t.board_id, t.list_id, t.title, t.description, t.status, t.priority, \
         t.position, t.due_date, t.created_by, t.completed_at, t.version, t.created_at, t.updated_at, \
         t.comment_count, COALESCE((SELECT group_concat(hex(r.user_id), ',') FROM task_assignees r \
                   WHERE r.org_id = t.org_id AND r.task_id = t.id), ''), \
         COALESCE((SELECT group_concat(hex(r.label_id), ',') FROM task_labels r \
                   WHERE r.org_id = t.org_id AND r.task_id = t.id), '') \
         FROM tasks t WHERE t.org_id = ?1 AND t.id = ?2",
    )?;
    optional(stmt.query_row(rusqlite::params![org_id, id], |r| {
        Ok(Task {
            id: r.get(0)?,
            org_id: r.get(1)?,
            board_id: r.get(2)?,
            list_id: r.get(3)?,
            title: r.get(4)?,
            description: r.get(5)?,
            status: Status::try_from(r.get::<_, String>(6)?).map_err(conversion)?,
            priority: Priority::try_from(r.get::<_, i16>(7)?).map_err(conversion)?,
            position: r.get(8)?,
            due_date: r.get::<_, Option<String>>(9)?.map(time).transpose()?,
            created_by: r.get(10)?,
            completed_at: r.get::<_, Option<String>>(11)?.map(time).transpose()?,
            version: r.get(12)?,
            created_at: time(r.get(13)?)?,
            updated_at: time(r.get(14)?)?,
            comment_count: r.get(15)?,
            assignee_ids: super::id_list(&r.get::<_, String>(16)?),
            label_ids: super::id_list(&r.get::<_, String>(17)?),
        })
    }))
}

/// [`super::replace_relations`] on the writer's connection.
fn replace_relations(
    conn: &rusqlite::Connection,
    org_id: Uuid,
    task_id: Uuid,
    assignees: Option<&[Uuid]>,
    labels: Option<&[Uuid]>,
) -> rusqlite::Result<()> {
    if assignees.is_some() {
        conn.prepare_cached("DELETE FROM task_assignees WHERE org_id = ?1 AND task_id = ?2")?
            .execute(rusqlite::params![org_id, task_id])?;
    }
    if labels.is_some() {
        conn.prepare_cached("DELETE FROM task_labels WHERE org_id = ?1 AND task_id = ?2")?
            .execute(rusqlite::params![org_id, task_id])?;
    }
    insert_relations(
        conn,
        org_id,
        task_id,
        assignees.unwrap_or(&[]),
        labels.unwrap_or(&[]),
    )
}

/// `PATCH …/tasks/{task}` after authentication, as a writer job (see
/// [`super::update_task`], whose rules and answer it shares).
pub fn update(
    w: &mut WriteCtx<'_>,
    oc: &OrgContext,
    task_id: Uuid,
    headers: &HeaderMap,
    body: &UpdateTaskBody,
) -> Result<Task, ApiError> {
    oc.require(Action::UpdateTask, Ownership::Own)?;
    let (title, assignees, labels) = validate_fields(
        body.title.as_deref(),
        body.description.as_deref(),
        body.assignee_ids.as_deref(),
        body.label_ids.as_deref(),
        body.due_date.flatten().as_ref(),
    )?;
    let conn = w.conn;
    let task = load_task(conn, oc.org_id, task_id)?.ok_or_else(ApiError::not_found)?;
    oc.require(Action::UpdateTask, ownership(&task, oc.user_id, true))?;
    check_if_match(headers, task.version)?;
    check_related(
        conn,
        oc.org_id,
        assignees.as_deref().unwrap_or(&[]),
        labels.as_deref().unwrap_or(&[]),
    )?;
    let now = crate::db::now();
    let (new, payload) = apply_update(&task, title, body, assignees.as_ref(), labels.as_ref(), now);
    if payload.is_empty() {
        return Ok(task);
    }
    let changed = conn
        .prepare_cached(
            "UPDATE tasks SET title = ?1, description = ?2, status = ?3, priority = ?4, due_date = ?5, \
             completed_at = ?6, version = version + 1, updated_at = ?7 \
             WHERE org_id = ?8 AND id = ?9 AND version = ?10",
        )?
        .execute(rusqlite::params![
            new.title,
            new.description,
            new.status.as_str(),
            new.priority.rank(),
            new.due_date.map(time_text),
            new.completed_at.map(time_text),
            time_text(now),
            oc.org_id,
            task_id,
            task.version,
        ])?;
    if changed != 1 {
        return Err(changed_concurrently());
    }
    replace_relations(
        conn,
        oc.org_id,
        task_id,
        (task.assignee_ids != new.assignee_ids).then_some(new.assignee_ids.as_slice()),
        (task.label_ids != new.label_ids).then_some(new.label_ids.as_slice()),
    )?;
    crate::events::record_sqlite(
        w,
        &oc.audit("task.updated", "task", Some(task_id), payload.into()),
    )?;
    let mut updated = new;
    updated.version = task.version + 1;
    updated.updated_at = now;
    Ok(updated)
}

/// `POST …/tasks/{task}/move` after authentication, as a writer job (see
/// [`super::move_task`], whose rules and answer it shares).
pub fn move_to(
    w: &mut WriteCtx<'_>,
    oc: &OrgContext,
    task_id: Uuid,
    headers: &HeaderMap,
    body: &MoveTaskBody,
) -> Result<Task, ApiError> {
    oc.require(Action::UpdateTask, Ownership::Own)?;
    for (field, id) in [("after_id", body.after_id), ("before_id", body.before_id)] {
        if id == Some(task_id) {
            return Err(ApiError::invalid_field(field, "must be another task"));
        }
    }
    let conn = w.conn;
    let task = load_task(conn, oc.org_id, task_id)?.ok_or_else(ApiError::not_found)?;
    oc.require(Action::UpdateTask, ownership(&task, oc.user_id, true))?;
    if board_of_list(conn, oc.org_id, body.list_id)? != Some(task.board_id) {
        return Err(ApiError::invalid_field(
            "list_id",
            "is not a list of this task's board",
        ));
    }
    check_if_match(headers, task.version)?;
    let anchor = |field: &'static str, id: Option<Uuid>| -> Result<Option<String>, ApiError> {
        let Some(id) = id else { return Ok(None) };
        optional(
            conn.prepare_cached(
                "SELECT position FROM tasks WHERE org_id = ?1 AND list_id = ?2 AND id = ?3",
            )?
            .query_row(rusqlite::params![oc.org_id, body.list_id, id], |r| r.get(0)),
        )?
        .map(Some)
        .ok_or_else(|| ApiError::invalid_field(field, "is not a task of the destination list"))
    };
    let after = anchor("after_id", body.after_id)?;
    let before = anchor("before_id", body.before_id)?;
    let neighbour = |sql: &str, pos: Option<&str>| -> rusqlite::Result<Option<String>> {
        let mut stmt = conn.prepare_cached(sql)?;
        optional(match pos {
            Some(p) => stmt.query_row(
                rusqlite::params![oc.org_id, body.list_id, task_id, p],
                |r| r.get(0),
            ),
            None => stmt.query_row(rusqlite::params![oc.org_id, body.list_id, task_id], |r| {
                r.get(0)
            }),
        })
    };
    let (lower, upper) = match (after, before) {
        (Some(a), Some(b)) if a >= b => {
            return Err(ApiError::invalid_field(
                "before_id",
                "must come after after_id",
            ));
        }
        (Some(a), Some(b)) => (Some(a), Some(b)),
        (Some(a), None) => {
            let next = neighbour(
                "SELECT position FROM tasks WHERE org_id = ?1 AND list_id = ?2 AND id <> ?3 \
                 AND position > ?4 ORDER BY position LIMIT 1",
                Some(&a),
            )?;
            (Some(a), next)
        }
        (None, Some(b)) => {
            let prev = neighbour(
                "SELECT position FROM tasks WHERE org_id = ?1 AND list_id = ?2 AND id <> ?3 \
                 AND position < ?4 ORDER BY position DESC LIMIT 1",
                Some(&b),
            )?;
            (prev, Some(b))
        }
        (None, None) => (
            neighbour(
                "SELECT position FROM tasks WHERE org_id = ?1 AND list_id = ?2 AND id <> ?3 \
                 ORDER BY position DESC LIMIT 1",
                None,
            )?,
            None,
        ),
    };
    let position = key_between(lower.as_deref(), upper.as_deref())?;
    let now = crate::db::now();
    conn.prepare_cached(
        "UPDATE tasks SET list_id = ?1, position = ?2, version = version + 1, updated_at = ?3 \
         WHERE org_id = ?4 AND id = ?5",
    )?
    .execute(rusqlite::params![
        body.list_id,
        position,
        time_text(now),
        oc.org_id,
        task_id
    ])?;
    let mut payload = serde_json::Map::new();
    diff(&mut payload, "list_id", &task.list_id, &body.list_id);
    diff(&mut payload, "position", &task.position, &position);
    payload.insert("board_id".into(), json!(task.board_id));
    crate::events::record_sqlite(
        w,
        &oc.audit("task.moved", "task", Some(task_id), payload.into()),
    )?;
    let mut moved = task;
    moved.list_id = body.list_id;
    moved.position = position;
    moved.version += 1;
    moved.updated_at = now;
    Ok(moved)
}
