"""The hub's serials in a relay's initial metadata (hub_server.servicer sends, comm reads).

A refusal names its rows' serials in its ErrorInfo. A call that ends without
the hub's answer (the caller's deadline, a dropped connection) has none, so
the hub announces the serials as soon as the rows are durable, before it
asks the provider: the requester's share then carries the serial the hub's
share has, whatever ends the call.
"""

from __future__ import annotations

from collections.abc import Iterable

SERIALS_METADATA_PREFIX = "x-renkei-"
# "serial" for a single relay, "serials" (ranges, renkei.bulk) for a bulk one.
ANNOUNCED_KEYS = ("serial", "serials")
# Below gRPC's 8 KiB default for received metadata, with room for the rest; a
# bulk relay whose serials do not fit announces nothing (its answer still names them).
MAX_ANNOUNCED_BYTES = 4096


def announced(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """The serials the hub announced, by ErrorInfo metadata key ("serial" or "serials")."""
    found: dict[str, str] = {}
    for key, value in metadata or ():
        name = key.removeprefix(SERIALS_METADATA_PREFIX)
        if key.startswith(SERIALS_METADATA_PREFIX) and name in ANNOUNCED_KEYS:
            found[name] = value if isinstance(value, str) else value.decode("ascii", "replace")
    return found
