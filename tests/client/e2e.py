"""The management API through a client generated from docs/openapi.json (tests/client/run.sh).

    python3 e2e.py BASE_URL ADMIN_KEY

Only the generated package `keygate_client` talks to the server: a group, a programmatic user in
it, a key restricted to 127.0.0.0/8, a call of the data API with it, a roll, a disable (the old
and the new key refused), then the audit events of all of that, each once and in order, and a
poll from the last cursor that finds nothing new. Any surprise is an AssertionError.
"""

import sys
import time

from keygate_client import AuthenticatedClient
from keygate_client.api.management import (
    create_group,
    create_user,
    disable_key,
    issue_key,
    list_audit_events,
    roll_key,
)
from keygate_client.api.public_api import get_capability
from keygate_client.models import GroupCreate, KeyIssue, KeyRoll, UserCreate, UserCreateCategory

UNIT = 1


def ok(response, status):
    """The parsed body of `response`, after checking its status."""
    assert response.status_code == status, f"{response.status_code}: {response.content[:500]!r}"
    return response.parsed


def poll(client, after):
    """Every audit event after `after`, oldest first, two a page; and the last id seen."""
    events = []
    while True:
        page = ok(list_audit_events.sync_detailed(client=client, after=after, limit=2), 200)
        events.extend(page.items)
        if page.items:
            after = page.items[-1].id
        if page.next_cursor is None:
            return events, after
        assert len(events) <= 1000, "a poll that does not end"


def main(base, admin_key, settle_ms):
    admin = AuthenticatedClient(base_url=base, token=admin_key)
    settle = lambda: time.sleep(settle_ms / 1000)  # noqa: E731 (PostgreSQL serves settled events)

    settle()
    newest = ok(list_audit_events.sync_detailed(client=admin, limit=1), 200)
    start = newest.items[0].id

    group = ok(create_group.sync_detailed(client=admin, body=GroupCreate(name="Invoice export", grants=["documents:read:all"])), 201)
    user = ok(
        create_user.sync_detailed(
            client=admin,
            body=UserCreate(
                email="export@acme.example",
                name="Invoice export",
                category=UserCreateCategory.PROGRAMMATIC,
                groups=[group.name],
            ),
        ),
        201,
    )
    assert user.groups == ["Invoice export"], user
    issued = ok(
        issue_key.sync_detailed(client=admin, body=KeyIssue(user=user.id, purpose="invoice export", ip_ranges=["127.0.0.0/8"])),
        201,
    )
    assert issued.key.ip_ranges == ["127.0.0.0/8"] and issued.secret.startswith("kg_"), issued

    integration = AuthenticatedClient(base_url=base, token=issued.secret)
    capability = ok(get_capability.sync_detailed(UNIT, client=integration), 200)
    assert capability.user.email == "export@acme.example", capability
    assert "documents:read:all" in capability.permissions, capability

    rolled = ok(roll_key.sync_detailed(issued.key.id, client=admin, body=KeyRoll(overlap_hours=0)), 201)
    assert rolled.key.rolled_from == issued.key.id, rolled
    successor = AuthenticatedClient(base_url=base, token=rolled.secret)
    ok(get_capability.sync_detailed(UNIT, client=successor), 200)

    disabled = ok(disable_key.sync_detailed(rolled.key.id, client=admin), 200)
    assert str(disabled.status) == "disabled", disabled
    refused = get_capability.sync_detailed(UNIT, client=successor)
    assert refused.status_code == 401, refused
    assert str(refused.parsed.code) == "key_disabled", refused.parsed

    settle()
    events, last = poll(admin, start)
    trail = [(e.action, e.target) for e in events]
    for e in trail:
        print(f"[client] audit: {e[0]} {e[1]}")
    ids = [int(e.id) for e in events]
    assert ids == sorted(set(ids)), f"not strictly increasing: {ids}"
    expected = [
        "group.created",
        "user.created",
        "key.issued",
        "key.rolled",
        "key.disabled",
    ]
    assert [a for a, _ in trail] == expected, trail
    assert all(e.actor.kind == "key" for e in events), events
    assert trail[4][1] == f"key {rolled.key.id}", trail

    again, same = poll(admin, last)
    assert again == [] and same == last, again
    print(f"[client] PASS: {len(events)} audit events, each once and in order; a poll from {last} found nothing new")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
