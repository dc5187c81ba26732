-- Live events: a transactional outbox (same table as migrations/postgres/0003).
-- SQLite has one writer, so a change numbers its events itself, inside its
-- own transaction (per organization: 1, 2, 3, …), and commit order is id
-- order; `seq` equals `id` here.

CREATE TABLE events (
    org_id          BLOB NOT NULL REFERENCES organizations (id),
    seq             INTEGER NOT NULL,
    id              INTEGER,
    type            TEXT NOT NULL,
    board_id        BLOB,
    entity          TEXT NOT NULL,
    actor_id        BLOB,
    at              TEXT NOT NULL,
    PRIMARY KEY (org_id, seq),
    CONSTRAINT events_id_key UNIQUE (org_id, id)
);
CREATE INDEX events_pending_idx ON events (seq) WHERE id IS NULL;
CREATE INDEX events_at_idx ON events (at);
