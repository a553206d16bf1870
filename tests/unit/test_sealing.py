"""Unit tests for renkei.sealing: HPKE sealing bound to an exchange."""

from __future__ import annotations

import random
from collections.abc import Callable

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from renkei import sealing
from renkei.errors import InvalidArgument

INFO = sealing.exchange_info("answer", 42, "city-001", "pension", "年金給付関係情報", "二十七")
PLAINTEXT = "年金給付関係情報: 支給額 123,456 円".encode()


@pytest.fixture(scope="module")
def key() -> x25519.X25519PrivateKey:
    return sealing.generate_private_key()


def _open_refused(sealed: bytes, key: x25519.X25519PrivateKey, info: bytes = INFO) -> None:
    with pytest.raises(InvalidArgument) as err:
        sealing.open_sealed(sealed, key, info, field="sealed_answer")
    assert type(err.value) is InvalidArgument
    assert err.value.reason == "SEALED_PAYLOAD_INVALID"
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.metadata == {"field": "sealed_answer"}
    assert "sealed_answer" in err.value.message
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__


def test_round_trip(key: x25519.X25519PrivateKey) -> None:
    sealed = sealing.seal(PLAINTEXT, key.public_key(), INFO)
    assert PLAINTEXT not in sealed
    assert sealing.open_sealed(sealed, key, INFO, field="sealed_answer") == PLAINTEXT


@pytest.mark.parametrize("plaintext", [b"", b"\0", bytes(range(256)) * 64])
def test_round_trip_sizes(key: x25519.X25519PrivateKey, plaintext: bytes) -> None:
    sealed = sealing.seal(plaintext, key.public_key(), INFO)
    assert sealing.open_sealed(sealed, key, INFO, field="f") == plaintext


def test_round_trip_via_raw_key_bytes(key: x25519.X25519PrivateKey) -> None:
    public_raw = sealing.public_key_bytes(key)
    assert len(public_raw) == sealing.PUBLIC_KEY_BYTES
    assert sealing.public_key_bytes(key.public_key()) == public_raw
    private_raw = sealing.private_key_bytes(key)
    assert len(private_raw) == 32
    reloaded = sealing.load_private_key(private_raw)
    assert sealing.public_key_bytes(reloaded) == public_raw
    sealed = sealing.seal(PLAINTEXT, sealing.load_public_key(public_raw), INFO)
    assert sealing.open_sealed(sealed, reloaded, INFO, field="f") == PLAINTEXT


def test_two_seals_of_the_same_plaintext_differ(key: x25519.X25519PrivateKey) -> None:
    seals = {sealing.seal(PLAINTEXT, key.public_key(), INFO) for _ in range(5)}
    assert len(seals) == 5
    assert len({s[:32] for s in seals}) == 5  # a fresh ephemeral key each time
    for sealed in seals:
        assert sealing.open_sealed(sealed, key, INFO, field="f") == PLAINTEXT


def test_wrong_info_fails(key: x25519.X25519PrivateKey) -> None:
    sealed = sealing.seal(PLAINTEXT, key.public_key(), INFO)
    other_serial = sealing.exchange_info(
        "answer", 43, "city-001", "pension", "年金給付関係情報", "二十七"
    )
    _open_refused(sealed, key, other_serial)
    _open_refused(sealed, key, sealing.exchange_info("query", 42))
    _open_refused(sealed, key, b"")
    _open_refused(sealed, key, INFO + b"x")


def test_wrong_key_fails(key: x25519.X25519PrivateKey) -> None:
    sealed = sealing.seal(PLAINTEXT, key.public_key(), INFO)
    _open_refused(sealed, sealing.generate_private_key())


def test_tampered_ciphertext_fails(key: x25519.X25519PrivateKey) -> None:
    sealed = sealing.seal(PLAINTEXT, key.public_key(), INFO)
    rng = random.Random(1234)
    positions = {0, 31, 32, len(sealed) - 16, len(sealed) - 1}
    positions |= set(rng.sample(range(len(sealed)), 20))
    for pos in sorted(positions):
        tampered = bytearray(sealed)
        tampered[pos] ^= 1 << rng.randrange(8)
        _open_refused(bytes(tampered), key)


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda s: b"", id="empty"),
        pytest.param(lambda s: s[:1], id="one-byte"),
        pytest.param(lambda s: s[:31], id="short-enc"),
        pytest.param(lambda s: s[:32], id="enc-only"),
        pytest.param(lambda s: s[:48], id="enc-and-partial-tag"),
        pytest.param(lambda s: s[:-1], id="minus-one"),
        pytest.param(lambda s: s[32:], id="no-enc"),
        pytest.param(lambda s: s + b"\0", id="extra-byte"),
        pytest.param(lambda s: b"\0" * 32 + s[32:], id="zero-enc"),
        pytest.param(lambda s: b"\xff" * 32 + s[32:], id="ff-enc"),
    ],
)
def test_truncated_or_malformed_fails_as_invalid_payload(
    key: x25519.X25519PrivateKey, cut: Callable[[bytes], bytes]
) -> None:
    sealed = sealing.seal(PLAINTEXT, key.public_key(), INFO)
    _open_refused(cut(sealed), key)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_load_public_key_rejects_wrong_length(length: int) -> None:
    with pytest.raises(InvalidArgument) as err:
        sealing.load_public_key(b"\x09" * length, field="provider sealing key")
    assert err.value.reason == "SEALING_KEY_INVALID"
    assert err.value.metadata == {"field": "provider sealing key"}
    assert str(length) in err.value.message
    assert "provider sealing key" in err.value.message


def test_load_public_key_default_field_name() -> None:
    with pytest.raises(InvalidArgument) as err:
        sealing.load_public_key(b"")
    assert err.value.metadata == {"field": "public_key"}


def test_exchange_info_format() -> None:
    assert sealing.exchange_info("answer", 42, "city-001") == (
        b"renkei/v1\0\0\0\x06answer\0\0\0\x0242\0\0\0\x08city-001"
    )
    assert sealing.exchange_info("id-code") == b"renkei/v1\0\0\0\x07id-code"
    assert sealing.exchange_info("q", "二十七").endswith(b"\0\0\0\x09" + "二十七".encode())
    assert sealing.exchange_info("answer", 1) != sealing.exchange_info("answer", 2)
    assert sealing.exchange_info("query", 1) != sealing.exchange_info("answer", 1)


def test_exchange_info_is_unambiguous() -> None:
    assert sealing.exchange_info("query", "city", "nta", "a|b", "c") != sealing.exchange_info(
        "query", "city", "nta", "a", "b|c"
    )
