"""Schemathesis hooks for tests/contract/run.sh (loaded through SCHEMATHESIS_HOOKS).

Generated Idempotency-Key values repeat ("0", "00", …) across requests with different bodies,
which keygate rightly refuses as `idempotency_key_reused`; nearly every create then fails and
the stateful phase (create, then read and change by id) has nothing to follow. A valid key is
made unique per request by a suffix, so it stays valid; an invalid one is sent as generated.
"""

import itertools
import re

import schemathesis

_VALID = re.compile(r"^[\x20-\x7e]{1,255}$")
_serial = itertools.count(1)


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _VALID.match(key):
        headers["Idempotency-Key"] = f"{key[:200]}-contract-{next(_serial)}"
    return None
