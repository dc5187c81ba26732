//! `orgboard backup FILE` and `orgboard restore FILE` for the embedded
//! SQLite database (PostgreSQL has `pg_dump` / `pg_restore`; README,
//! "Backup and restore").
//!
//! A backup is `VACUUM INTO` a new file: one read transaction, so it is a
//! consistent snapshot taken while the server runs and writes (every write
//! acknowledged before it started is in it; WAL readers never block the
//! writer), compacted, and checked (`PRAGMA integrity_check`) before it is
//! reported. A restore only goes into an empty data directory (it never
//! replaces live data), checks the file first (an SQLite database that
//! passes its integrity check, with orgboard's migrations, none newer than
//! this binary knows), copies it beside its final name and renames it into
//! place, so a failed restore leaves no half-written database behind.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rusqlite::{Connection, OpenFlags};

use crate::config::StorageConfig;

/// What a backup or restore did, for its one line of output.
#[derive(Debug)]
pub struct Report {
    /// The database file read (backup) or written (restore).
    pub database: PathBuf,
    /// Size of the copy in bytes.
    pub bytes: u64,
    /// Tasks in it (a figure to compare with the server's).
    pub tasks: i64,
    /// Its newest migration.
    pub migration: i64,
}

/// The SQLite file `storage` names; an error naming `pg_dump` for
/// PostgreSQL.
fn sqlite_file(storage: &StorageConfig) -> anyhow::Result<PathBuf> {
    let url = storage.effective_database_url();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!(
            "the database is PostgreSQL: back it up with pg_dump and restore it with \
             pg_restore (README, \"Backup and restore\")"
        );
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(&url);
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        bail!("ORGBOARD_DATABASE_URL names no SQLite file: {url}");
    }
    Ok(PathBuf::from(path))
}

/// Creates `path` empty, readable by this user only; refuses an existing one.
fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!("{} already exists: give a new file name", path.display())
        } else {
            anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
        }
    })
}

/// Checks that `path` is an orgboard SQLite database this binary can run;
/// returns (tasks, newest migration).
fn check(path: &Path) -> anyhow::Result<(i64, i64)> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", path.display()))?;
    let not_ours = || format!("{} is not an orgboard SQLite database", path.display());
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .with_context(not_ours)?;
    if integrity != "ok" {
        bail!("{} is damaged: {integrity}", path.display());
    }
    let migration: Option<i64> = conn
        .query_row(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
            [],
            |r| r.get(0),
        )
        .with_context(not_ours)?;
    let Some(migration) = migration else {
        bail!(not_ours());
    };
    let known = crate::db::SQLITE_MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0);
    if migration > known {
        bail!(
            "{} comes from a newer orgboard (migration {migration}; this one knows up to \
             {known}): restore it with that version or newer",
            path.display()
        );
    }
    let tasks = conn
        .query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))
        .with_context(not_ours)?;
    Ok((tasks, migration))
}

/// Writes a consistent copy of the SQLite database to `to` (a new file),
/// while the server may be running.
pub fn backup(storage: &StorageConfig, to: &Path) -> anyhow::Result<Report> {
    let database = sqlite_file(storage)?;
    if !database.is_file() {
        bail!("no database at {}", database.display());
    }
    let conn = Connection::open_with_flags(
        &database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", database.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = to
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", to.display()))?;
    // VACUUM INTO wants a new or empty file: made first, private.
    drop(create_private(to)?);
    if let Err(e) = conn.execute("VACUUM INTO ?1", [target]) {
        let _ = std::fs::remove_file(to);
        return Err(
            anyhow::Error::new(e).context(format!("backup of {} failed", database.display()))
        );
    }
    let (tasks, migration) = match check(to) {
        Ok(found) => found,
        Err(e) => {
            let _ = std::fs::remove_file(to);
            return Err(e.context("the copy does not read back"));
        }
    };
    Ok(Report {
        database,
        bytes: std::fs::metadata(to)?.len(),
        tasks,
        migration,
    })
}

/// Puts the backup `from` in place as the database of `storage`, whose
/// data directory must be empty (or not exist yet).
pub fn restore(storage: &StorageConfig, from: &Path) -> anyhow::Result<Report> {
    let database = sqlite_file(storage)?;
    if !from.is_file() {
        bail!("no backup at {}", from.display());
    }
    let dir = database
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    for d in [&storage.data_dir, &dir] {
        if let Ok(mut entries) = std::fs::read_dir(d)
            && entries.next().is_some()
        {
            bail!(
                "{} is not empty: restore goes into an empty data directory only \
                 (stop the server and move the old one aside first)",
                d.display()
            );
        }
    }
    for f in [
        &database,
        &crate::db::sidecar(&database, "-wal"),
        &crate::db::sidecar(&database, "-shm"),
    ] {
        if f.exists() {
            bail!("{} exists: restore never replaces a database", f.display());
        }
    }
    let (tasks, migration) = check(from)?;
    crate::db::private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if dir != storage.data_dir {
        crate::db::private_dir(&storage.data_dir)
            .with_context(|| format!("cannot create {}", storage.data_dir.display()))?;
    }
    let partial = crate::db::sidecar(&database, ".restoring");
    let copied = (|| -> anyhow::Result<()> {
        let mut out = create_private(&partial)?;
        let mut input =
            std::fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
        std::io::copy(&mut input, &mut out)?;
        out.flush()?;
        out.sync_all()?;
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!("cannot copy {}", from.display())));
    }
    std::fs::rename(&partial, &database)
        .with_context(|| format!("cannot move the copy to {}", database.display()))?;
    Ok(Report {
        bytes: std::fs::metadata(&database)?.len(),
        database,
        tasks,
        migration,
    })
}
