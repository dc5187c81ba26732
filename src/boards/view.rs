//! The board view (`GET …/boards/{board}`): the board, its lists in
//! order, and the first `per_list` cards of each, written as JSON while
//! the rows are read.
//!
//! Written once over [`Uow`]: on PostgreSQL it runs in the request's read
//! transaction; on SQLite on a connection of the rusqlite read pool
//! ([`crate::db::readers`]), where each row is read in place and written
//! straight into the answer (no row copied, no `Task` built: a card's text
//! is borrowed from the row, [`crate::tasks::card`]).
//!
//! The view is built in parts ([`Parts`]: the board's JSON, each list's,
//! each card's) so that the board-view cache can patch a cached view with
//! a task's change ([`crate::tasks::write::card_change`]) instead of reading it again.

use bytes::Bytes;
use serde::Serialize;
use uuid::Uuid;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Board, BoardPath, load_board};
use crate::cache::parts::{Beyond, Card, ListPart, Parts, RESERVE};
use crate::db::Backend;
use crate::db::uow::{Arg, Uow};
use crate::domain::DomainError;
use crate::domain::{Action, Ownership};
use crate::error::ApiError;
use crate::error::ApiResult;
use crate::http::extract::{AppPath, AppQuery};
use crate::lists::{List, lists_of_board};
use crate::orgs::context::OrgRequest;
use crate::state::AppState;
use crate::tasks::card::{CARD_COLUMNS, CardFields};
use crate::tasks::{self, TaskSummary};

/// Cards per list in the board view when `per_list` is not given.
pub const DEFAULT_PER_LIST: u32 = 200;
/// Most cards per list a board view carries.
pub const MAX_PER_LIST: u32 = 1000;

/// The board view's route (`GET …/boards/{board}`), merged by the HTTP
/// layer beside [`super::router`] (so the board module itself needs
/// neither lists nor tasks).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_board))
}

/// A list of the board view, with its first tasks in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListWithTasks {
    /// The list.
    #[serde(flatten)]
    pub list: List,
    /// Its first `per_list` tasks, in order (summaries: every field but the
    /// description).
    pub tasks: Vec<TaskSummary>,
    /// When the list has more: the cursor of
    /// `GET …/tasks?list_id=<this list>&sort=position` for the rest, in
    /// board order; `null` when every task of the list is here.
    pub next_cursor: Option<String>,
}

/// The board view: the board, its lists in order, each with its tasks in order.
// The handler writes this shape as the rows arrive (`board_view_json`);
// the type gives its schema and `tests/api/board_view.rs` checks the two agree.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardView {
    /// The board.
    #[serde(flatten)]
    pub board: Board,
    /// Its lists.
    pub lists: Vec<ListWithTasks>,
}

/// Query of `GET …/boards/{board}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BoardViewQuery {
    /// Cards per list, 1–1000 (default 200); each list's `next_cursor`
    /// pages the rest.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub per_list: Option<String>,
}

impl BoardViewQuery {
    /// `per_list` checked: a whole number from 1 to [`MAX_PER_LIST`], else `422`.
    pub fn per_list(&self) -> Result<u32, ApiError> {
        match self.per_list.as_deref() {
            None => Ok(DEFAULT_PER_LIST),
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PER_LIST).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "per_list",
                        format!("must be a whole number from 1 to {MAX_PER_LIST}"),
                    )
                }),
        }
    }
}

/// The board view: the board, its lists in order, each with its first
/// `per_list` tasks in order (summaries, without descriptions) and a
/// `next_cursor` for the rest (`GET …/tasks?list_id=…&sort=position&cursor=…`).
/// Served from the board-view cache when no write touching the board (its
/// tasks, lists, comments, or labels and members of the organization) has
/// been acknowledged since it was stored, or only task changes that patched
/// it (gzipped once, when first asked for);
/// `If-None-Match` with its `ETag` answers `304` without reading the view;
/// `Cache-Control: no-cache` reads it from the database.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/boards/{board}", tag = "boards",
    params(BoardPath, BoardViewQuery,
        ("Cache-Control" = Option<String>, Header, description = "`no-cache`: read from the database, not the cache (never `304`)"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this view: `304` when nothing was acknowledged since")),
    security(("bearer" = [])),
    responses((status = 200, body = BoardView, headers(("ETag" = String, description = "The view's version (with `per_list`)"))),
              (status = 304, description = "Not modified since the `ETag` in `If-None-Match`"),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem)))]
