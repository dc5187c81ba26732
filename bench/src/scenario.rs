//! Scenarios, virtual users, and what each operation sends over HTTP.
//!
//! Each virtual user (VU) acts as one real user with its own access token,
//! in its own organization where the tier has enough of them (otherwise VUs
//! share an organization, each as a different member). The tasks of an
//! organization's board are split between its VUs, so a VU's idea of a
//! task's version and list stays exact and a `412` means a real conflict.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::Method;
use orgboard::auth::tokens::Keys;
use orgboard::db::Db;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::http::Http;
use crate::seed::{BoardKind, Dataset, PASSWORD};
use crate::stats::Outcome;

/// A scenario: what every VU does for the duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// `GET …/tasks/{task}`.
    GetTask,
    /// `GET …/tasks?status=…&priority=…&limit=50`, first page.
    FilterPage,
    /// Paging through a filter: its first page, then `next_cursor` page
    /// after page to the end, then another filter.
    FilterPageCursor,
    /// `GET …/audit-log?limit=50` with a filter of [`AUDIT_FILTERS`], first
    /// page (newest first).
    AuditPage,
    /// Paging through an audit-log filter: its first page, then
    /// `next_cursor` page after page to the end, then another filter.
    AuditPageCursor,
    /// `GET …/boards/{board}/lists`: the lists of the VU's board, one page
    /// (a collection read: membership, the board, the page).
    ListPage,
    /// `GET …/boards/{board}` on the organization's regular board, with
    /// `Cache-Control: no-cache` (read from the database every time).
    BoardView,
    /// The same without the header, as a browser asks (`Accept-Encoding:
    /// gzip, br`, the answer read as sent): served from the server's board
    /// cache (the first request after a write fills it).
    BoardViewCached,
    /// The same, revalidated as a browser does: `If-None-Match` with the
    /// `ETag` of the view it last got (`304` while nothing changed).
    BoardView304,
    /// The board view of the 10 000-task hot board (L tier), uncached.
    BoardViewHot10k,
    /// The same, served from the cache.
    BoardViewHot10kCached,
    /// The board view of the 100 000-task hot board (L tier), uncached.
    BoardViewHot100k,
    /// `POST /auth/login` (argon2id verification at the server's cost).
    Login,
    /// `PATCH …/tasks/{task}` with `If-Match`.
    UpdateTask,
    /// `POST …/tasks/{task}/move` with `If-Match`.
    MoveTask,
    /// `POST …/lists/{list}/tasks`.
    CreateTask,
    /// `POST …/tasks/{task}/comments` on one of the VU's tasks.
    CreateComment,
    /// `POST …/boards` (a new empty board each time).
    CreateBoard,
    /// 55 % reads (30 get task, 25 filtered page), 15 % board view (as a
    /// client sends it: through the cache), 15 % create, 10 % move, 5 %
    /// update.
    Mix,
}

impl Scenario {
    /// Every scenario in the order `all` runs them: reads first (so the
    /// boards they read still have their seeded size), then writes, with
    /// `create_task` last because it grows the boards the others read.
    pub const ALL: [Scenario; 19] = [
        Scenario::GetTask,
        Scenario::FilterPage,
        Scenario::FilterPageCursor,
        Scenario::AuditPage,
        Scenario::AuditPageCursor,
        Scenario::ListPage,
        Scenario::BoardView,
        Scenario::BoardViewCached,
        Scenario::BoardView304,
        Scenario::BoardViewHot10k,
        Scenario::BoardViewHot10kCached,
        Scenario::BoardViewHot100k,
        Scenario::Login,
        Scenario::UpdateTask,
        Scenario::MoveTask,
        Scenario::CreateComment,
        Scenario::CreateBoard,
        Scenario::Mix,
        Scenario::CreateTask,
    ];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::GetTask => "get_task",
            Scenario::FilterPage => "filter_page",
            Scenario::FilterPageCursor => "filter_page_cursor",
            Scenario::AuditPage => "audit_page",
            Scenario::AuditPageCursor => "audit_page_cursor",
            Scenario::ListPage => "list_page",
            Scenario::BoardView => "board_view",
            Scenario::BoardViewCached => "board_view_cached",
            Scenario::BoardView304 => "board_view_304",
            Scenario::BoardViewHot10k => "board_view_hot10k",
            Scenario::BoardViewHot10kCached => "board_view_hot10k_cached",
            Scenario::BoardViewHot100k => "board_view_hot100k",
            Scenario::Login => "login",
            Scenario::UpdateTask => "update_task",
            Scenario::MoveTask => "move_task",
            Scenario::CreateTask => "create_task",
            Scenario::CreateComment => "create_comment",
            Scenario::CreateBoard => "create_board",
            Scenario::Mix => "mix",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Scenario> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Which board its VUs work on.
    pub fn board(self) -> BoardKind {
        match self {
            Scenario::BoardViewHot10k | Scenario::BoardViewHot10kCached => BoardKind::Hot10k,
            Scenario::BoardViewHot100k => BoardKind::Hot100k,
            _ => BoardKind::Regular,
        }
    }

