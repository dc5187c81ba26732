//! A board view kept in parts, so that a cached view can be patched with a
//! change instead of read again: the board's JSON up to its lists, each
//! list's JSON up to its cards, and each card's summary with what orders
//! it. [`Parts::render_shared`] joins them into the answer; [`Parts::apply`]
//! patches them with a [`CardChange`].
//!
//! A patch keeps the view exactly what the database would give (the test
//! `board_view::patched_views_equal_views_read_again` compares both after
//! every kind of change) or refuses, and the view is then read again:
//! * each list keeps an exact *prefix* of its cards: the `per_list` shown
//!   and up to [`RESERVE`] more, so a card that leaves the page is replaced
//!   by the next one without a read; whether cards lie beyond the prefix is
//!   known ([`Beyond`]), or becomes unknown when one of them leaves — the
//!   view refuses when that would change what it shows;
//! * a card that lands after the last card of the prefix of a list with
//!   cards beyond it is beyond it too (not shown, not kept);
//! * each card's last place in its order of changes seen (the task's
//!   version plus its `comment_rev`) is kept, so a change older than one
//!   already applied is skipped (after-commit work may run out of commit
//!   order on PostgreSQL), and a deleted card cannot come back.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::db::change::CardChange;

/// Cards kept per list beyond the ones shown, to replace cards that leave
/// the page (read with the view: 8 rows more per full list, ~4 % of a view
/// of 200 cards per list).
pub const RESERVE: u32 = 8;

/// Makes a list's `next_cursor` from its last card shown: list, id,
/// position.
pub type Cursor<'a> = &'a dyn Fn(Uuid, Uuid, &str) -> String;

/// One card: its summary's JSON and what orders and versions it.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// Task id.
    pub id: Uuid,
    /// Its place in the card's order of changes (the task's version plus
    /// its `comment_rev`).
    pub version: i64,
    /// The summary's JSON.
    pub json: Bytes,
    /// Where its order key lies in `json` (no copy: a view keeps thousands
    /// of cards, and small allocations kept that long pin the allocator's
    /// memory).
    at: Range<usize>,
}

impl Card {
    /// The card whose summary is `json`, ordered by `position`; `None`
    /// when `json` does not hold `"position":"<position>"`.
    pub fn new(id: Uuid, version: i64, json: Bytes, position: &str) -> Option<Card> {
        const KEY: &[u8] = b"\"position\":\"";
        let start = memchr::memmem::find(&json, KEY)? + KEY.len();
        let end = start + position.len();
        (json.get(start..end) == Some(position.as_bytes()) && json.get(end) == Some(&b'"'))
            .then_some(Card {
                id,
                version,
                json,
                at: start..end,
            })
    }

    /// The card whose summary is `json`, its position the text at `at`
    /// (between the quotes of its `"position"`, as the writer of `json`
    /// found it); `None` when `at` is not a quoted text of `json`.
    pub fn at(id: Uuid, version: i64, json: Bytes, at: std::ops::Range<usize>) -> Option<Card> {
        let quoted = at.start > 0
            && at.start <= at.end
            && json.get(at.start - 1) == Some(&b'"')
            && json.get(at.end) == Some(&b'"');
        quoted.then_some(Card {
            id,
            version,
            json,
            at,
        })
    }

    /// Its order key in its list (compared as bytes).
    pub fn position(&self) -> &str {
        self.json
            .get(self.at.clone())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

/// Whether a list has cards after the ones a view keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beyond {
    /// None: the view keeps the whole list.
    None,
    /// At least one.
    Some,
    /// Not known (one of them left).
    Unknown,
}

/// One list: its JSON without the closing brace, the first cards of it,
/// and whether it has more.
#[derive(Debug, Clone)]
pub struct ListPart {
    /// List id.
    pub id: Uuid,
    /// The list's fields as JSON, without the closing `}`.
    pub head: Bytes,
    /// Its first cards in order: the ones shown, then up to [`RESERVE`]
    /// more (shared with other versions of the view until patched).
    pub cards: Arc<Vec<Card>>,
    /// Cards after these.
    pub beyond: Beyond,
}

/// A board view in parts.
#[derive(Debug, Clone)]
pub struct Parts {
    /// The board's fields as JSON, without the closing `}`.
    pub head: Bytes,
    /// The lists in order.
    pub lists: Vec<ListPart>,
    /// Most cards a list shows.
    pub per_list: u32,
    /// The last version of each card a patch brought (`i64::MAX`: deleted).
    seen: HashMap<Uuid, i64>,
}

/// Where the pieces of a rendered view lie in its JSON.
struct Layout {
    head: Range<usize>,
    lists: Vec<(Range<usize>, Vec<Range<usize>>)>,
}

impl Parts {
    /// A view of `lists` under the board's `head`, `per_list` cards shown
    /// per list.
    pub fn new(head: Bytes, lists: Vec<ListPart>, per_list: u32) -> Self {
        Self {
            head,
            lists,
            per_list,
            seen: HashMap::new(),
        }
    }

