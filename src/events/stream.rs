//! `GET /api/v1/orgs/{org}/events`: the organization's live events as
//! `text/event-stream` (SSE), or over a WebSocket when the request asks for
//! an upgrade.
//!
//! * Authorization happens at subscribe: a non-member gets `404`, like every
//!   tenant route. Every role may read every board, so a member sees all of
//!   the organization's events; `?board_id=` narrows them to one board
//!   (events without a board — members, labels, the organization — are then
//!   left out).
//! * Resume: the SSE `Last-Event-ID` header (or `?last_event_id=`, which
//!   WebSocket and browser clients can send) replays every later event from
//!   the outbox table, in order, before live ones, without duplicates. When
//!   some of them are gone (events are kept at least 24 hours) or the id is
//!   unknown, the stream first sends a `reset` event carrying the current id:
//!   reload, then carry on from it.
//! * A member removed from the organization (or leaving it), or the
//!   organization being deleted, ends the stream as soon as the event
//!   arrives; membership is also re-checked every minute as a backstop.
//! * A stream lives no longer than the access token that opened it: when the
//!   token expires, or its session is revoked (logout, refresh-token reuse;
//!   at once on the node that revoked it, within a minute on others), the
//!   stream sends a last `end` event (`{"type":"end","id":…,"reason":
//!   "token_expired"|"session_revoked"}`) and closes. A client reconnects
//!   with a fresh token and `Last-Event-ID`, losing nothing.
//! * A user may hold `ORGBOARD_MAX_STREAMS_PER_USER` streams per node
//!   (`429` beyond). No database transaction stays open while streaming: the
//!   table is read in short transactions when a gap must be filled.
//! * Browsers cannot set headers on `EventSource` or WebSocket: the access
//!   token may also come as `?access_token=` on this route only (it is not
//!   logged: request logs carry the path without the query).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{Event, Signal, StreamGuard};
use crate::args;
use crate::db::Scope;
use crate::db::change::Kind;
use crate::db::uow::{DbError, Uow};
use crate::domain::{Action, Ownership};
use crate::error::{ApiError, FieldError};
use crate::http::extract::AppQuery;
use crate::orgs::context::OrgRequest;
use crate::state::AppState;

/// Events read from the table per round trip.
const FILL_BATCH: i64 = 500;
/// Backstop re-check of the subscriber's membership.
const RECHECK: Duration = Duration::from_secs(60);

/// Routes of live events.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .route_layer(axum::middleware::map_request(token_from_query))
}

/// Query of `GET /orgs/{org}/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this board's events.
    pub board_id: Option<Uuid>,
    /// Resume after this event id (same as the `Last-Event-ID` header).
    pub last_event_id: Option<String>,
    /// The access token, for clients that cannot send `Authorization`.
    pub access_token: Option<String>,
}

/// Moves `?access_token=` into `Authorization` when the header is absent.
async fn token_from_query<B>(mut req: Request<B>) -> Request<B> {
    if req.headers().contains_key(header::AUTHORIZATION) {
        return req;
    }
    let token = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(value) = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
        req.headers_mut().insert(header::AUTHORIZATION, value);
    }
    req
}

