//! Tells the test binaries which external services this build may use, so a
//! test that needs PostgreSQL, Redis or Chromium is reported as *ignored*
//! (with the reason) when it is not available, instead of passing without
//! testing anything. Under CI (`CI` set) nothing is marked ignored: such a
//! test then fails on the missing service (`tests/api/common`,
//! `tests/api/browser.rs`), since CI never skips. (The build itself never fails
//! here: release builds under CI must work.)
//!
//! `orgboard_no_postgres` is set when `ORGBOARD_TEST_POSTGRES_URL` is unset
//! or empty, `orgboard_no_redis` likewise for `ORGBOARD_TEST_REDIS_URL`, and
//! `orgboard_no_chromium` when no `chromedriver` is found: the file named by
//! `ORGBOARD_CHROMEDRIVER`, else `chromedriver` on `PATH`, else
//! `/usr/bin/chromedriver` (the browser tests look it up the same way). The
//! server itself never reads these flags. It also makes Cargo rebuild the
//! crate when a migration file changes (see `main`).

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(orgboard_no_postgres)");
    println!("cargo::rustc-check-cfg=cfg(orgboard_no_redis)");
    println!("cargo::rustc-check-cfg=cfg(orgboard_no_chromium)");
    println!("cargo::rerun-if-env-changed=ORGBOARD_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=ORGBOARD_TEST_REDIS_URL");
    println!("cargo::rerun-if-env-changed=ORGBOARD_CHROMEDRIVER");
    println!("cargo::rerun-if-env-changed=CI");
    // `sqlx::migrate!` embeds the migration files at compile time, but on
    // stable Rust nothing tells Cargo it read them: without this line (and
    // once a build script names any path, Cargo watches only those) a new
    // or edited migration is left out of incremental builds.
    println!("cargo::rerun-if-changed=migrations");
    commit();
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    for (var, cfg) in [
        ("ORGBOARD_TEST_POSTGRES_URL", "orgboard_no_postgres"),
        ("ORGBOARD_TEST_REDIS_URL", "orgboard_no_redis"),
    ] {
        let set = std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
        if !set && !ci {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    match chromedriver() {
        // Look again if it goes away (or is replaced).
        Some(found) => println!("cargo::rerun-if-changed={}", found.display()),
        None => {
            // Look again once something is installed (`apt-get install
            // chromium-driver` adds it to /usr/bin); `PATH` itself is not
            // watched, as editors and shells often differ in it and every
            // change would rebuild the crate.
            if Path::new("/usr/bin").is_dir() {
                println!("cargo::rerun-if-changed=/usr/bin");
            }
            if !ci {
                println!("cargo::rustc-cfg=orgboard_no_chromium");
            }
        }
    }
}

/// `ORGBOARD_COMMIT` for `--version` and `orgboard_build_info`: the checked
/// out commit (12 hex digits), `unknown` outside a git checkout (a source
/// tarball) or without git; `ORGBOARD_COMMIT` set at build time wins (for
/// builds from an exported tree, e.g. a container build without `.git`).
fn commit() {
    println!("cargo::rerun-if-env-changed=ORGBOARD_COMMIT");
    if let Ok(given) = std::env::var("ORGBOARD_COMMIT")
        && !given.trim().is_empty()
    {
        println!("cargo::rustc-env=ORGBOARD_COMMIT={}", given.trim());
        return;
    }
    for watched in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if Path::new(watched).exists() {
            println!("cargo::rerun-if-changed={watched}");
        }
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo::rustc-env=ORGBOARD_COMMIT={commit}");
}

/// The chromedriver the browser tests will start, if there is one.
fn chromedriver() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ORGBOARD_CHROMEDRIVER").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromedriver"))
        .chain([PathBuf::from("/usr/bin/chromedriver")])
        .find(|p| p.is_file())
}
