"""A person's own history in the hub's log, for the portal (R23, R26; issue 15).

The portal names the person by its own link code; the hub turns it into the
person's keys (``person_key`` and every alias from ID-key rotations) and
returns the leaves of the verifiable log that belong to the person's
exchanges, newest first, each with its inclusion proof against the latest
witnessed checkpoint. Only the portal is served (``[portal] agency_id``).

An exchange an agency has deferred (hub_server/deferral.py) is shown as a leaf
hash with its proof and the deferral, nothing more: the person learns that it
exists and when it will be shown.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hub_server.directory import Agency, check_agency_id
from hub_server.linkage import Hub
from hub_server.personal_store import Application, Deferral, Exchange, PageQuery, PersonLeaf
from hub_server.policy import TablePolicy
from hub_server.policy_versions import PolicySet
from renkei import validate
from renkei.errors import FailedPrecondition, PermissionDenied, Unavailable, invalid_field
from renkei.tlog import merkle

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A details application is an exchange of its own kind (RequestDetails): its item and its text.
DISCLOSURE_INFO_KIND = "情報提供等記録開示"
DISCLOSURE_ITEM = "番号法第23条"
DISCLOSURE_AFFAIR = "情報提供等の記録の本人への開示"
_TOKEN_PREFIX = "p1."


class PersonalStore(Protocol):
    """hub_server.personal_store.SqlPersonalStore; blocking calls, run off the event loop."""

    def person_keys(self, person_key: str) -> frozenset[str]: ...
    def exchange(self, serial: int) -> Exchange | None: ...
    def page(self, query: PageQuery) -> list[PersonLeaf]: ...
    def defer(self, deferral: Deferral, now: datetime) -> None: ...
    def deferrals_in_force(self, serials: Sequence[int], now: datetime) -> dict[int, Deferral]: ...
    def application(self, application_id: str) -> Application | None: ...
    def add_application(self, application: Application) -> bool: ...


class ProofSource(Protocol):
    """hub_server.personal_store.SqlProofs."""

    def latest_witnessed(self) -> tuple[int, str] | None:
        """(size, note) of the newest witnessed checkpoint."""
        ...

    def inclusion_proofs(self, indices: Sequence[int], size: int) -> dict[int, list[bytes]]:
        """A proof for each index below ``size``."""
        ...


@dataclass(frozen=True, slots=True)
class PersonalEntry:
    serial: int
    leaf_index: int
    entry: bytes  # empty while deferred
    leaf_hash: bytes
    inclusion_proof: list[bytes]  # empty beyond the checkpoint
    legal_basis_text: str
    requester_name: str
    provider_name: str
    deferral: Deferral | None


@dataclass(frozen=True, slots=True)
class PersonalPage:
    entries: list[PersonalEntry]
    checkpoint: bytes
    next_page_token: str


@dataclass(frozen=True, slots=True)
class ListQuery:
    link_code: str
    start: datetime | None = None
    end: datetime | None = None
    agency_id: str = ""
    page_size: int = 0
    page_token: str = ""


@dataclass(frozen=True, slots=True)
class Person:
    id_code: bytes
    person_key: str
    keys: frozenset[str]


def encode_token(serial: int, leaf_index: int) -> str:
    raw = f"{serial}.{leaf_index}".encode("ascii")
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_token(token: str) -> tuple[int, int]:
    """(serial, leaf index) after which the next page starts; INVALID_FIELD page_token."""
    bad = invalid_field("page_token", "is not a token this hub gave")
    if not token.startswith(_TOKEN_PREFIX) or not token.isascii() or len(token) > 64:
        raise bad
    body = token.removeprefix(_TOKEN_PREFIX)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raise bad from None
    serial, sep, leaf = raw.partition(".")
    if not sep:
        raise bad
    # Within what the database's BIGINT holds: a forged position is refused, never a fault.
    problem = "is not a token this hub gave"
    return (
        validate.digits("page_token", serial, problem=problem),
        validate.digits("page_token", leaf, problem=problem),
    )


class PersonalLog:
    def __init__(
        self,
        hub: Hub,
        store: PersonalStore,
        proofs: ProofSource | None,
        *,
        portal_id: str,
        clock: Callable[[], datetime],
        names: Callable[[str], str | None] | None = None,
    ) -> None:
        self.hub = hub
        self.store = store
        self._proofs = proofs  # None: the hub keeps no verifiable log ([log] tree = false)
        self.portal_id = portal_id
        self._clock = clock
        self._names = names
        self._affairs: weakref.WeakKeyDictionary[TablePolicy, dict[str, str]] = (
            weakref.WeakKeyDictionary()
        )

    # -- who --------------------------------------------------------------------

    def portal(self, agency_id: str | None) -> Agency:
        """The caller, who must be the portal."""
        caller = self.hub.caller(agency_id)
        if caller.agency_id != self.portal_id:
            raise PermissionDenied(
                "CALLER_NOT_PORTAL",
                "only the portal may read persons' histories and apply for details",
                {"agency_id": caller.agency_id},
            )
        return caller

    async def person(self, link_code: str) -> Person:
        id_code = self.hub.id_code_of(self.portal_id, link_code)
        key = self.hub.person_key(id_code)
        return Person(id_code, key, await asyncio.to_thread(self.store.person_keys, key))

    def now(self) -> datetime:
        return self._clock()

    # -- the history ------------------------------------------------------------

    async def list_entries(self, caller: Agency, query: ListQuery) -> PersonalPage:
        if self._proofs is None:
            raise FailedPrecondition(
                "LOG_TREE_OFF", "this hub keeps no verifiable log ([log] tree = false)"
            )
        proofs = self._proofs
        if not 0 <= query.page_size <= MAX_PAGE_SIZE:
            raise invalid_field("page_size", f"must be 0 to {MAX_PAGE_SIZE}")
        size = query.page_size or DEFAULT_PAGE_SIZE
        before = decode_token(query.page_token) if query.page_token else None
        if query.agency_id:
            check_agency_id(query.agency_id, "agency_id")
        person = await self.person(query.link_code)
        witnessed = await asyncio.to_thread(proofs.latest_witnessed)
        if witnessed is None:
            raise Unavailable(
                "CHECKPOINT_NOT_YET_SIGNED", "no witness has cosigned a checkpoint of the log yet"
            )
        cp_size, note = witnessed
        leaves = await asyncio.to_thread(
            self.store.page,
            PageQuery(person.keys, before, query.start, query.end, query.agency_id, size),
        )
        more = len(leaves) > size
        leaves = leaves[:size]
        now = self._clock()
        deferred, proved = await asyncio.gather(
            asyncio.to_thread(
                self.store.deferrals_in_force, [leaf.exchange.serial for leaf in leaves], now
            ),
            asyncio.to_thread(
                proofs.inclusion_proofs, [leaf.leaf_index for leaf in leaves], cp_size
            ),
        )
        entries = [self._entry(leaf, proved, deferred.get(leaf.exchange.serial)) for leaf in leaves]
        token = encode_token(leaves[-1].exchange.serial, leaves[-1].leaf_index) if more else ""
        return PersonalPage(entries, note.encode("utf-8"), token)

    def _entry(
        self, leaf: PersonLeaf, proofs: dict[int, list[bytes]], deferral: Deferral | None
    ) -> PersonalEntry:
        x = leaf.exchange
        shown = deferral is None
        return PersonalEntry(
            serial=x.serial,
            leaf_index=leaf.leaf_index,
            entry=leaf.entry if shown else b"",
            leaf_hash=merkle.leaf_hash(leaf.entry),
            inclusion_proof=proofs.get(leaf.leaf_index, []),
            legal_basis_text=self.legal_basis_text(x.legal_basis_item, x.logged_at)
            if shown
            else "",
            requester_name=self.name(x.requester) if shown else "",
            provider_name=self.name(x.provider) if shown else "",
            deferral=deferral,
        )

    def name(self, agency_id: str) -> str:
        """The agency's display name: the directory's, else the registry's, else its id."""
        if agency_id in self.hub.directory:
            return self.hub.directory.get(agency_id).display_name
        found = self._names(agency_id) if self._names is not None else None
        return found or agency_id

    def legal_basis_text(self, item: str, at: datetime) -> str:
        """The affair (事務) of the item in the policy version in force at ``at``."""
        if item == DISCLOSURE_ITEM:
            return DISCLOSURE_AFFAIR
        policy = self.hub.policy
        table: TablePolicy | None = None
        if isinstance(policy, PolicySet):
            version = policy.in_force(at)
            table = version.table if version is not None else None
        elif isinstance(policy, TablePolicy):
            table = policy
        if table is None:
            return ""
        affairs = self._affairs.get(table)
        if affairs is None:
            affairs = self._affairs[table] = {i.item: i.affair for i in table.items()}
        return affairs.get(item, "")


def registry_names() -> Callable[[str], str | None]:
    """Display names from the Annex agency registry, loaded on first use."""
    loaded: dict[str, str] = {}

    def name(agency_id: str) -> str | None:
        if not loaded:
            from hub_server.agencies import (
                AgencyRegistry,
            )  # only for agencies gone from the directory

            loaded.update((a.agency_id, a.display_name) for a in AgencyRegistry.load())
        return loaded.get(agency_id)

    return name
