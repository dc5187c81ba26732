"""Schemathesis hooks for .ci/api-contract.sh (loaded with SCHEMATHESIS_HOOKS).

Each one removes a way generated data is well-formed by the schema yet can
never be right, because the value has to come from the server. They touch
only values the document calls valid; invalid ones still reach the server,
so the negative checks keep exercising these parameters. `before_call` runs
before every request of every phase (coverage included), and schemathesis
re-classifies the case after it.
"""

import re
import uuid

import schemathesis

CURSOR_MAX = 8192  # src/http/page.rs MAX_CURSOR_LEN
IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    # A cursor is an opaque, signed `next_cursor` from a previous page: a
    # made-up one is correctly `400 invalid_cursor` (tests/api/http.rs covers
    # forged and transplanted cursors).
    query = case.query
    if query and isinstance(query.get("cursor"), str) and len(query["cursor"]) <= CURSOR_MAX:
        del query["cursor"]
    # The same Idempotency-Key with another body is correctly `422
    # idempotency_key_reused`; generation repeats keys across bodies, so each
    # valid key is made unique (replays are covered by tests/api/http.rs and the
    # generated-client flow). Only in positive cases: editing the headers of
    # a negative one (such as "Authorization left out") would lose what it
    # tests, and a negative case may be rejected for any reason anyway.
    meta = getattr(case, "meta", None)
    positive = meta is not None and meta.generation.mode.is_positive
    headers = case.headers
    if headers and positive:
        for name in list(headers):
            value = headers[name]
            if name.lower() == "idempotency-key" and isinstance(value, str) and IDEMPOTENCY_KEY.match(value):
                headers[name] = f"st-{uuid.uuid4()}"
