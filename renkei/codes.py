"""ID codes and link codes (R4, R5, R7, R9).

- ID code: the ID key's version (one byte) and AES-SIV (deterministic
  authenticated encryption) of the 11-digit resident code under that version
  of the ID key. Reversible by the ID key's holder only.
- Link code: AES-SIV of the ID code under one agency's key, with the agency id
  and the key version as associated data, so a code is bound to its agency and
  key. Printed as ``<version>.<base64url>``; the version travels in the clear
  so the hub picks the right key without trial decryption.

Decoding is strict: any altered character, a code made for another agency or
under an unknown key fails authentication or parsing and is refused with a
reason. A code never translates to a wrong person.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from renkei.errors import FailedPrecondition, InvalidArgument, PermissionDenied, RenkeiError

ID_CODE_AD = b"renkei/id-code/v1"
RESIDENT_CODE_RE = re.compile(r"[0-9]{11}", re.ASCII)
SIV_KEY_BYTES = 64  # AES-256-SIV
_SIV_TAG = 16
ID_CODE_BYTES = 1 + _SIV_TAG + 11
LINK_CODE_BYTES = _SIV_TAG + ID_CODE_BYTES
_LINK_CODE_RE = re.compile(r"([1-9][0-9]{0,5})\.([A-Za-z0-9_-]+)", re.ASCII)
MAX_LINK_CODE_CHARS = 128


def new_key() -> bytes:
    return AESSIV.generate_key(SIV_KEY_BYTES * 8)


class IdCodeIssuer:
    """Resident code <-> ID code under the versioned ID key (R4, R7)."""

    def __init__(self, keys: Mapping[int, bytes], current: int) -> None:
        if current not in keys or not all(1 <= v <= 255 for v in keys):
            raise ValueError("ID key versions must be 1-255 and include the current one")
        self._sivs = {v: AESSIV(k) for v, k in keys.items()}
        self.current = current

    @property
    def newest(self) -> int:
        return max(self._sivs)

    def issue(self, resident_code: str, version: int | None = None) -> bytes:
        if not RESIDENT_CODE_RE.fullmatch(resident_code):
            raise InvalidArgument(
                "RESIDENT_CODE_MALFORMED",
                "resident code must be 11 ASCII digits",
                {"field": "resident_code"},
            )
        version = self.current if version is None else version
        return bytes([version]) + self._sivs[version].encrypt(
            resident_code.encode("ascii"), _id_code_ad(version)
        )

    def resident_code(self, id_code: bytes) -> str:
        siv = self._sivs.get(id_code[0]) if len(id_code) == ID_CODE_BYTES else None
        if siv is None:
            raise InvalidArgument("ID_CODE_INVALID", "not an ID code of a known ID key version")
        try:
            return siv.decrypt(id_code[1:], _id_code_ad(id_code[0])).decode("ascii")
        except InvalidTag:
            raise InvalidArgument("ID_CODE_INVALID", "ID code does not authenticate") from None

    def reissue(self, id_code: bytes, version: int | None = None) -> bytes:
        """The same person's ID code under ``version`` (default: current), for ID-key rotation."""
        return self.issue(self.resident_code(id_code), version)


def _id_code_ad(version: int) -> list[bytes]:
    return [ID_CODE_AD, str(version).encode("ascii")]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode_canonical(text: str) -> bytes | None:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # Unused low bits of the last character would let two spellings decode alike.
    return raw if _b64encode(raw) == text else None


def format_link_code(version: int, ciphertext: bytes) -> str:
    return f"{version}.{_b64encode(ciphertext)}"


def parse_link_code(link_code: str) -> tuple[int, bytes]:
    """Split a printed link code into (key version, ciphertext); refuse malformed ones."""
    if len(link_code) > MAX_LINK_CODE_CHARS:
        raise InvalidArgument(
            "LINK_CODE_MALFORMED",
            f"link_code is {len(link_code)} characters; at most {MAX_LINK_CODE_CHARS}",
            {"field": "link_code"},
        )
    match = _LINK_CODE_RE.fullmatch(link_code)
    raw = _b64decode_canonical(match.group(2)) if match else None
    if match is None or raw is None or len(raw) != LINK_CODE_BYTES:
        raise InvalidArgument(
            "LINK_CODE_MALFORMED",
            "link_code is not '<key version>.<base64url>' of the expected length",
            {"field": "link_code"},
        )
    return int(match.group(1)), raw


def _associated_data(agency_id: str, version: int) -> list[bytes]:
    return [b"renkei/link-code/v1", agency_id.encode("utf-8"), str(version).encode("ascii")]


@dataclass
class AgencyKeys:
    """One agency's link-code keys by version.

    ``current`` makes the codes the hub hands out and sends to the agency;
    a newer version exists during a rotation, for the re-key job; an older
    one is accepted until its ``accept_until`` (absent: no limit yet).
    """

    current: int
    keys: dict[int, bytes]
    accept_until: dict[int, datetime] = field(default_factory=dict)
    _ciphers: dict[int, AESSIV] = field(default_factory=dict, repr=False)

    @property
    def newest(self) -> int:
        return max(self.keys)

    def cipher(self, version: int) -> AESSIV | None:
        siv = self._ciphers.get(version)
        if siv is None and version in self.keys:
            siv = self._ciphers[version] = AESSIV(self.keys[version])
        return siv

    def retired(self, version: int, now: datetime) -> bool:
        """An older version past its acceptance limit (the current one never is)."""
        until = self.accept_until.get(version)
        return version != self.current and until is not None and now >= until


