"""The deadline budget and the field limits every hop shares."""

from __future__ import annotations

import pytest

from renkei import deadline, limits
from renkei.errors import DeadlineExceeded, InvalidArgument


def test_one_person_keeps_back_exactly_the_floor() -> None:
    assert deadline.margin(10.0, 0.05) == 0.05
    assert deadline.margin(None, 0.02, count=1) == 0.02


def test_a_bulk_request_keeps_back_a_share_or_its_per_person_floor() -> None:
    # 5000 persons: floor 0.05 + 0.1 s, share 0.1 of 10 s = 1 s.
    assert deadline.margin(10.0, 0.05, count=5000) == pytest.approx(1.0)
    assert deadline.margin(0.5, 0.05, count=5000) == pytest.approx(0.15)
    assert deadline.margin(None, 0.05, count=5000) == pytest.approx(0.15)


def test_budget_is_the_ceiling_or_what_is_left() -> None:
    assert deadline.budget(8.0, None, 0.05) == 8.0
    assert deadline.budget(8.0, 1.0, 0.05) == pytest.approx(0.95)
    with pytest.raises(DeadlineExceeded) as caught:
        deadline.budget(8.0, 0.04, 0.05, for_what="to ask the provider")
    assert caught.value.reason == "DEADLINE_TOO_SHORT"
    assert "to ask the provider" in caught.value.message


def test_field_checks_name_the_field_and_the_item() -> None:
    with pytest.raises(InvalidArgument) as caught:
        limits.check_person("items[3].", "x" * (limits.MAX_ID + 1), b"")
    assert caught.value.metadata["field"] == "items[3].local_person_id"
    with pytest.raises(InvalidArgument) as caught:
        limits.check_kind("k" * (limits.MAX_INFO_KIND + 1), "一")
    assert caught.value.metadata["field"] == "info_kind"
    with pytest.raises(InvalidArgument) as caught:
        limits.check_requester_fields(
            provider_agency_id="p",
            info_kind="k",
            legal_basis_item="一",
            purpose="",
            staff_id="s",
            terminal_id="t",
        )
    assert caught.value.metadata["field"] == "purpose"
