//! A card's JSON (a [`crate::tasks::TaskSummary`] as the board view carries it), written
//! by hand from a row or a task, byte for byte what `serde_json` writes for
//! the `TaskSummary` (the unit tests compare both).
//!
//! Why by hand: the board view writes ~2 000 cards per uncached read, and
//! `perf` put about a quarter of its time in building and serialising
//! `TaskSummary`s — mostly escaping ids and times written a character at a
//! time through `collect_str`, parsing SQLite's time text into `DateTime`
//! only to print it again, and allocating the strings. Here a row's text
//! (title, position, kept ids, times) is borrowed where the backend allows
//! (SQLite: read in place), ids are written from their bytes, and a time
//! SQLite keeps in canonical form ([`crate::db::writer::time_text`]) is
//! copied with its `+00:00` written as `Z`; anything else goes through
//! `chrono` as before.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Priority, Status, Task, id_list};
use crate::db::change::CardChange;
use crate::db::uow::{DbError, RawTime, RowRef};
pub use crate::http::rowjson::{opt_time, time};
use crate::http::rowjson::{time_value, write_opt_time, write_str, write_time, write_uuid};

/// The columns of a card with the prefix `$p`, in the order
/// [`CardFields::from_row`] reads them (the relation ids as the task row
/// keeps them: [`super::ids_text`]).
macro_rules! card_columns {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "org_id, ",
            $p,
            "board_id, ",
            $p,
            "list_id, ",
            $p,
            "title, ",
            $p,
            "status, ",
            $p,
            "priority, ",
            $p,
            "position, ",
            $p,
            "due_date, ",
            $p,
            "created_by, ",
            $p,
            "completed_at, ",
            $p,
            "version, ",
            $p,
            "comment_count, ",
            $p,
            "created_at, ",
            $p,
            "updated_at, ",
            $p,
            "assignee_ids, ",
            $p,
            "label_ids, ",
            $p,
            "comment_rev"
        )
    };
}

/// The columns of a card of `tasks t`.
pub const CARD_COLUMNS: &str = card_columns!("t.");

/// How many columns [`CARD_COLUMNS`] has.
pub const CARD_WIDTH: usize = 18;

/// The columns of a card as an `UPDATE tasks … RETURNING` names them
/// (SQLite's `RETURNING` takes no table alias).
pub const CARD_RETURNING: &str = card_columns!("");

/// Assignee or label ids: as the task row keeps them, or a list.
pub enum Ids<'a> {
    /// Kept text (32 lower-case hex digits each, sorted, comma-separated).
    Kept(Cow<'a, str>),
    /// Ids in order.
    List(&'a [Uuid]),
}

/// What a card shows, borrowed from a row or a task.
pub struct CardFields<'a> {
    /// Task id.
    pub id: Uuid,
    org_id: Uuid,
    /// The board.
    pub board_id: Uuid,
    /// The list.
    pub list_id: Uuid,
    title: Cow<'a, str>,
    status: Status,
    priority: Priority,
    /// Order key in its list.
    pub position: Cow<'a, str>,
    assignee_ids: Ids<'a>,
    label_ids: Ids<'a>,
    due_date: Option<RawTime<'a>>,
    created_by: Uuid,
    completed_at: Option<RawTime<'a>>,
    /// The task's version.
    pub version: i64,
    comment_count: i64,
    /// Comments added or removed so far (see [`CardFields::rev`]).
    comment_rev: i64,
    created_at: RawTime<'a>,
    updated_at: RawTime<'a>,
}

impl<'a> CardFields<'a> {
    /// A card from a row of [`CARD_COLUMNS`].
    pub fn from_row(r: RowRef<'a, '_>) -> Result<Self, DbError> {
        let mut card = Self::read(r, 0)?;
        card.comment_rev = r.get(17)?;
        Ok(card)
    }

    /// A whole task from a row of [`super::TASK_COLUMNS`] (the card's
    /// columns with the description after the title, without
    /// `comment_rev`): the card and the description, for
    /// [`Self::write_task_json`].
    pub fn from_task_row(r: RowRef<'a, '_>) -> Result<(Self, Cow<'a, str>), DbError> {
        Ok((Self::read(r, 1)?, r.text(5)?))
    }

