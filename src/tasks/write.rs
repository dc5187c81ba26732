//! Task writes — create, update, move, delete — each written once, generic
//! over the unit of work ([`Uow`]): the same function runs in a PostgreSQL
//! transaction and as a job of SQLite's group-commit writer. The handlers
//! in [`super`] only parse, run the use case ([`crate::unit!`]) and answer.
//!
//! On PostgreSQL rows are locked where two writers could race (the list a
//! task is appended to, the task being changed, the lists of a move, in id
//! order); on SQLite the writer is alone, so the same `SELECT`s lock
//! nothing ([`lock`]).

use std::collections::BTreeSet;

use serde_json::json;
use uuid::Uuid;

use super::rules::{
    NewTask, apply_update, changed_concurrently, check_if_match, diff, ownership, validate_fields,
};
use super::{CreateTaskBody, MoveTaskBody, Status, TASK_COLUMNS, Task, UpdateTaskBody, ids_text};
use crate::args;
use crate::db::change::{self, CardChange, Kind};
use crate::db::uow::{Arg, DbError, RowRef, Uow};
use crate::db::{Backend, lock_suffix, now};
use crate::domain::ordering::key_between;
use crate::domain::{Action, Ownership};
use crate::error::{ApiError, FieldError};
use crate::idempotency::{self, Created, IdemKey};
use crate::orgs::context::{OrgContext, OrgRequest};

/// A task from a row of [`TASK_COLUMNS`].
pub fn task_from_row(r: RowRef<'_, '_>) -> Result<Task, DbError> {
    let status = r.text(6)?;
    let priority: i16 = r.get(7)?;
    Ok(Task {
        id: r.get(0)?,
        org_id: r.get(1)?,
        board_id: r.get(2)?,
        list_id: r.get(3)?,
        title: r.get(4)?,
        description: r.get(5)?,
        status: Status::try_from(&*status).map_err(|e| DbError::Decode(6, e))?,
        priority: super::Priority::try_from(priority).map_err(|e| DbError::Decode(7, e))?,
        position: r.get(8)?,
        due_date: r.get(9)?,
        created_by: r.get(10)?,
        completed_at: r.get(11)?,
        version: r.get(12)?,
        comment_count: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        assignee_ids: super::id_list(&r.get::<String>(16)?),
        label_ids: super::id_list(&r.get::<String>(17)?),
    })
}

/// One task with its relation ids, in one statement (`lock`: and locks it
/// on PostgreSQL).
pub async fn load_task<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    id: Uuid,
    lock_it: bool,
) -> Result<Option<Task>, DbError> {
    let suffix = if lock_it {
        lock_suffix(u.backend())
    } else {
        ""
    };
    let sql =
        format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.org_id = $1 AND t.id = $2{suffix}");
    u.fetch_optional(&sql, &args![org_id, id])
        .await?
        .as_ref()
        .map(|r| task_from_row(r.into()))
        .transpose()
}

/// The board of a list of the organization (`lock`: and locks the list).
async fn board_of_list<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    list_id: Uuid,
    lock_it: bool,
) -> Result<Option<Uuid>, DbError> {
    let suffix = if lock_it {
        lock_suffix(u.backend())
    } else {
        ""
    };
    let sql = format!("SELECT board_id FROM lists WHERE org_id = $1 AND id = $2{suffix}");
    u.fetch_value(&sql, &args![org_id, list_id]).await
}

/// The last key of a list, for appending: answered from the
/// `(org_id, list_id, position)` index alone.
const APPEND: &str =
    "SELECT position FROM tasks WHERE org_id = $1 AND list_id = $2 ORDER BY position DESC LIMIT 1";
const LAST: &str = "SELECT position FROM tasks WHERE org_id = $1 AND list_id = $2 AND id <> $3 \
     ORDER BY position DESC LIMIT 1";
const NEXT: &str = "SELECT position FROM tasks WHERE org_id = $1 AND list_id = $2 AND id <> $3 \
     AND position > $4 ORDER BY position LIMIT 1";
const PREV: &str = "SELECT position FROM tasks WHERE org_id = $1 AND list_id = $2 AND id <> $3 \
     AND position < $4 ORDER BY position DESC LIMIT 1";
const ANCHOR: &str = "SELECT position FROM tasks WHERE org_id = $1 AND list_id = $2 AND id = $3";

