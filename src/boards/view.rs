//! The board view (`GET …/boards/{board}`): the board, its lists in
//! order, and the first `per_list` cards of each, written as JSON while
//! the rows are read.
//!
//! Written once over [`Uow`]: on PostgreSQL it runs in the request's read
//! transaction; on SQLite on a connection of the rusqlite read pool
//! ([`crate::db::readers`]), where each row is read in place and written
//! straight into the answer (no row copied, no `Task` built).
//!
//! The view is built in parts ([`Parts`]: the board's JSON, each list's,
//! each card's) so that the board-view cache can patch a cached view with
//! a task's change ([`crate::tasks::write::card_change`]) instead of reading it again.

use bytes::Bytes;
use serde::Serialize;
use uuid::Uuid;

use super::{Board, load_board};
use crate::cache::parts::{Beyond, Card, ListPart, Parts, RESERVE};
use crate::db::uow::{Arg, DbError, RowRef, Uow};
use crate::error::ApiError;
use crate::lists::{List, lists_of_board};
use crate::tasks::{Priority, Status, TaskSummary, id_list, relation_columns};

/// Cards per list in the board view when `per_list` is not given.
pub const DEFAULT_PER_LIST: u32 = 200;
/// Most cards per list a board view carries.
pub const MAX_PER_LIST: u32 = 1000;

/// The columns of a card summary, in the order [`summary_from_row`] reads
/// them (the relation ids follow, see [`relation_columns`]).
const SUMMARY_COLUMNS: &str = "t.id, t.org_id, t.board_id, t.list_id, t.title, t.status, \
     t.priority, t.position, t.due_date, t.created_by, t.completed_at, t.version, \
     t.comment_count, t.created_at, t.updated_at";

/// A card summary from a row of [`SUMMARY_COLUMNS`] and the relation ids.
fn summary_from_row(r: RowRef<'_, '_>) -> Result<TaskSummary, DbError> {
    let status: String = r.get(5)?;
    let priority: i16 = r.get(6)?;
    Ok(TaskSummary {
        id: r.get(0)?,
        org_id: r.get(1)?,
        board_id: r.get(2)?,
        list_id: r.get(3)?,
        title: r.get(4)?,
        status: Status::try_from(status).map_err(|e| DbError::Decode(5, e))?,
        priority: Priority::try_from(priority).map_err(|e| DbError::Decode(6, e))?,
        position: r.get(7)?,
        due_date: r.get(8)?,
        created_by: r.get(9)?,
        completed_at: r.get(10)?,
        version: r.get(11)?,
        comment_count: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        assignee_ids: id_list(&r.get::<String>(15)?),
        label_ids: id_list(&r.get::<String>(16)?),
    })
}

/// The statement of the first `take` cards of each of `lists` lists (one
/// `LIMIT`ed index range of `(org_id, list_id, position)` each), ordered
/// by list, then position; `$1` is the organization, `$2…` the lists.
fn first_cards_sql(backend: crate::db::Backend, lists: usize, take: u64) -> String {
    let parts: Vec<String> = (0..lists)
        .map(|i| {
            format!(
                "SELECT * FROM (SELECT {SUMMARY_COLUMNS}, {i} AS part FROM tasks t \
                 WHERE t.org_id = $1 AND t.list_id = ${} ORDER BY t.position LIMIT {take}) p{i}",
                i + 2
            )
        })
        .collect();
    format!(
        "SELECT {SUMMARY_COLUMNS}{} FROM ({}) t ORDER BY t.part, t.position",
        relation_columns(backend),
        parts.join(" UNION ALL ")
    )
}

/// Reads the board view in `u` as [`Parts`] (the shape of
/// [`super::BoardView`] in pieces the cache can patch), three statements
/// whatever the board's size: the board, its lists, and the first
/// `per_list` cards of every list (and up to [`RESERVE`] more, kept by the
/// cache to replace cards that leave a page), each card written as JSON as its row
/// arrives. (One statement per list on SQLite, where no round trip is
/// saved, measured the same: 66.0 vs 64.5 ms p50.) `None`: no such board.
pub async fn board_view_parts<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    board_id: Uuid,
    per_list: u32,
) -> Result<Option<Parts>, ApiError> {
    let Some(board) = load_board(u, org_id, board_id).await? else {
        return Ok(None);
    };
    let lists = lists_of_board(u, org_id, board_id).await?;
    let mut view = ViewParts::start(&board, &lists, per_list)?;
    if !lists.is_empty() {
        // The cards shown, the reserve, and one to know if more follow.
        let sql = first_cards_sql(u.backend(), lists.len(), u64::from(per_list + RESERVE) + 1);
        let mut args = Vec::with_capacity(lists.len() + 1);
        args.push(Arg::from(org_id));
        args.extend(lists.iter().map(|l| Arg::from(l.id)));
        u.fetch_each(&sql, &args, |r| view.card(summary_from_row(r)?))
            .await?;
    }
    view.finish().map(Some)
}

