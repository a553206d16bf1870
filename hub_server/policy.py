"""Legal-basis policy (R17, R18): may this requester ask this provider for this information?

The hub depends only on ``LegalBasisPolicy``; ``TablePolicy`` is the small
table-driven implementation read from a TOML data file. The full Annex
Table 2 compiler plugs in behind the same interface.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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
    def version(self) -> str: ...

    def decide(
        self, requester: Agency, provider: Agency, info_kind: str, item: str
    ) -> Decision: ...


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
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TypeError(f"{key} must be a list of non-empty strings, got {value!r}")
    return frozenset(value)


class TablePolicy:
    """Items of the form: requester class, affair, (provider classes, kinds of information)."""

    def __init__(self, items: Iterable[Item], version: str) -> None:
        self._items = {i.item: i for i in items}
        self._version = version

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
        items = []
        for n, entry in enumerate(data.get("item", [])):
            try:
                items.append(
                    Item(
                        item=str(entry["item"]),
                        affair=str(entry["affair"]),
                        requester_classes=_names(entry, "requester"),
                        provisions=tuple(
                            Provision(_names(p, "provider"), _names(p, "info"))
                            for p in entry["provides"]
                        ),
                    )
                )
            except KeyError as err:
                raise ValueError(f"{path}: item[{n}] lacks {err}") from None
            except TypeError as err:
                raise ValueError(f"{path}: item[{n}]: {err}") from None
        if not items:
            raise ValueError(f"{path}: no [[item]] tables")
        return cls(items, "sha256:" + hashlib.sha256(raw).hexdigest()[:16])

    def decide(self, requester: Agency, provider: Agency, info_kind: str, item: str) -> Decision:
        entry = self._items.get(item)
        if entry is None:
            return self._deny("LEGAL_BASIS_ITEM_UNKNOWN", f"no item {item!r} in the table", item)
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
