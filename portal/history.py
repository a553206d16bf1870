"""A person's history as the portal shows it: each leaf checked against the witnessed log.

The hub answers ``ListPersonalEntries`` with leaves of its log and a checkpoint
(docs/verifiable-log.md). Nothing of it is trusted until checked here: the
checkpoint must carry the hub's signature and enough witnesses' cosignatures,
each leaf's hash must be SHA-256(0x00 || entry) of the bytes given, and its
inclusion proof must lead to the checkpoint's root. A leaf newer than the
checkpoint cannot be proved yet ("検証待ち"); one that fails says what failed.
The leaves of one exchange (its ``exchange`` entry, its ``outcome``, any
``fetch``) become one row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from aiohttp import web

from renkei.hub.v1 import personal_pb2
from renkei.tlog import checkpoint as tlog_checkpoint
from renkei.tlog import merkle, note
from renkei.tlog.entry import EXCHANGE, FETCH, OUTCOME, Entry, EntryError

JST = timezone(timedelta(hours=9), "JST")

# The outcomes the hub writes (hub_server/log_store.py), as a person reads them.
OUTCOME_LABELS = {
    "OK": "提供済み",
    "PENDING": "処理中",
    "ANSWER_PENDING": "回答待ち",
    "DENIED": "拒否",
    "INTERRUPTED": "中断",
    "CANCELLED": "取消し",
    "NOT_RELAYED": "未中継",
    "UNAVAILABLE": "提供元に接続できず",
    "HUB_LOG_UNAVAILABLE": "記録不能のため中止",
}
REASON_LABELS = {
    "HUB_RESTARTED": "情報提供ネットワークシステムの再起動",
    "LEGAL_BASIS_NOT_PERMITTED": "法令上の根拠がない照会",
    "PERSON_NOT_FOUND": "該当者なし",
    "PROVIDER_TIMEOUT": "提供元の応答期限切れ",
    "DEADLINE_EXCEEDED": "応答期限切れ",
    "CONSENT_WITHDRAWN": "同意の撤回",
}


def outcome_label(outcome: str) -> str:
    return OUTCOME_LABELS.get(outcome, outcome)


def reason_label(reason: str) -> str:
    return REASON_LABELS.get(reason, reason)


@dataclass(frozen=True)
class CheckpointInfo:
    """The witnessed checkpoint a page was checked against."""

    origin: str
    size: int
    root_hash_hex: str
    witnesses: tuple[str, ...]  # the trusted witnesses whose cosignature verified
    time: datetime | None  # the latest of those cosignatures' times


@dataclass(frozen=True)
class Deferral:
    agency_id: str
    until: datetime
    legal_reason: str


@dataclass(frozen=True)
class VerifiedLeaf:
    """One leaf as checked: ``verified`` True, False (``problem`` says why) or None (too new)."""

    serial: int
    leaf_index: int
    entry: Entry | None  # None while deferred or when it did not decode
    verified: bool | None
    problem: str = ""
    legal_basis_text: str = ""
    requester_name: str = ""
    provider_name: str = ""
    deferral: Deferral | None = None
    checkpoint_size: int | None = None


@dataclass(frozen=True)
class HistoryRow:
    """One exchange as the person sees it (R23 (1)-(6) and its outcome)."""

    serial: int
    logged_at: datetime | None
    legal_basis_item: str
    legal_basis_text: str
    requester_id: str
    requester_name: str
    provider_id: str
    provider_name: str
    info_kind: str
    outcome: str
    reason: str
    verified: bool | None
    problems: tuple[str, ...] = ()
    deferral: Deferral | None = None
    fetches: int = 0
    leaf_indexes: tuple[int, ...] = ()

    @property
    def logged_at_jst(self) -> str:
        if self.logged_at is None:
            return ""
        return self.logged_at.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def outcome_label(self) -> str:
        return outcome_label(self.outcome)

    @property
    def reason_label(self) -> str:
        return reason_label(self.reason)

    @property
    def verified_label(self) -> str:
        """The proof status in words, never a colour alone."""
        if self.verified is True:
            return "検証済み"
        if self.verified is None:
            return "検証待ち"
        return "検証失敗"

    @property
    def deferred(self) -> bool:
        return self.deferral is not None


@dataclass(frozen=True)
class HistoryPage:
    rows: tuple[HistoryRow, ...]
    checkpoint: CheckpointInfo | None  # None: no checkpoint verified (see checkpoint_error)
    checkpoint_error: str = ""
    next_page_token: str = ""
    checkpoints: tuple[CheckpointInfo, ...] = field(default=())  # every page's, in order

    @property
    def verified(self) -> bool:
        """The whole page verified: its checkpoint and every row that can be proved yet."""
        return self.checkpoint is not None and all(r.verified is not False for r in self.rows)


class HistoryVerifier:
    """Checks the hub's answers against its log key and the witnesses the portal trusts."""

    def __init__(
        self,
        log_key: note.Verifier,
        witnesses: Sequence[tlog_checkpoint.CosignatureVerifier],
        quorum: int = 1,
        *,
        origin: str | None = None,
    ) -> None:
        if quorum < 0 or quorum > len(witnesses):
            raise ValueError(f"quorum {quorum} of {len(witnesses)} witnesses")
        self._log_key = log_key
        self._witnesses = list(witnesses)
        self._quorum = quorum
        self._origin = origin

    def verify(self, response: personal_pb2.ListPersonalEntriesResponse) -> HistoryPage:
        """One page of the hub's answer, checked and grouped by serial."""
        return self.verify_many([response])

    def verify_many(
        self, responses: Iterable[personal_pb2.ListPersonalEntriesResponse]
    ) -> HistoryPage:
        """Several pages (a download): each against its own checkpoint, rows merged."""
        leaves: list[VerifiedLeaf] = []
        checkpoints: list[CheckpointInfo] = []
        errors: list[str] = []
        token = ""
        for response in responses:
            info, error, page_leaves = self.verify_leaves(response)
            if info is not None and info not in checkpoints:
                checkpoints.append(info)
            if error:
                errors.append(error)
            leaves.extend(page_leaves)
            token = response.next_page_token
        latest = max(checkpoints, key=lambda c: c.size) if checkpoints and not errors else None
        return HistoryPage(
            rows=tuple(group(leaves)),
            checkpoint=latest,
            checkpoint_error="; ".join(dict.fromkeys(errors)),
            next_page_token=token,
            checkpoints=tuple(checkpoints),
        )

    def verify_checkpoint(self, signed: bytes) -> tuple[tlog_checkpoint.Checkpoint, CheckpointInfo]:
        """The checkpoint and what the page shows of it; CheckpointError when refused."""
        checked = tlog_checkpoint.verify_checkpoint(
            signed,
            self._log_key,
            self._witnesses,
            require_witness=self._quorum > 0,
            origin=self._origin,
        )
        opened = note.open(signed, [self._log_key, *self._witnesses])
        signed_by = {(s.name, s.key_id): s for s in opened.signatures}
        names: list[str] = []
        times: list[int] = []
        for w in self._witnesses:
            sig = signed_by.get((w.name, w.key_id))
            if sig is not None and w.name not in names:
                names.append(w.name)
                times.append(tlog_checkpoint.cosignature_time(sig))
        if len(names) < self._quorum:
            raise tlog_checkpoint.MissingCosignatureError(
                f"{len(names)} of the trusted witnesses cosigned, {self._quorum} are required"
            )
        info = CheckpointInfo(
            origin=checked.origin,
            size=checked.size,
            root_hash_hex=checked.root_hash.hex(),
            witnesses=tuple(names),
            time=datetime.fromtimestamp(max(times), UTC) if times else None,
        )
        return checked, info

    def verify_leaves(
        self, response: personal_pb2.ListPersonalEntriesResponse
    ) -> tuple[CheckpointInfo | None, str, list[VerifiedLeaf]]:
        """(checkpoint or None, why the checkpoint was refused or "", each leaf checked)."""
        try:
            checked, info = self.verify_checkpoint(response.checkpoint)
        except (note.NoteError, ValueError) as err:
            problem = f"チェックポイントを検証できません: {err}"
            leaves = [_leaf(e, False, problem, None) for e in response.entries]
            return None, problem, leaves
        return info, "", [_check(e, checked) for e in response.entries]


