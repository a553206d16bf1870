"""Finding mappers: the ``renkei.mappers`` entry-point group, keyed by format name.

An entry point names either a ``Mapper`` or a callable with no arguments
returning one (a factory, so that nothing is loaded before it is asked for).
The built-in ones are registered in pyproject.toml; an integration engineer's
package registers its own the same way.
"""

from __future__ import annotations

from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path

from .errors import SpecError, UnknownFormat
from .mapper import Mapper, SpecMapper

GROUP = "renkei.mappers"


def known_formats() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_mapper(format_name: str) -> Mapper:
    """The mapper registered for ``format_name``; ``UnknownFormat`` lists the known ones."""
    found = [ep for ep in entry_points(group=GROUP) if ep.name == format_name]
    if not found:
        raise UnknownFormat(format_name, known_formats())
    obj = found[0].load()
    mapper = obj() if callable(obj) and not hasattr(obj, "decode") else obj
    if not all(callable(getattr(mapper, m, None)) for m in ("decode", "encode")):
        raise SpecError(
            f"entry point {found[0].value}", f"{format_name} is not a Mapper (decode, encode)"
        )
    return mapper  # type: ignore[no-any-return]  # checked just above


def load_mapper_or_spec(name: str) -> Mapper:
    """A format name, or the path of a spec file (``.toml``), as ``renkei mapper check`` takes."""
    if name.endswith(".toml") or Path(name).exists():
        return SpecMapper.from_file(name)
    return load_mapper(name)


def builtin_spec(file_name: str) -> SpecMapper:
    """A spec shipped as package data in ``comm_server/mapping/specs``."""
    spec = resources.files("comm_server.mapping").joinpath("specs", file_name)
    with resources.as_file(spec) as path:
        return SpecMapper.from_file(path)
