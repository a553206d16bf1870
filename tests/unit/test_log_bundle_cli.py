"""`renkei log verify BUNDLE`: one line per problem; exit 0 clean, 1 on a problem, 2 unusable."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from ops.cli import main
from renkei.tlog import checkpoint as cp
from renkei.tlog import merkle, note
from renkei.tlog.bundle import Bundle, BundleEntry
from renkei.tlog.entry import EXCHANGE, Entry

ORIGIN = "renkei.example/hub-log"
LOG = note.Ed25519Signer(ORIGIN, ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32))
WITNESS = cp.CosignatureSigner(
    "renkei.example/witness",
    ed25519.Ed25519PrivateKey.from_private_bytes(b"\x02" * 32),
    clock=lambda: 1_780_000_000,
)
OTHER_WITNESS = cp.CosignatureSigner(
    "renkei.example/other",
    ed25519.Ed25519PrivateKey.from_private_bytes(b"\x04" * 32),
    clock=lambda: 1_780_000_000,
)
LOG_VKEY = LOG.verifier().verifier_key()
WITNESS_VKEY = WITNESS.verifier().verifier_key()


def _entry(serial: int, outcome: str = "OK") -> bytes:
    return Entry(
        kind=EXCHANGE,
        serial=serial,
        logged_at=datetime(2026, 12, 7, tzinfo=UTC),
        requester="city-a",
        provider="pension",
        salt=bytes([serial]) * 16,
        outcome=outcome,
    ).encode()


LEAVES = [_entry(i) for i in range(20)]
STORE = merkle.MemoryHashStore()
merkle.CompactRange(STORE).append([merkle.leaf_hash(x) for x in LEAVES])


def _bundle(witnessed: bool = True) -> Bundle:
    signed = cp.CheckpointSigner(LOG).sign(20, merkle.stored_root(STORE, 20))
    if witnessed:
        signed = cp.cosign(signed, LOG.verifier(), WITNESS)
    items = [BundleEntry(i, LEAVES[i], merkle.stored_inclusion_proof(STORE, i, 20)) for i in (2, 7)]
    return Bundle(signed, items)


def _write(tmp_path: Path, bundle: Bundle) -> str:
    path = tmp_path / "bundle.json"
    path.write_text(bundle.to_json(), "utf-8")
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    status = main(["log", "verify", *argv])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


def test_a_clean_bundle_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _write(tmp_path, _bundle())
    got = _run(capsys, bundle, "--log-key", LOG_VKEY, "--witness-key", WITNESS_VKEY)
    assert got == (0, ["ok: 2 entries verified against checkpoint of size 20"], "")


def test_keys_from_files_and_several_witnesses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "log.vkey").write_text(LOG_VKEY + "\n", "utf-8")
    (tmp_path / "witness.vkey").write_text(WITNESS_VKEY, "utf-8")
    other = OTHER_WITNESS.verifier().verifier_key()
    status, out, _ = _run(
        capsys,
        _write(tmp_path, _bundle()),
        "--log-key",
        f"@{tmp_path / 'log.vkey'}",
        "--witness-key",
        other,
        "--witness-key",
        f"@{tmp_path / 'witness.vkey'}",
    )
    assert (status, out) == (0, ["ok: 2 entries verified against checkpoint of size 20"])


def test_each_problem_on_its_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _bundle(witnessed=False)
    changed = [
        dataclasses.replace(bundle.entries[0], served=_entry(2, outcome="DENIED")),
        dataclasses.replace(bundle.entries[1], entry=_entry(7, outcome="DENIED")),
    ]
    path = _write(tmp_path, dataclasses.replace(bundle, entries=changed))
    status, out, err = _run(capsys, path, "--log-key", LOG_VKEY, "--witness-key", WITNESS_VKEY)
    assert status == 1
    assert out == [
        "checkpoint: size 20 has no valid cosignature by a trusted witness"
        f" (renkei.example/witness+{WITNESS.key_id:08x})",
        "serial 2 (leaf 2): the hub's copy differs in outcome: 'OK' here, 'DENIED' served",
        "serial 7 (leaf 7): the entry is not the tree's leaf 7 at size 20",
    ]
    assert err == ""
    # --no-witness: the missing cosignature is no longer a problem, the rest still are.
    status, out, _ = _run(capsys, path, "--log-key", LOG_VKEY, "--no-witness")
    assert status == 1
    assert len(out) == 2


def test_no_witness_accepts_a_bundle_nobody_cosigned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, _bundle(witnessed=False))
    status, out, _ = _run(capsys, path, "--log-key", LOG_VKEY, "--no-witness")
    assert (status, out) == (0, ["ok: 2 entries verified against checkpoint of size 20"])


def test_a_wrong_log_key_is_a_problem_not_unusable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = note.Ed25519Signer(
        ORIGIN, ed25519.Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)
    ).verifier()
    path = _write(tmp_path, _bundle())
    status, out, _ = _run(
        capsys, path, "--log-key", stranger.verifier_key(), "--witness-key", WITNESS_VKEY
    )
    assert status == 1
    assert out == [f"checkpoint: not signed by the log key {ORIGIN}+{stranger.key_id:08x}"]


def test_unusable_input_exits_2_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path, _bundle())
    (tmp_path / "junk.json").write_text('{"format": "renkei-log-proof-bundle/v1"}', "utf-8")
    (tmp_path / "latin1.json").write_bytes(b"\xff{}")
    missing = tmp_path / "missing.json"
    for argv, message in [
        ((str(missing), "--log-key", LOG_VKEY, "--no-witness"), f"{missing}: cannot read"),
        (
            (str(tmp_path / "junk.json"), "--log-key", LOG_VKEY, "--no-witness"),
            "junk.json: not a proof bundle: $: missing checkpoint, entries",
        ),
        (
            (str(tmp_path / "latin1.json"), "--log-key", LOG_VKEY, "--no-witness"),
            "latin1.json: not UTF-8 (byte 0)",
        ),
        ((good, "--log-key", "nonsense", "--no-witness"), "--log-key: "),
        ((good, "--log-key", WITNESS_VKEY[:-4] + "AAAA", "--no-witness"), "--log-key: "),
        ((good, "--log-key", f"@{missing}", "--no-witness"), "cannot read the key file"),
        ((good, "--log-key", LOG_VKEY, "--witness-key", "x+y+z"), "--witness-key x+y+z: "),
        ((good, "--log-key", LOG_VKEY), "give the witness's key (--witness-key KEY)"),
    ]:
        status, out, err = _run(capsys, *argv)
        assert status == 2, argv
        assert out == []
        assert err.startswith("renkei log verify: ")
        assert message in err, err
        assert err.count("\n") == 1  # one line, no traceback


def test_the_bundle_on_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import sys

    class Stdin:
        buffer = io.BytesIO(_bundle().to_json().encode())

    monkeypatch.setattr(sys, "stdin", Stdin)
    status, out, _ = _run(capsys, "-", "--log-key", LOG_VKEY, "--witness-key", WITNESS_VKEY)
    assert (status, out) == (0, ["ok: 2 entries verified against checkpoint of size 20"])