/// `$first, $first+1, …` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `422` unless every id is a member (assignees) or a label of the
/// organization; one statement per non-empty set.
pub async fn check_related<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    assignees: &[Uuid],
    labels: &[Uuid],
) -> Result<(), ApiError> {
    for (field, table, col, ids) in [
        ("assignee_ids", "memberships", "user_id", assignees),
        ("label_ids", "labels", "id", labels),
    ] {
        if ids.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT {col} FROM {table} WHERE org_id = $1 AND {col} IN ({})",
            placeholders(2, ids.len())
        );
        let mut bound = vec![Arg::from(org_id)];
        bound.extend(ids.iter().map(|id| Arg::from(*id)));
        let found = u
            .fetch_all(&sql, &bound)
            .await?
            .iter()
            .map(|r| r.get::<Uuid>(0))
            .collect::<Result<BTreeSet<Uuid>, _>>()?;
        let errors: Vec<FieldError> = ids
            .iter()
            .enumerate()
            .filter(|(_, id)| !found.contains(id))
            .map(|(i, _)| {
                FieldError::new(
                    format!("{field}[{i}]"),
                    if field == "assignee_ids" {
                        "is not a member of this organization"
                    } else {
                        "is not a label of this organization"
                    },
                )
            })
            .collect();
        if !errors.is_empty() {
            return Err(ApiError::validation(errors));
        }
    }
    Ok(())
}

/// Replaces the given relation sets of a task (`None`: leave that set;
/// `fresh`: the task is new, there is nothing to delete).
async fn replace_relations<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    task_id: Uuid,
    assignees: Option<&[Uuid]>,
    labels: Option<&[Uuid]>,
    fresh: bool,
) -> Result<(), DbError> {
    for (table, col, ids) in [
        ("task_assignees", "user_id", assignees),
        ("task_labels", "label_id", labels),
    ] {
        let Some(ids) = ids else { continue };
        if !fresh {
            let del = format!("DELETE FROM {table} WHERE org_id = $1 AND task_id = $2");
            u.execute(&del, &args![org_id, task_id]).await?;
        }
        if ids.is_empty() {
            continue;
        }
        let values: Vec<String> = (0..ids.len())
            .map(|i| format!("($1, $2, ${})", i + 3))
            .collect();
        let ins = format!(
            "INSERT INTO {table} (org_id, task_id, {col}) VALUES {}",
            values.join(", ")
        );
        let mut bound = vec![Arg::from(org_id), Arg::from(task_id)];
        bound.extend(ids.iter().map(|id| Arg::from(*id)));
        u.defer(&ins, &bound).await?;
    }
    Ok(())
}

/// `POST …/lists/{list}/tasks`: a task at the end of the list (member+).
pub async fn create<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    list_id: Uuid,
    body: &CreateTaskBody,
    key: Option<&IdemKey>,
) -> Result<Created<Task>, ApiError> {
    let oc = org.enter(u).await?;
    oc.require(Action::CreateTask, Ownership::NotOwn)?;
    let NewTask {
        title,
        assignees,
        labels,
        status,
        priority,
    } = NewTask::check(body)?;
    if let Some(replay) = idempotency::claim(u, oc.user_id, oc.org_id, key).await? {
        return Ok(Created::Replay(replay));
    }
    let board_id = board_of_list(u, oc.org_id, list_id, true)
        .await?
        .ok_or_else(ApiError::not_found)?;
    check_related(u, oc.org_id, &assignees, &labels).await?;
    let last: Option<String> = u.fetch_value(APPEND, &args![oc.org_id, list_id]).await?;
    let position = key_between(last.as_deref(), None)?;
    let id = Uuid::now_v7();
    let now = now();
    let completed_at = (status == Status::Done).then_some(now);
    let description = body.description.clone().unwrap_or_default();
    let due_date = body.due_date.map(crate::db::micros);
    u.defer(
        "INSERT INTO tasks (org_id, id, board_id, list_id, title, description, status, priority, position, \
         due_date, created_by, completed_at, version, created_at, updated_at, assignee_ids, label_ids) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13, $14, $15)",
        &args![
            oc.org_id,
            id,
            board_id,
            list_id,
            &title,
            &description,
            status.as_str(),
            priority.rank(),
            &position,
            due_date,
            oc.user_id,
            completed_at,
            now,
            &ids_text(&assignees),
            &ids_text(&labels),
        ],
    )
    .await?;
    // A new task has no relations yet: only non-empty sets cost statements.
    replace_relations(u, oc.org_id, id, Some(&assignees), Some(&labels), true).await?;
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
        due_date,
        created_by: oc.user_id,
        completed_at,
        version: 1,
        comment_count: 0,
        created_at: now,
        updated_at: now,
    };
    change::record(
        u,
        oc.change(
            Kind::TaskCreated,
            id,
            Some(board_id),
            json!({
                "title": task.title, "board_id": task.board_id, "list_id": task.list_id,
                "status": task.status, "priority": task.priority,
                "assignee_ids": task.assignee_ids, "label_ids": task.label_ids, "due_date": task.due_date,
            }),
        )
        .with_card(card_change(&task, None)),
    )
    .await?;
    idempotency::complete(u, oc.user_id, key, 201, &task).await?;
    Ok(Created::New(task))
}

