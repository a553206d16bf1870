"""No plaintext port without the explicit development flag; the operator CLI's setup commands."""

from __future__ import annotations

import asyncio
import tomllib
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from hub_server import bootstrap
from hub_server.config import HubConfig
from ops.cli import main
from ops.deploy import DEMO_AGENCIES, Endpoints, init_deployment
from renkei.grpcutil.caller import DEV_PARTY_HEADER
from renkei.grpcutil.server import InsecurePortRefused
from renkei.hub.v1 import hub_pb2, hub_pb2_grpc


def _hub_config(tmp_path: Path) -> HubConfig:
    ids = [a.agency_id for a in DEMO_AGENCIES]
    layout = init_deployment(
        tmp_path, DEMO_AGENCIES, Endpoints(0, dict.fromkeys(ids, 0), dict.fromkeys(ids, 1))
    )
    return HubConfig.load(layout.hub_config)


def test_a_hub_without_tls_refuses_to_start_unless_told_it_is_development(
    tmp_path: Path,
) -> None:
    config = replace(_hub_config(tmp_path), tls=None)
    with pytest.raises(InsecurePortRefused, match="insecure development"):
        asyncio.run(bootstrap.create_server(config))


def test_development_mode_serves_plaintext_and_takes_the_caller_from_a_header(
    tmp_path: Path,
) -> None:
    config = replace(
        _hub_config(tmp_path), tls=None, insecure_development=True, id_issuer_endpoint=None
    )

    async def scenario() -> tuple[int, grpc.StatusCode]:
        server = await bootstrap.create_server(config)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
                stub = hub_pb2_grpc.HubServiceStub(ch)
                request = hub_pb2.ApproveRequest(
                    provider_agency_id="nenkin",
                    info_kind="年金給付関係情報",
                    legal_basis_item="二十七",
                )
                ok = await stub.Approve(
                    request, metadata=((DEV_PARTY_HEADER, "agency:141003"),), timeout=5
                )
                try:
                    await stub.Approve(request, timeout=5)
                    code = grpc.StatusCode.OK
                except grpc.aio.AioRpcError as err:
                    code = err.code()
                return ok.decision, code
        finally:
            await server.stop(0)

    decision, anonymous = asyncio.run(scenario())
    assert decision == hub_pb2.DECISION_APPROVED
    assert anonymous == grpc.StatusCode.UNAUTHENTICATED


def test_cli_pki_init_and_deploy_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "init", "--dir", str(tmp_path / "pki"), "--agency", "a1"]) == 0
    assert (tmp_path / "pki" / "agencies" / "a1" / "tls" / "cert.pem").exists()
    assert (tmp_path / "pki" / "hub" / "tls" / "cert.pem").exists()
    assert (tmp_path / "pki" / "roots.pem").exists()
    deployment = tmp_path / "deploy"
    agencies = ["--agency", "x1=名=市町村長", "--agency", "札幌市", "--agency", "nenkin"]
    assert main(["deploy", "init", "--dir", str(deployment), *agencies]) == 0
    directory = tomllib.loads((deployment / "hub" / "directory.toml").read_text())
    assert [a["id"] for a in directory["agency"]] == ["x1", "011002", "nenkin", "portal"]
    assert "市町村長" in directory["agency"][1]["classes"]
    hub = tomllib.loads((deployment / "hub" / "hub.toml").read_text())
    assert hub["hub"]["listen"] == "127.0.0.1:50051"
    comm = tomllib.loads((deployment / "agencies" / "x1" / "comm.toml").read_text())
    assert comm["comm"]["hub_endpoint"] == "127.0.0.1:50051"
    assert comm["legacy"]["port"] == 50152
    hub_tls = HubConfig.load(deployment / "hub" / "hub.toml").tls
    assert hub_tls is not None
    # The hub's key was made in the hub's folder; the CAs' keys are in their own.
    assert hub_tls.key.resolve() == (deployment / "hub" / "tls" / "key.pem").resolve()
    assert hub_tls.ca_cert.resolve() == (deployment / "pki" / "roots.pem").resolve()
    assert [p.resolve() for p in hub_tls.crls] == [
        (deployment / "pki" / ca / "crl.pem").resolve()
        for ca in ("hub-ca", "agencies-ca", "services-ca", "oversight-ca")
    ]
    assert sorted(p.parent.name for p in (deployment / "pki").rglob("ca.key")) == [
        "agencies-ca",
        "card-ca",  # the residents' cards (the registry side)
        "hub-ca",
        "oversight-ca",
        "services-ca",
        "web-ca",  # the portal's certificate for browsers (a public CA's stand-in)
    ]
    assert "deployment in" in capsys.readouterr().out
    # Every party gets a real port from the base: no config may name port 0.
    assert hub["hub"]["id_issuer_endpoint"] == "127.0.0.1:50252"
    assert comm["comm"]["registry_endpoint"] == "127.0.0.1:50254"
    for config in deployment.rglob("*.toml"):
        assert ':0"' not in config.read_text(encoding="utf-8"), config


def test_renkei_registry_hands_its_arguments_to_the_registry_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    assert main(["registry", "generate", "--database-url", url, "--count", "3", "--seed", "1"]) == 0
    assert "generated 3 residents" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["registry", "--help"])
    assert done.value.code == 0
    assert "usage: renkei registry" in capsys.readouterr().out
