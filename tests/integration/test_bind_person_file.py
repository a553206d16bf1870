"""``renkei bind`` reading the agency's person file through its legacy client and mapper."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from support.aio import LoopThread
from support.four_systems import MODERN, legacy_tables, start_four_stubs
from support.legacy import StubProcess
from support.topology import Topology, start_topology

from comm_server.binding.bulk_bind import BindReport, bind_agency, bulk_bind
from comm_server.binding.person_file import person_file
from comm_server.config import CommConfig
from comm_server.legacy.factory import open_legacy_client
from comm_server.mapping.registry import load_mapper
from ops.cli import main as cli_main
from ops.deploy import registered
from registry_binding.bootstrap import RegistryBindingServer, create_server
from registry_binding.config import RegistryBindingConfig
from renkei.grpcutil.client import peer_options
from renkei.registry.v1 import registry_pb2_grpc

CITY = "141003"


@dataclass
class World:
    topo: Topology
    registry: RegistryBindingServer
    stubs: dict[str, StubProcess]

    def config(self, agency: str) -> CommConfig:
        return replace(
            CommConfig.load(self.topo.layout.comm_config(agency)),
            hub_endpoint=f"127.0.0.1:{self.topo.hub.port}",
            registry_endpoint=f"127.0.0.1:{self.registry.port}",
        )


@pytest.fixture(scope="module")
def world(loop: LoopThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("bind-person-file")
    stubs = start_four_stubs(tmp)
    try:
        topo = loop.run(
            start_topology(
                tmp / "topology",
                extra=registered("kyoukai-kenpo", MODERN),
                legacy_tables=legacy_tables(stubs),
                bind_people=False,
            ),
            timeout=60,
        )
        config = replace(
            RegistryBindingConfig.load(topo.layout.registry_config),
            id_issuer_endpoint=f"127.0.0.1:{topo.id_issuer.port}",
            listen="127.0.0.1:0",
            tls=topo.layout.pki.service("registry"),
        )
        registry = loop.run(create_server(config))
        try:
            yield World(topo, registry, stubs)
        finally:
            loop.run(registry.stop(0))
            loop.run(topo.stop())
    finally:
        for stub in stubs.values():
            stub.stop()


@pytest.mark.parametrize(
    ("agency", "named", "stranger"),
    [
        # 宛名番号 of 山田 太郎, 佐藤 花子, 鈴木 一郎 in the fixed-width cp932 tax file.
        (CITY, ("A0001001", "A0001002", "A0001003"), None),
        # The modern system's ids; S-0004 高橋 ハル is no resident of the registry.
        (MODERN, ("S-0001", "S-0002", "S-0003"), "S-0004"),
    ],
)
def test_the_person_file_binds_through_the_mapper_and_a_rerun_binds_nothing_twice(
    loop: LoopThread, world: World, agency: str, named: tuple[str, ...], stranger: str | None
) -> None:
    config = world.config(agency)
    report = loop.run(bind_agency(config, None), timeout=120)
    store = world.topo.store(agency)
    assert all(store.link_code_for(local) is not None for local in named)
    assert report.bound + report.already_bound >= len(named)
    # The stubs' generated people are nobody in this registry: review, never bound.
    assert report.none >= 20
    assert report.invalid == 0
    if stranger is not None:
        assert store.link_code_for(stranger) is None
        assert any(i.local_person_id == stranger and i.status == "none" for i in report.review)
    again = loop.run(bind_agency(config, None), timeout=120)
    assert again.bound == 0
    assert again.already_bound == report.bound + report.already_bound


class SpoilOne:
    """The real fixed-width client, with one person record's 生年月日 not digits."""

    def __init__(self, config: CommConfig, spoil: str) -> None:
        self.inner = open_legacy_client(config.legacy)
        self.spoil = spoil.encode("ascii").ljust(10)

    async def list_persons(self, after: str | None, limit: int, *, timeout: float) -> list[bytes]:
        page = await self.inner.list_persons(after, limit, timeout=timeout)
        return [r[:90] + b"S33.5.1" + r[97:] if r.startswith(self.spoil) else r for r in page]


def test_a_record_the_mapper_refuses_goes_to_review_as_invalid_and_the_job_goes_on(
    loop: LoopThread, world: World
) -> None:
    config = world.config(CITY)
    comm = world.topo.comms[CITY]
    legacy = SpoilOne(config, "A0001002")

    async def go() -> BindReport:
        async with _registry(world, config) as stub:
            records = person_file(legacy, load_mapper("fixed_tax"))  # type: ignore[arg-type]
            return await bulk_bind(comm.store, comm.hub, stub, records, batch=7)

    report = loop.run(go(), timeout=120)
    loop.run(legacy.inner.aclose())
    invalid = [i for i in report.review if i.status == "invalid"]
    assert [i.local_person_id for i in invalid] == ["A0001002"]
    assert "生年月日" in invalid[0].reason
    assert "offset 90" in invalid[0].reason
    assert report.invalid == 1
    assert world.topo.store(CITY).link_code_for("A0001001") is not None
    assert report.none >= 20  # the job went on past it


class _registry:
    def __init__(self, world: World, config: CommConfig) -> None:
        self.world, self.config = world, config

    async def __aenter__(self) -> registry_pb2_grpc.BindingServiceAsyncStub:
        import grpc

        assert self.config.tls is not None
        self.ch = grpc.aio.secure_channel(
            f"127.0.0.1:{self.world.registry.port}",
            self.config.tls.channel_credentials(),
            peer_options("service:registry"),
        )
        return registry_pb2_grpc.BindingServiceStub(self.ch)  # type: ignore[return-value]

    async def __aexit__(self, *exc: object) -> None:
        await self.ch.close()


def test_bind_without_input_needs_a_mapper(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    config = world.topo.layout.comm_config("mhlw")  # the JSON-lines system: no format
    assert cli_main(["bind", "--config", str(config)]) == 2
    assert "sets no [legacy] format" in capsys.readouterr().err
