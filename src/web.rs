//! The web application (SPEC §10), served by the same binary at `/`.
//!
//! The application is plain ES modules, one stylesheet and one HTML shell
//! under `web/`, embedded in the binary with `include_bytes!`: no Node.js,
//! bundler or download at build or run time. It talks to the public JSON
//! API like any other client.
//!
//! * Every page path of §10 (`/`, `/login`, `/signup`, `/invites/accept`,
//!   `/reset-password`, `/me`, `/o/…`) answers the same HTML shell; the
//!   application routes on the client. Another path asked for by a browser
//!   (`Accept: text/html`) gets the shell with `404`, which shows "page not
//!   found"; API clients keep getting `problem+json`.
//! * Assets live under `/assets/<build>/…`, where `<build>` is a hash of
//!   every embedded file: a new binary changes every URL, so assets are
//!   cached as `immutable` for a year while the shell (`no-cache`,
//!   revalidated by `ETag`) always names the current ones. An asset asked
//!   for under another build's prefix (a tab open across an upgrade) is
//!   still served, revalidated instead of cached.
//! * Each file is gzipped once, on first use, at the best level, and served
//!   compressed to clients that accept gzip (every browser); `ETag` /
//!   `If-None-Match` answer `304`.
//! * HTML carries a strict `Content-Security-Policy`: scripts and styles
//!   only from this origin (no inline script or style, no `eval`), requests
//!   only to this origin, never framed.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::LazyLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::http::conditional::accepts_gzip;

/// What HTML pages may load and do.
pub const APP_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The embedded files: name under `/assets/<build>/` and bytes.
macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../web/", $name)) as &[u8])),*]
    };
}

const FILES: &[(&str, &[u8])] = assets!(
    "app.css",
    "icon.svg",
    "js/main.js",
    "js/api.js",
    "js/dom.js",
    "js/live.js",
    "js/pages/auth.js",
    "js/pages/boards.js",
    "js/pages/board.js",
    "js/pages/card.js",
    "js/pages/members.js",
    "js/pages/audit.js",
    "js/pages/settings.js",
    "js/pages/me.js",
);

const SHELL: &str = include_str!("../web/index.html");

/// One servable file, ready in both encodings.
struct Asset {
    content_type: &'static str,
    /// Shared buffers: an answer takes a reference, never a copy.
    plain: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
}

impl Asset {
    fn new(name: &str, plain: Vec<u8>) -> Self {
        let etag = format!("\"{}\"", &hex(&Sha256::digest(&plain))[..20]);
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let gzip = enc
            .write_all(&plain)
            .and_then(|()| enc.finish())
            .unwrap_or_default();
        Self {
            content_type: content_type(name),
            plain: Bytes::from(plain),
            gzip: Bytes::from(gzip),
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
        }
    }
}

/// Every asset, the shell, and the build prefix.
struct Bundle {
    build: String,
    files: HashMap<&'static str, Asset>,
    shell: Asset,
}

static BUNDLE: LazyLock<Bundle> = LazyLock::new(|| {
    let mut all = Sha256::new();
    for (name, bytes) in FILES {
        all.update(name.as_bytes());
        all.update((bytes.len() as u64).to_le_bytes());
        all.update(bytes);
    }
    all.update(SHELL.as_bytes());
    let build = hex(&all.finalize())[..12].to_owned();
    let files = FILES
        .iter()
        .map(|(name, bytes)| (*name, Asset::new(name, bytes.to_vec())))
        .collect();
    let shell = Asset::new(
        "index.html",
        SHELL
            .replace("{{assets}}", &format!("/assets/{build}"))
            .into_bytes(),
    );
    Bundle {
        build,
        files,
        shell,
    }
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The build prefix of the asset URLs (a hash of every embedded file).
pub fn build_id() -> &'static str {
    &BUNDLE.build
}

/// Routes of the web application (not part of the OpenAPI document).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(page))
        .route("/login", get(page))
        .route("/signup", get(page))
        .route("/reset-password", get(page))
        .route("/invites/accept", get(page))
        .route("/me", get(page))
        .route("/o/{*rest}", get(page))
        .route("/assets/{build}/{*name}", get(asset))
}

async fn page(headers: HeaderMap) -> Response {
    serve(
        &BUNDLE.shell,
        &headers,
        StatusCode::OK,
        CacheFor::Revalidate,
    )
}

/// The shell with `404`, for a browser asking for a path that is no page.
pub fn not_found_page(headers: &HeaderMap) -> Option<Response> {
    let wants_html = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/html"));
    wants_html.then(|| {
        serve(
            &BUNDLE.shell,
            headers,
            StatusCode::NOT_FOUND,
            CacheFor::Never,
        )
    })
}

async fn asset(Path((build, name)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let Some(file) = BUNDLE.files.get(name.as_str()) else {
        return crate::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "Not found",
            "No such asset.",
        )
        .into_response();
    };
    let cache = if build == BUNDLE.build {
        CacheFor::Ever
    } else {
        CacheFor::Revalidate
    };
    serve(file, &headers, StatusCode::OK, cache)
}

#[derive(Clone, Copy)]
enum CacheFor {
    /// Content-addressed URL: cache for a year, never revalidate.
    Ever,
    /// Revalidate with `If-None-Match` on every use.
    Revalidate,
    /// A `404` page: do not keep.
    Never,
}

