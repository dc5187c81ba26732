//! Real-socket clients for live events: the app served on a local port, an
//! SSE reader and a WebSocket client.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::TestApp;

/// Serves the app's router on a fresh local port until the test ends.
pub async fn serve(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Value,
}

/// What reading a stream gave.
#[derive(Debug)]
pub enum Next {
    Event(Sse),
    /// The server closed the stream.
    End,
    /// Nothing within the wait.
    Timeout,
}

impl Next {
    #[track_caller]
    pub fn event(self) -> Sse {
        match self {
            Next::Event(e) => e,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// An open `text/event-stream` response.
pub struct SseStream {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    body: Incoming,
    buf: String,
    /// Heartbeat comments seen so far.
    pub heartbeats: usize,
}

/// Opens `GET path` with the token (header) and optional `Last-Event-ID`.
pub async fn sse(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> SseStream {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::get(path)
        .header("host", addr.to_string())
        .header("accept", "text/event-stream");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(l) = last_event_id {
        req = req.header("last-event-id", l);
    }
    let res = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    SseStream {
        status,
        headers,
        body: res.into_body(),
        buf: String::new(),
        heartbeats: 0,
    }
}

impl SseStream {
    /// The whole body as text (for error responses).
    pub async fn text(self) -> String {
        let bytes = self.body.collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The next event (heartbeat comments are counted and skipped).
    pub async fn next(&mut self, wait: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Sse {
                    id: None,
                    event: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                let mut any = false;
                for line in block.lines() {
                    if line.starts_with(':') {
                        self.heartbeats += 1;
                        continue;
                    }
                    let (k, v) = line.split_once(':').unwrap_or((line, ""));
                    let v = v.strip_prefix(' ').unwrap_or(v);
                    any = true;
                    match k {
                        "id" => ev.id = Some(v.to_owned()),
                        "event" => ev.event = Some(v.to_owned()),
                        "data" => data.push_str(v),
                        _ => {}
                    }
                }
                if any {
                    ev.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    return Next::Event(ev);
                }
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return Next::Timeout,
                Ok(None) | Ok(Some(Err(_))) => return Next::End,
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.push_str(&String::from_utf8_lossy(&data));
                    }
                }
            }
        }
    }

    /// The next `n` events, each within `wait`.
    pub async fn take(&mut self, n: usize, wait: Duration) -> Vec<Sse> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.next(wait).await.event());
        }
        out
    }
}

/// A WebSocket client on the events route.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket on `path` with the bearer token; `Err(status)` when
/// the server refuses the upgrade.
pub async fn ws(addr: SocketAddr, path: &str, token: &str) -> Result<Ws, u16> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("websocket: {e}"),
    }
}

/// The next JSON text message; `None` when the socket closed or nothing came.
pub async fn ws_next(ws: &mut Ws, wait: Duration) -> Option<Value> {
    use futures_util::StreamExt as _;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) => return None,
            Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
            Ok(Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// One JSON request over a real socket: `(status, body)`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let bytes = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(&b).unwrap())
        }
        None => Bytes::new(),
    };
    let res = sender
        .send_request(req.body(http_body_util::Full::new(bytes)).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
