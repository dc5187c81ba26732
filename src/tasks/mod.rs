//! Tasks: create (appended to a list), read, update, move, delete; the
//! filtered, paged listing lives in [`filter`].
//!
//! Concurrency: every task read carries `version` and an `ETag` (`"<version>"`).
//! `PATCH` and `move` with `If-Match` answer `412` when stale. The task row is
//! locked before the check (PostgreSQL `FOR NO KEY UPDATE`; SQLite has one
//! writer), so of N concurrent conditional updates exactly one wins.
//! Placing a task locks the destination list, so concurrent placements in one
//! list never pick the same order key.

pub mod card;
pub mod filter;
pub mod write;

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::db::change;
use crate::db::uow::{Arg, DbError, Uow};
use crate::db::{Backend, Scope};
use crate::domain::{Action, Ownership};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::{AppJson, AppPath};
use crate::idempotency::Creating;
use crate::lists::ListPath;
use crate::orgs::context::{OrgKey, OrgRequest, membership_slot, membership_sql};
use crate::state::AppState;

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

impl TryFrom<String> for Status {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "todo" => Ok(Status::Todo),
            "in_progress" => Ok(Status::InProgress),
            "done" => Ok(Status::Done),
            _ => Err(format!("unknown status {s:?}")),
        }
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

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_task))
        .routes(routes!(filter::list_tasks))
        .routes(routes!(get_task, update_task, delete_task))
        .routes(routes!(move_task))
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

/// Whether the caller owns the task in the sense of SPEC §4: created it
/// (`delete`) or created it or is assigned to it (`update`).
fn ownership(task: &Task, user_id: Uuid, include_assigned: bool) -> Ownership {
    if task.created_by == user_id || (include_assigned && task.assignee_ids.contains(&user_id)) {
        Ownership::Own
    } else {
        Ownership::NotOwn
    }
}

/// Checks title, description and relation-list sizes; dedupes the lists.
type CheckedFields = (Option<String>, Option<Vec<Uuid>>, Option<Vec<Uuid>>);

fn validate_fields(
    title: Option<&str>,
    description: Option<&str>,
    assignees: Option<&[Uuid]>,
    labels: Option<&[Uuid]>,
    due_date: Option<&DateTime<Utc>>,
) -> Result<CheckedFields, ApiError> {
    let mut errors = Vec::new();
    if let Err(e) = crate::domain::reject_leap_second("due_date", due_date) {
        errors.push(e);
    }
    let title = title.map(|t| crate::domain::trim_line(t).to_owned());
    if let Some(t) = &title {
        let n = t.chars().count();
        if n == 0 || n > TITLE_MAX {
            errors.push(FieldError::new(
                "title",
                format!("must be 1–{TITLE_MAX} characters"),
            ));
        } else if let Some(problem) = crate::domain::line_problem(t) {
            errors.push(FieldError::new("title", problem));
        }
    }
    if description.is_some_and(|d| d.chars().count() > DESCRIPTION_MAX) {
        errors.push(FieldError::new(
            "description",
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    } else if description.is_some_and(|d| d.contains('\0')) {
        // PostgreSQL cannot store NUL in text; refuse it on both backends.
        errors.push(FieldError::new(
            "description",
            "must not contain NUL characters",
        ));
    }
    let dedupe = |field: &str, ids: Option<&[Uuid]>, errors: &mut Vec<FieldError>| {
        ids.map(|ids| {
            if ids.len() > MAX_RELATED {
                errors.push(FieldError::new(
                    field,
                    format!("must have at most {MAX_RELATED} items"),
                ));
            }
            ids.iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        })
    };
    let assignees = dedupe("assignee_ids", assignees, &mut errors);
    let labels = dedupe("label_ids", labels, &mut errors);
    if errors.is_empty() {
        Ok((title, assignees, labels))
    } else {
        Err(ApiError::validation(errors))
    }
}

/// A create body after validation, with its defaults filled in.
struct NewTask {
    title: String,
    assignees: Vec<Uuid>,
    labels: Vec<Uuid>,
    status: Status,
    priority: Priority,
}

impl NewTask {
    /// Validates `body` (`422` naming the fields) and fills in the defaults.
    fn check(body: &CreateTaskBody) -> Result<Self, ApiError> {
        let (title, assignees, labels) = validate_fields(
            Some(&body.title),
            body.description.as_deref(),
            body.assignee_ids.as_deref(),
            body.label_ids.as_deref(),
            body.due_date.as_ref(),
        )?;
        Ok(Self {
            title: title.unwrap_or_default(),
            assignees: assignees.unwrap_or_default(),
            labels: labels.unwrap_or_default(),
            status: body.status.unwrap_or(Status::Todo),
            priority: body.priority.unwrap_or(Priority::Medium),
        })
    }
}

/// A task response with its `ETag`.
fn with_etag(status: StatusCode, task: Task) -> Response {
    let etag = format!("\"{}\"", task.version);
    let mut res = (status, AppJson(task)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

/// The `If-Match` header, if sent (one that is not visible ASCII matches
/// no version).
fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .map(|v| v.to_str().unwrap_or("").to_owned())
}

/// `412` for a conditional `UPDATE` that found another version.
fn changed_concurrently() -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
        "Precondition failed",
        "The task changed concurrently; reload and retry.",
    )
}

/// `Err(412)` when `If-Match` is present and names another version. Accepts
/// `"7"`, `W/"7"`, `7` and `*`.
fn check_if_match(if_match: Option<&str>, version: i64) -> Result<(), ApiError> {
    let Some(v) = if_match else {
        return Ok(());
    };
    let matches = v.split(',').any(|tag| {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
        tag == "*" || tag.parse::<i64>().ok() == Some(version)
    });
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "Precondition failed",
            format!("The task changed (it is now at version {version}); reload and retry."),
        ))
    }
}

