//! The browser-test harness: a chromedriver and a real `orgboard` process per
//! test, WebDriver sessions (fantoccini) on fresh Chromium profiles, lookups
//! by accessible name, explicit waits, and screenshots of every open browser
//! when a test fails.

use std::any::Any;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::elements::{Element, ElementRef};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use serde_json::{Value, json};

use crate::common;

const BIN: &str = env!("CARGO_BIN_EXE_orgboard");

/// How long an explicit wait polls before failing.
pub const WAIT: Duration = Duration::from_secs(10);
/// How often it polls.
const POLL: Duration = Duration::from_millis(50);
/// The bound on a whole test body.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The password of every user the tests create.
pub const PASSWORD: &str = "correct horse battery staple";

/// The key WebDriver wraps element references in.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

// ---------------------------------------------------------------------------
// Finding the programs

/// `$var` if set, else `name` on `PATH`, else `fallback`: the first that is
/// a file. (`build.rs` looks up chromedriver the same way.)
fn program(var: &str, name: &str, fallback: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .chain([PathBuf::from(fallback)])
        .find(|p| p.is_file())
}

fn chromedriver_path() -> PathBuf {
    program(
        "ORGBOARD_CHROMEDRIVER",
        "chromedriver",
        "/usr/bin/chromedriver",
    )
    .unwrap_or_else(|| {
        panic!(
            "chromedriver not found (ORGBOARD_CHROMEDRIVER, PATH, /usr/bin/chromedriver): the \
             browser tests need Chromium and its driver (Debian: apt-get install chromium \
             chromium-driver). Under CI every browser test must run; elsewhere they are \
             ignored when build.rs finds no chromedriver."
        )
    })
}

fn chromium_path() -> PathBuf {
    program("ORGBOARD_CHROMIUM", "chromium", "/usr/bin/chromium").unwrap_or_else(|| {
        panic!(
            "Chromium not found (ORGBOARD_CHROMIUM, `chromium` on PATH, /usr/bin/chromium): \
             the browser tests need it (Debian: apt-get install chromium chromium-driver)"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a local port")
        .local_addr()
        .expect("local address")
        .port()
}

/// Kills a child's whole process group (chromedriver and the browsers it
/// started), then reaps the child.
fn kill_group(child: &mut Child) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    let _ = child.kill();
    let _ = child.wait();
}

/// One HTTP/1.1 exchange over a plain socket (`Connection: close`), for
/// diagnostics that must not panic: (status, JSON body or `Null`).
fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    // Read by Content-Length: chromedriver says `Connection: close` but
    // keeps the connection open.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_len, body_len) = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break (buf.len(), None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            break (end + 4, len);
        }
    };
    while body_len.is_none_or(|len| buf.len() < head_len + len) {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf[..head_len.min(buf.len())]);
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let json = serde_json::from_slice(&buf[head_len.min(buf.len())..]).unwrap_or(Value::Null);
    Ok((status, json))
}

// ---------------------------------------------------------------------------
// chromedriver

/// A chromedriver on a free local port, in its own process group.
struct Chromedriver {
    child: Child,
    addr: SocketAddr,
}

