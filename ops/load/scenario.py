"""The request mix, from a small TOML file.

    description = "..."
    seed = 1                      # optional; worker i draws with seed + i

    [mix]
    unlawful = 0.10               # share of requests drawn from [[unlawful]]
    malformed = 0.05              # share made malformed by the target from a [[lawful]] entry

    [[lawful]]                    # expected to succeed
    requester = "141003"          # whose certificate calls: an agency id or "service:NAME"
    provider = "nenkin"           # hub and comm targets
    info_kind = "年金給付関係情報"   # hub and comm targets
    item = "二十七"                 # hub and comm targets
    persons = ["A0001001"]        # comm: the requester's local ids; numbering: resident codes
    weight = 3                    # optional, default 1

    [[unlawful]]                  # expected to be refused, as said here
    ...the same fields...
    expect_reason = "PROVIDER_NOT_IN_ITEM"   # the ErrorInfo (or Approve denial) reason
    expect_code = "PERMISSION_DENIED"        # optional: the status ("DENIED": an Approve denial)

Which fields a target needs is checked by the target (``targets.check``).
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.load.stats import Expectation

MALFORMED = Expectation("INVALID_ARGUMENT", None)
LAWFUL = Expectation()


class ScenarioError(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    requester: str
    provider: str = ""
    info_kind: str = ""
    item: str = ""
    persons: tuple[str, ...] = ()
    weight: float = 1.0
    expect: Expectation = LAWFUL
    where: str = ""


@dataclass(frozen=True)
class Pick:
    klass: str  # lawful, unlawful or malformed
    entry: Entry
    person: str
    expect: Expectation


@dataclass(frozen=True)
class Scenario:
    description: str
    lawful: tuple[Entry, ...]
    unlawful: tuple[Entry, ...] = ()
    unlawful_share: float = 0.0
    malformed_share: float = 0.0
    seed: int = 1

    def callers(self) -> list[str]:
        return sorted({e.requester for e in (*self.lawful, *self.unlawful)})

    def picker(self, worker: int) -> Picker:
        return Picker(self, random.Random(self.seed + worker))


class Picker:
    """Draws requests in the scenario's proportions; deterministic for a seed."""

    def __init__(self, scenario: Scenario, rng: random.Random) -> None:
        self.scenario = scenario
        self._rng = rng
        self._lawful_w = [e.weight for e in scenario.lawful]
        self._unlawful_w = [e.weight for e in scenario.unlawful]

    def __call__(self) -> Pick:
        s, rng = self.scenario, self._rng
        u = rng.random()
        if u < s.malformed_share:
            entry = rng.choices(s.lawful, self._lawful_w)[0]
            return Pick("malformed", entry, self._person(entry), MALFORMED)
        if u < s.malformed_share + s.unlawful_share:
            entry = rng.choices(s.unlawful, self._unlawful_w)[0]
            return Pick("unlawful", entry, self._person(entry), entry.expect)
        entry = rng.choices(s.lawful, self._lawful_w)[0]
        return Pick("lawful", entry, self._person(entry), LAWFUL)

    def _person(self, entry: Entry) -> str:
        return self._rng.choice(entry.persons) if entry.persons else ""


_ENTRY_KEYS = {"requester", "provider", "info_kind", "item", "persons", "weight"}
_EXPECT_KEYS = {"expect_code", "expect_reason"}


def _string(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ScenarioError(f"{where}: {key} must be a string, got {value!r}")
    return value


def _entry(data: Any, where: str, unlawful: bool) -> Entry:
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: must be a table")
    allowed = _ENTRY_KEYS | (_EXPECT_KEYS if unlawful else set())
    unknown = set(data) - allowed
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    requester = _string(data, "requester", where)
    if not requester:
        raise ScenarioError(f"{where}: requester is required")
    persons = data.get("persons", [])
    if not isinstance(persons, list) or not all(isinstance(p, str) and p for p in persons):
        raise ScenarioError(f"{where}: persons must be a list of non-empty strings")
    weight = data.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
        raise ScenarioError(f"{where}: weight must be a positive number, got {weight!r}")
    expect = LAWFUL
    if unlawful:
        code = _string(data, "expect_code", where) or None
        reason = _string(data, "expect_reason", where) or None
        if code is None and reason is None:
            raise ScenarioError(f"{where}: an unlawful request needs expect_reason or expect_code")
        if code == "OK":
            raise ScenarioError(f"{where}: expect_code OK is not a refusal")
        expect = Expectation(code, reason)
    return Entry(
        requester,
        _string(data, "provider", where),
        _string(data, "info_kind", where),
        _string(data, "item", where),
        tuple(persons),
        float(weight),
        expect,
        where,
    )


def _share(mix: dict[str, Any], key: str, where: str) -> float:
    value = mix.get(key, 0.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ScenarioError(f"{where}: [mix] {key} must be a share between 0 and 1, got {value!r}")
    return float(value)


def parse(data: dict[str, Any], where: str) -> Scenario:
    unknown = set(data) - {"description", "seed", "mix", "lawful", "unlawful"}
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}")
    mix = data.get("mix", {})
    if not isinstance(mix, dict) or set(mix) - {"unlawful", "malformed"}:
        raise ScenarioError(f"{where}: [mix] takes only unlawful and malformed shares")
    lawful = tuple(
        _entry(e, f"{where}: [[lawful]] #{n}", False)
        for n, e in enumerate(data.get("lawful", []), 1)
    )
    unlawful = tuple(
        _entry(e, f"{where}: [[unlawful]] #{n}", True)
        for n, e in enumerate(data.get("unlawful", []), 1)
    )
    unlawful_share = _share(mix, "unlawful", where)
    malformed_share = _share(mix, "malformed", where)
    if not lawful:
        raise ScenarioError(f"{where}: at least one [[lawful]] entry is needed")
    if unlawful_share > 0 and not unlawful:
        raise ScenarioError(f"{where}: [mix] unlawful > 0 but no [[unlawful]] entries")
    if unlawful_share + malformed_share > 1:
        raise ScenarioError(f"{where}: [mix] unlawful + malformed is more than 1")
    seed = data.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ScenarioError(f"{where}: seed must be an integer")
    return Scenario(
        _string(data, "description", where),
        lawful,
        unlawful,
        unlawful_share,
        malformed_share,
        seed,
    )


def load(path: Path) -> Scenario:
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ScenarioError(f"{path}: {err}") from None
    return parse(data, str(path))


def bundled(name: str) -> Path:
    """A scenario shipped in ops/load/scenarios/."""
    return Path(__file__).parent / "scenarios" / name
