//! The change record: every change to an organization passes through
//! [`record`], which writes its audit row and its live-event row in the
//! change's own unit of work (a transaction, or a job of SQLite's
//! group-commit writer) and notes the organization (and board) it touched
//! for the unit's after-commit work (cache invalidation, publishing).
//!
//! This is where later work hangs off every change (webhook deliveries,
//! usage counts): one function, one typed [`Change`]. The kinds are a closed
//! enum, each with one string form, listed once in [`kinds!`] and published
//! in the OpenAPI document (schema `ChangeKind`).
//!
//! It lives in storage because it is the format of two tables (`audit_log`,
//! `events`) and the transaction's bookkeeping; it imports nothing above
//! [`crate::db`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::uow::{DbError, Uow};
use super::{Backend, now};

/// What a committed change touched, for invalidation: its organization and,
/// when the change concerns one board only, that board.
pub type Touched = (Uuid, Option<Uuid>);

/// What a change did to one card of its board's view, so that cached views
/// can be patched instead of read again ([`crate::cache`]). Storage knows
/// the card only as the bytes of its JSON summary and what orders it.
/// Serialised for other nodes, which patch their views with it too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum CardChange {
    /// The card as the board view shows it after the change.
    Put {
        /// Task id.
        id: Uuid,
        /// The list it is in now.
        list_id: Uuid,
        /// The list it was in before the change (`None`: a new card).
        was: Option<Uuid>,
        /// Its order key in `list_id` (compared as bytes).
        position: String,
        /// Its place in the card's order of changes after this one (a
        /// later change has a higher one): the task's version plus its
        /// `comment_rev` ([`crate::tasks::card::CardFields::rev`]).
        version: i64,
        /// Its summary, as the board view writes it.
        #[serde(with = "json_text")]
        json: bytes::Bytes,
    },
    /// The card was deleted from list `was`.
    Gone {
        /// Task id.
        id: Uuid,
        /// The list it was in.
        was: Uuid,
    },
    /// The change concerns the card's task but nothing the card shows (a
    /// comment's text edited): the views stay as they are.
    Unchanged {
        /// Task id.
        id: Uuid,
    },
}

/// A card's JSON summary written into a message as a string (it is UTF-8
/// text; as `Bytes` serde would write a list of numbers).
mod json_text {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _, ser::Error as _};

    pub fn serialize<S: Serializer>(json: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(json).map_err(S::Error::custom)?)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        let text = String::deserialize(d)?;
        // A summary is one JSON object; anything else would break the view.
        if !text.starts_with('{') {
            return Err(D::Error::custom("a card summary is a JSON object"));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(D::Error::custom)?;
        Ok(bytes::Bytes::from(text))
    }
}

impl CardChange {
    /// The card's id.
    pub fn id(&self) -> Uuid {
        match self {
            CardChange::Put { id, .. }
            | CardChange::Gone { id, .. }
            | CardChange::Unchanged { id } => *id,
        }
    }
}

/// Everything a unit of work changed, for its after-commit work: the
/// organizations and boards touched and, per board, the card changes that
/// patch its cached views (when every change of that board said what it
/// did to its card).
#[derive(Debug, Default)]
pub struct Touches {
    touched: Vec<Touched>,
    boards: Vec<(Uuid, Uuid, Option<Vec<CardChange>>)>,
}

impl Touches {
    /// Notes a change of `touched`; `card`: what it did to a card of the
    /// board, if it can say (`None` on a board makes its views unpatchable
    /// for this unit).
    pub fn note(&mut self, touched: Touched, card: Option<CardChange>) {
        if !self.touched.contains(&touched) {
            self.touched.push(touched);
        }
        let (org, Some(board)) = touched else {
            return;
        };
        let i = match self
            .boards
            .iter()
            .position(|(o, b, _)| *o == org && *b == board)
        {
            Some(i) => i,
            None => {
                self.boards.push((org, board, Some(Vec::new())));
                self.boards.len() - 1
            }
        };
        let slot = &mut self.boards[i].2;
        match (card, slot.as_mut()) {
            (Some(c), Some(cards)) => cards.push(c),
            (None, _) => *slot = None,
            (Some(_), None) => {}
        }
    }

