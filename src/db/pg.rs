//! PostgreSQL for the units of work, through tokio-postgres: statements
//! sent together in one round trip (pipelining).
//!
//! sqlx (still the driver of everything else on PostgreSQL) waits for each
//! statement's answer before it sends the next, and `BEGIN`, every
//! statement and `COMMIT` each cost a round trip, plus the ping sqlx sends
//! after a connection comes back to its pool. A task write needed four and
//! that ping; a task read three. tokio-postgres sends the messages of
//! futures polled together in the order they were polled, without waiting,
//! and PostgreSQL answers them in that order. So here:
//!
//! * a write unit ([`PgUnit`]) sends its `BEGIN` (the role, the user, and
//!   the membership with its locks, [`super::unit`]) with its first
//!   statement, and its waiting writes ([`super::uow::Uow::defer`]) with
//!   its `COMMIT`: a task create, update, move or delete is **two** round
//!   trips. If the writes fail, PostgreSQL answers the `COMMIT` already in
//!   flight with `ROLLBACK`: nothing of the unit is kept.
//! * a read ([`PgRead`]) sends `BEGIN READ ONLY` and its scope with its
//!   first statement, and ends when dropped, its `ROLLBACK` sent by a task
//!   of its own (the answer does not wait for it); a read of one statement
//!   (a task by id) sends `BEGIN`, the statement and `COMMIT` at once:
//!   **one** round trip in all.
//!
//! Every statement is prepared (once per connection: the statement cache
//! of deadpool-postgres) *before* the messages it travels with are sent, so
//! they go out in the order written: a write can never be sent after the
//! `COMMIT` it belongs before. Parameter types are declared from the
//! [`Arg`]s, as sqlx declares them, so a statement means the same on both
//! drivers.
//!
//! A unit dropped while its transaction is open (an error the use case
//! returned, a client that went away mid-request) hands its connection to
//! a task that sends `ROLLBACK` and only then returns it to the pool; if
//! that fails the connection is closed. No connection goes back to the pool
//! inside a transaction, with a role or a tenant set.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::Statement;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use uuid::Uuid;

use super::change::{CardChange, Event, Touched, Touches};
use super::uow::{AnyRow, Arg, DbError, Deferred, OrgKey, Uow};
use super::{APP_ROLE, AfterCommit, Backend, Scope, pg_begin};

/// Statements a connection keeps prepared before it forgets them all (a
/// bound on the server's memory and ours; deferred writes vary with the
/// number of rows they merge).
const MAX_PREPARED: usize = 256;

/// The connections units of work run on.
#[derive(Clone)]
pub struct Pipes {
    pool: Pool,
}

impl std::fmt::Debug for Pipes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipes")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl Pipes {
    /// A pool of at most `max` connections to `url` (sqlx's URL form),
    /// opened when first needed.
    pub fn new(url: &str, max: usize) -> anyhow::Result<Self> {
        let (config, tls) = tls::config(url)?;
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max.max(1))
            // The connection returned last is the next one out: a light load
            // runs on few connections (and their warm server processes),
            // not round the whole pool.
            .queue_mode(deadpool_postgres::QueueMode::Lifo)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .context("cannot build the PostgreSQL pool")?;
        Ok(Self { pool })
    }

    /// A connection, outside any transaction.
    async fn get(&self) -> Result<Conn, DbError> {
        let obj = self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => DbError::Pg(e),
            deadpool_postgres::PoolError::Timeout(_) => DbError::PoolTimedOut,
            other => DbError::Executor(format!("PostgreSQL pool: {other}")),
        })?;
        Ok(Conn {
            obj: Some(obj),
            in_tx: false,
        })
    }

    /// A write unit for `scope` that has sent nothing yet.
    pub async fn unit(
        &self,
        scope: Scope,
        after: Option<Arc<dyn AfterCommit>>,
    ) -> Result<PgUnit, DbError> {
        Ok(PgUnit {
            conn: self.get().await?,
            scope,
            begin: Begin::NotYet,
            deferred: Deferred::default(),
            changed: Touches::default(),
            events: Vec::new(),
            after,
            waits: 0,
        })
    }

    /// A read for `scope`; `one`: of one statement (see [`PgRead`]).
    pub async fn read(&self, scope: Scope, one: bool) -> Result<PgRead, DbError> {
        self.read_as(APP_ROLE, scope, one).await
    }

    /// A read as `role` (the application's, or the node's upkeep role
    /// `orgboard_system`, whose policies name what it may see).
    pub async fn read_as(&self, role: &str, scope: Scope, one: bool) -> Result<PgRead, DbError> {
        Ok(PgRead {
            conn: self.get().await?,
            begin: Some(pg_begin(role, scope, true).0),
            one,
            waits: 0,
        })
    }

    /// How many connections are open, idle, and allowed (for metrics).
    pub fn status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }

    /// Closes every connection.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// A pooled connection that never goes back to the pool inside a
