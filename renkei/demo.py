"""`make demo`: the whole system on loopback, and a readable trace of what each party saw.

Starts a legacy stub and a communication server for each of three agencies,
and the hub, each as its own process with its own store, all over mutual TLS.
Seeds three residents, binds them, runs lawful queries and refused ones,
prints the trace and every party's log, scans the hub's store for anything
it must not hold, stops every process and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import sys
from pathlib import Path

import grpc
from rich.console import Console
from rich.table import Table

from comm_server.bulk_bind import bind_agency
from comm_server.config import CommConfig
from comm_server.store import CommStore
from hub_server.config import HubConfig
from hub_server.log_store import SqlHubLog
from legacy_stubs.jsonl_records.store import write_records
from renkei import db
from renkei.audit import audit_deployment, breaches, render
from renkei.comm.v1 import comm_pb2, comm_pb2_grpc
from renkei.demo_data import DemoQuery, legacy_record, legacy_records, queries, residents
from renkei.deploy import DEMO_AGENCIES, Layout, Settings, init_deployment, pick_endpoints
from renkei.errors import from_rpc_error
from renkei.identities import issue_numbers, seed_registry
from renkei.processes import ProcessGroup, python_module

NAMES = {a.agency_id: a.display_name for a in DEMO_AGENCIES}


def short(code: str | None, keep: int = 14) -> str:
    if not code:
        return "-"
    return code if len(code) <= keep else code[:keep] + "…"


def set_faults(port: int, delay_ms: int) -> None:
    """Tell a legacy stub to be slow (or not): its control message, over its own protocol."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        message = {"op": "set_faults", "id": "demo", "delay_ms": delay_ms}
        sock.sendall(json.dumps(message).encode() + b"\n")
        sock.makefile("rb").readline()


