"""portal.history: a person's leaves checked against a real tree and a witnessed checkpoint."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric import ed25519
from support.personal_log import WITNESS, PersonLog

from portal.history import HistoryVerifier
from renkei.hub.v1 import personal_pb2
from renkei.tlog.checkpoint import CosignatureSigner

ME = "person-me"
OTHER = "person-other"


def _log() -> PersonLog:
    log = PersonLog()
    log.exchange(ME, 1)
    log.exchange(OTHER, 2, requester="C-WELFARE")
    log.exchange(ME, 3, requester="C-WELFARE", outcome="DENIED", reason="PERSON_NOT_FOUND")
    log.exchange(ME, 4, fetch=True)
    return log


def _all(log: PersonLog) -> personal_pb2.ListPersonalEntriesResponse:
    return log.list(personal_pb2.ListPersonalEntriesRequest(link_code=ME))


def test_every_row_verifies_and_groups_by_serial() -> None:
    log = _log()
    page = log.verifier().verify(_all(log))
    assert page.verified
    assert page.checkpoint is not None
    assert [r.serial for r in page.rows] == [4, 3, 1]  # newest first, never another's
    assert all(r.verified is True for r in page.rows)
    four, three, one = page.rows
    assert four.fetches == 1
    assert len(four.leaf_indexes) == 3
    assert three.outcome == "DENIED"
    assert three.outcome_label == "拒否"
    assert three.reason_label == "該当者なし"
    assert one.outcome == "OK"
    assert one.requester_name == "横浜市 税務課"
    assert one.legal_basis_text.startswith("地方税法")
    assert one.logged_at_jst == "2026-04-01 09:31:00"
    cp = page.checkpoint
    assert cp.size == len(log.leaves)
    assert cp.witnesses == (WITNESS,)
    assert cp.time == datetime.fromtimestamp(1_780_000_000, UTC)
    assert len(cp.root_hash_hex) == 64


def test_a_tampered_entry_does_not_verify() -> None:
    log = _log()

    def tamper(pe: personal_pb2.PersonalEntry) -> None:
        if pe.serial == 3 and pe.entry:
            pe.entry = pe.entry.replace(b"DENIED", b"OK")

    log.tamper = tamper
    page = log.verifier().verify(_all(log))
    assert not page.verified
    row = {r.serial: r for r in page.rows}
    assert row[3].verified is False
    assert row[3].verified_label == "検証失敗"
    assert any("ハッシュ" in p for p in row[3].problems)
    assert row[1].verified is True


def test_a_wrong_proof_does_not_verify() -> None:
    log = _log()

    def tamper(pe: personal_pb2.PersonalEntry) -> None:
        if pe.serial == 1:
            pe.inclusion_proof[0] = bytes(32)

    log.tamper = tamper
    page = log.verifier().verify(_all(log))
    row = {r.serial: r for r in page.rows}
    assert row[1].verified is False
    assert any("包含証明" in p for p in row[1].problems)


def test_a_leaf_moved_to_another_index_does_not_verify() -> None:
    log = _log()

    def tamper(pe: personal_pb2.PersonalEntry) -> None:
        if pe.serial == 4:
            pe.leaf_index = 0

    log.tamper = tamper
    page = log.verifier().verify(_all(log))
    assert {r.serial: r for r in page.rows}[4].verified is False


def test_a_deferred_entry_shows_only_that_it_exists() -> None:
    log = _log()
    until = datetime(2027, 4, 1, tzinfo=UTC)
    log.defer(3, until, "刑事訴訟法第百九十七条に基づく捜査")
    page = log.verifier().verify(_all(log))
    row = {r.serial: r for r in page.rows}[3]
    assert row.deferred
    assert row.deferral is not None
    assert row.deferral.until == until
    assert row.verified is True  # its leaf hash is proved without the entry
    assert (row.requester_id, row.provider_id, row.info_kind, row.outcome) == ("", "", "", "")
    assert row.logged_at is None


def test_a_leaf_newer_than_the_checkpoint_is_pending() -> None:
    log = _log()
    log.checkpoint_size = len(log.leaves) - 3  # serial 4's three leaves are not in it yet
    page = log.verifier().verify(_all(log))
    row = {r.serial: r for r in page.rows}
    assert row[4].verified is None
    assert row[4].verified_label == "検証待ち"
    assert row[1].verified is True
    assert page.verified


def test_a_checkpoint_without_the_witness_is_refused() -> None:
    log = _log()
    stranger = CosignatureSigner(WITNESS, ed25519.Ed25519PrivateKey.generate(), lambda: 1)
    verifier = HistoryVerifier(log.hub.verifier(), [stranger.verifier()])
    page = verifier.verify(_all(log))
    assert page.checkpoint is None
    assert "チェックポイント" in page.checkpoint_error
    assert not page.verified
    assert all(r.verified is False for r in page.rows)


def test_a_checkpoint_by_another_hub_is_refused() -> None:
    log, other = _log(), PersonLog()
    page = other.verifier().verify(_all(log))
    assert page.checkpoint is None
    assert not page.verified


def test_several_pages_merge_a_serial_split_between_them() -> None:
    log = _log()
    first = log.list(personal_pb2.ListPersonalEntriesRequest(link_code=ME, page_size=2))
    rest = log.list(
        personal_pb2.ListPersonalEntriesRequest(
            link_code=ME, page_size=100, page_token=first.next_page_token
        )
    )
    page = log.verifier().verify_many([first, rest])
    assert [r.serial for r in page.rows] == [4, 3, 1]
    assert page.rows[0].fetches == 1
    assert page.verified
    assert len(page.checkpoints) == 1
