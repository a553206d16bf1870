"""The records the mocked legacy system serves, kept in a JSON file.

File layout::

    {"<local_person_id>": {"<info_kind>": {...record, any JSON object...}}}
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from renkei.files import atomic_write

Records = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""local_person_id -> info_kind -> record."""


def validate_records(records: object) -> dict[str, dict[str, dict[str, Any]]]:
    """A plain-dict copy of ``records``, or ``ValueError`` naming what is wrong."""
    if not isinstance(records, Mapping):
        raise ValueError("records: must be a JSON object keyed by local_person_id")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for person, kinds in records.items():
        if not isinstance(person, str) or not person:
            raise ValueError(f"records: person key {person!r} must be a non-empty string")
        if not isinstance(kinds, Mapping):
            raise ValueError(f"records[{person!r}]: must be an object keyed by info_kind")
        out[person] = {}
        for kind, record in kinds.items():
            if not isinstance(kind, str) or not kind:
                raise ValueError(
                    f"records[{person!r}]: info_kind key {kind!r} must be a non-empty string"
                )
            if not isinstance(record, Mapping):
                raise ValueError(f"records[{person!r}][{kind!r}]: record must be a JSON object")
            out[person][kind] = copy.deepcopy(dict(record))
    return out


class RecordStore:
    """Read-only records, looked up by local person id and info kind.

    Build it from a mapping, or from a JSON file with ``RecordStore.from_file``
    (a path given to the constructor is loaded the same way).
    """

    def __init__(self, records: Records | str | os.PathLike[str] | None = None) -> None:
        if isinstance(records, str | os.PathLike):
            self._records = load_records(records)
        else:
            self._records = validate_records({} if records is None else records)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> RecordStore:
        return cls(load_records(path))

    def lookup(self, local_person_id: str, info_kind: str) -> dict[str, Any] | None:
        """A copy of the record, or ``None`` if the person or the kind is unknown."""
        record = self._records.get(local_person_id, {}).get(info_kind)
        return None if record is None else copy.deepcopy(record)

    def records(self) -> list[dict[str, Any]]:
        """Copies of every record (for audits)."""
        return [copy.deepcopy(r) for kinds in self._records.values() for r in kinds.values()]

    def has_person(self, local_person_id: str) -> bool:
        return local_person_id in self._records

    def __len__(self) -> int:
        """How many people have records."""
        return len(self._records)


def load_records(path: str | os.PathLike[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """The records in the JSON file at ``path``.

    Raises ``OSError`` if it cannot be read and ``ValueError`` if it is not
    records (invalid UTF-8 or JSON, or the wrong shape).
    """
    data = Path(path).read_bytes()
    try:
        parsed = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{os.fspath(path)}: not a UTF-8 JSON file: {exc}") from None
    try:
        return validate_records(parsed)
    except ValueError as exc:
        raise ValueError(f"{os.fspath(path)}: {exc}") from None


def write_records(path: str | os.PathLike[str], records: Records) -> None:
    """Write ``records`` to the JSON file at ``path`` atomically (for demo seeding)."""
    checked = validate_records(records)
    text = json.dumps(checked, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    atomic_write(path, text.encode("utf-8"))
