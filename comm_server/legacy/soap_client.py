"""Client for the pension body: SOAP 1.1 over HTTP (docs/legacy-formats.md section 2).

``lookup`` answers the ``<nk:Benefit>`` element and ``list_persons`` the
``<nk:Person>`` elements, each serialized standalone: ``nk:`` prefixes, an
``xmlns:nk`` declaration on the element itself, UTF-8, no XML declaration,
text as received (``&``, ``<``, ``>`` escaped). No query keys are understood.
The client checks the envelope (well-formed XML within the limits of
``comm_server.mapping.documents``, so no DTD in any encoding, ``soap:Envelope``/
``soap:Body``, the expected response element or a ``soap:Fault``); the fields
are the mapper's.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from typing import Final
from xml.sax.saxutils import escape

from comm_server.mapping.documents import DocumentError, parse_xml
from renkei.logs import event

from . import common
from .common import PENSION_INFO
from .http_common import HttpTransport

logger = logging.getLogger("comm_server.legacy.soap")

SOAP_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
NK_NS: Final = "urn:renkei:stub:nenkin:v1"
KINDS: Final = (PENSION_INFO,)


def envelope(body: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:nk="{NK_NS}">'
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def standalone(element: ET.Element, raw: bytes, *, top: bool = True) -> str:
    """``element`` (all in the nk namespace) as XML text declaring its own namespace."""
    namespace, _, local = element.tag[1:].partition("}")
    if not element.tag.startswith("{") or namespace != NK_NS or element.attrib:
        raise common.garbage(raw, f"unexpected element {element.tag[:60]}")
    declaration = f' xmlns:nk="{NK_NS}"' if top else ""
    inner = escape(element.text or "") + "".join(
        standalone(child, raw, top=False) + escape(child.tail or "") for child in element
    )
    return f"<nk:{local}{declaration}>{inner}</nk:{local}>"


def _text_field(value: str, field: str) -> str:
    if not value or not value.isprintable():
        raise common.query_invalid(
            f"{field} must be a non-empty string of printable characters", field=field
        )
    return escape(value)


class SoapPensionClient:
    """Talks to the SOAP endpoint at ``url`` (e.g. ``http://127.0.0.1:8080/soap``)."""

    def __init__(self, url: str, *, max_connections: int = 8) -> None:
        self.url = url
        self._http = HttpTransport(logger, max_connections)

    def __repr__(self) -> str:
        return f"SoapPensionClient({self.url!r})"

    async def _call(self, action: str, body: str, timeout: float) -> tuple[int, bytes]:
        return await self._http.request(
            "POST",
            self.url,
            timeout=timeout,
            data=envelope(body),
            headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'},
        )

    async def lookup(
        self, local_person_id: str, info_kind: str, query: bytes, *, timeout: float
    ) -> bytes:
        if info_kind not in KINDS:
            raise common.unknown_kind(info_kind, KINDS)
        common.parse_query(query, (), info_kind)
        number = _text_field(local_person_id, "local_person_id")
        status, raw = await self._call(
            "GetBenefit",
            f"<nk:GetBenefit><nk:KisoNenkinBango>{number}</nk:KisoNenkinBango></nk:GetBenefit>",
            timeout,
        )
        return common.read_answer(_benefit, raw, status)

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        common.check_limit(limit)
        after_xml = "" if after is None else _text_field(after, "after")
        status, raw = await self._call(
            "ListPersons",
            f"<nk:ListPersons><nk:After>{after_xml}</nk:After>"
            f"<nk:Limit>{limit}</nk:Limit></nk:ListPersons>",
            timeout,
        )
        return common.read_answer(_persons, raw, status, limit)

    async def aclose(self) -> None:
        await self._http.aclose()


def _answer(raw: bytes, status: int, action: str) -> ET.Element:
    """The response element in the SOAP body; raises for faults and garbage."""
    try:
        root = parse_xml(raw)
    except DocumentError as err:
        raise common.garbage(raw, f"HTTP {status}, {err}") from None
    soap_body = root.find(f"{{{SOAP_NS}}}Body")
    if root.tag != f"{{{SOAP_NS}}}Envelope" or soap_body is None or len(soap_body) != 1:
        raise common.garbage(raw, f"HTTP {status}, not a SOAP envelope with one body element")
    answer = soap_body[0]
    if answer.tag == f"{{{SOAP_NS}}}Fault":
        faultstring = answer.findtext("faultstring") or ""
        if faultstring == "NotFound":
            raise common.not_found()
        event(
            logger,
            "legacy system refused a request",
            faultcode=answer.findtext("faultcode") or "",
            faultstring=faultstring[:200],
            level=logging.WARNING,
        )
        raise common.refused()
    if status != 200 or answer.tag != f"{{{NK_NS}}}{action}Response":
        raise common.garbage(raw, f"HTTP {status}, unexpected {answer.tag[:60]}")
    return answer


def _benefit(raw: bytes, status: int) -> bytes:
    answer = _answer(raw, status, "GetBenefit")
    benefits = answer.findall(f"{{{NK_NS}}}Benefit")
    if len(answer) != 1 or len(benefits) != 1:
        raise common.garbage(ET.tostring(answer), "GetBenefitResponse without one Benefit")
    return standalone(benefits[0], raw).encode("utf-8")


def _persons(raw: bytes, status: int, limit: int) -> list[bytes]:
    answer = _answer(raw, status, "ListPersons")
    if any(child.tag != f"{{{NK_NS}}}Person" for child in answer) or len(answer) > limit:
        raise common.garbage(raw, "ListPersonsResponse holds more than Person elements")
    return [standalone(person, raw).encode("utf-8") for person in answer]
