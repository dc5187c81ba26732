//! `GET /orgs/{org}/tasks`: filters, sorting and keyset pagination.
//!
//! The SQL is built from the filters actually given (never `(? IS NULL OR
//! col = ?)`, which defeats indexes), always leading with `org_id` so the
//! indexes `(org_id, <column>, id)` serve it. Cursors are signed and bound to
//! the organization and the sort; a page is `(sort key, id)` strictly after
//! the previous one, so paging across concurrent inserts never repeats or
//! skips an existing task. With `sort=due_date` (either direction) tasks
//! without a due date come last.

use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use uuid::Uuid;

use super::{Priority, Status, TASK_COLUMNS, Task};
use crate::db::Backend;
use crate::db::uow::Uow;
use crate::domain::DomainError;
use crate::domain::{Action, Ownership};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::http::extract::AppQuery;
use crate::http::page::{Page, open, page_limit, seal};
use crate::http::rowjson::JsonRows;
use crate::orgs::context::OrgRequest;
use crate::state::AppState;

/// Longest `q`.
pub const Q_MAX: usize = 200;

/// Query of `GET …/tasks`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// Only tasks of this board.
    pub board_id: Option<Uuid>,
    /// Only tasks of this list.
    pub list_id: Option<Uuid>,
    /// Only these statuses (comma-separated: `todo,in_progress`).
    pub status: Option<String>,
    /// Only these priorities (comma-separated: `high,urgent`).
    pub priority: Option<String>,
    /// Only tasks assigned to this member.
    pub assignee_id: Option<Uuid>,
    /// Only tasks with this label.
    pub label_id: Option<Uuid>,
    /// Only tasks due before this time (RFC 3339).
    pub due_before: Option<DateTime<Utc>>,
    /// Only tasks due after this time (RFC 3339).
    pub due_after: Option<DateTime<Utc>>,
    /// Title contains this text (case-insensitive).
    pub q: Option<String>,
    /// `created_at` (default), `updated_at`, `due_date`, `priority`, or
    /// `position` (board order; needs `list_id`); prefix `-` for descending.
    pub sort: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The sort keys `GET …/tasks` takes (each also with a `-` prefix); the
/// OpenAPI document's enum is made from this list.
pub const SORT_NAMES: [&str; 5] = [
    "created_at",
    "updated_at",
    "due_date",
    "priority",
    "position",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    Created,
    Updated,
    Due,
    Priority,
    Position,
}

#[derive(Debug, Clone, Copy)]
struct Sort {
    key: SortKey,
    desc: bool,
}

impl Sort {
    fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        let s = s.unwrap_or("created_at");
        let (desc, name) = match s.strip_prefix('-') {
            Some(n) => (true, n),
            None => (false, s),
        };
        let key = match name {
            "created_at" => SortKey::Created,
            "updated_at" => SortKey::Updated,
            "due_date" => SortKey::Due,
            "priority" => SortKey::Priority,
            "position" => SortKey::Position,
            _ => {
                return Err(ApiError::invalid_field(
                    "sort",
                    "must be created_at, updated_at, due_date, priority or position, optionally prefixed with '-'",
                ));
            }
        };
        Ok(Self { key, desc })
    }

    fn column(self) -> Option<&'static str> {
        match self.key {
            SortKey::Created => None,
            SortKey::Updated => Some("t.updated_at"),
            SortKey::Due => Some("t.due_date"),
            SortKey::Priority => Some("t.priority"),
            SortKey::Position => Some("t.position"),
        }
    }

    fn tag(self) -> String {
        format!("{:?}{}", self.key, if self.desc { "-" } else { "+" })
    }
}

