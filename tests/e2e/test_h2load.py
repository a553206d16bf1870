"""Raw load from a tool written elsewhere: h2load posts a pre-built gRPC frame to the hub.

h2load cannot present a client certificate, so it speaks h2c to an nginx bridge
on loopback that calls the hub over mutual TLS with the city's certificate
(`renkei bench bridge`, docs/load-testing.md). h2load counts HTTP statuses
only, and a gRPC error is an HTTP 200 too, so the grpc-status of the same frame
is confirmed separately: with nghttp (same Debian package; it can present a
certificate) straight to the hub, and with a Python call through the bridge.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from support.topology import CITY, PENSION, Topology

from ops.bench import frame, nginx
from ops.deploy import free_port
from ops.processes import ProcessGroup, python_module
from renkei.hub.v1 import hub_pb2

H2LOAD, NGHTTP, NGINX = shutil.which("h2load"), shutil.which("nghttp"), nginx.find_nginx()
pytestmark = [
    pytest.mark.skipif(H2LOAD is None, reason="h2load (Debian's nghttp2-client) not installed"),
    pytest.mark.skipif(NGHTTP is None, reason="nghttp (Debian's nghttp2-client) not installed"),
    pytest.mark.skipif(NGINX is None, reason="nginx (the h2c -> mTLS bridge) not installed"),
]
APPROVE = "/renkei.hub.v1.HubService/Approve"
COUNT = 60
LAWFUL = {
    "provider_agency_id": PENSION,
    "info_kind": "年金給付関係情報",
    "legal_basis_item": "二十七",
}
UNKNOWN = {"provider_agency_id": "999999", "info_kind": "x", "legal_basis_item": "一"}


@pytest.fixture(scope="module")
def bridge(topo: Topology, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The h2c port of an nginx bridge to the hub, presenting the city's certificate."""
    assert NGINX is not None
    hop = nginx.Hop(
        listen_port=free_port(),
        upstream_port=topo.hub.port,
        upstream_tls=topo.tls(CITY),
        server_tls=None,
    )
    with nginx.running(hop, tmp_path_factory.mktemp("bridge"), NGINX):
        yield hop.listen_port


def write_frame(tmp_path: Path, fields: dict[str, str]) -> Path:
    path = tmp_path / "approve.grpc"
    path.write_bytes(
        frame.encode(frame.message("renkei.hub.v1.ApproveRequest", json.dumps(fields)))
    )
    return path


def h2load(port: int, body: Path) -> str:
    assert H2LOAD is not None
    out = subprocess.run(
        [
            H2LOAD,
            "-n",
            str(COUNT),
            "-c",
            "2",
            "-m",
            "4",
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            f"http://127.0.0.1:{port}{APPROVE}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def nghttp_grpc_status(topo: Topology, body: Path) -> str:
    """The grpc-status trailer of one call straight to the hub, with the city's certificate."""
    assert NGHTTP is not None
    files = topo.tls(CITY)
    out = subprocess.run(
        [
            NGHTTP,
            "-v",
            "-n",
            "--cert",
            str(files.cert),
            "--key",
            str(files.key),
            "-d",
            str(body),
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            f"https://127.0.0.1:{topo.hub.port}{APPROVE}",
        ],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
    )
    found = re.findall(r"recv \(stream_id=\d+\) grpc-status: (\d+)", out.stdout)
    assert found, out.stdout[-2000:] + out.stderr
    return found[-1]


def through_bridge(port: int, body: Path) -> hub_pb2.ApproveResponse:
    """The same frame's message, as one gRPC call through the bridge h2load used."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(
            APPROVE, response_deserializer=hub_pb2.ApproveResponse.FromString
        )
        response: hub_pb2.ApproveResponse = call(frame.decode(body.read_bytes()), timeout=10)
        return response


def test_h2load_drives_approve_and_grpc_status_is_confirmed_apart(
    topo: Topology, bridge: int, tmp_path: Path
) -> None:
    body = write_frame(tmp_path, LAWFUL)

    stats = h2load(bridge, body)

    assert f"requests: {COUNT} total, {COUNT} started, {COUNT} done, {COUNT} succeeded" in stats
    assert f"status codes: {COUNT} 2xx, 0 3xx, 0 4xx, 0 5xx" in stats
    assert nghttp_grpc_status(topo, body) == "0"
    assert through_bridge(bridge, body).decision == hub_pb2.DECISION_APPROVED


def test_h2load_counts_grpc_refusals_as_successes(
    topo: Topology, bridge: int, tmp_path: Path
) -> None:
    body = write_frame(tmp_path, UNKNOWN)

    stats = h2load(bridge, body)

    # Every call was refused (NOT_FOUND, AGENCY_UNKNOWN), yet h2load sees HTTP 200s:
    # why its figures need the grpc-status check beside them.
    assert f"status codes: {COUNT} 2xx, 0 3xx, 0 4xx, 0 5xx" in stats
    assert nghttp_grpc_status(topo, body) == str(grpc.StatusCode.NOT_FOUND.value[0])
    with pytest.raises(grpc.RpcError) as refused:
        through_bridge(bridge, body)
    assert refused.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_the_bridge_command_runs_until_stopped(topo: Topology, tmp_path: Path) -> None:
    body = write_frame(tmp_path, LAWFUL)
    files = topo.tls(CITY)
    with ProcessGroup(tmp_path / "run") as group:
        child = group.start(
            "bridge",
            python_module(
                "ops.cli",
                "bench",
                "bridge",
                "--upstream-port",
                str(topo.hub.port),
                "--ca",
                str(files.ca_cert),
                "--cert",
                str(files.cert),
                "--key",
                str(files.key),
            ),
        )
        port = group.wait_ready(child)

        assert through_bridge(port, body).decision == hub_pb2.DECISION_APPROVED
        codes = group.stop_all()

    assert codes == {"bridge": 0}
    assert not child.port_file.exists()
