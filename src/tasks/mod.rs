//! Tasks: create (appended to a list), read, update, move, delete; the
//! filtered, paged listing lives in [`filter`].
//!
//! Concurrency: every task read carries `version` and an `ETag` (`"<version>"`).
//! `PATCH` and `move` with `If-Match` answer `412` when stale. The task row is
//! locked by the statement that reads it for the check (PostgreSQL
//! `FOR NO KEY UPDATE`; SQLite has one writer), so of N concurrent
//! conditional updates exactly one wins. Placing a task locks no list: the
//! order key it makes ends with a tie-break of its own, so concurrent
//! placements in one list do not pick the same key (the unique key refuses
//! an exact collision, and the route tries again: [`write`]).

pub mod card;
pub mod filter;
pub mod routes;
pub mod rules;
pub mod write;

pub use routes::router;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::uow::{DbError, Uow};

/// Longest title, in characters.
pub const TITLE_MAX: usize = 500;
/// Longest description, in characters.
pub const DESCRIPTION_MAX: usize = 100_000;
/// Most assignees or labels on one task.
pub const MAX_RELATED: usize = 50;

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not started.
    Todo,
    /// Being worked on.
    InProgress,
    /// Finished (stamps `completed_at`).
    Done,
}

impl Status {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Todo => "todo",
            Status::InProgress => "in_progress",
            Status::Done => "done",
        }
    }
}

impl TryFrom<&str> for Status {
    type Error = String;
    fn try_from(s: &str) -> Result<Self, String> {
        match s {
            "todo" => Ok(Status::Todo),
            "in_progress" => Ok(Status::InProgress),
            "done" => Ok(Status::Done),
            _ => Err(format!("unknown status {s:?}")),
        }
    }
}

impl TryFrom<String> for Status {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Status::try_from(s.as_str())
    }
}

/// How urgent a task is (stored as its rank, 0–3, so it sorts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// 0.
    Low,
    /// 1.
    Medium,
    /// 2.
    High,
    /// 3.
    Urgent,
}

impl Priority {
    /// Stored rank.
    pub fn rank(self) -> i16 {
        match self {
            Priority::Low => 0,
            Priority::Medium => 1,
            Priority::High => 2,
            Priority::Urgent => 3,
        }
    }
}

impl TryFrom<i16> for Priority {
    type Error = String;
    fn try_from(r: i16) -> Result<Self, String> {
        match r {
            0 => Ok(Priority::Low),
            1 => Ok(Priority::Medium),
            2 => Ok(Priority::High),
            3 => Ok(Priority::Urgent),
            _ => Err(format!("unknown priority rank {r}")),
        }
    }
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Task {
    /// Task id.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// The list.
    pub list_id: Uuid,
    /// Title, 1–500 characters.
    pub title: String,
    /// Description, up to 100 000 characters.
    pub description: String,
    /// Status.
    #[sqlx(try_from = "String")]
    pub status: Status,
    /// Priority.
    #[sqlx(try_from = "i16")]
    pub priority: Priority,
    /// Order key within the list (compare as bytes).
    pub position: String,
    /// Assigned members.
    #[sqlx(skip)]
    pub assignee_ids: Vec<Uuid>,
    /// Labels.
    #[sqlx(skip)]
    pub label_ids: Vec<Uuid>,
    /// Due time.
    #[serde(serialize_with = "card::opt_time")]
    pub due_date: Option<DateTime<Utc>>,
    /// Who created it.
    pub created_by: Uuid,
    /// When it was last set to `done`; cleared on reopening.
    #[serde(serialize_with = "card::opt_time")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Increases with every change; send it back in `If-Match`.
    pub version: i64,
    /// How many comments it has (adding one is not a change of the task:
    /// `version` stays).
    pub comment_count: i64,
    /// Created.
    #[serde(serialize_with = "card::time")]
    pub created_at: DateTime<Utc>,
    /// Last changed.
    #[serde(serialize_with = "card::time")]
    pub updated_at: DateTime<Utc>,
}

/// Columns of [`Task`], for `SELECT`s (prefixed with `t.`).
pub const TASK_COLUMNS: &str = "t.id, t.org_id, t.board_id, t.list_id, t.title, t.description, t.status, \
     t.priority, t.position, t.due_date, t.created_by, t.completed_at, t.version, t.comment_count, t.created_at, t.updated_at, \
     t.assignee_ids, t.label_ids";

/// Body of `POST …/lists/{list}/tasks`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTaskBody {
    /// Title, 1–500 characters.
    pub title: String,
    /// Description, up to 100 000 characters.
    pub description: Option<String>,
    /// Default `todo`.
    pub status: Option<Status>,
    /// Default `medium`.
    pub priority: Option<Priority>,
    /// Members to assign (≤ 50).
    pub assignee_ids: Option<Vec<Uuid>>,
    /// Labels of the organization (≤ 50).
    pub label_ids: Option<Vec<Uuid>>,
    /// Due time (RFC 3339).
    pub due_date: Option<DateTime<Utc>>,
}

