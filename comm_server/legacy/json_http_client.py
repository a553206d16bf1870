"""Client for the modern system: JSON over HTTP (docs/legacy-formats.md section 4).

``lookup`` answers the ``record`` object and ``list_persons`` each person
object, as canonical JSON (sorted keys, no spaces, UTF-8), like the JSON-lines
client. Query key: ``fiscal_year=YYYY`` (``?fiscalYear=``) for 地方税関係情報;
none for 住民票関係情報. The client checks that the answer is JSON of the
documented shape at the top level; the record's fields are the mapper's.
"""

from __future__ import annotations

import logging
from typing import Any, Final
from urllib.parse import quote

from comm_server.mapping.documents import DocumentError, parse_json
from renkei.logs import event

from . import common
from .common import RESIDENT_INFO, TAX_INFO
from .http_common import HttpTransport
from .jsonl_client import canonical_json

logger = logging.getLogger("comm_server.legacy.json_http")

KINDS: Final = {RESIDENT_INFO: "resident-record", TAX_INFO: "local-tax"}
QUERY_KEYS: Final = {TAX_INFO: ("fiscal_year",), RESIDENT_INFO: ()}


class JsonHttpClient:
    """Talks to the API at ``base_url`` (e.g. ``http://127.0.0.1:8081``)."""

    def __init__(self, base_url: str, *, max_connections: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = HttpTransport(logger, max_connections)

    def __repr__(self) -> str:
        return f"JsonHttpClient({self.base_url!r})"

    async def _get(self, path: str, params: dict[str, str], timeout: float) -> tuple[int, bytes]:
        return await self._http.request("GET", self.base_url + path, params=params, timeout=timeout)

    async def lookup(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        kind = KINDS.get(info_kind)
        if kind is None:
            raise common.unknown_kind(info_kind, KINDS)
        params = common.parse_query(query, QUERY_KEYS[info_kind], info_kind)
        if not local_person_id:
            raise common.query_invalid("local_person_id is empty", field="local_person_id")
        http_params = {"fiscalYear": params["fiscal_year"]} if "fiscal_year" in params else {}
        path = f"/v1/persons/{quote(local_person_id, safe='')}/records/{kind}"
        status, raw = await self._get(path, http_params, timeout)
        return common.read_answer(_record, raw, status, kind)

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        common.check_limit(limit)
        params = {"limit": str(limit)}
        if after is not None:
            params["after"] = after
        status, raw = await self._get("/v1/persons", params, timeout)
        return common.read_answer(_persons, raw, status, limit)

    async def aclose(self) -> None:
        await self._http.aclose()


def _body(raw: bytes, status: int) -> dict[str, Any]:
    """The answer object of a 200; raises for refusals and garbage."""
    try:
        body = parse_json(raw)
    except DocumentError as err:
        raise common.garbage(raw, f"HTTP {status}, {err}") from None
    if not isinstance(body, dict):
        raise common.garbage(raw, f"HTTP {status}, not a JSON object")
    if status == 200:
        return body
    if status == 404 and body.get("error") == "not_found":
        raise common.not_found()
    event(
        logger,
        "legacy system refused a request",
        status=status,
        error=str(body.get("error"))[:100],
        legacy_message=str(body.get("message"))[:200],
        level=logging.WARNING,
    )
    raise common.refused()


def _record(raw: bytes, status: int, kind: str) -> bytes:
    body = _body(raw, status)
    record = body.get("record")
    if not isinstance(record, dict) or body.get("kind") != kind:
        raise common.garbage(raw, "no record object of the asked kind")
    return canonical_json(record)


def _persons(raw: bytes, status: int, limit: int) -> list[bytes]:
    body = _body(raw, status)
    persons = body.get("persons")
    if (
        not isinstance(persons, list)
        or len(persons) > limit
        or not all(isinstance(p, dict) and isinstance(p.get("personId"), str) for p in persons)
    ):
        raise common.garbage(raw, "persons is not a list of person objects")
    return [canonical_json(p) for p in persons]
