//! Accepting connections with bounds: a connection cap, a header-read
//! timeout, an idle timeout, and shedding of idle connections at the cap.
//!
//! `axum::serve` keeps every accepted connection for as long as the client
//! likes: 300 idle or half-sent-header connections stayed open for minutes,
//! and under a low descriptor limit `/healthz` stopped answering (`Too many
//! open files`). Here each connection is watched:
//!
//! * **Header-read timeout** ([`Limits::header_read`]): once a byte of a new
//!   request has arrived, its headers must be complete within this time
//!   (slow-header clients, "slowloris").
//! * **Idle timeout** ([`Limits::idle`]): a connection with no request in
//!   flight and nothing sent since its last answer (or since it opened) is
//!   closed after this time.
//! * **Connection cap** ([`Limits::max_connections`]): the server never
//!   holds more sockets than this. At the cap it closes the connection idle
//!   the longest (no request in flight: never-used, half-sent headers, or
//!   kept alive after an answer) to make room, so a flood of idle
//!   connections cannot lock out real clients; if every connection is busy,
//!   new ones wait in the kernel's backlog until one ends. A request in
//!   flight, a live event stream or an upgraded WebSocket is never cut.
//!
//! Request bodies have their own deadline ([`BODY_READ_TIMEOUT`], in the
//! router). HTTP/2 without TLS (prior knowledge) is served too; its pings
//! count as a started request for the header-read timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service as _;

/// Longest a request body may take to arrive once its headers are in.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a connection checks its deadlines.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// The bounds on connections (from the settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Time for a started request's headers to arrive.
    pub header_read: Duration,
    /// Time a connection may sit with no request.
    pub idle: Duration,
}

/// The cap when none is configured: what the open-files limit leaves after
/// the database pool and a reserve for files, at most 4 096 (and at least
/// 16).
pub fn auto_max_connections(db_connections: u32) -> usize {
    let reserve = 64 + u64::from(db_connections);
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft.saturating_sub(reserve).clamp(16, 4096)).unwrap_or(4096)
}

/// Milliseconds since the server started; `0` means "never".
fn clock(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// What one connection is doing, shared by its socket, its service and the
/// accept loop.
struct Watch {
    epoch: Instant,
    /// Requests whose answer has not been fully sent.
    in_flight: AtomicUsize,
    /// When the first byte of a request not yet handed to the router
    /// arrived (`0`: none pending).
    pending_since: AtomicU64,
    /// When the connection opened or last finished an answer.
    idle_since: AtomicU64,
    /// Closes the connection at once.
    kill: CancellationToken,
}

impl Watch {
    fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            in_flight: AtomicUsize::new(0),
            pending_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(clock(epoch)),
            kill: CancellationToken::new(),
        }
    }

    fn now(&self) -> u64 {
        clock(self.epoch)
    }

    /// Bytes arrived on the socket.
    fn bytes_in(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ = self.pending_since.compare_exchange(
                0,
                self.now(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// A request's headers are complete: it is in the router's hands.
    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.pending_since.store(0, Ordering::Release);
    }

    /// A request's answer is sent (or dropped).
    fn request_done(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Since when the connection is idle (no request in flight), if it is.
    fn idle_from(&self) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        match self.pending_since.load(Ordering::Acquire) {
            0 => Some(self.idle_since.load(Ordering::Acquire)),
            t => Some(t),
        }
    }

    /// Why the connection should close now, if it should.
    fn expired(&self, limits: &Limits) -> Option<&'static str> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.now();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        match self.pending_since.load(Ordering::Acquire) {
            0 => (now.saturating_sub(self.idle_since.load(Ordering::Acquire)) >= ms(limits.idle))
                .then_some("idle"),
            t => (now.saturating_sub(t) >= ms(limits.header_read)).then_some("header_read"),
        }
    }
}

/// Every open connection that may be shed, by id.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Watch>>>,
}

impl Registry {
    fn add(&self, watch: Arc<Watch>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, watch);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Closes the connection idle the longest; `false` when every
    /// connection is busy.
    fn shed_one(&self) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        let victim = open
            .values()
            .filter(|w| !w.kill.is_cancelled())
            .filter_map(|w| w.idle_from().map(|t| (t, w)))
            .min_by_key(|(t, _)| *t);
        match victim {
            Some((_, w)) => {
                w.kill.cancel();
                metrics::counter!("orgboard_http_connections_closed_total", "reason" => "shed")
                    .increment(1);
                true
            }
            None => false,
        }
    }
}

/// A socket that tells its [`Watch`] when bytes arrive, and holds its place
/// under the cap for as long as it exists (also after a WebSocket upgrade,
/// which takes the socket over).
struct WatchedStream {
    inner: TcpStream,
    watch: Arc<Watch>,
    _slot: OwnedSemaphorePermit,
    _open: OpenGauge,
}

/// Counts the socket in `orgboard_http_connections_open` while it lives.
struct OpenGauge;