    /// The card's fields; those after the title `shift` columns further on.
    fn read(r: RowRef<'a, '_>, shift: usize) -> Result<Self, DbError> {
        let at = |i: usize| i + shift;
        let status = r.text(at(5))?;
        let priority: i16 = r.get(at(6))?;
        Ok(Self {
            id: r.get(0)?,
            org_id: r.get(1)?,
            board_id: r.get(2)?,
            list_id: r.get(3)?,
            title: r.text(4)?,
            status: Status::try_from(&*status).map_err(|e| DbError::Decode(at(5), e))?,
            priority: Priority::try_from(priority).map_err(|e| DbError::Decode(at(6), e))?,
            position: r.text(at(7))?,
            due_date: r.time(at(8))?,
            created_by: r.get(at(9))?,
            completed_at: r.time(at(10))?,
            version: r.get(at(11))?,
            comment_count: r.get(at(12))?,
            created_at: r.time(at(13))?.ok_or_else(|| null(at(13)))?,
            updated_at: r.time(at(14))?.ok_or_else(|| null(at(14)))?,
            assignee_ids: Ids::Kept(r.text(at(15))?),
            label_ids: Ids::Kept(r.text(at(16))?),
            comment_rev: 0,
        })
    }

    /// The card once a comment is added to its task: one more counted,
    /// its revision moved on (as [`crate::comments`]' count statement
    /// writes them).
    pub fn with_comment_added(mut self) -> Self {
        self.comment_count += 1;
        self.comment_rev += 1;
        self
    }

    /// The priority.
    pub fn priority(&self) -> Priority {
        self.priority
    }

    /// When the task last changed (`Err` for a stored text that is no time).
    pub fn updated_at(&self) -> Result<DateTime<Utc>, DbError> {
        time_value(&self.updated_at, 14)
    }

    /// The due date (`Err` for a stored text that is no time).
    pub fn due_date(&self) -> Result<Option<DateTime<Utc>>, DbError> {
        self.due_date.as_ref().map(|t| time_value(t, 8)).transpose()
    }

    /// The card's place in the order of its changes: every task write
    /// moves the version by one, every comment added or removed the
    /// comment count's revision by one, each holding the task row, so the
    /// sum grows with every change in commit order (migration 0011). The
    /// board-view cache skips a change older than the card it keeps by it.
    pub fn rev(&self) -> i64 {
        self.version + self.comment_rev
    }

    /// What a change did to this card, for the cached views ([`crate::cache`]):
    /// it is now in its list at its position, with this JSON; `was`: the
    /// list it was in before (`None` for a new card). `Err` only for a
    /// stored time that is not one.
    pub fn change(&self, was: Option<Uuid>) -> Result<CardChange, DbError> {
        let mut json = Vec::with_capacity(512);
        self.write_json(&mut json)?;
        Ok(CardChange::Put {
            id: self.id,
            list_id: self.list_id,
            was,
            position: self.position.clone().into_owned(),
            version: self.rev(),
            json: bytes::Bytes::from(json),
        })
    }

    /// The card of a task whose comments were added or removed
    /// `comment_rev` times.
    pub fn of_task(t: &'a Task, comment_rev: i64) -> Self {
        Self {
            id: t.id,
            org_id: t.org_id,
            board_id: t.board_id,
            list_id: t.list_id,
            title: Cow::Borrowed(&t.title),
            status: t.status,
            priority: t.priority,
            position: Cow::Borrowed(&t.position),
            assignee_ids: Ids::List(&t.assignee_ids),
            label_ids: Ids::List(&t.label_ids),
            due_date: t.due_date.map(RawTime::Value),
            created_by: t.created_by,
            completed_at: t.completed_at.map(RawTime::Value),
            version: t.version,
            comment_count: t.comment_count,
            comment_rev,
            created_at: RawTime::Value(t.created_at),
            updated_at: RawTime::Value(t.updated_at),
        }
    }

