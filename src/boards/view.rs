//! The board view (`GET …/boards/{board}`): the board, its lists in
//! order, and the first `per_list` cards of each, written as JSON while
//! the rows are read.
//!
//! Written once over [`Uow`]: on PostgreSQL it runs in the request's read
//! transaction; on SQLite on a connection of the rusqlite read pool
//! ([`crate::db::readers`]), where each row is read in place and written
//! straight into the answer (no row copied, no `Task` built).

use serde::Serialize;
use uuid::Uuid;

use super::{Board, load_board};
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

/// Writes the board view's JSON (the shape of [`super::BoardView`]) in
/// `u`, three statements whatever the board's size: the board, its lists,
/// and the first `per_list` cards of every list, each card written as its
/// row arrives. (One statement per list on SQLite, where no round trip is
/// saved, measured the same: 66.0 vs 64.5 ms p50.) `cursor` makes the `next_cursor` of a list from its last
/// card shown (list, id, position). `None`: no such board.
pub async fn board_view_json<U: Uow>(
    u: &mut U,
    org_id: Uuid,
    board_id: Uuid,
    per_list: u32,
    cursor: impl Fn(Uuid, Uuid, &str) -> String + Send,
) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(board) = load_board(u, org_id, board_id).await? else {
        return Ok(None);
    };
    let lists = lists_of_board(u, org_id, board_id).await?;
    // About 400 bytes a card.
    let guess = 1024 + lists.len() * (256 + per_list.min(200) as usize * 400);
    let mut view = ViewJson::start(Vec::with_capacity(guess), &board, &lists, per_list, cursor)?;
    if !lists.is_empty() {
        let sql = first_cards_sql(u.backend(), lists.len(), u64::from(per_list) + 1);
        let mut args = Vec::with_capacity(lists.len() + 1);
        args.push(Arg::from(org_id));
        args.extend(lists.iter().map(|l| Arg::from(l.id)));
        u.fetch_each(&sql, &args, |r| view.card(summary_from_row(r)?))
            .await?;
    }
    view.finish().map(Some)
}

/// The board view's JSON written as it is read: the board's fields, then
/// each list's fields with `tasks` and `next_cursor` (what serializing
/// [`super::BoardView`] gives, without holding every card first).
struct ViewJson<'a, F> {
    out: Vec<u8>,
    lists: &'a [List],
    /// The list being written (cards go to it), and how many it shows.
    open: Option<usize>,
    shown: u32,
    /// The open list has more cards than it shows.
    more: bool,
    /// The last card shown in the open list: id and position.
    last: Option<(Uuid, String)>,
    per_list: u32,
    cursor: F,
}

fn json_err(e: serde_json::Error) -> ApiError {
    ApiError::internal(anyhow::Error::new(e))
}

impl<'a, F: Fn(Uuid, Uuid, &str) -> String> ViewJson<'a, F> {
    fn start(
        mut out: Vec<u8>,
        board: &Board,
        lists: &'a [List],
        per_list: u32,
        cursor: F,
    ) -> Result<Self, ApiError> {
        Self::open_object(&mut out, board)?;
        out.extend_from_slice(b",\"lists\":[");
        Ok(Self {
            out,
            lists,
            open: None,
            shown: 0,
            more: false,
            last: None,
            per_list,
            cursor,
        })
    }

    /// Writes `value` (an object with fields) without its closing brace.
    fn open_object(out: &mut Vec<u8>, value: &impl Serialize) -> Result<(), ApiError> {
        serde_json::to_writer(&mut *out, value).map_err(json_err)?;
        match out.pop() {
            Some(b'}') => Ok(()),
            _ => Err(ApiError::internal(anyhow::anyhow!(
                "board view: expected an object with fields"
            ))),
        }
    }

    /// Closes the open list (if any) and opens the next one.
    fn next_list(&mut self) -> Result<(), ApiError> {
        let i = match self.open {
            Some(i) => {
                self.close_list()?;
                i + 1
            }
            None => 0,
        };
        if i > 0 {
            self.out.push(b',');
        }
        Self::open_object(&mut self.out, &self.lists[i])?;
        self.out.extend_from_slice(b",\"tasks\":[");
        self.open = Some(i);
        self.shown = 0;
        self.more = false;
        self.last = None;
        Ok(())
    }

    fn close_list(&mut self) -> Result<(), ApiError> {
        self.out.extend_from_slice(b"],\"next_cursor\":");
        let next = match (&self.last, self.open) {
            (Some((id, position)), Some(i)) if self.more => {
                Some((self.cursor)(self.lists[i].id, *id, position))
            }
            _ => None,
        };
        serde_json::to_writer(&mut self.out, &next).map_err(json_err)?;
        self.out.push(b'}');
        Ok(())
    }

    /// A card of the rows (ordered by list, then position).
    fn card(&mut self, card: TaskSummary) -> Result<(), ApiError> {
        while self.open.is_none_or(|i| self.lists[i].id != card.list_id) {
            if self.open.is_some_and(|i| i + 1 >= self.lists.len()) {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "board view: a card of no list, or out of order"
                )));
            }
            self.next_list()?;
        }
        if self.shown == self.per_list {
            self.more = true;
            return Ok(());
        }
        if self.shown > 0 {
            self.out.push(b',');
        }
        self.shown += 1;
        serde_json::to_writer(&mut self.out, &card).map_err(json_err)?;
        self.last = Some((card.id, card.position));
        Ok(())
    }

    /// Writes the lists without cards left and closes the view.
    fn finish(mut self) -> Result<Vec<u8>, ApiError> {
        while self.open.map_or(0, |i| i + 1) < self.lists.len() {
            self.next_list()?;
        }
        if self.open.is_some() {
            self.close_list()?;
        }
        self.out.extend_from_slice(b"]}");
        Ok(self.out)
    }
}
