"""Reading a refusal exactly as the caller receives it: status code, ErrorInfo."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_status import rpc_status

from renkei.errors import DOMAIN, error_info


@dataclass(frozen=True)
class Refusal:
    code: grpc.StatusCode
    reason: str | None
    metadata: dict[str, str]
    message: str


def refusal_of(err: grpc.RpcError) -> Refusal:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    info = error_info(status) if status is not None else None
    if info is not None:
        assert info.domain == DOMAIN
    return Refusal(
        err.code(),  # type: ignore[attr-defined]
        info.reason if info else None,
        dict(info.metadata) if info else {},
        err.details() or "",  # type: ignore[attr-defined]
    )


async def refused(call: Awaitable[Any]) -> Refusal:
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return refusal_of(err)
    raise AssertionError("the call was not refused")
