"""`renkei witness serve` as its own process: it cosigns over HTTPS, refuses an inconsistent
checkpoint and a rollback, logs JSON lines, and exits 0 on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import pytest
from support.witness_log import ToyLog

from ops.deploy import tls_table
from ops.pki import init_pki
from ops.processes import ProcessGroup, python_module
from renkei.pki import party_host
from renkei.tlog import checkpoint as cp
from renkei.tlog.witness_client import WitnessClient, WitnessConflict, WitnessRefused
from witness.setup import init_witness

pytestmark = pytest.mark.e2e


def test_witness_serve_cosigns_refuses_and_stops_on_sigterm(tmp_path: Path) -> None:
    pki = init_pki(tmp_path / "pki", [], services=["witness"])
    folder = tmp_path / "witness"
    log = ToyLog()
    vkey = init_witness(
        folder,
        listen="127.0.0.1:0",
        tls=tls_table(pki.service("witness"), folder),
        logs=[(log.origin, log.verifier.verifier_key())],
        database_url="sqlite:///{config_dir}/witness.db",
        name="witness.renkei.example",
    )
    witness_key = cp.parse_cosignature_verifier_key(vkey)

    async def exchange(port: int) -> None:
        async with WitnessClient(
            f"https://127.0.0.1:{port}",
            roots=pki.roots,
            server_name=party_host("service:witness"),
        ) as client:
            old = 0
            for size in (5, 12, 30):
                lines = await client.add_checkpoint(old, log.proof(old, size), log.checkpoint(size))
                signed = cp.add_cosignatures(log.checkpoint(size), lines.decode())
                assert cp.verify_checkpoint(signed, log.verifier, [witness_key]).size == size
                old = size
            with pytest.raises(WitnessRefused) as refused:  # a fork of the same size
                await client.add_checkpoint(30, [], log.checkpoint(30, root=log.root(29)))
            assert refused.value.status == 422
            with pytest.raises(WitnessConflict) as conflict:  # a rollback
                await client.add_checkpoint(12, log.proof(12, 20), log.checkpoint(20))
            assert conflict.value.known_size == 30

    config = str(folder / "witness.toml")
    with ProcessGroup(tmp_path / "run") as group:
        child = group.start(
            "witness", python_module("ops.cli", "witness", "serve", "--config", config)
        )
        port = group.wait_ready(child)
        asyncio.run(exchange(port))
        child.process.send_signal(signal.SIGTERM)
        assert child.process.wait(20) == 0
    records = [json.loads(line) for line in child.log_path.read_text().splitlines() if line]
    assert {r["party"] for r in records} == {"witness"}
    messages = [r["msg"] for r in records]
    assert "listening" in messages
    assert messages.count("checkpoint cosigned") == 3
    assert "checkpoint refused as inconsistent" in messages
    assert messages[-1] == "stopped"
    # Restarted, it remembers the size it accepted.
    with ProcessGroup(tmp_path / "run2") as group:
        child = group.start(
            "witness", python_module("ops.cli", "witness", "serve", "--config", config)
        )
        port = group.wait_ready(child)

        async def remembers() -> None:
            async with WitnessClient(
                f"https://127.0.0.1:{port}",
                roots=pki.roots,
                server_name=party_host("service:witness"),
            ) as client:
                with pytest.raises(WitnessConflict) as conflict:
                    await client.add_checkpoint(0, [], log.checkpoint(31))
                assert conflict.value.known_size == 30

        asyncio.run(remembers())
        assert group.stop_all() == {"witness": 0}
