//! The server under test: the real `orgboard` binary as a child process on a
//! free loopback port, with start-up time (spawn → `/readyz` 200), binary
//! size and resident memory (`/proc/<pid>/status`: `VmRSS`, `VmHWM`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper::Method;

use crate::http::Http;

/// How the server is started.
pub struct Launch {
    /// The binary.
    pub bin: PathBuf,
    /// Environment for it (on top of the inherited one, minus `ORGBOARD_*`).
    pub env: BTreeMap<String, String>,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
}

/// A running server.
pub struct ServerProc {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Spawn → first `200` from `/readyz`, in milliseconds.
    pub startup_ms: f64,
    /// Size of the binary in bytes.
    pub bin_size: u64,
    /// Its log file.
    pub log: PathBuf,
    sampler: Arc<Sampler>,
}

#[derive(Default)]
struct Sampler {
    peak_kb: AtomicU64,
    stop: AtomicBool,
}

/// A free port on 127.0.0.1 (bound and released; the server binds it next).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `(VmRSS, VmHWM)` of a process, in KiB.
pub fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Builds the server binary when it is the workspace's own, so the figures
/// never come from a stale build. `release` picks the profile. It builds
/// from the workspace's default members (both packages), as every other
/// workspace command does, so dependencies are resolved with the same
/// features and not compiled a second time.
pub fn build_server(workspace: &Path, release: bool) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--bin", "orgboard"]);
    // `cargo run` describes this package to us in the environment; build
    // scripts that watch those variables (ring's watches
    // CARGO_MANIFEST_DIR) would otherwise rebuild half the graph, twice.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || matches!(
                k.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
        {
            cmd.env_remove(k.as_ref());
        }
    }
    if release {
        cmd.arg("--release");
    }
    eprintln!(
        "building the server: cargo build {}--bin orgboard",
        if release { "--release " } else { "" }
    );
    let status = cmd
        .status()
        .context("cannot run cargo to build the server")?;
    anyhow::ensure!(status.success(), "building the server failed ({status})");
    Ok(())
}

impl ServerProc {
    /// Starts the server and waits (at most 60 s) until `/readyz` answers 200.
    pub async fn start(launch: Launch, addr_port: u16) -> anyhow::Result<Self> {
        let bin_size = std::fs::metadata(&launch.bin)
            .with_context(|| format!("server binary {} not found", launch.bin.display()))?
            .len();
        let log = std::fs::File::create(&launch.log)
            .with_context(|| format!("cannot create {}", launch.log.display()))?;
        let mut cmd = Command::new(&launch.bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ORGBOARD_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(&launch.env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let base = format!("http://127.0.0.1:{addr_port}");
        let http = Http::new(&base);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", launch.bin.display()))?;
        let pid = child.id();
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Ok(r) = http.send(Method::GET, "/readyz", None, None, None).await
                && r.status == 200
            {
                break;
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "the server exited during start-up ({status}); log:\n{}",
                    tail(&launch.log)
                );
            }
            if Instant::now() > deadline {
                // A `Child` is not killed when dropped: without this the
                // server would outlive the failed run, serving nobody.
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!(
                    "the server was not ready within 60 s; log:\n{}",
                    tail(&launch.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let startup_ms = started.elapsed().as_secs_f64() * 1000.0;
        let sampler = Arc::new(Sampler::default());
        let s = sampler.clone();
        tokio::spawn(async move {
            while !s.stop.load(Ordering::Relaxed) {
                if let Some((rss, _)) = memory_kb(pid) {
                    s.peak_kb.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Ok(Self {
            child,
            pid,
            base,
            startup_ms,
            bin_size,
            log: launch.log,
            sampler,
        })
    }

    /// Highest `VmRSS` seen by the 50 ms sampler since the last call (KiB),
    /// and resets it.
    pub fn take_sampled_peak_kb(&self) -> u64 {
        let now = memory_kb(self.pid).map(|m| m.0).unwrap_or(0);
        self.sampler.peak_kb.swap(now, Ordering::Relaxed).max(now)
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops it gracefully (SIGTERM, then SIGKILL after 20 s); returns
    /// whether it exited with status 0.
    pub async fn stop(&mut self) -> anyhow::Result<bool> {
        self.sampler.stop.store(true, Ordering::Relaxed);
        // `kill` the command: no unsafe code needed for a signal.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                let _ = self.child.wait();
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServerProc {
    /// Never leave a server behind (an error half way through a run).
    fn drop(&mut self) {
        self.sampler.stop.store(true, Ordering::Relaxed);
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines of a log file.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
