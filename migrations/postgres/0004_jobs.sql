-- Scheduled jobs, the record of daily summaries, and what the clean-up job
-- (running as orgboard_system) may touch.

-- One row per schedule defined in src/jobs.rs (inserted by the first node
-- that ticks). A node claims a due schedule with one atomic
-- `UPDATE … WHERE name = $1 AND next_run_at <= now RETURNING`, which moves
-- next_run_at to the next period, and enqueues the job in the same
-- transaction: one period yields exactly one job, whatever the number of
-- nodes (a concurrent claimer waits for the row lock, then finds the row no
-- longer due).
CREATE TABLE schedules (
    name            text PRIMARY KEY,
    next_run_at     timestamptz NOT NULL,
    last_run_at     timestamptz,
    updated_at      timestamptz NOT NULL
);

-- One row per member and local day whose daily summary was handled: the job
-- that claimed the day (only that job, or its retries, may send it) and
-- whether a mail went out (nothing is sent when there is nothing to say).
-- Not a tenant table: the summary spans every organization of the member.
CREATE TABLE daily_summaries (
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    local_date      date NOT NULL,
    job_id          uuid NOT NULL,
    mailed          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (user_id, local_date)
);
CREATE INDEX daily_summaries_date_idx ON daily_summaries (local_date);

-- The summary looks members up by time zone every 15 minutes.
CREATE INDEX users_time_zone_idx ON users (time_zone);

GRANT SELECT, INSERT, UPDATE ON schedules TO orgboard_app;
GRANT SELECT, INSERT, UPDATE ON daily_summaries TO orgboard_app;

-- The clean-up job. orgboard_system reads only the columns its WHERE
-- clauses need (never a token hash, an email or a response body) and
-- deletes. Invites are a tenant table: its policies let it see and delete
-- only unaccepted invites that have expired, nothing else of any tenant.
GRANT SELECT (org_id, expires_at, accepted_at), DELETE ON invites TO orgboard_system;
CREATE POLICY invites_system_select ON invites FOR SELECT TO orgboard_system
    USING (accepted_at IS NULL AND expires_at < now());
CREATE POLICY invites_system_delete ON invites FOR DELETE TO orgboard_system
    USING (accepted_at IS NULL AND expires_at < now());
GRANT SELECT (expires_at, revoked_at), DELETE ON refresh_tokens TO orgboard_system;
GRANT SELECT (created_at), DELETE ON idempotency_keys TO orgboard_system;
GRANT SELECT (local_date), DELETE ON daily_summaries TO orgboard_system;
-- events: orgboard_system already reads and deletes them (migration 0003).