    /// Adds what a later unit (the next job of a writer batch) changed.
    pub fn merge(&mut self, later: Touches) {
        for t in later.touched {
            if !self.touched.contains(&t) {
                self.touched.push(t);
            }
        }
        for (org, board, cards) in later.boards {
            match self
                .boards
                .iter_mut()
                .find(|(o, b, _)| *o == org && *b == board)
            {
                None => self.boards.push((org, board, cards)),
                Some((_, _, mine)) => match (mine.as_mut(), cards) {
                    (Some(mine), Some(cards)) => mine.extend(cards),
                    (_, None) => *mine = None,
                    (None, Some(_)) => {}
                },
            }
        }
    }

    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.touched.is_empty()
    }

    /// Every organization (and board) changed, once each, in order.
    pub fn touched(&self) -> &[Touched] {
        &self.touched
    }

    /// The card changes of `board` in commit order, when every change of
    /// it in this unit said what it did; `None` otherwise.
    pub fn cards(&self, org: Uuid, board: Uuid) -> Option<&[CardChange]> {
        self.boards
            .iter()
            .find(|(o, b, _)| *o == org && *b == board)
            .and_then(|(_, _, c)| c.as_deref())
    }
}

macro_rules! kinds {
    ($($variant:ident = $text:literal => $entity:ident,)*) => {
        /// What happened: the audit row's `action` and the event's `type`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Kind {
            $(
                #[doc = concat!("`", $text, "`")]
                #[serde(rename = $text)]
                $variant,
            )*
        }

        impl Kind {
            /// Every kind, in the order listed.
            pub const ALL: &[Kind] = &[$(Kind::$variant),*];

            /// The one string form (`task.created`, …).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $text,)*
                }
            }

            /// The kind of entity a change of this kind is about.
            pub fn entity(self) -> Entity {
                match self {
                    $(Kind::$variant => Entity::$entity,)*
                }
            }

            /// The kind named `text`, if any.
            pub fn parse(text: &str) -> Option<Kind> {
                match text {
                    $($text => Some(Kind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    OrgCreated = "org.created" => Organization,
    OrgUpdated = "org.updated" => Organization,
    OrgDeleted = "org.deleted" => Organization,
    OrgPlanChanged = "org.plan_changed" => Organization,
    OrgSuspended = "org.suspended" => Organization,
    OrgResumed = "org.resumed" => Organization,
    // The administrator's `create-user`, recorded in the new personal
    // organization.
    UserCreated = "user.created" => Organization,
    MemberJoined = "member.joined" => Membership,
    MemberLeft = "member.left" => Membership,
    MemberRemoved = "member.removed" => Membership,
    MemberRoleChanged = "member.role_changed" => Membership,
    InviteCreated = "invite.created" => Invite,
    InviteRevoked = "invite.revoked" => Invite,
    InviteAccepted = "invite.accepted" => Invite,
    BoardCreated = "board.created" => Board,
    BoardUpdated = "board.updated" => Board,
    BoardArchived = "board.archived" => Board,
    BoardRestored = "board.restored" => Board,
    BoardDeleted = "board.deleted" => Board,
    ListCreated = "list.created" => List,
    ListUpdated = "list.updated" => List,
    ListMoved = "list.moved" => List,
    ListDeleted = "list.deleted" => List,
    TaskCreated = "task.created" => Task,
    TaskUpdated = "task.updated" => Task,
    TaskMoved = "task.moved" => Task,
    TaskDeleted = "task.deleted" => Task,
    CommentCreated = "comment.created" => Comment,
    CommentUpdated = "comment.updated" => Comment,
    CommentDeleted = "comment.deleted" => Comment,
    LabelCreated = "label.created" => Label,
    LabelUpdated = "label.updated" => Label,
    LabelDeleted = "label.deleted" => Label,
}

// By hand: the derive does not read `serde(rename)` given through a macro
// fragment, and would publish the variant names.
impl utoipa::PartialSchema for Kind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "What happened: the audit row's `action` and the event's `type`.",
            ))
            .enum_values(Some(Kind::ALL.iter().map(|k| k.as_str())))
            .into()
    }
}

impl ToSchema for Kind {
    fn name() -> std::borrow::Cow<'static, str> {
        "ChangeKind".into()
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Kind {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Kind::parse(&text).ok_or_else(|| format!("unknown change kind {text:?}"))
    }
}

/// The kind of entity a change is about (the audit row's `entity_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ChangeEntity)]
pub enum Entity {
    /// An organization.
    Organization,
    /// A membership (its id is the member's user id).
    Membership,
    /// An invitation.
    Invite,
    /// A board.
    Board,
    /// A list.
    List,
    /// A task.
    Task,
    /// A comment.
    Comment,
    /// A label.
    Label,
}

impl Entity {
    /// The one string form (`task`, `membership`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Organization => "organization",
            Entity::Membership => "membership",
            Entity::Invite => "invite",
            Entity::Board => "board",
            Entity::List => "list",
            Entity::Task => "task",
            Entity::Comment => "comment",
            Entity::Label => "label",
        }
    }
}