    /// Appends the card's JSON to `out` (what `serde_json` writes for its
    /// `TaskSummary`); gives where in `out` its position's text lies
    /// (between the quotes, as written). Fails only on a stored time that
    /// is not one.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<std::ops::Range<usize>, DbError> {
        self.write(out, None)
    }

    /// Appends the whole task's JSON to `out` (what `serde_json` writes for
    /// its [`Task`]: the card with `description` after the title).
    pub fn write_task_json(&self, out: &mut Vec<u8>, description: &str) -> Result<(), DbError> {
        self.write(out, Some(description)).map(drop)
    }

    fn write(
        &self,
        out: &mut Vec<u8>,
        description: Option<&str>,
    ) -> Result<std::ops::Range<usize>, DbError> {
        out.extend_from_slice(b"{\"id\":");
        write_uuid(out, &self.id);
        out.extend_from_slice(b",\"org_id\":");
        write_uuid(out, &self.org_id);
        out.extend_from_slice(b",\"board_id\":");
        write_uuid(out, &self.board_id);
        out.extend_from_slice(b",\"list_id\":");
        write_uuid(out, &self.list_id);
        out.extend_from_slice(b",\"title\":");
        write_str(out, &self.title);
        if let Some(d) = description {
            out.extend_from_slice(b",\"description\":");
            write_str(out, d);
        }
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(b"\",\"priority\":\"");
        out.extend_from_slice(priority_name(self.priority).as_bytes());
        out.extend_from_slice(b"\",\"position\":");
        let position = out.len() + 1;
        write_str(out, &self.position);
        let position = position..out.len() - 1;
        out.extend_from_slice(b",\"assignee_ids\":");
        write_ids(out, &self.assignee_ids);
        out.extend_from_slice(b",\"label_ids\":");
        write_ids(out, &self.label_ids);
        out.extend_from_slice(b",\"due_date\":");
        write_opt_time(out, self.due_date.as_ref(), 8)?;
        out.extend_from_slice(b",\"created_by\":");
        write_uuid(out, &self.created_by);
        out.extend_from_slice(b",\"completed_at\":");
        write_opt_time(out, self.completed_at.as_ref(), 10)?;
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.version).as_bytes());
        out.extend_from_slice(b",\"comment_count\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.comment_count).as_bytes());
        out.extend_from_slice(b",\"created_at\":");
        write_time(out, &self.created_at, 13)?;
        out.extend_from_slice(b",\"updated_at\":");
        write_time(out, &self.updated_at, 14)?;
        out.push(b'}');
        Ok(position)
    }
}

fn null(i: usize) -> DbError {
    DbError::Decode(i, "expected a time, found NULL".into())
}

/// The name a priority is serialised as.
fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Low => "low",
        Priority::Medium => "medium",
        Priority::High => "high",
        Priority::Urgent => "urgent",
    }
}

fn write_ids(out: &mut Vec<u8>, ids: &Ids<'_>) {
    out.push(b'[');
    match ids {
        Ids::List(list) => write_id_list(out, list),
        Ids::Kept(text) => {
            if !write_kept_ids(out, text) {
                write_id_list(out, &id_list(text));
            }
        }
    }
    out.push(b']');
}

fn write_id_list(out: &mut Vec<u8>, ids: &[Uuid]) {
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_uuid(out, id);
    }
}

