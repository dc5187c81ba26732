-- Operations and the account life-cycle (issue 14):
--
-- * organizations.plan takes the plan names of SPEC §13 (free, pro,
--   enterprise; nothing set `team` before: no route or command could);
-- * organizations.suspended_at: an instance administrator's suspension
--   (`orgboard admin suspend`): its members are answered 423, its data kept;
-- * users.deleted_at: a deleted account keeps its row (comments and audit
--   rows still point at it), renamed "Deleted user", with no email or
--   password that could sign in;
-- * password_resets: single-use reset links (the token's hash only);
-- * security_log: sign-ups, logins, failed logins, refresh-token reuse,
--   password changes and resets, permission refusals. Not a tenant's
--   change history (that is audit_log): the request role may only append;
--   reading and pruning (90 days) are orgboard_system's.

ALTER TABLE organizations DROP CONSTRAINT IF EXISTS organizations_plan_check;
UPDATE organizations SET plan = 'pro' WHERE plan = 'team';
ALTER TABLE organizations ADD CONSTRAINT organizations_plan_check
    CHECK (plan IN ('free', 'pro', 'enterprise'));
ALTER TABLE organizations ADD COLUMN suspended_at timestamptz;
ALTER TABLE users ADD COLUMN deleted_at timestamptz;

-- The administrator's commands find an organization by id or slug across
-- tenants (then act inside it as the request role, which audits).
GRANT SELECT (id, name, slug, plan, is_personal, deleted_at, suspended_at) ON organizations TO orgboard_system;
CREATE POLICY organizations_system_select ON organizations FOR SELECT TO orgboard_system USING (true);

CREATE TABLE password_resets (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    CONSTRAINT password_resets_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);
CREATE INDEX password_resets_expires_idx ON password_resets (expires_at);
ALTER TABLE password_resets ENABLE ROW LEVEL SECURITY;
ALTER TABLE password_resets FORCE ROW LEVEL SECURITY;
-- As refresh tokens: found by hash outside a signed-in scope (the reset
-- link carries no session), only one's own inside one.
CREATE POLICY password_resets_own ON password_resets TO orgboard_app
    USING (
        NULLIF(current_setting('app.user_id', true), '') IS NULL
        OR user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
    )
    WITH CHECK (
        NULLIF(current_setting('app.user_id', true), '') IS NULL
        OR user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
    );
CREATE POLICY password_resets_system ON password_resets TO orgboard_system USING (true);
GRANT SELECT, INSERT, UPDATE, DELETE ON password_resets TO orgboard_app;
GRANT SELECT (expires_at, used_at), DELETE ON password_resets TO orgboard_system;

CREATE TABLE security_log (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    user_id         uuid,
    email           text,
    org_id          uuid,
    ip              text,
    detail          jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL
);
CREATE INDEX security_log_created_idx ON security_log (created_at);
CREATE INDEX security_log_user_idx ON security_log (user_id, created_at);
ALTER TABLE security_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE security_log FORCE ROW LEVEL SECURITY;
CREATE POLICY security_log_append ON security_log FOR INSERT TO orgboard_app WITH CHECK (true);
CREATE POLICY security_log_system ON security_log TO orgboard_system USING (true) WITH CHECK (true);
GRANT INSERT ON security_log TO orgboard_app;
GRANT SELECT, INSERT, DELETE ON security_log TO orgboard_system;
