"""What the oversight body asks of a log share (oversight.proto's ReadRange, batch_size),
checked once for every party that serves it: each failure is INVALID_FIELD naming its field."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from renkei import validate
from renkei.errors import invalid_field
from renkei.oversight.v1 import oversight_pb2

DEFAULT_BATCH = 1000
MAX_BATCH = 5000


@dataclass(frozen=True, slots=True)
class ReadRange:
    """Half-open bounds; None or 0 for an open one."""

    start_time: datetime | None = None  # logged at or after
    end_time: datetime | None = None  # logged before
    start_serial: int = 0  # serial at least (rows without one left out when set)
    end_serial: int = 0  # serial below


def read_range(message: oversight_pb2.ReadRange, field: str = "range") -> ReadRange:
    """The request's range, or INVALID_FIELD: a bad timestamp, a negative serial, or an
    end before its start (named: ``range.end_time``, ``range.end_serial``)."""
    start = (
        validate.timestamp(f"{field}.start_time", message.start_time)
        if message.HasField("start_time")
        else None
    )
    end = (
        validate.timestamp(f"{field}.end_time", message.end_time)
        if message.HasField("end_time")
        else None
    )
    if start is not None and end is not None and end < start:
        raise invalid_field(f"{field}.end_time", f"is before {field}.start_time")
    first = validate.integer(f"{field}.start_serial", message.start_serial)
    last = validate.integer(f"{field}.end_serial", message.end_serial)
    if last and last < first:
        raise invalid_field(f"{field}.end_serial", f"is before {field}.start_serial")
    return ReadRange(start, end, first, last)


def batch_size(value: int, field: str = "batch_size") -> int:
    """Rows per response: 0 means ``DEFAULT_BATCH``; at most ``MAX_BATCH``."""
    if value == 0:
        return DEFAULT_BATCH
    return validate.integer(field, value, minimum=1, maximum=MAX_BATCH)
