-- Row-level security on every table that holds a tenant's or a user's data.
--
-- Before this, the request role (orgboard_app) could read, inside organization
-- B's transaction, organization A's stored idempotent answers (task JSON) and
-- A's pending invite jobs (the invitee's email and the plaintext invite
-- token), and every user's row and refresh-token row. Now:
--
-- * jobs: a job that concerns an organization carries its org_id; the
--   request role sees and writes only the jobs of the organization its
--   transaction is in (or, outside any organization, only instance-wide jobs
--   with no org_id). The workers claim and finish jobs as orgboard_system.
-- * idempotency_keys: carry the org_id of the request that stored them; the
--   request role sees only the caller's own keys of the current organization.
--   (Keys stored before this migration have no org_id and are no longer
--   visible: a replay of one answers 422 idempotency_key_reused; they expire
--   within a day.)
-- * users: outside a signed-in scope (sign-up, login, refresh: no
--   app.user_id) rows are found by email or token hash as before; inside it
--   the request role sees the caller's own row and the rows of members of
--   the current organization, and may change only its own row.
-- * refresh_tokens, daily_summaries: the caller's own rows inside a
--   signed-in scope.
-- * schedules holds no tenant or user data (schedule names and times) and
--   is the one table without row-level security (the catalog test names it).

ALTER TABLE jobs ADD COLUMN org_id uuid;
ALTER TABLE idempotency_keys ADD COLUMN org_id uuid;

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE refresh_tokens FORCE ROW LEVEL SECURITY;
ALTER TABLE daily_summaries ENABLE ROW LEVEL SECURITY;
ALTER TABLE daily_summaries FORCE ROW LEVEL SECURITY;

-- jobs ---------------------------------------------------------------------
CREATE POLICY jobs_tenant ON jobs TO orgboard_app
    USING (
        org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
        OR (org_id IS NULL AND NULLIF(current_setting('app.org_id', true), '') IS NULL)
    )
    WITH CHECK (
        org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
        OR (org_id IS NULL AND NULLIF(current_setting('app.org_id', true), '') IS NULL)
    );
CREATE POLICY jobs_system ON jobs TO orgboard_system USING (true) WITH CHECK (true);
-- The request role only enqueues (and counts, for nothing it cannot see);
-- claiming, finishing and requeueing are the workers' (orgboard_system).
REVOKE UPDATE, DELETE ON jobs FROM orgboard_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON jobs TO orgboard_system;

-- idempotency_keys ---------------------------------------------------------
CREATE POLICY idempotency_keys_tenant ON idempotency_keys TO orgboard_app
    USING (
        user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
        AND org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
    )
    WITH CHECK (
        user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
        AND org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
    );
-- Clean-up: it was already granted SELECT (created_at) and DELETE.
CREATE POLICY idempotency_keys_system ON idempotency_keys TO orgboard_system USING (true);

-- users --------------------------------------------------------------------
CREATE POLICY users_read ON users FOR SELECT TO orgboard_app
    USING (
        NULLIF(current_setting('app.user_id', true), '') IS NULL
        OR id = NULLIF(current_setting('app.user_id', true), '')::uuid
        OR EXISTS (
            SELECT 1 FROM memberships m
             WHERE m.user_id = users.id
               AND m.org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
        )
    );
-- A new account is not yet anyone's co-member; creating one crosses no
-- tenant (sign-up, and the benchmark's seeding).
CREATE POLICY users_insert ON users FOR INSERT TO orgboard_app WITH CHECK (true);
CREATE POLICY users_update ON users FOR UPDATE TO orgboard_app
    USING (
        NULLIF(current_setting('app.user_id', true), '') IS NULL
        OR id = NULLIF(current_setting('app.user_id', true), '')::uuid
    )
    WITH CHECK (
        NULLIF(current_setting('app.user_id', true), '') IS NULL
        OR id = NULLIF(current_setting('app.user_id', true), '')::uuid
    );

-- refresh_tokens -----------------------------------------------------------
CREATE POLICY refresh_tokens_own ON refresh_tokens TO orgboard_app
    USING (
        NULLIF(current_setting('app.user_id', true), '') IS NULL
        OR user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
    )
    WITH CHECK (
        NULLIF(current_setting('app.user_id', true), '') IS NULL
        OR user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
    );
CREATE POLICY refresh_tokens_system ON refresh_tokens TO orgboard_system USING (true);

-- daily_summaries ----------------------------------------------------------
CREATE POLICY daily_summaries_own ON daily_summaries TO orgboard_app
    USING (
        NULLIF(current_setting('app.user_id', true), '') IS NULL
        OR user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
    )
    WITH CHECK (
        NULLIF(current_setting('app.user_id', true), '') IS NULL
        OR user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
    );
CREATE POLICY daily_summaries_system ON daily_summaries TO orgboard_system USING (true);