    /// Whether limit mode has a database-only twin of it (login is
    /// authentication itself: nothing to compare with; a cached board view
    /// mostly skips the database, and its uncached twin already measures
    /// the database's view).
    pub fn has_limit(self) -> bool {
        !matches!(
            self,
            Scenario::Login
                | Scenario::ListPage
                | Scenario::BoardViewCached
                | Scenario::BoardView304
                | Scenario::BoardViewHot10kCached
        )
    }

    /// Whether its report gives the board cache's hit rate (its requests
    /// may be served from the cache).
    pub fn uses_board_cache(self) -> bool {
        matches!(
            self,
            Scenario::BoardViewCached
                | Scenario::BoardView304
                | Scenario::BoardViewHot10kCached
                | Scenario::Mix
        )
    }

    /// Whether it is a board view scenario (cached or not).
    pub fn is_board_view(self) -> bool {
        matches!(
            self,
            Scenario::BoardView
                | Scenario::BoardViewCached
                | Scenario::BoardView304
                | Scenario::BoardViewHot10k
                | Scenario::BoardViewHot10kCached
                | Scenario::BoardViewHot100k
        )
    }

    /// The operation a VU does next.
    pub fn pick(self, rng: &mut StdRng) -> Op {
        match self {
            Scenario::GetTask => Op::GetTask,
            Scenario::FilterPage => Op::FilterPage,
            Scenario::FilterPageCursor => Op::FilterPageCursor,
            Scenario::AuditPage => Op::AuditPage,
            Scenario::AuditPageCursor => Op::AuditPageCursor,
            Scenario::ListPage => Op::ListPage,
            Scenario::BoardView | Scenario::BoardViewHot10k | Scenario::BoardViewHot100k => {
                Op::BoardView
            }
            Scenario::BoardViewCached | Scenario::BoardViewHot10kCached => Op::BoardViewCached,
            Scenario::BoardView304 => Op::BoardView304,
            Scenario::Login => Op::Login,
            Scenario::UpdateTask => Op::UpdateTask,
            Scenario::MoveTask => Op::MoveTask,
            Scenario::CreateTask => Op::CreateTask,
            Scenario::CreateComment => Op::CreateComment,
            Scenario::CreateBoard => Op::CreateBoard,
            Scenario::Mix => match rng.random_range(0..100) {
                0..30 => Op::GetTask,
                30..55 => Op::FilterPage,
                55..70 => Op::BoardViewCached,
                70..85 => Op::CreateTask,
                85..95 => Op::MoveTask,
                _ => Op::UpdateTask,
            },
        }
    }
}

/// One operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    /// Read a task.
    GetTask,
    /// First page of a filter.
    FilterPage,
    /// First page of a filter, starting a chain of pages (cursor scenario).
    FilterPageFirst,
    /// Next page of a filter.
    FilterPageCursor,
    /// First page of an audit-log filter.
    AuditPage,
    /// First page of an audit-log filter, starting a chain of pages (cursor
    /// scenario).
    AuditPageFirst,
    /// Next page of an audit-log filter.
    AuditPageCursor,
    /// The lists of the VU's board.
    ListPage,
    /// The board view, uncached (`Cache-Control: no-cache`).
    BoardView,
    /// The board view, through the cache.
    BoardViewCached,
    /// The board view, revalidated with `If-None-Match`.
    BoardView304,
    /// Log in.
    Login,
    /// Conditional update.
    UpdateTask,
    /// Conditional move.
    MoveTask,
    /// Create.
    CreateTask,
    /// Comment on a task.
    CreateComment,
    /// Create a board.
    CreateBoard,
}

