"""Tools written elsewhere can talk to our servers: `buf curl` over mutual TLS, via reflection."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.rpc import error_details_pb2
from support.topology import CITY, PENSION, Topology

BUF = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
pytestmark = pytest.mark.skipif(BUF is None, reason="buf (from the buf-bin package) not installed")


def buf_curl(topo: Topology, as_party: str, *args: str) -> subprocess.CompletedProcess[str]:
    files = topo.tls(as_party)
    assert BUF is not None
    return subprocess.run(
        [
            BUF,
            "curl",
            "--protocol",
            "grpc",
            "--cert",
            str(files.cert),
            "--key",
            str(files.key),
            # Go's crypto/x509 (buf) refuses any URN SAN (urn:renkei:hub) under a CA with
            # Name Constraints ("URI with empty host cannot be matched"), so buf cannot
            # verify renkei's servers: it skips that. The hub still requires and checks
            # buf's client certificate; grpc's own clients check the server by name.
            "--insecure",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_buf_curl_lists_the_hubs_services(topo: Topology) -> None:
    out = buf_curl(topo, CITY, "--list-services", f"https://127.0.0.1:{topo.hub.port}")
    assert out.returncode == 0, out.stderr
    services = out.stdout.split()
    assert "renkei.hub.v1.HubService" in services
    assert "grpc.health.v1.Health" in services


def test_buf_curl_calls_approve_with_a_client_certificate(topo: Topology) -> None:
    request = {
        "provider_agency_id": PENSION,
        "info_kind": "年金給付関係情報",
        "legal_basis_item": "二十七",
    }
    out = buf_curl(
        topo,
        CITY,
        "--data",
        json.dumps(request, ensure_ascii=False),
        f"https://127.0.0.1:{topo.hub.port}/renkei.hub.v1.HubService/Approve",
    )
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["decision"] == "DECISION_APPROVED"
    assert answer["citation"]["item"] == "二十七"


def test_buf_curl_sees_the_error_info_of_a_refusal(topo: Topology) -> None:
    request = {"provider_agency_id": "999999", "info_kind": "x", "legal_basis_item": "一"}
    out = buf_curl(
        topo,
        CITY,
        "--data",
        json.dumps(request),
        f"https://127.0.0.1:{topo.hub.port}/renkei.hub.v1.HubService/Approve",
    )
    assert out.returncode != 0
    error = json.loads(out.stderr)
    assert error["code"] == "not_found"
    # buf cannot resolve google.rpc.ErrorInfo by reflection, so it prints the detail raw.
    [detail] = error["details"]
    assert detail["type"] == "google.rpc.ErrorInfo"
    info = error_details_pb2.ErrorInfo.FromString(
        base64.b64decode(detail["value"] + "=" * (-len(detail["value"]) % 4))
    )
    assert (info.domain, info.reason) == ("renkei", "AGENCY_UNKNOWN")
