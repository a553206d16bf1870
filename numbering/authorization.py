"""Who may call the numbering agency, per group of operations.

Parties are named as in certificates: ``"hub"``, ``"agency:<id>"``,
``"service:<name>"``. The default lets only the resident registry
(``service:registry``) issue, look up and change Numbers.

The hub can never be authorised, not even by configuration: it holds ID codes
(R9), and nothing may lead from a Number to an ID code (R6). A party that could
both ask the hub and look up Numbers would join them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from renkei.config_util import ConfigError
from renkei.errors import PermissionDenied, Unauthenticated
from renkei.grpcutil.caller import callers, label
from renkei.pki import PeerIdentity

Operation = Literal["issue", "lookup", "change"]
OPERATIONS: tuple[Operation, ...] = ("issue", "lookup", "change")
REGISTRY = "service:registry"


@dataclass(frozen=True)
class Authorization:
    issue: frozenset[str] = frozenset({REGISTRY})
    lookup: frozenset[str] = frozenset({REGISTRY})
    change: frozenset[str] = frozenset({REGISTRY})

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> Authorization:
        unknown = set(table) - set(OPERATIONS)
        if unknown:
            raise ConfigError(f"{where}: unknown operation groups {sorted(unknown)}")
        groups: dict[str, frozenset[str]] = {}
        for op in OPERATIONS:
            if op in table:
                groups[op] = _parties(table[op], f"{where} {op}")
        return cls(**groups)

    def allowed(self, operation: Operation) -> frozenset[str]:
        parties: frozenset[str] = getattr(self, operation)
        return parties

    def check(self, operation: Operation, identity: PeerIdentity | None) -> None:
        if identity is None:
            raise Unauthenticated(
                "CLIENT_CERT_REQUIRED",
                "the numbering agency knows callers only by a client certificate",
            )
        caller = label(identity)
        # Belt and braces: config loading already refuses the hub.
        if identity.kind == "hub" or caller not in self.allowed(operation):
            raise PermissionDenied(
                "CALLER_NOT_AUTHORIZED",
                f"{caller} may not {operation} Numbers",
                {"caller": caller, "operation": operation},
            )


def _parties(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: must be a list of party names")
    return callers(
        value,
        where,
        hub_never="the hub may never call the numbering agency "
        "(R6: nothing may lead from a Number to an ID code)",
    )
