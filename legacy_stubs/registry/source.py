"""The mocked register as a ``renkei.residents.ResidentSource``: the binding party's view.

Registered in pyproject.toml as the ``juki_mock`` entry point of the
``renkei.resident_sources`` group, so the binding party (``registry_binding``)
reads this register without importing it. ``open_source`` takes the binding
config's ``[resident_source]`` options: ``database_url`` and, on PostgreSQL,
``database_schema`` (by default the ``[registry]`` ones, the register's own).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Any

from renkei import db
from renkei.config_util import ConfigError
from renkei.residents import Change, Resident, ResidentHistory, ResidentSource

from .store import RegistryStore


class JukiMockSource:
    """``ResidentSource`` over a ``RegistryStore`` (its tables, read only)."""

    def __init__(self, store: RegistryStore) -> None:
        self._store = store

    @property
    def store(self) -> RegistryStore:
        return self._store

    def residents(self) -> Iterator[ResidentHistory]:
        return self._store.histories()

    def lookup(self, resident_codes: Collection[str]) -> dict[str, Resident]:
        return self._store.lookup(resident_codes)

    def last_seq(self) -> int:
        return self._store.last_seq()

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        return self._store.changes_since(seq, limit)

    def close(self) -> None:
        self._store.engine.dispose()


def open_source(options: Mapping[str, Any]) -> ResidentSource:
    """The ``juki_mock`` factory: the register at ``options["database_url"]``."""
    unknown = sorted(set(options) - {"database_url", "database_schema"})
    if unknown:
        raise ConfigError(f"[resident_source] juki_mock: unknown options {unknown}")
    url = options.get("database_url")
    if not isinstance(url, str) or not url:
        raise ConfigError("[resident_source] juki_mock: database_url is required")
    schema = options.get("database_schema")
    engine = db.create_engine(url, schema=None if schema is None else str(schema))
    return JukiMockSource(RegistryStore(engine))
