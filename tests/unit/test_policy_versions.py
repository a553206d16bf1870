"""Policy versions: the one in force at a query's time decides; a bad folder is refused whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import hub_server
from hub_server.directory import Agency
from hub_server.policy_versions import JST, PolicySet, fingerprint, load_policy, load_version

DEMO = (
    (Path(hub_server.__file__).parent / "data" / "legal_basis_demo.toml")
    .read_text("utf-8")
    .replace("effective = 2015-10-05\n", "")
)
CITY = Agency("141003", "横浜市長", frozenset({"市町村長"}), "127.0.0.1:1", b"\0" * 32)
PENSION = Agency("nenkin", "日本年金機構", frozenset({"日本年金機構"}), "127.0.0.1:1", b"\0" * 32)
PENSION_INFO = "年金給付関係情報"


def write(folder: Path, name: str, effective: str, body: str = DEMO) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"effective = {effective}\n\n{body}", encoding="utf-8")
    return path


def without_item_27(body: str) -> str:
    start = body.index('[[item]]\nitem = "二十七"')
    end = body.index("[[item]]", start + 1)
    return body[:start] + body[end:]


def test_a_query_is_judged_by_the_version_in_force_at_its_time(tmp_path: Path) -> None:
    write(tmp_path, "2015.toml", "2015-10-05")
    write(tmp_path, "2027.toml", "2027-04-01", without_item_27(DEMO))
    policy = load_policy(tmp_path)
    assert [v.source for v in policy.versions] == ["2015.toml", "2027.toml"]
    before = datetime(2027, 3, 31, 23, 59, tzinfo=JST)
    after = datetime(2027, 4, 1, 0, 0, tzinfo=JST)
    old = policy.decide(CITY, PENSION, PENSION_INFO, "二十七", before)
    new = policy.decide(CITY, PENSION, PENSION_INFO, "二十七", after)
    assert old.approved
    assert (new.approved, new.reason) == (False, "LEGAL_BASIS_ITEM_UNKNOWN")
    assert old.policy_version != new.policy_version
    too_early = policy.decide(
        CITY, PENSION, PENSION_INFO, "二十七", datetime(2000, 1, 1, tzinfo=UTC)
    )
    assert (too_early.approved, too_early.reason) == (False, "NO_POLICY_IN_FORCE")


def test_two_versions_taking_effect_at_once_contradict(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "2020-01-01")
    write(tmp_path, "b.toml", "2020-01-01")
    with pytest.raises(ValueError, match=r"a\.toml and b\.toml: both take effect"):
        load_policy(tmp_path)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            DEMO.replace('info = ["年金給付関係情報"]', 'info = "年金給付関係情報"'),
            r"item\[0\]: info",
        ),
        (DEMO.replace('requester = ["市町村長"]', "requester = []"), r"item\[1\]: requester"),
        (DEMO.replace('item = "四十八"', 'item = "二十七"'), r"item\[2\]: item 二十七 is already"),
        (DEMO.replace('affair = "地方税法', 'affairs = "地方税法'), r"item\[1\] lacks 'affair'"),
        ('source = "annex-1999"\n', r"source 'annex-1999' is unknown"),
        ('source = "annex-2015"\n' + DEMO, "contradict"),
        ("[[item]\n", r"bad\.toml: "),
    ],
)
def test_a_bad_file_is_refused_naming_the_row_and_column(
    tmp_path: Path, body: str, named: str
) -> None:
    write(tmp_path, "good.toml", "2015-10-05")
    write(tmp_path, "bad.toml", "2027-01-01", body)
    with pytest.raises(ValueError, match=named):
        load_policy(tmp_path)


def test_effective_must_be_a_date(tmp_path: Path) -> None:
    path = write(tmp_path, "v.toml", '"soon"')
    with pytest.raises(ValueError, match="effective must be a TOML date"):
        load_version(path)


def test_a_version_file_without_effective_is_in_force_from_the_beginning(tmp_path: Path) -> None:
    path = tmp_path / "v.toml"
    path.write_text(DEMO, encoding="utf-8")
    policy = load_policy(path)
    assert policy.in_force(datetime(1999, 1, 1, tzinfo=UTC)) is not None
    assert policy.version == policy.versions[0].table.version


def test_fingerprint_changes_when_a_version_is_added(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", "2020-01-01")
    first = fingerprint(tmp_path)
    write(tmp_path, "b.toml", "2021-01-01")
    assert fingerprint(tmp_path) != first


def test_an_empty_set_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one version"):
        PolicySet([])


def test_later_versions_do_not_affect_earlier_queries(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    write(tmp_path, "now.toml", (now - timedelta(days=1)).date().isoformat())
    write(
        tmp_path,
        "future.toml",
        (now + timedelta(days=30)).date().isoformat(),
        without_item_27(DEMO),
    )
    policy = load_policy(tmp_path)
    assert policy.decide(CITY, PENSION, PENSION_INFO, "二十七").approved