/// Body of `PATCH …/tasks/{task}`: only the fields given change.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UpdateTaskBody {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New status.
    pub status: Option<Status>,
    /// New priority.
    pub priority: Option<Priority>,
    /// Replaces the assignees.
    pub assignee_ids: Option<Vec<Uuid>>,
    /// Replaces the labels.
    pub label_ids: Option<Vec<Uuid>>,
    /// New due time; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub due_date: Option<Option<DateTime<Utc>>>,
}

/// Tells "absent" (`None`) from "null" (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Body of `POST …/tasks/{task}/move`: the destination list (same board)
/// and, optionally, neighbours there; neither neighbour: last.
#[derive(Debug, Deserialize, ToSchema)]
pub struct MoveTaskBody {
    /// Destination list, on the same board.
    pub list_id: Uuid,
    /// The task that will come right before this one.
    pub after_id: Option<Uuid>,
    /// The task that will come right after this one.
    pub before_id: Option<Uuid>,
}

/// Path of task routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskPath {
    /// Organization id or slug.
    pub org: String,
    /// The task.
    pub task: Uuid,
}

/// A task as the board view carries it: every field but the description
/// (`GET …/tasks/{task}` has it).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskSummary {
    /// Task id.
    pub id: Uuid,
    /// The organization.
    pub org_id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// The list.
    pub list_id: Uuid,
    /// Title, 1–500 characters.
    pub title: String,
    /// Status.
    pub status: Status,
    /// Priority.
    pub priority: Priority,
    /// Order key within the list (compare as bytes).
    pub position: String,
    /// Assigned members.
    pub assignee_ids: Vec<Uuid>,
    /// Labels.
    pub label_ids: Vec<Uuid>,
    /// Due time.
    #[serde(serialize_with = "card::opt_time")]
    pub due_date: Option<DateTime<Utc>>,
    /// Who created it.
    pub created_by: Uuid,
    /// When it was last set to `done`; cleared on reopening.
    #[serde(serialize_with = "card::opt_time")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Increases with every change; send it back in `If-Match`.
    pub version: i64,
    /// How many comments it has.
    pub comment_count: i64,
    /// Created.
    #[serde(serialize_with = "card::time")]
    pub created_at: DateTime<Utc>,
    /// Last changed.
    #[serde(serialize_with = "card::time")]
    pub updated_at: DateTime<Utc>,
}

impl From<Task> for TaskSummary {
    fn from(t: Task) -> Self {
        Self {
            id: t.id,
            org_id: t.org_id,
            board_id: t.board_id,
            list_id: t.list_id,
            title: t.title,
            status: t.status,
            priority: t.priority,
            position: t.position,
            assignee_ids: t.assignee_ids,
            label_ids: t.label_ids,
            due_date: t.due_date,
            created_by: t.created_by,
            completed_at: t.completed_at,
            version: t.version,
            comment_count: t.comment_count,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

pub use write::load_task;

/// A task's assignee or label ids as the task row keeps them (columns
/// `assignee_ids` and `label_ids`, migration 0009): 32 lower-case hex
/// digits each, sorted, separated by commas; `""` for none. Every
/// statement that changes a task's relations writes them in the same
/// transaction ([`write`]); a label's deletion and a member's removal take
/// the id out with [`take_out_kept_id`]. Read back with [`id_list`].
pub fn ids_text(ids: &[Uuid]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::with_capacity(sorted.len() * 33);
    for (i, id) in sorted.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(id.simple().encode_lower(&mut Uuid::encode_buffer()));
    }
    out
}

/// A relation whose ids the task rows keep.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Related {
    /// `task_assignees.user_id`, kept in `assignee_ids`.
    Assignee,
    /// `task_labels.label_id`, kept in `label_ids`.
    Label,
}

/// Takes `id` out of the ids kept on every task of the organization that
/// `related` links to it — run before the relation rows go (by cascade:
/// a member removed, a label deleted). The order of what stays is kept.
pub(crate) async fn take_out_kept_id<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    related: Related,
    id: Uuid,
) -> Result<u64, DbError> {
    let (column, relation, relation_column) = match related {
        Related::Assignee => ("assignee_ids", "task_assignees", "user_id"),
        Related::Label => ("label_ids", "task_labels", "label_id"),
    };
    let trim = match u.backend() {
        crate::db::Backend::Postgres => "btrim",
        crate::db::Backend::Sqlite => "trim",
    };
    let sql = format!(
        "UPDATE tasks SET {column} = {trim}(replace(',' || {column} || ',', ',' || $2 || ',', ','), ',') \
         WHERE org_id = $1 AND id IN \
         (SELECT task_id FROM {relation} WHERE org_id = $1 AND {relation_column} = $3)"
    );
    u.execute(&sql, &crate::args![org_id, &ids_text(&[id]), id])
        .await
}

/// Sorted ids from a comma-separated list (hyphenated or hex).
pub(crate) fn id_list(text: &str) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = text
        .split(',')
        .filter_map(|s| Uuid::try_parse(s.trim()).ok())
        .collect();
    ids.sort_unstable();
    ids
}
