//! Task writes — create, update, move, delete — each written once, generic
//! over the unit of work ([`Uow`]): the same function runs in a PostgreSQL
//! transaction and as a job of SQLite's group-commit writer. The handlers
//! in [`super`] only parse, run the use case ([`crate::unit!`]) and answer.
//!
//! Each starts with [`OrgRequest::enter_reading`]: one statement reads the
//! membership together with everything the write needs (the list's last
//! key, the task, the anchors, whether the related ids exist) and, on
//! PostgreSQL, locks the one row two writers could race for — the task
//! being changed, moved or deleted ([`task_join`]). No list is locked: the
//! key a create or a move makes carries a tie-break instead (see
//! [`key_apart`]). On PostgreSQL that statement goes out with the unit's
//! `BEGIN` ([`crate::db::unit`]), and the writes (deferred into one
//! statement) go with `COMMIT`: a create, update, move or delete is two
//! round trips. On SQLite the writer is alone: nothing is locked.

use std::collections::BTreeSet;

use serde_json::json;
use uuid::Uuid;

use super::rules::{NewTask, apply_update, check_if_match, diff, ownership, validate_fields};
use super::{CreateTaskBody, MoveTaskBody, Status, TASK_COLUMNS, Task, UpdateTaskBody, ids_text};
use crate::args;
use crate::db::change::{self, CardChange, Kind};
use crate::db::uow::{AnyRow, Arg, DbError, RowRef, Uow};
use crate::db::{Backend, now, placeholders};
use crate::domain::DomainError;
use crate::domain::ordering::{key_after_last, key_apart};
use crate::domain::{Action, Ownership};
use crate::error::FieldError;
use crate::idempotency::{self, Created, IdemKey};
use crate::orgs::context::{Fused, OrgRequest};

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

/// One task with its relation ids, in one statement (writes read and lock
/// theirs with [`OrgRequest::enter_reading`]).
pub async fn load_task<U: Uow>(u: &mut U, org_id: Uuid, id: Uuid) -> Result<Option<Task>, DbError> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.org_id = $1 AND t.id = $2");
    u.fetch_optional(&sql, &args![org_id, id])
        .await?
        .as_ref()
        .map(|r| task_from_row(r.into()))
        .transpose()
}

/// How many columns [`TASK_COLUMNS`] has.
const TASK_WIDTH: usize = 18;

/// The join that reads the task `$at` as `t` for a write and locks it: its
/// columns are `NULL` when there is no such task. On PostgreSQL the row is
/// locked `FOR NO KEY UPDATE` by a lateral subquery that depends on the
/// membership (`m`), so it runs only for a member, after the membership
/// join, and yields the row's latest committed version (read committed
/// re-reads a row it waited for); the rest of the statement reads the
/// statement's snapshot. Conditional writes (`If-Match`) and the diff are
/// computed from that locked row. SQLite's writer is alone: nothing to
/// lock.
pub(crate) fn task_join(backend: Backend, at: usize) -> String {
    match backend {
        Backend::Postgres => format!(
            "LEFT JOIN LATERAL (SELECT * FROM tasks WHERE org_id = m.org_id AND id = ${at} \
             FOR NO KEY UPDATE) t ON true"
        ),
        Backend::Sqlite => format!("LEFT JOIN tasks t ON t.org_id = o.id AND t.id = ${at}"),
    }
}

/// The task of a row whose first columns are [`TASK_COLUMNS`] read through
/// [`task_join`]; `404` when there is none.
fn joined_task(row: &AnyRow) -> Result<Task, DomainError> {
    if row.get::<Option<Uuid>>(0)?.is_none() {
        return Err(DomainError::not_found());
    }
    Ok(task_from_row(row.into())?)
}

/// Two columns counting how many of `assignees` are members and how many
/// of `labels` are labels of the organization (`o.id`), their values bound
/// from `$first` on; `0` for an empty set or one too large to be valid
/// (the field check refuses it before the counts are looked at).
fn related_counts<'a>(
    first: usize,
    assignees: &'a BTreeSet<Uuid>,
    labels: &'a BTreeSet<Uuid>,
    args: &mut Vec<Arg<'a>>,
) -> String {
    let mut at = first;
    let mut cols = Vec::with_capacity(2);
    for (table, col, ids) in [
        ("memberships", "user_id", assignees),
        ("labels", "id", labels),
    ] {
        if ids.is_empty() || ids.len() > super::MAX_RELATED {
            cols.push("CAST(0 AS BIGINT)".to_owned());
            continue;
        }
        cols.push(format!(
            "(SELECT count(*) FROM {table} WHERE org_id = o.id AND {col} IN ({}))",
            placeholders(at, ids.len())
        ));
        at += ids.len();
        args.extend(ids.iter().map(|id| Arg::from(*id)));
    }
    cols.join(", ")
}

