"""renkei.tlog.bundle: offline proof bundles, read strictly, verified naming every problem."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from renkei.tlog import checkpoint as cp
from renkei.tlog import merkle, note
from renkei.tlog.bundle import (
    FORMAT,
    Bundle,
    BundleEntry,
    BundleError,
    BundleReport,
    verify_bundle,
)
from renkei.tlog.entry import EXCHANGE, OUTCOME, Entry

ORIGIN = "renkei.example/hub-log"
LOG = note.Ed25519Signer(ORIGIN, ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
WITNESS = cp.CosignatureSigner(
    "renkei.example/witness",
    ed25519.Ed25519PrivateKey.from_private_bytes(b"\x02" * 32),
    clock=lambda: 1_780_000_000,
)
STRANGER = note.Ed25519Signer(ORIGIN, ed25519.Ed25519PrivateKey.from_private_bytes(b"\x03" * 32))
AT = datetime(2026, 12, 7, 5, 4, 3, 21, tzinfo=UTC)
SIZE, OLD_SIZE = 100, 40


def _entry(serial: int, **changes: Any) -> Entry:
    fields: dict[str, Any] = {
        "kind": OUTCOME if serial % 2 else EXCHANGE,
        "serial": serial,
        "logged_at": AT,
        "requester": "city-a",
        "provider": "pension",
        "salt": bytes([serial % 256]) * 16,
        "outcome": "OK",
    }
    fields.update(changes)
    return Entry(**fields)


ENTRIES = [_entry(i) for i in range(SIZE)]
LEAVES = [e.encode() for e in ENTRIES]
STORE = merkle.MemoryHashStore()
merkle.CompactRange(STORE).append([merkle.leaf_hash(x) for x in LEAVES])


def _signed(size: int, root: bytes | None = None, witnessed: bool = True) -> bytes:
    root = merkle.stored_root(STORE, size) if root is None else root
    signed = cp.CheckpointSigner(LOG).sign(size, root)
    return cp.cosign(signed, LOG.verifier(), WITNESS) if witnessed else signed


def _item(index: int, **changes: Any) -> BundleEntry:
    made = BundleEntry(index, LEAVES[index], merkle.stored_inclusion_proof(STORE, index, SIZE))
    return dataclasses.replace(made, **changes)


def _bundle(**changes: Any) -> Bundle:
    made = Bundle(
        checkpoint=_signed(SIZE),
        entries=[_item(3), _item(34), _item(99, served=LEAVES[99])],
        previous=_signed(OLD_SIZE),
        consistency=merkle.stored_consistency_proof(STORE, OLD_SIZE, SIZE),
    )
    return dataclasses.replace(made, **changes)


def _verify(bundle: Bundle, require_witness: bool = True) -> BundleReport:
    return verify_bundle(
        bundle, LOG.verifier(), [WITNESS.verifier()], require_witness=require_witness
    )


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


# --- clean ------------------------------------------------------------------------------


def test_a_clean_bundle_verifies() -> None:
    report = _verify(_bundle())
    assert report.problems == ()
    assert report.ok
    assert report.summary() == "ok: 3 entries verified against checkpoint of size 100"
    assert _verify(_bundle(previous=None, consistency=())).ok
    # A bundle of the empty tree, and one from a previous empty tree.
    empty = Bundle(_signed(0, merkle.EMPTY_ROOT), [], _signed(0, merkle.EMPTY_ROOT))
    assert _verify(empty).ok
    assert _verify(_bundle(previous=_signed(0, merkle.EMPTY_ROOT), consistency=())).ok
    assert _verify(_bundle(previous=_signed(SIZE), consistency=())).ok


def test_the_json_round_trips_in_the_documented_shape() -> None:
    bundle = _bundle()
    text = bundle.to_json()
    doc = json.loads(text)
    assert list(doc) == ["format", "checkpoint", "entries", "previous"]
    assert doc["format"] == FORMAT == "renkei-log-proof-bundle/v1"
    assert doc["checkpoint"] == bundle.checkpoint.decode()
    assert doc["entries"][0] == {
        "leaf_index": 3,
        "entry": base64.b64encode(LEAVES[3]).decode(),
        "inclusion": [base64.b64encode(h).decode() for h in bundle.entries[0].inclusion],
    }
    assert doc["entries"][2]["served"] == base64.b64encode(LEAVES[99]).decode()
    assert set(doc["previous"]) == {"checkpoint", "consistency"}
    again = Bundle.from_json(text)
    assert again.to_json() == text
    assert again.entries[2] == bundle.entries[2]
    assert "previous" not in json.loads(_bundle(previous=None, consistency=()).to_json())


def test_a_consistency_proof_needs_a_previous_checkpoint() -> None:
    with pytest.raises(ValueError, match="without a previous checkpoint"):
        Bundle(_signed(SIZE), [], None, [b"\x00" * 32])


# --- unreadable bundles --------------------------------------------------------------------


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(_bundle().to_json())
    return doc


def _set(path: list[str | int], value: Any) -> str:
    doc: Any = _doc()
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "$: not JSON"),
        ("[]", "$: not a JSON object"),
        ('{"format": 1, "format": 2}', "$: key 'format' given twice"),
        (_set(["format"], KeyError), "$: missing format"),
        (_set(["format"], "renkei-log-proof-bundle/v2"), "$.format: 'renkei-log-proof-bundle/v2'"),
        (_set(["extra"], 1), "$: unknown key 'extra'"),
        (_set(["checkpoint"], 5), "$.checkpoint: not a non-empty string"),
        (_set(["checkpoint"], ""), "$.checkpoint: not a non-empty string"),
        (_set(["entries"], {}), "$.entries: not a list"),
        (_set(["entries", 1], []), "$.entries[1]: not a JSON object"),
        (_set(["entries", 1, "leaf_index"], -1), "$.entries[1].leaf_index: -1 is not"),
        (_set(["entries", 1, "leaf_index"], True), "$.entries[1].leaf_index: True is not"),
        (_set(["entries", 1, "leaf_index"], "3"), "$.entries[1].leaf_index: '3' is not"),
        (_set(["entries", 1, "leaf_index"], KeyError), "$.entries[1]: missing leaf_index"),
        (_set(["entries", 0, "entry"], "!!"), "$.entries[0].entry: not base64"),
        (_set(["entries", 0, "entry"], "AB=="), "$.entries[0].entry: not the canonical base64"),
        (_set(["entries", 0, "entry"], None), "$.entries[0].entry: not a base64 string"),
        (_set(["entries", 0, "inclusion"], "AAAA"), "$.entries[0].inclusion: not a list"),
        (_set(["entries", 0, "inclusion", 2], "AAAA"), "$.entries[0].inclusion[2]: 3 bytes"),
        (_set(["entries", 2, "served"], 7), "$.entries[2].served: not a base64 string"),
        (_set(["entries", 2, "sreved"], "AAAA"), "$.entries[2]: unknown key 'sreved'"),
        (_set(["previous"], []), "$.previous: not a JSON object"),
        (_set(["previous", "consistency"], KeyError), "$.previous: missing consistency"),
        (_set(["previous", "checkpoint"], None), "$.previous.checkpoint: not a non-empty"),
        (_set(["previous", "consistency", 0], "A" * 44), "$.previous.consistency[0]:"),
    ],
)
def test_an_unreadable_bundle_names_the_json_path(text: str, message: str) -> None:
    with pytest.raises(BundleError) as refused:
        Bundle.from_json(text)
    assert str(refused.value).startswith(message)


# --- each kind of problem --------------------------------------------------------------------


def test_a_checkpoint_the_log_did_not_sign() -> None:
    forged = cp.cosign(
        note.sign(
            cp.Checkpoint(ORIGIN, SIZE, merkle.stored_root(STORE, SIZE)).format(), [STRANGER]
        ),
        STRANGER.verifier(),
        WITNESS,
    )
    report = _verify(_bundle(checkpoint=forged))
    assert report.problems == (f"checkpoint: not signed by the log key {ORIGIN}+{LOG.key_id:08x}",)


def test_a_log_signature_that_does_not_verify() -> None:
    good = cp.CheckpointSigner(LOG).sign(SIZE, merkle.stored_root(STORE, SIZE))
    text, (sig,) = note.parse(good)
    bad = note.sign(text, [], keep=[dataclasses.replace(sig, signature=_flip(sig.signature, 3))])
    report = _verify(_bundle(checkpoint=bad), require_witness=False)
    assert report.problems == (
        f"checkpoint: the log's signature {ORIGIN}+{LOG.key_id:08x} does not verify",
    )


def test_a_checkpoint_no_witness_cosigned() -> None:
    bare = _signed(SIZE, witnessed=False)
    report = _verify(_bundle(checkpoint=bare))
    assert report.problems == (
        "checkpoint: size 100 has no valid cosignature by a trusted witness"
        f" (renkei.example/witness+{WITNESS.key_id:08x})",
    )
    assert _verify(_bundle(checkpoint=bare), require_witness=False).ok
    # No witness key given at all.
    report = verify_bundle(
        _bundle(checkpoint=bare, previous=None, consistency=()), LOG.verifier(), []
    )
    assert report.problems == (
        "checkpoint: size 100 has no valid cosignature by a trusted witness (none given)",
    )


def test_a_cosignature_that_does_not_verify() -> None:
    text, sigs = note.parse(_signed(SIZE))
    log_sig, witness_sig = sigs
    broken = dataclasses.replace(witness_sig, signature=_flip(witness_sig.signature, 100))
    bad = note.sign(text, [], keep=[log_sig, broken])
    report = _verify(_bundle(checkpoint=bad))
    assert report.problems == (
        "checkpoint: the cosignature of witness"
        f" renkei.example/witness+{WITNESS.key_id:08x} does not verify",
        "checkpoint: size 100 has no valid cosignature by a trusted witness"
        f" (renkei.example/witness+{WITNESS.key_id:08x})",
    )


def test_a_checkpoint_of_another_log_and_an_unreadable_one() -> None:
    other = cp.CheckpointSigner(LOG, origin="other.example/log").sign(
        SIZE, merkle.stored_root(STORE, SIZE)
    )
    report = _verify(_bundle(checkpoint=other), require_witness=False)
    assert report.problems == (f"checkpoint: origin 'other.example/log', the log is {ORIGIN!r}",)
    report = _verify(_bundle(checkpoint=b"not a note"))
    assert report.problems == (
        "checkpoint: unreadable (no blank line between the text and the signatures)",
        "3 entries not checked: the checkpoint is unreadable",
    )
    assert report.size is None


def test_a_previous_checkpoint_larger_than_the_new_one() -> None:
    report = _verify(
        _bundle(checkpoint=_signed(OLD_SIZE), previous=_signed(SIZE), consistency=(), entries=[])
    )
    assert report.problems == (
        "previous checkpoint of size 100 is larger than the checkpoint of size 40: the log went"
        " back",
    )


def test_a_fork_of_the_same_size_and_of_a_later_size() -> None:
    other_root = merkle.root([merkle.leaf_hash(b"forked %d" % i) for i in range(OLD_SIZE)])
    report = _verify(_bundle(previous=_signed(SIZE, other_root), consistency=()))
    assert report.problems == ("fork: two checkpoints of size 100 with different roots",)
    report = _verify(_bundle(previous=_signed(OLD_SIZE, other_root)))
    assert report.problems == (
        "fork: the checkpoint of size 100 is not consistent with the previous checkpoint of size"
        " 40 (consistency proof leads to an old root other than old_root)",
    )
    short = _bundle().consistency[:-1]
    report = _verify(_bundle(consistency=short))
    assert len(report.problems) == 1
    assert report.problems[0].startswith("fork: the checkpoint of size 100 is not consistent")
    assert "too short" in report.problems[0]


def test_a_previous_checkpoint_badly_signed_is_reported_as_the_previous() -> None:
    report = _verify(_bundle(previous=_signed(OLD_SIZE, witnessed=False)))
    assert report.problems == (
        "previous checkpoint: size 40 has no valid cosignature by a trusted witness"
        f" (renkei.example/witness+{WITNESS.key_id:08x})",
    )


def test_a_leaf_index_beyond_the_tree() -> None:
    report = _verify(_bundle(entries=[_item(3, leaf_index=100)]))
    assert report.problems == ("serial 3 (leaf 100): leaf 100 is not in the tree of size 100",)


def test_an_entry_the_tree_does_not_hold() -> None:
    changed = _entry(34, outcome="DENIED").encode()
    report = _verify(_bundle(entries=[_item(34, entry=changed)]))
    assert report.problems == (
        "serial 34 (leaf 34): the entry is not the tree's leaf 34 at size 100",
    )
    # The right entry under another leaf index.
    report = _verify(_bundle(entries=[_item(34, leaf_index=35)]))
    assert report.problems == (
        "serial 34 (leaf 35): the entry is not the tree's leaf 35 at size 100",
    )
    report = _verify(_bundle(entries=[_item(34, inclusion=_item(34).inclusion[:-1])]))
    assert report.problems == (
        "serial 34 (leaf 34): the entry is not the tree's leaf 34 at size 100"
        " (inclusion proof is too short: 6 hashes)",
    )


def test_an_undecodable_entry() -> None:
    report = _verify(_bundle(entries=[_item(5, entry=b"junk")]))
    assert report.problems == (
        "entries[0] (leaf 5): the entry is undecodable (not JSON: Expecting value: line 1"
        " column 1 (char 0))",
        "entries[0] (leaf 5): the entry is not the tree's leaf 5 at size 100",
    )


def test_a_hub_copy_that_differs_names_the_fields() -> None:
    served = _entry(12, outcome="DENIED", reason="NOT_ENTITLED").encode()
    report = _verify(_bundle(entries=[_item(12, served=served)]))
    assert report.problems == (
        "serial 12 (leaf 12): the hub's copy differs in outcome: 'OK' here, 'DENIED' served",
        "serial 12 (leaf 12): the hub's copy differs in reason: '' here, 'NOT_ENTITLED' served",
    )
    later = _entry(12, logged_at=datetime(2026, 12, 8, tzinfo=UTC), salt=b"\x01" * 16).encode()
    report = _verify(_bundle(entries=[_item(12, served=later)]))
    assert report.problems == (
        "serial 12 (leaf 12): the hub's copy differs in logged_at: 2026-12-07T05:04:03.000021+00:00"
        " here, 2026-12-08T00:00:00+00:00 served",
        "serial 12 (leaf 12): the hub's copy differs in salt: DAwMDAwMDAwMDAwMDAwMDA== here,"
        " AQEBAQEBAQEBAQEBAQEBAQ== served",
    )
    report = _verify(_bundle(entries=[_item(12, served=b"{}")]))
    assert report.problems == (
        "serial 12 (leaf 12): the hub's copy is undecodable (keys: missing ['info_kind', 'kind',"
        " 'legal_basis_item', 'logged_at', 'outcome', 'person', 'policy_version', 'provider',"
        " 'reason', 'requester', 'salt', 'serial', 'v'], unknown [])",
    )


def test_every_problem_is_listed_at_once() -> None:
    bundle = _bundle(
        checkpoint=_signed(SIZE, witnessed=False),
        previous=_signed(SIZE + 1, merkle.EMPTY_ROOT),
        consistency=(),
        entries=[
            _item(3),
            _item(34, entry=_entry(34, requester="city-b").encode()),
            _item(99, served=_entry(99, provider="tax").encode()),
            _item(7, leaf_index=700),
        ],
    )
    assert _verify(bundle).problems == (
        "checkpoint: size 100 has no valid cosignature by a trusted witness"
        f" (renkei.example/witness+{WITNESS.key_id:08x})",
        "previous checkpoint of size 101 is larger than the checkpoint of size 100: the log went"
        " back",
        "serial 34 (leaf 34): the entry is not the tree's leaf 34 at size 100",
        "serial 99 (leaf 99): the hub's copy differs in provider: 'pension' here, 'tax' served",
        "serial 7 (leaf 700): leaf 700 is not in the tree of size 100",
    )


# --- any one-bit change is caught --------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_single_bit_change_in_an_entry_or_a_proof_hash_is_reported(data: st.DataObject) -> None:
    bundle = _bundle()
    which = data.draw(st.sampled_from(["entry", "inclusion", "consistency"]))
    if which == "consistency":
        i = data.draw(st.integers(0, len(bundle.consistency) - 1))
        bit = data.draw(st.integers(0, 255))
        proof = list(bundle.consistency)
        proof[i] = _flip(proof[i], bit)
        report = _verify(dataclasses.replace(bundle, consistency=proof))
        assert len(report.problems) == 1
        assert report.problems[0].startswith("fork: the checkpoint of size 100")
        return
    at = data.draw(st.integers(0, len(bundle.entries) - 1))
    item = bundle.entries[at]
    if which == "entry":
        changed = dataclasses.replace(
            item, entry=_flip(item.entry, data.draw(st.integers(0, 8 * len(item.entry) - 1)))
        )
    else:
        i = data.draw(st.integers(0, len(item.inclusion) - 1))
        proof = list(item.inclusion)
        proof[i] = _flip(proof[i], data.draw(st.integers(0, 255)))
        changed = dataclasses.replace(item, inclusion=proof)
    entries = list(bundle.entries)
    entries[at] = changed
    report = _verify(dataclasses.replace(bundle, entries=entries))
    assert not report.ok
    want = (
        f"(leaf {item.leaf_index}): the entry is not the tree's leaf {item.leaf_index} at size 100"
    )
    assert any(want in p for p in report.problems), report.problems
    # Only that entry is reported; the others still verify.
    assert all(f"(leaf {item.leaf_index})" in p for p in report.problems)