impl Op {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::GetTask => "get_task",
            Op::FilterPage => "filter_page",
            Op::FilterPageFirst => "filter_page_first",
            Op::FilterPageCursor => "filter_page_cursor",
            Op::AuditPage => "audit_page",
            Op::AuditPageFirst => "audit_page_first",
            Op::AuditPageCursor => "audit_page_cursor",
            Op::ListPage => "list_page",
            Op::BoardView => "board_view",
            Op::BoardViewCached => "board_view_cached",
            Op::BoardView304 => "board_view_304",
            Op::Login => "login",
            Op::UpdateTask => "update_task",
            Op::MoveTask => "move_task",
            Op::CreateTask => "create_task",
            Op::CreateComment => "create_comment",
            Op::CreateBoard => "create_board",
        }
    }
}

/// The filters a filtered page uses, in turn: (statuses, priorities).
pub const FILTERS: [(&[&str], &[&str]); 3] = [
    (&["todo"], &["high", "urgent"]),
    (&["in_progress"], &["medium"]),
    (&["todo", "in_progress"], &["low"]),
];

/// Page size of a filtered page (and of an audit-log page).
pub const PAGE: usize = 50;

/// A filter of the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditFilterSpec {
    /// Every row.
    All,
    /// `action=…`.
    Action(&'static str),
    /// `entity_type=…`.
    EntityType(&'static str),
    /// `actor_id=` the VU's own user.
    OwnActor,
}

/// The filters an audit-log page uses: none, one seeded action, one seeded
/// entity type, the VU's own changes.
pub const AUDIT_FILTERS: [AuditFilterSpec; 4] = [
    AuditFilterSpec::All,
    AuditFilterSpec::Action("list.updated"),
    AuditFilterSpec::EntityType("label"),
    AuditFilterSpec::OwnActor,
];

const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];

/// A task a VU owns, as the VU last saw it.
#[derive(Debug, Clone)]
pub struct TaskState {
    /// Task id.
    pub id: Uuid,
    /// Index of its list in [`Vu::lists`].
    pub list: usize,
    /// Its version.
    pub version: i64,
}

/// A virtual user.
pub struct Vu {
    /// Index among the VUs.
    pub idx: usize,
    /// Its organization.
    pub org_id: Uuid,
    /// Its user.
    pub user_id: Uuid,
    /// Login email.
    pub email: String,
    /// Access token (minted from the server secret before each phase).
    pub token: String,
    /// The board it works on.
    pub board_id: Uuid,
    /// That board's lists.
    pub lists: Vec<Uuid>,
    /// The organization's labels.
    pub labels: Vec<Uuid>,
    /// Tasks it owns.
    pub tasks: Vec<TaskState>,
    /// Its random source.
    pub rng: StdRng,
    /// Filter being paged over HTTP: (filter, next cursor); the filter is an
    /// index into [`FILTERS`], or into [`AUDIT_FILTERS`] for the audit log.
    pub http_chain: Option<(usize, String)>,
    /// Filter being paged in limit mode: (filter, last id).
    pub db_chain: Option<(usize, Uuid)>,
    /// Operations done (makes titles unique).
    pub n: u64,
    /// The `ETag` of the board view it last got.
    pub etag: Option<String>,
}

/// VUs for `board` kind: VU `i` goes to the `i mod n`-th organization that
/// has such a board, as its `i div n`-th member, and owns every k-th task.
/// Organizations that also hold a hot board come last, so that on tier L the
/// ordinary scenarios run in ordinary (1 000-task) organizations.
pub fn make_vus(ds: &Dataset, concurrency: usize, board: BoardKind, seed: u64) -> Vec<Vu> {
    let mut orgs: Vec<_> = ds
        .orgs
        .iter()
        .filter(|o| o.board(board).is_some())
        .collect();
    orgs.sort_by_key(|o| o.boards.len());
    let n = orgs.len().max(1);
    (0..concurrency)
        .filter_map(|i| {
            let org = orgs.get(i % n)?;
            let b = org.board(board)?;
            let rank = i / n;
            let group = (concurrency - 1 - i % n) / n + 1;
            let member = &org.members[rank % org.members.len()];
            let tasks = b
                .tasks
                .iter()
                .enumerate()
                .filter(|(k, _)| k % group == rank % group)
                .map(|(_, t)| TaskState {
                    id: t.id,
                    list: t.list as usize,
                    version: 1,
                })
                .collect();
            Some(Vu {
                idx: i,
                org_id: org.id,
                user_id: member.id,
                email: member.email.clone(),
                token: String::new(),
                board_id: b.id,
                lists: b.lists.clone(),
                labels: org.labels.clone(),
                tasks,
                rng: StdRng::seed_from_u64(seed.wrapping_add(i as u64 * 7919)),
                http_chain: None,
                db_chain: None,
                n: 0,
                etag: None,
            })
        })
        .collect()
}

