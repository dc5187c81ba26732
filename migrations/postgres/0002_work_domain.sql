-- Work domain: boards, lists, tasks, assignees, labels, comments, and
-- idempotency keys.
--
-- Every key that crosses tenant tables includes org_id, so a cross-tenant
-- reference is impossible in the schema itself: a task references
-- (org_id, board_id, list_id), an assignee (org_id, user_id) of memberships,
-- a label (org_id, label_id). Order keys are base-62 fractional keys
-- compared bytewise (COLLATE "C").

CREATE TABLE boards (
    org_id          uuid NOT NULL REFERENCES organizations (id),
    id              uuid NOT NULL,
    name            text NOT NULL,
    description     text NOT NULL DEFAULT '',
    archived_at     timestamptz,
    created_by      uuid NOT NULL REFERENCES users (id),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE lists (
    org_id          uuid NOT NULL,
    id              uuid NOT NULL,
    board_id        uuid NOT NULL,
    name            text NOT NULL,
    position        text COLLATE "C" NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT lists_board_fk FOREIGN KEY (org_id, board_id) REFERENCES boards (org_id, id) ON DELETE CASCADE,
    CONSTRAINT lists_board_id_key UNIQUE (org_id, board_id, id),
    CONSTRAINT lists_position_key UNIQUE (org_id, board_id, position)
);

CREATE TABLE tasks (
    org_id          uuid NOT NULL,
    id              uuid NOT NULL,
    board_id        uuid NOT NULL,
    list_id         uuid NOT NULL,
    title           text NOT NULL,
    description     text NOT NULL DEFAULT '',
    status          text NOT NULL CHECK (status IN ('todo', 'in_progress', 'done')),
    -- 0 low, 1 medium, 2 high, 3 urgent: stored as its rank so that sorting
    -- by priority is an index scan (the API speaks the names).
    priority        smallint NOT NULL CHECK (priority BETWEEN 0 AND 3),
    position        text COLLATE "C" NOT NULL,
    due_date        timestamptz,
    created_by      uuid NOT NULL REFERENCES users (id),
    completed_at    timestamptz,
    version         bigint NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
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
    org_id          uuid NOT NULL,
    task_id         uuid NOT NULL,
    user_id         uuid NOT NULL,
    PRIMARY KEY (org_id, task_id, user_id),
    CONSTRAINT task_assignees_task_fk FOREIGN KEY (org_id, task_id) REFERENCES tasks (org_id, id) ON DELETE CASCADE,
    -- Only members can be assigned; leaving the organization unassigns.
    CONSTRAINT task_assignees_member_fk FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX task_assignees_user_idx ON task_assignees (org_id, user_id, task_id);

CREATE TABLE labels (
    org_id          uuid NOT NULL REFERENCES organizations (id),
    id              uuid NOT NULL,
    name            text NOT NULL,
    name_norm       text NOT NULL,
    color           text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    CONSTRAINT labels_name_key UNIQUE (org_id, name_norm)
);

CREATE TABLE task_labels (
    org_id          uuid NOT NULL,
    task_id         uuid NOT NULL,
    label_id        uuid NOT NULL,
    PRIMARY KEY (org_id, task_id, label_id),
    CONSTRAINT task_labels_task_fk FOREIGN KEY (org_id, task_id) REFERENCES tasks (org_id, id) ON DELETE CASCADE,
    CONSTRAINT task_labels_label_fk FOREIGN KEY (org_id, label_id) REFERENCES labels (org_id, id) ON DELETE CASCADE
);
CREATE INDEX task_labels_label_idx ON task_labels (org_id, label_id, task_id);

CREATE TABLE comments (
    org_id          uuid NOT NULL,
    id              uuid NOT NULL,
    task_id         uuid NOT NULL,
    author_id       uuid NOT NULL REFERENCES users (id),
    body            text NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    edited_at       timestamptz,
    PRIMARY KEY (org_id, id),
    CONSTRAINT comments_task_fk FOREIGN KEY (org_id, task_id) REFERENCES tasks (org_id, id) ON DELETE CASCADE
);
CREATE INDEX comments_task_idx ON comments (org_id, task_id, id);

-- Idempotency keys are the caller's own (not a tenant's): scoped by user,
-- bound to the method, path and body they were first used with.
CREATE TABLE idempotency_keys (
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key             text NOT NULL,
    request_hash    bytea NOT NULL,
    status          integer,
    response        text,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

ALTER TABLE boards ENABLE ROW LEVEL SECURITY;
ALTER TABLE boards FORCE ROW LEVEL SECURITY;
ALTER TABLE lists ENABLE ROW LEVEL SECURITY;
ALTER TABLE lists FORCE ROW LEVEL SECURITY;
ALTER TABLE tasks ENABLE ROW LEVEL SECURITY;
ALTER TABLE tasks FORCE ROW LEVEL SECURITY;
ALTER TABLE task_assignees ENABLE ROW LEVEL SECURITY;
ALTER TABLE task_assignees FORCE ROW LEVEL SECURITY;
ALTER TABLE labels ENABLE ROW LEVEL SECURITY;
ALTER TABLE labels FORCE ROW LEVEL SECURITY;
ALTER TABLE task_labels ENABLE ROW LEVEL SECURITY;
ALTER TABLE task_labels FORCE ROW LEVEL SECURITY;
ALTER TABLE comments ENABLE ROW LEVEL SECURITY;
ALTER TABLE comments FORCE ROW LEVEL SECURITY;

CREATE POLICY boards_tenant ON boards
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY lists_tenant ON lists
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY tasks_tenant ON tasks
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY task_assignees_tenant ON task_assignees
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY labels_tenant ON labels
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY task_labels_tenant ON task_labels
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY comments_tenant ON comments
    USING (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (org_id = NULLIF(current_setting('app.org_id', true), '')::uuid);

GRANT SELECT, INSERT, UPDATE, DELETE ON boards, lists, tasks, task_assignees, labels,
    task_labels, comments, idempotency_keys TO orgboard_app;
