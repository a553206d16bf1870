"""The nginx configs of the harness and the h2load bridge: loopback, mutual TLS, own folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ops.bench import nginx
from renkei.pki import TlsFiles


def tls(tmp_path: Path, name: str) -> TlsFiles:
    return TlsFiles(tmp_path / "ca.pem", tmp_path / f"{name}.pem", tmp_path / f"{name}.key")


def test_the_relay_hop_is_mutual_tls_on_both_sides(tmp_path: Path) -> None:
    hop = nginx.Hop(4431, 5051, tls(tmp_path, "hub"), tls(tmp_path, "hub"))

    text = nginx.config_text(hop, tmp_path)

    assert "listen 127.0.0.1:4431 ssl http2;" in text
    assert "ssl_verify_client on;" in text
    assert f"ssl_client_certificate {tmp_path / 'ca.pem'};" in text
    assert "server 127.0.0.1:5051;" in text
    assert "grpc_pass grpcs://renkei_upstream;" in text
    assert f"grpc_ssl_certificate {tmp_path / 'hub.pem'};" in text
    assert "grpc_ssl_verify on;" in text
    assert "grpc_ssl_name hub.renkei.internal;" in text  # the upstream's party, not localhost
    assert "worker_processes 1;" in text
    assert "daemon off;" in text
    # Everything nginx writes stays in the folder it was given.
    assert "/var/" not in text
    assert "/etc/" not in text


def test_the_bridge_listens_in_plaintext_h2c(tmp_path: Path) -> None:
    hop = nginx.Hop(8443, 5051, tls(tmp_path, "141003"), None, upstream_peer="agency:nenkin")

    text = nginx.config_text(hop, tmp_path)

    assert "listen 127.0.0.1:8443 http2;" in text
    assert "ssl_verify_client" not in text
    assert " ssl " not in text
    assert f"grpc_ssl_certificate {tmp_path / '141003.pem'};" in text
    assert "grpc_ssl_name nenkin.agency.renkei.internal;" in text


def test_a_missing_binary_is_none(tmp_path: Path) -> None:
    assert nginx.find_nginx(str(tmp_path / "nginx")) is None


def test_the_bridge_without_nginx_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = argparse.Namespace(
        nginx=str(tmp_path / "nginx"),
        port=0,
        upstream_port=1,
        ca=tmp_path / "ca.pem",
        cert=tmp_path / "c.pem",
        key=tmp_path / "c.key",
        port_file=None,
    )

    assert nginx.bridge_main(args) == 1
    assert "nginx not found" in capsys.readouterr().out
