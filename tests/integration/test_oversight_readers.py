"""The oversight body's readers against small grpc.aio fakes of LogService, AgencyLogService,
ConsentLogService and LegalHoldService, over mutual TLS with a certificate naming
urn:renkei:oversight (the real services land with their parties; these stand in).

The fakes admit only that certificate (PERMISSION_DENIED CALLER_NOT_OVERSIGHT
otherwise, as the contract says). The hub fake builds a real Merkle tree and a
witnessed checkpoint; a dishonest one serves a forged entry, which the reader
must locate by inclusion proofs and leave out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support.oversight_traffic import NENKIN, YOKOHAMA, Traffic

from hub_server.tiles_server import entry_readers
from ops import oversight_cli
from ops import pki as ops_pki
from oversight import collect, readers
from oversight.config import AgencySource, HubSource, OversightConfig, RegistrySource
from oversight.holds import HoldClient
from oversight.model import REQUESTER, AgencyRow
from oversight.reconcile import reconcile
from renkei import https_tls
from renkei.errors import RenkeiError
from renkei.grpcutil.client import channel
from renkei.log.v1 import log_pb2, log_pb2_grpc
from renkei.oversight.v1 import oversight_pb2, oversight_pb2_grpc
from renkei.pki import SAN_OVERSIGHT, TlsFiles
from renkei.tlog import checkpoint as tlog_checkpoint
from renkei.tlog import merkle, note
from renkei.tlog.entry import Entry, new_salt
from renkei.tlog.tiles_http import tiles_app

TEST_TIMEOUT = 60.0
Context = grpc.aio.ServicerContext[Any, Any]


# -- certificates ------------------------------------------------------------------------------


@dataclass
class Pki:
    servers: dict[str, TlsFiles]  # party -> its server files, trusting the oversight CA too
    oversight: TlsFiles
    agency_client: TlsFiles  # a party that is not the oversight body


def _oversight_cert(folder: Path) -> tuple[Path, Path, Path]:
    """An oversight CA of its own and a leaf naming urn:renkei:oversight."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test oversight CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oversight")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(SAN_OVERSIGHT)]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = folder / "ca.crt", folder / "oversight.crt", folder / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def pki_files(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    layout = ops_pki.init_pki(root / "pki", [NENKIN, YOKOHAMA], services=["registry"])
    ca, cert, key = _oversight_cert(root / "oversight")
    bundle = root / "server-roots.pem"
    bundle.write_bytes(layout.roots.read_bytes() + ca.read_bytes())
    servers = {}
    for party in ("hub", f"agency:{NENKIN}", f"agency:{YOKOHAMA}", "service:registry"):
        own = layout.files(party)
        servers[party] = TlsFiles(bundle, own.cert, own.key)
    return Pki(servers, TlsFiles(layout.roots, cert, key), layout.files(f"agency:{NENKIN}"))


# -- fakes ---------------------------------------------------------------------------------------


def _oversight_only(context: Context) -> None:
    uris = [v.decode() for v in context.auth_context().get("peer_uri", [])]
    if SAN_OVERSIGHT not in uris:
        raise PermissionError


async def _refuse(context: Context) -> None:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_OVERSIGHT")


@dataclass
class FakeHub(log_pb2_grpc.LogServiceServicer):
    entries: list[bytes]
    signer: note.Ed25519Signer
    witness: tlog_checkpoint.CosignatureSigner
    served: dict[int, bytes] = field(default_factory=dict)  # leaf -> forged bytes
    proofs: int = 0

    def __post_init__(self) -> None:
        self.leaves = [merkle.leaf_hash(e) for e in self.entries]
        signed = tlog_checkpoint.CheckpointSigner(self.signer).sign(
            len(self.entries), merkle.root(self.leaves)
        )
        self.note = tlog_checkpoint.cosign(signed, self.signer.verifier(), self.witness)

    async def GetCheckpoint(  # gRPC method names are PascalCase
        self, request: log_pb2.GetCheckpointRequest, context: Context
    ) -> log_pb2.GetCheckpointResponse:
        return log_pb2.GetCheckpointResponse(checkpoint=self.note)

    async def GetInclusionProof(  # gRPC method names are PascalCase
        self, request: log_pb2.GetInclusionProofRequest, context: Context
    ) -> log_pb2.GetInclusionProofResponse:
        self.proofs += 1
        hashes_ = merkle.inclusion_proof(self.leaves, request.leaf_index, request.tree_size)
        return log_pb2.GetInclusionProofResponse(hashes=hashes_)

    async def GetEntries(  # gRPC method names are PascalCase
        self, request: log_pb2.GetEntriesRequest, context: Context
    ) -> log_pb2.GetEntriesResponse:
        try:
            _oversight_only(context)
        except PermissionError:
            await _refuse(context)
        return log_pb2.GetEntriesResponse(
            entries=[
                log_pb2.LogReceipt(leaf_index=i, entry=self.served.get(i, self.entries[i]))
                for i in request.leaf_indices
            ]
        )


def _row_proto(r: AgencyRow) -> oversight_pb2.AgencyLogRow:
    out = oversight_pb2.AgencyLogRow(
        id=r.id,
        serial=r.serial,
        role=oversight_pb2.ROLE_REQUESTER if r.role == REQUESTER else oversight_pb2.ROLE_PROVIDER,
        agency_id=r.agency_id,
        counterpart_agency_id=r.counterpart_agency_id,
        info_kind=r.info_kind,
        legal_basis_item=r.legal_basis_item,
        person=r.person,
        staff_id=r.staff_id,
        terminal_id=r.terminal_id,
        content_sha256=r.content_sha256,
        purpose=r.purpose,
        outcome=r.outcome,
        reason=r.reason,
        person_municipality=r.person_municipality,
    )
    out.logged_at.FromDatetime(r.logged_at)
    return out


@dataclass
class FakeAgency(oversight_pb2_grpc.AgencyLogServiceServicer):
    rows: list[AgencyRow]

    async def ReadAgencyLog(  # gRPC method names are PascalCase
        self, request: oversight_pb2.ReadAgencyLogRequest, context: Context
    ) -> AsyncIterator[oversight_pb2.ReadAgencyLogResponse]:
        try:
            _oversight_only(context)
        except PermissionError:
            await _refuse(context)
        lo = (
            request.range.start_time.ToDatetime(tzinfo=dt.UTC)
            if request.range.HasField("start_time")
            else None
        )
        hi = (
            request.range.end_time.ToDatetime(tzinfo=dt.UTC)
            if request.range.HasField("end_time")
            else None
        )
        rows = [
            r
            for r in self.rows
            if (lo is None or r.logged_at >= lo) and (hi is None or r.logged_at < hi)
        ]
        size = request.batch_size or 1000
        for start in range(0, len(rows), size):
            yield oversight_pb2.ReadAgencyLogResponse(
                rows=[_row_proto(r) for r in rows[start : start + size]]
            )


class FakeRegistry(oversight_pb2_grpc.ConsentLogServiceServicer):
    async def ReadConsentLog(  # gRPC method names are PascalCase
        self, request: oversight_pb2.ReadConsentLogRequest, context: Context
    ) -> AsyncIterator[oversight_pb2.ReadConsentLogResponse]:
        try:
            _oversight_only(context)
        except PermissionError:
            await _refuse(context)
        row = oversight_pb2.ConsentLogRow(
            id=1,
            attempt_id="a1",
            caller="bank",
            consent_id="c1",
            giver="g",
            purpose="口座開設",
            outcome="MATCHED",
            answered="MATCHED",
            matched=True,
        )
        row.attempted_at.FromDatetime(dt.datetime(2027, 1, 4, 1, 0, tzinfo=dt.UTC))
        yield oversight_pb2.ReadConsentLogResponse(rows=[row])


@dataclass
class FakeHolds(oversight_pb2_grpc.LegalHoldServiceServicer):
    holds: dict[str, oversight_pb2.LegalHold] = field(default_factory=dict)

    async def SetLegalHold(  # gRPC method names are PascalCase
        self, request: oversight_pb2.SetLegalHoldRequest, context: Context
    ) -> oversight_pb2.SetLegalHoldResponse:
        self.holds[request.hold.hold_id] = request.hold
        return oversight_pb2.SetLegalHoldResponse()

    async def ReleaseLegalHold(  # gRPC method names are PascalCase
        self, request: oversight_pb2.ReleaseLegalHoldRequest, context: Context
    ) -> oversight_pb2.ReleaseLegalHoldResponse:
        self.holds.pop(request.hold_id, None)
        return oversight_pb2.ReleaseLegalHoldResponse()

    async def ListLegalHolds(  # gRPC method names are PascalCase
        self, request: oversight_pb2.ListLegalHoldsRequest, context: Context
    ) -> oversight_pb2.ListLegalHoldsResponse:
        return oversight_pb2.ListLegalHoldsResponse(holds=list(self.holds.values()))


# -- the deployment -------------------------------------------------------------------------------


@dataclass
class World:
    traffic: Traffic
    hub: FakeHub
    holds: FakeHolds
    config: OversightConfig
    ports: dict[str, int]
    servers: list[grpc.aio.Server]


def _entries(t: Traffic) -> list[bytes]:
    return [
        Entry(
            e.kind,
            e.serial,
            e.logged_at,
            e.requester,
            e.provider,
            new_salt(),
            e.legal_basis_item,
            e.info_kind,
            e.policy_version,
            e.person,
            e.outcome,
            e.reason,
        ).encode()
        for e in t.hub
    ]


async def _serve(pki_files: Pki, tmp: Path, traffic: Traffic) -> World:
    signer = note.Ed25519Signer.generate("renkei.test/log")
    witness = tlog_checkpoint.CosignatureSigner(
        "renkei.test/witness", ed25519.Ed25519PrivateKey.generate(), lambda: 1_800_000_000
    )
    hub = FakeHub(_entries(traffic), signer, witness)
    keys = {"log": signer.verifier().verifier_key(), "witness": witness.verifier().verifier_key()}
    (tmp / "keys.json").write_text(json.dumps(keys))
    holds = FakeHolds()
    servers, ports = [], {}
    registers = {
        "hub": lambda s: (
            log_pb2_grpc.add_LogServiceServicer_to_server(hub, s),
            oversight_pb2_grpc.add_LegalHoldServiceServicer_to_server(holds, s),
        ),
        f"agency:{NENKIN}": lambda s: oversight_pb2_grpc.add_AgencyLogServiceServicer_to_server(
            FakeAgency(traffic.shares[NENKIN]), s
        ),
        f"agency:{YOKOHAMA}": lambda s: oversight_pb2_grpc.add_AgencyLogServiceServicer_to_server(
            FakeAgency(traffic.shares[YOKOHAMA]), s
        ),
        "service:registry": lambda s: oversight_pb2_grpc.add_ConsentLogServiceServicer_to_server(
            FakeRegistry(), s
        ),
    }
    for party, register in registers.items():
        server = grpc.aio.server()
        register(server)
        creds = pki_files.servers[party].server_credentials(require_client_auth=True)
        ports[party] = server.add_secure_port("127.0.0.1:0", creds)
        await server.start()
        servers.append(server)
    verifier = signer.verifier()
    config = OversightConfig(
        tls=pki_files.oversight,
        hub=HubSource(
            f"127.0.0.1:{ports['hub']}",
            verifier.verifier_key(),
            (witness.verifier().verifier_key(),),
            batch=100,
        ),
        agencies=(
            AgencySource(NENKIN, f"127.0.0.1:{ports[f'agency:{NENKIN}']}"),
            AgencySource(YOKOHAMA, f"127.0.0.1:{ports[f'agency:{YOKOHAMA}']}"),
        ),
        registry=RegistrySource(f"127.0.0.1:{ports['service:registry']}"),
        output_dir=tmp,
        batch_size=50,
        timeout_seconds=20.0,
    )
    return World(traffic, hub, holds, config, ports, servers)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _two_agencies() -> Traffic:
    t = Traffic().clean(days=2)
    keep = {NENKIN, YOKOHAMA}
    t.shares = {a: rows for a, rows in t.shares.items() if a in keep}
    return t


def _run(loop: asyncio.AbstractEventLoop, pki_files: Pki, tmp: Path, body: Any) -> Any:
    async def go() -> Any:
        world = await _serve(pki_files, tmp, _two_agencies())
        try:
            return await body(world)
        finally:
            for s in world.servers:
                await s.stop(None)

    return loop.run_until_complete(asyncio.wait_for(go(), TEST_TIMEOUT))


def test_collect_reads_and_verifies_everything(
    loop: asyncio.AbstractEventLoop, pki_files: Pki, tmp_path: Path
) -> None:
    async def body(world: World) -> None:
        got = await collect.collect(world.config)
        assert got.hub.verified
        assert len(got.hub.entries) == len(world.traffic.hub)
        assert got.hub.checkpoint.size == len(world.traffic.hub)
        assert world.hub.proofs == 0  # the rebuilt root matched: no proof needed
        for agency in (NENKIN, YOKOHAMA):
            assert got.shares[agency] == world.traffic.shares[agency]
        assert [c.outcome for c in got.consent] == ["MATCHED"]
        report = reconcile(got.hub.entries, got.shares, max_skew=world.config.max_skew)
        assert report.clean, report.findings[:3]

    _run(loop, pki_files, tmp_path, body)


def test_a_forged_entry_is_located_and_left_out(
    loop: asyncio.AbstractEventLoop, pki_files: Pki, tmp_path: Path
) -> None:
    async def body(world: World) -> None:
        victim = 37
        real = Entry.decode(world.hub.entries[victim])
        world.hub.served[victim] = replace(real, requester="someone-else").encode()
        async with channel(world.config.hub.endpoint, world.config.tls, peer="hub") as ch:
            read = await readers.HubReader(ch, world.config.hub).read()
        assert [u.leaf_index for u in read.unverified] == [victim]
        assert len(read.entries) == len(world.hub.entries) - 1
        assert victim not in {e.leaf_index for e in read.entries}
        assert world.hub.proofs < 60  # halving, not one proof per entry

    _run(loop, pki_files, tmp_path, body)


def test_an_unwitnessed_checkpoint_is_refused(
    loop: asyncio.AbstractEventLoop, pki_files: Pki, tmp_path: Path
) -> None:
    async def body(world: World) -> None:
        world.hub.note = tlog_checkpoint.CheckpointSigner(world.hub.signer).sign(
            len(world.hub.entries), merkle.root(world.hub.leaves)
        )
        with pytest.raises(RenkeiError) as err:
            await collect.collect(world.config)
        assert err.value.reason == "CHECKPOINT_NOT_VERIFIED"

    _run(loop, pki_files, tmp_path, body)


def test_only_the_oversight_certificate_reads(
    loop: asyncio.AbstractEventLoop, pki_files: Pki, tmp_path: Path
) -> None:
    async def body(world: World) -> None:
        target = world.config.agencies[0].endpoint
        async with channel(target, pki_files.agency_client, peer=f"agency:{NENKIN}") as ch:
            with pytest.raises(RenkeiError) as err:
                await readers.read_agency(ch, timeout=10)
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED

    _run(loop, pki_files, tmp_path, body)


def test_read_range_is_sent(
    loop: asyncio.AbstractEventLoop, pki_files: Pki, tmp_path: Path
) -> None:
    async def body(world: World) -> None:
        rows = world.traffic.shares[NENKIN]
        start = rows[len(rows) // 2].logged_at
        target = world.config.agencies[0].endpoint
        async with channel(target, world.config.tls, peer=f"agency:{NENKIN}") as ch:
            got = await readers.read_agency(ch, start=start, batch_size=7, timeout=10)
        assert got == [r for r in rows if r.logged_at >= start]

    _run(loop, pki_files, tmp_path, body)


def test_holds_set_list_release(
    loop: asyncio.AbstractEventLoop, pki_files: Pki, tmp_path: Path
) -> None:
    async def body(world: World) -> None:
        async with channel(world.config.hub.endpoint, world.config.tls, peer="hub") as ch:
            client = HoldClient(ch)
            await client.set("case-1", "不正アクセスの調査", serials=[3, 4])
            (hold,) = await client.list()
            assert (hold.hold_id, hold.serials, hold.reason) == (
                "case-1",
                (3, 4),
                "不正アクセスの調査",
            )
            await client.release("case-1")
            assert await client.list() == []

    _run(loop, pki_files, tmp_path, body)


def test_fetch_then_reconcile_offline(
    loop: asyncio.AbstractEventLoop, pki_files: Pki, tmp_path: Path
) -> None:
    folder = tmp_path / "saved"

    async def body(world: World) -> None:
        got = await collect.collect(world.config, keep_raw=True)
        collect.save(got, folder)

    _run(loop, pki_files, tmp_path, body)
    config_path = _write_config(tmp_path, pki_files)
    out = tmp_path / "findings.json"
    assert (
        oversight_cli.main(
            [
                "reconcile",
                "--config",
                str(config_path),
                "--from-dir",
                str(folder),
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["findings"] == []
    # One agency row gone from the saved share: reconcile finds it and exits 1.
    share = folder / f"agency-{NENKIN}.jsonl"
    lines = share.read_text().splitlines()
    share.write_text("\n".join(lines[1:]) + "\n")
    assert (
        oversight_cli.main(
            [
                "reconcile",
                "--config",
                str(config_path),
                "--from-dir",
                str(folder),
                "--json",
                str(out),
            ]
        )
        == 1
    )
    assert json.loads(out.read_text())["counts"] == {"MISSING_REQUESTER_ROW": 1} or json.loads(
        out.read_text()
    )["counts"] == {"MISSING_PROVIDER_ROW": 1}
    report = tmp_path / "report.html"
    assert (
        oversight_cli.main(
            [
                "report",
                "--config",
                str(config_path),
                "--from-dir",
                str(folder),
                "--out",
                str(report),
            ]
        )
        == 0
    )
    assert "data:image/png;base64," in report.read_text("utf-8")


@dataclass
class FakeTiles:
    """tlog-tiles source of the fake hub's tree (level-0 tiles only: all the reader asks for)."""

    hub: FakeHub

    async def checkpoint(self) -> bytes:
        return self.hub.note

    async def tree_size(self) -> int:
        return len(self.hub.entries)

    async def hash_tile(self, level: int, index: int, width: int) -> bytes:
        assert level == 0
        return b"".join(self.hub.leaves[index * 256 : index * 256 + width])

    async def entries(self, start: int, count: int) -> list[bytes]:
        return [self.hub.served.get(i, self.hub.entries[i]) for i in range(start, start + count)]


async def _tiles_server(world: World, tls: TlsFiles) -> tuple[web.AppRunner, str]:
    app = tiles_app(FakeTiles(world.hub), may_read_entries=entry_readers([SAN_OVERSIGHT]))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=https_tls.server_context(tls))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # bound port
    return runner, f"https://127.0.0.1:{port}"


@pytest.mark.parametrize("forged", [None, 300])
def test_entries_over_tlog_tiles(
    loop: asyncio.AbstractEventLoop, pki_files: Pki, tmp_path: Path, forged: int | None
) -> None:
    async def body(world: World) -> None:
        runner, url = await _tiles_server(world, pki_files.servers["hub"])
        try:
            if forged is not None:
                real = Entry.decode(world.hub.entries[forged])
                world.hub.served[forged] = replace(real, requester="someone-else").encode()
            source = replace(world.config.hub, tiles_url=url)
            config = replace(world.config, hub=source)
            got = await collect.collect(config)
            assert [u.leaf_index for u in got.hub.unverified] == (
                [] if forged is None else [forged]
            )
            assert len(got.hub.entries) == len(world.hub.entries) - (forged is not None)
            assert world.hub.proofs == 0  # no gRPC proof: the tiles located it
            # Anyone else is refused the bundles.
            other = readers.TilesReader(url, pki_files.agency_client, source)
            with pytest.raises(RenkeiError) as err:
                await other.read()
            assert err.value.reason == "ENTRY_BUNDLES_REFUSED"
        finally:
            await runner.cleanup()

    _run(loop, pki_files, tmp_path, body)


def test_cli_against_live_parties(pki_files: Pki, tmp_path: Path) -> None:
    """`renkei oversight reconcile`, `fetch` and `hold` with the parties up (on a loop thread)."""
    from support.aio import LoopThread

    thread = LoopThread()
    world: World = thread.run(_serve(pki_files, tmp_path, _two_agencies()))
    try:
        (tmp_path / "saved").mkdir()
        (tmp_path / "saved" / "checkpoint.txt").write_bytes(world.hub.note)
        path = _write_config(tmp_path, pki_files, world)
        cfg = ["--config", str(path)]
        assert oversight_cli.main(["reconcile", *cfg]) == 0
        assert oversight_cli.main(["fetch", *cfg, "--out", str(tmp_path / "f")]) == 0
        assert (tmp_path / "f" / f"agency-{YOKOHAMA}.jsonl").is_file()
        hold = ["--hold-id", "case-7", "--serial", "5", "6", "--reason", "調査"]
        assert oversight_cli.main(["hold", "set", *cfg, *hold]) == 0
        assert set(world.holds.holds) == {"case-7"}
        assert oversight_cli.main(["hold", "release", *cfg, "--hold-id", "case-7"]) == 0
        assert world.holds.holds == {}
        assert oversight_cli.main(["hold", "set", *cfg, "--hold-id", "x"]) == 2  # no reason
        # A row the agency no longer has: reconcile exits 1.
        del world.traffic.shares[YOKOHAMA][0]
        assert oversight_cli.main(["reconcile", *cfg]) == 1
    finally:
        for s in world.servers:
            thread.run(s.stop(None))
        thread.close()


def test_cli_cannot_run(tmp_path: Path) -> None:
    assert oversight_cli.main(["reconcile", "--config", str(tmp_path / "absent.toml")]) == 2


def _write_config(tmp: Path, pki_files: Pki, world: World | None = None) -> Path:
    """oversight.toml naming the keys of the checkpoint saved in ``tmp / saved``."""
    saved = (tmp / "saved" / "checkpoint.txt").read_bytes()
    _, sigs = note.parse(saved)
    world_keys = json.loads((tmp / "keys.json").read_text())
    assert {s.name for s in sigs} >= {"renkei.test/log", "renkei.test/witness"}
    path = tmp / "oversight.toml"
    tls = pki_files.oversight
    path.write_text(
        f"""
[tls]
ca_cert = "{tls.ca_cert}"
cert = "{tls.cert}"
key = "{tls.key}"

[hub]
endpoint = "{world.config.hub.endpoint if world else "127.0.0.1:1"}"
log_key = "{world_keys["log"]}"
witness_keys = ["{world_keys["witness"]}"]

[output]
dir = "{tmp / "out"}"
{_agencies(world)}""",
        encoding="utf-8",
    )
    return path


def _agencies(world: World | None) -> str:
    if world is None:
        return ""
    return "".join(
        f'\n[[agency]]\nid = "{a.id}"\nendpoint = "{a.endpoint}"\n' for a in world.config.agencies
    )
