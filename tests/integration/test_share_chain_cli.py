"""``renkei comm log verify --own``, ``head`` and ``key``: what they print, how they exit."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from comm_server.config import CommConfig
from comm_server.store import CommStore, LogRecord, agency_log
from ops.cli import main
from renkei import db

CONFIG = """\
[comm]
agency_id = "mhlw"
hub_endpoint = "127.0.0.1:1"
database_url = "{url}"
master_key = "file:master.key"
{schema}
[legacy]
host = "127.0.0.1"
port = 1
"""


def _row(n: int) -> LogRecord:
    return LogRecord(
        serial=100 + n,
        role="requester",
        logged_at=datetime(2026, 4, 1, 9, 30, n, tzinfo=UTC),
        counterpart_agency_id="nenkin",
        info_kind="年金給付関係情報",
        legal_basis_item="二十七",
        local_person_id=f"A{n}",
        staff_id="Y-1",
        terminal_id="T-1",
        content="{}",
        purpose="賦課",
        outcome="OK",
        reason="",
    )


@pytest.fixture
def config(tmp_path: Path, database: tuple[str | None, str]) -> Path:
    url, prefix = database
    if url is None:
        url, schema = "sqlite:///{config_dir}/comm.db", ""
    else:
        schema = f'database_schema = "{prefix}_{uuid.uuid4().hex[:8]}"\n'
    (tmp_path / "master.key").write_bytes(os.urandom(32))
    path = tmp_path / "comm.toml"
    path.write_text(CONFIG.format(url=url, schema=schema), encoding="utf-8")
    return path


def _engine(config: Path) -> sa.engine.Engine:
    loaded = CommConfig.load(config)
    return db.create_engine(loaded.database_url, schema=loaded.database_schema)


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_verify_own_exits_0_clean_1_on_problems_2_when_it_cannot_run(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verify = ("comm", "log", "verify", "--own", "--config", config)
    code, _, err = _run(capsys, *verify)
    assert code == 2
    assert "this store has no chain yet" in err

    code, out, _ = _run(capsys, "comm", "log", "head", "--config", config)
    assert code == 1  # the chain started, but no head signed yet
    engine = _engine(config)
    store = CommStore(engine)
    store.append_logs([_row(n) for n in range(1, 6)])

    code, head, _ = _run(capsys, "comm", "log", "head", "--sign", "--config", config)
    assert code == 0
    assert head.startswith("renkei agency log share mhlw\n5\n")
    (tmp_path / "head.note").write_text(head, encoding="utf-8")
    code, vkey, _ = _run(capsys, "comm", "log", "key", "--config", config)
    assert code == 0
    assert vkey.startswith("renkei-agency-log-mhlw+")
    (tmp_path / "vkey").write_text(vkey, encoding="utf-8")

    collected = ("--head", tmp_path / "head.note", "--key", tmp_path / "vkey")
    code, out, _ = _run(capsys, *verify, *collected)
    assert (code, out) == (
        0,
        "share of agency mhlw: 5 rows (0 before the chain), 2 signed heads: as logged\n",
    )

    with engine.begin() as conn:
        conn.execute(agency_log.update().where(agency_log.c.id == 3).values(content='{"x":1}'))
    code, out, _ = _run(capsys, *verify, *collected)
    assert code == 1
    assert out.splitlines() == [
        "PROBLEM row 3 (serial 103): changed since it was logged",
        "share of agency mhlw: 5 rows (0 before the chain), 2 signed heads: 1 problem",
    ]

    code, _, err = _run(capsys, *verify, "--head", tmp_path / "nothing.note")
    assert code == 2
    assert "nothing.note" in err
    (tmp_path / "bad.vkey").write_text("not a key\n", encoding="utf-8")
    code, _, err = _run(capsys, *verify, "--key", tmp_path / "bad.vkey")
    assert code == 2
    assert "bad.vkey: not a verifier key" in err
    engine.dispose()


def test_a_head_checked_with_another_key_is_a_problem(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from renkei.tlog import note

    _run(capsys, "comm", "log", "head", "--sign", "--config", config)
    _, other = note.generate_key("renkei-agency-log-mhlw")
    (tmp_path / "other.vkey").write_text(other + "\n", encoding="utf-8")
    code, out, _ = _run(
        capsys,
        "comm",
        "log",
        "verify",
        "--own",
        "--config",
        config,
        "--key",
        tmp_path / "other.vkey",
    )
    assert code == 1
    assert "PROBLEM signed head #1: not a head signed by this agency's log key" in out
