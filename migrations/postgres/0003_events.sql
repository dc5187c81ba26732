-- Live events: a transactional outbox, and the role of the node's own
-- cross-tenant upkeep.
--
-- A change inserts its event rows in its own transaction with id NULL; the
-- dispatcher (any node, one at a time under an advisory lock, as
-- orgboard_system) numbers committed rows per organization (1, 2, 3, … with
-- no gaps) and publishes them. Numbering after commit makes the ids follow
-- the order in which events became visible, so a subscriber that resumes
-- after id N can never miss an event that commits later with a smaller id.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orgboard_system') THEN
        BEGIN
            CREATE ROLE orgboard_system NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_roles WHERE rolname = current_user AND rolsuper
    ) AND NOT pg_has_role(current_user, 'orgboard_system', 'MEMBER') THEN
        BEGIN
            EXECUTE format('GRANT orgboard_system TO %I', current_user);
        EXCEPTION WHEN OTHERS THEN
            IF NOT pg_has_role(current_user, 'orgboard_system', 'MEMBER') THEN RAISE; END IF;
        END;
    END IF;
END
$$;

CREATE SEQUENCE events_seq_seq;

CREATE TABLE events (
    org_id          uuid NOT NULL REFERENCES organizations (id),
    -- Insertion order (global); the dispatcher numbers in this order.
    seq             bigint NOT NULL DEFAULT nextval('events_seq_seq'),
    -- Per-organization event id, set by the dispatcher after commit.
    id              bigint,
    type            text NOT NULL,
    board_id        uuid,
    entity          jsonb NOT NULL,
    actor_id        uuid,
    at              timestamptz NOT NULL,
    PRIMARY KEY (org_id, seq),
    CONSTRAINT events_id_key UNIQUE (org_id, id)
);
ALTER SEQUENCE events_seq_seq OWNED BY events.seq;
CREATE INDEX events_pending_idx ON events (seq) WHERE id IS NULL;
CREATE INDEX events_at_idx ON events (at);

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;

CREATE POLICY events_tenant ON events TO orgboard_app
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
-- The dispatcher and the clean-up see every organization's events, and
-- nothing else of any tenant.
CREATE POLICY events_system ON events TO orgboard_system
    USING (true) WITH CHECK (true);

GRANT SELECT, INSERT ON events TO orgboard_app;
GRANT USAGE ON SEQUENCE events_seq_seq TO orgboard_app;
GRANT SELECT, UPDATE, DELETE ON events TO orgboard_system;
