//! A minimal `text/event-stream` client for `live`: one HTTP/1.1 connection
//! of its own per stream (hyper's connection API, no pool), events parsed as
//! they arrive and stamped with the time their last byte was read.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// `data:` lines, joined with `\n`.
    pub data: String,
    /// When the chunk that completed it was read.
    pub at: Instant,
    /// The same, on the wall clock.
    pub wall: DateTime<Utc>,
}

/// An open stream (or the error answer to the request).
pub struct SseStream {
    /// The response's status.
    pub status: u16,
    body: Incoming,
    buf: Vec<u8>,
    pending: VecDeque<SseEvent>,
    conn: tokio::task::JoinHandle<()>,
}

impl Drop for SseStream {
    /// Closes the connection.
    fn drop(&mut self) {
        self.conn.abort();
    }
}

/// Opens `GET path` on `base` (`http://127.0.0.1:port`) with the token and
/// `Accept: text/event-stream`; returns once the response head arrived.
pub async fn open(base: &str, path: &str, token: &str) -> anyhow::Result<SseStream> {
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let tcp = tokio::net::TcpStream::connect(&host).await?;
    tcp.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header(hyper::header::HOST, &host)
        .header(hyper::header::ACCEPT, "text/event-stream")
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())?;
    let res = match sender.send_request(req).await {
        Ok(r) => r,
        Err(e) => {
            conn.abort();
            return Err(e.into());
        }
    };
    Ok(SseStream {
        status: res.status().as_u16(),
        body: res.into_body(),
        buf: Vec::new(),
        pending: VecDeque::new(),
        conn,
    })
}

impl SseStream {
    /// The next event; heartbeat comments are skipped. `None` when the
    /// stream ended or failed.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            let frame = self.body.frame().await?.ok()?;
            let at = Instant::now();
            let wall = Utc::now();
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
                parse(&mut self.buf, at, wall, &mut self.pending);
            }
        }
    }
}

/// Takes every complete event (ended by a blank line) out of `buf`.
fn parse(buf: &mut Vec<u8>, at: Instant, wall: DateTime<Utc>, out: &mut VecDeque<SseEvent>) {
    loop {
        let Some(end) = buf.windows(2).position(|w| w == b"\n\n") else {
            return;
        };
        let block: Vec<u8> = buf.drain(..end + 2).collect();
        let text = String::from_utf8_lossy(&block);
        let mut ev = SseEvent {
            id: None,
            event: None,
            data: String::new(),
            at,
            wall,
        };
        let mut any_data = false;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (k, v) = line.split_once(':').unwrap_or((line, ""));
            let v = v.strip_prefix(' ').unwrap_or(v);
            match k {
                "id" => ev.id = Some(v.to_owned()),
                "event" => ev.event = Some(v.to_owned()),
                "data" => {
                    if any_data {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(v);
                    any_data = true;
                }
                _ => {}
            }
        }
        if any_data || ev.event.is_some() {
            out.push_back(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_events_across_chunks() {
        let mut buf = Vec::new();
        let mut out = VecDeque::new();
        let now = Instant::now();
        let wall = Utc::now();
        buf.extend_from_slice(b": heartbeat\n\nid: 7\nevent: task.created\ndata: {\"a\"");
        parse(&mut buf, now, wall, &mut out);
        assert!(
            out.is_empty(),
            "a heartbeat is no event, half an event waits"
        );
        buf.extend_from_slice(b":1}\n\nid: 8\nevent: reset\ndata: x\ndata: y\n\n");
        parse(&mut buf, now, wall, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].id.as_deref(), Some("7"));
        assert_eq!(out[0].event.as_deref(), Some("task.created"));
        assert_eq!(out[0].data, "{\"a\":1}");
        assert_eq!(out[1].data, "x\ny");
        assert!(buf.is_empty());
    }
}
