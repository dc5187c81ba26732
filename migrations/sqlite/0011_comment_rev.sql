-- Comments added to or removed from the task; see the PostgreSQL migration
-- of the same number (a card's order of changes is version + comment_rev).
ALTER TABLE tasks ADD COLUMN comment_rev INTEGER NOT NULL DEFAULT 0;
