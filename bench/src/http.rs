//! A small HTTP/1.1 client over real loopback sockets (hyper), with
//! keep-alive connections pooled per host: each virtual user sends one
//! request at a time, so the pool holds about one connection per user.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, IF_MATCH};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Longest a request may take before it counts as a `timeout` error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An answered request.
pub struct Resp {
    /// HTTP status code.
    pub status: u16,
    /// The whole body (as sent: not decompressed).
    pub body: Bytes,
    /// Its `ETag` header, if any.
    pub etag: Option<String>,
    /// From just before sending to the last byte of the body.
    pub latency: Duration,
}

/// Why a request got no answer.
#[derive(Debug)]
pub struct Failure {
    /// The key errors are counted under: `io` (connection or protocol
    /// error) or `timeout` (no complete answer within [`REQUEST_TIMEOUT`]).
    pub key: &'static str,
    /// What went wrong.
    pub detail: String,
    /// Time until it failed.
    pub latency: Duration,
}

/// The client, cheap to clone.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl Http {
    /// A client for the server at `base` (`http://127.0.0.1:port`).
    pub fn new(base: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4096)
            .build(connector);
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: Option<Vec<u8>>,
        if_match: Option<i64>,
    ) -> Result<Resp, Failure> {
        self.send_with(method, path, token, json, if_match, &[])
            .await
    }

    /// [`Http::send`] with extra request headers (`(name, value)`).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json: Option<Vec<u8>>,
        if_match: Option<i64>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, Failure> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(v) = if_match {
            req = req.header(IF_MATCH, format!("\"{v}\""));
        }
        let body = match json {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(b))
            }
            None => Full::new(Bytes::new()),
        };
        let started = Instant::now();
        let io = |e: String| Failure {
            key: "io",
            detail: e,
            latency: started.elapsed(),
        };
        let req = req.body(body).map_err(|e| io(e.to_string()))?;
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| io(e.to_string()))?;
            let status = resp.status().as_u16();
            let etag = resp
                .headers()
                .get(hyper::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| io(e.to_string()))?
                .to_bytes();
            Ok::<_, Failure>((status, body, etag))
        };
        let (status, body, etag) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| Failure {
                key: "timeout",
                detail: format!("no answer within {REQUEST_TIMEOUT:?}"),
                latency: started.elapsed(),
            })??;
        Ok(Resp {
            status,
            body,
            etag,
            latency: started.elapsed(),
        })
    }
}