/// Where the previous page ended: the sort value (absent for `created_at`,
/// and `null` for tasks without due date) and the id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum KeyValue {
    Time(DateTime<Utc>),
    Rank(i16),
    /// A position (`sort=position`; never parses as a time or a number).
    Text(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Position {
    k: Option<KeyValue>,
    id: Uuid,
}

/// What a cursor of `GET …/tasks` is bound to: the organization, the sort,
/// and for `sort=position` the list (positions order one list only).
fn cursor_scope(org_id: Uuid, sort: Sort, list_id: Option<Uuid>) -> String {
    match (sort.key, list_id) {
        (SortKey::Position, Some(list)) => format!("tasks:{org_id}:{}:{list}", sort.tag()),
        _ => format!("tasks:{org_id}:{}", sort.tag()),
    }
}

/// The cursor of `GET …/tasks?list_id=…&sort=position` for the page after
/// the task `id` at `position` in `list` (the board view hands it out for
/// each list that has more).
pub fn position_cursor(
    state: &AppState,
    org_id: Uuid,
    list: Uuid,
    id: Uuid,
    position: &str,
) -> String {
    let sort = Sort {
        key: SortKey::Position,
        desc: false,
    };
    seal(
        state,
        &cursor_scope(org_id, sort, Some(list)),
        &Position {
            k: Some(KeyValue::Text(position.to_owned())),
            id,
        },
    )
}

/// A bind parameter of a built query.
#[derive(Debug, Clone)]
enum Arg {
    Uuid(Uuid),
    Text(String),
    Time(DateTime<Utc>),
    Rank(i16),
}

impl<'a> From<&'a Arg> for crate::db::uow::Arg<'a> {
    fn from(a: &'a Arg) -> Self {
        match a {
            Arg::Uuid(v) => (*v).into(),
            Arg::Text(v) => v.as_str().into(),
            Arg::Time(v) => (*v).into(),
            Arg::Rank(v) => (*v).into(),
        }
    }
}

/// SQL and arguments under construction; placeholders are numbered as added.
#[derive(Clone)]
struct Built {
    sql: String,
    args: Vec<Arg>,
}

impl Built {
    fn push(&mut self, clause: &str, arg: Arg) {
        self.args.push(arg);
        let n = self.args.len();
        self.sql += &clause.replace("{}", &format!("${n}"));
    }
    fn push_list<T>(&mut self, col: &str, items: &[T], to_arg: impl Fn(&T) -> Arg) {
        let mut ph = Vec::new();
        for i in items {
            self.args.push(to_arg(i));
            ph.push(format!("${}", self.args.len()));
        }
        self.sql += &format!(" AND {col} IN ({})", ph.join(", "));
    }
}

fn parse_list<T: for<'de> Deserialize<'de>>(field: &str, raw: &str) -> Result<Vec<T>, ApiError> {
    let items: Result<Vec<T>, _> = raw
        .split(',')
        .map(|s| serde_json::from_value(serde_json::Value::String(s.trim().to_owned())))
        .collect();
    match items {
        Ok(v) if !v.is_empty() && v.len() <= 10 => Ok(v),
        _ => Err(ApiError::invalid_field(
            field,
            format!("has an unknown value: {raw:?}"),
        )),
    }
}

/// A query of `GET …/tasks`, checked: what [`page`] reads.
#[derive(Debug, Clone)]
pub struct Filter {
    board_id: Option<Uuid>,
    list_id: Option<Uuid>,
    statuses: Option<Vec<Status>>,
    priorities: Option<Vec<Priority>>,
    assignee_id: Option<Uuid>,
    label_id: Option<Uuid>,
    due_before: Option<DateTime<Utc>>,
    due_after: Option<DateTime<Utc>>,
    q: Option<String>,
    sort: Sort,
    limit: u32,
    /// Where the previous page ended.
    from: Option<Position>,
}