impl OpenGauge {
    fn new() -> Self {
        metrics::gauge!("orgboard_http_connections_open").increment(1.0);
        Self
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::gauge!("orgboard_http_connections_open").decrement(1.0);
    }
}

impl AsyncRead for WatchedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.watch.bytes_in();
        }
        res
    }
}

impl AsyncWrite for WatchedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that marks its request done when it is dropped (fully
/// sent, or abandoned): until then the connection is busy, so a long
/// answer or a live event stream is never taken for idle.
struct DoneOnDrop {
    inner: Body,
    watch: Arc<Watch>,
}

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        self.watch.request_done();
    }
}

impl HttpBody for DoneOnDrop {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` within `limits` until `shutdown` fires, then
/// lets every connection finish the request in hand and returns when all
/// are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let epoch = Instant::now();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let registry = Arc::new(Registry::default());
    let tracker = TaskTracker::new();
    let builder = {
        let mut b = auto::Builder::new(TokioExecutor::new());
        // The watch below times header reads; hyper's own timer would also
        // cut idle keep-alive connections at the header timeout.
        b.http1().header_read_timeout(None);
        Arc::new(b)
    };
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                registry.shed_one();
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                }
            }
        };
        let (stream, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors (or a connection that died in the
                    // backlog): make room if we can, and back off a little.
                    tracing::warn!(error = %e, "accept failed");
                    registry.shed_one();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let watch = Arc::new(Watch::new(epoch));
        let io = WatchedStream {
            inner: stream,
            watch: watch.clone(),
            _slot: slot,
            _open: OpenGauge::new(),
        };
        let id = registry.add(watch.clone());
        let conn = Connection {
            app: app.clone(),
            remote,
            watch,
            limits,
        };
        let builder = builder.clone();
        let shutdown = shutdown.clone();
        let registry = registry.clone();
        tracker.spawn(async move {
            conn.run(&builder, io, shutdown).await;
            registry.remove(id);
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

/// One accepted connection.
struct Connection {
    app: Router,
    remote: SocketAddr,
    watch: Arc<Watch>,
    limits: Limits,
}

impl Connection {
    async fn run(
        self,
        builder: &auto::Builder<TokioExecutor>,
        io: WatchedStream,
        shutdown: CancellationToken,
    ) {
        let Connection {
            app,
            remote,
            watch,
            limits,
        } = self;
        let service_watch = watch.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            service_watch.request_started();
            req.extensions_mut().insert(ConnectInfo(remote));
            let mut app = app.clone();
            let watch = service_watch.clone();
            async move {
                let res = match app.call(req).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                };
                Ok::<_, std::convert::Infallible>(res.map(|inner| DoneOnDrop { inner, watch }))
            }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut draining = false;
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, %remote, "connection ended with an error");
                    }
                    return;
                }
                _ = watch.kill.cancelled() => return,
                _ = shutdown.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = tick.tick() => {
                    if let Some(reason) = watch.expired(&limits) {
                        metrics::counter!("orgboard_http_connections_closed_total", "reason" => reason)
                            .increment(1);
                        tracing::debug!(%remote, reason, "closing connection");
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_connections: 4,
            header_read: Duration::from_millis(0),
            idle: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_busy_connection_never_expires_and_is_never_shed() {
        let registry = Registry::default();
        let w = Arc::new(Watch::new(Instant::now()));
        registry.add(w.clone());
        w.bytes_in();
        w.request_started();
        assert_eq!(w.expired(&limits()), None);
        assert!(!registry.shed_one(), "nothing idle to shed");
        w.request_done();
        assert!(registry.shed_one());
        assert!(w.kill.is_cancelled());
    }

    #[test]
    fn half_sent_headers_expire_at_the_header_timeout() {
        let w = Watch::new(Instant::now());
        assert_eq!(
            w.expired(&limits()),
            None,
            "no byte yet: only the idle timeout"
        );
        w.bytes_in();
        assert_eq!(w.expired(&limits()), Some("header_read"));
        let idle_only = Limits {
            idle: Duration::ZERO,
            header_read: Duration::from_secs(3600),
            ..limits()
        };
        let fresh = Watch::new(Instant::now());
        assert_eq!(fresh.expired(&idle_only), Some("idle"));
    }

    #[test]
    fn the_connection_idle_the_longest_is_shed_first() {
        let epoch = Instant::now() - Duration::from_secs(10);
        let registry = Registry::default();
        let old = Arc::new(Watch::new(epoch));
        old.idle_since.store(1_000, Ordering::Release);
        let newer = Arc::new(Watch::new(epoch));
        newer.idle_since.store(5_000, Ordering::Release);
        registry.add(newer.clone());
        registry.add(old.clone());
        assert!(registry.shed_one());
        assert!(old.kill.is_cancelled());
        assert!(!newer.kill.is_cancelled());
        assert!(registry.shed_one());
        assert!(newer.kill.is_cancelled());
        assert!(
            !registry.shed_one(),
            "already shed ones are not counted twice"
        );
    }
}
