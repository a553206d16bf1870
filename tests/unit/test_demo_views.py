"""The demo's portal and oversight steps (ops/demo_views.py): the pieces that need no server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from rich.cells import cell_len

from ops.demo_views import allow_every_hour, details_of, fit
from oversight.anomalies import JST, working
from oversight.config import OversightConfig
from renkei.tlog import checkpoint, note


def test_the_demos_working_hours_cover_every_hour_of_every_day(tmp_path: Path) -> None:
    log_key = note.Ed25519Signer.generate("hub/log").verifier().verifier_key()
    signer = note.Ed25519Signer.generate("witness")
    witness = checkpoint.CosignatureVerifier("witness", signer.verifier().public_key)
    path = tmp_path / "oversight.toml"
    path.write_text(
        '[tls]\nca_cert = "r.pem"\ncert = "c.pem"\nkey = "k.pem"\n'
        f'[hub]\nendpoint = "127.0.0.1:1"\nlog_key = "{log_key}"\n'
        f'witness_keys = ["{witness.verifier_key()}"]\n',
        encoding="utf-8",
    )
    allow_every_hour(path)
    assert "# The demo runs at any hour" in path.read_text(encoding="utf-8")
    hours = OversightConfig.load(path).working_hours
    sunday_night = datetime(2026, 12, 13, 23, 59, 59, tzinfo=JST)
    for at in (datetime(2026, 12, 12, 0, 0, tzinfo=JST), sunday_night):
        assert working(at, hours)


def test_details_as_the_entry_page_shows_them() -> None:
    page = (
        '<p class="state">申請の状態: <strong>回答あり</strong>（2026-12-08 申請）</p>'
        '<dl class="details-fields">\n'
        '<dt>(11) 提供された情報</dt><dd class="content">{&#34;a&#34;: 1}</dd>\n'
        "<dt>(12) 利用目的</dt><dd>障害福祉サービスの提供</dd>\n</dl>"
    )
    assert details_of(page) == {
        "state": "回答あり",
        "(11) 提供された情報": '{"a": 1}',
        "(12) 利用目的": "障害福祉サービスの提供",
    }
    failed = '<p class="status status-failed" role="alert"><span>✗</span> 開けません</p>'
    assert details_of(failed) == {"problem": "✗ 開けません"}


def test_fit_counts_wide_characters_twice() -> None:
    assert fit("abc", 10) == "abc"
    cut = fit("地方税法その他の地方税に関する法律", 11)
    assert cut.endswith("…")
    assert cell_len(cut) <= 11
