"""The modern municipality's REST API: records by person and kind, and the person list."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any, Final

from aiohttp import web

from legacy_stubs import stubkit
from legacy_stubs.httpkit import HttpStub
from legacy_stubs.stubkit import Faults

from .records import Citizen, from_json, generate_citizens, to_json

logger = logging.getLogger("legacy_stubs.json_http")

GARBAGE: Final = b"<html>\x00\xff{{not json"
PAGE: Final = 1000
KINDS: Final = ("resident-record", "local-tax")


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


def _json(body: Any) -> web.Response:
    return web.json_response(body, dumps=stubkit.dumps_compact)


class ModernServer(HttpStub):
    def __init__(
        self, citizens: list[Citizen], faults: Faults | None = None, *, host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(logger, faults, GARBAGE, host=host, port=port)
        self.citizens = {c.person_id: c for c in citizens}
        self._order = sorted(self.citizens)
        self.app.router.add_get("/v1/persons", self._list)
        self.app.router.add_get("/v1/persons/{id}/records/{kind}", self._record)

    async def _record(self, request: web.Request) -> web.Response:
        person_id, kind = request.match_info["id"], request.match_info["kind"]
        if kind not in KINDS:
            return _error(400, "bad_request", f"kind must be one of {', '.join(KINDS)}")
        unknown = set(request.query) - {"fiscalYear"}
        if unknown:
            return _error(400, "bad_request", f"unknown parameter {sorted(unknown)[0]!r}")
        year_text = request.query.get("fiscalYear")
        if year_text is not None and not (len(year_text) == 4 and year_text.isdigit()):
            return _error(400, "bad_request", "fiscalYear must be 4 digits")
        citizen = self.citizens.get(person_id)
        if citizen is None:
            return _error(404, "not_found", "no person with this id")
        if kind == "resident-record":  # fiscalYear does not apply: ignored
            record = citizen.resident_record()
        else:
            if not citizen.taxes:
                return _error(404, "not_found", "no local tax record")
            year = max(citizen.taxes) if year_text is None else int(year_text)
            if year not in citizen.taxes:
                return _error(404, "not_found", f"no local tax record for {year}")
            record = citizen.taxes[year]
        return _json({"personId": person_id, "kind": kind, "record": record})

    async def _list(self, request: web.Request) -> web.Response:
        after = request.query.get("after", "")
        limit_text = request.query.get("limit", str(PAGE))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= PAGE:
            return _error(400, "bad_request", f"limit must be from 1 to {PAGE}")
        rest = [i for i in self._order if i > after]
        page = rest[: int(limit_text)]
        nxt = page[-1] if len(rest) > len(page) else None
        return _json({"persons": [self.citizens[i].person_entry() for i in page], "next": nxt})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m legacy_stubs.json_http",
        description="Mocked modern municipal system: JSON over HTTP.",
    )
    stubkit.add_common(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return stubkit.main(
        build_parser().parse_args(argv),
        log_name="legacy-json-http",
        logger=logger,
        load=from_json,
        generate=generate_citizens,
        dump=to_json,
        make_server=lambda data, faults, args: ModernServer(
            data, faults, host=args.host, port=args.port
        ),
    )
