"""`renkei policy explain` and `renkei policy report`, as operators and auditors run them."""

from __future__ import annotations

import pytest

from ops.cli import main


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["policy", "explain", *args])
    return code, capsys.readouterr().out.splitlines()


def test_the_minister_may_ask_yokohama_for_local_tax_under_item_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = explain(
        capsys,
        "--requester", "厚生労働大臣", "--provider", "横浜市", "--info", "地方税関係情報",
        "--item", "一",
    )  # fmt: skip
    assert code == 0
    assert (
        out[0] == "may 厚生労働大臣 (mhlw) ask 横浜市長 (141003) for 地方税関係情報 under item 一?"
    )
    assert out[1].startswith("APPROVED under item 一: policy sha256:")
    assert out[2].startswith("  affair: 健康保険法第五条第二項")
    assert out[3] == "  requester: 厚生労働大臣 is in the item's requester class 厚生労働大臣"
    assert out[4] == "  provider: 横浜市長 is in the provider class 市町村長"
    assert out[5] == "  information: 地方税関係情報 is listed for that provider"


def test_the_reversed_direction_is_denied_with_the_item_s_requesters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = explain(
        capsys,
        "--requester", "横浜市", "--provider", "厚生労働大臣", "--info", "地方税関係情報",
        "--item", "一",
    )  # fmt: skip
    assert code == 1
    assert out[1].startswith("DENIED (REQUESTER_NOT_IN_ITEM)")
    assert "  requester: the item names 厚生労働大臣; 横浜市長 is none of these" in out


def test_without_an_item_it_names_the_nearest_reason(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(
        capsys, "--requester", "横浜市", "--provider", "日本年金機構", "--info", "地方税関係情報"
    )
    assert code == 1
    assert out[1].startswith("DENIED (INFO_KIND_NOT_LISTED)")
    assert out[2].startswith("  nearest: item ")


def test_without_an_item_it_finds_every_lawful_item(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = explain(
        capsys, "--requester", "横浜市", "--provider", "日本年金機構", "--info", "年金給付関係情報"
    )
    assert code == 0
    assert out[1].startswith("APPROVED under item ")
    assert any(line.startswith("  also lawful under items ") for line in out)


def test_an_unknown_agency_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["policy", "explain", "--requester", "架空市", "--provider", "横浜市", "--info", "x"]
    )
    assert code == 2
    assert "架空市" in capsys.readouterr().err


def test_the_compiler_report_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "report"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "rows: 259" in out
    assert "report: empty" in out
