//! The real binary: start-up, readiness over TCP, graceful exit on SIGTERM,
//! `--help` of every command, `migrate`, and refusal of invalid settings.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_orgboard");

/// The binary with no `ORGBOARD_*` variable inherited from the test's
/// environment, so only what a test sets is in force.
fn orgboard() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORGBOARD_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("ORGBOARD_LOG", "info");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A free local port (bound, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One HTTP/1.1 request over a raw socket: (status, whole response text).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let resp = String::from_utf8_lossy(&buf).into_owned();
    let status = resp
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {resp:?}")))?;
    Ok((status, resp))
}

/// Signs up over a raw socket; returns (access token, personal org id).
fn signup_raw(addr: SocketAddr) -> (String, String) {
    let body = format!(
        r#"{{"email":"proc-{}@example.com","password":"correct horse battery","name":"P"}}"#,
        free_port()
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /api/v1/auth/signup HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(buf.split_once("\r\n\r\n").unwrap().1).unwrap();
    let token = json["access_token"].as_str().unwrap().to_owned();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/v1/orgs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(buf.split_once("\r\n\r\n").unwrap().1).unwrap();
    (token, json["items"][0]["id"].as_str().unwrap().to_owned())
}

/// Kills the child if a test fails before it exits.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Starts the binary, checks it over the socket, sends `signal` while
/// clients hold idle connections open, and expects exit status 0 within 10 s.
fn serve_then_signal(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(&log_path).unwrap();
    let started = Instant::now();
    let child = orgboard()
        .env("ORGBOARD_DATA_DIR", &data)
        .env("ORGBOARD_ADDR", addr.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut running = Running(Some(child));
    let pid = running.0.as_ref().unwrap().id();

    // Ready within 20 s (in practice well under a second).
    let deadline = started + Duration::from_secs(20);
    let ready = loop {
        if let Some(status) = running.0.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "the server exited early with {status}: {}",
                read_log(&log_path)
            );
        }
        if let Ok((200, resp)) = http_get(addr, "/readyz") {
            break resp;
        }
        assert!(
            Instant::now() < deadline,
            "not ready within 20 s: {}",
            read_log(&log_path)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(ready.contains(r#"{"status":"ok"}"#), "{ready}");
    assert!(
        ready.to_lowercase().contains("x-request-id:"),
        "request id over the wire: {ready}"
    );

    // Over the real socket too, errors are problem+json.
    let (status, resp) = http_get(addr, "/no/such/route").unwrap();
    assert_eq!(status, 404, "{resp}");
    assert!(
        resp.to_lowercase()
            .contains("content-type: application/problem+json"),
        "{resp}"
    );
    let (status, _) = http_get(addr, "/healthz").unwrap();
    assert_eq!(status, 200);

    // The embedded default: the SQLite file and the secret in the data dir.
    assert!(data.join("orgboard.db").exists(), "orgboard.db created");
    assert!(data.join("secret.key").exists(), "secret.key created");

    // One start-up line with the address, backend and version.
    let startup = read_log(&log_path);
    let line = startup
        .lines()
        .find(|l| l.contains(&addr.to_string()))
        .unwrap_or_else(|| panic!("no start-up line naming {addr}: {startup}"));
    assert!(line.contains("sqlite"), "backend named: {line}");
    assert!(
        line.contains(env!("CARGO_PKG_VERSION")),
        "version named: {line}"
    );

    // Clients that hold connections open must not keep the server alive:
    // one kept alive after a request, one that never sent anything.
    let mut kept_alive = TcpStream::connect(addr).unwrap();
    write!(kept_alive, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    kept_alive.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let silent = TcpStream::connect(addr).unwrap();
    // Nor may an open live-event stream (it never ends by itself).
    let (token, org) = signup_raw(addr);
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /api/v1/orgs/{org}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    let kill = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let status =
        wait_timeout(running.0.as_mut().unwrap(), Duration::from_secs(10)).unwrap_or_else(|| {
            panic!(
                "still running 10 s after SIG{signal}: {}",
                read_log(&log_path)
            )
        });
    running.0 = None;
    drop((kept_alive, silent, stream));
    assert!(
        status.success(),
        "exit status after SIG{signal}: {status}; log: {}",
        read_log(&log_path)
    );
    assert_eq!(status.code(), Some(0));
    // The port is released.
    assert!(
        http_get(addr, "/healthz").is_err(),
        "still answering after exit"
    );
}

#[test]
fn serves_until_sigterm_then_exits_zero() {
    serve_then_signal("TERM");
}

#[test]
fn serves_until_sigint_then_exits_zero() {
    serve_then_signal("INT");
}

#[test]
fn help_of_every_command_exits_zero_and_names_the_database_setting() {
    for args in [
        &["--help"][..],
        &["migrate", "--help"][..],
        &["serve", "--help"][..],
        &["admin", "--help"][..],
    ] {
        let out = run(orgboard().args(args));
        let all = text(&out);
        assert!(out.status.success(), "orgboard {args:?}: {all}");
        assert!(
            all.contains("ORGBOARD_DATABASE_URL"),
            "orgboard {args:?} mentions ORGBOARD_DATABASE_URL: {all}"
        );
    }
    let out = run(orgboard().arg("serve").arg("--help"));
    let all = text(&out);
    for var in [
        "ORGBOARD_ADDR",
        "ORGBOARD_DATA_DIR",
        "ORGBOARD_REDIS_URL",
        "ORGBOARD_SMTP_URL",
        "ORGBOARD_LOG",
    ] {
        assert!(all.contains(var), "serve --help mentions {var}: {all}");
    }
    let out = run(orgboard().arg("--version"));
    assert!(out.status.success());
    assert!(text(&out).contains(env!("CARGO_PKG_VERSION")));
    let out = run(orgboard().arg("no-such-command"));
    assert!(!out.status.success(), "unknown command refused");
}

/// No `--help` prints a secret given in the environment: the database URL
/// (it may carry a password), the signing secret, the SMTP and Redis URLs.
#[test]
fn help_never_prints_a_secret() {
    for args in [
        &["--help"][..],
        &["migrate", "--help"][..],
        &["serve", "--help"][..],
        &["admin", "--help"][..],
    ] {
        let out = run(orgboard()
            .args(args)
            .env(
                "ORGBOARD_DATABASE_URL",
                "postgres://ob:hunter2-db@db.example/ob",
            )
            .env(
                "ORGBOARD_SECRET",
                "hunter2-secret-hunter2-secret-hunter2-secret",
            )
            .env(
                "ORGBOARD_SMTP_URL",
                "smtp://mail:hunter2-smtp@mail.example:587",
            )
            .env(
                "ORGBOARD_REDIS_URL",
                "redis://:hunter2-redis@cache.example:6379",
            ));
        let all = text(&out);
        assert!(out.status.success(), "orgboard {args:?}: {all}");
        assert!(
            !all.contains("hunter2"),
            "orgboard {args:?} printed a secret: {all}"
        );
    }
}

#[test]
fn migrate_creates_the_database_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let out = run(orgboard().arg("migrate").env("ORGBOARD_DATA_DIR", &data));
    assert!(out.status.success(), "migrate: {}", text(&out));
    assert!(data.join("orgboard.db").is_file(), "orgboard.db created");
    // Running it again is a no-op that still succeeds.
    let out = run(orgboard().arg("migrate").env("ORGBOARD_DATA_DIR", &data));
    assert!(out.status.success(), "migrate again: {}", text(&out));
}

#[test]
fn invalid_setting_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&[][..], &["serve"][..]] {
        let mut cmd = orgboard();
        cmd.args(args)
            .env("ORGBOARD_DATA_DIR", dir.path())
            .env("ORGBOARD_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("ORGBOARD_ACCESS_TOKEN_TTL_SECS", "5000");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // It must exit by itself, not start serving.
        let status = wait_timeout(&mut child, Duration::from_secs(10));
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("orgboard {args:?} kept running with an invalid setting");
        }
        let out = child.wait_with_output().unwrap();
        let all = text(&out);
        assert!(!out.status.success(), "orgboard {args:?}: {all}");
        assert!(
            all.contains("ORGBOARD_ACCESS_TOKEN_TTL_SECS"),
            "the message names the variable: {all}"
        );
    }
    // A value that is not even a number is refused too, naming the setting.
    let out = run(orgboard()
        .env("ORGBOARD_DATA_DIR", dir.path())
        .env("ORGBOARD_ACCESS_TOKEN_TTL_SECS", "soon"));
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("ACCESS_TOKEN_TTL") || all.contains("access-token-ttl"),
        "{all}"
    );
}

/// A server started through `sh -c "ulimit -n {nofile}; exec orgboard"`
/// with extra settings; answers once ready.
struct Server {
    running: Running,
    addr: SocketAddr,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn start_server(nofile: u32, settings: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = std::fs::File::create(&log_path).unwrap();
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\""))
        .arg(BIN)
        .env("ORGBOARD_LOG", "info");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ORGBOARD_") && key != "ORGBOARD_LOG" {
            sh.env_remove(key);
        }
    }
    sh.env("ORGBOARD_DATA_DIR", dir.path().join("data"))
        .env("ORGBOARD_ADDR", addr.to_string())
        .env_remove("MALLOC_ARENA_MAX");
    for (k, v) in settings {
        sh.env(k, v);
    }
    let child = sh
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut running = Running(Some(child));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.0.as_mut().unwrap().try_wait().unwrap() {
            panic!(
                "the server exited early with {status}: {}",
                read_log(&log_path)
            );
        }
        if let Ok((200, _)) = http_get(addr, "/readyz") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready: {}",
            read_log(&log_path)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        running,
        addr,
        log: log_path,
        _dir: dir,
    }
}