/// transaction.
struct Conn {
    obj: Option<Object>,
    /// A `BEGIN` was sent and no `COMMIT` or `ROLLBACK` has been answered.
    in_tx: bool,
}

impl Conn {
    fn client(&self) -> Result<&ClientWrapper, DbError> {
        self.obj
            .as_deref()
            .ok_or_else(|| DbError::Executor("the connection has been given back".into()))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if !self.in_tx {
            return;
        }
        let Some(obj) = self.obj.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = obj.batch_execute("ROLLBACK").await {
                        tracing::warn!(error = %e, "cannot roll back; closing the connection");
                        drop(Object::take(obj));
                    }
                });
            }
            Err(_) => drop(Object::take(obj)),
        }
    }
}

/// The prepared statement for `sql` with `args`' types, from the
/// connection's cache.
async fn prepare(
    client: &ClientWrapper,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Statement, DbError> {
    let types: Vec<Type> = args.iter().map(Arg::pg_type).collect();
    if client.statement_cache.size() >= MAX_PREPARED {
        client.statement_cache.clear();
    }
    Ok(client.prepare_typed_cached(sql, &types).await?)
}

fn params<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

/// Runs `simple` (a simple-query message) if any; what the futures
/// pipelined beside it cannot go without.
async fn maybe(client: &ClientWrapper, simple: Option<&str>) -> Result<(), tokio_postgres::Error> {
    match simple {
        Some(sql) => client.batch_execute(sql).await,
        None => Ok(()),
    }
}

impl Arg<'_> {
    /// The PostgreSQL type this value is bound as (what sqlx declares for it).
    fn pg_type(&self) -> Type {
        match self {
            Arg::Uuid(_) => Type::UUID,
            Arg::Text(_) => Type::TEXT,
            Arg::I16(_) => Type::INT2,
            Arg::I32(_) => Type::INT4,
            Arg::I64(_) => Type::INT8,
            Arg::Bool(_) => Type::BOOL,
            Arg::Time(_) => Type::TIMESTAMPTZ,
            Arg::Json(_) => Type::JSONB,
            Arg::Bytes(_) => Type::BYTEA,
            Arg::Date(_) => Type::DATE,
        }
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Arg::Uuid(v) => v.to_sql(ty, out),
            Arg::Text(v) => v.to_sql(ty, out),
            Arg::I16(v) => v.to_sql(ty, out),
            Arg::I32(v) => v.to_sql(ty, out),
            Arg::I64(v) => v.to_sql(ty, out),
            Arg::Bool(v) => v.to_sql(ty, out),
            Arg::Time(v) => v.to_sql(ty, out),
            Arg::Json(v) => v.to_sql(ty, out),
            Arg::Bytes(v) => v.to_sql(ty, out),
            Arg::Date(v) => v.to_sql(ty, out),
        }
    }

    // Each statement is prepared with the types of its arguments
    // (`pg_type`), so the server's type is the one declared.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Where a unit's `BEGIN` stands.
enum Begin {
    /// Nothing sent: the first statement goes with the plain scope's `BEGIN`.
    NotYet,
    /// The `BEGIN` that enters the organization, sent with the first statement.
    Entering(String),
    /// Sent.
    Sent,
}

/// A PostgreSQL write unit (see the module's documentation).
pub struct PgUnit {
    conn: Conn,
    scope: Scope,
    begin: Begin,
    deferred: Deferred,
    changed: Touches,
    events: Vec<Event>,
    after: Option<Arc<dyn AfterCommit>>,
    /// Round trips so far.
    waits: u32,
}

/// What a statement is sent for.
enum Op {
    Rows,
    Count,
}

/// What it gave back.
enum Out {
    Rows(Vec<tokio_postgres::Row>),
    Count(u64),
}

impl Out {
    fn rows(self) -> Vec<tokio_postgres::Row> {
        match self {
            Out::Rows(r) => r,
            Out::Count(_) => Vec::new(),
        }
    }
}