impl Vu {
    /// The operation to do for `op` in `mode`: paging goes on where a chain
    /// of pages is open, and starts one with a first page otherwise.
    pub fn next_op(&self, op: Op, mode: crate::runner::Mode) -> Op {
        let open = match mode {
            crate::runner::Mode::Http => self.http_chain.is_some(),
            crate::runner::Mode::Limit | crate::runner::Mode::Raw => self.db_chain.is_some(),
        };
        match op {
            Op::FilterPageCursor if !open => Op::FilterPageFirst,
            Op::AuditPageCursor if !open => Op::AuditPageFirst,
            _ => op,
        }
    }
}

/// Mints a fresh access token for every VU.
pub fn mint_tokens(vus: &mut [Vu], keys: &Keys) -> anyhow::Result<()> {
    for vu in vus {
        vu.token = keys.issue_access(vu.user_id)?;
    }
    Ok(())
}

/// Acknowledged writes, for the integrity check.
#[derive(Debug, Default)]
pub struct Counters {
    /// Tasks created (201, or committed in limit mode).
    pub created: AtomicU64,
    /// Updates acknowledged (each writes one `task.updated` audit row).
    pub updated: AtomicU64,
    /// Moves acknowledged (each writes one `task.moved` audit row).
    pub moved: AtomicU64,
    /// Comments created (each writes one `comment.created` audit row).
    pub comments: AtomicU64,
    /// Boards created (each writes one `board.created` audit row).
    pub boards: AtomicU64,
    /// Writes whose answer never came (timeout or connection error): the
    /// server may or may not have committed them.
    pub unanswered_writes: AtomicU64,
}

impl Counters {
    /// `(comments, boards)` created.
    pub fn created_others(&self) -> (u64, u64) {
        (
            self.comments.load(Ordering::Relaxed),
            self.boards.load(Ordering::Relaxed),
        )
    }

    /// `(created, updated, moved, unanswered)`.
    pub fn get(&self) -> (u64, u64, u64, u64) {
        (
            self.created.load(Ordering::Relaxed),
            self.updated.load(Ordering::Relaxed),
            self.moved.load(Ordering::Relaxed),
            self.unanswered_writes.load(Ordering::Relaxed),
        )
    }
}

/// What a phase runs against.
pub struct Env {
    /// The server (HTTP phases).
    pub http: Option<Http>,
    /// The database (limit phases).
    pub db: Option<Db>,
    /// Writes acknowledged over HTTP.
    pub http_counts: Counters,
    /// Writes committed by limit mode.
    pub limit_counts: Counters,
}

/// A task to create.
pub struct CreateSpec {
    /// List index.
    pub list: usize,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Priority name.
    pub priority: &'static str,
    /// Assignees (the VU itself, half the time).
    pub assignees: Vec<Uuid>,
    /// Labels (one, half the time).
    pub labels: Vec<Uuid>,
}

/// The next task a VU creates.
pub fn create_spec(vu: &mut Vu) -> CreateSpec {
    vu.n += 1;
    let list = vu.rng.random_range(0..vu.lists.len());
    let assignees = if vu.rng.random_bool(0.5) {
        vec![vu.user_id]
    } else {
        vec![]
    };
    let labels = if vu.rng.random_bool(0.5) && !vu.labels.is_empty() {
        vec![vu.labels[vu.rng.random_range(0..vu.labels.len())]]
    } else {
        vec![]
    };
    CreateSpec {
        list,
        title: format!("bench task {}-{}", vu.idx, vu.n),
        description: "Created by orgboard-bench.".to_owned(),
        priority: PRIORITIES[vu.rng.random_range(0..4)],
        assignees,
        labels,
    }
}

