//! The task routes: create, read (with `ETag`), update and move (with
//! `If-Match`), delete. Each runs its use case ([`super::write`]) as a unit
//! of work; the filtered listing is [`super::filter::list_tasks`].

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{
    CreateTaskBody, MoveTaskBody, TASK_COLUMNS, Task, TaskPath, UpdateTaskBody, filter, write,
};
use crate::db::uow::{Arg, Uow};
use crate::db::{Backend, Scope};
use crate::domain::error::POSITION_TAKEN;
use crate::domain::{Action, Ownership};
use crate::domain::{DomainError, DomainResult};
use crate::error::{ApiError, ApiResult};
use crate::http::extract::{AppJson, AppPath};
use crate::idempotency::Creating;
use crate::lists::ListPath;
use crate::orgs::context::{OrgKey, OrgRequest, membership_slot, membership_sql};
use crate::state::AppState;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_task))
        .routes(routes!(filter::list_tasks))
        .routes(routes!(get_task, update_task, delete_task))
        .routes(routes!(move_task))
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

/// Create a task at the end of a list (member+).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/lists/{list}/tasks", tag = "tasks",
    params(ListPath, ("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer")),
    request_body = CreateTaskBody, security(("bearer" = [])),
    responses((status = 201, body = Task), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem),
              (status = 409, description = "Conflicts with the current state: `idempotency_key_in_use`, or `position_taken` (three tries in a row met another create's exact order key; retry).", body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
async fn create_task(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<ListPath>,
    req: Creating<CreateTaskBody>,
) -> ApiResult<Response> {
    let scope = Scope::user(org.user_id());
    // (The SQLite writer's job owns what it reads: each try its own copy.)
    let req = std::sync::Arc::new(req);
    let db = &state.db;
    let created = placing(|| {
        let (org, req) = (org.clone(), std::sync::Arc::clone(&req));
        async move {
            crate::unit!(db, scope, |u| write::create(
                u,
                &org,
                path.list,
                &req.body,
                req.key.as_ref()
            ))
        }
    })
    .await?;
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
async fn read_task<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    task_id: Uuid,
) -> DomainResult<Option<Task>> {
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
                "SELECT {TASK_COLUMNS}, m.id, m.role, m.suspended FROM ({}) m \
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
    org.context_from((&row).into(), 18)?
        .require(Action::ReadOrg, Ownership::NotOwn)?;
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
            // One round trip: `BEGIN`, the statement and `COMMIT` together.
            let scope = Scope::tenant(org.user_id(), org_id);
            let mut read = state.db.pg_read(scope, true).await?;
            read_task(&mut read, &org, path.task).await?
        }
        // By slug on PostgreSQL: the tenant is not known before the
        // membership statement resolves it.
        (None, _) => {
            let mut read = state.db.pg_read(Scope::user(org.user_id()), false).await?;
            let ctx = org.enter(&mut read).await?;
            ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
            write::load_task(&mut read, ctx.org_id, path.task).await?
        }
    }
    .ok_or_else(ApiError::not_found)?;
    Ok(with_etag(StatusCode::OK, task))
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
              (status = 404, body = crate::error::Problem),
              (status = 409, description = "`position_taken`: three tries in a row met another write's exact order key; retry.", body = crate::error::Problem),
              (status = 412, body = crate::error::Problem),
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
    let body = std::sync::Arc::new(body);
    let db = &state.db;
    let task = placing(|| {
        let (org, body, if_match) = (org.clone(), std::sync::Arc::clone(&body), if_match.clone());
        async move {
            crate::unit!(db, scope, |u| write::move_to(
                u,
                &org,
                path.task,
                if_match.as_deref(),
                &body
            ))
        }
    })
    .await?;
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

/// Runs a write that places a task (create, move) and runs it again, at
/// most twice more, when it met another write's exact order key at the
/// same moment (`409 position_taken`, PostgreSQL, about one in 9·10⁸
/// writes into one gap at once: see `write::create`); its next try reads
/// the list afresh and draws another tie-break.
async fn placing<T, F, Fut>(mut attempt: F) -> Result<T, DomainError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DomainError>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(e) if e.code() == POSITION_TAKEN && tries < 2 => tries += 1,
            done => return done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::rules::check_if_match;

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
            assert_eq!(ApiError::from(e).status(), StatusCode::PRECONDITION_FAILED);
        }
    }
}