def unverified(
    responses: Iterable[personal_pb2.ListPersonalEntriesResponse], problem: str
) -> HistoryPage:
    """The pages as they came, every row marked as not verified for ``problem``."""
    responses = list(responses)
    leaves = [_leaf(e, False, problem, None) for r in responses for e in r.entries]
    token = responses[-1].next_page_token if responses else ""
    return HistoryPage(tuple(group(leaves)), None, problem, token)


def _check(e: personal_pb2.PersonalEntry, cp: tlog_checkpoint.Checkpoint) -> VerifiedLeaf:
    deferred = e.HasField("deferral")
    if e.entry:
        if hashlib.sha256(b"\x00" + e.entry).digest() != e.leaf_hash:
            return _leaf(e, False, "記録の内容がハッシュ値と一致しません", cp.size)
    elif not deferred:
        return _leaf(e, False, "記録の内容がありません", cp.size)
    if e.leaf_index >= cp.size:
        return _leaf(e, None, "チェックポイントより新しい記録です", cp.size)
    try:
        merkle.verify_inclusion(
            e.leaf_hash, e.leaf_index, cp.size, list(e.inclusion_proof), cp.root_hash
        )
    except (merkle.ProofError, ValueError) as err:
        return _leaf(e, False, f"包含証明が一致しません: {err}", cp.size)
    return _leaf(e, True, "", cp.size)


