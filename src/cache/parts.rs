//! A board view kept in parts, so that a cached view can be patched with a
//! change instead of read again: the board's JSON up to its lists, each
//! list's JSON up to its cards, and each card's summary with what orders
//! it. [`Parts::render`] joins them into the answer; [`Parts::apply`]
//! patches them with a [`CardChange`].
//!
//! A patch keeps the view exactly what the database would give (the test
//! `board_view::patched_views_equal_views_read_again` compares both after
//! every kind of change) or refuses, and the view is then read again:
//! * each card carries its version, and a change older than the card shown
//!   is skipped (after-commit work may run out of commit order on
//!   PostgreSQL); deleted cards are remembered, so a late change cannot
//!   bring one back;
//! * a list shows its first `per_list` cards and knows whether it has more;
//!   a card that joins a full list pushes its last card out, but a card that
//!   leaves a list with more cannot be replaced by the next one (not in
//!   the view): refused. So is a card of a list the view does not have.

use std::sync::Arc;

use bytes::Bytes;
use uuid::Uuid;

use crate::db::change::CardChange;

/// One card: its summary's JSON and what orders and versions it.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    /// Task id.
    pub id: Uuid,
    /// Order key in its list (compared as bytes).
    pub position: String,
    /// The task's version.
    pub version: i64,
    /// The summary's JSON.
    pub json: Bytes,
}

/// One list: its JSON without the closing brace, its first cards, and
/// whether it has more than it shows.
#[derive(Debug, Clone)]
pub struct ListPart {
    /// List id.
    pub id: Uuid,
    /// The list's fields as JSON, without the closing `}`.
    pub head: Bytes,
    /// The cards shown, in order (shared until patched).
    pub cards: Arc<Vec<Card>>,
    /// The list has cards after the last one shown.
    pub more: bool,
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
    /// Cards deleted since the view was read (a late change of one of them
    /// must not bring it back).
    gone: Vec<Uuid>,
}

impl Parts {
    /// A view of `lists` under the board's `head`, `per_list` cards each.
    pub fn new(head: Bytes, lists: Vec<ListPart>, per_list: u32) -> Self {
        Self {
            head,
            lists,
            per_list,
            gone: Vec::new(),
        }
    }

    /// About how long its JSON is.
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

