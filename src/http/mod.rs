//! The HTTP surface: assembles every module's routes, the middleware (request
//! ids, tracing, request metrics, body limit, panic catcher), `problem+json`
//! fallbacks, health checks, Prometheus metrics, and the OpenAPI document
//! with its `/docs` page.

pub mod apidoc;
pub mod conditional;
pub mod extract;
pub mod limits;
pub mod page;
pub mod rowjson;
pub mod throttle;

use std::any::Any;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{ApiError, Problem};
use crate::state::AppState;
use extract::AppJson;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "orgboard",
        description = "Multi-tenant team task management. Every tenant route lives under \
            /api/v1/orgs/{org} ({org} = id or slug). Errors are RFC 9457 problem+json.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every API route with its OpenAPI description.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .merge(crate::auth::router())
        .merge(crate::orgs::router())
        .merge(crate::members::router())
        .merge(crate::invites::router())
        .merge(crate::audit::router())
        .merge(crate::boards::router())
        .merge(crate::boards::view::router())
        .merge(crate::lists::router())
        .merge(crate::tasks::router())
        .merge(crate::labels::router())
        .merge(crate::comments::router())
        .merge(crate::events::router())
}

/// The OpenAPI document (as served at `/api/v1/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    apidoc::finish(api().split_for_parts().1)
}

/// The complete application router.
pub fn router(state: AppState) -> Router {
    let max_body = state.config.max_body_bytes;
    let (routes, doc) = api().split_for_parts();
    let doc = apidoc::finish(doc);
    let routes = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    Router::new()
        .merge(routes)
        .merge(crate::web::router())
        .merge(
            SwaggerUi::new("/docs")
                .url("/api/v1/openapi.json", doc)
                // Swagger UI's default online-validator badge loads an image
                // from validator.swagger.io: /docs must need no network.
                .config(utoipa_swagger_ui::Config::default().validator_url("none")),
        )
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::map_request(sanitize_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                        let id = req
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                    })
                    .on_failure(log_failure),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(compression())
                .layer(axum::middleware::from_fn(security_headers))
                // Outside the panic catcher, so a panic counts as its 500.
                .layer(axum::middleware::from_fn(crate::metrics::track_requests))
                .layer(axum::middleware::from_fn(log_requests))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    throttle::limit,
                ))
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(axum::middleware::from_fn(detach_writes))
                .layer(DefaultBodyLimit::max(max_body))
                // A body that trickles in is cut (read as 400 unreadable_body).
                .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                    crate::listener::BODY_READ_TIMEOUT,
                )),
        )
}

/// One `info` line per request (target `orgboard::request`): method, route
/// template (never the raw path's query string: tokens of event streams
/// travel there), status, latency, request id, and the organization when one
/// was resolved. Metrics scrapes and health probes log at `debug`.
async fn log_requests(
    mut req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let method = req.method().clone();
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let org = extract::RequestOrg::default();
    req.extensions_mut().insert(org.clone());
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let route = route.as_deref().unwrap_or("unmatched");
    let status = res.status().as_u16();
    let org_id = org.get().map(|id| id.to_string());
    let org_id = org_id.as_deref().unwrap_or("-");
    if matches!(route, "/metrics" | "/healthz" | "/readyz") {
        tracing::debug!(target: "orgboard::request", %method, route, status, latency_ms, request_id, org_id, "request");
    } else {
        tracing::info!(target: "orgboard::request", %method, route, status, latency_ms, request_id, org_id, "request");
    }
    res
}

/// Answers above [`COMPRESS_ABOVE`] bytes are compressed (gzip, br or zstd,
/// as the client prefers) unless they are an event stream, an image, or
/// carry a `Content-Encoding` already (the board-view cache and the
/// embedded assets are stored compressed). Levels are the fast defaults:
/// on two cores, compressing costs more than the bytes it saves on a LAN
/// at the best levels.
fn compression()
-> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::Predicate as _;
    use tower_http::compression::predicate::{NotForContentType, SizeAbove};
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(
            SizeAbove::new(COMPRESS_ABOVE)
                .and(NotForContentType::GRPC)
                .and(NotForContentType::IMAGES)
                .and(NotForContentType::SSE),
        )
}

/// Smallest answer worth compressing, in bytes.
pub const COMPRESS_ABOVE: u16 = 2048;

/// `503` answers (load shed: hashing slots full, the database busy, a
/// dependency away) not yet logged.
static BUSY_UNLOGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// When `503` answers were last logged.
static BUSY_LOGGED_AT: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// Logs a failed request. `503` answers are load being shed, not faults: a
/// flood of them would flood the log one `error` line each, so they are
/// summed and logged at `warn` at most once per 10 s (each is still counted
/// in `orgboard_http_requests_total`). Any other failure (a 5xx, a body
/// error) is logged at `error`.
fn log_failure(
    class: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use std::sync::atomic::Ordering;
    use tower_http::classify::ServerErrorsFailureClass as Class;
    let ms = latency.as_millis() as u64;
    match class {
        Class::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            BUSY_UNLOGGED.fetch_add(1, Ordering::Relaxed);
            let Ok(mut last) = BUSY_LOGGED_AT.try_lock() else {
                return;
            };
            if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10)) {
                *last = Some(std::time::Instant::now());
                let n = BUSY_UNLOGGED.swap(0, Ordering::Relaxed);
                tracing::warn!(
                    refused = n,
                    "requests answered 503 (busy) since the last report"
                );
            }
        }
        other => tracing::error!(classification = %other, latency_ms = ms, "request failed"),
    }
}

