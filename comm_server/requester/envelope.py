"""How a requester's batch travels to the hub and back: per person, or as one message.

The one place where a single query and a bulk query differ on the requester's
side. A single query (``PerPerson``) is sealed to the provider as its own
HPKE message and relayed with ``Relay``; a refusal of its one person is the
RPC's status. A bulk query (``OneMessage``) is sealed as one message for all
persons sent, relayed with ``BulkRelay``, and its answers come back as one
message bound to every (index, serial); each person's refusal is an
``ItemError`` of its own, and the hub's serials of a request refused whole
travel in the error's ``serials`` metadata.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from comm_server.hub_client import BulkRelayAnswer
from comm_server.keys import OwnKeys
from comm_server.log_receipts import LogReceipt, from_refusal
from comm_server.ports import Hub
from comm_server.requester.types import LocalQuery
from comm_server.seal_info import answer_info, query_info
from renkei import bulk, exchange_cert, limits, sealing
from renkei.bulk import ItemError
from renkei.comm.v1 import comm_pb2
from renkei.errors import NotFound, RenkeiError, Unavailable, invalid_field
from renkei.exchange_cert import VerifiedPeer
from renkei.limits import MAX_BULK_SEALED_QUERIES
from renkei.logs import event

_log = logging.getLogger("comm_server.requester")


@dataclass(slots=True)
class Outcomes:
    """Per person, in request order: the hub's serial, the opened answer, or an error."""

    serials: list[int]
    answers: list[bytes]
    errors: list[ItemError | None]
    # By request position: the hub's log receipts for that person's exchange, unchecked.
    receipts: dict[int, Sequence[LogReceipt]] = field(default_factory=dict)


class Relayed(NamedTuple):
    legal_basis_item: str
    policy_version: str
    ticket: str = ""  # a single query's answer comes later


class Envelope(Protocol):
    ceiling: float
    """The longest this server waits for the hub, whatever the caller's deadline."""

    def check(self, q: LocalQuery) -> None:
        """The field limits (InvalidArgument naming the field)."""
        ...

    def unbound(self, i: int, local_person_id: str, out: Outcomes) -> None:
        """Person ``i`` has no link code: its error, or the request's refusal."""
        ...

    async def relay(
        self,
        hub: Hub,
        agency_id: str,
        q: LocalQuery,
        sent: list[int],
        codes: dict[str, str],
        peer: VerifiedPeer,
        deadline: float,
        keys: OwnKeys,
        out: Outcomes,
    ) -> Relayed:
        """Seal the queries of persons ``sent`` to ``peer`` (the provider, its exchange
        certificate verified) and sign them, relay them by ``deadline`` (loop time), check
        the provider's signature on the answers, fill in ``out``."""
        ...

    def serials_of(self, err: RenkeiError, sent: list[int], out: Outcomes) -> None:
        """The hub's serials of a request refused whole, from the error, into ``out``."""
        ...

    def mark(self, err: RenkeiError, out: Outcomes) -> None:
        """What the refusal tells the agency's caller besides its status."""
        ...


def _deadline_left(deadline: float) -> float:
    return max(0.001, deadline - asyncio.get_running_loop().time())