impl Chromedriver {
    async fn start() -> Self {
        let path = chromedriver_path();
        let port = free_port();
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .arg("--log-level=SEVERE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        let mut driver = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok((200, status)) = http_json(driver.addr, "GET", "/status", None)
                && status["value"]["ready"] == json!(true)
            {
                return driver;
            }
            if let Ok(Some(exit)) = driver.child.try_wait() {
                panic!("{} exited at start: {exit}", path.display());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer on port {port} within 15 s",
                path.display()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

// ---------------------------------------------------------------------------
// The server

/// Which database the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The real `orgboard` binary on a free port with a fresh data directory
/// (and, for PostgreSQL, a fresh database), killed when dropped. It can be
/// stopped and started again on the same port, data directory and database
/// ([`Server::stop`], [`Server::restart`]).
pub struct Server {
    child: Mutex<Option<Child>>,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    db_url: Option<String>,
    /// Extra environment (overrides the defaults below).
    env: Vec<(String, String)>,
    _pg: Option<common::PgDatabase>,
}

impl Server {
    /// The mails the server wrote to its outbox (no SMTP in tests), oldest
    /// first by name.
    pub fn mails(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.outbox())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    async fn start(backend: Backend, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pg, db_url) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let (db, url) = common::PgDatabase::create().await;
                (Some(db), Some(url))
            }
        };
        let mut server = Self {
            child: Mutex::new(None),
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            dir,
            db_url,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            _pg: pg,
        };
        for attempt in 1.. {
            match server.try_spawn().await {
                Ok(()) => break,
                // Another test's process took the free port between
                // `free_port()` and the server's bind: another port.
                Err(e) if attempt < 5 && e.contains("Address already in use") => {
                    server.addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
                }
                Err(e) => panic!("{e}"),
            }
        }
        server
    }

    /// Starts the process and waits until it answers `/readyz`.
    async fn spawn(&self) {
        if let Err(e) = self.try_spawn().await {
            panic!("{e}");
        }
    }

    /// [`Server::spawn`]; `Err` with the log's tail when the process exits
    /// before it is ready.
    async fn try_spawn(&self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("server log");
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ORGBOARD_ADDR", self.addr.to_string())
            .env("ORGBOARD_DATA_DIR", self.dir.path().join("data"))
            .env("ORGBOARD_ARGON2_MEMORY_KIB", "64")
            .env("ORGBOARD_ARGON2_ITERATIONS", "1")
            // Every browser comes from 127.0.0.1.
            .env("ORGBOARD_RATE_LIMIT_PER_IP", "100000")
            .env("ORGBOARD_RATE_LIMIT_PER_ACCOUNT", "100000")
            .env("ORGBOARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("server log")))
            .stderr(Stdio::from(log));
        if let Some(url) = &self.db_url {
            cmd.env("ORGBOARD_DATABASE_URL", url);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start orgboard");
        *self.child.lock().expect("server child") = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, _)) = http_json(self.addr, "GET", "/readyz", None) {
                return Ok(());
            }
            let exited = self
                .child
                .lock()
                .expect("server child")
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(exit) = exited {
                return Err(format!(
                    "orgboard exited at start ({exit}):\n{}",
                    self.log_tail(40)
                ));
            }
            assert!(
                Instant::now() < deadline,
                "orgboard not ready within 30 s:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Kills the server (as a crash or a pulled cable would: no goodbye to
    /// open connections) and waits until its port refuses connections.
    pub async fn stop(&self) {
        let child = self.child.lock().expect("server child").take();
        let mut child = child.expect("the server is running");
        let _ = child.kill();
        let _ = child.wait();
        poll("the server's port to refuse connections", || async {
            match TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)) {
                Ok(_) => Err(format!("{} still accepts", self.addr)),
                Err(_) => Ok(()),
            }
        })
        .await;
    }

    /// Starts the stopped server again: same port, data directory (and so
    /// signing secret) and database.
    pub async fn restart(&self) {
        assert!(
            self.child.lock().expect("server child").is_none(),
            "restart: the server is still running"
        );
        self.spawn().await;
    }

    /// The absolute URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Where mails go without SMTP.
    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("data").join("outbox")
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// One API request: (status, JSON body).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        common::live::request(self.addr, method, path, token, body).await
    }

