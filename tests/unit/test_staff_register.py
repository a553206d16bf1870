"""The staff register (R19): parsing with file/line errors, and each refusal reason."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comm_server import staff_register
from comm_server.staff_register import (
    Grant,
    RegisterError,
    RegisterFile,
    load,
    parse,
    render,
)
from renkei.errors import PermissionDenied

TEXT = """\
# Staff register of a test city
staff_id,terminals,info_kinds,legal_basis_items,valid_from,valid_until,name
Y-1203,YOK-TAX-07|YOK-TAX-08,年金給付関係情報,二十七,2026-04-01,2027-03-31,横浜 花子
Y-1203,YOK-TAX-07,地方税関係情報,*,,,横浜 花子
ANY-1,*,*,*,,,
"""
DAY = date(2026, 11, 26)


def refusal(text: str, *args: str, day: date = DAY) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as err:
        parse(text).check(*args, day)  # type: ignore[arg-type]
    return err.value


def test_a_registered_staff_member_at_a_listed_terminal_for_a_listed_affair_is_allowed() -> None:
    register = parse(TEXT)
    assert len(register) == 3
    p = register.check("Y-1203", "YOK-TAX-08", "年金給付関係情報", "二十七", DAY)
    assert p.line == 3
    assert register.check("Y-1203", "YOK-TAX-07", "地方税関係情報", "四十八", DAY).line == 4
    assert register.check("ANY-1", "ANYWHERE", "住民票関係情報", "一", DAY).line == 5


@pytest.mark.parametrize(
    ("args", "reason", "field"),
    [
        (("Z-9", "YOK-TAX-07", "年金給付関係情報", "二十七"), "STAFF_NOT_REGISTERED", "staff_id"),
        (
            ("Y-1203", "HOME-PC", "年金給付関係情報", "二十七"),
            "TERMINAL_NOT_PERMITTED",
            "terminal_id",
        ),
        (("Y-1203", "YOK-TAX-08", "地方税関係情報", "四十八"), "AFFAIR_NOT_PERMITTED", None),
        (("Y-1203", "YOK-TAX-07", "年金給付関係情報", "三十"), "AFFAIR_NOT_PERMITTED", None),
    ],
)
def test_refusals_name_the_reason(args: tuple[str, ...], reason: str, field: str | None) -> None:
    err = refusal(TEXT, *args)
    assert err.reason == reason
    assert err.metadata.get("field") == field
    assert err.metadata["staff_id"] == args[0]


def test_a_registration_outside_its_dates_is_not_in_force() -> None:
    text = "staff_id,terminals,info_kinds,legal_basis_items,valid_from,valid_until\n"
    text += "O-1,*,*,*,2020-04-01,2021-03-31\n"
    assert refusal(text, "O-1", "T", "K", "一").reason == "STAFF_REGISTRATION_NOT_IN_FORCE"
    assert parse(text).check("O-1", "T", "K", "一", date(2021, 3, 31)).line == 2


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("staff_id,terminals\nA,B\n", "line 1: missing column(s) info_kinds, legal_basis_items"),
        ("staff_id,terminals,info_kinds,legal_basis_items,colour\n", "line 1, column 5: unknown"),
        (
            "# c\nstaff_id,terminals,info_kinds,legal_basis_items\nA,T,K,I\nB,,K,I\n",
            "line 4, column 2 (terminals): is empty",
        ),
        (
            "staff_id,terminals,info_kinds,legal_basis_items\nA,T,K\n",
            "line 2: 3 cells; the header has 4",
        ),
        (
            "staff_id,terminals,info_kinds,legal_basis_items,valid_from\nA,T,K,I,2026-13-01\n",
            "line 2, column 5 (valid_from): '2026-13-01' is not a date",
        ),
        (
            "staff_id,terminals,info_kinds,legal_basis_items\n\nA,T|*,K,I\n",
            "line 3, column 2 (terminals): '*' must stand alone",
        ),
        (
            "staff_id,terminals,info_kinds,legal_basis_items\n,T,K,I\n",
            "line 2, column 1 (staff_id)",
        ),
        (
            "staff_id,terminals,info_kinds,legal_basis_items,valid_from,valid_until\n"
            "A,T,K,I,2026-04-01,2025-01-01\n",
            "line 2, column 6 (valid_until): before valid_from",
        ),
        ("# only a comment\n", "no header line"),
    ],
)
def test_a_malformed_register_is_refused_naming_file_and_line(text: str, where: str) -> None:
    with pytest.raises(RegisterError) as err:
        parse(text, "staff.csv")
    assert str(err.value).startswith("staff.csv: ")
    assert where in str(err.value)


def test_a_file_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "staff.csv"
    path.write_bytes(b"staff_id,terminals,info_kinds,legal_basis_items\nA,T,\x93\xfa,I\n")
    with pytest.raises(RegisterError, match=r"staff.csv: line 2: not UTF-8"):
        load(path)


def test_rendered_grants_load_back_and_a_bom_is_accepted(tmp_path: Path) -> None:
    text = render(
        [Grant("A", ("T1", "T2"), ("K",), ("I",), date(2026, 1, 1), None, "名")], "a comment"
    )
    path = tmp_path / "staff.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    register = load(path)
    assert register.check("A", "T2", "K", "I", DAY).valid_from == date(2026, 1, 1)


def test_a_changed_file_is_reloaded_and_a_bad_change_keeps_the_register_in_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "staff.csv"
    path.write_text(render([Grant("A")]), encoding="utf-8")
    file = RegisterFile(path)
    assert file.refresh() is False  # unchanged
    path.write_text(render([Grant("B")]), encoding="utf-8")
    assert file.refresh() is True
    assert file.register.check("B", "T", "K", "I", DAY)
    with pytest.raises(PermissionDenied):
        file.register.check("A", "T", "K", "I", DAY)
    path.write_text("staff_id,terminals\n", encoding="utf-8")
    assert file.refresh() is False
    assert file.register.check("B", "T", "K", "I", DAY)  # still in force
    loads: list[Path] = []
    real_load = staff_register.load
    monkeypatch.setattr(staff_register, "load", lambda p: loads.append(p) or real_load(p))
    assert file.refresh() is False  # the bad change is not retried every poll
    assert loads == []


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from('abY-1,|*"#\n\r\t 　年二2026-04-01\x00\u2028\x85'), max_size=300
    )
)
def test_any_text_either_parses_or_is_refused_with_a_register_error(text: str) -> None:
    header = "staff_id,terminals,info_kinds,legal_basis_items,valid_from,valid_until\n"
    for candidate in (text, header + text):
        try:
            register = parse(candidate, "fuzz.csv")
        except RegisterError as err:
            problem = str(err)
        else:
            problem = "fuzz.csv: parsed"
        assert problem.startswith("fuzz.csv: ")
        if problem != "fuzz.csv: parsed":
            continue
        for rows in register.by_staff.values():
            assert all(p.staff_id and p.line >= 1 for p in rows)


HEADER = "staff_id,terminals,info_kinds,legal_basis_items,valid_from,valid_until,name\n"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1e"])
def test_a_line_separator_inside_a_cell_is_refused_naming_its_line(separator: str) -> None:
    """str.splitlines split the row there: the message named the next line, or none."""
    text = f"{HEADER}A,T,K,I,,,名\nB,T,K,I,,,横浜{separator}花子\nC,T,K,I,,,名\n"
    with pytest.raises(RegisterError) as err:
        parse(text, "staff.csv")
    code = f"U+{ord(separator):04X}"
    assert str(err.value) == f"staff.csv: line 3, column 7: a line separator ({code}) inside a cell"


def test_lines_after_a_separator_in_a_comment_keep_their_numbers() -> None:
    text = f"# note\u2028more\n{HEADER}A,T,K,I,2026-13-01,,\n"
    with pytest.raises(RegisterError, match=r"^staff.csv: line 3, column 5 \(valid_from\)"):
        parse(text, "staff.csv")
    assert parse(f"# note\u2028more\n{HEADER}A,T,K,I,,,\n").check("A", "T", "K", "I", DAY).line == 3


def test_a_row_with_a_quoted_cell_over_two_lines_is_named_by_its_first_line() -> None:
    text = f'{HEADER}A,T,K,I,,,"two\nlines"\nB,,K,I,,,\n'
    with pytest.raises(RegisterError, match=r"^staff.csv: line 4, column 2 \(terminals\)"):
        parse(text, "staff.csv")
    assert parse(f'{HEADER}A,T,K,I,,,"two\nlines"\n').check("A", "T", "K", "I", DAY).line == 2


def test_a_byte_that_is_not_utf8_after_a_separator_names_the_readers_line(tmp_path: Path) -> None:
    path = tmp_path / "staff.csv"
    path.write_bytes(b"# a\xe2\x80\xa8b\n" + HEADER.encode() + b"A,T,\xff,I,,,\n")
    with pytest.raises(RegisterError, match=r"staff.csv: line 3: not UTF-8"):
        load(path)