/// Create a task at the end of a list (member+).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/lists/{list}/tasks", tag = "tasks",
    params(ListPath, ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer")),
    request_body = CreateTaskBody, security(("bearer" = [])),
    responses((status = 201, body = Task), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn create_task(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<ListPath>,
    req: Creating<CreateTaskBody>,
) -> ApiResult<Response> {
    let scope = Scope::user(org.user_id());
    let created = crate::unit!(state.db, scope, |u| write::create(
        u,
        &org,
        path.list,
        &req.body,
        req.key.as_ref()
    ))?;
    Ok(match created {
        crate::idempotency::Created::New(task) => with_etag(StatusCode::CREATED, task),
        crate::idempotency::Created::Replay(replay) => replay.into_response(),
    })
}

/// `GET …/tasks/{task}` in one statement, on both backends: the caller's
/// membership (and role, which the policy table is asked about), the task
/// and its relation ids, from one snapshot. `None` (→ `404`) for a
/// non-member, an unknown or deleted organization and a missing task alike.
/// On SQLite it runs on the rusqlite read pool without `BEGIN`/`COMMIT`
/// ([`crate::db::uow::LiteRead`]); on PostgreSQL in a read transaction whose
/// tenant was set from the path in the `BEGIN` round trip (row-level
/// security only narrows: the joined membership still decides).
async fn read_task<U: Uow>(u: &mut U, org: &OrgRequest, task_id: Uuid) -> ApiResult<Option<Task>> {
    let Some((by, key)) = org.org_key() else {
        return Ok(None);
    };
    // The membership statement every tenant transaction starts with, as the
    // first table of the join: no row unless the caller is a member. Built
    // once per (backend, `by`): this is the hottest read.
    static SQL: std::sync::OnceLock<[String; 4]> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        let make = |backend: Backend, by: &'static str| {
            format!(
                "SELECT {TASK_COLUMNS}, m.role, m.id, m.suspended FROM ({}) m \
                 JOIN tasks t ON t.org_id = m.id AND t.id = $3",
                membership_sql(backend, by),
            )
        };
        [
            make(Backend::Postgres, "o.id"),
            make(Backend::Postgres, "o.slug"),
            make(Backend::Sqlite, "o.id"),
            make(Backend::Sqlite, "o.slug"),
        ]
    });
    let sql = &all[membership_slot(u.backend(), by)];
    let key = match key {
        OrgKey::Id(id) => Arg::from(id),
        OrgKey::Slug(s) => Arg::from(s),
    };
    let Some(row) = u
        .fetch_optional(sql, &[key, Arg::from(org.user_id()), Arg::from(task_id)])
        .await?
    else {
        return Ok(None);
    };
    if row.get::<bool>(20)? {
        return Err(ApiError::suspended());
    }
    org.note_org(row.get(19)?);
    let role = crate::domain::Role::try_from(row.get::<String>(18)?)
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?;
    crate::domain::require(role, Action::ReadOrg, Ownership::NotOwn)?;
    Ok(Some(write::task_from_row((&row).into())?))
}

