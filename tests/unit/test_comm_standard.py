"""comm_server.standard: legacy records into the standard layout and back, bad ones kept home."""

from __future__ import annotations

import json

import pytest

from comm_server import standard
from comm_server.mapping.registry import load_mapper
from renkei.errors import Unavailable
from renkei.layout.v1 import layout_pb2

TAX = "地方税関係情報"
PENSION = "年金給付関係情報"
BENEFIT = (
    b'<nk:Benefit xmlns:nk="urn:renkei:stub:nenkin:v1"><nk:KisoNenkinBango>1234-567890'
    b"</nk:KisoNenkinBango><nk:NenkinShubetsu>01</nk:NenkinShubetsu><nk:NengakuYen>795000"
    b"</nk:NengakuYen><nk:ShikyuKaishiNengetsu>2023-06</nk:ShikyuKaishiNengetsu>"
    b"<nk:Teishi>false</nk:Teishi></nk:Benefit>"
)


def test_a_record_travels_tagged_without_the_provider_s_local_id() -> None:
    record = standard.to_standard(load_mapper("soap_pension"), PENSION, BENEFIT)
    assert record.local_person_id == ""
    payload = standard.sealed_payload(record)
    assert payload.startswith(standard.ANSWER_TAG)
    opened = standard.open_payload(payload, PENSION)
    assert opened == record
    assert opened is not None
    assert opened.pension_benefit.annual_amount_yen == 795_000
    rendered = json.loads(standard.render(opened))
    assert rendered["pension_benefit"]["pension_kind"] == "PENSION_KIND_OLD_AGE_BASIC"


def test_a_bad_record_keeps_its_detail_for_the_provider_log_only() -> None:
    bad = BENEFIT.replace(b"NengakuYen>795000<", b"NengakuYen>79S000<")
    with pytest.raises(standard.BadLegacyRecord) as caught:
        standard.to_standard(load_mapper("soap_pension"), PENSION, bad)
    err = caught.value
    assert (err.reason, err.metadata) == ("LEGACY_RECORD_INVALID", {"info_kind": PENSION})
    assert "79S000" not in err.message
    assert "NengakuYen" not in err.message
    assert "NengakuYen" in err.log_detail
    assert "79S000" in err.log_detail
    assert len(err.log_detail) <= standard.DETAIL_CHARS


def test_an_untagged_answer_is_passed_on_and_a_wrong_kind_refused() -> None:
    assert standard.open_payload(b'{"json": "lines"}', TAX) is None
    record = standard.to_standard(load_mapper("soap_pension"), PENSION, BENEFIT)
    with pytest.raises(Unavailable) as caught:
        standard.open_payload(standard.sealed_payload(record), TAX)
    assert caught.value.reason == "ANSWER_INVALID"
    with pytest.raises(Unavailable):
        standard.open_payload(standard.ANSWER_TAG + b"\xff\xff\xff", TAX)


def test_the_requester_s_own_format_or_nothing() -> None:
    tax = layout_pb2.StandardRecord(layout_version="1.0", local_person_id="S-0001")
    tax.local_tax.fiscal_year = 2026
    tax.local_tax.total_income = 3_850_000
    own, problem = standard.to_own_format(load_mapper("json_http"), TAX, tax)
    assert (json.loads(own)["totalIncome"], problem) == (3_850_000, "")
    assert standard.to_own_format(load_mapper("csv_insurer"), TAX, tax) == (b"", "")
    assert standard.to_own_format(None, TAX, tax) == (b"", "")