async fn get_board(
    State(state): State<AppState>,
    org: OrgRequest,
    AppPath(path): AppPath<BoardPath>,
    AppQuery(query): AppQuery<BoardViewQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    use axum::http::header;
    // `Cache-Control: no-cache` asks for a view read from the database now
    // (it still refreshes the cache, and is never answered 304).
    let fresh = headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("no-cache"))
    });
    // The membership: on SQLite one statement on the rusqlite read pool; on
    // PostgreSQL in the read (tokio-postgres) the view is then read in.
    let (mut tx, ctx) = match state.db.sqlite_readers() {
        Some(readers) => {
            let ctx = readers
                .read_statement(async move |u| org.enter(u).await)
                .await??;
            (None, ctx)
        }
        // The `BEGIN` travels with the membership statement, which enters
        // the tenant for the statements of the view after it (`db::pg`).
        None => {
            let mut read = state
                .db
                .pg_read(crate::db::Scope::user(org.user_id()), false)
                .await?;
            let ctx = org.enter(&mut read).await?;
            (Some(read), ctx)
        }
    };
    ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
    let per_list = query.per_list()?;
    let gzip = crate::http::conditional::accepts_gzip(&headers);
    // The version is read before the view (see crate::cache); SQLite's view
    // is read in a snapshot of its own, begun after it.
    let cache = &state.live.cache;
    let version = cache.version(ctx.org_id, path.board).await;
    let etag = version.map(|v| v.etag(path.board, per_list));
    if !fresh
        && etag
            .as_ref()
            .is_some_and(|tag| crate::http::conditional::if_none_match(&headers, tag))
    {
        // Nothing acknowledged since: no view is read or built.
        return Ok(crate::http::conditional::not_modified(etag));
    }
    let org_id = ctx.org_id;
    let board = path.board;
    // Only a patched view needs it: no copy of the state for a hit.
    let hit_cursor = |list, id, position: &str| {
        tasks::filter::position_cursor(&state, org_id, list, id, position)
    };
    if let Some(v) = version
        && !fresh
        && let Some(hit) = cache.get(org_id, board, per_list, v).await
    {
        return Ok(view_response(&hit, gzip, etag, &hit_cursor));
    }
    let cursor = {
        let state = state.clone();
        move |list, id, position: &str| {
            tasks::filter::position_cursor(&state, org_id, list, id, position)
        }
    };
    let (body, parts) = match (&mut tx, state.db.sqlite_readers()) {
        (Some(tx), _) => board_view_parts(tx, org_id, board, per_list, cursor.clone()).await?,
        // SQLite: on the rusqlite read pool, in a snapshot of its own (the
        // version was read before it, see crate::cache).
        (None, Some(readers)) => {
            readers
                .read({
                    let cursor = cursor.clone();
                    async move |u| board_view_parts(u, org_id, board, per_list, cursor).await
                })
                .await??
        }
        (None, None) => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "board view: neither a read transaction nor the read pool"
            )));
        }
    }
    .ok_or_else(ApiError::not_found)?;
    let stored = crate::cache::CachedView::from_parts(parts, body);
    if let Some(v) = version {
        cache.put(org_id, board, per_list, v, stored.clone()).await;
    }
    Ok(view_response(&stored, gzip, etag, &cursor))
}

/// A board view: gzipped as stored (never compressed again) when the client
/// accepts gzip, else plain; with its `ETag` when it has one. `cursor`
/// makes the lists' `next_cursor` of a view patched since it was read.
fn view_response(
    view: &crate::cache::CachedView,
    gzip: bool,
    etag: Option<String>,
    cursor: crate::cache::Cursor<'_>,
) -> Response {
    use axum::http::{HeaderValue, header};
    let mut res = if gzip {
        let mut res = view.gzip(cursor).into_response();
        res.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        res
    } else {
        view.body(cursor).into_response()
    };
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if let Some(v) = etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        h.insert(header::ETAG, v);
    }
    res
}