    /// About how many bytes it holds.
    pub fn size(&self) -> usize {
        self.head.len()
            + self
                .lists
                .iter()
                .map(|l| {
                    l.head.len() + 64 + l.cards.iter().map(|c| c.json.len() + 1).sum::<usize>()
                })
                .sum::<usize>()
            + 16
    }

    /// The answer's JSON; `cursor` makes the `next_cursor` of a list with
    /// more from its last card shown (the server uses
    /// [`Parts::render_shared`]; this one leaves the parts as they are).
    #[cfg(test)]
    fn render(&self, cursor: Cursor<'_>) -> Vec<u8> {
        self.write(cursor).0
    }

    /// The answer's JSON, with every piece of the view then made a slice
    /// of it: the view and its answer share one buffer (the buffers the
    /// pieces came from are freed).
    pub fn render_shared(&mut self, cursor: Cursor<'_>) -> Bytes {
        let (out, layout) = self.write(cursor);
        let body = Bytes::from(out);
        self.head = body.slice(layout.head);
        let shown = self.per_list as usize;
        for (list, (head, cards)) in self.lists.iter_mut().zip(layout.lists) {
            list.head = body.slice(head);
            // The cards kept beyond the page are not in the answer.
            let kept = Arc::make_mut(&mut list.cards);
            for (card, range) in kept.iter_mut().take(shown).zip(cards) {
                card.json = body.slice(range);
            }
            for card in kept.iter_mut().skip(shown) {
                card.json = Bytes::copy_from_slice(&card.json);
            }
        }
        body
    }

    fn write(&self, cursor: Cursor<'_>) -> (Vec<u8>, Layout) {
        let mut out = Vec::with_capacity(self.size());
        out.extend_from_slice(&self.head);
        let head = 0..out.len();
        out.extend_from_slice(b",\"lists\":[");
        let mut lists = Vec::with_capacity(self.lists.len());
        for (i, list) in self.lists.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let start = out.len();
            out.extend_from_slice(&list.head);
            let list_head = start..out.len();
            out.extend_from_slice(b",\"tasks\":[");
            let shown = &list.cards[..list.cards.len().min(self.per_list as usize)];
            let mut cards = Vec::with_capacity(shown.len());
            for (k, card) in shown.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                let start = out.len();
                out.extend_from_slice(&card.json);
                cards.push(start..out.len());
            }
            out.extend_from_slice(b"],\"next_cursor\":");
            let more = list.cards.len() > shown.len() || list.beyond != Beyond::None;
            match shown.last() {
                Some(last) if more => {
                    let next = cursor(list.id, last.id, last.position());
                    // A cursor is URL-safe base64 and a dot: nothing to
                    // escape, but written as JSON all the same.
                    if serde_json::to_writer(&mut out, &next).is_err() {
                        out.extend_from_slice(b"null");
                    }
                }
                _ => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
            lists.push((list_head, cards));
        }
        out.extend_from_slice(b"]}");
        (out, Layout { head, lists })
    }

