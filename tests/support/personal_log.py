"""A person's slice of a real hub log for the portal's tests: entries, tree, checkpoint.

``PersonLog`` keeps a Merkle tree of real entries (renkei.tlog.entry), signs
checkpoints with a test hub key and cosigns them with a test witness, and
answers ``ListPersonalEntriesResponse`` pages as the hub would: the person's
leaves newest first, each with its inclusion proof. ``FakePersonalLog`` is the
portal's ``PersonalLog`` over it, with a scripted RequestDetails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf import timestamp_pb2

from portal.history import HistoryVerifier
from renkei.errors import NotFound
from renkei.hub.v1 import personal_pb2
from renkei.tlog import merkle, note
from renkei.tlog.checkpoint import CheckpointSigner, CosignatureSigner, cosign
from renkei.tlog.entry import EXCHANGE, FETCH, OUTCOME, Entry

ORIGIN = "hub.renkei.example/log"
WITNESS = "witness.renkei.example"
NOW = 1_780_000_000
T0 = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)  # 09:30 JST
NAMES = {"A-TAX": "横浜市 税務課", "B-PENSION": "日本年金機構", "C-WELFARE": "川崎市 福祉課"}
LEGAL_TEXT = {"二十七": "地方税法による地方税の賦課徴収に関する事務"}


def _ts(at: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(at)
    return t


@dataclass
class Leaf:
    person: str
    serial: int
    entry: Entry
    deferral: personal_pb2.Deferral | None = None


@dataclass
class PersonLog:
    hub: note.Ed25519Signer = field(default_factory=lambda: note.Ed25519Signer.generate(ORIGIN))
    witness: CosignatureSigner = field(
        default_factory=lambda: CosignatureSigner(
            WITNESS, ed25519.Ed25519PrivateKey.generate(), lambda: NOW
        )
    )
    leaves: list[Leaf] = field(default_factory=list)
    checkpoint_size: int | None = None  # None: all leaves
    tamper: Callable[[personal_pb2.PersonalEntry], None] | None = None

    def verifier(self, quorum: int = 1) -> HistoryVerifier:
        return HistoryVerifier(self.hub.verifier(), [self.witness.verifier()], quorum)

    def exchange(
        self,
        person: str,
        serial: int,
        *,
        requester: str = "A-TAX",
        provider: str = "B-PENSION",
        at: datetime | None = None,
        outcome: str = "OK",
        reason: str = "",
        info_kind: str = "年金給付関係情報",
        item: str = "二十七",
        fetch: bool = False,
    ) -> None:
        """An exchange's two (or three) leaves: the exchange as it began, then its outcome."""
        at = at or T0 + timedelta(minutes=serial)
        self._add(
            person,
            Entry(
                kind=EXCHANGE,
                logged_at=at,
                salt=bytes([serial % 256]) * 16,
                legal_basis_item=item,
                info_kind=info_kind,
                policy_version="2026-04",
                person=person,
                outcome="PENDING",
                serial=serial,
                requester=requester,
                provider=provider,
            ),
        )
        self._add(
            person,
            Entry(
                kind=OUTCOME,
                logged_at=at + timedelta(seconds=1),
                salt=bytes([(serial + 1) % 256]) * 16,
                outcome=outcome,
                reason=reason,
                serial=serial,
                requester=requester,
                provider=provider,
            ),
        )
        if fetch:
            self._add(
                person,
                Entry(
                    kind=FETCH,
                    logged_at=at + timedelta(seconds=2),
                    salt=bytes([(serial + 2) % 256]) * 16,
                    outcome="OK",
                    serial=serial,
                    requester=requester,
                    provider=provider,
                ),
            )

    def defer(self, serial: int, until: datetime, reason: str, agency: str = "A-TAX") -> None:
        for leaf in self.leaves:
            if leaf.serial == serial:
                leaf.deferral = personal_pb2.Deferral(
                    agency_id=agency, until=_ts(until), legal_reason=reason
                )

    def _add(self, person: str, entry: Entry) -> None:
        self.leaves.append(Leaf(person, entry.serial, entry))

    def signed_checkpoint(self) -> tuple[int, bytes]:
        size = len(self.leaves) if self.checkpoint_size is None else self.checkpoint_size
        hashes = [leaf.entry.leaf_hash() for leaf in self.leaves]
        signed = CheckpointSigner(self.hub, ORIGIN).sign(size, merkle.root(hashes[:size]))
        return size, cosign(signed, self.hub.verifier(), self.witness)

    def list(
        self, request: personal_pb2.ListPersonalEntriesRequest
    ) -> personal_pb2.ListPersonalEntriesResponse:
        size, signed = self.signed_checkpoint()
        hashes = [leaf.entry.leaf_hash() for leaf in self.leaves]
        start = (
            request.start_time.ToDatetime(tzinfo=UTC) if request.HasField("start_time") else None
        )
        end = request.end_time.ToDatetime(tzinfo=UTC) if request.HasField("end_time") else None
        mine = []
        for index, leaf in enumerate(self.leaves):
            e = leaf.entry
            if leaf.person != request.link_code:
                continue
            if request.agency_id and request.agency_id not in (e.requester, e.provider):
                continue
            first = next(x.entry for x in self.leaves if x.serial == leaf.serial)
            if (start and first.logged_at < start) or (end and first.logged_at >= end):
                continue
            mine.append((index, leaf))
        mine.sort(key=lambda p: (-p[1].serial, p[0]))
        offset = int(request.page_token or "0")
        page_size = request.page_size or 100
        chunk = mine[offset : offset + page_size]
        response = personal_pb2.ListPersonalEntriesResponse(checkpoint=signed)
        for index, leaf in chunk:
            pe = personal_pb2.PersonalEntry(
                serial=leaf.serial,
                leaf_index=index,
                leaf_hash=hashes[index],
                inclusion_proof=merkle.inclusion_proof(hashes, index, size) if index < size else [],
            )
            if leaf.deferral is not None:
                pe.deferral.CopyFrom(leaf.deferral)
            else:
                pe.entry = leaf.entry.encode()
                pe.legal_basis_text = LEGAL_TEXT.get(leaf.entry.legal_basis_item, "")
                pe.requester_name = NAMES.get(leaf.entry.requester, "")
                pe.provider_name = NAMES.get(leaf.entry.provider, "")
            if self.tamper is not None:
                self.tamper(pe)
            response.entries.append(pe)
        if offset + page_size < len(mine):
            response.next_page_token = str(offset + page_size)
        return response


@dataclass
class FakePersonalLog:
    """The portal's PersonalLog over a PersonLog; RequestDetails answers from ``answers``."""

    log: PersonLog
    answers: list[personal_pb2.RequestDetailsResponse] = field(default_factory=list)
    details_calls: list[personal_pb2.RequestDetailsRequest] = field(default_factory=list)
    list_calls: list[personal_pb2.ListPersonalEntriesRequest] = field(default_factory=list)

    async def list_entries(
        self, request: personal_pb2.ListPersonalEntriesRequest
    ) -> personal_pb2.ListPersonalEntriesResponse:
        self.list_calls.append(request)
        return self.log.list(request)

    async def request_details(
        self, request: personal_pb2.RequestDetailsRequest
    ) -> personal_pb2.RequestDetailsResponse:
        self.details_calls.append(request)
        if not any(
            leaf.person == request.link_code and leaf.serial == request.serial
            for leaf in self.log.leaves
        ):
            raise NotFound("EXCHANGE_NOT_FOUND", "no such exchange of this person")
        if len(self.answers) > 1:
            return self.answers.pop(0)
        return self.answers[0]
