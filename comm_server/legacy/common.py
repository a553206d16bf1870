"""What the legacy clients share: query parsing, info kinds, and the errors they raise."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from typing import Concatenate, Final, ParamSpec, TypeVar

from comm_server.mapping.documents import DocumentError
from renkei.errors import DeadlineExceeded, InvalidArgument, NotFound, RenkeiError, Unavailable

P = ParamSpec("P")
T = TypeVar("T")

TAX_INFO: Final = "地方税関係情報"
RESIDENT_INFO: Final = "住民票関係情報"
PENSION_INFO: Final = "年金給付関係情報"
MEDICAL_INFO: Final = "医療保険給付関係情報"

GARBAGE_PREVIEW: Final = 40
"""Raw bytes of an unreadable answer quoted in the error."""

MAX_PAGE: Final = 1000
"""The most persons one ``list_persons`` call returns (every format's page)."""

_CHECKS: Final[Mapping[str, re.Pattern[str]]] = {
    "fiscal_year": re.compile(r"[0-9]{4}"),
    "treatment_month": re.compile(r"[0-9]{4}(0[1-9]|1[0-2])"),
}
_FORMS: Final[Mapping[str, str]] = {
    "fiscal_year": "4 digits, e.g. 2026",
    "treatment_month": "YYYYMM, e.g. 202604",
}


def query_invalid(message: str, **metadata: str) -> InvalidArgument:
    return InvalidArgument("LEGACY_QUERY_INVALID", message, {"field": "query", **metadata})


def parse_query(query: bytes, allowed: Collection[str], info_kind: str) -> dict[str, str]:
    """``key=value&...`` (UTF-8) as a dict; refuses unknown, repeated and ill-formed keys.

    ``allowed`` are the keys this legacy system takes for ``info_kind``.
    """
    try:
        text = query.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise query_invalid(f"query is not valid UTF-8 (byte {exc.start})") from None
    params: dict[str, str] = {}
    if not text:
        return params
    for part in text.split("&"):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise query_invalid(f"query part {part[:40]!r} is not key=value")
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise query_invalid(
                f"query key {key[:40]!r} is not understood for {info_kind} by this legacy "
                f"system (keys: {known})",
                key=key[:40],
            )
        if key in params:
            raise query_invalid(f"query key {key!r} given twice", key=key)
        check = _CHECKS.get(key)
        if check is not None and not check.fullmatch(value):
            raise query_invalid(f"query key {key!r}: {value[:40]!r} is not {_FORMS[key]}", key=key)
        params[key] = value
    return params


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidArgument(
            "LEGACY_QUERY_INVALID",
            f"limit must be from 1 to {MAX_PAGE}, not {limit}",
            {"field": "limit"},
        )


def unknown_kind(info_kind: str, kinds: Collection[str]) -> NotFound:
    shown = ", ".join(sorted(kinds))
    return NotFound(
        "RECORD_NOT_FOUND",
        f"this legacy system keeps no {info_kind[:40]} (it keeps: {shown})",
        {"info_kind": info_kind[:40]},
    )


def not_found() -> NotFound:
    # The legacy system's own message may name the person: it stays out of the error.
    return NotFound("RECORD_NOT_FOUND", "the legacy system has no such record")


def garbage(raw: bytes, problem: str) -> Unavailable:
    return Unavailable(
        "LEGACY_GARBAGE",
        f"legacy system sent an unreadable answer ({problem}): {raw[:GARBAGE_PREVIEW]!r}",
    )


def read_answer(
    read: Callable[Concatenate[bytes, P], T], raw: bytes, *args: P.args, **kwargs: P.kwargs
) -> T:
    """``read(raw, ...)``: the one boundary every client parses a legacy answer behind.

    The legacy system is outside renkei, so whatever its answer makes parsing raise
    (a limit of ``comm_server.mapping.documents``, or a ``ValueError``,
    ``RecursionError``, ``LookupError`` ... from a parser) is that answer's fault:
    LEGACY_GARBAGE naming the problem, which the provider logs and answers like
    any legacy error, never a crash. renkei's own errors pass unchanged.
    """
    try:
        return read(raw, *args, **kwargs)
    except RenkeiError:
        raise
    except DocumentError as exc:
        raise garbage(raw, str(exc)) from None
    except Exception as exc:
        # backslashreplace: a message quoting a lone surrogate must still go out as UTF-8.
        text = str(exc)[:200].encode("utf-8", "backslashreplace").decode("utf-8")
        raise garbage(raw, f"{type(exc).__name__}: {text}") from None


def timed_out(timeout: float, **metadata: str) -> DeadlineExceeded:
    return DeadlineExceeded(
        "LEGACY_TIMEOUT", f"the legacy system did not answer within {timeout:g}s", metadata
    )


def unavailable(message: str) -> Unavailable:
    return Unavailable("LEGACY_UNAVAILABLE", message)


def refused() -> Unavailable:
    return Unavailable("LEGACY_ERROR", "the legacy system answered the request with an error")


def closed() -> Unavailable:
    return Unavailable("LEGACY_UNAVAILABLE", "the legacy client is closed")


def describe(exc: OSError) -> str:
    """What went wrong, without addresses (those go to the log only)."""
    return os.strerror(exc.errno) if exc.errno else type(exc).__name__