/// How the cards of a PostgreSQL board view are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardOrder {
    /// The branches of the `UNION ALL` as they come: PostgreSQL's `Append`
    /// returns each branch's ordered index range in turn, so the rows
    /// arrive by list, then position, without the sort that `ORDER BY`
    /// would add over all of them (a third to a half of the statement's
    /// time at 2 090 rows, BENCHMARKS.md "Issue 13, tenth part"). SQL does
    /// not promise that order, so it is checked as the rows arrive
    /// ([`ViewParts::card`]) and, if it ever does not hold, the view is
    /// read again [`CardOrder::Sorted`].
    AsRead,
    /// `ORDER BY` list, then position: the order SQL guarantees.
    Sorted,
    /// The branches in reverse (tests only: rows of a list that came
    /// before, to exercise the fallback).
    #[doc(hidden)]
    Reversed,
    /// Each list's cards in reverse (tests only: a position before the
    /// one read just before it, to exercise the fallback).
    #[doc(hidden)]
    Descending,
}

/// The statement of the first `take` cards of each of `lists` lists (one
/// `LIMIT`ed index range of `(org_id, list_id, position)` each), by list,
/// then position (see [`CardOrder`]); `$1` is the organization, `$2…` the
/// lists. PostgreSQL's: one round trip for the whole board.
fn first_cards_sql(lists: usize, take: u64, order: CardOrder) -> String {
    let desc = if order == CardOrder::Descending {
        " DESC"
    } else {
        ""
    };
    let mut parts: Vec<String> = (0..lists)
        .map(|i| {
            format!(
                "SELECT * FROM (SELECT {CARD_COLUMNS}, {i} AS part FROM tasks t \
                 WHERE t.org_id = $1 AND t.list_id = ${} ORDER BY t.position{desc} LIMIT {take}) p{i}",
                i + 2
            )
        })
        .collect();
    if order == CardOrder::Reversed {
        parts.reverse();
    }
    let sort = match order {
        CardOrder::Sorted => " ORDER BY t.part, t.position",
        CardOrder::AsRead | CardOrder::Reversed | CardOrder::Descending => "",
    };
    format!(
        "SELECT {CARD_COLUMNS} FROM ({}) t{sort}",
        parts.join(" UNION ALL ")
    )
}

/// The statement of the first `take` cards of one list (`$2`) in order.
/// SQLite's: no round trip to save, and read straight off the index with
/// no sorter (the union above copies every row into one to order them).
fn list_cards_sql(take: u64) -> String {
    format!(
        "SELECT {CARD_COLUMNS} FROM tasks t WHERE t.org_id = $1 AND t.list_id = $2 \
         ORDER BY t.position LIMIT {take}"
    )
}

/// Reads the board view in `u`: its JSON, and the same view as [`Parts`]
/// (the shape of [`super::BoardView`] in pieces the cache can patch, slices
/// of that JSON): the board, its lists, and the first `per_list` cards of
/// every list (and up to [`RESERVE`] more, kept by the cache to replace
/// cards that leave a page), each card written as JSON as its row arrives.
/// On PostgreSQL the cards of all lists are one statement (three round
/// trips whatever the board's size; unsorted, its order checked, see
/// [`CardOrder`]); on SQLite one statement per list, read
/// off the index in order, with no round trip to save (the union's outer
/// `ORDER BY` copies every row into a sorter; BENCHMARKS.md "Issue 13,
/// sixth part").
/// `cursor` makes the `next_cursor` of a list from its last card shown
/// (list, id, position). `None`: no such board.
pub async fn board_view_parts<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    board_id: Uuid,
    per_list: u32,
    cursor: impl Fn(Uuid, Uuid, &str) -> String + Send,
) -> Result<Option<(Bytes, Parts)>, DomainError> {
    board_view_parts_in(u, org_id, board_id, per_list, cursor, CardOrder::AsRead).await
}

