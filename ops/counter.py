"""The counter (窓口, R26): a municipal operator prints a person's history with their card.

``counter_report`` signs in to the portal's JSON API with the person's card
(the card key signs the portal's challenge; the person is present), reads
every page of ``GET /api/history``, verifies it itself against the hub key and
witnesses of the municipality's comm config ``[log]`` (not trusting the
portal's word), writes the PDF (portal.report_pdf) and logs the request in the
municipality's store (comm_server.counter_log) with the staff member and the
terminal, who must be in its staff register. docs/portal.md.

The portal's sign-in API it speaks:

    POST /api/signin/challenge {}         -> {"challenge": base64}
    POST /api/signin {"certificate": PEM, "challenge": base64,
                      "signature": base64 r||s, "format": "p1363"}
                                          -> a session cookie, {"csrf_token": ...}

The card signs DER (renkei.card.sign_challenge); the portal's API reads the
signature as a browser's WebCrypto gives it, r||s (IEEE P1363), so it is sent so.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from comm_server import counter_log, staff_register
from comm_server.config import CommConfig
from portal.history import HistoryPage, HistoryVerifier
from portal.pages import DEFAULT_FONT, HUB_PAGE_SIZE, MAX_DOWNLOAD, response_from_json
from portal.report_pdf import render_history_pdf
from renkei import card, db
from renkei.config_util import ConfigError
from renkei.errors import (
    FailedPrecondition,
    PermissionDenied,
    RenkeiError,
    Unauthenticated,
    Unavailable,
)
from renkei.hub.v1 import personal_pb2
from renkei.tlog import checkpoint, note

# (card key, challenge) -> signature: renkei.card.sign_challenge unless a test gives another.
Signer = Callable[[PrivateKeyTypes, bytes], bytes]
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class CounterReportRequest:
    portal: str  # the portal's base URL, e.g. https://portal.renkei.example:8443
    card_key: Path
    card_cert: Path
    staff_id: str
    terminal_id: str
    comm_config: Path
    out: Path
    web_ca: Path | None = None  # the CA of the portal's server certificate
    start: date | None = None
    end: date | None = None  # inclusive


@dataclass(frozen=True)
class CounterReport:
    out: Path
    page: HistoryPage
    card_serial: str
    outcome: str


def verifier_of(config: CommConfig) -> HistoryVerifier:
    """The municipality's own trust in the hub's log: its comm config's [log]."""
    if config.log is None:
        raise ConfigError(
            f"{config.agency_id}: the comm config has no [log] (hub_key, witness_keys)"
        )
    witnesses = [checkpoint.parse_cosignature_verifier_key(w) for w in config.log.witness_keys]
    return HistoryVerifier(
        note.parse_verifier_key(config.log.hub_key),
        witnesses,
        quorum=1 if config.log.require_witness else 0,
        origin=config.log.origin,
    )


def _card_signer() -> Signer:
    def sign(key: PrivateKeyTypes, challenge: bytes) -> bytes:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the card key is not an EC key")
        return card.sign_challenge(key, challenge)

    return sign


def p1363(key: PrivateKeyTypes, der: bytes) -> bytes:
    """A DER ECDSA signature as r||s, each as long as the curve's order: what the portal's
    API reads (WebCrypto's form, a browser's sign-in)."""
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the card key is not an EC key")
    size = (key.curve.key_size + 7) // 8
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _ssl(web_ca: Path | None) -> ssl.SSLContext | None:
    return None if web_ca is None else ssl.create_default_context(cafile=str(web_ca))


async def _error_of(response: aiohttp.ClientResponse) -> str:
    """The portal's reason, from its JSON error body ``{"error": REASON, ...}``, or ""."""
    try:
        doc = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return ""
    return str(doc.get("error", "")) if isinstance(doc, dict) else ""


async def _json(response: aiohttp.ClientResponse, what: str) -> dict[str, Any]:
    if response.status in (401, 403):
        raise Unauthenticated(
            "COUNTER_SIGNIN_REFUSED",
            f"the portal refused {what}: {response.status} {await _error_of(response)}".rstrip(),
        )
    if response.status != 200:
        raise Unavailable(
            "PORTAL_UNAVAILABLE", f"the portal answered {what} with {response.status}"
        )
    try:
        doc = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        doc = None
    if not isinstance(doc, dict):
        raise FailedPrecondition("PORTAL_ANSWER_MALFORMED", f"{what}: not a JSON object")
    return doc


