"""The demo's last steps (issue 15): the people and the oversight body look at the logs.

A person signs in to the portal with their card through its JSON API (the path
the counter takes, ops/counter.py), reads their history verified against the
witnessed checkpoint, applies for one entry's details and reads them once the
agency has answered; the city's counter prints the same history as a PDF; the
oversight body reconciles every share and writes its report. Each step is
printed as a person or an operator would see it.
"""

from __future__ import annotations

import asyncio
import base64
import html
import re
import ssl
import subprocess
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.cells import cell_len
from rich.console import Console

from ops.cards import issue_deployment_cards
from ops.counter import p1363
from ops.deploy import Layout, demo_staff
from ops.deploy_portal import portal_files, web_ca_cert
from ops.processes import python_module
from portal.config import PortalConfig
from portal.history import HistoryPage, HistoryRow, HistoryVerifier
from portal.pages import response_from_json
from registry_binding.cards import IssuedCard
from renkei import card
from renkei.hub.v1 import personal_pb2
from renkei.tlog import checkpoint, note

CITY = "141003"
DETAILS_WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class DemoCard:
    resident_code: str
    name: str
    serial: int
    key_file: Path
    cert_file: Path


def issue_cards(layout: Layout, people: Sequence[tuple[str, str]], notices: Path) -> list[DemoCard]:
    """A card per (resident code, name), written next to the Number notices."""
    names = dict(people)
    issued: list[IssuedCard] = issue_deployment_cards(layout.root, list(names), notices)
    return [
        DemoCard(c.resident_code, names[c.resident_code], c.serial, c.key_file, c.cert_file)
        for c in issued
    ]


def portal_url(layout: Layout) -> str:
    return PortalConfig.load(portal_files(layout.root).config).origin


def portal_verifier(layout: Layout) -> HistoryVerifier:
    """The keys the portal itself checks the hub's proofs with (its [verify])."""
    config = PortalConfig.load(portal_files(layout.root).config)
    return HistoryVerifier(
        note.parse_verifier_key(config.log_key),
        [checkpoint.parse_cosignature_verifier_key(k) for k in config.witness_keys],
        config.quorum,
    )


class PortalVisit:
    """One person's visit to the portal over HTTPS, as a browser's script would make it."""

    def __init__(self, base: str, web_ca: Path) -> None:
        self.base = base.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=str(web_ca))
        self._http: aiohttp.ClientSession | None = None
        self.csrf_token = ""

    async def __aenter__(self) -> PortalVisit:
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30),
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # a portal addressed by IP
            connector=aiohttp.TCPConnector(ssl=self._ssl),
            headers={"Origin": self.base},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "use PortalVisit as an async context manager"
        return self._http

    async def sign_in(self, person: DemoCard) -> None:
        """The challenge signed by the card key (r||s, as WebCrypto gives it)."""
        key = serialization.load_pem_private_key(person.key_file.read_bytes(), password=None)
        async with self.http.post(f"{self.base}/api/signin/challenge", json={}) as r:
            r.raise_for_status()
            challenge_b64 = str((await r.json())["challenge"])
        challenge = base64.b64decode(challenge_b64)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        signature = p1363(key, card.sign_challenge(key, challenge))
        body = {
            "certificate": person.cert_file.read_text(encoding="ascii"),
            "challenge": challenge_b64,
            "signature": base64.b64encode(signature).decode("ascii"),
            "format": "p1363",
        }
        async with self.http.post(f"{self.base}/api/signin", json=body) as r:
            doc = await r.json(content_type=None)
            if r.status != 200:
                raise RuntimeError(f"sign-in refused: {r.status} {doc}")
            self.csrf_token = str(doc["csrf_token"])

    async def history(self) -> list[personal_pb2.ListPersonalEntriesResponse]:
        pages: list[personal_pb2.ListPersonalEntriesResponse] = []
        token = ""
        while True:
            params = {"page": token} if token else {}
            async with self.http.get(f"{self.base}/api/history", params=params) as r:
                r.raise_for_status()
                page = response_from_json(await r.json())
            pages.append(page)
            token = page.next_page_token
            if not token or not page.entries:
                return pages

    async def apply(self, serial: int, agency_id: str) -> int:
        """The entry page's form: apply for ``agency_id``'s details of ``serial``."""
        form = {"csrf_token": self.csrf_token, "agency_id": agency_id}
        url = f"{self.base}/history/{serial}/details"
        async with self.http.post(url, data=form, allow_redirects=False) as r:
            return r.status

    async def entry_page(self, serial: int) -> str:
        async with self.http.get(f"{self.base}/history/{serial}") as r:
            r.raise_for_status()
            return await r.text()


