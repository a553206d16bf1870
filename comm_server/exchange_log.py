"""This agency's share of an exchange's log: the rows both sides write, one per person.

Every exchange leaves one row per person on each side, tied to the hub's
serial, whatever its outcome; the requester's and the provider's sides build
them here from a base row for the whole request.
"""

from __future__ import annotations

from comm_server.standard import BadLegacyRecord
from comm_server.store import LogRecord
from renkei.bulk import ItemError
from renkei.errors import RenkeiError

REQUESTER = "requester"
PROVIDER = "provider"
OK = "OK"


def row(
    base: LogRecord,
    serial: int | None,
    local_person_id: str | None,
    content: str,
    error: ItemError | RenkeiError | None = None,
    detail: str | None = None,
) -> LogRecord:
    """One person's row: the content on success, the code and reason otherwise.

    ``detail`` (a bad legacy record's field and bytes, a mapper's problem) stays in
    this agency's log; None keeps the base row's.
    """
    # Built directly: dataclasses.replace costs several times more, once per person.
    if error is None:
        outcome, reason = base.outcome, base.reason
    else:
        content = base.content
        outcome = error.code if isinstance(error, ItemError) else error.code.name
        reason = error.reason
    return LogRecord(
        serial,
        base.role,
        base.logged_at,
        base.counterpart_agency_id,
        base.info_kind,
        base.legal_basis_item,
        local_person_id,
        base.staff_id,
        base.terminal_id,
        content,
        base.purpose,
        outcome,
        reason,
        base.detail if detail is None else detail,
    )


def failed(
    base: LogRecord, serial: int | None, local_person_id: str | None, err: RenkeiError
) -> LogRecord:
    """The row of a person whose exchange was refused; a bad legacy record's detail stays."""
    detail = err.log_detail if isinstance(err, BadLegacyRecord) else None
    return row(base, serial, local_person_id, "", err, detail)
