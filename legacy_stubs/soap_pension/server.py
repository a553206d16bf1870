"""The pension body's SOAP 1.1 endpoint: ``POST /soap`` with GetBenefit and ListPersons."""

from __future__ import annotations

import argparse
import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Final
from xml.sax.saxutils import escape

from aiohttp import web

from legacy_stubs import stubkit
from legacy_stubs.httpkit import HttpStub
from legacy_stubs.stubkit import Faults

from .records import Insured, from_json, generate_insured, to_json

logger = logging.getLogger("legacy_stubs.soap_pension")

SOAP_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
NK_NS: Final = "urn:renkei:stub:nenkin:v1"
GARBAGE: Final = b"\x00\xff<<<not xml at all"
PAGE: Final = 1000


def envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:nk="{NK_NS}">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def fault(string: str) -> web.Response:
    body = (
        "<soap:Fault><faultcode>soap:Client</faultcode>"
        f"<faultstring>{escape(string)}</faultstring></soap:Fault>"
    )
    return web.Response(status=500, body=envelope(body), content_type="text/xml", charset="utf-8")


def ok(body: str) -> web.Response:
    return web.Response(body=envelope(body), content_type="text/xml", charset="utf-8")


def _el(name: str, value: str) -> str:
    return f"<nk:{name}>{escape(value)}</nk:{name}>"


class PensionServer(HttpStub):
    def __init__(
        self, insured: list[Insured], faults: Faults | None = None, *, host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(logger, faults, GARBAGE, host=host, port=port)
        self.insured = {i.number: i for i in insured}
        self._order = sorted(self.insured)
        self.app.router.add_post("/soap", self._soap)

    async def _soap(self, request: web.Request) -> web.Response:
        action = request.headers.get("SOAPAction", "").strip('"')
        try:
            root = ET.fromstring(await request.read())
        except ET.ParseError as exc:
            return fault(f"BadRequest: not XML: {exc}")
        body = root.find(f"{{{SOAP_NS}}}Body")
        if root.tag != f"{{{SOAP_NS}}}Envelope" or body is None or len(body) != 1:
            return fault("BadRequest: not a SOAP 1.1 envelope with one body element")
        operation = body[0]
        if operation.tag == f"{{{NK_NS}}}GetBenefit" and action == "GetBenefit":
            return self._get_benefit(operation)
        if operation.tag == f"{{{NK_NS}}}ListPersons" and action == "ListPersons":
            return self._list_persons(operation)
        return fault(f"BadRequest: unknown operation {operation.tag} (SOAPAction {action!r})")

    def _get_benefit(self, operation: ET.Element) -> web.Response:
        number = operation.findtext(f"{{{NK_NS}}}KisoNenkinBango")
        if not number:
            return fault("BadRequest: KisoNenkinBango is missing")
        insured = self.insured.get(number)
        if insured is None or insured.benefit is None:
            return fault("NotFound")
        b = insured.benefit
        return ok(
            "<nk:GetBenefitResponse><nk:Benefit>"
            + _el("KisoNenkinBango", number)
            + _el("NenkinShubetsu", b.kind)
            + _el("NengakuYen", str(b.yearly_yen))
            + _el("ShikyuKaishiNengetsu", b.start)
            + _el("Teishi", "true" if b.suspended else "false")
            + "</nk:Benefit></nk:GetBenefitResponse>"
        )

    def _list_persons(self, operation: ET.Element) -> web.Response:
        after = operation.findtext(f"{{{NK_NS}}}After") or ""
        limit_text = operation.findtext(f"{{{NK_NS}}}Limit") or str(PAGE)
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= PAGE:
            return fault(f"BadRequest: Limit must be from 1 to {PAGE}")
        numbers = [n for n in self._order if n > after][: int(limit_text)]
        persons = []
        for number in numbers:
            p = self.insured[number].person
            persons.append(
                "<nk:Person>"
                + _el("KisoNenkinBango", number)
                + _el("Shimei", p.name)
                + _el("ShimeiKana", p.kana)
                + _el("SeinenGappi", p.birth_date.isoformat())
                + _el("Seibetsu", "M" if p.sex == "male" else "F")
                + _el("Jusho", p.address)
                + "</nk:Person>"
            )
        return ok("<nk:ListPersonsResponse>" + "".join(persons) + "</nk:ListPersonsResponse>")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m legacy_stubs.soap_pension",
        description="Mocked pension body: SOAP 1.1 over HTTP (POST /soap).",
    )
    stubkit.add_common(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return stubkit.main(
        build_parser().parse_args(argv),
        log_name="legacy-soap-pension",
        logger=logger,
        load=from_json,
        generate=generate_insured,
        dump=to_json,
        make_server=lambda data, faults, args: PensionServer(
            data, faults, host=args.host, port=args.port
        ),
    )
