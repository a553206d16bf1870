"""Connections a communication server's own jobs open with its certificate (bind, rekey, follow)."""

from __future__ import annotations

import grpc

from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from renkei.grpcutil.client import channel


def hub_client(config: CommConfig) -> HubClient:
    return HubClient(
        config.hub_endpoint, config.tls, insecure_development=config.insecure_development
    )


# The registry's binding service presents the registry's certificate.
REGISTRY_PARTY = "service:registry"


def registry_channel(config: CommConfig) -> grpc.aio.Channel:
    """The resident registry's binding service; ValueError if the config names none."""
    if not config.registry_endpoint:
        raise ValueError("the comm config sets no registry_endpoint")
    return channel(
        config.registry_endpoint,
        config.tls,
        peer=REGISTRY_PARTY,
        insecure_development=config.insecure_development,
    )
