//! JSON answers written from database rows as they arrive, byte for byte
//! what `serde_json` writes for the same values: ids from their bytes,
//! strings escaped by `serde_json`, and times as `chrono`'s `Serialize`
//! writes them (a time SQLite keeps in canonical form,
//! [`crate::db::writer::time_text`], copied with its `+00:00` written as
//! `Z`). The board view's cards, filtered task pages and the audit log's
//! pages are written with these (see [`crate::tasks::card`]).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use uuid::Uuid;

use crate::db::uow::{DbError, RawTime};

pub fn write_uuid(out: &mut Vec<u8>, id: &Uuid) {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

/// A JSON string, escaped as `serde_json` escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail; a `&str` always serialises.
    let _ = serde_json::to_writer(&mut *out, s);
}

pub fn write_opt_time(
    out: &mut Vec<u8>,
    t: Option<&RawTime<'_>>,
    col: usize,
) -> Result<(), DbError> {
    match t {
        Some(t) => write_time(out, t, col),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// A time as `chrono`'s `Serialize` writes it: RFC 3339 in UTC with `Z`
/// and as many fraction digits as needed (0, 3, 6 or 9).
/// The time a row holds (`col`: its column, for the error).
pub fn time_value(t: &RawTime<'_>, col: usize) -> Result<DateTime<Utc>, DbError> {
    match t {
        RawTime::Text(text) => {
            crate::db::uow::parse_time(text).map_err(|e| DbError::Decode(col, e))
        }
        RawTime::Value(v) => Ok(*v),
    }
}

pub fn write_time(out: &mut Vec<u8>, t: &RawTime<'_>, col: usize) -> Result<(), DbError> {
    match t {
        RawTime::Text(text) => {
            if let Some(head) = canonical_utc(text) {
                out.push(b'"');
                out.extend_from_slice(head.as_bytes());
                out.extend_from_slice(b"Z\"");
                Ok(())
            } else {
                let value =
                    crate::db::uow::parse_time(text).map_err(|e| DbError::Decode(col, e))?;
                write_time_value(out, value);
                Ok(())
            }
        }
        RawTime::Value(v) => {
            write_time_value(out, *v);
            Ok(())
        }
    }
}

/// `text` without its `+00:00` when it is exactly what `chrono` would
/// print before the `Z` of the same time: `YYYY-MM-DDTHH:MM:SS`, then no
/// fraction or one of 3, 6 or 9 digits that could not be shorter, then
/// `+00:00`, every field in range.
pub fn canonical_utc(text: &str) -> Option<&str> {
    let head = text.strip_suffix("+00:00")?;
    let b = head.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let (month, day) = (num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let year = num(0..4)?;
    let in_range = (1..=12).contains(&month)
        && (1..=days_in(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    if !in_range {
        return None;
    }
    match &b[19..] {
        [] => Some(head),
        [b'.', frac @ ..]
            if matches!(frac.len(), 3 | 6 | 9) && frac.iter().all(u8::is_ascii_digit) =>
        {
            // Shortest: its last three digits are not all zero.
            (frac[frac.len() - 3..] != *b"000").then_some(head)
        }
        _ => None,
    }
}

pub fn days_in(year: u32, month: u32) -> u32 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub fn write_time_value(out: &mut Vec<u8>, t: DateTime<Utc>) {
    let mut buf = [0u8; TIME_MAX];
    out.push(b'"');
    match time_text_utc(t, &mut buf) {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes()),
    }
    out.push(b'"');
}

/// The longest [`time_text_utc`]: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub const TIME_MAX: usize = 30;

/// `t` as `chrono`'s `Serialize` writes it (RFC 3339, `Z`, 0, 3, 6 or 9
/// fraction digits), in `buf`; `None` for years outside 0–9999 and leap
/// seconds (then `chrono`'s own form, which differs in width).
pub fn time_text_utc(t: DateTime<Utc>, buf: &mut [u8; TIME_MAX]) -> Option<&str> {
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&t.year()) || nanos >= 1_000_000_000 {
        return None;
    }
    let (frac, width) = if nanos == 0 {
        (0, 0)
    } else if nanos.is_multiple_of(1_000_000) {
        (nanos / 1_000_000, 3)
    } else if nanos.is_multiple_of(1_000) {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    let mut at = 0;
    let mut put = |n: u32, width: usize, then: Option<u8>| {
        let mut n = n;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        at += width;
        if let Some(c) = then {
            buf[at] = c;
            at += 1;
        }
    };
    put(t.year() as u32, 4, Some(b'-'));
    put(t.month(), 2, Some(b'-'));
    put(t.day(), 2, Some(b'T'));
    put(t.hour(), 2, Some(b':'));
    put(t.minute(), 2, Some(b':'));
    put(t.second(), 2, Some(if width > 0 { b'.' } else { b'Z' }));
    if width > 0 {
        put(frac, width, Some(b'Z'));
    }
    std::str::from_utf8(&buf[..at]).ok()
}

/// `serialize_with` for a time: what `chrono`'s `Serialize` writes, without
/// its per-character formatting (a page of 50 tasks writes 200 times).
pub fn time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; TIME_MAX];
    match time_text_utc(*t, &mut buf) {
        Some(text) => s.serialize_str(text),
        None => serde::Serialize::serialize(t, s),
    }
}

/// [`time`] for an optional time.
pub fn opt_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => time(t, s),
        None => s.serialize_none(),
    }
}