/// Live events of the organization: `text/event-stream` (each event with
/// `id:`, `event:` = its type and `data:` = the JSON event; heartbeats as
/// comments), or, with a WebSocket upgrade, one JSON text message per event.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/events", tag = "events",
    params(("org" = String, Path, description = "Organization id or slug"), EventsQuery,
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    security(("bearer" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", body = Event,
         description = "Server-sent events; a `reset` event means: reload, then carry on; \
            an `end` event (`token_expired` or `session_revoked`) comes last: reconnect with a \
            fresh access token and `Last-Event-ID`"),
        (status = 101, description = "WebSocket upgrade: the same events as JSON text messages"),
        (status = 400, body = crate::error::Problem), (status = 404, body = crate::error::Problem),
        (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
async fn events(
    State(state): State<AppState>,
    org: OrgRequest,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    headers: HeaderMap,
    AppQuery(query): AppQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    let last = match headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("?").to_owned())
        .or(query.last_event_id.clone())
    {
        None => None,
        Some(s) if s.trim().is_empty() => None,
        Some(s) => Some(
            s.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_last_event_id",
                        "Last-Event-ID must be an event id (a non-negative integer).",
                    )
                })?,
        ),
    };
    let auth = *org.auth();
    let (_, scope) = org.read_scope();
    let board = query.board_id;
    let ctx = crate::read_unit!(state.db, scope, |u| async move {
        let ctx = org.enter(u).await?;
        ctx.require(Action::ReadOrg, Ownership::NotOwn)?;
        if let Some(board) = board
            && !board_exists(u, ctx.org_id, board).await?
        {
            return Err(ApiError::validation(vec![FieldError::new(
                "board_id",
                "no such board in this organization",
            )]));
        }
        Ok(ctx)
    })?;
    let guard = state
        .live
        .open_stream(ctx.user_id, state.config.max_streams_per_user)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                "Too many open streams",
                "This user already has the largest number of open event streams on this node.",
            )
        })?;
    // Subscribe before reading the table: nothing can fall in between.
    let rx = state.live.hub.subscribe();
    let mut sub = Subscriber {
        state: state.clone(),
        org_id: ctx.org_id,
        user_id: ctx.user_id,
        board: query.board_id,
        last: 0,
        rx,
        queue: VecDeque::new(),
        more: false,
        closing: false,
        session: auth.session,
        expires: token_deadline(auth.expires_at),
        _guard: guard,
    };
    sub.start(last).await?;
    let heartbeat = Duration::from_secs(state.config.events_heartbeat_secs.max(1));
    match ws {
        Ok(upgrade) => Ok(upgrade.on_upgrade(move |socket| websocket(socket, sub, heartbeat))),
        Err(_) => {
            let stream = futures_util::stream::unfold(sub, |mut sub| async move {
                let item = sub.next().await?;
                Some((Ok::<_, Infallible>(item.sse()), sub))
            });
            let mut res = Sse::new(stream)
                .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
                .into_response();
            // Proxies must not buffer the stream.
            res.headers_mut()
                .insert("x-accel-buffering", HeaderValue::from_static("no"));
            Ok(res)
        }
    }
}

/// The moment a token expiring at `exp` (Unix seconds) stops being valid,
/// on the runtime's clock.
fn token_deadline(exp: u64) -> tokio::time::Instant {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    tokio::time::Instant::now() + Duration::from_secs(exp.saturating_sub(now))
}

async fn board_exists<U: Uow>(u: &mut U, org_id: Uuid, board: Uuid) -> Result<bool, DbError> {
    let found = u
        .fetch_optional(
            "SELECT 1 FROM boards WHERE org_id = $1 AND id = $2",
            &args![org_id, board],
        )
        .await?;
    Ok(found.is_some())
}

