"""The binding store's cards and card_bindings tables, and the card CA's files, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy.engine import Engine

from ops.cards import init_card_ca
from registry_binding.cards import (
    CardBindingAttempt,
    CardCa,
    CardStore,
    issue_cards,
    revoke_card,
    write_crl,
)
from registry_binding.store import BindingStore

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_cards_are_issued_recorded_and_revoked(engine: Engine, tmp_path: Path) -> None:
    store = BindingStore(engine)
    ca = init_card_ca(tmp_path, now=NOW - timedelta(days=1))
    assert ca.files.folder == tmp_path / "pki" / "card-ca"
    assert ca.files.key.stat().st_mode & 0o777 == 0o600
    # A second call keeps the CA (a deployment re-run must not orphan every card).
    assert init_card_ca(tmp_path).cert == CardCa.load(ca.files.folder).cert == ca.cert
    issued = issue_cards(
        store,
        ca,
        ["12345678903", "22345678901"],
        tmp_path / "out",
        id_basis={"22345678901": "9"},
        now=NOW,
    )
    cards = CardStore(store)
    first, second = (cards.find(c.serial) for c in issued)
    assert first is not None
    assert second is not None
    assert (first.resident_code, first.id_basis, first.issued_at) == (
        "12345678903",
        "12345678903",
        NOW,
    )
    assert second.id_basis == "9"
    assert first.revoked_at is None
    assert cards.find(1) is None

    revoke_card(store, ca, issued[0].serial, now=NOW + timedelta(hours=1))
    assert cards.revoked() == [(issued[0].serial, NOW + timedelta(hours=1))]
    crl = x509.load_pem_x509_crl(ca.files.crl.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(issued[0].serial) is not None
    assert crl.get_revoked_certificate_by_serial_number(issued[1].serial) is None
    # Revoking again keeps the first time; an unknown serial is an error.
    revoke_card(store, ca, issued[0].serial, now=NOW + timedelta(hours=2))
    assert cards.revoked() == [(issued[0].serial, NOW + timedelta(hours=1))]
    with pytest.raises(KeyError):
        revoke_card(store, ca, 7, now=NOW)
    assert write_crl(store, ca, now=NOW) == ca.files.crl


def test_binding_attempts_are_logged_in_order(engine: Engine) -> None:
    cards = CardStore(BindingStore(engine))
    attempts = [
        CardBindingAttempt(NOW + timedelta(seconds=i), "agency:portal", str(10**40 + i), outcome)
        for i, outcome in enumerate(["bound", "CARD_REVOKED", "CALLER_NOT_PORTAL"])
    ]
    for a in attempts:
        cards.log_attempt(a)
    assert cards.attempts() == attempts
