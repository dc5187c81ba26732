//! Log lines written in batches.
//!
//! The server logs one line per request. Written in place, each line is a
//! `write` system call on the request's own worker: measured ~12 % of the
//! cheapest route's throughput (BENCHMARKS.md, "The request log line,
//! measured"). A writer thread fed line by line (`tracing-appender`) wakes
//! once per line instead, and measured slower on two cores. [`Batched`]
//! appends each request line (target [`BATCHED_TARGET`]) to a shared
//! buffer under a lock (a copy, no system call) and wakes its writer thread
//! when the buffer stops being empty; that thread waits [`WINDOW`] for more
//! lines to gather, then writes them all at once. So a busy server makes
//! about one `write` per window, whatever its rate; an idle one none.
//! Every other line (start-up, warnings, errors, jobs) is written in place
//! as before, after the request lines waiting before it: it is in the
//! output when the call that logged it returns.
//!
//! What it promises: every line is written, in the order the lines were
//! logged; a request line at most about [`WINDOW`] after it was logged
//! (sooner once [`WAKE_ABOVE`] bytes wait); dropping the [`Flush`] guard
//! (at the end of `serve`, also when it fails) writes what is left and
//! joins the thread, and lines logged after that are written in place. A process killed
//! outright (`SIGKILL`, an abort) loses at most the lines of its last
//! window. When the output cannot keep up, at most [`MAX_BUFFERED`] bytes
//! wait: a thread logging beyond that waits for the writer, as it would
//! wait for a slow output when writing in place — memory stays bounded.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// How long the writer thread lets lines gather before it writes them.
pub const WINDOW: Duration = Duration::from_millis(20);

/// Buffered bytes that wake the writer thread before its window ends.
pub const WAKE_ABOVE: usize = 256 * 1024;

/// Buffered bytes beyond which a logging thread waits for the writer.
pub const MAX_BUFFERED: usize = 4 * 1024 * 1024;

struct State<W> {
    /// Lines not yet handed to the writer thread.
    buf: Vec<u8>,
    /// The output; `None` while the writer thread writes to it.
    out: Option<W>,
    /// Set by [`Flush`]: the writer thread writes what is left and stops;
    /// later lines are written in place.
    closed: bool,
}

struct Shared<W> {
    state: Mutex<State<W>>,
    /// Wakes the writer thread: lines are waiting, or it must stop.
    wake: Condvar,
    /// Wakes threads waiting for room (see [`MAX_BUFFERED`]).
    drained: Condvar,
}