/// A task (with `ETag`).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/tasks/{task}", tag = "tasks",
    params(TaskPath), security(("bearer" = [])),
    responses((status = 200, body = Task, headers(("ETag" = String, description = "\"<version>\""))),
              (status = 404, body = crate::error::Problem)))]
async fn get_task(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<TaskPath>,
) -> ApiResult<Response> {
    let task = match (state.db.sqlite_readers(), org.org_key()) {
        // SQLite: one statement on the rusqlite read pool (its own snapshot).
        (Some(readers), _) => {
            let id = path.task;
            readers
                .read_statement(async move |u| read_task(u, &org, id).await)
                .await??
        }
        (None, Some((_, OrgKey::Id(org_id)))) => {
            let scope = Scope::tenant(org.user_id(), org_id);
            let mut tx = state.db.read(scope).await?;
            read_task(&mut tx, &org, path.task).await?
        }
        // By slug on PostgreSQL: the tenant is not known before the
        // membership statement resolves it.
        (None, _) => {
            let (mut tx, ctx) = org.read(&state).await?;
            ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
            load_task(&mut tx, ctx.org_id, path.task, false).await?
        }
    }
    .ok_or_else(ApiError::not_found)?;
    Ok(with_etag(StatusCode::OK, task))
}

fn diff<T: Serialize + PartialEq>(
    payload: &mut serde_json::Map<String, Value>,
    field: &str,
    from: &T,
    to: &T,
) {
    if let Some(c) = change::from_to(from, to) {
        payload.insert(field.into(), c);
    }
}

/// The task after an update (`title`, `assignees` and `labels` already
/// validated), and the audit payload of what changed; an empty payload
/// means nothing changed. Shared by both write paths.
fn apply_update(
    task: &Task,
    title: Option<String>,
    body: &UpdateTaskBody,
    assignees: Option<&Vec<Uuid>>,
    labels: Option<&Vec<Uuid>>,
    now: DateTime<Utc>,
) -> (Task, serde_json::Map<String, Value>) {
    let mut new = task.clone();
    if let Some(t) = title {
        new.title = t;
    }
    if let Some(d) = &body.description {
        new.description = d.clone();
    }
    if let Some(s) = body.status {
        new.status = s;
    }
    if let Some(p) = body.priority {
        new.priority = p;
    }
    if let Some(d) = body.due_date {
        new.due_date = d.map(crate::db::micros);
    }
    if let Some(a) = assignees {
        new.assignee_ids = a.clone();
    }
    if let Some(l) = labels {
        new.label_ids = l.clone();
    }
    // Completing stamps completed_at; reopening clears it.
    new.completed_at = match (task.status, new.status) {
        (Status::Done, Status::Done) => task.completed_at,
        (_, Status::Done) => Some(now),
        _ => None,
    };
    let mut payload = serde_json::Map::new();
    diff(&mut payload, "title", &task.title, &new.title);
    diff(
        &mut payload,
        "description",
        &task.description,
        &new.description,
    );
    diff(&mut payload, "status", &task.status, &new.status);
    diff(&mut payload, "priority", &task.priority, &new.priority);
    diff(&mut payload, "due_date", &task.due_date, &new.due_date);
    diff(
        &mut payload,
        "assignee_ids",
        &task.assignee_ids,
        &new.assignee_ids,
    );
    diff(&mut payload, "label_ids", &task.label_ids, &new.label_ids);
    if !payload.is_empty() {
        diff(
            &mut payload,
            "completed_at",
            &task.completed_at,
            &new.completed_at,
        );
    }
    (new, payload)
}

