"""The oversight body in a real ceremony (issue 15): its own CA made apart, its folder laid
out by ``renkei deploy init --party oversight``, its request signed by its CA alone; and a
server knows the certificate for what it is, the oversight body (``renkei.pki.Trust``).
"""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

import grpc
import pytest
from support.aio import LoopThread

from ops.cli import main
from renkei.config_util import tls_files
from renkei.grpcutil.caller import caller, label
from renkei.grpcutil.client import channel
from renkei.grpcutil.server import start_server
from renkei.pki import TlsFiles

WHO = "/renkei.test.v1.Whoami/Who"
KINDS = ("hub", "agency", "service", "oversight")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


async def _who(server_tls: TlsFiles, client_tls: TlsFiles) -> str:
    async def who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        identity = caller()
        return b"none" if identity is None else label(identity).encode()

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.method_handlers_generic_handler(
            "renkei.test.v1.Whoami", {"Who": grpc.unary_unary_rpc_method_handler(who)}
        )
        server.add_generic_rpc_handlers((handler,))

    handle = await start_server(
        name="whoami", bind="127.0.0.1:0", tls=server_tls, register=register, services=()
    )
    try:
        async with channel(f"127.0.0.1:{handle.port}", client_tls, peer="hub") as ch:
            answer: bytes = await ch.unary_unary(WHO, None, None)(b"", timeout=5)
            return answer.decode()
    finally:
        await handle.stop(0)


def test_the_oversight_body_in_a_ceremony(
    loop: LoopThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cas = {kind: tmp_path / f"ca-{kind}" for kind in KINDS}
    for kind, folder in cas.items():
        assert _run(capsys, "pki", "ca", "--dir", str(folder), "--kind", kind)[0] == 0
    roots = tmp_path / "roots.pem"
    roots.write_bytes(b"".join((f / "ca.pem").read_bytes() for f in cas.values()))
    body, hub = tmp_path / "oversight", tmp_path / "hub"
    code, out, _ = _run(
        capsys,
        *("deploy", "init", "--party", "oversight", "--dir", str(body), "--roots", str(roots)),
        *("--hub-endpoint", "127.0.0.1:50051", "--registry-endpoint", "127.0.0.1:50254"),
    )
    assert code == 0
    assert "send " in out
    assert stat.S_IMODE((body / "tls" / "key.pem").stat().st_mode) == 0o600
    assert not (body / "master.key").exists()  # it keeps no store
    config = tomllib.loads((body / "oversight.toml").read_text(encoding="utf-8"))
    assert config["hub"] == {"endpoint": "127.0.0.1:50051"}
    assert config["registry"] == {"endpoint": "127.0.0.1:50254"}
    csr = str(body / "tls" / "request.csr")
    # Another domain's CA refuses the request, one line and status 2; its own signs it.
    code, _, err = _run(
        capsys,
        "pki",
        "issue",
        "--ca",
        str(cas["agency"]),
        "--csr",
        csr,
        "--out",
        str(tmp_path / "x"),
    )
    assert (code, err.count("\n"), "not for 'oversight'" in err) == (2, 1, True)
    cert = str(body / "tls" / "cert.pem")
    assert (
        _run(capsys, "pki", "issue", "--ca", str(cas["oversight"]), "--csr", csr, "--out", cert)[0]
        == 0
    )
    assert (
        _run(capsys, "deploy", "init", "--party", "hub", "--dir", str(hub), "--roots", str(roots))[
            0
        ]
        == 0
    )
    hub_csr, hub_cert = str(hub / "tls" / "request.csr"), str(hub / "tls" / "cert.pem")
    assert (
        _run(capsys, "pki", "issue", "--ca", str(cas["hub"]), "--csr", hub_csr, "--out", hub_cert)[
            0
        ]
        == 0
    )

    client = tls_files(config, body / "oversight.toml")
    server = tls_files(
        tomllib.loads((hub / "hub.toml").read_text(encoding="utf-8")), hub / "hub.toml"
    )
    assert client is not None
    assert server is not None
    assert loop.run(_who(server, client)) == "oversight"