/// An update: a new title (always a change) and priority.
pub struct UpdateSpec {
    /// Index into [`Vu::tasks`].
    pub task: usize,
    /// New title.
    pub title: String,
    /// New priority name.
    pub priority: &'static str,
}

/// The next update a VU makes (`None` when it owns no task).
pub fn update_spec(vu: &mut Vu) -> Option<UpdateSpec> {
    if vu.tasks.is_empty() {
        return None;
    }
    vu.n += 1;
    Some(UpdateSpec {
        task: vu.rng.random_range(0..vu.tasks.len()),
        title: format!("edited by vu {} #{}", vu.idx, vu.n),
        priority: PRIORITIES[vu.rng.random_range(0..4)],
    })
}

/// A move: to another list, at the end or right after one of the VU's
/// tasks there.
pub struct MoveSpec {
    /// Index into [`Vu::tasks`].
    pub task: usize,
    /// Destination list index.
    pub to: usize,
    /// Place right after this task (of the destination list).
    pub after: Option<Uuid>,
}

/// The next move a VU makes (`None` when it owns no task).
pub fn move_spec(vu: &mut Vu) -> Option<MoveSpec> {
    if vu.tasks.is_empty() {
        return None;
    }
    let task = vu.rng.random_range(0..vu.tasks.len());
    let from = vu.tasks[task].list;
    let mut to = vu.rng.random_range(0..vu.lists.len());
    if to == from && vu.lists.len() > 1 {
        to = (to + 1) % vu.lists.len();
    }
    let mut after = None;
    if vu.rng.random_bool(0.5) {
        for _ in 0..16 {
            let k = vu.rng.random_range(0..vu.tasks.len());
            if k != task && vu.tasks[k].list == to {
                after = Some(vu.tasks[k].id);
                break;
            }
        }
    }
    Some(MoveSpec { task, to, after })
}

/// The text of the VU's next comment.
pub fn comment_text(vu: &mut Vu) -> String {
    vu.n += 1;
    format!("bench comment {}-{}: looks good to me.", vu.idx, vu.n)
}

/// The name of the VU's next board.
pub fn board_name(vu: &mut Vu) -> String {
    vu.n += 1;
    format!("bench board {}-{}", vu.idx, vu.n)
}

/// A random task of the VU (`None` when it owns none).
pub fn pick_task(vu: &mut Vu) -> Option<Uuid> {
    if vu.tasks.is_empty() {
        return None;
    }
    Some(vu.tasks[vu.rng.random_range(0..vu.tasks.len())].id)
}

#[derive(Deserialize)]
struct TaskResp {
    version: i64,
    list_id: Uuid,
}

#[derive(Deserialize)]
struct PageResp {
    next_cursor: Option<String>,
}

fn outcome(status: u16) -> Outcome {
    if (200..300).contains(&status) {
        Outcome::Ok
    } else {
        Outcome::Error(status.to_string())
    }
}

fn filter_path(vu: &Vu, filter: usize, cursor: Option<&str>) -> String {
    let (statuses, priorities) = FILTERS[filter];
    let mut p = format!(
        "/api/v1/orgs/{}/tasks?status={}&priority={}&limit={PAGE}",
        vu.org_id,
        statuses.join(","),
        priorities.join(",")
    );
    if let Some(c) = cursor {
        p.push_str("&cursor=");
        p.push_str(c);
    }
    p
}

fn audit_path(vu: &Vu, filter: usize, cursor: Option<&str>) -> String {
    let mut p = format!("/api/v1/orgs/{}/audit-log?limit={PAGE}", vu.org_id);
    match AUDIT_FILTERS[filter] {
        AuditFilterSpec::All => {}
        AuditFilterSpec::Action(a) => {
            p.push_str("&action=");
            p.push_str(a);
        }
        AuditFilterSpec::EntityType(t) => {
            p.push_str("&entity_type=");
            p.push_str(t);
        }
        AuditFilterSpec::OwnActor => {
            p.push_str("&actor_id=");
            p.push_str(&vu.user_id.to_string());
        }
    }
    if let Some(c) = cursor {
        p.push_str("&cursor=");
        p.push_str(c);
    }
    p
}

