"""The JSON-lines protocol spoken by the mocked legacy records system.

Framing
-------
* TCP, UTF-8 text, one JSON object per line, each line terminated by ``"\\n"``.
* A line, including its ``"\\n"``, is at most ``MAX_LINE`` (64 KiB) bytes. A peer
  that receives a longer line answers (if it is the server) with an ``error``
  and closes the connection: the framing cannot be trusted after that.
* Blank lines are ignored.
* A client may send several requests on one connection, one at a time: it
  sends a request and reads its response before it sends the next one.
  Every response echoes the ``id`` of its request.

Requests
--------
``lookup`` — fetch one record::

    {"op": "lookup", "id": "<request id>", "local_person_id": "<str>",
     "info_kind": "<str>", "query": "<str, may be empty>"}

``id``, ``local_person_id`` and ``info_kind`` are non-empty strings; ``query``
is a string (an absent ``query`` means ``""``). Responses::

    {"id": ..., "status": "ok", "record": {...any JSON object...}}
    {"id": ..., "status": "not_found", "message": "..."}
    {"id": ..., "status": "error", "message": "..."}

``not_found`` means the person is unknown, or has no record of that
``info_kind``. ``error`` answers a malformed request: not JSON, not an object,
an unknown ``op``, a missing or ill-typed field. Its ``id`` is the request's
``id`` when that could be read as a string, else ``null``.

Control requests (for tests and demos, to inject faults at run time)::

    {"op": "ping", "id": ...}                                  -> {"id": ..., "status": "ok"}
    {"op": "set_faults", "id": ..., "delay_ms": int, "drop": bool, "garbage": bool}
                                                               -> {"id": ..., "status": "ok"}

In ``set_faults`` each of ``delay_ms`` (an integer >= 0), ``drop`` and
``garbage`` may be left out, which keeps its current value. The faults apply
to ``lookup`` only, server-wide (every connection), from the next lookup on:

* ``delay_ms``: sleep that long before answering;
* ``drop``: close the connection without answering (after the delay);
* ``garbage``: answer with bytes that are not JSON (``GARBAGE``), after the delay.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MAX_LINE: Final = 64 * 1024
"""Longest line, its terminating newline included, in bytes."""

MAX_DELAY_MS: Final = 10 * 60 * 1000
"""Longest delay ``set_faults`` accepts (ten minutes)."""

GARBAGE: Final = b"\x93\xff garbage\n"
"""What a lookup gets back while the ``garbage`` fault is on."""

STATUS_OK: Final = "ok"
STATUS_NOT_FOUND: Final = "not_found"
STATUS_ERROR: Final = "error"


class ProtocolError(Exception):
    """A line that is not a well-formed request.

    ``request_id`` is the request's ``id`` when it could be read, so the
    ``error`` response can still be matched by the client.
    """

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


@dataclass(frozen=True, slots=True)
class LookupRequest:
    id: str
    local_person_id: str
    info_kind: str
    query: str = ""


@dataclass(frozen=True, slots=True)
class SetFaultsRequest:
    """``None`` fields leave the current fault setting unchanged."""

    id: str
    delay_ms: int | None = None
    drop: bool | None = None
    garbage: bool | None = None


@dataclass(frozen=True, slots=True)
class PingRequest:
    id: str


Request = LookupRequest | SetFaultsRequest | PingRequest


def encode(message: Mapping[str, Any]) -> bytes:
    """One protocol line: compact UTF-8 JSON and ``"\\n"``.

    JSON never leaves a raw newline inside a string, so the output is exactly
    one line.
    """
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


def request_line(request: Request) -> bytes:
    """The line a client sends for ``request``."""
    body: dict[str, Any]
    if isinstance(request, LookupRequest):
        body = {
            "op": "lookup",
            "id": request.id,
            "local_person_id": request.local_person_id,
            "info_kind": request.info_kind,
            "query": request.query,
        }
    elif isinstance(request, SetFaultsRequest):
        body = {"op": "set_faults", "id": request.id}
        if request.delay_ms is not None:
            body["delay_ms"] = request.delay_ms
        if request.drop is not None:
            body["drop"] = request.drop
        if request.garbage is not None:
            body["garbage"] = request.garbage
    else:
        body = {"op": "ping", "id": request.id}
    return encode(body)


def ok_response(request_id: str, record: Mapping[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"id": request_id, "status": STATUS_OK}
    if record is not None:
        body["record"] = record
    return encode(body)


def not_found_response(request_id: str, message: str) -> bytes:
    return encode({"id": request_id, "status": STATUS_NOT_FOUND, "message": message})


def error_response(request_id: str | None, message: str) -> bytes:
    return encode({"id": request_id, "status": STATUS_ERROR, "message": message})


def _string(body: Mapping[str, Any], field: str, request_id: str | None) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"{field}: must be a non-empty string", request_id)
    return value


def _optional_bool(body: Mapping[str, Any], field: str, request_id: str) -> bool | None:
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, bool):
        raise ProtocolError(f"{field}: must be true or false", request_id)
    return value


def parse_request(line: bytes) -> Request:
    """The request in ``line`` (its trailing newline optional).

    Raises ``ProtocolError`` for anything that is not a well-formed request.
    """
    if len(line) > MAX_LINE:
        raise ProtocolError(f"line longer than {MAX_LINE} bytes")
    try:
        body = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolError("line is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(f"line is not JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise ProtocolError("request must be a JSON object")
    request_id = _string(body, "id", None)
    op = body.get("op")
    if op == "lookup":
        query = body.get("query", "")
        if not isinstance(query, str):
            raise ProtocolError("query: must be a string", request_id)
        return LookupRequest(
            id=request_id,
            local_person_id=_string(body, "local_person_id", request_id),
            info_kind=_string(body, "info_kind", request_id),
            query=query,
        )
    if op == "set_faults":
        delay_ms = body.get("delay_ms")
        if delay_ms is not None and (
            not isinstance(delay_ms, int)
            or isinstance(delay_ms, bool)
            or not 0 <= delay_ms <= MAX_DELAY_MS
        ):
            raise ProtocolError(
                f"delay_ms: must be an integer from 0 to {MAX_DELAY_MS}", request_id
            )
        return SetFaultsRequest(
            id=request_id,
            delay_ms=delay_ms,
            drop=_optional_bool(body, "drop", request_id),
            garbage=_optional_bool(body, "garbage", request_id),
        )
    if op == "ping":
        return PingRequest(id=request_id)
    shown = repr(op) if len(repr(op)) <= 40 else repr(op)[:40] + "..."
    raise ProtocolError(f"op: unknown operation {shown}", request_id)