    /// The answer's JSON; `cursor(list, id, position)` makes the
    /// `next_cursor` of a list that has more, from its last card shown.
    pub fn render(&self, cursor: &dyn Fn(Uuid, Uuid, &str) -> String) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(b",\"lists\":[");
        for (i, list) in self.lists.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&list.head);
            out.extend_from_slice(b",\"tasks\":[");
            for (k, card) in list.cards.iter().enumerate() {
                if k > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&card.json);
            }
            out.extend_from_slice(b"],\"next_cursor\":");
            match list.cards.last() {
                Some(last) if list.more => {
                    let next = cursor(list.id, last.id, &last.position);
                    // A cursor is URL-safe base64 and a dot: nothing to escape,
                    // but written as JSON all the same.
                    if serde_json::to_writer(&mut out, &next).is_err() {
                        out.extend_from_slice(b"null");
                    }
                }
                _ => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// Patches the view with `change`; `false` when it cannot say what the
    /// database now shows (the view must then be read again).
    pub fn apply(&mut self, change: &CardChange) -> bool {
        let id = change.id();
        if self.gone.contains(&id) {
            // Deleted: any other change of it is older.
            return true;
        }
        let version = match change {
            CardChange::Put { version, .. } => Some(*version),
            CardChange::Gone { .. } => None,
        };
        let found = self.find(id);
        if let (Some((l, k)), Some(v)) = (found, version)
            && self.lists[l].cards[k].version >= v
        {
            // The view already shows this change or a later one.
            return true;
        }
        // Take the card out of where the view shows it or, when the view
        // does not show it, make sure the list it left shows the same.
        let was = match change {
            CardChange::Put { was, .. } => *was,
            CardChange::Gone { was, .. } => Some(*was),
        };
        let to = match change {
            CardChange::Put { list_id, .. } => Some(*list_id),
            CardChange::Gone { .. } => None,
        };
        // Taken out of a list with more that it stays in: it must land
        // among the cards shown again.
        let mut must_stay = false;
        match found {
            Some((l, k)) => {
                if self.lists[l].more {
                    if to != Some(self.lists[l].id) {
                        // The next card of that list would move up: not here.
                        return false;
                    }
                    must_stay = true;
                }
                Arc::make_mut(&mut self.lists[l].cards).remove(k);
            }
            None => {
                if let Some(was) = was
                    && was != to.unwrap_or(Uuid::nil())
                {
                    match self.lists.iter().find(|l| l.id == was) {
                        // Not shown in a list with more: whether it still
                        // has more is not known here.
                        Some(l) if l.more => return false,
                        Some(_) => {}
                        // A list the view does not have.
                        None => return false,
                    }
                }
            }
        }
        match change {
            CardChange::Gone { .. } => {
                self.gone.push(id);
                true
            }
            CardChange::Put {
                list_id,
                position,
                version,
                json,
                ..
            } => {
                let Some(list) = self.lists.iter_mut().find(|l| l.id == *list_id) else {
                    return false;
                };
                let at = list
                    .cards
                    .partition_point(|c| c.position.as_bytes() < position.as_bytes());
                if list.more && at >= list.cards.len() {
                    // After the last card shown of a list with more: on a
                    // later page (and if it was shown, the card after it
                    // there comes up: not in the view).
                    return !must_stay;
                }
                let cards = Arc::make_mut(&mut list.cards);
                cards.insert(
                    at,
                    Card {
                        id,
                        position: position.clone(),
                        version: *version,
                        json: json.clone(),
                    },
                );
                if cards.len() > self.per_list as usize {
                    cards.pop();
                    list.more = true;
                }
                true
            }
        }
    }

    /// Where the view shows card `id`: list and index.
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

    fn card(n: u128, position: &str, version: i64) -> Card {
        Card {
            id: id(n),
            position: position.into(),
            version,
            json: Bytes::from(format!("{{\"id\":{n},\"v\":{version}}}")),
        }
    }

    fn list(n: u128, cards: Vec<Card>, more: bool) -> ListPart {
        ListPart {
            id: id(n),
            head: Bytes::from(format!("{{\"list\":{n}")),
            cards: Arc::new(cards),
            more,
        }
    }

    fn put(n: u128, list: u128, was: Option<u128>, position: &str, version: i64) -> CardChange {
        CardChange::Put {
            id: id(n),
            list_id: id(list),
            was: was.map(id),
            position: position.into(),
            version,
            json: Bytes::from(format!("{{\"id\":{n},\"v\":{version}}}")),
        }
    }

    /// Ids shown per list.
    fn shown(p: &Parts) -> Vec<Vec<u128>> {
        p.lists
            .iter()
            .map(|l| l.cards.iter().map(|c| c.id.as_u128()).collect())
            .collect()
    }

    fn view() -> Parts {
        Parts::new(
            Bytes::from_static(b"{\"board\":1"),
            vec![
                list(100, vec![card(1, "a", 1), card(2, "c", 1)], false),
                list(200, vec![card(3, "a", 1), card(4, "b", 1)], true),
            ],
            2,
        )
    }

    #[test]
    fn renders_the_json_of_the_parts() {
        let text =
            view().render(&|list, id, pos| format!("{}:{}:{pos}", list.as_u128(), id.as_u128()));
        assert_eq!(
            String::from_utf8(text).expect("utf-8"),
            "{\"board\":1,\"lists\":[\
             {\"list\":100,\"tasks\":[{\"id\":1,\"v\":1},{\"id\":2,\"v\":1}],\"next_cursor\":null},\
             {\"list\":200,\"tasks\":[{\"id\":3,\"v\":1},{\"id\":4,\"v\":1}],\"next_cursor\":\"200:4:b\"}]}"
        );
    }

    #[test]
    fn new_cards_go_in_order_and_push_the_last_one_out_of_a_full_list() {
        let mut p = view();
        assert!(p.apply(&put(5, 100, None, "b", 1)));
        // List 100 held two of two: the last one leaves, the list has more.
        assert_eq!(shown(&p), vec![vec![1, 5], vec![3, 4]]);
        assert!(p.lists[0].more);
        // After the last card shown of a list with more: a later page.
        assert!(p.apply(&put(6, 200, None, "z", 1)));
        assert_eq!(shown(&p), vec![vec![1, 5], vec![3, 4]]);
        // Before it: shown, and the last one goes.
        assert!(p.apply(&put(7, 200, None, "0", 1)));
        assert_eq!(shown(&p), vec![vec![1, 5], vec![7, 3]]);
    }

    #[test]
    fn older_changes_are_skipped_and_deleted_cards_stay_deleted() {
        let mut p = view();
        assert!(p.apply(&put(1, 100, Some(100), "b", 3)));
        assert_eq!(p.lists[0].cards[0].version, 3);
        // Version 2 arrives after version 3: skipped.
        assert!(p.apply(&put(1, 100, Some(100), "d", 2)));
        assert_eq!(shown(&p), vec![vec![1, 2], vec![3, 4]]);
        assert_eq!(p.lists[0].cards[0].position, "b");
        assert!(p.apply(&CardChange::Gone {
            id: id(2),
            was: id(100)
        }));
        assert_eq!(shown(&p), vec![vec![1], vec![3, 4]]);
        // A late update of the deleted card does not bring it back.
        assert!(p.apply(&put(2, 100, Some(100), "c", 5)));
        assert_eq!(shown(&p), vec![vec![1], vec![3, 4]]);
    }

    #[test]
    fn refuses_what_it_cannot_know() {
        // A card leaving a list with more: the next one is not in the view.
        let mut p = view();
        assert!(!p.apply(&put(3, 100, Some(200), "z", 2)));
        let mut p = view();
        assert!(!p.apply(&CardChange::Gone {
            id: id(4),
            was: id(200)
        }));
        // A card not shown leaving a list with more: does it still have more?
        let mut p = view();
        assert!(!p.apply(&put(9, 100, Some(200), "z", 2)));
        // A list the view does not have.
        let mut p = view();
        assert!(!p.apply(&put(1, 300, Some(100), "a", 2)));
        let mut p = view();
        assert!(!p.apply(&put(9, 100, Some(300), "a", 2)));
    }

    #[test]
    fn moves_within_and_between_lists_without_more() {
        let mut p = view();
        assert!(p.apply(&put(2, 100, Some(100), "0", 2)));
        assert_eq!(shown(&p), vec![vec![2, 1], vec![3, 4]]);
        // A card hidden in list 200 moving inside it, to before its last
        // card shown: it comes in, the last goes out, still more.
        assert!(p.apply(&put(9, 200, Some(200), "ab", 2)));
        assert_eq!(shown(&p), vec![vec![2, 1], vec![3, 9]]);
        assert!(p.lists[1].more);
        // Into list 100 from list 100 (not more): it had room.
        assert!(p.apply(&put(1, 100, Some(100), "1", 2)));
        assert_eq!(shown(&p), vec![vec![2, 1], vec![3, 9]]);
    }

    #[test]
    fn cards_of_a_list_with_more_change_in_place_but_cannot_leave_its_page() {
        let mut p = view();
        // Card 3 of list 200 (has more) changed, same place: patched.
        assert!(p.apply(&put(3, 200, Some(200), "a", 2)));
        assert_eq!(shown(&p), vec![vec![1, 2], vec![3, 4]]);
        assert_eq!(p.lists[1].cards[0].version, 2);
        // Moved ahead of card 3, inside the page: patched.
        assert!(p.apply(&put(4, 200, Some(200), "0", 2)));
        assert_eq!(shown(&p), vec![vec![1, 2], vec![4, 3]]);
        // Moved behind the last card shown (now card 3): hidden cards may
        // lie between, and the next one is not in the view.
        assert!(!p.apply(&put(4, 200, Some(200), "b", 3)));
    }

    #[test]
    fn patching_a_copy_leaves_the_original_alone() {
        let original = view();
        let mut copy = original.clone();
        assert!(copy.apply(&put(5, 100, None, "b", 1)));
        assert_eq!(shown(&original), vec![vec![1, 2], vec![3, 4]]);
        assert_ne!(shown(&copy), shown(&original));
    }
}
