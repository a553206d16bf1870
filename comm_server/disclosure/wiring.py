"""The disclosure room as the communication server's bootstrap starts it."""

from __future__ import annotations

from collections.abc import Callable

from comm_server.config import CommConfig
from comm_server.disclosure.service import Answerer, PeerLookup
from comm_server.disclosure.servicer import DisclosureServicer
from comm_server.disclosure.store import DisclosureStore
from comm_server.store import AsyncCommStore
from renkei.comm.v1 import disclosure_pb2, disclosure_pb2_grpc

# For health and reflection.
SERVICE_NAME = disclosure_pb2.DESCRIPTOR.services_by_name["DisclosureService"].full_name


def disclosure_service(
    config: CommConfig, store: AsyncCommStore, peer: PeerLookup
) -> Callable[[object], None]:
    """What adds DisclosureService to a server; ``peer`` finds and checks the recipient's
    exchange certificate (the requester side's ``Requester.peer``)."""
    answerer = Answerer(
        agency_id=config.agency_id,
        store=DisclosureStore(store.store),
        approval=config.disclosure.approval,
        peer=peer,
        run=store.run,
        default_timeout=config.query_timeout_seconds,
    )
    servicer = DisclosureServicer(answerer)

    def add(server: object) -> None:
        disclosure_pb2_grpc.add_DisclosureServiceServicer_to_server(servicer, server)  # type: ignore[arg-type]

    return add