fn serve(file: &Asset, headers: &HeaderMap, status: StatusCode, cache: CacheFor) -> Response {
    let mut res = if status == StatusCode::OK
        && file
            .etag
            .to_str()
            .is_ok_and(|tag| crate::http::conditional::if_none_match(headers, tag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let (body, gzip) = if accepts_gzip(headers) {
            (file.gzip.clone(), true)
        } else {
            (file.plain.clone(), false)
        };
        let mut res = (status, Body::from(body)).into_response();
        if gzip {
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        res
    };
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if status == StatusCode::OK {
        h.insert(header::ETAG, file.etag.clone());
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(match cache {
            CacheFor::Ever => "public, max-age=31536000, immutable",
            CacheFor::Revalidate => "no-cache",
            CacheFor::Never => "no-store",
        }),
    );
    if file.content_type.starts_with("text/html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(APP_CSP),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_compressed_and_the_shell_names_the_build() {
        let b = &*BUNDLE;
        for (name, file) in &b.files {
            assert!(!file.gzip.is_empty(), "{name} has no gzip form");
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&file.gzip[..]), &mut out)
                .expect("inflate");
            assert_eq!(out, file.plain, "{name} round-trips");
        }
        let shell = String::from_utf8(b.shell.plain.to_vec()).expect("utf-8");
        assert!(shell.contains(&format!("/assets/{}/js/main.js", b.build)));
        assert!(!shell.contains("{{"), "every placeholder is filled");
    }

    #[test]
    fn no_asset_needs_unsafe_inline_or_eval() {
        let shell = String::from_utf8(BUNDLE.shell.plain.to_vec()).expect("utf-8");
        assert!(!shell.contains("style="), "no inline style attribute");
        // Every <script> of the shell loads a file.
        for tag in shell.split("<script").skip(1) {
            assert!(tag.contains("src="), "inline script in the shell: {tag}");
        }
        for (name, bytes) in FILES {
            let text = String::from_utf8_lossy(bytes);
            for banned in [
                "eval(",
                "new Function",
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(!text.contains(banned), "{name} uses {banned}");
            }
        }
    }

    /// The colour pairs the stylesheet puts text on, in both schemes, keep
    /// WCAG AA contrast (4.5:1). Reads the custom properties of app.css.
    #[test]
    fn text_colours_pass_wcag_aa_in_both_schemes() {
        let css = String::from_utf8_lossy(
            FILES
                .iter()
                .find(|(n, _)| *n == "app.css")
                .map(|(_, b)| *b)
                .unwrap_or_default(),
        )
        .into_owned();
        let dark_at = css
            .find("prefers-color-scheme: dark")
            .expect("a dark scheme");
        let vars = |block: &str| -> HashMap<String, [f64; 3]> {
            block
                .split(';')
                .filter_map(|decl| {
                    let (name, value) = decl.rsplit_once(':')?;
                    let name = name
                        .split(|c: char| c.is_whitespace() || c == '{')
                        .next_back()?;
                    let hex = value.trim().strip_prefix('#')?;
                    if !name.starts_with("--") || hex.len() != 6 {
                        return None;
                    }
                    let c =
                        |i: usize| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0));
                    Some((name.to_owned(), [c(0), c(2), c(4)]))
                })
                .collect()
        };
        let light = vars(&css[..dark_at]);
        let mut dark = light.clone();
        dark.extend(vars(
            &css[dark_at
                ..css[dark_at..]
                    .find("}\n}")
                    .map_or(css.len(), |e| dark_at + e)],
        ));
        let luminance = |c: [f64; 3]| {
            let f = |v: f64| {
                let v = v / 255.0;
                if v <= 0.03928 {
                    v / 12.92
                } else {
                    ((v + 0.055) / 1.055).powf(2.4)
                }
            };
            0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2])
        };
        let pairs = [
            ("--text", "--bg"),
            ("--text", "--surface"),
            ("--text", "--surface-2"),
            ("--muted", "--bg"),
            ("--muted", "--surface"),
            ("--muted", "--surface-2"),
            ("--accent", "--bg"),
            ("--accent", "--surface"),
            ("--accent-text", "--accent"),
            ("--danger", "--surface"),
            ("--danger", "--surface-2"),
            ("--surface", "--danger"),
            ("--ok", "--bg"),
            ("--ok", "--surface-2"),
            ("--warn-text", "--warn-bg"),
        ];
        for (scheme, vars) in [("light", &light), ("dark", &dark)] {
            for (fg, bg) in pairs {
                let (a, b) = (luminance(vars[fg]), luminance(vars[bg]));
                let ratio = (a.max(b) + 0.05) / (a.min(b) + 0.05);
                assert!(ratio >= 4.5, "{scheme}: {fg} on {bg} is {ratio:.2}:1");
            }
        }
        assert_ne!(light["--bg"], dark["--bg"], "the dark scheme was read");
    }

    #[test]
    fn gzip_negotiation() {
        let mut h = HeaderMap::new();
        assert!(!accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(accepts_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, br"),
        );
        assert!(!accepts_gzip(&h));
    }
}