/// [`board_view_parts`], with the PostgreSQL cards first asked for in
/// `order` (tests ask [`CardOrder::Reversed`] to see the fallback work).
#[doc(hidden)]
pub async fn board_view_parts_in<U: Uow, F: Fn(Uuid, Uuid, &str) -> String + Send>(
    u: &mut U,
    org_id: Uuid,
    board_id: Uuid,
    per_list: u32,
    cursor: F,
    order: CardOrder,
) -> Result<Option<(Bytes, Parts)>, DomainError> {
    let Some(board) = load_board(u, org_id, board_id).await? else {
        return Ok(None);
    };
    let lists = lists_of_board(u, org_id, board_id).await?;
    let mut view = ViewParts::start(&board, &lists, per_list, cursor)?;
    if !lists.is_empty() {
        // The cards shown, the reserve, and one to know if more follow.
        let take = u64::from(per_list + RESERVE) + 1;
        match u.backend() {
            Backend::Postgres => {
                let mut args = Vec::with_capacity(lists.len() + 1);
                args.push(Arg::from(org_id));
                args.extend(lists.iter().map(|l| Arg::from(l.id)));
                // The rows as they come; if they break the order, once
                // more sorted by the database (see `CardOrder`).
                for order in [order, CardOrder::Sorted] {
                    let sql = first_cards_sql(lists.len(), take, order);
                    u.fetch_each(&sql, &args, |r| view.card(CardFields::from_row(r)?))
                        .await?;
                    if !view.disordered || order == CardOrder::Sorted {
                        break;
                    }
                    tracing::warn!(%board_id, "board view: cards out of order, read again sorted");
                    view = ViewParts::start(&board, &lists, per_list, view.cursor)?;
                }
            }
            Backend::Sqlite => {
                let sql = list_cards_sql(take);
                for list in &lists {
                    let args = [Arg::from(org_id), Arg::from(list.id)];
                    u.fetch_each(&sql, &args, |r| view.card(CardFields::from_row(r)?))
                        .await?;
                }
            }
        }
        // Sorted by the database and still out of order: not a view to serve.
        if view.disordered {
            return Err(DomainError::internal(anyhow::anyhow!(
                "board view: cards out of order"
            )));
        }
    }
    view.finish().map(Some)
}

/// The board view's JSON (of [`board_view_parts`]). `None`: no such board.
pub async fn board_view_json<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    board_id: Uuid,
    per_list: u32,
    cursor: impl Fn(Uuid, Uuid, &str) -> String + Send,
) -> Result<Option<Bytes>, DomainError> {
    Ok(board_view_parts(u, org_id, board_id, per_list, cursor)
        .await?
        .map(|(body, _)| body))
}

/// A card kept: id, where its position's text lies, order of changes
/// ([`CardFields::rev`]), and where its JSON lies: in the answer (shown)
/// or in the reserve's buffer (both ranges in that buffer).
type CardAt = (Uuid, std::ops::Range<usize>, i64, std::ops::Range<usize>);

/// One list as read: its head's place in the answer, the cards shown and
/// kept in reserve, and whether more follow.
#[derive(Default)]
struct ListAt {
    head: std::ops::Range<usize>,
    shown: Vec<CardAt>,
    reserve: Vec<CardAt>,
    more: bool,
}

/// The board view built as it is read: the answer's JSON written in one
/// buffer (the board's fields, each list's, each card shown, each list's
/// `next_cursor`), the reserve's cards in another, and where each piece
/// lies, so that [`Parts`] are slices of the answer.
struct ViewParts<'a, F> {
    out: Vec<u8>,
    head: std::ops::Range<usize>,
    lists: &'a [List],
    read: Vec<ListAt>,
    reserve: Vec<u8>,
    per_list: u32,
    cursor: F,
    /// A row came out of order (another list than the next one, or a
    /// position not after the one before): the rest are ignored and the
    /// caller reads the view again sorted (see [`CardOrder`]).
    disordered: bool,
}

fn json_err(e: serde_json::Error) -> DomainError {
    DomainError::internal(anyhow::Error::new(e))
}

/// Writes `value` (an object with fields) without its closing brace.
fn open_object(out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), DomainError> {
    serde_json::to_writer(&mut *out, value).map_err(json_err)?;
    match out.pop() {
        Some(b'}') => Ok(()),
        _ => Err(DomainError::internal(anyhow::anyhow!(
            "board view: expected an object with fields"
        ))),
    }
}

impl<'a, F: Fn(Uuid, Uuid, &str) -> String> ViewParts<'a, F> {
    fn start(
        board: &Board,
        lists: &'a [List],
        per_list: u32,
        cursor: F,
    ) -> Result<Self, DomainError> {
        // About 400 bytes a card.
        let mut out =
            Vec::with_capacity(1024 + lists.len() * (256 + per_list.min(200) as usize * 400));
        open_object(&mut out, board)?;
        let head = 0..out.len();
        out.extend_from_slice(b",\"lists\":[");
        Ok(Self {
            out,
            head,
            lists,
            read: Vec::with_capacity(lists.len()),
            reserve: Vec::new(),
            per_list,
            cursor,
            disordered: false,
        })
    }

