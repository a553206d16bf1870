"""Many idle and slow connections to the hub's and a comm server's ports while real
traffic still gets answered: hundreds of bare TCP connections that never speak,
TLS connections that finish the handshake and then say nothing, and slowloris
clients that send the HTTP/2 preface one byte at a time."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator

from support.faults import CITY, Load, World, check

from renkei.pki import TlsFiles

IDLE_TCP, IDLE_TLS, SLOW = 300, 60, 40
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DRIP_SECONDS = 0.2


def client_context(files: TlsFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.load_cert_chain(str(files.cert), str(files.key))
    context.set_alpn_protocols(["h2"])
    context.check_hostname = False
    return context


class Flood:
    """The idle and slow connections, held open by a loop in a thread until closed."""

    def __init__(self, ports: list[int], files: TlsFiles) -> None:
        self.ports, self.context = ports, client_context(files)
        self.opened = 0
        self.ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Flood:
        self._thread.start()
        self._task = asyncio.run_coroutine_threadsafe(self._hold(), self._loop)
        assert self.ready.wait(60), "the connections did not open"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._task.cancel)
        with contextlib.suppress(BaseException):
            self._task.result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    async def _hold(self) -> None:
        writers: list[asyncio.StreamWriter] = []
        drips: list[asyncio.Task[None]] = []
        try:
            for port in self.ports:
                for _ in range(IDLE_TCP):
                    writers.append((await asyncio.open_connection("127.0.0.1", port))[1])
                for n in range(IDLE_TLS + SLOW):
                    _, writer = await asyncio.open_connection(
                        "127.0.0.1", port, ssl=self.context, server_hostname="localhost"
                    )
                    writers.append(writer)
                    if n >= IDLE_TLS:
                        drips.append(asyncio.create_task(self._drip(writer)))
            self.opened = len(writers)
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            for task in drips:
                task.cancel()
            for writer in writers:
                writer.transport.abort()

    async def _drip(self, writer: asyncio.StreamWriter) -> None:
        """Slowloris: the preface a byte at a time, then nothing more."""
        with contextlib.suppress(OSError):
            for byte in PREFACE:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(DRIP_SECONDS)


@contextlib.contextmanager
def flooded(world: World) -> Iterator[Flood]:
    ports = [world.port("hub"), world.port(f"comm-{CITY}")]
    with Flood(ports, world.layout.pki.agency(CITY)) as flood:
        yield flood


def test_idle_and_slow_connections_while_traffic_is_answered(world: World) -> None:
    with Load(world) as load:
        load.wait_calls(20)
        with flooded(world) as flood:
            assert flood.opened == 2 * (IDLE_TCP + IDLE_TLS + SLOW)
            before = len(load.answers)
            load.wait_calls(60)
            during = load.answers[before:]
            world.wait_answering()
        load.wait_calls(20)
    assert any(a.ok for a in during), "no call was answered OK while the connections were held"
    check(world, load)
