"""`make demo`: the whole system on loopback, and a readable trace of what each party saw.

Starts the four kinds of legacy system (docs/legacy-formats.md) behind the
communication servers of 横浜市長 (fixed-width cp932 over TCP), 日本年金機構
(SOAP), 全国健康保険協会 (CSV drop folder) and 渋谷区長 (JSON over HTTP), plus
the minister's JSON-lines system, and the hub, each as its own process with
its own store, all over mutual TLS. Seeds three residents; each agency binds
its person file, read through its mapper, by the four facts. Runs lawful
queries through each system (answers decoded into the standard layout and
re-encoded in the requester's own format), refused ones (unlawful, staff not
registered, no record, a slow system) and the insurer's answer-later path;
prints the trace and every party's log; shows the hub's log as a verifiable
log (the witnessed checkpoint, the city verifying its whole share with
proofs, an entry edited in the hub's database and caught); then a person
signs in to the portal with their card, reads their verified history and an
entry's details, the city's counter prints it as a PDF, and the oversight
body reconciles every share and reports (ops/demo_views.py); audits the
configurations and the stores, stops every process and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from comm_server.binding.bulk_bind import BindReport, bind_agency
from comm_server.config import CommConfig
from comm_server.staff_register import Grant
from comm_server.standard import render as render_record
from comm_server.store import CommStore
from hub_server import log_tree
from hub_server.config import HubConfig
from hub_server.log_store import SqlHubLog
from legacy_stubs.control import set_faults
from legacy_stubs.jsonl_records.store import write_records
from ops import demo_views
from ops.audit import audit_configs, audit_deployment, breaches, render, render_configs
from ops.demo_data import DemoQuery, legacy_record, legacy_records, queries, residents
from ops.deploy import (
    Endpoints,
    Layout,
    Settings,
    init_deployment,
    pick_endpoints,
    registered,
)
from ops.deploy_portal import portal_files
from ops.identities import issue_numbers, seed_registry
from ops.processes import ProcessGroup, Started, python_module
from renkei import db
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.errors import from_rpc_error
from renkei.grpcutil.client import peer_options
from renkei.tlog.entry import Entry

# The city, the pension body, the insurer, a modern ward and the minister (JSON lines).
AGENCIES = registered("141003", "nenkin", "kyoukai-kenpo", "131130", "mhlw")
NAMES = {a.agency_id: a.display_name for a in AGENCIES}
# Which legacy stub stands behind which agency, and its mapper (None: JSON lines, no mapper).
SYSTEMS: dict[str, tuple[str, str | None]] = {
    "141003": ("fixed_tax", "fixed_tax"),
    "nenkin": ("soap_pension", "soap_pension"),
    "kyoukai-kenpo": ("csv_insurer", "csv_insurer"),
    "131130": ("json_http", "json_http"),
    "mhlw": ("jsonl_records", None),
}
INSURER_POLL_SECONDS = 0.1


def short(code: str | None, keep: int = 14) -> str:
    if not code:
        return "-"
    return code if len(code) <= keep else code[:keep] + "…"


def legacy_tables(endpoints: Endpoints, drop_folder: Path) -> dict[str, dict[str, Any]]:
    """Each agency's ``[legacy]`` table for comm.toml (the minister keeps JSON lines)."""
    port = endpoints.legacy_ports
    return {
        "141003": {"kind": "fixed_tax", "format": "fixed_tax", "port": port["141003"]},
        "nenkin": {
            "kind": "soap",
            "format": "soap_pension",
            "url": f"http://127.0.0.1:{port['nenkin']}/soap",
        },
        "kyoukai-kenpo": {
            "kind": "csv_dropbox",
            "format": "csv_insurer",
            "folder": str(drop_folder.resolve()),
            "poll_interval_seconds": INSURER_POLL_SECONDS,
        },
        "131130": {
            "kind": "json_http",
            "format": "json_http",
            "url": f"http://127.0.0.1:{port['131130']}",
        },
    }


def own_format(answer: bytes, fmt: str | None) -> str:
    """The requester's own legacy bytes, shown as text (fixed-width: cp932, trailing blanks cut)."""
    if fmt == "fixed_tax":  # padding runs shown as one bar, so the fields stand apart
        padded = re.sub(r"[ \u3000]{2,}", " | ", answer.decode("cp932"))
        return f"{len(answer)} bytes cp932: {padded.strip(' |')}"
    return answer.decode("utf-8", errors="replace")