/// A card as the board view shows it and as the cache patches it: its
/// summary's JSON with what orders it (`was`: the list it was in before the
/// change, `None` for a new card).
pub fn card_change(task: &Task, was: Option<Uuid>) -> CardChange {
    let mut json = Vec::with_capacity(512);
    // A task's own times are values: nothing to refuse.
    let _ = super::card::CardFields::of_task(task).write_json(&mut json);
    CardChange::Put {
        id: task.id,
        list_id: task.list_id,
        was,
        position: task.position.clone(),
        version: task.version,
        json: bytes::Bytes::from(json),
    }
}

/// `PATCH …/tasks/{task}` (admin+, or a member on a task they created or
/// are assigned to); `if_match`: the `If-Match` header, if sent.
pub async fn update<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    task_id: Uuid,
    if_match: Option<&str>,
    body: &UpdateTaskBody,
) -> Result<Task, ApiError> {
    let oc = org.enter(u).await?;
    oc.require(Action::UpdateTask, Ownership::Own)?;
    let (title, assignees, labels) = validate_fields(
        body.title.as_deref(),
        body.description.as_deref(),
        body.assignee_ids.as_deref(),
        body.label_ids.as_deref(),
        body.due_date.flatten().as_ref(),
    )?;
    let task = load_task(u, oc.org_id, task_id, true)
        .await?
        .ok_or_else(ApiError::not_found)?;
    oc.require(Action::UpdateTask, ownership(&task, oc.user_id, true))?;
    check_if_match(if_match, task.version)?;
    check_related(
        u,
        oc.org_id,
        assignees.as_deref().unwrap_or(&[]),
        labels.as_deref().unwrap_or(&[]),
    )
    .await?;
    let now = now();
    let (new, payload) = apply_update(&task, title, body, assignees.as_ref(), labels.as_ref(), now);
    if payload.is_empty() {
        return Ok(task);
    }
    let changed = u
        .execute(
            "UPDATE tasks SET title = $1, description = $2, status = $3, priority = $4, due_date = $5, \
             completed_at = $6, version = version + 1, updated_at = $7, assignee_ids = $11, \
             label_ids = $12 WHERE org_id = $8 AND id = $9 AND version = $10",
            &args![
                &new.title,
                &new.description,
                new.status.as_str(),
                new.priority.rank(),
                new.due_date,
                new.completed_at,
                now,
                oc.org_id,
                task_id,
                task.version,
                &ids_text(&new.assignee_ids),
                &ids_text(&new.label_ids),
            ],
        )
        .await?;
    if changed != 1 {
        // Unreachable while the row is locked (or the writer is alone);
        // kept as the last line of defence.
        return Err(changed_concurrently());
    }
    replace_relations(
        u,
        oc.org_id,
        task_id,
        (task.assignee_ids != new.assignee_ids).then_some(new.assignee_ids.as_slice()),
        (task.label_ids != new.label_ids).then_some(new.label_ids.as_slice()),
        false,
    )
    .await?;
    // Exactly the row as written (the locked row plus this change), without
    // reading it back; relation ids are sorted as loading sorts them.
    let mut updated = new;
    updated.version = task.version + 1;
    updated.updated_at = now;
    change::record(
        u,
        oc.change(
            Kind::TaskUpdated,
            task_id,
            Some(task.board_id),
            payload.into(),
        )
        .with_card(card_change(&updated, Some(task.list_id))),
    )
    .await?;
    Ok(updated)
}

/// The order key of a move anchor; `422` unless it is a task of `list_id`.
async fn anchor<U: Uow>(
    u: &mut U,
    oc: &OrgContext,
    list_id: Uuid,
    field: &'static str,
    id: Option<Uuid>,
) -> Result<Option<String>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    u.fetch_value(ANCHOR, &args![oc.org_id, list_id, id])
        .await?
        .map(Some)
        .ok_or_else(|| ApiError::invalid_field(field, "is not a task of the destination list"))
}

