"""How a provide call's queries arrive and its answers leave: per person, or as one message.

The one place where a single call and a bulk call differ on the provider's
side. A single call (``PerPerson``) carries its person's query sealed alone
and is answered with one sealed answer bound to its serial; a refusal of its
person is the call's status, and a batch legacy system may answer it later
(a ticket). A bulk call (``OneMessage``) carries one sealed message of
``item_count`` queries and is answered with one message bound to every
(index, serial) answered; each person's refusal is an error of its own.
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Protocol

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from comm_server.provider.types import ProvideCall, Provided
from comm_server.seal_info import answer_info, query_info
from renkei import bulk, exchange_cert, sealing
from renkei.bulk import ItemError
from renkei.comm.v1 import comm_pb2
from renkei.errors import (
    InvalidArgument,
    RenkeiError,
    ResourceExhausted,
    Unavailable,
    invalid_field,
)
from renkei.limits import MAX_BULK_ANSWER_BYTES, MAX_BULK_ITEMS
from renkei.logs import event

_log = logging.getLogger("comm_server.bulk")

Errors = list[RenkeiError | None]


class Sealed(NamedTuple):
    """Answers sealed to the requester, and this provider's signature over them."""

    answer: bytes
    signature: bytes


def seal_single(
    payload: bytes,
    serial: int,
    requester: str,
    provider: str,
    kind: str,
    item: str,
    recipient: x25519.X25519PublicKey,
    signer: ed25519.Ed25519PrivateKey,
) -> Sealed:
    """One person's answer, sealed to the requester under its serial and signed: as
    Provide answers it, and as Collect answers it later."""
    sealed = sealing.seal(payload, recipient, answer_info(serial, requester, provider, kind, item))
    return Sealed(
        sealed,
        signer.sign(exchange_cert.answer_context(serial, requester, provider, kind, item, sealed)),
    )


class Envelope(Protocol):
    ceiling: float
    """The longest this server waits for its legacy system, whatever the hub's deadline."""

    def check(self, call: ProvideCall) -> None:
        """The call's shape, before anything is looked up."""
        ...

    def refuse(self, k: int, err: RenkeiError, errors: Errors) -> None:
        """Person ``k`` is refused: its error, or the call's refusal (raised)."""
        ...

    def failed(self, k: int, serial: int, err: BaseException, errors: Errors) -> None:
        """Person ``k``'s lookup failed with something not a ``RenkeiError`` (a bug)."""
        ...

    def refused(self, call: ProvideCall, err: RenkeiError) -> None:
        """The call is refused whole with ``err`` (it is logged for every person)."""
        ...

    def open_queries(
        self, call: ProvideCall, agency_id: str, key: x25519.X25519PrivateKey
    ) -> tuple[bytes, list[bytes]]:
        """(the requester's nonce, the queries by index)."""
        ...

    def seal(
        self,
        call: ProvideCall,
        agency_id: str,
        nonce: bytes,
        payloads: list[bytes],
        errors: Errors,
        recipient: x25519.X25519PublicKey,
        signer: ed25519.Ed25519PrivateKey,
    ) -> Sealed:
        """The answers of the persons not refused, sealed to the requester, and this
        provider's signature over them (empty when nothing was sealed)."""
        ...

    def provided(
        self, call: ProvideCall, sealed: Sealed, errors: Errors, late: int
    ) -> Provided: ...


class PerPerson:
    """A single call: one person, its query and answer sealed alone, its refusal a status."""

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling

    def check(self, call: ProvideCall) -> None:
        pass  # one person, by construction

    def refuse(self, k: int, err: RenkeiError, errors: Errors) -> None:
        raise err

    def failed(self, k: int, serial: int, err: BaseException, errors: Errors) -> None:
        raise err  # as any bug in the call: INTERNAL, logged by the RPC layer

    def refused(self, call: ProvideCall, err: RenkeiError) -> None:
        err.metadata.setdefault("serial", str(call.serial))  # the hub logs it under it

    def open_queries(
        self, call: ProvideCall, agency_id: str, key: x25519.X25519PrivateKey
    ) -> tuple[bytes, list[bytes]]:
        if not call.sealed_queries:
            return b"", [b""]
        query = sealing.open_sealed(
            call.sealed_queries,
            key,
            query_info(call.requester_agency_id, agency_id, call.info_kind, call.legal_basis_item),
            field="sealed_query",
        )
        return b"", [query]

    def seal(
        self,
        call: ProvideCall,
        agency_id: str,
        nonce: bytes,
        payloads: list[bytes],
        errors: Errors,
        recipient: x25519.X25519PublicKey,
        signer: ed25519.Ed25519PrivateKey,
    ) -> Sealed:
        return seal_single(
            payloads[0],
            call.serial,
            call.requester_agency_id,
            agency_id,
            call.info_kind,
            call.legal_basis_item,
            recipient,
            signer,
        )

    def provided(self, call: ProvideCall, sealed: Sealed, errors: Errors, late: int) -> Provided:
        return Provided(sealed.answer, answer_signature=sealed.signature)


