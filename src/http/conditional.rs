//! Conditional reads of an organization's collections: an `ETag` of the
//! organization's changes counter (every acknowledged change of it bumps
//! the counter, whatever it changed: [`crate::cache::BoardCache::org_version`])
//! and of the request's path and query; `If-None-Match` with it answers
//! `304` without reading the collection.
//!
//! The counter is read *before* the database, so a page read after it holds
//! every change acknowledged before it, and the tag can only be older than
//! the content, never newer. The `304` comes after the membership and role
//! check and after the query was checked: a stranger gets `404`, a member
//! without the role `403`, a bad query its `400`/`422`, whatever tag they
//! send. Collections that change without a change of the organization
//! (members and invitations carry users' own names and e-mail addresses)
//! have no tag; neither has `{org}` given by slug (the organization is not
//! known before the database).

use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::db::uow::{AnyRow, DbError};
use crate::error::ApiError;
use crate::http::extract::AppJson;
use crate::http::page::{PageQuery, paginate};
use crate::orgs::context::{Collection, CursorKey, OrgKey, OrgRequest};
use crate::state::AppState;

/// A page of the organization's collection `c`, answered conditionally: an
/// `ETag` of the organization's version and the query (by id), `304` when
/// `If-None-Match` has it — after the membership, page size, cursor and
/// parent checks of [`OrgRequest::read_collection`], with no page read —
/// else the page, paged by `key`.
pub async fn collection_page<K, T, C>(
    state: &AppState,
    org: OrgRequest,
    q: PageQuery,
    c: Collection,
    (uri, headers): (&Uri, &HeaderMap),
    decode: fn(&AnyRow) -> Result<T, DbError>,
    key: impl Fn(&T) -> C,
) -> Result<Response, ApiError>
where
    K: CursorKey,
    T: serde::Serialize + Send + 'static,
    C: serde::Serialize,
{
    let cond = Conditional::read(state, &org, c.name, uri, headers).await;
    let unchanged = cond.unchanged();
    let read = org
        .read_collection::<K, T>(state, q, unchanged, c, decode)
        .await?;
    let Some((rows, scope, limit)) = read else {
        return Ok(cond.not_modified());
    };
    Ok(cond.answer(AppJson(paginate(state, &scope, rows, limit, key))))
}

/// The `ETag` of a collection answer and whether the client has it.
pub struct Conditional {
    etag: Option<String>,
    unchanged: bool,
}

impl Conditional {
    /// Reads the organization's version (before any database read) and
    /// compares the tag it gives with `If-None-Match`; `what` names the
    /// collection in the tag.
    pub async fn read(
        state: &AppState,
        org: &OrgRequest,
        what: &str,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Self {
        let version = match org.org_key() {
            Some((_, OrgKey::Id(id))) => state.live.cache.org_version(id).await,
            _ => None,
        };
        // The path names the board or task of nested collections.
        let etag = version.map(|v| {
            v.collection_etag(
                what,
                &format!("{}?{}", uri.path(), uri.query().unwrap_or("")),
            )
        });
        let unchanged = etag.as_ref().is_some_and(|tag| if_none_match(headers, tag));
        Self { etag, unchanged }
    }

    /// The client's copy is current: answer [`Conditional::not_modified`]
    /// (once access and the query were checked).
    pub fn unchanged(&self) -> bool {
        self.unchanged
    }

    /// `304 Not Modified` with the tag.
    pub fn not_modified(self) -> Response {
        not_modified(self.etag)
    }

    /// `body` with the tag.
    pub fn answer(self, body: impl IntoResponse) -> Response {
        let mut res = body.into_response();
        if let Some(v) = self.etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
            res.headers_mut().insert(header::ETAG, v);
        }
        res
    }
}

/// Whether `If-None-Match` names `etag` (a quoted tag) or is `*`; weak
/// tags and comma-separated lists compare too.
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// `304 Not Modified` with the current `ETag`.
pub fn not_modified(etag: Option<String>) -> axum::response::Response {
    let mut res = axum::http::StatusCode::NOT_MODIFIED.into_response();
    if let Some(v) = etag.and_then(|t| axum::http::HeaderValue::from_str(&t).ok()) {
        res.headers_mut().insert(axum::http::header::ETAG, v);
    }
    res
}

/// Whether the client accepts gzip (`gzip` or `*` without `q=0`).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}