async def fetch_history(
    request: CounterReportRequest, key: PrivateKeyTypes, cert_pem: bytes, sign: Signer
) -> list[personal_pb2.ListPersonalEntriesResponse]:
    """Sign in with the card, then every page of /api/history for the request's period."""
    base = request.portal.rstrip("/")
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    # unsafe: keep the session cookie of a portal addressed by IP (a demo, a test).
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(ssl=_ssl(request.web_ca) or True)
    async with aiohttp.ClientSession(timeout=timeout, cookie_jar=jar, connector=connector) as http:
        try:
            # The sign-in API takes application/json only, the challenge's call too.
            async with http.post(f"{base}/api/signin/challenge", json={}) as r:
                challenge_b64 = str((await _json(r, "the challenge")).get("challenge", ""))
            try:
                challenge = base64.b64decode(challenge_b64, validate=True)
            except ValueError:
                raise FailedPrecondition(
                    "PORTAL_ANSWER_MALFORMED", "the challenge is not base64"
                ) from None
            signed = {
                "certificate": cert_pem.decode("ascii"),
                "challenge": challenge_b64,
                "signature": base64.b64encode(p1363(key, sign(key, challenge))).decode("ascii"),
                "format": "p1363",
            }
            async with http.post(f"{base}/api/signin", json=signed) as r:
                await _json(r, "the sign-in")
            pages: list[personal_pb2.ListPersonalEntriesResponse] = []
            token, seen = "", 0
            while seen < MAX_DOWNLOAD:
                params = {"page_size": str(min(HUB_PAGE_SIZE, MAX_DOWNLOAD - seen))}
                if token:
                    params["page"] = token
                if request.start:
                    params["from"] = request.start.isoformat()
                if request.end:
                    params["to"] = request.end.isoformat()
                async with http.get(f"{base}/api/history", params=params) as r:
                    doc = await _json(r, "the history")
                try:
                    page = response_from_json(doc)
                except (KeyError, TypeError, ValueError) as err:
                    raise FailedPrecondition(
                        "PORTAL_ANSWER_MALFORMED", f"the history: {type(err).__name__}: {err}"
                    ) from None
                pages.append(page)
                seen += len(page.entries)
                token = page.next_page_token
                if not token or not page.entries:
                    break
            return pages
        except (aiohttp.ClientError, TimeoutError) as err:
            raise Unavailable("PORTAL_UNAVAILABLE", f"the portal at {base}: {err}") from None


def counter_report(
    request: CounterReportRequest,
    *,
    sign: Signer | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    font_path: Path = DEFAULT_FONT,
) -> CounterReport:
    """Prints the report and logs the request; a RenkeiError (logged too) when refused."""
    config = CommConfig.load(request.comm_config)
    verifier = verifier_of(config)
    cert_pem = request.card_cert.read_bytes()
    card_serial = str(x509.load_pem_x509_certificate(cert_pem).serial_number)
    key = serialization.load_pem_private_key(request.card_key.read_bytes(), password=None)
    engine = db.create_engine(config.database_url, schema=config.database_schema)
    try:
        log = counter_log.CounterLog(engine)
        started = now()

        def record(outcome: str, shown: int, size: int | None, reason: str = "") -> None:
            log.record(
                counter_log.CounterRequest(
                    requested_at=started,
                    staff_id=request.staff_id,
                    terminal_id=request.terminal_id,
                    card_serial=card_serial,
                    entries_shown=shown,
                    checkpoint_size=size,
                    outcome=outcome,
                    reason=reason,
                )
            )

        try:
            if config.staff_register is None:
                raise PermissionDenied(
                    "STAFF_NOT_REGISTERED", f"{config.agency_id} has no staff register configured"
                )
            register = staff_register.load(config.staff_register)
            counter_log.check_staff(register, request.staff_id, request.terminal_id, started.date())
        except (PermissionDenied, staff_register.RegisterError) as err:
            record(counter_log.REFUSED, 0, None, getattr(err, "reason", str(err)))
            raise
        try:
            pages = asyncio.run(fetch_history(request, key, cert_pem, sign or _card_signer()))
        except RenkeiError as err:
            record(counter_log.FAILED, 0, None, err.reason)
            raise
        page = verifier.verify_many(pages)
        outcome = counter_log.PRINTED if page.verified else counter_log.PRINTED_UNVERIFIED
        period = _period(request.start, request.end)
        pdf = render_history_pdf(
            page,
            title="情報提供等記録（やりとり履歴）",
            subject_line=f"利用者証明用電子証明書 シリアル番号 {card_serial}　対象: {period}",
            generated_at=started,
            footer=f"{config.agency_id} 窓口　端末 {request.terminal_id}　担当 {request.staff_id}",
            font_path=font_path,
        )
        request.out.parent.mkdir(parents=True, exist_ok=True)
        request.out.write_bytes(pdf)
        size = page.checkpoint.size if page.checkpoint else None
        record(outcome, len(page.rows), size, page.checkpoint_error)
        return CounterReport(request.out, page, card_serial, outcome)
    finally:
        engine.dispose()


def _period(start: date | None, end: date | None) -> str:
    if start is None and end is None:
        return "すべての記録"
    return f"{start.isoformat() if start else ''}〜{end.isoformat() if end else ''}"
