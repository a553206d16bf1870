"""Opening the resident source the config names, by the ``renkei.resident_sources`` group.

The binding party never imports a register: pyproject.toml registers each
adapter's factory (``juki_mock = "legacy_stubs.registry.source:open_source"``)
and this looks it up by name, as ``comm_server.mapping.registry`` finds mappers.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from renkei.config_util import ConfigError
from renkei.residents import RESIDENT_SOURCES, ResidentSource


def known_sources() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=RESIDENT_SOURCES)})


def open_source(kind: str, options: Mapping[str, Any]) -> ResidentSource:
    """The source the ``kind`` entry point's factory opens with ``options``."""
    found = [ep for ep in entry_points(group=RESIDENT_SOURCES) if ep.name == kind]
    if not found:
        raise ConfigError(
            f"[resident_source] kind {kind!r} is not installed; known: {known_sources()}"
        )
    factory = found[0].load()
    if not callable(factory):
        raise ConfigError(f"entry point {found[0].value} is not a resident source factory")
    source: ResidentSource = factory(options)
    return source
