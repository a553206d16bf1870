"""Proof bundles: what a holder of log entries keeps to check them later, with no server.

A bundle is a signed checkpoint, entries as their holder knows them, each with
its leaf index and inclusion proof (and, optionally, the bytes the hub serves
for it now), and optionally an older checkpoint the holder trusted with a
consistency proof to the new one. As JSON (UTF-8), every byte string in
standard base64:

    {"format": "renkei-log-proof-bundle/v1",
     "checkpoint": "<signed checkpoint note, cosignatures included>",
     "entries": [{"leaf_index": 7, "entry": "<base64>", "inclusion": ["<base64>", ...],
                  "served": "<optional base64>", "missing": <optional true>,
                  "purged": <optional true>}],
     "previous": {"checkpoint": "<older note>", "consistency": ["<base64>", ...]}}

:func:`verify_bundle` checks everything it can and lists every problem, one
sentence each, naming the serial and leaf concerned: a checkpoint the log did
not sign or no trusted witness cosigned, a rollback or a fork against the
previous checkpoint, an entry the tree does not hold, a hub copy that differs
(and in which fields). A checkpoint whose signatures fail is still read, so
that the proofs against the root it claims are reported too. An entry the
hub purged under retention (``purged``: its hash is still the tree's, its
bytes gone) is no problem: the holder's own copy is what the proof is for.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from renkei.tlog import checkpoint, merkle, note
from renkei.tlog.checkpoint import Checkpoint, CosignatureVerifier
from renkei.tlog.entry import Entry, EntryError, differences

FORMAT = "renkei-log-proof-bundle/v1"

_TOP_KEYS = {"format", "checkpoint", "entries", "previous"}
_ENTRY_KEYS = {"leaf_index", "entry", "inclusion", "served", "missing", "purged"}
_PREVIOUS_KEYS = {"checkpoint", "consistency"}


class BundleError(ValueError):
    """A bundle that cannot be read; the message starts with the JSON path that is wrong."""


@dataclass(frozen=True)
class BundleEntry:
    leaf_index: int
    entry: bytes  # the bytes the holder was given (a LogReceipt's entry)
    inclusion: Sequence[bytes]  # the proof to the bundle's checkpoint
    served: bytes | None = None  # what the hub serves for this leaf now, when fetched
    missing: bool = False  # fetched, and the hub served no copy at all
    purged: bool = False  # fetched, and the hub said it purged it under retention


@dataclass(frozen=True)
class Bundle:
    checkpoint: bytes
    entries: Sequence[BundleEntry]
    previous: bytes | None = None  # an older checkpoint the holder trusted
    consistency: Sequence[bytes] = field(default=())  # from previous to checkpoint

    def __post_init__(self) -> None:
        if self.previous is None and self.consistency:
            raise ValueError("a consistency proof without a previous checkpoint")

    def to_json(self) -> str:
        doc: dict[str, Any] = {
            "format": FORMAT,
            "checkpoint": self.checkpoint.decode("utf-8"),
            "entries": [_entry_json(e) for e in self.entries],
        }
        if self.previous is not None:
            doc["previous"] = {
                "checkpoint": self.previous.decode("utf-8"),
                "consistency": [_b64(h) for h in self.consistency],
            }
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Bundle:
        """The bundle ``text`` holds, or BundleError naming the JSON path that is wrong."""
        try:
            doc = json.loads(text, object_pairs_hook=_no_duplicates)
        except _DuplicateKey as err:
            raise BundleError(f"$: key {err.args[0]!r} given twice") from None
        except ValueError as err:
            raise BundleError(f"$: not JSON ({err})") from None
        _keys(doc, "$", required={"format", "checkpoint", "entries"}, allowed=_TOP_KEYS)
        if doc["format"] != FORMAT:
            raise BundleError(f"$.format: {doc['format']!r}, not {FORMAT!r}")
        entries = doc["entries"]
        if not isinstance(entries, list):
            raise BundleError("$.entries: not a list")
        previous, consistency = None, []
        if "previous" in doc:
            prev = doc["previous"]
            _keys(prev, "$.previous", required=_PREVIOUS_KEYS, allowed=_PREVIOUS_KEYS)
            previous = _note(prev["checkpoint"], "$.previous.checkpoint")
            consistency = _hashes(prev["consistency"], "$.previous.consistency")
        return cls(
            checkpoint=_note(doc["checkpoint"], "$.checkpoint"),
            entries=[_entry(e, f"$.entries[{i}]") for i, e in enumerate(entries)],
            previous=previous,
            consistency=consistency,
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _entry_json(e: BundleEntry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "leaf_index": e.leaf_index,
        "entry": _b64(e.entry),
        "inclusion": [_b64(h) for h in e.inclusion],
    }
    if e.served is not None:
        out["served"] = _b64(e.served)
    if e.missing:
        out["missing"] = True
    if e.purged:
        out["purged"] = True
    return out


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _keys(doc: object, where: str, *, required: set[str], allowed: set[str]) -> None:
    if not isinstance(doc, dict):
        raise BundleError(f"{where}: not a JSON object")
    if missing := sorted(required - set(doc)):
        raise BundleError(f"{where}: missing {', '.join(missing)}")
    if unknown := sorted(set(doc) - allowed):
        raise BundleError(f"{where}: unknown key {', '.join(map(repr, unknown))}")


def _note(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise BundleError(f"{where}: not a non-empty string (the signed note's text)")
    return value.encode("utf-8")


def _bytes(value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise BundleError(f"{where}: not a base64 string")
    try:
        return note.b64decode_exact(value)
    except ValueError as err:
        raise BundleError(f"{where}: {err}") from None


def _hashes(value: object, where: str) -> list[bytes]:
    if not isinstance(value, list):
        raise BundleError(f"{where}: not a list of hashes")
    out = []
    for i, item in enumerate(value):
        h = _bytes(item, f"{where}[{i}]")
        if len(h) != merkle.HASH_SIZE:
            raise BundleError(f"{where}[{i}]: {len(h)} bytes, a hash is {merkle.HASH_SIZE}")
        out.append(h)
    return out


def _entry(doc: object, where: str) -> BundleEntry:
    _keys(doc, where, required=_ENTRY_KEYS - {"served", "missing", "purged"}, allowed=_ENTRY_KEYS)
    assert isinstance(doc, dict)  # _keys refused anything else
    index = doc["leaf_index"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise BundleError(f"{where}.leaf_index: {index!r} is not an integer >= 0")
    served = doc.get("served")
    missing = doc.get("missing", False)
    if not isinstance(missing, bool) or (missing and served is not None):
        raise BundleError(f"{where}.missing: true (with no served copy) or absent")
    purged = doc.get("purged", False)
    if not isinstance(purged, bool) or (purged and (missing or served is not None)):
        raise BundleError(f"{where}.purged: true (with no served copy, not missing) or absent")
    return BundleEntry(
        leaf_index=index,
        entry=_bytes(doc["entry"], f"{where}.entry"),
        inclusion=_hashes(doc["inclusion"], f"{where}.inclusion"),
        served=None if served is None else _bytes(served, f"{where}.served"),
        missing=missing,
        purged=purged,
    )


# --- verification ------------------------------------------------------------------


@dataclass(frozen=True)
class BundleReport:
    problems: tuple[str, ...]
    size: int | None  # the checkpoint's tree size, when it could be read at all
    entries: int

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return f"ok: {self.entries} entries verified against checkpoint of size {self.size}"


def verify_bundle(
    bundle: Bundle,
    log_key: note.Verifier,
    witness_keys: Sequence[CosignatureVerifier],
    *,
    require_witness: bool = True,
) -> BundleReport:
    """Every problem with the bundle, checked offline against the log's and witnesses' keys."""
    problems: list[str] = []
    current = _checkpoint(
        bundle.checkpoint, "checkpoint", log_key, witness_keys, require_witness, problems
    )
    if bundle.previous is not None:
        older = _checkpoint(
            bundle.previous, "previous checkpoint", log_key, witness_keys, require_witness, problems
        )
        if current is not None and older is not None:
            problems.extend(_consistency(older, current, bundle.consistency))
    if current is not None:
        for i, item in enumerate(bundle.entries):
            problems.extend(_check_entry(item, f"entries[{i}]", current))
    elif bundle.entries:
        problems.append(f"{len(bundle.entries)} entries not checked: the checkpoint is unreadable")
    return BundleReport(
        tuple(problems), None if current is None else current.size, len(bundle.entries)
    )


def _checkpoint(
    signed: bytes,
    what: str,
    log_key: note.Verifier,
    witnesses: Sequence[CosignatureVerifier],
    require_witness: bool,
    problems: list[str],
) -> Checkpoint | None:
    """The checkpoint as the note claims it; each signature problem added to ``problems``."""
    try:
        text, signatures = note.parse(signed)
        claimed = Checkpoint.parse(text)
    except note.NoteError as err:
        problems.append(f"{what}: unreadable ({err})")
        return None
    found: list[str] = []
    log_id = _id(log_key)
    known: dict[tuple[str, int], note.Verifier] = {_id(w): w for w in witnesses}
    known[log_id] = log_key
    signed_by = {(s.name, s.key_id) for s in signatures}
    bad: set[tuple[str, int]] = set()
    for sig in signatures:
        key = (sig.name, sig.key_id)
        verifier = known.get(key)
        if verifier is None or key in bad or verifier.verify(text.encode(), sig.signature):
            continue
        bad.add(key)
        who = "the log's signature" if key == log_id else "the cosignature of witness"
        found.append(f"{what}: {who} {_key(verifier)} does not verify")
    if log_id not in signed_by:
        found.append(f"{what}: not signed by the log key {_key(log_key)}")
    good_witnesses = [w for w in witnesses if _id(w) in signed_by - bad - {log_id}]
    if require_witness and not good_witnesses:
        names = ", ".join(_key(w) for w in witnesses) or "none given"
        found.append(
            f"{what}: size {claimed.size} has no valid cosignature by a trusted witness ({names})"
        )
    if claimed.origin != log_key.name:
        found.append(f"{what}: origin {claimed.origin!r}, the log is {log_key.name!r}")
    try:
        checkpoint.verify_checkpoint(signed, log_key, witnesses, require_witness)
    except note.NoteError as err:
        # The authority is verify_checkpoint: a refusal not explained above is still one.
        if not found:
            found.append(f"{what}: {err}")
    problems.extend(found)
    return claimed


def _id(verifier: note.Verifier) -> tuple[str, int]:
    return verifier.name, verifier.key_id


def _key(verifier: note.Verifier) -> str:
    return f"{verifier.name}+{verifier.key_id:08x}"


def _consistency(older: Checkpoint, current: Checkpoint, proof: Sequence[bytes]) -> list[str]:
    if older.size > current.size:
        return [
            f"previous checkpoint of size {older.size} is larger than the checkpoint of size"
            f" {current.size}: the log went back"
        ]
    if older.size == 0:
        return []  # the empty tree is a prefix of every tree
    try:
        merkle.verify_consistency(
            older.size, current.size, older.root_hash, current.root_hash, proof
        )
    except merkle.ProofError as err:
        if older.size == current.size:
            return [f"fork: two checkpoints of size {current.size} with different roots"]
        return [
            f"fork: the checkpoint of size {current.size} is not consistent with the previous"
            f" checkpoint of size {older.size} ({err})"
        ]
    return []


def _check_entry(item: BundleEntry, where: str, tree: Checkpoint) -> list[str]:
    index, size = item.leaf_index, tree.size
    ours: Entry | None = None
    try:
        ours = Entry.decode(item.entry)
        label = f"serial {ours.serial} (leaf {index})"
    except EntryError as err:
        label = f"{where} (leaf {index})"
        found = [f"{label}: the entry is undecodable ({err})"]
    else:
        found = []
    if index >= size:
        found.append(f"{label}: leaf {index} is not in the tree of size {size}")
    else:
        try:
            merkle.verify_inclusion(
                merkle.leaf_hash(item.entry), index, size, item.inclusion, tree.root_hash
            )
        except merkle.ProofError as err:
            detail = "" if "root other than" in str(err) else f" ({err})"
            found.append(
                f"{label}: the entry is not the tree's leaf {index} at size {size}{detail}"
            )
    if item.served is not None and item.served != item.entry:
        found.extend(_served(label, ours, item.served))
    if item.missing:
        found.append(f"{label}: the hub serves no copy of this entry (deleted, or not its own)")
    return found


def _served(label: str, ours: Entry | None, served: bytes) -> list[str]:
    try:
        theirs = Entry.decode(served)
    except EntryError as err:
        return [f"{label}: the hub's copy is undecodable ({err})"]
    if ours is None:
        return [f"{label}: the hub's copy differs from the undecodable entry here"]
    return [
        f"{label}: the hub's copy differs in {name}:"
        f" {_show(getattr(ours, name))} here, {_show(getattr(theirs, name))} served"
        for name in differences(ours, theirs)
    ]


def _show(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return _b64(value)
    return repr(value)