    /// Closes the open list (if any) and opens the next one.
    fn next_list(&mut self) -> Result<(), DomainError> {
        if !self.read.is_empty() {
            self.close_list()?;
            self.out.push(b',');
        }
        let i = self.read.len();
        let start = self.out.len();
        open_object(&mut self.out, &self.lists[i])?;
        let head = start..self.out.len();
        self.out.extend_from_slice(b",\"tasks\":[");
        self.read.push(ListAt {
            head,
            ..ListAt::default()
        });
        Ok(())
    }

    fn close_list(&mut self) -> Result<(), DomainError> {
        self.out.extend_from_slice(b"],\"next_cursor\":");
        let i = self.read.len() - 1;
        let list = &self.read[i];
        let next = match list.shown.last() {
            Some((id, at, _, _)) if list.more || !list.reserve.is_empty() => {
                let position = self
                    .out
                    .get(at.clone())
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .ok_or_else(|| {
                        DomainError::internal(anyhow::anyhow!("board view: a card's position lost"))
                    })?;
                Some((self.cursor)(self.lists[i].id, *id, position))
            }
            _ => None,
        };
        serde_json::to_writer(&mut self.out, &next).map_err(json_err)?;
        self.out.push(b'}');
        Ok(())
    }

    /// A card of the rows (ordered by list, then position; anything else
    /// marks the view [`Self::disordered`]).
    fn card(&mut self, card: CardFields<'_>) -> Result<(), DomainError> {
        if self.disordered {
            return Ok(());
        }
        while self
            .read
            .len()
            .checked_sub(1)
            .is_none_or(|i| self.lists[i].id != card.list_id)
        {
            if self.read.len() >= self.lists.len() {
                // A card of a list already closed, or of none.
                self.disordered = true;
                return Ok(());
            }
            self.next_list()?;
        }
        let Some(list) = self.read.last_mut() else {
            return Ok(());
        };
        // The position of the card before it (the reserve follows the shown).
        let last = match (list.reserve.last(), list.shown.last()) {
            (Some((_, at, _, _)), _) => self.reserve.get(at.clone()),
            (None, Some((_, at, _, _))) => self.out.get(at.clone()),
            (None, None) => None,
        };
        if last.is_some_and(|p| p >= card.position.as_bytes()) {
            self.disordered = true;
            return Ok(());
        }
        let (buf, kept) = if list.shown.len() < self.per_list as usize {
            if !list.shown.is_empty() {
                self.out.push(b',');
            }
            (&mut self.out, &mut list.shown)
        } else if list.reserve.len() < RESERVE as usize {
            (&mut self.reserve, &mut list.reserve)
        } else {
            list.more = true;
            return Ok(());
        };
        let start = buf.len();
        let at = card.write_json(buf)?;
        // The cache orders cards by the position as written: it must be
        // the position itself (an order key needs no escaping).
        if buf.get(at.clone()) != Some(card.position.as_bytes()) {
            return Err(DomainError::internal(anyhow::anyhow!(
                "board view: a card's position written escaped"
            )));
        }
        kept.push((card.id, at, card.rev(), start..buf.len()));
        Ok(())
    }

    /// Writes the lists without cards left and closes the view.
    fn finish(mut self) -> Result<(Bytes, Parts), DomainError> {
        while self.read.len() < self.lists.len() {
            self.next_list()?;
        }
        if !self.read.is_empty() {
            self.close_list()?;
        }
        self.out.extend_from_slice(b"]}");
        let body = Bytes::from(self.out);
        let reserve = Bytes::from(self.reserve);
        let card = |buf: &Bytes, (id, at, version, range): CardAt| {
            let at = at.start - range.start..at.end - range.start;
            Card::at(id, version, buf.slice(range), at).ok_or_else(|| {
                DomainError::internal(anyhow::anyhow!(
                    "board view: a card's JSON without its position"
                ))
            })
        };
        let mut lists = Vec::with_capacity(self.lists.len());
        for (list, at) in self.lists.iter().zip(self.read) {
            let cards = at
                .shown
                .into_iter()
                .map(|c| card(&body, c))
                .chain(at.reserve.into_iter().map(|c| card(&reserve, c)))
                .collect::<Result<Vec<_>, _>>()?;
            lists.push(ListPart {
                id: list.id,
                head: body.slice(at.head),
                cards: std::sync::Arc::new(cards),
                beyond: if at.more { Beyond::Some } else { Beyond::None },
            });
        }
        let parts = Parts::new(body.slice(self.head), lists, self.per_list);
        Ok((body, parts))
    }
}