/// The server starts itself over with `MALLOC_ARENA_MAX=2` when the
/// variable is unset (same pid, it serves), and keeps a value it was given.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn bounds_malloc_arenas_unless_told_otherwise() {
    for (given, expect) in [(None, "2"), (Some("4"), "4")] {
        let settings: Vec<(&str, &str)> = given
            .map(|v| vec![("MALLOC_ARENA_MAX", v)])
            .unwrap_or_default();
        let server = start_server(1024, &settings);
        let pid = server.running.0.as_ref().unwrap().id();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let value = environ
            .split(|b| *b == 0)
            .filter_map(|kv| kv.strip_prefix(b"MALLOC_ARENA_MAX="))
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect::<Vec<_>>();
        assert_eq!(value, [expect], "given {given:?}");
        assert_eq!(http_get(server.addr, "/healthz").unwrap().0, 200);
    }
}

/// Whether the server closes `s` (EOF or reset) before `limit` passes.
fn closed_by_server(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// 300 connections that never send a request, and 50 that send half their
/// headers, against a server whose open-files limit is 200 and whose
/// timeouts are an hour: it caps what it holds, sheds the connections idle
/// the longest, and `/healthz` still answers (before, accept failed with
/// "Too many open files" and health checks went unanswered).
#[test]
fn idle_connections_past_the_cap_do_not_lock_out_health_checks() {
    let server = start_server(
        200,
        &[
            ("ORGBOARD_HEADER_READ_TIMEOUT_SECS", "3600"),
            ("ORGBOARD_IDLE_TIMEOUT_SECS", "3600"),
        ],
    );
    let startup = read_log(&server.log);
    let line = startup
        .lines()
        .find(|l| l.contains("connection limits"))
        .unwrap_or_else(|| panic!("no connection limits line: {startup}"));
    // 200 descriptors, less 64 in reserve and the 16 pooled connections.
    assert!(line.contains("max_connections=120"), "{line}");

    let mut held = Vec::new();
    for i in 0..350 {
        let mut s = TcpStream::connect_timeout(&server.addr, Duration::from_secs(5)).unwrap();
        if i >= 300 {
            let _ = write!(s, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
        }
        held.push(s);
    }
    // The health check gets through (bounded so a regression fails, not hangs).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http_get(server.addr, "/healthz") {
            Ok((200, _)) => break,
            other => assert!(
                Instant::now() < deadline,
                "/healthz never answered: {other:?}; log: {}",
                read_log(&server.log)
            ),
        }
    }
    let (status, metrics) = http_get(server.addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let shed = metrics
        .lines()
        .find(|l| l.starts_with("orgboard_http_connections_closed_total{reason=\"shed\"}"))
        .unwrap_or_else(|| panic!("no shed counter: {metrics}"));
    let n: f64 = shed.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 200.0, "{shed}");
    let open = metrics
        .lines()
        .find(|l| l.starts_with("orgboard_http_connections_open "))
        .unwrap_or_else(|| panic!("no open gauge: {metrics}"));
    let open: f64 = open.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(open <= 120.0, "more connections open than the cap: {open}");
    assert!(!read_log(&server.log).contains("Too many open files"));
    drop(held);
    drop(server.running);
}

