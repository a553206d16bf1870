"""The witness over HTTPS (aiohttp): c2sp.org/tlog-witness add-checkpoint, and a health check.

    POST /add-checkpoint              the spec's request body; 200 with cosignature lines,
                                      or 400/403/404/409/422 with a reason (409: the size)
    GET  /<sha256 hex of origin>/checkpoint   the latest cosigned checkpoint (monitoring)
    GET  /healthz                     200 while serving, 503 once shutting down

Handlers are thin: the body is read through ``renkei.tlog.witness_protocol`` and
the decision is ``Witness.add_checkpoint``'s, run in a worker thread because the
store is synchronous. Stopping closes the listening socket first and gives the
requests in flight the grace period to finish.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from renkei import logs
from renkei.logs import event
from renkei.tlog import witness_protocol as wire
from witness.config import split_listen
from witness.witness import SizeConflict, Witness, WitnessError

_log = logging.getLogger("witness.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_TEXT = "text/plain"


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type=_TEXT)


class WitnessHttpServer:
    """The witness's HTTP(S) server on ``listen``; ``port`` is known after ``start``."""

    def __init__(
        self,
        witness: Witness,
        listen: str,
        *,
        ssl_context: ssl.SSLContext | None,
        shutdown_grace_seconds: float = 5.0,
    ) -> None:
        self.witness = witness
        self._host, self._requested_port = split_listen(listen)
        self._ssl = ssl_context
        self._grace = shutdown_grace_seconds
        self._stopping = False
        self.app = web.Application(
            middlewares=[self._logged], client_max_size=wire.MAX_REQUEST_BYTES
        )
        self.app.router.add_post(wire.ADD_CHECKPOINT_PATH, self._add_checkpoint)
        self.app.router.add_get("/healthz", self._healthz)
        self.app.router.add_get("/{origin_hash:[0-9a-f]{64}}/checkpoint", self._checkpoint)
        # The monitoring path names a log by the SHA-256 of its origin (tlog-witness).
        self._by_hash = {hashlib.sha256(o.encode()).hexdigest(): o for o in witness.origins}
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> int:
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=self._grace
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._requested_port, ssl_context=self._ssl)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the port bound, when 0 was asked for
        event(_log, "listening", host=self._host, port=self.port, tls=self._ssl is not None,
              logs=list(self.witness.origins))  # fmt: skip
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new connections, let requests in flight finish (within the grace period)."""
        self._stopping = True
        runner, self._runner = self._runner, None
        if runner is None:
            return
        if grace is not None:
            # aiohttp takes the timeout at construction only; serve_until_signalled passes none.
            runner._shutdown_timeout = grace
        event(_log, "stopping", grace_s=self._grace if grace is None else grace)
        await runner.cleanup()
        event(_log, "stopped")

    @web.middleware
    async def _logged(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        cid = request.headers.get(logs.CORRELATION_HEADER) or logs.new_correlation_id()
        token = logs.correlation_id.set(cid[:64])
        try:
            try:
                response = await handler(request)
            except web.HTTPException as exc:  # aiohttp's own: no route, 405, body too large
                response = _text(exc.status, exc.text or exc.reason)
                if "Allow" in exc.headers:
                    response.headers["Allow"] = exc.headers["Allow"]
            if request.path != "/healthz":
                event(_log, "request", method=request.method, path=request.path,
                      status=response.status, peer=request.remote)  # fmt: skip
            return response
        finally:
            logs.correlation_id.reset(token)

    async def _add_checkpoint(self, request: web.Request) -> web.Response:
        if self._stopping:
            return _text(503, "the witness is shutting down")
        try:
            parsed = wire.parse_request(await request.read())
        except wire.WireFormatError as err:
            return _text(400, f"malformed add-checkpoint body: {err}")
        try:
            lines = await asyncio.to_thread(
                self.witness.add_checkpoint, parsed.old_size, parsed.proof, parsed.checkpoint
            )
        except SizeConflict as err:
            event(_log, "size conflict", logging.INFO, known_size=err.known_size,
                  old_size=parsed.old_size, message=err.message)  # fmt: skip
            return web.Response(
                status=409, body=wire.format_size(err.known_size), content_type=wire.SIZE_MEDIA_TYPE
            )
        except WitnessError as err:
            event(_log, "checkpoint refused", logging.WARNING, status=err.status,
                  message=err.message)  # fmt: skip
            return _text(err.status, err.message)
        return web.Response(status=200, text=lines, content_type=_TEXT)

    async def _checkpoint(self, request: web.Request) -> web.Response:
        origin = self._by_hash.get(request.match_info["origin_hash"])
        latest = None if origin is None else await asyncio.to_thread(self.witness.latest, origin)
        if latest is None:
            return _text(404, "this witness has cosigned no checkpoint of a log with that hash")
        return web.Response(body=latest.checkpoint, content_type=_TEXT)

    async def _healthz(self, request: web.Request) -> web.Response:
        if self._stopping:
            return _text(503, "stopping")
        return _text(200, "serving")
