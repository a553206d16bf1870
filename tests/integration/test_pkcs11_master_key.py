"""The PKCS#11 master key against a private SoftHSM2 token (skipped where SoftHSM2 is absent)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import exceptions as p11err
from pkcs11.constants import Attribute, ObjectClass
from pkcs11.mechanisms import KeyType

from renkei.db import create_engine
from renkei.keystore.master import AesGcmMasterKey, KeyUnwrapError, load_master_key
from renkei.keystore.pkcs11 import Pkcs11MasterKey, create_token_key
from renkei.keystore.store import KeyStore

_MODULES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
)
TOKEN = "renkei"
SO_PIN = "1234"
PIN = "5678"
LABEL = "renkei-master"
PIN_ENV = "RENKEI_HSM_PIN"


@dataclass(frozen=True)
class Hsm:
    module: str

    def spec(self, label: str = LABEL, pin_env: str = PIN_ENV) -> str:
        return f"module={self.module};token={TOKEN};label={label};pin-env={pin_env}"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hsm]:
    util = shutil.which("softhsm2-util")
    module = next((path for path in _MODULES if path.is_file()), None)
    if util is None or module is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    real = os.path.realpath(module)
    with pytest.MonkeyPatch.context() as mp:
        # SoftHSM2 reads its configuration when the library is initialised: set it first.
        pkcs11.unload(real)
        mp.setenv("SOFTHSM2_CONF", str(conf))
        subprocess.run(
            [util, "--init-token", "--free", "--label", TOKEN, "--so-pin", SO_PIN, "--pin", PIN],
            check=True,
            capture_output=True,
            timeout=60,
        )
        create_token_key(str(module), TOKEN, PIN, LABEL)
        try:
            yield Hsm(str(module))
        finally:
            pkcs11.unload(real)


@pytest.fixture
def opened(hsm: Hsm) -> Iterator[Callable[[Pkcs11MasterKey], Pkcs11MasterKey]]:
    """Register master keys to close after the test (no login outlives a test)."""
    keys: list[Pkcs11MasterKey] = []

    def register(key: Pkcs11MasterKey) -> Pkcs11MasterKey:
        keys.append(key)
        return key

    yield register
    for key in keys:
        key.close()


@pytest.fixture
def master(hsm: Hsm, opened: Callable[[Pkcs11MasterKey], Pkcs11MasterKey]) -> Pkcs11MasterKey:
    return opened(Pkcs11MasterKey(hsm.module, TOKEN, LABEL, PIN))


def test_wrap_unwrap_round_trip(master: Pkcs11MasterKey) -> None:
    assert master.key_id == f"pkcs11:{TOKEN}/{LABEL}"
    material = os.urandom(32)
    wrapped = master.wrap(material, b"aad")
    assert material not in wrapped
    assert len(wrapped) == 12 + len(material) + 16
    assert master.wrap(material, b"aad") != wrapped  # a fresh nonce each time
    assert master.unwrap(wrapped, b"aad") == material
    assert master.unwrap(master.wrap(b"", b""), b"") == b""


def test_wrong_aad_or_altered_data_does_not_open(master: Pkcs11MasterKey) -> None:
    wrapped = master.wrap(b"key material", b"renkei/keystore/v1|1|a|1")
    for bad_aad in (b"renkei/keystore/v1|1|a|2", b""):
        with pytest.raises(KeyUnwrapError):
            master.unwrap(wrapped, bad_aad)
    for position in (0, 12, len(wrapped) - 1):  # nonce, ciphertext, tag
        altered = bytearray(wrapped)
        altered[position] ^= 1
        with pytest.raises(KeyUnwrapError):
            master.unwrap(bytes(altered), b"renkei/keystore/v1|1|a|1")
    for cut in (wrapped[:-1], wrapped[:27], b""):
        with pytest.raises(KeyUnwrapError):
            master.unwrap(cut, b"renkei/keystore/v1|1|a|1")
    # The session is still usable after the token refused data.
    assert master.unwrap(wrapped, b"renkei/keystore/v1|1|a|1") == b"key material"


def test_another_token_key_does_not_open(
    hsm: Hsm, master: Pkcs11MasterKey, opened: Callable[[Pkcs11MasterKey], Pkcs11MasterKey]
) -> None:
    create_token_key(hsm.module, TOKEN, PIN, "renkei-other")
    other = opened(Pkcs11MasterKey(hsm.module, TOKEN, "renkei-other", PIN))
    assert other.key_id != master.key_id
    with pytest.raises(KeyUnwrapError):
        other.unwrap(master.wrap(b"secret", b"aad"), b"aad")


def test_created_key_never_leaves_the_token(hsm: Hsm) -> None:
    token = pkcs11.lib(os.path.realpath(hsm.module)).get_token(token_label=TOKEN)
    with token.open(user_pin=PIN) as session:
        key = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=LABEL)
        assert key.key_length == 256
        assert key[Attribute.TOKEN] is True
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.WRAP] is False
        with pytest.raises(p11err.AttributeSensitive):
            key[Attribute.VALUE]
    # Without logging in, the key is not even visible.
    with token.open() as session:
        assert not list(session.get_objects({Attribute.LABEL: LABEL}))


def test_create_token_key_never_replaces_a_key(hsm: Hsm) -> None:
    with pytest.raises(FileExistsError, match="never replaced"):
        create_token_key(hsm.module, TOKEN, PIN, LABEL)


def test_keystore_under_the_token_key(
    hsm: Hsm,
    master: Pkcs11MasterKey,
    opened: Callable[[Pkcs11MasterKey], Pkcs11MasterKey],
    tmp_path: Path,
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    try:
        store = KeyStore(engine, master)
        given = os.urandom(32)
        assert store.create("hub/signing", given) == 1
        assert store.create("hub/signing") == 2
        assert store.create("comm/sealing", size=16) == 1
        versions = store.versions("hub/signing")
        assert [(v.version, v.current) for v in versions] == [(1, False), (2, True)]
        assert versions[0].material == given
        assert len(store.current("comm/sealing").material) == 16
        with engine.connect() as conn:
            ids = conn.exec_driver_sql("SELECT DISTINCT master_key_id FROM key_versions").all()
        assert ids == [(master.key_id,)]

        # Another process (here: another session on the token) reads the same material.
        again = opened(Pkcs11MasterKey(hsm.module, TOKEN, LABEL, PIN))
        reread = KeyStore(engine, again)
        assert [v.material for v in reread.all()] == [v.material for v in store.all()]

        # Under another master key nothing opens.
        with pytest.raises(KeyUnwrapError):
            KeyStore(engine, AesGcmMasterKey(os.urandom(32), "test")).all()
    finally:
        engine.dispose()


def test_load_master_key_reads_the_pin_from_the_environment(
    hsm: Hsm,
    master: Pkcs11MasterKey,
    opened: Callable[[Pkcs11MasterKey], Pkcs11MasterKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)
    loaded = load_master_key("pkcs11:" + hsm.spec())
    assert isinstance(loaded, Pkcs11MasterKey)
    opened(loaded)
    assert loaded.key_id == master.key_id
    assert loaded.unwrap(master.wrap(b"x" * 32, b"aad"), b"aad") == b"x" * 32


def test_load_master_key_without_the_pin_variable(
    hsm: Hsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PIN_ENV, raising=False)
    with pytest.raises(ValueError, match=f"environment variable {PIN_ENV} .* is not set"):
        load_master_key("pkcs11:" + hsm.spec())


def test_closing_one_key_leaves_another_working(
    hsm: Hsm, opened: Callable[[Pkcs11MasterKey], Pkcs11MasterKey]
) -> None:
    # PKCS#11 login is per process: closing one session logs every session out.
    first = opened(Pkcs11MasterKey(hsm.module, TOKEN, LABEL, PIN))
    second = opened(Pkcs11MasterKey(hsm.module, TOKEN, LABEL, PIN))
    wrapped = first.wrap(b"material", b"aad")
    first.close()
    assert second.unwrap(wrapped, b"aad") == b"material"
    assert first.unwrap(wrapped, b"aad") == b"material"  # reopens on use


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("token=renkei;label=renkei-master;pin-env=RENKEI_HSM_PIN", "lacks module"),
        ("{module};token=renkei;label=renkei-master;pin-env=RENKEI_HSM_PIN;slot=1", "unknown"),
        ("{module};token=renkei;token=x;label=renkei-master;pin-env=RENKEI_HSM_PIN", "twice"),
        ("{module};token=renkei;label;pin-env=RENKEI_HSM_PIN", "not name=value"),
        ("module=/nonexistent.so;token=renkei;label=k;pin-env=RENKEI_HSM_PIN", "does not exist"),
        ("{module};token=absent;label=renkei-master;pin-env=RENKEI_HSM_PIN", "no PKCS#11 token"),
        ("{module};token=renkei;label=absent;pin-env=RENKEI_HSM_PIN", "no AES key"),
        ("{module};token=renkei;label=renkei-master;pin-env=WRONG_PIN", "PIN is not accepted"),
        ("{module};token=renkei;label=" + "x" * 60 + ";pin-env=RENKEI_HSM_PIN", "longer than"),
    ],
)
def test_bad_specs_give_clear_errors(
    hsm: Hsm, monkeypatch: pytest.MonkeyPatch, spec: str, message: str
) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)
    monkeypatch.setenv("WRONG_PIN", "0000")
    with pytest.raises(ValueError, match=message):
        load_master_key("pkcs11:" + spec.format(module=f"module={hsm.module}"))