class Demo:
    def __init__(self, state_dir: Path, console: Console, keep_serving: float = 0.0) -> None:
        self.state_dir = state_dir
        self.console = console
        # Seconds to keep every party running after the demo (for `renkei load`).
        self.keep_serving = keep_serving
        self.people = residents()
        self.drop_folder = state_dir / "insurer-drop"
        endpoints = pick_endpoints(AGENCIES)
        self.endpoints = replace(endpoints, legacy=legacy_tables(endpoints, self.drop_folder))
        # The hub's serials of each person's exchanges, as the traces saw them.
        self.serials: dict[str, list[int]] = {p.resident_code: [] for p in self.people}
        self.cards: list[demo_views.DemoCard] = []

    # -- setting up --------------------------------------------------------

    def deploy(self) -> Layout:
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        layout = init_deployment(
            self.state_dir,
            AGENCIES,
            self.endpoints,
            Settings(
                answer_timeout_seconds=1.0,
                query_timeout_seconds=4.0,
                log_level="WARNING",
                extra_staff=self._load_staff(),
            ),
        )
        for agency_id, records in legacy_records(self.people).items():
            write_records(layout.legacy_records(agency_id), records)
        demo_views.allow_every_hour(layout.oversight_config)
        return layout

    def _load_staff(self) -> tuple[Grant, ...]:
        """When the parties stay up for `renkei load`, its staff member may ask (and only then)."""
        if not self.keep_serving:
            return ()
        from ops.load.targets import LOAD_STAFF_ID

        return (Grant(LOAD_STAFF_ID, name="renkei load, for --keep-serving only"),)

    def serve_on(self) -> None:
        """Keep every party up for ``keep_serving`` seconds, or until Ctrl-C or SIGTERM."""
        c = self.console
        c.rule("[bold]Serving")
        c.print(
            f"  every party stays up for {self.keep_serving:g} s (Ctrl-C stops sooner); e.g.\n"
            f"  renkei load --target comm --deployment {self.state_dir}"
            " --scenario ops/load/scenarios/demo.toml --duration 10"
        )
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait(self.keep_serving)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)

    def bind(self, layout: Layout) -> None:
        """Each agency binds its file by the four facts as its own system writes them:
        the four legacy systems' person files read through their mappers (``renkei bind``
        without --input), the minister's JSON-lines file as records."""
        for agency in AGENCIES:
            config = CommConfig.load(layout.comm_config(agency.agency_id))
            if config.legacy.format:
                report = asyncio.run(bind_agency(config, None))
                self._bound(agency.agency_id, report, f"its {config.legacy.format} person file")
                continue
            records = [
                legacy_record(p, n, agency.agency_id)
                for n, p in enumerate(self.people)
                if agency.agency_id in p.local_ids
            ]
            report = asyncio.run(bind_agency(config, records))
            sample = records[0]
            self._bound(
                agency.agency_id,
                report,
                f"{len(records)} JSON-lines records (e.g. 「{sample.name}」 {sample.birth_date}"
                f" {sample.address})",
            )

    def _bound(self, agency_id: str, report: BindReport, source: str) -> None:
        named = report.samples.get("bound", [])
        self.console.print(
            f"  {NAMES[agency_id]} ({agency_id}): read {source}; bound {report.bound}"
            f" ({', '.join(named)}) by the four facts — the registry matched each uniquely,"
            f" the ID issuer sealed its ID code to the hub, the hub returned"
            f" {NAMES[agency_id]}'s own link code; to review: {report.none} unmatched,"
            f" {report.ambiguous} ambiguous, {report.invalid} invalid"
        )
        for item in report.review[:1]:
            self.console.print(
                f"    e.g. review: {item.local_person_id}: {item.status}: {item.reason}"
            )

    # -- running queries ---------------------------------------------------

    def _stub(self, layout: Layout, agency_id: str) -> tuple[grpc.Channel, Any]:
        files = layout.pki.agency(agency_id)
        target = f"127.0.0.1:{self.endpoints.comm_ports[agency_id]}"
        channel = grpc.secure_channel(
            target, files.channel_credentials(), peer_options(f"agency:{agency_id}")
        )
        return channel, comm_pb2_grpc.RequesterServiceStub(channel)

    def ask(self, layout: Layout, q: DemoQuery) -> tuple[int | None, list[str]]:
        channel, stub = self._stub(layout, q.requester)
        with channel:
            try:
                response = stub.Query(q.query_request(), timeout=10)
            except grpc.RpcError as err:
                return self._refused(err)
            if response.state == comm_pb2.ANSWER_STATE_PENDING:
                lines = [
                    f"a ticket ({short(response.ticket, 10)}): the answer will come later;"
                    " it fetches with the ticket:"
                ]
                fetched, tries = self._fetch(stub, q, response.ticket)
                lines[0] += f" (ANSWER_NOT_READY {tries - 1} times, then)"
                if isinstance(fetched, list):
                    return response.serial, lines + fetched
                return response.serial, lines + self._answer(q, fetched)
        return response.serial, self._answer(q, response)

    def _fetch(self, stub: Any, q: DemoQuery, ticket: str) -> tuple[Any, int]:
        give_up = time.monotonic() + 20
        tries = 0
        while True:
            tries += 1
            try:
                return stub.FetchAnswer(
                    comm_pb2.FetchAnswerRequest(
                        ticket=ticket, staff_id=q.staff_id, terminal_id=q.terminal_id
                    ),
                    timeout=10,
                ), tries
            except grpc.RpcError as err:
                refusal = from_rpc_error(err, fallback_reason="UNKNOWN")
                if refusal.reason != "ANSWER_NOT_READY" or time.monotonic() > give_up:
                    return self._refused(err)[1], tries
                time.sleep(0.5)

    def _refused(self, err: grpc.RpcError) -> tuple[int | None, list[str]]:
        refusal = from_rpc_error(err, fallback_reason="UNKNOWN")
        serial = refusal.metadata.get("serial")
        return (
            int(serial) if serial else None,
            [f"refused: {refusal.code.name} {refusal.reason} — {refusal.message}"],
        )

    def _answer(self, q: DemoQuery, response: Any) -> list[str]:
        fmt = SYSTEMS[q.requester][1]
        if not response.HasField("record"):
            return ["answer: " + json.dumps(json.loads(response.answer), ensure_ascii=False)]
        lines = ["answer: standard layout " + render_record(response.record)]
        if response.answer:
            lines.append(
                f"    re-encoded in {NAMES[q.requester]}'s own {fmt} format: "
                + own_format(response.answer, fmt)
            )
        else:
            own = f"its {fmt} format carries no {q.info_kind}" if fmt else "it has no mapper"
            lines.append(f"    (no bytes in {NAMES[q.requester]}'s own format: {own})")
        return lines

    def trace(self, layout: Layout, n: int, q: DemoQuery) -> None:
        c = self.console
        c.rule(f"[bold]Query {n}: {q.title}")
        legacy = self._legacy(q.provider)
        if q.slow_provider_ms:
            set_faults(legacy, delay_ms=q.slow_provider_ms)
            c.print(
                f"  (the {NAMES[q.provider]} legacy system now answers"
                f" after {q.slow_provider_ms} ms)"
            )
        try:
            serial, outcome = self.ask(layout, q)
        finally:
            if q.slow_provider_ms:
                set_faults(legacy)
        person = next(p for p in self.people if p.local_ids.get(q.requester) == q.local_person_id)
        if serial is not None and serial not in self.serials[person.resident_code]:
            self.serials[person.resident_code].append(serial)
        requester = self.store(layout, q.requester)
        provider = self.store(layout, q.provider)
        c.print(
            f"  {NAMES[q.requester]}'s terminal {q.terminal_id} (staff {q.staff_id}) asks for"
            f" local person {q.local_person_id}: {q.info_kind} from {NAMES[q.provider]},"
            f" item {q.item}, purpose 「{q.purpose}」"
        )
        c.print(
            f"  {NAMES[q.requester]}'s comm server: {q.local_person_id} -> its link code"
            f" {short(requester.link_code_for(q.local_person_id))};"
            f" query sealed to {NAMES[q.provider]}"
        )
        hub_row = next((r for r in self.hub_log(layout).rows() if r.serial == serial), None)
        if hub_row is not None:
            seen = (
                "link code -> ID code (to log the person), then refused: no provider link code made"
                if hub_row.outcome == "DENIED"
                else f"link code -> ID code -> {NAMES[q.provider]}'s link code, none kept"
            )
            c.print(
                f"  hub: serial {hub_row.serial}; {seen}; logged person key"
                f" {short(hub_row.entry.person_key, 12)} (HMAC of the ID code);"
                f" outcome {hub_row.outcome} {hub_row.reason}"
            )
        provided = [r for r in provider.log_rows() if r.serial == serial and r.role == "provider"]
        if provided:
            local = provided[0].local_person_id
            found = (
                f"its link code {short(provider.link_code_for(local))} -> local person {local}"
                " -> legacy system"
                if local
                else "its link code matches no record in its correspondence table"
            )
            system, fmt = SYSTEMS[q.provider]
            mapped = f" -> {fmt} mapper -> standard layout" if fmt else ""
            outcomes = " then ".join(f"{r.outcome} {r.reason}".strip() for r in provided)
            c.print(
                f"  {NAMES[q.provider]}'s comm server: {found} ({system}){mapped} -> {outcomes}"
            )
        elif hub_row is not None:
            c.print(f"  {NAMES[q.provider]}: never asked")
        c.print(f"  {NAMES[q.requester]} gets {outcome[0]}")
        for line in outcome[1:]:
            c.print(f"  {line}")

    def _legacy(self, agency_id: str) -> dict[str, Any]:
        return dict(
            self.endpoints.legacy.get(agency_id)
            or {"kind": "jsonl", "port": self.endpoints.legacy_ports[agency_id]}
        )

    def start_legacy(self, group: ProcessGroup, layout: Layout, agency_id: str) -> Started:
        system = SYSTEMS[agency_id][0]
        name = f"legacy-{agency_id}"
        quiet = ("--log-level", "WARNING")
        if system == "jsonl_records":
            records = ("--records", str(layout.legacy_records(agency_id)))
            port = ("--port", str(self.endpoints.legacy_ports[agency_id]))
            return group.start(
                name, python_module(f"legacy_stubs.{system}", *records, *port, *quiet)
            )
        if system == "csv_insurer":
            folder = (
                "--folder",
                str(self.drop_folder),
                "--poll-interval",
                str(INSURER_POLL_SECONDS),
            )
            return group.start(
                name,
                python_module(f"legacy_stubs.{system}", *folder, "--log-level", "INFO"),
                port_file_arg=False,
            )
        port = ("--port", str(self.endpoints.legacy_ports[agency_id]))
        return group.start(name, python_module(f"legacy_stubs.{system}", *port, *quiet))

    # -- stores ------------------------------------------------------------

    def store(self, layout: Layout, agency_id: str) -> CommStore:
        config = CommConfig.load(layout.comm_config(agency_id))
        return CommStore(db.create_engine(config.database_url, schema=config.database_schema))

    def hub_log(self, layout: Layout) -> SqlHubLog:
        config = HubConfig.load(layout.hub_config)
        return SqlHubLog(db.create_engine(config.database_url, schema=config.database_schema))

    def print_logs(self, layout: Layout) -> None:
        c = self.console
        c.rule("[bold]The hub's log (R23 (1)-(6), outcome)")
        table = Table(
            "serial",
            "time",
            "(3) item",
            "(4) requester",
            "(5) provider",
            "(6) kind",
            "person key",
            "outcome",
        )
        for row in self.hub_log(layout).rows():
            e = row.entry
            table.add_row(
                str(row.serial),
                e.logged_at.strftime("%H:%M:%S"),
                e.legal_basis_item,
                e.requester_agency_id,
                e.provider_agency_id,
                e.info_kind,
                short(e.person_key, 10),
                f"{row.outcome} {row.reason}".strip(),
            )
        c.print(table)
        for agency in AGENCIES:
            c.rule(f"[bold]{agency.display_name}'s share of the log (R24)")
            table = Table(
                "serial",
                "role",
                "counterpart",
                "local person",
                "staff",
                "terminal",
                "(11) content",
                "(12) purpose",
                "outcome",
            )
            for r in self.store(layout, agency.agency_id).log_rows():
                table.add_row(
                    str(r.serial or "-"),
                    r.role,
                    r.counterpart_agency_id,
                    r.local_person_id or "-",
                    r.staff_id,
                    r.terminal_id,
                    short(r.content, 40),
                    r.purpose or "-",
                    f"{r.outcome} {r.reason}".strip(),
                )
            c.print(table)

    # -- the verifiable log (docs/verifiable-log.md) -------------------------

    def _renkei(self, *argv: str) -> tuple[int, list[str]]:
        """``renkei ARGV`` as an operator would run it: its exit code and output lines."""
        done = subprocess.run(
            python_module("ops.cli", *argv), capture_output=True, text=True, timeout=120
        )
        return done.returncode, (done.stdout + done.stderr).strip().splitlines()

    def _show(self, command: str, code: int, lines: list[str], keep: int = 6) -> None:
        self.console.print(f"  $ renkei {command}   [dim](exit {code})[/dim]")
        for line in lines[:keep]:
            self.console.print(f"    {line}", markup=False)
        if len(lines) > keep:
            self.console.print(f"    ... {len(lines) - keep} more lines")

    def verifiable_log(self, layout: Layout) -> bool:
        """The checkpoint, one agency verifying its whole share, an edited row caught."""
        c = self.console
        c.rule("[bold]The hub's log as a verifiable log (issue 14)")
        city = "141003"
        city_config = layout.comm_config(city)
        config = CommConfig.load(city_config)
        assert config.log is not None
        hub = HubConfig.load(layout.hub_config)
        engine = db.create_engine(hub.database_url, schema=hub.database_schema)
        note_text = self._witnessed_checkpoint(engine)
        if note_text is None:
            c.print("  no witnessed checkpoint within 10 s")
            return False
        c.print("  the latest checkpoint (C2SP tlog-checkpoint, signed by the hub's key and")
        c.print("  cosigned by the oversight body's witness):")
        for line in note_text.splitlines():
            c.print(f"    {line}", markup=False, soft_wrap=True)
        state = self.state_dir / "log-proofs"
        state.mkdir(exist_ok=True)
        bundle = state / f"{city}-share.json"
        verify = ("comm", "log", "verify", "--config", str(city_config), "--all")
        code, out = self._renkei(*verify, "--bundle", str(bundle))
        self._show(f"comm log verify --config {city}/comm.toml --all --bundle ...", code, out)
        keys = ("--log-key", config.log.hub_key, "--witness-key", config.log.witness_keys[0])
        offline = ("log", "verify", str(bundle), *keys)
        code_offline, out_offline = self._renkei(*offline)
        self._show("log verify BUNDLE --log-key ... --witness-key ...", code_offline, out_offline)
        clean = code == 0 and code_offline == 0

        # The hub's operator edits one of the city's entries in the hub's database.
        c.print("  the hub's operator now changes one entry's outcome in the hub's database:")
        with engine.connect() as conn:
            leaf, data = conn.execute(
                sa.select(log_tree.entries.c.leaf_index, log_tree.entries.c.entry)
                .where(log_tree.entries.c.requester_agency_id == city)
                .where(log_tree.entries.c.kind == "outcome")
                .order_by(log_tree.entries.c.leaf_index)
                .limit(1)
            ).one()
        original = bytes(data)
        entry = Entry.decode(original)
        edited = replace(entry, outcome="DENIED" if entry.outcome != "DENIED" else "OK")
        self._set_entry(engine, int(leaf), edited.encode())
        c.print(
            f"    UPDATE hub_log_entries SET entry = ... WHERE leaf_index = {leaf}"
            f"  (serial {entry.serial}: outcome {entry.outcome} -> {edited.outcome})",
            markup=False,
        )
        code_edit, out_edit = self._renkei(*verify, "--bundle", str(state / "after-edit.json"))
        self._show(f"comm log verify --config {city}/comm.toml --all", code_edit, out_edit)
        code_edit_offline, out_edit_offline = self._renkei(
            "log", "verify", str(state / "after-edit.json"), *keys
        )
        self._show("log verify after-edit.json ...", code_edit_offline, out_edit_offline)
        self._set_entry(engine, int(leaf), original)  # put back, so the audit sees the log
        c.print("    (the entry is put back as it was)")
        engine.dispose()
        caught = code_edit == 1 and code_edit_offline == 1
        c.print(
            "  every check held: the share verified, and the edit was caught"
            if clean and caught
            else "  A CHECK DID NOT HOLD"
        )
        return clean and caught

    def _witnessed_checkpoint(self, engine: sa.Engine) -> str | None:
        """The newest witnessed checkpoint once it covers the whole tree."""
        give_up = time.monotonic() + 10
        reader = log_tree.TreeReader(engine)
        while time.monotonic() < give_up:
            latest = reader.latest_checkpoint(witnessed=True)
            if latest is not None and latest[0] == reader.size():
                return latest[1]
            time.sleep(0.1)
        return None

    @staticmethod
    def _set_entry(engine: sa.Engine, leaf: int, data: bytes) -> None:
        table = log_tree.entries
        with engine.begin() as conn:
            conn.execute(table.update().where(table.c.leaf_index == leaf).values(entry=data))

    def audit(self, layout: Layout) -> bool:
        self.console.rule("[bold]Audit of every party's configuration (renkei audit configs)")
        configs = audit_configs(layout.root)
        self.console.print(render_configs(configs))
        self.console.print(
            "  no party's configuration or keys open another party's store"
            if not configs.breaches
            else f"  BREACHES: {configs.breaches}"
        )
        self.console.rule("[bold]Audit of every store (renkei audit stores)")
        report = audit_deployment(layout.root)
        self.console.print(render(report))
        bad = breaches(report)
        self.console.print(
            "  every store holds only what docs/separation.md allows"
            if not bad
            else f"  BREACHES: {bad}"
        )
        return not bad and not configs.breaches

    def number(self, layout: Layout) -> None:
        notices = self.state_dir / "notices"
        numbers = asyncio.run(
            issue_numbers(
                layout,
                self.endpoints.numbering_port,
                [p.resident_code for p in self.people],
                notices,
            )
        )
        cards = {c.resident_code: c for c in self.cards}
        for person in self.people:
            n = numbers[person.resident_code]
            self.console.print(
                f"  numbering agency: {person.name}'s Number {n[:4]} {n[4:8]} {n[8:]}"
                f" (random; check digit {n[-1]}), told to the registry that asked; the notice"
                f" for the holder is {notices.name}/{person.resident_code}.html"
            )
            if person.resident_code in cards:
                card = cards[person.resident_code]
                self.console.print(
                    f"    with the card (serial {card.serial}) next to it:"
                    f" {notices.name}/{card.cert_file.name} and {card.key_file.name}"
                )

    def issue_cards(self, layout: Layout) -> None:
        """Each person's card (key and certificate) from the registry side's card CA."""
        self.cards = demo_views.issue_cards(
            layout, [(p.resident_code, p.name) for p in self.people], self.state_dir / "notices"
        )

    # -- the people and the oversight body look (issue 15) -------------------

    def views(self, layout: Layout) -> bool:
        """The portal, the counter and the oversight body, each on the demo's traffic."""
        c = self.console
        c.rule("[bold]The portal: a person reads who looked at their data (R23, R26)")
        c.print("  the hub's serials of each person's exchanges, as the traces above saw them:")
        for person in self.people:
            serials = ", ".join(map(str, self.serials[person.resident_code])) or "none"
            c.print(f"    {person.name}: {serials}")
        yamada = next(
            card for card in self.cards if card.resident_code == self.people[0].resident_code
        )
        ok = self._portal(layout, yamada)
        c.rule("[bold]The counter (窓口): the city prints the same history (R26)")
        out = self.state_dir / "counter" / f"{yamada.resident_code}-history.pdf"
        code, _ = demo_views.counter_report(c, layout, yamada, out)
        ok = ok and code == 0 and out.exists()
        if out.exists():
            c.print(f"  the PDF: {out} ({out.stat().st_size} bytes)")
        c.rule("[bold]The oversight body: every share reconciled, the report (R27)")
        clean, _ = demo_views.oversight_runs(c, layout, self.state_dir / "oversight-out")
        c.print(
            "  the shares agree and the demo's traffic raises no anomaly"
            if clean
            else "  THE OVERSIGHT BODY FOUND SOMETHING"
        )
        return ok and clean

    def _portal(self, layout: Layout, person: demo_views.DemoCard) -> bool:
        steps = asyncio.run(demo_views.visit_portal(self.console, layout, person, "141003"))
        expected = set(self.serials[person.resident_code])
        shown = set(steps.serials)
        if shown != expected:
            self.console.print(f"  THE PORTAL SHOWED {sorted(shown)}, NOT {sorted(expected)}")
        return steps.ok and shown == expected

    # -- the whole run -----------------------------------------------------

    def start_world(self, group: ProcessGroup, layout: Layout) -> None:
        """Every party's process, the person files bound, the comm servers ready."""
        c = self.console
        started = [self.start_legacy(group, layout, a.agency_id) for a in AGENCIES]
        started.append(
            group.start(
                "id-issuer",
                python_module(
                    "ops.cli", "id-issuer", "serve", "--config", str(layout.id_issuer_config)
                ),
            )
        )
        # The oversight body's witness: the hub offers it every checkpoint it signs.
        started.append(
            group.start(
                "witness",
                python_module(
                    "ops.cli", "witness", "serve", "--config", str(layout.witness_config)
                ),
            )
        )
        started.append(
            group.start(
                "hub",
                python_module("ops.cli", "hub", "serve", "--config", str(layout.hub_config)),
            )
        )
        started.append(
            group.start(
                "registry-binding",
                python_module(
                    "ops.cli",
                    "registry-binding",
                    "serve",
                    "--config",
                    str(layout.registry_config),
                ),
            )
        )
        # The portal: HTTPS for browsers; the hub and the registry over mutual TLS.
        started.append(
            group.start(
                "portal",
                python_module(
                    "ops.cli", "portal", "serve", "--config", str(portal_files(layout.root).config)
                ),
            )
        )
        started.append(
            group.start(
                "numbering",
                python_module(
                    "ops.cli", "numbering", "serve", "--config", str(layout.numbering_config)
                ),
            )
        )
        for child in started:
            if child.name == "legacy-kyoukai-kenpo":
                wait_logged_ready(child)
            else:
                group.wait_ready(child)
        c.print(
            "  started the registry's binding service, the numbering agency, the ID issuer,"
            " the oversight body's witness, the hub, the portal and five legacy systems: "
            + ", ".join(f"{NAMES[a]}: {SYSTEMS[a][0]}" for a in SYSTEMS)
        )
        self.number(layout)
        self.bind(layout)
        comm = [
            group.start(
                f"comm-{a.agency_id}",
                python_module(
                    "ops.cli",
                    "comm",
                    "serve",
                    "--config",
                    str(layout.comm_config(a.agency_id)),
                ),
            )
            for a in AGENCIES
        ]
        for child in comm:
            group.wait_ready(child)
        c.print(
            f"  started {len(comm)} communication servers (mutual TLS to the hub), each"
            " with its legacy client and \\[legacy] format mapper"
        )

    def run(self) -> int:
        c = self.console
        c.rule("[bold]renkei demo")
        layout = self.deploy()
        c.print(f"  state folder: {self.state_dir.resolve()}")
        c.print(
            "  parties: resident registry, numbering agency, ID issuer, hub, the portal, the"
            " oversight body (its witness, its reads), and "
            + ", ".join(f"{a.display_name} ({a.agency_id})" for a in AGENCIES)
        )
        count = seed_registry(layout, self.people, extra=200, seed=2026)
        c.print(f"  resident registry: {count} residents (the demo's three among them)")
        self.issue_cards(layout)
        with ProcessGroup(self.state_dir / "run") as group:
            self.start_world(group, layout)
            for n, q in enumerate(queries(self.people), start=1):
                self.trace(layout, n, q)
            self.print_logs(layout)
            verified = self.verifiable_log(layout)
            viewed = self.views(layout)
            clean = self.audit(layout) and verified and viewed
            if self.keep_serving:
                self.serve_on()
            exits = group.stop_all()
        c.rule("[bold]Shutdown")
        c.print("  " + ", ".join(f"{name} exited {code}" for name, code in exits.items()))
        ok = clean and all(code == 0 for code in exits.values())
        c.print(f"  state kept in {self.state_dir}; process logs in {self.state_dir / 'run'}")
        return 0 if ok else 1


def wait_logged_ready(child: Started, timeout: float = 20.0) -> None:
    """The drop-folder insurer listens on no port: it logs "ready" once it watches."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.process.returncode}")
        if b'"msg": "ready"' in child.log_path.read_bytes():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} never became ready")


def main(state_dir: Path, keep_serving: float = 0.0) -> int:
    console = Console(width=140, highlight=False)
    return Demo(state_dir, console, keep_serving).run()


if __name__ == "__main__":
    sys.exit(main(Path("demo-state")))
