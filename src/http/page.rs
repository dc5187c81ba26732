//! Keyset pagination shared by every collection: `limit` (default 50, max
//! 200), and opaque, signed cursors bound to the organization and the
//! collection they came from (a forged or transplanted cursor is a `400`,
//! never someone else's rows).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::state::AppState;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 200;
/// Longest cursor worth opening (longer ones are `400 invalid_cursor`).
/// A `sort=position` cursor carries a position, which may grow up to
/// [`crate::domain::ordering::MAX_KEY_LEN`] (4 096) bytes after very many
/// inserts at one spot; sealed and encoded that is under 6 KB.
pub const MAX_CURSOR_LEN: usize = 8192;

/// `limit` and `cursor` query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of a collection.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Cursor for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The page size asked for, checked.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed<C> {
    /// Which collection (and organization) the cursor belongs to.
    s: String,
    /// The position.
    p: C,
}

/// Seals a position into a cursor bound to `scope` (e.g. `"audit:<org id>"`).
pub fn seal<C: Serialize>(state: &AppState, scope: &str, position: &C) -> String {
    let body = serde_json::to_vec(&Sealed {
        s: scope.to_owned(),
        p: position,
    })
    .unwrap_or_default();
    state.keys.seal_cursor(&body)
}

/// Opens a cursor made by [`seal`] for the same `scope`; `400` otherwise.
pub fn open<C: DeserializeOwned>(
    state: &AppState,
    scope: &str,
    cursor: &str,
) -> Result<C, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_cursor",
            "The cursor is invalid or does not belong to this collection.",
        )
    };
    if cursor.len() > MAX_CURSOR_LEN {
        return Err(bad());
    }
    let raw = state.keys.open_cursor(cursor).ok_or_else(bad)?;
    let sealed: Sealed<C> = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if sealed.s != scope {
        return Err(bad());
    }
    Ok(sealed.p)
}

/// Splits `rows` (fetched with `limit + 1`) into a page, sealing the key of
/// the last item shown when there is more.
pub fn paginate<T, C: Serialize>(
    state: &AppState,
    scope: &str,
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> C,
) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|last| seal(state, scope, &key(last)))
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}
