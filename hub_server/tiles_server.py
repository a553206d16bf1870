"""The hub's log read-only over HTTPS, by C2SP tlog-tiles (renkei.tlog.tiles_http).

Anybody may read the checkpoint and the hash tiles: they reveal nothing but
salted hashes. Entry bundles hold every party's entries, so only the parties
named in ``[log] entry_readers`` (the oversight body) may read them, by a
client certificate of the deployment's CAs naming one of them in its URI SAN.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence

from aiohttp import web
from cryptography import x509

from hub_server.checkpoints import Checkpointer
from hub_server.log_tree import TreeReader
from renkei import https_tls
from renkei.errors import Unauthenticated
from renkei.pki import TlsFiles, Trust, identity_of_uri, identity_of_uris
from renkei.tlog.tiles_http import tiles_app


class HubTileSource:
    """The newest published checkpoint and the tree under it, from the hub's store."""

    def __init__(self, reader: TreeReader, checkpoints: Checkpointer) -> None:
        self._reader = reader
        self._checkpoints = checkpoints

    async def checkpoint(self) -> bytes:
        published = self._checkpoints.published
        return b"" if published is None else published[1]

    async def tree_size(self) -> int:
        published = self._checkpoints.published
        return 0 if published is None else published[0]

    async def hash_tile(self, level: int, index: int, width: int) -> bytes:
        return await asyncio.to_thread(self._reader.hash_tile, level, index, width)

    async def entries(self, start: int, count: int) -> list[bytes]:
        return await asyncio.to_thread(self._reader.entry_range, start, count)


def entry_readers(
    readers: Sequence[str], trust: Trust | None = None
) -> Callable[[web.Request], bool]:
    """``may_read_entries``: the client's verified certificate names one of ``readers``, and
    (with ``trust``, as served) the CA of that party's kind issued it and has not revoked
    it: the check LogService.GetEntries gets from the interceptor (renkei.pki.Trust)."""
    allowed = frozenset(who for who in map(identity_of_uri, readers) if who is not None)

    def may_read(request: web.Request) -> bool:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return False
        try:
            sans = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            )
        except (ValueError, x509.ExtensionNotFound):
            return False
        who = identity_of_uris(sans.value.get_values_for_type(x509.UniformResourceIdentifier))
        if who is None or who not in allowed:
            return False
        if trust is None:
            return True
        try:
            return trust.check(ssl.DER_cert_to_PEM_cert(der).encode("ascii"), who) == who
        except Unauthenticated:  # revoked
            return False

    return may_read


async def start_tiles_server(
    listen: str,
    tls: TlsFiles | None,
    reader: TreeReader,
    checkpoints: Checkpointer,
    readers: Sequence[str],
) -> tuple[web.AppRunner, int]:
    """Serves on ``listen`` (host:port; port 0 picks one); the runner and the bound port."""
    trust = tls.trust() if tls is not None else None
    may_read = entry_readers(readers, trust)
    app = tiles_app(HubTileSource(reader, checkpoints), may_read_entries=may_read)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = listen.rpartition(":")
    site = web.TCPSite(
        runner,
        host or "127.0.0.1",
        int(port),
        ssl_context=https_tls.server_context(tls) if tls is not None else None,
    )
    await site.start()
    server = site._server  # aiohttp exposes the bound port only here
    sockets = getattr(server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1]) if sockets else int(port)
