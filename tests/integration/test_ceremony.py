"""A deployment ceremony: each CA and each party in its own folder, only CSRs between them.

``renkei pki ca`` makes one domain's CA; ``renkei deploy init --party`` lays
out one party (its keys made there, a CSR, its config); ``renkei pki issue``
signs a request only for a party of the CA's domain; ``renkei pki revoke``
puts a certificate on the CA's list. The files made so serve: a party's
server and another party's client reach each other by name.
"""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from support.aio import LoopThread

from ops.cli import main
from renkei.config_util import tls_files
from renkei.grpcutil.caller import caller, label
from renkei.grpcutil.client import channel
from renkei.grpcutil.server import start_server
from renkei.pki import TlsFiles

WHO = "/renkei.test.v1.Whoami/Who"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def cas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    """Three CAs, each made apart (its operator's machine), and the bundle of their certificates."""
    folders = {}
    for kind in ("hub", "agency", "service"):
        folder = tmp_path / f"ca-{kind}"
        assert _run(capsys, "pki", "ca", "--dir", str(folder), "--kind", kind)[0] == 0
        folders[kind] = folder
    roots = tmp_path / "roots.pem"
    roots.write_bytes(b"".join((f / "ca.pem").read_bytes() for f in folders.values()))
    folders["roots"] = roots
    return folders


def _tls(config: Path) -> TlsFiles:
    files = tls_files(tomllib.loads(config.read_text("utf-8")), config)
    assert files is not None
    return files


async def _who(server_tls: TlsFiles, client_tls: TlsFiles, peer: str) -> str:
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
        async with channel(f"127.0.0.1:{handle.port}", client_tls, peer=peer) as ch:
            try:
                answer: bytes = await ch.unary_unary(WHO, None, None)(b"", timeout=5)
            except grpc.aio.AioRpcError as err:
                return f"{err.code().name} {err.details()}"
        return answer.decode()
    finally:
        await handle.stop(0)


def test_a_ceremony_makes_parties_that_reach_each_other(
    loop: LoopThread, tmp_path: Path, cas: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    roots = str(cas["roots"])
    city, hub = tmp_path / "city", tmp_path / "hub"
    code, out, _ = _run(
        capsys,
        *("deploy", "init", "--party", "agency:141003", "--dir", str(city), "--roots", roots),
        *("--hub-endpoint", "127.0.0.1:50051", "--crl", str(cas["agency"] / "crl.pem")),
    )
    assert code == 0
    assert "publish sealing_public_key = " in out
    code, out, _ = _run(
        capsys,
        *("deploy", "init", "--party", "hub", "--dir", str(hub), "--roots", roots),
        *("--agency", "141003"),
    )
    assert (code, "publish hub_sealing_public_key = " in out) == (0, True)
    issuer = tmp_path / "id_issuer"
    code, out, _ = _run(
        capsys,
        *("deploy", "init", "--party", "service:id-issuer", "--dir", str(issuer)),
        *("--roots", roots),
    )
    assert (code, "publish id_issuer_signing_public_key = " in out) == (0, True)
    assert (issuer / "issuer.toml").is_file()
    for folder in (city, hub):
        assert stat.S_IMODE((folder / "tls" / "key.pem").stat().st_mode) == 0o600
        assert (folder / "tls" / "request.csr").is_file()
        assert not (folder / "tls" / "cert.pem").exists()  # the CA's to make
    assert not any(p.name == "ca.key" for p in tmp_path.rglob("*") if "ca-" not in str(p.parent))

    # Each CA signs only its own domain's requests: one line and status 2 otherwise.
    code, _, err = _run(
        capsys,
        *("pki", "issue", "--ca", str(cas["hub"]), "--csr", str(city / "tls" / "request.csr")),
        *("--out", str(tmp_path / "nope.pem")),
    )
    assert code == 2
    assert err.count("\n") == 1
    assert "issues certificates for the hub only" in err
    assert not (tmp_path / "nope.pem").exists()
    for party_dir, ca in ((city, cas["agency"]), (hub, cas["hub"])):
        code, out, _ = _run(
            capsys,
            *("pki", "issue", "--ca", str(ca), "--csr", str(party_dir / "tls" / "request.csr")),
            *("--out", str(party_dir / "tls" / "cert.pem")),
        )
        assert code == 0, out

    city_tls, hub_tls = _tls(city / "comm.toml"), _tls(hub / "hub.toml")
    assert loop.run(_who(city_tls, hub_tls, "agency:141003")) == "hub"
    assert loop.run(_who(hub_tls, city_tls, "hub")) == "agency:141003"

    # Revoked at its CA, the list copied to the party's folder: the city's server refuses
    # nothing new (it checks its callers), the hub's server refuses the city.
    code, out, _ = _run(
        capsys,
        *("pki", "revoke", "--ca", str(cas["agency"]), "--cert", str(city / "tls" / "cert.pem")),
    )
    assert (code, "1 revoked" in out) == (0, True)
    revoked = x509.load_pem_x509_crl((cas["agency"] / "crl.pem").read_bytes())
    serial = x509.load_pem_x509_certificate(city_tls.cert.read_bytes()).serial_number
    assert [r.serial_number for r in revoked] == [serial]
    hub_checks = TlsFiles(hub_tls.ca_cert, hub_tls.cert, hub_tls.key, (cas["agency"] / "crl.pem",))
    answer = loop.run(_who(hub_checks, city_tls, "hub"))
    assert answer.startswith("UNAUTHENTICATED")
    assert "revocation list" in answer


def test_ceremony_refusals_are_one_line(
    tmp_path: Path, cas: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    roots = str(cas["roots"])
    city = tmp_path / "city"
    argv = ("deploy", "init", "--party", "agency:141003", "--dir", str(city), "--roots", roots)
    for extra, expected in (
        ((), "needs --hub-endpoint"),
        (("--hub-endpoint", "h:1", "--crl", str(tmp_path / "none.pem")), "no such file"),
    ):
        code, _, err = _run(capsys, *argv, *extra)
        assert (code, err.count("\n")) == (2, 1), err
        assert expected in err
    code, _, err = _run(capsys, "deploy", "init", "--party", "nobody", "--dir", str(city))
    assert (code, "--roots" in err) == (2, True)
    lone = tmp_path / "lone.pem"
    lone.write_bytes((cas["hub"] / "ca.pem").read_bytes())
    code, _, err = _run(
        capsys, "deploy", "init", "--party", "hub", "--dir", str(city), "--roots", str(lone)
    )
    assert (code, "agencies'" in err) == (2, True)
    assert _run(capsys, *argv, "--hub-endpoint", "h:1")[0] == 0
    code, _, err = _run(capsys, *argv, "--hub-endpoint", "h:1")
    assert (code, "refusing to replace" in err) == (2, True)
    code, _, err = _run(capsys, "pki", "ca", "--dir", str(cas["hub"]), "--kind", "hub")
    assert (code, "already exists" in err) == (2, True)
    code, _, err = _run(capsys, "pki", "revoke", "--ca", str(cas["agency"]), "--cert", str(lone))
    assert (code, "was not issued by" in err) == (2, True)
    code, _, err = _run(capsys, "pki", "revoke", "--ca", str(cas["agency"]))
    assert (code, "nothing to revoke" in err) == (2, True)
