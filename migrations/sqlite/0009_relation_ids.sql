-- Assignee and label ids kept on the task row; see the PostgreSQL migration
-- of the same number for why and the form (32 lower-case hex digits,
-- sorted, comma-separated; '' for none).
ALTER TABLE tasks ADD COLUMN assignee_ids TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN label_ids TEXT NOT NULL DEFAULT '';
UPDATE tasks SET
    assignee_ids = COALESCE((SELECT group_concat(lower(hex(a.user_id)), ',' ORDER BY a.user_id)
                               FROM task_assignees a
                              WHERE a.org_id = tasks.org_id AND a.task_id = tasks.id), ''),
    label_ids = COALESCE((SELECT group_concat(lower(hex(l.label_id)), ',' ORDER BY l.label_id)
                            FROM task_labels l
                           WHERE l.org_id = tasks.org_id AND l.task_id = tasks.id), '');
