"""Client channels to renkei servers: mutual TLS unless development says otherwise."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from renkei.limits import MAX_MESSAGE_BYTES
from renkei.logs import CORRELATION_HEADER, correlation_id
from renkei.pki import TlsFiles

_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
]


def channel(
    target: str,
    tls: TlsFiles | None,
    *,
    insecure_development: bool = False,
    options: Sequence[tuple[str, int]] = (),
) -> grpc.aio.Channel:
    """A channel to ``target``; ``options`` are grpc channel arguments added to the usual."""
    all_options = [*_OPTIONS, *options]
    if tls is not None:
        return grpc.aio.secure_channel(target, tls.channel_credentials(), options=all_options)
    if not insecure_development:
        raise ValueError(
            f"no TLS files for {target}; a plaintext channel needs the insecure development flag"
        )
    return grpc.aio.insecure_channel(target, options=all_options)


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current correlation id to the next hop."""
    cid = correlation_id.get()
    return ((CORRELATION_HEADER, cid),) if cid else ()