/// Half-sent headers are cut at the header-read timeout, a connection that
/// says nothing and one kept alive after an answer at the idle timeout;
/// a request in flight (a live event stream) is not cut by either.
#[test]
fn slow_headers_and_idle_connections_are_closed() {
    let server = start_server(
        1024,
        &[
            ("ORGBOARD_HEADER_READ_TIMEOUT_SECS", "1"),
            ("ORGBOARD_IDLE_TIMEOUT_SECS", "2"),
        ],
    );
    let (token, org) = signup_raw(server.addr);
    let mut slow = TcpStream::connect(server.addr).unwrap();
    write!(slow, "GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut kept = TcpStream::connect(server.addr).unwrap();
    write!(kept, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    kept.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    write!(
        stream,
        "GET /api/v1/orgs/{org}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    // Generous bounds: the point is that they close, not how fast.
    assert!(
        closed_by_server(&mut slow, Duration::from_secs(15)),
        "slow headers kept open"
    );
    assert!(
        closed_by_server(&mut silent, Duration::from_secs(15)),
        "silent connection kept open"
    );
    assert!(
        closed_by_server(&mut kept, Duration::from_secs(15)),
        "idle keep-alive kept open"
    );
    // The stream outlived both timeouts: still open (no end of stream).
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => panic!("the live stream was closed"),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("the live stream failed: {e}"),
        }
    }
    drop(server.running);
}

/// `ORGBOARD_LOG_FORMAT=json`: one JSON object per line; the start-up line
/// says where to go, the backend, the version with its commit and the data
/// directory; every request is one `info` line with the route template,
/// status, latency, request id and (once resolved) the organization, and
/// never the query string (where event streams carry their token).
#[test]
fn json_logs_say_where_to_go_and_log_each_request_without_its_query() {
    let server = start_server(1024, &[("ORGBOARD_LOG_FORMAT", "json")]);
    let (token, org) = signup_raw(server.addr);
    let secret_query = "access_token=do-not-log-me";
    let (status, _) = http_get(
        server.addr,
        &format!("/api/v1/orgs/{org}/boards?{secret_query}"),
    )
    .unwrap();
    assert_eq!(status, 401, "a query token is not a bearer token here");
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /api/v1/orgs/{org}/boards?limit=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");
    // The log line comes after the answer (request lines are written in
    // batches, up to ~20 ms late); wait for both lines of the boards route,
    // not for any three request lines (sign-up's own requests came first).
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = read_log(&server.log);
        if log
            .matches("\"route\":\"/api/v1/orgs/{org}/boards\"")
            .count()
            >= 2
            || Instant::now() > deadline
        {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!log.contains("do-not-log-me"), "{log}");
    assert!(!log.contains(&token), "{log}");
    assert!(!log.contains('\u{1b}'), "no colour codes: {log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let start = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("orgboard listening"))
        })
        .unwrap_or_else(|| panic!("no start-up line: {log}"));
    assert_eq!(
        start["fields"]["message"],
        format!("orgboard listening: open http://{}/", server.addr)
    );
    assert_eq!(start["fields"]["backend"], "sqlite");
    assert!(
        start["fields"]["data_dir"]
            .as_str()
            .unwrap()
            .ends_with("data")
    );
    let version = start["fields"]["version"].as_str().unwrap();
    assert!(version.starts_with(env!("CARGO_PKG_VERSION")) && version.contains('('));
    let requests: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["target"] == "orgboard::request" && l["level"] == "INFO")
        .map(|l| &l["fields"])
        .collect();
    let boards: Vec<_> = requests
        .iter()
        .filter(|f| f["route"] == "/api/v1/orgs/{org}/boards")
        .collect();
    assert_eq!(boards.len(), 2, "{requests:?}");
    assert_eq!(boards[0]["status"], 401);
    assert_eq!(boards[0]["org_id"], "-", "not resolved without a token");
    assert_eq!(boards[1]["status"], 200);
    assert_eq!(boards[1]["org_id"], org.as_str());
    assert_eq!(boards[1]["method"], "GET");
    assert!(boards[1]["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(boards[1]["request_id"].as_str().unwrap().len(), 36);
    // Health checks are not logged at info.
    assert!(requests.iter().all(|f| f["route"] != "/readyz"));
}

/// `--version` names the commit it was built from.
#[test]
fn version_names_the_commit() {
    let out = run(orgboard().arg("--version"));
    assert!(out.status.success());
    let text = text(&out);
    let expected = format!("orgboard {} (", env!("CARGO_PKG_VERSION"));
    assert!(
        text.starts_with(&expected) && text.trim_end().ends_with(')'),
        "{text}"
    );
}

/// One HTTP/1.1 request with a bearer token and a JSON body over a raw
/// socket: (status, body).
fn post_json(addr: SocketAddr, path: &str, token: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf[9..12].parse().unwrap();
    let json = serde_json::from_str(buf.split_once("\r\n\r\n").unwrap().1).unwrap_or_default();
    (status, json)
}

/// `orgboard backup` while the server runs and writes: every task whose
/// creation was acknowledged before the backup started is in the copy, the
/// copy restores into an empty data directory (and a server starts on it),
/// and restore refuses the live data directory, a damaged file and an
/// existing backup name, changing nothing.
#[test]
fn backup_while_writing_keeps_every_acknowledged_write_and_restores() {
    let server = start_server(1024, &[]);
    let data = server.log.parent().unwrap().join("data");
    let (token, org) = signup_raw(server.addr);
    let (s, board) = post_json(
        server.addr,
        &format!("/api/v1/orgs/{org}/boards"),
        &token,
        r#"{"name":"B"}"#,
    );
    assert_eq!(s, 201);
    let (s, list) = post_json(
        server.addr,
        &format!(
            "/api/v1/orgs/{org}/boards/{}/lists",
            board["id"].as_str().unwrap()
        ),
        &token,
        r#"{"name":"L"}"#,
    );
    assert_eq!(s, 201);
    let path = format!(
        "/api/v1/orgs/{org}/lists/{}/tasks",
        list["id"].as_str().unwrap()
    );
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop, token, addr) = (
            acknowledged.clone(),
            stop.clone(),
            token.clone(),
            server.addr,
        );
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let title = format!("task {n}");
                let (s, _) = post_json(addr, &path, &token, &format!(r#"{{"title":"{title}"}}"#));
                assert_eq!(s, 201);
                acknowledged.lock().unwrap().push(title);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    assert!(
        !before.is_empty(),
        "writes were acknowledged before the backup"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    let out = run(orgboard()
        .env("ORGBOARD_DATA_DIR", &data)
        .arg("backup")
        .arg(&file));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).starts_with("backed up "), "{}", text(&out));
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let after = acknowledged.lock().unwrap().len();
    assert!(after > before.len(), "writes went on during the backup");

    // Every acknowledged write from before the backup is in it.
    let conn = rusqlite::Connection::open(&file).unwrap();
    let titles: std::collections::HashSet<String> = conn
        .prepare("SELECT title FROM tasks")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(conn);
    for t in &before {
        assert!(
            titles.contains(t),
            "{t} acknowledged before the backup, missing from it"
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the backup holds password hashes: private");
    }

    // The same name again, the live directory, a damaged file: refused.
    let again = run(orgboard()
        .env("ORGBOARD_DATA_DIR", &data)
        .arg("backup")
        .arg(&file));
    assert!(
        !again.status.success() && text(&again).contains("already exists"),
        "{}",
        text(&again)
    );
    // The live database: its file and what it holds. (Its length is no
    // measure: the running server checkpoints its WAL into it any time.)
    let live_tasks = || -> i64 {
        let conn = rusqlite::Connection::open(data.join("orgboard.db")).unwrap();
        conn.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))
            .unwrap()
    };
    #[cfg(unix)]
    let inode = || {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(data.join("orgboard.db")).unwrap().ino()
    };
    #[cfg(unix)]
    let live_inode = inode();
    let tasks_before = live_tasks();
    let onto_live = run(orgboard()
        .env("ORGBOARD_DATA_DIR", &data)
        .arg("restore")
        .arg(&file));
    assert!(
        !onto_live.status.success() && text(&onto_live).contains("not empty"),
        "{}",
        text(&onto_live)
    );
    #[cfg(unix)]
    assert_eq!(
        inode(),
        live_inode,
        "the live database file was not replaced"
    );
    assert_eq!(live_tasks(), tasks_before, "the live data is unchanged");
    let damaged = dir.path().join("damaged.db");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 4096].fill(0xA5);
    std::fs::write(&damaged, &bytes).unwrap();
    let fresh = dir.path().join("fresh");
    let bad = run(orgboard()
        .env("ORGBOARD_DATA_DIR", &fresh)
        .arg("restore")
        .arg(&damaged));
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(
        !fresh.join("orgboard.db").exists(),
        "nothing restored from a damaged file"
    );

    // Into an empty directory: restored, and a server runs on it.
    let restored = run(orgboard()
        .env("ORGBOARD_DATA_DIR", &fresh)
        .arg("restore")
        .arg(&file));
    assert!(restored.status.success(), "{}", text(&restored));
    drop(server);
    let again = start_server(1024, &[("ORGBOARD_DATA_DIR", fresh.to_str().unwrap())]);
    let (status, body) = http_get(again.addr, "/readyz").unwrap();
    assert_eq!(status, 200, "{body}");
}

