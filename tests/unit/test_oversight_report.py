"""report: one self-contained HTML file with both plots, the findings, the anomalies and the
checkpoint, every value escaped; English labels when the Japanese font is absent."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from support.oversight_traffic import NENKIN, Traffic

from oversight import report
from oversight.anomalies import find_anomalies
from oversight.config import Thresholds, WorkingHours
from oversight.readers import HubRead, Unverified
from oversight.reconcile import reconcile
from renkei.tlog import checkpoint as tlog_checkpoint
from renkei.tlog import merkle, note

EVIL = '<script>alert("x")</script>'


def _page(t: Traffic, *, font: Path = report.JAPANESE_FONT, unverified: bool = False) -> str:
    signer = note.Ed25519Signer.generate("renkei.test/log")
    root = merkle.root([b"\x00" * 32])
    signed = tlog_checkpoint.CheckpointSigner(signer).sign(len(t.hub), root)
    hub = HubRead(tlog_checkpoint.Checkpoint.parse(note.parse(signed)[0]), signed, list(t.hub))
    if unverified:
        hub.unverified.append(Unverified(3, "not the entry the checkpoint commits to"))
    reconciled = reconcile(t.hub, t.shares, max_skew=timedelta(minutes=5))
    anomalies = find_anomalies(t.shares, t.hub, thresholds=Thresholds(), hours=WorkingHours())
    return report.render(hub, reconciled, anomalies, font=font)


@pytest.fixture
def seeded() -> Traffic:
    t = Traffic().clean(days=3)
    t.seed_denial_burst()
    t.seed_off_hours()
    rows = t.shares[NENKIN]
    rows[0] = replace(rows[0], info_kind=EVIL)  # an edited field, with markup in it
    return t


def test_plots_findings_anomalies_checkpoint(seeded: Traffic) -> None:
    page = _page(seeded)
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pngs) == 2
    assert all(base64.b64decode(p).startswith(b"\x89PNG") for p in pngs)
    assert "FIELD_MISMATCH" in page
    assert "DENIAL_BURST" in page
    assert "OFF_HOURS" in page
    assert "拒否されました" in page
    assert "renkei.test/log" in page
    assert f"<td>{len(seeded.hub)}</td>" in page  # the tree size
    assert "機関別・日別" in page  # Japanese labels with the font
    assert "EXCHANGE_NOT_PERMITTED" in page


def test_values_are_escaped(seeded: Traffic) -> None:
    page = _page(seeded)
    assert EVIL not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "<script" not in page


def test_english_labels_without_the_font(seeded: Traffic, tmp_path: Path) -> None:
    page = _page(seeded, font=tmp_path / "absent.ttf")
    assert "Exchanges per agency and day" in page
    assert len(re.findall(r"data:image/png;base64,", page)) == 2


def test_clean_traffic_says_none_and_unverified_entries_show() -> None:
    page = _page(Traffic().clean(days=2), unverified=True)
    assert page.count("なし / none") >= 2  # no findings, no anomalies
    assert "not the entry the checkpoint commits to" in page