class PerPerson:
    """A single query: one person, sealed alone, its refusal the RPC's status."""

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling

    def check(self, q: LocalQuery) -> None:
        person = q.persons[0]
        limits.check_person("", person.local_person_id, person.query)
        limits.check_requester_fields(
            provider_agency_id=q.provider_agency_id,
            info_kind=q.info_kind,
            legal_basis_item=q.legal_basis_item,
            purpose=q.purpose,
            staff_id=q.staff_id,
            terminal_id=q.terminal_id,
        )

    def unbound(self, i: int, local_person_id: str, out: Outcomes) -> None:
        raise NotFound(
            "LOCAL_PERSON_NOT_BOUND",
            f"local_person_id {local_person_id!r} has no link code in the correspondence table",
            {"field": "local_person_id"},
        )

    async def relay(
        self,
        hub: Hub,
        agency_id: str,
        q: LocalQuery,
        sent: list[int],
        codes: dict[str, str],
        peer: VerifiedPeer,
        deadline: float,
        keys: OwnKeys,
        out: Outcomes,
    ) -> Relayed:
        person = q.persons[0]
        provider, kind, item = q.provider_agency_id, q.info_kind, q.legal_basis_item
        sealed_query = sealing.seal(
            person.query, peer.sealing_key, query_info(agency_id, provider, kind, item)
        )
        answer = await hub.relay(
            provider_agency_id=provider,
            info_kind=kind,
            legal_basis_item=item,
            link_code=codes[person.local_person_id],
            sealed_query=sealed_query,
            query_signature=exchange_cert.sign(
                keys.signing,
                exchange_cert.query_context(agency_id, provider, kind, item, sealed_query),
            ),
            timeout=_deadline_left(deadline),
        )
        out.serials[0] = answer.serial
        out.receipts[0] = answer.log_receipts  # kept even if the answer is then refused
        if not answer.ticket:
            try:
                exchange_cert.check_signature(
                    peer,
                    answer.answer_signature,
                    exchange_cert.answer_context(
                        answer.serial, agency_id, provider, kind, item, answer.sealed_answer
                    ),
                    reason="ANSWER_SIGNATURE_INVALID",
                    field="answer_signature",
                )
                out.answers[0] = sealing.open_sealed(
                    answer.sealed_answer,
                    keys.sealing,
                    answer_info(
                        answer.serial,
                        agency_id,
                        q.provider_agency_id,
                        q.info_kind,
                        q.legal_basis_item,
                    ),
                    field="sealed_answer",
                )
            except RenkeiError as err:
                err.metadata.setdefault("serial", str(answer.serial))  # the hub numbered it
                raise
        return Relayed(answer.legal_basis_item, answer.policy_version, answer.ticket)

    def serials_of(self, err: RenkeiError, sent: list[int], out: Outcomes) -> None:
        # A refusal without one keeps the serial the hub's answer gave, if any.
        if serial := err.metadata.get("serial"):
            out.serials[0] = int(serial)
            # The hub's refusal names the exchange's entry in its log (none for an outcome).
            if (receipt := from_refusal(err.metadata, out.serials[0])) is not None:
                out.receipts[0] = (receipt,)

    def mark(self, err: RenkeiError, out: Outcomes) -> None:
        pass  # the hub's refusal carries its serial already


