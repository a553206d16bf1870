"""What the two HTTP stubs share: an aiohttp server on a chosen port, with fault injection."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from renkei.logs import event

from .stubkit import Faults

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTROL_PATH: Final = "/_control/faults"


class HttpStub:
    """An aiohttp application on ``host:port`` whose data routes honour ``faults``.

    ``POST /_control/faults`` with a JSON object sets the faults (never faulted
    itself) and answers the faults now in force; ``GET`` reads them.
    """

    def __init__(
        self,
        logger: logging.Logger,
        faults: Faults | None,
        garbage: bytes,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.logger = logger
        self.faults = faults if faults is not None else Faults()
        self.garbage = garbage
        self.host, self._requested_port = host, port
        self.app = web.Application(middlewares=[self._faulty])
        self.app.router.add_post(CONTROL_PATH, self._set_faults)
        self.app.router.add_get(CONTROL_PATH, self._get_faults)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port, shutdown_timeout=1.0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        event(self.logger, "listening", host=self.host, port=self.port)
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _faulty(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == CONTROL_PATH:
            return await handler(request)
        delay_ms, drop, garbage = self.faults.delay_ms, self.faults.drop, self.faults.garbage
        await request.read()  # now, while the client still waits (it is cached for the handler)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if drop:
            event(self.logger, "fault: dropping connection", path=request.path)
            request.protocol.force_close()
            if request.transport is not None:
                request.transport.abort()
            return web.Response()  # never sent: the connection is gone
        if garbage:
            event(self.logger, "fault: answering garbage", path=request.path)
            return web.Response(body=self.garbage, content_type="application/octet-stream")
        return await handler(request)

    async def _set_faults(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("faults must be a JSON object")
            self.faults.update(body)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            return web.json_response({"error": "bad_request", "message": str(exc)}, status=400)
        event(self.logger, "faults set", **self.faults.as_json())
        return web.json_response(self.faults.as_json())

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.as_json())