    /// Patches the view with `change`; `false` when it cannot say what the
    /// database now shows (the view must then be read again).
    pub fn apply(&mut self, change: &CardChange) -> bool {
        let id = change.id();
        let (version, was, to) = match change {
            CardChange::Unchanged { .. } => return true,
            CardChange::Put {
                version,
                was,
                list_id,
                ..
            } => (*version, *was, Some(*list_id)),
            CardChange::Gone { was, .. } => (i64::MAX, Some(*was), None),
        };
        let found = self.find(id);
        let known = found
            .map(|(l, k)| self.lists[l].cards[k].version)
            .into_iter()
            .chain(self.seen.get(&id).copied())
            .max();
        if known.is_some_and(|v| v >= version) {
            // The view already has this change or a later one (or the
            // card is deleted).
            return true;
        }
        self.seen.insert(id, version);
        match found {
            // Out of the prefix it was in: still an exact prefix.
            Some((l, k)) => {
                Arc::make_mut(&mut self.lists[l].cards).remove(k);
            }
            // Not kept: either beyond the prefix of the list it left (which
            // may now have nothing beyond), or newer than the view.
            None => {
                if let Some(was) = was {
                    let Some(list) = self.lists.iter_mut().find(|l| l.id == was) else {
                        return false;
                    };
                    if list.beyond == Beyond::Some {
                        list.beyond = Beyond::Unknown;
                    }
                }
            }
        }
        if let (Some(to), CardChange::Put { position, json, .. }) = (to, change) {
            let per_list = self.per_list;
            let Some(list) = self.lists.iter_mut().find(|l| l.id == to) else {
                return false;
            };
            let at = list
                .cards
                .partition_point(|c| c.position().as_bytes() < position.as_bytes());
            if at == list.cards.len() && list.beyond != Beyond::None {
                // After the last card kept, with cards beyond: beyond too.
                list.beyond = Beyond::Some;
            } else {
                let Some(card) = Card::new(id, version, json.clone(), position) else {
                    return false;
                };
                let cards = Arc::make_mut(&mut list.cards);
                cards.insert(at, card);
                if cards.len() > (per_list + RESERVE) as usize {
                    cards.pop();
                    list.beyond = Beyond::Some;
                }
            }
        }
        // What each list shows must still be known: a full page while
        // cards lie beyond, and whether there are any when the page is the
        // last.
        let per_list = self.per_list as usize;
        self.lists.iter().all(|l| match l.beyond {
            Beyond::None => true,
            Beyond::Some => l.cards.len() >= per_list,
            Beyond::Unknown => l.cards.len() > per_list,
        })
    }

