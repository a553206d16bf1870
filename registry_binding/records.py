"""An agency's record as the binding party takes it, and its field-by-field normalisation."""

from __future__ import annotations

from dataclasses import dataclass

from renkei import validate
from renkei.errors import RenkeiError
from renkei.fourfacts.normalize import (
    FourFacts,
    NormalizedFacts,
    SexEncoding,
    normalize_address,
    normalize_date,
    normalize_kana,
    normalize_name,
    normalize_sex,
)

MAX_FIELD_CHARS = 256


@dataclass(frozen=True, slots=True)
class AgencyRecord:
    """One agency record: its own id and its four facts as it writes them."""

    local_person_id: str
    facts: FourFacts


def record_keys(facts: FourFacts, sex_encoding: SexEncoding) -> NormalizedFacts:
    """``renkei.fourfacts.normalize``, field by field: a ValueError names its field."""

    def field(name: str, value: object) -> None:
        if isinstance(value, str):
            if len(value) > MAX_FIELD_CHARS:
                raise ValueError(f"{name}: is {len(value)} characters; at most {MAX_FIELD_CHARS}")
            try:
                validate.text(name, value, max_chars=MAX_FIELD_CHARS, required=False)
            except RenkeiError as err:
                raise ValueError(err.message) from None
            if "\ufffd" in value:  # left by a decoder that met bytes it could not read
                at = value.index("\ufffd")
                raise ValueError(f"{name}: has U+FFFD at character {at} (undecodable bytes)")

    field("name", facts.name)
    field("kana", facts.kana)
    field("address", facts.address)
    field("birth_date", facts.birth_date)
    field("sex", facts.sex)
    field("municipality_hint", facts.municipality_hint)
    name = normalize_name(facts.name)
    if not name:
        raise ValueError("name: is empty")
    kana = None if facts.kana is None else (normalize_kana(facts.kana) or None)
    if isinstance(facts.birth_date, str) and not facts.birth_date.strip():
        raise ValueError("birth_date: is empty")
    try:
        birth = normalize_date(facts.birth_date)
    except ValueError as exc:
        raise ValueError(f"birth_date: {exc}") from None
    if not facts.address.strip():
        raise ValueError("address: is empty")
    try:
        address = normalize_address(facts.address, municipality_hint=facts.municipality_hint)
    except ValueError as exc:
        where = "municipality_hint" if facts.municipality_hint else "address"
        raise ValueError(f"{where}: {exc}") from None
    return NormalizedFacts(
        name, kana, address, birth, normalize_sex(facts.sex, encoding=sex_encoding)
    )