impl<W> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, State<W>> {
        // A thread that panicked while holding the lock left the buffer
        // whole (every change to it is one call): keep logging.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A `tracing_subscriber` writer whose lines are written in batches by a
/// thread of its own (see the module's documentation).
pub struct Batched<W> {
    shared: Arc<Shared<W>>,
}

impl<W> Clone for Batched<W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// Writes what is left and stops the writer thread when dropped.
#[must_use = "dropping the guard stops the batching at once"]
pub struct Flush<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<W: Write + Send + 'static> Batched<W> {
    /// The writer over `out`, and the guard that flushes it.
    pub fn new(out: W) -> std::io::Result<(Self, Flush<W>)> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::with_capacity(64 * 1024),
                out: Some(out),
                closed: false,
            }),
            wake: Condvar::new(),
            drained: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_batches(&s))?;
        Ok((
            Self {
                shared: shared.clone(),
            },
            Flush {
                shared,
                thread: Some(thread),
            },
        ))
    }

    fn append(&self, line: &[u8], batch: bool) -> std::io::Result<()> {
        let mut st = self.shared.lock();
        while st.buf.len() >= MAX_BUFFERED && !st.closed {
            st = self.wait(st);
        }
        if !batch || st.closed {
            // In place, after the lines waiting before it (once the writer
            // thread has given the output back).
            while st.out.is_none() {
                st = self.wait(st);
            }
            let State { buf, out, .. } = &mut *st;
            let Some(out) = out.as_mut() else {
                return Ok(()); // cannot happen: checked above
            };
            if !buf.is_empty() {
                out.write_all(buf)?;
                buf.clear();
            }
            out.write_all(line)?;
            return out.flush();
        }
        let was_empty = st.buf.is_empty();
        st.buf.extend_from_slice(line);
        let wake = was_empty || st.buf.len() >= WAKE_ABOVE;
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    fn wait<'g>(&self, st: MutexGuard<'g, State<W>>) -> MutexGuard<'g, State<W>> {
        self.shared
            .drained
            .wait(st)
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The writer thread: waits for lines, lets a window's worth gather, writes
/// them in one call; after [`Flush`], writes what is left and returns.
fn write_batches<W: Write>(shared: &Shared<W>) {
    let mut spare = Vec::with_capacity(64 * 1024);
    loop {
        let mut st = shared.lock();
        while st.buf.is_empty() && !st.closed {
            st = shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.buf.is_empty() {
            return; // closed, nothing left
        }
        if !st.closed && st.buf.len() < WAKE_ABOVE {
            // Let the window's lines gather (woken early by a full buffer
            // or by the guard).
            st = shared
                .wake
                .wait_timeout(st, WINDOW)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        std::mem::swap(&mut st.buf, &mut spare);
        let Some(mut out) = st.out.take() else {
            return; // only this thread takes it
        };
        drop(st);
        shared.drained.notify_all();
        // A failed write (a closed pipe) loses these lines, as writing in
        // place would; nowhere else to report it.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        spare.clear();
        if spare.capacity() > WAKE_ABOVE * 2 {
            spare.shrink_to(64 * 1024);
        }
        shared.lock().out = Some(out);
        shared.drained.notify_all();
    }
}

impl<W: Write + Send + 'static> Drop for Flush<W> {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        self.shared.drained.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The target of the per-request lines, the ones written in batches.
pub const BATCHED_TARGET: &str = "orgboard::request";

/// One log line's writer (the formatter writes each line with one call).
pub struct LineWriter<'a, W> {
    batched: &'a Batched<W>,
    /// Batched, or written in place.
    batch: bool,
}

impl<W: Write + Send + 'static> Write for LineWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.batched.append(buf, self.batch)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> tracing_subscriber::fmt::MakeWriter<'a> for Batched<W> {
    type Writer = LineWriter<'a, W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            batched: self,
            batch: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        LineWriter {
            batched: self,
            batch: meta.target() == BATCHED_TARGET,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An output shared with the test.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("test")
        }
    }

    /// A request line (batched).
    fn line<W: Write + Send + 'static>(b: &Batched<W>, s: &str) {
        b.append(s.as_bytes(), true).expect("test");
    }

    /// Any other line (in place).
    fn other<W: Write + Send + 'static>(b: &Batched<W>, s: &str) {
        b.append(s.as_bytes(), false).expect("test");
    }

    #[test]
    fn every_line_is_written_in_order_once_the_guard_drops() {
        let sink = Sink::default();
        let (b, flush) = Batched::new(sink.clone()).expect("test");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        line(&b, &format!("t{t} {i}\n"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("test");
        }
        drop(flush);
        let text = sink.text();
        assert_eq!(text.lines().count(), 20_000);
        for t in 0..4 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} ")))
                .map(|n| n.parse().expect("test"))
                .collect();
            assert_eq!(mine, (0..5_000).collect::<Vec<_>>(), "thread {t}'s lines");
        }
        // After the guard, in place.
        line(&b, "late\n");
        assert!(sink.text().ends_with("\nlate\n"));
        assert_eq!(sink.text().lines().count(), 20_001);
    }

    #[test]
    fn a_line_is_written_without_the_guard_within_a_few_windows() {
        let sink = Sink::default();
        let (b, _flush) = Batched::new(sink.clone()).expect("test");
        line(&b, "one\n");
        // Not a timing assertion on speed: a bound far above the window,
        // that only a writer thread that never wakes misses.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.text() != "one\n" {
            assert!(Instant::now() < deadline, "the line was never written");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn other_lines_are_in_place_after_the_request_lines_before_them() {
        let sink = Sink::default();
        let (b, _flush) = Batched::new(sink.clone()).expect("test");
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(b.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "orgboard::request", "first request");
            tracing::info!(target: "orgboard::request", "second request");
            tracing::warn!(target: "orgboard::server", "a warning");
        });
        // In the output when the warning's call returned, after the two
        // request lines logged before it.
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("first request"), "{text}");
        assert!(lines[1].ends_with("second request"), "{text}");
        assert!(lines[2].ends_with("a warning"), "{text}");
        other(&b, "plain\n");
        assert!(sink.text().ends_with("a warning\nplain\n"));
    }

    /// An output that blocks until the test lets it go.
    struct Gate(Arc<(Mutex<bool>, Condvar)>, Sink);

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, cv) = &*self.0;
            let mut o = open.lock().expect("lock");
            while !*o {
                o = cv.wait(o).expect("test");
            }
            self.1.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_output_holds_at_most_the_bound_then_makes_loggers_wait() {
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let sink = Sink::default();
        let (b, flush) = Batched::new(Gate(gate.clone(), sink.clone())).expect("test");
        let chunk = "x".repeat(1023) + "\n";
        let logger = {
            let b = b.clone();
            let chunk = chunk.clone();
            std::thread::spawn(move || {
                for _ in 0..(3 * MAX_BUFFERED / 1024) {
                    line(&b, &chunk);
                }
            })
        };
        // The writer thread is stuck in its first write; the logger fills
        // the buffer to the bound and waits there.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let len = b.shared.lock().buf.len();
            assert!(len <= MAX_BUFFERED + 1024, "{len} bytes buffered");
            if len >= MAX_BUFFERED {
                break;
            }
            assert!(Instant::now() < deadline, "the buffer never filled");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(!logger.is_finished(), "the logger went past the bound");
        assert!(b.shared.lock().buf.len() <= MAX_BUFFERED + 1024);
        // Let the output go: everything arrives.
        *gate.0.lock().expect("lock") = true;
        gate.1.notify_all();
        logger.join().expect("test");
        drop(flush);
        assert_eq!(sink.text().len(), 3 * MAX_BUFFERED / 1024 * 1024);
    }
}
