//! The one error type every route answers with, rendered as RFC 9457
//! `application/problem+json`.
//!
//! Handlers return `Result<_, ApiError>`; the use cases below them return
//! [`DomainError`], which becomes an `ApiError` at this edge (`?` does it:
//! [`status_of`] gives each [`ErrorKind`] its status). What only HTTP knows
//! — `401` from a missing token, `429` from a limiter, `413`/`415` from a
//! body — is made here. Constructors name the situation
//! (`ApiError::not_found()`, `ApiError::validation(..)`); every error carries a
//! stable machine `code` that clients can switch on. Internal errors are
//! logged with their whole source chain and answered with a generic `500`
//! that echoes nothing of the cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::domain::FieldError;
use crate::domain::error::{DomainError, ErrorKind};

/// The RFC 9457 body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`urn:orgboard:problem:<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short human summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human explanation of this occurrence.
    pub detail: String,
    /// Stable machine code (`not_found`, `forbidden`, `validation_failed`, …).
    pub code: String,
    /// Invalid fields, for `validation_failed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    retry_after: Option<u64>,
    source: Option<anyhow::Error>,
}

impl ApiError {
    /// An error with the given status, code, title and detail.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    /// `404`: the resource does not exist, or lives in another organization,
    /// or the caller is not a member. All three look the same on purpose.
    pub fn not_found() -> Self {
        DomainError::not_found().into()
    }

    /// `403`: the caller's role does not allow the action.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        DomainError::forbidden(detail).into()
    }

    /// `401`: missing, malformed or expired credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        DomainError::unauthenticated(detail).into()
    }

    /// `401`: a well-signed token whose account no longer exists.
    pub fn account_gone() -> Self {
        DomainError::account_gone().into()
    }

    /// `400`: the request could not be understood (bad JSON, bad path, bad query).
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        DomainError::bad_request(code, detail).into()
    }

    /// `422`: the request was understood but some fields are invalid.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        DomainError::validation(errors).into()
    }

    /// `422` for a single invalid field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        DomainError::invalid_field(field, message).into()
    }

    /// `409`: the request conflicts with the current state.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        DomainError::conflict(code, detail).into()
    }

    /// `423 org_suspended`: an instance administrator suspended the
    /// organization (`orgboard admin suspend`); its data is kept.
    pub fn suspended() -> Self {
        DomainError::suspended().into()
    }

    /// `429` with `Retry-After` in seconds.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
            format!("Too many attempts; retry in {retry_after_secs} s."),
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// `503` with `Retry-After`: the database is busy or unavailable.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        DomainError::unavailable(detail).into()
    }

    /// `500`: logged with its source, answered without it.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        DomainError::internal(source).into()
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The problem body.
    pub fn problem(&self) -> Problem {
        Problem {
            kind: format!("urn:orgboard:problem:{}", self.code),
            title: self.title.to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            code: self.code.to_owned(),
            errors: self.errors.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            tracing::error!(error = format!("{source:#}"), "internal error");
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res.extensions_mut().insert(ErrorCode(self.code));
        res
    }
}

/// The `code` of a problem answer, kept on the response for the layers
/// around the handlers (the security log notes permission refusals).
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

/// The status of each kind of use-case failure (SPEC §6's error table).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::Gone => StatusCode::GONE,
        ErrorKind::Suspended => StatusCode::LOCKED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A use case's failure as the client is answered: its kind's status, and
/// `Retry-After: 1` when the database was busy.
impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let (kind, code, title, detail, errors, source) = e.into_parts();
        let mut out = Self::new(status_of(kind), code, title, detail);
        out.errors = errors;
        out.source = source;
        if kind == ErrorKind::Unavailable {
            out.retry_after = Some(1);
        }
        out
    }
}

/// Errors the use cases convert (storage, permission, ordering, anything
/// else): answered as their [`DomainError`] is.
macro_rules! through_domain {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                DomainError::from(e).into()
            }
        }
    )*};
}

through_domain!(
    crate::domain::Forbidden,
    crate::db::writer::WriterStopped,
    rusqlite::Error,
    crate::db::uow::DbError,
    sqlx::Error,
    crate::domain::ordering::KeyError,
    anyhow::Error,
);

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A use case's error keeps everything it said on its way out: the
    /// status of its kind, code, title, detail, fields, and `Retry-After`
    /// for a busy database; an internal error's cause is not answered.
    #[test]
    fn a_domain_error_is_answered_as_it_said() {
        let e = ApiError::from(
            DomainError::conflict("slug_taken", "This slug is already in use.")
                .with_field("slug", "is already in use"),
        );
        assert_eq!(e.status(), StatusCode::CONFLICT);
        let p = e.problem();
        assert_eq!(
            (p.code.as_str(), p.title.as_str(), p.detail.as_str()),
            ("slug_taken", "Conflict", "This slug is already in use.")
        );
        assert_eq!(p.errors, vec![FieldError::new("slug", "is already in use")]);

        let busy = ApiError::from(DomainError::unavailable("busy")).into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "1");

        let internal = ApiError::from(DomainError::internal(anyhow::anyhow!("secret cause")));
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.problem().detail.contains("secret"));

        let kinds = [
            (ErrorKind::NotFound, 404),
            (ErrorKind::Forbidden, 403),
            (ErrorKind::Unauthenticated, 401),
            (ErrorKind::BadRequest, 400),
            (ErrorKind::Invalid, 422),
            (ErrorKind::Conflict, 409),
            (ErrorKind::PreconditionFailed, 412),
            (ErrorKind::Gone, 410),
            (ErrorKind::Suspended, 423),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Internal, 500),
        ];
        for (kind, status) in kinds {
            assert_eq!(status_of(kind).as_u16(), status, "{kind:?}");
        }
    }
}
