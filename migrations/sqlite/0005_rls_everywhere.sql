-- The columns of migrations/postgres/0005 (SQLite has no row-level
-- security; every query filters by org_id): the organization a job or a
-- stored idempotent answer belongs to (NULL for instance-wide jobs).
ALTER TABLE jobs ADD COLUMN org_id BLOB;
ALTER TABLE idempotency_keys ADD COLUMN org_id BLOB;
