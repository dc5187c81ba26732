-- A card shows its assignees and labels (SPEC §5). Their ids are kept on
-- the task row too, written by the same statements that change the
-- relation tables (the task use cases; a label's deletion and a member's
-- removal take their id out of every task first), so the board view, the
-- filtered pages and a task's read take them with the row instead of two
-- subqueries per task, which were half of the board view's statement
-- (BENCHMARKS.md, issue 13). The relation tables stay: they keep the
-- references checked and serve the filters by assignee and label.
--
-- Form: the ids as 32 lower-case hex digits (no hyphens), sorted,
-- separated by commas; '' for none. Not a change of the task (its version
-- stays), as comment_count.
ALTER TABLE tasks ADD COLUMN assignee_ids text NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN label_ids text NOT NULL DEFAULT '';
UPDATE tasks SET
    assignee_ids = COALESCE((SELECT string_agg(replace(a.user_id::text, '-', ''), ',' ORDER BY a.user_id)
                               FROM task_assignees a
                              WHERE a.org_id = tasks.org_id AND a.task_id = tasks.id), ''),
    label_ids = COALESCE((SELECT string_agg(replace(l.label_id::text, '-', ''), ',' ORDER BY l.label_id)
                            FROM task_labels l
                           WHERE l.org_id = tasks.org_id AND l.task_id = tasks.id), '');