impl Entity {
    /// The entity type of its string form; `None` for any other text.
    pub fn parse(text: &str) -> Option<Entity> {
        Some(match text {
            "organization" => Entity::Organization,
            "membership" => Entity::Membership,
            "invite" => Entity::Invite,
            "board" => Entity::Board,
            "list" => Entity::List,
            "task" => Entity::Task,
            "comment" => Entity::Comment,
            "label" => Entity::Label,
            _ => return None,
        })
    }
}

impl TryFrom<String> for Entity {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Entity::parse(&text).ok_or_else(|| format!("unknown entity type {text:?}"))
    }
}

/// A change to record.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The organization it happened in.
    pub org_id: Uuid,
    /// Who did it (`None` for the system or the administrator).
    pub actor_id: Option<Uuid>,
    /// The request that caused it.
    pub request_id: Option<&'a str>,
    /// What happened.
    pub kind: Kind,
    /// The changed entity (of the kind's [`Entity`]).
    pub entity_id: Uuid,
    /// The board it happened on, when it concerns exactly one board (a
    /// board, list, task or comment): its event goes to that board's
    /// subscribers and only that board's cached views are invalidated.
    /// `None` invalidates every view of the organization.
    pub board_id: Option<Uuid>,
    /// What changed (`{"name": {"from": "A", "to": "B"}}`), never a secret.
    pub payload: Value,
    /// What it did to a card of the board's view (task changes), so that
    /// cached views are patched rather than dropped.
    pub card: Option<CardChange>,
}

impl Change<'_> {
    /// The change, saying what it did to a card of its board.
    pub fn with_card(mut self, card: CardChange) -> Self {
        self.card = Some(card);
        self
    }
}

/// `{"from": a, "to": b}` when they differ.
pub fn from_to<T: Serialize + PartialEq>(from: &T, to: &T) -> Option<Value> {
    (from != to).then(|| json!({ "from": from, "to": to }))
}

/// One live event, as subscribers receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Event {
    /// Per-organization id: 1, 2, 3, … in commit order (the SSE `id:`).
    pub id: i64,
    /// The organization.
    pub org_id: Uuid,
    /// The board it concerns, if any (tasks, lists, comments, boards).
    pub board_id: Option<Uuid>,
    /// What happened.
    #[serde(rename = "type")]
    #[sqlx(rename = "type", try_from = "String")]
    #[schema(value_type = Kind)]
    pub kind: Kind,
    /// `{"type": "task", "id": …, "changes": {…}}`: what changed, as in the
    /// audit log (invite changes are left out: they name email addresses).
    #[schema(value_type = Object)]
    pub entity: Json<Value>,
    /// Who made the change (`null` for the system).
    pub actor_id: Option<Uuid>,
    /// When it was committed (close enough: when it was written).
    pub at: DateTime<Utc>,
}

impl Event {
    /// The columns [`Event::from_row`] reads, in its order.
    pub const COLUMNS: &'static str = "id, org_id, board_id, type, entity, actor_id, at";

    /// An event from a row of [`Event::COLUMNS`].
    pub fn from_row(r: &super::uow::AnyRow) -> Result<Event, DbError> {
        Ok(Event {
            id: r.get(0)?,
            org_id: r.get(1)?,
            board_id: r.get(2)?,
            kind: Kind::try_from(r.get::<String>(3)?).map_err(|e| DbError::Decode(3, e))?,
            entity: Json(r.get(4)?),
            actor_id: r.get(5)?,
            at: r.get(6)?,
        })
    }
}

/// What the entity of an event says.
fn event_entity(change: &Change<'_>) -> Value {
    let entity = change.kind.entity();
    if entity == Entity::Invite {
        json!({ "type": entity.as_str(), "id": change.entity_id })
    } else {
        json!({ "type": entity.as_str(), "id": change.entity_id, "changes": change.payload })
    }
}

/// The audit row's `INSERT` ($1 org, $2 id, $3 actor, $4 action, $5 entity
/// type, $6 entity id, $7 payload, $8 request id, $9 time).
const AUDIT_INSERT: &str = "INSERT INTO audit_log (org_id, id, actor_id, action, \
     entity_type, entity_id, payload, request_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// PostgreSQL's event row, unnumbered (the dispatcher numbers committed
/// rows): $1 org, $2 type, $3 board, $4 entity, $5 actor, $6 time.
const PG_EVENT_INSERT: &str = "INSERT INTO events (org_id, type, board_id, entity, actor_id, at) \
     VALUES ($1, $2, $3, $4, $5, $6)";

/// SQLite's event row ($1 org, $2 type, $3 board, $4 entity, $5 actor,
/// $6 time), numbered inside the writing transaction (one writer: commit
/// order is id order). Each `$n` first appears in order, so binding by
/// position (rusqlite) and by number (sqlx) agree.
const SQLITE_EVENT_INSERT: &str = "INSERT INTO events (org_id, seq, id, type, board_id, entity, actor_id, at) \
     SELECT $1, n, n, $2, $3, $4, $5, $6 FROM (SELECT COALESCE(MAX(id), 0) + 1 AS n FROM events WHERE org_id = $1) \
     RETURNING id";

