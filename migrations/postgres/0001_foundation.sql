-- Foundation: identity, organizations, memberships, invites, audit log, jobs.
--
-- Tenant tables carry org_id, and every key that crosses tenant tables
-- includes it (ready for Citus distribution by org_id). Row-level security is
-- enabled and FORCEd on each of them; request transactions run as
-- orgboard_app, which owns nothing and cannot bypass it.

-- The runtime role. Roles are cluster-wide, so several databases (tests,
-- several deployments) share it; creating it must tolerate a concurrent twin.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orgboard_app') THEN
        BEGIN
            CREATE ROLE orgboard_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    -- The connecting user must be able to switch to it (a superuser always can).
    IF NOT EXISTS (
        SELECT 1 FROM pg_roles WHERE rolname = current_user AND rolsuper
    ) AND NOT pg_has_role(current_user, 'orgboard_app', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT orgboard_app TO %I', current_user);
        EXCEPTION WHEN OTHERS THEN
            IF NOT pg_has_role(current_user, 'orgboard_app', 'MEMBER') THEN RAISE; END IF;
        END;
    END IF;
END
$$;

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    email           text NOT NULL,
    email_norm      text NOT NULL,
    name            text NOT NULL,
    password_hash   text NOT NULL,
    time_zone       text NOT NULL DEFAULT 'UTC',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT users_email_norm_key UNIQUE (email_norm)
);

CREATE TABLE refresh_tokens (
    id              uuid PRIMARY KEY,
    family_id       uuid NOT NULL,
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      bytea NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    spent_at        timestamptz,
    revoked_at      timestamptz,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

CREATE TABLE organizations (
    id              uuid PRIMARY KEY,
    name            text NOT NULL,
    slug            text NOT NULL,
    plan            text NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'team', 'enterprise')),
    is_personal     boolean NOT NULL DEFAULT false,
    created_by      uuid NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    deleted_at      timestamptz
);
-- A deleted organization frees its slug.
CREATE UNIQUE INDEX organizations_slug_key ON organizations (slug) WHERE deleted_at IS NULL;

CREATE TABLE memberships (
    org_id          uuid NOT NULL REFERENCES organizations (id),
    user_id         uuid NOT NULL REFERENCES users (id),
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id, org_id);

CREATE TABLE invites (
    org_id          uuid NOT NULL REFERENCES organizations (id),
    id              uuid NOT NULL,
    email           text NOT NULL,
    email_norm      text NOT NULL,
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash      bytea NOT NULL,
    invited_by      uuid NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    accepted_at     timestamptz,
    accepted_by     uuid REFERENCES users (id),
    revoked_at      timestamptz,
    PRIMARY KEY (org_id, id),
    CONSTRAINT invites_token_hash_key UNIQUE (org_id, token_hash)
);
CREATE INDEX invites_email_idx ON invites (org_id, email_norm);
CREATE INDEX invites_expires_idx ON invites (expires_at);

CREATE TABLE audit_log (
    org_id          uuid NOT NULL REFERENCES organizations (id),
    id              uuid NOT NULL,
    actor_id        uuid,
    action          text NOT NULL,
    entity_type     text NOT NULL,
    entity_id       uuid,
    payload         jsonb NOT NULL,
    request_id      text,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_log_actor_idx ON audit_log (org_id, actor_id, id);
CREATE INDEX audit_log_action_idx ON audit_log (org_id, action, id);
CREATE INDEX audit_log_entity_idx ON audit_log (org_id, entity_type, entity_id, id);

-- The job queue is system-wide: payloads that concern a tenant carry its
-- org_id, and the job opens a tenant transaction for it.
CREATE TABLE jobs (
    id              uuid PRIMARY KEY,
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 5,
    run_at          timestamptz NOT NULL,
    locked_until    timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX jobs_ready_idx ON jobs (status, run_at);

-- Row-level security on every tenant table. An unset app.org_id is NULL and
-- matches nothing.
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
ALTER TABLE invites ENABLE ROW LEVEL SECURITY;
ALTER TABLE invites FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;

-- A user sees their own memberships in every organization (to list "my
-- organizations" and resolve {org}); everything else only inside the tenant.
CREATE POLICY memberships_tenant ON memberships
    USING (
        org_id = NULLIF(current_setting('app.org_id', true), '')::uuid
        OR user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
    )
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

CREATE POLICY organizations_tenant ON organizations
    USING (
        id = NULLIF(current_setting('app.org_id', true), '')::uuid
        OR EXISTS (
            SELECT 1 FROM memberships m
            WHERE m.org_id = organizations.id
              AND m.user_id = NULLIF(current_setting('app.user_id', true), '')::uuid
        )
    )
    WITH CHECK (id = NULLIF(current_setting('app.org_id', true), '')::uuid);

CREATE POLICY invites_tenant ON invites
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

CREATE POLICY audit_log_tenant ON audit_log
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

-- What the runtime role may do. The audit log is append-only for it.
GRANT SELECT, INSERT, UPDATE ON users TO orgboard_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON refresh_tokens TO orgboard_app;
GRANT SELECT, INSERT, UPDATE ON organizations TO orgboard_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON memberships TO orgboard_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON invites TO orgboard_app;
GRANT SELECT, INSERT ON audit_log TO orgboard_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON jobs TO orgboard_app;