/// The longest client-sent `X-Request-Id` kept.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// A client's `X-Request-Id` is kept only when it is a short token
/// (1–[`MAX_REQUEST_ID_LEN`] of `A–Z a–z 0–9 - _ . :`); anything else is
/// replaced by a fresh id. It is echoed in every log line and stored in the
/// append-only audit log: a 60 KB or multi-line value there is an attack.
async fn sanitize_request_id(mut req: Request<axum::body::Body>) -> Request<axum::body::Body> {
    let acceptable = |v: &HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_REQUEST_ID_LEN
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
    };
    let values = req.headers().get_all(REQUEST_ID);
    let mut it = values.iter();
    let keep = matches!((it.next(), it.next()), (Some(v), None) if acceptable(v));
    if !keep {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// What `/docs` (Swagger UI) may load: its own scripts and styles (it sets
/// inline style attributes, hence `'unsafe-inline'` for styles only), data:
/// images, requests to this origin; never framed.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// API answers load nothing and are never framed.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Headers every answer carries unless its handler chose otherwise:
/// `nosniff`; a `Content-Security-Policy` (strict for JSON, Swagger UI's
/// needs for `/docs`) and `X-Frame-Options: DENY`; `Referrer-Policy:
/// same-origin`; `Cache-Control: no-store` on the API (tokens and tenant
/// data must not stay in shared or browser caches). `/docs` assets, stored
/// gzipped, are inflated for a client that does not accept gzip.
async fn security_headers(
    req: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    let docs = path == "/docs" || path.starts_with("/docs/");
    let api = path.starts_with("/api/");
    let accepts_gzip = crate::http::conditional::accepts_gzip(req.headers());
    let mut res = next.run(req).await;
    if docs && !accepts_gzip {
        res = inflate_gzip(res).await;
    }
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(if docs {
            DOCS_CSP
        } else {
            API_CSP
        }));
    h.entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    if api {
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    res
}

/// Largest embedded asset inflated for a client without gzip.
const MAX_INFLATED: usize = 16 * 1024 * 1024;

/// The response with a gzip body inflated (`Content-Encoding` removed).
async fn inflate_gzip(res: Response) -> Response {
    let is_gzip = res
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    if !is_gzip {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_INFLATED).await else {
        return ApiError::internal(anyhow::anyhow!("cannot read an embedded asset"))
            .into_response();
    };
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(&bytes[..]);
    if let Err(e) = std::io::Read::read_to_end(&mut decoder, &mut out) {
        return ApiError::internal(anyhow::anyhow!("cannot inflate an embedded asset: {e}"))
            .into_response();
    }
    parts.headers.remove(header::CONTENT_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(out))
}

/// Runs every request that may write (any method but GET, HEAD, OPTIONS) in
/// its own task, so a client that disconnects mid-request cannot cancel a
/// write transaction half way (it would hold SQLite's write lock until the
/// connection is reused) or drop the after-commit work of a change that did
/// commit (cache invalidation, event dispatch): the change runs to its end,
/// and only the answer is lost.
async fn detach_writes(req: Request<axum::body::Body>, next: axum::middleware::Next) -> Response {
    use axum::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    match tokio::spawn(next.run(req)).await {
        Ok(res) => res,
        // A panic inside: answer as the panic catcher would.
        Err(e) => ApiError::internal(anyhow::anyhow!("request task failed: {e}")).into_response(),
    }
}

/// `404` for a path no route matches: `problem+json`, or the web
/// application's "page not found" for a browser asking for HTML.
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    if !uri.path().starts_with("/api/")
        && let Some(page) = crate::web::not_found_page(&headers)
    {
        return page;
    }
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        "Not found",
        "No route matches this path.",
    )
    .into_response()
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed",
        "This route does not accept this method.",
    )
}

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::internal(anyhow::anyhow!("handler panicked: {msg}")).into_response()
}

/// Health status.
#[derive(Serialize, ToSchema)]
struct Health {
    /// `ok`.
    status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
async fn healthz() -> AppJson<Health> {
    AppJson(Health { status: "ok" })
}

/// How long readiness waits for Redis to answer `PING`.
const REDIS_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness: the database answers and every migration is applied; Redis,
/// when configured, answers `PING`.
#[utoipa::path(get, path = "/readyz", tag = "ops",
    responses((status = 200, body = Health), (status = 503, body = Problem)))]
async fn readyz(State(state): State<AppState>) -> Result<AppJson<Health>, ApiError> {
    state.db.ready().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready");
        ApiError::unavailable("The database is not ready.")
    })?;
    if let Some(redis) = &state.redis {
        let pong = tokio::time::timeout(REDIS_READY_TIMEOUT, redis.ping()).await;
        let failure = match pong {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some(format!("no answer within {REDIS_READY_TIMEOUT:?}")),
        };
        if let Some(error) = failure {
            tracing::warn!(%error, "not ready: Redis");
            return Err(ApiError::unavailable("Redis is not reachable."));
        }
    }
    Ok(AppJson(Health { status: "ok" }))
}

/// Prometheus metrics in the text exposition format: requests by route
/// template and status with latency histograms, database pools, the job
/// queue, live events, the board cache. Unauthenticated, like `/healthz`.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format (version 0.0.4)",
        content_type = "text/plain; version=0.0.4", body = String)))]
async fn metrics(State(state): State<AppState>) -> Response {
    let text = crate::metrics::scrape(&state.db).await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}
