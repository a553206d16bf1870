"""Batches of ID codes sealed to the hub for one agency (renkei/id_code_batch.py)."""

from __future__ import annotations

import pytest

from renkei import codes, id_code_batch, sealing
from renkei.errors import InvalidArgument

HUB = sealing.generate_private_key()
CODES = [bytes([1]) + bytes([i]) * (codes.ID_CODE_BYTES - 1) for i in range(3)]


def test_a_batch_opens_for_its_agency_with_its_codes_in_order() -> None:
    sealed = id_code_batch.seal_batch(CODES, HUB.public_key(), "city", b"b" * 16)
    assert sealed.startswith(b"RKB1" + b"b" * 16)
    assert id_code_batch.open_batch(sealed, HUB, "city") == (b"b" * 16, CODES)
    assert id_code_batch.batch_id_of(sealed) == b"b" * 16


def test_a_batch_for_another_agency_or_with_another_batch_id_does_not_open() -> None:
    sealed = id_code_batch.seal_batch(CODES, HUB.public_key(), "pension")
    with pytest.raises(InvalidArgument) as err:
        id_code_batch.open_batch(sealed, HUB, "city")
    assert (err.value.reason, err.value.metadata["field"]) == (
        "SEALED_PAYLOAD_INVALID",
        "sealed_batch",
    )
    relabelled = sealed[:4] + b"x" * 16 + sealed[20:]
    with pytest.raises(InvalidArgument) as err:
        id_code_batch.open_batch(relabelled, HUB, "pension")
    assert err.value.reason == "SEALED_PAYLOAD_INVALID"
    # A single sealed ID code is not a batch, even with a batch header in front.
    single = sealing.seal(CODES[0], HUB.public_key(), sealing.id_code_sealing_info("city"))
    with pytest.raises(InvalidArgument) as err:
        id_code_batch.open_batch(b"RKB1" + b"b" * 16 + single, HUB, "city")
    assert err.value.reason == "SEALED_PAYLOAD_INVALID"


@pytest.mark.parametrize("raw", [b"", b"RKB1", b"RKB2" + b"b" * 40, b"\x00" * 100])
def test_a_header_that_is_not_a_batch_is_malformed_at_offset_0(raw: bytes) -> None:
    with pytest.raises(InvalidArgument) as err:
        id_code_batch.open_batch(raw, HUB, "city")
    assert err.value.reason == "SEALED_BATCH_MALFORMED"
    assert err.value.metadata == {"field": "sealed_batch", "byte_offset": "0"}
    assert "does not start with a batch header" in err.value.message


def test_content_that_is_not_whole_id_codes_is_malformed_after_the_header() -> None:
    batch_id = b"c" * 16
    info = id_code_batch.batch_sealing_info("city", batch_id)
    for plain in (b"", CODES[0][:-1], CODES[0] + b"x"):
        sealed = b"RKB1" + batch_id + sealing.seal(plain, HUB.public_key(), info)
        with pytest.raises(InvalidArgument) as err:
            id_code_batch.open_batch(sealed, HUB, "city", field="sealed_batch")
        assert err.value.reason == "SEALED_BATCH_MALFORMED"
        assert err.value.metadata == {"field": "sealed_batch", "byte_offset": "20"}
        assert "not 1 to 1000 ID codes of 28 bytes" in err.value.message
    too_many = b"RKB1" + batch_id + sealing.seal(CODES[0] * 1001, HUB.public_key(), info)
    with pytest.raises(InvalidArgument) as err:
        id_code_batch.open_batch(too_many, HUB, "city")
    assert err.value.reason == "SEALED_BATCH_MALFORMED"
    assert err.value.message == f"sealed_batch is {len(too_many)} bytes; at most 28068"


def test_sealing_refuses_an_empty_or_oversized_batch() -> None:
    with pytest.raises(ValueError, match="1 to 1000"):
        id_code_batch.seal_batch([], HUB.public_key(), "city")
    with pytest.raises(ValueError, match="1 to 1000"):
        id_code_batch.seal_batch(CODES[:1] * 1001, HUB.public_key(), "city")
    with pytest.raises(ValueError, match="ID codes have"):
        id_code_batch.seal_batch([b"short"], HUB.public_key(), "city")