/// A page's items as read: each one's JSON written as its row arrives,
/// comma-separated, with where each ends and its key (where it sits in the
/// collection's order, for the next cursor). What `GET …/tasks` and
/// `GET …/audit-log` answer from, with no item built as a Rust value.
#[derive(Debug)]
pub struct JsonRows<K> {
    json: Vec<u8>,
    ends: Vec<usize>,
    keys: Vec<K>,
}

impl<K> Default for JsonRows<K> {
    fn default() -> Self {
        Self {
            json: Vec::new(),
            ends: Vec::new(),
            keys: Vec::new(),
        }
    }
}

impl<K> JsonRows<K> {
    /// Room for `n` items of about `size` bytes each.
    pub fn with_capacity(n: usize, size: usize) -> Self {
        Self {
            json: Vec::with_capacity(n * size),
            ends: Vec::with_capacity(n),
            keys: Vec::with_capacity(n),
        }
    }

    /// Adds an item: `write` appends its JSON and gives its key. On `Err`
    /// nothing is kept of it (the page fails as a whole anyway).
    pub fn push<E>(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Result<K, E>) -> Result<(), E> {
        let start = self.json.len();
        if start > 0 {
            self.json.push(b',');
        }
        match write(&mut self.json) {
            Ok(key) => {
                self.ends.push(self.json.len());
                self.keys.push(key);
                Ok(())
            }
            Err(e) => {
                self.json.truncate(start);
                Err(e)
            }
        }
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Keeps the first `n`.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.json
                .truncate(n.checked_sub(1).map_or(0, |i| self.ends[i]));
            self.ends.truncate(n);
            self.keys.truncate(n);
        }
    }

    /// The last item's key.
    pub fn last(&self) -> Option<&K> {
        self.keys.last()
    }

    /// The answer of a page of at most `limit` items, read with one more
    /// to learn whether another page follows: the first `limit`, and a
    /// `next_cursor` sealed from the last one's key when there is more.
    pub fn into_page(
        mut self,
        limit: usize,
        seal: impl FnOnce(&K) -> String,
    ) -> ([(axum::http::HeaderName, &'static str); 1], bytes::Bytes) {
        let more = self.len() > limit;
        self.truncate(limit);
        let next_cursor = self.last().filter(|_| more).map(seal);
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes::Bytes::from(self.page_json(next_cursor.as_deref())),
        )
    }

    /// The `Page` JSON (`{"items": […], "next_cursor": …}`) of these items.
    pub fn page_json(self, next_cursor: Option<&str>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.json.len() + 64);
        out.extend_from_slice(b"{\"items\":[");
        out.extend_from_slice(&self.json);
        out.extend_from_slice(b"],\"next_cursor\":");
        match next_cursor {
            Some(c) => write_str(&mut out, c),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_its_items_and_cursor() {
        let mut rows = JsonRows::default();
        for (i, key) in [7u32, 5, 3].into_iter().enumerate() {
            rows.push(|out| {
                out.extend_from_slice(format!("{{\"n\":{i}}}").as_bytes());
                Ok::<_, ()>(key)
            })
            .expect("pushed");
        }
        // A failed item leaves nothing behind.
        assert!(
            rows.push(|out| {
                out.extend_from_slice(b"{\"half");
                Err::<u32, _>("bad row")
            })
            .is_err()
        );
        assert_eq!(rows.len(), 3);
        rows.truncate(2);
        assert_eq!(rows.last(), Some(&5));
        let page: serde_json::Value =
            serde_json::from_slice(&rows.page_json(Some("c\"1"))).expect("a page is JSON");
        assert_eq!(
            page,
            serde_json::json!({"items": [{"n": 0}, {"n": 1}], "next_cursor": "c\"1"})
        );
        let empty = JsonRows::<u32>::default().page_json(None);
        assert_eq!(empty, b"{\"items\":[],\"next_cursor\":null}");
    }
}