/// Records `change` in the unit of work `u`: its audit row and its event,
/// and notes what it touched so the unit's after-commit work (installed by
/// [`crate::db::Db`] on every write transaction and writer batch)
/// invalidates and publishes. On PostgreSQL both rows are deferred writes
/// (sent with the change's other writes, in one statement, before its next
/// read or at commit); on SQLite the event is numbered here (one writer:
/// commit order is id order).
pub async fn record<U: Uow>(u: &mut U, change: Change<'_>) -> Result<(), DbError> {
    let entity = event_entity(&change);
    let at = now();
    let audit_id = Uuid::now_v7();
    let audit = crate::args![
        change.org_id,
        audit_id,
        change.actor_id,
        change.kind.as_str(),
        change.kind.entity().as_str(),
        change.entity_id,
        &change.payload,
        change.request_id,
        at,
    ];
    match u.backend() {
        Backend::Postgres => {
            // Both wait and go with the change's other writes, in one
            // statement (see `Uow::defer`).
            u.defer(AUDIT_INSERT, &audit).await?;
            u.defer(
                PG_EVENT_INSERT,
                &crate::args![
                    change.org_id,
                    change.kind.as_str(),
                    change.board_id,
                    &entity,
                    change.actor_id,
                    at,
                ],
            )
            .await?;
            u.note((change.org_id, change.board_id), None, change.card);
        }
        Backend::Sqlite => {
            u.execute(AUDIT_INSERT, &audit).await?;
            let id: i64 = u
                .fetch_optional(
                    SQLITE_EVENT_INSERT,
                    &crate::args![
                        change.org_id,
                        change.kind.as_str(),
                        change.board_id,
                        &entity,
                        change.actor_id,
                        at,
                    ],
                )
                .await?
                .ok_or_else(|| DbError::Decode(0, "the event insert returned no id".into()))?
                .get(0)?;
            let event = Event {
                id,
                org_id: change.org_id,
                board_id: change.board_id,
                kind: change.kind,
                entity: Json(entity),
                actor_id: change.actor_id,
                at,
            };
            u.note((change.org_id, change.board_id), Some(event), change.card);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A board's card changes are kept in order across a writer batch's
    /// jobs, and one change that says nothing of its card makes the board
    /// unpatchable for the whole unit; other boards keep theirs.
    #[test]
    fn touches_keep_card_changes_per_board_until_one_change_cannot_say() {
        let (org, a, b) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let gone = |n: u128| CardChange::Gone {
            id: Uuid::from_u128(n),
            was: Uuid::from_u128(9),
        };
        let mut first = Touches::default();
        assert!(first.is_empty());
        first.note((org, Some(a)), Some(gone(10)));
        first.note((org, Some(a)), Some(gone(11)));
        first.note((org, Some(b)), Some(gone(20)));
        let mut second = Touches::default();
        second.note((org, Some(a)), Some(gone(12)));
        second.note((org, Some(b)), None);
        second.note((org, None), None);
        first.merge(second);
        assert_eq!(
            first.touched(),
            &[(org, Some(a)), (org, Some(b)), (org, None)]
        );
        assert_eq!(
            first
                .cards(org, a)
                .map(|c| c.iter().map(CardChange::id).collect::<Vec<_>>()),
            Some(vec![
                Uuid::from_u128(10),
                Uuid::from_u128(11),
                Uuid::from_u128(12)
            ])
        );
        assert_eq!(first.cards(org, b), None);
        assert_eq!(first.cards(org, Uuid::from_u128(4)), None);
    }

    /// Each kind has one string form that parses back to it, and the
    /// string names its entity's family (`task.*` is about a task).
    #[test]
    fn every_kind_round_trips_through_its_one_string_form() {
        let mut seen = std::collections::HashSet::new();
        for kind in Kind::ALL {
            let text = kind.as_str();
            assert!(seen.insert(text), "{text} listed twice");
            assert_eq!(Kind::parse(text), Some(*kind));
            assert_eq!(
                serde_json::to_value(kind).expect("json"),
                json!(text),
                "serde and as_str agree"
            );
            let family = text.split('.').next().expect("family");
            let entity = kind.entity().as_str();
            let expected = match family {
                "org" | "user" => "organization",
                "member" => "membership",
                other => other,
            };
            assert_eq!(entity, expected, "{text}");
            assert_eq!(
                Entity::try_from(entity.to_owned()).expect("entity"),
                kind.entity()
            );
        }
        assert_eq!(Kind::parse("task.exploded"), None);
    }
}
