"""The benchmark's baseline: HubService.Relay doing nothing but the hops.

    python -m ops.bench.bare_relay --config HUB.toml --provider ID --link-code CODE
        [--port-file PATH]

Same process shape, same mutual TLS (the hub's own certificate, so providers
accept it), same channel to the provider as the hub. What it leaves out is
exactly the hub's work: no approval, no link-code translation (every call
carries one provider link code computed in advance), no log rows and no
serial (always 0). Every call goes to the one provider it was started for,
whatever the request names. Never deploy it: it forwards for anyone with a certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from hub_server.config import HubConfig
from hub_server.directory import Directory
from renkei import logs
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.grpcutil.caller import caller_agency
from renkei.grpcutil.client import channel
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.hub.v1 import hub_pb2
from renkei.runner import serve_until_signalled

SERVICE_NAME = hub_pb2.DESCRIPTOR.services_by_name["HubService"].full_name


class BareRelay:
    def __init__(
        self,
        directory: Directory,
        link_code: str,
        stub: comm_pb2_grpc.ProviderServiceAsyncStub,
    ) -> None:
        self._directory = directory
        self._link_code = link_code
        self._stub = stub

    async def relay(
        self, request: hub_pb2.RelayRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> hub_pb2.RelayResponse:
        # The requester still comes from its certificate: the provider seals the
        # answer to that agency's key, so without it the answer could not open.
        agency_id = caller_agency()
        if agency_id is None or agency_id not in self._directory:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "an agency certificate is needed")
            raise AssertionError("unreachable: abort raises")
        requester = self._directory.get(agency_id)
        try:
            response = await self._stub.Provide(
                comm_pb2.ProvideRequest(
                    serial=0,
                    requester_agency_id=requester.agency_id,
                    info_kind=request.info_kind,
                    legal_basis_item=request.legal_basis_item,
                    link_code=self._link_code,
                    sealed_query=request.sealed_query,
                    requester_sealing_public_key=requester.sealing_public_key,
                    requester_exchange_certificate=requester.exchange_certificate,
                    query_signature=request.query_signature,
                ),
                timeout=context.time_remaining(),
            )
        except grpc.aio.AioRpcError as err:
            await context.abort(err.code(), err.details() or "")
            raise AssertionError("unreachable: abort raises") from None
        return hub_pb2.RelayResponse(
            serial=0,
            sealed_answer=response.sealed_answer,
            answer_signature=response.answer_signature,
        )


@dataclass
class BareRelayServer:
    handle: ServerHandle
    grace: float

    @property
    def port(self) -> int:
        return self.handle.port

    async def stop(self, grace: float | None = None) -> None:
        await self.handle.stop(self.grace if grace is None else grace)


async def create_server(config: HubConfig, provider_id: str, link_code: str) -> BareRelayServer:
    directory = Directory.load(config.directory_path)
    provider = directory.get(provider_id, field="provider")
    to_provider = channel(
        provider.endpoint,
        config.tls,
        peer=f"agency:{provider.agency_id}",
        insecure_development=config.insecure_development,
    )
    stub: comm_pb2_grpc.ProviderServiceAsyncStub = comm_pb2_grpc.ProviderServiceStub(to_provider)
    relay = BareRelay(directory, link_code, stub)

    def register(server: grpc.aio.Server) -> None:
        # A generic handler serves Relay alone; every other method is UNIMPLEMENTED.
        handler = grpc.unary_unary_rpc_method_handler(
            relay.relay,
            request_deserializer=hub_pb2.RelayRequest.FromString,
            response_serializer=hub_pb2.RelayResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE_NAME, {"Relay": handler}),)
        )

    handle = await start_server(
        name="bare-relay",
        bind="127.0.0.1:0",  # never the hub's port: both run side by side
        tls=config.tls,
        register=register,
        services=[SERVICE_NAME],
        insecure_development=config.insecure_development,
    )
    return BareRelayServer(handle, config.shutdown_grace_seconds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench.bare_relay", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the hub's hub.toml")
    parser.add_argument("--provider", required=True, help="agency id every call goes to")
    parser.add_argument("--link-code", required=True, help="the provider's link code to send")
    parser.add_argument("--port-file", type=Path, help="write the bound port here when serving")
    args = parser.parse_args(argv)
    config = HubConfig.load(args.config)
    logs.configure("bare-relay", config.log_level)
    asyncio.run(
        serve_until_signalled(
            lambda: create_server(config, args.provider, args.link_code), args.port_file
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