/// `POST …/tasks/{task}/move`: within or across lists of its board (same
/// rights as update; `If-Match` honoured).
pub async fn move_to<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    task_id: Uuid,
    if_match: Option<&str>,
    body: &MoveTaskBody,
) -> Result<Task, ApiError> {
    let oc = org.enter(u).await?;
    oc.require(Action::UpdateTask, Ownership::Own)?;
    for (field, id) in [("after_id", body.after_id), ("before_id", body.before_id)] {
        if id == Some(task_id) {
            return Err(ApiError::invalid_field(field, "must be another task"));
        }
    }
    let task = load_task(u, oc.org_id, task_id, false)
        .await?
        .ok_or_else(ApiError::not_found)?;
    oc.require(Action::UpdateTask, ownership(&task, oc.user_id, true))?;
    // Lock the lists involved in a fixed order (no deadlock between two
    // moves in opposite directions), then the task.
    let mut to_lock = vec![task.list_id, body.list_id];
    to_lock.sort();
    to_lock.dedup();
    let mut target_board = None;
    for id in to_lock {
        let board = board_of_list(u, oc.org_id, id, true).await?;
        if id == body.list_id {
            target_board = board;
        }
    }
    if target_board != Some(task.board_id) {
        return Err(ApiError::invalid_field(
            "list_id",
            "is not a list of this task's board",
        ));
    }
    let task = match u.backend() {
        // The row may have changed while we waited for the lists' locks.
        Backend::Postgres => load_task(u, oc.org_id, task_id, true)
            .await?
            .ok_or_else(ApiError::not_found)?,
        Backend::Sqlite => task,
    };
    check_if_match(if_match, task.version)?;
    let list_id = body.list_id;
    let after = anchor(u, &oc, list_id, "after_id", body.after_id).await?;
    let before = anchor(u, &oc, list_id, "before_id", body.before_id).await?;
    let (lower, upper) = match (after, before) {
        (Some(a), Some(b)) if a >= b => {
            return Err(ApiError::invalid_field(
                "before_id",
                "must come after after_id",
            ));
        }
        (Some(a), Some(b)) => (Some(a), Some(b)),
        (Some(a), None) => {
            let next = u
                .fetch_value(NEXT, &args![oc.org_id, list_id, task_id, &a])
                .await?;
            (Some(a), next)
        }
        (None, Some(b)) => {
            let prev = u
                .fetch_value(PREV, &args![oc.org_id, list_id, task_id, &b])
                .await?;
            (prev, Some(b))
        }
        (None, None) => (
            u.fetch_value(LAST, &args![oc.org_id, list_id, task_id])
                .await?,
            None,
        ),
    };
    let position = key_between(lower.as_deref(), upper.as_deref())?;
    let now = now();
    u.defer(
        "UPDATE tasks SET list_id = $1, position = $2, version = version + 1, updated_at = $3 \
         WHERE org_id = $4 AND id = $5",
        &args![list_id, &position, now, oc.org_id, task_id],
    )
    .await?;
    let mut payload = serde_json::Map::new();
    diff(&mut payload, "list_id", &task.list_id, &list_id);
    diff(&mut payload, "position", &task.position, &position);
    payload.insert("board_id".into(), json!(task.board_id));
    // The locked row plus this move, without reading it back.
    let was = task.list_id;
    let mut moved = task;
    moved.list_id = list_id;
    moved.position = position;
    moved.version += 1;
    moved.updated_at = now;
    change::record(
        u,
        oc.change(
            Kind::TaskMoved,
            task_id,
            Some(moved.board_id),
            payload.into(),
        )
        .with_card(card_change(&moved, Some(was))),
    )
    .await?;
    Ok(moved)
}

/// `DELETE …/tasks/{task}` (admin+, or a member on a task they created).
pub async fn delete<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    task_id: Uuid,
    if_match: Option<&str>,
) -> Result<(), ApiError> {
    let oc = org.enter(u).await?;
    oc.require(Action::DeleteTask, Ownership::Own)?;
    let task = load_task(u, oc.org_id, task_id, true)
        .await?
        .ok_or_else(ApiError::not_found)?;
    oc.require(Action::DeleteTask, ownership(&task, oc.user_id, false))?;
    check_if_match(if_match, task.version)?;
    u.defer(
        "DELETE FROM tasks WHERE org_id = $1 AND id = $2",
        &args![oc.org_id, task_id],
    )
    .await?;
    change::record(
        u,
        oc.change(
            Kind::TaskDeleted,
            task_id,
            Some(task.board_id),
            json!({ "title": task.title, "board_id": task.board_id, "list_id": task.list_id }),
        )
        .with_card(CardChange::Gone {
            id: task_id,
            was: task.list_id,
        }),
    )
    .await?;
    Ok(())
}