    /// Where the view keeps card `id`: list and index.
    fn find(&self, id: Uuid) -> Option<(usize, usize)> {
        self.lists
            .iter()
            .enumerate()
            .find_map(|(l, list)| list.cards.iter().position(|c| c.id == id).map(|k| (l, k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn json(n: u128, position: &str, version: i64) -> Bytes {
        Bytes::from(format!(
            "{{\"id\":{n},\"position\":\"{position}\",\"v\":{version}}}"
        ))
    }

    fn card(n: u128, position: &str, version: i64) -> Card {
        Card::new(id(n), version, json(n, position, version), position).expect("position")
    }

    fn list(n: u128, cards: Vec<Card>, beyond: Beyond) -> ListPart {
        ListPart {
            id: id(n),
            head: Bytes::from(format!("{{\"list\":{n}")),
            cards: Arc::new(cards),
            beyond,
        }
    }

    fn put(n: u128, list: u128, was: Option<u128>, position: &str, version: i64) -> CardChange {
        CardChange::Put {
            id: id(n),
            list_id: id(list),
            was: was.map(id),
            position: position.into(),
            version,
            json: json(n, position, version),
        }
    }

    fn gone(n: u128, was: u128) -> CardChange {
        CardChange::Gone {
            id: id(n),
            was: id(was),
        }
    }

    /// Ids kept per list.
    fn kept(p: &Parts) -> Vec<Vec<u128>> {
        p.lists
            .iter()
            .map(|l| l.cards.iter().map(|c| c.id.as_u128()).collect())
            .collect()
    }

    fn cursor(list: Uuid, id: Uuid, pos: &str) -> String {
        format!("{}:{}:{pos}", list.as_u128(), id.as_u128())
    }

    /// Two cards shown per list. List 100 is whole (two cards); list 200
    /// keeps its first RESERVE + 2 cards (ids 1000…, positions "b0"…) and
    /// has cards beyond them.
    fn view() -> Parts {
        let long: Vec<Card> = (0..2 + u128::from(RESERVE))
            .map(|i| card(1000 + i, &format!("b{i}"), 1))
            .collect();
        Parts::new(
            Bytes::from_static(b"{\"board\":1"),
            vec![
                list(100, vec![card(1, "a", 1), card(2, "c", 1)], Beyond::None),
                list(200, long, Beyond::Some),
            ],
            2,
        )
    }

    #[test]
    fn renders_the_cards_shown_and_shares_one_buffer() {
        let mut p = view();
        let expected = "{\"board\":1,\"lists\":[\
             {\"list\":100,\"tasks\":[{\"id\":1,\"position\":\"a\",\"v\":1},{\"id\":2,\"position\":\"c\",\"v\":1}],\"next_cursor\":null},\
             {\"list\":200,\"tasks\":[{\"id\":1000,\"position\":\"b0\",\"v\":1},{\"id\":1001,\"position\":\"b1\",\"v\":1}],\"next_cursor\":\"200:1001:b1\"}]}";
        assert_eq!(
            String::from_utf8(p.render(&cursor)).expect("utf-8"),
            expected
        );
        let body = p.render_shared(&cursor);
        assert_eq!(&body[..], expected.as_bytes());
        // The pieces shown are slices of the answer now.
        let inside = |b: &Bytes| {
            let (start, end) = (body.as_ptr() as usize, body.as_ptr() as usize + body.len());
            (b.as_ptr() as usize) >= start && (b.as_ptr() as usize) + b.len() <= end
        };
        assert!(inside(&p.head) && inside(&p.lists[1].head));
        assert!(inside(&p.lists[1].cards[1].json));
        assert!(!inside(&p.lists[1].cards[2].json), "kept, not shown");
        assert_eq!(
            String::from_utf8(p.render(&cursor)).expect("utf-8"),
            expected
        );
    }

    #[test]
    fn new_cards_go_in_order_and_the_last_kept_one_goes_beyond() {
        let mut p = view();
        // A whole list grows (RESERVE keeps them all).
        assert!(p.apply(&put(5, 100, None, "b", 1)));
        assert_eq!(kept(&p)[0], vec![1, 5, 2]);
        assert_eq!(p.lists[0].beyond, Beyond::None);
        // After the last card kept of a list with cards beyond: beyond.
        assert!(p.apply(&put(6, 200, None, "z", 1)));
        assert_eq!(kept(&p)[1].len(), 2 + RESERVE as usize);
        assert!(!kept(&p)[1].contains(&6));
        // Before it: kept, and the last kept one goes beyond.
        assert!(p.apply(&put(7, 200, None, "a", 1)));
        assert_eq!(kept(&p)[1][..2], [7, 1000]);
        assert_eq!(kept(&p)[1].len(), 2 + RESERVE as usize);
        assert_eq!(p.lists[1].beyond, Beyond::Some);
    }

    #[test]
    fn cards_leaving_a_page_are_replaced_until_the_reserve_runs_out() {
        let mut p = view();
        for (i, n) in (1000..1000 + u128::from(RESERVE)).enumerate() {
            assert!(
                p.apply(&put(n, 100, Some(200), &format!("d{i}"), 2)),
                "card {n}"
            );
        }
        // The page of list 200 is the next cards, and still has more.
        assert_eq!(
            kept(&p)[1],
            vec![1000 + u128::from(RESERVE), 1001 + u128::from(RESERVE)]
        );
        let text = String::from_utf8(p.render(&cursor)).expect("utf-8");
        assert!(
            text.ends_with(&format!(
                "\"next_cursor\":\"200:{}:b{}\"}}]}}",
                1001 + RESERVE,
                1 + RESERVE
            )),
            "{text}"
        );
        // One more leaves: the page would need a card the view lacks.
        assert!(!p.apply(&put(1000 + u128::from(RESERVE), 100, Some(200), "e", 2)));
    }

    #[test]
    fn a_card_leaving_from_beyond_makes_beyond_unknown() {
        let mut p = view();
        // Card 77, beyond the kept prefix of list 200, moves to list 100.
        assert!(p.apply(&put(77, 100, Some(200), "b", 2)));
        assert_eq!(kept(&p)[0], vec![1, 77, 2]);
        assert_eq!(p.lists[1].beyond, Beyond::Unknown);
        // Fine while more cards are kept than shown; once the kept cards
        // are down to the page, whether more follow is unknown.
        for n in 1000..1000 + u128::from(RESERVE) - 1 {
            assert!(p.apply(&gone(n, 200)), "card {n}");
        }
        assert_eq!(kept(&p)[1].len(), 3);
        assert!(!p.apply(&gone(1000 + u128::from(RESERVE) - 1, 200)));
    }

    #[test]
    fn older_changes_are_skipped_and_deleted_cards_stay_deleted() {
        let mut p = view();
        assert!(p.apply(&put(1, 100, Some(100), "b", 3)));
        assert_eq!(p.lists[0].cards[0].version, 3);
        // Version 2 arrives after version 3: skipped.
        assert!(p.apply(&put(1, 100, Some(100), "d", 2)));
        assert_eq!(kept(&p)[0], vec![1, 2]);
        assert_eq!(p.lists[0].cards[0].position(), "b");
        assert!(p.apply(&gone(2, 100)));
        assert_eq!(kept(&p)[0], vec![1]);
        // A late update of the deleted card does not bring it back.
        assert!(p.apply(&put(2, 100, Some(100), "c", 5)));
        assert_eq!(kept(&p)[0], vec![1]);
        // A card the view does not keep: its later version moved it beyond
        // list 200; the earlier one (into list 100) arrives late, skipped.
        assert!(p.apply(&put(88, 200, Some(200), "z", 3)));
        assert!(p.apply(&put(88, 100, Some(200), "a", 2)));
        assert!(!kept(&p)[0].contains(&88));
    }

    #[test]
    fn a_card_knows_its_order_key_only_from_its_json() {
        let j = json(1, "a0", 1);
        assert_eq!(
            Card::new(id(1), 1, j.clone(), "a0").map(|c| c.position().to_owned()),
            Some("a0".into())
        );
        // Not the key written there: no card (a patch is refused).
        assert!(Card::new(id(1), 1, j.clone(), "a").is_none());
        assert!(Card::new(id(1), 1, j.clone(), "b0").is_none());
        assert!(Card::new(id(1), 1, Bytes::from_static(b"{\"id\":1}"), "a0").is_none());
        // Where the writer put it: the quoted text there, else no card.
        let at = memchr::memmem::find(&j, b"\"a0\"").expect("written") + 1;
        assert_eq!(
            Card::at(id(1), 1, j.clone(), at..at + 2).map(|c| c.position().to_owned()),
            Some("a0".into())
        );
        assert!(Card::at(id(1), 1, j.clone(), at..at + 1).is_none());
        assert!(Card::at(id(1), 1, j.clone(), at + 1..at + 2).is_none());
        assert!(Card::at(id(1), 1, j.clone(), 0..0).is_none());
        assert!(Card::at(id(1), 1, j.clone(), j.len()..j.len() + 2).is_none());
    }

    #[test]
    fn refuses_lists_it_does_not_have() {
        let mut p = view();
        assert!(!p.apply(&put(1, 300, Some(100), "a", 2)));
        let mut p = view();
        assert!(!p.apply(&put(9, 100, Some(300), "a", 2)));
    }

    #[test]
    fn moves_within_a_list() {
        let mut p = view();
        assert!(p.apply(&put(2, 100, Some(100), "0", 2)));
        assert_eq!(kept(&p)[0], vec![2, 1]);
        // The first card of list 200 moves past the last kept one: beyond,
        // and the next card comes up.
        assert!(p.apply(&put(1000, 200, Some(200), "z", 2)));
        assert_eq!(kept(&p)[1][..2], [1001, 1002]);
        assert_eq!(p.lists[1].beyond, Beyond::Some);
    }

    #[test]
    fn patching_a_copy_leaves_the_original_alone() {
        let original = view();
        let mut copy = original.clone();
        assert!(copy.apply(&put(5, 100, None, "b", 1)));
        assert_eq!(kept(&original)[0], vec![1, 2]);
        assert_ne!(kept(&copy), kept(&original));
    }
}
