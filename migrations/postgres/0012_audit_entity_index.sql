-- The audit log's entity index keyed by the entity id alone.
--
-- Why: (org_id, entity_type, entity_id, id) served `entity_id` only with
-- its `entity_type`; `entity_id` alone — the history of one task, say —
-- read the whole log backwards to that entity's rows. An entity id is the
-- UUID of one entity of one type, so (org_id, entity_id, id) serves the id
-- with or without its type, in the page's order, with a shorter entry and
-- as many entries per audited write as before. (`entity_type` alone still
-- reads the primary key backwards, skipping other types' rows: an index of
-- its own would cost every audited write one more entry — measured 4–9 %
-- slower SQLite writes, BENCHMARKS.md.)

DROP INDEX audit_log_entity_idx;
CREATE INDEX audit_log_entity_idx ON audit_log (org_id, entity_id, id);