impl Filter {
    /// Checks the query's values (`422`); the cursor is opened apart
    /// ([`Filter::cursor_scope`], [`Filter::after`]).
    pub fn parse(q: &TaskQuery) -> Result<Self, ApiError> {
        let limit = page_limit(q.limit)?;
        for (field, t) in [("due_before", &q.due_before), ("due_after", &q.due_after)] {
            crate::domain::reject_leap_second(field, t.as_ref())
                .map_err(|e| ApiError::validation(vec![e]))?;
        }
        let sort = Sort::parse(q.sort.as_deref())?;
        let statuses: Option<Vec<Status>> = q
            .status
            .as_deref()
            .map(|s| parse_list("status", s))
            .transpose()?;
        let priorities: Option<Vec<Priority>> = q
            .priority
            .as_deref()
            .map(|s| parse_list("priority", s))
            .transpose()?;
        if q.q.as_ref().is_some_and(|s| s.chars().count() > Q_MAX) {
            return Err(ApiError::invalid_field(
                "q",
                format!("must be at most {Q_MAX} characters"),
            ));
        }
        if q.q.as_ref().is_some_and(|s| s.contains('\0')) {
            // PostgreSQL cannot compare text with NUL; refuse it on both backends.
            return Err(ApiError::invalid_field(
                "q",
                "must not contain NUL characters",
            ));
        }
        if sort.key == SortKey::Position && q.list_id.is_none() {
            return Err(ApiError::invalid_field(
                "sort",
                "position orders the tasks of one list: give list_id too",
            ));
        }
        Ok(Self {
            board_id: q.board_id,
            list_id: q.list_id,
            statuses,
            priorities,
            assignee_id: q.assignee_id,
            label_id: q.label_id,
            due_before: q.due_before,
            due_after: q.due_after,
            q: q.q.clone(),
            sort,
            limit,
            from: None,
        })
    }

    /// What this filter's cursors are bound to in `org_id`.
    fn cursor_scope(&self, org_id: Uuid) -> String {
        cursor_scope(org_id, self.sort, self.list_id)
    }

    /// Resumes after the task `id` (for the default sort, by id; the
    /// benchmark pages this way without a sealed cursor).
    pub fn after(mut self, id: Uuid) -> Self {
        self.from = Some(Position { k: None, id });
        self
    }

    /// Whether it names a board, list, assignee or label (each checked to
    /// exist in the organization before the page is read).
    pub fn names_ids(&self) -> bool {
        self.board_id.is_some()
            || self.list_id.is_some()
            || self.assignee_id.is_some()
            || self.label_id.is_some()
    }
}