def details_of(page: str) -> dict[str, str]:
    """What the entry page's details section shows: the state, and once answered its fields."""
    found: dict[str, str] = {}
    state = re.search(r"申請の状態: <strong>(.*?)</strong>", page)
    if state:
        found["state"] = html.unescape(state.group(1))
    problem = re.search(r'class="status status-failed" role="alert">(.*?)</p>', page, re.S)
    if problem:
        found["problem"] = html.unescape(re.sub(r"<[^>]+>", "", problem.group(1))).strip()
    block = re.search(r'<dl class="details-fields">(.*?)</dl>', page, re.S)
    if block:
        for dt, dd in re.findall(r"<dt>(.*?)</dt><dd[^>]*>(.*?)</dd>", block.group(1), re.S):
            found[html.unescape(dt)] = html.unescape(dd).strip()
    return found


def row_lines(row: HistoryRow, width: int = 120) -> list[str]:
    """What the history page shows of one exchange: (1) serial, (2) time, (4) requester,
    (5) provider, (6) kind, the outcome and the proof status; then (3) the legal basis."""
    outcome = row.outcome + (f" {row.reason}" if row.reason else "")
    first = (
        f"serial {row.serial}  {row.logged_at_jst}  {row.requester_name or row.requester_id}"
        f" -> {row.provider_name or row.provider_id}  {row.info_kind}  {outcome}"
        f"  [{row.verified_label}]"
    )
    basis = row.legal_basis_item + (f": {row.legal_basis_text}" if row.legal_basis_text else "")
    return [first, "  legal basis " + fit(basis, width - 14)]


def fit(text: str, cells: int) -> str:
    """``text`` cut to ``cells`` terminal cells (a CJK character takes two)."""
    if cell_len(text) <= cells:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > cells - 1:
            break
        out += ch
    return out + "…"


def checkpoint_line(page: HistoryPage) -> str:
    cp = page.checkpoint
    if cp is None:
        return f"NOT verified: {page.checkpoint_error}"
    witnesses = ", ".join(cp.witnesses) or "no witness"
    return f"verified against checkpoint size {cp.size}, witnessed by {witnesses}"


@dataclass
class PortalSteps:
    """The portal steps' outcome, for the demo's exit code and the tests."""

    signed_in: bool = False
    rows: tuple[HistoryRow, ...] = ()
    verified: bool = False
    details: Mapping[str, str] | None = None

    @property
    def serials(self) -> tuple[int, ...]:
        return tuple(r.serial for r in self.rows)

    @property
    def ok_listing(self) -> bool:
        return self.signed_in and self.verified

    @property
    def ok(self) -> bool:
        return self.ok_listing and bool(self.details)


async def visit_portal(
    console: Console, layout: Layout, person: DemoCard, apply_to: str | None
) -> PortalSteps:
    """Sign in, the verified history, and the details of the newest answered exchange that
    ``apply_to`` asked for (its requester keeps both (11) and (12))."""
    c = console
    base = portal_url(layout)
    steps = PortalSteps()
    async with PortalVisit(base, web_ca_cert(layout.root)) as visit:
        await visit.sign_in(person)
        steps.signed_in = True
        c.print(
            f"  {person.name} opens {base}/signin, picks the card's key and certificate files,"
            f" and the card signs the portal's challenge: signed in (card serial {person.serial});"
            " the portal got its own link code for the person (registry -> ID issuer -> hub)"
        )
        page = portal_verifier(layout).verify_many(await visit.history())
        steps.rows = page.rows
        steps.verified = page.verified
        c.print(f"  {base}/history shows {len(page.rows)} exchanges, newest first:")
        for row in page.rows:
            for line in row_lines(row):
                c.print(f"    {line}", markup=False)
        c.print(f"    {checkpoint_line(page)}", markup=False)
        chosen = pick_application(page.rows, apply_to) if apply_to else None
        if chosen is None:
            return steps
        serial, agency_id = chosen
        status = await visit.apply(serial, agency_id)
        c.print(
            f"  {person.name} applies for serial {serial}'s details at {agency_id}"
            f" (POST /history/{serial}/details with the CSRF token: {status}); the hub relays"
            " the application to the agency, logged as an exchange of its own"
        )
        give_up = time.monotonic() + DETAILS_WAIT_SECONDS
        shown = details_of(await visit.entry_page(serial))
        while (
            "(11) 提供された情報" not in shown
            and "problem" not in shown
            and time.monotonic() < give_up
        ):
            await asyncio.sleep(0.5)
            shown = details_of(await visit.entry_page(serial))
        c.print(f"  {base}/history/{serial} shows the application {shown.get('state', '?')}:")
        for key, value in shown.items():
            if key != "state":
                c.print(f"    {key}: {fit(value, 200)}", markup=False)
        if "(11) 提供された情報" in shown:
            steps.details = shown
    return steps


