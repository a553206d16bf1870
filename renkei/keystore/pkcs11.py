"""A master key that never leaves a PKCS#11 token (an HSM, or SoftHSM2 for tests).

Spec (after the ``pkcs11:`` prefix that ``load_master_key`` strips), ``;``-separated
``name=value`` pairs, all four required::

    pkcs11:module=/usr/lib/softhsm/libsofthsm2.so;token=renkei;label=renkei-master;pin-env=RENKEI_HSM_PIN

- ``module``   path of the token's PKCS#11 library (``.so``);
- ``token``    the token label;
- ``label``    the label (``CKA_LABEL``) of the AES-256 secret key in that token;
- ``pin-env``  the name of the environment variable holding the user PIN. The PIN itself is
  never written in a configuration file. (This is renkei's own format, not an RFC 7512 URI.)

``key_id`` is ``pkcs11:<token>/<label>`` (at most 64 characters: it is stored beside each
wrapped key).

Mechanism: ``wrap`` is ``CKM_AES_GCM`` computed by the token with its non-extractable key,
a fresh random 96-bit nonce and the caller's AAD, 128-bit tag; the result is
``nonce || ciphertext || tag``, the same layout as the file master key. The key material is
never in this process. A tag that does not verify, or data cut short, raises
``KeyUnwrapError``. (SoftHSM2 2.6 reports a failed GCM tag as ``CKR_GENERAL_ERROR``, other
tokens as ``CKR_ENCRYPTED_DATA_INVALID``; both mean "does not open" here.)

Operators create the key once, in an initialised token, with ``create_token_key``::

    softhsm2-util --init-token --free --label renkei --so-pin ... --pin ...
    python -c 'from renkei.keystore.pkcs11 import create_token_key; \\
        create_token_key("/usr/lib/softhsm/libsofthsm2.so", "renkei", PIN, "renkei-master")'

It generates the key inside the token as sensitive and non-extractable, usable only to
encrypt and decrypt, and refuses to add a second key under an existing label.

PKCS#11 login is per process and token: when the process is already logged in to the token
(another master key on the same token is open) a new session reuses that login. Closing a
``Pkcs11MasterKey`` logs the process out of the token; another open one logs in again on its
next use (with its own PIN), as it does after the token drops its session.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import pkcs11
from pkcs11 import exceptions as p11err
from pkcs11.constants import Attribute, MechanismFlag, ObjectClass
from pkcs11.mechanisms import GCMParams, KeyType, Mechanism
from pkcs11.types import DecryptMixin, EncryptMixin, Session, Token

from renkei.keystore.kek import MASTER_KEY_BYTES, KeyUnwrapError

__all__ = ["Pkcs11MasterKey", "Pkcs11Spec", "create_token_key"]

_NONCE = 12
_TAG = 16
_KEY_ID_MAX = 64  # key_versions.master_key_id is String(64)
_SPEC_FIELDS = ("module", "token", "label", "pin-env")

# The token says the data does not open (bad tag, wrong key, wrong AAD, cut short).
_DOES_NOT_OPEN: tuple[type[Exception], ...] = (
    p11err.EncryptedDataInvalid,
    p11err.EncryptedDataLenRange,
    p11err.GeneralError,  # SoftHSM2's answer to a GCM tag mismatch
)
# The session or its login went away: open a new one and try once more.
_SESSION_LOST: tuple[type[Exception], ...] = (
    p11err.SessionClosed,
    p11err.SessionHandleInvalid,
    p11err.UserNotLoggedIn,
    p11err.KeyHandleInvalid,
    p11err.ObjectHandleInvalid,
    p11err.DeviceRemoved,
    p11err.TokenNotPresent,
)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Pkcs11Spec:
    module: str
    token: str
    label: str
    pin_env: str

    @classmethod
    def parse(cls, spec: str) -> Pkcs11Spec:
        """Parse ``module=...;token=...;label=...;pin-env=...`` (without ``pkcs11:``)."""
        fields: dict[str, str] = {}
        for part in spec.split(";"):
            if not part.strip():
                continue
            name, eq, value = part.partition("=")
            name, value = name.strip(), value.strip()
            if not eq or not value:
                raise ValueError(f"pkcs11 master key spec: {part.strip()!r} is not name=value")
            if name not in _SPEC_FIELDS:
                raise ValueError(
                    f"pkcs11 master key spec: unknown field {name!r}"
                    f" (expected {', '.join(_SPEC_FIELDS)})"
                )
            if name in fields:
                raise ValueError(f"pkcs11 master key spec: {name} given twice")
            fields[name] = value
        missing = [name for name in _SPEC_FIELDS if name not in fields]
        if missing:
            raise ValueError(
                f"pkcs11 master key spec {spec!r} lacks {', '.join(missing)}; expected"
                " pkcs11:module=LIB.so;token=TOKEN;label=KEY;pin-env=ENVVAR"
            )
        return cls(fields["module"], fields["token"], fields["label"], fields["pin-env"])


def _get_token(module: str, token_label: str) -> Token:
    if not os.path.isfile(module):
        raise ValueError(f"PKCS#11 module {module} does not exist")
    try:
        # One library object per file, however the path is spelt (loading the same
        # library twice under two names would initialise it twice).
        library = pkcs11.lib(os.path.realpath(module))
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"PKCS#11 module {module} does not load: {exc}") from exc
    try:
        return library.get_token(token_label=token_label)
    except p11err.NoSuchToken:
        raise ValueError(f"no PKCS#11 token labelled {token_label!r} in {module}") from None
    except p11err.MultipleTokensReturned:
        raise ValueError(f"several PKCS#11 tokens labelled {token_label!r} in {module}") from None


def _login(token: Token, pin: str, *, rw: bool = False) -> Session:
    try:
        return token.open(rw=rw, user_pin=pin)
    except p11err.UserAlreadyLoggedIn:
        # Login is shared by the whole process: a session opened now is logged in already.
        return token.open(rw=rw)
    except (p11err.PinIncorrect, p11err.PinInvalid, p11err.PinLenRange):
        raise ValueError(f"PKCS#11 token {token.label!r}: the PIN is not accepted") from None
    except p11err.PinLocked:
        raise ValueError(f"PKCS#11 token {token.label!r}: the PIN is locked") from None


def _close(session: Session) -> None:
    # Already gone (logged out or closed elsewhere): nothing is left to release.
    with contextlib.suppress(p11err.PKCS11Error):
        session.close()


def create_token_key(module: str, token_label: str, pin: str, key_label: str) -> None:
    """Generate a sensitive, non-extractable AES-256 key labelled ``key_label`` in the token.

    The key can only encrypt and decrypt (that is all ``Pkcs11MasterKey`` asks of it) and its
    value can never be read out of the token. Raises ``FileExistsError`` when a secret key
    with that label exists already: a master key is never replaced.
    """
    session = _login(_get_token(module, token_label), pin, rw=True)
    try:
        existing = list(
            session.get_objects(
                {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: key_label}
            )
        )
        if existing:
            raise FileExistsError(
                f"PKCS#11 token {token_label!r} has a key labelled {key_label!r} already:"
                " a master key is never replaced"
            )
        session.generate_key(
            KeyType.AES,
            MASTER_KEY_BYTES * 8,
            label=key_label,
            store=True,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template={
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
            },
        )
    finally:
        _close(session)


@dataclass(frozen=True)
class _Open:
    session: Session
    encryptor: EncryptMixin
    decryptor: DecryptMixin


class Pkcs11MasterKey:
    """A ``MasterKey`` whose AES-256 key stays in a PKCS#11 token; see the module docstring."""

    def __init__(self, module: str, token_label: str, key_label: str, pin: str) -> None:
        self._module = module
        self._token_label = token_label
        self._key_label = key_label
        self._pin = pin
        self._id = f"pkcs11:{token_label}/{key_label}"
        if len(self._id) > _KEY_ID_MAX:
            raise ValueError(
                f"master key id {self._id!r} is longer than {_KEY_ID_MAX} characters:"
                " use a shorter token or key label"
            )
        self._lock = threading.Lock()
        self._open: _Open | None = self._connect()

    @classmethod
    def from_spec(cls, spec: str) -> Pkcs11MasterKey:
        """Open the key named by ``module=...;token=...;label=...;pin-env=...``."""
        parsed = Pkcs11Spec.parse(spec)
        pin = os.environ.get(parsed.pin_env)
        if not pin:
            raise ValueError(
                f"environment variable {parsed.pin_env} (the PIN of PKCS#11 token"
                f" {parsed.token!r}) is not set"
            )
        return cls(parsed.module, parsed.token, parsed.label, pin)

    @property
    def key_id(self) -> str:
        return self._id

    def _connect(self) -> _Open:
        session = _login(_get_token(self._module, self._token_label), self._pin)
        try:
            key = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=self._key_label)
            if key.key_length != MASTER_KEY_BYTES * 8:
                raise ValueError(
                    f"{self._id}: a master key is AES-{MASTER_KEY_BYTES * 8},"
                    f" this one is AES-{key.key_length}"
                )
            if not isinstance(key, EncryptMixin) or not isinstance(key, DecryptMixin):
                raise ValueError(f"{self._id} cannot encrypt and decrypt")
        except p11err.NoSuchKey:
            _close(session)
            raise ValueError(
                f"PKCS#11 token {self._token_label!r} has no AES key labelled {self._key_label!r}"
            ) from None
        except p11err.MultipleObjectsReturned:
            _close(session)
            raise ValueError(
                f"PKCS#11 token {self._token_label!r} has several AES keys labelled"
                f" {self._key_label!r}"
            ) from None
        except BaseException:
            _close(session)
            raise
        return _Open(session, key, key)

    def _run(self, operation: Callable[[_Open], _T]) -> _T:
        with self._lock:
            if self._open is None:
                self._open = self._connect()
            try:
                return operation(self._open)
            except _SESSION_LOST:
                _close(self._open.session)
                self._open = None
                self._open = self._connect()
                return operation(self._open)

    def wrap(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        params = GCMParams(nonce, aad, _TAG * 8)

        def encrypt(handle: _Open) -> bytes:
            out = handle.encryptor.encrypt(
                plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params
            )
            assert isinstance(out, bytes)
            return out

        return nonce + self._run(encrypt)

    def unwrap(self, wrapped: bytes, aad: bytes) -> bytes:
        if len(wrapped) < _NONCE + _TAG:
            raise KeyUnwrapError("wrapped key is too short to be one")
        params = GCMParams(wrapped[:_NONCE], aad, _TAG * 8)
        body = wrapped[_NONCE:]

        def decrypt(handle: _Open) -> bytes:
            out = handle.decryptor.decrypt(
                body, mechanism=Mechanism.AES_GCM, mechanism_param=params
            )
            assert isinstance(out, bytes)
            return out

        try:
            return self._run(decrypt)
        except _DOES_NOT_OPEN:
            raise KeyUnwrapError(
                f"wrapped key does not open under the master key {self._id}"
            ) from None

    def close(self) -> None:
        """End the session with the token (which logs this process out of it)."""
        with self._lock:
            if self._open is not None:
                _close(self._open.session)
                self._open = None

    def __repr__(self) -> str:
        return f"Pkcs11MasterKey({self._id!r}, module={self._module!r})"