    /// Like [`Server::api`], and the status must be `expect`.
    #[track_caller]
    pub fn call<'a>(
        &'a self,
        method: &'a str,
        path: &'a str,
        token: &'a str,
        body: Option<Value>,
        expect: u16,
    ) -> impl Future<Output = Value> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let (status, json) = self.api(method, path, Some(token), body).await;
            assert_eq!(
                status, expect,
                "{method} {path} (called at {caller}) answered {status}: {json}"
            );
            json
        }
    }

    /// Signs up a user through the API: their access token.
    pub async fn signup(&self, name: &str, email: &str) -> String {
        let (status, json) = self
            .api(
                "POST",
                "/api/v1/auth/signup",
                None,
                Some(json!({"name": name, "email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 201, "sign-up of {email}: {json}");
        json["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Logs a user in through the API: their access token.
    pub async fn login(&self, email: &str) -> String {
        let (status, json) = self
            .api(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(status, 200, "login of {email}: {json}");
        json["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// The board as the API has it: (list name, card titles) in order.
    pub async fn board_state(&self, token: &str, org: &str, board: &str) -> BoardState {
        let view = self
            .call(
                "GET",
                &format!("/api/v1/orgs/{org}/boards/{board}"),
                token,
                None,
                200,
            )
            .await;
        view["lists"]
            .as_array()
            .expect("lists")
            .iter()
            .map(|l| {
                let titles = l["tasks"]
                    .as_array()
                    .expect("tasks")
                    .iter()
                    .map(|t| t["title"].as_str().expect("title").to_owned())
                    .collect();
                (l["name"].as_str().expect("name").to_owned(), titles)
            })
            .collect()
    }

    /// The accept link of the invitation mailed to `to`, from the outbox
    /// (waits for the mail job).
    pub async fn invite_link_mailed_to(&self, to: &str) -> String {
        let dir = self.outbox();
        poll(
            &format!("an invitation to {to} in {}", dir.display()),
            || {
                let dir = dir.clone();
                async move {
                    let entries = std::fs::read_dir(&dir).map_err(|e| e.to_string())?;
                    let mut seen = Vec::new();
                    for entry in entries.flatten() {
                        let path = entry.path();
                        if path.extension().is_none_or(|e| e != "eml") {
                            continue;
                        }
                        let raw = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                        let mail = Mail::parse(&raw);
                        if !mail.header("To").is_some_and(|t| t.contains(to)) {
                            seen.push(mail.header("To").unwrap_or_default().to_owned());
                            continue;
                        }
                        let start = mail.body.find("http").ok_or("no link in the mail")?;
                        let link: String = mail.body[start..]
                            .chars()
                            .take_while(|c| !c.is_whitespace())
                            .collect();
                        if !link.contains("/invites/accept?token=") {
                            return Err(format!("unexpected link {link:?} in {}", mail.body));
                        }
                        return Ok(link);
                    }
                    Err(format!("mails so far to: {seen:?}"))
                }
            },
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.get_mut().ok().and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A board: (list name, card titles) per list, in order.
pub type BoardState = Vec<(String, Vec<String>)>;

/// Builds a [`BoardState`] from literals.
pub fn board(lists: &[(&str, &[&str])]) -> BoardState {
    lists
        .iter()
        .map(|(name, cards)| {
            (
                (*name).to_owned(),
                cards.iter().map(|c| (*c).to_owned()).collect(),
            )
        })
        .collect()
}

/// A mail as written to the outbox: headers (unfolded) and the decoded body.
struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let encoding = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Content-Transfer-Encoding"))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        let body = match encoding.as_str() {
            "quoted-printable" => quoted_printable(body),
            "base64" => {
                use base64::Engine as _;
                let compact: String = body.split_whitespace().collect();
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .expect("base64 mail body");
                String::from_utf8_lossy(&bytes).into_owned()
            }
            _ => body.to_owned(),
        };
        Self { headers, body }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes a quoted-printable body (soft line breaks, `=XX`).
fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------
// Waiting

/// Polls `check` until it gives `Ok` (at most [`WAIT`]); on timeout panics
/// with `what` and the last `Err` (what was seen instead).
#[track_caller]
pub fn poll<'a, T, F, Fut>(what: &'a str, check: F) -> impl Future<Output = T> + 'a
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = Result<T, String>> + 'a,
{
    poll_for(WAIT, what, check)
}

/// [`poll`] with another bound.
#[track_caller]
pub fn poll_for<'a, T, F, Fut>(
    limit: Duration,
    what: &'a str,
    mut check: F,
) -> impl Future<Output = T> + 'a
where
    F: FnMut() -> Fut + 'a,
    Fut: Future<Output = Result<T, String>> + 'a,
{
    let caller = std::panic::Location::caller();
    async move {
        let deadline = Instant::now() + limit;
        loop {
            match check().await {
                Ok(v) => return v,
                Err(seen) => {
                    if Instant::now() >= deadline {
                        panic!("waited {limit:?} for {what} (at {caller}), but: {seen}");
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

// ---------------------------------------------------------------------------
// A test

/// Everything one test runs against: the server, the chromedriver, and the
/// browser sessions opened so far.
pub struct Ui {
    pub server: Server,
    driver: Chromedriver,
    sessions: Mutex<Vec<(Client, tempfile::TempDir)>>,
}

/// Runs one browser test: starts chromedriver and the server, runs `body`
/// (bounded by a timeout), and if it fails saves a screenshot of every open
/// browser to `target/browser-screenshots/<name>-<n>.png` (with the page's
/// HTML beside it) and prints the browsers' console and the server's log.
pub async fn run<F, Fut>(name: &str, backend: Backend, body: F)
where
    F: FnOnce(Arc<Ui>) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with(name, backend, &[], body).await;
}

/// [`run`] with extra environment for the server (e.g.
/// `ORGBOARD_ACCESS_TOKEN_TTL_SECS`), kept across [`Server::restart`].
pub async fn run_with<F, Fut>(name: &str, backend: Backend, env: &[(&str, &str)], body: F)
where
    F: FnOnce(Arc<Ui>) -> Fut,
    Fut: Future<Output = ()>,
{
    let (driver, server) = tokio::join!(Chromedriver::start(), Server::start(backend, env));
    let ui = Arc::new(Ui {
        server,
        driver,
        sessions: Mutex::new(Vec::new()),
    });
    let outcome = AssertUnwindSafe(tokio::time::timeout(TEST_TIMEOUT, body(ui.clone())))
        .catch_unwind()
        .await;
    let failure: Option<Box<dyn Any + Send>> = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some(Box::new(format!(
            "{name} did not finish within {TEST_TIMEOUT:?}"
        ))),
        Err(panic) => Some(panic),
    };
    if failure.is_some() {
        ui.report_failure(name).await;
    }
    ui.close().await;
    drop(ui);
    if let Some(panic) = failure {
        std::panic::resume_unwind(panic);
    }
}

impl Ui {
    /// A new browser session (a fresh profile: no cookies, no storage).
    pub async fn browser(&self) -> Browser {
        self.open_browser(None).await
    }

    /// A new browser session emulating a phone whose viewport is
    /// `width`×`height` CSS pixels (Chromium's mobile emulation: a desktop
    /// window cannot be made that narrow).
    pub async fn phone(&self, width: u32, height: u32) -> Browser {
        self.open_browser(Some(json!({
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}
        })))
        .await
    }

    async fn open_browser(&self, mobile_emulation: Option<Value>) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = Capabilities::new();
        caps.insert("browserName".into(), json!("chrome"));
        let mut chrome = json!({"binary": chromium_path(), "args": args});
        if let Some(m) = mobile_emulation {
            chrome["mobileEmulation"] = m;
        }
        caps.insert("goog:chromeOptions".into(), chrome);
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        // An alert stays open (and is reported), rather than being dismissed.
        caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
        let client = tokio::time::timeout(
            Duration::from_secs(30),
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&self.driver.url()),
        )
        .await
        .expect("chromedriver did not open a session within 30 s")
        .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"));
        client
            .update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(30)),
                Some(Duration::ZERO),
            ))
            .await
            .expect("set timeouts");
        self.sessions
            .lock()
            .expect("sessions")
            .push((client.clone(), profile));
        Browser {
            client,
            base: self.server.url(""),
            driver: self.driver.addr,
        }
    }

    async fn report_failure(&self, name: &str) {
        let clients: Vec<Client> = self
            .sessions
            .lock()
            .expect("sessions")
            .iter()
            .map(|(c, _)| c.clone())
            .collect();
        let dir = screenshot_dir();
        let _ = std::fs::create_dir_all(&dir);
        let file = name.replace("::", "-");
        for (n, client) in clients.iter().enumerate() {
            let n = n + 1;
            let bound = Duration::from_secs(5);
            let url = tokio::time::timeout(bound, client.current_url()).await;
            eprintln!("--- browser {n}: {url:?}");
            match tokio::time::timeout(bound, client.screenshot()).await {
                Ok(Ok(png)) => {
                    let path = dir.join(format!("{file}-{n}.png"));
                    match std::fs::write(&path, png) {
                        Ok(()) => eprintln!("--- browser {n}: screenshot {}", path.display()),
                        Err(e) => {
                            eprintln!("--- browser {n}: cannot write {}: {e}", path.display())
                        }
                    }
                }
                other => eprintln!("--- browser {n}: no screenshot: {other:?}"),
            }
            if let Ok(Ok(html)) = tokio::time::timeout(bound, client.source()).await {
                let _ = std::fs::write(dir.join(format!("{file}-{n}.html")), html);
            }
            if let Ok(Ok(Some(session))) = tokio::time::timeout(bound, client.session_id()).await {
                let path = format!("/session/{session}/se/log");
                if let Ok((200, log)) = http_json(
                    self.driver.addr,
                    "POST",
                    &path,
                    Some(&json!({"type": "browser"})),
                ) {
                    for entry in log["value"].as_array().into_iter().flatten() {
                        eprintln!(
                            "--- browser {n} console: {} {}",
                            entry["level"], entry["message"]
                        );
                    }
                }
            }
        }
        eprintln!("--- server log (last lines):\n{}", self.server.log_tail(30));
    }

    async fn close(&self) {
        let sessions: Vec<_> = self.sessions.lock().expect("sessions").drain(..).collect();
        for (client, _profile) in sessions {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
    }
}

/// `target/browser-screenshots` (beside `target/tmp`).
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new("target"))
        .join("browser-screenshots")
}

// ---------------------------------------------------------------------------
// A browser session

/// Where a dragged card is dropped.
#[derive(Debug, Clone, Copy)]
pub enum DropAt<'a> {
    /// On the upper half of this card.
    Before(&'a str),
    /// On the lower half of this card.
    After(&'a str),
    /// On the empty part of the list with this name (at its end).
    EndOf(&'a str),
}

/// Finds form controls by their label (or `aria-label`): the label's text
/// without the text of the controls inside it, whitespace collapsed.
const FIND_CONTROL: &str = r#"
const [name, scope] = arguments;
const root = scope || document;
const norm = s => (s || '').replace(/\s+/g, ' ').trim();
const labelText = label => {
  const copy = label.cloneNode(true);
  copy.querySelectorAll('input, select, textarea, button').forEach(e => e.remove());
  return norm(copy.textContent);
};
const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
const found = [];
for (const label of root.querySelectorAll('label')) {
  if (label.control && labelText(label) === name) found.push(label.control);
}
for (const e of root.querySelectorAll('input, select, textarea')) {
  if (norm(e.getAttribute('aria-label')) === name) found.push(e);
  const by = e.getAttribute('aria-labelledby');
  if (by && norm(by.split(/\s+/).map(id => document.getElementById(id)?.textContent).join(' ')) === name) found.push(e);
}
return found.filter(visible)[0] || null;
"#;

/// All elements matching `selector` in `scope` whose accessible text
/// (`aria-label`, else text, else `value`) is `name`.
const FIND_NAMED: &str = r#"
const [selector, name, scope, visibleOnly] = arguments;
const root = scope || document;
const norm = s => (s || '').replace(/\s+/g, ' ').trim();
const visible = e => !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length);
return [...root.querySelectorAll(selector)].filter(e =>
  (norm(e.getAttribute('aria-label')) || norm(e.textContent) || norm(e.value)) === name
  && (!visibleOnly || visible(e)));
"#;

const BUTTONS: &str = "button, [role=button], input[type=submit], input[type=button]";

/// One browser session on the test's server.
#[derive(Clone)]
pub struct Browser {
    pub client: Client,
    base: String,
    /// The chromedriver's address (for its Chromium-specific commands).
    driver: SocketAddr,
}

fn element(client: &Client, value: &Value) -> Option<Element> {
    let id = value.get(ELEMENT_KEY)?.as_str()?;
    Some(Element::from_element_id(
        client.clone(),
        ElementRef::from(id.to_owned()),
    ))
}

fn arg(e: Option<&Element>) -> Value {
    e.map_or(Value::Null, |e| serde_json::to_value(e).expect("element"))
}

impl Browser {
    /// Opens `path` (relative to the server).
    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Runs a Chrome DevTools Protocol command (chromedriver's
    /// `goog/cdp/execute`) and returns its result.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let session = self
            .client
            .session_id()
            .await
            .expect("session id")
            .expect("a session");
        let addr = self.driver;
        let path = format!("/session/{session}/goog/cdp/execute");
        let body = json!({"cmd": cmd, "params": params});
        let (status, answer) =
            tokio::task::spawn_blocking(move || http_json(addr, "POST", &path, Some(&body)))
                .await
                .expect("CDP call")
                .unwrap_or_else(|e| panic!("CDP {cmd}: {e}"));
        assert_eq!(status, 200, "CDP {cmd} answered {status}: {answer}");
        answer["value"].clone()
    }

    /// Reloads the page.
    pub async fn reload(&self) {
        self.client.refresh().await.expect("reload");
    }

    /// Runs `script` (a function body; `arguments` are `args`).
    pub async fn try_js(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        self.client
            .execute(script, args)
            .await
            .map_err(|e| format!("script failed: {e}"))
    }

    /// [`Browser::try_js`], failing the test on an error.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.try_js(script, args)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{script}"))
    }

    /// The current path and query, e.g. `/o/acme?q=x`.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the app has rendered page `name` (`<main data-page>`)
    /// and is not busy.
    #[track_caller]
    pub fn page<'a>(&'a self, name: &'a str) -> impl Future<Output = ()> + 'a {
        let what = format!("page {name:?} (main[data-page], body not aria-busy)");
        let caller = std::panic::Location::caller();
        async move {
            let what = format!("{what} at {caller}");
            poll(&what, || async {
                let seen = self
                    .try_js(
                        "const m = document.querySelector('main#main');
                         return [location.pathname + location.search, m ? m.getAttribute('data-page') : null,
                                 document.body ? document.body.getAttribute('aria-busy') : null,
                                 m ? m.textContent.replace(/\\s+/g, ' ').trim().slice(0, 200) : null];",
                        vec![],
                    )
                    .await?;
                if seen[1] == json!(name) && seen[2] != json!("true") {
                    Ok(())
                } else {
                    Err(format!(
                        "at {}, data-page = {}, aria-busy = {}, main text: {}",
                        seen[0], seen[1], seen[2], seen[3]
                    ))
                }
            })
            .await;
        }
    }

    /// Waits until the body is not `aria-busy="true"`.
    pub async fn idle(&self) {
        poll("body not aria-busy", || async {
            let busy = self
                .try_js("return document.body.getAttribute('aria-busy');", vec![])
                .await?;
            if busy == json!("true") {
                Err("still busy".into())
            } else {
                Ok(())
            }
        })
        .await;
    }

    /// Waits until the path (and query) is `expected`.
    pub async fn at(&self, expected: &str) {
        poll(&format!("the path {expected}"), || async {
            let path = self.path().await;
            if path == expected {
                Ok(())
            } else {
                Err(format!("at {path}"))
            }
        })
        .await;
    }

    /// The visible form control labelled `label` inside `scope`, now.
    async fn try_field(&self, scope: Option<&Element>, label: &str) -> Result<Element, String> {
        let found = self
            .try_js(FIND_CONTROL, vec![json!(label), arg(scope)])
            .await?;
        element(&self.client, &found)
            .ok_or_else(|| format!("no visible control labelled {label:?}"))
    }

    /// The visible form control labelled `label` (waits for it).
    pub async fn field(&self, label: &str) -> Element {
        self.field_in(None, label).await
    }

    /// The visible form control labelled `label` inside `scope`.
    pub async fn field_in(&self, scope: Option<&Element>, label: &str) -> Element {
        poll(&format!("a visible control labelled {label:?}"), || {
            self.try_field(scope, label)
        })
        .await
    }

    /// Types `value` into the control labelled `label` (after clearing it).
    pub async fn fill(&self, label: &str, value: &str) {
        self.fill_in(None, label, value).await;
    }

    /// [`Browser::fill`] inside `scope`. A control replaced meanwhile (a
    /// re-render) is found again.
    pub async fn fill_in(&self, scope: Option<&Element>, label: &str, value: &str) {
        poll(&format!("typing into {label:?}"), || async {
            let field = self.try_field(scope, label).await?;
            field.clear().await.map_err(|e| e.to_string())?;
            field.send_keys(value).await.map_err(|e| e.to_string())
        })
        .await;
    }

    /// The value of the control labelled `label`.
    pub async fn value(&self, label: &str) -> String {
        self.value_in(None, label).await
    }

    /// The value of the control labelled `label` inside `scope`.
    pub async fn value_in(&self, scope: Option<&Element>, label: &str) -> String {
        poll(&format!("the value of {label:?}"), || async {
            let field = self.try_field(scope, label).await?;
            let value = field.prop("value").await.map_err(|e| e.to_string())?;
            Ok(value.unwrap_or_default())
        })
        .await
    }

    /// Chooses the option with value `value` in the select labelled `label`.
    pub async fn select(&self, label: &str, value: &str) {
        poll(&format!("choosing {value:?} in {label:?}"), || async {
            let field = self.try_field(None, label).await?;
            field
                .select_by_value(value)
                .await
                .map_err(|e| e.to_string())
        })
        .await;
    }

    /// The elements matching `selector` named `name`, now.
    async fn try_named(
        &self,
        selector: &str,
        name: &str,
        scope: Option<&Element>,
        visible_only: bool,
    ) -> Result<Vec<Element>, String> {
        let found = self
            .try_js(
                FIND_NAMED,
                vec![
                    json!(selector),
                    json!(name),
                    arg(scope),
                    json!(visible_only),
                ],
            )
            .await?;
        Ok(found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| element(&self.client, v))
            .collect())
    }

    /// The first visible element matching `selector` named `name`, now.
    async fn try_first(
        &self,
        selector: &str,
        name: &str,
        scope: Option<&Element>,
    ) -> Result<Element, String> {
        self.try_named(selector, name, scope, true)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| format!("no visible {selector} named {name:?}"))
    }

    /// The visible button named `name` (waits for it).
    pub async fn button(&self, name: &str) -> Element {
        self.button_in(None, name).await
    }

    /// The visible button named `name` inside `scope`.
    pub async fn button_in(&self, scope: Option<&Element>, name: &str) -> Element {
        poll(&format!("a visible button {name:?}"), || {
            self.try_first(BUTTONS, name, scope)
        })
        .await
    }

    /// How many buttons named `name` the DOM has (visible or not).
    pub async fn count_buttons(&self, name: &str) -> usize {
        let found = self.try_named(BUTTONS, name, None, false).await;
        found.unwrap_or_else(|e| panic!("{e}")).len()
    }

    /// How many visible buttons named `name` there are.
    pub async fn count_visible_buttons(&self, name: &str) -> usize {
        let found = self.try_named(BUTTONS, name, None, true).await;
        found.unwrap_or_else(|e| panic!("{e}")).len()
    }

    /// How many visible buttons named `name` there are inside `scope`.
    pub async fn count_visible_buttons_in(&self, scope: &Element, name: &str) -> usize {
        let found = self.try_named(BUTTONS, name, Some(scope), true).await;
        found.unwrap_or_else(|e| panic!("{e}")).len()
    }

    /// Clicks the visible button named `name`.
    pub async fn click_button(&self, name: &str) {
        self.click_button_in(None, name).await;
    }

    /// Clicks the visible button named `name` inside `scope` (found again
    /// if it is replaced or covered meanwhile).
    pub async fn click_button_in(&self, scope: Option<&Element>, name: &str) {
        poll(&format!("a click on the button {name:?}"), || async {
            let button = self.try_first(BUTTONS, name, scope).await?;
            button.click().await.map_err(|e| e.to_string())
        })
        .await;
    }

    /// The visible link whose text is `name` (waits for it).
    pub async fn link(&self, name: &str) -> Element {
        poll(&format!("a visible link {name:?}"), || {
            self.try_first("a[href]", name, None)
        })
        .await
    }

    /// Clicks the visible link whose text is `name`.
    pub async fn click_link(&self, name: &str) {
        poll(&format!("a click on the link {name:?}"), || async {
            let link = self.try_first("a[href]", name, None).await?;
            link.click().await.map_err(|e| e.to_string())
        })
        .await;
    }

    /// The first element matching `css` (waits for it).
    pub async fn find(&self, css: &str) -> Element {
        poll(&format!("an element {css}"), || async {
            self.client
                .find(Locator::Css(css))
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// The text of the page's `<h1>`.
    pub async fn heading_is(&self, expected: &str) {
        poll(&format!("<h1> {expected:?}"), || async {
            let h1 = self
                .try_js(
                    "const h = document.querySelector('h1'); return h && h.textContent.trim();",
                    vec![],
                )
                .await?;
            if h1 == json!(expected) {
                Ok(())
            } else {
                Err(format!("<h1> is {h1}"))
            }
        })
        .await;
    }

    /// The list (`section.list`) named `name`, now.
    async fn try_list(&self, name: &str) -> Result<Element, String> {
        let found = self
            .try_js(
                "return [...document.querySelectorAll('section.list')]
                   .find(s => s.getAttribute('aria-label') === arguments[0]) || null;",
                vec![json!(name)],
            )
            .await?;
        element(&self.client, &found).ok_or_else(|| format!("no list {name:?}"))
    }

    /// The list (`section.list`) named `name` (waits for it).
    pub async fn list(&self, name: &str) -> Element {
        poll(&format!("the list {name:?}"), || self.try_list(name)).await
    }

    /// The card (`li.card`) whose title is `title`, now.
    async fn try_card(&self, title: &str) -> Result<Element, String> {
        let found = self
            .try_js(
                "return [...document.querySelectorAll('li.card')]
                   .find(c => c.querySelector('.card-title')?.textContent === arguments[0]) || null;",
                vec![json!(title)],
            )
            .await?;
        element(&self.client, &found).ok_or_else(|| format!("no card {title:?}"))
    }

    /// The card (`li.card`) whose title is `title` (waits for it).
    pub async fn card(&self, title: &str) -> Element {
        poll(&format!("the card {title:?}"), || self.try_card(title)).await
    }

    /// Clicks the card `title` (found again if it is re-rendered).
    pub async fn click_card(&self, title: &str) {
        poll(&format!("a click on the card {title:?}"), || async {
            let card = self.try_card(title).await?;
            card.click().await.map_err(|e| e.to_string())
        })
        .await;
    }

    /// Adds a card through the `Card title` field and `Add card` button of
    /// the list `list`. If the list is re-rendered before the click, it
    /// starts over in the new one (the click then fails on the old button,
    /// so a half-filled form is never submitted).
    pub async fn add_card(&self, list: &str, title: &str) {
        poll(
            &format!("adding the card {title:?} to {list:?}"),
            || async {
                let section = self.try_list(list).await?;
                let field = self.try_field(Some(&section), "Card title").await?;
                field.clear().await.map_err(|e| e.to_string())?;
                field.send_keys(title).await.map_err(|e| e.to_string())?;
                let button = self.try_first(BUTTONS, "Add card", Some(&section)).await?;
                button.click().await.map_err(|e| e.to_string())
            },
        )
        .await;
        self.card(title).await;
    }

    /// Adds a list through `List name` and `Add list`.
    pub async fn add_list(&self, name: &str) {
        self.fill("List name", name).await;
        self.click_button("Add list").await;
        self.list(name).await;
    }

    /// The board as the page shows it (the cards that are rendered).
    pub async fn board_state(&self) -> BoardState {
        poll("the board's lists and cards", || async {
            let state = self
                .try_js(
                    "return [...document.querySelectorAll('section.list')].map(s => [
                       s.getAttribute('aria-label'),
                       [...s.querySelectorAll('ul.cards > li.card')]
                         .filter(c => c.getClientRects().length)
                         .map(c => c.querySelector('.card-title')?.textContent ?? null)]);",
                    vec![],
                )
                .await?;
            serde_json::from_value(state.clone()).map_err(|e| format!("{e}: {state}"))
        })
        .await
    }

    /// Waits until the page shows `expected`.
    pub async fn board_is(&self, expected: &BoardState) {
        poll(&format!("the board {expected:?}"), || async {
            let seen = self.board_state().await;
            if &seen == expected {
                Ok(())
            } else {
                Err(format!("it shows {seen:?}"))
            }
        })
        .await;
    }

    /// Drags the card `title` with pointer actions and drops it at `to`.
    /// If the page re-renders before the pointer goes down (a stale
    /// element), the drag starts over; the caller checks where the card
    /// went.
    pub async fn drag(&self, title: &str, to: DropAt<'_>) {
        self.idle().await;
        poll(&format!("dragging {title:?} to {to:?}"), || async {
            let result = self.try_drag(title, to).await;
            let _ = self.client.release_actions().await;
            result
        })
        .await;
    }

    async fn try_drag(&self, title: &str, to: DropAt<'_>) -> Result<(), String> {
        let card = self.try_card(title).await?;
        let (target, dy) = match to {
            DropAt::Before(other) | DropAt::After(other) => {
                let target = self.try_card(other).await?;
                let (_, _, _, h) = target.rectangle().await.map_err(|e| e.to_string())?;
                let dy = if matches!(to, DropAt::Before(_)) {
                    -h / 4.0
                } else {
                    h / 4.0
                };
                (target, dy)
            }
            DropAt::EndOf(list) => {
                let section = self.try_list(list).await?;
                // The card container if it has room, else the list itself.
                let cards = section
                    .find(Locator::Css("ul.cards"))
                    .await
                    .map_err(|e| format!("ul.cards in the list {list:?}: {e}"))?;
                let (_, _, _, h) = cards.rectangle().await.map_err(|e| e.to_string())?;
                if h >= 16.0 {
                    (cards, h / 4.0)
                } else {
                    (section, 0.0)
                }
            }
        };
        self.pointer_drag(card, target, (6.0, 6.0), (0.0, dy)).await
    }

    /// Drags the list `name` by its handle (`Move list <name>`) with
    /// pointer actions onto the near (`Before`) or far (`After`) side of the
    /// list `other`, and drops it there. Like [`Browser::drag`], a stale
    /// element starts the drag over; the caller checks where the list went.
    pub async fn drag_list(&self, name: &str, to: DropAt<'_>) {
        self.idle().await;
        poll(&format!("dragging the list {name:?} to {to:?}"), || async {
            let result = self.try_drag_list(name, to).await;
            let _ = self.client.release_actions().await;
            result
        })
        .await;
    }

    async fn try_drag_list(&self, name: &str, to: DropAt<'_>) -> Result<(), String> {
        let handle = self
            .try_first(BUTTONS, &format!("Move list {name}"), None)
            .await?;
        let (other, before) = match to {
            DropAt::Before(other) => (other, true),
            DropAt::After(other) => (other, false),
            DropAt::EndOf(_) => panic!("a list is dropped before or after another list"),
        };
        let target = self.try_list(other).await?;
        let (_, _, w, _) = target.rectangle().await.map_err(|e| e.to_string())?;
        let dx = if before { -w / 4.0 } else { w / 4.0 };
        self.pointer_drag(handle, target, (8.0, 0.0), (dx, 0.0))
            .await
    }

    /// Presses on `grab`, moves twice by `nudge` (past the page's 4 px drag
    /// threshold), glides to `at` from `target`'s centre, moves there once
    /// more (a placeholder may have shifted the target meanwhile), pauses and
    /// releases.
    async fn pointer_drag(
        &self,
        grab: Element,
        target: Element,
        nudge: (f64, f64),
        at: (f64, f64),
    ) -> Result<(), String> {
        let step = Some(Duration::from_millis(20));
        let mouse = MouseActions::new("mouse".to_owned())
            .then(PointerAction::MoveToElement {
                element: grab,
                duration: None,
                x: 0.0,
                y: 0.0,
            })
            .then(PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            })
            .then(PointerAction::MoveBy {
                duration: step,
                x: nudge.0,
                y: nudge.1,
            })
            .then(PointerAction::MoveBy {
                duration: step,
                x: nudge.0,
                y: nudge.1,
            })
            .then(PointerAction::MoveToElement {
                element: target.clone(),
                duration: Some(Duration::from_millis(150)),
                x: at.0,
                y: at.1,
            })
            .then(PointerAction::MoveToElement {
                element: target,
                duration: step,
                x: at.0 + 1.0,
                y: at.1,
            })
            .pause(Duration::from_millis(50))
            .then(PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            });
        self.client
            .perform_actions(mouse)
            .await
            .map_err(|e| e.to_string())
    }

    /// Sends keys to the card `title` (focusing it; found again if it is
    /// re-rendered first).
    pub async fn keys_to_card(&self, title: &str, keys: &str) {
        poll(&format!("keys to the card {title:?}"), || async {
            let card = self.try_card(title).await?;
            card.send_keys(keys).await.map_err(|e| e.to_string())
        })
        .await;
    }

    /// The text of the open alert (`alert()`), if there is one.
    pub async fn native_alert(&self) -> Option<String> {
        self.client.get_alert_text().await.ok()
    }

    /// Waits for a visible `role="alert"` element containing all of
    /// `needles`, inside `scope` (or anywhere), and returns its text.
    pub async fn alert_with(&self, scope: Option<&Element>, needles: &[&str]) -> String {
        poll(&format!("a role=alert with {needles:?}"), || async {
            let texts = self
                .try_js(
                    "const root = arguments[0] || document;
                     return [...root.querySelectorAll('[role=alert]')]
                       .filter(e => e.offsetWidth || e.offsetHeight || e.getClientRects().length)
                       .map(e => e.textContent.replace(/\\s+/g, ' ').trim());",
                    vec![arg(scope)],
                )
                .await?;
            let texts: Vec<String> = serde_json::from_value(texts).unwrap_or_default();
            texts
                .iter()
                .find(|t| needles.iter().all(|n| t.contains(n)))
                .cloned()
                .ok_or_else(|| format!("alerts: {texts:?}"))
        })
        .await
    }
}