/// Update a task (admin+, or a member on a task they created or are
/// assigned to). `If-Match: "<version>"` makes it conditional (`412` when stale).
#[utoipa::path(patch, path = "/api/v1/orgs/{org}/tasks/{task}", tag = "tasks",
    params(TaskPath, ("If-Match" = Option<String>, Header, description = "\"<version>\" of the task")),
    request_body = UpdateTaskBody, security(("bearer" = [])),
    responses((status = 200, body = Task), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 412, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn update_task(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<TaskPath>,
    headers: HeaderMap,
    AppJson(body): AppJson<UpdateTaskBody>,
) -> ApiResult<Response> {
    let scope = Scope::user(org.user_id());
    let if_match = if_match(&headers);
    let task = crate::unit!(state.db, scope, |u| write::update(
        u,
        &org,
        path.task,
        if_match.as_deref(),
        &body
    ))?;
    Ok(with_etag(StatusCode::OK, task))
}

/// Move or reorder a task within or across lists of its board (same rights
/// as update; `If-Match` honoured).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/tasks/{task}/move", tag = "tasks",
    params(TaskPath, ("If-Match" = Option<String>, Header, description = "\"<version>\" of the task")),
    request_body = MoveTaskBody, security(("bearer" = [])),
    responses((status = 200, body = Task), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 412, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn move_task(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<TaskPath>,
    headers: HeaderMap,
    AppJson(body): AppJson<MoveTaskBody>,
) -> ApiResult<Response> {
    let scope = Scope::user(org.user_id());
    let if_match = if_match(&headers);
    let task = crate::unit!(state.db, scope, |u| write::move_to(
        u,
        &org,
        path.task,
        if_match.as_deref(),
        &body
    ))?;
    Ok(with_etag(StatusCode::OK, task))
}

/// Delete a task (admin+, or a member on a task they created).
#[utoipa::path(delete, path = "/api/v1/orgs/{org}/tasks/{task}", tag = "tasks",
    params(TaskPath, ("If-Match" = Option<String>, Header, description = "\"<version>\" of the task")),
    security(("bearer" = [])),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 412, body = crate::error::Problem)))]
async fn delete_task(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<TaskPath>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let scope = Scope::user(org.user_id());
    let if_match = if_match(&headers);
    crate::unit!(state.db, scope, |u| write::delete(
        u,
        &org,
        path.task,
        if_match.as_deref()
    ))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_the_usual_forms() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_MATCH, HeaderValue::from_str(v).expect("header"));
            m
        };
        assert!(check_if_match(if_match(&HeaderMap::new()).as_deref(), 3).is_ok());
        for ok in ["\"3\"", "W/\"3\"", "3", "*", "\"1\", \"3\""] {
            assert!(
                check_if_match(if_match(&h(ok)).as_deref(), 3).is_ok(),
                "{ok}"
            );
        }
        for stale in ["\"2\"", "x", "\"\""] {
            let e = check_if_match(if_match(&h(stale)).as_deref(), 3).expect_err(stale);
            assert_eq!(e.status(), StatusCode::PRECONDITION_FAILED);
        }
    }

    #[test]
    fn fields_are_bounded_and_deduped() {
        let a = Uuid::now_v7();
        let (_, assignees, _) =
            validate_fields(Some("t"), None, Some(&[a, a]), None, None).expect("valid");
        assert_eq!(assignees, Some(vec![a]));
        assert!(validate_fields(Some("  "), None, None, None, None).is_err());
        assert!(validate_fields(Some(&"x".repeat(501)), None, None, None, None).is_err());
        assert!(validate_fields(Some("t"), Some(&"x".repeat(100_001)), None, None, None).is_err());
        let many: Vec<Uuid> = (0..51).map(|_| Uuid::now_v7()).collect();
        assert!(validate_fields(Some("t"), None, Some(&many), None, None).is_err());
    }
}