def pick_application(rows: Sequence[HistoryRow], requester: str) -> tuple[int, str] | None:
    """The person's newest answered exchange that ``requester`` asked for: its requester's
    details hold both (11) the content and (12) the purpose."""
    for row in rows:
        if row.requester_id == requester and row.outcome == "OK" and not row.deferred:
            return row.serial, requester
    return None


# -- the counter and the oversight body: their own CLIs, as operators run them ------------


def renkei(*argv: str, timeout: float = 120) -> tuple[int, list[str]]:
    done = subprocess.run(
        python_module("ops.cli", *argv), capture_output=True, text=True, timeout=timeout
    )
    return done.returncode, (done.stdout + done.stderr).strip().splitlines()


def counter_report(
    console: Console, layout: Layout, person: DemoCard, out: Path
) -> tuple[int, list[str]]:
    """The city's counter prints the person's history (the person present, with the card)."""
    grant = demo_staff(CITY)[0]
    argv = (
        *("counter", "report", "--portal", portal_url(layout)),
        *("--card-key", str(person.key_file), "--card-cert", str(person.cert_file)),
        *("--staff", grant.staff_id, "--terminal", grant.terminals[0]),
        *("--comm-config", str(layout.comm_config(CITY)), "--out", str(out)),
        *("--web-ca", str(web_ca_cert(layout.root))),
    )
    code, lines = renkei(*argv)
    console.print(
        f"  $ renkei counter report --portal {portal_url(layout)} --card-key ... --staff"
        f" {grant.staff_id} --terminal {grant.terminals[0]} --comm-config"
        f" agencies/{CITY}/comm.toml --out {out.name} --web-ca pki/web-ca/ca.pem"
        f"   [dim](exit {code})[/dim]"
    )
    for line in lines:
        console.print(f"    {line}", markup=False)
    return code, lines


def allow_every_hour(oversight_config: Path) -> None:
    """The demo's traffic comes at whatever hour the demo runs: working hours of the whole
    day, every day, written with a comment why (a real deployment sets each office's)."""
    data = tomllib.loads(oversight_config.read_text(encoding="utf-8"))
    data["working_hours"] = {"start": "00:00", "end": "24:00", "weekdays": [1, 2, 3, 4, 5, 6, 7]}
    text = tomli_w.dumps(data)
    note_text = (
        "# The demo runs at any hour, so its working hours are the whole day, every day\n"
        "# (the off-hours rule stays on); a real deployment sets its offices' hours here.\n"
    )
    oversight_config.write_text(
        text.replace("[working_hours]\n", note_text + "[working_hours]\n"), encoding="utf-8"
    )


def oversight_runs(console: Console, layout: Layout, out_dir: Path) -> tuple[bool, list[str]]:
    """`renkei oversight reconcile` and `report` on the deployment's traffic."""
    config = str(layout.oversight_config)
    out_dir.mkdir(parents=True, exist_ok=True)
    findings = out_dir / "reconcile.json"
    report = out_dir / "report.html"
    code_r, lines_r = renkei("oversight", "reconcile", "--config", config, "--json", str(findings))
    console.print(
        f"  $ renkei oversight reconcile --config oversight/oversight.toml --json {findings.name}"
        f"   [dim](exit {code_r})[/dim]"
    )
    for line in lines_r[:12]:
        console.print(f"    {line}", markup=False)
    code_p, lines_p = renkei("oversight", "report", "--config", config, "--out", str(report))
    console.print(
        f"  $ renkei oversight report --config oversight/oversight.toml --out {report.name}"
        f"   [dim](exit {code_p})[/dim]"
    )
    for line in lines_p[:12]:
        console.print(f"    {line}", markup=False)
    clean = code_r == 0 and code_p == 0 and any("0 findings, 0 anomalies" in x for x in lines_p)
    return clean, lines_r + lines_p
