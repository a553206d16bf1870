"""The witness's HTTPS server and the hub's client, in process, over TLS from the project's PKI,
on SQLite and PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.engine import Engine
from support.witness_log import ORIGIN, ToyLog, witness_signer

from ops.pki import PkiLayout, init_pki
from renkei import https_tls as tls
from renkei.pki import party_host
from renkei.tlog import checkpoint as cp
from renkei.tlog import witness_protocol as wire
from renkei.tlog.witness_client import (
    WitnessClient,
    WitnessConflict,
    WitnessRefused,
    WitnessUnavailable,
    client_context,
)
from witness.http import WitnessHttpServer
from witness.store import WitnessStore
from witness.witness import Accepted, Witness

WITNESS_HOST = party_host("service:witness")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiLayout:
    return init_pki(tmp_path_factory.mktemp("pki"), [], services=["witness", "registry"])


@dataclass
class Running:
    url: str
    server: WitnessHttpServer
    witness: Witness
    store: WitnessStore
    log: ToyLog
    signer: cp.CosignatureSigner
    pki: PkiLayout

    def client(self, **kwargs: Any) -> WitnessClient:
        options: dict[str, Any] = {"roots": self.pki.roots, "server_name": WITNESS_HOST}
        options.update(kwargs)
        return WitnessClient(self.url, **options)

    def cosigned(self, size: int, lines: bytes) -> cp.Checkpoint:
        signed = cp.add_cosignatures(self.log.checkpoint(size), lines.decode())
        return cp.verify_checkpoint(signed, self.log.verifier, [self.signer.verifier()])


@asynccontextmanager
async def running(
    engine: Engine, pki: PkiLayout, store: WitnessStore | None = None, **server: Any
) -> AsyncIterator[Running]:
    log, signer = ToyLog(), witness_signer()
    store = store or WitnessStore(engine)
    witness = Witness(store, signer, {log.origin: log.verifier})
    context = tls.server_context(pki.service("witness"))
    http = WitnessHttpServer(witness, "127.0.0.1:0", ssl_context=context, **server)
    port = await http.start()
    try:
        yield Running(f"https://127.0.0.1:{port}", http, witness, store, log, signer, pki)
    finally:
        await http.stop()


def test_checkpoints_are_cosigned_over_tls_as_the_tree_grows(
    engine: Engine, pki: PkiLayout
) -> None:
    async def scenario() -> None:
        async with running(engine, pki) as w, w.client() as client:
            old = 0
            for size in (3, 8, 8, 21, 40):
                lines = await client.add_checkpoint(
                    old, w.log.proof(old, size), w.log.checkpoint(size)
                )
                assert w.cosigned(size, lines).size == size
                old = size
            latest = w.store.latest(ORIGIN)
            assert latest is not None
            assert (latest.size, latest.root_hash) == (40, w.log.root(40))

    asyncio.run(scenario())


def test_a_conflict_tells_the_size_and_the_log_retries_from_it(
    engine: Engine, pki: PkiLayout
) -> None:
    async def scenario() -> None:
        async with running(engine, pki) as w, w.client() as client:
            await client.add_checkpoint(0, [], w.log.checkpoint(10))
            # The hub lost its state: it asks from 0 and learns the witness's size.
            with pytest.raises(WitnessConflict) as err:
                await client.add_checkpoint(0, [], w.log.checkpoint(25))
            known = err.value.known_size
            assert known == 10
            lines = await client.add_checkpoint(known, w.log.proof(known, 25), w.log.checkpoint(25))
            assert w.cosigned(25, lines).size == 25

    asyncio.run(scenario())


def test_an_inconsistent_checkpoint_and_a_rollback_are_refused(
    engine: Engine, pki: PkiLayout
) -> None:
    async def scenario() -> None:
        async with running(engine, pki) as w, w.client() as client:
            await client.add_checkpoint(0, [], w.log.checkpoint(16))
            # A fork: same size, another root.
            with pytest.raises(WitnessRefused) as err:
                await client.add_checkpoint(16, [], w.log.checkpoint(16, root=w.log.root(15)))
            assert err.value.status == 422
            # A bigger tree whose proof does not lead from the witness's root.
            with pytest.raises(WitnessRefused) as err:
                await client.add_checkpoint(16, w.log.proof(15, 30), w.log.checkpoint(30))
            assert err.value.status == 422
            assert "not consistent with size 16" in err.value.message
            # Rollback: from a size below the witness's, and to a smaller tree.
            with pytest.raises(WitnessConflict) as conflict:
                await client.add_checkpoint(8, w.log.proof(8, 12), w.log.checkpoint(12))
            assert conflict.value.known_size == 16
            with pytest.raises(WitnessRefused) as err:
                await client.add_checkpoint(16, [], w.log.checkpoint(12))
            assert err.value.status == 400
            latest = w.store.latest(ORIGIN)
            assert latest is not None
            assert latest.size == 16

    asyncio.run(scenario())


def test_unknown_logs_and_bad_signatures(engine: Engine, pki: PkiLayout) -> None:
    async def scenario() -> None:
        async with running(engine, pki) as w, w.client() as client:
            with pytest.raises(WitnessRefused) as err:
                await client.add_checkpoint(0, [], ToyLog(origin="elsewhere/log").checkpoint(2))
            assert err.value.status == 404
            assert "elsewhere/log" in err.value.message
            with pytest.raises(WitnessRefused) as err:
                await client.add_checkpoint(0, [], ToyLog().checkpoint(2))  # another key
            assert err.value.status == 403

    asyncio.run(scenario())


async def _post(
    w: Running, body: bytes, path: str = wire.ADD_CHECKPOINT_PATH
) -> tuple[int, str, bytes]:
    context = client_context(w.pki.roots)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            w.url + path, data=body, ssl=context, server_hostname=WITNESS_HOST
        ) as response,
    ):
        return response.status, response.content_type, await response.read()


def test_malformed_bodies_get_400_naming_what_is_wrong(engine: Engine, pki: PkiLayout) -> None:
    async def scenario() -> None:
        async with running(engine, pki) as w:
            status, _, body = await _post(w, b"old 01\n\n" + w.log.checkpoint(1))
            assert status == 400
            assert b"leading zeros" in body
            status, _, body = await _post(w, b"old 0\n\nnot a note")
            assert status == 400
            assert b"not a signed checkpoint" in body
            status, _, body = await _post(w, b"x" * (wire.MAX_REQUEST_BYTES + 1))
            assert status == 413
            status, media, body = await _post(w, b"old 3\n\n" + w.log.checkpoint(3))
            assert (status, media, body) == (409, wire.SIZE_MEDIA_TYPE, b"0\n")

    asyncio.run(scenario())


def test_health_and_the_monitoring_checkpoint(engine: Engine, pki: PkiLayout) -> None:
    async def scenario() -> None:
        async with running(engine, pki) as w, w.client() as client:
            context = client_context(pki.roots)
            origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
            async with aiohttp.ClientSession() as session:

                async def get(path: str) -> tuple[int, bytes]:
                    async with session.get(
                        w.url + path, ssl=context, server_hostname=WITNESS_HOST
                    ) as response:
                        return response.status, await response.read()

                assert await get("/healthz") == (200, b"serving\n")
                assert (await get(f"/{origin_hash}/checkpoint"))[0] == 404
                await client.add_checkpoint(0, [], w.log.checkpoint(6))
                status, body = await get(f"/{origin_hash}/checkpoint")
                assert status == 200
                seen = cp.verify_checkpoint(body, w.log.verifier, [w.signer.verifier()])
                assert seen.size == 6

    asyncio.run(scenario())


def test_racing_requests_from_one_size_advance_the_witness_once(
    engine: Engine, pki: PkiLayout
) -> None:
    async def scenario() -> None:
        async with running(engine, pki) as w, w.client() as client:
            await client.add_checkpoint(0, [], w.log.checkpoint(10))
            sizes = [11, 14, 20, 27, 33, 40]
            results = await asyncio.gather(
                *(
                    client.add_checkpoint(10, w.log.proof(10, n), w.log.checkpoint(n))
                    for n in sizes
                ),
                return_exceptions=True,
            )
            won = [n for n, r in zip(sizes, results, strict=True) if isinstance(r, bytes)]
            lost = [r for r in results if not isinstance(r, bytes)]
            assert len(won) == 1, results
            assert all(isinstance(r, WitnessConflict) for r in lost), lost
            latest = w.store.latest(ORIGIN)
            assert latest is not None
            assert latest.size == won[0]
            assert {r.known_size for r in lost if isinstance(r, WitnessConflict)} <= {10, won[0]}

    asyncio.run(scenario())


def test_the_store_compare_and_swap_under_threads(engine: Engine) -> None:
    store = WitnessStore(engine)
    log = ToyLog()

    def accepted(size: int) -> Accepted:
        from datetime import UTC, datetime

        return Accepted(ORIGIN, size, log.root(size), b"note", datetime.now(UTC))

    start = threading.Barrier(4, timeout=10)

    def first(size: int) -> int | None:
        start.wait()
        return store.advance(0, None, accepted(size))

    outcomes = _threads(first, [5, 6, 7, 8])
    assert outcomes.count(None) == 1
    winner = store.latest(ORIGIN)
    assert winner is not None
    assert sorted(o for o in outcomes if o is not None) == [winner.size] * 3

    again = threading.Barrier(4, timeout=10)

    def later(size: int) -> int | None:
        again.wait()
        return store.advance(winner.size, winner.root_hash, accepted(size))

    outcomes = _threads(later, [20, 21, 22, 23])
    assert outcomes.count(None) == 1
    now = store.latest(ORIGIN)
    assert now is not None
    assert now.size in (20, 21, 22, 23)
    # The wrong root for the right size never matches.
    assert store.advance(now.size, bytes(32), accepted(30)) == now.size


def _threads(work: Callable[[int], int | None], sizes: list[int]) -> list[int | None]:
    results: list[int | None] = [None] * len(sizes)

    def run(i: int) -> None:
        results[i] = work(sizes[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(sizes))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_the_client_checks_the_witness_name_and_roots(
    engine: Engine, pki: PkiLayout, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with running(engine, pki) as w:
            # A valid certificate of the deployment, but not the witness's.
            async with w.client(server_name=party_host("service:registry")) as client:
                with pytest.raises(WitnessUnavailable, match=r"SSL|certificate"):
                    await client.add_checkpoint(0, [], w.log.checkpoint(1))
            other = init_pki(tmp_path / "other", [])
            async with w.client(roots=other.roots) as client:
                with pytest.raises(WitnessUnavailable, match=r"SSL|certificate"):
                    await client.add_checkpoint(0, [], w.log.checkpoint(1))
            assert w.store.latest(ORIGIN) is None

    asyncio.run(scenario())


def test_no_answer_in_time_is_unavailable() -> None:
    async def scenario() -> None:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1 << 16)
            await asyncio.sleep(30)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with WitnessClient(f"http://127.0.0.1:{port}", timeout=0.2) as client:
                with pytest.raises(WitnessUnavailable, match="no answer"):
                    await client.add_checkpoint(0, [], ToyLog().checkpoint(1))
        finally:
            server.close()

        async with WitnessClient(f"http://127.0.0.1:{port}", timeout=2) as client:
            with pytest.raises(WitnessUnavailable):
                await client.add_checkpoint(0, [], ToyLog().checkpoint(1))

    asyncio.run(scenario())


class _HeldStore:
    """A store whose ``advance`` waits for the test: a request held in flight."""

    def __init__(self, inner: WitnessStore) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def latest(self, origin: str) -> Accepted | None:
        return self.inner.latest(origin)

    def advance(self, old_size: int, old_root: bytes | None, new: Accepted) -> int | None:
        self.entered.set()
        self.release.wait(10)
        return self.inner.advance(old_size, old_root, new)


def test_stopping_lets_the_request_in_flight_finish_and_refuses_new_ones(
    engine: Engine, pki: PkiLayout
) -> None:
    async def scenario() -> None:
        held = _HeldStore(WitnessStore(engine))
        log, signer = ToyLog(), witness_signer()
        witness = Witness(held, signer, {log.origin: log.verifier})
        http = WitnessHttpServer(
            witness,
            "127.0.0.1:0",
            ssl_context=tls.server_context(pki.service("witness")),
            shutdown_grace_seconds=10,
        )
        port = await http.start()
        url = f"https://127.0.0.1:{port}"
        async with WitnessClient(url, roots=pki.roots, server_name=WITNESS_HOST) as client:
            in_flight = asyncio.create_task(client.add_checkpoint(0, [], log.checkpoint(4)))
            await asyncio.to_thread(held.entered.wait, 10)
            stopping = asyncio.create_task(http.stop())
            await _until_refused(port)
            async with WitnessClient(url, roots=pki.roots, server_name=WITNESS_HOST) as fresh:
                with pytest.raises(WitnessUnavailable, match="Connect"):
                    await fresh.add_checkpoint(0, [], log.checkpoint(4))
            assert not in_flight.done()
            held.release.set()
            lines = await in_flight
            await stopping
        signed = cp.add_cosignatures(log.checkpoint(4), lines.decode())
        assert cp.verify_checkpoint(signed, log.verifier, [signer.verifier()]).size == 4

    asyncio.run(scenario())


async def _until_refused(port: int) -> None:
    """Wait (bounded) until nothing listens on ``port`` any more."""
    for _ in range(500):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        writer.close()
        await asyncio.sleep(0.01)
    raise AssertionError(f"port {port} still accepts connections")


def test_client_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="needs ssl_context or roots"):
        WitnessClient("https://127.0.0.1:1")
    with pytest.raises(ValueError, match="want https"):
        WitnessClient("ftp://x")
    with pytest.raises(ValueError, match="plain http"):
        WitnessClient("http://x", ssl_context=ssl.create_default_context())
    with pytest.raises(ValueError, match="positive"):
        WitnessClient("http://x", timeout=0)


def test_client_certificates_when_required_and_revocation(engine: Engine, tmp_path: Path) -> None:
    from cryptography import x509

    from ops.pki import revoke

    pki = init_pki(tmp_path / "pki", [], services=["witness"])  # its own: a certificate is revoked
    log, signer = ToyLog(), witness_signer()
    witness = Witness(WitnessStore(engine), signer, {log.origin: log.verifier})
    hub = pki.hub()

    async def attempt(*, cert: bool) -> bytes:
        context = tls.server_context(pki.service("witness"), require_client_cert=True)
        http = WitnessHttpServer(witness, "127.0.0.1:0", ssl_context=context)
        port = await http.start()
        presented: dict[str, Any] = {"cert": hub.cert, "key": hub.key} if cert else {}
        try:
            async with WitnessClient(
                f"https://127.0.0.1:{port}",
                roots=pki.roots,
                server_name=WITNESS_HOST,
                **presented,
            ) as client:
                latest = witness.latest(ORIGIN)
                old = 0 if latest is None else latest.size
                return await client.add_checkpoint(
                    old, log.proof(old, old + 1), log.checkpoint(old + 1)
                )
        finally:
            await http.stop()

    with pytest.raises(WitnessUnavailable):
        asyncio.run(attempt(cert=False))
    assert asyncio.run(attempt(cert=True))
    revoke(pki.hub_ca, [x509.load_pem_x509_certificate(hub.cert.read_bytes()).serial_number])
    with pytest.raises(WitnessUnavailable):
        asyncio.run(attempt(cert=True))
    latest = witness.latest(ORIGIN)
    assert latest is not None
    assert latest.size == 1


@pytest.mark.parametrize(
    ("status", "media", "body", "raised", "why"),
    [
        (503, "text/plain", b"the witness is shutting down\n", WitnessUnavailable, "503"),
        (409, "text/plain", b"7\n", WitnessRefused, "media type"),
        (409, wire.SIZE_MEDIA_TYPE, b"seven\n", WitnessRefused, "409 body"),
        (200, "text/plain", b"hello\n", WitnessRefused, "without cosignature lines"),
        (200, "text/plain", b"\xff\n", WitnessRefused, "without cosignature lines"),
        (200, "text/plain", b"x" * (1 << 17), WitnessRefused, "answer over"),
        (418, "text/plain", b"teapot\n", WitnessRefused, "418: teapot"),
    ],
)
def test_the_client_reads_only_what_the_spec_allows(
    status: int, media: str, body: bytes, raised: type[Exception], why: str
) -> None:
    from aiohttp import web

    async def scenario() -> None:
        async def answer(request: web.Request) -> web.Response:
            return web.Response(status=status, body=body, content_type=media)

        app = web.Application()
        app.router.add_post(wire.ADD_CHECKPOINT_PATH, answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            async with WitnessClient(f"http://127.0.0.1:{port}") as client:
                with pytest.raises(raised, match=why):
                    await client.add_checkpoint(0, [], ToyLog().checkpoint(1))
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_cosign_asks_again_from_the_witness_size(engine: Engine, pki: PkiLayout) -> None:
    from renkei.tlog.witness_client import WitnessAhead, cosign

    async def scenario() -> None:
        async with running(engine, pki) as w, w.client() as client:
            asked: list[tuple[int, int]] = []

            def proof(old: int, new: int) -> list[bytes]:
                asked.append((old, new))
                return w.log.proof(old, new)

            lines, old = await cosign(client, w.log.checkpoint(10), 10, 0, proof)
            assert (old, w.cosigned(10, lines).size) == (0, 10)
            # The log lost its note of the witness's size: it says 0, then 10.
            lines, old = await cosign(client, w.log.checkpoint(18), 18, 0, proof)
            assert (old, w.cosigned(18, lines).size) == (10, 18)
            # It believes a wrong size: asked again from the witness's.
            lines, old = await cosign(client, w.log.checkpoint(25), 25, 12, proof)
            assert (old, w.cosigned(25, lines).size) == (18, 25)
            assert asked == [(10, 18), (12, 25), (18, 25)]
            # The same checkpoint again needs no proof.
            lines, old = await cosign(client, w.log.checkpoint(25), 25, 0, proof)
            assert (old, w.cosigned(25, lines).size) == (25, 25)
            with pytest.raises(WitnessAhead) as ahead:
                await cosign(client, w.log.checkpoint(20), 20, 0, proof)
            assert (ahead.value.known_size, ahead.value.size) == (25, 20)

    asyncio.run(scenario())