class Demo:
    def __init__(self, state_dir: Path, console: Console) -> None:
        self.state_dir = state_dir
        self.console = console
        self.people = residents()
        self.endpoints = pick_endpoints(DEMO_AGENCIES)
        self.layout: Layout | None = None

    # -- setting up --------------------------------------------------------

    def deploy(self) -> Layout:
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
        layout = init_deployment(
            self.state_dir,
            DEMO_AGENCIES,
            self.endpoints,
            Settings(answer_timeout_seconds=1.0, query_timeout_seconds=4.0, log_level="WARNING"),
        )
        for agency_id, records in legacy_records(self.people).items():
            write_records(layout.legacy_records(agency_id), records)
        self.layout = layout
        return layout

    def bind(self, layout: Layout) -> None:
        """Each agency binds its records by the four facts as its own files write them."""
        for agency in DEMO_AGENCIES:
            records = [
                legacy_record(p, n, agency.agency_id)
                for n, p in enumerate(self.people)
                if agency.agency_id in p.local_ids
            ]
            config = CommConfig.load(layout.comm_config(agency.agency_id))
            report = asyncio.run(bind_agency(config, records))
            sample = records[0]
            self.console.print(
                f"  {agency.display_name} ({agency.agency_id}): bound {report.bound} of"
                f" {len(records)} records by the four facts (e.g. 「{sample.name}」"
                f" {sample.birth_date} {sample.address}); the registry matched each uniquely,"
                f" the ID issuer sealed its ID code to the hub, the hub returned"
                f" {agency.display_name}'s own link code"
            )
            for item in report.review:
                self.console.print(f"    review: {item.local_person_id}: {item.reason}")

    # -- running queries ---------------------------------------------------

    def ask(self, layout: Layout, q: DemoQuery) -> tuple[int | None, str]:
        files = layout.pki.agency(q.requester)
        target = f"127.0.0.1:{self.endpoints.comm_ports[q.requester]}"
        with grpc.secure_channel(target, files.channel_credentials()) as channel:
            stub = comm_pb2_grpc.RequesterServiceStub(channel)
            try:
                response = stub.Query(
                    comm_pb2.QueryRequest(
                        local_person_id=q.local_person_id,
                        provider_agency_id=q.provider,
                        info_kind=q.info_kind,
                        legal_basis_item=q.item,
                        purpose=q.purpose,
                        staff_id=q.staff_id,
                        terminal_id=q.terminal_id,
                        query=q.query,
                    ),
                    timeout=10,
                )
            except grpc.RpcError as err:
                refusal = from_rpc_error(err, fallback_reason="UNKNOWN")
                serial = refusal.metadata.get("serial")
                return (
                    int(serial) if serial else None,
                    f"refused: {refusal.code.name} {refusal.reason} — {refusal.message}",
                )
        answer = json.loads(response.answer.decode("utf-8"))
        return response.serial, "answer: " + json.dumps(answer, ensure_ascii=False)

    def trace(self, layout: Layout, n: int, q: DemoQuery) -> None:
        c = self.console
        c.rule(f"[bold]Query {n}: {q.title}")
        if q.slow_provider_ms:
            set_faults(self.endpoints.legacy_ports[q.provider], q.slow_provider_ms)
            c.print(
                f"  (the {NAMES[q.provider]} legacy system now answers"
                f" after {q.slow_provider_ms} ms)"
            )
        serial, outcome = self.ask(layout, q)
        if q.slow_provider_ms:
            set_faults(self.endpoints.legacy_ports[q.provider], 0)
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
            c.print(
                f"  {NAMES[q.provider]}'s comm server: {found} ->"
                f" {provided[0].outcome} {provided[0].reason}"
            )
        elif hub_row is not None:
            c.print(f"  {NAMES[q.provider]}: never asked")
        c.print(f"  {NAMES[q.requester]} gets {outcome}")

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
        for agency in DEMO_AGENCIES:
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
                    short(r.content, 28),
                    r.purpose or "-",
                    f"{r.outcome} {r.reason}".strip(),
                )
            c.print(table)

    def audit(self, layout: Layout) -> bool:
        self.console.rule("[bold]Audit of every store (renkei audit stores)")
        report = audit_deployment(layout.root)
        self.console.print(render(report))
        bad = breaches(report)
        self.console.print(
            "  every store holds only what docs/separation.md allows"
            if not bad
            else f"  BREACHES: {bad}"
        )
        return not bad

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
        for person in self.people:
            n = numbers[person.resident_code]
            self.console.print(
                f"  numbering agency: {person.name}'s Number {n[:4]} {n[4:8]} {n[8:]}"
                f" (random; check digit {n[-1]}), told to the registry that asked; the notice"
                f" for the holder is {notices.name}/{person.resident_code}.html"
            )

    # -- the whole run -----------------------------------------------------

    def run(self) -> int:
        c = self.console
        c.rule("[bold]renkei demo")
        layout = self.deploy()
        c.print(f"  state folder: {self.state_dir.resolve()}")
        c.print(
            "  parties: resident registry, numbering agency, ID issuer, hub, and "
            + ", ".join(f"{a.display_name} ({a.agency_id})" for a in DEMO_AGENCIES)
        )
        count = seed_registry(layout, self.people, extra=200, seed=2026)
        c.print(f"  resident registry: {count} residents (the demo's three among them)")
        with ProcessGroup(self.state_dir / "run") as group:
            started = [
                group.start(
                    f"legacy-{a.agency_id}",
                    python_module(
                        "legacy_stubs.jsonl_records",
                        "--records",
                        str(layout.legacy_records(a.agency_id)),
                        "--port",
                        str(self.endpoints.legacy_ports[a.agency_id]),
                        "--log-level",
                        "WARNING",
                    ),
                )
                for a in DEMO_AGENCIES
            ]
            started.append(
                group.start(
                    "id-issuer",
                    python_module(
                        "renkei.cli", "id-issuer", "serve", "--config", str(layout.id_issuer_config)
                    ),
                )
            )
            started.append(
                group.start(
                    "hub",
                    python_module("renkei.cli", "hub", "serve", "--config", str(layout.hub_config)),
                )
            )
            started.append(
                group.start(
                    "registry-binding",
                    python_module(
                        "renkei.cli",
                        "registry-binding",
                        "serve",
                        "--config",
                        str(layout.registry_config),
                    ),
                )
            )
            started.append(
                group.start(
                    "numbering",
                    python_module(
                        "renkei.cli", "numbering", "serve", "--config", str(layout.numbering_config)
                    ),
                )
            )
            for child in started:
                group.wait_ready(child)
            c.print(
                "  started the registry's binding service, the numbering agency, the ID issuer,"
                " the hub and three legacy systems"
            )
            self.number(layout)
            self.bind(layout)
            comm = [
                group.start(
                    f"comm-{a.agency_id}",
                    python_module(
                        "renkei.cli",
                        "comm",
                        "serve",
                        "--config",
                        str(layout.comm_config(a.agency_id)),
                    ),
                )
                for a in DEMO_AGENCIES
            ]
            for child in comm:
                group.wait_ready(child)
            c.print("  started three communication servers (mutual TLS to the hub)")
            for n, q in enumerate(queries(self.people), start=1):
                self.trace(layout, n, q)
            self.print_logs(layout)
            clean = self.audit(layout)
            exits = group.stop_all()
        c.rule("[bold]Shutdown")
        c.print("  " + ", ".join(f"{name} exited {code}" for name, code in exits.items()))
        ok = clean and all(code == 0 for code in exits.values())
        c.print(f"  state kept in {self.state_dir}; process logs in {self.state_dir / 'run'}")
        return 0 if ok else 1


def main(state_dir: Path) -> int:
    console = Console(width=140, highlight=False)
    return Demo(state_dir, console).run()


if __name__ == "__main__":
    sys.exit(main(Path("demo-state")))