def _leaf(
    e: personal_pb2.PersonalEntry, verified: bool | None, problem: str, size: int | None
) -> VerifiedLeaf:
    entry: Entry | None = None
    if e.entry:
        try:
            entry = Entry.decode(e.entry)
        except EntryError as err:
            verified, problem = False, f"記録を読めません: {err}"
        else:
            if entry.serial != e.serial:
                verified = False
                problem = f"記録の通番 {entry.serial} が {e.serial} と一致しません"
    deferral = None
    if e.HasField("deferral"):
        deferral = Deferral(
            agency_id=e.deferral.agency_id,
            until=e.deferral.until.ToDatetime(tzinfo=UTC),
            legal_reason=e.deferral.legal_reason,
        )
        entry = None  # whatever came with it, a deferred entry shows nothing of itself
    return VerifiedLeaf(
        serial=e.serial,
        leaf_index=e.leaf_index,
        entry=entry,
        verified=verified,
        problem=problem,
        legal_basis_text=e.legal_basis_text if deferral is None else "",
        requester_name=e.requester_name if deferral is None else "",
        provider_name=e.provider_name if deferral is None else "",
        deferral=deferral,
        checkpoint_size=size,
    )


def group(leaves: Iterable[VerifiedLeaf]) -> list[HistoryRow]:
    """One row per serial, in the order the serials first appear (the hub's: newest first)."""
    by_serial: dict[int, list[VerifiedLeaf]] = {}
    for leaf in leaves:
        by_serial.setdefault(leaf.serial, []).append(leaf)
    return [_row(serial, ls) for serial, ls in by_serial.items()]


def _row(serial: int, leaves: list[VerifiedLeaf]) -> HistoryRow:
    leaves = sorted(leaves, key=lambda x: x.leaf_index)
    entries = [x.entry for x in leaves if x.entry is not None]
    first = next((e for e in entries if e.kind == EXCHANGE), entries[0] if entries else None)
    outcome, reason = (first.outcome, first.reason) if first is not None else ("", "")
    for e in entries:
        if e.kind == OUTCOME and e.outcome:
            outcome, reason = e.outcome, e.reason
    problems = tuple(dict.fromkeys(x.problem for x in leaves if x.verified is False))
    verified: bool | None
    if problems:
        verified = False
    elif any(x.verified is None for x in leaves):
        verified = None
    else:
        verified = True

    def named(attr: str) -> str:
        return next((str(getattr(x, attr)) for x in leaves if getattr(x, attr)), "")

    deferral = next((x.deferral for x in leaves if x.deferral is not None), None)
    return HistoryRow(
        serial=serial,
        logged_at=first.logged_at if first is not None else None,
        legal_basis_item=first.legal_basis_item if first is not None else "",
        legal_basis_text=named("legal_basis_text"),
        requester_id=first.requester if first is not None else "",
        requester_name=named("requester_name"),
        provider_id=first.provider if first is not None else "",
        provider_name=named("provider_name"),
        info_kind=first.info_kind if first is not None else "",
        outcome=outcome,
        reason=reason,
        verified=verified,
        problems=problems,
        deferral=deferral,
        fetches=sum(1 for e in entries if e.kind == FETCH),
        leaf_indexes=tuple(x.leaf_index for x in leaves),
    )


VERIFIER = web.AppKey("verifier", HistoryVerifier)
