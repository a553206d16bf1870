"""Versions of the legal-basis policy, each in force from its effective date (R17).

A policy is a folder of TOML files (or one file). Each file is one version::

    effective = 2015-10-05          # from when it is in force (JST midnight)
    source = "annex-2015"           # the statute compiled by hub_server.annex
    # or, instead of source, [[item]] tables as in legal_basis_demo.toml

A query is judged by the version in force at its time. A folder that fails
to load, in any file, is refused as a whole with the file, row and column
named, and the versions already loaded stay in force.
"""

from __future__ import annotations

import bisect
import itertools
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

from hub_server.directory import Agency
from hub_server.policy import Decision, Item, TablePolicy, items_from_toml

JST = timezone(timedelta(hours=9))
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def _annex_2015() -> list[Item]:
    from hub_server.annex import compile_annex

    return compile_annex().items


# Policies the hub can compile itself, by the name a version file gives.
SOURCES: dict[str, Callable[[], list[Item]]] = {"annex-2015": _annex_2015}


@dataclass(frozen=True)
class PolicyVersion:
    effective: datetime
    table: TablePolicy
    source: str


class PolicySet:
    """The versions of one policy; ``decide`` uses the one in force at the query's time."""

    def __init__(self, versions: Iterable[PolicyVersion]) -> None:
        ordered = sorted(versions, key=lambda v: v.effective)
        for earlier, later in itertools.pairwise(ordered):
            if earlier.effective == later.effective:
                raise ValueError(
                    f"{earlier.source} and {later.source}: both take effect at"
                    f" {later.effective.isoformat()}"
                )
        if not ordered:
            raise ValueError("a policy needs at least one version")
        self.versions = ordered
        self._starts = [v.effective for v in ordered]

    def in_force(self, at: datetime) -> PolicyVersion | None:
        i = bisect.bisect_right(self._starts, at)
        return self.versions[i - 1] if i else None

    @property
    def version(self) -> str:
        current = self.in_force(datetime.now(UTC))
        return current.table.version if current else "none"

    def decide(
        self,
        requester: Agency,
        provider: Agency,
        info_kind: str,
        item: str,
        at: datetime | None = None,
    ) -> Decision:
        when = at or datetime.now(UTC)
        current = self.in_force(when)
        if current is None:
            return Decision(
                False,
                "NO_POLICY_IN_FORCE",
                f"no version of the legal-basis policy is in force at {when.isoformat()}",
                item,
                "",
                "none",
            )
        return current.table.decide(requester, provider, info_kind, item)


def _effective(value: object, where: str) -> datetime:
    if value is None:
        return _BEGINNING
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=JST)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=JST)
    raise ValueError(f"{where}: effective must be a TOML date or date-time, got {value!r}")


def load_version(path: Path) -> PolicyVersion:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"{path}: {err}") from None
    effective = _effective(data.get("effective"), f"{path}: effective")
    source = data.get("source")
    if source is not None:
        if "item" in data:
            raise ValueError(f"{path}: source and [[item]] tables contradict; give one")
        compile_source = SOURCES.get(str(source))
        if compile_source is None:
            raise ValueError(f"{path}: source {source!r} is unknown; known: {sorted(SOURCES)}")
        return PolicyVersion(effective, TablePolicy(compile_source()), path.name)
    return PolicyVersion(effective, TablePolicy(items_from_toml(data, path)), path.name)


def policy_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.toml")) if path.is_dir() else [path]


def load_policy(path: Path) -> PolicySet:
    """Every version under ``path`` (a folder, or one file), or ValueError naming the fault."""
    files = policy_files(path)
    if not files:
        raise ValueError(f"{path}: no policy version files (*.toml)")
    return PolicySet(load_version(f) for f in files)


def fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Changes when a version file is added, removed or rewritten."""
    out = []
    for f in policy_files(path):
        try:
            stat = f.stat()
        except FileNotFoundError:
            continue
        out.append((f.name, stat.st_mtime_ns, stat.st_size))
    return tuple(out)
