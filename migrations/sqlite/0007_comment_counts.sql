-- Cards show how many comments a task has (SPEC §10). The count is kept on
-- the task row, changed in the same transaction as the comment, so board
-- views and task pages read it without counting per row; it is not a change
-- of the task (its version stays).
ALTER TABLE tasks ADD COLUMN comment_count INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET comment_count =
    (SELECT COUNT(*) FROM comments c WHERE c.org_id = tasks.org_id AND c.task_id = tasks.id);
