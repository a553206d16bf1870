"""Field limits of an exchange, written once for every hop and both sizes of request.

A single query and a bulk query, the requester's server, the hub and the
provider's server all check the same fields against these numbers, so a rule
changes in one place. ``check_requester_fields`` and ``check_person`` are the
checks of the fields a query carries; ``check_kind`` is what every hop checks.
"""

from __future__ import annotations

from renkei import validate

# Identifiers an agency chooses: local person ids, agency ids, staff and terminal ids, tickets.
MAX_ID = 64
# Annex Table 2's names and item numbers (the longest kind of information is under 100).
MAX_INFO_KIND = 200
MAX_ITEM = 32
MAX_PURPOSE = 400
MAX_TICKET = MAX_ID
# One person's query as the legacy terminal sent it, before sealing.
MAX_QUERY_BYTES = 64 * 1024
# One person's sealed query at the hub (HPKE adds a few dozen bytes to MAX_QUERY_BYTES).
MAX_SEALED_QUERY_BYTES = 256 * 1024
# An Ed25519 signature is 64 bytes (renkei.exchange_cert); a longer field is refused whole.
MAX_SIGNATURE_BYTES = 64
# Persons in one bulk request, and their sealed queries together.
MAX_BULK_ITEMS = 5000
MAX_BULK_SEALED_QUERIES = 2 * 1024 * 1024
# Sealed answers beyond this are refused per item (BULK_ANSWER_TOO_LARGE), so the whole
# response stays under the gRPC message limit.
MAX_BULK_ANSWER_BYTES = 3 * 1024 * 1024
# Link codes handed to the hub for re-keying in one call.
MAX_REKEY_BATCH = 1000
# Resident codes in one ResidentDirectoryService.CheckResidentCodes call (numbering -> registry).
MAX_RESIDENT_CODES_CHECK = 10_000
# Every gRPC server and client of renkei accepts messages up to this size.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def check_kind(info_kind: str, legal_basis_item: str) -> None:
    """What is asked for: the kind of information and its Annex Table 2 item."""
    validate.text("info_kind", info_kind, max_chars=MAX_INFO_KIND)
    validate.text("legal_basis_item", legal_basis_item, max_chars=MAX_ITEM)


def check_requester_fields(
    *,
    provider_agency_id: str,
    info_kind: str,
    legal_basis_item: str,
    purpose: str,
    staff_id: str,
    terminal_id: str,
) -> None:
    """The fields a legacy terminal sends with every query, single or bulk."""
    validate.text("provider_agency_id", provider_agency_id, max_chars=MAX_ID)
    check_kind(info_kind, legal_basis_item)
    validate.text("purpose", purpose, max_chars=MAX_PURPOSE)
    validate.text("staff_id", staff_id, max_chars=MAX_ID)
    validate.text("terminal_id", terminal_id, max_chars=MAX_ID)


def check_person(field: str, local_person_id: str, query: bytes) -> None:
    """One person of a query: ``field`` names it (``""`` or ``"items[3]."``)."""
    validate.text(f"{field}local_person_id", local_person_id, max_chars=MAX_ID)
    validate.blob(f"{field}query", query, max_bytes=MAX_QUERY_BYTES)
