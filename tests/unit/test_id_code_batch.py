"""Batches of ID codes sealed to the hub for one agency (renkei/id_code_batch.py),
and the ID issuer's signature inside every sealed ID code (renkei/id_code_signing.py)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from renkei import codes, id_code_batch, id_code_signing, sealing
from renkei.errors import InvalidArgument, PermissionDenied

HUB = sealing.generate_private_key()
ISSUER = ed25519.Ed25519PrivateKey.generate()
FORGER = ed25519.Ed25519PrivateKey.generate()  # any key but the ID issuer's
ISSUER_PUBLIC = ISSUER.public_key()
CODES = [bytes([1]) + bytes([i]) * (codes.ID_CODE_BYTES - 1) for i in range(3)]


def _seal(
    ids: list[bytes], agency: str, batch_id: bytes | None = None, signer: object = ISSUER
) -> bytes:
    return id_code_batch.seal_batch(ids, HUB.public_key(), agency, batch_id, signer=signer)  # type: ignore[arg-type]


def _open(sealed: bytes, agency: str, field: str = "sealed_batch") -> tuple[bytes, list[bytes]]:
    return id_code_batch.open_batch(sealed, HUB, agency, issuer_key=ISSUER_PUBLIC, field=field)


def test_a_batch_opens_for_its_agency_with_its_codes_in_order() -> None:
    sealed = _seal(CODES, "city", b"b" * 16)
    assert sealed.startswith(b"RKB2" + b"b" * 16)
    assert _open(sealed, "city") == (b"b" * 16, CODES)
    assert id_code_batch.batch_id_of(sealed) == b"b" * 16


def test_a_batch_for_another_agency_or_with_another_batch_id_does_not_open() -> None:
    sealed = _seal(CODES, "pension")
    with pytest.raises(InvalidArgument) as err:
        _open(sealed, "city")
    assert (err.value.reason, err.value.metadata["field"]) == (
        "SEALED_PAYLOAD_INVALID",
        "sealed_batch",
    )
    relabelled = sealed[:4] + b"x" * 16 + sealed[20:]
    with pytest.raises(InvalidArgument) as err:
        _open(relabelled, "pension")
    assert err.value.reason == "SEALED_PAYLOAD_INVALID"
    # A single sealed ID code is not a batch, even with a batch header in front.
    single = sealing.seal(CODES[0], HUB.public_key(), sealing.id_code_sealing_info("city"))
    with pytest.raises(InvalidArgument) as err:
        _open(b"RKB2" + b"b" * 16 + single, "city")
    assert err.value.reason == "SEALED_PAYLOAD_INVALID"


def test_a_batch_sealed_to_the_hub_by_anyone_but_the_id_issuer_is_refused() -> None:
    # HPKE base mode authenticates no sender: the hub's public key is all a forger needs.
    forged = _seal(CODES, "city", signer=FORGER)
    with pytest.raises(PermissionDenied) as err:
        _open(forged, "city")
    assert (err.value.reason, err.value.metadata) == (
        "ID_CODE_NOT_FROM_ISSUER",
        {"field": "sealed_batch"},
    )
    batch_id = b"u" * 16
    info = id_code_batch.batch_sealing_info("city", batch_id)
    unsigned = b"RKB2" + batch_id + sealing.seal(b"".join(CODES), HUB.public_key(), info)
    with pytest.raises(PermissionDenied):
        _open(unsigned, "city")


def test_a_single_id_code_is_taken_only_with_the_issuers_signature() -> None:
    info = sealing.id_code_sealing_info("city")
    plain = id_code_signing.signed(ISSUER, info, CODES[0])
    assert id_code_signing.verified(ISSUER_PUBLIC, info, plain, field="sealed_id_code") == CODES[0]
    for bad in (
        id_code_signing.signed(FORGER, info, CODES[0]),
        id_code_signing.signed(ISSUER, sealing.id_code_sealing_info("pension"), CODES[0]),
        CODES[0],
        b"",
    ):
        with pytest.raises(PermissionDenied) as err:
            id_code_signing.verified(ISSUER_PUBLIC, info, bad, field="sealed_id_code")
        assert err.value.reason == "ID_CODE_NOT_FROM_ISSUER"


@pytest.mark.parametrize("raw", [b"", b"RKB2", b"RKB1" + b"b" * 40, b"\x00" * 100])
def test_a_header_that_is_not_a_batch_is_malformed_at_offset_0(raw: bytes) -> None:
    with pytest.raises(InvalidArgument) as err:
        _open(raw, "city")
    assert err.value.reason == "SEALED_BATCH_MALFORMED"
    assert err.value.metadata == {"field": "sealed_batch", "byte_offset": "0"}
    assert "does not start with a batch header" in err.value.message


def test_content_that_is_not_whole_id_codes_is_malformed_after_the_header() -> None:
    batch_id = b"c" * 16
    info = id_code_batch.batch_sealing_info("city", batch_id)
    for ids in (CODES[0][:-1], CODES[0] + b"x"):
        plain = id_code_signing.signed(ISSUER, info, ids)
        sealed = b"RKB2" + batch_id + sealing.seal(plain, HUB.public_key(), info)
        with pytest.raises(InvalidArgument) as err:
            _open(sealed, "city")
        assert err.value.reason == "SEALED_BATCH_MALFORMED"
        assert err.value.metadata == {"field": "sealed_batch", "byte_offset": "20"}
        assert "not 1 to 1000 ID codes of 28 bytes" in err.value.message
    plain = id_code_signing.signed(ISSUER, info, CODES[0] * 1001)
    too_many = b"RKB2" + batch_id + sealing.seal(plain, HUB.public_key(), info)
    with pytest.raises(InvalidArgument) as err:
        _open(too_many, "city")
    assert err.value.reason == "SEALED_BATCH_MALFORMED"
    assert err.value.message == f"sealed_batch is {len(too_many)} bytes; at most 28132"


def test_sealing_refuses_an_empty_or_oversized_batch() -> None:
    with pytest.raises(ValueError, match="1 to 1000"):
        _seal([], "city")
    with pytest.raises(ValueError, match="1 to 1000"):
        _seal(CODES[:1] * 1001, "city")
    with pytest.raises(ValueError, match="ID codes have"):
        _seal([b"short"], "city")