/// Does `op` over HTTP; `None` when nothing is to be recorded.
pub async fn http_op(vu: &mut Vu, env: &Env, op: Op) -> Option<(Duration, Outcome)> {
    let http = env.http.as_ref()?;
    let counts = &env.http_counts;
    let org = vu.org_id;
    match op {
        Op::GetTask => {
            let id = pick_task(vu)?;
            let path = format!("/api/v1/orgs/{org}/tasks/{id}");
            let token = vu.token.clone();
            Some(answer(
                http.send(Method::GET, &path, Some(&token), None, None)
                    .await,
            ))
        }
        Op::FilterPage => {
            let f = vu.rng.random_range(0..FILTERS.len());
            let path = filter_path(vu, f, None);
            Some(answer(
                http.send(Method::GET, &path, Some(&vu.token), None, None)
                    .await,
            ))
        }
        Op::ListPage => {
            let path = format!("/api/v1/orgs/{org}/boards/{}/lists", vu.board_id);
            Some(answer(
                http.send(Method::GET, &path, Some(&vu.token), None, None)
                    .await,
            ))
        }
        Op::AuditPage => {
            let f = vu.rng.random_range(0..AUDIT_FILTERS.len());
            let path = audit_path(vu, f, None);
            Some(answer(
                http.send(Method::GET, &path, Some(&vu.token), None, None)
                    .await,
            ))
        }
        Op::FilterPageFirst | Op::FilterPageCursor | Op::AuditPageFirst | Op::AuditPageCursor => {
            let audit = matches!(op, Op::AuditPageFirst | Op::AuditPageCursor);
            let n = if audit {
                AUDIT_FILTERS.len()
            } else {
                FILTERS.len()
            };
            let (f, cursor) = match vu.http_chain.take() {
                Some((f, c)) if matches!(op, Op::FilterPageCursor | Op::AuditPageCursor) => {
                    (f, Some(c))
                }
                _ => (vu.rng.random_range(0..n), None),
            };
            let path = if audit {
                audit_path(vu, f, cursor.as_deref())
            } else {
                filter_path(vu, f, cursor.as_deref())
            };
            match http
                .send(Method::GET, &path, Some(&vu.token), None, None)
                .await
            {
                Ok(r) => {
                    if r.status == 200
                        && let Ok(p) = serde_json::from_slice::<PageResp>(&r.body)
                    {
                        vu.http_chain = p.next_cursor.map(|c| (f, c));
                    }
                    Some((r.latency, outcome(r.status)))
                }
                Err(e) => Some(fail(e)),
            }
        }
        Op::BoardView | Op::BoardViewCached | Op::BoardView304 => {
            let path = format!("/api/v1/orgs/{org}/boards/{}", vu.board_id);
            let etag = vu.etag.clone().unwrap_or_default();
            let mut headers = vec![];
            match op {
                Op::BoardView => headers.push(("cache-control", "no-cache")),
                Op::BoardView304 if !etag.is_empty() => headers.push(("if-none-match", &*etag)),
                _ => {}
            }
            if op != Op::BoardView {
                headers.push(("accept-encoding", "gzip, br"));
            }
            match http
                .send_with(Method::GET, &path, Some(&vu.token), None, None, &headers)
                .await
            {
                Ok(r) => {
                    if r.status == 200 {
                        vu.etag = r.etag;
                    }
                    // 304 is this scenario's success.
                    let status = if r.status == 304 { 200 } else { r.status };
                    Some((r.latency, outcome(status)))
                }
                Err(e) => Some(fail(e)),
            }
        }
        Op::Login => {
            let body = json!({ "email": vu.email, "password": PASSWORD }).to_string();
            Some(answer(
                http.send(
                    Method::POST,
                    "/api/v1/auth/login",
                    None,
                    Some(body.into_bytes()),
                    None,
                )
                .await,
            ))
        }
        Op::CreateTask => {
            let spec = create_spec(vu);
            let path = format!("/api/v1/orgs/{org}/lists/{}/tasks", vu.lists[spec.list]);
            let body = json!({
                "title": spec.title, "description": spec.description, "priority": spec.priority,
                "assignee_ids": spec.assignees, "label_ids": spec.labels,
            })
            .to_string();
            create(http, vu, &path, body, &counts.created, counts).await
        }
        Op::CreateComment | Op::CreateBoard => {
            let (path, body, acked) = if op == Op::CreateComment {
                let id = pick_task(vu)?;
                let body = json!({ "body": comment_text(vu) });
                let path = format!("/api/v1/orgs/{org}/tasks/{id}/comments");
                (path, body, &counts.comments)
            } else {
                let body = json!({ "name": board_name(vu) });
                (format!("/api/v1/orgs/{org}/boards"), body, &counts.boards)
            };
            create(http, vu, &path, body.to_string(), acked, counts).await
        }
        Op::UpdateTask => {
            let spec = update_spec(vu)?;
            let (id, version) = (vu.tasks[spec.task].id, vu.tasks[spec.task].version);
            let path = format!("/api/v1/orgs/{org}/tasks/{id}");
            let body = json!({ "title": spec.title, "priority": spec.priority }).to_string();
            let r = http
                .send(
                    Method::PATCH,
                    &path,
                    Some(&vu.token),
                    Some(body.into_bytes()),
                    Some(version),
                )
                .await;
            self_sync(vu, env, http, spec.task, r, &counts.updated).await
        }
        Op::MoveTask => {
            let spec = move_spec(vu)?;
            let (id, version) = (vu.tasks[spec.task].id, vu.tasks[spec.task].version);
            let path = format!("/api/v1/orgs/{org}/tasks/{id}/move");
            let mut body = json!({ "list_id": vu.lists[spec.to] });
            if let Some(a) = spec.after {
                body["after_id"] = json!(a);
            }
            let r = http
                .send(
                    Method::POST,
                    &path,
                    Some(&vu.token),
                    Some(body.to_string().into_bytes()),
                    Some(version),
                )
                .await;
            self_sync(vu, env, http, spec.task, r, &counts.moved).await
        }
    }
}

