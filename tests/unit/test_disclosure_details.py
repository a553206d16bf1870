"""renkei.disclosure: details sealed by an agency open at the portal, and only as themselves."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from renkei import disclosure, sealing
from renkei.disclosure import Details
from renkei.errors import InvalidArgument

APP = "app-0123456789abcdef"
DETAILS = Details(
    serial=42,
    agency_id="141003",
    role="requester",
    logged_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
    info_kind="年金給付関係情報",
    legal_basis_item="二十七",
    counterpart_agency_id="nenkin",
    content='{"年金額": 1200000}',
    purpose="賦課",
    outcome="OK",
    answered_at=datetime(2026, 12, 7, 10, 0, tzinfo=UTC),
)


def _open(sealed: bytes, key: object, **overrides: object) -> Details:
    args: dict[str, object] = {
        "private_key": key,
        "application_id": APP,
        "serial": 42,
        "agency_id": "141003",
        **overrides,
    }
    return disclosure.open_details(sealed, **args)  # type: ignore[arg-type]


def test_sealed_details_open_to_exactly_what_was_sealed() -> None:
    key = sealing.generate_private_key()
    sealed = disclosure.seal_details(DETAILS, recipient=key.public_key(), application_id=APP)
    assert _open(sealed, key) == DETAILS


def test_a_provider_row_without_purpose_round_trips() -> None:
    key = sealing.generate_private_key()
    provider = replace(DETAILS, role="provider", purpose=None)
    sealed = disclosure.seal_details(provider, recipient=key.public_key(), application_id=APP)
    assert _open(sealed, key) == provider


@pytest.mark.parametrize(
    "overrides",
    [
        {"application_id": "app-ffffffffffffffff"},  # another application
        {"serial": 43},
        {"agency_id": "nenkin"},
        {"private_key": sealing.generate_private_key()},
    ],
)
def test_details_do_not_open_as_another_application_exchange_agency_or_key(
    overrides: dict[str, object],
) -> None:
    key = sealing.generate_private_key()
    sealed = disclosure.seal_details(DETAILS, recipient=key.public_key(), application_id=APP)
    with pytest.raises(InvalidArgument) as caught:
        _open(sealed, overrides.pop("private_key", key), **overrides)
    assert caught.value.reason == "SEALED_PAYLOAD_INVALID"
    assert caught.value.metadata["field"] == "sealed_details"


def _sealed_plain(plain: bytes, key: object, serial: int = 42, agency: str = "141003") -> bytes:
    info = disclosure.details_info(APP, serial, agency)
    return sealing.seal(plain, key.public_key(), info)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "plain",
    [
        b"not json",
        b"[]",
        b'{"serial": 42}',
        "\xff".encode("latin-1"),
    ],
)
def test_a_payload_that_opens_but_does_not_parse_is_refused(plain: bytes) -> None:
    key = sealing.generate_private_key()
    with pytest.raises(InvalidArgument) as caught:
        _open(_sealed_plain(plain, key), key)
    assert caught.value.reason == "SEALED_PAYLOAD_INVALID"


def test_details_naming_another_serial_are_refused_even_under_the_right_info() -> None:
    key = sealing.generate_private_key()
    # Sealed (dishonestly) under serial 42's info, but holding serial 7's row.
    plain = disclosure._encode(replace(DETAILS, serial=7))
    with pytest.raises(InvalidArgument) as caught:
        _open(_sealed_plain(plain, key), key)
    assert caught.value.reason == "SEALED_PAYLOAD_INVALID"
    assert "exchange 7" in caught.value.message


def test_a_bad_role_or_a_naive_time_is_not_sealed() -> None:
    key = sealing.generate_private_key()
    with pytest.raises(ValueError, match="role"):
        disclosure.seal_details(
            replace(DETAILS, role="hub"), recipient=key.public_key(), application_id=APP
        )
    with pytest.raises(ValueError, match="time zone"):
        disclosure.seal_details(
            replace(DETAILS, logged_at=datetime(2026, 1, 1)),
            recipient=key.public_key(),
            application_id=APP,
        )


def test_the_plaintext_is_canonical_json() -> None:
    assert disclosure._encode(DETAILS) == disclosure._encode(replace(DETAILS))
    text = disclosure._encode(DETAILS).decode()
    assert text.startswith('{"agency_id":"141003","answered_at":"2026-12-07T10:00:00+00:00"')
    assert "年金" in text  # UTF-8, not \u escapes
