-- Scheduled jobs and the record of daily summaries (same tables as
-- migrations/postgres/0004; SQLite has no roles or row-level security).

-- One row per schedule defined in src/jobs.rs; a node claims a due one with
-- an atomic UPDATE … RETURNING that advances next_run_at, and enqueues its
-- job in the same transaction.
CREATE TABLE schedules (
    name            TEXT NOT NULL PRIMARY KEY,
    next_run_at     TEXT NOT NULL,
    last_run_at     TEXT,
    updated_at      TEXT NOT NULL
);

-- One row per member and local day whose daily summary was handled.
CREATE TABLE daily_summaries (
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    local_date      TEXT NOT NULL,
    job_id          BLOB NOT NULL,
    mailed          BOOLEAN NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (user_id, local_date)
) WITHOUT ROWID;
CREATE INDEX daily_summaries_date_idx ON daily_summaries (local_date);

-- The summary looks members up by time zone every 15 minutes.
CREATE INDEX users_time_zone_idx ON users (time_zone);
