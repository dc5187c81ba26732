//! orgboard: a multi-tenant team task-management server.
//!
//! Layers, each knowing only the one below:
//! * [`http`] — router, middleware, extractors, `problem+json` ([`error`]);
//! * resource modules, one per part of the product, each with its
//!   `router()` and its queries: [`auth`], [`orgs`], [`members`],
//!   [`invites`], [`audit`], [`boards`], [`lists`], [`tasks`], [`labels`],
//!   [`comments`]; [`idempotency`] serves every creating `POST`;
//! * [`domain`] — parsed input types and the permission table;
//! * [`db`] — SQLite and PostgreSQL behind one seam, row-level security.
//!
//! Beside the domain: [`jobs`] (durable queue, schedules) and [`email`];
//! [`events`] (outbox, dispatch, live streams) and [`cache`] (board views),
//! shared across nodes through Redis ([`cluster`]); [`metrics`]; [`web`],
//! the browser application (embedded assets over the same public API);
//! [`logging`], the server's log lines written in batches.

/// The version and the commit it was built from (`orgboard --version`, the
/// start-up line, `orgboard_build_info`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("ORGBOARD_COMMIT"),
    ")"
);
/// The commit this binary was built from (`unknown` outside a git checkout).
pub const COMMIT: &str = env!("ORGBOARD_COMMIT");

pub mod admin;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod boards;
pub mod cache;
pub mod cluster;
pub mod comments;
pub mod config;
pub mod config_file;
pub mod db;
pub mod domain;
pub mod email;
pub mod error;
pub mod events;
pub mod http;
pub mod idempotency;
pub mod invites;
pub mod jobs;
pub mod labels;
pub mod listener;
pub mod lists;
pub mod logging;
pub mod members;
pub mod metrics;
pub mod orgs;
pub mod security;
pub mod server;
pub mod state;
pub mod tasks;
pub mod web;

/// Runs a use case as one unit of work and answers once it has committed:
/// `unit!(db, scope, |u| tasks::write::create(u, &org, …))`.
///
/// On SQLite the body runs as a job of the group-commit writer (captured
/// values are moved into the job); on PostgreSQL in a write transaction for
/// `scope`, committed when the body succeeds. Either way the after-commit
/// work runs before the answer (see [`db::Db::set_after_commit`]), and an
/// error rolls back everything the body did.
///
/// `unit!(db, system, |u| …)` runs the node's own upkeep across
/// organizations: on PostgreSQL as `orgboard_system` ([`db::Db::system`]).
#[macro_export]
macro_rules! unit {
    (@run $db:ident, $open:expr, |$u:ident| $body:expr) => {{
        let db = $db;
        match db.sqlite_writer() {
            Some(writer) => {
                writer
                    .run(move |ctx| {
                        let mut lite = $crate::db::uow::LiteUow::new(ctx);
                        let $u = &mut lite;
                        $crate::db::uow::poll_now($body).unwrap_or_else(|| {
                            Err(::core::convert::From::from(
                                $crate::domain::DomainError::internal(::anyhow::anyhow!(
                                    "a writer job waited for I/O"
                                )),
                            ))
                        })
                    })
                    .await
            }
            None => {
                let mut tx = $open;
                let out = {
                    let $u = &mut tx;
                    $body.await
                };
                match out {
                    Ok(v) => {
                        tx.commit().await?;
                        Ok(v)
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }};
    ($db:expr, system, |$u:ident| $body:expr) => {{
        let db: &$crate::db::Db = &$db;
        $crate::unit!(@run db, db.system().await?, |$u| $body)
    }};
    ($db:expr, $scope:expr, |$u:ident| $body:expr) => {{
        let db: &$crate::db::Db = &$db;
        $crate::unit!(@run db, db.unit($scope).await?, |$u| $body)
    }};
}

/// Runs a read use case and gives its answer: `read_unit!(db, scope, |u|
/// tasks::filter::page(u, &org, …))`; `read_unit!(db, system, |u| …)` reads
/// as the node's upkeep role on PostgreSQL ([`db::Db::pg_system_read`]).
///
/// On SQLite the body runs on a connection of the rusqlite read pool
/// ([`db::readers`]), in one snapshot, on a blocking thread (captured values
/// are moved into it; rows are read in place); on PostgreSQL as a read for
/// `scope` whose `BEGIN` travels with its first statement ([`db::pg::PgRead`]). The body is
/// a future of `Result<_, E>` (a use case's [`domain::DomainError`], or an
/// `ApiError`) generic over [`db::uow::Uow`].
#[macro_export]
macro_rules! read_unit {
    (@run $db:ident, $pg:expr, |$u:ident| $body:expr) => {{
        match $db.sqlite_readers() {
            Some(readers) => readers
                .read(async move |lite| {
                    let $u = lite;
                    $body.await
                })
                .await
                .map_err(::core::convert::Into::into)
                .and_then(|out| out),
            None => {
                let mut read = $pg;
                let $u = &mut read;
                $body.await
            }
        }
    }};
    ($db:expr, system, |$u:ident| $body:expr) => {{
        let db: &$crate::db::Db = &$db;
        $crate::read_unit!(@run db, db.pg_system_read().await?, |$u| $body)
    }};
    ($db:expr, $scope:expr, |$u:ident| $body:expr) => {{
        let db: &$crate::db::Db = &$db;
        $crate::read_unit!(@run db, db.pg_read($scope, false).await?, |$u| $body)
    }};
}
