"""The aiohttp plumbing the SOAP and JSON-over-HTTP clients share."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Final

import aiohttp

from comm_server.mapping.documents import MAX_DOCUMENT_BYTES
from renkei.logs import event

from . import common

MAX_BODY: Final = MAX_DOCUMENT_BYTES
"""Longest answer body read, in bytes; a longer one is garbage (no parser would take it)."""


class HttpTransport:
    """One aiohttp session (its connection pool), made on first use inside the running loop."""

    def __init__(self, logger: logging.Logger, max_connections: int = 8) -> None:
        self._logger = logger
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise common.closed()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                auto_decompress=False,
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """(status, body); LEGACY_TIMEOUT or LEGACY_UNAVAILABLE when there is none."""
        session = self._open()
        try:
            async with asyncio.timeout(timeout):
                async with session.request(
                    method, url, data=data, headers=headers, params=params
                ) as response:
                    body = bytearray()
                    async for chunk in response.content.iter_any():
                        body += chunk
                        if len(body) > MAX_BODY:
                            raise common.garbage(bytes(body), f"answer over {MAX_BODY} bytes")
                    return response.status, bytes(body)
        except TimeoutError:
            raise common.timed_out(timeout) from None
        except (aiohttp.ClientError, OSError) as exc:
            event(
                self._logger,
                "legacy system unreachable",
                url=url,
                error=repr(exc),
                level=logging.WARNING,
            )
            if isinstance(exc, aiohttp.ClientConnectorError):
                message = "cannot connect to the legacy system"
            else:
                message = f"the legacy system dropped the request ({type(exc).__name__})"
            raise common.unavailable(message) from None

    async def aclose(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