async fn run(
    client: &ClientWrapper,
    st: &Statement,
    args: &[Arg<'_>],
    op: &Op,
) -> Result<Out, tokio_postgres::Error> {
    let params = params(args);
    match op {
        Op::Rows => client.query(st, &params).await.map(Out::Rows),
        Op::Count => client.execute(st, &params).await.map(Out::Count),
    }
}

impl PgUnit {
    /// The `BEGIN` message still to send, if the unit has not begun; the
    /// unit counts as in a transaction from here on.
    fn take_begin(&mut self) -> Option<String> {
        let sql = match std::mem::replace(&mut self.begin, Begin::Sent) {
            Begin::Sent => return None,
            Begin::NotYet => pg_begin(APP_ROLE, self.scope, false).0,
            Begin::Entering(sql) => sql,
        };
        self.conn.in_tx = true;
        Some(sql)
    }

    /// One round trip: the `BEGIN` if it is still to send, the writes
    /// waiting, then `tail` — a statement (its answer returned), or `None`
    /// for `COMMIT`.
    async fn pipeline(
        &mut self,
        tail: Option<(&str, &[Arg<'_>], Op)>,
    ) -> Result<Option<Out>, DbError> {
        let waiting = self.deferred.take();
        let waiting_args: Vec<Arg<'_>> = waiting
            .as_ref()
            .map(|(_, vals)| vals.iter().map(Arg::from).collect())
            .unwrap_or_default();
        let begin = self.take_begin();
        let client = self.conn.client()?;
        // Prepared first, so every message below goes out in this order.
        let writes = match &waiting {
            Some((sql, _)) => Some(prepare(client, sql, &waiting_args).await?),
            None => None,
        };
        let statement = match &tail {
            Some((sql, args, op)) => Some((prepare(client, sql, args).await?, *args, op)),
            None => None,
        };
        let commit = tail.is_none().then_some("COMMIT");
        self.waits += 1;
        let (began, wrote, out, committed) = tokio::join!(
            maybe(client, begin.as_deref()),
            async {
                match &writes {
                    Some(st) => run(client, st, &waiting_args, &Op::Count).await.map(|_| ()),
                    None => Ok(()),
                }
            },
            async {
                match &statement {
                    Some((st, args, op)) => run(client, st, args, op).await.map(Some),
                    None => Ok(None),
                }
            },
            maybe(client, commit),
        );
        // A failed statement turns the `COMMIT` into a `ROLLBACK`: either
        // way the transaction has ended when the `COMMIT` was answered.
        if commit.is_some() && committed.is_ok() {
            self.conn.in_tx = false;
        }
        began?;
        wrote?;
        let out = out?;
        committed?;
        Ok(out)
    }

    /// Sends one statement, after the `BEGIN` if it is still to send and
    /// the writes waiting before it.
    async fn send(&mut self, sql: &str, args: &[Arg<'_>], op: Op) -> Result<Out, DbError> {
        self.pipeline(Some((sql, args, op)))
            .await?
            .ok_or_else(|| DbError::Executor("a statement without an answer".into()))
    }

    /// The round trips this unit takes if it commits now: those taken and
    /// the one of its `COMMIT` (with its `BEGIN` and waiting writes, if
    /// they are still to send); 0 if it would send nothing.
    pub fn round_trips_to_commit(&self) -> u32 {
        let begun = !matches!(self.begin, Begin::NotYet) || !self.deferred.is_empty();
        self.waits + u32::from(begun)
    }

    /// Sends the `BEGIN` (if still to send), the waiting writes and
    /// `COMMIT` in one round trip, then runs the after-commit work (if any
    /// organization changed). Nothing to send, nothing sent.
    pub async fn commit(mut self) -> Result<(), DbError> {
        if matches!(self.begin, Begin::NotYet) && self.deferred.is_empty() {
            return Ok(());
        }
        self.pipeline(None).await?;
        if let Some(hook) = &self.after
            && !self.changed.is_empty()
        {
            let events = std::mem::take(&mut self.events);
            hook.committed(&self.changed, events).await;
        }
        Ok(())
    }
}

impl Uow for PgUnit {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn begin_in_org(&mut self, user: Uuid, org: &OrgKey<'_>) -> Result<bool, DbError> {
        if !matches!(self.begin, Begin::NotYet) || !self.deferred.is_empty() {
            return Ok(false);
        }
        let Some(begin) = super::unit::member_begin(self.scope, user, org) else {
            return Ok(false);
        };
        self.begin = Begin::Entering(begin);
        Ok(true)
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        let rows = self.send(sql, args, Op::Rows).await?.rows();
        Ok(rows.into_iter().map(AnyRow::Tpg).collect())
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<AnyRow>, DbError> {
        let rows = self.send(sql, args, Op::Rows).await?.rows();
        Ok(rows.into_iter().next().map(AnyRow::Tpg))
    }

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, DbError> {
        match self.send(sql, args, Op::Count).await? {
            Out::Count(n) => Ok(n),
            Out::Rows(r) => Ok(r.len() as u64),
        }
    }

    async fn defer(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<(), DbError> {
        self.deferred.push(sql, args);
        Ok(())
    }

    fn note(&mut self, touched: Touched, event: Option<Event>, card: Option<CardChange>) {
        self.changed.note(touched, card);
        self.events.extend(event);
    }
}

/// A PostgreSQL read (see the module's documentation): its `BEGIN READ
/// ONLY` travels with its first statement, and the transaction ends when
/// it is dropped (`ROLLBACK`, sent by a task of its own, so the answer
/// does not wait for it). A one-statement read sends its `COMMIT` with the
/// statement too: one round trip in all, nothing left to end.
pub struct PgRead {
    conn: Conn,
    begin: Option<String>,
    one: bool,
    waits: u32,
}

impl PgRead {
    async fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        if self.one && self.waits > 0 {
            return Err(DbError::Executor(
                "a one-statement read sent a second statement".into(),
            ));
        }
        let st = prepare(self.conn.client()?, sql, args).await?;
        let begin = self.begin.take();
        if begin.is_some() {
            self.conn.in_tx = true;
        }
        self.waits += 1;
        let commit = self.one.then_some("COMMIT");
        let client = self.conn.client()?;
        let (began, out, committed) = tokio::join!(
            maybe(client, begin.as_deref()),
            run(client, &st, args, &Op::Rows),
            maybe(client, commit),
        );
        if self.one && committed.is_ok() {
            self.conn.in_tx = false;
        }
        began?;
        let rows = out?.rows();
        committed?;
        Ok(rows.into_iter().map(AnyRow::Tpg).collect())
    }
}

impl Uow for PgRead {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<AnyRow>, DbError> {
        self.rows(sql, args).await
    }

    async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<AnyRow>, DbError> {
        Ok(self.rows(sql, args).await?.into_iter().next())
    }

    async fn execute(&mut self, _: &str, _: &[Arg<'_>]) -> Result<u64, DbError> {
        Err(DbError::Executor("a read cannot write".into()))
    }

    async fn defer(&mut self, _: &str, _: &[Arg<'_>]) -> Result<(), DbError> {
        Err(DbError::Executor("a read cannot write".into()))
    }

    fn note(&mut self, _: Touched, _: Option<Event>, _: Option<CardChange>) {
        debug_assert!(false, "a read noted a change");
    }
}

mod tls {
    //! The TLS of the units' connections, as sqlx's URL asks for it.
    //!
    //! `sslmode` as sqlx and libpq read it: `disable`; `allow` and `prefer`
    //! (the default) encrypt when the server offers it; `require` insists
    //! on encryption — all three without checking the server's certificate
    //! (libpq's meaning, and sqlx's); `verify-ca` and `verify-full` check
    //! the certificate against `sslrootcert` (a PEM file) or, without it,
    //! the public web roots, and the host name (both: rustls always
    //! checks it). Parameters only sqlx knows (`sslrootcert`, `sslcert`,
    //! `sslkey`, `statement-cache-capacity`) are taken out before
    //! tokio-postgres reads the URL; client certificates are not supported
    //! here (a URL with `sslcert` is refused at start).

    use std::str::FromStr as _;
    use std::sync::Arc;

    use anyhow::{Context as _, bail};
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use tokio_postgres::config::SslMode;
    use tokio_postgres_rustls::MakeRustlsConnect;

    /// tokio-postgres's configuration and TLS connector for `url`.
    pub fn config(url: &str) -> anyhow::Result<(tokio_postgres::Config, MakeRustlsConnect)> {
        let mut parsed = url::Url::parse(url).context("invalid ORGBOARD_DATABASE_URL")?;
        let mut mode = "prefer".to_owned();
        let mut root = None;
        // The parameters tokio-postgres reads are passed on exactly as
        // written: decoded and encoded again, a space (`%20`, as in
        // `options=-c%20work_mem%3D64MB`) would come back as `+`, which
        // tokio-postgres (like libpq) reads as a plus sign.
        let mut kept = Vec::new();
        for raw in parsed.query().unwrap_or("").split('&') {
            let Some((k, v)) = url::form_urlencoded::parse(raw.as_bytes()).next() else {
                continue;
            };
            match &*k {
                "sslmode" => mode = v.into_owned(),
                "sslrootcert" => root = Some(v.into_owned()),
                "sslcert" | "sslkey" => {
                    bail!("client certificates (`{k}`) are not supported in ORGBOARD_DATABASE_URL")
                }
                "statement-cache-capacity" => {}
                _ => kept.push(raw.to_owned()),
            }
        }
        let (ssl, verify) = match mode.as_str() {
            "disable" => (SslMode::Disable, false),
            "allow" | "prefer" => (SslMode::Prefer, false),
            "require" => (SslMode::Require, false),
            "verify-ca" | "verify-full" => (SslMode::Require, true),
            other => bail!("unknown sslmode `{other}` in ORGBOARD_DATABASE_URL"),
        };
        let query = kept.join("&");
        parsed.set_query(Some(query.as_str()).filter(|q| !q.is_empty()));
        let mut config = tokio_postgres::Config::from_str(parsed.as_str())
            .context("invalid ORGBOARD_DATABASE_URL")?;
        config.ssl_mode(ssl);
        // ring, as sqlx's own TLS (`tls-rustls-ring-webpki`).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS")?;
        let client = if verify {
            let mut roots = rustls::RootCertStore::empty();
            match root {
                Some(path) => {
                    let pem = std::fs::read(&path)
                        .with_context(|| format!("cannot read sslrootcert {path}"))?;
                    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
                        let cert: CertificateDer<'static> =
                            cert.with_context(|| format!("invalid certificate in {path}"))?;
                        roots.add(cert).context("sslrootcert")?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth()
        };
        Ok((config, MakeRustlsConnect::new(client)))
    }

    /// Encryption without authentication (`sslmode=prefer|require`): the
    /// certificate is not checked, its signature over the handshake is.
    #[derive(Debug)]
    struct Unverified(Arc<rustls::crypto::CryptoProvider>);

    impl ServerCertVerifier for Unverified {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn sqlx_only_parameters_are_taken_out_and_sslmode_is_read() {
            let (c, _) = config(
                "postgres://u:p%40ss@db.example:6543/app?sslmode=require&statement-cache-capacity=10&application_name=ob",
            )
            .expect("parses");
            assert_eq!(c.get_user(), Some("u"));
            assert_eq!(c.get_password(), Some(&b"p@ss"[..]));
            assert_eq!(c.get_dbname(), Some("app"));
            assert_eq!(c.get_ports(), &[6543]);
            assert_eq!(c.get_application_name(), Some("ob"));
            assert_eq!(c.get_ssl_mode(), SslMode::Require);
            let (c, _) = config("postgres://u@localhost/app").expect("parses");
            assert_eq!(c.get_ssl_mode(), SslMode::Prefer);
            let (c, _) = config("postgres://u@localhost/app?sslmode=disable").expect("parses");
            assert_eq!(c.get_ssl_mode(), SslMode::Disable);
            assert!(config("postgres://u@localhost/app?sslmode=sometimes").is_err());
            assert!(config("postgres://u@localhost/app?sslcert=/c.pem").is_err());
            assert!(
                config("postgres://u@localhost/app?sslmode=verify-full&sslrootcert=/nope").is_err()
            );
        }

        /// Found when a URL with `options` made every unit fail with
        /// `unrecognized configuration parameter "+plan_cache_mode"`.
        #[test]
        fn parameters_reach_tokio_postgres_as_written() {
            let (c, _) = config(
                "postgres://u@localhost/app?options=-c%20plan_cache_mode%3Dforce_generic_plan\
                 &sslmode=disable&application_name=a%20b",
            )
            .expect("parses");
            assert_eq!(
                c.get_options(),
                Some("-c plan_cache_mode=force_generic_plan")
            );
            assert_eq!(c.get_application_name(), Some("a b"));
            assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        }
    }
}
