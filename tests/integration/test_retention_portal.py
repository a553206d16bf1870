"""Retention at the portal (R25): its applications for details, on a virtual clock.

Older than the period go, younger stay, held ones stay (by the exchange applied
about or the application's own exchange), each purge is recorded in
``portal_purges``; ``renkei logs purge --config portal.toml`` and the portal's
own scheduled job do the same.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support.aio import LoopThread
from support.polling import wait_for
from support.portal_env import card_authority, peers, portal_config

from ops.cli import main
from portal.app_keys import Application
from portal.bootstrap import start
from portal.retention import purge_applications
from portal.store import SqlApplications, applications, purges
from renkei import db
from renkei.retention import HoldStore, LegalHold, RetentionPolicy

NOW = datetime(2033, 4, 1, 9, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)
YOUNG = NOW - timedelta(days=10)
POLICY = RetentionPolicy(days=30, batch_size=2)


def _application(n: int, at: datetime, *, serial: int = 0, request_serial: int = 0) -> Application:
    return Application(
        application_id=f"app-{n:03d}",
        card_serial="1001",
        serial=serial or 100 + n,
        agency_id="city",
        state="ANSWERED",
        created_at=at,
        updated_at=at,
        sealed_details=b"sealed",
        request_serial=request_serial or 500 + n,
    )


def _fill(engine: Engine) -> SqlApplications:
    store = SqlApplications(engine)
    for n in range(1, 6):
        store.save(_application(n, OLD))  # ids 1-5: past the period
    store.save(_application(6, OLD, serial=42))  # held by the exchange applied about
    store.save(_application(7, OLD, request_serial=77))  # held by its own exchange
    store.save(_application(8, YOUNG))  # within the period
    store.save(_application(9, YOUNG))
    return store


def _ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(applications.c.application_id).order_by(applications.c.id)
        ).all()
    return [r[0] for r in rows]


def test_old_applications_go_young_and_held_ones_stay(engine: Engine) -> None:
    store = _fill(engine)
    holds = HoldStore(engine)
    holds.set(LegalHold("case-1", (42, 77), reason="調査"), NOW)

    (dry,) = purge_applications(engine, holds, POLICY, now=NOW, dry_run=True)
    assert (dry.deleted, dry.held, dry.logged) == (5, 2, "")
    assert len(_ids(engine)) == 9

    (report,) = purge_applications(engine, holds, POLICY, now=NOW)
    assert (report.store, report.deleted, report.held) == ("portal_applications", 5, 2)
    assert report.ranges == [(1, 5)]
    assert "portal_purges: ids 1-5 (5 rows, 2 held)" in report.logged
    assert _ids(engine) == ["app-006", "app-007", "app-008", "app-009"]
    assert store.get("1001", "app-001") is None
    assert store.get("1001", "app-008") is not None
    with engine.connect() as conn:
        logged = conn.execute(sa.select(purges).order_by(purges.c.id)).all()
    # One row per transaction of two: ids 1-2, 3-4, 5.
    assert [json.loads(r.id_ranges) for r in logged] == [[[1, 2]], [[3, 4]], [[5, 5]]]
    assert sum(r.rows for r in logged) == 5
    assert all(r.cutoff == NOW - timedelta(days=30) for r in logged)

    holds.release("case-1")
    (after,) = purge_applications(engine, holds, POLICY, now=NOW)
    assert (after.deleted, after.held) == (2, 0)
    assert _ids(engine) == ["app-008", "app-009"]
    # Time passes: the young ones age out too, but the newest row is always kept.
    (later,) = purge_applications(engine, holds, POLICY, now=NOW + timedelta(days=60))
    assert later.deleted == 1
    assert _ids(engine) == ["app-009"]


def _portal_toml(tmp_path: Path) -> Path:
    ca = card_authority(tmp_path / "card-ca")
    portal_config(tmp_path, ca, (None, "cli"))
    file = tmp_path / "portal.toml"
    file.write_text(
        """
[portal]
public_url = "https://127.0.0.1"
database_url = "sqlite:///{config_dir}/portal.db"
master_key = "file:master.key"
[web_tls]
cert = "web/web.pem"
key = "web/web.key"
[hub]
endpoint = "127.0.0.1:1"
[registry]
endpoint = "127.0.0.1:1"
[cards]
ca_cert = "card-ca/ca.pem"
crl = "card-ca/crl.pem"
[retention]
days = 30
batch_size = 2
""",
        encoding="utf-8",
    )
    return file


def test_renkei_logs_purge_takes_a_portal_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = _portal_toml(tmp_path)
    engine = db.create_engine(db.sqlite_url(str(tmp_path / "portal.db")))
    try:
        _fill(engine)
        HoldStore(engine).set(LegalHold("case-1", (42,)), NOW)
        argv = ["logs", "purge", "--config", str(file), "--now", NOW.isoformat()]
        assert main([*argv, "--dry-run"]) == 0
        dry = capsys.readouterr().out
        assert "would go" in dry.splitlines()[0]
        assert "portal_applications" in dry
        assert len(_ids(engine)) == 9
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "portal_applications: logged portal_purges: ids 1-5, 7 (6 rows, 1 held)" in out
        assert _ids(engine) == ["app-006", "app-008", "app-009"]
    finally:
        engine.dispose()


def test_the_portal_purges_on_its_own_schedule(loop: LoopThread, tmp_path: Path) -> None:
    ca = card_authority(tmp_path / "card-ca")
    config, _ = portal_config(tmp_path, ca, (None, "job"))
    config = replace(config, retention=replace(POLICY, every_seconds=0.05))
    engine = db.create_engine(config.database_url)
    try:
        _fill(engine)
        server = loop.run(start(config, peers(ca)[0], clock=lambda: NOW))
        try:
            wait_for(lambda: len(_ids(engine)) == 2, timeout=20, what="the scheduled purge")
        finally:
            loop.run(server.stop())
        assert _ids(engine) == ["app-008", "app-009"]
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.sum(purges.c.rows))) == 7
    finally:
        engine.dispose()
