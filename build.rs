//! Tells the test binaries which external services this build may use, so a
//! test that needs PostgreSQL or Redis is reported as *ignored* (with the
//! reason) when its URL is not set, instead of passing without testing
//! anything. Under CI (`CI` set) nothing is marked ignored: such a test then
//! fails on the missing URL (`tests/common`), since CI never skips. (The
//! build itself never fails here: release builds under CI must work.)
//!
//! `orgboard_no_postgres` is set when `ORGBOARD_TEST_POSTGRES_URL` is unset
//! or empty, `orgboard_no_redis` likewise for `ORGBOARD_TEST_REDIS_URL`. The
//! server itself never reads these flags.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(orgboard_no_postgres)");
    println!("cargo::rustc-check-cfg=cfg(orgboard_no_redis)");
    println!("cargo::rerun-if-env-changed=ORGBOARD_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=ORGBOARD_TEST_REDIS_URL");
    println!("cargo::rerun-if-env-changed=CI");
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
}
