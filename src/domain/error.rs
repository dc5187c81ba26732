//! The error of a use case, in the product's terms ([`DomainError`]).
//!
//! Use cases (the functions over a [`crate::db::uow::Uow`] in each
//! resource's module) and the rules below them return `DomainError`; only
//! the HTTP edge ([`crate::error::ApiError`]) turns an [`ErrorKind`] into a
//! status and a `problem+json` answer. A `DomainError` carries what the
//! answer needs besides the status — the stable machine `code`, a title,
//! the human detail and the invalid fields — so the mapping is one `match`
//! and nothing a use case said is lost on the way out.
//!
//! Storage errors become domain errors here (a busy database is
//! [`ErrorKind::Unavailable`], text PostgreSQL refuses is a bad request,
//! everything else internal), so a use case can `?` them.

use super::{FieldError, Forbidden};
use crate::db::uow::DbError;
use crate::db::writer::WriterStopped;

/// What kind of failure a [`DomainError`] is; the HTTP edge gives each a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such thing, or in another organization, or not visible to the
    /// caller (all three look the same on purpose).
    NotFound,
    /// The caller's role does not allow the action.
    Forbidden,
    /// Missing or wrong credentials, or an account that is gone.
    Unauthenticated,
    /// The input cannot be understood (a malformed value, cursor or text).
    BadRequest,
    /// The input is understood but some fields are invalid.
    Invalid,
    /// The change conflicts with the current state.
    Conflict,
    /// The caller's version of the thing is not the current one.
    PreconditionFailed,
    /// The thing existed and has expired.
    Gone,
    /// The organization is suspended by the instance administrator.
    Suspended,
    /// The database is busy or shutting down (retry shortly).
    Unavailable,
    /// A fault of the server or its data; logged, never shown.
    Internal,
}

/// A use case's failure: its kind, stable machine code, title, detail for
/// humans, the invalid fields, and (for internal errors) the cause, which
/// is logged and never answered.
#[derive(Debug)]
pub struct DomainError {
    kind: ErrorKind,
    code: &'static str,
    title: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    source: Option<anyhow::Error>,
}

impl DomainError {
    /// An error of `kind` with the given code, title and detail.
    pub fn new(
        kind: ErrorKind,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            code,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            source: None,
        }
    }

    /// No such thing, or in another organization, or the caller is not a
    /// member: all three look the same on purpose.
    pub fn not_found() -> Self {
        Self::new(
            ErrorKind::NotFound,
            "not_found",
            "Not found",
            "The requested resource does not exist.",
        )
    }

    /// The caller's role does not allow the action.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, "forbidden", "Forbidden", detail)
    }

    /// Missing, malformed or expired credentials.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Unauthenticated,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// A well-signed credential whose account no longer exists.
    pub fn account_gone() -> Self {
        Self::unauthenticated("The account no longer exists.").with_code("account_not_found")
    }

    /// The input could not be understood (bad value, bad cursor).
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, code, "Bad request", detail)
    }

    /// Some fields are invalid (`validation_failed`).
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid.", errors.len()),
        };
        let mut e = Self::new(
            ErrorKind::Invalid,
            "validation_failed",
            "Validation failed",
            detail,
        );
        e.errors = errors;
        e
    }

    /// One invalid field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldError::new(field, message)])
    }

    /// The change conflicts with the current state.
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, "Conflict", detail)
    }

    /// `org_suspended`: an instance administrator suspended the
    /// organization (`orgboard admin suspend`); its data is kept.
    pub fn suspended() -> Self {
        Self::new(
            ErrorKind::Suspended,
            "org_suspended",
            "Organization suspended",
            "This organization is suspended by the instance administrator; its data is kept.",
        )
    }

    /// The database is busy or unavailable.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::Unavailable,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// A fault of the server or its data: logged with its source, answered
    /// without it.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut e = Self::new(
            ErrorKind::Internal,
            "internal",
            "Internal server error",
            "An unexpected error occurred.",
        );
        e.source = Some(source.into());
        e
    }

    /// Adds a field error (keeps kind and code).
    pub fn with_field(mut self, field: &str, message: &str) -> Self {
        self.errors.push(FieldError::new(field, message));
        self
    }

    /// Replaces the machine code (keeps kind and title).
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The detail, for humans.
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Its parts, for the HTTP edge: kind, code, title, detail, fields, cause.
    #[allow(clippy::type_complexity)]
    pub fn into_parts(
        self,
    ) -> (
        ErrorKind,
        &'static str,
        &'static str,
        String,
        Vec<FieldError>,
        Option<anyhow::Error>,
    ) {
        (
            self.kind,
            self.code,
            self.title,
            self.detail,
            self.errors,
            self.source,
        )
    }
}