/// A TOML config file (`--config` or `ORGBOARD_CONFIG`) sets settings by
/// their names without the prefix; the environment wins over it.
#[test]
fn config_file_sets_settings_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file");
    let file = dir.path().join("orgboard.toml");
    std::fs::write(
        &file,
        format!(
            "# settings\ndata_dir = {:?}\ndb_max_connections = 4\nworkers = false\n",
            from_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = run(orgboard().arg("migrate").arg("--config").arg(&file));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        from_file.join("orgboard.db").is_file(),
        "data_dir from the file"
    );
    // ORGBOARD_CONFIG names the file too; ORGBOARD_DATA_DIR wins over it.
    let from_env = dir.path().join("from-env");
    let out = run(orgboard()
        .env("ORGBOARD_CONFIG", &file)
        .env("ORGBOARD_DATA_DIR", &from_env)
        .arg("migrate"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        from_env.join("orgboard.db").is_file(),
        "the environment wins"
    );
}

/// Every problem of a config file is named on its own line, the exit
/// status is 2, and nothing starts or is created.
#[test]
fn config_file_problems_are_named_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cases: [(&str, &[&str]); 5] = [
        (
            "databse_url = \"sqlite://x.db\"\nadr = \"x\"\n",
            &[
                "unknown setting `databse_url`",
                "did you mean `database_url`?",
                "unknown setting `adr`",
                "did you mean `addr`?",
            ],
        ),
        (
            "db_max_connections = \"many\"\n",
            &["`db_max_connections`", "many"],
        ),
        (
            "workers = [1, 2]\n",
            &["`workers` must be a string, a whole number or true/false"],
        ),
        ("log_format = \"yaml\"\n", &["`log_format`", "yaml"]),
        ("addr = \"127.0.0.1:1\"\nthis is not toml\n", &["line 2"]),
    ];
    for (body, expected) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, body).unwrap();
        let out = run(orgboard()
            .env("ORGBOARD_DATA_DIR", &data)
            .arg("serve")
            .arg("--config")
            .arg(&file));
        let said = text(&out);
        assert_eq!(out.status.code(), Some(2), "{body}: {said}");
        for e in expected {
            assert!(said.contains(e), "{body}: expected {e:?} in {said}");
        }
        assert!(
            said.lines()
                .all(|l| l.starts_with("configuration error: config file ")),
            "one line per problem: {said}"
        );
        assert!(!data.exists(), "nothing created for {body}");
    }
    let missing = run(orgboard()
        .arg("migrate")
        .arg("--config")
        .arg(dir.path().join("nope.toml")));
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing).contains("cannot read it"),
        "{}",
        text(&missing)
    );
}

