-- A write unit's way into an organization, sent with its BEGIN (see
-- src/db/unit.rs): for a member of the organization (by id, or else by
-- slug) it enters the tenant (app.org_id, transaction-local) and locks the
-- named lists and then tasks of that tenant FOR NO KEY UPDATE, in id
-- order; for anyone else it does nothing. It runs as its caller
-- (SECURITY INVOKER, the default), so row-level security applies to every
-- statement in it exactly as to the caller's own. PL/pgSQL keeps the plans
-- of its statements for the life of the connection: the same statements
-- sent as text in the BEGIN message were planned on every write.
CREATE FUNCTION orgboard_enter(
    p_org uuid,
    p_slug text,
    p_user uuid,
    p_lists uuid[],
    p_tasks uuid[]
) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    v_org uuid;
BEGIN
    IF p_org IS NOT NULL THEN
        SELECT o.id INTO v_org FROM organizations o
            JOIN memberships m ON m.org_id = o.id AND m.user_id = p_user
            WHERE o.id = p_org AND o.deleted_at IS NULL;
    ELSE
        SELECT o.id INTO v_org FROM organizations o
            JOIN memberships m ON m.org_id = o.id AND m.user_id = p_user
            WHERE o.slug = p_slug AND o.deleted_at IS NULL;
    END IF;
    IF v_org IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('app.org_id', v_org::text, true);
    IF cardinality(p_lists) > 0 THEN
        PERFORM 1 FROM lists WHERE org_id = v_org AND id = ANY (p_lists)
            ORDER BY id FOR NO KEY UPDATE;
    END IF;
    IF cardinality(p_tasks) > 0 THEN
        PERFORM 1 FROM tasks WHERE org_id = v_org AND id = ANY (p_tasks)
            ORDER BY id FOR NO KEY UPDATE;
    END IF;
END;
$$;

REVOKE ALL ON FUNCTION orgboard_enter(uuid, text, uuid, uuid[], uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION orgboard_enter(uuid, text, uuid, uuid[], uuid[]) TO orgboard_app;
