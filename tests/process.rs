//! The real binary: start-up, readiness over TCP, graceful exit on SIGTERM,
//! `--help` of every command, `migrate`, and refusal of invalid settings.

#![allow(clippy::unwrap_used)]

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
        .env("ORGBOARD_ADDR", addr.to_string());
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
