-- migrations/postgres/0010 adds the function a PostgreSQL write unit
-- enters an organization with (src/db/unit.rs). SQLite has one writer and
-- no row-level security: nothing to add.
SELECT 1;