/// The board view's JSON ([`board_view_parts`] rendered); `cursor` makes
/// the `next_cursor` of a list from its last card shown (list, id,
/// position). `None`: no such board.
pub async fn board_view_json<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    board_id: Uuid,
    per_list: u32,
    cursor: impl Fn(Uuid, Uuid, &str) -> String + Send,
) -> Result<Option<Vec<u8>>, ApiError> {
    Ok(board_view_parts(u, org_id, board_id, per_list)
        .await?
        .map(|p| p.render(&cursor)))
}

/// A card read: id, position, version, and where its JSON lies in the
/// buffer.
type CardAt = (Uuid, String, i64, std::ops::Range<usize>);

/// The board view built as it is read: the board's fields, each list's
/// fields, and each card's JSON (written into one buffer, then shared by
/// slices), with what orders and versions it.
struct ViewParts<'a> {
    head: Bytes,
    lists: &'a [List],
    heads: Vec<Bytes>,
    /// Per list: its cards (id, position, version, bytes of `buf`), and
    /// whether it has more than it shows.
    shown: Vec<(Vec<CardAt>, bool)>,
    buf: Vec<u8>,
    per_list: u32,
}

fn json_err(e: serde_json::Error) -> ApiError {
    ApiError::internal(anyhow::Error::new(e))
}

/// `value` (an object with fields) as JSON without its closing brace.
fn open_object(value: &impl Serialize) -> Result<Bytes, ApiError> {
    let mut out = serde_json::to_vec(value).map_err(json_err)?;
    match out.pop() {
        Some(b'}') => Ok(Bytes::from(out)),
        _ => Err(ApiError::internal(anyhow::anyhow!(
            "board view: expected an object with fields"
        ))),
    }
}

impl<'a> ViewParts<'a> {
    fn start(board: &Board, lists: &'a [List], per_list: u32) -> Result<Self, ApiError> {
        Ok(Self {
            head: open_object(board)?,
            lists,
            heads: lists.iter().map(open_object).collect::<Result<_, _>>()?,
            shown: Vec::with_capacity(lists.len()),
            // About 400 bytes a card.
            buf: Vec::with_capacity(lists.len() * per_list.min(200) as usize * 400),
            per_list,
        })
    }

    /// A card of the rows (ordered by list, then position).
    fn card(&mut self, card: TaskSummary) -> Result<(), ApiError> {
        while self
            .shown
            .len()
            .checked_sub(1)
            .is_none_or(|i| self.lists[i].id != card.list_id)
        {
            if self.shown.len() >= self.lists.len() {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "board view: a card of no list, or out of order"
                )));
            }
            self.shown.push((Vec::new(), false));
        }
        let Some((cards, more)) = self.shown.last_mut() else {
            return Ok(());
        };
        if cards.len() >= (self.per_list + RESERVE) as usize {
            *more = true;
            return Ok(());
        }
        let start = self.buf.len();
        serde_json::to_writer(&mut self.buf, &card).map_err(json_err)?;
        cards.push((card.id, card.position, card.version, start..self.buf.len()));
        Ok(())
    }

    fn finish(self) -> Result<Parts, ApiError> {
        let buf = Bytes::from(self.buf);
        let mut shown = self.shown.into_iter();
        let lists = self
            .lists
            .iter()
            .zip(self.heads)
            .map(|(list, head)| {
                let (cards, more) = shown.next().unwrap_or_default();
                ListPart {
                    id: list.id,
                    head,
                    cards: std::sync::Arc::new(
                        cards
                            .into_iter()
                            .map(|(id, position, version, range)| Card {
                                id,
                                position,
                                version,
                                json: buf.slice(range),
                            })
                            .collect(),
                    ),
                    beyond: if more { Beyond::Some } else { Beyond::None },
                }
            })
            .collect();
        Ok(Parts::new(self.head, lists, self.per_list))
    }
}
