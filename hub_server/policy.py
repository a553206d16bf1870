"""Legal-basis policy (R17, R18): may this requester ask this provider for this information?

The hub depends only on ``LegalBasisPolicy``; ``TablePolicy`` is the small
table-driven implementation read from a TOML data file. The full Annex
Table 2 compiler plugs in behind the same interface.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from hub_server.directory import Agency


@dataclass(frozen=True)
class Decision:
    approved: bool
    reason: str  # ErrorInfo reason of a denial, "" when approved
    message: str
    item: str
    affair: str
    policy_version: str


class LegalBasisPolicy(Protocol):
    @property
    def version(self) -> str:
        """The version in force now."""
        ...

    def decide(
        self,
        requester: Agency,
        provider: Agency,
        info_kind: str,
        item: str,
        at: datetime | None = None,
    ) -> Decision:
        """Judged by the version in force at ``at`` (now if None)."""
        ...


@dataclass(frozen=True)
class Provision:
    provider_classes: frozenset[str]
    info_kinds: frozenset[str]


@dataclass(frozen=True)
class Item:
    item: str
    affair: str
    requester_classes: frozenset[str]
    provisions: tuple[Provision, ...]


def _names(entry: dict[str, object], key: str) -> frozenset[str]:
    """A list of names; a bare string would otherwise become a set of characters."""
    value = entry[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise TypeError(f"{key} must be a non-empty list of non-empty strings, got {value!r}")
    return frozenset(value)


class TablePolicy:
    """Items of the form: requester class, affair, (provider classes, kinds of information)."""

    def __init__(self, items: Iterable[Item], version: str | None = None) -> None:
        self._items: dict[str, Item] = {}
        for entry in items:
            if entry.item in self._items:
                raise ValueError(f"item {entry.item} is defined twice")
            self._items[entry.item] = entry
        self._version = version or items_version(self._items.values())
        self._requesters = frozenset().union(*(i.requester_classes for i in self._items.values()))

    def items(self) -> list[Item]:
        return list(self._items.values())

    @property
    def version(self) -> str:
        return self._version

    @classmethod
    def load(cls, path: Path) -> TablePolicy:
        raw = path.read_bytes()
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"{path}: {err}") from None
        return cls(items_from_toml(data, path))

    def decide(
        self,
        requester: Agency,
        provider: Agency,
        info_kind: str,
        item: str,
        at: datetime | None = None,
    ) -> Decision:
        entry = self._items.get(item)
        if entry is None:
            return self._deny("LEGAL_BASIS_ITEM_UNKNOWN", f"no item {item!r} in the table", item)
        if not requester.classes & self._requesters:
            return self._deny(
                "NO_ITEM_FOR_REQUESTER",
                f"no item of the table names {requester.display_name} as a requester",
                item,
                entry.affair,
            )
        if not requester.classes & entry.requester_classes:
            return self._deny(
                "REQUESTER_NOT_IN_ITEM",
                f"item {item} does not name {requester.display_name} as a requester",
                item,
                entry.affair,
            )
        for_provider = [p for p in entry.provisions if provider.classes & p.provider_classes]
        if not for_provider:
            return self._deny(
                "PROVIDER_NOT_IN_ITEM",
                f"item {item} does not name {provider.display_name} as a provider",
                item,
                entry.affair,
            )
        if not any(info_kind in p.info_kinds for p in for_provider):
            return self._deny(
                "INFO_KIND_NOT_LISTED",
                f"item {item} does not list {info_kind!r} from {provider.display_name}",
                item,
                entry.affair,
            )
        return Decision(True, "", "approved", item, entry.affair, self._version)

    def _deny(self, reason: str, message: str, item: str, affair: str = "") -> Decision:
        return Decision(False, reason, message, item, affair, self._version)


def items_version(items: Iterable[Item]) -> str:
    """A hash of the rules themselves: the same table always has the same version."""
    canon = json.dumps(
        [
            [
                i.item,
                i.affair,
                sorted(i.requester_classes),
                sorted([sorted(p.provider_classes), sorted(p.info_kinds)] for p in i.provisions),
            ]
            for i in sorted(items, key=lambda i: i.item)
        ],
        ensure_ascii=False,
    )
    return "sha256:" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def items_from_toml(data: dict[str, Any], path: Path) -> list[Item]:
    """``[[item]]`` tables; an error names the file, the row and the column."""
    items: list[Item] = []
    seen: dict[str, int] = {}
    for n, entry in enumerate(data.get("item", [])):
        where = f"{path}: item[{n}]"
        try:
            item = Item(
                item=_text(entry, "item"),
                affair=_text(entry, "affair"),
                requester_classes=_names(entry, "requester"),
                provisions=tuple(
                    Provision(_names(p, "provider"), _names(p, "info")) for p in _provisions(entry)
                ),
            )
        except KeyError as err:
            raise ValueError(f"{where} lacks {err}") from None
        except TypeError as err:
            raise ValueError(f"{where}: {err}") from None
        if item.item in seen:
            raise ValueError(
                f"{where}: item {item.item} is already defined at item[{seen[item.item]}]"
            )
        seen[item.item] = n
        items.append(item)
    if not items:
        raise ValueError(f"{path}: no [[item]] tables")
    return items


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _provisions(entry: dict[str, Any]) -> list[dict[str, Any]]:
    value = entry["provides"]
    if not isinstance(value, list) or not value or not all(isinstance(p, dict) for p in value):
        raise TypeError("provides must be a non-empty list of tables")
    return value
