-- Foundation: identity, organizations, memberships, invites, audit log, jobs.
-- Same tables, columns and keys as migrations/postgres/0001 (a test keeps them
-- in step). SQLite has no row-level security: every query filters by org_id.
-- uuid -> BLOB (16 bytes), timestamptz -> TEXT (RFC 3339, UTC), jsonb -> TEXT.

CREATE TABLE users (
    id              BLOB NOT NULL PRIMARY KEY,
    email           TEXT NOT NULL,
    email_norm      TEXT NOT NULL,
    name            TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    time_zone       TEXT NOT NULL DEFAULT 'UTC',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CONSTRAINT users_email_norm_key UNIQUE (email_norm)
);

CREATE TABLE refresh_tokens (
    id              BLOB NOT NULL PRIMARY KEY,
    family_id       BLOB NOT NULL,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    spent_at        TEXT,
    revoked_at      TEXT,
    CONSTRAINT refresh_tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

CREATE TABLE organizations (
    id              BLOB NOT NULL PRIMARY KEY,
    name            TEXT NOT NULL,
    slug            TEXT NOT NULL,
    plan            TEXT NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'team', 'enterprise')),
    is_personal     BOOLEAN NOT NULL DEFAULT 0,
    created_by      BLOB NOT NULL REFERENCES users (id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    deleted_at      TEXT
);
CREATE UNIQUE INDEX organizations_slug_key ON organizations (slug) WHERE deleted_at IS NULL;

CREATE TABLE memberships (
    org_id          BLOB NOT NULL REFERENCES organizations (id),
    user_id         BLOB NOT NULL REFERENCES users (id),
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user_idx ON memberships (user_id, org_id);

CREATE TABLE invites (
    org_id          BLOB NOT NULL REFERENCES organizations (id),
    id              BLOB NOT NULL,
    email           TEXT NOT NULL,
    email_norm      TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    token_hash      BLOB NOT NULL,
    invited_by      BLOB NOT NULL REFERENCES users (id),
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    accepted_at     TEXT,
    accepted_by     BLOB REFERENCES users (id),
    revoked_at      TEXT,
    PRIMARY KEY (org_id, id),
    CONSTRAINT invites_token_hash_key UNIQUE (org_id, token_hash)
);
CREATE INDEX invites_email_idx ON invites (org_id, email_norm);
CREATE INDEX invites_expires_idx ON invites (expires_at);

CREATE TABLE audit_log (
    org_id          BLOB NOT NULL REFERENCES organizations (id),
    id              BLOB NOT NULL,
    actor_id        BLOB,
    action          TEXT NOT NULL,
    entity_type     TEXT NOT NULL,
    entity_id       BLOB,
    payload         TEXT NOT NULL,
    request_id      TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_log_actor_idx ON audit_log (org_id, actor_id, id);
CREATE INDEX audit_log_action_idx ON audit_log (org_id, action, id);
CREATE INDEX audit_log_entity_idx ON audit_log (org_id, entity_type, entity_id, id);

-- Append-only, enforced by the database as well as by the absence of routes.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE jobs (
    id              BLOB NOT NULL PRIMARY KEY,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL DEFAULT 5,
    run_at          TEXT NOT NULL,
    locked_until    TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX jobs_ready_idx ON jobs (status, run_at);