/// Checks that every id in the filter belongs to the organization (`422`
/// otherwise: a foreign id is never silently turned into an empty page).
/// One statement, whatever the number of ids.
async fn check_ids<U: Uow>(u: &mut U, org_id: Uuid, f: &Filter) -> Result<(), DomainError> {
    let checks = [
        ("board_id", "boards", "id", f.board_id),
        ("list_id", "lists", "id", f.list_id),
        ("assignee_id", "memberships", "user_id", f.assignee_id),
        ("label_id", "labels", "id", f.label_id),
    ];
    let given: Vec<_> = checks.iter().filter(|c| c.3.is_some()).collect();
    if given.is_empty() {
        return Ok(());
    }
    let mut args = vec![crate::db::uow::Arg::from(org_id)];
    let parts: Vec<String> = given
        .iter()
        .map(|(_, table, col, id)| {
            args.push(crate::db::uow::Arg::from(*id));
            format!(
                "(SELECT COUNT(*) FROM {table} WHERE org_id = $1 AND {col} = ${})",
                args.len()
            )
        })
        .collect();
    let sql = format!("SELECT {}", parts.join(", "));
    let row = u
        .fetch_optional(&sql, &args)
        .await?
        .ok_or_else(|| DomainError::internal(anyhow::anyhow!("SELECT gave no row")))?;
    let mut errors = Vec::new();
    for (i, (field, ..)) in given.iter().enumerate() {
        if row.get::<i64>(i)? == 0 {
            errors.push(FieldError::new(
                *field,
                "does not exist in this organization",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(DomainError::validation(errors))
    }
}

/// A page's tasks as read: each one's JSON (what `serde_json` writes for
/// its [`Task`], written from the row as it arrives: no `Task` is built)
/// and its place in the sort.
pub type TaskRows = JsonRows<Position>;

impl TaskRows {
    /// The last task's id.
    pub fn last_id(&self) -> Option<Uuid> {
        self.last().map(|p| p.id)
    }
}

/// Adds the task of row `r` to `rows`.
fn push_task(
    rows: &mut TaskRows,
    r: crate::db::uow::RowRef<'_, '_>,
    sort: Sort,
) -> Result<(), DomainError> {
    rows.push(|out| {
        let (card, description) = super::card::CardFields::from_task_row(r)?;
        card.write_task_json(out, &description)?;
        let k = match sort.key {
            SortKey::Created => None,
            SortKey::Updated => Some(KeyValue::Time(card.updated_at()?)),
            SortKey::Due => card.due_date()?.map(KeyValue::Time),
            SortKey::Priority => Some(KeyValue::Rank(card.priority().rank())),
            SortKey::Position => Some(KeyValue::Text(card.position.into_owned())),
        };
        Ok(Position { k, id: card.id })
    })
}

/// Reads one statement's tasks into `rows`. With `member`, the statement
/// is joined to the caller's membership ([`membership_sql`] by id: `$1` the
/// organization, `$2` the caller): no row at all when the caller is not a
/// member (then `Ok(false)`), one row without a task when the page is
/// empty; the membership's role and suspension are checked on the first row.
async fn fetch<U: Uow>(
    u: &mut U,
    b: &Built,
    order: &str,
    sort: Sort,
    rows: &mut TaskRows,
    member: Option<&OrgRequest>,
) -> Result<bool, DomainError> {
    let args: Vec<crate::db::uow::Arg<'_>> = b.args.iter().map(Into::into).collect();
    let Some(org) = member else {
        let sql = format!("SELECT t.* FROM ({}) t ORDER BY {order}", b.sql);
        u.fetch_each(&sql, &args, |r| {
            push_task(rows, r, sort)?;
            Ok::<_, DomainError>(())
        })
        .await?;
        return Ok(true);
    };
    // The task's 18 columns, then the membership's.
    org.fetch_joined(u, &b.sql, order, &args, 18, Action::ReadOrg, |r| {
        push_task(rows, r, sort)
    })
    .await
}

/// A page of the organization's tasks for `f` (one more than the limit
/// when there is a next page): the ids checked, then one or two
/// statements (tasks without a due date follow the others). The caller
/// has checked the membership.
pub async fn page<U: Uow>(u: &mut U, org_id: Uuid, f: &Filter) -> Result<TaskRows, DomainError> {
    check_ids(u, org_id, f).await?;
    Ok(read_page(u, org_id, f, None).await?.unwrap_or_default())
}

/// The same page for `org` (by id, `org_id`), its membership checked
/// (`404` for a non-member), for a filter that names no board, list,
/// assignee or label (those are checked to exist first, which only a
/// member may learn; [`Filter::names_ids`]). On PostgreSQL the page's own
/// statements check the membership (joined to it): a round trip less than
/// the membership statement first, measured +12–20 % pages/s
/// (BENCHMARKS.md, issue 13, eighth part). On SQLite there is no round trip
/// to save and the join measured slower (it copies the page into a
/// temporary table to order it again): the membership statement, then the
/// page's.
pub async fn member_page<U: Uow>(
    u: &mut U,
    org: &OrgRequest,
    org_id: Uuid,
    f: &Filter,
) -> Result<TaskRows, DomainError> {
    if f.names_ids() {
        return Err(DomainError::internal(anyhow::anyhow!(
            "member_page: a filter naming ids must be checked after the membership"
        )));
    }
    match u.backend() {
        Backend::Postgres => read_page(u, org_id, f, Some(org))
            .await?
            .ok_or_else(DomainError::not_found),
        Backend::Sqlite => {
            let ctx = org.enter(u).await?;
            ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
            page(u, ctx.org_id, f).await
        }
    }
}

async fn read_page<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    f: &Filter,
    member: Option<&OrgRequest>,
) -> Result<Option<TaskRows>, DomainError> {
    let (sort, limit, from) = (f.sort, f.limit, &f.from);
    let mut base = Built {
        sql: format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE t.org_id = $1"),
        args: vec![Arg::Uuid(org_id)],
    };
    if let Some(org) = member {
        // `$2` of the membership statement the page is joined to.
        base.args.push(Arg::Uuid(org.user_id()));
    }
    if let Some(v) = f.board_id {
        base.push(" AND t.board_id = {}", Arg::Uuid(v));
    }
    if let Some(v) = f.list_id {
        base.push(" AND t.list_id = {}", Arg::Uuid(v));
    }
    if let Some(v) = &f.statuses {
        base.push_list("t.status", v, |s| Arg::Text(s.as_str().to_owned()));
    }
    if let Some(v) = &f.priorities {
        base.push_list("t.priority", v, |p| Arg::Rank(p.rank()));
    }
    if let Some(v) = f.assignee_id {
        base.push(
            " AND EXISTS (SELECT 1 FROM task_assignees a WHERE a.org_id = t.org_id AND a.task_id = t.id AND a.user_id = {})",
            Arg::Uuid(v),
        );
    }
    if let Some(v) = f.label_id {
        base.push(
            " AND EXISTS (SELECT 1 FROM task_labels l WHERE l.org_id = t.org_id AND l.task_id = t.id AND l.label_id = {})",
            Arg::Uuid(v),
        );
    }
    if let Some(v) = f.due_before {
        base.push(" AND t.due_date < {}", Arg::Time(v));
    }
    if let Some(v) = f.due_after {
        base.push(" AND t.due_date > {}", Arg::Time(v));
    }
    if let Some(text) = f.q.as_deref().filter(|s| !s.trim().is_empty()) {
        let escaped = text
            .trim()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let op = match u.backend() {
            Backend::Postgres => "ILIKE",
            Backend::Sqlite => "LIKE",
        };
        base.push(
            &format!(" AND t.title {op} {{}} ESCAPE '\\'"),
            Arg::Text(format!("%{escaped}%")),
        );
    }

    let dir = if sort.desc { "DESC" } else { "ASC" };
    let cmp = if sort.desc { "<" } else { ">" };
    let mut rows = TaskRows::with_capacity(limit as usize + 1, 640);
    let in_null_phase = sort.key == SortKey::Due && from.as_ref().is_some_and(|p| p.k.is_none());
    if !in_null_phase {
        let mut b = base.clone();
        match (sort.column(), from) {
            (None, Some(p)) => b.push(&format!(" AND t.id {cmp} {{}}"), Arg::Uuid(p.id)),
            (Some(col), Some(p)) => {
                let v = match &p.k {
                    Some(KeyValue::Time(t)) => Arg::Time(*t),
                    Some(KeyValue::Rank(r)) => Arg::Rank(*r),
                    Some(KeyValue::Text(t)) => Arg::Text(t.clone()),
                    None => {
                        return Err(DomainError::bad_request(
                            "invalid_cursor",
                            "The cursor is invalid.",
                        ));
                    }
                };
                b.args.push(v);
                b.args.push(Arg::Uuid(p.id));
                let n = b.args.len();
                b.sql += &format!(" AND ({col}, t.id) {cmp} (${}, ${n})", n - 1);
            }
            _ => {}
        }
        let order = match sort.column() {
            Some(col) => {
                if sort.key == SortKey::Due {
                    b.sql += " AND t.due_date IS NOT NULL";
                }
                format!("{col} {dir}, t.id {dir}")
            }
            None => format!("t.id {dir}"),
        };
        b.sql += &format!(" ORDER BY {order} LIMIT {}", limit + 1);
        if !fetch(u, &b, &order, sort, &mut rows, member).await? {
            return Ok(None);
        }
    }
    if sort.key == SortKey::Due && rows.len() <= limit as usize {
        // Then the tasks without a due date, by id.
        let mut b = base;
        b.sql += " AND t.due_date IS NULL";
        if let Some(p) = from.as_ref().filter(|_| in_null_phase) {
            b.push(" AND t.id > {}", Arg::Uuid(p.id));
        }
        b.sql += &format!(
            " ORDER BY t.id ASC LIMIT {}",
            limit as usize + 1 - rows.len()
        );
        if !fetch(u, &b, "t.id ASC", sort, &mut rows, member).await? {
            return Ok(None);
        }
    }
    Ok(Some(rows))
}

/// Tasks of the organization, filtered, sorted and paged.
///
/// With `{org}` given by id, the answer carries an `ETag` of the
/// organization's changes counter and the query; `If-None-Match` with it
/// answers `304` (after the membership check, no page read) until any change
/// of the organization is acknowledged. By slug there is no `ETag` (the
/// counter must be read before the database, and the organization is not
/// known before it).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/tasks", tag = "tasks",
    params(("org" = String, Path, description = "Organization id or slug"), TaskQuery,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this page: `304` when nothing in the organization changed since")),
    security(("bearer" = [])),
    responses((status = 200, body = Page<Task>, headers(("ETag" = String, description = "The page's version (`{org}` by id only)"))),
              (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"),
              (status = 400, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
pub(super) async fn list_tasks(
    State(state): State<AppState>,
    org: OrgRequest,
    AppQuery(q): AppQuery<TaskQuery>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    // Checked before the membership, answered after it: a non-member gets
    // `404` whatever the query.
    let filter = Filter::parse(&q);
    let cursor = q.cursor;
    // The organization's version is read before the database (see
    // crate::cache), so a page read after it holds at least every change
    // acknowledged before it.
    let cond =
        crate::http::conditional::Conditional::read(&state, &org, "tasks", &uri, &headers).await;
    let unchanged = cond.unchanged();
    let opener = state.clone();
    let (by_id, scope) = org.read_scope();
    let read = crate::read_unit!(state.db, scope, |u| async move {
        // The common case, a valid filter naming no ids by an organization's
        // id, and no `304` to answer: `member_page` (on PostgreSQL the
        // membership joined to the page's statement). Anything else, or a
        // cursor that does not open, takes the path below, which answers a
        // non-member `404` before it looks at the query.
        if let (Some(org_id), Ok(f)) = (by_id, &filter)
            && !unchanged
            && !f.names_ids()
        {
            let from = match cursor.as_deref() {
                Some(c) => open(&opener, &f.cursor_scope(org_id), c).ok(),
                None => None,
            };
            if cursor.is_none() || from.is_some() {
                let mut f = f.clone();
                f.from = from;
                let rows = member_page(u, &org, org_id, &f).await?;
                return Ok(Some((rows, f, org_id)));
            }
        }
        let ctx = org.enter(u).await?;
        ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
        let mut filter = filter?;
        if let Some(c) = cursor.as_deref() {
            filter.from = Some(open(&opener, &filter.cursor_scope(ctx.org_id), c)?);
        }
        if unchanged {
            return Ok::<_, ApiError>(None);
        }
        let rows = page(u, ctx.org_id, &filter).await?;
        Ok(Some((rows, filter, ctx.org_id)))
    })?;
    let Some((rows, filter, org_id)) = read else {
        return Ok(cond.not_modified());
    };
    let scope = filter.cursor_scope(org_id);
    Ok(cond.answer(rows.into_page(filter.limit as usize, |last| seal(&state, &scope, last))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_sort_parses_in_both_directions() {
        for name in SORT_NAMES {
            for s in [name.to_owned(), format!("-{name}")] {
                let sort = Sort::parse(Some(&s)).expect(&s);
                assert_eq!(sort.desc, s.starts_with('-'));
            }
        }
        assert!(Sort::parse(Some("title")).is_err());
    }

    #[test]
    fn sorts_parse_and_refuse_unknowns() {
        assert_eq!(Sort::parse(None).expect("default").key, SortKey::Created);
        let s = Sort::parse(Some("-due_date")).expect("ok");
        assert!(s.desc && s.key == SortKey::Due);
        assert!(Sort::parse(Some("title")).is_err());
        assert!(Sort::parse(Some("--priority")).is_err());
    }

    #[test]
    fn lists_parse_enum_values() {
        let v: Vec<Status> = parse_list("status", "todo, done").expect("ok");
        assert_eq!(v, vec![Status::Todo, Status::Done]);
        assert!(parse_list::<Status>("status", "todo,nope").is_err());
        assert!(parse_list::<Priority>("priority", "").is_err());
    }
}