class LinkCodec:
    """ID code <-> each agency's link code. Lives inside the hub only."""

    def __init__(
        self,
        keyring: Mapping[str, AgencyKeys],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._keyring = dict(keyring)
        self._clock = clock

    def agencies(self) -> frozenset[str]:
        return frozenset(self._keyring)

    def current_version(self, agency_id: str) -> int:
        return self._agency(agency_id).current

    def _agency(self, agency_id: str) -> AgencyKeys:
        keys = self._keyring.get(agency_id)
        if keys is None:
            raise FailedPrecondition(
                "AGENCY_HAS_NO_KEY",
                f"agency {agency_id!r} has no link-code key at the hub",
                {"agency_id": agency_id},
            )
        return keys

    def newest_version(self, agency_id: str) -> int:
        return self._agency(agency_id).newest

    def encode(self, agency_id: str, id_code: bytes, version: int | None = None) -> str:
        keys = self._agency(agency_id)
        version = keys.current if version is None else version
        siv = keys.cipher(version)
        assert siv is not None, "the version to encode with must be present"
        return format_link_code(version, siv.encrypt(id_code, _associated_data(agency_id, version)))

    def decode(self, agency_id: str, link_code: str) -> tuple[bytes, int]:
        """The ID code behind ``agency_id``'s link code, and the key version it used."""
        version, ciphertext = parse_link_code(link_code)
        keys = self._agency(agency_id)
        siv = keys.cipher(version)
        if siv is None:
            raise InvalidArgument(
                "LINK_CODE_KEY_UNKNOWN",
                f"link_code names key version {version}, which agency {agency_id!r} does not have",
                {"field": "link_code", "key_version": str(version)},
            )
        try:
            id_code = siv.decrypt(ciphertext, _associated_data(agency_id, version))
        except InvalidTag:
            id_code = None
        if id_code is not None:
            if keys.retired(version, self._clock()):
                raise FailedPrecondition(
                    "LINK_CODE_KEY_RETIRED",
                    f"link_code is under key version {version}, accepted until"
                    f" {keys.accept_until[version].isoformat()}; re-key to version {keys.current}",
                    {"field": "link_code", "key_version": str(version)},
                )
            return id_code, version
        if self._belongs_to_another(agency_id, version, ciphertext):
            raise PermissionDenied(
                "LINK_CODE_FOREIGN",
                "link_code was issued to another agency; an agency may present only its own",
                {"field": "link_code"},
            )
        raise InvalidArgument(
            "LINK_CODE_CORRUPT",
            "link_code does not authenticate: altered or damaged",
            {"field": "link_code"},
        )

    def encode_many(self, agency_id: str, id_codes: Sequence[bytes]) -> list[str]:
        """``encode`` for each ID code under the agency's current key (bulk relay):
        the key, its associated data and the prefix looked up once per call."""
        keys = self._agency(agency_id)
        version = keys.current
        siv = keys.cipher(version)
        assert siv is not None, "the current version must be present"
        encrypt, ad, prefix = siv.encrypt, _associated_data(agency_id, version), f"{version}."
        b64 = base64.urlsafe_b64encode
        return [
            prefix + b64(encrypt(id_code, ad)).rstrip(b"=").decode("ascii") for id_code in id_codes
        ]

    def decode_many(
        self, agency_id: str, link_codes: Sequence[str]
    ) -> list[tuple[bytes, int] | RenkeiError]:
        """``decode`` for each link code, in order: its result or its refusal (bulk relay).

        The same checks; what is per call (the agency's keys, associated data,
        the clock for retired versions) is done once. A code the quick path
        does not accept goes through ``decode`` itself, for its exact refusal.
        """
        try:
            keys = self._agency(agency_id)
        except RenkeiError as err:
            return [err] * len(link_codes)
        now = self._clock()
        usable: dict[int, tuple[AESSIV, list[bytes]] | None] = {}
        match = _LINK_CODE_RE.fullmatch
        out: list[tuple[bytes, int] | RenkeiError] = []
        for link_code in link_codes:
            found: tuple[bytes, int] | None = None
            m = match(link_code) if len(link_code) <= MAX_LINK_CODE_CHARS else None
            if m is not None:
                version = int(m.group(1))
                if version in usable:
                    key = usable[version]
                else:
                    key = usable[version] = self._usable(keys, agency_id, version, now)
                raw = _b64decode_canonical(m.group(2)) if key is not None else None
                if key is not None and raw is not None and len(raw) == LINK_CODE_BYTES:
                    try:
                        found = (key[0].decrypt(raw, key[1]), version)
                    except InvalidTag:
                        found = None
            if found is None:
                try:
                    found = self.decode(agency_id, link_code)
                except RenkeiError as err:
                    out.append(err)
                    continue
            out.append(found)
        return out

    @staticmethod
    def _usable(
        keys: AgencyKeys, agency_id: str, version: int, now: datetime
    ) -> tuple[AESSIV, list[bytes]] | None:
        """The cipher and associated data for ``version``, if it exists and is not retired."""
        siv = keys.cipher(version)
        if siv is None or keys.retired(version, now):
            return None
        return siv, _associated_data(agency_id, version)

    def _belongs_to_another(self, agency_id: str, version: int, ciphertext: bytes) -> bool:
        # Only on the failure path: tells misuse of a foreign code (a security
        # event worth its own reason) from damage, without saying whose it is.
        for other, keys in self._keyring.items():
            siv = keys.cipher(version) if other != agency_id else None
            if siv is None:
                continue
            try:
                siv.decrypt(ciphertext, _associated_data(other, version))
            except InvalidTag:
                continue
            return True
        return False