async fn websocket(mut socket: WebSocket, mut sub: Subscriber, heartbeat: Duration) {
    let mut ping = tokio::time::interval(heartbeat);
    ping.tick().await;
    loop {
        tokio::select! {
            item = sub.next() => match item {
                Some(item) => {
                    if socket.send(Message::Text(item.json().into())).await.is_err() {
                        break;
                    }
                }
                None => {
                    let _ = socket.send(Message::Close(None)).await;
                    break;
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// What a stream sends.
#[derive(Debug)]
pub enum Item {
    /// An event.
    Event(Arc<Event>),
    /// Events the client asked for are gone: reload, then resume from `last_id`.
    Reset {
        /// The current last event id of the organization.
        last_id: i64,
    },
    /// The stream ends because its credentials did: `token_expired` or
    /// `session_revoked`. Reconnect with a fresh access token and the last
    /// event id seen.
    End {
        /// Why.
        reason: &'static str,
        /// The last event id sent before it.
        last_id: i64,
    },
}

impl Item {
    fn json(&self) -> String {
        match self {
            Item::Event(e) => serde_json::to_string(e.as_ref()).unwrap_or_default(),
            Item::Reset { last_id } => {
                json!({ "type": "reset", "id": last_id, "reason": "events_expired" }).to_string()
            }
            Item::End { reason, last_id } => {
                json!({ "type": "end", "id": last_id, "reason": reason }).to_string()
            }
        }
    }

    fn sse(&self) -> axum::response::sse::Event {
        let (id, kind) = match self {
            Item::Event(e) => (e.id, e.kind.as_str()),
            Item::Reset { last_id } => (*last_id, "reset"),
            Item::End { last_id, .. } => (*last_id, "end"),
        };
        axum::response::sse::Event::default()
            .id(id.to_string())
            .event(kind)
            .data(self.json())
    }
}

/// One subscriber: its organization, filter, position and inbox.
struct Subscriber {
    state: AppState,
    org_id: Uuid,
    user_id: Uuid,
    board: Option<Uuid>,
    /// Every event up to this id has been queued or skipped.
    last: i64,
    rx: tokio::sync::broadcast::Receiver<Signal>,
    queue: VecDeque<Item>,
    /// The table may hold more events after `last` than were queued.
    more: bool,
    closing: bool,
    /// The session of the token that opened the stream, if it has one.
    session: Option<Uuid>,
    /// When that token expires: the stream ends then.
    expires: tokio::time::Instant,
    _guard: StreamGuard,
}

impl Subscriber {
    fn scope(&self) -> Scope {
        Scope::tenant(self.user_id, self.org_id)
    }

    /// Positions the stream: after `resume` (replaying what followed), or
    /// at the organization's newest event.
    async fn start(&mut self, resume: Option<i64>) -> Result<(), ApiError> {
        if resume.is_none() {
            self.state.live.flush(&self.state.db).await?;
        }
        let org_id = self.org_id;
        let (min, max): (Option<i64>, Option<i64>) = crate::read_unit!(
            self.state.db,
            self.scope(),
            |u| async move {
                // Two index probes (MIN and MAX together would scan the org's events).
                let row = u
                    .fetch_optional(
                        "SELECT (SELECT id FROM events WHERE org_id = $1 AND id IS NOT NULL ORDER BY id LIMIT 1), \
                         (SELECT id FROM events WHERE org_id = $1 AND id IS NOT NULL ORDER BY id DESC LIMIT 1)",
                        &args![org_id],
                    )
                    .await?
                    .ok_or_else(|| DbError::Executor("no row from an aggregate".into()))?;
                Ok::<_, DbError>((row.get(0)?, row.get(1)?))
            }
        )?;
        let max = max.unwrap_or(0);
        match resume {
            None => self.last = max,
            Some(last) if last > max || min.is_some_and(|m| m > last + 1) => {
                self.last = max;
                self.queue.push_back(Item::Reset { last_id: max });
            }
            Some(last) => {
                self.last = last;
                self.fill().await?;
            }
        }
        Ok(())
    }

    /// Queues the next committed events after `last` from the table, one
    /// batch at a time (`more` asks for the next once the queue drains, so a
    /// long replay never sits in memory whole).
    async fn fill(&mut self) -> Result<(), DbError> {
        let (org_id, last) = (self.org_id, self.last);
        let sql = format!(
            "SELECT {} FROM events WHERE org_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            Event::COLUMNS
        );
        let rows = crate::read_unit!(self.state.db, self.scope(), |u| async move {
            u.fetch_all(&sql, &args![org_id, last, FILL_BATCH])
                .await?
                .iter()
                .map(Event::from_row)
                .collect::<Result<Vec<_>, DbError>>()
        })?;
        self.more = rows.len() as i64 >= FILL_BATCH;
        for e in rows {
            if e.id == self.last + 1 {
                self.accept(Arc::new(e));
            }
        }
        Ok(())
    }

    /// Takes the next event in order.
    fn accept(&mut self, e: Arc<Event>) {
        self.last = e.id;
        let about_me = e.entity.0.get("id").and_then(|v| v.as_str())
            == Some(self.user_id.hyphenated().to_string().as_str());
        let ends = e.kind == Kind::OrgDeleted
            || (about_me && (e.kind == Kind::MemberRemoved || e.kind == Kind::MemberLeft));
        if self.board.is_none() || e.board_id == self.board {
            self.queue.push_back(Item::Event(e));
        }
        if ends {
            self.closing = true;
        }
    }

    /// Whether the session of the token that opened the stream is still
    /// live (not logged out, not revoked for reuse). Tokens without a
    /// session only expire.
    async fn session_live(&self) -> bool {
        let Some(session) = self.session else {
            return true;
        };
        // The database being away is not a reason to disconnect.
        !matches!(
            self.exists(
                "SELECT 1 FROM refresh_tokens WHERE family_id = $1 AND user_id = $2 \
                 AND revoked_at IS NULL LIMIT 1",
                session,
            )
            .await,
            Ok(false)
        )
    }

    /// Whether `sql` (`$1` the given id, `$2` the subscriber) finds a row,
    /// read as the subscriber.
    async fn exists(&self, sql: &'static str, id: Uuid) -> Result<bool, DbError> {
        let user_id = self.user_id;
        crate::read_unit!(self.state.db, Scope::user(user_id), |u| async move {
            Ok::<_, DbError>(u.fetch_optional(sql, &args![id, user_id]).await?.is_some())
        })
    }

    /// Ends the stream with an `end` item saying why.
    fn end(&mut self, reason: &'static str) {
        self.queue.push_back(Item::End {
            reason,
            last_id: self.last,
        });
        self.closing = true;
    }

    async fn still_member(&self) -> bool {
        // The database being away is not a reason to disconnect.
        !matches!(
            self.exists(
                "SELECT 1 FROM memberships m JOIN organizations o ON o.id = m.org_id \
                 WHERE m.org_id = $1 AND m.user_id = $2 AND o.deleted_at IS NULL",
                self.org_id,
            )
            .await,
            Ok(false)
        )
    }

    /// The next item to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Item> {
        let mut recheck = tokio::time::interval_at(tokio::time::Instant::now() + RECHECK, RECHECK);
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.closing {
                return None;
            }
            if self.more {
                if let Err(e) = self.fill().await {
                    tracing::warn!(error = %e, "event stream cannot read missed events; closing");
                    return None;
                }
                continue;
            }
            let shutdown = self.state.shutdown.clone();
            let signal = tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep_until(self.expires) => {
                    self.end("token_expired");
                    continue;
                }
                _ = recheck.tick() => {
                    if !self.still_member().await {
                        return None;
                    }
                    if !self.session_live().await {
                        self.end("session_revoked");
                        continue;
                    }
                    // Also picks up events whose message was lost while
                    // nothing newer came to reveal the gap.
                    self.more = true;
                    continue;
                }
                r = self.rx.recv() => r,
            };
            let gap = match signal {
                Ok(Signal::Event(e)) if e.org_id == self.org_id => {
                    if e.id <= self.last {
                        continue;
                    }
                    if e.id == self.last + 1 {
                        self.accept(e);
                        continue;
                    }
                    true
                }
                Ok(Signal::Event(_)) => continue,
                Ok(Signal::SessionRevoked(s)) => {
                    if Some(s) == self.session {
                        self.end("session_revoked");
                    }
                    continue;
                }
                Ok(Signal::Resync) | Err(RecvError::Lagged(_)) => true,
                Err(RecvError::Closed) => return None,
            };
            if gap && let Err(e) = self.fill().await {
                tracing::warn!(error = %e, "event stream cannot read missed events; closing");
                return None;
            }
        }
    }
}
