"""Why the policy decides as it does (``renkei policy explain``), for operators and auditors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hub_server.directory import Agency
from hub_server.policy import Decision, Item
from hub_server.policy_versions import PolicySet


@dataclass
class Explanation:
    question: str
    decision: Decision
    version_source: str
    lines: list[str] = field(default_factory=list)
    # Items under which the exchange would be lawful, when no item was given.
    lawful_items: list[str] = field(default_factory=list)


def _classes(names: frozenset[str], limit: int = 4) -> str:
    shown = sorted(names, key=len)[:limit]
    more = len(names) - len(shown)
    return "、".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _reasons(item: Item, requester: Agency, provider: Agency, kind: str) -> list[str]:
    lines = [f"affair: {item.affair}"]
    req = requester.classes & item.requester_classes
    lines.append(
        f"requester: {requester.display_name} is in the item's requester class {_classes(req)}"
        if req
        else f"requester: the item names {_classes(item.requester_classes)};"
        f" {requester.display_name} is none of these"
    )
    matching = [p for p in item.provisions if provider.classes & p.provider_classes]
    if not matching:
        providers = frozenset().union(*(p.provider_classes for p in item.provisions))
        lines.append(
            f"provider: the item names {_classes(providers)};"
            f" {provider.display_name} is none of these"
        )
        return lines
    shared = frozenset().union(*(provider.classes & p.provider_classes for p in matching))
    lines.append(f"provider: {provider.display_name} is in the provider class {_classes(shared)}")
    kinds = frozenset().union(*(p.info_kinds for p in matching))
    lines.append(
        f"information: {kind} is listed for that provider"
        if kind in kinds
        else f"information: from that provider the item lists {_classes(kinds)}; not {kind}"
    )
    return lines


def explain(
    policy: PolicySet,
    requester: Agency,
    provider: Agency,
    kind: str,
    item: str | None,
    at: datetime,
) -> Explanation:
    version = policy.in_force(at)
    question = (
        f"may {requester.display_name} ({requester.agency_id}) ask {provider.display_name}"
        f" ({provider.agency_id}) for {kind}" + (f" under item {item}?" if item else "?")
    )
    if version is None:
        decision = policy.decide(requester, provider, kind, item or "", at)
        return Explanation(question, decision, "none", [decision.message])
    table = version.table
    if item is not None:
        decision = table.decide(requester, provider, kind, item)
        entry = next((i for i in table.items() if i.item == item), None)
        lines = [decision.message] if entry is None else _reasons(entry, requester, provider, kind)
        return Explanation(question, decision, version.source, lines)
    lawful = [
        i.item for i in table.items() if table.decide(requester, provider, kind, i.item).approved
    ]
    if lawful:
        decision = table.decide(requester, provider, kind, lawful[0])
        lines = _reasons(
            next(i for i in table.items() if i.item == lawful[0]), requester, provider, kind
        )
        return Explanation(question, decision, version.source, lines, lawful)
    # Not lawful under any item: the nearest reason, from the item that gets furthest.
    rank = {"INFO_KIND_NOT_LISTED": 0, "PROVIDER_NOT_IN_ITEM": 1, "REQUESTER_NOT_IN_ITEM": 2}
    decisions = [(table.decide(requester, provider, kind, i.item), i) for i in table.items()]
    decision, nearest = min(decisions, key=lambda d: rank.get(d[0].reason, 3))
    if decision.reason == "REQUESTER_NOT_IN_ITEM":
        decision = Decision(
            False,
            "NO_ITEM_FOR_REQUESTER",
            f"no item of the table names {requester.display_name} as a requester",
            "",
            "",
            decision.policy_version,
        )
        return Explanation(question, decision, version.source, [decision.message])
    lines = [f"nearest: item {nearest.item}", *_reasons(nearest, requester, provider, kind)]
    return Explanation(question, decision, version.source, lines)
