"""``renkei.registry.v1.ResidentDirectoryService``: which resident codes exist, nothing more.

The numbering agency issues a Number only for a resident code the register
knows (R8). It asks here instead of reading the register's tables: the
answer is the subset of the codes it sent that are in use now, so it learns
nothing it did not already hold (no four facts, no other codes, no count).

Callers are the parties the registry's ``[authorize] directory`` list names,
by default only ``service:numbering``; the hub may never be named.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from renkei.errors import PermissionDenied, invalid_field
from renkei.grpcutil.caller import callers, label, require_caller
from renkei.limits import MAX_RESIDENT_CODES_CHECK
from renkei.registry.v1 import resident_directory_pb2 as pb
from renkei.registry.v1 import resident_directory_pb2_grpc as pb_grpc
from renkei.residents import ResidentSource

Context = grpc.aio.ServicerContext[Any, Any]

NUMBERING = "service:numbering"
DEFAULT_DIRECTORY_CALLERS: frozenset[str] = frozenset({NUMBERING})
RESIDENT_CODE_DIGITS = 11


def directory_callers(value: tuple[str, ...] | None, where: str) -> frozenset[str]:
    """The ``[authorize] directory`` list, checked; the default when absent."""
    if value is None:
        return DEFAULT_DIRECTORY_CALLERS
    return callers(
        value,
        where,
        hub_never="the hub may never call the resident directory "
        "(it holds ID codes, and must learn nothing of resident codes)",
    )


def _check(codes: list[str]) -> None:
    if len(codes) > MAX_RESIDENT_CODES_CHECK:
        raise invalid_field(
            "resident_codes",
            f"{len(codes)} resident codes; at most {MAX_RESIDENT_CODES_CHECK} a call",
        )
    for code in codes:
        # isascii first: str.isdigit accepts other scripts' digits.
        if len(code) != RESIDENT_CODE_DIGITS or not code.isascii() or not code.isdigit():
            raise invalid_field("resident_codes", "each must be 11 ASCII digits")


class ResidentDirectoryServicer(pb_grpc.ResidentDirectoryServiceServicer):
    def __init__(self, source: ResidentSource, allowed: frozenset[str]) -> None:
        self._source = source
        self._allowed = allowed

    async def CheckResidentCodes(  # gRPC method names are PascalCase
        self, request: pb.CheckResidentCodesRequest, context: Context
    ) -> pb.CheckResidentCodesResponse:
        caller = label(require_caller("the resident directory"))
        if caller not in self._allowed:
            raise PermissionDenied(
                "CALLER_NOT_AUTHORIZED",
                f"{caller} may not ask the resident directory",
                {"caller": caller, "operation": "directory"},
            )
        codes = list(request.resident_codes)
        _check(codes)
        if not codes:
            return pb.CheckResidentCodesResponse()
        found = await asyncio.to_thread(self._source.lookup, codes)
        return pb.CheckResidentCodesResponse(existing_resident_codes=sorted(found))