class OneMessage:
    """A bulk query: all persons sent in one sealed message each way, errors per person."""

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling

    def check(self, q: LocalQuery) -> None:
        limits.check_requester_fields(
            provider_agency_id=q.provider_agency_id,
            info_kind=q.info_kind,
            legal_basis_item=q.legal_basis_item,
            purpose=q.purpose,
            staff_id=q.staff_id,
            terminal_id=q.terminal_id,
        )
        bulk.check_count("items", len(q.persons))
        total = 0
        for i, person in enumerate(q.persons):
            limits.check_person(f"items[{i}].", person.local_person_id, person.query)
            total += len(person.query) + 8
        if total > MAX_BULK_SEALED_QUERIES - 1024:
            raise invalid_field(
                "items", f"queries total {total} bytes; at most {MAX_BULK_SEALED_QUERIES - 1024}"
            )

    def unbound(self, i: int, local_person_id: str, out: Outcomes) -> None:
        out.errors[i] = ItemError(
            "NOT_FOUND",
            "LOCAL_PERSON_NOT_BOUND",
            f"items[{i}].local_person_id has no link code in the correspondence table",
        )

    async def relay(
        self,
        hub: Hub,
        agency_id: str,
        q: LocalQuery,
        sent: list[int],
        codes: dict[str, str],
        peer: VerifiedPeer,
        deadline: float,
        keys: OwnKeys,
        out: Outcomes,
    ) -> Relayed:
        persons = q.persons
        nonce = os.urandom(bulk.NONCE_BYTES)
        payload = comm_pb2.BulkQueryPayload(nonce=nonce, queries=[persons[i].query for i in sent])
        sealed = sealing.seal(
            payload.SerializeToString(),
            peer.sealing_key,
            bulk.query_info(
                agency_id, q.provider_agency_id, q.info_kind, q.legal_basis_item, len(sent)
            ),
        )
        answer = await hub.bulk_relay(
            provider_agency_id=q.provider_agency_id,
            info_kind=q.info_kind,
            legal_basis_item=q.legal_basis_item,
            link_codes=[codes[persons[i].local_person_id] for i in sent],
            sealed_queries=sealed,
            query_signature=exchange_cert.sign(
                keys.signing,
                exchange_cert.query_context(
                    agency_id, q.provider_agency_id, q.info_kind, q.legal_basis_item, sealed
                ),
            ),
            timeout=_deadline_left(deadline),
        )
        if len(answer.results) != len(sent):
            raise Unavailable(
                "BULK_RESULTS_MISMATCH",
                f"the hub answered {len(answer.results)} results for {len(sent)} persons",
            )
        serials, errors = out.serials, out.errors
        for i, (serial, error) in zip(sent, answer.results, strict=True):
            serials[i], errors[i] = serial, error
        if len(answer.log_receipts) == len(sent):
            out.receipts.update(zip(sent, answer.log_receipts, strict=True))
        elif answer.log_receipts:
            event(
                _log,
                "the hub's log receipts do not match its results; none are kept",
                logging.WARNING,
                receipts=len(answer.log_receipts),
                results=len(sent),
            )
        self._open(agency_id, q, sent, nonce, answer, peer, keys, out)
        return Relayed(answer.legal_basis_item, answer.policy_version)

    def _open(
        self,
        agency_id: str,
        q: LocalQuery,
        sent: list[int],
        nonce: bytes,
        answer: BulkRelayAnswer,
        peer: VerifiedPeer,
        keys: OwnKeys,
        out: Outcomes,
    ) -> None:
        """Fill in the answers the hub says were given, each checked against its serial,
        all of them against the provider's signature."""
        serials, errors = out.serials, out.errors
        answered = [(h, serials[i]) for h, i in enumerate(sent) if errors[i] is None]
        if not answered:
            return
        sealed_answers = answer.sealed_answers
        try:
            exchange_cert.check_signature(
                peer,
                answer.answer_signature,
                exchange_cert.bulk_answer_context(
                    answered,
                    agency_id,
                    q.provider_agency_id,
                    q.info_kind,
                    q.legal_basis_item,
                    sealed_answers,
                ),
                reason="ANSWER_SIGNATURE_INVALID",
                field="answer_signature",
            )
            plaintext = sealing.open_sealed(
                sealed_answers,
                keys.sealing,
                bulk.answer_info(
                    agency_id,
                    q.provider_agency_id,
                    q.info_kind,
                    q.legal_basis_item,
                    nonce,
                    answered,
                ),
                field="sealed_answers",
            )
            payload = comm_pb2.BulkAnswerPayload.FromString(plaintext)
        except RenkeiError as err:
            for h, _ in answered:
                errors[sent[h]] = ItemError.of(err)
            return
        by_index = {a.index: a for a in payload.answers}
        for h, serial in answered:
            i = sent[h]
            got = by_index.get(h)
            if got is None or got.serial != serial:
                errors[i] = ItemError(
                    "INVALID_ARGUMENT",
                    "SEALED_PAYLOAD_INVALID",
                    f"the sealed answers hold no answer for items[{i}] under serial {serial}",
                )
            else:
                out.answers[i] = got.answer

    def serials_of(self, err: RenkeiError, sent: list[int], out: Outcomes) -> None:
        try:
            hub_serials = bulk.parse_serials(err.metadata.get("serials", ""))
        except RenkeiError:  # a hub bug: log the persons without serials rather than not at all
            hub_serials = []
        if len(hub_serials) == len(sent):
            for i, serial in zip(sent, hub_serials, strict=True):
                out.serials[i] = serial

    def mark(self, err: RenkeiError, out: Outcomes) -> None:
        err.metadata["serials"] = bulk.format_serials(out.serials)
