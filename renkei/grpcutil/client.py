"""Client channels to renkei servers: mutual TLS unless development says otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from renkei.limits import MAX_MESSAGE_BYTES
from renkei.logs import CORRELATION_HEADER, correlation_id
from renkei.pki import TlsFiles, party_host

_OPTIONS: list[tuple[str, int | str]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
]


def channel(
    target: str,
    tls: TlsFiles | None,
    *,
    peer: str | None = None,
    insecure_development: bool = False,
    options: Sequence[tuple[str, int | str]] = (),
) -> grpc.aio.Channel:
    """A channel to ``target``; ``options`` are grpc channel arguments added to the usual.

    ``peer`` (``"hub"``, ``"agency:<id>"``, ``"service:<name>"``) is the party the
    server must be: its certificate must carry that party's name (``party_host``),
    so a server at the address with another party's valid certificate is refused.
    It is required with ``tls``: certificates name no address, only their party.
    """
    all_options: list[tuple[str, int | str]] = [*_OPTIONS, *options]
    if tls is not None:
        if peer is None:
            raise ValueError(f"a TLS channel to {target} must name the party it expects (peer)")
        all_options.extend(peer_options(peer))
        return grpc.aio.secure_channel(target, tls.channel_credentials(), options=all_options)
    if not insecure_development:
        raise ValueError(
            f"no TLS files for {target}; a plaintext channel needs the insecure development flag"
        )
    return grpc.aio.insecure_channel(target, options=all_options)


def peer_options(peer: str) -> list[tuple[str, str]]:
    """The channel arguments that make a TLS channel accept only ``peer``'s certificate.

    For tools that build their own channel (``grpc.secure_channel``) instead of ``channel``.
    """
    return [("grpc.ssl_target_name_override", party_host(peer))]


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current correlation id to the next hop."""
    cid = correlation_id.get()
    return ((CORRELATION_HEADER, cid),) if cid else ()
