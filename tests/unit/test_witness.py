"""The witness's decisions (c2sp.org/tlog-witness add-checkpoint), on a store in memory."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.witness_log import ORIGIN, ToyLog, witness_signer
from support.witness_log import MemoryCheckpointStore as MemoryStore

from renkei.tlog import checkpoint as cp
from renkei.tlog import merkle, note
from witness.witness import (
    BadLogSignature,
    Inconsistent,
    MalformedRequest,
    SizeConflict,
    UnknownLog,
    Witness,
)


@pytest.fixture
def log() -> ToyLog:
    return ToyLog()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def signer() -> cp.CosignatureSigner:
    return witness_signer()


@pytest.fixture
def witness(log: ToyLog, store: MemoryStore, signer: cp.CosignatureSigner) -> Witness:
    return Witness(store, signer, {log.origin: log.verifier})


def add(witness: Witness, log: ToyLog, old: int, new: int) -> str:
    return witness.add_checkpoint(old, log.proof(old, new), log.checkpoint(new))


def cosigned(log: ToyLog, size: int, lines: str, signer: cp.CosignatureSigner) -> cp.Checkpoint:
    signed = cp.add_cosignatures(log.checkpoint(size), lines)
    return cp.verify_checkpoint(signed, log.verifier, [signer.verifier()])


def test_first_checkpoint_from_zero_is_cosigned_and_kept(
    witness: Witness, log: ToyLog, store: MemoryStore, signer: cp.CosignatureSigner
) -> None:
    lines = add(witness, log, 0, 7)
    assert lines.startswith(f"— {signer.name} ")
    assert lines.endswith("\n")
    assert lines.count("\n") == 1
    assert cosigned(log, 7, lines, signer).size == 7
    kept = store.rows[ORIGIN]
    assert (kept.size, kept.root_hash) == (7, log.root(7))
    # What the monitoring endpoint serves: the log's signature and the witness's.
    again = cp.verify_checkpoint(kept.checkpoint, log.verifier, [signer.verifier()])
    assert again.size == 7


def test_the_cosignature_carries_the_clock_and_covers_the_whole_tree(
    witness: Witness, log: ToyLog
) -> None:
    lines = add(witness, log, 0, 5)
    (sig,) = note.parse_signature_lines(lines)
    assert cp.cosignature_time(sig) == 1_780_000_000


def test_consistent_growth_is_cosigned_step_after_step(
    witness: Witness, log: ToyLog, signer: cp.CosignatureSigner
) -> None:
    sizes = [0, 1, 2, 3, 4, 8, 13, 16, 17, 40]
    for old, new in itertools.pairwise(sizes):
        assert cosigned(log, new, add(witness, log, old, new), signer).size == new
    assert witness.latest(ORIGIN) is not None
    assert witness.latest(ORIGIN).size == 40  # type: ignore[union-attr]  # just checked


def test_the_same_checkpoint_again_is_cosigned_again(
    witness: Witness, log: ToyLog, signer: cp.CosignatureSigner
) -> None:
    add(witness, log, 0, 9)
    assert cosigned(log, 9, add(witness, log, 9, 9), signer).size == 9


def test_size_zero_with_the_empty_root(witness: Witness, log: ToyLog) -> None:
    assert add(witness, log, 0, 0)
    assert add(witness, log, 0, 3)


def test_size_zero_with_another_root_is_refused(witness: Witness, log: ToyLog) -> None:
    with pytest.raises(Inconsistent, match="empty tree"):
        witness.add_checkpoint(0, [], log.checkpoint(0, root=b"\x01" * 32))


def test_same_size_with_another_root_is_a_fork(
    witness: Witness, log: ToyLog, store: MemoryStore
) -> None:
    add(witness, log, 0, 9)
    with pytest.raises(Inconsistent) as err:
        witness.add_checkpoint(9, [], log.checkpoint(9, root=log.root(8)))
    assert err.value.status == 422
    assert store.rows[ORIGIN].root_hash == log.root(9)


def test_a_forked_tree_is_refused(witness: Witness, log: ToyLog, store: MemoryStore) -> None:
    """The split view: a second tree that shares the first leaves, then differs."""
    add(witness, log, 0, 10)
    fork = ToyLog(leaves=40, seed=b"fork")
    fork.leaves[:6] = log.leaves[:6]
    fork.signer, fork.verifier = log.signer, log.verifier
    fork._checkpoints = cp.CheckpointSigner(log.signer, ORIGIN)
    with pytest.raises(Inconsistent, match="not consistent with size 10"):
        witness.add_checkpoint(10, fork.proof(10, 20), fork.checkpoint(20))
    assert store.rows[ORIGIN].size == 10


def test_a_proof_with_one_bit_changed_is_refused(witness: Witness, log: ToyLog) -> None:
    add(witness, log, 0, 10)
    proof = log.proof(10, 23)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
        with pytest.raises(Inconsistent):
            witness.add_checkpoint(10, bad, log.checkpoint(23))
    assert add(witness, log, 10, 23)


@pytest.mark.parametrize("cut", ["short", "long", "empty"])
def test_a_proof_of_the_wrong_length_is_refused(witness: Witness, log: ToyLog, cut: str) -> None:
    add(witness, log, 0, 10)
    proof = log.proof(10, 23)
    bad = {"short": proof[:-1], "long": [*proof, proof[0]], "empty": []}[cut]
    with pytest.raises(Inconsistent):
        witness.add_checkpoint(10, bad, log.checkpoint(23))


def test_a_proof_from_size_zero_must_be_empty(witness: Witness, log: ToyLog) -> None:
    with pytest.raises(Inconsistent, match="must be empty"):
        witness.add_checkpoint(0, [log.leaves[0]], log.checkpoint(1))


def test_rollback_by_an_old_size_below_the_witness_is_a_conflict(
    witness: Witness, log: ToyLog, store: MemoryStore
) -> None:
    add(witness, log, 0, 20)
    with pytest.raises(SizeConflict) as err:
        add(witness, log, 10, 15)
    assert (err.value.status, err.value.known_size) == (409, 20)
    assert store.rows[ORIGIN].size == 20


def test_rollback_to_a_smaller_tree_is_refused(
    witness: Witness, log: ToyLog, store: MemoryStore
) -> None:
    add(witness, log, 0, 20)
    # Old size right, new size below it: the spec's 400.
    with pytest.raises(MalformedRequest, match="above the checkpoint's size"):
        witness.add_checkpoint(20, [], log.checkpoint(15))
    # Or an old size of 0 for a smaller tree: 409 with the witness's size.
    with pytest.raises(SizeConflict) as err:
        witness.add_checkpoint(0, [], log.checkpoint(15))
    assert err.value.known_size == 20
    assert store.rows[ORIGIN].size == 20


def test_an_old_size_ahead_of_the_witness_is_a_conflict(witness: Witness, log: ToyLog) -> None:
    add(witness, log, 0, 5)
    with pytest.raises(SizeConflict) as err:
        add(witness, log, 9, 12)
    assert err.value.known_size == 5


def test_a_client_with_no_state_learns_the_size_from_zero(witness: Witness, log: ToyLog) -> None:
    add(witness, log, 0, 5)
    with pytest.raises(SizeConflict) as err:
        add(witness, log, 0, 12)
    assert add(witness, log, err.value.known_size, 12)


def test_an_unknown_origin_is_not_found(witness: Witness) -> None:
    other = ToyLog(origin="other.example/log")
    with pytest.raises(UnknownLog) as err:
        witness.add_checkpoint(0, [], other.checkpoint(3))
    assert err.value.status == 404
    assert "other.example/log" in err.value.message


def test_a_checkpoint_signed_by_another_key_is_forbidden(witness: Witness, log: ToyLog) -> None:
    impostor = ToyLog(origin=ORIGIN)  # same origin and key name, another key
    with pytest.raises(BadLogSignature) as err:
        witness.add_checkpoint(0, [], impostor.checkpoint(3))
    assert err.value.status == 403


def test_a_bad_signature_by_the_logs_key_is_forbidden(witness: Witness, log: ToyLog) -> None:
    signed = log.checkpoint(3)
    text, sigs = note.parse(signed)
    sig = sigs[0]
    broken = note.Signature(sig.name, sig.key_id, bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    with pytest.raises(BadLogSignature, match="invalid signature"):
        witness.add_checkpoint(0, [], note.sign(text, [], keep=[broken]))


def test_signatures_by_unknown_keys_are_ignored(
    witness: Witness, log: ToyLog, signer: cp.CosignatureSigner
) -> None:
    other = note.Ed25519Signer.generate("someone.else")
    text, sigs = note.parse(log.checkpoint(4))
    both = note.sign(text, [other], keep=sigs)
    lines = witness.add_checkpoint(0, [], both)
    assert cosigned(log, 4, lines, signer).size == 4


@pytest.mark.parametrize(
    ("signed", "why"),
    [
        (b"not a note", "not a signed checkpoint"),
        ("renkei.example/hub-log\n7\n\n— x AAAA\n".encode(), "not a signed checkpoint"),
        (b"\xff\xfe\n\n", "not a signed checkpoint"),
    ],
)
def test_malformed_checkpoints_are_bad_requests(witness: Witness, signed: bytes, why: str) -> None:
    with pytest.raises(MalformedRequest, match=why) as err:
        witness.add_checkpoint(0, [], signed)
    assert err.value.status == 400


def test_a_note_that_is_no_checkpoint_is_a_bad_request(witness: Witness, log: ToyLog) -> None:
    signed = note.sign("renkei.example/hub-log\nseven\nAAAA\n", [log.signer])
    with pytest.raises(MalformedRequest, match="not a checkpoint: line 2"):
        witness.add_checkpoint(0, [], signed)


def test_a_size_beyond_what_the_store_keeps_is_a_bad_request(witness: Witness, log: ToyLog) -> None:
    signed = cp.CheckpointSigner(log.signer, ORIGIN).sign(1 << 63, merkle.EMPTY_ROOT)
    with pytest.raises(MalformedRequest, match="2\\^63"):
        witness.add_checkpoint(0, [], signed)


def test_two_racing_requests_from_the_same_size_cannot_both_win(
    log: ToyLog, store: MemoryStore, signer: cp.CosignatureSigner
) -> None:
    witness = Witness(store, signer, {log.origin: log.verifier})
    add(witness, log, 0, 10)
    # Both read the witness's size 10 before either stores: the spec's race.
    both_read = threading.Barrier(2, timeout=10)

    def wait_for_both() -> None:
        both_read.wait()

    store.on_read = wait_for_both
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(add, witness, log, 10, n) for n in (30, 15)]
        outcomes: list[tuple[str, object]] = []
        for f in futures:
            try:
                outcomes.append(("ok", f.result()))
            except SizeConflict as err:
                outcomes.append(("conflict", err.known_size))
    store.on_read = lambda: None
    assert sorted(kind for kind, _ in outcomes) == ["conflict", "ok"]
    winner = store.rows[ORIGIN].size
    assert winner in (30, 15)
    assert [v for kind, v in outcomes if kind == "conflict"] == [winner]


def test_logs_are_kept_apart(store: MemoryStore, signer: cp.CosignatureSigner) -> None:
    a, b = ToyLog(origin="a.example/log"), ToyLog(origin="b.example/log")
    witness = Witness(store, signer, {a.origin: a.verifier, b.origin: b.verifier})
    add(witness, a, 0, 12)
    add(witness, b, 0, 3)
    assert (store.rows[a.origin].size, store.rows[b.origin].size) == (12, 3)