/// Writes kept ids in canonical form (each 32 lower-case hex digits, in
/// ascending order, as [`super::ids_text`] writes them) straight from the
/// text; `false` (nothing written) for any other text, which [`id_list`]
/// then reads as before.
fn write_kept_ids(out: &mut Vec<u8>, text: &str) -> bool {
    if text.is_empty() {
        return true;
    }
    let start = out.len();
    let mut prev: Option<&str> = None;
    for id in text.split(',') {
        let canonical = id.len() == 32
            && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && prev.is_none_or(|p| p <= id);
        if !canonical {
            out.truncate(start);
            return false;
        }
        if prev.is_some() {
            out.push(b',');
        }
        prev = Some(id);
        let b = id.as_bytes();
        out.push(b'"');
        for (k, part) in [&b[0..8], &b[8..12], &b[12..16], &b[16..20], &b[20..32]]
            .into_iter()
            .enumerate()
        {
            if k > 0 {
                out.push(b'-');
            }
            out.extend_from_slice(part);
        }
        out.push(b'"');
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::writer::time_text;
    use crate::http::rowjson::canonical_utc;
    use crate::tasks::TaskSummary;

    fn time(secs: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, nanos).expect("time")
    }

    #[test]
    fn card_width_counts_the_card_columns() {
        assert_eq!(CARD_COLUMNS.split(", ").count(), CARD_WIDTH);
        assert_eq!(CARD_RETURNING.split(", ").count(), CARD_WIDTH);
    }

    fn task(
        title: &str,
        due: Option<DateTime<Utc>>,
        t: DateTime<Utc>,
        ids: Vec<Uuid>,
        k: usize,
    ) -> Task {
        Task {
            id: Uuid::from_u128(0x0191_2d4c_aa00_7000_8000_0000_0000_00ff),
            org_id: Uuid::from_u128(1),
            board_id: Uuid::from_u128(u128::MAX),
            list_id: Uuid::from_u128(0xabcdef),
            title: title.to_owned(),
            description: "not on a card".to_owned(),
            status: [Status::Todo, Status::InProgress, Status::Done][k % 3],
            priority: [
                Priority::Low,
                Priority::Medium,
                Priority::High,
                Priority::Urgent,
            ][k % 4],
            position: "a0V".to_owned(),
            assignee_ids: ids.clone(),
            label_ids: ids.into_iter().rev().take(k % 3).collect(),
            due_date: due,
            created_by: Uuid::from_u128(7),
            completed_at: k.is_multiple_of(2).then_some(t),
            version: i64::MAX,
            comment_count: -3,
            created_at: t,
            updated_at: time(0, 0),
        }
    }

    /// Times with every fraction width, at the ends of the range, around
    /// leap days, and a fixed pseudo-random spread.
    fn times() -> Vec<DateTime<Utc>> {
        let mut out = vec![
            time(0, 0),
            time(0, 1),
            time(1, 1_000),
            time(1, 1_000_000),
            time(1, 120_000_000),
            time(1, 123_456_000),
            time(1, 123_456_789),
            time(951_782_400, 0),               // 2000-02-29
            time(-62_135_596_800, 0),           // 0001-01-01
            time(253_402_300_799, 999_999_999), // 9999-12-31T23:59:59.999999999
            time(253_402_300_800, 0),           // year 10000
            time(-62_167_219_200, 0),           // year 0
            time(-62_167_219_201, 0),           // year -1
            time(1_000_019, 1_999_999_999),     // a leap second
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = (x % 4_102_444_800) as i64;
            let nanos = match x % 4 {
                0 => 0,
                1 => (x >> 20) as u32 % 1000 * 1_000_000,
                2 => (x >> 20) as u32 % 1_000_000 * 1000,
                _ => (x >> 20) as u32 % 1_000_000_000,
            };
            out.push(time(secs, nanos));
        }
        out
    }

    fn written(f: &CardFields<'_>) -> String {
        let mut out = b"[".to_vec();
        let at = f.write_json(&mut out).expect("written");
        // Where it says the position is: the position, between quotes.
        assert_eq!(&out[at.clone()], f.position.as_bytes());
        assert_eq!((out[at.start - 1], out[at.end]), (b'"', b'"'));
        String::from_utf8(out.split_off(1)).expect("utf-8")
    }

    #[test]
    fn a_card_is_what_serde_writes_for_its_tasks_summary() {
        let ids = vec![
            Uuid::from_u128(3),
            Uuid::from_u128(u128::MAX - 1),
            Uuid::from_u128(9),
        ];
        for title in [
            "plain",
            "q\"uote \\ back",
            "tab\tnew\nline \u{1} \u{7f} é 😀 </script>",
        ] {
            for (k, t) in times().into_iter().enumerate() {
                for due in [None, Some(t)] {
                    let task = task(title, due, t, ids.clone(), k);
                    let want = serde_json::to_string(&TaskSummary::from(task.clone()));
                    assert_eq!(
                        written(&CardFields::of_task(&task, 0)),
                        want.expect("serde")
                    );
                }
            }
        }
    }

    #[test]
    fn a_task_is_what_serde_writes_for_it() {
        let ids = vec![Uuid::from_u128(7), Uuid::from_u128(2)];
        for description in ["", "plain", "q\"uote \\ tab\t \u{1} é 😀 </script>"] {
            for (k, t) in times().into_iter().enumerate().take(200) {
                for due in [None, Some(t)] {
                    let mut task = task("title", due, t, ids.clone(), k);
                    task.description = description.to_owned();
                    let mut out = Vec::new();
                    CardFields::of_task(&task, 3)
                        .write_task_json(&mut out, &task.description)
                        .expect("written");
                    assert_eq!(
                        String::from_utf8(out).expect("utf-8"),
                        serde_json::to_string(&task).expect("serde")
                    );
                }
            }
        }
    }

    #[test]
    fn stored_text_is_written_as_its_value_would_be() {
        for t in times() {
            let text = time_text(t);
            let mut out = Vec::new();
            let written = write_time(&mut out, &RawTime::Text(Cow::Borrowed(&text)), 0);
            // Years outside 0–9999 are stored with a sign chrono does not
            // read back: refused, as the decoding of a `DateTime` refuses them.
            if crate::db::uow::parse_time(&text).is_err() {
                assert!(written.is_err(), "{text}");
                continue;
            }
            written.expect("time");
            let want = serde_json::to_string(&t).expect("serde");
            assert_eq!(String::from_utf8(out).expect("utf-8"), want, "{text}");
        }
        // Not canonical: parsed, then written as the value.
        for (text, want) in [
            (
                "2026-01-02T03:04:05.120000+00:00",
                "\"2026-01-02T03:04:05.120Z\"",
            ),
            ("2026-01-02T03:04:05.000+00:00", "\"2026-01-02T03:04:05Z\""),
            ("2026-01-02 03:04:05+00:00", "\"2026-01-02T03:04:05Z\""),
            ("2026-01-02T04:04:05+01:00", "\"2026-01-02T03:04:05Z\""),
            (
                "2026-01-02T03:04:05.5+00:00",
                "\"2026-01-02T03:04:05.500Z\"",
            ),
        ] {
            assert!(canonical_utc(text).is_none(), "{text}");
            let mut out = Vec::new();
            write_time(&mut out, &RawTime::Text(Cow::Borrowed(text)), 0).expect("time");
            assert_eq!(String::from_utf8(out).expect("utf-8"), want);
        }
        // Out of range, or not a time at all: refused as chrono refuses it.
        for text in [
            "2026-02-30T00:00:00+00:00",
            "2026-13-01T00:00:00+00:00",
            "2026-01-01T24:00:00+00:00",
            "soon",
        ] {
            assert!(canonical_utc(text).is_none(), "{text}");
            let mut out = Vec::new();
            assert!(
                write_time(&mut out, &RawTime::Text(Cow::Borrowed(text)), 3).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn times_serialise_as_chrono_serialises_them() {
        #[derive(serde::Serialize)]
        struct T {
            #[serde(serialize_with = "super::time")]
            t: DateTime<Utc>,
            #[serde(serialize_with = "super::opt_time")]
            o: Option<DateTime<Utc>>,
        }
        #[derive(serde::Serialize)]
        struct Chrono {
            t: DateTime<Utc>,
            o: Option<DateTime<Utc>>,
        }
        for t in times() {
            for o in [None, Some(t)] {
                let ours = serde_json::to_string(&T { t, o }).expect("ours");
                assert_eq!(
                    ours,
                    serde_json::to_string(&Chrono { t, o }).expect("chrono")
                );
            }
        }
    }

    #[test]
    fn kept_ids_are_written_as_their_list() {
        let a = Uuid::from_u128(0x0191_2d4c_aa00_7000_8000_0000_0000_00ff);
        let b = Uuid::from_u128(u128::MAX);
        let cases = [
            String::new(),
            super::super::ids_text(&[a]),
            super::super::ids_text(&[b, a]),
            format!("{},{}", b.simple(), a.simple()), // out of order
            format!("{},oops", a.simple()),           // not an id
            format!("{}", a.hyphenated()),            // another form
            format!("{},{}", a.simple(), a.simple()), // twice
        ];
        for text in cases {
            let mut out = Vec::new();
            write_ids(&mut out, &Ids::Kept(Cow::Borrowed(&text)));
            let want = serde_json::to_string(&id_list(&text)).expect("serde");
            assert_eq!(String::from_utf8(out).expect("utf-8"), want, "{text}");
        }
    }
}
