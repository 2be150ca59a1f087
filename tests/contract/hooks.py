"""Schemathesis hooks for tests/contract/run.sh (loaded through SCHEMATHESIS_HOOKS).

Generated Idempotency-Key values repeat ("0", "00", …) across requests with different bodies,
which keygate rightly refuses as `idempotency_key_reused`; nearly every create then fails and
the stateful phase (create, then read and change by id) has nothing to follow. A valid key is
made unique per request by a suffix, so it stays valid; an invalid one is sent as generated.

The management API can switch off what the run itself stands on: its key (PATCH, disable,
revoke, roll, a bulk disable or revoke), its user (PATCH, deactivate), its group (PATCH,
DELETE), the tenant's Public API and IP whitelist (PATCH /v1/settings). Every one of those
operations still runs, on everything else: a call naming the run's own key, user or group by id
names a record that does not exist instead (404), `publicApi: false` becomes true, and a
non-empty `ipWhitelist` gets loopback added. Each change keeps a valid case valid and an invalid
one invalid. POST /v1/keys/self/roll rolls the run's own key (once; a second roll is refused 409)
with an overlap of at least 1 hour, so that it keeps working for the rest of the run.
"""

import itertools
import os
import re

import schemathesis

_VALID = re.compile(r"^[\x20-\x7e]{1,255}$")
_serial = itertools.count(1)
_ABSENT = 999_999_999


def _protected():
    def read(name):
        value = os.environ.get(name)
        return int(value) if value and value.isdigit() else None

    return {
        "/v1/keys/": read("CONTRACT_KEY_ID"),
        "/v1/users/": read("CONTRACT_USER_ID"),
        "/v1/groups/": read("CONTRACT_GROUP_ID"),
    }


_PROTECTED = _protected()


def _idempotency(case):
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _VALID.match(key):
        headers["Idempotency-Key"] = f"{key[:200]}-contract-{next(_serial)}"


def _protect(case):
    path = case.operation.path
    method = case.method.upper()
    if method == "GET":
        return
    params = case.path_parameters or {}
    for prefix, own in _PROTECTED.items():
        if own is not None and path.startswith(prefix + "{id}") and params.get("id") == own:
            params["id"] = _ABSENT
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    if path == "/v1/keys/bulk" and body.get("action") in ("disable", "revoke") and isinstance(body.get("items"), list):
        for item in body["items"]:
            if isinstance(item, dict) and item.get("id") == _PROTECTED["/v1/keys/"]:
                item["id"] = _ABSENT
    if path == "/v1/settings":
        if body.get("publicApi") is False:
            body["publicApi"] = True
        whitelist = body.get("ipWhitelist")
        if isinstance(whitelist, list) and whitelist and "127.0.0.0/8" not in whitelist:
            whitelist.append("127.0.0.0/8")
    if path == "/v1/keys/self/roll" and body.get("overlapHours") == 0 and not isinstance(body["overlapHours"], bool):
        body["overlapHours"] = 1


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    _idempotency(case)
    _protect(case)
    return None
