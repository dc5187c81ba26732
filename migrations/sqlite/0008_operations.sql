-- no-transaction
-- Operations and the account life-cycle (issue 14); see the PostgreSQL
-- migration of the same number for what each change is for.
--
-- SQLite cannot change a CHECK constraint in place: organizations is
-- rebuilt (plan names of SPEC §13, and suspended_at), by the procedure
-- SQLite documents for it: foreign keys off, one transaction, the copy
-- renamed over the original (child tables still name "organizations").
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE organizations_new (
    id              BLOB NOT NULL PRIMARY KEY,
    name            TEXT NOT NULL,
    slug            TEXT NOT NULL,
    plan            TEXT NOT NULL DEFAULT 'free' CHECK (plan IN ('free', 'pro', 'enterprise')),
    is_personal     BOOLEAN NOT NULL DEFAULT 0,
    created_by      BLOB NOT NULL REFERENCES users (id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    deleted_at      TEXT,
    suspended_at    TEXT
);
INSERT INTO organizations_new
    (id, name, slug, plan, is_personal, created_by, created_at, updated_at, deleted_at)
SELECT id, name, slug, CASE plan WHEN 'team' THEN 'pro' ELSE plan END,
       is_personal, created_by, created_at, updated_at, deleted_at
  FROM organizations;
DROP TABLE organizations;
ALTER TABLE organizations_new RENAME TO organizations;
CREATE UNIQUE INDEX organizations_slug_key ON organizations (slug) WHERE deleted_at IS NULL;

ALTER TABLE users ADD COLUMN deleted_at TEXT;

CREATE TABLE password_resets (
    id              BLOB NOT NULL PRIMARY KEY,
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash      BLOB NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    used_at         TEXT,
    CONSTRAINT password_resets_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);
CREATE INDEX password_resets_expires_idx ON password_resets (expires_at);

CREATE TABLE security_log (
    id              BLOB NOT NULL PRIMARY KEY,
    kind            TEXT NOT NULL,
    user_id         BLOB,
    email           TEXT,
    org_id          BLOB,
    ip              TEXT,
    detail          TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL
);
CREATE INDEX security_log_created_idx ON security_log (created_at);
CREATE INDEX security_log_user_idx ON security_log (user_id, created_at);
COMMIT;
PRAGMA foreign_keys = ON;