/// For logs (never answered): the code and the detail, or for an internal
/// error its cause with its whole chain.
impl std::fmt::Display for DomainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Some(cause) => write!(f, "{}: {cause:#}", self.code),
            None => write!(f, "{}: {}", self.code, self.detail),
        }
    }
}

impl std::error::Error for DomainError {}

/// The result of a use case.
pub type DomainResult<T> = Result<T, DomainError>;

impl From<Forbidden> for DomainError {
    fn from(f: Forbidden) -> Self {
        Self::forbidden(f.0)
    }
}

impl From<WriterStopped> for DomainError {
    fn from(e: WriterStopped) -> Self {
        match e {
            WriterStopped::ShuttingDown => Self::unavailable("The database is shutting down."),
            WriterStopped::Busy => Self::unavailable("The database is busy; retry shortly."),
            WriterStopped::Failed(m) => Self::internal(anyhow::anyhow!(m)),
        }
    }
}

impl From<rusqlite::Error> for DomainError {
    fn from(err: rusqlite::Error) -> Self {
        if crate::db::writer::is_busy(&err) {
            tracing::warn!(error = %err, "database busy");
            return Self::unavailable("The database is busy; retry shortly.");
        }
        Self::internal(err)
    }
}

impl From<DbError> for DomainError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Sqlx(e) => e.into(),
            DbError::Lite(e) => e.into(),
            DbError::Pg(e) => e.into(),
            DbError::PoolTimedOut => {
                tracing::warn!("database pool timed out");
                Self::unavailable("No database connection available; retry shortly.")
            }
            e @ (DbError::Decode(..) | DbError::Executor(_)) => Self::internal(e),
        }
    }
}

/// The code of the conflict a task create or move retries (see
/// `From<tokio_postgres::Error>`).
pub const POSITION_TAKEN: &str = "position_taken";

/// The constraint a PostgreSQL error names, if any.
fn constraint(err: &tokio_postgres::Error) -> Option<&str> {
    err.as_db_error().and_then(|d| d.constraint())
}

impl From<tokio_postgres::Error> for DomainError {
    fn from(err: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        // A connection the server or the network closed (a restart, an
        // administrator's terminate, a cut while it sat in the pool;
        // SQLSTATE classes 08 and 57P): the pool replaces it, the client
        // retries.
        let lost = err.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P")
        });
        if err.is_closed() || lost {
            tracing::warn!(error = %err, "database connection closed");
            return Self::unavailable("The database connection was lost; retry shortly.");
        }
        match err.code() {
            Some(c)
                if *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED =>
            {
                tracing::warn!(error = %err, "database busy");
                Self::unavailable("The database is busy; retry shortly.")
            }
            // A task create or move locks no list (`tasks::write`): the
            // list it read can be deleted before its write, and (about
            // once in 9·10⁸ writes that read the same neighbours at once)
            // its key can be taken. The first answers as a missing list
            // would have; the second is retried by the route.
            Some(c)
                if *c == SqlState::FOREIGN_KEY_VIOLATION
                    && constraint(&err) == Some("tasks_list_fk") =>
            {
                Self::not_found()
            }
            Some(c)
                if *c == SqlState::UNIQUE_VIOLATION
                    && constraint(&err) == Some("tasks_position_key") =>
            {
                Self::new(
                    ErrorKind::Conflict,
                    POSITION_TAKEN,
                    "Conflict",
                    "Another write placed a task at the same position at the same moment; retry.",
                )
            }
            // As for sqlx below: NUL characters in text.
            Some(c) if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE => Self::bad_request(
                "invalid_text",
                "Text must not contain NUL characters or invalid UTF-8.",
            ),
            _ => Self::internal(err),
        }
    }
}

impl From<sqlx::Error> for DomainError {
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

/// A stored order key that cannot be placed around is corrupt data.
impl From<super::ordering::KeyError> for DomainError {
    fn from(err: super::ordering::KeyError) -> Self {
        Self::internal(err)
    }
}

impl From<anyhow::Error> for DomainError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(err)
    }
}
