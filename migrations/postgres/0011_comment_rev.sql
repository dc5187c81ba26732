-- How many times a comment was added to or removed from the task. A task's
-- card changes with its version (every task write) and with its comment
-- count (comments, which leave the version alone); each change moves one
-- of the two by exactly one while holding the task row, so their sum
-- orders every change of a card in commit order. The board-view cache
-- patches a kept view with a comment's new count by that order, as it
-- does with a task's changes (src/cache/parts.rs): a late change never
-- undoes a newer one.
ALTER TABLE tasks ADD COLUMN comment_rev bigint NOT NULL DEFAULT 0;
