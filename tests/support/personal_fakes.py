"""The portal's side of the hub (issue 15) on the hub rig: a real log on a test database.

``portal_rig`` is ``hub_fakes.hub_rig`` with the portal in its directory (its own
link-code key, no classes, no endpoint), the hub's log on SQL with the tree,
the personal store beside it, a checkpoint key, and a scripted
DisclosureService in place of the agencies. Build it inside the event loop
that uses it, and ``close`` it there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from sqlalchemy.engine import Engine

from hub_server.deferral import DeferralDesk
from hub_server.details import DetailsDesk, DiscloseCall, Disclosed
from hub_server.directory import Agency, Directory
from hub_server.exchange import RelayRequest
from hub_server.log_store import AsyncHubLog, SqlHubLog
from hub_server.log_tree import TreeReader
from hub_server.personal import PersonalLog
from hub_server.personal_store import SqlPersonalStore, SqlProofs
from renkei import codes
from renkei.tlog import checkpoint, note
from support.hub_fakes import ITEM, PENSION, PENSION_INFO, HubRig, hub_rig

PORTAL = "portal"
ORIGIN = "log.test.renkei.internal"

# What the scripted agency does with one call: its answer, or an exception to raise.
DiscloseScript = Callable[[Agency, DiscloseCall], Disclosed | BaseException]


@dataclass
class FakeDisclosure:
    script: DiscloseScript = lambda agency, call: Disclosed("PENDING")
    asked: list[tuple[str, DiscloseCall, float]] = field(default_factory=list)

    async def disclose(self, agency: Agency, call: DiscloseCall, timeout: float) -> Disclosed:
        self.asked.append((agency.agency_id, call, timeout))
        got = self.script(agency, call)
        if isinstance(got, BaseException):
            raise got
        return got


@dataclass
class PortalRig:
    rig: HubRig
    repo: SqlHubLog
    log: AsyncHubLog
    store: SqlPersonalStore
    reader: TreeReader
    personal: PersonalLog
    desk: DetailsDesk
    deferrals: DeferralDesk
    disclosure: FakeDisclosure
    verifier: note.Verifier
    signer: checkpoint.CheckpointSigner

    @property
    def portal(self) -> Agency:
        return self.rig.hub.directory.get(PORTAL)

    def portal_code(self, n: int) -> str:
        return self.rig.hub.codec.encode(PORTAL, self.rig.person(n))

    async def exchange(self, n: int, requester: str | None = None) -> int:
        """A lawful single relay for person ``n`` (the city asks the pension service)."""
        rig = self.rig
        agency = rig.hub.directory.get(requester) if requester else rig.city
        code = rig.hub.codec.encode(agency.agency_id, rig.person(n))
        result = await rig.hub.relay(
            agency,
            RelayRequest(PENSION, PENSION_INFO, ITEM, (code,), b"q", single=True),
            5.0,
        )
        ((serial, _),) = result.results
        return serial

    async def witness(self, *, witnessed: bool = True) -> bytes:
        """A checkpoint of the tree as it is now, saved as the checkpointer would."""
        await self.log.flush()
        assert self.repo.tree is not None
        size, root = self.repo.tree.head
        signed = self.signer.sign(size, root)
        self.reader.save_checkpoint(size, signed.decode(), witnessed)
        return signed

    def close(self) -> None:
        self.log.close()


def portal_rig(engine: Engine) -> PortalRig:
    repo = SqlHubLog(engine)
    log = AsyncHubLog(repo)
    rig = hub_rig((log, repo.rows))
    hub = rig.hub
    sealing = x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()
    portal = Agency(PORTAL, "マイポータル", frozenset(), "", sealing)
    hub.directory = Directory([*hub.directory, portal])
    rig.keyring[PORTAL] = codes.AgencyKeys(1, {1: codes.new_key()})
    hub.codec = codes.LinkCodec(rig.keyring, rig.clock)
    store = SqlPersonalStore(engine)
    reader = TreeReader(engine)
    personal = PersonalLog(hub, store, SqlProofs(reader), portal_id=PORTAL, clock=rig.clock)
    disclosure = FakeDisclosure()
    desk = DetailsDesk(personal, log, disclosure, timer=rig.clock.monotonic)
    key = note.Ed25519Signer(ORIGIN, ed25519.Ed25519PrivateKey.generate())
    return PortalRig(
        rig,
        repo,
        log,
        store,
        reader,
        personal,
        desk,
        DeferralDesk(store, rig.clock),
        disclosure,
        key.verifier(),
        checkpoint.CheckpointSigner(key),
    )