class OneMessage:
    """A bulk call: one sealed message of queries in, one of answers out, errors per person."""

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling

    def check(self, call: ProvideCall) -> None:
        if not 0 < call.item_count <= MAX_BULK_ITEMS:
            raise invalid_field("item_count", f"is {call.item_count}; 1 to {MAX_BULK_ITEMS}")
        bulk.check_count("items", len(call.items))
        seen: set[int] = set()
        for item in call.items:
            if item.index >= call.item_count or item.index in seen:
                raise invalid_field("items", f"index {item.index} is out of range or repeated")
            seen.add(item.index)

    def refuse(self, k: int, err: RenkeiError, errors: Errors) -> None:
        errors[k] = err

    def failed(self, k: int, serial: int, err: BaseException, errors: Errors) -> None:
        event(_log, "bulk lookup failed", serial=serial, error=repr(err))
        errors[k] = Unavailable("LEGACY_UNAVAILABLE", "the legacy lookup failed")

    def refused(self, call: ProvideCall, err: RenkeiError) -> None:
        pass  # the hub knows every person's serial

    def open_queries(
        self, call: ProvideCall, agency_id: str, key: x25519.X25519PrivateKey
    ) -> tuple[bytes, list[bytes]]:
        plaintext = sealing.open_sealed(
            call.sealed_queries,
            key,
            bulk.query_info(
                call.requester_agency_id,
                agency_id,
                call.info_kind,
                call.legal_basis_item,
                call.item_count,
            ),
            field="sealed_queries",
        )
        try:
            payload = comm_pb2.BulkQueryPayload.FromString(plaintext)
        except Exception:  # the requester sealed something that is not a BulkQueryPayload
            payload = None
        if (
            payload is None
            or len(payload.queries) != call.item_count
            or len(payload.nonce) != bulk.NONCE_BYTES
        ):
            raise InvalidArgument(
                "SEALED_PAYLOAD_INVALID",
                f"sealed_queries does not hold a nonce and {call.item_count} queries",
                {"field": "sealed_queries"},
            )
        return payload.nonce, [bytes(query) for query in payload.queries]

    def seal(
        self,
        call: ProvideCall,
        agency_id: str,
        nonce: bytes,
        payloads: list[bytes],
        errors: Errors,
        recipient: x25519.X25519PublicKey,
        signer: ed25519.Ed25519PrivateKey,
    ) -> Sealed:
        answers = comm_pb2.BulkAnswerPayload()
        size = 0
        full = ResourceExhausted(
            "BULK_ANSWER_TOO_LARGE",
            f"the answers passed {MAX_BULK_ANSWER_BYTES} bytes; ask for this person again",
        )
        answered: list[tuple[int, int]] = []
        for k, item in sorted(enumerate(call.items), key=lambda pair: pair[1].index):
            if errors[k] is not None:
                continue
            size += len(payloads[k]) + 16
            if size > MAX_BULK_ANSWER_BYTES:
                errors[k] = full
                continue
            answers.answers.add(index=item.index, serial=item.serial, answer=payloads[k])
            answered.append((item.index, item.serial))
        if not answered:
            return Sealed(b"", b"")
        requester, kind, basis = call.requester_agency_id, call.info_kind, call.legal_basis_item
        sealed = sealing.seal(
            answers.SerializeToString(),
            recipient,
            bulk.answer_info(requester, agency_id, kind, basis, nonce, answered),
        )
        return Sealed(
            sealed,
            signer.sign(
                exchange_cert.bulk_answer_context(
                    answered, requester, agency_id, kind, basis, sealed
                )
            ),
        )

    def provided(self, call: ProvideCall, sealed: Sealed, errors: Errors, late: int) -> Provided:
        if late:
            event(_log, "bulk lookups past the deadline", late=late, persons=len(call.items))
        return Provided(
            sealed.answer,
            answer_signature=sealed.signature,
            results=[
                (item.serial, None if (e := errors[k]) is None else ItemError.of(e))
                for k, item in enumerate(call.items)
            ],
        )
