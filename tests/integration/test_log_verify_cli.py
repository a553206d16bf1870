"""``renkei comm log verify`` and ``status`` against a LogService on loopback, and the
scheduled job of ``renkei comm serve``.

The hub is a fake LogService (support/log_fakes.py) served over real gRPC, read
by ``comm_server.log_client.LogClient`` on the comm server's hub channel; the
share is the comm server's own SQLite database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.aio import LoopThread
from support.log_fakes import FakeHubLog, start_log_service
from support.polling import wait_for

from comm_server import bootstrap
from comm_server.clients import hub_client
from comm_server.config import CommConfig
from comm_server.hub_client import HubClient
from comm_server.log_receipts import REQUESTER, accept
from comm_server.log_trust import SqlVerifyStore
from comm_server.store import CommStore, LogRecord, open_store
from ops.cli import main
from renkei import db

NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
CITY, PENSION = "city", "pension"


@pytest.fixture
def hub(loop: LoopThread) -> Iterator[tuple[FakeHubLog, int]]:
    log = FakeHubLog()
    server, port = loop.run(start_log_service(log))
    yield log, port
    loop.run(server.stop(None))


def write_config(tmp_path: Path, port: int, log: FakeHubLog | None, every: float = 0) -> Path:
    text = (
        f'[comm]\nagency_id = "{CITY}"\nhub_endpoint = "127.0.0.1:{port}"\n'
        f'database_url = "sqlite:///{tmp_path}/comm.db"\nmaster_key = "file:m.key"\n'
        "insecure_development = true\n[legacy]\nport = 5000\n"
    )
    if log is not None:
        keys = log.log_config()
        text += (
            f'[log]\nhub_key = "{keys.hub_key}"\nwitness_keys = ["{keys.witness_keys[0]}"]\n'
            f"verify_every_seconds = {every}\n"
        )
    path = tmp_path / "comm.toml"
    path.write_text(text, encoding="utf-8")
    return path


def share(config: Path, log: FakeHubLog, serials: range) -> None:
    """Exchanges of the city, logged at the hub and in the city's share with receipts."""
    cfg = CommConfig.load(config)
    engine = db.create_engine(cfg.database_url, schema=cfg.database_schema)
    store = CommStore(engine)
    for serial in serials:
        log.exchange(serial + 1000, "tax", PENSION)
        given = log.exchange(serial, CITY, PENSION)
        store.append_log(
            LogRecord(
                serial,
                REQUESTER,
                NOW,
                PENSION,
                "年金給付関係情報",
                "二十七",
                f"P{serial}",
                "S-1",
                "T-1",
                "",
                None,
                "OK",
                "",
            ),
            accept(given, serial=serial, agency_id=CITY, role=REQUESTER, received_at=NOW),
        )
    engine.dispose()


def test_a_config_without_a_log_table_cannot_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, 1, None)
    assert main(["comm", "log", "verify", "--config", str(config)]) == 2
    assert "has no [log] table" in capsys.readouterr().err


def test_a_log_table_without_a_witness_is_refused_as_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, 1, FakeHubLog())
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("witness_keys = [", "unused = ["), encoding="utf-8")
    assert main(["comm", "log", "verify", "--config", str(config)]) == 2
    assert "witness_keys: at least one witness key is required" in capsys.readouterr().err


def test_an_unreachable_hub_cannot_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, 1, FakeHubLog())  # nothing listens on port 1
    assert main(["comm", "log", "verify", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "cannot run: the hub's checkpoint: HUB_UNAVAILABLE" in err


def test_verify_exits_0_when_clean_and_1_on_a_problem_and_status_tells(
    tmp_path: Path, hub: tuple[FakeHubLog, int], capsys: pytest.CaptureFixture[str]
) -> None:
    log, port = hub
    config = write_config(tmp_path, port, log)
    share(config, log, range(101, 104))
    assert main(["comm", "log", "verify", "--config", str(config)]) == 0
    assert "6 receipts checked against the checkpoint of size 12: no problem" in (
        capsys.readouterr().out
    )
    share(config, log, range(104, 105))
    log.edit(15, outcome="DENIED")
    assert main(["comm", "log", "verify", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert (
        "PROBLEM changed: serial 104 (leaf 15): the hub's entry differs in outcome"
        " ('OK' ours, 'DENIED' the hub's)"
    ) in out
    assert main(["comm", "log", "status", "--config", str(config)]) == 0
    status = capsys.readouterr().out
    assert "trusted tree size: 12" in status
    assert "problems found in all: 1" in status
    assert "serial 104 (leaf 15)" in status


def test_the_scheduled_job_runs_in_the_background_and_stops_with_the_server(
    tmp_path: Path, hub: tuple[FakeHubLog, int], loop: LoopThread
) -> None:
    log, port = hub
    config_path = write_config(tmp_path, port, log, every=0.05)
    share(config_path, log, range(101, 103))
    config = CommConfig.load(config_path)
    assert config.log is not None
    offs = [
        replace(config, log=None),
        replace(config, log=replace(config.log, verify_every_seconds=0)),
    ]
    verify = SqlVerifyStore(db.create_engine(config.database_url))

    store = open_store(config)

    async def start() -> tuple[HubClient, list[asyncio.Task[None] | None]]:
        client = hub_client(config)  # a grpc.aio channel: made on the loop it runs on
        return client, [bootstrap.start_log_checker(c, store, client) for c in [config, *offs]]

    client, (checker, *none) = loop.run(start())
    assert none == [None, None]  # no [log], or verify_every_seconds = 0: on demand only
    assert checker is not None
    status = wait_for(lambda: asyncio.run(verify.status()), what="a scheduled run")
    assert status.trusted_size == 8

    async def stop() -> bool:
        checker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await checker
        await client.close()
        store.close()
        return checker.done()

    assert loop.run(stop())
