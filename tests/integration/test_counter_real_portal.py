"""`renkei counter report` against the real portal on loopback HTTPS (once its branch is merged).

The portal's own sign-in (renkei.card, a card CA, a fake registry) and this
branch's pages, a hub log of real entries for the card holder's link code: the
counter signs in with the card through renkei.card.sign_challenge, verifies the
history itself and prints it. Skipped while portal.bootstrap or its test
support (support/portal_env.py) is absent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from support.aio import LoopThread
from support.personal_log import PersonLog

from ops.counter import CounterReportRequest, counter_report
from renkei.hub.v1 import personal_pb2

bootstrap = pytest.importorskip("portal.bootstrap")
env = pytest.importorskip("support.portal_env")


class _Hub:
    """The portal's link codes as support.portal_env's FakeHub gives them, over a PersonLog."""

    def __init__(self, log: PersonLog) -> None:
        self.log = log

    async def issue_link_code(self, sealed_id_code: bytes) -> str:
        return "LC-" + hashlib.sha256(sealed_id_code).hexdigest()[:24]

    async def list_entries(
        self, request: personal_pb2.ListPersonalEntriesRequest
    ) -> personal_pb2.ListPersonalEntriesResponse:
        return self.log.list(request)

    async def request_details(
        self, request: personal_pb2.RequestDetailsRequest
    ) -> personal_pb2.RequestDetailsResponse:
        return personal_pb2.RequestDetailsResponse(state=personal_pb2.DETAILS_STATE_PENDING)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_the_counter_prints_through_the_real_portal(tmp_path: Path, loop: LoopThread) -> None:
    ca = env.card_authority(tmp_path / "card-ca")
    holder = ca.issue("holder")
    link_code = "LC-" + hashlib.sha256(f"sealed:{holder.serial}".encode()).hexdigest()[:24]
    log = PersonLog()
    log.exchange(link_code, 1)
    log.exchange("someone-else", 2, info_kind="他人の情報")
    log.exchange(link_code, 3, outcome="DENIED")
    config, _ = env.portal_config(tmp_path / "portal", ca, (None, "p"))
    config = dataclasses.replace(
        config,
        log_key=log.hub.verifier().verifier_key(),
        witness_keys=(log.witness.verifier().verifier_key(),),
        quorum=1,
    )
    hub = _Hub(log)
    server = loop.run(bootstrap.start(config, bootstrap.Peers(hub, hub, env.FakeRegistry(ca))))
    (tmp_path / "staff.csv").write_text(
        "staff_id,terminals,info_kinds,legal_basis_items\nY-0001,YOK-COUNTER-1,*,*\n",
        encoding="utf-8",
    )
    comm = tmp_path / "comm.toml"
    comm.write_text(
        f'[comm]\nagency_id = "yokohama-city"\nhub_endpoint = "127.0.0.1:1"\n'
        f'database_url = "sqlite:///{tmp_path}/comm.db"\nmaster_key = "file:m.key"\n'
        'insecure_development = true\nstaff_register = "staff.csv"\n[legacy]\nport = 5000\n'
        f'[log]\nhub_key = "{log.hub.verifier().verifier_key()}"\n'
        f'witness_keys = ["{log.witness.verifier().verifier_key()}"]\n',
        encoding="utf-8",
    )
    try:
        report = counter_report(
            CounterReportRequest(
                portal=config.public_url,
                card_key=holder.key_file,
                card_cert=holder.cert_file,
                staff_id="Y-0001",
                terminal_id="YOK-COUNTER-1",
                comm_config=comm,
                out=tmp_path / "report.pdf",
                web_ca=config.web_cert,
            )
        )
    finally:
        loop.run(server.stop())
    assert report.outcome == "PRINTED"
    assert [r.serial for r in report.page.rows] == [3, 1]
    text = subprocess.run(
        ["pdftotext", "-layout", str(report.out), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert report.page.checkpoint is not None
    assert report.page.checkpoint.root_hash_hex in text
    assert "他人の情報" not in text