/// `--help` never prints a value from the config file (it may hold secrets).
#[test]
fn help_never_prints_a_secret_from_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orgboard.toml");
    let secret = "file-secret-that-must-not-be-printed-0123456789";
    std::fs::write(
        &file,
        format!(
            "secret = {secret:?}\ndatabase_url = \"postgres://u:{secret}@h/db\"\nsmtp_url = \"smtp://u:{secret}@h\"\n"
        ),
    )
    .unwrap();
    for args in [
        &["serve", "--help"][..],
        &["--help"],
        &["migrate", "--help"],
    ] {
        let out = run(orgboard().args(args).arg("--config").arg(&file));
        assert!(out.status.success(), "{}", text(&out));
        assert!(!text(&out).contains(secret), "{args:?}: {}", text(&out));
    }
}

/// Runs `orgboard admin ARGS` on the data directory `data` (and database
/// `url`, when given), with `stdin` as its input.
fn admin(data: &Path, url: Option<&str>, args: &[&str], stdin: &str) -> Output {
    let mut cmd = orgboard();
    cmd.env("ORGBOARD_DATA_DIR", data)
        .env("ORGBOARD_LOG", "warn")
        .arg("admin")
        .args(args);
    if let Some(url) = url {
        cmd.env("ORGBOARD_DATABASE_URL", url);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `orgboard admin` as a self-hoster uses it: each command's line on
/// stdout and exit 0; bad input (an unknown organization, account, plan,
/// kind, job or flag, a taken email, no password on stdin) one line on
/// stderr naming the problem, exit 1, and nothing changed.
fn admin_commands_say_what_they_did_and_refuse_bad_input(url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ok = |args: &[&str], stdin: &str, says: &str| {
        let out = admin(&data, url, args, stdin);
        let all = text(&out);
        assert!(out.status.success(), "admin {args:?}: {all}");
        assert!(all.contains(says), "admin {args:?} says {says:?}: {all}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let refused = |args: &[&str], stdin: &str, says: &str| {
        let out = admin(&data, url, args, stdin);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "admin {args:?}: {}", text(&out));
        assert!(err.contains(says), "admin {args:?} says {says:?}: {err}");
        assert!(
            out.stdout.is_empty(),
            "admin {args:?} printed: {}",
            text(&out)
        );
    };
    let created = ok(
        &[
            "create-user",
            "cli@example.com",
            "--name",
            "Cli User",
            "--password-stdin",
        ],
        "correct horse battery\n",
        "created user",
    );
    assert!(!created.contains("reset-password"), "{created}");
    refused(
        &["create-user", "CLI@example.com", "--name", "Again"],
        "",
        "already exists",
    );
    refused(
        &[
            "create-user",
            "x@example.com",
            "--name",
            "X",
            "--password-stdin",
        ],
        "",
        "no password on stdin",
    );
    refused(
        &[
            "create-user",
            "y@example.com",
            "--name",
            "Y",
            "--password-stdin",
        ],
        "short\n",
        "password:",
    );
    let slug = "cli-user-s-organization";
    ok(&["set-plan", slug, "pro"], "", "plan free -> pro");
    ok(&["set-plan", slug, "pro"], "", "already on the pro plan");
    refused(&["set-plan", slug, "gold"], "", "unknown plan \"gold\"");
    refused(&["set-plan", "no-such-org", "pro"], "", "\"no-such-org\"");
    ok(&["suspend", slug], "", "is now suspended");
    ok(&["suspend", slug], "", "was already suspended");
    ok(&["resume", slug], "", "is now active");
    refused(&["suspend", "no-such-org"], "", "\"no-such-org\"");
    refused(&["flag", slug, "beta", "on"], "", "no feature flags");
    refused(
        &["flag", "no-such-org", "beta", "on"],
        "",
        "\"no-such-org\"",
    );
    let link = ok(&["reset-password", "cli@example.com"], "", "reset link");
    assert!(link.contains("/reset-password?token=obp_"), "{link}");
    ok(
        &["reset-password", "cli@example.com", "--password-stdin"],
        "a new admin passphrase\n",
        "password set",
    );
    refused(
        &["reset-password", "ghost@example.com"],
        "",
        "ghost@example.com",
    );
    ok(&["jobs", "dead"], "", "no dead jobs");
    refused(
        &["jobs", "requeue", "01a2470c-0000-7000-8000-000000000000"],
        "",
        "no dead job",
    );
    refused(&["security-log", "--kind", "nope"], "", "unknown kind");
    refused(
        &["security-log", "--user", "ghost@example.com"],
        "",
        "ghost@example.com",
    );
    let log = ok(
        &["security-log", "--json", "--kind", "admin"],
        "",
        "\"kind\":\"admin\"",
    );
    let commands: Vec<String> = log
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["detail"]["command"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        commands,
        [
            "reset-password",
            "reset-password",
            "resume",
            "suspend",
            "set-plan",
            "create-user"
        ],
        "newest first, one per change (refusals and no-ops record nothing)"
    );
    let text_log = ok(
        &["security-log", "--user", "cli@example.com"],
        "",
        "password_reset",
    );
    assert!(
        !text_log.contains("obp_"),
        "no token in the log: {text_log}"
    );
}

#[test]
fn admin_commands_on_sqlite() {
    admin_commands_say_what_they_did_and_refuse_bad_input(None);
}

#[test]
#[cfg_attr(
    orgboard_no_postgres,
    ignore = "needs PostgreSQL: set ORGBOARD_TEST_POSTGRES_URL"
)]
fn admin_commands_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, url) = rt.block_on(crate::common::PgDatabase::create());
    admin_commands_say_what_they_did_and_refuse_bad_input(Some(&url));
    drop(db);
}

/// `backup` and `restore` with a PostgreSQL URL refuse and name the tools
/// to use, without touching anything.
#[test]
fn backup_and_restore_name_pg_dump_for_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    for (command, tool) in [("backup", "pg_dump"), ("restore", "pg_restore")] {
        let out = run(orgboard()
            .env("ORGBOARD_DATA_DIR", dir.path().join("data"))
            .env(
                "ORGBOARD_DATABASE_URL",
                "postgres://nobody@127.0.0.1:1/none",
            )
            .arg(command)
            .arg(&file));
        assert!(!out.status.success(), "{command}: {}", text(&out));
        assert!(text(&out).contains(tool), "{command}: {}", text(&out));
    }
    assert!(!file.exists(), "no backup file written");
}
