-- Work domain: same tables, columns and keys as migrations/postgres/0002.
-- Order keys are ASCII text; SQLite's default BINARY collation compares them
-- bytewise, like COLLATE "C" on PostgreSQL.

CREATE TABLE boards (
    org_id          BLOB NOT NULL REFERENCES organizations (id),
    id              BLOB NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    archived_at     TEXT,
    created_by      BLOB NOT NULL REFERENCES users (id),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE lists (
    org_id          BLOB NOT NULL,
    id              BLOB NOT NULL,
    board_id        BLOB NOT NULL,
    name            TEXT NOT NULL,
    position        TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT lists_board_fk FOREIGN KEY (org_id, board_id) REFERENCES boards (org_id, id) ON DELETE CASCADE,
    CONSTRAINT lists_board_id_key UNIQUE (org_id, board_id, id),
    CONSTRAINT lists_position_key UNIQUE (org_id, board_id, position)
);

CREATE TABLE tasks (
    org_id          BLOB NOT NULL,
    id              BLOB NOT NULL,
    board_id        BLOB NOT NULL,
    list_id         BLOB NOT NULL,
    title           TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL CHECK (status IN ('todo', 'in_progress', 'done')),
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    position        TEXT NOT NULL,
    due_date        TEXT,
    created_by      BLOB NOT NULL REFERENCES users (id),
    completed_at    TEXT,
    version         INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT tasks_list_fk FOREIGN KEY (org_id, board_id, list_id)
        REFERENCES lists (org_id, board_id, id) ON DELETE CASCADE,
    CONSTRAINT tasks_position_key UNIQUE (org_id, list_id, position)
);
CREATE INDEX tasks_board_idx ON tasks (org_id, board_id, id);
CREATE INDEX tasks_status_idx ON tasks (org_id, status, id);
CREATE INDEX tasks_priority_idx ON tasks (org_id, priority, id);
CREATE INDEX tasks_due_idx ON tasks (org_id, due_date, id);
CREATE INDEX tasks_updated_idx ON tasks (org_id, updated_at, id);
CREATE INDEX tasks_creator_idx ON tasks (org_id, created_by, id);

CREATE TABLE task_assignees (
    org_id          BLOB NOT NULL,
    task_id         BLOB NOT NULL,
    user_id         BLOB NOT NULL,
    PRIMARY KEY (org_id, task_id, user_id),
    CONSTRAINT task_assignees_task_fk FOREIGN KEY (org_id, task_id) REFERENCES tasks (org_id, id) ON DELETE CASCADE,
    CONSTRAINT task_assignees_member_fk FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX task_assignees_user_idx ON task_assignees (org_id, user_id, task_id);

CREATE TABLE labels (
    org_id          BLOB NOT NULL REFERENCES organizations (id),
    id              BLOB NOT NULL,
    name            TEXT NOT NULL,
    name_norm       TEXT NOT NULL,
    color           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT labels_name_key UNIQUE (org_id, name_norm)
);

CREATE TABLE task_labels (
    org_id          BLOB NOT NULL,
    task_id         BLOB NOT NULL,
    label_id        BLOB NOT NULL,
    PRIMARY KEY (org_id, task_id, label_id),
    CONSTRAINT task_labels_task_fk FOREIGN KEY (org_id, task_id) REFERENCES tasks (org_id, id) ON DELETE CASCADE,
    CONSTRAINT task_labels_label_fk FOREIGN KEY (org_id, label_id) REFERENCES labels (org_id, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX task_labels_label_idx ON task_labels (org_id, label_id, task_id);

CREATE TABLE comments (
    org_id          BLOB NOT NULL,
    id              BLOB NOT NULL,
    task_id         BLOB NOT NULL,
    author_id       BLOB NOT NULL REFERENCES users (id),
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    edited_at       TEXT,
    PRIMARY KEY (org_id, id),
    CONSTRAINT comments_task_fk FOREIGN KEY (org_id, task_id) REFERENCES tasks (org_id, id) ON DELETE CASCADE
);
CREATE INDEX comments_task_idx ON comments (org_id, task_id, id);

CREATE TABLE idempotency_keys (
    user_id         BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             TEXT NOT NULL,
    request_hash    BLOB NOT NULL,
    status          INTEGER,
    response        TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
