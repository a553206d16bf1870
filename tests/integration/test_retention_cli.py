"""`renkei logs purge --config FILE [--dry-run] [--now ISO]`: the hub, an agency, the registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from comm_server.store import CommStore, agency_log
from hub_server.log_store import OK, LogEntry, SqlHubLog, hub_log
from ops.cli import main
from registry_binding.store import BindingStore, consent_log
from renkei import db
from tests.integration.test_share_chain import record

NOW = datetime(2033, 4, 1, 9, 0, 0, 123456, tzinfo=UTC)
OLD = NOW - timedelta(days=40)
YOUNG = NOW - timedelta(days=10)
RETENTION = "[retention]\ndays = 30\nbatch_size = 2\n"


def _count(url: str, table: sa.Table) -> int:
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
    finally:
        engine.dispose()


def _purge(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    argv = ["logs", "purge", "--config", str(config), "--now", NOW.isoformat(), *extra]
    assert main(argv) == 0
    return capsys.readouterr().out


def test_the_hub(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = db.sqlite_url(str(tmp_path / "hub.db"))
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[hub]\ndatabase_url = "{url}"\ndirectory = "d.toml"\npolicy = "policy"\n'
        f'master_key = "file:master.key"\n{RETENTION}',
        encoding="utf-8",
    )
    engine = db.create_engine(url)
    log = SqlHubLog(engine)
    old = LogEntry(OLD, "二十七", "city", "pension", "年金", "v1", "pk")
    young = LogEntry(YOUNG, "二十七", "city", "pension", "年金", "v1", "pk")
    log.begin_many([(old, OK, "")] * 3 + [(young, OK, "")])
    log.close()
    engine.dispose()

    dry = _purge(config, capsys, "--dry-run")
    assert "would go" in dry.splitlines()[0]
    assert "hub_log" in dry
    assert "logged" not in dry
    assert _count(url, hub_log) == 4
    out = _purge(config, capsys)
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["store", "before", "deleted", "held"]
    assert lines[1].split()[:5] == ["hub_log", "2033-03-02T09:00:00Z", "3", "0", "1-3;"]
    assert "hub_log: logged purge entry at leaf 4:" in out
    assert _count(url, hub_log) == 1


def test_an_agency(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = db.sqlite_url(str(tmp_path / "comm.db"))
    config = tmp_path / "comm.toml"
    config.write_text(
        f'[comm]\nagency_id = "city"\nhub_endpoint = "127.0.0.1:1"\ndatabase_url = "{url}"\n'
        f'master_key = "file:master.key"\n[legacy]\nport = 1\n{RETENTION}',
        encoding="utf-8",
    )
    engine = db.create_engine(url)
    store = CommStore(engine)
    store.append_logs([record(n, logged_at=OLD) for n in range(1, 4)])
    store.append_log(record(4, logged_at=YOUNG))
    engine.dispose()
    out = _purge(config, capsys)
    assert [line.split()[:4] for line in out.splitlines()[1:3]] == [
        ["agency_log", "2033-03-02T09:00:00Z", "3", "0"],
        ["answer_tickets", "2033-03-02T09:00:00Z", "0", "0"],
    ]
    assert "agency_log: logged agency_log_purges: ids 1-3 (3 rows, 0 held)" in out
    assert _count(url, agency_log) == 1


def test_the_registry_and_a_file_of_no_party(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "registry.toml"
    config.write_text(
        '[registry]\ndatabase_url = "sqlite:///{config_dir}/register.db"\n' + RETENTION,
        encoding="utf-8",
    )
    url = db.sqlite_url(str(tmp_path / "registry_binding.db"))
    store = BindingStore(db.create_engine(url))
    with store.engine.begin() as conn:
        for n, at in enumerate((OLD, OLD, YOUNG)):
            conn.execute(
                consent_log.insert().values(
                    attempt_id=f"a{n}",
                    caller="agency:bank",
                    attempted_at=at,
                    outcome="MATCHED",
                    answered="MATCHED",
                    reason="",
                )
            )
    store.engine.dispose()
    out = _purge(config, capsys)
    assert out.splitlines()[1].split()[:4] == ["consent_log", "2033-03-02T09:00:00Z", "2", "0"]
    assert _count(url, consent_log) == 1

    other = tmp_path / "witness.toml"
    other.write_text("[witness]\n", encoding="utf-8")
    assert main(["logs", "purge", "--config", str(other)]) == 2
    assert "not a hub.toml, comm.toml or registry.toml" in capsys.readouterr().err
