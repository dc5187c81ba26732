//! Extractors whose rejections are `problem+json` like every other error:
//! axum's default rejection text never reaches a client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::state::AppState;

/// A JSON body (in) or response (out).
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(AppJson(parse_json(&json_body(req, state).await?)?))
    }
}

/// Where a JSON answer starts: axum's `Json` starts at 128 bytes and grows
/// by doubling, ~9 copies for a page of 50 tasks (~40 KB), which `perf`
/// showed (realloc, `malloc_consolidate`) under the filtered page.
const JSON_START: usize = 4096;

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(JSON_START);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(header::CONTENT_TYPE, "application/json")],
                Bytes::from(body),
            )
                .into_response(),
            Err(e) => ApiError::internal(anyhow::Error::new(e)).into_response(),
        }
    }
}

/// The raw body of a JSON request: `415` without a JSON content type, `413`
/// over the size limit.
pub(crate) async fn json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            ct == "application/json" || (ct.starts_with("application/") && ct.ends_with("+json"))
        });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "Send the body as application/json.",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                "The request body is larger than this server accepts.",
            )
        } else {
            ApiError::bad_request("unreadable_body", "The request body could not be read.")
        }
    })
}

/// Parses a JSON body: `400 malformed_json` when it is not JSON at all,
/// `422 validation_failed` naming the field when it is JSON of the wrong
/// shape (serde_json calls some type errors "syntax", so the category is
/// decided by whether the bytes are valid JSON, checked only on failure).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed =
        || ApiError::bad_request("malformed_json", "The request body is not valid JSON.");
    // Every body is an object: serde would also fill a struct from an array
    // (`[null, null]` was taken as an empty PATCH), which no client means.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
            return Err(malformed());
        }
        return Err(ApiError::validation(vec![FieldError::new(
            "",
            "the body must be a JSON object",
        )]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let err = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        // Trailing bytes after a complete value make the body malformed.
        Ok(v) => return de.end().map(|()| v).map_err(|_| malformed()),
        Err(e) => e,
    };
    if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
        return Err(malformed());
    }
    let path = err.path().to_string();
    let mut field = if path == "." { String::new() } else { path };
    let msg = strip_position(&err.inner().to_string());
    // "missing field `role`" is reported at the parent: name the field.
    if let Some(name) = msg
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        field = if field.is_empty() {
            name.to_owned()
        } else {
            format!("{field}.{name}")
        };
    }
    Err(ApiError::validation(vec![FieldError::new(field, msg)]))
}

/// serde's messages end with " at line 1 column 7", which means nothing to a
/// client that did not format the JSON by hand.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// Path parameters.
pub struct AppPath<T>(pub T);

impl<S, T> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| AppPath(p.0))
            .map_err(|e: PathRejection| {
                let detail = match &e {
                    PathRejection::FailedToDeserializePathParams(d) => {
                        let text = d.body_text();
                        strip_position(text.strip_prefix("Invalid URL: ").unwrap_or(&text))
                    }
                    _ => "The path is invalid.".to_owned(),
                };
                ApiError::bad_request("invalid_path", detail)
            })
    }
}

/// Query-string parameters.
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| AppQuery(q.0))
            .map_err(|e: QueryRejection| {
                let detail = e.body_text();
                let detail = detail
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&detail)
                    .to_owned();
                ApiError::bad_request("invalid_query", detail)
            })
    }
}

/// The client's address: the socket peer, or the first `X-Forwarded-For`
/// entry when `ORGBOARD_TRUST_FORWARDED_FOR` is on.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.config.trust_forwarded_for
            && let Some(ip) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
        {
            return Ok(ClientIp(ip));
        }
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientIp(ip))
    }
}

/// The request id set by the request-id layer (`x-request-id`).
#[derive(Clone, Debug, Default)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(request_id_of(parts)))
    }
}

/// The request id of a request, if the layer set one.
pub fn request_id_of(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(64).collect())
}

#[cfg(test)]
mod tests {
    use super::strip_position;

    #[test]
    fn serde_positions_are_dropped() {
        assert_eq!(
            strip_position("invalid type: integer `1`, expected a string at line 1 column 11"),
            "invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            strip_position("missing field `email`"),
            "missing field `email`"
        );
    }
}

/// The organization a request acts in, filled in by the organization
/// extractor once the caller's membership is confirmed, for the request log.
#[derive(Debug, Clone, Default)]
pub struct RequestOrg(std::sync::Arc<std::sync::OnceLock<uuid::Uuid>>);

impl RequestOrg {
    /// Notes the organization (the first one noted stays).
    pub fn set(&self, org_id: uuid::Uuid) {
        let _ = self.0.set(org_id);
    }

    /// The organization noted, if any.
    pub fn get(&self) -> Option<uuid::Uuid> {
        self.0.get().copied()
    }
}
