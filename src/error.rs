//! The one error type every route answers with, rendered as RFC 9457
//! `application/problem+json`.
//!
//! Handlers return `Result<_, ApiError>`. Constructors name the situation
//! (`ApiError::not_found()`, `ApiError::validation(..)`); every error carries a
//! stable machine `code` that clients can switch on. Internal errors are
//! logged with their whole source chain and answered with a generic `500`
//! that echoes nothing of the cause.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::domain::FieldError;

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
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            "The requested resource does not exist.",
        )
    }

    /// `403`: the caller's role does not allow the action.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// `401`: missing, malformed or expired credentials.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// `401`: a well-signed token whose account no longer exists.
    pub fn account_gone() -> Self {
        Self::unauthorized("The account no longer exists.").with_code("account_not_found")
    }

    /// `400`: the request could not be understood (bad JSON, bad path, bad query).
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, "Bad request", detail)
    }

    /// `422`: the request was understood but some fields are invalid.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid.", errors.len()),
        };
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Validation failed",
            detail,
        );
        e.errors = errors;
        e
    }

    /// `422` for a single invalid field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// `409`: the request conflicts with the current state.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, "Conflict", detail)
    }

    /// `423 org_suspended`: an instance administrator suspended the
    /// organization (`orgboard admin suspend`); its data is kept.
    pub fn suspended() -> Self {
        Self::new(
            StatusCode::LOCKED,
            "org_suspended",
            "Organization suspended",
            "This organization is suspended by the instance administrator; its data is kept.",
        )
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
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        );
        e.retry_after = Some(1);
        e
    }

    /// `500`: logged with its source, answered without it.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "An unexpected error occurred.",
        );
        e.source = Some(source.into());
        e
    }

    /// Adds a field error (keeps status and code).
    pub fn with_field(mut self, field: &str, message: &str) -> Self {
        self.errors.push(FieldError::new(field, message));
        self
    }

    /// Replaces the machine code (keeps status and title).
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
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

impl From<crate::domain::Forbidden> for ApiError {
    fn from(f: crate::domain::Forbidden) -> Self {
        Self::forbidden(f.0)
    }
}

impl From<crate::db::writer::WriterStopped> for ApiError {
    fn from(e: crate::db::writer::WriterStopped) -> Self {
        match e {
            crate::db::writer::WriterStopped::ShuttingDown => {
                Self::unavailable("The database is shutting down.")
            }
            crate::db::writer::WriterStopped::Busy => {
                Self::unavailable("The database is busy; retry shortly.")
            }
            crate::db::writer::WriterStopped::Failed(m) => Self::internal(anyhow::anyhow!(m)),
        }
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(err: rusqlite::Error) -> Self {
        if crate::db::writer::is_busy(&err) {
            tracing::warn!(error = %err, "database busy");
            return Self::unavailable("The database is busy; retry shortly.");
        }
        Self::internal(err)
    }
}

impl From<crate::db::uow::DbError> for ApiError {
    fn from(err: crate::db::uow::DbError) -> Self {
        use crate::db::uow::DbError;
        match err {
            DbError::Sqlx(e) => e.into(),
            DbError::Lite(e) => e.into(),
            e @ (DbError::Decode(..) | DbError::Executor(_)) => Self::internal(e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if crate::db::is_busy(&err) {
            tracing::warn!(error = %err, "database busy");
            return Self::unavailable("The database is busy; retry shortly.");
        }
        // PostgreSQL refuses NUL characters in text (SQLSTATE 22021); a field
        // that does not check for them itself must still not become a 500.
        if err
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c == "22021")
        {
            return Self::bad_request(
                "invalid_text",
                "Text must not contain NUL characters or invalid UTF-8.",
            );
        }
        if matches!(err, sqlx::Error::PoolTimedOut) {
            tracing::warn!("database pool timed out");
            return Self::unavailable("No database connection available; retry shortly.");
        }
        Self::internal(err)
    }
}

/// A stored order key that cannot be placed around is corrupt data: a 500.
impl From<crate::domain::ordering::KeyError> for ApiError {
    fn from(err: crate::domain::ordering::KeyError) -> Self {
        Self::internal(err)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(err)
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
