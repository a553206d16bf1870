"""`renkei portal rekey`: the portal's part of a key rotation at the hub (R11).

An agency re-keys its whole correspondence table; the portal keeps a link
code only for who signed in, and binds each card again at every sign-in. So
after a rotation it forgets the codes it kept (each person's next sign-in
binds under the hub's current keys) and tells the hub it is done
(``CompleteRekey``): its link-code key's new version becomes current, and an
ID-key rotation, which waits for every agency in the hub's directory, is not
held up by the portal. A session already open keeps its code; the old
version stays accepted for the rotation's window, far longer than a session.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from portal.config import PortalConfig
from portal.hub_client import HubClient
from portal.store import PortalStore
from renkei import db


@dataclass(frozen=True)
class Rekeyed:
    forgotten: int  # link codes no longer kept
    key_version: int  # the portal's current link-code key version at the hub
    may_promote: bool  # the hub's word: every agency has re-keyed (an ID-key rotation)


async def rekey(config: PortalConfig) -> Rekeyed:
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    hub = HubClient(
        config.hub_endpoint, config.tls, insecure_development=config.insecure_development
    )
    try:
        forgotten = await asyncio.to_thread(PortalStore(engine).forget_link_codes)
        done = await hub.complete_rekey()
    finally:
        await hub.close()
        engine.dispose()
    return Rekeyed(forgotten, done.current_key_version, done.may_promote)
