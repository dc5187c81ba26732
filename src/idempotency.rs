//! `Idempotency-Key` for every creating `POST`.
//!
//! The key is the caller's own (scoped by user) and bound to the method,
//! path and body it was first used with (a SHA-256 of the three). Inside the
//! handler's write transaction, [`claim`] inserts the key first: if it was
//! new the handler proceeds and [`complete`] stores the answer in the same
//! transaction; if it existed, the stored answer is replayed (same status,
//! same body), or `422` when the body or path differ. Two concurrent
//! requests with one key serialize on the key's primary key (PostgreSQL
//! waits for the first to commit; SQLite has one writer), so exactly one
//! creates. A failed request stores nothing. Keys are kept at least 24
//! hours; a clean-up job removes older ones.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::args;
use crate::db::now;
use crate::db::uow::Uow;
use crate::domain::{DomainError, ErrorKind};
use crate::error::ApiError;
use crate::http::extract::{json_body, parse_json};

/// Longest accepted key.
pub const MAX_KEY_LEN: usize = 255;

/// An idempotency key with the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct IdemKey {
    key: String,
    fingerprint: Vec<u8>,
}

/// The JSON body of a creating `POST`, with its `Idempotency-Key` if any.
pub struct Creating<T> {
    /// The parsed body.
    pub body: T,
    /// The key, when the client sent one.
    pub key: Option<IdemKey>,
}

impl<S, T> FromRequest<S> for Creating<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let key = match req.headers().get("idempotency-key") {
            None => None,
            Some(v) => {
                let k = v
                    .to_str()
                    .ok()
                    .filter(|k| {
                        !k.is_empty()
                            && k.len() <= MAX_KEY_LEN
                            && k.bytes().all(|b| b.is_ascii_graphic())
                    })
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_idempotency_key",
                            format!(
                                "Idempotency-Key must be 1–{MAX_KEY_LEN} visible ASCII characters."
                            ),
                        )
                    })?;
                Some(k.to_owned())
            }
        };
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let bytes = json_body(req, state).await?;
        let body = parse_json::<T>(&bytes)?;
        let key = key.map(|key| {
            let mut h = Sha256::new();
            h.update(method.as_bytes());
            h.update([0]);
            h.update(path.as_bytes());
            h.update([0]);
            h.update(&bytes);
            IdemKey {
                key,
                fingerprint: h.finalize().to_vec(),
            }
        });
        Ok(Creating { body, key })
    }
}

/// What a creating use case answers: the new task, or the stored answer of
/// an earlier request with the same `Idempotency-Key`.
pub enum Created<T> {
    /// Made now.
    New(T),
    /// Replayed.
    Replay(Replay),
}

/// The stored answer of an earlier request with the same key.
#[derive(Debug)]
pub struct Replay {
    /// Its status.
    pub status: u16,
    /// Its JSON body.
    pub body: String,
}

impl IntoResponse for Replay {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut res = (status, self.body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        res
    }
}

/// Claims `key` for this request in the unit of work `u`. `Ok(None)`:
/// proceed (and call [`complete`] before committing). `Ok(Some(replay))`:
/// answer with the stored response. `Err(422)`: the key was used with
/// another request.
pub async fn claim<U: Uow>(
    u: &mut U,
    user_id: Uuid,
    org_id: Uuid,
    key: Option<&IdemKey>,
) -> Result<Option<Replay>, DomainError> {
    let Some(k) = key else { return Ok(None) };
    let inserted = u
        .execute(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at, org_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, key) DO NOTHING",
            &args![user_id, &k.key, k.fingerprint.as_slice(), now(), org_id],
        )
        .await?;
    if inserted == 1 {
        return Ok(None);
    }
    let stored = u
        .fetch_optional(
            "SELECT request_hash, status, response FROM idempotency_keys \
             WHERE user_id = $1 AND key = $2 AND org_id = $3",
            &args![user_id, &k.key, org_id],
        )
        .await?;
    let stored = match stored {
        Some(r) => Some((
            r.get::<Vec<u8>>(0)?,
            r.get::<Option<i32>>(1)?,
            r.get::<Option<String>>(2)?,
        )),
        None => None,
    };
    // Not found although the insert conflicted: the key was used in
    // another organization (row-level security hides it on PostgreSQL, the
    // filter on SQLite), which is another request.
    let Some((_, status, response)) = stored.filter(|(hash, _, _)| *hash == k.fingerprint) else {
        return Err(DomainError::new(
            ErrorKind::Invalid,
            "idempotency_key_reused",
            "Idempotency key reused",
            "This Idempotency-Key was already used with a different request.",
        ));
    };
    match (status, response) {
        (Some(status), Some(body)) => Ok(Some(Replay {
            status: u16::try_from(status).unwrap_or(200),
            body,
        })),
        _ => Err(DomainError::conflict(
            "idempotency_key_in_use",
            "A request with this Idempotency-Key is still in progress.",
        )),
    }
}

/// Stores the answer (`status`, `body`) for a claimed key, in the unit of
/// work of the change.
pub async fn complete<U: Uow, T: Serialize>(
    u: &mut U,
    user_id: Uuid,
    key: Option<&IdemKey>,
    status: u16,
    body: &T,
) -> Result<(), DomainError> {
    let Some(k) = key else { return Ok(()) };
    let json =
        serde_json::to_string(body).map_err(|e| DomainError::internal(anyhow::anyhow!(e)))?;
    u.defer(
        "UPDATE idempotency_keys SET status = $1, response = $2 WHERE user_id = $3 AND key = $4",
        &args![i32::from(status), &json, user_id, &k.key],
    )
    .await?;
    Ok(())
}
