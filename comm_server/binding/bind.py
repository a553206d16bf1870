"""Binding an agency's records to its link codes (R13, R15), the simple way.

The ID issuer seals each person's ID code to the hub for this agency; the hub
turns it into this agency's link code; the correspondence table keeps it.
The agency never sees an ID code. (Four-fact matching replaces how the sealed
ID codes are chosen, not this path.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from comm_server.clients import hub_client
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.store import AsyncCommStore, open_store
from renkei import limits, validate


@dataclass(frozen=True)
class BindOutcome:
    local_person_id: str
    key_version: int
    newly_bound: bool


async def bind(
    store: AsyncCommStore,
    hub: HubClient,
    local_person_id: str,
    sealed_id_code: bytes,
    *,
    timeout: float = 5.0,
) -> BindOutcome:
    validate.text("local_person_id", local_person_id, max_chars=limits.MAX_ID)
    link_code, version, id_version = await hub.issue_link_code(sealed_id_code, timeout=timeout)
    fresh = await store.run(
        store.store.bind, local_person_id, link_code, version, datetime.now(UTC), id_version
    )
    return BindOutcome(local_person_id, version, fresh)


async def bind_all(
    config: CommConfig, items: Iterable[tuple[str, bytes]], *, timeout: float = 5.0
) -> list[BindOutcome]:
    """Bind many records with this agency's own store and certificate (``renkei comm bind``)."""
    store = open_store(config)
    hub = hub_client(config)
    try:
        return [await bind(store, hub, local, sealed, timeout=timeout) for local, sealed in items]
    finally:
        await hub.close()
        store.close()