/// A creating `POST` of `body` to `path`: a `201` counts in `acked`, no
/// answer in `counts.unanswered_writes`.
async fn create(
    http: &Http,
    vu: &Vu,
    path: &str,
    body: String,
    acked: &AtomicU64,
    counts: &Counters,
) -> Option<(Duration, Outcome)> {
    let r = http
        .send(
            Method::POST,
            path,
            Some(&vu.token),
            Some(body.into_bytes()),
            None,
        )
        .await;
    match r {
        Ok(r) => {
            if r.status == 201 {
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Some((r.latency, outcome(r.status)))
        }
        Err(e) => {
            counts.unanswered_writes.fetch_add(1, Ordering::Relaxed);
            Some(fail(e))
        }
    }
}

/// After a conditional write: take the new version (and list) from a `200`;
/// on `412` re-read the task (not measured) and count a conflict.
async fn self_sync(
    vu: &mut Vu,
    env: &Env,
    http: &Http,
    task: usize,
    r: Result<crate::http::Resp, crate::http::Failure>,
    acked: &AtomicU64,
) -> Option<(Duration, Outcome)> {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            env.http_counts
                .unanswered_writes
                .fetch_add(1, Ordering::Relaxed);
            return Some(fail(e));
        }
    };
    let mut fresh = None;
    let result = match r.status {
        200 => {
            acked.fetch_add(1, Ordering::Relaxed);
            fresh = serde_json::from_slice::<TaskResp>(&r.body).ok();
            Outcome::Ok
        }
        412 => {
            let path = format!("/api/v1/orgs/{}/tasks/{}", vu.org_id, vu.tasks[task].id);
            if let Ok(g) = http
                .send(Method::GET, &path, Some(&vu.token), None, None)
                .await
            {
                fresh = serde_json::from_slice::<TaskResp>(&g.body).ok();
            }
            Outcome::Conflict
        }
        s => Outcome::Error(s.to_string()),
    };
    if let Some(t) = fresh {
        vu.tasks[task].version = t.version;
        if let Some(i) = vu.lists.iter().position(|l| *l == t.list_id) {
            vu.tasks[task].list = i;
        }
    }
    Some((r.latency, result))
}

fn answer(r: Result<crate::http::Resp, crate::http::Failure>) -> (Duration, Outcome) {
    match r {
        Ok(r) => (r.latency, outcome(r.status)),
        Err(e) => fail(e),
    }
}

/// A request that got no answer; the first one of the run is shown.
fn fail(e: crate::http::Failure) -> (Duration, Outcome) {
    static SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SHOWN.swap(true, Ordering::Relaxed) {
        eprintln!("first request without an answer: {}: {}", e.key, e.detail);
    }
    (e.latency, Outcome::Error(e.key.into()))
}