/// The distinct ids of a relation field as sent (for [`related_counts`]).
fn distinct(ids: Option<&[Uuid]>) -> BTreeSet<Uuid> {
    ids.unwrap_or_default().iter().copied().collect()
}

/// `422` naming the ids that are not members or labels of the organization,
/// unless the counts read with the membership (at `at`, `at + 1`) already
/// found every one of them.
async fn check_counted<U: Uow>(
    u: &mut U,
    row: &AnyRow,
    at: usize,
    org_id: Uuid,
    assignees: &[Uuid],
    labels: &[Uuid],
) -> Result<(), DomainError> {
    let found = |i: usize| -> Result<usize, DomainError> {
        Ok(usize::try_from(row.get::<i64>(i)?).unwrap_or(0))
    };
    if found(at)? == assignees.len() && found(at + 1)? == labels.len() {
        return Ok(());
    }
    check_related(u, org_id, assignees, labels).await
}

/// A task of list `$3` (other than task `$6`), for placing a moved task:
/// the key of anchor `$4` (after) and `$5` (before), each `NULL` unless it
/// is a task of the list.
const ANCHOR_AFTER: &str =
    "(SELECT position FROM tasks WHERE org_id = o.id AND list_id = $3 AND id = $4)";
const ANCHOR_BEFORE: &str =
    "(SELECT position FROM tasks WHERE org_id = o.id AND list_id = $3 AND id = $5)";

/// `422` unless every id is a member (assignees) or a label of the
/// organization; one statement per non-empty set.
pub async fn check_related<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    assignees: &[Uuid],
    labels: &[Uuid],
) -> Result<(), DomainError> {
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
            return Err(DomainError::validation(errors));
        }
    }
    Ok(())
}

/// Replaces the given relation sets of a task (`None`: leave that set;
/// `fresh`: the task is new, there is nothing to delete). Both writes wait
/// for the unit's next round trip: the `DELETE` takes only the ids that
/// left the set and the `INSERT` skips the ones that stayed, so the two
/// never touch one row (the parts of one statement see one snapshot).
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
        let mut bound = vec![Arg::from(org_id), Arg::from(task_id)];
        bound.extend(ids.iter().map(|id| Arg::from(*id)));
        if !fresh {
            let keep = if ids.is_empty() {
                String::new()
            } else {
                format!(" AND {col} NOT IN ({})", placeholders(3, ids.len()))
            };
            let del = format!("DELETE FROM {table} WHERE org_id = $1 AND task_id = $2{keep}");
            u.defer(&del, &bound).await?;
        }
        if ids.is_empty() {
            continue;
        }
        let values: Vec<String> = (0..ids.len())
            .map(|i| format!("($1, $2, ${})", i + 3))
            .collect();
        let ins = format!(
            "INSERT INTO {table} (org_id, task_id, {col}) VALUES {}{}",
            values.join(", "),
            if fresh { "" } else { " ON CONFLICT DO NOTHING" }
        );
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
) -> Result<Created<Task>, DomainError> {
    // The membership, the list's board, the list's last key and whether
    // the related ids exist, in one statement.
    let (wanted_a, wanted_l) = (
        distinct(body.assignee_ids.as_deref()),
        distinct(body.label_ids.as_deref()),
    );
    let mut args = vec![Arg::from(list_id)];
    let counts = related_counts(4, &wanted_a, &wanted_l, &mut args);
    let columns = format!(
        "(SELECT board_id FROM lists WHERE org_id = o.id AND id = $3), \
         (SELECT position FROM tasks WHERE org_id = o.id AND list_id = $3 \
          ORDER BY position DESC LIMIT 1), {counts}"
    );
    // No lock: concurrent creates in one list each read its last key and
    // append after it with a tie-break of their own ([`key_after_last`]),
    // so they never wait for each other. A list deleted meanwhile fails
    // the insert's foreign key: `404`, as if it had been gone first.
    let read = Fused {
        columns: &columns,
        width: 4,
        joins: "",
        args,
    };
    let (oc, row) = org.enter_reading(u, &read).await?;
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
    let board_id: Uuid = row
        .get::<Option<Uuid>>(0)?
        .ok_or_else(DomainError::not_found)?;
    check_counted(u, &row, 2, oc.org_id, &assignees, &labels).await?;
    let last: Option<String> = row.get(1)?;
    let id = Uuid::now_v7();
    let position = key_after_last(last.as_deref(), tiebreak(id))?;
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
        .with_card(card_change(&task, 0, None)?),
    )
    .await?;
    idempotency::complete(u, oc.user_id, key, 201, &task).await?;
    Ok(Created::New(task))
}

