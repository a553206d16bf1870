"""The registry's ResidentDirectoryService over a fixed set of codes, for numbering tests.

The real servicer (``registry_binding.directory``) on a real mTLS server with
the registry's certificate; only the register behind it is a set of codes.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator
from typing import Any

import grpc

from registry_binding.directory import DEFAULT_DIRECTORY_CALLERS, ResidentDirectoryServicer
from renkei.grpcutil.server import ServerHandle, start_server
from renkei.pki import TlsFiles
from renkei.registry.v1 import resident_directory_pb2, resident_directory_pb2_grpc
from renkei.residents import Change, Resident, ResidentHistory

SERVICE = resident_directory_pb2.DESCRIPTOR.services_by_name["ResidentDirectoryService"].full_name


class CodesOnly:
    """A ``ResidentSource`` that knows resident codes and nothing else (lookup only)."""

    def __init__(self, codes: Iterable[str], *, delay: float = 0.0) -> None:
        self.codes = set(codes)
        self.asked: list[list[str]] = []
        self.delay = delay  # seconds each lookup stalls (a slow register)

    def residents(self) -> Iterator[ResidentHistory]:
        return iter(())

    def lookup(self, resident_codes: Collection[str]) -> dict[str, Resident]:
        self.asked.append(list(resident_codes))
        time.sleep(self.delay)
        found: Any = {c: None for c in resident_codes if c in self.codes}
        return dict(found)

    def last_seq(self) -> int:
        return 0

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        return []

    def close(self) -> None:
        pass


async def start_directory(
    source: CodesOnly,
    tls: TlsFiles,
    allowed: frozenset[str] = DEFAULT_DIRECTORY_CALLERS,
) -> ServerHandle:
    servicer = ResidentDirectoryServicer(source, allowed)

    def register(server: grpc.aio.Server) -> None:
        resident_directory_pb2_grpc.add_ResidentDirectoryServiceServicer_to_server(servicer, server)

    return await start_server(
        name="registry", bind="127.0.0.1:0", tls=tls, register=register, services=[SERVICE]
    )
