"""Where the calls go and with which certificate: from a deployment folder or explicit paths.

A deployment folder (``renkei deploy init``) gives each endpoint (the
``listen`` of hub.toml, agencies/<id>/comm.toml, numbering/numbering.toml)
and each caller's certificate (pki/agencies/<id>.pem, pki/services/<name>.pem).
``--endpoint`` overrides addresses; ``--ca/--cert/--key`` make every call use
one certificate.
"""

from __future__ import annotations

import ipaddress
import socket
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from ops.deploy import Layout
from ops.load.targets import HUB_ENDPOINT, NUMBERING_ENDPOINT
from renkei.grpcutil.client import peer_options
from renkei.limits import MAX_MESSAGE_BYTES
from renkei.pki import TlsFiles

SERVICE_PREFIX = "service:"


class EndpointError(ValueError):
    pass


@dataclass(frozen=True)
class Connection:
    """Everything a worker needs to open one caller's channels (picklable)."""

    caller: str
    address: str
    tls: TlsFiles
    # The party the server must be (its certificate names it): hub, service:numbering, agency:<id>.
    peer: str = "hub"


def caller_tls(layout: Layout, caller: str) -> TlsFiles:
    if caller.startswith(SERVICE_PREFIX):
        return layout.pki.service(caller.removeprefix(SERVICE_PREFIX))
    return layout.pki.agency(caller.removeprefix("agency:"))


def _listen(config: Path, table: str) -> str:
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
        listen = str(data[table]["listen"])
    except (OSError, KeyError, tomllib.TOMLDecodeError) as err:
        raise EndpointError(f"{config}: no [{table}] listen ({err})") from None
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", "[::]", "::", ""):
        host = "127.0.0.1"  # a wildcard listen is reached on loopback from here
    if port in ("", "0"):
        raise EndpointError(
            f"{config}: listen {listen!r} has no fixed port; give --endpoint NAME=HOST:PORT"
        )
    return f"{host}:{port}"


def endpoint_peer(endpoint: str) -> str:
    """The party serving ``endpoint`` (``hub``, ``numbering`` or an agency id)."""
    if endpoint == HUB_ENDPOINT:
        return "hub"
    if endpoint == NUMBERING_ENDPOINT:
        return "service:numbering"
    return f"agency:{endpoint}"


def deployment_address(layout: Layout, endpoint: str) -> str:
    if endpoint == HUB_ENDPOINT:
        return _listen(layout.hub_config, "hub")
    if endpoint == NUMBERING_ENDPOINT:
        return _listen(layout.numbering_config, "numbering")
    return _listen(layout.comm_config(endpoint), "comm")


def parse_overrides(values: Sequence[str]) -> dict[str, str]:
    """``NAME=HOST:PORT`` (NAME: hub, numbering or an agency id), or ``HOST:PORT`` for all."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, address = value.partition("=")
        if not sep:
            name, address = "*", value
        if ":" not in address:
            raise EndpointError(f"--endpoint {value!r}: expected [NAME=]HOST:PORT")
        out[name] = address
    return out


def connections(
    callers: Sequence[str],
    endpoint_of: Mapping[str, str],
    *,
    deployment: Path | None,
    overrides: Mapping[str, str],
    explicit_tls: TlsFiles | None,
) -> list[Connection]:
    layout = Layout(deployment) if deployment is not None else None
    out = []
    for caller in callers:
        endpoint = endpoint_of[caller]
        address = overrides.get(endpoint) or overrides.get("*")
        if address is None:
            if layout is None:
                raise EndpointError(f"no address for {endpoint}: give --deployment or --endpoint")
            address = deployment_address(layout, endpoint)
        if explicit_tls is not None:
            tls = explicit_tls
        elif layout is not None:
            tls = caller_tls(layout, caller)
        else:
            raise EndpointError("no certificate: give --deployment or --ca, --cert and --key")
        for path in (tls.ca_cert, tls.cert, tls.key):
            if not path.is_file():
                raise EndpointError(f"{caller}: no such file {path}")
        out.append(Connection(caller, address, tls, endpoint_peer(endpoint)))
    return out


def host_of(address: str) -> str:
    host = address.rpartition(":")[0]
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback(address: str) -> bool:
    """Whether every address the host resolves to is a loopback address."""
    host = host_of(address)
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def open_channel(connection: Connection) -> grpc.aio.Channel:
    # A local subchannel pool per channel: channels with equal arguments would share one
    # connection otherwise, and "several channels" would be one.
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.use_local_subchannel_pool", 1),
        *peer_options(connection.peer),
    ]
    return grpc.aio.secure_channel(
        connection.address, connection.tls.channel_credentials(), options=options
    )