/// The random bits of a version-7 id (its last 8 bytes but the variant),
/// as the salt of an order key's tie-break.
fn tiebreak(id: Uuid) -> u64 {
    let b = id.as_bytes();
    u64::from_be_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]) & (u64::MAX >> 2)
}

/// A card as the board view shows it and as the cache patches it: its
/// summary's JSON with what orders it (`comment_rev`: the task row's count
/// of comments added and removed; `was`: the list it was in before the
/// change, `None` for a new card).
pub fn card_change(
    task: &Task,
    comment_rev: i64,
    was: Option<Uuid>,
) -> Result<CardChange, DbError> {
    super::card::CardFields::of_task(task, comment_rev).change(was)
}

/// `PATCH …/tasks/{task}` (admin+, or a member on a task they created or
/// are assigned to); `if_match`: the `If-Match` header, if sent.
pub async fn update<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    task_id: Uuid,
    if_match: Option<&str>,
    body: &UpdateTaskBody,
) -> Result<Task, DomainError> {
    // The membership, the task (locked: [`task_join`]) and whether the
    // related ids exist, in one statement.
    let (wanted_a, wanted_l) = (
        distinct(body.assignee_ids.as_deref()),
        distinct(body.label_ids.as_deref()),
    );
    let mut args = vec![Arg::from(task_id)];
    let counts = related_counts(4, &wanted_a, &wanted_l, &mut args);
    let columns = format!("{TASK_COLUMNS}, {counts}, t.comment_rev");
    let joins = task_join(u.backend(), 3);
    let read = Fused {
        columns: &columns,
        width: TASK_WIDTH + 3,
        joins: &joins,
        args,
    };
    let (oc, row) = org.enter_reading(u, &read).await?;
    oc.require(Action::UpdateTask, Ownership::Own)?;
    let (title, assignees, labels) = validate_fields(
        body.title.as_deref(),
        body.description.as_deref(),
        body.assignee_ids.as_deref(),
        body.label_ids.as_deref(),
        body.due_date.flatten().as_ref(),
    )?;
    let task = joined_task(&row)?;
    oc.require(Action::UpdateTask, ownership(&task, oc.user_id, true))?;
    check_if_match(if_match, task.version)?;
    let comment_rev: i64 = row.get(TASK_WIDTH + 2)?;
    check_counted(
        u,
        &row,
        TASK_WIDTH,
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
    // The row is locked (PostgreSQL) or the writer is alone (SQLite): the
    // version it was read at is the one it is written over. Only the
    // columns that changed are set: SQLite rewrites the entry of every
    // index over a column in `SET` even when its value stays the same
    // (measured: 4 WAL pages per update with the status, priority and due
    // date set to themselves, 1 without), and each page is a WAL frame.
    // The payload's fields are named as the columns they change.
    let (assignee_text, label_text) = (ids_text(&new.assignee_ids), ids_text(&new.label_ids));
    let fields: [(&str, Arg<'_>); 8] = [
        ("title", Arg::from(&new.title)),
        ("description", Arg::from(&new.description)),
        ("status", Arg::from(new.status.as_str())),
        ("priority", Arg::from(new.priority.rank())),
        ("due_date", Arg::from(new.due_date)),
        ("completed_at", Arg::from(new.completed_at)),
        ("assignee_ids", Arg::from(&assignee_text)),
        ("label_ids", Arg::from(&label_text)),
    ];
    let mut args = Vec::from(args![now, oc.org_id, task_id, task.version]);
    let mut sql = String::from("UPDATE tasks SET version = version + 1, updated_at = $1");
    for (column, value) in fields {
        if payload.contains_key(column) {
            args.push(value);
            sql.push_str(&format!(", {column} = ${}", args.len()));
        }
    }
    sql.push_str(" WHERE org_id = $2 AND id = $3 AND version = $4");
    u.defer(&sql, &args).await?;
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
        .with_card(card_change(&updated, comment_rev, Some(task.list_id))?),
    )
    .await?;
    Ok(updated)
}

/// `POST …/tasks/{task}/move`: within or across lists of its board (same
/// rights as update; `If-Match` honoured).
pub async fn move_to<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    task_id: Uuid,
    if_match: Option<&str>,
    body: &MoveTaskBody,
) -> Result<Task, DomainError> {
    // The membership, the task (locked against a concurrent change of the
    // same task: [`task_join`]), the destination's board, the anchors'
    // keys and the neighbour the new key goes next to, in one statement.
    // No list is locked: two moves into one gap at once each get a
    // key in it with a tie-break of their own ([`key_apart`]).
    let neighbour = match (body.after_id, body.before_id) {
        (Some(_), None) => format!(
            "(SELECT position FROM tasks WHERE org_id = o.id AND list_id = $3 AND id <> $6 \
             AND position > {ANCHOR_AFTER} ORDER BY position LIMIT 1)"
        ),
        (None, Some(_)) => format!(
            "(SELECT position FROM tasks WHERE org_id = o.id AND list_id = $3 AND id <> $6 \
             AND position < {ANCHOR_BEFORE} ORDER BY position DESC LIMIT 1)"
        ),
        (None, None) => "(SELECT position FROM tasks WHERE org_id = o.id AND list_id = $3 \
             AND id <> $6 ORDER BY position DESC LIMIT 1)"
            .to_owned(),
        (Some(_), Some(_)) => "NULL".to_owned(),
    };
    let columns = format!(
        "{TASK_COLUMNS}, (SELECT board_id FROM lists WHERE org_id = o.id AND id = $3), \
         {ANCHOR_AFTER}, {ANCHOR_BEFORE}, {neighbour}, t.comment_rev"
    );
    let joins = task_join(u.backend(), 6);
    let read = Fused {
        columns: &columns,
        width: TASK_WIDTH + 5,
        joins: &joins,
        args: args![body.list_id, body.after_id, body.before_id, task_id].to_vec(),
    };
    let (oc, row) = org.enter_reading(u, &read).await?;
    oc.require(Action::UpdateTask, Ownership::Own)?;
    for (field, id) in [("after_id", body.after_id), ("before_id", body.before_id)] {
        if id == Some(task_id) {
            return Err(DomainError::invalid_field(field, "must be another task"));
        }
    }
    let task = joined_task(&row)?;
    oc.require(Action::UpdateTask, ownership(&task, oc.user_id, true))?;
    let target_board: Option<Uuid> = row.get(TASK_WIDTH)?;
    if target_board != Some(task.board_id) {
        return Err(DomainError::invalid_field(
            "list_id",
            "is not a list of this task's board",
        ));
    }
    check_if_match(if_match, task.version)?;
    let list_id = body.list_id;
    let anchor =
        |i: usize, field: &'static str, id: Option<Uuid>| -> Result<Option<String>, DomainError> {
            let key: Option<String> = row.get(i)?;
            match (id, key) {
                (None, _) => Ok(None),
                (Some(_), Some(key)) => Ok(Some(key)),
                (Some(_), None) => Err(DomainError::invalid_field(
                    field,
                    "is not a task of the destination list",
                )),
            }
        };
    let after = anchor(TASK_WIDTH + 1, "after_id", body.after_id)?;
    let before = anchor(TASK_WIDTH + 2, "before_id", body.before_id)?;
    let neighbour: Option<String> = row.get(TASK_WIDTH + 3)?;
    let comment_rev: i64 = row.get(TASK_WIDTH + 4)?;
    let (lower, upper) = match (after, before) {
        (Some(a), Some(b)) if a >= b => {
            return Err(DomainError::invalid_field(
                "before_id",
                "must come after after_id",
            ));
        }
        (Some(a), Some(b)) => (Some(a), Some(b)),
        (Some(a), None) => (Some(a), neighbour),
        (None, Some(b)) => (neighbour, Some(b)),
        (None, None) => (neighbour, None),
    };
    let position = key_apart(lower.as_deref(), upper.as_deref(), tiebreak(Uuid::now_v7()))?;
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
        .with_card(card_change(&moved, comment_rev, Some(was))?),
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
) -> Result<(), DomainError> {
    let joins = task_join(u.backend(), 3);
    let read = Fused {
        columns: TASK_COLUMNS,
        width: TASK_WIDTH,
        joins: &joins,
        args: args![task_id].to_vec(),
    };
    let (oc, row) = org.enter_reading(u, &read).await?;
    oc.require(Action::DeleteTask, Ownership::Own)?;
    let task = joined_task(&row)?;
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
